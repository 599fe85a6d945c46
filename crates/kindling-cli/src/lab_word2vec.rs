//! `kindling lab word2vec` (skip-gram word vectors, scored on analogies and
//! word similarity) and `kindling lab analogy` (b − a + c on saved vectors,
//! Kindling's or gensim's) — docs/lab-2.md.

use crate::common::{CliResult, JsonArg, ResultsDirArgs, ThreadsArg};
use crate::report::Report;
use anyhow::{bail, Context};
use clap::Args;
use kindling_train::progress::rate;
use kindling_train::run_dir::{RunDir, RunMode};
use kindling_train::word2vec::corpus::{default_corpus, Corpus};
use kindling_train::word2vec::evaluate::{Scorer, RESTRICT_VOCAB};
use kindling_train::word2vec::vectors::WordVectors;
use kindling_train::word2vec::{self, Evaluation, Word2vecOptions, VECTORS};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

#[derive(Args)]
#[command(mut_arg("out", |a| a.required(false).default_value("runs/word2vec")))]
pub struct Word2vec {
    /// A UTF-8 text file, one sentence a line [default: the English prose of the
    /// fetched data sets word-vectors (Lee corpus), alpaca (outputs), hh-rlhf
    /// (chosen dialogues) and shakespeare].
    #[arg(long, value_name = "FILE")]
    pub corpus: Option<PathBuf>,
    /// Write the tokenized corpus (one sentence a line) to FILE, for gensim [default: not written].
    #[arg(long, value_name = "FILE")]
    pub dump_corpus: Option<PathBuf>,
    /// Vector size.
    #[arg(long, default_value_t = 100)]
    pub dim: usize,
    /// Context words each side (each position samples a window of 1..=N).
    #[arg(long, default_value_t = 5)]
    pub window: usize,
    /// Noise words per (word, context) pair.
    #[arg(long, default_value_t = 5)]
    pub negative: usize,
    /// Drop words seen fewer times.
    #[arg(long, default_value_t = 5)]
    pub min_count: u64,
    /// Passes over the corpus.
    #[arg(long, default_value_t = 5)]
    pub epochs: usize,
    /// Subsampling of frequent words (gensim's `sample`; 0: off).
    #[arg(long, default_value_t = 1e-3)]
    pub sample: f64,
    /// Initial learning rate, falling linearly to --min-alpha.
    #[arg(long, default_value_t = 0.025)]
    pub alpha: f32,
    /// Learning rate at the end of training.
    #[arg(long, default_value_t = 0.0001)]
    pub min_alpha: f32,
    /// Seeds the initial vectors and every random draw (runs with --threads 1 repeat exactly).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    #[command(flatten)]
    pub tests: TestFiles,
    #[command(flatten)]
    pub threads: ThreadsArg,
    /// Continue an interrupted training in --out from its last finished epoch.
    #[arg(long, conflicts_with = "force")]
    pub resume: bool,
    #[command(flatten)]
    pub run: ResultsDirArgs,
    #[command(flatten)]
    pub json: JsonArg,
}

/// The three test sets, from the fetched `word-vectors` data set unless given.
#[derive(Args)]
pub struct TestFiles {
    /// Analogy questions, word2vec's format [default: word-vectors/questions-words.txt].
    #[arg(long, value_name = "FILE")]
    pub questions: Option<PathBuf>,
    /// Word pairs with human scores, tab-separated [default: word-vectors/wordsim353.tsv].
    #[arg(long, value_name = "FILE")]
    pub wordsim: Option<PathBuf>,
    /// [default: word-vectors/simlex999.txt].
    #[arg(long, value_name = "FILE")]
    pub simlex: Option<PathBuf>,
}

impl TestFiles {
    /// The three files, each checked to exist (before any training).
    fn resolve(&self) -> CliResult<[PathBuf; 3]> {
        let mut dir: Option<PathBuf> = None;
        let mut pick = |given: &Option<PathBuf>, flag: &str, name: &str| -> CliResult<PathBuf> {
            let path = match given {
                Some(p) => p.clone(),
                None => {
                    if dir.is_none() {
                        dir = Some(
                            kindling_data::registry::dataset_dir("word-vectors")
                                .with_context(|| format!("--{flag}"))?,
                        );
                    }
                    dir.as_ref().expect("set above").join(name)
                }
            };
            if !path.is_file() {
                bail!("--{flag} {}: file not found", path.display());
            }
            Ok(path)
        };
        Ok([
            pick(&self.questions, "questions", "questions-words.txt")?,
            pick(&self.wordsim, "wordsim", "wordsim353.tsv")?,
            pick(&self.simlex, "simlex", "simlex999.txt")?,
        ])
    }
}

