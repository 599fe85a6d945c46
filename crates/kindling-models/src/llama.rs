//! LLaMA (Touvron et al. 2023) as Hugging Face's `LlamaForCausalLM` computes
//! it: token embedding, pre-RMSNorm blocks of grouped-query attention with
//! rotary position embeddings and a SwiGLU MLP, a final RMSNorm and an output
//! head that may be tied to the embedding. SmolLM2, TinyLlama and Qwen2-style
//! models without biases share this shape.
//!
//! Parameter names are Hugging Face's (`model.layers.0.self_attn.q_proj.weight`),
//! so a `model.safetensors` loads and saves without renaming; GGUF's names
//! (`blk.0.attn_q.weight`) map through [`gguf_name`].

use crate::kv::KvCache;
use kindling_nn::module::{join_name, visit_child};
use kindling_nn::{Embedding, Linear, Module, RmsNorm};
use kindling_tensor::{cat, Error, Result, Rng, Tensor};
use serde::{Deserialize, Serialize};

/// Mirrors the fields of a Hugging Face `config.json` for `model_type: llama`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LlamaConfig {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub num_key_value_heads: usize,
    #[serde(default)]
    pub head_dim: Option<usize>,
    pub max_position_embeddings: usize,
    pub rms_norm_eps: f64,
    #[serde(default = "default_rope_theta")]
    pub rope_theta: f64,
    #[serde(default)]
    pub tie_word_embeddings: bool,
    #[serde(default)]
    pub bos_token_id: Option<u32>,
    #[serde(default)]
    pub eos_token_id: Option<u32>,
    /// RMSNorm on each head's queries and keys before RoPE (QK-norm, as in
    /// Qwen3 and modded-nanogpt; Dehghani et al. 2023). Not LLaMA: written
    /// into a config only when true, and Hugging Face's LLaMA cannot load it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub qk_norm: bool,
}

fn default_rope_theta() -> f64 {
    10000.0
}

impl LlamaConfig {
    pub fn head_dim(&self) -> usize {
        self.head_dim
            .unwrap_or(self.hidden_size / self.num_attention_heads.max(1))
    }

    pub fn validate(&self) -> Result<()> {
        let bad =
            |field: &str, msg: String| Err(Error::msg(format!("llama config: {field} {msg}")));
        for (field, v) in [
            ("vocab_size", self.vocab_size),
            ("hidden_size", self.hidden_size),
            ("intermediate_size", self.intermediate_size),
            ("num_hidden_layers", self.num_hidden_layers),
            ("num_attention_heads", self.num_attention_heads),
            ("num_key_value_heads", self.num_key_value_heads),
            ("max_position_embeddings", self.max_position_embeddings),
        ] {
            if v == 0 {
                return bad(field, "must be at least 1".into());
            }
        }
        if !self
            .num_attention_heads
            .is_multiple_of(self.num_key_value_heads)
        {
            return bad(
                "num_attention_heads",
                format!(
                    "{} must be a multiple of num_key_value_heads {}",
                    self.num_attention_heads, self.num_key_value_heads
                ),
            );
        }
        if !self.head_dim().is_multiple_of(2) || self.head_dim() == 0 {
            return bad(
                "head_dim",
                format!("{} must be even (RoPE rotates pairs)", self.head_dim()),
            );
        }
        for (field, v) in [
            ("rms_norm_eps", self.rms_norm_eps),
            ("rope_theta", self.rope_theta),
        ] {
            // NaN fails this too.
            if v.partial_cmp(&0.0) != Some(std::cmp::Ordering::Greater) {
                return bad(field, format!("{v} must be positive"));
            }
        }
        Ok(())
    }
}

pub struct Attention {
    pub q_proj: Linear,
    pub k_proj: Linear,
    pub v_proj: Linear,
    pub o_proj: Linear,
    /// Per-head RMSNorm of queries and keys (`qk_norm`), weights `[head_dim]`.
    pub q_norm: Option<RmsNorm>,
    pub k_norm: Option<RmsNorm>,
    n_head: usize,
    n_kv_head: usize,
    head_dim: usize,
    /// Queries and keys turned to llama.cpp's interleaved order of the
    /// rotated pairs after RoPE, for inference with a cache (see
    /// `Llama::follow_llama_cpp`); training keeps the rotate-half order.
    interleaved: bool,
}

pub struct Mlp {
    pub gate_proj: Linear,
    pub up_proj: Linear,
    pub down_proj: Linear,
}

pub struct Block {
    pub input_layernorm: RmsNorm,
    pub self_attn: Attention,
    pub post_attention_layernorm: RmsNorm,
    pub mlp: Mlp,
}

pub struct Llama {
    pub config: LlamaConfig,
    pub embed_tokens: Embedding,
    pub layers: Vec<Block>,
    pub norm: RmsNorm,
    /// `None` when tied to `embed_tokens`.
    pub lm_head: Option<Linear>,
    /// The token embedding's blocks, when a quantized GGUF is read on its
    /// blocks: tokens are looked up in them (`embed_tokens` then holds a
    /// memory-less placeholder of its shape).
    pub embed_blocks: Option<std::sync::Arc<kindling_tensor::quant::QMatrix>>,
    /// How the rotation angles are computed: as the reference
    /// implementation of the file the model came from computes them.
    pub rope_angles: RopeAngles,
}

