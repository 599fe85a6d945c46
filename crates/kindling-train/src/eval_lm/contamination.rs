//! Does a task leak into a training corpus? N-gram overlap as in the GPT-3
//! paper (Brown et al. 2020, appendix C and section 4): texts become
//! lower-cased words with punctuation removed, and an item is contaminated
//! ("dirty") when N consecutive words of it (N = 13 by default) also occur
//! consecutively in the corpus.
//!
//! Words: Unicode lower case; every character that is neither alphanumeric
//! nor whitespace (punctuation, symbols such as `+`, `=`, `°`) is deleted
//! without splitting the word (`don't` → `dont`, as the lm-evaluation-
//! harness janitor does); whitespace separates words. Chinese and Japanese
//! are written without spaces, so each CJK ideograph or kana is a word of
//! its own (`中国的首都` is five words): 13 characters are a phrase, not a
//! paragraph, which keeps N meaningful for both scripts; and their
//! full-width punctuation (`，` `。`), which stands where a space would,
//! separates words instead of joining them.
//!
//! Which n-grams of an item: those inside its question, and those inside
//! any choice of at least N words. N-grams do not run from the question
//! into a choice, because a copy of an item in a corpus seldom lays them
//! out as we would (`A.`, `"choices": [`, an answer letter come between).
//! A question shorter than N words is checked whole, as GPT-3 checked
//! examples shorter than N; a choice shorter than N is not checked alone
//! (`Paris` is in every corpus).
//!
//! The items' n-grams are hashed into a table; the corpus is streamed a
//! line at a time past a window of its last words, so its size does not
//! matter. A hash hit is confirmed by comparing the words.

use super::task::ChoiceItem;
use crate::{Error, Result};
use std::collections::{HashMap, VecDeque};
use std::io::BufRead;
use std::path::Path;

/// Ideographs (CJK Unified, extensions, compatibility) and kana: scripts
/// written without spaces, so each character is a word.
pub fn is_cjk(c: char) -> bool {
    matches!(c as u32,
        0x3040..=0x30FF        // Hiragana, Katakana
        | 0x3400..=0x4DBF      // CJK Extension A
        | 0x4E00..=0x9FFF      // CJK Unified Ideographs
        | 0xF900..=0xFAFF      // CJK Compatibility Ideographs
        | 0x20000..=0x2FA1F    // Extensions B-F, Compatibility Supplement
    )
}

/// CJK symbols and punctuation and the full-width forms (`，` `。` `？`):
/// these scripts put them where others put a space, so they end a word
/// (an ASCII comma does not: it is deleted).
fn is_cjk_punctuation(c: char) -> bool {
    matches!(c as u32, 0x3000..=0x303F | 0xFF00..=0xFF65) && !c.is_alphanumeric()
}

/// Feeds `text`'s words (as defined above) to `word`.
fn for_each_word(text: &str, mut word: impl FnMut(&str)) {
    let mut current = String::new();
    for c in text.chars() {
        if c.is_whitespace() || is_cjk_punctuation(c) {
            if !current.is_empty() {
                word(&current);
                current.clear();
            }
        } else if is_cjk(c) {
            if !current.is_empty() {
                word(&current);
                current.clear();
            }
            let mut buf = [0u8; 4];
            word(c.encode_utf8(&mut buf));
        } else if c.is_alphanumeric() {
            current.extend(c.to_lowercase());
        }
        // Anything else is punctuation or a symbol: deleted.
    }
    if !current.is_empty() {
        word(&current);
    }
}

/// The words of `text`: lower-cased, punctuation removed, split on
/// whitespace, each CJK character a word.
pub fn words(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for_each_word(text, |w| out.push(w.to_string()));
    out
}

