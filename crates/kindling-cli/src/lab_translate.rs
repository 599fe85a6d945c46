//! `kindling lab translate`: classical ↔ modern Chinese with an
//! encoder–decoder Transformer and with a decoder-only model given
//! "source [SEP] target", scored with sacreBLEU's BLEU and chrF, greedy and
//! beam search, and the encoder–decoder's cross-attention for one sentence
//! (docs/lab-2.md).

use crate::common::{resumed_options, CliResult, JsonArg, RunDirArgs, ThreadsArg};
use crate::report::Report;
use anyhow::{bail, Context};
use clap::Args;
use kindling_data::classical_modern::{self, Pair};
use kindling_train::plot::attention::draw_with_axes;
use kindling_train::run_dir::RunDir;
use kindling_train::translate_run::{self, Arch, Direction, TranslateOptions};
use serde_json::json;
use std::path::Path;

#[derive(Args)]
#[command(mut_arg("out", |a| a.required(false).default_value("runs/translate")))]
pub struct Translate {
    /// The pairs: `classical-modern` (fetched with `kindling data fetch classical-modern`) or a JSON-lines file (.jsonl or .jsonl.gz) of {"classical": ..., "modern": ...}.
    #[arg(long, default_value = "classical-modern")]
    pub data: String,
    /// Models, comma-separated: encoder-decoder, decoder-only.
    #[arg(long, default_value = "encoder-decoder,decoder-only")]
    pub models: String,
    /// Directions, comma-separated: modern-classical, classical-modern.
    #[arg(long, default_value = "modern-classical,classical-modern")]
    pub directions: String,
    /// Layers on each side of the encoder–decoder; the decoder-only model gets twice as many.
    #[arg(long, default_value_t = 3)]
    pub n_layer: usize,
    /// Attention heads per layer.
    #[arg(long, default_value_t = 4)]
    pub n_head: usize,
    /// Width of the hidden states.
    #[arg(long, default_value_t = 128)]
    pub n_embd: usize,
    /// Pairs with a side longer than this many characters are left out.
    #[arg(long, default_value_t = 32)]
    pub max_chars: usize,
    /// Pairs per step.
    #[arg(long, default_value_t = 32)]
    pub batch_size: usize,
    /// Optimizer steps per model [default: 3000].
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
    /// Seeds the weights, the batches and the held-out split.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Measure the held-out loss every N steps.
    #[arg(long, default_value_t = 500, value_name = "N")]
    pub eval_every: usize,
    /// Held-out pairs whose loss is measured at each evaluation.
    #[arg(long, default_value_t = 512)]
    pub eval_loss_pairs: usize,
    /// Held-out pairs translated and scored (BLEU, chrF) at the end.
    #[arg(long, default_value_t = 500)]
    pub eval_pairs: usize,
    /// Per mille of the pairs held out (by a seeded hash of the classical text).
    #[arg(long, default_value_t = 20)]
    pub heldout_per_mille: u64,
    /// Beam width of beam search (greedy is scored too).
    #[arg(long, default_value_t = 4)]
    pub beam: usize,
    /// α in beam search's score / length^α (0: summed log-probability, 1: per-character mean).
    #[arg(long, default_value_t = 1.0)]
    pub length_penalty: f32,
    /// Characters seen fewer times in training become [UNK].
    #[arg(long, default_value_t = 2)]
    pub min_count: usize,
    /// Use only the first N pairs of the corpus [default: all].
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,
    #[command(flatten)]
    pub threads: ThreadsArg,
    #[command(flatten)]
    pub run: RunDirArgs,
    #[command(flatten)]
    pub json: JsonArg,
}

pub const DEFAULT_STEPS: usize = 3000;

fn list<T>(flag: &str, text: &str, parse: fn(&str) -> Option<T>, known: &str) -> CliResult<Vec<T>> {
    text.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| parse(s).with_context(|| format!("{flag} {s}: unknown (known: {known})")))
        .collect()
}

fn load_pairs(data: &str) -> CliResult<Vec<Pair>> {
    if data == "classical-modern" {
        let dir = kindling_data::registry::dataset_dir("classical-modern")?;
        return Ok(classical_modern::load(
            &dir.join(classical_modern::FILE_NAME),
        )?);
    }
    let path = Path::new(data);
    if !path.is_file() {
        bail!("--data {data}: not `classical-modern` and no such file");
    }
    if data.ends_with(".gz") {
        return Ok(classical_modern::load(path)?);
    }
    let text = std::fs::read_to_string(path).with_context(|| format!("--data {data}"))?;
    Ok(classical_modern::parse(&text, path)?)
}

