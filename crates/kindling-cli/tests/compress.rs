//! End-to-end: `kindling prune` and `kindling distill` on the tiny random
//! LLaMA of `tests/fixtures/tiny-chat` (2 layers, 32 wide, vocabulary 320)
//! and a small generated text: the sparsity reached in every block matrix,
//! the 2:4 pattern, the zeros kept through a recovery fine-tune, a student
//! pulled toward its teacher, one-line errors, `--out` kept without
//! `--force`, and the `--json` keys documented in docs/compression.md.

mod common;
use common::{json_of, kindling};
use kindling_tensor::safetensors_io;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

fn model() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/tiny-chat")
        .to_str()
        .unwrap()
        .to_string()
}

struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        let d =
            std::env::temp_dir().join(format!("kindling-compress-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        Scratch(d)
    }
    fn path(&self, name: &str) -> String {
        self.0.join(name).to_str().unwrap().to_string()
    }
    /// A text with some structure to learn: sentences drawn from a few
    /// words by a fixed rule.
    fn text(&self) -> String {
        let words = [
            "the", "red", "fox", "runs", "over", "a", "green", "hill", "and", "sleeps",
        ];
        let mut s = String::new();
        for i in 0..1500usize {
            let w = words[(i * 7 + i / 3) % words.len()];
            s.push_str(w);
            s.push(if i % 9 == 8 { '.' } else { ' ' });
            if i % 9 == 8 {
                s.push('\n');
            }
        }
        let path = self.path("text.txt");
        std::fs::write(&path, s).unwrap();
        path
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn error_line(out: &std::process::Output) -> String {
    assert!(!out.status.success(), "expected a failure");
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    let last = stderr.lines().last().unwrap_or("").to_string();
    assert!(last.starts_with("error: "), "{stderr}");
    assert_eq!(
        stderr.lines().filter(|l| l.starts_with("error")).count(),
        1,
        "{stderr}"
    );
    last
}

/// The block linear weights of a saved folder, by name.
fn block_weights(dir: &str) -> HashMap<String, (Vec<usize>, Vec<f32>)> {
    let (tensors, _) = safetensors_io::load(&Path::new(dir).join("model.safetensors")).unwrap();
    tensors
        .into_iter()
        .filter(|(n, t)| n.contains(".layers.") && t.rank() == 2)
        .map(|(n, t)| (n, (t.shape().to_vec(), t.to_vec_f32().unwrap())))
        .collect()
}

fn zeros(v: &[f32]) -> usize {
    v.iter().filter(|&&x| x == 0.0).count()
}

#[test]
fn magnitude_pruning_reaches_the_sparsity_in_every_block_matrix_and_saves_a_loadable_model() {
    let s = Scratch::new("magnitude");
    let text = s.text();
    let out = s.path("p50");
    let j = json_of(&kindling(&[
        "prune",
        "--model",
        &model(),
        "--sparsity",
        "0.5",
        "--out",
        &out,
        "--data",
        &text,
        "--block-size",
        "16",
        "--eval-windows",
        "8",
        "--json",
    ]));
    let weights = block_weights(&format!("{out}/hf"));
    // q, k, v, o, gate, up, down in each of 2 layers.
    assert_eq!(weights.len(), 14);
    assert_eq!(j["pruned_matrices"], 14);
    for (name, (shape, w)) in &weights {
        let n: usize = shape.iter().product();
        assert_eq!(zeros(w), (0.5 * n as f64).round() as usize, "{name}");
    }
    assert!((j["sparsity"].as_f64().unwrap() - 0.5).abs() < 1e-9, "{j}");
    let (dense, pruned) = (
        j["val_loss_dense"].as_f64().unwrap(),
        j["val_loss_pruned"].as_f64().unwrap(),
    );
    assert!(
        dense.is_finite() && pruned.is_finite() && dense != pruned,
        "{j}"
    );
    assert!(j["val_loss_recovered"].is_null(), "no recovery asked: {j}");
    // The embeddings and norms are left as they were.
    let (orig, _) = safetensors_io::load(&Path::new(&model()).join("model.safetensors")).unwrap();
    let (new, _) = safetensors_io::load(&Path::new(&out).join("hf/model.safetensors")).unwrap();
    for (name, t) in &orig {
        if !weights.contains_key(name) {
            assert_eq!(
                t.to_vec_f32().unwrap(),
                new[name].to_vec_f32().unwrap(),
                "{name} must not change"
            );
        }
    }
    let per_matrix = std::fs::read_to_string(format!("{out}/prune.json")).unwrap();
    assert!(per_matrix.contains("model.layers.1.mlp.down_proj.weight"));
    // The result loads wherever a model does.
    let next = json_of(&kindling(&[
        "next-token",
        "--model",
        &out,
        "--text",
        "the red fox",
        "--json",
    ]));
    assert!(next["top"].as_array().is_some_and(|t| !t.is_empty()));
}

#[test]
fn two_four_holds_in_every_group_and_pruned_weights_stay_zero_through_recovery() {
    let s = Scratch::new("twofour");
    let text = s.text();
    let common = [
        "--data",
        &text,
        "--block-size",
        "16",
        "--batch-size",
        "4",
        "--eval-windows",
        "8",
        "--lr",
        "1e-2",
        "--warmup-steps",
        "0",
    ];
    let m = model();
    let plain = s.path("plain");
    let mut args = vec!["prune", "--model", &m, "--method", "2:4", "--out", &plain];
    args.extend(common);
    args.push("--json");
    let j0 = json_of(&kindling(&args));
    let recovered = s.path("recovered");
    let mut args = vec![
        "prune",
        "--model",
        &m,
        "--method",
        "2:4",
        "--out",
        &recovered,
        "--recover-steps",
        "8",
    ];
    args.extend(common);
    args.push("--json");
    let j = json_of(&kindling(&args));
    let before = block_weights(&format!("{plain}/hf"));
    let after = block_weights(&format!("{recovered}/hf"));
    let mut moved = 0;
    for (name, (_, w)) in &after {
        let w0 = &before[name].1;
        for (g, (group, group0)) in w.chunks(4).zip(w0.chunks(4)).enumerate() {
            assert_eq!(zeros(group0), 2, "{name} group {g} after pruning");
            for (x, x0) in group.iter().zip(group0) {
                if *x0 == 0.0 {
                    assert_eq!(*x, 0.0, "{name} group {g}: a pruned weight came back");
                } else if x != x0 {
                    moved += 1;
                }
            }
        }
    }
    assert!(
        moved > 1000,
        "recovery trained the kept weights ({moved} moved)"
    );
    let (pruned, rec) = (
        j["val_loss_pruned"].as_f64().unwrap(),
        j["val_loss_recovered"].as_f64().unwrap(),
    );
    assert!(rec < pruned, "recovery lowers the held-out loss: {j}");
    assert_eq!(j0["val_loss_pruned"], j["val_loss_pruned"]);
    // The recovery is a run of the training loop: metrics, checkpoint, curves.
    for f in [
        "metrics.jsonl",
        "model.safetensors",
        "config.json",
        "curves.png",
    ] {
        assert!(Path::new(&recovered).join(f).is_file(), "{f}");
    }
}

#[test]
fn distillation_with_alpha_one_pulls_the_student_toward_the_teacher() {
    let s = Scratch::new("distill");
    let text = s.text();
    let student = s.path("student.json");
    std::fs::write(
        &student,
        r#"{"arch": "llama", "n_layer": 1, "n_head": 2, "n_embd": 16}"#,
    )
    .unwrap();
    let out = s.path("run");
    let j = json_of(&kindling(&[
        "distill",
        "--teacher",
        &model(),
        "--student",
        &student,
        "--data",
        &text,
        "--alpha",
        "1",
        "--temperature",
        "1",
        "--steps",
        "40",
        "--eval-every",
        "20",
        "--block-size",
        "16",
        "--batch-size",
        "8",
        "--lr",
        "1e-2",
        "--warmup-steps",
        "0",
        "--eval-windows",
        "8",
        "--out",
        &out,
        "--json",
    ]));
    let (before, after) = (
        j["kl_before"].as_f64().unwrap(),
        j["kl_after"].as_f64().unwrap(),
    );
    assert!(
        after < 0.5 * before,
        "KL to the teacher {before} -> {after}"
    );
    assert!(j["student_params"].as_u64().unwrap() < j["teacher_params"].as_u64().unwrap());
    let metrics = std::fs::read_to_string(format!("{out}/metrics.jsonl")).unwrap();
    assert_eq!(
        metrics.matches("kl_to_teacher").count(),
        3,
        "steps 0, 20, 40"
    );
    // The student is a model like any other.
    let next = json_of(&kindling(&[
        "next-token",
        "--model",
        &out,
        "--text",
        "the red",
        "--json",
    ]));
    assert!(next["top"].as_array().is_some_and(|t| !t.is_empty()));
}

#[test]
fn bad_input_gets_one_line_naming_the_flag_and_creates_nothing() {
    let s = Scratch::new("bad");
    let text = s.text();
    let m = model();
    let out = s.path("never");
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["prune", "--model", &m, "--sparsity", "1", "--out", &out],
            "--sparsity",
        ),
        (
            vec!["prune", "--model", &m, "--sparsity=-0.1", "--out", &out],
            "--sparsity",
        ),
        (
            vec!["prune", "--model", &m, "--method", "random", "--out", &out],
            "--method",
        ),
        (
            vec!["prune", "--model", "no/such/model", "--out", &out],
            "--model",
        ),
        (
            vec![
                "prune",
                "--model",
                &m,
                "--recover-steps",
                "3",
                "--out",
                &out,
            ],
            "--data",
        ),
        (
            vec![
                "distill",
                "--teacher",
                &m,
                "--student",
                "no/such.json",
                "--data",
                &text,
                "--out",
                &out,
            ],
            "--student",
        ),
        (
            vec![
                "distill",
                "--teacher",
                &m,
                "--student",
                "shakespeare-cpu-modern",
                "--alpha",
                "1.5",
                "--out",
                &out,
            ],
            "--alpha",
        ),
    ];
    for (args, flag) in cases {
        let line = error_line(&kindling(&args));
        assert!(line.contains(flag), "{args:?}: {line}");
    }
    // A student with another vocabulary: both sizes named.
    let other = s.path("other.json");
    std::fs::write(
        &other,
        r#"{"vocab_size": 100, "hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 1,
            "num_attention_heads": 2, "num_key_value_heads": 2, "max_position_embeddings": 64,
            "rms_norm_eps": 1e-5}"#,
    )
    .unwrap();
    let line = error_line(&kindling(&[
        "distill",
        "--teacher",
        &m,
        "--student",
        &other,
        "--data",
        &text,
        "--block-size",
        "16",
        "--out",
        &out,
    ]));
    assert!(
        line.contains("--student")
            && line.contains("100")
            && line.contains("--teacher")
            && line.contains("320"),
        "{line}"
    );
    assert!(!Path::new(&out).exists(), "nothing created");
}

