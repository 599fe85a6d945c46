//! Direct Preference Optimization (Rafailov et al. 2023) on the one
//! training loop. The loss of a pair is
//! `−log σ(β · ((log π(y_c|x) − log π_ref(y_c|x)) − (log π(y_r|x) − log π_ref(y_r|x))))`,
//! TRL's `sigmoid` loss: `log π(y|x)` sums the answer tokens' log-probabilities.
//! The reference is the starting model; its log-probabilities are computed
//! once, before the first step, and kept in the run directory
//! (`reference_logps.safetensors`), so a resumed run scores against the same
//! reference without keeping a second model.

use crate::gpt_run::loss_curves_by;
use crate::optimizer::adamw_groups;
use crate::plot::Panel;
use crate::preference::EncodedPair;
use crate::run_dir::{RunDir, RunMode};
use crate::trainer::{self, Bar, Evaluated, Period, Plan, Task, Trainer};
use crate::Result;
use kindling_models::llama::Llama;
use kindling_nn::schedule::LrSchedule;
use kindling_nn::Module;
use kindling_tensor::{cat, no_grad, safetensors_io, Rng, Tensor};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::path::Path;

pub const REFERENCE_FILE: &str = "reference_logps.safetensors";

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DpoOptions {
    pub data: String,
    pub model: String,
    pub beta: f32,
    pub steps: usize,
    pub batch_size: usize,
    pub accum_steps: usize,
    pub max_len: usize,
    pub lr: f32,
    pub min_lr: f32,
    pub warmup_steps: usize,
    pub weight_decay: f32,
    pub grad_clip: f32,
    pub eval_every: usize,
    /// Validation pairs scored at each evaluation (0: all).
    pub eval_pairs: usize,
    pub limit: usize,
    pub seed: u64,
}

