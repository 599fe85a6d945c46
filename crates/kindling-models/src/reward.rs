//! A reward model: a LLaMA whose language-model head is replaced by a
//! scalar head (`score`, hidden → 1, no bias) read at a sequence's last
//! token — `transformers`' `LlamaForSequenceClassification` with one label,
//! the shape InstructGPT's reward models take. Trained on pairs of answers
//! with the Bradley–Terry loss `−log σ(r_chosen − r_rejected)`.

use crate::llama::Llama;
use crate::llama_files::{read_hf_config, read_safetensors};
use kindling_nn::module::{join_name, visit_child};
use kindling_nn::{Linear, Module};
use kindling_tensor::{safetensors_io, Error, Result, Rng, Tensor};
use serde_json::json;
use std::collections::HashMap;
use std::path::Path;

pub struct RewardModel {
    pub backbone: Llama,
    /// `[1, hidden]`.
    pub score: Linear,
}

impl RewardModel {
    /// A reward model on a pretrained LLaMA: its head is dropped, the score
    /// head starts at N(0, 0.02) (`initializer_range`, as `transformers` starts it).
    pub fn from_backbone(mut backbone: Llama, rng: &mut Rng) -> RewardModel {
        backbone.lm_head = None;
        let c = backbone.config.hidden_size;
        let score = Linear::from_tensors(kindling_nn::init::normal(&[1, c], 0.02, rng), None)
            .expect("shape built here");
        RewardModel { backbone, score }
    }

    /// Rewards `[n]` of `n` sequences packed end to end in `ids [1, T]`
    /// (`lengths` sum to T), each read at its own last token.
    pub fn rewards_packed(&self, ids: &Tensor, lengths: &[usize]) -> Result<Tensor> {
        let h = self.backbone.hidden_packed(ids, lengths)?.squeeze(0)?;
        let mut at = 0i64;
        let last: Vec<i64> = lengths
            .iter()
            .map(|&l| {
                at += l as i64;
                at - 1
            })
            .collect();
        let n = last.len();
        let rows = h.index_select(0, &Tensor::from_vec_i64(last, &[n])?)?;
        self.score.forward(&rows)?.reshape(&[n])
    }

    /// The reward of one sequence of token ids.
    pub fn reward(&self, ids: &[u32]) -> Result<f32> {
        let _g = kindling_tensor::no_grad();
        let t = Tensor::from_vec_i64(ids.iter().map(|&i| i as i64).collect(), &[1, ids.len()])?;
        self.rewards_packed(&t, &[ids.len()])?
            .to_vec_f32()
            .map(|v| v[0])
    }
}

impl Module for RewardModel {
    fn forward(&self, ids: &Tensor) -> Result<Tensor> {
        let t = ids.shape().get(1).copied().unwrap_or(0);
        if ids.rank() != 2 || ids.shape()[0] != 1 {
            return Err(Error::shape(
                "reward model",
                format!("ids must be [1, T], got {:?}", ids.shape()),
            ));
        }
        self.rewards_packed(ids, &[t])
    }
    fn visit_parameters(&self, prefix: &str, f: &mut dyn FnMut(String, &Tensor)) {
        self.backbone.visit_parameters(prefix, f);
        self.score.visit_parameters(&join_name(prefix, "score"), f);
    }
    fn visit_modules_mut(&mut self, prefix: &str, f: &mut dyn FnMut(&str, &mut dyn Module)) {
        self.backbone.visit_modules_mut(prefix, f);
        visit_child(&mut self.score, &join_name(prefix, "score"), f);
    }
}

fn msg(path: &Path, m: impl std::fmt::Display) -> Error {
    Error::msg(format!("{}: {m}", path.display()))
}

/// A reward model from a Hugging Face folder (`LlamaForSequenceClassification`
/// with one label), as `transformers` or [`save_reward_dir`] writes it.
pub fn reward_from_hf_dir(dir: &Path) -> Result<RewardModel> {
    let mut config = read_hf_config(dir)?;
    let cfg_path = dir.join("config.json");
    let raw: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&cfg_path).map_err(|e| msg(&cfg_path, e))?)
            .map_err(|e| msg(&cfg_path, e))?;
    let arch = raw["architectures"][0].as_str().unwrap_or("");
    if arch != "LlamaForSequenceClassification" {
        return Err(msg(
            &cfg_path,
            format!(
                "`architectures` is [{arch}]; a reward model is a LlamaForSequenceClassification"
            ),
        ));
    }
    let labels = raw["num_labels"]
        .as_u64()
        .or_else(|| raw["id2label"].as_object().map(|m| m.len() as u64))
        .unwrap_or(2);
    if labels != 1 {
        return Err(msg(
            &cfg_path,
            format!("{labels} labels; a reward model has one (a scalar)"),
        ));
    }
    // A sequence classifier has no language-model head: read the backbone
    // as if tied, then drop the head.
    config.tie_word_embeddings = true;
    let mut tensors = read_safetensors(dir)?;
    let weights = dir.join("model.safetensors");
    let score = tensors
        .remove("score.weight")
        .ok_or_else(|| msg(&weights, "tensor `score.weight` is missing"))?;
    if score.shape() != [1, config.hidden_size] {
        return Err(msg(
            &weights,
            format!(
                "`score.weight` is {:?}, expected [1, {}]",
                score.shape(),
                config.hidden_size
            ),
        ));
    }
    let backbone = Llama::from_named(config, &mut |name| {
        tensors
            .remove(name)
            .ok_or_else(|| msg(&weights, format!("tensor `{name}` is missing")))
    })?;
    Ok(RewardModel {
        backbone,
        score: Linear::from_tensors(score, None)?,
    })
}

/// Writes the reward model as `transformers` writes a
/// `LlamaForSequenceClassification` with one label (f32), tokenizer files aside.
pub fn save_reward_dir(model: &RewardModel, dir: &Path, pad_token_id: Option<u32>) -> Result<()> {
    if !kindling_nn::lora::adapter_parameters(model).is_empty() {
        return Err(msg(
            dir,
            "the reward model carries LoRA adapters; merge them first",
        ));
    }
    std::fs::create_dir_all(dir).map_err(|e| msg(dir, e))?;
    let c = &model.backbone.config;
    let mut config = serde_json::to_value(c).expect("config serializes");
    let extra = json!({
        "architectures": ["LlamaForSequenceClassification"],
        "model_type": "llama",
        "hidden_act": "silu",
        "attention_bias": false,
        "mlp_bias": false,
        "torch_dtype": "float32",
        "rope_parameters": {"rope_theta": c.rope_theta, "rope_type": "default"},
        "head_dim": c.head_dim(),
        "num_labels": 1,
        "id2label": {"0": "LABEL_0"},
        "label2id": {"LABEL_0": 0},
        "pad_token_id": pad_token_id,
        "tie_word_embeddings": false,
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
