//! The data dir: created private (mode 0700) and locked for as long as one
//! process uses it.
//!
//! It holds the SQLite database by default and the shared token's
//! `api-token` file. Two servers on one data dir would each believe their
//! own memory, so the server and the offline command line both hold
//! [`DataDir`] while they run, and a second one is refused with what to do.

use std::fs::File;
use std::path::{Path, PathBuf};

/// File locked while a process uses the data dir.
pub const LOCK_FILE: &str = "secapp.lock";

/// Why the data dir cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum DataDirError {
    /// It could not be created, or its lock file opened or locked.
    #[error("cannot use the data dir {path}: {source}")]
    Io {
        /// The data dir, or its lock file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Another process holds it.
    #[error(
        "another secapp server is using the data dir {0}; stop it or choose another --data-dir"
    )]
    InUse(PathBuf),
}

/// A data dir this process holds; released when dropped.
#[derive(Debug)]
pub struct DataDir {
    path: PathBuf,
    _lock: File,
}

impl DataDir {
    /// Creates `path` if missing (mode 0700) and locks it.
    ///
    /// # Errors
    /// [`DataDirError::InUse`] when another process holds it; `Io` when it
    /// cannot be created or locked.
    pub fn open(path: &Path) -> Result<Self, DataDirError> {
        use std::os::unix::fs::DirBuilderExt as _;
        let io = |path: &Path| {
            let path = path.to_owned();
            move |source| DataDirError::Io { path, source }
        };
        if !path.is_dir() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(path)
                .map_err(io(path))?;
        }
        let lock_path = path.join(LOCK_FILE);
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(io(&lock_path))?;
        match lock.try_lock() {
            Ok(()) => Ok(Self {
                path: path.to_owned(),
                _lock: lock,
            }),
            Err(std::fs::TryLockError::WouldBlock) => Err(DataDirError::InUse(path.to_owned())),
            Err(std::fs::TryLockError::Error(source)) => Err(DataDirError::Io {
                path: lock_path,
                source,
            }),
        }
    }

    /// Where it is.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_refused_until_the_first_lets_go() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested/data");
        let first = DataDir::open(&path).unwrap();
        let err = DataDir::open(&path).unwrap_err().to_string();
        assert!(err.contains("another secapp server"), "{err}");
        drop(first);
        DataDir::open(&path).unwrap();
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
    }
}
