//! Recurrent networks: the Elman (tanh) RNN, GRU and LSTM cells, and a layer
//! that runs one over a sequence, optionally in both directions.
//!
//! The equations, parameter shapes, gate order and names are PyTorch's
//! (`torch.nn.RNN`/`GRU`/`LSTM`), so its weights load by name:
//!
//! ```text
//! RNN   h' = tanh(W_ih x + b_ih + W_hh h + b_hh)
//! GRU   r  = σ(W_ir x + b_ir + W_hr h + b_hr)
//!       z  = σ(W_iz x + b_iz + W_hz h + b_hz)
//!       n  = tanh(W_in x + b_in + r ⊙ (W_hn h + b_hn))
//!       h' = (1 − z) ⊙ n + z ⊙ h
//! LSTM  i, f, g, o = σ, σ, tanh, σ of (W_ih x + b_ih + W_hh h + b_hh)
//!       c' = f ⊙ c + i ⊙ g
//!       h' = o ⊙ tanh(c')
//! ```
//!
//! `weight_ih` is `[G·H, I]` and `weight_hh` `[G·H, H]`, the G gates stacked
//! in the order above (G = 1, 3 (r, z, n), 4 (i, f, g, o)). A cell is built
//! from existing ops (`linear`, `sigmoid`, `tanh`, `mul`, `add`, `narrow`),
//! so backpropagation through time is autograd through the unrolled loop:
//! every step's ops are recorded, and `backward` walks them last step first.

use crate::init;
use crate::module::{join_name, Module};
use kindling_tensor::{stack, Error, Result, Rng, Tensor};

/// Which recurrence a cell computes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CellKind {
    /// Elman RNN with tanh.
    Rnn,
    Gru,
    Lstm,
}

impl CellKind {
    /// Gates stacked in `weight_ih`'s rows.
    pub fn gates(self) -> usize {
        match self {
            CellKind::Rnn => 1,
            CellKind::Gru => 3,
            CellKind::Lstm => 4,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            CellKind::Rnn => "rnn",
            CellKind::Gru => "gru",
            CellKind::Lstm => "lstm",
        }
    }

    /// `rnn`, `gru` or `lstm`; the error names the field `cell`.
    pub fn parse(s: &str) -> Result<CellKind> {
        match s {
            "rnn" => Ok(CellKind::Rnn),
            "gru" => Ok(CellKind::Gru),
            "lstm" => Ok(CellKind::Lstm),
            other => Err(Error::msg(format!(
                "`cell` must be rnn, gru or lstm, got `{other}`"
            ))),
        }
    }
}

/// A recurrent state: `h [B, H]`, and the LSTM's cell state `c [B, H]`.
#[derive(Clone)]
pub struct State {
    pub h: Tensor,
    pub c: Option<Tensor>,
}

impl State {
    /// The zero state PyTorch starts from when no initial state is given.
    pub fn zeros(kind: CellKind, batch: usize, hidden: usize) -> State {
        State {
            h: Tensor::zeros(&[batch, hidden]),
            c: (kind == CellKind::Lstm).then(|| Tensor::zeros(&[batch, hidden])),
        }
    }
}

/// One recurrent cell (PyTorch's `RNNCell`, `GRUCell`, `LSTMCell`).
pub struct Cell {
    pub kind: CellKind,
    /// `[G·H, I]`.
    pub weight_ih: Tensor,
    /// `[G·H, H]`.
    pub weight_hh: Tensor,
    /// `[G·H]`.
    pub bias_ih: Tensor,
    /// `[G·H]`.
    pub bias_hh: Tensor,
}

impl Cell {
    /// PyTorch's initialization: every parameter U(±1/√H).
    pub fn new(kind: CellKind, input: usize, hidden: usize, rng: &mut Rng) -> Result<Cell> {
        if input == 0 || hidden == 0 {
            return Err(Error::msg(format!(
                "a {} cell needs at least one input and one hidden unit, got {input} and {hidden}",
                kind.name()
            )));
        }
        let g = kind.gates() * hidden;
        let bound = 1.0 / (hidden as f32).sqrt();
        Ok(Cell {
            kind,
            weight_ih: init::uniform(&[g, input], bound, rng),
            weight_hh: init::uniform(&[g, hidden], bound, rng),
            bias_ih: init::uniform(&[g], bound, rng),
            bias_hh: init::uniform(&[g], bound, rng),
        })
    }

