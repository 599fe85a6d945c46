//! USPS handwritten digits (Le Cun et al. 1990; Hull 1994): ZIP codes scanned
//! from envelopes, deslanted and size-normalised to 16x16, 7,291 training
//! and 2,007 test images (the split of The Elements of Statistical
//! Learning). Other writers and other preprocessing than MNIST, which makes it
//! the "different handwriting" set for testing and fine-tuning a digit model
//! trained on MNIST.
//!
//! The files are the IDX copy in the shared data (`kindling data fetch usps
//! --from DIR`): pixel byte = round(255 h) with h = (v + 1) / 2 of the ESL
//! values v in [-1, 1], so 0 = background and 255 = ink, MNIST's polarity.
//! [`to_mnist_layout`] brings the digits into MNIST's 28x28 frame.

use crate::data_dir::default_data_dir;
use crate::digit_image::{preprocess_grey, DigitImageError};
use crate::registry;
use crate::sha256::verify_sha256;
use crate::{DigitSet, Result};
use std::path::{Path, PathBuf};

pub const TRAIN_LEN: usize = 7_291;
pub const TEST_LEN: usize = 2_007;
/// USPS images are `SIDE` x `SIDE`.
pub const SIDE: usize = 16;
/// MNIST images are `MNIST_SIDE` x `MNIST_SIDE`.
pub const MNIST_SIDE: usize = 28;

/// Background added around each image before [`preprocess_grey`]: USPS
/// digits touch the 16x16 edge, and the border guarantees that the frame it
/// judges polarity and background level from is pure background.
const BORDER: usize = 2;

#[derive(Clone, Debug)]
pub struct Usps {
    /// 7,291 images, 16x16.
    pub train: DigitSet,
    /// 2,007 images, 16x16.
    pub test: DigitSet,
}

impl Usps {
    /// `<data root>/usps`; [`registry::dataset_dir`]`("usps")` also checks
    /// that it was fetched and says how to if not.
    pub fn default_dir() -> PathBuf {
        default_data_dir(registry::USPS.name)
    }

    /// Verifies the SHA-256 of the four IDX files in `dir` against the
    /// registry's pins, then reads them.
    pub fn load(dir: &Path) -> Result<Usps> {
        for file in registry::USPS.files {
            verify_sha256(&dir.join(file.file_name), file.sha256)?;
        }
        let read =
            |images: &str, labels: &str| DigitSet::read_idx(&dir.join(images), &dir.join(labels));
        Ok(Usps {
            train: read("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz")?,
            test: read("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")?,
        })
    }
}

