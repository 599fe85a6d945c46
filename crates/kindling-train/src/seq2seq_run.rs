//! The seq2seq lab (`kindling lab seq2seq`): why attention was invented.
//!
//! For each source length, two encoder–decoders of the same cell and width
//! ([`Seq2Seq`]) learn to copy or reverse random token sequences, with the
//! same steps, batches and seed: a plain one, whose decoder sees the source
//! only through the encoder's final state, and one with Bahdanau attention.
//! Cho et al. (2014) found the plain model's quality falling quickly with
//! sentence length; Bahdanau et al. (2015) traced it to the fixed-length
//! vector and let the decoder look back at every source position.
//!
//! Data: each training step draws `batch_size` fresh sequences of `length`
//! tokens uniformly from `0..symbols` (its own random stream, keyed by the
//! seed and the step); the target is the sequence itself (`copy`) or its
//! reverse (`reverse`). The held-out set is `eval_sequences` sequences from
//! a separate stream. Training uses teacher forcing and cross-entropy;
//! evaluation decodes greedily (`length` tokens, the model's own
//! predictions fed back) and counts exact sequences and single tokens.

use crate::plot::seq2seq::{draw_accuracy_vs_length, AccuracyLines};
use crate::run_dir::{RunDir, RunMode};
use crate::trainer::{stream, Bar, Evaluated, Period, Plan, RunIdentity, Task, Trainer};
use crate::Result;
use kindling_models::seq2seq::{Seq2Seq, Seq2SeqConfig, Tokens};
use kindling_nn::optim::{Adam, AdamConfig};
use kindling_nn::schedule::LrSchedule;
use kindling_nn::Module;
use kindling_tensor::Rng;
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::time::Instant;

/// The held-out set's stream purpose (the trainer's batches use 1).
const HELDOUT_STREAM: u64 = 0x5E0_5E0;
/// Sequences decoded at once in evaluation.
const EVAL_ROWS: usize = 256;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SeqTask {
    Copy,
    Reverse,
}

impl SeqTask {
    pub fn parse(s: &str) -> Result<SeqTask> {
        match s {
            "copy" => Ok(SeqTask::Copy),
            "reverse" => Ok(SeqTask::Reverse),
            other => Err(crate::Error::option(
                "task",
                format!("must be copy or reverse, got `{other}`"),
            )),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            SeqTask::Copy => "copy",
            SeqTask::Reverse => "reverse",
        }
    }

