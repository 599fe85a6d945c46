//! Fitting a digit classifier: the [`DigitTask`] the training loop runs for
//! LeNet-5 on MNIST, fine-tuning and the sweep (shuffled mini-batches of a
//! [`DigitSet`], cross-entropy, optional FGSM adversarial copies, validation
//! after each epoch), the optimizer they choose from (Adam or SGD with
//! momentum 0.9) and their schedule (cosine decay from `lr` to `lr / 100`).
//! [`fit`] runs it without a run directory, for fine-tuning and the sweep.

use crate::classify::evaluate;
use crate::fgsm;
use crate::plot::{Panel, Series};
use crate::trainer::{Bar, Evaluated, Period, Plan, Task, Trainer};
use crate::Result;
use kindling_data::{Batches, DigitSet, Normalize, Order};
use kindling_models::lenet5::LeNet5;
use kindling_nn::checkpoint::Checkpoint;
use kindling_nn::optim::{Adam, AdamConfig, Optimizer, Sgd, SgdConfig};
use kindling_nn::schedule::LrSchedule;
use kindling_nn::Module;
use kindling_tensor::{Rng, Tensor};
use plotters::style::{BLUE, RED};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::path::Path;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FitOptions {
    pub epochs: usize,
    pub batch_size: usize,
    /// Peak learning rate, cosine-decayed to 1% of it by the last step.
    pub lr: f32,
    /// "adam" or "sgd" (momentum 0.9).
    pub optimizer: String,
    /// Seeds the batch order of every epoch.
    pub seed: u64,
}

impl FitOptions {
    pub fn validate(&self) -> Result<()> {
        self.check("lr", "optimizer")
    }

    /// [`validate`](Self::validate), naming the learning rate and the
    /// optimizer as the options (fields) `lr` and `optimizer` of the caller.
    pub fn check(&self, lr: &'static str, optimizer: &'static str) -> Result<()> {
        if self.epochs == 0 {
            return Err(crate::Error::option("epochs", "must be at least 1"));
        }
        if self.batch_size == 0 {
            return Err(crate::Error::option("batch_size", "must be at least 1"));
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return Err(crate::Error::option(
                lr,
                format!("must be a positive number, got {}", self.lr),
            ));
        }
        if !matches!(self.optimizer.as_str(), "adam" | "sgd") {
            return Err(crate::Error::option(
                optimizer,
                format!("must be adam or sgd, got `{}`", self.optimizer),
            ));
        }
        Ok(())
    }

    /// Refuses a batch larger than the training set: every "batch" would be
    /// the whole set, which is not what the flag asked for.
    pub fn check_batch(&self, train_images: usize) -> Result<()> {
        if self.batch_size > train_images {
            return Err(format!(
                "`batch_size` {} is larger than the training set ({train_images} images)",
                self.batch_size
            )
            .into());
        }
        Ok(())
    }

    /// The training loop's plan: an epoch per evaluation period, cosine
    /// decay over the whole run, one bar per epoch labelled `label`.
    pub fn plan(&self, train_images: usize, label: &str, log_every: usize) -> Plan {
        let steps_per_epoch = train_images.div_ceil(self.batch_size);
        Plan {
            total_steps: self.epochs * steps_per_epoch,
            accum_steps: 1,
            schedule: cosine_schedule(self.lr, self.epochs * steps_per_epoch),
            grad_clip: None,
            eval_every: steps_per_epoch,
            eval_at_start: false,
            seed: self.seed,
            loss_records: None,
            log_every,
            step_name: "step",
            bar: Bar::PerEpoch {
                label: label.to_string(),
                examples: train_images as u64,
                unit: "img",
            },
            message_every: 20,
            throughput: ("images", 1),
        }
    }
}

/// Cosine decay from `lr` to `lr / 100` over `total` steps.
pub fn cosine_schedule(lr: f32, total: usize) -> LrSchedule {
    LrSchedule::WarmupCosine {
        lr,
        min_lr: lr * 0.01,
        warmup: 0,
        total,
    }
}

