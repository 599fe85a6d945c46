//! The backend seam. Ops describe what to compute — a GEMM's operands and
//! strides, a convolution's geometry, which unary map — with the plain data
//! types below, and call the `Backend` of their inputs' storage for every
//! kernel. `CpuBackend` (in `cpu/`) is the only backend today; a GPU one
//! implements the same trait for its own `Storage` variant, and neither the
//! ops nor the autograd above them change.

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