/// The two ways the rotary angles are rounded, which part in the last bits
/// at large positions: a model read from Hugging Face files follows
/// `transformers`, one read from GGUF follows llama.cpp, so each agrees
/// with its own reference token for token.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum RopeAngles {
    /// `LlamaRotaryEmbedding`: f32 inverse frequencies, `pos · inv_freq`.
    #[default]
    Transformers,
    /// ggml's `ggml_rope_cache_init`: θ = pos, then θ ·= base^(−2/D) per
    /// pair, with libm's `powf`, `cosf` and `sinf`.
    Ggml,
}

/// Repeats each of the `kv` heads of `x [B, T, kv, D]` `rep` times, so head h
/// of the queries meets key/value head h / rep (Hugging Face's `repeat_kv`).
fn repeat_kv(x: &Tensor, rep: usize) -> Result<Tensor> {
    if rep == 1 {
        return Ok(x.clone());
    }
    let s = x.shape().to_vec();
    x.unsqueeze(3)?
        .expand(&[s[0], s[1], s[2], rep, s[3]])?
        .reshape(&[s[0], s[1], s[2] * rep, s[3]])
}

/// cos/sin `[T, D/2]` of the rotation angles `pos · θ^(-2i/D)` for positions
/// `start..start+t`. The inverse frequencies and the products are rounded to
/// f32 as `LlamaRotaryEmbedding` rounds them, so long prompts (angles in the
/// hundreds of radians) agree with `transformers`.
pub fn rope_tables(
    start: usize,
    t: usize,
    head_dim: usize,
    theta: f64,
) -> Result<(Tensor, Tensor)> {
    let half = head_dim / 2;
    let inv_freq: Vec<f32> = (0..half)
        .map(|i| 1.0 / (theta as f32).powf((2 * i) as f32 / head_dim as f32))
        .collect();
    let mut cos = Vec::with_capacity(t * half);
    let mut sin = Vec::with_capacity(t * half);
    for p in start..start + t {
        for f in &inv_freq {
            let a = (p as f32 * f) as f64;
            cos.push(a.cos() as f32);
            sin.push(a.sin() as f32);
        }
    }
    Ok((
        Tensor::from_vec(cos, &[t, half])?,
        Tensor::from_vec(sin, &[t, half])?,
    ))
}

/// cos/sin `[T, D/2]` as llama.cpp's CPU backend computes them
/// (`ggml_rope_cache_init` without YaRN): for each position p, θ starts at
/// p and is multiplied by `powf(base, −2/D)` from one pair to the next, in
/// f32; `cosf`/`sinf` of it.
pub fn rope_tables_ggml(
    start: usize,
    t: usize,
    head_dim: usize,
    theta: f64,
) -> Result<(Tensor, Tensor)> {
    let half = head_dim / 2;
    let scale = (theta as f32).powf(-2.0 / head_dim as f32);
    let mut cos = Vec::with_capacity(t * half);
    let mut sin = Vec::with_capacity(t * half);
    for p in start..start + t {
        let mut a = p as f32;
        for _ in 0..half {
            cos.push(a.cos());
            sin.push(a.sin());
            a *= scale;
        }
    }
    Ok((
        Tensor::from_vec(cos, &[t, half])?,
        Tensor::from_vec(sin, &[t, half])?,
    ))
}

/// Named tensors with their shapes checked against the config.
struct Weights<'a> {
    get: &'a mut dyn FnMut(&str) -> Result<Tensor>,
}

impl Weights<'_> {
    fn take(&mut self, name: &str, shape: &[usize]) -> Result<Tensor> {
        let t = (self.get)(name)?;
        if t.shape() != shape {
            return Err(Error::shape(
                "llama",
                format!(
                    "tensor `{name}` is {:?}, the config needs {shape:?}",
                    t.shape()
                ),
            ));
        }
        Ok(t)
    }
    fn linear(&mut self, name: &str, out: usize, inp: usize) -> Result<Linear> {
        Linear::from_tensors(self.take(&format!("{name}.weight"), &[out, inp])?, None)
    }
}

impl Attention {
    /// `x [B, T, C]` at positions `start..start+T` → `[B, T, C]`. With a
    /// cache, this layer's keys and values are appended to it and the
    /// queries attend to every cached position before their own.
    /// Queries `[B, T, H, D]`, keys and values `[B, T, H_kv, D]` of `x`,
    /// the queries and keys rotated by `rope`.
    fn project(&self, x: &Tensor, rope: &(Tensor, Tensor)) -> Result<(Tensor, Tensor, Tensor)> {
        let (b, t) = (x.shape()[0], x.shape()[1]);
        let (h, kvh, d) = (self.n_head, self.n_kv_head, self.head_dim);
        let norm = |n: &Option<RmsNorm>, x: Tensor| match n {
            Some(n) => n.forward(&x),
            None => Ok(x),
        };
        let q = norm(
            &self.q_norm,
            self.q_proj.forward(x)?.reshape(&[b, t, h, d])?,
        )?
        .rope(&rope.0, &rope.1)?;
        let k = norm(
            &self.k_norm,
            self.k_proj.forward(x)?.reshape(&[b, t, kvh, d])?,
        )?
        .rope(&rope.0, &rope.1)?;
        let v = self.v_proj.forward(x)?.reshape(&[b, t, kvh, d])?;
        Ok((q, k, v))
    }

