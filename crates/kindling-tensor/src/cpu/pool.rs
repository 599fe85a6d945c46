//! 2-D max and average pooling over `[B, C, H, W]` (no padding), one
//! (image, channel) plane per task.

use crate::backend::PoolGeometry;
use rayon::prelude::*;

/// Max over each window, and the in-plane index of the max (first on ties)
/// for the backward pass.
pub fn max_pool_forward(x: &[f32], g: &PoolGeometry) -> (Vec<f32>, Vec<u32>) {
    let (oh, ow, hw) = (g.out_h(), g.out_w(), g.height * g.width);
    let mut out = vec![0f32; g.planes * oh * ow];
    let mut arg = vec![0u32; g.planes * oh * ow];
    out.par_chunks_mut(oh * ow)
        .zip(arg.par_chunks_mut(oh * ow))
        .enumerate()
        .for_each(|(pl, (o, a))| {
            let src = &x[pl * hw..(pl + 1) * hw];
            if g.kernel == 2 && g.stride == 2 {
                max_pool_2x2_plane(src, g.width, oh, ow, o, a);
                return;
            }
            for y in 0..oh {
                for xo in 0..ow {
                    // Start from the window's first element, so a window of
                    // -inf still routes its gradient inside the window.
                    let first = (y * g.stride) * g.width + xo * g.stride;
                    let (mut best, mut at) = (src[first], first);
                    for i in 0..g.kernel {
                        let row = (y * g.stride + i) * g.width + xo * g.stride;
                        for j in 0..g.kernel {
                            let v = src[row + j];
                            if v > best || (v.is_nan() && !best.is_nan()) {
                                best = v;
                                at = row + j;
                            }
                        }
                    }
                    o[y * ow + xo] = best;
                    a[y * ow + xo] = at as u32;
                }
            }
        });
    (out, arg)
}

/// The common 2×2 / stride 2 case (LeNet's S2 and S4), unrolled: two input
/// rows per output row, no inner window loops.
fn max_pool_2x2_plane(
    src: &[f32],
    width: usize,
    oh: usize,
    ow: usize,
    out: &mut [f32],
    arg: &mut [u32],
) {
    for y in 0..oh {
        let (r0, r1) = (2 * y * width, (2 * y + 1) * width);
        let (top, bottom) = (&src[r0..r0 + 2 * ow], &src[r1..r1 + 2 * ow]);
        let (o, a) = (
            &mut out[y * ow..(y + 1) * ow],
            &mut arg[y * ow..(y + 1) * ow],
        );
        for xo in 0..ow {
            let c = 2 * xo;
            // First maximum in row-major window order wins ties, as in PyTorch.
            let (mut best, mut at) = (top[c], r0 + c);
            for (v, i) in [
                (top[c + 1], r0 + c + 1),
                (bottom[c], r1 + c),
                (bottom[c + 1], r1 + c + 1),
            ] {
                if v > best || (v.is_nan() && !best.is_nan()) {
                    best = v;
                    at = i;
                }
            }
            o[xo] = best;
            a[xo] = at as u32;
        }
    }
}

pub fn max_pool_backward(dout: &[f32], arg: &[u32], g: &PoolGeometry) -> Vec<f32> {
    let (n, hw) = (g.out_h() * g.out_w(), g.height * g.width);
    let mut dx = vec![0f32; g.planes * hw];
    dx.par_chunks_mut(hw).enumerate().for_each(|(pl, d)| {
        for (&gv, &a) in dout[pl * n..(pl + 1) * n]
            .iter()
            .zip(&arg[pl * n..(pl + 1) * n])
        {
            d[a as usize] += gv;
        }
    });
    dx
}

pub fn avg_pool_forward(x: &[f32], g: &PoolGeometry) -> Vec<f32> {
    let (oh, ow, hw) = (g.out_h(), g.out_w(), g.height * g.width);
    let scale = 1.0 / (g.kernel * g.kernel) as f32;
    let mut out = vec![0f32; g.planes * oh * ow];
    out.par_chunks_mut(oh * ow).enumerate().for_each(|(pl, o)| {
        let src = &x[pl * hw..(pl + 1) * hw];
        for y in 0..oh {
            for xo in 0..ow {
                let mut s = 0f32;
                for i in 0..g.kernel {
                    let row = (y * g.stride + i) * g.width + xo * g.stride;
                    s += src[row..row + g.kernel].iter().sum::<f32>();
                }
                o[y * ow + xo] = s * scale;
            }
        }
    });
    out
}

pub fn avg_pool_backward(dout: &[f32], g: &PoolGeometry) -> Vec<f32> {
    let (oh, ow, hw) = (g.out_h(), g.out_w(), g.height * g.width);
    let scale = 1.0 / (g.kernel * g.kernel) as f32;
    let mut dx = vec![0f32; g.planes * hw];
    dx.par_chunks_mut(hw).enumerate().for_each(|(pl, d)| {
        let src = &dout[pl * oh * ow..(pl + 1) * oh * ow];
        for y in 0..oh {
            for xo in 0..ow {
                let gv = src[y * ow + xo] * scale;
                for i in 0..g.kernel {
                    let row = (y * g.stride + i) * g.width + xo * g.stride;
                    d[row..row + g.kernel].iter_mut().for_each(|v| *v += gv);
                }
            }
        }
    });
    dx
}
