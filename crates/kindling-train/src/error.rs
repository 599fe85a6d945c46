//! One error type for the training crate. Messages name the option (by its
//! field name, as stored in a run's config.json), the file or the tensor
//! that is wrong; the CLI turns an option's field into its flag.

use std::path::PathBuf;

pub type Result<T> = std::result::Result<T, Error>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An option that cannot take the value it was given: `field` is the
    /// options struct's field (`n_layer`), `problem` says why ("must be at
    /// least 1"). Printed as "n_layer must be at least 1".
    #[error("{field} {problem}")]
    Option {
        field: &'static str,
        problem: String,
    },

    #[error("{}: {source}", .path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },

    #[error(transparent)]
    Tensor(#[from] kindling_tensor::Error),

    #[error(transparent)]
    Data(#[from] kindling_data::Error),

    #[error(transparent)]
    Registry(#[from] kindling_data::registry::RegistryError),

    #[error(transparent)]
    Json(#[from] serde_json::Error),

    /// Anything else, already worded to name what is wrong (a run
    /// directory, a checkpoint, a corpus).
    #[error("{0}")]
    Msg(String),
}

impl Error {
    pub fn option(field: &'static str, problem: impl Into<String>) -> Self {
        Error::Option {
            field,
            problem: problem.into(),
        }
    }
}

/// An [`Error::Option`] for the first of `fields` (option name, value)
/// that is 0: every size and count an options struct checks this way.
pub fn at_least_one(fields: &[(&'static str, usize)]) -> Result<()> {
    match fields.iter().find(|(_, v)| *v == 0) {
        Some((name, _)) => Err(Error::option(name, "must be at least 1")),
        None => Ok(()),
    }
}

impl From<String> for Error {
    fn from(s: String) -> Self {
        Error::Msg(s)
    }
}

impl From<&str> for Error {
    fn from(s: &str) -> Self {
        Error::Msg(s.to_string())
    }
}
