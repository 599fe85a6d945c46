//! Pretraining a language model (LLaMA or GPT-2 architecture) on a corpus
//! cut by a BPE tokenizer (or characters), as one task of the one training
//! loop: random windows of the token stream, next-token cross-entropy,
//! AdamW with decay on matrices only, warmup then cosine decay, periodic
//! loss estimates. At the end the run directory also holds a Hugging Face
//! folder (`hf/`: config.json, model.safetensors, tokenizer files) that
//! `transformers` and every `--model` flag load.

use crate::gpt_run::{changed_options, loss_curves};
use crate::optimizer::adamw_groups;
use crate::plot::Panel;
use crate::run_dir::RunDir;
use crate::trainer::{self, Bar, Evaluated, Period, Plan, Task, Trainer};
use crate::{Error, Result};
use kindling_data::char_tokenizer::CharTokenizer;
use kindling_data::token_data::{get_batch, split_train_val};
use kindling_data::tokenizer::Tokenizer;
use kindling_models::gpt::{Activation, Gpt, GptConfig};
use kindling_models::llama::{Llama, LlamaConfig};
use kindling_nn::checkpoint::Checkpoint;
use kindling_nn::optim::Adam;
use kindling_nn::schedule::LrSchedule;
use kindling_nn::Module;
use kindling_tensor::{no_grad, Rng, Tensor};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::path::Path;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LmTrainOptions {
    /// `llama` or `gpt2`.
    pub arch: String,
    /// A tokenizer spec (file, folder, name) or `char` (one token per character).
    pub tokenizer: String,
    pub data: String,
    pub n_layer: usize,
    pub n_head: usize,
    /// Key/value heads (grouped-query attention, LLaMA only); 0 = n_head.
    pub n_kv_head: usize,
    pub n_embd: usize,
    /// MLP width; 0 = 4·n_embd for GPT-2, ~8/3·n_embd (rounded up to 8) for LLaMA's SwiGLU.
    pub intermediate: usize,
    pub block_size: usize,
    pub batch_size: usize,
    pub max_iters: usize,
    pub lr: f32,
    pub min_lr: f32,
    pub warmup_iters: usize,
    pub weight_decay: f32,
    pub beta2: f32,
    pub grad_clip: f32,
    pub eval_interval: usize,
    pub eval_iters: usize,
    pub seed: u64,
    pub tie_weights: bool,
    pub rope_theta: f64,
    pub accum_steps: usize,
    /// `cosine` (warmup, cosine to min_lr) or `wsd` (warmup, constant, linear
    /// cooldown to min_lr over the last `cooldown_frac` of the iterations).
    #[serde(default = "default_schedule")]
    pub schedule: String,
    #[serde(default)]
    pub cooldown_frac: f32,
    /// Start the residual output projections (o_proj/down_proj, GPT-2's
    /// c_proj) at zero, so every block starts as the identity (modded-nanogpt).
    #[serde(default)]
    pub zero_init_residual: bool,
    /// RMSNorm on each head's queries and keys before RoPE (llama only).
    #[serde(default)]
    pub qk_norm: bool,
}

fn default_schedule() -> String {
    "cosine".into()
}

impl LmTrainOptions {
    /// The shape of nanoGPT's CPU Shakespeare run with a LLaMA block
    /// (RoPE, RMSNorm, SwiGLU) plus QK-norm, and a warmup-stable-decay
    /// schedule (linear cooldown to 0 over the last 30%): same iterations,
    /// batch and block size, no more parameters (800,256 vs 809,856).
    /// Chosen on seeds 1 and 2; docs/gpt.md has seeds 1337-1339 and the ablation.
    pub fn shakespeare_cpu_modern() -> Self {
        LmTrainOptions {
            arch: "llama".into(),
            tokenizer: "char".into(),
            data: "shakespeare".into(),
            n_layer: 4,
            n_head: 4,
            n_kv_head: 0,
            n_embd: 128,
            intermediate: 0,
            block_size: 64,
            batch_size: 12,
            max_iters: 2000,
            lr: 1e-3,
            min_lr: 0.0,
            warmup_iters: 100,
            weight_decay: 0.1,
            beta2: 0.99,
            grad_clip: 1.0,
            eval_interval: 250,
            eval_iters: 20,
            seed: 1337,
            tie_weights: true,
            rope_theta: 10000.0,
            accum_steps: 1,
            schedule: "wsd".into(),
            cooldown_frac: 0.3,
            zero_init_residual: false,
            qk_norm: true,
        }
    }

