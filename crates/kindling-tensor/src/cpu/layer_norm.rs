//! Fused layer normalization over the last dim of `[rows, n]`: one pass for
//! the statistics, one for the output; backward in two passes per row plus
//! the weight/bias reductions. Mean and 1/std are kept from the forward.

use super::PARALLEL_MIN_ELEMS;

/// One row's output, input and statistics slots, as the row closures take them.
type ForwardRow<'a> = ((&'a mut [f32], &'a [f32]), (&'a mut f32, &'a mut f32));
type BackwardRow<'a> = (&'a mut [f32], ((&'a [f32], &'a [f32]), (&'a f32, &'a f32)));
use rayon::prelude::*;

/// Returns `(y, mean, rstd)`.
pub fn forward(
    x: &[f32],
    w: &[f32],
    b: &[f32],
    n: usize,
    eps: f32,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let rows = x.len() / n.max(1);
    let mut y = super::matmul::gemm_output(x.len());
    let mut mean = vec![0f32; rows];
    let mut rstd = vec![0f32; rows];
    let row = |((yr, xr), (m, r)): ForwardRow| {
        let mu = super::reduce::sum_slice(xr) / n as f32;
        let var = xr.iter().map(|&v| (v - mu) * (v - mu)).sum::<f32>() / n as f32;
        let rs = 1.0 / (var + eps).sqrt();
        for (((o, &v), &g), &bb) in yr.iter_mut().zip(xr).zip(w).zip(b) {
            *o = (v - mu) * rs * g + bb;
        }
        *m = mu;
        *r = rs;
    };
    if x.len() >= PARALLEL_MIN_ELEMS {
        y.par_chunks_mut(n)
            .zip(x.par_chunks(n))
            .zip(mean.par_iter_mut().zip(rstd.par_iter_mut()))
            .for_each(row);
    } else {
        y.chunks_mut(n)
            .zip(x.chunks(n))
            .zip(mean.iter_mut().zip(rstd.iter_mut()))
            .for_each(row);
    }
    (y, mean, rstd)
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
    let mut dx = super::matmul::gemm_output(x.len());
    let mut dw = vec![0f32; n];
    let mut db = vec![0f32; n];
    for (((dyr, xr), &mu), &rs) in dy.chunks(n).zip(x.chunks(n)).zip(mean).zip(rstd) {
        for i in 0..n {
            let xhat = (xr[i] - mu) * rs;
            dw[i] += dyr[i] * xhat;
            db[i] += dyr[i];
        }
    }
    let row = |(dxr, ((dyr, xr), (&mu, &rs))): BackwardRow| {
        // dx = rstd * (g - mean(g) - xhat * mean(g * xhat)), g = dy * w
        let (mut sum_g, mut sum_gx) = (0f32, 0f32);
        for i in 0..n {
            let g = dyr[i] * w[i];
            sum_g += g;
            sum_gx += g * (xr[i] - mu) * rs;
        }
        let (mg, mgx) = (sum_g / n as f32, sum_gx / n as f32);
        for i in 0..n {
            let xhat = (xr[i] - mu) * rs;
            dxr[i] = rs * (dyr[i] * w[i] - mg - xhat * mgx);
        }
    };
    if x.len() >= PARALLEL_MIN_ELEMS {
        dx.par_chunks_mut(n)
            .zip(
                dy.par_chunks(n)
                    .zip(x.par_chunks(n))
                    .zip(mean.par_iter().zip(rstd.par_iter())),
            )
            .for_each(row);
    } else {
        dx.chunks_mut(n)
            .zip(
                dy.chunks(n)
                    .zip(x.chunks(n))
                    .zip(mean.iter().zip(rstd.iter())),
            )
            .for_each(row);
    }
    (dx, dw, db)
}
