//! 2-D convolution as im2col + one GEMM over the whole batch (the Caffe
//! formulation): the batch's patches become the columns of one matrix
//! `cols [C*KH*KW, B*OH*OW]`, so a single large, well-threaded GEMM does all
//! the arithmetic, also for LeNet's C5 whose output is 1×1 per image.

use super::matmul::gemm_into;
use crate::backend::ConvGeometry;
use crate::backend::{Gemm, Mat};
use rayon::prelude::*;

/// For stride 1: the output columns `lo..hi` whose input column
/// `xo + j - padding` lies inside `0..width`.
fn valid_run(out_w: usize, width: usize, j: usize, padding: usize) -> (usize, usize) {
    let lo = padding.saturating_sub(j);
    let hi = (width + padding).saturating_sub(j).min(out_w);
    (lo, hi.max(lo))
}

/// Patch matrix `[K, B*OH*OW]` of input `x [B, C, H, W]` (contiguous).
pub fn im2col(x: &[f32], g: &ConvGeometry) -> Vec<f32> {
    let (oh, ow, plane) = (g.out_h(), g.out_w(), g.out_plane());
    let ncols = g.batch * plane;
    // Every entry is written except padding holes, which must be zero.
    let mut cols = if g.padding == 0 {
        super::matmul::gemm_output(g.patch_len() * ncols)
    } else {
        vec![0f32; g.patch_len() * ncols]
    };
    let (s, p) = (g.stride as isize, g.padding as isize);
    cols.par_chunks_mut(ncols).enumerate().for_each(|(k, row)| {
        let c = k / (g.kernel_h * g.kernel_w);
        let i = (k / g.kernel_w) % g.kernel_h;
        let j = k % g.kernel_w;
        for b in 0..g.batch {
            let src = &x[(b * g.in_channels + c) * g.height * g.width..][..g.height * g.width];
            let dst = &mut row[b * plane..(b + 1) * plane];
            for y in 0..oh {
                let h = y as isize * s + i as isize - p;
                let out_row = &mut dst[y * ow..(y + 1) * ow];
                if h < 0 || h >= g.height as isize {
                    continue; // stays zero: padding
                }
                let src_row = &src[h as usize * g.width..(h as usize + 1) * g.width];
                if s == 1 {
                    // Stride 1: the in-bounds outputs are one contiguous run.
                    let (lo, hi) = valid_run(ow, g.width, j, g.padding);
                    if lo < hi {
                        let w0 = lo + j - g.padding;
                        out_row[lo..hi].copy_from_slice(&src_row[w0..w0 + (hi - lo)]);
                    }
                    continue;
                }
                for (xo, o) in out_row.iter_mut().enumerate() {
                    let w = xo as isize * s + j as isize - p;
                    if w >= 0 && w < g.width as isize {
                        *o = src_row[w as usize];
                    }
                }
            }
        }
    });
    cols
}

/// Adds each column entry back to the input pixel it came from: the adjoint
/// of `im2col`, giving `dx [B, C, H, W]`. One task per (image, channel) plane,
/// so no two threads write the same pixel.
pub fn col2im(dcols: &[f32], g: &ConvGeometry) -> Vec<f32> {
    let (oh, ow, plane) = (g.out_h(), g.out_w(), g.out_plane());
    let ncols = g.batch * plane;
    let hw = g.height * g.width;
    let mut dx = vec![0f32; g.batch * g.in_channels * hw];
    let (s, p) = (g.stride as isize, g.padding as isize);
    dx.par_chunks_mut(hw).enumerate().for_each(|(bc, dst)| {
        let (b, c) = (bc / g.in_channels, bc % g.in_channels);
        for i in 0..g.kernel_h {
            for j in 0..g.kernel_w {
                let k = (c * g.kernel_h + i) * g.kernel_w + j;
                let src = &dcols[k * ncols + b * plane..][..plane];
                for y in 0..oh {
                    let h = y as isize * s + i as isize - p;
                    if h < 0 || h >= g.height as isize {
                        continue;
                    }
                    let drow = &mut dst[h as usize * g.width..(h as usize + 1) * g.width];
                    if s == 1 {
                        let (lo, hi) = valid_run(ow, g.width, j, g.padding);
                        if lo < hi {
                            let w0 = lo + j - g.padding;
                            for (d, &v) in drow[w0..w0 + (hi - lo)]
                                .iter_mut()
                                .zip(&src[y * ow + lo..y * ow + hi])
                            {
                                *d += v;
                            }
                        }
                        continue;
                    }
                    for xo in 0..ow {
                        let w = xo as isize * s + j as isize - p;
                        if w >= 0 && w < g.width as isize {
                            drow[w as usize] += src[y * ow + xo];
                        }
                    }
                }
            }
        }
    });
    dx
}

