//! Q4_K (`block_q4_K`): a super-block of 256 weights in 8 sub-blocks of 32,
//! each with a 6-bit scale and a 6-bit minimum; `w = d·sc_j·q − dmin·m_j`
//! with q a nibble. 144 bytes: f16 `d`, f16 `dmin`, 12 bytes packing the 8
//! scales and 8 minimums, 128 bytes of nibbles — byte `32p + l` holds weight
//! `64p + l` in its low nibble and `64p + 32 + l` in its high one.
//!
//! The reference quantizer (`quantize_row_q4_K_ref`) fits each sub-block
//! with `make_qkx2_quants`: a min/max start, then 21 trial scales, each
//! refined by weighted least squares for scale and minimum, keeping the one
//! of least weighted squared error; then the 8 scales and minimums are
//! themselves quantized to 6 bits against their largest, and the nibbles
//! recomputed with the scales as stored.
//!
//! Products use Q8_K activations: `Σ w·x = d·d_x·Σ_j sc_j·Σ q·y −
//! dmin·d_x·Σ_j m_j·(Σy over sub-block j)`, the last sums from `bsums`.

use super::q8_k::{Q8KActs, QK_K};
use super::{f16_at, f16_bits, nearest_int, Isa};

pub(crate) const BLOCK_BYTES: usize = 2 + 2 + 12 + QK_K / 2;

/// Sub-block `j`'s 6-bit scale and minimum (ggml's `get_scale_min_k4`):
/// bytes 0..4 hold scales 0..4 and bytes 4..8 minimums 0..4 in their low 6
/// bits; scales and minimums 4..8 have their low 4 bits in bytes 8..12 and
/// their top 2 bits in the spare top bits of bytes 0..8.
#[inline(always)]
pub(crate) fn scale_min(j: usize, s: &[u8]) -> (u8, u8) {
    if j < 4 {
        (s[j] & 63, s[j + 4] & 63)
    } else {
        (
            (s[j + 4] & 0x0F) | ((s[j - 4] >> 6) << 4),
            (s[j + 4] >> 4) | ((s[j] >> 6) << 4),
        )
    }
}

/// ggml's `make_qkx2_quants`: the scale and (negated) minimum of `x` on
/// levels 0..=nmax, with the levels in `l`. The float operations are
/// ggml's, in ggml's order, so the choice among trial scales is the same.
#[allow(clippy::too_many_arguments)]
fn make_qkx2_quants(
    x: &[f32],
    weights: &[f32],
    l: &mut [u8],
    laux: &mut [u8],
    nmax: i32,
    rmin: f32,
    rdelta: f32,
    nstep: i32,
) -> (f32, f32) {
    let n = x.len();
    let (mut min, mut max) = (x[0], x[0]);
    let mut sum_w = weights[0];
    let mut sum_x = sum_w * x[0];
    for i in 1..n {
        if x[i] < min {
            min = x[i];
        }
        if x[i] > max {
            max = x[i];
        }
        let w = weights[i];
        sum_w += w;
        sum_x += w * x[i];
    }
    if min > 0.0 {
        min = 0.0;
    }
    if max == min {
        l.fill(0);
        return (0.0, -min);
    }
    let mut iscale = nmax as f32 / (max - min);
    let mut scale = 1.0 / iscale;
    let mut best_error = 0f32;
    for i in 0..n {
        let q = nearest_int(iscale * (x[i] - min)).clamp(0, nmax);
        l[i] = q as u8;
        let diff = scale * q as f32 + min - x[i];
        best_error += weights[i] * (diff * diff);
    }
    for is in 0..=nstep {
        iscale = (rmin + rdelta * is as f32 + nmax as f32) / (max - min);
        let (mut sum_l, mut sum_l2, mut sum_xl) = (0f32, 0f32, 0f32);
        for i in 0..n {
            let q = nearest_int(iscale * (x[i] - min)).clamp(0, nmax);
            laux[i] = q as u8;
            let (w, q) = (weights[i], q as f32);
            sum_l += w * q;
            sum_l2 += w * q * q;
            sum_xl += w * q * x[i];
        }
        let d = sum_w * sum_l2 - sum_l * sum_l;
        if d > 0.0 {
            let mut this_scale = (sum_w * sum_xl - sum_x * sum_l) / d;
            let mut this_min = (sum_l2 * sum_x - sum_l * sum_xl) / d;
            if this_min > 0.0 {
                this_min = 0.0;
                this_scale = sum_xl / sum_l2;
            }
            let mut cur_error = 0f32;
            for i in 0..n {
                let diff = this_scale * laux[i] as f32 + this_min - x[i];
                cur_error += weights[i] * (diff * diff);
            }
            if cur_error < best_error {
                l.copy_from_slice(laux);
                best_error = cur_error;
                scale = this_scale;
                min = this_min;
            }
        }
    }
    (scale, -min)
}

