//! The key/value cache of a decoder: per layer, the keys and values of every
//! position fed so far (`[B, T, H_kv, D]`), so that each new token runs only
//! its own position through the network.
//!
//! Each layer's keys and values live in buffers with room for more
//! positions than are held; a step writes its new positions into them in
//! place and reads all of them back as views, so a decoding step copies one
//! position, not the whole cache (growing by concatenation copied the cache
//! every step: quadratic in the length). A full buffer is replaced by one of
//! twice the capacity, so the copies average out to a constant per position.
//!
//! Keys are kept by position (`[B, capacity, H_kv, D]`), values transposed
//! (`[B, H_kv, D, capacity]`, each element's values over positions in a
//! row), as llama.cpp keeps its cache without flash attention: the weighted
//! sum of values then reads contiguous memory. Both are handed out as
//! `[B, T, H_kv, D]` views (the values' permuted), which
//! `Tensor::attend_kv` reads in place.

use kindling_tensor::{cat, is_grad_enabled, Error, Result, Tensor};

/// The smallest buffer, in positions (a chat's first turn fits).
const MIN_CAPACITY: usize = 64;

#[derive(Default)]
pub struct KvCache {
    /// Per layer: the key buffer `[B, capacity, H_kv, D]` and the value
    /// buffer `[B, H_kv, D, capacity]`; positions `0..len` hold data.
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

