//! Fused layer normalization over the last dim of `[rows, n]`: one pass for
//! the statistics, one for the output; backward in two passes per row plus
//! the weight/bias reductions. Mean and 1/std are kept from the forward.
//! Row loops are `simd::Kernel`s, compiled for the CPU's vector width.

use super::reduce::sum_slice;
use super::{simd, PARALLEL_MIN_ELEMS};
use rayon::prelude::*;

/// A block of rows as the forward task takes it: (y, x), (mean, rstd).
type ForwardTask<'a> = ((&'a mut [f32], &'a [f32]), (&'a mut [f32], &'a mut [f32]));
/// dx, ((dy, x), (mean, rstd)).
type BackwardTask<'a> = (
    &'a mut [f32],
    ((&'a [f32], &'a [f32]), (&'a [f32], &'a [f32])),
);

/// Rows per parallel task.
fn rows_per_task(n: usize) -> usize {
    (PARALLEL_MIN_ELEMS / 4 / n.max(1)).max(1)
}

/// Returns `(y, mean, rstd)`.
pub fn forward(
    x: &[f32],
    w: &[f32],
    b: &[f32],
    n: usize,
    eps: f32,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let rows = x.len() / n.max(1);
    let mut y = vec![0f32; x.len()];
    let mut mean = vec![0f32; rows];
    let mut rstd = vec![0f32; rows];
    if n == 0 {
        return (y, mean, rstd);
    }
    let r = rows_per_task(n);
    let task = |((y, x), (mean, rstd)): ForwardTask| {
        simd::dispatch(Forward {
            y,
            x,
            w,
            b,
            mean,
            rstd,
            n,
            eps,
        })
    };
    if x.len() >= PARALLEL_MIN_ELEMS {
        y.par_chunks_mut(n * r)
            .zip(x.par_chunks(n * r))
            .zip(mean.par_chunks_mut(r).zip(rstd.par_chunks_mut(r)))
            .for_each(task);
    } else {
        task(((&mut y, x), (&mut mean, &mut rstd)));
    }
    (y, mean, rstd)
}

struct Forward<'a> {
    y: &'a mut [f32],
    x: &'a [f32],
    w: &'a [f32],
    b: &'a [f32],
    mean: &'a mut [f32],
    rstd: &'a mut [f32],
    n: usize,
    eps: f32,
}

impl simd::Kernel for Forward<'_> {
    type Output = ();
    #[inline(always)]
    fn run(self) {
        let Forward {
            y,
            x,
            w,
            b,
            mean,
            rstd,
            n,
            eps,
        } = self;
        let rows = y.chunks_exact_mut(n).zip(x.chunks_exact(n));
        for ((yr, xr), (m, r)) in rows.zip(mean.iter_mut().zip(rstd.iter_mut())) {
            let mu = sum_slice(xr) / n as f32;
            let var = centered_squares(xr, mu) / n as f32;
            let rs = 1.0 / (var + eps).sqrt();
            for (((o, &v), &g), &bb) in yr.iter_mut().zip(xr).zip(w).zip(b) {
                *o = (v - mu) * rs * g + bb;
            }
            *m = mu;
            *r = rs;
        }
    }
}

/// Σ (x - mu)², in eight lanes so it vectorizes.
#[inline(always)]
fn centered_squares(x: &[f32], mu: f32) -> f32 {
    let mut acc = [0f32; 8];
    let chunks = x.chunks_exact(8);
    let tail: f32 = chunks
        .remainder()
        .iter()
        .map(|&v| (v - mu) * (v - mu))
        .sum();
    for c in chunks {
        for i in 0..8 {
            acc[i] += (c[i] - mu) * (c[i] - mu);
        }
    }
    sum_slice(&acc) + tail
}

