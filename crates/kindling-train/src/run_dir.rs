//! A run directory: `config.json`, `metrics.jsonl` (one JSON object per
//! logged epoch or step), checkpoints and pictures. Every file is written
//! through a temp file and a rename, so a killed run never leaves a torn file.

use crate::Result;
use kindling_tensor::safetensors_io::write_atomic;
use serde_json::Value;
use std::path::{Path, PathBuf};

pub struct RunDir {
    /// Where results are written.
    pub path: PathBuf,
    /// Where an earlier run's files are read from (`resume`): `path`,
    /// except on the ranks of a distributed job other than 0, which read
    /// the real directory and write to a scratch one (deleted on drop).
    source: PathBuf,
    /// `run.lock` while this process trains here; removed on drop.
    lock: Option<PathBuf>,
    scratch: bool,
}

/// How a command may use its run directory. Nothing is lost: a fresh run
/// refuses a directory that already holds one, `Force` moves the old run
/// aside (`DIR.1`, `DIR.2`, ...) instead of deleting it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunMode {
    Fresh,
    Resume,
    Force,
}

impl From<bool> for RunMode {
    /// `resume: bool` as older callers pass it.
    fn from(resume: bool) -> RunMode {
        if resume {
            RunMode::Resume
        } else {
            RunMode::Fresh
        }
    }
}

fn holds_files(path: &Path) -> bool {
    std::fs::read_dir(path).is_ok_and(|mut d| d.next().is_some())
}

fn process_alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

