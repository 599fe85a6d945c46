//! End-to-end: `kindling tokenizer train` on a tiny file, `kindling tokenize`
//! with the trained tokenizer and (when the shared data is beside the
//! repository) with cl100k_base, `kindling bench tokenizer`, and one-line errors.

mod common;

use common::{json_of, kindling};
use std::path::{Path, PathBuf};

/// A temporary directory, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        let dir =
            std::env::temp_dir().join(format!("kindling-cli-tok-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn one_line_error(out: &std::process::Output) -> String {
    assert!(!out.status.success());
    let stderr = String::from_utf8(out.stderr.clone()).unwrap();
    let last = stderr.lines().last().unwrap_or("").to_string();
    assert!(last.starts_with("error: "), "{stderr}");
    last
}

#[test]
fn train_then_tokenize_with_the_trained_tokenizer() {
    let scratch = Scratch::new("train");
    let corpus = scratch.0.join("tiny.txt");
    std::fs::write(
        &corpus,
        "the cat sat on the mat.\nthe dog sat on the log.\n".repeat(50),
    )
    .unwrap();
    let out_dir = scratch.0.join("tok");
    let (corpus_s, out_s) = (corpus.to_str().unwrap(), out_dir.to_str().unwrap());
    let train = [
        "tokenizer",
        "train",
        "--data",
        corpus_s,
        "--vocab-size",
        "300",
        "--out",
        out_s,
    ];

    let v = json_of(&kindling(&[&train[..], &["--json"]].concat()));
    assert!(out_dir.join("tokenizer.json").is_file());
    assert!(v["vocab_size"].as_u64().unwrap() <= 300, "{v}");
    assert!(
        v["bytes_per_token"].as_f64().unwrap() > 2.0,
        "merges learned: {v}"
    );

    let line = one_line_error(&kindling(&train));
    assert!(
        line.contains("tokenizer.json exists") && line.contains("--force"),
        "{line}"
    );
    json_of(&kindling(&[&train[..], &["--force", "--json"]].concat()));

    let text = "the cat sat<|endoftext|>zebra 9.11 🙂";
    let out = kindling(&["tokenize", "--tokenizer", out_s, "--text", text, "--json"]);
    let stdout = String::from_utf8(out.stdout.clone()).unwrap();
    assert_eq!(
        stdout.lines().count(),
        1,
        "with --json, stdout is the JSON object: {stdout}"
    );
    let v = json_of(&out);
    let ids = v["ids"].as_array().unwrap();
    let tokens: Vec<&str> = v["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), tokens.len());
    assert!(tokens.contains(&" cat"), "{tokens:?}");
    let eot = tokens
        .iter()
        .position(|t| *t == "<|endoftext|>")
        .expect("special kept whole");
    assert_eq!(ids[eot], 0, "specials take the first ids");

    // --file reads the text from a file, CRLF and all.
    let text_file = scratch.0.join("text.txt");
    std::fs::write(&text_file, "the cat\r\nsat").unwrap();
    let v = json_of(&kindling(&[
        "tokenize",
        "--tokenizer",
        out_s,
        "--file",
        text_file.to_str().unwrap(),
        "--json",
    ]));
    let joined: String = v["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    assert_eq!(joined, "the cat\r\nsat");
    assert_eq!(v["bytes"], 12);

    // The human view: pieces between bars, the ids, a count.
    let out = kindling(&["tokenize", "--tokenizer", out_s, "--text", "the cat"]);
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(stdout.contains("the| cat"), "{stdout}");
    assert!(stdout.contains("2 tokens for 7 characters"), "{stdout}");

    let v = json_of(&kindling(&[
        "bench",
        "tokenizer",
        "--tokenizer",
        out_s,
        "--data",
        corpus_s,
        "--repeat",
        "1",
        "--json",
    ]));
    assert!(v["encode_mb_per_sec"].as_f64().unwrap() > 0.0, "{v}");
    assert_eq!(
        v["bytes"].as_u64().unwrap(),
        std::fs::metadata(&corpus).unwrap().len()
    );
}

#[test]
fn tokenize_cuts_9_11_vs_9_3_like_tiktoken_cl100k() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/data/tokenizers/tiktoken/cl100k_base.tiktoken");
    if !path.is_file() {
        eprintln!("{} not found: skipping", path.display());
        return;
    }
    let v = json_of(&kindling(&[
        "tokenize",
        "--tokenizer",
        path.to_str().unwrap(),
        "--text",
        "9.11 vs 9.3",
        "--json",
    ]));
    assert_eq!(
        v["ids"],
        serde_json::json!([24, 13, 806, 6296, 220, 24, 13, 18])
    );
    assert_eq!(
        v["tokens"],
        serde_json::json!(["9", ".", "11", " vs", " ", "9", ".", "3"])
    );

    // Converted to tokenizer.json, it cuts the same way.
    let scratch = Scratch::new("convert");
    let out = scratch.0.join("cl100k");
    let convert = [
        "tokenizer",
        "convert",
        "--tokenizer",
        path.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--json",
    ];
    let c = json_of(&kindling(&convert));
    assert_eq!(c["eos_token_id"], 100257);
    let w = json_of(&kindling(&[
        "tokenize",
        "--tokenizer",
        out.to_str().unwrap(),
        "--text",
        "9.11 vs 9.3",
        "--json",
    ]));
    assert_eq!(w["ids"], v["ids"]);
    let line = one_line_error(&kindling(&convert));
    assert!(line.contains("--force"), "{line}");
}

#[test]
fn a_wrong_tokenizer_file_is_one_line_naming_it() {
    let scratch = Scratch::new("bad");
    let bad = scratch.0.join("tokenizer.json");
    std::fs::write(&bad, [0u8, 1, 2, 3, 0xff, 0xfe]).unwrap();
    let line = one_line_error(&kindling(&[
        "tokenize",
        "--tokenizer",
        bad.to_str().unwrap(),
        "--text",
        "x",
    ]));
    assert!(
        line.contains(bad.to_str().unwrap()) && line.contains("not JSON"),
        "{line}"
    );
    let line = one_line_error(&kindling(&[
        "tokenize",
        "--tokenizer",
        "nope_base",
        "--text",
        "x",
    ]));
    assert!(
        line.contains("`nope_base`") && line.contains("o200k_base"),
        "{line}"
    );
    let line = one_line_error(&kindling(&["tokenize", "--tokenizer", "gpt2"]));
    assert!(
        line.contains("required"),
        "neither --text nor --file: {line}"
    );
}
