//! Where datasets are found when the user names no directory: under
//! `$KINDLING_DATA_DIR` if set, else in the repository's own `data/` (MNIST
//! is checked in, so a fresh clone needs no download for it, and `kindling
//! data fetch` puts other datasets beside it), else in `./data` for a binary
//! run away from its source tree.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

pub const DATA_DIR_ENV: &str = "KINDLING_DATA_DIR";

/// The directory that holds one folder per dataset: `$KINDLING_DATA_DIR` if
/// the variable is set and non-empty, else `<repo>/data` if it exists, else
/// `./data`.
pub fn default_data_root() -> PathBuf {
    resolve_data_root(std::env::var_os(DATA_DIR_ENV))
}

/// The directory of `dataset` (e.g. `"mnist"`): `<data root>/<dataset>`,
/// with the root as in [`default_data_root`]. Loading and `kindling data
/// fetch` use the same rule, so a fetched dataset is found where it landed.
pub fn default_data_dir(dataset: &str) -> PathBuf {
    default_data_root().join(dataset)
}

fn resolve_data_root(env_dir: Option<OsString>) -> PathBuf {
    if let Some(dir) = env_dir.filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    // This crate lives at <repo>/crates/kindling-data.
    let repo_root = Path::new(env!("CARGO_MANIFEST_DIR")).ancestors().nth(2);
    if let Some(in_repo) = repo_root.map(|root| root.join("data")) {
        if in_repo.is_dir() {
            return in_repo;
        }
    }
    PathBuf::from("data")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_var_wins() {
        let root = resolve_data_root(Some("/srv/kindling-data".into()));
        assert_eq!(root, PathBuf::from("/srv/kindling-data"));
        assert_eq!(
            root.join("mnist"),
            PathBuf::from("/srv/kindling-data/mnist")
        );
    }

    #[test]
    fn without_env_var_the_repo_data_dir_is_used() {
        let root = resolve_data_root(None);
        assert!(root.ends_with("data"), "{}", root.display());
        assert!(
            root.join("mnist").is_dir(),
            "the repo ships data/mnist: {}",
            root.display()
        );
        assert_eq!(
            resolve_data_root(Some("".into())),
            root,
            "empty counts as unset"
        );
    }

    #[test]
    fn a_dataset_not_yet_fetched_resolves_into_the_same_root() {
        // `kindling data fetch` creates it there, so loading must look there too
        // (before, a dataset missing from the repo fell back to ./data).
        assert_eq!(
            default_data_dir("no-such-dataset"),
            default_data_root().join("no-such-dataset")
        );
    }
}
