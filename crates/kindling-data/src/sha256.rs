//! SHA-256 of files, to check that a data file is the exact version whose
//! digest we pinned: a corrupt or different copy would otherwise train and
//! evaluate silently on the wrong numbers.

use crate::{Error, Result};
use sha2::{Digest, Sha256};
use std::fmt::Write as _;
use std::io::Read;
use std::path::Path;

/// The file's SHA-256 as 64 lowercase hex digits.
pub fn sha256_hex(path: &Path) -> Result<String> {
    let io_error = |source| Error::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut file = std::fs::File::open(path).map_err(io_error)?;
    let mut hasher = Sha256::new();
    // Streamed in chunks so verifying a large file needs no large buffer.
    let mut chunk = vec![0u8; 1 << 16];
    loop {
        let n = file.read(&mut chunk).map_err(io_error)?;
        if n == 0 {
            break;
        }
        hasher.update(&chunk[..n]);
    }
    Ok(hex(hasher))
}

/// The SHA-256 of bytes in memory (a tensor's data, say), as 64 hex digits.
pub fn sha256_bytes_hex(bytes: &[u8]) -> String {
    let mut hasher = Sha256::new();
    hasher.update(bytes);
    hex(hasher)
}

fn hex(hasher: Sha256) -> String {
    let mut hex = String::with_capacity(64);
    for byte in hasher.finalize() {
        write!(hex, "{byte:02x}").expect("writing to a String cannot fail");
    }
    hex
}

/// Fails with an error naming the file and both digests unless the file's
/// SHA-256 is `expected_hex` (hex digits, either case).
pub fn verify_sha256(path: &Path, expected_hex: &str) -> Result<()> {
    let actual = sha256_hex(path)?;
    if actual.eq_ignore_ascii_case(expected_hex.trim()) {
        Ok(())
    } else {
        Err(Error::Sha256Mismatch {
            path: path.to_path_buf(),
            expected: expected_hex.to_string(),
            actual,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scratch_dir::ScratchDir;

    // FIPS 180-2, appendix B.1: SHA-256("abc").
    const ABC_SHA256: &str = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

    #[test]
    fn digest_matches_the_fips_test_vector() {
        let dir = ScratchDir::new("sha256-abc");
        let path = dir.write("abc.txt", b"abc");
        assert_eq!(sha256_hex(&path).unwrap(), ABC_SHA256);
    }

    #[test]
    fn digest_of_a_file_larger_than_one_chunk() {
        // SHA-256 of one million 'a's, FIPS 180-2 appendix B.3.
        let dir = ScratchDir::new("sha256-million-a");
        let path = dir.write("a.txt", &vec![b'a'; 1_000_000]);
        assert_eq!(
            sha256_hex(&path).unwrap(),
            "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"
        );
    }

    #[test]
    fn verify_accepts_matching_digest_in_either_case() {
        let dir = ScratchDir::new("sha256-verify-ok");
        let path = dir.write("abc.txt", b"abc");
        verify_sha256(&path, ABC_SHA256).unwrap();
        verify_sha256(&path, &ABC_SHA256.to_uppercase()).unwrap();
    }

    #[test]
    fn mismatch_names_file_expected_and_actual() {
        let dir = ScratchDir::new("sha256-verify-bad");
        let path = dir.write("abd.txt", b"abd");
        let err = verify_sha256(&path, ABC_SHA256).unwrap_err();
        let msg = err.to_string();
        assert!(msg.starts_with(&path.display().to_string()), "{msg}");
        assert!(msg.contains(ABC_SHA256), "{msg}");
        assert!(msg.contains(&sha256_hex(&path).unwrap()), "{msg}");
    }

    #[test]
    fn missing_file_names_file() {
        let dir = ScratchDir::new("sha256-missing");
        let path = dir.path().join("absent.gz");
        let err = verify_sha256(&path, ABC_SHA256).unwrap_err();
        assert!(matches!(err, Error::Io { .. }));
        assert!(err.to_string().starts_with(&path.display().to_string()));
    }
}
