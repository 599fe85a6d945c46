//! End-to-end `kindling finetune lenet5` and `kindling sweep lenet5` on
//! small data: a LeNet-5 trained in the test on 2,000 MNIST images is
//! fine-tuned on 500 USPS images fetched into a temporary KINDLING_DATA_DIR
//! from the shared data beside the repository (`<repo>/../shared/data`; the
//! USPS part is skipped with a note when that is absent), a two-setting
//! sweep on a slice of MNIST, and the errors for bad input.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A temporary directory used as data root and for run directories,
/// removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("kindling-lab-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }

    fn path(&self, name: &str) -> String {
        self.0.join(name).to_str().unwrap().to_string()
    }

    /// Runs the binary with this directory as the data root.
    fn kindling(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_kindling"))
            .args(args)
            .env("KINDLING_DATA_DIR", &self.0)
            .output()
            .expect("binary runs")
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The repository's embedded MNIST (the data root points elsewhere here).
fn repo_mnist() -> String {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/mnist");
    dir.to_str().unwrap().to_string()
}

fn shared_data() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data");
    if dir.join("usps").is_dir() {
        Some(dir)
    } else {
        eprintln!(
            "{} not found: skipping the USPS fine-tuning run",
            dir.join("usps").display()
        );
        None
    }
}

fn json_of(out: &Output) -> serde_json::Value {
    assert!(
        out.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout.clone()).unwrap();
    assert_eq!(
        stdout.lines().count(),
        1,
        "with --json stdout is one object: {stdout}"
    );
    serde_json::from_str(stdout.trim_end()).expect("stdout is JSON")
}

fn one_line_error(out: &Output) -> String {
    assert!(!out.status.success(), "expected a failure");
    let stderr = String::from_utf8(out.stderr.clone()).unwrap();
    let last = stderr.lines().last().unwrap_or("").to_string();
    assert!(last.starts_with("error: "), "{stderr}");
    last
}

fn accuracy(v: &serde_json::Value, key: &str) -> f64 {
    let a = v[key]
        .as_f64()
        .unwrap_or_else(|| panic!("{key} missing: {v}"));
    assert!((0.0..=1.0).contains(&a), "{key} = {a}");
    a
}

#[test]
fn finetune_reports_three_usps_figures_and_mnist_after_and_writes_a_run_directory() {
    let s = Scratch::new("finetune");
    let base = s.path("mnist-base");
    let mnist = repo_mnist();
    json_of(&s.kindling(&[
        "train",
        "lenet5",
        "--limit",
        "2000",
        "--epochs",
        "1",
        "--threads",
        "2",
        "--json",
        "--data",
        &mnist,
        "--out",
        &base,
    ]));
    let finetune = |extra: &[&str]| {
        let out = s.path("finetune");
        let mut args = vec![
            "finetune",
            "lenet5",
            "--from",
            &base,
            "--data",
            "usps",
            "--samples",
            "500",
            "--epochs",
            "2",
            "--scratch-epochs",
            "2",
            "--threads",
            "2",
            "--mnist",
            &mnist,
            "--json",
            "--out",
            &out,
        ];
        args.extend_from_slice(extra);
        s.kindling(&args)
    };

    // USPS is not in the (empty) data root yet: the error says how to fetch it.
    let line = one_line_error(&finetune(&[]));
    assert!(
        line.contains("kindling data fetch usps --from DIR"),
        "{line}"
    );

    let Some(shared) = shared_data() else {
        return;
    };
    let fetched = s.kindling(&["data", "fetch", "usps", "--from", shared.to_str().unwrap()]);
    assert!(
        fetched.status.success(),
        "{}",
        String::from_utf8_lossy(&fetched.stderr)
    );

    let v = json_of(&finetune(&[]));
    for key in [
        "zero_shot_accuracy",
        "finetuned_accuracy",
        "scratch_accuracy",
        "mnist_accuracy_after",
        "mnist_accuracy_before",
    ] {
        accuracy(&v, key);
    }
    assert_eq!(v["samples"], 500);
    assert_eq!(v["validation_images"], 1000);
    assert_eq!(v["trainable_params"], 61706);
    // Even 2 epochs on 500 images move a 2,000-image MNIST model well above chance on USPS.
    assert!(accuracy(&v, "finetuned_accuracy") > 0.5, "{v}");

    let run = s.0.join("finetune");
    for f in [
        "config.json",
        "metrics.jsonl",
        "results.json",
        "model.safetensors",
    ] {
        assert!(run.join(f).exists(), "{f} missing");
    }
    let metrics = std::fs::read_to_string(run.join("metrics.jsonl")).unwrap();
    let phases: Vec<String> = metrics
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["phase"].to_string())
        .collect();
    assert_eq!(
        phases,
        ["\"finetune\"", "\"finetune\"", "\"scratch\"", "\"scratch\""]
    );
    let results: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("results.json")).unwrap()).unwrap();
    assert_eq!(results["finetuned_accuracy"], v["finetuned_accuracy"]);

    // The fine-tuned model is an ordinary LeNet-5 checkpoint.
    let ev = json_of(&s.kindling(&[
        "eval",
        "--ckpt",
        run.to_str().unwrap(),
        "--data",
        &mnist,
        "--json",
    ]));
    let diff = ev["test_accuracy"].as_f64().unwrap() - v["mnist_accuracy_after"].as_f64().unwrap();
    assert!(diff.abs() < 1e-6, "eval {ev} vs {v}");

    // Interrupted during the from-scratch baseline: the fine-tuning phase
    // (model, finetuned.json, its metrics lines) is kept and --resume runs
    // only the baseline, ending where the whole run ended.
    std::fs::remove_file(run.join("results.json")).unwrap();
    let kept: String = metrics
        .lines()
        .filter(|l| l.contains("\"finetune\""))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(run.join("metrics.jsonl"), kept).unwrap();
    let resumed = finetune(&["--resume"]);
    assert!(String::from_utf8_lossy(&resumed.stderr).contains("the fine-tuning phase is done"));
    assert_eq!(json_of(&resumed), v);
    let without_timing = |text: &str| -> Vec<serde_json::Value> {
        text.lines()
            .map(|l| {
                let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
                for k in ["seconds", "images_per_sec"] {
                    v.as_object_mut().unwrap().remove(k);
                }
                v
            })
            .collect()
    };
    assert_eq!(
        without_timing(&std::fs::read_to_string(run.join("metrics.jsonl")).unwrap()),
        without_timing(&metrics)
    );

    // Freezing C1 and C3 leaves 156 + 2,416 parameters out.
    let frozen = json_of(&finetune(&["--freeze", "conv", "--force"]));
    assert_eq!(frozen["trainable_params"], 61706 - 156 - 2416);
}

