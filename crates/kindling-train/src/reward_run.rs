//! Training a reward model on preference pairs, on the one training loop:
//! each pair's two sides run packed in one row, and the loss is
//! Bradley–Terry's `−log σ(r_chosen − r_rejected)` (written as a two-way
//! cross-entropy, which is the same number). The score is held-out
//! accuracy: how often the chosen answer gets the higher reward.

use crate::gpt_run::loss_curves_by;
use crate::optimizer::adamw_groups;
use crate::plot::Panel;
use crate::preference::EncodedPair;
use crate::run_dir::{RunDir, RunMode};
use crate::trainer::{self, Bar, Evaluated, Period, Plan, Task, Trainer};
use crate::Result;
use kindling_models::reward::RewardModel;
use kindling_nn::schedule::LrSchedule;
use kindling_nn::Module;
use kindling_tensor::{cat, no_grad, Rng, Tensor};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::path::Path;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RewardOptions {
    pub data: String,
    pub model: String,
    pub steps: usize,
    /// Pairs per micro-batch.
    pub batch_size: usize,
    pub accum_steps: usize,
    /// Pairs with a side longer than this many tokens are left out.
    pub max_len: usize,
    pub lr: f32,
    pub min_lr: f32,
    pub warmup_steps: usize,
    pub weight_decay: f32,
    pub grad_clip: f32,
    pub eval_every: usize,
    /// Validation pairs scored at each evaluation (0: all).
    pub eval_pairs: usize,
    /// Use at most this many training pairs (0: all).
    pub limit: usize,
    pub seed: u64,
}

impl RewardOptions {
    pub fn defaults(model: &str, data: &str) -> RewardOptions {
        RewardOptions {
            data: data.to_string(),
            model: model.to_string(),
            steps: 300,
            batch_size: 4,
            accum_steps: 2,
            max_len: 384,
            lr: 2e-5,
            min_lr: 2e-6,
            warmup_steps: 10,
            weight_decay: 0.0,
            grad_clip: 1.0,
            eval_every: 50,
            eval_pairs: 200,
            limit: 0,
            seed: 1337,
        }
    }

    pub fn validate(&self) -> Result<()> {
        trainer::require_positive(
            "reward",
            &[
                ("steps", self.steps),
                ("batch_size", self.batch_size),
                ("accum_steps", self.accum_steps),
                ("max_len", self.max_len),
                ("eval_every", self.eval_every),
            ],
        )?;
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

/// One pair as a packed row: `[prompt + chosen | prompt + rejected]`.
pub struct PairRow {
    ids: Tensor,
    lengths: [usize; 2],
}

impl PairRow {
    pub fn new(p: &EncodedPair) -> Result<PairRow> {
        let (c, r) = (p.chosen_ids(), p.rejected_ids());
        let lengths = [c.len(), r.len()];
        let ids: Vec<i64> = c.iter().chain(&r).map(|&i| i as i64).collect();
        let n = ids.len();
        Ok(PairRow {
            ids: Tensor::from_vec_i64(ids, &[1, n])?,
            lengths,
        })
    }
}

/// `[r_rejected, r_chosen]` for each row: cross-entropy with target 1 is
/// `−log σ(r_chosen − r_rejected)`.
fn pair_logits(model: &RewardModel, rows: &[PairRow]) -> kindling_tensor::Result<Tensor> {
    let mut parts = Vec::with_capacity(rows.len());
    for row in rows {
        let r = model.rewards_packed(&row.ids, &row.lengths)?; // [chosen, rejected]
        let swapped = r.index_select(0, &Tensor::from_vec_i64(vec![1, 0], &[2])?)?;
        parts.push(swapped.reshape(&[1, 2])?);
    }
    cat(&parts.iter().collect::<Vec<_>>(), 0)
}

/// Accuracy (chosen scored above rejected) and mean loss on `pairs`.
pub fn score_pairs(model: &RewardModel, pairs: &[EncodedPair]) -> Result<(f32, f32)> {
    let _g = no_grad();
    let (mut right, mut loss) = (0usize, 0f64);
    for p in pairs {
        let logits = pair_logits(model, &[PairRow::new(p)?])?;
        let v = logits.to_vec_f32()?;
        if v[1] > v[0] {
            right += 1;
        }
        loss += logits
            .cross_entropy(&Tensor::from_vec_i64(vec![1], &[1])?, None)?
            .item()? as f64;
    }
    let n = pairs.len().max(1) as f64;
    Ok(((right as f64 / n) as f32, (loss / n) as f32))
}

pub struct RewardTask<'a> {
    pub model: &'a RewardModel,
    pub train: &'a [EncodedPair],
    pub val: &'a [EncodedPair],
    pub opts: &'a RewardOptions,
}

impl RewardTask<'_> {
    /// Pair `i` of the run (epochs reshuffled from the seed alone).
    fn pair(&self, i: usize) -> &EncodedPair {
        &self.train[trainer::epoch_item(self.opts.seed, 8, self.train.len(), i)]
    }

