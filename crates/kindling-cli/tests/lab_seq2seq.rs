//! End-to-end `kindling lab seq2seq` at tiny settings: the files and JSON of
//! a run, an attention model that learns to copy, and the one-line errors
//! for bad flags.

mod common;
use common::{json_of, kindling};

use std::path::{Path, PathBuf};
use std::process::Output;

fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("kindling-seq2seq-{name}-{}", std::process::id()));
    std::fs::remove_dir_all(&d).ok();
    d
}

fn seq2seq(out: &Path, extra: &[&str]) -> Output {
    let mut args = vec![
        "lab",
        "seq2seq",
        "--threads",
        "1",
        "--json",
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    kindling(&args)
}

/// The one-line error of a failed run.
fn error_line(out: &Output) -> String {
    assert!(!out.status.success(), "should fail");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let line = stderr
        .lines()
        .find(|l| l.starts_with("error:"))
        .unwrap_or_else(|| panic!("no error line in: {stderr}"))
        .to_string();
    assert_eq!(
        stderr.lines().filter(|l| l.starts_with("error")).count(),
        1,
        "{stderr}"
    );
    line
}

const TINY: &[&str] = &[
    "--lengths",
    "3,5",
    "--steps",
    "4",
    "--hidden",
    "8",
    "--batch-size",
    "8",
    "--eval-sequences",
    "20",
];

fn png(path: &Path) -> bool {
    std::fs::read(path).is_ok_and(|b| b.len() > 8 && &b[1..4] == b"PNG")
}

#[test]
fn a_tiny_run_writes_results_plot_and_one_run_per_model_and_length() {
    let dir = temp_dir("tiny");
    let mut args = TINY.to_vec();
    args.extend(["--cell", "lstm"]);
    let r = json_of(&seq2seq(&dir, &args));
    assert_eq!(r["task"], "reverse");
    assert_eq!(r["cell"], "lstm");
    assert_eq!(r["accuracy"], "token");
    let results = r["results"].as_array().unwrap();
    assert_eq!(results.len(), 2, "{r}");
    for (row, length) in results.iter().zip([3, 5]) {
        assert_eq!(row["length"], length);
        for key in [
            "plain_accuracy",
            "attention_accuracy",
            "plain_sequence_accuracy",
            "attention_sequence_accuracy",
        ] {
            let v = row[key].as_f64().unwrap_or_else(|| panic!("{key}: {row}"));
            assert!((0.0..=1.0).contains(&v), "{key}: {row}");
        }
        // Every whole sequence right means every token right.
        assert!(row["plain_sequence_accuracy"].as_f64() <= row["plain_accuracy"].as_f64());
        assert!(
            row["attention_parameters"].as_u64().unwrap()
                > row["plain_parameters"].as_u64().unwrap()
        );
        for variant in ["plain", "attention"] {
            let sub = dir.join(format!("length-{length}/{variant}"));
            for file in ["metrics.jsonl", "config.json", "model.safetensors"] {
                assert!(
                    sub.join(file).is_file(),
                    "{} missing",
                    sub.join(file).display()
                );
            }
        }
    }
    assert_eq!(r["heatmap_length"], 5);
    let saved: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("results.json")).unwrap()).unwrap();
    assert_eq!(saved["results"], r["results"]);
    assert!(png(&dir.join("accuracy.png")), "accuracy.png");
    assert!(png(&dir.join("attention.png")), "attention.png");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn attention_model_learns_to_copy_short_sequences() {
    // Checked on seeds 0-3 at these settings: attention 100% of tokens
    // (plain 97-98%); chance is 1/5.
    let dir = temp_dir("copy");
    let r = json_of(&seq2seq(
        &dir,
        &[
            "--task",
            "copy",
            "--lengths",
            "3",
            "--steps",
            "150",
            "--hidden",
            "16",
            "--symbols",
            "5",
            "--eval-sequences",
            "100",
        ],
    ));
    let row = &r["results"][0];
    let acc = row["attention_accuracy"].as_f64().unwrap();
    assert!(acc > 0.9, "{r}");
    assert!(
        row["attention_sequence_accuracy"].as_f64().unwrap() > 0.7,
        "{r}"
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn bad_flags_are_one_line_errors_and_out_is_not_overwritten() {
    let dir = temp_dir("bad");
    let e = error_line(&seq2seq(&dir, &["--task", "sort"]));
    assert!(e.contains("--task") && e.contains("sort"), "{e}");
    let e = error_line(&seq2seq(&dir, &["--lengths", "5,x"]));
    assert!(e.contains("--lengths") && e.contains("`x`"), "{e}");
    let e = error_line(&seq2seq(&dir, &["--lengths", "5,0"]));
    assert!(e.contains("--lengths") && e.contains("got 0"), "{e}");
    let e = error_line(&seq2seq(&dir, &["--lengths", ""]));
    assert!(e.contains("--lengths"), "{e}");
    let e = error_line(&seq2seq(&dir, &["--cell", "transformer"]));
    assert!(e.contains("--cell") && e.contains("transformer"), "{e}");
    let e = error_line(&seq2seq(&dir, &["--steps", "0"]));
    assert!(e.contains("--steps") && e.contains("at least 1"), "{e}");
    assert!(!dir.exists(), "a refused run should not create --out");

    // A finished run is kept unless --force moves it aside.
    json_of(&seq2seq(&dir, TINY));
    let e = error_line(&seq2seq(&dir, TINY));
    assert!(e.contains("--force"), "{e}");
    let mut forced = TINY.to_vec();
    forced.push("--force");
    json_of(&seq2seq(&dir, &forced));
    let aside = PathBuf::from(format!("{}.1", dir.display()));
    assert!(aside.join("results.json").is_file());
    std::fs::remove_dir_all(&dir).ok();
    std::fs::remove_dir_all(&aside).ok();
}
