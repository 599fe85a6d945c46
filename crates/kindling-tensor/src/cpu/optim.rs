//! Optimizer updates and the squared norm for gradient clipping, on slices.
//! Each is compiled for the CPU's widest vectors through `simd::dispatch`,
//! with the same operations in the same order at every width, so results
//! do not depend on the CPU.

use super::simd;
use crate::ops::optim_update::{AdamStep, SgdStep};

/// The elementwise Adam/AdamW update.
pub struct AdamUpdate<'a> {
    pub h: AdamStep,
    pub w: &'a mut [f32],
    pub g: &'a [f32],
    pub m: &'a mut [f32],
    pub v: &'a mut [f32],
}

impl simd::Kernel for AdamUpdate<'_> {
    type Output = ();
    #[inline(always)]
    fn run(self) {
        let AdamUpdate { h, w, g, m, v } = self;
        let n = w.len();
        assert!(g.len() == n && m.len() == n && v.len() == n);
        let (b1, b2, wd) = (h.beta1, h.beta2, h.weight_decay);
        let moments = |w: &mut f32, g: f32, m: &mut f32, v: &mut f32| {
            *m = b1 * *m + (1.0 - b1) * g;
            *v = b2 * *v + (1.0 - b2) * g * g;
            *w -= h.step_size * *m / (v.sqrt() / h.bc2_sqrt + h.eps);
        };
        if h.decoupled {
            let shrink = 1.0 - h.lr * wd;
            for (((w, &g), m), v) in w.iter_mut().zip(g).zip(m.iter_mut()).zip(v.iter_mut()) {
                *w *= shrink;
                moments(w, g, m, v);
            }
        } else {
            for (((w, &g), m), v) in w.iter_mut().zip(g).zip(m.iter_mut()).zip(v.iter_mut()) {
                let g = g + wd * *w;
                moments(w, g, m, v);
            }
        }
    }
}

/// SGD with optional (Nesterov) momentum; `buf` is empty without momentum.
pub fn sgd_update(h: &SgdStep, w: &mut [f32], g: &[f32], buf: &mut [f32]) {
    let (lr, mu, wd) = (h.lr, h.momentum, h.weight_decay);
    if buf.is_empty() {
        for (w, &g) in w.iter_mut().zip(g) {
            *w -= lr * (g + wd * *w);
        }
        return;
    }
    for ((w, &g), b) in w.iter_mut().zip(g).zip(buf.iter_mut()) {
        let g = g + wd * *w;
        *b = if h.first { g } else { mu * *b + g };
        let d = if h.nesterov { g + mu * *b } else { *b };
        *w -= lr * d;
    }
}

/// Σ x² in f64, in eight lanes so it vectorizes.
pub struct SumSquares<'a>(pub &'a [f32]);

impl simd::Kernel for SumSquares<'_> {
    type Output = f64;
    #[inline(always)]
    fn run(self) -> f64 {
        let mut acc = [0f64; 8];
        let chunks = self.0.chunks_exact(8);
        let tail: f64 = chunks
            .remainder()
            .iter()
            .map(|&x| x as f64 * x as f64)
            .sum();
        for c in chunks {
            for (a, &x) in acc.iter_mut().zip(c) {
                *a += x as f64 * x as f64;
            }
        }
        acc.iter().sum::<f64>() + tail
    }
}
