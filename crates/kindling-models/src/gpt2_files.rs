//! GPT-2 in Hugging Face folders (`config.json` + `model.safetensors`), both
//! ways: a folder `transformers` saved loads into Kindling's [`Gpt`], and a
//! Kindling GPT saves as a folder that `GPT2LMHeadModel` loads with the same
//! logits.
//!
//! Kindling's GPT is nanoGPT's, which is GPT-2's architecture with the same
//! parameter names under a `transformer.` prefix. Two things differ:
//!
//! | Kindling | Hugging Face |
//! | --- | --- |
//! | `wte.weight`, `wpe.weight`, `h.N.*`, `ln_f.*` | `transformer.` + the same name (older checkpoints such as `openai-community/gpt2` omit the prefix; both are read) |
//! | `lm_head.weight` (untied only) | `lm_head.weight` (absent when tied to `wte`) |
//! | `h.N.{attn.c_attn, attn.c_proj, mlp.c_fc, mlp.c_proj}.weight` as `[out, in]` (Linear) | the same as `[in, out]` (GPT-2's `Conv1D`): transposed both ways |
//! | `activation: gelu_tanh` / `gelu_erf` | `activation_function: gelu_new` / `gelu` |
//! | `block_size` | `n_positions` |
//! | `tie_weights` | `tie_word_embeddings` |
//!
//! `attn.bias` / `attn.masked_bias` (causal-mask buffers some checkpoints
//! carry) are ignored. A model trained with `bias: false` has no bias
//! tensors, which GPT-2 cannot express: saving writes zero biases, which
//! computes the same function (so the folder loads back as `bias: true`).
//! The tokenizer files are the caller's.

use crate::gpt::{Activation, Gpt, GptConfig};
use crate::llama_files::read_safetensors;
use kindling_nn::Module;
use kindling_tensor::{safetensors_io, Error, Result, Tensor};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::path::Path;

fn msg(path: &Path, m: impl std::fmt::Display) -> Error {
    Error::msg(format!("{}: {m}", path.display()))
}

/// GPT-2 stores these four as `Conv1D` weights, `[in, out]`.
const CONV1D: [&str; 4] = [
    "attn.c_attn.weight",
    "attn.c_proj.weight",
    "mlp.c_fc.weight",
    "mlp.c_proj.weight",
];

fn is_conv1d(name: &str) -> bool {
    CONV1D.iter().any(|s| name.ends_with(s))
}

/// The Hugging Face name of a Kindling GPT parameter name.
pub fn hf_name(kindling: &str) -> String {
    if kindling.starts_with("lm_head.") {
        kindling.to_string()
    } else {
        format!("transformer.{kindling}")
    }
}

