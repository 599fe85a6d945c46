//! A recurrent encoder–decoder (Sutskever et al. 2014; Cho et al. 2014),
//! with or without Bahdanau et al. (2015) additive attention, for
//! `kindling lab seq2seq`.
//!
//! The encoder is a bidirectional GRU or LSTM over the embedded source
//! tokens (Bahdanau's encoder); it produces one annotation
//! `h_j = [h→_j, h←_j]` per source position. The decoder is a cell of the
//! same kind whose first state is `s_0 = tanh(W_b [h→_T, h←_1])` (the two
//! directions' final states; for an LSTM the cell state is bridged the same
//! way, without the tanh). At step `t` it reads the previous target token
//! (`BOS` first; the true token in training — teacher forcing — and its own
//! greedy prediction in evaluation).
//!
//! * Plain: `s_t = cell(emb(y_{t−1}), s_{t−1})`, `logits_t = W_o s_t`.
//!   Everything the decoder knows about the source passes through `s_0`, a
//!   fixed-size vector, however long the source is.
//! * Attention: the score of source position `j` is
//!   `e_tj = vᵀ tanh(W s_{t−1} + U h_j)`, `α_t = softmax_j(e_t)`, the
//!   context `c_t = Σ_j α_tj h_j`; then
//!   `s_t = cell([emb(y_{t−1}), c_t], s_{t−1})` and
//!   `logits_t = W_o [s_t, c_t]`. The decoder can look back at every source
//!   position at every step.
//!
//! The two variants share the encoder, the bridge and the cell kind; the
//! attention model has the extra `W`, `U`, `v` and wider decoder input and
//! output layers.

use kindling_nn::module::{join_name, visit_child};
use kindling_nn::rnn::{Cell, CellKind, Recurrent, State};
use kindling_nn::{Embedding, Linear, Module};
use kindling_tensor::{cat, no_grad, stack, Error, Result, Rng, Tensor};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Seq2SeqConfig {
    /// Source and target alphabet: tokens `0..symbols`; the decoder's
    /// start token is `symbols`.
    pub symbols: usize,
    /// Embedding width.
    pub embed: usize,
    /// Units per direction in the encoder, and in the decoder.
    pub hidden: usize,
    /// `gru` or `lstm`.
    pub cell: String,
    pub attention: bool,
}

impl Seq2SeqConfig {
    pub fn cell_kind(&self) -> Result<CellKind> {
        match CellKind::parse(&self.cell)? {
            CellKind::Rnn => Err(Error::msg(
                "`cell` must be gru or lstm for the encoder–decoder, got `rnn`",
            )),
            kind => Ok(kind),
        }
    }

    /// The decoder's start token.
    pub fn bos(&self) -> i64 {
        self.symbols as i64
    }
}

/// Bahdanau's additive score `vᵀ tanh(W s + U h)`.
pub struct AdditiveAttention {
    /// `W`: decoder state → attention space.
    pub query: Linear,
    /// `U`: annotation → attention space (computed once per source).
    pub key: Linear,
    /// `v`: attention space → one score.
    pub score: Linear,
}

impl AdditiveAttention {
    fn new(state: usize, annotation: usize, units: usize, rng: &mut Rng) -> Self {
        AdditiveAttention {
            query: Linear::new(state, units, false, rng),
            key: Linear::new(annotation, units, false, rng),
            score: Linear::new(units, 1, false, rng),
        }
    }

    /// Context `[B, A]` and weights `[B, T]` for decoder state `s [B, H]`,
    /// given the annotations `[B, T, A]` and their keys `U h [B, T, U]`.
    pub fn attend(
        &self,
        s: &Tensor,
        annotations: &Tensor,
        keys: &Tensor,
    ) -> Result<(Tensor, Tensor)> {
        let (b, t) = (keys.shape()[0], keys.shape()[1]);
        let q = self.query.forward(s)?.unsqueeze(1)?;
        let e = self
            .score
            .forward(&keys.add(&q)?.tanh()?)?
            .reshape(&[b, t])?;
        let alpha = e.softmax(-1)?;
        let a = annotations.shape()[2];
        let context = alpha
            .reshape(&[b, 1, t])?
            .matmul(annotations)?
            .reshape(&[b, a])?;
        Ok((context, alpha))
    }
}

