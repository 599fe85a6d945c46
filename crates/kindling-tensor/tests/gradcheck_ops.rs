//! Every differentiable op against central finite differences, on random
//! shapes, with broadcasting and non-contiguous (transposed, narrowed,
//! expanded) inputs where the op accepts them.

use kindling_tensor::gradcheck::{gradcheck, GradCheck};
use kindling_tensor::{cat, stack, where_cond, Result, Rng, Tensor};

fn randn(shape: &[usize], rng: &mut Rng) -> Tensor {
    Tensor::randn(shape, 0.0, 1.0, rng)
}

/// Values bounded away from zero (for abs/relu/step kinks) and positive ones.
fn away_from_zero(shape: &[usize], rng: &mut Rng) -> Tensor {
    let n = shape.iter().product();
    let v = (0..n)
        .map(|_| {
            let m = rng.uniform_range(0.2, 2.0);
            if rng.uniform() < 0.5 {
                -m
            } else {
                m
            }
        })
        .collect();
    Tensor::from_vec(v, shape).unwrap()
}

fn positive(shape: &[usize], rng: &mut Rng) -> Tensor {
    Tensor::rand(shape, 0.5, 2.0, rng)
}

fn random_shape(rng: &mut Rng, rank: usize) -> Vec<usize> {
    (0..rank).map(|_| 1 + rng.below(4)).collect()
}

/// Checks `f` on contiguous input and on a transposed view of the same data.
fn check_unary(
    name: &str,
    make: fn(&[usize], &mut Rng) -> Tensor,
    f: fn(&Tensor) -> Result<Tensor>,
) {
    let mut rng = Rng::new(name.len() as u64);
    for trial in 0..3 {
        let shape = random_shape(&mut rng, 2 + trial % 2);
        let x = make(&shape, &mut rng);
        gradcheck(std::slice::from_ref(&x), |xs| f(&xs[0]))
            .unwrap_or_else(|e| panic!("{name} {shape:?}: {e}"));
        gradcheck(std::slice::from_ref(&x), |xs| f(&xs[0].transpose(0, -1)?))
            .unwrap_or_else(|e| panic!("{name} transposed {shape:?}: {e}"));
    }
}

#[test]
fn unary_ops_match_finite_differences() {
    check_unary("neg", randn, |x| x.neg());
    check_unary("exp", randn, |x| x.exp());
    check_unary("log", positive, |x| x.log());
    check_unary("sqrt", positive, |x| x.sqrt());
    check_unary("abs", away_from_zero, |x| x.abs());
    check_unary("tanh", randn, |x| x.tanh());
    check_unary("sigmoid", randn, |x| x.sigmoid());
    check_unary("relu", away_from_zero, |x| x.relu());
    check_unary("gelu_tanh", randn, |x| x.gelu());
    check_unary("gelu_erf", randn, |x| x.gelu_erf());
    check_unary("powf", positive, |x| x.powf(2.5));
    check_unary("affine", randn, |x| x.affine(-1.5, 0.3));
    check_unary("sqr", randn, |x| x.sqr());
}

#[test]
fn step_has_no_gradient_and_thresholds_at_zero() {
    let x = Tensor::from_vec(vec![-1.0, 0.0, 0.5], &[3])
        .unwrap()
        .requires_grad_(true);
    let y = x.step().unwrap();
    assert_eq!(y.to_vec_f32().unwrap(), vec![0.0, 0.0, 1.0]);
    // Through step nothing flows back: the sum does not depend on x locally.
    let z = y.mul(&x).unwrap().sum_all().unwrap();
    z.backward().unwrap();
    assert_eq!(x.grad().unwrap().to_vec_f32().unwrap(), vec![0.0, 0.0, 1.0]);
}

#[test]
fn binary_ops_with_broadcasting_match_finite_differences() {
    let mut rng = Rng::new(11);
    let pairs: [(&[usize], &[usize]); 4] = [
        (&[3, 4], &[3, 4]),
        (&[3, 4], &[4]),
        (&[2, 3, 1], &[3, 5]),
        (&[1], &[2, 3]),
    ];
    for (sa, sb) in pairs {
        let a = randn(sa, &mut rng);
        let b = randn(sb, &mut rng);
        let bp = positive(sb, &mut rng);
        for (name, f) in [
            (
                "add",
                (|x: &[Tensor]| x[0].add(&x[1])) as fn(&[Tensor]) -> Result<Tensor>,
            ),
            ("sub", |x| x[0].sub(&x[1])),
            ("mul", |x| x[0].mul(&x[1])),
        ] {
            gradcheck(&[a.clone(), b.clone()], f)
                .unwrap_or_else(|e| panic!("{name} {sa:?} {sb:?}: {e}"));
        }
        gradcheck(&[a.clone(), bp], |x| x[0].div(&x[1]))
            .unwrap_or_else(|e| panic!("div {sa:?} {sb:?}: {e}"));
    }
    // Non-contiguous operands: a transposed lhs and an expanded rhs.
    let a = randn(&[4, 3], &mut rng);
    let b = randn(&[1, 4], &mut rng);
    gradcheck(&[a, b], |x| x[0].t()?.mul(&x[1].expand(&[3, 4])?)).unwrap();
}

