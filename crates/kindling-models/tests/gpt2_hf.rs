//! GPT-2 in Hugging Face folders both ways: a tiny random GPT-2 saved by
//! `transformers` (`tools/gen_tiny_gpt2_fixture.py`) loads with the same
//! logits and saves back identically; the KV-cached forward equals the full
//! one. `tools/check_hf_roundtrip.py` checks the other direction (a
//! Kindling-saved folder in `transformers`).

use kindling_models::generate::{GenerateOptions, Generator};
use kindling_models::gpt::{Activation, Gpt, GptConfig};
use kindling_models::gpt2_files::{gpt_from_hf_dir, read_gpt2_config, save_gpt_hf_dir};
use kindling_nn::Module;
use kindling_tensor::{no_grad, safetensors_io, Rng, Tensor};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny-gpt2")
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("kindling-gpt2-hf-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs()))
}

fn ids_tensor(ids: &[i64]) -> Tensor {
    Tensor::from_vec_i64(ids.to_vec(), &[1, ids.len()]).unwrap()
}

fn logits(m: &Gpt, ids: &[i64]) -> Vec<f32> {
    m.forward_ids(&ids_tensor(ids), None)
        .unwrap()
        .to_vec_f32()
        .unwrap()
}

fn tiny(tie: bool, bias: bool) -> Gpt {
    tiny_with(tie, bias, Activation::GeluTanh)
}

fn tiny_with(tie: bool, bias: bool, activation: Activation) -> Gpt {
    let config = GptConfig {
        n_layer: 2,
        n_head: 4,
        n_embd: 32,
        block_size: 40,
        vocab_size: 50,
        dropout: 0.0,
        tie_weights: tie,
        bias,
        activation,
    };
    let m = Gpt::new(config, &mut Rng::new(7)).unwrap();
    // Gains and biases away from 1 and 0, as a trained model's are, and
    // weights 10x the init, so that exact and tanh GELU differ visibly.
    let mut rng = Rng::new(8);
    for (n, p) in m.named_parameters() {
        if n.contains("ln_") || n.ends_with("bias") {
            let noise = kindling_nn::init::normal(p.shape(), 0.2, &mut rng);
            p.assign(&p.add(&noise).unwrap()).unwrap();
        } else {
            p.assign(&p.mul_scalar(10.0).unwrap()).unwrap();
        }
    }
    m
}

#[test]
fn transformers_saved_gpt2_loads_with_the_same_logits_and_saves_back_identically() {
    let dir = fixture();
    let model = gpt_from_hf_dir(&dir).unwrap();
    assert_eq!(
        model.config.activation,
        Activation::GeluTanh,
        "gelu_new is the tanh GELU"
    );
    assert!(
        model.lm_head.is_none(),
        "tie_word_embeddings defaults to true"
    );
    let (r, _) = safetensors_io::load(&dir.join("reference.safetensors")).unwrap();
    let ids = r["ids"].to_vec_i64().unwrap();
    let got = logits(&model, &ids);
    let want = r["logits"].to_vec_f32().unwrap();
    let d = max_diff(&got, &want);
    assert!(d < 1e-5, "logits differ by {d}");
    // The fixture tells the GELUs apart: read as exact GELU it misses by
    // 9e-4, ninety times the tolerance.
    let erf = tmp("as-erf");
    std::fs::create_dir_all(&erf).unwrap();
    std::fs::copy(dir.join("model.safetensors"), erf.join("model.safetensors")).unwrap();
    let cfg = std::fs::read_to_string(dir.join("config.json")).unwrap();
    std::fs::write(
        erf.join("config.json"),
        cfg.replace("\"gelu_new\"", "\"gelu\""),
    )
    .unwrap();
    let wrong = gpt_from_hf_dir(&erf).unwrap();
    assert_eq!(wrong.config.activation, Activation::GeluErf);
    let d = max_diff(&logits(&wrong, &ids), &want);
    assert!(d > 1e-4, "exact GELU misses by only {d}");

    let out = tmp("resave");
    save_gpt_hf_dir(&model, &out).unwrap();
    let again = gpt_from_hf_dir(&out).unwrap();
    assert_eq!(again.config, model.config);
    assert_eq!(logits(&again, &ids), got);
    // The same tensors under the same names and [in, out] shapes as transformers wrote.
    let (orig, _) = safetensors_io::load(&dir.join("model.safetensors")).unwrap();
    let (mine, _) = safetensors_io::load(&out.join("model.safetensors")).unwrap();
    let shapes = |m: &HashMap<String, Tensor>| {
        let mut v: Vec<(String, Vec<usize>)> = m
            .iter()
            .map(|(n, t)| (n.clone(), t.shape().to_vec()))
            .collect();
        v.sort();
        v
    };
    assert_eq!(shapes(&mine), shapes(&orig));
    for (n, t) in &orig {
        assert_eq!(
            mine[n].to_vec_f32().unwrap(),
            t.to_vec_f32().unwrap(),
            "{n}"
        );
    }
}