    pub fn preset(name: &str) -> Result<Self> {
        match name {
            "shakespeare-cpu-modern" => Ok(Self::shakespeare_cpu_modern()),
            other => {
                Err(format!("`preset` `{other}`: unknown (known: shakespeare-cpu-modern)").into())
            }
        }
    }

    fn mlp_width(&self) -> usize {
        match (self.intermediate, self.arch.as_str()) {
            (0, "gpt2") => 4 * self.n_embd,
            // SwiGLU has three matrices: 8/3·C keeps the parameters of a 4·C MLP.
            (0, _) => (8 * self.n_embd / 3).div_ceil(8) * 8,
            (w, _) => w,
        }
    }

    pub fn validate(&self) -> Result<()> {
        if !matches!(self.arch.as_str(), "llama" | "gpt2") {
            return Err(Error::option(
                "arch",
                format!("`{}`: must be llama or gpt2", self.arch),
            ));
        }
        crate::error::at_least_one(&[
            ("n_layer", self.n_layer),
            ("n_head", self.n_head),
            ("n_embd", self.n_embd),
            ("block_size", self.block_size),
            ("batch_size", self.batch_size),
            ("eval_interval", self.eval_interval),
            ("eval_iters", self.eval_iters),
            ("accum_steps", self.accum_steps),
        ])?;
        crate::optimizer::check_settings(
            self.lr,
            Some(self.min_lr),
            Some(self.weight_decay),
            Some(self.grad_clip),
        )?;
        match self.schedule.as_str() {
            "cosine" => {}
            "wsd" if self.cooldown_frac > 0.0 && self.cooldown_frac <= 1.0 => {}
            "wsd" => {
                return Err(Error::option(
                    "cooldown_frac",
                    format!(
                        "must be in (0, 1] with `schedule` wsd, got {}",
                        self.cooldown_frac
                    ),
                ))
            }
            other => {
                return Err(Error::option(
                    "schedule",
                    format!("`{other}`: must be cosine or wsd"),
                ))
            }
        }
        if self.qk_norm && self.arch != "llama" {
            return Err(Error::option("qk_norm", "true needs `arch` llama"));
        }
        if self.qk_norm && self.tokenizer != "char" {
            // A BPE run ends by writing hf/ as a transformers LLaMA, which has no QK-norm.
            return Err(Error::option(
                "qk_norm",
                "true: a run with a BPE `tokenizer` saves a Hugging Face LLaMA folder (hf/), \
                 which has no QK-norm; use `qk_norm` false",
            ));
        }
        if !(self.beta2 > 0.0 && self.beta2 < 1.0) {
            return Err(Error::option(
                "beta2",
                format!("must be in (0, 1), got {}", self.beta2),
            ));
        }
        Ok(())
    }
}

/// The tokens of a corpus, split 90/10 into training and validation.
pub struct LmData {
    pub tokenizer: LmTokenizer,
    pub train: Vec<u32>,
    pub val: Vec<u32>,
}

pub enum LmTokenizer {
    Char(CharTokenizer),
    Bpe(Box<Tokenizer>),
}

impl LmTokenizer {
    pub fn vocab_size(&self) -> usize {
        match self {
            LmTokenizer::Char(t) => t.vocab_size(),
            LmTokenizer::Bpe(t) => t.vocab_size(),
        }
    }
}

impl LmData {
    pub fn new(text: &str, opts: &LmTrainOptions) -> Result<LmData> {
        let (tokenizer, ids) = if opts.tokenizer == "char" {
            let t =
                CharTokenizer::from_text(text).map_err(|e| format!("--data {}: {e}", opts.data))?;
            let ids = t.encode(text)?;
            (LmTokenizer::Char(t), ids)
        } else {
            let t = Tokenizer::from_spec(&opts.tokenizer)?;
            let ids = t.encode(text)?;
            (LmTokenizer::Bpe(Box::new(t)), ids)
        };
        let (train, val) = split_train_val(&ids);
        Ok(LmData {
            tokenizer,
            train,
            val,
        })
    }
}

/// The two architectures behind one interface for the task.
pub enum LmModel {
    Llama(Llama),
    Gpt(Gpt),
}

