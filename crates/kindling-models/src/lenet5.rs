//! LeNet-5 (LeCun, Bottou, Bengio & Haffner 1998) for 28×28 digits:
//! C1 6@5×5 (pad 2) → S2 pool → C3 16@5×5 → S4 pool → C5 120@5×5 → F6 84
//! → 10 outputs; 61,706 parameters. ReLU and max pooling by default, tanh
//! and average pooling for the historical flavour. C3 here connects every
//! S2 map (the paper's sparse connection table was a 1998 compute saving).

use kindling_nn::module::{join_name, visit_child};
use kindling_nn::{ActivationKind, Conv2d, Linear, Module};
use kindling_tensor::{Error, Result, Rng, Tensor};
use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Pooling {
    Max,
    Avg,
}

impl std::str::FromStr for Pooling {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "max" => Ok(Pooling::Max),
            "avg" => Ok(Pooling::Avg),
            other => Err(Error::msg(format!(
                "unknown pooling `{other}` (expected max or avg)"
            ))),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LeNet5Config {
    /// "relu" or "tanh".
    pub activation: String,
    pub pooling: Pooling,
    /// Channel and unit counts: C1 maps, C3 maps, F6 units (6, 16, 84 in the paper).
    pub c1: usize,
    pub c3: usize,
    pub f6: usize,
}

impl Default for LeNet5Config {
    fn default() -> Self {
        LeNet5Config {
            activation: "relu".into(),
            pooling: Pooling::Max,
            c1: 6,
            c3: 16,
            f6: 84,
        }
    }
}

pub struct LeNet5 {
    pub config: LeNet5Config,
    activation: ActivationKind,
    pub c1: Conv2d,
    pub c3: Conv2d,
    pub c5: Conv2d,
    pub f6: Linear,
    pub output: Linear,
}

/// Every layer's output for one forward pass (for inspection and feature maps).
pub struct LeNet5Activations {
    pub c1: Tensor,
    pub s2: Tensor,
    pub c3: Tensor,
    pub s4: Tensor,
    pub c5: Tensor,
    pub f6: Tensor,
    pub logits: Tensor,
}

impl LeNet5 {
    pub fn new(config: LeNet5Config, rng: &mut Rng) -> Result<Self> {
        let activation: ActivationKind = config.activation.parse()?;
        if !matches!(activation, ActivationKind::Relu | ActivationKind::Tanh) {
            return Err(Error::msg(format!(
                "LeNet-5 activation must be relu or tanh, got `{}`",
                config.activation
            )));
        }
        if config.c1 == 0 || config.c3 == 0 || config.f6 == 0 {
            return Err(Error::msg(
                "LeNet-5 layer sizes c1, c3 and f6 must be positive",
            ));
        }
        Ok(LeNet5 {
            activation,
            c1: Conv2d::new(1, config.c1, 5, 1, 2, rng),
            c3: Conv2d::new(config.c1, config.c3, 5, 1, 0, rng),
            c5: Conv2d::new(config.c3, 120, 5, 1, 0, rng),
            f6: Linear::new(120, config.f6, true, rng),
            output: Linear::new(config.f6, 10, true, rng),
            config,
        })
    }

    fn act(&self, x: &Tensor) -> Result<Tensor> {
        kindling_nn::Activation::apply(self.activation, x)
    }

    fn pool(&self, x: &Tensor) -> Result<Tensor> {
        match self.config.pooling {
            Pooling::Max => x.max_pool2d(2, 2),
            Pooling::Avg => x.avg_pool2d(2, 2),
        }
    }

    /// Forward through every layer of `x [B, 1, 28, 28]`, keeping each output.
    pub fn forward_all(&self, x: &Tensor) -> Result<LeNet5Activations> {
        if x.rank() != 4 || x.shape()[1..] != [1, 28, 28] {
            return Err(Error::shape(
                "LeNet5",
                format!("input must be [B, 1, 28, 28], got {:?}", x.shape()),
            ));
        }
        let c1 = self.act(&self.c1.forward(x)?)?;
        let s2 = self.pool(&c1)?;
        let c3 = self.act(&self.c3.forward(&s2)?)?;
        let s4 = self.pool(&c3)?;
        let c5 = self.act(&self.c5.forward(&s4)?)?.flatten_from(1)?;
        let f6 = self.act(&self.f6.forward(&c5)?)?;
        let logits = self.output.forward(&f6)?;
        Ok(LeNet5Activations {
            c1,
            s2,
            c3,
            s4,
            c5,
            f6,
            logits,
        })
    }
}

impl Module for LeNet5 {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(self.forward_all(x)?.logits)
    }

    fn visit_parameters(&self, prefix: &str, f: &mut dyn FnMut(String, &Tensor)) {
        self.c1.visit_parameters(&join_name(prefix, "c1"), f);
        self.c3.visit_parameters(&join_name(prefix, "c3"), f);
        self.c5.visit_parameters(&join_name(prefix, "c5"), f);
        self.f6.visit_parameters(&join_name(prefix, "f6"), f);
        self.output
            .visit_parameters(&join_name(prefix, "output"), f);
    }

    fn visit_modules_mut(&mut self, prefix: &str, f: &mut dyn FnMut(&str, &mut dyn Module)) {
        visit_child(&mut self.c1, &join_name(prefix, "c1"), f);
        visit_child(&mut self.c3, &join_name(prefix, "c3"), f);
        visit_child(&mut self.c5, &join_name(prefix, "c5"), f);
        visit_child(&mut self.f6, &join_name(prefix, "f6"), f);
        visit_child(&mut self.output, &join_name(prefix, "output"), f);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lenet5_has_61706_parameters_and_the_paper_shapes() {
        let m = LeNet5::new(LeNet5Config::default(), &mut Rng::new(0)).unwrap();
        assert_eq!(m.num_parameters(), 61_706);
        let a = m.forward_all(&Tensor::zeros(&[2, 1, 28, 28])).unwrap();
        assert_eq!(a.c1.shape(), &[2, 6, 28, 28]);
        assert_eq!(a.s2.shape(), &[2, 6, 14, 14]);
        assert_eq!(a.c3.shape(), &[2, 16, 10, 10]);
        assert_eq!(a.s4.shape(), &[2, 16, 5, 5]);
        assert_eq!(a.c5.shape(), &[2, 120]);
        assert_eq!(a.f6.shape(), &[2, 84]);
        assert_eq!(a.logits.shape(), &[2, 10]);
        let names: Vec<String> = m.named_parameters().into_iter().map(|(n, _)| n).collect();
        assert_eq!(names[0], "c1.weight");
        let mut m = m;
        assert_eq!(kindling_nn::module::leaf_parameter_names(&mut m), names);
        assert!(m.forward(&Tensor::zeros(&[2, 1, 16, 16])).is_err());
        let bad = LeNet5Config {
            activation: "gelu".into(),
            ..Default::default()
        };
        assert!(LeNet5::new(bad, &mut Rng::new(0)).is_err());
    }
}
