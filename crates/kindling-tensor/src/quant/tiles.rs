//! Many activation rows (a prompt) times 32-weight blocks (Q8_0, Q4_0,
//! Q4_1, and the K formats' 32-weight pieces), a tile of weight rows at a
//! time: 16 rows on AVX-512 VNNI, 8 on AVX2.
//!
//! The row kernels spend a conversion, a scale and an FMA on every block of
//! every (weight row, activation row) pair, for 32 products. Here the tile's
//! rows are first rearranged so that each 32-bit lane of a vector belongs
//! to one row: vector g of block b holds weights 4g..4g+4 of block b of the
//! rows, as unsigned bytes (the format's quants plus its offset). A
//! `dpbusd` against four activations broadcast to every lane then moves 16
//! dot products on by 4 terms, and after 8 of them each lane holds its
//! row's whole block sum: one conversion and one FMA, with the rows' scales
//! side by side, per block and 16 outputs. AVX2 does the same for the 4-bit
//! formats on 8 lanes with `maddubs`, summing the 8 groups in 16 bits (at
//! most 8·2·15·127 = 30480) before one `madd`. (Q8_0 on AVX2 stays with its
//! row kernel: its quants need the sign trick and 32-bit sums per group, and
//! tiles measured no faster.) The rearranging (gathers, once per tile) is
//! paid back over the activation rows, so `matmul` takes this path only
//! from `min_rows` activation rows up.
//!
//! Q4_K's sub-blocks of 32 are blocks like Q4_1's here: scale `d·sc_j`,
//! minimum `−dmin·m_j`, and the Q8_K activations seen as 32-blocks (their
//! scale repeated, `s` = scale · the sub-block's sum; `Q8KActs::as_blocks`).
//! Q6_K (VNNI only) has a scale per 16 weights: its 32-blocks keep two
//! scales and two sums, groups 0..4 and 4..8, each started from −32 times
//! its 16 activations' sum (`bsums`), as its 6-bit quants go in unsigned.
//!
//! The f32 sum over blocks runs in block order, as in the scalar reference,
//! but with fused multiply-adds (and per 32 or 16 weights for Q4_K and
//! Q6_K, where the reference sums a super-block in integers first).

use super::q8_0::{Q8Acts, QK};
use super::q8_k::{Q8KActs, QK_K};
use super::{q4_0, q4_1, q4_k, q6_k, q8_0};
use super::{Acts, Isa};
use crate::gguf::GgmlType;

/// Weight rows per tile: one per 32-bit lane of a vector.
pub(crate) fn rows_per_tile(isa: Isa) -> usize {
    if isa == Isa::Avx512Vnni {
        16
    } else {
        8
    }
}

/// From this many activation rows up, tiles beat the row kernels. VNNI:
/// rearranging Q8_0 costs twice the gathers of the 4-bit formats, and Q4_K's
/// row kernel is the slowest; measured with 1536→576 products on this
/// repository's development machine (AMD EPYC, AVX-512 VNNI), m = 2..16, at
/// m = 6 tiles gave Q4_0 187 against 142 GFLOP/s-equivalent for the rows,
/// Q4_K 147 against 86 at m = 4, and Q8_0 lost below m = 8. AVX2 on the
/// same machine (`KINDLING_SIMD=avx2`), the 4-bit formats' tiles won from
/// m = 4 (Q4_0 121 against 89, Q4_1 93 against 66, Q4_K 107 against 93).
pub(crate) fn min_rows(isa: Isa, ty: GgmlType) -> usize {
    match (isa, ty) {
        (Isa::Avx512Vnni, GgmlType::Q4_K | GgmlType::Q6_K) => 4,
        (Isa::Avx512Vnni, GgmlType::Q4_0 | GgmlType::Q4_1) => 6,
        (Isa::Avx512Vnni, _) => 8,
        _ => 4,
    }
}

/// Whether `matmul` multiplies `ty` by `m` activation rows in tiles on `isa`.
pub(crate) fn applies(isa: Isa, ty: GgmlType, m: usize) -> bool {
    let formats = match isa {
        // Q4_0's tiles keep a block sum per lane and one FMA per block,
        // llama.cpp's order for Q4_0 (which it repacks). Q8_0 and Q4_1 take
        // llama.cpp's per-lane order (`dot_lanes`) on VNNI; on AVX2 they stay
        // with their row kernels (8 accumulators per row would not fit 16
        // registers).
        Isa::Avx512Vnni => matches!(
            ty,
            GgmlType::Q8_0 | GgmlType::Q4_0 | GgmlType::Q4_1 | GgmlType::Q4_K | GgmlType::Q6_K
        ),
        Isa::Avx2 => matches!(ty, GgmlType::Q4_0 | GgmlType::Q4_K),
        Isa::Scalar => false,
    };
    formats && m >= min_rows(isa, ty)
}

/// One tile's weights, rearranged; allocated once per task and refilled
/// for each tile of rows.
pub(crate) struct Tile {
    /// Rows per tile (lanes per vector).
    lanes: usize,
    /// `[nb, 8, lanes]`: block, group of 4 weights, row — 4 unsigned bytes each.
    q: Vec<i32>,
    /// `[nb, lanes]` the rows' block scales (Q6_K: `[nb, 2, lanes]`, one
    /// per 16 weights).
    d: Vec<f32>,
    /// `[nb, lanes]` the rows' block minimums (Q4_1, Q4_K).
    m: Vec<f32>,
}

impl Tile {
    fn new(isa: Isa, ty: GgmlType, nb: usize) -> Tile {
        let lanes = rows_per_tile(isa);
        let scales = if ty == GgmlType::Q6_K { 2 } else { 1 };
        Tile {
            lanes,
            q: vec![0; nb * 8 * lanes],
            d: vec![0.0; nb * scales * lanes],
            m: vec![0.0; nb * lanes],
        }
    }
}

