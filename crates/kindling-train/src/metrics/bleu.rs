//! Corpus BLEU as sacreBLEU 2.x computes it (Papineni et al. 2002, with
//! sacreBLEU's defaults: tokenizer `13a`, `exp` smoothing, n-grams up to 4,
//! the closest reference length, shorter on ties). The arithmetic follows
//! sacreBLEU's order of operations so the score is the same float.

use std::collections::HashMap;

use super::tokenize::{py_rstrip, py_split, Tokenize};
use super::{check_streams, MetricError};

/// sacreBLEU's smoothing methods (Chen & Cherry 2014).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Smooth {
    None,
    /// Method 1: a zero count becomes this many (sacreBLEU's default 0.1).
    Floor(f64),
    /// Method 2: add k to counts and totals of orders 2 and up (default 1).
    AddK(f64),
    /// Method 3, mteval-v13a's: the k-th zero precision becomes 1 / (2^k · total).
    Exp,
}

#[derive(Clone, Debug)]
pub struct Bleu {
    pub tokenize: Tokenize,
    pub lowercase: bool,
    pub smooth: Smooth,
    pub max_order: usize,
    /// Leave out the orders past the last with any n-grams (sentence BLEU).
    pub effective_order: bool,
}

impl Default for Bleu {
    fn default() -> Self {
        Bleu {
            tokenize: Tokenize::Thirteen,
            lowercase: false,
            smooth: Smooth::Exp,
            max_order: 4,
            effective_order: false,
        }
    }
}

/// A corpus BLEU score with its sufficient statistics.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct BleuScore {
    /// 0..100.
    pub score: f64,
    /// Matched n-grams of each order (clipped by the references).
    pub counts: Vec<f64>,
    /// The hypotheses' n-grams of each order.
    pub totals: Vec<f64>,
    /// Per-order precisions, in percent, after smoothing.
    pub precisions: Vec<f64>,
    /// Brevity penalty.
    pub bp: f64,
    pub sys_len: usize,
    pub ref_len: usize,
}

impl BleuScore {
    /// sacreBLEU's one-line form: `BLEU = 23.45 60.1/30.2/... (BP = ... )`.
    pub fn format(&self) -> String {
        let prec: Vec<String> = self.precisions.iter().map(|p| format!("{p:.1}")).collect();
        let ratio = if self.ref_len > 0 {
            self.sys_len as f64 / self.ref_len as f64
        } else {
            0.0
        };
        format!(
            "BLEU = {:.2} {} (BP = {:.3} ratio = {:.3} hyp_len = {} ref_len = {})",
            self.score,
            prec.join("/"),
            self.bp,
            ratio,
            self.sys_len,
            self.ref_len
        )
    }
}

type Counts = HashMap<Vec<String>, usize>;

fn ngrams(line: &str, max_order: usize) -> (Counts, usize) {
    let tokens: Vec<&str> = py_split(line).collect();
    let mut out: Counts = HashMap::new();
    for n in 1..=max_order {
        for w in tokens.windows(n) {
            *out.entry(w.iter().map(|s| s.to_string()).collect())
                .or_insert(0) += 1;
        }
    }
    (out, tokens.len())
}

impl Bleu {
    fn preprocess(&self, s: &str) -> String {
        let s = if self.lowercase {
            s.to_lowercase()
        } else {
            s.to_string()
        };
        self.tokenize.apply(py_rstrip(&s))
    }

    /// One segment's statistics: `[hyp_len, ref_len, correct.., total..]`.
    fn segment(&self, hyp: &str, refs: &[&str]) -> Vec<f64> {
        let mut ref_counts: Counts = HashMap::new();
        let mut ref_lens = Vec::with_capacity(refs.len());
        for r in refs {
            let (c, len) = ngrams(&self.preprocess(r), self.max_order);
            ref_lens.push(len);
            for (g, k) in c {
                let e = ref_counts.entry(g).or_insert(0);
                *e = (*e).max(k);
            }
        }
        let (hyp_counts, hyp_len) = ngrams(&self.preprocess(hyp), self.max_order);
        // The closest reference length; the shorter one on a tie.
        let mut closest: Option<(usize, usize)> = None;
        for &len in &ref_lens {
            let diff = hyp_len.abs_diff(len);
            closest = match closest {
                None => Some((diff, len)),
                Some((d, l)) if diff < d || (diff == d && len < l) => Some((diff, len)),
                keep => keep,
            };
        }
        let ref_len = closest.map(|(_, l)| l).unwrap_or(usize::MAX);
        let m = self.max_order;
        let mut stats = vec![0.0; 2 + 2 * m];
        stats[0] = hyp_len as f64;
        stats[1] = ref_len as f64;
        for (g, &k) in &hyp_counts {
            let n = g.len() - 1;
            stats[2 + m + n] += k as f64;
            if let Some(&r) = ref_counts.get(g) {
                stats[2 + n] += k.min(r) as f64;
            }
        }
        stats
    }