/// ggml's `quantize_row_q4_K_ref` (what `llama-quantize` runs for Q4_K
/// without an importance matrix).
pub(crate) fn quantize_row(x: &[f32], out: &mut [u8]) {
    let mut l = [0u8; QK_K];
    let mut laux = [0u8; 32];
    let mut weights = [0f32; 32];
    let (mut scales, mut mins) = ([0f32; 8], [0f32; 8]);
    for (x, y) in x.chunks_exact(QK_K).zip(out.chunks_exact_mut(BLOCK_BYTES)) {
        let (mut max_scale, mut max_min) = (0f32, 0f32);
        for j in 0..QK_K / 32 {
            let xs = &x[32 * j..][..32];
            let mut sum_x2 = 0f32;
            for &v in xs {
                sum_x2 += v * v;
            }
            let av_x = (sum_x2 / 32.0).sqrt();
            for (w, &v) in weights.iter_mut().zip(xs) {
                *w = av_x + v.abs();
            }
            let (scale, min) = make_qkx2_quants(
                xs,
                &weights,
                &mut l[32 * j..][..32],
                &mut laux,
                15,
                -1.0,
                0.1,
                20,
            );
            scales[j] = scale;
            mins[j] = min;
            if scale > max_scale {
                max_scale = scale;
            }
            if min > max_min {
                max_min = min;
            }
        }
        let inv_scale = if max_scale > 0.0 {
            63.0 / max_scale
        } else {
            0.0
        };
        let inv_min = if max_min > 0.0 { 63.0 / max_min } else { 0.0 };
        let packed = &mut y[4..16];
        packed.fill(0);
        for j in 0..QK_K / 32 {
            // (uint8_t) of an int keeps the low byte, then MIN(63, ·).
            let ls = (nearest_int(inv_scale * scales[j]) as u8).min(63);
            let lm = (nearest_int(inv_min * mins[j]) as u8).min(63);
            if j < 4 {
                packed[j] = ls;
                packed[j + 4] = lm;
            } else {
                packed[j + 4] = (ls & 0x0F) | ((lm & 0x0F) << 4);
                packed[j - 4] |= (ls >> 4) << 6;
                packed[j] |= (lm >> 4) << 6;
            }
        }
        y[..2].copy_from_slice(&f16_bits(max_scale / 63.0).to_le_bytes());
        y[2..4].copy_from_slice(&f16_bits(max_min / 63.0).to_le_bytes());
        let (d_all, dmin_all) = (f16_at(y, 0), f16_at(y, 2));
        for j in 0..QK_K / 32 {
            let (sc, m) = scale_min(j, &y[4..16]);
            let d = d_all * sc as f32;
            // A zero scale keeps make_qkx2_quants' levels, as ggml does.
            if d == 0.0 {
                continue;
            }
            let dm = dmin_all * m as f32;
            for ii in 0..32 {
                l[32 * j + ii] = nearest_int((x[32 * j + ii] + dm) / d).clamp(0, 15) as u8;
            }
        }
        for (p, q) in y[16..].chunks_exact_mut(32).enumerate() {
            for (i, q) in q.iter_mut().enumerate() {
                *q = l[64 * p + i] | (l[64 * p + 32 + i] << 4);
            }
        }
    }
}

