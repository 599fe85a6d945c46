//! Differentiable ops. Each forward checks shapes, then calls a kernel of its
//! inputs' `Backend`; each backward, right beside it, is written with tensor
//! ops or calls the same backend's backward kernel. No op names a device.

pub mod attention;
pub mod conv;
pub mod dropout;
pub mod elementwise;
pub mod indexing;
pub mod linear;
pub mod loss;
pub mod matmul;
pub mod norm;
pub mod optim_update;
pub mod pool;
pub mod reduce;
pub mod shape_ops;
pub mod softmax;

use crate::autograd::{BackwardFn, Node};
use crate::layout::Layout;
use crate::{Result, Storage, Tensor};
use std::sync::{Arc, RwLock};

impl Tensor {
    /// Like `from_op`, for backward rules that need the op's own output
    /// (exp, tanh, softmax...). The closure gets `(grad_out, output)`; the
    /// output it sees is detached so the graph holds no cycle.
    pub(crate) fn from_op_with_output(
        storage: Storage,
        shape: &[usize],
        op: &'static str,
        inputs: &[&Tensor],
        backward: impl Fn(&Tensor, &Tensor) -> Result<Vec<Option<Tensor>>> + Send + Sync + 'static,
    ) -> Tensor {
        let arc = Arc::new(RwLock::new(storage));
        let layout = Layout::contiguous(shape);
        let wants_grad =
            crate::autograd::is_grad_enabled() && inputs.iter().any(|t| t.requires_grad());
        let node = wants_grad.then(|| {
            let out = Tensor::from_parts(arc.clone(), layout.clone(), None);
            Node {
                op,
                inputs: inputs.iter().map(|t| (*t).clone()).collect(),
                backward: Box::new(move |g: &Tensor| backward(g, &out)) as BackwardFn,
            }
        });
        Tensor::from_parts(arc, layout, node)
    }
}
