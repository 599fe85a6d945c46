//! Fully connected layer `y = x W^T + b`, weight `[out, in]` as in PyTorch
//! so checkpoints interoperate.

use crate::init;
use crate::module::{join_name, Module};
use kindling_tensor::{Error, Result, Rng, Tensor};

pub struct Linear {
    pub weight: Tensor,
    pub bias: Option<Tensor>,
}

impl Linear {
    /// PyTorch's default init: U(±1/sqrt(in)) for weight and bias.
    pub fn new(in_features: usize, out_features: usize, bias: bool, rng: &mut Rng) -> Self {
        let weight = init::lecun_uniform(&[out_features, in_features], in_features, rng);
        let bias = bias.then(|| init::lecun_uniform(&[out_features], in_features, rng));
        Linear { weight, bias }
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
        Ok(Linear { weight, bias })
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
        // [.., in] is folded to one [rows, in] matrix: one large GEMM (and one
        // for the weight gradient) instead of one per leading index.
        if x.rank() > 2 {
            let mut shape = x.shape().to_vec();
            let rows: usize = shape[..shape.len() - 1].iter().product();
            let y = self.forward(&x.reshape(&[rows, shape[shape.len() - 1]])?)?;
            *shape.last_mut().expect("rank > 2") = self.out_features();
            return y.reshape(&shape);
        }
        let y = x.matmul(&self.weight.t()?)?;
        match &self.bias {
            Some(b) => y.add(b),
            None => Ok(y),
        }
    }

    fn visit_parameters(&self, prefix: &str, f: &mut dyn FnMut(String, &Tensor)) {
        f(join_name(prefix, "weight"), &self.weight);
        if let Some(b) = &self.bias {
            f(join_name(prefix, "bias"), b);
        }
    }
}
