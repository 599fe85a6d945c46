//! Layer normalization (Ba et al. 2016), RMSNorm and rotary embedding over
//! the last dims, each a fused backend kernel forward and backward.

use crate::{Error, Result, Tensor};

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
        let (w, b) = (weight.detach(), bias.detach());
        let (y, mean, rstd) = self.backend().layer_norm(&x, &w, &b, eps)?;
        let rows = x.numel() / n.max(1);
        let (mean, rstd) = (
            Tensor::from_kernel(mean, &[rows])?,
            Tensor::from_kernel(rstd, &[rows])?,
        );
        let shape = self.shape().to_vec();
        Ok(Tensor::from_op(
            y,
            &shape.clone(),
            "layer_norm",
            &[self, weight, bias],
            move |g| {
                let g = g.contiguous()?;
                let (dx, dw, db) = g.backend().layer_norm_backward(&g, &x, &w, &mean, &rstd)?;
                Ok(vec![
                    Some(Tensor::from_kernel(dx, &shape)?),
                    Some(Tensor::from_kernel(dw, &[n])?),
                    Some(Tensor::from_kernel(db, &[n])?),
                ])
            },
        ))
    }
}

impl Tensor {
    /// RMSNorm over the last dim: `x / sqrt(mean(x²) + eps) * weight`
    /// (Zhang & Sennrich 2019; LLaMA's norm). Computed in f32 as Hugging
    /// Face's `LlamaRMSNorm` does.
    pub fn rms_norm(&self, weight: &Tensor, eps: f32) -> Result<Tensor> {
        let n = *self
            .shape()
            .last()
            .ok_or_else(|| Error::shape("rms_norm", "input needs a last dim"))?;
        if weight.shape() != [n] || n == 0 {
            return Err(Error::shape(
                "rms_norm",
                format!("weight {:?} must be [{n}], n at least 1", weight.shape()),
            ));
        }
        let x = self.detach().contiguous()?;
        let w = weight.detach();
        let (y, rstd) = self.backend().rms_norm(&x, &w, eps)?;
        let rstd = Tensor::from_kernel(rstd, &[x.numel() / n])?;
        let shape = self.shape().to_vec();
        Ok(Tensor::from_op(
            y,
            &shape.clone(),
            "rms_norm",
            &[self, weight],
            move |g| {
                let g = g.contiguous()?;
                let (dx, dw) = g.backend().rms_norm_backward(&g, &x, &w, &rstd)?;
                Ok(vec![
                    Some(Tensor::from_kernel(dx, &shape)?),
                    Some(Tensor::from_kernel(dw, &[n])?),
                ])
            },
        ))
    }

    /// Rotary position embedding (Su et al. 2021) in the "rotate half"
    /// layout Hugging Face's LLaMA uses: `self` is `[B, T, H, D]`, and for
    /// each position the pair (x[i], x[i + D/2]) is rotated by the angle
    /// `cos/sin[t, i]` (`cos`, `sin` are `[T, D/2]`). Its backward is the
    /// rotation by the opposite angle.
    pub fn rope(&self, cos: &Tensor, sin: &Tensor) -> Result<Tensor> {
        let s = self.shape().to_vec();
        if s.len() != 4
            || !s[3].is_multiple_of(2)
            || cos.shape() != [s[1], s[3] / 2]
            || sin.shape() != cos.shape()
        {
            return Err(Error::shape(
                "rope",
                format!(
                    "x {s:?} must be [B, T, H, D] with D even, cos/sin [T, D/2], got {:?} and {:?}",
                    cos.shape(),
                    sin.shape()
                ),
            ));
        }
        let (cos, sin) = (cos.detach(), sin.detach());
        let y = self
            .backend()
            .rope(&self.detach().contiguous()?, &cos, &sin, 1.0)?;
        let shape = self.shape().to_vec();
        Ok(Tensor::from_op(
            y,
            &shape.clone(),
            "rope",
            &[self],
            move |g| {
                let g = g.contiguous()?;
                let dx = g.backend().rope(&g, &cos, &sin, -1.0)?;
                Ok(vec![Some(Tensor::from_kernel(dx, &shape)?)])
            },
        ))
    }
}
