//! `kindling train lm` end to end on tiny settings: a BPE tokenizer trained
//! here, LLaMA and GPT-2 architectures, the Hugging Face folder the run
//! leaves (read back by `next-token --model RUN`), and an interrupted run
//! resumed to the same metrics as an uninterrupted one.

mod common;
use common::{json_of, kindling};
use std::path::PathBuf;

fn dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("kindling-train-lm-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

/// A corpus file and a BPE trained on it (by the CLI).
fn corpus_and_tokenizer() -> (PathBuf, PathBuf) {
    let d = dir("corpus");
    std::fs::create_dir_all(&d).unwrap();
    let corpus = d.join("corpus.txt");
    let text: String = (0..400)
        .map(|i| {
            format!(
                "the {} cat sat on the {} mat number {i}.\n",
                ["red", "big", "old"][i % 3],
                ["green", "flat"][i % 2]
            )
        })
        .collect();
    std::fs::write(&corpus, text).unwrap();
    let tok = d.join("tok");
    let out = kindling(&[
        "tokenizer",
        "train",
        "--data",
        corpus.to_str().unwrap(),
        "--vocab-size",
        "300",
        "--out",
        tok.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (corpus, tok)
}

fn train(args: &[&str]) -> serde_json::Value {
    let mut all = vec![
        "train",
        "lm",
        "--n-layer",
        "2",
        "--n-head",
        "2",
        "--n-embd",
        "32",
        "--block-size",
        "16",
        "--batch-size",
        "4",
        "--eval-interval",
        "5",
        "--eval-iters",
        "2",
        "--threads",
        "2",
        "--json",
    ];
    all.extend_from_slice(args);
    json_of(&kindling(&all))
}

#[test]
fn llama_and_gpt2_train_leave_a_loadable_hf_folder_and_resume_exactly() {
    let (corpus, tok) = corpus_and_tokenizer();
    let (c, t) = (corpus.to_str().unwrap(), tok.to_str().unwrap());
    for arch in ["llama", "gpt2"] {
        let run = dir(arch);
        let r = run.to_str().unwrap();
        let v = train(&[
            "--arch",
            arch,
            "--tokenizer",
            t,
            "--data",
            c,
            "--max-iters",
            "15",
            "--out",
            r,
            "--warmup-iters",
            "2",
            "--lr",
            "3e-3",
        ]);
        assert_eq!(v["vocab_size"], 300, "{v}");
        assert!(
            v["val_loss"].as_f64().unwrap() < (300f64).ln(),
            "{arch} learned nothing: {v}"
        );
        assert!(run.join("hf/config.json").is_file() && run.join("hf/tokenizer.json").is_file());
        // The run directory is a model for every --model flag.
        let n = json_of(&kindling(&[
            "next-token",
            "--model",
            r,
            "--text",
            "the red cat",
            "--top",
            "2",
            "--json",
        ]));
        assert_eq!(n["top"].as_array().unwrap().len(), 2);

        // Interrupted after 7 iterations, resumed: the same metrics as in one go.
        let split = dir(&format!("{arch}-split"));
        let s = split.to_str().unwrap();
        let out = kindling(&[
            "train",
            "lm",
            "--n-layer",
            "2",
            "--n-head",
            "2",
            "--n-embd",
            "32",
            "--block-size",
            "16",
            "--batch-size",
            "4",
            "--eval-interval",
            "5",
            "--eval-iters",
            "2",
            "--threads",
            "2",
            "--arch",
            arch,
            "--tokenizer",
            t,
            "--data",
            c,
            "--max-iters",
            "15",
            "--out",
            s,
            "--interrupt-after",
            "7",
            "--warmup-iters",
            "2",
            "--lr",
            "3e-3",
        ]);
        assert!(String::from_utf8_lossy(&out.stderr).contains("continue with --resume"));
        let w = train(&[
            "--arch",
            arch,
            "--tokenizer",
            t,
            "--data",
            c,
            "--max-iters",
            "15",
            "--out",
            s,
            "--resume",
            "--warmup-iters",
            "2",
            "--lr",
            "3e-3",
        ]);
        assert_eq!(w["val_loss"], v["val_loss"], "{arch}: resumed run differs");
        let strip = |p: PathBuf| -> Vec<serde_json::Value> {
            std::fs::read_to_string(p)
                .unwrap()
                .lines()
                .map(|l| {
                    let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
                    v.as_object_mut()
                        .unwrap()
                        .retain(|k, _| k.ends_with("loss") || k == "iter");
                    v
                })
                .collect()
        };
        assert_eq!(
            strip(run.join("metrics.jsonl")),
            strip(split.join("metrics.jsonl"))
        );
        // A changed option is named on --resume.
        let e = kindling(&[
            "train",
            "lm",
            "--arch",
            arch,
            "--tokenizer",
            t,
            "--data",
            c,
            "--out",
            s,
            "--resume",
            "--n-layer",
            "3",
            "--n-head",
            "2",
            "--n-embd",
            "32",
            "--block-size",
            "16",
            "--warmup-iters",
            "2",
            "--lr",
            "3e-3",
        ]);
        let err = String::from_utf8_lossy(&e.stderr);
        assert!(
            !e.status.success() && err.contains("--n-layer 3 (run: 2)"),
            "{err}"
        );

        // A new run over it is refused; --force moves it aside, nothing is lost.
        let again = kindling(&[
            "train",
            "lm",
            "--arch",
            arch,
            "--tokenizer",
            t,
            "--data",
            c,
            "--out",
            r,
            "--max-iters",
            "2",
        ]);
        assert!(
            !again.status.success()
                && String::from_utf8_lossy(&again.stderr).contains("already holds results")
        );
        if arch == "llama" {
            let forced = train(&[
                "--arch",
                arch,
                "--tokenizer",
                t,
                "--data",
                c,
                "--max-iters",
                "2",
                "--out",
                r,
                "--force",
            ]);
            assert_eq!(forced["train_tokens"], v["train_tokens"]);
            let aside = PathBuf::from(format!("{r}.1"));
            assert!(
                aside.join("hf/config.json").is_file() && aside.join("metrics.jsonl").is_file()
            );
            std::fs::remove_dir_all(&aside).ok();
        }
    }
}

#[test]
fn bad_train_lm_flags_are_named() {
    let e = kindling(&["train", "lm", "--arch", "rnn", "--max-iters", "1"]);
    assert!(String::from_utf8_lossy(&e.stderr).contains("--arch `rnn`"));
    let e = kindling(&[
        "train",
        "lm",
        "--tokenizer",
        "/nonexistent/tok.json",
        "--max-iters",
        "1",
        "--out",
        dir("bad").to_str().unwrap(),
    ]);
    assert!(
        String::from_utf8_lossy(&e.stderr).contains("/nonexistent/tok.json"),
        "{}",
        String::from_utf8_lossy(&e.stderr)
    );
}
