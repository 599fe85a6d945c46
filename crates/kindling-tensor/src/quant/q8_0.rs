//! Q8_0 (`block_q8_0` in ggml-common.h): 32 weights as an f16 scale `d`
//! and 32 signed bytes, `w = d·q`, 34 bytes. The reference quantizer takes
//! `d = max|x| / 127` and `q = roundf(x / d)` (half away from zero).
//!
//! The same blocks carry the activations of `matmul` for the 32-weight
//! formats ([`Q8Acts`]); llama.cpp's x86 activation quantizer
//! (`quantize_row_q8_0`/`q8_1` in ggml-cpu/arch/x86/quants.c, not the
//! `_ref` one) multiplies by `127 / max|x|` and rounds half to even, and
//! Q4_1 also wants block_q8_1's `s = d·Σq`.

use super::{amax, c_trunc, f16_at, f16_bits, f16_round, nearest_int, tile_rows, Isa};
use rayon::prelude::*;

pub(crate) const QK: usize = 32;
pub(crate) const BLOCK_BYTES: usize = 2 + QK;
/// VNNI multiplies unsigned by signed bytes: Q8_0 weights go in as q + 128,
/// and 128·Σx comes off again (see [`Q8Acts::corr`]).
pub(crate) const OFFSET: i32 = 128;

/// ggml's `quantize_row_q8_0_ref`, byte for byte.
pub(crate) fn quantize_row(x: &[f32], out: &mut [u8]) {
    for (xb, ob) in x.chunks_exact(QK).zip(out.chunks_exact_mut(BLOCK_BYTES)) {
        // MAX(amax, fabsf(v)) as the C macro evaluates it.
        let amax = xb
            .iter()
            .fold(0f32, |a, v| if a > v.abs() { a } else { v.abs() });
        let d = amax / 127.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        ob[..2].copy_from_slice(&f16_bits(d).to_le_bytes());
        for (q, &v) in ob[2..].iter_mut().zip(xb) {
            *q = c_trunc((v * id).round()) as u8;
        }
    }
}

/// ggml's `dequantize_row_q8_0`.
pub(crate) fn dequantize_row(b: &[u8], out: &mut [f32]) {
    for (blk, o) in b.chunks_exact(BLOCK_BYTES).zip(out.chunks_exact_mut(QK)) {
        let d = f16_at(blk, 0);
        for (y, &q) in o.iter_mut().zip(&blk[2..]) {
            *y = q as i8 as f32 * d;
        }
    }
}

/// `m` rows of activations as Q8_0/Q8_1 blocks, stored by field so the
/// kernels load 32 or 64 quants at a time.
pub(crate) struct Q8Acts {
    /// Row length.
    pub k: usize,
    /// `[m, k]` quants, |q| ≤ 127.
    pub qs: Vec<i8>,
    /// `[m, k/32]` scales, rounded to f16 as block_q8_0 stores them.
    pub d: Vec<f32>,
    /// `[m, k/32]` block_q8_1's `s`: f16(d·Σq), for Q4_1's minimum.
    pub s: Vec<f32>,
    /// `[m, k/4]` −offset·(sum of each 4 consecutive quants): added to the
    /// 4-product lanes of `maddubs`+`madd` or `dpbusd`, it turns a product
    /// with weights stored as `q + offset` (unsigned) into the product with `q`.
    pub corr: Vec<i32>,
    /// `[m, k/32]` −offset·(sum of the block's quants), the same for a
    /// whole block (the tiled kernels' starting value).
    pub block_corr: Vec<i32>,
}

