//! One generator for every command and the server: feeds a prompt through
//! a model's KV cache, samples tokens one at a time, streams the text as it
//! grows and stops at an end-of-sequence id, a stop string, the token budget
//! or the model's context.
//!
//! A generator keeps its cache between calls: when the next prompt begins
//! with everything already fed (a chat's history plus a new turn), only the
//! new tokens are run, so re-feeding the history each turn costs nothing.

use crate::gpt::Gpt;
use crate::kv::KvCache;
use crate::llama::{Llama, RopeAngles};
use crate::sampling::Sampling;
use kindling_tensor::{cat, no_grad, on_kernel_threads, Error, Result, Rng, Tensor};

/// What a generator needs of a model.
pub trait CausalLm: Send + Sync {
    /// Logits `[B, V]` of the last position of `ids [B, T]`, continuing the
    /// sequence held in `cache`.
    fn forward_last(&self, ids: &Tensor, cache: &mut KvCache) -> Result<Tensor>;
    /// Logits `[B, T, V]` of the next token at every position of
    /// `ids [B, T]`, from one forward starting at position 0: row `t`
    /// scores the token after `ids[..=t]`. What scoring a text needs
    /// (perplexity, the log-likelihood of an answer), where generation only
    /// needs the last row.
    fn logits(&self, ids: &Tensor) -> Result<Tensor>;
    /// `logits` as log-probabilities (an f32 log-softmax).
    fn log_probs(&self, ids: &Tensor) -> Result<Tensor> {
        self.logits(ids)?.log_softmax(-1)
    }
    fn new_cache(&self) -> KvCache;
    /// Logits `[N, V]` for one new token in each of N independent sequences,
    /// `tokens[i]` continuing `caches[i]` (continuous batching). Row i must
    /// equal [`CausalLm::forward_last`] of that token on that cache alone;
    /// this default runs them one at a time, models that can share the
    /// weight passes override it.
    fn decode_batch(&self, tokens: &[u32], caches: &mut [&mut KvCache]) -> Result<Tensor> {
        let rows = tokens
            .iter()
            .zip(caches.iter_mut())
            .map(|(&t, c)| self.forward_last(&ids_tensor(&[t])?, c))
            .collect::<Result<Vec<_>>>()?;
        cat(&rows.iter().collect::<Vec<_>>(), 0)
    }
    /// Longest sequence the model accepts.
    fn context_len(&self) -> usize;
    fn vocab_size(&self) -> usize;
}

impl CausalLm for Llama {
    fn forward_last(&self, ids: &Tensor, cache: &mut KvCache) -> Result<Tensor> {
        Llama::forward_last(self, ids, Some(cache))
    }
    fn logits(&self, ids: &Tensor) -> Result<Tensor> {
        if self.rope_angles == RopeAngles::Ggml && !kindling_tensor::is_grad_enabled() {
            // A model that follows llama.cpp scores a window as llama.cpp
            // evaluates a prompt: through a fresh cache, in its arithmetic.
            let mut cache = self.new_cache();
            return Llama::forward(self, ids, Some(&mut cache));
        }
        Llama::forward(self, ids, None)
    }
    fn new_cache(&self) -> KvCache {
        Llama::new_cache(self)
    }
    fn decode_batch(&self, tokens: &[u32], caches: &mut [&mut KvCache]) -> Result<Tensor> {
        Llama::decode_batch(self, tokens, caches)
    }
    fn context_len(&self) -> usize {
        self.config.max_position_embeddings
    }
    fn vocab_size(&self) -> usize {
        self.config.vocab_size
    }
}

impl CausalLm for Gpt {
    fn forward_last(&self, ids: &Tensor, cache: &mut KvCache) -> Result<Tensor> {
        Gpt::forward_last(self, ids, Some(cache))
    }
    fn logits(&self, ids: &Tensor) -> Result<Tensor> {
        Gpt::forward_cached(self, ids, None)
    }
    fn new_cache(&self) -> KvCache {
        Gpt::new_cache(self)
    }
    fn context_len(&self) -> usize {
        self.config.block_size
    }
    fn vocab_size(&self) -> usize {
        self.config.vocab_size
    }
}

