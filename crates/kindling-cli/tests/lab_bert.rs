//! End-to-end `kindling lab bert`: a tiny BERT on a made-up corpus whose
//! masked characters are predictable only from both sides (two cycles of
//! ten characters), then the 道 study; the one-line errors for bad input;
//! and, when the shared data sits beside the repository, a few steps on
//! the real classical-modern corpus fetched into a temporary data root.

mod common;
use common::{
    error_line, fetch_into, json_of, kindling, kindling_with_data, scratch_dir, shared_data,
};

use std::path::{Path, PathBuf};
use std::process::Output;

/// Windows of two ten-character cycles (every window is distinct), and
/// sentences with 道 in them, one per line.
fn cycle_corpus(dir: &Path) -> PathBuf {
    let mut lines = Vec::new();
    for cycle in ["一二三四五六七八九十", "甲乙丙丁戊己庚辛壬癸"] {
        let c: Vec<char> = cycle.chars().collect();
        for start in 0..10 {
            for len in 4..14 {
                lines.push((0..len).map(|i| c[(start + i) % 10]).collect::<String>());
            }
        }
    }
    for s in ["大道至简", "道可道，非常道", "前面有一条小道", "他说道"] {
        for k in 0..5 {
            lines.push(format!("{s}{}", "一二三四五".chars().nth(k).unwrap()));
        }
    }
    lines.push(String::new()); // blank lines are skipped
    let path = dir.join("corpus.txt");
    std::fs::write(&path, lines.join("\n")).unwrap();
    path
}

fn bert(out: &Path, data: &Path, extra: &[&str]) -> Output {
    let mut args = vec![
        "lab",
        "bert",
        "--threads",
        "2",
        "--json",
        "--data",
        data.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    kindling(&args)
}

const TINY: &[&str] = &[
    "--n-layer",
    "1",
    "--n-head",
    "2",
    "--n-embd",
    "32",
    "--max-len",
    "16",
    "--batch-size",
    "16",
    "--lr",
    "0.003",
    "--min-lr",
    "0.0003",
    "--warmup-steps",
    "20",
    "--eval-every",
    "500",
    "--heldout-percent",
    "20",
    "--min-count",
    "1",
];

fn matrix(v: &serde_json::Value) -> Vec<Vec<f64>> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|r| {
            r.as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap())
                .collect()
        })
        .collect()
}

#[test]
fn tiny_bert_fills_in_masked_characters_and_draws_the_similarity_of_dao() {
    let dir = scratch_dir("lab-bert", "cycles");
    let data = cycle_corpus(&dir);
    let out = dir.join("run");
    let mut args = TINY.to_vec();
    // 1,500 steps: the held-out accuracy was 2%, 13%, 71%, 96% at steps
    // 0, 500, 1000, 1500 (release build, seed 0).
    args.extend(["--steps", "1500"]);
    let v = json_of(&bert(&out, &data, &args));
    let acc = v["masked_token_accuracy"].as_f64().unwrap();
    let unigram = v["unigram_accuracy"].as_f64().unwrap();
    assert!(v["masked_positions"].as_u64().unwrap() >= 20, "{v}");
    // A masked character of a cycle is fixed by its neighbours; the most
    // common character alone is right about one time in twenty.
    assert!(acc > 0.5 && acc > 4.0 * unigram, "{v}");
    let sim = matrix(&v["similarity"]);
    let stat = matrix(&v["static_similarity"]);
    assert_eq!(sim.len(), 12);
    for i in 0..12 {
        assert!((sim[i][i] - 1.0).abs() < 1e-6);
        assert!(
            stat[i].iter().all(|x| (x - 1.0).abs() < 1e-6),
            "static row {i}"
        );
    }
    // Contextual vectors differ from sentence to sentence.
    assert!(sim.iter().flatten().any(|&x| x < 0.999), "{v}");
    assert_eq!(v["static_cross_sense_mean"].as_f64().unwrap(), 1.0);
    assert_eq!(v["gap_by_layer"].as_array().unwrap().len(), 2);
    let png = out.join("similarity.png");
    assert!(std::fs::metadata(&png).unwrap().len() > 10_000, "{png:?}");
    for f in [
        "metrics.jsonl",
        "model.safetensors",
        "results.json",
        "curves.png",
    ] {
        assert!(out.join(f).is_file(), "{f}");
    }
    // The run directory is kept: a second run needs --force.
    let line = error_line(&bert(&out, &data, &args));
    assert!(line.contains("--force"), "{line}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn bad_input_gives_one_line_errors() {
    let dir = scratch_dir("lab-bert", "errors");
    let data = cycle_corpus(&dir);
    let line = error_line(&bert(&dir.join("a"), Path::new("no-such-corpus"), &[]));
    assert!(
        line.contains("no-such-corpus") && line.contains("unknown corpus"),
        "{line}"
    );
    let empty = dir.join("empty.txt");
    std::fs::write(&empty, "\n \n").unwrap();
    let line = error_line(&bert(&dir.join("b"), &empty, &[]));
    assert!(line.contains("empty"), "{line}");
    let line = error_line(&bert(
        &dir.join("c"),
        &data,
        &["--n-embd", "30", "--n-head", "4"],
    ));
    assert!(
        line.contains("--n-embd 30 must be divisible by --n-head 4"),
        "{line}"
    );
    let line = error_line(&bert(&dir.join("d"), &data, &["--mask-prob", "0"]));
    assert!(line.contains("--mask-prob"), "{line}");
    // 道 must be in the vocabulary for the study.
    let no_dao = dir.join("no-dao.txt");
    std::fs::write(
        &no_dao,
        "一二三四五六\n".to_string()
            + &(0..200).map(|i| format!("甲乙丙{i}\n")).collect::<String>(),
    )
    .unwrap();
    let mut args = TINY.to_vec();
    args.extend(["--steps", "2"]);
    let line = error_line(&bert(&dir.join("e"), &no_dao, &args));
    assert!(
        line.contains("道") && line.contains("vocabulary") && line.contains("--min-count"),
        "{line}"
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_few_steps_on_the_classical_modern_corpus() {
    let Some(shared) = shared_data("classical-modern") else {
        return;
    };
    let dir = scratch_dir("lab-bert", "real");
    let root = dir.join("data");
    fetch_into(&root, "classical-modern", &shared);
    let out = dir.join("run");
    let mut args = vec![
        "lab",
        "bert",
        "--json",
        "--threads",
        "2",
        "--data",
        "classical-modern",
        "--limit",
        "4000",
        "--steps",
        "5",
        "--eval-sentences",
        "50",
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(&TINY[..10]);
    let v = json_of(&kindling_with_data(&root, &args));
    assert!(v["train_sentences"].as_u64().unwrap() > 3000, "{v}");
    assert!(v["vocab_size"].as_u64().unwrap() > 500, "{v}");
    let acc = v["masked_token_accuracy"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&acc), "{v}");
    std::fs::remove_dir_all(&dir).ok();
}