    /// The target of `src` (one sequence).
    fn target(self, src: &[i64]) -> Vec<i64> {
        match self {
            SeqTask::Copy => src.to_vec(),
            SeqTask::Reverse => src.iter().rev().copied().collect(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Seq2SeqOptions {
    pub task: SeqTask,
    pub lengths: Vec<usize>,
    /// `gru` or `lstm`.
    pub cell: String,
    /// Units per direction in the encoder, and in the decoder; the
    /// embeddings are as wide.
    pub hidden: usize,
    /// Alphabet size.
    pub symbols: usize,
    /// Training steps of every model (the same at every length).
    pub steps: usize,
    pub batch_size: usize,
    /// Adam's learning rate (constant).
    pub lr: f32,
    pub seed: u64,
    /// Held-out sequences per length.
    pub eval_sequences: usize,
}

impl Seq2SeqOptions {
    pub fn validate(&self) -> Result<()> {
        for (name, v) in [
            ("hidden", self.hidden),
            ("steps", self.steps),
            ("batch_size", self.batch_size),
            ("eval_sequences", self.eval_sequences),
        ] {
            if v == 0 {
                return Err(crate::Error::option(name, "must be at least 1"));
            }
        }
        if self.symbols < 2 {
            return Err(crate::Error::option(
                "symbols",
                format!("must be at least 2, got {}", self.symbols),
            ));
        }
        if self.lengths.is_empty() {
            return Err(crate::Error::option("lengths", "needs at least one length"));
        }
        if let Some(l) = self.lengths.iter().find(|&&l| l == 0 || l > 1000) {
            return Err(crate::Error::option(
                "lengths",
                format!("must each be 1 to 1000, got {l}"),
            ));
        }
        let mut sorted = self.lengths.clone();
        sorted.sort_unstable();
        sorted.dedup();
        if sorted.len() != self.lengths.len() {
            return Err(crate::Error::option("lengths", "lists a length twice"));
        }
        if !matches!(self.cell.as_str(), "gru" | "lstm") {
            return Err(crate::Error::option(
                "cell",
                format!("must be gru or lstm, got `{}`", self.cell),
            ));
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return Err(crate::Error::option(
                "lr",
                format!("must be a positive number, got {}", self.lr),
            ));
        }
        Ok(())
    }

    pub fn model_config(&self, attention: bool) -> Seq2SeqConfig {
        Seq2SeqConfig {
            symbols: self.symbols,
            embed: self.hidden,
            hidden: self.hidden,
            cell: self.cell.clone(),
            attention,
        }
    }
}

/// Source and target ids, `[rows, length]` each.
pub struct Pairs {
    pub src: Vec<i64>,
    pub tgt: Vec<i64>,
    pub rows: usize,
    pub length: usize,
}

impl Pairs {
    /// `rows` random sequences from `rng`, with their targets.
    pub fn draw(task: SeqTask, symbols: usize, rows: usize, length: usize, rng: &mut Rng) -> Pairs {
        let mut src = Vec::with_capacity(rows * length);
        let mut tgt = Vec::with_capacity(rows * length);
        for _ in 0..rows {
            let s: Vec<i64> = (0..length).map(|_| rng.below(symbols) as i64).collect();
            tgt.extend(task.target(&s));
            src.extend(s);
        }
        Pairs {
            src,
            tgt,
            rows,
            length,
        }
    }

    fn slice(&self, start: usize, len: usize) -> (Tokens<'_>, Tokens<'_>) {
        let r = start * self.length..(start + len) * self.length;
        let tokens = |ids| Tokens {
            ids,
            rows: len,
            len: self.length,
        };
        (tokens(&self.src[r.clone()]), tokens(&self.tgt[r]))
    }
}

/// Exact-sequence and per-token accuracy of greedy decoding.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Accuracy {
    pub sequence: f64,
    pub token: f64,
}

pub fn accuracy(model: &Seq2Seq, data: &Pairs) -> Result<Accuracy> {
    let (mut right_seq, mut right_tok) = (0usize, 0usize);
    for start in (0..data.rows).step_by(EVAL_ROWS) {
        let len = EVAL_ROWS.min(data.rows - start);
        let (src, tgt) = data.slice(start, len);
        let out = model.greedy(&src, data.length)?;
        for (p, t) in out.ids.chunks(data.length).zip(tgt.ids.chunks(data.length)) {
            let same = p.iter().zip(t).filter(|(a, b)| a == b).count();
            right_tok += same;
            right_seq += (same == data.length) as usize;
        }
    }
    Ok(Accuracy {
        sequence: right_seq as f64 / data.rows as f64,
        token: right_tok as f64 / (data.rows * data.length) as f64,
    })
}

/// What one model's training is, stored whole in its checkpoint.
#[derive(Clone, Debug, Serialize)]
struct VariantOptions<'a> {
    length: usize,
    attention: bool,
    #[serde(flatten)]
    lab: &'a Seq2SeqOptions,
}

struct Seq2SeqTask<'a> {
    model: &'a Seq2Seq,
    opts: &'a Seq2SeqOptions,
    length: usize,
    attention: bool,
    heldout: &'a Pairs,
}

impl Task for Seq2SeqTask<'_> {
    type Batch = Pairs;

    fn model(&self) -> &dyn Module {
        self.model
    }

