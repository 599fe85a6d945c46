//! Where datasets are found when the user names no directory: under
//! `$KINDLING_DATA_DIR` if set, else in the repository's own `data/` (the
//! datasets are checked in, so a fresh clone needs no download), else in
//! `./data` for a binary run away from its source tree.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

pub const DATA_DIR_ENV: &str = "KINDLING_DATA_DIR";

/// The directory of `dataset` (e.g. `"mnist"`): `$KINDLING_DATA_DIR/<dataset>`
/// if the variable is set and non-empty, else `<repo>/data/<dataset>` if it
/// exists, else `./data/<dataset>`.
pub fn default_data_dir(dataset: &str) -> PathBuf {
    resolve_data_dir(std::env::var_os(DATA_DIR_ENV), dataset)
}

fn resolve_data_dir(env_dir: Option<OsString>, dataset: &str) -> PathBuf {
    if let Some(dir) = env_dir.filter(|d| !d.is_empty()) {
        return PathBuf::from(dir).join(dataset);
    }
    // This crate lives at <repo>/crates/kindling-data.
    let repo_root = Path::new(env!("CARGO_MANIFEST_DIR")).ancestors().nth(2);
    if let Some(in_repo) = repo_root.map(|root| root.join("data").join(dataset)) {
        if in_repo.is_dir() {
            return in_repo;
        }
    }
    Path::new("data").join(dataset)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_var_wins_and_gets_the_dataset_appended() {
        let dir = resolve_data_dir(Some("/srv/kindling-data".into()), "mnist");
        assert_eq!(dir, PathBuf::from("/srv/kindling-data/mnist"));
    }

    #[test]
    fn without_env_var_the_repo_data_dir_is_used() {
        let dir = resolve_data_dir(None, "mnist");
        assert!(dir.ends_with("data/mnist"), "{}", dir.display());
        assert!(dir.is_dir(), "the repo ships data/mnist: {}", dir.display());
        assert_eq!(
            resolve_data_dir(Some("".into()), "mnist"),
            dir,
            "empty counts as unset"
        );
    }

    #[test]
    fn dataset_missing_from_the_repo_falls_back_to_cwd_data() {
        let dir = resolve_data_dir(None, "no-such-dataset");
        assert_eq!(dir, PathBuf::from("data/no-such-dataset"));
    }
}
