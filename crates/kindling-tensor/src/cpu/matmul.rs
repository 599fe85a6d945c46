//! Batched matrix multiply through the `gemm` crate, which picks AVX-512 /
//! AVX2 / scalar micro-kernels at run time. Operands are passed with their
//! own row and column strides, so transposed views need no copy.

use crate::backend::{Gemm, Mat};
use crate::layout::Layout;

/// A GEMM over CPU slices.
pub type CpuGemm<'a> = Gemm<'a, [f32]>;

/// Row and column strides of the last two dims (as gemm wants them).
fn mat_strides(l: &Layout) -> (usize, usize) {
    let r = l.rank();
    (l.strides()[r - 2], l.strides()[r - 1])
}

/// `a @ b` where `la` is `[batch..., m, k]` and `lb` is `[batch..., k, n]`,
/// both already broadcast to the same batch dims. Returns a contiguous
/// `[batch..., m, n]` buffer.
pub fn matmul(a: &[f32], la: &Layout, b: &[f32], lb: &Layout) -> Vec<f32> {
    let r = la.rank();
    let (m, k, n) = (la.shape()[r - 2], la.shape()[r - 1], lb.shape()[r - 1]);
    let batch_shape = &la.shape()[..r - 2];
    let batch: usize = batch_shape.iter().product();
    if m == 0 || n == 0 || k == 0 {
        return vec![0f32; batch * m * n];
    }
    let mut out = gemm_output(batch * m * n);
    let (a_rs, a_cs) = mat_strides(la);
    let (b_rs, b_cs) = mat_strides(lb);
    // Offset of each batch's matrix in a and b (stride 0 on broadcast dims).
    let offsets: Vec<(usize, usize)> = (0..batch)
        .map(|bi| {
            let (mut rem, mut oa, mut ob) = (bi, la.offset(), lb.offset());
            for d in (0..r - 2).rev() {
                let i = rem % batch_shape[d];
                rem /= batch_shape[d];
                oa += i * la.strides()[d];
                ob += i * lb.strides()[d];
            }
            (oa, ob)
        })
        .collect();
    let threads = rayon::current_num_threads();
    // Many small matrices: one thread per matrix. Few large ones: gemm's own threads.
    let small = m * n * k < 48 * 48 * 48;
    let run = |dst: &mut [f32], (oa, ob): (usize, usize), threads: bool| {
        let a = Mat {
            data: a,
            offset: oa,
            row_stride: a_rs,
            col_stride: a_cs,
        };
        let b = Mat {
            data: b,
            offset: ob,
            row_stride: b_rs,
            col_stride: b_cs,
        };
        gemm_with(dst, n, &Gemm::new(m, n, k, a, b), threads)
    };
    if batch > 1 && small && threads > 1 {
        use rayon::prelude::*;
        out.par_chunks_mut(m * n)
            .zip(offsets.par_iter())
            .for_each(|(dst, &o)| run(dst, o, false));
    } else {
        for (dst, &o) in out.chunks_mut(m * n).zip(&offsets) {
            run(dst, o, true);
        }
    }
    out
}

/// An output buffer for a kernel that overwrites all of it. Zero-filled:
/// leaving it uninitialised would skip a memory pass but is undefined
/// behaviour in Rust until every element is written, so we pay the memset.
pub fn gemm_output(n: usize) -> Vec<f32> {
    vec![0f32; n]
}

/// Writes `g` into a row-major `dst [m, n]`. Large products use all of
/// rayon's threads inside gemm.
pub fn gemm_into(dst: &mut [f32], g: &CpuGemm) {
    gemm_with(dst, g.n, g, true)
}

/// `gemm_into` on the calling thread only (for many small products
/// already spread over threads one per task, as attention heads are), into
/// a destination whose rows are `dst_rs` apart (a column block of a wider
/// matrix).
pub fn gemm_serial_into(dst: &mut [f32], dst_rs: usize, g: &CpuGemm) {
    gemm_with(dst, dst_rs, g, false)
}

/// A new row-major `[m, n]` holding `g`. Without a bias the output is not
/// zero-filled first: gemm writes every element when it does not read the
/// destination. Large products use rayon's threads.
pub fn gemm_new(g: &CpuGemm) -> Vec<f32> {
    let (m, n, k) = (g.m, g.n, g.k);
    if m == 0 || n == 0 || k == 0 || g.bias.is_some() {
        let mut out = vec![0f32; m * n];
        gemm_with(&mut out, n, g, true);
        return out;
    }
    let mut out: Vec<f32> = Vec::with_capacity(m * n);
    // SAFETY: the destination is m*n allocated elements with rows n apart,
    // which gemm only writes (it does not read dst when told not to); the
    // length is set once it is written.
    unsafe {
        raw_gemm(out.as_mut_ptr(), n, g, false, parallelism(m, n, k, true));
        out.set_len(m * n);
    }
    out
}

