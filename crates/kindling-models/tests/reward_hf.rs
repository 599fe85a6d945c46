//! Reward models against `transformers`: a tiny random
//! `LlamaForSequenceClassification` (`tools/gen_reward_fixture.py`) loads
//! with the same rewards, one sequence at a time and packed, and Kindling's
//! saved folder loads back identically.

use kindling_models::reward::{reward_from_hf_dir, save_reward_dir};
use kindling_tensor::{safetensors_io, Tensor};
use std::path::Path;

#[test]
fn transformers_rewards_one_at_a_time_and_packed() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny-llama/reward");
    let (reference, _) = safetensors_io::load(&dir.join("reference.safetensors")).unwrap();
    let model = reward_from_hf_dir(&dir).unwrap();
    let mut all = Vec::new();
    let mut lengths = Vec::new();
    for i in 0..3 {
        let ids: Vec<u32> = reference[&format!("ids.{i}")]
            .to_vec_i64()
            .unwrap()
            .iter()
            .map(|&x| x as u32)
            .collect();
        let want = reference[&format!("reward.{i}")].to_vec_f32().unwrap()[0];
        let got = model.reward(&ids).unwrap();
        assert!(
            (got - want).abs() < 2e-6,
            "sequence {i}: {got} vs transformers' {want}"
        );
        lengths.push(ids.len());
        all.extend(ids.iter().map(|&x| x as i64));
    }
    let n = all.len();
    let packed = model
        .rewards_packed(&Tensor::from_vec_i64(all, &[1, n]).unwrap(), &lengths)
        .unwrap()
        .to_vec_f32()
        .unwrap();
    let batch = reference["batch_rewards"].to_vec_f32().unwrap();
    for (a, b) in packed.iter().zip(&batch) {
        assert!(
            (a - b).abs() < 2e-6,
            "packed {packed:?} vs transformers' padded batch {batch:?}"
        );
    }
    let out = std::env::temp_dir().join(format!("kindling-reward-{}", std::process::id()));
    save_reward_dir(&model, &out, Some(0)).unwrap();
    let back = reward_from_hf_dir(&out).unwrap();
    let ids = [1u32, 5, 9];
    assert_eq!(back.reward(&ids).unwrap(), model.reward(&ids).unwrap());
    let _ = std::fs::remove_dir_all(out);

    // A causal LM folder is not a reward model.
    let lm = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny-llama/untied");
    let e = reward_from_hf_dir(&lm).err().unwrap().to_string();
    assert!(e.contains("LlamaForSequenceClassification"), "{e}");
}
