//! The fast gradient sign method (Goodfellow, Shlens & Szegedy 2015,
//! "Explaining and harnessing adversarial examples"): move every pixel by
//! ε in the direction that increases the loss,
//!
//!   x_adv = clamp(x + ε · sign(∇ₓ loss(model(x), y)), 0, 1),
//!
//! with ε in pixel units of the [0, 1] image, as in the paper. The model sees
//! normalised pixels (x − mean) / std; std > 0, so the gradient with respect
//! to the normalised input has the same sign as the one with respect to x.
//!
//! One backward pass gives the gradient sign, and every ε reuses it.

use crate::progress::bar;
use crate::Result;
use kindling_data::{Batches, DigitSet, Normalize, Order};
use kindling_nn::Module;
use kindling_tensor::{no_grad, Tensor};

/// The attack batch: large enough to keep both cores busy, small enough
/// that its activations and gradients stay well under 100 MB.
pub const ATTACK_BATCH: usize = 500;

/// ε must be in (0, 1]: 0 is no attack, and beyond 1 every pixel is
/// already pushed to 0 or 1.
pub fn check_eps(eps: f32) -> Result<()> {
    if !(eps > 0.0 && eps <= 1.0) {
        return Err(format!(
            "epsilon {eps} is out of range: it is in pixel units of the [0, 1] image and must be in (0, 1]"
        )
        .into());
    }
    Ok(())
}

/// One forward and backward pass on the normalised `images`: the logits
/// (no graph) and sign(∇ₓ loss) per pixel. The gradients this leaves on the
/// model's parameters are cleared, so an optimizer step is not affected.
pub fn logits_and_gradient_sign(
    model: &dyn Module,
    images: &Tensor,
    labels: &Tensor,
) -> Result<(Tensor, Vec<f32>)> {
    let x = images.detach().requires_grad_(true);
    let logits = model.forward(&x)?;
    logits.cross_entropy(labels, None)?.backward()?;
    model.zero_grad();
    let grad = x
        .grad()
        .ok_or("FGSM: the input received no gradient (does the model use its input?)")?;
    let sign = grad.sign()?.to_vec_f32()?;
    Ok((logits.detach(), sign))
}

/// x_adv = clamp(x + ε · sign, 0, 1) computed in [0, 1] pixel units, returned
/// normalised like `images` (a plain tensor, no graph).
pub fn perturb(images: &Tensor, sign: &[f32], eps: f32, normalize: Normalize) -> Result<Tensor> {
    let x = images.to_vec_f32()?;
    let adv: Vec<f32> = x
        .iter()
        .zip(sign)
        .map(|(&xn, &s)| {
            let x01 = xn * normalize.std + normalize.mean;
            let a = (x01 + eps * s).clamp(0.0, 1.0);
            (a - normalize.mean) / normalize.std
        })
        .collect();
    Ok(Tensor::from_vec(adv, images.shape())?)
}

/// FGSM examples against the current `model` for a training batch.
pub fn adversarial(
    model: &dyn Module,
    images: &Tensor,
    labels: &Tensor,
    eps: f32,
    normalize: Normalize,
) -> Result<Tensor> {
    let (_, sign) = logits_and_gradient_sign(model, images, labels)?;
    perturb(images, &sign, eps, normalize)
}

/// Adversarial training (Goodfellow et al. 2015, section 5): the clean batch
/// followed by its FGSM copy, labels repeated. The mean loss over both is
/// their objective with α = 0.5.
pub fn clean_and_adversarial(
    model: &dyn Module,
    images: &Tensor,
    labels: &Tensor,
    eps: f32,
    normalize: Normalize,
) -> Result<(Tensor, Tensor)> {
    let adv = adversarial(model, images, labels, eps, normalize)?;
    let mut x = images.to_vec_f32()?;
    x.extend(adv.to_vec_f32()?);
    let mut shape = images.shape().to_vec();
    shape[0] *= 2;
    let mut y = labels.to_vec_i64()?;
    y.extend_from_within(..);
    let n = y.len();
    Ok((Tensor::from_vec(x, &shape)?, Tensor::from_vec_i64(y, &[n])?))
}

/// Predicted class and its softmax probability for each row of `logits`.
fn predictions(logits: &Tensor) -> Result<Vec<(usize, f32)>> {
    let _g = no_grad();
    let probs = logits.softmax(-1)?;
    let c = *logits.shape().last().unwrap_or(&1);
    let probs = probs.to_vec_f32()?;
    Ok(probs
        .chunks(c)
        .map(|row| {
            row.iter()
                .enumerate()
                .max_by(|a, b| a.1.total_cmp(b.1))
                .map(|(i, &p)| (i, p))
                .unwrap_or((0, 0.0))
        })
        .collect())
}