impl Drop for RunDir {
    fn drop(&mut self) {
        if let Some(lock) = &self.lock {
            let _ = std::fs::remove_file(lock);
        }
        if self.scratch {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

impl RunDir {
    /// A run directory for a command that writes results, claimed with a
    /// lock file holding this process's id (a second training into the same
    /// directory is refused; a lock left by a dead process is reported and
    /// cleared).
    pub fn start(path: &Path, mode: impl Into<RunMode>) -> Result<RunDir> {
        let mode = mode.into();
        if !crate::distributed::is_writer() {
            // Rank 0 checks, claims and writes the directory; this rank
            // reads from it and writes to a scratch folder of its own.
            let scratch = std::env::temp_dir().join(format!(
                "kindling-rank{}-{}",
                crate::distributed::rank(),
                std::process::id()
            ));
            std::fs::create_dir_all(&scratch)
                .map_err(|e| format!("cannot create {}: {e}", scratch.display()))?;
            return Ok(RunDir {
                path: scratch,
                source: path.to_path_buf(),
                lock: None,
                scratch: true,
            });
        }
        if path.is_file() {
            return Err(format!("`out` {}: is a file, not a run directory", path.display()).into());
        }
        match mode {
            RunMode::Resume if !path.is_dir() => {
                return Err(format!("`resume`: {} holds no run to continue", path.display()).into())
            }
            RunMode::Fresh if holds_files(path) => {
                return Err(format!(
                    "{} already holds results; start over with `force` (the old ones are moved aside, not deleted), or continue a training with `resume`",
                    path.display()
                )
                .into())
            }
            RunMode::Force if holds_files(path) => {
                Self::check_lock(path)?;
                let aside = (1..)
                    .map(|i| PathBuf::from(format!("{}.{i}", path.display())))
                    .find(|p| !p.exists())
                    .expect("some suffix is free");
                std::fs::rename(path, &aside).map_err(|e| {
                    format!("`force`: cannot move {} aside: {e}", path.display())
                })?;
                eprintln!("--force: the earlier run in {} is now in {}", path.display(), aside.display());
            }
            _ => {}
        }
        let mut run = Self::create(path)?;
        Self::check_lock(path)?;
        let lock = path.join("run.lock");
        std::fs::write(&lock, format!("{}\n", std::process::id()))
            .map_err(|e| format!("{}: {e}", lock.display()))?;
        run.lock = Some(lock);
        Ok(run)
    }

    /// Refuses a directory another live process trains in; clears a stale lock.
    fn check_lock(path: &Path) -> Result<()> {
        let lock = path.join("run.lock");
        let Ok(text) = std::fs::read_to_string(&lock) else {
            return Ok(());
        };
        match text.trim().parse::<u32>() {
            Ok(pid) if pid != std::process::id() && process_alive(pid) => Err(format!(
                "{} is in use by another training (pid {pid}); wait for it or choose another `out`",
                path.display()
            )
            .into()),
            _ => {
                eprintln!(
                    "note: {} had a stale lock ({}) from a process that is no longer running; cleared",
                    path.display(),
                    text.trim()
                );
                std::fs::remove_file(&lock).map_err(|e| format!("{}: {e}", lock.display()))?;
                Ok(())
            }
        }
    }

    /// A directory for results, created if needed (no overwrite checks:
    /// prefer [`RunDir::start`]).
    pub fn create(path: &Path) -> Result<RunDir> {
        if path.is_file() {
            return Err(format!("`out` {}: is a file, not a run directory", path.display()).into());
        }
        std::fs::create_dir_all(path)
            .map_err(|e| format!("cannot create run directory {}: {e}", path.display()))?;
        Ok(RunDir {
            path: path.to_path_buf(),
            source: path.to_path_buf(),
            lock: None,
            scratch: false,
        })
    }

    pub fn open(path: &Path) -> Result<RunDir> {
        if !path.is_dir() {
            return Err(format!("{}: no such run directory", path.display()).into());
        }
        Ok(RunDir {
            path: path.to_path_buf(),
            source: path.to_path_buf(),
            lock: None,
            scratch: false,
        })
    }

    /// A file of the run being continued (the same as [`RunDir::file`]
    /// except on a distributed job's ranks other than 0).
    pub fn source_file(&self, name: &str) -> PathBuf {
        self.source.join(name)
    }

    pub fn file(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    pub fn write_json(&self, name: &str, value: &Value) -> Result<()> {
        let text = serde_json::to_string_pretty(value)? + "\n";
        Ok(write_atomic(&self.file(name), text.as_bytes())?)
    }

    pub fn read_json(&self, name: &str) -> Result<Value> {
        let path = self.source_file(name);
        let text =
            std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(serde_json::from_str(&text)
            .map_err(|e| format!("{}: not valid JSON: {e}", path.display()))?)
    }

    /// Rewrites `metrics.jsonl` from `records` (kept in memory by the trainer
    /// so a resumed run drops the lines of work it is redoing).
    pub fn write_metrics(&self, records: &[Value]) -> Result<()> {
        let mut text = String::new();
        for r in records {
            text.push_str(&r.to_string());
            text.push('\n');
        }
        Ok(write_atomic(&self.file("metrics.jsonl"), text.as_bytes())?)
    }

    pub fn read_metrics(&self) -> Result<Vec<Value>> {
        let path = self.source_file("metrics.jsonl");
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(format!("{}: {e}", path.display()).into()),
        };
        text.lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
            .map(|(i, l)| {
                serde_json::from_str(l)
                    .map_err(|e| format!("{} line {}: {e}", path.display(), i + 1).into())
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("kindling-rundir-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn a_fresh_run_refuses_an_earlier_one_and_force_moves_it_aside() {
        let d = tmp("force");
        {
            let run = RunDir::start(&d, RunMode::Fresh).unwrap();
            run.write_json("config.json", &serde_json::json!({"run": 1}))
                .unwrap();
            assert!(d.join("run.lock").is_file());
        }
        assert!(!d.join("run.lock").exists(), "the lock goes with the run");
        let e = RunDir::start(&d, RunMode::Fresh).err().unwrap().to_string();
        assert!(
            e.contains("already holds results") && e.contains("`force`"),
            "{e}"
        );
        let run = RunDir::start(&d, RunMode::Force).unwrap();
        let aside = PathBuf::from(format!("{}.1", d.display()));
        assert_eq!(run.read_json("config.json").ok(), None);
        assert_eq!(
            RunDir::open(&aside)
                .unwrap()
                .read_json("config.json")
                .unwrap()["run"],
            1
        );
        drop(run);
        let e = RunDir::start(&tmp("none"), RunMode::Resume)
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("no run to continue"), "{e}");
        let file = tmp("file");
        std::fs::write(&file, "x").unwrap();
        let e = RunDir::start(&file, RunMode::Fresh)
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("is a file"), "{e}");
        let _ = std::fs::remove_dir_all(&aside);
    }

    #[test]
    fn a_live_lock_refuses_a_second_training_and_a_stale_one_is_cleared() {
        let d = tmp("lock");
        std::fs::create_dir_all(&d).unwrap();
        // pid 1 is always alive.
        std::fs::write(d.join("run.lock"), "1\n").unwrap();
        let e = RunDir::start(&d, RunMode::Resume)
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("in use by another training (pid 1)"), "{e}");
        // A pid that cannot exist (above the kernel's pid_max).
        std::fs::write(d.join("run.lock"), "4294967\n").unwrap();
        let run = RunDir::start(&d, RunMode::Resume).unwrap();
        assert_eq!(
            std::fs::read_to_string(d.join("run.lock")).unwrap().trim(),
            std::process::id().to_string()
        );
        drop(run);
    }
}
