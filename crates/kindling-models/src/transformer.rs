//! The Transformer's layers (Vaswani et al. 2017) in the pre-LayerNorm
//! arrangement (Xiong et al. 2020: `x + f(LN(x))`, which trains from
//! scratch without the warmup-sensitivity of the original post-LN): an
//! encoder layer (bidirectional self-attention over the unpadded keys, then
//! a 4× GELU feed-forward) and a decoder layer (causal self-attention,
//! cross-attention to the encoder's output, feed-forward). BERT stacks
//! encoder layers; the translation model stacks both. Every attention is
//! the one [`MultiHeadAttention`] of kindling-nn.

use kindling_nn::module::{join_name, visit_child};
use kindling_nn::{LayerNorm, Linear, Module, MultiHeadAttention};
use kindling_tensor::{cat, Result, Rng, Tensor};

/// N(0, `std`) weights and zero biases, GPT-2's initialization.
pub(crate) fn linear(inp: usize, out: usize, std: f32, rng: &mut Rng) -> Linear {
    Linear::from_tensors(
        kindling_nn::init::normal(&[out, inp], std, rng),
        Some(kindling_nn::init::zeros(&[out])),
    )
    .expect("shapes built here")
}

/// `fc` to 4× the width, exact GELU, `proj` back.
pub struct FeedForward {
    pub fc: Linear,
    pub proj: Linear,
}

impl FeedForward {
    pub fn new(dim: usize, std: f32, out_std: f32, rng: &mut Rng) -> FeedForward {
        FeedForward {
            fc: linear(dim, 4 * dim, std, rng),
            proj: linear(4 * dim, dim, out_std, rng),
        }
    }
}

impl Module for FeedForward {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.proj.forward(&self.fc.forward(x)?.gelu_erf()?)
    }
    fn visit_parameters(&self, prefix: &str, f: &mut dyn FnMut(String, &Tensor)) {
        self.fc.visit_parameters(&join_name(prefix, "fc"), f);
        self.proj.visit_parameters(&join_name(prefix, "proj"), f);
    }
    fn visit_modules_mut(&mut self, prefix: &str, f: &mut dyn FnMut(&str, &mut dyn Module)) {
        visit_child(&mut self.fc, &join_name(prefix, "fc"), f);
        visit_child(&mut self.proj, &join_name(prefix, "proj"), f);
    }
}

/// `x + SelfAttn(LN(x))`, then `x + FF(LN(x))`.
pub struct EncoderLayer {
    pub ln_1: LayerNorm,
    pub attn: MultiHeadAttention,
    pub ln_2: LayerNorm,
    pub mlp: FeedForward,
}

impl EncoderLayer {
    /// `std` for the weights; the projections into the residual stream get
    /// `std / √(2·layers)` (GPT-2, sec. 2.3).
    pub fn new(dim: usize, n_head: usize, layers: usize, rng: &mut Rng) -> Result<EncoderLayer> {
        let (std, out_std) = init_std(layers);
        Ok(EncoderLayer {
            ln_1: LayerNorm::new(dim),
            attn: MultiHeadAttention::new(dim, n_head, std, out_std, rng)?,
            ln_2: LayerNorm::new(dim),
            mlp: FeedForward::new(dim, std, out_std, rng),
        })
    }

    /// `x [B, T, C]` with an additive key mask; the output and the
    /// attention weights `[B, H, T, T]`.
    pub fn forward_masked(&self, x: &Tensor, mask: Option<&Tensor>) -> Result<(Tensor, Tensor)> {
        let h = self.ln_1.forward(x)?;
        let (a, probs) = self.attn.attend(&h, &h, mask)?;
        let x = x.add(&a)?;
        let x = x.add(&self.mlp.forward(&self.ln_2.forward(&x)?)?)?;
        Ok((x, probs))
    }
}

/// A Transformer config's sizes: each at least 1 (named in the error),
/// and the width divisible by the heads.
pub(crate) fn check_sizes(sizes: &[(&str, usize)], n_embd: usize, n_head: usize) -> Result<()> {
    if let Some((name, _)) = sizes.iter().find(|(_, v)| *v == 0) {
        return Err(kindling_tensor::Error::msg(format!(
            "`{name}` must be at least 1"
        )));
    }
    if n_head == 0 || !n_embd.is_multiple_of(n_head) {
        return Err(kindling_tensor::Error::msg(format!(
            "`n_embd` {n_embd} must be divisible by `n_head` {n_head}"
        )));
    }
    Ok(())
}

pub(crate) fn init_std(layers: usize) -> (f32, f32) {
    (0.02, 0.02 / (2.0 * layers.max(1) as f32).sqrt())
}

