//! `kindling lab translate`: translation between classical and modern
//! Chinese, two ways.
//!
//! - **Encoder–decoder** ([`Translator`], Vaswani et al. 2017): the encoder
//!   reads the source, the decoder writes the target from `[CLS]` and
//!   attends to the source through cross-attention; the loss is the
//!   cross-entropy of each target character and the closing `[SEP]`.
//! - **Decoder-only** ([`Gpt`]): one causal sequence `source [SEP] target
//!   [SEP]`, the articles' "modern text + separator + classical text"; the
//!   loss counts only the target characters and the closing `[SEP]` (the
//!   source is given, not predicted), so both models learn the same thing
//!   from the same pairs.
//!
//! Both read characters (one Chinese character, one token) from one
//! vocabulary built from both sides of the training pairs. The held-out
//! pairs are a seeded hash of the classical text, the same for every model
//! and both directions; pairs longer than `max_chars` on either side are
//! left out of training and scoring (their number is reported). The held-out
//! translations are decoded greedily and with beam search and scored with
//! sacreBLEU's BLEU (`--tokenize zh`) and chrF (character 6-grams, β = 2),
//! corpus-level, one reference each.

use crate::metrics::{Bleu, BleuScore, Chrf, ChrfScore, Tokenize};
use crate::plot::Panel;
use crate::run_dir::{RunDir, RunMode};
use crate::trainer::{self, Bar, Evaluated, Period, Plan, Task, Trainer};
use crate::{Error, Result};
use kindling_data::char_vocab::{self, CharVocab};
use kindling_data::classical_modern::{is_held_out, Pair};
use kindling_models::gpt::{Gpt, GptConfig};
use kindling_models::search::{
    beam_search, greedy, GptSteps, Hypothesis, SearchOptions, TranslatorSteps,
};
use kindling_models::translator::{Translator, TranslatorConfig};
use kindling_nn::schedule::LrSchedule;
use kindling_nn::Module;
use kindling_tensor::{no_grad, Rng, Tensor};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::time::Instant;

/// Which side is read and which is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Direction {
    ModernClassical,
    ClassicalModern,
}

