//! LLaMA weights in the files people share: a Hugging Face model folder
//! (`config.json` + `model.safetensors`, or shards listed in
//! `model.safetensors.index.json`) and llama.cpp's GGUF. Kindling's own
//! language-model runs are Hugging Face folders, so `transformers` loads
//! them as they are.

use crate::llama::{gguf_name, permute_rope_row_blocks, permute_rope_rows, Llama, LlamaConfig};
use kindling_nn::{Linear, LinearWeight, Module};
use kindling_tensor::gguf::{GgmlType, GgufFile};
use kindling_tensor::quant::QMatrix;
use kindling_tensor::{safetensors_io, DType, Error, Result, Tensor};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::path::Path;

fn msg(path: &Path, m: impl std::fmt::Display) -> Error {
    Error::msg(format!("{}: {m}", path.display()))
}

/// The config of a GGUF file whose `general.architecture` is `llama`.
pub fn config_from_gguf(g: &GgufFile) -> Result<LlamaConfig> {
    let arch = g.require("general.architecture")?.as_str().unwrap_or("?");
    if arch != "llama" {
        return Err(msg(
            &g.path,
            format!("architecture `{arch}` is not supported (llama is)"),
        ));
    }
    let num = |key: &str| -> Result<u64> {
        let k = format!("llama.{key}");
        g.require(&k)?.as_u64().ok_or_else(|| {
            msg(
                &g.path,
                format!("metadata `{k}` is not a non-negative integer"),
            )
        })
    };
    let float = |key: &str, default: f64| -> f64 {
        g.get(&format!("llama.{key}"))
            .and_then(|v| v.as_f64())
            .unwrap_or(default)
    };
    let embd = g
        .info("token_embd.weight")
        .ok_or_else(|| msg(&g.path, "tensor `token_embd.weight` is missing"))?;
    let heads = num("attention.head_count")? as usize;
    let config = LlamaConfig {
        vocab_size: embd.shape()[0],
        hidden_size: num("embedding_length")? as usize,
        intermediate_size: num("feed_forward_length")? as usize,
        num_hidden_layers: num("block_count")? as usize,
        num_attention_heads: heads,
        num_key_value_heads: g
            .get("llama.attention.head_count_kv")
            .and_then(|v| v.as_u64())
            .map_or(heads, |v| v as usize),
        head_dim: g
            .get("llama.rope.dimension_count")
            .and_then(|v| v.as_u64())
            .map(|v| v as usize),
        max_position_embeddings: num("context_length")? as usize,
        rms_norm_eps: float("attention.layer_norm_rms_epsilon", 1e-5),
        rope_theta: float("rope.freq_base", 10000.0),
        tie_word_embeddings: g.info("output.weight").is_none(),
        bos_token_id: g
            .get("tokenizer.ggml.bos_token_id")
            .and_then(|v| v.as_u64())
            .map(|v| v as u32),
        eos_token_id: g
            .get("tokenizer.ggml.eos_token_id")
            .and_then(|v| v.as_u64())
            .map(|v| v as u32),
        qk_norm: false,
    };
    config.validate().map_err(|e| msg(&g.path, e))?;
    Ok(config)
}

/// A LLaMA model from a GGUF file, every tensor dequantized to f32 and Q/K
/// rows put back in Hugging Face's order.
pub fn llama_from_gguf(g: &GgufFile) -> Result<Llama> {
    llama_from_gguf_with(g, false)
}

