//! A file system for tests that holds a save at two steps, its fsync and its rename, until
//! the test lets it go on: so a test can act while a save is certainly in progress, and
//! again between those two steps.

use std::io::{self, Write};
use std::path::Path;
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex};

use snaplab_core::atomic::{IoFile, RealIo, SaveIo};

/// One step at which the save waits: it says it arrived, then waits to be released.
#[derive(Debug)]
struct Stop {
    arrived: Mutex<Sender<()>>,
    release: Mutex<Receiver<()>>,
}

impl Stop {
    fn hold(&self) {
        let _ = self.arrived.lock().unwrap().send(());
        let _ = self.release.lock().unwrap().recv();
    }
}

/// The test's side of one step at which the save is held.
pub struct StopHandle {
    arrived: Receiver<()>,
    release: Sender<()>,
}

impl StopHandle {
    /// Wait until the save is held here.
    pub fn wait(&self) {
        self.arrived.recv().expect("the save never reached this step");
    }

    /// Let the save go on.
    pub fn release(&self) {
        let _ = self.release.send(());
    }
}

fn stop() -> (Stop, StopHandle) {
    let (arrived_tx, arrived) = channel();
    let (release, release_rx) = channel();
    (Stop { arrived: Mutex::new(arrived_tx), release: Mutex::new(release_rx) }, StopHandle { arrived, release })
}

/// The real file system, with a save held at its file's fsync and at its rename.
#[derive(Debug)]
pub struct TwoStops {
    at_sync: Arc<Stop>,
    at_rename: Stop,
}

/// Build the file system and the test's handles: (io, at fsync, at rename).
pub fn two_stops() -> (TwoStops, StopHandle, StopHandle) {
    let (s, sync) = stop();
    let (r, rename) = stop();
    (TwoStops { at_sync: Arc::new(s), at_rename: r }, sync, rename)
}

struct Held {
    inner: Box<dyn IoFile>,
    at_sync: Arc<Stop>,
}

impl Write for Held {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.inner.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

impl IoFile for Held {
    fn sync(&mut self) -> io::Result<()> {
        self.at_sync.hold();
        self.inner.sync()
    }
}

impl SaveIo for TwoStops {
    fn create(&self, path: &Path) -> io::Result<Box<dyn IoFile>> {
        Ok(Box::new(Held { inner: RealIo.create(path)?, at_sync: Arc::clone(&self.at_sync) }))
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.at_rename.hold();
        RealIo.rename(from, to)
    }
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        RealIo.sync_dir(dir)
    }
    fn remove(&self, path: &Path) -> io::Result<()> {
        RealIo.remove(path)
    }
}
