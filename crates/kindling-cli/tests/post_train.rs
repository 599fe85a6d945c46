//! End-to-end: the post-training commands on a tiny random chat model
//! (`tests/fixtures/tiny-chat`, `tools/gen_tiny_chat_fixture.py`): SFT with
//! LoRA, merging, `--adapter`, a reward model, DPO judged by it, PPO, GRPO
//! and a chat memory consolidated into an adapter, with the files each
//! leaves and the one-line errors bad input gets.

mod common;
use common::{json_of, kindling};
use std::path::{Path, PathBuf};

fn model() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/tiny-chat")
        .to_str()
        .unwrap()
        .to_string()
}

struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        let d = std::env::temp_dir().join(format!("kindling-post-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        Scratch(d)
    }
    fn path(&self, name: &str) -> String {
        self.0.join(name).to_str().unwrap().to_string()
    }
    fn write(&self, name: &str, lines: impl Iterator<Item = serde_json::Value>) -> String {
        let text: String = lines.map(|v| v.to_string() + "\n").collect();
        std::fs::write(self.0.join(name), text).unwrap();
        self.path(name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn error_line(out: &std::process::Output) -> String {
    assert!(!out.status.success(), "expected a failure");
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    let last = stderr.lines().last().unwrap_or("").to_string();
    assert!(last.starts_with("error: "), "{stderr}");
    last
}

fn sft_data(s: &Scratch) -> String {
    let colours = ["Red.", "Blue.", "Green."];
    s.write(
        "sft.jsonl",
        (0..300).map(|i| serde_json::json!({"instruction": format!("Name colour {i}."), "input": "", "output": colours[i % 3]})),
    )
}

#[test]
fn sft_with_lora_saves_a_peft_adapter_that_merges_and_runs_on_top() {
    let s = Scratch::new("sft");
    let data = sft_data(&s);
    let run = s.path("run");
    let args = [
        "finetune",
        "sft",
        "--model",
        &model(),
        "--data",
        &data,
        "--lora-rank",
        "4",
        "--steps",
        "8",
        "--seq-len",
        "128",
        "--lr",
        "0.01",
        "--eval-every",
        "4",
        "--eval-examples",
        "4",
        "--samples",
        "1",
        "--out",
        &run,
        "--json",
    ];
    let v = json_of(&kindling(&args));
    let (before, after) = (
        v["val_loss_before"].as_f64().unwrap(),
        v["val_loss_after"].as_f64().unwrap(),
    );
    assert!(after < before, "held-out answer loss {before} -> {after}");
    assert_eq!(
        v["trainable_parameters"], 4096,
        "rank 4 on 7 projections of 2 layers"
    );
    for f in [
        "adapter/adapter_config.json",
        "adapter/adapter_model.safetensors",
        "samples.json",
        "metrics.jsonl",
        "curves.png",
    ] {
        assert!(Path::new(&run).join(f).is_file(), "{f}");
    }
    // Nothing lost: the same command again is refused.
    let e = error_line(&kindling(&args));
    assert!(e.contains("--resume") || e.contains("--force"), "{e}");

    // The adapter on top of the base, and merged into it, give the same next token.
    let adapter = format!("{run}/adapter");
    let merged = s.path("merged");
    let m = json_of(&kindling(&[
        "lora",
        "merge",
        "--model",
        &model(),
        "--adapter",
        &adapter,
        "--out",
        &merged,
        "--json",
    ]));
    assert_eq!(m["merged_layers"], 14);
    let top = |extra: &[&str], model: &str| {
        let mut a = vec![
            "next-token",
            "--model",
            model,
            "--text",
            "Name colour 7.",
            "--top",
            "3",
            "--json",
        ];
        a.extend_from_slice(extra);
        json_of(&kindling(&a))["top"].clone()
    };
    let (on_top, folded, base) = (
        top(&["--adapter", &adapter], &model()),
        top(&[], &merged),
        top(&[], &model()),
    );
    for (a, b) in on_top
        .as_array()
        .unwrap()
        .iter()
        .zip(folded.as_array().unwrap())
    {
        assert_eq!(a["id"], b["id"]);
        assert!((a["logit"].as_f64().unwrap() - b["logit"].as_f64().unwrap()).abs() < 1e-4);
    }
    assert_ne!(on_top, base, "the adapter changes the model");
}

#[test]
fn bad_sft_input_gets_one_line_naming_the_file_and_field() {
    let s = Scratch::new("sft-bad");
    let bad = s.write(
        "bad.jsonl",
        [serde_json::json!({"instruction": "x"})].into_iter(),
    );
    let e = error_line(&kindling(&[
        "finetune",
        "sft",
        "--model",
        &model(),
        "--data",
        &bad,
        "--out",
        &s.path("r"),
    ]));
    assert!(e.contains("bad.jsonl:1") && e.contains("`output`"), "{e}");
    let role = s.write(
        "role.jsonl",
        [serde_json::json!({"messages": [{"role": "robot", "content": "x"}, {"role": "assistant", "content": "y"}]})].into_iter(),
    );
    let e = error_line(&kindling(&[
        "finetune",
        "sft",
        "--model",
        &model(),
        "--data",
        &role,
        "--out",
        &s.path("r2"),
    ]));
    assert!(
        e.contains("role.jsonl:1") && e.contains("unknown chat role `robot`"),
        "{e}"
    );
    let data = sft_data(&s);
    let e = error_line(&kindling(&[
        "finetune",
        "sft",
        "--model",
        &model(),
        "--data",
        &data,
        "--lora-rank",
        "2",
        "--lora-targets",
        "c_attn",
        "--out",
        &s.path("r3"),
    ]));
    assert!(
        e.contains("LoRA target `c_attn` matches no linear layer") && e.contains("q_proj"),
        "{e}"
    );
    assert!(!Path::new(&s.path("r3")).join("metrics.jsonl").exists());
}

#[test]
fn reward_model_dpo_judged_by_it_ppo_and_grpo_run_end_to_end() {
    let s = Scratch::new("pref");
    let pairs = s.write(
        "pairs.jsonl",
        (0..200).map(|i| serde_json::json!({"prompt": format!("Say something {i}."), "chosen": "Blue.", "rejected": "Red."})),
    );
    let rm = s.path("rm");
    let v = json_of(&kindling(&[
        "train",
        "reward",
        "--model",
        &model(),
        "--data",
        &pairs,
        "--steps",
        "4",
        "--batch-size",
        "2",
        "--accum-steps",
        "1",
        "--eval-every",
        "2",
        "--out",
        &rm,
        "--json",
    ]));
    for k in ["train_pairs", "val_accuracy", "test_accuracy"] {
        assert!(v[k].is_number(), "{k} in {v}");
    }
    assert_eq!(
        v["train_pairs"].as_u64().unwrap()
            + v["val_pairs"].as_u64().unwrap()
            + v["test_pairs"].as_u64().unwrap(),
        200
    );
    let r = json_of(&kindling(&[
        "reward",
        "--model",
        &rm,
        "--prompt",
        "Say something.",
        "--response",
        "Blue.",
        "--json",
    ]));
    assert!(r["reward"].as_f64().unwrap().is_finite());

    let d = json_of(&kindling(&[
        "finetune",
        "dpo",
        "--model",
        &model(),
        "--data",
        &pairs,
        "--steps",
        "4",
        "--batch-size",
        "2",
        "--accum-steps",
        "1",
        "--eval-every",
        "2",
        "--lora-rank",
        "4",
        "--judge",
        &rm,
        "--judge-prompts",
        "3",
        "--out",
        &s.path("dpo"),
        "--json",
    ]));
    assert!(
        d["win_rate"]
            .as_f64()
            .is_some_and(|w| (0.0..=1.0).contains(&w)),
        "{d}"
    );
    assert!(Path::new(&s.path("dpo"))
        .join("reference_logps.safetensors")
        .is_file());

    let p = json_of(&kindling(&[
        "finetune",
        "ppo",
        "--model",
        &model(),
        "--reward",
        &rm,
        "--data",
        &pairs,
        "--rollouts",
        "2",
        "--rollout-size",
        "2",
        "--minibatch-size",
        "1",
        "--max-new-tokens",
        "4",
        "--lora-rank",
        "2",
        "--out",
        &s.path("ppo"),
        "--json",
    ]));
    assert_eq!(
        p["first"]["kl"], 0.0,
        "the first rollout is the reference's own"
    );
    assert!(p["last"]["entropy"].is_number());
    assert!(Path::new(&s.path("ppo")).join("curves.png").is_file());

    let qa = s.write(
        "qa.jsonl",
        (0..30)
            .map(|i| serde_json::json!({"question": format!("What is {i} + 1?"), "answer": i + 1})),
    );
    let g = json_of(&kindling(&[
        "finetune",
        "grpo",
        "--model",
        &model(),
        "--task",
        &qa,
        "--steps",
        "2",
        "--eval-every",
        "1",
        "--group-size",
        "2",
        "--prompts-per-step",
        "2",
        "--max-new-tokens",
        "4",
        "--eval-problems",
        "3",
        "--out",
        &s.path("grpo"),
        "--json",
    ]));
    for k in ["accuracy_before", "accuracy_after", "steps"] {
        assert!(g[k].is_number(), "{k} in {g}");
    }
    let e = error_line(&kindling(&[
        "finetune",
        "grpo",
        "--model",
        &model(),
        "--task",
        &pairs,
        "--out",
        &s.path("g2"),
    ]));
    assert!(
        e.contains("pairs.jsonl:1") && e.contains("`question`"),
        "{e}"
    );
}

#[test]
fn a_chat_memory_is_stored_consolidated_into_adapters_and_rolled_back() {
    let s = Scratch::new("memory");
    let mem = s.path("mem");
    for text in ["My cat is Tom.", "I live in Oslo."] {
        json_of(&kindling(&[
            "chat",
            "--model",
            &model(),
            "--memory",
            &mem,
            "--message",
            text,
            "--max-new-tokens",
            "2",
            "--json",
        ]));
    }
    let turns = std::fs::read_to_string(Path::new(&mem).join("conversations.jsonl")).unwrap();
    assert_eq!(
        turns.lines().count(),
        4,
        "two user turns and two answers: {turns}"
    );
    let c = json_of(&kindling(&[
        "memory",
        "consolidate",
        "--memory",
        &mem,
        "--model",
        &model(),
        "--steps",
        "5",
        "--json",
    ]));
    assert_eq!(
        (c["adapter"].as_u64(), c["facts"].as_u64()),
        (Some(1), Some(2))
    );
    // The base's own non-empty answers to everyday prompts (none or few for
    // this random model) are replayed beside the facts.
    assert!(c["replayed"].as_u64().unwrap() <= 32, "{c}");
    assert!(c["recall_before"].is_number() && c["recall_after"].is_number());
    json_of(&kindling(&[
        "memory",
        "consolidate",
        "--memory",
        &mem,
        "--model",
        &model(),
        "--steps",
        "5",
        "--json",
    ]));
    let current = || std::fs::read_to_string(Path::new(&mem).join("current")).unwrap();
    assert_eq!(current().trim(), "0002");
    assert!(
        Path::new(&mem)
            .join("adapters/0001/adapter_model.safetensors")
            .is_file(),
        "history kept"
    );
    let out = kindling(&["memory", "rollback", "--memory", &mem, "--to", "1"]);
    assert!(out.status.success());
    assert_eq!(current().trim(), "0001");
    // The next chat loads the consolidated adapter.
    let out = kindling(&[
        "chat",
        "--model",
        &model(),
        "--memory",
        &mem,
        "--message",
        "Where do I live?",
        "--max-new-tokens",
        "2",
    ]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("loading consolidated adapter 0001"));
}

#[test]
fn bad_input_to_the_other_commands_is_one_line_and_creates_nothing() {
    let s = Scratch::new("bad-other");
    let e = error_line(&kindling(&[
        "bench",
        "sft",
        "--model",
        &model(),
        "--batch",
        "0",
    ]));
    assert!(e.contains("--batch must be at least 1"), "{e}");
    let mem = s.path("no-memory");
    let e = error_line(&kindling(&[
        "memory", "rollback", "--memory", &mem, "--to", "1",
    ]));
    assert!(e.contains("no such memory directory"), "{e}");
    assert!(!Path::new(&mem).exists(), "a rollback creates nothing");
    // An adapter whose weights are cut short.
    let ad = s.0.join("cut");
    std::fs::create_dir_all(&ad).unwrap();
    std::fs::write(
        ad.join("adapter_config.json"),
        r#"{"peft_type": "LORA", "r": 2, "lora_alpha": 4, "target_modules": ["q_proj"]}"#,
    )
    .unwrap();
    let full = std::fs::read(Path::new(&model()).join("model.safetensors")).unwrap();
    std::fs::write(ad.join("adapter_model.safetensors"), &full[..100]).unwrap();
    let merged = s.path("merged");
    let e = error_line(&kindling(&[
        "lora",
        "merge",
        "--model",
        &model(),
        "--adapter",
        ad.to_str().unwrap(),
        "--out",
        &merged,
    ]));
    assert!(e.contains("adapter_model.safetensors is truncated"), "{e}");
    assert!(!Path::new(&merged).exists());
    let e = error_line(&kindling(&[
        "reward",
        "--model",
        &s.path("none"),
        "--prompt",
        "a",
        "--response",
        "b",
    ]));
    assert!(e.contains("no such file or directory"), "{e}");
}

#[test]
fn an_idle_chat_consolidates_its_memory_in_the_background() {
    use std::io::Write;
    let s = Scratch::new("idle");
    let mem = s.path("mem");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_kindling"))
        .args([
            "chat",
            "--model",
            &model(),
            "--memory",
            &mem,
            "--max-new-tokens",
            "2",
            "--idle-consolidate",
            "0.3",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    writeln!(stdin, "My cat is Tom.").unwrap();
    stdin.flush().unwrap();
    // Nothing more is typed: the chat sits idle and consolidates.
    let adapter = Path::new(&mem).join("adapters/0001/adapter_model.safetensors");
    let t0 = std::time::Instant::now();
    while !adapter.is_file() {
        assert!(
            t0.elapsed() < std::time::Duration::from_secs(120),
            "no adapter after 120 s idle"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    // Leaving waits for the consolidation to finish: nothing is lost.
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("idle: consolidating"), "{err}");
    assert!(err.contains("adapter 0001 ready"), "{err}");
    let current = std::fs::read_to_string(Path::new(&mem).join("current")).unwrap();
    assert_eq!(current.trim(), "0001");
}
