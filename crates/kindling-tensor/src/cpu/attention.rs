//! Causal scaled dot-product attention straight from the fused QKV
//! projection: q, k and v of head h are column blocks of `qkv [B, T, 3C]`
//! (C = H·D), read in place through GEMM strides, and the output is written
//! as `[B, T, C]`, ready for the output projection. So neither the head
//! split nor the head merge is ever copied, forward or backward.
//!
//! One batch element (all its heads) per task, each product a small
//! single-threaded GEMM. The causal mask lives inside the row softmax (keys
//! j > i get probability 0), so no mask tensor exists; the probabilities
//! are kept for backward and for drawing attention maps.

use super::ggml_order;
use super::matmul::{gemm_output, gemm_serial_into};
use super::simd;
use super::softmax::softmax_in_place;
use crate::backend::{AttentionGeometry, CachedAttentionGeometry};
use crate::backend::{Gemm, Mat};
use rayon::prelude::*;

/// Query (or key) blocks of the causal products: `(start, len)` pieces of
/// `0..t`. Block by block, the products skip the part above the diagonal
/// (a quarter of the work at T = 2 blocks, nearly half for many).
const BLOCK: usize = 32;

fn blocks(t: usize) -> impl Iterator<Item = (usize, usize)> {
    (0..t).step_by(BLOCK).map(move |s| (s, BLOCK.min(t - s)))
}

fn parallel(g: &AttentionGeometry) -> bool {
    g.batch > 1 && g.batch * g.heads * g.t * g.t * g.d >= super::PARALLEL_MIN_ELEMS
}

/// Returns `(y [B, T, C], probs [B, H, T, T])` (probs zero above the diagonal).
pub fn forward(qkv: &[f32], g: &AttentionGeometry) -> (Vec<f32>, Vec<f32>) {
    let (t, d, h, c) = (g.t, g.d, g.heads, g.c());
    assert_eq!(qkv.len(), g.batch * t * 3 * c, "attention: qkv size");
    let scale = 1.0 / (d as f32).sqrt();
    let mut y = gemm_output(g.batch * t * c);
    let mut probs = gemm_output(g.batch * h * t * t);
    let one = |(b, (yb, pb)): (usize, (&mut [f32], &mut [f32]))| {
        let x = &qkv[b * t * 3 * c..(b + 1) * t * 3 * c];
        for (hi, p) in pb.chunks_exact_mut(t * t).enumerate() {
            let (q, k, v) = (&x[hi * d..], &x[c + hi * d..], &x[2 * c + hi * d..]);
            // S = Q K^T: rows of Q and K are 3C apart, K read transposed.
            // A block of queries needs only the keys up to its last row.
            for (r0, rows) in blocks(t) {
                let keys = r0 + rows;
                let (dst, qr) = (&mut p[r0 * t..], &q[r0 * 3 * c..]);
                // S rows [rows, keys] = Q rows [rows, d] @ K^T [d, keys].
                let g = Gemm::new(
                    rows,
                    keys,
                    d,
                    Mat::row_major(qr, 0, 3 * c),
                    Mat::row_major(k, 0, 3 * c).t(),
                );
                gemm_serial_into(dst, t, &g);
            }
            simd::dispatch(CausalSoftmax { p, t, scale });
            // Y_h = P V, written into columns hi*D.. of the [T, C] output.
            for (r0, rows) in blocks(t) {
                let (dst, pr) = (&mut yb[r0 * c + hi * d..], &p[r0 * t..]);
                let g = Gemm::new(
                    rows,
                    d,
                    r0 + rows,
                    Mat::row_major(pr, 0, t),
                    Mat::row_major(v, 0, 3 * c),
                );
                gemm_serial_into(dst, c, &g);
            }
        }
    };
    if parallel(g) {
        y.par_chunks_mut(t * c)
            .zip(probs.par_chunks_mut(h * t * t))
            .enumerate()
            .for_each(one);
    } else {
        y.chunks_mut(t * c)
            .zip(probs.chunks_mut(h * t * t))
            .enumerate()
            .for_each(one);
    }
    (y, probs)
}

/// Keys or values `[B, Tk, kv_heads, d]` read in place: element
/// `[b, j, h, e]` is `data[b·batch_stride + j·pos_stride + h·d + e]`.
pub struct KvView<'a> {
    pub data: &'a [f32],
    pub batch_stride: usize,
    pub pos_stride: usize,
}

/// Values laid out as llama.cpp keeps its value cache without flash
/// attention, each element's values over positions in a row: element
/// `[b, j, h, e]` is `data[b·batch_stride + h·head_stride + e·elem_stride + j]`.
#[derive(Clone, Copy)]
pub struct ValuesT<'a> {
    pub data: &'a [f32],
    pub batch_stride: usize,
    pub head_stride: usize,
    pub elem_stride: usize,
}

