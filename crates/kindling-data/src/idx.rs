//! IDX files, the format MNIST, Fashion-MNIST and our USPS copy ship in
//! (described on LeCun's MNIST page): a big-endian u32 magic number, one
//! big-endian u32 per dimension, then the values as unsigned bytes in
//! row-major order. A name ending in `.gz` means the file is gzip-compressed.
//!
//! Files are read whole and checked against their header before anything is
//! returned, so a cut-off or padded download fails here, naming the file,
//! rather than as a wrong-looking digit later.

use crate::{Error, Result};
use flate2::read::MultiGzDecoder;
use std::io::Read;
use std::path::{Path, PathBuf};

/// The magic's third byte is the value type (0x08 = unsigned byte) and its
/// fourth the number of dimensions.
const UNSIGNED_BYTE_TYPE: u32 = 0x08;
pub const IMAGES_MAGIC: u32 = (UNSIGNED_BYTE_TYPE << 8) | 3; // 2051
pub const LABELS_MAGIC: u32 = (UNSIGNED_BYTE_TYPE << 8) | 1; // 2049

/// `count` images of `rows` x `cols` pixels, 0 = background, 255 = ink.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdxImages {
    /// The file these came from, kept so later checks can name it.
    pub path: PathBuf,
    pub count: usize,
    pub rows: usize,
    pub cols: usize,
    /// `count * rows * cols` bytes, image after image, each row-major.
    pub pixels: Vec<u8>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdxLabels {
    /// The file these came from, kept so later checks can name it.
    pub path: PathBuf,
    pub labels: Vec<u8>,
}

impl IdxImages {
    /// Reads an IDX image file (magic 2051), gzip'd if the name ends in `.gz`.
    pub fn read(path: &Path) -> Result<IdxImages> {
        let bytes = read_decompressed(path)?;
        let ([count, rows, cols], pixels) = split_header::<3>(path, bytes)?;
        Ok(IdxImages {
            path: path.to_path_buf(),
            count,
            rows,
            cols,
            pixels,
        })
    }
}

impl IdxLabels {
    /// Reads an IDX label file (magic 2049), gzip'd if the name ends in `.gz`.
    pub fn read(path: &Path) -> Result<IdxLabels> {
        let bytes = read_decompressed(path)?;
        let ([_count], labels) = split_header::<1>(path, bytes)?;
        Ok(IdxLabels {
            path: path.to_path_buf(),
            labels,
        })
    }
}

/// What a magic number means, for error messages: a user who swapped the
/// image and label files, or un-gzipped a file but kept its name, sees why.
pub(crate) fn magic_meaning(magic: u32) -> &'static str {
    match magic {
        IMAGES_MAGIC => "IDX u8 images, 3 dims",
        LABELS_MAGIC => "IDX u8 labels, 1 dim",
        m if m >> 16 == 0x1f8b => "gzip data: is the file compressed without a .gz name?",
        _ => "not an IDX u8 file",
    }
}

