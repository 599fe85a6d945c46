//! Softmax and log-softmax along one dim.

use crate::layout::resolve_dim;
use crate::{cpu, CpuStorage, Result, Tensor};

impl Tensor {
    /// Runs a last-dim row kernel along `dim` by moving `dim` last and back.
    fn along_last(
        &self,
        dim: isize,
        op: &'static str,
        kernel: fn(&[f32], usize) -> Vec<f32>,
    ) -> Result<(Tensor, usize)> {
        let d = resolve_dim(op, dim, self.rank())?;
        let last = self.rank() - 1;
        let moved = if d == last {
            self.detach()
        } else {
            self.detach().transpose(d as isize, last as isize)?
        };
        let src = moved.contiguous()?;
        let n = src.shape()[last];
        let out = {
            let s = src.storage();
            let r = src.layout().contiguous_range().expect("contiguous");
            kernel(&s.cpu().f32(op)?[r], n)
        };
        let t = Tensor::from_storage(CpuStorage::F32(out), src.shape())?;
        let t = if d == last {
            t
        } else {
            t.transpose(d as isize, last as isize)?.contiguous()?
        };
        Ok((t, d))
    }

    pub fn softmax(&self, dim: isize) -> Result<Tensor> {
        let (y, d) = self.along_last(dim, "softmax", cpu::softmax::softmax)?;
        let data = y.storage().cpu().clone();
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
        let (y, d) = self.along_last(dim, "log_softmax", cpu::softmax::log_softmax)?;
        let data = y.storage().cpu().clone();
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
