//! Supervised fine-tuning of a chat model on the one training loop: the
//! loss is the next-token cross-entropy on the assistant's tokens only, the
//! examples are packed end to end into rows of a token budget (each
//! attending only to itself, [`Llama::hidden_packed`]), and the held-out
//! score is the same loss on conversations the run never trains on.

use crate::gpt_run::loss_curves_by;
use crate::optimizer::adamw_groups;
use crate::plot::Panel;
use crate::run_dir::{RunDir, RunMode};
use crate::sft_data::{self, Conversation, SftExample};
use crate::trainer::{self, Bar, Evaluated, Period, Plan, Task, Trainer};
use crate::Result;
use kindling_data::tokenizer::Tokenizer;
use kindling_models::chat::ChatTemplate;
use kindling_models::llama::Llama;
use kindling_nn::schedule::LrSchedule;
use kindling_nn::Module;
use kindling_tensor::{no_grad, Rng, Tensor};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::path::Path;

/// Everything that decides an SFT run (stored in its `config.json` and
/// checkpoint, and compared on `--resume`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SftOptions {
    /// What the data was given as (a dataset name or a path).
    pub data: String,
    /// What the model was given as.
    pub model: String,
    /// Optimizer steps.
    pub steps: usize,
    /// Packed rows per micro-batch.
    pub batch_size: usize,
    pub accum_steps: usize,
    /// Tokens per packed row; also the longest example kept (longer ones
    /// are cut).
    pub seq_len: usize,
    pub lr: f32,
    pub min_lr: f32,
    pub warmup_steps: usize,
    pub weight_decay: f32,
    /// Clip gradients to this global L2 norm (0: off).
    pub grad_clip: f32,
    /// Evaluate and checkpoint every this many steps.
    pub eval_every: usize,
    /// Held-out conversations scored at each evaluation.
    pub eval_examples: usize,
    /// One conversation in this many is held out (a hash of its first user
    /// message decides, [`sft_data::is_held_out`]).
    pub held_out_every: u64,
    /// Use at most this many training conversations (0: all).
    pub limit: usize,
    pub seed: u64,
}

impl SftOptions {
    pub fn defaults(model: &str, data: &str) -> SftOptions {
        SftOptions {
            data: data.to_string(),
            model: model.to_string(),
            steps: 200,
            batch_size: 2,
            accum_steps: 4,
            seq_len: 512,
            lr: 5e-5,
            min_lr: 5e-6,
            warmup_steps: 10,
            weight_decay: 0.0,
            grad_clip: 1.0,
            eval_every: 50,
            eval_examples: 100,
            held_out_every: 50,
            limit: 0,
            seed: 1337,
        }
    }

