//! End-to-end LeNet-5 commands on a small slice of the embedded MNIST:
//! train, interrupted-and-resumed training, eval, predict, bench, bad input.

mod common;
use common::{json_of, kindling};

use std::path::{Path, PathBuf};
use std::process::Output;

fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("kindling-{name}-{}", std::process::id()));
    std::fs::remove_dir_all(&d).ok();
    d
}

fn train(out: &Path, extra: &[&str]) -> Output {
    let mut args = vec![
        "train",
        "lenet5",
        "--limit",
        "2000",
        "--epochs",
        "2",
        "--batch-size",
        "32",
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
fn train_resume_eval_and_predict_work_end_to_end() {
    let straight = temp_dir("straight");
    let a = json_of(&train(&straight, &[]));
    assert_eq!(a["params"], 61706);
    assert!(a["test_accuracy"].as_f64().unwrap() > 0.8, "{a}");
    for f in [
        "config.json",
        "metrics.jsonl",
        "model.safetensors",
        "curves.png",
    ] {
        assert!(straight.join(f).exists(), "{f} missing");
    }
    let metrics = std::fs::read_to_string(straight.join("metrics.jsonl")).unwrap();
    assert_eq!(metrics.lines().count(), 3, "two epochs and the test line");

    // Interrupted after one epoch, then resumed: the same final model.
    let resumed = temp_dir("resumed");
    let first = train(&resumed, &["--interrupt-after", "1"]);
    assert!(!first.status.success());
    assert!(String::from_utf8_lossy(&first.stderr).contains("--resume"));
    let b = json_of(&train(&resumed, &["--resume"]));
    assert_eq!(a["test_accuracy"], b["test_accuracy"]);
    assert_eq!(a["val_accuracy"], b["val_accuracy"]);
    assert_eq!(
        std::fs::read(straight.join("model.safetensors")).unwrap(),
        std::fs::read(resumed.join("model.safetensors")).unwrap()
    );

    let png = straight.join("confusion.png");
    let e = json_of(&kindling(&[
        "eval",
        "--ckpt",
        straight.to_str().unwrap(),
        "--json",
        "--plot",
        png.to_str().unwrap(),
    ]));
    assert_eq!(e["confusion"].as_array().unwrap().len(), 10);
    assert!(png.exists());

    let digits =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../kindling-data/tests/fixtures/digits");
    let seven = digits.join("seven_black_on_white.png");
    let p = json_of(&kindling(&[
        "predict",
        "--ckpt",
        straight.to_str().unwrap(),
        "--json",
        seven.to_str().unwrap(),
    ]));
    let probs = p["predictions"][0]["probabilities"].as_array().unwrap();
    assert_eq!(probs.len(), 10);
    let total: f64 = probs.iter().map(|v| v.as_f64().unwrap()).sum();
    assert!((total - 1.0).abs() < 1e-4);

    // Wrong model type and a missing image give clear errors.
    let not_lenet = kindling(&[
        "predict",
        "--ckpt",
        "/nonexistent/run",
        seven.to_str().unwrap(),
    ]);
    assert!(String::from_utf8_lossy(&not_lenet.stderr).contains("no checkpoint found"));
    let missing = kindling(&[
        "predict",
        "--ckpt",
        straight.to_str().unwrap(),
        "/nonexistent.png",
        seven.to_str().unwrap(),
        "--json",
    ]);
    // The unreadable file is named, the readable one still predicted, the exit non-zero.
    assert!(String::from_utf8_lossy(&missing.stderr).contains("/nonexistent.png"));
    assert!(!missing.status.success());
    let stdout = String::from_utf8_lossy(&missing.stdout);
    let v: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert!(v["predictions"][0]["error"].is_string());
    assert_eq!(
        v["predictions"][1]["probabilities"]
            .as_array()
            .unwrap()
            .len(),
        10
    );
    std::fs::remove_dir_all(&straight).ok();
    std::fs::remove_dir_all(&resumed).ok();
}

#[test]
fn bench_reports_throughput() {
    let v = json_of(&kindling(&[
        "bench", "lenet5", "--steps", "5", "--warmup", "1", "--json",
    ]));
    assert!(v["train_images_per_sec"].as_f64().unwrap() > 0.0);
}

#[test]
fn bad_training_input_is_named() {
    for (args, needle) in [
        (
            &["train", "lenet5", "--optimizer", "rmsprop"][..],
            "--optimizer",
        ),
        (&["train", "lenet5", "--pool", "median"], "--pool"),
        (&["train", "lenet5", "--activation", "gelu"], "--activation"),
        (&["train", "lenet5", "--epochs", "0"], "--epochs"),
        (
            &["train", "lenet5", "--data", "/nonexistent-mnist"],
            "/nonexistent-mnist",
        ),
        (&["eval", "--ckpt", "/nonexistent"], "no checkpoint"),
    ] {
        let out = kindling(args);
        assert!(!out.status.success(), "{args:?}");
        let err = String::from_utf8(out.stderr).unwrap();
        assert!(
            err.contains(needle) && !err.contains("panicked"),
            "{args:?}: {err}"
        );
    }
}
