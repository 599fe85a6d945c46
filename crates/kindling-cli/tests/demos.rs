//! End-to-end: the `kindling demo` commands as a user runs them.

use std::process::Command;

fn kindling(args: &[&str]) -> std::process::Output {
    // The repo's own data, whatever the caller's environment says.
    Command::new(env!("CARGO_BIN_EXE_kindling"))
        .args(args)
        .env_remove("KINDLING_DATA_DIR")
        .output()
        .expect("binary runs")
}

fn last_json(out: &std::process::Output) -> serde_json::Value {
    assert!(
        out.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout.clone()).unwrap();
    let last = stdout.lines().last().expect("some stdout");
    assert_eq!(
        stdout.lines().count(),
        1,
        "with --json, stdout holds only the JSON object"
    );
    serde_json::from_str(last).expect("last line is JSON")
}

#[test]
fn perceptron_learns_apples_but_not_xor() {
    let v = last_json(&kindling(&["demo", "perceptron", "--json"]));
    assert_eq!(v["apple_accuracy"], 1.0);
    assert!(v["xor_accuracy"].as_f64().unwrap() <= 0.75);
}

#[test]
fn mlp_solves_xor() {
    let v = last_json(&kindling(&["demo", "xor", "--json"]));
    assert_eq!(v["accuracy"], 1.0);
    assert!(v["final_loss"].as_f64().unwrap() < 0.05);
    assert!(v["steps"].as_u64().unwrap() > 0);
}

#[test]
fn polyfit_matches_least_squares_and_draws_a_png() {
    let png = std::env::temp_dir().join(format!("kindling-polyfit-{}.png", std::process::id()));
    let v = last_json(&kindling(&[
        "demo",
        "polyfit",
        "--json",
        "--plot",
        png.to_str().unwrap(),
    ]));
    let (gd, ls) = (
        v["gd_loss"].as_f64().unwrap(),
        v["lstsq_loss"].as_f64().unwrap(),
    );
    assert!(gd <= ls * 1.01, "gd {gd} vs lstsq {ls}");
    assert!(v["max_abs_coef_diff"].as_f64().unwrap() < 0.01);
    let bytes = std::fs::read(&png).unwrap();
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
    std::fs::remove_file(png).ok();
}

#[test]
fn bad_flags_and_values_give_one_line_errors() {
    for args in [
        &["demo", "xor", "--bogus"][..],
        &["demo", "polyfit", "--samples", "abc"],
        &["demo", "polyfit", "--samples", "3"],
        &["demo", "xor", "--lr", "0"],
        &["demo", "xor", "--hidden", "0"],
        &["nonsense"],
    ] {
        let out = kindling(args);
        assert!(!out.status.success(), "{args:?} should fail");
        let err = String::from_utf8(out.stderr).unwrap();
        assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: {err}");
        assert!(
            err.starts_with("error: ") && !err.contains("panicked"),
            "{args:?}: {err}"
        );
    }
}

#[test]
fn every_command_has_help() {
    for args in [
        &["--help"][..],
        &["demo", "--help"],
        &["demo", "perceptron", "--help"],
        &["demo", "xor", "--help"],
        &["demo", "polyfit", "--help"],
    ] {
        let out = kindling(args);
        assert!(out.status.success(), "{args:?}");
        assert!(
            String::from_utf8(out.stdout).unwrap().contains("Usage"),
            "{args:?}"
        );
    }
}

#[test]
fn a_closed_pipe_ends_the_program_quietly() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    // Like `kindling demo xor --hidden 3000 | head -1`.
    let mut child = Command::new(env!("CARGO_BIN_EXE_kindling"))
        .args(["demo", "xor", "--hidden", "3000"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    // The reader is dropped here: the pipe is closed.
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!first.is_empty());
    assert!(
        !err.contains("panicked") && !err.contains("Broken pipe"),
        "{err}"
    );
}

#[test]
fn argument_errors_are_one_line_and_keep_what_is_wrong() {
    let stderr = |args: &[&str]| {
        let out = kindling(args);
        assert_eq!(out.status.code(), Some(2));
        String::from_utf8_lossy(&out.stderr).trim().to_string()
    };
    let e = stderr(&["eval"]);
    assert!(e.contains("--ckpt") && !e.contains('\n'), "{e}");
    let e = stderr(&["chat", "--mesage", "hi"]);
    assert!(e.contains("'--message'") && !e.contains('\n'), "{e}");
    let e = stderr(&["demo", "xor", "--hidden", "-3"]);
    assert!(e.contains("--lr=-0.1"), "{e}");
    let e = stderr(&["train", "lenet5", "--optimiser", "sgd"]);
    assert!(e.contains("'--optimizer'"), "{e}");
}
