//! The backend seam. Ops describe what to compute — a GEMM's operands and
//! strides, a convolution's geometry, which unary map — with the plain data
//! types below, and call the `Backend` of their inputs' storage for every
//! kernel. `CpuBackend` (in `cpu/`) is the only backend today; a GPU one
//! implements the same trait for its own `Storage` variant, and neither the
//! ops nor the autograd above them change.
//!
//! Kernels take their inputs as tensors (storage + layout) and return new
//! storage; the op wraps it in a tensor and records the backward, which
//! calls the same backend. Kernels that need contiguous data say so; the
//! op makes it so before the call.

use crate::{DType, Device, Result, Storage, Tensor};

/// One operand of a matrix product: element (i, j) is
/// `data[offset + i * row_stride + j * col_stride]`, so a transposed view is
/// the same buffer with its strides swapped, and a row vector broadcast over
/// every row (a bias) is `row_stride == 0`.
#[derive(Debug)]
pub struct Mat<'a, B: ?Sized> {
    pub data: &'a B,
    pub offset: usize,
    pub row_stride: usize,
    pub col_stride: usize,
}

// By hand: `derive` would ask `B: Copy`, which `[f32]` is not.
impl<B: ?Sized> Clone for Mat<'_, B> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<B: ?Sized> Copy for Mat<'_, B> {}
impl<B: ?Sized> Clone for Gemm<'_, B> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<B: ?Sized> Copy for Gemm<'_, B> {}

impl<'a, B: ?Sized> Mat<'a, B> {
    /// A row-major matrix with `cols` columns starting at `offset`.
    pub fn row_major(data: &'a B, offset: usize, cols: usize) -> Self {
        Mat {
            data,
            offset,
            row_stride: cols,
            col_stride: 1,
        }
    }

    /// The transpose: the same elements read with the strides swapped.
    pub fn t(self) -> Self {
        Mat {
            row_stride: self.col_stride,
            col_stride: self.row_stride,
            ..self
        }
    }

    /// A vector of `n` elements at `offset`, repeated as every row.
    pub fn broadcast_row(data: &'a B, offset: usize) -> Self {
        Mat {
            data,
            offset,
            row_stride: 0,
            col_stride: 1,
        }
    }
}

/// `out [m, n] = bias + a [m, k] @ b [k, n]` (no bias: just the product).
/// Over CPU slices (`B = [f32]`) inside kernels, over `Storage` at the
/// backend seam.
#[derive(Debug)]
pub struct Gemm<'a, B: ?Sized> {
    pub m: usize,
    pub n: usize,
    pub k: usize,
    pub a: Mat<'a, B>,
    pub b: Mat<'a, B>,
    /// Each output row starts as this `[n]` row (a `broadcast_row` Mat).
    pub bias: Option<Mat<'a, B>>,
}

impl<'a, B: ?Sized> Gemm<'a, B> {
    pub fn new(m: usize, n: usize, k: usize, a: Mat<'a, B>, b: Mat<'a, B>) -> Self {
        Gemm {
            m,
            n,
            k,
            a,
            b,
            bias: None,
        }
    }
}

/// Causal self-attention over `qkv [batch, t, 3·heads·d]`.
#[derive(Clone, Copy, Debug)]
pub struct AttentionGeometry {
    pub batch: usize,
    pub heads: usize,
    pub t: usize,
    pub d: usize,
}

impl AttentionGeometry {
    /// Model width C = H·D.
    pub fn c(&self) -> usize {
        self.heads * self.d
    }
}

/// New queries `[batch, t, heads, d]` at positions `past..past+t` against
/// keys and values `[batch, past+t, kv_heads, d]` (a KV cache's; query head
/// h reads key/value head h / (heads / kv_heads), grouped-query attention).
#[derive(Clone, Copy, Debug)]
pub struct CachedAttentionGeometry {
    pub batch: usize,
    pub t: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub d: usize,
    pub past: usize,
}

/// conv2d of `[batch, in_channels, height, width]` (NCHW) with square
/// stride and zero padding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvGeometry {
    pub batch: usize,
    pub in_channels: usize,
    pub height: usize,
    pub width: usize,
    pub out_channels: usize,
    pub kernel_h: usize,
    pub kernel_w: usize,
    pub stride: usize,
    pub padding: usize,
}

