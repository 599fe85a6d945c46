//! Training a language model to be smaller, as one task of the one training
//! loop: random windows of a token stream, and per window either
//! - the next-token cross-entropy alone (a student trained alone, or a
//!   pruned model's recovery fine-tune), or
//! - the distillation loss against a frozen teacher ([`crate::distill`]),
//!   whose log-probabilities are computed on the fly for each micro-batch
//!   without a graph.
//!
//! A pruned model's masks ([`crate::prune::Masks`]) are re-applied after
//! every optimizer update ([`Task::after_update`]), so its zeros stay zeros.
//! The held-out score is the cross-entropy on fixed, non-overlapping windows
//! of the last 10% of the tokens (never trained on), and with a teacher the
//! KL from the teacher's distribution (at temperature 1) on the same windows.

use crate::distill::{distill_loss, kl_to_teacher};
use crate::gpt_run::loss_curves_by;
use crate::lm_run::LmModel;
use crate::optimizer::adamw_groups;
use crate::plot::Panel;
use crate::prune::Masks;
use crate::run_dir::{RunDir, RunMode};
use crate::trainer::{self, Bar, Evaluated, Period, Plan, Task, Trainer};
use crate::{Error, Result};
use kindling_data::token_data::{get_batch, split_train_val};
use kindling_models::generate::CausalLm;
use kindling_nn::schedule::LrSchedule;
use kindling_nn::Module;
use kindling_tensor::{no_grad, Rng, Tensor};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::path::Path;

/// Everything that decides a run (stored in `config.json` and checkpoints,
/// compared on `--resume`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CompressOptions {
    /// What the teacher was given as (none: cross-entropy alone).
    pub teacher: Option<String>,
    /// What the trained model was given as (a model or a config).
    pub student: String,
    pub data: String,
    /// How a pruned model was pruned (`magnitude 0.5`, `2:4`), if it was.
    pub pruned: Option<String>,
    /// Weight of the soft (teacher) term; 1 − `alpha` goes to the cross-entropy.
    pub alpha: f32,
    /// Softmax temperature of the soft term.
    pub temperature: f32,
    pub steps: usize,
    pub batch_size: usize,
    pub block_size: usize,
    pub lr: f32,
    pub min_lr: f32,
    pub warmup_steps: usize,
    pub weight_decay: f32,
    /// Clip gradients to this global L2 norm (0: off).
    pub grad_clip: f32,
    /// Evaluate (and checkpoint) every this many steps.
    pub eval_every: usize,
    /// Held-out windows of `block_size` tokens scored at each evaluation.
    pub eval_windows: usize,
    pub seed: u64,
}

impl CompressOptions {
    pub fn validate(&self) -> Result<()> {
        trainer::require_positive(
            "compression",
            &[
                ("steps", self.steps),
                ("batch_size", self.batch_size),
                ("block_size", self.block_size),
                ("eval_every", self.eval_every),
                ("eval_windows", self.eval_windows),
            ],
        )?;
        if !(0.0..=1.0).contains(&self.alpha) {
            return Err(Error::option(
                "alpha",
                format!("must be in [0, 1], got {}", self.alpha),
            ));
        }
        if !(self.temperature.is_finite() && self.temperature > 0.0) {
            return Err(Error::option(
                "temperature",
                format!("must be a positive number, got {}", self.temperature),
            ));
        }
        if self.alpha > 0.0 && self.teacher.is_none() {
            return Err(Error::option("alpha", "above 0 needs a `teacher`"));
        }
        crate::optimizer::check_settings(
            self.lr,
            Some(self.min_lr),
            Some(self.weight_decay),
            Some(self.grad_clip),
        )
    }

    fn schedule(&self) -> LrSchedule {
        LrSchedule::WarmupCosine {
            lr: self.lr,
            min_lr: self.min_lr,
            warmup: self.warmup_steps,
            total: self.steps,
        }
    }
}

/// A micro-batch: inputs and targets `[B, T]`, and the teacher's
/// log-probabilities `[B, T, V]` when there is a teacher.
pub struct CompressBatch {
    x: Tensor,
    y: Tensor,
    teacher: Option<Tensor>,
}

