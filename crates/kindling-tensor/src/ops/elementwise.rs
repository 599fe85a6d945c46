//! Elementwise ops: unary maps, broadcasting binary ops, comparisons, where.

use crate::backend::{BinaryOp, UnaryOp as Unary};
use crate::layout::broadcast_shapes;
use crate::{DType, Error, Result, Tensor};

impl Tensor {
    fn unary(&self, op: Unary) -> Result<Tensor> {
        let out = self.backend().unary(self, op)?;
        let x = self.clone();
        Ok(Tensor::from_op_with_output(
            out,
            self.shape(),
            op.name(),
            &[self],
            move |g, y| {
                let gx = match op {
                    Unary::Neg => Some(g.neg()?),
                    Unary::Exp => Some(g.mul(y)?),
                    Unary::Log => Some(g.div(&x.detach())?),
                    Unary::Sqrt => Some(g.div(y)?.affine(0.5, 0.0)?),
                    Unary::Abs => Some(g.mul(&x.sign()?)?),
                    Unary::Tanh => Some(g.mul(&y.mul(y)?.affine(-1.0, 1.0)?)?),
                    Unary::Sigmoid => Some(g.mul(&y.mul(&y.affine(-1.0, 1.0)?)?)?),
                    Unary::Relu => Some(g.mul(&x.step()?)?),
                    Unary::Silu => Some(grad_map(g, &x, BinaryOp::SiluBackward)?),
                    Unary::GeluTanh => Some(grad_map(g, &x, BinaryOp::GeluTanhBackward)?),
                    Unary::GeluErf => Some(grad_map(g, &x, BinaryOp::GeluErfBackward)?),
                    Unary::Powf(p) => Some(g.mul(&x.detach().powf(p - 1.0)?.affine(p, 0.0)?)?),
                    Unary::Affine(m, _) => Some(g.affine(m, 0.0)?),
                    // Piecewise-constant or derivative helpers: no gradient flows.
                    Unary::Step | Unary::Sign => None,
                };
                Ok(vec![gx])
            },
        ))
    }

    pub fn neg(&self) -> Result<Tensor> {
        self.unary(Unary::Neg)
    }
    pub fn exp(&self) -> Result<Tensor> {
        self.unary(Unary::Exp)
    }
    pub fn log(&self) -> Result<Tensor> {
        self.unary(Unary::Log)
    }
    pub fn sqrt(&self) -> Result<Tensor> {
        self.unary(Unary::Sqrt)
    }
    pub fn abs(&self) -> Result<Tensor> {
        self.unary(Unary::Abs)
    }
    pub fn tanh(&self) -> Result<Tensor> {
        self.unary(Unary::Tanh)
    }
    pub fn sigmoid(&self) -> Result<Tensor> {
        self.unary(Unary::Sigmoid)
    }
    pub fn relu(&self) -> Result<Tensor> {
        self.unary(Unary::Relu)
    }
    /// SiLU (swish), `x · sigmoid(x)`: the gate of LLaMA's SwiGLU MLP.
    pub fn silu(&self) -> Result<Tensor> {
        self.unary(Unary::Silu)
    }
    /// SwiGLU's product `silu(self) · up` (Shazeer 2020), for inference with
    /// llama.cpp's arithmetic (`ggml_vec_swiglu_f32`: x / (1 + e^(−x)) with
    /// ggml's `expf`) in one pass. When a gradient is to be recorded it is
    /// `self.silu()?.mul(up)`, whose backward the autograd knows.
    pub fn swiglu(&self, up: &Tensor) -> Result<Tensor> {
        let records = crate::is_grad_enabled() && (self.requires_grad() || up.requires_grad());
        if records || self.shape() != up.shape() {
            return self.silu()?.mul(up);
        }
        let y = self.backend().binary(self, up, BinaryOp::Swiglu)?;
        Tensor::from_kernel(y, self.shape())
    }
    /// GELU, tanh approximation (GPT-2's choice).
    pub fn gelu(&self) -> Result<Tensor> {
        self.unary(Unary::GeluTanh)
    }
    /// GELU with the exact Gaussian CDF.
    /// In training the derivative is computed in the same pass (both
    /// need the same exponential) and kept, so backward is one multiply.
    pub fn gelu_erf(&self) -> Result<Tensor> {
        if !(crate::is_grad_enabled() && self.requires_grad()) {
            return self.unary(Unary::GeluErf);
        }
        let x = self.detach().contiguous()?;
        let (y, d) = self.backend().gelu_erf_with_grad(&x)?;
        let d = Tensor::from_kernel(d, self.shape())?;
        Ok(Tensor::from_op(
            y,
            self.shape(),
            "gelu_erf",
            &[self],
            move |g| Ok(vec![Some(g.mul(&d)?)]),
        ))
    }
    /// Heaviside step, 1 where x > 0: the McCulloch-Pitts threshold. No gradient.
    pub fn step(&self) -> Result<Tensor> {
        self.unary(Unary::Step)
    }
    pub fn sign(&self) -> Result<Tensor> {
        self.unary(Unary::Sign)
    }
    pub fn powf(&self, p: f32) -> Result<Tensor> {
        self.unary(Unary::Powf(p))
    }
    pub fn sqr(&self) -> Result<Tensor> {
        self.mul(self)
    }
    /// `x * mul + add`.
    pub fn affine(&self, mul: f32, add: f32) -> Result<Tensor> {
        self.unary(Unary::Affine(mul, add))
    }
    pub fn mul_scalar(&self, c: f32) -> Result<Tensor> {
        self.affine(c, 0.0)
    }
    pub fn add_scalar(&self, c: f32) -> Result<Tensor> {
        self.affine(1.0, c)
    }

