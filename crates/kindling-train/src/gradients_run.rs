//! The vanishing-gradient lab (`kindling lab gradients`): a deep
//! fully-connected network ([`DeepMlp`]) trained on MNIST with plain
//! mini-batch SGD (optionally with L2 weight decay, as Nielsen trains it)
//! and cross-entropy on the one training loop, recording how
//! fast each hidden layer learns.
//!
//! "Speed of learning" is Nielsen's measure (Neural Networks and Deep
//! Learning, ch. 5): the L2 norm of the gradient of the cost with respect
//! to a layer's biases, ‖∂C/∂b^l‖ = ‖δ^l‖. Backpropagation gives
//! δ^l = σ'(z^l) ⊙ (W^{l+1})ᵀ δ^{l+1}; with σ' ≤ 1/4 and weights of size
//! about 1/√fan_in, each sigmoid layer shrinks δ several-fold on the way
//! down, so the first hidden layer learns far more slowly than the last.
//! The norm of the gradient with respect to the layer's weights,
//! ‖δ^l (a^{l−1})ᵀ‖, is recorded beside it; it also scales with the size of
//! the layer's input (784 pixels for the first layer, `width` units after).
//! Both are taken after every `record_every`-th step's backward pass, on
//! that step's mini-batch gradient (the mean over its rows), and averaged
//! over the records of the run.

use crate::classify::evaluate;
use crate::plot::grad_norms::draw_grad_norms;
use crate::run_dir::RunDir;
use crate::trainer::{Bar, Evaluated, Period, Plan, Task, Trainer};
use crate::Result;
use kindling_data::{Batches, DigitSet, Normalize, Order};
use kindling_models::deep_mlp::{DeepMlp, DeepMlpConfig};
use kindling_nn::optim::{ParamGroup, Sgd, SgdConfig};
use kindling_nn::schedule::LrSchedule;
use kindling_nn::Module;
use kindling_tensor::{Rng, Tensor};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::sync::Mutex;

/// Nielsen's pixels: [0, 1], no mean subtracted.
const NORMALIZE: Normalize = Normalize::UNIT_RANGE;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GradientsOptions {
    pub depth: usize,
    pub width: usize,
    /// sigmoid, tanh or relu.
    pub activation: String,
    pub residual: bool,
    pub epochs: usize,
    pub batch_size: usize,
    /// Constant learning rate of plain SGD (no momentum, no weight decay).
    pub lr: f32,
    pub seed: u64,
    /// Record the gradient norms after every this many steps.
    pub record_every: usize,
    /// L2 weight decay on the weights (not the biases), PyTorch's meaning:
    /// Nielsen's λ over the training set size n is `λ / n`. 0: plain SGD.
    #[serde(default)]
    pub weight_decay: f32,
}

impl GradientsOptions {
    pub fn model_config(&self) -> DeepMlpConfig {
        DeepMlpConfig {
            inputs: 784,
            width: self.width,
            depth: self.depth,
            outputs: 10,
            activation: self.activation.clone(),
            residual: self.residual,
        }
    }

    pub fn validate(&self) -> Result<()> {
        crate::error::at_least_one(&[
            ("depth", self.depth),
            ("width", self.width),
            ("epochs", self.epochs),
            ("batch_size", self.batch_size),
            ("record_every", self.record_every),
        ])?;
        if !matches!(self.activation.as_str(), "sigmoid" | "tanh" | "relu") {
            return Err(crate::Error::option(
                "activation",
                format!("must be sigmoid, tanh or relu, got `{}`", self.activation),
            ));
        }
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            return Err(crate::Error::option(
                "weight_decay",
                format!("must be 0 or more, got {}", self.weight_decay),
            ));
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return Err(crate::Error::option(
                "lr",
                format!("must be a positive number, got {}", self.lr),
            ));
        }
        Ok(())
    }
}

/// The hidden layers' gradient norms after one step, first layer to last.
#[derive(Clone, Debug)]
pub struct StepNorms {
    pub step: usize,
    pub weight: Vec<f32>,
    pub bias: Vec<f32>,
}

/// MNIST through a [`DeepMlp`], recording each hidden layer's gradient
/// norms after the update (the gradients stay in `.grad()` until the next
/// step clears them).
struct GradientsTask<'a> {
    model: &'a DeepMlp,
    train: &'a DigitSet,
    val: &'a DigitSet,
    batch_size: usize,
    epochs: usize,
    seed: u64,
    record_every: usize,
    /// The step whose batch was drawn last (the one being trained).
    step: usize,
    cursor: Option<(usize, Batches<'a>)>,
    norms: Mutex<Vec<StepNorms>>,
}

impl GradientsTask<'_> {
    fn steps_per_epoch(&self) -> usize {
        self.train.len().div_ceil(self.batch_size).max(1)
    }
}

/// L2 norm of a parameter's gradient (0 when it has none yet).
fn grad_norm(p: &Tensor) -> Result<f32> {
    Ok(match p.grad() {
        Some(g) => g.sum_squares()?.sqrt() as f32,
        None => 0.0,
    })
}

