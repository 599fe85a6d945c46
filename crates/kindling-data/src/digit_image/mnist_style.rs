//! MNIST's preprocessing of a grey image (steps 3–7 of the parent module):
//! polarity, contrast, crop to the ink, scale to 20 px, centre of mass at
//! (14, 14) of a 28×28 frame.

use super::{DigitImage, DigitImageError};

/// Side of an MNIST image in pixels.
pub(super) const FRAME_SIDE: usize = 28;
/// MNIST fits the longer side of each digit's bounding box to 20 px.
const DIGIT_BOX_SIDE: usize = 20;
/// Ink below this, after contrast normalisation, is paper texture or compression noise.
const NOISE_FLOOR: f32 = 0.1;
/// Ink above this, after contrast normalisation, counts towards the digit's bounding box.
const INK_THRESHOLD: f32 = 0.2;
/// An image whose ink spans less than this range (of 0..1) is blank: stretching it would
/// turn JPEG noise or paper grain into a "digit".
const MIN_CONTRAST: f32 = 0.1;
/// Preprocesses a row-major grey image (0.0 = black, 1.0 = white; either polarity)
/// like MNIST; see the module documentation for the steps.
pub fn preprocess_grey(
    grey: &[f32],
    width: usize,
    height: usize,
) -> Result<DigitImage, DigitImageError> {
    if width == 0 || height == 0 || width.checked_mul(height) != Some(grey.len()) {
        return Err(DigitImageError::InvalidPixels {
            detail: format!(
                "{} values do not make a {width}×{height} image (both sides must be at least 1)",
                grey.len()
            ),
        });
    }
    if let Some(i) = grey.iter().position(|v| v.is_nan()) {
        return Err(DigitImageError::InvalidPixels {
            detail: format!("pixel {i} (x {}, y {}) is NaN", i % width, i / width),
        });
    }
    let grey: Vec<f32> = grey.iter().map(|v| v.clamp(0.0, 1.0)).collect();

    let ink = normalised_ink(&grey, width, height)?;
    let (x0, y0, x1, y1) =
        ink_bounding_box(&ink, width).ok_or(DigitImageError::NoDigit { path: None })?;
    let (crop_w, crop_h) = (x1 - x0, y1 - y0);
    let mut cropped = Vec::with_capacity(crop_w * crop_h);
    for row in ink.chunks_exact(width).skip(y0).take(crop_h) {
        cropped.extend_from_slice(&row[x0..x1]);
    }

    let longer = crop_w.max(crop_h);
    let scaled_len = |n: usize| {
        ((n * DIGIT_BOX_SIDE) as f64 / longer as f64)
            .round()
            .max(1.0) as usize
    };
    let (box_w, box_h) = (scaled_len(crop_w), scaled_len(crop_h));
    let mut digit = resize(&cropped, crop_w, crop_h, box_w, box_h);
    // Shrinking a thin pen stroke averages it with paper; MNIST strokes reach full ink.
    let peak = digit.iter().fold(0.0f32, |m, &v| m.max(v));
    if peak <= 0.0 {
        return Err(DigitImageError::NoDigit { path: None });
    }
    digit.iter_mut().for_each(|v| *v /= peak);

    Ok(place_by_centre_of_mass(&digit, box_w, box_h))
}

/// Grey → ink in 0..1 with MNIST's polarity and contrast; `NoDigit` if the image is flat.
fn normalised_ink(grey: &[f32], width: usize, height: usize) -> Result<Vec<f32>, DigitImageError> {
    let (lo, hi) = grey
        .iter()
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &v| {
            (lo.min(v), hi.max(v))
        });
    // A digit is drawn inside the picture, so the outer frame is mostly background. The
    // midpoint of the image's own range (not a fixed 0.5) keeps grey paper or a dim
    // photo from flipping the decision.
    let mid = 0.5 * (lo + hi);
    let frame = frame_pixels(grey, width, height);
    let light = frame.iter().filter(|&&v| v > mid).count();
    let dark_on_light = 2 * light > frame.len();
    let to_ink = |g: f32| if dark_on_light { 1.0 - g } else { g };

    // The background level is the median of the frame rather than the image minimum, so
    // grey paper in a photo maps to 0 as well; on a clean drawing the two are equal.
    let mut frame_ink: Vec<f32> = frame.iter().map(|&g| to_ink(g)).collect();
    frame_ink.sort_by(f32::total_cmp);
    let background = frame_ink[frame_ink.len() / 2];
    let strongest = to_ink(if dark_on_light { lo } else { hi });
    let range = strongest - background;
    if range < MIN_CONTRAST {
        return Err(DigitImageError::NoDigit { path: None });
    }
    Ok(grey
        .iter()
        .map(|&g| {
            let v = ((to_ink(g) - background) / range).clamp(0.0, 1.0);
            if v < NOISE_FLOOR {
                0.0
            } else {
                v
            }
        })
        .collect())
}

