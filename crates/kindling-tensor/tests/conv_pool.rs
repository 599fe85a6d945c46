//! conv2d, pooling and dropout: finite differences and PyTorch parity
//! (`fixtures/conv.safetensors`, from tools/gen_fixtures.py), including a
//! whole LeNet-5 forward and backward.

use kindling_tensor::gradcheck::gradcheck;
use kindling_tensor::{safetensors_io, Result, Rng, Tensor};
use std::collections::HashMap;
use std::path::Path;

fn randn(shape: &[usize], rng: &mut Rng) -> Tensor {
    Tensor::randn(shape, 0.0, 1.0, rng)
}

#[test]
fn conv2d_backward_matches_finite_differences() {
    let mut rng = Rng::new(21);
    for (xs, ws, stride, pad) in [
        ([2, 3, 6, 5], [4, 3, 3, 3], 1, 1),
        ([1, 2, 7, 7], [3, 2, 3, 2], 2, 0),
        ([2, 1, 8, 8], [2, 1, 5, 5], 1, 2),
    ] {
        let (x, w, b) = (
            randn(&xs, &mut rng),
            randn(&ws, &mut rng),
            randn(&[ws[0]], &mut rng),
        );
        gradcheck(&[x, w, b], |t| t[0].conv2d(&t[1], Some(&t[2]), stride, pad))
            .unwrap_or_else(|e| panic!("{xs:?} * {ws:?} s{stride} p{pad}: {e}"));
    }
    // Without bias, and on a non-contiguous (transposed) input.
    let (x, w) = (
        randn(&[1, 2, 5, 6], &mut rng),
        randn(&[2, 2, 3, 3], &mut rng),
    );
    gradcheck(&[x, w], |t| t[0].transpose(2, 3)?.conv2d(&t[1], None, 1, 0)).unwrap();
}

/// Values spaced at least 0.05 apart so a finite step never changes which
/// element of a pooling window is the max.
fn distinct(shape: &[usize], rng: &mut Rng) -> Tensor {
    let n: usize = shape.iter().product();
    let mut v: Vec<f32> = (0..n).map(|i| i as f32 * 0.05).collect();
    rng.shuffle(&mut v);
    Tensor::from_vec(v, shape).unwrap()
}

#[test]
fn pooling_backward_matches_finite_differences() {
    let mut rng = Rng::new(22);
    let x = distinct(&[2, 2, 6, 6], &mut rng);
    gradcheck(std::slice::from_ref(&x), |t| t[0].max_pool2d(2, 2)).unwrap();
    gradcheck(std::slice::from_ref(&x), |t| t[0].max_pool2d(3, 1)).unwrap();
    gradcheck(std::slice::from_ref(&x), |t| t[0].avg_pool2d(2, 2)).unwrap();
    gradcheck(std::slice::from_ref(&x), |t| t[0].avg_pool2d(3, 2)).unwrap();
}

#[test]
fn dropout_backward_matches_finite_differences_with_a_fixed_mask() {
    let mut rng = Rng::new(23);
    let x = randn(&[4, 5], &mut rng);
    // Same seed inside f: every evaluation draws the same mask.
    gradcheck(std::slice::from_ref(&x), |t| {
        t[0].dropout(0.3, true, &mut Rng::new(5))
    })
    .unwrap();
    let y = x
        .dropout(0.5, true, &mut Rng::new(1))
        .unwrap()
        .to_vec_f32()
        .unwrap();
    let kept = y.iter().filter(|v| **v != 0.0).count();
    assert!(kept > 3 && kept < 17, "about half kept, got {kept} of 20");
    let xv = x.to_vec_f32().unwrap();
    assert!(y
        .iter()
        .zip(&xv)
        .all(|(a, b)| *a == 0.0 || (a - 2.0 * b).abs() < 1e-6));
    assert_eq!(
        x.dropout(0.5, false, &mut Rng::new(1))
            .unwrap()
            .to_vec_f32()
            .unwrap(),
        xv
    );
    assert!(x.dropout(1.0, true, &mut Rng::new(1)).is_err());
}

