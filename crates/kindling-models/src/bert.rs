//! BERT (Devlin et al. 2019): an encoder-only Transformer read in both
//! directions, trained to fill in masked tokens. Token and learned position
//! embeddings, a LayerNorm, a stack of [`EncoderLayer`]s (pre-LN here, see
//! `transformer.rs`; BERT itself is post-LN), a final LayerNorm, and the
//! masked-language-model head of the paper: dense + GELU + LayerNorm, then
//! the token embedding transposed (tied) plus a bias per token. No segment
//! embeddings and no next-sentence head: the model sees one sentence at a
//! time, `[CLS] text [SEP]`.

use crate::transformer::{check_sizes, init_std, linear, EncoderLayer};
use kindling_nn::attention::key_padding_mask;
use kindling_nn::module::{join_name, visit_child};
use kindling_nn::{Embedding, LayerNorm, Linear, Module};
use kindling_tensor::{Error, Result, Rng, Tensor};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BertConfig {
    pub vocab_size: usize,
    pub n_layer: usize,
    pub n_head: usize,
    pub n_embd: usize,
    /// Longest input, `[CLS]` and `[SEP]` included (position embeddings).
    pub max_len: usize,
}

impl BertConfig {
    pub fn validate(&self) -> Result<()> {
        check_sizes(
            &[
                ("vocab_size", self.vocab_size),
                ("n_layer", self.n_layer),
                ("n_head", self.n_head),
                ("n_embd", self.n_embd),
                ("max_len", self.max_len),
            ],
            self.n_embd,
            self.n_head,
        )
    }
}

/// The MLM head before the tied output: `dense`, GELU, `ln`.
pub struct MlmHead {
    pub dense: Linear,
    pub ln: LayerNorm,
    /// One output bias per token.
    pub bias: Tensor,
}

pub struct Bert {
    pub config: BertConfig,
    pub wte: Embedding,
    pub wpe: Embedding,
    pub ln_emb: LayerNorm,
    pub h: Vec<EncoderLayer>,
    pub ln_f: LayerNorm,
    pub mlm: MlmHead,
}

/// What the encoder computed for a batch.
pub struct Encoded {
    /// The final hidden states `[B, T, C]` (after `ln_f`): each token's
    /// contextual vector.
    pub last: Tensor,
    /// The residual stream after the embeddings (index 0) and after each
    /// layer (1..=n_layer), before `ln_f`.
    pub layers: Vec<Tensor>,
}

impl Bert {
    pub fn new(config: BertConfig, rng: &mut Rng) -> Result<Bert> {
        config.validate()?;
        let c = config.n_embd;
        let (std, _) = init_std(config.n_layer);
        let wte = Embedding::new(config.vocab_size, c, std, rng);
        let wpe = Embedding::new(config.max_len, c, std, rng);
        let h = (0..config.n_layer)
            .map(|_| EncoderLayer::new(c, config.n_head, config.n_layer, rng))
            .collect::<Result<_>>()?;
        Ok(Bert {
            wte,
            wpe,
            ln_emb: LayerNorm::new(c),
            h,
            ln_f: LayerNorm::new(c),
            mlm: MlmHead {
                dense: linear(c, c, std, rng),
                ln: LayerNorm::new(c),
                bias: kindling_nn::init::zeros(&[config.vocab_size]),
            },
            config,
        })
    }

    /// Runs ids `[B, T]` (i64) through the encoder; `valid[b][t]` says
    /// whether position `t` of row `b` is a real token (padding is not
    /// attended to). `None`: every position is real.
    pub fn encode(&self, ids: &Tensor, valid: Option<&[Vec<bool>]>) -> Result<Encoded> {
        if ids.rank() != 2 {
            return Err(Error::shape(
                "bert",
                format!("token ids must be [B, T], got {:?}", ids.shape()),
            ));
        }
        let t = ids.shape()[1];
        if t > self.config.max_len {
            return Err(Error::msg(format!(
                "sequence of {t} tokens is longer than the model's `max_len` {}",
                self.config.max_len
            )));
        }
        let mask = match valid {
            Some(v) if v.iter().flatten().any(|ok| !ok) => Some(key_padding_mask(v)?),
            _ => None,
        };
        let pos = Tensor::from_vec_i64((0..t as i64).collect(), &[t])?;
        let mut x = self.ln_emb.forward(
            &self
                .wte
                .forward_ids(ids)?
                .add(&self.wpe.forward_ids(&pos)?)?,
        )?;
        let mut layers = vec![x.clone()];
        for layer in &self.h {
            x = layer.forward_masked(&x, mask.as_ref())?.0;
            layers.push(x.clone());
        }
        Ok(Encoded {
            last: self.ln_f.forward(&x)?,
            layers,
        })
    }

    /// Logits `[N, V]` at `positions` (flat indices into `[B·T]`) of the
    /// final hidden states `[B, T, C]`: the head runs only where a token is
    /// predicted, not over the whole vocabulary at every position.
    pub fn mlm_logits(&self, last: &Tensor, positions: &Tensor) -> Result<Tensor> {
        let c = self.config.n_embd;
        let rows = last.reshape(&[last.numel() / c, c])?;
        let h = rows.index_select(0, positions)?;
        let h = self
            .mlm
            .ln
            .forward(&self.mlm.dense.forward(&h)?.gelu_erf()?)?;
        h.linear(&self.wte.weight, Some(&self.mlm.bias))
    }

