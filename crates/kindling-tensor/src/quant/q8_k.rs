//! Q8_K (`block_q8_K`): the activations of products with the 256-weight K
//! formats, never stored in files. 256 quants with an f32 scale, and the
//! sum of each 16 quants (`bsums`) so a format's per-sub-block minimum or
//! offset costs one multiply per 16 weights. ggml's `quantize_row_q8_K_ref`
//! (which the x86 build uses too): the value of largest magnitude `max`
//! (with its sign) maps to −127, `q = nearest_int(−127/max · x)`.

use super::q8_0::{Q8Acts, QK};
use super::{amax, nearest_int};
use crate::cpu::simd::{dispatch, Kernel};
use rayon::prelude::*;

pub(crate) const QK_K: usize = 256;

/// `m` rows of activations as Q8_K blocks, stored by field.
pub(crate) struct Q8KActs {
    /// Row length.
    pub k: usize,
    /// `[m, k]` quants, |q| ≤ 127.
    pub qs: Vec<i8>,
    /// `[m, k/256]` scales (f32: `1/iscale`).
    pub d: Vec<f32>,
    /// `[m, k/16]` sums of each 16 quants.
    pub bsums: Vec<i16>,
}

impl Q8KActs {
    pub fn quantize(x: &[f32], m: usize, k: usize) -> Q8KActs {
        debug_assert!(k.is_multiple_of(QK_K) && x.len() == m * k);
        let nb = k / QK_K;
        let mut a = Q8KActs {
            k,
            qs: vec![0; m * k],
            d: vec![0.0; m * nb],
            bsums: vec![0; m * k / 16],
        };
        let row = |((x, qs), (d, bsums)): RowParts| dispatch(QuantizeRow { x, qs, d, bsums });
        if m * k >= 1 << 15 {
            x.par_chunks(k)
                .zip(a.qs.par_chunks_mut(k))
                .zip(a.d.par_chunks_mut(nb).zip(a.bsums.par_chunks_mut(k / 16)))
                .for_each(row);
        } else {
            x.chunks(k)
                .zip(a.qs.chunks_mut(k))
                .zip(a.d.chunks_mut(nb).zip(a.bsums.chunks_mut(k / 16)))
                .for_each(row);
        }
        a
    }
}

/// A row's input and its outputs (quants, d, bsums), as zipped chunks.
type RowParts<'a> = ((&'a [f32], &'a mut [i8]), (&'a mut [f32], &'a mut [i16]));

impl Q8KActs {
    /// The same quants as 32-blocks for the tiled kernels: each block's
    /// scale is its super-block's, `s` is that scale times the block's sum
    /// (two 16-sums), and there is no offset to correct.
    pub fn as_blocks(&self) -> Q8Acts {
        let nb = self.qs.len() / QK;
        Q8Acts {
            k: self.k,
            qs: self.qs.clone(),
            d: (0..nb).map(|b| self.d[b / 8]).collect(),
            s: (0..nb)
                .map(|b| {
                    self.d[b / 8] * (self.bsums[2 * b] as i32 + self.bsums[2 * b + 1] as i32) as f32
                })
                .collect(),
            corr: Vec::new(),
            block_corr: vec![0; nb],
        }
    }
}

struct QuantizeRow<'a> {
    x: &'a [f32],
    qs: &'a mut [i8],
    d: &'a mut [f32],
    bsums: &'a mut [i16],
}

impl Kernel for QuantizeRow<'_> {
    type Output = ();
    #[inline(always)]
    fn run(self) {
        for (b, xb) in self.x.chunks_exact(QK_K).enumerate() {
            // ggml keeps the first value of the largest magnitude, sign
            // included: find the magnitude (vectorized), then that value.
            let amax = amax(xb);
            let max = xb.iter().copied().find(|v| v.abs() == amax).unwrap_or(0.0);
            let q = &mut self.qs[b * QK_K..][..QK_K];
            let sums = &mut self.bsums[b * QK_K / 16..][..QK_K / 16];
            if amax == 0.0 {
                q.fill(0);
                sums.fill(0);
                self.d[b] = 0.0;
                continue;
            }
            let iscale = -127.0 / max;
            for (q, &v) in q.iter_mut().zip(xb) {
                *q = nearest_int(iscale * v).min(127) as i8;
            }
            for (s, g) in sums.iter_mut().zip(q.chunks_exact(16)) {
                *s = g.iter().map(|&v| v as i16).sum();
            }
            self.d[b] = 1.0 / iscale;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn largest_magnitude_maps_to_minus_127_and_block_sums_add_up() {
        let mut x: Vec<f32> = (0..512)
            .map(|i| ((i * 37 % 101) as f32 - 50.0) * 0.01)
            .collect();
        x[300] = -2.0;
        x[256..272].fill(0.0);
        let a = Q8KActs::quantize(&x, 1, 512);
        assert_eq!(a.qs[300], -127);
        assert_eq!(a.d[1], 1.0 / (-127.0 / -2.0));
        assert_eq!(a.bsums[16], 0);
        for (g, s) in a.qs.chunks(16).zip(&a.bsums) {
            assert_eq!(g.iter().map(|&v| v as i16).sum::<i16>(), *s);
        }
        for (i, v) in x.iter().enumerate() {
            let back = a.qs[i] as f32 * a.d[i / 256];
            assert!(
                (back - v).abs() <= a.d[i / 256].abs() * 0.5 + 1e-6,
                "x[{i}]"
            );
        }
        let z = Q8KActs::quantize(&[0.0; 256], 1, 256);
        assert_eq!(z.d[0], 0.0);
    }
}
