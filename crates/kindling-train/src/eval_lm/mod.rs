//! Evaluating a language model: perplexity of a text by sliding windows
//! (Hugging Face's guide), multiple-choice tasks scored by log-likelihood
//! (`acc` and `acc_norm` as lm-evaluation-harness defines them), and a
//! 13-gram contamination check of a task against a training corpus (GPT-3,
//! Brown et al. 2020, appendix C). `docs/eval-lm.md` has the definitions.
//!
//! Every score comes from [`CausalLm::log_probs`]: one forward per window
//! or per answer, no cache.
//!
//! [`CausalLm::log_probs`]: kindling_models::generate::CausalLm::log_probs

pub mod choice;
pub mod contamination;
pub mod perplexity;
pub mod task;

pub use choice::{evaluate_choices, ChoiceOptions, ChoiceReport, ChoiceScore, ItemResult};
pub use contamination::{contamination, contamination_file, words, ContaminationReport};
pub use perplexity::{perplexity, windows, Perplexity, PerplexityOptions, Window};
pub use task::{read_task, ChoiceItem};

use crate::Result;
use kindling_models::generate::CausalLm;
use kindling_tensor::Tensor;

/// The log-probability of each of `targets` given the tokens before it:
/// `input` is run once from position 0 and `targets[j]` is scored by row
/// `first_row + j` (the row of the token just before it).
fn target_log_probs(
    model: &dyn CausalLm,
    input: &[u32],
    first_row: usize,
    targets: &[u32],
) -> Result<Vec<f64>> {
    let v = model.vocab_size();
    if let Some(&bad) = targets.iter().find(|&&t| t as usize >= v) {
        return Err(format!(
            "token id {bad} is outside the model's vocabulary of {v}: the tokenizer does not belong to this model"
        )
        .into());
    }
    let x = Tensor::from_vec_i64(input.iter().map(|&i| i as i64).collect(), &[1, input.len()])?;
    // Only the rows that score a target leave the tensor (the full
    // [T, V] block is 200 MB for a 1024-token window of a 49k vocabulary).
    let rows = model
        .logits(&x)?
        .narrow(1, first_row, targets.len())?
        .to_vec_f32()?;
    // The log-softmax in f64, as llama.cpp's perplexity tool takes it (an
    // f32 sum of 49k exponentials is off by ~1e-5 relative).
    Ok(targets
        .iter()
        .zip(rows.chunks_exact(v))
        .map(|(&t, row)| {
            let max = row.iter().fold(f32::NEG_INFINITY, |m, &x| m.max(x)) as f64;
            let sum: f64 = row.iter().map(|&x| (x as f64 - max).exp()).sum();
            row[t as usize] as f64 - max - sum.ln()
        })
        .collect())
}
