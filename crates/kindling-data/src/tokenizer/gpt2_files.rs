//! The two files OpenAI released GPT-2's tokenizer as: `encoder.json`
//! (token → id, tokens spelled in the byte alphabet) and `vocab.bpe` (the
//! merges, one `left right` pair a line, best first, after a `#version`
//! line). Hugging Face calls them `vocab.json` and `merges.txt`.

use super::{bad_file, byte_level, engine_error, read_file, Tokenizer};
use crate::Result;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

const VOCAB_NAMES: [&str; 2] = ["vocab.json", "encoder.json"];
const MERGES_NAMES: [&str; 2] = ["merges.txt", "vocab.bpe"];

fn first_existing(dir: &Path, names: &[&str]) -> Option<PathBuf> {
    names.iter().map(|n| dir.join(n)).find(|p| p.is_file())
}

/// `vocab.json` or `encoder.json` in `dir`, if there is one.
pub fn vocab_path(dir: &Path) -> Option<PathBuf> {
    first_existing(dir, &VOCAB_NAMES)
}

/// Loads the GPT-2-style pair in `dir`. `<|endoftext|>` is made a special
/// token when the vocabulary has it, as `GPT2TokenizerFast` does.
pub fn load_dir(dir: &Path) -> Result<Tokenizer> {
    let vocab_path = vocab_path(dir).ok_or_else(|| {
        bad_file(
            dir,
            "no vocab.json or encoder.json (GPT-2-style tokenizer folder)",
        )
    })?;
    let merges_path = first_existing(dir, &MERGES_NAMES).ok_or_else(|| {
        bad_file(
            dir,
            format!(
                "{} has no merges beside it (merges.txt or vocab.bpe)",
                vocab_path.display()
            ),
        )
    })?;
    let vocab = parse_vocab(&vocab_path)?;
    let merges = parse_merges(&merges_path)?;
    for (i, (l, r)) in merges.iter().enumerate() {
        let merged = format!("{l}{r}");
        if !vocab.contains_key(&merged) {
            return Err(bad_file(
                &merges_path,
                format!(
                    "merge {} (`{l} {r}`) makes `{merged}`, which {} does not have",
                    i + 1,
                    vocab_path.display()
                ),
            ));
        }
    }
    let endoftext = vocab.get("<|endoftext|>").copied();
    let model = tokenizers::models::bpe::BPE::builder()
        .vocab_and_merges(
            vocab
                .into_iter()
                .collect::<tokenizers::models::bpe::Vocab>(),
            merges,
        )
        .build()
        .map_err(|e| bad_file(&vocab_path, format!("cannot build the BPE: {e}")))?;
    let mut tok = byte_level::engine(model, None).map_err(|e| engine_error("pre-tokenizer", e))?;
    if endoftext.is_some() {
        tok.add_special_tokens(&[
            tokenizers::AddedToken::from("<|endoftext|>", true).normalized(false)
        ]);
    }
    Ok(Tokenizer::new(tok, dir.display().to_string()).with_specials(endoftext, endoftext))
}

fn parse_vocab(path: &Path) -> Result<HashMap<String, u32>> {
    let bytes = read_file(path)?;
    let value: serde_json::Value = serde_json::from_slice(&bytes)
        .map_err(|e| bad_file(path, format!("not a GPT-2 vocabulary: invalid JSON ({e})")))?;
    let object = value.as_object().ok_or_else(|| {
        bad_file(
            path,
            "not a GPT-2 vocabulary: not a JSON object of token → id",
        )
    })?;
    object
        .iter()
        .map(|(token, id)| {
            let id = id
                .as_u64()
                .and_then(|id| u32::try_from(id).ok())
                .ok_or_else(|| {
                    bad_file(
                        path,
                        format!(
                            "not a GPT-2 vocabulary: token {token:?} has id {id}, not a number"
                        ),
                    )
                })?;
            Ok((token.clone(), id))
        })
        .collect()
}

/// The merges, best first. Skips the `#version` line and blank lines.
pub fn parse_merges(path: &Path) -> Result<Vec<(String, String)>> {
    let bytes = read_file(path)?;
    let text = std::str::from_utf8(&bytes).map_err(|e| {
        bad_file(
            path,
            format!(
                "not a merges file: not UTF-8 text (invalid byte at offset {})",
                e.valid_up_to()
            ),
        )
    })?;
    let mut merges = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.is_empty() || (i == 0 && line.starts_with("#version")) {
            continue;
        }
        let (l, r) = line
            .split_once(' ')
            .filter(|(l, r)| !l.is_empty() && !r.is_empty() && !r.contains(' '))
            .ok_or_else(|| {
                bad_file(
                    path,
                    format!(
                        "not a merges file: line {} is not `left right` ({line:?})",
                        i + 1
                    ),
                )
            })?;
        merges.push((l.to_string(), r.to_string()));
    }
    if merges.is_empty() {
        return Err(bad_file(path, "not a merges file: no merges in it"));
    }
    Ok(merges)
}