impl Direction {
    pub fn name(self) -> &'static str {
        match self {
            Direction::ModernClassical => "modern-classical",
            Direction::ClassicalModern => "classical-modern",
        }
    }

    pub fn parse(s: &str) -> Option<Direction> {
        match s {
            "modern-classical" | "m2c" => Some(Direction::ModernClassical),
            "classical-modern" | "c2m" => Some(Direction::ClassicalModern),
            _ => None,
        }
    }

    /// (source, target) of a pair.
    pub fn sides(self, p: &Pair) -> (&str, &str) {
        match self {
            Direction::ModernClassical => (&p.modern, &p.classical),
            Direction::ClassicalModern => (&p.classical, &p.modern),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Arch {
    EncoderDecoder,
    DecoderOnly,
}

impl Arch {
    pub fn name(self) -> &'static str {
        match self {
            Arch::EncoderDecoder => "encoder-decoder",
            Arch::DecoderOnly => "decoder-only",
        }
    }

    pub fn parse(s: &str) -> Option<Arch> {
        match s {
            "encoder-decoder" | "encdec" => Some(Arch::EncoderDecoder),
            "decoder-only" | "decoder" => Some(Arch::DecoderOnly),
            _ => None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TranslateOptions {
    /// `classical-modern` or a JSON-lines file of pairs.
    pub data: String,
    pub models: Vec<Arch>,
    pub directions: Vec<Direction>,
    /// Layers on each side of the encoder–decoder; the decoder-only model
    /// gets twice as many, so both have about the same parameters.
    pub n_layer: usize,
    pub n_head: usize,
    pub n_embd: usize,
    /// Pairs with a longer side (in characters) are left out.
    pub max_chars: usize,
    pub batch_size: usize,
    pub steps: usize,
    pub lr: f32,
    pub min_lr: f32,
    pub warmup_steps: usize,
    pub weight_decay: f32,
    pub seed: u64,
    pub eval_every: usize,
    /// Held-out pairs whose teacher-forced loss is measured at each evaluation.
    pub eval_loss_pairs: usize,
    /// Held-out pairs translated and scored with BLEU and chrF at the end.
    pub eval_pairs: usize,
    /// Held-out share of the pairs, per mille.
    pub heldout_per_mille: u64,
    /// Beam width of beam search (greedy is always scored too).
    pub beam: usize,
    /// α of beam search's `score / len^α`.
    pub length_penalty: f32,
    pub min_count: usize,
    /// Use only the first N pairs of the corpus (tests, quick runs).
    pub limit: Option<usize>,
}

impl TranslateOptions {
    pub fn validate(&self) -> Result<()> {
        crate::error::at_least_one(&[
            ("n_layer", self.n_layer),
            ("n_head", self.n_head),
            ("n_embd", self.n_embd),
            ("max_chars", self.max_chars),
            ("batch_size", self.batch_size),
            ("steps", self.steps),
            ("eval_every", self.eval_every),
            ("eval_loss_pairs", self.eval_loss_pairs),
            ("eval_pairs", self.eval_pairs),
            ("beam", self.beam),
            ("min_count", self.min_count),
        ])?;
        if self.models.is_empty() {
            return Err(Error::option("models", "name at least one model"));
        }
        if self.directions.is_empty() {
            return Err(Error::option("directions", "name at least one direction"));
        }
        if !self.n_embd.is_multiple_of(self.n_head) {
            return Err(Error::option(
                "n_embd",
                format!(
                    "{} must be divisible by `n_head` {}",
                    self.n_embd, self.n_head
                ),
            ));
        }
        if !(1..=500).contains(&self.heldout_per_mille) {
            return Err(Error::option(
                "heldout_per_mille",
                format!("must be 1 to 500, got {}", self.heldout_per_mille),
            ));
        }
        if !(self.length_penalty.is_finite() && self.length_penalty >= 0.0) {
            return Err(Error::option(
                "length_penalty",
                format!("must be 0 or more, got {}", self.length_penalty),
            ));
        }
        crate::optimizer::check_settings(self.lr, Some(self.min_lr), Some(self.weight_decay), None)
    }

    fn schedule(&self) -> LrSchedule {
        LrSchedule::WarmupCosine {
            lr: self.lr,
            min_lr: self.min_lr,
            warmup: self.warmup_steps,
            total: self.steps,
        }
    }

    fn search(&self, beam: usize) -> SearchOptions {
        SearchOptions {
            beam,
            // The target's characters and the closing [SEP].
            max_len: self.max_chars + 1,
            eos: char_vocab::SEP,
            length_penalty: self.length_penalty,
            // Only characters and the closing [SEP] are written.
            banned: vec![
                char_vocab::PAD,
                char_vocab::UNK,
                char_vocab::CLS,
                char_vocab::MASK,
            ],
        }
    }
}

/// The pairs as character ids, split, with their vocabulary.
pub struct PairData {
    pub vocab: CharVocab,
    /// (classical, modern) ids of the training pairs.
    pub train: Vec<(Vec<u32>, Vec<u32>)>,
    /// The held-out pairs, as text and ids.
    pub heldout: Vec<(Pair, Vec<u32>, Vec<u32>)>,
    /// Pairs left out for a side longer than `max_chars`.
    pub too_long: usize,
}

impl PairData {
    pub fn new(pairs: &[Pair], opts: &TranslateOptions) -> Result<PairData> {
        let fits = |p: &Pair| {
            p.classical.chars().count() <= opts.max_chars
                && p.modern.chars().count() <= opts.max_chars
        };
        let kept: Vec<&Pair> = pairs.iter().filter(|p| fits(p)).collect();
        let too_long = pairs.len() - kept.len();
        let (held, train): (Vec<&Pair>, Vec<&Pair>) = kept
            .into_iter()
            .partition(|p| is_held_out(&p.classical, opts.seed, opts.heldout_per_mille));
        if train.is_empty() || held.is_empty() {
            return Err(Error::option(
                "data",
                format!(
                "{}: {} pairs ({} left out as longer than `max_chars` {}) leave {} for training and {} held out; give more pairs",
                opts.data,
                pairs.len(),
                too_long,
                opts.max_chars,
                train.len(),
                held.len()
            ),
            ));
        }
        let vocab = CharVocab::build(
            train
                .iter()
                .flat_map(|p| [p.classical.as_str(), p.modern.as_str()]),
            opts.min_count,
        )?;
        Ok(PairData {
            train: train
                .iter()
                .map(|p| (vocab.encode(&p.classical), vocab.encode(&p.modern)))
                .collect(),
            heldout: held
                .iter()
                .map(|p| {
                    (
                        (*p).clone(),
                        vocab.encode(&p.classical),
                        vocab.encode(&p.modern),
                    )
                })
                .collect(),
            vocab,
            too_long,
        })
    }
}

fn oriented<'a>(d: Direction, classical: &'a [u32], modern: &'a [u32]) -> (&'a [u32], &'a [u32]) {
    match d {
        Direction::ModernClassical => (modern, classical),
        Direction::ClassicalModern => (classical, modern),
    }
}

/// One of the two models.
pub enum Model {
    EncoderDecoder(Translator),
    DecoderOnly(Gpt),
}

impl Model {
    pub fn new(arch: Arch, vocab_size: usize, opts: &TranslateOptions) -> Result<Model> {
        let mut rng = Rng::new(opts.seed);
        Ok(match arch {
            Arch::EncoderDecoder => Model::EncoderDecoder(Translator::new(
                TranslatorConfig {
                    vocab_size,
                    n_enc_layer: opts.n_layer,
                    n_dec_layer: opts.n_layer,
                    n_head: opts.n_head,
                    n_embd: opts.n_embd,
                    // [CLS] + the target's characters ([SEP] is predicted, never fed).
                    max_len: opts.max_chars + 1,
                },
                &mut rng,
            )?),
            Arch::DecoderOnly => Model::DecoderOnly(Gpt::new(
                GptConfig {
                    n_layer: 2 * opts.n_layer,
                    n_head: opts.n_head,
                    n_embd: opts.n_embd,
                    // source [SEP] target ([SEP] is predicted, never fed).
                    block_size: 2 * opts.max_chars + 1,
                    vocab_size,
                    dropout: 0.0,
                    tie_weights: true,
                    bias: true,
                    activation: Default::default(),
                },
                &mut rng,
            )?),
        })
    }

    pub fn module(&self) -> &dyn Module {
        match self {
            Model::EncoderDecoder(m) => m,
            Model::DecoderOnly(m) => m,
        }
    }

    /// Translates `src` (character ids): greedy when `opts.beam` is 1.
    pub fn translate(&self, src: &[u32], opts: &SearchOptions) -> Result<Hypothesis> {
        Ok(match self {
            Model::EncoderDecoder(m) => {
                beam_search(&mut TranslatorSteps::new(m, src)?, char_vocab::CLS, opts)?
            }
            Model::DecoderOnly(m) => {
                beam_search(&mut GptSteps::new(m, src)?, char_vocab::SEP, opts)?
            }
        })
    }
}

/// A batch of pairs as model inputs, with the positions scored.
pub struct PairBatch {
    inputs: Inputs,
    /// Per row: (position in the row's logits, target id).
    targets: Vec<Vec<(usize, u32)>>,
    /// Target tokens in the whole batch.
    total: usize,
}

enum Inputs {
    EncoderDecoder {
        src: Tensor,
        src_valid: Vec<Vec<bool>>,
        tgt_in: Tensor,
    },
    DecoderOnly {
        seq: Tensor,
    },
}

fn padded(rows: &[Vec<u32>]) -> Result<(Tensor, Vec<Vec<bool>>)> {
    let t = rows.iter().map(Vec::len).max().unwrap_or(0).max(1);
    let mut ids = Vec::with_capacity(rows.len() * t);
    let mut valid = Vec::with_capacity(rows.len());
    for r in rows {
        ids.extend(r.iter().map(|&i| i as i64));
        ids.extend(std::iter::repeat_n(char_vocab::PAD as i64, t - r.len()));
        valid.push((0..t).map(|i| i < r.len()).collect());
    }
    Ok((Tensor::from_vec_i64(ids, &[rows.len(), t])?, valid))
}

/// The batch of (source, target) id pairs for `arch`.
pub fn pair_batch(arch: Arch, pairs: &[(&[u32], &[u32])]) -> Result<PairBatch> {
    let mut targets = Vec::with_capacity(pairs.len());
    let inputs = match arch {
        Arch::EncoderDecoder => {
            let src: Vec<Vec<u32>> = pairs.iter().map(|(s, _)| s.to_vec()).collect();
            let tgt_in: Vec<Vec<u32>> = pairs
                .iter()
                .map(|(_, t)| {
                    std::iter::once(char_vocab::CLS)
                        .chain(t.iter().copied())
                        .collect()
                })
                .collect();
            for (_, t) in pairs {
                targets.push(
                    t.iter()
                        .copied()
                        .chain([char_vocab::SEP])
                        .enumerate()
                        .collect(),
                );
            }
            let (src, src_valid) = padded(&src)?;
            Inputs::EncoderDecoder {
                src,
                src_valid,
                tgt_in: padded(&tgt_in)?.0,
            }
        }
        Arch::DecoderOnly => {
            let seqs: Vec<Vec<u32>> = pairs
                .iter()
                .map(|(s, t)| {
                    s.iter()
                        .copied()
                        .chain([char_vocab::SEP])
                        .chain(t.iter().copied())
                        .collect()
                })
                .collect();
            for (s, t) in pairs {
                // The [SEP] after the source predicts the first target
                // character; the last one predicts the closing [SEP].
                targets.push(
                    t.iter()
                        .copied()
                        .chain([char_vocab::SEP])
                        .enumerate()
                        .map(|(i, id)| (s.len() + i, id))
                        .collect(),
                );
            }
            Inputs::DecoderOnly {
                seq: padded(&seqs)?.0,
            }
        }
    };
    let total = targets.iter().map(Vec::len).sum();
    Ok(PairBatch {
        inputs,
        targets,
        total,
    })
}

impl PairBatch {
    fn rows(&self) -> usize {
        self.targets.len()
    }

    /// Logits at the scored positions of rows `start..start+len`, `[N, V]`,
    /// and their targets `[N]`.
    fn scored_logits(
        &self,
        model: &Model,
        start: usize,
        len: usize,
        rng: Option<&mut Rng>,
    ) -> kindling_tensor::Result<(Tensor, Tensor)> {
        let logits = match (&self.inputs, model) {
            (
                Inputs::EncoderDecoder {
                    src,
                    src_valid,
                    tgt_in,
                },
                Model::EncoderDecoder(m),
            ) => m.forward(
                &src.narrow(0, start, len)?,
                Some(&src_valid[start..start + len]),
                &tgt_in.narrow(0, start, len)?,
            )?,
            (Inputs::DecoderOnly { seq }, Model::DecoderOnly(m)) => {
                m.forward_ids(&seq.narrow(0, start, len)?, rng)?
            }
            _ => {
                return Err(kindling_tensor::Error::msg(
                    "a batch built for the other model",
                ))
            }
        };
        let (t, v) = (logits.shape()[1], logits.shape()[2]);
        let (mut pos, mut tgt) = (Vec::new(), Vec::new());
        for (r, row) in self.targets[start..start + len].iter().enumerate() {
            for &(p, id) in row {
                pos.push((r * t + p) as i64);
                tgt.push(id as i64);
            }
        }
        let n = pos.len();
        let rows = logits
            .reshape(&[len * t, v])?
            .index_select(0, &Tensor::from_vec_i64(pos, &[n])?)?;
        Ok((rows, Tensor::from_vec_i64(tgt, &[n])?))
    }
}

/// Teacher-forced held-out loss (nats per target token) and the share of
/// target tokens that are the most likely ones.
pub fn teacher_forced(model: &Model, batches: &[PairBatch]) -> Result<(f64, f64)> {
    let _g = no_grad();
    let (mut loss, mut right, mut n) = (0.0, 0usize, 0usize);
    for b in batches {
        let (logits, tgt) = b.scored_logits(model, 0, b.rows(), None)?;
        let k = b.total;
        loss += logits.cross_entropy(&tgt, None)?.to_vec_f32()?[0] as f64 * k as f64;
        let v = logits.shape()[1];
        let want = tgt.to_vec_i64()?;
        for (row, &w) in logits.to_vec_f32()?.chunks(v).zip(&want) {
            let best = row
                .iter()
                .enumerate()
                .max_by(|a, b| a.1.total_cmp(b.1))
                .map_or(0, |(i, _)| i);
            right += usize::from(best as i64 == w);
        }
        n += k;
    }
    Ok((loss / n.max(1) as f64, right as f64 / n.max(1) as f64))
}

/// Purposes of the random streams (besides the trainer's).
const TRAIN_PICK: u64 = 21;

struct TranslateTask<'a> {
    model: &'a Model,
    arch: Arch,
    direction: Direction,
    data: &'a PairData,
    opts: &'a TranslateOptions,
    eval: Vec<PairBatch>,
}

impl Task for TranslateTask<'_> {
    type Batch = PairBatch;

    fn model(&self) -> &dyn Module {
        self.model.module()
    }

    fn batch(&mut self, step: usize, micro: usize, _rng: &mut Rng) -> Result<PairBatch> {
        // The same pairs in the same order for every model and direction.
        let mut rng = trainer::stream(self.opts.seed, TRAIN_PICK, step * 1009 + micro);
        let n = self.data.train.len();
        let pairs: Vec<(&[u32], &[u32])> = (0..self.opts.batch_size)
            .map(|_| {
                let (c, m) = &self.data.train[rng.below(n)];
                oriented(self.direction, c, m)
            })
            .collect();
        pair_batch(self.arch, &pairs)
    }

    fn rows(&self, b: &PairBatch) -> usize {
        b.rows()
    }

    fn loss(
        &self,
        b: &PairBatch,
        start: usize,
        len: usize,
        rng: &mut Rng,
    ) -> kindling_tensor::Result<Tensor> {
        let (logits, tgt) = b.scored_logits(self.model, start, len, Some(rng))?;
        let k = tgt.numel();
        let ce = logits.cross_entropy(&tgt, None)?;
        // The trainer weights a shard by len / rows; this makes the step's
        // loss the mean over all of its target tokens.
        ce.mul_scalar(k as f32 * b.rows() as f32 / (len as f32 * b.total as f32))
    }

    fn evaluate(&mut self, p: &Period) -> Result<Evaluated> {
        let (loss, acc) = teacher_forced(self.model, &self.eval)?;
        let record = json!({
            "step": p.step,
            "val_loss": loss,
            "val_token_accuracy": acc,
            "lr": self.opts.schedule().lr_at(p.step),
        });
        let line = format!(
            "step {:>5}: held-out loss {:.4}, next-character accuracy {:.2}%",
            p.step,
            loss,
            acc * 100.0
        );
        Ok(Evaluated::with_train_loss(record, line, p))
    }

    fn identity(&self) -> Option<trainer::RunIdentity> {
        Some(trainer::RunIdentity {
            model: "translate",
            what: "translation model",
            options: json!({
                "arch": self.arch,
                "direction": self.direction,
                "options": self.opts,
            }),
            may_change: &[],
            total_steps: self.opts.steps,
        })
    }

    fn curves(&self, metrics: &[Value]) -> Vec<Panel<'static>> {
        crate::gpt_run::loss_curves_by(
            metrics,
            "step",
            "step",
            "translation loss",
            "cross-entropy per target character (nats)",
        )
    }
}

