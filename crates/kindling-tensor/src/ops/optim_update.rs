//! In-place updates for optimizers and gradient clipping (and `assign_`,
//! which a KV cache writes its new positions with), in the spirit of
//! PyTorch's fused `_fused_adamw_`: one kernel per parameter changes the
//! parameter and its state buffers where they lie. These are not ops: they
//! never touch the graph, and they need tensors that own their contiguous
//! buffers (parameters, gradients, optimizer state). Optimizers in
//! `kindling-nn` reach the kernels only through these functions.

use crate::{Error, Result, Tensor};

/// The scalars of one Adam/AdamW step for one parameter, in PyTorch's form:
/// `p -= step_size * m / (sqrt(v) / bc2_sqrt + eps)` with
/// `step_size = lr / (1 - beta1^t)` and `bc2_sqrt = sqrt(1 - beta2^t)`.
#[derive(Clone, Copy, Debug)]
pub struct AdamStep {
    pub lr: f32,
    pub beta1: f32,
    pub beta2: f32,
    pub eps: f32,
    pub weight_decay: f32,
    /// true: AdamW's decoupled decay `p *= 1 - lr*wd`; false: Adam's L2
    /// term added to the gradient.
    pub decoupled: bool,
    pub step_size: f32,
    pub bc2_sqrt: f32,
}

/// One step of SGD (PyTorch's `torch.optim.SGD`): `g += wd*p`; with
/// momentum `buf = mu*buf + g` (`buf = g` on the first step) and
/// `g = nesterov ? g + mu*buf : buf`; then `p -= lr*g`.
#[derive(Clone, Copy, Debug)]
pub struct SgdStep {
    pub lr: f32,
    pub momentum: f32,
    pub nesterov: bool,
    pub weight_decay: f32,
    /// The momentum buffer holds nothing yet: it becomes `g`.
    pub first: bool,
}

fn check_same(what: &'static str, p: &Tensor, other: &Tensor) -> Result<()> {
    if p.shape() != other.shape() {
        return Err(Error::shape(
            what,
            format!(
                "parameter has shape {:?}, its {what} has {:?}",
                p.shape(),
                other.shape()
            ),
        ));
    }
    Ok(())
}

/// Updates `p`, `m` and `v` in place from the gradient `g`.
pub fn adam_update_(p: &Tensor, g: &Tensor, m: &Tensor, v: &Tensor, h: &AdamStep) -> Result<()> {
    check_same("gradient", p, g)?;
    check_same("first moment", p, m)?;
    check_same("second moment", p, v)?;
    p.backend().adam_update(p, g, m, v, h)
}

/// Updates `p` (and the momentum buffer `buf` when momentum is used) in
/// place from the gradient `g`.
pub fn sgd_update_(p: &Tensor, g: &Tensor, buf: Option<&Tensor>, h: &SgdStep) -> Result<()> {
    check_same("gradient", p, g)?;
    if let Some(b) = buf {
        check_same("momentum buffer", p, b)?;
    }
    p.backend().sgd_update(p, g, buf, h)
}

impl Tensor {
    /// Σ x² accumulated in f64, the same on every CPU (for gradient norms).
    pub fn sum_squares(&self) -> Result<f64> {
        self.backend().sum_squares(self)
    }

    /// Multiplies every element by `s` in place (no graph); the tensor must
    /// own a contiguous buffer, as gradients and parameters do.
    pub fn scale_(&self, s: f32) -> Result<()> {
        self.backend().scale_in_place(self, s)
    }

    /// Writes `src` into this tensor's elements in place, outside the graph
    /// (this may be a view: a KV cache writes each step's keys into its
    /// preallocated buffer this way). Same shape; `src` must not share
    /// storage with `self`.
    pub fn assign_(&self, src: &Tensor) -> Result<()> {
        if self.shape() != src.shape() {
            return Err(Error::shape(
                "assign_",
                format!("source {:?} into {:?}", src.shape(), self.shape()),
            ));
        }
        self.backend().assign(self, src)
    }
}
