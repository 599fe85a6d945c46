//! Q4_0 (`block_q4_0`): 32 weights as an f16 scale `d` and 16 bytes of
//! nibbles, `w = d·(q − 8)`, 18 bytes. Byte `j` holds weight `j` in its low
//! nibble and weight `j + 16` in its high one. The reference quantizer takes
//! the value of largest magnitude *with its sign*, `max`, and `d = max / −8`,
//! so that value lands exactly on q = 0 and the other side reaches +7.
//!
//! Products use Q8_0 activations; the kernels multiply the nibbles as they
//! are (unsigned 0..15) and take 8·Σy off again.

use super::q8_0::{Q8Acts, QK};
use super::{c_trunc, f16_at, f16_bits, tile_rows, Isa};

pub(crate) const BLOCK_BYTES: usize = 2 + QK / 2;
/// What the stored nibbles add to the signed quants.
pub(crate) const OFFSET: i32 = 8;

/// ggml's `quantize_row_q4_0_ref`, byte for byte: `(int8_t)(x/d + 8.5f)`
/// truncates, then `MIN(15, ·)`.
pub(crate) fn quantize_row(x: &[f32], out: &mut [u8]) {
    for (xb, ob) in x.chunks_exact(QK).zip(out.chunks_exact_mut(BLOCK_BYTES)) {
        let (mut amax, mut max) = (0f32, 0f32);
        for &v in xb {
            if amax < v.abs() {
                amax = v.abs();
                max = v;
            }
        }
        let d = max / -8.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        ob[..2].copy_from_slice(&f16_bits(d).to_le_bytes());
        let nibble = |v: f32| 15.min(c_trunc(v * id + 8.5) as i8 as i32) as u8;
        for j in 0..QK / 2 {
            ob[2 + j] = nibble(xb[j]) | (nibble(xb[j + QK / 2]) << 4);
        }
    }
}

