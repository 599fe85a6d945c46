//! `kindling lab bert`: BERT's masked-language modelling on Chinese text,
//! then what the trained encoder makes of the character 道 in different
//! sentences.
//!
//! Training (Devlin et al. 2019, sec. 3.1): each sentence becomes
//! `[CLS] characters [SEP]`; 15% of its characters are selected, and of
//! those 80% are replaced by `[MASK]`, 10% by a random character and 10%
//! left as they are; the loss is the cross-entropy of the original
//! character at the selected positions only,
//! `L = −(1/|M|) Σ_{i∈M} log p(x_i | x̃)`, averaged over every selected
//! position of the step (not per row). Held-out sentences (a seeded hash of
//! their text) are masked once, with a fixed seed, and scored at every
//! evaluation: the masked-token accuracy is the share of `[MASK]`ed
//! positions whose most likely character is the original one.
//!
//! The 道 study: the contextual vector of 道 is the encoder's final hidden
//! state (after the last LayerNorm) at its position, for each probe
//! sentence; the cosine similarity of every pair is compared within a sense
//! (道 as the Dao / way, as a road, as "to say") and across senses. The
//! static embedding of 道 (the input embedding row) is one vector for every
//! sentence, so its similarity matrix is 1 everywhere.

use crate::plot::similarity::draw_similarity;
use crate::plot::Panel;
use crate::run_dir::{RunDir, RunMode};
use crate::trainer::{self, Bar, Evaluated, Period, Plan, Task, Trainer};
use crate::{Error, Result};
use kindling_data::char_vocab::{self, CharVocab};
use kindling_data::classical_modern::is_held_out;
use kindling_models::bert::{Bert, BertConfig};
use kindling_nn::schedule::LrSchedule;
use kindling_nn::Module;
use kindling_tensor::{no_grad, Rng, Tensor};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BertOptions {
    /// Corpus names (comma-separated) or a text file, see `corpus::sentences`.
    pub data: String,
    pub n_layer: usize,
    pub n_head: usize,
    pub n_embd: usize,
    /// Longest input in tokens, `[CLS]` and `[SEP]` included; longer
    /// sentences are cut to a random window of `max_len − 2` characters.
    pub max_len: usize,
    pub batch_size: usize,
    pub steps: usize,
    pub lr: f32,
    pub min_lr: f32,
    pub warmup_steps: usize,
    pub weight_decay: f32,
    /// Share of characters selected for prediction (BERT: 0.15).
    pub mask_prob: f32,
    pub seed: u64,
    pub eval_every: usize,
    /// Held-out sentences scored at each evaluation (the first this many).
    pub eval_sentences: usize,
    /// Held-out share of the sentences, in percent.
    pub heldout_percent: u64,
    /// Characters seen fewer times in training become `[UNK]`.
    pub min_count: usize,
    /// Use only the first N sentences of the corpus (tests, quick runs).
    pub limit: Option<usize>,
}

