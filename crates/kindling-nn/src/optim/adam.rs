//! Adam (Kingma & Ba 2015) with L2 weight decay, and AdamW (Loshchilov &
//! Hutter 2019) with decoupled weight decay `p *= 1 - lr*wd`. The update is
//! written in PyTorch's form so results agree to rounding:
//! p -= lr/(1-b1^t) * m / (sqrt(v)/sqrt(1-b2^t) + eps).

use super::{load_buffer, state_keys, state_tensor, with_param_and_grad, Optimizer, ParamGroup};
use kindling_tensor::simd;
use kindling_tensor::{Result, Tensor};
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
    m: Vec<Vec<f32>>,
    v: Vec<Vec<f32>>,
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
        let sizes: Vec<usize> = groups
            .iter()
            .flat_map(|g| g.params.iter().map(|(_, p)| p.numel()))
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
        let c = self.config;
        let t = self.step as i32;
        let step = AdamStep {
            c,
            bc2_sqrt: (1.0 - c.beta2.powi(t)).sqrt(),
            step_size: c.lr / (1.0 - c.beta1.powi(t)),
            weight_decay: 0.0,
        };
        let jobs: Vec<(&Tensor, f32)> = self
            .groups
            .iter()
            .flat_map(|g| g.params.iter().map(move |(_, p)| (p, g.weight_decay)))
            .collect();
        // Parameters are independent: spread them over the threads.
        jobs.par_iter()
            .zip(self.m.par_iter_mut().zip(self.v.par_iter_mut()))
            .try_for_each(|(&(p, weight_decay), (m, v))| {
                with_param_and_grad(p, |w, g| {
                    simd::dispatch(AdamUpdate {
                        h: AdamStep {
                            weight_decay,
                            ..step
                        },
                        w,
                        g,
                        m,
                        v,
                    })
                })
                .map(|_| ())
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
        for (i, (name, p)) in params.enumerate() {
            if let Ok(t) = state_tensor(&self.m[i], p.shape()) {
                out.push((format!("adam.m.{name}"), t));
            }
            if let Ok(t) = state_tensor(&self.v[i], p.shape()) {
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
            if let Some(m) = load_buffer(state, &m_keys[i], p.numel())? {
                self.m[i] = m;
            }
            if let Some(v) = load_buffer(state, &v_keys[i], p.numel())? {
                self.v[i] = v;
            }
        }
        Ok(())
    }
}

/// The scalars of one Adam step for one parameter.
#[derive(Clone, Copy)]
struct AdamStep {
    c: AdamConfig,
    bc2_sqrt: f32,
    step_size: f32,
    weight_decay: f32,
}

/// The elementwise update, compiled for the CPU's widest vectors. The same
/// operations in the same order at every width, so results do not depend on
/// the CPU.
struct AdamUpdate<'a> {
    h: AdamStep,
    w: &'a mut [f32],
    g: &'a [f32],
    m: &'a mut [f32],
    v: &'a mut [f32],
}

impl simd::Kernel for AdamUpdate<'_> {
    type Output = ();
    #[inline(always)]
    fn run(self) {
        let AdamUpdate { h, w, g, m, v } = self;
        let n = w.len();
        assert!(g.len() == n && m.len() == n && v.len() == n);
        let (b1, b2, wd) = (h.c.beta1, h.c.beta2, h.weight_decay);
        let moments = |w: &mut f32, g: f32, m: &mut f32, v: &mut f32| {
            *m = b1 * *m + (1.0 - b1) * g;
            *v = b2 * *v + (1.0 - b2) * g * g;
            *w -= h.step_size * *m / (v.sqrt() / h.bc2_sqrt + h.c.eps);
        };
        if h.c.decoupled {
            let shrink = 1.0 - h.c.lr * wd;
            for (((w, &g), m), v) in w.iter_mut().zip(g).zip(m.iter_mut()).zip(v.iter_mut()) {
                *w *= shrink;
                moments(w, g, m, v);
            }
        } else {
            for (((w, &g), m), v) in w.iter_mut().zip(g).zip(m.iter_mut()).zip(v.iter_mut()) {
                let g = g + wd * *w;
                moments(w, g, m, v);
            }
        }
    }
}