    /// For inference against a cache: with `interleaved`, queries and keys
    /// `[B, T, heads, D]` in llama.cpp's layout of the rotated pairs,
    /// (2i, 2i + 1) instead of (i, i + D/2), so the query·key products
    /// (and the cached keys) add up in its order.
    fn cache_order(&self, q: Tensor, k: Tensor) -> Result<(Tensor, Tensor)> {
        if !self.interleaved {
            return Ok((q, k));
        }
        let inter = |x: Tensor| {
            let s = x.shape().to_vec();
            x.reshape(&[s[0], s[1], s[2], 2, s[3] / 2])?
                .transpose(3, 4)?
                .contiguous()?
                .reshape(&s)
        };
        Ok((inter(q)?, inter(k)?))
    }

    /// One new token of each of several independent sequences, `x [1, N, C]`
    /// (row i continuing `caches[i]`, whose slot `layer` is this layer's;
    /// `rope` has row i at that cache's position): the projections run on
    /// all N rows at once, the attention per sequence against its own cache.
    fn forward_decode(
        &self,
        x: &Tensor,
        rope: &(Tensor, Tensor),
        caches: &mut [&mut KvCache],
        layer: usize,
    ) -> Result<Tensor> {
        let (q, k, v) = self.project(x, rope)?;
        let (q, k) = self.cache_order(q, k)?;
        let mut rows = Vec::with_capacity(caches.len());
        for (i, cache) in caches.iter_mut().enumerate() {
            let past = cache.len();
            let (ki, vi) = cache.append(layer, &k.narrow(1, i, 1)?, &v.narrow(1, i, 1)?)?;
            rows.push(q.narrow(1, i, 1)?.attend_kv(&ki, &vi, past)?);
        }
        self.o_proj
            .forward(&cat(&rows.iter().collect::<Vec<_>>(), 1)?)
    }

    fn forward(
        &self,
        x: &Tensor,
        rope: &(Tensor, Tensor),
        cache: Option<(&mut KvCache, usize)>,
        segments: Option<&[usize]>,
    ) -> Result<Tensor> {
        let (b, t) = (x.shape()[0], x.shape()[1]);
        let (h, kvh, d) = (self.n_head, self.n_kv_head, self.head_dim);
        let (q, k, v) = self.project(x, rope)?;
        let (q, k, v, past) = match cache {
            None => (q, k, v, None),
            Some((cache, layer)) => {
                let (q, k) = self.cache_order(q, k)?;
                let past = cache.len();
                let (all_k, all_v) = cache.append(layer, &k, &v)?;
                if past == 0 && !self.interleaved {
                    // A prompt from position 0: the new keys are all of
                    // them (and contiguous, unlike the buffer's view).
                    (q, k, v, None)
                } else {
                    (q, all_k, all_v, Some(past))
                }
            }
        };
        let rep = h / kvh;
        let y = if let Some(past) = past {
            // New queries against the cache, read in place, in llama.cpp's
            // arithmetic; a model that follows llama.cpp sends its prompt
            // this way too, so the prompt's tokens get llama.cpp's bits.
            q.attend_kv(&k, &v, past)?
        } else {
            // The whole sequence at once (training, or a prompt of a model
            // read from Hugging Face files): the fused causal kernel on
            // packed [q | k | v] with the heads side by side.
            let qkv = cat(
                &[
                    &q.reshape(&[b, t, h * d])?,
                    &repeat_kv(&k, rep)?.reshape(&[b, t, h * d])?,
                    &repeat_kv(&v, rep)?.reshape(&[b, t, h * d])?,
                ],
                -1,
            )?;
            match segments {
                // Several sequences packed end to end: each attends only
                // to itself (the projections above ran on all at once).
                Some(lens) if lens.len() > 1 => {
                    let mut parts = Vec::with_capacity(lens.len());
                    let mut at = 0;
                    for &len in lens {
                        parts.push(qkv.narrow(1, at, len)?.causal_self_attention(h)?.0);
                        at += len;
                    }
                    cat(&parts.iter().collect::<Vec<_>>(), 1)?
                }
                _ => qkv.causal_self_attention(h)?.0,
            }
        };
        self.o_proj.forward(&y)
    }
}

impl Mlp {
    /// SwiGLU (Shazeer 2020): down(silu(gate(x)) ⊙ up(x)).
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let g = self.gate_proj.forward(x)?;
        self.down_proj
            .forward(&g.swiglu(&self.up_proj.forward(x)?)?)
    }
}

impl Block {
    fn forward(
        &self,
        x: &Tensor,
        rope: &(Tensor, Tensor),
        cache: Option<(&mut KvCache, usize)>,
        segments: Option<&[usize]>,
    ) -> Result<Tensor> {
        let x = x.add(&self.self_attn.forward(
            &self.input_layernorm.forward(x)?,
            rope,
            cache,
            segments,
        )?)?;
        x.add(
            &self
                .mlp
                .forward(&self.post_attention_layernorm.forward(&x)?)?,
        )
    }
}