/// `out[r * ld + j]` = weight row `j` of `w` · activation row `r` for the
/// whole tiles of `w`'s rows; returns how many rows that was (the rest is
/// left to the row kernels).
#[cfg(target_arch = "x86_64")]
pub(crate) fn whole_tiles(
    isa: Isa,
    ty: GgmlType,
    w: &[u8],
    row_bytes: usize,
    acts: &Acts,
    out: &mut [f32],
    ld: usize,
) -> usize {
    let rows = rows_per_tile(isa);
    let whole = w.len() / row_bytes / rows * rows;
    let (a, k) = match acts {
        Acts::Q8(a) | Acts::Q8K(_, Some(a)) => (Some(a), a.k),
        Acts::Q8K(a, None) => (None, a.k),
    };
    let mut tile = Tile::new(isa, ty, k / QK);
    for (t, w) in w[..whole * row_bytes]
        .chunks_exact(rows * row_bytes)
        .enumerate()
    {
        let out = &mut out[t * rows..];
        // SAFETY: `applies` admits only the two families, and `matmul_with`
        // runs a family only when `Isa::supported`.
        unsafe {
            match (isa, ty) {
                (Isa::Avx512Vnni, GgmlType::Q6_K) => vnni::pack_q6_k(w, row_bytes, &mut tile),
                (Isa::Avx512Vnni, GgmlType::Q4_K) => vnni::pack_q4_k(w, row_bytes, &mut tile),
                (Isa::Avx512Vnni, _) => vnni::pack(ty, w, row_bytes, &mut tile),
                (_, GgmlType::Q4_K) => avx2::pack_q4_k(w, row_bytes, &mut tile),
                _ => avx2::pack(ty, w, row_bytes, &mut tile),
            }
            match (acts, a) {
                (Acts::Q8K(a, None), _) => vnni::product_q6_k(&tile, a, out, ld),
                (_, Some(a)) if isa == Isa::Avx512Vnni => vnni::product(ty, &tile, a, out, ld),
                (_, Some(a)) => avx2::product(ty, &tile, a, out, ld),
                _ => unreachable!("activations as 32-blocks for every type but Q6_K"),
            }
        }
    }
    whole
}

/// Whether `matmul` on `isa` multiplies few activation rows (decoding) by
/// `ty`'s packed tiles (`pack`): every packed format on AVX-512 VNNI; on
/// AVX2 Q4_0 only, as llama.cpp's AVX2 build repacks Q4_0 alone (Q8_0's
/// unsigned quants would overflow `maddubs`' 16 bits; Q4_1 keeps a lane
/// order that needs 16 accumulators per 8 rows).
pub(crate) fn packed_applies(isa: Isa, ty: GgmlType) -> bool {
    match isa {
        Isa::Avx512Vnni => matches!(ty, GgmlType::Q8_0 | GgmlType::Q4_0 | GgmlType::Q4_1),
        Isa::Avx2 => ty == GgmlType::Q4_0,
        Isa::Scalar => false,
    }
}

/// Q8_0, Q4_0 or Q4_1 rows rearranged once (at the first product), 16 to
/// a tile, as llama.cpp repacks Q4_0 at load: per block, the tile's rows'
/// quant bytes 4g..4g+4 side by side in 64-byte vectors (Q8_0: 8 of them,
/// flipped to q + 128; Q4_0, Q4_1: 4 of raw nibble bytes, whose low nibbles
/// are weights 4g..4g+4 and high ones 16+4g..), then the 16 scales as f32
/// (Q4_1: and the 16 minimums). The file's size again, read in order, so a
/// decoding row gets the tile kernels (16 rows per vector, llama.cpp's
/// order for each format; AVX2 reads each 64-byte vector as two halves of
/// 8 rows). `None` for other formats, on a CPU without AVX2, or when the
/// rows are not a multiple of 16.
pub(crate) fn pack(ty: GgmlType, w: &[u8], rows: usize, cols: usize) -> Option<Vec<u8>> {
    #[cfg(target_arch = "x86_64")]
    {
        let block = packed_block(ty)?;
        if !Isa::Avx2.supported() || !rows.is_multiple_of(PACK_ROWS) || !cols.is_multiple_of(QK) {
            return None;
        }
        let nb = cols / QK;
        let row_bytes = super::row_bytes(ty, cols);
        let vnni = Isa::Avx512Vnni.supported();
        let mut out = vec![0u8; rows / PACK_ROWS * nb * block];
        for (t, tile) in out.chunks_exact_mut(nb * block).enumerate() {
            let w = &w[t * PACK_ROWS * row_bytes..];
            // SAFETY: the family's features are supported (checked above);
            // the tile's 16 rows lie within `w`.
            unsafe {
                if vnni {
                    vnni::pack_rows(ty, w, row_bytes, nb, tile)
                } else {
                    avx2::pack_rows(ty, w, row_bytes, nb, tile)
                }
            };
        }
        Some(out)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (ty, w, rows, cols);
        None
    }
}

/// Rows per packed tile.
pub(crate) const PACK_ROWS: usize = 16;

/// Bytes of one block of a packed tile.
fn packed_block(ty: GgmlType) -> Option<usize> {
    match ty {
        GgmlType::Q8_0 => Some(8 * 64 + 64),
        GgmlType::Q4_0 => Some(4 * 64 + 64),
        GgmlType::Q4_1 => Some(4 * 64 + 128),
        _ => None,
    }
}

/// Where a packed format's quants sit in the file's blocks: (block bytes,
/// offset of the quants, 4-byte groups per block).
fn packed_source(ty: GgmlType) -> (usize, usize, usize) {
    match ty {
        GgmlType::Q8_0 => (q8_0::BLOCK_BYTES, 2, 8),
        GgmlType::Q4_0 => (q4_0::BLOCK_BYTES, 2, 4),
        _ => (q4_1::BLOCK_BYTES, 4, 4),
    }
}

/// `out[r * ld + j]` for the `tiles` packed tiles from `first_tile` on
/// (`pack`'s layout), all activation rows: llama.cpp's order for each
/// format, the same bits as the row kernels.
#[cfg(target_arch = "x86_64")]
#[allow(clippy::too_many_arguments)]
pub(crate) fn packed_product(
    isa: Isa,
    ty: GgmlType,
    packed: &[u8],
    first_tile: usize,
    tiles: usize,
    a: &Q8Acts,
    out: &mut [f32],
    ld: usize,
) {
    assert!(
        packed_applies(isa, ty) && isa.supported(),
        "packed tiles on {isa:?}"
    );
    let nb = a.k / QK;
    let block = packed_block(ty).expect("a packed format");
    for t in 0..tiles {
        let p = &packed[(first_tile + t) * nb * block..][..nb * block];
        let out = &mut out[t * PACK_ROWS..];
        // SAFETY: the family is supported (asserted above), and on AVX2
        // the format is Q4_0 (`packed_applies`).
        unsafe {
            if isa == Isa::Avx512Vnni {
                vnni::product_packed(ty, p, a, out, ld)
            } else {
                avx2::product_packed_q4_0(p, a, out, ld)
            }
        };
    }
}

#[cfg(target_arch = "x86_64")]
mod vnni {
    use super::*;
    use std::arch::x86_64::*;

    const ROWS: usize = 16;