    /// Corpus BLEU. `refs` holds reference streams, each as long as `hyps`
    /// (sacreBLEU's `[[ref1 of every segment], [ref2 ...]]`).
    pub fn corpus_score<S: AsRef<str>, R: AsRef<str>>(
        &self,
        hyps: &[S],
        refs: &[Vec<R>],
    ) -> Result<BleuScore, MetricError> {
        check_streams(hyps.len(), refs.iter().map(|r| r.len()))?;
        if self.max_order == 0 {
            return Err(MetricError::Setting("max_order must be at least 1".into()));
        }
        let mut total = vec![0.0; 2 + 2 * self.max_order];
        for (i, h) in hyps.iter().enumerate() {
            let rs: Vec<&str> = refs.iter().map(|r| r[i].as_ref()).collect();
            for (t, s) in total.iter_mut().zip(self.segment(h.as_ref(), &rs)) {
                *t += s;
            }
        }
        let m = self.max_order;
        Ok(self.compute(
            total[2..2 + m].to_vec(),
            total[2 + m..].to_vec(),
            total[0] as usize,
            total[1] as usize,
        ))
    }

    /// Each segment's sufficient statistics (`[hyp_len, ref_len,
    /// correct.., total..]`), which add up to the corpus score
    /// ([`Self::score_of`]): what resampling needs.
    pub fn segment_stats<S: AsRef<str>, R: AsRef<str>>(
        &self,
        hyps: &[S],
        refs: &[Vec<R>],
    ) -> Result<Vec<Vec<f64>>, MetricError> {
        check_streams(hyps.len(), refs.iter().map(|r| r.len()))?;
        Ok(hyps
            .iter()
            .enumerate()
            .map(|(i, h)| {
                let rs: Vec<&str> = refs.iter().map(|r| r[i].as_ref()).collect();
                self.segment(h.as_ref(), &rs)
            })
            .collect())
    }

    /// The corpus score of summed segment statistics.
    pub fn score_of(&self, total: &[f64]) -> BleuScore {
        let m = self.max_order;
        self.compute(
            total[2..2 + m].to_vec(),
            total[2 + m..2 + 2 * m].to_vec(),
            total[0] as usize,
            total[1] as usize,
        )
    }

    /// Paired bootstrap resampling (Koehn 2004, as `sacrebleu --paired-bs`
    /// does it): `samples` times, draw as many segments as there are with
    /// replacement, the same draw for every system, and score each system
    /// on it. Returns, per system, its scores over the resamples.
    pub fn paired_bootstrap(
        &self,
        systems: &[&[Vec<f64>]],
        samples: usize,
        seed: u64,
    ) -> Vec<Vec<f64>> {
        let n = systems.first().map_or(0, |s| s.len());
        let width = 2 + 2 * self.max_order;
        let mut rng = kindling_tensor::Rng::new(seed);
        let mut out = vec![Vec::with_capacity(samples); systems.len()];
        for _ in 0..samples {
            let draw: Vec<usize> = (0..n).map(|_| rng.below(n.max(1))).collect();
            for (s, stats) in systems.iter().enumerate() {
                let mut total = vec![0.0; width];
                for &i in &draw {
                    for (t, x) in total.iter_mut().zip(&stats[i]) {
                        *t += x;
                    }
                }
                out[s].push(self.score_of(&total).score);
            }
        }
        out
    }

