//! The standard tests of word vectors, defined exactly as gensim's
//! `KeyedVectors.evaluate_word_analogies` and `evaluate_word_pairs` define
//! them (gensim 4.4), so that the two scorers agree on the same vectors:
//!
//! - Analogies (`questions-words.txt`, Mikolov et al. 2013): "a b c d"
//!   asks for d = argmax cos(w, b − a + c) by 3CosAdd over unit vectors,
//!   among the first `restrict_vocab` words (300,000) except a, b and c;
//!   gensim takes the best of the top 5 that is not a, b or c once
//!   uppercased. Words compare case-insensitively (uppercased; the first,
//!   most frequent case variant stands for all). A question with a word
//!   outside the vocabulary is skipped and counted.
//! - Word pairs (WordSim-353, SimLex-999): Spearman's ρ between the human
//!   scores and the cosines, pairs with an unknown word skipped and counted;
//!   lines starting with `#` are comments.

use super::vectors::WordVectors;
use crate::Result;
use kindling_tensor::Tensor;
use rayon::prelude::*;
use std::collections::HashMap;
use std::path::Path;

/// gensim's default `restrict_vocab`.
pub const RESTRICT_VOCAB: usize = 300_000;

/// Analogy questions answered per matrix product.
const BLOCK: usize = 512;

/// The words a test may use: the first `restrict_vocab`, uppercased, each
/// mapped to its most frequent case variant's row.
pub struct Scorer<'a> {
    pub vectors: &'a WordVectors,
    /// Unit rows of the first `restrict` words.
    unit: Vec<f32>,
    restrict: usize,
    ok_vocab: HashMap<String, usize>,
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct SectionScore {
    pub section: String,
    pub correct: usize,
    /// Questions answered (all four words known).
    pub total: usize,
    pub skipped: usize,
}

impl SectionScore {
    /// Correct / answered, 0 when none was answered (gensim's convention).
    pub fn accuracy(&self) -> f64 {
        share(self.correct, self.total)
    }
}

