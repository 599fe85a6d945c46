//! Evaluating a classifier on a labelled digit set: loss, accuracy,
//! per-class accuracy and the confusion matrix.

use crate::Result;
use kindling_data::{Batches, DigitSet, Normalize, Order};
use kindling_nn::Module;
use kindling_tensor::no_grad;

pub struct Evaluation {
    pub loss: f32,
    pub accuracy: f32,
    /// `confusion[true][predicted]` counts.
    pub confusion: Vec<Vec<usize>>,
}

impl Evaluation {
    pub fn per_class_accuracy(&self) -> Vec<f32> {
        self.confusion
            .iter()
            .enumerate()
            .map(|(c, row)| {
                let n: usize = row.iter().sum();
                if n == 0 {
                    0.0
                } else {
                    row[c] as f32 / n as f32
                }
            })
            .collect()
    }
}

pub fn evaluate(
    model: &dyn Module,
    set: &DigitSet,
    classes: usize,
    normalize: Normalize,
) -> Result<Evaluation> {
    let _g = no_grad();
    let mut confusion = vec![vec![0usize; classes]; classes];
    let mut loss_sum = 0f64;
    for (images, labels) in Batches::new(set, 1000, Order::Sequential, false, normalize)? {
        let logits = model.forward(&images)?;
        loss_sum += logits.cross_entropy(&labels, None)?.item()? as f64 * labels.numel() as f64;
        let pred = logits.argmax(-1, false)?.to_vec_i64()?;
        for (p, t) in pred.iter().zip(labels.to_vec_i64()?) {
            confusion[t as usize][*p as usize] += 1;
        }
    }
    let right: usize = (0..classes).map(|c| confusion[c][c]).sum();
    let n = set.len().max(1);
    Ok(Evaluation {
        loss: (loss_sum / n as f64) as f32,
        accuracy: right as f32 / n as f32,
        confusion,
    })
}
