//! A per-test scratch directory under the system temp dir, removed when the
//! test ends (pass or fail), so tests can write small files without a
//! dependency on a temp-file crate.

use std::path::{Path, PathBuf};

pub(crate) struct ScratchDir(PathBuf);

impl ScratchDir {
    /// `name` must be unique among the crate's tests: tests run in parallel.
    pub(crate) fn new(name: &str) -> ScratchDir {
        let path =
            std::env::temp_dir().join(format!("kindling-data-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("the system temp dir is writable");
        ScratchDir(path)
    }

    pub(crate) fn path(&self) -> &Path {
        &self.0
    }

    pub(crate) fn write(&self, file_name: &str, bytes: &[u8]) -> PathBuf {
        let path = self.0.join(file_name);
        std::fs::write(&path, bytes).expect("the scratch dir is writable");
        path
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        // Best effort: a leftover temp dir is not worth failing a test over.
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
