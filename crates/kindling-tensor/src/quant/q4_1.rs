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

/// The reference: `Σ (d_w·d_x)·isum + m·s` in block order.
fn dot_scalar<const R: usize>(w: &[u8], a: &Q8Acts, r0: usize) -> [f32; R] {
    let nb = a.k / QK;
    std::array::from_fn(|r| {
        let row = r0 + r;
        let (qs, d, s) = (
            &a.qs[row * a.k..][..a.k],
            &a.d[row * nb..][..nb],
            &a.s[row * nb..][..nb],
        );
        let mut sum = 0f32;
        for (b, blk) in w.chunks_exact(BLOCK_BYTES).enumerate() {
            let y = &qs[b * QK..][..QK];
            let mut isum = 0i32;
            for j in 0..QK / 2 {
                let q = blk[4 + j];
                isum += (q & 0x0F) as i32 * y[j] as i32;
                isum += (q >> 4) as i32 * y[j + QK / 2] as i32;
            }
            sum += (f16_at(blk, 0) * d[b]) * isum as f32 + f16_at(blk, 2) * s[b];
        }
        sum
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
            *s = m.mul_add(*a.s.get_unchecked((r0 + r) * nb + b), *s);
        }
    }

    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn dot<const R: usize>(w: &[u8], a: &Q8Acts, r0: usize) -> [f32; R] {
        let nb = a.k / QK;
        assert!(w.len() >= nb * BLOCK_BYTES && (r0 + R) * a.k <= a.qs.len());
        let mut even = [_mm256_setzero_ps(); R];
        let mut odd = [_mm256_setzero_ps(); R];
        // The minimums' sums split the same way: one chain of scalar FMAs
        // would cost 4 cycles a block.
        let (mut mins_even, mut mins_odd) = ([0f32; R], [0f32; R]);
        let p = w.as_ptr();
        let mut b = 0;
        while b + 2 <= nb {
            block(p, a, r0, b, &mut even, &mut mins_even);
            block(p, a, r0, b + 1, &mut odd, &mut mins_odd);
            b += 2;
        }
        if b < nb {
            block(p, a, r0, b, &mut even, &mut mins_even);
        }
        std::array::from_fn(|r| {
            hsum256(_mm256_add_ps(even[r], odd[r])) + (mins_even[r] + mins_odd[r])
        })
    }
}

#[cfg(target_arch = "x86_64")]
mod vnni {
    use super::super::q4_0::vnni::{nibble_one, nibble_pair};
    use super::super::q8_0::vnni::unsigned_pair;
    use super::super::x86::{f16_load, f16_pair, hsum512};
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

    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
    unsafe fn dot<const R: usize>(w: &[u8], a: &Q8Acts, r0: usize) -> [f32; R] {
        let nb = a.k / QK;
        assert!(w.len() >= nb * BLOCK_BYTES && (r0 + R) * a.k <= a.qs.len());
        let mut acc = [_mm512_setzero_ps(); R];
        // [m_b·s_b, m_b+1·s_b+1, 0, 0] summed per row.
        let mut mins = [_mm_setzero_ps(); R];
        let p = w.as_ptr();
        let mut b = 0;
        while b + 2 <= nb {
            let (b0, b1) = (p.add(b * BLOCK_BYTES), p.add((b + 1) * BLOCK_BYTES));
            let q = nibble_pair(b0.add(4), b1.add(4));
            unsigned_pair(q, f16_pair(b0, b1), a, r0, b, true, &mut acc);
            let m = f16_pair(b0.add(2), b1.add(2));
            for (r, acc_m) in mins.iter_mut().enumerate() {
                let s = _mm_castpd_ps(_mm_load_sd(
                    a.s.as_ptr().add((r0 + r) * nb + b) as *const f64
                ));
                *acc_m = _mm_fmadd_ps(m, s, *acc_m);
            }
            b += 2;
        }
        if b < nb {
            let b0 = p.add(b * BLOCK_BYTES);
            let q = nibble_one(b0.add(4));
            unsigned_pair(q, _mm_set_ss(f16_load(b0)), a, r0, b, false, &mut acc);
            let m = _mm_set_ss(f16_load(b0.add(2)));
            for (r, acc_m) in mins.iter_mut().enumerate() {
                let s = _mm_load_ss(a.s.as_ptr().add((r0 + r) * nb + b));
                *acc_m = _mm_fmadd_ps(m, s, *acc_m);
            }
        }
        std::array::from_fn(|r| {
            let m = mins[r];
            hsum512(acc[r]) + _mm_cvtss_f32(_mm_add_ss(m, _mm_movehdup_ps(m)))
        })
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
