//! `kindling finetune lenet5` (an MNIST LeNet-5 adapted to USPS handwriting,
//! against the zero-shot and from-scratch figures) and `kindling sweep
//! lenet5` (layer sizes chosen on the validation set, the test set scored
//! once for the winner).

use crate::common::{
    load_mnist, mnist_splits, CliResult, JsonArg, MnistDirArg, ResultsDirArgs, ThreadsArg,
};
use crate::report::Report;
use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use kindling_data::usps::to_mnist_layout;
use kindling_data::{registry, DigitSet, Usps};
use kindling_train::finetune::{self, FinetuneData, FinetuneOptions, Freeze};
use kindling_train::lenet5_run::{self, Splits, CHECKPOINT};
use kindling_train::progress::count;
use kindling_train::run_dir::RunDir;
use kindling_train::sweep::{self, Setting, SweepOptions};
use serde_json::json;
use std::path::{Path, PathBuf};

#[derive(Subcommand)]
pub enum FinetuneModel {
    /// A LeNet-5 trained on MNIST, fine-tuned on another handwriting (USPS).
    Lenet5(FinetuneLenet5),
    /// Supervised fine-tuning of a chat model on conversations (loss on the answers only).
    Sft(crate::post_train::FinetuneSft),
    /// Direct Preference Optimization on chosen/rejected pairs.
    Dpo(crate::post_train::FinetuneDpo),
    /// RLHF with PPO against a reward model.
    Ppo(crate::post_train::FinetunePpo),
    /// GRPO with a reward computed by a program (arithmetic, or your question/answer file).
    Grpo(crate::post_train::FinetuneGrpo),
}

#[derive(Subcommand)]
pub enum SweepModel {
    /// LeNet-5 layer sizes (and learning rates) on MNIST's 55,000 / 5,000 split.
    Lenet5(SweepLenet5),
}

#[derive(Args)]
#[command(mut_arg("out", |a| a.required(false).default_value("runs/finetune")))]
pub struct FinetuneLenet5 {
    /// Run directory (or model.safetensors) of a LeNet-5 trained on MNIST.
    #[arg(long)]
    pub from: PathBuf,
    /// The new handwriting: usps (fetch it first: `kindling data fetch usps --from DIR`).
    #[arg(long, default_value = "usps")]
    pub data: String,
    /// Fine-tune (and train from scratch) on this many training images, all if fewer.
    #[arg(long, default_value_t = 5_000)]
    pub samples: usize,
    /// Fine-tuning epochs.
    #[arg(long, default_value_t = 5)]
    pub epochs: usize,
    /// Fine-tuning peak learning rate (Adam, cosine-decayed to 1% of it).
    #[arg(long, default_value_t = 5e-4)]
    pub lr: f32,
    /// none (train every layer) or conv (keep C1 and C3 fixed; train C5, F6, output).
    #[arg(long, default_value = "none")]
    pub freeze: String,
    /// Epochs of the from-scratch baseline (default: MNIST's recipe).
    #[arg(long, default_value_t = 12)]
    pub scratch_epochs: usize,
    /// Peak learning rate of the from-scratch baseline.
    #[arg(long, default_value_t = 2e-3)]
    pub scratch_lr: f32,
    /// Images per step.
    #[arg(long, default_value_t = 64)]
    pub batch_size: usize,
    /// Seeds the choice of images, batch order and the scratch model's weights.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    #[command(flatten)]
    pub threads: ThreadsArg,
    /// Directory with the four MNIST .gz files, for MNIST accuracy before and
    /// after [default: the data root's mnist/].
    #[arg(long)]
    pub mnist: Option<PathBuf>,
    /// Continue an interrupted fine-tuning in --out: a finished fine-tuning phase is kept, the rest run.
    #[arg(long, conflicts_with = "force")]
    pub resume: bool,
    #[command(flatten)]
    pub run: ResultsDirArgs,
    #[command(flatten)]
    pub json: JsonArg,
}

/// The run directory or checkpoint file given to `--from`, resolved to the file.
fn checkpoint_from(from: &Path) -> CliResult<PathBuf> {
    let path = if from.is_dir() {
        from.join(CHECKPOINT)
    } else {
        from.to_path_buf()
    };
    if !path.is_file() {
        bail!(
            "--from {}: no checkpoint found (expected a run directory or a .safetensors file; \
             train one with `kindling train lenet5 --out DIR`)",
            from.display()
        );
    }
    Ok(path)
}

