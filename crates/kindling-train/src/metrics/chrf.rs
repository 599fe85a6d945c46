//! chrF (Popović 2015) and chrF++ as sacreBLEU 2.x computes them:
//! character n-grams up to 6 with whitespace removed, β = 2, statistics
//! summed over the corpus, precision and recall averaged over the orders
//! that have n-grams on both sides, then the F-score. `word_order = 2` is
//! chrF++.

use std::collections::HashMap;

use super::tokenize::py_split;
use super::{check_streams, MetricError};

#[derive(Clone, Debug)]
pub struct Chrf {
    pub char_order: usize,
    pub word_order: usize,
    pub beta: u32,
    pub lowercase: bool,
    /// Keep whitespace inside character n-grams (sacreBLEU's default: no).
    pub whitespace: bool,
    /// Sum per-order F-scores with an epsilon instead (the original chrF++.py).
    pub eps_smoothing: bool,
}

impl Default for Chrf {
    fn default() -> Self {
        Chrf {
            char_order: 6,
            word_order: 0,
            beta: 2,
            lowercase: false,
            whitespace: false,
            eps_smoothing: false,
        }
    }
}

impl Chrf {
    /// chrF++: character order 6 and word order 2.
    pub fn plus_plus() -> Self {
        Chrf {
            word_order: 2,
            ..Chrf::default()
        }
    }

    pub fn name(&self) -> &'static str {
        if self.word_order > 0 {
            "chrF++"
        } else {
            "chrF"
        }
    }
}

/// A corpus chrF score (0..100) with the summed `[hyp, ref, match]` counts
/// of every order, characters first.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct ChrfScore {
    pub score: f64,
    pub stats: Vec<[usize; 3]>,
}

const PUNCTS: &str = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~";

fn count<'a>(items: impl Iterator<Item = String> + 'a) -> HashMap<String, usize> {
    let mut m = HashMap::new();
    for s in items {
        *m.entry(s).or_insert(0) += 1;
    }
    m
}

impl Chrf {
    fn ngrams(&self, line: &str) -> Vec<HashMap<String, usize>> {
        let chars: Vec<char> = if self.whitespace {
            line.chars().collect()
        } else {
            py_split(line).flat_map(|w| w.chars()).collect()
        };
        let mut out: Vec<HashMap<String, usize>> = (1..=self.char_order)
            .map(|n| count(chars.windows(n).map(|w| w.iter().collect())))
            .collect();
        if self.word_order > 0 {
            let words = remove_punctuation(line);
            for n in 1..=self.word_order {
                out.push(count(words.windows(n).map(|w| w.join(" "))));
            }
        }
        out
    }

    /// The F-score of summed statistics, in sacreBLEU's arithmetic order.
    fn f_score(&self, stats: &[[usize; 3]]) -> f64 {
        let eps = 1e-16;
        let factor = (self.beta * self.beta) as f64;
        let mut score = 0.0;
        let mut effective = 0usize;
        let (mut avg_prec, mut avg_rec) = (0.0, 0.0);
        for &[n_hyp, n_ref, n_match] in stats {
            let prec = if n_hyp > 0 {
                n_match as f64 / n_hyp as f64
            } else {
                eps
            };
            let rec = if n_ref > 0 {
                n_match as f64 / n_ref as f64
            } else {
                eps
            };
            let denom = factor * prec + rec;
            score += if denom > 0.0 {
                (1.0 + factor) * prec * rec / denom
            } else {
                eps
            };
            if n_hyp > 0 && n_ref > 0 {
                avg_prec += prec;
                avg_rec += rec;
                effective += 1;
            }
        }
        if self.eps_smoothing {
            return 100.0 * score / stats.len() as f64;
        }
        if effective == 0 {
            avg_prec = 0.0;
            avg_rec = 0.0;
        } else {
            avg_prec /= effective as f64;
            avg_rec /= effective as f64;
        }
        if avg_prec + avg_rec != 0.0 {
            let mut s = (1.0 + factor) * avg_prec * avg_rec;
            s /= factor * avg_prec + avg_rec;
            100.0 * s
        } else {
            0.0
        }
    }

