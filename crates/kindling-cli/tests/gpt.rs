//! End-to-end GPT commands on a small corpus: train, interrupted-and-resumed
//! training, generate (streaming and --json), attention maps, bad input.

mod common;
use common::{json_of, kindling};

use std::path::{Path, PathBuf};
use std::process::Output;

fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("kindling-gpt-{name}-{}", std::process::id()));
    std::fs::remove_dir_all(&d).ok();
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn corpus(dir: &Path) -> PathBuf {
    let text =
        "First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak, speak.\n\n\
                春眠不觉晓，处处闻啼鸟。夜来风雨声，花落知多少。\n"
            .repeat(40);
    let path = dir.join("corpus.txt");
    std::fs::write(&path, text).unwrap();
    path
}

fn train(data: &Path, out: &Path, extra: &[&str]) -> Output {
    let mut args = vec![
        "train",
        "gpt",
        "--data",
        data.to_str().unwrap(),
        "--n-layer",
        "2",
        "--n-head",
        "2",
        "--n-embd",
        "32",
        "--block-size",
        "16",
        "--batch-size",
        "8",
        "--max-iters",
        "60",
        "--warmup-iters",
        "5",
        "--lr",
        "3e-3",
        "--eval-interval",
        "20",
        "--eval-iters",
        "4",
        "--threads",
        "2",
        "--json",
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    kindling(&args)
}

#[test]
fn train_resume_generate_and_attention_work_end_to_end() {
    let dir = temp_dir("e2e");
    let data = corpus(&dir);
    let straight = dir.join("straight");
    let a = json_of(&train(&data, &straight, &[]));
    let metrics = std::fs::read_to_string(straight.join("metrics.jsonl")).unwrap();
    let first: serde_json::Value = serde_json::from_str(metrics.lines().next().unwrap()).unwrap();
    let (before, after) = (
        first["val_loss"].as_f64().unwrap(),
        a["val_loss"].as_f64().unwrap(),
    );
    assert!(
        after < before - 0.5,
        "learned something: val loss {before} -> {after}"
    );
    for f in [
        "config.json",
        "metrics.jsonl",
        "model.safetensors",
        "curves.png",
    ] {
        assert!(straight.join(f).exists(), "{f}");
    }

    let resumed = dir.join("resumed");
    let first = train(&data, &resumed, &["--interrupt-after", "30"]);
    assert!(!first.status.success() && String::from_utf8_lossy(&first.stderr).contains("--resume"));
    let b = json_of(&train(&data, &resumed, &["--resume"]));
    assert_eq!(
        a["val_loss"], b["val_loss"],
        "resumed run ends where the straight one does"
    );
    assert_eq!(
        std::fs::read(straight.join("model.safetensors")).unwrap(),
        std::fs::read(resumed.join("model.safetensors")).unwrap()
    );

    let ckpt = straight.to_str().unwrap();
    let g = json_of(&kindling(&[
        "generate",
        "--ckpt",
        ckpt,
        "--prompt",
        "春眠",
        "--max-new-tokens",
        "40",
        "--seed",
        "1",
        "--json",
    ]));
    assert_eq!(g["text"].as_str().unwrap().chars().count(), 40);
    assert!(g["tokens_per_sec"].as_f64().unwrap() > 0.0);
    // Same seed, same text; argmax at temperature 0 is deterministic too.
    let g2 = json_of(&kindling(&[
        "generate",
        "--ckpt",
        ckpt,
        "--prompt",
        "春眠",
        "--max-new-tokens",
        "40",
        "--seed",
        "1",
        "--json",
    ]));
    assert_eq!(g["text"], g2["text"]);
    // Streaming mode prints the prompt and the continuation; longer than the block size works.
    let s = kindling(&[
        "generate",
        "--ckpt",
        ckpt,
        "--prompt",
        "All:",
        "--max-new-tokens",
        "50",
        "--temperature",
        "0",
    ]);
    assert!(s.status.success());
    assert!(String::from_utf8_lossy(&s.stdout).starts_with("All:"));

    let png = dir.join("attn.png");
    json_of(&kindling(&[
        "attention",
        "--ckpt",
        ckpt,
        "--text",
        "Speak, speak.",
        "--out",
        png.to_str().unwrap(),
        "--json",
    ]));
    assert_eq!(&std::fs::read(&png).unwrap()[..4], b"\x89PNG");
    let one = dir.join("attn1.png");
    json_of(&kindling(&[
        "attention",
        "--ckpt",
        ckpt,
        "--text",
        "花落知多少",
        "--layer",
        "1",
        "--head",
        "1",
        "--out",
        one.to_str().unwrap(),
        "--json",
    ]));
    assert!(one.exists());

    for (args, needle) in [
        (
            vec!["generate", "--ckpt", ckpt, "--prompt", "Zebra"],
            "not in the model's vocabulary",
        ),
        (
            vec![
                "attention",
                "--ckpt",
                ckpt,
                "--text",
                "Speak, speak. Speak, speak.",
                "--out",
                std::env::temp_dir()
                    .join("kindling-unused.png")
                    .to_str()
                    .unwrap(),
            ],
            "block size",
        ),
        (
            vec![
                "attention",
                "--ckpt",
                ckpt,
                "--text",
                "Speak",
                "--layer",
                "5",
                "--out",
                std::env::temp_dir()
                    .join("kindling-unused.png")
                    .to_str()
                    .unwrap(),
            ],
            "--layer",
        ),
        (
            vec!["generate", "--ckpt", ckpt, "--temperature", "-1"],
            "--temperature",
        ),
        (vec!["generate", "--ckpt", "/nonexistent"], "no checkpoint"),
    ] {
        let out = kindling(&args);
        let err = String::from_utf8(out.stderr).unwrap();
        assert!(
            !out.status.success() && err.contains(needle) && !err.contains("panicked"),
            "{args:?}: {err}"
        );
    }
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn bad_corpora_are_named() {
    let dir = temp_dir("bad");
    let empty = dir.join("empty.txt");
    std::fs::write(&empty, "").unwrap();
    let latin1 = dir.join("latin1.txt");
    std::fs::write(&latin1, b"caf\xe9 au lait").unwrap();
    let out = dir.join("run");
    for (data, needle) in [
        ("no-such-corpus", "unknown corpus"),
        ("/nonexistent/corpus.txt", "file not found"),
        (empty.to_str().unwrap(), "empty"),
        (latin1.to_str().unwrap(), "not UTF-8"),
    ] {
        let o = train(Path::new(data), &out, &[]);
        let err = String::from_utf8(o.stderr).unwrap();
        assert!(
            !o.status.success() && err.contains(needle) && !err.contains("panicked"),
            "{data}: {err}"
        );
    }
    let c = corpus(&dir);
    let o = kindling(&[
        "train",
        "gpt",
        "--data",
        c.to_str().unwrap(),
        "--n-head",
        "3",
        "--n-embd",
        "32",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("divisible"));
    std::fs::remove_dir_all(&dir).ok();
}
