//! The key/value cache of a decoder: per layer, the keys and values of every
//! position fed so far (`[B, T, H_kv, D]`), so that each new token runs only
//! its own position through the network.

use kindling_tensor::{Result, Tensor};

/// New queries `q [B, T, H, D]` at positions `past..past+T` against keys and
/// values `[B, past+T, H, D]` (cached ones first): softmax(q kᵀ/√d) v, query
/// i seeing keys 0..=past+i. Returns `[B, T, H·D]`, the heads side by side.
pub fn attend_to_cache(q: &Tensor, k: &Tensor, v: &Tensor, past: usize) -> Result<Tensor> {
    let (b, t, h, d) = (q.shape()[0], q.shape()[1], q.shape()[2], q.shape()[3]);
    let tk = k.shape()[1];
    let q = q.permute(&[0, 2, 1, 3])?; // [B, H, T, D]
    let k = k.permute(&[0, 2, 3, 1])?; // [B, H, D, Tk]
    let v = v.permute(&[0, 2, 1, 3])?; // [B, H, Tk, D]
    let mut scores = q.matmul(&k)?.mul_scalar(1.0 / (d as f32).sqrt())?;
    if t > 1 {
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

#[derive(Default)]
pub struct KvCache {
    layers: Vec<Option<(Tensor, Tensor)>>,
    len: usize,
}

impl KvCache {
    pub fn new(n_layers: usize) -> KvCache {
        KvCache {
            layers: (0..n_layers).map(|_| None).collect(),
            len: 0,
        }
    }

    /// Positions held.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Layer `l`'s keys and values (the model appends to them).
    pub fn layer(&mut self, l: usize) -> &mut Option<(Tensor, Tensor)> {
        &mut self.layers[l]
    }

    /// Called by the model once every layer has appended `t` positions.
    pub fn advance(&mut self, t: usize) {
        self.len += t;
    }

    /// Keeps rows `rows` of every layer's keys and values, in that order
    /// (a row may repeat): beam search's reordering of its hypotheses.
    pub fn select_rows(&mut self, rows: &[usize]) -> Result<()> {
        let index = Tensor::from_vec_i64(rows.iter().map(|&r| r as i64).collect(), &[rows.len()])?;
        for (k, v) in self.layers.iter_mut().flatten() {
            *k = k.index_select(0, &index)?;
            *v = v.index_select(0, &index)?;
        }
        Ok(())
    }

    /// Forgets everything (a new conversation).
    pub fn clear(&mut self) {
        self.layers.iter_mut().for_each(|l| *l = None);
        self.len = 0;
    }

    /// Bytes held by keys and values.
    pub fn size_bytes(&self) -> usize {
        self.layers
            .iter()
            .flatten()
            .map(|(k, v)| (k.numel() + v.numel()) * 4)
            .sum()
    }
}
