//! `kindling lab bert`: masked-language modelling on Chinese text, then the
//! contextual vectors of 道 in different senses against its static
//! embedding (docs/lab-2.md).

use crate::common::{resumed_options, CliResult, JsonArg, RunDirArgs, ThreadsArg};
use crate::report::Report;
use clap::Args;
use kindling_train::bert_run::{self, BertOptions};
use kindling_train::run_dir::RunDir;
use serde_json::json;

#[derive(Args)]
#[command(mut_arg("out", |a| a.required(false).default_value("runs/bert")))]
pub struct Bert {
    /// Corpora, comma-separated (classical-modern: both sides of every pair; tang-poems: titles and lines), or a UTF-8 text file with one sentence per line.
    #[arg(long, default_value = "classical-modern,tang-poems")]
    pub data: String,
    /// Encoder layers.
    #[arg(long, default_value_t = 4)]
    pub n_layer: usize,
    /// Attention heads per layer.
    #[arg(long, default_value_t = 4)]
    pub n_head: usize,
    /// Width of the hidden states.
    #[arg(long, default_value_t = 192)]
    pub n_embd: usize,
    /// Longest input in tokens with [CLS] and [SEP]; longer sentences are cut to a random window.
    #[arg(long, default_value_t = 64)]
    pub max_len: usize,
    /// Sentences per step.
    #[arg(long, default_value_t = 32)]
    pub batch_size: usize,
    /// Optimizer steps [default: 4000].
    #[arg(long)]
    pub steps: Option<usize>,
    /// Peak learning rate of AdamW (linear warmup, cosine decay to --min-lr).
    #[arg(long, default_value_t = 1e-3)]
    pub lr: f32,
    /// Learning rate at the end of the cosine decay.
    #[arg(long, default_value_t = 1e-4)]
    pub min_lr: f32,
    /// Steps of linear warmup to --lr.
    #[arg(long, default_value_t = 200)]
    pub warmup_steps: usize,
    /// AdamW's decoupled weight decay, on matrices only.
    #[arg(long, default_value_t = 0.01)]
    pub weight_decay: f32,
    /// Share of characters selected for prediction (of those: 80% [MASK], 10% random, 10% unchanged).
    #[arg(long, default_value_t = 0.15)]
    pub mask_prob: f32,
    /// Seeds the weights, the batches, the masks and the held-out split.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Score the held-out sentences every N steps.
    #[arg(long, default_value_t = 500, value_name = "N")]
    pub eval_every: usize,
    /// Held-out sentences scored at each evaluation.
    #[arg(long, default_value_t = 2000)]
    pub eval_sentences: usize,
    /// Percent of the sentences held out (by a seeded hash of their text).
    #[arg(long, default_value_t = 2)]
    pub heldout_percent: u64,
    /// Characters seen fewer times in training become [UNK].
    #[arg(long, default_value_t = 2)]
    pub min_count: usize,
    /// Use only the first N sentences of the corpus [default: all].
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,
    #[command(flatten)]
    pub threads: ThreadsArg,
    #[command(flatten)]
    pub run: RunDirArgs,
    #[command(flatten)]
    pub json: JsonArg,
}

pub const DEFAULT_STEPS: usize = 4000;

