//! Fitting a digit classifier: `epochs` passes of shuffled mini-batches over a
//! [`DigitSet`] with Adam or SGD (momentum 0.9), cosine decay from `lr` to
//! `lr / 100`, a progress bar per epoch and validation after each. Shared by
//! fine-tuning and the hyper-parameter sweep. The LeNet-5 trainer keeps its
//! own loop because it checkpoints every epoch and resumes mid-run.

use crate::classify::evaluate;
use crate::progress::bar;
use crate::Result;
use kindling_data::{Batches, DigitSet, Normalize, Order};
use kindling_nn::optim::{Adam, AdamConfig, Optimizer, Sgd, SgdConfig};
use kindling_nn::schedule::LrSchedule;
use kindling_nn::Module;
use kindling_tensor::Tensor;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::time::Instant;

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
        if self.epochs == 0 {
            return Err("--epochs must be at least 1".into());
        }
        if self.batch_size == 0 {
            return Err("--batch-size must be at least 1".into());
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return Err(format!("learning rate must be a positive number, got {}", self.lr).into());
        }
        if !matches!(self.optimizer.as_str(), "adam" | "sgd") {
            return Err(format!("optimizer must be adam or sgd, got `{}`", self.optimizer).into());
        }
        Ok(())
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
}

/// Adam (PyTorch's defaults) or SGD with momentum 0.9 over `params`.
pub fn make_optimizer(name: &str, lr: f32, params: Vec<Tensor>) -> Result<Box<dyn Optimizer>> {
    match name {
        "adam" => Ok(Box::new(Adam::new(params, AdamConfig::adam(lr)))),
        "sgd" => Ok(Box::new(Sgd::new(
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

/// Trains `model` on `train` (images normalised as MNIST's), updating only
/// `trainable` — a subset of the model's parameters freezes the rest. After
/// each epoch it scores `val` (if any) and calls `on_epoch`, which may write
/// the record somewhere; its error stops the fit. `label` prefixes the
/// progress bar ("fine-tune", "c1=6 c3=16 f6=84").
pub fn fit(
    model: &dyn Module,
    trainable: Vec<Tensor>,
    train: &DigitSet,
    val: Option<&DigitSet>,
    opts: &FitOptions,
    label: &str,
    on_epoch: &mut dyn FnMut(&EpochRecord) -> Result<()>,
) -> Result<Vec<EpochRecord>> {
    opts.validate()?;
    if trainable.is_empty() {
        return Err(format!("{label}: no parameters to train").into());
    }
    if train.is_empty() {
        return Err(format!("{label}: no training images").into());
    }
    let mut opt = make_optimizer(&opts.optimizer, opts.lr, trainable)?;
    let steps_per_epoch = train.len().div_ceil(opts.batch_size);
    let schedule = LrSchedule::WarmupCosine {
        lr: opts.lr,
        min_lr: opts.lr * 0.01,
        warmup: 0,
        total: opts.epochs * steps_per_epoch,
    };
    let normalize = Normalize::MNIST;
    let mut records = Vec::with_capacity(opts.epochs);
    for epoch in 0..opts.epochs {
        let pb = bar(
            train.len() as u64,
            format!("{label} epoch {}/{}", epoch + 1, opts.epochs),
            "img",
        );
        let t0 = Instant::now();
        let (mut loss_sum, mut seen) = (0f64, 0usize);
        let order = Order::Shuffled {
            seed: opts.seed,
            epoch: epoch as u64,
        };
        for (step, (images, labels)) in
            Batches::new(train, opts.batch_size, order, false, normalize)?.enumerate()
        {
            opt.set_lr(schedule.lr_at(epoch * steps_per_epoch + step));
            // Frozen parameters still receive gradients (they are leaves that
            // require them); clearing the whole model keeps those from
            // piling up, and the optimizer only ever reads its own.
            model.zero_grad();
            let loss = model.forward(&images)?.cross_entropy(&labels, None)?;
            loss.backward()?;
            opt.step()?;
            let b = labels.numel();
            loss_sum += loss.item()? as f64 * b as f64;
            seen += b;
            pb.inc(b as u64);
            if step % 20 == 0 {
                pb.set_message(format!("loss {:.4}", loss_sum / seen as f64));
            }
        }
        let seconds = t0.elapsed().as_secs_f32();
        pb.finish_and_clear();
        let scored = val.map(|v| evaluate(model, v, 10, normalize)).transpose()?;
        let record = EpochRecord {
            epoch: epoch + 1,
            train_loss: (loss_sum / seen as f64) as f32,
            val_loss: scored.as_ref().map(|e| e.loss),
            val_accuracy: scored.as_ref().map(|e| e.accuracy),
            lr: opt.lr(),
            train_images_per_sec: seen as f32 / seconds.max(1e-9),
            seconds,
        };
        on_epoch(&record)?;
        records.push(record);
    }
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
        let records = fit(
            &model,
            model.parameters(),
            &train,
            Some(&val),
            &opts(2),
            "test",
            &mut |r| {
                seen.push(r.epoch);
                Ok(())
            },
        )
        .unwrap();
        assert_eq!(seen, vec![1, 2]);
        assert_eq!(records.len(), 2);
        assert!(records[1].val_accuracy.unwrap() > 0.95, "{records:?}");
        assert!(records[1].lr < 2e-3 * 0.05, "cosine decay reaches ~lr/100");
    }

    #[test]
    fn parameters_left_out_of_trainable_do_not_change() {
        let model = LeNet5::new(LeNet5Config::default(), &mut Rng::new(0)).unwrap();
        let c1_before = model.c1.weight.to_vec_f32().unwrap();
        let f6_before = model.f6.weight.to_vec_f32().unwrap();
        let trainable: Vec<Tensor> = model
            .named_parameters()
            .into_iter()
            .filter(|(name, _)| !name.starts_with("c1."))
            .map(|(_, t)| t)
            .collect();
        fit(
            &model,
            trainable,
            &halves(40, 3),
            None,
            &opts(1),
            "test",
            &mut |_| Ok(()),
        )
        .unwrap();
        assert_eq!(model.c1.weight.to_vec_f32().unwrap(), c1_before);
        assert_ne!(model.f6.weight.to_vec_f32().unwrap(), f6_before);
    }

    #[test]
    fn bad_options_and_empty_inputs_are_errors() {
        let model = LeNet5::new(LeNet5Config::default(), &mut Rng::new(0)).unwrap();
        let set = halves(10, 0);
        let bad = FitOptions {
            optimizer: "rmsprop".into(),
            ..opts(1)
        };
        let err = fit(
            &model,
            model.parameters(),
            &set,
            None,
            &bad,
            "x",
            &mut |_| Ok(()),
        );
        assert!(err.unwrap_err().to_string().contains("rmsprop"));
        let err = fit(&model, vec![], &set, None, &opts(1), "frozen", &mut |_| {
            Ok(())
        });
        assert!(err.unwrap_err().to_string().contains("no parameters"));
    }
}
