//! Stochastic gradient descent with momentum, Nesterov momentum and L2
//! weight decay, step for step as PyTorch's `torch.optim.SGD`:
//! g += wd*p; buf = mu*buf + g (buf = g on the first step);
//! g = nesterov ? g + mu*buf : buf; p -= lr*g.

use super::{load_buffer, state_copy, state_keys, Optimizer, ParamGroup};
use kindling_tensor::{sgd_update_, Result, SgdStep, Tensor};
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
    buffers: Vec<Option<Tensor>>,
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
            for (_, p) in &group.params {
                let buf = &mut self.buffers[i];
                i += 1;
                let Some(g) = p.grad() else { continue };
                let first = momentum != 0.0 && buf.is_none();
                if first {
                    *buf = Some(Tensor::zeros(p.shape()));
                }
                let h = SgdStep {
                    lr,
                    momentum,
                    nesterov,
                    weight_decay: group.weight_decay,
                    first,
                };
                let b = if momentum == 0.0 { None } else { buf.as_ref() };
                sgd_update_(p, &g, b, &h)?;
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
            .filter_map(|((name, _), b)| {
                Some((
                    format!("sgd.momentum.{name}"),
                    state_copy(b.as_ref()?).ok()?,
                ))
            })
            .collect()
    }

    fn load_state(&mut self, state: &HashMap<String, Tensor>) -> Result<()> {
        let keys = state_keys(state, "sgd.momentum", &ParamGroup::names(&self.groups));
        for (i, p) in self.params().iter().enumerate() {
            self.buffers[i] = load_buffer(state, &keys[i], p)?;
        }
        Ok(())
    }
}
