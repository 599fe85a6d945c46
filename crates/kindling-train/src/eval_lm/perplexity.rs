//! Perplexity of a token stream longer than the model's context, by the
//! sliding-window method of Hugging Face's guide "Perplexity of
//! fixed-length models" (huggingface.co/docs/transformers/perplexity):
//! windows of `max_length` tokens start every `stride` tokens; in each,
//! only the tokens no earlier window scored count, and the tokens before
//! them are context. With `stride == max_length` the windows are disjoint
//! chunks and each chunk's first token goes unscored; with a smaller stride
//! every token after the first is scored exactly once, each with at least
//! `max_length - stride` tokens of context (except at the start).
//!
//! PPL = exp(-(1/N) Σ log p(x_i | window context)), summed over the N
//! scored tokens. The guide weights each later window's mean loss by
//! `trg_len - 1` where it averaged `trg_len` tokens (a small miscount); we
//! sum the scored tokens' log-probabilities and divide by their count.

use super::target_log_probs;
use crate::{Error, Result};
use kindling_models::generate::CausalLm;
use kindling_tensor::no_grad;

/// One window: tokens `begin..end` are the model's input, and the tokens
/// `score_from..end` are scored (each from the window's tokens before it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    pub begin: usize,
    pub end: usize,
    pub score_from: usize,
}

/// The windows over `n_tokens` tokens, as the guide's loop makes them:
/// `begin` steps by `stride` from 0, `end = min(begin + max_length, n)`,
/// the scored tokens are those past the previous window's end, and the loop
/// stops at the window that reaches the last token.
pub fn windows(n_tokens: usize, max_length: usize, stride: usize) -> Result<Vec<Window>> {
    check(max_length, stride)?;
    if n_tokens < 2 {
        return Err(format!(
            "the text is {n_tokens} token(s); perplexity needs at least 2 (one to predict from, one to score)"
        )
        .into());
    }
    let mut out = Vec::new();
    let mut prev_end = 0;
    for begin in (0..n_tokens).step_by(stride) {
        let end = (begin + max_length).min(n_tokens);
        // The window's first token has no context inside it, so it can
        // only be scored by an earlier window.
        let score_from = prev_end.max(begin + 1);
        out.push(Window {
            begin,
            end,
            score_from,
        });
        prev_end = end;
        if end == n_tokens {
            break;
        }
    }
    Ok(out)
}

fn check(max_length: usize, stride: usize) -> Result<()> {
    if max_length < 2 {
        return Err(Error::option(
            "max_length",
            format!(
                "must be at least 2 (a token to predict from and one to score), got {max_length}"
            ),
        ));
    }
    if stride == 0 {
        return Err(Error::option("stride", "must be at least 1"));
    }
    if stride > max_length {
        return Err(Error::option(
            "stride",
            format!(
                "{stride} is larger than `max_length` {max_length}: the tokens between windows would never be scored"
            ),
        ));
    }
    Ok(())
}

/// `max_length` and `stride`; `None` takes the defaults: the model's
/// context capped at 1024, and half of `max_length`.
#[derive(Clone, Copy, Debug, Default)]
pub struct PerplexityOptions {
    pub max_length: Option<usize>,
    pub stride: Option<usize>,
}

impl PerplexityOptions {
    /// The checks that need no model: a given `stride` and `max_length`
    /// (both, when both are given).
    pub fn check(&self) -> Result<()> {
        match (self.max_length, self.stride) {
            (Some(m), Some(s)) => check(m, s),
            (Some(m), None) => check(m, (m / 2).max(1)),
            (None, Some(0)) => check(2, 0),
            _ => Ok(()),
        }
    }