/// Forward: returns `(out [B, O, OH, OW], cols)`; `cols` is kept for backward.
pub fn conv2d_forward(
    x: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
    g: &ConvGeometry,
) -> (Vec<f32>, Vec<f32>) {
    let cols = im2col(x, g);
    let (k, plane, o) = (g.patch_len(), g.out_plane(), g.out_channels);
    let ncols = g.batch * plane;
    // tmp [O, B*plane] = W [O, K] @ cols [K, B*plane]
    let mut tmp = super::matmul::gemm_output(o * ncols);
    let g_fwd = Gemm::new(
        o,
        ncols,
        k,
        Mat::row_major(w, 0, k),
        Mat::row_major(&cols[..], 0, ncols),
    );
    gemm_into(&mut tmp, &g_fwd);
    // Reorder to NCHW and add the bias.
    let mut out = super::matmul::gemm_output(g.batch * o * plane);
    out.par_chunks_mut(plane).enumerate().for_each(|(bo, dst)| {
        let (b, oc) = (bo / o, bo % o);
        let src = &tmp[oc * ncols + b * plane..][..plane];
        let add = bias.map_or(0.0, |bv| bv[oc]);
        for (d, &v) in dst.iter_mut().zip(src) {
            *d = v + add;
        }
    });
    (out, cols)
}

pub struct ConvGrads {
    pub dx: Option<Vec<f32>>,
    pub dw: Vec<f32>,
    pub db: Vec<f32>,
}

/// Backward from `dout [B, O, OH, OW]`: dW = dOut' @ cols^T, db = row sums of
/// dOut', dX = col2im(W^T @ dOut') where dOut' is dOut as `[O, B*OH*OW]`.
pub fn conv2d_backward(
    dout: &[f32],
    w: &[f32],
    cols: &[f32],
    g: &ConvGeometry,
    need_dx: bool,
) -> ConvGrads {
    let (k, plane, o) = (g.patch_len(), g.out_plane(), g.out_channels);
    let ncols = g.batch * plane;
    let mut d = super::matmul::gemm_output(o * ncols);
    d.par_chunks_mut(ncols).enumerate().for_each(|(oc, row)| {
        for b in 0..g.batch {
            row[b * plane..(b + 1) * plane].copy_from_slice(&dout[(b * o + oc) * plane..][..plane]);
        }
    });
    let db: Vec<f32> = d.par_chunks(ncols).map(super::reduce::sum_slice).collect();
    let mut dw = super::matmul::gemm_output(o * k);
    // dW [O, K] = d [O, ncols] @ cols^T: cols read with swapped strides.
    let g_dw = Gemm::new(
        o,
        k,
        ncols,
        Mat::row_major(&d[..], 0, ncols),
        Mat::row_major(cols, 0, ncols).t(),
    );
    gemm_into(&mut dw, &g_dw);
    let dx = need_dx.then(|| {
        let mut dcols = super::matmul::gemm_output(k * ncols);
        // dcols [K, ncols] = W^T [K, O] @ d [O, ncols]
        let g_dx = Gemm::new(
            k,
            ncols,
            o,
            Mat::row_major(w, 0, k).t(),
            Mat::row_major(&d[..], 0, ncols),
        );
        gemm_into(&mut dcols, &g_dx);
        col2im(&dcols, g)
    });
    ConvGrads { dx, dw, db }
}
