//! Word vectors as other tools exchange them: word2vec's text format, a
//! header line `VOCAB DIM` and then one line per word, `word v1 v2 … vDIM`,
//! most frequent word first. gensim's `KeyedVectors.save_word2vec_format`
//! (binary=False) writes the same, so Kindling's evaluation reads gensim's
//! vectors and gensim reads Kindling's.

use crate::Result;
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

#[derive(Clone, Debug)]
pub struct WordVectors {
    pub words: Vec<String>,
    pub dim: usize,
    /// `words.len() × dim`, row-major.
    pub data: Vec<f32>,
    /// The file they came from, for error messages (empty if none).
    pub source: PathBuf,
    index: HashMap<String, usize>,
}

impl WordVectors {
    pub fn new(words: Vec<String>, dim: usize, data: Vec<f32>) -> WordVectors {
        assert_eq!(
            words.len() * dim,
            data.len(),
            "one row of `dim` values per word"
        );
        let mut index = HashMap::with_capacity(words.len());
        for (i, w) in words.iter().enumerate() {
            // The first of repeated words wins, as in gensim's key_to_index.
            index.entry(w.clone()).or_insert(i);
        }
        WordVectors {
            words,
            dim,
            data,
            source: PathBuf::new(),
            index,
        }
    }

    pub fn len(&self) -> usize {
        self.words.len()
    }

    pub fn is_empty(&self) -> bool {
        self.words.is_empty()
    }

    pub fn index_of(&self, word: &str) -> Option<usize> {
        self.index.get(word).copied()
    }

    pub fn row(&self, i: usize) -> &[f32] {
        &self.data[i * self.dim..(i + 1) * self.dim]
    }

    /// Every row scaled to length 1 (a zero row stays zero).
    pub fn unit_rows(&self) -> Vec<f32> {
        let mut out = self.data.clone();
        for row in out.chunks_exact_mut(self.dim.max(1)) {
            let norm = row.iter().map(|x| x * x).sum::<f32>().sqrt();
            if norm > 0.0 {
                row.iter_mut().for_each(|x| *x /= norm);
            }
        }
        out
    }

    /// Writes word2vec's text format (through a temp file and a rename).
    pub fn save_text(&self, path: &Path) -> Result<()> {
        let mut bytes = Vec::with_capacity(self.data.len() * 11);
        writeln!(bytes, "{} {}", self.words.len(), self.dim).expect("writing to memory");
        for (i, w) in self.words.iter().enumerate() {
            bytes.extend_from_slice(w.as_bytes());
            for v in self.row(i) {
                // Shortest text that reads back as the same f32.
                write!(bytes, " {v}").expect("writing to memory");
            }
            bytes.push(b'\n');
        }
        kindling_tensor::safetensors_io::write_atomic(path, &bytes)?;
        Ok(())
    }

    /// Reads word2vec's text format; errors name the file and line.
    pub fn load_text(path: &Path) -> Result<WordVectors> {
        let file = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let mut lines = BufReader::new(file).lines();
        let bad = |line: usize, what: String| format!("{}:{line}: {what}", path.display());
        let header = match lines.next() {
            Some(l) => l.map_err(|e| format!("{}: {e}", path.display()))?,
            None => {
                return Err(format!(
                    "{}: empty file; expected word2vec text format (`VOCAB DIM`, then one word and its vector a line)",
                    path.display()
                )
                .into())
            }
        };
        let head: Vec<&str> = header.split_whitespace().collect();
        let (count, dim) = match head.as_slice() {
            [v, d] => match (v.parse::<usize>(), d.parse::<usize>()) {
                (Ok(v), Ok(d)) if d > 0 => (v, d),
                _ => return Err(bad(1, format!("header `{header}` is not `VOCAB DIM`")).into()),
            },
            _ => {
                return Err(bad(
                    1,
                    format!("header `{header}` is not `VOCAB DIM` (word2vec text format)"),
                )
                .into())
            }
        };
        let mut words = Vec::with_capacity(count);
        let mut data = Vec::with_capacity(count * dim);
        for (n, line) in lines.enumerate() {
            let line_no = n + 2;
            let line = line.map_err(|e| bad(line_no, e.to_string()))?;
            if line.trim().is_empty() {
                continue;
            }
            // gensim splits on single spaces, the word first, then the values.
            let mut parts = line.trim_end().split(' ');
            let word = parts.next().unwrap_or_default();
            let before = data.len();
            for p in parts {
                let v: f32 = p
                    .parse()
                    .map_err(|_| bad(line_no, format!("`{p}` is not a number")))?;
                data.push(v);
            }
            if data.len() - before != dim {
                return Err(bad(
                    line_no,
                    format!(
                        "`{word}` has {} values, the header says {dim}",
                        data.len() - before
                    ),
                )
                .into());
            }
            words.push(word.to_string());
        }
        if words.len() != count {
            return Err(format!(
                "{}: {} words, the header says {count}",
                path.display(),
                words.len()
            )
            .into());
        }
        let mut v = WordVectors::new(words, dim, data);
        v.source = path.to_path_buf();
        Ok(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_format_round_trips_exactly() {
        let v = WordVectors::new(
            vec!["king".into(), "queen".into()],
            3,
            vec![0.1, -2.5e-7, 3.0, 1.0 / 3.0, 0.0, -1.0],
        );
        let path = std::env::temp_dir().join(format!("kindling-w2v-{}.txt", std::process::id()));
        v.save_text(&path).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("2 3\nking 0.1 -0.00000025 3\n"), "{text}");
        let back = WordVectors::load_text(&path).unwrap();
        assert_eq!(back.words, v.words);
        assert_eq!(back.data, v.data);
        assert_eq!(back.index_of("queen"), Some(1));
        std::fs::remove_file(&path).ok();
    }

    #[test]
    fn a_malformed_file_is_an_error_naming_file_and_line() {
        let path =
            std::env::temp_dir().join(format!("kindling-w2v-bad-{}.txt", std::process::id()));
        std::fs::write(&path, "2 3\nking 1 2 3\nqueen 1 2\n").unwrap();
        let e = WordVectors::load_text(&path).unwrap_err().to_string();
        assert!(
            e.contains(&format!("{}:3", path.display())) && e.contains("`queen` has 2 values"),
            "{e}"
        );
        std::fs::write(&path, "hello\n").unwrap();
        let e = WordVectors::load_text(&path).unwrap_err().to_string();
        assert!(e.contains(":1: header `hello`"), "{e}");
        std::fs::remove_file(&path).ok();
    }
}
