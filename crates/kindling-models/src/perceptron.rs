//! Rosenblatt's perceptron (1958): a McCulloch-Pitts threshold neuron
//! `y = step(w·x + b)` trained by the perceptron rule
//! `w += lr (t - y) x, b += lr (t - y)`, with no gradients at all. It
//! converges whenever a line (hyperplane) separates the classes, and never
//! when none does, as with XOR (Minsky & Papert 1969).

use kindling_tensor::{no_grad, Result, Tensor};

pub struct Perceptron {
    pub weights: Tensor,
    pub bias: f32,
}

/// What a training run did: epochs used and errors per epoch.
pub struct PerceptronRun {
    pub epochs: usize,
    pub converged: bool,
    pub errors_per_epoch: Vec<usize>,
}

impl Perceptron {
    pub fn new(inputs: usize) -> Self {
        Perceptron {
            weights: Tensor::zeros(&[inputs]),
            bias: 0.0,
        }
    }

    /// 0/1 outputs for each row of `x` `[n, inputs]`.
    pub fn predict(&self, x: &Tensor) -> Result<Tensor> {
        x.matmul(&self.weights)?.add_scalar(self.bias)?.step()
    }

    /// Sweeps the examples in order, updating after each mistake, until an
    /// epoch makes none or `max_epochs` pass.
    pub fn train(
        &mut self,
        x: &Tensor,
        targets: &[f32],
        lr: f32,
        max_epochs: usize,
    ) -> Result<PerceptronRun> {
        let _g = no_grad();
        let mut errors_per_epoch = Vec::new();
        for _ in 0..max_epochs {
            let mut errors = 0;
            for (i, &target) in targets.iter().enumerate() {
                let xi = x.narrow(0, i, 1)?.squeeze(0)?;
                let y = xi.mul(&self.weights)?.sum_all()?.item()? + self.bias;
                let fired = if y > 0.0 { 1.0 } else { 0.0 };
                let delta = lr * (target - fired);
                if delta != 0.0 {
                    errors += 1;
                    self.weights = self.weights.add(&xi.mul_scalar(delta)?)?;
                    self.bias += delta;
                }
            }
            errors_per_epoch.push(errors);
            if errors == 0 {
                break;
            }
        }
        let converged = errors_per_epoch.last() == Some(&0);
        Ok(PerceptronRun {
            epochs: errors_per_epoch.len(),
            converged,
            errors_per_epoch,
        })
    }

    pub fn accuracy(&self, x: &Tensor, targets: &[f32]) -> Result<f32> {
        let pred = self.predict(x)?.to_vec_f32()?;
        let right = pred.iter().zip(targets).filter(|(p, t)| p == t).count();
        Ok(right as f32 / targets.len() as f32)
    }
}

/// A small fruit table: is it an apple? Features are size (cm), redness
/// (0-1), sweetness (0-10), sourness (0-10) and crunchiness (0-10).
pub const FRUIT_FEATURES: [&str; 5] =
    ["size_cm", "redness", "sweetness", "sourness", "crunchiness"];

pub struct Fruit {
    pub name: &'static str,
    pub features: [f32; 5],
    pub is_apple: bool,
}

pub fn fruit_table() -> Vec<Fruit> {
    let f = |name, features, is_apple| Fruit {
        name,
        features,
        is_apple,
    };
    vec![
        f("red apple", [8.0, 0.9, 7.0, 4.0, 9.0], true),
        f("green apple", [7.5, 0.2, 5.0, 7.0, 9.0], true),
        f("gala apple", [7.0, 0.8, 8.0, 3.0, 8.0], true),
        f("fuji apple", [8.5, 0.7, 8.5, 3.0, 9.0], true),
        f("crab apple", [3.5, 0.8, 3.0, 8.0, 7.0], true),
        f("lemon", [7.0, 0.05, 1.0, 9.5, 2.0], false),
        f("banana", [18.0, 0.1, 8.0, 1.0, 1.0], false),
        f("cherry", [2.0, 0.95, 7.0, 4.0, 3.0], false),
        f("strawberry", [3.0, 0.9, 7.0, 4.0, 2.0], false),
        f("orange", [8.0, 0.4, 7.0, 5.0, 2.0], false),
        f("pear", [9.0, 0.3, 7.0, 2.0, 5.0], false),
        f("grape", [2.0, 0.5, 8.0, 3.0, 3.0], false),
        f("peach", [7.0, 0.6, 8.0, 3.0, 3.0], false),
        f("plum", [5.0, 0.7, 6.0, 5.0, 3.0], false),
    ]
}

/// The table as `[n, 5]` features scaled to 0..1 per column, and 0/1 targets.
pub fn fruit_dataset() -> Result<(Tensor, Vec<f32>, Vec<&'static str>)> {
    let table = fruit_table();
    let mut max = [0f32; 5];
    for fr in &table {
        for (m, &v) in max.iter_mut().zip(&fr.features) {
            *m = m.max(v);
        }
    }
    let data: Vec<f32> = table
        .iter()
        .flat_map(|fr| fr.features.iter().zip(&max).map(|(v, m)| v / m))
        .collect();
    let x = Tensor::from_vec(data, &[table.len(), 5])?;
    let t = table.iter().map(|fr| fr.is_apple as u8 as f32).collect();
    Ok((x, t, table.iter().map(|fr| fr.name).collect()))
}

/// The four XOR cases and their targets.
pub fn xor_dataset() -> Result<(Tensor, Vec<f32>)> {
    let x = Tensor::from_vec(vec![0., 0., 0., 1., 1., 0., 1., 1.], &[4, 2])?;
    Ok((x, vec![0., 1., 1., 0.]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn perceptron_separates_the_fruit_and_cannot_learn_xor() {
        let (x, t, _) = fruit_dataset().unwrap();
        let mut p = Perceptron::new(5);
        let run = p.train(&x, &t, 0.1, 1000).unwrap();
        assert!(run.converged);
        assert_eq!(p.accuracy(&x, &t).unwrap(), 1.0);

        let (x, t) = xor_dataset().unwrap();
        let mut p = Perceptron::new(2);
        let run = p.train(&x, &t, 0.1, 1000).unwrap();
        assert!(!run.converged && run.epochs == 1000);
        assert!(p.accuracy(&x, &t).unwrap() <= 0.75);
    }
}
