//! Reductions over one axis of a contiguous buffer seen as `[outer, n, inner]`.
//! With `inner > 1` whole rows are added at once (vectorizes); with
//! `inner == 1` each row is summed with several accumulators.

use super::PARALLEL_MIN_ELEMS;
pub use crate::layout::split_at_axis;
use rayon::prelude::*;

/// Sum of a contiguous slice with 8 partial sums: faster, and rounding error
/// grows far slower than with one running total.
#[inline(always)]
pub fn sum_slice(x: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let chunks = x.chunks_exact(8);
    let rest = chunks.remainder();
    for c in chunks {
        for i in 0..8 {
            acc[i] += c[i];
        }
    }
    let mut s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
    for &v in rest {
        s += v;
    }
    s
}

pub fn sum_axis(x: &[f32], outer: usize, n: usize, inner: usize) -> Vec<f32> {
    let mut out = vec![0f32; outer * inner];
    if inner == 1 {
        let f = |(o, dst): (usize, &mut f32)| *dst = sum_slice(&x[o * n..(o + 1) * n]);
        if x.len() >= PARALLEL_MIN_ELEMS {
            out.par_iter_mut().enumerate().for_each(f);
        } else {
            out.iter_mut().enumerate().for_each(f);
        }
        return out;
    }
    let f = |(o, dst): (usize, &mut [f32])| {
        let block = &x[o * n * inner..(o + 1) * n * inner];
        for row in block.chunks_exact(inner) {
            for (d, &v) in dst.iter_mut().zip(row) {
                *d += v;
            }
        }
    };
    if x.len() >= PARALLEL_MIN_ELEMS && outer > 1 {
        out.par_chunks_mut(inner).enumerate().for_each(f);
    } else {
        out.chunks_mut(inner).enumerate().for_each(f);
    }
    out
}

/// Max and the index of its first occurrence along the axis (PyTorch's rule:
/// NaN wins, ties go to the first).
pub fn max_axis(x: &[f32], outer: usize, n: usize, inner: usize) -> (Vec<f32>, Vec<i64>) {
    let mut vals = vec![f32::NEG_INFINITY; outer * inner];
    let mut idx = vec![0i64; outer * inner];
    for o in 0..outer {
        for k in 0..n {
            let row = &x[(o * n + k) * inner..(o * n + k + 1) * inner];
            let (v, ix) = (
                &mut vals[o * inner..(o + 1) * inner],
                &mut idx[o * inner..(o + 1) * inner],
            );
            for i in 0..inner {
                let cur = row[i];
                if k == 0 || cur > v[i] || (cur.is_nan() && !v[i].is_nan()) {
                    v[i] = cur;
                    ix[i] = k as i64;
                }
            }
        }
    }
    (vals, idx)
}
