//! Layer normalization (Ba et al. 2016) over the last dim, with a fused CPU
//! kernel for forward and backward.

use crate::cpu::layer_norm;
use crate::{CpuStorage, Error, Result, Tensor};

impl Tensor {
    /// `(x - mean) / sqrt(var + eps) * weight + bias` over the last dim, with
    /// the biased variance, as in PyTorch.
    pub fn layer_norm(&self, weight: &Tensor, bias: &Tensor, eps: f32) -> Result<Tensor> {
        let n = *self
            .shape()
            .last()
            .ok_or_else(|| Error::shape("layer_norm", "input needs a last dim"))?;
        if weight.shape() != [n] || bias.shape() != [n] {
            return Err(Error::shape(
                "layer_norm",
                format!(
                    "weight {:?} and bias {:?} must be [{n}]",
                    weight.shape(),
                    bias.shape()
                ),
            ));
        }
        // The input is kept (not copied) for backward.
        let x = self.detach().contiguous()?;
        let (wv, bv) = (weight.to_vec_f32()?, bias.to_vec_f32()?);
        let (y, mean, rstd) = x.with_f32(|xv| layer_norm::forward(xv, &wv, &bv, n, eps))?;
        let shape = self.shape().to_vec();
        Ok(Tensor::from_op(
            CpuStorage::F32(y),
            &shape.clone(),
            "layer_norm",
            &[self, weight, bias],
            move |g| {
                let (dx, dw, db) = g.with_f32(|dy| {
                    x.with_f32(|xv| layer_norm::backward(dy, xv, &wv, &mean, &rstd, n))
                })??;
                Ok(vec![
                    Some(Tensor::from_vec(dx, &shape)?),
                    Some(Tensor::from_vec(dw, &[n])?),
                    Some(Tensor::from_vec(db, &[n])?),
                ])
            },
        ))
    }
}