/// Per-layer means of `pick` over `records` (first hidden layer to last).
fn layer_means(records: &[StepNorms], pick: fn(&StepNorms) -> &Vec<f32>) -> Vec<f64> {
    let depth = records.first().map_or(0, |r| pick(r).len());
    (0..depth)
        .map(|l| records.iter().map(|r| pick(r)[l] as f64).sum::<f64>() / records.len() as f64)
        .collect()
}

/// How many records, from the first, count as the start of training (the
/// network about as initialized, as in Nielsen's first measurement).
pub const INITIAL_STEPS: usize = 100;

impl Task for GradientsTask<'_> {
    type Batch = (Tensor, Tensor);

    fn model(&self) -> &dyn Module {
        self.model
    }

    fn batch(&mut self, step: usize, _micro: usize, _rng: &mut Rng) -> Result<Self::Batch> {
        self.step = step;
        let spe = self.steps_per_epoch();
        let epoch = step / spe;
        // Steps run in order from 0 (this lab does not resume), so a new
        // shuffle is needed only when an epoch starts.
        if !matches!(&self.cursor, Some((e, _)) if *e == epoch) {
            let order = Order::Shuffled {
                seed: self.seed,
                epoch: epoch as u64,
            };
            let batches = Batches::new(self.train, self.batch_size, order, false, NORMALIZE)?;
            self.cursor = Some((epoch, batches));
        }
        let (_, batches) = self.cursor.as_mut().expect("set just above");
        Ok(batches
            .next()
            .ok_or_else(|| format!("epoch {} has no batch {}", epoch + 1, step % spe))?)
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
        self.model
            .forward(&images.narrow(0, start, len)?)?
            .cross_entropy(&labels.narrow(0, start, len)?, None)
    }

    fn after_update(&self) -> Result<()> {
        if !self.step.is_multiple_of(self.record_every) {
            return Ok(());
        }
        let mut weight = Vec::with_capacity(self.model.hidden.len());
        let mut bias = Vec::with_capacity(self.model.hidden.len());
        for layer in &self.model.hidden {
            let w = layer.dense_weight().ok_or("hidden layers are dense")?;
            weight.push(grad_norm(w)?);
            bias.push(grad_norm(
                layer.bias.as_ref().ok_or("hidden layers have biases")?,
            )?);
        }
        self.norms
            .lock()
            .map_err(|_| "gradient norm records: lock poisoned")?
            .push(StepNorms {
                step: self.step,
                weight,
                bias,
            });
        Ok(())
    }

    fn evaluate(&mut self, p: &Period) -> Result<Evaluated> {
        let epoch = p.step.div_ceil(self.steps_per_epoch());
        let val = evaluate(self.model, self.val, 10, NORMALIZE)?;
        // This epoch's mean norms: how the gap between layers changes as
        // the network trains.
        let from = p.step.saturating_sub(self.steps_per_epoch());
        let epoch_norms: Vec<StepNorms> = self
            .norms
            .lock()
            .map_err(|_| "gradient norm records: lock poisoned")?
            .iter()
            .filter(|n| (from..p.step).contains(&n.step))
            .cloned()
            .collect();
        let bias = layer_means(&epoch_norms, |n| &n.bias);
        let ratio = Outcome::ratio(&bias);
        let record = json!({
            "epoch": epoch,
            "step": p.step,
            "val_loss": val.loss,
            "val_accuracy": val.accuracy,
            "lr": p.lr,
            "bias_grad_norms_epoch_mean": bias,
            "weight_grad_norms_epoch_mean": layer_means(&epoch_norms, |n| &n.weight),
            "ratio_last_to_first": ratio,
        });
        let line = format!(
            "epoch {epoch}/{}: val loss {:.4}, val accuracy {:.2}%, speed of learning last/first {ratio:.1}",
            self.epochs,
            val.loss,
            val.accuracy * 100.0
        );
        Ok(Evaluated::with_train_loss(record, line, p))
    }

    fn describe(&self, steps: usize) -> String {
        format!("step {steps} of {}", self.epochs * self.steps_per_epoch())
    }
}

pub struct Outcome {
    /// The same means over the first [`INITIAL_STEPS`] records only.
    pub initial_bias_grad_norms: Vec<f64>,
    pub initial_weight_grad_norms: Vec<f64>,
    /// Each epoch's last-over-first ratio of the mean bias gradient norms.
    pub ratio_by_epoch: Vec<f64>,
    /// Mean over the records of ‖∂C/∂b^l‖, first hidden layer to last.
    pub bias_grad_norms: Vec<f64>,
    /// Mean over the records of ‖∂C/∂W^l‖, first hidden layer to last.
    pub weight_grad_norms: Vec<f64>,
    pub test_accuracy: f32,
    pub val_accuracy: f32,
    pub steps: usize,
    pub seconds: f64,
}

impl Outcome {
    /// Last hidden layer's mean norm over the first's.
    pub fn ratio(norms: &[f64]) -> f64 {
        match (norms.first(), norms.last()) {
            (Some(first), Some(last)) if *first > 0.0 => last / first,
            _ => f64::NAN,
        }
    }
}