/// The values `cached` reads in place: rows like the keys', or transposed.
pub enum Values<'a> {
    Rows(KvView<'a>),
    Transposed(ValuesT<'a>),
}

/// Attention of new queries over a KV cache, `y [B, T, H·D]`: query i of
/// `q [B, T, H, D]` sees keys 0..=past+i, head h those of kv head
/// h / (H / kv_heads). A decoding step is one query row: one dot product
/// and one scaled add of `d` values per cached position and head, no GEMM
/// set-up, no mask, no copy of the cache. Rows in parallel when there is
/// enough work (a prompt continuing a conversation).
///
/// The arithmetic is llama.cpp's (CPU backend, f32 cache, no flash
/// attention; `ggml_order`), so that generation picks llama.cpp's tokens:
/// scores by `ggml_vec_dot_f32`, scaled, a softmax with ggml's `expf` and
/// its sum in f64, and the weighted sum of values as ggml's product of the
/// transposed value cache with the probabilities — `ggml_vec_dot_f32` over
/// positions for one query row, tinyBLAS's single 16-lane accumulator when
/// a call carries several (T ≥ 2).
pub fn cached(q: &[f32], k: &KvView, v: &Values, g: &CachedAttentionGeometry) -> Vec<f32> {
    cached_with(q, k, v, g, g.d.is_multiple_of(16) && wide::available())
}

/// From this many query rows per call, the AVX-512 path (`wide`) lays the
/// keys out transposed once: 16 scores at a time with the key in the lane.
/// Below it (a decoding step), the keys are read in place: 16 keys' scores
/// at a time with their lane sums done together (head sizes a multiple of
/// 64). Values are always read in place, by rows or transposed as the KV
/// cache keeps them. Same bits as the portable path either way.
const WIDE_MIN_ROWS: usize = 4;

fn cached_with(
    q: &[f32],
    k: &KvView,
    v: &Values,
    g: &CachedAttentionGeometry,
    wide: bool,
) -> Vec<f32> {
    let (t, hd) = (g.t, g.heads * g.d);
    assert_eq!(q.len(), g.batch * t * hd, "attention_cached: q size");
    // The wide kernels' safety rests on this (`cached` checks it first).
    assert!(!wide || (wide::available() && g.d.is_multiple_of(16)));
    let mut y = vec![0f32; g.batch * t * hd];
    let transposed = wide && t >= WIDE_MIN_ROWS;
    let keys_t = transposed.then(|| transpose_keys(k, g));
    let per_batch = g.kv_heads * (g.past + t).next_multiple_of(16) * g.d;
    // Values are read in place, by rows or transposed (the KV cache's).
    let (v_rows, v_t) = match v {
        Values::Rows(rows) => (Some(rows), None),
        Values::Transposed(vt) => (None, Some(*vt)),
    };
    // Heads `heads` of query row r, written into `out` (those heads' D
    // values each).
    let run = |r: usize, heads: std::ops::Range<usize>, out: &mut [f32]| {
        let b = r / t;
        simd::dispatch(CachedRow {
            q: &q[r * hd..(r + 1) * hd],
            k,
            v_rows,
            v_t,
            keys_t: keys_t.as_ref().map(|kt| &kt[b * per_batch..][..per_batch]),
            b,
            keys: g.past + r % t + 1,
            wide,
            heads,
            g,
            out,
        })
    };
    let rows = g.batch * t;
    let big = rows * (g.past + t) * hd >= super::PARALLEL_MIN_ELEMS;
    if big && rows < 4 {
        // A decoding step: too few rows to share out, so heads go to the
        // threads (as llama.cpp splits its attention products).
        y.par_chunks_mut(g.d).enumerate().for_each(|(i, out)| {
            let (r, h) = (i / g.heads, i % g.heads);
            run(r, h..h + 1, out)
        });
    } else if big {
        y.par_chunks_mut(hd)
            .enumerate()
            .for_each(|(r, out)| run(r, 0..g.heads, out));
    } else {
        y.chunks_mut(hd)
            .enumerate()
            .for_each(|(r, out)| run(r, 0..g.heads, out));
    }
    y
}

/// Keys `[B, Tk, H_kv, d]` as `[B, H_kv, ⌈Tk/16⌉, d, 16]`: block `n` of kv
/// head `h` holds positions 16n..16n+16 (zeros past Tk), element by element.
fn transpose_keys(k: &KvView, g: &CachedAttentionGeometry) -> Vec<f32> {
    let (d, tk) = (g.d, g.past + g.t);
    let blocks = tk.div_ceil(16);
    let mut out = vec![0f32; g.batch * g.kv_heads * blocks * d * 16];
    for (bh, dst) in out.chunks_exact_mut(blocks * d * 16).enumerate() {
        let (b, h) = (bh / g.kv_heads, bh % g.kv_heads);
        for j in 0..tk {
            let a = b * k.batch_stride + j * k.pos_stride + h * d;
            let blk = &mut dst[(j / 16) * d * 16..][..d * 16];
            for (e, &x) in k.data[a..a + d].iter().enumerate() {
                blk[e * 16 + j % 16] = x;
            }
        }
    }
    out
}

/// The AVX-512 kernels of `cached` (prompts and decoding steps), in
/// intrinsics (written as portable loops, LLVM kept the 16 accumulators in
/// memory).
mod wide {
    #[cfg(target_arch = "x86_64")]
    use std::arch::x86_64::*;

    pub fn available() -> bool {
        cfg!(target_arch = "x86_64") && super::simd::level() == super::simd::Level::Avx512
    }

    /// Scaled scores of `q [d]` against the 16 keys of one transposed block
    /// `kt [d, 16]` into `out [16]`: for each key, `ggml_vec_dot_f32`'s
    /// products, lane sums and `reduce16` in its order, 16 keys side by side.
    ///
    /// # Safety
    /// The CPU has AVX-512F (`available()`); `kt.len() >= 16 * q.len()`.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    pub unsafe fn dots16(q: &[f32], kt: &[f32], scale: f32, out: &mut [f32]) {
        // A fixed number of 64-wide steps unrolls whole (head sizes 64, 128).
        match q.len() & !63 {
            64 => dots16_steps::<1>(q, kt, scale, out),
            128 => dots16_steps::<2>(q, kt, scale, out),
            _ => dots16_any(q, kt, scale, out),
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn dots16_steps<const STEPS: usize>(q: &[f32], kt: &[f32], scale: f32, out: &mut [f32]) {
        let n = q.len();
        assert!(n & !63 == 64 * STEPS && kt.len() >= 16 * n && out.len() >= 16);
        let (qp, kp) = (q.as_ptr(), kt.as_ptr());
        let term = |e: usize, acc: __m512| {
            _mm512_fmadd_ps(
                _mm512_set1_ps(*qp.add(e)),
                _mm512_loadu_ps(kp.add(e * 16)),
                acc,
            )
        };
        let s: [__m512; 16] = std::array::from_fn(|l| {
            let mut a = [_mm512_setzero_ps(); 4];
            for i in 0..STEPS {
                for (c, ac) in a.iter_mut().enumerate() {
                    *ac = term(64 * i + 16 * c + l, *ac);
                }
            }
            _mm512_add_ps(_mm512_add_ps(a[0], a[2]), _mm512_add_ps(a[1], a[3]))
        });
        let mut r = reduce16_lanes(s);
        for e in 64 * STEPS..n {
            r = term(e, r);
        }
        _mm512_storeu_ps(out.as_mut_ptr(), _mm512_mul_ps(r, _mm512_set1_ps(scale)));
    }

    /// `reduce16`'s pairing, lane by lane across 16 vectors: lane j of the
    /// result sums lane j of each, as `reduce16` sums one vector's lanes.
    #[cfg(target_arch = "x86_64")]
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn reduce16_lanes(s: [__m512; 16]) -> __m512 {
        let t: [__m512; 8] = std::array::from_fn(|i| _mm512_add_ps(s[i + 8], s[i]));
        let u: [__m512; 4] = std::array::from_fn(|i| _mm512_add_ps(t[i + 4], t[i]));
        _mm512_add_ps(_mm512_add_ps(u[0], u[2]), _mm512_add_ps(u[1], u[3]))
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    unsafe fn dots16_any(q: &[f32], kt: &[f32], scale: f32, out: &mut [f32]) {
        let n = q.len();
        assert!(kt.len() >= 16 * n && out.len() >= 16);
        let np = n & !63;
        let kp = kt.as_ptr();
        let row = |e: usize| _mm512_loadu_ps(kp.add(e * 16));
        let mut s = [_mm512_setzero_ps(); 16];
        for (l, sl) in s.iter_mut().enumerate() {
            let mut a = [_mm512_setzero_ps(); 4];
            let mut i = 0;
            while i < np {
                for (c, ac) in a.iter_mut().enumerate() {
                    let e = i + 16 * c + l;
                    *ac = _mm512_fmadd_ps(_mm512_set1_ps(q[e]), row(e), *ac);
                }
                i += 64;
            }
            *sl = _mm512_add_ps(_mm512_add_ps(a[0], a[2]), _mm512_add_ps(a[1], a[3]));
        }
        let mut r = reduce16_lanes(s);
        for (e, &qe) in q.iter().enumerate().skip(np) {
            r = _mm512_fmadd_ps(_mm512_set1_ps(qe), row(e), r);
        }
        _mm512_storeu_ps(out.as_mut_ptr(), _mm512_mul_ps(r, _mm512_set1_ps(scale)));
    }

    /// `reduce16` of each of 16 vectors, into lane i of one vector: the
    /// vectors are transposed as they are added, in `reduce16`'s pairing
    /// (lanes i and i + 8, then i and i + 4, then (0 + 2) + (1 + 3)).
    #[cfg(target_arch = "x86_64")]
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn reduce16_each(v: [__m512; 16]) -> __m512 {
        // Halves: two vectors' t = lanes i + (i + 8) in one.
        let x: [__m512; 8] = std::array::from_fn(|k| {
            let (a, b) = (v[2 * k], v[2 * k + 1]);
            _mm512_add_ps(
                _mm512_shuffle_f32x4::<0b01_00_01_00>(a, b),
                _mm512_shuffle_f32x4::<0b11_10_11_10>(a, b),
            )
        });
        // Quarters: four vectors' u = t_i + t_(i + 4) in one.
        let z: [__m512; 4] = std::array::from_fn(|m| {
            let (a, b) = (x[2 * m], x[2 * m + 1]);
            _mm512_add_ps(
                _mm512_shuffle_f32x4::<0b10_00_10_00>(a, b),
                _mm512_shuffle_f32x4::<0b11_01_11_01>(a, b),
            )
        });
        // (u0 + u2) + (u1 + u3) within each quarter.
        let pair = |a: __m512, b: __m512| {
            _mm512_add_ps(
                _mm512_shuffle_ps::<0b01_00_01_00>(a, b),
                _mm512_shuffle_ps::<0b11_10_11_10>(a, b),
            )
        };
        let (e, f) = (pair(z[0], z[1]), pair(z[2], z[3]));
        let r = _mm512_add_ps(
            _mm512_shuffle_ps::<0b10_00_10_00>(e, f),
            _mm512_shuffle_ps::<0b11_01_11_01>(e, f),
        );
        // Vector i = 4a + b ends in lane 4b + a.
        let order = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
        _mm512_permutexvar_ps(order, r)
    }

    /// Scaled scores of `q [d]` (d a multiple of 64) against `n ≤ 16` keys
    /// read in place, key j at `k[j * stride..][..d]`, into `out[..n]`:
    /// `ggml_vec_dot_f32` for each (its four accumulators over steps of 64,
    /// summed pairwise), the 16 keys' final lane sums done together
    /// (`reduce16_each`) instead of one horizontal sum per key.
    ///
    /// # Safety
    /// The CPU has AVX-512F; `k[(n - 1) * stride..][..d]` is in bounds.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    pub unsafe fn scores16(
        q: &[f32],
        k: &[f32],
        stride: usize,
        n: usize,
        scale: f32,
        out: &mut [f32],
    ) {
        let d = q.len();
        assert!(d.is_multiple_of(64) && (1..=16).contains(&n) && out.len() >= n);
        assert!((n - 1) * stride + d <= k.len());
        let (qp, kp) = (q.as_ptr(), k.as_ptr());
        let s: [__m512; 16] = std::array::from_fn(|j| {
            let mut a = [_mm512_setzero_ps(); 4];
            if j < n {
                let kj = kp.add(j * stride);
                for i in (0..d).step_by(64) {
                    for (c, ac) in a.iter_mut().enumerate() {
                        let e = i + 16 * c;
                        *ac = _mm512_fmadd_ps(
                            _mm512_loadu_ps(qp.add(e)),
                            _mm512_loadu_ps(kj.add(e)),
                            *ac,
                        );
                    }
                }
            }
            _mm512_add_ps(_mm512_add_ps(a[0], a[2]), _mm512_add_ps(a[1], a[3]))
        });
        let r = _mm512_mul_ps(reduce16_each(s), _mm512_set1_ps(scale));
        _mm512_mask_storeu_ps(out.as_mut_ptr(), ((1u32 << n) - 1) as __mmask16, r);
    }

    /// `out[e] = Σ_j p[j]·v_j[e]` with the values read in place (value j
    /// at `v[j * stride..]`), `lanes` = 64 for `ggml_vec_dot_f32` over
    /// positions (position j into lane j % 64 of its four 16-lane
    /// accumulators, those summed pairwise, then `reduce16`) or 16 for
    /// tinyBLAS (lane j % 16 of one). 16 outputs at a time, the output in
    /// the vector lane: one pass per 16-lane group over its positions, the
    /// groups' accumulators kept and combined at the end.
    ///
    /// # Safety
    /// The CPU has AVX-512F; `out.len()` is a multiple of 16, `keys <=
    /// p.len()`, and `v[(keys - 1) * stride..][..out.len()]` is in bounds.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    pub unsafe fn weighted_sum_in_place(
        p: &[f32],
        keys: usize,
        v: &[f32],
        stride: usize,
        lanes: usize,
        out: &mut [f32],
    ) {
        let d = out.len();
        assert!(d.is_multiple_of(16) && keys <= p.len() && (lanes == 16 || lanes == 64));
        if keys > 0 {
            assert!((keys - 1) * stride + d <= v.len());
        }
        let (pp, vp) = (p.as_ptr(), v.as_ptr());
        let groups = lanes / 16;
        for e0 in (0..d).step_by(16) {
            let mut a = [[_mm512_setzero_ps(); 16]; 4];
            for (c, acc) in a.iter_mut().enumerate().take(groups) {
                let mut base = 16 * c;
                while base < keys {
                    let live = (keys - base).min(16);
                    for (l, al) in acc.iter_mut().enumerate() {
                        if l < live {
                            let j = base + l;
                            let x = _mm512_loadu_ps(vp.add(j * stride + e0));
                            *al = _mm512_fmadd_ps(_mm512_set1_ps(*pp.add(j)), x, *al);
                        }
                    }
                    base += lanes;
                }
            }
            let s: [__m512; 16] = if groups == 4 {
                std::array::from_fn(|l| {
                    _mm512_add_ps(
                        _mm512_add_ps(a[0][l], a[2][l]),
                        _mm512_add_ps(a[1][l], a[3][l]),
                    )
                })
            } else {
                a[0]
            };
            _mm512_storeu_ps(out.as_mut_ptr().add(e0), reduce16_lanes(s));
        }
    }

    /// `out[e] = Σ_j p[j]·vt[e·stride + j]` over positions j < `keys`, `vt`
    /// one head's transposed values, `p` the probabilities. `lanes` = 64:
    /// `ggml_vec_dot_f32`'s order over positions (one query row): position
    /// j into lane j % 16 of accumulator (j % 64) / 16, the four summed
    /// pairwise, then `reduce16`; 16: tinyBLAS's (several rows), lane j % 16
    /// of one accumulator, then `reduce16`. Sixteen accumulators at a time
    /// (16 / (lanes / 16) outputs), the outputs' sums reduced 16 at once.
    ///
    /// # Safety
    /// The CPU has AVX-512F; `out.len()` is a multiple of 16. (Lanes past
    /// `keys` are masked off: neither `p` nor `vt` is read there.)
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    pub unsafe fn weighted_sum_t(
        p: &[f32],
        keys: usize,
        vt: &[f32],
        stride: usize,
        lanes: usize,
        out: &mut [f32],
    ) {
        match lanes {
            64 => weighted_sum_groups::<4, 4>(p, keys, vt, stride, out),
            16 => weighted_sum_groups::<1, 16>(p, keys, vt, stride, out),
            _ => unreachable!("16 or 64 lanes"),
        }
    }

    /// `weighted_sum_t` with `G` accumulators of 16 lanes per output, `N`
    /// outputs at a time (G·N = 16 accumulators).
    #[cfg(target_arch = "x86_64")]
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn weighted_sum_groups<const G: usize, const N: usize>(
        p: &[f32],
        keys: usize,
        vt: &[f32],
        stride: usize,
        out: &mut [f32],
    ) {
        let d = out.len();
        assert!(G * N == 16 && d.is_multiple_of(16) && keys <= p.len());
        assert!(keys > 0 && (d - 1) * stride + keys <= vt.len());
        let (pp, vp) = (p.as_ptr(), vt.as_ptr());
        let mask = |at: usize| -> __mmask16 {
            match keys - at {
                live if live >= 16 => 0xFFFF,
                live => (1u16 << live) - 1,
            }
        };
        for e0 in (0..d).step_by(16) {
            let mut sums = [_mm512_setzero_ps(); 16];
            for g in (0..16).step_by(N) {
                let mut acc = [[_mm512_setzero_ps(); G]; N];
                let mut base = 0;
                while base < keys {
                    for c in 0..G {
                        let at = base + 16 * c;
                        if at >= keys {
                            break;
                        }
                        let m = mask(at);
                        let pv = _mm512_maskz_loadu_ps(m, pp.add(at));
                        for (i, a) in acc.iter_mut().enumerate() {
                            let x = _mm512_maskz_loadu_ps(m, vp.add((e0 + g + i) * stride + at));
                            a[c] = _mm512_fmadd_ps(pv, x, a[c]);
                        }
                    }
                    base += 16 * G;
                }
                for (i, a) in acc.iter().enumerate() {
                    sums[g + i] = if G == 4 {
                        _mm512_add_ps(_mm512_add_ps(a[0], a[2]), _mm512_add_ps(a[1], a[3]))
                    } else {
                        a[0]
                    };
                }
            }
            _mm512_storeu_ps(out.as_mut_ptr().add(e0), reduce16_each(sums));
        }
    }

    #[cfg(not(target_arch = "x86_64"))]
    pub unsafe fn dots16(_: &[f32], _: &[f32], _: f32, _: &mut [f32]) {
        unreachable!("AVX-512 only")
    }

    #[cfg(not(target_arch = "x86_64"))]
    pub unsafe fn weighted_sum_in_place(
        _: &[f32],
        _: usize,
        _: &[f32],
        _: usize,
        _: usize,
        _: &mut [f32],
    ) {
        unreachable!("AVX-512 only")
    }

    #[cfg(not(target_arch = "x86_64"))]
    pub unsafe fn scores16(_: &[f32], _: &[f32], _: usize, _: usize, _: f32, _: &mut [f32]) {
        unreachable!("AVX-512 only")
    }

    #[cfg(not(target_arch = "x86_64"))]
    pub unsafe fn weighted_sum_t(
        _: &[f32],
        _: usize,
        _: &[f32],
        _: usize,
        _: usize,
        _: &mut [f32],
    ) {
        unreachable!("AVX-512 only")
    }
}

/// Some heads of one query row of `cached`, written into `out` (zeros, D
/// values per head).
struct CachedRow<'a> {
    q: &'a [f32],
    k: &'a KvView<'a>,
    /// The values by rows, or else transposed.
    v_rows: Option<&'a KvView<'a>>,
    v_t: Option<ValuesT<'a>>,
    /// This row's batch element from `transpose_keys` on the wide path.
    keys_t: Option<&'a [f32]>,
    b: usize,
    keys: usize,
    /// AVX-512 kernels allowed (`cached`'s choice).
    wide: bool,
    /// The heads to compute; `out` holds their D values each.
    heads: std::ops::Range<usize>,
    g: &'a CachedAttentionGeometry,
    out: &'a mut [f32],
}

