//! End-to-end `kindling lab resnet` at tiny settings: ResNet-8, plain and
//! residual, one epoch on 256 Fashion-MNIST images (fetched into a
//! temporary data root from the shared data beside the repository; that
//! part is skipped with a note when it is absent), and the one-line errors
//! for bad flags, which need no data.

mod common;
use common::{error_line, json_of, kindling_with_data, shared_data};

use std::path::{Path, PathBuf};
use std::process::Output;

/// A temporary data root and output place, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        let dir =
            std::env::temp_dir().join(format!("kindling-lab-resnet-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("data")).unwrap();
        Scratch(dir)
    }

    fn kindling(&self, args: &[&str]) -> Output {
        kindling_with_data(&self.0.join("data"), args)
    }

    fn resnet(&self, out: &Path, extra: &[&str]) -> Output {
        let mut args = vec![
            "lab",
            "resnet",
            "--threads",
            "2",
            "--json",
            "--out",
            out.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        self.kindling(&args)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

const TINY: [&str; 8] = [
    "--depth",
    "8",
    "--limit",
    "256",
    "--test-limit",
    "64",
    "--epochs",
    "1",
];

#[test]
fn tiny_plain_and_residual_resnet8_write_results_and_the_figure() {
    let s = Scratch::new("run");
    // Not fetched yet: the error says how.
    let out = s.0.join("out");
    let line = error_line(&s.resnet(&out, &TINY));
    assert!(line.contains("kindling data fetch fashion-mnist"), "{line}");
    let Some(shared) = shared_data("fashion-mnist") else {
        return;
    };
    let fetched = s.kindling(&[
        "data",
        "fetch",
        "fashion-mnist",
        "--from",
        shared.to_str().unwrap(),
    ]);
    assert!(
        fetched.status.success(),
        "{}",
        String::from_utf8_lossy(&fetched.stderr)
    );

    let v = json_of(&s.resnet(&out, &[&TINY[..], &["--batch-size", "32"]].concat()));
    let runs = v["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 2, "{v}");
    for (run, variant) in runs.iter().zip(["plain", "residual"]) {
        assert_eq!(run["variant"], variant);
        assert_eq!(run["depth"], 8);
        // Option A shortcuts add no parameters: 75,002 either way.
        assert_eq!(run["params"], 75_002);
        for key in ["final_train_error", "test_error"] {
            let e = run[key].as_f64().unwrap();
            assert!((0.0..=1.0).contains(&e), "{key}: {run}");
        }
        assert!(run["time_seconds"].as_f64().unwrap() > 0.0);
        assert_eq!(run["train_errors"].as_array().unwrap().len(), 1);
        let dir = out.join(format!("{variant}-8"));
        for file in ["metrics.jsonl", "model.safetensors", "config.json"] {
            assert!(dir.join(file).is_file(), "{variant}: {file} missing");
        }
        // One epoch record, with a finite training loss.
        let metrics = std::fs::read_to_string(dir.join("metrics.jsonl")).unwrap();
        let records: Vec<serde_json::Value> = metrics
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(records.len(), 1, "{metrics}");
        assert!(records[0]["train_loss"].as_f64().unwrap().is_finite());
        assert_eq!(records[0]["train_error"], run["final_train_error"]);
    }
    // The shortcuts change what is computed: the two runs' losses differ.
    let loss = |variant: &str| {
        let m = std::fs::read_to_string(out.join(format!("{variant}-8/metrics.jsonl"))).unwrap();
        let r: serde_json::Value = serde_json::from_str(m.lines().next().unwrap()).unwrap();
        r["train_loss"].as_f64().unwrap()
    };
    assert_ne!(loss("plain"), loss("residual"));
    let saved: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("results.json")).unwrap()).unwrap();
    assert_eq!(saved["runs"], v["runs"]);
    let png = std::fs::read(out.join("degradation.png")).unwrap();
    assert_eq!(&png[1..4], b"PNG");
    assert_eq!(
        u32::from_be_bytes(png[16..20].try_into().unwrap()),
        1280,
        "two panels"
    );

    // Kept without --force; --resume finds both networks finished.
    let line = error_line(&s.resnet(&out, &TINY));
    assert!(line.contains("--force"), "{line}");
    let again = json_of(&s.resnet(
        &out,
        &[&TINY[..], &["--batch-size", "32", "--resume"]].concat(),
    ));
    assert_eq!(
        again["runs"][0]["final_train_error"],
        runs[0]["final_train_error"]
    );
    assert_eq!(again["runs"][1]["test_error"], runs[1]["test_error"]);
}

#[test]
fn bad_flags_are_one_line_errors() {
    let s = Scratch::new("bad");
    let out = s.0.join("out");
    let e = error_line(&s.resnet(&out, &["--depth", "0"]));
    assert!(e.contains("--depth") && e.contains("at least 1"), "{e}");
    let e = error_line(&s.resnet(&out, &["--depth", "8,9"]));
    assert!(
        e.contains("--depth") && e.contains("6n + 2") && e.contains('9'),
        "{e}"
    );
    let e = error_line(&s.resnet(&out, &["--depth", "eight"]));
    assert!(e.contains("--depth") && e.contains("eight"), "{e}");
    let e = error_line(&s.resnet(&out, &["--plain", "--variant", "both"]));
    assert!(e.contains("--variant"), "{e}");
    let e = error_line(&s.resnet(&out, &["--lr", "0"]));
    assert!(e.contains("--lr"), "{e}");
    let e = error_line(&s.resnet(&out, &["--epochs", "0"]));
    assert!(e.contains("--epochs"), "{e}");
    assert!(!out.exists(), "a refused run should not create --out");
}
