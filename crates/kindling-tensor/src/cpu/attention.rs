//! Causal scaled dot-product attention for `[B, H, T, D]` q, k, v, one
//! (batch, head) pair per task, each product a small single-threaded GEMM.
//! The causal mask is applied inside the row softmax (keys j > i get
//! probability 0), so no mask tensor exists; the probabilities are kept for
//! backward and for drawing attention maps.

use super::matmul::gemm_serial;
use super::reduce::sum_slice;
use super::simd::{self, exp};
use super::softmax::row_max;
use rayon::prelude::*;

pub struct AttentionGeometry {
    pub heads_total: usize,
    pub t: usize,
    pub d: usize,
}

/// Returns `(out [BH, T, D], probs [BH, T, T])` (probs zero above the diagonal).
pub fn forward(q: &[f32], k: &[f32], v: &[f32], g: &AttentionGeometry) -> (Vec<f32>, Vec<f32>) {
    let (t, d) = (g.t, g.d);
    let scale = 1.0 / (d as f32).sqrt();
    let mut out = super::matmul::gemm_output(g.heads_total * t * d);
    let mut probs = super::matmul::gemm_output(g.heads_total * t * t);
    out.par_chunks_mut(t * d)
        .zip(probs.par_chunks_mut(t * t))
        .enumerate()
        .for_each(|(bh, (o, p))| {
            let (qh, kh, vh) = (
                &q[bh * t * d..][..t * d],
                &k[bh * t * d..][..t * d],
                &v[bh * t * d..][..t * d],
            );
            // S = Q K^T (K read transposed through its strides)
            gemm_serial(p, t, t, d, qh, d, 1, kh, 1, d, false);
            simd::dispatch(CausalSoftmax { p, t, scale });
            // O = P V
            gemm_serial(o, t, d, t, p, t, 1, vh, d, 1, false);
        });
    (out, probs)
}

/// Returns `(dq, dk, dv)` from upstream `dout [BH, T, D]`.
pub fn backward(
    dout: &[f32],
    q: &[f32],
    k: &[f32],
    v: &[f32],
    probs: &[f32],
    g: &AttentionGeometry,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let (t, d) = (g.t, g.d);
    let scale = 1.0 / (d as f32).sqrt();
    let n = g.heads_total * t * d;
    let mut dq = super::matmul::gemm_output(n);
    let mut dk = super::matmul::gemm_output(n);
    let mut dv = super::matmul::gemm_output(n);
    dq.par_chunks_mut(t * d)
        .zip(dk.par_chunks_mut(t * d))
        .zip(dv.par_chunks_mut(t * d))
        .enumerate()
        .for_each(|(bh, ((dqh, dkh), dvh))| {
            let at = bh * t * d;
            let (qh, kh, vh, doh) = (
                &q[at..at + t * d],
                &k[at..at + t * d],
                &v[at..at + t * d],
                &dout[at..at + t * d],
            );
            let ph = &probs[bh * t * t..(bh + 1) * t * t];
            // dV = P^T dO
            gemm_serial(dvh, t, d, t, ph, 1, t, doh, d, 1, false);
            // dP = dO V^T, then dS = P (dP - rowsum(P dP)) * scale in place
            let mut ds = vec![0f32; t * t];
            gemm_serial(&mut ds, t, t, d, doh, d, 1, vh, 1, d, false);
            simd::dispatch(SoftmaxBackward {
                p: ph,
                ds: &mut ds,
                t,
                scale,
            });
            // dQ = dS K ; dK = dS^T Q
            gemm_serial(dqh, t, d, t, &ds, t, 1, kh, d, 1, false);
            gemm_serial(dkh, t, d, t, &ds, 1, t, qh, d, 1, false);
        });
    (dq, dk, dv)
}

/// Row-wise softmax of the scaled scores `[T, T]` in place, keys after the
/// query (j > i) set to probability 0.
struct CausalSoftmax<'a> {
    p: &'a mut [f32],
    t: usize,
    scale: f32,
}

impl simd::Kernel for CausalSoftmax<'_> {
    type Output = ();
    #[inline(always)]
    fn run(self) {
        let CausalSoftmax { p, t, scale } = self;
        for (i, row) in p.chunks_exact_mut(t).enumerate() {
            let (live, masked) = row.split_at_mut(i + 1);
            let max = row_max(live);
            for s in live.iter_mut() {
                *s = exp((*s - max) * scale);
            }
            let inv = 1.0 / sum_slice(live);
            live.iter_mut().for_each(|s| *s *= inv);
            masked.fill(0.0);
        }
    }
}

/// `dS = P ∘ (dP - rowsum(P ∘ dP)) * scale`, in place over `ds` (= dP).
struct SoftmaxBackward<'a> {
    p: &'a [f32],
    ds: &'a mut [f32],
    t: usize,
    scale: f32,
}

impl simd::Kernel for SoftmaxBackward<'_> {
    type Output = ();
    #[inline(always)]
    fn run(self) {
        let SoftmaxBackward { p, ds, t, scale } = self;
        for (p, row) in p.chunks_exact(t).zip(ds.chunks_exact_mut(t)) {
            let dot = dot8(p, row);
            for (r, &pj) in row.iter_mut().zip(p) {
                *r = pj * (*r - dot) * scale;
            }
        }
    }
}

/// Dot product in eight lanes (vectorizes; masked entries of p are 0).
#[inline(always)]
fn dot8(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    acc.iter().sum::<f32>() + tail
}
