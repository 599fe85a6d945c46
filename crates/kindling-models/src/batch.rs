//! Continuous batching: several generations decoded together, one token of
//! each per step, with sequences joining and leaving between steps.
//!
//! Decoding one token costs a pass over every weight matrix whatever the
//! number of rows, so a step that carries eight requests costs little more
//! than one that carries one. A new request is prefilled on its own when it
//! arrives and joins the batch at the next step; a finished or cancelled one
//! leaves at once and frees its cache. Each sequence keeps its own options,
//! random stream and cache, and goes through the same per-token rules as
//! [`Generator`](crate::generate::Generator) (`Decoding`), so a request gets
//! the same tokens batched or alone.

use crate::generate::{
    check_prompt, ids_tensor, CausalLm, Decoding, GenerateOptions, Generation, Next, StopReason,
};
use crate::kv::KvCache;
use kindling_tensor::{no_grad, on_kernel_threads, Result, Rng};
use std::time::Instant;

/// A sequence's handle, unique within its [`BatchGenerator`].
pub type SeqId = u64;

/// What happened to one sequence: newly settled text, and the whole
/// generation when it ended.
#[derive(Debug)]
pub struct Update {
    pub id: SeqId,
    pub text: String,
    pub done: Option<Generation>,
}

struct Sequence {
    id: SeqId,
    cache: KvCache,
    /// Prompt and generated ids whose keys and values are in the cache,
    /// plus `pending` once it has been chosen.
    fed: Vec<u32>,
    /// The chosen token waiting to be run at the next step.
    pending: u32,
    rng: Rng,
    options: GenerateOptions,
    dec: Decoding,
    /// Text settled by the last choice, not yet handed out.
    buffer: String,
    prompt_tokens: usize,
    prefill_secs: f64,
    decode_start: Instant,
}

pub struct BatchGenerator<'m> {
    model: &'m dyn CausalLm,
    seqs: Vec<Sequence>,
    next_id: SeqId,
}