    /// One packed tile (`pack`): 16 rows from `w` with gathers.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
    pub(super) unsafe fn pack_rows(
        ty: GgmlType,
        w: &[u8],
        row_bytes: usize,
        nb: usize,
        out: &mut [u8],
    ) {
        let block = packed_block(ty).expect("a packed format");
        let (block_bytes, quants, groups) = packed_source(ty);
        assert!(w.len() >= ROWS * row_bytes && out.len() >= nb * block);
        let rows = _mm512_mullo_epi32(
            _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
            _mm512_set1_epi32(row_bytes as i32),
        );
        let gather = |p: *const u8| _mm512_i32gather_epi32::<1>(rows, p as *const _);
        let f16s = |p: *const u8| _mm512_cvtph_ps(_mm512_cvtepi32_epi16(gather(p)));
        for b in 0..nb {
            let blk = w.as_ptr().add(b * block_bytes);
            let o = out.as_mut_ptr().add(b * block);
            for g in 0..groups {
                let mut v = gather(blk.add(quants + 4 * g));
                if ty == GgmlType::Q8_0 {
                    v = _mm512_xor_si512(v, _mm512_set1_epi8(-128));
                }
                _mm512_storeu_si512(o.add(64 * g) as *mut _, v);
            }
            _mm512_storeu_ps(o.add(64 * groups) as *mut f32, f16s(blk));
            if ty == GgmlType::Q4_1 {
                _mm512_storeu_ps(o.add(64 * groups + 64) as *mut f32, f16s(blk.add(2)));
            }
        }
    }

    /// All activation rows against one packed tile: Q4_0 four at a time,
    /// Q8_0 and Q4_1 two at a time (8 accumulators each).
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
    pub(super) unsafe fn product_packed(
        ty: GgmlType,
        p: &[u8],
        a: &Q8Acts,
        out: &mut [f32],
        ld: usize,
    ) {
        let m = a.qs.len() / a.k;
        let mut store = |r: usize, y: __m512| {
            let o = &mut out[r * ld..][..ROWS];
            _mm512_storeu_ps(o.as_mut_ptr(), y);
        };
        let mut r = 0;
        if ty == GgmlType::Q4_0 {
            while r + 4 <= m {
                for (i, y) in dot_q4_0_packed::<4>(p, a, r).into_iter().enumerate() {
                    store(r + i, y);
                }
                r += 4;
            }
            while r < m {
                store(r, dot_q4_0_packed::<1>(p, a, r)[0]);
                r += 1;
            }
            return;
        }
        let q4_1 = ty == GgmlType::Q4_1;
        while r + 2 <= m {
            for (i, y) in dot_lanes_packed::<2>(p, q4_1, a, r).into_iter().enumerate() {
                store(r + i, y);
            }
            r += 2;
        }
        if r < m {
            store(r, dot_lanes_packed::<1>(p, q4_1, a, r)[0]);
        }
    }

    /// `dot_lanes` on a packed Q8_0 or Q4_1 tile (Q4_1's nibbles split here).
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
    unsafe fn dot_lanes_packed<const R: usize>(
        p: &[u8],
        q4_1: bool,
        a: &Q8Acts,
        r0: usize,
    ) -> [__m512; R] {
        let nb = a.k / QK;
        let (block, groups) = if q4_1 {
            (packed_block(GgmlType::Q4_1).unwrap(), 4)
        } else {
            (packed_block(GgmlType::Q8_0).unwrap(), 8)
        };
        assert!(p.len() >= nb * block && (r0 + R) * a.k <= a.qs.len());
        let m4 = _mm512_set1_epi8(0x0F);
        let mut acc = [[_mm512_setzero_ps(); 8]; R];
        let mut mins = [_mm512_setzero_ps(); R];
        for b in 0..nb {
            let blk = p.as_ptr().add(b * block);
            let mut q = [_mm512_setzero_si512(); 8];
            if q4_1 {
                for g in 0..4 {
                    let v = _mm512_loadu_si512(blk.add(64 * g) as *const _);
                    q[g] = _mm512_and_si512(v, m4);
                    q[g + 4] = _mm512_and_si512(_mm512_srli_epi16(v, 4), m4);
                }
            } else {
                for (g, q) in q.iter_mut().enumerate() {
                    *q = _mm512_loadu_si512(blk.add(64 * g) as *const _);
                }
            }
            let dw = _mm512_loadu_ps(blk.add(64 * groups) as *const f32);
            for r in 0..R {
                let row = r0 + r;
                let at = row * a.k + b * QK;
                let y = a.qs.as_ptr().add(at) as *const i32;
                let s = _mm512_mul_ps(dw, _mm512_set1_ps(*a.d.get_unchecked(row * nb + b)));
                for (g, acc) in acc[r].iter_mut().enumerate() {
                    let c = _mm512_set1_epi32(*a.corr.get_unchecked(at / 4 + g));
                    let p = _mm512_dpbusd_epi32(
                        c,
                        q[g],
                        _mm512_set1_epi32(std::ptr::read_unaligned(y.add(g))),
                    );
                    *acc = _mm512_fmadd_ps(s, _mm512_cvtepi32_ps(p), *acc);
                }
                if q4_1 {
                    // m·s is exact (two f16): llama.cpp's `summs += m·s`.
                    let mw = _mm512_loadu_ps(blk.add(64 * groups + 64) as *const f32);
                    let sx = _mm512_set1_ps(*a.s.get_unchecked(row * nb + b));
                    mins[r] = _mm512_add_ps(mins[r], _mm512_mul_ps(mw, sx));
                }
            }
        }
        sum_lanes(&acc, &mins, q4_1)
    }

    /// Each row's 8 lane accumulators added as llama.cpp's Q8_0/Q4_1 dot
    /// adds its lanes (`hsum_float_8`'s pairing, 16 rows at once), plus the
    /// minimums' sum when the format has one.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
    fn sum_lanes<const R: usize>(
        acc: &[[__m512; 8]; R],
        mins: &[__m512; R],
        min: bool,
    ) -> [__m512; R] {
        std::array::from_fn(|r| {
            let l = &acc[r];
            let v = _mm512_add_ps(
                _mm512_add_ps(_mm512_add_ps(l[0], l[4]), _mm512_add_ps(l[2], l[6])),
                _mm512_add_ps(_mm512_add_ps(l[1], l[5]), _mm512_add_ps(l[3], l[7])),
            );
            if min {
                _mm512_add_ps(v, mins[r])
            } else {
                v
            }
        })
    }