impl Module for EncoderLayer {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(self.forward_masked(x, None)?.0)
    }
    fn visit_parameters(&self, prefix: &str, f: &mut dyn FnMut(String, &Tensor)) {
        self.ln_1.visit_parameters(&join_name(prefix, "ln_1"), f);
        self.attn.visit_parameters(&join_name(prefix, "attn"), f);
        self.ln_2.visit_parameters(&join_name(prefix, "ln_2"), f);
        self.mlp.visit_parameters(&join_name(prefix, "mlp"), f);
    }
    fn visit_modules_mut(&mut self, prefix: &str, f: &mut dyn FnMut(&str, &mut dyn Module)) {
        visit_child(&mut self.ln_1, &join_name(prefix, "ln_1"), f);
        visit_child(&mut self.attn, &join_name(prefix, "attn"), f);
        visit_child(&mut self.ln_2, &join_name(prefix, "ln_2"), f);
        visit_child(&mut self.mlp, &join_name(prefix, "mlp"), f);
    }
}

/// `x + CausalSelfAttn(LN(x))`, `x + CrossAttn(LN(x), memory)`, `x + FF(LN(x))`.
pub struct DecoderLayer {
    pub ln_1: LayerNorm,
    pub self_attn: MultiHeadAttention,
    pub ln_2: LayerNorm,
    pub cross_attn: MultiHeadAttention,
    pub ln_3: LayerNorm,
    pub mlp: FeedForward,
}

impl DecoderLayer {
    pub fn new(dim: usize, n_head: usize, layers: usize, rng: &mut Rng) -> Result<DecoderLayer> {
        let (std, out_std) = init_std(layers);
        Ok(DecoderLayer {
            ln_1: LayerNorm::new(dim),
            self_attn: MultiHeadAttention::new(dim, n_head, std, out_std, rng)?,
            ln_2: LayerNorm::new(dim),
            cross_attn: MultiHeadAttention::new(dim, n_head, std, out_std, rng)?,
            ln_3: LayerNorm::new(dim),
            mlp: FeedForward::new(dim, std, out_std, rng),
        })
    }

    /// `x [B, T, C]` (target so far) against `memory [B, S, C]` (the
    /// encoder's output): `self_mask` is causal (plus target padding),
    /// `cross_mask` hides the source's padding. Returns the output and the
    /// cross-attention weights `[B, H, T, S]`.
    pub fn forward_masked(
        &self,
        x: &Tensor,
        memory: &Tensor,
        self_mask: Option<&Tensor>,
        cross_mask: Option<&Tensor>,
    ) -> Result<(Tensor, Tensor)> {
        let h = self.ln_1.forward(x)?;
        let x = x.add(&self.self_attn.attend(&h, &h, self_mask)?.0)?;
        let (a, probs) = self
            .cross_attn
            .attend(&self.ln_2.forward(&x)?, memory, cross_mask)?;
        let x = x.add(&a)?;
        let x = x.add(&self.mlp.forward(&self.ln_3.forward(&x)?)?)?;
        Ok((x, probs))
    }
}

impl DecoderLayer {
    /// One new position per row, `x [B, 1, C]`, during generation:
    /// its self-attention keys and values are appended to `cache` (`[B, H,
    /// t, D]`, the earlier positions'), `cross` holds the encoder output's
    /// keys and values ([`MultiHeadAttention::project_kv`], computed once).
    /// The same numbers as [`Self::forward_masked`] at that position.
    pub fn forward_step(
        &self,
        x: &Tensor,
        cache: &mut Option<(Tensor, Tensor)>,
        cross: &(Tensor, Tensor),
        cross_mask: Option<&Tensor>,
    ) -> Result<(Tensor, Tensor)> {
        if x.rank() != 3 || x.shape()[1] != 1 {
            return Err(kindling_tensor::Error::shape(
                "decoder step",
                format!("one position per row, [B, 1, C], got {:?}", x.shape()),
            ));
        }
        let h = self.ln_1.forward(x)?;
        let (k, v) = self.self_attn.project_kv(&h)?;
        let (k, v) = match cache.take() {
            Some((pk, pv)) => (cat(&[&pk, &k], 2)?, cat(&[&pv, &v], 2)?),
            None => (k, v),
        };
        // The newest position may see every cached one: no mask.
        let a = self.self_attn.attend_kv(&h, &k, &v, None)?.0;
        *cache = Some((k.detach(), v.detach()));
        let x = x.add(&a)?;
        let (a, probs) =
            self.cross_attn
                .attend_kv(&self.ln_2.forward(&x)?, &cross.0, &cross.1, cross_mask)?;
        let x = x.add(&a)?;
        let x = x.add(&self.mlp.forward(&self.ln_3.forward(&x)?)?)?;
        Ok((x, probs))
    }
}