/// One test digit under attack, for the examples figure.
pub struct Example {
    pub label: usize,
    /// The clean image in [0, 1] pixels, 28×28 row-major.
    pub original: Vec<f32>,
    /// (predicted digit, its probability) on the clean image.
    pub clean: (usize, f32),
    /// Per ε: the adversarial image in [0, 1] pixels and its prediction.
    pub attacked: Vec<(Vec<f32>, (usize, f32))>,
}

pub struct AttackResult {
    pub images: usize,
    pub clean_accuracy: f32,
    /// (ε, accuracy on the FGSM images), in the order asked.
    pub accuracy_by_eps: Vec<(f32, f32)>,
    /// The first test image of each digit.
    pub examples: Vec<Example>,
}

/// The clean logits of `model` and the gradient sign of `source`'s loss:
/// `model`'s own (white box) when `source` is `None`, else another model's,
/// to test whether examples crafted on one model transfer to another
/// (Szegedy et al. 2014; Papernot et al. 2016).
fn clean_logits_and_sign(
    model: &dyn Module,
    source: Option<&dyn Module>,
    images: &Tensor,
    labels: &Tensor,
) -> Result<(Tensor, Vec<f32>)> {
    match source {
        None => logits_and_gradient_sign(model, images, labels),
        Some(source) => {
            let (_, sign) = logits_and_gradient_sign(source, images, labels)?;
            let _g = no_grad();
            Ok((model.forward(images)?, sign))
        }
    }
}

/// Attacks `model` on every image of `set` at each ε, with a progress bar;
/// the gradient comes from `source` when given (a transfer attack).
pub fn attack(
    model: &dyn Module,
    source: Option<&dyn Module>,
    set: &DigitSet,
    eps: &[f32],
    normalize: Normalize,
) -> Result<AttackResult> {
    for &e in eps {
        check_eps(e)?;
    }
    if set.is_empty() {
        return Err("FGSM: the test set is empty".into());
    }
    let pb = bar(set.len() as u64, "FGSM".into(), "img");
    let mut right_clean = 0usize;
    let mut right_adv = vec![0usize; eps.len()];
    let mut seen = 0usize;
    for (images, labels) in Batches::new(set, ATTACK_BATCH, Order::Sequential, false, normalize)? {
        let (logits, sign) = clean_logits_and_sign(model, source, &images, &labels)?;
        let truth = labels.to_vec_i64()?;
        let count = |logits: &Tensor| -> Result<usize> {
            let pred = logits.argmax(-1, false)?.to_vec_i64()?;
            Ok(pred.iter().zip(&truth).filter(|(p, t)| p == t).count())
        };
        right_clean += count(&logits)?;
        let _g = no_grad();
        for (k, &e) in eps.iter().enumerate() {
            let adv = perturb(&images, &sign, e, normalize)?;
            right_adv[k] += count(&model.forward(&adv)?)?;
        }
        seen += truth.len();
        pb.inc(truth.len() as u64);
        pb.set_message(format!(
            "clean {:.1}%, ε={} {:.1}%",
            100.0 * right_clean as f32 / seen as f32,
            eps.last().copied().unwrap_or(0.0),
            100.0 * *right_adv.last().unwrap_or(&0) as f32 / seen as f32
        ));
    }
    pb.finish_and_clear();
    let n = set.len() as f32;
    Ok(AttackResult {
        images: set.len(),
        clean_accuracy: right_clean as f32 / n,
        accuracy_by_eps: eps
            .iter()
            .zip(&right_adv)
            .map(|(&e, &r)| (e, r as f32 / n))
            .collect(),
        examples: examples(model, source, set, eps, normalize)?,
    })
}

