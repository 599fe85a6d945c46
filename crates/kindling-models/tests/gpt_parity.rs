//! GPT against PyTorch (fixture from tools/gen_fixtures.py, the same module
//! code as bench/pytorch/chargpt.py): logits, loss, every parameter's
//! gradient, one clipped AdamW step with no decay on biases, norms and
//! embeddings; plus the fused attention and layer norm alone.

use kindling_models::gpt::{Gpt, GptConfig};
use kindling_nn::clip::clip_grad_norm;
use kindling_nn::optim::{Adam, AdamConfig, Optimizer, ParamGroup};
use kindling_nn::Module;
use kindling_tensor::{safetensors_io, Rng, Tensor};
use std::collections::HashMap;
use std::path::Path;

fn fixture() -> HashMap<String, Tensor> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/gpt.safetensors");
    safetensors_io::load(&path).expect("fixture present").0
}

fn assert_close(what: &str, got: &Tensor, want: &Tensor, tol: f32) {
    assert_eq!(got.shape(), want.shape(), "{what}");
    let (g, w) = (got.to_vec_f32().unwrap(), want.to_vec_f32().unwrap());
    for (i, (a, b)) in g.iter().zip(&w).enumerate() {
        assert!(
            (a - b).abs() <= tol * (1.0 + b.abs()),
            "{what}[{i}]: kindling {a} vs pytorch {b}"
        );
    }
}

fn model_from(f: &HashMap<String, Tensor>) -> Gpt {
    let config = GptConfig {
        n_layer: 2,
        n_head: 2,
        n_embd: 16,
        block_size: 8,
        vocab_size: 11,
        dropout: 0.0,
        tie_weights: true,
        bias: true,
        activation: Default::default(),
    };
    let m = Gpt::new(config, &mut Rng::new(0)).unwrap();
    for (name, p) in m.named_parameters() {
        p.assign(
            f.get(&name)
                .unwrap_or_else(|| panic!("fixture lacks {name}")),
        )
        .unwrap();
    }
    m
}

#[test]
fn gpt_loss_gradients_and_adamw_step_match_pytorch() {
    let f = fixture();
    let m = model_from(&f);
    let logits = m.forward_ids(&f["idx"], None).unwrap();
    assert_close("logits", &logits, &f["logits"], 1e-4);
    let loss = logits.cross_entropy(&f["targets"], Some(-1)).unwrap();
    assert_close("loss", &loss, &f["loss"], 1e-5);
    loss.backward().unwrap();
    for (name, p) in m.named_parameters() {
        assert_close(
            &format!("grad.{name}"),
            &p.grad().unwrap(),
            &f[&format!("grad.{name}")],
            1e-4,
        );
    }
    let decay_names = m.decay_parameter_names();
    let (mut decay, mut rest) = (vec![], vec![]);
    for (name, p) in m.named_parameters() {
        if decay_names.contains(&name) {
            decay.push((name, p))
        } else {
            rest.push((name, p))
        }
    }
    clip_grad_norm(&m.parameters(), 1.0).unwrap();
    let config = AdamConfig {
        beta2: 0.99,
        ..AdamConfig::adamw(1e-2, 0.1)
    };
    let mut opt = Adam::with_groups(
        vec![
            ParamGroup {
                params: decay,
                weight_decay: 0.1,
            },
            ParamGroup {
                params: rest,
                weight_decay: 0.0,
            },
        ],
        config,
    );
    opt.step().unwrap();
    for (name, p) in m.named_parameters() {
        assert_close(
            &format!("adamw.{name}"),
            &p,
            &f[&format!("adamw.{name}")],
            1e-5,
        );
    }
}

#[test]
fn fused_attention_and_layer_norm_match_pytorch() {
    let f = fixture();
    let (q, k, v) = (
        f["attn.q"].copy().unwrap().requires_grad_(true),
        f["attn.k"].copy().unwrap().requires_grad_(true),
        f["attn.v"].copy().unwrap().requires_grad_(true),
    );
    let out = q.causal_attention(&k, &v).unwrap();
    assert_close("attn.out", &out, &f["attn.out"], 1e-5);
    out.mul(&f["attn.gout"])
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    assert_close("attn.grad_q", &q.grad().unwrap(), &f["attn.grad_q"], 1e-5);
    assert_close("attn.grad_k", &k.grad().unwrap(), &f["attn.grad_k"], 1e-5);
    assert_close("attn.grad_v", &v.grad().unwrap(), &f["attn.grad_v"], 1e-5);

    let (x, w, b) = (
        f["ln.x"].copy().unwrap().requires_grad_(true),
        f["ln.w"].copy().unwrap().requires_grad_(true),
        f["ln.b"].copy().unwrap().requires_grad_(true),
    );
    let y = x.layer_norm(&w, &b, 1e-5).unwrap();
    assert_close("ln.out", &y, &f["ln.out"], 1e-5);
    y.mul(&f["ln.gout"])
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    assert_close("ln.grad_x", &x.grad().unwrap(), &f["ln.grad_x"], 1e-4);
    assert_close("ln.grad_w", &w.grad().unwrap(), &f["ln.grad_w"], 1e-5);
    assert_close("ln.grad_b", &b.grad().unwrap(), &f["ln.grad_b"], 1e-5);
}
