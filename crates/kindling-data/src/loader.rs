//! Mini-batches of a `DigitSet` as tensors ready for a model: images
//! `[B, 1, rows, cols]` f32, normalised, and labels `[B]` i64.
//!
//! One `Batches` is one epoch. Shuffling is seeded from `(seed, epoch)`, so a
//! run is reproducible, each epoch sees a different order, and a run resumed
//! at epoch k sees the same order it would have seen without stopping.

use crate::{DigitSet, Error, Result};
use kindling_tensor::{Rng, Tensor};

/// Pixel normalisation `x = (p / 255 - mean) / std`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Normalize {
    pub mean: f32,
    pub std: f32,
}

impl Normalize {
    /// Mean and standard deviation of MNIST's 60,000 training images scaled
    /// to [0, 1], the values the PyTorch MNIST example uses.
    pub const MNIST: Normalize = Normalize {
        mean: 0.1307,
        std: 0.3081,
    };

    /// Just scale to [0, 1].
    pub const UNIT_RANGE: Normalize = Normalize {
        mean: 0.0,
        std: 1.0,
    };

    /// The normalised value of every possible byte: conversion becomes one
    /// table lookup per pixel.
    fn table(self) -> [f32; 256] {
        std::array::from_fn(|p| (p as f32 / 255.0 - self.mean) / self.std)
    }
}

impl Default for Normalize {
    fn default() -> Self {
        Normalize::MNIST
    }
}

/// The order examples are visited in during one epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Order {
    /// 0, 1, 2, ...: for evaluation.
    Sequential,
    /// A permutation drawn from `seed` and `epoch`: for training.
    Shuffled { seed: u64, epoch: u64 },
}

/// One epoch of mini-batches; see the module docs.
pub struct Batches<'a> {
    set: &'a DigitSet,
    order: Vec<usize>,
    /// Position in `order` of the next batch's first example.
    next: usize,
    batch_size: usize,
    drop_last: bool,
    table: [f32; 256],
}

impl<'a> Batches<'a> {
    /// With `drop_last`, a final batch smaller than `batch_size` is skipped
    /// (useful when a model needs a fixed batch); otherwise it is yielded.
    pub fn new(
        set: &'a DigitSet,
        batch_size: usize,
        order: Order,
        drop_last: bool,
        normalize: Normalize,
    ) -> Result<Batches<'a>> {
        if batch_size == 0 {
            return Err(Error::BatchSize(batch_size));
        }
        let mut indices: Vec<usize> = (0..set.len()).collect();
        if let Order::Shuffled { seed, epoch } = order {
            epoch_rng(seed, epoch).shuffle(&mut indices);
        }
        Ok(Batches {
            set,
            order: indices,
            next: 0,
            batch_size,
            drop_last,
            table: normalize.table(),
        })
    }

    /// The example indices of this epoch, in visiting order.
    pub fn order(&self) -> &[usize] {
        &self.order
    }
}

/// Mixing the epoch through its own generator before combining with the seed
/// keeps (seed, epoch) pairs apart: with plain `seed + epoch`, run 1 epoch 1
/// would repeat run 2 epoch 0.
fn epoch_rng(seed: u64, epoch: u64) -> Rng {
    Rng::new(seed ^ Rng::new(epoch).next_u64())
}

impl Iterator for Batches<'_> {
    /// (images `[B, 1, rows, cols]` f32, labels `[B]` i64)
    type Item = (Tensor, Tensor);

    fn next(&mut self) -> Option<Self::Item> {
        let remaining = self.order.len() - self.next;
        let b = remaining.min(self.batch_size);
        if b == 0 || (self.drop_last && b < self.batch_size) {
            return None;
        }
        let indices = &self.order[self.next..self.next + b];
        self.next += b;

        let (rows, cols) = (self.set.rows(), self.set.cols());
        let mut images = Vec::with_capacity(b * rows * cols);
        let mut labels = Vec::with_capacity(b);
        for &i in indices {
            images.extend(self.set.image(i).iter().map(|&p| self.table[p as usize]));
            labels.push(self.set.label(i) as i64);
        }
        let images = Tensor::from_vec(images, &[b, 1, rows, cols])
            .expect("b * rows * cols values fill [b, 1, rows, cols]");
        let labels = Tensor::from_vec_i64(labels, &[b]).expect("b labels fill [b]");
        Some((images, labels))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let remaining = self.order.len() - self.next;
        let n = if self.drop_last {
            remaining / self.batch_size
        } else {
            remaining.div_ceil(self.batch_size)
        };
        (n, Some(n))
    }
}

impl ExactSizeIterator for Batches<'_> {}

#[cfg(test)]
mod tests {
    use super::*;

    /// `n` 2x2 images; image i has every pixel = i, and label i % 10.
    fn numbered(n: usize) -> DigitSet {
        let images = (0..n).flat_map(|i| [i as u8; 4]).collect();
        let labels = (0..n).map(|i| (i % 10) as u8).collect();
        DigitSet::new(images, labels, 2, 2).unwrap()
    }

