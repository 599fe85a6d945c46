//! `kindling lab seq2seq`: a recurrent encoder–decoder with and without
//! Bahdanau attention on copying or reversing sequences of growing length
//! (docs/lab-2.md).

use crate::common::{CliResult, JsonArg, ResultsDirArgs, ThreadsArg};
use crate::report::Report;
use anyhow::anyhow;
use clap::Args;
use kindling_train::run_dir::RunDir;
use kindling_train::seq2seq_run::{self, Seq2SeqOptions, SeqTask};
use serde_json::json;

#[derive(Args)]
#[command(mut_arg("out", |a| a.required(false).default_value("runs/seq2seq")))]
pub struct Seq2seq {
    /// copy or reverse: the target is the source or the source backwards.
    #[arg(long, default_value = "reverse")]
    pub task: String,
    /// Source lengths, comma-separated: both models are trained at each.
    #[arg(long, default_value = "5,10,20,40,80", value_name = "L,...")]
    pub lengths: String,
    /// gru or lstm: the encoder's and the decoder's cell.
    #[arg(long, default_value = "gru")]
    pub cell: String,
    /// Units per direction of the bidirectional encoder, and of the decoder (embeddings as wide).
    #[arg(long, default_value_t = 64)]
    pub hidden: usize,
    /// Alphabet size: tokens are drawn uniformly from 0..N.
    #[arg(long, default_value_t = 10, value_name = "N")]
    pub symbols: usize,
    /// Training steps of every model, at every length.
    #[arg(long, default_value_t = 1500)]
    pub steps: usize,
    /// Fresh random sequences per step.
    #[arg(long, default_value_t = 32)]
    pub batch_size: usize,
    /// Adam's learning rate (constant; gradients clipped to norm 1).
    #[arg(long, default_value_t = 3e-3)]
    pub lr: f32,
    /// Seeds the initial weights, the training sequences and the held-out set.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Held-out sequences per length, decoded greedily.
    #[arg(long, default_value_t = 500, value_name = "N")]
    pub eval_sequences: usize,
    #[command(flatten)]
    pub threads: ThreadsArg,
    #[command(flatten)]
    pub run: ResultsDirArgs,
    #[command(flatten)]
    pub json: JsonArg,
}

/// `5,10,20` → [5, 10, 20]; the error names the flag and the bad item.
fn parse_lengths(text: &str) -> CliResult<Vec<usize>> {
    text.split(',')
        .map(|item| {
            let item = item.trim();
            item.parse::<usize>().map_err(|_| {
                anyhow!("--lengths: `{item}` is not a whole number (give lengths like 5,10,20)")
            })
        })
        .collect()
}

pub fn seq2seq(args: Seq2seq) -> CliResult<()> {
    let opts = Seq2SeqOptions {
        task: SeqTask::parse(&args.task)?,
        lengths: parse_lengths(&args.lengths)?,
        cell: args.cell.clone(),
        hidden: args.hidden,
        symbols: args.symbols,
        steps: args.steps,
        batch_size: args.batch_size,
        lr: args.lr,
        seed: args.seed,
        eval_sequences: args.eval_sequences,
    };
    opts.validate()?;
    args.threads.apply()?;
    let run = RunDir::start(&args.run.out, args.run.mode())?;
    run.write_json("config.json", &serde_json::to_value(&opts)?)?;
    let report = Report::new(args.json.enabled);
    eprintln!(
        "{} over {} symbols, lengths {:?}: bidirectional {} encoder of {} units, plain and with attention, {} steps of {} sequences each, Adam at lr {}, {} threads; run directory {}",
        opts.task.name(),
        opts.symbols,
        opts.lengths,
        opts.cell.to_uppercase(),
        opts.hidden,
        opts.steps,
        opts.batch_size,
        opts.lr,
        kindling_tensor::num_threads(),
        args.run.out.display()
    );
    let o = seq2seq_run::run(&opts, &run, &crate::common::log_line)?;
    report.line(
        "length  plain token/sequence   attention token/sequence   train s (plain, attention)",
    );
    for r in &o.results {
        report.line(format!(
            "{:>6}  {:>6.1}% / {:>5.1}%       {:>6.1}% / {:>5.1}%           {:.0}, {:.0}",
            r.length,
            r.plain.accuracy.token * 100.0,
            r.plain.accuracy.sequence * 100.0,
            r.attention.accuracy.token * 100.0,
            r.attention.accuracy.sequence * 100.0,
            r.plain.train_seconds,
            r.attention.train_seconds
        ));
    }
    report.line(format!(
        "held-out accuracy of greedy decoding on {} fresh sequences per length; chance per token {:.1}%; {:.0} s in all",
        opts.eval_sequences,
        100.0 / opts.symbols as f64,
        o.seconds
    ));
    report.line(format!("picture: {}", run.file("accuracy.png").display()));
    if let Some(h) = &o.heatmap {
        report.line(format!(
            "attention weights at length {}: {}",
            h.length,
            run.file("attention.png").display()
        ));
    }
    let per_length: Vec<_> = o
        .results
        .iter()
        .map(|r| {
            json!({
                "length": r.length,
                "plain_accuracy": r.plain.accuracy.token,
                "attention_accuracy": r.attention.accuracy.token,
                "plain_sequence_accuracy": r.plain.accuracy.sequence,
                "attention_sequence_accuracy": r.attention.accuracy.sequence,
                "plain_train_loss": r.plain.train_loss,
                "attention_train_loss": r.attention.train_loss,
                "plain_parameters": r.plain.parameters,
                "attention_parameters": r.attention.parameters,
                "plain_train_seconds": r.plain.train_seconds,
                "attention_train_seconds": r.attention.train_seconds,
            })
        })
        .collect();
    let result = json!({
        "task": opts.task.name(),
        "cell": opts.cell,
        "hidden": opts.hidden,
        "symbols": opts.symbols,
        "steps": opts.steps,
        "batch_size": opts.batch_size,
        "lr": opts.lr,
        "seed": opts.seed,
        "eval_sequences": opts.eval_sequences,
        "accuracy": "token",
        "chance_accuracy": 1.0 / opts.symbols as f64,
        "results": per_length,
        "heatmap_length": o.heatmap.as_ref().map(|h| h.length),
        "seconds": o.seconds,
        "out": args.run.out,
    });
    run.write_json("results.json", &result)?;
    report.finish(result);
    Ok(())
}
