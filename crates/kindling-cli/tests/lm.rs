//! `next-token`, `chat` and `generate --model` on SmolLM2-135M-Instruct
//! (read from the shared data beside the repository; skipped with a message
//! when it is absent), and the one-line errors for bad model files.

mod common;
use common::{json_of, kindling};
use std::path::{Path, PathBuf};

fn smollm2() -> Option<String> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/data/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf");
    if p.is_file() {
        Some(p.to_str().unwrap().to_string())
    } else {
        eprintln!("skipped: {} not found", p.display());
        None
    }
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("kindling-cli-lm-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d.join(name)
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).to_string()
}

#[test]
fn next_token_and_chat_answer_as_transformers_does() {
    let Some(m) = smollm2() else { return };
    let v = json_of(&kindling(&[
        "next-token",
        "--model",
        &m,
        "--text",
        "The capital of France is",
        "--top",
        "3",
        "--json",
        "--threads",
        "2",
    ]));
    // Ids and top-1 from tools/gen_smollm2_reference.py (transformers 5.24).
    assert_eq!(v["ids"], serde_json::json!([504, 3575, 282, 4649, 314]));
    assert_eq!(v["top"][0]["token"], " Paris");
    assert_eq!(v["top"][0]["id"], 7042);
    assert!((v["top"][0]["logit"].as_f64().unwrap() - 17.3713).abs() < 1e-3);
    assert_eq!(v["top"].as_array().unwrap().len(), 3);
    let v = json_of(&kindling(&[
        "chat",
        "--model",
        &m,
        "--message",
        "What is 2+2?",
        "--json",
        "--threads",
        "2",
    ]));
    assert_eq!(v["answer"], "The answer to this classic math problem is 4.");
    assert_eq!(v["stop"], "eos");
    let v = json_of(&kindling(&[
        "generate",
        "--model",
        &m,
        "--prompt",
        "def fibonacci(n):\n    ",
        "--temperature",
        "0",
        "--max-new-tokens",
        "30",
        "--stop",
        "elif",
        "--json",
        "--threads",
        "2",
    ]));
    assert_eq!(v["stop"], "stop_string");
    assert!(v["text"].as_str().unwrap().contains("if n == 0"), "{v}");
    assert!(!v["text"].as_str().unwrap().contains("elif"));
}

#[test]
fn bad_model_files_and_prompts_get_one_line_errors() {
    let Some(m) = smollm2() else { return };
    let bytes = std::fs::read(&m).unwrap();
    // The copies are 50-100 MB: removed however the test ends.
    struct Cleanup;
    impl Drop for Cleanup {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(tmp(""));
        }
    }
    let _cleanup = Cleanup;
    // Truncated: the header is whole, the tensor data is not.
    let cut = tmp("cut.gguf");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let out = kindling(&[
        "next-token",
        "--model",
        cut.to_str().unwrap(),
        "--text",
        "hi",
    ]);
    let e = stderr(&out);
    assert!(!out.status.success());
    assert!(e.contains("cut.gguf") && e.contains("truncated"), "{e}");
    assert_eq!(
        e.trim().lines().filter(|l| l.starts_with("error")).count(),
        1,
        "{e}"
    );
    // An unknown quantization type (token_embd.weight re-labelled Q6_K).
    let mut b = bytes.clone();
    let name = b"token_embd.weight";
    let at = b.windows(name.len()).position(|w| w == name).unwrap() + name.len();
    let n_dims = u32::from_le_bytes(b[at..at + 4].try_into().unwrap()) as usize;
    let ty = at + 4 + 8 * n_dims;
    b[ty..ty + 4].copy_from_slice(&14u32.to_le_bytes());
    let odd = tmp("q6k.gguf");
    std::fs::write(&odd, &b).unwrap();
    let e = stderr(&kindling(&[
        "next-token",
        "--model",
        odd.to_str().unwrap(),
        "--text",
        "hi",
    ]));
    assert!(
        e.contains("q6k.gguf") && e.contains("token_embd.weight") && e.contains("Q6_K"),
        "{e}"
    );
    // Not a model at all.
    let junk = tmp("junk.gguf");
    std::fs::write(&junk, b"{\"not\": \"a model\"}").unwrap();
    let e = stderr(&kindling(&[
        "chat",
        "--model",
        junk.to_str().unwrap(),
        "--message",
        "hi",
    ]));
    assert!(
        e.contains("junk.gguf") && e.contains("not a GGUF file"),
        "{e}"
    );
    let e = stderr(&kindling(&[
        "chat",
        "--model",
        "/nonexistent/model.gguf",
        "--message",
        "hi",
    ]));
    assert!(
        e.contains("/nonexistent/model.gguf") && e.contains("no such file"),
        "{e}"
    );
    // A prompt longer than the context (8192 tokens).
    let long = "word ".repeat(9000);
    let e = stderr(&kindling(&["next-token", "--model", &m, "--text", &long]));
    assert!(e.contains("longer than the model's context of 8192"), "{e}");
}
