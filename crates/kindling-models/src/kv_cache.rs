//! Incremental decoding with a key/value cache: each new token runs only its
//! own position through the network, attending to the keys and values of the
//! positions before it, which are kept per layer.

use crate::gpt::Gpt;
use kindling_nn::Module;
use kindling_tensor::{no_grad, Error, Result, Tensor};

pub struct KvCache {
    /// Per layer: keys and values as `[H][len][D]` flattened per head.
    keys: Vec<Vec<Vec<f32>>>,
    values: Vec<Vec<Vec<f32>>>,
    len: usize,
}

impl KvCache {
    pub fn new(model: &Gpt) -> Self {
        let h = model.config.n_head;
        KvCache {
            keys: vec![vec![Vec::new(); h]; model.config.n_layer],
            values: vec![vec![Vec::new(); h]; model.config.n_layer],
            len: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl Gpt {
    /// Feeds one token at the next position; returns the logits `[V]` for
    /// the token after it.
    pub fn decode_step(&self, token: i64, cache: &mut KvCache) -> Result<Vec<f32>> {
        let _g = no_grad();
        let pos = cache.len;
        if pos >= self.config.block_size {
            return Err(Error::msg(format!(
                "KV cache is full ({} positions = block size)",
                self.config.block_size
            )));
        }
        if token < 0 || token as usize >= self.config.vocab_size {
            return Err(Error::Index {
                op: "decode_step",
                index: token,
                size: self.config.vocab_size,
            });
        }
        let c = self.config.n_embd;
        let (nh, d) = (self.config.n_head, c / self.config.n_head);
        let scale = 1.0 / (d as f32).sqrt();
        let tok = Tensor::from_vec_i64(vec![token], &[1])?;
        let p = Tensor::from_vec_i64(vec![pos as i64], &[1])?;
        let mut x = self
            .wte
            .forward_ids(&tok)?
            .add(&self.wpe.forward_ids(&p)?)?; // [1, C]
        for (layer, block) in self.h.iter().enumerate() {
            let qkv = block
                .attn
                .c_attn
                .forward(&block.ln_1.forward(&x)?)?
                .to_vec_f32()?;
            let mut y = vec![0f32; c];
            for hh in 0..nh {
                let q = &qkv[hh * d..(hh + 1) * d];
                let (ks, vs) = (&mut cache.keys[layer][hh], &mut cache.values[layer][hh]);
                ks.extend_from_slice(&qkv[c + hh * d..c + (hh + 1) * d]);
                vs.extend_from_slice(&qkv[2 * c + hh * d..2 * c + (hh + 1) * d]);
                let scores: Vec<f32> = ks
                    .chunks(d)
                    .map(|k| q.iter().zip(k).map(|(a, b)| a * b).sum::<f32>() * scale)
                    .collect();
                let max = scores.iter().fold(f32::NEG_INFINITY, |m, &s| m.max(s));
                let exps: Vec<f32> = scores.iter().map(|s| (s - max).exp()).collect();
                let inv = 1.0 / exps.iter().sum::<f32>();
                let out = &mut y[hh * d..(hh + 1) * d];
                for (e, v) in exps.iter().zip(vs.chunks(d)) {
                    for (o, &vv) in out.iter_mut().zip(v) {
                        *o += e * inv * vv;
                    }
                }
            }
            let a = block.attn.c_proj.forward(&Tensor::from_vec(y, &[1, c])?)?;
            x = x.add(&a)?;
            let m = block.mlp.forward(&block.ln_2.forward(&x)?)?;
            x = x.add(&m)?;
        }
        cache.len += 1;
        let x = self.ln_f.forward(&x)?;
        let logits = match &self.lm_head {
            Some(l) => l.forward(&x)?,
            None => x.matmul(&self.wte.weight.t()?)?,
        };
        logits.to_vec_f32()
    }
}