/// `llama_from_gguf`; with `skip_blocks`, the linear weights stored in a
/// block format are not dequantized: each is a stride-0 placeholder of its
/// shape (no memory) until `llama_from_gguf_quantized` puts the blocks in
/// its place, so loading never holds the f32 copy of the model.
fn llama_from_gguf_with(g: &GgufFile, skip_blocks: bool) -> Result<Llama> {
    let config = config_from_gguf(g)?;
    let (h, kvh) = (config.num_attention_heads, config.num_key_value_heads);
    let mut model = Llama::from_named(config, &mut |hf| {
        let name = gguf_name(hf).ok_or_else(|| Error::msg(format!("no GGUF name for `{hf}`")))?;
        let linear_or_embedding = hf.ends_with("_proj.weight") || hf == "model.embed_tokens.weight";
        if skip_blocks && linear_or_embedding && block_quantized(g, &name) {
            let shape = g.info(&name).map(|t| t.shape()).unwrap_or_default();
            return Tensor::zeros(&[1, 1]).expand(&shape);
        }
        let t = g.tensor(&name)?;
        if hf.ends_with("q_proj.weight") {
            permute_rope_rows(&t, h, true)
        } else if hf.ends_with("k_proj.weight") {
            permute_rope_rows(&t, kvh, true)
        } else {
            Ok(t)
        }
    })
    .map_err(|e| match e {
        Error::Shape { msg: m, .. } => msg(&g.path, m),
        other => other,
    })?;
    // llama.cpp is the reference for GGUF files: its rotation angles.
    model.follow_llama_cpp();
    Ok(model)
}

/// A LLaMA from a GGUF file for inference on its own blocks: every linear
/// layer stored in a block format (Q8_0, Q4_0, Q4_1, Q4_K, Q6_K) keeps it and
/// is multiplied by the quantized kernels, as llama.cpp does; the rest is
/// read as f32. An embedding stored in blocks stays in them: tokens are
/// looked up by dequantizing their rows (llama.cpp's `get_rows`), and a
/// head tied to it multiplies by the same blocks.
pub fn llama_from_gguf_quantized(g: &GgufFile) -> Result<Llama> {
    let mut model = llama_from_gguf_with(g, true)?;
    let (h, kvh) = (
        model.config.num_attention_heads,
        model.config.num_key_value_heads,
    );
    let mut failed = None;
    model.map_linears(&mut |name, lin| {
        if failed.is_none() {
            match quantized_weight(g, &format!("{name}.weight"), h, kvh) {
                Ok(Some(q)) => lin.weight = LinearWeight::quantized(q),
                Ok(None) => {}
                Err(e) => failed = Some(e),
            }
        }
    });
    if let Some(e) = failed {
        return Err(e);
    }
    // The embedding's blocks serve the lookup, and the tied head's product.
    if let Some(q) = quantized_weight(g, "model.embed_tokens.weight", h, kvh)? {
        let q = std::sync::Arc::new(q);
        if model.lm_head.is_none() {
            model.lm_head = Some(Linear {
                weight: LinearWeight::Quantized {
                    shape: [q.rows(), q.cols()],
                    matrix: q.clone(),
                },
                bias: None,
                lora: None,
            });
        }
        model.embed_blocks = Some(q);
    }
    // Every placeholder must have been replaced by its blocks.
    let mut left = None;
    model.map_linears(&mut |name, lin| {
        if let LinearWeight::Dense(w) = &lin.weight {
            if left.is_none() && w.numel() > 1 && w.layout().strides().iter().all(|&s| s == 0) {
                left = Some(name.to_string());
            }
        }
    });
    if let Some(name) = left {
        return Err(msg(
            &g.path,
            format!("`{name}.weight`: stored in blocks, but its blocks were not loaded"),
        ));
    }
    let w = &model.embed_tokens.weight;
    if model.embed_blocks.is_none() && w.numel() > 1 && w.layout().strides().iter().all(|&s| s == 0)
    {
        return Err(msg(
            &g.path,
            "`token_embd.weight`: stored in blocks, but its blocks were not loaded".to_string(),
        ));
    }
    Ok(model)
}

/// Whether GGUF tensor `name` is stored in a block format the quantized
/// kernels multiply by.
fn block_quantized(g: &GgufFile, name: &str) -> bool {
    g.info(name).and_then(|t| t.ggml_type()).is_some_and(|ty| {
        matches!(
            ty,
            GgmlType::Q8_0 | GgmlType::Q4_0 | GgmlType::Q4_1 | GgmlType::Q4_K | GgmlType::Q6_K
        )
    })
}