    pub fn validate(&self) -> Result<()> {
        trainer::require_positive(
            "sft",
            &[
                ("steps", self.steps),
                ("batch_size", self.batch_size),
                ("accum_steps", self.accum_steps),
                ("seq_len", self.seq_len),
                ("eval_every", self.eval_every),
                ("eval_examples", self.eval_examples),
            ],
        )?;
        if self.held_out_every < 2 {
            return Err("sft option `held_out_every` must be at least 2".into());
        }
        crate::optimizer::check_settings(
            self.lr,
            Some(self.min_lr),
            Some(self.weight_decay),
            Some(self.grad_clip),
        )?;
        Ok(())
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

/// Conversations tokenized and split by the held-out rule.
pub struct SftData {
    pub train: Vec<SftExample>,
    pub val: Vec<SftExample>,
    /// Held-out conversations (for before/after answers).
    pub val_conversations: Vec<Conversation>,
    /// Conversations left out: nothing trained survived the cut to `seq_len`.
    pub dropped: usize,
}

impl SftData {
    pub fn new(
        conversations: &[Conversation],
        tokenizer: &Tokenizer,
        template: &ChatTemplate,
        opts: &SftOptions,
    ) -> Result<SftData> {
        let (mut train, mut val, mut val_conversations, mut dropped) =
            (Vec::new(), Vec::new(), Vec::new(), 0);
        for c in conversations {
            let held = sft_data::is_held_out(c, opts.held_out_every);
            if held && val.len() >= opts.eval_examples {
                continue;
            }
            if !held && opts.limit > 0 && train.len() >= opts.limit {
                continue;
            }
            match sft_data::encode(tokenizer, template, c, opts.seq_len)? {
                Some(ex) if held => {
                    val.push(ex);
                    val_conversations.push(c.clone());
                }
                Some(ex) => train.push(ex),
                None => dropped += 1,
            }
        }
        if train.is_empty() {
            return Err(format!("{}: no training conversation left", opts.data).into());
        }
        if val.is_empty() {
            return Err(format!(
                "{}: no held-out conversation (one in {} is held out; give more data)",
                opts.data, opts.held_out_every
            )
            .into());
        }
        Ok(SftData {
            train,
            val,
            val_conversations,
            dropped,
        })
    }
}

/// Examples packed into one row: ids side by side, their lengths, and the
/// positions whose next token is trained with those tokens.
pub struct PackedRow {
    ids: Tensor,
    lengths: Vec<usize>,
    /// Positions `p` (within the row) whose prediction is scored.
    positions: Tensor,
    targets: Tensor,
    trained: usize,
    tokens: usize,
}

/// Packs examples (in the given order) greedily into rows of at most
/// `seq_len` tokens.
pub fn pack(examples: &[&SftExample], seq_len: usize) -> Result<Vec<PackedRow>> {
    let mut rows = Vec::new();
    let mut current: Vec<&SftExample> = Vec::new();
    let mut used = 0;
    let mut flush = |current: &mut Vec<&SftExample>| -> Result<()> {
        if current.is_empty() {
            return Ok(());
        }
        let (mut ids, mut lengths, mut positions, mut targets) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for ex in current.drain(..) {
            let base = ids.len();
            for t in 1..ex.ids.len() {
                if ex.trained[t] {
                    positions.push((base + t - 1) as i64);
                    targets.push(ex.ids[t] as i64);
                }
            }
            ids.extend(ex.ids.iter().map(|&i| i as i64));
            lengths.push(ex.ids.len());
        }
        let (n, t) = (positions.len(), ids.len());
        rows.push(PackedRow {
            ids: Tensor::from_vec_i64(ids, &[1, t])?,
            lengths,
            positions: Tensor::from_vec_i64(positions, &[n])?,
            targets: Tensor::from_vec_i64(targets, &[n])?,
            trained: n,
            tokens: t,
        });
        Ok(())
    };
    for ex in examples {
        if used + ex.ids.len() > seq_len && !current.is_empty() {
            flush(&mut current)?;
            used = 0;
        }
        used += ex.ids.len();
        current.push(ex);
    }
    flush(&mut current)?;
    Ok(rows)
}

/// The sum of the cross-entropy over a row's trained tokens.
fn row_loss_sum(model: &Llama, row: &PackedRow) -> kindling_tensor::Result<Tensor> {
    let h = model.hidden_packed(&row.ids, &row.lengths)?.squeeze(0)?;
    let logits = model.head_rows(&h.index_select(0, &row.positions)?)?;
    logits
        .cross_entropy(&row.targets, None)?
        .affine(row.trained as f32, 0.0)
}

/// Mean assistant-token loss of `model` on `examples` (no gradient).
pub fn heldout_loss(model: &Llama, examples: &[SftExample], seq_len: usize) -> Result<f32> {
    let _g = no_grad();
    let refs: Vec<&SftExample> = examples.iter().collect();
    let (mut sum, mut n) = (0f64, 0usize);
    for row in pack(&refs, seq_len)? {
        sum += row_loss_sum(model, &row)?.item()? as f64;
        n += row.trained;
    }
    Ok((sum / n.max(1) as f64) as f32)
}

/// The micro-batches of a step and the token count their loss is a mean over.
pub struct SftBatch {
    rows: Vec<PackedRow>,
    /// Trained tokens in all of the step's micro-batches.
    step_trained: usize,
    /// Rows in all of the step's micro-batches.
    step_rows: usize,
}

pub struct SftTask<'a> {
    pub model: &'a Llama,
    pub data: &'a SftData,
    pub opts: &'a SftOptions,
    /// The run's packed rows so far (example indices), epoch after epoch.
    rows: Vec<Vec<usize>>,
    epochs_made: usize,
}

impl<'a> SftTask<'a> {
    pub fn new(model: &'a Llama, data: &'a SftData, opts: &'a SftOptions) -> SftTask<'a> {
        SftTask {
            model,
            data,
            opts,
            rows: Vec::new(),
            epochs_made: 0,
        }
    }

    /// The example indices of packed row `r` of the run: epochs follow one
    /// another, each a fresh shuffle from the seed and the epoch alone, so a
    /// resumed run packs exactly as the first did.
    fn row_examples(&mut self, r: usize) -> Vec<usize> {
        while self.rows.len() <= r {
            let mut order: Vec<usize> = (0..self.data.train.len()).collect();
            trainer::stream(self.opts.seed, 7, self.epochs_made).shuffle(&mut order);
            self.epochs_made += 1;
            let (mut used, mut current) = (0, Vec::new());
            for i in order {
                let len = self.data.train[i].ids.len();
                if used + len > self.opts.seq_len && !current.is_empty() {
                    self.rows.push(std::mem::take(&mut current));
                    used = 0;
                }
                used += len;
                current.push(i);
            }
            self.rows.push(current);
        }
        self.rows[r].clone()
    }

    /// Epochs (passes over the training conversations) that `steps` take.
    pub fn epochs_for(&mut self, steps: usize) -> f64 {
        let rows = steps * self.opts.batch_size * self.opts.accum_steps;
        self.row_examples(rows.saturating_sub(1));
        let per_epoch = self.rows.len() as f64 / self.epochs_made as f64;
        rows as f64 / per_epoch
    }
}

impl Task for SftTask<'_> {
    type Batch = SftBatch;

