//! Batch normalization kernels (Ioffe & Szegedy 2015) over a contiguous
//! `[N, C, S]` buffer (S = H·W for a feature map, 1 for `[N, C]`): each
//! channel is normalized over its N·S values. The statistics are a pass per
//! channel; the output and the input gradient a pass per `[n, c]` plane,
//! which is a contiguous run of S values the compiler vectorizes.

use super::reduce::sum_slice;
use rayon::prelude::*;

/// The planes (`[n, c]` runs of `s` values) of channel `c`.
fn planes(x: &[f32], c: usize, channels: usize, s: usize) -> impl Iterator<Item = &[f32]> {
    x.chunks_exact(s).skip(c).step_by(channels)
}

/// Per-channel mean and biased variance (two passes: the mean first, then
/// the squared deviations, which keeps the variance accurate when the mean
/// is large against the spread).
pub fn stats(x: &[f32], channels: usize, s: usize) -> (Vec<f32>, Vec<f32>) {
    let count = (x.len() / channels.max(1)) as f64;
    if count == 0.0 || s == 0 {
        return (vec![0.0; channels], vec![0.0; channels]);
    }
    (0..channels)
        .into_par_iter()
        .map(|c| {
            let sum: f64 = planes(x, c, channels, s).map(|p| sum_slice(p) as f64).sum();
            let mean = (sum / count) as f32;
            let sq: f64 = planes(x, c, channels, s)
                .map(|p| p.iter().map(|&v| (v - mean) * (v - mean)).sum::<f32>() as f64)
                .sum();
            (mean, (sq / count) as f32)
        })
        .unzip()
}

/// `y = (x - mean) * invstd * w + b`, per channel.
pub fn apply(x: &[f32], w: &[f32], b: &[f32], mean: &[f32], invstd: &[f32], s: usize) -> Vec<f32> {
    let channels = w.len();
    let mut y = vec![0f32; x.len()];
    if s == 0 || channels == 0 {
        return y;
    }
    y.par_chunks_mut(s)
        .zip(x.par_chunks(s))
        .enumerate()
        .for_each(|(i, (y, x))| {
            let c = i % channels;
            // One multiply-add per element: y = x·scale + shift.
            let scale = invstd[c] * w[c];
            let shift = b[c] - mean[c] * scale;
            for (y, &x) in y.iter_mut().zip(x) {
                *y = x * scale + shift;
            }
        });
    y
}

/// `(dx, dw, db)`. With `batch_stats` the mean and variance were the
/// batch's own (training), so they depend on x:
/// dx = w·invstd/M · (M·dy − Σdy − x̂·Σ(dy·x̂)), M = N·S;
/// otherwise (running statistics, evaluation) they are constants and
/// dx = dy·w·invstd. Either way dw = Σ(dy·x̂) and db = Σdy per channel.
pub fn backward(
    dy: &[f32],
    x: &[f32],
    w: &[f32],
    mean: &[f32],
    invstd: &[f32],
    s: usize,
    batch_stats: bool,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let channels = w.len();
    let mut dx = vec![0f32; x.len()];
    if s == 0 || channels == 0 {
        return (dx, vec![0.0; channels], vec![0.0; channels]);
    }
    let (dw, db): (Vec<f32>, Vec<f32>) = (0..channels)
        .into_par_iter()
        .map(|c| {
            let (m, r) = (mean[c], invstd[c]);
            let mut sum_dy = 0f64;
            let mut sum_dy_xhat = 0f64;
            for (dy, x) in planes(dy, c, channels, s).zip(planes(x, c, channels, s)) {
                sum_dy += sum_slice(dy) as f64;
                sum_dy_xhat += dy
                    .iter()
                    .zip(x)
                    .map(|(&g, &v)| g * (v - m) * r)
                    .sum::<f32>() as f64;
            }
            (sum_dy_xhat as f32, sum_dy as f32)
        })
        .unzip();
    let count = (x.len() / channels) as f32;
    dx.par_chunks_mut(s)
        .zip(dy.par_chunks(s).zip(x.par_chunks(s)))
        .enumerate()
        .for_each(|(i, (dx, (dy, x)))| {
            let c = i % channels;
            let (m, r, k) = (mean[c], invstd[c], w[c] * invstd[c]);
            if batch_stats {
                let (mean_dy, mean_dy_xhat) = (db[c] / count, dw[c] / count);
                for ((dx, &g), &v) in dx.iter_mut().zip(dy).zip(x) {
                    let xhat = (v - m) * r;
                    *dx = k * (g - mean_dy - xhat * mean_dy_xhat);
                }
            } else {
                for (dx, &g) in dx.iter_mut().zip(dy) {
                    *dx = k * g;
                }
            }
        });
    (dx, dw, db)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_are_per_channel_over_batch_and_plane() {
        // [N=2, C=2, S=2]: channel 0 holds 1, 2, 5, 6; channel 1 holds 3, 4, 7, 8.
        let x = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0];
        let (mean, var) = stats(&x, 2, 2);
        assert_eq!(mean, vec![3.5, 5.5]);
        assert_eq!(var, vec![4.25, 4.25]);
        let y = apply(&x, &[1.0, 2.0], &[0.0, 1.0], &mean, &[1.0, 0.5], 2);
        assert_eq!(y, vec![-2.5, -1.5, -1.5, -0.5, 1.5, 2.5, 2.5, 3.5]);
    }
}
