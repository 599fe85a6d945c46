//! `kindling data list` and `kindling data fetch NAME [--from DIR]`: the
//! datasets Kindling knows, pinned by SHA-256, and putting one in
//! `<data root>/NAME/` (the data root is `$KINDLING_DATA_DIR`, else the
//! repository's `data/`, else `./data`).

use crate::common::{CliResult, JsonArg};
use crate::report::Report;
use clap::{Args, Subcommand};
use kindling_data::default_data_root;
use kindling_data::registry::{self, DatasetStatus, FetchReport, FileOrigin, FileState};
use serde_json::{json, Value};
use std::path::PathBuf;

#[derive(Subcommand)]
pub enum DataCmd {
    /// The known datasets: description, license, size, and whether each is
    /// present in the data root with its pinned SHA-256.
    List {
        #[command(flatten)]
        json: JsonArg,
    },
    /// Put a dataset in <data root>/NAME: files already there with the
    /// pinned SHA-256 are kept, the others copied from --from DIR or
    /// downloaded with curl, verified, then moved into place.
    Fetch(Fetch),
}

#[derive(Args)]
pub struct Fetch {
    /// Dataset name, as in `kindling data list`.
    pub name: String,
    /// Copy from this local mirror instead of downloading: DIR/NAME/FILE or
    /// DIR/FILE (e.g. a shared data folder) [default: download with curl].
    #[arg(long, value_name = "DIR")]
    pub from: Option<PathBuf>,
    #[command(flatten)]
    pub json: JsonArg,
}

pub fn run(cmd: DataCmd) -> CliResult<()> {
    match cmd {
        DataCmd::List { json } => list(json.enabled),
        DataCmd::Fetch(args) => fetch(args),
    }
}

fn megabytes(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / 1e6)
}

/// "present", "missing" (some or all files absent) or "corrupt" (a file that
/// is not the pinned one; this wins, as it needs attention).
fn state_word(status: &DatasetStatus) -> &'static str {
    let states = || status.files.iter().map(|(_, s)| s);
    if states().any(|s| matches!(s, FileState::Corrupt { .. })) {
        "corrupt"
    } else if states().any(|s| *s == FileState::Missing) {
        "missing"
    } else {
        "present"
    }
}

fn list(json: bool) -> CliResult<()> {
    let report = Report::new(json);
    let root = default_data_root();
    let statuses = registry::list_in(&root)?;
    report.line(format!(
        "data root: {} (set KINDLING_DATA_DIR to use another)",
        root.display()
    ));
    for status in &statuses {
        let d = status.dataset;
        report.line(format!(
            "{:<14} {:<8} {:>8}  {}",
            d.name,
            state_word(status),
            megabytes(d.size_bytes()),
            d.description
        ));
        report.line(format!("{:<33} license: {}", "", d.license));
    }
    report.finish(json!({
        "data_root": root.display().to_string(),
        "datasets": statuses.iter().map(status_json).collect::<Vec<_>>(),
    }));
    Ok(())
}

fn status_json(status: &DatasetStatus) -> Value {
    let d = status.dataset;
    json!({
        "name": d.name,
        "description": d.description,
        "license": d.license,
        "dir": status.dir.display().to_string(),
        "present": status.is_present(),
        "state": state_word(status),
        "size_bytes": d.size_bytes(),
        "files": status.files.iter().map(|(f, state)| json!({
            "name": f.file_name,
            "size_bytes": f.size_bytes,
            "sha256": f.sha256,
            "url": f.url,
            "state": state.label(),
        })).collect::<Vec<_>>(),
    })
}

fn fetch(args: Fetch) -> CliResult<()> {
    let report = Report::new(args.json.enabled);
    let root = default_data_root();
    let dataset = registry::find(&args.name)?;
    // Progress goes to stderr whatever the output mode.
    let fetched = registry::fetch_dataset(&root, dataset, args.from.as_deref(), &mut |line| {
        eprintln!("{line}")
    })?;
    let count =
        |want: fn(&FileOrigin) -> bool| fetched.files.iter().filter(|f| want(&f.origin)).count();
    let present = count(|o| *o == FileOrigin::AlreadyPresent);
    let copied = count(|o| matches!(o, FileOrigin::Copied { .. }));
    let downloaded = count(|o| matches!(o, FileOrigin::Downloaded { .. }));
    report.line(format!(
        "{}: {} files verified in {} ({present} already present, {copied} copied, {downloaded} downloaded)",
        dataset.name,
        fetched.files.len(),
        fetched.dir.display()
    ));
    report.finish(fetch_json(&fetched, present, copied, downloaded));
    Ok(())
}

fn fetch_json(fetched: &FetchReport, present: usize, copied: usize, downloaded: usize) -> Value {
    let files: Vec<Value> = fetched
        .files
        .iter()
        .map(|f| {
            let (action, source) = match &f.origin {
                FileOrigin::AlreadyPresent => ("present", Value::Null),
                FileOrigin::Copied { from } => ("copied", json!(from.display().to_string())),
                FileOrigin::Downloaded { url } => ("downloaded", json!(url)),
            };
            json!({
                "name": f.file.file_name,
                "size_bytes": f.file.size_bytes,
                "sha256": f.file.sha256,
                "action": action,
                "source": source,
            })
        })
        .collect();
    json!({
        "dataset": fetched.dataset.name,
        "dir": fetched.dir.display().to_string(),
        "files": files,
        "present": present,
        "copied": copied,
        "downloaded": downloaded,
    })
}