#[test]
fn conv_and_pool_shape_errors_are_clear() {
    let x = Tensor::zeros(&[1, 3, 4, 4]);
    let msg = x
        .conv2d(&Tensor::zeros(&[2, 2, 3, 3]), None, 1, 0)
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("conv2d") && msg.contains("[1, 3, 4, 4]"),
        "{msg}"
    );
    let msg = x
        .conv2d(&Tensor::zeros(&[2, 3, 7, 7]), None, 1, 0)
        .unwrap_err()
        .to_string();
    assert!(msg.contains("does not fit"), "{msg}");
    assert!(x.max_pool2d(5, 2).is_err());
}

fn fixtures() -> HashMap<String, Tensor> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/conv.safetensors");
    safetensors_io::load(&path).expect("fixture present").0
}

fn assert_close(what: &str, got: &Tensor, want: &Tensor, tol: f32) {
    assert_eq!(got.shape(), want.shape(), "{what}");
    let (g, w) = (got.to_vec_f32().unwrap(), want.to_vec_f32().unwrap());
    for (i, (a, b)) in g.iter().zip(&w).enumerate() {
        assert!(
            (a - b).abs() <= tol * (1.0 + b.abs()),
            "{what}[{i}]: kindling {a} vs pytorch {b}"
        );
    }
}

fn check(
    f: &HashMap<String, Tensor>,
    case: &str,
    n: usize,
    tol: f32,
    op: impl Fn(&[Tensor]) -> Result<Tensor>,
) {
    let get = |k: &str| {
        f.get(&format!("{case}.{k}"))
            .unwrap_or_else(|| panic!("{case}.{k}"))
            .clone()
    };
    let inputs: Vec<Tensor> = (0..n)
        .map(|i| get(&format!("x{i}")).requires_grad_(true))
        .collect();
    let out = op(&inputs).unwrap();
    assert_close(&format!("{case}.out"), &out, &get("out"), tol);
    out.mul(&get("gout"))
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    for (i, x) in inputs.iter().enumerate() {
        assert_close(
            &format!("{case}.grad{i}"),
            &x.grad().unwrap(),
            &get(&format!("grad{i}")),
            tol,
        );
    }
}

#[test]
fn conv_and_pool_match_pytorch() {
    let f = fixtures();
    check(&f, "conv2d_pad", 3, 1e-5, |t| {
        t[0].conv2d(&t[1], Some(&t[2]), 1, 1)
    });
    check(&f, "conv2d_stride", 3, 1e-5, |t| {
        t[0].conv2d(&t[1], Some(&t[2]), 2, 0)
    });
    check(&f, "conv2d_lenet_c1", 3, 1e-5, |t| {
        t[0].conv2d(&t[1], Some(&t[2]), 1, 2)
    });
    check(&f, "conv2d_nobias", 2, 1e-5, |t| {
        t[0].conv2d(&t[1], None, 1, 0)
    });
    check(&f, "max_pool2d", 1, 1e-6, |t| t[0].max_pool2d(2, 2));
    check(&f, "max_pool2d_k3s2", 1, 1e-6, |t| t[0].max_pool2d(3, 2));
    check(&f, "avg_pool2d", 1, 1e-6, |t| t[0].avg_pool2d(2, 2));
    check(&f, "avg_pool2d_k3s2", 1, 1e-6, |t| t[0].avg_pool2d(3, 2));
}

#[test]
fn lenet5_forward_and_backward_match_pytorch() {
    let f = fixtures();
    let labels = f["lenet5.idx"].clone();
    check(&f, "lenet5", 11, 1e-4, |t| {
        let h = t[0]
            .conv2d(&t[1], Some(&t[2]), 1, 2)?
            .relu()?
            .max_pool2d(2, 2)?;
        let h = h
            .conv2d(&t[3], Some(&t[4]), 1, 0)?
            .relu()?
            .max_pool2d(2, 2)?;
        let h = h
            .conv2d(&t[5], Some(&t[6]), 1, 0)?
            .relu()?
            .flatten_from(1)?;
        let h = h.matmul(&t[7].t()?)?.add(&t[8])?.relu()?;
        h.matmul(&t[9].t()?)?
            .add(&t[10])?
            .cross_entropy(&labels, None)
    });
}