#[test]
fn maximum_routes_gradient_to_the_larger() {
    let mut rng = Rng::new(5);
    let a = away_from_zero(&[3, 4], &mut rng);
    let b = away_from_zero(&[3, 4], &mut rng).affine(1.0, 0.05).unwrap();
    gradcheck(&[a, b], |x| x[0].maximum(&x[1])).unwrap();
}

#[test]
fn reductions_match_finite_differences() {
    let mut rng = Rng::new(3);
    let x = randn(&[3, 4, 5], &mut rng);
    gradcheck(std::slice::from_ref(&x), |x| x[0].sum(&[1], false)).unwrap();
    gradcheck(std::slice::from_ref(&x), |x| x[0].sum(&[0, 2], true)).unwrap();
    gradcheck(std::slice::from_ref(&x), |x| x[0].sum_all()).unwrap();
    gradcheck(std::slice::from_ref(&x), |x| x[0].mean(&[-1], false)).unwrap();
    gradcheck(std::slice::from_ref(&x), |x| x[0].mean_all()).unwrap();
    gradcheck(std::slice::from_ref(&x), |x| x[0].max(1, false)).unwrap();
    gradcheck(std::slice::from_ref(&x), |x| x[0].max(-1, true)).unwrap();
    gradcheck(std::slice::from_ref(&x), |x| {
        x[0].permute(&[2, 0, 1])?.sum(&[0], false)
    })
    .unwrap();
    gradcheck(std::slice::from_ref(&x), |x| {
        x[0].narrow(1, 1, 2)?.max(0, false)
    })
    .unwrap();
}

#[test]
fn matmul_matches_finite_differences_for_all_shape_rules() {
    let mut rng = Rng::new(4);
    let cases: [(&[usize], &[usize]); 6] = [
        (&[3, 4], &[4, 5]),
        (&[2, 3, 4], &[2, 4, 5]),
        (&[2, 3, 4], &[4, 5]),
        (&[4], &[4, 5]),
        (&[3, 4], &[4]),
        (&[2, 1, 3, 4], &[3, 4, 2]),
    ];
    for (sa, sb) in cases {
        let (a, b) = (randn(sa, &mut rng), randn(sb, &mut rng));
        gradcheck(&[a, b], |x| x[0].matmul(&x[1]))
            .unwrap_or_else(|e| panic!("{sa:?} @ {sb:?}: {e}"));
    }
    // Transposed operands go to gemm as strides, without a copy.
    let (a, b) = (randn(&[4, 3], &mut rng), randn(&[5, 4], &mut rng));
    gradcheck(&[a, b], |x| x[0].t()?.matmul(&x[1].t()?)).unwrap();
}