    /// As `dot` for Q4_0 (block sums started from −8·Σy, then one FMA per
    /// block), the nibbles split from the packed bytes here.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
    unsafe fn dot_q4_0_packed<const R: usize>(p: &[u8], a: &Q8Acts, r0: usize) -> [__m512; R] {
        let nb = a.k / QK;
        let block = packed_block(GgmlType::Q4_0).unwrap();
        assert!(p.len() >= nb * block && (r0 + R) * a.k <= a.qs.len());
        let m4 = _mm512_set1_epi8(0x0F);
        let mut acc = [_mm512_setzero_ps(); R];
        for b in 0..nb {
            let blk = p.as_ptr().add(b * block);
            let mut q = [_mm512_setzero_si512(); 8];
            for g in 0..4 {
                let v = _mm512_loadu_si512(blk.add(64 * g) as *const _);
                q[g] = _mm512_and_si512(v, m4);
                q[g + 4] = _mm512_and_si512(_mm512_srli_epi16(v, 4), m4);
            }
            let dw = _mm512_loadu_ps(blk.add(256) as *const f32);
            for (r, acc) in acc.iter_mut().enumerate() {
                let row = r0 + r;
                let y = a.qs.as_ptr().add(row * a.k + b * QK) as *const i32;
                let y = |g: usize| _mm512_set1_epi32(std::ptr::read_unaligned(y.add(g)));
                let mut s0 = _mm512_set1_epi32(*a.block_corr.get_unchecked(row * nb + b));
                let mut s1 = _mm512_setzero_si512();
                for g in (0..8).step_by(2) {
                    s0 = _mm512_dpbusd_epi32(s0, q[g], y(g));
                    s1 = _mm512_dpbusd_epi32(s1, q[g + 1], y(g + 1));
                }
                let s = _mm512_mul_ps(dw, _mm512_set1_ps(*a.d.get_unchecked(row * nb + b)));
                *acc = _mm512_fmadd_ps(s, _mm512_cvtepi32_ps(_mm512_add_epi32(s0, s1)), *acc);
            }
        }
        acc
    }

    /// Rearranges 16 rows of `ty` blocks into `t` with gathers: lane i
    /// reads row i's 4 bytes at the same offset in the same block.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
    pub(super) unsafe fn pack(ty: GgmlType, w: &[u8], row_bytes: usize, t: &mut Tile) {
        let nb = t.d.len() / ROWS;
        assert!(w.len() >= ROWS * row_bytes && row_bytes * ROWS < i32::MAX as usize);
        let (block_bytes, quants) = match ty {
            GgmlType::Q8_0 => (q8_0::BLOCK_BYTES, 2),
            GgmlType::Q4_0 => (q4_0::BLOCK_BYTES, 2),
            _ => (q4_1::BLOCK_BYTES, 4),
        };
        let rows = _mm512_mullo_epi32(
            _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
            _mm512_set1_epi32(row_bytes as i32),
        );
        let gather = |p: *const u8| _mm512_i32gather_epi32::<1>(rows, p as *const _);
        let m4 = _mm512_set1_epi8(0x0F);
        for b in 0..nb {
            let blk = w.as_ptr().add(b * block_bytes);
            let q = t.q.as_mut_ptr().add(b * 8 * ROWS) as *mut __m512i;
            if ty == GgmlType::Q8_0 {
                for g in 0..8 {
                    let v =
                        _mm512_xor_si512(gather(blk.add(quants + 4 * g)), _mm512_set1_epi8(-128));
                    _mm512_storeu_si512(q.add(g), v);
                }
            } else {
                // Weights 4g..4g+4 are low nibbles of bytes 4g..4g+4 for
                // g < 4, the high nibbles of bytes 4(g−4).. for g ≥ 4.
                for g in 0..4 {
                    let v = gather(blk.add(quants + 4 * g));
                    _mm512_storeu_si512(q.add(g), _mm512_and_si512(v, m4));
                    _mm512_storeu_si512(
                        q.add(g + 4),
                        _mm512_and_si512(_mm512_srli_epi16(v, 4), m4),
                    );
                }
            }
            // The f16 at the block's start (and the one after it, Q4_1's
            // minimum), each lane's low 16 bits.
            let f16s = |p: *const u8| _mm512_cvtph_ps(_mm512_cvtepi32_epi16(gather(p)));
            _mm512_storeu_ps(t.d.as_mut_ptr().add(b * ROWS), f16s(blk));
            if ty == GgmlType::Q4_1 {
                _mm512_storeu_ps(t.m.as_mut_ptr().add(b * ROWS), f16s(blk.add(2)));
            }
        }
    }

