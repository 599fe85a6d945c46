//! Parity with PyTorch: `tools/gen_fixtures.py` stored inputs, outputs and
//! the gradients of `sum(out * gout)` (computed in f64 by PyTorch) for each
//! op in `fixtures/ops.safetensors`. We recompute them in f32 and compare.
//! Tolerance: f32 rounding of a few chained ops, ~1e-6 relative; 1e-5 leaves
//! room for different summation orders in reductions and gemm.

use kindling_tensor::{cat, safetensors_io, stack, where_cond, Result, Tensor};
use std::collections::HashMap;
use std::path::Path;

const ATOL: f32 = 1e-5;
const RTOL: f32 = 1e-5;

fn fixtures() -> HashMap<String, Tensor> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/ops.safetensors");
    safetensors_io::load(&path).expect("fixture file present").0
}

fn assert_close(what: &str, got: &Tensor, want: &Tensor) {
    assert_eq!(got.shape(), want.shape(), "{what}: shape");
    let (g, w) = (got.to_vec_f32().unwrap(), want.to_vec_f32().unwrap());
    for (i, (a, b)) in g.iter().zip(&w).enumerate() {
        assert!(
            (a - b).abs() <= ATOL + RTOL * b.abs(),
            "{what}[{i}]: kindling {a} vs pytorch {b}"
        );
    }
}

type Op = fn(&[Tensor], &HashMap<String, Tensor>, &str) -> Result<Tensor>;

fn get(f: &HashMap<String, Tensor>, case: &str, key: &str) -> Tensor {
    f.get(&format!("{case}.{key}"))
        .unwrap_or_else(|| panic!("fixture {case}.{key} missing"))
        .clone()
}

fn check_case(f: &HashMap<String, Tensor>, case: &str, n_inputs: usize, op: Op) {
    let inputs: Vec<Tensor> = (0..n_inputs)
        .map(|i| get(f, case, &format!("x{i}")).requires_grad_(true))
        .collect();
    let out = op(&inputs, f, case).unwrap_or_else(|e| panic!("{case}: {e}"));
    assert_close(&format!("{case}.out"), &out, &get(f, case, "out"));
    let gout = get(f, case, "gout");
    out.mul(&gout)
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    for (i, x) in inputs.iter().enumerate() {
        let g = x
            .grad()
            .unwrap_or_else(|| panic!("{case}: no gradient for x{i}"));
        assert_close(
            &format!("{case}.grad{i}"),
            &g,
            &get(f, case, &format!("grad{i}")),
        );
    }
}

#[test]
fn every_op_matches_pytorch_forward_and_backward() {
    let f = fixtures();
    let cases: Vec<(&str, usize, Op)> = vec![
        ("add", 2, |x, _, _| x[0].add(&x[1])),
        ("sub", 2, |x, _, _| x[0].sub(&x[1])),
        ("mul", 2, |x, _, _| x[0].mul(&x[1])),
        ("div", 2, |x, _, _| x[0].div(&x[1])),
        ("neg", 1, |x, _, _| x[0].neg()),
        ("powf", 1, |x, _, _| x[0].powf(2.5)),
        ("exp", 1, |x, _, _| x[0].exp()),
        ("log", 1, |x, _, _| x[0].log()),
        ("sqrt", 1, |x, _, _| x[0].sqrt()),
        ("abs", 1, |x, _, _| x[0].abs()),
        ("tanh", 1, |x, _, _| x[0].tanh()),
        ("sigmoid", 1, |x, _, _| x[0].sigmoid()),
        ("relu", 1, |x, _, _| x[0].relu()),
        ("gelu_tanh", 1, |x, _, _| x[0].gelu()),
        ("gelu_erf", 1, |x, _, _| x[0].gelu_erf()),
        ("sum_axis", 1, |x, _, _| x[0].sum(&[1], false)),
        ("sum_all", 1, |x, _, _| x[0].sum_all()),
        ("mean_axes", 1, |x, _, _| x[0].mean(&[0, 2], false)),
        ("max_axis", 1, |x, _, _| x[0].max(1, false)),
        ("matmul", 2, |x, _, _| x[0].matmul(&x[1])),
        ("bmm", 2, |x, _, _| x[0].matmul(&x[1])),
        ("matmul_bcast", 2, |x, _, _| x[0].matmul(&x[1])),
        ("matmul_t", 2, |x, _, _| x[0].t()?.matmul(&x[1])),
        ("softmax", 1, |x, _, _| x[0].softmax(-1)),
        ("log_softmax", 1, |x, _, _| x[0].log_softmax(-1)),
        ("cross_entropy", 1, |x, f, c| {
            x[0].cross_entropy(&get(f, c, "idx"), Some(-100))
        }),
        ("mse", 2, |x, _, _| x[0].mse_loss(&x[1])),
        ("where", 2, |x, f, c| {
            where_cond(&get(f, c, "mask"), &x[0], &x[1])
        }),
        ("masked_fill", 1, |x, f, c| {
            x[0].masked_fill(&get(f, c, "mask"), -2.0)
        }),
        ("cat", 2, |x, _, _| cat(&[&x[0], &x[1]], 1)),
        ("stack", 2, |x, _, _| stack(&[&x[0], &x[1]], 0)),
        ("index_select", 1, |x, f, c| {
            x[0].index_select(0, &get(f, c, "idx"))
        }),
        ("gather", 1, |x, f, c| x[0].gather(1, &get(f, c, "idx"))),
        ("embedding", 1, |x, f, c| x[0].embedding(&get(f, c, "idx"))),
        ("layer_norm", 3, |x, _, _| {
            x[0].layer_norm(&x[1], &x[2], 1e-5)
        }),
    ];
    for (case, n, op) in cases {
        check_case(&f, case, n, op);
    }
}

#[test]
fn argmax_matches_pytorch() {
    let f = fixtures();
    let got = get(&f, "max_axis", "x0").argmax(1, false).unwrap();
    assert_eq!(
        got.to_vec_i64().unwrap(),
        get(&f, "max_axis", "argmax").to_vec_i64().unwrap()
    );
}