impl Module for AdditiveAttention {
    /// Not used on its own: the attention needs a state and annotations.
    fn forward(&self, _x: &Tensor) -> Result<Tensor> {
        Err(Error::msg("AdditiveAttention is called through `attend`"))
    }

    fn visit_parameters(&self, prefix: &str, f: &mut dyn FnMut(String, &Tensor)) {
        self.query.visit_parameters(&join_name(prefix, "query"), f);
        self.key.visit_parameters(&join_name(prefix, "key"), f);
        self.score.visit_parameters(&join_name(prefix, "score"), f);
    }

    fn visit_modules_mut(&mut self, prefix: &str, f: &mut dyn FnMut(&str, &mut dyn Module)) {
        visit_child(&mut self.query, &join_name(prefix, "query"), f);
        visit_child(&mut self.key, &join_name(prefix, "key"), f);
        visit_child(&mut self.score, &join_name(prefix, "score"), f);
    }
}

pub struct Seq2Seq {
    pub config: Seq2SeqConfig,
    pub src_embed: Embedding,
    /// `symbols + 1` rows: the alphabet and the start token.
    pub tgt_embed: Embedding,
    pub encoder: Recurrent,
    /// `[h→_T, h←_1]` → the decoder's first hidden state.
    pub bridge: Linear,
    /// The same for the LSTM's cell state.
    pub bridge_c: Option<Linear>,
    pub decoder: Cell,
    pub attention: Option<AdditiveAttention>,
    pub output: Linear,
}

/// Token ids `[rows, len]`, row-major.
#[derive(Clone, Debug)]
pub struct Tokens<'a> {
    pub ids: &'a [i64],
    pub rows: usize,
    pub len: usize,
}

impl Tokens<'_> {
    /// Column `t` as an i64 tensor `[rows]`.
    fn column(&self, t: usize) -> Result<Tensor> {
        Tensor::from_vec_i64(
            (0..self.rows).map(|r| self.ids[r * self.len + t]).collect(),
            &[self.rows],
        )
    }
}

/// What the encoder hands the decoder.
pub struct Encoded {
    /// `[B, T, 2H]`.
    pub annotations: Tensor,
    /// `U h`, `[B, T, H]` (attention only).
    pub keys: Option<Tensor>,
    pub init: State,
}

/// A greedy decoding.
pub struct Decoded {
    /// `[rows, len]` row-major.
    pub ids: Vec<i64>,
    /// The attention weights `[rows, len, T]` (attention only).
    pub attention: Option<Tensor>,
    /// `[rows, len, symbols]`.
    pub logits: Tensor,
}

impl Seq2Seq {
    pub fn new(config: Seq2SeqConfig, rng: &mut Rng) -> Result<Seq2Seq> {
        let kind = config.cell_kind()?;
        for (name, v) in [
            ("symbols", config.symbols),
            ("embed", config.embed),
            ("hidden", config.hidden),
        ] {
            if v == 0 {
                return Err(Error::msg(format!("`{name}` must be at least 1")));
            }
        }
        let (s, e, h) = (config.symbols, config.embed, config.hidden);
        // PyTorch's nn.Embedding initialization, N(0, 1).
        let src_embed = Embedding::new(s, e, 1.0, rng);
        let tgt_embed = Embedding::new(s + 1, e, 1.0, rng);
        let encoder = Recurrent::new(kind, e, h, true, rng)?;
        let bridge = Linear::new(2 * h, h, true, rng);
        let bridge_c = (kind == CellKind::Lstm).then(|| Linear::new(2 * h, h, true, rng));
        let (decoder, attention, output) = if config.attention {
            (
                Cell::new(kind, e + 2 * h, h, rng)?,
                Some(AdditiveAttention::new(h, 2 * h, h, rng)),
                Linear::new(h + 2 * h, s, true, rng),
            )
        } else {
            (
                Cell::new(kind, e, h, rng)?,
                None,
                Linear::new(h, s, true, rng),
            )
        };
        Ok(Seq2Seq {
            config,
            src_embed,
            tgt_embed,
            encoder,
            bridge,
            bridge_c,
            decoder,
            attention,
            output,
        })
    }