    fn val_pairs(&self) -> &[EncodedPair] {
        match self.opts.eval_pairs {
            0 => self.val,
            k => &self.val[..k.min(self.val.len())],
        }
    }
}

impl Task for RewardTask<'_> {
    type Batch = Vec<PairRow>;

    fn model(&self) -> &dyn Module {
        self.model
    }

    fn batch(&mut self, step: usize, micro: usize, _rng: &mut Rng) -> Result<Vec<PairRow>> {
        let bs = self.opts.batch_size;
        let first = (step * self.opts.accum_steps + micro) * bs;
        (first..first + bs)
            .map(|i| PairRow::new(self.pair(i)))
            .collect()
    }

    fn rows(&self, b: &Vec<PairRow>) -> usize {
        b.len()
    }

    fn loss(
        &self,
        b: &Vec<PairRow>,
        start: usize,
        len: usize,
        _rng: &mut Rng,
    ) -> kindling_tensor::Result<Tensor> {
        let logits = pair_logits(self.model, &b[start..start + len])?;
        logits.cross_entropy(&Tensor::from_vec_i64(vec![1; len], &[len])?, None)
    }

    fn evaluate(&mut self, p: &Period) -> Result<Evaluated> {
        let (acc, vl) = score_pairs(self.model, self.val_pairs())?;
        let record = json!({ "step": p.step, "val_accuracy": acc, "val_loss": vl, "lr": self.opts.schedule().lr_at(p.step) });
        let line = format!(
            "step {:>4}: held-out accuracy {acc:.3}, loss {vl:.4}",
            p.step
        );
        Ok(Evaluated::with_train_loss(record, line, p))
    }

    fn identity(&self) -> Option<trainer::RunIdentity> {
        Some(trainer::RunIdentity {
            model: "reward",
            what: "reward-model",
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
            "reward model: Bradley–Terry loss",
            "−log σ(r_chosen − r_rejected)",
        )
    }
}

pub fn plan(opts: &RewardOptions) -> Plan {
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
            label: "train reward".into(),
            unit: "step",
        },
        message_every: 1,
        throughput: ("pairs", 1),
    }
}

#[derive(Debug, Serialize)]
pub struct RewardOutcome {
    pub train_pairs: usize,
    pub val_pairs: usize,
    pub val_accuracy_before: Option<f32>,
    pub val_accuracy: f32,
    pub pairs_per_sec: f64,
    pub seconds: f64,
}

