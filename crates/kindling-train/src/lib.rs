//! Training: run directories, progress bars, metrics, evaluation, pictures,
//! and the trainers of Kindling's models.

pub mod bert_run;
pub mod classify;
pub mod compress_run;
pub mod corpus;
pub mod data_parallel;
pub mod distill;
pub mod distributed;
pub mod dpo_run;
pub mod eval_lm;
pub mod fgsm;
pub mod finetune;
pub mod fit;
pub mod gpt_run;
pub mod gradients_run;
pub mod grpo_run;
pub mod lenet5_run;
pub mod lm_run;
pub mod memory;
pub mod memory_check;
pub mod metrics;
pub mod optimizer;
pub mod plot;
pub mod ppo_run;
pub mod preference;
pub mod progress;
pub mod prune;
pub mod resnet_run;
pub mod reward_run;
pub mod run_dir;
pub mod scaling;
pub mod seq2seq_run;
pub mod sft_data;
pub mod sft_run;
pub mod sweep;
pub mod trainer;
pub mod translate_run;
pub mod word2vec;

pub mod error;

pub use error::{Error, Result};
