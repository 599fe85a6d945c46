//! Elementwise ops: unary maps, broadcasting binary ops, comparisons, where.

use crate::cpu::elementwise as k;
use crate::cpu::simd::{erf, exp, map_fn, Exp};
use crate::layout::{broadcast_shapes, Layout};
use crate::{CpuStorage, DType, Error, Result, Tensor};

const SQRT_2_OVER_PI: f32 = 0.797_884_6;
const GELU_C: f32 = 0.044_715;

#[inline(always)]
fn gelu_tanh(x: f32) -> f32 {
    0.5 * x * (1.0 + (SQRT_2_OVER_PI * (x + GELU_C * x * x * x)).tanh())
}
/// d/dx of the tanh approximation (Hendrycks & Gimpel 2016, eq. in sec. 2).
#[inline(always)]
fn gelu_tanh_grad(x: f32) -> f32 {
    let u = SQRT_2_OVER_PI * (x + GELU_C * x * x * x);
    let t = u.tanh();
    0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * SQRT_2_OVER_PI * (1.0 + 3.0 * GELU_C * x * x)
}
#[inline(always)]
fn gelu_erf(x: f32) -> f32 {
    0.5 * x * (1.0 + erf(x * std::f32::consts::FRAC_1_SQRT_2))
}
/// Φ(x) + x φ(x).
#[inline(always)]
fn gelu_erf_grad(x: f32) -> f32 {
    let cdf = 0.5 * (1.0 + erf(x * std::f32::consts::FRAC_1_SQRT_2));
    let pdf = exp(-0.5 * x * x)
        * (0.5 * std::f32::consts::FRAC_2_SQRT_PI * std::f32::consts::FRAC_1_SQRT_2);
    cdf + x * pdf
}
/// `(gelu(x), gelu'(x))` sharing one exponential: erf's exp(-x²/2) is
/// also the Gaussian density's.
#[derive(Clone, Copy)]
struct GeluErfWithGrad;

impl crate::cpu::simd::Map<f32, (f32, f32)> for GeluErfWithGrad {
    #[inline(always)]
    fn apply(&self, x: f32) -> (f32, f32) {
        let a = x.abs() * std::f32::consts::FRAC_1_SQRT_2;
        let t = 1.0 / (1.0 + 0.327_591_1 * a);
        let poly = t
            * (0.254_829_6
                + t * (-0.284_496_74 + t * (1.421_413_7 + t * (-1.453_152 + t * 1.061_405_4))));
        let e = exp(-a * a);
        let erf = (1.0 - poly * e).copysign(x);
        let cdf = 0.5 * (1.0 + erf);
        let pdf = e * (0.5 * std::f32::consts::FRAC_2_SQRT_PI * std::f32::consts::FRAC_1_SQRT_2);
        (x * cdf, cdf + x * pdf)
    }
}

map_fn! {
    GeluTanh: |x| gelu_tanh(x);
    GeluErf: |x| gelu_erf(x);
    Sigmoid: |x| sigmoid(x);
    Silu: |x| x * sigmoid(x);
}
map_fn! {
    /// `g * gelu'(x)`, the input gradient in one pass.
    GeluTanhBackward: |g, x| g * gelu_tanh_grad(x);
    GeluErfBackward: |g, x| g * gelu_erf_grad(x);
    /// silu'(x) = s (1 + x (1 - s)), s = sigmoid(x).
    SiluBackward: |g, x| { let s = sigmoid(x); g * s * (1.0 + x * (1.0 - s)) };
}

/// Written with selects rather than branches so the map vectorizes; the
/// exponent is never positive, so exp cannot overflow.
#[inline(always)]
fn sigmoid(x: f32) -> f32 {
    let e = exp(-x.abs());
    let r = 1.0 / (1.0 + e);
    if x >= 0.0 {
        r
    } else {
        e * r
    }
}

#[derive(Clone, Copy, Debug)]
enum Unary {
    Neg,
    Exp,
    Log,
    Sqrt,
    Abs,
    Tanh,
    Sigmoid,
    Relu,
    Silu,
    GeluTanh,
    GeluErf,
    Step,
    Sign,
    Powf(f32),
    Affine(f32, f32),
}

