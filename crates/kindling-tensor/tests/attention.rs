//! Fused causal attention: finite differences, and agreement with the same
//! math composed from matmul, masked_fill and softmax.

use kindling_tensor::gradcheck::gradcheck;
use kindling_tensor::{Result, Rng, Tensor};

fn composite(q: &Tensor, k: &Tensor, v: &Tensor) -> Result<Tensor> {
    let t = q.shape()[2];
    let d = q.shape()[3] as f32;
    let mask: Vec<f32> = (0..t * t)
        .map(|i| ((i % t) > (i / t)) as u8 as f32)
        .collect();
    let mask = Tensor::from_vec(mask, &[t, t])?;
    q.matmul(&k.t()?)?
        .mul_scalar(1.0 / d.sqrt())?
        .masked_fill(&mask, f32::NEG_INFINITY)?
        .softmax(-1)?
        .matmul(v)
}

#[test]
fn causal_attention_matches_finite_differences() {
    let mut rng = Rng::new(31);
    let shape = [2, 2, 5, 3];
    let qkv: Vec<Tensor> = (0..3)
        .map(|_| Tensor::randn(&shape, 0.0, 1.0, &mut rng))
        .collect();
    gradcheck(&qkv, |t| t[0].causal_attention(&t[1], &t[2])).unwrap();
    // Non-contiguous inputs (heads split by a transpose, as in GPT).
    let x: Vec<Tensor> = (0..3)
        .map(|_| Tensor::randn(&[2, 5, 2, 3], 0.0, 1.0, &mut rng))
        .collect();
    gradcheck(&x, |t| {
        t[0].transpose(1, 2)?
            .causal_attention(&t[1].transpose(1, 2)?, &t[2].transpose(1, 2)?)
    })
    .unwrap();
}

#[test]
fn fused_attention_equals_the_composed_ops() {
    // T = 7 fits one block of the causal products; T = 70 takes three.
    fused_equals_composed(&[2, 3, 7, 4]);
    fused_equals_composed(&[1, 2, 70, 3]);
}

fn fused_equals_composed(shape: &[usize]) {
    let mut rng = Rng::new(32);
    let t = shape[2];
    let leaves: Vec<Tensor> = (0..3)
        .map(|_| Tensor::randn(shape, 0.0, 1.0, &mut rng).requires_grad_(true))
        .collect();
    let copies: Vec<Tensor> = leaves
        .iter()
        .map(|t| t.copy().unwrap().requires_grad_(true))
        .collect();
    let gout = Tensor::randn(shape, 0.0, 1.0, &mut rng);
    let (fused, probs) = leaves[0]
        .causal_attention_with_probs(&leaves[1], &leaves[2])
        .unwrap();
    let reference = composite(&copies[0], &copies[1], &copies[2]).unwrap();
    let close = |a: &Tensor, b: &Tensor| {
        for (x, y) in a.to_vec_f32().unwrap().iter().zip(b.to_vec_f32().unwrap()) {
            assert!((x - y).abs() < 1e-5, "{x} vs {y}");
        }
    };
    close(&fused, &reference);
    fused
        .mul(&gout)
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    reference
        .mul(&gout)
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    for (a, b) in leaves.iter().zip(&copies) {
        close(&a.grad().unwrap(), &b.grad().unwrap());
    }
    // Probabilities: rows sum to one, nothing above the diagonal.
    let p = probs.to_vec_f32().unwrap();
    for row in p.chunks(t).take(t) {
        assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-5);
    }
    assert_eq!(p[1], 0.0);
}

#[test]
fn packed_qkv_attention_matches_finite_differences_and_the_split_heads_op() {
    let mut rng = Rng::new(33);
    let (b, t, h, d) = (2, 5, 3, 2);
    let c = h * d;
    let qkv = Tensor::randn(&[b, t, 3 * c], 0.0, 1.0, &mut rng);
    gradcheck(std::slice::from_ref(&qkv), |x| {
        Ok(x[0].causal_self_attention(h)?.0)
    })
    .unwrap();
    // Longer than one block of the causal products (32): two blocks.
    let long = Tensor::randn(&[1, 40, 6], 0.0, 1.0, &mut rng);
    gradcheck(std::slice::from_ref(&long), |x| {
        Ok(x[0].causal_self_attention(1)?.0)
    })
    .unwrap();
    // Same numbers as splitting the heads out and calling causal_attention.
    let (y, probs) = qkv.causal_self_attention(h).unwrap();
    let head = |i: usize| {
        qkv.narrow(-1, i * c, c)
            .unwrap()
            .reshape(&[b, t, h, d])
            .unwrap()
            .transpose(1, 2)
            .unwrap()
    };
    let want = composite(&head(0), &head(1), &head(2))
        .unwrap()
        .transpose(1, 2)
        .unwrap()
        .reshape(&[b, t, c])
        .unwrap();
    for (x, y) in y
        .to_vec_f32()
        .unwrap()
        .iter()
        .zip(want.to_vec_f32().unwrap())
    {
        assert!((x - y).abs() < 1e-5, "{x} vs {y}");
    }
    assert_eq!(probs.shape(), [b, h, t, t]);
    // A shape that does not split into heads is refused, naming the op.
    let err = qkv.causal_self_attention(4).unwrap_err().to_string();
    assert!(err.contains("causal_self_attention"), "{err}");
}

