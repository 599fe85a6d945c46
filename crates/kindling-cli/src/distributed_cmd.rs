//! Training across processes: `--distributed mpi` on any training command
//! (run under `mpirun`), `kindling launch` (mpirun under a supervisor that
//! restarts the job from its last checkpoint when a rank dies), and
//! `kindling sim goodput` (what failures and checkpoints cost at scale).

use crate::common::{CliResult, JsonArg};
use crate::report::Report;
use anyhow::bail;
use clap::{Args, Subcommand};
use serde_json::json;
use std::path::PathBuf;
use std::sync::OnceLock;

/// What must live until the process ends (MPI is finalized when it drops).
#[derive(Default)]
pub struct Session {
    #[cfg(feature = "mpi")]
    _mpi: Option<kindling_train::distributed::mpi::Session>,
}

/// The descriptor stderr had before a rank other than 0 silenced it.
static SAVED_STDERR: OnceLock<i32> = OnceLock::new();

const NO_MPI: &str = "--distributed mpi: this kindling was built without MPI; build it with `cargo build --release --features kindling-cli/mpi` (needs libopenmpi-dev, openmpi-bin and libclang-dev)";

/// Joins the MPI job when `backend` says so: installs the collective,
/// checks that every rank runs the same binary and arguments, and silences
/// the progress output of ranks other than 0.
pub fn setup(backend: Option<&str>, training: bool) -> CliResult<Session> {
    let Some(backend) = backend else {
        return Ok(Session::default());
    };
    if backend != "mpi" {
        bail!("--distributed {backend}: unknown (the one backend is mpi)");
    }
    if !training {
        bail!("--distributed applies to the training commands (train, finetune, sweep, distill, prune)");
    }
    join_mpi()
}

#[cfg(not(feature = "mpi"))]
fn join_mpi() -> CliResult<Session> {
    bail!(NO_MPI)
}

#[cfg(feature = "mpi")]
fn join_mpi() -> CliResult<Session> {
    use kindling_train::distributed::{self, mpi::Mpi};
    let (mpi, session) = Mpi::init().map_err(|e| anyhow::anyhow!(e.to_string()))?;
    let rank = distributed::Collective::rank(&mpi);
    distributed::install(Box::new(mpi))?;
    let c = distributed::get().expect("installed");
    let args: Vec<String> = std::env::args().skip(1).collect();
    let exe = std::env::current_exe()
        .ok()
        .and_then(|p| std::fs::read(p).ok())
        .unwrap_or_default();
    let check = distributed::check_same_job(c, distributed::fingerprint(&[&exe]), "binary")
        .and_then(|_| {
            distributed::check_same_job(
                c,
                distributed::fingerprint(&[args.join("\u{1f}").as_bytes()]),
                "command line",
            )
        });
    if rank != 0 {
        // Rank 0 speaks for the job (its report, its JSON); the others keep
        // their stderr for an error of their own only.
        // SAFETY: plain descriptor calls on this process's own stderr.
        unsafe {
            let saved = libc::dup(2);
            let null = libc::open(c"/dev/null".as_ptr(), libc::O_WRONLY);
            if saved >= 0 && null >= 0 {
                libc::dup2(null, 1);
                libc::dup2(null, 2);
                libc::close(null);
                let _ = SAVED_STDERR.set(saved);
            }
        }
    }
    check?;
    if rank == 0 {
        eprintln!(
            "distributed: {} ranks over MPI; rank 0 writes the run",
            c.size()
        );
    }
    Ok(Session {
        _mpi: Some(session),
    })
}

/// Reports a failed command in a distributed job and ends every rank (so
/// that none waits forever on a dead one). Returns only when the process
/// is not part of a job.
pub fn fail(message: &str) {
    let Some(c) = kindling_train::distributed::get().filter(|c| c.size() > 1) else {
        return;
    };
    if c.rank() == 0 {
        eprintln!("error: {message}");
    } else {
        // An error every rank meets is said by rank 0, whose abort ends
        // this process first; one of this rank's own is said after a pause.
        std::thread::sleep(std::time::Duration::from_secs(3));
        let line = format!("error: rank {}: {message}\n", c.rank());
        if let Some(&fd) = SAVED_STDERR.get() {
            // SAFETY: writing a buffer to a descriptor this process owns.
            unsafe {
                libc::write(fd, line.as_ptr().cast(), line.len());
            }
        } else {
            eprint!("{line}");
        }
    }
    c.abort(1)
}

