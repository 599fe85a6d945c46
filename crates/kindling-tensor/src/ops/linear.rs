//! The fully connected layer as one op: `y = x W^T + b`. Fused rather than
//! composed from matmul and add because the bias is loaded into the output
//! before the GEMM accumulates onto it (no second pass over y), and
//! backward produces all three gradients from one contiguous `dy`.

use crate::backend::{Gemm, Mat};
use crate::cpu::{gemv, matmul, reduce};
use crate::{CpuStorage, Error, Result, Tensor};

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
        let y = x.with_f32(|xv| {
            w.with_f32(|wv| {
                // A few rows (token-by-token generation): one pass over W.
                if rows <= gemv::MAX_ROWS && fan_in > 0 {
                    let mut y = gemv::gemv_rows(xv, rows, fan_in, wv, fan_out);
                    if let Some(b) = bias {
                        b.with_f32(|bv| {
                            for row in y.chunks_exact_mut(fan_out) {
                                row.iter_mut().zip(bv).for_each(|(y, b)| *y += b);
                            }
                        })?;
                    }
                    return Ok(y);
                }
                // W^T is W read with its strides swapped; the bias, if any,
                // is loaded into y before the product is added onto it.
                let x_mat = Mat::row_major(xv, 0, fan_in);
                let w_t = Mat::row_major(wv, 0, fan_in).t();
                match bias {
                    None => Ok(matmul::gemm_new(&Gemm::new(
                        rows, fan_out, fan_in, x_mat, w_t,
                    ))),
                    Some(b) => b.with_f32(|bv| {
                        matmul::gemm_new(&Gemm {
                            bias: Some(Mat::broadcast_row(bv, 0)),
                            ..Gemm::new(rows, fan_out, fan_in, x_mat, w_t)
                        })
                    }),
                }
            })
        })???;
        let mut shape = self.shape().to_vec();
        *shape.last_mut().expect("rank >= 1") = fan_out;
        let inputs: Vec<&Tensor> = std::iter::once(self)
            .chain(std::iter::once(weight))
            .chain(bias)
            .collect();
        let (need_x, need_w) = (self.requires_grad(), weight.requires_grad());
        let need_b = bias.is_some_and(|b| b.requires_grad());
        let (x_shape, has_bias) = (self.shape().to_vec(), bias.is_some());
        Ok(Tensor::from_op(
            CpuStorage::F32(y),
            &shape,
            "linear",
            &inputs,
            move |g| {
                let g = g.contiguous()?;
                g.with_f32(|dy| -> Result<Vec<Option<Tensor>>> {
                    // dx = dy W ; dW = dy^T x ; db = column sums of dy.
                    let dx = if need_x {
                        let v = w.with_f32(|wv| {
                            matmul::gemm_new(&Gemm::new(
                                rows,
                                fan_in,
                                fan_out,
                                Mat::row_major(dy, 0, fan_out),
                                Mat::row_major(wv, 0, fan_in),
                            ))
                        })?;
                        Some(Tensor::from_vec(v, &x_shape)?)
                    } else {
                        None
                    };
                    let dw = if need_w {
                        let v = x.with_f32(|xv| {
                            matmul::gemm_new(&Gemm::new(
                                fan_out,
                                fan_in,
                                rows,
                                Mat::row_major(dy, 0, fan_out).t(),
                                Mat::row_major(xv, 0, fan_in),
                            ))
                        })?;
                        Some(Tensor::from_vec(v, &[fan_out, fan_in])?)
                    } else {
                        None
                    };
                    let mut out = vec![dx, dw];
                    if has_bias {
                        out.push(if need_b {
                            let v = if fan_out == 0 {
                                Vec::new()
                            } else {
                                reduce::sum_axis(dy, 1, rows, fan_out)
                            };
                            Some(Tensor::from_vec(v, &[fan_out])?)
                        } else {
                            None
                        });
                    }
                    Ok(out)
                })?
            },
        ))
    }
}
