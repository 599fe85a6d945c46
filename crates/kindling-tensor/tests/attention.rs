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