/// ggml's `dequantize_row_q4_K`.
pub(crate) fn dequantize_row(b: &[u8], out: &mut [f32]) {
    for (blk, o) in b.chunks_exact(BLOCK_BYTES).zip(out.chunks_exact_mut(QK_K)) {
        let (d, min) = (f16_at(blk, 0), f16_at(blk, 2));
        let s = &blk[4..16];
        for (p, (q, o)) in blk[16..]
            .chunks_exact(32)
            .zip(o.chunks_exact_mut(64))
            .enumerate()
        {
            let (sc, m) = scale_min(2 * p, s);
            let (d1, m1) = (d * sc as f32, min * m as f32);
            let (sc, m) = scale_min(2 * p + 1, s);
            let (d2, m2) = (d * sc as f32, min * m as f32);
            let (lo, hi) = o.split_at_mut(32);
            for ((l, h), &q) in lo.iter_mut().zip(hi).zip(q) {
                *l = d1 * (q & 0x0F) as f32 - m1;
                *h = d2 * (q >> 4) as f32 - m2;
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

/// The 8 scales and 8 minimums of a block's packed 12 bytes.
#[inline(always)]
fn unpack_scales(s: &[u8]) -> ([u8; 8], [u8; 8]) {
    let mut sc = [0u8; 8];
    let mut mn = [0u8; 8];
    for j in 0..8 {
        (sc[j], mn[j]) = scale_min(j, s);
    }
    (sc, mn)
}

/// Σ_j m_j · (sum of activation quants in sub-block j), from the 16-sums.
#[inline(always)]
fn min_sum(mn: &[u8; 8], bsums: &[i16]) -> i32 {
    (0..8)
        .map(|j| mn[j] as i32 * (bsums[2 * j] as i32 + bsums[2 * j + 1] as i32))
        .sum()
}

/// The reference: per super-block the exact integer sums, then
/// `(d·d_x)·isum − (dmin·d_x)·imin` in order.
fn dot_scalar<const R: usize>(w: &[u8], a: &Q8KActs, r0: usize) -> [f32; R] {
    let nb = a.k / QK_K;
    std::array::from_fn(|r| {
        let row = r0 + r;
        let mut sum = 0f32;
        for (i, blk) in w.chunks_exact(BLOCK_BYTES).enumerate() {
            let y = &a.qs[row * a.k + i * QK_K..][..QK_K];
            let (sc, mn) = unpack_scales(&blk[4..16]);
            let mut isum = 0i32;
            for (p, q) in blk[16..].chunks_exact(32).enumerate() {
                let (mut lo, mut hi) = (0i32, 0i32);
                for (l, &q) in q.iter().enumerate() {
                    lo += (q & 0x0F) as i32 * y[64 * p + l] as i32;
                    hi += (q >> 4) as i32 * y[64 * p + 32 + l] as i32;
                }
                isum += sc[2 * p] as i32 * lo + sc[2 * p + 1] as i32 * hi;
            }
            let imin = min_sum(&mn, &a.bsums[(row * nb + i) * 16..][..16]);
            let dx = a.d[row * nb + i];
            sum += (f16_at(blk, 0) * dx) * isum as f32 - (f16_at(blk, 2) * dx) * imin as f32;
        }
        sum
    })
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::super::tile_rows;
    use super::super::x86::{f16_load, hsum256};
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

    /// Per 32 bytes of nibbles: low and high nibbles times their 32
    /// activations (`maddubs`, pairs of at most 2·15·127), pairs added with
    /// the sub-block's scale as the multiplier (`madd`), so the integer sum
    /// of a super-block comes out already scaled.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn dot<const R: usize>(w: &[u8], a: &Q8KActs, r0: usize) -> [f32; R] {
        let nb = a.k / QK_K;
        assert!(w.len() >= nb * BLOCK_BYTES && (r0 + R) * a.k <= a.qs.len());
        let m4 = _mm256_set1_epi8(0x0F);
        let mut acc = [_mm256_setzero_ps(); R];
        let mut mins = [0f32; R];
        for i in 0..nb {
            let blk = w.as_ptr().add(i * BLOCK_BYTES);
            let (sc, mn) = unpack_scales(std::slice::from_raw_parts(blk.add(4), 12));
            let mut isum = [_mm256_setzero_si256(); R];
            for p in 0..4 {
                let q = _mm256_loadu_si256(blk.add(16 + 32 * p) as *const __m256i);
                let lo = _mm256_and_si256(q, m4);
                let hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), m4);
                let (slo, shi) = (
                    _mm256_set1_epi16(sc[2 * p] as i16),
                    _mm256_set1_epi16(sc[2 * p + 1] as i16),
                );
                for (r, isum) in isum.iter_mut().enumerate() {
                    let y = a.qs.as_ptr().add((r0 + r) * a.k + i * QK_K + 64 * p);
                    let ylo = _mm256_loadu_si256(y as *const __m256i);
                    let yhi = _mm256_loadu_si256(y.add(32) as *const __m256i);
                    let pl = _mm256_madd_epi16(_mm256_maddubs_epi16(lo, ylo), slo);
                    let ph = _mm256_madd_epi16(_mm256_maddubs_epi16(hi, yhi), shi);
                    *isum = _mm256_add_epi32(*isum, _mm256_add_epi32(pl, ph));
                }
            }
            let (d, dmin) = (f16_load(blk), f16_load(blk.add(2)));
            for r in 0..R {
                let row = r0 + r;
                let dx = *a.d.get_unchecked(row * nb + i);
                acc[r] =
                    _mm256_fmadd_ps(_mm256_set1_ps(d * dx), _mm256_cvtepi32_ps(isum[r]), acc[r]);
                let at = (row * nb + i) * 16;
                let imin = min_sum(&mn, a.bsums.get_unchecked(at..at + 16));
                mins[r] = (dmin * dx).mul_add(imin as f32, mins[r]);
            }
        }
        std::array::from_fn(|r| hsum256(acc[r]) - mins[r])
    }
}

#[cfg(target_arch = "x86_64")]
mod vnni {
    use super::super::tile_rows;
    use super::super::x86::{f16_load, hsum512};
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

    /// 64 weights at a time — a pair of sub-blocks, [low nibbles | high
    /// nibbles] of 32 bytes — times 64 activations: `maddubs` to 16-bit
    /// pairs, then `dpwssd` multiplies each pair by its sub-block's scale
    /// and adds it to the 32-bit lanes.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
    unsafe fn dot<const R: usize>(w: &[u8], a: &Q8KActs, r0: usize) -> [f32; R] {
        let nb = a.k / QK_K;
        assert!(w.len() >= nb * BLOCK_BYTES && (r0 + R) * a.k <= a.qs.len());
        let m4 = _mm256_set1_epi8(0x0F);
        let mut acc = [_mm512_setzero_ps(); R];
        let mut mins = [0f32; R];
        for i in 0..nb {
            let blk = w.as_ptr().add(i * BLOCK_BYTES);
            let (sc, mn) = unpack_scales(std::slice::from_raw_parts(blk.add(4), 12));
            let mut isum = [_mm512_setzero_si512(); R];
            for p in 0..4 {
                let q = _mm256_loadu_si256(blk.add(16 + 32 * p) as *const __m256i);
                let q = _mm512_inserti64x4(
                    _mm512_castsi256_si512(_mm256_and_si256(q, m4)),
                    _mm256_and_si256(_mm256_srli_epi16(q, 4), m4),
                    1,
                );
                let s = _mm512_mask_set1_epi16(
                    _mm512_set1_epi16(sc[2 * p] as i16),
                    0xFFFF_0000,
                    sc[2 * p + 1] as i16,
                );
                for (r, isum) in isum.iter_mut().enumerate() {
                    let y = a.qs.as_ptr().add((r0 + r) * a.k + i * QK_K + 64 * p);
                    let prod = _mm512_maddubs_epi16(q, _mm512_loadu_si512(y as *const _));
                    *isum = _mm512_dpwssd_epi32(*isum, prod, s);
                }
            }
            let (d, dmin) = (f16_load(blk), f16_load(blk.add(2)));
            for r in 0..R {
                let row = r0 + r;
                let dx = *a.d.get_unchecked(row * nb + i);
                acc[r] =
                    _mm512_fmadd_ps(_mm512_set1_ps(d * dx), _mm512_cvtepi32_ps(isum[r]), acc[r]);
                let at = (row * nb + i) * 16;
                let imin = min_sum(&mn, a.bsums.get_unchecked(at..at + 16));
                mins[r] = (dmin * dx).mul_add(imin as f32, mins[r]);
            }
        }
        std::array::from_fn(|r| hsum512(acc[r]) - mins[r])
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::*;
    use super::*;

    #[test]
    fn quantizer_writes_ggml_reference_bytes() {
        let x = fixture_f32("input");
        let mut ours = vec![0u8; x.len() / QK_K * BLOCK_BYTES];
        quantize_row(&x, &mut ours);
        assert_same_blocks(
            "Q4_K vs ggml",
            &ours,
            fixture_bytes("q4_k.ggml"),
            BLOCK_BYTES,
        );
    }

    #[test]
    fn dequantizer_matches_gguf_py() {
        for case in ["q4_k.ggml", "q4_k.random"] {
            let bytes = fixture_bytes(case);
            let mut ours = vec![0f32; bytes.len() / BLOCK_BYTES * QK_K];
            dequantize_row(bytes, &mut ours);
            assert_same_f32(case, &ours, &fixture_f32(&format!("{case}.dequant")));
        }
    }

    #[test]
    fn scales_and_minimums_unpack_from_their_12_bytes() {
        // Pack 8 known 6-bit pairs as the quantizer does, read them back.
        let (sc, mn) = (
            [1u8, 63, 17, 40, 33, 62, 5, 48],
            [0u8, 9, 63, 21, 60, 2, 47, 31],
        );
        let mut p = [0u8; 12];
        for j in 0..8 {
            if j < 4 {
                p[j] = sc[j];
                p[j + 4] = mn[j];
            } else {
                p[j + 4] = (sc[j] & 0x0F) | ((mn[j] & 0x0F) << 4);
                p[j - 4] |= (sc[j] >> 4) << 6;
                p[j] |= (mn[j] >> 4) << 6;
            }
        }
        assert_eq!(unpack_scales(&p), (sc, mn));
    }
}
