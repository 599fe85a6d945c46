//! Byte-level BPE tokenizers, the kind GPT-2, GPT-4, Qwen and SmolLM use,
//! loaded from every form they are shared in and trained from text.
//!
//! The engine is Hugging Face's `tokenizers` crate; this module reads the
//! forms people pass around and turns each into one of its `Tokenizer`s:
//!
//! | form | reader |
//! | --- | --- |
//! | `tokenizer.json` (+ `tokenizer_config.json` beside it) | the library's own format |
//! | GPT-2 folder: `vocab.json`/`encoder.json` + `merges.txt`/`vocab.bpe` | [`gpt2_files`] |
//! | tiktoken `.tiktoken` rank file (`r50k_base`, `cl100k_base`, `o200k_base`) | [`tiktoken`] |
//! | GGUF metadata `tokenizer.ggml.*` | [`gguf`] |
//!
//! Byte-level BPE never meets an unknown character: text is UTF-8 bytes, and
//! each of the 256 bytes is written as one printable character (GPT-2's
//! `bytes_to_unicode`, so a space is `Ġ`), then merged by rank.
//!
//! ```no_run
//! use kindling_data::tokenizer::Tokenizer;
//! let tok = Tokenizer::from_spec("cl100k_base")?;
//! let ids = tok.encode("9.11 vs 9.3")?;
//! assert_eq!(tok.decode(&ids)?, "9.11 vs 9.3");
//! # Ok::<(), kindling_data::Error>(())
//! ```

pub mod byte_level;
pub mod gguf;
pub mod gpt2_files;
pub mod tiktoken;
pub mod train;

use crate::{Error, Result};
use std::path::{Path, PathBuf};

pub use train::train_bpe;

/// A tokenizer: the library's engine plus what a model and a chat need
/// around it (BOS/EOS ids, the chat template, where it came from).
pub struct Tokenizer {
    inner: tokenizers::Tokenizer,
    /// Where it was loaded from, for messages (`<data>/tiktoken/cl100k_base.tiktoken`).
    source: String,
    bos_token_id: Option<u32>,
    eos_token_id: Option<u32>,
    chat_template: Option<String>,
    /// One more than the largest id (the rows an embedding table needs).
    vocab_size: usize,
}

/// The wrapped library's error, with what we were doing.
pub(crate) fn engine_error(what: &str, e: tokenizers::Error) -> Error {
    Error::Tokenizer(format!("{what}: {e}"))
}

/// A problem with one tokenizer file: names the file and what is wrong.
pub(crate) fn bad_file(path: &Path, problem: impl Into<String>) -> Error {
    Error::TokenizerFile {
        path: path.to_path_buf(),
        problem: problem.into(),
    }
}

pub(crate) fn read_file(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })
}

impl Tokenizer {
    /// Wraps an engine tokenizer; the special ids and template are set by the
    /// loaders that know them.
    pub(crate) fn new(inner: tokenizers::Tokenizer, source: String) -> Tokenizer {
        let vocab_size = inner
            .get_vocab(true)
            .values()
            .max()
            .map_or(0, |&max| max as usize + 1);
        Tokenizer {
            inner,
            source,
            bos_token_id: None,
            eos_token_id: None,
            chat_template: None,
            vocab_size,
        }
    }

    pub(crate) fn with_specials(mut self, bos: Option<u32>, eos: Option<u32>) -> Tokenizer {
        self.bos_token_id = bos;
        self.eos_token_id = eos;
        self
    }

    pub(crate) fn with_chat_template(mut self, template: Option<String>) -> Tokenizer {
        self.chat_template = template;
        self
    }

