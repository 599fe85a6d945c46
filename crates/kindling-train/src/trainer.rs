//! The one training loop. A [`Task`] says what is trained: its batches, its
//! loss, what to evaluate, what a checkpoint records about it. The
//! [`Trainer`] does what every task repeats: the learning-rate schedule,
//! data-parallel shards, gradient accumulation, clipping, the optimizer
//! step, a stop at the first non-finite loss, evaluation every
//! `eval_every` steps, `metrics.jsonl`, the progress bar (or a log line
//! every `log_every` steps when stderr is not a terminal), atomic
//! checkpoints with the optimizer state, `--resume` and `curves.png`.
//!
//! Randomness is counter-based: every draw of step `s` comes from a stream
//! keyed by `(seed, purpose, s)` ([`stream`]), so the seed and the step
//! count in a checkpoint are the whole RNG state, and a resumed run draws
//! exactly what the uninterrupted run would have.

use crate::data_parallel::DataParallel;
use crate::plot::{save_panels, Panel};
use crate::progress::bar;
use crate::run_dir::{RunDir, RunMode};
use crate::Result;
use indicatif::ProgressBar;
use kindling_nn::checkpoint::{self, Checkpoint};
use kindling_nn::clip::clip_grad_norm;
use kindling_nn::optim::Optimizer;
use kindling_nn::schedule::LrSchedule;
use kindling_nn::Module;
use kindling_tensor::{Rng, Tensor};
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};
use std::io::IsTerminal;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

/// The checkpoint's file name in a run directory.
pub const CHECKPOINT: &str = "model.safetensors";

/// Stream purposes: the batches of a step, and the dropout masks of shard
/// `i` of micro-batch `m` (`DROPOUT + 1000 i + 1_000_000 m`; shard 0 of
/// micro-batch 0 is the single-thread stream).
pub const BATCH_STREAM: u64 = 1;
pub const DROPOUT_STREAM: u64 = 2;

/// The options the run in `dir` was started with, for `--resume` to take
/// its settings from: its checkpoint's (what a resume continues), else its
/// `config.json` (a run stopped before its first checkpoint); `None` when
/// it has neither.
pub fn stored_options(dir: &Path) -> Result<Option<Value>> {
    let ck = dir.join(CHECKPOINT);
    if ck.is_file() {
        let options = checkpoint::read(&ck)?.config["options"].clone();
        return Ok((!options.is_null()).then_some(options));
    }
    let config = dir.join("config.json");
    if !config.is_file() {
        return Ok(None);
    }
    let text =
        std::fs::read_to_string(&config).map_err(|e| format!("{}: {e}", config.display()))?;
    Ok(Some(serde_json::from_str(&text).map_err(|e| {
        format!("{}: not valid JSON: {e}", config.display())
    })?))
}

/// An independent, reproducible random stream per (purpose, step).
pub fn stream(seed: u64, purpose: u64, step: usize) -> Rng {
    Rng::new(seed ^ Rng::new(purpose.wrapping_mul(0x9E37_79B9) ^ step as u64).next_u64())
}

/// What the loop measured since the last evaluation, handed to
/// [`Task::evaluate`].
pub struct Period {
    /// Optimizer steps done so far (the evaluation happens before step `step`).
    pub step: usize,
    /// Mean training loss per example over the period (`None` before any step).
    pub train_loss: Option<f64>,
    pub examples: usize,
    /// Time spent in training steps (batches included, evaluation not).
    pub seconds: f64,
    /// The learning rate of the last step.
    pub lr: f32,
}

/// An evaluation's `metrics.jsonl` record and the line to log, if any.
pub struct Evaluated {
    pub record: Value,
    pub line: Option<String>,
}

