//! Adam (Kingma & Ba 2015) with L2 weight decay, and AdamW (Loshchilov &
//! Hutter 2019) with decoupled weight decay `p *= 1 - lr*wd`. The update is
//! written in PyTorch's form so results agree to rounding:
//! p -= lr/(1-b1^t) * m / (sqrt(v)/sqrt(1-b2^t) + eps).

use super::{load_buffer, state_tensor, with_param_and_grad, Optimizer, ParamGroup};
use kindling_tensor::{Result, Tensor};
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
    m: Vec<Vec<f32>>,
    v: Vec<Vec<f32>>,
}

impl Adam {
    pub fn new(params: Vec<Tensor>, config: AdamConfig) -> Self {
        let groups = vec![ParamGroup {
            params,
            weight_decay: config.weight_decay,
        }];
        Self::with_groups(groups, config)
    }

    pub fn with_groups(groups: Vec<ParamGroup>, config: AdamConfig) -> Self {
        let sizes: Vec<usize> = groups
            .iter()
            .flat_map(|g| g.params.iter().map(|p| p.numel()))
            .collect();
        Adam {
            groups,
            config,
            step: 0,
            m: sizes.iter().map(|&n| vec![0.0; n]).collect(),
            v: sizes.iter().map(|&n| vec![0.0; n]).collect(),
        }
    }

    pub fn steps_taken(&self) -> u64 {
        self.step
    }
}

impl Optimizer for Adam {
    fn step(&mut self) -> Result<()> {
        self.step += 1;
        let AdamConfig {
            lr,
            beta1,
            beta2,
            eps,
            decoupled,
            ..
        } = self.config;
        let t = self.step as i32;
        let bc1 = 1.0 - beta1.powi(t);
        let bc2_sqrt = (1.0 - beta2.powi(t)).sqrt();
        let step_size = lr / bc1;
        let mut i = 0;
        for group in &self.groups {
            let wd = group.weight_decay;
            for p in &group.params {
                let (m, v) = (&mut self.m[i], &mut self.v[i]);
                i += 1;
                with_param_and_grad(p, |pv, gv| {
                    for (((w, &g), m), v) in
                        pv.iter_mut().zip(gv).zip(m.iter_mut()).zip(v.iter_mut())
                    {
                        let g = if decoupled {
                            *w *= 1.0 - lr * wd;
                            g
                        } else {
                            g + wd * *w
                        };
                        *m = beta1 * *m + (1.0 - beta1) * g;
                        *v = beta2 * *v + (1.0 - beta2) * g * g;
                        *w -= step_size * *m / (v.sqrt() / bc2_sqrt + eps);
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
        self.groups
            .iter()
            .flat_map(|g| g.params.iter().cloned())
            .collect()
    }

    fn state(&self) -> Vec<(String, Tensor)> {
        let params = self.params();
        let mut out = vec![(
            "adam.step".to_string(),
            Tensor::from_vec_i64(vec![self.step as i64], &[]).expect("one element"),
        )];
        for (i, p) in params.iter().enumerate() {
            if let Ok(t) = state_tensor(&self.m[i], p.shape()) {
                out.push((format!("adam.m.{i}"), t));
            }
            if let Ok(t) = state_tensor(&self.v[i], p.shape()) {
                out.push((format!("adam.v.{i}"), t));
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
        for (i, p) in self.params().iter().enumerate() {
            if let Some(m) = load_buffer(state, &format!("adam.m.{i}"), p.numel())? {
                self.m[i] = m;
            }
            if let Some(v) = load_buffer(state, &format!("adam.v.{i}"), p.numel())? {
                self.v[i] = v;
            }
        }
        Ok(())
    }
}
