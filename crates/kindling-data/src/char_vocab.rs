//! A character vocabulary with BERT's special tokens in front: `[PAD]`
//! `[UNK]` `[CLS]` `[SEP]` `[MASK]` are ids 0–4, then one id per character
//! seen at least `min_count` times, in code-point order. Characters not in
//! it encode to `[UNK]`, so held-out text and hand-written sentences always
//! encode. For Chinese one character is one token, so a word such as 道
//! keeps one id in every sentence (what a study of its contextual vectors
//! needs).

use std::collections::HashMap;

pub const PAD: u32 = 0;
pub const UNK: u32 = 1;
pub const CLS: u32 = 2;
pub const SEP: u32 = 3;
pub const MASK: u32 = 4;
/// The special tokens' names, by id.
pub const SPECIALS: [&str; 5] = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"];

#[derive(Clone, Debug, PartialEq)]
pub struct CharVocab {
    chars: Vec<char>,
    index: HashMap<char, u32>,
}

impl CharVocab {
    /// The characters of `texts` seen at least `min_count` times; an error
    /// when there are none.
    pub fn build<'a>(
        texts: impl IntoIterator<Item = &'a str>,
        min_count: usize,
    ) -> Result<Self, String> {
        let mut counts: HashMap<char, usize> = HashMap::new();
        for t in texts {
            for c in t.chars() {
                *counts.entry(c).or_default() += 1;
            }
        }
        let mut chars: Vec<char> = counts
            .into_iter()
            .filter(|&(_, n)| n >= min_count.max(1))
            .map(|(c, _)| c)
            .collect();
        if chars.is_empty() {
            return Err(format!(
                "no character occurs {} or more times: the text is empty",
                min_count.max(1)
            ));
        }
        chars.sort_unstable();
        Ok(Self::from_chars(chars))
    }

    fn from_chars(chars: Vec<char>) -> Self {
        let index = chars
            .iter()
            .enumerate()
            .map(|(i, &c)| (c, i as u32 + SPECIALS.len() as u32))
            .collect();
        CharVocab { chars, index }
    }

    /// Specials and characters together.
    pub fn size(&self) -> usize {
        SPECIALS.len() + self.chars.len()
    }

    /// The id of `c`, `None` when it is not in the vocabulary.
    pub fn id(&self, c: char) -> Option<u32> {
        self.index.get(&c).copied()
    }

    /// One id per character, `[UNK]` for those not in the vocabulary.
    pub fn encode(&self, text: &str) -> Vec<u32> {
        text.chars().map(|c| self.id(c).unwrap_or(UNK)).collect()
    }

    /// The token of `id`: a special's name, a character, or `None`.
    pub fn token(&self, id: u32) -> Option<String> {
        match SPECIALS.get(id as usize) {
            Some(s) => Some(s.to_string()),
            None => self
                .chars
                .get(id as usize - SPECIALS.len())
                .map(|c| c.to_string()),
        }
    }

    /// The characters of `ids`, specials left out.
    pub fn decode(&self, ids: &[u32]) -> String {
        ids.iter()
            .filter(|&&i| i as usize >= SPECIALS.len())
            .filter_map(|&i| self.chars.get(i as usize - SPECIALS.len()))
            .collect()
    }

    /// The characters as one string (stored in checkpoint metadata).
    pub fn to_chars_string(&self) -> String {
        self.chars.iter().collect()
    }

    pub fn from_chars_string(s: &str) -> Result<Self, String> {
        Ok(Self::from_chars(
            crate::char_tokenizer::distinct_sorted_chars(s)?,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specials_come_first_and_rare_characters_become_unk() {
        let v = CharVocab::build(["道可道，非常道", "大道至简"], 2).unwrap();
        assert_eq!(v.size(), SPECIALS.len() + 1, "only 道 occurs twice or more");
        assert_eq!(v.id('道'), Some(5));
        assert_eq!(v.encode("道德"), vec![5, UNK]);
        assert_eq!(v.token(MASK).unwrap(), "[MASK]");
        assert_eq!(v.token(5).unwrap(), "道");
        assert_eq!(v.decode(&[CLS, 5, SEP, PAD]), "道");
        let again = CharVocab::from_chars_string(&v.to_chars_string()).unwrap();
        assert_eq!(again, v);
        assert!(CharVocab::build([""], 1).is_err());
    }
}
