//! GPT: the decoder-only Transformer (Radford et al. 2018/2019), as in
//! nanoGPT: learned positional embeddings, pre-LayerNorm blocks of causal
//! multi-head self-attention and a 4× GELU MLP, a final LayerNorm and an
//! output head optionally tied to the token embedding. Parameter names
//! follow nanoGPT/GPT-2 (`wte`, `h.0.attn.c_attn`, ...); Hugging Face's
//! GPT-2 is this model with `activation: gelu_tanh` (see `gpt2_files`).

use crate::kv::KvCache;
use kindling_nn::module::{join_name, visit_child};
use kindling_nn::{Embedding, LayerNorm, Linear, Module};
use kindling_tensor::{no_grad, Error, Result, Rng, Tensor};
use serde::{Deserialize, Serialize};

/// The MLP's GELU. nanoGPT (and Kindling's checkpoints) use the exact one;
/// OpenAI's GPT-2 used the tanh approximation (`gelu_new` in transformers).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Activation {
    #[default]
    GeluErf,
    GeluTanh,
}

impl Activation {
    pub fn apply(self, x: &Tensor) -> Result<Tensor> {
        match self {
            Activation::GeluErf => x.gelu_erf(),
            Activation::GeluTanh => x.gelu(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GptConfig {
    pub n_layer: usize,
    pub n_head: usize,
    pub n_embd: usize,
    pub block_size: usize,
    pub vocab_size: usize,
    pub dropout: f32,
    /// Share the output head with the token embedding (Press & Wolf 2017).
    pub tie_weights: bool,
    /// Biases in the Linear and LayerNorm layers. nanoGPT's default is
    /// without (slightly better and faster); checkpoints written before
    /// this option existed had them.
    #[serde(default = "with_bias")]
    pub bias: bool,
    /// Checkpoints written before this option existed used `gelu_erf`.
    #[serde(default)]
    pub activation: Activation,
}

fn with_bias() -> bool {
    true
}

impl GptConfig {
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::msg(m));
        if self.n_layer == 0
            || self.n_head == 0
            || self.n_embd == 0
            || self.block_size == 0
            || self.vocab_size == 0
        {
            return bad(format!("GPT sizes must be positive: {self:?}"));
        }
        if !self.n_embd.is_multiple_of(self.n_head) {
            return bad(format!(
                "`n_embd` {} must be divisible by `n_head` {}",
                self.n_embd, self.n_head
            ));
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return bad(format!("`dropout` {} must be in [0, 1)", self.dropout));
        }
        Ok(())
    }
}

/// Random state for dropout during training; `None` means evaluation.
pub type Train<'a> = Option<&'a mut Rng>;

fn dropout(x: Tensor, p: f32, train: &mut Train) -> Result<Tensor> {
    match train {
        Some(rng) if p > 0.0 => x.dropout(p, true, rng),
        _ => Ok(x),
    }
}

pub struct Attention {
    pub c_attn: Linear,
    pub c_proj: Linear,
    pub(crate) n_head: usize,
}

pub struct Mlp {
    pub c_fc: Linear,
    pub c_proj: Linear,
    pub(crate) activation: Activation,
}

impl Module for Mlp {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.c_proj
            .forward(&self.activation.apply(&self.c_fc.forward(x)?)?)
    }
    fn visit_parameters(&self, prefix: &str, f: &mut dyn FnMut(String, &Tensor)) {
        self.c_fc.visit_parameters(&join_name(prefix, "c_fc"), f);
        self.c_proj
            .visit_parameters(&join_name(prefix, "c_proj"), f);
    }
    fn visit_modules_mut(&mut self, prefix: &str, f: &mut dyn FnMut(&str, &mut dyn Module)) {
        visit_child(&mut self.c_fc, &join_name(prefix, "c_fc"), f);
        visit_child(&mut self.c_proj, &join_name(prefix, "c_proj"), f);
    }
}

/// A layer's slot in the KV cache and the number of positions before the
/// new ones.
/// A layer's place in a KV cache: the cache and the layer's index.
type CacheSlot<'a> = Option<(&'a mut KvCache, usize)>;

pub struct Block {
    pub ln_1: LayerNorm,
    pub attn: Attention,
    pub ln_2: LayerNorm,
    pub mlp: Mlp,
}

pub struct Gpt {
    pub config: GptConfig,
    pub wte: Embedding,
    pub wpe: Embedding,
    pub h: Vec<Block>,
    pub ln_f: LayerNorm,
    /// `None` when tied to `wte`.
    pub lm_head: Option<Linear>,
}

