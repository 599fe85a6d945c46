//! Losses: fused cross-entropy over logits, and mean squared error.

use crate::{cpu, CpuStorage, Error, Result, Tensor};

impl Tensor {
    /// Mean cross-entropy of `self` = logits `[..., C]` against i64 class
    /// targets `[...]`, skipping targets equal to `ignore_index` (PyTorch's
    /// default is -100). Log-softmax and the pick are fused: the `[N, C]`
    /// probabilities are never kept for the forward.
    pub fn cross_entropy(&self, targets: &Tensor, ignore_index: Option<i64>) -> Result<Tensor> {
        let c = *self
            .shape()
            .last()
            .ok_or_else(|| Error::shape("cross_entropy", "logits need a class dim"))?;
        if targets.shape() != &self.shape()[..self.rank() - 1] {
            return Err(Error::shape(
                "cross_entropy",
                format!(
                    "logits {:?} need targets of shape {:?}, got {:?}",
                    self.shape(),
                    &self.shape()[..self.rank() - 1],
                    targets.shape()
                ),
            ));
        }
        let t = targets.to_vec_i64()?;
        let rows = t.len();
        let logits = self.detach().contiguous()?;
        let logp = {
            let s = logits.storage();
            let r = logits.layout().contiguous_range().expect("contiguous");
            cpu::softmax::log_softmax(&s.cpu().f32("cross_entropy")?[r], c)
        };
        let mut total = 0f64;
        let mut n_valid = 0usize;
        for (row, &target) in t.iter().enumerate() {
            if Some(target) == ignore_index {
                continue;
            }
            if target < 0 || target as usize >= c {
                return Err(Error::Index {
                    op: "cross_entropy",
                    index: target,
                    size: c,
                });
            }
            total -= logp[row * c + target as usize] as f64;
            n_valid += 1;
        }
        let loss = (total / n_valid as f64) as f32;
        let shape = self.shape().to_vec();
        Ok(Tensor::from_op(
            CpuStorage::F32(vec![loss]),
            &[],
            "cross_entropy",
            &[self],
            move |g| {
                // d loss / d logits = (softmax - onehot) / n_valid, on valid rows.
                let scale = g.item()? / n_valid as f32;
                let mut d =
                    cpu::elementwise::map1(&logp, move |lp: f32| cpu::simd::exp(lp) * scale);
                for (row, &target) in t.iter().enumerate() {
                    let r = &mut d[row * c..(row + 1) * c];
                    if Some(target) == ignore_index {
                        r.fill(0.0);
                    } else {
                        r[target as usize] -= scale;
                    }
                }
                debug_assert_eq!(d.len(), rows * c);
                Ok(vec![Some(Tensor::from_vec(d, &shape)?)])
            },
        ))
    }

    /// Mean squared error, composed from differentiable ops.
    pub fn mse_loss(&self, target: &Tensor) -> Result<Tensor> {
        if self.shape() != target.shape() {
            return Err(Error::shape(
                "mse_loss",
                format!(
                    "prediction {:?} vs target {:?}",
                    self.shape(),
                    target.shape()
                ),
            ));
        }
        self.sub(target)?.sqr()?.mean_all()
    }
}