impl Q8Acts {
    /// Quantizes the row-major `[m, k]` activations; `offset` is what the
    /// weight format adds to its quants (8 for Q4_0, 128 for Q8_0, 0 for
    /// Q4_1). Every kernel family gives the same values.
    pub fn quantize(isa: Isa, x: &[f32], m: usize, k: usize, offset: i32) -> Q8Acts {
        debug_assert!(k.is_multiple_of(QK) && x.len() == m * k);
        let nb = k / QK;
        let mut a = Q8Acts {
            k,
            qs: vec![0; m * k],
            d: vec![0.0; m * nb],
            s: vec![0.0; m * nb],
            corr: vec![0; m * k / 4],
            block_corr: vec![0; m * nb],
        };
        let row = |(((x, qs), d), ((s, corr), block_corr)): RowParts| {
            let row = QuantizeRow {
                x,
                qs,
                d,
                s,
                corr,
                block_corr,
                offset,
            };
            match isa {
                // SAFETY: `matmul_with` runs a family only when `Isa::supported`.
                #[cfg(target_arch = "x86_64")]
                Isa::Avx2 => unsafe { avx2::quantize_row(row) },
                #[cfg(target_arch = "x86_64")]
                Isa::Avx512Vnni => unsafe { vnni::quantize_row(row) },
                _ => row.scalar(),
            }
        };
        let parts = x
            .par_chunks(k)
            .zip(a.qs.par_chunks_mut(k))
            .zip(a.d.par_chunks_mut(nb))
            .zip(
                a.s.par_chunks_mut(nb)
                    .zip(a.corr.par_chunks_mut(k / 4))
                    .zip(a.block_corr.par_chunks_mut(nb)),
            );
        // A decoding step's single row is quicker done than handed over.
        if m * k >= 1 << 15 {
            parts.for_each(row);
        } else {
            x.chunks(k)
                .zip(a.qs.chunks_mut(k))
                .zip(a.d.chunks_mut(nb))
                .zip(
                    a.s.chunks_mut(nb)
                        .zip(a.corr.chunks_mut(k / 4))
                        .zip(a.block_corr.chunks_mut(nb)),
                )
                .for_each(row);
        }
        a
    }
}

/// A row's input and its outputs (quants, d, s, corr, block_corr), as
/// zipped chunks.
type RowParts<'a> = (
    ((&'a [f32], &'a mut [i8]), &'a mut [f32]),
    ((&'a mut [f32], &'a mut [i32]), &'a mut [i32]),
);

/// One row of activations to Q8_0/Q8_1: llama.cpp's x86
/// `quantize_row_q8_0`/`q8_1` — `d = max|x|/127`, `q = round(x·127/max|x|)`
/// half to even — plus the sums the kernels need.
pub(super) struct QuantizeRow<'a> {
    x: &'a [f32],
    qs: &'a mut [i8],
    d: &'a mut [f32],
    s: &'a mut [f32],
    corr: &'a mut [i32],
    block_corr: &'a mut [i32],
    offset: i32,
}

impl QuantizeRow<'_> {
    /// The reference the vector versions must equal exactly: only exact
    /// operations (max, one rounding per multiply and add, integer sums).
    fn scalar(self) {
        for (b, xb) in self.x.chunks_exact(QK).enumerate() {
            let amax = amax(xb);
            let d = amax / 127.0;
            let id = if amax != 0.0 { 127.0 / amax } else { 0.0 };
            let q = &mut self.qs[b * QK..][..QK];
            let mut sum = 0i32;
            for (q, &v) in q.iter_mut().zip(xb) {
                let n = nearest_int(v * id);
                *q = n as i8;
                sum += n;
            }
            for (c, g) in self.corr[b * QK / 4..][..QK / 4]
                .iter_mut()
                .zip(q.chunks_exact(4))
            {
                *c = -self.offset * g.iter().map(|&v| v as i32).sum::<i32>();
            }
            self.block_corr[b] = -self.offset * sum;
            self.d[b] = f16_round(d);
            self.s[b] = f16_round(d * sum as f32);
        }
    }
}

/// `out[r * ld + j]` = weight row `j` of `w` · activation row `r`.
pub(crate) fn rows(
    isa: Isa,
    w: &[u8],
    row_bytes: usize,
    a: &Q8Acts,
    m: usize,
    out: &mut [f32],
    ld: usize,
) {
    match isa {
        Isa::Scalar => tile_rows!(w, row_bytes, a, m, out, ld, dot_scalar),
        // SAFETY: `matmul_with` runs a family only when `Isa::supported`.
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => unsafe { avx2::rows(w, row_bytes, a, m, out, ld) },
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512Vnni => unsafe { vnni::rows(w, row_bytes, a, m, out, ld) },
        #[cfg(not(target_arch = "x86_64"))]
        _ => unreachable!("only the scalar kernels exist off x86-64"),
    }
}

