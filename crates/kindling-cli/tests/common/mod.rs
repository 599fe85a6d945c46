//! Running the `kindling` binary from end-to-end tests.

use std::process::{Command, Output};

/// Runs `kindling` with `args` against the repository's own data, whatever
/// the caller's environment says.
#[allow(dead_code)] // not every test file uses the repository's data
pub fn kindling(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kindling"))
        .args(args)
        .env_remove("KINDLING_DATA_DIR")
        .output()
        .expect("binary runs")
}

/// The JSON object on the last line of a successful run's stdout.
#[allow(dead_code)] // not every test file reads JSON
pub fn json_of(out: &Output) -> serde_json::Value {
    assert!(
        out.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout.clone()).unwrap();
    serde_json::from_str(stdout.lines().last().expect("stdout")).expect("JSON last line")
}

/// A fresh, empty scratch directory for one test of one file.
#[allow(dead_code)]
pub fn scratch_dir(file: &str, name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("kindling-{file}-{name}-{}", std::process::id()));
    std::fs::remove_dir_all(&d).ok();
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// The one `error:` line of a failed run (exactly one, or the test fails).
#[allow(dead_code)]
pub fn error_line(out: &Output) -> String {
    assert!(!out.status.success(), "should fail");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error")).collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    errors[0].to_string()
}

/// `../shared/data` beside the repository when it holds `dataset`; else
/// `None`, after saying on stderr that the test skips.
#[allow(dead_code)]
pub fn shared_data(dataset: &str) -> Option<std::path::PathBuf> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data");
    if dir.join(dataset).is_dir() {
        Some(dir)
    } else {
        eprintln!("{} has no {dataset}: skipping", dir.display());
        None
    }
}

/// Runs `kindling` with `KINDLING_DATA_DIR` set to `root`.
#[allow(dead_code)]
pub fn kindling_with_data(root: &std::path::Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kindling"))
        .args(args)
        .env("KINDLING_DATA_DIR", root)
        .output()
        .expect("binary runs")
}

/// Fetches `dataset` from the shared mirror into the data root `root`.
#[allow(dead_code)]
pub fn fetch_into(root: &std::path::Path, dataset: &str, shared: &std::path::Path) {
    let out = kindling_with_data(
        root,
        &["data", "fetch", dataset, "--from", shared.to_str().unwrap()],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