pub fn translate(args: Translate) -> CliResult<()> {
    let given = TranslateOptions {
        data: args.data.clone(),
        models: list(
            "--models",
            &args.models,
            Arch::parse,
            "encoder-decoder, decoder-only",
        )?,
        directions: list(
            "--directions",
            &args.directions,
            Direction::parse,
            "modern-classical, classical-modern",
        )?,
        n_layer: args.n_layer,
        n_head: args.n_head,
        n_embd: args.n_embd,
        max_chars: args.max_chars,
        batch_size: args.batch_size,
        steps: args.steps.unwrap_or(DEFAULT_STEPS),
        lr: args.lr,
        min_lr: args.min_lr,
        warmup_steps: args.warmup_steps,
        weight_decay: args.weight_decay,
        seed: args.seed,
        eval_every: args.eval_every,
        eval_loss_pairs: args.eval_loss_pairs,
        eval_pairs: args.eval_pairs,
        heldout_per_mille: args.heldout_per_mille,
        beam: args.beam,
        length_penalty: args.length_penalty,
        min_count: args.min_count,
        limit: args.limit,
    };
    // --resume continues with the run's own options.
    let opts =
        resumed_options::<TranslateOptions>(args.run.resume, &args.run.out)?.unwrap_or(given);
    opts.validate()?;
    args.threads.apply()?;
    let mut pairs = load_pairs(&opts.data)?;
    if let Some(n) = opts.limit {
        pairs.truncate(n);
    }
    let run = RunDir::start(&args.run.out, args.run.mode())?;
    run.write_json("config.json", &serde_json::to_value(&opts)?)?;
    let report = Report::new(args.json.enabled);
    eprintln!(
        "translation: {} × {}, {} layers per side × {} wide, {} heads, {} steps of {} pairs, {} threads; run directory {}",
        opts.models.iter().map(|m| m.name()).collect::<Vec<_>>().join(", "),
        opts.directions.iter().map(|d| d.name()).collect::<Vec<_>>().join(", "),
        opts.n_layer,
        opts.n_embd,
        opts.n_head,
        opts.steps,
        opts.batch_size,
        kindling_tensor::num_threads(),
        args.run.out.display()
    );
    let o = translate_run::run(
        &opts,
        &pairs,
        &run,
        args.run.resume,
        &crate::common::log_line,
    )?;
    report.line(format!(
        "{} training pairs, {} held out, {} of them translated; {} pairs longer than {} characters left out; vocabulary {}",
        o.train_pairs, o.heldout_pairs, o.scored_pairs, o.too_long, opts.max_chars, o.vocab_size
    ));
    report.line(format!(
        "{:<17} {:<17} {:>10} {:>9} {:>12} {:>11} {:>11} {:>10}",
        "direction",
        "model",
        "parameters",
        "val loss",
        "greedy BLEU",
        "greedy chrF",
        "beam BLEU",
        "beam chrF"
    ));
    for r in &o.results {
        report.line(format!(
            "{:<17} {:<17} {:>10} {:>9.4} {:>12.2} {:>11.2} {:>11.2} {:>10.2}",
            r.direction.name(),
            r.model.name(),
            r.parameters,
            r.val_loss,
            r.greedy.bleu.score,
            r.greedy.chrf.score,
            r.beam.bleu.score,
            r.beam.chrf.score
        ));
    }
    for c in &o.copy_baselines {
        report.line(format!(
            "{:<17} {:<17} {:>10} {:>9} {:>12.2} {:>11.2}",
            c.direction.name(),
            "copy the source",
            "-",
            "-",
            c.bleu.score,
            c.chrf.score
        ));
    }
    for r in &o.results {
        report.line(format!(
            "{} {}: BLEU 95% bootstrap interval greedy [{:.2}, {:.2}], beam [{:.2}, {:.2}]",
            r.direction.name(),
            r.model.name(),
            r.greedy.bleu_ci95[0],
            r.greedy.bleu_ci95[1],
            r.beam.bleu_ci95[0],
            r.beam.bleu_ci95[1]
        ));
    }
    for c in &o.comparisons {
        report.line(format!(
            "{}: {} − {} = {:+.2} BLEU, 95% interval [{:+.2}, {:+.2}], higher in {:.1}% of {} paired resamples",
            c.direction.name(),
            c.b,
            c.a,
            c.difference,
            c.ci95[0],
            c.ci95[1],
            c.b_wins * 100.0,
            translate_run::BOOTSTRAP_SAMPLES
        ));
    }
    report.line(format!(
        "BLEU: sacreBLEU's corpus BLEU with --tokenize zh, one reference; chrF: character 6-grams, β = 2; beam {} with length penalty {}",
        opts.beam, opts.length_penalty
    ));
    let mut pictures = Vec::new();
    for a in &o.attention {
        let png = run.file(&format!("cross-attention-{}.png", a.direction.name()));
        draw_with_axes(
            &png,
            &a.output,
            &a.source,
            &[(
                // Rows: the characters written; columns: the source.
                format!("{}, last layer", a.direction.name()),
                a.weights.clone(),
            )],
        )
        .map_err(|e| anyhow::anyhow!("{}: {e}", png.display()))?;
        report.line(format!(
            "cross-attention for 「{}」 → 「{}」: {}",
            a.source.concat(),
            a.output
                .iter()
                .filter(|t| t.as_str() != translate_run::END_LABEL)
                .cloned()
                .collect::<String>(),
            png.display()
        ));
        pictures.push(png);
    }
    report.line(format!("all in {:.1} s", o.seconds));
    let result = json!({
        "results": o.results,
        "comparisons": o.comparisons,
        "copy_baselines": o.copy_baselines,
        "bootstrap_samples": translate_run::BOOTSTRAP_SAMPLES,
        "train_pairs": o.train_pairs,
        "heldout_pairs": o.heldout_pairs,
        "scored_pairs": o.scored_pairs,
        "too_long": o.too_long,
        "vocab_size": o.vocab_size,
        "bleu_tokenize": "zh",
        "chrf": "chrF2 (character 6-grams, beta 2)",
        "beam": opts.beam,
        "length_penalty": opts.length_penalty,
        "pictures": pictures,
        "cross_attention": o.attention,
        "seconds": o.seconds,
        "out": args.run.out,
    });
    run.write_json("results.json", &result)?;
    report.finish(result);
    Ok(())
}
