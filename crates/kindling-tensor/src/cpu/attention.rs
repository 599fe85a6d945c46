//! Causal scaled dot-product attention for `[B, H, T, D]` q, k, v, one
//! (batch, head) pair per task. Scores are computed only for keys j <= i
//! (the lower triangle), so the mask is never materialized; the softmax
//! probabilities are kept for backward and for drawing attention maps.

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
    let mut out = vec![0f32; g.heads_total * t * d];
    let mut probs = vec![0f32; g.heads_total * t * t];
    out.par_chunks_mut(t * d)
        .zip(probs.par_chunks_mut(t * t))
        .enumerate()
        .for_each(|(bh, (o, p))| {
            let (qh, kh, vh) = (
                &q[bh * t * d..][..t * d],
                &k[bh * t * d..][..t * d],
                &v[bh * t * d..][..t * d],
            );
            for i in 0..t {
                let qi = &qh[i * d..(i + 1) * d];
                let row = &mut p[i * t..i * t + i + 1];
                let mut max = f32::NEG_INFINITY;
                for (j, s) in row.iter_mut().enumerate() {
                    let kj = &kh[j * d..(j + 1) * d];
                    *s = qi.iter().zip(kj).map(|(a, b)| a * b).sum::<f32>() * scale;
                    max = max.max(*s);
                }
                let mut sum = 0f32;
                for s in row.iter_mut() {
                    *s = (*s - max).exp();
                    sum += *s;
                }
                let inv = 1.0 / sum;
                let oi = &mut o[i * d..(i + 1) * d];
                for (j, s) in row.iter_mut().enumerate() {
                    *s *= inv;
                    let vj = &vh[j * d..(j + 1) * d];
                    for (x, &y) in oi.iter_mut().zip(vj) {
                        *x += *s * y;
                    }
                }
            }
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
    let (mut dq, mut dk, mut dv) = (vec![0f32; n], vec![0f32; n], vec![0f32; n]);
    dq.par_chunks_mut(t * d)
        .zip(dk.par_chunks_mut(t * d))
        .zip(dv.par_chunks_mut(t * d))
        .enumerate()
        .for_each(|(bh, ((dqh, dkh), dvh))| {
            let at = |s: &[f32]| -> std::ops::Range<usize> {
                bh * s.len() / g.heads_total..(bh + 1) * s.len() / g.heads_total
            };
            let (qh, kh, vh, doh) = (&q[at(q)], &k[at(k)], &v[at(v)], &dout[at(dout)]);
            let ph = &probs[bh * t * t..(bh + 1) * t * t];
            let mut ds = vec![0f32; t];
            for i in 0..t {
                let p = &ph[i * t..i * t + i + 1];
                let doi = &doh[i * d..(i + 1) * d];
                // dP_ij = dO_i · V_j ; dS_ij = P_ij (dP_ij - sum_j P_ij dP_ij)
                let mut dot = 0f32;
                for j in 0..=i {
                    let dp = doi
                        .iter()
                        .zip(&vh[j * d..(j + 1) * d])
                        .map(|(a, b)| a * b)
                        .sum::<f32>();
                    ds[j] = dp;
                    dot += p[j] * dp;
                }
                let qi = &qh[i * d..(i + 1) * d];
                for j in 0..=i {
                    let s = p[j] * (ds[j] - dot) * scale;
                    // dV_j += P_ij dO_i ; dQ_i += dS_ij K_j ; dK_j += dS_ij Q_i
                    let (dvj, dkj) = (&mut dvh[j * d..(j + 1) * d], &mut dkh[j * d..(j + 1) * d]);
                    let kj = &kh[j * d..(j + 1) * d];
                    let dqi = &mut dqh[i * d..(i + 1) * d];
                    for c in 0..d {
                        dvj[c] += p[j] * doi[c];
                        dqi[c] += s * kj[c];
                        dkj[c] += s * qi[c];
                    }
                }
            }
        });
    (dq, dk, dv)
}
