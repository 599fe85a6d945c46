//! OpenAI's tiktoken encodings from their `.tiktoken` rank files (one
//! `base64(token bytes) rank` a line), turned into a Hugging Face BPE the way
//! transformers' `TikTokenConverter` does.
//!
//! tiktoken keeps no merge list: to encode a piece it repeatedly merges the
//! adjacent pair whose concatenation has the lowest rank. A BPE whose merges
//! are every split `(left, right)` of every token, ordered by the token's
//! rank, makes the same choices; with `ignore_merges`, a piece that is itself
//! a token is taken whole, as tiktoken's first look-up does.

use super::{bad_file, byte_level, engine_error, read_file, Tokenizer};
use crate::Result;
use std::collections::HashMap;
use std::path::Path;

/// An encoding tiktoken knows by name: its pre-tokenizer pattern and special
/// tokens, from `tiktoken_ext/openai_public.py` (tiktoken 0.14).
pub struct Encoding {
    pub name: &'static str,
    pub pattern: &'static str,
    pub special_tokens: &'static [(&'static str, u32)],
}

const ENDOFTEXT: &str = "<|endoftext|>";

/// GPT-2 and GPT-3 (`r50k_base`).
pub const R50K_BASE: Encoding = Encoding {
    name: "r50k_base",
    pattern: r"'(?:[sdmt]|ll|ve|re)| ?\p{L}++| ?\p{N}++| ?[^\s\p{L}\p{N}]++|\s++$|\s+(?!\S)|\s",
    special_tokens: &[(ENDOFTEXT, 50256)],
};

/// GPT-3.5 and GPT-4 (`cl100k_base`): digits in runs of at most three.
pub const CL100K_BASE: Encoding = Encoding {
    name: "cl100k_base",
    pattern: r"'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+|\s++$|\s*[\r\n]|\s+(?!\S)|\s",
    special_tokens: &[
        (ENDOFTEXT, 100257),
        ("<|fim_prefix|>", 100258),
        ("<|fim_middle|>", 100259),
        ("<|fim_suffix|>", 100260),
        ("<|endofprompt|>", 100276),
    ],
};

/// GPT-4o (`o200k_base`): words split at case changes, contractions kept on.
pub const O200K_BASE: Encoding = Encoding {
    name: "o200k_base",
    pattern: concat!(
        r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?",
        r"|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?",
        r"|\p{N}{1,3}",
        r"| ?[^\s\p{L}\p{N}]+[\r\n/]*",
        r"|\s*[\r\n]+",
        r"|\s+(?!\S)",
        r"|\s+",
    ),
    special_tokens: &[(ENDOFTEXT, 199999), ("<|endofprompt|>", 200018)],
};

pub const ENCODINGS: [&Encoding; 3] = [&R50K_BASE, &CL100K_BASE, &O200K_BASE];

/// The encoding called `name`.
pub fn encoding(name: &str) -> Option<&'static Encoding> {
    ENCODINGS.iter().copied().find(|e| e.name == name)
}

/// Loads `<name>.tiktoken`; the file's stem names the encoding (its pattern
/// and special tokens are not in the file).
pub fn load(path: &Path) -> Result<Tokenizer> {
    let stem = path
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_suffix(".tiktoken"))
        .unwrap_or("");
    let enc = encoding(stem).ok_or_else(|| {
        bad_file(
            path,
            format!(
                "unknown tiktoken encoding `{stem}`: the file name must say which pattern to use ({})",
                ENCODINGS.map(|e| e.name).join(", ")
            ),
        )
    })?;
    load_with(path, enc)
}

/// Loads a rank file with an explicit encoding.
pub fn load_with(path: &Path, enc: &Encoding) -> Result<Tokenizer> {
    let ranks = parse_ranks(path, &read_file(path)?)?;
    let eos = enc.special_tokens.first().map(|&(_, id)| id);
    from_ranks(&ranks, enc)
        .map_err(|e| bad_file(path, e.to_string()))
        .map(|tok| Tokenizer::new(tok, path.display().to_string()).with_specials(None, eos))
}

/// `(token bytes, rank)` for every line of a `.tiktoken` file.
pub fn parse_ranks(path: &Path, bytes: &[u8]) -> Result<Vec<(Vec<u8>, u32)>> {
    let mut ranks = Vec::new();
    for (i, line) in bytes.split(|&b| b == b'\n').enumerate() {
        if line.is_empty() {
            continue;
        }
        let bad = || {
            let shown = String::from_utf8_lossy(&line[..line.len().min(40)]).into_owned();
            bad_file(
                path,
                format!(
                    "not a .tiktoken rank file: line {} is not `<base64 token> <rank>` ({shown:?})",
                    i + 1
                ),
            )
        };
        let text = std::str::from_utf8(line).map_err(|_| bad())?;
        let (token, rank) = text
            .trim_end_matches('\r')
            .split_once(' ')
            .ok_or_else(bad)?;
        let token = base64_decode(token).ok_or_else(bad)?;
        let rank: u32 = rank.parse().map_err(|_| bad())?;
        ranks.push((token, rank));
    }
    if ranks.is_empty() {
        return Err(bad_file(path, "not a .tiktoken rank file: it is empty"));
    }
    Ok(ranks)
}