impl ConvGeometry {
    pub fn out_h(&self) -> usize {
        (self.height + 2 * self.padding - self.kernel_h) / self.stride + 1
    }
    pub fn out_w(&self) -> usize {
        (self.width + 2 * self.padding - self.kernel_w) / self.stride + 1
    }
    /// Rows of the patch matrix: one per (input channel, kernel row, kernel col).
    pub fn patch_len(&self) -> usize {
        self.in_channels * self.kernel_h * self.kernel_w
    }
    pub fn out_plane(&self) -> usize {
        self.out_h() * self.out_w()
    }
}

/// Pooling windows over `planes` planes of `height x width`, no padding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolGeometry {
    pub planes: usize,
    pub height: usize,
    pub width: usize,
    pub kernel: usize,
    pub stride: usize,
}

impl PoolGeometry {
    pub fn out_h(&self) -> usize {
        (self.height - self.kernel) / self.stride + 1
    }
    pub fn out_w(&self) -> usize {
        (self.width - self.kernel) / self.stride + 1
    }
}

/// Elementwise maps of one tensor.
#[derive(Clone, Copy, Debug)]
pub enum UnaryOp {
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

impl UnaryOp {
    pub fn name(self) -> &'static str {
        match self {
            UnaryOp::Neg => "neg",
            UnaryOp::Exp => "exp",
            UnaryOp::Log => "log",
            UnaryOp::Sqrt => "sqrt",
            UnaryOp::Abs => "abs",
            UnaryOp::Tanh => "tanh",
            UnaryOp::Sigmoid => "sigmoid",
            UnaryOp::Relu => "relu",
            UnaryOp::Silu => "silu",
            UnaryOp::GeluTanh => "gelu",
            UnaryOp::GeluErf => "gelu_erf",
            UnaryOp::Step => "step",
            UnaryOp::Sign => "sign",
            UnaryOp::Powf(_) => "powf",
            UnaryOp::Affine(..) => "affine",
        }
    }
}

/// Elementwise functions of two tensors of one (broadcast) shape. The
/// comparisons give u8 masks; the `*Backward` ops are `g * f'(x)` of an
/// activation in one pass, for its backward.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BinaryOp {
    Add,
    Sub,
    Mul,
    Div,
    Gt,
    Ge,
    Lt,
    Eq,
    SiluBackward,
    GeluTanhBackward,
    GeluErfBackward,
    /// `silu(a) · b` with llama.cpp's SiLU (`ggml_vec_swiglu_f32`).
    Swiglu,
}

impl BinaryOp {
    pub fn name(self) -> &'static str {
        match self {
            BinaryOp::Add => "add",
            BinaryOp::Sub => "sub",
            BinaryOp::Mul => "mul",
            BinaryOp::Div => "div",
            BinaryOp::Gt => "gt",
            BinaryOp::Ge => "ge",
            BinaryOp::Lt => "lt",
            BinaryOp::Eq => "eq",
            BinaryOp::SiluBackward => "silu_backward",
            BinaryOp::GeluTanhBackward => "gelu_backward",
            BinaryOp::GeluErfBackward => "gelu_erf_backward",
            BinaryOp::Swiglu => "swiglu",
        }
    }
}

/// The primitive kernels one device provides. Every op in `ops/` reaches
/// data only through these. Results are new contiguous storage; f32 unless
/// a method says otherwise. "Contiguous" inputs must be made so by the
/// caller (`Tensor::contiguous`); others may be any strided view.
pub(crate) trait Backend: Send + Sync {
    // ---- copies --------------------------------------------------------
    /// The elements of `x` (any dtype) in row-major order, contiguous.
    fn contiguous(&self, x: &Tensor) -> Result<Storage>;
    fn to_dtype(&self, x: &Tensor, dtype: DType) -> Result<Storage>;
    /// Zeros of `[outer, total, inner]` with each part `(t, start, n)` (t
    /// `[outer, n, inner]`, any dtype, read as f32) written at
    /// `start..start + n` along the middle dim: `cat`, and the gradient of
    /// `narrow`.
    fn cat(
        &self,
        parts: &[(&Tensor, usize, usize)],
        outer: usize,
        total: usize,
        inner: usize,
    ) -> Result<Storage>;

    // ---- elementwise ---------------------------------------------------
    fn unary(&self, x: &Tensor, op: UnaryOp) -> Result<Storage>;
    /// `(gelu_erf(x), gelu_erf'(x))` in one pass; `x` contiguous.
    fn gelu_erf_with_grad(&self, x: &Tensor) -> Result<(Storage, Storage)>;
    /// `op(a, b)` where `a` and `b` are views broadcast to one shape.
    fn binary(&self, a: &Tensor, b: &Tensor, op: BinaryOp) -> Result<Storage>;
    /// `mask != 0 ? a : b`, all three broadcast to one shape, mask f32.
    fn select(&self, mask: &Tensor, a: &Tensor, b: &Tensor) -> Result<Storage>;