/// Fine-tuning goes from MNIST to another set of handwritten digits.
fn check_target(name: &str) -> CliResult<()> {
    if name == "usps" {
        return Ok(());
    }
    // An unknown name gets the registry's list of known ones.
    registry::find(name).context("--data")?;
    bail!(
        "--data {name}: fine-tuning from MNIST needs another set of handwritten digits; supported: usps"
    )
}

/// The named digit set's training and test images in MNIST's 28x28 layout.
fn load_target(name: &str) -> CliResult<(DigitSet, DigitSet)> {
    let dir = registry::dataset_dir(name)?;
    let usps = Usps::load(&dir)?;
    Ok((to_mnist_layout(&usps.train), to_mnist_layout(&usps.test)))
}

pub fn finetune(model: FinetuneModel) -> CliResult<()> {
    let args = match model {
        FinetuneModel::Lenet5(args) => args,
        FinetuneModel::Sft(a) => return crate::post_train::finetune_sft(a),
        FinetuneModel::Dpo(a) => return crate::post_train::finetune_dpo(a),
        FinetuneModel::Ppo(a) => return crate::post_train::finetune_ppo(a),
        FinetuneModel::Grpo(a) => return crate::post_train::finetune_grpo(a),
    };
    let freeze: Freeze = args.freeze.parse()?;
    let opts = FinetuneOptions {
        samples: args.samples,
        epochs: args.epochs,
        lr: args.lr,
        freeze,
        scratch_epochs: args.scratch_epochs,
        scratch_lr: args.scratch_lr,
        batch_size: args.batch_size,
        seed: args.seed,
    };
    opts.validate()?;
    check_target(&args.data)?;
    args.threads.apply()?;
    let ckpt = checkpoint_from(&args.from)?;
    // Fine-tuning into its own source would overwrite the model it starts from.
    // (A run directory: --out inside it; a checkpoint file: --out its folder.)
    let source_dir = if args.from.is_dir() {
        args.from.clone()
    } else {
        ckpt.parent().map(Path::to_path_buf).unwrap_or_default()
    };
    if let (Ok(src), Ok(out)) = (
        source_dir.canonicalize(),
        std::path::absolute(&args.run.out),
    ) {
        let out = out.canonicalize().unwrap_or(out);
        if (args.from.is_dir() && out.starts_with(&src)) || out == src {
            bail!(
                "--out {} is (inside) the --from run {}; choose another --out",
                args.run.out.display(),
                args.from.display()
            );
        }
    }
    let (model, _) = lenet5_run::load_model(&ckpt)?;
    let (target_train, target_test) = load_target(&args.data)?;
    let mnist = load_mnist(args.mnist.as_deref())?;
    let mode = if args.resume {
        kindling_train::run_dir::RunMode::Resume
    } else {
        args.run.mode()
    };
    let run = RunDir::start(&args.run.out, mode)?;
    eprintln!(
        "fine-tuning {} on {}: {} training images available, {} test images; run directory {}",
        ckpt.display(),
        args.data,
        target_train.len(),
        target_test.len(),
        args.run.out.display()
    );
    let data = FinetuneData {
        target_train: &target_train,
        target_test: &target_test,
        mnist_test: &mnist.test,
    };
    let o = finetune::finetune(
        &model,
        &ckpt,
        &args.data,
        &opts,
        &data,
        &run,
        args.resume,
        &crate::common::log_line,
    )?;

    let out = Report::new(args.json.enabled);
    let pct = |a: f32| format!("{:6.2}%", a * 100.0);
    out.line(format!(
        "{} test accuracy ({} images):",
        args.data.to_uppercase(),
        target_test.len()
    ));
    out.line(format!(
        "  MNIST model, no fine-tuning          {}",
        pct(o.zero_shot_accuracy)
    ));
    out.line(format!(
        "  fine-tuned on {:>5} images           {}  ({} of {} parameters trained)",
        o.samples,
        pct(o.finetuned_accuracy),
        o.trainable_params,
        o.params
    ));
    out.line(format!(
        "  trained from scratch on the same     {}",
        pct(o.scratch_accuracy)
    ));
    out.line(format!(
        "MNIST test accuracy: {:.2}% before fine-tuning, {:.2}% after ({:+.2} points)",
        o.mnist_accuracy_before * 100.0,
        o.mnist_accuracy_after * 100.0,
        (o.mnist_accuracy_after - o.mnist_accuracy_before) * 100.0
    ));
    out.line(format!(
        "results in {}; fine-tuned model {}",
        run.file("results.json").display(),
        run.file(CHECKPOINT).display()
    ));
    let mut v = o.to_json();
    v["run_dir"] = json!(args.run.out);
    out.finish(v);
    Ok(())
}

