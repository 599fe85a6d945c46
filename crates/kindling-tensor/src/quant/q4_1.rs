//! Q4_1 (`block_q4_1`): 32 weights as an f16 scale `d`, an f16 minimum `m`
//! and 16 bytes of nibbles (as Q4_0's), `w = d·q + m`, 20 bytes. The
//! reference quantizer spans [min, max] with 16 levels.
//!
//! Products use Q8_1 activations: `Σ w·x = d_w·d_x·Σ q·y + m·(d_x·Σy)`, the
//! last factor being block_q8_1's `s`.

use super::q8_0::{Q8Acts, QK};
use super::{c_trunc, f16_at, f16_bits, tile_rows, Isa};

pub(crate) const BLOCK_BYTES: usize = 4 + QK / 2;

/// ggml's `quantize_row_q4_1_ref`, byte for byte.
pub(crate) fn quantize_row(x: &[f32], out: &mut [u8]) {
    for (xb, ob) in x.chunks_exact(QK).zip(out.chunks_exact_mut(BLOCK_BYTES)) {
        let (mut min, mut max) = (f32::MAX, -f32::MAX);
        for &v in xb {
            if v < min {
                min = v;
            }
            if v > max {
                max = v;
            }
        }
        let d = (max - min) / 15.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        ob[..2].copy_from_slice(&f16_bits(d).to_le_bytes());
        ob[2..4].copy_from_slice(&f16_bits(min).to_le_bytes());
        let nibble = |v: f32| 15.min(c_trunc((v - min) * id + 0.5) as i8 as i32) as u8;
        for j in 0..QK / 2 {
            ob[4 + j] = nibble(xb[j]) | (nibble(xb[j + QK / 2]) << 4);
        }
    }
}

/// ggml's `dequantize_row_q4_1`.
pub(crate) fn dequantize_row(b: &[u8], out: &mut [f32]) {
    for (blk, o) in b.chunks_exact(BLOCK_BYTES).zip(out.chunks_exact_mut(QK)) {
        let (d, m) = (f16_at(blk, 0), f16_at(blk, 2));
        let (lo, hi) = o.split_at_mut(QK / 2);
        for ((l, h), &q) in lo.iter_mut().zip(hi).zip(&blk[4..]) {
            *l = (q & 0x0F) as f32 * d + m;
            *h = (q >> 4) as f32 * d + m;
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

/// The reference, in llama.cpp's order (`ggml_vec_dot_q4_1_q8_1` on x86):
/// per block 8 exact integer sums of 4 products, each FMA'd into its own
/// lane with d_w·d_x; the minimum's terms m·s (exact products of two f16)
/// summed apart in block order; `hsum_float_8` of the lanes plus that sum.
fn dot_scalar<const R: usize>(w: &[u8], a: &Q8Acts, r0: usize) -> [f32; R] {
    let nb = a.k / QK;
    let nibble = |blk: &[u8], i: usize| {
        if i < QK / 2 {
            blk[4 + i] & 0x0F
        } else {
            blk[4 + i - QK / 2] >> 4
        }
    };
    std::array::from_fn(|r| {
        let row = r0 + r;
        let (qs, d, s) = (
            &a.qs[row * a.k..][..a.k],
            &a.d[row * nb..][..nb],
            &a.s[row * nb..][..nb],
        );
        let (mut lanes, mut mins) = ([0f32; 8], 0f32);
        for (b, blk) in w.chunks_exact(BLOCK_BYTES).enumerate() {
            let y = &qs[b * QK..][..QK];
            let sc = f16_at(blk, 0) * d[b];
            for (l, lane) in lanes.iter_mut().enumerate() {
                let isum: i32 = (4 * l..4 * l + 4)
                    .map(|i| nibble(blk, i) as i32 * y[i] as i32)
                    .sum();
                *lane = sc.mul_add(isum as f32, *lane);
            }
            mins += f16_at(blk, 2) * s[b];
        }
        super::hsum8(&lanes) + mins
    })
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::super::q4_0::avx2::nibbles;
    use super::super::q8_0::avx2::unsigned_block;
    use super::super::x86::{f16_load, hsum256};
    use super::*;
    use std::arch::x86_64::*;

    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) unsafe fn rows(
        w: &[u8],
        row_bytes: usize,
        a: &Q8Acts,
        m: usize,
        out: &mut [f32],
        ld: usize,
    ) {
        tile_rows!(w, row_bytes, a, m, out, ld, dot)
    }

    /// Block `b`: as Q4_0's (`corr` is zero here: no offset), plus the
    /// minimum times block_q8_1's `s`, summed apart.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn block<const R: usize>(
        p: *const u8,
        a: &Q8Acts,
        r0: usize,
        b: usize,
        acc: &mut [__m256; R],
        mins: &mut [f32; R],
    ) {
        let nb = a.k / QK;
        let b0 = p.add(b * BLOCK_BYTES);
        unsigned_block(nibbles(b0.add(4)), f16_load(b0), a, r0, b, acc);
        let m = f16_load(b0.add(2));
        for (r, s) in mins.iter_mut().enumerate() {
            // m·s is exact (two f16), so this is llama.cpp's `summs += m·s`.
            *s += m * *a.s.get_unchecked((r0 + r) * nb + b);
        }
    }

    /// One accumulator per row and one chain of minimums, the blocks in
    /// order: the same bits as `dot_scalar`.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn dot<const R: usize>(w: &[u8], a: &Q8Acts, r0: usize) -> [f32; R] {
        let nb = a.k / QK;
        assert!(w.len() >= nb * BLOCK_BYTES && (r0 + R) * a.k <= a.qs.len());
        let mut acc = [_mm256_setzero_ps(); R];
        let mut mins = [0f32; R];
        for b in 0..nb {
            block(w.as_ptr(), a, r0, b, &mut acc, &mut mins);
        }
        std::array::from_fn(|r| hsum256(acc[r]) + mins[r])
    }
}