/// What a task supplies; the [`Trainer`] does the rest. `loss` runs on
/// several shard threads at once, hence `&self` and `Sync` on the batch.
pub trait Task {
    type Batch: Sync;
    /// The model being trained (checkpointed and restored by the trainer).
    fn model(&self) -> &dyn Module;
    /// Micro-batch `micro` of step `step`. `rng` is the step's batch stream,
    /// shared by its micro-batches in order, so `k` micro-batches of `B`
    /// draw what one batch of `kB` would.
    fn batch(&mut self, step: usize, micro: usize, rng: &mut Rng) -> Result<Self::Batch>;
    /// Rows of the batch, cut into shards; also its weight in the step's loss.
    fn rows(&self, batch: &Self::Batch) -> usize;
    /// Examples the batch counts for throughput and the mean training loss.
    fn examples(&self, batch: &Self::Batch) -> usize {
        self.rows(batch)
    }
    /// The mean loss over rows `start..start + len` of `batch`. `rng` is this
    /// shard's training stream (dropout).
    fn loss(
        &self,
        batch: &Self::Batch,
        start: usize,
        len: usize,
        rng: &mut Rng,
    ) -> kindling_tensor::Result<Tensor>;
    /// Scores the model; the record goes to `metrics.jsonl`.
    fn evaluate(&mut self, period: &Period) -> Result<Evaluated>;
    /// Called after every optimizer update, outside the graph: a task that
    /// constrains its weights restores the constraint here (pruning
    /// re-applies its masks, so pruned weights stay exactly zero whatever
    /// the optimizer's momentum or weight decay did).
    fn after_update(&self) -> Result<()> {
        Ok(())
    }
    /// A task that stores its whole options and counts plain steps says
    /// so here; the four methods below then need no code of their own.
    fn identity(&self) -> Option<RunIdentity> {
        None
    }
    /// Where `steps` done stand, in the task's words ("epoch 3 of 12").
    fn describe(&self, steps: usize) -> String {
        match self.identity() {
            Some(id) => format!("step {steps} of {}", id.total_steps),
            None => format!("step {steps}"),
        }
    }
    /// The checkpoint's metadata after `steps` (a JSON object).
    fn checkpoint_meta(&self, steps: usize) -> Value {
        match self.identity() {
            Some(id) => json!({ "model": id.model, "options": id.options, "steps_done": steps }),
            None => json!({}),
        }
    }
    /// Checks that a checkpoint belongs to this run (same options) and
    /// returns the steps it has done.
    fn resume(&mut self, checkpoint: &Checkpoint, path: &Path) -> Result<usize> {
        match self.identity() {
            Some(id) => resume_with_options(
                checkpoint,
                path,
                id.model,
                id.what,
                &id.options,
                id.may_change,
                "steps_done",
            ),
            None => Err(format!("{}: this task cannot resume", path.display()).into()),
        }
    }
    /// The step a `metrics.jsonl` record belongs to (resuming drops the
    /// records after the checkpoint's step, and those with none).
    fn record_step(&self, record: &Value) -> Option<usize> {
        self.identity()?;
        Some(record["step"].as_u64()? as usize)
    }
    /// Whether checkpoints hold the frozen parameters too. Tasks that train
    /// adapters on a base loaded from elsewhere say no: their checkpoints
    /// then hold only what trains (megabytes, not the whole base), and a
    /// resume loads the base the same way first.
    fn checkpoint_frozen(&self) -> bool {
        true
    }
    /// The panels of `curves.png`, from the records so far (none: no file).
    fn curves(&self, _records: &[Value]) -> Vec<Panel<'static>> {
        Vec::new()
    }
}

/// How a task that keeps its options whole names its runs: the
/// checkpoint's `model` entry, what it is called in errors, its options (as
/// stored in checkpoints), those that may change on `--resume`, and the
/// run's length in steps.
pub struct RunIdentity {
    pub model: &'static str,
    pub what: &'static str,
    pub options: Value,
    pub may_change: &'static [&'static str],
    pub total_steps: usize,
}

impl Evaluated {
    /// The record and line, with the period's mean training loss added
    /// when there is one.
    pub fn with_train_loss(mut record: Value, mut line: String, p: &Period) -> Evaluated {
        if let Some(tl) = p.train_loss {
            record["train_loss"] = json!(tl);
            line.push_str(&format!(", train loss {tl:.4}"));
        }
        Evaluated {
            record,
            line: Some(line),
        }
    }
}

/// Checks options given as `(name, value)` are at least 1; the error names
/// the first that is not, as "`what` option `name` must be at least 1".
pub fn require_positive(what: &str, values: &[(&str, usize)]) -> Result<()> {
    match values.iter().find(|(_, v)| *v == 0) {
        Some((name, _)) => Err(format!("{what} option `{name}` must be at least 1").into()),
        None => Ok(()),
    }
}