#[derive(Clone, Debug)]
pub struct GenerateOptions {
    pub max_new_tokens: usize,
    pub sampling: Sampling,
    /// CTRL's penalty (Keskar et al. 2019), as `transformers` applies it:
    /// the logit of every token already in the sequence is divided by it
    /// when positive and multiplied by it when negative. 1 is off.
    pub repetition_penalty: f32,
    /// Generation ends after any of these ids (kept in `ids`, not in `text`).
    pub stop_ids: Vec<u32>,
    /// Generation ends when the text contains one of these; the text is cut
    /// before it.
    pub stop_strings: Vec<String>,
    pub seed: u64,
    /// When the context is full: `false` ends generation (`StopReason::Context`);
    /// `true` keeps going on the last half of the context, re-read into a
    /// fresh cache (for models with learned positions, which cannot slide
    /// one position at a time), and a prompt longer than the context keeps
    /// its last tokens.
    pub slide: bool,
}

impl GenerateOptions {
    pub fn greedy(max_new_tokens: usize) -> GenerateOptions {
        GenerateOptions {
            max_new_tokens,
            sampling: Sampling {
                temperature: 0.0,
                top_k: None,
                top_p: None,
            },
            repetition_penalty: 1.0,
            stop_ids: Vec::new(),
            stop_strings: Vec::new(),
            seed: 0,
            slide: false,
        }
    }

    pub fn validate(&self) -> Result<()> {
        self.sampling.validate()?;
        if !(self.repetition_penalty.is_finite() && self.repetition_penalty > 0.0) {
            return Err(Error::msg(format!(
                "`repetition_penalty` must be positive, got {}",
                self.repetition_penalty
            )));
        }
        Ok(())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopReason {
    /// An id of `stop_ids` (end of sequence / end of turn).
    Eos,
    StopString,
    MaxTokens,
    /// The model's context is full.
    Context,
    /// The streaming callback asked to stop.
    Caller,
}

impl StopReason {
    pub fn name(self) -> &'static str {
        match self {
            StopReason::Eos => "eos",
            StopReason::StopString => "stop_string",
            StopReason::MaxTokens => "max_tokens",
            StopReason::Context => "context",
            StopReason::Caller => "caller",
        }
    }
}

#[derive(Clone, Debug)]
pub struct Generation {
    /// The new ids, including a final stop id.
    pub ids: Vec<u32>,
    /// Their text, without a stop id's text or a stop string.
    pub text: String,
    pub stop: StopReason,
    /// Prompt tokens actually run (the rest came from the cache).
    pub prompt_tokens_fed: usize,
    pub prefill_secs: f64,
    pub decode_secs: f64,
}

pub struct Generator<'m> {
    model: &'m dyn CausalLm,
    cache: KvCache,
    /// The ids whose keys and values are in the cache.
    fed: Vec<u32>,
    rng: Rng,
    pub options: GenerateOptions,
}

/// A prompt a model can run: not empty, every id in the vocabulary, no
/// longer than the context.
pub(crate) fn check_prompt(model: &dyn CausalLm, prompt: &[u32]) -> Result<()> {
    let (vocab, ctx) = (model.vocab_size(), model.context_len());
    if prompt.is_empty() {
        return Err(Error::msg("the prompt is empty"));
    }
    if let Some(bad) = prompt.iter().find(|&&i| i as usize >= vocab) {
        return Err(Error::msg(format!(
            "prompt token id {bad} is outside the model's vocabulary of {vocab}"
        )));
    }
    if prompt.len() > ctx {
        return Err(Error::msg(format!(
            "the prompt has {} tokens, longer than the model's context of {ctx}",
            prompt.len()
        )));
    }
    Ok(())
}

