//! `y [m, n] = x [m, k] @ W[n, k]^T` for a handful of rows (m ≤ 16): the
//! product of token-by-token generation, one row per sequence decoded (a
//! server decodes several at once). A general GEMM packs W into
//! panels first, which for one row costs as much memory traffic as the
//! product itself; here each row of W is read once, straight from memory,
//! and dotted with every input row while it is in registers. Output rows
//! are split over the threads. Memory bandwidth is the limit, not FLOPs.

use super::simd::{dispatch, Kernel};
use rayon::prelude::*;

/// Rows of W per task: enough work per task to amortize scheduling.
const CHUNK: usize = 64;
/// Each row of W, once loaded, is dotted with all m input rows (which stay
/// in L1/L2: 16 × 576 floats is 37 KB), so W is read once whatever m is.
pub const MAX_ROWS: usize = 16;
/// Weights up to this many elements (256 KiB of f32) are multiplied on the calling thread.
const SERIAL_MAX: usize = 1 << 16;

struct Dots<'a> {
    x: &'a [f32],
    m: usize,
    k: usize,
    w: &'a [f32],
    out: &'a mut [f32],
    first: usize,
}

impl Kernel for Dots<'_> {
    type Output = ();
    #[inline(always)]
    fn run(self) {
        let rows = self.out.len() / self.m;
        for j in 0..rows {
            let wr = &self.w[(self.first + j) * self.k..][..self.k];
            for r in 0..self.m {
                let xr = &self.x[r * self.k..][..self.k];
                // Sixteen independent sums so the adds pipeline and vectorize.
                let mut acc = [0f32; 16];
                let (wc, wt) = wr.split_at(self.k / 16 * 16);
                let (xc, xt) = xr.split_at(self.k / 16 * 16);
                for (a, b) in wc.chunks_exact(16).zip(xc.chunks_exact(16)) {
                    for i in 0..16 {
                        acc[i] += a[i] * b[i];
                    }
                }
                let mut s: f32 = acc.iter().sum();
                for (a, b) in wt.iter().zip(xt) {
                    s += a * b;
                }
                self.out[r * rows + j] = s;
            }
        }
    }
}

/// `x [m, k]`, `w [n, k]` (both row-major) → `y [m, n]`.
pub fn gemv_rows(x: &[f32], m: usize, k: usize, w: &[f32], n: usize) -> Vec<f32> {
    debug_assert!(m <= MAX_ROWS && x.len() == m * k && w.len() == n * k);
    // A small W is one task: spreading it over threads costs more than it saves.
    if n * k <= SERIAL_MAX {
        let mut y = vec![0f32; m * n];
        dispatch(Dots {
            x,
            m,
            k,
            w,
            out: &mut y,
            first: 0,
        });
        return y;
    }
    // Each task writes a [m, chunk] block; blocks are scattered into y after.
    let blocks: Vec<(usize, Vec<f32>)> = (0..n.div_ceil(CHUNK))
        .into_par_iter()
        .map(|c| {
            let first = c * CHUNK;
            let rows = CHUNK.min(n - first);
            let mut out = vec![0f32; m * rows];
            dispatch(Dots {
                x,
                m,
                k,
                w,
                out: &mut out,
                first,
            });
            (first, out)
        })
        .collect();
    let mut y = vec![0f32; m * n];
    for (first, out) in blocks {
        let rows = out.len() / m.max(1);
        for r in 0..m {
            y[r * n + first..][..rows].copy_from_slice(&out[r * rows..][..rows]);
        }
    }
    y
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_naive_product_for_odd_sizes() {
        for &(m, k, n) in &[
            (1, 5, 3),
            (2, 37, 130),
            (4, 64, 65),
            (3, 576, 200),
            (8, 576, 130),
            (16, 100, 70),
        ] {
            let x: Vec<f32> = (0..m * k)
                .map(|i| ((i * 7 % 13) as f32 - 6.0) * 0.1)
                .collect();
            let w: Vec<f32> = (0..n * k)
                .map(|i| ((i * 5 % 11) as f32 - 5.0) * 0.1)
                .collect();
            let y = gemv_rows(&x, m, k, &w, n);
            for r in 0..m {
                for j in 0..n {
                    let want: f32 = (0..k).map(|i| x[r * k + i] * w[j * k + i]).sum();
                    assert!(
                        (y[r * n + j] - want).abs() < 1e-4 * (1.0 + want.abs()),
                        "{m} {k} {n}"
                    );
                }
            }
        }
    }
}