    /// `(max_length, stride)` for a model with context `context_len`.
    pub fn resolve(&self, context_len: usize) -> Result<(usize, usize)> {
        let max_length = self.max_length.unwrap_or(context_len.min(1024));
        if max_length > context_len {
            return Err(Error::option(
                "max_length",
                format!("{max_length} is longer than the model's context of {context_len} tokens"),
            ));
        }
        let stride = self.stride.unwrap_or((max_length / 2).max(1));
        check(max_length, stride)?;
        Ok((max_length, stride))
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Perplexity {
    /// Tokens in the text.
    pub tokens: usize,
    /// Tokens whose log-probability was counted.
    pub scored: usize,
    pub windows: usize,
    pub max_length: usize,
    pub stride: usize,
    /// Σ -log p over the scored tokens, in nats.
    pub nll_sum: f64,
}

impl Perplexity {
    /// Mean negative log-likelihood per scored token, in nats.
    pub fn nats_per_token(&self) -> f64 {
        self.nll_sum / self.scored as f64
    }

    pub fn perplexity(&self) -> f64 {
        self.nats_per_token().exp()
    }
}

/// The perplexity of `ids` under `model`; `on_window(done, total)` is
/// called after each window (for a progress bar).
pub fn perplexity(
    model: &dyn CausalLm,
    ids: &[u32],
    options: &PerplexityOptions,
    on_window: &mut dyn FnMut(usize, usize),
) -> Result<Perplexity> {
    let (max_length, stride) = options.resolve(model.context_len())?;
    let windows = windows(ids.len(), max_length, stride)?;
    let _g = no_grad();
    let (mut nll_sum, mut scored) = (0.0f64, 0usize);
    for (k, w) in windows.iter().enumerate() {
        let input = &ids[w.begin..w.end];
        let lp = target_log_probs(
            model,
            input,
            w.score_from - 1 - w.begin,
            &ids[w.score_from..w.end],
        )?;
        nll_sum -= lp.iter().sum::<f64>();
        scored += lp.len();
        on_window(k + 1, windows.len());
    }
    Ok(Perplexity {
        tokens: ids.len(),
        scored,
        windows: windows.len(),
        max_length,
        stride,
        nll_sum,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use kindling_models::llama::{Llama, LlamaConfig};
    use kindling_tensor::{Rng, Tensor};

    fn tiny() -> Llama {
        let config = LlamaConfig {
            vocab_size: 13,
            hidden_size: 16,
            intermediate_size: 24,
            num_hidden_layers: 2,
            num_attention_heads: 4,
            num_key_value_heads: 2,
            head_dim: None,
            max_position_embeddings: 16,
            rms_norm_eps: 1e-5,
            rope_theta: 10000.0,
            tie_word_embeddings: true,
            bos_token_id: None,
            eos_token_id: None,
            qk_norm: false,
        };
        Llama::new(config, &mut Rng::new(11)).unwrap()
    }

    fn ids(n: usize) -> Vec<u32> {
        (0..n).map(|i| ((i * 7 + 3) % 13) as u32).collect()
    }

    #[test]
    fn windows_follow_the_guide_and_score_each_token_once() {
        // 10 tokens, windows of 4 every 2: [0,4) [2,6) [4,8) [6,10).
        let w = windows(10, 4, 2).unwrap();
        let spans: Vec<_> = w.iter().map(|w| (w.begin, w.end, w.score_from)).collect();
        assert_eq!(spans, [(0, 4, 1), (2, 6, 4), (4, 8, 6), (6, 10, 8)]);
        for (n, max_length, stride) in [(10, 4, 2), (11, 4, 3), (37, 8, 1), (37, 8, 5), (5, 16, 8)]
        {
            let mut times = vec![0; n];
            for w in windows(n, max_length, stride).unwrap() {
                assert!(w.end - w.begin <= max_length && w.score_from > w.begin);
                for count in &mut times[w.score_from..w.end] {
                    *count += 1;
                }
            }
            assert_eq!(times[0], 0);
            assert!(
                times[1..].iter().all(|&c| c == 1),
                "{n} {max_length} {stride}: {times:?}"
            );
        }
        // Disjoint chunks: each chunk's first token has no context.
        let w = windows(10, 4, 4).unwrap();
        let scored: usize = w.iter().map(|w| w.end - w.score_from).sum();
        assert_eq!((w.len(), scored), (3, 10 - 3));
    }

    #[test]
    fn bad_window_options_name_the_option() {
        let e = |m, s| windows(10, m, s).unwrap_err().to_string();
        assert_eq!(e(4, 0), "stride must be at least 1");
        assert!(
            e(4, 5).starts_with("stride 5 is larger than `max_length` 4"),
            "{}",
            e(4, 5)
        );
        assert!(e(1, 1).starts_with("max_length must be at least 2"));
        assert!(windows(1, 4, 2)
            .unwrap_err()
            .to_string()
            .contains("1 token(s)"));
        let o = PerplexityOptions {
            max_length: Some(17),
            stride: None,
        };
        assert!(o
            .resolve(16)
            .unwrap_err()
            .to_string()
            .contains("longer than the model's context of 16"));
        assert_eq!(
            PerplexityOptions::default().resolve(2048).unwrap(),
            (1024, 512)
        );
        assert_eq!(PerplexityOptions::default().resolve(16).unwrap(), (16, 8));
    }

    /// Σ -log p of every token after the first, read off one full forward.
    fn plain_nll(m: &Llama, ids: &[u32]) -> f64 {
        let x =
            Tensor::from_vec_i64(ids.iter().map(|&i| i as i64).collect(), &[1, ids.len()]).unwrap();
        let lp = m
            .forward(&x, None)
            .unwrap()
            .log_softmax(-1)
            .unwrap()
            .to_vec_f32()
            .unwrap();
        (1..ids.len())
            .map(|t| -(lp[(t - 1) * 13 + ids[t] as usize] as f64))
            .sum()
    }

    #[test]
    fn one_window_is_the_plain_mean_nll_and_overlap_changes_it() {
        let m = tiny();
        let text = ids(16);
        let full = perplexity(
            &m,
            &text,
            &PerplexityOptions {
                max_length: Some(16),
                stride: Some(16),
            },
            &mut |_, _| {},
        )
        .unwrap();
        assert_eq!((full.windows, full.scored), (1, 15));
        assert!((full.nll_sum - plain_nll(&m, &text)).abs() < 1e-4);
        // Disjoint chunks of 8: two plain NLLs, 7 tokens each.
        let chunks = perplexity(
            &m,
            &text,
            &PerplexityOptions {
                max_length: Some(8),
                stride: Some(8),
            },
            &mut |_, _| {},
        )
        .unwrap();
        let want = plain_nll(&m, &text[..8]) + plain_nll(&m, &text[8..]);
        assert_eq!(chunks.scored, 14);
        assert!((chunks.nll_sum - want).abs() < 1e-4);
        // Overlapping windows score all 15, with more context than chunks.
        let mut calls = 0;
        let slid = perplexity(
            &m,
            &text,
            &PerplexityOptions {
                max_length: Some(8),
                stride: Some(2),
            },
            &mut |_, _| calls += 1,
        )
        .unwrap();
        assert_eq!((slid.scored, slid.windows, calls), (15, 5, 5));
        assert!((slid.nats_per_token() - chunks.nats_per_token()).abs() > 1e-6);
    }
}
