//! The models of Kindling's story, from the first neuron on.

pub mod batch;
pub mod bert;
pub mod chat;
pub mod deep_mlp;
pub mod generate;
pub mod gguf_export;
pub mod gpt;
pub mod gpt2_files;
pub mod kv;
pub mod lenet5;
pub mod llama;
pub mod llama_files;
pub mod lora_files;
pub mod mlp;
pub mod perceptron;
pub mod polyfit;
pub mod resnet;
pub mod reward;
pub mod sampling;
pub mod search;
pub mod seq2seq;
pub mod transformer;
pub mod translator;
