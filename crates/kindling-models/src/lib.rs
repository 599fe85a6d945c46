//! The models of Kindling's story, from the first neuron on.

pub mod lenet5;
pub mod mlp;
pub mod perceptron;
pub mod polyfit;
