//! Turn any PNG or JPEG of a handwritten digit into an MNIST-style 28×28 image,
//! for `kindling predict`.
//!
//! MNIST (LeCun, Bottou, Bengio, Haffner 1998, "Gradient-based learning applied to
//! document recognition", and the MNIST page) size-normalised each NIST digit to fit a
//! 20×20 box keeping its aspect ratio, anti-aliased, then placed it in a 28×28 field so
//! that its centre of mass sits at the field's centre. A model trained on MNIST only
//! recognises digits that went through the same steps, so a drawing or a photo goes
//! through them too:
//!
//! 1. decode: PNG of any colour type and bit depth (palette, 16-bit, alpha composited
//!    over white) or JPEG (grey or colour); the file type is judged by its magic bytes;
//! 2. grey = 0.299 R + 0.587 G + 0.114 B (ITU-R BT.601 luma);
//! 3. polarity: MNIST is light ink on a dark background; if the image's outer frame is
//!    mostly light, the image is dark ink on paper, so ink = 1 - grey;
//! 4. contrast: the background level (median of the outer frame) goes to 0, the
//!    strongest ink to 1, and faint noise (below 0.1) to exactly 0, as in MNIST's clean
//!    background;
//! 5. crop to the bounding box of the ink (above 0.2);
//! 6. scale so the longer side is 20 px: box filter (area averaging) when shrinking, so
//!    thin strokes are anti-aliased rather than skipped, bilinear when enlarging;
//! 7. paste into the 28×28 frame shifted (by whole pixels) so the ink's centre of mass
//!    is at (14, 14), clamped so the digit stays inside the frame.

use std::fmt;
use std::path::{Path, PathBuf};

/// Side of an MNIST image in pixels.
const FRAME_SIDE: usize = 28;
/// MNIST fits the longer side of each digit's bounding box to 20 px.
const DIGIT_BOX_SIDE: usize = 20;
/// Ink below this, after contrast normalisation, is paper texture or compression noise.
const NOISE_FLOOR: f32 = 0.1;
/// Ink above this, after contrast normalisation, counts towards the digit's bounding box.
const INK_THRESHOLD: f32 = 0.2;
/// An image whose ink spans less than this range (of 0..1) is blank: stretching it would
/// turn JPEG noise or paper grain into a "digit".
const MIN_CONTRAST: f32 = 0.1;
/// The png crate's default 64 MiB decode limit rejects large photos (a 24 MP RGBA PNG
/// is 96 MiB); 256 MiB still bounds what a hostile file can make us allocate.
const PNG_DECODE_LIMIT_BYTES: usize = 256 << 20;

/// A digit ready for an MNIST model: 28×28 row-major, 0.0 = background, 1.0 = full ink
/// (light digit on dark, MNIST's orientation), centre of mass at (14, 14).
#[derive(Clone, Debug, PartialEq)]
pub struct DigitImage {
    pub pixels: [f32; FRAME_SIDE * FRAME_SIDE],
}

/// Why an image could not be turned into a digit. Every error from [`load_digit`] names the file.
#[derive(Debug)]
pub enum DigitImageError {
    /// The file could not be read (missing, a directory, no permission, ...).
    Unreadable {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The file is neither PNG nor JPEG, judged by its first bytes.
    UnsupportedFormat { path: PathBuf, first_bytes: Vec<u8> },
    /// The file starts like a PNG or JPEG but does not decode.
    Corrupt {
        path: PathBuf,
        format: &'static str,
        detail: String,
    },
    /// The image has no ink: it is blank or one flat colour. `path` is `None` only from
    /// [`preprocess_grey`], which has no file.
    NoDigit { path: Option<PathBuf> },
    /// [`preprocess_grey`] was given pixels that do not describe a width × height image.
    InvalidPixels { detail: String },
}

impl fmt::Display for DigitImageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unreadable { path, source } => {
                write!(f, "cannot read image {}: {source}", path.display())
            }
            Self::UnsupportedFormat { path, first_bytes } if first_bytes.is_empty() => write!(
                f,
                "{}: unsupported image format: the file is empty (expected PNG or JPEG)",
                path.display()
            ),
            Self::UnsupportedFormat { path, first_bytes } => {
                let hex: Vec<String> = first_bytes.iter().map(|b| format!("{b:02x}")).collect();
                write!(
                    f,
                    "{}: unsupported image format: expected PNG or JPEG, but the file starts with bytes {}",
                    path.display(),
                    hex.join(" ")
                )
            }
            Self::Corrupt {
                path,
                format,
                detail,
            } => {
                write!(
                    f,
                    "{}: corrupt or truncated {format} image: {detail}",
                    path.display()
                )
            }
            Self::NoDigit { path: Some(path) } => write!(
                f,
                "{}: no digit found (the image is blank or a single flat colour)",
                path.display()
            ),
            Self::NoDigit { path: None } => {
                write!(
                    f,
                    "no digit found (the image is blank or a single flat colour)"
                )
            }
            Self::InvalidPixels { detail } => write!(f, "invalid grey pixels: {detail}"),
        }
    }
}

