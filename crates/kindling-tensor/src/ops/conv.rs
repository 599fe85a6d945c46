//! conv2d (NCHW, square stride and padding) with its backward.

use crate::backend::ConvGeometry;
use crate::{Error, Result, Tensor};

impl Tensor {
    /// Cross-correlation of `self [B, C, H, W]` with `weight [O, C, KH, KW]`,
    /// plus `bias [O]`, as PyTorch's `F.conv2d`.
    pub fn conv2d(
        &self,
        weight: &Tensor,
        bias: Option<&Tensor>,
        stride: usize,
        padding: usize,
    ) -> Result<Tensor> {
        let (xs, ws) = (self.shape(), weight.shape());
        if xs.len() != 4 || ws.len() != 4 || xs[1] != ws[1] {
            return Err(Error::shape(
                "conv2d",
                format!("input {xs:?} must be [B, C, H, W] and weight {ws:?} [O, C, KH, KW] with the same C"),
            ));
        }
        if let Some(b) = bias {
            if b.shape() != [ws[0]] {
                return Err(Error::shape(
                    "conv2d",
                    format!("bias {:?} must be [{}]", b.shape(), ws[0]),
                ));
            }
        }
        if stride == 0 || xs[2] + 2 * padding < ws[2] || xs[3] + 2 * padding < ws[3] {
            return Err(Error::shape(
                "conv2d",
                format!("kernel {}x{} does not fit input {}x{} with padding {padding} and stride {stride}", ws[2], ws[3], xs[2], xs[3]),
            ));
        }
        let g = ConvGeometry {
            batch: xs[0],
            in_channels: xs[1],
            height: xs[2],
            width: xs[3],
            out_channels: ws[0],
            kernel_h: ws[2],
            kernel_w: ws[3],
            stride,
            padding,
        };
        let x = self.detach().contiguous()?;
        let w = weight.detach().contiguous()?;
        let b = bias.map(|b| b.detach());
        let (out, cols) = self.backend().conv2d(&x, &w, b.as_ref(), &g)?;
        let n_cols = cols.len();
        let cols = Tensor::from_kernel(cols, &[n_cols])?;
        let shape = [g.batch, g.out_channels, g.out_h(), g.out_w()];
        let need_dx = self.requires_grad();
        let has_bias = bias.is_some();
        let mut inputs = vec![self, weight];
        if let Some(b) = bias {
            inputs.push(b);
        }
        let (x_shape, w_shape) = (xs.to_vec(), ws.to_vec());
        Ok(Tensor::from_op(
            out,
            &shape,
            "conv2d",
            &inputs,
            move |gout| {
                let gout = gout.contiguous()?;
                let (dx, dw, db) = gout
                    .backend()
                    .conv2d_backward(&gout, &w, &cols, &g, need_dx)?;
                let mut out = vec![
                    dx.map(|dx| Tensor::from_kernel(dx, &x_shape)).transpose()?,
                    Some(Tensor::from_kernel(dw, &w_shape)?),
                ];
                if has_bias {
                    out.push(Some(Tensor::from_kernel(db, &[w_shape[0]])?));
                }
                Ok(out)
            },
        ))
    }
}