/// Reads `config.json` of a Hugging Face GPT-2 folder. Settings Kindling's
/// GPT cannot compute (another activation, `n_inner` other than 4·n_embd,
/// unscaled or layer-scaled attention, cross-attention, a LayerNorm epsilon
/// other than 1e-5) are refused by name rather than computed differently.
pub fn read_gpt2_config(dir: &Path) -> Result<GptConfig> {
    let (path, v) = crate::llama_files::read_config_json(dir, "gpt2")?;
    let size = |key: &str, alias: Option<&str>| -> Result<usize> {
        v.get(key)
            .or_else(|| alias.and_then(|a| v.get(a)))
            .and_then(|x| x.as_u64())
            .map(|x| x as usize)
            .ok_or_else(|| {
                msg(
                    &path,
                    format!("field `{key}` is missing or not a non-negative integer"),
                )
            })
    };
    let (n_embd, n_layer, n_head) = (
        size("n_embd", None)?,
        size("n_layer", None)?,
        size("n_head", None)?,
    );
    let n_positions = size("n_positions", Some("n_ctx"))?;
    let vocab_size = size("vocab_size", None)?;
    let flag = |key: &str, default: bool| v.get(key).and_then(|x| x.as_bool()).unwrap_or(default);
    let activation = match v
        .get("activation_function")
        .and_then(|a| a.as_str())
        .unwrap_or("gelu_new")
    {
        // The same tanh formula, written three ways in transformers.
        "gelu_new" | "gelu_pytorch_tanh" | "gelu_fast" => Activation::GeluTanh,
        "gelu" => Activation::GeluErf,
        other => {
            return Err(msg(
                &path,
                format!("activation_function `{other}` is not supported (gelu_new and gelu are)"),
            ))
        }
    };
    if let Some(inner) = v.get("n_inner").filter(|x| !x.is_null()) {
        if inner.as_u64() != Some(4 * n_embd as u64) {
            return Err(msg(
                &path,
                format!(
                    "n_inner {inner} is not supported (the MLP is 4 × n_embd = {})",
                    4 * n_embd
                ),
            ));
        }
    }
    let eps = v
        .get("layer_norm_epsilon")
        .and_then(|e| e.as_f64())
        .unwrap_or(1e-5);
    if (eps - 1e-5).abs() > 1e-12 {
        return Err(msg(
            &path,
            format!("layer_norm_epsilon {eps} is not supported (Kindling's LayerNorm uses 1e-5)"),
        ));
    }
    for (key, want) in [
        ("scale_attn_weights", true),
        ("scale_attn_by_inverse_layer_idx", false),
        ("add_cross_attention", false),
    ] {
        if flag(key, want) != want {
            return Err(msg(&path, format!("{key} = {} is not supported", !want)));
        }
    }
    let config = GptConfig {
        n_layer,
        n_head,
        n_embd,
        block_size: n_positions,
        vocab_size,
        dropout: v.get("resid_pdrop").and_then(|p| p.as_f64()).unwrap_or(0.1) as f32,
        tie_weights: flag("tie_word_embeddings", true),
        bias: true,
        activation,
    };
    config.validate().map_err(|e| msg(&path, e))?;
    Ok(config)
}

/// If a safetensors file is cut short, the first tensor whose bytes are
/// missing (a plain "incomplete buffer" names neither).
fn truncated_tensor(path: &Path) -> Option<String> {
    let bytes = std::fs::read(path).ok()?;
    let n = u64::from_le_bytes(bytes.get(..8)?.try_into().ok()?) as usize;
    let Some(header) = bytes.get(8..8usize.checked_add(n)?) else {
        return Some(format!(
            "the header needs {n} bytes, the file holds {}",
            bytes.len().saturating_sub(8)
        ));
    };
    let header: Value = serde_json::from_slice(header).ok()?;
    let data_len = bytes.len() - 8 - n;
    let mut tensors: Vec<(&String, u64, u64)> = header
        .as_object()?
        .iter()
        .filter_map(|(name, info)| {
            let off = info.get("data_offsets")?.as_array()?;
            Some((name, off.first()?.as_u64()?, off.get(1)?.as_u64()?))
        })
        .collect();
    tensors.sort_by_key(|t| t.1);
    tensors
        .into_iter()
        .find(|t| t.2 as usize > data_len)
        .map(|(name, start, end)| {
            format!("truncated: tensor `{name}` needs data bytes {start}..{end}, the file holds {data_len}")
        })
}

/// Named tensors taken from a folder's files, with the shapes checked
/// against the config (the file's names and `[in, out]` shapes in messages).
struct HfTensors<'a> {
    tensors: HashMap<String, Tensor>,
    file: &'a Path,
}

impl HfTensors<'_> {
    /// The tensor Kindling calls `name`, as a Kindling-layout tensor of `shape`.
    fn take(&mut self, name: &str, shape: &[usize]) -> Result<Tensor> {
        let hf = hf_name(name);
        let t = self
            .tensors
            .remove(&hf)
            .or_else(|| self.tensors.remove(name))
            .ok_or_else(|| msg(self.file, format!("tensor `{hf}` is missing")))?;
        let conv = is_conv1d(name);
        let want: Vec<usize> = if conv {
            vec![shape[1], shape[0]]
        } else {
            shape.to_vec()
        };
        if t.shape() != want.as_slice() {
            return Err(msg(
                self.file,
                format!(
                    "tensor `{hf}` is {:?}, the config needs {want:?}",
                    t.shape()
                ),
            ));
        }
        if conv {
            t.t()?.copy()
        } else {
            Ok(t)
        }
    }
}

