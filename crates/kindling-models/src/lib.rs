//! The models of Kindling's story, from the first neuron on.

pub mod gpt;
pub mod lenet5;
pub mod mlp;
pub mod perceptron;
pub mod polyfit;
pub mod sampling;
pub mod kv;
pub mod llama;
pub mod llama_files;
pub mod gpt2_files;
pub mod generate;
pub mod chat;
