//! The English text word vectors are trained on, as a stream of word ids
//! with sentence boundaries.
//!
//! Tokens are what gensim's `simple_preprocess` roughly keeps: maximal runs
//! of letters (`char::is_alphabetic`; digits, apostrophes, hyphens and
//! underscores split), lowercased, 2 to 15 characters long. "Don't" gives
//! `don` (and a one-letter `t`, dropped). The evaluation sets are lowercase
//! words, so this is the vocabulary they ask about.
//!
//! A sentence is a line of the corpus file (a document, a dialogue, a
//! speech); context windows never cross one. A line longer than
//! [`MAX_SENTENCE_WORDS`] words is cut into pieces of that length, as
//! gensim's `LineSentence` does, so the two trainers see the same
//! sentences. The tokenizer is idempotent: a corpus written by
//! [`Corpus::write`] reads back as the same words and sentences.

use crate::Result;
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;

/// gensim's `MAX_WORDS_IN_BATCH`: the longest sentence either trainer sees.
pub const MAX_SENTENCE_WORDS: usize = 10_000;

const MIN_TOKEN_CHARS: usize = 2;
const MAX_TOKEN_CHARS: usize = 15;

/// Calls `emit` with each token of `text`, lowercased.
pub fn tokenize(text: &str, mut emit: impl FnMut(&str)) {
    let mut word = String::new();
    let mut chars = 0;
    let mut flush = |word: &mut String, chars: &mut usize| {
        if (MIN_TOKEN_CHARS..=MAX_TOKEN_CHARS).contains(chars) {
            emit(word);
        }
        word.clear();
        *chars = 0;
    };
    for c in text.chars() {
        if c.is_alphabetic() {
            word.extend(c.to_lowercase());
            chars += 1;
        } else if !word.is_empty() {
            flush(&mut word, &mut chars);
        }
    }
    if !word.is_empty() {
        flush(&mut word, &mut chars);
    }
}

/// A tokenized corpus: every distinct word once (in order of first
/// appearance, as gensim's vocabulary scan meets them) with its count, and
/// the text as ids into that list.
#[derive(Clone, Debug, Default)]
pub struct Corpus {
    pub words: Vec<String>,
    pub counts: Vec<u64>,
    pub ids: Vec<u32>,
    /// `ids[sentence_ends[i - 1]..sentence_ends[i]]` is sentence `i`.
    pub sentence_ends: Vec<usize>,
    index: HashMap<String, u32>,
}

impl Corpus {
    /// Adds one sentence (a line; longer ones are cut as gensim cuts them).
    /// A text with no tokens adds nothing.
    pub fn push_sentence(&mut self, text: &str) {
        let start = self.ids.len();
        let mut in_sentence = 0;
        tokenize(text, |w| {
            let id = match self.index.get(w) {
                Some(&id) => id,
                None => {
                    let id = self.words.len() as u32;
                    self.words.push(w.to_string());
                    self.counts.push(0);
                    self.index.insert(w.to_string(), id);
                    id
                }
            };
            self.counts[id as usize] += 1;
            self.ids.push(id);
            in_sentence += 1;
            if in_sentence == MAX_SENTENCE_WORDS {
                self.sentence_ends.push(self.ids.len());
                in_sentence = 0;
            }
        });
        if in_sentence > 0 {
            debug_assert!(self.ids.len() > start);
            self.sentence_ends.push(self.ids.len());
        }
    }

    /// Every line of `reader` as a sentence.
    pub fn push_lines(&mut self, reader: impl Read, name: &Path) -> Result<()> {
        for line in BufReader::new(reader).lines() {
            let line = line.map_err(|e| format!("{}: {e}", name.display()))?;
            self.push_sentence(&line);
        }
        Ok(())
    }

    /// A text file, one sentence a line.
    pub fn from_file(path: &Path) -> Result<Corpus> {
        let file = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let mut c = Corpus::default();
        c.push_lines(file, path)?;
        if c.ids.is_empty() {
            return Err(format!(
                "{}: the corpus is empty (no words of 2 to 15 letters)",
                path.display()
            )
            .into());
        }
        Ok(c)
    }

