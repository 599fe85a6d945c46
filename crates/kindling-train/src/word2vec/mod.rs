//! Word vectors (`kindling lab word2vec`, `kindling lab analogy`):
//! skip-gram with negative sampling trained on an English corpus, saved in
//! word2vec's text format, and scored on the analogy questions and the
//! word-similarity sets as gensim scores them (docs/lab-2.md).
//!
//! Training is not a `Task` of the one `Trainer`: SGNS has no loss tensor
//! and no optimizer; each (center, context) pair updates a handful of rows
//! in place, from several threads at once without locks. [`train`] keeps
//! the parts of a run the trainer gives other commands: a run directory
//! with `config.json`, `metrics.jsonl` (one record per epoch), a checkpoint
//! after every epoch that `--resume` continues from, and a progress bar.

pub mod corpus;
pub mod evaluate;
pub mod sgns;
pub mod vectors;
pub mod vocab;

use crate::progress;
use crate::run_dir::RunDir;
use crate::Result;
use corpus::Corpus;
use kindling_tensor::Tensor;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sgns::{Sgns, SgnsSettings, TrainingText};
use std::collections::HashMap;
use std::path::Path;
use vectors::WordVectors;
use vocab::{NoiseTable, Vocab};

/// The per-epoch checkpoint in a run directory.
pub const CHECKPOINT: &str = "checkpoint.safetensors";
/// The trained vectors, word2vec text format.
pub const VECTORS: &str = "vectors.txt";

/// The options of a training, gensim's defaults where the issue is silent:
/// sg=1, hs=0, negative=5, window=5, sample=1e-3, alpha 0.025 → 1e-4, 5 epochs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Word2vecOptions {
    pub dim: usize,
    pub window: usize,
    pub negative: usize,
    pub min_count: u64,
    pub epochs: usize,
    pub sample: f64,
    pub alpha: f32,
    pub min_alpha: f32,
    pub seed: u64,
}

impl Default for Word2vecOptions {
    fn default() -> Self {
        Word2vecOptions {
            dim: 100,
            window: 5,
            negative: 5,
            min_count: 5,
            epochs: 5,
            sample: 1e-3,
            alpha: 0.025,
            min_alpha: 0.0001,
            seed: 1,
        }
    }
}

impl Word2vecOptions {
    pub fn validate(&self) -> Result<()> {
        for (name, v) in [
            ("dim", self.dim),
            ("window", self.window),
            ("negative", self.negative),
            ("min_count", self.min_count as usize),
            ("epochs", self.epochs),
        ] {
            if v == 0 {
                return Err(crate::Error::option(name, "must be at least 1"));
            }
        }
        if !(self.sample.is_finite() && (0.0..1.0).contains(&self.sample)) {
            return Err(crate::Error::option(
                "sample",
                format!("must be in [0, 1), got {}", self.sample),
            ));
        }
        if !(self.alpha.is_finite() && self.alpha > 0.0) {
            return Err(crate::Error::option(
                "alpha",
                format!("must be a positive number, got {}", self.alpha),
            ));
        }
        if !(self.min_alpha.is_finite() && (0.0..=self.alpha).contains(&self.min_alpha)) {
            return Err(crate::Error::option(
                "min_alpha",
                format!("must be in [0, alpha], got {}", self.min_alpha),
            ));
        }
        Ok(())
    }

    fn settings(&self) -> SgnsSettings {
        SgnsSettings {
            dim: self.dim,
            window: self.window,
            negative: self.negative,
            epochs: self.epochs,
            sample: self.sample,
            alpha: self.alpha,
            min_alpha: self.min_alpha,
            seed: self.seed,
        }
    }
}

/// What a training did.
pub struct Trained {
    pub vectors: WordVectors,
    /// Tokens in the corpus (each epoch reads them all).
    pub corpus_words: usize,
    pub vocab: usize,
    /// Epochs trained by this process (fewer than `epochs` after `--resume`).
    pub epochs_trained: usize,
    /// Training time of those epochs (vocabulary building excluded).
    pub train_seconds: f64,
    /// Raw corpus words per second of training, gensim's "raw words" rate:
    /// every token, also those dropped as rare or subsampled.
    pub words_per_sec: f64,
    /// Words left after dropping rare ones and subsampling, last epoch.
    pub effective_words: u64,
    pub vocab_seconds: f64,
}