/// Returns `(dx, dw, db)` for upstream `dy`.
pub fn backward(
    dy: &[f32],
    x: &[f32],
    w: &[f32],
    mean: &[f32],
    rstd: &[f32],
    n: usize,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let mut dx = vec![0f32; x.len()];
    let mut dw = vec![0f32; n];
    let mut db = vec![0f32; n];
    if n == 0 {
        return (dx, dw, db);
    }
    // dw and db sum over all rows: one pass, in row order (deterministic).
    simd::dispatch(ParamGrads {
        dw: &mut dw,
        db: &mut db,
        dy,
        x,
        mean,
        rstd,
        n,
    });
    let r = rows_per_task(n);
    let task = |(dx, ((dy, x), (mean, rstd))): BackwardTask| {
        simd::dispatch(InputGrad {
            dx,
            dy,
            x,
            w,
            mean,
            rstd,
            n,
        })
    };
    if x.len() >= PARALLEL_MIN_ELEMS {
        dx.par_chunks_mut(n * r)
            .zip(
                dy.par_chunks(n * r)
                    .zip(x.par_chunks(n * r))
                    .zip(mean.par_chunks(r).zip(rstd.par_chunks(r))),
            )
            .for_each(task);
    } else {
        task((&mut dx, ((dy, x), (mean, rstd))));
    }
    (dx, dw, db)
}

struct ParamGrads<'a> {
    dw: &'a mut [f32],
    db: &'a mut [f32],
    dy: &'a [f32],
    x: &'a [f32],
    mean: &'a [f32],
    rstd: &'a [f32],
    n: usize,
}

impl simd::Kernel for ParamGrads<'_> {
    type Output = ();
    #[inline(always)]
    fn run(self) {
        let ParamGrads {
            dw,
            db,
            dy,
            x,
            mean,
            rstd,
            n,
        } = self;
        let rows = dy.chunks_exact(n).zip(x.chunks_exact(n));
        for ((dyr, xr), (&mu, &rs)) in rows.zip(mean.iter().zip(rstd)) {
            for (((dw, db), &g), &v) in dw.iter_mut().zip(db.iter_mut()).zip(dyr).zip(xr) {
                *dw += g * ((v - mu) * rs);
                *db += g;
            }
        }
    }
}

struct InputGrad<'a> {
    dx: &'a mut [f32],
    dy: &'a [f32],
    x: &'a [f32],
    w: &'a [f32],
    mean: &'a [f32],
    rstd: &'a [f32],
    n: usize,
}

impl simd::Kernel for InputGrad<'_> {
    type Output = ();
    #[inline(always)]
    fn run(self) {
        let InputGrad {
            dx,
            dy,
            x,
            w,
            mean,
            rstd,
            n,
        } = self;
        let rows = dx
            .chunks_exact_mut(n)
            .zip(dy.chunks_exact(n).zip(x.chunks_exact(n)));
        for ((dxr, (dyr, xr)), (&mu, &rs)) in rows.zip(mean.iter().zip(rstd)) {
            // dx = rstd * (g - mean(g) - xhat * mean(g * xhat)), g = dy * w
            let (mut sg, mut sgx) = ([0f32; 8], [0f32; 8]);
            let (mut tg, mut tgx) = (0f32, 0f32);
            let full = n - n % 8;
            for c in (0..full).step_by(8) {
                for i in 0..8 {
                    let g = dyr[c + i] * w[c + i];
                    sg[i] += g;
                    sgx[i] += g * ((xr[c + i] - mu) * rs);
                }
            }
            for i in full..n {
                let g = dyr[i] * w[i];
                tg += g;
                tgx += g * ((xr[i] - mu) * rs);
            }
            let mg = (sum_slice(&sg) + tg) / n as f32;
            let mgx = (sum_slice(&sgx) + tgx) / n as f32;
            for (((d, &g), &v), &ww) in dxr.iter_mut().zip(dyr).zip(xr).zip(w) {
                let xhat = (v - mu) * rs;
                *d = rs * (g * ww - mg - xhat * mgx);
            }
        }
    }
}
