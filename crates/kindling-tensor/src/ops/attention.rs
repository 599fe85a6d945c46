//! Fused causal self-attention: softmax(q k^T / sqrt(d) + causal mask) v.

use crate::backend::AttentionGeometry;
use crate::{cat, Error, Result, Tensor};

impl Tensor {
    /// Multi-head causal self-attention on the output of a fused QKV
    /// projection: `self` is `[B, T, 3C]` (all heads' queries, then keys,
    /// then values, head h in columns h·D.. of each third, as nanoGPT's
    /// `c_attn` lays them out). Returns `y [B, T, C]` with the heads side by
    /// side, and the probabilities `[B, H, T, T]`. Query i sees keys 0..=i.
    pub fn causal_self_attention(&self, n_head: usize) -> Result<(Tensor, Tensor)> {
        let s = self.shape().to_vec();
        if s.len() != 3 || n_head == 0 || s[1] == 0 || s[2] == 0 || !s[2].is_multiple_of(3 * n_head)
        {
            return Err(Error::shape(
                "causal_self_attention",
                format!("qkv {s:?} must be [B, T, 3C], T and C at least 1, C divisible by {n_head} heads"),
            ));
        }
        let c = s[2] / 3;
        let g = AttentionGeometry {
            batch: s[0],
            heads: n_head,
            t: s[1],
            d: c / n_head,
        };
        // Kept for backward: the (contiguous) input and the probabilities.
        let qkv = self.detach().contiguous()?;
        let (y, probs) = self.backend().attention(&qkv, &g)?;
        let probs = Tensor::from_kernel(probs, &[g.batch, g.heads, g.t, g.t])?;
        let kept = probs.clone();
        let y = Tensor::from_op(
            y,
            &[g.batch, g.t, c],
            "causal_self_attention",
            &[self],
            move |dy| {
                let dy = dy.contiguous()?;
                let dqkv = dy.backend().attention_backward(&dy, &qkv, &kept, &g)?;
                Ok(vec![Some(Tensor::from_kernel(dqkv, qkv.shape())?)])
            },
        );
        Ok((y, probs))
    }

    /// `self` is q `[B, H, T, D]`; k and v have the same shape. Query i sees
    /// keys 0..=i only.
    pub fn causal_attention(&self, k: &Tensor, v: &Tensor) -> Result<Tensor> {
        Ok(self.causal_attention_with_probs(k, v)?.0)
    }

    /// `causal_attention` plus the probabilities `[B, H, T, T]`. The heads
    /// are packed into the `[B, T, 3C]` layout of `causal_self_attention`
    /// (one copy) and unpacked from its output as views.
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
        let (b, h, t, d) = (s[0], s[1], s[2], s[3]);
        let merge = |x: &Tensor| x.transpose(1, 2)?.reshape(&[b, t, h * d]);
        let qkv = cat(&[&merge(self)?, &merge(k)?, &merge(v)?], -1)?;
        let (y, probs) = qkv.causal_self_attention(h)?;
        Ok((y.reshape(&[b, t, h, d])?.transpose(1, 2)?, probs))
    }
}
