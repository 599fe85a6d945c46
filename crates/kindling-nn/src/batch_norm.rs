//! Batch normalization of feature maps (Ioffe & Szegedy 2015), PyTorch's
//! `nn.BatchNorm2d`: each channel of `[N, C, H, W]` is normalized over N, H
//! and W, then scaled and shifted by a learned `weight` (γ) and `bias` (β).
//!
//! Training mode normalizes by the batch's own mean and biased variance and
//! keeps running estimates for evaluation: `running ← (1 − momentum) ·
//! running + momentum · batch`, momentum 0.1, with the *unbiased* batch
//! variance, as PyTorch does. Evaluation mode normalizes by the running
//! estimates. `running_mean` and `running_var` are buffers, not parameters:
//! checkpoints save and restore them (`Module::visit_buffers`), optimizers
//! never see them.
//!
//! Why the running estimates are not updated inside `forward`: the
//! training loop runs a batch as several shards on several threads at once,
//! each through the same module. Updating in `forward` would make the
//! estimates depend on which thread came first. Instead each training
//! `forward` records its shard's statistics, and [`BatchNorm2d::update_running_stats`]
//! (called once per step, after the optimizer update) pools them as the
//! statistics of the whole batch and folds them in, the same whatever the
//! thread timing. (Each shard is still *normalized* by its own statistics,
//! as each GPU's replica is in PyTorch's data parallelism without SyncBN.)

use crate::init;
use crate::module::{join_name, Module};
use kindling_tensor::{Error, Result, Tensor};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

/// One training forward's statistics: values per channel, mean, biased variance.
struct BatchStats {
    count: usize,
    mean: Vec<f32>,
    var: Vec<f32>,
}

pub struct BatchNorm2d {
    /// γ, `[C]`, ones at the start.
    pub weight: Tensor,
    /// β, `[C]`, zeros at the start.
    pub bias: Tensor,
    /// Buffer `[C]`, zeros at the start.
    pub running_mean: Tensor,
    /// Buffer `[C]`, ones at the start.
    pub running_var: Tensor,
    pub eps: f32,
    pub momentum: f32,
    training: AtomicBool,
    pending: Mutex<Vec<BatchStats>>,
}

impl BatchNorm2d {
    /// PyTorch's defaults: eps 1e-5, momentum 0.1, training mode.
    pub fn new(channels: usize) -> BatchNorm2d {
        BatchNorm2d {
            weight: init::ones(&[channels]),
            bias: init::zeros(&[channels]),
            running_mean: Tensor::zeros(&[channels]),
            running_var: Tensor::ones(&[channels]),
            eps: 1e-5,
            momentum: 0.1,
            training: AtomicBool::new(true),
            pending: Mutex::new(Vec::new()),
        }
    }

    pub fn channels(&self) -> usize {
        self.weight.numel()
    }

    /// Training mode (batch statistics) or evaluation mode (running ones).
    pub fn set_training(&self, training: bool) {
        self.training.store(training, Ordering::Relaxed);
    }

    pub fn is_training(&self) -> bool {
        self.training.load(Ordering::Relaxed)
    }

    /// Folds the statistics recorded by the training forwards since the
    /// last call into the running estimates, pooled as one batch: with
    /// shards of `n_i` values, mean `m_i` and biased variance `v_i`,
    /// m = Σ n_i m_i / n and v = Σ n_i (v_i + (m_i − m)²) / n; the running
    /// variance takes v · n / (n − 1). Returns whether there was anything
    /// to fold (no training forward since the last call: nothing changes).
    pub fn update_running_stats(&self) -> Result<bool> {
        let mut pending = std::mem::take(
            &mut *self
                .pending
                .lock()
                .map_err(|_| Error::msg("batch norm statistics: lock poisoned"))?,
        );
        if pending.is_empty() {
            return Ok(false);
        }
        // A fixed order, whatever order the threads pushed in, so the sums
        // round the same way every run.
        pending.sort_by(|a, b| {
            (
                a.count,
                a.mean.iter().map(|m| m.to_bits()).collect::<Vec<_>>(),
            )
                .cmp(&(b.count, b.mean.iter().map(|m| m.to_bits()).collect()))
        });
        let c = self.channels();
        let n: f64 = pending.iter().map(|s| s.count as f64).sum();
        let mut mean = vec![0f64; c];
        for s in &pending {
            for (m, &x) in mean.iter_mut().zip(&s.mean) {
                *m += s.count as f64 * x as f64 / n;
            }
        }
        let mut var = vec![0f64; c];
        for s in &pending {
            for ((v, (&sm, &sv)), &m) in var.iter_mut().zip(s.mean.iter().zip(&s.var)).zip(&mean) {
                let d = sm as f64 - m;
                *v += s.count as f64 * (sv as f64 + d * d) / n;
            }
        }
        let unbiased = if n > 1.0 { n / (n - 1.0) } else { 1.0 };
        let k = self.momentum as f64;
        let fold = |running: &Tensor, batch: &[f64], scale: f64| -> Result<()> {
            let old = running.to_vec_f32()?;
            let new: Vec<f32> = old
                .iter()
                .zip(batch)
                .map(|(&r, &b)| ((1.0 - k) * r as f64 + k * b * scale) as f32)
                .collect();
            running.assign(&Tensor::from_vec(new, &[c])?)
        };
        fold(&self.running_mean, &mean, 1.0)?;
        fold(&self.running_var, &var, unbiased)?;
        Ok(true)
    }
}

