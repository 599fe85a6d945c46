//! `kindling lab scaling` at toy size on the repository's Shakespeare: six
//! runs fitted, the prediction written before the seventh is trained, a
//! resume that trains nothing again, and one-line errors for bad specs.

mod common;
use common::{json_of, kindling};
use std::path::PathBuf;

fn out_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "kindling-lab-scaling-{}-{name}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&d);
    d
}

const TINY: [&str; 14] = [
    "lab",
    "scaling",
    "--data",
    "shakespeare",
    "--sizes",
    "1x16,1x32,2x32",
    "--tokens",
    "20k,40k",
    "--predict",
    "2x48:40k",
    "--eval-iters",
    "4",
    "--threads",
    "1",
];

#[test]
fn fits_predicts_before_training_and_resumes_without_retraining() {
    let out = out_dir("tiny");
    let o = out.to_str().unwrap();
    let mut args = TINY.to_vec();
    args.extend(["--out", o, "--json"]);
    let v = json_of(&kindling(&args));
    let points = v["points"].as_array().unwrap();
    assert_eq!(points.len(), 6);
    for p in points {
        let (n, d, c) = (
            p["params"].as_f64().unwrap(),
            p["tokens"].as_f64().unwrap(),
            p["flops"].as_f64().unwrap(),
        );
        assert_eq!(c, 6.0 * n * d);
        assert!(p["loss"].as_f64().unwrap() < 4.2, "{p}"); // below ln(65) = 4.17 + a little
    }
    // More tokens, lower loss, for every size.
    for pair in points.chunks(2) {
        assert!(
            pair[1]["loss"].as_f64() < pair[0]["loss"].as_f64(),
            "{pair:?}"
        );
    }
    let law = &v["law"];
    for k in ["E", "A", "alpha", "B", "beta"] {
        assert!(law[k].as_f64().unwrap().is_finite(), "{law}");
    }
    let pred = &v["prediction"];
    let written: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("prediction.json")).unwrap())
            .unwrap();
    // prediction.json was written before the run and holds no measured loss.
    assert_eq!(written["predicted_loss"], pred["predicted_loss"]);
    assert!(written["actual_loss"].is_null(), "{written}");
    let (p, a) = (
        pred["predicted_loss"].as_f64().unwrap(),
        pred["actual_loss"].as_f64().unwrap(),
    );
    assert!((pred["error_percent"].as_f64().unwrap() - (p - a) / a * 100.0).abs() < 1e-9);
    assert!(out.join("scaling.png").is_file() && out.join("results.json").is_file());
    assert!(out.join("runs/2x48-40000/model.safetensors").is_file());
    let co = v["compute_optimal"].as_array().unwrap();
    assert_eq!(co.len(), 3);
    // A resumed study trains nothing again and keeps the prediction it wrote.
    let mut again = TINY.to_vec();
    again.extend(["--out", o, "--resume", "--json"]);
    let r = kindling(&again);
    let w = json_of(&r);
    assert_eq!(w["prediction"]["predicted_at"], pred["predicted_at"]);
    assert_eq!(w["prediction"]["actual_loss"], pred["actual_loss"]);
    assert_eq!(w["points"], v["points"]);
    let log = String::from_utf8_lossy(&r.stderr);
    assert_eq!(log.matches("done before").count(), 7, "{log}");
    // Without --resume or --force the results are not overwritten.
    let mut fresh = TINY.to_vec();
    fresh.extend(["--out", o]);
    let e = kindling(&fresh);
    assert!(!e.status.success());
    assert!(String::from_utf8_lossy(&e.stderr).contains("--force"));
}

#[test]
fn bad_specs_get_one_line_naming_the_flag() {
    let out = out_dir("bad");
    let o = out.to_str().unwrap();
    for (flag, value, want) in [
        ("--sizes", "0x32,1x16,2x16", "--sizes"),
        ("--sizes", "2x30,1x16,2x16", "--sizes"),
        ("--tokens", "1M", "--sizes"),
        ("--tokens", "lots,2M", "--tokens"),
        ("--predict", "2x48", "--predict"),
        ("--predict", "1x16:20k", "--predict"),
        ("--data", "no-such-corpus", "--data"),
    ] {
        let mut args = TINY.to_vec();
        let i = args.iter().position(|a| *a == flag).unwrap();
        args[i + 1] = value;
        args.extend(["--out", o]);
        let r = kindling(&args);
        assert!(!r.status.success(), "{flag} {value} succeeded");
        let e = String::from_utf8_lossy(&r.stderr);
        assert!(e.contains(want), "{flag} {value}: {e}");
        assert_eq!(e.trim().lines().count(), 1, "{flag} {value}: {e}");
    }
}
