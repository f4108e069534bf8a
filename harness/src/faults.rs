//! Fault injection at the I/O boundary: a [`SaveIo`] that fails the way disks fail.
//!
//! Every strategy writes through the `SaveIo` in its `SaveOptions`, so a test can make
//! any save fail at any step: an I/O error at byte `k`, a full disk (ENOSPC) at byte `k`,
//! short writes (the OS accepting fewer bytes than asked, which is legal and must be
//! retried, not treated as an error), a failing `fsync`, a failing `rename`, a failing
//! directory `fsync`. The plan counts bytes in the process that writes, so it works for a
//! forked child too (the child gets its own copy of the counter).

use std::io::{self, Write};
use std::path::Path;

use snaplab_core::atomic::{IoFile, RealIo, SaveIo};

/// What goes wrong.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// The write that would pass byte `k` of the file writes up to `k` and fails with EIO.
    IoErrorAt(u64),
    /// The same, with ENOSPC: the disk is full.
    NoSpaceAt(u64),
    /// Every write accepts at most 7 bytes (not an error: callers must retry).
    ShortWrites,
    /// `fsync` of the file fails.
    Fsync,
    /// `rename` over the destination fails.
    Rename,
    /// `fsync` of the directory fails (after the rename).
    DirFsync,
}

impl Fault {
    /// Whether a save under this fault must fail (all but short writes do).
    pub fn fails_the_save(self) -> bool {
        self != Fault::ShortWrites
    }

    /// Whether the failure comes after the new file was renamed into place (so the
    /// destination then holds the new snapshot).
    pub fn after_rename(self) -> bool {
        self == Fault::DirFsync
    }
}

/// A real file system with one [`Fault`]. Byte positions count per file.
#[derive(Debug)]
pub struct FaultyIo {
    fault: Fault,
}

impl FaultyIo {
    /// The real file system, failing as `fault` says.
    pub fn new(fault: Fault) -> Self {
        FaultyIo { fault }
    }
}

struct FaultyFile {
    inner: Box<dyn IoFile>,
    fault: Fault,
    written: u64,
}

/// `EIO` and `ENOSPC` on Linux (asm-generic/errno-base.h).
const EIO: i32 = 5;
const ENOSPC: i32 = 28;

impl Write for FaultyFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if let Fault::IoErrorAt(k) | Fault::NoSpaceAt(k) = self.fault
            && self.written + buf.len() as u64 > k
        {
            let room = k.saturating_sub(self.written) as usize;
            if room == 0 {
                let code = if matches!(self.fault, Fault::NoSpaceAt(_)) { ENOSPC } else { EIO };
                return Err(io::Error::from_raw_os_error(code));
            }
            // Write what fits; the next call hits the limit and fails.
            let n = self.inner.write(&buf[..room])?;
            self.written += n as u64;
            return Ok(n);
        }
        let take = if self.fault == Fault::ShortWrites { buf.len().min(7) } else { buf.len() };
        let n = self.inner.write(&buf[..take])?;
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

impl IoFile for FaultyFile {
    fn sync(&mut self) -> io::Result<()> {
        if self.fault == Fault::Fsync {
            return Err(io::Error::from_raw_os_error(EIO));
        }
        self.inner.sync()
    }
}

impl SaveIo for FaultyIo {
    fn create(&self, path: &Path) -> io::Result<Box<dyn IoFile>> {
        Ok(Box::new(FaultyFile { inner: RealIo.create(path)?, fault: self.fault, written: 0 }))
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        if self.fault == Fault::Rename {
            return Err(io::Error::from_raw_os_error(EIO));
        }
        RealIo.rename(from, to)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        if self.fault == Fault::DirFsync {
            return Err(io::Error::from_raw_os_error(EIO));
        }
        RealIo.sync_dir(dir)
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        RealIo.remove(path)
    }

    fn open(&self, path: &Path) -> io::Result<Box<dyn io::Read + Send>> {
        RealIo.open(path)
    }
}