    /// sacreBLEU's `compute_bleu`, step for step.
    fn compute(
        &self,
        mut correct: Vec<f64>,
        mut total: Vec<f64>,
        sys_len: usize,
        ref_len: usize,
    ) -> BleuScore {
        let mut bp = 1.0;
        if sys_len < ref_len {
            bp = if sys_len > 0 {
                (1.0 - ref_len as f64 / sys_len as f64).exp()
            } else {
                0.0
            };
        }
        let m = self.max_order;
        let mut precisions = vec![0.0; m];
        let done = |score, correct, total, precisions| BleuScore {
            score,
            counts: correct,
            totals: total,
            precisions,
            bp,
            sys_len,
            ref_len,
        };
        if correct.iter().all(|&c| c == 0.0) {
            return done(0.0, correct, total, precisions);
        }
        let mut smooth_mteval = 1.0;
        let mut eff_order = m;
        for n in 1..=m {
            if let Smooth::AddK(k) = self.smooth {
                if n > 1 {
                    correct[n - 1] += k;
                    total[n - 1] += k;
                }
            }
            if total[n - 1] == 0.0 {
                break;
            }
            if self.effective_order {
                eff_order = n;
            }
            if correct[n - 1] == 0.0 {
                match self.smooth {
                    Smooth::Exp => {
                        smooth_mteval *= 2.0;
                        precisions[n - 1] = 100.0 / (smooth_mteval * total[n - 1]);
                    }
                    Smooth::Floor(v) => precisions[n - 1] = 100.0 * v / total[n - 1],
                    _ => {}
                }
            } else {
                precisions[n - 1] = 100.0 * correct[n - 1] / total[n - 1];
            }
        }
        // Python's sum() starts from the integer 0 and adds left to right.
        let mut sum = 0.0;
        for &p in &precisions[..eff_order] {
            sum += if p == 0.0 { -9999999999.0 } else { f64::ln(p) };
        }
        let score = bp * (sum / eff_order as f64).exp();
        done(score, correct, total, precisions)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identical_corpus_scores_one_hundred() {
        let h = ["the cat sat on the mat .", "a dog barked loudly today"];
        let s = Bleu::default().corpus_score(&h, &[h.to_vec()]).unwrap();
        assert!((s.score - 100.0).abs() < 1e-9, "{}", s.format());
        assert_eq!(s.bp, 1.0);
    }

    #[test]
    fn summed_segment_statistics_give_the_corpus_score_and_resampling_is_paired() {
        let bleu = Bleu::default();
        let hyps = ["a b c d", "the cat sat", "x y z w v", "one two three four"];
        let worse = ["a b", "the dog sat", "x q z w v", "one two"];
        let refs = vec![vec![
            "a b c d e",
            "the cat sat down",
            "x y z w",
            "one two three four",
        ]];
        let stats = bleu.segment_stats(&hyps, &refs).unwrap();
        let mut total = vec![0.0; 10];
        for s in &stats {
            for (t, x) in total.iter_mut().zip(s) {
                *t += x;
            }
        }
        assert_eq!(
            bleu.score_of(&total),
            bleu.corpus_score(&hyps, &refs).unwrap()
        );
        let other = bleu.segment_stats(&worse, &refs).unwrap();
        let runs = bleu.paired_bootstrap(&[&stats, &stats, &other], 50, 7);
        // The same system scores the same on every shared draw...
        assert_eq!(runs[0], runs[1]);
        // ... the draws differ from one another, and repeat with the seed.
        assert!(runs[0].iter().any(|&x| x != runs[0][0]));
        assert_eq!(
            runs,
            bleu.paired_bootstrap(&[&stats, &stats, &other], 50, 7)
        );
        // Each worse segment is a sub-sequence of the better one's.
        assert!(runs[0].iter().zip(&runs[2]).all(|(a, b)| a >= b));
    }

    #[test]
    fn brevity_penalty_and_exp_smoothing_by_hand() {
        // hyp: 3 words, ref: 6 words; unigrams 3/3, bigrams 2/2, trigrams 1/1, 4-grams 0/0.
        let s = Bleu::default()
            .corpus_score(&["a b c"], &[vec!["a b c d e f"]])
            .unwrap();
        assert_eq!(s.counts, vec![3.0, 2.0, 1.0, 0.0]);
        assert_eq!(s.totals, vec![3.0, 2.0, 1.0, 0.0]);
        let bp = (1.0f64 - 2.0).exp();
        // The loop stops at the order with no n-grams: its precision stays 0.
        let want = bp * ((100f64.ln() * 3.0 - 9999999999.0) / 4.0).exp();
        assert_eq!(s.score, want);
        // A zero match with n-grams present is smoothed to 100 / (2 * total).
        let s = Bleu::default()
            .corpus_score(&["a b x y z"], &[vec!["a b c d e"]])
            .unwrap();
        assert_eq!(s.counts, vec![2.0, 1.0, 0.0, 0.0]);
        assert_eq!(s.precisions[2], 100.0 / (2.0 * 3.0));
        assert_eq!(s.precisions[3], 100.0 / (4.0 * 2.0));
    }

    #[test]
    fn mismatched_streams_are_an_error() {
        let e = Bleu::default()
            .corpus_score(&["a", "b"], &[vec!["a"]])
            .unwrap_err();
        assert!(e.to_string().contains("reference stream 1"), "{e}");
    }
}
