//! LoRA against Hugging Face PEFT: an adapter PEFT saved for the tiny
//! random LLaMA (`tools/gen_lora_fixture.py`) loads with PEFT's logits, its
//! gradients match PEFT's for a next-token loss, merging keeps the logits,
//! and the adapter Kindling writes back has PEFT's names and loads again
//! identically. `tools/check_peft_load.py` checks the other direction (PEFT
//! loading an adapter Kindling wrote; set KINDLING_PEFT_OUT=DIR to keep it).

use kindling_models::llama_files::{llama_from_hf_dir, save_hf_dir};
use kindling_models::lora_files::{load_peft, read_peft_config, save_peft, WEIGHTS_FILE};
use kindling_nn::lora;
use kindling_nn::Module;
use kindling_tensor::{safetensors_io, Tensor};
use std::path::{Path, PathBuf};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/tiny-llama")
        .join(name)
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("kindling-lora-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs()))
}

#[test]
fn a_peft_adapter_gives_peft_logits_gradients_and_merged_logits() {
    let (reference, _) = safetensors_io::load(&fixture("lora/reference.safetensors")).unwrap();
    let mut model = llama_from_hf_dir(&fixture("untied")).unwrap();
    let config = load_peft(&fixture("lora"), &mut model).unwrap();
    assert_eq!((config.rank, config.alpha, config.rslora), (4, 8.0, false));
    let ids = reference["ids"].clone();
    let n = ids.numel();
    let logits = model
        .forward(&ids.reshape(&[1, n]).unwrap(), None)
        .unwrap()
        .reshape(&[n, 61])
        .unwrap();
    let want = reference["logits"].to_vec_f32().unwrap();
    let d = max_diff(&logits.to_vec_f32().unwrap(), &want);
    assert!(d < 2e-6, "logits differ from PEFT's by {d}");

    // Next-token cross-entropy, as the fixture's: only adapters are trainable.
    let loss = logits
        .narrow(0, 0, n - 1)
        .unwrap()
        .cross_entropy(&ids.narrow(0, 1, n - 1).unwrap(), None)
        .unwrap();
    let want_loss = reference["loss"].to_vec_f32().unwrap()[0];
    assert!((loss.item().unwrap() - want_loss).abs() < 1e-5);
    loss.backward().unwrap();
    let mut checked = 0;
    for (name, p) in model.named_parameters() {
        match reference.get(&format!("grad.{name}")) {
            Some(g) => {
                let got = p
                    .grad()
                    .unwrap_or_else(|| panic!("{name}: no gradient"))
                    .to_vec_f32()
                    .unwrap();
                let want = g.to_vec_f32().unwrap();
                let scale = want.iter().fold(0f32, |m, x| m.max(x.abs()));
                let d = max_diff(&got, &want);
                assert!(
                    d <= 1e-5 * scale.max(1.0),
                    "{name}: gradient differs by {d} (largest {scale})"
                );
                checked += 1;
            }
            None => assert!(p.grad().is_none(), "{name} is frozen and gets no gradient"),
        }
    }
    assert_eq!(checked, 2 * 7 * 2, "A and B of 7 projections in 2 layers");

    // Kindling writes the adapter back under PEFT's names; it loads again.
    let out = std::env::var_os("KINDLING_PEFT_OUT")
        .map(PathBuf::from)
        .unwrap_or_else(|| tmp("saved"));
    save_peft(&out, &model, &config, "tiny-llama/untied").unwrap();
    let (theirs, _) = safetensors_io::load(&fixture("lora").join(WEIGHTS_FILE)).unwrap();
    let (ours, _) = safetensors_io::load(&out.join(WEIGHTS_FILE)).unwrap();
    let mut a: Vec<_> = theirs.keys().collect();
    let mut b: Vec<_> = ours.keys().collect();
    a.sort();
    b.sort();
    assert_eq!(a, b, "the same tensor names as PEFT's");
    let mut back = llama_from_hf_dir(&fixture("untied")).unwrap();
    let again = load_peft(&out, &mut back).unwrap();
    let mut targets = config.targets.clone();
    targets.sort();
    assert_eq!(again.targets, targets);
    let relogits = back.forward(&ids.reshape(&[1, n]).unwrap(), None).unwrap();
    assert_eq!(relogits.to_vec_f32().unwrap(), logits.to_vec_f32().unwrap());
    // Kindling's logits beside the adapter, for tools/check_peft_load.py.
    safetensors_io::save(
        &out.join("kindling_logits.safetensors"),
        &[
            ("ids".to_string(), ids.clone()),
            ("logits".to_string(), logits.detach()),
        ],
        &Default::default(),
    )
    .unwrap();

    // A model with adapters is not saved as a plain folder; merged, it is.
    let e = save_hf_dir(&model, &tmp("refused"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("LoRA adapters"), "{e}");
    assert_eq!(lora::merge(&mut model).unwrap(), 14);
    let merged = model.forward(&ids.reshape(&[1, n]).unwrap(), None).unwrap();
    let d = max_diff(
        &merged.to_vec_f32().unwrap(),
        &reference["merged_logits"].to_vec_f32().unwrap(),
    );
    assert!(
        d < 2e-6,
        "merged logits differ from PEFT's merge_and_unload by {d}"
    );
    if std::env::var_os("KINDLING_PEFT_OUT").is_none() {
        let _ = std::fs::remove_dir_all(out);
    }
}

#[test]
fn adapters_that_do_not_fit_are_refused_with_the_file_and_field() {
    let dir = tmp("bad");
    std::fs::create_dir_all(&dir).unwrap();
    let write = |v: serde_json::Value| {
        std::fs::write(dir.join("adapter_config.json"), v.to_string()).unwrap();
    };
    write(
        serde_json::json!({"peft_type": "LORA", "r": 4, "lora_alpha": 8, "target_modules": ["q_proj"], "use_dora": true}),
    );
    let e = read_peft_config(&dir).unwrap_err().to_string();
    assert!(
        e.contains("adapter_config.json") && e.contains("use_dora"),
        "{e}"
    );
    write(serde_json::json!({"peft_type": "LORA", "lora_alpha": 8, "target_modules": ["q_proj"]}));
    assert!(read_peft_config(&dir)
        .unwrap_err()
        .to_string()
        .contains("field `r`"));
    // A target this model does not have.
    write(
        serde_json::json!({"peft_type": "LORA", "r": 2, "lora_alpha": 4, "target_modules": ["c_attn"]}),
    );
    safetensors_io::save(
        &dir.join(WEIGHTS_FILE),
        &[("x".to_string(), Tensor::zeros(&[1]))],
        &Default::default(),
    )
    .unwrap();
    let mut model = llama_from_hf_dir(&fixture("untied")).unwrap();
    let e = load_peft(&dir, &mut model).unwrap_err().to_string();
    assert!(
        e.contains("LoRA target `c_attn` matches no linear layer") && e.contains("q_proj"),
        "{e}"
    );
    // Right targets, wrong tensors.
    write(
        serde_json::json!({"peft_type": "LORA", "r": 2, "lora_alpha": 4, "target_modules": ["q_proj"]}),
    );
    let mut model = llama_from_hf_dir(&fixture("untied")).unwrap();
    let e = load_peft(&dir, &mut model).unwrap_err().to_string();
    assert!(
        e.contains("adapter_model.safetensors") && e.contains("is missing"),
        "{e}"
    );
    let _ = std::fs::remove_dir_all(dir);
}