impl<'m> BatchGenerator<'m> {
    pub fn new(model: &'m dyn CausalLm) -> BatchGenerator<'m> {
        BatchGenerator {
            model,
            seqs: Vec::new(),
            next_id: 1,
        }
    }

    /// Sequences being decoded.
    pub fn len(&self) -> usize {
        self.seqs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.seqs.is_empty()
    }

    /// Runs `prompt` and chooses the first token. The sequence decodes with
    /// the others from the next [`BatchGenerator::step`]; the update carries
    /// the first text and, when the first token already ended it, the
    /// generation. The prompt must fit the model's context (no sliding).
    pub fn add(
        &mut self,
        prompt: &[u32],
        options: GenerateOptions,
        decode: &dyn Fn(&[u32]) -> String,
    ) -> Result<(SeqId, Update)> {
        options.validate()?;
        let _g = no_grad();
        check_prompt(self.model, prompt)?;
        let ctx = self.model.context_len();
        let id = self.next_id;
        self.next_id += 1;
        let t0 = Instant::now();
        let mut cache = self.model.new_cache();
        let (model, ids) = (self.model, ids_tensor(prompt)?);
        let logits = on_kernel_threads(|| model.forward_last(&ids, &mut cache))?.to_vec_f32()?;
        let mut seq = Sequence {
            id,
            cache,
            fed: prompt.to_vec(),
            pending: 0,
            rng: Rng::new(options.seed),
            options,
            dec: Decoding::default(),
            buffer: String::new(),
            prompt_tokens: prompt.len(),
            prefill_secs: t0.elapsed().as_secs_f64(),
            decode_start: Instant::now(),
        };
        let update = match Self::choose(&mut seq, logits, ctx, decode) {
            Some(update) => update,
            None => {
                let update = Update {
                    id,
                    text: std::mem::take(&mut seq.buffer),
                    done: None,
                };
                self.seqs.push(seq);
                update
            }
        };
        Ok((id, update))
    }

    /// One token for every sequence: the pending tokens run together
    /// through [`CausalLm::decode_batch`], then each sequence chooses its
    /// next. Finished sequences are in the updates with `done` and leave.
    pub fn step(&mut self, decode: &dyn Fn(&[u32]) -> String) -> Result<Vec<Update>> {
        if self.seqs.is_empty() {
            return Ok(Vec::new());
        }
        let _g = no_grad();
        let tokens: Vec<u32> = self.seqs.iter().map(|s| s.pending).collect();
        let logits = {
            let mut caches: Vec<&mut KvCache> =
                self.seqs.iter_mut().map(|s| &mut s.cache).collect();
            let model = self.model;
            on_kernel_threads(|| model.decode_batch(&tokens, &mut caches))?
        };
        let vocab = self.model.vocab_size();
        let ctx = self.model.context_len();
        let logits = logits.to_vec_f32()?;
        let mut updates = Vec::with_capacity(self.seqs.len());
        let mut keep = Vec::with_capacity(self.seqs.len());
        for (i, mut seq) in std::mem::take(&mut self.seqs).into_iter().enumerate() {
            let row = logits[i * vocab..(i + 1) * vocab].to_vec();
            match Self::choose(&mut seq, row, ctx, decode) {
                Some(done) => updates.push(done),
                None => {
                    updates.push(Update {
                        id: seq.id,
                        text: std::mem::take(&mut seq.buffer),
                        done: None,
                    });
                    keep.push(seq);
                }
            }
        }
        self.seqs = keep;
        Ok(updates)
    }

    /// Drops a sequence (its client went away); false if it is not here.
    pub fn cancel(&mut self, id: SeqId) -> bool {
        let before = self.seqs.len();
        self.seqs.retain(|s| s.id != id);
        self.seqs.len() != before
    }

    /// Chooses `seq`'s next token from `logits`. `None`: it goes on (its
    /// new text is in its buffer); `Some`: it ended, with this update.
    fn choose(
        seq: &mut Sequence,
        logits: Vec<f32>,
        ctx: usize,
        decode: &dyn Fn(&[u32]) -> String,
    ) -> Option<Update> {
        let mut text = String::new();
        let next = seq.dec.advance(
            logits,
            &seq.fed,
            &seq.options,
            &mut seq.rng,
            decode,
            &mut |piece| {
                text.push_str(piece);
                true
            },
        );
        let stop = match next {
            Next::Feed(t) if seq.fed.len() < ctx => {
                seq.pending = t;
                seq.fed.push(t);
                seq.buffer = text;
                return None;
            }
            Next::Feed(_) => StopReason::Context,
            Next::Done(stop) => stop,
        };
        let dec = std::mem::take(&mut seq.dec);
        let (ids, full) = dec.finish(stop, decode, &mut |piece| {
            text.push_str(piece);
            true
        });
        Some(Update {
            id: seq.id,
            text,
            done: Some(Generation {
                ids,
                text: full,
                stop,
                prompt_tokens_fed: seq.prompt_tokens,
                prefill_secs: seq.prefill_secs,
                decode_secs: seq.decode_start.elapsed().as_secs_f64(),
            }),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generate::Generator;
    use crate::gpt::{Gpt, GptConfig};
    use crate::llama::{Llama, LlamaConfig};
    use crate::sampling::Sampling;
    use std::collections::HashMap;

    fn tiny_llama() -> Llama {
        let config = LlamaConfig {
            vocab_size: 13,
            hidden_size: 16,
            intermediate_size: 24,
            num_hidden_layers: 2,
            num_attention_heads: 4,
            num_key_value_heads: 2,
            head_dim: None,
            max_position_embeddings: 40,
            rms_norm_eps: 1e-5,
            rope_theta: 10000.0,
            tie_word_embeddings: false,
            bos_token_id: None,
            eos_token_id: None,
            qk_norm: false,
        };
        Llama::new(config, &mut Rng::new(9)).unwrap()
    }

    fn letters(ids: &[u32]) -> String {
        ids.iter().map(|&i| (b'a' + i as u8) as char).collect()
    }

    fn sampled(max: usize, seed: u64) -> GenerateOptions {
        let mut o = GenerateOptions::greedy(max);
        o.sampling = Sampling {
            temperature: 0.9,
            top_k: Some(8),
            top_p: None,
        };
        o.seed = seed;
        o
    }

    /// Requests joining at different steps, with different prompt lengths,
    /// budgets and sampling, give what each gives alone.
    fn batched_equals_alone(model: &dyn CausalLm) {
        let requests: Vec<(Vec<u32>, GenerateOptions, usize)> = vec![
            (vec![1, 2, 3], GenerateOptions::greedy(12), 0),
            (vec![4], sampled(9, 7), 0),
            (vec![5, 6, 7, 8, 9, 10, 11], GenerateOptions::greedy(5), 2),
            (vec![2, 2], sampled(15, 3), 3),
            (vec![12, 1], GenerateOptions::greedy(1), 4),
        ];
        let mut batch = BatchGenerator::new(model);
        let mut got: HashMap<SeqId, (String, Option<Generation>)> = HashMap::new();
        let mut order = Vec::new();
        let mut step = 0;
        let mut pending = requests.clone();
        while !pending.is_empty() || !batch.is_empty() {
            while let Some(at) = pending.iter().position(|r| r.2 <= step) {
                let (p, o, _) = pending.remove(at);
                let (id, u) = batch.add(&p, o, &letters).unwrap();
                order.push((id, requests.iter().position(|r| r.0 == p).unwrap()));
                let e = got.entry(id).or_default();
                e.0.push_str(&u.text);
                e.1 = u.done;
            }
            for u in batch.step(&letters).unwrap() {
                let e = got.entry(u.id).or_default();
                e.0.push_str(&u.text);
                if u.done.is_some() {
                    e.1 = u.done;
                }
            }
            step += 1;
        }
        assert_eq!(order.len(), requests.len());
        for (id, r) in order {
            let (prompt, options, _) = &requests[r];
            let mut alone = Generator::new(model, options.clone()).unwrap();
            let want = alone.generate(prompt, &letters, &mut |_| true).unwrap();
            let (streamed, done) = &got[&id];
            let done = done.as_ref().expect("every request finished");
            assert_eq!(done.ids, want.ids, "request {r}");
            assert_eq!(done.stop, want.stop, "request {r}");
            assert_eq!(&done.text, &want.text);
            assert_eq!(streamed, &want.text, "streamed pieces add up to the text");
        }
    }

    #[test]
    fn llama_batched_decoding_equals_each_request_alone() {
        batched_equals_alone(&tiny_llama());
    }

    #[test]
    fn the_default_batch_of_a_gpt_equals_each_request_alone() {
        let config = GptConfig {
            n_layer: 2,
            n_head: 2,
            n_embd: 8,
            block_size: 40,
            vocab_size: 13,
            dropout: 0.0,
            tie_weights: true,
            bias: true,
            activation: Default::default(),
        };
        batched_equals_alone(&Gpt::new(config, &mut Rng::new(4)).unwrap());
    }

    #[test]
    fn llama_decode_batch_rows_equal_forward_last_alone() {
        let m = tiny_llama();
        let _g = no_grad();
        let mut a = m.new_cache();
        let mut b = m.new_cache();
        m.forward_last(&ids_tensor(&[1, 2, 3, 4]).unwrap(), Some(&mut a))
            .unwrap();
        m.forward_last(&ids_tensor(&[7]).unwrap(), Some(&mut b))
            .unwrap();
        let (mut a2, mut b2) = (m.new_cache(), m.new_cache());
        m.forward_last(&ids_tensor(&[1, 2, 3, 4]).unwrap(), Some(&mut a2))
            .unwrap();
        m.forward_last(&ids_tensor(&[7]).unwrap(), Some(&mut b2))
            .unwrap();
        let both = m.decode_batch(&[5, 9], &mut [&mut a, &mut b]).unwrap();
        assert_eq!(both.shape(), &[2, 13]);
        let both = both.to_vec_f32().unwrap();
        let ra = m
            .forward_last(&ids_tensor(&[5]).unwrap(), Some(&mut a2))
            .unwrap()
            .to_vec_f32()
            .unwrap();
        let rb = m
            .forward_last(&ids_tensor(&[9]).unwrap(), Some(&mut b2))
            .unwrap()
            .to_vec_f32()
            .unwrap();
        for (g, w) in both.iter().zip(ra.iter().chain(&rb)) {
            assert!((g - w).abs() < 1e-5, "{g} vs {w}");
        }
        assert_eq!((a.len(), b.len()), (5, 2));
    }

    #[test]
    fn a_cancelled_sequence_leaves_and_the_rest_go_on() {
        let m = tiny_llama();
        let mut batch = BatchGenerator::new(&m);
        let (x, _) = batch
            .add(&[1, 2], GenerateOptions::greedy(10), &letters)
            .unwrap();
        let (y, _) = batch
            .add(&[3], GenerateOptions::greedy(10), &letters)
            .unwrap();
        batch.step(&letters).unwrap();
        assert!(batch.cancel(x));
        assert!(!batch.cancel(x));
        let ups = batch.step(&letters).unwrap();
        assert_eq!(ups.len(), 1);
        assert_eq!(ups[0].id, y);
        let e = batch
            .add(&[1; 41], GenerateOptions::greedy(2), &letters)
            .unwrap_err()
            .to_string();
        assert!(e.contains("longer than the model's context of 40"), "{e}");
    }
}
