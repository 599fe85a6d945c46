//! The degradation lab (`kindling lab resnet`): He et al. 2016's CIFAR
//! ResNets and their plain twins ([`ResNet`]) trained on Fashion-MNIST on
//! the one training loop, recording the training error per epoch.
//!
//! He et al.'s observation (section 4.2, figure 6): without shortcuts,
//! deeper networks reach a *higher training error* (not only test error),
//! so the problem is optimization, not overfitting; with identity
//! shortcuts deeper networks train better. The recipe here is theirs with
//! the budget cut: SGD with momentum 0.9, weight decay 1e-4, learning rate
//! 0.1, batch 128, batch normalization after every convolution. Two
//! choices are ours and named: the learning rate follows a half cosine to
//! 0 over the run (the paper divides by 10 at 32k and 48k of 64k
//! iterations, which a run of a few epochs cannot follow), and weight decay
//! applies to the convolution and fully-connected weights only, not to
//! batch norm's γ and β or the final bias (common practice; the paper's
//! Caffe setup decays everything). No data augmentation.
//!
//! The training error of an epoch is the error on its mini-batches as they
//! were trained (batch statistics, weights changing during the epoch), as
//! the curves of the paper's figure are; the test error uses the running
//! statistics (evaluation mode) after each epoch.

use crate::classify::evaluate;
use crate::run_dir::{RunDir, RunMode};
use crate::trainer::{
    resume_with_options, Bar, Evaluated, Period, Plan, RunIdentity, StopWhen, Task, Trainer,
};
use crate::Result;
use kindling_data::{Batches, DigitSet, Normalize, Order};
use kindling_models::resnet::{ResNet, ResNetConfig};
use kindling_nn::checkpoint::Checkpoint;
use kindling_nn::optim::{ParamGroup, Sgd, SgdConfig};
use kindling_nn::schedule::LrSchedule;
use kindling_nn::Module;
use kindling_tensor::{no_grad, Rng, Tensor};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::path::Path;
use std::sync::Mutex;

/// Fashion-MNIST's pixel mean and standard deviation over the training set
/// (pixels scaled to [0, 1]).
pub const NORMALIZE: Normalize = Normalize {
    mean: 0.2860,
    std: 0.3530,
};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ResnetOptions {
    /// 6n + 2 weighted layers.
    pub depth: usize,
    /// With shortcuts (ResNet) or without (plain).
    pub residual: bool,
    pub epochs: usize,
    pub batch_size: usize,
    /// Peak learning rate; a half cosine takes it to 0 over the run.
    pub lr: f32,
    pub momentum: f32,
    /// On convolution and fully-connected weights only.
    pub weight_decay: f32,
    pub seed: u64,
    /// Training and test images the run uses (part of its identity: a
    /// resume with another `limit` is another run).
    pub train_images: usize,
    pub test_images: usize,
}

impl ResnetOptions {
    pub fn model_config(&self) -> ResNetConfig {
        ResNetConfig {
            depth: self.depth,
            residual: self.residual,
            in_channels: 1,
            classes: 10,
        }
    }

    pub fn variant(&self) -> &'static str {
        if self.residual {
            "residual"
        } else {
            "plain"
        }
    }

    pub fn validate(&self) -> Result<()> {
        if self.depth == 0 {
            return Err(crate::Error::option("depth", "must be at least 1"));
        }
        self.model_config().blocks_per_stage().map_err(|_| {
            crate::Error::option(
                "depth",
                format!(
                    "must be 6n + 2 (8, 14, 20, 32, 44, 56, 110, ...), got {}",
                    self.depth
                ),
            )
        })?;
        crate::error::at_least_one(&[("epochs", self.epochs), ("batch_size", self.batch_size)])?;
        for (name, v) in [
            ("lr", self.lr),
            ("momentum", self.momentum),
            ("weight_decay", self.weight_decay),
        ] {
            if !(v.is_finite() && v >= 0.0) || (name == "lr" && v == 0.0) {
                return Err(crate::Error::option(
                    name,
                    format!(
                        "must be a {} number, got {v}",
                        if name == "lr" {
                            "positive"
                        } else {
                            "non-negative"
                        }
                    ),
                ));
            }
        }
        Ok(())
    }
}

struct ResnetTask<'a> {
    model: &'a ResNet,
    opts: &'a ResnetOptions,
    train: &'a DigitSet,
    test: &'a DigitSet,
    cursor: Option<(usize, Batches<'a>)>,
    /// Misclassified and seen training images since the last evaluation.
    errors: Mutex<(usize, usize)>,
}