impl Block {
    fn forward_decode(
        &self,
        x: &Tensor,
        rope: &(Tensor, Tensor),
        caches: &mut [&mut KvCache],
        layer: usize,
    ) -> Result<Tensor> {
        let x = x.add(&self.self_attn.forward_decode(
            &self.input_layernorm.forward(x)?,
            rope,
            caches,
            layer,
        )?)?;
        x.add(
            &self
                .mlp
                .forward(&self.post_attention_layernorm.forward(&x)?)?,
        )
    }
}

impl Module for Attention {
    fn forward(&self, _x: &Tensor) -> Result<Tensor> {
        Err(Error::msg(
            "llama attention needs positions: call Llama::forward",
        ))
    }
    fn visit_parameters(&self, prefix: &str, f: &mut dyn FnMut(String, &Tensor)) {
        self.q_proj
            .visit_parameters(&join_name(prefix, "q_proj"), f);
        self.k_proj
            .visit_parameters(&join_name(prefix, "k_proj"), f);
        self.v_proj
            .visit_parameters(&join_name(prefix, "v_proj"), f);
        self.o_proj
            .visit_parameters(&join_name(prefix, "o_proj"), f);
        if let (Some(q), Some(k)) = (&self.q_norm, &self.k_norm) {
            q.visit_parameters(&join_name(prefix, "q_norm"), f);
            k.visit_parameters(&join_name(prefix, "k_norm"), f);
        }
    }
    fn visit_modules_mut(&mut self, prefix: &str, f: &mut dyn FnMut(&str, &mut dyn Module)) {
        visit_child(&mut self.q_proj, &join_name(prefix, "q_proj"), f);
        visit_child(&mut self.k_proj, &join_name(prefix, "k_proj"), f);
        visit_child(&mut self.v_proj, &join_name(prefix, "v_proj"), f);
        visit_child(&mut self.o_proj, &join_name(prefix, "o_proj"), f);
        if let (Some(q), Some(k)) = (&mut self.q_norm, &mut self.k_norm) {
            visit_child(q, &join_name(prefix, "q_norm"), f);
            visit_child(k, &join_name(prefix, "k_norm"), f);
        }
    }
}

impl Module for Mlp {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Mlp::forward(self, x)
    }
    fn visit_parameters(&self, prefix: &str, f: &mut dyn FnMut(String, &Tensor)) {
        self.gate_proj
            .visit_parameters(&join_name(prefix, "gate_proj"), f);
        self.up_proj
            .visit_parameters(&join_name(prefix, "up_proj"), f);
        self.down_proj
            .visit_parameters(&join_name(prefix, "down_proj"), f);
    }
    fn visit_modules_mut(&mut self, prefix: &str, f: &mut dyn FnMut(&str, &mut dyn Module)) {
        visit_child(&mut self.gate_proj, &join_name(prefix, "gate_proj"), f);
        visit_child(&mut self.up_proj, &join_name(prefix, "up_proj"), f);
        visit_child(&mut self.down_proj, &join_name(prefix, "down_proj"), f);
    }
}

impl Module for Block {
    fn forward(&self, _x: &Tensor) -> Result<Tensor> {
        Err(Error::msg(
            "llama block needs positions: call Llama::forward",
        ))
    }
    fn visit_parameters(&self, prefix: &str, f: &mut dyn FnMut(String, &Tensor)) {
        self.input_layernorm
            .visit_parameters(&join_name(prefix, "input_layernorm"), f);
        self.self_attn
            .visit_parameters(&join_name(prefix, "self_attn"), f);
        self.post_attention_layernorm
            .visit_parameters(&join_name(prefix, "post_attention_layernorm"), f);
        self.mlp.visit_parameters(&join_name(prefix, "mlp"), f);
    }
    fn visit_modules_mut(&mut self, prefix: &str, f: &mut dyn FnMut(&str, &mut dyn Module)) {
        visit_child(
            &mut self.input_layernorm,
            &join_name(prefix, "input_layernorm"),
            f,
        );
        visit_child(&mut self.self_attn, &join_name(prefix, "self_attn"), f);
        let post = join_name(prefix, "post_attention_layernorm");
        visit_child(&mut self.post_attention_layernorm, &post, f);
        visit_child(&mut self.mlp, &join_name(prefix, "mlp"), f);
    }
}