    /// Any form a tokenizer is shared in:
    /// - a file: `tokenizer.json`, a `.tiktoken` rank file (its stem names the
    ///   pattern: `r50k_base`, `cl100k_base`, `o200k_base`), a `.gguf`;
    /// - a directory holding `tokenizer.json` (a Kindling or Hugging Face
    ///   model directory), or `vocab.json`|`encoder.json` + `merges.txt`|`vocab.bpe`,
    ///   or one `.gguf`;
    /// - a name: `r50k_base`, `cl100k_base`, `o200k_base`, `gpt2`, `qwen3`,
    ///   found in the fetched `tokenizers` dataset (`kindling data fetch tokenizers`).
    ///
    /// The kind of a file is decided by its first bytes where they say it
    /// (GGUF magic, JSON, safetensors), so a wrong file gets a one-line error
    /// naming it and what it is instead.
    pub fn from_spec(spec: &str) -> Result<Tokenizer> {
        let path = Path::new(spec);
        if path.is_dir() {
            return Self::from_dir(path);
        }
        if path.is_file() {
            return Self::from_file(path);
        }
        if let Some(path) = named_tokenizer_path(spec)? {
            return if path.is_dir() {
                Self::from_dir(&path)
            } else {
                Self::from_file(&path)
            };
        }
        Err(Error::TokenizerSpec {
            spec: spec.to_string(),
            problem: format!(
                "no such file or directory, and not a known tokenizer name ({})",
                NAMED.map(|(name, _)| name).join(", ")
            ),
        })
    }

    /// A tokenizer from one file, by its first bytes and then its name.
    pub fn from_file(path: &Path) -> Result<Tokenizer> {
        let head = file_head(path)?;
        if head.starts_with(b"GGUF") {
            let file = kindling_tensor::gguf::GgufFile::open(path).map_err(|e| {
                // The reader's message already starts with the path.
                let m = e.to_string();
                let m = m
                    .strip_prefix(&format!("{}: ", path.display()))
                    .unwrap_or(&m)
                    .to_string();
                bad_file(path, format!("cannot read GGUF: {m}"))
            })?;
            return Self::from_gguf(&file);
        }
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name.ends_with(".tiktoken") {
            return tiktoken::load(path);
        }
        if name.ends_with(".gguf") {
            return Err(bad_file(
                path,
                format!(
                    "not a GGUF file (it starts with {}, GGUF files start with `GGUF`)",
                    hex_bytes(&head)
                ),
            ));
        }
        if name == "vocab.json" || name == "encoder.json" {
            let dir = path.parent().unwrap_or(Path::new("."));
            return gpt2_files::load_dir(dir);
        }
        if name == "merges.txt" || name == "vocab.bpe" {
            let dir = path.parent().unwrap_or(Path::new("."));
            return gpt2_files::load_dir(dir);
        }
        Self::from_tokenizer_json(path)
    }

    /// A directory: `tokenizer.json`, else a GPT-2 folder, else its one `.gguf`.
    pub fn from_dir(dir: &Path) -> Result<Tokenizer> {
        let json = dir.join("tokenizer.json");
        if json.is_file() {
            return Self::from_tokenizer_json(&json);
        }
        if gpt2_files::vocab_path(dir).is_some() {
            return gpt2_files::load_dir(dir);
        }
        let ggufs = files_with_extension(dir, "gguf")?;
        if let [one] = ggufs.as_slice() {
            return Self::from_file(one);
        }
        let tiktokens = files_with_extension(dir, "tiktoken")?;
        if let [one] = tiktokens.as_slice() {
            return Self::from_file(one);
        }
        Err(bad_file(
            dir,
            if ggufs.len() > 1 || tiktokens.len() > 1 {
                "several .gguf or .tiktoken files; name the one to use".to_string()
            } else {
                "no tokenizer here: looked for tokenizer.json, vocab.json|encoder.json + \
                 merges.txt|vocab.bpe, one .gguf or one .tiktoken"
                    .to_string()
            },
        ))
    }

