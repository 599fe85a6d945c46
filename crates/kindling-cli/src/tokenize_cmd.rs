//! `kindling tokenize`, `kindling tokenizer train` and `kindling bench
//! tokenizer`: how a byte-level BPE cuts a text, training one, and its
//! encoding speed.

use crate::common::{CliResult, JsonArg};
use crate::report::Report;
use anyhow::bail;
use clap::{Args, Subcommand};
use kindling_data::tokenizer::{train_bpe, Tokenizer};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::time::Instant;

#[derive(Args)]
pub struct Tokenize {
    /// The tokenizer: a tokenizer.json, a .tiktoken or .gguf file, a model
    /// folder, or a name (r50k_base, cl100k_base, o200k_base, gpt2, qwen3;
    /// `kindling data fetch tokenizers` brings those).
    #[arg(long, value_name = "SPEC")]
    pub tokenizer: String,
    /// The text to cut (special tokens such as <|endoftext|> are recognised; this or --file is required).
    #[arg(long, required_unless_present = "file", conflicts_with = "file")]
    pub text: Option<String>,
    /// A UTF-8 text file to cut instead of --text (this or --text is required).
    #[arg(long)]
    pub file: Option<PathBuf>,
    #[command(flatten)]
    pub json: JsonArg,
}

#[derive(Subcommand)]
pub enum TokenizerCmd {
    /// Train a byte-level BPE on a corpus and save it as tokenizer.json.
    Train(TrainTokenizer),
    /// Save any tokenizer Kindling reads (tiktoken ranks, GPT-2 files, GGUF)
    /// as tokenizer.json + tokenizer_config.json.
    Convert(ConvertTokenizer),
}

#[derive(Args)]
pub struct ConvertTokenizer {
    /// The tokenizer (as for `kindling tokenize`).
    #[arg(long, value_name = "SPEC")]
    pub tokenizer: String,
    /// Folder to write tokenizer.json (and tokenizer_config.json) into.
    #[arg(long)]
    pub out: PathBuf,
    /// Overwrite an existing tokenizer.json in --out.
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub json: JsonArg,
}

#[derive(Args)]
pub struct TrainTokenizer {
    /// A corpus name (shakespeare, tang-poems) or a UTF-8 text file.
    #[arg(long, default_value = "shakespeare")]
    pub data: String,
    /// Tokens in the vocabulary: special tokens + 256 bytes + merges.
    #[arg(long, default_value_t = 1024)]
    pub vocab_size: usize,
    /// A special token (repeatable); they take the first ids.
    #[arg(long = "special", value_name = "TOKEN", default_values_t = ["<|endoftext|>".to_string()])]
    pub specials: Vec<String>,
    /// Folder to write tokenizer.json (and tokenizer_config.json) into.
    #[arg(long)]
    pub out: PathBuf,
    /// Overwrite an existing tokenizer.json in --out.
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub json: JsonArg,
}

#[derive(Args)]
pub struct BenchTokenizer {
    /// The tokenizer (as for `kindling tokenize`).
    #[arg(long, value_name = "SPEC")]
    pub tokenizer: String,
    /// A corpus name (shakespeare, tang-poems) or a UTF-8 text file to encode.
    #[arg(long, default_value = "shakespeare")]
    pub data: String,
    /// Timed encodes of the whole text; the fastest counts.
    #[arg(long, default_value_t = 5)]
    pub repeat: usize,
    #[command(flatten)]
    pub json: JsonArg,
}

fn load(spec: &str) -> CliResult<Tokenizer> {
    Ok(Tokenizer::from_spec(spec)?)
}

/// A piece as it shows between the bars: control characters escaped, bytes
/// that are only part of a UTF-8 character as `<e4 bd>`.
fn show_piece(bytes: &[u8]) -> String {
    let mut out = String::new();
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                c if c.is_control() => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
                c => out.push(c),
            }
        }
        if !chunk.invalid().is_empty() {
            let hex: Vec<String> = chunk.invalid().iter().map(|b| format!("{b:02x}")).collect();
            out.push_str(&format!("<{}>", hex.join(" ")));
        }
    }
    out
}

/// How many tokens the human view lists one by one.
const VIEW_TOKENS: usize = 200;

pub fn tokenize(a: Tokenize) -> CliResult<()> {
    let report = Report::new(a.json.enabled);
    let tok = load(&a.tokenizer)?;
    let text = match (&a.text, &a.file) {
        (Some(t), _) => t.clone(),
        (None, Some(path)) => kindling_train::corpus::read_utf8(path)?,
        (None, None) => bail!("give --text TEXT or --file FILE"),
    };
    let ids = tok.encode(&text)?;
    let pieces: Vec<Vec<u8>> = ids
        .iter()
        .map(|&id| tok.piece_bytes(id).unwrap_or_default())
        .collect();
    report.line(format!(
        "tokenizer: {} (vocabulary {})",
        tok.source(),
        tok.vocab_size()
    ));
    let shown = ids.len().min(VIEW_TOKENS);
    let mut view: Vec<String> = pieces[..shown].iter().map(|p| show_piece(p)).collect();
    if ids.len() > shown {
        view.push(format!("… ({} more)", ids.len() - shown));
    }
    report.line(view.join("|"));
    report.line(format!(
        "ids: {}{}",
        ids[..shown]
            .iter()
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join(" "),
        if ids.len() > shown { " …" } else { "" }
    ));
    report.line(format!(
        "{} tokens for {} characters ({} bytes)",
        ids.len(),
        text.chars().count(),
        text.len()
    ));
    report.finish(json!({
        "tokenizer": tok.source(),
        "vocab_size": tok.vocab_size(),
        "ids": ids,
        "tokens": pieces.iter().map(|p| String::from_utf8_lossy(p).into_owned()).collect::<Vec<_>>(),
        "count": ids.len(),
        "chars": text.chars().count(),
        "bytes": text.len(),
    }));
    Ok(())
}