impl BertOptions {
    pub fn validate(&self) -> Result<()> {
        crate::error::at_least_one(&[
            ("n_layer", self.n_layer),
            ("n_head", self.n_head),
            ("n_embd", self.n_embd),
            ("batch_size", self.batch_size),
            ("steps", self.steps),
            ("eval_every", self.eval_every),
            ("eval_sentences", self.eval_sentences),
            ("min_count", self.min_count),
        ])?;
        if self.max_len < 3 {
            return Err(Error::option(
                "max_len",
                format!(
                    "must be at least 3 ([CLS], a character, [SEP]), got {}",
                    self.max_len
                ),
            ));
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
        if !(self.mask_prob > 0.0 && self.mask_prob < 1.0) {
            return Err(Error::option(
                "mask_prob",
                format!("must be between 0 and 1, got {}", self.mask_prob),
            ));
        }
        if !(1..=50).contains(&self.heldout_percent) {
            return Err(Error::option(
                "heldout_percent",
                format!("must be 1 to 50, got {}", self.heldout_percent),
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
}

/// The training and held-out sentences as character ids (no specials),
/// with their vocabulary.
pub struct MlmData {
    pub vocab: CharVocab,
    pub train: Vec<Vec<u32>>,
    pub heldout: Vec<Vec<u32>>,
}

impl MlmData {
    /// Splits `sentences` by a seeded hash of their text, builds the
    /// vocabulary from the training side and encodes both.
    pub fn new(sentences: &[String], opts: &BertOptions) -> Result<MlmData> {
        let per_mille = opts.heldout_percent * 10;
        let (held, train): (Vec<&String>, Vec<&String>) = sentences
            .iter()
            .partition(|s| is_held_out(s, opts.seed, per_mille));
        if train.is_empty() || held.is_empty() {
            return Err(format!(
                "`data` {}: {} sentences leave {} for training and {} held out; give more text",
                opts.data,
                sentences.len(),
                train.len(),
                held.len()
            )
            .into());
        }
        let vocab = CharVocab::build(train.iter().map(|s| s.as_str()), opts.min_count)
            .map_err(|e| format!("`data` {}: {e}", opts.data))?;
        Ok(MlmData {
            train: train.iter().map(|s| vocab.encode(s)).collect(),
            heldout: held.iter().map(|s| vocab.encode(s)).collect(),
            vocab,
        })
    }
}

/// What happened to a selected position (BERT's 80/10/10).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Corruption {
    Mask,
    Random,
    Kept,
}

/// One selected position: where (in the row), the original id, and how
/// the input was corrupted there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Target {
    pub pos: usize,
    pub id: u32,
    pub how: Corruption,
}

/// Selects positions `1..ids.len() − 1` (not `[CLS]`/`[SEP]`) with
/// probability `prob` (at least one when there is any), and corrupts them
/// 80/10/10 in place; random replacements are characters, never specials.
pub fn mask_tokens(ids: &mut [u32], prob: f32, vocab_size: usize, rng: &mut Rng) -> Vec<Target> {
    let mut targets = Vec::new();
    let inner = 1..ids.len().saturating_sub(1);
    for pos in inner.clone() {
        if rng.uniform() < prob {
            targets.push(pos);
        }
    }
    if targets.is_empty() && !inner.is_empty() {
        targets.push(inner.start + rng.below(inner.len()));
    }
    let first_char = char_vocab::SPECIALS.len();
    targets
        .into_iter()
        .map(|pos| {
            let id = ids[pos];
            let r = rng.uniform();
            let how = if r < 0.8 {
                ids[pos] = char_vocab::MASK;
                Corruption::Mask
            } else if r < 0.9 {
                ids[pos] = (first_char + rng.below(vocab_size - first_char)) as u32;
                Corruption::Random
            } else {
                Corruption::Kept
            };
            Target { pos, id, how }
        })
        .collect()
}

/// A masked batch: ids `[B, T]` padded to the longest row, which positions
/// are real, and each row's targets.
pub struct MlmBatch {
    pub ids: Tensor,
    pub valid: Vec<Vec<bool>>,
    pub targets: Vec<Vec<Target>>,
    /// Targets in the whole batch (the loss is their mean).
    pub selected: usize,
}

/// `[CLS] chars [SEP]` for each of `rows` (already cut to fit), masked.
pub fn mlm_batch(rows: &[&[u32]], prob: f32, vocab_size: usize, rng: &mut Rng) -> Result<MlmBatch> {
    let t = rows.iter().map(|r| r.len() + 2).max().unwrap_or(2);
    let (mut ids, mut valid, mut targets) = (Vec::new(), Vec::new(), Vec::new());
    for r in rows {
        let mut seq = Vec::with_capacity(t);
        seq.push(char_vocab::CLS);
        seq.extend_from_slice(r);
        seq.push(char_vocab::SEP);
        targets.push(mask_tokens(&mut seq, prob, vocab_size, rng));
        valid.push((0..t).map(|i| i < seq.len()).collect());
        seq.resize(t, char_vocab::PAD);
        ids.extend(seq.iter().map(|&i| i as i64));
    }
    Ok(MlmBatch {
        ids: Tensor::from_vec_i64(ids, &[rows.len(), t])?,
        valid,
        selected: targets.iter().map(Vec::len).sum(),
        targets,
    })
}

/// The flat positions (into `[len·T]`) and original ids of rows
/// `start..start + len`, optionally only those corrupted as `only`.
fn flat_targets(
    b: &MlmBatch,
    start: usize,
    len: usize,
    only: Option<Corruption>,
) -> (Vec<i64>, Vec<i64>) {
    let t = b.ids.shape()[1];
    let (mut pos, mut ids) = (Vec::new(), Vec::new());
    for (r, row) in b.targets[start..start + len].iter().enumerate() {
        for tg in row.iter().filter(|tg| only.is_none_or(|o| tg.how == o)) {
            pos.push((r * t + tg.pos) as i64);
            ids.push(tg.id as i64);
        }
    }
    (pos, ids)
}

/// Held-out scores: MLM loss over every selected position, and accuracy
/// at the `[MASK]`ed ones and at all selected ones.
#[derive(Clone, Copy, Debug, Default)]
pub struct MlmScore {
    pub loss: f64,
    pub masked_token_accuracy: f64,
    pub selected_accuracy: f64,
    pub masked_positions: usize,
}

pub fn score(model: &Bert, batches: &[MlmBatch]) -> Result<MlmScore> {
    let _g = no_grad();
    let (mut loss, mut n, mut masked_right, mut masked, mut right) = (0f64, 0usize, 0, 0, 0);
    for b in batches {
        let rows = b.ids.shape()[0];
        let enc = model.encode(&b.ids, Some(&b.valid))?;
        let (pos, ids) = flat_targets(b, 0, rows, None);
        let k = pos.len();
        let logits = model.mlm_logits(&enc.last, &Tensor::from_vec_i64(pos, &[k])?)?;
        let ce = logits.cross_entropy(&Tensor::from_vec_i64(ids.clone(), &[k])?, None)?;
        loss += ce.item()? as f64 * k as f64;
        n += k;
        let best = logits.argmax(-1, false)?.to_vec_i64()?;
        let hows: Vec<Corruption> = b.targets.iter().flatten().map(|t| t.how).collect();
        for ((guess, want), how) in best.iter().zip(&ids).zip(hows) {
            let ok = guess == want;
            right += ok as usize;
            if how == Corruption::Mask {
                masked += 1;
                masked_right += ok as usize;
            }
        }
    }
    Ok(MlmScore {
        loss: loss / n.max(1) as f64,
        masked_token_accuracy: masked_right as f64 / masked.max(1) as f64,
        selected_accuracy: right as f64 / n.max(1) as f64,
        masked_positions: masked,
    })
}

/// A window of at most `len` characters of `s`: the start when `rng` is
/// `None` (evaluation), else a random one.
fn window<'a>(s: &'a [u32], len: usize, rng: Option<&mut Rng>) -> &'a [u32] {
    if s.len() <= len {
        return s;
    }
    let start = rng.map_or(0, |r| r.below(s.len() - len + 1));
    &s[start..start + len]
}

/// Purposes of the random streams (besides the trainer's).
const EVAL_MASK: u64 = 11;

struct BertTask<'a> {
    model: &'a Bert,
    data: &'a MlmData,
    opts: &'a BertOptions,
    eval: Vec<MlmBatch>,
}

