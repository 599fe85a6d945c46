//! Gradient clipping by global L2 norm (Pascanu et al. 2013), PyTorch's
//! `clip_grad_norm_`: one scale for all gradients keeps their direction.

use kindling_tensor::{Result, Tensor};
use rayon::prelude::*;

/// Scales every gradient by `max_norm / (norm + 1e-6)` when the global norm
/// exceeds `max_norm`. Returns the norm before clipping.
pub fn clip_grad_norm(params: &[Tensor], max_norm: f32) -> Result<f32> {
    let grads: Vec<Tensor> = params.iter().filter_map(|p| p.grad()).collect();
    // Per-tensor sums in parallel, added in order: the same norm every run.
    let sums = grads
        .par_iter()
        .map(|g| g.sum_squares())
        .collect::<Result<Vec<f64>>>()?;
    let norm = sums.iter().sum::<f64>().sqrt() as f32;
    if norm > max_norm {
        let scale = max_norm / (norm + 1e-6);
        params.par_iter().try_for_each(|p| -> Result<()> {
            if let Some(g) = p.grad() {
                // Accumulated gradients own their buffers: scaled in place.
                let g = g.contiguous()?;
                g.scale_(scale)?;
                p.set_grad(Some(g));
            }
            Ok(())
        })?;
    }
    Ok(norm)
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
