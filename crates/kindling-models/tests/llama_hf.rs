//! Hugging Face folders both ways: tiny random LLaMAs saved by
//! `transformers` (tied and untied heads; `tools/gen_tiny_llama_fixture.py`)
//! load with the same logits, and Kindling's saved folder loads back
//! identically. `tools/check_hf_roundtrip.py` checks the other direction
//! (a Kindling-saved folder in `transformers`).

use kindling_models::llama::{Llama, LlamaConfig};
use kindling_models::llama_files::{llama_from_hf_dir, save_hf_dir};
use kindling_nn::Module;
use kindling_tensor::{safetensors_io, Rng, Tensor};
use std::path::{Path, PathBuf};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/tiny-llama")
        .join(name)
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("kindling-llama-hf-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs()))
}

#[test]
fn transformers_saved_llamas_load_with_the_same_logits_and_save_back_identically() {
    for name in ["untied", "tied"] {
        let dir = fixture(name);
        let model = llama_from_hf_dir(&dir).unwrap();
        assert_eq!(model.lm_head.is_none(), name == "tied");
        assert_eq!(
            model.config.rope_theta, 500.0,
            "rope_parameters.rope_theta is read"
        );
        let (r, _) = safetensors_io::load(&dir.join("reference.safetensors")).unwrap();
        let ids = r["ids"].to_vec_i64().unwrap();
        let x = Tensor::from_vec_i64(ids.clone(), &[1, ids.len()]).unwrap();
        let got = model.forward(&x, None).unwrap().to_vec_f32().unwrap();
        let want = r["logits"].to_vec_f32().unwrap();
        let d = max_diff(&got, &want);
        assert!(d < 1e-5, "{name}: logits differ by {d}");
        let out = tmp(name);
        save_hf_dir(&model, &out).unwrap();
        let again = llama_from_hf_dir(&out).unwrap();
        assert_eq!(again.config, model.config);
        let got2 = again.forward(&x, None).unwrap().to_vec_f32().unwrap();
        assert_eq!(got, got2);
        assert_eq!(
            again
                .named_parameters()
                .iter()
                .map(|(n, _)| n.clone())
                .collect::<Vec<_>>(),
            model
                .named_parameters()
                .iter()
                .map(|(n, _)| n.clone())
                .collect::<Vec<_>>()
        );
    }
}

#[test]
fn a_missing_tensor_a_wrong_shape_and_a_wrong_model_type_are_named() {
    let src = fixture("untied");
    let dir = tmp("broken");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(src.join("config.json"), dir.join("config.json")).unwrap();
    let (mut t, _) = safetensors_io::load(&src.join("model.safetensors")).unwrap();
    t.remove("model.layers.1.mlp.up_proj.weight");
    let named: Vec<(String, Tensor)> = t.clone().into_iter().collect();
    safetensors_io::save(&dir.join("model.safetensors"), &named, &Default::default()).unwrap();
    let e = llama_from_hf_dir(&dir).err().unwrap().to_string();
    assert!(
        e.contains("model.safetensors")
            && e.contains("model.layers.1.mlp.up_proj.weight")
            && e.contains("missing"),
        "{e}"
    );
    t.insert(
        "model.layers.1.mlp.up_proj.weight".into(),
        Tensor::zeros(&[3, 3]),
    );
    let named: Vec<(String, Tensor)> = t.into_iter().collect();
    safetensors_io::save(&dir.join("model.safetensors"), &named, &Default::default()).unwrap();
    let e = llama_from_hf_dir(&dir).err().unwrap().to_string();
    assert!(
        e.contains("up_proj.weight") && e.contains("[3, 3]") && e.contains("[48, 32]"),
        "{e}"
    );
    let cfg = std::fs::read_to_string(src.join("config.json"))
        .unwrap()
        .replace("\"llama\"", "\"mistral\"");
    std::fs::write(dir.join("config.json"), cfg).unwrap();
    let e = llama_from_hf_dir(&dir).err().unwrap().to_string();
    assert!(e.contains("config.json") && e.contains("mistral"), "{e}");
    // A truncated safetensors file names the file.
    let bytes = std::fs::read(src.join("model.safetensors")).unwrap();
    std::fs::copy(src.join("config.json"), dir.join("config.json")).unwrap();
    std::fs::write(dir.join("model.safetensors"), &bytes[..bytes.len() / 2]).unwrap();
    let e = llama_from_hf_dir(&dir).err().unwrap().to_string();
    assert!(e.contains("model.safetensors"), "{e}");
}