#[derive(Args)]
pub struct Launch {
    /// Ranks to start (processes; across the machines of --hosts).
    #[arg(long, default_value_t = 2)]
    pub nproc: usize,
    /// An Open MPI hostfile (a line per machine: `name slots=N`) [default: this machine only].
    #[arg(long, value_name = "FILE")]
    pub hosts: Option<PathBuf>,
    /// Restarts after a failure, each from the run's last checkpoint (`--resume`).
    #[arg(long, default_value_t = 3)]
    pub max_restarts: usize,
    /// The mpirun to use.
    #[arg(long, default_value = "mpirun")]
    pub mpirun: String,
    /// The training command and its options, after `--` (e.g. `-- train gpt --out runs/g`).
    #[arg(last = true, required = true, value_name = "COMMAND")]
    pub command: Vec<String>,
}

/// The arguments of attempt `n` (0 first): `--distributed mpi`, and after
/// a failure `--resume` instead of `--force`.
pub fn attempt_args(command: &[String], n: usize) -> Vec<String> {
    let mut args: Vec<String> = command
        .iter()
        .filter(|a| n == 0 || a.as_str() != "--force")
        .cloned()
        .collect();
    if !args.iter().any(|a| a == "--distributed") {
        args.extend(["--distributed".into(), "mpi".into()]);
    }
    if n > 0 && !args.iter().any(|a| a == "--resume") {
        args.push("--resume".into());
    }
    args
}

pub fn launch(a: Launch) -> CliResult<()> {
    if a.nproc == 0 {
        bail!("--nproc must be at least 1");
    }
    if let Some(h) = &a.hosts {
        if !h.is_file() {
            bail!("--hosts {}: no such file", h.display());
        }
    }
    if !cfg!(feature = "mpi") {
        bail!(NO_MPI);
    }
    let first = a.command.first().map(String::as_str).unwrap_or("");
    if !["train", "finetune", "sweep", "distill", "prune"].contains(&first) {
        bail!("launch runs a training command (train, finetune, sweep, distill, prune), got `{first}`");
    }
    if !a.command.iter().any(|x| x == "--out") {
        bail!("launch needs the command's --out: a restart continues the run there");
    }
    let exe = std::env::current_exe()?;
    let root = unsafe { libc::geteuid() } == 0;
    let t0 = std::time::Instant::now();
    for n in 0..=a.max_restarts {
        let mut cmd = std::process::Command::new(&a.mpirun);
        if root {
            cmd.arg("--allow-run-as-root");
        }
        cmd.args(["--oversubscribe", "-np", &a.nproc.to_string()]);
        if let Some(h) = &a.hosts {
            cmd.arg("--hostfile").arg(h);
        }
        cmd.arg(&exe).args(attempt_args(&a.command, n));
        let status = cmd
            .status()
            .map_err(|e| anyhow::anyhow!("--mpirun {}: cannot run it: {e}", a.mpirun))?;
        if status.success() {
            if n > 0 {
                eprintln!(
                    "launch: finished after {n} restart{} ({:.1} s in all)",
                    if n == 1 { "" } else { "s" },
                    t0.elapsed().as_secs_f64()
                );
            }
            return Ok(());
        }
        if n == a.max_restarts {
            bail!(
                "the job failed ({status}) and --max-restarts {} are used up",
                a.max_restarts
            );
        }
        eprintln!(
            "launch: the job failed ({status}); restarting from the last checkpoint (restart {} of {})",
            n + 1,
            a.max_restarts
        );
        if let Some(out) = out_dir(&a.command) {
            wait_for_lock(&out);
        }
    }
    unreachable!("the loop returns")
}

/// The command's `--out DIR`.
fn out_dir(command: &[String]) -> Option<PathBuf> {
    let at = command.iter().position(|a| a == "--out")?;
    command.get(at + 1).map(PathBuf::from)
}

