//! End-to-end `kindling lab gradients` on 1,000 MNIST images (100 steps):
//! the vanishing gradient of a deep sigmoid network, the shortcut that
//! removes it, and the errors for bad flags.

mod common;
use common::{json_of, kindling};

use std::path::{Path, PathBuf};
use std::process::Output;

fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("kindling-lab2-{name}-{}", std::process::id()));
    std::fs::remove_dir_all(&d).ok();
    d
}

fn gradients(out: &Path, extra: &[&str]) -> Output {
    let mut args = vec![
        "lab",
        "gradients",
        "--threads",
        "2",
        "--json",
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    kindling(&args)
}

fn numbers(v: &serde_json::Value) -> Vec<f64> {
    v.as_array()
        .unwrap_or_else(|| panic!("not a list: {v}"))
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
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

#[test]
fn deep_sigmoid_first_layer_learns_slowest_and_the_shortcut_closes_the_gap() {
    // Checked on seeds 0-7 at these settings: last/first of the bias
    // gradient norms 110-146 (weights 29-49) plain; 0.7-0.9 with shortcuts.
    let plain_dir = temp_dir("plain");
    let plain = json_of(&gradients(
        &plain_dir,
        &["--limit", "1000", "--depth", "4", "--activation", "sigmoid"],
    ));
    for key in [
        "grad_norms",
        "weight_grad_norms",
        "bias_grad_norms",
        "initial_grad_norms",
    ] {
        assert_eq!(numbers(&plain[key]).len(), 4, "{key}: {plain}");
    }
    assert_eq!(plain["grad_norms"], plain["bias_grad_norms"]);
    let bias = numbers(&plain["grad_norms"]);
    let weight = numbers(&plain["weight_grad_norms"]);
    assert!(bias[0] < bias[3] / 30.0, "{plain}");
    assert!(weight[0] < weight[3], "{plain}");
    // Each layer closer to the output learns faster than the one below it.
    assert!(bias.windows(2).all(|w| w[0] < w[1]), "{plain}");
    let ratio = plain["ratio_last_to_first"].as_f64().unwrap();
    assert!((ratio - bias[3] / bias[0]).abs() < 1e-6 * ratio, "{plain}");
    let acc = plain["test_accuracy"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&acc), "{plain}");
    assert_eq!(plain["steps"], 100);
    for file in [
        "metrics.jsonl",
        "grad_norms.png",
        "results.json",
        "config.json",
    ] {
        assert!(plain_dir.join(file).is_file(), "{file} missing");
    }
    // A gradient-norm record per step, each with a norm per layer.
    let metrics = std::fs::read_to_string(plain_dir.join("metrics.jsonl")).unwrap();
    let per_step: Vec<serde_json::Value> = metrics
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .filter(|r: &serde_json::Value| r.get("bias_grad_norms").is_some())
        .collect();
    assert_eq!(per_step.len(), 100);
    assert_eq!(numbers(&per_step[0]["weight_grad_norms"]).len(), 4);

    let res_dir = temp_dir("residual");
    let res = json_of(&gradients(
        &res_dir,
        &[
            "--limit",
            "1000",
            "--depth",
            "4",
            "--activation",
            "sigmoid",
            "--residual",
        ],
    ));
    let res_ratio = res["ratio_last_to_first"].as_f64().unwrap();
    assert!(res_ratio < 3.0, "{res}");
    assert!(
        ratio > 10.0 * res_ratio,
        "plain {ratio}, residual {res_ratio}"
    );
    std::fs::remove_dir_all(&plain_dir).ok();
    std::fs::remove_dir_all(&res_dir).ok();
}

#[test]
fn bad_flags_are_one_line_errors_and_out_is_not_overwritten() {
    let dir = temp_dir("bad");
    let e = error_line(&gradients(&dir, &["--limit", "100", "--depth", "0"]));
    assert!(e.contains("--depth") && e.contains("at least 1"), "{e}");
    let e = error_line(&gradients(
        &dir,
        &["--limit", "100", "--activation", "gelu"],
    ));
    assert!(e.contains("--activation") && e.contains("gelu"), "{e}");
    assert!(!dir.exists(), "a refused run should not create --out");

    // A finished run is kept unless --force moves it aside.
    json_of(&gradients(&dir, &["--depth", "2", "--limit", "100"]));
    let e = error_line(&gradients(&dir, &["--depth", "2", "--limit", "100"]));
    assert!(e.contains("--force"), "{e}");
    json_of(&gradients(
        &dir,
        &["--depth", "2", "--limit", "100", "--force"],
    ));
    let aside = PathBuf::from(format!("{}.1", dir.display()));
    assert!(aside.join("results.json").is_file());
    std::fs::remove_dir_all(&dir).ok();
    std::fs::remove_dir_all(&aside).ok();
}