#[test]
fn checkpoints_without_the_transformer_prefix_load_too() {
    // openai-community/gpt2's model.safetensors names `h.0.attn.c_attn.weight`
    // (saved from GPT2Model) and carries `attn.bias` mask buffers.
    let src = fixture();
    let dir = tmp("noprefix");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(src.join("config.json"), dir.join("config.json")).unwrap();
    let (t, _) = safetensors_io::load(&src.join("model.safetensors")).unwrap();
    let mut named: Vec<(String, Tensor)> = t
        .into_iter()
        .map(|(n, t)| (n.strip_prefix("transformer.").unwrap_or(&n).to_string(), t))
        .collect();
    named.push(("h.0.attn.bias".into(), Tensor::ones(&[1, 1, 64, 64])));
    safetensors_io::save(&dir.join("model.safetensors"), &named, &Default::default()).unwrap();
    let ids = [1i64, 5, 9, 60];
    assert_eq!(
        logits(&gpt_from_hf_dir(&dir).unwrap(), &ids),
        logits(&gpt_from_hf_dir(&src).unwrap(), &ids)
    );
}

#[test]
fn a_missing_tensor_a_wrong_shape_a_wrong_model_type_and_a_truncated_file_are_named() {
    let src = fixture();
    let dir = tmp("broken");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(src.join("config.json"), dir.join("config.json")).unwrap();
    let (mut t, _) = safetensors_io::load(&src.join("model.safetensors")).unwrap();
    let name = "transformer.h.1.mlp.c_fc.weight";
    t.remove(name);
    let named: Vec<(String, Tensor)> = t.clone().into_iter().collect();
    safetensors_io::save(&dir.join("model.safetensors"), &named, &Default::default()).unwrap();
    let e = gpt_from_hf_dir(&dir).err().unwrap().to_string();
    assert!(
        e.contains("model.safetensors") && e.contains(name) && e.contains("missing"),
        "{e}"
    );

    // The Conv1D layout is [in, out]: a Linear-layout [out, in] tensor is wrong.
    t.insert(name.into(), Tensor::zeros(&[128, 32]));
    let named: Vec<(String, Tensor)> = t.into_iter().collect();
    safetensors_io::save(&dir.join("model.safetensors"), &named, &Default::default()).unwrap();
    let e = gpt_from_hf_dir(&dir).err().unwrap().to_string();
    assert!(
        e.contains("model.safetensors")
            && e.contains(name)
            && e.contains("[128, 32]")
            && e.contains("[32, 128]"),
        "{e}"
    );

    let cfg = std::fs::read_to_string(src.join("config.json")).unwrap();
    std::fs::write(
        dir.join("config.json"),
        cfg.replace("\"gpt2\"", "\"gpt_neo\""),
    )
    .unwrap();
    let e = gpt_from_hf_dir(&dir).err().unwrap().to_string();
    assert!(e.contains("config.json") && e.contains("gpt_neo"), "{e}");
    std::fs::write(
        dir.join("config.json"),
        cfg.replace("\"gelu_new\"", "\"relu\""),
    )
    .unwrap();
    let e = read_gpt2_config(&dir).err().unwrap().to_string();
    assert!(
        e.contains("config.json") && e.contains("activation_function `relu`"),
        "{e}"
    );

    let bytes = std::fs::read(src.join("model.safetensors")).unwrap();
    std::fs::copy(src.join("config.json"), dir.join("config.json")).unwrap();
    std::fs::write(dir.join("model.safetensors"), &bytes[..bytes.len() / 2]).unwrap();
    let e = gpt_from_hf_dir(&dir).err().unwrap().to_string();
    assert!(
        e.contains("model.safetensors")
            && e.contains("truncated")
            && e.contains("tensor `transformer."),
        "{e}"
    );
}

#[test]
fn a_bias_free_gpt_saves_with_zero_biases_and_the_same_logits() {
    let m = tiny(false, false);
    let out = tmp("nobias");
    save_gpt_hf_dir(&m, &out).unwrap();
    let again = gpt_from_hf_dir(&out).unwrap();
    assert!(again.config.bias && !again.config.tie_weights);
    let ids = [3i64, 1, 4, 1, 5, 9, 2, 6];
    let d = max_diff(&logits(&again, &ids), &logits(&m, &ids));
    assert!(d < 1e-6, "{d}");
}