impl Task for BertTask<'_> {
    type Batch = MlmBatch;

    fn model(&self) -> &dyn Module {
        self.model
    }

    fn batch(&mut self, _step: usize, _micro: usize, rng: &mut Rng) -> Result<MlmBatch> {
        let n = self.data.train.len();
        let rows: Vec<&[u32]> = (0..self.opts.batch_size)
            .map(|_| {
                let s = &self.data.train[rng.below(n)];
                window(s, self.opts.max_len - 2, Some(rng))
            })
            .collect();
        mlm_batch(&rows, self.opts.mask_prob, self.data.vocab.size(), rng)
    }

    fn rows(&self, b: &MlmBatch) -> usize {
        b.ids.shape()[0]
    }

    fn loss(
        &self,
        b: &MlmBatch,
        start: usize,
        len: usize,
        _rng: &mut Rng,
    ) -> kindling_tensor::Result<Tensor> {
        let ids = b.ids.narrow(0, start, len)?;
        let enc = self
            .model
            .encode(&ids, Some(&b.valid[start..start + len]))?;
        let (pos, tgt) = flat_targets(b, start, len, None);
        let k = pos.len();
        if k == 0 {
            // Nothing selected in this shard: a zero that keeps the graph.
            return enc.last.sum_all()?.mul_scalar(0.0);
        }
        let ce = self
            .model
            .mlm_logits(&enc.last, &Tensor::from_vec_i64(pos, &[k])?)?
            .cross_entropy(&Tensor::from_vec_i64(tgt, &[k])?, None)?;
        // The trainer weights a shard by len / rows; this makes the step's
        // loss the mean over all of its selected positions.
        let rows = b.ids.shape()[0];
        ce.mul_scalar(k as f32 * rows as f32 / (len as f32 * b.selected as f32))
    }

    fn evaluate(&mut self, p: &Period) -> Result<Evaluated> {
        let s = score(self.model, &self.eval)?;
        let record = json!({
            "step": p.step,
            "val_loss": s.loss,
            "masked_token_accuracy": s.masked_token_accuracy,
            "selected_accuracy": s.selected_accuracy,
            "lr": self.opts.schedule().lr_at(p.step),
        });
        let line = format!(
            "step {:>5}: held-out MLM loss {:.4}, masked-token accuracy {:.2}%",
            p.step,
            s.loss,
            s.masked_token_accuracy * 100.0
        );
        Ok(Evaluated::with_train_loss(record, line, p))
    }

    fn identity(&self) -> Option<trainer::RunIdentity> {
        Some(trainer::RunIdentity {
            model: "bert",
            what: "BERT",
            options: json!(self.opts),
            may_change: &["steps"],
            total_steps: self.opts.steps,
        })
    }

    fn curves(&self, metrics: &[Value]) -> Vec<Panel<'static>> {
        crate::gpt_run::loss_curves_by(
            metrics,
            "step",
            "step",
            "BERT masked-language-model loss",
            "cross-entropy at selected positions (nats)",
        )
    }
}

