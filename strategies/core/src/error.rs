//! Why a save did not complete: the error every save returns, from the file writer up.
//!
//! It lives apart from [`crate::strategy`] (which saves) and [`crate::atomic`] (which
//! writes the file) because both use it, and neither should depend on the other for it.

use std::io;
use std::path::{Path, PathBuf};

/// Why a save did not complete. The previous snapshot at the destination is untouched.
#[derive(Debug, thiserror::Error)]
pub enum SaveError {
    /// Another save is running (Redis: "Background save already in progress").
    #[error("Background save already in progress")]
    InProgress,
    /// An I/O step failed.
    #[error("{stage} failed for {}: {source}", path.display())]
    Io {
        /// Which step: "create temp file", "write", "fsync", "rename", "fsync directory".
        stage: &'static str,
        /// The file or directory involved.
        path: PathBuf,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// The thread (or process) doing the save died.
    #[error("the save did not finish: {0}")]
    Aborted(String),
}

impl SaveError {
    /// An I/O error at `stage` on `path`.
    pub fn io(stage: &'static str, path: &Path, source: io::Error) -> Self {
        SaveError::Io { stage, path: path.to_path_buf(), source }
    }
}