impl DpoOptions {
    pub fn defaults(model: &str, data: &str) -> DpoOptions {
        DpoOptions {
            data: data.to_string(),
            model: model.to_string(),
            beta: 0.1,
            steps: 200,
            batch_size: 2,
            accum_steps: 4,
            max_len: 384,
            lr: 5e-6,
            min_lr: 5e-7,
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
            "DPO",
            &[
                ("steps", self.steps),
                ("batch_size", self.batch_size),
                ("accum_steps", self.accum_steps),
                ("max_len", self.max_len),
                ("eval_every", self.eval_every),
            ],
        )?;
        if !(self.beta > 0.0 && self.beta.is_finite()) {
            return Err(format!("DPO option `beta` must be positive, got {}", self.beta).into());
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

/// A pair packed in one row, `[prompt + chosen | prompt + rejected]`, with
/// the positions that predict each answer's tokens.
pub struct DpoRow {
    ids: Tensor,
    lengths: [usize; 2],
    positions: [Tensor; 2],
    targets: [Tensor; 2],
    counts: [usize; 2],
    /// Index of the pair (its reference log-probabilities).
    pub index: usize,
}

impl DpoRow {
    pub fn new(p: &EncodedPair, index: usize) -> Result<DpoRow> {
        let (c, r) = (p.chosen_ids(), p.rejected_ids());
        let lp = p.prompt.len();
        if lp == 0 {
            return Err("a preference pair has an empty prompt".into());
        }
        let side = |offset: usize, answer: &[u32]| -> Result<(Tensor, Tensor)> {
            let pos: Vec<i64> = (0..answer.len())
                .map(|j| (offset + lp + j - 1) as i64)
                .collect();
            let tgt: Vec<i64> = answer.iter().map(|&t| t as i64).collect();
            let n = pos.len();
            Ok((
                Tensor::from_vec_i64(pos, &[n])?,
                Tensor::from_vec_i64(tgt, &[n])?,
            ))
        };
        let (pc, tc) = side(0, &p.chosen)?;
        let (pr, tr) = side(c.len(), &p.rejected)?;
        let ids: Vec<i64> = c.iter().chain(&r).map(|&i| i as i64).collect();
        let n = ids.len();
        Ok(DpoRow {
            ids: Tensor::from_vec_i64(ids, &[1, n])?,
            lengths: [c.len(), r.len()],
            positions: [pc, pr],
            targets: [tc, tr],
            counts: [p.chosen.len(), p.rejected.len()],
            index,
        })
    }
}

/// `[log π(chosen), log π(rejected)]` of a row: sums of the answers' token
/// log-probabilities.
pub fn answer_logps(model: &Llama, row: &DpoRow) -> kindling_tensor::Result<Tensor> {
    let h = model.hidden_packed(&row.ids, &row.lengths)?.squeeze(0)?;
    let mut sides = Vec::with_capacity(2);
    for s in 0..2 {
        let logits = model.head_rows(&h.index_select(0, &row.positions[s])?)?;
        // cross_entropy is the mean of −log p; the sum is what DPO needs.
        let nll = logits.cross_entropy(&row.targets[s], None)?;
        sides.push(nll.affine(-(row.counts[s] as f32), 0.0)?.reshape(&[1])?);
    }
    cat(&sides.iter().collect::<Vec<_>>(), 0)
}

/// The mean DPO loss of `rows` given their reference log-probabilities
/// `reference[index] = [chosen, rejected]`, and the implicit rewards'
/// margins `β · (Δ_chosen − Δ_rejected)` per row.
pub fn dpo_loss(
    model: &Llama,
    rows: &[DpoRow],
    reference: &[[f32; 2]],
    beta: f32,
) -> kindling_tensor::Result<(Tensor, Vec<f32>)> {
    let mut logits = Vec::with_capacity(rows.len());
    let mut margins = Vec::with_capacity(rows.len());
    for row in rows {
        let lp = answer_logps(model, row)?;
        let [rc, rr] = reference[row.index];
        // β (lp_c − lp_r) − β (ref_c − ref_r): a [2]·[β, −β] dot plus a constant.
        let signs = Tensor::from_vec(vec![beta, -beta], &[2])?;
        let z = lp.mul(&signs)?.sum_all()?.affine(1.0, -beta * (rc - rr))?;
        margins.push(z.item()?);
        // −log σ(z) as a two-way cross-entropy: logits [0, z], target 1.
        let zero = Tensor::zeros(&[1, 1]);
        logits.push(cat(&[&zero, &z.reshape(&[1, 1])?], 1)?);
    }
    let n = rows.len();
    let logits = cat(&logits.iter().collect::<Vec<_>>(), 0)?;
    let loss = logits.cross_entropy(&Tensor::from_vec_i64(vec![1; n], &[n])?, None)?;
    Ok((loss, margins))
}

/// The training pair the `i`-th draw of a run takes (epoch by epoch, each a
/// permutation of the pairs).
fn pair_drawn(seed: u64, pairs: usize, i: usize) -> usize {
    trainer::epoch_item(seed, 9, pairs, i)
}

/// The reference log-probabilities of `pairs` under `model` (no gradient).
pub fn reference_logps(model: &Llama, pairs: &[EncodedPair]) -> Result<Vec<[f32; 2]>> {
    reference_logps_of(model, pairs, &|_| true)
}

/// [`reference_logps`] of the pairs `used` says a run will read; the others
/// are NaN (never read). A run of S steps of B pairs reads S·B of the
/// training pairs, often far fewer than the split holds.
pub fn reference_logps_of(
    model: &Llama,
    pairs: &[EncodedPair],
    used: &dyn Fn(usize) -> bool,
) -> Result<Vec<[f32; 2]>> {
    let _g = no_grad();
    pairs
        .iter()
        .enumerate()
        .map(|(i, p)| {
            if !used(i) {
                return Ok([f32::NAN; 2]);
            }
            let v = answer_logps(model, &DpoRow::new(p, 0)?)?.to_vec_f32()?;
            Ok([v[0], v[1]])
        })
        .collect()
}

fn save_reference(path: &Path, train: &[[f32; 2]], val: &[[f32; 2]]) -> Result<()> {
    let t = |v: &[[f32; 2]]| -> Result<Tensor> {
        Ok(Tensor::from_vec(
            v.iter().flatten().copied().collect(),
            &[v.len(), 2],
        )?)
    };
    safetensors_io::save(
        path,
        &[
            ("train".to_string(), t(train)?),
            ("validation".to_string(), t(val)?),
        ],
        &Default::default(),
    )?;
    Ok(())
}

fn load_reference(path: &Path, train: usize, val: usize) -> Result<(Vec<[f32; 2]>, Vec<[f32; 2]>)> {
    let (t, _) = safetensors_io::load(path)?;
    let get = |name: &str, n: usize| -> Result<Vec<[f32; 2]>> {
        let x = t
            .get(name)
            .ok_or_else(|| format!("{}: tensor `{name}` is missing", path.display()))?;
        if x.shape() != [n, 2] {
            return Err(format!(
                "{}: `{name}` is {:?}, the run has {n} pairs",
                path.display(),
                x.shape()
            )
            .into());
        }
        Ok(x.to_vec_f32()?.chunks(2).map(|c| [c[0], c[1]]).collect())
    };
    Ok((get("train", train)?, get("validation", val)?))
}

pub struct DpoTask<'a> {
    pub model: &'a Llama,
    pub train: &'a [EncodedPair],
    pub val: &'a [EncodedPair],
    pub reference_train: Vec<[f32; 2]>,
    pub reference_val: Vec<[f32; 2]>,
    pub opts: &'a DpoOptions,
}

impl DpoTask<'_> {
    fn pair_index(&self, i: usize) -> usize {
        pair_drawn(self.opts.seed, self.train.len(), i)
    }

    fn val_len(&self) -> usize {
        match self.opts.eval_pairs {
            0 => self.val.len(),
            k => k.min(self.val.len()),
        }
    }
}

impl Task for DpoTask<'_> {
    type Batch = Vec<DpoRow>;

