//! Multiple-choice tasks scored by log-likelihood, as lm-evaluation-harness
//! does for its `multiple_choice` tasks (`lm_eval/api/task.py`,
//! `ConfigurableTask.construct_requests` and `process_results`;
//! `TemplateLM._encode_pair` in `lm_eval/api/model.py`):
//!
//! - the context is `Question: {question}\nAnswer:` and each choice is the
//!   continuation ` {choice}` (lm-eval's default `target_delimiter` " ");
//! - a choice's score is Σ log p of its continuation tokens given the
//!   context, where the continuation tokens are `encode(context + cont)`
//!   past the first `len(encode(context))` tokens, and the model reads
//!   `encode(context) + those tokens` (the last `context_len + 1`, cut from
//!   the left, if longer);
//! - `acc` is 1 when the choice with the highest score is the answer,
//!   `acc_norm` when the highest score divided by the choice's length in
//!   characters is (`len(choice)` in Python: Unicode code points of the
//!   choice without the leading space); ties go to the first, as
//!   `np.argmax` does;
//! - K-shot: K other items of the same file, drawn with the seed, each
//!   written as its question and `Answer: {correct choice}`, joined and
//!   followed by the item's context with blank lines (lm-eval's
//!   `fewshot_delimiter` "\n\n").
//!
//! Standard errors are the binomial sqrt(p(1-p)/n); lm-eval reports the
//! sample version, sqrt(p(1-p)/(n-1)).

use super::target_log_probs;
use super::task::ChoiceItem;
use crate::trainer::stream;
use crate::{Error, Result};
use kindling_data::tokenizer::Tokenizer;
use kindling_models::generate::CausalLm;
use kindling_tensor::no_grad;

/// The random stream few-shot examples are drawn from (with the item's index).
const FEWSHOT: u64 = 17;

/// The context of an item with no examples before it.
pub fn question_prompt(question: &str) -> String {
    format!("Question: {question}\nAnswer:")
}

/// An item written as a solved example.
pub fn solved_example(item: &ChoiceItem) -> String {
    format!("{} {}", question_prompt(&item.question), item.correct())
}

/// The indices of the `shots` examples shown before item `index`: drawn
/// without replacement from the other items, from a stream keyed by
/// `(seed, index)`, so an item's examples do not depend on `limit`.
pub fn fewshot_indices(n_items: usize, index: usize, shots: usize, seed: u64) -> Vec<usize> {
    let mut pool: Vec<usize> = (0..n_items).filter(|&j| j != index).collect();
    let mut rng = stream(seed, FEWSHOT, index);
    // A partial Fisher-Yates shuffle: the first `shots` places.
    for k in 0..shots.min(pool.len()) {
        let j = k + rng.below(pool.len() - k);
        pool.swap(k, j);
    }
    pool.truncate(shots);
    pool
}

/// The whole context the model reads before item `index`'s choices.
pub fn context(items: &[ChoiceItem], index: usize, shots: usize, seed: u64) -> String {
    let mut parts: Vec<String> = fewshot_indices(items.len(), index, shots, seed)
        .into_iter()
        .map(|j| solved_example(&items[j]))
        .collect();
    parts.push(question_prompt(&items[index].question));
    parts.join("\n\n")
}

#[derive(Clone, Debug, Default)]
pub struct ChoiceOptions {
    /// Solved examples before each question.
    pub shots: usize,
    pub seed: u64,
    /// Score only the first `limit` items (examples still come from all).
    pub limit: Option<usize>,
}

impl ChoiceOptions {
    /// `limit` and `shots` against a task of `n_items`.
    pub fn check(&self, n_items: usize) -> Result<()> {
        if self.limit == Some(0) {
            return Err(Error::option("limit", "must be at least 1"));
        }
        if self.shots >= n_items {
            return Err(Error::option(
                "shots",
                format!(
                    "{} needs more items than the task's {n_items}: examples are the other items of the same file",
                    self.shots
                ),
            ));
        }
        Ok(())
    }
}

/// One choice's log-likelihood and the lengths it can be normalised by.
#[derive(Clone, Debug, PartialEq)]
pub struct ChoiceScore {
    /// Σ log p of the continuation's tokens, in nats.
    pub loglik: f64,
    pub tokens: usize,
    /// Unicode characters of the choice (what `acc_norm` divides by).
    pub chars: usize,
    /// UTF-8 bytes of the choice (the same as `chars` for ASCII).
    pub bytes: usize,
}

