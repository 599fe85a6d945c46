//! Gradient checking by central finite differences. The scalar probed is
//! `sum(f(x) * w)` with a fixed random `w`, so every output element's
//! gradient is tested, not just their sum. Differences are accumulated in
//! f64; the op itself runs in f32, which bounds the attainable accuracy to
//! about `1e-7 / eps` relative, hence the default tolerances.

use crate::{no_grad, Error, Result, Rng, Tensor};

pub struct GradCheck {
    pub eps: f32,
    pub atol: f64,
    pub rtol: f64,
    pub seed: u64,
}

impl Default for GradCheck {
    fn default() -> Self {
        GradCheck {
            eps: 1e-3,
            atol: 2e-3,
            rtol: 1e-2,
            seed: 0,
        }
    }
}

fn weighted_sum(out: &Tensor, w: &[f64]) -> Result<f64> {
    Ok(out.to_vec_f64()?.iter().zip(w).map(|(a, b)| a * b).sum())
}

impl GradCheck {
    /// Compares autograd's gradients of `f` at `inputs` with finite
    /// differences; `Err` names the input, element and both values.
    pub fn check(&self, inputs: &[Tensor], f: impl Fn(&[Tensor]) -> Result<Tensor>) -> Result<()> {
        let leaves: Vec<Tensor> = inputs
            .iter()
            .map(|t| {
                Tensor::from_vec(t.to_vec_f32().unwrap_or_default(), t.shape())
                    .map(|t| t.requires_grad_(true))
            })
            .collect::<Result<_>>()?;
        let out = f(&leaves)?;
        let mut rng = Rng::new(self.seed);
        let w: Vec<f64> = (0..out.numel())
            .map(|_| rng.uniform_range(-1.0, 1.0) as f64)
            .collect();
        let wt = Tensor::from_vec(w.iter().map(|&x| x as f32).collect(), out.shape())?;
        out.mul(&wt)?.sum_all()?.backward()?;

        let _g = no_grad();
        for (i, leaf) in leaves.iter().enumerate() {
            let analytic = leaf
                .grad()
                .map(|g| g.to_vec_f64())
                .transpose()?
                .unwrap_or_else(|| vec![0.0; leaf.numel()]);
            let base = leaf.to_vec_f32()?;
            for j in 0..base.len() {
                let eval = |delta: f32| -> Result<f64> {
                    let mut v = base.clone();
                    v[j] += delta;
                    let mut probe: Vec<Tensor> = leaves.iter().map(|t| t.detach()).collect();
                    probe[i] = Tensor::from_vec(v, leaf.shape())?;
                    weighted_sum(&f(&probe)?, &w)
                };
                // Use the perturbation actually representable in f32.
                let hi = base[j] + self.eps;
                let lo = base[j] - self.eps;
                let numeric = (eval(self.eps)? - eval(-self.eps)?) / (hi as f64 - lo as f64);
                let a = analytic[j];
                if (a - numeric).abs() > self.atol + self.rtol * numeric.abs() {
                    return Err(Error::Autograd(format!(
                        "gradcheck: input {i} element {j}: autograd {a:.6} vs finite difference {numeric:.6}"
                    )));
                }
            }
        }
        Ok(())
    }
}

/// `GradCheck::default().check(inputs, f)`.
pub fn gradcheck(inputs: &[Tensor], f: impl Fn(&[Tensor]) -> Result<Tensor>) -> Result<()> {
    GradCheck::default().check(inputs, f)
}
