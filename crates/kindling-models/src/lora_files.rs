//! LoRA adapters in Hugging Face PEFT's format: a folder holding
//! `adapter_config.json` and `adapter_model.safetensors`, whose tensors are
//! named `base_model.model.<layer>.lora_A.weight` / `lora_B.weight` after
//! the base model's own (Hugging Face) names. PEFT loads an adapter Kindling
//! saves, and Kindling loads one PEFT saves, with the same outputs.

use kindling_nn::lora::{self, LoraConfig};
use kindling_nn::Module;
use kindling_tensor::{safetensors_io, Error, Result, Rng, Tensor};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::path::Path;

pub const CONFIG_FILE: &str = "adapter_config.json";
pub const WEIGHTS_FILE: &str = "adapter_model.safetensors";
const PREFIX: &str = "base_model.model.";

fn msg(path: &Path, m: impl std::fmt::Display) -> Error {
    Error::msg(format!("{}: {m}", path.display()))
}

/// Writes the adapters installed in `model` as a PEFT folder. `base_model`
/// is recorded as `base_model_name_or_path` (where the base came from).
pub fn save_peft(
    dir: &Path,
    model: &dyn Module,
    config: &LoraConfig,
    base_model: &str,
) -> Result<()> {
    let tensors: Vec<(String, Tensor)> = lora::adapter_parameters(model)
        .into_iter()
        .map(|(n, t)| (format!("{PREFIX}{n}"), t))
        .collect();
    if tensors.is_empty() {
        return Err(msg(dir, "the model has no LoRA adapters to save"));
    }
    let mut targets: Vec<String> = config
        .targets
        .iter()
        .map(|t| lora::target_layer_name(t))
        .collect();
    targets.sort();
    targets.dedup();
    let cfg = json!({
        "peft_type": "LORA",
        "task_type": "CAUSAL_LM",
        "base_model_name_or_path": base_model,
        "r": config.rank,
        "lora_alpha": config.alpha,
        "use_rslora": config.rslora,
        "target_modules": targets,
        "lora_dropout": 0.0,
        "bias": "none",
        "fan_in_fan_out": false,
        "use_dora": false,
        "init_lora_weights": true,
        "inference_mode": true,
        "modules_to_save": null,
        "layers_to_transform": null,
        "layers_pattern": null,
        "rank_pattern": {},
        "alpha_pattern": {},
    });
    std::fs::create_dir_all(dir).map_err(|e| msg(dir, e))?;
    let meta = HashMap::from([("format".to_string(), "pt".to_string())]);
    safetensors_io::save(&dir.join(WEIGHTS_FILE), &tensors, &meta)?;
    let text = serde_json::to_string_pretty(&cfg).expect("json") + "\n";
    safetensors_io::write_atomic(&dir.join(CONFIG_FILE), text.as_bytes())
}

/// Reads a PEFT `adapter_config.json`, refusing what Kindling would compute
/// differently (DoRA, per-layer ranks, transposed weights, trained biases).
pub fn read_peft_config(dir: &Path) -> Result<LoraConfig> {
    let path = dir.join(CONFIG_FILE);
    let text = std::fs::read_to_string(&path).map_err(|e| msg(&path, e))?;
    let v: Value =
        serde_json::from_str(&text).map_err(|e| msg(&path, format!("not JSON ({e})")))?;
    let field = |name: &str| v.get(name).filter(|x| !x.is_null());
    if let Some(t) = field("peft_type").and_then(Value::as_str) {
        if t != "LORA" {
            return Err(msg(
                &path,
                format!("`peft_type` is {t}; only LORA adapters are supported"),
            ));
        }
    }
    let rank = field("r")
        .and_then(Value::as_u64)
        .filter(|&r| r > 0)
        .ok_or_else(|| {
            msg(
                &path,
                "field `r` (the rank) is missing or not a positive integer",
            )
        })? as usize;
    let alpha = field("lora_alpha")
        .and_then(Value::as_f64)
        .ok_or_else(|| msg(&path, "field `lora_alpha` is missing or not a number"))?
        as f32;
    let targets: Vec<String> = match field("target_modules") {
        Some(Value::Array(a)) => a
            .iter()
            .map(|t| t.as_str().map(str::to_string))
            .collect::<Option<_>>()
            .ok_or_else(|| msg(&path, "field `target_modules` holds a non-string"))?,
        Some(Value::String(s)) => {
            return Err(msg(
                &path,
                format!(
                    "field `target_modules` is a pattern (`{s}`); give the list of layer names"
                ),
            ))
        }
        _ => return Err(msg(&path, "field `target_modules` is missing")),
    };
    let truthy = |name: &str| field(name).and_then(Value::as_bool).unwrap_or(false);
    for unsupported in ["use_dora", "fan_in_fan_out"] {
        if truthy(unsupported) {
            return Err(msg(
                &path,
                format!("`{unsupported}` is true; Kindling supports plain LoRA only"),
            ));
        }
    }
    if let Some(b) = field("bias").and_then(Value::as_str) {
        if b != "none" {
            return Err(msg(
                &path,
                format!("`bias` is \"{b}\"; only \"none\" is supported"),
            ));
        }
    }
    for pattern in ["rank_pattern", "alpha_pattern"] {
        if field(pattern)
            .and_then(Value::as_object)
            .is_some_and(|m| !m.is_empty())
        {
            return Err(msg(
                &path,
                format!("`{pattern}` (per-layer settings) is not supported"),
            ));
        }
    }
    if field("modules_to_save")
        .and_then(Value::as_array)
        .is_some_and(|m| !m.is_empty())
    {
        return Err(msg(
            &path,
            "`modules_to_save` (fully trained extra layers) is not supported",
        ));
    }
    if field("layers_to_transform").is_some() {
        return Err(msg(
            &path,
            "`layers_to_transform` (adapters on some layers only) is not supported",
        ));
    }
    Ok(LoraConfig {
        rank,
        alpha,
        targets,
        rslora: truthy("use_rslora"),
    })
}

/// Installs the PEFT adapter in `dir` on `model` (whose parameters take the
/// Hugging Face names, as Kindling's LLaMA's do) and returns its config.
/// Every adapter tensor must match a layer, and every adapted layer must
/// have its tensors, with the right shapes.
pub fn load_peft(dir: &Path, model: &mut dyn Module) -> Result<LoraConfig> {
    let config = read_peft_config(dir)?;
    let path = dir.join(WEIGHTS_FILE);
    if !path.is_file() {
        return Err(msg(&path, "no such file (the adapter's weights)"));
    }
    let (mut tensors, _) = safetensors_io::load(&path)?;
    lora::install(model, &config, &mut Rng::new(0)).map_err(|e| msg(&dir.join(CONFIG_FILE), e))?;
    let mut failure = None;
    model
        .map_params(&mut |name, _| {
            if !(name.contains(".lora_A.") || name.contains(".lora_B.")) {
                return Ok(None);
            }
            match tensors.remove(&format!("{PREFIX}{name}")) {
                Some(t) => Ok(Some(t)),
                None => {
                    failure.get_or_insert_with(|| {
                        msg(&path, format!("tensor `{PREFIX}{name}` is missing"))
                    });
                    Ok(None)
                }
            }
        })
        .map_err(|e| msg(&path, e))?;
    if let Some(e) = failure {
        return Err(e);
    }
    if let Some(extra) = tensors.keys().min() {
        return Err(msg(
            &path,
            format!("tensor `{extra}` belongs to no adapted layer of this model (a different base model?)"),
        ));
    }
    Ok(config)
}