    /// A cell from given tensors, shapes checked against each other.
    pub fn from_tensors(
        kind: CellKind,
        weight_ih: Tensor,
        weight_hh: Tensor,
        bias_ih: Tensor,
        bias_hh: Tensor,
    ) -> Result<Cell> {
        let ok = weight_hh.rank() == 2
            && weight_ih.rank() == 2
            && weight_hh.shape()[0] == kind.gates() * weight_hh.shape()[1]
            && weight_ih.shape()[0] == weight_hh.shape()[0]
            && bias_ih.shape() == [weight_hh.shape()[0]]
            && bias_hh.shape() == [weight_hh.shape()[0]];
        if !ok {
            return Err(Error::shape(
                "Cell",
                format!(
                    "a {} cell needs weight_ih [{}H, I], weight_hh [{}H, H] and biases [{}H], got {:?}, {:?}, {:?}, {:?}",
                    kind.name(),
                    kind.gates(),
                    kind.gates(),
                    kind.gates(),
                    weight_ih.shape(),
                    weight_hh.shape(),
                    bias_ih.shape(),
                    bias_hh.shape()
                ),
            ));
        }
        Ok(Cell {
            kind,
            weight_ih,
            weight_hh,
            bias_ih,
            bias_hh,
        })
    }

    pub fn hidden(&self) -> usize {
        self.weight_hh.shape()[1]
    }

    pub fn input(&self) -> usize {
        self.weight_ih.shape()[1]
    }

    /// One step: input `x [B, I]`, state → next state.
    pub fn step(&self, x: &Tensor, state: &State) -> Result<State> {
        let h = self.hidden();
        let b = x.shape().first().copied().unwrap_or(0);
        if x.rank() != 2 || x.shape()[1] != self.input() || state.h.shape() != [b, h] {
            return Err(Error::shape(
                self.kind.name(),
                format!(
                    "input must be [B, {}] and the state [B, {h}], got {:?} and {:?}",
                    self.input(),
                    x.shape(),
                    state.h.shape()
                ),
            ));
        }
        let gi = x.linear(&self.weight_ih, Some(&self.bias_ih))?;
        let gh = state.h.linear(&self.weight_hh, Some(&self.bias_hh))?;
        let gate = |t: &Tensor, k: usize| t.narrow(1, k * h, h);
        match self.kind {
            CellKind::Rnn => Ok(State {
                h: gi.add(&gh)?.tanh()?,
                c: None,
            }),
            CellKind::Gru => {
                let r = gate(&gi, 0)?.add(&gate(&gh, 0)?)?.sigmoid()?;
                let z = gate(&gi, 1)?.add(&gate(&gh, 1)?)?.sigmoid()?;
                // b_hn stays inside the reset gate's product (PyTorch's GRU).
                let n = gate(&gi, 2)?.add(&r.mul(&gate(&gh, 2)?)?)?.tanh()?;
                // (1 − z) n + z h = n + z (h − n)
                let h_next = n.add(&z.mul(&state.h.sub(&n)?)?)?;
                Ok(State { h: h_next, c: None })
            }
            CellKind::Lstm => {
                let c = state
                    .c
                    .as_ref()
                    .ok_or_else(|| Error::shape("lstm", "the state has no cell state `c`"))?;
                let pre = gi.add(&gh)?;
                let i = gate(&pre, 0)?.sigmoid()?;
                let f = gate(&pre, 1)?.sigmoid()?;
                let g = gate(&pre, 2)?.tanh()?;
                let o = gate(&pre, 3)?.sigmoid()?;
                let c_next = f.mul(c)?.add(&i.mul(&g)?)?;
                let h_next = o.mul(&c_next.tanh()?)?;
                Ok(State {
                    h: h_next,
                    c: Some(c_next),
                })
            }
        }
    }