    fn model(&self) -> &dyn Module {
        self.model
    }

    fn batch(&mut self, step: usize, micro: usize, _rng: &mut Rng) -> Result<SftBatch> {
        let (bs, acc) = (self.opts.batch_size, self.opts.accum_steps);
        let first = step * bs * acc;
        let mut step_trained = 0;
        let mut rows = Vec::with_capacity(bs);
        for r in first..first + bs * acc {
            let idx = self.row_examples(r);
            let examples: Vec<&SftExample> = idx.iter().map(|&i| &self.data.train[i]).collect();
            step_trained += examples.iter().map(|e| e.trained_tokens()).sum::<usize>();
            if (r - first) / bs == micro {
                rows.extend(pack(&examples, self.opts.seq_len)?);
            }
        }
        Ok(SftBatch {
            rows,
            step_trained,
            step_rows: bs * acc,
        })
    }

    fn rows(&self, b: &SftBatch) -> usize {
        b.rows.len()
    }

    /// Tokens (prompt and answer) the batch runs through the model.
    fn examples(&self, b: &SftBatch) -> usize {
        b.rows.iter().map(|r| r.tokens).sum()
    }

    fn loss(
        &self,
        b: &SftBatch,
        start: usize,
        len: usize,
        _rng: &mut Rng,
    ) -> kindling_tensor::Result<Tensor> {
        // The trainer weights a shard by len / step_rows; this makes the
        // step's loss the mean over all of its trained tokens, as a single
        // batch would have it, however the tokens fall into rows.
        let mut sum: Option<Tensor> = None;
        for row in &b.rows[start..start + len] {
            let l = row_loss_sum(self.model, row)?;
            sum = Some(match sum {
                Some(s) => s.add(&l)?,
                None => l,
            });
        }
        let scale = b.step_rows as f32 / (len as f32 * b.step_trained.max(1) as f32);
        sum.expect("a shard has rows").affine(scale, 0.0)
    }

    fn evaluate(&mut self, p: &Period) -> Result<Evaluated> {
        let vl = heldout_loss(self.model, &self.data.val, self.opts.seq_len)?;
        let record =
            json!({ "step": p.step, "val_loss": vl, "lr": self.opts.schedule().lr_at(p.step) });
        let line = format!("step {:>4}: held-out answer loss {vl:.4}", p.step);
        Ok(Evaluated::with_train_loss(record, line, p))
    }

