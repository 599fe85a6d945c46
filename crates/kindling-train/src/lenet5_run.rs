//! Training LeNet-5 on MNIST: the 55,000 / 5,000 split for training and
//! validation, the 10,000 test images scored once at the end. The training
//! loop's [`DigitTask`] with a run directory: each epoch writes a
//! checkpoint (model + optimizer state) atomically, so `--resume` picks up
//! after the last finished epoch and ends at the same result.

use crate::classify::evaluate;
use crate::fgsm;
use crate::fit::{cosine_schedule, make_optimizer, DigitBatch, DigitTask, FitOptions, Resumable};
use crate::run_dir::RunDir;
use crate::trainer::{Plan, StopWhen, Trainer};
use crate::Result;
use kindling_data::{Batches, DigitSet, Normalize, Order};
use kindling_models::lenet5::{LeNet5, LeNet5Config};
use kindling_nn::schedule::LrSchedule;
use kindling_nn::{checkpoint, Module};
use kindling_tensor::Rng;
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::path::Path;
use std::time::Instant;

pub use crate::trainer::CHECKPOINT;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainOptions {
    pub epochs: usize,
    pub batch_size: usize,
    pub lr: f32,
    /// "adam" or "sgd" (momentum 0.9).
    pub optimizer: String,
    pub seed: u64,
    pub model: LeNet5Config,
    /// Adversarial training: each batch is followed by its FGSM copy at this
    /// ε (pixel units of [0, 1]), crafted against the current model.
    #[serde(default)]
    pub adversarial_eps: Option<f32>,
    /// `--limit`: only the first N training images (N/10 validation and
    /// test), stored so that a resumed run reads the same slices.
    #[serde(default)]
    pub limit: Option<usize>,
    /// `--data`: the MNIST directory given, if any (else the default).
    #[serde(default)]
    pub data: Option<std::path::PathBuf>,
}

impl Default for TrainOptions {
    fn default() -> Self {
        TrainOptions {
            epochs: 12,
            batch_size: 64,
            lr: 2e-3,
            optimizer: "adam".into(),
            seed: 0,
            model: LeNet5Config::default(),
            adversarial_eps: None,
            limit: None,
            data: None,
        }
    }
}

impl TrainOptions {
    pub fn validate(&self) -> Result<()> {
        self.fit_options().check("lr", "optimizer")?;
        if let Some(eps) = self.adversarial_eps {
            fgsm::check_eps(eps).map_err(|e| format!("`adversarial_eps`: {e}"))?;
        }
        Ok(())
    }
}

pub struct Outcome {
    pub params: usize,
    pub epochs: usize,
    pub test_accuracy: f32,
    pub val_accuracy: f32,
    pub train_images_per_sec: f32,
    pub seconds: f32,
    /// Steps this call trained (0: the run had already finished).
    pub steps_trained: usize,
}

impl TrainOptions {
    fn fit_options(&self) -> FitOptions {
        FitOptions {
            epochs: self.epochs,
            batch_size: self.batch_size,
            lr: self.lr,
            optimizer: self.optimizer.clone(),
            seed: self.seed,
        }
    }
}

/// Cosine decay from `lr` to `lr / 100` over the whole run.
pub fn schedule(opts: &TrainOptions, steps_per_epoch: usize) -> LrSchedule {
    cosine_schedule(opts.lr, opts.epochs * steps_per_epoch)
}

/// Loads a LeNet-5 checkpoint written by `train`, checking it is one.
pub fn load_model(path: &Path) -> Result<(LeNet5, checkpoint::Checkpoint)> {
    let ck = checkpoint::read(path)?;
    ck.expect_model(path, "lenet5", "LeNet-5")?;
    let config: LeNet5Config = serde_json::from_value(ck.config["lenet5"].clone())
        .map_err(|e| format!("{}: bad `lenet5` config in metadata: {e}", path.display()))?;
    let model = LeNet5::new(config, &mut Rng::new(0))?;
    ck.load_into(&model, path)?;
    Ok((model, ck))
}

pub struct Splits<'a> {
    pub train: &'a DigitSet,
    pub val: &'a DigitSet,
    pub test: &'a DigitSet,
}