#[test]
fn linear_matches_finite_differences_and_matmul_plus_bias() {
    let mut rng = Rng::new(14);
    for x_shape in [&[5, 4][..], &[2, 3, 4], &[4]] {
        let (x, w, b) = (
            randn(x_shape, &mut rng),
            randn(&[3, 4], &mut rng),
            randn(&[3], &mut rng),
        );
        gradcheck(&[x.clone(), w.clone(), b.clone()], |t| {
            t[0].linear(&t[1], Some(&t[2]))
        })
        .unwrap_or_else(|e| panic!("{x_shape:?} with bias: {e}"));
        gradcheck(&[x.clone(), w.clone()], |t| t[0].linear(&t[1], None))
            .unwrap_or_else(|e| panic!("{x_shape:?} without bias: {e}"));
        let fused = x.linear(&w, Some(&b)).unwrap().to_vec_f32().unwrap();
        let composed = x.matmul(&w.t().unwrap()).unwrap().add(&b).unwrap();
        for (p, q) in fused.iter().zip(composed.to_vec_f32().unwrap()) {
            assert!((p - q).abs() < 1e-5, "{p} vs {q}");
        }
    }
    // fan_in a multiple of 256 takes the transposed-copy path.
    let (x, w, b) = (
        randn(&[64, 256], &mut rng),
        randn(&[5, 256], &mut rng),
        randn(&[5], &mut rng),
    );
    let fused = x.linear(&w, Some(&b)).unwrap().to_vec_f32().unwrap();
    let composed = x.matmul(&w.t().unwrap()).unwrap().add(&b).unwrap();
    for (p, q) in fused.iter().zip(composed.to_vec_f32().unwrap()) {
        assert!((p - q).abs() < 1e-4, "{p} vs {q}");
    }
    // No input features: the output is the bias on every row.
    let y = Tensor::zeros(&[4, 0])
        .linear(
            &Tensor::zeros(&[3, 0]),
            Some(&Tensor::from_vec(vec![1.0, 2.0, 3.0], &[3]).unwrap()),
        )
        .unwrap();
    assert_eq!(y.shape(), [4, 3]);
    assert_eq!(y.to_vec_f32().unwrap(), [1.0, 2.0, 3.0].repeat(4));
    // A transposed (non-contiguous) input, and a shape mismatch named.
    let x = randn(&[4, 5], &mut rng);
    let w = randn(&[3, 4], &mut rng);
    gradcheck(&[x.clone(), w.clone()], |t| t[0].t()?.linear(&t[1], None)).unwrap();
    let err = x.linear(&w, None).unwrap_err().to_string();
    assert!(err.contains("linear"), "{err}");
}

#[test]
fn softmax_family_matches_finite_differences() {
    let mut rng = Rng::new(8);
    let x = randn(&[3, 6], &mut rng);
    gradcheck(std::slice::from_ref(&x), |x| x[0].softmax(-1)).unwrap();
    gradcheck(std::slice::from_ref(&x), |x| x[0].softmax(0)).unwrap();
    gradcheck(std::slice::from_ref(&x), |x| x[0].log_softmax(-1)).unwrap();
    gradcheck(std::slice::from_ref(&x), |x| x[0].log_softmax(0)).unwrap();
    gradcheck(std::slice::from_ref(&x), |x| x[0].t()?.log_softmax(-1)).unwrap();
}

#[test]
fn losses_match_finite_differences() {
    let mut rng = Rng::new(9);
    let logits = randn(&[5, 4], &mut rng);
    let targets = Tensor::from_vec_i64(vec![0, 3, -100, 1, 1], &[5]).unwrap();
    gradcheck(std::slice::from_ref(&logits), |x| {
        x[0].cross_entropy(&targets, Some(-100))
    })
    .unwrap();
    let seq_logits = randn(&[2, 3, 4], &mut rng);
    let seq_targets = Tensor::from_vec_i64(vec![0, 1, 2, 3, 2, 1], &[2, 3]).unwrap();
    gradcheck(std::slice::from_ref(&seq_logits), |x| {
        x[0].cross_entropy(&seq_targets, None)
    })
    .unwrap();
    let (a, b) = (randn(&[4, 3], &mut rng), randn(&[4, 3], &mut rng));
    gradcheck(&[a, b], |x| x[0].mse_loss(&x[1])).unwrap();
}

#[test]
fn where_and_masked_fill_match_finite_differences() {
    let mut rng = Rng::new(10);
    let mask = Tensor::rand(&[3, 4], 0.0, 1.0, &mut rng)
        .gt(&Tensor::scalar(0.5))
        .unwrap();
    let (a, b) = (randn(&[3, 4], &mut rng), randn(&[4], &mut rng));
    gradcheck(&[a.clone(), b], |x| where_cond(&mask, &x[0], &x[1])).unwrap();
    gradcheck(std::slice::from_ref(&a), |x| x[0].masked_fill(&mask, -3.0)).unwrap();
}

#[test]
fn joining_and_indexing_match_finite_differences() {
    let mut rng = Rng::new(12);
    let (a, b) = (randn(&[2, 3], &mut rng), randn(&[2, 4], &mut rng));
    gradcheck(&[a.clone(), b], |x| cat(&[&x[0], &x[1]], 1)).unwrap();
    let c = randn(&[2, 3], &mut rng);
    gradcheck(&[a.clone(), c], |x| stack(&[&x[0], &x[1]], 1)).unwrap();

    let table = randn(&[5, 3], &mut rng);
    let idx = Tensor::from_vec_i64(vec![4, 0, 4, 2], &[4]).unwrap();
    gradcheck(std::slice::from_ref(&table), |x| x[0].index_select(0, &idx)).unwrap();
    gradcheck(std::slice::from_ref(&table), |x| {
        x[0].index_select(1, &Tensor::from_vec_i64(vec![2, 2, 0], &[3])?)
    })
    .unwrap();
    let gidx = Tensor::from_vec_i64(vec![1, 1, 0, 2, 2, 0, 2, 2, 1, 0], &[5, 2]).unwrap();
    gradcheck(std::slice::from_ref(&table), |x| x[0].gather(1, &gidx)).unwrap();
    let ids = Tensor::from_vec_i64(vec![1, 3, 1, 0, 4, 1], &[2, 3]).unwrap();
    gradcheck(std::slice::from_ref(&table), |x| x[0].embedding(&ids)).unwrap();
}