impl Llama {
    /// A randomly initialized model: N(0, 0.02) weights (the `initializer_range`
    /// of Hugging Face's LLaMA), unit norms.
    pub fn new(config: LlamaConfig, rng: &mut Rng) -> Result<Llama> {
        config.validate()?;
        let std = 0.02;
        let (c, d) = (config.hidden_size, config.head_dim());
        let lin = |i: usize, o: usize, rng: &mut Rng| {
            Linear::from_tensors(kindling_nn::init::normal(&[o, i], std, rng), None)
                .expect("shape built here")
        };
        let eps = config.rms_norm_eps as f32;
        let embed_tokens = Embedding::new(config.vocab_size, c, std, rng);
        let layers = (0..config.num_hidden_layers)
            .map(|_| Block {
                input_layernorm: RmsNorm::new(c, eps),
                self_attn: Attention {
                    q_proj: lin(c, config.num_attention_heads * d, rng),
                    k_proj: lin(c, config.num_key_value_heads * d, rng),
                    v_proj: lin(c, config.num_key_value_heads * d, rng),
                    o_proj: lin(config.num_attention_heads * d, c, rng),
                    q_norm: config.qk_norm.then(|| RmsNorm::new(d, eps)),
                    k_norm: config.qk_norm.then(|| RmsNorm::new(d, eps)),
                    n_head: config.num_attention_heads,
                    n_kv_head: config.num_key_value_heads,
                    head_dim: d,
                    interleaved: false,
                },
                post_attention_layernorm: RmsNorm::new(c, eps),
                mlp: Mlp {
                    gate_proj: lin(c, config.intermediate_size, rng),
                    up_proj: lin(c, config.intermediate_size, rng),
                    down_proj: lin(config.intermediate_size, c, rng),
                },
            })
            .collect();
        let lm_head = (!config.tie_word_embeddings).then(|| lin(c, config.vocab_size, rng));
        Ok(Llama {
            embed_tokens,
            layers,
            norm: RmsNorm::new(c, eps),
            lm_head,
            config,
            rope_angles: RopeAngles::default(),
            embed_blocks: None,
        })
    }

    /// Builds the model from tensors named as Hugging Face names them
    /// (`get(name)` returns the tensor or an error naming what is missing).
    /// Every shape is checked against the config.
    pub fn from_named(
        config: LlamaConfig,
        get: &mut dyn FnMut(&str) -> Result<Tensor>,
    ) -> Result<Llama> {
        config.validate()?;
        let (c, d, ff) = (
            config.hidden_size,
            config.head_dim(),
            config.intermediate_size,
        );
        let (h, kvh) = (config.num_attention_heads, config.num_key_value_heads);
        let eps = config.rms_norm_eps as f32;
        let mut w = Weights { get };
        let mut layers = Vec::with_capacity(config.num_hidden_layers);
        for l in 0..config.num_hidden_layers {
            let p = format!("model.layers.{l}");
            layers.push(Block {
                input_layernorm: RmsNorm::from_weight(
                    w.take(&format!("{p}.input_layernorm.weight"), &[c])?,
                    eps,
                ),
                self_attn: Attention {
                    q_proj: w.linear(&format!("{p}.self_attn.q_proj"), h * d, c)?,
                    k_proj: w.linear(&format!("{p}.self_attn.k_proj"), kvh * d, c)?,
                    v_proj: w.linear(&format!("{p}.self_attn.v_proj"), kvh * d, c)?,
                    o_proj: w.linear(&format!("{p}.self_attn.o_proj"), c, h * d)?,
                    q_norm: match config.qk_norm {
                        true => Some(RmsNorm::from_weight(
                            w.take(&format!("{p}.self_attn.q_norm.weight"), &[d])?,
                            eps,
                        )),
                        false => None,
                    },
                    k_norm: match config.qk_norm {
                        true => Some(RmsNorm::from_weight(
                            w.take(&format!("{p}.self_attn.k_norm.weight"), &[d])?,
                            eps,
                        )),
                        false => None,
                    },
                    n_head: h,
                    n_kv_head: kvh,
                    head_dim: d,
                    interleaved: false,
                },
                post_attention_layernorm: RmsNorm::from_weight(
                    w.take(&format!("{p}.post_attention_layernorm.weight"), &[c])?,
                    eps,
                ),
                mlp: Mlp {
                    gate_proj: w.linear(&format!("{p}.mlp.gate_proj"), ff, c)?,
                    up_proj: w.linear(&format!("{p}.mlp.up_proj"), ff, c)?,
                    down_proj: w.linear(&format!("{p}.mlp.down_proj"), c, ff)?,
                },
            });
        }
        let embed_tokens = Embedding {
            weight: w.take("model.embed_tokens.weight", &[config.vocab_size, c])?,
        };
        let norm = RmsNorm::from_weight(w.take("model.norm.weight", &[c])?, eps);
        let lm_head = if config.tie_word_embeddings {
            None
        } else {
            Some(w.linear("lm_head", config.vocab_size, c)?)
        };
        Ok(Llama {
            config,
            embed_tokens,
            layers,
            norm,
            lm_head,
            rope_angles: RopeAngles::default(),
            embed_blocks: None,
        })
    }

    /// Inference with llama.cpp's rounding where Kindling's layout differs
    /// from its own: the rotation angles as ggml computes them, and
    /// query·key products in its interleaved order of the rotated pairs
    /// (Kindling keeps Hugging Face's rotate-half order). For models read
    /// from GGUF, whose reference is llama.cpp.
    pub fn follow_llama_cpp(&mut self) {
        self.rope_angles = RopeAngles::Ggml;
        for b in &mut self.layers {
            b.self_attn.interleaved = true;
        }
    }

