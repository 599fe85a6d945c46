//! `eval-lm`: how good is a language model? Perplexity of a text,
//! multiple-choice accuracy on a JSONL task, and whether a task leaks into
//! a training corpus. The definitions are in `docs/eval-lm.md`; the work is
//! in `kindling_train::eval_lm`.

use crate::common::{CliResult, JsonArg, ThreadsArg};
use crate::lm::{load_with, AdapterArg};
use crate::report::Report;
use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use kindling_train::eval_lm::{self, ChoiceOptions, PerplexityOptions};
use kindling_train::progress;
use serde_json::json;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

#[derive(Subcommand)]
pub enum EvalLmCmd {
    /// Perplexity of a text by sliding windows, as Hugging Face's perplexity guide computes it.
    Perplexity(Perplexity),
    /// Multiple-choice accuracy (acc and acc_norm, as lm-evaluation-harness defines them) on a JSONL task.
    Choice(Choice),
    /// Which items of a JSONL task share a 13-word sequence with a training corpus (GPT-3's check).
    Contamination(Contamination),
}

pub fn run(cmd: EvalLmCmd) -> CliResult<()> {
    match cmd {
        EvalLmCmd::Perplexity(a) => perplexity(a),
        EvalLmCmd::Choice(a) => choice(a),
        EvalLmCmd::Contamination(a) => contamination(a),
    }
}

#[derive(Args)]
pub struct Perplexity {
    /// A GGUF file, a Hugging Face model folder or a Kindling run directory.
    #[arg(long)]
    pub model: PathBuf,
    /// A UTF-8 text file to score (this or --corpus is required).
    #[arg(long, value_name = "FILE", required_unless_present = "corpus")]
    pub text: Option<PathBuf>,
    /// A named corpus's validation split, the last 10% of its tokens as `train lm` splits it: shakespeare or tang-poems (this or --text is required).
    #[arg(long, value_name = "NAME", conflicts_with = "text")]
    pub corpus: Option<String>,
    /// Tokens in each window [default: the model's context, at most 1024].
    #[arg(long, value_name = "N")]
    pub max_length: Option<usize>,
    /// Tokens between the starts of two windows; only the tokens past the previous window are scored [default: half of --max-length].
    #[arg(long, value_name = "S")]
    pub stride: Option<usize>,
    #[command(flatten)]
    pub adapter: AdapterArg,
    #[command(flatten)]
    pub threads: ThreadsArg,
    #[command(flatten)]
    pub json: JsonArg,
}

fn perplexity(args: Perplexity) -> CliResult<()> {
    args.threads.apply()?;
    let options = PerplexityOptions {
        max_length: args.max_length,
        stride: args.stride,
    };
    // What can be checked without the model is, before it loads.
    options.check()?;
    let text = match (&args.text, &args.corpus) {
        (Some(path), _) => kindling_train::corpus::read_utf8(path).context("--text")?,
        (None, Some(name)) => {
            if !kindling_train::corpus::KNOWN.contains(&name.as_str()) {
                bail!(
                    "--corpus {name}: unknown corpus (known: {}; for a file use --text)",
                    kindling_train::corpus::KNOWN.join(", ")
                );
            }
            kindling_train::corpus::load(name).context(format!("--corpus {name}"))?
        }
        (None, None) => bail!("give --text FILE or --corpus NAME"),
    };
    let lm = load_with(
        &args.model,
        args.adapter.adapter.as_deref(),
        args.adapter.quantized,
    )?;
    let mut ids = lm.tokenizer.encode(&text)?;
    let source = match (&args.text, &args.corpus) {
        (Some(path), _) => path.display().to_string(),
        (_, Some(name)) => {
            let (_, val) = kindling_data::token_data::split_train_val(&ids);
            ids = val;
            format!("{name} (validation split: the last 10% of its tokens)")
        }
        _ => unreachable!("checked above"),
    };
    let (max_length, stride) = options.resolve(lm.model.context_len())?;
    let n_windows = eval_lm::windows(ids.len(), max_length, stride)
        .with_context(|| source.clone())?
        .len();
    eprintln!(
        "{source}: {} tokens, {n_windows} windows of up to {max_length} every {stride}",
        ids.len()
    );
    let bar = progress::bar(n_windows as u64, "perplexity".into(), "windows");
    let t0 = Instant::now();
    let r = eval_lm::perplexity(lm.model.as_ref(), &ids, &options, &mut |done, _| {
        bar.set_position(done as u64)
    })?;
    bar.finish_and_clear();
    let secs = t0.elapsed().as_secs_f64();
    let fed: usize = eval_lm::windows(ids.len(), max_length, stride)?
        .iter()
        .map(|w| w.end - w.begin)
        .sum();
    let report = Report::new(args.json.enabled);
    report.line(format!(
        "perplexity {:.4} ({:.4} nats/token) over {} scored tokens of {}, {} windows (max length {}, stride {}); {:.1} s, {} tokens/s through the model",
        r.perplexity(),
        r.nats_per_token(),
        r.scored,
        r.tokens,
        r.windows,
        r.max_length,
        r.stride,
        secs,
        progress::rate(fed as f64 / secs.max(1e-9)),
    ));
    report.finish(json!({
        "source": source,
        "perplexity": r.perplexity(),
        "nats_per_token": r.nats_per_token(),
        "nll_sum": r.nll_sum,
        "tokens": r.tokens,
        "scored": r.scored,
        "windows": r.windows,
        "max_length": r.max_length,
        "stride": r.stride,
        "seconds": secs,
    }));
    Ok(())
}