pub struct CompressTask<'a> {
    pub model: &'a LmModel,
    pub teacher: Option<&'a dyn CausalLm>,
    pub masks: Option<&'a Masks>,
    pub train: Vec<u32>,
    /// The held-out windows' inputs and targets, in batches of `batch_size`.
    pub heldout: Vec<(Tensor, Tensor)>,
    pub opts: &'a CompressOptions,
}

impl CompressTask<'_> {
    /// Mean cross-entropy of the model, and the mean KL from the teacher at
    /// temperature 1 when there is one, over the held-out windows.
    pub fn heldout_scores(&self) -> Result<(f32, Option<f32>)> {
        heldout_scores(self.model, self.teacher, &self.heldout)
    }
}

fn heldout_scores(
    model: &LmModel,
    teacher: Option<&dyn CausalLm>,
    windows: &[(Tensor, Tensor)],
) -> Result<(f32, Option<f32>)> {
    let _g = no_grad();
    let (mut ce, mut kl, mut rows) = (0f64, 0f64, 0usize);
    for (x, y) in windows {
        let n = x.numel();
        let logits = model.logits(x)?;
        let v = logits.shape()[2];
        let s = logits.reshape(&[n, v])?;
        ce += s.cross_entropy(&y.reshape(&[n])?, None)?.item()? as f64 * n as f64;
        if let Some(t) = teacher {
            let t = t.log_probs(x)?.reshape(&[n, v])?;
            kl += kl_to_teacher(&s, &t, 1.0)?.item()? as f64 * n as f64;
        }
        rows += n;
    }
    let kl = teacher.map(|_| (kl / rows as f64) as f32);
    Ok(((ce / rows as f64) as f32, kl))
}

/// The held-out cross-entropy of `model` on `tokens` as a run scores it:
/// up to `windows` non-overlapping windows of `block_size` tokens from the
/// start of the last 10%.
pub fn heldout_loss(
    model: &LmModel,
    tokens: &[u32],
    block_size: usize,
    windows: usize,
    batch_size: usize,
) -> Result<f32> {
    let (_, val) = split_train_val(tokens);
    let w = heldout_windows(&val, block_size, windows, batch_size.max(1))?;
    Ok(heldout_scores(model, None, &w)?.0)
}

impl Task for CompressTask<'_> {
    type Batch = CompressBatch;

    fn model(&self) -> &dyn Module {
        self.model.module()
    }

    fn batch(&mut self, _step: usize, _micro: usize, rng: &mut Rng) -> Result<CompressBatch> {
        let (x, y) = get_batch(&self.train, self.opts.batch_size, self.opts.block_size, rng)?;
        // The teacher is frozen: its forward records no graph.
        let teacher = match self.teacher {
            Some(t) if self.opts.alpha > 0.0 => {
                let _g = no_grad();
                Some(t.log_probs(&x)?)
            }
            _ => None,
        };
        Ok(CompressBatch { x, y, teacher })
    }

    fn rows(&self, b: &CompressBatch) -> usize {
        b.x.shape()[0]
    }

    fn loss(
        &self,
        b: &CompressBatch,
        start: usize,
        len: usize,
        _rng: &mut Rng,
    ) -> kindling_tensor::Result<Tensor> {
        let x = b.x.narrow(0, start, len)?;
        let logits = self.model.logits(&x)?;
        let (n, v) = (x.numel(), logits.shape()[2]);
        let s = logits.reshape(&[n, v])?;
        let y = b.y.narrow(0, start, len)?.reshape(&[n])?;
        match &b.teacher {
            Some(t) => {
                let t = t.narrow(0, start, len)?.reshape(&[n, v])?;
                distill_loss(&s, &t, &y, self.opts.alpha, self.opts.temperature)
            }
            None => s.cross_entropy(&y, None),
        }
    }

    fn after_update(&self) -> Result<()> {
        match self.masks {
            Some(m) => m.apply(),
            None => Ok(()),
        }
    }

    fn evaluate(&mut self, p: &Period) -> Result<Evaluated> {
        let (vl, kl) = self.heldout_scores()?;
        let mut record =
            json!({ "step": p.step, "val_loss": vl, "lr": self.opts.schedule().lr_at(p.step) });
        let mut line = format!("step {:>5}: held-out loss {vl:.4}", p.step);
        if let Some(kl) = kl {
            record["kl_to_teacher"] = json!(kl);
            line.push_str(&format!(", KL to the teacher {kl:.4}"));
        }
        Ok(Evaluated::with_train_loss(record, line, p))
    }

    fn identity(&self) -> Option<trainer::RunIdentity> {
        Some(trainer::RunIdentity {
            model: "compress",
            what: if self.teacher.is_some() {
                "distillation"
            } else {
                "training"
            },
            options: json!(self.opts),
            may_change: &["steps"],
            total_steps: self.opts.steps,
        })
    }

    fn curves(&self, metrics: &[Value]) -> Vec<Panel<'static>> {
        loss_curves_by(
            metrics,
            "step",
            "step",
            "training loss and held-out cross-entropy",
            "nats/token",
        )
    }
}

