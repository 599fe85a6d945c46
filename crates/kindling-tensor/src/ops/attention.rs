//! Fused causal self-attention: softmax(q k^T / sqrt(d) + causal mask) v.

use crate::backend::{AttentionGeometry, CachedAttentionGeometry};
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

    /// New queries `self [B, T, H, D]` at positions `past..past+T` against
    /// keys and values `[B, past+T, H_kv, D]` (cached ones first; H a
    /// multiple of H_kv, query head h reading key/value head h / (H / H_kv)
    /// as Hugging Face's `repeat_kv` pairs them): softmax(q kᵀ/√D) v, query
    /// i seeing keys 0..=past+i. Returns `[B, T, H·D]`, the heads side by
    /// side.
    ///
    /// `k` and `v` may be views of a KV cache's buffers (any batch and
    /// position strides, contiguous `[H_kv, D]` rows; or, for `v`,
    /// contiguous positions: a permuted `[B, H_kv, D, capacity]` buffer,
    /// as `KvCache` and llama.cpp keep values). The kernel reads them in
    /// place. When a gradient is to be recorded it runs as composite ops
    /// (heads repeated, a product, a mask, a softmax) whose backward the
    /// autograd derives, so the fused kernel needs none.
    pub fn attend_kv(&self, k: &Tensor, v: &Tensor, past: usize) -> Result<Tensor> {
        let (s, ks) = (self.shape(), k.shape());
        let ok = s.len() == 4
            && ks.len() == 4
            && v.shape() == ks
            && ks[0] == s[0]
            && ks[1] == past + s[1]
            && ks[3] == s[3]
            && ks[2] > 0
            && s[2].is_multiple_of(ks[2])
            && s[1] > 0;
        if !ok {
            return Err(Error::shape(
                "attend_kv",
                format!(
                    "q {s:?}, k {ks:?}, v {:?} must be [B, T, H, D] and [B, {past} + T, H_kv, D] with H a multiple of H_kv",
                    v.shape()
                ),
            ));
        }
        let g = CachedAttentionGeometry {
            batch: s[0],
            t: s[1],
            heads: s[2],
            kv_heads: ks[2],
            d: s[3],
            past,
        };
        let records = crate::is_grad_enabled() && [self, k, v].iter().any(|t| t.requires_grad());
        let (kst, vst) = (k.layout().strides(), v.layout().strides());
        // Keys by contiguous [H_kv, D] rows; values so too, or with their
        // positions contiguous (llama.cpp's transposed value cache).
        let in_place = kst[3] == 1
            && kst[2] == g.d
            && ((vst[3] == 1 && vst[2] == g.d) || (vst[1] == 1 && vst[3] > 0));
        if records || !in_place {
            return attend_kv_composite(self, k, v, &g);
        }
        let q = self.contiguous()?;
        let y = self.backend().attention_cached(&q, k, v, &g)?;
        Tensor::from_kernel(y, &[g.batch, g.t, g.heads * g.d])
    }
}

/// `attend_kv` from differentiable ops.
fn attend_kv_composite(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    g: &CachedAttentionGeometry,
) -> Result<Tensor> {
    let (b, t, h, d) = (g.batch, g.t, g.heads, g.d);
    let tk = g.past + t;
    let repeat = |x: &Tensor| -> Result<Tensor> {
        let rep = h / g.kv_heads;
        if rep == 1 {
            return Ok(x.clone());
        }
        x.unsqueeze(3)?
            .expand(&[b, tk, g.kv_heads, rep, d])?
            .reshape(&[b, tk, h, d])
    };
    let q = q.permute(&[0, 2, 1, 3])?; // [B, H, T, D]
    let k = repeat(k)?.permute(&[0, 2, 3, 1])?; // [B, H, D, Tk]
    let v = repeat(v)?.permute(&[0, 2, 1, 3])?; // [B, H, Tk, D]
    let mut scores = q.matmul(&k)?.mul_scalar(1.0 / (d as f32).sqrt())?;
    if t > 1 {
        let past = g.past;
        let mask: Vec<f32> = (0..t)
            .flat_map(|i| (0..tk).map(move |j| if j > past + i { 1.0 } else { 0.0 }))
            .collect();
        scores = scores.masked_fill(&Tensor::from_vec(mask, &[t, tk])?, f32::NEG_INFINITY)?;
    }
    scores
        .softmax(-1)?
        .matmul(&v)?
        .permute(&[0, 2, 1, 3])?
        .reshape(&[b, t, h * d])
}