    fn check(&self, tokens: &Tokens, what: &str) -> Result<()> {
        if tokens.rows == 0 || tokens.len == 0 || tokens.ids.len() != tokens.rows * tokens.len {
            return Err(Error::shape(
                "Seq2Seq",
                format!(
                    "{what}: {} ids for {} rows of {} tokens",
                    tokens.ids.len(),
                    tokens.rows,
                    tokens.len
                ),
            ));
        }
        if let Some(bad) = tokens
            .ids
            .iter()
            .find(|&&i| i < 0 || i >= self.config.symbols as i64)
        {
            return Err(Error::msg(format!(
                "{what}: token {bad} is outside the alphabet 0..{}",
                self.config.symbols
            )));
        }
        Ok(())
    }

    pub fn encode(&self, src: &Tokens) -> Result<Encoded> {
        self.check(src, "source")?;
        let xs = (0..src.len)
            .map(|t| self.src_embed.forward_ids(&src.column(t)?))
            .collect::<Result<Vec<_>>>()?;
        let (outs, finals) = self.encoder.run(&xs, None)?;
        let annotations = stack(&outs.iter().collect::<Vec<_>>(), 1)?;
        let h = self
            .bridge
            .forward(&cat(&[&finals[0].h, &finals[1].h], 1)?)?
            .tanh()?;
        let c = match (&self.bridge_c, &finals[0].c, &finals[1].c) {
            (Some(bc), Some(cf), Some(cr)) => Some(bc.forward(&cat(&[cf, cr], 1)?)?),
            _ => None,
        };
        let keys = match &self.attention {
            Some(att) => Some(att.key.forward(&annotations)?),
            None => None,
        };
        Ok(Encoded {
            annotations,
            keys,
            init: State { h, c },
        })
    }

    /// One decoder step from the previous tokens `prev [B]`: logits
    /// `[B, symbols]`, the next state, and the attention weights `[B, T]`.
    pub fn decode_step(
        &self,
        enc: &Encoded,
        state: &State,
        prev: &Tensor,
    ) -> Result<(Tensor, State, Option<Tensor>)> {
        let y = self.tgt_embed.forward_ids(prev)?;
        match (&self.attention, &enc.keys) {
            (Some(att), Some(keys)) => {
                let (context, alpha) = att.attend(&state.h, &enc.annotations, keys)?;
                let next = self.decoder.step(&cat(&[&y, &context], 1)?, state)?;
                let logits = self.output.forward(&cat(&[&next.h, &context], 1)?)?;
                Ok((logits, next, Some(alpha)))
            }
            _ => {
                let next = self.decoder.step(&y, state)?;
                Ok((self.output.forward(&next.h)?, next, None))
            }
        }
    }

