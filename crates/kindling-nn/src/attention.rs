//! Multi-head attention with separate query and key/value inputs and an
//! optional mask: self-attention in an encoder (bidirectional, padded keys
//! masked out), causal self-attention in a decoder, and cross-attention
//! (queries from the decoder, keys and values from the encoder), all one
//! module (Vaswani et al. 2017, sec. 3.2).
//!
//! It is composed from `matmul`, `softmax` and `add`, so autograd gives the
//! backward; GPT's fused `causal_self_attention` stays the fast path for
//! decoder-only models. A mask is additive, PyTorch's float `attn_mask`:
//! 0 where a query may look, [`MASKED`] where it may not, broadcast to
//! `[B, H, T, S]`. `exp(MASKED + score)` is exactly 0 in f32, so a masked
//! key gets weight 0 as with −∞, and a row whose keys are all masked stays
//! finite (uniform) instead of NaN.

use crate::module::{join_name, visit_child, Module};
use crate::Linear;
use kindling_tensor::{Error, Result, Rng, Tensor};

/// The additive mask value for a position a query may not attend to.
pub const MASKED: f32 = -1e9;

/// `softmax(q kᵀ / √d + mask) v` for `q [B, H, T, D]`, `k, v [B, H, S, D]`
/// and a mask broadcastable to `[B, H, T, S]`. Returns the output
/// `[B, H, T, D]` and the attention weights `[B, H, T, S]`.
pub fn scaled_dot_product_attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    mask: Option<&Tensor>,
) -> Result<(Tensor, Tensor)> {
    if q.rank() != 4 || k.rank() != 4 || v.rank() != 4 {
        return Err(Error::shape(
            "attention",
            format!(
                "q, k, v must be [B, H, T, D], got {:?}, {:?}, {:?}",
                q.shape(),
                k.shape(),
                v.shape()
            ),
        ));
    }
    let d = q.shape()[3];
    let scores = q
        .matmul(&k.transpose(-2, -1)?)?
        .mul_scalar(1.0 / (d as f32).sqrt())?;
    let scores = match mask {
        Some(m) => scores.add(m)?,
        None => scores,
    };
    let probs = scores.softmax(-1)?;
    Ok((probs.matmul(v)?, probs))
}

/// An additive key-padding mask `[B, 1, 1, S]` from each row's key
/// validity (`true`: a real token), for every query and head.
pub fn key_padding_mask(valid: &[Vec<bool>]) -> Result<Tensor> {
    let s = valid.first().map_or(0, Vec::len);
    if valid.iter().any(|r| r.len() != s) {
        return Err(Error::shape(
            "key_padding_mask",
            "every row must have the same number of keys",
        ));
    }
    let data = valid
        .iter()
        .flatten()
        .map(|&ok| if ok { 0.0 } else { MASKED })
        .collect();
    Tensor::from_vec(data, &[valid.len(), 1, 1, s])
}

/// An additive causal mask `[T, T]`: query `i` sees keys `0..=i`.
pub fn causal_mask(t: usize) -> Result<Tensor> {
    let data = (0..t * t)
        .map(|k| if k % t <= k / t { 0.0 } else { MASKED })
        .collect();
    Tensor::from_vec(data, &[t, t])
}

/// Projections of multi-head attention: `q_proj`, `k_proj`, `v_proj`
/// (`[C, C]` each, PyTorch's `in_proj_weight` cut in three) and
/// `out_proj`.
pub struct MultiHeadAttention {
    pub q_proj: Linear,
    pub k_proj: Linear,
    pub v_proj: Linear,
    pub out_proj: Linear,
    pub n_head: usize,
}

impl MultiHeadAttention {
    /// `dim` wide, `n_head` heads; weights N(0, `std`), the output
    /// projection N(0, `out_std`), biases zero.
    pub fn new(dim: usize, n_head: usize, std: f32, out_std: f32, rng: &mut Rng) -> Result<Self> {
        if n_head == 0 || dim == 0 || !dim.is_multiple_of(n_head) {
            return Err(Error::msg(format!(
                "attention width {dim} must be a positive multiple of the {n_head} heads"
            )));
        }
        let mut linear = |std: f32| {
            Linear::from_tensors(
                crate::init::normal(&[dim, dim], std, rng),
                Some(crate::init::zeros(&[dim])),
            )
        };
        Ok(MultiHeadAttention {
            q_proj: linear(std)?,
            k_proj: linear(std)?,
            v_proj: linear(std)?,
            out_proj: linear(out_std)?,
            n_head,
        })
    }

    /// Queries from `x [B, T, C]`, keys and values from `context [B, S, C]`
    /// (`x` itself for self-attention), `mask` additive and broadcastable
    /// to `[B, H, T, S]`. Returns `[B, T, C]` and the weights `[B, H, T, S]`.
    pub fn attend(
        &self,
        x: &Tensor,
        context: &Tensor,
        mask: Option<&Tensor>,
    ) -> Result<(Tensor, Tensor)> {
        if x.rank() != 3 || context.rank() != 3 || x.shape()[0] != context.shape()[0] {
            return Err(Error::shape(
                "attention",
                format!(
                    "queries [B, T, C] and context [B, S, C] needed, got {:?} and {:?}",
                    x.shape(),
                    context.shape()
                ),
            ));
        }
        let (k, v) = self.project_kv(context)?;
        self.attend_kv(x, &k, &v, mask)
    }