/// FNV-1a of a word.
fn word_hash(w: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in w.as_bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// A sequence's hash from its words' hashes (order matters).
fn gram_hash(hashes: impl Iterator<Item = u64>) -> u64 {
    let mut h: u64 = 0x9E37_79B9_7F4A_7C15;
    for w in hashes {
        h = (h ^ w).wrapping_mul(0x0000_0100_0000_01b3).rotate_left(29);
    }
    h
}

/// The word sequences of an item that are checked: its question, then
/// each choice of at least `n` words.
fn segments(item: &ChoiceItem, n: usize) -> Vec<Vec<String>> {
    let mut out = vec![words(&item.question)];
    out.extend(
        item.choices
            .iter()
            .map(|c| words(c))
            .filter(|w| w.len() >= n),
    );
    out
}

#[derive(Clone, Debug, PartialEq)]
pub struct ItemOverlap {
    pub index: usize,
    /// The question's words.
    pub words: usize,
    /// Words in the question's grams: N, or the question's length when
    /// shorter (then the whole question is its one gram).
    pub gram_len: usize,
    /// The first gram found in the corpus, its words joined by spaces,
    /// and the corpus line where that occurrence ends.
    pub matched: Option<(String, usize)>,
    /// Occurrences in the corpus of any of the item's grams.
    pub hits: usize,
}

#[derive(Clone, Debug)]
pub struct ContaminationReport {
    pub n: usize,
    pub items: Vec<ItemOverlap>,
    pub corpus_words: u64,
    pub corpus_lines: usize,
}

impl ContaminationReport {
    pub fn contaminated(&self) -> impl Iterator<Item = &ItemOverlap> {
        self.items.iter().filter(|i| i.matched.is_some())
    }

    pub fn fraction(&self) -> f64 {
        self.contaminated().count() as f64 / self.items.len().max(1) as f64
    }

    /// Items whose question is shorter than N words, checked whole.
    pub fn short_items(&self) -> usize {
        self.items.iter().filter(|i| i.gram_len < self.n).count()
    }
}

/// Checks `items` against a corpus read from `corpus` (`name` is what
/// errors call it). `n` is the gram length.
pub fn contamination(
    items: &[ChoiceItem],
    corpus: impl BufRead,
    name: &str,
    n: usize,
) -> Result<ContaminationReport> {
    if n == 0 {
        return Err(Error::option("n", "must be at least 1"));
    }
    let item_segments: Vec<Vec<Vec<String>>> = items.iter().map(|i| segments(i, n)).collect();
    // hash -> (item, segment, first word) for every gram of every item.
    let mut table: HashMap<u64, Vec<(usize, usize, usize)>> = HashMap::new();
    let mut lengths: Vec<usize> = Vec::new();
    let mut overlaps = Vec::with_capacity(items.len());
    for (index, segs) in item_segments.iter().enumerate() {
        for (seg, w) in segs.iter().enumerate() {
            // Choices here have at least n words; a question may have fewer.
            let len = n.min(w.len());
            if len == 0 {
                continue;
            }
            let hashes: Vec<u64> = w.iter().map(|s| word_hash(s)).collect();
            for start in 0..=w.len() - len {
                let h = gram_hash(hashes[start..start + len].iter().copied());
                table.entry(h).or_default().push((index, seg, start));
            }
            lengths.push(len);
        }
        overlaps.push(ItemOverlap {
            index,
            words: segs[0].len(),
            gram_len: n.min(segs[0].len()),
            matched: None,
            hits: 0,
        });
    }
    lengths.sort_unstable();
    lengths.dedup();
    let longest = lengths.last().copied().unwrap_or(0);
    // The corpus's last `longest` words and their hashes.
    let mut recent: VecDeque<(String, u64)> = VecDeque::with_capacity(longest + 1);
    let (mut corpus_words, mut line_no) = (0u64, 0usize);
    let mut reader = corpus;
    let mut buf = Vec::new();
    loop {
        buf.clear();
        let read = reader
            .read_until(b'\n', &mut buf)
            .map_err(|e| format!("{name}: {e}"))?;
        if read == 0 {
            break;
        }
        line_no += 1;
        let line = std::str::from_utf8(&buf).map_err(|e| {
            format!(
                "{name} line {line_no}: not UTF-8 text (invalid byte at column {})",
                e.valid_up_to() + 1
            )
        })?;
        for_each_word(line, |w| {
            corpus_words += 1;
            if longest == 0 {
                return;
            }
            if recent.len() == longest {
                recent.pop_front();
            }
            recent.push_back((w.to_string(), word_hash(w)));
            for &len in &lengths {
                if recent.len() < len {
                    break;
                }
                let tail = recent.range(recent.len() - len..);
                let h = gram_hash(tail.clone().map(|(_, h)| *h));
                let Some(owners) = table.get(&h) else {
                    continue;
                };
                for &(item, seg, start) in owners {
                    let segment = &item_segments[item][seg];
                    if n.min(segment.len()) != len {
                        continue;
                    }
                    let o = &mut overlaps[item];
                    let gram = &segment[start..start + len];
                    if !tail.clone().map(|(s, _)| s).eq(gram.iter()) {
                        continue; // a hash collision
                    }
                    o.hits += 1;
                    if o.matched.is_none() {
                        o.matched = Some((gram.join(" "), line_no));
                    }
                }
            }
        });
    }
    Ok(ContaminationReport {
        n,
        items: overlaps,
        corpus_words,
        corpus_lines: line_no,
    })
}

/// [`contamination`] against a text file (gzip-compressed when its name
/// ends in `.gz`).
pub fn contamination_file(
    items: &[ChoiceItem],
    path: &Path,
    n: usize,
) -> Result<ContaminationReport> {
    let file =
        std::fs::File::open(path).map_err(|e| format!("`corpus` {}: {e}", path.display()))?;
    let name = path.display().to_string();
    if path.extension().is_some_and(|e| e == "gz") {
        let gz = flate2::read::MultiGzDecoder::new(file);
        contamination(items, std::io::BufReader::new(gz), &name, n)
    } else {
        contamination(items, std::io::BufReader::new(file), &name, n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(q: &str, choices: &[&str]) -> ChoiceItem {
        ChoiceItem {
            question: q.into(),
            choices: choices.iter().map(|c| c.to_string()).collect(),
            answer: 0,
            subject: None,
            line: 1,
        }
    }

    #[test]
    fn words_are_lowercased_without_punctuation_and_cjk_characters_are_words() {
        assert_eq!(
            words("Don't STOP: 2 + 2 = 4!"),
            ["dont", "stop", "2", "2", "4"]
        );
        assert_eq!(
            words("中国的首都是？北京。"),
            ["中", "国", "的", "首", "都", "是", "北", "京"]
        );
        assert_eq!(words("3个apples，Über"), ["3", "个", "apples", "über"]);
        assert!(words(" ... ?? ").is_empty());
    }

    fn check(items: &[ChoiceItem], corpus: &str, n: usize) -> ContaminationReport {
        contamination(items, corpus.as_bytes(), "corpus.txt", n).unwrap()
    }

    #[test]
    fn a_planted_thirteen_gram_is_found_and_a_twelve_gram_is_not() {
        let question =
            "In which year did the first person walk on the surface of the moon, and who was it?";
        let items = [item(
            question,
            &["1969, Neil Armstrong", "1972, Buzz Aldrin"],
        )];
        let thirteen = "first person walk on the surface of the moon and who was it";
        assert_eq!(words(thirteen).len(), 13);
        // Planted across a line break, with other case and punctuation.
        let corpus = "Some text.\nFIRST person -- walk on the\nsurface of the Moon; and who was it? more text\n";
        let r = check(&items, corpus, 13);
        let (gram, line) = r.items[0].matched.clone().expect("found");
        assert_eq!((gram.as_str(), line), (thirteen, 3));
        assert_eq!(r.fraction(), 1.0);
        assert_eq!(r.corpus_lines, 3);
        // Twelve of those words are not enough.
        let twelve = "first person walk on the surface of the moon and who was";
        assert_eq!(words(twelve).len(), 12);
        let r = check(&items, &format!("x {twelve} y\n"), 13);
        assert!(r.items[0].matched.is_none());
        assert_eq!(r.fraction(), 0.0);
        // With N = 12 they are.
        assert!(check(&items, &format!("x {twelve} y\n"), 12).items[0]
            .matched
            .is_some());
    }

    #[test]
    fn grams_stay_inside_the_question_or_a_long_choice() {
        let items = [item(
            "one two three four five six",
            &["seven eight nine ten eleven twelve", "x"],
        )];
        let found = |corpus: &str| {
            check(&items, corpus, 6).items[0]
                .matched
                .clone()
                .map(|m| m.0)
        };
        let question = "one two three four five six";
        assert_eq!(found(&format!("0 {question} 7")).as_deref(), Some(question));
        let choice = "seven eight nine ten eleven twelve";
        assert_eq!(found(choice).as_deref(), Some(choice));
        assert_eq!(found("five six seven eight nine ten"), None);
        // "x" alone is too short to say anything.
        assert_eq!(found("x x x"), None);
    }

    #[test]
    fn a_question_shorter_than_n_is_dirty_only_when_it_occurs_whole() {
        let items = [
            item("中国的首都是哪里？", &["北京", "上海"]),
            item("Capital of France?", &["Paris", "Rome"]),
        ];
        let corpus = "问：中国的首都是哪里 北京上海 答：北京\ncapital of spain is madrid; france\n";
        let r = check(&items, corpus, 13);
        assert_eq!(r.short_items(), 2);
        assert_eq!((r.items[0].words, r.items[0].gram_len), (8, 8));
        assert_eq!(
            r.items[0].matched.as_ref().unwrap().0,
            "中 国 的 首 都 是 哪 里"
        );
        // Two of its three words are not the whole question.
        assert!(r.items[1].matched.is_none());
        assert_eq!(r.contaminated().count(), 1);
        assert_eq!(r.fraction(), 0.5);
        let r = check(&items, "The capital of France is Paris.", 13);
        assert_eq!(r.items[1].matched.as_ref().unwrap().0, "capital of france");
    }

    #[test]
    fn counts_every_occurrence_and_refuses_bad_input() {
        let items = [item("a b c d", &["e", "f"])];
        let r = check(&items, "a b c d\nx\na b\nc d", 4);
        assert_eq!(r.items[0].hits, 2);
        assert_eq!(r.corpus_words, 9);
        let e = contamination(&items, &b"ok\nbad\xFF\n"[..], "c.txt", 4);
        let e = e.unwrap_err().to_string();
        assert!(e.starts_with("c.txt line 2: not UTF-8"), "{e}");
        assert_eq!(
            contamination(&items, "".as_bytes(), "c", 0)
                .unwrap_err()
                .to_string(),
            "n must be at least 1"
        );
    }
}
