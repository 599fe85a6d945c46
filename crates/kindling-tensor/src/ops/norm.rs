//! Layer normalization (Ba et al. 2016), RMSNorm and rotary embedding over
//! the last dims, and batch normalization over all but the channel dim,
//! each a fused backend kernel forward and backward.

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
    /// Batch normalization in training mode (Ioffe & Szegedy 2015): each
    /// channel of `[N, C, ..]` is normalized by its own mean and biased
    /// variance over N and the remaining dims, then scaled by `weight` and
    /// shifted by `bias` (`[C]` each), as PyTorch's `F.batch_norm(...,
    /// training=True)`. Returns `(y, mean, var)`: the batch's statistics
    /// (no graph; `var` biased) for the caller's running estimates. The
    /// backward treats mean and variance as functions of the input.
    pub fn batch_norm_train(
        &self,
        weight: &Tensor,
        bias: &Tensor,
        eps: f32,
    ) -> Result<(Tensor, Tensor, Tensor)> {
        let c = self.batch_norm_channels(weight, bias)?;
        if self.numel() / c.max(1) < 2 {
            return Err(Error::shape(
                "batch_norm",
                format!(
                    "training needs more than one value per channel, input is {:?}",
                    self.shape()
                ),
            ));
        }
        let x = self.detach().contiguous()?;
        let (mean, var) = self.backend().batch_norm_stats(&x, c)?;
        let (mean, var) = (
            Tensor::from_kernel(mean, &[c])?,
            Tensor::from_kernel(var, &[c])?,
        );
        let y = self.batch_norm_with(x, weight, bias, &mean, &var, eps, true)?;
        Ok((y, mean, var))
    }

    /// Batch normalization with given statistics (evaluation mode: the
    /// running mean and variance, `[C]` each), as PyTorch's
    /// `F.batch_norm(..., training=False)`. The statistics are constants
    /// for the backward.
    pub fn batch_norm_eval(
        &self,
        weight: &Tensor,
        bias: &Tensor,
        mean: &Tensor,
        var: &Tensor,
        eps: f32,
    ) -> Result<Tensor> {
        let c = self.batch_norm_channels(weight, bias)?;
        if mean.shape() != [c] || var.shape() != [c] {
            return Err(Error::shape(
                "batch_norm",
                format!(
                    "running mean {:?} and variance {:?} must be [{c}]",
                    mean.shape(),
                    var.shape()
                ),
            ));
        }
        let x = self.detach().contiguous()?;
        self.batch_norm_with(x, weight, bias, &mean.detach(), &var.detach(), eps, false)
    }

    /// C of an `[N, C, ..]` input, checked against `weight` and `bias`.
    fn batch_norm_channels(&self, weight: &Tensor, bias: &Tensor) -> Result<usize> {
        let c = match self.shape() {
            [_, c, ..] => *c,
            s => {
                return Err(Error::shape(
                    "batch_norm",
                    format!("input must be [N, C, ..], got {s:?}"),
                ))
            }
        };
        if weight.shape() != [c] || bias.shape() != [c] {
            return Err(Error::shape(
                "batch_norm",
                format!(
                    "weight {:?} and bias {:?} must be [{c}]",
                    weight.shape(),
                    bias.shape()
                ),
            ));
        }
        Ok(c)
    }

    /// The normalization itself with `mean` and `var` given; `x` is the
    /// contiguous input kept for the backward.
    #[allow(clippy::too_many_arguments)]
    fn batch_norm_with(
        &self,
        x: Tensor,
        weight: &Tensor,
        bias: &Tensor,
        mean: &Tensor,
        var: &Tensor,
        eps: f32,
        batch_stats: bool,
    ) -> Result<Tensor> {
        let invstd: Vec<f32> = var
            .to_vec_f32()?
            .iter()
            .map(|v| 1.0 / (v + eps).sqrt())
            .collect();
        let c = invstd.len();
        let invstd = Tensor::from_vec(invstd, &[c])?;
        let (w, b, mean) = (weight.detach(), bias.detach(), mean.clone());
        let y = self
            .backend()
            .batch_norm_apply(&x, &w, &b, &mean, &invstd)?;
        let shape = self.shape().to_vec();
        Ok(Tensor::from_op(
            y,
            &shape.clone(),
            "batch_norm",
            &[self, weight, bias],
            move |g| {
                let g = g.contiguous()?;
                let (dx, dw, db) =
                    g.backend()
                        .batch_norm_backward(&g, &x, &w, &mean, &invstd, batch_stats)?;
                Ok(vec![
                    Some(Tensor::from_kernel(dx, &shape)?),
                    Some(Tensor::from_kernel(dw, &[c])?),
                    Some(Tensor::from_kernel(db, &[c])?),
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
