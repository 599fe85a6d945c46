//! Every command that reads a checkpoint names a bad one in the user's
//! words: an empty file, a file of random bytes ("not a Kindling
//! checkpoint") and a real checkpoint cut short ("is truncated"), never the
//! safetensors library's internals (`HeaderTooLarge`, `InvalidHeaderLength`,
//! `MetadataIncompleteBuffer`).

mod common;
use common::{json_of, kindling};

use std::path::{Path, PathBuf};

fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("kindling-ckerr-{name}-{}", std::process::id()));
    std::fs::remove_dir_all(&d).ok();
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// The commands that read `ck`, each with what it needs besides.
fn commands(ck: &str, dir: &Path) -> Vec<Vec<String>> {
    let seven = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../kindling-data/tests/fixtures/digits/seven_black_on_white.png");
    let seven = seven.to_str().unwrap().to_string();
    let out = |name: &str| dir.join(name).to_str().unwrap().to_string();
    let v = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    vec![
        v(&["eval", "--ckpt", ck]),
        v(&["predict", "--ckpt", ck, &seven]),
        v(&["generate", "--ckpt", ck, "--max-new-tokens", "5"]),
        v(&[
            "attention",
            "--ckpt",
            ck,
            "--text",
            "ab",
            "--out",
            &out("att.png"),
        ]),
        v(&[
            "inspect",
            "lenet5",
            "--ckpt",
            ck,
            &seven,
            "--out",
            &out("maps.png"),
        ]),
        v(&["attack", "fgsm", "--ckpt", ck, "--out", &out("attack")]),
    ]
}

#[test]
fn empty_random_and_truncated_checkpoints_are_named_by_every_command() {
    let dir = temp_dir("cmds");
    // A real checkpoint to cut short.
    let run = dir.join("run");
    json_of(&kindling(&[
        "train",
        "lenet5",
        "--limit",
        "100",
        "--epochs",
        "1",
        "--batch-size",
        "50",
        "--threads",
        "1",
        "--json",
        "--out",
        run.to_str().unwrap(),
    ]));
    let real = std::fs::read(run.join("model.safetensors")).unwrap();
    let random: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    let cases: [(&str, Vec<u8>, &str); 3] = [
        (
            "empty",
            Vec::new(),
            "is not a Kindling checkpoint (the file is empty)",
        ),
        ("random", random, "is not a Kindling checkpoint"),
        ("truncated", real[..real.len() / 2].to_vec(), "is truncated"),
    ];
    for (name, bytes, want) in cases {
        let ck = dir.join(format!("{name}.safetensors"));
        std::fs::write(&ck, &bytes).unwrap();
        for args in commands(ck.to_str().unwrap(), &dir) {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let o = kindling(&args);
            let err = String::from_utf8_lossy(&o.stderr);
            assert!(!o.status.success(), "{args:?} succeeded on {name}");
            assert!(
                err.contains(want) && err.contains(&*ck.to_string_lossy()),
                "{args:?} on {name}: {err}"
            );
            for internal in [
                "HeaderTooLarge",
                "InvalidHeaderLength",
                "MetadataIncompleteBuffer",
                "safetensors:",
            ] {
                assert!(!err.contains(internal), "{args:?} on {name}: {err}");
            }
        }
        // Resuming a run whose checkpoint is damaged, and fine-tuning from it.
        let bad_run = dir.join(format!("run-{name}"));
        std::fs::create_dir_all(&bad_run).unwrap();
        std::fs::write(bad_run.join("model.safetensors"), &bytes).unwrap();
        for args in [
            vec![
                "train",
                "lenet5",
                "--limit",
                "100",
                "--epochs",
                "1",
                "--batch-size",
                "50",
                "--out",
                bad_run.to_str().unwrap(),
                "--resume",
            ],
            vec![
                "finetune",
                "lenet5",
                "--from",
                bad_run.to_str().unwrap(),
                "--out",
                dir.join("ft").to_str().unwrap(),
            ],
        ] {
            let o = kindling(&args);
            let err = String::from_utf8_lossy(&o.stderr);
            assert!(
                !o.status.success() && err.contains(want),
                "{args:?} on {name}: {err}"
            );
        }
    }
    std::fs::remove_dir_all(&dir).ok();
}
