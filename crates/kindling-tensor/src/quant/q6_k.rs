//! Q6_K (`block_q6_K`): a super-block of 256 weights in 16 groups of 16,
//! each with a signed 8-bit scale; `w = d·sc_g·(q − 32)` with q 6 bits.
//! 210 bytes: 128 bytes of low nibbles (`ql`), 64 bytes of high 2-bit pairs
//! (`qh`), 16 scales, f16 `d` last. Within each half of 128 weights, weight
//! `32c + l` (quarter c, 0 ≤ l < 32) takes its low 4 bits from
//! `ql[l + 32·(c & 1)]` (low nibble for c < 2, high for c ≥ 2) and its top 2
//! bits from bits `2c..2c+2` of `qh[l]`.
//!
//! Kindling reads Q6_K (llama.cpp's q4_k_m and q6_k files use it) but does
//! not write it. Products use Q8_K activations; the kernels multiply the
//! unsigned 6-bit q and take `32·Σ_g sc_g·(Σy over group g)` off with `bsums`.

use super::q8_k::{Q8KActs, QK_K};
use super::{f16_at, Isa};

pub(crate) const BLOCK_BYTES: usize = QK_K / 2 + QK_K / 4 + QK_K / 16 + 2;
const QL: usize = 0;
pub(crate) const QH: usize = QK_K / 2;
pub(crate) const SCALES: usize = QH + QK_K / 4;
pub(crate) const D: usize = SCALES + QK_K / 16;

/// The 256 quants of a block, unsigned (0..63), in weight order.
#[inline(always)]
fn unpack(blk: &[u8]) -> [u8; QK_K] {
    let mut q = [0u8; QK_K];
    for half in 0..2 {
        let ql = &blk[QL + 64 * half..][..64];
        let qh = &blk[QH + 32 * half..][..32];
        let q = &mut q[128 * half..][..128];
        for l in 0..32 {
            q[l] = (ql[l] & 0x0F) | ((qh[l] & 3) << 4);
            q[l + 32] = (ql[l + 32] & 0x0F) | (((qh[l] >> 2) & 3) << 4);
            q[l + 64] = (ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4);
            q[l + 96] = (ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4);
        }
    }
    q
}

/// ggml's `dequantize_row_q6_K`: `(d·sc)·(q − 32)`.
pub(crate) fn dequantize_row(b: &[u8], out: &mut [f32]) {
    for (blk, o) in b.chunks_exact(BLOCK_BYTES).zip(out.chunks_exact_mut(QK_K)) {
        let d = f16_at(blk, D);
        let q = unpack(blk);
        for (g, (o, q)) in o.chunks_exact_mut(16).zip(q.chunks_exact(16)).enumerate() {
            let dg = d * blk[SCALES + g] as i8 as f32;
            for (o, &q) in o.iter_mut().zip(q) {
                *o = dg * (q as i32 - 32) as f32;
            }
        }
    }
}

