//! Training across processes with MPI (`--features kindling-cli/mpi`): two
//! ranks give one process's result, a rank killed mid-run is survived by
//! `kindling launch`, and bad input is one error with no rank left hanging.
//! Without the feature, `--distributed mpi` says how to get it.

mod common;

use common::{json_of, kindling};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("kindling-dist-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn corpus(dir: &Path) -> PathBuf {
    let text =
        "First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak, speak.\n\n"
            .repeat(60);
    let path = dir.join("corpus.txt");
    std::fs::write(&path, text).unwrap();
    path
}

/// `train gpt` on a tiny model; `iters` steps, evaluated (and checkpointed) every 10.
fn gpt_args(data: &Path, out: &Path, iters: usize, threads: usize) -> Vec<String> {
    [
        "train",
        "gpt",
        "--data",
        data.to_str().unwrap(),
        "--n-layer",
        "2",
        "--n-head",
        "2",
        "--n-embd",
        "32",
        "--block-size",
        "16",
        "--batch-size",
        "8",
        "--max-iters",
        &iters.to_string(),
        "--warmup-iters",
        "5",
        "--lr",
        "3e-3",
        "--dropout",
        "0.1",
        "--eval-interval",
        "10",
        "--eval-iters",
        "4",
        "--threads",
        &threads.to_string(),
        "--json",
        "--out",
        out.to_str().unwrap(),
    ]
    .map(String::from)
    .to_vec()
}

fn mpirun() -> Option<Vec<String>> {
    let found = std::env::var("PATH")
        .ok()?
        .split(':')
        .any(|d| Path::new(d).join("mpirun").is_file());
    if !found {
        return None;
    }
    let mut v = vec!["mpirun".to_string()];
    if unsafe { libc::geteuid() } == 0 {
        v.push("--allow-run-as-root".into());
    }
    v.push("--oversubscribe".into());
    Some(v)
}

fn run_mpi(np: usize, args: &[String]) -> Output {
    let m = mpirun().unwrap();
    Command::new(&m[0])
        .args(&m[1..])
        .args(["-np", &np.to_string(), env!("CARGO_BIN_EXE_kindling")])
        .args(args)
        .args(["--distributed", "mpi"])
        .env_remove("KINDLING_DATA_DIR")
        .output()
        .unwrap()
}

fn last_json(out: &Output) -> serde_json::Value {
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "stderr: {}\nstdout: {stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(stdout.lines().last().expect("a JSON line")).unwrap()
}

