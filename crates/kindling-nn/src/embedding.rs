//! Lookup table: row `i` of `weight [num, dim]` for each id `i`.

use crate::module::{join_name, Module};
use kindling_tensor::{Result, Rng, Tensor};

pub struct Embedding {
    pub weight: Tensor,
}

impl Embedding {
    pub fn new(num: usize, dim: usize, std: f32, rng: &mut Rng) -> Self {
        Embedding {
            weight: crate::init::normal(&[num, dim], std, rng),
        }
    }

    /// `ids` any shape of i64 → `ids.shape + [dim]`.
    pub fn forward_ids(&self, ids: &Tensor) -> Result<Tensor> {
        self.weight.embedding(ids)
    }
}

impl Module for Embedding {
    /// `forward_ids`: the input is token ids.
    fn forward(&self, ids: &Tensor) -> Result<Tensor> {
        self.forward_ids(ids)
    }

    fn visit_parameters(&self, prefix: &str, f: &mut dyn FnMut(String, &Tensor)) {
        f(join_name(prefix, "weight"), &self.weight);
    }
}