impl Unary {
    fn name(self) -> &'static str {
        match self {
            Unary::Neg => "neg",
            Unary::Exp => "exp",
            Unary::Log => "log",
            Unary::Sqrt => "sqrt",
            Unary::Abs => "abs",
            Unary::Tanh => "tanh",
            Unary::Sigmoid => "sigmoid",
            Unary::Relu => "relu",
            Unary::Silu => "silu",
            Unary::GeluTanh => "gelu",
            Unary::GeluErf => "gelu_erf",
            Unary::Step => "step",
            Unary::Sign => "sign",
            Unary::Powf(_) => "powf",
            Unary::Affine(..) => "affine",
        }
    }

    /// The CPU kernel: one monomorphized map per op.
    fn apply(self, data: &[f32], l: &Layout) -> Vec<f32> {
        match self {
            Unary::Neg => k::unary(data, l, |x: f32| -x),
            Unary::Exp => k::unary(data, l, Exp),
            Unary::Log => k::unary(data, l, f32::ln),
            Unary::Sqrt => k::unary(data, l, f32::sqrt),
            Unary::Abs => k::unary(data, l, f32::abs),
            Unary::Tanh => k::unary(data, l, f32::tanh),
            Unary::Sigmoid => k::unary(data, l, Sigmoid),
            Unary::Relu => k::unary(data, l, |x: f32| if x > 0.0 { x } else { 0.0 }),
            Unary::Silu => k::unary(data, l, Silu),
            Unary::GeluTanh => k::unary(data, l, GeluTanh),
            Unary::GeluErf => k::unary(data, l, GeluErf),
            // Heaviside with H(0) = 0: the M-P neuron fires only above threshold.
            Unary::Step => k::unary(data, l, |x: f32| if x > 0.0 { 1.0 } else { 0.0 }),
            Unary::Sign => k::unary(data, l, |x: f32| {
                if x > 0.0 {
                    1.0
                } else if x < 0.0 {
                    -1.0
                } else {
                    0.0
                }
            }),
            Unary::Powf(p) => k::unary(data, l, |x: f32| x.powf(p)),
            Unary::Affine(m, a) => k::unary(data, l, |x: f32| x * m + a),
        }
    }
}

