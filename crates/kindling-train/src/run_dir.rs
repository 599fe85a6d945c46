//! A run directory: `config.json`, `metrics.jsonl` (one JSON object per
//! logged epoch or step), checkpoints and pictures. Every file is written
//! through a temp file and a rename, so a killed run never leaves a torn file.

use crate::Result;
use kindling_tensor::safetensors_io::write_atomic;
use serde_json::Value;
use std::path::{Path, PathBuf};

pub struct RunDir {
    pub path: PathBuf,
}

impl RunDir {
    pub fn create(path: &Path) -> Result<RunDir> {
        std::fs::create_dir_all(path)
            .map_err(|e| format!("cannot create run directory {}: {e}", path.display()))?;
        Ok(RunDir {
            path: path.to_path_buf(),
        })
    }

    pub fn open(path: &Path) -> Result<RunDir> {
        if !path.is_dir() {
            return Err(format!("{}: no such run directory", path.display()).into());
        }
        Ok(RunDir {
            path: path.to_path_buf(),
        })
    }

    pub fn file(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    pub fn write_json(&self, name: &str, value: &Value) -> Result<()> {
        let text = serde_json::to_string_pretty(value)? + "\n";
        Ok(write_atomic(&self.file(name), text.as_bytes())?)
    }

    pub fn read_json(&self, name: &str) -> Result<Value> {
        let path = self.file(name);
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
        let path = self.file("metrics.jsonl");
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