fn read_decompressed(path: &Path) -> Result<Vec<u8>> {
    let raw = std::fs::read(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    if path.extension().is_none_or(|ext| ext != "gz") {
        return Ok(raw);
    }
    // Checked here because flate2's own error ("invalid gzip header") does
    // not say what the file actually starts with.
    if !raw.starts_with(&[0x1f, 0x8b]) {
        let found = if raw.is_empty() {
            "(empty file)".to_string()
        } else {
            raw.iter()
                .take(4)
                .map(|b| format!("{b:02x}"))
                .collect::<Vec<_>>()
                .join(" ")
        };
        return Err(Error::NotGzip {
            path: path.to_path_buf(),
            found,
        });
    }
    let mut out = Vec::new();
    // Multi-member so that a file concatenated by `cat a.gz b.gz` also reads.
    MultiGzDecoder::new(raw.as_slice())
        .read_to_end(&mut out)
        .map_err(|source| Error::Gzip {
            path: path.to_path_buf(),
            source,
        })?;
    Ok(out)
}

/// Checks the magic for an unsigned-byte IDX file of `DIMS` dimensions and
/// that the body is exactly as long as the dimensions say; returns the
/// dimensions and the body.
fn split_header<const DIMS: usize>(
    path: &Path,
    mut bytes: Vec<u8>,
) -> Result<([usize; DIMS], Vec<u8>)> {
    let header_bytes = 4 + 4 * DIMS;
    let truncated = |expected_bytes: u128, found_bytes: usize| Error::Truncated {
        path: path.to_path_buf(),
        expected_bytes,
        found_bytes,
    };
    let be_u32 =
        |at: usize| u32::from_be_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]);

    if bytes.len() < 4 {
        return Err(truncated(header_bytes as u128, bytes.len()));
    }
    let expected_magic = (UNSIGNED_BYTE_TYPE << 8) | DIMS as u32;
    let magic = be_u32(0);
    if magic != expected_magic {
        return Err(Error::WrongMagic {
            path: path.to_path_buf(),
            found: magic,
            expected: expected_magic,
        });
    }
    if bytes.len() < header_bytes {
        return Err(truncated(header_bytes as u128, bytes.len()));
    }
    let mut dims = [0usize; DIMS];
    for (d, dim) in dims.iter_mut().enumerate() {
        *dim = be_u32(4 + 4 * d) as usize;
    }

    // u128: three u32 dimensions multiplied can exceed u64.
    let body_bytes: u128 = dims.iter().map(|&d| d as u128).product();
    let expected_bytes = header_bytes as u128 + body_bytes;
    if (bytes.len() as u128) < expected_bytes {
        return Err(truncated(expected_bytes, bytes.len()));
    }
    if bytes.len() as u128 > expected_bytes {
        // expected_bytes < bytes.len(), so it fits in usize.
        let expected_bytes = expected_bytes as usize;
        return Err(Error::TrailingBytes {
            path: path.to_path_buf(),
            expected_bytes,
            trailing_bytes: bytes.len() - expected_bytes,
        });
    }
    // Shifting the body down reuses the buffer instead of copying tens of
    // megabytes into a second one.
    bytes.drain(..header_bytes);
    Ok((dims, bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scratch_dir::ScratchDir;
    use flate2::write::GzEncoder;
    use flate2::Compression;
    use std::io::Write;

    fn idx_bytes(magic: u32, dims: &[u32], body: &[u8]) -> Vec<u8> {
        let mut out = magic.to_be_bytes().to_vec();
        for d in dims {
            out.extend_from_slice(&d.to_be_bytes());
        }
        out.extend_from_slice(body);
        out
    }

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut enc = GzEncoder::new(Vec::new(), Compression::default());
        enc.write_all(bytes).unwrap();
        enc.finish().unwrap()
    }

    /// Two 2x3 images whose pixels are 0..12.
    fn two_images() -> Vec<u8> {
        idx_bytes(IMAGES_MAGIC, &[2, 2, 3], &(0..12).collect::<Vec<u8>>())
    }

    #[test]
    fn magic_numbers_are_the_published_ones() {
        assert_eq!(IMAGES_MAGIC, 2051);
        assert_eq!(LABELS_MAGIC, 2049);
    }

    #[test]
    fn reads_raw_images() {
        let dir = ScratchDir::new("idx-raw-images");
        let path = dir.write("images-idx3-ubyte", &two_images());
        let images = IdxImages::read(&path).unwrap();
        assert_eq!((images.count, images.rows, images.cols), (2, 2, 3));
        assert_eq!(images.pixels, (0..12).collect::<Vec<u8>>());
        assert_eq!(images.path, path);
    }

    #[test]
    fn reads_gzipped_images_and_labels() {
        let dir = ScratchDir::new("idx-gz");
        let images_path = dir.write("images-idx3-ubyte.gz", &gzip(&two_images()));
        let labels_path = dir.write(
            "labels-idx1-ubyte.gz",
            &gzip(&idx_bytes(LABELS_MAGIC, &[2], &[7, 3])),
        );
        let images = IdxImages::read(&images_path).unwrap();
        assert_eq!((images.count, images.rows, images.cols), (2, 2, 3));
        assert_eq!(images.pixels, (0..12).collect::<Vec<u8>>());
        assert_eq!(IdxLabels::read(&labels_path).unwrap().labels, vec![7, 3]);
    }

    #[test]
    fn reads_raw_labels() {
        let dir = ScratchDir::new("idx-raw-labels");
        let path = dir.write(
            "labels-idx1-ubyte",
            &idx_bytes(LABELS_MAGIC, &[3], &[0, 9, 4]),
        );
        assert_eq!(IdxLabels::read(&path).unwrap().labels, vec![0, 9, 4]);
    }

    #[test]
    fn reads_an_empty_set() {
        let dir = ScratchDir::new("idx-empty-set");
        let path = dir.write(
            "images-idx3-ubyte",
            &idx_bytes(IMAGES_MAGIC, &[0, 28, 28], &[]),
        );
        let images = IdxImages::read(&path).unwrap();
        assert_eq!((images.count, images.rows, images.cols), (0, 28, 28));
        assert!(images.pixels.is_empty());
    }

    #[test]
    fn labels_file_read_as_images_names_file_and_both_magics() {
        let dir = ScratchDir::new("idx-wrong-magic");
        let path = dir.write("labels-idx1-ubyte", &idx_bytes(LABELS_MAGIC, &[2], &[1, 2]));
        let err = IdxImages::read(&path).unwrap_err();
        assert!(matches!(
            err,
            Error::WrongMagic {
                found: 2049,
                expected: 2051,
                ..
            }
        ));
        let msg = err.to_string();
        assert!(msg.starts_with(&path.display().to_string()), "{msg}");
        assert!(msg.contains("2049") && msg.contains("2051"), "{msg}");
        assert!(
            msg.contains("labels"),
            "says what the file looks like: {msg}"
        );
    }

    #[test]
    fn uncompressed_file_without_gz_name_hints_at_gzip() {
        let dir = ScratchDir::new("idx-gzip-unnamed");
        let path = dir.write("images-idx3-ubyte", &gzip(&two_images()));
        let msg = IdxImages::read(&path).unwrap_err().to_string();
        assert!(msg.starts_with(&path.display().to_string()), "{msg}");
        assert!(msg.contains("gzip"), "{msg}");
    }

    #[test]
    fn truncated_body_names_file_and_byte_counts() {
        let dir = ScratchDir::new("idx-truncated-body");
        let mut bytes = two_images();
        bytes.truncate(bytes.len() - 3); // 28 bytes described, 25 present
        let path = dir.write("images-idx3-ubyte", &bytes);
        let err = IdxImages::read(&path).unwrap_err();
        assert!(matches!(
            err,
            Error::Truncated {
                expected_bytes: 28,
                found_bytes: 25,
                ..
            }
        ));
        let msg = err.to_string();
        assert!(msg.starts_with(&path.display().to_string()), "{msg}");
        assert!(msg.contains("28") && msg.contains("25"), "{msg}");
    }

    #[test]
    fn truncated_header_names_file() {
        let dir = ScratchDir::new("idx-truncated-header");
        let path = dir.write("images-idx3-ubyte", &two_images()[..10]);
        let err = IdxImages::read(&path).unwrap_err();
        assert!(matches!(
            err,
            Error::Truncated {
                expected_bytes: 16,
                found_bytes: 10,
                ..
            }
        ));
        assert!(err.to_string().starts_with(&path.display().to_string()));

        let path = dir.write("empty-idx1-ubyte", &[]);
        let err = IdxLabels::read(&path).unwrap_err();
        assert!(matches!(
            err,
            Error::Truncated {
                expected_bytes: 8,
                found_bytes: 0,
                ..
            }
        ));
    }

    #[test]
    fn gzipped_truncated_idx_reports_decompressed_byte_counts() {
        let dir = ScratchDir::new("idx-gz-truncated-idx");
        let labels = idx_bytes(LABELS_MAGIC, &[5], &[1, 2, 3]);
        let path = dir.write("labels-idx1-ubyte.gz", &gzip(&labels));
        let err = IdxLabels::read(&path).unwrap_err();
        assert!(matches!(
            err,
            Error::Truncated {
                expected_bytes: 13,
                found_bytes: 11,
                ..
            }
        ));
        assert!(err.to_string().starts_with(&path.display().to_string()));
    }

    #[test]
    fn cut_off_gzip_stream_names_file() {
        let dir = ScratchDir::new("idx-gz-cut");
        let gz = gzip(&two_images());
        let path = dir.write("images-idx3-ubyte.gz", &gz[..gz.len() / 2]);
        let err = IdxImages::read(&path).unwrap_err();
        assert!(matches!(err, Error::Gzip { .. }), "{err}");
        assert!(err.to_string().starts_with(&path.display().to_string()));
    }

    #[test]
    fn trailing_bytes_name_file_and_count() {
        let dir = ScratchDir::new("idx-trailing");
        let mut bytes = two_images();
        bytes.extend_from_slice(&[0, 0, 0, 0, 0]);
        let path = dir.write("images-idx3-ubyte", &bytes);
        let err = IdxImages::read(&path).unwrap_err();
        assert!(matches!(
            err,
            Error::TrailingBytes {
                expected_bytes: 28,
                trailing_bytes: 5,
                ..
            }
        ));
        assert!(err.to_string().starts_with(&path.display().to_string()));
    }

    #[test]
    fn gz_name_on_plain_file_names_file_and_first_bytes() {
        let dir = ScratchDir::new("idx-not-gzip");
        let path = dir.write("images-idx3-ubyte.gz", &two_images());
        let err = IdxImages::read(&path).unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, Error::NotGzip { .. }), "{msg}");
        assert!(msg.starts_with(&path.display().to_string()), "{msg}");
        assert!(msg.contains("00 00 08 03"), "shows the bytes found: {msg}");
    }

    #[test]
    fn missing_file_names_file() {
        let dir = ScratchDir::new("idx-missing");
        let path = dir.path().join("no-such-idx3-ubyte.gz");
        let err = IdxImages::read(&path).unwrap_err();
        assert!(matches!(err, Error::Io { .. }));
        assert!(err.to_string().starts_with(&path.display().to_string()));
    }
}
