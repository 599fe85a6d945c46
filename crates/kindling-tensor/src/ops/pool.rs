//! max_pool2d and avg_pool2d (square window, no padding) with backward.

use crate::cpu::pool::{
    avg_pool_backward, avg_pool_forward, max_pool_backward, max_pool_forward, PoolGeometry,
};
use crate::{CpuStorage, Error, Result, Tensor};

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
        let (out, arg) = self
            .detach()
            .contiguous()?
            .with_f32(|x| max_pool_forward(x, &g))?;
        let shape = [self.shape()[0], self.shape()[1], g.out_h(), g.out_w()];
        let in_shape = self.shape().to_vec();
        Ok(Tensor::from_op(
            CpuStorage::F32(out),
            &shape,
            "max_pool2d",
            &[self],
            move |gout| {
                let dx = gout.with_f32(|d| max_pool_backward(d, &arg, &g))?;
                Ok(vec![Some(Tensor::from_vec(dx, &in_shape)?)])
            },
        ))
    }

    pub fn avg_pool2d(&self, kernel: usize, stride: usize) -> Result<Tensor> {
        let g = self.pool_geometry("avg_pool2d", kernel, stride)?;
        let out = self
            .detach()
            .contiguous()?
            .with_f32(|x| avg_pool_forward(x, &g))?;
        let shape = [self.shape()[0], self.shape()[1], g.out_h(), g.out_w()];
        let in_shape = self.shape().to_vec();
        Ok(Tensor::from_op(
            CpuStorage::F32(out),
            &shape,
            "avg_pool2d",
            &[self],
            move |gout| {
                let dx = gout.with_f32(|d| avg_pool_backward(d, &g))?;
                Ok(vec![Some(Tensor::from_vec(dx, &in_shape)?)])
            },
        ))
    }
}