/// `out[r * ld + j]` = weight row `j` of `w` · activation row `r`.
pub(crate) fn rows(
    isa: Isa,
    w: &[u8],
    row_bytes: usize,
    a: &Q8KActs,
    m: usize,
    out: &mut [f32],
    ld: usize,
) {
    use super::tile_rows;
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

/// The reference: per super-block the exact integer sum
/// `Σ_g sc_g·Σ (q − 32)·y`, then `(d·d_x)·isum` in order.
fn dot_scalar<const R: usize>(w: &[u8], a: &Q8KActs, r0: usize) -> [f32; R] {
    let nb = a.k / QK_K;
    std::array::from_fn(|r| {
        let row = r0 + r;
        let mut sum = 0f32;
        for (i, blk) in w.chunks_exact(BLOCK_BYTES).enumerate() {
            let y = &a.qs[row * a.k + i * QK_K..][..QK_K];
            let q = unpack(blk);
            let mut isum = 0i32;
            for g in 0..16 {
                let s: i32 = (0..16)
                    .map(|l| (q[16 * g + l] as i32 - 32) * y[16 * g + l] as i32)
                    .sum();
                isum += blk[SCALES + g] as i8 as i32 * s;
            }
            sum += (f16_at(blk, D) * a.d[row * nb + i]) * isum as f32;
        }
        sum
    })
}

/// `32·Σ_g sc_g·bsum_g`: the offset's share, taken off the unsigned product.
#[cfg(target_arch = "x86_64")]
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn offset_share(scales: *const u8, bsums: *const i16) -> std::arch::x86_64::__m256i {
    use std::arch::x86_64::*;
    let sc = _mm256_cvtepi8_epi16(_mm_loadu_si128(scales as *const __m128i));
    let bs = _mm256_loadu_si256(bsums as *const __m256i);
    _mm256_slli_epi32(_mm256_madd_epi16(sc, bs), 5)
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::super::tile_rows;
    use super::super::x86::{f16_load_last, hsum256};
    use super::*;
    use std::arch::x86_64::*;

    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) unsafe fn rows(
        w: &[u8],
        row_bytes: usize,
        a: &Q8KActs,
        m: usize,
        out: &mut [f32],
        ld: usize,
    ) {
        tile_rows!(w, row_bytes, a, m, out, ld, dot)
    }

    /// Per half: the four quarters' 32 unsigned quants rebuilt from `ql`
    /// and `qh`, each times its 32 activations (`maddubs`, pairs of at most
    /// 2·63·127), pairs added with the group's scale as multiplier (`madd`:
    /// lanes 0..8 are the quarter's first 16 weights, 8..16 the next 16).
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn dot<const R: usize>(w: &[u8], a: &Q8KActs, r0: usize) -> [f32; R] {
        let nb = a.k / QK_K;
        assert!(w.len() >= nb * BLOCK_BYTES && (r0 + R) * a.k <= a.qs.len());
        let (m4, m2) = (_mm256_set1_epi8(0x0F), _mm256_set1_epi8(0x03));
        let mut acc = [_mm256_setzero_ps(); R];
        for i in 0..nb {
            let blk = w.as_ptr().add(i * BLOCK_BYTES);
            let sc = blk.add(SCALES) as *const i8;
            let mut isum = [_mm256_setzero_si256(); R];
            for half in 0..2 {
                let ql0 = _mm256_loadu_si256(blk.add(QL + 64 * half) as *const __m256i);
                let ql1 = _mm256_loadu_si256(blk.add(QL + 64 * half + 32) as *const __m256i);
                let qh = _mm256_loadu_si256(blk.add(QH + 32 * half) as *const __m256i);
                // Bits 2c..2c+2 of qh, moved to bits 4..6 (masking after
                // the 16-bit shifts drops what crossed from the next byte).
                let h0 = _mm256_slli_epi16(_mm256_and_si256(qh, m2), 4);
                let h1 = _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2), m2), 4);
                let h2 = _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 4), m2), 4);
                let h3 = _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 6), m2), 4);
                let quarters = [
                    _mm256_or_si256(_mm256_and_si256(ql0, m4), h0),
                    _mm256_or_si256(_mm256_and_si256(ql1, m4), h1),
                    _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql0, 4), m4), h2),
                    _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql1, 4), m4), h3),
                ];
                for (c, q) in quarters.into_iter().enumerate() {
                    let g = 8 * half + 2 * c;
                    let s = _mm256_set_m128i(
                        _mm_set1_epi16(*sc.add(g + 1) as i16),
                        _mm_set1_epi16(*sc.add(g) as i16),
                    );
                    for (r, isum) in isum.iter_mut().enumerate() {
                        let y =
                            a.qs.as_ptr()
                                .add((r0 + r) * a.k + i * QK_K + 128 * half + 32 * c);
                        let p = _mm256_maddubs_epi16(q, _mm256_loadu_si256(y as *const __m256i));
                        *isum = _mm256_add_epi32(*isum, _mm256_madd_epi16(p, s));
                    }
                }
            }
            let d = f16_load_last(blk.add(D));
            for r in 0..R {
                let row = r0 + r;
                let off = offset_share(blk.add(SCALES), a.bsums.as_ptr().add((row * nb + i) * 16));
                let isum = _mm256_sub_epi32(isum[r], off);
                let dx = *a.d.get_unchecked(row * nb + i);
                acc[r] = _mm256_fmadd_ps(_mm256_set1_ps(d * dx), _mm256_cvtepi32_ps(isum), acc[r]);
            }
        }
        std::array::from_fn(|r| hsum256(acc[r]))
    }
}

#[cfg(target_arch = "x86_64")]
mod vnni {
    use super::super::tile_rows;
    use super::super::x86::{f16_load_last, hsum512};
    use super::*;
    use std::arch::x86_64::*;

    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
    pub(super) unsafe fn rows(
        w: &[u8],
        row_bytes: usize,
        a: &Q8KActs,
        m: usize,
        out: &mut [f32],
        ld: usize,
    ) {
        tile_rows!(w, row_bytes, a, m, out, ld, dot)
    }

    /// For 64 weights starting at group `4c`, the 16-bit lane → scale index
    /// (`vpermw`): lanes 8t..8t+8 hold the pairs of group 4c + t.
    const SCALE_INDEX: [[i16; 32]; 4] = {
        let mut t = [[0i16; 32]; 4];
        let mut c = 0;
        while c < 4 {
            let mut lane = 0;
            while lane < 32 {
                t[c][lane] = (4 * c + lane / 8) as i16;
                lane += 1;
            }
            c += 1;
        }
        t
    };