#[test]
fn checkpoints_written_before_the_activation_option_use_exact_gelu() {
    let old = r#"{"n_layer":1,"n_head":1,"n_embd":4,"block_size":8,"vocab_size":5,"dropout":0.0,"tie_weights":true,"bias":true}"#;
    let c: GptConfig = serde_json::from_str(old).unwrap();
    assert_eq!(c.activation, Activation::GeluErf);
    let new = serde_json::to_value(GptConfig {
        activation: Activation::GeluTanh,
        ..c
    })
    .unwrap();
    assert_eq!(new["activation"], "gelu_tanh");
}

#[test]
fn the_cached_forward_equals_the_full_forward_in_one_two_and_three_token_steps() {
    let _g = no_grad();
    for (tie, bias) in [(true, true), (false, false)] {
        let m = tiny(tie, bias);
        let ids: Vec<i64> = (0..12).map(|i| (i * 13 % 50) as i64).collect();
        let full = logits(&m, &ids);
        let v = 50;
        let mut cache = m.new_cache();
        let mut at = 0;
        for step in [5, 1, 2, 1, 3] {
            let got = m
                .forward_cached(&ids_tensor(&ids[at..at + step]), Some(&mut cache))
                .unwrap()
                .to_vec_f32()
                .unwrap();
            let d = max_diff(&got, &full[at * v..(at + step) * v]);
            assert!(d < 1e-5, "positions {at}..{}: {d}", at + step);
            at += step;
        }
        assert_eq!(cache.len(), 12);
        let last = m
            .forward_last(&ids_tensor(&ids), None)
            .unwrap()
            .to_vec_f32()
            .unwrap();
        assert!(max_diff(&last, &full[11 * v..]) < 1e-6);
        let mut full_cache = m.new_cache();
        m.forward_cached(
            &ids_tensor(&ids[..40.min(ids.len())]),
            Some(&mut full_cache),
        )
        .unwrap();
        let e = m
            .forward_cached(&ids_tensor(&[1; 29]), Some(&mut full_cache))
            .err()
            .unwrap()
            .to_string();
        assert!(
            e.contains("41 tokens exceed the model's block size 40"),
            "{e}"
        );
    }
}

#[test]
fn cached_greedy_generation_equals_uncached_argmax() {
    let m = tiny(false, true);
    let prompt = [1u32, 2, 3];
    let text = |ids: &[u32]| ids.iter().map(|i| format!("<{i}>")).collect::<String>();
    let mut g = Generator::new(&m, GenerateOptions::greedy(10)).unwrap();
    let out = g.generate(&prompt, &text, &mut |_| true).unwrap();
    let mut seq: Vec<i64> = prompt.iter().map(|&i| i as i64).collect();
    for _ in 0..10 {
        let l = logits(&m, &seq);
        let last = &l[(seq.len() - 1) * 50..];
        seq.push(
            last.iter()
                .enumerate()
                .max_by(|a, b| a.1.total_cmp(b.1))
                .unwrap()
                .0 as i64,
        );
    }
    let want: Vec<u32> = seq[3..].iter().map(|&i| i as u32).collect();
    assert_eq!(out.ids, want);
}

/// Writes a Kindling-initialized tiny GPT-2 (untied head, tanh GELU) and its
/// logits where `KINDLING_HF_EXPORT` points, for `tools/check_hf_roundtrip.py`.
#[test]
fn kindling_gpt2_exports_for_the_transformers_check() {
    export(tiny(false, true), "KINDLING_HF_EXPORT", "export");
}

/// The same for a model shaped like `kindling train gpt`'s (exact GELU,
/// written as `gelu`; no biases, written as zeros; tied head), where
/// `KINDLING_HF_EXPORT_NANOGPT` points.
#[test]
fn kindling_nanogpt_exports_for_the_transformers_check() {
    export(
        tiny_with(true, false, Activation::GeluErf),
        "KINDLING_HF_EXPORT_NANOGPT",
        "export-nanogpt",
    );
}

fn export(model: Gpt, env: &str, name: &str) {
    let out = std::env::var_os(env)
        .map(PathBuf::from)
        .unwrap_or_else(|| tmp(name));
    save_gpt_hf_dir(&model, &out).unwrap();
    assert_eq!(
        gpt_from_hf_dir(&out).unwrap().config.activation,
        model.config.activation
    );
    let ids: Vec<i64> = (0..20).map(|i| (i * 7 % 50) as i64).collect();
    let l = model.forward_ids(&ids_tensor(&ids), None).unwrap();
    safetensors_io::save(
        &out.join("kindling_logits.safetensors"),
        &[
            ("ids".into(), Tensor::from_vec_i64(ids, &[20]).unwrap()),
            ("logits".into(), l.reshape(&[20, 50]).unwrap()),
        ],
        &Default::default(),
    )
    .unwrap();
    assert!(gpt_from_hf_dir(&out).is_ok());
}