/// nanoGPT's init: N(0, 0.02) weights, zero biases, and the residual
/// projections scaled by 1/sqrt(2 n_layer) so the residual stream's variance
/// does not grow with depth (GPT-2 paper, sec. 2.3).
fn linear(inp: usize, out: usize, std: f32, bias: bool, rng: &mut Rng) -> Linear {
    let weight = kindling_nn::init::normal(&[out, inp], std, rng);
    let bias = bias.then(|| kindling_nn::init::zeros(&[out]));
    Linear::from_tensors(weight, bias).expect("shapes built here")
}

impl Attention {
    /// `x [B, T, C]` → `[B, T, C]`, and the attention probabilities when asked.
    fn forward(&self, x: &Tensor, keep_probs: bool) -> Result<(Tensor, Option<Tensor>)> {
        // The heads are column blocks of the fused projection: the attention
        // kernel reads them in place and writes y with the heads merged.
        let qkv = self.c_attn.forward(x)?;
        let (y, probs) = qkv.causal_self_attention(self.n_head)?;
        Ok((self.c_proj.forward(&y)?, keep_probs.then_some(probs)))
    }

    /// As `forward`, with this layer's keys and values (`[B, T, H, D]`)
    /// appended to the cache; the new queries attend to every cached
    /// position before their own.
    fn forward_cached(&self, x: &Tensor, slot: CacheSlot) -> Result<Tensor> {
        let Some((cache, layer)) = slot else {
            return Ok(self.forward(x, false)?.0);
        };
        let (b, t, c) = (x.shape()[0], x.shape()[1], x.shape()[2]);
        let (h, d) = (self.n_head, c / self.n_head);
        let qkv = self.c_attn.forward(x)?;
        let head = |i: usize| qkv.narrow(-1, i * c, c)?.reshape(&[b, t, h, d]);
        let past = cache.len();
        let (k, v) = cache.append(layer, &head(1)?, &head(2)?)?;
        let y = if past == 0 {
            // Prefill: the fused causal kernel on the packed projection.
            qkv.causal_self_attention(h)?.0
        } else {
            head(0)?.attend_kv(&k, &v, past)?
        };
        self.c_proj.forward(&y)
    }
}

impl Block {
    fn forward(
        &self,
        x: &Tensor,
        p: f32,
        train: &mut Train,
        keep_probs: bool,
    ) -> Result<(Tensor, Option<Tensor>)> {
        let (a, probs) = self.attn.forward(&self.ln_1.forward(x)?, keep_probs)?;
        let x = x.add(&dropout(a, p, train)?)?;
        let m = self.mlp.forward(&self.ln_2.forward(&x)?)?;
        Ok((x.add(&dropout(m, p, train)?)?, probs))
    }

    fn forward_cached(&self, x: &Tensor, slot: CacheSlot) -> Result<Tensor> {
        let x = x.add(&self.attn.forward_cached(&self.ln_1.forward(x)?, slot)?)?;
        x.add(&self.mlp.forward(&self.ln_2.forward(&x)?)?)
    }
}

impl Gpt {
    pub fn new(config: GptConfig, rng: &mut Rng) -> Result<Gpt> {
        config.validate()?;
        let (c, std, bias) = (config.n_embd, 0.02, config.bias);
        let proj_std = std / (2.0 * config.n_layer as f32).sqrt();
        let wte = Embedding::new(config.vocab_size, c, std, rng);
        let wpe = Embedding::new(config.block_size, c, std, rng);
        let h = (0..config.n_layer)
            .map(|_| Block {
                ln_1: LayerNorm::with_bias(c, bias),
                attn: Attention {
                    c_attn: linear(c, 3 * c, std, bias, rng),
                    c_proj: linear(c, c, proj_std, bias, rng),
                    n_head: config.n_head,
                },
                ln_2: LayerNorm::with_bias(c, bias),
                mlp: Mlp {
                    c_fc: linear(c, 4 * c, std, bias, rng),
                    c_proj: linear(4 * c, c, proj_std, bias, rng),
                    activation: config.activation,
                },
            })
            .collect();
        let lm_head = (!config.tie_weights).then(|| {
            let w = kindling_nn::init::normal(&[config.vocab_size, c], std, rng);
            Linear::from_tensors(w, None).expect("shape built here")
        });
        Ok(Gpt {
            wte,
            wpe,
            h,
            ln_f: LayerNorm::with_bias(c, bias),
            lm_head,
            config,
        })
    }

    /// Logits `[B, T, V]` for token ids `[B, T]` (T <= block_size).
    pub fn forward_ids(&self, idx: &Tensor, train: Train) -> Result<Tensor> {
        Ok(self.forward_inner(idx, train, false)?.0)
    }

    /// Logits and every layer's attention probabilities `[B, H, T, T]`.
    pub fn forward_with_attention(&self, idx: &Tensor) -> Result<(Tensor, Vec<Tensor>)> {
        let _g = no_grad();
        self.forward_inner(idx, None, true)
    }

