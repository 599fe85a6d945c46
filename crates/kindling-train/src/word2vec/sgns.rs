//! Skip-gram with negative sampling (Mikolov et al. 2013, "Distributed
//! Representations of Words and Phrases and their Compositionality"),
//! trained as word2vec.c and gensim train it — not through autograd: each
//! (center, context) pair touches 1 + `negative` rows of two matrices, and
//! the gradient of its loss is written out by hand.
//!
//! For a context word with input vector v and the center word with output
//! vector u_o, and k noise words u_1..u_k drawn from unigram^0.75,
//!
//!   L = −log σ(u_oᵀv) − Σ_i log σ(−u_iᵀv),
//!
//! and SGD with rate α moves each output row by g·v and the input row by
//! Σ g·u, where g = α(label − σ(uᵀv)) (label 1 for the center word, 0 for
//! noise). As in gensim, a pair whose |uᵀv| ≥ 6 (σ within 0.25% of 0 or 1)
//! is skipped, σ comes from a 1000-entry table over (−6, 6), a noise word
//! equal to the center word is skipped, and α falls linearly from `alpha`
//! to `min_alpha` over all epochs, recomputed per job of ≤ 10,000 words.
//!
//! Threads share the two matrices without locks ("Hogwild!", Recht et al.
//! 2011): each takes the next job (a run of whole sentences) and updates
//! rows in place; two threads rarely touch the same row at once and a lost
//! update is noise SGD tolerates. With one thread a run is deterministic:
//! each job draws from its own stream seeded by (seed, epoch, job).

use super::corpus::MAX_SENTENCE_WORDS;
use super::vocab::{NoiseTable, Vocab};
use kindling_tensor::simd::{dispatch, Kernel};
use kindling_tensor::Rng;
use std::sync::atomic::{AtomicUsize, Ordering};

/// σ(x) is tabulated over (−MAX_EXP, MAX_EXP), as in word2vec.c.
const MAX_EXP: f32 = 6.0;
const EXP_TABLE_SIZE: usize = 1000;

/// The settings of one training (gensim's names and defaults, sg=1, hs=0).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SgnsSettings {
    pub dim: usize,
    pub window: usize,
    pub negative: usize,
    pub epochs: usize,
    pub sample: f64,
    pub alpha: f32,
    pub min_alpha: f32,
    pub seed: u64,
}

/// The two matrices, `vocab × dim` each, row-major: `input` holds the word
/// vectors (word2vec's syn0), `output` the context vectors (syn1neg).
pub struct Sgns {
    pub dim: usize,
    pub input: Vec<f32>,
    pub output: Vec<f32>,
}

impl Sgns {
    /// Input rows uniform in ±0.5/dim (word2vec.c's and gensim's
    /// initialization), output rows zero.
    pub fn new(vocab: usize, dim: usize, seed: u64) -> Sgns {
        let mut rng = Rng::new(seed);
        let scale = 1.0 / dim as f32;
        let input = (0..vocab * dim)
            .map(|_| (rng.uniform() - 0.5) * scale)
            .collect();
        Sgns {
            dim,
            input,
            output: vec![0.0; vocab * dim],
        }
    }
}

/// The corpus as training sees it: vocabulary ids, `u32::MAX` for a word
/// below `min_count` (dropped before windows are taken, as gensim does, but
/// counted in the raw words that drive the learning-rate schedule).
pub struct TrainingText<'a> {
    pub ids: &'a [u32],
    pub sentence_ends: &'a [usize],
}

/// A run of whole sentences of at most [`MAX_SENTENCE_WORDS`] raw words
/// (gensim's `batch_words` job).
#[derive(Clone, Debug)]
pub struct Job {
    pub start: usize,
    pub end: usize,
    /// Raw words in the epoch before this job.
    pub words_before: u64,
}

pub fn jobs(text: &TrainingText) -> Vec<Job> {
    let mut jobs = Vec::new();
    let mut start = 0usize;
    let mut job_start = 0usize;
    let mut words_before = 0u64;
    for &end in text.sentence_ends {
        if end - job_start > MAX_SENTENCE_WORDS && start > job_start {
            jobs.push(Job {
                start: job_start,
                end: start,
                words_before,
            });
            words_before += (start - job_start) as u64;
            job_start = start;
        }
        start = end;
    }
    if start > job_start {
        jobs.push(Job {
            start: job_start,
            end: start,
            words_before,
        });
    }
    jobs
}

