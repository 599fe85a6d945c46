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
        let wv = weight.to_vec_f32()?;
        let (y, rstd) = x.with_f32(|xv| {
            let rows = xv.len() / n;
            let mut y = vec![0f32; xv.len()];
            let mut rstd = vec![0f32; rows];
            for ((xr, yr), r) in xv.chunks_exact(n).zip(y.chunks_exact_mut(n)).zip(&mut rstd) {
                let ms = xr.iter().map(|v| v * v).sum::<f32>() / n as f32;
                *r = 1.0 / (ms + eps).sqrt();
                for ((yv, xv), w) in yr.iter_mut().zip(xr).zip(&wv) {
                    *yv = w * (xv * *r);
                }
            }
            (y, rstd)
        })?;
        let shape = self.shape().to_vec();
        Ok(Tensor::from_op(
            CpuStorage::F32(y),
            &shape.clone(),
            "rms_norm",
            &[self, weight],
            move |g| {
                // y = w ⊙ x r,  r = (mean x² + eps)^-½:
                // dx = r (w ⊙ dy) − x r³/n · Σ(w ⊙ dy ⊙ x);  dw = Σ_rows dy ⊙ x r.
                let g = g.contiguous()?;
                let (dx, dw) = g.with_f32(|dy| {
                    x.with_f32(|xv| {
                        let mut dx = vec![0f32; xv.len()];
                        let mut dw = vec![0f32; n];
                        for (((dyr, xr), dxr), r) in dy
                            .chunks_exact(n)
                            .zip(xv.chunks_exact(n))
                            .zip(dx.chunks_exact_mut(n))
                            .zip(&rstd)
                        {
                            let mut dot = 0f32;
                            for i in 0..n {
                                dot += wv[i] * dyr[i] * xr[i];
                                dw[i] += dyr[i] * xr[i] * r;
                            }
                            let c = r * r * r * dot / n as f32;
                            for i in 0..n {
                                dxr[i] = r * wv[i] * dyr[i] - c * xr[i];
                            }
                        }
                        (dx, dw)
                    })
                })??;
                Ok(vec![
                    Some(Tensor::from_vec(dx, &shape)?),
                    Some(Tensor::from_vec(dw, &[n])?),
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
        let (c, sn) = (cos.to_vec_f32()?, sin.to_vec_f32()?);
        let rotate = move |x: &[f32], sign: f32| -> Vec<f32> {
            let (t, h, d) = (s[1], s[2], s[3]);
            let half = d / 2;
            let mut y = vec![0f32; x.len()];
            for (bt, (xr, yr)) in x
                .chunks_exact(h * d)
                .zip(y.chunks_exact_mut(h * d))
                .enumerate()
            {
                let pos = bt % t;
                let (cr, sr) = (&c[pos * half..][..half], &sn[pos * half..][..half]);
                for (xh, yh) in xr.chunks_exact(d).zip(yr.chunks_exact_mut(d)) {
                    let (x1, x2) = xh.split_at(half);
                    let (y1, y2) = yh.split_at_mut(half);
                    for i in 0..half {
                        let (cv, sv) = (cr[i], sign * sr[i]);
                        y1[i] = x1[i] * cv - x2[i] * sv;
                        y2[i] = x2[i] * cv + x1[i] * sv;
                    }
                }
            }
            y
        };
        let y = self.contiguous()?.with_f32(|x| rotate(x, 1.0))?;
        let shape = self.shape().to_vec();
        let back = rotate.clone();
        Ok(Tensor::from_op(
            CpuStorage::F32(y),
            &shape.clone(),
            "rope",
            &[self],
            move |g| {
                let dx = g.contiguous()?.with_f32(|dy| back(dy, -1.0))?;
                Ok(vec![Some(Tensor::from_vec(dx, &shape)?)])
            },
        ))
    }
}
