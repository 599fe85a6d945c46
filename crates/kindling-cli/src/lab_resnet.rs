//! `kindling lab resnet`: the degradation problem (deeper plain networks
//! train worse) and the residual shortcut that fixes it, as He et al. 2016
//! show it, on Fashion-MNIST (docs/lab-2.md).

use crate::common::{run_mode, CliResult, JsonArg, ThreadsArg};
use crate::report::Report;
use anyhow::{bail, Context};
use clap::Args;
use kindling_data::{registry, DigitSet};
use kindling_train::plot::degradation::{draw_degradation, ErrorCurves};
use kindling_train::resnet_run::{self, Outcome, ResnetOptions, Splits};
use kindling_train::run_dir::{RunDir, RunMode};
use kindling_train::trainer::StopWhen;
use serde_json::json;
use std::path::PathBuf;

#[derive(Args)]
pub struct Resnet {
    /// Depths to train, each 6n + 2 (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "8,20,56")]
    pub depth: Vec<usize>,
    /// Train the plain networks (no shortcuts) [default: both plain and residual].
    #[arg(long)]
    pub plain: bool,
    /// Train the residual networks [default: both plain and residual].
    #[arg(long)]
    pub residual: bool,
    /// Passes over the training images.
    #[arg(long, default_value_t = 10)]
    pub epochs: usize,
    /// Images per step.
    #[arg(long, default_value_t = 128)]
    pub batch_size: usize,
    /// Peak learning rate of SGD (momentum 0.9); a half cosine takes it to 0.
    #[arg(long, default_value_t = 0.1)]
    pub lr: f32,
    /// Weight decay on convolution and fully-connected weights (not batch norm, not biases).
    #[arg(long, default_value_t = 1e-4)]
    pub weight_decay: f32,
    /// Seeds the initial weights and the batch order.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Train on the first N of Fashion-MNIST's 60,000 training images [default: all].
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,
    /// Test on the first M of the 10,000 test images [default: all].
    #[arg(long, value_name = "M")]
    pub test_limit: Option<usize>,
    #[command(flatten)]
    pub threads: ThreadsArg,
    /// Directory for results.json, degradation.png and a run directory per network.
    #[arg(long, value_name = "DIR", default_value = "runs/resnet")]
    pub out: PathBuf,
    /// Continue the runs in --out: finished networks are kept, the others continue from their last checkpoint.
    #[arg(long)]
    pub resume: bool,
    /// Start over in an --out that holds results: the old ones are moved aside (DIR.1, ...), not deleted.
    #[arg(long, conflicts_with = "resume")]
    pub force: bool,
    #[command(flatten)]
    pub json: JsonArg,
}

/// The first `n` images of a set (all of them without `n`).
fn first(set: DigitSet, n: Option<usize>, flag: &str) -> CliResult<DigitSet> {
    match n {
        None => Ok(set),
        Some(0) => bail!("{flag} must be at least 1"),
        Some(n) => Ok(set.slice(0..n.min(set.len()))?),
    }
}

/// Fashion-MNIST's training and test sets from the data root.
fn fashion_mnist() -> CliResult<(DigitSet, DigitSet)> {
    let dir = registry::dataset_dir("fashion-mnist")?;
    let read = |images: &str, labels: &str| {
        DigitSet::read_idx(&dir.join(images), &dir.join(labels))
            .with_context(|| format!("fashion-mnist in {}", dir.display()))
    };
    Ok((
        read("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz")?,
        read("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")?,
    ))
}

