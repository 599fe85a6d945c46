//! Cross-entropy from log-probabilities `logp [rows, c]`: the pick of the
//! forward and the `softmax - onehot` of the backward.

use super::elementwise::map1;
use super::simd::exp;
use crate::{Error, Result};

/// `(Σ -logp[row, target], rows counted)` over rows whose target is not
/// `ignore_index`.
pub fn nll_sum(
    logp: &[f32],
    c: usize,
    targets: &[i64],
    ignore_index: Option<i64>,
) -> Result<(f64, usize)> {
    let mut total = 0f64;
    let mut n_valid = 0usize;
    for (row, &target) in targets.iter().enumerate() {
        if Some(target) == ignore_index {
            continue;
        }
        if target < 0 || target as usize >= c {
            return Err(Error::Index {
                op: "cross_entropy",
                index: target,
                size: c,
            });
        }
        total -= logp[row * c + target as usize] as f64;
        n_valid += 1;
    }
    Ok((total, n_valid))
}

/// d loss / d logits = (softmax - onehot) * scale on counted rows, 0 on ignored ones.
pub fn backward(
    logp: &[f32],
    c: usize,
    targets: &[i64],
    ignore_index: Option<i64>,
    scale: f32,
) -> Vec<f32> {
    let mut d = map1(logp, move |lp: f32| exp(lp) * scale);
    for (row, &target) in targets.iter().enumerate() {
        let r = &mut d[row * c..(row + 1) * c];
        if Some(target) == ignore_index {
            r.fill(0.0);
        } else {
            r[target as usize] -= scale;
        }
    }
    d
}
