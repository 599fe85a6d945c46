//! Fine-tuning a LeNet-5 trained on MNIST to another handwriting (USPS,
//! brought to MNIST's 28x28 layout), and the two figures it must beat: the
//! MNIST model as it is ("zero-shot") and the same architecture trained from
//! scratch on the same images. MNIST test accuracy before and after says how
//! much of the first task the fine-tuning forgot.
//!
//! The N fine-tuning images are the first N of a seeded shuffle of the
//! target's training set; up to [`VALIDATION_MAX`] of the images left over
//! are a validation set, scored after every epoch (for the curves only: the
//! final model is the last epoch's, not one picked by validation).

use crate::classify::evaluate;
use crate::fit::{fit, EpochRecord, FitOptions};
use crate::run_dir::RunDir;
use crate::{Error, Result};
use kindling_data::{DigitSet, Normalize};
use kindling_models::lenet5::LeNet5;
use kindling_nn::{checkpoint, Module};
use kindling_tensor::{Rng, Tensor};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::path::Path;

/// At most this many left-over training images are held out for validation.
pub const VALIDATION_MAX: usize = 1_000;

/// Which layers keep their MNIST weights during fine-tuning.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Freeze {
    /// Every layer is trained.
    None,
    /// C1 and C3, the convolutional feature extractor, are frozen; C5, F6
    /// and the output layer are trained.
    Conv,
}

impl std::str::FromStr for Freeze {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "none" => Ok(Freeze::None),
            "conv" => Ok(Freeze::Conv),
            other => Err(Error::option(
                "freeze",
                format!("must be none or conv (C1 and C3), got `{other}`"),
            )),
        }
    }
}

impl Freeze {
    /// The parameter-name prefixes this setting keeps fixed.
    fn frozen_prefixes(self) -> &'static [&'static str] {
        match self {
            Freeze::None => &[],
            Freeze::Conv => &["c1.", "c3."],
        }
    }

    /// Freezes the layers this setting keeps fixed and makes the rest
    /// trainable; returns the number of trainable parameter values.
    pub fn apply(self, model: &LeNet5) -> usize {
        let frozen = self.frozen_prefixes();
        let is_frozen = |name: &str| frozen.iter().any(|p| name.starts_with(p));
        model.set_trainable(&|name| !is_frozen(name), true);
        model.set_trainable(&is_frozen, false);
        model.trainable_parameters().iter().map(Tensor::numel).sum()
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FinetuneOptions {
    /// How many target training images to fine-tune on (all if fewer).
    pub samples: usize,
    /// Fine-tuning: epochs, peak learning rate (smaller than for training
    /// from scratch, so the MNIST features are adjusted rather than erased).
    pub epochs: usize,
    pub lr: f32,
    pub freeze: Freeze,
    /// The from-scratch baseline gets its own budget: by default the recipe
    /// that trains LeNet-5 on MNIST (12 epochs, Adam 2e-3).
    pub scratch_epochs: usize,
    pub scratch_lr: f32,
    pub batch_size: usize,
    /// Seeds the choice of the N images, the batch order and the scratch
    /// model's initial weights.
    pub seed: u64,
}

impl Default for FinetuneOptions {
    fn default() -> Self {
        FinetuneOptions {
            samples: 5_000,
            epochs: 5,
            lr: 5e-4,
            freeze: Freeze::None,
            scratch_epochs: 12,
            scratch_lr: 2e-3,
            batch_size: 64,
            seed: 0,
        }
    }
}

impl FinetuneOptions {
    pub fn validate(&self) -> Result<()> {
        if self.samples == 0 {
            return Err(crate::Error::option("samples", "must be at least 1"));
        }
        if self.scratch_epochs == 0 {
            return Err(crate::Error::option("scratch_epochs", "must be at least 1"));
        }
        self.finetune_fit().validate()?;
        self.scratch_fit().check("scratch_lr", "optimizer")
    }

    fn finetune_fit(&self) -> FitOptions {
        FitOptions {
            epochs: self.epochs,
            batch_size: self.batch_size,
            lr: self.lr,
            optimizer: "adam".into(),
            seed: self.seed,
        }
    }

    fn scratch_fit(&self) -> FitOptions {
        FitOptions {
            epochs: self.scratch_epochs,
            lr: self.scratch_lr,
            ..self.finetune_fit()
        }
    }
}

/// The images involved, all 28x28 in MNIST's layout.
pub struct FinetuneData<'a> {
    /// The new handwriting's whole training set; N images are drawn from it.
    pub target_train: &'a DigitSet,
    pub target_test: &'a DigitSet,
    pub mnist_test: &'a DigitSet,
}

#[derive(Clone, Debug, PartialEq)]
pub struct FinetuneOutcome {
    /// Images fine-tuned (and trained from scratch) on.
    pub samples: usize,
    pub validation_images: usize,
    pub params: usize,
    pub trainable_params: usize,
    pub zero_shot_accuracy: f32,
    pub finetuned_accuracy: f32,
    pub scratch_accuracy: f32,
    pub mnist_accuracy_before: f32,
    pub mnist_accuracy_after: f32,
}

