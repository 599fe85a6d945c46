//! Datasets for Kindling: a reader for IDX files (the format of MNIST,
//! Fashion-MNIST and our USPS copy), SHA-256 verification of data files,
//! MNIST from the repository's `data/mnist` with the classic
//! 55,000 / 5,000 / 10,000 split, USPS and its conversion to MNIST's 28x28
//! layout, a registry of named datasets with pinned digests that
//! `kindling data fetch` fills in, a seeded mini-batch loader that yields
//! tensors, and byte-level BPE tokenizers ([`tokenizer`]) loaded from every
//! form they are shared in (tokenizer.json, GPT-2 files, tiktoken ranks, GGUF).
//!
//! ```no_run
//! use kindling_data::{Batches, Mnist, Normalize, Order};
//! let mnist = Mnist::load(&Mnist::default_dir())?;
//! let (train, _validation, _test) = mnist.split();
//! let order = Order::Shuffled { seed: 0, epoch: 0 };
//! for (images, labels) in Batches::new(&train, 64, order, false, Normalize::MNIST)? {
//!     assert_eq!(images.shape()[1..], [1, 28, 28]);
//!     # let _ = labels;
//! }
//! # Ok::<(), kindling_data::Error>(())
//! ```

pub mod char_tokenizer;
pub mod char_vocab;
pub mod classical_modern;
pub mod data_dir;
pub mod digit_image;
pub mod digit_set;
mod error;
pub mod idx;
pub mod loader;
pub mod mnist;
pub mod registry;
pub mod sha256;
pub mod token_data;
pub mod tokenizer;
pub mod usps;

#[cfg(test)]
mod scratch_dir;

pub use data_dir::{default_data_dir, default_data_root};
pub use digit_image::{load_digit, preprocess_grey, DigitImage, DigitImageError};
pub use digit_set::DigitSet;
pub use error::{Error, Result};
pub use idx::{IdxImages, IdxLabels};
pub use loader::{Batches, Normalize, Order};
pub use mnist::Mnist;
pub use sha256::{sha256_hex, verify_sha256};
pub use token_data::{get_batch, TokenData};
pub use tokenizer::{train_bpe, Tokenizer};
pub use usps::Usps;