/// The first image of each digit in `set`, attacked at every ε.
fn examples(
    model: &dyn Module,
    source: Option<&dyn Module>,
    set: &DigitSet,
    eps: &[f32],
    normalize: Normalize,
) -> Result<Vec<Example>> {
    let mut picks: Vec<usize> = Vec::new();
    for digit in 0..10u8 {
        if let Some(i) = (0..set.len()).find(|&i| set.label(i) == digit) {
            picks.push(i);
        }
    }
    let pixels: Vec<f32> = picks
        .iter()
        .flat_map(|&i| set.image(i).iter().map(|&p| p as f32 / 255.0))
        .collect();
    let (rows, cols) = (set.rows(), set.cols());
    let normalised: Vec<f32> = pixels
        .iter()
        .map(|&p| (p - normalize.mean) / normalize.std)
        .collect();
    let images = Tensor::from_vec(normalised, &[picks.len(), 1, rows, cols])?;
    let labels: Vec<i64> = picks.iter().map(|&i| set.label(i) as i64).collect();
    let labels = Tensor::from_vec_i64(labels, &[picks.len()])?;
    let (logits, sign) = clean_logits_and_sign(model, source, &images, &labels)?;
    let clean = predictions(&logits)?;
    let _g = no_grad();
    let side = rows * cols;
    let mut out: Vec<Example> = picks
        .iter()
        .enumerate()
        .map(|(k, &i)| Example {
            label: set.label(i) as usize,
            original: pixels[k * side..(k + 1) * side].to_vec(),
            clean: clean[k],
            attacked: Vec::new(),
        })
        .collect();
    for &e in eps {
        let adv = perturb(&images, &sign, e, normalize)?;
        let pred = predictions(&model.forward(&adv)?)?;
        let adv01: Vec<f32> = adv
            .to_vec_f32()?
            .iter()
            .map(|&v| v * normalize.std + normalize.mean)
            .collect();
        for (k, ex) in out.iter_mut().enumerate() {
            ex.attacked
                .push((adv01[k * side..(k + 1) * side].to_vec(), pred[k]));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kindling_models::lenet5::{LeNet5, LeNet5Config};
    use kindling_tensor::Rng;

    #[test]
    fn epsilon_must_be_in_zero_one() {
        for bad in [0.0, -0.1, 1.5, f32::NAN, f32::INFINITY] {
            let err = check_eps(bad).unwrap_err().to_string();
            assert!(err.contains("(0, 1]"), "{bad}: {err}");
        }
        for good in [0.01, 0.3, 1.0] {
            check_eps(good).unwrap();
        }
    }

    #[test]
    fn perturbation_moves_each_pixel_by_eps_in_pixel_units_and_clamps() {
        let n = Normalize::MNIST;
        let x01 = [0.0f32, 0.5, 0.5, 1.0, 0.95];
        let sign = [1.0f32, -1.0, 0.0, 1.0, 1.0];
        let xn: Vec<f32> = x01.iter().map(|p| (p - n.mean) / n.std).collect();
        let adv = perturb(&Tensor::from_vec(xn, &[5]).unwrap(), &sign, 0.1, n).unwrap();
        let got: Vec<f32> = adv
            .to_vec_f32()
            .unwrap()
            .iter()
            .map(|v| v * n.std + n.mean)
            .collect();
        for (g, want) in got.iter().zip([0.1, 0.4, 0.5, 1.0, 1.0]) {
            assert!((g - want).abs() < 1e-5, "{got:?}");
        }
    }

    #[test]
    fn gradient_sign_increases_the_loss_and_leaves_no_parameter_grads() {
        let model = LeNet5::new(LeNet5Config::default(), &mut Rng::new(3)).unwrap();
        let mut rng = Rng::new(4);
        let images = Tensor::rand(&[8, 1, 28, 28], -0.4, 2.8, &mut rng);
        let labels = Tensor::from_vec_i64((0..8).collect(), &[8]).unwrap();
        let n = Normalize::MNIST;
        let (logits, sign) = logits_and_gradient_sign(&model, &images, &labels).unwrap();
        assert!(model.parameters().iter().all(|p| p.grad().is_none()));
        assert!(sign.iter().any(|&s| s != 0.0));
        let _g = no_grad();
        let before = logits.cross_entropy(&labels, None).unwrap().item().unwrap();
        let adv = perturb(&images, &sign, 0.05, n).unwrap();
        let after = model
            .forward(&adv)
            .unwrap()
            .cross_entropy(&labels, None)
            .unwrap()
            .item()
            .unwrap();
        assert!(after > before, "loss {before} -> {after}");
    }

    #[test]
    fn clean_and_adversarial_doubles_the_batch_with_labels_repeated() {
        let model = LeNet5::new(LeNet5Config::default(), &mut Rng::new(3)).unwrap();
        let images = Tensor::rand(&[3, 1, 28, 28], -0.4, 2.8, &mut Rng::new(5));
        let labels = Tensor::from_vec_i64(vec![1, 2, 3], &[3]).unwrap();
        let (x, y) =
            clean_and_adversarial(&model, &images, &labels, 0.1, Normalize::MNIST).unwrap();
        assert_eq!(x.shape(), &[6, 1, 28, 28]);
        assert_eq!(y.to_vec_i64().unwrap(), vec![1, 2, 3, 1, 2, 3]);
        assert!(!x.requires_grad());
        let xs = x.to_vec_f32().unwrap();
        assert_eq!(&xs[..3 * 784], &images.to_vec_f32().unwrap()[..]);
    }
}