/// The digits of `set` in MNIST's layout, made the way MNIST was made (see
/// [`crate::digit_image`]): ink cropped to its bounding box, the longer side
/// scaled to 20 px (bilinear when enlarging, area averaging when shrinking),
/// contrast stretched to full ink, placed in a 28x28 frame with the centre
/// of mass at (14, 14). `set` must have MNIST's polarity (0 = background),
/// as USPS does. An image with no ink stays an all-background image.
pub fn to_mnist_layout(set: &DigitSet) -> DigitSet {
    let (rows, cols) = (set.rows(), set.cols());
    let (padded_rows, padded_cols) = (rows + 2 * BORDER, cols + 2 * BORDER);
    let mut padded = vec![0.0f32; padded_rows * padded_cols];
    let mut images = Vec::with_capacity(set.len() * MNIST_SIDE * MNIST_SIDE);
    for i in 0..set.len() {
        for (y, row) in set.image(i).chunks_exact(cols).enumerate() {
            let start = (y + BORDER) * padded_cols + BORDER;
            for (dst, &v) in padded[start..start + cols].iter_mut().zip(row) {
                *dst = v as f32 / 255.0;
            }
        }
        match preprocess_grey(&padded, padded_cols, padded_rows) {
            Ok(digit) => images.extend(digit.pixels.iter().map(|&v| (v * 255.0).round() as u8)),
            Err(DigitImageError::NoDigit { .. }) => {
                images.resize(images.len() + MNIST_SIDE * MNIST_SIDE, 0)
            }
            Err(e) => {
                panic!("a {padded_cols}x{padded_rows} image of bytes is valid grey input: {e}")
            }
        }
    }
    DigitSet::new(images, set.labels().to_vec(), MNIST_SIDE, MNIST_SIDE)
        .expect("one 28x28 image was added per label")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shared data sits beside the repository (`<repo>/../shared/data`).
    fn shared_usps_dir() -> Option<PathBuf> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/usps");
        if dir.is_dir() {
            Some(dir)
        } else {
            eprintln!("{} not found: skipping the USPS file test", dir.display());
            None
        }
    }

    /// Centre of mass in continuous coordinates (pixel i spans [i, i + 1)).
    fn centre_of_mass(image: &[u8], side: usize) -> (f64, f64) {
        let (mut mass, mut mx, mut my) = (0.0, 0.0, 0.0);
        for (i, &v) in image.iter().enumerate() {
            let v = v as f64;
            mass += v;
            mx += v * ((i % side) as f64 + 0.5);
            my += v * ((i / side) as f64 + 0.5);
        }
        (mx / mass, my / mass)
    }

    /// The ink's bounding box (pixels above half ink): (width, height).
    fn ink_box(image: &[u8], side: usize) -> (usize, usize) {
        let ink: Vec<usize> = (0..image.len()).filter(|&i| image[i] > 127).collect();
        let xs = ink.iter().map(|i| i % side);
        let ys = ink.iter().map(|i| i / side);
        let width = xs.clone().max().unwrap() - xs.min().unwrap() + 1;
        let height = ys.clone().max().unwrap() - ys.min().unwrap() + 1;
        (width, height)
    }

    #[test]
    fn an_off_centre_bar_becomes_a_centred_20_pixel_digit() {
        // A "1": a 2-pixel-wide vertical bar, rows 2..14, at the left edge.
        let mut image = vec![0u8; SIDE * SIDE];
        for y in 2..14 {
            image[y * SIDE] = 255;
            image[y * SIDE + 1] = 255;
        }
        let set = DigitSet::new(image, vec![1], SIDE, SIDE).unwrap();
        let mnist = to_mnist_layout(&set);
        assert_eq!((mnist.len(), mnist.rows(), mnist.cols()), (1, 28, 28));
        assert_eq!(mnist.labels(), &[1]);
        let (_, height) = ink_box(mnist.image(0), MNIST_SIDE);
        assert!((19..=20).contains(&height), "longer side {height}");
        let (cx, cy) = centre_of_mass(mnist.image(0), MNIST_SIDE);
        assert!(
            (cx - 14.0).abs() <= 0.5 && (cy - 14.0).abs() <= 0.5,
            "({cx}, {cy})"
        );
        assert_eq!(mnist.image(0)[0], 0, "background stays 0");
    }

    #[test]
    fn a_blank_image_stays_blank() {
        let set = DigitSet::new(vec![0; SIDE * SIDE], vec![7], SIDE, SIDE).unwrap();
        let mnist = to_mnist_layout(&set);
        assert!(mnist.image(0).iter().all(|&v| v == 0));
        assert_eq!(mnist.labels(), &[7]);
    }

    #[test]
    fn usps_loads_and_converts_to_centred_28x28_digits() {
        let Some(dir) = shared_usps_dir() else {
            return;
        };
        let usps = Usps::load(&dir).unwrap();
        assert_eq!((usps.train.len(), usps.test.len()), (TRAIN_LEN, TEST_LEN));
        assert_eq!((usps.train.rows(), usps.train.cols()), (SIDE, SIDE));
        // Label counts from SOURCE.md (those of ESL's zip.info).
        let mut counts = [0usize; 10];
        usps.test
            .labels()
            .iter()
            .for_each(|&l| counts[l as usize] += 1);
        assert_eq!(counts, [359, 264, 198, 166, 200, 160, 170, 147, 166, 177]);
        // MNIST's polarity: the corners are background.
        let corner_mean = (0..usps.train.len())
            .map(|i| usps.train.image(i)[0] as f64)
            .sum::<f64>()
            / usps.train.len() as f64;
        assert!(corner_mean < 5.0, "corners carry ink: mean {corner_mean}");

        for set in [&usps.train, &usps.test] {
            let mnist = to_mnist_layout(set);
            assert_eq!(
                (mnist.len(), mnist.rows(), mnist.cols()),
                (set.len(), 28, 28)
            );
            assert_eq!(mnist.labels(), set.labels());
            let mut far = 0;
            let (mut sum_x, mut sum_y) = (0.0, 0.0);
            for i in 0..mnist.len() {
                let (cx, cy) = centre_of_mass(mnist.image(i), MNIST_SIDE);
                sum_x += cx;
                sum_y += cy;
                if (cx - 14.0).abs() > 1.0 || (cy - 14.0).abs() > 1.0 {
                    far += 1;
                }
                let (w, h) = ink_box(mnist.image(i), MNIST_SIDE);
                assert!(w.max(h) <= 21, "image {i}: ink box {w}x{h}");
            }
            let n = mnist.len() as f64;
            let (mean_x, mean_y) = (sum_x / n, sum_y / n);
            assert!(
                (mean_x - 14.0).abs() < 0.2 && (mean_y - 14.0).abs() < 0.2,
                "({mean_x}, {mean_y})"
            );
            // Whole-pixel shifts put every digit within one pixel, unless
            // clamping at the frame's edge stopped it.
            assert!(
                far * 100 <= mnist.len(),
                "{far} digits off centre by more than a pixel"
            );
        }
    }
}