/// Trains (or resumes) a run in `dir`; `log` receives one line per epoch.
/// `stop.after` counts epochs of this call.
pub fn train(
    opts: &TrainOptions,
    dir: &Path,
    mode: impl Into<crate::run_dir::RunMode>,
    stop: StopWhen,
    data: &Splits,
    log: &dyn Fn(&str),
) -> Result<Outcome> {
    opts.validate()?;
    opts.fit_options().check_batch(data.train.len())?;
    let mode = mode.into();
    let run = RunDir::start(dir, mode)?;
    let model = LeNet5::new(opts.model.clone(), &mut Rng::new(opts.seed))?;
    let fit = opts.fit_options();
    let mut task = DigitTask::new(&model, data.train, Some(data.val), &fit);
    task.adversarial_eps = opts.adversarial_eps;
    task.announce = true;
    task.resumable = Some(Resumable {
        meta: json!({ "model": "lenet5", "lenet5": opts.model, "options": opts }),
        // More epochs may extend a run; everything else must match.
        differences: |stored, now| crate::gpt_run::changed_options(stored, now, &["epochs"]),
    });
    let opt = make_optimizer(&opts.optimizer, opts.lr, model.named_trainable_parameters())?;
    let plan = fit.plan(data.train.len(), "", 200);
    let steps_per_epoch = plan.eval_every;
    let mut trainer = Trainer::new(plan, &model, opt, Some(&run), log)?;
    trainer.begin(&mut task, mode, &serde_json::to_value(opts)?)?;
    let started = Instant::now();
    let summary = trainer.run_until(
        &mut task,
        crate::trainer::StopWhen {
            after: stop.after.map(|k| k * steps_per_epoch),
            flag: stop.flag,
        },
    )?;
    let test = evaluate(&model, data.test, 10, Normalize::MNIST)?;
    log(&format!(
        "test accuracy {:.2}% on {} images (scored once, after training)",
        test.accuracy * 100.0,
        data.test.len()
    ));
    let val_accuracy = summary
        .records
        .last()
        .and_then(|m| m["val_accuracy"].as_f64())
        .unwrap_or(0.0) as f32;
    let outcome = Outcome {
        params: model.num_parameters(),
        epochs: opts.epochs,
        test_accuracy: test.accuracy,
        val_accuracy,
        train_images_per_sec: summary.per_sec(1) as f32,
        steps_trained: summary.steps,
        seconds: started.elapsed().as_secs_f32(),
    };
    let mut all = summary.records;
    all.push(json!({ "split": "test", "test_loss": test.loss, "test_accuracy": test.accuracy }));
    run.write_metrics(&all)?;
    Ok(outcome)
}

/// Peak resident memory of this process in MiB (Linux `VmHWM`).
pub fn peak_rss_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

pub struct BenchResult {
    pub train_images_per_sec: f64,
    pub ms_per_step: f64,
    pub peak_rss_mb: f64,
}

/// Training throughput on pre-built batches (data loading not timed, as in
/// bench/pytorch/lenet5.py): `warmup` untimed steps, then `steps` timed,
/// each through the training loop's step.
pub fn bench(
    opts: &TrainOptions,
    set: &DigitSet,
    steps: usize,
    warmup: usize,
) -> Result<BenchResult> {
    opts.validate()?;
    let model = LeNet5::new(opts.model.clone(), &mut Rng::new(opts.seed))?;
    let opt = make_optimizer(&opts.optimizer, opts.lr, model.named_trainable_parameters())?;
    let order = Order::Shuffled {
        seed: opts.seed,
        epoch: 0,
    };
    let batches: Vec<DigitBatch> =
        Batches::new(set, opts.batch_size, order, true, Normalize::MNIST)?
            .take(steps.min(200))
            .map(|(x, y)| {
                let n = y.numel();
                (x, y, n)
            })
            .collect();
    if batches.is_empty() {
        return Err("bench: not enough images for one batch".into());
    }
    let fit = opts.fit_options();
    let mut task = DigitTask::new(&model, set, None, &fit);
    task.fixed = batches;
    let plan = Plan {
        eval_every: usize::MAX,
        ..fit.plan(set.len(), "", 0)
    };
    let quiet = |_: &str| {};
    let mut trainer = Trainer::new(plan, &model, opt, None, &quiet)?;
    for i in 0..warmup {
        trainer.step(&mut task, i)?;
    }
    let t0 = Instant::now();
    for i in 0..steps {
        trainer.step(&mut task, i)?;
    }
    let dt = t0.elapsed().as_secs_f64();
    Ok(BenchResult {
        train_images_per_sec: (steps * opts.batch_size) as f64 / dt,
        ms_per_step: dt * 1000.0 / steps as f64,
        peak_rss_mb: peak_rss_mb().unwrap_or(0.0),
    })
}
