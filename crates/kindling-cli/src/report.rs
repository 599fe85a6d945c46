//! Where a command's words go: the human report to stdout, or, with
//! `--json`, to stderr so that stdout ends with exactly one JSON object.

use serde_json::Value;

pub struct Report {
    json: bool,
}

impl Report {
    pub fn new(json: bool) -> Self {
        Report { json }
    }

    pub fn line(&self, text: impl AsRef<str>) {
        if self.json {
            eprintln!("{}", text.as_ref());
        } else {
            println!("{}", text.as_ref());
        }
    }

    /// Ends the command: prints the JSON object when asked for.
    pub fn finish(&self, value: Value) {
        if self.json {
            println!("{value}");
        }
    }
}

/// Errors the CLI reports in one line.
pub type CliResult<T> = Result<T, Box<dyn std::error::Error>>;

/// `--resume` / `--force` as the run directory's mode.
pub fn run_mode(resume: bool, force: bool) -> kindling_train::run_dir::RunMode {
    use kindling_train::run_dir::RunMode;
    match (resume, force) {
        (true, _) => RunMode::Resume,
        (false, true) => RunMode::Force,
        (false, false) => RunMode::Fresh,
    }
}

/// With `--resume`, the options the run in `out` was started with (so
/// `--out DIR --resume` alone continues it); `None` for a new run or a
/// directory that stored none.
pub fn resumed_options<T: serde::de::DeserializeOwned>(
    resume: bool,
    out: &std::path::Path,
) -> CliResult<Option<T>> {
    if !resume {
        return Ok(None);
    }
    let Some(stored) = kindling_train::trainer::stored_options(out).map_err(|e| e.to_string())?
    else {
        return Ok(None);
    };
    Ok(Some(serde_json::from_value(stored).map_err(|e| {
        format!(
            "--resume: {}: the stored options are not this command's: {e}",
            out.display()
        )
    })?))
}
