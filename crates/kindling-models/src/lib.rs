//! The models of Kindling's story, from the first neuron on.

pub mod mlp;
pub mod perceptron;
pub mod polyfit;