/// Trains on `corpus` with `threads` threads; a `run` directory gets
/// `metrics.jsonl`, a checkpoint after every epoch and the vectors, and a
/// run that holds a checkpoint continues from it when `resume` is set.
pub fn train(
    corpus: &Corpus,
    opts: &Word2vecOptions,
    threads: usize,
    run: Option<&RunDir>,
    resume: bool,
    log: &(dyn Fn(&str) + Sync),
) -> Result<Trained> {
    opts.validate()?;
    if corpus.is_empty() {
        return Err("the corpus is empty: no words of 2 to 15 letters".into());
    }
    let started = std::time::Instant::now();
    let (vocab, old_to_new) = Vocab::build(corpus, opts.min_count, opts.sample);
    if vocab.is_empty() {
        return Err(crate::Error::option(
            "min_count",
            format!(
                "{}: no word of the corpus occurs that often ({} words, the most frequent {} times)",
                opts.min_count,
                corpus.len(),
                corpus.counts.iter().max().unwrap_or(&0)
            ),
        ));
    }
    let ids: Vec<u32> = corpus.ids.iter().map(|&i| old_to_new[i as usize]).collect();
    let text = TrainingText {
        ids: &ids,
        sentence_ends: &corpus.sentence_ends,
    };
    let jobs = sgns::jobs(&text);
    let noise = NoiseTable::new(&vocab.counts, 0.75);
    let vocab_seconds = started.elapsed().as_secs_f64();
    let settings = opts.settings();

    let mut model = Sgns::new(vocab.len(), opts.dim, opts.seed);
    let mut first_epoch = 0;
    let mut metrics: Vec<Value> = Vec::new();
    if let Some(run) = run {
        if resume && run.file(CHECKPOINT).is_file() {
            first_epoch = load_checkpoint(run, opts, corpus.len(), &mut model)?;
            metrics = run.read_metrics().unwrap_or_default();
            metrics.truncate(first_epoch);
            log(&format!(
                "resuming after epoch {first_epoch} of {} from {}",
                opts.epochs,
                run.file(CHECKPOINT).display()
            ));
        }
        run.write_json(
            "config.json",
            &json!({"options": opts, "threads": threads, "corpus_words": corpus.len(), "vocab": vocab.len()}),
        )?;
    }

    let bar = progress::bar(
        (corpus.len() * (opts.epochs - first_epoch)) as u64,
        "word2vec".into(),
        "words",
    );
    let mut train_seconds = 0.0;
    let mut effective_words = 0;
    for epoch in first_epoch..opts.epochs {
        let stats = sgns::train_epoch(
            &mut model,
            &vocab,
            &noise,
            &text,
            &jobs,
            &settings,
            epoch,
            threads,
            &|w| bar.inc(w),
        );
        train_seconds += stats.seconds;
        effective_words = stats.effective_words;
        let rate = corpus.len() as f64 / stats.seconds.max(1e-9);
        let record = json!({
            "epoch": epoch + 1,
            "alpha": stats.last_alpha,
            "words_per_sec": rate,
            "effective_words": stats.effective_words,
            "seconds": stats.seconds,
        });
        metrics.push(record);
        bar.suspend(|| {
            log(&format!(
                "epoch {} of {}: {} words/s ({} effective words), lr now {:.5}, {:.1} s",
                epoch + 1,
                opts.epochs,
                progress::rate(rate),
                stats.effective_words,
                stats.last_alpha,
                stats.seconds
            ))
        });
        if let Some(run) = run {
            save_checkpoint(run, opts, corpus.len(), epoch + 1, &model)?;
            run.write_metrics(&metrics)?;
        }
    }
    bar.finish_and_clear();
    let epochs_trained = opts.epochs - first_epoch;
    let vectors = WordVectors::new(vocab.words.clone(), opts.dim, model.input);
    Ok(Trained {
        vectors,
        corpus_words: corpus.len(),
        vocab: vocab.len(),
        epochs_trained,
        train_seconds,
        words_per_sec: (corpus.len() * epochs_trained) as f64 / train_seconds.max(1e-9),
        effective_words,
        vocab_seconds,
    })
}

fn save_checkpoint(
    run: &RunDir,
    opts: &Word2vecOptions,
    corpus_words: usize,
    epochs_done: usize,
    model: &Sgns,
) -> Result<()> {
    let rows = model.input.len() / model.dim;
    let tensors = vec![
        (
            "input".to_string(),
            Tensor::from_slice(&model.input, &[rows, model.dim])?,
        ),
        (
            "output".to_string(),
            Tensor::from_slice(&model.output, &[rows, model.dim])?,
        ),
    ];
    let meta = HashMap::from([
        (
            "kindling.word2vec.options".to_string(),
            serde_json::to_string(opts)?,
        ),
        (
            "kindling.word2vec.epochs_done".to_string(),
            epochs_done.to_string(),
        ),
        (
            "kindling.word2vec.corpus_words".to_string(),
            corpus_words.to_string(),
        ),
    ]);
    kindling_tensor::safetensors_io::save(&run.file(CHECKPOINT), &tensors, &meta)?;
    Ok(())
}