#[cfg(target_arch = "x86_64")]
mod vnni {
    use super::super::q4_0::avx2::nibbles;
    use super::super::x86::{f16_load, hsum256};
    use super::*;
    use std::arch::x86_64::*;

    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
    pub(super) unsafe fn rows(
        w: &[u8],
        row_bytes: usize,
        a: &Q8Acts,
        m: usize,
        out: &mut [f32],
        ld: usize,
    ) {
        tile_rows!(w, row_bytes, a, m, out, ld, dot)
    }

    /// As the AVX2 `dot`, the lanes by `dpbusd` on 256 bits (no offset:
    /// Q4_1's quants are unsigned already).
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
    unsafe fn dot<const R: usize>(w: &[u8], a: &Q8Acts, r0: usize) -> [f32; R] {
        let nb = a.k / QK;
        assert!(w.len() >= nb * BLOCK_BYTES && (r0 + R) * a.k <= a.qs.len());
        let mut acc = [_mm256_setzero_ps(); R];
        let mut mins = [0f32; R];
        for b in 0..nb {
            let b0 = w.as_ptr().add(b * BLOCK_BYTES);
            let (q, dw, m) = (nibbles(b0.add(4)), f16_load(b0), f16_load(b0.add(2)));
            for r in 0..R {
                let at = (r0 + r) * a.k + b * QK;
                let y = _mm256_loadu_si256(a.qs.as_ptr().add(at) as *const __m256i);
                let lanes = _mm256_dpbusd_epi32(_mm256_setzero_si256(), q, y);
                let s = _mm256_set1_ps(dw * *a.d.get_unchecked((r0 + r) * nb + b));
                acc[r] = _mm256_fmadd_ps(s, _mm256_cvtepi32_ps(lanes), acc[r]);
                mins[r] += m * *a.s.get_unchecked((r0 + r) * nb + b);
            }
        }
        std::array::from_fn(|r| hsum256(acc[r]) + mins[r])
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
            "Q4_1 vs ggml",
            &ours,
            fixture_bytes("q4_1.ggml"),
            BLOCK_BYTES,
        );
        assert_same_blocks(
            "Q4_1 vs gguf-py",
            &ours,
            fixture_bytes("q4_1.gguf_py"),
            BLOCK_BYTES,
        );
    }

    #[test]
    fn dequantizer_matches_gguf_py() {
        let bytes = fixture_bytes("q4_1.ggml");
        let mut ours = vec![0f32; bytes.len() / BLOCK_BYTES * QK];
        dequantize_row(bytes, &mut ours);
        assert_same_f32("Q4_1 dequantized", &ours, &fixture_f32("q4_1.dequant"));
    }
}
