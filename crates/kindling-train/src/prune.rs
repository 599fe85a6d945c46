//! Pruning a language model's linear layers: the weights chosen by a rule
//! are set to zero and a mask remembers them, so a recovery fine-tune
//! (`compress_run`, through [`Task::after_update`](crate::trainer::Task::after_update))
//! keeps them zero.
//!
//! Two rules, each per weight matrix `W [out, in]`:
//! - **magnitude** (unstructured; Han et al. 2015): the `round(s·n)`
//!   entries of smallest `|w|` are zeroed, so every matrix has sparsity `s`
//!   (ties broken by position, so the count is exact);
//! - **2:4** (semi-structured, NVIDIA Ampere's sparse tensor cores): in
//!   every group of 4 consecutive input weights of a row the 2 of smallest
//!   `|w|` are zeroed, sparsity exactly 0.5.
//!
//! Only the linear layers inside the numbered transformer blocks are
//! pruned (LLaMA's `q/k/v/o_proj`, `gate/up/down_proj`; GPT-2's `c_attn`,
//! `c_proj`, `c_fc`): the embeddings, the output head and the norms are
//! kept, as in SparseGPT and Wanda.

use crate::{Error, Result};
use kindling_nn::Module;
use kindling_tensor::{no_grad, Tensor};
use serde::Serialize;

/// How weights are chosen for zeroing.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub enum PruneMethod {
    /// The fraction `sparsity` of smallest `|w|` of each matrix, in [0, 1).
    Magnitude { sparsity: f32 },
    /// 2 of every 4 consecutive input weights of a row.
    TwoFour,
}

impl PruneMethod {
    /// `method` is `magnitude` (with `sparsity` in [0, 1)) or `2:4`
    /// (sparsity 0.5 by construction: another `sparsity` is an error).
    pub fn parse(method: &str, sparsity: Option<f32>) -> Result<PruneMethod> {
        match method {
            "magnitude" => {
                let s = sparsity.ok_or_else(|| {
                    Error::option("sparsity", "is needed with `method` magnitude")
                })?;
                if !(0.0..1.0).contains(&s) {
                    return Err(Error::option(
                        "sparsity",
                        format!("must be in [0, 1), got {s}"),
                    ));
                }
                Ok(PruneMethod::Magnitude { sparsity: s })
            }
            "2:4" => match sparsity {
                Some(s) if s != 0.5 => Err(Error::option(
                    "sparsity",
                    format!("{s} with `method` 2:4, which prunes exactly 0.5; leave it out"),
                )),
                _ => Ok(PruneMethod::TwoFour),
            },
            other => Err(Error::option(
                "method",
                format!("`{other}`: unknown (known: magnitude, 2:4)"),
            )),
        }
    }

    /// `magnitude 0.5`, `2:4`.
    pub fn describe(&self) -> String {
        match self {
            PruneMethod::Magnitude { sparsity } => format!("magnitude {sparsity}"),
            PruneMethod::TwoFour => "2:4".into(),
        }
    }

    /// Which entries of `w` (`rows × cols`, row-major) are kept (`true`).
    pub fn keep(&self, w: &[f32], cols: usize) -> Result<Vec<bool>> {
        match *self {
            PruneMethod::Magnitude { sparsity } => Ok(magnitude_keep(w, sparsity)),
            PruneMethod::TwoFour => two_four_keep(w, cols),
        }
    }
}

/// Keeps all but the `round(sparsity · n)` entries of smallest `|w|`.
pub fn magnitude_keep(w: &[f32], sparsity: f32) -> Vec<bool> {
    let zeroed = (sparsity as f64 * w.len() as f64).round() as usize;
    let mut order: Vec<usize> = (0..w.len()).collect();
    // The k-th smallest splits the slice in O(n); the index breaks ties so
    // the count is exact even among equal magnitudes.
    let by_magnitude = |&a: &usize, &b: &usize| w[a].abs().total_cmp(&w[b].abs()).then(a.cmp(&b));
    let mut keep = vec![true; w.len()];
    if zeroed == 0 {
        return keep;
    }
    order.select_nth_unstable_by(zeroed - 1, by_magnitude);
    for &i in &order[..zeroed] {
        keep[i] = false;
    }
    keep
}