    fn model(&self) -> &dyn Module {
        self.model
    }

    fn batch(&mut self, step: usize, micro: usize, _rng: &mut Rng) -> Result<Vec<DpoRow>> {
        let bs = self.opts.batch_size;
        let first = (step * self.opts.accum_steps + micro) * bs;
        (first..first + bs)
            .map(|i| {
                let k = self.pair_index(i);
                DpoRow::new(&self.train[k], k)
            })
            .collect()
    }

    fn rows(&self, b: &Vec<DpoRow>) -> usize {
        b.len()
    }

    fn loss(
        &self,
        b: &Vec<DpoRow>,
        start: usize,
        len: usize,
        _rng: &mut Rng,
    ) -> kindling_tensor::Result<Tensor> {
        Ok(dpo_loss(
            self.model,
            &b[start..start + len],
            &self.reference_train,
            self.opts.beta,
        )?
        .0)
    }

    fn evaluate(&mut self, p: &Period) -> Result<Evaluated> {
        let _g = no_grad();
        let (mut loss, mut right, mut margin) = (0f64, 0usize, 0f64);
        let n = self.val_len();
        for k in 0..n {
            let row = DpoRow::new(&self.val[k], k)?;
            let (l, m) = dpo_loss(self.model, &[row], &self.reference_val, self.opts.beta)?;
            loss += l.item()? as f64;
            right += (m[0] > 0.0) as usize;
            margin += m[0] as f64;
        }
        let (vl, acc, mm) = (
            (loss / n as f64) as f32,
            right as f32 / n as f32,
            (margin / n as f64) as f32,
        );
        let record = json!({ "step": p.step, "val_loss": vl, "val_reward_accuracy": acc, "val_reward_margin": mm, "lr": self.opts.schedule().lr_at(p.step) });
        let line = format!("step {:>4}: held-out DPO loss {vl:.4}, implicit-reward accuracy {acc:.3}, margin {mm:.3}", p.step);
        Ok(Evaluated::with_train_loss(record, line, p))
    }

    fn identity(&self) -> Option<trainer::RunIdentity> {
        Some(trainer::RunIdentity {
            model: "dpo",
            what: "DPO",
            options: json!(self.opts),
            may_change: &["steps"],
            total_steps: self.opts.steps,
        })
    }

