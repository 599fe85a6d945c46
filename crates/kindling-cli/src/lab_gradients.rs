//! `kindling lab gradients`: vanishing gradients in a deep fully-connected
//! network on MNIST, and the residual shortcut that removes them
//! (docs/lab-2.md).

use crate::common::{mnist_splits, CliResult, JsonArg, MnistDirArg, ResultsDirArgs, ThreadsArg};
use crate::report::Report;
use clap::{Args, Subcommand};
use kindling_train::gradients_run::{self, GradientsOptions, Outcome, Splits};
use kindling_train::run_dir::RunDir;
use serde_json::json;

#[derive(Subcommand)]
pub enum Lab {
    /// How fast each hidden layer of a deep network learns (the norm of its
    /// gradient): sigmoid, tanh or ReLU, with or without residual shortcuts.
    Gradients(Gradients),
    /// A scaling law that predicts: fit L(N, D) = E + A/N^α + B/D^β to a family
    /// of small language models, predict a larger run, then train it.
    Scaling(crate::lab_scaling::Scaling),
    /// Word vectors by skip-gram with negative sampling (Mikolov et al. 2013),
    /// scored on the analogy questions, WordSim-353 and SimLex-999.
    Word2vec(crate::lab_word2vec::Word2vec),
    /// "a is to b as c is to ?" on saved word vectors (b − a + c), or
    /// `--evaluate` them on the standard tests.
    Analogy(crate::lab_word2vec::Analogy),
    /// The degradation problem: plain and residual CIFAR ResNets (6n+2 layers) on Fashion-MNIST, training error per epoch.
    Resnet(crate::lab_resnet::Resnet),
    /// Accuracy against sequence length of a recurrent encoder–decoder,
    /// plain and with Bahdanau attention, copying or reversing sequences.
    Seq2seq(crate::lab_seq2seq::Seq2seq),
    /// BERT: masked-language modelling on Chinese text, then the contextual
    /// vectors of 道 in its senses (way, road, say) against its static embedding.
    Bert(crate::lab_bert::Bert),
    /// Classical ↔ modern Chinese two ways: an encoder–decoder Transformer and a
    /// decoder-only model given "source [SEP] target"; BLEU and chrF as sacreBLEU
    /// computes them, greedy and beam search, cross-attention maps.
    Translate(crate::lab_translate::Translate),
}

#[derive(Args)]
#[command(mut_arg("out", |a| a.required(false).default_value("runs/gradients")))]
pub struct Gradients {
    /// Hidden layers.
    #[arg(long, default_value_t = 4)]
    pub depth: usize,
    /// Units in every hidden layer.
    #[arg(long, default_value_t = 30)]
    pub width: usize,
    /// sigmoid, tanh or relu.
    #[arg(long, default_value = "sigmoid")]
    pub activation: String,
    /// Every hidden layer after the first computes h + f(W h + b).
    #[arg(long)]
    pub residual: bool,
    /// Passes over the training images.
    #[arg(long, default_value_t = 1)]
    pub epochs: usize,
    /// Images per step.
    #[arg(long, default_value_t = 10)]
    pub batch_size: usize,
    /// Learning rate of plain SGD (constant; no momentum).
    #[arg(long, default_value_t = 0.1)]
    pub lr: f32,
    /// L2 weight decay on the weights, not the biases: Nielsen's λ/n (0: plain SGD).
    #[arg(long, default_value_t = 0.0)]
    pub weight_decay: f32,
    /// Seeds the initial weights and the batch order.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Record the gradient norms after every N-th step.
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub record_every: usize,
    /// Train on the first N images (N/10 validation and test) [default: all 55,000].
    #[arg(long)]
    pub limit: Option<usize>,
    #[command(flatten)]
    pub data: MnistDirArg,
    #[command(flatten)]
    pub threads: ThreadsArg,
    #[command(flatten)]
    pub run: ResultsDirArgs,
    #[command(flatten)]
    pub json: JsonArg,
}

