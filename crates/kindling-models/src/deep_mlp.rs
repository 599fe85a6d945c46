//! A deep fully-connected network of equal-width hidden layers, the network
//! of Nielsen's "Why are deep neural networks hard to train?" (Neural
//! Networks and Deep Learning, ch. 5): 784 inputs, `depth` hidden layers of
//! `width` sigmoid (or tanh, or ReLU) units, 10 output logits. With
//! `residual`, every hidden layer after the first adds its input back,
//! `h ← h + f(W h + b)` (He et al. 2016's shortcut, without normalization),
//! so the gradient reaching the first layer has a path that no weight
//! matrix or activation derivative multiplies.
//!
//! Initialization is Nielsen's (`network2.default_weight_initializer`):
//! weights N(0, 1/fan_in), biases N(0, 1).

use kindling_nn::activation::{Activation, ActivationKind};
use kindling_nn::init;
use kindling_nn::module::{join_name, visit_child};
use kindling_nn::{Linear, Module};
use kindling_tensor::{Error, Result, Rng, Tensor};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DeepMlpConfig {
    pub inputs: usize,
    pub width: usize,
    pub depth: usize,
    pub outputs: usize,
    /// sigmoid, tanh or relu.
    pub activation: String,
    pub residual: bool,
}

impl DeepMlpConfig {
    /// The activation, if it is one of the three this network is studied with.
    pub fn activation_kind(&self) -> Result<ActivationKind> {
        match self.activation.as_str() {
            "sigmoid" => Ok(ActivationKind::Sigmoid),
            "tanh" => Ok(ActivationKind::Tanh),
            "relu" => Ok(ActivationKind::Relu),
            other => Err(Error::msg(format!(
                "`activation` must be sigmoid, tanh or relu, got `{other}`"
            ))),
        }
    }
}

pub struct DeepMlp {
    pub config: DeepMlpConfig,
    /// First hidden layer to last.
    pub hidden: Vec<Linear>,
    pub output: Linear,
    activation: ActivationKind,
}

/// A layer with Nielsen's initialization.
fn nielsen_linear(inputs: usize, outputs: usize, rng: &mut Rng) -> Result<Linear> {
    let weight = init::normal(&[outputs, inputs], 1.0 / (inputs as f32).sqrt(), rng);
    let bias = init::normal(&[outputs], 1.0, rng);
    Linear::from_tensors(weight, Some(bias))
}

impl DeepMlp {
    pub fn new(config: DeepMlpConfig, rng: &mut Rng) -> Result<DeepMlp> {
        let activation = config.activation_kind()?;
        for (name, v) in [
            ("inputs", config.inputs),
            ("width", config.width),
            ("depth", config.depth),
            ("outputs", config.outputs),
        ] {
            if v == 0 {
                return Err(Error::msg(format!("`{name}` must be at least 1")));
            }
        }
        let mut hidden = Vec::with_capacity(config.depth);
        for l in 0..config.depth {
            let inputs = if l == 0 { config.inputs } else { config.width };
            hidden.push(nielsen_linear(inputs, config.width, rng)?);
        }
        let output = nielsen_linear(config.width, config.outputs, rng)?;
        Ok(DeepMlp {
            config,
            hidden,
            output,
            activation,
        })
    }

    /// The activations of every hidden layer, first to last, for a batch
    /// `x` of `[B, ...]` flattened to `[B, inputs]`.
    pub fn hidden_activations(&self, x: &Tensor) -> Result<Vec<Tensor>> {
        let b = x.shape().first().copied().unwrap_or(0);
        if x.numel() != b * self.config.inputs {
            return Err(Error::shape(
                "DeepMlp",
                format!(
                    "input must be [B, {}] (or an image of that many pixels), got {:?}",
                    self.config.inputs,
                    x.shape()
                ),
            ));
        }
        let mut h = x.reshape(&[b, self.config.inputs])?;
        let mut all = Vec::with_capacity(self.hidden.len());
        for (l, layer) in self.hidden.iter().enumerate() {
            let f = Activation::apply(self.activation, &layer.forward(&h)?)?;
            // The first layer changes the width (784 → W): no shortcut there.
            h = if self.config.residual && l > 0 {
                h.add(&f)?
            } else {
                f
            };
            all.push(h.clone());
        }
        Ok(all)
    }
}