    fn checkpoint_frozen(&self) -> bool {
        false
    }

    fn curves(&self, metrics: &[Value]) -> Vec<Panel<'static>> {
        loss_curves_by(metrics, "step", "step", "DPO loss", "−log σ(β · margin)")
    }
}

pub fn plan(opts: &DpoOptions) -> Plan {
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
            label: "finetune dpo".into(),
            unit: "step",
        },
        message_every: 1,
        throughput: ("pairs", 1),
    }
}

#[derive(Debug, Serialize)]
pub struct DpoOutcome {
    pub train_pairs: usize,
    pub val_pairs: usize,
    pub val_reward_accuracy: f32,
    pub val_loss: f32,
    pub pairs_per_sec: f64,
    pub seconds: f64,
}

/// Trains the policy `model` (its trainable parameters) in `dir`; the
/// reference is `model` as it is when the run starts.
#[allow(clippy::too_many_arguments)]
pub fn train(
    model: &Llama,
    train_pairs: &[EncodedPair],
    val_pairs: &[EncodedPair],
    opts: &DpoOptions,
    dir: &Path,
    mode: impl Into<RunMode>,
    stop: trainer::StopWhen,
    log: &dyn Fn(&str),
) -> Result<DpoOutcome> {
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
    let ref_path = run.file(REFERENCE_FILE);
    // Only the pairs this run will read: the training pairs its steps draw
    // and the validation pairs its evaluations score.
    let draws = opts.steps * opts.accum_steps * opts.batch_size;
    let mut used_train = vec![false; train_pairs.len()];
    for i in 0..draws {
        used_train[pair_drawn(opts.seed, train_pairs.len(), i)] = true;
    }
    let val_used = match opts.eval_pairs {
        0 => val_pairs.len(),
        k => k.min(val_pairs.len()),
    };
    let source = run.source_file(REFERENCE_FILE);
    let (mut reference_train, mut reference_val) = if source.exists() && mode == RunMode::Resume {
        load_reference(&source, train_pairs.len(), val_pairs.len())?
    } else {
        let nan = |n| vec![[f32::NAN; 2]; n];
        (nan(train_pairs.len()), nan(val_pairs.len()))
    };
    // Computed once: what a resumed run already has is kept, and only
    // pairs it newly needs (after `steps` was raised) are run.
    let missing = |r: &[[f32; 2]], used: &dyn Fn(usize) -> bool| {
        (0..r.len())
            .filter(|&i| used(i) && r[i][0].is_nan())
            .count()
    };
    let need_train = missing(&reference_train, &|i| used_train[i]);
    let need_val = missing(&reference_val, &|i| i < val_used);
    if need_train + need_val > 0 {
        log(&format!(
            "computing the reference model's log-probabilities of the {need_train} training and {need_val} validation pairs this run reads (once)"
        ));
        let t = reference_logps_of(model, train_pairs, &|i| {
            used_train[i] && reference_train[i][0].is_nan()
        })?;
        let v = reference_logps_of(model, val_pairs, &|i| {
            i < val_used && reference_val[i][0].is_nan()
        })?;
        for (r, new) in reference_train.iter_mut().zip(t) {
            if r[0].is_nan() {
                *r = new;
            }
        }
        for (r, new) in reference_val.iter_mut().zip(v) {
            if r[0].is_nan() {
                *r = new;
            }
        }
        save_reference(&ref_path, &reference_train, &reference_val)?;
    }
    let opt = Box::new(adamw_groups(
        model,
        opts.lr,
        opts.weight_decay,
        0.999,
        &|_, p| p.rank() >= 2,
    ));
    let mut task = DpoTask {
        model,
        train: train_pairs,
        val: val_pairs,
        reference_train,
        reference_val,
        opts,
    };
    let mut trainer = Trainer::new(plan(opts), model, opt, Some(&run), log)?;
    trainer.begin(&mut task, mode, &serde_json::to_value(opts)?)?;
    let summary = trainer.run_until(&mut task, stop)?;
    let last = summary
        .records
        .iter()
        .rev()
        .find(|r| r.get("val_loss").is_some());
    let get = |k: &str| last.and_then(|r| r[k].as_f64()).unwrap_or(f64::NAN) as f32;
    Ok(DpoOutcome {
        train_pairs: train_pairs.len(),
        val_pairs: task.val_len(),
        val_reward_accuracy: get("val_reward_accuracy"),
        val_loss: get("val_loss"),
        pairs_per_sec: summary.per_sec(1),
        seconds: summary.train_seconds,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use kindling_models::llama::LlamaConfig;

    #[test]
    fn dpo_teaches_a_preference_against_its_starting_point_and_resumes_exactly() {
        let config: LlamaConfig = serde_json::from_value(json!({
            "vocab_size": 32, "hidden_size": 16, "intermediate_size": 32,
            "num_hidden_layers": 1, "num_attention_heads": 2, "num_key_value_heads": 1,
            "max_position_embeddings": 32, "rms_norm_eps": 1e-5
        }))
        .unwrap();
        let mut rng = Rng::new(6);
        let make = |rng: &mut Rng, n: usize| -> Vec<EncodedPair> {
            (0..n)
                .map(|_| {
                    let prompt: Vec<u32> = (0..2 + rng.below(3))
                        .map(|_| 10 + rng.below(20) as u32)
                        .collect();
                    EncodedPair {
                        prompt,
                        chosen: vec![7, 3],
                        rejected: vec![9, 3],
                    }
                })
                .collect()
        };
        let (train_set, val_set) = (make(&mut rng, 100), make(&mut rng, 20));
        let opts = DpoOptions {
            steps: 40,
            batch_size: 4,
            accum_steps: 1,
            lr: 3e-3,
            min_lr: 3e-4,
            warmup_steps: 2,
            eval_every: 20,
            eval_pairs: 0,
            ..DpoOptions::defaults("tiny", "rule")
        };
        let tmp = |n: &str| {
            let d = std::env::temp_dir().join(format!("kindling-dpo-{n}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&d);
            d
        };
        let (d1, d2) = (tmp("a"), tmp("b"));
        let model = Llama::new(config.clone(), &mut Rng::new(1)).unwrap();
        let out = train(
            &model,
            &train_set,
            &val_set,
            &opts,
            &d1,
            RunMode::Fresh,
            trainer::StopWhen::default(),
            &|_| {},
        )
        .unwrap();
        assert!(out.val_reward_accuracy >= 0.95, "{out:?}");
        assert!(out.val_loss < 0.5, "{out:?}");
        // Stopped halfway and resumed: the cached reference is read back, and the end is the same.
        let model2 = Llama::new(config.clone(), &mut Rng::new(1)).unwrap();
        assert!(train(
            &model2,
            &train_set,
            &val_set,
            &opts,
            &d2,
            RunMode::Fresh,
            trainer::StopWhen {
                after: Some(20),
                flag: None
            },
            &|_| {}
        )
        .is_err());
        let again = train(
            &model2,
            &train_set,
            &val_set,
            &opts,
            &d2,
            RunMode::Resume,
            trainer::StopWhen::default(),
            &|_| {},
        )
        .unwrap();
        assert_eq!(again.val_loss, out.val_loss);
        // A short run computes the reference only for the pairs it draws:
        // 10 steps of 4 read 40 of the 100 training pairs.
        let d3 = tmp("c");
        let short = DpoOptions {
            steps: 10,
            ..opts.clone()
        };
        let model3 = Llama::new(config, &mut Rng::new(1)).unwrap();
        train(
            &model3,
            &train_set,
            &val_set,
            &short,
            &d3,
            RunMode::Fresh,
            trainer::StopWhen::default(),
            &|_| {},
        )
        .unwrap();
        let (t, v) = load_reference(&d3.join(REFERENCE_FILE), 100, 20).unwrap();
        assert_eq!(t.iter().filter(|r| r[0].is_finite()).count(), 40);
        assert_eq!(v.iter().filter(|r| r[0].is_finite()).count(), 20);
        for d in [d1, d2, d3] {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}
