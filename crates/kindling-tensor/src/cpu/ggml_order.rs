//! llama.cpp's float arithmetic, operation for operation, for the kernels
//! that decode a model: Kindling's generation gives the same bits as
//! llama.cpp's CPU backend built for AVX-512 (`ggml-cpu`, x86), so both
//! pick the same greedy tokens. Each function names the ggml code it
//! follows; `tools/ggml_dump.py` dumps llama.cpp's nodes to check them.
//!
//! Written lane by lane in plain Rust with `mul_add`: inside a
//! `simd::Kernel` the loops over 16 lanes vectorize, and `mul_add` is one
//! fused multiply-add, as in the C intrinsics.

/// `_mm512_reduce_add_ps`: halves added as GCC's implementation pairs them.
#[inline(always)]
pub fn reduce16(v: &[f32; 16]) -> f32 {
    let mut t = [0f32; 8];
    for i in 0..8 {
        t[i] = v[i + 8] + v[i];
    }
    let u = [t[4] + t[0], t[5] + t[1], t[6] + t[2], t[7] + t[3]];
    (u[0] + u[2]) + (u[1] + u[3])
}

/// `ggml_vec_dot_f32` (AVX-512: four 16-lane accumulators over steps of 64,
/// `GGML_F32x16_REDUCE`, then the leftovers one by one).
#[inline(always)]
pub fn dot(x: &[f32], y: &[f32]) -> f32 {
    let n = x.len().min(y.len());
    let np = n & !63;
    let mut acc = [[0f32; 16]; 4];
    let mut i = 0;
    while i < np {
        for (j, a) in acc.iter_mut().enumerate() {
            let (xs, ys) = (&x[i + 16 * j..][..16], &y[i + 16 * j..][..16]);
            for l in 0..16 {
                a[l] = xs[l].mul_add(ys[l], a[l]);
            }
        }
        i += 64;
    }
    let mut s = [0f32; 16];
    for l in 0..16 {
        s[l] = (acc[0][l] + acc[2][l]) + (acc[1][l] + acc[3][l]);
    }
    let mut sum = reduce16(&s);
    for k in np..n {
        sum = x[k].mul_add(y[k], sum);
    }
    sum
}

/// `ggml_v_expf`'s range reduction and polynomial, one lane: `(z, n, j)`
/// with z = x/ln 2 + 0x1.8p23 rounded (so n = z − 0x1.8p23 = round(x/ln 2)
/// exactly, and z's low bits hold n), and j ≈ e^(x − n·ln 2) from a
/// two-constant Cody–Waite remainder b and a degree-5 polynomial.
#[inline(always)]
fn expf_parts(x: f32) -> (f32, f32, f32) {
    const R: f32 = 12_582_912.0; // 0x1.8p23
    let z = x.mul_add(f32::from_bits(0x3fb8_aa3b), R); // 0x1.715476p+0
    let n = z - R;
    let b = (-n).mul_add(
        f32::from_bits(0x35bf_be8e),                  // 0x1.7f7d1cp-20
        (-n).mul_add(f32::from_bits(0x3f31_7200), x), // 0x1.62e4p-1
    );
    let u = b * b;
    let j = f32::from_bits(0x3c07_2010) // 0x1.0e4020p-7
        .mul_add(b, f32::from_bits(0x3d2b_9f17)) // 0x1.573e2ep-5
        .mul_add(
            u,
            f32::from_bits(0x3e2a_af33).mul_add(b, f32::from_bits(0x3eff_fedb)), // 0x1.555e66p-3, 0x1.fffdb6p-2
        )
        .mul_add(u, f32::from_bits(0x3f7f_fff6).mul_add(b, 1.0)); // 0x1.ffffecp-1
    (z, n, j)
}

/// `ggml_v_expf` of the AVX-512 build, one lane: `expf_parts`, then
/// `_mm512_scalef_ps(j, n)` = j·2ⁿ rounded once; |n| > 192 gives 0 or ∞.
#[inline(always)]
pub fn expf(x: f32) -> f32 {
    let (_, n, j) = expf_parts(x);
    if (-126.0..=127.0).contains(&n) {
        // 2ⁿ is a normal f32: j·2ⁿ rounded once, as scalef rounds it.
        return j * f32::from_bits(((n as i32 + 127) as u32) << 23);
    }
    if n.abs() > 192.0 || n.is_nan() {
        return if n <= 0.0 { 0.0 } else { f32::INFINITY };
    }
    // Near the ends of the range (2ⁿ not a normal f32): j·2ⁿ is exact in
    // f64, so one rounding to f32 again.
    (j as f64 * 2f64.powi(n as i32)) as f32
}