pub fn lab(cmd: Lab) -> CliResult<()> {
    match cmd {
        Lab::Gradients(a) => gradients(a),
        Lab::Scaling(a) => crate::lab_scaling::scaling(a),
        Lab::Word2vec(a) => crate::lab_word2vec::word2vec(a),
        Lab::Analogy(a) => crate::lab_word2vec::analogy(a),
        Lab::Resnet(a) => crate::lab_resnet::resnet(a),
        Lab::Seq2seq(a) => crate::lab_seq2seq::seq2seq(a),
        Lab::Bert(a) => crate::lab_bert::bert(a),
        Lab::Translate(a) => crate::lab_translate::translate(a),
    }
}

fn gradients(args: Gradients) -> CliResult<()> {
    let opts = GradientsOptions {
        depth: args.depth,
        width: args.width,
        activation: args.activation.clone(),
        residual: args.residual,
        epochs: args.epochs,
        batch_size: args.batch_size,
        lr: args.lr,
        seed: args.seed,
        record_every: args.record_every,
        weight_decay: args.weight_decay,
    };
    opts.validate()?;
    args.threads.apply()?;
    let (train, val, test) = mnist_splits(args.data.dir.as_deref(), args.limit)?;
    let run = RunDir::start(&args.run.out, args.run.mode())?;
    let report = Report::new(args.json.enabled);
    eprintln!(
        "{} hidden layers of {} {} units{}, {} training images, batch {}, SGD at lr {}, {} threads; run directory {}",
        opts.depth,
        opts.width,
        opts.activation,
        if opts.residual { " with shortcuts" } else { "" },
        train.len(),
        opts.batch_size,
        opts.lr,
        kindling_tensor::num_threads(),
        args.run.out.display()
    );
    let data = Splits {
        train: &train,
        val: &val,
        test: &test,
    };
    let o = gradients_run::run(&opts, &data, &run, &crate::common::log_line)?;
    let ratio = Outcome::ratio(&o.bias_grad_norms);
    let weight_ratio = Outcome::ratio(&o.weight_grad_norms);
    let initial_ratio = Outcome::ratio(&o.initial_bias_grad_norms);
    let list = |v: &[f64]| {
        v.iter()
            .map(|x| format!("{x:.3e}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    report.line(format!(
        "speed of learning, mean ‖∂C/∂b‖ per hidden layer (first to last): {}",
        list(&o.bias_grad_norms)
    ));
    report.line(format!(
        "mean ‖∂C/∂W‖ per hidden layer (first to last): {}",
        list(&o.weight_grad_norms)
    ));
    report.line(format!(
        "last / first: {ratio:.1} (biases), {weight_ratio:.1} (weights); test accuracy {:.2}% on {} images; {} steps in {:.1} s",
        o.test_accuracy * 100.0,
        test.len(),
        o.steps,
        o.seconds
    ));
    report.line(format!(
        "at the start (first {} recorded steps): ‖∂C/∂b‖ {}, last / first {initial_ratio:.1}",
        gradients_run::INITIAL_STEPS.min(o.steps.div_ceil(opts.record_every)),
        list(&o.initial_bias_grad_norms)
    ));
    report.line(format!("picture: {}", run.file("grad_norms.png").display()));
    let result = json!({
        "depth": opts.depth,
        "width": opts.width,
        "activation": opts.activation,
        "residual": opts.residual,
        "weight_decay": opts.weight_decay,
        "measure": "bias",
        "grad_norms": o.bias_grad_norms,
        "bias_grad_norms": o.bias_grad_norms,
        "weight_grad_norms": o.weight_grad_norms,
        "ratio_last_to_first": ratio,
        "weight_ratio_last_to_first": weight_ratio,
        "initial_grad_norms": o.initial_bias_grad_norms,
        "initial_weight_grad_norms": o.initial_weight_grad_norms,
        "initial_ratio_last_to_first": initial_ratio,
        "ratio_by_epoch": o.ratio_by_epoch,
        "test_accuracy": o.test_accuracy,
        "val_accuracy": o.val_accuracy,
        "steps": o.steps,
        "train_seconds": o.seconds,
        "out": args.run.out,
    });
    run.write_json("results.json", &result)?;
    report.finish(result);
    Ok(())
}
