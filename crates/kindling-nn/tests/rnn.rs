//! Recurrent cells: backpropagation through time checked by finite
//! differences, and parity with `torch.nn.RNN`/`GRU`/`LSTM` (fixtures from
//! `tools/gen_rnn_fixtures.py`: PyTorch's own initialization loaded by name,
//! outputs, final states and every gradient computed in float64 by PyTorch).
//! Tolerance 1e-5: f32 rounding over five steps of a few chained ops.

use kindling_nn::rnn::{Cell, CellKind, Recurrent, State};
use kindling_nn::Module;
use kindling_tensor::gradcheck::GradCheck;
use kindling_tensor::{safetensors_io, Rng, Tensor};
use std::collections::HashMap;
use std::path::Path;

const ATOL: f32 = 1e-5;
const RTOL: f32 = 1e-5;

fn fixtures() -> HashMap<String, Tensor> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/rnn.safetensors");
    safetensors_io::load(&path).expect("fixture file present").0
}

fn get(f: &HashMap<String, Tensor>, key: &str) -> Tensor {
    f.get(key)
        .unwrap_or_else(|| panic!("fixture {key} missing"))
        .clone()
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

/// Row `d` of a `[D, B, H]` state tensor as `[B, H]`.
fn direction(t: &Tensor, d: usize) -> Tensor {
    let (b, h) = (t.shape()[1], t.shape()[2]);
    t.narrow(0, d, 1).unwrap().reshape(&[b, h]).unwrap()
}

fn parity(case: &str, kind: CellKind, bidirectional: bool) {
    let f = fixtures();
    let x = get(&f, &format!("{case}.x")).requires_grad_(true);
    let (hidden, input) = (
        get(&f, &format!("{case}.weight_hh_l0")).shape()[1],
        x.shape()[2],
    );
    let layer = Recurrent::new(kind, input, hidden, bidirectional, &mut Rng::new(0)).unwrap();
    // PyTorch's weights, loaded by PyTorch's names.
    layer
        .map_params(&mut |name, _| Ok(Some(get(&f, &format!("{case}.{name}")))))
        .unwrap();
    let h0 = get(&f, &format!("{case}.h0")).requires_grad_(true);
    let c0 = (kind == CellKind::Lstm).then(|| get(&f, &format!("{case}.c0")).requires_grad_(true));
    let init: Vec<State> = (0..layer.directions())
        .map(|d| State {
            h: direction(&h0, d),
            c: c0.as_ref().map(|c| direction(c, d)),
        })
        .collect();
    let (out, finals) = layer.forward_seq(&x, Some(&init)).unwrap();
    assert_close(
        &format!("{case}.out"),
        &out,
        &get(&f, &format!("{case}.out")),
    );
    let hn = kindling_tensor::stack(&finals.iter().map(|s| &s.h).collect::<Vec<_>>(), 0).unwrap();
    assert_close(&format!("{case}.hn"), &hn, &get(&f, &format!("{case}.hn")));
    let mut loss = out
        .mul(&get(&f, &format!("{case}.gout")))
        .unwrap()
        .sum_all()
        .unwrap()
        .add(
            &hn.mul(&get(&f, &format!("{case}.ghn")))
                .unwrap()
                .sum_all()
                .unwrap(),
        )
        .unwrap();
    if kind == CellKind::Lstm {
        let cs: Vec<&Tensor> = finals.iter().map(|s| s.c.as_ref().unwrap()).collect();
        let cn = kindling_tensor::stack(&cs, 0).unwrap();
        assert_close(&format!("{case}.cn"), &cn, &get(&f, &format!("{case}.cn")));
        let term = cn
            .mul(&get(&f, &format!("{case}.gcn")))
            .unwrap()
            .sum_all()
            .unwrap();
        loss = loss.add(&term).unwrap();
    }
    loss.backward().unwrap();
    let grad = |t: &Tensor, name: &str| {
        let g = t
            .grad()
            .unwrap_or_else(|| panic!("{case}: no gradient for {name}"));
        assert_close(
            &format!("{case}.grad.{name}"),
            &g,
            &get(&f, &format!("{case}.grad.{name}")),
        );
    };
    grad(&x, "x");
    grad(&h0, "h0");
    if let Some(c0) = &c0 {
        grad(c0, "c0");
    }
    let names = layer.named_parameters();
    assert_eq!(names.len(), 4 * layer.directions());
    for (name, p) in &names {
        grad(p, name);
    }
}

#[test]
fn rnn_layer_matches_pytorch_outputs_states_and_gradients() {
    parity("rnn", CellKind::Rnn, false);
}

#[test]
fn gru_layer_matches_pytorch_outputs_states_and_gradients() {
    parity("gru", CellKind::Gru, false);
}

#[test]
fn lstm_layer_matches_pytorch_outputs_states_and_gradients() {
    parity("lstm", CellKind::Lstm, false);
}

#[test]
fn bidirectional_gru_matches_pytorch() {
    parity("gru_bi", CellKind::Gru, true);
}

#[test]
fn bidirectional_lstm_matches_pytorch() {
    parity("lstm_bi", CellKind::Lstm, true);
}

/// Backpropagation through `steps` steps of a cell: the inputs are
/// `[x (B·T·I), h0, (c0), weight_ih, weight_hh, bias_ih, bias_hh]`, the
/// output every step's `h` (and the last `c`), so the gradient of each
/// parameter sums over all steps.
fn bptt_gradcheck(kind: CellKind) {
    let (b, t, i, h) = (2, 3, 3, 4);
    let mut rng = Rng::new(11);
    let cell = Cell::new(kind, i, h, &mut rng).unwrap();
    let x = Tensor::rand(&[b, t, i], -1.0, 1.0, &mut rng);
    let h0 = Tensor::rand(&[b, h], -0.5, 0.5, &mut rng);
    let c0 = Tensor::rand(&[b, h], -0.5, 0.5, &mut rng);
    let mut inputs = vec![x, h0, c0];
    inputs.extend(cell.parameters().iter().map(|p| p.detach()));
    GradCheck::default()
        .check(&inputs, |v| {
            let cell =
                Cell::from_tensors(kind, v[3].clone(), v[4].clone(), v[5].clone(), v[6].clone())?;
            let mut state = State {
                h: v[1].clone(),
                c: (kind == CellKind::Lstm).then(|| v[2].clone()),
            };
            let mut outs = Vec::new();
            for s in 0..t {
                let xs = v[0].narrow(1, s, 1)?.reshape(&[b, i])?;
                state = cell.step(&xs, &state)?;
                outs.push(state.h.clone());
            }
            if let Some(c) = &state.c {
                outs.push(c.clone());
            }
            kindling_tensor::stack(&outs.iter().collect::<Vec<_>>(), 0)
        })
        .unwrap_or_else(|e| panic!("{kind:?}: {e}"));
}

#[test]
fn rnn_cell_bptt_matches_finite_differences() {
    bptt_gradcheck(CellKind::Rnn);
}

#[test]
fn gru_cell_bptt_matches_finite_differences() {
    bptt_gradcheck(CellKind::Gru);
}

#[test]
fn lstm_cell_bptt_matches_finite_differences() {
    bptt_gradcheck(CellKind::Lstm);
}