/// The blocks of the GGUF tensor behind Hugging Face name `hf`, when it is
/// stored quantized; Q and K rows put in Hugging Face's order.
fn quantized_weight(g: &GgufFile, hf: &str, h: usize, kvh: usize) -> Result<Option<QMatrix>> {
    let name = gguf_name(hf).ok_or_else(|| Error::msg(format!("no GGUF name for `{hf}`")))?;
    if !block_quantized(g, &name) {
        return Ok(None);
    }
    let (info, ty, bytes) = g.tensor_bytes(&name)?;
    let shape = info.shape();
    let (rows, cols) = (shape[0], shape.get(1).copied().unwrap_or(1));
    let bytes = if hf.ends_with("q_proj.weight") {
        permute_rope_row_blocks(&bytes, rows, h, true)?
    } else if hf.ends_with("k_proj.weight") {
        permute_rope_row_blocks(&bytes, rows, kvh, true)?
    } else {
        bytes
    };
    QMatrix::from_bytes(ty, rows, cols, bytes)
        .map(Some)
        .map_err(|e| msg(&g.path, format!("tensor `{name}`: {e}")))
}

/// A Hugging Face folder's `config.json` (its path and JSON), checked to
/// be of `model_type`.
pub(crate) fn read_config_json(
    dir: &Path,
    model_type: &str,
) -> Result<(std::path::PathBuf, Value)> {
    let path = dir.join("config.json");
    let text = std::fs::read_to_string(&path).map_err(|e| Error::Io {
        path: path.display().to_string(),
        source: e,
    })?;
    let v: Value = serde_json::from_str(&text).map_err(|e| msg(&path, format!("not JSON: {e}")))?;
    let found = v.get("model_type").and_then(|m| m.as_str()).unwrap_or("?");
    if found != model_type {
        return Err(msg(
            &path,
            format!("model_type `{found}` is not supported ({model_type} is)"),
        ));
    }
    Ok((path, v))
}

/// Reads `config.json` of a Hugging Face LLaMA folder.
pub fn read_hf_config(dir: &Path) -> Result<LlamaConfig> {
    let (path, v) = read_config_json(dir, "llama")?;
    // transformers 5 writes the rotary settings under `rope_parameters`
    // (older versions: top-level `rope_theta`, scaling in `rope_scaling`).
    let mut v = v;
    for key in ["rope_parameters", "rope_scaling"] {
        if let Some(rp) = v.get(key).filter(|r| r.is_object()).cloned() {
            let kind = rp
                .get("rope_type")
                .or(rp.get("type"))
                .and_then(|t| t.as_str())
                .unwrap_or("default");
            if kind != "default" {
                return Err(msg(
                    &path,
                    format!("{key}.rope_type `{kind}` is not supported (only the default RoPE is)"),
                ));
            }
            if v.get("rope_theta").is_none() {
                if let Some(t) = rp.get("rope_theta") {
                    v["rope_theta"] = t.clone();
                }
            }
        }
    }
    let mut config: LlamaConfig =
        serde_json::from_value(v.clone()).map_err(|e| msg(&path, format!("field {e}")))?;
    // `eos_token_id` may be a list; the first one is the end of a turn.
    if config.eos_token_id.is_none() {
        config.eos_token_id = v
            .get("eos_token_id")
            .and_then(|e| e.as_array())
            .and_then(|a| a.first())
            .and_then(|e| e.as_u64())
            .map(|e| e as u32);
    }
    config.validate().map_err(|e| msg(&path, e))?;
    Ok(config)
}

