//! `next-token`, `generate --model` and `chat` on a Hugging Face GPT-2
//! folder: a tiny Kindling GPT-2 saved with `save_gpt_hf_dir` beside a
//! byte-level BPE trained here, answering exactly as the library does.

mod common;
use common::{json_of, kindling};
use kindling_data::tokenizer::train_bpe;
use kindling_models::generate::{GenerateOptions, Generator};
use kindling_models::gpt::{Activation, Gpt, GptConfig};
use kindling_models::gpt2_files::save_gpt_hf_dir;
use kindling_tensor::{no_grad, Rng, Tensor};
use std::path::PathBuf;

const TEXT: &str = "the cat sat on the mat. the dog sat on the log. a cat and a dog met on a mat.";

fn folder() -> (PathBuf, Gpt, kindling_data::tokenizer::Tokenizer) {
    let dir = std::env::temp_dir().join(format!("kindling-cli-gpt2-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let tok = train_bpe(std::iter::repeat_n(TEXT, 20), 290, &["<|endoftext|>"]).unwrap();
    let config = GptConfig {
        n_layer: 2,
        n_head: 2,
        n_embd: 16,
        block_size: 64,
        vocab_size: 290,
        dropout: 0.0,
        tie_weights: true,
        bias: true,
        activation: Activation::GeluTanh,
    };
    let model = Gpt::new(config, &mut Rng::new(11)).unwrap();
    save_gpt_hf_dir(&model, &dir).unwrap();
    tok.save(&dir).unwrap();
    (dir, model, tok)
}

#[test]
fn next_token_generate_and_chat_run_a_gpt2_folder_as_the_library_does() {
    let (dir, model, tok) = folder();
    let m = dir.to_str().unwrap();
    let text = "the cat sat";
    let ids = tok.encode(text).unwrap();
    let v = json_of(&kindling(&[
        "next-token",
        "--model",
        m,
        "--text",
        text,
        "--top",
        "2",
        "--json",
    ]));
    assert_eq!(v["ids"], serde_json::json!(ids));
    let _g = no_grad();
    let x = Tensor::from_vec_i64(ids.iter().map(|&i| i as i64).collect(), &[1, ids.len()]).unwrap();
    let logits = model.forward_last(&x, None).unwrap().to_vec_f32().unwrap();
    let best = logits
        .iter()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(b.1))
        .unwrap();
    assert_eq!(v["top"][0]["id"], best.0);
    assert!((v["top"][0]["logit"].as_f64().unwrap() - *best.1 as f64).abs() < 1e-5);

    let v = json_of(&kindling(&[
        "generate",
        "--model",
        m,
        "--prompt",
        text,
        "--temperature",
        "0",
        "--max-new-tokens",
        "12",
        "--json",
    ]));
    let mut opts = GenerateOptions::greedy(12);
    opts.stop_ids = tok.eos_token_id().into_iter().collect();
    let decode = |ids: &[u32]| tok.decode(ids).unwrap_or_default();
    let want = Generator::new(&model, opts)
        .unwrap()
        .generate(&ids, &decode, &mut |_| true)
        .unwrap();
    assert_eq!(v["ids"], serde_json::json!(want.ids));
    assert_eq!(v["text"], want.text);

    let v = json_of(&kindling(&[
        "chat",
        "--model",
        m,
        "--message",
        "hi",
        "--max-new-tokens",
        "4",
        "--json",
    ]));
    assert!(v["new_tokens"].as_u64().unwrap() <= 4, "{v}");

    let cfg = std::fs::read_to_string(dir.join("config.json")).unwrap();
    std::fs::write(
        dir.join("config.json"),
        cfg.replace("\"gpt2\"", "\"gpt_neo\""),
    )
    .unwrap();
    let out = kindling(&["next-token", "--model", m, "--text", text]);
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && e.contains("config.json") && e.contains("gpt_neo"),
        "{e}"
    );
}
