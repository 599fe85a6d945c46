//! `MultiHeadAttention` against `torch.nn.MultiheadAttention` (fixture from
//! tools/gen_attention_fixture.py): encoder self-attention with padded keys,
//! cross-attention, and causal self-attention; outputs, per-head weights and
//! the gradients of every input and weight.

use kindling_nn::attention::{causal_mask, key_padding_mask, MultiHeadAttention};
use kindling_nn::{Linear, Module};
use kindling_tensor::{safetensors_io, Tensor};
use std::collections::HashMap;
use std::path::Path;

fn fixture() -> HashMap<String, Tensor> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/mha.safetensors");
    safetensors_io::load(&path).unwrap().0
}

fn assert_close(what: &str, got: &Tensor, want: &Tensor) {
    assert_eq!(got.shape(), want.shape(), "{what}");
    let (g, w) = (got.to_vec_f32().unwrap(), want.to_vec_f32().unwrap());
    for (i, (a, b)) in g.iter().zip(&w).enumerate() {
        assert!(
            (a - b).abs() <= 1e-5 * (1.0 + b.abs()),
            "{what}[{i}]: kindling {a} vs pytorch {b}"
        );
    }
}

fn module(f: &HashMap<String, Tensor>, case: &str) -> MultiHeadAttention {
    let lin = |name: &str| {
        let p = |k: &str| {
            f[&format!("{case}.{name}.{k}")]
                .copy()
                .unwrap()
                .requires_grad_(true)
        };
        Linear::from_tensors(p("weight"), Some(p("bias"))).unwrap()
    };
    MultiHeadAttention {
        q_proj: lin("q_proj"),
        k_proj: lin("k_proj"),
        v_proj: lin("v_proj"),
        out_proj: lin("out_proj"),
        n_head: 2,
    }
}

fn check(case: &str, q_key: &str, kv_key: &str, mask: Option<Tensor>, same_input: bool) {
    let f = fixture();
    let m = module(&f, case);
    let q = f[q_key].copy().unwrap().requires_grad_(true);
    let kv = if same_input {
        q.clone()
    } else {
        f[kv_key].copy().unwrap().requires_grad_(true)
    };
    let (out, probs) = m.attend(&q, &kv, mask.as_ref()).unwrap();
    assert_close(&format!("{case}.out"), &out, &f[&format!("{case}.out")]);
    assert_close(
        &format!("{case}.probs"),
        &probs,
        &f[&format!("{case}.probs")],
    );
    out.mul(&f[&format!("{case}.out_weight")])
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    for (name, p) in m.named_parameters() {
        assert_close(
            &format!("{case}.grad.{name}"),
            &p.grad().unwrap(),
            &f[&format!("{case}.grad.{name}")],
        );
    }
    let (gq, gkv) = (
        &f[&format!("{case}.grad.q_in")],
        &f[&format!("{case}.grad.kv_in")],
    );
    if same_input {
        // One tensor feeds both: its gradient is the sum of PyTorch's two.
        assert_close(
            &format!("{case}.grad.x"),
            &q.grad().unwrap(),
            &gq.add(gkv).unwrap(),
        );
    } else {
        assert_close(&format!("{case}.grad.q_in"), &q.grad().unwrap(), gq);
        assert_close(&format!("{case}.grad.kv_in"), &kv.grad().unwrap(), gkv);
    }
}

fn padding(f: &HashMap<String, Tensor>) -> Tensor {
    let valid: Vec<Vec<bool>> = f["valid"]
        .to_vec_f32()
        .unwrap()
        .chunks(5)
        .map(|r| r.iter().map(|&v| v > 0.5).collect())
        .collect();
    key_padding_mask(&valid).unwrap()
}

#[test]
fn encoder_self_attention_with_padded_keys_matches_pytorch() {
    check("self", "x", "x", Some(padding(&fixture())), true);
}

#[test]
fn cross_attention_matches_pytorch() {
    check("cross", "y", "x", Some(padding(&fixture())), false);
}

#[test]
fn causal_self_attention_matches_pytorch() {
    check("causal", "y", "y", Some(causal_mask(3).unwrap()), true);
}