    /// Per half, two 64-weight vectors: [quarter 0 | quarter 1] from the
    /// low nibbles of all 64 `ql` bytes and bits 0..4 of `qh`, and
    /// [quarter 2 | quarter 3] from the high nibbles and bits 4..8; each
    /// `maddubs` then `dpwssd` with its four groups' scales.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
    unsafe fn dot<const R: usize>(w: &[u8], a: &Q8KActs, r0: usize) -> [f32; R] {
        let nb = a.k / QK_K;
        assert!(w.len() >= nb * BLOCK_BYTES && (r0 + R) * a.k <= a.qs.len());
        let (m4, m2) = (_mm512_set1_epi8(0x0F), _mm512_set1_epi8(0x03));
        let idx: [__m512i; 4] =
            std::array::from_fn(|c| _mm512_loadu_si512(SCALE_INDEX[c].as_ptr() as *const _));
        let mut acc = [_mm512_setzero_ps(); R];
        for i in 0..nb {
            let blk = w.as_ptr().add(i * BLOCK_BYTES);
            let sc = _mm512_castsi256_si512(_mm256_cvtepi8_epi16(_mm_loadu_si128(
                blk.add(SCALES) as *const __m128i
            )));
            let mut isum = [_mm512_setzero_si512(); R];
            for half in 0..2 {
                let ql = _mm512_loadu_si512(blk.add(QL + 64 * half) as *const _);
                let qh = _mm256_loadu_si256(blk.add(QH + 32 * half) as *const __m256i);
                // [qh | qh >> 2]: bits 0..2 of each half are then the top
                // bits of quarters 0 and 1; shifted by 4, of quarters 2, 3.
                let qh =
                    _mm512_inserti64x4(_mm512_castsi256_si512(qh), _mm256_srli_epi16(qh, 2), 1);
                let first = _mm512_or_si512(
                    _mm512_and_si512(ql, m4),
                    _mm512_slli_epi16(_mm512_and_si512(qh, m2), 4),
                );
                let second = _mm512_or_si512(
                    _mm512_and_si512(_mm512_srli_epi16(ql, 4), m4),
                    _mm512_slli_epi16(_mm512_and_si512(_mm512_srli_epi16(qh, 4), m2), 4),
                );
                let s_first = _mm512_permutexvar_epi16(idx[2 * half], sc);
                let s_second = _mm512_permutexvar_epi16(idx[2 * half + 1], sc);
                for (r, isum) in isum.iter_mut().enumerate() {
                    let y = a.qs.as_ptr().add((r0 + r) * a.k + i * QK_K + 128 * half);
                    let p0 = _mm512_maddubs_epi16(first, _mm512_loadu_si512(y as *const _));
                    let p1 =
                        _mm512_maddubs_epi16(second, _mm512_loadu_si512(y.add(64) as *const _));
                    *isum =
                        _mm512_dpwssd_epi32(_mm512_dpwssd_epi32(*isum, p0, s_first), p1, s_second);
                }
            }
            let d = f16_load_last(blk.add(D));
            for r in 0..R {
                let row = r0 + r;
                let off = offset_share(blk.add(SCALES), a.bsums.as_ptr().add((row * nb + i) * 16));
                let isum = _mm512_sub_epi32(isum[r], _mm512_zextsi256_si512(off));
                let dx = *a.d.get_unchecked(row * nb + i);
                acc[r] = _mm512_fmadd_ps(_mm512_set1_ps(d * dx), _mm512_cvtepi32_ps(isum), acc[r]);
            }
        }
        std::array::from_fn(|r| hsum512(acc[r]))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::super::tests::*;
    use super::*;
    use crate::Rng;

    /// Random Q6_K blocks: any quants and scales, a modest positive `d`.
    pub fn random_blocks(rng: &mut Rng, n: usize) -> Vec<u8> {
        let mut b = vec![0u8; n * BLOCK_BYTES];
        for blk in b.chunks_exact_mut(BLOCK_BYTES) {
            for v in &mut blk[..D] {
                *v = rng.below(256) as u8;
            }
            let d = rng.uniform_range(1e-4, 2e-3);
            blk[D..].copy_from_slice(&super::super::f16_bits(d).to_le_bytes());
        }
        b
    }

    #[test]
    fn dequantizer_matches_gguf_py_on_random_blocks() {
        let bytes = fixture_bytes("q6_k.random");
        let mut ours = vec![0f32; bytes.len() / BLOCK_BYTES * QK_K];
        dequantize_row(bytes, &mut ours);
        assert_same_f32(
            "Q6_K dequantized",
            &ours,
            &fixture_f32("q6_k.random.dequant"),
        );
    }
}
