//! Rotary position embedding (Su et al. 2021), "rotate half" layout as in
//! Hugging Face's LLaMA: in `x [B, T, H, D]` the pair (x[i], x[i + D/2]) of
//! each head at position t is rotated by the angle whose cosine and sine
//! are `cos/sin[t, i]`, times `sign` (-1 undoes it: the backward).

use super::simd;

/// `x` is contiguous `[B, T, H, D]`; `cos`, `sin` are `[T, D/2]`.
pub fn rotate(
    x: &[f32],
    (t, h, d): (usize, usize, usize),
    cos: &[f32],
    sin: &[f32],
    sign: f32,
) -> Vec<f32> {
    let mut y = vec![0f32; x.len()];
    // Compiled per instruction set, so `mul_add` is one instruction.
    simd::dispatch(Rotate {
        x,
        dims: (t, h, d),
        cos,
        sin,
        sign,
        y: &mut y,
    });
    y
}

struct Rotate<'a> {
    x: &'a [f32],
    dims: (usize, usize, usize),
    cos: &'a [f32],
    sin: &'a [f32],
    sign: f32,
    y: &'a mut [f32],
}

impl simd::Kernel for Rotate<'_> {
    type Output = ();
    #[inline(always)]
    fn run(self) {
        let Rotate {
            x,
            dims: (t, h, d),
            cos,
            sin,
            sign,
            y,
        } = self;
        rotate_into(x, (t, h, d), cos, sin, sign, y);
    }
}

#[inline(always)]
fn rotate_into(
    x: &[f32],
    (t, h, d): (usize, usize, usize),
    cos: &[f32],
    sin: &[f32],
    sign: f32,
    y: &mut [f32],
) {
    let half = d / 2;
    for (bt, (xr, yr)) in x
        .chunks_exact(h * d)
        .zip(y.chunks_exact_mut(h * d))
        .enumerate()
    {
        let pos = bt % t;
        let (cr, sr) = (&cos[pos * half..][..half], &sin[pos * half..][..half]);
        for (xh, yh) in xr.chunks_exact(d).zip(yr.chunks_exact_mut(d)) {
            let (x1, x2) = xh.split_at(half);
            let (y1, y2) = yh.split_at_mut(half);
            for i in 0..half {
                let (cv, sv) = (cr[i], sign * sr[i]);
                // llama.cpp's rotate_pairs as GCC contracts it:
                // fma(x1, cos, −x2·sin) and fma(x1, sin, x2·cos).
                y1[i] = x1[i].mul_add(cv, -(x2[i] * sv));
                y2[i] = x1[i].mul_add(sv, x2[i] * cv);
            }
        }
    }
}
