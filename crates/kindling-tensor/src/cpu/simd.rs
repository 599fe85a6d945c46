//! Run-time choice of vector instruction set for the hand-written loops.
//!
//! The crate is built for baseline x86-64, where a plain loop vectorizes
//! only 4 lanes wide (SSE2) and `mul_add` is a library call. `dispatch` runs
//! a `Kernel` compiled inside a `#[target_feature]` function instead, so the
//! same loop is vectorized 8 wide with FMA (AVX2) or 16 wide (AVX-512) on
//! CPUs that have them. The kernel and everything it calls must inline into
//! that function for the features to apply (see `Kernel`). The level is read
//! once (cpuid); `KINDLING_SIMD=baseline|avx2|avx512` caps it, for tests and
//! comparisons.
//!
//! The math helpers here are branch-free so that they vectorize: `exp` (a
//! Cody-Waite reduction and a degree-6 polynomial, within 2 ulp of libm's on
//! its range), and `erf` built on it.

use std::sync::OnceLock;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Baseline,
    Avx2,
    Avx512,
}

impl Level {
    pub fn name(self) -> &'static str {
        match self {
            Level::Baseline => "baseline",
            Level::Avx2 => "avx2",
            Level::Avx512 => "avx512",
        }
    }
}

fn detect() -> Level {
    #[cfg(target_arch = "x86_64")]
    {
        // Exactly the features the wrappers below enable: enabling one the
        // CPU lacks would be undefined behaviour.
        let avx2 = is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma");
        if avx2
            && is_x86_feature_detected!("avx512f")
            && is_x86_feature_detected!("avx512bw")
            && is_x86_feature_detected!("avx512dq")
            && is_x86_feature_detected!("avx512vl")
        {
            return Level::Avx512;
        }
        if avx2 {
            return Level::Avx2;
        }
    }
    Level::Baseline
}

/// The instruction set `dispatch` compiles for on this CPU.
pub fn level() -> Level {
    static LEVEL: OnceLock<Level> = OnceLock::new();
    *LEVEL.get_or_init(|| {
        let cap = match std::env::var("KINDLING_SIMD").ok().as_deref() {
            Some("baseline") => Level::Baseline,
            Some("avx2") => Level::Avx2,
            None | Some("avx512") => Level::Avx512,
            Some(other) => {
                // Read deep inside a kernel, so it cannot be an error: say it once.
                eprintln!(
                    "warning: KINDLING_SIMD={other:?} is not one of baseline, avx2, avx512; using the best this CPU has"
                );
                Level::Avx512
            }
        };
        detect().min(cap)
    })
}

/// A loop to compile once per instruction set. `run` must be
/// `#[inline(always)]`, and so must what it calls, down to the arithmetic:
/// only code inlined into the `#[target_feature]` wrappers below gets the
/// wider instructions. (A closure cannot carry that attribute, which is why
/// kernels are types: LLVM declines to inline a large closure called from
/// three wrappers.)
pub trait Kernel {
    type Output;
    fn run(self) -> Self::Output;
}

