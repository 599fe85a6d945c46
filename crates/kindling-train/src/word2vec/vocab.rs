//! The vocabulary: words seen at least `min_count` times, most frequent
//! first, with the two distributions skip-gram training draws from —
//! the probability of keeping each occurrence (frequent-word subsampling)
//! and the noise distribution of negative samples, unigram^0.75.

use super::corpus::Corpus;

#[derive(Clone, Debug)]
pub struct Vocab {
    /// Most frequent first; ties in order of first appearance (gensim's
    /// stable sort of the scanned words).
    pub words: Vec<String>,
    pub counts: Vec<u64>,
    /// Keep an occurrence of word `i` when a uniform u32 draw is at most
    /// `keep[i]` (gensim's `sample_int`).
    pub keep: Vec<u32>,
}

impl Vocab {
    /// The words of `corpus` seen at least `min_count` times, and `old_to_new`
    /// mapping the corpus's ids to vocabulary ids (`u32::MAX`: dropped).
    pub fn build(corpus: &Corpus, min_count: u64, sample: f64) -> (Vocab, Vec<u32>) {
        let mut kept: Vec<u32> = (0..corpus.words.len() as u32)
            .filter(|&i| corpus.counts[i as usize] >= min_count)
            .collect();
        // Stable: equal counts stay in order of first appearance.
        kept.sort_by_key(|&i| std::cmp::Reverse(corpus.counts[i as usize]));
        let mut old_to_new = vec![u32::MAX; corpus.words.len()];
        for (new, &old) in kept.iter().enumerate() {
            old_to_new[old as usize] = new as u32;
        }
        let words = kept
            .iter()
            .map(|&i| corpus.words[i as usize].clone())
            .collect();
        let counts: Vec<u64> = kept.iter().map(|&i| corpus.counts[i as usize]).collect();
        let keep = keep_thresholds(&counts, sample);
        (
            Vocab {
                words,
                counts,
                keep,
            },
            old_to_new,
        )
    }

    pub fn len(&self) -> usize {
        self.words.len()
    }

    pub fn is_empty(&self) -> bool {
        self.words.is_empty()
    }
}

/// Mikolov et al. (2013) subsampling as word2vec.c and gensim compute it:
/// with t = sample × (words in the vocabulary's occurrences), an occurrence
/// of a word seen c times is kept with probability (√(c/t) + 1) · t/c,
/// capped at 1; `sample` 0 keeps everything. Scaled to u32 as gensim does.
pub fn keep_thresholds(counts: &[u64], sample: f64) -> Vec<u32> {
    let total: u64 = counts.iter().sum();
    let t = if sample > 0.0 {
        sample * total as f64
    } else {
        total as f64
    };
    counts
        .iter()
        .map(|&c| {
            let c = c as f64;
            let p = if sample > 0.0 {
                ((c / t).sqrt() + 1.0) * (t / c)
            } else {
                1.0
            };
            (p.min(1.0) * u32::MAX as f64) as u32
        })
        .collect()
}

/// Draws word ids from counts^0.75 (the noise distribution of negative
/// sampling) in constant time by Walker's alias method: one uniform column
/// and one biased coin per draw, exact for any vocabulary size (word2vec.c
/// uses a 10^8-entry table instead, gensim a binary search).
#[derive(Clone, Debug)]
pub struct NoiseTable {
    /// Keep column `i` when the coin (a u32) is below `threshold[i]`.
    threshold: Vec<u32>,
    alias: Vec<u32>,
}

impl NoiseTable {
    pub fn new(counts: &[u64], power: f64) -> NoiseTable {
        let n = counts.len();
        let weights: Vec<f64> = counts.iter().map(|&c| (c as f64).powf(power)).collect();
        let total: f64 = weights.iter().sum();
        // Each column holds mass 1 after scaling by n / total.
        let mut mass: Vec<f64> = weights.iter().map(|w| w * n as f64 / total).collect();
        let mut alias: Vec<u32> = (0..n as u32).collect();
        let (mut small, mut large): (Vec<usize>, Vec<usize>) = (0..n).partition(|&i| mass[i] < 1.0);
        while let (Some(s), Some(&l)) = (small.pop(), large.last()) {
            alias[s] = l as u32;
            mass[l] -= 1.0 - mass[s];
            if mass[l] < 1.0 {
                large.pop();
                small.push(l);
            }
        }
        // Columns left over hold mass 1 up to rounding.
        for i in small.into_iter().chain(large) {
            mass[i] = 1.0;
        }
        let threshold = mass
            .iter()
            .map(|&m| {
                if m >= 1.0 {
                    u32::MAX
                } else {
                    (m * 4_294_967_296.0) as u32
                }
            })
            .collect();
        NoiseTable { threshold, alias }
    }

    /// A word id from 64 random bits.
    #[inline(always)]
    pub fn draw(&self, bits: u64) -> u32 {
        let column = ((bits >> 32) * self.threshold.len() as u64) >> 32;
        let column = column as usize;
        if (bits as u32) < self.threshold[column] {
            column as u32
        } else {
            self.alias[column]
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_vocabulary_is_sorted_by_count_and_drops_rare_words() {
        let mut c = Corpus::default();
        c.push_sentence("bb aa cc aa bb aa dd dd");
        let (v, map) = Vocab::build(&c, 2, 0.0);
        assert_eq!(v.words, vec!["aa", "bb", "dd"]);
        assert_eq!(v.counts, vec![3, 2, 2]);
        // corpus ids: bb=0, aa=1, cc=2, dd=3
        assert_eq!(map, vec![1, 0, u32::MAX, 2]);
        assert!(v.keep.iter().all(|&k| k == u32::MAX));
    }

    #[test]
    fn subsampling_keeps_rare_words_and_thins_frequent_ones() {
        // t = 1e-3 * 1_001_000 = 1001; a word seen 1,000,000 times is kept
        // with probability (sqrt(1e6/1001) + 1) * 1001/1e6 = 0.0326.
        let keep = keep_thresholds(&[1_000_000, 1_000], 1e-3);
        let p = keep[0] as f64 / u32::MAX as f64;
        let expected = ((1e6f64 / 1001.0).sqrt() + 1.0) * 1001.0 / 1e6;
        assert!((p - expected).abs() < 1e-9, "{p} vs {expected}");
        assert_eq!(keep[1], u32::MAX);
    }

    #[test]
    fn noise_draws_follow_counts_to_the_three_quarters() {
        let counts = [1000u64, 100, 10, 1];
        let table = NoiseTable::new(&counts, 0.75);
        let mut rng = kindling_tensor::Rng::new(7);
        let mut seen = [0usize; 4];
        let n = 400_000;
        for _ in 0..n {
            seen[table.draw(rng.next_u64()) as usize] += 1;
        }
        let w: Vec<f64> = counts.iter().map(|&c| (c as f64).powf(0.75)).collect();
        let total: f64 = w.iter().sum();
        for i in 0..4 {
            let expected = w[i] / total;
            let got = seen[i] as f64 / n as f64;
            // Four standard errors of a binomial proportion.
            let tol = 4.0 * (expected * (1.0 - expected) / n as f64).sqrt();
            assert!(
                (got - expected).abs() < tol,
                "word {i}: {got} vs {expected}"
            );
        }
    }
}
