//! `--config FILE.toml` on `train gpt` and `train lm`: flags > config file >
//! preset, kebab- or snake-case keys, and unknown keys named with the file.

mod common;
use common::{json_of, kindling};

use std::path::{Path, PathBuf};

fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("kindling-config-{name}-{}", std::process::id()));
    std::fs::remove_dir_all(&d).ok();
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn corpus(dir: &Path) -> PathBuf {
    let path = dir.join("corpus.txt");
    std::fs::write(
        &path,
        "To be, or not to be, that is the question.\n".repeat(60),
    )
    .unwrap();
    path
}

fn stored_options(run: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(run.join("config.json")).unwrap()).unwrap()
}

#[test]
fn train_gpt_takes_options_from_a_config_file_and_flags_win() {
    let dir = temp_dir("gpt");
    let data = corpus(&dir);
    let config = dir.join("tiny.toml");
    // Both spellings of a key; `lr` is also given as a flag, which wins.
    std::fs::write(
        &config,
        format!(
            "data = {:?}\nn_layer = 1\nn-head = 2\nn_embd = 16\nblock_size = 8\nbatch_size = 4\n\
             max_iters = 4\nwarmup_iters = 1\neval_interval = 2\neval_iters = 1\nlr = 0.002\nbias = false\n",
            data.to_str().unwrap()
        ),
    )
    .unwrap();
    let out = dir.join("run");
    let config_arg = config.to_str().unwrap();
    let out_arg = out.to_str().unwrap();
    json_of(&kindling(&[
        "train",
        "gpt",
        "--config",
        config_arg,
        "--lr",
        "3e-3",
        "--threads",
        "1",
        "--json",
        "--out",
        out_arg,
    ]));
    let o = stored_options(&out);
    assert_eq!(o["n_layer"], 1, "from the file: {o}");
    assert_eq!(o["n_head"], 2, "kebab-case key from the file: {o}");
    assert_eq!(o["bias"], false, "from the file: {o}");
    assert!(
        (o["lr"].as_f64().unwrap() - 3e-3).abs() < 1e-9,
        "the flag wins: {o}"
    );
    // Not in the file nor given: the preset's.
    assert!(
        (o["weight_decay"].as_f64().unwrap() - 0.1).abs() < 1e-6,
        "{o}"
    );
    assert_eq!(o["seed"], 1337, "{o}");
}

#[test]
fn an_unknown_or_mistyped_config_key_names_the_key_and_the_file() {
    let dir = temp_dir("bad");
    let config = dir.join("bad.toml");
    std::fs::write(&config, "n_layers = 2\n").unwrap();
    for cmd in ["gpt", "lm"] {
        let e = kindling(&["train", cmd, "--config", config.to_str().unwrap()]);
        assert!(!e.status.success());
        let err = String::from_utf8_lossy(&e.stderr);
        assert!(err.contains("unknown key `n_layers`"), "{cmd}: {err}");
        assert!(err.contains("bad.toml"), "{cmd}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{cmd}: {err}");
    }
    std::fs::write(&config, "n_layer = \"four\"\n").unwrap();
    let e = kindling(&["train", "lm", "--config", config.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&e.stderr);
    assert!(!e.status.success());
    assert!(
        err.contains("key `n_layer`") && err.contains("bad.toml"),
        "{err}"
    );
    std::fs::write(&config, "preset = \"no-such-preset\"\n").unwrap();
    let e = kindling(&["train", "gpt", "--config", config.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&e.stderr);
    assert!(err.contains("no-such-preset"), "{err}");
}
