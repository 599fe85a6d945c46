//! MNIST (LeCun, Bottou, Bengio, Haffner 1998): 28x28 handwritten digits,
//! 60,000 training and 10,000 test images, read from the four original
//! gzip'd IDX files checked into `data/mnist/`. Every file's SHA-256 is
//! pinned, so a corrupt or different copy is refused by name.

use crate::data_dir::default_data_dir;
use crate::sha256::verify_sha256;
use crate::{DigitSet, Result};
use std::path::{Path, PathBuf};

/// A data file and the SHA-256 of the exact bytes we expect.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PinnedFile {
    pub file_name: &'static str,
    pub sha256: &'static str,
}

// Digests of the canonical files (their well-known MD5s also match); see
// data/mnist/SOURCE.md in the shared data for provenance.
pub const TRAIN_IMAGES: PinnedFile = PinnedFile {
    file_name: "train-images-idx3-ubyte.gz",
    sha256: "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
};
pub const TRAIN_LABELS: PinnedFile = PinnedFile {
    file_name: "train-labels-idx1-ubyte.gz",
    sha256: "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
};
pub const TEST_IMAGES: PinnedFile = PinnedFile {
    file_name: "t10k-images-idx3-ubyte.gz",
    sha256: "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
};
pub const TEST_LABELS: PinnedFile = PinnedFile {
    file_name: "t10k-labels-idx1-ubyte.gz",
    sha256: "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
};
pub const FILES: [PinnedFile; 4] = [TRAIN_IMAGES, TRAIN_LABELS, TEST_IMAGES, TEST_LABELS];

/// The last 5,000 training images are held out for validation, the split
/// TensorFlow's MNIST tutorial popularised (55,000 / 5,000 / 10,000).
pub const VALIDATION_LEN: usize = 5_000;

#[derive(Clone, Debug)]
pub struct Mnist {
    /// The 60,000 images of the training file.
    pub train: DigitSet,
    /// The 10,000 images of the t10k file.
    pub test: DigitSet,
}

impl Mnist {
    /// `$KINDLING_DATA_DIR/mnist`, else the repository's `data/mnist`, else
    /// `./data/mnist`.
    pub fn default_dir() -> PathBuf {
        default_data_dir("mnist")
    }

    /// Verifies the SHA-256 of all four files in `dir`, then reads them.
    pub fn load(dir: &Path) -> Result<Mnist> {
        // A missing file says how to get MNIST, not only that it is absent
        // (a fresh KINDLING_DATA_DIR has no copy of the repository's).
        for file in FILES {
            let path = dir.join(file.file_name);
            if !path.exists() {
                return Err(crate::Error::DatasetMissing {
                    path,
                    hint: format!(
                        "MNIST is not in {}: run `kindling data fetch mnist`, or give `data` DIR",
                        dir.display()
                    ),
                });
            }
        }
        // All digests first: a bad file is reported before seconds are spent
        // decompressing the others.
        for file in FILES {
            verify_sha256(&dir.join(file.file_name), file.sha256)?;
        }
        let read = |images: PinnedFile, labels: PinnedFile| {
            DigitSet::read_idx(&dir.join(images.file_name), &dir.join(labels.file_name))
        };
        Ok(Mnist {
            train: read(TRAIN_IMAGES, TRAIN_LABELS)?,
            test: read(TEST_IMAGES, TEST_LABELS)?,
        })
    }

    /// The classic split: (train = the first 55,000 training images,
    /// validation = the last 5,000, test = the 10,000 test images).
    pub fn split(&self) -> (DigitSet, DigitSet, DigitSet) {
        let n = self.train.len();
        // The digests pin the training file at 60,000 images.
        let head = n.saturating_sub(VALIDATION_LEN);
        let in_range = "0 <= head <= n by construction";
        let train = self.train.slice(0..head).expect(in_range);
        let validation = self.train.slice(head..n).expect(in_range);
        (train, validation, self.test.clone())
    }
}