/// A sentence with the character whose vector is read, and its sense.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Probe {
    pub sentence: String,
    /// Character index of the word in `sentence`.
    pub index: usize,
    /// The sense group: `way` (the Dao, a principle), `road`, `say`.
    pub sense: String,
    /// One of the article's four sentences.
    pub article: bool,
}

/// The article's sentences (大道至简 / 前面有一条小道 / 他说道 /
/// 道可道，非常道, its first 道) and three more per sense; the second 道 of
/// 道可道 ("can be spoken of") is read as a "say" sense.
pub fn default_probes() -> Vec<Probe> {
    let p = |sentence: &str, index, sense: &str, article| Probe {
        sentence: sentence.into(),
        index,
        sense: sense.into(),
        article,
    };
    vec![
        p("大道至简", 1, "way", true),
        p("道可道，非常道", 0, "way", true),
        p("道法自然", 0, "way", false),
        p("朝闻道，夕死可矣", 2, "way", false),
        p("前面有一条小道", 6, "road", true),
        p("山间小道弯弯曲曲", 3, "road", false),
        p("这条道很窄", 2, "road", false),
        p("车马沿着大道向前走", 5, "road", false),
        p("他说道", 2, "say", true),
        p("她笑着说道", 4, "say", false),
        p("老师问道", 3, "say", false),
        p("道可道，非常道", 2, "say", false),
    ]
}

/// Mean cosine similarity over pairs `i < j` of the same sense and of
/// different senses; with `article_only`, among the article's sentences.
fn sense_means(sim: &[Vec<f64>], probes: &[Probe], article_only: bool) -> (f64, f64) {
    let (mut same, mut ns, mut cross, mut nc) = (0.0, 0, 0.0, 0);
    for i in 0..probes.len() {
        for j in i + 1..probes.len() {
            if article_only && !(probes[i].article && probes[j].article) {
                continue;
            }
            if probes[i].sense == probes[j].sense {
                same += sim[i][j];
                ns += 1;
            } else {
                cross += sim[i][j];
                nc += 1;
            }
        }
    }
    (same / ns.max(1) as f64, cross / nc.max(1) as f64)
}

fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum();
    let n = |v: &[f32]| v.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    dot / (n(a) * n(b)).max(1e-12)
}

fn similarity(vectors: &[Vec<f32>]) -> Vec<Vec<f64>> {
    vectors
        .iter()
        .map(|a| vectors.iter().map(|b| cosine(a, b)).collect())
        .collect()
}

