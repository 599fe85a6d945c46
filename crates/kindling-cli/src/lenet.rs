//! `kindling train lenet5`, `kindling eval`, `kindling bench lenet5`.

use crate::common::{
    checkpoint_path, load_mnist, mnist_splits, resumed_options, CliResult, JsonArg, MnistDirArg,
    RunDirArgs, ThreadsArg,
};
use crate::report::Report;
use anyhow::bail;
use clap::Args;
use kindling_data::Normalize;
use kindling_train::classify::evaluate;
use kindling_train::lenet5_run::{self, Splits, TrainOptions, CHECKPOINT};
use kindling_train::progress::{count, rate};
use serde_json::json;
use std::path::PathBuf;

#[derive(Args)]
#[command(mut_arg("out", |a| a.required(false).default_value("runs/lenet5")))]
pub struct TrainLenet5 {
    // Options are Option-typed: with --resume, one left out keeps the run's
    // stored value rather than the default.
    /// Passes over the training images [default: 12].
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Images per step [default: 64].
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// Peak learning rate, cosine-decayed to 1% of it [default: 2e-3].
    #[arg(long)]
    pub lr: Option<f32>,
    /// adam or sgd (momentum 0.9) [default: adam].
    #[arg(long)]
    pub optimizer: Option<String>,
    /// Seed for the initial weights and the batch order [default: 0].
    #[arg(long)]
    pub seed: Option<u64>,
    #[command(flatten)]
    pub threads: ThreadsArg,
    /// relu or tanh (as in 1998) [default: relu].
    #[arg(long)]
    pub activation: Option<String>,
    /// max or avg (as in 1998) [default: max].
    #[arg(long)]
    pub pool: Option<String>,
    #[command(flatten)]
    pub run: RunDirArgs,
    #[command(flatten)]
    pub data: MnistDirArg,
    /// Use only the first N training images (and N/10 validation and test
    /// images): for quick experiments and tests [default: all].
    #[arg(long)]
    pub limit: Option<usize>,
    /// Adversarial training: train on each batch and its FGSM copy at this
    /// epsilon (pixel units of the [0, 1] image, in (0, 1]) [default: off].
    #[arg(long, value_name = "EPS", allow_negative_numbers = true)]
    pub adversarial: Option<f32>,
    /// Stop after K epochs of this invocation, resumable (a stand-in for an interruption).
    #[arg(long, hide = true)]
    pub interrupt_after: Option<usize>,
    #[command(flatten)]
    pub json: JsonArg,
}

impl TrainLenet5 {
    /// The defaults, or with --resume the run's own settings, changed by
    /// the flags given (only --epochs may change on a resume: the library
    /// names any other difference with both values).
    fn options(&self) -> CliResult<TrainOptions> {
        let mut opts: TrainOptions =
            resumed_options(self.run.resume, &self.run.out)?.unwrap_or_default();
        if let Some(pool) = &self.pool {
            opts.model.pooling = pool.parse().map_err(|e| anyhow::anyhow!("--pool: {e}"))?;
        }
        if let Some(activation) = &self.activation {
            if !matches!(activation.as_str(), "relu" | "tanh") {
                bail!("--activation must be relu or tanh, got `{activation}`");
            }
            opts.model.activation = activation.clone();
        }
        macro_rules! set {
            ($($f:ident => $o:ident),*) => { $( if let Some(v) = self.$f.clone() { opts.$o = v; } )* };
        }
        set!(epochs => epochs, batch_size => batch_size, lr => lr, optimizer => optimizer, seed => seed);
        if self.adversarial.is_some() {
            opts.adversarial_eps = self.adversarial;
        }
        if self.limit.is_some() {
            opts.limit = self.limit;
        }
        if self.data.dir.is_some() {
            opts.data = self.data.dir.clone();
        }
        opts.validate()?;
        Ok(opts)
    }
}