/// `expf` on 16 lanes, as `ggml_v_expf` computes a vector: the same bits
/// as `expf` lane by lane. The common case (every 2ⁿ a normal f32) runs
/// without a branch per lane, so it vectorizes; 2ⁿ is built from `z`'s low
/// bits. A lane outside that range (or NaN) sends the whole vector through
/// `expf`.
#[inline(always)]
pub fn expf16(x: &[f32; 16]) -> [f32; 16] {
    let mut out = [0f32; 16];
    let mut normal = true;
    for l in 0..16 {
        let (z, n, j) = expf_parts(x[l]);
        normal &= (-126.0..=127.0).contains(&n);
        out[l] = j * f32::from_bits(z.to_bits().wrapping_add(127) << 23);
    }
    if !normal {
        for l in 0..16 {
            out[l] = expf(x[l]);
        }
    }
    out
}

/// `ggml_v_silu` (AVX-512): x / (1 + e^(−x)).
#[inline(always)]
pub fn silu(x: f32) -> f32 {
    x / (1.0 + expf(0.0 - x))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_constants_are_ggml_s_hex_floats() {
        // ggml_v_expf's literals 0x1.MMMMMMp±E, spelled as bit patterns above:
        // (bits, hex mantissa digits, their count, exponent).
        let cases: [(u32, u64, u32, i32); 8] = [
            (0x3fb8_aa3b, 0x715476, 24, 0),
            (0x3f31_7200, 0x62e4, 16, -1),
            (0x35bf_be8e, 0x7f7d1c, 24, -20),
            (0x3c07_2010, 0x0e4020, 24, -7),
            (0x3d2b_9f17, 0x573e2e, 24, -5),
            (0x3e2a_af33, 0x555e66, 24, -3),
            (0x3eff_fedb, 0xfffdb6, 24, -2),
            (0x3f7f_fff6, 0xffffec, 24, -1),
        ];
        for (bits, m, digits, e) in cases {
            let v = (1.0 + m as f64 / (1u64 << digits) as f64) * 2f64.powi(e);
            assert_eq!(f32::from_bits(bits), v as f32, "{bits:#x}");
        }
    }

    #[test]
    fn expf_is_close_to_libm_and_saturates_as_ggml() {
        for i in -2000..2000 {
            let x = i as f32 * 0.043;
            let (a, b) = (expf(x), x.exp());
            assert!(
                (a - b).abs() <= 4.0 * f32::EPSILON * b.max(f32::MIN_POSITIVE),
                "{x}: {a} vs {b}"
            );
        }
        assert_eq!(expf(f32::NEG_INFINITY), 0.0);
        assert_eq!(expf(-200.0), 0.0);
        assert_eq!(expf(200.0), f32::INFINITY);
        assert_eq!(expf(0.0), 1.0);
    }

    #[test]
    fn expf16_gives_expf_s_bits_on_every_lane() {
        let mut r = 0x2545_f491_u32;
        let mut next = || {
            r ^= r << 13;
            r ^= r >> 17;
            r ^= r << 5;
            r
        };
        for i in 0..4000 {
            // Mostly softmax inputs (≤ 0), some spanning the range ends, NaN and ±∞.
            let x: [f32; 16] = std::array::from_fn(|l| match (i + l) % 97 {
                0 => f32::NEG_INFINITY,
                1 => f32::NAN,
                2 => f32::INFINITY,
                3 => -95.0 + (next() % 1000) as f32 * 0.01,
                4 => 88.0 + (next() % 1000) as f32 * 0.01,
                _ if i % 3 == 0 => -((next() % 100_000) as f32) * 0.0009,
                _ => ((next() % 200_000) as f32 - 100_000.0) * 0.00087,
            });
            let v = expf16(&x);
            for l in 0..16 {
                let e = expf(x[l]);
                assert!(
                    v[l].to_bits() == e.to_bits() || (v[l].is_nan() && e.is_nan()),
                    "{}: {} vs {}",
                    x[l],
                    v[l],
                    e
                );
            }
        }
        // A vector with no lane outside the range takes the branch-free path.
        let x: [f32; 16] = std::array::from_fn(|l| -(l as f32) * 5.4);
        let v = expf16(&x);
        for l in 0..16 {
            assert_eq!(v[l].to_bits(), expf(x[l]).to_bits());
        }
    }

    #[test]
    fn dot_pairs_lanes_as_ggml() {
        // 64 values whose sum depends on the order: big ones cancel only
        // when paired as ggml pairs them.
        let mut x = vec![1.0f32; 64];
        let y = vec![1.0f32; 64];
        x[0] = 1e8;
        x[32] = -1e8;
        // acc0[0] + acc2[0] = 1e8 − 1e8 = 0 first, the 62 ones then add up.
        assert_eq!(dot(&x, &y), 62.0);
        let l: [f32; 16] = std::array::from_fn(|i| i as f32);
        assert_eq!(reduce16(&l), 120.0);
    }
}
