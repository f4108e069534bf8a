//! The fork strategy, in a test binary of its own: forking a multi-threaded test harness
//! is itself the hazard the strategy teaches about, so its tests stay apart from the
//! other strategies'.

use std::io;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use snaplab::fork::ForkSave;
use snaplab_core::atomic::{IoFile, RealIo, SaveIo};
use snaplab_core::{Command, Counted, Keyspace, SaveError, SaveOptions, SaveStatus, SnapshotStrategy, rdb};
use snaplab_harness::conformance::{GateIo, GatedIo, temp_files};

snaplab_harness::conformance_suite!(fork, snaplab::fork::ForkSave);

fn store_with(n: usize) -> ForkSave {
    let store = ForkSave::from_keyspace(Keyspace::new());
    for i in 0..n {
        let cmd = Command::Set { db: 0, key: format!("k{i}").into_bytes(), value: vec![b'v'; 64], expire_at_ms: None };
        store.apply(&cmd).unwrap();
    }
    store
}

// ANCHOR: child_killed_mid_save
/// A child killed with SIGKILL mid-save: the previous dump is intact, the child's
/// temp-<pid>.rdb is removed by the parent, the status says err, LASTSAVE did not move,
/// and the store keeps serving writes.
#[test]
fn child_killed_mid_save() {
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("dump.rdb");
    let store = store_with(1000);
    store.save(&dest, &SaveOptions::default()).unwrap();
    let previous = std::fs::read(&dest).unwrap();
    let lastsave = store.lastsave();
    store.apply(&Command::Del { db: 0, key: b"k1".to_vec() }).unwrap();

    let gate = GateIo::new();
    let held = SaveOptions { io: Arc::new(GatedIo(Arc::clone(&gate))), ..SaveOptions::default() };
    let bg = store.bgsave(&dest, &held).unwrap();
    assert!(gate.wait_for_a_held_write(Duration::from_secs(30)), "the child never reached its first write");
    let pid = store.child_pid().expect("a child is running");
    assert!(!temp_files(dir.path()).unwrap().is_empty(), "the child has created its temp file");
    kill(Pid::from_raw(pid), Signal::SIGKILL).unwrap();
    let err = bg.wait().unwrap_err();
    gate.open();

    assert!(err.to_string().contains("SIGKILL"), "{err}");
    assert!(matches!(store.last_save_status(), SaveStatus::Err(m) if m.contains("SIGKILL")));
    assert_eq!(store.lastsave(), lastsave);
    assert_eq!(std::fs::read(&dest).unwrap(), previous, "the previous dump is intact");
    assert!(temp_files(dir.path()).unwrap().is_empty(), "temp files left: {:?}", temp_files(dir.path()).unwrap());
    store.apply(&Command::Del { db: 0, key: b"k2".to_vec() }).unwrap();
    assert_eq!(store.len(), 998);
}
// ANCHOR_END: child_killed_mid_save

/// A file system that accepts the first `budget` bytes, then fails with ENOSPC.
#[derive(Debug)]
struct DiskFull {
    budget: usize,
}

struct Limited {
    inner: Box<dyn IoFile>,
    left: usize,
}

impl io::Write for Limited {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.left == 0 {
            return Err(io::Error::from_raw_os_error(libc::ENOSPC));
        }
        let n = buf.len().min(self.left);
        self.left -= n;
        self.inner.write(&buf[..n])
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

impl IoFile for Limited {
    fn sync(&mut self) -> io::Result<()> {
        self.inner.sync()
    }
}

impl SaveIo for DiskFull {
    fn create(&self, path: &Path) -> io::Result<Box<dyn IoFile>> {
        Ok(Box::new(Limited { inner: RealIo.create(path)?, left: self.budget }))
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        RealIo.rename(from, to)
    }
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        RealIo.sync_dir(dir)
    }
    fn remove(&self, path: &Path) -> io::Result<()> {
        RealIo.remove(path)
    }
}

/// A child that fails to write (the disk fills up): the save fails with the child's
/// typed I/O error (stage "write", ENOSPC), the status says err, the child removed its temp
/// file, and the previous dump is intact.
#[test]
fn child_that_fails_to_write() {
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("dump.rdb");
    let store = store_with(2000);
    store.save(&dest, &SaveOptions::default()).unwrap();
    let previous = std::fs::read(&dest).unwrap();

    let full = SaveOptions { io: Arc::new(DiskFull { budget: 4096 }), ..SaveOptions::default() };
    let err = store.bgsave(&dest, &full).unwrap().wait().unwrap_err();
    match &err {
        SaveError::Io { stage, source, .. } => {
            assert_eq!(*stage, "write");
            assert_eq!(source.raw_os_error(), Some(libc::ENOSPC), "{source}");
        }
        other => panic!("expected the child's I/O error, got {other}"),
    }
    assert!(matches!(store.last_save_status(), SaveStatus::Err(_)));
    assert_eq!(std::fs::read(&dest).unwrap(), previous);
    assert!(temp_files(dir.path()).unwrap().is_empty(), "temp files left: {:?}", temp_files(dir.path()).unwrap());
    let (loaded, _) = rdb::load_file(&dest).unwrap();
    assert_eq!(loaded.len(), 2000);
}