#[derive(Clone, Debug, Serialize)]
pub struct SenseStudy {
    pub probes: Vec<Probe>,
    /// Cosine similarity of the final-layer vectors, probe × probe.
    pub similarity: Vec<Vec<f64>>,
    /// The same for the static embedding (one vector: 1 everywhere).
    pub static_similarity: Vec<Vec<f64>>,
    pub same_sense_mean: f64,
    pub cross_sense_mean: f64,
    pub static_same_sense_mean: f64,
    pub static_cross_sense_mean: f64,
    /// Among the article's four sentences only.
    pub article_same_sense_mean: f64,
    pub article_cross_sense_mean: f64,
    /// Mean over pairs of different senses whose word sits at the same
    /// character index: how much of the similarity position alone gives.
    pub same_position_cross_sense_mean: f64,
    /// Share of probes whose most similar other probe has its sense.
    pub nearest_same_sense: f64,
    /// Same-sense minus cross-sense mean for the residual stream after the
    /// embeddings (0) and after each layer (before the final LayerNorm).
    pub gap_by_layer: Vec<f64>,
}

/// The contextual vectors of each probe's word and their similarities.
pub fn sense_study(model: &Bert, vocab: &CharVocab, probes: &[Probe]) -> Result<SenseStudy> {
    let _g = no_grad();
    let mut last = Vec::new();
    let mut by_layer: Vec<Vec<Vec<f32>>> = vec![Vec::new(); model.config.n_layer + 1];
    let mut word_id = None;
    for p in probes {
        let chars: Vec<char> = p.sentence.chars().collect();
        let c = *chars
            .get(p.index)
            .ok_or_else(|| format!("probe `{}` has no character {}", p.sentence, p.index))?;
        let id = vocab.id(c).ok_or_else(|| {
            format!("`{c}` is not in the vocabulary: the training text never has it often enough (see `min_count`)")
        })?;
        if word_id.is_some_and(|w| w != id) {
            return Err("the probes must all read the same character".into());
        }
        word_id = Some(id);
        let mut ids = vec![char_vocab::CLS as i64];
        ids.extend(vocab.encode(&p.sentence).iter().map(|&i| i as i64));
        ids.push(char_vocab::SEP as i64);
        let t = ids.len();
        if t > model.config.max_len {
            return Err(format!("probe `{}` is longer than `max_len`", p.sentence).into());
        }
        let enc = model.encode(&Tensor::from_vec_i64(ids, &[1, t])?, None)?;
        let at =
            |h: &Tensor| -> Result<Vec<f32>> { Ok(h.narrow(1, p.index + 1, 1)?.to_vec_f32()?) };
        last.push(at(&enc.last)?);
        for (l, h) in enc.layers.iter().enumerate() {
            by_layer[l].push(at(h)?);
        }
    }
    let word_id = word_id.ok_or("no probe sentences")?;
    let sim = similarity(&last);
    let stat = model.static_embedding(word_id)?;
    let static_sim = similarity(&vec![stat; probes.len()]);
    let (same, cross) = sense_means(&sim, probes, false);
    let (s_same, s_cross) = sense_means(&static_sim, probes, false);
    let (a_same, a_cross) = sense_means(&sim, probes, true);
    let nearest = (0..probes.len())
        .filter(|&i| {
            let best = (0..probes.len())
                .filter(|&j| j != i)
                .max_by(|&a, &b| sim[i][a].total_cmp(&sim[i][b]));
            best.is_some_and(|j| probes[j].sense == probes[i].sense)
        })
        .count() as f64
        / probes.len() as f64;
    let mut same_pos = Vec::new();
    for i in 0..probes.len() {
        for j in i + 1..probes.len() {
            if probes[i].index == probes[j].index && probes[i].sense != probes[j].sense {
                same_pos.push(sim[i][j]);
            }
        }
    }
    let same_position_cross_sense_mean =
        same_pos.iter().sum::<f64>() / same_pos.len().max(1) as f64;
    let gap_by_layer = by_layer
        .iter()
        .map(|v| {
            let (s, c) = sense_means(&similarity(v), probes, false);
            s - c
        })
        .collect();
    Ok(SenseStudy {
        probes: probes.to_vec(),
        similarity: sim,
        static_similarity: static_sim,
        same_sense_mean: same,
        cross_sense_mean: cross,
        static_same_sense_mean: s_same,
        static_cross_sense_mean: s_cross,
        article_same_sense_mean: a_same,
        article_cross_sense_mean: a_cross,
        nearest_same_sense: nearest,
        same_position_cross_sense_mean,
        gap_by_layer,
    })
}