    // ---- products ------------------------------------------------------
    /// `a [batch.., m, k] @ b [batch.., k, n]`, batch dims already broadcast.
    fn matmul(&self, a: &Tensor, b: &Tensor) -> Result<Storage>;
    /// One matrix product described by strides over storage.
    fn gemm(&self, g: &Gemm<'_, Storage>) -> Result<Storage>;

    // ---- reductions (contiguous input) ---------------------------------
    /// Sum over `axis`, which stays in the result's shape as 1.
    fn sum_axis(&self, x: &Tensor, axis: usize) -> Result<Storage>;
    /// Max over `axis` and its first index (i64).
    fn max_axis(&self, x: &Tensor, axis: usize) -> Result<(Storage, Storage)>;

    // ---- rows of the last dim (contiguous input) -----------------------
    fn softmax(&self, x: &Tensor) -> Result<Storage>;
    fn log_softmax(&self, x: &Tensor) -> Result<Storage>;
    /// Sum of `-logp[row, target]` over rows whose target is not
    /// `ignore_index`, and how many such rows; errors on a target out of range.
    fn nll_sum(
        &self,
        logp: &Tensor,
        targets: &[i64],
        ignore_index: Option<i64>,
    ) -> Result<(f64, usize)>;
    /// `(exp(logp) - onehot(targets)) * scale`, zero on ignored rows.
    fn cross_entropy_backward(
        &self,
        logp: &Tensor,
        targets: &[i64],
        ignore_index: Option<i64>,
        scale: f32,
    ) -> Result<Storage>;
    /// `(y, mean, rstd)`; `x` contiguous `[.., n]`, `w` and `b` `[n]`.
    fn layer_norm(
        &self,
        x: &Tensor,
        w: &Tensor,
        b: &Tensor,
        eps: f32,
    ) -> Result<(Storage, Storage, Storage)>;
    /// `(dx, dw, db)` from the forward's kept mean and rstd.
    fn layer_norm_backward(
        &self,
        dy: &Tensor,
        x: &Tensor,
        w: &Tensor,
        mean: &Tensor,
        rstd: &Tensor,
    ) -> Result<(Storage, Storage, Storage)>;
    /// Per-channel mean and biased variance of a contiguous `[N, C, ..]`
    /// (`channels` = C): batch normalization's statistics.
    fn batch_norm_stats(&self, x: &Tensor, channels: usize) -> Result<(Storage, Storage)>;
    /// `(x - mean) * invstd * w + b` per channel of a contiguous `[N, C, ..]`;
    /// `w`, `b`, `mean`, `invstd` are `[C]`.
    fn batch_norm_apply(
        &self,
        x: &Tensor,
        w: &Tensor,
        b: &Tensor,
        mean: &Tensor,
        invstd: &Tensor,
    ) -> Result<Storage>;
    /// `(dx, dw, db)`; `batch_stats`: the mean and invstd were the batch's
    /// own (training), so the gradient flows through them too.
    fn batch_norm_backward(
        &self,
        dy: &Tensor,
        x: &Tensor,
        w: &Tensor,
        mean: &Tensor,
        invstd: &Tensor,
        batch_stats: bool,
    ) -> Result<(Storage, Storage, Storage)>;
    /// `(y, rstd)`; `x` contiguous `[.., n]`, `w` `[n]`.
    fn rms_norm(&self, x: &Tensor, w: &Tensor, eps: f32) -> Result<(Storage, Storage)>;
    /// `(dx, dw)`.
    fn rms_norm_backward(
        &self,
        dy: &Tensor,
        x: &Tensor,
        w: &Tensor,
        rstd: &Tensor,
    ) -> Result<(Storage, Storage)>;
    /// Rotary embedding of contiguous `x [B, T, H, D]` by `sign` times the
    /// angles of `cos`, `sin [T, D/2]` (sign -1 is its backward).
    fn rope(&self, x: &Tensor, cos: &Tensor, sin: &Tensor, sign: f32) -> Result<Storage>;

    // ---- fused layers (contiguous inputs) ------------------------------
    /// `(y [B, T, C], probs [B, H, T, T])`.
    fn attention(&self, qkv: &Tensor, g: &AttentionGeometry) -> Result<(Storage, Storage)>;
    fn attention_backward(
        &self,
        dy: &Tensor,
        qkv: &Tensor,
        probs: &Tensor,
        g: &AttentionGeometry,
    ) -> Result<Storage>;
    /// `y [B, T, H·D]` of `q` (contiguous) over the views `k` and `v` (a
    /// KV cache's buffers read in place): `k`'s `[kv_heads, d]` rows are
    /// contiguous, with any batch and position strides; `v`'s too, or else
    /// its positions are contiguous (values kept transposed). No backward:
    /// the op falls back to composite ops when a gradient is needed.
    fn attention_cached(
        &self,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        g: &CachedAttentionGeometry,
    ) -> Result<Storage>;
    /// `(out, saved)`: `saved` is whatever backward needs besides x and w
    /// (the patch matrix, on the CPU).
    fn conv2d(
        &self,
        x: &Tensor,
        w: &Tensor,
        bias: Option<&Tensor>,
        g: &ConvGeometry,
    ) -> Result<(Storage, Storage)>;
    /// `(dx if need_dx, dw, db)`.
    fn conv2d_backward(
        &self,
        dout: &Tensor,
        w: &Tensor,
        saved: &Tensor,
        g: &ConvGeometry,
        need_dx: bool,
    ) -> Result<(Option<Storage>, Storage, Storage)>;
    /// `(out, argmax)`; the argmax is i64 per output.
    fn max_pool2d(&self, x: &Tensor, g: &PoolGeometry) -> Result<(Storage, Storage)>;
    fn max_pool2d_backward(
        &self,
        dout: &Tensor,
        argmax: &Tensor,
        g: &PoolGeometry,
    ) -> Result<Storage>;
    fn avg_pool2d(&self, x: &Tensor, g: &PoolGeometry) -> Result<Storage>;
    fn avg_pool2d_backward(&self, dout: &Tensor, g: &PoolGeometry) -> Result<Storage>;

    // ---- indexing over [outer, n, inner] (contiguous input) ------------
    /// `out[o, j, :] = x[o, idx[j], :]`.
    fn index_select(
        &self,
        x: &Tensor,
        outer: usize,
        n: usize,
        inner: usize,
        idx: &[i64],
    ) -> Result<Storage>;
    /// `out[o, idx[j], :] += g[o, j, :]` into zeros of `[outer, n, inner]`.
    fn index_add(
        &self,
        g: &Tensor,
        outer: usize,
        n: usize,
        inner: usize,
        idx: &[i64],
    ) -> Result<Storage>;
    /// `out[o, j, i] = x[o, idx[o, j, i], i]`, idx `[outer, m, inner]`.
    fn gather(
        &self,
        x: &Tensor,
        outer: usize,
        n: usize,
        inner: usize,
        idx: &[i64],
        m: usize,
    ) -> Result<Storage>;
    /// `out[o, idx[o, j, i], i] += src[o, j, i]` into zeros of `[outer, n, inner]`.
    fn scatter_add(
        &self,
        src: &Tensor,
        outer: usize,
        n: usize,
        inner: usize,
        idx: &[i64],
        m: usize,
    ) -> Result<Storage>;

    /// `x [rows, W.cols] · Wᵀ` for a block-quantized `W` (contiguous `x`).
    fn quantized_matmul(
        &self,
        x: &Tensor,
        w: &crate::quant::QMatrix,
        rows: usize,
    ) -> Result<Storage>;

    // ---- in place, outside the graph (optimizers, clipping) ----------
    /// One Adam/AdamW step: `p`, `m`, `v` change in place (contiguous,
    /// same shape as `g`).
    fn adam_update(
        &self,
        p: &Tensor,
        g: &Tensor,
        m: &Tensor,
        v: &Tensor,
        h: &crate::ops::optim_update::AdamStep,
    ) -> Result<()>;
    /// One SGD step: `p` (and `buf`) change in place.
    fn sgd_update(
        &self,
        p: &Tensor,
        g: &Tensor,
        buf: Option<&Tensor>,
        h: &crate::ops::optim_update::SgdStep,
    ) -> Result<()>;
    /// Σ x² in f64.
    fn sum_squares(&self, x: &Tensor) -> Result<f64>;
    /// `x *= s` in place.
    fn scale_in_place(&self, x: &Tensor, s: f32) -> Result<()>;
    /// Writes `src`'s elements (row-major) into the view `dst` in place,
    /// through its layout; the two share no storage.
    fn assign(&self, dst: &Tensor, src: &Tensor) -> Result<()>;
}

impl Device {
    /// The kernels for storage on this device.
    pub(crate) fn backend(self) -> &'static dyn Backend {
        match self {
            Device::Cpu => &crate::cpu::CpuBackend,
        }
    }
}
