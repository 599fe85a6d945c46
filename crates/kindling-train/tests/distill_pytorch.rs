//! The distillation loss against PyTorch (`tools/gen_distill_fixture.py`):
//! `alpha * T^2 * F.kl_div(log_softmax(s/T), log_softmax(t/T),
//! log_target=True, reduction='batchmean') + (1 - alpha) * F.cross_entropy(s, y)`,
//! its value and its gradient with respect to the student's logits, for
//! several (alpha, T).

use kindling_tensor::safetensors_io;
use kindling_train::distill::distill_loss;
use std::path::Path;

#[test]
fn distillation_loss_and_student_gradient_match_pytorch() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/distill.safetensors");
    let (r, _) = safetensors_io::load(&path).unwrap();
    let teacher = &r["teacher"];
    let targets = &r["targets"];
    let mut cases = 0;
    while let Some(at) = r.get(&format!("case{cases}.alpha_temperature")) {
        let at = at.to_vec_f32().unwrap();
        let (alpha, t) = (at[0], at[1]);
        let student = r["student"].detach().requires_grad_(true);
        let loss = distill_loss(&student, teacher, targets, alpha, t).unwrap();
        let got = loss.item().unwrap();
        let want = r[&format!("case{cases}.loss")].item().unwrap();
        assert!(
            (got - want).abs() <= 1e-5 * want.abs(),
            "alpha {alpha} T {t}: loss {got} vs PyTorch's {want}"
        );
        loss.backward().unwrap();
        let grad = student.grad().unwrap().to_vec_f32().unwrap();
        let want = r[&format!("case{cases}.grad")].to_vec_f32().unwrap();
        let scale = want.iter().fold(0f32, |m, x| m.max(x.abs()));
        let d = grad
            .iter()
            .zip(&want)
            .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
        assert!(
            d <= 1e-5 * scale,
            "alpha {alpha} T {t}: gradient differs by {d} (largest {scale})"
        );
        cases += 1;
    }
    assert_eq!(cases, 4, "the fixture's (alpha, T) cases");
}