    fn forward_inner(
        &self,
        idx: &Tensor,
        mut train: Train,
        keep_probs: bool,
    ) -> Result<(Tensor, Vec<Tensor>)> {
        if idx.rank() != 2 {
            return Err(Error::shape(
                "gpt",
                format!("token ids must be [B, T], got {:?}", idx.shape()),
            ));
        }
        let t = idx.shape()[1];
        if t > self.config.block_size {
            return Err(Error::msg(format!(
                "sequence of {t} tokens is longer than the model's block size {}",
                self.config.block_size
            )));
        }
        let pos = Tensor::from_vec_i64((0..t as i64).collect(), &[t])?;
        let x = self
            .wte
            .forward_ids(idx)?
            .add(&self.wpe.forward_ids(&pos)?)?;
        let mut x = dropout(x, self.config.dropout, &mut train)?;
        let mut maps = Vec::new();
        for block in &self.h {
            let (y, probs) = block.forward(&x, self.config.dropout, &mut train, keep_probs)?;
            x = y;
            maps.extend(probs);
        }
        let x = self.ln_f.forward(&x)?;
        Ok((self.head(&x)?, maps))
    }

    pub fn new_cache(&self) -> KvCache {
        KvCache::new(self.config.n_layer)
    }

    /// Final hidden states `[B, T, C]` (after `ln_f`) for ids `[B, T]`, in
    /// evaluation mode. Without a cache the positions are 0..T; with one,
    /// the ids continue the cached sequence (positions offset by its
    /// length) and their keys and values are appended.
    pub fn hidden_cached(&self, idx: &Tensor, mut cache: Option<&mut KvCache>) -> Result<Tensor> {
        if idx.rank() != 2 || idx.shape()[1] == 0 {
            return Err(Error::shape(
                "gpt",
                format!(
                    "token ids must be [B, T] with T at least 1, got {:?}",
                    idx.shape()
                ),
            ));
        }
        let t = idx.shape()[1];
        let start = cache.as_ref().map_or(0, |c| c.len());
        if start + t > self.config.block_size {
            return Err(Error::msg(format!(
                "{} tokens exceed the model's block size {}",
                start + t,
                self.config.block_size
            )));
        }
        let pos = Tensor::from_vec_i64((start as i64..(start + t) as i64).collect(), &[t])?;
        let mut x = self
            .wte
            .forward_ids(idx)?
            .add(&self.wpe.forward_ids(&pos)?)?;
        for (l, block) in self.h.iter().enumerate() {
            let slot = cache.as_deref_mut().map(|c| (c, l));
            x = block.forward_cached(&x, slot)?;
        }
        if let Some(c) = cache {
            c.advance(t);
        }
        self.ln_f.forward(&x)
    }

    /// Logits `[B, T, V]`, continuing the sequence held in `cache` if any.
    pub fn forward_cached(&self, idx: &Tensor, cache: Option<&mut KvCache>) -> Result<Tensor> {
        self.head(&self.hidden_cached(idx, cache)?)
    }

    /// Logits of the last position only, `[B, V]`.
    pub fn forward_last(&self, idx: &Tensor, cache: Option<&mut KvCache>) -> Result<Tensor> {
        let h = self.hidden_cached(idx, cache)?;
        let t = h.shape()[1];
        self.head(&h.narrow(1, t - 1, 1)?)?.squeeze(1)
    }

    fn head(&self, x: &Tensor) -> Result<Tensor> {
        match &self.lm_head {
            Some(l) => l.forward(x),
            None => Linear::from_tensors(self.wte.weight.clone(), None)?.forward(x),
        }
    }

    /// Parameters that get weight decay: matrices of the linear layers, not
    /// biases, LayerNorm gains or embeddings (a tied head counts as embedding).
    pub fn decay_parameter_names(&self) -> Vec<String> {
        self.named_parameters()
            .into_iter()
            .filter(|(n, t)| t.rank() >= 2 && !n.starts_with("wte") && !n.starts_with("wpe"))
            .map(|(n, _)| n)
            .collect()
    }
}

impl Module for Gpt {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.forward_ids(x, None)
    }

    fn visit_parameters(&self, prefix: &str, f: &mut dyn FnMut(String, &Tensor)) {
        self.wte.visit_parameters(&join_name(prefix, "wte"), f);
        self.wpe.visit_parameters(&join_name(prefix, "wpe"), f);
        for (i, b) in self.h.iter().enumerate() {
            b.visit_parameters(&join_name(prefix, &format!("h.{i}")), f);
        }
        self.ln_f.visit_parameters(&join_name(prefix, "ln_f"), f);
        if let Some(l) = &self.lm_head {
            l.visit_parameters(&join_name(prefix, "lm_head"), f);
        }
    }

    fn visit_modules_mut(&mut self, prefix: &str, f: &mut dyn FnMut(&str, &mut dyn Module)) {
        visit_child(&mut self.wte, &join_name(prefix, "wte"), f);
        visit_child(&mut self.wpe, &join_name(prefix, "wpe"), f);
        for (i, b) in self.h.iter_mut().enumerate() {
            visit_child(b, &join_name(prefix, &format!("h.{i}")), f);
        }
        visit_child(&mut self.ln_f, &join_name(prefix, "ln_f"), f);
        if let Some(l) = &mut self.lm_head {
            visit_child(l, &join_name(prefix, "lm_head"), f);
        }
    }
}

