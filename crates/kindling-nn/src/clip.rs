//! Gradient clipping by global L2 norm (Pascanu et al. 2013), PyTorch's
//! `clip_grad_norm_`: one scale for all gradients keeps their direction.

use kindling_tensor::{simd, Result, Tensor};
use rayon::prelude::*;

/// Scales every gradient by `max_norm / (norm + 1e-6)` when the global norm
/// exceeds `max_norm`. Returns the norm before clipping.
pub fn clip_grad_norm(params: &[Tensor], max_norm: f32) -> Result<f32> {
    let grads: Vec<Tensor> = params.iter().filter_map(|p| p.grad()).collect();
    // Per-tensor sums in parallel, added in order: the same norm every run.
    let sums = grads
        .par_iter()
        .map(|g| g.with_f32(|v| simd::dispatch(SumSquares(v))))
        .collect::<Result<Vec<f64>>>()?;
    let norm = sums.iter().sum::<f64>().sqrt() as f32;
    if norm > max_norm {
        let scale = max_norm / (norm + 1e-6);
        params.par_iter().try_for_each(|p| -> Result<()> {
            if let Some(g) = p.grad() {
                let g = g.contiguous()?;
                g.update_f32(|v| v.iter_mut().for_each(|x| *x *= scale))?;
                p.set_grad(Some(g));
            }
            Ok(())
        })?;
    }
    Ok(norm)
}

/// Σ x² in f64, in eight lanes so it vectorizes.
struct SumSquares<'a>(&'a [f32]);

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
            for i in 0..8 {
                acc[i] += c[i] as f64 * c[i] as f64;
            }
        }
        acc.iter().sum::<f64>() + tail
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clipping_rescales_to_the_max_norm_and_keeps_direction() {
        let p = Tensor::zeros(&[2]).requires_grad_(true);
        p.set_grad(Some(Tensor::from_vec(vec![3.0, 4.0], &[2]).unwrap()));
        let norm = clip_grad_norm(std::slice::from_ref(&p), 1.0).unwrap();
        assert!((norm - 5.0).abs() < 1e-6);
        let g = p.grad().unwrap().to_vec_f32().unwrap();
        assert!((g[0] - 0.6).abs() < 1e-5 && (g[1] - 0.8).abs() < 1e-5);
        // Below the threshold nothing changes.
        let norm = clip_grad_norm(std::slice::from_ref(&p), 10.0).unwrap();
        assert!((norm - 1.0).abs() < 1e-5);
    }
}
