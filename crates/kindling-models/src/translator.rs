//! The encoder–decoder Transformer of "Attention Is All You Need"
//! (Vaswani et al. 2017) for translation: an encoder reads the whole
//! source in both directions, a decoder writes the target one token at a
//! time, attending causally to what it has written and, through
//! cross-attention, to every source position. Pre-LN layers (see
//! `transformer.rs`), learned positions for each side, one token embedding
//! shared by source, target and the output head (the paper's three-way
//! tying, sec. 3.4; here both sides are characters of one vocabulary).
//!
//! Training runs the decoder over the whole target at once with a causal
//! mask ([`Translator::forward`]); generation feeds one token per step with
//! a key/value cache ([`Translator::start`], [`Translator::step`]), which
//! gives the same numbers.

use crate::transformer::{check_sizes, init_std, DecoderLayer, EncoderLayer};
use kindling_nn::attention::{causal_mask, key_padding_mask};
use kindling_nn::module::{join_name, visit_child};
use kindling_nn::{Embedding, LayerNorm, Linear, Module};
use kindling_tensor::{Error, Result, Rng, Tensor};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TranslatorConfig {
    pub vocab_size: usize,
    /// Encoder layers.
    pub n_enc_layer: usize,
    /// Decoder layers.
    pub n_dec_layer: usize,
    pub n_head: usize,
    pub n_embd: usize,
    /// Longest source, and longest decoder input, in tokens.
    pub max_len: usize,
}

impl TranslatorConfig {
    pub fn validate(&self) -> Result<()> {
        check_sizes(
            &[
                ("vocab_size", self.vocab_size),
                ("n_enc_layer", self.n_enc_layer),
                ("n_dec_layer", self.n_dec_layer),
                ("n_head", self.n_head),
                ("n_embd", self.n_embd),
                ("max_len", self.max_len),
            ],
            self.n_embd,
            self.n_head,
        )
    }
}

pub struct Translator {
    pub config: TranslatorConfig,
    /// Token embedding of both sides, and (transposed) the output head.
    pub wte: Embedding,
    pub wpe_src: Embedding,
    pub wpe_tgt: Embedding,
    pub encoder: Vec<EncoderLayer>,
    pub ln_enc: LayerNorm,
    pub decoder: Vec<DecoderLayer>,
    pub ln_f: LayerNorm,
}

/// What generation keeps between steps, for `rows` hypotheses of one
/// source: the encoder output's keys and values for every decoder layer's
/// cross-attention (computed once), each layer's self-attention cache, and
/// the last step's cross-attention weights.
pub struct DecodeState {
    cross: Vec<(Tensor, Tensor)>,
    cross_mask: Option<Tensor>,
    cache: Vec<Option<(Tensor, Tensor)>>,
    len: usize,
    /// The last layer's cross-attention of the last step, averaged over the
    /// heads: `[rows, S]`.
    pub last_cross: Option<Tensor>,
}

impl DecodeState {
    /// Target positions fed so far.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Keeps hypotheses `rows` in that order (a row may repeat).
    pub fn select_rows(&mut self, rows: &[usize]) -> Result<()> {
        let index = Tensor::from_vec_i64(rows.iter().map(|&r| r as i64).collect(), &[rows.len()])?;
        let pick = |t: &Tensor| t.index_select(0, &index);
        for (k, v) in self.cross.iter_mut().chain(self.cache.iter_mut().flatten()) {
            *k = pick(k)?;
            *v = pick(v)?;
        }
        if let Some(m) = &mut self.cross_mask {
            *m = pick(m)?;
        }
        if let Some(c) = &mut self.last_cross {
            *c = pick(c)?;
        }
        Ok(())
    }
}

fn ids_tensor(ids: &[u32], rows: usize) -> Result<Tensor> {
    let t = ids.len() / rows.max(1);
    Tensor::from_vec_i64(ids.iter().map(|&i| i as i64).collect(), &[rows, t])
}

