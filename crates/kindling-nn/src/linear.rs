//! Fully connected layer `y = x W^T + b`, weight `[out, in]` as in PyTorch
//! so checkpoints interoperate.

use crate::init;
use crate::lora::Lora;
use crate::module::{join_name, Module};
use kindling_tensor::quant::QMatrix;
use kindling_tensor::{Error, Result, Rng, Tensor};
use std::sync::Arc;

/// What a `Linear` layer multiplies by, each variant with its own product
/// in `forward`, so the models built from `Linear`s load a quantized file
/// without a second copy of their code.
pub enum LinearWeight {
    /// `[out, in]` f32: the trainable parameter named `weight`.
    Dense(Tensor),
    /// `[out, in]` in one of GGUF's block formats (Q8_0, Q4_0, Q4_1, Q4_K,
    /// Q6_K): frozen, not a parameter; multiplied without dequantizing.
    Quantized {
        matrix: Arc<QMatrix>,
        shape: [usize; 2],
    },
}

impl LinearWeight {
    /// `[out, in]`.
    pub fn shape(&self) -> &[usize] {
        match self {
            LinearWeight::Dense(w) => w.shape(),
            LinearWeight::Quantized { shape, .. } => shape,
        }
    }

    /// A frozen quantized weight from its blocks.
    pub fn quantized(matrix: QMatrix) -> Self {
        let shape = [matrix.rows(), matrix.cols()];
        LinearWeight::Quantized {
            matrix: Arc::new(matrix),
            shape,
        }
    }

    /// The f32 tensor, when the weight is one.
    pub fn as_dense(&self) -> Option<&Tensor> {
        match self {
            LinearWeight::Dense(w) => Some(w),
            LinearWeight::Quantized { .. } => None,
        }
    }

    /// `x @ W^T + bias`.
    fn forward(&self, x: &Tensor, bias: Option<&Tensor>) -> Result<Tensor> {
        match self {
            // One fused op: leading dims folded into a single GEMM, the bias
            // loaded into the output before it accumulates.
            LinearWeight::Dense(w) => x.linear(w, bias),
            LinearWeight::Quantized { matrix, .. } => x.linear_quantized(matrix, bias),
        }
    }
}

/// Fields are public so an adapter (LoRA) installed with `map_linears` can
/// read and replace them.
pub struct Linear {
    pub weight: LinearWeight,
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
            weight: LinearWeight::Dense(weight),
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
            weight: LinearWeight::Dense(weight),
            bias,
            lora: None,
        })
    }

    /// The dense f32 weight `[out, in]` (`None` once a layer is quantized).
    pub fn dense_weight(&self) -> Option<&Tensor> {
        self.weight.as_dense()
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
        let y = self.weight.forward(x, self.bias.as_ref())?;
        match &self.lora {
            Some(l) => y.add(&l.delta(x)?),
            None => Ok(y),
        }
    }

    fn visit_parameters(&self, prefix: &str, f: &mut dyn FnMut(String, &Tensor)) {
        match &self.weight {
            LinearWeight::Dense(w) => f(join_name(prefix, "weight"), w),
            // Frozen blocks are not a parameter: no gradient, not in checkpoints.
            LinearWeight::Quantized { .. } => {}
        }
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