    /// Writes layer `l`'s keys and values of `T` new positions
    /// (`[B, T, H_kv, D]`) after the `len()` held, and returns the keys and
    /// values of all `len() + T` positions (views of the buffers). Every
    /// layer appends the same `T` before [`KvCache::advance`].
    ///
    /// When a gradient is being recorded through `k` or `v`, the returned
    /// tensors are their concatenation with the cached positions instead,
    /// so the gradient reaches them (the buffer is outside the graph).
    pub fn append(&mut self, l: usize, k: &Tensor, v: &Tensor) -> Result<(Tensor, Tensor)> {
        let n_layers = self.layers.len();
        let s = k.shape().to_vec();
        if s.len() != 4 || v.shape() != s.as_slice() || l >= n_layers {
            return Err(Error::shape(
                "kv cache",
                format!(
                    "layer {l} of {n_layers}: keys {s:?} and values {:?} must both be [B, T, H_kv, D]",
                    v.shape()
                ),
            ));
        }
        let (past, t) = (self.len, s[1]);
        let slot = &mut self.layers[l];
        if let Some((kb, _)) = slot.as_ref() {
            let b = kb.shape();
            if (b[0], b[2], b[3]) != (s[0], s[2], s[3]) {
                return Err(Error::shape(
                    "kv cache",
                    format!("layer {l} holds {b:?}, new keys are {s:?}"),
                ));
            }
        }
        let capacity = slot.as_ref().map_or(0, |(kb, _)| kb.shape()[1]);
        if past + t > capacity {
            let grown = (past + t)
                .next_power_of_two()
                .max(2 * capacity)
                .max(MIN_CAPACITY);
            // Positions run along dimension `pos` of a buffer of `shape`.
            let buffer = |old: Option<&Tensor>, shape: [usize; 4], pos: isize| -> Result<Tensor> {
                let new = Tensor::zeros(&shape);
                if let (Some(old), true) = (old, past > 0) {
                    new.narrow(pos, 0, past)?
                        .assign_(&old.narrow(pos, 0, past)?)?;
                }
                Ok(new)
            };
            let (old_k, old_v) = match slot.as_ref() {
                Some((kb, vb)) => (Some(kb), Some(vb)),
                None => (None, None),
            };
            let kb = buffer(old_k, [s[0], grown, s[2], s[3]], 1)?;
            let vb = buffer(old_v, [s[0], s[2], s[3], grown], 3)?;
            *slot = Some((kb, vb));
        }
        let (kb, vb) = slot
            .as_ref()
            .expect("the buffers exist: created above when missing");
        // Positions from..from+n of the values, as a [B, n, H_kv, D] view.
        let values = |from: usize, n: usize| vb.narrow(3, from, n)?.permute(&[0, 3, 1, 2]);
        kb.narrow(1, past, t)?.assign_(k)?;
        values(past, t)?.assign_(v)?;
        if is_grad_enabled() && (k.requires_grad() || v.requires_grad()) {
            if past == 0 {
                return Ok((k.clone(), v.clone()));
            }
            return Ok((
                cat(&[&kb.narrow(1, 0, past)?, k], 1)?,
                cat(&[&values(0, past)?, v], 1)?,
            ));
        }
        Ok((kb.narrow(1, 0, past + t)?, values(0, past + t)?))
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

    /// Bytes held by the keys and values of the positions held (the
    /// buffers' spare room not counted).
    pub fn size_bytes(&self) -> usize {
        self.layers
            .iter()
            .flatten()
            .map(|(k, _)| {
                let s = k.shape();
                2 * s[0] * self.len * s[2] * s[3] * 4
            })
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kindling_tensor::{no_grad, Rng};

    fn random(shape: &[usize], rng: &mut Rng) -> Tensor {
        let n = shape.iter().product();
        Tensor::from_vec((0..n).map(|_| rng.normal()).collect(), shape).unwrap()
    }

    #[test]
    fn appending_in_place_holds_what_concatenation_would() {
        let _g = no_grad();
        let mut rng = Rng::new(5);
        let mut cache = KvCache::new(2);
        let (mut all_k, mut all_v): (Option<Tensor>, Option<Tensor>) = (None, None);
        // A prompt, then single steps past the first buffer's capacity.
        for t in [3]
            .into_iter()
            .chain(std::iter::repeat_n(1, MIN_CAPACITY + 5))
        {
            let (k, v) = (
                random(&[2, t, 3, 4], &mut rng),
                random(&[2, t, 3, 4], &mut rng),
            );
            all_k = Some(match all_k {
                Some(a) => cat(&[&a, &k], 1).unwrap(),
                None => k.clone(),
            });
            all_v = Some(match all_v {
                Some(a) => cat(&[&a, &v], 1).unwrap(),
                None => v.clone(),
            });
            for l in 0..2 {
                let (ck, cv) = cache.append(l, &k, &v).unwrap();
                assert_eq!(
                    ck.to_vec_f32().unwrap(),
                    all_k.as_ref().unwrap().to_vec_f32().unwrap()
                );
                assert_eq!(
                    cv.to_vec_f32().unwrap(),
                    all_v.as_ref().unwrap().to_vec_f32().unwrap()
                );
            }
            cache.advance(t);
        }
        assert_eq!(cache.len(), MIN_CAPACITY + 8);
        assert_eq!(
            cache.size_bytes(),
            2 * 2 * 2 * (MIN_CAPACITY + 8) * 3 * 4 * 4
        );
        let e = cache
            .append(
                0,
                &random(&[1, 1, 3, 4], &mut rng),
                &random(&[1, 1, 3, 4], &mut rng),
            )
            .unwrap_err()
            .to_string();
        assert!(e.contains("holds"), "{e}");
    }

    #[test]
    fn a_gradient_reaches_the_new_keys_through_the_cache() {
        let mut rng = Rng::new(6);
        let mut cache = KvCache::new(1);
        {
            let _g = no_grad();
            let k = random(&[1, 2, 1, 2], &mut rng);
            cache.append(0, &k, &k).unwrap();
            cache.advance(2);
        }
        let k = random(&[1, 1, 1, 2], &mut rng).requires_grad_(true);
        let (ck, _) = cache.append(0, &k, &k.detach()).unwrap();
        assert_eq!(ck.shape(), &[1, 3, 1, 2]);
        ck.sum_all().unwrap().backward().unwrap();
        assert_eq!(k.grad().unwrap().to_vec_f32().unwrap(), vec![1.0, 1.0]);
    }
}
