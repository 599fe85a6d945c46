//! End-to-end `kindling lab word2vec` and `kindling lab analogy` on a few
//! thousand words of the Lee news corpus (min-count 1): the vectors file
//! loads back, the test sets are scored with every question and pair
//! accounted for, one thread repeats exactly, and bad inputs give one-line
//! errors. The word-vectors data set is fetched from the shared data beside
//! the repository; without it the test says so and stops.

mod common;
use common::{error_line, json_of, kindling_with_data, shared_data};

use std::path::{Path, PathBuf};
use std::process::Output;

struct Scratch(PathBuf);

impl Scratch {
    /// A directory of its own per test (the tests run in parallel).
    fn new(name: &str) -> Scratch {
        let d = std::env::temp_dir().join(format!("kindling-w2v-{name}-{}", std::process::id()));
        std::fs::remove_dir_all(&d).ok();
        std::fs::create_dir_all(d.join("data")).unwrap();
        Scratch(d)
    }

    fn path(&self, name: &str) -> String {
        self.0.join(name).to_str().unwrap().to_string()
    }

    fn kindling(&self, args: &[&str]) -> Output {
        kindling_with_data(&self.0.join("data"), args)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        std::fs::remove_dir_all(&self.0).ok();
    }
}

/// Lowercase runs of 2-15 letters: the tokens the command should count.
fn count_tokens(text: &str) -> usize {
    text.split(|c: char| !c.is_alphabetic())
        .filter(|w| (2..=15).contains(&w.chars().count()))
        .count()
}

#[test]
fn word2vec_trains_saves_loads_and_scores_a_small_corpus() {
    let Some(shared) = shared_data("word-vectors") else {
        return;
    };
    let s = Scratch::new("train");
    let fetched = s.kindling(&[
        "data",
        "fetch",
        "word-vectors",
        "--from",
        shared.to_str().unwrap(),
    ]);
    assert!(
        fetched.status.success(),
        "{}",
        String::from_utf8_lossy(&fetched.stderr)
    );

    // The first 15 Lee news documents: a few thousand words.
    let lee = std::fs::read_to_string(s.0.join("data/word-vectors/lee_background.cor")).unwrap();
    let text: String = lee.lines().take(15).map(|l| format!("{l}\n")).collect();
    let corpus = s.path("corpus.txt");
    std::fs::write(&corpus, &text).unwrap();
    let words = count_tokens(&text);
    assert!((2000..10_000).contains(&words), "{words}");

    let train = |out: &str, extra: &[&str]| {
        let mut args = vec![
            "lab",
            "word2vec",
            "--corpus",
            &corpus,
            "--min-count",
            "1",
            "--dim",
            "16",
            "--epochs",
            "2",
            "--threads",
            "1",
            "--json",
            "--out",
            out,
        ];
        args.extend_from_slice(extra);
        s.kindling(&args)
    };
    let out_a = s.path("run-a");
    let dump = s.path("dump.txt");
    let v = json_of(&train(&out_a, &["--dump-corpus", &dump]));
    assert_eq!(v["words"].as_u64(), Some(words as u64), "{v}");
    let vocab = v["vocab"].as_u64().unwrap() as usize;
    assert!(vocab > 500 && vocab < words, "{v}");
    assert!(v["words_per_sec"].as_f64().unwrap() > 0.0);
    // Every one of the 19,544 questions is answered or skipped.
    let answered = v["analogy_answered"].as_u64().unwrap();
    let skipped = v["analogy_skipped"].as_u64().unwrap();
    assert_eq!(answered + skipped, 19_544, "{v}");
    let acc = v["analogy_accuracy"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&acc));
    assert_eq!(
        v["wordsim_pairs"].as_u64().unwrap() + v["wordsim_skipped"].as_u64().unwrap(),
        353
    );
    assert_eq!(
        v["simlex_pairs"].as_u64().unwrap() + v["simlex_skipped"].as_u64().unwrap(),
        999
    );
    assert_eq!(v["analogy_sections"].as_array().unwrap().len(), 14);
    for key in ["wordsim_spearman", "simlex_spearman"] {
        let r = &v[key];
        assert!(
            r.is_null() || r.as_f64().is_some_and(|r| (-1.0..=1.0).contains(&r)),
            "{key}: {r}"
        );
    }
    let png = std::fs::read(Path::new(&out_a).join("word_pairs.png")).unwrap();
    assert_eq!(&png[1..4], b"PNG");

    // The dumped corpus holds the same tokens, one document a line.
    let dumped = std::fs::read_to_string(&dump).unwrap();
    assert_eq!(dumped.lines().count(), 15);
    assert_eq!(dumped.split_whitespace().count(), words);

    // The vectors file: word2vec text format, one line per vocabulary word.
    let vectors = Path::new(&out_a).join("vectors.txt");
    let saved = std::fs::read_to_string(&vectors).unwrap();
    let mut lines = saved.lines();
    assert_eq!(lines.next(), Some(format!("{vocab} 16").as_str()));
    let rows: Vec<&str> = lines.collect();
    assert_eq!(rows.len(), vocab);
    assert!(rows.iter().all(|r| r.split(' ').count() == 17));
    assert!(
        rows[0].starts_with("the "),
        "most frequent first: {}",
        rows[0]
    );

    // One thread and the same seed: the same vectors, byte for byte.
    let out_b = s.path("run-b");
    json_of(&train(&out_b, &[]));
    let again = std::fs::read_to_string(Path::new(&out_b).join("vectors.txt")).unwrap();
    assert!(again == saved, "a one-thread run is not repeatable");

    // A finished run is not overwritten without --force.
    let line = error_line(&train(&out_a, &[]));
    assert!(line.contains("already holds results"), "{line}");

    // lab analogy: the top answers, best first, never a question word.
    let vp = vectors.to_str().unwrap();
    let a = json_of(&s.kindling(&[
        "lab",
        "analogy",
        "--vectors",
        vp,
        "--a",
        "the",
        "--b",
        "of",
        "--c",
        "and",
        "--json",
    ]));
    let top = a["top"].as_array().unwrap();
    assert_eq!(top.len(), 5);
    let cos: Vec<f64> = top.iter().map(|t| t["cosine"].as_f64().unwrap()).collect();
    assert!(cos.windows(2).all(|w| w[0] >= w[1]), "{cos:?}");
    assert!(cos.iter().all(|c| (-1.0001..=1.0001).contains(c)));
    for t in top {
        let w = t["word"].as_str().unwrap();
        assert!(!["the", "of", "and"].contains(&w), "{w}");
    }

    // Scoring the saved vectors again gives the training run's figures.
    let e = json_of(&s.kindling(&["lab", "analogy", "--vectors", vp, "--evaluate", "--json"]));
    for key in [
        "analogy_accuracy",
        "analogy_skipped",
        "wordsim_pairs",
        "simlex_pairs",
    ] {
        assert_eq!(e[key], v[key], "{key}");
    }

    // An unknown word names the word and the file.
    let line = error_line(&s.kindling(&[
        "lab",
        "analogy",
        "--vectors",
        vp,
        "--a",
        "the",
        "--b",
        "zzzqqq",
        "--c",
        "and",
    ]));
    assert!(
        line.contains("--b zzzqqq") && line.contains("not in the vocabulary") && line.contains(vp),
        "{line}"
    );
}