pub fn plan(opts: &CompressOptions, label: &str) -> Plan {
    Plan {
        total_steps: opts.steps,
        accum_steps: 1,
        schedule: opts.schedule(),
        grad_clip: (opts.grad_clip > 0.0).then_some(opts.grad_clip),
        eval_every: opts.eval_every,
        eval_at_start: true,
        seed: opts.seed,
        loss_records: Some(("step", 10)),
        log_every: 50,
        step_name: "step",
        bar: Bar::Run {
            label: label.to_string(),
            unit: "step",
        },
        message_every: 1,
        throughput: ("tokens", opts.block_size),
    }
}

/// What a run did.
#[derive(Debug, Serialize)]
pub struct CompressOutcome {
    pub val_loss_before: Option<f32>,
    pub val_loss_after: f32,
    pub kl_before: Option<f32>,
    pub kl_after: Option<f32>,
    /// Steps this call trained (0: the run had already finished).
    pub steps_trained: usize,
    pub train_tokens: usize,
    pub val_tokens: usize,
    pub seconds: f64,
    pub tokens_per_sec: f64,
}

/// The held-out windows: non-overlapping `block_size + 1` tokens from the
/// start of `val`, at most `windows` of them, in batches.
fn heldout_windows(
    val: &[u32],
    block: usize,
    windows: usize,
    batch: usize,
) -> Result<Vec<(Tensor, Tensor)>> {
    let starts: Vec<usize> = (0..windows)
        .map(|i| i * block)
        .take_while(|s| s + block < val.len())
        .collect();
    if starts.is_empty() {
        return Err(Error::option(
            "block_size",
            format!(
                "{block} needs more text: the held-out 10% of `data` has {} tokens",
                val.len()
            ),
        ));
    }
    starts
        .chunks(batch)
        .map(|chunk| {
            let ids = |off: usize| -> Vec<i64> {
                chunk
                    .iter()
                    .flat_map(|&s| val[s + off..s + off + block].iter().map(|&t| t as i64))
                    .collect()
            };
            Ok((
                Tensor::from_vec_i64(ids(0), &[chunk.len(), block])?,
                Tensor::from_vec_i64(ids(1), &[chunk.len(), block])?,
            ))
        })
        .collect()
}