impl Translator {
    pub fn new(config: TranslatorConfig, rng: &mut Rng) -> Result<Translator> {
        config.validate()?;
        let c = config.n_embd;
        let layers = config.n_enc_layer + config.n_dec_layer;
        let (std, _) = init_std(layers);
        let wte = Embedding::new(config.vocab_size, c, std, rng);
        let wpe_src = Embedding::new(config.max_len, c, std, rng);
        let wpe_tgt = Embedding::new(config.max_len, c, std, rng);
        let encoder = (0..config.n_enc_layer)
            .map(|_| EncoderLayer::new(c, config.n_head, layers, rng))
            .collect::<Result<_>>()?;
        let decoder = (0..config.n_dec_layer)
            .map(|_| DecoderLayer::new(c, config.n_head, layers, rng))
            .collect::<Result<_>>()?;
        Ok(Translator {
            wte,
            wpe_src,
            wpe_tgt,
            encoder,
            ln_enc: LayerNorm::new(c),
            decoder,
            ln_f: LayerNorm::new(c),
            config,
        })
    }

    fn check_ids(&self, ids: &Tensor, what: &str, start: usize) -> Result<usize> {
        if ids.rank() != 2 || ids.shape()[1] == 0 {
            return Err(Error::shape(
                "translator",
                format!(
                    "{what} ids must be [B, T] with T at least 1, got {:?}",
                    ids.shape()
                ),
            ));
        }
        let t = ids.shape()[1];
        if start + t > self.config.max_len {
            return Err(Error::msg(format!(
                "{what} of {} tokens is longer than the model's `max_len` {}",
                start + t,
                self.config.max_len
            )));
        }
        Ok(t)
    }

    fn embed(&self, ids: &Tensor, wpe: &Embedding, start: usize) -> Result<Tensor> {
        let t = ids.shape()[1];
        let pos = Tensor::from_vec_i64((start as i64..(start + t) as i64).collect(), &[t])?;
        self.wte.forward_ids(ids)?.add(&wpe.forward_ids(&pos)?)
    }

    /// The encoder's output `[B, S, C]` for source ids `[B, S]`; `valid`
    /// says which positions are real tokens (padding is not attended to).
    pub fn encode(&self, src: &Tensor, valid: Option<&[Vec<bool>]>) -> Result<Tensor> {
        self.check_ids(src, "source", 0)?;
        let mask = padding_mask(valid)?;
        let mut x = self.embed(src, &self.wpe_src, 0)?;
        for layer in &self.encoder {
            x = layer.forward_masked(&x, mask.as_ref())?.0;
        }
        self.ln_enc.forward(&x)
    }

    /// Logits `[B, T, V]` for decoder inputs `tgt_in [B, T]` (start token,
    /// then the target shifted right) given the encoder output, and each
    /// decoder layer's cross-attention weights `[B, H, T, S]`. Target
    /// padding needs no mask: it comes after every real position, which
    /// cannot see it through the causal mask.
    pub fn decode(
        &self,
        tgt_in: &Tensor,
        memory: &Tensor,
        src_valid: Option<&[Vec<bool>]>,
    ) -> Result<(Tensor, Vec<Tensor>)> {
        let t = self.check_ids(tgt_in, "target", 0)?;
        let cross_mask = padding_mask(src_valid)?;
        let causal = causal_mask(t)?;
        let mut x = self.embed(tgt_in, &self.wpe_tgt, 0)?;
        let mut maps = Vec::with_capacity(self.decoder.len());
        for layer in &self.decoder {
            let (y, probs) =
                layer.forward_masked(&x, memory, Some(&causal), cross_mask.as_ref())?;
            x = y;
            maps.push(probs);
        }
        Ok((self.head(&self.ln_f.forward(&x)?)?, maps))
    }

    /// Encoder and decoder in one call: logits `[B, T, V]`.
    pub fn forward(
        &self,
        src: &Tensor,
        src_valid: Option<&[Vec<bool>]>,
        tgt_in: &Tensor,
    ) -> Result<Tensor> {
        let memory = self.encode(src, src_valid)?;
        Ok(self.decode(tgt_in, &memory, src_valid)?.0)
    }