/// Every tensor of a folder's safetensors file(s), as f32.
pub(crate) fn read_safetensors(dir: &Path) -> Result<HashMap<String, Tensor>> {
    let index = dir.join("model.safetensors.index.json");
    let files: Vec<std::path::PathBuf> = if index.exists() {
        let text = std::fs::read_to_string(&index).map_err(|e| Error::Io {
            path: index.display().to_string(),
            source: e,
        })?;
        let v: Value =
            serde_json::from_str(&text).map_err(|e| msg(&index, format!("not JSON: {e}")))?;
        let mut shards: Vec<String> = v
            .get("weight_map")
            .and_then(|m| m.as_object())
            .ok_or_else(|| msg(&index, "has no `weight_map`"))?
            .values()
            .filter_map(|f| f.as_str().map(String::from))
            .collect();
        shards.sort();
        shards.dedup();
        shards.iter().map(|s| dir.join(s)).collect()
    } else {
        vec![dir.join("model.safetensors")]
    };
    let mut all = HashMap::new();
    for f in files {
        let (tensors, _) = safetensors_io::load(&f)?;
        for (name, t) in tensors {
            let t = if t.dtype() == DType::F32 {
                t
            } else {
                t.to_dtype(DType::F32)?
            };
            all.insert(name, t);
        }
    }
    Ok(all)
}

/// A LLaMA model from a Hugging Face folder.
pub fn llama_from_hf_dir(dir: &Path) -> Result<Llama> {
    let config = read_hf_config(dir)?;
    let mut tensors = read_safetensors(dir)?;
    Llama::from_named(config, &mut |name| {
        tensors.remove(name).ok_or_else(|| {
            msg(
                &dir.join("model.safetensors"),
                format!("tensor `{name}` is missing"),
            )
        })
    })
    .map_err(|e| match e {
        Error::Shape { msg: m, .. } => msg(&dir.join("model.safetensors"), m),
        other => other,
    })
}

/// Writes `config.json` and `model.safetensors` as `transformers` writes
/// them for `LlamaForCausalLM` (f32). The tokenizer files are the caller's.
pub fn save_hf_dir(model: &Llama, dir: &Path) -> Result<()> {
    if model.config.qk_norm {
        // transformers' LlamaForCausalLM has no q_norm/k_norm: it would load
        // the folder, drop those weights with a warning and compute another model.
        return Err(Error::msg(format!(
            "{}: a LLaMA with qk_norm has no Hugging Face LLaMA equivalent; not saving it as one",
            dir.display()
        )));
    }
    if !kindling_nn::lora::adapter_parameters(model).is_empty() {
        return Err(Error::msg(format!(
            "{}: the model carries LoRA adapters; merge them into the weights first or save the adapter alone",
            dir.display()
        )));
    }
    let io = |p: &Path, e| Error::Io {
        path: p.display().to_string(),
        source: e,
    };
    std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
    let mut config = serde_json::to_value(&model.config).expect("config serializes");
    let extra = json!({
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_act": "silu",
        "attention_bias": false,
        "mlp_bias": false,
        "torch_dtype": "float32",
        "rope_parameters": {"rope_theta": model.config.rope_theta, "rope_type": "default"},
        "initializer_range": 0.02,
        "head_dim": model.config.head_dim(),
    });
    for (k, v) in extra.as_object().expect("object") {
        config[k] = v.clone();
    }
    let text = serde_json::to_string_pretty(&config).expect("json");
    safetensors_io::write_atomic(&dir.join("config.json"), text.as_bytes())?;
    let meta = HashMap::from([("format".to_string(), "pt".to_string())]);
    safetensors_io::save(
        &dir.join("model.safetensors"),
        &model.named_parameters(),
        &meta,
    )
}

/// Where a `--model` points: a GGUF file or a Hugging Face/Kindling folder.
pub fn load_llama(path: &Path) -> Result<Llama> {
    if path.is_dir() {
        llama_from_hf_dir(path)
    } else if path.exists() {
        llama_from_gguf(&GgufFile::open(path)?)
    } else {
        Err(msg(path, "no such file or directory"))
    }
}
