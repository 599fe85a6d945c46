//! `kindling score`: corpus BLEU, chrF and chrF++ of a hypothesis file
//! against one or more reference files, computed as sacreBLEU computes
//! them (`kindling_train::metrics`).

use crate::common::{CliResult, JsonArg};
use crate::report::Report;
use anyhow::{bail, Context};
use clap::Args;
use kindling_train::metrics::{Bleu, Chrf, Tokenize};
use serde_json::{json, Map, Value};
use std::path::{Path, PathBuf};

#[derive(Args)]
pub struct Score {
    /// The system's output: one segment a line, UTF-8.
    #[arg(long, value_name = "FILE")]
    pub hyp: PathBuf,
    /// A reference file, line for line with --hyp; repeat for several references.
    #[arg(long = "ref", value_name = "FILE", required = true)]
    pub refs: Vec<PathBuf>,
    /// Metrics to compute, comma-separated: bleu, chrf, chrf++.
    #[arg(long, default_value = "bleu,chrf", value_delimiter = ',')]
    pub metrics: Vec<String>,
    /// BLEU's tokenizer: 13a (sacreBLEU's default), zh (Chinese: every character a word), char or none.
    #[arg(long, default_value = "13a")]
    pub tokenize: String,
    /// Lowercase both sides first.
    #[arg(long)]
    pub lowercase: bool,
    #[command(flatten)]
    pub json: JsonArg,
}

/// The lines of a text file, as sacreBLEU reads them: split on `\n`, a
/// final newline ending the last line rather than starting an empty one.
fn lines(path: &Path, flag: &str) -> CliResult<Vec<String>> {
    let text = std::fs::read(path).with_context(|| format!("{flag} {}", path.display()))?;
    let text = String::from_utf8(text)
        .map_err(|e| anyhow::anyhow!("{flag} {}: not UTF-8 ({e})", path.display()))?;
    let mut v: Vec<String> = text.split('\n').map(str::to_string).collect();
    if text.ends_with('\n') {
        v.pop();
    }
    Ok(v)
}

pub fn score(a: Score) -> CliResult<()> {
    let report = Report::new(a.json.enabled);
    let tokenize: Tokenize = a
        .tokenize
        .parse()
        .map_err(|e| anyhow::anyhow!("--tokenize: {e}"))?;
    let hyps = lines(&a.hyp, "--hyp")?;
    let mut refs = Vec::new();
    for r in &a.refs {
        let l = lines(r, "--ref")?;
        if l.len() != hyps.len() {
            bail!(
                "--ref {}: {} lines, but --hyp {} has {}",
                r.display(),
                l.len(),
                a.hyp.display(),
                hyps.len()
            );
        }
        refs.push(l);
    }
    let mut out = Map::new();
    out.insert("segments".into(), json!(hyps.len()));
    for m in &a.metrics {
        match m.as_str() {
            "bleu" => {
                let b = Bleu {
                    tokenize,
                    lowercase: a.lowercase,
                    ..Bleu::default()
                };
                let s = b.corpus_score(&hyps, &refs)?;
                report.line(format!(
                    "{}   (tok:{} smooth:exp case:{})",
                    s.format(),
                    tokenize,
                    if a.lowercase { "lc" } else { "mixed" }
                ));
                out.insert("bleu".into(), json!(s.score));
                out.insert("bleu_detail".into(), serde_json::to_value(&s)?);
            }
            "chrf" | "chrf++" => {
                let c = Chrf {
                    lowercase: a.lowercase,
                    ..if m == "chrf" {
                        Chrf::default()
                    } else {
                        Chrf::plus_plus()
                    }
                };
                let s = c.corpus_score(&hyps, &refs)?;
                report.line(format!("{} = {:.2}", c.name(), s.score));
                out.insert(m.clone(), json!(s.score));
            }
            other => bail!("--metrics: unknown metric {other:?} (bleu, chrf or chrf++)"),
        }
    }
    report.finish(Value::Object(out));
    Ok(())
}