    fn identity(&self) -> Option<trainer::RunIdentity> {
        Some(trainer::RunIdentity {
            model: "sft",
            what: "fine-tuning",
            options: json!(self.opts),
            may_change: &["steps"],
            total_steps: self.opts.steps,
        })
    }

    fn checkpoint_frozen(&self) -> bool {
        false
    }

    fn curves(&self, metrics: &[Value]) -> Vec<Panel<'static>> {
        loss_curves_by(
            metrics,
            "step",
            "step",
            "fine-tuning loss (assistant tokens)",
            "cross-entropy (nats/token)",
        )
    }
}

pub fn plan(opts: &SftOptions) -> Plan {
    Plan {
        total_steps: opts.steps,
        accum_steps: opts.accum_steps,
        schedule: opts.schedule(),
        grad_clip: (opts.grad_clip > 0.0).then_some(opts.grad_clip),
        eval_every: opts.eval_every,
        eval_at_start: true,
        seed: opts.seed,
        loss_records: Some(("step", 1)),
        log_every: 10,
        step_name: "step",
        bar: Bar::Run {
            label: "finetune sft".into(),
            unit: "step",
        },
        message_every: 1,
        throughput: ("tokens", 1),
    }
}

/// What a run did.
#[derive(Debug, Serialize)]
pub struct SftOutcome {
    pub train_conversations: usize,
    pub val_conversations: usize,
    pub dropped: usize,
    pub trainable_parameters: usize,
    pub val_loss_before: Option<f32>,
    pub val_loss_after: f32,
    pub epochs: f64,
    pub tokens_per_sec: f64,
    pub seconds: f64,
}