/// The scores of one decoding of the held-out pairs.
#[derive(Clone, Debug, Serialize)]
pub struct Scored {
    pub bleu: BleuScore,
    /// 95% interval of BLEU over bootstrap resamples of the scored pairs.
    pub bleu_ci95: [f64; 2],
    pub chrf: ChrfScore,
    /// Hypotheses cut at `max_len` without ending.
    pub unfinished: usize,
    pub seconds: f64,
    /// Each pair's BLEU statistics, for the paired comparisons.
    #[serde(skip)]
    pub stats: Vec<Vec<f64>>,
}

/// One trained model's results.
#[derive(Clone, Debug, Serialize)]
pub struct ModelResult {
    pub model: Arch,
    pub direction: Direction,
    pub parameters: usize,
    pub val_loss: f64,
    pub val_token_accuracy: f64,
    pub greedy: Scored,
    pub beam: Scored,
    pub train_seconds: f64,
    pub steps: usize,
}

/// The BLEU of this lab: sacreBLEU's, with `--tokenize zh`.
pub fn bleu() -> Bleu {
    Bleu {
        tokenize: Tokenize::Zh,
        ..Bleu::default()
    }
}

/// Bootstrap resamples for the intervals, and their seed.
pub const BOOTSTRAP_SAMPLES: usize = 1000;
const BOOTSTRAP_SEED: u64 = 12345;

