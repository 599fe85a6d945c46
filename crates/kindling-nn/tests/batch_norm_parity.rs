//! `BatchNorm2d` against PyTorch's `nn.BatchNorm2d`
//! (`tools/gen_batch_norm_fixture.py`, computed in f64): the training
//! forward and its input, weight and bias gradients, the running statistics
//! after one and two training batches, and the evaluation forward and
//! gradients with those statistics.

use kindling_nn::{BatchNorm2d, Module};
use kindling_tensor::{safetensors_io, Tensor};
use std::collections::HashMap;
use std::path::Path;

fn fixture() -> HashMap<String, Tensor> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/batch_norm.safetensors");
    safetensors_io::load(&path).expect("fixture present").0
}

/// f32 against f64 rounded to f32: a few ulps of values of size ~10.
fn assert_close(what: &str, got: &Tensor, want: &Tensor) {
    assert_eq!(got.shape(), want.shape(), "{what}");
    let (g, w) = (got.to_vec_f32().unwrap(), want.to_vec_f32().unwrap());
    for (i, (a, b)) in g.iter().zip(&w).enumerate() {
        assert!(
            (a - b).abs() <= 1e-5 + 1e-5 * b.abs(),
            "{what}[{i}]: kindling {a} vs pytorch {b}"
        );
    }
}

/// Forward of `x` and the gradients of sum(out * gout), checked against `case`.
fn check(f: &HashMap<String, Tensor>, bn: &BatchNorm2d, case: &str, x: &str) {
    bn.weight.zero_grad();
    bn.bias.zero_grad();
    let x = f[x].clone().requires_grad_(true);
    let out = bn.forward(&x).unwrap();
    assert_close(&format!("{case}.out"), &out, &f[&format!("{case}.out")]);
    out.mul(&f[&format!("{case}.gout")])
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    for (name, t) in [("grad_x", &x), ("grad_w", &bn.weight), ("grad_b", &bn.bias)] {
        let key = format!("{case}.{name}");
        assert_close(&key, &t.grad().expect("a gradient"), &f[&key]);
    }
}

#[test]
fn batch_norm_matches_pytorch_in_training_and_evaluation() {
    let f = fixture();
    let bn = BatchNorm2d::new(3);
    bn.weight.assign(&f["weight"]).unwrap();
    bn.bias.assign(&f["bias"]).unwrap();

    check(&f, &bn, "train1", "x1");
    assert!(bn.update_running_stats().unwrap());
    assert_close(
        "train1.running_mean",
        &bn.running_mean,
        &f["train1.running_mean"],
    );
    assert_close(
        "train1.running_var",
        &bn.running_var,
        &f["train1.running_var"],
    );

    bn.forward(&f["x2"]).unwrap();
    bn.update_running_stats().unwrap();
    assert_close(
        "train2.running_mean",
        &bn.running_mean,
        &f["train2.running_mean"],
    );
    assert_close(
        "train2.running_var",
        &bn.running_var,
        &f["train2.running_var"],
    );

    bn.set_training(false);
    check(&f, &bn, "eval", "x3");
    // Evaluation leaves the running statistics alone.
    assert!(!bn.update_running_stats().unwrap());
    assert_close(
        "eval running_mean",
        &bn.running_mean,
        &f["train2.running_mean"],
    );
}