    /// A Hugging Face `tokenizer.json`, with the chat template and BOS/EOS
    /// from a `tokenizer_config.json` beside it when there is one.
    pub fn from_tokenizer_json(path: &Path) -> Result<Tokenizer> {
        let bytes = read_file(path)?;
        if let Some(kind) = sniff_not_json(&bytes) {
            return Err(bad_file(
                path,
                format!("not a tokenizer.json: the file is {kind}"),
            ));
        }
        let value: serde_json::Value = serde_json::from_slice(&bytes)
            .map_err(|e| bad_file(path, format!("not a tokenizer.json: invalid JSON ({e})")))?;
        let Some(object) = value.as_object() else {
            return Err(bad_file(
                path,
                "not a tokenizer.json: the JSON is not an object",
            ));
        };
        if !object.contains_key("model") {
            let hint = if object.values().all(|v| v.is_u64()) && !object.is_empty() {
                " (it looks like a GPT-2 vocab.json; pass its folder with merges.txt)"
            } else {
                ""
            };
            return Err(bad_file(
                path,
                format!("not a tokenizer.json: no `model` field{hint}"),
            ));
        }
        let inner = tokenizers::Tokenizer::from_bytes(&bytes)
            .map_err(|e| bad_file(path, format!("not a valid tokenizer.json: {e}")))?;
        let mut tok = Tokenizer::new(inner, path.display().to_string());
        let config_path = path.with_file_name("tokenizer_config.json");
        if config_path.is_file() {
            tok = tok.with_config(&config_path)?;
        }
        Ok(tok)
    }

    /// BOS/EOS and the chat template from a `tokenizer_config.json`.
    fn with_config(mut self, path: &Path) -> Result<Tokenizer> {
        let bytes = read_file(path)?;
        let config: serde_json::Value = serde_json::from_slice(&bytes)
            .map_err(|e| bad_file(path, format!("invalid JSON ({e})")))?;
        // A token is written as a string or as {"content": "...", ...}.
        let token_id = |key: &str| {
            let v = config.get(key)?;
            let text = v
                .as_str()
                .or_else(|| v.get("content").and_then(|c| c.as_str()))?;
            self.inner.token_to_id(text)
        };
        let bos = token_id("bos_token");
        let eos = token_id("eos_token");
        // A template is a string, or a list of {name, template} (use "default").
        let template = match config.get("chat_template") {
            Some(serde_json::Value::String(s)) => Some(s.clone()),
            Some(serde_json::Value::Array(list)) => list
                .iter()
                .find(|t| t.get("name").and_then(|n| n.as_str()) == Some("default"))
                .or_else(|| list.first())
                .and_then(|t| t.get("template"))
                .and_then(|t| t.as_str())
                .map(str::to_string),
            _ => None,
        };
        self.bos_token_id = bos.or(self.bos_token_id);
        self.eos_token_id = eos.or(self.eos_token_id);
        if template.is_some() {
            self.chat_template = template;
        }
        Ok(self)
    }

    /// The tokenizer a GGUF model file carries in its `tokenizer.ggml.*` metadata.
    pub fn from_gguf(file: &kindling_tensor::gguf::GgufFile) -> Result<Tokenizer> {
        gguf::load(file)
    }