pub fn train(args: TrainLenet5) -> CliResult<()> {
    let opts = args.options()?;
    args.threads.apply()?;
    let out = Report::new(args.json.enabled);
    let (train, val, test) = mnist_splits(opts.data.as_deref(), opts.limit)?;
    eprintln!(
        "LeNet-5 on MNIST: {} train / {} validation / {} test images, {} threads, run directory {}",
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
    let o = lenet5_run::train(
        &opts,
        &args.run.out,
        args.run.mode(),
        kindling_train::trainer::StopWhen {
            after: args.interrupt_after,
            flag: Some(crate::stop::on_signals()),
        },
        &splits,
        &crate::common::log_line,
    )?;
    out.line(format!(
        "LeNet-5 ({} parameters), {}: validation accuracy {:.2}%, test accuracy {:.2}%",
        o.params,
        count(o.epochs, "epoch"),
        o.val_accuracy * 100.0,
        o.test_accuracy * 100.0
    ));
    let speed = if o.steps_trained > 0 {
        format!(
            "{} training images/s; ",
            rate(o.train_images_per_sec as f64)
        )
    } else {
        "already finished, nothing trained now; ".into()
    };
    out.line(format!(
        "  {speed}{:.0} s in all; checkpoint {}",
        o.seconds,
        args.run.out.join(CHECKPOINT).display()
    ));
    out.finish(json!({
        "params": o.params,
        "epochs": o.epochs,
        "test_accuracy": o.test_accuracy,
        "val_accuracy": o.val_accuracy,
        "train_images_per_sec": o.train_images_per_sec,
        "seconds": o.seconds,
        "run_dir": args.run.out,
    }));
    Ok(())
}

#[derive(Args)]
pub struct Eval {
    /// Run directory (or model.safetensors) of a trained LeNet-5.
    #[arg(long)]
    pub ckpt: PathBuf,
    /// Also draw the confusion matrix to this PNG [default: no picture].
    #[arg(long)]
    pub plot: Option<PathBuf>,
    #[command(flatten)]
    pub data: MnistDirArg,
    #[command(flatten)]
    pub threads: ThreadsArg,
    #[command(flatten)]
    pub json: JsonArg,
}

pub fn eval(args: Eval) -> CliResult<()> {
    args.threads.apply()?;
    let path = checkpoint_path("--ckpt", &args.ckpt, CHECKPOINT)?;
    let (model, _) = lenet5_run::load_model(&path)?;
    let mnist = load_mnist(args.data.dir.as_deref())?;
    let (_, _, test) = mnist.split();
    let ev = evaluate(&model, &test, 10, Normalize::MNIST)?;
    let out = Report::new(args.json.enabled);
    out.line(format!(
        "test accuracy {:.2}% ({} images), loss {:.4}",
        ev.accuracy * 100.0,
        test.len(),
        ev.loss
    ));
    out.line("per-class accuracy:");
    let per_class = ev.per_class_accuracy();
    for (c, a) in per_class.iter().enumerate() {
        out.line(format!("  {c}: {:.2}%", a * 100.0));
    }
    out.line("confusion matrix (rows: true digit, columns: predicted):");
    out.line(format!(
        "       {}",
        (0..10).map(|c| format!("{c:>5}")).collect::<String>()
    ));
    for (t, row) in ev.confusion.iter().enumerate() {
        out.line(format!(
            "  {t:>3}  {}",
            row.iter().map(|n| format!("{n:>5}")).collect::<String>()
        ));
    }
    if let Some(p) = &args.plot {
        kindling_train::plot::confusion::draw(p, &ev.confusion)
            .map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))?;
        out.line(format!("wrote {}", p.display()));
    }
    out.finish(json!({
        "test_accuracy": ev.accuracy,
        "test_loss": ev.loss,
        "per_class_accuracy": per_class,
        "confusion": ev.confusion,
    }));
    Ok(())
}