/// Waits until the process holding `out/run.lock` (the failed job's rank 0,
/// which may still be dying) is gone, killing it after 10 s, so that the
/// restart can claim the run directory.
fn wait_for_lock(out: &std::path::Path) {
    let Ok(text) = std::fs::read_to_string(out.join("run.lock")) else {
        return;
    };
    let Ok(pid) = text.trim().parse::<i32>() else {
        return;
    };
    let alive = || std::path::Path::new(&format!("/proc/{pid}")).exists();
    let t0 = std::time::Instant::now();
    while alive() {
        if t0.elapsed() > std::time::Duration::from_secs(10) {
            eprintln!("launch: rank 0 of the failed job (pid {pid}) is still running; killing it");
            // SAFETY: a signal to a process id read from our own lock file.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        if t0.elapsed() > std::time::Duration::from_secs(20) {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

#[derive(Args)]
pub struct BenchAllreduce {
    /// Gradient size in millions of f32 values (135 is SmolLM2-135M: 540 MB).
    #[arg(long, default_value_t = 134.5)]
    pub millions: f64,
    /// Timed all-reduces (after one warm-up).
    #[arg(long, default_value_t = 5)]
    pub iters: usize,
    #[command(flatten)]
    pub json: JsonArg,
}

/// Times [`all_reduce_gradients`] on parameters of the given size, as a
/// training step does it (buckets, copies in and out included).
pub fn bench_allreduce(a: BenchAllreduce) -> CliResult<()> {
    use kindling_train::distributed;
    let Some(c) = distributed::get() else {
        bail!("bench allreduce runs under mpirun with --distributed mpi");
    };
    if !(a.millions.is_finite() && a.millions > 0.0) || a.iters == 0 {
        bail!("--millions must be more than 0 and --iters at least 1");
    }
    let n = (a.millions * 1e6) as usize;
    // Parameters of up to 16M values each, like a model's matrices.
    let mut params = Vec::new();
    let mut left = n;
    while left > 0 {
        let k = left.min(16 << 20);
        let p = kindling_tensor::Tensor::zeros(&[k]).requires_grad_(true);
        p.set_grad(Some(kindling_tensor::Tensor::full(&[k], 1.0)));
        params.push(p);
        left -= k;
    }
    let mut times = Vec::new();
    for i in 0..=a.iters {
        let t0 = std::time::Instant::now();
        distributed::all_reduce_gradients(c, &params)?;
        if i > 0 {
            times.push(t0.elapsed().as_secs_f64());
        }
    }
    times.sort_by(f64::total_cmp);
    let median = times[times.len() / 2];
    let bytes = n as f64 * 4.0;
    // A ring all-reduce moves 2(N-1)/N of the data through each rank.
    let ranks = c.size() as f64;
    let bus = 2.0 * (ranks - 1.0) / ranks * bytes / median;
    eprintln!(
        "all-reduce of {:.1} M floats ({:.0} MB) over {} ranks: median {:.3} s, {:.2} GB/s algorithm bandwidth, {:.2} GB/s bus bandwidth",
        a.millions,
        bytes / 1e6,
        c.size(),
        median,
        bytes / median / 1e9,
        bus / 1e9
    );
    Report::new(a.json.enabled).finish(json!({
        "floats": n, "ranks": c.size(), "median_secs": median,
        "algbw_gb_per_s": bytes / median / 1e9, "busbw_gb_per_s": bus / 1e9,
    }));
    Ok(())
}

#[derive(Subcommand)]
pub enum SimCmd {
    /// The expected share of useful training time when devices fail, with checkpoints at
    /// the best interval (Young 1974, Daly 2006).
    Goodput(Goodput),
}

#[derive(Args)]
pub struct Goodput {
    /// Devices in the job (a failure of any one stops it).
    #[arg(long)]
    pub devices: u64,
    /// Mean time between failures of one device, in hours.
    #[arg(long)]
    pub mtbf_hours: f64,
    /// Minutes to write a checkpoint.
    #[arg(long)]
    pub checkpoint_minutes: f64,
    /// Minutes from a failure to training again (detect, restart, reload).
    #[arg(long)]
    pub restart_minutes: f64,
    /// Checkpoint every this many minutes instead of the best interval [default: the best].
    #[arg(long)]
    pub interval_minutes: Option<f64>,
    #[command(flatten)]
    pub json: JsonArg,
}

/// Useful time over wall time for work cut into intervals of `tau` with a
/// checkpoint of `delta` after each, restarts of `r`, and failures at
/// exponential times of mean `m` (Daly 2006, eq. 13: a failed interval is
/// redone from its start): `tau / (m e^{r/m} (e^{(tau+delta)/m} - 1))`.
pub fn goodput(tau: f64, delta: f64, r: f64, m: f64) -> f64 {
    // exp_m1: e^x − 1 without cancellation when failures are rare (x ≪ 1).
    tau / (m * (r / m).exp() * ((tau + delta) / m).exp_m1())
}

/// The interval with the best goodput (golden-section search; the function
/// has one peak), and Young's first-order one, sqrt(2 delta m).
pub fn best_interval(delta: f64, r: f64, m: f64) -> (f64, f64) {
    let young = (2.0 * delta * m).sqrt();
    let (mut lo, mut hi) = (1e-6 * m.min(delta.max(1e-9)), 10.0 * m + young);
    let phi = (5f64.sqrt() - 1.0) / 2.0;
    for _ in 0..200 {
        let a = hi - phi * (hi - lo);
        let b = lo + phi * (hi - lo);
        if goodput(a, delta, r, m) < goodput(b, delta, r, m) {
            lo = a;
        } else {
            hi = b;
        }
    }
    ((lo + hi) / 2.0, young)
}

pub fn sim(cmd: SimCmd) -> CliResult<()> {
    let SimCmd::Goodput(a) = cmd;
    for (flag, v) in [
        ("--mtbf-hours", a.mtbf_hours),
        ("--checkpoint-minutes", a.checkpoint_minutes),
    ] {
        if !(v.is_finite() && v > 0.0) {
            bail!("{flag} must be more than 0, got {v}");
        }
    }
    if !(a.restart_minutes.is_finite() && a.restart_minutes >= 0.0) {
        bail!(
            "--restart-minutes must be 0 or more, got {}",
            a.restart_minutes
        );
    }
    if a.devices == 0 {
        bail!("--devices must be at least 1");
    }
    // The job fails when any device does: its MTBF is the device's over N.
    let m = a.mtbf_hours * 60.0 / a.devices as f64;
    let (delta, r) = (a.checkpoint_minutes, a.restart_minutes);
    let (best, young) = best_interval(delta, r, m);
    let tau = match a.interval_minutes {
        Some(t) if t.is_finite() && t > 0.0 => t,
        Some(t) => bail!("--interval-minutes must be more than 0, got {t}"),
        None => best,
    };
    let g = goodput(tau, delta, r, m);
    eprintln!(
        "{} devices, each failing every {} h on average: the job fails every {:.1} min",
        a.devices, a.mtbf_hours, m
    );
    eprintln!(
        "checkpoint every {tau:.1} min ({} ; Young's first-order interval sqrt(2·C·MTBF) = {young:.1} min), {delta} min per checkpoint, {r} min per restart",
        if a.interval_minutes.is_some() { "as asked" } else { "the best interval" }
    );
    eprintln!(
        "goodput {:.1}%: {:.1}% of the time goes to checkpoints, lost work and restarts",
        100.0 * g,
        100.0 * (1.0 - g)
    );
    Report::new(a.json.enabled).finish(json!({
        "job_mtbf_minutes": m,
        "interval_minutes": tau,
        "best_interval_minutes": best,
        "young_interval_minutes": young,
        "goodput": g,
        "goodput_at_young": goodput(young, delta, r, m),
    }));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn goodput_matches_hand_figures_and_limits() {
        // Failures rare against the interval: Young's interval is the best,
        // and the loss is about C/tau + tau/(2M) + R/M.
        let (m, c, r) = (10_000.0, 1.0, 5.0);
        let (best, young) = best_interval(c, r, m);
        assert!((best - young).abs() / young < 0.01, "{best} vs {young}");
        let first_order = 1.0 - c / young - young / (2.0 * m) - r / m;
        assert!((goodput(young, c, r, m) - first_order).abs() < 1e-3);
        // 100,000 devices failing every 10 minutes in all, 5-minute
        // restarts, 1-minute checkpoints: by hand, tau = 3.5 gives
        // 3.5 / (10 e^0.5 (e^0.45 - 1)) = 0.3735.
        assert!((goodput(3.5, 1.0, 5.0, 10.0) - 0.3735).abs() < 1e-3);
        let (best, _) = best_interval(1.0, 5.0, 10.0);
        assert!(goodput(best, 1.0, 5.0, 10.0) >= goodput(3.5, 1.0, 5.0, 10.0));
        // No failures: no loss but the checkpoints.
        assert!((goodput(60.0, 1.0, 5.0, 1e12) - 60.0 / 61.0).abs() < 1e-6);
    }

    #[test]
    fn a_restart_resumes_instead_of_starting_over() {
        let cmd: Vec<String> = ["train", "gpt", "--out", "r", "--force"]
            .map(String::from)
            .to_vec();
        assert_eq!(
            attempt_args(&cmd, 0),
            [
                "train",
                "gpt",
                "--out",
                "r",
                "--force",
                "--distributed",
                "mpi"
            ]
        );
        assert_eq!(
            attempt_args(&cmd, 1),
            [
                "train",
                "gpt",
                "--out",
                "r",
                "--distributed",
                "mpi",
                "--resume"
            ]
        );
    }
}
