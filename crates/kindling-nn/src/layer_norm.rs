//! Layer normalization module with a learned gain and, optionally, bias.

use crate::module::{join_name, Module};
use kindling_tensor::{Result, Tensor};

pub struct LayerNorm {
    pub weight: Tensor,
    /// `None` for a gain-only LayerNorm (nanoGPT's `bias=False`).
    pub bias: Option<Tensor>,
    pub eps: f32,
    /// Zeros standing in for an absent bias (not a parameter).
    zero_bias: Tensor,
}

impl LayerNorm {
    pub fn new(dim: usize) -> Self {
        Self::with_bias(dim, true)
    }

    pub fn with_bias(dim: usize, bias: bool) -> Self {
        LayerNorm {
            weight: crate::init::ones(&[dim]),
            bias: bias.then(|| crate::init::zeros(&[dim])),
            eps: 1e-5,
            zero_bias: Tensor::zeros(&[dim]),
        }
    }
}

impl Module for LayerNorm {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        x.layer_norm(
            &self.weight,
            self.bias.as_ref().unwrap_or(&self.zero_bias),
            self.eps,
        )
    }
    fn visit_parameters(&self, prefix: &str, f: &mut dyn FnMut(String, &Tensor)) {
        f(join_name(prefix, "weight"), &self.weight);
        if let Some(b) = &self.bias {
            f(join_name(prefix, "bias"), b);
        }
    }
}
