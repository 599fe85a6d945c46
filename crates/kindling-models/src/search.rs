//! Greedy decoding and beam search for sequence-to-sequence models: any
//! model that can feed one token per hypothesis and reorder its cache
//! ([`Incremental`]) — the encoder–decoder [`Translator`] and a GPT given
//! the source as a prompt.
//!
//! Beam search (as in Wu et al. 2016 and the usual toolkits): keep the `k`
//! best unfinished hypotheses by summed log-probability; at each step
//! extend each by every token, take the `2k` best candidates, move those
//! ending in EOS among the first `k` to the finished list and keep the first `k` others. A
//! finished hypothesis is ranked by `score / len^α` (`len` counts its
//! tokens with the EOS; α = `length_penalty`, 1 = per-token mean, 0 = raw
//! sum). The search stops when `k` hypotheses are finished and the best
//! unfinished one, ranked the same way at its current length, is worse than
//! the worst of them (Hugging Face's default stopping rule), or at
//! `max_len` tokens, when unfinished hypotheses compete as they are.

use crate::gpt::Gpt;
use crate::kv::KvCache;
use crate::translator::{DecodeState, Translator};
use kindling_tensor::{no_grad, Error, Result, Tensor};

/// A model mid-generation for some number of hypotheses (rows).
pub trait Incremental {
    /// Feeds one token per row; the next token's logits, `[rows, V]`.
    fn feed(&mut self, tokens: &[u32]) -> Result<Tensor>;
    /// Keeps rows `rows`, in that order (a row may repeat).
    fn select(&mut self, rows: &[usize]) -> Result<()>;
}

/// The encoder–decoder with its state for one source sentence.
pub struct TranslatorSteps<'a> {
    pub model: &'a Translator,
    pub state: DecodeState,
}

impl<'a> TranslatorSteps<'a> {
    pub fn new(model: &'a Translator, src: &[u32]) -> Result<Self> {
        Ok(TranslatorSteps {
            model,
            state: model.start(src)?,
        })
    }
}

impl Incremental for TranslatorSteps<'_> {
    fn feed(&mut self, tokens: &[u32]) -> Result<Tensor> {
        self.model.step(&mut self.state, tokens)
    }
    fn select(&mut self, rows: &[usize]) -> Result<()> {
        self.state.select_rows(rows)
    }
}

/// A decoder-only model that has read a prompt (the source sentence).
pub struct GptSteps<'a> {
    pub model: &'a Gpt,
    pub cache: KvCache,
}

impl<'a> GptSteps<'a> {
    /// Runs `prompt` through the model into a fresh cache.
    pub fn new(model: &'a Gpt, prompt: &[u32]) -> Result<Self> {
        let mut cache = model.new_cache();
        if !prompt.is_empty() {
            let ids = Tensor::from_vec_i64(
                prompt.iter().map(|&i| i as i64).collect(),
                &[1, prompt.len()],
            )?;
            model.hidden_cached(&ids, Some(&mut cache))?;
        }
        Ok(GptSteps { model, cache })
    }
}

impl Incremental for GptSteps<'_> {
    fn feed(&mut self, tokens: &[u32]) -> Result<Tensor> {
        let ids = Tensor::from_vec_i64(
            tokens.iter().map(|&i| i as i64).collect(),
            &[tokens.len(), 1],
        )?;
        self.model.forward_last(&ids, Some(&mut self.cache))
    }
    fn select(&mut self, rows: &[usize]) -> Result<()> {
        self.cache.select_rows(rows)
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct SearchOptions {
    /// Hypotheses kept; 1 is greedy decoding.
    pub beam: usize,
    /// Most tokens generated, EOS included.
    pub max_len: usize,
    pub eos: u32,
    /// α in `score / len^α` (beam search only).
    pub length_penalty: f32,
    /// Tokens never generated (padding, a start token, ...).
    pub banned: Vec<u32>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Hypothesis {
    /// The generated tokens, without the start token and the EOS.
    pub tokens: Vec<u32>,
    /// Summed log-probability of the tokens and the EOS (if reached).
    pub log_prob: f64,
    /// Whether it ended with EOS (else it was cut at `max_len`).
    pub finished: bool,
}

/// `log_softmax` of each row of `logits [rows, V]`, in f64, with the
/// `banned` tokens at −∞ (renormalized without them).
fn log_probs(logits: &Tensor, banned: &[u32]) -> Result<Vec<Vec<f64>>> {
    let v = *logits.shape().last().unwrap_or(&0);
    if logits.rank() != 2 || v == 0 {
        return Err(Error::shape(
            "search",
            format!("logits must be [rows, V], got {:?}", logits.shape()),
        ));
    }
    Ok(logits
        .to_vec_f32()?
        .chunks(v)
        .map(|row| {
            let mut row: Vec<f64> = row.iter().map(|&x| x as f64).collect();
            for &b in banned {
                if let Some(x) = row.get_mut(b as usize) {
                    *x = f64::NEG_INFINITY;
                }
            }
            let m = row.iter().fold(f64::NEG_INFINITY, |a, &b| a.max(b));
            let z = row.iter().map(|&x| (x - m).exp()).sum::<f64>().ln() + m;
            row.iter().map(|&x| x - z).collect()
        })
        .collect())
}

/// Greedy decoding: the most likely token at every step until EOS. Calls
/// `each_step` after every feed (rows = 1), e.g. to read attention.
pub fn greedy(
    model: &mut dyn Incremental,
    start: u32,
    opts: &SearchOptions,
    each_step: &mut dyn FnMut(&dyn Incremental),
) -> Result<Hypothesis> {
    let _g = no_grad();
    let mut tokens = Vec::new();
    let mut log_prob = 0.0;
    let mut last = start;
    for _ in 0..opts.max_len {
        let lp = log_probs(&model.feed(&[last])?, &opts.banned)?.remove(0);
        each_step(model);
        let (best, &p) = lp
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1).then(b.0.cmp(&a.0)))
            .expect("a vocabulary of at least one token");
        log_prob += p;
        if best as u32 == opts.eos {
            return Ok(Hypothesis {
                tokens,
                log_prob,
                finished: true,
            });
        }
        tokens.push(best as u32);
        last = best as u32;
    }
    Ok(Hypothesis {
        tokens,
        log_prob,
        finished: false,
    })
}