/// In each group of 4 consecutive weights of a row, keeps the 2 largest
/// `|w|` (the earlier one wins a tie). Rows must be a multiple of 4 long.
pub fn two_four_keep(w: &[f32], cols: usize) -> Result<Vec<bool>> {
    if !cols.is_multiple_of(4) || !w.len().is_multiple_of(cols.max(1)) {
        return Err(Error::option(
            "method",
            format!("2:4 needs rows whose length is a multiple of 4, got {cols}"),
        ));
    }
    let mut keep = vec![false; w.len()];
    for (g, group) in w.chunks(4).enumerate() {
        let mut idx = [0usize, 1, 2, 3];
        idx.sort_by(|&a, &b| group[b].abs().total_cmp(&group[a].abs()).then(a.cmp(&b)));
        keep[4 * g + idx[0]] = true;
        keep[4 * g + idx[1]] = true;
    }
    Ok(keep)
}

/// Whether a parameter is a linear weight inside a numbered transformer
/// block (`model.layers.3.mlp.up_proj.weight`, `transformer.h.0.attn.c_attn.weight`).
pub fn is_block_linear_weight(name: &str, rank: usize) -> bool {
    rank == 2
        && name.ends_with(".weight")
        && name.split('.').any(|seg| seg.parse::<usize>().is_ok())
}

/// One pruned matrix: the parameter, its mask (1 kept, 0 pruned) and the
/// zeros the mask holds.
pub struct PrunedMatrix {
    pub name: String,
    pub shape: Vec<usize>,
    pub zeros: usize,
    weight: Tensor,
    mask: Tensor,
}

impl PrunedMatrix {
    pub fn sparsity(&self) -> f64 {
        self.zeros as f64 / self.shape.iter().product::<usize>() as f64
    }
}

/// The masks of a pruned model.
pub struct Masks {
    pub method: PruneMethod,
    pub matrices: Vec<PrunedMatrix>,
}

/// Prunes `model`'s block linear weights in place by `method`; returns the
/// masks (what a recovery fine-tune re-applies after every update).
pub fn prune(model: &dyn Module, method: PruneMethod) -> Result<Masks> {
    let _g = no_grad();
    let mut matrices = Vec::new();
    for (name, w) in model.named_parameters() {
        if !is_block_linear_weight(&name, w.rank()) {
            continue;
        }
        let values = w.to_vec_f32()?;
        let keep = method
            .keep(&values, w.shape()[1])
            .map_err(|e| format!("{name}: {e}"))?;
        let mask: Vec<f32> = keep.iter().map(|&k| if k { 1.0 } else { 0.0 }).collect();
        let zeros = keep.iter().filter(|&&k| !k).count();
        let mask = Tensor::from_vec(mask, w.shape())?;
        w.assign(&w.mul(&mask)?)?;
        matrices.push(PrunedMatrix {
            name,
            shape: w.shape().to_vec(),
            zeros,
            weight: w,
            mask,
        });
    }
    if matrices.is_empty() {
        return Err("the model has no linear layers inside numbered blocks to prune".into());
    }
    Ok(Masks { method, matrices })
}

impl Masks {
    /// Zeroes the pruned weights again (after an optimizer step moved them).
    pub fn apply(&self) -> Result<()> {
        let _g = no_grad();
        for m in &self.matrices {
            m.weight.assign(&m.weight.mul(&m.mask)?)?;
        }
        Ok(())
    }

    /// Zeros over all pruned matrices' entries.
    pub fn sparsity(&self) -> f64 {
        let zeros: usize = self.matrices.iter().map(|m| m.zeros).sum();
        let total: usize = self
            .matrices
            .iter()
            .map(|m| m.shape.iter().product::<usize>())
            .sum();
        zeros as f64 / total.max(1) as f64
    }

