//! The knowledge-distillation loss (Hinton, Vinyals and Dean 2015,
//! "Distilling the Knowledge in a Neural Network"), composed from ops that
//! already have their backward (`log_softmax`, `exp`, `mul`, `sum`), so its
//! gradient comes from autograd:
//!
//! ```text
//! L = α · T² · KL(softmax(t/T) ‖ softmax(s/T)) + (1 − α) · CE(s, y)
//! KL = mean over tokens of Σ_v p_t(v) · (log p_t(v) − log p_s(v))
//! ```
//!
//! `s` are the student's logits, `t` the teacher's (or its log-probabilities:
//! `log_softmax` of either divided by `T` is the same), `y` the next tokens.
//! The `T²` keeps the soft term's gradient on the scale of the hard one's
//! as `T` grows. The mean over tokens is PyTorch's
//! `F.kl_div(..., reduction='batchmean')` over rows `[N, V]`.

use kindling_tensor::{no_grad, Result, Tensor};

/// `α·T²·KL + (1−α)·CE` over rows: `student [N, V]` (differentiable),
/// `teacher [N, V]` (no gradient flows into it), `targets [N]` (i64 ids).
pub fn distill_loss(
    student: &Tensor,
    teacher: &Tensor,
    targets: &Tensor,
    alpha: f32,
    temperature: f32,
) -> Result<Tensor> {
    let hard = student.cross_entropy(targets, None)?;
    if alpha == 0.0 {
        return Ok(hard);
    }
    let soft = kl_to_teacher(student, teacher, temperature)?
        .affine(alpha * temperature * temperature, 0.0)?;
    if alpha == 1.0 {
        return Ok(soft);
    }
    soft.add(&hard.affine(1.0 - alpha, 0.0)?)
}

/// `KL(softmax(t/T) ‖ softmax(s/T))` per row, averaged over rows: a scalar.
pub fn kl_to_teacher(student: &Tensor, teacher: &Tensor, temperature: f32) -> Result<Tensor> {
    let inv = 1.0 / temperature;
    let log_pt = {
        let _g = no_grad();
        teacher.detach().affine(inv, 0.0)?.log_softmax(-1)?
    };
    let log_ps = student.affine(inv, 0.0)?.log_softmax(-1)?;
    let pt = {
        let _g = no_grad();
        log_pt.exp()?
    };
    pt.mul(&log_pt.sub(&log_ps)?)?.sum(&[-1], false)?.mean_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use kindling_tensor::Rng;

    #[test]
    fn kl_is_zero_for_the_same_distribution_and_positive_otherwise() {
        let rng = &mut Rng::new(2);
        let s = Tensor::randn(&[5, 9], 0.0, 2.0, rng);
        // A shift per row changes the logits, not the distribution.
        let same = s.affine(1.0, 3.0).unwrap();
        let kl = kl_to_teacher(&s, &same, 2.0).unwrap().item().unwrap();
        assert!(kl.abs() < 1e-5, "{kl}");
        let other = Tensor::randn(&[5, 9], 0.0, 2.0, rng);
        assert!(kl_to_teacher(&s, &other, 2.0).unwrap().item().unwrap() > 1e-3);
    }

    #[test]
    fn alpha_zero_is_cross_entropy_and_no_gradient_reaches_the_teacher() {
        let rng = &mut Rng::new(3);
        let s = Tensor::randn(&[4, 6], 0.0, 1.0, rng).requires_grad_(true);
        let t = Tensor::randn(&[4, 6], 0.0, 1.0, rng).requires_grad_(true);
        let y = Tensor::from_vec_i64(vec![0, 5, 2, 2], &[4]).unwrap();
        let ce = s.cross_entropy(&y, None).unwrap().item().unwrap();
        let l0 = distill_loss(&s, &t, &y, 0.0, 2.0).unwrap().item().unwrap();
        assert_eq!(l0, ce);
        distill_loss(&s, &t, &y, 0.5, 2.0)
            .unwrap()
            .backward()
            .unwrap();
        assert!(s.grad().is_some());
        assert!(t.grad().is_none(), "the teacher is frozen");
    }
}