/// The reference, in llama.cpp's order (`ggml_vec_dot_q8_0_q8_0` on x86,
/// and tinyBLAS's Q8_0 tiles): per block, eight exact integer sums of 4
/// products each, each added into its own lane as `fma(d_w·d_x, sum,
/// lane)`; the 8 lanes summed at the end as `hsum_float_8` pairs them.
fn dot_scalar<const R: usize>(w: &[u8], a: &Q8Acts, r0: usize) -> [f32; R] {
    let nb = a.k / QK;
    std::array::from_fn(|r| {
        let (qs, d) = (&a.qs[(r0 + r) * a.k..][..a.k], &a.d[(r0 + r) * nb..][..nb]);
        let mut lanes = [0f32; 8];
        for (b, blk) in w.chunks_exact(BLOCK_BYTES).enumerate() {
            let s = f16_at(blk, 0) * d[b];
            for (l, lane) in lanes.iter_mut().enumerate() {
                let isum: i32 = blk[2 + 4 * l..][..4]
                    .iter()
                    .zip(&qs[b * QK + 4 * l..][..4])
                    .map(|(&q, &y)| q as i8 as i32 * y as i32)
                    .sum();
                *lane = s.mul_add(isum as f32, *lane);
            }
        }
        super::hsum8(&lanes)
    })
}

#[cfg(target_arch = "x86_64")]
pub(super) mod avx2 {
    use super::super::x86::{f16_load, hsum256, round_f16};
    use super::*;
    use std::arch::x86_64::*;

