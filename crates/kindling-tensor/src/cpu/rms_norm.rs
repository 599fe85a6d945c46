//! RMSNorm over the last dim of `[rows, n]` (Zhang & Sennrich 2019):
//! `y = w ⊙ x r`, `r = (mean x² + eps)^-½`, with r kept for backward.
//! The mean of squares is summed in f64 and rounded once, as llama.cpp's
//! `ggml_compute_forward_rms_norm_f32` does (each square rounded to f32
//! first), so decoding gives its bits.

use super::PARALLEL_MIN_ELEMS;
use rayon::prelude::*;

/// Returns `(y, rstd)`.
pub fn forward(x: &[f32], w: &[f32], n: usize, eps: f32) -> (Vec<f32>, Vec<f32>) {
    let rows = x.len() / n;
    let mut y = vec![0f32; x.len()];
    let mut rstd = vec![0f32; rows];
    // Each row alone (its f64 sum of squares in order, as ggml adds it), so
    // rows can go to the threads without changing a bit.
    let row = |((xr, yr), r): ((&[f32], &mut [f32]), &mut f32)| {
        let ms = (xr.iter().map(|v| (v * v) as f64).sum::<f64>() / n as f64) as f32;
        *r = 1.0 / (ms + eps).sqrt();
        for ((yv, xv), w) in yr.iter_mut().zip(xr).zip(w) {
            *yv = w * (xv * *r);
        }
    };
    if x.len() >= PARALLEL_MIN_ELEMS && rows > 1 {
        x.par_chunks_exact(n)
            .zip(y.par_chunks_exact_mut(n))
            .zip(rstd.par_iter_mut())
            .for_each(row);
    } else {
        x.chunks_exact(n)
            .zip(y.chunks_exact_mut(n))
            .zip(&mut rstd)
            .for_each(row);
    }
    (y, rstd)
}

/// Returns `(dx, dw)`:
/// dx = r (w ⊙ dy) − x r³/n · Σ(w ⊙ dy ⊙ x);  dw = Σ_rows dy ⊙ x r.
pub fn backward(dy: &[f32], x: &[f32], w: &[f32], rstd: &[f32], n: usize) -> (Vec<f32>, Vec<f32>) {
    let mut dx = vec![0f32; x.len()];
    let mut dw = vec![0f32; n];
    for (((dyr, xr), dxr), r) in dy
        .chunks_exact(n)
        .zip(x.chunks_exact(n))
        .zip(dx.chunks_exact_mut(n))
        .zip(rstd)
    {
        let mut dot = 0f32;
        for i in 0..n {
            dot += w[i] * dyr[i] * xr[i];
            dw[i] += dyr[i] * xr[i] * r;
        }
        let c = r * r * r * dot / n as f32;
        for i in 0..n {
            dxr[i] = r * w[i] * dyr[i] - c * xr[i];
        }
    }
    (dx, dw)
}
