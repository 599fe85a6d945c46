//! `eval-lm perplexity`, `choice` and `contamination` end to end on the
//! tiny random chat model, with the numbers checked against `next-token`
//! (a different path through the model: the last position of a cached
//! forward); and, when SmolLM2-135M-Instruct is beside the repository,
//! against transformers' figures from `tools/eval_lm_reference.py`.

mod common;
use common::{json_of, kindling};
use serde_json::Value;
use std::path::{Path, PathBuf};

fn tiny_chat() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/tiny-chat")
        .to_str()
        .unwrap()
        .to_string()
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("kindling-cli-eval-lm-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d.join(name)
}

fn write(name: &str, text: &str) -> String {
    let p = tmp(name);
    std::fs::write(&p, text).unwrap();
    p.to_str().unwrap().to_string()
}

fn run_json(args: &[&str]) -> Value {
    json_of(&kindling(args))
}

/// The ids and token strings of `text` under `tokenizer`.
fn tokens(tokenizer: &str, text: &str) -> (Vec<u64>, Vec<String>) {
    let v = run_json(&[
        "tokenize",
        "--tokenizer",
        tokenizer,
        "--text",
        text,
        "--json",
    ]);
    let ids = v["ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i.as_u64().unwrap())
        .collect();
    let toks = v["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap().to_string())
        .collect();
    (ids, toks)
}

/// log p(next | text) by `next-token` over the whole vocabulary; also
/// checks that `text` encodes to `want_ids`.
fn next_token_log_prob(model: &str, text: &str, want_ids: &[u64], next: u64) -> f64 {
    let v = run_json(&[
        "next-token",
        "--model",
        model,
        "--text",
        text,
        "--top",
        "320",
        "--json",
    ]);
    let ids: Vec<u64> = v["ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i.as_u64().unwrap())
        .collect();
    assert_eq!(ids, want_ids, "{text:?} encodes to other ids alone");
    let top = v["top"].as_array().unwrap();
    assert_eq!(top.len(), 320);
    let p = top
        .iter()
        .find(|t| t["id"] == next)
        .expect("every id is listed")["prob"]
        .as_f64()
        .unwrap();
    p.ln()
}

const TEXT: &str = "the cat sat on the mat, and the dog ran.";

fn perplexity(text_file: &str, max_length: &str, stride: &str) -> Value {
    run_json(&[
        "eval-lm",
        "perplexity",
        "--model",
        &tiny_chat(),
        "--text",
        text_file,
        "--max-length",
        max_length,
        "--stride",
        stride,
        "--json",
    ])
}

#[test]
fn perplexity_of_one_window_is_exp_of_the_mean_next_token_nll() {
    let model = tiny_chat();
    let (ids, toks) = tokens(&model, TEXT);
    let n = ids.len();
    assert!(n > 20, "{n} tokens");
    // Σ -log p(x_t | x_<t), one next-token run per prefix.
    let mut nll = 0.0;
    for t in 1..n {
        nll -= next_token_log_prob(&model, &toks[..t].concat(), &ids[..t], ids[t]);
    }
    let file = write("text.txt", TEXT);
    let all = n.to_string();
    let v = perplexity(&file, &all, &all);
    assert_eq!(
        (
            v["tokens"].as_u64(),
            v["scored"].as_u64(),
            v["windows"].as_u64()
        ),
        (Some(n as u64), Some(n as u64 - 1), Some(1))
    );
    let mean = nll / (n - 1) as f64;
    let got = v["nats_per_token"].as_f64().unwrap();
    assert!((got - mean).abs() < 1e-4, "{got} vs next-token's {mean}");
    assert!((v["perplexity"].as_f64().unwrap() - mean.exp()).abs() < 1e-3 * mean.exp());
}

#[test]
fn a_smaller_stride_scores_every_token_once_and_changes_the_result() {
    let file = write("text2.txt", TEXT);
    let n = tokens(&tiny_chat(), TEXT).0.len() as u64;
    // Disjoint chunks of 10: each chunk's first token is context only.
    let chunks = perplexity(&file, "10", "10");
    let windows = n.div_ceil(10);
    assert_eq!(chunks["windows"].as_u64(), Some(windows));
    assert_eq!(chunks["scored"].as_u64(), Some(n - windows));
    // Windows of 10 every 4: all tokens but the first, once each.
    let slid = perplexity(&file, "10", "4");
    assert_eq!(slid["scored"].as_u64(), Some(n - 1));
    assert_eq!(slid["windows"].as_u64(), Some((n - 10).div_ceil(4) + 1));
    let (a, b) = (
        chunks["nats_per_token"].as_f64().unwrap(),
        slid["nats_per_token"].as_f64().unwrap(),
    );
    assert!((a - b).abs() > 1e-6, "{a} {b}");
    // The default stride is half the window.
    let half = run_json(&[
        "eval-lm",
        "perplexity",
        "--model",
        &tiny_chat(),
        "--text",
        &file,
        "--max-length",
        "10",
        "--json",
    ]);
    assert_eq!(half["stride"].as_u64(), Some(5));
}

const TASK: &str = r#"{"question": "What is 2+2?", "choices": ["4", "22", "four"], "answer": 0}
{"question": "Which colour is the sky on a clear day?", "choices": ["green", "blue"], "answer": 1, "subject": "science"}
{"question": "中国的首都是哪里？", "choices": ["北京", "上海", "Beijing city", "广州"], "answer": 0, "subject": "geography"}
"#;

fn argmax(v: &[f64]) -> usize {
    let mut best = 0;
    for (i, &x) in v.iter().enumerate() {
        if x > v[best] {
            best = i;
        }
    }
    best
}

#[test]
fn choice_reports_log_likelihoods_and_acc_norm_divides_by_characters() {
    let model = tiny_chat();
    let task = write("task.jsonl", TASK);
    let v = run_json(&[
        "eval-lm", "choice", "--model", &model, "--task", &task, "--json",
    ]);
    let items = v["items"].as_array().unwrap();
    assert_eq!(
        (v["n"].as_u64(), v["shots"].as_u64(), items.len()),
        (Some(3), Some(0), 3)
    );
    let texts: Vec<Vec<&str>> = vec![
        vec!["4", "22", "four"],
        vec!["green", "blue"],
        vec!["北京", "上海", "Beijing city", "广州"],
    ];
    let answers = [0, 1, 0];
    let (mut acc, mut acc_norm) = (0.0, 0.0);
    for (k, item) in items.iter().enumerate() {
        let choices = item["choices"].as_array().unwrap();
        assert_eq!(choices.len(), texts[k].len());
        let mut ll = Vec::new();
        let mut per_char = Vec::new();
        for (c, text) in choices.iter().zip(&texts[k]) {
            assert_eq!(c["text"], *text);
            // lm-eval's len(choice): characters, not bytes, without the space.
            assert_eq!(c["chars"].as_u64(), Some(text.chars().count() as u64));
            assert_eq!(c["bytes"].as_u64(), Some(text.len() as u64));
            let l = c["loglik"].as_f64().unwrap();
            assert!(l < 0.0 && c["tokens"].as_u64().unwrap() >= 1);
            ll.push(l);
            per_char.push(l / text.chars().count() as f64);
        }
        let (pred, pred_norm) = (argmax(&ll), argmax(&per_char));
        assert_eq!(item["pred"].as_u64(), Some(pred as u64));
        assert_eq!(item["pred_norm"].as_u64(), Some(pred_norm as u64));
        assert_eq!(item["answer"].as_u64(), Some(answers[k] as u64));
        assert_eq!(item["acc"].as_u64(), Some(u64::from(pred == answers[k])));
        assert_eq!(
            item["acc_norm"].as_u64(),
            Some(u64::from(pred_norm == answers[k]))
        );
        acc += f64::from(u8::from(pred == answers[k])) / 3.0;
        acc_norm += f64::from(u8::from(pred_norm == answers[k])) / 3.0;
    }
    assert!((v["acc"].as_f64().unwrap() - acc).abs() < 1e-12);
    assert!((v["acc_norm"].as_f64().unwrap() - acc_norm).abs() < 1e-12);
    let se = (acc * (1.0 - acc) / 3.0).sqrt();
    assert!((v["acc_stderr"].as_f64().unwrap() - se).abs() < 1e-12);

    // One choice by next-token: " 4" after "Question: What is 2+2?\nAnswer:".
    let context = "Question: What is 2+2?\nAnswer:";
    let (ctx_ids, _) = tokens(&model, context);
    let (whole, whole_toks) = tokens(&model, &format!("{context} 4"));
    assert_eq!(whole[..ctx_ids.len()], ctx_ids[..]);
    let cont = &whole[ctx_ids.len()..];
    assert_eq!(
        items[0]["choices"][0]["tokens"].as_u64(),
        Some(cont.len() as u64)
    );
    assert_eq!(
        items[0]["context_tokens"].as_u64(),
        Some(ctx_ids.len() as u64)
    );
    let mut ll = 0.0;
    for j in 0..cont.len() {
        let upto = ctx_ids.len() + j;
        ll += next_token_log_prob(
            &model,
            &whole_toks[..upto].concat(),
            &whole[..upto],
            whole[upto],
        );
    }
    let got = items[0]["choices"][0]["loglik"].as_f64().unwrap();
    assert!((got - ll).abs() < 1e-4, "{got} vs next-token's {ll}");
}

#[test]
fn few_shot_prompts_are_longer_and_seeded() {
    let model = tiny_chat();
    let task = write("task-shots.jsonl", TASK);
    let run = |shots: &str, seed: &str| {
        run_json(&[
            "eval-lm", "choice", "--model", &model, "--task", &task, "--shots", shots, "--seed",
            seed, "--json",
        ])
    };
    let zero = run("0", "1");
    let two = run("2", "1");
    for k in 0..3 {
        let (z, t) = (
            zero["items"][k]["context_tokens"].as_u64().unwrap(),
            two["items"][k]["context_tokens"].as_u64().unwrap(),
        );
        assert!(t > z + 10, "item {k}: {t} tokens with 2 shots, {z} without");
    }
    assert_eq!(two["items"], run("2", "1")["items"]);
    // With one shot out of two others, some seed picks the other example.
    let one: Vec<u64> = (0..6)
        .map(|s| {
            run("1", &s.to_string())["items"][0]["context_tokens"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert!(one.iter().any(|&c| c != one[0]), "{one:?}");
    let limited = run_json(&[
        "eval-lm", "choice", "--model", &model, "--task", &task, "--limit", "2", "--json",
    ]);
    assert_eq!(limited["n"].as_u64(), Some(2));
}

const QUESTION: &str = "Which scientist, working in a small patent office in Bern, published the special theory of relativity in the year 1905?";

#[test]
fn contamination_finds_a_planted_13_gram_and_not_a_12_gram() {
    let task = write(
        "task-c.jsonl",
        &format!(
            "{{\"question\": \"{QUESTION}\", \"choices\": [\"Albert Einstein\", \"Isaac Newton\"], \"answer\": 0}}\n{{\"question\": \"What is 2+2?\", \"choices\": [\"4\", \"5\"], \"answer\": 0}}\n"
        ),
    );
    let thirteen = "in a small patent office in Bern, published the special theory of relativity";
    let twelve = "a small patent office in Bern, published the special theory of relativity";
    let check = |corpus: &str| {
        let file = write("corpus.txt", corpus);
        run_json(&[
            "eval-lm",
            "contamination",
            "--task",
            &task,
            "--corpus",
            &file,
            "--json",
        ])
    };
    let v = check(&format!(
        "Some text.\nHe worked in {} and more.\n",
        thirteen.to_uppercase()
    ));
    assert_eq!(v["contaminated"].as_u64(), Some(1));
    assert_eq!(v["matches"][0]["index"].as_u64(), Some(0));
    assert_eq!(
        v["matches"][0]["ngram"],
        "in a small patent office in bern published the special theory of relativity"
    );
    assert_eq!(v["matches"][0]["corpus_line"].as_u64(), Some(2));
    assert_eq!(v["fraction"].as_f64(), Some(0.5));
    // The short question (3 words) counts only when it occurs whole.
    assert_eq!(v["short_items"].as_u64(), Some(1));
    let v = check(&format!("Some text.\nHe worked at {twelve} and more.\n"));
    assert_eq!(v["contaminated"].as_u64(), Some(0), "{v}");
    assert_eq!(check("what is 2\n")["contaminated"].as_u64(), Some(0));
    let v = check("q: what is 2+2? 4 5\n");
    assert_eq!(v["matches"][0]["index"].as_u64(), Some(1));
    assert_eq!(v["matches"][0]["ngram"], "what is 22");
    // A choice ("Albert Einstein") alone says nothing.
    assert_eq!(check("albert einstein\n")["contaminated"].as_u64(), Some(0));
}

fn error_of(args: &[&str]) -> String {
    let out = kindling(args);
    assert!(!out.status.success(), "{args:?} succeeded");
    let e = String::from_utf8_lossy(&out.stderr).trim_end().to_string();
    let last = e.lines().last().unwrap_or("").to_string();
    assert!(last.starts_with("error: "), "{e}");
    last
}

#[test]
fn bad_input_gives_one_line_errors_naming_the_file_line_field_or_flag() {
    let model = tiny_chat();
    let ok = r#"{"question": "q", "choices": ["a", "b"], "answer": 0}"#;
    for (name, bad, want) in [
        (
            "missing.jsonl",
            r#"{"question": "q", "choices": ["a", "b"]}"#,
            "line 2: no `answer` field",
        ),
        (
            "range.jsonl",
            r#"{"question": "q", "choices": ["a", "b"], "answer": 2}"#,
            "line 2: `answer` 2 is out of range",
        ),
        (
            "empty.jsonl",
            r#"{"question": "q", "choices": [], "answer": 0}"#,
            "line 2: `choices` needs at least 2 answers",
        ),
        (
            "blank.jsonl",
            r#"{"question": "q", "choices": ["a", ""], "answer": 0}"#,
            "line 2: `choices` 1 is empty",
        ),
    ] {
        let file = write(name, &format!("{ok}\n{bad}\n"));
        let e = error_of(&["eval-lm", "choice", "--model", &model, "--task", &file]);
        assert!(e.contains(&format!("--task: {file} {want}")), "{e}");
        let e = error_of(&[
            "eval-lm",
            "contamination",
            "--task",
            &file,
            "--corpus",
            &file,
        ]);
        assert!(e.contains(&format!("{file} {want}")), "{e}");
    }
    let task = write("good.jsonl", &format!("{ok}\n{ok}\n"));
    let e = error_of(&[
        "eval-lm", "choice", "--model", &model, "--task", &task, "--shots", "2",
    ]);
    assert!(
        e.contains("--shots 2 needs more items than the task's 2"),
        "{e}"
    );
    let e = error_of(&[
        "eval-lm", "choice", "--model", &model, "--task", &task, "--limit", "0",
    ]);
    assert_eq!(e, "error: --limit must be at least 1");
    let text = write("t.txt", TEXT);
    let ppl = |extra: &[&str]| {
        let mut args = vec!["eval-lm", "perplexity", "--model", &model, "--text", &text];
        args.extend_from_slice(extra);
        error_of(&args)
    };
    assert_eq!(
        ppl(&["--stride", "0"]),
        "error: --stride must be at least 1"
    );
    assert!(ppl(&["--max-length", "8", "--stride", "9"])
        .starts_with("error: --stride 9 is larger than --max-length 8"));
    assert!(ppl(&["--max-length", "1"]).starts_with("error: --max-length must be at least 2"));
    assert!(ppl(&["--max-length", "513"])
        .contains("--max-length 513 is longer than the model's context of 512"));
    let e = error_of(&[
        "eval-lm",
        "perplexity",
        "--model",
        &model,
        "--text",
        "/nonexistent/x.txt",
    ]);
    assert!(e.contains("--text: /nonexistent/x.txt"), "{e}");
    let short = write("short.txt", "t");
    let e = error_of(&["eval-lm", "perplexity", "--model", &model, "--text", &short]);
    assert!(e.contains("1 token(s); perplexity needs at least 2"), "{e}");
    let e = error_of(&[
        "eval-lm",
        "perplexity",
        "--model",
        &model,
        "--corpus",
        "nope",
    ]);
    assert!(e.contains("--corpus nope: unknown corpus"), "{e}");
    let e = error_of(&[
        "eval-lm",
        "contamination",
        "--task",
        &task,
        "--corpus",
        &text,
        "--n",
        "0",
    ]);
    assert_eq!(e, "error: --n must be at least 1");
    let e = error_of(&[
        "eval-lm",
        "contamination",
        "--task",
        &task,
        "--corpus",
        "/nonexistent/c.txt",
    ]);
    assert!(e.contains("--corpus /nonexistent/c.txt"), "{e}");
}

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

/// transformers' numbers from `tools/eval_lm_reference.py`: the same
/// windows and the same choice log-likelihoods, with the weights of the
/// same GGUF dequantized to f32 on both sides.
#[test]
fn smollm2_perplexity_and_choices_match_transformers() {
    let Some(model) = smollm2() else { return };
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/eval-lm");
    let reference: Value = serde_json::from_str(
        &std::fs::read_to_string(fixtures.join("smollm2-reference.json")).unwrap(),
    )
    .unwrap();
    let want = &reference["perplexity"];
    let text = fixtures.join("shakespeare-excerpt.txt");
    let got = run_json(&[
        "eval-lm",
        "perplexity",
        "--model",
        &model,
        "--text",
        text.to_str().unwrap(),
        "--max-length",
        "256",
        "--stride",
        "128",
        "--threads",
        "2",
        "--json",
    ]);
    for key in ["tokens", "scored", "windows"] {
        assert_eq!(got[key], want[key], "{key}");
    }
    let (g, w) = (
        got["nats_per_token"].as_f64().unwrap(),
        want["nats_per_token"].as_f64().unwrap(),
    );
    // Logits agree to ~2e-6 of the largest (llama_parity); measured here
    // within 1e-4, so 2e-3 only allows for other machines' summation order.
    assert!((g - w).abs() < 2e-3, "nats/token {g} vs transformers {w}");

    let task = fixtures.join("smollm2-3-items.jsonl");
    let got = run_json(&[
        "eval-lm",
        "choice",
        "--model",
        &model,
        "--task",
        task.to_str().unwrap(),
        "--threads",
        "2",
        "--json",
    ]);
    let lines: Vec<u64> = reference["choice"]["test_lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_u64().unwrap())
        .collect();
    assert_eq!(lines.len(), 3);
    for (k, line) in lines.iter().enumerate() {
        let want = &reference["choice"]["items"][*line as usize - 1];
        let got = &got["items"][k];
        assert_eq!(got["context_tokens"], want["context_tokens"], "line {line}");
        assert_eq!(
            (&got["pred"], &got["pred_norm"]),
            (&want["pred"], &want["pred_norm"]),
            "line {line}"
        );
        for (g, w) in got["choices"]
            .as_array()
            .unwrap()
            .iter()
            .zip(want["choices"].as_array().unwrap())
        {
            assert_eq!(
                (&g["text"], &g["tokens"], &g["chars"]),
                (&w["text"], &w["tokens"], &w["chars"])
            );
            let (gl, wl) = (g["loglik"].as_f64().unwrap(), w["loglik"].as_f64().unwrap());
            assert!(
                (gl - wl).abs() < 2e-3 * w["tokens"].as_f64().unwrap(),
                "line {line} {}: {gl} vs {wl}",
                w["text"]
            );
        }
    }
}
