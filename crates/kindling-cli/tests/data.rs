//! End-to-end: `kindling data list` and `kindling data fetch` against a
//! temporary KINDLING_DATA_DIR, copying from the shared data that sits beside
//! the repository (`<repo>/../shared/data`) when it is there.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const NAMES: [&str; 12] = [
    "mnist",
    "shakespeare",
    "tang-poems",
    "classical-modern",
    "usps",
    "fashion-mnist",
    "tokenizers",
    "smollm2-135m-instruct",
    "alpaca",
    "alpaca-zh",
    "hh-rlhf",
    "word-vectors",
];

/// A temporary data root, removed on drop.
struct DataRoot(PathBuf);

impl DataRoot {
    fn new(name: &str) -> DataRoot {
        let dir =
            std::env::temp_dir().join(format!("kindling-cli-data-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        DataRoot(dir)
    }

    fn kindling(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_kindling"))
            .args(args)
            .env("KINDLING_DATA_DIR", &self.0)
            .output()
            .expect("binary runs")
    }
}

impl Drop for DataRoot {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn shared_data() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data");
    if dir.is_dir() {
        Some(dir)
    } else {
        eprintln!(
            "{} not found: skipping the fetch-from-mirror test",
            dir.display()
        );
        None
    }
}

fn last_json(out: &Output) -> serde_json::Value {
    assert!(
        out.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout.clone()).unwrap();
    assert_eq!(
        stdout.lines().count(),
        1,
        "with --json, stdout holds only the JSON object: {stdout}"
    );
    serde_json::from_str(stdout.trim_end()).expect("stdout is JSON")
}

fn one_line_error(out: &Output) -> String {
    assert!(!out.status.success());
    let stderr = String::from_utf8(out.stderr.clone()).unwrap();
    let last = stderr.lines().last().unwrap_or("").to_string();
    assert!(last.starts_with("error: "), "{stderr}");
    last
}

#[test]
fn list_json_names_every_dataset_and_none_is_present_in_an_empty_root() {
    let root = DataRoot::new("list-empty");
    let v = last_json(&root.kindling(&["data", "list", "--json"]));
    assert_eq!(v["data_root"], root.0.display().to_string());
    let datasets = v["datasets"].as_array().unwrap();
    let names: Vec<&str> = datasets
        .iter()
        .map(|d| d["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, NAMES);
    for d in datasets {
        assert_eq!(d["present"], false, "{d}");
        assert!(!d["license"].as_str().unwrap().is_empty());
        for f in d["files"].as_array().unwrap() {
            assert_eq!(f["state"], "missing");
            assert_eq!(f["sha256"].as_str().unwrap().len(), 64);
        }
    }
}

#[test]
fn fetch_from_the_shared_data_verifies_every_pinned_file() {
    let Some(shared) = shared_data() else {
        return;
    };
    let root = DataRoot::new("fetch-all");
    let shared = shared.to_str().unwrap();
    for name in NAMES {
        let v = last_json(&root.kindling(&["data", "fetch", name, "--from", shared, "--json"]));
        assert_eq!(v["dataset"], name);
        assert_eq!(v["copied"], v["files"].as_array().unwrap().len(), "{v}");
        assert!(root.0.join(name).is_dir());
    }
    let v = last_json(&root.kindling(&["data", "list", "--json"]));
    for d in v["datasets"].as_array().unwrap() {
        assert_eq!(d["present"], true, "{d}");
    }

    // Again: everything is kept, nothing copied, no source needed.
    let v = last_json(&root.kindling(&["data", "fetch", "usps", "--json"]));
    assert_eq!(
        (v["present"].as_u64(), v["copied"].as_u64()),
        (Some(4), Some(0))
    );
}

#[test]
fn fetch_accepts_a_mirror_holding_the_files_directly() {
    let Some(shared) = shared_data() else {
        return;
    };
    let root = DataRoot::new("fetch-flat");
    let usps = shared.join("usps");
    let out = root.kindling(&["data", "fetch", "usps", "--from", usps.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(stdout.contains("4 copied"), "{stdout}");
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.contains("usps/train-images-idx3-ubyte.gz: copying from"),
        "progress goes to stderr: {stderr}"
    );
}

#[test]
fn unknown_dataset_is_one_line_listing_the_known_ones() {
    let root = DataRoot::new("unknown");
    let line = one_line_error(&root.kindling(&["data", "fetch", "mnsit"]));
    assert!(line.contains("`mnsit`"), "{line}");
    for name in NAMES {
        assert!(line.contains(name), "{line}");
    }
}

#[test]
fn dataset_without_url_and_without_from_says_to_use_from() {
    let root = DataRoot::new("no-url");
    let line = one_line_error(&root.kindling(&["data", "fetch", "tang-poems"]));
    assert!(line.contains("tang-poems/tang.jsonl.gz"), "{line}");
    assert!(line.contains("--from DIR"), "{line}");
    assert!(!root.0.join("tang-poems").exists(), "nothing left behind");
}

#[test]
fn missing_mirror_file_names_where_it_looked() {
    let root = DataRoot::new("bad-mirror");
    let mirror = root.0.join("empty-mirror");
    std::fs::create_dir_all(&mirror).unwrap();
    let line = one_line_error(&root.kindling(&[
        "data",
        "fetch",
        "usps",
        "--from",
        mirror.to_str().unwrap(),
    ]));
    assert!(
        line.contains(
            &mirror
                .join("usps/train-images-idx3-ubyte.gz")
                .display()
                .to_string()
        ),
        "{line}"
    );
    assert!(!root.0.join("usps").exists(), "nothing left behind");
}

#[test]
fn the_repos_mnist_is_reported_present_without_a_source() {
    // The default data root is the repository's data/, where MNIST is checked
    // in; nothing is copied or written.
    let out = Command::new(env!("CARGO_BIN_EXE_kindling"))
        .args(["data", "fetch", "mnist", "--json"])
        .env_remove("KINDLING_DATA_DIR")
        .output()
        .expect("binary runs");
    let v = last_json(&out);
    assert_eq!(v["present"], 4, "{v}");
    let dir = PathBuf::from(v["dir"].as_str().unwrap());
    assert!(dir.ends_with("data/mnist"), "{}", dir.display());
}