/// The data a run reads: training batches, validation after each epoch,
/// the test set scored once at the end.
pub struct Splits<'a> {
    pub train: &'a DigitSet,
    pub val: &'a DigitSet,
    pub test: &'a DigitSet,
}

/// Trains the network in `run` and writes `config.json`, `metrics.jsonl`
/// (an evaluation record per epoch, a `grad_norms` record per recorded
/// step, the test record) and `grad_norms.png`.
pub fn run(
    opts: &GradientsOptions,
    data: &Splits,
    run: &RunDir,
    log: &dyn Fn(&str),
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
    let model = DeepMlp::new(opts.model_config(), &mut Rng::new(opts.seed))?;
    let mut task = GradientsTask {
        model: &model,
        train: data.train,
        val: data.val,
        batch_size: opts.batch_size,
        epochs: opts.epochs,
        seed: opts.seed,
        record_every: opts.record_every,
        step: 0,
        cursor: None,
        norms: Mutex::new(Vec::new()),
    };
    let steps_per_epoch = task.steps_per_epoch();
    let total_steps = opts.epochs * steps_per_epoch;
    let plan = Plan {
        total_steps,
        accum_steps: 1,
        schedule: LrSchedule::Constant { lr: opts.lr },
        grad_clip: None,
        eval_every: steps_per_epoch,
        eval_at_start: false,
        seed: opts.seed,
        loss_records: None,
        log_every: steps_per_epoch.div_ceil(4),
        step_name: "step",
        bar: Bar::Run {
            label: String::new(),
            unit: "steps",
        },
        message_every: 50,
        throughput: ("images", 1),
    };
    // Nielsen's L2 regularization decays the weights only.
    let (weights, biases) = model
        .named_trainable_parameters()
        .into_iter()
        .partition(|(name, _)| name.ends_with("weight"));
    let groups = vec![
        ParamGroup {
            params: weights,
            weight_decay: opts.weight_decay,
        },
        ParamGroup {
            params: biases,
            weight_decay: 0.0,
        },
    ];
    let sgd = Sgd::with_groups(
        groups,
        SgdConfig {
            lr: opts.lr,
            ..SgdConfig::default()
        },
    );
    let mut trainer = Trainer::new(plan, &model, Box::new(sgd), Some(run), log)?;
    trainer.begin(
        &mut task,
        crate::run_dir::RunMode::Fresh,
        &serde_json::to_value(opts)?,
    )?;
    let summary = trainer.run(&mut task, None)?;
    let test = evaluate(&model, data.test, 10, NORMALIZE)?;
    let norms = task
        .norms
        .into_inner()
        .map_err(|_| "gradient norm records: lock poisoned")?;
    let initial = &norms[..norms.len().min(INITIAL_STEPS)];
    let outcome = Outcome {
        bias_grad_norms: layer_means(&norms, |n| &n.bias),
        weight_grad_norms: layer_means(&norms, |n| &n.weight),
        initial_bias_grad_norms: layer_means(initial, |n| &n.bias),
        initial_weight_grad_norms: layer_means(initial, |n| &n.weight),
        ratio_by_epoch: summary
            .records
            .iter()
            .filter_map(|r| r["ratio_last_to_first"].as_f64())
            .collect(),
        test_accuracy: test.accuracy,
        val_accuracy: summary
            .records
            .last()
            .and_then(|r| r["val_accuracy"].as_f64())
            .unwrap_or(f64::NAN) as f32,
        steps: summary.steps,
        seconds: summary.train_seconds,
    };

    // metrics.jsonl: the per-epoch evaluations and the per-step norms in
    // step order, then the test score.
    let mut records: Vec<Value> = summary.records;
    records.extend(norms.iter().map(
        |n| json!({ "step": n.step, "weight_grad_norms": n.weight, "bias_grad_norms": n.bias }),
    ));
    records.sort_by_key(|r| r["step"].as_u64().unwrap_or(u64::MAX));
    records.push(json!({
        "split": "test",
        "test_loss": test.loss,
        "test_accuracy": test.accuracy,
        "bias_grad_norms_mean": outcome.bias_grad_norms,
        "weight_grad_norms_mean": outcome.weight_grad_norms,
    }));
    run.write_metrics(&records)?;

    let steps: Vec<usize> = norms.iter().map(|n| n.step).collect();
    let per_layer: Vec<Vec<f32>> = (0..opts.depth)
        .map(|l| norms.iter().map(|n| n.bias[l]).collect())
        .collect();
    let title = format!(
        "{} hidden layers of {} {}{}: speed of learning ‖∂C/∂b‖",
        opts.depth,
        opts.width,
        opts.activation,
        if opts.residual { " + shortcut" } else { "" }
    );
    let png = run.file("grad_norms.png");
    draw_grad_norms(&png, &title, &steps, &per_layer)
        .map_err(|e| format!("{}: {e}", png.display()))?;
    Ok(outcome)
}
