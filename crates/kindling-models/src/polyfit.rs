//! "Six knobs": fit `y = c0 + c1 x + ... + c5 x^5` to noisy samples of a
//! smooth curve by gradient descent on the mean squared error, and compare
//! with the exact least-squares answer from the normal equations.

use kindling_nn::optim::{Adam, AdamConfig, Optimizer};
use kindling_tensor::{Result, Rng, Tensor};

pub const DEGREE: usize = 5;

pub struct PolyData {
    pub x: Vec<f32>,
    pub y: Vec<f32>,
}

/// The curve we sample: one period of a sine, smooth and not a polynomial.
pub fn true_curve(x: f32) -> f32 {
    (std::f32::consts::PI * x).sin()
}

/// `n` points evenly spread over [-1, 1] with Gaussian noise.
pub fn noisy_samples(n: usize, noise: f32, seed: u64) -> PolyData {
    let mut rng = Rng::new(seed);
    let x: Vec<f32> = (0..n)
        .map(|i| -1.0 + 2.0 * i as f32 / (n - 1) as f32)
        .collect();
    let y = x
        .iter()
        .map(|&v| true_curve(v) + noise * rng.normal())
        .collect();
    PolyData { x, y }
}

/// Design matrix `[n, DEGREE+1]` with columns x^0..x^DEGREE.
pub fn design(x: &[f32]) -> Vec<f64> {
    x.iter()
        .flat_map(|&v| (0..=DEGREE).map(move |p| (v as f64).powi(p as i32)))
        .collect()
}

pub fn eval_poly(c: &[f32], x: f32) -> f32 {
    c.iter().rev().fold(0.0, |acc, &ci| acc * x + ci)
}

pub fn mse(c: &[f32], d: &PolyData) -> f32 {
    let s: f64 =
        d.x.iter()
            .zip(&d.y)
            .map(|(&x, &y)| ((eval_poly(c, x) - y) as f64).powi(2))
            .sum();
    (s / d.x.len() as f64) as f32
}

/// Least squares through the normal equations `(X^T X) c = X^T y`, solved in
/// f64 by Gaussian elimination with partial pivoting (6 unknowns).
pub fn least_squares(d: &PolyData) -> Vec<f32> {
    let k = DEGREE + 1;
    let x = design(&d.x);
    let mut a = vec![0f64; k * (k + 1)];
    for (row, &y) in x.chunks(k).zip(&d.y) {
        for i in 0..k {
            for j in 0..k {
                a[i * (k + 1) + j] += row[i] * row[j];
            }
            a[i * (k + 1) + k] += row[i] * y as f64;
        }
    }
    for col in 0..k {
        let pivot = (col..k)
            .max_by(|&p, &q| {
                a[p * (k + 1) + col]
                    .abs()
                    .total_cmp(&a[q * (k + 1) + col].abs())
            })
            .expect("non-empty");
        for j in 0..=k {
            a.swap(col * (k + 1) + j, pivot * (k + 1) + j);
        }
        for r in 0..k {
            if r != col {
                let f = a[r * (k + 1) + col] / a[col * (k + 1) + col];
                for j in col..=k {
                    a[r * (k + 1) + j] -= f * a[col * (k + 1) + j];
                }
            }
        }
    }
    (0..k)
        .map(|i| (a[i * (k + 1) + k] / a[i * (k + 1) + i]) as f32)
        .collect()
}

pub struct GdFit {
    pub coefs: Vec<f32>,
    pub losses: Vec<f32>,
}

/// Gradient descent (Adam, full batch) on the six coefficients from zero.
/// Monomials on [-1, 1] are badly conditioned, so plain descent crawls along
/// the flat directions; Adam's per-coefficient step sizes fix most of that.
pub fn fit_by_gradient_descent(d: &PolyData, steps: usize, lr: f32) -> Result<GdFit> {
    let k = DEGREE + 1;
    let x = Tensor::from_vec(
        design(&d.x).iter().map(|&v| v as f32).collect(),
        &[d.x.len(), k],
    )?;
    let y = Tensor::from_slice(&d.y, &[d.y.len()])?;
    let c = Tensor::zeros(&[k]).requires_grad_(true);
    let mut opt = Adam::new(vec![c.clone()], AdamConfig::adam(lr));
    let schedule = kindling_nn::schedule::LrSchedule::WarmupCosine {
        lr,
        min_lr: lr * 0.01,
        warmup: 0,
        total: steps,
    };
    let mut losses = Vec::with_capacity(steps);
    for step in 0..steps {
        opt.set_lr(schedule.lr_at(step));
        opt.zero_grad();
        let loss = x.matmul(&c)?.mse_loss(&y)?;
        loss.backward()?;
        opt.step()?;
        losses.push(loss.item()?);
    }
    Ok(GdFit {
        coefs: c.to_vec_f32()?,
        losses,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn least_squares_recovers_an_exact_polynomial() {
        let truth = [0.5, -1.0, 0.25, 2.0, 0.0, -0.75];
        let x: Vec<f32> = (0..30).map(|i| -1.0 + i as f32 / 14.5).collect();
        let y = x.iter().map(|&v| eval_poly(&truth, v)).collect();
        let c = least_squares(&PolyData { x, y });
        for (a, b) in c.iter().zip(truth) {
            assert!((a - b).abs() < 1e-3, "{c:?}");
        }
    }

    #[test]
    fn gradient_descent_reaches_the_least_squares_fit() {
        let d = noisy_samples(40, 0.1, 1);
        let exact = least_squares(&d);
        let gd = fit_by_gradient_descent(&d, 4000, 0.05).unwrap();
        assert!(mse(&gd.coefs, &d) <= mse(&exact, &d) * 1.01 + 1e-5);
        assert!(gd.losses.first() > gd.losses.last());
    }
}
