//! Training LeNet-5 on MNIST: the 55,000 / 5,000 split for training and
//! validation, the 10,000 test images scored once at the end. Each epoch
//! writes a checkpoint (model + optimizer state) atomically, so `--resume`
//! picks up after the last finished epoch and ends at the same result.

use crate::classify::evaluate;
use crate::data_parallel::DataParallel;
use crate::fgsm;
use crate::plot::{save_panels, Panel, Series};
use crate::progress::bar;
use crate::run_dir::RunDir;
use crate::Result;
use kindling_data::{Batches, DigitSet, Normalize, Order};
use kindling_models::lenet5::{LeNet5, LeNet5Config};
use kindling_nn::optim::{Adam, AdamConfig, Optimizer, Sgd, SgdConfig};
use kindling_nn::schedule::LrSchedule;
use kindling_nn::{checkpoint, Module};
use kindling_tensor::{Rng, Tensor};
use plotters::style::{BLUE, RED};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::path::Path;
use std::time::Instant;

pub const CHECKPOINT: &str = "model.safetensors";

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
        }
    }
}

impl TrainOptions {
    pub fn validate(&self) -> Result<()> {
        if self.epochs == 0 {
            return Err("--epochs must be at least 1".into());
        }
        if self.batch_size == 0 {
            return Err("--batch-size must be at least 1".into());
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return Err(format!("--lr must be a positive number, got {}", self.lr).into());
        }
        if !matches!(self.optimizer.as_str(), "adam" | "sgd") {
            return Err(
                format!("--optimizer must be adam or sgd, got `{}`", self.optimizer).into(),
            );
        }
        if let Some(eps) = self.adversarial_eps {
            fgsm::check_eps(eps).map_err(|e| format!("--adversarial: {e}"))?;
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
}

pub fn make_optimizer(opts: &TrainOptions, params: Vec<Tensor>) -> Box<dyn Optimizer> {
    match opts.optimizer.as_str() {
        "sgd" => Box::new(Sgd::new(
            params,
            SgdConfig {
                lr: opts.lr,
                momentum: 0.9,
                nesterov: false,
                weight_decay: 0.0,
            },
        )),
        _ => Box::new(Adam::new(params, AdamConfig::adam(opts.lr))),
    }
}

/// Cosine decay from `lr` to `lr / 100` over the whole run.
pub fn schedule(opts: &TrainOptions, steps_per_epoch: usize) -> LrSchedule {
    LrSchedule::WarmupCosine {
        lr: opts.lr,
        min_lr: opts.lr * 0.01,
        warmup: 0,
        total: opts.epochs * steps_per_epoch,
    }
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
/// `stop_after` ends the process's work after that many epochs of this call
/// (the run stays resumable), standing in for an interruption in tests.
pub fn train(
    opts: &TrainOptions,
    dir: &Path,
    resume: bool,
    stop_after: Option<usize>,
    data: &Splits,
    log: &dyn Fn(&str),
) -> Result<Outcome> {
    opts.validate()?;
    let run = RunDir::create(dir)?;
    let mut rng = Rng::new(opts.seed);
    let model = LeNet5::new(opts.model.clone(), &mut rng)?;
    let mut opt = make_optimizer(opts, model.parameters());
    let mut first_epoch = 0;
    let mut metrics: Vec<Value> = Vec::new();
    let ckpt_path = run.file(CHECKPOINT);
    if resume && ckpt_path.exists() {
        // Compare with the options stored in the checkpoint itself: config.json
        // may already belong to a newer run that never saved a checkpoint.
        let (_, ck) = load_model(&ckpt_path)?;
        let stored: Option<TrainOptions> =
            serde_json::from_value(ck.config["options"].clone()).ok();
        if stored.as_ref() != Some(opts) {
            return Err(format!("--resume: {} was started with different options; use the same flags or a new --out", dir.display()).into());
        }
        ck.load_into(&model, &ckpt_path)?;
        let state: HashMap<String, Tensor> = ck
            .tensors
            .into_iter()
            .filter(|(k, _)| k.starts_with("optim."))
            .map(|(k, v)| (k["optim.".len()..].to_string(), v))
            .collect();
        opt.load_state(&state)?;
        first_epoch = ck.config["epochs_done"].as_u64().unwrap_or(0) as usize;
        metrics = run
            .read_metrics()?
            .into_iter()
            .filter(|m| {
                m["epoch"]
                    .as_u64()
                    .is_some_and(|e| (e as usize) <= first_epoch)
            })
            .collect();
        log(&format!(
            "resuming {} after epoch {first_epoch}",
            dir.display()
        ));
    } else if resume {
        log(&format!(
            "--resume: no checkpoint in {} yet; starting from scratch",
            dir.display()
        ));
    }
    run.write_json("config.json", &serde_json::to_value(opts)?)?;

    let steps_per_epoch = data.train.len().div_ceil(opts.batch_size);
    let sched = schedule(opts, steps_per_epoch);
    let normalize = Normalize::MNIST;
    let started = Instant::now();
    let (mut train_seconds, mut train_images) = (0f64, 0usize);
    let mut val_accuracy = metrics
        .last()
        .and_then(|m| m["val_accuracy"].as_f64())
        .unwrap_or(0.0) as f32;
    let last_epoch = stop_after.map_or(opts.epochs, |k| (first_epoch + k).min(opts.epochs));
    let params = model.parameters();
    let dp = DataParallel::new(kindling_tensor::num_threads())?;
    for epoch in first_epoch..last_epoch {
        let pb = bar(
            data.train.len() as u64,
            format!("epoch {}/{}", epoch + 1, opts.epochs),
            "img",
        );
        let t0 = Instant::now();
        let (mut loss_sum, mut seen) = (0f64, 0usize);
        let order = Order::Shuffled {
            seed: opts.seed,
            epoch: epoch as u64,
        };
        for (step, (images, labels)) in
            Batches::new(data.train, opts.batch_size, order, false, normalize)?.enumerate()
        {
            opt.set_lr(sched.lr_at(epoch * steps_per_epoch + step));
            let (images, targets) = match opts.adversarial_eps {
                Some(eps) => fgsm::clean_and_adversarial(&model, &images, &labels, eps, normalize)?,
                None => (images, labels.clone()),
            };
            opt.zero_grad();
            let loss = sharded_loss_backward(&dp, &model, &images, &targets, &params)?;
            opt.step()?;
            let b = labels.numel();
            loss_sum += loss as f64 * b as f64;
            seen += b;
            pb.inc(b as u64);
            if step % 20 == 0 {
                pb.set_message(format!("loss {:.4}", loss_sum / seen as f64));
            }
        }
        let dt = t0.elapsed().as_secs_f64();
        pb.finish_and_clear();
        train_seconds += dt;
        train_images += seen;
        let val = evaluate(&model, data.val, 10, normalize)?;
        val_accuracy = val.accuracy;
        let record = json!({
            "epoch": epoch + 1,
            "train_loss": loss_sum / seen as f64,
            "val_loss": val.loss,
            "val_accuracy": val.accuracy,
            "lr": opt.lr(),
            "images_per_sec": seen as f64 / dt,
            "seconds": dt,
        });
        log(&format!(
            "epoch {:>2}/{}: train loss {:.4}, val loss {:.4}, val accuracy {:.2}%, {:.0} images/s",
            epoch + 1,
            opts.epochs,
            loss_sum / seen as f64,
            val.loss,
            val.accuracy * 100.0,
            seen as f64 / dt
        ));
        metrics.push(record);
        let mut extra: Vec<(String, Tensor)> = opt
            .state()
            .into_iter()
            .map(|(k, v)| (format!("optim.{k}"), v))
            .collect();
        extra.sort_by(|a, b| a.0.cmp(&b.0));
        let meta = json!({ "model": "lenet5", "lenet5": opts.model, "options": opts, "epochs_done": epoch + 1 });
        // Metrics first: a crash between the two leaves extra lines, which a
        // resume drops, never a checkpoint ahead of its metrics.
        run.write_metrics(&metrics)?;
        checkpoint::save(&ckpt_path, &model, &meta, &extra)?;
        draw_curves(&run, &metrics)?;
    }
    if last_epoch < opts.epochs {
        return Err(format!(
            "stopped after epoch {last_epoch} of {} as asked; continue with --resume",
            opts.epochs
        )
        .into());
    }
    let test = evaluate(&model, data.test, 10, normalize)?;
    log(&format!(
        "test accuracy {:.2}% on {} images (scored once, after training)",
        test.accuracy * 100.0,
        data.test.len()
    ));
    let images_per_sec = if train_seconds > 0.0 {
        (train_images as f64 / train_seconds) as f32
    } else {
        0.0
    };
    let outcome = Outcome {
        params: model.num_parameters(),
        epochs: opts.epochs,
        test_accuracy: test.accuracy,
        val_accuracy,
        train_images_per_sec: images_per_sec,
        seconds: started.elapsed().as_secs_f32(),
    };
    let mut all = metrics;
    all.push(json!({ "split": "test", "test_loss": test.loss, "test_accuracy": test.accuracy }));
    run.write_metrics(&all)?;
    Ok(outcome)
}

fn draw_curves(run: &RunDir, metrics: &[Value]) -> Result<()> {
    let pts = |key: &str| crate::plot::points(metrics, "epoch", key);
    let loss = Panel {
        title: "Loss",
        x_label: "epoch",
        y_label: "cross-entropy",
        series: vec![
            Series {
                label: "train",
                points: pts("train_loss"),
                color: BLUE,
                dots: false,
            },
            Series {
                label: "validation",
                points: pts("val_loss"),
                color: RED,
                dots: false,
            },
        ],
        log_y: true,
    };
    let acc = Panel {
        title: "Validation accuracy",
        x_label: "epoch",
        y_label: "accuracy (%)",
        series: vec![Series {
            label: "validation",
            points: pts("val_accuracy")
                .into_iter()
                .map(|(e, a)| (e, a * 100.0))
                .collect(),
            color: RED,
            dots: metrics.len() < 2,
        }],
        log_y: false,
    };
    save_panels(&run.file("curves.png"), &[loss, acc]).map_err(|e| format!("curves.png: {e}"))?;
    Ok(())
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
/// bench/pytorch/lenet5.py): `warmup` untimed steps, then `steps` timed.
pub fn bench(
    opts: &TrainOptions,
    set: &DigitSet,
    steps: usize,
    warmup: usize,
) -> Result<BenchResult> {
    opts.validate()?;
    let mut rng = Rng::new(opts.seed);
    let model = LeNet5::new(opts.model.clone(), &mut rng)?;
    let mut opt = make_optimizer(opts, model.parameters());
    let order = Order::Shuffled {
        seed: opts.seed,
        epoch: 0,
    };
    let batches: Vec<(Tensor, Tensor)> =
        Batches::new(set, opts.batch_size, order, true, Normalize::MNIST)?
            .take(steps.min(200))
            .collect();
    if batches.is_empty() {
        return Err("bench: not enough images for one batch".into());
    }
    let params = model.parameters();
    let dp = DataParallel::new(kindling_tensor::num_threads())?;
    let mut run_step = |i: usize| -> Result<()> {
        let (images, labels) = &batches[i % batches.len()];
        opt.zero_grad();
        sharded_loss_backward(&dp, &model, images, labels, &params)?;
        opt.step()?;
        Ok(())
    };
    for i in 0..warmup {
        run_step(i)?;
    }
    let t0 = Instant::now();
    for i in 0..steps {
        run_step(i)?;
    }
    let dt = t0.elapsed().as_secs_f64();
    Ok(BenchResult {
        train_images_per_sec: (steps * opts.batch_size) as f64 / dt,
        ms_per_step: dt * 1000.0 / steps as f64,
        peak_rss_mb: peak_rss_mb().unwrap_or(0.0),
    })
}

/// Forward and backward of one batch spread over `dp`'s shards (one per
/// thread); leaves the summed gradients in `params` and returns the mean loss.
fn sharded_loss_backward(
    dp: &DataParallel,
    model: &LeNet5,
    images: &Tensor,
    targets: &Tensor,
    params: &[Tensor],
) -> Result<f32> {
    Ok(
        dp.backward(images.shape()[0], params, |_shard, start, len| {
            model
                .forward(&images.narrow(0, start, len)?)?
                .cross_entropy(&targets.narrow(0, start, len)?, None)
        })?,
    )
}