    fn batch(&mut self, _step: usize, _micro: usize, rng: &mut Rng) -> Result<Pairs> {
        Ok(Pairs::draw(
            self.opts.task,
            self.opts.symbols,
            self.opts.batch_size,
            self.length,
            rng,
        ))
    }

    fn rows(&self, batch: &Pairs) -> usize {
        batch.rows
    }

    fn loss(
        &self,
        batch: &Pairs,
        start: usize,
        len: usize,
        _rng: &mut Rng,
    ) -> kindling_tensor::Result<kindling_tensor::Tensor> {
        let (src, tgt) = batch.slice(start, len);
        self.model.loss(&src, &tgt)
    }

    fn evaluate(&mut self, p: &Period) -> Result<Evaluated> {
        let acc = accuracy(self.model, self.heldout)?;
        let record = json!({
            "step": p.step,
            "length": self.length,
            "attention": self.attention,
            "token_accuracy": acc.token,
            "sequence_accuracy": acc.sequence,
            "lr": p.lr,
        });
        let line = format!(
            "length {} {}: step {}, held-out token accuracy {:.1}%, sequence accuracy {:.1}%",
            self.length,
            variant_name(self.attention),
            p.step,
            acc.token * 100.0,
            acc.sequence * 100.0
        );
        Ok(Evaluated::with_train_loss(record, line, p))
    }

    fn identity(&self) -> Option<RunIdentity> {
        Some(RunIdentity {
            model: "seq2seq",
            what: "seq2seq",
            options: serde_json::to_value(VariantOptions {
                length: self.length,
                attention: self.attention,
                lab: self.opts,
            })
            .ok()?,
            may_change: &[],
            total_steps: self.opts.steps,
        })
    }
}

fn variant_name(attention: bool) -> &'static str {
    if attention {
        "attention"
    } else {
        "plain"
    }
}

/// One trained model's result.
#[derive(Clone, Debug, Serialize)]
pub struct VariantResult {
    pub accuracy: Accuracy,
    /// Mean training loss over the last evaluation period.
    pub train_loss: Option<f64>,
    pub parameters: usize,
    pub train_seconds: f64,
}

/// Both models at one length.
#[derive(Clone, Debug, Serialize)]
pub struct LengthResult {
    pub length: usize,
    pub plain: VariantResult,
    pub attention: VariantResult,
}

/// The attention weights of the attention model on one held-out example.
pub struct Heatmap {
    pub length: usize,
    pub source: Vec<i64>,
    pub output: Vec<i64>,
    /// `[length, length]` row-major: output step × source position.
    pub weights: Vec<f32>,
}

pub struct Outcome {
    pub results: Vec<LengthResult>,
    pub heatmap: Option<Heatmap>,
    pub seconds: f64,
}

fn train_variant(
    opts: &Seq2SeqOptions,
    length: usize,
    attention: bool,
    heldout: &Pairs,
    run: &RunDir,
    log: &dyn Fn(&str),
) -> Result<(Seq2Seq, VariantResult)> {
    // The same initial stream for both variants: the shared parts (embeddings,
    // encoder, bridge) start from the same weights.
    let model = Seq2Seq::new(opts.model_config(attention), &mut Rng::new(opts.seed))?;
    let mut task = Seq2SeqTask {
        model: &model,
        opts,
        length,
        attention,
        heldout,
    };
    let plan = Plan {
        total_steps: opts.steps,
        accum_steps: 1,
        schedule: LrSchedule::Constant { lr: opts.lr },
        grad_clip: Some(1.0),
        eval_every: opts.steps.div_ceil(4),
        eval_at_start: false,
        seed: opts.seed,
        loss_records: None,
        log_every: opts.steps.div_ceil(4),
        step_name: "step",
        bar: Bar::Run {
            label: format!("length {length} {} ", variant_name(attention)),
            unit: "steps",
        },
        message_every: 10,
        throughput: ("sequences", 1),
    };
    let adam = Adam::named(
        model.named_trainable_parameters(),
        AdamConfig::adam(opts.lr),
    );
    let mut trainer = Trainer::new(plan, &model, Box::new(adam), Some(run), log)?;
    let identity = task.identity().map(|i| i.options).unwrap_or_default();
    trainer.begin(&mut task, RunMode::Fresh, &identity)?;
    let summary = trainer.run(&mut task, None)?;
    let last = summary.records.last();
    let get = |k: &str| last.and_then(|r| r[k].as_f64());
    let result = VariantResult {
        accuracy: Accuracy {
            sequence: get("sequence_accuracy").unwrap_or(f64::NAN),
            token: get("token_accuracy").unwrap_or(f64::NAN),
        },
        train_loss: get("train_loss"),
        parameters: model.num_parameters(),
        train_seconds: summary.train_seconds,
    };
    Ok((model, result))
}

