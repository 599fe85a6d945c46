//! A set of labelled digit images of one size: MNIST (28x28) and USPS (16x16)
//! both load into this, so loaders and models need not know which it is.

use crate::idx::{IdxImages, IdxLabels};
use crate::{Error, Result};
use std::ops::Range;
use std::path::Path;

/// `len()` images of `rows` x `cols` bytes (0 = background, 255 = ink) and
/// their labels 0..=9. The fields are private so that the buffer sizes always
/// agree with `rows`, `cols` and the number of labels.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DigitSet {
    images: Vec<u8>,
    labels: Vec<u8>,
    rows: usize,
    cols: usize,
}

impl DigitSet {
    /// `images` holds `labels.len()` images of `rows * cols` bytes each,
    /// row-major, one after another.
    pub fn new(images: Vec<u8>, labels: Vec<u8>, rows: usize, cols: usize) -> Result<DigitSet> {
        if rows == 0 || cols == 0 {
            return Err(Error::Shape(format!(
                "images must have at least one pixel, got {rows}x{cols}"
            )));
        }
        let expected = rows
            .checked_mul(cols)
            .and_then(|pixels| pixels.checked_mul(labels.len()));
        if expected != Some(images.len()) {
            return Err(Error::Shape(format!(
                "{} labels of {rows}x{cols} images need {} pixel bytes, got {}",
                labels.len(),
                labels.len() as u128 * rows as u128 * cols as u128,
                images.len()
            )));
        }
        check_digits(&labels, "digit set")?;
        Ok(DigitSet {
            images,
            labels,
            rows,
            cols,
        })
    }

    /// Pairs an image file with its label file; errors name the files.
    pub fn from_idx(images: IdxImages, labels: IdxLabels) -> Result<DigitSet> {
        if images.count != labels.labels.len() {
            return Err(Error::CountMismatch {
                images_path: images.path,
                images: images.count,
                labels_path: labels.path,
                labels: labels.labels.len(),
            });
        }
        check_digits(&labels.labels, &labels.path.display().to_string())?;
        DigitSet::new(images.pixels, labels.labels, images.rows, images.cols)
    }

    /// Reads and pairs an IDX image file and its IDX label file.
    pub fn read_idx(images_path: &Path, labels_path: &Path) -> Result<DigitSet> {
        DigitSet::from_idx(IdxImages::read(images_path)?, IdxLabels::read(labels_path)?)
    }

    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    pub fn cols(&self) -> usize {
        self.cols
    }

    pub fn pixels_per_image(&self) -> usize {
        self.rows * self.cols
    }

    /// All images, `len() * rows * cols` bytes.
    pub fn images(&self) -> &[u8] {
        &self.images
    }

    pub fn labels(&self) -> &[u8] {
        &self.labels
    }

    /// Image `i`, `rows * cols` bytes row-major. Panics if `i >= len()`, like
    /// slice indexing.
    pub fn image(&self, i: usize) -> &[u8] {
        let n = self.pixels_per_image();
        &self.images[i * n..(i + 1) * n]
    }

    /// Label `i`. Panics if `i >= len()`, like slice indexing.
    pub fn label(&self, i: usize) -> u8 {
        self.labels[i]
    }

    /// The examples at `indices`, in that order (repeats allowed).
    pub fn subset(&self, indices: &[usize]) -> Result<DigitSet> {
        let n = self.pixels_per_image();
        let mut images = Vec::with_capacity(indices.len() * n);
        let mut labels = Vec::with_capacity(indices.len());
        for &i in indices {
            if i >= self.len() {
                return Err(Error::Index {
                    index: i,
                    len: self.len(),
                });
            }
            images.extend_from_slice(self.image(i));
            labels.push(self.labels[i]);
        }
        Ok(DigitSet {
            images,
            labels,
            rows: self.rows,
            cols: self.cols,
        })
    }

    /// The contiguous examples `range`, e.g. a train/validation split.
    pub fn slice(&self, range: Range<usize>) -> Result<DigitSet> {
        if range.start > range.end || range.end > self.len() {
            return Err(Error::Index {
                index: range.end.max(range.start),
                len: self.len(),
            });
        }
        let n = self.pixels_per_image();
        Ok(DigitSet {
            images: self.images[range.start * n..range.end * n].to_vec(),
            labels: self.labels[range].to_vec(),
            rows: self.rows,
            cols: self.cols,
        })
    }
}