impl simd::Kernel for CachedRow<'_> {
    type Output = ();
    #[inline(always)]
    fn run(self) {
        let CachedRow {
            q,
            k,
            v_rows,
            v_t,
            keys_t,
            b,
            keys,
            wide,
            heads,
            g,
            out,
        } = self;
        let (d, rep) = (g.d, g.heads / g.kv_heads);
        let scale = 1.0 / (d as f32).sqrt();
        let at = |kv: &KvView, j: usize, h: usize| b * kv.batch_stride + j * kv.pos_stride + h * d;
        // Probabilities padded with zeros to whole chunks of 16 positions
        // (llama.cpp's masked, padded cache cells).
        let padded = keys.next_multiple_of(16);
        let mut s = vec![0f32; padded];
        // ggml_vec_dot_f32 over positions: lane p % 64 of four 16-lane
        // accumulators; tinyBLAS: lane p % 16 of one.
        let lanes = if g.t >= 2 { 16 } else { 64 };
        // Rows of lanes no position reaches stay +0, as ggml's zeroed
        // accumulators; each head rewrites only rows 0..used.
        let used = keys.min(lanes);
        // The portable path's lane accumulators (the wide kernels keep
        // theirs in registers).
        let mut acc = if wide {
            Vec::new()
        } else {
            vec![0f32; lanes * d]
        };
        let mut t = if wide { Vec::new() } else { vec![0f32; 16 * d] };
        let mut x16 = [0f32; 16];
        let head_t = (g.past + g.t).next_multiple_of(16) * d;
        let h0 = heads.start;
        let fast_scores = wide && d.is_multiple_of(64);
        for h in heads {
            let kvh = h / rep;
            let qh = &q[h * d..(h + 1) * d];
            match keys_t {
                Some(kt) => {
                    // SAFETY: `keys_t` is built only when `wide::available()`;
                    // each head's blocks are `head_t` long, d·16 per block.
                    let kt = &kt[kvh * head_t..][..head_t];
                    for (n, sb) in s.chunks_exact_mut(16).enumerate() {
                        unsafe { wide::dots16(qh, &kt[n * d * 16..][..d * 16], scale, sb) };
                    }
                }
                None if fast_scores => {
                    // SAFETY: `fast_scores` holds only with AVX-512 and d a
                    // multiple of 64; key j of this head starts at `at(k, j, kvh)`.
                    let base = &k.data[at(k, 0, kvh)..];
                    for (n, sb) in s.chunks_exact_mut(16).enumerate() {
                        let m = (keys - 16 * n).min(16);
                        let kn = &base[16 * n * k.pos_stride..];
                        unsafe { wide::scores16(qh, kn, k.pos_stride, m, scale, sb) };
                    }
                }
                None => {
                    for (j, sj) in s[..keys].iter_mut().enumerate() {
                        let a = at(k, j, kvh);
                        *sj = ggml_order::dot(qh, &k.data[a..a + d]) * scale;
                    }
                }
            }
            // ggml_compute_forward_soft_max_f32 / ggml_vec_soft_max_f32.
            // The maximum in 16 lanes (exact, so any order gives ggml's).
            let mut m16 = [f32::NEG_INFINITY; 16];
            let whole = s[..keys].chunks_exact(16);
            let mut max = whole
                .remainder()
                .iter()
                .fold(f32::NEG_INFINITY, |m, &x| m.max(x));
            for chunk in whole {
                for l in 0..16 {
                    m16[l] = m16[l].max(chunk[l]);
                }
            }
            max = m16.iter().fold(max, |m, &x| m.max(x));
            let mut sum = 0f64;
            for (c, chunk) in s.chunks_exact_mut(16).enumerate() {
                // Lanes past `keys` are masked cells: exp(−∞) = 0.
                let live = keys.saturating_sub(c * 16).min(16);
                for l in 0..16 {
                    x16[l] = if l < live { chunk[l] - max } else { 0.0 };
                }
                let mut e = ggml_order::expf16(&x16);
                for x in &mut e[live..] {
                    *x = 0.0;
                }
                chunk.copy_from_slice(&e);
                sum += ggml_order::reduce16(&e) as f64;
            }
            let inv = (1.0 / sum) as f32;
            for x in &mut s[..keys] {
                *x *= inv;
            }
            let o = &mut out[(h - h0) * d..(h - h0 + 1) * d];
            if let Some(vt) = v_t {
                let base = &vt.data[b * vt.batch_stride + kvh * vt.head_stride..];
                if wide {
                    // SAFETY: `wide` holds only with AVX-512 and d a multiple
                    // of 16; element e's values start at `base[e * elem_stride]`.
                    unsafe { wide::weighted_sum_t(&s, keys, base, vt.elem_stride, lanes, o) };
                } else {
                    weighted_sum_t(&s[..keys], base, vt.elem_stride, lanes, o);
                }
                continue;
            }
            let v = v_rows.expect("values by rows when not transposed");
            if wide {
                // SAFETY: `wide` holds only with AVX-512 and d a multiple of
                // 16; value j of this head starts at `at(v, j, kvh)`.
                let base = &v.data[at(v, 0, kvh)..];
                unsafe { wide::weighted_sum_in_place(&s, keys, base, v.pos_stride, lanes, o) };
                continue;
            }
            acc[..used * d].fill(0.0);
            for (j, &p) in s[..keys].iter().enumerate() {
                let a = at(v, j, kvh);
                let lane = &mut acc[(j % lanes) * d..][..d];
                for (o, &x) in lane.iter_mut().zip(&v.data[a..a + d]) {
                    *o = p.mul_add(x, *o);
                }
            }
            // Per output element, the lanes added as ggml adds them (the
            // four accumulators pairwise, then `_mm512_reduce_add_ps`), for
            // all d elements at once.
            let row = |l: usize| &acc[l * d..][..d];
            for l in 0..16 {
                let tl = &mut t[l * d..][..d];
                if lanes == 64 {
                    let (a0, a1, a2, a3) = (row(l), row(l + 16), row(l + 32), row(l + 48));
                    for i in 0..d {
                        tl[i] = (a0[i] + a2[i]) + (a1[i] + a3[i]);
                    }
                } else {
                    tl.copy_from_slice(row(l));
                }
            }
            for l in 0..8 {
                let (lo, hi) = t.split_at_mut((l + 8) * d);
                for (x, y) in lo[l * d..][..d].iter_mut().zip(&hi[..d]) {
                    *x = *y + *x;
                }
            }
            for l in 0..4 {
                let (lo, hi) = t.split_at_mut((l + 4) * d);
                for (x, y) in lo[l * d..][..d].iter_mut().zip(&hi[..d]) {
                    *x = *y + *x;
                }
            }
            for (i, o) in o.iter_mut().enumerate() {
                *o = (t[i] + t[2 * d + i]) + (t[d + i] + t[3 * d + i]);
            }
        }
    }
}