#[derive(Args)]
pub struct BenchLenet5 {
    /// Timed training steps.
    #[arg(long, default_value_t = 200)]
    pub steps: usize,
    /// Untimed steps first.
    #[arg(long, default_value_t = 20)]
    pub warmup: usize,
    /// Images per step.
    #[arg(long, default_value_t = 64)]
    pub batch_size: usize,
    /// adam or sgd (momentum 0.9).
    #[arg(long, default_value = "adam")]
    pub optimizer: String,
    #[command(flatten)]
    pub threads: ThreadsArg,
    #[command(flatten)]
    pub data: MnistDirArg,
    #[command(flatten)]
    pub json: JsonArg,
}

pub fn bench(args: BenchLenet5) -> CliResult<()> {
    if args.steps == 0 {
        bail!("--steps must be at least 1");
    }
    args.threads.apply()?;
    let opts = TrainOptions {
        batch_size: args.batch_size,
        optimizer: args.optimizer.clone(),
        lr: 1e-3,
        ..Default::default()
    };
    let mnist = load_mnist(args.data.dir.as_deref())?;
    let (train, _, _) = mnist.split();
    let r = lenet5_run::bench(&opts, &train, args.steps, args.warmup)?;
    let out = Report::new(args.json.enabled);
    out.line(format!(
        "kindling lenet5 train step, batch {}, {} threads: {} images/s, {:.3} ms/step, peak RSS {:.1} MB",
        args.batch_size,
        kindling_tensor::num_threads(),
        rate(r.train_images_per_sec),
        r.ms_per_step,
        r.peak_rss_mb
    ));
    out.finish(json!({
        "framework": "kindling",
        "threads": kindling_tensor::num_threads(),
        "simd": kindling_tensor::simd_level(),
        "batch_size": args.batch_size,
        "steps": args.steps,
        "train_images_per_sec": r.train_images_per_sec,
        "ms_per_step": r.ms_per_step,
        "peak_rss_mb": r.peak_rss_mb,
        "params": 61706,
    }));
    Ok(())
}

#[derive(Args)]
pub struct Predict {
    /// Run directory (or model.safetensors) of a trained LeNet-5.
    #[arg(long)]
    pub ckpt: PathBuf,
    /// PNG or JPEG images of single digits (any size, colour or grey, either polarity).
    #[arg(required = true)]
    pub images: Vec<PathBuf>,
    #[command(flatten)]
    pub json: JsonArg,
}

/// Each image is brought to MNIST's form (grey, ink light on dark, cropped,
/// 20×20 box, centred by mass in 28×28) and classified.
pub fn predict(args: Predict) -> CliResult<()> {
    let path = checkpoint_path("--ckpt", &args.ckpt, CHECKPOINT)?;
    let (model, _) = lenet5_run::load_model(&path)?;
    let out = Report::new(args.json.enabled);
    let norm = Normalize::MNIST;
    let mut predictions = Vec::new();
    let mut failed = 0;
    for file in &args.images {
        // An unreadable file is reported and the others are still read.
        let digit = match kindling_data::load_digit(file) {
            Ok(d) => d,
            Err(e) => {
                eprintln!("error: {e}");
                predictions.push(json!({ "file": file, "error": e.to_string() }));
                failed += 1;
                continue;
            }
        };
        let x: Vec<f32> = digit
            .pixels
            .iter()
            .map(|&p| (p - norm.mean) / norm.std)
            .collect();
        let x = kindling_tensor::Tensor::from_vec(x, &[1, 1, 28, 28])?;
        let probs = {
            let _g = kindling_tensor::no_grad();
            use kindling_nn::Module;
            model.forward(&x)?.softmax(-1)?.to_vec_f32()?
        };
        let best = probs
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .map(|(i, _)| i)
            .unwrap_or(0);
        out.line(format!(
            "{}: {best} ({:.1}%)",
            file.display(),
            probs[best] * 100.0
        ));
        predictions.push(json!({ "file": file, "digit": best, "probabilities": probs }));
    }
    if failed > 0 {
        out.finish(json!({ "predictions": predictions }));
        bail!("{failed} of {} images could not be read", args.images.len());
    }
    out.finish(json!({ "predictions": predictions }));
    Ok(())
}