/// What one epoch did.
#[derive(Clone, Debug, Default)]
pub struct EpochStats {
    /// Words kept after dropping rare words and subsampling.
    pub effective_words: u64,
    pub seconds: f64,
    /// The learning rate at the epoch's last job.
    pub last_alpha: f32,
}

fn sigmoid_table() -> Vec<f32> {
    (0..EXP_TABLE_SIZE)
        .map(|i| {
            let x = (i as f32 / EXP_TABLE_SIZE as f32 * 2.0 - 1.0) * MAX_EXP;
            let e = x.exp();
            e / (e + 1.0)
        })
        .collect()
}

/// Rows of the shared matrices, written by several threads at once.
#[derive(Clone, Copy)]
struct SharedRows {
    input: *mut f32,
    output: *mut f32,
    dim: usize,
}

// SAFETY: Hogwild! SGD (see the module comment): threads update rows of
// the two matrices without locks. The pointers outlive every thread
// (`train_epoch` joins them before returning); a row read while another
// thread writes it gives some mix of old and new values, which the
// algorithm accepts by design.
unsafe impl Send for SharedRows {}
unsafe impl Sync for SharedRows {}

/// Everything a thread reads while training.
struct Context<'a> {
    vocab: &'a Vocab,
    noise: &'a NoiseTable,
    sigmoid: &'a [f32],
    text: &'a TrainingText<'a>,
    settings: &'a SgnsSettings,
    rows: SharedRows,
}

/// One job, run through `dispatch` so that the whole loop, with its dot
/// products and axpys inlined, is compiled for AVX2/AVX-512 where the CPU has it.
struct JobKernel<'a, 'b> {
    cx: &'a Context<'b>,
    job: &'a Job,
    alpha: f32,
    rng: Rng,
    kept: &'a mut Vec<u32>,
    neu1e: &'a mut [f32],
}

impl Kernel for JobKernel<'_, '_> {
    /// Effective words trained on.
    type Output = u64;

    #[inline(always)]
    fn run(self) -> u64 {
        let JobKernel {
            cx,
            job,
            alpha,
            mut rng,
            kept,
            neu1e,
        } = self;
        let window = cx.settings.window;
        let mut effective = 0u64;
        let ends = cx.text.sentence_ends;
        // The sentences of the job: those ending in (job.start, job.end].
        let first = ends.partition_point(|&e| e <= job.start);
        let mut start = job.start;
        for &end in &ends[first..] {
            if end > job.end {
                break;
            }
            kept.clear();
            for &w in &cx.text.ids[start..end] {
                if w == u32::MAX {
                    continue;
                }
                if cx.vocab.keep[w as usize] < rng.next_u64() as u32 {
                    continue;
                }
                kept.push(w);
            }
            start = end;
            effective += kept.len() as u64;
            for i in 0..kept.len() {
                // The reduced window: b uniform in [0, window), span window − b.
                let b = rng.below(window);
                let lo = i.saturating_sub(window - b);
                let hi = (i + window + 1 - b).min(kept.len());
                for j in lo..hi {
                    if j != i {
                        train_pair(cx, kept[j], kept[i], alpha, &mut rng, neu1e);
                    }
                }
            }
        }
        effective
    }
}

/// One (context, center) pair: the context word's input vector predicts the
/// center word against `negative` noise words.
#[inline(always)]
fn train_pair(
    cx: &Context,
    context: u32,
    center: u32,
    alpha: f32,
    rng: &mut Rng,
    neu1e: &mut [f32],
) {
    let dim = cx.rows.dim;
    // SAFETY: ids are < vocab size, so both rows are inside their matrices;
    // `l1` (input) and `l2` (output) are different matrices, so they never
    // overlap each other (other threads may write them: Hogwild!).
    let l1 =
        unsafe { std::slice::from_raw_parts_mut(cx.rows.input.add(context as usize * dim), dim) };
    neu1e.fill(0.0);
    for d in 0..=cx.settings.negative {
        let (target, label) = if d == 0 {
            (center, 1.0f32)
        } else {
            let t = cx.noise.draw(rng.next_u64());
            if t == center {
                continue;
            }
            (t, 0.0)
        };
        let l2 = unsafe {
            std::slice::from_raw_parts_mut(cx.rows.output.add(target as usize * dim), dim)
        };
        let f = dot(l1, l2);
        if f <= -MAX_EXP || f >= MAX_EXP {
            continue;
        }
        let index = ((f + MAX_EXP) * (EXP_TABLE_SIZE as f32 / MAX_EXP / 2.0)) as usize;
        let g = (label - cx.sigmoid[index.min(EXP_TABLE_SIZE - 1)]) * alpha;
        axpy(neu1e, g, l2);
        axpy(l2, g, l1);
    }
    axpy(l1, 1.0, neu1e);
}

