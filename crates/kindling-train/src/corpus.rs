//! Text corpora for character-level language models, by name
//! (`shakespeare`, `tang-poems`, `alpaca`) or as a path to a UTF-8 text file.

use crate::Result;
use std::io::Read;
use std::path::Path;

pub const KNOWN: [&str; 3] = ["shakespeare", "tang-poems", "alpaca"];

/// The corpus text. Named corpora come from the data directory
/// (`kindling data fetch NAME` puts them there; Shakespeare ships in the repo).
pub fn load(name: &str) -> Result<String> {
    let text = match name {
        "shakespeare" => {
            let dir = kindling_data::registry::dataset_dir("shakespeare")?;
            read_utf8(&dir.join("input.txt"))?
        }
        "tang-poems" => {
            let dir = kindling_data::registry::dataset_dir("tang-poems")?;
            tang_poems_text(&dir.join("tang.jsonl.gz"))?
        }
        "alpaca" => {
            let dir = kindling_data::registry::dataset_dir("alpaca")?;
            alpaca_text(&dir.join("alpaca_data.json.gz"))?
        }
        path if Path::new(path).is_file() => read_utf8(Path::new(path))?,
        // Something that looks like a path is a missing file, not an unknown name.
        path if path.contains('/') || path.contains('.') => {
            let p = Path::new(path);
            return Err(if p.is_dir() {
                format!("`data` {path}: is a directory; give a UTF-8 text file")
            } else {
                format!("`data` {path}: file not found")
            }
            .into());
        }
        other => {
            return Err(format!(
            "`data` `{other}`: unknown corpus (known: {}; or give the path of a UTF-8 text file)",
            KNOWN.join(", ")
        )
            .into())
        }
    };
    if text.chars().count() < 2 {
        return Err(format!("`data` `{name}`: the corpus is empty").into());
    }
    Ok(text)
}

/// Sentences for a sentence-level model (BERT): the names in `names`
/// (comma-separated) each give theirs — `classical-modern` both sides of
/// every pair, `tang-poems` every title and line of every poem — and a path
/// gives the lines of a UTF-8 text file. Whitespace is removed (the
/// classical-modern corpus has spaces where quotation marks were) and empty
/// lines are dropped.
pub fn sentences(names: &str) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for name in names.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        let before = out.len();
        match name {
            "classical-modern" => {
                let dir = kindling_data::registry::dataset_dir("classical-modern")?;
                let pairs = kindling_data::classical_modern::load(
                    &dir.join(kindling_data::classical_modern::FILE_NAME),
                )?;
                for p in pairs {
                    out.push(p.classical);
                    out.push(p.modern);
                }
            }
            "shakespeare" | "tang-poems" => out.extend(load(name)?.lines().map(String::from)),
            path if Path::new(path).is_file() => {
                out.extend(read_utf8(Path::new(path))?.lines().map(String::from))
            }
            path if path.contains('/') || path.contains('.') => {
                return Err(format!("`data` {path}: file not found").into())
            }
            other => {
                return Err(format!(
                    "`data` `{other}`: unknown corpus (known: classical-modern, tang-poems; or the path of a UTF-8 text file, one sentence per line)"
                )
                .into())
            }
        }
        for s in &mut out[before..] {
            s.retain(|c| !c.is_whitespace());
        }
        out.retain(|s| !s.is_empty());
        if out.len() == before {
            return Err(format!("`data` {name}: the corpus is empty").into());
        }
    }
    if out.is_empty() {
        return Err("`data`: no corpus given".into());
    }
    Ok(out)
}

/// A UTF-8 text file, or an error naming the file (and the first bad byte).
pub fn read_utf8(path: &Path) -> Result<String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    String::from_utf8(bytes).map_err(|e| {
        format!(
            "{}: not UTF-8 text (invalid byte at offset {})",
            path.display(),
            e.utf8_error().valid_up_to()
        )
        .into()
    })
}

/// One poem per record `{title, author, paragraphs}`, written as the title
/// on its own line, then the lines of the poem, then a blank line, so a
/// model can be prompted with a title.
fn tang_poems_text(path: &Path) -> Result<String> {
    let file = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut raw = String::new();
    flate2::read::MultiGzDecoder::new(file)
        .read_to_string(&mut raw)
        .map_err(|e| format!("{}: cannot decompress: {e}", path.display()))?;
    let mut text = String::with_capacity(raw.len() / 2);
    for (i, line) in raw
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let poem: serde_json::Value = serde_json::from_str(line)
            .map_err(|e| format!("{} line {}: {e}", path.display(), i + 1))?;
        let title = poem["title"].as_str().unwrap_or("");
        let lines: Vec<&str> = poem["paragraphs"]
            .as_array()
            .map(|a| a.iter().filter_map(|p| p.as_str()).collect())
            .unwrap_or_default();
        if lines.is_empty() {
            continue;
        }
        text.push_str(title);
        text.push('\n');
        for l in lines {
            text.push_str(l);
            text.push('\n');
        }
        text.push('\n');
    }
    Ok(text)
}

/// Stanford Alpaca's 52,002 English records as plain text (18.5 million
/// characters): the instruction, the input when there is one, the output,
/// each on its own line, records separated by a blank line.
fn alpaca_text(path: &Path) -> Result<String> {
    let file = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut raw = String::new();
    flate2::read::MultiGzDecoder::new(file)
        .read_to_string(&mut raw)
        .map_err(|e| format!("{}: cannot decompress: {e}", path.display()))?;
    let records: Vec<serde_json::Value> =
        serde_json::from_str(&raw).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut text = String::with_capacity(raw.len());
    for (i, r) in records.iter().enumerate() {
        let field = |k: &str| {
            r[k].as_str()
                .ok_or_else(|| format!("{} record {}: no `{k}` string", path.display(), i + 1))
        };
        let (instruction, input, output) =
            (field("instruction")?, field("input")?, field("output")?);
        text.push_str(instruction);
        text.push('\n');
        if !input.is_empty() {
            text.push_str(input);
            text.push('\n');
        }
        text.push_str(output);
        text.push_str("\n\n");
    }
    Ok(text)
}
