//! Autograd semantics users of PyTorch rely on.

use kindling_tensor::{no_grad, Tensor};

fn t(v: &[f32], shape: &[usize]) -> Tensor {
    Tensor::from_slice(v, shape).unwrap()
}

#[test]
fn gradients_accumulate_across_backward_calls() {
    let x = t(&[1.0, 2.0], &[2]).requires_grad_(true);
    for _ in 0..2 {
        x.mul_scalar(3.0)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
    }
    assert_eq!(x.grad().unwrap().to_vec_f32().unwrap(), vec![6.0, 6.0]);
    x.zero_grad();
    assert!(x.grad().is_none());
}

#[test]
fn a_tensor_used_twice_gets_both_contributions() {
    let x = t(&[3.0], &[1]).requires_grad_(true);
    let y = x.mul(&x).unwrap().add(&x).unwrap().sum_all().unwrap(); // x^2 + x
    y.backward().unwrap();
    assert_eq!(x.grad().unwrap().to_vec_f32().unwrap(), vec![7.0]);
}

#[test]
fn no_grad_records_nothing_and_detach_cuts_the_graph() {
    let x = t(&[1.0, 2.0], &[2]).requires_grad_(true);
    {
        let _g = no_grad();
        let y = x.exp().unwrap();
        assert!(!y.requires_grad());
    }
    let y = x.exp().unwrap();
    assert!(y.requires_grad() && y.op_name() == Some("exp"));
    let d = y.detach();
    assert!(!d.requires_grad() && d.shares_storage_with(&y));
    assert!(d.sum_all().unwrap().backward().is_err());
}

#[test]
fn broadcast_gradients_are_reduced_to_the_input_shape() {
    let a = t(&[1.0; 6], &[2, 3]).requires_grad_(true);
    let b = t(&[1.0, 2.0, 3.0], &[3]).requires_grad_(true);
    a.mul(&b).unwrap().sum_all().unwrap().backward().unwrap();
    assert_eq!(b.grad().unwrap().shape(), &[3]);
    assert_eq!(b.grad().unwrap().to_vec_f32().unwrap(), vec![2.0, 2.0, 2.0]);
    assert_eq!(
        a.grad().unwrap().to_vec_f32().unwrap(),
        vec![1.0, 2.0, 3.0, 1.0, 2.0, 3.0]
    );
}

#[test]
fn backward_needs_a_scalar() {
    let x = t(&[1.0, 2.0], &[2]).requires_grad_(true);
    let err = x.exp().unwrap().backward().unwrap_err().to_string();
    assert!(err.contains("scalar"), "{err}");
}

#[test]
fn views_share_storage_and_contiguous_copies() {
    let x = Tensor::arange(0.0, 6.0, 1.0)
        .unwrap()
        .reshape(&[2, 3])
        .unwrap();
    let tt = x.t().unwrap();
    assert!(tt.shares_storage_with(&x) && !tt.is_contiguous());
    assert_eq!(tt.to_vec_f32().unwrap(), vec![0.0, 3.0, 1.0, 4.0, 2.0, 5.0]);
    let n = x.narrow(1, 1, 2).unwrap();
    assert!(n.shares_storage_with(&x));
    assert_eq!(n.to_vec_f32().unwrap(), vec![1.0, 2.0, 4.0, 5.0]);
    let e = t(&[7.0], &[1]).expand(&[2, 3]).unwrap();
    assert_eq!(e.to_vec_f32().unwrap(), vec![7.0; 6]);
    let c = tt.contiguous().unwrap();
    assert!(c.is_contiguous() && !c.shares_storage_with(&x));
}

#[test]
fn shape_errors_name_the_op_and_shapes() {
    let a = Tensor::zeros(&[2, 3]);
    let b = Tensor::zeros(&[4, 5]);
    let msg = a.matmul(&b).unwrap_err().to_string();
    assert!(msg.contains("matmul") && msg.contains("[2, 3]"), "{msg}");
    let msg = a.add(&b).unwrap_err().to_string();
    assert!(msg.contains("add") && msg.contains("broadcast"), "{msg}");
    let msg = a.reshape(&[7]).unwrap_err().to_string();
    assert!(msg.contains("reshape"), "{msg}");
}