    fn head(&self, x: &Tensor) -> Result<Tensor> {
        Linear::from_tensors(self.wte.weight.clone(), None)?.forward(x)
    }

    /// Encodes one source sentence for generation (one hypothesis; beam
    /// search widens it with [`DecodeState::select_rows`]).
    pub fn start(&self, src: &[u32]) -> Result<DecodeState> {
        let memory = self.encode(&ids_tensor(src, 1)?, None)?;
        let cross = self
            .decoder
            .iter()
            .map(|l| l.cross_attn.project_kv(&memory))
            .collect::<Result<Vec<_>>>()?;
        Ok(DecodeState {
            cross,
            cross_mask: None,
            cache: vec![None; self.decoder.len()],
            len: 0,
            last_cross: None,
        })
    }

    /// Feeds one token per hypothesis; logits of the next token `[rows, V]`.
    pub fn step(&self, state: &mut DecodeState, tokens: &[u32]) -> Result<Tensor> {
        let ids = ids_tensor(tokens, tokens.len())?;
        self.check_ids(&ids, "target", state.len)?;
        let mut x = self.embed(&ids, &self.wpe_tgt, state.len)?;
        let mut last = None;
        for (l, layer) in self.decoder.iter().enumerate() {
            let (y, probs) = layer.forward_step(
                &x,
                &mut state.cache[l],
                &state.cross[l],
                state.cross_mask.as_ref(),
            )?;
            x = y;
            last = Some(probs);
        }
        if let Some(p) = last {
            // [rows, H, 1, S] → mean over heads → [rows, S]
            let (rows, h, s) = (p.shape()[0], p.shape()[1], p.shape()[3]);
            state.last_cross = Some(p.reshape(&[rows, h, s])?.mean(&[1], false)?);
        }
        state.len += 1;
        self.head(&self.ln_f.forward(&x)?)?.squeeze(1)
    }
}

fn padding_mask(valid: Option<&[Vec<bool>]>) -> Result<Option<Tensor>> {
    match valid {
        Some(v) if v.iter().flatten().any(|ok| !ok) => Ok(Some(key_padding_mask(v)?)),
        _ => Ok(None),
    }
}

impl Module for Translator {
    /// The encoder's output for source ids `[B, S]` without padding (the
    /// decoder needs a target too: see [`Translator::forward`]).
    fn forward(&self, src: &Tensor) -> Result<Tensor> {
        self.encode(src, None)
    }

    fn visit_parameters(&self, prefix: &str, f: &mut dyn FnMut(String, &Tensor)) {
        self.wte.visit_parameters(&join_name(prefix, "wte"), f);
        self.wpe_src
            .visit_parameters(&join_name(prefix, "wpe_src"), f);
        self.wpe_tgt
            .visit_parameters(&join_name(prefix, "wpe_tgt"), f);
        for (i, layer) in self.encoder.iter().enumerate() {
            layer.visit_parameters(&join_name(prefix, &format!("encoder.{i}")), f);
        }
        self.ln_enc
            .visit_parameters(&join_name(prefix, "ln_enc"), f);
        for (i, layer) in self.decoder.iter().enumerate() {
            layer.visit_parameters(&join_name(prefix, &format!("decoder.{i}")), f);
        }
        self.ln_f.visit_parameters(&join_name(prefix, "ln_f"), f);
    }