/// What one epoch of [`fit`] measured.
#[derive(Clone, Debug, PartialEq)]
pub struct EpochRecord {
    /// 1-based.
    pub epoch: usize,
    pub train_loss: f32,
    /// `None` when no validation set was given.
    pub val_loss: Option<f32>,
    pub val_accuracy: Option<f32>,
    /// The learning rate of the epoch's last step.
    pub lr: f32,
    pub train_images_per_sec: f32,
    pub seconds: f32,
}

impl EpochRecord {
    pub fn to_json(&self) -> Value {
        json!({
            "epoch": self.epoch,
            "train_loss": self.train_loss,
            "val_loss": self.val_loss,
            "val_accuracy": self.val_accuracy,
            "lr": self.lr,
            "images_per_sec": self.train_images_per_sec,
            "seconds": self.seconds,
        })
    }

    /// From a [`DigitTask`] record (same fields, in f64).
    pub fn from_record(r: &Value) -> EpochRecord {
        let f = |k: &str| r[k].as_f64().map(|v| v as f32);
        EpochRecord {
            epoch: r["epoch"].as_u64().unwrap_or(0) as usize,
            train_loss: f("train_loss").unwrap_or(f32::NAN),
            val_loss: f("val_loss"),
            val_accuracy: f("val_accuracy"),
            lr: f("lr").unwrap_or(0.0),
            train_images_per_sec: f("images_per_sec").unwrap_or(0.0),
            seconds: f("seconds").unwrap_or(0.0),
        }
    }
}

/// Adam (PyTorch's defaults) or SGD with momentum 0.9 over the named
/// `params` (their state is keyed by these names).
pub fn make_optimizer(
    name: &str,
    lr: f32,
    params: Vec<(String, Tensor)>,
) -> Result<Box<dyn Optimizer>> {
    match name {
        "adam" => Ok(Box::new(Adam::named(params, AdamConfig::adam(lr)))),
        "sgd" => Ok(Box::new(Sgd::named(
            params,
            SgdConfig {
                lr,
                momentum: 0.9,
                nesterov: false,
                weight_decay: 0.0,
            },
        ))),
        other => Err(format!("optimizer must be adam or sgd, got `{other}`").into()),
    }
}

/// How a [`DigitTask`] run is checkpointed and recognised on `--resume`.
pub struct Resumable {
    /// The checkpoint's metadata but the step count (`epochs_done` is added).
    pub meta: Value,
    /// The options that differ between a checkpoint's stored `options` and
    /// the run's (`meta["options"]`), as flags with both values; none: the
    /// same run.
    pub differences: fn(stored: &Value, now: &Value) -> Vec<String>,
}

/// Classifying digits: a LeNet-5 on shuffled mini-batches of a digit set,
/// cross-entropy, validation after every epoch.
pub struct DigitTask<'a> {
    pub model: &'a LeNet5,
    pub train: &'a DigitSet,
    pub val: Option<&'a DigitSet>,
    pub batch_size: usize,
    pub epochs: usize,
    /// Seeds the batch order of every epoch (with the epoch number).
    pub seed: u64,
    /// Each batch is followed by its FGSM copy at this ε, crafted against
    /// the current model.
    pub adversarial_eps: Option<f32>,
    pub normalize: Normalize,
    /// Log a line per epoch ("epoch  3/12: train loss ...").
    pub announce: bool,
    pub resumable: Option<Resumable>,
    /// Pre-built batches to cycle through instead of the epochs of `train`
    /// (the benchmark's: data loading not timed).
    pub fixed: Vec<DigitBatch>,
    /// The epoch being read, and the index of its next batch.
    cursor: Option<(usize, usize, Batches<'a>)>,
}