impl Module for Attention {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(Attention::forward(self, x, false)?.0)
    }
    fn visit_parameters(&self, prefix: &str, f: &mut dyn FnMut(String, &Tensor)) {
        self.c_attn
            .visit_parameters(&join_name(prefix, "c_attn"), f);
        self.c_proj
            .visit_parameters(&join_name(prefix, "c_proj"), f);
    }
    fn visit_modules_mut(&mut self, prefix: &str, f: &mut dyn FnMut(&str, &mut dyn Module)) {
        visit_child(&mut self.c_attn, &join_name(prefix, "c_attn"), f);
        visit_child(&mut self.c_proj, &join_name(prefix, "c_proj"), f);
    }
}

impl Module for Block {
    /// Evaluation mode (no dropout).
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(Block::forward(self, x, 0.0, &mut None, false)?.0)
    }
    fn visit_parameters(&self, prefix: &str, f: &mut dyn FnMut(String, &Tensor)) {
        self.ln_1.visit_parameters(&join_name(prefix, "ln_1"), f);
        self.attn.visit_parameters(&join_name(prefix, "attn"), f);
        self.ln_2.visit_parameters(&join_name(prefix, "ln_2"), f);
        self.mlp.visit_parameters(&join_name(prefix, "mlp"), f);
    }
    fn visit_modules_mut(&mut self, prefix: &str, f: &mut dyn FnMut(&str, &mut dyn Module)) {
        visit_child(&mut self.ln_1, &join_name(prefix, "ln_1"), f);
        visit_child(&mut self.attn, &join_name(prefix, "attn"), f);
        visit_child(&mut self.ln_2, &join_name(prefix, "ln_2"), f);
        visit_child(&mut self.mlp, &join_name(prefix, "mlp"), f);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kindling_nn::module::leaf_parameter_names;

    fn one_block(tie: bool) -> Gpt {
        let config = GptConfig {
            n_layer: 1,
            n_head: 2,
            n_embd: 8,
            block_size: 4,
            vocab_size: 5,
            dropout: 0.0,
            tie_weights: tie,
            bias: true,
            activation: Activation::GeluErf,
        };
        Gpt::new(config, &mut Rng::new(0)).unwrap()
    }

    #[test]
    fn parameter_names_and_order_are_the_checkpoints() {
        let mut m = one_block(false);
        let names: Vec<String> = m.named_parameters().into_iter().map(|(n, _)| n).collect();
        let mut expected = vec!["wte.weight".to_string(), "wpe.weight".to_string()];
        for layer in [
            "ln_1",
            "attn.c_attn",
            "attn.c_proj",
            "ln_2",
            "mlp.c_fc",
            "mlp.c_proj",
        ] {
            expected.push(format!("h.0.{layer}.weight"));
            expected.push(format!("h.0.{layer}.bias"));
        }
        expected.extend(["ln_f.weight", "ln_f.bias", "lm_head.weight"].map(String::from));
        assert_eq!(names, expected);
        assert_eq!(leaf_parameter_names(&mut m), names);
    }

    #[test]
    fn map_linears_finds_every_projection_and_the_untied_head() {
        let mut m = one_block(false);
        let mut found = Vec::new();
        m.map_linears(&mut |name, _| found.push(name.to_string()));
        let expected = [
            "h.0.attn.c_attn",
            "h.0.attn.c_proj",
            "h.0.mlp.c_fc",
            "h.0.mlp.c_proj",
            "lm_head",
        ];
        assert_eq!(found, expected);
        let mut tied = one_block(true);
        let mut n = 0;
        tied.map_linears(&mut |_, _| n += 1);
        assert_eq!(n, 4);
    }

    #[test]
    fn a_frozen_block_gets_no_gradient() {
        let m = one_block(true);
        assert_eq!(m.set_trainable(&|n| n.starts_with("h.0."), false), 12);
        let ids = Tensor::from_vec_i64(vec![1, 2, 3, 4], &[1, 4]).unwrap();
        m.forward_ids(&ids, None)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        for (name, p) in m.named_parameters() {
            assert_eq!(p.grad().is_some(), !name.starts_with("h.0."), "{name}");
        }
    }
}