impl FinetuneOutcome {
    pub fn to_json(&self) -> Value {
        json!({
            "samples": self.samples,
            "validation_images": self.validation_images,
            "params": self.params,
            "trainable_params": self.trainable_params,
            "zero_shot_accuracy": self.zero_shot_accuracy,
            "finetuned_accuracy": self.finetuned_accuracy,
            "scratch_accuracy": self.scratch_accuracy,
            "mnist_accuracy_before": self.mnist_accuracy_before,
            "mnist_accuracy_after": self.mnist_accuracy_after,
        })
    }
}

/// Indices of the fine-tuning images and of the validation images: a seeded
/// shuffle of `0..len`, its first `samples` (all if fewer), then up to
/// [`VALIDATION_MAX`] of the rest.
pub fn choose_samples(len: usize, samples: usize, seed: u64) -> (Vec<usize>, Vec<usize>) {
    let mut order: Vec<usize> = (0..len).collect();
    Rng::new(seed).shuffle(&mut order);
    let n = samples.min(len);
    let rest = &order[n..];
    let val = rest[..rest.len().min(VALIDATION_MAX)].to_vec();
    order.truncate(n);
    (order, val)
}

/// Runs the three measurements on `model` (an MNIST LeNet-5, changed in
/// place into the fine-tuned one) and writes into `run`: `config.json`,
/// `metrics.jsonl` (one line per epoch, tagged with its phase),
/// `results.json` and the fine-tuned `model.safetensors`. `from` is recorded
/// as where the model came from. With `resume`, a run directory whose
/// fine-tuning phase finished (`finetuned.json` beside its model) keeps it
/// and runs only what is left; an interruption loses at most the phase
/// under way.
#[allow(clippy::too_many_arguments)]
pub fn finetune(
    model: &LeNet5,
    from: &Path,
    dataset: &str,
    opts: &FinetuneOptions,
    data: &FinetuneData,
    run: &RunDir,
    resume: bool,
    log: &dyn Fn(&str),
) -> Result<FinetuneOutcome> {
    opts.validate()?;
    for (name, set) in [
        ("target training set", data.target_train),
        ("target test set", data.target_test),
        ("MNIST test set", data.mnist_test),
    ] {
        if (set.rows(), set.cols()) != (28, 28) || set.is_empty() {
            return Err(format!(
                "{name}: need 28x28 images, got {} of {}x{}",
                set.len(),
                set.rows(),
                set.cols()
            )
            .into());
        }
    }
    let (train_idx, val_idx) = choose_samples(data.target_train.len(), opts.samples, opts.seed);
    let train = data.target_train.subset(&train_idx)?;
    let val = data.target_train.subset(&val_idx)?;
    let val = (!val.is_empty()).then_some(&val);
    if opts.samples > train.len() {
        log(&format!(
            "`samples` {}: {dataset} has {} training images; using all of them",
            opts.samples,
            train.len()
        ));
    }
    let config = json!({
        "from": from,
        "data": dataset,
        "options": opts,
        "lenet5": model.config,
        "samples_used": train.len(),
        "validation_images": val.map_or(0, DigitSet::len),
        "sample_choice": "first samples_used of a shuffle of the training set seeded by options.seed; validation: up to 1,000 of the rest",
    });
    // A finished fine-tuning phase of this same run, to keep.
    let mut kept: Option<Value> = None;
    if resume && run.source_file("finetuned.json").exists() {
        let stored = run.read_json("config.json")?;
        let differ = crate::gpt_run::changed_options(&stored, &config, &[]);
        if !differ.is_empty() {
            return Err(format!(
                "{} holds a fine-tuning run with other settings ({}); use the same options or a new `out`",
                run.path.display(),
                differ.join(", ")
            )
            .into());
        }
        let path = run.file("model.safetensors");
        checkpoint::read(&path)?.load_into(model, &path)?;
        kept = Some(run.read_json("finetuned.json")?);
        log(&format!(
            "resuming {}: the fine-tuning phase is done; running the from-scratch baseline",
            run.path.display()
        ));
    }
    run.write_json("config.json", &config)?;
    let norm = Normalize::MNIST;
    let score =
        |m: &LeNet5, set: &DigitSet| -> Result<f32> { Ok(evaluate(m, set, 10, norm)?.accuracy) };

    let stored = |k: &str| kept.as_ref().and_then(|v| v[k].as_f64()).map(|x| x as f32);
    let zero_shot = match stored("zero_shot_accuracy") {
        Some(v) => v,
        None => score(model, data.target_test)?,
    };
    let mnist_before = match stored("mnist_accuracy_before") {
        Some(v) => v,
        None => score(model, data.mnist_test)?,
    };
    log(&format!(
        "zero-shot: {:.2}% on {} {dataset} test images (MNIST test {:.2}%)",
        zero_shot * 100.0,
        data.target_test.len(),
        mnist_before * 100.0
    ));

    let mut metrics: Vec<Value> = match kept {
        Some(_) => run
            .read_metrics()?
            .into_iter()
            .filter(|m| m["phase"] == "finetune")
            .collect(),
        None => Vec::new(),
    };
    let on_epoch = |phase: &str, r: &EpochRecord, metrics: &mut Vec<Value>| -> Result<()> {
        log(&format!(
            "{phase} epoch {}: train loss {:.4}{}",
            r.epoch,
            r.train_loss,
            r.val_accuracy.map_or(String::new(), |a| format!(
                ", {dataset} validation accuracy {:.2}%",
                a * 100.0
            ))
        ));
        let mut line = r.to_json();
        line["phase"] = json!(phase);
        metrics.push(line);
        run.write_metrics(metrics)
    };

    let trainable_params = opts.freeze.apply(model);
    let (finetuned, mnist_after) = match (
        stored("finetuned_accuracy"),
        stored("mnist_accuracy_after"),
    ) {
        (Some(f), Some(m)) => (f, m),
        _ => {
            log(&format!(
                "fine-tuning {trainable_params} of {} parameters on {} {dataset} images ({}, Adam {})",
                model.num_parameters(),
                train.len(),
                crate::progress::count(opts.epochs, "epoch"),
                opts.lr
            ));
            fit(
                model,
                &train,
                val,
                &opts.finetune_fit(),
                "fine-tune",
                &mut |r| on_epoch("finetune", r, &mut metrics),
            )?;
            let finetuned = score(model, data.target_test)?;
            let mnist_after = score(model, data.mnist_test)?;
            let meta = json!({
                "model": "lenet5",
                "lenet5": model.config,
                "finetuned_from": from,
                "data": dataset,
                "samples": train.len(),
            });
            checkpoint::save(&run.file("model.safetensors"), model, &meta, &[])?;
            run.write_json(
                "finetuned.json",
                &json!({
                    "zero_shot_accuracy": zero_shot,
                    "mnist_accuracy_before": mnist_before,
                    "finetuned_accuracy": finetuned,
                    "mnist_accuracy_after": mnist_after,
                }),
            )?;
            (finetuned, mnist_after)
        }
    };

    let scratch = LeNet5::new(model.config.clone(), &mut Rng::new(opts.seed))?;
    log(&format!(
        "from scratch: LeNet-5 on the same {} images ({}, Adam {})",
        train.len(),
        crate::progress::count(opts.scratch_epochs, "epoch"),
        opts.scratch_lr
    ));
    fit(
        &scratch,
        &train,
        val,
        &opts.scratch_fit(),
        "scratch",
        &mut |r| on_epoch("scratch", r, &mut metrics),
    )?;
    let scratch_accuracy = score(&scratch, data.target_test)?;

    let outcome = FinetuneOutcome {
        samples: train.len(),
        validation_images: val.map_or(0, DigitSet::len),
        params: model.num_parameters(),
        trainable_params,
        zero_shot_accuracy: zero_shot,
        finetuned_accuracy: finetuned,
        scratch_accuracy,
        mnist_accuracy_before: mnist_before,
        mnist_accuracy_after: mnist_after,
    };
    run.write_json("results.json", &outcome.to_json())?;
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kindling_models::lenet5::LeNet5Config;

    #[test]
    fn samples_are_a_seeded_choice_and_validation_is_disjoint() {
        let (train, val) = choose_samples(3_000, 500, 7);
        assert_eq!((train.len(), val.len()), (500, VALIDATION_MAX));
        assert!(train.iter().all(|i| !val.contains(i)));
        assert_eq!(choose_samples(3_000, 500, 7), (train.clone(), val));
        assert_ne!(choose_samples(3_000, 500, 8).0, train);
        assert_ne!(
            train,
            (0..500).collect::<Vec<_>>(),
            "shuffled, not the head"
        );
    }

    #[test]
    fn asking_for_more_samples_than_there_are_takes_all_and_leaves_no_validation() {
        let (train, val) = choose_samples(100, 5_000, 0);
        assert_eq!(train.len(), 100);
        assert!(val.is_empty());
        let mut sorted = train;
        sorted.sort_unstable();
        assert_eq!(sorted, (0..100).collect::<Vec<_>>());
    }

    #[test]
    fn freezing_conv_leaves_c5_f6_and_output_trainable() {
        let model = LeNet5::new(LeNet5Config::default(), &mut Rng::new(0)).unwrap();
        // C1: 6*25 + 6 = 156; C3: 16*6*25 + 16 = 2,416.
        assert_eq!(Freeze::Conv.apply(&model), 61_706 - 156 - 2_416);
        assert!(!model.c3.weight.requires_grad() && model.c5.weight.requires_grad());
        assert_eq!(Freeze::None.apply(&model), 61_706);
        assert!("dense"
            .parse::<Freeze>()
            .unwrap_err()
            .to_string()
            .contains("freeze must be none or conv"));
    }

    #[test]
    fn zero_samples_is_an_error() {
        let opts = FinetuneOptions {
            samples: 0,
            ..Default::default()
        };
        // The library names the option's field; the CLI says --samples.
        assert!(matches!(
            opts.validate(),
            Err(crate::Error::Option {
                field: "samples",
                ..
            })
        ));
    }
}