/// The 2.5th and 97.5th percentiles.
fn ci95(xs: &[f64]) -> [f64; 2] {
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        return [f64::NAN; 2];
    }
    let at = |q: f64| v[((q * (v.len() - 1) as f64).round() as usize).min(v.len() - 1)];
    [at(0.025), at(0.975)]
}

/// sacreBLEU's BLEU with `--tokenize zh` and its default chrF, and each
/// pair's BLEU statistics.
pub fn score_corpus(
    hyps: &[String],
    refs: &[String],
) -> Result<(BleuScore, ChrfScore, Vec<Vec<f64>>)> {
    let bleu = bleu();
    let refs = vec![refs.to_vec()];
    let stats = bleu
        .segment_stats(hyps, &refs)
        .map_err(|e| Error::Msg(e.to_string()))?;
    Ok((
        bleu.corpus_score(hyps, &refs)
            .map_err(|e| Error::Msg(e.to_string()))?,
        Chrf::default()
            .corpus_score(hyps, &refs)
            .map_err(|e| Error::Msg(e.to_string()))?,
        stats,
    ))
}

/// How the closing `[SEP]` is labelled in the cross-attention picture.
pub const END_LABEL: &str = "end";

/// Cross-attention of the encoder–decoder for one sentence, greedy.
#[derive(Clone, Debug, Serialize)]
pub struct CrossAttention {
    pub direction: Direction,
    pub source: Vec<String>,
    pub output: Vec<String>,
    /// `[output tokens (with the closing [SEP], labelled [`END_LABEL`]), source]`, row-major: the
    /// last decoder layer's weights averaged over heads.
    pub weights: Vec<f32>,
}

