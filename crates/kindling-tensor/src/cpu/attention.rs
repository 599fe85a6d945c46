//! Causal scaled dot-product attention for `[B, H, T, D]` q, k, v, one
//! (batch, head) pair per task, each product a small single-threaded GEMM.
//! The causal mask is applied inside the row softmax (keys j > i get
//! probability 0), so no mask tensor exists; the probabilities are kept for
//! backward and for drawing attention maps.

use super::matmul::gemm_serial;
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
            for i in 0..t {
                let row = &mut p[i * t..(i + 1) * t];
                let max = row[..=i].iter().fold(f32::NEG_INFINITY, |m, &s| m.max(s));
                let mut sum = 0f32;
                for s in &mut row[..=i] {
                    *s = ((*s - max) * scale).exp();
                    sum += *s;
                }
                let inv = 1.0 / sum;
                row[..=i].iter_mut().for_each(|s| *s *= inv);
                row[i + 1..].fill(0.0);
            }
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
            for i in 0..t {
                let (p, row) = (&ph[i * t..(i + 1) * t], &mut ds[i * t..(i + 1) * t]);
                let dot: f32 = p[..=i].iter().zip(&row[..=i]).map(|(a, b)| a * b).sum();
                for j in 0..t {
                    row[j] = p[j] * (row[j] - dot) * scale;
                }
            }
            // dQ = dS K ; dK = dS^T Q
            gemm_serial(dqh, t, d, t, &ds, t, 1, kh, d, 1, false);
            gemm_serial(dkh, t, d, t, &ds, 1, t, qh, d, 1, false);
        });
    (dq, dk, dv)
}
