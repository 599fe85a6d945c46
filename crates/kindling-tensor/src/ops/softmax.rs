//! Softmax and log-softmax along one dim.

use crate::backend::Backend;
use crate::layout::resolve_dim;
use crate::{Result, Storage, Tensor};

impl Tensor {
    /// Runs a last-dim row kernel along `dim` by moving `dim` last and back.
    fn along_last(
        &self,
        dim: isize,
        op: &'static str,
        kernel: fn(&dyn Backend, &Tensor) -> Result<Storage>,
    ) -> Result<(Tensor, usize)> {
        let d = resolve_dim(op, dim, self.rank())?;
        let last = self.rank() - 1;
        let moved = if d == last {
            self.detach()
        } else {
            self.detach().transpose(d as isize, last as isize)?
        };
        let src = moved.contiguous()?;
        let t = Tensor::from_kernel(kernel(self.backend(), &src)?, src.shape())?;
        let t = if d == last {
            t
        } else {
            t.transpose(d as isize, last as isize)?.contiguous()?
        };
        Ok((t, d))
    }

    pub fn softmax(&self, dim: isize) -> Result<Tensor> {
        let (y, d) = self.along_last(dim, "softmax", |b, x| b.softmax(x))?;
        let data = y.storage().clone();
        Ok(Tensor::from_op_with_output(
            data,
            self.shape(),
            "softmax",
            &[self],
            move |g, y| {
                // dx = y * (g - sum(g * y))
                let dot = g.mul(y)?.sum(&[d as isize], true)?;
                Ok(vec![Some(y.mul(&g.sub(&dot)?)?)])
            },
        ))
    }

    pub fn log_softmax(&self, dim: isize) -> Result<Tensor> {
        let (y, d) = self.along_last(dim, "log_softmax", |b, x| b.log_softmax(x))?;
        let data = y.storage().clone();
        Ok(Tensor::from_op_with_output(
            data,
            self.shape(),
            "log_softmax",
            &[self],
            move |g, y| {
                // dx = g - softmax * sum(g)
                let total = g.sum(&[d as isize], true)?;
                Ok(vec![Some(g.sub(&y.exp()?.mul(&total)?)?)])
            },
        ))
    }
}
