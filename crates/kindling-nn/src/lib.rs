//! Building blocks for networks: the `Module` trait with named parameters,
//! layers, initializers, optimizers, learning-rate schedules, gradient
//! clipping and safetensors checkpoints.

pub mod activation;
pub mod attention;
pub mod batch_norm;
pub mod checkpoint;
pub mod clip;
pub mod conv2d;
pub mod embedding;
pub mod init;
pub mod layer_norm;
pub mod linear;
pub mod lora;
pub mod module;
pub mod optim;
pub mod rms_norm;
pub mod rnn;
pub mod schedule;
pub mod sequential;

pub use activation::{Activation, ActivationKind};
pub use attention::MultiHeadAttention;
pub use batch_norm::BatchNorm2d;
pub use conv2d::Conv2d;
pub use embedding::Embedding;
pub use layer_norm::LayerNorm;
pub use linear::{Linear, LinearWeight};
pub use module::Module;
pub use rms_norm::RmsNorm;
pub use rnn::{Cell, CellKind, Recurrent, State};
pub use sequential::Sequential;

pub use kindling_tensor::{Error, Result, Tensor};