#[test]
fn bad_inputs_give_one_line_errors() {
    let s = Scratch::new("errors");
    // Test files that exist, so the corpus is what fails.
    let q = s.path("q.txt");
    std::fs::write(&q, ": s\na b c d\n").unwrap();
    let pairs = s.path("p.tsv");
    std::fs::write(&pairs, "a\tb\t1\n").unwrap();
    let tests = ["--questions", &q, "--wordsim", &pairs, "--simlex", &pairs];

    let empty = s.path("empty.txt");
    std::fs::write(&empty, "12 34\n\n!!\n").unwrap();
    let out = s.path("run");
    let mut args = vec!["lab", "word2vec", "--corpus", &empty, "--out", &out];
    args.extend_from_slice(&tests);
    let line = error_line(&s.kindling(&args));
    assert!(
        line.contains("--corpus") && line.contains(&empty) && line.contains("empty"),
        "{line}"
    );

    let missing = s.path("nope.txt");
    let mut args = vec!["lab", "word2vec", "--corpus", &missing, "--out", &out];
    args.extend_from_slice(&tests);
    let line = error_line(&s.kindling(&args));
    assert!(
        line.contains("--corpus") && line.contains("file not found"),
        "{line}"
    );

    let mut args = vec![
        "lab", "word2vec", "--window", "0", "--corpus", &q, "--out", &out,
    ];
    args.extend_from_slice(&tests);
    let line = error_line(&s.kindling(&args));
    assert!(line.contains("--window must be at least 1"), "{line}");

    // The test sets come from the word-vectors data set, not fetched here.
    let line = error_line(&s.kindling(&["lab", "word2vec", "--corpus", &q, "--out", &out]));
    assert!(line.contains("kindling data fetch word-vectors"), "{line}");

    let line = error_line(&s.kindling(&[
        "lab",
        "analogy",
        "--vectors",
        &missing,
        "--a",
        "x",
        "--b",
        "y",
        "--c",
        "z",
    ]));
    assert!(
        line.contains("--vectors") && line.contains("file not found"),
        "{line}"
    );

    let bad = s.path("bad.txt");
    std::fs::write(&bad, "2 3\nking 1 2 3\n").unwrap();
    let line = error_line(&s.kindling(&[
        "lab",
        "analogy",
        "--vectors",
        &bad,
        "--a",
        "x",
        "--b",
        "y",
        "--c",
        "z",
    ]));
    assert!(line.contains("1 words, the header says 2"), "{line}");
}