/// Correct over answered, 0 when none was answered (gensim's convention).
fn share(correct: usize, total: usize) -> f64 {
    if total == 0 {
        0.0
    } else {
        correct as f64 / total as f64
    }
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct AnalogyScore {
    pub sections: Vec<SectionScore>,
    pub correct: usize,
    pub total: usize,
    pub skipped: usize,
}

impl AnalogyScore {
    pub fn accuracy(&self) -> f64 {
        share(self.correct, self.total)
    }
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct PairScore {
    /// NaN (null in JSON) when no pair has both words in the vocabulary.
    pub spearman: f64,
    pub pairs: usize,
    pub skipped: usize,
}

impl<'a> Scorer<'a> {
    pub fn new(vectors: &'a WordVectors, restrict_vocab: usize) -> Scorer<'a> {
        let restrict = restrict_vocab.min(vectors.len());
        let mut ok_vocab = HashMap::with_capacity(restrict);
        for (i, w) in vectors.words[..restrict].iter().enumerate() {
            ok_vocab.entry(w.to_uppercase()).or_insert(i);
        }
        let mut unit = vectors.unit_rows();
        unit.truncate(restrict * vectors.dim);
        Scorer {
            vectors,
            unit,
            restrict,
            ok_vocab,
        }
    }

    /// The row of `word` (case-insensitive), if it is among the first
    /// `restrict_vocab` words.
    pub fn row_of(&self, word: &str) -> Option<usize> {
        self.ok_vocab.get(&word.to_uppercase()).copied()
    }

    fn unit_row(&self, i: usize) -> &[f32] {
        let d = self.vectors.dim;
        &self.unit[i * d..(i + 1) * d]
    }

    /// The direction b − a + c of unit vectors (its length does not change
    /// the ranking by cosine).
    fn offset(&self, a: usize, b: usize, c: usize) -> Vec<f32> {
        let (a, b, c) = (self.unit_row(a), self.unit_row(b), self.unit_row(c));
        let mut q: Vec<f32> = (0..a.len()).map(|k| b[k] - a[k] + c[k]).collect();
        let norm = q.iter().map(|x| x * x).sum::<f32>().sqrt();
        if norm > 0.0 {
            q.iter_mut().for_each(|x| *x /= norm);
        }
        q
    }

    /// Cosines of each query row (unit length) with every word, `queries × restrict`.
    fn cosines(&self, queries: &[f32]) -> Result<Vec<f32>> {
        let d = self.vectors.dim;
        let q = Tensor::from_slice(queries, &[queries.len() / d, d])?;
        let e = Tensor::from_slice(&self.unit, &[self.restrict, d])?;
        Ok(q.matmul(&e.t()?)?.to_vec_f32()?)
    }

    /// The `top` words nearest b − a + c, a, b and c left out, with their cosines.
    pub fn analogy(&self, a: usize, b: usize, c: usize, top: usize) -> Result<Vec<(usize, f32)>> {
        let sims = self.cosines(&self.offset(a, b, c))?;
        Ok(top_k(&sims, top, &[a, b, c]))
    }

    /// Scores every question of a `questions-words.txt`-style file.
    pub fn analogies(&self, path: &Path) -> Result<AnalogyScore> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        // (section, [a, b, c, expected] rows, or None when skipped)
        let mut sections: Vec<(String, Vec<Option<[usize; 4]>>)> = Vec::new();
        let mut expected_words: Vec<String> = Vec::new();
        for (n, line) in text.lines().enumerate() {
            if let Some(name) = line.strip_prefix(": ") {
                sections.push((name.trim().to_string(), Vec::new()));
                continue;
            }
            let words: Vec<&str> = line.split_whitespace().collect();
            let Some((_, questions)) = sections.last_mut() else {
                return Err(format!(
                    "{}:{}: a question before the first `: section` line",
                    path.display(),
                    n + 1
                )
                .into());
            };
            if words.len() != 4 {
                // gensim skips a line that is not four words.
                continue;
            }
            let rows: Vec<Option<usize>> = words.iter().map(|w| self.row_of(w)).collect();
            if rows.iter().all(Option::is_some) {
                let r = [
                    rows[0].unwrap(),
                    rows[1].unwrap(),
                    rows[2].unwrap(),
                    rows[3].unwrap(),
                ];
                questions.push(Some(r));
                expected_words.push(words[3].to_uppercase());
            } else {
                questions.push(None);
            }
        }
        let asked: Vec<[usize; 4]> = sections
            .iter()
            .flat_map(|(_, q)| q.iter().flatten().copied())
            .collect();
        let answers: Vec<bool> = asked
            .par_chunks(BLOCK)
            .zip(expected_words.par_chunks(BLOCK))
            .map(|(block, expected)| -> Result<Vec<bool>> {
                let queries: Vec<f32> = block
                    .iter()
                    .flat_map(|&[a, b, c, _]| self.offset(a, b, c))
                    .collect();
                let sims = self.cosines(&queries)?;
                let n = self.restrict;
                Ok(block
                    .iter()
                    .zip(expected)
                    .enumerate()
                    .map(|(i, (&[a, b, c, _], want))| {
                        let best = top_k(&sims[i * n..(i + 1) * n], 5, &[a, b, c]);
                        let ignore = [a, b, c].map(|r| self.vectors.words[r].to_uppercase());
                        // gensim: the first of the top 5 that is not a, b or
                        // c by its uppercased word, else the last looked at.
                        let mut predicted = None;
                        for &(r, _) in &best {
                            let w = self.vectors.words[r].to_uppercase();
                            let stop = self.ok_vocab.contains_key(&w) && !ignore.contains(&w);
                            predicted = Some(w);
                            if stop {
                                break;
                            }
                        }
                        predicted.as_deref() == Some(want.as_str())
                    })
                    .collect())
            })
            .collect::<Result<Vec<_>>>()?
            .into_iter()
            .flatten()
            .collect();
        let mut next = answers.iter();
        let mut out = AnalogyScore {
            sections: Vec::new(),
            correct: 0,
            total: 0,
            skipped: 0,
        };
        for (name, questions) in &sections {
            let mut s = SectionScore {
                section: name.clone(),
                correct: 0,
                total: 0,
                skipped: 0,
            };
            for q in questions {
                if q.is_some() {
                    s.total += 1;
                    if *next.next().expect("one answer per asked question") {
                        s.correct += 1;
                    }
                } else {
                    s.skipped += 1;
                }
            }
            out.correct += s.correct;
            out.total += s.total;
            out.skipped += s.skipped;
            out.sections.push(s);
        }
        Ok(out)
    }

    /// Spearman's ρ between a file's human scores (`word1<TAB>word2<TAB>score`)
    /// and the cosines.
    pub fn word_pairs(&self, path: &Path) -> Result<PairScore> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let (mut gold, mut model) = (Vec::new(), Vec::new());
        let mut skipped = 0;
        for line in text.lines() {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let fields: Vec<&str> = line.split('\t').collect();
            let [a, b, s] = fields.as_slice() else {
                continue;
            };
            let Ok(score) = s.trim().parse::<f64>() else {
                continue;
            };
            match (self.row_of(a), self.row_of(b)) {
                (Some(i), Some(j)) => {
                    gold.push(score);
                    model.push(super::sgns::dot(self.unit_row(i), self.unit_row(j)) as f64);
                }
                _ => skipped += 1,
            }
        }
        // No pair known (a tiny vocabulary): no correlation to report
        // (gensim raises an error here; a training run should still finish).
        Ok(PairScore {
            spearman: if gold.is_empty() {
                f64::NAN
            } else {
                spearman(&gold, &model)
            },
            pairs: gold.len(),
            skipped,
        })
    }
}

/// The `k` largest of `sims` (index and value), best first, `exclude` left out.
pub fn top_k(sims: &[f32], k: usize, exclude: &[usize]) -> Vec<(usize, f32)> {
    let mut best: Vec<(usize, f32)> = Vec::with_capacity(k + 1);
    for (i, &s) in sims.iter().enumerate() {
        if best.len() == k && best.last().is_some_and(|&(_, worst)| s <= worst) {
            continue;
        }
        if exclude.contains(&i) || s.is_nan() {
            continue;
        }
        let at = best.partition_point(|&(_, v)| v >= s);
        best.insert(at, (i, s));
        best.truncate(k);
    }
    best
}

/// Ranks 1..n, tied values sharing the mean of their ranks (as scipy's
/// `rankdata`, which `spearmanr` uses).
pub fn ranks(x: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..x.len()).collect();
    order.sort_by(|&a, &b| x[a].total_cmp(&x[b]));
    let mut r = vec![0.0; x.len()];
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && x[order[j + 1]] == x[order[i]] {
            j += 1;
        }
        let mean = (i + j) as f64 / 2.0 + 1.0;
        for &o in &order[i..=j] {
            r[o] = mean;
        }
        i = j + 1;
    }
    r
}