#[derive(Args)]
#[command(mut_arg("out", |a| a.required(false).default_value("runs/sweep")))]
pub struct SweepLenet5 {
    /// Values to try, as KEY=V1,V2,... terms (keys c1, c3, f6, lr); every
    /// combination is trained.
    #[arg(long, default_value = "c1=4,6,12 c3=8,16,32 f6=42,84,168")]
    pub grid: String,
    /// Epochs per setting (the same budget for all).
    #[arg(long, default_value_t = 2)]
    pub epochs: usize,
    /// Learning rate of settings whose grid has no lr=.
    #[arg(long, default_value_t = 2e-3)]
    pub lr: f64,
    /// Images per step.
    #[arg(long, default_value_t = 64)]
    pub batch_size: usize,
    /// adam or sgd (momentum 0.9).
    #[arg(long, default_value = "adam")]
    pub optimizer: String,
    /// The same seed for every setting (initial weights, batch order).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    #[command(flatten)]
    pub threads: ThreadsArg,
    #[command(flatten)]
    pub data: MnistDirArg,
    /// Use only the first N training images (and N/10 validation and test
    /// images), as `train lenet5 --limit` [default: all].
    #[arg(long)]
    pub limit: Option<usize>,
    /// Continue an interrupted sweep in --out: the settings already done are kept, the rest trained.
    #[arg(long, conflicts_with = "force")]
    pub resume: bool,
    #[command(flatten)]
    pub run: ResultsDirArgs,
    #[command(flatten)]
    pub json: JsonArg,
}

pub fn sweep(model: SweepModel) -> CliResult<()> {
    let SweepModel::Lenet5(args) = model;
    let base = Setting {
        lr: args.lr,
        ..Setting::default()
    };
    if !(args.lr.is_finite() && args.lr > 0.0) {
        bail!("--lr must be a positive number, got {}", args.lr);
    }
    let settings = sweep::parse_grid(&args.grid, &base)?;
    let opts = SweepOptions {
        epochs: args.epochs,
        batch_size: args.batch_size,
        optimizer: args.optimizer.clone(),
        seed: args.seed,
        ..Default::default()
    };
    kindling_train::fit::FitOptions {
        epochs: opts.epochs,
        batch_size: opts.batch_size,
        lr: args.lr as f32,
        optimizer: opts.optimizer.clone(),
        seed: opts.seed,
    }
    .validate()?;
    args.threads.apply()?;
    let (train, val, test) = mnist_splits(args.data.dir.as_deref(), args.limit)?;
    let mode = if args.resume {
        kindling_train::run_dir::RunMode::Resume
    } else {
        args.run.mode()
    };
    let run = RunDir::start(&args.run.out, mode)?;
    eprintln!(
        "sweep over {} LeNet-5 settings on MNIST: {} train / {} validation / {} test images, {} threads, run directory {}",
        settings.len(),
        train.len(),
        val.len(),
        test.len(),
        kindling_tensor::num_threads(),
        args.run.out.display()
    );
    let splits = Splits {
        train: &train,
        val: &val,
        test: &test,
    };
    let o = sweep::sweep(
        &settings,
        &opts,
        &splits,
        &run,
        args.resume,
        &crate::common::log_line,
    )?;

    let out = Report::new(args.json.enabled);
    let width = o
        .results
        .iter()
        .map(|r| r.setting.to_string().len())
        .max()
        .unwrap_or(0)
        .max("setting".len());
    out.line(format!(
        "  {:<width$}  {:>9}  {:>12}",
        "setting", "params", "val accuracy"
    ));
    for (i, r) in o.results.iter().enumerate() {
        out.line(format!(
            "{} {:<width$}  {:>9}  {:>11.2}%",
            if i == o.best { "*" } else { " " },
            r.setting.to_string(),
            r.params,
            r.val_accuracy * 100.0
        ));
    }
    let best = &o.results[o.best];
    out.line(format!(
        "* best on validation: {} ({} parameters, {:.2}%); test accuracy {:.2}% on {} images, scored once",
        best.setting,
        best.params,
        best.val_accuracy * 100.0,
        o.test_accuracy * 100.0,
        o.test_images
    ));
    out.line(format!(
        "{} settings x {} in {:.0} s; results in {}",
        o.results.len(),
        count(args.epochs, "epoch"),
        o.seconds,
        run.file("results.json").display()
    ));
    let mut v = o.to_json();
    v["run_dir"] = json!(args.run.out);
    out.finish(v);
    Ok(())
}