pub(crate) fn ids_tensor(ids: &[u32]) -> Result<Tensor> {
    Tensor::from_vec_i64(ids.iter().map(|&i| i as i64).collect(), &[1, ids.len()])
}

/// The length of the longest suffix of `text` that begins some stop string
/// (held back while streaming, since the next token may complete it).
fn partial_stop_len(text: &str, stops: &[String]) -> usize {
    stops
        .iter()
        .flat_map(|s| {
            (1..s.len())
                .filter(move |&n| s.is_char_boundary(n))
                .map(move |n| &s[..n])
        })
        .filter(|p| text.ends_with(p))
        .map(|p| p.len())
        .max()
        .unwrap_or(0)
}

/// What to do after a token is chosen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Next {
    /// Run this token through the model and come back with its logits.
    Feed(u32),
    Done(StopReason),
}

/// The token-by-token rules of generation for one sequence, apart from
/// running the model: sampling (with the repetition penalty), the stop ids,
/// stop strings and token budget, and streaming only settled text. The
/// [`Generator`] and the [`BatchGenerator`] both step sequences through it,
/// so one request gives the same tokens either way.
#[derive(Default)]
pub(crate) struct Decoding {
    ids: Vec<u32>,
    text: String,
    /// Bytes of `text` already streamed.
    emitted: usize,
}

impl Decoding {
    /// Chooses the next token from `logits` (`seen`: every id in the
    /// sequence so far, for the repetition penalty), streams what text it
    /// settles, and says whether to feed it or stop.
    pub(crate) fn advance(
        &mut self,
        mut logits: Vec<f32>,
        seen: &[u32],
        options: &GenerateOptions,
        rng: &mut Rng,
        decode: &dyn Fn(&[u32]) -> String,
        on_text: &mut dyn FnMut(&str) -> bool,
    ) -> Next {
        if self.ids.len() >= options.max_new_tokens {
            return Next::Done(StopReason::MaxTokens);
        }
        let p = options.repetition_penalty;
        if p != 1.0 {
            let mut seen = seen.to_vec();
            seen.sort_unstable();
            seen.dedup();
            for &i in &seen {
                let l = &mut logits[i as usize];
                *l = if *l > 0.0 { *l / p } else { *l * p };
            }
        }
        let next = options.sampling.sample(&logits, rng) as u32;
        self.ids.push(next);
        if options.stop_ids.contains(&next) {
            return Next::Done(StopReason::Eos);
        }
        self.text = decode(&self.ids);
        if let Some(at) = options
            .stop_strings
            .iter()
            .filter_map(|s| self.text.find(s.as_str()))
            .min()
        {
            self.text.truncate(at);
            return Next::Done(StopReason::StopString);
        }
        // Hold back an incomplete UTF-8 sequence and a possible stop string.
        let settled = self.text.trim_end_matches('\u{FFFD}');
        let settled = &settled[..settled.len() - partial_stop_len(settled, &options.stop_strings)];
        if settled.len() > self.emitted && settled.is_char_boundary(self.emitted) {
            let go_on = on_text(&settled[self.emitted..]);
            self.emitted = settled.len();
            if !go_on {
                return Next::Done(StopReason::Caller);
            }
        }
        // The last token is not run: nothing would read its logits.
        if self.ids.len() >= options.max_new_tokens {
            return Next::Done(StopReason::MaxTokens);
        }
        Next::Feed(next)
    }

    /// Streams the text still held back and returns the new ids and the
    /// whole text.
    pub(crate) fn finish(
        mut self,
        stop: StopReason,
        decode: &dyn Fn(&[u32]) -> String,
        on_text: &mut dyn FnMut(&str) -> bool,
    ) -> (Vec<u32>, String) {
        if stop == StopReason::Eos {
            self.text = decode(&self.ids[..self.ids.len() - 1]);
        }
        if self.text.len() > self.emitted && self.text.is_char_boundary(self.emitted) {
            on_text(&self.text[self.emitted..]);
        }
        (self.ids, self.text)
    }
}