/// A safetensors file whose Kindling config names another model.
fn write_gpt_like_checkpoint(path: &Path) {
    let mut header = serde_json::json!({
        "__metadata__": { "kindling.config": "{\"model\":\"gpt\"}" },
        "w": { "dtype": "F32", "shape": [1], "data_offsets": [0, 4] },
    })
    .to_string();
    while !header.len().is_multiple_of(8) {
        header.push(' ');
    }
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(header.as_bytes());
    bytes.extend_from_slice(&1.0f32.to_le_bytes());
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn finetune_bad_input_is_one_line_naming_what_is_wrong() {
    let s = Scratch::new("finetune-errors");
    let run = |from: &str, data: &str| {
        let out = s.path("out");
        s.kindling(&[
            "finetune", "lenet5", "--from", from, "--data", data, "--out", &out,
        ])
    };
    let missing = s.path("no-such-run");
    let line = one_line_error(&run(&missing, "usps"));
    assert!(
        line.contains("--from") && line.contains("no checkpoint found"),
        "{line}"
    );

    let gpt = s.0.join("gpt.safetensors");
    write_gpt_like_checkpoint(&gpt);
    let line = one_line_error(&run(gpt.to_str().unwrap(), "usps"));
    assert!(line.contains("not a LeNet-5 checkpoint"), "{line}");
    assert!(line.contains("gpt"), "{line}");

    let line = one_line_error(&run(&missing, "uspss"));
    assert!(
        line.contains("unknown dataset `uspss`") && line.contains("usps"),
        "{line}"
    );
    let line = one_line_error(&run(&missing, "tang-poems"));
    assert!(line.contains("supported: usps"), "{line}");
    let line =
        one_line_error(&s.kindling(&["finetune", "lenet5", "--from", &missing, "--freeze", "all"]));
    assert!(line.contains("--freeze"), "{line}");
}

#[test]
fn sweep_trains_each_setting_and_scores_only_the_winner_on_test() {
    let s = Scratch::new("sweep");
    let out = s.path("sweep");
    let mnist = repo_mnist();
    let v = json_of(&s.kindling(&[
        "sweep",
        "lenet5",
        "--grid",
        "c1=4,6 f6=42",
        "--epochs",
        "2",
        "--limit",
        "2000",
        "--threads",
        "2",
        "--data",
        &mnist,
        "--json",
        "--out",
        &out,
    ]));
    let results = v["results"].as_array().unwrap();
    assert_eq!(results.len(), 2);
    assert_eq!(results[0]["setting"]["c1"], 4);
    assert_eq!(results[1]["setting"]["c1"], 6);
    assert_eq!(
        results[1]["setting"]["c3"], 16,
        "keys left out keep the default"
    );
    // C1 4*25+4, C3 4*16*25+16, C5 16*25*120+120, F6 120*42+42, output 42*10+10.
    assert_eq!(results[0]["params"], 104 + 1_616 + 48_120 + 5_082 + 430);
    assert_eq!(results[1]["params"], 156 + 2_416 + 48_120 + 5_082 + 430);
    let best_val = results
        .iter()
        .map(|r| accuracy(r, "val_accuracy"))
        .fold(0.0, f64::max);
    assert_eq!(v["best"]["val_accuracy"].as_f64().unwrap(), best_val);
    assert!(accuracy(&v, "test_accuracy") > 0.7, "{v}");
    assert_eq!(v["test_images"], 200, "--limit 2000 keeps 200 test images");

    let dir = s.0.join("sweep");
    for f in [
        "config.json",
        "metrics.jsonl",
        "results.json",
        "model.safetensors",
    ] {
        assert!(dir.join(f).exists(), "{f} missing");
    }
    let lines = std::fs::read_to_string(dir.join("metrics.jsonl")).unwrap();
    assert_eq!(lines.lines().count(), 2, "a line per setting");

    // Without --json: the table, with the winner marked.
    let text = s.kindling(&[
        "sweep",
        "lenet5",
        "--grid",
        "f6=42",
        "--epochs",
        "1",
        "--limit",
        "200",
        "--threads",
        "2",
        "--data",
        &mnist,
        "--out",
        &out,
        "--force",
    ]);
    assert!(
        text.status.success(),
        "{}",
        String::from_utf8_lossy(&text.stderr)
    );
    let stdout = String::from_utf8(text.stdout).unwrap();
    assert!(
        stdout.contains("setting") && stdout.contains("params"),
        "{stdout}"
    );
    assert!(stdout.contains("* c1=6 c3=16 f6=42 lr=0.002"), "{stdout}");
}

#[test]
fn malformed_grids_are_one_line_errors_quoting_the_grid() {
    let s = Scratch::new("grids");
    for (grid, says) in [
        ("c1=", "empty value"),
        ("c9=3", "unknown key `c9`"),
        ("c1=a", "`a` is not a positive whole number"),
    ] {
        let out = s.path("sweep");
        let line = one_line_error(&s.kindling(&["sweep", "lenet5", "--grid", grid, "--out", &out]));
        assert!(line.contains(&format!("--grid \"{grid}\"")), "{line}");
        assert!(line.contains(says), "{line}");
    }
    assert!(
        !s.0.join("sweep").exists(),
        "nothing written for a bad grid"
    );
}

#[test]
fn an_interrupted_sweep_resumes_with_the_settings_already_done() {
    let s = Scratch::new("sweep-resume");
    let mnist = repo_mnist();
    let args = |out: &str| -> Vec<String> {
        [
            "sweep",
            "lenet5",
            "--grid",
            "c1=4,6 f6=42",
            "--epochs",
            "1",
            "--limit",
            "2000",
            "--threads",
            "2",
            "--data",
            &mnist,
            "--json",
            "--out",
            out,
        ]
        .iter()
        .map(|a| a.to_string())
        .collect()
    };
    let whole = s.path("whole");
    let a = args(&whole);
    let v = json_of(&s.kindling(&a.iter().map(String::as_str).collect::<Vec<_>>()));
    // The same sweep, killed once its first setting is written down.
    let cut = s.path("cut");
    let b = args(&cut);
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_kindling"))
        .args(&b)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let metrics = Path::new(&cut).join("metrics.jsonl");
    let t0 = std::time::Instant::now();
    while std::fs::read_to_string(&metrics).map_or(0, |t| t.lines().count()) < 1 {
        assert!(
            t0.elapsed().as_secs() < 120,
            "the first setting never finished"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    if Path::new(&cut).join("results.json").exists() {
        eprintln!("the sweep finished before it could be killed; nothing to resume");
        return;
    }
    let mut c = b.clone();
    c.push("--resume".into());
    let out = s.kindling(&c.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(String::from_utf8_lossy(&out.stderr).contains("1 of 2 settings done"));
    let r = json_of(&out);
    assert_eq!(
        r["results"], v["results"],
        "the resumed sweep ends as the whole one did"
    );
    assert_eq!(r["test_accuracy"], v["test_accuracy"]);
    // A different grid over the same directory is named and refused.
    let mut d = args(&cut);
    d[3] = "c1=4 f6=42".into();
    d.push("--resume".into());
    let line = one_line_error(&s.kindling(&d.iter().map(String::as_str).collect::<Vec<_>>()));
    assert!(line.contains("other settings"), "{line}");
}