#[derive(Clone, Debug)]
pub struct ItemResult {
    pub index: usize,
    pub answer: usize,
    pub scores: Vec<ChoiceScore>,
    /// argmax of `loglik`.
    pub pred: usize,
    /// argmax of `loglik / chars`.
    pub pred_norm: usize,
    pub context_tokens: usize,
}

impl ItemResult {
    pub fn acc(&self) -> bool {
        self.pred == self.answer
    }
    pub fn acc_norm(&self) -> bool {
        self.pred_norm == self.answer
    }
}

#[derive(Clone, Debug)]
pub struct ChoiceReport {
    pub items: Vec<ItemResult>,
    pub shots: usize,
    pub seed: u64,
}

impl ChoiceReport {
    pub fn n(&self) -> usize {
        self.items.len()
    }
    pub fn acc(&self) -> f64 {
        mean(self.items.iter().map(ItemResult::acc))
    }
    pub fn acc_norm(&self) -> f64 {
        mean(self.items.iter().map(ItemResult::acc_norm))
    }
    pub fn acc_stderr(&self) -> f64 {
        binomial_stderr(self.acc(), self.n())
    }
    pub fn acc_norm_stderr(&self) -> f64 {
        binomial_stderr(self.acc_norm(), self.n())
    }
}

fn mean(hits: impl Iterator<Item = bool>) -> f64 {
    let (mut k, mut n) = (0usize, 0usize);
    for h in hits {
        k += usize::from(h);
        n += 1;
    }
    k as f64 / n.max(1) as f64
}

/// sqrt(p(1-p)/n): the standard error of a proportion over n items.
pub fn binomial_stderr(p: f64, n: usize) -> f64 {
    (p * (1.0 - p) / n.max(1) as f64).sqrt()
}

/// The first index of the largest value (`np.argmax`).
fn argmax(values: impl Iterator<Item = f64>) -> usize {
    let mut best = (0, f64::NEG_INFINITY);
    for (i, v) in values.enumerate() {
        if v > best.1 {
            best = (i, v);
        }
    }
    best.0
}

/// `(pred, pred_norm)`: the choice with the highest log-likelihood, and
/// with the highest log-likelihood per character.
pub fn predictions(scores: &[ChoiceScore]) -> (usize, usize) {
    (
        argmax(scores.iter().map(|s| s.loglik)),
        argmax(scores.iter().map(|s| s.loglik / s.chars as f64)),
    )
}

/// The log-likelihood of `continuation` after `context`, split into tokens
/// as lm-eval's `_encode_pair` does; also the context's token count.
pub fn continuation_loglik(
    model: &dyn CausalLm,
    tokenizer: &Tokenizer,
    context: &str,
    continuation: &str,
) -> Result<(f64, usize, usize)> {
    // Trailing spaces of the context belong to the continuation.
    let trimmed = context.trim_end();
    let continuation = format!("{}{continuation}", &context[trimmed.len()..]);
    let context_ids = tokenizer.encode(trimmed)?;
    let whole = tokenizer.encode(&format!("{trimmed}{continuation}"))?;
    if context_ids.is_empty() {
        return Err(
            "an empty context cannot be scored (no token to predict the answer from)".into(),
        );
    }
    let cont_ids = whole.get(context_ids.len()..).unwrap_or_default();
    if cont_ids.is_empty() {
        return Err(
            format!("the answer {continuation:?} encodes to no tokens after its context").into(),
        );
    }
    let max = model.context_len();
    if cont_ids.len() > max {
        return Err(format!(
            "the answer {continuation:?} is {} tokens, longer than the model's context of {max}",
            cont_ids.len()
        )
        .into());
    }
    let mut seq = context_ids.clone();
    seq.extend_from_slice(cont_ids);
    // The last token is only a target; the input keeps at most `max` tokens.
    let input = &seq[(seq.len() - 1).saturating_sub(max)..seq.len() - 1];
    let first_row = input.len() - cont_ids.len();
    let lp = target_log_probs(model, input, first_row, cont_ids)?;
    Ok((lp.iter().sum(), cont_ids.len(), context_ids.len()))
}