pub struct Outcome {
    pub score: MlmScore,
    /// Accuracy of always guessing the most frequent training character at
    /// the held-out `[MASK]` positions (what context adds is above it).
    pub unigram_accuracy: f64,
    pub study: SenseStudy,
    pub parameters: usize,
    pub vocab_size: usize,
    pub train_sentences: usize,
    pub heldout_sentences: usize,
    pub steps: usize,
    pub seconds: f64,
}

/// Trains (or resumes) BERT in `run`, scores it, runs the 道 study and
/// writes `similarity.png`.
pub fn run(
    opts: &BertOptions,
    sentences: &[String],
    run: &RunDir,
    mode: RunMode,
    log: &dyn Fn(&str),
) -> Result<Outcome> {
    opts.validate()?;
    let data = MlmData::new(sentences, opts)?;
    let config = BertConfig {
        vocab_size: data.vocab.size(),
        n_layer: opts.n_layer,
        n_head: opts.n_head,
        n_embd: opts.n_embd,
        max_len: opts.max_len,
    };
    let model = Bert::new(config, &mut Rng::new(opts.seed))?;
    let mut eval_rng = trainer::stream(opts.seed, EVAL_MASK, 0);
    let eval_rows: Vec<&[u32]> = data
        .heldout
        .iter()
        .take(opts.eval_sentences)
        .map(|s| window(s, opts.max_len - 2, None))
        .collect();
    let eval = eval_rows
        .chunks(64)
        .map(|rows| mlm_batch(rows, opts.mask_prob, data.vocab.size(), &mut eval_rng))
        .collect::<Result<Vec<_>>>()?;
    let mut task = BertTask {
        model: &model,
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
        eval_at_start: true,
        seed: opts.seed,
        loss_records: Some(("step", 10)),
        log_every: 100,
        step_name: "step",
        bar: Bar::Run {
            label: "lab bert".into(),
            unit: "steps",
        },
        message_every: 10,
        throughput: ("sentences", 1),
    };
    // Matrices decay; embeddings' rows are matrices too, as in BERT.
    let opt = Box::new(crate::optimizer::adamw_groups(
        &model,
        opts.lr,
        opts.weight_decay,
        0.999,
        &|_, p| p.rank() >= 2,
    ));
    let mut trainer = Trainer::new(plan, &model, opt, Some(run), log)?;
    trainer.begin(&mut task, mode, &serde_json::to_value(opts)?)?;
    log(&format!(
        "BERT: {} parameters, vocabulary {} ({} characters + 5 specials), {} training / {} held-out sentences ({} scored)",
        model.num_parameters(),
        data.vocab.size(),
        data.vocab.size() - 5,
        data.train.len(),
        data.heldout.len(),
        eval_rows.len()
    ));
    let summary = trainer.run_until(&mut task, Default::default())?;
    let score = score(&model, &task.eval)?;
    let unigram_accuracy = unigram_baseline(&data, &task.eval);
    let study = sense_study(&model, &data.vocab, &default_probes())?;
    let labels: Vec<String> = study.probes.iter().map(probe_label).collect();
    let senses: Vec<String> = study.probes.iter().map(|p| sense_name(&p.sense)).collect();
    let flat = |m: &[Vec<f64>]| m.iter().flatten().map(|&v| v as f32).collect::<Vec<f32>>();
    let png = run.file("similarity.png");
    draw_similarity(
        &png,
        &labels,
        &senses,
        &[
            (
                format!("contextual: BERT's last layer after {} steps", opts.steps),
                flat(&study.similarity),
            ),
            (
                "static: the input embedding (one vector for all)".to_string(),
                flat(&study.static_similarity),
            ),
        ],
    )
    .map_err(|e| format!("{}: {e}", png.display()))?;
    Ok(Outcome {
        score,
        unigram_accuracy,
        study,
        parameters: model.num_parameters(),
        vocab_size: data.vocab.size(),
        train_sentences: data.train.len(),
        heldout_sentences: data.heldout.len(),
        steps: opts.steps,
        seconds: summary.train_seconds,
    })
}

