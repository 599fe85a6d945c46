//! Layer normalization (Ba et al. 2016) over the last dim, composed from
//! differentiable ops; a fused kernel can replace it where a benchmark shows
//! it pays.

use crate::{Error, Result, Tensor};

impl Tensor {
    /// `(x - mean) / sqrt(var + eps) * weight + bias` over the last dim, with
    /// the biased variance, as in PyTorch.
    pub fn layer_norm(&self, weight: &Tensor, bias: &Tensor, eps: f32) -> Result<Tensor> {
        let d = *self
            .shape()
            .last()
            .ok_or_else(|| Error::shape("layer_norm", "input needs a last dim"))?;
        if weight.shape() != [d] || bias.shape() != [d] {
            return Err(Error::shape(
                "layer_norm",
                format!(
                    "weight {:?} and bias {:?} must be [{d}]",
                    weight.shape(),
                    bias.shape()
                ),
            ));
        }
        let centered = self.sub(&self.mean(&[-1], true)?)?;
        let var = centered.sqr()?.mean(&[-1], true)?;
        let normed = centered.div(&var.add_scalar(eps)?.sqrt()?)?;
        normed.mul(weight)?.add(bias)
    }
}
