//! Fused causal self-attention: softmax(q k^T / sqrt(d) + causal mask) v.

use crate::cpu::attention::{self, AttentionGeometry};
use crate::{CpuStorage, Error, Result, Tensor};

impl Tensor {
    /// `self` is q `[B, H, T, D]`; k and v have the same shape. Query i sees
    /// keys 0..=i only.
    pub fn causal_attention(&self, k: &Tensor, v: &Tensor) -> Result<Tensor> {
        Ok(self.causal_attention_with_probs(k, v)?.0)
    }

    /// Also returns the attention probabilities `[B, H, T, T]` (no graph),
    /// for attention maps.
    pub fn causal_attention_with_probs(&self, k: &Tensor, v: &Tensor) -> Result<(Tensor, Tensor)> {
        let s = self.shape().to_vec();
        if s.len() != 4 || k.shape() != s.as_slice() || v.shape() != s.as_slice() {
            return Err(Error::shape(
                "causal_attention",
                format!(
                    "q {:?}, k {:?}, v {:?} must all be [B, H, T, D]",
                    s,
                    k.shape(),
                    v.shape()
                ),
            ));
        }
        let g = AttentionGeometry {
            heads_total: s[0] * s[1],
            t: s[2],
            d: s[3],
        };
        let (qv, kv, vv) = (self.to_vec_f32()?, k.to_vec_f32()?, v.to_vec_f32()?);
        let (out, probs) = attention::forward(&qv, &kv, &vv, &g);
        let probs_t = Tensor::from_vec(probs.clone(), &[s[0], s[1], s[2], s[2]])?;
        let shape = s.clone();
        let out = Tensor::from_op(
            CpuStorage::F32(out),
            &s,
            "causal_attention",
            &[self, k, v],
            move |gout| {
                let (dq, dk, dv) =
                    gout.with_f32(|d| attention::backward(d, &qv, &kv, &vv, &probs, &g))?;
                Ok(vec![
                    Some(Tensor::from_vec(dq, &shape)?),
                    Some(Tensor::from_vec(dk, &shape)?),
                    Some(Tensor::from_vec(dv, &shape)?),
                ])
            },
        );
        Ok((out, probs_t))
    }
}