    /// The example ids seen, read back from the unit-range pixel values.
    fn ids_seen(batches: Batches) -> Vec<usize> {
        let mut ids = Vec::new();
        for (images, _) in batches {
            let px = images.to_vec_f32().unwrap();
            ids.extend(px.chunks(4).map(|c| (c[0] * 255.0).round() as usize));
        }
        ids
    }

    fn shuffled(set: &DigitSet, seed: u64, epoch: u64) -> Batches<'_> {
        let order = Order::Shuffled { seed, epoch };
        Batches::new(set, 7, order, false, Normalize::UNIT_RANGE).unwrap()
    }

    #[test]
    fn each_epoch_visits_every_example_exactly_once() {
        let set = numbered(50);
        for epoch in 0..3 {
            let mut ids = ids_seen(shuffled(&set, 42, epoch));
            ids.sort_unstable();
            assert_eq!(ids, (0..50).collect::<Vec<_>>(), "epoch {epoch}");
        }
    }

    #[test]
    fn same_seed_and_epoch_give_the_same_order() {
        let set = numbered(50);
        assert_eq!(
            ids_seen(shuffled(&set, 7, 3)),
            ids_seen(shuffled(&set, 7, 3))
        );
    }

    #[test]
    fn different_epochs_and_seeds_give_different_orders() {
        let set = numbered(50);
        let base = shuffled(&set, 7, 0).order().to_vec();
        assert_ne!(base, shuffled(&set, 7, 1).order());
        assert_ne!(base, shuffled(&set, 8, 0).order());
        // The pairs plain `seed + epoch` would confuse.
        assert_ne!(shuffled(&set, 1, 1).order(), shuffled(&set, 2, 0).order());
    }

    #[test]
    fn sequential_order_is_the_dataset_order() {
        let set = numbered(10);
        let batches = Batches::new(&set, 4, Order::Sequential, false, Normalize::UNIT_RANGE);
        assert_eq!(ids_seen(batches.unwrap()), (0..10).collect::<Vec<_>>());
    }

    #[test]
    fn last_partial_batch_is_kept_or_dropped() {
        let set = numbered(10);
        let sizes = |drop_last| {
            let batches = Batches::new(&set, 4, Order::Sequential, drop_last, Normalize::MNIST);
            let batches = batches.unwrap();
            let expected_len = batches.len();
            let sizes: Vec<usize> = batches.map(|(_, labels)| labels.shape()[0]).collect();
            assert_eq!(sizes.len(), expected_len, "len() matches what is yielded");
            sizes
        };
        assert_eq!(sizes(false), vec![4, 4, 2]);
        assert_eq!(sizes(true), vec![4, 4]);
    }

    #[test]
    fn batches_have_model_shapes_and_dtypes() {
        let set = numbered(10);
        let mut batches =
            Batches::new(&set, 3, Order::Sequential, false, Normalize::MNIST).unwrap();
        let (images, labels) = batches.next().unwrap();
        assert_eq!(images.shape(), &[3, 1, 2, 2]);
        assert_eq!(labels.shape(), &[3]);
        assert_eq!(labels.to_vec_i64().unwrap(), vec![0, 1, 2]);
    }

    #[test]
    fn labels_follow_their_images_when_shuffled() {
        let set = numbered(30);
        for (images, labels) in shuffled(&set, 5, 0) {
            let px = images.to_vec_f32().unwrap();
            let ids = px.chunks(4).map(|c| (c[0] * 255.0).round() as i64);
            let expected: Vec<i64> = ids.map(|id| id % 10).collect();
            assert_eq!(labels.to_vec_i64().unwrap(), expected);
        }
    }

    #[test]
    fn mnist_normalisation_maps_black_and_white_to_published_values() {
        let images = vec![0, 255, 51, 0];
        let set = DigitSet::new(images, vec![0], 2, 2).unwrap();
        let mut batches =
            Batches::new(&set, 1, Order::Sequential, false, Normalize::default()).unwrap();
        let px = batches.next().unwrap().0.to_vec_f32().unwrap();
        // (0 - 0.1307) / 0.3081, (1 - 0.1307) / 0.3081, (0.2 - 0.1307) / 0.3081
        let expected = [-0.424_213, 2.821_487, 0.224_927, -0.424_213];
        for (got, want) in px.iter().zip(expected) {
            assert!((got - want).abs() < 1e-5, "{px:?}");
        }
    }

    #[test]
    fn empty_set_yields_no_batches() {
        let set = DigitSet::new(vec![], vec![], 2, 2).unwrap();
        let batches = Batches::new(&set, 4, Order::Sequential, false, Normalize::MNIST).unwrap();
        assert_eq!(batches.len(), 0);
        assert_eq!(batches.count(), 0);
    }

    #[test]
    fn zero_batch_size_is_an_error() {
        let set = numbered(3);
        let err = Batches::new(&set, 0, Order::Sequential, false, Normalize::MNIST);
        assert!(matches!(err, Err(Error::BatchSize(0))));
    }
}
