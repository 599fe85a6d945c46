//! The tokenizer a GGUF model carries in its metadata (llama.cpp's keys):
//! `tokenizer.ggml.model` (`gpt2` for byte-level BPE), `.tokens` (by id),
//! `.merges` (`"left right"`, best first), `.token_type` (3 = control, i.e.
//! special; 4 = user-defined), `.pre` (which pre-tokenizer the merges were
//! learned with), `.bos_token_id`/`.eos_token_id` and `tokenizer.chat_template`.
//!
//! We build what transformers builds from the same file
//! (`integrations/gguf/gguf_tokenizer_mapping.py`, transformers 5.24):
//! GPT-2's byte-level BPE, with the split regex of the `pre` names it knows
//! and GPT-2's own regex otherwise; control tokens special, user-defined
//! tokens added whole. For SmolLM2 (`pre` = `smollm`) that is GPT-2's regex
//! alone, where SmolLM2's own `tokenizer.json` first splits digits one by one
//! (`Digits(individual_digits=true)`). The ids still agree on our parity
//! texts (checked with transformers 5.24: swapping in SmolLM2's pre-tokenizer
//! changes none of the 25), because its vocabulary has no token holding two
//! digits or a space before a digit; our fixture follows transformers.

use super::{bad_file, byte_level, engine_error, Tokenizer};
use crate::Result;
use kindling_tensor::gguf::{GgufFile, GgufValue};
use std::collections::HashMap;

const LLAMA3_SPLIT: &str = concat!(
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}",
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
);

const QWEN2_SPLIT: &str = concat!(
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}",
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
);

const GPT4O_SPLIT: &str = concat!(
    r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?",
    r"|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?",
    r"|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+"
);

/// `tokenizer.ggml.pre` → split regex, for the names transformers maps.
fn split_for(pre: &str) -> Option<&'static str> {
    Some(match pre {
        "llama3" | "llama-v3" | "llama-bpe" | "falcon3" | "falcon-h1" | "pixtral" | "midm-2.0"
        | "lfm2" | "dbrx" | "smaug-bpe" => LLAMA3_SPLIT,
        "qwen2" | "deepseek-r1-qwen" | "megrez" => QWEN2_SPLIT,
        "gpt-4o" | "llama4" | "minimax-m2" => GPT4O_SPLIT,
        _ => return None,
    })
}

const CONTROL: i64 = 3;
const USER_DEFINED: i64 = 4;

/// The byte-level BPE tokenizer in `file`'s metadata.
pub fn load(file: &GgufFile) -> Result<Tokenizer> {
    let path = file.path.as_path();
    let key = |k: &str| file.get(k);
    let model = key("tokenizer.ggml.model")
        .and_then(GgufValue::as_str)
        .ok_or_else(|| {
            bad_file(
                path,
                "GGUF has no tokenizer (no tokenizer.ggml.model string)",
            )
        })?;
    if model != "gpt2" {
        let kind = match model {
            "llama" => " (SentencePiece)",
            "bert" => " (WordPiece)",
            "t5" => " (Unigram)",
            _ => "",
        };
        return Err(bad_file(
            path,
            format!(
                "tokenizer.ggml.model is `{model}`{kind}; Kindling reads byte-level BPE (`gpt2`) only"
            ),
        ));
    }
    let strings = |k: &str| -> Result<Vec<&str>> {
        let values = key(k)
            .and_then(GgufValue::as_array)
            .ok_or_else(|| bad_file(path, format!("GGUF has no {k} array")))?;
        values
            .iter()
            .enumerate()
            .map(|(i, v)| {
                v.as_str()
                    .ok_or_else(|| bad_file(path, format!("{k}[{i}] is not a string")))
            })
            .collect()
    };
    let tokens = strings("tokenizer.ggml.tokens")?;
    let merge_lines = strings("tokenizer.ggml.merges")?;
    let types: Vec<i64> = match key("tokenizer.ggml.token_type").and_then(GgufValue::as_array) {
        Some(values) => values.iter().map(|v| v.as_i64().unwrap_or(1)).collect(),
        None => Vec::new(),
    };

    // transformers respells a token outside the byte alphabet from its UTF-8.
    let spelled: Vec<String> = tokens
        .iter()
        .map(|t| {
            if byte_level::is_byte_level(t) {
                t.to_string()
            } else {
                byte_level::bytes_to_token(t.as_bytes())
            }
        })
        .collect();
    let mut vocab: HashMap<String, u32> = HashMap::with_capacity(spelled.len());
    for (id, t) in spelled.iter().enumerate() {
        vocab.entry(t.clone()).or_insert(id as u32);
    }
    let mut merges = Vec::with_capacity(merge_lines.len());
    for (i, line) in merge_lines.iter().enumerate() {
        let (l, r) = line.split_once(' ').ok_or_else(|| {
            bad_file(
                path,
                format!("tokenizer.ggml.merges[{i}] is not `left right` ({line:?})"),
            )
        })?;
        merges.push((l.to_string(), r.to_string()));
    }
    let bpe = tokenizers::models::bpe::BPE::builder()
        .vocab_and_merges(
            vocab
                .into_iter()
                .collect::<tokenizers::models::bpe::Vocab>(),
            merges,
        )
        .build()
        .map_err(|e| bad_file(path, format!("GGUF tokenizer: cannot build the BPE: {e}")))?;
    let pre = key("tokenizer.ggml.pre").and_then(GgufValue::as_str);
    let mut tok = byte_level::engine(bpe, pre.and_then(split_for))
        .map_err(|e| engine_error("pre-tokenizer", e))?;

    let with_type = |wanted: i64| {
        tokens
            .iter()
            .zip(&types)
            .filter(move |&(_, &ty)| ty == wanted)
            .map(|(t, _)| *t)
    };
    // A control token outside the byte alphabet is a llama.cpp mislabel
    // (transformers skips it too).
    let control: Vec<tokenizers::AddedToken> = with_type(CONTROL)
        .filter(|t| byte_level::is_byte_level(t))
        .map(|t| tokenizers::AddedToken::from(t, true).normalized(false))
        .collect();
    tok.add_special_tokens(&control);
    let user: Vec<tokenizers::AddedToken> = with_type(USER_DEFINED)
        .filter(|t| tok.token_to_id(t).is_some())
        .map(|t| tokenizers::AddedToken::from(t, false).normalized(false))
        .collect();
    tok.add_tokens(&user);

    let id = |k: &str| {
        key(k)
            .and_then(GgufValue::as_u64)
            .and_then(|id| u32::try_from(id).ok())
            .filter(|&id| (id as usize) < tokens.len())
    };
    let template = key("tokenizer.chat_template")
        .and_then(GgufValue::as_str)
        .map(str::to_string);
    Ok(Tokenizer::new(tok, path.display().to_string())
        .with_specials(
            id("tokenizer.ggml.bos_token_id"),
            id("tokenizer.ggml.eos_token_id"),
        )
        .with_chat_template(template))
}