    /// The four parameters under PyTorch's names with `suffix` appended
    /// (`""` for a cell, `"_l0"` / `"_l0_reverse"` in a layer).
    fn visit_with_suffix(&self, prefix: &str, suffix: &str, f: &mut dyn FnMut(String, &Tensor)) {
        for (name, t) in [
            ("weight_ih", &self.weight_ih),
            ("weight_hh", &self.weight_hh),
            ("bias_ih", &self.bias_ih),
            ("bias_hh", &self.bias_hh),
        ] {
            f(join_name(prefix, &format!("{name}{suffix}")), t);
        }
    }
}

impl Module for Cell {
    /// One step from the zero state: `x [B, I]` → `h [B, H]`.
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let b = x.shape().first().copied().unwrap_or(0);
        Ok(self.step(x, &State::zeros(self.kind, b, self.hidden()))?.h)
    }

    fn visit_parameters(&self, prefix: &str, f: &mut dyn FnMut(String, &Tensor)) {
        self.visit_with_suffix(prefix, "", f);
    }
}

/// One recurrent layer over a sequence (PyTorch's `RNN`/`GRU`/`LSTM` with
/// `num_layers = 1`), optionally bidirectional: the reverse cell reads the
/// sequence last step first, and each step's output is `[h_fwd, h_rev]`.
pub struct Recurrent {
    pub forward: Cell,
    pub reverse: Option<Cell>,
}

impl Recurrent {
    pub fn new(
        kind: CellKind,
        input: usize,
        hidden: usize,
        bidirectional: bool,
        rng: &mut Rng,
    ) -> Result<Recurrent> {
        let forward = Cell::new(kind, input, hidden, rng)?;
        let reverse = if bidirectional {
            Some(Cell::new(kind, input, hidden, rng)?)
        } else {
            None
        };
        Ok(Recurrent { forward, reverse })
    }

    pub fn kind(&self) -> CellKind {
        self.forward.kind
    }

    pub fn hidden(&self) -> usize {
        self.forward.hidden()
    }

    /// Directions: 1 or 2.
    pub fn directions(&self) -> usize {
        1 + self.reverse.is_some() as usize
    }

    /// Runs the layer over `xs` (one `[B, I]` input per time step) from
    /// `init` (one state per direction; zeros when `None`). Returns each
    /// step's output `[B, D·H]` and each direction's final state (the
    /// reverse direction's is after it read `xs[0]`), as PyTorch's `h_n`.
    ///
    /// Steps are separate tensors rather than views of one `[B, T, I]`
    /// tensor so that the backward pass does not pad every step's gradient
    /// back to the whole sequence (`narrow`'s backward), which would cost
    /// O(T²).
    pub fn run(&self, xs: &[Tensor], init: Option<&[State]>) -> Result<(Vec<Tensor>, Vec<State>)> {
        let first = xs
            .first()
            .ok_or_else(|| Error::shape(self.kind().name(), "the sequence is empty"))?;
        let b = first.shape().first().copied().unwrap_or(0);
        let start = |d: usize| -> Result<State> {
            match init {
                Some(states) => states.get(d).cloned().ok_or_else(|| {
                    Error::shape(
                        self.kind().name(),
                        format!(
                            "{} initial states for {} directions",
                            states.len(),
                            self.directions()
                        ),
                    )
                }),
                None => Ok(State::zeros(self.kind(), b, self.hidden())),
            }
        };
        let mut state = start(0)?;
        let mut fwd = Vec::with_capacity(xs.len());
        for x in xs {
            state = self.forward.step(x, &state)?;
            fwd.push(state.h.clone());
        }
        let mut finals = vec![state];
        let Some(rev_cell) = &self.reverse else {
            return Ok((fwd, finals));
        };
        let mut state = start(1)?;
        let mut rev = vec![None; xs.len()];
        for (t, x) in xs.iter().enumerate().rev() {
            state = rev_cell.step(x, &state)?;
            rev[t] = Some(state.h.clone());
        }
        finals.push(state);
        let outputs = fwd
            .iter()
            .zip(rev)
            .map(|(f, r)| kindling_tensor::cat(&[f, &r.expect("every step ran")], 1))
            .collect::<Result<Vec<_>>>()?;
        Ok((outputs, finals))
    }