    /// cos/sin `[T, D/2]` for positions `start..start+t`, rounded as
    /// `rope_angles` says.
    pub fn rope(&self, start: usize, t: usize) -> Result<(Tensor, Tensor)> {
        let (d, base) = (self.config.head_dim(), self.config.rope_theta);
        match self.rope_angles {
            RopeAngles::Transformers => rope_tables(start, t, d, base),
            RopeAngles::Ggml => rope_tables_ggml(start, t, d, base),
        }
    }

    /// Token ids → embeddings `ids.shape + [C]`: from `embed_blocks` when
    /// the model runs on a quantized file's blocks, else `embed_tokens`.
    fn embed(&self, ids: &Tensor) -> Result<Tensor> {
        let Some(q) = &self.embed_blocks else {
            return self.embed_tokens.forward_ids(ids);
        };
        let rows = q.dequantize_rows(&ids.to_vec_i64()?)?;
        let mut shape = ids.shape().to_vec();
        shape.push(q.cols());
        Tensor::from_vec(rows, &shape)
    }

    pub fn new_cache(&self) -> KvCache {
        KvCache::new(self.config.num_hidden_layers)
    }

    /// Final hidden states `[B, T, C]` (after the last norm) for token ids
    /// `[B, T]`. Without a cache the positions are 0..T; with one, the ids
    /// continue the cached sequence and their keys/values are appended.
    pub fn hidden(&self, ids: &Tensor, mut cache: Option<&mut KvCache>) -> Result<Tensor> {
        if ids.rank() != 2 || ids.shape()[1] == 0 {
            return Err(Error::shape(
                "llama",
                format!(
                    "token ids must be [B, T] with T at least 1, got {:?}",
                    ids.shape()
                ),
            ));
        }
        let t = ids.shape()[1];
        let start = cache.as_ref().map_or(0, |c| c.len());
        if start + t > self.config.max_position_embeddings {
            return Err(Error::msg(format!(
                "{} tokens exceed the model's context of {} (max_position_embeddings)",
                start + t,
                self.config.max_position_embeddings
            )));
        }
        let rope = self.rope(start, t)?;
        let mut x = self.embed(ids)?;
        for (l, block) in self.layers.iter().enumerate() {
            let slot = cache.as_deref_mut().map(|c| (c, l));
            x = block.forward(&x, &rope, slot, None)?;
        }
        if let Some(c) = cache {
            c.advance(t);
        }
        self.norm.forward(&x)
    }

    /// Final hidden states `[1, T, C]` for several sequences packed end to
    /// end in one row (`lengths` sum to T): each starts at position 0 and
    /// attends only to its own tokens, so the result is each sequence's
    /// [`Llama::hidden`] side by side, while every projection runs once on
    /// all T rows. This is how fine-tuning fills a batch with examples of
    /// different lengths without padding.
    pub fn hidden_packed(&self, ids: &Tensor, lengths: &[usize]) -> Result<Tensor> {
        let t: usize = lengths.iter().sum();
        if ids.rank() != 2 || ids.shape()[0] != 1 || ids.shape()[1] != t || lengths.contains(&0) {
            return Err(Error::shape(
                "llama",
                format!(
                    "packed ids must be [1, T] with T the sum of non-zero lengths {lengths:?}, got {:?}",
                    ids.shape()
                ),
            ));
        }
        let longest = lengths.iter().copied().max().unwrap_or(0);
        if longest > self.config.max_position_embeddings {
            return Err(Error::msg(format!(
                "a packed sequence of {longest} tokens exceeds the model's context of {} (max_position_embeddings)",
                self.config.max_position_embeddings
            )));
        }
        let tables = lengths
            .iter()
            .map(|&len| self.rope(0, len))
            .collect::<Result<Vec<_>>>()?;
        let cos: Vec<&Tensor> = tables.iter().map(|(c, _)| c).collect();
        let sin: Vec<&Tensor> = tables.iter().map(|(_, s)| s).collect();
        let rope = (cat(&cos, 0)?, cat(&sin, 0)?);
        let mut x = self.embed(ids)?;
        for block in &self.layers {
            x = block.forward(&x, &rope, None, Some(lengths))?;
        }
        self.norm.forward(&x)
    }

    /// The logits of chosen rows of hidden states `[N, C]` (e.g. only the
    /// positions a loss is taken on: the head is the largest matrix).
    pub fn head_rows(&self, hidden: &Tensor) -> Result<Tensor> {
        self.head(hidden)
    }

    /// Logits `[B, T, V]`.
    pub fn forward(&self, ids: &Tensor, cache: Option<&mut KvCache>) -> Result<Tensor> {
        self.head(&self.hidden(ids, cache)?)
    }

    /// Logits of the last position only, `[B, V]` (what generation needs:
    /// the head is the largest matrix, so the other positions are skipped).
    pub fn forward_last(&self, ids: &Tensor, cache: Option<&mut KvCache>) -> Result<Tensor> {
        let h = self.hidden(ids, cache)?;
        let t = h.shape()[1];
        self.head(&h.narrow(1, t - 1, 1)?)?.squeeze(1)
    }