    /// Entries of the pruned matrices.
    pub fn pruned_parameters(&self) -> usize {
        self.matrices
            .iter()
            .map(|m| m.shape.iter().product::<usize>())
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kindling_models::llama::{Llama, LlamaConfig};
    use kindling_tensor::Rng;

    fn tiny_llama() -> Llama {
        let config: LlamaConfig = serde_json::from_value(serde_json::json!({
            "vocab_size": 40, "hidden_size": 16, "intermediate_size": 24,
            "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
            "max_position_embeddings": 16, "rms_norm_eps": 1e-5
        }))
        .unwrap();
        Llama::new(config, &mut Rng::new(3)).unwrap()
    }

    #[test]
    fn magnitude_zeroes_exactly_the_fraction_asked_and_the_smallest() {
        let w = Tensor::randn(&[13, 7], 0.0, 1.0, &mut Rng::new(1))
            .to_vec_f32()
            .unwrap();
        for s in [0.0f32, 0.25, 0.5, 0.75, 0.99] {
            let keep = magnitude_keep(&w, s);
            let zeros = keep.iter().filter(|&&k| !k).count();
            assert_eq!(zeros, (s as f64 * 91.0).round() as usize, "sparsity {s}");
            let largest_zeroed = (0..w.len())
                .filter(|&i| !keep[i])
                .map(|i| w[i].abs())
                .fold(0f32, f32::max);
            let smallest_kept = (0..w.len())
                .filter(|&i| keep[i])
                .map(|i| w[i].abs())
                .fold(f32::INFINITY, f32::min);
            assert!(largest_zeroed <= smallest_kept, "sparsity {s}");
        }
        // Equal magnitudes: still exactly the count asked.
        let flat = vec![0.5f32; 10];
        assert_eq!(
            magnitude_keep(&flat, 0.3).iter().filter(|&&k| !k).count(),
            3
        );
    }

    #[test]
    fn two_four_keeps_the_two_largest_of_every_group_of_four() {
        let w = [0.1, -0.9, 0.3, 0.2, 5.0, 4.0, -6.0, 0.0];
        let keep = two_four_keep(&w, 8).unwrap();
        assert_eq!(keep, [false, true, true, false, true, false, true, false]);
        assert!(two_four_keep(&[1.0; 6], 6)
            .unwrap_err()
            .to_string()
            .starts_with("method "));
    }

    #[test]
    fn bad_settings_name_their_option() {
        let field = |r: Result<PruneMethod>| match r {
            Err(Error::Option { field, .. }) => field,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            field(PruneMethod::parse("magnitude", Some(1.0))),
            "sparsity"
        );
        assert_eq!(
            field(PruneMethod::parse("magnitude", Some(-0.1))),
            "sparsity"
        );
        assert_eq!(field(PruneMethod::parse("magnitude", None)), "sparsity");
        assert_eq!(field(PruneMethod::parse("2:4", Some(0.3))), "sparsity");
        assert_eq!(field(PruneMethod::parse("random", Some(0.3))), "method");
        assert_eq!(
            PruneMethod::parse("2:4", None).unwrap(),
            PruneMethod::TwoFour
        );
    }

    #[test]
    fn pruning_a_model_touches_only_block_linears_each_at_the_sparsity_asked() {
        let model = tiny_llama();
        let before = model.named_parameters();
        let before: Vec<(String, Vec<f32>)> = before
            .iter()
            .map(|(n, t)| (n.clone(), t.to_vec_f32().unwrap()))
            .collect();
        let masks = prune(&model, PruneMethod::Magnitude { sparsity: 0.75 }).unwrap();
        // 7 projections in each of 2 layers.
        assert_eq!(masks.matrices.len(), 14);
        for ((name, t), (_, old)) in model.named_parameters().iter().zip(&before) {
            let now = t.to_vec_f32().unwrap();
            match masks.matrices.iter().find(|m| &m.name == name) {
                Some(m) => {
                    let zeros = now.iter().filter(|&&x| x == 0.0).count();
                    assert_eq!(zeros, (0.75 * now.len() as f64).round() as usize, "{name}");
                    assert_eq!(m.zeros, zeros);
                    assert!(name.contains("layers."), "{name}");
                }
                None => assert_eq!(&now, old, "{name} must not change"),
            }
        }
        assert!((masks.sparsity() - 0.75).abs() < 1e-3);
    }

    #[test]
    fn masks_applied_again_zero_what_an_update_moved() {
        let model = tiny_llama();
        let masks = prune(&model, PruneMethod::TwoFour).unwrap();
        for (_, p) in model.named_parameters() {
            p.assign(&p.affine(1.0, 0.01).unwrap()).unwrap();
        }
        masks.apply().unwrap();
        for m in &masks.matrices {
            let w = m.weight.to_vec_f32().unwrap();
            for group in w.chunks(4) {
                assert_eq!(group.iter().filter(|&&x| x == 0.0).count(), 2, "{}", m.name);
            }
        }
    }
}
