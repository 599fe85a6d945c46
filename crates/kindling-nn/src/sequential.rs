//! Modules applied one after another; parameters are named by position
//! (`0.weight`, `2.bias`), as in PyTorch's `nn.Sequential`.

use crate::module::{join_name, visit_child, Module};
use kindling_tensor::{Result, Tensor};

#[derive(Default)]
pub struct Sequential {
    layers: Vec<Box<dyn Module>>,
}

impl Sequential {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn push(mut self, layer: impl Module + 'static) -> Self {
        self.layers.push(Box::new(layer));
        self
    }

    pub fn len(&self) -> usize {
        self.layers.len()
    }
    pub fn is_empty(&self) -> bool {
        self.layers.is_empty()
    }

    /// Output of every layer for one input (for inspecting activations).
    pub fn forward_all(&self, x: &Tensor) -> Result<Vec<Tensor>> {
        let mut outs = Vec::with_capacity(self.layers.len());
        let mut h = x.clone();
        for l in &self.layers {
            h = l.forward(&h)?;
            outs.push(h.clone());
        }
        Ok(outs)
    }
}

impl Module for Sequential {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.layers.iter().try_fold(x.clone(), |h, l| l.forward(&h))
    }

    fn visit_parameters(&self, prefix: &str, f: &mut dyn FnMut(String, &Tensor)) {
        for (i, l) in self.layers.iter().enumerate() {
            l.visit_parameters(&join_name(prefix, &i.to_string()), f);
        }
    }

    fn visit_modules_mut(&mut self, prefix: &str, f: &mut dyn FnMut(&str, &mut dyn Module)) {
        for (i, l) in self.layers.iter_mut().enumerate() {
            visit_child(l.as_mut(), &join_name(prefix, &i.to_string()), f);
        }
    }
}
