//! The multi-layer perceptron that solves XOR (Rumelhart, Hinton & Williams
//! 1986): a hidden layer of tanh units, trained by backpropagation and
//! gradient descent on the cross-entropy of two output logits.

use kindling_nn::optim::{Optimizer, Sgd, SgdConfig};
use kindling_nn::{Linear, Module};
use kindling_tensor::{no_grad, Result, Rng, Tensor};

pub struct Mlp {
    pub hidden: Linear,
    pub output: Linear,
}

impl Mlp {
    pub fn new(inputs: usize, hidden: usize, outputs: usize, rng: &mut Rng) -> Self {
        Mlp {
            hidden: Linear::new(inputs, hidden, true, rng),
            output: Linear::new(hidden, outputs, true, rng),
        }
    }

    pub fn hidden_activations(&self, x: &Tensor) -> Result<Tensor> {
        self.hidden.forward(x)?.tanh()
    }
}

impl Module for Mlp {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.output.forward(&self.hidden_activations(x)?)
    }
    fn visit_parameters(&self, prefix: &str, f: &mut dyn FnMut(String, &Tensor)) {
        self.hidden
            .visit_parameters(&kindling_nn::module::join_name(prefix, "hidden"), f);
        self.output
            .visit_parameters(&kindling_nn::module::join_name(prefix, "output"), f);
    }
    fn visit_modules_mut(&mut self, prefix: &str, f: &mut dyn FnMut(&str, &mut dyn Module)) {
        use kindling_nn::module::{join_name, visit_child};
        visit_child(&mut self.hidden, &join_name(prefix, "hidden"), f);
        visit_child(&mut self.output, &join_name(prefix, "output"), f);
    }
}

pub struct XorRun {
    pub model: Mlp,
    pub steps: usize,
    pub final_loss: f32,
    pub accuracy: f32,
    pub losses: Vec<f32>,
}

/// Full-batch gradient descent (with momentum) until every case is right
/// and the loss is below `target_loss`, or `max_steps` pass.
pub fn train_xor(
    hidden: usize,
    lr: f32,
    max_steps: usize,
    target_loss: f32,
    seed: u64,
) -> Result<XorRun> {
    let mut rng = Rng::new(seed);
    let model = Mlp::new(2, hidden, 2, &mut rng);
    let (x, t) = crate::perceptron::xor_dataset()?;
    let labels = Tensor::from_vec_i64(t.iter().map(|&v| v as i64).collect(), &[4])?;
    let mut opt = Sgd::new(
        model.parameters(),
        SgdConfig {
            lr,
            momentum: 0.9,
            ..Default::default()
        },
    );
    let mut losses = Vec::new();
    let mut steps = 0;
    while steps < max_steps {
        opt.zero_grad();
        let logits = model.forward(&x)?;
        let loss = logits.cross_entropy(&labels, None)?;
        loss.backward()?;
        opt.step()?;
        steps += 1;
        let l = loss.item()?;
        losses.push(l);
        if accuracy_of(&logits, &t)? == 1.0 && l < target_loss {
            break;
        }
    }
    let (final_loss, accuracy) = {
        let _g = no_grad();
        let logits = model.forward(&x)?;
        (
            logits.cross_entropy(&labels, None)?.item()?,
            accuracy_of(&logits, &t)?,
        )
    };
    Ok(XorRun {
        model,
        steps,
        final_loss,
        accuracy,
        losses,
    })
}

fn accuracy_of(logits: &Tensor, targets: &[f32]) -> Result<f32> {
    let pred = logits.argmax(-1, false)?.to_vec_i64()?;
    let right = pred
        .iter()
        .zip(targets)
        .filter(|(p, t)| **p as f32 == **t)
        .count();
    Ok(right as f32 / targets.len() as f32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mlp_learns_xor_for_several_seeds() {
        for seed in 0..5 {
            let run = train_xor(4, 0.1, 5000, 0.01, seed).unwrap();
            assert_eq!(run.accuracy, 1.0, "seed {seed}");
            assert!(run.final_loss < 0.02, "seed {seed}: {}", run.final_loss);
        }
    }
}
