//! Index-based ops: index_select, gather, embedding, and their scatter-add
//! gradients.

use crate::layout::{resolve_dim, split_at_axis};
use crate::{Error, Result, Tensor};

impl Tensor {
    /// Rows (along `dim`) picked by a 1-d i64 index; repeats allowed.
    pub fn index_select(&self, dim: isize, index: &Tensor) -> Result<Tensor> {
        let d = resolve_dim("index_select", dim, self.rank())?;
        if index.rank() != 1 {
            return Err(Error::shape(
                "index_select",
                format!("index must be 1-d, got {:?}", index.shape()),
            ));
        }
        let idx = index.to_vec_i64()?;
        let (outer, n, inner) = split_at_axis(self.shape(), d);
        let out = self.backend().index_select(self, outer, n, inner, &idx)?;
        let mut shape = self.shape().to_vec();
        shape[d] = idx.len();
        let in_shape = self.shape().to_vec();
        Ok(Tensor::from_op(
            out,
            &shape,
            "index_select",
            &[self],
            move |g| {
                let gd = g.backend().index_add(g, outer, n, inner, &idx)?;
                Ok(vec![Some(Tensor::from_kernel(gd, &in_shape)?)])
            },
        ))
    }

    /// `out[..., j, ...] = self[..., index[..., j, ...], ...]` along `dim`;
    /// `index` has `self`'s shape except at `dim`.
    pub fn gather(&self, dim: isize, index: &Tensor) -> Result<Tensor> {
        let d = resolve_dim("gather", dim, self.rank())?;
        let ok = index.rank() == self.rank()
            && (0..self.rank()).all(|i| i == d || index.shape()[i] == self.shape()[i]);
        if !ok {
            return Err(Error::shape(
                "gather",
                format!(
                    "index {:?} must match input {:?} except at dim {d}",
                    index.shape(),
                    self.shape()
                ),
            ));
        }
        let idx = index.to_vec_i64()?;
        let (outer, n, inner) = split_at_axis(self.shape(), d);
        let m = index.shape()[d];
        let out = self.backend().gather(self, outer, n, inner, &idx, m)?;
        let in_shape = self.shape().to_vec();
        let (index, out_shape) = (index.clone(), index.shape().to_vec());
        Ok(Tensor::from_op(
            out,
            &out_shape,
            "gather",
            &[self],
            move |g| {
                Ok(vec![Some(
                    g.scatter_add_into(&in_shape, d as isize, &index)?,
                )])
            },
        ))
    }

    /// Zeros of `shape` with `self` added at `index` along `dim` (the
    /// gradient of `gather`). Not differentiable itself.
    pub fn scatter_add_into(&self, shape: &[usize], dim: isize, index: &Tensor) -> Result<Tensor> {
        let d = resolve_dim("scatter_add", dim, shape.len())?;
        if index.shape() != self.shape() {
            return Err(Error::shape(
                "scatter_add",
                format!("index {:?} vs source {:?}", index.shape(), self.shape()),
            ));
        }
        let idx = index.to_vec_i64()?;
        let (outer, n, inner) = split_at_axis(shape, d);
        let m = self.shape()[d];
        let out = self.backend().scatter_add(self, outer, n, inner, &idx, m)?;
        Tensor::from_kernel(out, shape)
    }

    /// Embedding lookup: `self` is the `[vocab, dim]` table, `ids` any shape
    /// of i64; the result is `ids.shape + [dim]`. Gradient rows add up per id.
    pub fn embedding(&self, ids: &Tensor) -> Result<Tensor> {
        if self.rank() != 2 {
            return Err(Error::shape(
                "embedding",
                format!("table must be [vocab, dim], got {:?}", self.shape()),
            ));
        }
        let mut shape = ids.shape().to_vec();
        shape.push(self.shape()[1]);
        self.index_select(0, &ids.flatten_all()?)?.reshape(&shape)
    }

    /// One-hot rows of `classes` floats for i64 labels `self`.
    pub fn one_hot(&self, classes: usize) -> Result<Tensor> {
        let t = self.to_vec_i64()?;
        let mut out = vec![0f32; t.len() * classes];
        for (i, &c) in t.iter().enumerate() {
            if c < 0 || c as usize >= classes {
                return Err(Error::Index {
                    op: "one_hot",
                    index: c,
                    size: classes,
                });
            }
            out[i * classes + c as usize] = 1.0;
        }
        let mut shape = self.shape().to_vec();
        shape.push(classes);
        Tensor::from_vec(out, &shape)
    }
}