    /// The keys and values of `context [B, S, C]`, split into heads
    /// `[B, H, S, D]`: what a decoder computes once from the encoder's
    /// output, or appends to its cache one position at a time.
    pub fn project_kv(&self, context: &Tensor) -> Result<(Tensor, Tensor)> {
        if context.rank() != 3 {
            return Err(Error::shape(
                "attention",
                format!("context must be [B, S, C], got {:?}", context.shape()),
            ));
        }
        let (b, s, c) = (context.shape()[0], context.shape()[1], context.shape()[2]);
        let (h, d) = (self.n_head, c / self.n_head);
        let heads = |y: Tensor| y.reshape(&[b, s, h, d])?.transpose(1, 2);
        Ok((
            heads(self.k_proj.forward(context)?)?,
            heads(self.v_proj.forward(context)?)?,
        ))
    }

    /// Queries from `x [B, T, C]` against keys and values already in heads
    /// (`[B, H, S, D]`, from [`Self::project_kv`]). Returns `[B, T, C]` and
    /// the weights `[B, H, T, S]`.
    pub fn attend_kv(
        &self,
        x: &Tensor,
        k: &Tensor,
        v: &Tensor,
        mask: Option<&Tensor>,
    ) -> Result<(Tensor, Tensor)> {
        if x.rank() != 3 || k.rank() != 4 || k.shape()[0] != x.shape()[0] {
            return Err(Error::shape(
                "attention",
                format!(
                    "queries [B, T, C] and keys [B, H, S, D] needed, got {:?} and {:?}",
                    x.shape(),
                    k.shape()
                ),
            ));
        }
        let (b, t, c) = (x.shape()[0], x.shape()[1], x.shape()[2]);
        let (h, d) = (self.n_head, c / self.n_head);
        let q = self
            .q_proj
            .forward(x)?
            .reshape(&[b, t, h, d])?
            .transpose(1, 2)?;
        let (y, probs) = scaled_dot_product_attention(&q, k, v, mask)?;
        let y = y.transpose(1, 2)?.reshape(&[b, t, c])?;
        Ok((self.out_proj.forward(&y)?, probs))
    }
}

impl Module for MultiHeadAttention {
    /// Self-attention without a mask.
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(self.attend(x, x, None)?.0)
    }

    fn visit_parameters(&self, prefix: &str, f: &mut dyn FnMut(String, &Tensor)) {
        self.q_proj
            .visit_parameters(&join_name(prefix, "q_proj"), f);
        self.k_proj
            .visit_parameters(&join_name(prefix, "k_proj"), f);
        self.v_proj
            .visit_parameters(&join_name(prefix, "v_proj"), f);
        self.out_proj
            .visit_parameters(&join_name(prefix, "out_proj"), f);
    }

    fn visit_modules_mut(&mut self, prefix: &str, f: &mut dyn FnMut(&str, &mut dyn Module)) {
        visit_child(&mut self.q_proj, &join_name(prefix, "q_proj"), f);
        visit_child(&mut self.k_proj, &join_name(prefix, "k_proj"), f);
        visit_child(&mut self.v_proj, &join_name(prefix, "v_proj"), f);
        visit_child(&mut self.out_proj, &join_name(prefix, "out_proj"), f);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::module::leaf_parameter_names;
    use kindling_tensor::gradcheck::gradcheck;

    #[test]
    fn attention_matches_finite_differences_with_a_mask() {
        let mut rng = Rng::new(3);
        let q = Tensor::randn(&[2, 2, 3, 4], 0.0, 1.0, &mut rng);
        let k = Tensor::randn(&[2, 2, 5, 4], 0.0, 1.0, &mut rng);
        let v = Tensor::randn(&[2, 2, 5, 4], 0.0, 1.0, &mut rng);
        let mask = key_padding_mask(&[
            vec![true, true, true, false, false],
            vec![true, true, true, true, true],
        ])
        .unwrap();
        gradcheck(&[q, k, v], |xs| {
            Ok(scaled_dot_product_attention(&xs[0], &xs[1], &xs[2], Some(&mask))?.0)
        })
        .unwrap();
    }

    #[test]
    fn masked_keys_get_no_weight_and_causal_rows_see_only_the_past() {
        let mut rng = Rng::new(4);
        let x = Tensor::randn(&[1, 1, 4, 2], 0.0, 1.0, &mut rng);
        let pad = key_padding_mask(&[vec![true, true, false, true]]).unwrap();
        let (_, p) = scaled_dot_product_attention(&x, &x, &x, Some(&pad)).unwrap();
        let p = p.to_vec_f32().unwrap();
        for row in p.chunks(4) {
            assert_eq!(row[2], 0.0);
            assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        }
        let (_, p) =
            scaled_dot_product_attention(&x, &x, &x, Some(&causal_mask(4).unwrap())).unwrap();
        let p = p.to_vec_f32().unwrap();
        for i in 0..4 {
            for j in i + 1..4 {
                assert_eq!(p[i * 4 + j], 0.0, "query {i} sees key {j}");
            }
        }
    }

    #[test]
    fn module_walks_name_the_same_parameters() {
        let mut m = MultiHeadAttention::new(8, 2, 0.02, 0.02, &mut Rng::new(0)).unwrap();
        let names: Vec<String> = m.named_parameters().into_iter().map(|(n, _)| n).collect();
        assert_eq!(leaf_parameter_names(&mut m), names);
        assert_eq!(names[0], "q_proj.weight");
        assert!(MultiHeadAttention::new(6, 4, 0.02, 0.02, &mut Rng::new(0)).is_err());
    }
}