impl Module for DecoderLayer {
    /// Without a memory there is nothing to attend to: use `forward_masked`.
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(self.forward_masked(x, x, None, None)?.0)
    }
    fn visit_parameters(&self, prefix: &str, f: &mut dyn FnMut(String, &Tensor)) {
        self.ln_1.visit_parameters(&join_name(prefix, "ln_1"), f);
        self.self_attn
            .visit_parameters(&join_name(prefix, "self_attn"), f);
        self.ln_2.visit_parameters(&join_name(prefix, "ln_2"), f);
        self.cross_attn
            .visit_parameters(&join_name(prefix, "cross_attn"), f);
        self.ln_3.visit_parameters(&join_name(prefix, "ln_3"), f);
        self.mlp.visit_parameters(&join_name(prefix, "mlp"), f);
    }
    fn visit_modules_mut(&mut self, prefix: &str, f: &mut dyn FnMut(&str, &mut dyn Module)) {
        visit_child(&mut self.ln_1, &join_name(prefix, "ln_1"), f);
        visit_child(&mut self.self_attn, &join_name(prefix, "self_attn"), f);
        visit_child(&mut self.ln_2, &join_name(prefix, "ln_2"), f);
        visit_child(&mut self.cross_attn, &join_name(prefix, "cross_attn"), f);
        visit_child(&mut self.ln_3, &join_name(prefix, "ln_3"), f);
        visit_child(&mut self.mlp, &join_name(prefix, "mlp"), f);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kindling_nn::attention::{causal_mask, key_padding_mask};
    use kindling_nn::module::leaf_parameter_names;

    #[test]
    fn decoder_layer_is_causal_and_ignores_padded_source_positions() {
        let mut rng = Rng::new(5);
        let layer = DecoderLayer::new(8, 2, 1, &mut rng).unwrap();
        let memory = Tensor::randn(&[1, 4, 8], 0.0, 1.0, &mut rng);
        let x = Tensor::randn(&[1, 3, 8], 0.0, 1.0, &mut rng);
        let pad = key_padding_mask(&[vec![true, true, true, false]]).unwrap();
        let causal = causal_mask(3).unwrap();
        let run = |x: &Tensor, memory: &Tensor| {
            layer
                .forward_masked(x, memory, Some(&causal), Some(&pad))
                .unwrap()
        };
        let (y, probs) = run(&x, &memory);
        assert_eq!(probs.shape(), [1, 2, 3, 4]);
        for row in probs.to_vec_f32().unwrap().chunks(4) {
            assert_eq!(row[3], 0.0, "a padded source position got weight");
        }
        // Changing the last target position leaves the first two alone.
        let mut v = x.to_vec_f32().unwrap();
        v[16..].iter_mut().for_each(|a| *a += 1.0);
        let (y2, _) = run(&Tensor::from_vec(v, &[1, 3, 8]).unwrap(), &memory);
        let (a, b) = (y.to_vec_f32().unwrap(), y2.to_vec_f32().unwrap());
        assert!(a[..16]
            .iter()
            .zip(&b[..16])
            .all(|(p, q)| (p - q).abs() < 1e-6));
        assert!(a[16..]
            .iter()
            .zip(&b[16..])
            .any(|(p, q)| (p - q).abs() > 1e-4));
        // Changing the padded source position changes nothing.
        let mut m = memory.to_vec_f32().unwrap();
        m[24..].iter_mut().for_each(|a| *a += 5.0);
        let (y3, _) = run(&x, &Tensor::from_vec(m, &[1, 4, 8]).unwrap());
        let c = y3.to_vec_f32().unwrap();
        assert!(a.iter().zip(&c).all(|(p, q)| (p - q).abs() < 1e-6));
    }

    #[test]
    fn layers_name_their_parameters_the_same_in_both_walks() {
        let mut rng = Rng::new(0);
        let mut enc = EncoderLayer::new(8, 2, 2, &mut rng).unwrap();
        let names: Vec<String> = enc.named_parameters().into_iter().map(|(n, _)| n).collect();
        assert_eq!(leaf_parameter_names(&mut enc), names);
        let mut dec = DecoderLayer::new(8, 2, 2, &mut rng).unwrap();
        let names: Vec<String> = dec.named_parameters().into_iter().map(|(n, _)| n).collect();
        assert_eq!(leaf_parameter_names(&mut dec), names);
        assert!(names.contains(&"cross_attn.k_proj.weight".to_string()));
    }
}
