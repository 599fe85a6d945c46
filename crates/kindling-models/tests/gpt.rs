//! GPT: parameter count, KV-cache decoding equals the full forward pass,
//! gradients by finite differences through a whole tiny model.

use kindling_models::gpt::{Gpt, GptConfig};
use kindling_nn::Module;
use kindling_tensor::{Rng, Tensor};

fn tiny(tie: bool) -> Gpt {
    let config = GptConfig {
        n_layer: 2,
        n_head: 2,
        n_embd: 8,
        block_size: 6,
        vocab_size: 7,
        dropout: 0.0,
        tie_weights: tie,
        bias: true,
        activation: Default::default(),
    };
    Gpt::new(config, &mut Rng::new(3)).unwrap()
}

#[test]
fn parameter_count_matches_the_formula() {
    let m = tiny(true);
    let (c, v, t, l) = (8, 7, 6, 2);
    let per_block =
        2 * 2 * c + (3 * c * c + 3 * c) + (c * c + c) + (4 * c * c + 4 * c) + (4 * c * c + c);
    assert_eq!(m.num_parameters(), v * c + t * c + l * per_block + 2 * c);
    assert_eq!(tiny(false).num_parameters(), m.num_parameters() + v * c);
    assert!(m
        .decay_parameter_names()
        .iter()
        .all(|n| n.ends_with("weight") && !n.starts_with("w")));
}

#[test]
fn kv_cache_decoding_equals_the_full_forward_pass() {
    for tie in [true, false] {
        let m = tiny(tie);
        let ids = [3i64, 0, 6, 2, 2, 5];
        let full = m
            .forward_ids(&Tensor::from_vec_i64(ids.to_vec(), &[1, 6]).unwrap(), None)
            .unwrap()
            .to_vec_f32()
            .unwrap();
        let mut cache = m.new_cache();
        for (pos, &id) in ids.iter().enumerate() {
            let x = Tensor::from_vec_i64(vec![id], &[1, 1]).unwrap();
            let step = m
                .forward_last(&x, Some(&mut cache))
                .unwrap()
                .to_vec_f32()
                .unwrap();
            for (a, b) in step.iter().zip(&full[pos * 7..(pos + 1) * 7]) {
                assert!((a - b).abs() < 1e-5, "pos {pos}: {a} vs {b}");
            }
        }
        let x = Tensor::from_vec_i64(vec![1], &[1, 1]).unwrap();
        assert!(
            m.forward_last(&x, Some(&mut cache)).is_err(),
            "cache full at block size"
        );
    }
}

#[test]
fn sequences_longer_than_the_block_are_rejected() {
    let m = tiny(true);
    let err = m
        .forward_ids(&Tensor::from_vec_i64(vec![0; 7], &[1, 7]).unwrap(), None)
        .unwrap_err()
        .to_string();
    assert!(err.contains("block size 6"), "{err}");
}

#[test]
fn whole_model_gradients_match_finite_differences() {
    // Check d loss / d (one weight matrix of each kind) through the whole net.
    let m = tiny(true);
    let idx = Tensor::from_vec_i64(vec![1, 2, 3, 4, 0, 6, 5, 4], &[2, 4]).unwrap();
    let targets = Tensor::from_vec_i64(vec![2, 3, 4, 0, 6, 5, 4, -1], &[2, 4]).unwrap();
    let loss = m
        .forward_ids(&idx, None)
        .unwrap()
        .cross_entropy(&targets, Some(-1))
        .unwrap();
    loss.backward().unwrap();
    let params = m.named_parameters();
    for name in [
        "wte.weight",
        "h.0.attn.c_attn.weight",
        "h.1.mlp.c_fc.bias",
        "h.0.ln_1.weight",
        "ln_f.bias",
    ] {
        let p = &params.iter().find(|(n, _)| n == name).unwrap().1;
        let analytic = p.grad().unwrap().to_vec_f32().unwrap();
        let base = p.to_vec_f32().unwrap();
        for j in [0, base.len() / 2, base.len() - 1] {
            let eval = |delta: f32| {
                let mut v = base.clone();
                v[j] += delta;
                p.assign(&Tensor::from_vec(v, p.shape()).unwrap()).unwrap();
                let l = m
                    .forward_ids(&idx, None)
                    .unwrap()
                    .cross_entropy(&targets, Some(-1))
                    .unwrap()
                    .item()
                    .unwrap() as f64;
                p.assign(&Tensor::from_vec(base.clone(), p.shape()).unwrap())
                    .unwrap();
                l
            };
            let numeric = (eval(1e-2) - eval(-1e-2)) / 2e-2;
            assert!(
                (analytic[j] as f64 - numeric).abs() < 2e-3 + 2e-2 * numeric.abs(),
                "{name}[{j}]: {} vs {numeric}",
                analytic[j]
            );
        }
    }
}
