//! Stochastic gradient descent with momentum, Nesterov momentum and L2
//! weight decay, step for step as PyTorch's `torch.optim.SGD`:
//! g += wd*p; buf = mu*buf + g (buf = g on the first step);
//! g = nesterov ? g + mu*buf : buf; p -= lr*g.

use super::{load_buffer, state_keys, state_tensor, with_param_and_grad, Optimizer, ParamGroup};
use kindling_tensor::{Result, Tensor};
use std::collections::HashMap;

#[derive(Clone, Copy, Debug)]
pub struct SgdConfig {
    pub lr: f32,
    pub momentum: f32,
    pub nesterov: bool,
    pub weight_decay: f32,
}

impl Default for SgdConfig {
    fn default() -> Self {
        SgdConfig {
            lr: 0.01,
            momentum: 0.0,
            nesterov: false,
            weight_decay: 0.0,
        }
    }
}

pub struct Sgd {
    groups: Vec<ParamGroup>,
    config: SgdConfig,
    /// Momentum buffers, one per parameter in group order (None before the first step).
    buffers: Vec<Option<Vec<f32>>>,
}

impl Sgd {
    /// One group, the parameters named by position.
    pub fn new(params: Vec<Tensor>, config: SgdConfig) -> Self {
        let groups = vec![ParamGroup::positional(params, config.weight_decay)];
        Self::with_groups(groups, config)
    }

    /// One group of named parameters (`Module::named_trainable_parameters`).
    pub fn named(params: Vec<(String, Tensor)>, config: SgdConfig) -> Self {
        let groups = vec![ParamGroup {
            params,
            weight_decay: config.weight_decay,
        }];
        Self::with_groups(groups, config)
    }

    pub fn with_groups(groups: Vec<ParamGroup>, config: SgdConfig) -> Self {
        let n = groups.iter().map(|g| g.params.len()).sum();
        Sgd {
            groups,
            config,
            buffers: vec![None; n],
        }
    }
}

impl Optimizer for Sgd {
    fn step(&mut self) -> Result<()> {
        let SgdConfig {
            lr,
            momentum,
            nesterov,
            ..
        } = self.config;
        let mut i = 0;
        for group in &self.groups {
            let wd = group.weight_decay;
            for (_, p) in &group.params {
                let buf = &mut self.buffers[i];
                i += 1;
                with_param_and_grad(p, |pv, gv| {
                    if momentum == 0.0 {
                        for (w, &g) in pv.iter_mut().zip(gv) {
                            *w -= lr * (g + wd * *w);
                        }
                        return;
                    }
                    let b = buf.get_or_insert_with(Vec::new);
                    let first = b.is_empty();
                    if first {
                        b.resize(pv.len(), 0.0);
                    }
                    for ((w, &g), m) in pv.iter_mut().zip(gv).zip(b.iter_mut()) {
                        let g = g + wd * *w;
                        *m = if first { g } else { momentum * *m + g };
                        let d = if nesterov { g + momentum * *m } else { *m };
                        *w -= lr * d;
                    }
                })?;
            }
        }
        Ok(())
    }

    fn lr(&self) -> f32 {
        self.config.lr
    }
    fn set_lr(&mut self, lr: f32) {
        self.config.lr = lr;
    }
    fn params(&self) -> Vec<Tensor> {
        ParamGroup::all(&self.groups)
    }

    fn state(&self) -> Vec<(String, Tensor)> {
        let params = self.groups.iter().flat_map(|g| g.params.iter());
        params
            .zip(&self.buffers)
            .filter_map(|((name, p), b)| {
                Some((
                    format!("sgd.momentum.{name}"),
                    state_tensor(b.as_ref()?, p.shape()).ok()?,
                ))
            })
            .collect()
    }

    fn load_state(&mut self, state: &HashMap<String, Tensor>) -> Result<()> {
        let keys = state_keys(state, "sgd.momentum", &ParamGroup::names(&self.groups));
        for (i, p) in self.params().iter().enumerate() {
            self.buffers[i] = load_buffer(state, &keys[i], p.numel())?;
        }
        Ok(())
    }
}
