//! Ops that build a new layout of data: cat, stack, and the zero-padding that
//! is the gradient of `narrow`.

use crate::layout::{resolve_dim, split_at_axis};
use crate::{Error, Result, Tensor};

/// Concatenates along `dim`; all other dims must agree.
pub fn cat(tensors: &[&Tensor], dim: isize) -> Result<Tensor> {
    let first = tensors
        .first()
        .ok_or_else(|| Error::shape("cat", "needs at least one tensor"))?;
    let d = resolve_dim("cat", dim, first.rank())?;
    for t in tensors {
        let ok = t.rank() == first.rank()
            && (0..t.rank()).all(|i| i == d || t.shape()[i] == first.shape()[i]);
        if !ok {
            return Err(Error::shape(
                "cat",
                format!(
                    "{:?} and {:?} differ outside dim {d}",
                    first.shape(),
                    t.shape()
                ),
            ));
        }
    }
    let sizes: Vec<usize> = tensors.iter().map(|t| t.shape()[d]).collect();
    let total: usize = sizes.iter().sum();
    let mut shape = first.shape().to_vec();
    shape[d] = total;
    let (outer, _, inner) = split_at_axis(&shape, d);
    let mut parts = Vec::with_capacity(tensors.len());
    let mut start = 0;
    for (t, &n) in tensors.iter().zip(&sizes) {
        parts.push((*t, start, n));
        start += n;
    }
    let out = first.backend().cat(&parts, outer, total, inner)?;
    Ok(Tensor::from_op(out, &shape, "cat", tensors, move |g| {
        let mut grads = Vec::with_capacity(sizes.len());
        let mut start = 0;
        for &n in &sizes {
            grads.push(Some(g.narrow(d as isize, start, n)?));
            start += n;
        }
        Ok(grads)
    }))
}

/// Stacks same-shaped tensors along a new dim.
pub fn stack(tensors: &[&Tensor], dim: isize) -> Result<Tensor> {
    let first = tensors
        .first()
        .ok_or_else(|| Error::shape("stack", "needs at least one tensor"))?;
    if tensors.iter().any(|t| t.shape() != first.shape()) {
        return Err(Error::shape(
            "stack",
            "all tensors must have the same shape",
        ));
    }
    let d = resolve_dim("stack", dim, first.rank() + 1)? as isize;
    let expanded: Vec<Tensor> = tensors
        .iter()
        .map(|t| t.unsqueeze(d))
        .collect::<Result<_>>()?;
    cat(&expanded.iter().collect::<Vec<_>>(), d)
}

/// Zeros of `shape` with `g` written at `start..` along `dim`.
pub(crate) fn pad_into(g: &Tensor, shape: &[usize], dim: usize, start: usize) -> Result<Tensor> {
    let (outer, total, inner) = split_at_axis(shape, dim);
    // The zeros before `start` and after are the other parts of a `cat`.
    let out = g
        .backend()
        .cat(&[(g, start, g.shape()[dim])], outer, total, inner);
    Tensor::from_kernel(out?, shape)
}