/// The portable weighted sum of transposed values (`vt[e * stride + j]`,
/// positions j < p.len()): for each output element, position j into lane
/// j % `lanes` of its accumulators, the lanes summed as ggml sums them
/// (64: its four 16-lane accumulators pairwise, then `reduce16`; 16: `reduce16`).
#[inline(always)]
fn weighted_sum_t(p: &[f32], vt: &[f32], stride: usize, lanes: usize, out: &mut [f32]) {
    if lanes == 64 {
        weighted_sum_t_lanes::<64>(p, vt, stride, out)
    } else {
        weighted_sum_t_lanes::<16>(p, vt, stride, out)
    }
}

/// `weighted_sum_t` with `L` lanes: chunks of L positions added lane by
/// lane (a fixed-size loop that vectorizes), so lane l gets positions
/// j ≡ l (mod L) in order.
#[inline(always)]
fn weighted_sum_t_lanes<const L: usize>(p: &[f32], vt: &[f32], stride: usize, out: &mut [f32]) {
    for (e, o) in out.iter_mut().enumerate() {
        let row = &vt[e * stride..][..p.len()];
        let mut acc = [0f32; L];
        let (pc, rc) = (p.chunks_exact(L), row.chunks_exact(L));
        let (ptail, rtail) = (pc.remainder(), rc.remainder());
        for (pj, xj) in pc.zip(rc) {
            for l in 0..L {
                acc[l] = pj[l].mul_add(xj[l], acc[l]);
            }
        }
        for (a, (&pj, &xj)) in acc.iter_mut().zip(ptail.iter().zip(rtail)) {
            *a = pj.mul_add(xj, *a);
        }
        let s: [f32; 16] = std::array::from_fn(|l| {
            if L == 64 {
                (acc[l] + acc[l + 32]) + (acc[l + 16] + acc[l + 48])
            } else {
                acc[l]
            }
        });
        *o = ggml_order::reduce16(&s);
    }
}

