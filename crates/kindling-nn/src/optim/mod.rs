//! Optimizers. Each keeps its state as named tensors so a run can be saved
//! and resumed bit-identically.

mod adam;
mod sgd;

pub use adam::{Adam, AdamConfig};
pub use sgd::{Sgd, SgdConfig};

use kindling_tensor::{Result, Tensor};

/// A set of parameters sharing one weight-decay setting (e.g. no decay on
/// biases, norms and embeddings).
#[derive(Clone)]
pub struct ParamGroup {
    pub params: Vec<Tensor>,
    pub weight_decay: f32,
}

impl ParamGroup {
    /// Every group's parameters, in order.
    pub fn all(groups: &[ParamGroup]) -> Vec<Tensor> {
        groups
            .iter()
            .flat_map(|g| g.params.iter().cloned())
            .collect()
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

/// Runs `f(param, grad)` over contiguous f32 slices.
pub(crate) fn with_param_and_grad(p: &Tensor, f: impl FnOnce(&mut [f32], &[f32])) -> Result<bool> {
    let Some(g) = p.grad() else { return Ok(false) };
    // Read the gradient out first: holding its lock while write-locking the
    // parameter would deadlock if the two ever shared storage.
    let gv = g.to_vec_f32()?;
    p.update_f32(|pv| f(pv, &gv))?;
    Ok(true)
}

pub(crate) fn state_tensor(buf: &[f32], shape: &[usize]) -> Result<Tensor> {
    Tensor::from_slice(buf, shape)
}

pub(crate) fn load_buffer(
    state: &std::collections::HashMap<String, Tensor>,
    key: &str,
    len: usize,
) -> Result<Option<Vec<f32>>> {
    match state.get(key) {
        None => Ok(None),
        Some(t) if t.numel() == len => Ok(Some(t.to_vec_f32()?)),
        Some(t) => Err(kindling_tensor::Error::msg(format!(
            "optimizer state `{key}` has {} elements, the parameter has {len}",
            t.numel()
        ))),
    }
}