#[cfg(not(feature = "mpi"))]
#[test]
fn without_the_feature_distributed_says_how_to_get_it() {
    let out = kindling(&["train", "gpt", "--distributed", "mpi", "--max-iters", "1"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("built without MPI") && err.contains("--features kindling-cli/mpi"),
        "{err}"
    );
}

#[test]
fn distributed_is_refused_outside_training_and_for_unknown_backends() {
    let out = kindling(&["demo", "xor", "--distributed", "mpi"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("applies to the training commands"));
    let out = kindling(&["train", "gpt", "--distributed", "nccl"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("--distributed nccl: unknown"));
}

#[test]
fn launch_refuses_a_missing_hostfile_and_a_command_without_out() {
    let out = kindling(&[
        "launch",
        "--hosts",
        "/no/such/hosts.txt",
        "--",
        "train",
        "gpt",
        "--out",
        "x",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--hosts /no/such/hosts.txt: no such file"),
        "{err}"
    );
    if cfg!(feature = "mpi") {
        let out = kindling(&["launch", "--", "train", "gpt"]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("launch needs the command's --out"), "{err}");
    }
}

#[test]
fn sim_goodput_works_the_articles_example() {
    // 100,000 devices whose job fails every 10 minutes, 5-minute restarts.
    let v = json_of(&kindling(&[
        "sim",
        "goodput",
        "--devices",
        "100000",
        "--mtbf-hours",
        "16666.67",
        "--checkpoint-minutes",
        "1",
        "--restart-minutes",
        "5",
        "--json",
    ]));
    assert!((v["job_mtbf_minutes"].as_f64().unwrap() - 10.0).abs() < 1e-3);
    let g = v["goodput"].as_f64().unwrap();
    assert!((0.36..0.39).contains(&g), "{v}");
}

#[cfg(feature = "mpi")]
#[test]
fn two_ranks_give_one_process_result_bit_for_bit() {
    if mpirun().is_none() {
        eprintln!("skipped: mpirun is not installed (apt-get install openmpi-bin libopenmpi-dev)");
        return;
    }
    let dir = temp_dir("equal");
    let data = corpus(&dir);
    // One process, two threads (two shards) against two ranks of one thread.
    let one = json_of(&kindling(
        &gpt_args(&data, &dir.join("one"), 30, 2)
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
    ));
    let two = last_json(&run_mpi(2, &gpt_args(&data, &dir.join("two"), 30, 1)));
    assert_eq!(one["val_loss"], two["val_loss"], "one {one} two {two}");
    // Rank 0 alone wrote the run, and its checkpoint is the one process's.
    let a = std::fs::read(dir.join("one/model.safetensors")).unwrap();
    let b = std::fs::read(dir.join("two/model.safetensors")).unwrap();
    assert!(a == b, "checkpoints differ");
    // A batch the ranks cannot share is one error, and nobody hangs.
    let mut args = gpt_args(&data, &dir.join("odd"), 5, 1);
    let at = args.iter().position(|a| a == "--batch-size").unwrap();
    args[at + 1] = "7".into();
    let t0 = Instant::now();
    let out = run_mpi(2, &args);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("does not divide among 2 ranks"), "{err}");
    assert_eq!(
        err.matches("does not divide").count(),
        1,
        "one error: {err}"
    );
    assert!(t0.elapsed() < Duration::from_secs(60));
}

/// The pids of the ranks of a job writing `out` (from /proc), by rank.
#[cfg(feature = "mpi")]
fn rank_pids(out: &Path) -> Vec<(usize, u32)> {
    let mut found = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let cmd = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
        let cmd = String::from_utf8_lossy(&cmd);
        if !cmd.contains(out.to_str().unwrap())
            || !cmd.contains("--distributed")
            || cmd.starts_with("mpirun")
        {
            continue;
        }
        let env = std::fs::read(e.path().join("environ")).unwrap_or_default();
        let rank = String::from_utf8_lossy(&env).split('\0').find_map(|kv| {
            kv.strip_prefix("OMPI_COMM_WORLD_RANK=")
                .map(|r| r.parse().unwrap())
        });
        if let Some(r) = rank {
            found.push((r, pid));
        }
    }
    found.sort();
    found
}

#[cfg(feature = "mpi")]
#[test]
fn launch_survives_a_killed_rank_and_ends_where_an_unbroken_run_ends() {
    if mpirun().is_none() {
        eprintln!("skipped: mpirun is not installed (apt-get install openmpi-bin libopenmpi-dev)");
        return;
    }
    let dir = temp_dir("kill");
    let data = corpus(&dir);
    let iters = 400;
    let unbroken = last_json(&run_mpi(
        2,
        &gpt_args(&data, &dir.join("unbroken"), iters, 1),
    ));
    let out = dir.join("broken");
    let mut args = vec!["launch", "--nproc", "2", "--max-restarts", "2", "--"];
    let train = gpt_args(&data, &out, iters, 1);
    args.extend(train.iter().map(String::as_str));
    let child = Command::new(env!("CARGO_BIN_EXE_kindling"))
        .args(&args)
        .env_remove("KINDLING_DATA_DIR")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Once a checkpoint exists, kill rank 1 outright.
    let t0 = Instant::now();
    let killed = loop {
        assert!(
            t0.elapsed() < Duration::from_secs(120),
            "no checkpoint appeared"
        );
        if out.join("model.safetensors").is_file() {
            if let Some(&(_, pid)) = rank_pids(&out).iter().find(|(r, _)| *r == 1) {
                unsafe { libc::kill(pid as i32, libc::SIGKILL) };
                break pid;
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let done = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&done.stderr);
    assert!(done.status.success(), "{err}");
    assert!(
        err.contains("restarting from the last checkpoint"),
        "rank {killed} was killed: {err}"
    );
    assert!(err.contains("finished after 1 restart"), "{err}");
    let broken = last_json(&done);
    assert_eq!(
        broken["val_loss"], unbroken["val_loss"],
        "{broken} vs {unbroken}"
    );
}