/// Scores every choice of the first `limit` items; `on_item(done, total)`
/// is called after each.
pub fn evaluate_choices(
    model: &dyn CausalLm,
    tokenizer: &Tokenizer,
    items: &[ChoiceItem],
    options: &ChoiceOptions,
    on_item: &mut dyn FnMut(usize, usize),
) -> Result<ChoiceReport> {
    options.check(items.len())?;
    let n = options.limit.unwrap_or(items.len()).min(items.len());
    let _g = no_grad();
    let mut results = Vec::with_capacity(n);
    for (index, item) in items.iter().enumerate().take(n) {
        let ctx = context(items, index, options.shots, options.seed);
        let mut scores = Vec::with_capacity(item.choices.len());
        let mut context_tokens = 0;
        for choice in &item.choices {
            let (loglik, tokens, ctx_tokens) =
                continuation_loglik(model, tokenizer, &ctx, &format!(" {choice}"))
                    .map_err(|e| format!("item {index} (line {}): {e}", item.line))?;
            context_tokens = ctx_tokens;
            scores.push(ChoiceScore {
                loglik,
                tokens,
                chars: choice.chars().count(),
                bytes: choice.len(),
            });
        }
        let (pred, pred_norm) = predictions(&scores);
        results.push(ItemResult {
            index,
            answer: item.answer,
            pred,
            pred_norm,
            scores,
            context_tokens,
        });
        on_item(index + 1, n);
    }
    Ok(ChoiceReport {
        items: results,
        shots: options.shots,
        seed: options.seed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(q: &str, choices: &[&str], answer: usize) -> ChoiceItem {
        ChoiceItem {
            question: q.into(),
            choices: choices.iter().map(|c| c.to_string()).collect(),
            answer,
            subject: None,
            line: 1,
        }
    }

    #[test]
    fn the_prompt_is_lm_evals_question_answer_format() {
        let items = vec![
            item("What is 2+2?", &["3", "4"], 1),
            item("天空是什么颜色？", &["蓝色", "绿色"], 0),
            item("Largest planet?", &["Mars", "Jupiter"], 1),
        ];
        assert_eq!(context(&items, 0, 0, 1), "Question: What is 2+2?\nAnswer:");
        let two = context(&items, 0, 2, 1);
        let shots = fewshot_indices(3, 0, 2, 1);
        assert_eq!(shots.len(), 2);
        assert!(!shots.contains(&0));
        let want = format!(
            "{}\n\n{}\n\nQuestion: What is 2+2?\nAnswer:",
            solved_example(&items[shots[0]]),
            solved_example(&items[shots[1]])
        );
        assert_eq!(two, want);
        assert!(two.contains("Question: 天空是什么颜色？\nAnswer: 蓝色"));
        assert!(two.contains("Question: Largest planet?\nAnswer: Jupiter"));
    }

    #[test]
    fn fewshot_draws_are_seeded_distinct_and_exclude_the_item() {
        for index in 0..20 {
            let a = fewshot_indices(20, index, 5, 42);
            assert_eq!(a, fewshot_indices(20, index, 5, 42));
            let mut sorted = a.clone();
            sorted.sort_unstable();
            sorted.dedup();
            assert_eq!(sorted.len(), 5);
            assert!(!a.contains(&index) && a.iter().all(|&j| j < 20));
        }
        let draws: Vec<_> = (0..8).map(|s| fewshot_indices(20, 3, 5, s)).collect();
        assert!(
            draws.windows(2).any(|w| w[0] != w[1]),
            "the seed changes the draw"
        );
    }

    #[test]
    fn argmax_takes_the_first_maximum_and_norm_divides_by_characters() {
        assert_eq!(argmax([1.0, 3.0, 3.0, 2.0].into_iter()), 1);
        assert_eq!(argmax([-5.0, -4.0].into_iter()), 1);
        // Python's len() counts characters: "中华人民共和国" is 7 of them
        // (21 UTF-8 bytes). Per character -12/7 = -1.71 loses to
        // -6/4 = -1.5; per byte it would win (-0.57 against -1.5).
        let score = |loglik: f64, c: &str| ChoiceScore {
            loglik,
            tokens: 1,
            chars: c.chars().count(),
            bytes: c.len(),
        };
        let scores = [score(-12.0, "中华人民共和国"), score(-6.0, "Rome")];
        assert_eq!(predictions(&scores), (1, 1));
        let scores = [score(-12.0, "中华人民共和国"), score(-11.0, "Rome")];
        assert_eq!(predictions(&scores), (1, 0));
        // A tie goes to the first; per character the longer one wins.
        let scores = [
            score(-9.0, "Paris"),
            score(-9.0, "Londres"),
            score(-10.0, "Oslo"),
        ];
        assert_eq!(predictions(&scores), (0, 1));
    }

    #[test]
    fn stderr_is_binomial() {
        assert!((binomial_stderr(0.5, 100) - 0.05).abs() < 1e-12);
        assert_eq!(binomial_stderr(1.0, 7), 0.0);
    }
}