/// Loads a checkpoint written with the same options and corpus; returns
/// the epochs it has done.
fn load_checkpoint(
    run: &RunDir,
    opts: &Word2vecOptions,
    corpus_words: usize,
    model: &mut Sgns,
) -> Result<usize> {
    let path = run.file(CHECKPOINT);
    let (tensors, meta) = kindling_tensor::safetensors_io::load(&path)?;
    let get = |k: &str| {
        meta.get(k)
            .ok_or_else(|| format!("{}: no `{k}` in the metadata", path.display()))
    };
    let saved: Word2vecOptions = serde_json::from_str(get("kindling.word2vec.options")?)?;
    if &saved != opts {
        return Err(format!(
            "`resume`: {} was trained with other options ({}); give the same ones or start over with `force`",
            path.display(),
            serde_json::to_string(&saved)?
        )
        .into());
    }
    let words: usize = get("kindling.word2vec.corpus_words")?.parse().unwrap_or(0);
    if words != corpus_words {
        return Err(format!(
            "`resume`: {} was trained on a corpus of {words} words, this one has {corpus_words}; give the same `corpus` or start over with `force`",
            path.display()
        )
        .into());
    }
    let done: usize = get("kindling.word2vec.epochs_done")?
        .parse()
        .map_err(|_| format!("{}: bad epochs_done", path.display()))?;
    for (name, dst) in [("input", &mut model.input), ("output", &mut model.output)] {
        let t = tensors
            .get(name)
            .ok_or_else(|| format!("{}: no tensor `{name}`", path.display()))?;
        let v = t.to_vec_f32()?;
        if v.len() != dst.len() {
            return Err(format!(
                "{}: `{name}` has {} values, the vocabulary needs {}",
                path.display(),
                v.len(),
                dst.len()
            )
            .into());
        }
        *dst = v;
    }
    Ok(done.min(opts.epochs))
}

/// The scores of a set of vectors on the three standard tests.
#[derive(Clone, Debug, Serialize)]
pub struct Evaluation {
    pub analogy: evaluate::AnalogyScore,
    pub wordsim: evaluate::PairScore,
    pub simlex: evaluate::PairScore,
    pub seconds: f64,
}