impl<'m> Generator<'m> {
    pub fn new(model: &'m dyn CausalLm, options: GenerateOptions) -> Result<Generator<'m>> {
        options.validate()?;
        Ok(Generator {
            cache: model.new_cache(),
            model,
            fed: Vec::new(),
            rng: Rng::new(options.seed),
            options,
        })
    }

    /// Forgets the cached sequence.
    pub fn reset(&mut self) {
        self.cache.clear();
        self.fed.clear();
    }

    /// Runs `prompt` (reusing the cache when it extends what was fed) and
    /// returns the logits after its last token.
    fn prefill(&mut self, prompt: &[u32]) -> Result<(Vec<f32>, usize)> {
        let ctx = self.model.context_len();
        let prompt = if self.options.slide && prompt.len() > ctx {
            &prompt[prompt.len() - ctx..]
        } else {
            prompt
        };
        check_prompt(self.model, prompt)?;
        // Keep the cache only if it holds a strict prefix of the prompt.
        if !(self.fed.len() < prompt.len() && prompt.starts_with(&self.fed)) {
            self.reset();
        }
        let new = &prompt[self.fed.len()..];
        let (model, cache) = (self.model, &mut self.cache);
        let ids = ids_tensor(new)?;
        let logits = on_kernel_threads(|| model.forward_last(&ids, cache))?;
        self.fed.extend_from_slice(new);
        Ok((logits.to_vec_f32()?, new.len()))
    }

    /// Generates a continuation of `prompt`. `decode` turns ids into text
    /// (the tokenizer's); `on_text` receives each new piece of text as it is
    /// settled (never half a character or the start of a stop string) and
    /// returns `false` to stop.
    pub fn generate(
        &mut self,
        prompt: &[u32],
        decode: &dyn Fn(&[u32]) -> String,
        on_text: &mut dyn FnMut(&str) -> bool,
    ) -> Result<Generation> {
        let _g = no_grad();
        let t0 = std::time::Instant::now();
        let (mut logits, fed) = self.prefill(prompt)?;
        let prefill_secs = t0.elapsed().as_secs_f64();
        let t1 = std::time::Instant::now();
        let mut dec = Decoding::default();
        let stop = loop {
            let next = match dec.advance(
                logits,
                &self.fed,
                &self.options,
                &mut self.rng,
                decode,
                on_text,
            ) {
                Next::Feed(next) => next,
                Next::Done(stop) => break stop,
            };
            let ctx = self.model.context_len();
            let l = if self.fed.len() < ctx {
                self.fed.push(next);
                let (model, cache) = (self.model, &mut self.cache);
                let ids = ids_tensor(&[next])?;
                on_kernel_threads(|| model.forward_last(&ids, cache))?
            } else if self.options.slide {
                // The last half of the context (ending with `next`) again.
                let keep = (ctx / 2).max(1);
                let mut window = self.fed[self.fed.len() + 1 - keep..].to_vec();
                window.push(next);
                self.reset();
                let (model, cache) = (self.model, &mut self.cache);
                let ids = ids_tensor(&window)?;
                let l = on_kernel_threads(|| model.forward_last(&ids, cache))?;
                self.fed = window;
                l
            } else {
                break StopReason::Context;
            };
            logits = l.to_vec_f32()?;
        };
        let (ids, text) = dec.finish(stop, decode, on_text);
        Ok(Generation {
            ids,
            text,
            stop,
            prompt_tokens_fed: fed,
            prefill_secs,
            decode_secs: t1.elapsed().as_secs_f64(),
        })
    }

    /// Each prompt generated in turn from a fresh cache (the same options
    /// and random stream as one call after another).
    pub fn generate_batch(
        &mut self,
        prompts: &[Vec<u32>],
        decode: &dyn Fn(&[u32]) -> String,
    ) -> Result<Vec<Generation>> {
        prompts
            .iter()
            .map(|p| {
                self.reset();
                self.generate(p, decode, &mut |_| true)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llama::LlamaConfig;

    fn tiny() -> Llama {
        let config = LlamaConfig {
            vocab_size: 11,
            hidden_size: 16,
            intermediate_size: 24,
            num_hidden_layers: 2,
            num_attention_heads: 4,
            num_key_value_heads: 2,
            head_dim: None,
            max_position_embeddings: 32,
            rms_norm_eps: 1e-5,
            rope_theta: 10000.0,
            tie_word_embeddings: true,
            bos_token_id: None,
            eos_token_id: None,
            qk_norm: false,
        };
        Llama::new(config, &mut Rng::new(5)).unwrap()
    }

    fn letters(ids: &[u32]) -> String {
        ids.iter().map(|&i| (b'a' + i as u8) as char).collect()
    }

    /// `log_probs`'s last row is `log_softmax(forward_last)` from an empty
    /// cache, and every row is a normalised distribution.
    fn log_probs_last_row_is_forward_last(m: &dyn CausalLm, ids: &[u32]) {
        let _g = no_grad();
        let x = ids_tensor(ids).unwrap();
        let all = m.log_probs(&x).unwrap();
        let v = m.vocab_size();
        assert_eq!(all.shape(), &[1, ids.len(), v]);
        let all = all.to_vec_f32().unwrap();
        let last = m.forward_last(&x, &mut m.new_cache()).unwrap();
        let want = last.log_softmax(-1).unwrap().to_vec_f32().unwrap();
        let got = &all[(ids.len() - 1) * v..];
        for (g, w) in got.iter().zip(&want) {
            assert!((g - w).abs() < 1e-5, "{g} vs {w}");
        }
        for row in all.chunks(v) {
            let total: f64 = row.iter().map(|&l| (l as f64).exp()).sum();
            assert!((total - 1.0).abs() < 1e-5, "a row sums to {total}");
        }
        // Row 0 sees only the first token: the same as scoring it alone.
        let first = m.log_probs(&ids_tensor(&ids[..1]).unwrap()).unwrap();
        for (g, w) in all[..v].iter().zip(first.to_vec_f32().unwrap()) {
            assert!((g - w).abs() < 1e-5, "{g} vs {w}");
        }
    }

    #[test]
    fn llama_log_probs_last_row_equals_forward_last() {
        log_probs_last_row_is_forward_last(&tiny(), &[1, 4, 2, 9, 3]);
    }

    #[test]
    fn gpt_log_probs_last_row_equals_forward_last() {
        let config = crate::gpt::GptConfig {
            n_layer: 2,
            n_head: 2,
            n_embd: 8,
            block_size: 8,
            vocab_size: 7,
            dropout: 0.0,
            tie_weights: true,
            bias: true,
            activation: Default::default(),
        };
        let m = Gpt::new(config, &mut Rng::new(3)).unwrap();
        log_probs_last_row_is_forward_last(&m, &[1, 6, 0, 2, 5, 3]);
    }

    #[test]
    fn cached_generation_equals_full_recomputation() {
        let m = tiny();
        let prompt = [1u32, 2, 3];
        let mut g = Generator::new(&m, GenerateOptions::greedy(6)).unwrap();
        let out = g.generate(&prompt, &letters, &mut |_| true).unwrap();
        // Without a cache: argmax of the full forward over the growing sequence.
        let mut seq: Vec<u32> = prompt.to_vec();
        for _ in 0..6 {
            let l = m.forward(&ids_tensor(&seq).unwrap(), None).unwrap();
            let t = seq.len();
            let last = l.narrow(1, t - 1, 1).unwrap().to_vec_f32().unwrap();
            let next = last
                .iter()
                .enumerate()
                .max_by(|a, b| a.1.total_cmp(b.1))
                .unwrap()
                .0;
            seq.push(next as u32);
        }
        assert_eq!(out.ids, seq[3..]);
        assert_eq!(out.stop, StopReason::MaxTokens);
    }

    #[test]
    fn a_prompt_that_extends_the_cache_feeds_only_its_new_tokens() {
        let m = tiny();
        let mut g = Generator::new(&m, GenerateOptions::greedy(3)).unwrap();
        let first = g.generate(&[1, 2], &letters, &mut |_| true).unwrap();
        assert_eq!(first.prompt_tokens_fed, 2);
        // The history plus the answer plus a new turn.
        let mut next: Vec<u32> = vec![1, 2];
        next.extend(&first.ids);
        next.extend([4, 5]);
        let second = g.generate(&next, &letters, &mut |_| true).unwrap();
        assert_eq!(second.prompt_tokens_fed, 3); // the last answer token and the new turn
        let mut fresh = Generator::new(&m, GenerateOptions::greedy(3)).unwrap();
        let again = fresh.generate(&next, &letters, &mut |_| true).unwrap();
        assert_eq!(again.ids, second.ids);
    }

    #[test]
    fn stop_ids_strings_and_context_end_generation() {
        let m = tiny();
        let mut opts = GenerateOptions::greedy(8);
        let mut g = Generator::new(&m, opts.clone()).unwrap();
        let free = g.generate(&[1], &letters, &mut |_| true).unwrap();
        opts.stop_ids = vec![free.ids[2]];
        let mut g = Generator::new(&m, opts.clone()).unwrap();
        let mut streamed = String::new();
        let out = g
            .generate(&[1], &letters, &mut |t| {
                streamed.push_str(t);
                true
            })
            .unwrap();
        let first_stop = free.ids.iter().position(|&i| i == free.ids[2]).unwrap();
        assert_eq!(out.stop, StopReason::Eos);
        assert_eq!(out.ids, free.ids[..=first_stop]);
        assert_eq!(out.text, letters(&free.ids[..first_stop]));
        assert_eq!(streamed, out.text);
        opts.stop_ids.clear();
        opts.stop_strings = vec![letters(&free.ids[1..3])];
        let mut g = Generator::new(&m, opts).unwrap();
        let out = g.generate(&[1], &letters, &mut |_| true).unwrap();
        assert_eq!(out.stop, StopReason::StopString);
        assert!(!out.text.contains(&letters(&free.ids[1..3])));
        let mut g = Generator::new(&m, GenerateOptions::greedy(100)).unwrap();
        let out = g.generate(&[1; 30], &letters, &mut |_| true).unwrap();
        assert_eq!(out.stop, StopReason::Context);
        let e = g
            .generate(&[1; 33], &letters, &mut |_| true)
            .unwrap_err()
            .to_string();
        assert!(e.contains("longer than the model's context of 32"), "{e}");
    }

    #[test]
    fn sliding_keeps_generating_past_the_context_on_its_last_half() {
        let m = tiny();
        let mut opts = GenerateOptions::greedy(100);
        opts.slide = true;
        let mut g = Generator::new(&m, opts).unwrap();
        // A prompt longer than the context keeps its last 32 tokens.
        let out = g.generate(&[2; 40], &letters, &mut |_| true).unwrap();
        assert_eq!((out.ids.len(), out.stop), (100, StopReason::MaxTokens));
        assert!(g.fed.len() <= 32);
        // The first token after the prompt equals the unslid model's on the last 32.
        let mut plain = Generator::new(&m, GenerateOptions::greedy(1)).unwrap();
        assert_eq!(
            plain
                .generate(&[2; 32], &letters, &mut |_| true)
                .unwrap()
                .ids[0],
            out.ids[0]
        );
    }
}