impl Module for DeepMlp {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let hidden = self.hidden_activations(x)?;
        let last = hidden.last().expect("depth is at least 1 (checked in new)");
        self.output.forward(last)
    }

    fn visit_parameters(&self, prefix: &str, f: &mut dyn FnMut(String, &Tensor)) {
        for (l, layer) in self.hidden.iter().enumerate() {
            layer.visit_parameters(&join_name(prefix, &format!("hidden.{l}")), f);
        }
        self.output
            .visit_parameters(&join_name(prefix, "output"), f);
    }

    fn visit_modules_mut(&mut self, prefix: &str, f: &mut dyn FnMut(&str, &mut dyn Module)) {
        for (l, layer) in self.hidden.iter_mut().enumerate() {
            visit_child(layer, &join_name(prefix, &format!("hidden.{l}")), f);
        }
        visit_child(&mut self.output, &join_name(prefix, "output"), f);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(depth: usize, residual: bool) -> DeepMlpConfig {
        DeepMlpConfig {
            inputs: 784,
            width: 30,
            depth,
            outputs: 10,
            activation: "sigmoid".into(),
            residual,
        }
    }

    #[test]
    fn deep_mlp_shapes_and_parameter_names() {
        let mut m = DeepMlp::new(config(4, false), &mut Rng::new(0)).unwrap();
        let logits = m.forward(&Tensor::zeros(&[3, 1, 28, 28])).unwrap();
        assert_eq!(logits.shape(), &[3, 10]);
        let names: Vec<String> = m.named_parameters().into_iter().map(|(n, _)| n).collect();
        assert_eq!(names.len(), 10);
        assert_eq!(names[0], "hidden.0.weight");
        assert_eq!(names[7], "hidden.3.bias");
        assert_eq!(names[9], "output.bias");
        assert_eq!(kindling_nn::module::leaf_parameter_names(&mut m), names);
        assert_eq!(m.hidden[0].dense_weight().unwrap().shape(), &[30, 784]);
        assert!(m.forward(&Tensor::zeros(&[2, 1, 16, 16])).is_err());
    }

    #[test]
    fn residual_layers_add_their_input_back() {
        // Same weights (same seed): the residual net's second hidden layer
        // is the plain net's second layer plus the first layer's output.
        let plain = DeepMlp::new(config(2, false), &mut Rng::new(3)).unwrap();
        let res = DeepMlp::new(config(2, true), &mut Rng::new(3)).unwrap();
        let x = Tensor::rand(&[2, 784], 0.0, 1.0, &mut Rng::new(1));
        let p = plain.hidden_activations(&x).unwrap();
        let r = res.hidden_activations(&x).unwrap();
        assert_eq!(p[0].to_vec_f32().unwrap(), r[0].to_vec_f32().unwrap());
        let want: Vec<f32> = p[0]
            .to_vec_f32()
            .unwrap()
            .iter()
            .zip(p[1].to_vec_f32().unwrap())
            .map(|(a, b)| a + b)
            .collect();
        let got = r[1].to_vec_f32().unwrap();
        assert!(want.iter().zip(&got).all(|(a, b)| (a - b).abs() < 1e-6));
    }

    #[test]
    fn unknown_activation_and_zero_depth_are_refused() {
        let bad = DeepMlpConfig {
            activation: "gelu".into(),
            ..config(2, false)
        };
        let e = DeepMlp::new(bad, &mut Rng::new(0)).err().unwrap();
        assert!(e.to_string().contains("`activation`"), "{e}");
        let e = DeepMlp::new(config(0, false), &mut Rng::new(0))
            .err()
            .unwrap();
        assert!(e.to_string().contains("`depth`"), "{e}");
    }
}