impl<'a> DigitTask<'a> {
    pub fn new(
        model: &'a LeNet5,
        train: &'a DigitSet,
        val: Option<&'a DigitSet>,
        opts: &FitOptions,
    ) -> DigitTask<'a> {
        DigitTask {
            model,
            train,
            val,
            batch_size: opts.batch_size,
            epochs: opts.epochs,
            seed: opts.seed,
            adversarial_eps: None,
            normalize: Normalize::MNIST,
            announce: false,
            resumable: None,
            fixed: Vec::new(),
            cursor: None,
        }
    }

    fn steps_per_epoch(&self) -> usize {
        self.train.len().div_ceil(self.batch_size).max(1)
    }
}

/// Mean cross-entropy of `model` on rows `start..start + len`.
pub fn digit_loss(
    model: &LeNet5,
    images: &Tensor,
    targets: &Tensor,
    start: usize,
    len: usize,
) -> kindling_tensor::Result<Tensor> {
    model
        .forward(&images.narrow(0, start, len)?)?
        .cross_entropy(&targets.narrow(0, start, len)?, None)
}

/// (images, targets, clean images counted).
pub type DigitBatch = (Tensor, Tensor, usize);

impl Task for DigitTask<'_> {
    type Batch = DigitBatch;

    fn model(&self) -> &dyn Module {
        self.model
    }

    fn batch(&mut self, step: usize, _micro: usize, _rng: &mut Rng) -> Result<DigitBatch> {
        if !self.fixed.is_empty() {
            return Ok(self.fixed[step % self.fixed.len()].clone());
        }
        let spe = self.steps_per_epoch();
        let (epoch, index) = (step / spe, step % spe);
        if !matches!(&self.cursor, Some((e, i, _)) if (*e, *i) == (epoch, index)) {
            let order = Order::Shuffled {
                seed: self.seed,
                epoch: epoch as u64,
            };
            let mut batches =
                Batches::new(self.train, self.batch_size, order, false, self.normalize)?;
            if index > 0 {
                batches.nth(index - 1);
            }
            self.cursor = Some((epoch, index, batches));
        }
        let (_, next, batches) = self.cursor.as_mut().expect("set just above");
        *next += 1;
        let (images, labels) = batches
            .next()
            .ok_or_else(|| format!("epoch {} has no batch {index}", epoch + 1))?;
        let examples = labels.numel();
        let (images, targets) = match self.adversarial_eps {
            Some(eps) => {
                fgsm::clean_and_adversarial(self.model, &images, &labels, eps, self.normalize)?
            }
            None => (images, labels),
        };
        Ok((images, targets, examples))
    }

    fn rows(&self, batch: &DigitBatch) -> usize {
        batch.0.shape()[0]
    }

    fn examples(&self, batch: &DigitBatch) -> usize {
        batch.2
    }

    fn loss(
        &self,
        b: &DigitBatch,
        start: usize,
        len: usize,
        _rng: &mut Rng,
    ) -> kindling_tensor::Result<Tensor> {
        digit_loss(self.model, &b.0, &b.1, start, len)
    }

    fn evaluate(&mut self, p: &Period) -> Result<Evaluated> {
        let epoch = p.step.div_ceil(self.steps_per_epoch());
        let val = self
            .val
            .map(|v| evaluate(self.model, v, 10, self.normalize))
            .transpose()?;
        let train_loss = p.train_loss.unwrap_or(f64::NAN);
        let images_per_sec = p.examples as f64 / p.seconds.max(1e-9);
        let record = json!({
            "epoch": epoch,
            "train_loss": train_loss,
            "val_loss": val.as_ref().map(|v| v.loss),
            "val_accuracy": val.as_ref().map(|v| v.accuracy),
            "lr": p.lr,
            "images_per_sec": images_per_sec,
            "seconds": p.seconds,
        });
        let line = self.announce.then(|| {
            format!(
                "epoch {epoch:>2}/{}: train loss {train_loss:.4}{}, {} images/s",
                self.epochs,
                val.as_ref().map_or(String::new(), |v| format!(
                    ", val loss {:.4}, val accuracy {:.2}%",
                    v.loss,
                    v.accuracy * 100.0
                )),
                crate::progress::rate(images_per_sec)
            )
        });
        Ok(Evaluated { record, line })
    }

    fn describe(&self, steps: usize) -> String {
        let (spe, epochs) = (self.steps_per_epoch(), self.epochs);
        match (steps / spe, steps % spe) {
            (e, 0) => format!("epoch {e} of {epochs}"),
            (e, k) => format!("{k} of {spe} batches into epoch {} of {epochs}", e + 1),
        }
    }

    fn checkpoint_meta(&self, steps: usize) -> Value {
        let mut meta = self
            .resumable
            .as_ref()
            .map_or(json!({}), |r| r.meta.clone());
        meta["epochs_done"] = json!(steps / self.steps_per_epoch());
        meta
    }

    fn resume(&mut self, ck: &Checkpoint, path: &Path) -> Result<usize> {
        let r = self
            .resumable
            .as_ref()
            .ok_or_else(|| format!("{}: this run cannot resume", path.display()))?;
        ck.expect_model(path, "lenet5", "LeNet-5")?;
        let differ = (r.differences)(&ck.config["options"], &r.meta["options"]);
        if !differ.is_empty() {
            let dir = path.parent().unwrap_or(path);
            return Err(format!(
                "`resume`: {} was started with different options ({}); leave them out to use the run's, or choose a new `out`",
                dir.display(),
                differ.join(", ")
            )
            .into());
        }
        // A run stopped by a signal checkpoints mid-epoch: the trainer's
        // step count says where; older checkpoints only hold whole epochs.
        Ok(match ck.config["trainer"]["steps_done"].as_u64() {
            Some(steps) => steps as usize,
            None => {
                ck.config["epochs_done"].as_u64().unwrap_or(0) as usize * self.steps_per_epoch()
            }
        })
    }

    fn record_step(&self, record: &Value) -> Option<usize> {
        Some(record["epoch"].as_u64()? as usize * self.steps_per_epoch())
    }

    fn curves(&self, metrics: &[Value]) -> Vec<Panel<'static>> {
        let pts = |key: &str| crate::plot::points(metrics, "epoch", key);
        let loss = Panel {
            title: "Loss",
            x_label: "epoch",
            y_label: "cross-entropy",
            series: vec![
                Series::line("train", pts("train_loss"), BLUE),
                Series::line("validation", pts("val_loss"), RED),
            ],
            log_y: true,
        };
        let acc = Panel {
            title: "Validation accuracy",
            x_label: "epoch",
            y_label: "accuracy (%)",
            series: vec![Series::line(
                "validation",
                pts("val_accuracy")
                    .into_iter()
                    .map(|(e, a)| (e, a * 100.0))
                    .collect(),
                RED,
            )],
            log_y: false,
        };
        vec![loss, acc]
    }
}

