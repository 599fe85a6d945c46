//! Activation functions as modules, selectable by name.

use crate::module::Module;
use kindling_tensor::{Error, Result, Tensor};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ActivationKind {
    Relu,
    Tanh,
    Sigmoid,
    Gelu,
    GeluErf,
    /// Heaviside step: the McCulloch-Pitts threshold (no gradient).
    Step,
    Identity,
}

impl std::str::FromStr for ActivationKind {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Ok(match s {
            "relu" => ActivationKind::Relu,
            "tanh" => ActivationKind::Tanh,
            "sigmoid" => ActivationKind::Sigmoid,
            "gelu" => ActivationKind::Gelu,
            "gelu_erf" => ActivationKind::GeluErf,
            "step" => ActivationKind::Step,
            "identity" => ActivationKind::Identity,
            other => {
                return Err(Error::msg(format!(
                    "unknown activation `{other}` (expected relu, tanh, sigmoid, gelu, gelu_erf, step or identity)"
                )))
            }
        })
    }
}

pub struct Activation(pub ActivationKind);

impl Activation {
    pub fn apply(kind: ActivationKind, x: &Tensor) -> Result<Tensor> {
        match kind {
            ActivationKind::Relu => x.relu(),
            ActivationKind::Tanh => x.tanh(),
            ActivationKind::Sigmoid => x.sigmoid(),
            ActivationKind::Gelu => x.gelu(),
            ActivationKind::GeluErf => x.gelu_erf(),
            ActivationKind::Step => x.step(),
            ActivationKind::Identity => Ok(x.clone()),
        }
    }
}

impl Module for Activation {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Activation::apply(self.0, x)
    }
    fn visit_parameters(&self, _: &str, _: &mut dyn FnMut(String, &Tensor)) {}
}