/// Trains `model` (its trainable parameters) on `tokens` (90% trained on,
/// the last 10% held out) in the run directory `dir`: distilled from
/// `teacher` when `opts.alpha > 0`, keeping `masks`' zeros when pruned.
#[allow(clippy::too_many_arguments)]
pub fn train(
    model: &LmModel,
    teacher: Option<&dyn CausalLm>,
    masks: Option<&Masks>,
    tokens: &[u32],
    opts: &CompressOptions,
    dir: &Path,
    mode: impl Into<RunMode>,
    stop: trainer::StopWhen,
    log: &dyn Fn(&str),
) -> Result<CompressOutcome> {
    opts.validate()?;
    let student_vocab = model.vocab_size();
    if let Some(t) = teacher {
        if t.vocab_size() != student_vocab {
            return Err(format!(
                "`student` has a vocabulary of {student_vocab} tokens and `teacher` one of {}: \
                 distillation compares their next-token distributions id by id, so they must share the tokenizer",
                t.vocab_size()
            )
            .into());
        }
        if opts.block_size > t.context_len() {
            return Err(Error::option(
                "block_size",
                format!(
                    "{} is longer than the teacher's context of {}",
                    opts.block_size,
                    t.context_len()
                ),
            ));
        }
    }
    if opts.block_size > model.context_len() {
        return Err(Error::option(
            "block_size",
            format!(
                "{} is longer than the model's context of {}",
                opts.block_size,
                model.context_len()
            ),
        ));
    }
    if let Some(&big) = tokens.iter().find(|&&t| t as usize >= student_vocab) {
        return Err(format!(
            "`data`: token id {big} is outside the model's vocabulary of {student_vocab}"
        )
        .into());
    }
    let (train, val) = split_train_val(tokens);
    if train.len() <= opts.block_size + 1 {
        return Err(Error::option(
            "block_size",
            format!(
                "{} needs more text: the training 90% of `data` has {} tokens",
                opts.block_size,
                train.len()
            ),
        ));
    }
    let heldout = heldout_windows(&val, opts.block_size, opts.eval_windows, opts.batch_size)?;
    let mode = mode.into();
    let run = RunDir::start(dir, mode)?;
    // Decay matrices, not norms, biases or embeddings (as `train lm`).
    let opt = Box::new(adamw_groups(
        model.module(),
        opts.lr,
        opts.weight_decay,
        0.99,
        &|name, p| {
            p.rank() >= 2
                && !["embed_tokens", "wte", "wpe"]
                    .iter()
                    .any(|e| name.contains(e))
        },
    ));
    let (train_tokens, val_tokens) = (train.len(), val.len());
    let mut task = CompressTask {
        model,
        teacher,
        masks,
        train,
        heldout,
        opts,
    };
    let label = match (teacher.is_some() && opts.alpha > 0.0, masks.is_some()) {
        (true, _) => "distill",
        (false, true) => "recover",
        (false, false) => "train",
    };
    let mut trainer = Trainer::new(plan(opts, label), model.module(), opt, Some(&run), log)?;
    trainer.begin(&mut task, mode, &serde_json::to_value(opts)?)?;
    log(&format!(
        "{label}: {} parameters ({} trainable), vocabulary {student_vocab}, {train_tokens} train / {val_tokens} held-out tokens",
        model.module().num_parameters(),
        model
            .module()
            .trainable_parameters()
            .iter()
            .map(Tensor::numel)
            .sum::<usize>(),
    ));
    let summary = trainer.run_until(&mut task, stop)?;
    let at = |step: Option<usize>, key: &str| {
        let found = match step {
            Some(s) => summary
                .records
                .iter()
                .find(|r| r["step"] == s && r.get("val_loss").is_some()),
            None => summary
                .records
                .iter()
                .rev()
                .find(|r| r.get("val_loss").is_some()),
        };
        found.and_then(|r| r[key].as_f64()).map(|v| v as f32)
    };
    Ok(CompressOutcome {
        val_loss_before: at(Some(0), "val_loss"),
        val_loss_after: at(None, "val_loss").unwrap_or(f32::NAN),
        kl_before: at(Some(0), "kl_to_teacher"),
        kl_after: at(None, "kl_to_teacher"),
        steps_trained: summary.steps,
        train_tokens,
        val_tokens,
        seconds: summary.train_seconds,
        tokens_per_sec: summary.per_sec(opts.block_size),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prune::{prune, PruneMethod};
    use kindling_models::llama::{Llama, LlamaConfig};

    fn tiny(seed: u64) -> LmModel {
        let config: LlamaConfig = serde_json::from_value(json!({
            "vocab_size": 24, "hidden_size": 16, "intermediate_size": 32,
            "num_hidden_layers": 2, "num_attention_heads": 2, "num_key_value_heads": 2,
            "max_position_embeddings": 32, "rms_norm_eps": 1e-5
        }))
        .unwrap();
        LmModel::Llama(Llama::new(config, &mut Rng::new(seed)).unwrap())
    }

    fn options(teacher: bool, alpha: f32) -> CompressOptions {
        CompressOptions {
            teacher: teacher.then(|| "tiny".into()),
            student: "tiny".into(),
            data: "counting".into(),
            pruned: None,
            alpha,
            temperature: 1.0,
            steps: 12,
            batch_size: 4,
            block_size: 8,
            lr: 1e-2,
            min_lr: 1e-3,
            warmup_steps: 0,
            weight_decay: 0.1,
            grad_clip: 1.0,
            eval_every: 6,
            eval_windows: 4,
            seed: 5,
        }
    }

    fn tokens() -> Vec<u32> {
        (0..600u32).map(|i| (i * 5 + i / 7) % 24).collect()
    }

    #[test]
    fn a_recovery_run_keeps_the_pruned_weights_zero_under_adamw() {
        let dir = std::env::temp_dir().join(format!("kindling-recover-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let model = tiny(1);
        let masks = prune(model.module(), PruneMethod::Magnitude { sparsity: 0.5 }).unwrap();
        let at_start: Vec<Vec<f32>> = model
            .module()
            .parameters()
            .iter()
            .map(|p| p.to_vec_f32().unwrap())
            .collect();
        let quiet = |_: &str| {};
        let out = train(
            &model,
            None,
            Some(&masks),
            &tokens(),
            &options(false, 0.0),
            &dir,
            RunMode::Fresh,
            trainer::StopWhen::default(),
            &quiet,
        )
        .unwrap();
        assert!(out.val_loss_after < out.val_loss_before.unwrap());
        for ((name, p), old) in model.module().named_parameters().iter().zip(&at_start) {
            let now = p.to_vec_f32().unwrap();
            assert_ne!(&now, old, "{name} trained");
            if let Some(m) = masks.matrices.iter().find(|m| &m.name == name) {
                let zeros = now.iter().filter(|&&x| x == 0.0).count();
                assert_eq!(zeros, m.zeros, "{name}: zeros after 12 AdamW steps");
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn distilling_with_alpha_one_lowers_the_kl_to_the_teacher() {
        let dir = std::env::temp_dir().join(format!("kindling-distill-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let (student, teacher) = (tiny(2), tiny(3));
        let LmModel::Llama(t) = &teacher else {
            unreachable!("tiny() builds a LLaMA")
        };
        let quiet = |_: &str| {};
        let out = train(
            &student,
            Some(t as &dyn CausalLm),
            None,
            &tokens(),
            &options(true, 1.0),
            &dir,
            RunMode::Fresh,
            trainer::StopWhen::default(),
            &quiet,
        )
        .unwrap();
        let (before, after) = (out.kl_before.unwrap(), out.kl_after.unwrap());
        assert!(after < 0.5 * before, "KL {before} -> {after}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_teacher_with_another_vocabulary_is_refused_naming_both_sizes() {
        let student = tiny(2);
        let config: LlamaConfig = serde_json::from_value(json!({
            "vocab_size": 30, "hidden_size": 16, "intermediate_size": 32,
            "num_hidden_layers": 1, "num_attention_heads": 2, "num_key_value_heads": 2,
            "max_position_embeddings": 32, "rms_norm_eps": 1e-5
        }))
        .unwrap();
        let teacher = Llama::new(config, &mut Rng::new(1)).unwrap();
        let quiet = |_: &str| {};
        let dir = std::env::temp_dir().join(format!("kindling-vocab-{}", std::process::id()));
        let err = train(
            &student,
            Some(&teacher as &dyn CausalLm),
            None,
            &tokens(),
            &options(true, 0.5),
            &dir,
            RunMode::Fresh,
            trainer::StopWhen::default(),
            &quiet,
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("`student`")
                && err.contains("24")
                && err.contains("`teacher`")
                && err.contains("30"),
            "{err}"
        );
        assert!(!dir.exists(), "nothing created");
    }
}
