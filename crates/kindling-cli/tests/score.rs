//! `kindling score`: BLEU and chrF of files (the numbers themselves are
//! checked against sacreBLEU in kindling-train's `sacrebleu_parity` test and
//! by `tools/check_sacrebleu.py --kindling`), and its one-line errors.

mod common;
use common::{json_of, kindling};
use std::path::PathBuf;

fn write(name: &str, text: &str) -> String {
    let d = std::env::temp_dir().join(format!("kindling-cli-score-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    let p: PathBuf = d.join(name);
    std::fs::write(&p, text).unwrap();
    p.to_str().unwrap().to_string()
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn scores_files_and_a_perfect_copy_scores_one_hundred() {
    let r = write("ref.txt", "大道至简。\n他说道：走吧。\n");
    let h = write("hyp.txt", "大道至简。\n他说：走吧。\n");
    let out = kindling(&[
        "score",
        "--hyp",
        &h,
        "--ref",
        &r,
        "--tokenize",
        "zh",
        "--metrics",
        "bleu,chrf,chrf++",
        "--json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v = json_of(&out);
    assert_eq!(v["segments"], 2);
    // sacreBLEU 2.6.0 on the same two segments (tools/check_sacrebleu.py checks many more).
    assert!(
        (v["bleu"].as_f64().unwrap() - 71.73586782068507).abs() < 1e-12,
        "{v}"
    );
    assert!(
        (v["chrf"].as_f64().unwrap() - 52.85751922875246).abs() < 1e-12,
        "{v}"
    );
    assert!(
        (v["chrf++"].as_f64().unwrap() - 52.465919719985955).abs() < 1e-12,
        "{v}"
    );
    assert_eq!(v["bleu_detail"]["sys_len"], 11);
    assert_eq!(v["bleu_detail"]["ref_len"], 12);
    // With 13a a Chinese sentence is one word: no bigrams, so BLEU is 0 (as sacreBLEU says).
    let one_word = json_of(&kindling(&["score", "--hyp", &r, "--ref", &r, "--json"]));
    assert_eq!(one_word["bleu"].as_f64().unwrap(), 0.0, "{one_word}");
    let same = json_of(&kindling(&[
        "score",
        "--hyp",
        &r,
        "--ref",
        &r,
        "--tokenize",
        "zh",
        "--json",
    ]));
    assert!(
        (same["bleu"].as_f64().unwrap() - 100.0).abs() < 1e-9,
        "{same}"
    );
    assert!(
        (same["chrf"].as_f64().unwrap() - 100.0).abs() < 1e-9,
        "{same}"
    );
}

#[test]
fn bad_input_gets_one_line_naming_the_flag_or_file() {
    let r = write("ref2.txt", "a b c\n");
    let h = write("hyp2.txt", "a b c\nd e f\n");
    for (args, want) in [
        (
            vec!["score", "--hyp", h.as_str(), "--ref", r.as_str()],
            "--ref",
        ),
        (
            vec![
                "score",
                "--hyp",
                r.as_str(),
                "--ref",
                r.as_str(),
                "--metrics",
                "meteor",
            ],
            "--metrics",
        ),
        (
            vec![
                "score",
                "--hyp",
                r.as_str(),
                "--ref",
                r.as_str(),
                "--tokenize",
                "intl",
            ],
            "--tokenize",
        ),
        (
            vec!["score", "--hyp", "/nonexistent/h.txt", "--ref", r.as_str()],
            "/nonexistent/h.txt",
        ),
    ] {
        let out = kindling(&args);
        assert!(!out.status.success(), "{args:?} succeeded");
        let e = stderr(&out);
        assert!(e.contains(want), "{args:?}: {e}");
        assert_eq!(e.trim().lines().count(), 1, "{args:?}: {e}");
    }
}
