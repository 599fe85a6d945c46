//! 2-D convolution layer, weight `[out, in, k, k]` as in PyTorch.

use crate::init;
use crate::module::{join_name, Module};
use kindling_tensor::{Result, Rng, Tensor};

pub struct Conv2d {
    pub weight: Tensor,
    pub bias: Option<Tensor>,
    pub stride: usize,
    pub padding: usize,
}

impl Conv2d {
    /// PyTorch's default init: U(±1/sqrt(fan_in)), fan_in = in * k * k.
    pub fn new(
        in_channels: usize,
        out_channels: usize,
        kernel: usize,
        stride: usize,
        padding: usize,
        rng: &mut Rng,
    ) -> Self {
        let fan_in = in_channels * kernel * kernel;
        let weight = init::lecun_uniform(&[out_channels, in_channels, kernel, kernel], fan_in, rng);
        let bias = Some(init::lecun_uniform(&[out_channels], fan_in, rng));
        Conv2d {
            weight,
            bias,
            stride,
            padding,
        }
    }
}

impl Module for Conv2d {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        x.conv2d(&self.weight, self.bias.as_ref(), self.stride, self.padding)
    }

    fn visit_parameters(&self, prefix: &str, f: &mut dyn FnMut(String, &Tensor)) {
        f(join_name(prefix, "weight"), &self.weight);
        if let Some(b) = &self.bias {
            f(join_name(prefix, "bias"), b);
        }
    }
}