#[test]
fn layer_norm_matches_finite_differences() {
    let mut rng = Rng::new(14);
    let (x, w, b) = (
        randn(&[3, 6], &mut rng),
        randn(&[6], &mut rng),
        randn(&[6], &mut rng),
    );
    gradcheck(&[x, w, b], |x| x[0].layer_norm(&x[1], &x[2], 1e-5)).unwrap();
}

#[test]
fn batch_norm_matches_finite_differences() {
    let mut rng = Rng::new(15);
    // A feature map [N, C, H, W] and a plain [N, C]; training mode (the
    // batch's statistics, through which the gradient flows) and evaluation
    // mode (given statistics, constants).
    for shape in [vec![3, 2, 2, 3], vec![5, 3]] {
        let c = shape[1];
        let (x, w, b) = (
            randn(&shape, &mut rng),
            randn(&[c], &mut rng),
            randn(&[c], &mut rng),
        );
        gradcheck(&[x.clone(), w.clone(), b.clone()], |x| {
            Ok(x[0].batch_norm_train(&x[1], &x[2], 1e-5)?.0)
        })
        .unwrap_or_else(|e| panic!("train {shape:?}: {e}"));
        let (mean, var) = (randn(&[c], &mut rng), positive(&[c], &mut rng));
        gradcheck(&[x, w, b], |x| {
            x[0].batch_norm_eval(&x[1], &x[2], &mean, &var, 1e-5)
        })
        .unwrap_or_else(|e| panic!("eval {shape:?}: {e}"));
    }
    // A transposed (non-contiguous) input.
    let x = randn(&[3, 4, 2], &mut rng);
    let (w, b) = (randn(&[2], &mut rng), randn(&[2], &mut rng));
    gradcheck(&[x, w, b], |x| {
        Ok(x[0]
            .transpose(1, 2)?
            .batch_norm_train(&x[1], &x[2], 1e-5)?
            .0)
    })
    .unwrap();
}

#[test]
fn views_pass_gradients_through() {
    let mut rng = Rng::new(13);
    let x = randn(&[2, 3, 4], &mut rng);
    gradcheck(std::slice::from_ref(&x), |x| {
        x[0].reshape(&[6, 4])?.t()?.exp()
    })
    .unwrap();
    gradcheck(std::slice::from_ref(&x), |x| x[0].narrow(2, 1, 2)?.tanh()).unwrap();
    gradcheck(std::slice::from_ref(&x), |x| {
        x[0].unsqueeze(1)?.expand(&[2, 5, 3, 4])?.sigmoid()
    })
    .unwrap();
    gradcheck(std::slice::from_ref(&x), |x| {
        x[0].transpose(0, 2)?
            .contiguous()?
            .squeeze(-1)
            .or_else(|_| x[0].sum(&[0], false))
    })
    .unwrap();
    gradcheck(std::slice::from_ref(&x), |x| {
        x[0].permute(&[1, 2, 0])?.flatten_from(1)?.sqr()
    })
    .unwrap();
}

#[test]
fn gradcheck_catches_a_wrong_gradient() {
    // The value depends on x through a detached path, so autograd reports 0
    // while finite differences see 2x: the checker must fail.
    let x = Tensor::from_vec(vec![0.3, -0.7, 1.1], &[3]).unwrap();
    let bad =
        GradCheck::default().check(&[x], |x| x[0].detach().sqr()?.add(&x[0].mul_scalar(0.0)?));
    assert!(bad.is_err());
}

#[test]
fn gelu_erf_gives_the_same_values_with_and_without_autograd() {
    // Training computes GELU and its derivative in one fused pass; the
    // values must equal the inference path's bit for bit.
    let x = Tensor::arange(-6.0, 6.0, 0.01).unwrap();
    let plain = x.gelu_erf().unwrap().to_vec_f32().unwrap();
    let tracked = x
        .clone()
        .requires_grad_(true)
        .gelu_erf()
        .unwrap()
        .to_vec_f32()
        .unwrap();
    assert_eq!(plain, tracked);
}