    /// Logits `[N, V]` for one new token in each of N independent
    /// sequences, `tokens[i]` continuing `caches[i]`: what a server decoding
    /// several requests at once runs each step. Every projection and the
    /// head run on the N rows together (one pass over the weights for all
    /// of them); attention runs per sequence against its own cache. Row i
    /// equals `forward_last` of `tokens[i]` on `caches[i]` alone.
    pub fn decode_batch(&self, tokens: &[u32], caches: &mut [&mut KvCache]) -> Result<Tensor> {
        let n = tokens.len();
        if n == 0 || caches.len() != n {
            return Err(Error::shape(
                "llama",
                format!(
                    "decode_batch needs one cache per token, got {n} tokens and {} caches",
                    caches.len()
                ),
            ));
        }
        let mut tables = Vec::with_capacity(n);
        for c in caches.iter() {
            if c.len() + 1 > self.config.max_position_embeddings {
                return Err(Error::msg(format!(
                    "{} tokens exceed the model's context of {} (max_position_embeddings)",
                    c.len() + 1,
                    self.config.max_position_embeddings
                )));
            }
            tables.push(self.rope(c.len(), 1)?);
        }
        let cos: Vec<&Tensor> = tables.iter().map(|(c, _)| c).collect();
        let sin: Vec<&Tensor> = tables.iter().map(|(_, s)| s).collect();
        let rope = (cat(&cos, 0)?, cat(&sin, 0)?);
        let ids = Tensor::from_vec_i64(tokens.iter().map(|&t| t as i64).collect(), &[1, n])?;
        let mut x = self.embed(&ids)?;
        for (l, block) in self.layers.iter().enumerate() {
            x = block.forward_decode(&x, &rope, caches, l)?;
        }
        for c in caches.iter_mut() {
            c.advance(1);
        }
        self.head(&self.norm.forward(&x)?)?.squeeze(0)
    }

    fn head(&self, x: &Tensor) -> Result<Tensor> {
        match &self.lm_head {
            Some(l) => l.forward(x),
            None => x.linear(&self.embed_tokens.weight, None),
        }
    }
}

impl Module for Llama {
    fn forward(&self, ids: &Tensor) -> Result<Tensor> {
        Llama::forward(self, ids, None)
    }
    fn visit_parameters(&self, prefix: &str, f: &mut dyn FnMut(String, &Tensor)) {
        self.embed_tokens
            .visit_parameters(&join_name(prefix, "model.embed_tokens"), f);
        for (i, b) in self.layers.iter().enumerate() {
            b.visit_parameters(&join_name(prefix, &format!("model.layers.{i}")), f);
        }
        self.norm
            .visit_parameters(&join_name(prefix, "model.norm"), f);
        if let Some(l) = &self.lm_head {
            l.visit_parameters(&join_name(prefix, "lm_head"), f);
        }
    }
    fn visit_modules_mut(&mut self, prefix: &str, f: &mut dyn FnMut(&str, &mut dyn Module)) {
        visit_child(
            &mut self.embed_tokens,
            &join_name(prefix, "model.embed_tokens"),
            f,
        );
        for (i, b) in self.layers.iter_mut().enumerate() {
            visit_child(b, &join_name(prefix, &format!("model.layers.{i}")), f);
        }
        visit_child(&mut self.norm, &join_name(prefix, "model.norm"), f);
        if let Some(l) = &mut self.lm_head {
            visit_child(l, &join_name(prefix, "lm_head"), f);
        }
    }
}

/// Hugging Face name → GGUF name, one row per kind of tensor (llama.cpp's
/// `convert_hf_to_gguf.py` table for LLaMA).
const GGUF_NAMES: &[(&str, &str)] = &[
    ("input_layernorm.weight", "attn_norm.weight"),
    ("self_attn.q_proj.weight", "attn_q.weight"),
    ("self_attn.k_proj.weight", "attn_k.weight"),
    ("self_attn.v_proj.weight", "attn_v.weight"),
    ("self_attn.o_proj.weight", "attn_output.weight"),
    ("post_attention_layernorm.weight", "ffn_norm.weight"),
    ("mlp.gate_proj.weight", "ffn_gate.weight"),
    ("mlp.up_proj.weight", "ffn_up.weight"),
    ("mlp.down_proj.weight", "ffn_down.weight"),
];

/// The GGUF name of a Hugging Face LLaMA tensor name.
pub fn gguf_name(hf: &str) -> Option<String> {
    match hf {
        "model.embed_tokens.weight" => return Some("token_embd.weight".into()),
        "model.norm.weight" => return Some("output_norm.weight".into()),
        "lm_head.weight" => return Some("output.weight".into()),
        _ => {}
    }
    let rest = hf.strip_prefix("model.layers.")?;
    let (layer, suffix) = rest.split_once('.')?;
    let (_, g) = GGUF_NAMES.iter().find(|(h, _)| *h == suffix)?;
    Some(format!("blk.{layer}.{g}"))
}