#[test]
fn dtypes_convert_and_f32_ops_reject_others() {
    use kindling_tensor::DType;
    let x = t(&[1.5, -2.25], &[2]);
    for dt in [DType::F16, DType::BF16] {
        let y = x.to_dtype(dt).unwrap();
        assert_eq!(y.dtype(), dt);
        assert_eq!(
            y.to_dtype(DType::F32).unwrap().to_vec_f32().unwrap(),
            vec![1.5, -2.25]
        );
        let err = y.exp().unwrap_err().to_string();
        assert!(err.contains("exp") && err.contains("f32"), "{err}");
    }
    assert_eq!(
        x.to_dtype(DType::I64).unwrap().to_vec_i64().unwrap(),
        vec![1, -2]
    );
}

#[test]
fn vector_dot_product_is_a_scalar_with_gradients() {
    let a = t(&[1.0, 2.0, 3.0], &[3]).requires_grad_(true);
    let b = t(&[4.0, 5.0, 6.0], &[3]);
    let d = a.matmul(&b).unwrap();
    assert_eq!(d.shape(), &[] as &[usize]);
    assert_eq!(d.item().unwrap(), 32.0);
    d.backward().unwrap();
    assert_eq!(a.grad().unwrap().to_vec_f32().unwrap(), vec![4.0, 5.0, 6.0]);
}

#[test]
fn empty_views_read_as_empty() {
    let z = Tensor::zeros(&[3, 0]);
    assert!(z.t().unwrap().to_vec_f32().unwrap().is_empty());
    assert!(Tensor::zeros(&[0, 1])
        .expand(&[0, 3])
        .unwrap()
        .to_vec_f32()
        .unwrap()
        .is_empty());
}

#[test]
fn max_pool_of_an_all_minus_infinity_window_keeps_the_gradient_inside_it() {
    // 1x1x3x3, kernel 2 stride 1: the bottom-right window is all -inf.
    let mut v = vec![0.0f32; 9];
    for i in [4, 5, 7, 8] {
        v[i] = f32::NEG_INFINITY;
    }
    let x = t(&v, &[1, 1, 3, 3]).requires_grad_(true);
    let y = x.max_pool2d(2, 1).unwrap();
    let g = t(&[0.0, 0.0, 0.0, 1.0], &[1, 1, 2, 2]);
    y.mul(&g).unwrap().sum_all().unwrap().backward().unwrap();
    let gx = x.grad().unwrap().to_vec_f32().unwrap();
    assert_eq!(
        gx[4], 1.0,
        "first element of the window, not pixel 0: {gx:?}"
    );
}

#[test]
fn a_leaf_frozen_in_place_gets_no_gradient_and_records_no_graph() {
    let w = Tensor::from_vec(vec![1.0, 2.0], &[2])
        .unwrap()
        .requires_grad_(true);
    let b = Tensor::from_vec(vec![3.0, 4.0], &[2])
        .unwrap()
        .requires_grad_(true);
    let handle = w.clone();
    w.set_requires_grad(false).unwrap();
    assert!(!handle.requires_grad(), "every handle sees the flag");
    // Only b needs a gradient: w*w is computed without a graph node.
    let ww = w.mul(&w).unwrap();
    assert!(ww.op_name().is_none());
    ww.add(&b).unwrap().sum_all().unwrap().backward().unwrap();
    assert!(w.grad().is_none());
    assert_eq!(b.grad().unwrap().to_vec_f32().unwrap(), vec![1.0, 1.0]);
    // Not a leaf: an op's result requires a gradient because its inputs do.
    let y = b.mul(&b).unwrap();
    assert!(y.set_requires_grad(false).is_err());
}