fn cross_attention(
    m: &Translator,
    vocab: &CharVocab,
    direction: Direction,
    src: &[u32],
    opts: &SearchOptions,
) -> Result<CrossAttention> {
    let h = greedy(
        &mut TranslatorSteps::new(m, src)?,
        char_vocab::CLS,
        opts,
        &mut |_| {},
    )?;
    // The greedy output fed back in one pass gives the same weights as the
    // steps did (tested in the model); row i is the step that wrote token i.
    let _g = no_grad();
    let mut fed = vec![char_vocab::CLS];
    fed.extend(&h.tokens);
    if !h.finished {
        fed.pop();
    }
    let ids =
        |v: &[u32]| Tensor::from_vec_i64(v.iter().map(|&i| i as i64).collect(), &[1, v.len()]);
    let memory = m.encode(&ids(src)?, None)?;
    let (_, maps) = m.decode(&ids(&fed)?, &memory, None)?;
    let last = maps.last().ok_or("the decoder has layers")?;
    let weights = last.mean(&[1], false)?.to_vec_f32()?;
    let chars = |ids: &[u32]| ids.iter().map(|&i| token_text(vocab, i)).collect();
    let mut output: Vec<String> = chars(&h.tokens);
    if h.finished {
        output.push(END_LABEL.into());
    }
    Ok(CrossAttention {
        direction,
        source: chars(src),
        output,
        weights,
    })
}