fn check_digits(labels: &[u8], origin: &str) -> Result<()> {
    match labels.iter().position(|&l| l > 9) {
        Some(index) => Err(Error::NotADigit {
            origin: origin.to_string(),
            index,
            label: labels[index],
        }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    /// Three 2x2 images: image i is filled with 10*i, labelled i.
    fn three() -> DigitSet {
        let images = (0..3u8).flat_map(|i| [10 * i; 4]).collect();
        DigitSet::new(images, vec![0, 1, 2], 2, 2).unwrap()
    }

    #[test]
    fn accessors_see_each_example() {
        let set = three();
        assert_eq!(set.len(), 3);
        assert_eq!((set.rows(), set.cols(), set.pixels_per_image()), (2, 2, 4));
        assert_eq!(set.image(2), &[20, 20, 20, 20]);
        assert_eq!(set.label(1), 1);
        assert_eq!(set.images().len(), 12);
    }

    #[test]
    fn new_rejects_pixel_count_that_disagrees_with_labels() {
        let err = DigitSet::new(vec![0; 7], vec![0, 1], 2, 2).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("8") && msg.contains("7"), "{msg}");
    }

    #[test]
    fn new_rejects_labels_that_are_not_digits() {
        let err = DigitSet::new(vec![0; 8], vec![3, 10], 2, 2).unwrap_err();
        assert!(matches!(
            err,
            Error::NotADigit {
                index: 1,
                label: 10,
                ..
            }
        ));
    }

    #[test]
    fn subset_takes_examples_in_the_given_order() {
        let sub = three().subset(&[2, 0, 2]).unwrap();
        assert_eq!(sub.labels(), &[2, 0, 2]);
        assert_eq!(sub.image(0), &[20; 4]);
        assert_eq!(sub.image(1), &[0; 4]);
    }

    #[test]
    fn subset_rejects_index_past_the_end() {
        let err = three().subset(&[0, 3]).unwrap_err();
        assert!(matches!(err, Error::Index { index: 3, len: 3 }));
    }

    #[test]
    fn slice_takes_a_contiguous_range() {
        let tail = three().slice(1..3).unwrap();
        assert_eq!(tail.labels(), &[1, 2]);
        assert_eq!(tail.image(0), &[10; 4]);
        assert!(three().slice(2..4).is_err());
    }

    #[test]
    fn from_idx_pairs_images_with_labels() {
        let images = IdxImages {
            path: PathBuf::from("usps-images-idx3-ubyte.gz"),
            count: 2,
            rows: 16,
            cols: 16,
            pixels: vec![255; 2 * 16 * 16],
        };
        let labels = IdxLabels {
            path: PathBuf::from("usps-labels-idx1-ubyte.gz"),
            labels: vec![4, 9],
        };
        let set = DigitSet::from_idx(images, labels).unwrap();
        assert_eq!((set.len(), set.rows(), set.cols()), (2, 16, 16));
    }

    #[test]
    fn from_idx_count_mismatch_names_both_files() {
        let images = IdxImages {
            path: PathBuf::from("a/train-images-idx3-ubyte.gz"),
            count: 2,
            rows: 1,
            cols: 1,
            pixels: vec![0, 0],
        };
        let labels = IdxLabels {
            path: PathBuf::from("a/t10k-labels-idx1-ubyte.gz"),
            labels: vec![1, 2, 3],
        };
        let msg = DigitSet::from_idx(images, labels).unwrap_err().to_string();
        assert!(
            msg.contains("a/train-images-idx3-ubyte.gz has 2 images"),
            "{msg}"
        );
        assert!(
            msg.contains("a/t10k-labels-idx1-ubyte.gz has 3 labels"),
            "{msg}"
        );
    }

    #[test]
    fn from_idx_bad_label_names_the_labels_file() {
        let images = IdxImages {
            path: PathBuf::from("images.gz"),
            count: 1,
            rows: 1,
            cols: 1,
            pixels: vec![0],
        };
        let labels = IdxLabels {
            path: PathBuf::from("fashion-labels.gz"),
            labels: vec![200],
        };
        let msg = DigitSet::from_idx(images, labels).unwrap_err().to_string();
        assert!(
            msg.starts_with("fashion-labels.gz: label 200 at index 0"),
            "{msg}"
        );
    }
}