/// The one call into `gemm`: `dst (+)= a @ b` for a row-major destination
/// `dst_rs` apart (`g.bias` is the caller's business). Checks that the
/// operands' strides stay inside `a` and `b`, so the caller only answers
/// for `dst`.
///
/// # Safety
/// `dst` must be valid for writes (and reads, with `read_dst`) at every
/// `i * dst_rs + j`, i < m, j < n, and `dst_rs >= n`. m, n, k >= 1.
unsafe fn raw_gemm(
    dst: *mut f32,
    dst_rs: usize,
    g: &CpuGemm,
    read_dst: bool,
    par: gemm::Parallelism,
) {
    let (m, n, k) = (g.m, g.n, g.k);
    let (a, a_rs, a_cs) = (g.a.data, g.a.row_stride, g.a.col_stride);
    let (b, b_rs, b_cs) = (g.b.data, g.b.row_stride, g.b.col_stride);
    assert!(
        a.len() >= g.a.offset.saturating_add(span(m, k, a_rs, a_cs))
            && b.len() >= g.b.offset.saturating_add(span(k, n, b_rs, b_cs)),
        "gemm: operand strides reach past the buffers"
    );
    let (a, b) = (&a[g.a.offset..], &b[g.b.offset..]);
    // A column-major b whose columns are a multiple of 256 floats apart (a
    // transposed weight with 512 inputs, say) makes gemm's packing read
    // addresses that collide in the cache: 88 GFLOP/s against 113 from a
    // contiguous copy, on Zen 4. With enough rows to share it, the tiled
    // transpose costs less than the loss.
    let copied;
    let (b, b_rs, b_cs) = if b_rs == 1 && b_cs >= 256 && b_cs.is_multiple_of(256) && m >= 64 {
        copied = super::copy::transpose(b, n, k, b_cs);
        (&copied[..], n, 1)
    } else {
        (b, b_rs, b_cs)
    };
    // SAFETY: operands checked above, dst by the caller's contract.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst,
            1,
            dst_rs as isize,
            read_dst,
            a.as_ptr(),
            a_cs as isize,
            a_rs as isize,
            b.as_ptr(),
            b_cs as isize,
            b_rs as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            par,
        )
    }
}

fn parallelism(m: usize, n: usize, k: usize, allow_threads: bool) -> gemm::Parallelism {
    let threads = rayon::current_num_threads();
    if allow_threads && threads > 1 && m * n * k >= 32 * 32 * 32 {
        gemm::Parallelism::Rayon(threads)
    } else {
        gemm::Parallelism::None
    }
}

/// Index one past the last element a `rows x cols` strided view touches
/// (`usize::MAX` if that overflows, so a bounds check against it fails).
/// Callers pass rows, cols >= 1.
fn span(rows: usize, cols: usize, rs: usize, cs: usize) -> usize {
    (rows - 1)
        .checked_mul(rs)
        .and_then(|a| (cols - 1).checked_mul(cs).and_then(|b| a.checked_add(b)))
        .and_then(|x| x.checked_add(1))
        .unwrap_or(usize::MAX)
}

/// `dst = bias + a @ b` (or `a @ b`) into rows `dst_rs` apart.
fn gemm_with(dst: &mut [f32], dst_rs: usize, g: &CpuGemm, allow_threads: bool) {
    let (m, n, k) = (g.m, g.n, g.k);
    if m == 0 || n == 0 {
        return;
    }
    assert!(
        dst_rs >= n && dst.len() >= span(m, n, dst_rs, 1),
        "gemm: destination too small"
    );
    // The bias is loaded into the output and the product added onto it:
    // no second pass over dst.
    let accumulate = match g.bias {
        Some(bias) => {
            assert!(
                bias.data.len()
                    >= bias
                        .offset
                        .saturating_add(span(m, n, bias.row_stride, bias.col_stride)),
                "gemm: bias strides reach past its buffer"
            );
            for (i, row) in dst.chunks_mut(dst_rs).take(m).enumerate() {
                let start = bias.offset + i * bias.row_stride;
                if bias.col_stride == 1 {
                    row[..n].copy_from_slice(&bias.data[start..start + n]);
                } else {
                    for (j, d) in row[..n].iter_mut().enumerate() {
                        *d = bias.data[start + j * bias.col_stride];
                    }
                }
            }
            true
        }
        None => false,
    };
    if k == 0 {
        if !accumulate {
            for row in dst.chunks_mut(dst_rs).take(m) {
                row[..n].fill(0.0);
            }
        }
        return;
    }
    // SAFETY: the assert above keeps every dst index in bounds; its rows
    // do not overlap (dst_rs >= n); raw_gemm checks a and b.
    unsafe {
        raw_gemm(
            dst.as_mut_ptr(),
            dst_rs,
            g,
            accumulate,
            parallelism(m, n, k, allow_threads),
        )
    }
}
