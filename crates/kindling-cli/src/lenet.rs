//! `kindling train lenet5`, `kindling eval`, `kindling bench lenet5`.

use crate::report::{CliResult, Report};
use clap::Args;
use kindling_data::{DigitSet, Mnist, Normalize};
use kindling_train::classify::evaluate;
use kindling_train::lenet5_run::{self, Splits, TrainOptions, CHECKPOINT};
use serde_json::json;
use std::path::{Path, PathBuf};

#[derive(Args)]
pub struct TrainLenet5 {
    /// Passes over the training set (default 12).
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Images per step (default 64).
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// Peak learning rate, cosine-decayed to 1% of it (default 2e-3).
    #[arg(long)]
    pub lr: Option<f32>,
    /// adam (default) or sgd (momentum 0.9).
    #[arg(long)]
    pub optimizer: Option<String>,
    /// Seed for initialization and batch order (default 0).
    #[arg(long)]
    pub seed: Option<u64>,
    /// CPU threads (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// relu (default) or tanh (as in 1998).
    #[arg(long)]
    pub activation: Option<String>,
    /// max (default) or avg (as in 1998).
    #[arg(long)]
    pub pool: Option<String>,
    /// Run directory for config, metrics, checkpoint and curves.
    #[arg(long, default_value = "runs/lenet5")]
    pub out: PathBuf,
    /// Continue the run in --out after its last finished epoch.
    #[arg(long)]
    pub resume: bool,
    /// Start over in an --out that holds a run: the old run is moved aside (DIR.1, DIR.2, ...), not deleted.
    #[arg(long, conflicts_with = "resume")]
    pub force: bool,
    /// Directory with the four MNIST .gz files (default: the repo's data/mnist).
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Use only the first N training images (and N/10 validation and test
    /// images): for quick experiments and tests.
    #[arg(long)]
    pub limit: Option<usize>,
    /// Adversarial training: train on each batch and its FGSM copy at this
    /// epsilon (pixel units of the [0, 1] image, in (0, 1]).
    #[arg(long, value_name = "EPS", allow_negative_numbers = true)]
    pub adversarial: Option<f32>,
    /// Stop after K epochs of this invocation, resumable (a stand-in for an interruption).
    #[arg(long, hide = true)]
    pub interrupt_after: Option<usize>,
    #[arg(long)]
    pub json: bool,
}

pub fn set_threads(threads: Option<usize>) -> CliResult<()> {
    if let Some(n) = threads {
        if n == 0 {
            return Err("--threads must be at least 1".into());
        }
        let cores = std::thread::available_parallelism().map_or(1, |c| c.get());
        if n > cores {
            eprintln!(
                "warning: --threads {n} is more than this machine's {cores} cores; the extra threads only wait for each other"
            );
        }
        kindling_tensor::set_num_threads(n)?;
    }
    Ok(())
}

pub fn load_mnist(dir: Option<&Path>) -> CliResult<Mnist> {
    let dir = dir
        .map(Path::to_path_buf)
        .unwrap_or_else(Mnist::default_dir);
    Ok(Mnist::load(&dir)?)
}

/// MNIST's 55,000 / 5,000 / 10,000 split, or with `--limit N` the first N
/// training images and N/10 of validation and test (quick runs and tests).
pub fn mnist_splits(
    data: Option<&Path>,
    limit: Option<usize>,
) -> CliResult<(DigitSet, DigitSet, DigitSet)> {
    let (mut train, mut val, mut test) = load_mnist(data)?.split();
    if let Some(n) = limit {
        if n < 10 {
            return Err("--limit must be at least 10".into());
        }
        train = train.slice(0..n.min(train.len()))?;
        val = val.slice(0..(n / 10).min(val.len()))?;
        test = test.slice(0..(n / 10).min(test.len()))?;
    }
    Ok((train, val, test))
}

impl TrainLenet5 {
    /// The defaults, or with --resume the run's own settings, changed by
    /// the flags given (only --epochs may change on a resume: the library
    /// names any other difference with both values).
    fn options(&self) -> CliResult<TrainOptions> {
        let mut opts: TrainOptions =
            crate::report::resumed_options(self.resume, &self.out)?.unwrap_or_default();
        if let Some(pool) = &self.pool {
            opts.model.pooling = pool.parse().map_err(|e| format!("--pool: {e}"))?;
        }
        if let Some(activation) = &self.activation {
            if !matches!(activation.as_str(), "relu" | "tanh") {
                return Err(
                    format!("--activation must be relu or tanh, got `{activation}`").into(),
                );
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
        if self.data.is_some() {
            opts.data = self.data.clone();
        }
        opts.validate().map_err(|e| e.to_string())?;
        Ok(opts)
    }
}

pub fn train(args: TrainLenet5) -> CliResult<()> {
    let opts = args.options()?;
    set_threads(args.threads)?;
    let out = Report::new(args.json);
    let (train, val, test) = mnist_splits(opts.data.as_deref(), opts.limit)?;
    eprintln!(
        "LeNet-5 on MNIST: {} train / {} validation / {} test images, {} threads, run directory {}",
        train.len(),
        val.len(),
        test.len(),
        kindling_tensor::num_threads(),
        args.out.display()
    );
    let splits = Splits {
        train: &train,
        val: &val,
        test: &test,
    };
    let o = lenet5_run::train(
        &opts,
        &args.out,
        crate::report::run_mode(args.resume, args.force),
        kindling_train::trainer::StopWhen {
            after: args.interrupt_after,
            flag: Some(crate::stop::on_signals()),
        },
        &splits,
        &|l| eprintln!("{l}"),
    )
    .map_err(|e| e.to_string())?;
    out.line(format!(
        "LeNet-5 ({} parameters), {} epochs: validation accuracy {:.2}%, test accuracy {:.2}%",
        o.params,
        o.epochs,
        o.val_accuracy * 100.0,
        o.test_accuracy * 100.0
    ));
    let speed = if o.steps_trained > 0 {
        format!("{:.0} training images/s; ", o.train_images_per_sec)
    } else {
        "already finished, nothing trained now; ".into()
    };
    out.line(format!(
        "  {speed}{:.0} s in all; checkpoint {}",
        o.seconds,
        args.out.join(CHECKPOINT).display()
    ));
    out.finish(json!({
        "params": o.params,
        "epochs": o.epochs,
        "test_accuracy": o.test_accuracy,
        "val_accuracy": o.val_accuracy,
        "train_images_per_sec": o.train_images_per_sec,
        "seconds": o.seconds,
        "run_dir": args.out,
    }));
    Ok(())
}

/// A run directory or a checkpoint file, resolved to the checkpoint.
pub fn checkpoint_path(ckpt: &Path) -> CliResult<PathBuf> {
    let path = if ckpt.is_dir() {
        ckpt.join(CHECKPOINT)
    } else {
        ckpt.to_path_buf()
    };
    if !path.exists() {
        return Err(format!(
            "--ckpt {}: no checkpoint found (expected a run directory or a .safetensors file)",
            ckpt.display()
        )
        .into());
    }
    Ok(path)
}

#[derive(Args)]
pub struct Eval {
    /// Run directory (or model.safetensors) of a trained LeNet-5.
    #[arg(long)]
    pub ckpt: PathBuf,
    /// Draw the confusion matrix to this PNG.
    #[arg(long)]
    pub plot: Option<PathBuf>,
    #[arg(long)]
    pub data: Option<PathBuf>,
    #[arg(long)]
    pub threads: Option<usize>,
    #[arg(long)]
    pub json: bool,
}

pub fn eval(args: Eval) -> CliResult<()> {
    set_threads(args.threads)?;
    let path = checkpoint_path(&args.ckpt)?;
    let (model, _) = lenet5_run::load_model(&path).map_err(|e| e.to_string())?;
    let mnist = load_mnist(args.data.as_deref())?;
    let (_, _, test) = mnist.split();
    let ev = evaluate(&model, &test, 10, Normalize::MNIST).map_err(|e| e.to_string())?;
    let out = Report::new(args.json);
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
        kindling_train::plot::confusion::draw(p, &ev.confusion)?;
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
    #[arg(long, default_value_t = 200)]
    pub steps: usize,
    #[arg(long, default_value_t = 20)]
    pub warmup: usize,
    #[arg(long, default_value_t = 64)]
    pub batch_size: usize,
    #[arg(long, default_value = "adam")]
    pub optimizer: String,
    #[arg(long)]
    pub threads: Option<usize>,
    #[arg(long)]
    pub data: Option<PathBuf>,
    #[arg(long)]
    pub json: bool,
}

pub fn bench(args: BenchLenet5) -> CliResult<()> {
    if args.steps == 0 {
        return Err("--steps must be at least 1".into());
    }
    set_threads(args.threads)?;
    let opts = TrainOptions {
        batch_size: args.batch_size,
        optimizer: args.optimizer.clone(),
        lr: 1e-3,
        ..Default::default()
    };
    let mnist = load_mnist(args.data.as_deref())?;
    let (train, _, _) = mnist.split();
    let r = lenet5_run::bench(&opts, &train, args.steps, args.warmup).map_err(|e| e.to_string())?;
    let out = Report::new(args.json);
    out.line(format!(
        "kindling lenet5 train step, batch {}, {} threads: {:.0} images/s, {:.3} ms/step, peak RSS {:.1} MB",
        args.batch_size,
        kindling_tensor::num_threads(),
        r.train_images_per_sec,
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
    #[arg(long)]
    pub json: bool,
}

/// Each image is brought to MNIST's form (grey, ink light on dark, cropped,
/// 20×20 box, centred by mass in 28×28) and classified.
pub fn predict(args: Predict) -> CliResult<()> {
    let path = checkpoint_path(&args.ckpt)?;
    let (model, _) = lenet5_run::load_model(&path).map_err(|e| e.to_string())?;
    let out = Report::new(args.json);
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
        return Err(format!("{failed} of {} images could not be read", args.images.len()).into());
    }
    out.finish(json!({ "predictions": predictions }));
    Ok(())
}