/// Writes a Kindling-initialized tiny LLaMA and its logits where
/// `KINDLING_HF_EXPORT` points, for `tools/check_hf_roundtrip.py`.
#[test]
fn kindling_llama_exports_for_the_transformers_check() {
    let config = LlamaConfig {
        vocab_size: 50,
        hidden_size: 48,
        intermediate_size: 64,
        num_hidden_layers: 2,
        num_attention_heads: 6,
        num_key_value_heads: 2,
        head_dim: None,
        max_position_embeddings: 128,
        rms_norm_eps: 1e-6,
        rope_theta: 10000.0,
        tie_word_embeddings: false,
        bos_token_id: None,
        eos_token_id: None,
        qk_norm: false,
    };
    let model = Llama::new(config, &mut Rng::new(3)).unwrap();
    let out = std::env::var_os("KINDLING_HF_EXPORT")
        .map(PathBuf::from)
        .unwrap_or_else(|| tmp("export"));
    save_hf_dir(&model, &out).unwrap();
    let ids: Vec<i64> = (0..20).map(|i| (i * 7 % 50) as i64).collect();
    let logits = model
        .forward(&Tensor::from_vec_i64(ids.clone(), &[1, 20]).unwrap(), None)
        .unwrap();
    let meta = Default::default();
    safetensors_io::save(
        &out.join("kindling_logits.safetensors"),
        &[
            ("ids".into(), Tensor::from_vec_i64(ids, &[20]).unwrap()),
            ("logits".into(), logits.reshape(&[20, 50]).unwrap()),
        ],
        &meta,
    )
    .unwrap();
    assert!(llama_from_hf_dir(&out).is_ok());
}

/// QK-norm (`qk_norm: true`) adds `self_attn.q_norm`/`k_norm` weights, keeps
/// attention causal, and is refused by `save_hf_dir`: transformers' LLaMA
/// would silently drop those weights. A plain config never mentions the field.
#[test]
fn a_qk_norm_llama_is_causal_and_is_not_saved_as_a_hugging_face_llama() {
    let config = |qk_norm| LlamaConfig {
        vocab_size: 11,
        hidden_size: 16,
        intermediate_size: 24,
        num_hidden_layers: 2,
        num_attention_heads: 4,
        num_key_value_heads: 2,
        head_dim: None,
        max_position_embeddings: 8,
        rms_norm_eps: 1e-5,
        rope_theta: 10000.0,
        tie_word_embeddings: true,
        bos_token_id: None,
        eos_token_id: None,
        qk_norm,
    };
    assert!(!serde_json::to_string(&config(false))
        .unwrap()
        .contains("qk_norm"));
    let model = Llama::new(config(true), &mut Rng::new(3)).unwrap();
    let names: Vec<String> = model
        .named_parameters()
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    assert!(
        names.contains(&"model.layers.1.self_attn.k_norm.weight".to_string()),
        "{names:?}"
    );
    assert_eq!(
        model.num_parameters(),
        Llama::new(config(false), &mut Rng::new(3))
            .unwrap()
            .num_parameters()
            + 2 * 2 * 4
    );
    // Changing token 5 of each row changes nothing before it.
    let a: Vec<i64> = (0..16).map(|i| (i * 3 % 11) as i64).collect();
    let mut b = a.clone();
    b[5] = (b[5] + 1) % 11;
    b[13] = (b[13] + 1) % 11;
    let run = |ids: Vec<i64>| {
        model
            .forward(&Tensor::from_vec_i64(ids, &[2, 8]).unwrap(), None)
            .unwrap()
            .to_vec_f32()
            .unwrap()
    };
    let (la, lb) = (run(a), run(b));
    for row in 0..2 {
        for t in 0..8 {
            let s = (row * 8 + t) * 11;
            let same = la[s..s + 11] == lb[s..s + 11];
            assert_eq!(same, t < 5, "row {row} position {t}");
        }
    }
    let e = save_hf_dir(&model, &tmp("qk-norm"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("qk_norm"), "{e}");
}
