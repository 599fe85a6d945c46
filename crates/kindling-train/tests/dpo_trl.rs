//! DPO against TRL's `DPOTrainer` (sigmoid loss): the tiny random LLaMA
//! with a LoRA adapter as the reference and the adapter moved a little as
//! the policy (`tools/gen_dpo_fixture.py`); the loss of two pairs and its
//! gradient with respect to every adapter tensor match TRL's.

use kindling_models::llama_files::llama_from_hf_dir;
use kindling_models::lora_files::load_peft;
use kindling_nn::Module;
use kindling_tensor::safetensors_io;
use kindling_train::dpo_run::{dpo_loss, reference_logps, DpoRow};
use kindling_train::preference::EncodedPair;
use std::path::{Path, PathBuf};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../kindling-models/tests/fixtures/tiny-llama")
        .join(name)
}

#[test]
fn dpo_loss_and_gradients_match_trl() {
    let (reference, _) = safetensors_io::load(&fixture("dpo/reference.safetensors")).unwrap();
    let ids = |k: &str| -> Vec<u32> {
        reference[k]
            .to_vec_i64()
            .unwrap()
            .iter()
            .map(|&x| x as u32)
            .collect()
    };
    let pairs: Vec<EncodedPair> = (0..2)
        .map(|i| EncodedPair {
            prompt: ids(&format!("pair{i}.prompt_ids")),
            chosen: ids(&format!("pair{i}.chosen_ids")),
            rejected: ids(&format!("pair{i}.rejected_ids")),
        })
        .collect();
    let beta = reference["beta"].to_vec_f32().unwrap()[0];
    let mut ref_model = llama_from_hf_dir(&fixture("untied")).unwrap();
    load_peft(&fixture("lora"), &mut ref_model).unwrap();
    let ref_logps = reference_logps(&ref_model, &pairs).unwrap();
    let mut policy = llama_from_hf_dir(&fixture("untied")).unwrap();
    load_peft(&fixture("dpo/policy"), &mut policy).unwrap();
    let rows: Vec<DpoRow> = pairs
        .iter()
        .enumerate()
        .map(|(i, p)| DpoRow::new(p, i).unwrap())
        .collect();
    let (loss, margins) = dpo_loss(&policy, &rows, &ref_logps, beta).unwrap();
    let want = reference["loss"].to_vec_f32().unwrap()[0];
    let got = loss.item().unwrap();
    assert!((got - want).abs() < 1e-6, "DPO loss {got} vs TRL's {want}");
    assert!(
        margins.iter().any(|m| m.abs() > 1e-3),
        "policy and reference differ: {margins:?}"
    );
    loss.backward().unwrap();
    let mut checked = 0;
    for (name, p) in policy.named_parameters() {
        if let Some(g) = reference.get(&format!("grad.{name}")) {
            let got = p.grad().unwrap().to_vec_f32().unwrap();
            let want = g.to_vec_f32().unwrap();
            let scale = want.iter().fold(0f32, |m, x| m.max(x.abs()));
            let d = got
                .iter()
                .zip(&want)
                .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
            assert!(
                d <= 1e-5 * scale.max(1e-3) + 1e-8,
                "{name}: gradient differs by {d} (largest {scale})"
            );
            checked += 1;
        }
    }
    assert_eq!(checked, 28, "A and B of 7 projections in 2 layers");
}
