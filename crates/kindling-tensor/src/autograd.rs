//! Define-by-run reverse-mode autodiff. Each op records its inputs and a
//! closure that maps the output's gradient to the inputs' gradients, written
//! with tensor ops (so any backend gets backward for free). `backward()` walks
//! the recorded graph in reverse topological order, as micrograd does.

use crate::{Error, Result, Tensor};
use std::cell::Cell;
use std::collections::{HashMap, HashSet};

pub(crate) type BackwardFn = Box<dyn Fn(&Tensor) -> Result<Vec<Option<Tensor>>> + Send + Sync>;

pub(crate) struct Node {
    pub op: &'static str,
    pub inputs: Vec<Tensor>,
    pub backward: BackwardFn,
}

thread_local! {
    static GRAD_ENABLED: Cell<bool> = const { Cell::new(true) };
}

pub fn is_grad_enabled() -> bool {
    GRAD_ENABLED.with(|g| g.get())
}

/// While alive, ops record no graph (evaluation, optimizer steps).
pub struct NoGradGuard {
    previous: bool,
}

pub fn no_grad() -> NoGradGuard {
    let previous = GRAD_ENABLED.with(|g| g.replace(false));
    NoGradGuard { previous }
}

impl Drop for NoGradGuard {
    fn drop(&mut self) {
        GRAD_ENABLED.with(|g| g.set(self.previous));
    }
}

impl Tensor {
    /// Gradients of this scalar with respect to every leaf that requires
    /// them, added to the leaves' `.grad()` (accumulating across calls).
    pub fn backward(&self) -> Result<()> {
        if self.numel() != 1 {
            return Err(Error::Autograd(format!(
                "backward() needs a scalar, got shape {:?}",
                self.shape()
            )));
        }
        if !self.requires_grad() {
            return Err(Error::Autograd(
                "this tensor does not require grad: no input had requires_grad set".into(),
            ));
        }
        self.backward_with(Tensor::ones(self.shape()))
    }

    /// Backward with an explicit upstream gradient of this tensor's shape.
    pub fn backward_with(&self, seed: Tensor) -> Result<()> {
        self.walk_backward(seed, |leaf, g| {
            let acc = match leaf.grad() {
                Some(prev) => prev.add(&g)?,
                // An owned copy: the same gradient tensor may flow to
                // several leaves, and optimizers may scale it in place.
                None => g.copy()?,
            };
            leaf.set_grad(Some(acc));
            Ok(())
        })
    }

    /// Like `backward_with`, but the leaves' gradients are returned instead
    /// of added to their `.grad()`. Data-parallel training runs this on each
    /// shard at once and then sums the shards in a fixed order, so the result
    /// does not depend on which thread finished first.
    pub fn gradients_with(&self, seed: Tensor) -> Result<Gradients> {
        let mut out = HashMap::new();
        self.walk_backward(seed, |leaf, g| {
            out.insert(leaf.id(), g);
            Ok(())
        })?;
        Ok(Gradients(out))
    }

    /// The reverse sweep: each leaf that needs a gradient is handed to
    /// `leaf_grad` once, with the sum of everything that flowed into it.
    fn walk_backward(
        &self,
        seed: Tensor,
        mut leaf_grad: impl FnMut(&Tensor, Tensor) -> Result<()>,
    ) -> Result<()> {
        let _guard = no_grad();
        let order = self.topological_order();
        let mut grads: HashMap<usize, Tensor> = HashMap::new();
        grads.insert(self.id(), seed);
        for t in order.iter().rev() {
            let Some(g) = grads.remove(&t.id()) else {
                continue;
            };
            match &t.0.node {
                Some(node) => {
                    let input_grads = (node.backward)(&g)?;
                    for (input, ig) in node.inputs.iter().zip(input_grads) {
                        let Some(ig) = ig else { continue };
                        if !input.requires_grad() {
                            continue;
                        }
                        if ig.shape() != input.shape() {
                            return Err(Error::Autograd(format!(
                                "op `{}` produced a gradient of shape {:?} for an input of shape {:?}",
                                node.op,
                                ig.shape(),
                                input.shape()
                            )));
                        }
                        let acc = match grads.remove(&input.id()) {
                            Some(prev) => prev.add(&ig)?,
                            None => ig,
                        };
                        grads.insert(input.id(), acc);
                    }
                }
                None => leaf_grad(t, g)?,
            }
        }
        Ok(())
    }

    /// Post-order over the tensors that need a gradient (inputs before outputs).
    fn topological_order(&self) -> Vec<Tensor> {
        let mut order = Vec::new();
        let mut visited = HashSet::new();
        let mut stack = vec![(self.clone(), false)];
        while let Some((t, expanded)) = stack.pop() {
            if expanded {
                order.push(t);
                continue;
            }
            if !visited.insert(t.id()) {
                continue;
            }
            stack.push((t.clone(), true));
            if let Some(node) = &t.0.node {
                for input in &node.inputs {
                    if input.requires_grad() && !visited.contains(&input.id()) {
                        stack.push((input.clone(), false));
                    }
                }
            }
        }
        order
    }
}

/// Leaf gradients from `Tensor::gradients_with`, looked up by leaf.
pub struct Gradients(HashMap<usize, Tensor>);

impl Gradients {
    /// The gradient of `leaf`, or `None` when no path reached it.
    pub fn get(&self, leaf: &Tensor) -> Option<&Tensor> {
        self.0.get(&leaf.id())
    }
}
