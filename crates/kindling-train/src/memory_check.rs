//! Will a training run fit in memory? A rough estimate of a transformer's
//! training footprint, checked against what the machine has available
//! before anything is allocated, so a typo such as `--block-size 100000`
//! is a one-line error instead of "memory allocation of 1920000000000
//! bytes failed".

use crate::Result;

/// A transformer's shape as far as its training memory goes.
pub struct TransformerShape {
    pub n_layer: usize,
    pub n_head: usize,
    pub n_embd: usize,
    /// The MLP's hidden width.
    pub intermediate: usize,
    pub vocab_size: usize,
    pub block_size: usize,
    /// Rows of one micro-batch (accumulation does not add activations).
    pub batch_size: usize,
}

impl TransformerShape {
    /// The settings by option name, for an error message.
    pub fn settings(&self) -> String {
        format!(
            "`block_size` {} with `batch_size` {}, `n_layer` {}, `n_head` {}, `n_embd` {}",
            self.block_size, self.batch_size, self.n_layer, self.n_head, self.n_embd
        )
    }

    /// Refuses a run that cannot fit in this machine's available memory.
    pub fn check_memory(&self) -> Result<()> {
        check_fits(self.training_bytes(), available_bytes(), &self.settings())
    }

    /// Bytes of f32 a training step keeps alive, roughly: per layer the
    /// saved activations of the residual stream and the MLP (about 12 C
    /// and 3 hidden values per token, forward and backward) and the
    /// attention matrices (scores, softmax, their gradient: 3 H T per
    /// token); the logits and their gradient; and the parameters with their
    /// gradients and Adam's two moments (4 copies). Overflow saturates.
    pub fn training_bytes(&self) -> u64 {
        let m = |a: usize, b: usize| (a as u64).saturating_mul(b as u64);
        let tokens = m(self.batch_size, self.block_size);
        let per_token_layer = m(12, self.n_embd)
            .saturating_add(m(3, self.intermediate))
            .saturating_add(m(3, self.n_head).saturating_mul(self.block_size as u64));
        let activations = tokens
            .saturating_mul(per_token_layer)
            .saturating_mul(self.n_layer as u64)
            .saturating_add(tokens.saturating_mul(m(3, self.vocab_size)));
        let params = m(self.n_embd, self.n_embd)
            .saturating_mul(12)
            .saturating_mul(self.n_layer as u64)
            .saturating_add(m(self.vocab_size, self.n_embd).saturating_mul(2))
            .saturating_add(m(self.block_size, self.n_embd));
        activations
            .saturating_add(params.saturating_mul(4))
            .saturating_mul(4)
    }
}

/// `MemAvailable` from `/proc/meminfo`, in bytes (`None` where there is no
/// such file: the check is skipped there).
pub fn available_bytes() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Bytes in the units a person reads (`1.9 TB`).
pub fn human_bytes(bytes: u64) -> String {
    let units = ["bytes", "KB", "MB", "GB", "TB", "PB", "EB"];
    let (mut v, mut i) = (bytes as f64, 0);
    while v >= 1000.0 && i + 1 < units.len() {
        v /= 1000.0;
        i += 1;
    }
    if i == 0 {
        format!("{bytes} bytes")
    } else {
        format!("{v:.1} {}", units[i])
    }
}

/// Refuses a run whose estimate exceeds `available` (when known), naming
/// the settings (by option name) and both figures.
pub fn check_fits(need: u64, available: Option<u64>, settings: &str) -> Result<()> {
    match available {
        Some(have) if need > have => Err(format!(
            "{settings} needs about {} of memory to train, more than the {} available; lower `block_size` or `batch_size`",
            human_bytes(need),
            human_bytes(have)
        )
        .into()),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(block_size: usize) -> TransformerShape {
        TransformerShape {
            n_layer: 4,
            n_head: 4,
            n_embd: 128,
            intermediate: 512,
            vocab_size: 65,
            block_size,
            batch_size: 12,
        }
    }

    #[test]
    fn the_estimate_grows_with_the_square_of_the_context_and_refuses_what_does_not_fit() {
        let small = shape(64).training_bytes();
        assert!(small > 1_000_000 && small < 200_000_000, "{small}");
        // The attention matrices alone: 12 x 4 heads x 100000^2 x 4 bytes per layer.
        let huge = shape(100_000).training_bytes();
        assert!(huge > 12 * 4 * 100_000u64 * 100_000 * 4, "{huge}");
        let e = check_fits(huge, Some(8_000_000_000), "`block_size` 100000")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("`block_size` 100000") && e.contains("8.0 GB available"),
            "{e}"
        );
        assert!(check_fits(small, Some(8_000_000_000), "x").is_ok());
        assert!(
            check_fits(huge, None, "x").is_ok(),
            "no /proc/meminfo: no check"
        );
        assert_eq!(shape(usize::MAX).training_bytes(), u64::MAX, "saturates");
    }
}
