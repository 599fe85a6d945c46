//! The options of `train gpt` and `train lm`, declared once and layered:
//! the options struct's defaults (a preset) < `--config FILE.toml` < flags.
//!
//! Flags are `Option`s so that "given or not" is known: a flag left out
//! keeps what the config file or the preset says. The flags both commands
//! share are one struct, [`LmLoopArgs`], flattened into each. A config file's
//! keys are the options' names as config.json stores them (`n_layer`,
//! `max_iters`; `n-layer` is read the same), plus `preset`.

use crate::common::CliResult;
use anyhow::{bail, Context};
use clap::{Arg, Args};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{Map, Value};
use std::path::{Path, PathBuf};

/// `--preset` and `--config`, the two sources below the flags.
#[derive(Args, Clone, Debug)]
pub struct PresetArgs {
    /// Start from a named preset (see the list and their measured losses above); the config file and flags override it.
    #[arg(long, value_name = "NAME")]
    pub preset: Option<String>,
    /// A TOML file of options (keys as the flags without dashes: n_layer = 4, lr = 1e-3, preset = "NAME"); flags override it [default: none].
    #[arg(long, value_name = "FILE.toml")]
    pub config: Option<PathBuf>,
}

/// The training options `train gpt` and `train lm` share. Each defaults to
/// the preset's value (shown in `--help`).
#[derive(Args, Clone, Debug, Serialize)]
pub struct LmLoopArgs {
    /// Corpus: shakespeare, tang-poems (after `kindling data fetch tang-poems`), or the path of a UTF-8 text file.
    #[arg(long, value_name = "CORPUS")]
    pub data: Option<String>,
    /// Transformer blocks.
    #[arg(long)]
    pub n_layer: Option<usize>,
    /// Attention heads.
    #[arg(long)]
    pub n_head: Option<usize>,
    /// Width of the residual stream.
    #[arg(long)]
    pub n_embd: Option<usize>,
    /// Tokens of context per training window (also the model's context).
    #[arg(long)]
    pub block_size: Option<usize>,
    /// Windows per micro-batch.
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// Optimizer steps.
    #[arg(long)]
    pub max_iters: Option<usize>,
    /// Peak learning rate.
    #[arg(long)]
    pub lr: Option<f32>,
    /// Learning rate at the end of the decay.
    #[arg(long)]
    pub min_lr: Option<f32>,
    /// Steps of linear warmup.
    #[arg(long)]
    pub warmup_iters: Option<usize>,
    /// AdamW decoupled weight decay on matrices.
    #[arg(long)]
    pub weight_decay: Option<f32>,
    /// Clip the global gradient norm to this (0 = off).
    #[arg(long)]
    pub grad_clip: Option<f32>,
    /// Estimate train/validation loss every N steps.
    #[arg(long, value_name = "N")]
    pub eval_interval: Option<usize>,
    /// Batches per loss estimate.
    #[arg(long)]
    pub eval_iters: Option<usize>,
    /// Seed for initialization, batches and dropout.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Micro-batches of --batch-size per optimizer step (gradient accumulation).
    #[arg(long)]
    pub accum_steps: Option<usize>,
}

/// The given flags of an `Option`-typed args struct as a JSON object (the
/// ones left out are not in it).
pub fn given<T: Serialize>(flags: &T) -> Map<String, Value> {
    match serde_json::to_value(flags) {
        Ok(Value::Object(m)) => m.into_iter().filter(|(_, v)| !v.is_null()).collect(),
        _ => Map::new(),
    }
}

/// A `--config` file's keys and values, keys in snake_case.
pub fn read_config(path: &Path) -> CliResult<Map<String, Value>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("--config {}", path.display()))?;
    // toml's own message draws the line with a caret; one line is wanted.
    let table: toml::Table = toml::from_str(&text).map_err(|e| {
        let line = e.span().map_or(0, |s| {
            text[..s.start.min(text.len())].lines().count().max(1)
        });
        anyhow::anyhow!("--config {}: line {line}: {}", path.display(), e.message())
    })?;
    let mut out = Map::new();
    for (k, v) in table {
        let v = serde_json::to_value(v)
            .with_context(|| format!("--config {}: key `{k}`", path.display()))?;
        out.insert(k.replace('-', "_"), v);
    }
    Ok(out)
}

/// The preset to start from: `--preset`, else the config file's `preset`,
/// else `default`.
pub fn preset_name(
    args: &PresetArgs,
    config: &mut Map<String, Value>,
    default: &str,
) -> CliResult<String> {
    let from_file = match config.remove("preset") {
        Some(Value::String(s)) => Some(s),
        Some(other) => bail!(
            "--config {}: key `preset` must be a preset's name, got {other}",
            args.config.as_deref().unwrap_or(Path::new("?")).display()
        ),
        None => None,
    };
    Ok(args
        .preset
        .clone()
        .or(from_file)
        .unwrap_or_else(|| default.to_string()))
}

/// `preset` overlaid with the config file's keys, then with the flags given.
/// Returns the options and the keys set by the file or a flag. A key the
/// options do not have, or a value of the wrong type, is an error naming the
/// key and the file.
pub fn layer<T: Serialize + DeserializeOwned>(
    preset: &T,
    config: &Map<String, Value>,
    config_path: Option<&Path>,
    flags: &Map<String, Value>,
) -> CliResult<(T, Vec<String>)> {
    let mut merged = match serde_json::to_value(preset)? {
        Value::Object(m) => m,
        _ => bail!("options are not a JSON object"),
    };
    let file = config_path.map_or("?".into(), |p| p.display().to_string());
    let mut set = Vec::new();
    for (k, v) in config {
        if !merged.contains_key(k) {
            let mut known: Vec<&str> = merged.keys().map(String::as_str).collect();
            known.push("preset");
            known.sort_unstable();
            bail!(
                "--config {file}: unknown key `{k}` (known: {})",
                known.join(", ")
            );
        }
        let before = merged.insert(k.clone(), v.clone());
        if let Err(e) = serde_json::from_value::<T>(Value::Object(merged.clone())) {
            bail!(
                "--config {file}: key `{k}`: {e} (the preset has {})",
                before.unwrap_or(Value::Null)
            );
        }
        set.push(k.clone());
    }
    for (k, v) in flags {
        merged.insert(k.clone(), v.clone());
        if !set.contains(k) {
            set.push(k.clone());
        }
    }
    let opts = serde_json::from_value(Value::Object(merged))?;
    Ok((opts, set))
}

/// Appends "[default: V from preset NAME]" to the help of each option the
/// preset sets and the flag leaves to it.
pub fn show_preset_value(arg: Arg, preset: &Value, name: &str) -> Arg {
    let key = arg.get_id().as_str().to_string();
    let Some(v) = preset.get(&key) else {
        return arg;
    };
    if !arg.get_default_values().is_empty() {
        return arg;
    }
    let help = arg.get_help().map(|h| h.to_string()).unwrap_or_default();
    let v = match v {
        Value::String(s) => s.clone(),
        Value::Number(n) if n.is_f64() => format!("{}", n.as_f64().unwrap_or(0.0) as f32),
        other => other.to_string(),
    };
    arg.help(format!("{help} [default: {v}, preset {name}]"))
}
