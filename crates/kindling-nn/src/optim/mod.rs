//! Optimizers. Each keeps its state as named tensors so a run can be saved
//! and resumed bit-identically. A parameter's state is keyed by the
//! parameter's name (`adam.m.h.0.attn.c_attn.weight`), so it survives a
//! change in parameter order or a frozen subset; optimizers built from bare
//! tensors name them by position (`adam.m.3`), which is also how
//! checkpoints written before names were used are read.

mod adam;
mod sgd;

pub use adam::{Adam, AdamConfig};
pub use sgd::{Sgd, SgdConfig};

use kindling_tensor::{Result, Tensor};

/// A set of named parameters sharing one weight-decay setting (e.g. no
/// decay on biases, norms and embeddings).
#[derive(Clone)]
pub struct ParamGroup {
    pub params: Vec<(String, Tensor)>,
    pub weight_decay: f32,
}

impl ParamGroup {
    /// Parameters named by their position (`0`, `1`, ...).
    pub fn positional(params: Vec<Tensor>, weight_decay: f32) -> Self {
        ParamGroup {
            params: params
                .into_iter()
                .enumerate()
                .map(|(i, p)| (i.to_string(), p))
                .collect(),
            weight_decay,
        }
    }

    /// Every group's parameters, in order.
    pub fn all(groups: &[ParamGroup]) -> Vec<Tensor> {
        groups
            .iter()
            .flat_map(|g| g.params.iter().map(|(_, p)| p.clone()))
            .collect()
    }

    /// Every group's parameter names, in the order of `all`.
    pub fn names(groups: &[ParamGroup]) -> Vec<String> {
        groups
            .iter()
            .flat_map(|g| g.params.iter().map(|(n, _)| n.clone()))
            .collect()
    }
}

/// The key of each parameter's `kind` state (`adam.m`): by name, or by
/// position when `state` holds none of the named keys (a checkpoint from
/// before state was keyed by name).
pub(crate) fn state_keys(
    state: &std::collections::HashMap<String, Tensor>,
    kind: &str,
    names: &[String],
) -> Vec<String> {
    let named: Vec<String> = names.iter().map(|n| format!("{kind}.{n}")).collect();
    if named.iter().any(|k| state.contains_key(k)) {
        named
    } else {
        (0..names.len()).map(|i| format!("{kind}.{i}")).collect()
    }
}

pub trait Optimizer {
    /// Applies one update from the parameters' current `.grad()`.
    /// Parameters without a gradient are left alone.
    fn step(&mut self) -> Result<()>;
    fn lr(&self) -> f32;
    fn set_lr(&mut self, lr: f32);
    fn params(&self) -> Vec<Tensor>;
    fn zero_grad(&self) {
        self.params().iter().for_each(|p| p.zero_grad());
    }
    /// Optimizer state (moment buffers, step count) for checkpoints.
    fn state(&self) -> Vec<(String, Tensor)>;
    fn load_state(&mut self, state: &std::collections::HashMap<String, Tensor>) -> Result<()>;
}

/// A copy of a state buffer that later in-place steps do not change.
pub(crate) fn state_copy(t: &Tensor) -> Result<Tensor> {
    t.copy()
}

pub(crate) fn load_buffer(
    state: &std::collections::HashMap<String, Tensor>,
    key: &str,
    param: &Tensor,
) -> Result<Option<Tensor>> {
    let len = param.numel();
    match state.get(key) {
        None => Ok(None),
        // A fresh buffer of the parameter's shape, owned by the optimizer.
        Some(t) if t.numel() == len => Ok(Some(Tensor::from_vec(t.to_vec_f32()?, param.shape())?)),
        Some(t) => Err(kindling_tensor::Error::msg(format!(
            "optimizer state `{key}` has {} elements, the parameter has {len}",
            t.numel()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn param(v: &[f32]) -> Tensor {
        let p = Tensor::from_slice(v, &[v.len()])
            .unwrap()
            .requires_grad_(true);
        p.set_grad(Some(Tensor::from_slice(v, &[v.len()]).unwrap()));
        p
    }

    fn state_map(s: Vec<(String, Tensor)>) -> HashMap<String, Tensor> {
        s.into_iter().collect()
    }

    #[test]
    fn adam_state_is_keyed_by_name_and_survives_a_new_parameter_order() {
        let (a, b) = (param(&[1.0, 2.0]), param(&[3.0]));
        let mut opt = Adam::named(
            vec![("a".into(), a.clone()), ("b".into(), b.clone())],
            AdamConfig::adam(0.1),
        );
        opt.step().unwrap();
        let saved = state_map(opt.state());
        assert!(saved.contains_key("adam.m.a") && saved.contains_key("adam.v.b"));
        // The same parameters in the other order, and `a` frozen out.
        let mut reordered = Adam::named(vec![("b".into(), b.clone())], AdamConfig::adam(0.1));
        reordered.load_state(&saved).unwrap();
        let again = state_map(reordered.state());
        for key in ["adam.m.b", "adam.v.b", "adam.step"] {
            assert_eq!(
                again[key].to_vec_f64().unwrap(),
                saved[key].to_vec_f64().unwrap(),
                "{key}"
            );
        }
    }

    #[test]
    fn positional_state_from_older_checkpoints_still_loads() {
        let (a, b) = (param(&[1.0, 2.0]), param(&[3.0]));
        let mut old = Sgd::new(
            vec![a.clone(), b.clone()],
            SgdConfig {
                momentum: 0.9,
                ..SgdConfig::default()
            },
        );
        old.step().unwrap();
        let saved = state_map(old.state());
        assert!(
            saved.contains_key("sgd.momentum.1"),
            "bare tensors are named by position"
        );
        let mut named = Sgd::named(
            vec![("a".into(), a), ("b".into(), b)],
            SgdConfig {
                momentum: 0.9,
                ..SgdConfig::default()
            },
        );
        named.load_state(&saved).unwrap();
        let again = state_map(named.state());
        assert_eq!(
            again["sgd.momentum.b"].to_vec_f64().unwrap(),
            saved["sgd.momentum.1"].to_vec_f64().unwrap()
        );
    }
}