/// The parent's writes continue while the child saves, and the report carries the fork
/// time and the child's copied pages: at least the hash-table slots the parent rewrote, at
/// most the parent's whole memory plus the child's own working set.
#[test]
fn parent_keeps_writing_during_the_save() {
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("dump.rdb");
    let store = store_with(5000);
    let gate = GateIo::new();
    let held = SaveOptions { io: Arc::new(GatedIo(Arc::clone(&gate))), ..SaveOptions::default() };
    let rss_before = snaplab_core::memory::resident_bytes(None).unwrap();
    let bg = store.bgsave(&dest, &held).unwrap();
    let rss_at_fork = snaplab_core::memory::resident_bytes(None).unwrap().max(rss_before);
    assert!(gate.wait_for_a_held_write(Duration::from_secs(30)));
    // The child is certainly mid-save, and the parent is not blocked by it.
    for i in 0..5000 {
        store
            .apply(&Command::Set {
                db: 0,
                key: format!("k{i}").into_bytes(),
                value: b"new".to_vec(),
                expire_at_ms: None,
            })
            .unwrap();
    }
    gate.open();
    let report = bg.wait().unwrap();
    assert!(report.figure("fork_us").is_some());
    let copied = report.figure("child_private_dirty_peak_bytes").unwrap();
    // Each rewrite changed its key's slot in the hash table (key, value and expiry: at least
    // 64 bytes), so the pages holding 5000 slots were copied and the child kept the originals.
    assert!(copied >= 5000 * 64, "child_private_dirty_peak_bytes is {copied}: the parent's writes are not reflected");
    // The child's private pages are the parent's pages it kept (at most the parent's whole
    // memory at the fork) plus what the child allocated to serialize 5000 small keys.
    assert!(
        copied <= rss_at_fork + (64 << 20),
        "child_private_dirty_peak_bytes is {copied}, more than the parent's {rss_at_fork} resident bytes at the fork"
    );
    let (loaded, _) = rdb::load_file(&dest).unwrap();
    assert_eq!(
        loaded.get(0, b"k7").unwrap().value,
        snaplab_core::Value::String(vec![b'v'; 64]),
        "the dump holds the state at the fork"
    );
    assert_eq!(store.get(0, b"k7").unwrap().value, snaplab_core::Value::String(b"new".to_vec()));
}

/// A [`SaveIo`] over the real file system that remembers the names of the files it created.
#[derive(Debug, Default)]
struct NamesCreated(std::sync::Mutex<Vec<std::path::PathBuf>>);

impl SaveIo for NamesCreated {
    fn create(&self, path: &Path) -> io::Result<Box<dyn IoFile>> {
        self.0.lock().unwrap().push(path.to_path_buf());
        RealIo.create(path)
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        RealIo.rename(from, to)
    }
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        RealIo.sync_dir(dir)
    }
    fn remove(&self, path: &Path) -> io::Result<()> {
        RealIo.remove(path)
    }
}

fn counted(n: usize) -> Counted {
    let mut keyspace = Keyspace::new();
    for i in 0..n {
        let set = Command::Set { db: 0, key: format!("k{i}").into_bytes(), value: vec![b'v'; 64], expire_at_ms: None };
        keyspace.apply(&set, 0).unwrap();
    }
    Counted { keyspace, writes: n as u64 }
}

/// The child's half on its own (called here without a fork): it writes the whole keyspace
/// through a temporary file named as Redis names its child's, `temp-<pid>.rdb` beside the
/// destination (the name the parent removes if the child is killed), renames it into place
/// and leaves nothing else behind.
#[test]
fn child_half_saves_through_temp_pid_rdb() {
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("dump.rdb");
    let store = counted(500);
    let names = Arc::new(NamesCreated::default());
    let opts = SaveOptions { io: names.clone(), ..SaveOptions::default() };
    let stats = snaplab::fork::child_save(&store, &dest, &opts).expect("the child's save failed");
    assert_eq!(stats.keys, 500);
    assert_eq!(*names.0.lock().unwrap(), vec![dir.path().join(format!("temp-{}.rdb", std::process::id()))]);
    let (loaded, _) = rdb::load_file(&dest).unwrap();
    assert_eq!(loaded, store.keyspace, "the dump is the keyspace the child was given");
    assert!(temp_files(dir.path()).unwrap().is_empty(), "temp files left: {:?}", temp_files(dir.path()).unwrap());
}

/// The child's half on its own, on a disk that fills up: the typed I/O error comes back
/// (stage "write", ENOSPC), its temporary file is removed and the previous dump stays.
#[test]
fn child_half_that_fails_to_write_cleans_up() {
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("dump.rdb");
    std::fs::write(&dest, b"the previous dump").unwrap();
    let full = SaveOptions { io: Arc::new(DiskFull { budget: 4096 }), ..SaveOptions::default() };
    match snaplab::fork::child_save(&counted(2000), &dest, &full) {
        Err(SaveError::Io { stage: "write", source, .. }) => {
            assert_eq!(source.raw_os_error(), Some(libc::ENOSPC), "{source}");
        }
        other => panic!("expected an I/O error at stage \"write\", got {:?}", other.map(|s| s.keys)),
    }
    assert_eq!(std::fs::read(&dest).unwrap(), b"the previous dump");
    assert!(temp_files(dir.path()).unwrap().is_empty(), "temp files left: {:?}", temp_files(dir.path()).unwrap());
}
