//! The fully connected layer as one op: `y = x W^T + b`. Fused rather than
//! composed from matmul and add because the bias is loaded into the output
//! before the GEMM accumulates onto it (no second pass over y), and
//! backward produces all three gradients from one contiguous `dy`.

use crate::backend::{Gemm, Mat};
use crate::{Error, Result, Tensor};

impl Tensor {
    /// `self [.., in] @ weight[out, in]^T + bias[out]`, PyTorch's
    /// `F.linear`. Leading dims are folded into one GEMM.
    pub fn linear(&self, weight: &Tensor, bias: Option<&Tensor>) -> Result<Tensor> {
        let fan_in = *self.shape().last().unwrap_or(&0);
        let ok = self.rank() >= 1
            && weight.rank() == 2
            && weight.shape()[1] == fan_in
            && bias.is_none_or(|b| b.shape() == [weight.shape()[0]]);
        if !ok {
            return Err(Error::shape(
                "linear",
                format!(
                    "input {:?}, weight {:?} (must be [out, {fan_in}]), bias {:?} (must be [out])",
                    self.shape(),
                    weight.shape(),
                    bias.map(|b| b.shape().to_vec())
                ),
            ));
        }
        let fan_out = weight.shape()[0];
        let rows: usize = self.shape()[..self.rank() - 1].iter().product();
        let x = self.detach().contiguous()?;
        let w = weight.detach().contiguous()?;
        let b = bias.map(|b| b.detach().contiguous()).transpose()?;
        let y = {
            let (xs, ws) = (x.storage(), w.storage());
            let bs = b.as_ref().map(|b| b.storage());
            // W^T is W read with its strides swapped; the bias is loaded into
            // y before the product is added onto it.
            let g = Gemm {
                bias: bs.as_ref().map(|s| Mat::broadcast_row(&**s, b_offset(&b))),
                ..Gemm::new(
                    rows,
                    fan_out,
                    fan_in,
                    Mat::row_major(&*xs, x.layout().offset(), fan_in),
                    Mat::row_major(&*ws, w.layout().offset(), fan_in).t(),
                )
            };
            self.backend().gemm(&g)?
        };
        let mut shape = self.shape().to_vec();
        *shape.last_mut().expect("rank >= 1") = fan_out;
        let inputs: Vec<&Tensor> = std::iter::once(self)
            .chain(std::iter::once(weight))
            .chain(bias)
            .collect();
        let (need_x, need_w) = (self.requires_grad(), weight.requires_grad());
        let need_b = bias.is_some_and(|b| b.requires_grad());
        let (x_shape, has_bias) = (self.shape().to_vec(), bias.is_some());
        Ok(Tensor::from_op(y, &shape, "linear", &inputs, move |g| {
            let g = g.contiguous()?;
            let backend = g.backend();
            let (gs, dy_off) = (g.storage(), g.layout().offset());
            let dy = Mat::row_major(&*gs, dy_off, fan_out);
            // dx = dy W ; dW = dy^T x ; db = column sums of dy.
            let dx = if need_x {
                let ws = w.storage();
                let wm = Mat::row_major(&*ws, w.layout().offset(), fan_in);
                let v = backend.gemm(&Gemm::new(rows, fan_in, fan_out, dy, wm))?;
                Some(Tensor::from_kernel(v, &x_shape)?)
            } else {
                None
            };
            let dw = if need_w {
                let xs = x.storage();
                let xm = Mat::row_major(&*xs, x.layout().offset(), fan_in);
                let v = backend.gemm(&Gemm::new(fan_out, fan_in, rows, dy.t(), xm))?;
                Some(Tensor::from_kernel(v, &[fan_out, fan_in])?)
            } else {
                None
            };
            drop(gs);
            let mut out = vec![dx, dw];
            if has_bias {
                out.push(if need_b {
                    let dy2 = g.reshape(&[rows, fan_out])?;
                    let v = backend.sum_axis(&dy2, 0)?;
                    Some(Tensor::from_kernel(v, &[fan_out])?)
                } else {
                    None
                });
            }
            Ok(out)
        }))
    }
}

/// Where a contiguous bias starts in its storage (0 without one).
fn b_offset(b: &Option<Tensor>) -> usize {
    b.as_ref().map_or(0, |b| b.layout().offset())
}

impl Tensor {
    /// `self [.., in] @ W^T + bias[out]` for a block-quantized `W [out, in]`
    /// (GGUF's Q8_0, Q4_0, Q4_1, Q4_K, Q6_K): the backend multiplies by the
    /// blocks without dequantizing W. W is frozen; the gradient reaches
    /// `self` (so adapters train on a quantized base, as in QLoRA) through W
    /// dequantized for the backward, and the bias gets its column sums.
    pub fn linear_quantized(
        &self,
        weight: &std::sync::Arc<crate::quant::QMatrix>,
        bias: Option<&Tensor>,
    ) -> Result<Tensor> {
        let fan_in = *self.shape().last().unwrap_or(&0);
        let fan_out = weight.rows();
        if self.rank() == 0
            || weight.cols() != fan_in
            || bias.is_some_and(|b| b.shape() != [fan_out])
        {
            return Err(Error::shape(
                "linear_quantized",
                format!(
                    "input {:?}, weight [{fan_out}, {}] (must be [out, {fan_in}]), bias {:?} (must be [out])",
                    self.shape(),
                    weight.cols(),
                    bias.map(|b| b.shape().to_vec())
                ),
            ));
        }
        let rows: usize = self.shape()[..self.rank() - 1].iter().product();
        let x = self.detach().contiguous()?;
        let y = self.backend().quantized_matmul(&x, weight, rows)?;
        let mut shape = self.shape().to_vec();
        *shape.last_mut().expect("rank >= 1") = fan_out;
        let w = weight.clone();
        let x_shape = self.shape().to_vec();
        let y = Tensor::from_op(y, &shape, "linear_quantized", &[self], move |g| {
            // dx = dy W, with W dequantized only when a gradient is needed.
            let dense = Tensor::from_vec(w.dequantize(), &[w.rows(), w.cols()])?;
            let dy = g.reshape(&[rows, w.rows()])?;
            Ok(vec![Some(dy.matmul(&dense)?.reshape(&x_shape)?)])
        });
        match bias {
            Some(b) => y.add(b),
            None => Ok(y),
        }
    }
}
