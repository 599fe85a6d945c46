//! max_pool2d and avg_pool2d (square window, no padding) with backward.

use crate::backend::PoolGeometry;
use crate::{Error, Result, Tensor};

impl Tensor {
    fn pool_geometry(
        &self,
        op: &'static str,
        kernel: usize,
        stride: usize,
    ) -> Result<PoolGeometry> {
        let s = self.shape();
        if s.len() != 4 || kernel == 0 || stride == 0 || s[2] < kernel || s[3] < kernel {
            return Err(Error::shape(op, format!("input {s:?} must be [B, C, H, W] with H, W >= kernel {kernel}; stride {stride}")));
        }
        Ok(PoolGeometry {
            planes: s[0] * s[1],
            height: s[2],
            width: s[3],
            kernel,
            stride,
        })
    }

    pub fn max_pool2d(&self, kernel: usize, stride: usize) -> Result<Tensor> {
        let g = self.pool_geometry("max_pool2d", kernel, stride)?;
        let x = self.detach().contiguous()?;
        let (out, arg) = self.backend().max_pool2d(&x, &g)?;
        let shape = [self.shape()[0], self.shape()[1], g.out_h(), g.out_w()];
        let arg = Tensor::from_kernel(arg, &shape)?;
        let in_shape = self.shape().to_vec();
        Ok(Tensor::from_op(
            out,
            &shape,
            "max_pool2d",
            &[self],
            move |gout| {
                let gout = gout.contiguous()?;
                let dx = gout.backend().max_pool2d_backward(&gout, &arg, &g)?;
                Ok(vec![Some(Tensor::from_kernel(dx, &in_shape)?)])
            },
        ))
    }

    pub fn avg_pool2d(&self, kernel: usize, stride: usize) -> Result<Tensor> {
        let g = self.pool_geometry("avg_pool2d", kernel, stride)?;
        let out = self
            .backend()
            .avg_pool2d(&self.detach().contiguous()?, &g)?;
        let shape = [self.shape()[0], self.shape()[1], g.out_h(), g.out_w()];
        let in_shape = self.shape().to_vec();
        Ok(Tensor::from_op(
            out,
            &shape,
            "avg_pool2d",
            &[self],
            move |gout| {
                let gout = gout.contiguous()?;
                let dx = gout.backend().avg_pool2d_backward(&gout, &g)?;
                Ok(vec![Some(Tensor::from_kernel(dx, &in_shape)?)])
            },
        ))
    }
}