/// Keys and values `[B, Tk, H_kv, D]` as a KV cache holds them: a view of
/// the first `tk` positions of a larger buffer (a strided view).
fn cached_view(b: usize, tk: usize, kvh: usize, d: usize, rng: &mut Rng) -> Tensor {
    Tensor::randn(&[b, tk + 7, kvh, d], 0.0, 1.0, rng)
        .narrow(1, 0, tk)
        .unwrap()
}

#[test]
fn attention_over_a_kv_cache_equals_the_composed_ops_and_their_gradient() {
    let mut rng = Rng::new(8);
    // (batch, new positions, past, heads, kv heads, head size): one decoding
    // step, a prompt continuing a cache (the mask matters), grouped-query.
    for (b, t, past, h, kvh, d) in [
        (1, 1, 9, 9, 3, 64),
        (2, 4, 5, 4, 2, 8),
        (1, 3, 0, 2, 2, 5),
        (1, 40, 200, 6, 3, 16),
    ] {
        let q = Tensor::randn(&[b, t, h, d], 0.0, 1.0, &mut rng);
        let (k, v) = (
            cached_view(b, past + t, kvh, d, &mut rng),
            cached_view(b, past + t, kvh, d, &mut rng),
        );
        let fused = {
            let _g = kindling_tensor::no_grad();
            q.attend_kv(&k, &v, past).unwrap()
        };
        // With a gradient to record, the op runs as composite ops.
        let qg = q.detach().requires_grad_(true);
        let composed = qg.attend_kv(&k, &v, past).unwrap();
        assert_eq!(fused.shape(), &[b, t, h * d]);
        let (a, c) = (fused.to_vec_f32().unwrap(), composed.to_vec_f32().unwrap());
        let worst = a
            .iter()
            .zip(&c)
            .map(|(x, y)| (x - y).abs())
            .fold(0f32, f32::max);
        assert!(
            worst < 1e-5,
            "{b} {t} {past} {h} {kvh} {d}: differ by {worst}"
        );
    }
    // The composite path's gradient, by finite differences (GQA, past > 0).
    let inputs = vec![
        Tensor::randn(&[1, 2, 4, 3], 0.0, 1.0, &mut rng),
        Tensor::randn(&[1, 5, 2, 3], 0.0, 1.0, &mut rng),
        Tensor::randn(&[1, 5, 2, 3], 0.0, 1.0, &mut rng),
    ];
    gradcheck(&inputs, |t| t[0].attend_kv(&t[1], &t[2], 3)).unwrap();
    let e = inputs[0]
        .attend_kv(&inputs[1], &inputs[2], 2)
        .unwrap_err()
        .to_string();
    assert!(e.contains("attend_kv"), "{e}");
}

#[test]
fn assign_writes_into_a_view_in_place() {
    let buffer = Tensor::zeros(&[2, 4, 3]);
    let src = Tensor::from_vec((1..=12).map(|x| x as f32).collect(), &[2, 2, 3]).unwrap();
    // A strided source: the same values through a transposed layout.
    let src_t = src
        .transpose(1, 2)
        .unwrap()
        .contiguous()
        .unwrap()
        .transpose(1, 2)
        .unwrap();
    assert!(!src_t.layout().is_contiguous());
    buffer.narrow(1, 1, 2).unwrap().assign_(&src_t).unwrap();
    let got = buffer.to_vec_f32().unwrap();
    let want: Vec<f32> = [
        [0., 0., 0.],
        [1., 2., 3.],
        [4., 5., 6.],
        [0., 0., 0.],
        [0., 0., 0.],
        [7., 8., 9.],
        [10., 11., 12.],
        [0., 0., 0.],
    ]
    .concat();
    assert_eq!(got, want);
    assert!(buffer
        .narrow(1, 0, 2)
        .unwrap()
        .assign_(&src.narrow(1, 0, 1).unwrap())
        .is_err());
    assert!(buffer
        .narrow(1, 0, 2)
        .unwrap()
        .assign_(&buffer.narrow(1, 2, 2).unwrap())
        .is_err());
}