/// Scores `vectors` on an analogy file and two word-pair files.
pub fn evaluate_all(
    vectors: &WordVectors,
    questions: &Path,
    wordsim: &Path,
    simlex: &Path,
) -> Result<Evaluation> {
    let started = std::time::Instant::now();
    let scorer = evaluate::Scorer::new(vectors, evaluate::RESTRICT_VOCAB);
    Ok(Evaluation {
        analogy: scorer.analogies(questions)?,
        wordsim: scorer.word_pairs(wordsim)?,
        simlex: scorer.word_pairs(simlex)?,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// The first two principal components of `rows` (centred), each row's
/// coordinates on them: power iteration on the covariance, the second
/// component deflated by the first.
pub fn pca_2d(rows: &[&[f32]]) -> Vec<(f32, f32)> {
    let n = rows.len();
    if n == 0 {
        return Vec::new();
    }
    let d = rows[0].len();
    let mean: Vec<f64> = (0..d)
        .map(|k| rows.iter().map(|r| r[k] as f64).sum::<f64>() / n as f64)
        .collect();
    let x: Vec<Vec<f64>> = rows
        .iter()
        .map(|r| r.iter().zip(&mean).map(|(&v, m)| v as f64 - m).collect())
        .collect();
    let project = |v: &[f64], row: &[f64]| row.iter().zip(v).map(|(a, b)| a * b).sum::<f64>();
    let component = |deflate: Option<&[f64]>| -> Vec<f64> {
        let mut v: Vec<f64> = (0..d).map(|k| 1.0 + (k as f64 * 0.618).sin()).collect();
        for _ in 0..200 {
            // v ← Xᵀ X v, then orthogonal to the first component.
            let mut next = vec![0.0; d];
            for row in &x {
                let p = project(&v, row);
                for k in 0..d {
                    next[k] += p * row[k];
                }
            }
            if let Some(u) = deflate {
                let p: f64 = next.iter().zip(u).map(|(a, b)| a * b).sum();
                for k in 0..d {
                    next[k] -= p * u[k];
                }
            }
            let norm = next.iter().map(|a| a * a).sum::<f64>().sqrt();
            if norm == 0.0 {
                break;
            }
            v = next.into_iter().map(|a| a / norm).collect();
        }
        v
    };
    let first = component(None);
    let second = component(Some(&first));
    x.iter()
        .map(|row| (project(&first, row) as f32, project(&second, row) as f32))
        .collect()
}

/// The pairs `word_pairs.png` draws, one relation a panel, as in Mikolov
/// et al.'s figures (gender; country → capital).
pub const PICTURE_PAIRS: [(&str, &[(&str, &str)]); 2] = [
    (
        "male → female",
        &[
            ("man", "woman"),
            ("king", "queen"),
            ("boy", "girl"),
            ("brother", "sister"),
            ("father", "mother"),
            ("husband", "wife"),
            ("he", "she"),
        ],
    ),
    (
        "country → capital",
        &[
            ("france", "paris"),
            ("germany", "berlin"),
            ("italy", "rome"),
            ("japan", "tokyo"),
            ("china", "beijing"),
            ("russia", "moscow"),
            ("spain", "madrid"),
            ("england", "london"),
        ],
    ),
];

/// Draws `word_pairs.png`: for each relation of [`PICTURE_PAIRS`], the pairs
/// both of whose words are in the vocabulary, projected on the first two
/// principal components of that relation's words; and the accuracy of each
/// analogy section. Returns the pairs drawn.
pub fn draw_picture(
    path: &Path,
    title: &str,
    vectors: &WordVectors,
    analogy: &evaluate::AnalogyScore,
) -> Result<usize> {
    use crate::plot::word_pairs::{draw_word_pairs, Arrow, ArrowPanel, Bar};
    let unit = vectors.unit_rows();
    let d = vectors.dim;
    let row = |i: usize| &unit[i * d..(i + 1) * d];
    let mut panels = Vec::new();
    for (relation, list) in PICTURE_PAIRS {
        let pairs: Vec<(&str, &str, usize, usize)> = list
            .iter()
            .filter_map(|&(a, b)| Some((a, b, vectors.index_of(a)?, vectors.index_of(b)?)))
            .collect();
        let rows: Vec<&[f32]> = pairs
            .iter()
            .flat_map(|&(_, _, i, j)| [row(i), row(j)])
            .collect();
        let xy = pca_2d(&rows);
        panels.push(ArrowPanel {
            title: format!("{title}: {relation}"),
            arrows: pairs
                .iter()
                .enumerate()
                .map(|(k, &(a, b, _, _))| Arrow {
                    from: a.to_string(),
                    to: b.to_string(),
                    start: xy[2 * k],
                    end: xy[2 * k + 1],
                })
                .collect(),
        });
    }
    let bars: Vec<Bar> = analogy
        .sections
        .iter()
        .map(|s| Bar {
            label: s.section.clone(),
            accuracy: s.accuracy() as f32,
            answered: s.total,
        })
        .collect();
    draw_word_pairs(path, &panels, &bars).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(panels.iter().map(|p| p.arrows.len()).sum())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pca_finds_the_directions_of_largest_spread() {
        // Points spread most along (1, 1, 0), less along (1, −1, 0), not at all along z.
        // Every a with both b, so a and b are uncorrelated.
        let pts: Vec<[f32; 3]> = (-5..=5)
            .flat_map(|a| [0.5f32, -0.5].map(|b| [a as f32 + b, a as f32 - b, 3.0]))
            .collect();
        let rows: Vec<&[f32]> = pts.iter().map(|p| &p[..]).collect();
        let xy = pca_2d(&rows);
        for (p, (x, y)) in pts.iter().zip(&xy) {
            let along = (p[0] + p[1]) / 2f32.sqrt();
            let across = (p[0] - p[1]) / 2f32.sqrt();
            assert!((x.abs() - along.abs()).abs() < 1e-3, "{x} vs {along}");
            assert!((y.abs() - across.abs()).abs() < 1e-3, "{y} vs {across}");
        }
    }

    #[test]
    fn bad_options_name_the_option() {
        let o = Word2vecOptions {
            window: 0,
            ..Default::default()
        };
        assert_eq!(
            o.validate().unwrap_err().to_string(),
            "window must be at least 1"
        );
        let o = Word2vecOptions {
            min_alpha: 0.5,
            ..Default::default()
        };
        assert!(o
            .validate()
            .unwrap_err()
            .to_string()
            .starts_with("min_alpha"));
    }
}