    fn visit_modules_mut(&mut self, prefix: &str, f: &mut dyn FnMut(&str, &mut dyn Module)) {
        visit_child(&mut self.wte, &join_name(prefix, "wte"), f);
        visit_child(&mut self.wpe_src, &join_name(prefix, "wpe_src"), f);
        visit_child(&mut self.wpe_tgt, &join_name(prefix, "wpe_tgt"), f);
        for (i, layer) in self.encoder.iter_mut().enumerate() {
            visit_child(layer, &join_name(prefix, &format!("encoder.{i}")), f);
        }
        visit_child(&mut self.ln_enc, &join_name(prefix, "ln_enc"), f);
        for (i, layer) in self.decoder.iter_mut().enumerate() {
            visit_child(layer, &join_name(prefix, &format!("decoder.{i}")), f);
        }
        visit_child(&mut self.ln_f, &join_name(prefix, "ln_f"), f);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kindling_nn::module::leaf_parameter_names;
    use kindling_tensor::no_grad;

    fn tiny() -> Translator {
        let config = TranslatorConfig {
            vocab_size: 13,
            n_enc_layer: 2,
            n_dec_layer: 2,
            n_head: 2,
            n_embd: 8,
            max_len: 7,
        };
        Translator::new(config, &mut Rng::new(1)).unwrap()
    }

    #[test]
    fn both_walks_name_the_same_parameters() {
        let mut m = tiny();
        let names: Vec<String> = m.named_parameters().into_iter().map(|(n, _)| n).collect();
        assert_eq!(leaf_parameter_names(&mut m), names);
        assert!(names.contains(&"decoder.1.cross_attn.q_proj.weight".to_string()));
        assert!(names.contains(&"wpe_src.weight".to_string()));
    }

    #[test]
    fn stepping_with_the_cache_gives_the_full_forward_numbers() {
        let m = tiny();
        let _g = no_grad();
        let src = [5u32, 6, 7, 8];
        let tgt = [2u32, 9, 10, 11, 12];
        let full = m
            .forward(
                &ids_tensor(&src, 1).unwrap(),
                None,
                &ids_tensor(&tgt, 1).unwrap(),
            )
            .unwrap()
            .to_vec_f32()
            .unwrap();
        let (_, maps) = m
            .decode(
                &ids_tensor(&tgt, 1).unwrap(),
                &m.encode(&ids_tensor(&src, 1).unwrap(), None).unwrap(),
                None,
            )
            .unwrap();
        // Two hypotheses of the same source, stepped together.
        let mut state = m.start(&src).unwrap();
        state.select_rows(&[0, 0]).unwrap();
        let v = 13;
        for (t, &tok) in tgt.iter().enumerate() {
            let logits = m.step(&mut state, &[tok, tok]).unwrap();
            assert_eq!(logits.shape(), [2, v]);
            let got = logits.to_vec_f32().unwrap();
            for row in got.chunks(v) {
                for (a, b) in row.iter().zip(&full[t * v..(t + 1) * v]) {
                    assert!((a - b).abs() < 1e-5, "step {t}: {a} vs {b}");
                }
            }
            // The step's cross-attention is the full pass's row t, head-averaged.
            let last = maps.last().unwrap().to_vec_f32().unwrap(); // [1, 2, 5, 4]
            let want: Vec<f32> = (0..4)
                .map(|s| (last[t * 4 + s] + last[20 + t * 4 + s]) / 2.0)
                .collect();
            let got = state.last_cross.as_ref().unwrap().to_vec_f32().unwrap();
            for (a, b) in got[..4].iter().zip(&want) {
                assert!((a - b).abs() < 1e-5);
            }
        }
        assert_eq!(state.len(), 5);
        // A sixth and seventh position fit max_len 7, an eighth does not.
        m.step(&mut state, &[3, 3]).unwrap();
        m.step(&mut state, &[3, 3]).unwrap();
        assert!(m.step(&mut state, &[3, 3]).is_err());
    }

    #[test]
    fn source_padding_changes_nothing() {
        let m = tiny();
        let _g = no_grad();
        let tgt = ids_tensor(&[2, 9, 10], 1).unwrap();
        let a = m
            .forward(&ids_tensor(&[5, 6, 7], 1).unwrap(), None, &tgt)
            .unwrap()
            .to_vec_f32()
            .unwrap();
        let valid = vec![vec![true, true, true, false, false]];
        let b = m
            .forward(
                &ids_tensor(&[5, 6, 7, 0, 0], 1).unwrap(),
                Some(&valid),
                &tgt,
            )
            .unwrap()
            .to_vec_f32()
            .unwrap();
        assert!(a.iter().zip(&b).all(|(x, y)| (x - y).abs() < 1e-5));
        assert!(m.encode(&ids_tensor(&[1; 8], 1).unwrap(), None).is_err());
    }
}
