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
//! (decoding, steps 1–2, is `decode.rs`; MNIST's preprocessing, steps 3–7, is
//! `mnist_style.rs`)
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

mod decode;
mod mnist_style;

pub use mnist_style::preprocess_grey;

use mnist_style::FRAME_SIDE;
use std::fmt;
use std::path::{Path, PathBuf};

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
    let grey = decode::decode_grey(path, &bytes)?;
    preprocess_grey(&grey.pixels, grey.width, grey.height).map_err(|err| match err {
        DigitImageError::NoDigit { path: None } => DigitImageError::NoDigit {
            path: Some(path.to_path_buf()),
        },
        other => other,
    })
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