impl Tensor {
    fn unary(&self, op: Unary) -> Result<Tensor> {
        let s = self.storage();
        let out = op.apply(s.cpu().f32(op.name())?, self.layout());
        drop(s);
        let x = self.clone();
        Ok(Tensor::from_op_with_output(
            CpuStorage::F32(out),
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
                    Unary::Silu => Some(grad_map(g, &x, "silu_backward", SiluBackward)?),
                    Unary::GeluTanh => Some(grad_map(g, &x, "gelu_backward", GeluTanhBackward)?),
                    Unary::GeluErf => Some(grad_map(g, &x, "gelu_erf_backward", GeluErfBackward)?),
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
        let (y, d) = x.with_f32(|xv| k::map1_pair(xv, GeluErfWithGrad))?;
        let d = Tensor::from_vec(d, self.shape())?;
        Ok(Tensor::from_op(
            CpuStorage::F32(y),
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

    /// Broadcasts both operands to a common shape (views, no copy).
    fn broadcast_pair(
        &self,
        rhs: &Tensor,
        op: &'static str,
    ) -> Result<(Vec<usize>, Layout, Layout)> {
        let shape = broadcast_shapes(op, self.shape(), rhs.shape())?;
        Ok((
            shape.clone(),
            self.layout().broadcast_as(&shape)?,
            rhs.layout().broadcast_as(&shape)?,
        ))
    }

    fn binary_kernel<T: Copy + Send + Sync + Default>(
        &self,
        rhs: &Tensor,
        op: &'static str,
        f: impl crate::cpu::simd::Map<(f32, f32), T>,
    ) -> Result<(Vec<usize>, Vec<T>)> {
        let (shape, la, lb) = self.broadcast_pair(rhs, op)?;
        // Taking a second read lock on the same RwLock can deadlock behind a
        // waiting writer, so `x * x` reads through one guard.
        let sa = self.storage();
        let out = if self.shares_storage_with(rhs) {
            let a = sa.cpu().f32(op)?;
            k::binary(a, &la, a, &lb, f)
        } else {
            let sb = rhs.storage();
            k::binary(sa.cpu().f32(op)?, &la, sb.cpu().f32(op)?, &lb, f)
        };
        Ok((shape, out))
    }

    pub fn add(&self, rhs: &Tensor) -> Result<Tensor> {
        let (shape, out) = self.binary_kernel(rhs, "add", |a: f32, b: f32| a + b)?;
        let (sa, sb) = (self.shape().to_vec(), rhs.shape().to_vec());
        Ok(Tensor::from_op(
            CpuStorage::F32(out),
            &shape,
            "add",
            &[self, rhs],
            move |g| Ok(vec![Some(g.sum_to_shape(&sa)?), Some(g.sum_to_shape(&sb)?)]),
        ))
    }

    pub fn sub(&self, rhs: &Tensor) -> Result<Tensor> {
        let (shape, out) = self.binary_kernel(rhs, "sub", |a: f32, b: f32| a - b)?;
        let (sa, sb) = (self.shape().to_vec(), rhs.shape().to_vec());
        Ok(Tensor::from_op(
            CpuStorage::F32(out),
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
        let (shape, out) = self.binary_kernel(rhs, "mul", |a: f32, b: f32| a * b)?;
        let (a, b) = (self.detach(), rhs.detach());
        let (ra, rb) = (self.requires_grad(), rhs.requires_grad());
        Ok(Tensor::from_op(
            CpuStorage::F32(out),
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
        let (shape, out) = self.binary_kernel(rhs, "div", |a: f32, b: f32| a / b)?;
        let (a, b) = (self.detach(), rhs.detach());
        let (ra, rb) = (self.requires_grad(), rhs.requires_grad());
        Ok(Tensor::from_op(
            CpuStorage::F32(out),
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

    fn compare(
        &self,
        rhs: &Tensor,
        op: &'static str,
        f: impl Fn(f32, f32) -> bool + Sync,
    ) -> Result<Tensor> {
        let (shape, out) = self.binary_kernel(rhs, op, |a: f32, b: f32| f(a, b) as u8)?;
        Tensor::from_storage(CpuStorage::U8(out), &shape)
    }
    /// `self > rhs` as a u8 mask.
    pub fn gt(&self, rhs: &Tensor) -> Result<Tensor> {
        self.compare(rhs, "gt", |a, b| a > b)
    }
    pub fn ge(&self, rhs: &Tensor) -> Result<Tensor> {
        self.compare(rhs, "ge", |a, b| a >= b)
    }
    pub fn lt(&self, rhs: &Tensor) -> Result<Tensor> {
        self.compare(rhs, "lt", |a, b| a < b)
    }
    pub fn eq_elem(&self, rhs: &Tensor) -> Result<Tensor> {
        self.compare(rhs, "eq", |a, b| a == b)
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
fn grad_map(
    g: &Tensor,
    x: &Tensor,
    op: &'static str,
    f: impl crate::cpu::simd::Map<(f32, f32), f32>,
) -> Result<Tensor> {
    let (shape, out) = g.binary_kernel(x, op, f)?;
    Tensor::from_vec(out, &shape)
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
    let m = mask_f.detach().broadcast_as(&shape)?.to_vec_f32()?;
    let av = a.detach().broadcast_as(&shape)?.to_vec_f32()?;
    let bv = b.detach().broadcast_as(&shape)?.to_vec_f32()?;
    let out = k::select(&m, &av, &bv);
    let (sa, sb) = (a.shape().to_vec(), b.shape().to_vec());
    let mask_kept = mask_f.detach();
    Ok(Tensor::from_op(
        CpuStorage::F32(out),
        &shape,
        "where",
        &[a, b],
        move |g| {
            let zero = Tensor::scalar(0.0);
            Ok(vec![
                Some(where_cond(&mask_kept, g, &zero)?.sum_to_shape(&sa)?),
                Some(where_cond(&mask_kept, &zero, g)?.sum_to_shape(&sb)?),
            ])
        },
    ))
}
