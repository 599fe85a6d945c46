//! Image files to grey pixels: PNG of any colour type and bit depth
//! (palette, 16-bit, alpha composited over white) or JPEG (grey or colour),
//! told apart by their magic bytes; grey is ITU-R BT.601 luma.

use super::DigitImageError;
use std::path::Path;

/// The png crate's default 64 MiB decode limit rejects large photos (a 24 MP RGBA PNG
/// is 96 MiB); 256 MiB still bounds what a hostile file can make us allocate.
const PNG_DECODE_LIMIT_BYTES: usize = 256 << 20;

/// A decoded image as grey 0..1, alpha already composited over white.
pub(super) struct GreyImage {
    pub(super) pixels: Vec<f32>,
    pub(super) width: usize,
    pub(super) height: usize,
}

/// Decodes a PNG or JPEG file's `bytes` (told apart by magic bytes, not the
/// extension) to grey; errors name `path`.
pub(super) fn decode_grey(path: &Path, bytes: &[u8]) -> Result<GreyImage, DigitImageError> {
    if bytes.starts_with(b"\x89PNG") {
        decode_png_grey(path, bytes)
    } else if bytes.starts_with(b"\xFF\xD8") {
        decode_jpeg_grey(path, bytes)
    } else {
        Err(DigitImageError::UnsupportedFormat {
            path: path.to_path_buf(),
            first_bytes: bytes.iter().take(8).copied().collect(),
        })
    }
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
