//! Softmax and log-softmax over the last dim of a contiguous `[rows, n]`
//! buffer, subtracting the row max first so exp never overflows.

use super::PARALLEL_MIN_ELEMS;
use rayon::prelude::*;

fn for_rows(x: &[f32], n: usize, f: impl Fn(&[f32], &mut [f32]) + Sync) -> Vec<f32> {
    let mut out = vec![0f32; x.len()];
    if n == 0 {
        return out;
    }
    if x.len() >= PARALLEL_MIN_ELEMS {
        out.par_chunks_mut(n)
            .zip(x.par_chunks(n))
            .for_each(|(o, r)| f(r, o));
    } else {
        out.chunks_mut(n)
            .zip(x.chunks(n))
            .for_each(|(o, r)| f(r, o));
    }
    out
}

fn row_max(r: &[f32]) -> f32 {
    r.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v))
}

pub fn softmax(x: &[f32], n: usize) -> Vec<f32> {
    for_rows(x, n, |r, o| {
        let m = row_max(r);
        let mut s = 0f32;
        for (d, &v) in o.iter_mut().zip(r) {
            *d = (v - m).exp();
            s += *d;
        }
        let inv = 1.0 / s;
        o.iter_mut().for_each(|d| *d *= inv);
    })
}

pub fn log_softmax(x: &[f32], n: usize) -> Vec<f32> {
    for_rows(x, n, |r, o| {
        let m = row_max(r);
        let s: f32 = r.iter().map(|&v| (v - m).exp()).sum();
        let lse = m + s.ln();
        for (d, &v) in o.iter_mut().zip(r) {
            *d = v - lse;
        }
    })
}