#[test]
fn out_is_never_overwritten_without_force() {
    let s = Scratch::new("force");
    let out = s.path("p");
    let m = model();
    let run = |extra: &[&str]| {
        let mut a = vec!["prune", "--model", &m, "--out", &out];
        a.extend(extra);
        kindling(&a)
    };
    assert!(run(&["--sparsity", "0.25"]).status.success());
    let first = std::fs::read(format!("{out}/hf/model.safetensors")).unwrap();
    let line = error_line(&run(&["--sparsity", "0.75"]));
    assert!(
        line.contains("already holds results") && line.contains("--force"),
        "{line}"
    );
    assert_eq!(
        std::fs::read(format!("{out}/hf/model.safetensors")).unwrap(),
        first
    );
    assert!(run(&["--sparsity", "0.75", "--force"]).status.success());
    assert_eq!(
        std::fs::read(format!("{out}.1/hf/model.safetensors")).unwrap(),
        first,
        "the earlier result moved aside"
    );
}

#[test]
fn every_json_key_is_documented() {
    let doc = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/compression.md"),
    )
    .unwrap();
    let s = Scratch::new("keys");
    let text = s.text();
    let m = model();
    let prune = json_of(&kindling(&[
        "prune",
        "--model",
        &m,
        "--method",
        "2:4",
        "--out",
        &s.path("p"),
        "--data",
        &text,
        "--block-size",
        "16",
        "--eval-windows",
        "4",
        "--recover-steps",
        "2",
        "--json",
    ]));
    let distill = json_of(&kindling(&[
        "distill",
        "--teacher",
        &m,
        "--student",
        &m,
        "--data",
        &text,
        "--steps",
        "2",
        "--eval-every",
        "2",
        "--block-size",
        "16",
        "--batch-size",
        "2",
        "--eval-windows",
        "4",
        "--out",
        &s.path("d"),
        "--json",
    ]));
    for (cmd, j) in [("prune", prune), ("distill", distill)] {
        for key in j.as_object().unwrap().keys() {
            assert!(
                doc.contains(&format!("`{key}`")),
                "{cmd} --json key `{key}` is not in docs/compression.md"
            );
        }
    }
}