#[derive(Args)]
pub struct Analogy {
    /// Word vectors in word2vec text format (`vectors.txt` of a `lab word2vec` run, or gensim's).
    #[arg(long, value_name = "FILE")]
    pub vectors: PathBuf,
    /// a in "a is to b as c is to ?" (the answer is nearest b − a + c; this or --evaluate is required).
    #[arg(long, required_unless_present = "evaluate")]
    pub a: Option<String>,
    /// b in "a is to b as c is to ?" (this or --evaluate is required).
    #[arg(long, required_unless_present = "evaluate")]
    pub b: Option<String>,
    /// c in "a is to b as c is to ?" (this or --evaluate is required).
    #[arg(long, required_unless_present = "evaluate")]
    pub c: Option<String>,
    /// Answers to list.
    #[arg(long, default_value_t = 5)]
    pub top: usize,
    /// Score the vectors on the analogy questions, WordSim-353 and SimLex-999 instead.
    #[arg(long, conflicts_with_all = ["a", "b", "c"])]
    pub evaluate: bool,
    #[command(flatten)]
    pub tests: TestFiles,
    #[command(flatten)]
    pub json: JsonArg,
}

fn options(a: &Word2vec) -> Word2vecOptions {
    Word2vecOptions {
        dim: a.dim,
        window: a.window,
        negative: a.negative,
        min_count: a.min_count,
        epochs: a.epochs,
        sample: a.sample,
        alpha: a.alpha,
        min_alpha: a.min_alpha,
        seed: a.seed,
    }
}

/// The human report and the JSON of an evaluation.
fn report_evaluation(report: &Report, e: &Evaluation) -> Value {
    let a = &e.analogy;
    for s in &a.sections {
        report.line(format!(
            "  {:<28} {:>6.2}%  ({} of {}, {} skipped)",
            s.section,
            s.accuracy() * 100.0,
            s.correct,
            s.total,
            s.skipped
        ));
    }
    report.line(format!(
        "analogies: {:.2}% ({} of {} answered; {} questions skipped for words not in the vocabulary)",
        a.accuracy() * 100.0,
        a.correct,
        a.total,
        a.skipped
    ));
    report.line(format!(
        "WordSim-353 Spearman {:.4} ({} pairs, {} skipped); SimLex-999 Spearman {:.4} ({} pairs, {} skipped); scored in {:.1} s",
        e.wordsim.spearman,
        e.wordsim.pairs,
        e.wordsim.skipped,
        e.simlex.spearman,
        e.simlex.pairs,
        e.simlex.skipped,
        e.seconds
    ));
    json!({
        "analogy_accuracy": a.accuracy(),
        "analogy_correct": a.correct,
        "analogy_answered": a.total,
        "analogy_skipped": a.skipped,
        "analogy_sections": a.sections.iter().map(|s| json!({
            "section": s.section, "accuracy": s.accuracy(), "correct": s.correct,
            "answered": s.total, "skipped": s.skipped,
        })).collect::<Vec<_>>(),
        "wordsim_spearman": e.wordsim.spearman,
        "wordsim_pairs": e.wordsim.pairs,
        "wordsim_skipped": e.wordsim.skipped,
        "simlex_spearman": e.simlex.spearman,
        "simlex_pairs": e.simlex.pairs,
        "simlex_skipped": e.simlex.skipped,
        "eval_seconds": e.seconds,
    })
}