impl LmModel {
    pub fn new(opts: &LmTrainOptions, vocab_size: usize) -> Result<LmModel> {
        let rng = &mut Rng::new(opts.seed);
        Ok(match opts.arch.as_str() {
            "llama" => LmModel::Llama(Llama::new(
                LlamaConfig {
                    vocab_size,
                    hidden_size: opts.n_embd,
                    intermediate_size: opts.mlp_width(),
                    num_hidden_layers: opts.n_layer,
                    num_attention_heads: opts.n_head,
                    num_key_value_heads: if opts.n_kv_head == 0 {
                        opts.n_head
                    } else {
                        opts.n_kv_head
                    },
                    head_dim: None,
                    max_position_embeddings: opts.block_size,
                    rms_norm_eps: 1e-5,
                    rope_theta: opts.rope_theta,
                    tie_word_embeddings: opts.tie_weights,
                    bos_token_id: None,
                    eos_token_id: None,
                    qk_norm: opts.qk_norm,
                },
                rng,
            )?),
            _ => {
                if opts.mlp_width() != 4 * opts.n_embd {
                    return Err("--intermediate: GPT-2's MLP is 4 x --n-embd wide".into());
                }
                LmModel::Gpt(Gpt::new(
                    GptConfig {
                        n_layer: opts.n_layer,
                        n_head: opts.n_head,
                        n_embd: opts.n_embd,
                        block_size: opts.block_size,
                        vocab_size,
                        dropout: 0.0,
                        tie_weights: opts.tie_weights,
                        bias: true,
                        activation: Activation::GeluTanh,
                    },
                    rng,
                )?)
            }
        })
    }

    /// Zeroes the residual output projections (`--zero-init-residual`).
    fn zero_residual_projections(&self) -> Result<()> {
        for (name, p) in self.module().named_parameters() {
            let residual = ["o_proj.weight", "down_proj.weight", "c_proj.weight"];
            if residual.iter().any(|r| name.ends_with(r)) {
                p.assign(&Tensor::zeros(p.shape()))?;
            }
        }
        Ok(())
    }

    pub fn module(&self) -> &dyn Module {
        match self {
            LmModel::Llama(m) => m,
            LmModel::Gpt(m) => m,
        }
    }

    pub fn vocab_size(&self) -> usize {
        match self {
            LmModel::Llama(m) => m.config.vocab_size,
            LmModel::Gpt(m) => m.config.vocab_size,
        }
    }

    /// Longest sequence the model accepts.
    pub fn context_len(&self) -> usize {
        match self {
            LmModel::Llama(m) => m.config.max_position_embeddings,
            LmModel::Gpt(m) => m.config.block_size,
        }
    }

    /// Logits `[B, T, V]`.
    pub fn logits(&self, ids: &Tensor) -> kindling_tensor::Result<Tensor> {
        match self {
            LmModel::Llama(m) => m.forward(ids, None),
            LmModel::Gpt(m) => m.forward_ids(ids, None),
        }
    }

    /// Saves a Hugging Face folder (config + weights; the tokenizer is the caller's).
    pub fn save_hf(&self, dir: &Path) -> Result<()> {
        match self {
            LmModel::Llama(m) => kindling_models::llama_files::save_hf_dir(m, dir)?,
            LmModel::Gpt(m) => kindling_models::gpt2_files::save_gpt_hf_dir(m, dir)?,
        }
        Ok(())
    }
}

fn make_optimizer(model: &dyn Module, opts: &LmTrainOptions) -> Adam {
    // Decay matrices, not norms, biases or embeddings (a tied head counts as one).
    adamw_groups(model, opts.lr, opts.weight_decay, opts.beta2, &|name, p| {
        p.rank() >= 2
            && !["embed_tokens", "wte", "wpe"]
                .iter()
                .any(|e| name.contains(e))
    })
}

fn schedule(opts: &LmTrainOptions) -> LrSchedule {
    match opts.schedule.as_str() {
        "wsd" => LrSchedule::WarmupStableDecay {
            lr: opts.lr,
            min_lr: opts.min_lr,
            warmup: opts.warmup_iters,
            cooldown: (opts.cooldown_frac * opts.max_iters as f32).round() as usize,
            total: opts.max_iters,
        },
        _ => LrSchedule::WarmupCosine {
            lr: opts.lr,
            min_lr: opts.min_lr,
            warmup: opts.warmup_iters,
            total: opts.max_iters,
        },
    }
}

pub struct LmTask<'a> {
    pub model: &'a LmModel,
    pub data: &'a LmData,
    pub opts: &'a LmTrainOptions,
}

impl LmTask<'_> {
    fn estimate(&self, data: &[u32], rng: &mut Rng) -> Result<f32> {
        let _g = no_grad();
        let mut total = 0f64;
        for _ in 0..self.opts.eval_iters {
            let (x, y) = get_batch(data, self.opts.batch_size, self.opts.block_size, rng)?;
            total += self.model.logits(&x)?.cross_entropy(&y, None)?.item()? as f64;
        }
        Ok((total / self.opts.eval_iters as f64) as f32)
    }
}

