//! LoRA (Hu et al. 2021): a frozen linear layer `W` plus a trainable
//! low-rank update, `y = x Wᵀ + s · (x Aᵀ) Bᵀ` with `A [r, in]`, `B [out, r]`
//! and `s = alpha / r` (or `alpha / √r`, rsLoRA). `B` starts at zero, so a
//! fresh adapter changes nothing; training moves only `A` and `B` —
//! `r · (in + out)` numbers per layer instead of `in · out`.
//!
//! An adapter lives inside its [`Linear`](crate::Linear) (`Linear::lora`), installed by
//! name with [`Module::map_linears`], so models need no LoRA-aware code.
//! Parameter names follow PEFT's: `…q_proj.lora_A.weight`.

use crate::module::Module;
use kindling_tensor::{Error, Result, Rng, Tensor};

/// A low-rank update to one linear layer.
pub struct Lora {
    /// `[r, in]`.
    pub a: Tensor,
    /// `[out, r]`.
    pub b: Tensor,
    pub scale: f32,
}

impl Lora {
    /// PEFT's default start: `A` Kaiming-uniform (bound 1/√in), `B` zero.
    pub fn new(
        in_features: usize,
        out_features: usize,
        rank: usize,
        scale: f32,
        rng: &mut Rng,
    ) -> Lora {
        Lora {
            a: crate::init::lecun_uniform(&[rank, in_features], in_features, rng),
            b: Tensor::zeros(&[out_features, rank]).requires_grad_(true),
            scale,
        }
    }

    pub fn rank(&self) -> usize {
        self.a.shape()[0]
    }

    /// `s · (x Aᵀ) Bᵀ`: two thin GEMMs, never the `[out, in]` product.
    pub fn delta(&self, x: &Tensor) -> Result<Tensor> {
        x.linear(&self.a, None)?
            .linear(&self.b, None)?
            .affine(self.scale, 0.0)
    }

    /// `s · B A`, the update as a full matrix (for merging).
    pub fn product(&self) -> Result<Tensor> {
        self.b
            .detach()
            .matmul(&self.a.detach())?
            .affine(self.scale, 0.0)
    }
}

/// Which layers get adapters and how they are scaled.
#[derive(Clone, Debug, PartialEq)]
pub struct LoraConfig {
    pub rank: usize,
    pub alpha: f32,
    /// Last components of layer names (`q_proj`, `down_proj`).
    pub targets: Vec<String>,
    /// rsLoRA's `alpha / √r` instead of `alpha / r`.
    pub rslora: bool,
}

impl LoraConfig {
    pub fn scale(&self) -> f32 {
        if self.rslora {
            self.alpha / (self.rank as f32).sqrt()
        } else {
            self.alpha / self.rank as f32
        }
    }
}

/// The layer-name ending a short target name stands for (`q` is `q_proj`);
/// other names are taken as they are.
pub fn target_layer_name(short: &str) -> String {
    match short {
        "q" | "k" | "v" | "o" => format!("{short}_proj"),
        "gate" | "up" | "down" => format!("{short}_proj"),
        other => other.to_string(),
    }
}

fn last_component(name: &str) -> &str {
    name.rsplit('.').next().unwrap_or(name)
}

/// Freezes every parameter of `model` and installs a fresh adapter on each
/// linear layer whose name ends in one of the targets; returns the adapted
/// layers' names. A target that matches no layer is an error naming the
/// layers there are.
pub fn install(model: &mut dyn Module, config: &LoraConfig, rng: &mut Rng) -> Result<Vec<String>> {
    if config.rank == 0 {
        return Err(Error::msg("LoRA rank must be at least 1"));
    }
    if !(config.alpha.is_finite() && config.alpha > 0.0) {
        return Err(Error::msg(format!(
            "LoRA alpha must be positive, got {}",
            config.alpha
        )));
    }
    let targets: Vec<String> = config
        .targets
        .iter()
        .map(|t| target_layer_name(t))
        .collect();
    let mut kinds = Vec::new();
    model.map_linears(&mut |name, _| {
        let k = last_component(name).to_string();
        if !kinds.contains(&k) {
            kinds.push(k);
        }
    });
    for (short, t) in config.targets.iter().zip(&targets) {
        if !kinds.contains(t) {
            return Err(Error::msg(format!(
                "LoRA target `{short}` matches no linear layer of the model (it has: {})",
                kinds.join(", ")
            )));
        }
    }
    model.set_trainable(&|_| true, false);
    let mut adapted = Vec::new();
    let scale = config.scale();
    model.map_linears(&mut |name, l| {
        if targets.iter().any(|t| t == last_component(name)) {
            l.lora = Some(Lora::new(
                l.in_features(),
                l.out_features(),
                config.rank,
                scale,
                rng,
            ));
            adapted.push(name.to_string());
        }
    });
    Ok(adapted)
}