/// llama.cpp's converter permutes the rows of Q and K so that each head's
/// rotary pairs are adjacent (`x[2i], x[2i+1]`); Hugging Face pairs
/// `x[i], x[i + D/2]`. `to_hf` undoes it (within each head, GGUF row
/// `2i + a` becomes row `a·D/2 + i`); `!to_hf` applies it, for writing GGUF.
pub fn permute_rope_rows(w: &Tensor, n_head: usize, to_hf: bool) -> Result<Tensor> {
    let (rows, cols) = (w.shape()[0], w.shape()[1]);
    if w.rank() != 2 {
        return Err(Error::shape(
            "permute_rope_rows",
            format!("{:?} is not a matrix", w.shape()),
        ));
    }
    let src = w.to_vec_f32()?;
    let out = permute_rope_row_blocks(&src, rows, n_head, to_hf)?;
    Tensor::from_vec(out, &[rows, cols])
}

/// `permute_rope_rows` on any row-major rows of equal size: f32 values, or
/// a quantized matrix's bytes (each row whole blocks), which keeps a GGUF
/// file's blocks as they are while putting its rows in Hugging Face's order.
pub fn permute_rope_row_blocks<T: Copy + Default>(
    src: &[T],
    rows: usize,
    n_head: usize,
    to_hf: bool,
) -> Result<Vec<T>> {
    if n_head == 0 || !rows.is_multiple_of(2 * n_head) || !src.len().is_multiple_of(rows.max(1)) {
        return Err(Error::shape(
            "permute_rope_rows",
            format!("{rows} rows are not {n_head} heads of an even size"),
        ));
    }
    let (d, width) = (rows / n_head, src.len() / rows.max(1));
    let mut out = vec![T::default(); src.len()];
    for h in 0..n_head {
        for i in 0..d / 2 {
            for a in 0..2 {
                let (gguf, hf) = (h * d + 2 * i + a, h * d + a * (d / 2) + i);
                let (from, to) = if to_hf { (gguf, hf) } else { (hf, gguf) };
                out[to * width..(to + 1) * width]
                    .copy_from_slice(&src[from * width..(from + 1) * width]);
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kindling_nn::module::leaf_parameter_names;

    #[test]
    fn the_mutable_walk_agrees_with_the_hugging_face_names() {
        // From JSON, as config.json is read: fields added later keep their
        // defaults. `qk_norm` asks for every optional layer there is (a
        // field this model may not have yet, then ignored), so the walks
        // are compared over all of them.
        let config: LlamaConfig = serde_json::from_value(serde_json::json!({
            "vocab_size": 6, "hidden_size": 8, "intermediate_size": 12,
            "num_hidden_layers": 2, "num_attention_heads": 2, "num_key_value_heads": 1,
            "max_position_embeddings": 8, "rms_norm_eps": 1e-5, "qk_norm": true
        }))
        .unwrap();
        let mut m = Llama::new(config, &mut Rng::new(0)).unwrap();
        let names: Vec<String> = m.named_parameters().into_iter().map(|(n, _)| n).collect();
        assert!(names.contains(&"model.layers.1.self_attn.k_proj.weight".to_string()));
        assert_eq!(leaf_parameter_names(&mut m), names);
        let mut linears = 0;
        m.map_linears(&mut |_, _| linears += 1);
        assert_eq!(
            linears,
            2 * 7 + 1,
            "q, k, v, o, gate, up, down per layer, and the head"
        );
    }

    #[test]
    fn packed_sequences_each_see_only_themselves() {
        let config: LlamaConfig = serde_json::from_value(serde_json::json!({
            "vocab_size": 11, "hidden_size": 8, "intermediate_size": 12,
            "num_hidden_layers": 2, "num_attention_heads": 2, "num_key_value_heads": 1,
            "max_position_embeddings": 8, "rms_norm_eps": 1e-5
        }))
        .unwrap();
        let m = Llama::new(config, &mut Rng::new(3)).unwrap();
        let seqs: [&[i64]; 3] = [&[1, 4, 2], &[7], &[3, 3, 9, 10, 5]];
        let flat: Vec<i64> = seqs.concat();
        let ids = Tensor::from_vec_i64(flat.clone(), &[1, flat.len()]).unwrap();
        let lengths: Vec<usize> = seqs.iter().map(|s| s.len()).collect();
        let packed = m.hidden_packed(&ids, &lengths).unwrap();
        let alone: Vec<Tensor> = seqs
            .iter()
            .map(|s| {
                let ids = Tensor::from_vec_i64(s.to_vec(), &[1, s.len()]).unwrap();
                m.hidden(&ids, None).unwrap()
            })
            .collect();
        let alone = cat(&alone.iter().collect::<Vec<_>>(), 1).unwrap();
        let (a, b) = (packed.to_vec_f32().unwrap(), alone.to_vec_f32().unwrap());
        assert_eq!(a.len(), b.len());
        let worst = a
            .iter()
            .zip(&b)
            .map(|(x, y)| (x - y).abs())
            .fold(0f32, f32::max);
        assert!(worst < 1e-5, "packed vs one at a time differ by {worst}");
        // Gradients flow through the packed path to every layer.
        packed.sum_all().unwrap().backward().unwrap();
        assert!(m.layers[0]
            .self_attn
            .q_proj
            .dense_weight()
            .unwrap()
            .grad()
            .is_some());
        let e = m.hidden_packed(&ids, &[3, 1, 4]).unwrap_err().to_string();
        assert!(e.contains("sum of non-zero lengths"), "{e}");
    }
}