impl Task for LmTask<'_> {
    type Batch = (Tensor, Tensor);

    fn model(&self) -> &dyn Module {
        self.model.module()
    }

    fn batch(&mut self, _step: usize, _micro: usize, rng: &mut Rng) -> Result<Self::Batch> {
        Ok(get_batch(
            &self.data.train,
            self.opts.batch_size,
            self.opts.block_size,
            rng,
        )?)
    }

    fn rows(&self, b: &Self::Batch) -> usize {
        b.0.shape()[0]
    }

    fn loss(
        &self,
        (x, y): &Self::Batch,
        start: usize,
        len: usize,
        _rng: &mut Rng,
    ) -> kindling_tensor::Result<Tensor> {
        self.model
            .logits(&x.narrow(0, start, len)?)?
            .cross_entropy(&y.narrow(0, start, len)?, None)
    }

    fn evaluate(&mut self, p: &Period) -> Result<Evaluated> {
        let (seed, iter) = (self.opts.seed, p.step);
        let tl = self.estimate(&self.data.train, &mut trainer::stream(seed, 3, iter))?;
        let vl = self.estimate(&self.data.val, &mut trainer::stream(seed, 4, iter))?;
        Ok(Evaluated {
            record: json!({ "iter": iter, "train_loss": tl, "val_loss": vl, "lr": schedule(self.opts).lr_at(iter) }),
            line: Some(format!(
                "iter {iter:>5}: train loss {tl:.4}, val loss {vl:.4}"
            )),
        })
    }

    fn describe(&self, steps: usize) -> String {
        format!("iteration {steps} of {}", self.opts.max_iters)
    }

    fn checkpoint_meta(&self, steps: usize) -> Value {
        json!({ "model": "lm", "options": self.opts, "iters_done": steps })
    }

    fn resume(&mut self, ck: &Checkpoint, path: &Path) -> Result<usize> {
        ck.expect_model(path, "lm", "language model")?;
        let stored: Option<LmTrainOptions> =
            serde_json::from_value(ck.config["options"].clone()).ok();
        let Some(stored) = stored else {
            return Err(format!(
                "{}: no language-model options in the checkpoint",
                path.display()
            )
            .into());
        };
        // More iterations may extend a run; everything else must match.
        let same = LmTrainOptions {
            max_iters: self.opts.max_iters,
            ..stored.clone()
        };
        if &same != self.opts {
            let differ = changed_options(&json!(stored), &json!(self.opts), &["max_iters"]);
            return Err(format!(
                "--resume: {} was started with different options ({}); leave them out to use the run's, or choose a new --out",
                path.parent().unwrap_or(path).display(),
                differ.join(", ")
            )
            .into());
        }
        Ok(ck.config["iters_done"].as_u64().unwrap_or(0) as usize)
    }

    fn record_step(&self, record: &Value) -> Option<usize> {
        Some(record["iter"].as_u64()? as usize)
    }

    fn curves(&self, metrics: &[Value]) -> Vec<Panel<'static>> {
        loss_curves(metrics, "language model loss", "cross-entropy (nats/token)")
    }
}

pub fn plan(opts: &LmTrainOptions) -> Plan {
    Plan {
        total_steps: opts.max_iters,
        accum_steps: opts.accum_steps,
        schedule: schedule(opts),
        grad_clip: (opts.grad_clip > 0.0).then_some(opts.grad_clip),
        eval_every: opts.eval_interval,
        eval_at_start: true,
        seed: opts.seed,
        loss_records: Some(("iter", 10)),
        log_every: 100,
        step_name: "iter",
        bar: Bar::Run {
            label: format!("train lm ({})", opts.arch),
            unit: "it",
        },
        message_every: 10,
        throughput: ("tokens", opts.block_size),
    }
}

pub struct LmOutcome {
    pub params: usize,
    pub train_loss: f32,
    pub val_loss: f32,
    pub ms_per_iter: f32,
    pub tokens_per_sec: f32,
    pub vocab_size: usize,
    pub train_tokens: usize,
    /// The Hugging Face folder written (BPE tokenizers only).
    pub hf_dir: Option<std::path::PathBuf>,
    /// Iterations this call trained (0: the run had already finished).
    pub steps_trained: usize,
}

