//! The ops LLaMA adds (RMSNorm, rotary embeddings, SiLU) against finite
//! differences and against their definitions composed from basic ops.

use kindling_tensor::gradcheck::gradcheck;
use kindling_tensor::{cat, Rng, Tensor};

fn randn(shape: &[usize], rng: &mut Rng) -> Tensor {
    Tensor::randn(shape, 0.0, 1.0, rng)
}

fn close(a: &Tensor, b: &Tensor, tol: f32) {
    let (a, b) = (a.to_vec_f32().unwrap(), b.to_vec_f32().unwrap());
    assert_eq!(a.len(), b.len());
    for (i, (x, y)) in a.iter().zip(&b).enumerate() {
        assert!(
            (x - y).abs() <= tol * (1.0 + y.abs()),
            "element {i}: {x} vs {y}"
        );
    }
}

fn angles(t: usize, half: usize, rng: &mut Rng) -> (Tensor, Tensor) {
    let a: Vec<f32> = (0..t * half)
        .map(|_| rng.uniform_range(-3.0, 3.0))
        .collect();
    let cos = Tensor::from_vec(a.iter().map(|x| x.cos()).collect(), &[t, half]).unwrap();
    let sin = Tensor::from_vec(a.iter().map(|x| x.sin()).collect(), &[t, half]).unwrap();
    (cos, sin)
}

#[test]
fn rms_norm_matches_its_definition_and_finite_differences() {
    let mut rng = Rng::new(7);
    let x = randn(&[2, 3, 8], &mut rng);
    let w = Tensor::rand(&[8], 0.5, 1.5, &mut rng);
    let fused = x.rms_norm(&w, 1e-5).unwrap();
    let composed = x
        .div(
            &x.sqr()
                .unwrap()
                .mean(&[-1], true)
                .unwrap()
                .add_scalar(1e-5)
                .unwrap()
                .sqrt()
                .unwrap(),
        )
        .unwrap()
        .mul(&w)
        .unwrap();
    close(&fused, &composed, 1e-5);
    gradcheck(&[x.clone(), w.clone()], |t| t[0].rms_norm(&t[1], 1e-5)).unwrap();
    // A transposed (non-contiguous) input.
    let xt = randn(&[8, 5], &mut rng);
    gradcheck(&[xt, w], |t| t[0].transpose(0, 1)?.rms_norm(&t[1], 1e-3)).unwrap();
}

#[test]
fn rope_rotates_halves_as_rotate_half_and_has_the_inverse_rotation_as_gradient() {
    let mut rng = Rng::new(11);
    let (b, t, h, d) = (2, 3, 2, 6);
    let x = randn(&[b, t, h, d], &mut rng);
    let (cos, sin) = angles(t, d / 2, &mut rng);
    // Hugging Face: q * cos + rotate_half(q) * sin, cos/sin repeated over both halves.
    let full = |c: &Tensor| cat(&[c, c], -1).unwrap().unsqueeze(1).unwrap();
    let x1 = x.narrow(-1, 0, d / 2).unwrap();
    let x2 = x.narrow(-1, d / 2, d / 2).unwrap();
    let rot = cat(&[&x2.neg().unwrap(), &x1], -1).unwrap();
    let reference = x
        .mul(&full(&cos))
        .unwrap()
        .add(&rot.mul(&full(&sin)).unwrap())
        .unwrap();
    close(&x.rope(&cos, &sin).unwrap(), &reference, 1e-6);
    gradcheck(&[x], |t| t[0].rope(&cos, &sin)).unwrap();
    let e = randn(&[1, 3, 2, 5], &mut rng)
        .rope(&cos, &sin)
        .unwrap_err()
        .to_string();
    assert!(e.contains("rope"), "{e}");
}

#[test]
fn silu_matches_x_sigmoid_x_and_finite_differences() {
    let mut rng = Rng::new(3);
    let x = randn(&[4, 5], &mut rng);
    close(
        &x.silu().unwrap(),
        &x.mul(&x.sigmoid().unwrap()).unwrap(),
        1e-6,
    );
    gradcheck(std::slice::from_ref(&x), |t| t[0].silu()).unwrap();
    gradcheck(&[x], |t| t[0].transpose(0, 1)?.silu()).unwrap();
}