pub fn resnet(args: Resnet) -> CliResult<()> {
    if args.depth.is_empty() {
        bail!("--depth needs at least one depth");
    }
    let variants: Vec<bool> = match (args.plain, args.residual) {
        (true, false) => vec![false],
        (false, true) => vec![true],
        _ => vec![false, true],
    };
    let opts_for = |depth: usize, residual: bool, train: usize, test: usize| ResnetOptions {
        depth,
        residual,
        epochs: args.epochs,
        batch_size: args.batch_size,
        lr: args.lr,
        momentum: 0.9,
        weight_decay: args.weight_decay,
        seed: args.seed,
        train_images: train,
        test_images: test,
    };
    // Every option checked before any data is read or directory made.
    for &depth in &args.depth {
        opts_for(depth, true, 1, 1).validate()?;
    }
    args.threads.apply()?;
    let (train, test) = fashion_mnist()?;
    let train = first(train, args.limit, "--limit")?;
    let test = first(test, args.test_limit, "--test-limit")?;
    let mode = run_mode(args.resume, args.force);
    let top = RunDir::start(&args.out, mode)?;
    let report = Report::new(args.json.enabled);
    eprintln!(
        "CIFAR ResNets of depth {:?} ({}) on Fashion-MNIST 1x28x28: {} training and {} test images, {} epochs of batch {}, SGD lr {} (cosine), momentum 0.9, weight decay {}, {} threads; results in {}",
        args.depth,
        if variants.len() == 2 { "plain and residual" } else if variants[0] { "residual" } else { "plain" },
        train.len(),
        test.len(),
        args.epochs,
        args.batch_size,
        args.lr,
        args.weight_decay,
        kindling_tensor::num_threads(),
        args.out.display()
    );
    top.write_json(
        "config.json",
        &json!({
            "depths": args.depth,
            "variants": variants.iter().map(|&r| if r { "residual" } else { "plain" }).collect::<Vec<_>>(),
            "epochs": args.epochs,
            "batch_size": args.batch_size,
            "lr": args.lr,
            "weight_decay": args.weight_decay,
            "seed": args.seed,
            "train_images": train.len(),
            "test_images": test.len(),
        }),
    )?;
    let data = Splits {
        train: &train,
        test: &test,
    };
    let mut outcomes: Vec<Outcome> = Vec::new();
    for &residual in &variants {
        for &depth in &args.depth {
            let opts = opts_for(depth, residual, train.len(), test.len());
            let dir = args.out.join(format!("{}-{depth}", opts.variant()));
            // Resuming: a network not started yet starts fresh.
            let sub_mode = if mode == RunMode::Resume && dir.is_dir() {
                RunMode::Resume
            } else {
                RunMode::Fresh
            };
            let run = RunDir::start(&dir, sub_mode)?;
            let stop = StopWhen {
                after: None,
                flag: Some(crate::stop::on_signals()),
            };
            let o = resnet_run::run(&opts, &data, &run, sub_mode, stop, &crate::common::log_line)?;
            report.line(format!(
                "{}-{depth}: {} parameters, training error {:.2}%, test error {:.2}%, {:.0} s ({:.0} images/s)",
                o.variant,
                o.params,
                o.final_train_error * 100.0,
                o.test_error * 100.0,
                o.seconds,
                o.train_images_per_sec
            ));
            outcomes.push(o);
        }
    }
    let curves = |residual: bool| -> Vec<ErrorCurves> {
        outcomes
            .iter()
            .filter(|o| (o.variant == "residual") == residual)
            .map(|o| ErrorCurves {
                depth: o.depth,
                train_errors: o.train_errors.clone(),
                test_errors: o.test_errors.clone(),
            })
            .collect()
    };
    let png = top.file("degradation.png");
    draw_degradation(&png, &curves(false), &curves(true))
        .map_err(|e| anyhow::anyhow!("{}: {e}", png.display()))?;
    report.line(format!("picture: {}", png.display()));
    let result = json!({
        "runs": outcomes.iter().map(|o| json!({
            "depth": o.depth,
            "variant": o.variant,
            "params": o.params,
            "final_train_error": o.final_train_error,
            "test_error": o.test_error,
            "time_seconds": o.seconds,
            "train_images_per_sec": o.train_images_per_sec,
            "train_errors": o.train_errors,
            "test_errors": o.test_errors,
        })).collect::<Vec<_>>(),
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "train_images": train.len(),
        "test_images": test.len(),
        "threads": kindling_tensor::num_threads(),
        "out": args.out,
    });
    top.write_json("results.json", &result)?;
    report.finish(result);
    Ok(())
}