impl std::error::Error for DigitImageError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Unreadable { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// Reads a PNG or JPEG (told apart by magic bytes, not extension) and preprocesses it
/// like MNIST; see the module documentation for the steps.
pub fn load_digit(path: &Path) -> Result<DigitImage, DigitImageError> {
    let bytes = std::fs::read(path).map_err(|source| DigitImageError::Unreadable {
        path: path.to_path_buf(),
        source,
    })?;
    let grey = if bytes.starts_with(b"\x89PNG") {
        decode_png_grey(path, &bytes)?
    } else if bytes.starts_with(b"\xFF\xD8") {
        decode_jpeg_grey(path, &bytes)?
    } else {
        return Err(DigitImageError::UnsupportedFormat {
            path: path.to_path_buf(),
            first_bytes: bytes.iter().take(8).copied().collect(),
        });
    };
    preprocess_grey(&grey.pixels, grey.width, grey.height).map_err(|err| match err {
        DigitImageError::NoDigit { path: None } => DigitImageError::NoDigit {
            path: Some(path.to_path_buf()),
        },
        other => other,
    })
}

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

/// A decoded image as grey 0..1, alpha already composited over white.
struct GreyImage {
    pixels: Vec<f32>,
    width: usize,
    height: usize,
}

/// ITU-R BT.601 luma, the weights MNIST-era scanners and JPEG's Y channel use.
fn luminance(r: f32, g: f32, b: f32) -> f32 {
    0.299 * r + 0.587 * g + 0.114 * b
}

fn decode_png_grey(path: &Path, bytes: &[u8]) -> Result<GreyImage, DigitImageError> {
    let corrupt = |detail: String| DigitImageError::Corrupt {
        path: path.to_path_buf(),
        format: "PNG",
        detail,
    };
    let limits = png::Limits {
        bytes: PNG_DECODE_LIMIT_BYTES,
    };
    let mut decoder = png::Decoder::new_with_limits(bytes, limits);
    // EXPAND turns palette into RGB(A), 1/2/4-bit grey into 8-bit, and tRNS into alpha,
    // leaving grey, grey+alpha, RGB and RGBA at 8 or 16 bits.
    decoder.set_transformations(png::Transformations::EXPAND);
    let mut reader = decoder.read_info().map_err(|e| corrupt(e.to_string()))?;
    let mut buf = vec![0u8; reader.output_buffer_size()];
    let frame = reader
        .next_frame(&mut buf)
        .map_err(|e| corrupt(e.to_string()))?;
    let (width, height) = (frame.width as usize, frame.height as usize);
    let bytes_per_sample = match frame.bit_depth {
        png::BitDepth::Eight => 1,
        png::BitDepth::Sixteen => 2,
        other => {
            return Err(corrupt(format!(
                "unexpected bit depth {other:?} after expansion"
            )))
        }
    };
    let channels = match frame.color_type {
        png::ColorType::Indexed => return Err(corrupt("palette was not expanded".to_string())),
        colour => colour.samples(),
    };
    let pixel_bytes = channels * bytes_per_sample;

    let mut grey = Vec::with_capacity(width * height);
    for row in buf.chunks_exact(frame.line_size).take(height) {
        for px in row[..width * pixel_bytes].chunks_exact(pixel_bytes) {
            let sample = |k: usize| match bytes_per_sample {
                1 => px[k] as f32 / 255.0,
                _ => u16::from_be_bytes([px[2 * k], px[2 * k + 1]]) as f32 / 65535.0,
            };
            let (luma, alpha) = match frame.color_type {
                png::ColorType::Grayscale => (sample(0), 1.0),
                png::ColorType::GrayscaleAlpha => (sample(0), sample(1)),
                png::ColorType::Rgb => (luminance(sample(0), sample(1), sample(2)), 1.0),
                _ => (luminance(sample(0), sample(1), sample(2)), sample(3)),
            };
            // Composite over white: a transparent canvas is paper, as in a drawing program.
            grey.push(alpha * luma + (1.0 - alpha));
        }
    }
    if grey.len() != width * height {
        return Err(corrupt(format!(
            "decoded {} pixels, expected {width}×{height}",
            grey.len()
        )));
    }
    Ok(GreyImage {
        pixels: grey,
        width,
        height,
    })
}

fn decode_jpeg_grey(path: &Path, bytes: &[u8]) -> Result<GreyImage, DigitImageError> {
    use zune_jpeg::errors::DecodeErrors;
    use zune_jpeg::zune_core::colorspace::ColorSpace;

    let corrupt = |err: DecodeErrors| DigitImageError::Corrupt {
        path: path.to_path_buf(),
        format: "JPEG",
        detail: err.to_string().trim_end().to_string(),
    };
    // Strict mode is what reports a truncated file; lenient mode paints the missing part
    // grey. Other strictness complaints (stray bytes between markers, as some cameras
    // write) are harmless, so those files get a second, lenient decode.
    let (rgb, width, height, colour_space) = match decode_jpeg(bytes, true) {
        Ok(decoded) => decoded,
        Err(
            err @ (DecodeErrors::ExhaustedData
            | DecodeErrors::IoErrors(_)
            | DecodeErrors::FormatStatic("Premature end of buffer")),
        ) => return Err(corrupt(err)),
        Err(_) => decode_jpeg(bytes, false).map_err(corrupt)?,
    };
    let channels = match colour_space {
        ColorSpace::RGB => 3,
        ColorSpace::Luma => 1,
        other => {
            return Err(corrupt(DecodeErrors::Format(format!(
                "unexpected output colour space {other:?}"
            ))))
        }
    };
    if rgb.len() != width * height * channels {
        return Err(corrupt(DecodeErrors::Format(format!(
            "decoded {} bytes, expected {width}×{height}×{channels}",
            rgb.len()
        ))));
    }
    let pixels = rgb
        .chunks_exact(channels)
        .map(|px| match px {
            [r, g, b] => luminance(*r as f32 / 255.0, *g as f32 / 255.0, *b as f32 / 255.0),
            _ => px[0] as f32 / 255.0,
        })
        .collect();
    Ok(GreyImage {
        pixels,
        width,
        height,
    })
}

/// Decodes to 8-bit samples; returns them with width, height and their colour space.
fn decode_jpeg(
    bytes: &[u8],
    strict: bool,
) -> Result<
    (
        Vec<u8>,
        usize,
        usize,
        zune_jpeg::zune_core::colorspace::ColorSpace,
    ),
    zune_jpeg::errors::DecodeErrors,
> {
    use zune_jpeg::errors::DecodeErrors;
    use zune_jpeg::zune_core::bytestream::ZCursor;
    use zune_jpeg::zune_core::colorspace::ColorSpace;
    use zune_jpeg::zune_core::options::DecoderOptions;

    // Ask for RGB whatever the file holds (grey JPEGs come out with R = G = B), so one
    // conversion path serves all.
    let options = DecoderOptions::default()
        .jpeg_set_out_colorspace(ColorSpace::RGB)
        .set_strict_mode(strict);
    let mut decoder = zune_jpeg::JpegDecoder::new_with_options(ZCursor::new(bytes), options);
    let samples = decoder.decode()?;
    let info = decoder
        .info()
        .ok_or(DecodeErrors::FormatStatic("no image header"))?;
    let colour_space = decoder
        .output_colorspace()
        .ok_or(DecodeErrors::FormatStatic("no output colour space"))?;
    Ok((
        samples,
        info.width as usize,
        info.height as usize,
        colour_space,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Renders pen strokes (polylines in 0..1 canvas coordinates) as anti-aliased ink
    /// coverage in 0..1, the way a mouse drawing looks.
    fn draw_strokes(
        width: usize,
        height: usize,
        strokes: &[&[(f32, f32)]],
        pen_px: f32,
    ) -> Vec<f32> {
        let mut ink = vec![0.0f32; width * height];
        for y in 0..height {
            for x in 0..width {
                let p = (x as f32 + 0.5, y as f32 + 0.5);
                let mut nearest = f32::INFINITY;
                for stroke in strokes {
                    for seg in stroke.windows(2) {
                        let a = (seg[0].0 * width as f32, seg[0].1 * height as f32);
                        let b = (seg[1].0 * width as f32, seg[1].1 * height as f32);
                        nearest = nearest.min(distance_to_segment(p, a, b));
                    }
                }
                ink[y * width + x] = (pen_px / 2.0 - nearest + 0.5).clamp(0.0, 1.0);
            }
        }
        ink
    }

    fn distance_to_segment(p: (f32, f32), a: (f32, f32), b: (f32, f32)) -> f32 {
        let (dx, dy) = (b.0 - a.0, b.1 - a.1);
        let len2 = dx * dx + dy * dy;
        let t = if len2 == 0.0 {
            0.0
        } else {
            (((p.0 - a.0) * dx + (p.1 - a.1) * dy) / len2).clamp(0.0, 1.0)
        };
        let (cx, cy) = (a.0 + t * dx, a.1 + t * dy);
        ((p.0 - cx).powi(2) + (p.1 - cy).powi(2)).sqrt()
    }

    const SEVEN: &[&[(f32, f32)]] = &[
        &[(0.25, 0.2), (0.75, 0.2)],
        &[(0.75, 0.2), (0.55, 0.5), (0.42, 0.85)],
    ];
    // A "1" off to the left and low, to exercise cropping and centring.
    const ONE_OFF_CENTRE: &[&[(f32, f32)]] = &[&[(0.15, 0.45), (0.25, 0.35), (0.25, 0.95)]];

    fn dark_on_light(ink: &[f32]) -> Vec<f32> {
        ink.iter().map(|v| 1.0 - v).collect()
    }

    fn centre_of_mass(d: &DigitImage) -> (f64, f64) {
        let (mut m, mut mx, mut my) = (0.0, 0.0, 0.0);
        for (i, &v) in d.pixels.iter().enumerate() {
            let v = v as f64;
            m += v;
            mx += v * ((i % FRAME_SIDE) as f64 + 0.5);
            my += v * ((i / FRAME_SIDE) as f64 + 0.5);
        }
        (mx / m, my / m)
    }

    /// (width, height) of the box around every non-zero pixel.
    fn ink_box_size(d: &DigitImage) -> (usize, usize) {
        let mut b = (FRAME_SIDE, FRAME_SIDE, 0, 0);
        for (i, _) in d.pixels.iter().enumerate().filter(|(_, &v)| v > 0.0) {
            let (x, y) = (i % FRAME_SIDE, i / FRAME_SIDE);
            b = (b.0.min(x), b.1.min(y), b.2.max(x + 1), b.3.max(y + 1));
        }
        (b.2 - b.0, b.3 - b.1)
    }

    fn scratch_path(name: &str) -> PathBuf {
        std::env::temp_dir().join(format!(
            "kindling_digit_image_{}_{name}",
            std::process::id()
        ))
    }

    fn encode_grey_png(grey: &[f32], width: usize, height: usize) -> Vec<u8> {
        let mut out = Vec::new();
        let mut encoder = png::Encoder::new(&mut out, width as u32, height as u32);
        encoder.set_color(png::ColorType::Grayscale);
        encoder.set_depth(png::BitDepth::Eight);
        let data: Vec<u8> = grey.iter().map(|v| (v * 255.0).round() as u8).collect();
        let mut writer = encoder
            .write_header()
            .expect("writing a PNG header to a Vec cannot fail");
        writer
            .write_image_data(&data)
            .expect("writing PNG data to a Vec cannot fail");
        drop(writer);
        out
    }

    fn fixture(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/digits")
            .join(name)
    }

    #[test]
    fn dark_on_light_and_light_on_dark_give_the_same_digit() {
        let ink = draw_strokes(120, 90, SEVEN, 9.0);
        let light_on_dark = preprocess_grey(&ink, 120, 90).unwrap();
        let dark_on_light = preprocess_grey(&dark_on_light(&ink), 120, 90).unwrap();
        let max_diff = light_on_dark
            .pixels
            .iter()
            .zip(dark_on_light.pixels.iter())
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f32::max);
        assert!(max_diff < 1e-4, "polarities differ by up to {max_diff}");
    }

    #[test]
    fn output_is_mnist_orientation_with_clean_background() {
        let digit = preprocess_grey(
            &dark_on_light(&draw_strokes(200, 200, SEVEN, 14.0)),
            200,
            200,
        )
        .unwrap();
        assert_eq!(digit.pixels[0], 0.0, "corner must be background");
        assert!(
            (digit.pixels.iter().fold(0.0f32, |m, &v| m.max(v)) - 1.0).abs() < 1e-6,
            "strongest ink must be 1.0"
        );
        assert!(digit.pixels.iter().all(|v| (0.0..=1.0).contains(v)));
    }

    #[test]
    fn centre_of_mass_is_within_one_pixel_of_frame_centre() {
        for (name, strokes, w, h) in [("seven", SEVEN, 120, 90), ("one", ONE_OFF_CENTRE, 200, 200)]
        {
            let digit =
                preprocess_grey(&dark_on_light(&draw_strokes(w, h, strokes, 10.0)), w, h).unwrap();
            let (cx, cy) = centre_of_mass(&digit);
            assert!(
                (cx - 14.0).abs() <= 1.0 && (cy - 14.0).abs() <= 1.0,
                "{name}: centre of mass ({cx:.2}, {cy:.2})"
            );
        }
    }

    #[test]
    fn longer_side_of_ink_box_is_20_pixels() {
        for (name, strokes, w, h) in [("seven", SEVEN, 120, 90), ("one", ONE_OFF_CENTRE, 200, 200)]
        {
            let digit = preprocess_grey(&draw_strokes(w, h, strokes, 10.0), w, h).unwrap();
            let (bw, bh) = ink_box_size(&digit);
            assert!(bw.max(bh).abs_diff(20) <= 1, "{name}: ink box {bw}×{bh}");
        }
    }

    #[test]
    fn tiny_digit_is_enlarged_to_20_pixels() {
        let ink = draw_strokes(12, 12, SEVEN, 1.5);
        let digit = preprocess_grey(&ink, 12, 12).unwrap();
        let (bw, bh) = ink_box_size(&digit);
        assert!(bw.max(bh).abs_diff(20) <= 1, "ink box {bw}×{bh}");
    }

    #[test]
    fn blank_white_image_is_no_digit_found() {
        let err = preprocess_grey(&vec![1.0; 50 * 40], 50, 40).unwrap_err();
        assert!(matches!(err, DigitImageError::NoDigit { .. }), "{err}");
        assert!(err.to_string().contains("no digit found"), "{err}");
    }

    #[test]
    fn blank_png_file_is_no_digit_found_naming_the_file() {
        let path = scratch_path("blank.png");
        std::fs::write(&path, encode_grey_png(&vec![1.0; 30 * 30], 30, 30)).unwrap();
        let err = load_digit(&path).unwrap_err();
        std::fs::remove_file(&path).ok();
        let message = err.to_string();
        assert!(
            message.contains("no digit found") && message.contains(&*path.to_string_lossy()),
            "{message}"
        );
    }

    #[test]
    fn png_round_trip_matches_preprocess_grey() {
        let grey = dark_on_light(&draw_strokes(64, 48, SEVEN, 6.0));
        let path = scratch_path("seven.png");
        std::fs::write(&path, encode_grey_png(&grey, 64, 48)).unwrap();
        let loaded = load_digit(&path);
        std::fs::remove_file(&path).ok();
        let direct = preprocess_grey(&grey, 64, 48).unwrap();
        let max_diff = loaded
            .unwrap()
            .pixels
            .iter()
            .zip(direct.pixels.iter())
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f32::max);
        // 8-bit quantisation of the PNG only.
        assert!(max_diff < 0.02, "PNG and direct differ by up to {max_diff}");
    }

    #[test]
    fn truncated_png_is_an_error_naming_the_file() {
        let png = encode_grey_png(&dark_on_light(&draw_strokes(64, 64, SEVEN, 6.0)), 64, 64);
        let path = scratch_path("truncated.png");
        std::fs::write(&path, &png[..png.len() / 2]).unwrap();
        let err = load_digit(&path).unwrap_err();
        std::fs::remove_file(&path).ok();
        assert!(
            matches!(err, DigitImageError::Corrupt { format: "PNG", .. }),
            "{err:?}"
        );
        assert!(err.to_string().contains(&*path.to_string_lossy()), "{err}");
    }

    #[test]
    fn truncated_jpeg_is_an_error_naming_the_file() {
        let jpeg = std::fs::read(fixture("three_black_on_white.jpg")).unwrap();
        let path = scratch_path("truncated.jpg");
        std::fs::write(&path, &jpeg[..jpeg.len() * 3 / 4]).unwrap();
        let err = load_digit(&path).unwrap_err();
        std::fs::remove_file(&path).ok();
        assert!(
            matches!(err, DigitImageError::Corrupt { format: "JPEG", .. }),
            "{err:?}"
        );
        assert!(err.to_string().contains(&*path.to_string_lossy()), "{err}");
    }

    #[test]
    fn non_image_file_is_unsupported_format_naming_the_file() {
        let path = scratch_path("notes.png");
        std::fs::write(&path, b"GIF89a, or really just some text").unwrap();
        let err = load_digit(&path).unwrap_err();
        std::fs::remove_file(&path).ok();
        assert!(
            matches!(err, DigitImageError::UnsupportedFormat { .. }),
            "{err:?}"
        );
        let message = err.to_string();
        assert!(
            message.contains("unsupported image format")
                && message.contains(&*path.to_string_lossy()),
            "{message}"
        );
    }

    #[test]
    fn missing_file_is_unreadable_naming_the_file() {
        let path = scratch_path("does_not_exist.png");
        let err = load_digit(&path).unwrap_err();
        assert!(matches!(err, DigitImageError::Unreadable { .. }), "{err:?}");
        assert!(err.to_string().contains(&*path.to_string_lossy()), "{err}");
    }

    #[test]
    fn mismatched_pixel_count_is_rejected() {
        let err = preprocess_grey(&[0.5; 10], 4, 3).unwrap_err();
        assert!(
            matches!(err, DigitImageError::InvalidPixels { .. }),
            "{err:?}"
        );
    }

    #[test]
    fn every_fixture_becomes_a_centred_20_pixel_digit() {
        let dir = fixture("");
        let mut seen = 0;
        for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let path = entry.unwrap().path();
            if !matches!(
                path.extension().and_then(|e| e.to_str()),
                Some("png" | "jpg")
            ) {
                continue;
            }
            let digit = load_digit(&path).unwrap_or_else(|e| panic!("{e}"));
            let (cx, cy) = centre_of_mass(&digit);
            let (bw, bh) = ink_box_size(&digit);
            assert!(
                (cx - 14.0).abs() <= 1.0 && (cy - 14.0).abs() <= 1.0,
                "{}: centre of mass ({cx:.2}, {cy:.2})",
                path.display()
            );
            assert!(
                bw.max(bh).abs_diff(20) <= 1,
                "{}: ink box {bw}×{bh}",
                path.display()
            );
            seen += 1;
        }
        assert!(
            seen >= 5,
            "expected at least 5 digit fixtures in {}, found {seen}",
            dir.display()
        );
    }

    #[test]
    fn fixture_seven_is_the_same_in_both_polarities() {
        let black_on_white = load_digit(&fixture("seven_black_on_white.png")).unwrap();
        let white_on_black = load_digit(&fixture("seven_white_on_black.png")).unwrap();
        let max_diff = black_on_white
            .pixels
            .iter()
            .zip(white_on_black.pixels.iter())
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f32::max);
        assert!(max_diff < 0.05, "polarities differ by up to {max_diff}");
    }

    #[test]
    fn fixture_jpeg_matches_its_png() {
        let png = load_digit(&fixture("three_black_on_white.png")).unwrap();
        let jpeg = load_digit(&fixture("three_black_on_white.jpg")).unwrap();
        let mean_diff: f32 = png
            .pixels
            .iter()
            .zip(jpeg.pixels.iter())
            .map(|(a, b)| (a - b).abs())
            .sum::<f32>()
            / 784.0;
        // JPEG's ringing around strokes shifts a few edge pixels; the digit stays the same.
        assert!(
            mean_diff < 0.03,
            "JPEG and PNG differ by {mean_diff} on average"
        );
    }
}
