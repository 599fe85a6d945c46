//! Weight initializers. Fan-in/fan-out follow PyTorch: for a weight of shape
//! `[out, in, k...]`, fan_in = in * prod(k), fan_out = out * prod(k).

use kindling_tensor::{Rng, Tensor};

pub fn fans(shape: &[usize]) -> (usize, usize) {
    let receptive: usize = shape.iter().skip(2).product();
    let fan_in = shape.get(1).copied().unwrap_or(shape[0]) * receptive;
    let fan_out = shape[0] * receptive;
    (fan_in, fan_out)
}

/// A parameter: a leaf tensor that requires grad.
pub fn param(t: Tensor) -> Tensor {
    t.requires_grad_(true)
}

pub fn uniform(shape: &[usize], bound: f32, rng: &mut Rng) -> Tensor {
    param(Tensor::rand(shape, -bound, bound, rng))
}

pub fn normal(shape: &[usize], std: f32, rng: &mut Rng) -> Tensor {
    param(Tensor::randn(shape, 0.0, std, rng))
}

pub fn zeros(shape: &[usize]) -> Tensor {
    param(Tensor::zeros(shape))
}

pub fn ones(shape: &[usize]) -> Tensor {
    param(Tensor::ones(shape))
}

/// He et al. 2015: variance 2/fan_in keeps ReLU activations' scale.
pub fn kaiming_uniform(shape: &[usize], rng: &mut Rng) -> Tensor {
    let (fan_in, _) = fans(shape);
    uniform(shape, (6.0 / fan_in as f32).sqrt(), rng)
}

pub fn kaiming_normal(shape: &[usize], rng: &mut Rng) -> Tensor {
    let (fan_in, _) = fans(shape);
    normal(shape, (2.0 / fan_in as f32).sqrt(), rng)
}

/// Glorot & Bengio 2010: variance 2/(fan_in+fan_out), for tanh/sigmoid nets.
pub fn xavier_uniform(shape: &[usize], rng: &mut Rng) -> Tensor {
    let (fan_in, fan_out) = fans(shape);
    uniform(shape, (6.0 / (fan_in + fan_out) as f32).sqrt(), rng)
}

pub fn xavier_normal(shape: &[usize], rng: &mut Rng) -> Tensor {
    let (fan_in, fan_out) = fans(shape);
    normal(shape, (2.0 / (fan_in + fan_out) as f32).sqrt(), rng)
}

/// PyTorch's default for Linear/Conv: U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
pub fn lecun_uniform(shape: &[usize], fan_in: usize, rng: &mut Rng) -> Tensor {
    uniform(shape, 1.0 / (fan_in as f32).sqrt(), rng)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn std_of(t: &Tensor) -> f32 {
        let v = t.to_vec_f32().unwrap();
        let m = v.iter().sum::<f32>() / v.len() as f32;
        (v.iter().map(|x| (x - m).powi(2)).sum::<f32>() / v.len() as f32).sqrt()
    }

    #[test]
    fn initializers_have_the_stated_spread() {
        let mut rng = Rng::new(0);
        let shape = [256, 128];
        assert!(
            (std_of(&kaiming_normal(&shape, &mut rng)) - (2.0f32 / 128.0).sqrt()).abs() < 0.005
        );
        assert!(
            (std_of(&kaiming_uniform(&shape, &mut rng)) - (2.0f32 / 128.0).sqrt()).abs() < 0.005
        );
        let xs = (2.0f32 / 384.0).sqrt();
        assert!((std_of(&xavier_uniform(&shape, &mut rng)) - xs).abs() < 0.005);
        assert!((std_of(&xavier_normal(&shape, &mut rng)) - xs).abs() < 0.005);
        assert_eq!(fans(&[6, 1, 5, 5]), (25, 150));
        assert!(kaiming_normal(&shape, &mut rng).requires_grad());
    }
}