impl ResnetTask<'_> {
    fn steps_per_epoch(&self) -> usize {
        self.train.len().div_ceil(self.opts.batch_size).max(1)
    }

    fn period_errors(&self) -> (usize, usize) {
        *self.errors.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Task for ResnetTask<'_> {
    type Batch = (Tensor, Tensor);

    fn model(&self) -> &dyn Module {
        self.model
    }

    fn batch(&mut self, step: usize, _micro: usize, _rng: &mut Rng) -> Result<Self::Batch> {
        let spe = self.steps_per_epoch();
        let (epoch, i) = (step / spe, step % spe);
        // A new shuffle when an epoch starts; a resume mid-epoch skips the
        // batches already trained.
        if !matches!(&self.cursor, Some((e, _)) if *e == epoch) {
            let order = Order::Shuffled {
                seed: self.opts.seed,
                epoch: epoch as u64,
            };
            let mut batches =
                Batches::new(self.train, self.opts.batch_size, order, false, NORMALIZE)?;
            if i > 0 {
                batches.nth(i - 1);
            }
            self.cursor = Some((epoch, batches));
        }
        let (_, batches) = self.cursor.as_mut().expect("set just above");
        Ok(batches
            .next()
            .ok_or_else(|| format!("epoch {} has no batch {i}", epoch + 1))?)
    }

    fn rows(&self, batch: &Self::Batch) -> usize {
        batch.0.shape()[0]
    }

    fn loss(
        &self,
        (images, labels): &Self::Batch,
        start: usize,
        len: usize,
        _rng: &mut Rng,
    ) -> kindling_tensor::Result<Tensor> {
        let labels = labels.narrow(0, start, len)?;
        let logits = self.model.forward(&images.narrow(0, start, len)?)?;
        let wrong = {
            let _g = no_grad();
            let pred = logits.argmax(-1, false)?.to_vec_i64()?;
            pred.iter()
                .zip(labels.to_vec_i64()?)
                .filter(|(p, t)| **p != *t)
                .count()
        };
        let mut e = self.errors.lock().unwrap_or_else(|e| e.into_inner());
        *e = (e.0 + wrong, e.1 + len);
        drop(e);
        logits.cross_entropy(&labels, None)
    }

    fn after_update(&self) -> Result<()> {
        Ok(self.model.update_running_stats()?)
    }

    fn evaluate(&mut self, p: &Period) -> Result<Evaluated> {
        let epoch = p.step.div_ceil(self.steps_per_epoch());
        let (wrong, seen) =
            std::mem::take(&mut *self.errors.lock().unwrap_or_else(|e| e.into_inner()));
        let train_error = wrong as f64 / seen.max(1) as f64;
        self.model.set_training(false);
        let test = evaluate(self.model, self.test, 10, NORMALIZE);
        self.model.set_training(true);
        let test = test?;
        let test_error = 1.0 - test.accuracy as f64;
        let record = json!({
            "epoch": epoch,
            "step": p.step,
            "train_error": train_error,
            "test_error": test_error,
            "test_loss": test.loss,
            "lr": p.lr,
            "seconds": p.seconds,
        });
        let line = format!(
            "{}-{} epoch {epoch}/{}: train error {:.2}%, test error {:.2}%",
            self.opts.variant(),
            self.opts.depth,
            self.opts.epochs,
            train_error * 100.0,
            test_error * 100.0
        );
        Ok(Evaluated::with_train_loss(record, line, p))
    }

    fn identity(&self) -> Option<RunIdentity> {
        Some(RunIdentity {
            model: "resnet",
            what: "lab resnet",
            options: serde_json::to_value(self.opts).unwrap_or(Value::Null),
            may_change: &["epochs"],
            total_steps: self.opts.epochs * self.steps_per_epoch(),
        })
    }

    fn describe(&self, steps: usize) -> String {
        format!(
            "step {steps} of {} ({}-{})",
            self.opts.epochs * self.steps_per_epoch(),
            self.opts.variant(),
            self.opts.depth
        )
    }

    /// The default metadata plus the unfinished epoch's error counts, so a
    /// resume mid-epoch reports the uninterrupted run's training error.
    fn checkpoint_meta(&self, steps: usize) -> Value {
        let (wrong, seen) = self.period_errors();
        json!({
            "model": "resnet",
            "options": self.opts,
            "steps_done": steps,
            "period_errors": [wrong, seen],
        })
    }

    fn resume(&mut self, ck: &Checkpoint, path: &Path) -> Result<usize> {
        let steps = resume_with_options(
            ck,
            path,
            "resnet",
            "lab resnet",
            self.opts,
            &["epochs"],
            "steps_done",
        )?;
        let counts = &ck.config["period_errors"];
        if let (Some(w), Some(s)) = (counts[0].as_u64(), counts[1].as_u64()) {
            *self.errors.lock().unwrap_or_else(|e| e.into_inner()) = (w as usize, s as usize);
        }
        Ok(steps)
    }
}