fn token_text(vocab: &CharVocab, id: u32) -> String {
    vocab.token(id).unwrap_or_else(|| "?".into())
}

/// Two systems on the same pairs, by paired bootstrap: `b − a` in BLEU.
#[derive(Clone, Debug, Serialize)]
pub struct Comparison {
    pub direction: Direction,
    pub a: String,
    pub b: String,
    /// BLEU of b minus BLEU of a on all the scored pairs.
    pub difference: f64,
    /// 95% interval of the difference over the resamples.
    pub ci95: [f64; 2],
    /// Share of resamples where b scores higher.
    pub b_wins: f64,
}

fn compare(direction: Direction, a: (String, &Scored), b: (String, &Scored)) -> Comparison {
    let runs =
        bleu().paired_bootstrap(&[&a.1.stats, &b.1.stats], BOOTSTRAP_SAMPLES, BOOTSTRAP_SEED);
    let diffs: Vec<f64> = runs[1].iter().zip(&runs[0]).map(|(y, x)| y - x).collect();
    Comparison {
        direction,
        a: a.0,
        b: b.0,
        difference: b.1.bleu.score - a.1.bleu.score,
        ci95: ci95(&diffs),
        b_wins: diffs.iter().filter(|&&d| d > 0.0).count() as f64 / diffs.len().max(1) as f64,
    }
}

/// For each model, beam against greedy; for each direction with both
/// models, decoder-only against encoder–decoder with each decoding.
pub fn comparisons(results: &[ModelResult], beam: usize) -> Vec<Comparison> {
    let mut out = Vec::new();
    for r in results {
        out.push(compare(
            r.direction,
            (format!("{} greedy", r.model.name()), &r.greedy),
            (format!("{} beam {beam}", r.model.name()), &r.beam),
        ));
    }
    for r in results.iter().filter(|r| r.model == Arch::EncoderDecoder) {
        let Some(d) = results
            .iter()
            .find(|d| d.model == Arch::DecoderOnly && d.direction == r.direction)
        else {
            continue;
        };
        for (how, x, y) in [
            ("greedy".to_string(), &r.greedy, &d.greedy),
            (format!("beam {beam}"), &r.beam, &d.beam),
        ] {
            out.push(compare(
                r.direction,
                (format!("encoder-decoder {how}"), x),
                (format!("decoder-only {how}"), y),
            ));
        }
    }
    out
}

/// The "translation" that copies the source unchanged: classical and
/// modern Chinese share most characters, so it scores well above zero,
/// and what a model adds is measured from it.
#[derive(Clone, Debug, Serialize)]
pub struct CopyBaseline {
    pub direction: Direction,
    pub bleu: BleuScore,
    pub chrf: ChrfScore,
}

pub struct Outcome {
    pub results: Vec<ModelResult>,
    pub copy_baselines: Vec<CopyBaseline>,
    pub comparisons: Vec<Comparison>,
    pub attention: Vec<CrossAttention>,
    pub vocab_size: usize,
    pub train_pairs: usize,
    pub heldout_pairs: usize,
    pub scored_pairs: usize,
    pub too_long: usize,
    pub seconds: f64,
}

/// The held-out pair whose cross-attention is drawn: the first with a
/// source of 8 to 16 characters (readable labels), else the first.
fn shown_pair(data: &PairData, d: Direction) -> usize {
    data.heldout
        .iter()
        .position(|(_, c, m)| (8..=16).contains(&oriented(d, c, m).0.len()))
        .unwrap_or(0)
}