    /// The ids of `text`. Special tokens written in the text (`<|im_start|>`,
    /// `<|endoftext|>`) become their ids, as Hugging Face does and as
    /// tiktoken does with `allowed_special="all"`; no BOS/EOS is added.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        let encoding = self
            .inner
            .encode_fast(text, false)
            .map_err(|e| engine_error("encode", e))?;
        Ok(encoding.get_ids().to_vec())
    }

    /// The text of `ids`, special tokens included.
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        if let Some(&bad) = ids.iter().find(|&&id| id as usize >= self.vocab_size) {
            return Err(Error::Tokenizer(format!(
                "decode: id {bad} is out of range (vocabulary of {})",
                self.vocab_size
            )));
        }
        self.inner
            .decode(ids, false)
            .map_err(|e| engine_error("decode", e))
    }

    /// The bytes token `id` stands for: byte-level tokens mapped back to
    /// bytes (they may be part of a UTF-8 character), other tokens as their text.
    pub fn piece_bytes(&self, id: u32) -> Option<Vec<u8>> {
        let token = self.inner.id_to_token(id)?;
        let special = self
            .inner
            .get_added_vocabulary()
            .simple_id_to_token(id)
            .is_some();
        if special {
            return Some(token.into_bytes());
        }
        Some(byte_level::token_bytes(&token).unwrap_or_else(|| token.into_bytes()))
    }

    /// Token `id` as readable text (a part of a UTF-8 character shows as U+FFFD).
    pub fn piece(&self, id: u32) -> Option<String> {
        self.piece_bytes(id)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
    }

    /// The id of `token` as the vocabulary spells it (`Ġthe`, `<|endoftext|>`).
    pub fn token_to_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    /// The token `id` as the vocabulary spells it (`Ġthe`).
    pub fn id_to_token(&self, id: u32) -> Option<String> {
        self.inner.id_to_token(id)
    }

    /// One more than the largest id, special tokens included: the rows an
    /// embedding table needs. (tiktoken vocabularies have gaps, so this can be
    /// more than the number of tokens.)
    pub fn vocab_size(&self) -> usize {
        self.vocab_size
    }

    pub fn bos_token_id(&self) -> Option<u32> {
        self.bos_token_id
    }

    pub fn eos_token_id(&self) -> Option<u32> {
        self.eos_token_id
    }

    /// The Jinja chat template, from GGUF `tokenizer.chat_template` or the
    /// `tokenizer_config.json` beside a `tokenizer.json`.
    pub fn chat_template(&self) -> Option<&str> {
        self.chat_template.as_deref()
    }

    /// Where the tokenizer was loaded from.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The special tokens (`<|endoftext|>`, `<|im_start|>` ...) and their ids, by id.
    pub fn special_tokens(&self) -> Vec<(u32, String)> {
        let mut specials: Vec<(u32, String)> = self
            .inner
            .get_added_tokens_decoder()
            .into_iter()
            .filter(|(_, t)| t.special)
            .map(|(id, t)| (id, t.content))
            .collect();
        specials.sort();
        specials
    }

    /// The engine underneath, for what this wrapper does not expose.
    pub fn engine(&self) -> &tokenizers::Tokenizer {
        &self.inner
    }

    /// Writes `dir/tokenizer.json` and, when BOS, EOS or a chat template is
    /// known, `dir/tokenizer_config.json` (the two files Hugging Face's
    /// `AutoTokenizer` reads). Creates `dir` if needed.
    ///
    /// tiktoken vocabularies have unused ids (cl100k: 100256, 100261..=100275);
    /// the `tokenizers` crate saves them faithfully but prints a warning about
    /// the "holes" to stdout, which a `--json` command must keep in mind.
    pub fn save(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir).map_err(|source| Error::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        let json = dir.join("tokenizer.json");
        self.inner
            .save(&json, true)
            .map_err(|e| bad_file(&json, format!("cannot write: {e}")))?;
        let token = |id: Option<u32>| id.and_then(|id| self.inner.id_to_token(id));
        let (bos, eos) = (token(self.bos_token_id), token(self.eos_token_id));
        if bos.is_some() || eos.is_some() || self.chat_template.is_some() {
            let mut config = serde_json::Map::new();
            config.insert("tokenizer_class".into(), "PreTrainedTokenizerFast".into());
            if let Some(bos) = bos {
                config.insert("bos_token".into(), bos.into());
            }
            if let Some(eos) = eos {
                config.insert("eos_token".into(), eos.into());
            }
            if let Some(t) = &self.chat_template {
                config.insert("chat_template".into(), t.clone().into());
            }
            let path = dir.join("tokenizer_config.json");
            let text = serde_json::to_string_pretty(&serde_json::Value::Object(config))
                .expect("a map of strings serializes");
            std::fs::write(&path, text + "\n").map_err(|source| Error::Io { path, source })?;
        }
        Ok(())
    }
}

impl std::fmt::Debug for Tokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokenizer")
            .field("source", &self.source)
            .field("vocab_size", &self.vocab_size)
            .field("bos_token_id", &self.bos_token_id)
            .field("eos_token_id", &self.eos_token_id)
            .finish_non_exhaustive()
    }
}