/// Runs `k` compiled for the best instruction set of this CPU.
#[inline(always)]
pub fn dispatch<K: Kernel>(k: K) -> K::Output {
    #[cfg(target_arch = "x86_64")]
    {
        match level() {
            // SAFETY: `detect()` checked every feature these wrappers enable.
            Level::Avx512 => return unsafe { run_avx512(k) },
            Level::Avx2 => return unsafe { run_avx2(k) },
            Level::Baseline => {}
        }
    }
    k.run()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx2,fma")]
unsafe fn run_avx512<K: Kernel>(k: K) -> K::Output {
    k.run()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn run_avx2<K: Kernel>(k: K) -> K::Output {
    k.run()
}

/// The function an elementwise map applies. Closures qualify; a function
/// too large for LLVM to inline on its own (GELU, exp) is given as a unit
/// type whose `#[inline(always)]` method is called directly, because a
/// function item called through `Fn` goes through a shim that is not
/// always inlined, and a call in the loop stops vectorization.
pub trait Map<A, T>: Sync {
    fn apply(&self, a: A) -> T;
}

impl<T, F: Fn(f32) -> T + Sync> Map<f32, T> for F {
    #[inline(always)]
    fn apply(&self, a: f32) -> T {
        self(a)
    }
}

impl<T, F: Fn(f32, f32) -> T + Sync> Map<(f32, f32), T> for F {
    #[inline(always)]
    fn apply(&self, (a, b): (f32, f32)) -> T {
        self(a, b)
    }
}

/// Declares unit types implementing `Map` with an inlined body.
macro_rules! map_fn {
    ($($(#[$m:meta])* $name:ident: |$x:ident| $body:expr;)*) => {$(
        $(#[$m])*
        #[derive(Clone, Copy)]
        pub struct $name;
        impl $crate::cpu::simd::Map<f32, f32> for $name {
            #[inline(always)]
            fn apply(&self, $x: f32) -> f32 {
                $body
            }
        }
    )*};
    ($($(#[$m:meta])* $name:ident: |$x:ident, $y:ident| $body:expr;)*) => {$(
        $(#[$m])*
        #[derive(Clone, Copy)]
        pub struct $name;
        impl $crate::cpu::simd::Map<(f32, f32), f32> for $name {
            #[inline(always)]
            fn apply(&self, ($x, $y): (f32, f32)) -> f32 {
                $body
            }
        }
    )*};
}
pub(crate) use map_fn;

map_fn! {
    /// `e^x` as a `Map`.
    Exp: |x| exp(x);
}

const LOG2E: f32 = std::f32::consts::LOG2_E;
// ln 2 split in two (Cody & Waite): k * LN2_HI is exact for the k we see.
const LN2_HI: f32 = 0.693_359_4;
const LN2_LO: f32 = -2.121_944_4e-4;
// 1.5 * 2^23: adding it rounds to an integer kept in the low mantissa bits.
const ROUND_MAGIC: f32 = 12_582_912.0;

/// `e^x`, branch-free. Below -87.3 (where the result would be subnormal) it
/// returns 0; above 88.72 it returns infinity; NaN stays NaN.
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    let xc = x.clamp(-87.336_54, 88.722_83);
    let kf = xc * LOG2E + ROUND_MAGIC;
    let k = kf - ROUND_MAGIC;
    let n = kf.to_bits().wrapping_sub(ROUND_MAGIC.to_bits()) as i32;
    let r = xc - k * LN2_HI - k * LN2_LO;
    // e^r on |r| <= ln2/2 (Cephes expf coefficients).
    let p = 1.987_569_1e-4;
    let p = p * r + 1.398_199_9e-3;
    let p = p * r + 8.333_452e-3;
    let p = p * r + 4.166_579_6e-2;
    let p = p * r + 0.166_666_65;
    let p = p * r + 0.5;
    let er = p * (r * r) + r + 1.0;
    // 2^n in two factors so n = 128 (x near 88.7) does not overflow the exponent.
    let h = n >> 1;
    let s1 = f32::from_bits(((h + 127) as u32) << 23);
    let s2 = f32::from_bits(((n - h + 127) as u32) << 23);
    let y = er * s1 * s2;
    let y = if x < -87.336_54 { 0.0 } else { y };
    let y = if x > 88.722_83 { f32::INFINITY } else { y };
    if x.is_nan() {
        x
    } else {
        y
    }
}

/// erf by Abramowitz & Stegun 7.1.26 (|error| < 1.5e-7 in exact arithmetic,
/// about 1e-6 in f32), branch-free on top of `exp`.
#[inline(always)]
pub fn erf(x: f32) -> f32 {
    let a = x.abs();
    let t = 1.0 / (1.0 + 0.327_591_1 * a);
    let poly = t
        * (0.254_829_6
            + t * (-0.284_496_74 + t * (1.421_413_7 + t * (-1.453_152 + t * 1.061_405_4))));
    (1.0 - poly * exp(-a * a)).copysign(x)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ulps(a: f32, b: f32) -> u32 {
        (a.to_bits() as i32).abs_diff(b.to_bits() as i32)
    }

    #[test]
    fn exp_is_within_2_ulp_of_libm_on_its_range() {
        let mut worst = 0;
        for i in -873_365..=887_228 {
            let x = i as f32 * 1e-4;
            let (got, want) = (exp(x), x.exp());
            worst = worst.max(ulps(got, want));
        }
        assert!(worst <= 2, "worst error {worst} ulp");
    }

    #[test]
    fn exp_edges() {
        assert_eq!(exp(0.0), 1.0);
        assert_eq!(exp(f32::NEG_INFINITY), 0.0);
        assert_eq!(exp(-100.0), 0.0);
        assert_eq!(exp(f32::INFINITY), f32::INFINITY);
        assert_eq!(exp(89.0), f32::INFINITY);
        assert!(exp(f32::NAN).is_nan());
        let top = exp(88.7);
        assert!(top.is_finite() && ulps(top, 88.7f32.exp()) <= 2, "{top}");
    }

    #[test]
    fn erf_matches_libm_within_1e6() {
        for i in -4000..=4000 {
            let x = i as f32 / 1000.0;
            assert!((erf(x) - libm::erff(x)).abs() < 1e-6, "erf({x})");
        }
    }

    #[test]
    fn dispatch_gives_the_same_bits_at_every_level() {
        // Same operations, wider vectors: results must agree exactly
        // (no FMA contraction happens without an explicit mul_add).
        let xs: Vec<f32> = (0..1000).map(|i| (i as f32 - 500.0) * 0.05).collect();
        struct ExpErf<'a>(&'a [f32]);
        impl Kernel for ExpErf<'_> {
            type Output = Vec<f32>;
            #[inline(always)]
            fn run(self) -> Vec<f32> {
                self.0.iter().map(|&x| exp(x) + erf(x)).collect()
            }
        }
        let wide = dispatch(ExpErf(&xs));
        let narrow: Vec<f32> = xs.iter().map(|&x| exp(x) + erf(x)).collect();
        assert_eq!(wide, narrow);
    }
}
