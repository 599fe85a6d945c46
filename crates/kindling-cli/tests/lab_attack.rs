//! End-to-end `kindling attack fgsm`, `kindling train lenet5 --adversarial`
//! and `kindling inspect lenet5` on a small model trained in the test.

mod common;
use common::{json_of, kindling};

use kindling_tensor::{safetensors_io, Tensor};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Output;

fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("kindling-lab-{name}-{}", std::process::id()));
    std::fs::remove_dir_all(&d).ok();
    d
}

fn digit(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../kindling-data/tests/fixtures/digits")
        .join(name)
}

fn train_small(out: &Path, extra: &[&str]) -> serde_json::Value {
    let mut args = vec![
        "train",
        "lenet5",
        "--limit",
        "2000",
        "--epochs",
        "1",
        "--batch-size",
        "32",
        "--threads",
        "2",
        "--json",
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    json_of(&kindling(&args))
}

fn fgsm(ckpt: &Path, out: &Path, eps: &str, extra: &[&str]) -> Output {
    let mut args = vec![
        "attack",
        "fgsm",
        "--ckpt",
        ckpt.to_str().unwrap(),
        "--eps",
        eps,
        "--limit",
        "1000",
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
fn gradient_sign_attack_reduces_accuracy_and_adversarial_training_runs() {
    let plain = temp_dir("plain");
    train_small(&plain, &[]);
    let out = temp_dir("fgsm");
    let r = json_of(&fgsm(&plain, &out, "0.1,0.3", &[]));
    let clean = r["clean_accuracy"].as_f64().unwrap();
    let at_01 = r["accuracy_by_eps"]["0.1"].as_f64().unwrap();
    let at_03 = r["accuracy_by_eps"]["0.3"].as_f64().unwrap();
    assert!(clean > 0.6, "{r}");
    assert!(at_01 < clean - 0.1, "eps 0.1 barely hurt: {r}");
    assert!(at_03 < at_01, "larger eps should hurt more: {r}");
    assert_eq!(r["test_images"], 1000);
    assert_eq!(r["examples"].as_array().unwrap().len(), 10);
    let saved: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("results.json")).unwrap()).unwrap();
    assert_eq!(saved["accuracy_by_eps"], r["accuracy_by_eps"]);
    assert!(std::fs::read(out.join("examples.png"))
        .unwrap()
        .starts_with(b"\x89PNG"));

    // The option is stored in the run's config, so the attack can report it.
    let adv = temp_dir("adv");
    let a = train_small(&adv, &["--adversarial", "0.2"]);
    assert!(a["test_accuracy"].as_f64().unwrap() > 0.3, "{a}");
    let config = std::fs::read_to_string(adv.join("config.json")).unwrap();
    assert!(config.contains("\"adversarial_eps\": 0.2"), "{config}");
    let r = json_of(&fgsm(&adv, &temp_dir("fgsm-adv"), "0.2", &[]));
    assert!((r["trained_adversarial_eps"].as_f64().unwrap() - 0.2).abs() < 1e-6);
    // A transfer attack: crafted on the plain model, tested on the adversarial one.
    let plain_str = plain.to_str().unwrap();
    let t = json_of(&fgsm(
        &adv,
        &temp_dir("fgsm-adv"),
        "0.2",
        &["--craft-on", plain_str],
    ));
    assert!(
        t["crafted_on"].as_str().unwrap().starts_with(plain_str),
        "{t}"
    );
    assert_eq!(t["clean_accuracy"], r["clean_accuracy"]);
    let missing = fgsm(
        &adv,
        &temp_dir("fgsm-adv"),
        "0.2",
        &["--craft-on", "/nonexistent"],
    );
    let err = String::from_utf8_lossy(&missing.stderr);
    assert!(
        err.contains("--craft-on") && err.contains("no checkpoint found"),
        "{err}"
    );

    let maps = plain.join("maps.png");
    let i = json_of(&kindling(&[
        "inspect",
        "lenet5",
        "--ckpt",
        plain.to_str().unwrap(),
        digit("seven_black_on_white.png").to_str().unwrap(),
        "--out",
        maps.to_str().unwrap(),
        "--json",
    ]));
    assert_eq!(i["probabilities"].as_array().unwrap().len(), 10);
    assert_eq!(i["layers"].as_array().unwrap().len(), 6);
    assert!(std::fs::read(&maps).unwrap().starts_with(b"\x89PNG"));

    // A bad image is named.
    let bad = kindling(&[
        "inspect",
        "lenet5",
        "--ckpt",
        plain.to_str().unwrap(),
        plain.join("config.json").to_str().unwrap(),
    ]);
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(
        !bad.status.success() && err.contains("config.json"),
        "{err}"
    );
    assert!(err.contains("unsupported image format"), "{err}");

    for d in [plain, out, adv] {
        std::fs::remove_dir_all(d).ok();
    }
    std::fs::remove_dir_all(temp_dir("fgsm-adv")).ok();
}

#[test]
fn bad_attack_and_inspect_input_is_named() {
    let dir = temp_dir("bad");
    std::fs::create_dir_all(&dir).unwrap();
    // A checkpoint of another model type.
    let gpt = dir.join("gpt.safetensors");
    let meta = HashMap::from([(
        "kindling.config".to_string(),
        r#"{"model":"gpt"}"#.to_string(),
    )]);
    safetensors_io::save(&gpt, &[("w".into(), Tensor::zeros(&[2]))], &meta).unwrap();
    let gpt = gpt.to_str().unwrap();
    let seven = digit("seven_black_on_white.png");
    let seven = seven.to_str().unwrap();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["attack", "fgsm", "--ckpt", gpt],
            "not a LeNet-5 checkpoint",
        ),
        (
            vec!["attack", "fgsm", "--ckpt", "/nonexistent/run"],
            "no checkpoint found",
        ),
        (
            vec!["attack", "fgsm", "--ckpt", gpt, "--eps", "0.1,1.5"],
            "(0, 1]",
        ),
        (
            vec!["attack", "fgsm", "--ckpt", gpt, "--eps", "0"],
            "out of range",
        ),
        (
            vec!["attack", "fgsm", "--ckpt", gpt, "--eps", "-0.1"],
            "--eps",
        ),
        (
            vec!["attack", "fgsm", "--ckpt", gpt, "--eps", "abc"],
            "--eps",
        ),
        (
            vec!["inspect", "lenet5", "--ckpt", gpt, seven],
            "not a LeNet-5 checkpoint",
        ),
        (
            vec!["inspect", "lenet5", "--ckpt", "/nonexistent", seven],
            "no checkpoint found",
        ),
        (
            vec!["train", "lenet5", "--adversarial", "2"],
            "--adversarial",
        ),
        (vec!["train", "lenet5", "--adversarial", "-0.2"], "(0, 1]"),
    ];
    for (args, needle) in cases {
        let out = kindling(&args);
        assert!(!out.status.success(), "{args:?}");
        let err = String::from_utf8(out.stderr).unwrap();
        assert!(
            err.contains(needle) && !err.contains("panicked"),
            "{args:?}: {err}"
        );
    }
    std::fs::remove_dir_all(&dir).ok();
}