/// x·y with eight partial sums, so the loop vectorizes (a single sum is a
/// dependency chain the compiler may not reorder).
#[inline(always)]
pub fn dot(x: &[f32], y: &[f32]) -> f32 {
    let n = x.len().min(y.len());
    let (x, y) = (&x[..n], &y[..n]);
    let mut acc = [0.0f32; 8];
    let mut xc = x.chunks_exact(8);
    let mut yc = y.chunks_exact(8);
    for (a, b) in (&mut xc).zip(&mut yc) {
        for k in 0..8 {
            acc[k] += a[k] * b[k];
        }
    }
    let mut s: f32 = acc.iter().sum();
    for (a, b) in xc.remainder().iter().zip(yc.remainder()) {
        s += a * b;
    }
    s
}

/// y += a·x.
#[inline(always)]
pub fn axpy(y: &mut [f32], a: f32, x: &[f32]) {
    for (y, x) in y.iter_mut().zip(x) {
        *y += a * x;
    }
}

/// SplitMix64 of several words: the seed of one job's random stream.
fn job_seed(seed: u64, epoch: usize, job: usize) -> u64 {
    let mut z = seed ^ 0x5851_F42D_4C95_7F2D;
    for v in [epoch as u64, job as u64] {
        z = z.wrapping_add(v).wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
    }
    z
}

/// The learning rate at a point of training: linear from `alpha` to
/// `min_alpha` over all epochs' raw words (gensim's `_get_next_alpha`).
pub fn alpha_at(s: &SgnsSettings, epoch: usize, words_before: u64, epoch_words: u64) -> f32 {
    let progress =
        (epoch as f64 + words_before as f64 / epoch_words.max(1) as f64) / s.epochs as f64;
    let a = s.alpha as f64 - (s.alpha as f64 - s.min_alpha as f64) * progress;
    a.max(s.min_alpha as f64) as f32
}