/// The length whose attention weights are drawn: the longest up to 40
/// (a longer grid's labels would not be readable), else the shortest.
pub fn heatmap_length(lengths: &[usize]) -> usize {
    lengths
        .iter()
        .copied()
        .filter(|&l| l <= 40)
        .max()
        .unwrap_or_else(|| lengths.iter().copied().min().unwrap_or(1))
}

/// Trains both models at every length, each in `run/length-L/{plain,
/// attention}` (config, metrics, checkpoint), and draws `accuracy.png`
/// (and `attention.png`, when drawn by the caller from the heatmap).
pub fn run(opts: &Seq2SeqOptions, run: &RunDir, log: &dyn Fn(&str)) -> Result<Outcome> {
    opts.validate()?;
    let started = Instant::now();
    let mut results = Vec::with_capacity(opts.lengths.len());
    let mut heatmap = None;
    let shown = heatmap_length(&opts.lengths);
    for &length in &opts.lengths {
        let heldout = Pairs::draw(
            opts.task,
            opts.symbols,
            opts.eval_sequences,
            length,
            &mut stream(opts.seed, HELDOUT_STREAM, length),
        );
        let mut pair = Vec::with_capacity(2);
        for attention in [false, true] {
            let dir = RunDir::start(
                &run.file(&format!("length-{length}/{}", variant_name(attention))),
                RunMode::Fresh,
            )?;
            let (model, result) = train_variant(opts, length, attention, &heldout, &dir, log)?;
            log(&format!(
                "length {length} {}: token accuracy {:.1}%, sequence accuracy {:.1}%, {:.1} s",
                variant_name(attention),
                result.accuracy.token * 100.0,
                result.accuracy.sequence * 100.0,
                result.train_seconds
            ));
            if attention && length == shown {
                let (src, _) = heldout.slice(0, 1);
                let out = model.greedy(&src, length)?;
                let weights = out
                    .attention
                    .ok_or("the attention model returns its weights")?
                    .to_vec_f32()?;
                heatmap = Some(Heatmap {
                    length,
                    source: src.ids.to_vec(),
                    output: out.ids,
                    weights,
                });
            }
            pair.push(result);
        }
        let attention = pair.pop().expect("two variants");
        let plain = pair.pop().expect("two variants");
        results.push(LengthResult {
            length,
            plain,
            attention,
        });
    }
    let lines = AccuracyLines {
        lengths: results.iter().map(|r| r.length).collect(),
        plain_token: results.iter().map(|r| r.plain.accuracy.token).collect(),
        attention_token: results.iter().map(|r| r.attention.accuracy.token).collect(),
        plain_sequence: results.iter().map(|r| r.plain.accuracy.sequence).collect(),
        attention_sequence: results
            .iter()
            .map(|r| r.attention.accuracy.sequence)
            .collect(),
        chance_token: 1.0 / opts.symbols as f64,
    };
    let title = format!(
        "{}, {} {} units, {} steps",
        opts.task.name(),
        opts.cell.to_uppercase(),
        opts.hidden,
        opts.steps
    );
    let png = run.file("accuracy.png");
    draw_accuracy_vs_length(&png, &title, &lines).map_err(|e| format!("{}: {e}", png.display()))?;
    if let Some(h) = &heatmap {
        let png = run.file("attention.png");
        let tokens = |ids: &[i64]| ids.iter().map(|i| i.to_string()).collect::<Vec<_>>();
        crate::plot::attention::draw_with_axes(
            &png,
            &tokens(&h.output),
            &tokens(&h.source),
            &[(
                format!(
                    "{}, length {}: output step (rows) × source position (columns)",
                    opts.task.name(),
                    h.length
                ),
                h.weights.clone(),
            )],
        )
        .map_err(|e| format!("{}: {e}", png.display()))?;
    }
    Ok(Outcome {
        results,
        heatmap,
        seconds: started.elapsed().as_secs_f64(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options() -> Seq2SeqOptions {
        Seq2SeqOptions {
            task: SeqTask::Reverse,
            lengths: vec![3, 5],
            cell: "gru".into(),
            hidden: 8,
            symbols: 5,
            steps: 2,
            batch_size: 4,
            lr: 1e-3,
            seed: 0,
            eval_sequences: 10,
        }
    }

    #[test]
    fn targets_are_the_source_or_its_reverse() {
        let p = Pairs::draw(SeqTask::Reverse, 4, 3, 5, &mut Rng::new(0));
        for (s, t) in p.src.chunks(5).zip(p.tgt.chunks(5)) {
            let rev: Vec<i64> = s.iter().rev().copied().collect();
            assert_eq!(t, rev.as_slice());
            assert!(s.iter().all(|&x| (0..4).contains(&x)));
        }
        let c = Pairs::draw(SeqTask::Copy, 4, 3, 5, &mut Rng::new(0));
        assert_eq!(c.src, c.tgt);
        assert_eq!(c.src, p.src, "same stream, same sources");
    }

    #[test]
    fn bad_options_name_their_field() {
        let bad = |f: &dyn Fn(&mut Seq2SeqOptions)| {
            let mut o = options();
            f(&mut o);
            o.validate().unwrap_err().to_string()
        };
        assert!(bad(&|o| o.lengths = vec![]).contains("lengths"));
        assert!(bad(&|o| o.lengths = vec![5, 0]).contains("lengths"));
        assert!(bad(&|o| o.lengths = vec![5, 5]).contains("twice"));
        assert!(bad(&|o| o.cell = "rnn".into()).contains("cell"));
        assert!(bad(&|o| o.hidden = 0).contains("hidden"));
        assert!(bad(&|o| o.lr = -1.0).contains("lr"));
        assert!(SeqTask::parse("sort")
            .unwrap_err()
            .to_string()
            .contains("task"));
        options().validate().unwrap();
    }

    #[test]
    fn accuracy_counts_tokens_and_whole_sequences() {
        // An untrained model against targets that are its own greedy output
        // in one row and that output shifted by one in the other.
        let m = Seq2Seq::new(options().model_config(true), &mut Rng::new(0)).unwrap();
        let src = vec![0i64, 1, 2, 3, 4, 0];
        let out = m
            .greedy(
                &Tokens {
                    ids: &src,
                    rows: 2,
                    len: 3,
                },
                3,
            )
            .unwrap()
            .ids;
        let mut tgt = out.clone();
        tgt[5] = (tgt[5] + 1) % 5;
        let data = Pairs {
            src,
            tgt,
            rows: 2,
            length: 3,
        };
        let a = accuracy(&m, &data).unwrap();
        assert_eq!(a.sequence, 0.5);
        assert!((a.token - 5.0 / 6.0).abs() < 1e-12);
    }

    #[test]
    fn heatmap_length_prefers_the_longest_readable() {
        assert_eq!(heatmap_length(&[5, 10, 20, 40, 80]), 40);
        assert_eq!(heatmap_length(&[80, 160]), 80);
        assert_eq!(heatmap_length(&[3]), 3);
    }
}