/// Returns `dqkv [B, T, 3C]` from upstream `dy [B, T, C]`.
pub fn backward(dy: &[f32], qkv: &[f32], probs: &[f32], g: &AttentionGeometry) -> Vec<f32> {
    let (t, d, h, c) = (g.t, g.d, g.heads, g.c());
    assert!(dy.len() == g.batch * t * c && probs.len() == g.batch * h * t * t);
    let scale = 1.0 / (d as f32).sqrt();
    let mut dqkv = gemm_output(g.batch * t * 3 * c);
    let one = |(b, dx): (usize, &mut [f32])| {
        let x = &qkv[b * t * 3 * c..(b + 1) * t * 3 * c];
        let dyb = &dy[b * t * c..(b + 1) * t * c];
        let mut ds = vec![0f32; t * t];
        for hi in 0..h {
            let (q, k, v) = (&x[hi * d..], &x[c + hi * d..], &x[2 * c + hi * d..]);
            let p = &probs[(b * h + hi) * t * t..][..t * t];
            let dyh = &dyb[hi * d..];
            // Row blocks (queries r0..r0+rows) see keys ..r0+rows; key
            // blocks (keys c0..c0+cols) are seen by queries c0.. only.
            // dV = P^T dY
            for (c0, cols) in blocks(t) {
                let dst = &mut dx[2 * c + hi * d + c0 * 3 * c..];
                let (pt, dyr) = (&p[c0 * t + c0..], &dyh[c0 * c..]);
                // P^T block [cols, t - c0] @ dY [t - c0, d].
                let g = Gemm::new(
                    cols,
                    d,
                    t - c0,
                    Mat::row_major(pt, 0, t).t(),
                    Mat::row_major(dyr, 0, c),
                );
                gemm_serial_into(dst, 3 * c, &g);
            }
            // dP = dY V^T, then dS = P (dP - rowsum(P dP)) * scale in place
            // (entries above the diagonal end as 0 whatever dP held there).
            for (r0, rows) in blocks(t) {
                let dyr = &dyh[r0 * c..];
                let dst = &mut ds[r0 * t..];
                let g = Gemm::new(
                    rows,
                    r0 + rows,
                    d,
                    Mat::row_major(dyr, 0, c),
                    Mat::row_major(v, 0, 3 * c).t(),
                );
                gemm_serial_into(dst, t, &g);
            }
            simd::dispatch(SoftmaxBackward {
                p,
                ds: &mut ds,
                t,
                scale,
            });
            // dQ = dS K ; dK = dS^T Q
            for (r0, rows) in blocks(t) {
                let (dst, dsr) = (&mut dx[hi * d + r0 * 3 * c..], &ds[r0 * t..]);
                let g = Gemm::new(
                    rows,
                    d,
                    r0 + rows,
                    Mat::row_major(dsr, 0, t),
                    Mat::row_major(k, 0, 3 * c),
                );
                gemm_serial_into(dst, 3 * c, &g);
            }
            for (c0, cols) in blocks(t) {
                let dst = &mut dx[c + hi * d + c0 * 3 * c..];
                let (dst_t, qr) = (&ds[c0 * t + c0..], &q[c0 * 3 * c..]);
                let g = Gemm::new(
                    cols,
                    d,
                    t - c0,
                    Mat::row_major(dst_t, 0, t).t(),
                    Mat::row_major(qr, 0, 3 * c),
                );
                gemm_serial_into(dst, 3 * c, &g);
            }
        }
    };
    if parallel(g) {
        dqkv.par_chunks_mut(t * 3 * c).enumerate().for_each(one);
    } else {
        dqkv.chunks_mut(t * 3 * c).enumerate().for_each(one);
    }
    dqkv
}