    /// Mean cross-entropy of `tgt` given `src`, with teacher forcing: the
    /// decoder reads the true previous token at every step.
    pub fn loss(&self, src: &Tokens, tgt: &Tokens) -> Result<Tensor> {
        self.check(tgt, "target")?;
        if tgt.rows != src.rows {
            return Err(Error::shape(
                "Seq2Seq",
                format!("{} source rows but {} target rows", src.rows, tgt.rows),
            ));
        }
        let enc = self.encode(src)?;
        let mut state = enc.init.clone();
        let mut prev = Tensor::from_vec_i64(vec![self.config.bos(); tgt.rows], &[tgt.rows])?;
        let mut logits = Vec::with_capacity(tgt.len);
        for t in 0..tgt.len {
            let (l, next, _) = self.decode_step(&enc, &state, &prev)?;
            logits.push(l);
            state = next;
            prev = tgt.column(t)?;
        }
        let logits = stack(&logits.iter().collect::<Vec<_>>(), 1)?;
        let targets = Tensor::from_vec_i64(tgt.ids.to_vec(), &[tgt.rows, tgt.len])?;
        logits.cross_entropy(&targets, None)
    }

    /// Greedy decoding of `len` tokens: each step feeds back its own most
    /// likely token. No graph is recorded.
    pub fn greedy(&self, src: &Tokens, len: usize) -> Result<Decoded> {
        let _g = no_grad();
        let enc = self.encode(src)?;
        let mut state = enc.init.clone();
        let mut prev = Tensor::from_vec_i64(vec![self.config.bos(); src.rows], &[src.rows])?;
        let (mut logits, mut alphas, mut cols) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..len {
            let (l, next, alpha) = self.decode_step(&enc, &state, &prev)?;
            prev = l.argmax(-1, false)?;
            cols.push(prev.to_vec_i64()?);
            logits.push(l);
            alphas.extend(alpha);
            state = next;
        }
        let ids = (0..src.rows)
            .flat_map(|r| cols.iter().map(move |c| c[r]))
            .collect();
        let attention = if alphas.is_empty() {
            None
        } else {
            Some(stack(&alphas.iter().collect::<Vec<_>>(), 1)?)
        };
        Ok(Decoded {
            ids,
            attention,
            logits: stack(&logits.iter().collect::<Vec<_>>(), 1)?,
        })
    }
}