    /// Tokens in the corpus.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    pub fn sentences(&self) -> impl Iterator<Item = &[u32]> + '_ {
        let mut start = 0;
        self.sentence_ends.iter().map(move |&end| {
            let s = &self.ids[start..end];
            start = end;
            s
        })
    }

    /// The tokens, space-separated, one sentence a line: the file gensim
    /// reads with `LineSentence`, byte-identical tokens for both trainers.
    pub fn write(&self, path: &Path) -> Result<()> {
        let file = std::fs::File::create(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let mut w = std::io::BufWriter::new(file);
        let io = |e: std::io::Error| format!("{}: {e}", path.display());
        for sentence in self.sentences() {
            for (i, &id) in sentence.iter().enumerate() {
                if i > 0 {
                    w.write_all(b" ").map_err(io)?;
                }
                w.write_all(self.words[id as usize].as_bytes())
                    .map_err(io)?;
            }
            w.write_all(b"\n").map_err(io)?;
        }
        w.flush().map_err(io)?;
        Ok(())
    }
}

/// Where each part of the default corpus came from and how many words it gave.
#[derive(Clone, Debug, serde::Serialize)]
pub struct CorpusPart {
    pub source: String,
    pub sentences: usize,
    pub words: usize,
}

fn gz_reader(path: &Path) -> Result<impl Read> {
    let file = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(flate2::read::MultiGzDecoder::new(BufReader::new(file)))
}

/// The HH-RLHF test splits, in the registry's order.
const HH_SPLITS: [&str; 4] = [
    "helpful-base-test.jsonl.gz",
    "harmless-base-test.jsonl.gz",
    "helpful-online-test.jsonl.gz",
    "helpful-rejection-sampled-test.jsonl.gz",
];