    /// Rearranges 16 rows of Q4_K super-blocks into `t`, sub-block by
    /// sub-block: the nibbles as `pack` does for Q4_0's, the scale
    /// `d·sc_j` and minimum `−dmin·m_j` unpacked from the 12 packed bytes
    /// lane by lane (ggml's `get_scale_min_k4` on vectors).
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
    pub(super) unsafe fn pack_q4_k(w: &[u8], row_bytes: usize, t: &mut Tile) {
        let nsb = t.d.len() / ROWS / 8;
        assert!(w.len() >= ROWS * row_bytes && row_bytes * ROWS < i32::MAX as usize);
        let rows = _mm512_mullo_epi32(
            _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
            _mm512_set1_epi32(row_bytes as i32),
        );
        let gather = |p: *const u8| _mm512_i32gather_epi32::<1>(rows, p as *const _);
        let m4 = _mm512_set1_epi8(0x0F);
        let byte = |v: __m512i, i: u32| {
            _mm512_and_si512(
                _mm512_srlv_epi32(v, _mm512_set1_epi32(8 * i as i32)),
                _mm512_set1_epi32(0xFF),
            )
        };
        for i in 0..nsb {
            let blk = w.as_ptr().add(i * q4_k::BLOCK_BYTES);
            for p in 0..4 {
                let lo = t.q.as_mut_ptr().add((8 * i + 2 * p) * 8 * ROWS) as *mut __m512i;
                let hi = lo.add(8);
                for g in 0..8 {
                    let v = gather(blk.add(16 + 32 * p + 4 * g));
                    _mm512_storeu_si512(lo.add(g), _mm512_and_si512(v, m4));
                    _mm512_storeu_si512(hi.add(g), _mm512_and_si512(_mm512_srli_epi16(v, 4), m4));
                }
            }
            let dm = gather(blk);
            let d = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(dm));
            let dmin = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(_mm512_srli_epi32(dm, 16)));
            // Scale bytes 0..4, 4..8, 8..12 of each row.
            let (s0, s1, s2) = (gather(blk.add(4)), gather(blk.add(8)), gather(blk.add(12)));
            let c63 = _mm512_set1_epi32(63);
            for j in 0..8u32 {
                let (sc, mn) = if j < 4 {
                    (
                        _mm512_and_si512(byte(s0, j), c63),
                        _mm512_and_si512(byte(s1, j), c63),
                    )
                } else {
                    let (lo, top_s, top_m) = (byte(s2, j - 4), byte(s0, j - 4), byte(s1, j - 4));
                    (
                        _mm512_or_si512(
                            _mm512_and_si512(lo, _mm512_set1_epi32(0x0F)),
                            _mm512_slli_epi32(_mm512_srli_epi32(top_s, 6), 4),
                        ),
                        _mm512_or_si512(
                            _mm512_srli_epi32(lo, 4),
                            _mm512_slli_epi32(_mm512_srli_epi32(top_m, 6), 4),
                        ),
                    )
                };
                let b = 8 * i + j as usize;
                let scale = _mm512_mul_ps(d, _mm512_cvtepi32_ps(sc));
                let min = _mm512_mul_ps(dmin, _mm512_cvtepi32_ps(mn));
                _mm512_storeu_ps(t.d.as_mut_ptr().add(b * ROWS), scale);
                _mm512_storeu_ps(
                    t.m.as_mut_ptr().add(b * ROWS),
                    _mm512_sub_ps(_mm512_setzero_ps(), min),
                );
            }
        }
    }

    /// Rearranges 16 rows of Q6_K super-blocks into `t`: per half of 128
    /// weights and group g, three gathers (`ql` at 4g and 32 + 4g, `qh` at
    /// 4g) give group g of the half's four 32-blocks, each byte
    /// `(ql nibble) | (2 bits of qh) << 4` — `q6_k::unpack` on vectors. The
    /// two scales of each 32-block are `d·sc` for its two groups of 16.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
    pub(super) unsafe fn pack_q6_k(w: &[u8], row_bytes: usize, t: &mut Tile) {
        let nsb = t.q.len() / (8 * ROWS) / 8;
        assert!(w.len() >= ROWS * row_bytes && row_bytes * ROWS < i32::MAX as usize);
        assert!(t.d.len() == nsb * 8 * 2 * ROWS);
        let rows = _mm512_mullo_epi32(
            _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
            _mm512_set1_epi32(row_bytes as i32),
        );
        let (m4, m2) = (_mm512_set1_epi8(0x0F), _mm512_set1_epi8(0x03));
        for i in 0..nsb {
            let blk = w.as_ptr().add(i * q6_k::BLOCK_BYTES);
            let gather = |o: usize| _mm512_i32gather_epi32::<1>(rows, blk.add(o) as *const _);
            for half in 0..2 {
                for g in 0..8 {
                    let ql0 = gather(64 * half + 4 * g);
                    let ql1 = gather(64 * half + 32 + 4 * g);
                    let qh = gather(q6_k::QH + 32 * half + 4 * g);
                    // Bits 2c..2c+2 of each qh byte to bits 4..6; masking
                    // after the 32-bit shifts drops what crossed bytes.
                    let h0 = _mm512_slli_epi32(_mm512_and_si512(qh, m2), 4);
                    let h1 = _mm512_slli_epi32(_mm512_and_si512(_mm512_srli_epi32(qh, 2), m2), 4);
                    let h2 = _mm512_slli_epi32(_mm512_and_si512(_mm512_srli_epi32(qh, 4), m2), 4);
                    let h3 = _mm512_slli_epi32(_mm512_and_si512(_mm512_srli_epi32(qh, 6), m2), 4);
                    let quarters = [
                        _mm512_or_si512(_mm512_and_si512(ql0, m4), h0),
                        _mm512_or_si512(_mm512_and_si512(ql1, m4), h1),
                        _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi32(ql0, 4), m4), h2),
                        _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi32(ql1, 4), m4), h3),
                    ];
                    for (c, v) in quarters.into_iter().enumerate() {
                        let b = 8 * i + 4 * half + c;
                        let q = t.q.as_mut_ptr().add(b * 8 * ROWS) as *mut __m512i;
                        _mm512_storeu_si512(q.add(g), v);
                    }
                }
            }
            // d is the block's last 2 bytes: the upper half of bytes 206..210.
            let d = gather(q6_k::D - 2);
            let d = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(_mm512_srli_epi32(d, 16)));
            for s4 in 0..4 {
                let sc = gather(q6_k::SCALES + 4 * s4);
                for byte in 0..4 {
                    // Scale 4·s4 + byte, sign-extended from its byte.
                    let shift = _mm_cvtsi32_si128(24 - 8 * byte as i32);
                    let v = _mm512_srai_epi32(_mm512_sll_epi32(sc, shift), 24);
                    let group = 16 * i + 4 * s4 + byte;
                    _mm512_storeu_ps(
                        t.d.as_mut_ptr().add(group * ROWS),
                        _mm512_mul_ps(d, _mm512_cvtepi32_ps(v)),
                    );
                }
            }
        }
    }

    /// Q6_K: all activation rows (Q8_K) against one packed tile.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
    pub(super) unsafe fn product_q6_k(t: &Tile, a: &Q8KActs, out: &mut [f32], ld: usize) {
        let m = a.qs.len() / a.k;
        let mut store = |r: usize, y: __m512| {
            let o = &mut out[r * ld..][..ROWS];
            _mm512_storeu_ps(o.as_mut_ptr(), y);
        };
        let mut r = 0;
        while r + 4 <= m {
            for (i, y) in dot_q6_k::<4>(t, a, r).into_iter().enumerate() {
                store(r + i, y);
            }
            r += 4;
        }
        while r < m {
            store(r, dot_q6_k::<1>(t, a, r)[0]);
            r += 1;
        }
    }

    /// Per 32-block: groups 0..4 and 4..8 (16 weights each, with their own
    /// scale) in their own sums, each started from −32·Σy of its 16.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
    unsafe fn dot_q6_k<const R: usize>(t: &Tile, a: &Q8KActs, r0: usize) -> [__m512; R] {
        let nb = t.q.len() / (8 * ROWS);
        let nsb = nb / 8;
        assert!((r0 + R) * a.k <= a.qs.len() && a.k == nb * QK && a.k == nsb * QK_K);
        let mut acc = [_mm512_setzero_ps(); R];
        for b in 0..nb {
            let q = t.q.as_ptr().add(b * 8 * ROWS) as *const __m512i;
            let d_lo = _mm512_loadu_ps(t.d.as_ptr().add(2 * b * ROWS));
            let d_hi = _mm512_loadu_ps(t.d.as_ptr().add((2 * b + 1) * ROWS));
            for (r, acc) in acc.iter_mut().enumerate() {
                let row = r0 + r;
                let y = a.qs.as_ptr().add(row * a.k + b * QK) as *const i32;
                let y = |g: usize| _mm512_set1_epi32(std::ptr::read_unaligned(y.add(g)));
                let bs = a.bsums.as_ptr().add(row * a.k / 16 + 2 * b);
                let mut lo = _mm512_set1_epi32(-32 * *bs as i32);
                let mut hi = _mm512_set1_epi32(-32 * *bs.add(1) as i32);
                for g in 0..4 {
                    let (wl, wh) = (q.add(g) as *const _, q.add(g + 4) as *const _);
                    lo = _mm512_dpbusd_epi32(lo, _mm512_loadu_si512(wl), y(g));
                    hi = _mm512_dpbusd_epi32(hi, _mm512_loadu_si512(wh), y(g + 4));
                }
                let dx = _mm512_set1_ps(*a.d.get_unchecked(row * nsb + b / 8));
                *acc = _mm512_fmadd_ps(_mm512_mul_ps(d_lo, dx), _mm512_cvtepi32_ps(lo), *acc);
                *acc = _mm512_fmadd_ps(_mm512_mul_ps(d_hi, dx), _mm512_cvtepi32_ps(hi), *acc);
            }
        }
        acc
    }

    /// All activation rows against one packed tile, four at a time; row
    /// r's 16 outputs go to `out[r * ld..][..16]`.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
    pub(super) unsafe fn product(ty: GgmlType, t: &Tile, a: &Q8Acts, out: &mut [f32], ld: usize) {
        let min = matches!(ty, GgmlType::Q4_1 | GgmlType::Q4_K);
        let m = a.qs.len() / a.k;
        let mut store = |r: usize, y: __m512| {
            let o = &mut out[r * ld..][..ROWS];
            _mm512_storeu_ps(o.as_mut_ptr(), y);
        };
        if matches!(ty, GgmlType::Q8_0 | GgmlType::Q4_1) {
            // llama.cpp's order for these two: two activation rows at a time
            // (8 accumulators each).
            let mut r = 0;
            while r + 2 <= m {
                for (i, y) in dot_lanes::<2>(t, a, r, min).into_iter().enumerate() {
                    store(r + i, y);
                }
                r += 2;
            }
            if r < m {
                store(r, dot_lanes::<1>(t, a, r, min)[0]);
            }
            return;
        }
        let mut r = 0;
        while r + 4 <= m {
            for (i, y) in dot::<4>(t, a, r, min).into_iter().enumerate() {
                store(r + i, y);
            }
            r += 4;
        }
        while r < m {
            store(r, dot::<1>(t, a, r, min)[0]);
            r += 1;
        }
    }

    /// Activation rows r0..r0+R against the tile in llama.cpp's order for
    /// Q8_0 and Q4_1 (`ggml_vec_dot_q8_0_q8_0`, `ggml_vec_dot_q4_1_q8_1`):
    /// group g of a block (weights 4g..4g+4) is ggml's lane g, each its own
    /// FMA chain over the blocks (16 weight rows side by side), the lanes
    /// added as `hsum_float_8` at the end, plus Q4_1's minimums' terms
    /// summed apart. The same bits as the row kernels.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
    unsafe fn dot_lanes<const R: usize>(t: &Tile, a: &Q8Acts, r0: usize, min: bool) -> [__m512; R] {
        let nb = t.d.len() / ROWS;
        assert!((r0 + R) * a.k <= a.qs.len() && a.k == nb * QK);
        let mut acc = [[_mm512_setzero_ps(); 8]; R];
        let mut mins = [_mm512_setzero_ps(); R];
        for b in 0..nb {
            let q = t.q.as_ptr().add(b * 8 * ROWS) as *const __m512i;
            let dw = _mm512_loadu_ps(t.d.as_ptr().add(b * ROWS));
            for r in 0..R {
                let row = r0 + r;
                let at = row * a.k + b * QK;
                let y = a.qs.as_ptr().add(at) as *const i32;
                let s = _mm512_mul_ps(dw, _mm512_set1_ps(*a.d.get_unchecked(row * nb + b)));
                for (g, acc) in acc[r].iter_mut().enumerate() {
                    let c = _mm512_set1_epi32(*a.corr.get_unchecked(at / 4 + g));
                    let p = _mm512_dpbusd_epi32(
                        c,
                        _mm512_loadu_si512(q.add(g) as *const _),
                        _mm512_set1_epi32(std::ptr::read_unaligned(y.add(g))),
                    );
                    *acc = _mm512_fmadd_ps(s, _mm512_cvtepi32_ps(p), *acc);
                }
                if min {
                    // m·s is exact (two f16): llama.cpp's `summs += m·s`.
                    let mw = _mm512_loadu_ps(t.m.as_ptr().add(b * ROWS));
                    let sx = _mm512_set1_ps(*a.s.get_unchecked(row * nb + b));
                    mins[r] = _mm512_add_ps(mins[r], _mm512_mul_ps(mw, sx));
                }
            }
        }
        sum_lanes(&acc, &mins, min)
    }

    /// Activation rows r0..r0+R against the tile: per block, the 8 groups
    /// in two accumulators (so consecutive `dpbusd`s do not wait on each
    /// other), started from −offset·Σy; then the block's scale.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
    unsafe fn dot<const R: usize>(t: &Tile, a: &Q8Acts, r0: usize, min: bool) -> [__m512; R] {
        let nb = t.d.len() / ROWS;
        assert!((r0 + R) * a.k <= a.qs.len() && a.k == nb * QK);
        let mut acc = [_mm512_setzero_ps(); R];
        let mut mins = [_mm512_setzero_ps(); R];
        for b in 0..nb {
            let q = t.q.as_ptr().add(b * 8 * ROWS) as *const __m512i;
            let dw = _mm512_loadu_ps(t.d.as_ptr().add(b * ROWS));
            for r in 0..R {
                let row = r0 + r;
                let y = a.qs.as_ptr().add(row * a.k + b * QK) as *const i32;
                let y = |g: usize| _mm512_set1_epi32(std::ptr::read_unaligned(y.add(g)));
                let mut s0 = _mm512_set1_epi32(*a.block_corr.get_unchecked(row * nb + b));
                let mut s1 = _mm512_setzero_si512();
                for g in (0..8).step_by(2) {
                    s0 = _mm512_dpbusd_epi32(s0, _mm512_loadu_si512(q.add(g) as *const _), y(g));
                    s1 = _mm512_dpbusd_epi32(
                        s1,
                        _mm512_loadu_si512(q.add(g + 1) as *const _),
                        y(g + 1),
                    );
                }
                let s = _mm512_mul_ps(dw, _mm512_set1_ps(*a.d.get_unchecked(row * nb + b)));
                acc[r] = _mm512_fmadd_ps(s, _mm512_cvtepi32_ps(_mm512_add_epi32(s0, s1)), acc[r]);
                if min {
                    let mw = _mm512_loadu_ps(t.m.as_ptr().add(b * ROWS));
                    mins[r] = _mm512_fmadd_ps(
                        mw,
                        _mm512_set1_ps(*a.s.get_unchecked(row * nb + b)),
                        mins[r],
                    );
                }
            }
        }
        std::array::from_fn(|r| _mm512_add_ps(acc[r], mins[r]))
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::*;
    use std::arch::x86_64::*;

    const ROWS: usize = 8;

    /// Row i's byte offset in lane i.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    fn row_offsets(row_bytes: usize) -> __m256i {
        _mm256_mullo_epi32(
            _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
            _mm256_set1_epi32(row_bytes as i32),
        )
    }

    /// Each lane's low 16 bits as an f16, to f32.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    fn f16_lanes(v: __m256i) -> __m256 {
        let v = _mm256_and_si256(v, _mm256_set1_epi32(0xFFFF));
        let packed = _mm_packus_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
        _mm256_cvtph_ps(packed)
    }

    /// One packed tile (`super::pack`'s layout, the same bytes as
    /// `vnni::pack_rows`), 16 rows as two gathers of 8 per vector.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) unsafe fn pack_rows(
        ty: GgmlType,
        w: &[u8],
        row_bytes: usize,
        nb: usize,
        out: &mut [u8],
    ) {
        let block = packed_block(ty).expect("a packed format");
        let (block_bytes, quants, groups) = packed_source(ty);
        assert!(w.len() >= 2 * ROWS * row_bytes && out.len() >= nb * block);
        assert!(row_bytes * 2 * ROWS < i32::MAX as usize);
        let rows = row_offsets(row_bytes);
        for b in 0..nb {
            for half in 0..2 {
                let blk = w.as_ptr().add(half * ROWS * row_bytes + b * block_bytes);
                let gather = |o: usize| _mm256_i32gather_epi32::<1>(blk.add(o) as *const _, rows);
                let o = out.as_mut_ptr().add(b * block);
                for g in 0..groups {
                    let mut v = gather(quants + 4 * g);
                    if ty == GgmlType::Q8_0 {
                        v = _mm256_xor_si256(v, _mm256_set1_epi8(-128));
                    }
                    _mm256_storeu_si256(o.add(64 * g + 32 * half) as *mut _, v);
                }
                let scales = o.add(64 * groups) as *mut f32;
                _mm256_storeu_ps(scales.add(ROWS * half), f16_lanes(gather(0)));
                if ty == GgmlType::Q4_1 {
                    let mins = o.add(64 * groups + 64) as *mut f32;
                    _mm256_storeu_ps(mins.add(ROWS * half), f16_lanes(gather(2)));
                }
            }
        }
    }

    /// All activation rows against one packed Q4_0 tile (16 rows, two
    /// halves of 8): per block the 8 groups' `maddubs` summed in 16 bits,
    /// one `madd`, started from −8·Σy, then one FMA — `vnni`'s integers and
    /// float operations, so the same bits.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) unsafe fn product_packed_q4_0(p: &[u8], a: &Q8Acts, out: &mut [f32], ld: usize) {
        let m = a.qs.len() / a.k;
        let nb = a.k / QK;
        let block = packed_block(GgmlType::Q4_0).expect("a packed format");
        assert!(p.len() >= nb * block && a.k == nb * QK);
        let (m4, ones) = (_mm256_set1_epi8(0x0F), _mm256_set1_epi16(1));
        for row in 0..m {
            let mut acc = [_mm256_setzero_ps(); 2];
            for b in 0..nb {
                let blk = p.as_ptr().add(b * block);
                let y = a.qs.as_ptr().add(row * a.k + b * QK) as *const i32;
                let y: [__m256i; 8] =
                    std::array::from_fn(|g| _mm256_set1_epi32(std::ptr::read_unaligned(y.add(g))));
                let corr = _mm256_set1_epi32(*a.block_corr.get_unchecked(row * nb + b));
                let dx = _mm256_set1_ps(*a.d.get_unchecked(row * nb + b));
                for (half, acc) in acc.iter_mut().enumerate() {
                    let mut s16 = _mm256_setzero_si256();
                    for g in 0..4 {
                        let v = _mm256_loadu_si256(blk.add(64 * g + 32 * half) as *const _);
                        let lo = _mm256_and_si256(v, m4);
                        let hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), m4);
                        s16 = _mm256_add_epi16(s16, _mm256_maddubs_epi16(lo, y[g]));
                        s16 = _mm256_add_epi16(s16, _mm256_maddubs_epi16(hi, y[g + 4]));
                    }
                    let s32 = _mm256_add_epi32(_mm256_madd_epi16(s16, ones), corr);
                    let dw = _mm256_loadu_ps(blk.add(256 + 32 * half) as *const f32);
                    *acc = _mm256_fmadd_ps(_mm256_mul_ps(dw, dx), _mm256_cvtepi32_ps(s32), *acc);
                }
            }
            let o = out[row * ld..][..2 * ROWS].as_mut_ptr();
            _mm256_storeu_ps(o, acc[0]);
            _mm256_storeu_ps(o.add(ROWS), acc[1]);
        }
    }

    /// As `vnni::pack`, 8 rows of Q4_0 or Q4_1.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) unsafe fn pack(ty: GgmlType, w: &[u8], row_bytes: usize, t: &mut Tile) {
        let nb = t.d.len() / ROWS;
        assert!(t.lanes == ROWS && w.len() >= ROWS * row_bytes);
        assert!(row_bytes * ROWS < i32::MAX as usize);
        let (block_bytes, quants) = match ty {
            GgmlType::Q4_0 => (q4_0::BLOCK_BYTES, 2),
            _ => (q4_1::BLOCK_BYTES, 4),
        };
        let rows = row_offsets(row_bytes);
        let m4 = _mm256_set1_epi8(0x0F);
        for b in 0..nb {
            let blk = w.as_ptr().add(b * block_bytes);
            let gather = |o: usize| _mm256_i32gather_epi32::<1>(blk.add(o) as *const _, rows);
            let q = t.q.as_mut_ptr().add(b * 8 * ROWS) as *mut __m256i;
            for g in 0..4 {
                let v = gather(quants + 4 * g);
                _mm256_storeu_si256(q.add(g), _mm256_and_si256(v, m4));
                _mm256_storeu_si256(q.add(g + 4), _mm256_and_si256(_mm256_srli_epi16(v, 4), m4));
            }
            _mm256_storeu_ps(t.d.as_mut_ptr().add(b * ROWS), f16_lanes(gather(0)));
            if ty == GgmlType::Q4_1 {
                _mm256_storeu_ps(t.m.as_mut_ptr().add(b * ROWS), f16_lanes(gather(2)));
            }
        }
    }

    /// As `vnni::pack_q4_k`, 8 rows.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) unsafe fn pack_q4_k(w: &[u8], row_bytes: usize, t: &mut Tile) {
        let nsb = t.d.len() / ROWS / 8;
        assert!(t.lanes == ROWS && w.len() >= ROWS * row_bytes);
        assert!(row_bytes * ROWS < i32::MAX as usize);
        let rows = row_offsets(row_bytes);
        let m4 = _mm256_set1_epi8(0x0F);
        let byte = |v: __m256i, i: u32| {
            _mm256_and_si256(
                _mm256_srlv_epi32(v, _mm256_set1_epi32(8 * i as i32)),
                _mm256_set1_epi32(0xFF),
            )
        };
        for i in 0..nsb {
            let blk = w.as_ptr().add(i * q4_k::BLOCK_BYTES);
            let gather = |o: usize| _mm256_i32gather_epi32::<1>(blk.add(o) as *const _, rows);
            for p in 0..4 {
                let lo = t.q.as_mut_ptr().add((8 * i + 2 * p) * 8 * ROWS) as *mut __m256i;
                let hi = lo.add(8);
                for g in 0..8 {
                    let v = gather(16 + 32 * p + 4 * g);
                    _mm256_storeu_si256(lo.add(g), _mm256_and_si256(v, m4));
                    _mm256_storeu_si256(hi.add(g), _mm256_and_si256(_mm256_srli_epi16(v, 4), m4));
                }
            }
            let dm = gather(0);
            let d = f16_lanes(dm);
            let dmin = f16_lanes(_mm256_srli_epi32(dm, 16));
            let (s0, s1, s2) = (gather(4), gather(8), gather(12));
            let c63 = _mm256_set1_epi32(63);
            for j in 0..8u32 {
                let (sc, mn) = if j < 4 {
                    (
                        _mm256_and_si256(byte(s0, j), c63),
                        _mm256_and_si256(byte(s1, j), c63),
                    )
                } else {
                    let (lo, top_s, top_m) = (byte(s2, j - 4), byte(s0, j - 4), byte(s1, j - 4));
                    (
                        _mm256_or_si256(
                            _mm256_and_si256(lo, _mm256_set1_epi32(0x0F)),
                            _mm256_slli_epi32(_mm256_srli_epi32(top_s, 6), 4),
                        ),
                        _mm256_or_si256(
                            _mm256_srli_epi32(lo, 4),
                            _mm256_slli_epi32(_mm256_srli_epi32(top_m, 6), 4),
                        ),
                    )
                };
                let b = 8 * i + j as usize;
                let scale = _mm256_mul_ps(d, _mm256_cvtepi32_ps(sc));
                let min = _mm256_mul_ps(dmin, _mm256_cvtepi32_ps(mn));
                _mm256_storeu_ps(t.d.as_mut_ptr().add(b * ROWS), scale);
                _mm256_storeu_ps(
                    t.m.as_mut_ptr().add(b * ROWS),
                    _mm256_sub_ps(_mm256_setzero_ps(), min),
                );
            }
        }
    }

    /// All activation rows against one packed tile, four at a time; row
    /// r's 8 outputs go to `out[r * ld..][..8]`.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) unsafe fn product(ty: GgmlType, t: &Tile, a: &Q8Acts, out: &mut [f32], ld: usize) {
        let min = matches!(ty, GgmlType::Q4_1 | GgmlType::Q4_K);
        let m = a.qs.len() / a.k;
        let mut store = |r: usize, y: __m256| {
            let o = &mut out[r * ld..][..ROWS];
            _mm256_storeu_ps(o.as_mut_ptr(), y);
        };
        let mut r = 0;
        while r + 4 <= m {
            for (i, y) in dot::<4>(t, a, r, min).into_iter().enumerate() {
                store(r + i, y);
            }
            r += 4;
        }
        while r < m {
            store(r, dot::<1>(t, a, r, min)[0]);
            r += 1;
        }
    }

    /// The 4-bit formats: per block, the 8 groups' `maddubs` summed in
    /// 16 bits, one `madd` to 32 bits, started from −offset·Σy.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn dot<const R: usize>(t: &Tile, a: &Q8Acts, r0: usize, min: bool) -> [__m256; R] {
        let nb = t.d.len() / ROWS;
        assert!((r0 + R) * a.k <= a.qs.len() && a.k == nb * QK);
        let ones = _mm256_set1_epi16(1);
        let mut acc = [_mm256_setzero_ps(); R];
        let mut mins = [_mm256_setzero_ps(); R];
        for b in 0..nb {
            let q = t.q.as_ptr().add(b * 8 * ROWS) as *const __m256i;
            let dw = _mm256_loadu_ps(t.d.as_ptr().add(b * ROWS));
            for r in 0..R {
                let row = r0 + r;
                let y = a.qs.as_ptr().add(row * a.k + b * QK) as *const i32;
                let mut s16 = _mm256_setzero_si256();
                for g in 0..8 {
                    let yg = _mm256_set1_epi32(std::ptr::read_unaligned(y.add(g)));
                    s16 = _mm256_add_epi16(
                        s16,
                        _mm256_maddubs_epi16(_mm256_loadu_si256(q.add(g)), yg),
                    );
                }
                let corr = _mm256_set1_epi32(*a.block_corr.get_unchecked(row * nb + b));
                let s32 = _mm256_add_epi32(_mm256_madd_epi16(s16, ones), corr);
                let s = _mm256_mul_ps(dw, _mm256_set1_ps(*a.d.get_unchecked(row * nb + b)));
                acc[r] = _mm256_fmadd_ps(s, _mm256_cvtepi32_ps(s32), acc[r]);
                if min {
                    let mw = _mm256_loadu_ps(t.m.as_ptr().add(b * ROWS));
                    mins[r] = _mm256_fmadd_ps(
                        mw,
                        _mm256_set1_ps(*a.s.get_unchecked(row * nb + b)),
                        mins[r],
                    );
                }
            }
        }
        std::array::from_fn(|r| _mm256_add_ps(acc[r], mins[r]))
    }
}

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    use super::*;
    use crate::quant::QMatrix;

    #[test]
    fn the_avx2_packer_writes_the_vnni_packer_s_bytes() {
        if !Isa::Avx512Vnni.supported() {
            eprintln!("skipped: no AVX-512 VNNI on this CPU to compare the AVX2 packer with");
            return;
        }
        let (rows, nb) = (32, 5);
        let cols = nb * QK;
        let w: Vec<f32> = (0..rows * cols)
            .map(|i| ((i * 7919 % 1000) as f32 - 500.0) * 0.003)
            .collect();
        for ty in [GgmlType::Q8_0, GgmlType::Q4_0, GgmlType::Q4_1] {
            let q = QMatrix::quantize(ty, &w, rows, cols).unwrap();
            let block = packed_block(ty).unwrap();
            let row_bytes = super::super::row_bytes(ty, cols);
            for t in 0..rows / PACK_ROWS {
                let src = &q.bytes[t * PACK_ROWS * row_bytes..];
                let (mut a, mut b) = (vec![0u8; nb * block], vec![0u8; nb * block]);
                // SAFETY: VNNI (hence AVX2) is supported, checked above.
                unsafe {
                    vnni::pack_rows(ty, src, row_bytes, nb, &mut a);
                    avx2::pack_rows(ty, src, row_bytes, nb, &mut b);
                }
                assert_eq!(a, b, "{ty:?}, tile {t}");
                assert!(
                    a.iter().any(|&x| x != 0),
                    "{ty:?}: an empty tile proves nothing"
                );
            }
        }
    }
}