/// Trains (or resumes) a language model in `dir`.
pub fn train(
    opts: &LmTrainOptions,
    text: &str,
    dir: &Path,
    mode: impl Into<crate::run_dir::RunMode>,
    stop: crate::trainer::StopWhen,
    log: &dyn Fn(&str),
) -> Result<LmOutcome> {
    opts.validate()?;
    let data = LmData::new(text, opts)?;
    if opts.block_size + 1 >= data.train.len().min(data.val.len()) {
        return Err(format!(
            "--block-size {} needs more text: the validation split of `{}` has {} tokens",
            opts.block_size,
            opts.data,
            data.val.len()
        )
        .into());
    }
    crate::memory_check::TransformerShape {
        n_layer: opts.n_layer,
        n_head: opts.n_head,
        n_embd: opts.n_embd,
        intermediate: opts.mlp_width(),
        vocab_size: data.tokenizer.vocab_size(),
        block_size: opts.block_size,
        batch_size: opts.batch_size,
    }
    .check_memory()?;
    let mode = mode.into();
    let run = RunDir::start(dir, mode)?;
    let model = LmModel::new(opts, data.tokenizer.vocab_size())?;
    if opts.zero_init_residual {
        model.zero_residual_projections()?;
    }
    let opt = Box::new(make_optimizer(model.module(), opts));
    let mut task = LmTask {
        model: &model,
        data: &data,
        opts,
    };
    let mut trainer = Trainer::new(plan(opts), model.module(), opt, Some(&run), log)?;
    trainer.begin(&mut task, mode, &serde_json::to_value(opts)?)?;
    log(&format!(
        "{}: {} parameters, vocabulary {}, {} train / {} validation tokens",
        opts.arch,
        model.module().num_parameters(),
        data.tokenizer.vocab_size(),
        data.train.len(),
        data.val.len()
    ));
    let summary = trainer.run_until(&mut task, stop)?;
    let last = summary
        .records
        .iter()
        .rev()
        .find(|r| r.get("val_loss").is_some());
    let loss = |key: &str| last.and_then(|r| r[key].as_f64()).unwrap_or(f64::NAN) as f32;
    let ms = if summary.steps > 0 {
        summary.train_seconds * 1000.0 / summary.steps as f64
    } else {
        0.0
    };
    let hf_dir = match &data.tokenizer {
        LmTokenizer::Bpe(t) if stop.after.is_none() => {
            let hf = dir.join("hf");
            model.save_hf(&hf)?;
            t.save(&hf)?;
            Some(hf)
        }
        _ => None,
    };
    Ok(LmOutcome {
        steps_trained: summary.steps,
        params: model.module().num_parameters(),
        train_loss: loss("train_loss"),
        val_loss: loss("val_loss"),
        ms_per_iter: ms as f32,
        tokens_per_sec: if ms > 0.0 {
            (opts.batch_size * opts.accum_steps * opts.block_size) as f32 / (ms as f32 / 1000.0)
        } else {
            0.0
        },
        vocab_size: data.tokenizer.vocab_size(),
        train_tokens: data.train.len(),
        hf_dir,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_config_written_before_the_modern_options_still_parses_with_their_old_behaviour() {
        let mut v = serde_json::to_value(LmTrainOptions::shakespeare_cpu_modern()).unwrap();
        for k in ["schedule", "cooldown_frac", "zero_init_residual", "qk_norm"] {
            v.as_object_mut().unwrap().remove(k);
        }
        let o: LmTrainOptions = serde_json::from_value(v).unwrap();
        assert_eq!(
            (o.schedule.as_str(), o.zero_init_residual, o.qk_norm),
            ("cosine", false, false)
        );
        assert!(o.validate().is_ok());
    }

    #[test]
    fn bad_schedule_and_qk_norm_settings_name_their_flag() {
        let base = LmTrainOptions::shakespeare_cpu_modern();
        let wsd = LmTrainOptions {
            schedule: "wsd".into(),
            cooldown_frac: 0.0,
            ..base.clone()
        };
        // The library names the option's field; the CLI says the flag.
        let field = |o: &LmTrainOptions| match o.validate() {
            Err(Error::Option { field, problem }) => format!("{field} {problem}"),
            other => panic!("{other:?}"),
        };
        assert!(field(&wsd).starts_with("cooldown_frac"));
        let odd = LmTrainOptions {
            schedule: "linear".into(),
            ..base.clone()
        };
        assert!(field(&odd).starts_with("schedule"));
        let gpt = LmTrainOptions {
            arch: "gpt2".into(),
            qk_norm: true,
            ..base.clone()
        };
        assert!(field(&gpt).starts_with("qk_norm"));
        let bpe = LmTrainOptions {
            tokenizer: "gpt2".into(),
            qk_norm: true,
            ..base
        };
        assert!(field(&bpe).contains("`qk_norm` false"));
    }
}
