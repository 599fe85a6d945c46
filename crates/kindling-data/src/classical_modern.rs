//! The classical ↔ modern Chinese sentence pairs (`kindling data fetch
//! classical-modern`): gzip'd JSON lines `{classical, modern, source,
//! chapter}`, simplified characters on both sides (see the dataset's
//! SOURCE.md), and a held-out split by a seeded hash of the text, so a
//! pair's side of the split does not depend on the order it is read in or
//! on how many pairs are read.

use crate::{Error, Result};
use std::io::Read;
use std::path::Path;

/// The file in the dataset's directory.
pub const FILE_NAME: &str = "classical-modern-subset.jsonl.gz";

#[derive(Clone, Debug, PartialEq)]
pub struct Pair {
    pub classical: String,
    pub modern: String,
    /// The book, e.g. `史记`.
    pub source: String,
}

/// Every pair in `path` (a `.jsonl.gz` file), in file order. Lines with an
/// empty side are skipped; a line that is not a JSON object with string
/// `classical` and `modern` is an error naming the line.
pub fn load(path: &Path) -> Result<Vec<Pair>> {
    let file = std::fs::File::open(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let mut raw = String::new();
    flate2::read::MultiGzDecoder::new(file)
        .read_to_string(&mut raw)
        .map_err(|source| Error::Gzip {
            path: path.to_path_buf(),
            source,
        })?;
    parse(&raw, path)
}

/// Pairs from JSON-lines text (`path` only names the source in errors).
pub fn parse(text: &str, path: &Path) -> Result<Vec<Pair>> {
    let mut pairs = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let bad = |problem: String| Error::Corpus {
            name: format!("{} line {}", path.display(), i + 1),
            problem,
        };
        let v: serde_json::Value = serde_json::from_str(line).map_err(|e| bad(e.to_string()))?;
        let field = |k: &str| {
            v[k].as_str()
                .map(|s| s.trim().to_string())
                .ok_or_else(|| bad(format!("no string `{k}`")))
        };
        let (classical, modern) = (field("classical")?, field("modern")?);
        if classical.is_empty() || modern.is_empty() {
            continue;
        }
        pairs.push(Pair {
            classical,
            modern,
            source: v["source"].as_str().unwrap_or("").to_string(),
        });
    }
    Ok(pairs)
}

/// Whether `text` falls in the held-out part (`per_mille` of 1000) of the
/// split seeded by `seed`: FNV-1a over the seed and the text's bytes, so
/// the same text is on the same side whatever else is read.
pub fn is_held_out(text: &str, seed: u64, per_mille: u64) -> bool {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in seed.to_le_bytes().iter().chain(text.as_bytes()) {
        h ^= *b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    // The low bits of FNV mix poorly; fold the high half in.
    (h ^ (h >> 32)) % 1000 < per_mille
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_pairs_and_names_a_bad_line() {
        let text = "{\"classical\":\"学而时习之\",\"modern\":\"学了又时常温习\",\"source\":\"论语\",\"chapter\":\"学而\"}\n\
                    {\"classical\":\" \",\"modern\":\"空\"}\n";
        let pairs = parse(text, Path::new("x.jsonl")).unwrap();
        assert_eq!(pairs.len(), 1);
        assert_eq!(pairs[0].classical, "学而时习之");
        assert_eq!(pairs[0].source, "论语");
        let err = parse("{\"modern\":\"a\"}\n", Path::new("x.jsonl"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("x.jsonl line 1") && err.contains("`classical`"),
            "{err}"
        );
    }

    #[test]
    fn held_out_split_is_seeded_and_about_the_asked_size() {
        let texts: Vec<String> = (0..20_000).map(|i| format!("句子{i}")).collect();
        let held = texts.iter().filter(|t| is_held_out(t, 0, 50)).count();
        assert!((800..1200).contains(&held), "{held} of 20000 at 5%");
        let other = texts.iter().filter(|t| is_held_out(t, 1, 50)).count();
        let both = texts
            .iter()
            .filter(|t| is_held_out(t, 0, 50) && is_held_out(t, 1, 50))
            .count();
        assert!(
            both < held / 4,
            "seeds 0 and 1 share {both} of {held}/{other}"
        );
    }
}