/// One finished (depth, variant) run.
#[derive(Clone, Debug, Serialize)]
pub struct Outcome {
    pub depth: usize,
    pub variant: &'static str,
    pub params: usize,
    /// Per epoch, first to last.
    pub train_errors: Vec<f64>,
    pub test_errors: Vec<f64>,
    pub final_train_error: f64,
    pub test_error: f64,
    /// Training time of the whole run (all sessions if resumed: the
    /// epochs' recorded seconds summed).
    pub seconds: f64,
    pub train_images_per_sec: f64,
}

/// The data a run reads.
pub struct Splits<'a> {
    pub train: &'a DigitSet,
    pub test: &'a DigitSet,
}

/// Trains one network in `run` (config.json, metrics.jsonl with a record
/// per epoch, model.safetensors with the batch norm statistics, curves.png)
/// and returns its errors. `stop` ends it early, resumable (the CLI's
/// SIGINT flag; tests stop after some steps).
pub fn run<'a>(
    opts: &ResnetOptions,
    data: &Splits,
    run: &'a RunDir,
    mode: RunMode,
    stop: StopWhen<'a>,
    log: &'a dyn Fn(&str),
) -> Result<Outcome> {
    opts.validate()?;
    if opts.batch_size > data.train.len() {
        return Err(format!(
            "`batch_size` {} is larger than the training set ({} images)",
            opts.batch_size,
            data.train.len()
        )
        .into());
    }
    let model = ResNet::new(opts.model_config(), &mut Rng::new(opts.seed))?;
    let mut task = ResnetTask {
        model: &model,
        opts,
        train: data.train,
        test: data.test,
        cursor: None,
        errors: Mutex::new((0, 0)),
    };
    let steps_per_epoch = task.steps_per_epoch();
    let total_steps = opts.epochs * steps_per_epoch;
    let plan = Plan {
        total_steps,
        accum_steps: 1,
        schedule: LrSchedule::WarmupCosine {
            lr: opts.lr,
            min_lr: 0.0,
            warmup: 0,
            total: total_steps,
        },
        grad_clip: None,
        eval_every: steps_per_epoch,
        eval_at_start: false,
        seed: opts.seed,
        loss_records: None,
        log_every: steps_per_epoch.div_ceil(4),
        step_name: "step",
        bar: Bar::PerEpoch {
            label: format!("{}-{} ", opts.variant(), opts.depth),
            examples: data.train.len() as u64,
            unit: "images",
        },
        message_every: 5,
        throughput: ("images", 1),
    };
    // Weight decay on the convolution and linear weights (4-D and 2-D), not
    // on batch norm's γ/β or the biases (1-D).
    let (decayed, not_decayed) = model
        .named_trainable_parameters()
        .into_iter()
        .partition(|(_, t)| t.shape().len() > 1);
    let groups = vec![
        ParamGroup {
            params: decayed,
            weight_decay: opts.weight_decay,
        },
        ParamGroup {
            params: not_decayed,
            weight_decay: 0.0,
        },
    ];
    let sgd = Sgd::with_groups(
        groups,
        SgdConfig {
            lr: opts.lr,
            momentum: opts.momentum,
            ..SgdConfig::default()
        },
    );
    let mut trainer = Trainer::new(plan, &model, Box::new(sgd), Some(run), log)?;
    trainer.begin(&mut task, mode, &serde_json::to_value(opts)?)?;
    let summary = trainer.run_until(&mut task, stop)?;
    let series = |key: &str| -> Vec<f64> {
        summary
            .records
            .iter()
            .filter_map(|r| r[key].as_f64())
            .collect()
    };
    let train_errors = series("train_error");
    let test_errors = series("test_error");
    let seconds: f64 = series("seconds").iter().sum();
    let images = (train_errors.len() * data.train.len()) as f64;
    Ok(Outcome {
        depth: opts.depth,
        variant: opts.variant(),
        params: model.num_parameters(),
        final_train_error: train_errors.last().copied().unwrap_or(f64::NAN),
        test_error: test_errors.last().copied().unwrap_or(f64::NAN),
        train_errors,
        test_errors,
        seconds,
        train_images_per_sec: if seconds > 0.0 { images / seconds } else { 0.0 },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(depth: usize) -> ResnetOptions {
        ResnetOptions {
            depth,
            residual: true,
            epochs: 1,
            batch_size: 16,
            lr: 0.1,
            momentum: 0.9,
            weight_decay: 1e-4,
            seed: 0,
            train_images: 64,
            test_images: 32,
        }
    }

    #[test]
    fn options_name_the_bad_field() {
        for (o, field) in [
            (opts(0), "depth"),
            (opts(9), "depth"),
            (
                ResnetOptions {
                    epochs: 0,
                    ..opts(8)
                },
                "epochs",
            ),
            (ResnetOptions { lr: 0.0, ..opts(8) }, "lr"),
            (
                ResnetOptions {
                    weight_decay: -1.0,
                    ..opts(8)
                },
                "weight_decay",
            ),
        ] {
            let e = o.validate().unwrap_err().to_string();
            assert!(e.starts_with(field), "{e}");
        }
        assert!(opts(9)
            .validate()
            .unwrap_err()
            .to_string()
            .contains("6n + 2"));
        opts(56).validate().unwrap();
    }

    /// Random 28×28 "images" whose label is set by the mean brightness,
    /// so there is something to learn.
    fn toy_set(n: usize, seed: u64) -> DigitSet {
        let mut rng = Rng::new(seed);
        let mut images = Vec::with_capacity(n * 784);
        let mut labels = Vec::with_capacity(n);
        for i in 0..n {
            let label = (i % 10) as u8;
            for _ in 0..784 {
                let v = label as f32 * 25.0 + rng.uniform_range(0.0, 30.0);
                images.push(v.min(255.0) as u8);
            }
            labels.push(label);
        }
        DigitSet::new(images, labels, 28, 28).unwrap()
    }

    #[test]
    fn running_stats_are_checkpointed_and_a_resumed_run_ends_where_an_uninterrupted_one_does() {
        let (train, test) = (toy_set(64, 1), toy_set(32, 2));
        let data = Splits {
            train: &train,
            test: &test,
        };
        let o = ResnetOptions {
            epochs: 2,
            ..opts(8)
        };
        let base = std::env::temp_dir().join(format!("kindling-resnet-run-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        let quiet = |_: &str| {};

        let whole_dir = RunDir::start(&base.join("whole"), RunMode::Fresh).unwrap();
        let whole = run(
            &o,
            &data,
            &whole_dir,
            RunMode::Fresh,
            StopWhen::default(),
            &quiet,
        )
        .unwrap();
        assert_eq!(whole.train_errors.len(), 2);
        assert!(whole
            .train_errors
            .iter()
            .chain(&whole.test_errors)
            .all(|e| (0.0..=1.0).contains(e)));

        // The checkpoint holds every batch norm's running statistics, moved
        // away from their initial 0 and 1 by training.
        let ck = kindling_nn::checkpoint::read(&whole_dir.file("model.safetensors")).unwrap();
        let rm = ck.tensors["layer3.0.bn2.running_mean"]
            .to_vec_f32()
            .unwrap();
        let rv = ck.tensors["layer3.0.bn2.running_var"].to_vec_f32().unwrap();
        assert_eq!(rm.len(), 64);
        assert!(rm.iter().any(|&m| m != 0.0) && rv.iter().any(|&v| v != 1.0));

        // Stopped after 5 steps (mid-epoch), then resumed: the same errors
        // and the same final model, buffers included, as the run that was
        // never stopped.
        let part_dir = RunDir::start(&base.join("part"), RunMode::Fresh).unwrap();
        let stop = StopWhen {
            after: Some(5),
            flag: None,
        };
        assert!(run(&o, &data, &part_dir, RunMode::Fresh, stop, &quiet).is_err());
        drop(part_dir);
        let part_dir = RunDir::start(&base.join("part"), RunMode::Resume).unwrap();
        let resumed = run(
            &o,
            &data,
            &part_dir,
            RunMode::Resume,
            StopWhen::default(),
            &quiet,
        )
        .unwrap();
        assert_eq!(resumed.train_errors, whole.train_errors);
        assert_eq!(resumed.test_errors, whole.test_errors);
        let a = kindling_nn::checkpoint::read(&whole_dir.file("model.safetensors")).unwrap();
        let b = kindling_nn::checkpoint::read(&part_dir.file("model.safetensors")).unwrap();
        assert_eq!(a.tensors.len(), b.tensors.len());
        for (name, t) in &a.tensors {
            assert_eq!(
                t.to_vec_f32().unwrap(),
                b.tensors[name].to_vec_f32().unwrap(),
                "{name}"
            );
        }
        drop((whole_dir, part_dir));
        std::fs::remove_dir_all(&base).ok();
    }
}
