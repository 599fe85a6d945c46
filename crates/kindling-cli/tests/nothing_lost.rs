//! Issue #17, "nothing lost, nothing cryptic": `--out DIR --resume` alone
//! continues a run with its stored settings and names any other flag that
//! differs; a finished run says so; SIGINT/SIGTERM checkpoint and resume
//! exactly; sizes that cannot fit are refused before allocating; a batch
//! larger than the training set and a missing MNIST are named.

mod common;
use common::{json_of, kindling};

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("kindling-lost-{name}-{}", std::process::id()));
    std::fs::remove_dir_all(&d).ok();
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn corpus(dir: &Path) -> PathBuf {
    let text =
        "First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak, speak.\n"
            .repeat(60);
    let path = dir.join("corpus.txt");
    std::fs::write(&path, text).unwrap();
    path
}

fn gpt_args(data: &Path, max_iters: &str, eval_interval: &str) -> Vec<String> {
    [
        "train",
        "gpt",
        "--data",
        data.to_str().unwrap(),
        "--n-layer",
        "1",
        "--n-head",
        "2",
        "--n-embd",
        "16",
        "--block-size",
        "8",
        "--batch-size",
        "4",
        "--max-iters",
        max_iters,
        "--warmup-iters",
        "2",
        "--eval-interval",
        eval_interval,
        "--eval-iters",
        "2",
        "--threads",
        "1",
        "--json",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

fn run(args: &[String], extra: &[&str]) -> std::process::Output {
    let mut all: Vec<&str> = args.iter().map(String::as_str).collect();
    all.extend_from_slice(extra);
    kindling(&all)
}

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The records of a run's metrics.jsonl, as text lines.
fn metrics(dir: &Path) -> Vec<String> {
    std::fs::read_to_string(dir.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn gpt_resume_alone_uses_the_stored_settings_and_names_what_differs() {
    let dir = temp_dir("gpt-resume");
    let data = corpus(&dir);
    let args = gpt_args(&data, "40", "10");
    let straight = dir.join("straight");
    let a = json_of(&run(&args, &["--out", straight.to_str().unwrap()]));

    let resumed = dir.join("resumed");
    let first = run(
        &args,
        &[
            "--out",
            resumed.to_str().unwrap(),
            "--interrupt-after",
            "15",
        ],
    );
    assert!(!first.status.success() && stderr(&first).contains("--resume"));
    // Nothing but --out, --resume and --threads (not a setting of the run).
    let out = resumed.to_str().unwrap();
    let b = json_of(&kindling(&[
        "train",
        "gpt",
        "--out",
        out,
        "--resume",
        "--threads",
        "1",
        "--json",
    ]));
    assert_eq!(a["val_loss"], b["val_loss"]);
    assert_eq!(
        std::fs::read(straight.join("model.safetensors")).unwrap(),
        std::fs::read(resumed.join("model.safetensors")).unwrap()
    );
    assert_eq!(
        metrics(&straight),
        metrics(&resumed),
        "no duplicate or lost records"
    );

    // Any other setting that differs is named with both values.
    let o = kindling(&[
        "train", "gpt", "--out", out, "--resume", "--lr", "0.01", "--n-embd", "32",
    ]);
    let e = stderr(&o);
    assert!(!o.status.success(), "{e}");
    assert!(
        e.contains("--lr 0.01 (run: 0.001)") && e.contains("--n-embd 32 (run: 16)"),
        "{e}"
    );

    // A finished run says so; more iterations extend it.
    let o = kindling(&["train", "gpt", "--out", out, "--resume", "--threads", "1"]);
    assert!(
        o.status.success() && stderr(&o).contains("already finished"),
        "{}",
        stderr(&o)
    );
    assert!(String::from_utf8_lossy(&o.stdout).contains("nothing trained now"));
    let c = json_of(&kindling(&[
        "train",
        "gpt",
        "--out",
        out,
        "--resume",
        "--max-iters",
        "50",
        "--threads",
        "1",
        "--json",
    ]));
    assert_eq!(c["iters"], 50);
    let iters: Vec<u64> = metrics(&resumed)
        .iter()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|r| r.get("val_loss").is_some())
        .map(|r| r["iter"].as_u64().unwrap())
        .collect();
    assert_eq!(iters, vec![0, 10, 20, 30, 40, 50]);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn sigint_checkpoints_and_resume_ends_where_an_uninterrupted_run_does() {
    let dir = temp_dir("sigint");
    let data = corpus(&dir);
    let args = gpt_args(&data, "1500", "500");
    let straight = dir.join("straight");
    let a = json_of(&run(&args, &["--out", straight.to_str().unwrap()]));

    let stopped = dir.join("stopped");
    let mut child = Command::new(env!("CARGO_BIN_EXE_kindling"))
        .args(&args)
        .args(["--out", stopped.to_str().unwrap()])
        .env_remove("KINDLING_DATA_DIR")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    // The first evaluation's line: training is under way.
    for line in lines.by_ref() {
        if line.unwrap().starts_with("iter     0:") {
            break;
        }
    }
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) };
    let rest: Vec<String> = lines.map(Result::unwrap).collect();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130), "{rest:?}");
    let last = rest.last().unwrap();
    assert!(
        last.contains("interrupted after iteration") && last.contains("--resume"),
        "{last}"
    );
    assert!(stopped.join("model.safetensors").is_file());

    let b = json_of(&kindling(&[
        "train",
        "gpt",
        "--out",
        stopped.to_str().unwrap(),
        "--resume",
        "--threads",
        "1",
        "--json",
    ]));
    assert_eq!(a["val_loss"], b["val_loss"]);
    assert_eq!(
        std::fs::read(straight.join("model.safetensors")).unwrap(),
        std::fs::read(stopped.join("model.safetensors")).unwrap()
    );
    assert_eq!(metrics(&straight), metrics(&stopped));
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn lenet5_resume_alone_keeps_the_limit_and_bad_sizes_are_named() {
    let dir = temp_dir("lenet");
    let out = dir.join("run");
    let out = out.to_str().unwrap();
    let first = kindling(&[
        "train",
        "lenet5",
        "--limit",
        "200",
        "--epochs",
        "2",
        "--batch-size",
        "50",
        "--threads",
        "1",
        "--out",
        out,
        "--interrupt-after",
        "1",
    ]);
    assert!(!first.status.success() && stderr(&first).contains("--resume"));
    let o = kindling(&[
        "train",
        "lenet5",
        "--out",
        out,
        "--resume",
        "--threads",
        "1",
    ]);
    let e = stderr(&o);
    assert!(o.status.success(), "{e}");
    // --limit 200 came back from the run: 200 train, 20 validation, 20 test.
    assert!(e.contains("200 train / 20 validation / 20 test"), "{e}");
    let o = kindling(&[
        "train", "lenet5", "--out", out, "--resume", "--limit", "300", "--pool", "avg",
    ]);
    let e = stderr(&o);
    assert!(!o.status.success(), "{e}");
    assert!(
        e.contains("--limit 300 (run: 200)") && e.contains("--pool avg (run: max)"),
        "{e}"
    );

    let o = kindling(&[
        "train",
        "lenet5",
        "--limit",
        "100",
        "--batch-size",
        "500",
        "--out",
        dir.join("big-batch").to_str().unwrap(),
    ]);
    assert!(
        stderr(&o).contains("--batch-size 500 is larger than the training set (100 images)"),
        "{}",
        stderr(&o)
    );

    // A data root without MNIST says how to get it.
    let empty = dir.join("empty-root");
    std::fs::create_dir_all(&empty).unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_kindling"))
        .args([
            "train",
            "lenet5",
            "--out",
            dir.join("none").to_str().unwrap(),
        ])
        .env("KINDLING_DATA_DIR", &empty)
        .output()
        .unwrap();
    assert!(
        stderr(&o).contains("kindling data fetch mnist"),
        "{}",
        stderr(&o)
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn lm_resume_alone_continues_the_run() {
    let dir = temp_dir("lm");
    let data = corpus(&dir);
    let base = [
        "train",
        "lm",
        "--tokenizer",
        "char",
        "--data",
        data.to_str().unwrap(),
        "--n-layer",
        "1",
        "--n-head",
        "2",
        "--n-embd",
        "16",
        "--block-size",
        "8",
        "--batch-size",
        "4",
        "--max-iters",
        "20",
        "--eval-interval",
        "10",
        "--eval-iters",
        "2",
        "--threads",
        "1",
        "--json",
    ];
    let straight = dir.join("straight");
    let mut args = base.to_vec();
    args.extend(["--out", straight.to_str().unwrap()]);
    let a = json_of(&kindling(&args));
    let resumed = dir.join("resumed");
    let mut args = base.to_vec();
    args.extend(["--out", resumed.to_str().unwrap(), "--interrupt-after", "5"]);
    assert!(!kindling(&args).status.success());
    let b = json_of(&kindling(&[
        "train",
        "lm",
        "--out",
        resumed.to_str().unwrap(),
        "--resume",
        "--threads",
        "1",
        "--json",
    ]));
    assert_eq!(a["val_loss"], b["val_loss"]);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn sizes_beyond_the_machine_are_refused_before_allocating() {
    let dir = temp_dir("sizes");
    if Path::new("/proc/meminfo").exists() {
        let o = kindling(&[
            "train",
            "gpt",
            "--block-size",
            "100000",
            "--out",
            dir.join("gpt").to_str().unwrap(),
        ]);
        let e = stderr(&o);
        assert!(
            !o.status.success() && e.contains("--block-size 100000") && e.contains("available"),
            "{e}"
        );
        assert!(!dir.join("gpt").exists(), "nothing was started");
    } else {
        eprintln!("skipped the memory check: no /proc/meminfo here");
    }

    // Generation streams whatever is asked for, never allocating for it up front.
    let data = corpus(&dir);
    let run_dir = dir.join("run");
    json_of(&run(
        &gpt_args(&data, "5", "5"),
        &["--out", run_dir.to_str().unwrap()],
    ));
    for n in ["99999999999", "18446744073709551615"] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_kindling"))
            .args([
                "generate",
                "--ckpt",
                run_dir.to_str().unwrap(),
                "--max-new-tokens",
                n,
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut head = [0u8; 64];
        child.stdout.take().unwrap().read_exact(&mut head).unwrap();
        child.kill().unwrap();
        let status = child.wait().unwrap();
        let mut err = String::new();
        child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut err)
            .unwrap();
        assert!(
            !err.contains("panicked") && !err.contains("memory allocation"),
            "{n}: {err}"
        );
        assert!(status.code().is_none(), "{n}: still generating when killed");
    }
    std::fs::remove_dir_all(&dir).ok();
}
