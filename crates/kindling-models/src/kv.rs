//! The key/value cache of a decoder: per layer, the keys and values of every
//! position fed so far (`[B, T, H_kv, D]`), so that each new token runs only
//! its own position through the network.

use kindling_tensor::Tensor;

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