/// A Hugging Face BPE equal to tiktoken on these ranks (see the module comment).
pub fn from_ranks(
    ranks: &[(Vec<u8>, u32)],
    enc: &Encoding,
) -> std::result::Result<tokenizers::Tokenizer, String> {
    use tokenizers::models::bpe::BPE;
    let rank_of: HashMap<&[u8], u32> = ranks.iter().map(|(t, r)| (t.as_slice(), *r)).collect();
    let mut by_rank: Vec<&(Vec<u8>, u32)> = ranks.iter().collect();
    by_rank.sort_by_key(|(_, r)| *r);

    // Every split of every token into two tokens, ordered by the token's rank
    // and then by the ranks of the two halves (TikTokenConverter's order).
    let mut merges: Vec<(String, String)> = Vec::new();
    let mut local: Vec<(u32, u32, usize)> = Vec::new();
    for (token, _) in &by_rank {
        local.clear();
        for cut in 1..token.len() {
            let (l, r) = token.split_at(cut);
            if let (Some(&rl), Some(&rr)) = (rank_of.get(l), rank_of.get(r)) {
                local.push((rl, rr, cut));
            }
        }
        local.sort_unstable();
        for &(_, _, cut) in &local {
            let (l, r) = token.split_at(cut);
            merges.push((byte_level::bytes_to_token(l), byte_level::bytes_to_token(r)));
        }
    }

    let mut vocab: HashMap<String, u32> = ranks
        .iter()
        .map(|(t, r)| (byte_level::bytes_to_token(t), *r))
        .collect();
    // Special tokens go in the model's vocabulary with tiktoken's ids (the
    // ids have gaps, which added tokens alone would close up); no merge makes
    // them, so only the added-token pass below produces them.
    for &(content, id) in enc.special_tokens {
        vocab.insert(content.to_string(), id);
    }
    let model = BPE::builder()
        .vocab_and_merges(
            vocab
                .into_iter()
                .collect::<tokenizers::models::bpe::Vocab>(),
            merges,
        )
        .ignore_merges(true)
        .build()
        .map_err(|e| format!("cannot build the BPE: {e}"))?;
    let mut tok = byte_level::engine(model, Some(enc.pattern))
        .map_err(|e| engine_error("pattern", e).to_string())?;
    let specials: Vec<tokenizers::AddedToken> = enc
        .special_tokens
        .iter()
        .map(|&(content, _)| tokenizers::AddedToken::from(content, true).normalized(false))
        .collect();
    tok.add_special_tokens(&specials);
    Ok(tok)
}

/// Standard base64 (with `=` padding) as tiktoken files use it.
fn base64_decode(text: &str) -> Option<Vec<u8>> {
    fn value(c: u8) -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    }
    let body = text.trim_end_matches('=');
    if body.is_empty() || !text.len().is_multiple_of(4) || text.len() - body.len() > 2 {
        return None;
    }
    let mut out = Vec::with_capacity(body.len() * 3 / 4);
    for chunk in body.as_bytes().chunks(4) {
        let mut acc = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            acc |= value(c)? << (18 - 6 * i);
        }
        let bytes = acc.to_be_bytes();
        out.extend_from_slice(&bytes[1..chunk.len()]);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_decodes_padded_text() {
        assert_eq!(base64_decode("IQ==").unwrap(), b"!");
        assert_eq!(base64_decode("aGk=").unwrap(), b"hi");
        assert_eq!(base64_decode("IHRoZQ==").unwrap(), b" the");
        assert_eq!(base64_decode("YWJj").unwrap(), b"abc");
        assert!(base64_decode("a").is_none());
        assert!(base64_decode("a?bc").is_none());
    }

    #[test]
    fn ranks_from_a_tiny_vocabulary_merge_like_tiktoken() {
        // Bytes a, b, c; then "ab" (rank 3) and "abc" (rank 4).
        let mut ranks: Vec<(Vec<u8>, u32)> = (0..=255u8).map(|b| (vec![b], b as u32)).collect();
        ranks.push((b"ab".to_vec(), 256));
        ranks.push((b"bc".to_vec(), 257));
        ranks.push((b"abc".to_vec(), 258));
        let tok = from_ranks(&ranks, &R50K_BASE).unwrap();
        let ids = tok.encode("abc abcab", false).unwrap().get_ids().to_vec();
        // "abc" whole; " abcab" is " " "ab" "c"... merged lowest rank first: ab,ab then abc.
        assert_eq!(ids, [258, 32, 258, 256]);
    }
}