pub fn word2vec(args: Word2vec) -> CliResult<()> {
    let opts = options(&args);
    opts.validate()?;
    args.threads.apply()?;
    let threads = kindling_tensor::num_threads();
    let [questions, wordsim, simlex] = args.tests.resolve()?;
    let report = Report::new(args.json.enabled);
    let started = std::time::Instant::now();
    let (corpus, parts) = match &args.corpus {
        Some(path) => {
            if !path.is_file() {
                bail!("--corpus {}: file not found", path.display());
            }
            let c = Corpus::from_file(path).context("--corpus")?;
            let part =
                json!([{ "source": path, "sentences": c.sentence_ends.len(), "words": c.len() }]);
            (c, part)
        }
        None => {
            let (c, parts) = default_corpus().context("--corpus (default)")?;
            (c, serde_json::to_value(parts)?)
        }
    };
    for p in parts.as_array().into_iter().flatten() {
        eprintln!(
            "corpus: {} words in {} sentences from {}",
            p["words"],
            p["sentences"],
            p["source"].as_str().unwrap_or_default()
        );
    }
    eprintln!(
        "corpus: {} words, {} distinct, read in {:.1} s",
        corpus.len(),
        corpus.words.len(),
        started.elapsed().as_secs_f64()
    );
    if let Some(dump) = &args.dump_corpus {
        corpus.write(dump).context("--dump-corpus")?;
        eprintln!("tokenized corpus written to {}", dump.display());
    }
    let mode = if args.resume {
        RunMode::Resume
    } else {
        args.run.mode()
    };
    let run = RunDir::start(&args.run.out, mode)?;
    eprintln!(
        "skip-gram, negative sampling: dim {}, window {}, negative {}, min-count {}, sample {}, lr {} → {}, {} epochs, {threads} threads; run directory {}",
        opts.dim,
        opts.window,
        opts.negative,
        opts.min_count,
        opts.sample,
        opts.alpha,
        opts.min_alpha,
        opts.epochs,
        args.run.out.display()
    );
    let t = word2vec::train(
        &corpus,
        &opts,
        threads,
        Some(&run),
        args.resume,
        &crate::common::log_line,
    )?;
    let vectors_path = run.file(VECTORS);
    t.vectors.save_text(&vectors_path)?;
    let mut vectors = t.vectors;
    vectors.source = vectors_path.clone();
    report.line(format!(
        "{} words ({} in the vocabulary at min-count {}); trained {} epochs in {:.1} s: {} words/s on {threads} threads (vocabulary built in {:.1} s)",
        t.corpus_words,
        t.vocab,
        opts.min_count,
        t.epochs_trained,
        t.train_seconds,
        rate(t.words_per_sec),
        t.vocab_seconds
    ));
    let evaluation = word2vec::evaluate_all(&vectors, &questions, &wordsim, &simlex)?;
    let scores = report_evaluation(&report, &evaluation);
    let png = run.file("word_pairs.png");
    let title = format!("skip-gram {}-d", opts.dim);
    let drawn = word2vec::draw_picture(&png, &title, &vectors, &evaluation.analogy)?;
    report.line(format!(
        "vectors: {} (word2vec text format); picture: {} ({drawn} word pairs)",
        vectors_path.display(),
        png.display()
    ));
    let mut result = json!({
        "words": t.corpus_words,
        "vocab": t.vocab,
        "words_per_sec": t.words_per_sec,
        "train_seconds": t.train_seconds,
        "epochs_trained": t.epochs_trained,
        "effective_words": t.effective_words,
        "threads": threads,
        "options": opts,
        "corpus": parts,
        "vectors": vectors_path,
        "out": args.run.out,
    });
    merge(&mut result, scores);
    run.write_json("results.json", &result)?;
    report.finish(result);
    Ok(())
}

fn merge(into: &mut Value, from: Value) {
    if let (Some(a), Value::Object(b)) = (into.as_object_mut(), from) {
        a.extend(b);
    }
}

fn load_vectors(path: &Path) -> CliResult<WordVectors> {
    if !path.is_file() {
        bail!("--vectors {}: file not found", path.display());
    }
    WordVectors::load_text(path).context("--vectors")
}

pub fn analogy(args: Analogy) -> CliResult<()> {
    let report = Report::new(args.json.enabled);
    if args.evaluate {
        let [questions, wordsim, simlex] = args.tests.resolve()?;
        let vectors = load_vectors(&args.vectors)?;
        eprintln!(
            "{}: {} words of {} dimensions",
            args.vectors.display(),
            vectors.len(),
            vectors.dim
        );
        let e = word2vec::evaluate_all(&vectors, &questions, &wordsim, &simlex)?;
        let mut v = report_evaluation(&report, &e);
        merge(
            &mut v,
            json!({"vectors": args.vectors, "vocab": vectors.len()}),
        );
        report.finish(v);
        return Ok(());
    }
    if args.top == 0 {
        bail!("--top must be at least 1");
    }
    let vectors = load_vectors(&args.vectors)?;
    let scorer = Scorer::new(&vectors, RESTRICT_VOCAB);
    let mut rows = [0usize; 3];
    for (i, (flag, word)) in [("a", &args.a), ("b", &args.b), ("c", &args.c)]
        .into_iter()
        .enumerate()
    {
        let word = word
            .as_deref()
            .expect("clap requires --a, --b, --c without --evaluate");
        rows[i] = scorer.row_of(word).with_context(|| {
            format!(
                "--{flag} {word}: not in the vocabulary of {} ({} words)",
                args.vectors.display(),
                vectors.len()
            )
        })?;
    }
    let top = scorer.analogy(rows[0], rows[1], rows[2], args.top)?;
    report.line(format!(
        "{} is to {} as {} is to:",
        args.a.as_deref().unwrap_or_default(),
        args.b.as_deref().unwrap_or_default(),
        args.c.as_deref().unwrap_or_default()
    ));
    for (r, cos) in &top {
        report.line(format!("  {:<20} {cos:.4}", vectors.words[*r]));
    }
    report.finish(json!({
        "a": args.a, "b": args.b, "c": args.c,
        "top": top.iter().map(|&(r, cos)| json!({"word": vectors.words[r], "cosine": cos})).collect::<Vec<_>>(),
    }));
    Ok(())
}