/// ggml's `dequantize_row_q4_0`.
pub(crate) fn dequantize_row(b: &[u8], out: &mut [f32]) {
    for (blk, o) in b.chunks_exact(BLOCK_BYTES).zip(out.chunks_exact_mut(QK)) {
        let d = f16_at(blk, 0);
        let (lo, hi) = o.split_at_mut(QK / 2);
        for ((l, h), &q) in lo.iter_mut().zip(hi).zip(&blk[2..]) {
            *l = ((q & 0x0F) as i32 - 8) as f32 * d;
            *h = ((q >> 4) as i32 - 8) as f32 * d;
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

/// The reference, in llama.cpp's order for Q4_0 (its CPU backend repacks
/// Q4_0 matrices into 8 interleaved rows, `ggml_gemv/gemm_q4_0_8x8_q8_0`):
/// each block's exact integer sum, then `fma(isum, d_w·d_x, sum)` in
/// block order.
fn dot_scalar<const R: usize>(w: &[u8], a: &Q8Acts, r0: usize) -> [f32; R] {
    let nb = a.k / QK;
    std::array::from_fn(|r| {
        let (qs, d) = (&a.qs[(r0 + r) * a.k..][..a.k], &a.d[(r0 + r) * nb..][..nb]);
        let mut sum = 0f32;
        for (b, blk) in w.chunks_exact(BLOCK_BYTES).enumerate() {
            let y = &qs[b * QK..][..QK];
            let mut isum = 0i32;
            for j in 0..QK / 2 {
                let q = blk[2 + j];
                isum += ((q & 0x0F) as i32 - 8) * y[j] as i32;
                isum += ((q >> 4) as i32 - 8) * y[j + QK / 2] as i32;
            }
            sum = (isum as f32).mul_add(f16_at(blk, 0) * d[b], sum);
        }
        sum
    })
}

#[cfg(target_arch = "x86_64")]
pub(super) mod avx2 {
    use super::super::x86::{f16_load, hsum_i32};
    use super::*;
    use std::arch::x86_64::*;

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

    /// 16 bytes of nibbles to 32 bytes: low nibbles (weights 0..16), then
    /// high ones (16..32) — the order of the activations.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(in super::super) unsafe fn nibbles(p: *const u8) -> __m256i {
        let raw = _mm_loadu_si128(p as *const __m128i);
        _mm256_and_si256(
            _mm256_set_m128i(_mm_srli_epi16(raw, 4), raw),
            _mm256_set1_epi8(0x0F),
        )
    }

    /// Block sums in integers (`maddubs`, `madd`, `corr` taking 8·Σy
    /// off), then one FMA per block and row, in block order: the same bits
    /// as `dot_scalar`.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn dot<const R: usize>(w: &[u8], a: &Q8Acts, r0: usize) -> [f32; R] {
        let nb = a.k / QK;
        assert!(w.len() >= nb * BLOCK_BYTES && (r0 + R) * a.k <= a.qs.len());
        let ones = _mm256_set1_epi16(1);
        let mut acc = [0f32; R];
        for b in 0..nb {
            let b0 = w.as_ptr().add(b * BLOCK_BYTES);
            let (q, dw) = (nibbles(b0.add(2)), f16_load(b0));
            for (r, acc) in acc.iter_mut().enumerate() {
                let at = (r0 + r) * a.k + b * QK;
                let y = _mm256_loadu_si256(a.qs.as_ptr().add(at) as *const __m256i);
                let c = _mm256_loadu_si256(a.corr.as_ptr().add(at / 4) as *const __m256i);
                let p = _mm256_add_epi32(_mm256_madd_epi16(_mm256_maddubs_epi16(q, y), ones), c);
                let s = dw * *a.d.get_unchecked((r0 + r) * nb + b);
                *acc = (hsum_i32(p) as f32).mul_add(s, *acc);
            }
        }
        acc
    }
}

#[cfg(target_arch = "x86_64")]
pub(super) mod vnni {
    use super::super::x86::{f16_load, hsum_i32};
    use super::*;
    use std::arch::x86_64::*;

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

    /// As the AVX2 `dot` (block sums, then an FMA per block), the sums by
    /// `dpbusd` on 256 bits.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
    unsafe fn dot<const R: usize>(w: &[u8], a: &Q8Acts, r0: usize) -> [f32; R] {
        let nb = a.k / QK;
        assert!(w.len() >= nb * BLOCK_BYTES && (r0 + R) * a.k <= a.qs.len());
        let mut acc = [0f32; R];
        for b in 0..nb {
            let b0 = w.as_ptr().add(b * BLOCK_BYTES);
            let (q, dw) = (super::avx2::nibbles(b0.add(2)), f16_load(b0));
            for (r, acc) in acc.iter_mut().enumerate() {
                let at = (r0 + r) * a.k + b * QK;
                let y = _mm256_loadu_si256(a.qs.as_ptr().add(at) as *const __m256i);
                let c = _mm256_loadu_si256(a.corr.as_ptr().add(at / 4) as *const __m256i);
                let s = dw * *a.d.get_unchecked((r0 + r) * nb + b);
                *acc = (hsum_i32(_mm256_dpbusd_epi32(c, q, y)) as f32).mul_add(s, *acc);
            }
        }
        acc
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
            "Q4_0 vs ggml",
            &ours,
            fixture_bytes("q4_0.ggml"),
            BLOCK_BYTES,
        );
        // gguf-py differs from ggml in one block: 32 negative zeros. ggml's
        // `max` stays at its initial +0.0 (no |v| exceeds 0), so d = 0/−8 =
        // −0.0; numpy's argmax picks the first −0.0, so d = +0.0.
        let py = fixture_bytes("q4_0.gguf_py");
        let neg_zero_block = 8 + 5;
        for (i, (a, b)) in ours
            .chunks(BLOCK_BYTES)
            .zip(py.chunks(BLOCK_BYTES))
            .enumerate()
        {
            if i == neg_zero_block {
                assert_eq!(
                    (a[..2].to_vec(), b[..2].to_vec()),
                    (vec![0x00, 0x80], vec![0x00, 0x00])
                );
                assert_eq!(a[2..], b[2..]);
            } else {
                assert_eq!(a, b, "Q4_0 vs gguf-py, block {i}");
            }
        }
    }

    #[test]
    fn dequantizer_matches_gguf_py() {
        let bytes = fixture_bytes("q4_0.ggml");
        let mut ours = vec![0f32; bytes.len() / BLOCK_BYTES * QK];
        dequantize_row(bytes, &mut ours);
        assert_same_f32("Q4_0 dequantized", &ours, &fixture_f32("q4_0.dequant"));
    }

    #[test]
    fn the_value_of_largest_magnitude_keeps_its_sign() {
        // max = −4 (first of the largest magnitude): d = 0.5, −4 → q = 0,
        // +4 → 16, clamped to 15.
        let mut x = [0f32; 32];
        x[3] = -4.0;
        x[7] = 4.0;
        x[20] = 1.0;
        let mut b = [0u8; BLOCK_BYTES];
        quantize_row(&x, &mut b);
        assert_eq!(f16_at(&b, 0), 0.5);
        assert_eq!(b[2 + 3] & 0x0F, 0);
        assert_eq!(b[2 + 7] & 0x0F, 15);
        assert_eq!(b[2 + 4] >> 4, 8 + 2);
    }
}