/// The outer 1-pixel frame of the image (each pixel once).
fn frame_pixels(grey: &[f32], width: usize, height: usize) -> Vec<f32> {
    if width <= 2 || height <= 2 {
        return grey.to_vec();
    }
    let mut frame = Vec::with_capacity(2 * (width + height));
    frame.extend_from_slice(&grey[..width]);
    frame.extend_from_slice(&grey[(height - 1) * width..]);
    for y in 1..height - 1 {
        frame.push(grey[y * width]);
        frame.push(grey[y * width + width - 1]);
    }
    frame
}

/// Half-open box `(x0, y0, x1, y1)` around the pixels above `INK_THRESHOLD`.
fn ink_bounding_box(ink: &[f32], width: usize) -> Option<(usize, usize, usize, usize)> {
    let mut bounds: Option<(usize, usize, usize, usize)> = None;
    for (i, _) in ink.iter().enumerate().filter(|(_, &v)| v > INK_THRESHOLD) {
        let (x, y) = (i % width, i / width);
        bounds = Some(match bounds {
            None => (x, y, x + 1, y + 1),
            Some((x0, y0, x1, y1)) => (x0.min(x), y0.min(y), x1.max(x + 1), y1.max(y + 1)),
        });
    }
    bounds
}

/// Separable resize: rows first, then columns.
fn resize(src: &[f32], src_w: usize, src_h: usize, dst_w: usize, dst_h: usize) -> Vec<f32> {
    let mut rows_done = vec![0.0f32; dst_w * src_h];
    for (src_row, dst_row) in src
        .chunks_exact(src_w)
        .zip(rows_done.chunks_exact_mut(dst_w))
    {
        resample_line(src_row, dst_row);
    }
    let mut out = vec![0.0f32; dst_w * dst_h];
    let mut column = vec![0.0f32; src_h];
    let mut resampled = vec![0.0f32; dst_h];
    for x in 0..dst_w {
        for (y, c) in column.iter_mut().enumerate() {
            *c = rows_done[y * dst_w + x];
        }
        resample_line(&column, &mut resampled);
        for (y, &v) in resampled.iter().enumerate() {
            out[y * dst_w + x] = v;
        }
    }
    out
}

/// Resamples one line of samples to `dst.len()` samples. Sample `i` covers `[i, i + 1)`.
fn resample_line(src: &[f32], dst: &mut [f32]) {
    let (n_in, n_out) = (src.len(), dst.len());
    let step = n_in as f64 / n_out as f64; // source pixels per output pixel
    if n_out <= n_in {
        // Box filter: each output pixel is the mean of the source interval it covers,
        // weighting the partly covered source pixels at both ends by their overlap.
        for (i, d) in dst.iter_mut().enumerate() {
            let (start, end) = (i as f64 * step, (i + 1) as f64 * step);
            let mut sum = 0.0f64;
            let (first, last) = (start.floor() as usize, (end.ceil() as usize).min(n_in));
            for (j, &v) in (first..last).zip(&src[first..last]) {
                let overlap = end.min(j as f64 + 1.0) - start.max(j as f64);
                sum += overlap.max(0.0) * v as f64;
            }
            *d = (sum / step) as f32;
        }
    } else {
        // Bilinear between the two source pixel centres around the output pixel's centre.
        for (i, d) in dst.iter_mut().enumerate() {
            let x = ((i as f64 + 0.5) * step - 0.5).clamp(0.0, (n_in - 1) as f64);
            let j = x.floor() as usize;
            let t = (x - j as f64) as f32;
            let next = src[(j + 1).min(n_in - 1)];
            *d = src[j] * (1.0 - t) + next * t;
        }
    }
}

/// Pastes the `w`×`h` digit into the 28×28 frame with its centre of mass at (14, 14).
/// Coordinates are continuous (pixel `i` spans `[i, i + 1)`), so (14, 14) is the frame's
/// exact centre; in pixel-index terms it is (13.5, 13.5).
fn place_by_centre_of_mass(digit: &[f32], w: usize, h: usize) -> DigitImage {
    let (mut mass, mut moment_x, mut moment_y) = (0.0f64, 0.0f64, 0.0f64);
    for (i, &v) in digit.iter().enumerate() {
        let v = v as f64;
        mass += v;
        moment_x += v * ((i % w) as f64 + 0.5);
        moment_y += v * ((i / w) as f64 + 0.5);
    }
    let centre = FRAME_SIDE as f64 / 2.0;
    // Whole-pixel shift, as MNIST did; clamping keeps a lopsided digit inside the frame.
    let offset = |moment: f64, len: usize| -> usize {
        let shift = (centre - moment / mass).round();
        shift.clamp(0.0, (FRAME_SIDE - len) as f64) as usize
    };
    let (left, top) = (offset(moment_x, w), offset(moment_y, h));
    let mut pixels = [0.0f32; FRAME_SIDE * FRAME_SIDE];
    for (y, row) in digit.chunks_exact(w).enumerate() {
        let start = (top + y) * FRAME_SIDE + left;
        pixels[start..start + w].copy_from_slice(row);
    }
    DigitImage { pixels }
}
