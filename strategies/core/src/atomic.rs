//! The atomic file writer: a snapshot reaches its destination whole or not at all.
//!
//! The protocol is Redis's (src/rdb.c, `rdbSave`), step by step:
//!
//! 1. write to a temporary file in the destination's own directory (a rename is only
//!    atomic within one file system);
//! 2. `fsync` the temporary file, so its bytes are on disk before its name is;
//! 3. `rename` it over the destination, which atomically replaces the old snapshot;
//! 4. `fsync` the directory, so the rename itself survives a power loss.
//!
//! If anything fails before the rename, the temporary file is removed and the previous
//! snapshot at the destination is untouched. A crash in the middle leaves at worst a
//! `temp-*.rdb` file beside it, never a partial destination.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::strategy::SaveError;

static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// A file being written in place of `dest`. Dropping it without [`AtomicFile::commit`]
/// removes the temporary file.
#[derive(Debug)]
pub struct AtomicFile {
    dest: PathBuf,
    dir: PathBuf,
    tmp: PathBuf,
    file: Option<File>,
}

impl AtomicFile {
    /// Create `temp-<pid>-<n>.rdb` next to `dest` (Redis names its own `temp-<pid>.rdb`;
    /// the counter lets one process run several saves).
    ///
    /// # Errors
    /// [`SaveError::Io`] at stage "create temp file".
    pub fn create(dest: &Path) -> Result<Self, SaveError> {
        let dir = match dest.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let n = TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
        let tmp = dir.join(format!("temp-{}-{n}.rdb", std::process::id()));
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .map_err(|e| SaveError::io("create temp file", &tmp, e))?;
        Ok(AtomicFile { dest: dest.to_path_buf(), dir, tmp, file: Some(file) })
    }

    /// Path of the temporary file.
    pub fn temp_path(&self) -> &Path {
        &self.tmp
    }

    /// Steps 2 to 4: fsync, rename over the destination, fsync the directory.
    ///
    /// # Errors
    /// [`SaveError::Io`] naming the stage that failed. Before the rename the temporary file
    /// is removed and the destination is unchanged; a failure of the directory fsync comes
    /// after the rename, so the destination already holds the new, complete snapshot.
    pub fn commit(mut self) -> Result<(), SaveError> {
        let file = self.file.take().expect("commit is called once, on a file still open");
        file.sync_all().map_err(|e| SaveError::io("fsync", &self.tmp, e))?;
        drop(file);
        fs::rename(&self.tmp, &self.dest).map_err(|e| SaveError::io("rename", &self.dest, e))?;
        // The temporary name no longer exists; nothing is left to clean up from here on.
        self.tmp = PathBuf::new();
        File::open(&self.dir).and_then(|d| d.sync_all()).map_err(|e| SaveError::io("fsync directory", &self.dir, e))
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.file.as_mut().ok_or_else(|| io::Error::other("file already committed"))?.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        match self.file.as_mut() {
            Some(f) => f.flush(),
            None => Ok(()),
        }
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if !self.tmp.as_os_str().is_empty() {
            self.file = None;
            // Best effort: the error that brought us here is the one worth reporting.
            let _ = fs::remove_file(&self.tmp);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An abandoned write removes its temporary file and leaves the old file intact.
    #[test]
    fn abandoned_write_leaves_previous_file() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("dump.rdb");
        fs::write(&dest, b"old").unwrap();
        {
            let mut f = AtomicFile::create(&dest).unwrap();
            f.write_all(b"half a new snapsh").unwrap();
        }
        assert_eq!(fs::read(&dest).unwrap(), b"old");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1, "temp file removed");
    }

    /// A committed write replaces the destination and leaves no temporary file.
    #[test]
    fn commit_replaces() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("dump.rdb");
        fs::write(&dest, b"old").unwrap();
        let mut f = AtomicFile::create(&dest).unwrap();
        f.write_all(b"new").unwrap();
        f.commit().unwrap();
        assert_eq!(fs::read(&dest).unwrap(), b"new");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    /// A destination in a missing directory is a typed error naming the stage.
    #[test]
    fn missing_directory_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let err = AtomicFile::create(&dir.path().join("nope/dump.rdb")).unwrap_err();
        assert!(matches!(err, SaveError::Io { stage: "create temp file", .. }), "{err}");
    }
}