    // ---- binary -------------------------------------------------------

    /// `op` over both operands broadcast to a common shape (views, no copy).
    fn binary_kernel(&self, rhs: &Tensor, op: BinaryOp) -> Result<(Vec<usize>, crate::Storage)> {
        let shape = broadcast_shapes(op.name(), self.shape(), rhs.shape())?;
        let a = self.detach().broadcast_as(&shape)?;
        let b = rhs.detach().broadcast_as(&shape)?;
        let out = self.backend().binary(&a, &b, op)?;
        Ok((shape, out))
    }

    pub fn add(&self, rhs: &Tensor) -> Result<Tensor> {
        let (shape, out) = self.binary_kernel(rhs, BinaryOp::Add)?;
        let (sa, sb) = (self.shape().to_vec(), rhs.shape().to_vec());
        Ok(Tensor::from_op(
            out,
            &shape,
            "add",
            &[self, rhs],
            move |g| Ok(vec![Some(g.sum_to_shape(&sa)?), Some(g.sum_to_shape(&sb)?)]),
        ))
    }

    pub fn sub(&self, rhs: &Tensor) -> Result<Tensor> {
        let (shape, out) = self.binary_kernel(rhs, BinaryOp::Sub)?;
        let (sa, sb) = (self.shape().to_vec(), rhs.shape().to_vec());
        Ok(Tensor::from_op(
            out,
            &shape,
            "sub",
            &[self, rhs],
            move |g| {
                Ok(vec![
                    Some(g.sum_to_shape(&sa)?),
                    Some(g.neg()?.sum_to_shape(&sb)?),
                ])
            },
        ))
    }

    pub fn mul(&self, rhs: &Tensor) -> Result<Tensor> {
        let (shape, out) = self.binary_kernel(rhs, BinaryOp::Mul)?;
        let (a, b) = (self.detach(), rhs.detach());
        let (ra, rb) = (self.requires_grad(), rhs.requires_grad());
        Ok(Tensor::from_op(
            out,
            &shape,
            "mul",
            &[self, rhs],
            move |g| {
                let ga = if ra {
                    Some(g.mul(&b)?.sum_to_shape(a.shape())?)
                } else {
                    None
                };
                let gb = if rb {
                    Some(g.mul(&a)?.sum_to_shape(b.shape())?)
                } else {
                    None
                };
                Ok(vec![ga, gb])
            },
        ))
    }