/// Names `from_spec` knows, and where each lives in the `tokenizers` dataset.
pub const NAMED: [(&str, &str); 5] = [
    ("r50k_base", "tiktoken/r50k_base.tiktoken"),
    ("cl100k_base", "tiktoken/cl100k_base.tiktoken"),
    ("o200k_base", "tiktoken/o200k_base.tiktoken"),
    ("gpt2", "gpt2"),
    ("qwen3", "qwen3/tokenizer.json"),
];

/// The path of a named tokenizer in the fetched `tokenizers` dataset, or
/// `None` if `spec` is not a known name. Only the named tokenizer's own files
/// need to be there, with their pinned SHA-256.
fn named_tokenizer_path(spec: &str) -> Result<Option<PathBuf>> {
    use crate::registry::{self, FileState};
    let Some((_, rel)) = NAMED.iter().find(|(name, _)| *name == spec) else {
        return Ok(None);
    };
    let dataset = &registry::TOKENIZERS;
    let dir = crate::default_data_root().join(dataset.name);
    let not_ready = |problem: String| Error::TokenizerSpec {
        spec: spec.to_string(),
        problem: format!(
            "{problem}; run `kindling data fetch tokenizers --from DIR` (DIR holding tokenizers/), \
             or give the path of a tokenizer file or folder"
        ),
    };
    for file in dataset
        .files
        .iter()
        .filter(|f| f.file_name == *rel || f.file_name.starts_with(&format!("{rel}/")))
    {
        let path = dir.join(file.file_name);
        match registry::check_file(&path, file).map_err(|e| not_ready(e.to_string()))? {
            FileState::Verified => {}
            FileState::Missing => return Err(not_ready(format!("{} is missing", path.display()))),
            FileState::Corrupt { .. } => {
                return Err(not_ready(format!(
                    "{} is not the pinned file (sha256 differs)",
                    path.display()
                )))
            }
        }
    }
    Ok(Some(dir.join(rel)))
}

fn file_head(path: &Path) -> Result<Vec<u8>> {
    use std::io::Read;
    let io = |source| Error::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut head = Vec::with_capacity(16);
    std::fs::File::open(path)
        .map_err(io)?
        .take(16)
        .read_to_end(&mut head)
        .map_err(io)?;
    Ok(head)
}

fn hex_bytes(bytes: &[u8]) -> String {
    let shown: Vec<String> = bytes.iter().take(8).map(|b| format!("{b:02x}")).collect();
    if shown.is_empty() {
        "nothing (empty file)".to_string()
    } else {
        format!("bytes {}", shown.join(" "))
    }
}

/// What a file that should be JSON is instead, when its first bytes say so.
fn sniff_not_json(bytes: &[u8]) -> Option<String> {
    if bytes.is_empty() {
        return Some("empty".to_string());
    }
    if bytes.starts_with(b"GGUF") {
        return Some("a GGUF model file (pass it as a .gguf)".to_string());
    }
    // safetensors: an 8-byte little-endian header length, then a JSON header.
    if bytes.len() > 9 && bytes[8] == b'{' {
        let n = u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes"));
        if n > 1 && n < bytes.len() as u64 {
            return Some("safetensors (model weights), not a tokenizer".to_string());
        }
    }
    if bytes.starts_with(&[0x1f, 0x8b]) {
        return Some("gzip-compressed".to_string());
    }
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace())?;
    if *first != b'{' {
        return Some(format!(
            "not JSON (it starts with {})",
            hex_bytes(&bytes[..bytes.len().min(8)])
        ));
    }
    None
}

fn files_with_extension(dir: &Path, ext: &str) -> Result<Vec<PathBuf>> {
    let entries = std::fs::read_dir(dir).map_err(|source| Error::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let mut found: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && p.extension().and_then(|e| e.to_str()) == Some(ext))
        .collect();
    found.sort();
    Ok(found)
}