pub fn run(cmd: TokenizerCmd) -> CliResult<()> {
    match cmd {
        TokenizerCmd::Train(a) => train(a),
        TokenizerCmd::Convert(a) => convert(a),
    }
}

/// `DIR/tokenizer.json`, refused if it exists and `force` is not set.
fn output_file(out: &Path, force: bool) -> CliResult<PathBuf> {
    let target = out.join("tokenizer.json");
    if target.exists() && !force {
        bail!("{} exists; pass --force to overwrite it", target.display());
    }
    Ok(target)
}

fn convert(a: ConvertTokenizer) -> CliResult<()> {
    let report = Report::new(a.json.enabled);
    let target = output_file(&a.out, a.force)?;
    let tok = load(&a.tokenizer)?;
    tok.save(&a.out)?;
    report.line(format!(
        "{} -> {} (vocabulary {}, {} special tokens)",
        tok.source(),
        target.display(),
        tok.vocab_size(),
        tok.special_tokens().len()
    ));
    report.finish(json!({
        "tokenizer": target.display().to_string(),
        "from": tok.source(),
        "vocab_size": tok.vocab_size(),
        "bos_token_id": tok.bos_token_id(),
        "eos_token_id": tok.eos_token_id(),
        "chat_template": tok.chat_template().is_some(),
    }));
    Ok(())
}

fn train(a: TrainTokenizer) -> CliResult<()> {
    let report = Report::new(a.json.enabled);
    let target = output_file(&a.out, a.force)?;
    let text = kindling_train::corpus::load(&a.data)?;
    let specials: Vec<&str> = a.specials.iter().map(String::as_str).collect();
    eprintln!(
        "training a byte-level BPE of {} tokens on {} ({:.2} MB)...",
        a.vocab_size,
        a.data,
        text.len() as f64 / 1e6
    );
    let start = Instant::now();
    let tok = train_bpe(text.split_inclusive('\n'), a.vocab_size, &specials)?;
    let train_ms = start.elapsed().as_secs_f64() * 1e3;
    tok.save(&a.out)?;
    let corpus_tokens = tok.encode(&text)?.len();
    let bytes_per_token = text.len() as f64 / corpus_tokens.max(1) as f64;
    let first_merge = (256 + specials.len()) as u32;
    let learned: Vec<String> = (first_merge..tok.vocab_size() as u32)
        .take(12)
        .filter_map(|id| tok.piece_bytes(id))
        .map(|p| show_piece(&p))
        .collect();
    let last: Vec<String> = (first_merge..tok.vocab_size() as u32)
        .rev()
        .take(8)
        .filter_map(|id| tok.piece_bytes(id))
        .map(|p| show_piece(&p))
        .collect();
    report.line(format!(
        "vocabulary {} ({} special, 256 bytes, {} merges) in {:.0} ms",
        tok.vocab_size(),
        specials.len(),
        tok.vocab_size().saturating_sub(first_merge as usize),
        train_ms
    ));
    report.line(format!("first merges: |{}|", learned.join("|")));
    report.line(format!("last merges:  |{}|", last.join("|")));
    report.line(format!(
        "the corpus is {} tokens ({:.2} bytes per token, {} bytes)",
        corpus_tokens,
        bytes_per_token,
        text.len()
    ));
    report.line(format!("wrote {}", target.display()));
    report.finish(json!({
        "out": a.out.display().to_string(),
        "tokenizer": target.display().to_string(),
        "vocab_size": tok.vocab_size(),
        "specials": specials,
        "corpus_bytes": text.len(),
        "corpus_tokens": corpus_tokens,
        "bytes_per_token": bytes_per_token,
        "train_ms": train_ms,
    }));
    Ok(())
}

pub fn bench(a: BenchTokenizer) -> CliResult<()> {
    let report = Report::new(a.json.enabled);
    let start = Instant::now();
    let tok = load(&a.tokenizer)?;
    let load_ms = start.elapsed().as_secs_f64() * 1e3;
    let text = kindling_train::corpus::load(&a.data)?;
    let mut best = f64::INFINITY;
    let mut count = 0;
    for _ in 0..a.repeat.max(1) {
        let start = Instant::now();
        count = tok.encode(&text)?.len();
        best = best.min(start.elapsed().as_secs_f64());
    }
    let mb_per_sec = text.len() as f64 / 1e6 / best;
    report.line(format!(
        "{}: {} bytes -> {} tokens; encode {:.1} ms (best of {}), {:.2} MB/s; load {:.0} ms",
        tok.source(),
        text.len(),
        count,
        best * 1e3,
        a.repeat.max(1),
        mb_per_sec,
        load_ms
    ));
    report.finish(json!({
        "tokenizer": tok.source(),
        "data": a.data,
        "bytes": text.len(),
        "tokens": count,
        "encode_ms": best * 1e3,
        "encode_mb_per_sec": mb_per_sec,
        "load_ms": load_ms,
        "threads": 1,
    }));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::show_piece;

    #[test]
    fn pieces_show_controls_escaped_and_partial_characters_as_hex() {
        assert_eq!(show_piece(b" vs"), " vs");
        assert_eq!(show_piece(b"\r\n\t"), "\\r\\n\\t");
        assert_eq!(show_piece(&[0xf0, 0x9f]), "<f0 9f>");
        assert_eq!(show_piece(&[b' ', 0xe4]), " <e4>");
        assert_eq!(show_piece("你".as_bytes()), "你");
    }
}
