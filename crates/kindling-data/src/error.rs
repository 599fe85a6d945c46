//! One error type for the data crate. Every variant names the file (or the
//! argument) that is wrong, so the CLI can print it on one line and the user
//! knows which file to fix or re-copy.

use std::path::PathBuf;

pub type Result<T> = std::result::Result<T, Error>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{}: {source}", .path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },

    #[error(
        "{}: the name ends in .gz but the file is not gzip (first bytes {found}, gzip starts with 1f 8b)",
        .path.display()
    )]
    NotGzip { path: PathBuf, found: String },

    #[error("{}: gzip stream is corrupt or cut short: {source}", .path.display())]
    Gzip {
        path: PathBuf,
        source: std::io::Error,
    },

    #[error(
        "{}: wrong IDX magic number {found} ({found:#010x}, {}), expected {expected} ({expected:#010x}, {})",
        .path.display(), crate::idx::magic_meaning(*.found), crate::idx::magic_meaning(*.expected)
    )]
    WrongMagic {
        path: PathBuf,
        found: u32,
        expected: u32,
    },

    #[error(
        "{}: truncated: the IDX header describes {expected_bytes} bytes, found {found_bytes}",
        .path.display()
    )]
    Truncated {
        path: PathBuf,
        expected_bytes: u128,
        found_bytes: usize,
    },

    #[error(
        "{}: {trailing_bytes} trailing bytes after the {expected_bytes} bytes the IDX header describes",
        .path.display()
    )]
    TrailingBytes {
        path: PathBuf,
        expected_bytes: usize,
        trailing_bytes: usize,
    },

    #[error(
        "{} has {images} images but {} has {labels} labels",
        .images_path.display(), .labels_path.display()
    )]
    CountMismatch {
        images_path: PathBuf,
        images: usize,
        labels_path: PathBuf,
        labels: usize,
    },

    #[error(
        "{}: sha256 mismatch: expected {expected}, actual {actual} (file corrupt or not the pinned version)",
        .path.display()
    )]
    Sha256Mismatch {
        path: PathBuf,
        expected: String,
        actual: String,
    },

    /// A digit set built in memory whose buffers disagree with its shape.
    #[error("digit set: {0}")]
    Shape(String),

    /// `origin` is the labels file, or "digit set" for labels built in memory.
    #[error("{origin}: label {label} at index {index} is not a digit 0..=9")]
    NotADigit {
        origin: String,
        index: usize,
        label: u8,
    },

    #[error("digit set: index {index} is out of range for {len} examples")]
    Index { index: usize, len: usize },

    #[error("batch_size must be at least 1, got {0}")]
    BatchSize(usize),

    /// A dataset file that is not there, with how to get it.
    #[error("{}: no such file; {hint}", .path.display())]
    DatasetMissing { path: PathBuf, hint: String },

    /// A tokenizer file (or folder) of the wrong kind or with bad contents.
    #[error("{}: {problem}", .path.display())]
    TokenizerFile { path: PathBuf, problem: String },

    /// A `--tokenizer` argument that names nothing loadable.
    #[error("tokenizer `{spec}`: {problem}")]
    TokenizerSpec { spec: String, problem: String },

    /// Encoding, decoding or training failed inside the tokenizer engine.
    #[error("tokenizer: {0}")]
    Tokenizer(String),

    /// A training corpus (`--data NAME`) that cannot be tokenized.
    #[error("`data` {name}: {problem}")]
    Corpus { name: String, problem: String },

    /// A token split too short to draw one window of `block + 1` tokens.
    #[error("the split has {tokens} tokens, too few for `block_size` {block}")]
    TooFewTokens { tokens: usize, block: usize },
}
