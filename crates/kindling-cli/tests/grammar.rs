//! `kindling <verb> <model>`: the model word is accepted everywhere, and the
//! old spellings without it (`kindling eval --ckpt DIR`) still mean the same.

mod common;
use common::kindling;

#[test]
fn old_and_new_spellings_run_the_same_command() {
    let missing = std::env::temp_dir().join(format!("kindling-no-such-run-{}", std::process::id()));
    let m = missing.to_str().unwrap();
    for (new, old) in [
        (
            vec!["eval", "lenet5", "--ckpt", m],
            vec!["eval", "--ckpt", m],
        ),
        (
            vec!["predict", "lenet5", "--ckpt", m, "digit.png"],
            vec!["predict", "--ckpt", m, "digit.png"],
        ),
        (
            vec![
                "attention",
                "gpt",
                "--ckpt",
                m,
                "--text",
                "ab",
                "--out",
                "a.png",
            ],
            vec!["attention", "--ckpt", m, "--text", "ab", "--out", "a.png"],
        ),
    ] {
        let (a, b) = (kindling(&new), kindling(&old));
        let err = String::from_utf8_lossy(&a.stderr).to_string();
        assert_eq!(a.status.code(), Some(1), "{new:?}: {err}");
        assert!(
            err.contains("--ckpt") && err.contains("no checkpoint found"),
            "{err}"
        );
        assert_eq!(a.status.code(), b.status.code(), "{old:?}");
        assert_eq!(err, String::from_utf8_lossy(&b.stderr), "{old:?}");
    }
}

#[test]
fn a_verb_without_its_model_word_shows_the_models_and_the_old_spelling() {
    let out = kindling(&["eval", "--help"]);
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(help.contains("lenet5"), "{help}");
    assert!(help.contains("old spelling"), "{help}");
}