/// What a task's [`Task::resume`] does when its options are stored whole
/// under `options` and its step count under `steps_key`: the checkpoint
/// must be this kind of model (`model`, called `what` in errors) and every
/// option but those in `may_change` must equal the stored one (each
/// difference is named with both values). Returns the steps done.
pub fn resume_with_options<O: serde::Serialize>(
    ck: &Checkpoint,
    path: &Path,
    model: &str,
    what: &str,
    options: &O,
    may_change: &[&str],
    steps_key: &str,
) -> Result<usize> {
    ck.expect_model(path, model, what)?;
    let stored = &ck.config["options"];
    if !stored.is_object() {
        return Err(format!("{}: no {what} options in the checkpoint", path.display()).into());
    }
    let now = serde_json::to_value(options)?;
    let differ = crate::gpt_run::changed_options(stored, &now, may_change);
    if !differ.is_empty() {
        return Err(format!(
            "{} was started with different options ({}); use the same ones or a new run directory",
            path.parent().unwrap_or(path).display(),
            differ.join(", ")
        )
        .into());
    }
    Ok(ck.config[steps_key].as_u64().unwrap_or(0) as usize)
}

/// Item `i` of a run that walks `n` items epoch after epoch, each epoch a
/// fresh shuffle from the seed, `purpose` and the epoch alone (so a
/// resumed run sees the same order).
pub fn epoch_item(seed: u64, purpose: u64, n: usize, i: usize) -> usize {
    let mut order: Vec<usize> = (0..n).collect();
    stream(seed, purpose, i / n).shuffle(&mut order);
    order[i % n]
}

/// The progress bar.
pub enum Bar {
    /// One bar per evaluation period, counting examples, prefixed
    /// "{label}epoch 3/12".
    PerEpoch {
        label: String,
        examples: u64,
        unit: &'static str,
    },
    /// One bar for the run, counting steps.
    Run { label: String, unit: &'static str },
}

/// How a run goes: its length, optimization and cadences.
pub struct Plan {
    pub total_steps: usize,
    /// Micro-batches per optimizer step (gradient accumulation).
    pub accum_steps: usize,
    pub schedule: LrSchedule,
    /// Clip gradients to this global L2 norm.
    pub grad_clip: Option<f32>,
    /// Evaluate (and checkpoint) every this many steps, and after the last.
    pub eval_every: usize,
    /// Also evaluate before the first step of a fresh run.
    pub eval_at_start: bool,
    pub seed: u64,
    /// Record `{key: step, "loss": loss}` every N steps.
    pub loss_records: Option<(&'static str, usize)>,
    /// Without a terminal, log a line every N steps (0: never).
    pub log_every: usize,
    /// What a step is called in log lines ("iter", "step").
    pub step_name: &'static str,
    pub bar: Bar,
    /// Update the bar's message every N steps.
    pub message_every: usize,
    /// Throughput unit and how many of them a row holds (`("tokens", T)`).
    pub throughput: (&'static str, usize),
}

/// When a run stops before its end, resumable: after `after` steps (or
/// epochs, as the caller counts) of this call, a stand-in for an
/// interruption in tests; or at the first step boundary after `flag` is
/// raised (the CLI raises it on SIGINT or SIGTERM).
#[derive(Clone, Copy, Default)]
pub struct StopWhen<'a> {
    pub after: Option<usize>,
    pub flag: Option<&'a AtomicBool>,
}

/// What a [`Trainer::run`] call did.
#[derive(Debug)]
pub struct Summary {
    /// Steps run by this call.
    pub steps: usize,
    pub train_seconds: f64,
    pub examples: usize,
    /// Every `metrics.jsonl` record of the run, including before a resume.
    pub records: Vec<Value>,
}

impl Summary {
    /// Throughput in `units` per second (`units_per_example` of them per example).
    pub fn per_sec(&self, units_per_example: usize) -> f64 {
        if self.train_seconds > 0.0 {
            (self.examples * units_per_example) as f64 / self.train_seconds
        } else {
            0.0
        }
    }
}

type RecordHook<'a> = Box<dyn FnMut(&Value) -> Result<()> + 'a>;

pub struct Trainer<'a> {
    plan: Plan,
    opt: Box<dyn Optimizer>,
    /// The optimizer's parameters in the model's order (the order gradient
    /// norms are summed in).
    params: Vec<Tensor>,
    dp: DataParallel,
    run: Option<&'a RunDir>,
    log: &'a dyn Fn(&str),
    on_record: Option<RecordHook<'a>>,
    start: usize,
    resumed: bool,
    records: Vec<Value>,
    /// Raised from outside (the CLI's SIGINT/SIGTERM handler): finish the
    /// current step, checkpoint, return an error saying how to resume.
    stop: Option<&'a AtomicBool>,
    /// The unfinished evaluation period's loss sum and examples at the
    /// checkpoint (a resume mid-period continues them, so its record is
    /// the uninterrupted run's).
    period: (f64, usize),
}

impl<'a> Trainer<'a> {
    /// A trainer for `model` with `opt` over (some of) its parameters; one
    /// data-parallel shard per thread. With a run directory it writes
    /// `metrics.jsonl`, checkpoints and `curves.png` there.
    pub fn new(
        plan: Plan,
        model: &dyn Module,
        opt: Box<dyn Optimizer>,
        run: Option<&'a RunDir>,
        log: &'a dyn Fn(&str),
    ) -> Result<Trainer<'a>> {
        for (what, v) in [
            ("steps", plan.total_steps),
            ("accumulation steps", plan.accum_steps),
            ("evaluation interval", plan.eval_every),
        ] {
            if v == 0 {
                return Err(format!("trainer: {what} must be at least 1").into());
            }
        }
        let trained: HashSet<usize> = opt.params().iter().map(Tensor::id).collect();
        let params: Vec<Tensor> = model
            .parameters()
            .into_iter()
            .filter(|p| trained.contains(&p.id()))
            .collect();
        if params.is_empty() {
            return Err("trainer: the optimizer has none of the model's parameters".into());
        }
        Ok(Trainer {
            plan,
            opt,
            params,
            dp: DataParallel::new(kindling_tensor::num_threads())?,
            run,
            log,
            on_record: None,
            start: 0,
            resumed: false,
            records: Vec::new(),
            stop: None,
            period: (0.0, 0),
        })
    }

