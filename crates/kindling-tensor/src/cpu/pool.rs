//! 2-D max and average pooling over `[B, C, H, W]` (no padding), one
//! (image, channel) plane per task.

use rayon::prelude::*;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolGeometry {
    pub planes: usize,
    pub height: usize,
    pub width: usize,
    pub kernel: usize,
    pub stride: usize,
}

impl PoolGeometry {
    pub fn out_h(&self) -> usize {
        (self.height - self.kernel) / self.stride + 1
    }
    pub fn out_w(&self) -> usize {
        (self.width - self.kernel) / self.stride + 1
    }
}

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
            for y in 0..oh {
                for xo in 0..ow {
                    let (mut best, mut at) = (f32::NEG_INFINITY, 0usize);
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
