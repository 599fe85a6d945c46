//! The scalar functions behind the activation ops (GELU, SiLU, sigmoid and
//! their derivatives), written so the maps vectorize, and the CPU kernel
//! that runs a `UnaryOp` or a fused gradient `BinaryOp` over a buffer.

use super::elementwise::unary as map_layout;
use super::simd::{erf, exp, map_fn, Exp};
use crate::backend::UnaryOp;
use crate::layout::Layout;

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
pub struct GeluErfWithGrad;

impl super::simd::Map<f32, (f32, f32)> for GeluErfWithGrad {
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
    /// SwiGLU's product, llama.cpp's SiLU (its AVX-512 `expf`) times `up`.
    Swiglu: |gate, up| super::ggml_order::silu(gate) * up;
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

/// `op` over `data` seen through `l`: one monomorphized map per op, so the
/// dispatch `match` runs once per call, not per element.
pub fn unary(data: &[f32], l: &Layout, op: UnaryOp) -> Vec<f32> {
    match op {
        UnaryOp::Neg => map_layout(data, l, |x: f32| -x),
        UnaryOp::Exp => map_layout(data, l, Exp),
        UnaryOp::Log => map_layout(data, l, f32::ln),
        UnaryOp::Sqrt => map_layout(data, l, f32::sqrt),
        UnaryOp::Abs => map_layout(data, l, f32::abs),
        UnaryOp::Tanh => map_layout(data, l, f32::tanh),
        UnaryOp::Sigmoid => map_layout(data, l, Sigmoid),
        UnaryOp::Relu => map_layout(data, l, |x: f32| if x > 0.0 { x } else { 0.0 }),
        UnaryOp::Silu => map_layout(data, l, Silu),
        UnaryOp::GeluTanh => map_layout(data, l, GeluTanh),
        UnaryOp::GeluErf => map_layout(data, l, GeluErf),
        // Heaviside with H(0) = 0: the M-P neuron fires only above threshold.
        UnaryOp::Step => map_layout(data, l, |x: f32| if x > 0.0 { 1.0 } else { 0.0 }),
        UnaryOp::Sign => map_layout(data, l, |x: f32| {
            if x > 0.0 {
                1.0
            } else if x < 0.0 {
                -1.0
            } else {
                0.0
            }
        }),
        UnaryOp::Powf(p) => map_layout(data, l, |x: f32| x.powf(p)),
        UnaryOp::Affine(m, a) => map_layout(data, l, |x: f32| x * m + a),
    }
}