/// Trains `model` (its trainable parameters) in the run directory `dir`.
pub fn train(
    model: &RewardModel,
    train_pairs: &[EncodedPair],
    val_pairs: &[EncodedPair],
    opts: &RewardOptions,
    dir: &Path,
    mode: impl Into<RunMode>,
    stop: trainer::StopWhen,
    log: &dyn Fn(&str),
) -> Result<RewardOutcome> {
    opts.validate()?;
    if train_pairs.is_empty() || val_pairs.is_empty() {
        return Err(format!(
            "{}: {} training and {} validation pairs; both must be non-empty",
            opts.data,
            train_pairs.len(),
            val_pairs.len()
        )
        .into());
    }
    let mode = mode.into();
    let run = RunDir::start(dir, mode)?;
    let opt = Box::new(adamw_groups(
        model,
        opts.lr,
        opts.weight_decay,
        0.999,
        &|_, p| p.rank() >= 2,
    ));
    let mut task = RewardTask {
        model,
        train: train_pairs,
        val: val_pairs,
        opts,
    };
    let mut trainer = Trainer::new(plan(opts), model, opt, Some(&run), log)?;
    trainer.begin(&mut task, mode, &serde_json::to_value(opts)?)?;
    let summary = trainer.run_until(&mut task, stop)?;
    let accs: Vec<(u64, f32)> = summary
        .records
        .iter()
        .filter_map(|r| Some((r["step"].as_u64()?, r.get("val_accuracy")?.as_f64()? as f32)))
        .collect();
    Ok(RewardOutcome {
        train_pairs: train_pairs.len(),
        val_pairs: task.val_pairs().len(),
        val_accuracy_before: accs.iter().find(|(s, _)| *s == 0).map(|(_, a)| *a),
        val_accuracy: accs.last().map_or(f32::NAN, |(_, a)| *a),
        pairs_per_sec: summary.per_sec(1),
        seconds: summary.train_seconds,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use kindling_models::llama::{Llama, LlamaConfig};

    /// Pairs where the chosen answer ends in token 7 and the rejected in 9:
    /// a rule a reward model can learn.
    fn pairs(n: usize, rng: &mut Rng) -> Vec<EncodedPair> {
        (0..n)
            .map(|_| {
                let prompt: Vec<u32> = (0..3 + rng.below(4))
                    .map(|_| 10 + rng.below(20) as u32)
                    .collect();
                let body: Vec<u32> = (0..1 + rng.below(3))
                    .map(|_| 10 + rng.below(20) as u32)
                    .collect();
                EncodedPair {
                    prompt,
                    chosen: [body.as_slice(), &[7]].concat(),
                    rejected: [body.as_slice(), &[9]].concat(),
                }
            })
            .collect()
    }

    #[test]
    fn a_reward_model_learns_a_preference_and_its_loss_is_bradley_terry() {
        let config: LlamaConfig = serde_json::from_value(json!({
            "vocab_size": 32, "hidden_size": 16, "intermediate_size": 32,
            "num_hidden_layers": 1, "num_attention_heads": 2, "num_key_value_heads": 1,
            "max_position_embeddings": 32, "rms_norm_eps": 1e-5
        }))
        .unwrap();
        let mut rng = Rng::new(5);
        let model = RewardModel::from_backbone(Llama::new(config, &mut rng).unwrap(), &mut rng);
        let (train_set, val_set) = (pairs(200, &mut rng), pairs(40, &mut rng));
        // The loss is −log σ(r_c − r_r), by hand.
        {
            let _g = no_grad();
            let row = PairRow::new(&val_set[0]).unwrap();
            let r = model
                .rewards_packed(&row.ids, &row.lengths)
                .unwrap()
                .to_vec_f32()
                .unwrap();
            let want = -(1.0 / (1.0 + (-(r[0] - r[1])).exp())).ln();
            let got = pair_logits(&model, &[row])
                .unwrap()
                .cross_entropy(&Tensor::from_vec_i64(vec![1], &[1]).unwrap(), None)
                .unwrap()
                .item()
                .unwrap();
            assert!((got - want).abs() < 1e-6, "{got} vs {want}");
        }
        let opts = RewardOptions {
            steps: 60,
            batch_size: 4,
            accum_steps: 1,
            lr: 3e-3,
            min_lr: 3e-4,
            warmup_steps: 3,
            eval_every: 30,
            eval_pairs: 0,
            ..RewardOptions::defaults("tiny", "rule")
        };
        let dir = std::env::temp_dir().join(format!("kindling-reward-run-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let out = train(
            &model,
            &train_set,
            &val_set,
            &opts,
            &dir,
            RunMode::Fresh,
            trainer::StopWhen::default(),
            &|_| {},
        )
        .unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        assert!(
            out.val_accuracy >= 0.95,
            "held-out accuracy {} (before {:?})",
            out.val_accuracy,
            out.val_accuracy_before
        );
    }
}
