//! Adam (Kingma & Ba 2015) with L2 weight decay, and AdamW (Loshchilov &
//! Hutter 2019) with decoupled weight decay `p *= 1 - lr*wd`. The update is
//! written in PyTorch's form so results agree to rounding:
//! p -= lr/(1-b1^t) * m / (sqrt(v)/sqrt(1-b2^t) + eps).

use super::{load_buffer, state_copy, state_keys, Optimizer, ParamGroup};
use kindling_tensor::{adam_update_, AdamStep, Result, Tensor};
use rayon::prelude::*;
use std::collections::HashMap;

#[derive(Clone, Copy, Debug)]
pub struct AdamConfig {
    pub lr: f32,
    pub beta1: f32,
    pub beta2: f32,
    pub eps: f32,
    pub weight_decay: f32,
    /// true: AdamW's decoupled decay; false: Adam's L2 term in the gradient.
    pub decoupled: bool,
}

impl AdamConfig {
    pub fn adam(lr: f32) -> Self {
        AdamConfig {
            lr,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
            decoupled: false,
        }
    }
    pub fn adamw(lr: f32, weight_decay: f32) -> Self {
        AdamConfig {
            weight_decay,
            decoupled: true,
            ..Self::adam(lr)
        }
    }
}

pub struct Adam {
    groups: Vec<ParamGroup>,
    config: AdamConfig,
    step: u64,
    /// First and second moments, one tensor per parameter in group order.
    m: Vec<Tensor>,
    v: Vec<Tensor>,
}

impl Adam {
    /// One group, the parameters named by position.
    pub fn new(params: Vec<Tensor>, config: AdamConfig) -> Self {
        let groups = vec![ParamGroup::positional(params, config.weight_decay)];
        Self::with_groups(groups, config)
    }

    /// One group of named parameters (`Module::named_trainable_parameters`).
    pub fn named(params: Vec<(String, Tensor)>, config: AdamConfig) -> Self {
        let groups = vec![ParamGroup {
            params,
            weight_decay: config.weight_decay,
        }];
        Self::with_groups(groups, config)
    }

    pub fn with_groups(groups: Vec<ParamGroup>, config: AdamConfig) -> Self {
        let zeros = || -> Vec<Tensor> {
            ParamGroup::all(&groups)
                .iter()
                .map(|p| Tensor::zeros(p.shape()))
                .collect()
        };
        let (m, v) = (zeros(), zeros());
        Adam {
            groups,
            config,
            step: 0,
            m,
            v,
        }
    }

    pub fn steps_taken(&self) -> u64 {
        self.step
    }
}

impl Optimizer for Adam {
    fn step(&mut self) -> Result<()> {
        self.step += 1;
        let c = self.config;
        let t = self.step as i32;
        let step = AdamStep {
            lr: c.lr,
            beta1: c.beta1,
            beta2: c.beta2,
            eps: c.eps,
            weight_decay: 0.0,
            decoupled: c.decoupled,
            bc2_sqrt: (1.0 - c.beta2.powi(t)).sqrt(),
            step_size: c.lr / (1.0 - c.beta1.powi(t)),
        };
        let jobs: Vec<(&Tensor, f32)> = self
            .groups
            .iter()
            .flat_map(|g| g.params.iter().map(move |(_, p)| (p, g.weight_decay)))
            .collect();
        // Parameters are independent: spread them over the threads.
        jobs.par_iter()
            .zip(self.m.par_iter().zip(self.v.par_iter()))
            .try_for_each(|(&(p, weight_decay), (m, v))| match p.grad() {
                None => Ok(()),
                Some(g) => adam_update_(
                    p,
                    &g,
                    m,
                    v,
                    &AdamStep {
                        weight_decay,
                        ..step
                    },
                ),
            })
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
        let mut out = vec![(
            "adam.step".to_string(),
            Tensor::from_vec_i64(vec![self.step as i64], &[]).expect("one element"),
        )];
        let params = self.groups.iter().flat_map(|g| g.params.iter());
        for (i, (name, _)) in params.enumerate() {
            if let Ok(t) = state_copy(&self.m[i]) {
                out.push((format!("adam.m.{name}"), t));
            }
            if let Ok(t) = state_copy(&self.v[i]) {
                out.push((format!("adam.v.{name}"), t));
            }
        }
        out
    }

    fn load_state(&mut self, state: &HashMap<String, Tensor>) -> Result<()> {
        if let Some(s) = state.get("adam.step") {
            self.step = *s.to_vec_i64()?.first().ok_or_else(|| {
                kindling_tensor::Error::msg("optimizer state `adam.step` is empty")
            })? as u64;
        }
        let names = ParamGroup::names(&self.groups);
        let (m_keys, v_keys) = (
            state_keys(state, "adam.m", &names),
            state_keys(state, "adam.v", &names),
        );
        for (i, p) in self.params().iter().enumerate() {
            if let Some(m) = load_buffer(state, &m_keys[i], p)? {
                self.m[i] = m;
            }
            if let Some(v) = load_buffer(state, &v_keys[i], p)? {
                self.v[i] = v;
            }
        }
        Ok(())
    }
}
