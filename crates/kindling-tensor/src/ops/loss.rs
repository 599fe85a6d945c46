//! Losses: fused cross-entropy over logits, and mean squared error.

use crate::{Error, Result, Storage, Tensor};

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
        let backend = self.backend();
        let logp = Tensor::from_kernel(backend.log_softmax(&logits)?, logits.shape())?;
        let (total, n_valid) = backend.nll_sum(&logp, &t, ignore_index)?;
        let loss = (total / n_valid as f64) as f32;
        let shape = self.shape().to_vec();
        Ok(Tensor::from_op(
            Storage::from_host_f32(self.device(), vec![loss]),
            &[],
            "cross_entropy",
            &[self],
            move |g| {
                // d loss / d logits = (softmax - onehot) / n_valid, on valid rows.
                let scale = g.item()? / n_valid as f32;
                let d = logp
                    .backend()
                    .cross_entropy_backward(&logp, &t, ignore_index, scale)?;
                debug_assert_eq!(d.len(), rows * c);
                Ok(vec![Some(Tensor::from_kernel(d, &shape)?)])
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