    /// Stops the run at the first step boundary after `flag` is raised,
    /// checkpointing there (the library installs no signal handler: the
    /// caller raises the flag).
    pub fn stop_on(mut self, flag: &'a AtomicBool) -> Self {
        self.stop = Some(flag);
        self
    }

    /// How every run starts: on `--resume` the run directory's checkpoint
    /// is restored (after the task has checked it is this run's), then the
    /// run's `config.json` is written.
    pub fn begin<T: Task>(&mut self, task: &mut T, mode: RunMode, config: &Value) -> Result<()> {
        if mode == RunMode::Resume {
            self.resume(task)?;
        }
        let run = self.run.ok_or("trainer: a run needs a run directory")?;
        run.write_json("config.json", config)
    }

    /// [`Trainer::run`] until the end or until `stop` says (after `after`
    /// steps, or at the step boundary after its flag is raised).
    pub fn run_until<T: Task + Sync>(
        &mut self,
        task: &mut T,
        stop: StopWhen<'a>,
    ) -> Result<Summary> {
        if let Some(flag) = stop.flag {
            self.stop = Some(flag);
        }
        self.run(task, stop.after)
    }

    /// Calls `f` with each evaluation record as it is made (callers that
    /// keep their own files, e.g. fine-tuning's phases).
    pub fn on_record(mut self, f: impl FnMut(&Value) -> Result<()> + 'a) -> Self {
        self.on_record = Some(Box::new(f));
        self
    }

    /// The first step this call will run (after a resume, the checkpoint's).
    pub fn start(&self) -> usize {
        self.start
    }

