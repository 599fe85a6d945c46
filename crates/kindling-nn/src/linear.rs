//! Fully connected layer `y = x W^T + b`, weight `[out, in]` as in PyTorch
//! so checkpoints interoperate.

use crate::init;
use crate::lora::Lora;
use crate::module::{join_name, Module};
use kindling_tensor::{Error, Result, Rng, Tensor};

/// Fields are public so an adapter (LoRA) installed with `map_linears` can
/// read and replace them.
pub struct Linear {
    pub weight: Tensor,
    pub bias: Option<Tensor>,
    /// A low-rank adapter added to the output ([`crate::lora`]).
    pub lora: Option<Lora>,
}

impl Linear {
    /// PyTorch's default init: U(±1/sqrt(in)) for weight and bias.
    pub fn new(in_features: usize, out_features: usize, bias: bool, rng: &mut Rng) -> Self {
        let weight = init::lecun_uniform(&[out_features, in_features], in_features, rng);
        let bias = bias.then(|| init::lecun_uniform(&[out_features], in_features, rng));
        Linear {
            weight,
            bias,
            lora: None,
        }
    }

    pub fn from_tensors(weight: Tensor, bias: Option<Tensor>) -> Result<Self> {
        if weight.rank() != 2
            || bias
                .as_ref()
                .is_some_and(|b| b.shape() != [weight.shape()[0]])
        {
            return Err(Error::shape(
                "Linear",
                format!(
                    "weight {:?} must be [out, in] and bias [out]",
                    weight.shape()
                ),
            ));
        }
        Ok(Linear {
            weight,
            bias,
            lora: None,
        })
    }

    pub fn in_features(&self) -> usize {
        self.weight.shape()[1]
    }
    pub fn out_features(&self) -> usize {
        self.weight.shape()[0]
    }
}

impl Module for Linear {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        // One fused op: leading dims folded into a single GEMM, the bias
        // loaded into the output before it accumulates.
        let y = x.linear(&self.weight, self.bias.as_ref())?;
        match &self.lora {
            Some(l) => y.add(&l.delta(x)?),
            None => Ok(y),
        }
    }

    fn visit_parameters(&self, prefix: &str, f: &mut dyn FnMut(String, &Tensor)) {
        f(join_name(prefix, "weight"), &self.weight);
        if let Some(b) = &self.bias {
            f(join_name(prefix, "bias"), b);
        }
        if let Some(l) = &self.lora {
            f(join_name(prefix, "lora_A.weight"), &l.a);
            f(join_name(prefix, "lora_B.weight"), &l.b);
        }
    }

    fn as_linear_mut(&mut self) -> Option<&mut Linear> {
        Some(self)
    }
}