/// Row-wise softmax of the scaled scores `[T, T]` in place, keys after the
/// query (j > i) set to probability 0.
struct CausalSoftmax<'a> {
    p: &'a mut [f32],
    t: usize,
    scale: f32,
}

impl simd::Kernel for CausalSoftmax<'_> {
    type Output = ();
    #[inline(always)]
    fn run(self) {
        let CausalSoftmax { p, t, scale } = self;
        for (i, row) in p.chunks_exact_mut(t).enumerate() {
            let (live, masked) = row.split_at_mut(i + 1);
            softmax_in_place(live, scale);
            masked.fill(0.0);
        }
    }
}

/// `dS = P ∘ (dP - rowsum(P ∘ dP)) * scale`, in place over `ds` (= dP).
struct SoftmaxBackward<'a> {
    p: &'a [f32],
    ds: &'a mut [f32],
    t: usize,
    scale: f32,
}

impl simd::Kernel for SoftmaxBackward<'_> {
    type Output = ();
    #[inline(always)]
    fn run(self) {
        let SoftmaxBackward { p, ds, t, scale } = self;
        for (p, row) in p.chunks_exact(t).zip(ds.chunks_exact_mut(t)) {
            let dot = dot8(p, row);
            for (r, &pj) in row.iter_mut().zip(p) {
                *r = pj * (*r - dot) * scale;
            }
        }
    }
}