/// The default corpus: the English prose Kindling's data sets hold, each
/// read from the data root (`kindling data fetch NAME` puts it there):
/// the Lee news corpus (`word-vectors`, 300 documents, one a line), the
/// outputs of Stanford Alpaca (`alpaca`, one output a sentence), the
/// chosen dialogue of every HH-RLHF pair (`hh-rlhf`, the turn labels
/// `Human:`/`Assistant:` left out, one dialogue a sentence; the rejected
/// one repeats its prompt) and tiny-shakespeare (`shakespeare`, one speech
/// a sentence: lines up to a blank line). The Wikipedia excerpt in
/// `word-vectors` is bzip2-compressed XML and is left out (no bzip2 reader
/// in the build).
pub fn default_corpus() -> Result<(Corpus, Vec<CorpusPart>)> {
    use kindling_data::registry::dataset_dir;
    let mut c = Corpus::default();
    let mut parts = Vec::new();
    let part = |c: &Corpus, source: &str, s0: usize, w0: usize| CorpusPart {
        source: source.to_string(),
        sentences: c.sentence_ends.len() - s0,
        words: c.ids.len() - w0,
    };

    let wv = dataset_dir("word-vectors")?;
    let (s0, w0) = (c.sentence_ends.len(), c.ids.len());
    let lee = wv.join("lee_background.cor");
    let file = std::fs::File::open(&lee).map_err(|e| format!("{}: {e}", lee.display()))?;
    c.push_lines(file, &lee)?;
    parts.push(part(&c, "word-vectors/lee_background.cor", s0, w0));

    let alpaca = dataset_dir("alpaca")?.join("alpaca_data.json.gz");
    let (s0, w0) = (c.sentence_ends.len(), c.ids.len());
    let records: Vec<serde_json::Value> = serde_json::from_reader(gz_reader(&alpaca)?)
        .map_err(|e| format!("{}: {e}", alpaca.display()))?;
    for r in &records {
        let output = r["output"]
            .as_str()
            .ok_or_else(|| format!("{}: a record without `output`", alpaca.display()))?;
        c.push_sentence(output);
    }
    parts.push(part(&c, "alpaca outputs", s0, w0));

    let hh = dataset_dir("hh-rlhf")?;
    let (s0, w0) = (c.sentence_ends.len(), c.ids.len());
    for split in HH_SPLITS {
        let path = hh.join(split);
        for line in BufReader::new(gz_reader(&path)?).lines() {
            let line = line.map_err(|e| format!("{}: {e}", path.display()))?;
            if line.trim().is_empty() {
                continue;
            }
            let v: serde_json::Value =
                serde_json::from_str(&line).map_err(|e| format!("{}: {e}", path.display()))?;
            let chosen = v["chosen"]
                .as_str()
                .ok_or_else(|| format!("{}: a record without `chosen`", path.display()))?;
            let text = chosen
                .replace("\n\nHuman:", "\n")
                .replace("\n\nAssistant:", "\n");
            c.push_sentence(&text);
        }
    }
    parts.push(part(&c, "hh-rlhf chosen dialogues", s0, w0));

    let shakespeare = dataset_dir("shakespeare")?.join("input.txt");
    let (s0, w0) = (c.sentence_ends.len(), c.ids.len());
    let text = crate::corpus::read_utf8(&shakespeare)?;
    for speech in text.split("\n\n") {
        c.push_sentence(speech);
    }
    parts.push(part(&c, "shakespeare speeches", s0, w0));
    Ok((c, parts))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens(text: &str) -> Vec<String> {
        let mut v = Vec::new();
        tokenize(text, |w| v.push(w.to_string()));
        v
    }

    #[test]
    fn tokens_are_lowercase_letter_runs_of_two_to_fifteen() {
        assert_eq!(
            tokens("The King's 2 sons -- don't_go! a I Ünïcode"),
            vec!["the", "king", "sons", "don", "go", "ünïcode"]
        );
        assert!(
            tokens("abcdefghijklmnop").is_empty(),
            "16 letters is too long"
        );
        assert_eq!(tokens("abcdefghijklmno"), vec!["abcdefghijklmno"]);
    }

    #[test]
    fn a_written_corpus_reads_back_identically() {
        let mut c = Corpus::default();
        c.push_sentence("Hello, world! Hello again.");
        c.push_sentence("   ");
        c.push_sentence("It's a new line");
        assert_eq!(c.sentence_ends, vec![4, 7]);
        assert_eq!(
            c.words,
            vec!["hello", "world", "again", "it", "new", "line"]
        );
        assert_eq!(c.counts, vec![2, 1, 1, 1, 1, 1]);
        let path = std::env::temp_dir().join(format!("kindling-w2v-corpus-{}", std::process::id()));
        c.write(&path).unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "hello world hello again\nit new line\n"
        );
        let back = Corpus::from_file(&path).unwrap();
        assert_eq!(back.ids, c.ids);
        assert_eq!(back.sentence_ends, c.sentence_ends);
        std::fs::remove_file(&path).ok();
    }

    #[test]
    fn long_lines_are_cut_as_gensim_cuts_them() {
        let mut c = Corpus::default();
        c.push_sentence(&"ab ".repeat(MAX_SENTENCE_WORDS * 2 + 3));
        assert_eq!(
            c.sentence_ends,
            vec![
                MAX_SENTENCE_WORDS,
                2 * MAX_SENTENCE_WORDS,
                2 * MAX_SENTENCE_WORDS + 3
            ]
        );
    }

    #[test]
    fn an_empty_corpus_file_is_an_error_naming_it() {
        let path = std::env::temp_dir().join(format!("kindling-w2v-empty-{}", std::process::id()));
        std::fs::write(&path, "1 2 3\n\n").unwrap();
        let e = Corpus::from_file(&path).unwrap_err().to_string();
        assert!(
            e.contains(&path.display().to_string()) && e.contains("empty"),
            "{e}"
        );
        std::fs::remove_file(&path).ok();
    }
}
