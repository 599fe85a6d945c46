//! Elementwise kernels. Each is generic over the scalar function, so the
//! dispatch `match` happens once per call and the inner loop is a plain map
//! the compiler vectorizes. Broadcast operands are walked by stride (stride
//! 0 for repeated dims): no broadcast copy is ever materialized.

use super::PARALLEL_MIN_ELEMS;
use crate::layout::Layout;
use rayon::prelude::*;

pub fn unary<F: Fn(f32) -> f32 + Sync>(data: &[f32], layout: &Layout, f: F) -> Vec<f32> {
    match layout.contiguous_range() {
        Some(r) => {
            let src = &data[r];
            if src.len() >= PARALLEL_MIN_ELEMS {
                src.par_iter().map(|&x| f(x)).collect()
            } else {
                src.iter().map(|&x| f(x)).collect()
            }
        }
        None => super::copy::gather_strided(data, layout)
            .into_iter()
            .map(f)
            .collect(),
    }
}

/// `f(a, b)` over two layouts already broadcast to the same shape.
pub fn binary<T: Copy + Send + Default, F: Fn(f32, f32) -> T + Sync>(
    a: &[f32],
    la: &Layout,
    b: &[f32],
    lb: &Layout,
    f: F,
) -> Vec<T> {
    debug_assert_eq!(la.shape(), lb.shape());
    if let (Some(ra), Some(rb)) = (la.contiguous_range(), lb.contiguous_range()) {
        let (a, b) = (&a[ra], &b[rb]);
        if a.len() >= PARALLEL_MIN_ELEMS {
            return a
                .par_iter()
                .zip(b.par_iter())
                .map(|(&x, &y)| f(x, y))
                .collect();
        }
        return a.iter().zip(b).map(|(&x, &y)| f(x, y)).collect();
    }
    let n = la.numel();
    let mut out = vec![T::default(); n];
    let (shape, sa, sb) = joint_coalesce(la, lb);
    let rank = shape.len();
    let inner = shape[rank - 1];
    let (ia, ib) = (sa[rank - 1], sb[rank - 1]);
    let rows = out.chunks_mut(inner.max(1));
    let mut idx = vec![0usize; rank - 1];
    let (mut oa, mut ob) = (la.offset(), lb.offset());
    for row in rows {
        // Specialised inner loops: unit/zero strides vectorize.
        match (ia, ib) {
            (1, 1) => row_map(row, &a[oa..oa + inner], &b[ob..ob + inner], &f),
            (1, 0) => {
                let y = b[ob];
                for (o, &x) in row.iter_mut().zip(&a[oa..oa + inner]) {
                    *o = f(x, y);
                }
            }
            (0, 1) => {
                let x = a[oa];
                for (o, &y) in row.iter_mut().zip(&b[ob..ob + inner]) {
                    *o = f(x, y);
                }
            }
            _ => {
                for (i, o) in row.iter_mut().enumerate() {
                    *o = f(a[oa + i * ia], b[ob + i * ib]);
                }
            }
        }
        for d in (0..rank - 1).rev() {
            idx[d] += 1;
            oa += sa[d];
            ob += sb[d];
            if idx[d] < shape[d] {
                break;
            }
            oa -= sa[d] * shape[d];
            ob -= sb[d] * shape[d];
            idx[d] = 0;
        }
    }
    out
}

#[inline]
fn row_map<T, F: Fn(f32, f32) -> T>(out: &mut [T], a: &[f32], b: &[f32], f: &F) {
    for ((o, &x), &y) in out.iter_mut().zip(a).zip(b) {
        *o = f(x, y);
    }
}

/// Merges adjacent dims that are mergeable in both layouts.
fn joint_coalesce(la: &Layout, lb: &Layout) -> (Vec<usize>, Vec<usize>, Vec<usize>) {
    let (mut shape, mut sa, mut sb) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..la.rank() {
        let (n, x, y) = (la.shape()[i], la.strides()[i], lb.strides()[i]);
        if n == 1 {
            continue;
        }
        if let (Some(ln), Some(lx), Some(ly)) = (shape.last_mut(), sa.last_mut(), sb.last_mut()) {
            if *lx == x * n && *ly == y * n {
                *ln *= n;
                *lx = x;
                *ly = y;
                continue;
            }
        }
        shape.push(n);
        sa.push(x);
        sb.push(y);
    }
    if shape.is_empty() {
        shape.push(1);
        sa.push(1);
        sb.push(1);
    }
    (shape, sa, sb)
}

/// `where(cond, a, b)` with all three broadcast to one shape. The mask is
/// read as f32 (non-zero = true), converted by the caller.
pub fn select(cond: &[f32], a: &[f32], b: &[f32]) -> Vec<f32> {
    cond.iter()
        .zip(a.iter().zip(b))
        .map(|(&c, (&x, &y))| if c != 0.0 { x } else { y })
        .collect()
}