pub fn bert(args: Bert) -> CliResult<()> {
    let given = BertOptions {
        data: args.data.clone(),
        n_layer: args.n_layer,
        n_head: args.n_head,
        n_embd: args.n_embd,
        max_len: args.max_len,
        batch_size: args.batch_size,
        steps: args.steps.unwrap_or(DEFAULT_STEPS),
        lr: args.lr,
        min_lr: args.min_lr,
        warmup_steps: args.warmup_steps,
        weight_decay: args.weight_decay,
        mask_prob: args.mask_prob,
        seed: args.seed,
        eval_every: args.eval_every,
        eval_sentences: args.eval_sentences,
        heldout_percent: args.heldout_percent,
        min_count: args.min_count,
        limit: args.limit,
    };
    // --resume continues with the run's own options (and --steps, if given).
    let opts = match resumed_options::<BertOptions>(args.run.resume, &args.run.out)? {
        Some(stored) => BertOptions {
            steps: args.steps.unwrap_or(stored.steps),
            ..stored
        },
        None => given,
    };
    opts.validate()?;
    args.threads.apply()?;
    let mut sentences = kindling_train::corpus::sentences(&opts.data)?;
    if let Some(n) = opts.limit {
        sentences.truncate(n);
    }
    let run = RunDir::start(&args.run.out, args.run.mode())?;
    let report = Report::new(args.json.enabled);
    eprintln!(
        "BERT {} layers × {} wide, {} heads, on {} sentences of {}; {} steps of {}, {} threads; run directory {}",
        opts.n_layer,
        opts.n_embd,
        opts.n_head,
        sentences.len(),
        opts.data,
        opts.steps,
        opts.batch_size,
        kindling_tensor::num_threads(),
        args.run.out.display()
    );
    let o = bert_run::run(
        &opts,
        &sentences,
        &run,
        args.run.mode(),
        &crate::common::log_line,
    )?;
    let s = &o.study;
    report.line(format!(
        "masked-token accuracy {:.2}% on {} held-out [MASK] positions (always guessing the most common character: {:.2}%); held-out MLM loss {:.4}",
        o.score.masked_token_accuracy * 100.0,
        o.score.masked_positions,
        o.unigram_accuracy * 100.0,
        o.score.loss
    ));
    report.line(format!(
        "道, last layer: same-sense mean cosine {:.3}, cross-sense {:.3} (the article's four sentences: {:.3} vs {:.3}); nearest other sentence has the same sense for {:.0}% of them",
        s.same_sense_mean,
        s.cross_sense_mean,
        s.article_same_sense_mean,
        s.article_cross_sense_mean,
        s.nearest_same_sense * 100.0
    ));
    report.line(format!(
        "control: different senses with 道 at the same character index: {:.3}",
        s.same_position_cross_sense_mean
    ));
    report.line(format!(
        "道, static embedding: same-sense {:.3}, cross-sense {:.3} (one vector for every sentence)",
        s.static_same_sense_mean, s.static_cross_sense_mean
    ));
    report.line(format!(
        "same − cross by layer (embeddings, then layers 1..{}): {}",
        opts.n_layer,
        s.gap_by_layer
            .iter()
            .map(|g| format!("{g:.3}"))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    report.line(format!(
        "{} parameters, {} steps in {:.1} s; picture: {}",
        o.parameters,
        o.steps,
        o.seconds,
        run.file("similarity.png").display()
    ));
    let result = json!({
        "masked_token_accuracy": o.score.masked_token_accuracy,
        "selected_accuracy": o.score.selected_accuracy,
        "masked_positions": o.score.masked_positions,
        "unigram_accuracy": o.unigram_accuracy,
        "val_loss": o.score.loss,
        "vector": "final hidden state (after the last LayerNorm) at 道",
        "sentences": s.probes.iter().map(|p| &p.sentence).collect::<Vec<_>>(),
        "index": s.probes.iter().map(|p| p.index).collect::<Vec<_>>(),
        "senses": s.probes.iter().map(|p| &p.sense).collect::<Vec<_>>(),
        "article": s.probes.iter().map(|p| p.article).collect::<Vec<_>>(),
        "similarity": s.similarity,
        "static_similarity": s.static_similarity,
        "same_sense_mean": s.same_sense_mean,
        "cross_sense_mean": s.cross_sense_mean,
        "static_same_sense_mean": s.static_same_sense_mean,
        "static_cross_sense_mean": s.static_cross_sense_mean,
        "article_same_sense_mean": s.article_same_sense_mean,
        "article_cross_sense_mean": s.article_cross_sense_mean,
        "nearest_same_sense": s.nearest_same_sense,
        "same_position_cross_sense_mean": s.same_position_cross_sense_mean,
        "gap_by_layer": s.gap_by_layer,
        "parameters": o.parameters,
        "vocab_size": o.vocab_size,
        "train_sentences": o.train_sentences,
        "heldout_sentences": o.heldout_sentences,
        "steps": o.steps,
        "train_seconds": o.seconds,
        "picture": run.file("similarity.png"),
        "out": args.run.out,
    });
    run.write_json("results.json", &result)?;
    report.finish(result);
    Ok(())
}