    /// ggml's `nearest_int` on 8 lanes: (v·id + 1.5·2²³), low mantissa bits.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    fn nearest(v: __m256, id: __m256) -> __m256i {
        let t = _mm256_add_ps(_mm256_mul_ps(v, id), _mm256_set1_ps(12_582_912.0));
        _mm256_sub_epi32(
            _mm256_and_si256(_mm256_castps_si256(t), _mm256_set1_epi32(0x007f_ffff)),
            _mm256_set1_epi32(0x0040_0000),
        )
    }

    /// `QuantizeRow::scalar`, 32 values at a time; the same bits.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(in super::super) unsafe fn quantize_row(row: QuantizeRow) {
        let QuantizeRow {
            x,
            qs,
            d,
            s,
            corr,
            block_corr,
            offset,
        } = row;
        let nb = x.len() / QK;
        assert!(qs.len() >= nb * QK && corr.len() >= nb * QK / 4);
        assert!(d.len() >= nb && s.len() >= nb && block_corr.len() >= nb);
        let abs = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fff_ffff));
        let (ones8, ones16) = (_mm256_set1_epi8(1), _mm256_set1_epi16(1));
        let order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
        for b in 0..nb {
            let p = x.as_ptr().add(b * QK);
            let v: [__m256; 4] = std::array::from_fn(|i| _mm256_loadu_ps(p.add(8 * i)));
            let a = _mm256_max_ps(
                _mm256_max_ps(_mm256_and_ps(v[0], abs), _mm256_and_ps(v[1], abs)),
                _mm256_max_ps(_mm256_and_ps(v[2], abs), _mm256_and_ps(v[3], abs)),
            );
            let a = _mm_max_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
            let a = _mm_max_ps(a, _mm_movehl_ps(a, a));
            let amax = _mm_cvtss_f32(_mm_max_ss(a, _mm_movehdup_ps(a)));
            let dd = amax / 127.0;
            let id = _mm256_set1_ps(if amax != 0.0 { 127.0 / amax } else { 0.0 });
            let q: [__m256i; 4] = std::array::from_fn(|i| nearest(v[i], id));
            let sum = _mm256_add_epi32(_mm256_add_epi32(q[0], q[1]), _mm256_add_epi32(q[2], q[3]));
            let sum = _mm_add_epi32(
                _mm256_castsi256_si128(sum),
                _mm256_extracti128_si256(sum, 1),
            );
            let sum = _mm_add_epi32(sum, _mm_unpackhi_epi64(sum, sum));
            let sum = _mm_cvtsi128_si32(_mm_add_epi32(sum, _mm_shuffle_epi32(sum, 1)));
            // i32 → i8 (all within ±127), the 128-bit halves put back in order.
            let bytes = _mm256_packs_epi16(
                _mm256_packs_epi32(q[0], q[1]),
                _mm256_packs_epi32(q[2], q[3]),
            );
            let bytes = _mm256_permutevar8x32_epi32(bytes, order);
            _mm256_storeu_si256(qs.as_mut_ptr().add(b * QK) as *mut __m256i, bytes);
            let sums4 = _mm256_madd_epi16(_mm256_maddubs_epi16(ones8, bytes), ones16);
            let c = _mm256_mullo_epi32(sums4, _mm256_set1_epi32(-offset));
            _mm256_storeu_si256(corr.as_mut_ptr().add(b * QK / 4) as *mut __m256i, c);
            block_corr[b] = -offset * sum;
            d[b] = dd;
            s[b] = dd * sum as f32;
        }
        round_f16(&mut d[..nb]);
        round_f16(&mut s[..nb]);
    }

    #[target_feature(enable = "avx2,fma,f16c")]
    pub(in super::super) unsafe fn rows(
        w: &[u8],
        row_bytes: usize,
        a: &Q8Acts,
        m: usize,
        out: &mut [f32],
        ld: usize,
    ) {
        tile_rows!(w, row_bytes, a, m, out, ld, dot)
    }

    /// Block `b` of 32 weights `q` given as unsigned bytes (q + offset, the
    /// offset taken off again by `corr`) with scale `dw`, times block `b` of
    /// each activation row, into `acc`: `maddubs` multiplies unsigned by
    /// signed bytes and adds pairs (at most 2·255·127, no saturation for
    /// 4-bit weights), `madd` by ones adds pairs of pairs.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(in super::super) unsafe fn unsigned_block<const R: usize>(
        q: __m256i,
        dw: f32,
        a: &Q8Acts,
        r0: usize,
        b: usize,
        acc: &mut [__m256; R],
    ) {
        let nb = a.k / QK;
        let ones = _mm256_set1_epi16(1);
        for (r, acc) in acc.iter_mut().enumerate() {
            let at = (r0 + r) * a.k + b * QK;
            let y = _mm256_loadu_si256(a.qs.as_ptr().add(at) as *const __m256i);
            let c = _mm256_loadu_si256(a.corr.as_ptr().add(at / 4) as *const __m256i);
            let p = _mm256_add_epi32(_mm256_madd_epi16(_mm256_maddubs_epi16(q, y), ones), c);
            let s = _mm256_set1_ps(dw * *a.d.get_unchecked((r0 + r) * nb + b));
            *acc = _mm256_fmadd_ps(s, _mm256_cvtepi32_ps(p), *acc);
        }
    }

    /// One Q8_0 block into `acc`. Signed × signed: |q| times y with q's sign
    /// (`_mm256_sign_epi8`), as q + 128 would saturate `maddubs`' pairs.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn block<const R: usize>(
        blk: *const u8,
        a: &Q8Acts,
        r0: usize,
        b: usize,
        acc: &mut [__m256; R],
    ) {
        let nb = a.k / QK;
        let dw = f16_load(blk);
        let q = _mm256_loadu_si256(blk.add(2) as *const __m256i);
        let aq = _mm256_sign_epi8(q, q);
        let ones = _mm256_set1_epi16(1);
        for (r, acc) in acc.iter_mut().enumerate() {
            let row = r0 + r;
            let y = _mm256_loadu_si256(a.qs.as_ptr().add(row * a.k + b * QK) as *const __m256i);
            let p = _mm256_madd_epi16(_mm256_maddubs_epi16(aq, _mm256_sign_epi8(y, q)), ones);
            let s = _mm256_set1_ps(dw * *a.d.get_unchecked(row * nb + b));
            *acc = _mm256_fmadd_ps(s, _mm256_cvtepi32_ps(p), *acc);
        }
    }

    /// One accumulator per row, the blocks in order (llama.cpp's order:
    /// the same bits as `dot_scalar`).
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn dot<const R: usize>(w: &[u8], a: &Q8Acts, r0: usize) -> [f32; R] {
        let nb = a.k / QK;
        assert!(w.len() >= nb * BLOCK_BYTES && (r0 + R) * a.k <= a.qs.len());
        let mut acc = [_mm256_setzero_ps(); R];
        for b in 0..nb {
            block(w.as_ptr().add(b * BLOCK_BYTES), a, r0, b, &mut acc);
        }
        std::array::from_fn(|r| hsum256(acc[r]))
    }
}

