//! Inverted dropout (Srivastava et al. 2014): in training, zero each element
//! with probability p and scale the rest by 1/(1-p), so evaluation needs no
//! rescaling.

use crate::{Error, Result, Rng, Tensor};

impl Tensor {
    pub fn dropout(&self, p: f32, train: bool, rng: &mut Rng) -> Result<Tensor> {
        if !(0.0..1.0).contains(&p) {
            return Err(Error::msg(format!(
                "dropout: probability {p} must be in [0, 1)"
            )));
        }
        if !train || p == 0.0 {
            return Ok(self.clone());
        }
        let keep = 1.0 / (1.0 - p);
        let mask: Vec<f32> = (0..self.numel())
            .map(|_| if rng.uniform() < p { 0.0 } else { keep })
            .collect();
        self.mul(&Tensor::from_vec(mask, self.shape())?)
    }
}
