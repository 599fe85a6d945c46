//! Softmax and log-softmax over the last dim of a contiguous `[rows, n]`
//! buffer, subtracting the row max first so exp never overflows.

use super::reduce::sum_slice;
use super::simd::{self, exp};
use super::PARALLEL_MIN_ELEMS;
use rayon::prelude::*;

fn for_rows(x: &[f32], n: usize, f: impl Fn(&[f32], &mut [f32]) + Sync) -> Vec<f32> {
    let mut out = vec![0f32; x.len()];
    if n == 0 {
        return out;
    }
    // Whole rows per task, each task compiled for the CPU's vector width.
    let rows_per_task = (PARALLEL_MIN_ELEMS / 4 / n).max(1);
    let block = |(o, r): (&mut [f32], &[f32])| simd::dispatch(Rows { o, r, n, f: &f });
    if x.len() >= PARALLEL_MIN_ELEMS {
        out.par_chunks_mut(n * rows_per_task)
            .zip(x.par_chunks(n * rows_per_task))
            .for_each(block);
    } else {
        block((&mut out, x));
    }
    out
}

struct Rows<'a, F> {
    o: &'a mut [f32],
    r: &'a [f32],
    n: usize,
    f: &'a F,
}

impl<F: Fn(&[f32], &mut [f32])> simd::Kernel for Rows<'_, F> {
    type Output = ();
    #[inline(always)]
    fn run(self) {
        for (o, r) in self.o.chunks_mut(self.n).zip(self.r.chunks(self.n)) {
            (self.f)(r, o)
        }
    }
}

/// Largest element (-inf for an empty row), in eight lanes so it vectorizes.
#[inline(always)]
pub fn row_max(r: &[f32]) -> f32 {
    let mut acc = [f32::NEG_INFINITY; 8];
    let chunks = r.chunks_exact(8);
    let rest = chunks.remainder();
    for c in chunks {
        for i in 0..8 {
            acc[i] = acc[i].max(c[i]);
        }
    }
    rest.iter().fold(
        acc.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v)),
        |m, &v| m.max(v),
    )
}

pub fn softmax(x: &[f32], n: usize) -> Vec<f32> {
    for_rows(x, n, softmax_row)
}

#[inline(always)]
fn softmax_row(r: &[f32], o: &mut [f32]) {
    o.copy_from_slice(r);
    softmax_in_place(o, 1.0);
}

/// `softmax(row * scale)` in place, the max subtracted first. For use
/// inside a `simd::Kernel` (it inlines into the caller's loop).
#[inline(always)]
pub fn softmax_in_place(row: &mut [f32], scale: f32) {
    let m = row_max(row);
    for s in row.iter_mut() {
        *s = exp((*s - m) * scale);
    }
    let inv = 1.0 / sum_slice(row);
    row.iter_mut().for_each(|s| *s *= inv);
}

pub fn log_softmax(x: &[f32], n: usize) -> Vec<f32> {
    for_rows(x, n, log_softmax_row)
}

#[inline(always)]
fn log_softmax_row(r: &[f32], o: &mut [f32]) {
    let m = row_max(r);
    // o holds the exponentials first, then the result.
    for (d, &v) in o.iter_mut().zip(r) {
        *d = exp(v - m);
    }
    let lse = m + sum_slice(o).ln();
    for (d, &v) in o.iter_mut().zip(r) {
        *d = v - lse;
    }
}
