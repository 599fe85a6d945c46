//! Reductions: sum, mean, max/argmax over axes, and `sum_to_shape`, which
//! folds a broadcast gradient back to its input's shape.

use crate::layout::resolve_dim;
use crate::{Error, Result, Tensor};

impl Tensor {
    fn resolve_axes(&self, op: &'static str, axes: &[isize]) -> Result<Vec<usize>> {
        let mut out: Vec<usize> = axes
            .iter()
            .map(|&a| resolve_dim(op, a, self.rank()))
            .collect::<Result<_>>()?;
        out.sort_unstable();
        out.dedup();
        Ok(out)
    }

    fn reduced_shape(&self, axes: &[usize], keepdim: bool) -> Vec<usize> {
        let mut shape = Vec::new();
        for (i, &n) in self.shape().iter().enumerate() {
            if axes.contains(&i) {
                if keepdim {
                    shape.push(1);
                }
            } else {
                shape.push(n);
            }
        }
        shape
    }

    /// Sum over `axes` (negative counts from the end).
    pub fn sum(&self, axes: &[isize], keepdim: bool) -> Result<Tensor> {
        let axes = self.resolve_axes("sum", axes)?;
        // One axis at a time, each pass over the previous one's result.
        let src = self.detach().contiguous()?;
        let mut shape = self.shape().to_vec();
        let mut data = None;
        for &a in &axes {
            let input = match data.take() {
                None => src.clone(),
                Some(d) => Tensor::from_kernel(d, &shape)?,
            };
            data = Some(self.backend().sum_axis(&input, a)?);
            shape[a] = 1;
        }
        // No axes: the sum is a copy, never a view of the input.
        let data = match data {
            Some(d) => d,
            None => self.backend().contiguous(&src)?,
        };
        let out_shape = self.reduced_shape(&axes, keepdim);
        let (in_shape, kept) = (self.shape().to_vec(), shape);
        Ok(Tensor::from_op(
            data,
            &out_shape,
            "sum",
            &[self],
            move |g| Ok(vec![Some(g.reshape(&kept)?.broadcast_as(&in_shape)?)]),
        ))
    }

    pub fn sum_all(&self) -> Result<Tensor> {
        let axes: Vec<isize> = (0..self.rank() as isize).collect();
        self.sum(&axes, false)
    }

    pub fn mean(&self, axes: &[isize], keepdim: bool) -> Result<Tensor> {
        let resolved = self.resolve_axes("mean", axes)?;
        let count: usize = resolved.iter().map(|&a| self.shape()[a]).product();
        self.sum(axes, keepdim)?.mul_scalar(1.0 / count as f32)
    }

    pub fn mean_all(&self) -> Result<Tensor> {
        self.sum_all()?.mul_scalar(1.0 / self.numel() as f32)
    }

    /// Max over one axis; the gradient flows to the arg-max (first on ties).
    pub fn max(&self, axis: isize, keepdim: bool) -> Result<Tensor> {
        let a = resolve_dim("max", axis, self.rank())?;
        let (vals, idx) = self.max_kernel(a)?;
        let in_shape = self.shape().to_vec();
        let mut kept = in_shape.clone();
        kept[a] = 1;
        let out_shape = self.reduced_shape(&[a], keepdim);
        let idx_t = Tensor::from_kernel(idx, &kept)?;
        Ok(Tensor::from_op(
            vals,
            &out_shape,
            "max",
            &[self],
            move |g| {
                let g = g.reshape(&kept)?;
                Ok(vec![Some(
                    g.scatter_add_into(&in_shape, a as isize, &idx_t)?,
                )])
            },
        ))
    }

    /// Index of the maximum along `axis`, as i64.
    pub fn argmax(&self, axis: isize, keepdim: bool) -> Result<Tensor> {
        let a = resolve_dim("argmax", axis, self.rank())?;
        let (_, idx) = self.max_kernel(a)?;
        Tensor::from_kernel(idx, &self.reduced_shape(&[a], keepdim))
    }

    pub fn max_all(&self) -> Result<Tensor> {
        self.flatten_all()?.max(0, false)
    }

    fn max_kernel(&self, axis: usize) -> Result<(crate::Storage, crate::Storage)> {
        if self.shape()[axis] == 0 {
            return Err(Error::shape(
                "max",
                format!(
                    "cannot take the max over an empty dim of {:?}",
                    self.shape()
                ),
            ));
        }
        let src = self.detach().contiguous()?;
        self.backend().max_axis(&src, axis)
    }

    /// Sums away the dims that broadcasting added or stretched, giving a
    /// tensor of `shape` (the reverse of `broadcast_as`).
    pub fn sum_to_shape(&self, shape: &[usize]) -> Result<Tensor> {
        if self.shape() == shape {
            return Ok(self.clone());
        }
        let lead = self.rank().checked_sub(shape.len()).ok_or_else(|| {
            Error::shape(
                "sum_to_shape",
                format!("{:?} has fewer dims than {shape:?}", self.shape()),
            )
        })?;
        let mut axes: Vec<isize> = (0..lead as isize).collect();
        for (i, &n) in shape.iter().enumerate() {
            if n == 1 && self.shape()[lead + i] != 1 {
                axes.push((lead + i) as isize);
            }
        }
        self.sum(&axes, true)?.reshape(shape)
    }
}