#[derive(Args)]
pub struct Choice {
    /// A GGUF file, a Hugging Face model folder or a Kindling run directory.
    #[arg(long)]
    pub model: PathBuf,
    /// A JSONL file: one {"question": ..., "choices": [...], "answer": index} a line.
    #[arg(long, value_name = "FILE")]
    pub task: PathBuf,
    /// Solved examples (other items of the same file) shown before each question.
    #[arg(long, default_value_t = 0)]
    pub shots: usize,
    /// Seed of the draw of the examples.
    #[arg(long, default_value_t = 1234)]
    pub seed: u64,
    /// Score only the first N items [default: all].
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,
    #[command(flatten)]
    pub adapter: AdapterArg,
    #[command(flatten)]
    pub threads: ThreadsArg,
    #[command(flatten)]
    pub json: JsonArg,
}

fn choice(args: Choice) -> CliResult<()> {
    args.threads.apply()?;
    let items = eval_lm::read_task(&args.task).context("--task")?;
    let options = ChoiceOptions {
        shots: args.shots,
        seed: args.seed,
        limit: args.limit,
    };
    options.check(items.len())?;
    let lm = load_with(
        &args.model,
        args.adapter.adapter.as_deref(),
        args.adapter.quantized,
    )?;
    let n = args.limit.unwrap_or(items.len()).min(items.len());
    let bar = progress::bar(n as u64, format!("{}-shot", args.shots), "items");
    let t0 = Instant::now();
    let r = eval_lm::evaluate_choices(
        lm.model.as_ref(),
        &lm.tokenizer,
        &items,
        &options,
        &mut |done, _| bar.set_position(done as u64),
    )?;
    bar.finish_and_clear();
    let secs = t0.elapsed().as_secs_f64();
    let report = Report::new(args.json.enabled);
    // Per subject, when the records name one.
    let mut by_subject: BTreeMap<&str, (usize, usize, usize)> = BTreeMap::new();
    for it in &r.items {
        if let Some(s) = &items[it.index].subject {
            let e = by_subject.entry(s.as_str()).or_default();
            e.0 += 1;
            e.1 += usize::from(it.acc());
            e.2 += usize::from(it.acc_norm());
        }
    }
    for (s, (n, acc, norm)) in &by_subject {
        report.line(format!(
            "  {s:<24} {n:>4} items  acc {acc:>3}/{n}  acc_norm {norm:>3}/{n}"
        ));
    }
    report.line(format!(
        "{}: {} items, {}-shot: acc {:.4} ± {:.4}, acc_norm {:.4} ± {:.4} (chance about {:.2}); {:.1} s",
        args.task.display(),
        r.n(),
        r.shots,
        r.acc(),
        r.acc_stderr(),
        r.acc_norm(),
        r.acc_norm_stderr(),
        r.items
            .iter()
            .map(|it| 1.0 / it.scores.len() as f64)
            .sum::<f64>()
            / r.n() as f64,
        secs
    ));
    let per_item: Vec<_> = r
        .items
        .iter()
        .map(|it| {
            let item = &items[it.index];
            json!({
                "index": it.index,
                "line": item.line,
                "subject": item.subject,
                "answer": it.answer,
                "pred": it.pred,
                "pred_norm": it.pred_norm,
                "acc": u8::from(it.acc()),
                "acc_norm": u8::from(it.acc_norm()),
                "context_tokens": it.context_tokens,
                "choices": it.scores.iter().zip(&item.choices).map(|(s, text)| json!({
                    "text": text,
                    "loglik": s.loglik,
                    "tokens": s.tokens,
                    "chars": s.chars,
                    "bytes": s.bytes,
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    report.finish(json!({
        "task": args.task.display().to_string(),
        "n": r.n(),
        "shots": r.shots,
        "seed": r.seed,
        "acc": r.acc(),
        "acc_stderr": r.acc_stderr(),
        "acc_norm": r.acc_norm(),
        "acc_norm_stderr": r.acc_norm_stderr(),
        "seconds": secs,
        "items": per_item,
    }));
    Ok(())
}

#[derive(Args)]
pub struct Contamination {
    /// A JSONL multiple-choice task (the same format as `eval-lm choice`).
    #[arg(long, value_name = "FILE")]
    pub task: PathBuf,
    /// The training corpus: a UTF-8 text file, gzip-compressed if it ends in .gz (streamed, any size).
    #[arg(long, value_name = "FILE")]
    pub corpus: PathBuf,
    /// Words in each n-gram; a question shorter than this is checked whole.
    #[arg(long, default_value_t = 13)]
    pub n: usize,
    #[command(flatten)]
    pub json: JsonArg,
}

fn contamination(args: Contamination) -> CliResult<()> {
    let items = eval_lm::read_task(&args.task).context("--task")?;
    let t0 = Instant::now();
    let r = eval_lm::contamination_file(&items, &args.corpus, args.n)?;
    let secs = t0.elapsed().as_secs_f64();
    let report = Report::new(args.json.enabled);
    let dirty: Vec<_> = r.contaminated().collect();
    for o in &dirty {
        let (gram, line) = o.matched.as_ref().expect("contaminated items have a match");
        report.line(format!(
            "  item {} (line {}): \"{gram}\" at corpus line {line}{}",
            o.index,
            items[o.index].line,
            if o.hits > 1 {
                format!(" ({} occurrences)", o.hits)
            } else {
                String::new()
            }
        ));
    }
    report.line(format!(
        "{} of {} items contaminated ({:.1}%) by {}-grams of {} ({} words, {} lines, {:.1} s); {} questions shorter than {} words were checked whole",
        dirty.len(),
        r.items.len(),
        100.0 * r.fraction(),
        r.n,
        args.corpus.display(),
        r.corpus_words,
        r.corpus_lines,
        secs,
        r.short_items(),
        r.n
    ));
    report.finish(json!({
        "task": args.task.display().to_string(),
        "corpus": args.corpus.display().to_string(),
        "n": r.n,
        "items": r.items.len(),
        "contaminated": dirty.len(),
        "fraction": r.fraction(),
        "short_items": r.short_items(),
        "corpus_words": r.corpus_words,
        "corpus_lines": r.corpus_lines,
        "seconds": secs,
        "matches": dirty.iter().map(|o| {
            let (gram, line) = o.matched.as_ref().expect("contaminated items have a match");
            json!({
                "index": o.index,
                "line": items[o.index].line,
                "ngram": gram,
                "corpus_line": line,
                "occurrences": o.hits,
                "words": o.words,
                "gram_len": o.gram_len,
            })
        }).collect::<Vec<_>>(),
    }));
    Ok(())
}