fn ranked(h: &Hypothesis, alpha: f32) -> f64 {
    let len = h.tokens.len() + usize::from(h.finished);
    h.log_prob / (len.max(1) as f64).powf(alpha as f64)
}

/// Beam search with `opts.beam` hypotheses (see the module's text); greedy
/// when the beam is 1.
pub fn beam_search(
    model: &mut dyn Incremental,
    start: u32,
    opts: &SearchOptions,
) -> Result<Hypothesis> {
    if opts.beam == 0 || opts.max_len == 0 {
        return Err(Error::msg("`beam` and `max_len` must be at least 1"));
    }
    if opts.beam == 1 {
        return greedy(model, start, opts, &mut |_| {});
    }
    let _g = no_grad();
    let k = opts.beam;
    let mut live = vec![Hypothesis {
        tokens: Vec::new(),
        log_prob: 0.0,
        finished: false,
    }];
    let mut last = vec![start];
    let mut done: Vec<Hypothesis> = Vec::new();
    for _ in 0..opts.max_len {
        let lp = log_probs(&model.feed(&last)?, &opts.banned)?;
        // Every (row, token) extension, best first; ties to the lower row, token.
        let mut cand: Vec<(f64, usize, u32)> = lp
            .iter()
            .enumerate()
            .flat_map(|(r, row)| {
                let base = live[r].log_prob;
                row.iter()
                    .enumerate()
                    .map(move |(t, &p)| (base + p, r, t as u32))
            })
            .filter(|c| c.0 > f64::NEG_INFINITY)
            .collect();
        if cand.is_empty() {
            live.clear();
            break;
        }
        let keep = (2 * k).min(cand.len());
        cand.select_nth_unstable_by(keep - 1, |a, b| {
            b.0.total_cmp(&a.0).then((a.1, a.2).cmp(&(b.1, b.2)))
        });
        cand.truncate(keep);
        cand.sort_by(|a, b| b.0.total_cmp(&a.0).then((a.1, a.2).cmp(&(b.1, b.2))));
        let mut next = Vec::with_capacity(k);
        let mut rows = Vec::with_capacity(k);
        for (i, (score, r, t)) in cand.into_iter().enumerate() {
            if t == opts.eos {
                // As in Hugging Face: an EOS counts only among the k best.
                if i >= k {
                    continue;
                }
                done.push(Hypothesis {
                    tokens: live[r].tokens.clone(),
                    log_prob: score,
                    finished: true,
                });
            } else if next.len() < k {
                let mut tokens = live[r].tokens.clone();
                tokens.push(t);
                next.push(Hypothesis {
                    tokens,
                    log_prob: score,
                    finished: false,
                });
                rows.push(r);
            }
        }
        done.sort_by(|a, b| {
            ranked(b, opts.length_penalty).total_cmp(&ranked(a, opts.length_penalty))
        });
        done.truncate(k);
        let best_live = next
            .iter()
            .map(|h| ranked(h, opts.length_penalty))
            .fold(f64::NEG_INFINITY, f64::max);
        if next.is_empty()
            || (done.len() == k && best_live < ranked(&done[k - 1], opts.length_penalty))
        {
            live.clear();
            break;
        }
        model.select(&rows)?;
        last = next
            .iter()
            .map(|h| *h.tokens.last().expect("extended"))
            .collect();
        live = next;
    }
    // Cut at max_len: the unfinished hypotheses compete as they are.
    let mut all = done;
    all.extend(live);
    all.into_iter()
        .max_by(|a, b| ranked(a, opts.length_penalty).total_cmp(&ranked(b, opts.length_penalty)))
        .ok_or_else(|| Error::msg("beam search produced no hypothesis"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A toy model whose next-token distribution depends only on the last
    /// token, from a fixed table of probabilities.
    struct Table {
        probs: Vec<Vec<f32>>,
        rows: usize,
        fed: Vec<Vec<u32>>,
    }

    impl Incremental for Table {
        fn feed(&mut self, tokens: &[u32]) -> Result<Tensor> {
            assert_eq!(tokens.len(), self.rows);
            self.fed.push(tokens.to_vec());
            let v = self.probs[0].len();
            let data: Vec<f32> = tokens
                .iter()
                .flat_map(|&t| self.probs[t as usize].iter().map(|p| p.ln()))
                .collect();
            Tensor::from_vec(data, &[tokens.len(), v])
        }
        fn select(&mut self, rows: &[usize]) -> Result<()> {
            self.rows = rows.len();
            Ok(())
        }
    }

    fn opts(beam: usize) -> SearchOptions {
        SearchOptions {
            beam,
            max_len: 5,
            eos: 0,
            length_penalty: 0.0,
            banned: Vec::new(),
        }
    }

    /// Start token 3. Greedy takes 1 (0.5) then must end (EOS 0.3 of token
    /// 1's row is the best) — but 2 (0.4) leads to EOS with 0.9.
    fn table() -> Table {
        Table {
            probs: vec![
                vec![1.0, 0.0, 0.0, 0.0],   // after EOS (unused)
                vec![0.3, 0.25, 0.2, 0.25], // after 1
                vec![0.9, 0.05, 0.05, 0.0], // after 2
                vec![0.05, 0.5, 0.4, 0.05], // after the start token 3
            ],
            rows: 1,
            fed: Vec::new(),
        }
    }

    #[test]
    fn greedy_takes_the_locally_best_token_and_beam_finds_the_better_sequence() {
        let mut t = table();
        let g = beam_search(&mut t, 3, &opts(1)).unwrap();
        assert_eq!(g.tokens, vec![1]);
        assert!(g.finished);
        assert!((g.log_prob - (0.5f64.ln() + 0.3f64.ln())).abs() < 1e-6);
        let mut t = table();
        let b = beam_search(&mut t, 3, &opts(2)).unwrap();
        assert_eq!(b.tokens, vec![2]);
        assert!((b.log_prob - (0.4f64.ln() + 0.9f64.ln())).abs() < 1e-6);
        // The second step fed both hypotheses' last tokens.
        assert_eq!(t.fed[1], vec![1, 2]);
        // With token 1 banned, greedy takes 2.
        let mut t = table();
        let o = SearchOptions {
            banned: vec![1],
            ..opts(1)
        };
        assert_eq!(beam_search(&mut t, 3, &o).unwrap().tokens, vec![2]);
    }

    #[test]
    fn gpt_steps_with_reordered_rows_give_the_full_forward_numbers() {
        use crate::gpt::GptConfig;
        let config = GptConfig {
            n_layer: 2,
            n_head: 2,
            n_embd: 8,
            block_size: 8,
            vocab_size: 11,
            dropout: 0.0,
            tie_weights: true,
            bias: true,
            activation: Default::default(),
        };
        let m = Gpt::new(config, &mut kindling_tensor::Rng::new(2)).unwrap();
        let _g = no_grad();
        let (a, b) = ([5i64, 6, 3, 7, 8], [5i64, 6, 3, 9, 10]);
        let full = |ids: &[i64]| {
            m.forward_ids(&Tensor::from_vec_i64(ids.to_vec(), &[1, 5]).unwrap(), None)
                .unwrap()
                .to_vec_f32()
                .unwrap()
        };
        let (fa, fb) = (full(&a), full(&b));
        let mut s = GptSteps::new(&m, &[5, 6]).unwrap();
        s.feed(&[3]).unwrap();
        // Two hypotheses from one, then swapped: rows follow their tokens.
        s.select(&[0, 0]).unwrap();
        s.feed(&[7, 9]).unwrap();
        s.select(&[1, 0]).unwrap();
        let got = s.feed(&[10, 8]).unwrap().to_vec_f32().unwrap();
        for (row, want) in [(0, &fb), (1, &fa)] {
            for (x, y) in got[row * 11..(row + 1) * 11].iter().zip(&want[4 * 11..]) {
                assert!((x - y).abs() < 1e-5, "{x} vs {y}");
            }
        }
    }

    #[test]
    fn a_sequence_cut_at_max_len_is_unfinished_and_bad_options_are_refused() {
        let mut t = Table {
            probs: vec![vec![0.1, 0.9]; 2],
            rows: 1,
            fed: Vec::new(),
        };
        let g = beam_search(&mut t, 1, &opts(1)).unwrap();
        assert_eq!(g.tokens, vec![1; 5]);
        assert!(!g.finished);
        let mut t = Table {
            probs: vec![vec![0.1, 0.9]; 2],
            rows: 1,
            fed: Vec::new(),
        };
        let b = beam_search(&mut t, 1, &opts(3)).unwrap();
        assert!(b.tokens.iter().all(|&x| x == 1));
        assert!(beam_search(&mut t, 1, &opts(0)).is_err());
    }
}
