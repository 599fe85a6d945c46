//! Root-mean-square layer normalization (Zhang & Sennrich 2019), as LLaMA
//! uses it: `x / sqrt(mean(x²) + eps) * weight`, no centring and no bias.

use crate::module::{join_name, Module};
use kindling_tensor::{Result, Tensor};

pub struct RmsNorm {
    pub weight: Tensor,
    pub eps: f32,
}

impl RmsNorm {
    pub fn new(dim: usize, eps: f32) -> Self {
        RmsNorm {
            weight: crate::init::ones(&[dim]),
            eps,
        }
    }

    pub fn from_weight(weight: Tensor, eps: f32) -> Self {
        RmsNorm { weight, eps }
    }
}

impl Module for RmsNorm {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        x.rms_norm(&self.weight, self.eps)
    }
    fn visit_parameters(&self, prefix: &str, f: &mut dyn FnMut(String, &Tensor)) {
        f(join_name(prefix, "weight"), &self.weight);
    }
}