impl Module for BatchNorm2d {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        if !self.is_training() {
            return x.batch_norm_eval(
                &self.weight,
                &self.bias,
                &self.running_mean,
                &self.running_var,
                self.eps,
            );
        }
        let (y, mean, var) = x.batch_norm_train(&self.weight, &self.bias, self.eps)?;
        let stats = BatchStats {
            count: x.numel() / self.channels().max(1),
            mean: mean.to_vec_f32()?,
            var: var.to_vec_f32()?,
        };
        self.pending
            .lock()
            .map_err(|_| Error::msg("batch norm statistics: lock poisoned"))?
            .push(stats);
        Ok(y)
    }

    fn visit_parameters(&self, prefix: &str, f: &mut dyn FnMut(String, &Tensor)) {
        f(join_name(prefix, "weight"), &self.weight);
        f(join_name(prefix, "bias"), &self.bias);
    }

    fn visit_buffers(&self, prefix: &str, f: &mut dyn FnMut(String, &Tensor)) {
        f(join_name(prefix, "running_mean"), &self.running_mean);
        f(join_name(prefix, "running_var"), &self.running_var);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kindling_tensor::Rng;

    fn close(a: &[f32], b: &[f32], tol: f32) -> bool {
        a.len() == b.len() && a.iter().zip(b).all(|(x, y)| (x - y).abs() <= tol)
    }

    #[test]
    fn training_normalizes_each_channel_and_evaluation_uses_running_stats() {
        let bn = BatchNorm2d::new(3);
        let x = Tensor::randn(&[4, 3, 5, 5], 2.0, 3.0, &mut Rng::new(1));
        let y = bn.forward(&x).unwrap();
        // Each output channel: mean 0, biased variance 1 (γ = 1, β = 0).
        let (mean, var) = {
            let (_, m, v) = y.batch_norm_train(&bn.weight, &bn.bias, 0.0).unwrap();
            (m.to_vec_f32().unwrap(), v.to_vec_f32().unwrap())
        };
        assert!(close(&mean, &[0.0; 3], 1e-5), "{mean:?}");
        assert!(close(&var, &[1.0; 3], 1e-3), "{var:?}");
        // Nothing folded in until asked.
        assert_eq!(bn.running_mean.to_vec_f32().unwrap(), vec![0.0; 3]);
        assert!(bn.update_running_stats().unwrap());
        assert!(!bn.update_running_stats().unwrap(), "folded once only");
        let (_, m, v) = x.batch_norm_train(&bn.weight, &bn.bias, 0.0).unwrap();
        let n = 4.0 * 25.0;
        let want_mean: Vec<f32> = m.to_vec_f32().unwrap().iter().map(|m| 0.1 * m).collect();
        let want_var: Vec<f32> = v
            .to_vec_f32()
            .unwrap()
            .iter()
            .map(|v| 0.9 + 0.1 * v * n / (n - 1.0))
            .collect();
        assert!(close(
            &bn.running_mean.to_vec_f32().unwrap(),
            &want_mean,
            1e-5
        ));
        assert!(close(
            &bn.running_var.to_vec_f32().unwrap(),
            &want_var,
            1e-4
        ));

        // Evaluation: (x - running_mean) / sqrt(running_var + eps), and no
        // statistics recorded.
        bn.set_training(false);
        let e = bn.forward(&x).unwrap().to_vec_f32().unwrap();
        let xs = x.to_vec_f32().unwrap();
        let (rm, rv) = (
            bn.running_mean.to_vec_f32().unwrap(),
            bn.running_var.to_vec_f32().unwrap(),
        );
        let want: Vec<f32> = xs
            .iter()
            .enumerate()
            .map(|(i, v)| {
                let c = (i / 25) % 3;
                (v - rm[c]) / (rv[c] + 1e-5).sqrt()
            })
            .collect();
        assert!(close(&e, &want, 1e-5));
        assert!(!bn.update_running_stats().unwrap());
    }

    #[test]
    fn shards_pool_into_the_whole_batch_statistics() {
        // Two halves through the module (as two shards would go) leave the
        // running estimates the whole batch leaves.
        let x = Tensor::randn(&[6, 2, 3, 3], -1.0, 2.0, &mut Rng::new(2));
        let whole = BatchNorm2d::new(2);
        whole.forward(&x).unwrap();
        whole.update_running_stats().unwrap();
        let halves = BatchNorm2d::new(2);
        halves.forward(&x.narrow(0, 3, 3).unwrap()).unwrap();
        halves.forward(&x.narrow(0, 0, 3).unwrap()).unwrap();
        halves.update_running_stats().unwrap();
        for (a, b) in [
            (&whole.running_mean, &halves.running_mean),
            (&whole.running_var, &halves.running_var),
        ] {
            assert!(close(
                &a.to_vec_f32().unwrap(),
                &b.to_vec_f32().unwrap(),
                1e-5
            ));
        }
    }

    #[test]
    fn running_stats_are_buffers_not_parameters() {
        let bn = BatchNorm2d::new(4);
        let params: Vec<String> = bn.named_parameters().into_iter().map(|(n, _)| n).collect();
        let buffers: Vec<String> = bn.named_buffers().into_iter().map(|(n, _)| n).collect();
        assert_eq!(params, ["weight", "bias"]);
        assert_eq!(buffers, ["running_mean", "running_var"]);
        assert!(bn.named_trainable_parameters().len() == 2);
        assert!(!bn.running_mean.requires_grad() && !bn.running_var.requires_grad());
    }
}