    /// Restores the model, the optimizer state, the step count and the
    /// metrics so far from the run directory's checkpoint, after the task
    /// has checked it belongs to this run. No checkpoint yet: a fresh start.
    pub fn resume<T: Task>(&mut self, task: &mut T) -> Result<()> {
        let run = self.run.ok_or("`resume` needs a run directory")?;
        let path = run.source_file(CHECKPOINT);
        if !path.exists() {
            (self.log)(&format!(
                "`resume`: no checkpoint in {} yet; starting from scratch",
                run.path.display()
            ));
            return Ok(());
        }
        let ck = checkpoint::read(&path)?;
        let steps = task.resume(&ck, &path)?;
        if ck.config["trainer"]["frozen_saved"] == json!(false) {
            ck.load_trainable_into(task.model(), &path)?;
        } else {
            ck.load_into(task.model(), &path)?;
        }
        let state: HashMap<String, Tensor> = ck
            .tensors
            .iter()
            .filter_map(|(k, v)| k.strip_prefix("optim.").map(|s| (s.to_string(), v.clone())))
            .collect();
        self.opt.load_state(&state)?;
        self.start = steps.min(self.plan.total_steps);
        self.resumed = true;
        let trainer = &ck.config["trainer"];
        if trainer["steps_done"].as_u64() == Some(steps as u64) {
            let sum = trainer["period_loss_sum_bits"].as_u64().map(f64::from_bits);
            let seen = trainer["period_examples"].as_u64();
            if let (Some(sum), Some(seen)) = (sum, seen) {
                self.period = (sum, seen as usize);
            }
        }
        let threads = kindling_tensor::num_threads() * crate::distributed::size();
        let more = steps < self.plan.total_steps;
        if let Some(was) = trainer["threads"]
            .as_u64()
            .filter(|&t| more && t as usize != threads)
        {
            (self.log)(&format!(
                "note: this run trained with {was} threads and continues with {threads}: gradients are summed over other shards, so the result will differ from an uninterrupted run in the last digits"
            ));
        }
        self.records = run
            .read_metrics()?
            .into_iter()
            .filter(|m| task.record_step(m).is_some_and(|s| s <= steps))
            .collect();
        (self.log)(&format!(
            "resuming {} after {}",
            run.path.display(),
            task.describe(steps)
        ));
        if steps >= self.plan.total_steps {
            (self.log)(&format!(
                "{} has already finished ({}): nothing left to train; resume with more epochs or iterations to extend it",
                run.path.display(),
                task.describe(steps)
            ));
        }
        Ok(())
    }

    /// One optimizer step: the step's micro-batches, each forward and
    /// backward spread over the shards with its loss weighted so that the
    /// accumulated gradient is the whole step's mean; clipping; the update.
    /// Returns the step's mean loss and its examples.
    pub fn step<T: Task + Sync>(&mut self, task: &mut T, step: usize) -> Result<(f32, usize)> {
        let seed = self.plan.seed;
        let mut rng = stream(seed, BATCH_STREAM, step);
        let batches = (0..self.plan.accum_steps)
            .map(|m| task.batch(step, m, &mut rng))
            .collect::<Result<Vec<_>>>()?;
        let task: &T = task;
        let step_rows: usize = batches.iter().map(|b| task.rows(b)).sum();
        let examples: usize = batches.iter().map(|b| task.examples(b)).sum();
        self.opt.set_lr(self.plan.schedule.lr_at(step));
        self.opt.zero_grad();
        let mut loss = 0f32;
        // In a distributed job this rank takes its equal part of each
        // micro-batch; shards are numbered across ranks, so each row meets
        // the dropout stream it would in one process with all the threads.
        let collective = crate::distributed::get().filter(|c| c.size() > 1);
        let (rank, ranks) = collective.map_or((0, 1), |c| (c.rank(), c.size()));
        let shards = self.dp.shards();
        for (m, b) in batches.iter().enumerate() {
            let rows = task.rows(b);
            if rows % ranks != 0 {
                return Err(format!(
                    "a batch of {rows} rows does not divide among {ranks} ranks: make `batch_size` a multiple of {ranks}"
                )
                .into());
            }
            let part = (rank * rows / ranks, rows / ranks);
            loss +=
                self.dp
                    .accumulate_part(part, step_rows, &self.params, |shard, start, len| {
                        let shard = rank * shards + shard;
                        let purpose = DROPOUT_STREAM + 1000 * shard as u64 + 1_000_000 * m as u64;
                        task.loss(b, start, len, &mut stream(seed, purpose, step))
                    })?;
        }
        if let Some(c) = collective {
            crate::distributed::all_reduce_gradients(c, &self.params)?;
            let mut l = [loss];
            c.all_reduce_sum(&mut l)?;
            loss = l[0];
        }
        if !loss.is_finite() {
            return Err(format!(
                "non-finite loss ({loss}) at step {step} ({} done); stopping (a lower `lr` may help)",
                task.describe(step)
            )
            .into());
        }
        if let Some(max_norm) = self.plan.grad_clip {
            clip_grad_norm(&self.params, max_norm)?;
        }
        self.opt.step()?;
        task.after_update()?;
        Ok((loss, examples))
    }