#[cfg(target_arch = "x86_64")]
pub(super) mod vnni {
    use super::super::x86::{f16_load, hsum256, round_f16};
    use super::*;
    use std::arch::x86_64::*;

    /// ggml's `nearest_int` on 16 lanes.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
    fn nearest(v: __m512, id: __m512) -> __m512i {
        let t = _mm512_add_ps(_mm512_mul_ps(v, id), _mm512_set1_ps(12_582_912.0));
        _mm512_sub_epi32(
            _mm512_and_si512(_mm512_castps_si512(t), _mm512_set1_epi32(0x007f_ffff)),
            _mm512_set1_epi32(0x0040_0000),
        )
    }

    /// `QuantizeRow::scalar`, a block per two vectors; the same bits.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
    pub(in super::super) unsafe fn quantize_row(row: QuantizeRow) {
        let QuantizeRow {
            x,
            qs,
            d,
            s,
            corr,
            block_corr,
            offset,
        } = row;
        let nb = x.len() / QK;
        assert!(qs.len() >= nb * QK && corr.len() >= nb * QK / 4);
        assert!(d.len() >= nb && s.len() >= nb && block_corr.len() >= nb);
        let ones = _mm256_set1_epi8(1);
        for b in 0..nb {
            let p = x.as_ptr().add(b * QK);
            let (x0, x1) = (_mm512_loadu_ps(p), _mm512_loadu_ps(p.add(16)));
            let amax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(x0), _mm512_abs_ps(x1)));
            let dd = amax / 127.0;
            let id = _mm512_set1_ps(if amax != 0.0 { 127.0 / amax } else { 0.0 });
            let (q0, q1) = (nearest(x0, id), nearest(x1, id));
            let sum = _mm512_reduce_add_epi32(_mm512_add_epi32(q0, q1));
            let bytes = _mm256_set_m128i(_mm512_cvtepi32_epi8(q1), _mm512_cvtepi32_epi8(q0));
            _mm256_storeu_si256(qs.as_mut_ptr().add(b * QK) as *mut __m256i, bytes);
            let sums4 = _mm256_dpbusd_epi32(_mm256_setzero_si256(), ones, bytes);
            let c = _mm256_mullo_epi32(sums4, _mm256_set1_epi32(-offset));
            _mm256_storeu_si256(corr.as_mut_ptr().add(b * QK / 4) as *mut __m256i, c);
            block_corr[b] = -offset * sum;
            d[b] = dd;
            s[b] = dd * sum as f32;
        }
        round_f16(&mut d[..nb]);
        round_f16(&mut s[..nb]);
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
    pub(in super::super) unsafe fn rows(
        w: &[u8],
        row_bytes: usize,
        a: &Q8Acts,
        m: usize,
        out: &mut [f32],
        ld: usize,
    ) {
        tile_rows!(w, row_bytes, a, m, out, ld, dot)
    }

    /// A block at a time on 8 lanes (`dpbusd` on 256 bits, weights flipped
    /// to q + 128 by xor with 0x80 and `corr` taking 128·Σy off again), in
    /// llama.cpp's order: the same bits as `dot_scalar`.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
    unsafe fn dot<const R: usize>(w: &[u8], a: &Q8Acts, r0: usize) -> [f32; R] {
        let nb = a.k / QK;
        assert!(w.len() >= nb * BLOCK_BYTES && (r0 + R) * a.k <= a.qs.len());
        let flip = _mm256_set1_epi8(-128);
        let mut acc = [_mm256_setzero_ps(); R];
        for b in 0..nb {
            let blk = w.as_ptr().add(b * BLOCK_BYTES);
            let q = _mm256_xor_si256(_mm256_loadu_si256(blk.add(2) as *const __m256i), flip);
            let dw = f16_load(blk);
            for (r, acc) in acc.iter_mut().enumerate() {
                let at = (r0 + r) * a.k + b * QK;
                let y = _mm256_loadu_si256(a.qs.as_ptr().add(at) as *const __m256i);
                let c = _mm256_loadu_si256(a.corr.as_ptr().add(at / 4) as *const __m256i);
                let lanes = _mm256_dpbusd_epi32(c, q, y);
                let s = _mm256_set1_ps(dw * *a.d.get_unchecked((r0 + r) * nb + b));
                *acc = _mm256_fmadd_ps(s, _mm256_cvtepi32_ps(lanes), *acc);
            }
        }
        std::array::from_fn(|r| hsum256(acc[r]))
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::*;
    use super::*;

    #[test]
    fn quantizer_writes_ggml_reference_bytes() {
        let x = fixture_f32("input");
        let mut ours = vec![0u8; x.len() / QK * BLOCK_BYTES];
        quantize_row(&x, &mut ours);
        assert_same_blocks(
            "Q8_0 vs ggml",
            &ours,
            fixture_bytes("q8_0.ggml"),
            BLOCK_BYTES,
        );
        assert_same_blocks(
            "Q8_0 vs gguf-py",
            &ours,
            fixture_bytes("q8_0.gguf_py"),
            BLOCK_BYTES,
        );
    }

    #[test]
    fn dequantizer_matches_gguf_py() {
        let bytes = fixture_bytes("q8_0.ggml");
        let mut ours = vec![0f32; bytes.len() / BLOCK_BYTES * QK];
        dequantize_row(bytes, &mut ours);
        assert_same_f32("Q8_0 dequantized", &ours, &fixture_f32("q8_0.dequant"));
    }

    #[test]
    fn activation_blocks_round_half_to_even_and_keep_d_times_sum() {
        // max 127 makes 127/max = 1: x is its own quant, .5 ties go to even
        // (llama.cpp's _mm256_round_ps), unlike the weights' roundf.
        let mut x = vec![0f32; 32];
        x[0] = 127.0;
        x[1] = 0.5;
        x[2] = 1.5;
        x[3] = 2.5;
        x[4] = -3.5;
        let a = Q8Acts::quantize(Isa::Scalar, &x, 1, 32, 8);
        assert_eq!(&a.qs[..5], &[127, 0, 2, 2, -4]);
        assert_eq!(a.d[0], 1.0);
        assert_eq!(a.s[0], 127.0);
        assert_eq!(a.corr[0], -8 * (127 + 2 + 2));
        assert_eq!(a.corr[1], -8 * -4);
        // All zeros: d = 0 and no division by it.
        let a = Q8Acts::quantize(Isa::Scalar, &[0.0; 64], 1, 64, 0);
        assert!(a.qs.iter().all(|&q| q == 0) && a.d == [0.0, 0.0]);
    }

    #[test]
    fn every_kernel_family_quantizes_activations_to_the_same_bits() {
        let mut rng = crate::Rng::new(3);
        let (m, k) = (5, 320);
        let mut x = randn(&mut rng, m * k, 2.0);
        // A zero block, a tie block, a huge and a tiny block.
        x[32..64].fill(0.0);
        for (i, v) in x[64..96].iter_mut().enumerate() {
            *v = i as f32 - 15.5;
        }
        x[96] = 127.0;
        x[128..160].iter_mut().for_each(|v| *v *= 1e6);
        x[160..192].iter_mut().for_each(|v| *v *= 1e-30);
        let want = Q8Acts::quantize(Isa::Scalar, &x, m, k, 8);
        for isa in supported_isas() {
            let a = Q8Acts::quantize(isa, &x, m, k, 8);
            assert_eq!(a.qs, want.qs, "{}", isa.name());
            assert_same_f32(isa.name(), &a.d, &want.d);
            assert_same_f32(isa.name(), &a.s, &want.s);
            assert_eq!(a.corr, want.corr, "{}", isa.name());
            assert_eq!(a.block_corr, want.block_corr, "{}", isa.name());
        }
    }
}