/// Pearson's r.
pub fn pearson(x: &[f64], y: &[f64]) -> f64 {
    let n = x.len() as f64;
    let (mx, my) = (x.iter().sum::<f64>() / n, y.iter().sum::<f64>() / n);
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for (a, b) in x.iter().zip(y) {
        sxy += (a - mx) * (b - my);
        sxx += (a - mx) * (a - mx);
        syy += (b - my) * (b - my);
    }
    sxy / (sxx * syy).sqrt()
}

/// Spearman's ρ: Pearson's r of the ranks (ties averaged).
pub fn spearman(x: &[f64], y: &[f64]) -> f64 {
    pearson(&ranks(x), &ranks(y))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spearman_with_ties_matches_a_hand_calculation() {
        // x ranks: 10 → 1, 20 and 20 → 2.5 each, 30 → 4, 40 → 5;
        // y has no ties: its ranks are its values.
        let x = [10.0, 20.0, 20.0, 30.0, 40.0];
        let y = [1.0, 3.0, 2.0, 5.0, 4.0];
        assert_eq!(ranks(&x), vec![1.0, 2.5, 2.5, 4.0, 5.0]);
        // Rank means are 3 for both; deviations rx = [-2, -.5, -.5, 1, 2],
        // ry = [-2, 0, -1, 2, 1]: Σ rx·ry = 4 + 0 + .5 + 2 + 2 = 8.5,
        // Σ rx² = 4 + .25 + .25 + 1 + 4 = 9.5, Σ ry² = 10;
        // ρ = 8.5 / √95 = 0.872082...
        let rho = spearman(&x, &y);
        assert!((rho - 8.5 / 95f64.sqrt()).abs() < 1e-12, "{rho}");
        // scipy.stats.spearmanr([10,20,20,30,40],[1,3,2,5,4]) = 0.8720815992723809
        assert!((rho - 0.872_081_599_272_380_9).abs() < 1e-12);
    }

    /// Hand-built vectors where king − man + woman lands nearest queen, and
    /// `KING`, a case variant of a question word, must not be the answer.
    fn toy() -> WordVectors {
        let words = ["man", "woman", "king", "queen", "apple", "KING"];
        let data = vec![
            1.0, 0.0, 0.0, // man
            0.0, 1.0, 0.0, // woman
            1.0, 0.0, 1.0, // king
            0.1, 1.0, 1.0, // queen
            -1.0, -1.0, 0.2, // apple
            1.0, 0.1, 1.0, // KING: a case variant, never a candidate answer
        ];
        WordVectors::new(words.iter().map(|w| w.to_string()).collect(), 3, data)
    }

    #[test]
    fn the_analogy_scorer_answers_a_hand_built_question() {
        let v = toy();
        let s = Scorer::new(&v, RESTRICT_VOCAB);
        let (man, king, woman) = (0, 2, 1);
        let top = s.analogy(man, king, woman, 3).unwrap();
        // q = king/√2 − man + woman = (1/√2 − 1, 1, 1/√2);
        // cos(q, queen) = (0.1(1/√2 − 1) + 1 + 1/√2) / (|q| √2.01) = 0.9398.
        assert_eq!(top[0].0, 3, "{top:?}");
        let h = 0.5f64.sqrt();
        let q_norm = ((h - 1.0).powi(2) + 1.0 + 0.5).sqrt();
        let expected = (0.1 * (h - 1.0) + 1.0 + h) / (q_norm * 2.01f64.sqrt());
        assert!(
            (top[0].1 as f64 - expected).abs() < 1e-6,
            "{top:?} vs {expected}"
        );
        assert!(top.iter().all(|&(r, _)| ![0, 1, 2].contains(&r)));

        let dir = std::env::temp_dir().join(format!("kindling-analogy-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let q = dir.join("q.txt");
        std::fs::write(
            &q,
            ": family\nman king woman queen\nMAN KING WOMAN QUEEN\nman king woman prince\n: fruit\nman apple woman apple\n",
        )
        .unwrap();
        let score = s.analogies(&q).unwrap();
        assert_eq!(score.sections.len(), 2);
        assert_eq!((score.sections[0].correct, score.sections[0].total), (2, 2));
        assert_eq!(score.sections[0].skipped, 1, "prince is unknown");
        // The fruit question's answer repeats `a`'s partner apple = b: never predicted.
        assert_eq!((score.sections[1].correct, score.sections[1].total), (0, 1));
        assert_eq!((score.correct, score.total, score.skipped), (2, 3, 1));
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn word_pairs_skip_unknown_words_and_comments() {
        let v = toy();
        let s = Scorer::new(&v, RESTRICT_VOCAB);
        let dir = std::env::temp_dir().join(format!("kindling-pairs-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("p.tsv");
        std::fs::write(
            &p,
            "# comment\nking\tqueen\t5\nman\tapple\t1\nking\tman\t8\nking\tprince\t9\n\n",
        )
        .unwrap();
        let score = s.word_pairs(&p).unwrap();
        assert_eq!((score.pairs, score.skipped), (3, 1));
        // cos(king, man) = 0.707 > cos(king, queen) = 1.1/√(2·2.01) = 0.549
        // > cos(man, apple) < 0: the same order as the human scores.
        assert!((score.spearman - 1.0).abs() < 1e-12, "{score:?}");
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn top_k_leaves_out_excluded_rows_and_sorts() {
        let sims = [0.1, 0.9, 0.5, 0.7, 0.95];
        assert_eq!(top_k(&sims, 2, &[4]), vec![(1, 0.9), (3, 0.7)]);
        assert_eq!(top_k(&sims, 10, &[]).len(), 5);
    }
}