    /// Corpus chrF; `refs` are reference streams as for [`super::Bleu`]. With
    /// several references a segment takes the one with the best sentence F.
    pub fn corpus_score<S: AsRef<str>, R: AsRef<str>>(
        &self,
        hyps: &[S],
        refs: &[Vec<R>],
    ) -> Result<ChrfScore, MetricError> {
        check_streams(hyps.len(), refs.iter().map(|r| r.len()))?;
        if self.char_order + self.word_order == 0 {
            return Err(MetricError::Setting(
                "char_order and word_order cannot both be 0".into(),
            ));
        }
        let prep = |s: &str| {
            if self.lowercase {
                s.to_lowercase()
            } else {
                s.to_string()
            }
        };
        let orders = self.char_order + self.word_order;
        let mut total = vec![[0usize; 3]; orders];
        for (i, h) in hyps.iter().enumerate() {
            let hyp = self.ngrams(&prep(h.as_ref()));
            let mut best: Option<(f64, Vec<[usize; 3]>)> = None;
            for r in refs {
                let rg = self.ngrams(&prep(r[i].as_ref()));
                let stats: Vec<[usize; 3]> = hyp
                    .iter()
                    .zip(&rg)
                    .map(|(h, r)| {
                        let mut matched = 0;
                        let mut n_hyp = 0;
                        for (g, &c) in h {
                            n_hyp += c;
                            if let Some(&rc) = r.get(g) {
                                matched += c.min(rc);
                            }
                        }
                        let n_ref: usize = r.values().sum();
                        [if r.is_empty() { 0 } else { n_hyp }, n_ref, matched]
                    })
                    .collect();
                let f = self.f_score(&stats);
                if best.as_ref().is_none_or(|(bf, _)| f > *bf) {
                    best = Some((f, stats));
                }
            }
            if let Some((_, stats)) = best {
                for (t, s) in total.iter_mut().zip(stats) {
                    for k in 0..3 {
                        t[k] += s[k];
                    }
                }
            }
        }
        Ok(ChrfScore {
            score: self.f_score(&total),
            stats: total,
        })
    }
}

/// chrF++'s word split: one leading or trailing ASCII punctuation mark
/// becomes its own word (the end is tried first).
fn remove_punctuation(sent: &str) -> Vec<String> {
    let mut out = Vec::new();
    for w in py_split(sent) {
        let chars: Vec<char> = w.chars().collect();
        if chars.len() == 1 {
            out.push(w.to_string());
        } else if PUNCTS.contains(chars[chars.len() - 1]) {
            out.push(chars[..chars.len() - 1].iter().collect());
            out.push(chars[chars.len() - 1].to_string());
        } else if PUNCTS.contains(chars[0]) {
            out.push(chars[0].to_string());
            out.push(chars[1..].iter().collect());
        } else {
            out.push(w.to_string());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identical_is_one_hundred_and_disjoint_is_zero() {
        let c = Chrf::default();
        let s = c.corpus_score(&["大道至简"], &[vec!["大道至简"]]).unwrap();
        assert!((s.score - 100.0).abs() < 1e-12);
        let s = c.corpus_score(&["abc"], &[vec!["xyz"]]).unwrap();
        assert_eq!(s.score, 0.0);
    }

    #[test]
    fn unigram_only_by_hand() {
        // chrF1 (order 1, beta 1) on "ab" vs "abc": P = 1, R = 2/3, F1 = 0.8.
        let c = Chrf {
            char_order: 1,
            beta: 1,
            ..Chrf::default()
        };
        let s = c.corpus_score(&["a b"], &[vec!["abc"]]).unwrap();
        assert_eq!(s.stats, vec![[2, 3, 2]]);
        assert!((s.score - 80.0).abs() < 1e-12);
    }

    #[test]
    fn chrf_plus_plus_splits_edge_punctuation() {
        assert_eq!(
            remove_punctuation("Hello, (world) !"),
            ["Hello", ",", "(world", ")", "!"]
        );
    }
}