    /// [`Recurrent::run`] over `x [B, T, I]` (PyTorch's `batch_first=True`):
    /// outputs `[B, T, D·H]` and the final states.
    pub fn forward_seq(&self, x: &Tensor, init: Option<&[State]>) -> Result<(Tensor, Vec<State>)> {
        if x.rank() != 3 {
            return Err(Error::shape(
                self.kind().name(),
                format!("input must be [B, T, I], got {:?}", x.shape()),
            ));
        }
        let (b, t, i) = (x.shape()[0], x.shape()[1], x.shape()[2]);
        let xs = (0..t)
            .map(|s| x.narrow(1, s, 1)?.reshape(&[b, i]))
            .collect::<Result<Vec<_>>>()?;
        let (outs, finals) = self.run(&xs, init)?;
        let refs: Vec<&Tensor> = outs.iter().collect();
        Ok((stack(&refs, 1)?, finals))
    }
}

impl Module for Recurrent {
    /// `x [B, T, I]` → outputs `[B, T, D·H]` from the zero state.
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(self.forward_seq(x, None)?.0)
    }

    /// PyTorch's names: `weight_ih_l0`, …, `bias_hh_l0_reverse`.
    fn visit_parameters(&self, prefix: &str, f: &mut dyn FnMut(String, &Tensor)) {
        self.forward.visit_with_suffix(prefix, "_l0", f);
        if let Some(r) = &self.reverse {
            r.visit_with_suffix(prefix, "_l0_reverse", f);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameter_names_and_shapes_are_pytorchs() {
        let mut rng = Rng::new(0);
        let lstm = Recurrent::new(CellKind::Lstm, 3, 5, true, &mut rng).unwrap();
        let names: Vec<(String, Vec<usize>)> = lstm
            .named_parameters()
            .into_iter()
            .map(|(n, t)| (n, t.shape().to_vec()))
            .collect();
        assert_eq!(names[0], ("weight_ih_l0".to_string(), vec![20, 3]));
        assert_eq!(names[1], ("weight_hh_l0".to_string(), vec![20, 5]));
        assert_eq!(names[7], ("bias_hh_l0_reverse".to_string(), vec![20]));
        assert_eq!(names.len(), 8);
        let gru = Cell::new(CellKind::Gru, 3, 4, &mut rng).unwrap();
        let n: Vec<String> = gru.named_parameters().into_iter().map(|(n, _)| n).collect();
        assert_eq!(n, ["weight_ih", "weight_hh", "bias_ih", "bias_hh"]);
        assert_eq!(gru.weight_ih.shape(), &[12, 3]);
    }

    #[test]
    fn bidirectional_output_is_forward_then_reverse() {
        let mut rng = Rng::new(1);
        let layer = Recurrent::new(CellKind::Gru, 2, 3, true, &mut rng).unwrap();
        let x = Tensor::rand(&[2, 4, 2], -1.0, 1.0, &mut rng);
        let (out, finals) = layer.forward_seq(&x, None).unwrap();
        assert_eq!(out.shape(), &[2, 4, 6]);
        assert_eq!(finals.len(), 2);
        let o = out.to_vec_f32().unwrap();
        // The last step's forward half is the forward final state, the
        // first step's reverse half the reverse final state.
        let hf = finals[0].h.to_vec_f32().unwrap();
        let hr = finals[1].h.to_vec_f32().unwrap();
        for row in 0..2 {
            assert_eq!(&o[row * 24 + 18..row * 24 + 21], &hf[row * 3..row * 3 + 3]);
            assert_eq!(&o[row * 24 + 3..row * 24 + 6], &hr[row * 3..row * 3 + 3]);
        }
    }

    #[test]
    fn bad_shapes_and_names_are_refused() {
        let mut rng = Rng::new(2);
        let cell = Cell::new(CellKind::Rnn, 3, 4, &mut rng).unwrap();
        let e = cell
            .step(&Tensor::zeros(&[2, 5]), &State::zeros(CellKind::Rnn, 2, 4))
            .err()
            .unwrap();
        assert!(e.to_string().contains("[B, 3]"), "{e}");
        let e = CellKind::parse("transformer").err().unwrap();
        assert!(e.to_string().contains("`cell`"), "{e}");
        assert!(Cell::new(CellKind::Gru, 0, 4, &mut rng).is_err());
        let layer = Recurrent::new(CellKind::Lstm, 3, 4, false, &mut rng).unwrap();
        assert!(layer.run(&[], None).is_err());
    }
}
