//! Character-level tokenizer: one token per Unicode scalar value that occurs
//! in the corpus, numbered in code-point order, so Chinese works like
//! English. Saved as the list of characters (JSON string) with a model.

use std::collections::HashMap;

#[derive(Clone, Debug, PartialEq)]
pub struct CharTokenizer {
    chars: Vec<char>,
    index: HashMap<char, u32>,
}

impl CharTokenizer {
    /// The vocabulary of `text`; an error if the text is empty.
    pub fn from_text(text: &str) -> Result<Self, String> {
        let mut chars: Vec<char> = text.chars().collect();
        chars.sort_unstable();
        chars.dedup();
        if chars.is_empty() {
            return Err("the corpus is empty: no characters to build a vocabulary from".into());
        }
        Ok(Self::from_chars(chars))
    }

    fn from_chars(chars: Vec<char>) -> Self {
        let index = chars
            .iter()
            .enumerate()
            .map(|(i, &c)| (c, i as u32))
            .collect();
        CharTokenizer { chars, index }
    }

    pub fn vocab_size(&self) -> usize {
        self.chars.len()
    }

    /// Ids for `text`; the error names the first character not in the vocabulary.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>, String> {
        text.chars()
            .map(|c| {
                self.index.get(&c).copied().ok_or_else(|| {
                    format!("character {c:?} (U+{:04X}) is not in the model's vocabulary of {} characters", c as u32, self.chars.len())
                })
            })
            .collect()
    }

    pub fn decode(&self, ids: &[u32]) -> String {
        ids.iter()
            .filter_map(|&i| self.chars.get(i as usize))
            .collect()
    }

    pub fn decode_one(&self, id: u32) -> Option<char> {
        self.chars.get(id as usize).copied()
    }

    /// The vocabulary as one string (stored in checkpoint metadata).
    pub fn to_vocab_string(&self) -> String {
        self.chars.iter().collect()
    }

    pub fn from_vocab_string(s: &str) -> Result<Self, String> {
        Ok(Self::from_chars(distinct_sorted_chars(s)?))
    }
}

/// The characters of a stored vocabulary string, which must be distinct and
/// in code-point order (as `to_vocab_string` writes them).
pub(crate) fn distinct_sorted_chars(s: &str) -> Result<Vec<char>, String> {
    let chars: Vec<char> = s.chars().collect();
    let mut sorted = chars.clone();
    sorted.sort_unstable();
    sorted.dedup();
    if chars.is_empty() || sorted != chars {
        return Err(
            "vocabulary must be a non-empty string of distinct characters in code-point order"
                .into(),
        );
    }
    Ok(chars)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_english_and_chinese() {
        let text = "床前明月光，疑是地上霜。\nTo be, or not to be";
        let tok = CharTokenizer::from_text(text).unwrap();
        let ids = tok.encode(text).unwrap();
        assert_eq!(tok.decode(&ids), text);
        let again = CharTokenizer::from_vocab_string(&tok.to_vocab_string()).unwrap();
        assert_eq!(again, tok);
        let err = tok.encode("Z").unwrap_err();
        assert!(err.contains("'Z'") && err.contains("U+005A"), "{err}");
        assert!(CharTokenizer::from_text("").is_err());
    }
}
