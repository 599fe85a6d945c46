//! The optimizer every language-model task builds, and the checks of the
//! optimizer settings they all share, in one place.

use crate::{Error, Result};
use kindling_nn::optim::{Adam, AdamConfig, ParamGroup};
use kindling_nn::Module;
use kindling_tensor::Tensor;

/// AdamW with decoupled weight decay on the trainable parameters `decay`
/// picks (the matrices, by the language models' convention) and none on the
/// rest; frozen parameters are left out.
pub fn adamw_groups(
    model: &dyn Module,
    lr: f32,
    weight_decay: f32,
    beta2: f32,
    decay: &dyn Fn(&str, &Tensor) -> bool,
) -> Adam {
    let (mut decayed, mut not) = (Vec::new(), Vec::new());
    for (name, p) in model.named_trainable_parameters() {
        if decay(&name, &p) {
            decayed.push((name, p))
        } else {
            not.push((name, p))
        }
    }
    let config = AdamConfig {
        beta2,
        ..AdamConfig::adamw(lr, weight_decay)
    };
    Adam::with_groups(
        vec![
            ParamGroup {
                params: decayed,
                weight_decay,
            },
            ParamGroup {
                params: not,
                weight_decay: 0.0,
            },
        ],
        config,
    )
}

/// The optimizer settings a task has (`None`: it has no such option),
/// checked the same way everywhere: `lr` positive, `min_lr` between 0 and
/// `lr`, `weight_decay` and `grad_clip` non-negative (0 = off).
pub fn check_settings(
    lr: f32,
    min_lr: Option<f32>,
    weight_decay: Option<f32>,
    grad_clip: Option<f32>,
) -> Result<()> {
    if !(lr.is_finite() && lr > 0.0) {
        return Err(Error::option(
            "lr",
            format!("must be a positive number, got {lr}"),
        ));
    }
    if let Some(m) = min_lr.filter(|m| !(m.is_finite() && *m >= 0.0 && *m <= lr)) {
        return Err(Error::option(
            "min_lr",
            format!("must be between 0 and `lr`, got {m}"),
        ));
    }
    if let Some(w) = weight_decay.filter(|w| !(w.is_finite() && *w >= 0.0)) {
        return Err(Error::option(
            "weight_decay",
            format!("must be >= 0, got {w}"),
        ));
    }
    if let Some(c) = grad_clip.filter(|c| !(c.is_finite() && *c >= 0.0)) {
        return Err(Error::option(
            "grad_clip",
            format!("must be >= 0 (0 = off), got {c}"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_out_of_range_name_their_option() {
        assert!(check_settings(1e-3, Some(1e-4), Some(0.1), Some(1.0)).is_ok());
        assert!(check_settings(1e-3, None, None, None).is_ok());
        let e = |r: Result<()>| r.unwrap_err().to_string();
        assert!(e(check_settings(0.0, None, None, None)).starts_with("lr "));
        assert!(e(check_settings(f32::NAN, None, None, None)).starts_with("lr "));
        assert!(e(check_settings(1e-3, Some(1e-2), None, None)).starts_with("min_lr "));
        assert!(e(check_settings(1e-3, None, Some(-0.1), None)).starts_with("weight_decay "));
        assert!(e(check_settings(1e-3, None, None, Some(-1.0))).starts_with("grad_clip "));
    }
}
