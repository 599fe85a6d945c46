//! Layer normalization module with learned gain and bias.

use crate::module::{join_name, Module};
use kindling_tensor::{Result, Tensor};

pub struct LayerNorm {
    pub weight: Tensor,
    pub bias: Tensor,
    pub eps: f32,
}

impl LayerNorm {
    pub fn new(dim: usize) -> Self {
        LayerNorm {
            weight: crate::init::ones(&[dim]),
            bias: crate::init::zeros(&[dim]),
            eps: 1e-5,
        }
    }
}

impl Module for LayerNorm {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        x.layer_norm(&self.weight, &self.bias, self.eps)
    }
    fn visit_parameters(&self, prefix: &str, f: &mut dyn FnMut(String, &Tensor)) {
        f(join_name(prefix, "weight"), &self.weight);
        f(join_name(prefix, "bias"), &self.bias);
    }
}