    /// Runs from the start step to the end, or for `stop_after` steps (then
    /// saves and returns an error saying so: the run stays resumable).
    pub fn run<T: Task + Sync>(
        &mut self,
        task: &mut T,
        stop_after: Option<usize>,
    ) -> Result<Summary> {
        let (start, total) = (self.start, self.plan.total_steps);
        let end = stop_after.map_or(total, |k| (start + k).min(total));
        let terminal = std::io::stderr().is_terminal();
        let epochs = total.div_ceil(self.plan.eval_every);
        let mut pb: Option<ProgressBar> = match &self.plan.bar {
            Bar::Run { label, unit } => Some(bar((total - start) as u64, label.clone(), unit)),
            Bar::PerEpoch { .. } => None,
        };
        let (mut loss_sum, mut seen, mut period_seconds) = (self.period.0, self.period.1, 0f64);
        let (mut train_seconds, mut examples) = (0f64, 0usize);
        let mut saved_at = None;
        let mut s = start;
        loop {
            let fresh_start = s == start && !self.resumed && self.plan.eval_at_start;
            if (s > start || fresh_start) && (s % self.plan.eval_every == 0 || s == total) {
                if let (Bar::PerEpoch { .. }, Some(b)) = (&self.plan.bar, pb.take()) {
                    b.finish_and_clear();
                }
                let period = Period {
                    step: s,
                    train_loss: (seen > 0).then(|| loss_sum / seen as f64),
                    examples: seen,
                    seconds: period_seconds,
                    lr: self.opt.lr(),
                };
                let ev = task.evaluate(&period)?;
                if let Some(line) = &ev.line {
                    match &pb {
                        Some(b) => b.suspend(|| (self.log)(line)),
                        None => (self.log)(line),
                    }
                }
                if let Some(f) = self.on_record.as_mut() {
                    f(&ev.record)?;
                }
                self.records.push(ev.record);
                (loss_sum, seen, period_seconds) = (0.0, 0, 0.0);
                if s > start {
                    self.period = (0.0, 0);
                    self.save(task, s)?;
                    saved_at = Some(s);
                }
            }
            let mut stopped = self.stop.is_some_and(|f| f.load(Ordering::SeqCst));
            // Every rank stops at the same step, or one would wait forever.
            if let Some(c) = crate::distributed::get().filter(|c| c.size() > 1) {
                stopped = c.all_reduce_max(u64::from(stopped))? == 1;
            }
            if s == end || stopped {
                break;
            }
            if pb.is_none() {
                if let Bar::PerEpoch {
                    label,
                    examples,
                    unit,
                } = &self.plan.bar
                {
                    let epoch = s / self.plan.eval_every + 1;
                    pb = Some(bar(
                        *examples,
                        format!("{label}epoch {epoch}/{epochs}"),
                        unit,
                    ));
                }
            }
            let t0 = Instant::now();
            let (loss, n) = self.step(task, s)?;
            let dt = t0.elapsed().as_secs_f64();
            (loss_sum, seen, period_seconds) = (
                loss_sum + loss as f64 * n as f64,
                seen + n,
                period_seconds + dt,
            );
            (train_seconds, examples) = (train_seconds + dt, examples + n);
            if let Some(b) = &pb {
                b.inc(match self.plan.bar {
                    Bar::PerEpoch { .. } => n as u64,
                    Bar::Run { .. } => 1,
                });
            }
            let (unit, per_example) = self.plan.throughput;
            let rate = (examples * per_example) as f64 / train_seconds.max(1e-9);
            if s % self.plan.message_every.max(1) == 0 {
                if let Some(b) = &pb {
                    b.set_message(format!(
                        "loss {:.4}, {} {unit}/s",
                        loss_sum / seen.max(1) as f64,
                        crate::progress::rate(rate)
                    ));
                }
            }
            if let Some((key, every)) = self.plan.loss_records {
                if s % every.max(1) == 0 {
                    self.records.push(json!({ key: s, "loss": loss }));
                }
            }
            if self.plan.log_every > 0 && s % self.plan.log_every == 0 && !terminal {
                (self.log)(&format!(
                    "{} {s:>5}: loss {loss:.4}, {} {unit}/s",
                    self.plan.step_name,
                    crate::progress::rate(rate)
                ));
            }
            s += 1;
        }
        if let Some(b) = pb {
            b.finish_and_clear();
        }
        if s < total {
            if saved_at != Some(s) {
                self.period = (loss_sum, seen);
                self.save(task, s)?;
            }
            let dir = self
                .run
                .map_or(String::new(), |r| format!(" in {}", r.path.display()));
            let why = if s < end {
                "interrupted"
            } else {
                "stopped as asked"
            };
            return Err(format!(
                "{why} after {}; the checkpoint{dir} holds it: continue with `resume`",
                task.describe(s)
            )
            .into());
        }
        Ok(Summary {
            steps: end - start,
            train_seconds,
            examples,
            records: self.records.clone(),
        })
    }

