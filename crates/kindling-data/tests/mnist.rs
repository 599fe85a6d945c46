//! The MNIST checked into the repository loads with the published counts and
//! shapes, and a damaged copy is refused with an error naming the file.

use kindling_data::mnist::{FILES, TEST_LABELS, TRAIN_IMAGES};
use kindling_data::{Batches, Error, Mnist, Normalize, Order};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

fn repo_mnist_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/mnist")
}

/// Loaded once per test binary: decompressing 55 MB per test would dominate.
fn mnist() -> &'static Mnist {
    static MNIST: OnceLock<Mnist> = OnceLock::new();
    MNIST.get_or_init(|| Mnist::load(&repo_mnist_dir()).expect("the repo ships data/mnist"))
}

/// A copy of the four MNIST files in a fresh temp dir, removed on drop.
struct MnistCopy(PathBuf);

impl MnistCopy {
    fn new(name: &str) -> MnistCopy {
        let dir =
            std::env::temp_dir().join(format!("kindling-data-it-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        for file in FILES {
            std::fs::copy(
                repo_mnist_dir().join(file.file_name),
                dir.join(file.file_name),
            )
            .unwrap();
        }
        MnistCopy(dir)
    }
}

impl Drop for MnistCopy {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn loads_60000_train_and_10000_test_images_of_28x28() {
    let mnist = mnist();
    assert_eq!(mnist.train.len(), 60_000);
    assert_eq!(mnist.test.len(), 10_000);
    for set in [&mnist.train, &mnist.test] {
        assert_eq!((set.rows(), set.cols()), (28, 28));
        assert_eq!(set.images().len(), set.len() * 28 * 28);
        assert!(set.labels().iter().all(|&l| l <= 9));
    }
}

#[test]
fn label_counts_match_the_published_ones() {
    let count = |labels: &[u8]| {
        let mut counts = [0usize; 10];
        for &l in labels {
            counts[l as usize] += 1;
        }
        counts
    };
    // From data/mnist/SOURCE.md in the shared data.
    assert_eq!(
        count(mnist().train.labels()),
        [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    );
    assert_eq!(
        count(mnist().test.labels()),
        [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    );
}

#[test]
fn classic_split_is_55000_5000_10000_in_file_order() {
    let mnist = mnist();
    let (train, validation, test) = mnist.split();
    assert_eq!(
        (train.len(), validation.len(), test.len()),
        (55_000, 5_000, 10_000)
    );
    assert_eq!(train.image(0), mnist.train.image(0));
    assert_eq!(train.image(54_999), mnist.train.image(54_999));
    assert_eq!(validation.image(0), mnist.train.image(55_000));
    assert_eq!(validation.label(4_999), mnist.train.label(59_999));
    assert_eq!(test, mnist.test);
}

#[test]
fn first_training_digit_is_the_well_known_five() {
    let mnist = mnist();
    assert_eq!(mnist.train.label(0), 5);
    assert_eq!(mnist.test.label(0), 7);
    // Ink is in the middle of the frame, not at its border.
    let img = mnist.train.image(0);
    assert!(img[14 * 28 + 14] > 0 || img[12 * 28 + 14] > 0);
    assert_eq!(img[0], 0);
}

#[test]
fn one_epoch_of_batches_covers_the_test_set() {
    let test = &mnist().test;
    let order = Order::Shuffled { seed: 1, epoch: 0 };
    let batches = Batches::new(test, 1000, order, false, Normalize::MNIST).unwrap();
    assert_eq!(batches.len(), 10);
    let mut seen = 0;
    for (images, labels) in batches {
        assert_eq!(images.shape(), &[1000, 1, 28, 28]);
        assert_eq!(labels.shape(), &[1000]);
        seen += labels.shape()[0];
    }
    assert_eq!(seen, 10_000);
}

#[test]
fn byte_flipped_copy_fails_sha256_naming_the_file() {
    let copy = MnistCopy::new("flipped");
    let bad = copy.0.join(TEST_LABELS.file_name);
    let mut bytes = std::fs::read(&bad).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&bad, &bytes).unwrap();

    let err = Mnist::load(&copy.0).unwrap_err();
    assert!(matches!(err, Error::Sha256Mismatch { .. }), "{err}");
    let msg = err.to_string();
    assert!(msg.starts_with(&bad.display().to_string()), "{msg}");
    assert!(
        msg.contains(TEST_LABELS.sha256),
        "names the expected digest: {msg}"
    );
}

#[test]
fn truncated_copy_fails_sha256_naming_the_file() {
    let copy = MnistCopy::new("truncated");
    let bad = copy.0.join(TRAIN_IMAGES.file_name);
    let bytes = std::fs::read(&bad).unwrap();
    std::fs::write(&bad, &bytes[..bytes.len() - 1000]).unwrap();

    let err = Mnist::load(&copy.0).unwrap_err();
    assert!(matches!(err, Error::Sha256Mismatch { .. }), "{err}");
    assert!(
        err.to_string().starts_with(&bad.display().to_string()),
        "{err}"
    );
}

#[test]
fn missing_file_is_an_error_naming_it() {
    let copy = MnistCopy::new("missing");
    let gone = copy.0.join(TEST_LABELS.file_name);
    std::fs::remove_file(&gone).unwrap();
    let err = Mnist::load(&copy.0).unwrap_err();
    assert!(
        err.to_string().starts_with(&gone.display().to_string()),
        "{err}"
    );
}