/// Folds every adapter into its layer's weight (`W += s · B A`) and removes
/// it; returns how many were merged. The merged model computes what the
/// adapted one did, with no extra cost per token.
pub fn merge(model: &mut dyn Module) -> Result<usize> {
    let mut merged = 0;
    let mut failure = None;
    model.map_linears(&mut |name, l| {
        let Some(lora) = l.lora.take() else { return };
        // Only a dense weight can take the update; a quantized one would
        // have to be dequantized and requantized, which merging does not do.
        let r = match l.dense_weight() {
            Some(w) => lora
                .product()
                .and_then(|d| w.detach().add(&d))
                .and_then(|sum| w.assign(&sum)),
            None => Err(Error::msg("its weight is not a dense f32 tensor")),
        };
        match r {
            Ok(()) => merged += 1,
            Err(e) => {
                failure.get_or_insert_with(|| {
                    Error::msg(format!("merging the adapter of `{name}`: {e}"))
                });
            }
        }
    });
    match failure {
        Some(e) => Err(e),
        None => Ok(merged),
    }
}

/// Every adapter's tensors with their parameter names
/// (`….q_proj.lora_A.weight`), in the model's order.
pub fn adapter_parameters(model: &dyn Module) -> Vec<(String, Tensor)> {
    let mut out = model.named_parameters();
    out.retain(|(n, _)| n.contains(".lora_A.") || n.contains(".lora_B."));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Activation, ActivationKind, Linear, Sequential};

    fn model(rng: &mut Rng) -> Sequential {
        Sequential::new()
            .push(Linear::new(6, 5, true, rng))
            .push(Activation(ActivationKind::Relu))
            .push(Linear::new(5, 3, false, rng))
    }

    #[test]
    fn a_fresh_adapter_changes_nothing_and_trains_alone() {
        let mut rng = Rng::new(0);
        let mut m = model(&mut rng);
        let x = Tensor::randn(&[4, 6], 0.0, 1.0, &mut rng);
        let before = m.forward(&x).unwrap().to_vec_f32().unwrap();
        let cfg = LoraConfig {
            rank: 2,
            alpha: 4.0,
            targets: vec!["0".into(), "2".into()],
            rslora: false,
        };
        assert_eq!(install(&mut m, &cfg, &mut rng).unwrap(), ["0", "2"]);
        assert_eq!(m.forward(&x).unwrap().to_vec_f32().unwrap(), before);
        let names: Vec<String> = m
            .named_trainable_parameters()
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        assert_eq!(
            names,
            [
                "0.lora_A.weight",
                "0.lora_B.weight",
                "2.lora_A.weight",
                "2.lora_B.weight"
            ]
        );
        m.forward(&x)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        let all = m.named_parameters();
        for (n, t) in &all {
            assert_eq!(
                t.grad().is_some(),
                n.contains("lora"),
                "{n}: only adapters get a gradient"
            );
        }
        let e = install(
            &mut m,
            &LoraConfig {
                targets: vec!["q".into()],
                ..cfg
            },
            &mut rng,
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("LoRA target `q` matches no linear layer") && e.contains("0, 2"),
            "{e}"
        );
    }

    #[test]
    fn the_update_is_scaled_and_merging_keeps_the_output() {
        let mut rng = Rng::new(1);
        let mut m = model(&mut rng);
        let cfg = LoraConfig {
            rank: 3,
            alpha: 6.0,
            targets: vec!["0".into()],
            rslora: false,
        };
        install(&mut m, &cfg, &mut rng).unwrap();
        // A non-zero B, as after training.
        m.map_linears(&mut |_, l| {
            if let Some(lora) = &l.lora {
                lora.b
                    .assign(&Tensor::randn(lora.b.shape(), 0.0, 1.0, &mut Rng::new(7)))
                    .unwrap();
            }
        });
        let x = Tensor::randn(&[4, 6], 0.0, 1.0, &mut rng);
        let adapted = m.forward(&x).unwrap().to_vec_f32().unwrap();
        // By hand for the first layer: x Wᵀ + b + 2 · (x Aᵀ) Bᵀ.
        let mut first = None;
        m.map_linears(&mut |name, l| {
            if name == "0" {
                let lora = l.lora.as_ref().unwrap();
                let base = x
                    .linear(l.dense_weight().unwrap(), l.bias.as_ref())
                    .unwrap();
                let upd = x
                    .matmul(&lora.a.t().unwrap())
                    .unwrap()
                    .matmul(&lora.b.t().unwrap())
                    .unwrap();
                first = Some(base.add(&upd.affine(2.0, 0.0).unwrap()).unwrap());
                assert_eq!(lora.scale, 2.0);
            }
        });
        let by_hand = first.unwrap().relu().unwrap();
        let mut second = None;
        m.map_linears(&mut |name, l| {
            if name == "2" {
                second = Some(by_hand.linear(l.dense_weight().unwrap(), None).unwrap());
            }
        });
        let want = second.unwrap().to_vec_f32().unwrap();
        for (a, b) in adapted.iter().zip(&want) {
            assert!((a - b).abs() < 1e-5, "{a} vs {b}");
        }
        assert_eq!(merge(&mut m).unwrap(), 1);
        assert!(adapter_parameters(&m).is_empty());
        let merged = m.forward(&x).unwrap().to_vec_f32().unwrap();
        for (a, b) in adapted.iter().zip(&merged) {
            assert!((a - b).abs() < 1e-5, "{a} vs {b}");
        }
        let rs = LoraConfig {
            rslora: true,
            rank: 4,
            alpha: 8.0,
            ..cfg
        };
        assert_eq!(rs.scale(), 4.0);
        assert_eq!(target_layer_name("gate"), "gate_proj");
    }
}