/// Trains `model` on `train` (images normalised as MNIST's), updating its
/// trainable parameters: those frozen with `Module::set_trainable` get no
/// gradient, no backward work and no optimizer state. After
/// each epoch it scores `val` (if any) and calls `on_epoch`, which may write
/// the record somewhere; its error stops the fit. `label` prefixes the
/// progress bar ("fine-tune", "c1=6 c3=16 f6=84").
pub fn fit(
    model: &LeNet5,
    train: &DigitSet,
    val: Option<&DigitSet>,
    opts: &FitOptions,
    label: &str,
    on_epoch: &mut dyn FnMut(&EpochRecord) -> Result<()>,
) -> Result<Vec<EpochRecord>> {
    opts.validate()?;
    let trainable = model.named_trainable_parameters();
    if trainable.is_empty() {
        return Err(format!("{label}: no parameters to train").into());
    }
    if train.is_empty() {
        return Err(format!("{label}: no training images").into());
    }
    opts.check_batch(train.len())?;
    let opt = make_optimizer(&opts.optimizer, opts.lr, trainable)?;
    let mut task = DigitTask::new(model, train, val, opts);
    let mut records = Vec::with_capacity(opts.epochs);
    let quiet = |_: &str| {};
    let plan = opts.plan(train.len(), &format!("{label} "), 0);
    Trainer::new(plan, model, opt, None, &quiet)?
        .on_record(|r| {
            let record = EpochRecord::from_record(r);
            on_epoch(&record)?;
            records.push(record);
            Ok(())
        })
        .run(&mut task, None)?;
    Ok(records)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kindling_models::lenet5::{LeNet5, LeNet5Config};
    use kindling_tensor::Rng;

    /// 200 28x28 images of two easy classes: a bright left half is a 0, a
    /// bright right half a 1 (with some per-image noise).
    fn halves(n: usize, seed: u64) -> DigitSet {
        let mut rng = Rng::new(seed);
        let mut images = Vec::with_capacity(n * 784);
        let mut labels = Vec::with_capacity(n);
        for i in 0..n {
            let label = (i % 2) as u8;
            for _y in 0..28 {
                for x in 0..28 {
                    let lit = (x < 14) == (label == 0);
                    let noise = rng.below(60) as u8;
                    images.push(if lit { 195 + noise } else { noise });
                }
            }
            labels.push(label);
        }
        DigitSet::new(images, labels, 28, 28).unwrap()
    }

    fn opts(epochs: usize) -> FitOptions {
        FitOptions {
            epochs,
            batch_size: 20,
            lr: 2e-3,
            optimizer: "adam".into(),
            seed: 0,
        }
    }

    #[test]
    fn fit_learns_an_easy_task_and_reports_every_epoch() {
        let model = LeNet5::new(LeNet5Config::default(), &mut Rng::new(0)).unwrap();
        let (train, val) = (halves(200, 1), halves(100, 2));
        let mut seen = Vec::new();
        let records = fit(&model, &train, Some(&val), &opts(2), "test", &mut |r| {
            seen.push(r.epoch);
            Ok(())
        })
        .unwrap();
        assert_eq!(seen, vec![1, 2]);
        assert_eq!(records.len(), 2);
        assert!(records[1].val_accuracy.unwrap() > 0.95, "{records:?}");
        assert!(records[1].lr < 2e-3 * 0.05, "cosine decay reaches ~lr/100");
    }

    #[test]
    fn frozen_parameters_do_not_change_and_get_no_gradient() {
        let model = LeNet5::new(LeNet5Config::default(), &mut Rng::new(0)).unwrap();
        let c1_before = model.c1.weight.to_vec_f32().unwrap();
        let f6_before = model.f6.dense_weight().unwrap().to_vec_f32().unwrap();
        assert_eq!(
            model.set_trainable(&|name| name.starts_with("c1."), false),
            2
        );
        fit(&model, &halves(40, 3), None, &opts(1), "test", &mut |_| {
            Ok(())
        })
        .unwrap();
        assert_eq!(model.c1.weight.to_vec_f32().unwrap(), c1_before);
        assert_ne!(
            model.f6.dense_weight().unwrap().to_vec_f32().unwrap(),
            f6_before
        );
        assert!(
            model.c1.weight.grad().is_none() && model.c1.bias.as_ref().unwrap().grad().is_none()
        );
        assert!(model.f6.dense_weight().unwrap().grad().is_some());
    }

    #[test]
    fn bad_options_and_empty_inputs_are_errors() {
        let model = LeNet5::new(LeNet5Config::default(), &mut Rng::new(0)).unwrap();
        let set = halves(10, 0);
        let bad = FitOptions {
            optimizer: "rmsprop".into(),
            ..opts(1)
        };
        let err = fit(&model, &set, None, &bad, "x", &mut |_| Ok(()));
        assert!(err.unwrap_err().to_string().contains("rmsprop"));
        model.set_trainable(&|_| true, false);
        let err = fit(&model, &set, None, &opts(1), "frozen", &mut |_| Ok(()));
        assert!(err.unwrap_err().to_string().contains("no parameters"));
    }
}
