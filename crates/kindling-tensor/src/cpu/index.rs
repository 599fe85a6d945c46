//! Indexing kernels over contiguous buffers seen as `[outer, n, inner]`:
//! select rows by index and the scatter-adds that are their gradients.

use crate::{Error, Result};

fn check(op: &'static str, i: i64, n: usize) -> Result<usize> {
    if i < 0 || i as usize >= n {
        return Err(Error::Index {
            op,
            index: i,
            size: n,
        });
    }
    Ok(i as usize)
}

/// `out[o, j, :] = x[o, idx[j], :]`.
pub fn index_select(
    x: &[f32],
    outer: usize,
    n: usize,
    inner: usize,
    idx: &[i64],
) -> Result<Vec<f32>> {
    let m = idx.len();
    let mut out = vec![0f32; outer * m * inner];
    let rows: Vec<usize> = idx
        .iter()
        .map(|&i| check("index_select", i, n))
        .collect::<Result<_>>()?;
    for o in 0..outer {
        for (j, &r) in rows.iter().enumerate() {
            let src = &x[(o * n + r) * inner..(o * n + r + 1) * inner];
            out[(o * m + j) * inner..(o * m + j + 1) * inner].copy_from_slice(src);
        }
    }
    Ok(out)
}

/// `out[o, idx[j], :] += g[o, j, :]` into zeros of `[outer, n, inner]`.
pub fn index_add(g: &[f32], outer: usize, n: usize, inner: usize, idx: &[i64]) -> Result<Vec<f32>> {
    let m = idx.len();
    let mut out = vec![0f32; outer * n * inner];
    for o in 0..outer {
        for (j, &i) in idx.iter().enumerate() {
            let r = check("index_add", i, n)?;
            let src = &g[(o * m + j) * inner..(o * m + j + 1) * inner];
            let dst = &mut out[(o * n + r) * inner..(o * n + r + 1) * inner];
            for (d, &s) in dst.iter_mut().zip(src) {
                *d += s;
            }
        }
    }
    Ok(out)
}

/// `out[o, j, i] = x[o, idx[o, j, i], i]` with idx `[outer, m, inner]`.
pub fn gather(
    x: &[f32],
    outer: usize,
    n: usize,
    inner: usize,
    idx: &[i64],
    m: usize,
) -> Result<Vec<f32>> {
    let mut out = vec![0f32; outer * m * inner];
    for o in 0..outer {
        for j in 0..m {
            for i in 0..inner {
                let p = (o * m + j) * inner + i;
                let r = check("gather", idx[p], n)?;
                out[p] = x[(o * n + r) * inner + i];
            }
        }
    }
    Ok(out)
}

/// `out[o, idx[o, j, i], i] += g[o, j, i]` into zeros of `[outer, n, inner]`.
pub fn scatter_add(
    g: &[f32],
    outer: usize,
    n: usize,
    inner: usize,
    idx: &[i64],
    m: usize,
) -> Result<Vec<f32>> {
    let mut out = vec![0f32; outer * n * inner];
    for o in 0..outer {
        for j in 0..m {
            for i in 0..inner {
                let p = (o * m + j) * inner + i;
                let r = check("scatter_add", idx[p], n)?;
                out[(o * n + r) * inner + i] += g[p];
            }
        }
    }
    Ok(out)
}
