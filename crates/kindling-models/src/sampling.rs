//! Choosing the next token from logits: temperature, top-k, top-p (nucleus,
//! Holtzman et al. 2020), or argmax at temperature 0.

use kindling_tensor::{Error, Result, Rng};

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sampling {
    pub temperature: f32,
    pub top_k: Option<usize>,
    pub top_p: Option<f32>,
}

impl Sampling {
    /// Options are named by field (`` `top_k` ``); the CLI says them as flags.
    pub fn validate(&self) -> Result<()> {
        if !(self.temperature.is_finite() && self.temperature >= 0.0) {
            return Err(Error::msg(format!(
                "`temperature` must be >= 0, got {}",
                self.temperature
            )));
        }
        if self.top_k == Some(0) {
            return Err(Error::msg("`top_k` must be at least 1"));
        }
        if let Some(p) = self.top_p {
            if !(p > 0.0 && p <= 1.0) {
                return Err(Error::msg(format!("`top_p` must be in (0, 1], got {p}")));
            }
        }
        Ok(())
    }

    pub fn sample(&self, logits: &[f32], rng: &mut Rng) -> usize {
        let argmax = || {
            logits
                .iter()
                .enumerate()
                .max_by(|a, b| a.1.total_cmp(b.1))
                .map(|(i, _)| i)
                .unwrap_or(0)
        };
        if self.temperature == 0.0 {
            return argmax();
        }
        // Candidates sorted by logit, most likely first.
        let mut order: Vec<usize> = (0..logits.len()).collect();
        order.sort_unstable_by(|&a, &b| logits[b].total_cmp(&logits[a]));
        if let Some(k) = self.top_k {
            order.truncate(k.max(1));
        }
        let max = logits[order[0]];
        let mut probs: Vec<f32> = order
            .iter()
            .map(|&i| ((logits[i] - max) / self.temperature).exp())
            .collect();
        let total: f32 = probs.iter().sum();
        probs.iter_mut().for_each(|p| *p /= total);
        if let Some(top_p) = self.top_p {
            let mut acc = 0.0;
            let keep = probs.iter().position(|&p| {
                acc += p;
                acc >= top_p
            });
            let keep = keep.map_or(probs.len(), |i| i + 1);
            order.truncate(keep);
            probs.truncate(keep);
            let t: f32 = probs.iter().sum();
            probs.iter_mut().for_each(|p| *p /= t);
        }
        let u = rng.uniform();
        let mut acc = 0.0;
        for (&i, &p) in order.iter().zip(&probs) {
            acc += p;
            if u < acc {
                return i;
            }
        }
        *order.last().expect("at least one candidate")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temperature_zero_is_argmax_and_top_k_one_too() {
        let logits = [0.1, 2.0, -1.0, 1.9];
        let mut rng = Rng::new(0);
        assert_eq!(
            Sampling {
                temperature: 0.0,
                top_k: None,
                top_p: None
            }
            .sample(&logits, &mut rng),
            1
        );
        for _ in 0..20 {
            assert_eq!(
                Sampling {
                    temperature: 1.0,
                    top_k: Some(1),
                    top_p: None
                }
                .sample(&logits, &mut rng),
                1
            );
        }
    }

    #[test]
    fn sampling_follows_the_softmax_and_top_p_cuts_the_tail() {
        let logits = [0.0f32, (3.0f32).ln()]; // probabilities 1/4, 3/4
        let mut rng = Rng::new(1);
        let s = Sampling {
            temperature: 1.0,
            top_k: None,
            top_p: None,
        };
        let ones = (0..20_000)
            .filter(|_| s.sample(&logits, &mut rng) == 1)
            .count();
        assert!((ones as f32 / 20_000.0 - 0.75).abs() < 0.02, "{ones}");
        let nucleus = Sampling {
            temperature: 1.0,
            top_k: None,
            top_p: Some(0.7),
        };
        assert!((0..200).all(|_| nucleus.sample(&logits, &mut rng) == 1));
        assert!(Sampling {
            temperature: -1.0,
            top_k: None,
            top_p: None
        }
        .validate()
        .is_err());
    }
}