    pub fn div(&self, rhs: &Tensor) -> Result<Tensor> {
        let (shape, out) = self.binary_kernel(rhs, BinaryOp::Div)?;
        let (a, b) = (self.detach(), rhs.detach());
        let (ra, rb) = (self.requires_grad(), rhs.requires_grad());
        Ok(Tensor::from_op(
            out,
            &shape,
            "div",
            &[self, rhs],
            move |g| {
                let ga = if ra {
                    Some(g.div(&b)?.sum_to_shape(a.shape())?)
                } else {
                    None
                };
                // d(a/b)/db = -a / b^2
                let gb = if rb {
                    Some(
                        g.mul(&a)?
                            .div(&b.mul(&b)?)?
                            .neg()?
                            .sum_to_shape(b.shape())?,
                    )
                } else {
                    None
                };
                Ok(vec![ga, gb])
            },
        ))
    }

    /// Elementwise maximum; the gradient goes to the larger (to `self` on ties).
    pub fn maximum(&self, rhs: &Tensor) -> Result<Tensor> {
        let mask = self.ge(rhs)?;
        self.where_else(&mask, rhs)
    }

    fn compare(&self, rhs: &Tensor, op: BinaryOp) -> Result<Tensor> {
        let (shape, out) = self.binary_kernel(rhs, op)?;
        Tensor::from_kernel(out, &shape)
    }
    /// `self > rhs` as a u8 mask.
    pub fn gt(&self, rhs: &Tensor) -> Result<Tensor> {
        self.compare(rhs, BinaryOp::Gt)
    }
    pub fn ge(&self, rhs: &Tensor) -> Result<Tensor> {
        self.compare(rhs, BinaryOp::Ge)
    }
    pub fn lt(&self, rhs: &Tensor) -> Result<Tensor> {
        self.compare(rhs, BinaryOp::Lt)
    }
    pub fn eq_elem(&self, rhs: &Tensor) -> Result<Tensor> {
        self.compare(rhs, BinaryOp::Eq)
    }

    /// `where(mask, self, other)`: `self` where the mask is non-zero.
    pub fn where_else(&self, mask: &Tensor, other: &Tensor) -> Result<Tensor> {
        where_cond(mask, self, other)
    }

    /// `self` with `value` wherever `mask` is non-zero.
    pub fn masked_fill(&self, mask: &Tensor, value: f32) -> Result<Tensor> {
        where_cond(mask, &Tensor::scalar(value), self)
    }
}

/// `f(g, x)` in one pass, as a tensor with no graph: an input gradient
/// computed inside backward (such as `g * gelu'(x)`) without temporaries.
fn grad_map(g: &Tensor, x: &Tensor, op: BinaryOp) -> Result<Tensor> {
    let (shape, out) = g.binary_kernel(x, op)?;
    Tensor::from_kernel(out, &shape)
}

/// `where(cond, a, b)`, broadcasting all three (PyTorch's `torch.where`).
/// The mask may be u8 or any float dtype (non-zero = true).
pub fn where_cond(mask: &Tensor, a: &Tensor, b: &Tensor) -> Result<Tensor> {
    let shape = broadcast_shapes("where", mask.shape(), a.shape())?;
    let shape = broadcast_shapes("where", &shape, b.shape())?;
    let mask_f = match mask.dtype() {
        DType::F32 => mask.clone(),
        DType::U8 | DType::F16 | DType::BF16 => mask.detach().to_dtype(DType::F32)?,
        got => {
            return Err(Error::DType {
                op: "where",
                expected: DType::U8,
                got,
            })
        }
    };
    let m = mask_f.detach().broadcast_as(&shape)?;
    let av = a.detach().broadcast_as(&shape)?;
    let bv = b.detach().broadcast_as(&shape)?;
    let out = a.backend().select(&m, &av, &bv)?;
    let (sa, sb) = (a.shape().to_vec(), b.shape().to_vec());
    let mask_kept = mask_f.detach();
    Ok(Tensor::from_op(out, &shape, "where", &[a, b], move |g| {
        let zero = Tensor::scalar(0.0);
        Ok(vec![
            Some(where_cond(&mask_kept, g, &zero)?.sum_to_shape(&sa)?),
            Some(where_cond(&mask_kept, &zero, g)?.sum_to_shape(&sb)?),
        ])
    }))
}
