//! One error type for the tensor crate. Every message names the op, shape or
//! dtype that is wrong so the CLI can print it on one line.

use crate::DType;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{op}: shape mismatch: {msg}")]
    Shape { op: &'static str, msg: String },
    #[error("{op}: expected dtype {expected}, got {got}")]
    DType {
        op: &'static str,
        expected: DType,
        got: DType,
    },
    #[error("{op}: dimension {dim} is out of range for a tensor of rank {rank}")]
    Dim {
        op: &'static str,
        dim: isize,
        rank: usize,
    },
    #[error("{op}: index {index} is out of range for size {size}")]
    Index {
        op: &'static str,
        index: i64,
        size: usize,
    },
    #[error("backward: {0}")]
    Autograd(String),
    #[error("{0}")]
    Msg(String),
    #[error("safetensors: {0}")]
    SafeTensors(String),
    #[error("{path} is not a safetensors file ({why})")]
    NotSafeTensors { path: String, why: String },
    #[error("{path} is truncated: {len} bytes where its header promises {needed}")]
    Truncated { path: String, len: u64, needed: u64 },
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub fn shape(op: &'static str, msg: impl Into<String>) -> Self {
        Error::Shape {
            op,
            msg: msg.into(),
        }
    }
    pub fn msg(msg: impl Into<String>) -> Self {
        Error::Msg(msg.into())
    }
}