/// Dot product in eight lanes (vectorizes; masked entries of p are 0).
#[inline(always)]
fn dot8(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    acc.iter().sum::<f32>() + tail
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic values of a trained model's size.
    fn values(n: usize, seed: u32, scale: f32) -> Vec<f32> {
        let mut r = seed.wrapping_mul(2_654_435_761) | 1;
        (0..n)
            .map(|_| {
                r ^= r << 13;
                r ^= r >> 17;
                r ^= r << 5;
                ((r % 20_001) as f32 / 10_000.0 - 1.0) * scale
            })
            .collect()
    }

    #[test]
    fn every_path_gives_the_portable_path_s_bits() {
        if !wide::available() {
            eprintln!("skipped: this CPU (or KINDLING_SIMD) has no AVX-512");
            return;
        }
        // (batch, t, heads, kv_heads, d, past): SmolLM2's heads, head sizes
        // below, at and above ggml's 64-wide step, keys not a multiple of
        // 16, a cache that already holds positions, two batch elements.
        let cases = [
            (1, 37, 9, 3, 64, 0),
            (2, 20, 4, 2, 32, 5),
            (1, 17, 2, 1, 128, 30),
            (1, 64, 6, 6, 80, 0),
            (2, 4, 3, 1, 16, 100),
            // Decoding steps and short calls: keys read in place.
            (1, 1, 9, 3, 64, 200),
            (2, 1, 4, 2, 128, 37),
            (1, 3, 2, 1, 64, 15),
            (1, 1, 4, 4, 32, 50),
        ];
        for (i, &(batch, t, heads, kv_heads, d, past)) in cases.iter().enumerate() {
            let g = CachedAttentionGeometry {
                batch,
                t,
                heads,
                kv_heads,
                d,
                past,
            };
            let tk = past + t;
            let q = values(batch * t * heads * d, 3 * i as u32 + 1, 2.0);
            let k = values(batch * tk * kv_heads * d, 3 * i as u32 + 2, 1.0);
            let v = values(batch * tk * kv_heads * d, 3 * i as u32 + 3, 1.0);
            let (batch_stride, pos_stride) = (tk * kv_heads * d, kv_heads * d);
            let kv = KvView {
                data: &k,
                batch_stride,
                pos_stride,
            };
            let vv = Values::Rows(KvView {
                data: &v,
                batch_stride,
                pos_stride,
            });
            // The same values transposed, as a cache with spare room holds
            // them: [B, H_kv, d, capacity], zeros past Tk.
            // The spare cells hold NaN: a kernel that read past the
            // positions held would show it.
            let cap = tk + 7;
            let mut vt = vec![f32::NAN; batch * kv_heads * d * cap];
            for b in 0..batch {
                for j in 0..tk {
                    for h in 0..kv_heads {
                        for e in 0..d {
                            vt[((b * kv_heads + h) * d + e) * cap + j] =
                                v[b * batch_stride + j * pos_stride + h * d + e];
                        }
                    }
                }
            }
            let vtt = Values::Transposed(ValuesT {
                data: &vt,
                batch_stride: kv_heads * d * cap,
                head_stride: d * cap,
                elem_stride: cap,
            });
            let portable = cached_with(&q, &kv, &vv, &g, false);
            for (name, values, wide) in [
                ("wide", &vv, true),
                ("transposed, portable", &vtt, false),
                ("transposed, wide", &vtt, true),
            ] {
                let y = cached_with(&q, &kv, values, &g, wide);
                for (j, (a, b)) in portable.iter().zip(&y).enumerate() {
                    assert_eq!(
                        a.to_bits(),
                        b.to_bits(),
                        "case {i} {name}, element {j}: {a} vs {b}"
                    );
                }
            }
        }
    }
}