/// One pass over `text` with `threads` threads; `on_job(raw_words)` is
/// called after every job (for a progress bar).
#[allow(clippy::too_many_arguments)]
pub fn train_epoch(
    model: &mut Sgns,
    vocab: &Vocab,
    noise: &NoiseTable,
    text: &TrainingText,
    jobs: &[Job],
    settings: &SgnsSettings,
    epoch: usize,
    threads: usize,
    on_job: &(dyn Fn(u64) + Sync),
) -> EpochStats {
    let started = std::time::Instant::now();
    let sigmoid = sigmoid_table();
    let epoch_words = text.ids.len() as u64;
    let cx = Context {
        vocab,
        noise,
        sigmoid: &sigmoid,
        text,
        settings,
        rows: SharedRows {
            input: model.input.as_mut_ptr(),
            output: model.output.as_mut_ptr(),
            dim: model.dim,
        },
    };
    let next = AtomicUsize::new(0);
    let effective = std::sync::atomic::AtomicU64::new(0);
    let dim = model.dim;
    std::thread::scope(|scope| {
        for _ in 0..threads.max(1) {
            scope.spawn(|| {
                let mut kept = Vec::with_capacity(MAX_SENTENCE_WORDS);
                let mut neu1e = vec![0.0f32; dim];
                loop {
                    let j = next.fetch_add(1, Ordering::Relaxed);
                    let Some(job) = jobs.get(j) else { break };
                    let alpha = alpha_at(settings, epoch, job.words_before, epoch_words);
                    let words = dispatch(JobKernel {
                        cx: &cx,
                        job,
                        alpha,
                        rng: Rng::new(job_seed(settings.seed, epoch, j)),
                        kept: &mut kept,
                        neu1e: &mut neu1e,
                    });
                    effective.fetch_add(words, Ordering::Relaxed);
                    on_job((job.end - job.start) as u64);
                }
            });
        }
    });
    let last = jobs.last().map_or(0, |j| j.words_before);
    EpochStats {
        effective_words: effective.into_inner(),
        seconds: started.elapsed().as_secs_f64(),
        last_alpha: alpha_at(settings, epoch, last, epoch_words),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_and_axpy_match_plain_sums_at_any_length() {
        for n in [0, 1, 7, 8, 9, 100, 203] {
            let x: Vec<f32> = (0..n).map(|i| (i as f32 * 0.37).sin()).collect();
            let y: Vec<f32> = (0..n).map(|i| (i as f32 * 0.11).cos()).collect();
            let plain: f64 = x.iter().zip(&y).map(|(a, b)| *a as f64 * *b as f64).sum();
            assert!((dot(&x, &y) as f64 - plain).abs() < 1e-4, "n = {n}");
            let mut z = y.clone();
            axpy(&mut z, 0.5, &x);
            for i in 0..n {
                assert_eq!(z[i], y[i] + 0.5 * x[i]);
            }
        }
    }

    #[test]
    fn jobs_hold_whole_sentences_of_at_most_ten_thousand_words() {
        let ends = [4000, 8000, 12000, 22000, 22001];
        let ids = vec![0u32; 22001];
        let text = TrainingText {
            ids: &ids,
            sentence_ends: &ends,
        };
        let j = jobs(&text);
        let spans: Vec<(usize, usize, u64)> =
            j.iter().map(|j| (j.start, j.end, j.words_before)).collect();
        assert_eq!(
            spans,
            vec![
                (0, 8000, 0),
                (8000, 12000, 8000),
                (12000, 22000, 12000),
                (22000, 22001, 22000)
            ]
        );
    }

    #[test]
    fn the_learning_rate_falls_linearly_to_its_floor() {
        let s = SgnsSettings {
            dim: 10,
            window: 5,
            negative: 5,
            epochs: 2,
            sample: 1e-3,
            alpha: 0.025,
            min_alpha: 0.0001,
            seed: 0,
        };
        assert_eq!(alpha_at(&s, 0, 0, 100), 0.025);
        let mid = alpha_at(&s, 1, 0, 100);
        assert!((mid - (0.025 + 0.0001) / 2.0).abs() < 1e-7, "{mid}");
        assert!((alpha_at(&s, 1, 100, 100) - 0.0001).abs() < 1e-9);
    }

    /// Two words that always appear together end up with a larger cosine
    /// than two that never do: the gradient is right in sign and size.
    #[test]
    fn words_sharing_contexts_get_similar_vectors() {
        let mut corpus = super::super::corpus::Corpus::default();
        let mut rng = Rng::new(3);
        for _ in 0..400 {
            // "cat" and "dog" share the contexts of group A, "car" and
            // "bus" those of group B.
            let (pair, ctx) = if rng.below(2) == 0 {
                (["cat", "dog"], ["pet", "fur", "paw", "tail"])
            } else {
                (["car", "bus"], ["road", "wheel", "fuel", "engine"])
            };
            let mut s = String::new();
            for _ in 0..6 {
                s.push_str(ctx[rng.below(4)]);
                s.push(' ');
                s.push_str(pair[rng.below(2)]);
                s.push(' ');
            }
            corpus.push_sentence(&s);
        }
        let (vocab, map) = Vocab::build(&corpus, 1, 0.0);
        let ids: Vec<u32> = corpus.ids.iter().map(|&i| map[i as usize]).collect();
        let text = TrainingText {
            ids: &ids,
            sentence_ends: &corpus.sentence_ends,
        };
        let settings = SgnsSettings {
            dim: 16,
            window: 2,
            negative: 5,
            epochs: 5,
            sample: 0.0,
            alpha: 0.025,
            min_alpha: 0.0001,
            seed: 1,
        };
        let noise = NoiseTable::new(&vocab.counts, 0.75);
        let mut model = Sgns::new(vocab.len(), 16, 1);
        let j = jobs(&text);
        for e in 0..settings.epochs {
            train_epoch(
                &mut model,
                &vocab,
                &noise,
                &text,
                &j,
                &settings,
                e,
                1,
                &|_| {},
            );
        }
        let row = |w: &str| {
            let i = vocab.words.iter().position(|x| x == w).unwrap();
            model.input[i * 16..(i + 1) * 16].to_vec()
        };
        let cos = |a: &[f32], b: &[f32]| dot(a, b) / (dot(a, a).sqrt() * dot(b, b).sqrt());
        let same = cos(&row("cat"), &row("dog"));
        let other = cos(&row("cat"), &row("car"));
        assert!(same > other + 0.3, "cat~dog {same}, cat~car {other}");
    }
}