/// A GPT from a Hugging Face GPT-2 folder (f16/bf16 weights become f32).
pub fn gpt_from_hf_dir(dir: &Path) -> Result<Gpt> {
    let config = read_gpt2_config(dir)?;
    let file = if dir.join("model.safetensors.index.json").exists() {
        dir.join("model.safetensors.index.json")
    } else {
        dir.join("model.safetensors")
    };
    let tensors = read_safetensors(dir).map_err(|e| {
        match truncated_tensor(&dir.join("model.safetensors")) {
            Some(why) => msg(&dir.join("model.safetensors"), why),
            None => e,
        }
    })?;
    // The model's own structure names every tensor; `hf_name` and `CONV1D`
    // are the whole rename table. Random init is overwritten, and the
    // weights are frozen as a loaded model's always were (inference).
    let mut w = HfTensors {
        tensors,
        file: &file,
    };
    let model = Gpt::new(config, &mut kindling_tensor::Rng::new(0))?;
    model.map_params(&mut |name, p| w.take(name, p.shape()).map(Some))?;
    model.set_trainable(&|_| true, false);
    Ok(model)
}

/// Writes `config.json` and `model.safetensors` as `transformers` writes
/// them for `GPT2LMHeadModel` (f32, `transformer.`-prefixed names, `Conv1D`
/// weights transposed to `[in, out]`). A `bias: false` model gets zero
/// biases (the same function). The tokenizer files are the caller's.
pub fn save_gpt_hf_dir(model: &Gpt, dir: &Path) -> Result<()> {
    let io = |p: &Path, e| Error::Io {
        path: p.display().to_string(),
        source: e,
    };
    std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
    let c = &model.config;
    let config = json!({
        "architectures": ["GPT2LMHeadModel"],
        "model_type": "gpt2",
        "vocab_size": c.vocab_size,
        "n_positions": c.block_size,
        "n_embd": c.n_embd,
        "n_layer": c.n_layer,
        "n_head": c.n_head,
        "n_inner": null,
        "activation_function": match c.activation {
            Activation::GeluTanh => "gelu_new",
            Activation::GeluErf => "gelu",
        },
        "resid_pdrop": c.dropout,
        "embd_pdrop": c.dropout,
        "attn_pdrop": 0.0,
        "layer_norm_epsilon": 1e-5,
        "initializer_range": 0.02,
        "scale_attn_weights": true,
        "scale_attn_by_inverse_layer_idx": false,
        "reorder_and_upcast_attn": false,
        "tie_word_embeddings": c.tie_weights,
        "bos_token_id": null,
        "eos_token_id": null,
        "torch_dtype": "float32",
    });
    let text = serde_json::to_string_pretty(&config).expect("json");
    safetensors_io::write_atomic(&dir.join("config.json"), text.as_bytes())?;
    let mut named = Vec::new();
    let mut push = |name: &str, t: &Tensor| -> Result<()> {
        let t = if is_conv1d(name) {
            t.t()?.copy()?
        } else {
            t.copy()?
        };
        named.push((hf_name(name), t));
        Ok(())
    };
    let mut first_err = Ok(());
    model.visit_parameters("", &mut |name, t| {
        if first_err.is_ok() {
            first_err = push(&name, t);
        }
    });
    first_err?;
    if !c.bias {
        // GPT-2 always has biases: zeros where Kindling's model has none.
        let dim = |w: &str| -> usize {
            named
                .iter()
                .find(|(n, _)| *n == hf_name(w))
                .map(|(n, t)| {
                    if is_conv1d(n) {
                        t.shape()[1]
                    } else {
                        t.shape()[0]
                    }
                })
                .expect("weight named by the same model")
        };
        let mut zeros = Vec::new();
        for (n, _) in &named {
            if let Some(stem) = n
                .strip_prefix("transformer.")
                .and_then(|n| n.strip_suffix(".weight"))
            {
                if stem.starts_with("h.") || stem == "ln_f" {
                    let bias = format!("transformer.{stem}.bias");
                    if !named.iter().any(|(m, _)| *m == bias) {
                        zeros.push((bias, Tensor::zeros(&[dim(&format!("{stem}.weight"))])));
                    }
                }
            }
        }
        named.extend(zeros);
    }
    let meta = HashMap::from([("format".to_string(), "pt".to_string())]);
    safetensors_io::save(&dir.join("model.safetensors"), &named, &meta)
}