/// Fine-tunes `model` (its trainable parameters: all, or only adapters
/// after freezing) on `data` in the run directory `dir`.
pub fn train(
    model: &Llama,
    data: &SftData,
    opts: &SftOptions,
    dir: &Path,
    mode: impl Into<RunMode>,
    stop: trainer::StopWhen,
    log: &dyn Fn(&str),
) -> Result<SftOutcome> {
    opts.validate()?;
    let mode = mode.into();
    let run = RunDir::start(dir, mode)?;
    // Norms and biases are not decayed, by the language models' convention.
    let opt = Box::new(adamw_groups(
        model,
        opts.lr,
        opts.weight_decay,
        0.999,
        &|_, p| p.rank() >= 2,
    ));
    let mut task = SftTask::new(model, data, opts);
    let epochs = task.epochs_for(opts.steps);
    let mut trainer = Trainer::new(plan(opts), model, opt, Some(&run), log)?;
    trainer.begin(&mut task, mode, &serde_json::to_value(opts)?)?;
    let trainable: usize = model.trainable_parameters().iter().map(|t| t.numel()).sum();
    log(&format!(
        "fine-tuning {} of {} parameters on {} conversations ({} held out{}); {} steps ≈ {epochs:.2} epochs",
        trainable,
        model.num_parameters(),
        data.train.len(),
        data.val.len(),
        if data.dropped > 0 {
            format!(", {} dropped: nothing trained left after the cut", data.dropped)
        } else {
            String::new()
        },
        opts.steps
    ));
    let summary = trainer.run_until(&mut task, stop)?;
    let vals: Vec<f32> = summary
        .records
        .iter()
        .filter_map(|r| r.get("val_loss").and_then(Value::as_f64).map(|v| v as f32))
        .collect();
    let before = summary
        .records
        .iter()
        .find(|r| r["step"] == 0 && r.get("val_loss").is_some())
        .and_then(|r| r["val_loss"].as_f64())
        .map(|v| v as f32);
    Ok(SftOutcome {
        train_conversations: data.train.len(),
        val_conversations: data.val.len(),
        dropped: data.dropped,
        trainable_parameters: trainable,
        val_loss_before: before,
        val_loss_after: vals.last().copied().unwrap_or(f32::NAN),
        epochs,
        tokens_per_sec: summary.per_sec(1),
        seconds: summary.train_seconds,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use kindling_models::chat::{Message, CHATML};
    use kindling_models::llama::LlamaConfig;

    fn tiny() -> (Llama, Tokenizer, ChatTemplate, Vec<Conversation>) {
        let colours = ["red", "green", "blue", "black", "white", "gold"];
        let conversations: Vec<Conversation> = (0..400)
            .map(|i| Conversation {
                messages: vec![
                    Message::new("user", format!("colour {i}?")).unwrap(),
                    Message::new("assistant", colours[i % colours.len()]).unwrap(),
                ],
            })
            .collect();
        let tmpl = ChatTemplate::new(CHATML, "", "<|im_end|>").unwrap();
        let corpus: Vec<String> = conversations
            .iter()
            .map(|c| tmpl.render(&c.messages, false).unwrap())
            .collect();
        let tok = kindling_data::tokenizer::train_bpe(
            corpus.iter(),
            300,
            &["<|im_start|>", "<|im_end|>"],
        )
        .unwrap();
        let config: LlamaConfig = serde_json::from_value(json!({
            "vocab_size": tok.vocab_size(), "hidden_size": 32, "intermediate_size": 48,
            "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
            "max_position_embeddings": 64, "rms_norm_eps": 1e-5
        }))
        .unwrap();
        (
            Llama::new(config, &mut Rng::new(0)).unwrap(),
            tok,
            tmpl,
            conversations,
        )
    }

    #[test]
    fn the_step_loss_is_the_mean_over_trained_tokens_however_rows_fall() {
        let (model, tok, tmpl, convs) = tiny();
        let opts = SftOptions {
            seq_len: 40,
            batch_size: 3,
            accum_steps: 2,
            ..SftOptions::defaults("tiny", "colours")
        };
        let data = SftData::new(&convs, &tok, &tmpl, &opts).unwrap();
        let mut task = SftTask::new(&model, &data, &opts);
        let _g = no_grad();
        // Shards of 1 and 2 rows of each micro-batch, weighted as the
        // trainer weights them, sum to the token mean of all six rows.
        let mut total = 0f32;
        let mut rows = Vec::new();
        for micro in 0..2 {
            let b = task.batch(4, micro, &mut Rng::new(0)).unwrap();
            for (start, len) in [(0, 1), (1, 2)] {
                let w = len as f32 / b.step_rows as f32;
                total += w * task
                    .loss(&b, start, len, &mut Rng::new(0))
                    .unwrap()
                    .item()
                    .unwrap();
            }
            rows.extend(b.rows);
        }
        let (mut sum, mut n) = (0f64, 0);
        for r in &rows {
            sum += row_loss_sum(&model, r).unwrap().item().unwrap() as f64;
            n += r.trained;
        }
        let mean = (sum / n as f64) as f32;
        assert!((total - mean).abs() < 1e-5, "{total} vs {mean}");
        // Rows stay within the budget, and each example is whole.
        for r in &rows {
            assert!(r.tokens <= 40 && r.lengths.iter().sum::<usize>() == r.tokens);
        }
    }

    #[test]
    fn fine_tuning_lowers_the_held_out_answer_loss_and_resumes_exactly() {
        let (model, tok, tmpl, convs) = tiny();
        let opts = SftOptions {
            steps: 30,
            seq_len: 64,
            batch_size: 2,
            accum_steps: 1,
            lr: 3e-3,
            min_lr: 3e-4,
            warmup_steps: 2,
            eval_every: 15,
            eval_examples: 8,
            held_out_every: 10,
            ..SftOptions::defaults("tiny", "colours")
        };
        let data = SftData::new(&convs, &tok, &tmpl, &opts).unwrap();
        let scratch = |name: &str| {
            let d = std::env::temp_dir().join(format!("kindling-{name}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&d);
            d
        };
        let (dir, dir2) = (scratch("sft-run"), scratch("sft-run2"));
        let quiet = |_: &str| {};
        let out = train(
            &model,
            &data,
            &opts,
            &dir,
            RunMode::Fresh,
            trainer::StopWhen::default(),
            &quiet,
        )
        .unwrap();
        let before = out.val_loss_before.unwrap();
        assert!(
            out.val_loss_after < before - 0.5,
            "held-out answer loss {before} -> {}",
            out.val_loss_after
        );
        // The same run in two halves (stopped, then resumed) ends the same.
        let (model2, ..) = tiny();
        assert!(train(
            &model2,
            &data,
            &opts,
            &dir2,
            RunMode::Fresh,
            trainer::StopWhen {
                after: Some(15),
                flag: None
            },
            &quiet
        )
        .is_err());
        let resumed = train(
            &model2,
            &data,
            &opts,
            &dir2,
            RunMode::Resume,
            trainer::StopWhen::default(),
            &quiet,
        )
        .unwrap();
        assert_eq!(resumed.val_loss_after, out.val_loss_after);
        let changed = SftOptions {
            lr: 1e-3,
            ..opts.clone()
        };
        let e = train(
            &model2,
            &data,
            &changed,
            &dir2,
            RunMode::Resume,
            trainer::StopWhen::default(),
            &quiet,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("lr"), "{e}");
        for d in [dir, dir2] {
            let _ = std::fs::remove_dir_all(d);
        }
    }

    #[test]
    fn a_lora_run_checkpoints_only_its_adapters_and_resumes_exactly() {
        let (_, tok, tmpl, convs) = tiny();
        let lora = kindling_nn::lora::LoraConfig {
            rank: 4,
            alpha: 8.0,
            targets: vec!["q".into(), "v".into(), "down".into()],
            rslora: false,
        };
        let adapted = || {
            let (mut m, ..) = tiny();
            kindling_nn::lora::install(&mut m, &lora, &mut Rng::new(9)).unwrap();
            m
        };
        let opts = SftOptions {
            steps: 20,
            seq_len: 64,
            batch_size: 2,
            accum_steps: 1,
            lr: 1e-2,
            min_lr: 1e-3,
            warmup_steps: 2,
            eval_every: 10,
            eval_examples: 8,
            held_out_every: 10,
            ..SftOptions::defaults("tiny", "colours")
        };
        let data = SftData::new(&convs, &tok, &tmpl, &opts).unwrap();
        let tmp = |n: &str| {
            let d =
                std::env::temp_dir().join(format!("kindling-sft-lora-{n}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&d);
            d
        };
        let (d1, d2) = (tmp("a"), tmp("b"));
        let m1 = adapted();
        let whole = train(
            &m1,
            &data,
            &opts,
            &d1,
            RunMode::Fresh,
            trainer::StopWhen::default(),
            &|_| {},
        )
        .unwrap();
        assert!(whole.val_loss_after < whole.val_loss_before.unwrap());
        assert_eq!(
            whole.trainable_parameters,
            kindling_nn::lora::adapter_parameters(&m1)
                .iter()
                .map(|(_, t)| t.numel())
                .sum::<usize>()
        );
        let m2 = adapted();
        assert!(train(
            &m2,
            &data,
            &opts,
            &d2,
            RunMode::Fresh,
            trainer::StopWhen {
                after: Some(10),
                flag: None
            },
            &|_| {}
        )
        .is_err());
        let ck = kindling_nn::checkpoint::read(&d2.join(crate::trainer::CHECKPOINT)).unwrap();
        let params: Vec<&String> = ck
            .tensors
            .keys()
            .filter(|k| !k.starts_with("optim."))
            .collect();
        assert!(
            !params.is_empty() && params.iter().all(|k| k.contains(".lora_")),
            "{params:?}"
        );
        // A fresh base with fresh adapters, resumed: the checkpoint's adapters replace them.
        let m3 = adapted();
        let resumed = train(
            &m3,
            &data,
            &opts,
            &d2,
            RunMode::Resume,
            trainer::StopWhen::default(),
            &|_| {},
        )
        .unwrap();
        assert_eq!(resumed.val_loss_after, whole.val_loss_after);
        for d in [d1, d2] {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}
