//! Running the `kindling` binary from end-to-end tests.

use std::process::{Command, Output};

/// Runs `kindling` with `args` against the repository's own data, whatever
/// the caller's environment says.
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
