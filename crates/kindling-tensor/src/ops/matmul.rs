//! Matrix product with NumPy/PyTorch semantics: 1-d operands are promoted,
//! leading (batch) dims broadcast.

use crate::layout::broadcast_shapes;
use crate::{Error, Result, Tensor};

impl Tensor {
    pub fn matmul(&self, rhs: &Tensor) -> Result<Tensor> {
        match (self.rank(), rhs.rank()) {
            (0, _) | (_, 0) => Err(Error::shape(
                "matmul",
                "operands must have at least one dim",
            )),
            // Dot product: a 0-d result, as in PyTorch.
            (1, 1) => self.unsqueeze(0)?.matmul(&rhs.unsqueeze(1)?)?.reshape(&[]),
            (1, _) => self.unsqueeze(0)?.matmul(rhs)?.squeeze(-2),
            (_, 1) => self.matmul(&rhs.unsqueeze(1)?)?.squeeze(-1),
            _ => self.matmul_nd(rhs),
        }
    }

    fn matmul_nd(&self, rhs: &Tensor) -> Result<Tensor> {
        let (ra, rb) = (self.rank(), rhs.rank());
        let (m, ka) = (self.shape()[ra - 2], self.shape()[ra - 1]);
        let (kb, n) = (rhs.shape()[rb - 2], rhs.shape()[rb - 1]);
        if ka != kb {
            return Err(Error::shape(
                "matmul",
                format!(
                    "{:?} @ {:?}: inner dims {ka} and {kb} differ",
                    self.shape(),
                    rhs.shape()
                ),
            ));
        }
        let batch = broadcast_shapes("matmul", &self.shape()[..ra - 2], &rhs.shape()[..rb - 2])?;
        let full = |mut b: Vec<usize>, r: usize, c: usize| {
            b.extend([r, c]);
            b
        };
        let va = self.detach().broadcast_as(&full(batch.clone(), m, ka))?;
        let vb = rhs.detach().broadcast_as(&full(batch.clone(), ka, n))?;
        let out = self.backend().matmul(&va, &vb)?;
        let out_shape = full(batch, m, n);
        let (a, b) = (self.detach(), rhs.detach());
        let (ga_needed, gb_needed) = (self.requires_grad(), rhs.requires_grad());
        Ok(Tensor::from_op(
            out,
            &out_shape,
            "matmul",
            &[self, rhs],
            move |g| {
                // dA = dC @ B^T, dB = A^T @ dC; transposes are stride views.
                let ga = if ga_needed {
                    Some(g.matmul(&b.t()?)?.sum_to_shape(a.shape())?)
                } else {
                    None
                };
                let gb = if gb_needed {
                    Some(a.t()?.matmul(g)?.sum_to_shape(b.shape())?)
                } else {
                    None
                };
                Ok(vec![ga, gb])
            },
        ))
    }
}