    /// The static (input) embedding of token `id`: the same vector whatever
    /// the sentence.
    pub fn static_embedding(&self, id: u32) -> Result<Vec<f32>> {
        self.wte.weight.narrow(0, id as usize, 1)?.to_vec_f32()
    }
}

impl Module for Bert {
    /// The final hidden states of ids `[B, T]` with no padding.
    fn forward(&self, ids: &Tensor) -> Result<Tensor> {
        Ok(self.encode(ids, None)?.last)
    }

    fn visit_parameters(&self, prefix: &str, f: &mut dyn FnMut(String, &Tensor)) {
        self.wte.visit_parameters(&join_name(prefix, "wte"), f);
        self.wpe.visit_parameters(&join_name(prefix, "wpe"), f);
        self.ln_emb
            .visit_parameters(&join_name(prefix, "ln_emb"), f);
        for (i, layer) in self.h.iter().enumerate() {
            layer.visit_parameters(&join_name(prefix, &format!("h.{i}")), f);
        }
        self.ln_f.visit_parameters(&join_name(prefix, "ln_f"), f);
        let mlm = join_name(prefix, "mlm");
        self.mlm
            .dense
            .visit_parameters(&join_name(&mlm, "dense"), f);
        self.mlm.ln.visit_parameters(&join_name(&mlm, "ln"), f);
        f(join_name(&mlm, "bias"), &self.mlm.bias);
    }

    fn visit_modules_mut(&mut self, prefix: &str, f: &mut dyn FnMut(&str, &mut dyn Module)) {
        visit_child(&mut self.wte, &join_name(prefix, "wte"), f);
        visit_child(&mut self.wpe, &join_name(prefix, "wpe"), f);
        visit_child(&mut self.ln_emb, &join_name(prefix, "ln_emb"), f);
        for (i, layer) in self.h.iter_mut().enumerate() {
            visit_child(layer, &join_name(prefix, &format!("h.{i}")), f);
        }
        visit_child(&mut self.ln_f, &join_name(prefix, "ln_f"), f);
        let mlm = join_name(prefix, "mlm");
        visit_child(&mut self.mlm.dense, &join_name(&mlm, "dense"), f);
        visit_child(&mut self.mlm.ln, &join_name(&mlm, "ln"), f);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kindling_nn::module::leaf_parameter_names;

    fn tiny() -> Bert {
        let config = BertConfig {
            vocab_size: 11,
            n_layer: 2,
            n_head: 2,
            n_embd: 8,
            max_len: 6,
        };
        Bert::new(config, &mut Rng::new(0)).unwrap()
    }

    #[test]
    fn both_walks_name_the_same_parameters() {
        let mut m = tiny();
        let mut names: Vec<String> = m.named_parameters().into_iter().map(|(n, _)| n).collect();
        let mut leaves = leaf_parameter_names(&mut m);
        // The output bias is a bare tensor, not a layer: only the first walk sees it.
        names.retain(|n| n != "mlm.bias");
        names.sort();
        leaves.sort();
        assert_eq!(leaves, names);
    }

    #[test]
    fn padding_does_not_change_the_real_tokens_vectors() {
        let m = tiny();
        let short = Tensor::from_vec_i64(vec![2, 5, 6, 3], &[1, 4]).unwrap();
        let padded = Tensor::from_vec_i64(vec![2, 5, 6, 3, 0, 0], &[1, 6]).unwrap();
        let a = m.encode(&short, None).unwrap().last.to_vec_f32().unwrap();
        let valid = vec![vec![true, true, true, true, false, false]];
        let b = m.encode(&padded, Some(&valid)).unwrap().last;
        let b = b.narrow(1, 0, 4).unwrap().to_vec_f32().unwrap();
        for (x, y) in a.iter().zip(&b) {
            assert!((x - y).abs() < 1e-5, "{x} vs {y}");
        }
        // Bidirectional: the first token's vector depends on a later one.
        let other = Tensor::from_vec_i64(vec![2, 5, 7, 3], &[1, 4]).unwrap();
        let c = m.encode(&other, None).unwrap().last.to_vec_f32().unwrap();
        assert!(a[..8]
            .iter()
            .zip(&c[..8])
            .any(|(x, y)| (x - y).abs() > 1e-6));
    }

    #[test]
    fn mlm_logits_are_computed_at_the_asked_positions_only() {
        let m = tiny();
        let ids = Tensor::from_vec_i64(vec![2, 4, 6, 3, 2, 5, 4, 3], &[2, 4]).unwrap();
        let enc = m.encode(&ids, None).unwrap();
        let pos = Tensor::from_vec_i64(vec![1, 6], &[2]).unwrap();
        let logits = m.mlm_logits(&enc.last, &pos).unwrap();
        assert_eq!(logits.shape(), [2, 11]);
        assert!(m
            .encode(&Tensor::from_vec_i64(vec![1; 7], &[1, 7]).unwrap(), None)
            .is_err());
    }
}