/// The sentence with the probed character in 「」.
pub fn probe_label(p: &Probe) -> String {
    p.sentence
        .chars()
        .enumerate()
        .map(|(i, c)| {
            if i == p.index {
                format!("「{c}」")
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// The sense groups as written on the picture.
fn sense_name(sense: &str) -> String {
    match sense {
        "way" => "大道",
        "road" => "道路",
        "say" => "说",
        other => other,
    }
    .to_string()
}

fn unigram_baseline(data: &MlmData, eval: &[MlmBatch]) -> f64 {
    let mut counts = vec![0usize; data.vocab.size()];
    for s in &data.train {
        for &c in s {
            counts[c as usize] += 1;
        }
    }
    let top = counts
        .iter()
        .enumerate()
        .max_by_key(|(_, n)| **n)
        .map_or(0, |(i, _)| i as u32);
    let masked: Vec<u32> = eval
        .iter()
        .flat_map(|b| b.targets.iter().flatten())
        .filter(|t| t.how == Corruption::Mask)
        .map(|t| t.id)
        .collect();
    masked.iter().filter(|&&id| id == top).count() as f64 / masked.len().max(1) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masking_selects_about_15_percent_and_splits_80_10_10() {
        let mut rng = Rng::new(1);
        let (mut n, mut sel, mut counts) = (0, 0, [0usize; 3]);
        for _ in 0..2000 {
            let mut ids: Vec<u32> = vec![char_vocab::CLS];
            ids.extend((0..30).map(|i| 5 + i));
            ids.push(char_vocab::SEP);
            let orig = ids.clone();
            let targets = mask_tokens(&mut ids, 0.15, 100, &mut rng);
            n += 30;
            sel += targets.len();
            assert_eq!(ids[0], char_vocab::CLS);
            assert_eq!(ids[31], char_vocab::SEP);
            for t in &targets {
                assert_eq!(t.id, orig[t.pos]);
                match t.how {
                    Corruption::Mask => assert_eq!(ids[t.pos], char_vocab::MASK),
                    Corruption::Random => assert!(ids[t.pos] >= 5 && ids[t.pos] < 100),
                    Corruption::Kept => assert_eq!(ids[t.pos], orig[t.pos]),
                }
                counts[t.how as usize] += 1;
            }
            for (i, (&a, &b)) in ids.iter().zip(&orig).enumerate() {
                if a != b {
                    assert!(targets.iter().any(|t| t.pos == i), "unselected {i} changed");
                }
            }
        }
        let share = sel as f64 / n as f64;
        assert!((share - 0.15).abs() < 0.01, "{share}");
        let f = |k: usize| counts[k] as f64 / sel as f64;
        assert!(
            (f(0) - 0.8).abs() < 0.02 && (f(1) - 0.1).abs() < 0.02,
            "{counts:?}"
        );
    }

    #[test]
    fn a_short_sentence_always_gets_one_target_and_batches_pad() {
        let mut rng = Rng::new(2);
        let rows: Vec<&[u32]> = vec![&[7], &[5, 6, 7, 8]];
        let b = mlm_batch(&rows, 0.01, 10, &mut rng).unwrap();
        assert_eq!(b.ids.shape(), [2, 6]);
        assert_eq!(b.valid[0], vec![true, true, true, false, false, false]);
        assert!(b.targets.iter().all(|t| !t.is_empty()));
        assert_eq!(b.selected, b.targets.iter().map(Vec::len).sum::<usize>());
    }

    #[test]
    fn identical_vectors_have_similarity_one_and_senses_are_grouped() {
        let probes = default_probes();
        assert_eq!(probes.iter().filter(|p| p.article).count(), 4);
        for p in &probes {
            assert_eq!(p.sentence.chars().nth(p.index), Some('道'), "{p:?}");
        }
        let sim = similarity(&vec![vec![0.3f32, -1.0, 2.0]; probes.len()]);
        let (s, c) = sense_means(&sim, &probes, false);
        assert!((s - 1.0).abs() < 1e-12 && (c - 1.0).abs() < 1e-12);
        assert_eq!(probe_label(&probes[0]), "大「道」至简");
    }
}