    /// Metrics, then the checkpoint (model, optimizer state, the task's
    /// metadata and the step count that keys the RNG streams), then the
    /// curves. Metrics first: a crash between the two leaves extra lines,
    /// which a resume drops, never a checkpoint ahead of its metrics.
    fn save<T: Task>(&self, task: &T, steps: usize) -> Result<()> {
        let Some(run) = self.run else {
            return Ok(());
        };
        // In a distributed job rank 0 alone writes (all ranks hold the same model).
        if !crate::distributed::is_writer() {
            return Ok(());
        }
        let mut extra: Vec<(String, Tensor)> = self
            .opt
            .state()
            .into_iter()
            .map(|(k, v)| (format!("optim.{k}"), v))
            .collect();
        extra.sort_by(|a, b| a.0.cmp(&b.0));
        let mut meta = task.checkpoint_meta(steps);
        if let Some(m) = meta.as_object_mut() {
            m.insert(
                "trainer".into(),
                json!({
                    "steps_done": steps,
                    "seed": self.plan.seed,
                    "accum_steps": self.plan.accum_steps,
                    "frozen_saved": task.checkpoint_frozen(),
                    // Shards in all: threads on every rank.
                    "threads": kindling_tensor::num_threads() * crate::distributed::size(),
                    // Bits: a JSON float need not read back exactly.
                    "period_loss_sum_bits": self.period.0.to_bits(),
                    "period_examples": self.period.1,
                }),
            );
        }
        run.write_metrics(&self.records)?;
        let mut tensors = if task.checkpoint_frozen() {
            task.model().named_parameters()
        } else {
            task.model().named_trainable_parameters()
        };
        // Buffers (batch norm's running statistics) are state a resume needs.
        tensors.extend(task.model().named_buffers());
        tensors.extend(extra);
        checkpoint::save_tensors(&run.file(CHECKPOINT), &tensors, &meta)?;
        let panels = task.curves(&self.records);
        if !panels.is_empty() {
            save_panels(&run.file("curves.png"), &panels)
                .map_err(|e| format!("curves.png: {e}"))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kindling_nn::optim::{Sgd, SgdConfig};

    /// Least squares on a fixed linear map: `w` (4x1) fits 32 rows, drawn
    /// in order from the step's batch stream.
    struct LinearFit {
        w: Tensor,
        x: Tensor,
        y: Tensor,
        rows: usize,
        scale: f32,
    }

    impl LinearFit {
        fn new(rows: usize) -> LinearFit {
            let mut rng = Rng::new(5);
            let x = Tensor::randn(&[32, 4], 0.0, 1.0, &mut rng);
            let y = x
                .matmul(&Tensor::from_vec(vec![1.0, -2.0, 0.5, 3.0], &[4, 1]).unwrap())
                .unwrap();
            LinearFit {
                w: Tensor::zeros(&[4, 1]).requires_grad_(true),
                x,
                y,
                rows,
                scale: 1.0,
            }
        }
    }

    impl Module for LinearFit {
        fn forward(&self, x: &Tensor) -> kindling_tensor::Result<Tensor> {
            x.matmul(&self.w)
        }
        fn visit_parameters(&self, prefix: &str, f: &mut dyn FnMut(String, &Tensor)) {
            f(kindling_nn::module::join_name(prefix, "w"), &self.w);
        }
    }

    impl Task for LinearFit {
        type Batch = Vec<usize>;
        fn model(&self) -> &dyn Module {
            self
        }
        fn batch(&mut self, _step: usize, _micro: usize, rng: &mut Rng) -> Result<Vec<usize>> {
            Ok((0..self.rows).map(|_| rng.below(32)).collect())
        }
        fn rows(&self, batch: &Vec<usize>) -> usize {
            batch.len()
        }
        fn loss(
            &self,
            batch: &Vec<usize>,
            start: usize,
            len: usize,
            _rng: &mut Rng,
        ) -> kindling_tensor::Result<Tensor> {
            let pick = |t: &Tensor| -> kindling_tensor::Result<Tensor> {
                let v = t.to_vec_f32()?;
                let rows: Vec<f32> = batch[start..start + len]
                    .iter()
                    .flat_map(|&i| v[i * t.shape()[1]..(i + 1) * t.shape()[1]].to_vec())
                    .collect();
                Tensor::from_vec(rows, &[len, t.shape()[1]])
            };
            self.forward(&pick(&self.x)?)?
                .mse_loss(&pick(&self.y)?)?
                .affine(self.scale, 0.0)
        }
        fn evaluate(&mut self, p: &Period) -> Result<Evaluated> {
            Ok(Evaluated {
                record: json!({ "step": p.step, "train_loss": p.train_loss }),
                line: None,
            })
        }
        fn describe(&self, steps: usize) -> String {
            format!("step {steps}")
        }
    }

    fn plan(accum_steps: usize, total_steps: usize) -> Plan {
        Plan {
            total_steps,
            accum_steps,
            schedule: LrSchedule::Constant { lr: 0.05 },
            grad_clip: Some(10.0),
            eval_every: 2,
            eval_at_start: true,
            seed: 9,
            loss_records: Some(("step", 1)),
            log_every: 0,
            step_name: "step",
            bar: Bar::Run {
                label: "test".into(),
                unit: "it",
            },
            message_every: 1,
            throughput: ("rows", 1),
        }
    }

    fn train(rows: usize, accum_steps: usize) -> (Vec<f32>, Vec<Value>) {
        let mut task = LinearFit::new(rows);
        let opt = Box::new(Sgd::new(
            vec![task.w.clone()],
            SgdConfig {
                lr: 0.05,
                momentum: 0.0,
                nesterov: false,
                weight_decay: 0.0,
            },
        ));
        let quiet = |_: &str| {};
        let mut trainer = Trainer::new(plan(accum_steps, 5), &task, opt, None, &quiet).unwrap();
        let summary = trainer.run(&mut task, None).unwrap();
        (task.w.to_vec_f32().unwrap(), summary.records)
    }

    #[test]
    fn accumulated_micro_batches_equal_one_big_batch() {
        let (big, big_records) = train(12, 1);
        let (accum, accum_records) = train(4, 3);
        for (a, b) in accum.iter().zip(&big) {
            assert!((a - b).abs() < 1e-5, "{accum:?} vs {big:?}");
        }
        // Evaluations before step 0, after 2, after 4 and after the last (5).
        let evals = |r: &[Value]| r.iter().filter(|r| r.get("train_loss").is_some()).count();
        assert_eq!((evals(&big_records), evals(&accum_records)), (4, 4));
        let loss = |r: &[Value]| {
            r.iter()
                .filter_map(|r| r["loss"].as_f64())
                .collect::<Vec<_>>()
        };
        for (a, b) in loss(&accum_records).iter().zip(loss(&big_records)) {
            assert!((a - b).abs() < 1e-5, "step losses {a} vs {b}");
        }
    }

    #[test]
    fn a_non_finite_loss_stops_the_run_naming_the_step() {
        let mut task = LinearFit::new(8);
        task.scale = f32::NAN;
        let opt = Box::new(Sgd::new(vec![task.w.clone()], SgdConfig::default()));
        let quiet = |_: &str| {};
        let mut trainer = Trainer::new(plan(1, 5), &task, opt, None, &quiet).unwrap();
        let err = trainer.run(&mut task, None).unwrap_err().to_string();
        assert!(err.contains("step 0") && err.contains("NaN"), "{err}");
        assert_eq!(task.w.to_vec_f32().unwrap(), vec![0.0; 4], "no update");
    }

    #[test]
    fn streams_differ_by_purpose_and_step_and_repeat_for_the_same_key() {
        let draw = |p, s| stream(1, p, s).next_u64();
        assert_eq!(draw(BATCH_STREAM, 3), draw(BATCH_STREAM, 3));
        assert_ne!(draw(BATCH_STREAM, 3), draw(BATCH_STREAM, 4));
        assert_ne!(draw(BATCH_STREAM, 3), draw(DROPOUT_STREAM, 3));
    }
}