/// Trains every model in every direction, each in `run/MODEL-DIRECTION`
/// (config, metrics, checkpoint, `translations.tsv`), scores them and
/// returns the cross-attention maps to draw. With `resume`, a model whose
/// directory exists continues (or, finished, is only scored again).
pub fn run(
    opts: &TranslateOptions,
    pairs: &[Pair],
    run: &RunDir,
    resume: bool,
    log: &dyn Fn(&str),
) -> Result<Outcome> {
    opts.validate()?;
    let started = Instant::now();
    let data = PairData::new(pairs, opts)?;
    log(&format!(
        "{} training pairs, {} held out ({} scored), {} left out as longer than {} characters; vocabulary {} ({} characters + 5 specials)",
        data.train.len(),
        data.heldout.len(),
        data.heldout.len().min(opts.eval_pairs),
        data.too_long,
        opts.max_chars,
        data.vocab.size(),
        data.vocab.size() - 5
    ));
    let mut results = Vec::new();
    let mut attention = Vec::new();
    let mut copy_baselines = Vec::new();
    for &direction in &opts.directions {
        let (sources, refs): (Vec<String>, Vec<String>) = data
            .heldout
            .iter()
            .take(opts.eval_pairs)
            .map(|(p, _, _)| {
                let (s, t) = direction.sides(p);
                (s.to_string(), t.to_string())
            })
            .unzip();
        let (bleu, chrf, _) = score_corpus(&sources, &refs)?;
        log(&format!(
            "{}: copying the source scores BLEU {:.2}, chrF {:.2}",
            direction.name(),
            bleu.score,
            chrf.score
        ));
        copy_baselines.push(CopyBaseline {
            direction,
            bleu,
            chrf,
        });
        for &arch in &opts.models {
            let name = format!("{}-{}", arch.name(), direction.name());
            let path = run.file(&name);
            let mode = if resume && path.is_dir() {
                RunMode::Resume
            } else {
                RunMode::Fresh
            };
            let dir = RunDir::start(&path, mode)?;
            let model = Model::new(arch, data.vocab.size(), opts)?;
            let eval = data
                .heldout
                .iter()
                .take(opts.eval_loss_pairs)
                .map(|(_, c, m)| oriented(direction, c, m))
                .collect::<Vec<_>>()
                .chunks(64)
                .map(|ps| pair_batch(arch, ps))
                .collect::<Result<Vec<_>>>()?;
            let mut task = TranslateTask {
                model: &model,
                arch,
                direction,
                data: &data,
                opts,
                eval,
            };
            let plan = Plan {
                total_steps: opts.steps,
                accum_steps: 1,
                schedule: opts.schedule(),
                grad_clip: Some(1.0),
                eval_every: opts.eval_every,
                eval_at_start: false,
                seed: opts.seed,
                loss_records: Some(("step", 10)),
                log_every: 100,
                step_name: "step",
                bar: Bar::Run {
                    label: name.clone(),
                    unit: "steps",
                },
                message_every: 10,
                throughput: ("pairs", 1),
            };
            let opt = Box::new(crate::optimizer::adamw_groups(
                model.module(),
                opts.lr,
                opts.weight_decay,
                0.98,
                &|_, p| p.rank() >= 2,
            ));
            let mut trainer = Trainer::new(plan, model.module(), opt, Some(&dir), log)?;
            let identity = task.identity().map(|i| i.options).unwrap_or_default();
            trainer.begin(&mut task, mode, &identity)?;
            log(&format!(
                "{name}: {} parameters",
                model.module().num_parameters()
            ));
            let summary = trainer.run_until(&mut task, Default::default())?;
            let (val_loss, val_token_accuracy) = teacher_forced(&model, &task.eval)?;
            // Translate the held-out pairs both ways of decoding.
            let scored: Vec<&(Pair, Vec<u32>, Vec<u32>)> =
                data.heldout.iter().take(opts.eval_pairs).collect();
            let refs: Vec<String> = scored
                .iter()
                .map(|(p, _, _)| direction.sides(p).1.to_string())
                .collect();
            let mut outputs: Vec<Vec<String>> = Vec::new();
            let mut scores = Vec::new();
            for beam in [1, opts.beam] {
                let t0 = Instant::now();
                let search = opts.search(beam);
                let bar = crate::progress::bar(
                    scored.len() as u64,
                    format!(
                        "{name} {}",
                        if beam == 1 {
                            "greedy".to_string()
                        } else {
                            format!("beam {beam}")
                        }
                    ),
                    "sentences",
                );
                let mut hyps = Vec::with_capacity(scored.len());
                let mut unfinished = 0;
                for (_, c, m) in &scored {
                    let h = model.translate(oriented(direction, c, m).0, &search)?;
                    unfinished += usize::from(!h.finished);
                    hyps.push(data.vocab.decode(&h.tokens));
                    bar.inc(1);
                }
                bar.finish_and_clear();
                let (bleu, chrf, stats) = score_corpus(&hyps, &refs)?;
                let resampled =
                    self::bleu().paired_bootstrap(&[&stats], BOOTSTRAP_SAMPLES, BOOTSTRAP_SEED);
                log(&format!(
                    "{name} {}: BLEU {:.2}, chrF {:.2} on {} held-out pairs ({} unfinished), {:.1} s",
                    if beam == 1 { "greedy".to_string() } else { format!("beam {beam}") },
                    bleu.score,
                    chrf.score,
                    hyps.len(),
                    unfinished,
                    t0.elapsed().as_secs_f64()
                ));
                scores.push(Scored {
                    bleu,
                    bleu_ci95: ci95(&resampled[0]),
                    chrf,
                    stats,
                    unfinished,
                    seconds: t0.elapsed().as_secs_f64(),
                });
                outputs.push(hyps);
            }
            let tsv: String = std::iter::once("source\treference\tgreedy\tbeam\n".to_string())
                .chain(scored.iter().enumerate().map(|(i, (p, _, _))| {
                    format!(
                        "{}\t{}\t{}\t{}\n",
                        direction.sides(p).0,
                        refs[i],
                        outputs[0][i],
                        outputs[1][i]
                    )
                }))
                .collect();
            kindling_tensor::safetensors_io::write_atomic(
                &dir.file("translations.tsv"),
                tsv.as_bytes(),
            )?;
            if let Model::EncoderDecoder(m) = &model {
                let (_, c, md) = &data.heldout[shown_pair(&data, direction)];
                attention.push(cross_attention(
                    m,
                    &data.vocab,
                    direction,
                    oriented(direction, c, md).0,
                    &opts.search(1),
                )?);
            }
            let beam = scores.pop().expect("two decodings");
            let greedy = scores.pop().expect("two decodings");
            let result = ModelResult {
                model: arch,
                direction,
                parameters: model.module().num_parameters(),
                val_loss,
                val_token_accuracy,
                greedy,
                beam,
                train_seconds: summary.train_seconds,
                steps: opts.steps,
            };
            dir.write_json("results.json", &serde_json::to_value(&result)?)?;
            results.push(result);
        }
    }
    Ok(Outcome {
        comparisons: comparisons(&results, opts.beam),
        results,
        copy_baselines,
        attention,
        vocab_size: data.vocab.size(),
        train_pairs: data.train.len(),
        heldout_pairs: data.heldout.len(),
        scored_pairs: data.heldout.len().min(opts.eval_pairs),
        too_long: data.too_long,
        seconds: started.elapsed().as_secs_f64(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_models_score_the_same_target_tokens() {
        let src: &[u32] = &[7, 8, 9];
        let tgt: &[u32] = &[10, 11];
        let short: &[u32] = &[12];
        let pairs = [(src, tgt), (short, short)];
        let e = pair_batch(Arch::EncoderDecoder, &pairs).unwrap();
        let d = pair_batch(Arch::DecoderOnly, &pairs).unwrap();
        assert_eq!(e.total, 5);
        assert_eq!(d.total, 5);
        // Encoder–decoder: positions 0.. of the decoder predict 10, 11, [SEP].
        assert_eq!(e.targets[0], vec![(0, 10), (1, 11), (2, char_vocab::SEP)]);
        // Decoder-only: 7 8 9 [SEP] 10 11 — the [SEP] at 3 predicts 10.
        assert_eq!(d.targets[0], vec![(3, 10), (4, 11), (5, char_vocab::SEP)]);
        assert_eq!(d.targets[1], vec![(1, 12), (2, char_vocab::SEP)]);
        let Inputs::DecoderOnly { seq } = &d.inputs else {
            panic!("decoder-only inputs")
        };
        assert_eq!(
            seq.to_vec_i64().unwrap(),
            vec![7, 8, 9, 3, 10, 11, 12, 3, 12, 0, 0, 0]
        );
        let Inputs::EncoderDecoder {
            tgt_in, src_valid, ..
        } = &e.inputs
        else {
            panic!("encoder-decoder inputs")
        };
        assert_eq!(tgt_in.to_vec_i64().unwrap(), vec![2, 10, 11, 2, 12, 0]);
        assert_eq!(src_valid[1], vec![true, false, false]);
    }

    #[test]
    fn identical_output_scores_100_and_directions_parse() {
        let refs = vec!["学而时习之".to_string(), "不亦说乎".to_string()];
        let (b, c, _) = score_corpus(&refs, &refs).unwrap();
        assert!((b.score - 100.0).abs() < 1e-9);
        assert!((c.score - 100.0).abs() < 1e-9);
        assert_eq!(
            Direction::parse("modern-classical"),
            Some(Direction::ModernClassical)
        );
        assert_eq!(Direction::parse("sideways"), None);
        assert_eq!(Arch::parse("decoder-only"), Some(Arch::DecoderOnly));
    }
}