impl Module for Seq2Seq {
    /// Source ids `[B, T]` (i64) → greedy logits `[B, T, symbols]`: an
    /// output as long as the input, as the copy and reverse tasks need.
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        if x.rank() != 2 {
            return Err(Error::shape(
                "Seq2Seq",
                format!("source ids must be [B, T], got {:?}", x.shape()),
            ));
        }
        let ids = x.to_vec_i64()?;
        let src = Tokens {
            ids: &ids,
            rows: x.shape()[0],
            len: x.shape()[1],
        };
        Ok(self.greedy(&src, src.len)?.logits)
    }

    fn visit_parameters(&self, prefix: &str, f: &mut dyn FnMut(String, &Tensor)) {
        self.src_embed
            .visit_parameters(&join_name(prefix, "src_embed"), f);
        self.tgt_embed
            .visit_parameters(&join_name(prefix, "tgt_embed"), f);
        self.encoder
            .visit_parameters(&join_name(prefix, "encoder"), f);
        self.bridge
            .visit_parameters(&join_name(prefix, "bridge"), f);
        if let Some(b) = &self.bridge_c {
            b.visit_parameters(&join_name(prefix, "bridge_c"), f);
        }
        self.decoder
            .visit_parameters(&join_name(prefix, "decoder"), f);
        if let Some(a) = &self.attention {
            a.visit_parameters(&join_name(prefix, "attention"), f);
        }
        self.output
            .visit_parameters(&join_name(prefix, "output"), f);
    }

    fn visit_modules_mut(&mut self, prefix: &str, f: &mut dyn FnMut(&str, &mut dyn Module)) {
        visit_child(&mut self.src_embed, &join_name(prefix, "src_embed"), f);
        visit_child(&mut self.tgt_embed, &join_name(prefix, "tgt_embed"), f);
        visit_child(&mut self.encoder, &join_name(prefix, "encoder"), f);
        visit_child(&mut self.bridge, &join_name(prefix, "bridge"), f);
        if let Some(b) = &mut self.bridge_c {
            visit_child(b, &join_name(prefix, "bridge_c"), f);
        }
        visit_child(&mut self.decoder, &join_name(prefix, "decoder"), f);
        if let Some(a) = &mut self.attention {
            visit_child(a, &join_name(prefix, "attention"), f);
        }
        visit_child(&mut self.output, &join_name(prefix, "output"), f);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kindling_nn::module::leaf_parameter_names;

    fn config(cell: &str, attention: bool) -> Seq2SeqConfig {
        Seq2SeqConfig {
            symbols: 6,
            embed: 5,
            hidden: 7,
            cell: cell.into(),
            attention,
        }
    }

    #[test]
    fn parameter_names_follow_the_structure() {
        let mut m = Seq2Seq::new(config("lstm", true), &mut Rng::new(0)).unwrap();
        let names: Vec<String> = m.named_parameters().into_iter().map(|(n, _)| n).collect();
        assert_eq!(leaf_parameter_names(&mut m), names);
        for want in [
            "src_embed.weight",
            "encoder.weight_ih_l0_reverse",
            "bridge_c.bias",
            "decoder.weight_hh",
            "attention.query.weight",
            "attention.score.weight",
            "output.weight",
        ] {
            assert!(names.iter().any(|n| n == want), "{want} missing: {names:?}");
        }
        let plain = Seq2Seq::new(config("gru", false), &mut Rng::new(0)).unwrap();
        let names: Vec<String> = plain
            .named_parameters()
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        assert!(!names
            .iter()
            .any(|n| n.starts_with("attention") || n.starts_with("bridge_c")));
        assert_eq!(plain.decoder.input(), 5);
    }

    #[test]
    fn shapes_of_loss_greedy_and_attention() {
        for (cell, attention) in [
            ("gru", true),
            ("gru", false),
            ("lstm", true),
            ("lstm", false),
        ] {
            let m = Seq2Seq::new(config(cell, attention), &mut Rng::new(1)).unwrap();
            let ids: Vec<i64> = (0..12).map(|i| i % 6).collect();
            let src = Tokens {
                ids: &ids,
                rows: 3,
                len: 4,
            };
            let loss = m.loss(&src, &src).unwrap();
            assert!(loss.item().unwrap() > 0.0);
            loss.backward().unwrap();
            assert!(m.decoder.weight_hh.grad().is_some(), "{cell} {attention}");
            assert!(
                m.encoder.forward.weight_ih.grad().is_some(),
                "{cell} {attention}"
            );
            let d = m.greedy(&src, 4).unwrap();
            assert_eq!(d.ids.len(), 12);
            assert!(d.ids.iter().all(|&i| (0..6).contains(&i)));
            assert_eq!(d.logits.shape(), &[3, 4, 6]);
            match d.attention {
                Some(a) => {
                    assert_eq!(a.shape(), &[3, 4, 4]);
                    // Each row of weights is a distribution over the source.
                    for row in a.to_vec_f32().unwrap().chunks(4) {
                        assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-5);
                    }
                }
                None => assert!(!attention),
            }
        }
    }

    #[test]
    fn bad_configs_and_tokens_are_refused() {
        let e = Seq2Seq::new(config("rnn", false), &mut Rng::new(0))
            .err()
            .unwrap();
        assert!(e.to_string().contains("`cell`"), "{e}");
        let e = Seq2Seq::new(
            Seq2SeqConfig {
                hidden: 0,
                ..config("gru", false)
            },
            &mut Rng::new(0),
        )
        .err()
        .unwrap();
        assert!(e.to_string().contains("`hidden`"), "{e}");
        let m = Seq2Seq::new(config("gru", false), &mut Rng::new(0)).unwrap();
        let ids = [0i64, 9];
        let e = m
            .greedy(
                &Tokens {
                    ids: &ids,
                    rows: 1,
                    len: 2,
                },
                2,
            )
            .err()
            .unwrap();
        assert!(e.to_string().contains("token 9"), "{e}");
    }
}
