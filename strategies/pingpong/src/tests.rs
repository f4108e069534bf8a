//! The lesson of ping-pong checkpointing, pinned: writers never wait for the saver, and
//! the image follows the live state from cut to cut, failed saves included.

use std::io::{self, Write};
use std::sync::mpsc::{Receiver, Sender, channel};

use snaplab_core::atomic::{IoFile, RealIo, SaveIo};
use snaplab_core::{BgSave, Value, rdb};

use super::*;

fn set(key: &str, value: &str) -> Command {
    Command::Set { db: 0, key: key.as_bytes().to_vec(), value: value.as_bytes().to_vec(), expire_at_ms: None }
}

fn keyspace(n: usize) -> Keyspace {
    let mut ks = Keyspace::new();
    for i in 0..n {
        ks.insert(0, format!("k{i}").into_bytes(), Entry::new(Value::String(b"v0".to_vec())));
    }
    ks
}

/// The saver's image, copied out (the saver must be done).
fn image(store: &PingPong) -> Keyspace {
    lock(&store.inner.image).clone().expect("the store has an image")
}

/// The real file system, with the save held at its first write into the file: the saver
/// has folded its delta and is serializing the image. It says it arrived, then waits to
/// be released.
#[derive(Debug)]
struct HeldAtFirstWrite {
    arrived: Mutex<Sender<()>>,
    release: Mutex<Receiver<()>>,
}

struct HeldFile {
    inner: Box<dyn IoFile>,
    io: Arc<HeldAtFirstWrite>,
    held: bool,
}

impl Write for HeldFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if !std::mem::replace(&mut self.held, true) {
            let _ = lock(&self.io.arrived).send(());
            let _ = lock(&self.io.release).recv();
        }
        self.inner.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

impl IoFile for HeldFile {
    fn sync(&mut self) -> io::Result<()> {
        self.inner.sync()
    }
}

#[derive(Debug)]
struct Held(Arc<HeldAtFirstWrite>);

impl SaveIo for Held {
    fn create(&self, path: &Path) -> io::Result<Box<dyn IoFile>> {
        Ok(Box::new(HeldFile { inner: RealIo.create(path)?, io: Arc::clone(&self.0), held: false }))
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

/// Options whose save holds at its first write, and the test's side: (arrived, release).
fn held_save() -> (SaveOptions, Receiver<()>, Sender<()>) {
    let (arrived_tx, arrived) = channel();
    let (release, release_rx) = channel();
    let io = Held(Arc::new(HeldAtFirstWrite { arrived: Mutex::new(arrived_tx), release: Mutex::new(release_rx) }));
    (SaveOptions { io: Arc::new(io), ..SaveOptions::default() }, arrived, release)
}

/// A file system whose every file fails its first write.
#[derive(Debug)]
struct FailingWrites;

struct FailingFile;

impl Write for FailingFile {
    fn write(&mut self, _: &[u8]) -> io::Result<usize> {
        Err(io::Error::other("injected write failure"))
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl IoFile for FailingFile {
    fn sync(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl SaveIo for FailingWrites {
    fn create(&self, _: &Path) -> io::Result<Box<dyn IoFile>> {
        Ok(Box::new(FailingFile))
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        RealIo.rename(from, to)
    }
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        RealIo.sync_dir(dir)
    }
    fn remove(&self, _: &Path) -> io::Result<()> {
        Ok(())
    }
}

/// While the saver is stopped in the middle of writing the file, everything a writer
/// locks (the live state and the current delta) is free, and writes go through; what the
/// saver holds (the image and the retired delta) is what no writer locks. Structural, not
/// timed: if a write needed anything the saver holds, `try_write`/`try_lock` would fail.
#[test]
fn a_write_during_a_save_never_waits_on_the_saver() {
    let store = PingPong::from_keyspace(keyspace(100));
    let dir = tempfile::tempdir().unwrap();
    let (opts, arrived, release) = held_save();
    let bg = store.bgsave(&dir.path().join("dump.rdb"), &opts).unwrap();
    // The saver's copy of the options is now the only sender: if the saver dies before its
    // first write, `recv` fails instead of waiting forever.
    drop(opts);
    arrived.recv().expect("the saver reached its first write");

    assert!(store.inner.image.try_lock().is_err(), "the saver holds its image while it serializes it");
    let current = {
        let live = store.inner.live.try_write().expect("the saver does not hold the live state");
        live.current
    };
    assert!(store.inner.deltas[current].try_lock().is_ok(), "the saver does not hold the current delta");
    for i in 0..50 {
        store.apply(&set(&format!("k{i}"), "during")).unwrap();
    }
    store.apply(&Command::FlushDb { db: 3 }).unwrap();
    assert_eq!(lock(&store.inner.deltas[current]).len(), 50, "the writes went to the current delta");

    release.send(()).unwrap();
    let report = bg.wait().unwrap();
    let (got, _) = rdb::load_file(&report.path).unwrap();
    assert_eq!(got, keyspace(100), "the dump holds the state at the cut, none of the writes made during the save");
}

/// Two saves, with writes before each cut and during each save: after the second, the
/// image is the live state at the second cut, and so is its dump.
#[test]
fn the_image_after_two_saves_is_the_live_state_at_the_second_cut() {
    let store = PingPong::from_keyspace(keyspace(100));
    let dir = tempfile::tempdir().unwrap();
    for (round, n) in [(1, 30), (2, 60)] {
        for i in 0..n {
            store.apply(&set(&format!("k{i}"), &format!("before cut {round}"))).unwrap();
        }
        store.apply(&Command::Del { db: 0, key: format!("k{}", 90 + round).into_bytes() }).unwrap();
        store
            .apply(&Command::SAdd { db: 1, key: b"s".to_vec(), members: vec![format!("m{round}").into_bytes()] })
            .unwrap();
        let at_cut = store.to_keyspace();
        let (opts, arrived, release) = held_save();
        let dest = dir.path().join(format!("dump{round}.rdb"));
        let bg = store.bgsave(&dest, &opts).unwrap();
        drop(opts);
        arrived.recv().expect("the saver reached its first write");
        for i in 0..20 {
            store.apply(&set(&format!("k{i}"), &format!("during save {round}"))).unwrap();
        }
        store.apply(&Command::FlushDb { db: 1 }).unwrap();
        release.send(()).unwrap();
        let report = bg.wait().unwrap();
        assert_eq!(image(&store), at_cut, "save {round}: the image is the live state at its cut");
        assert_eq!(rdb::load_file(&dest).unwrap().0, at_cut, "save {round}: the dump is the live state at its cut");
        assert_eq!(report.figure("first_image_copies_count"), Some(0), "the image was built when the store was");
    }
    assert!(lock(&store.inner.deltas[0]).is_empty() || lock(&store.inner.deltas[1]).is_empty());
}

/// A save whose file write fails has already folded its delta into the image: the image
/// is the live state at that save's cut, the retired delta is empty, and the next save,
/// after more writes, writes exactly the live state at its own cut.
#[test]
fn a_failed_save_leaves_the_image_at_its_cut() {
    let store = PingPong::from_keyspace(keyspace(50));
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("dump.rdb");
    store.save(&dest, &SaveOptions::default()).unwrap();
    for i in 0..10 {
        store.apply(&set(&format!("k{i}"), "before the failed save")).unwrap();
    }
    let at_failed_cut = store.to_keyspace();
    let failing = SaveOptions { io: Arc::new(FailingWrites), ..SaveOptions::default() };
    assert!(store.bgsave(&dest, &failing).and_then(BgSave::wait).is_err(), "the injected failure fails the save");
    assert_eq!(image(&store), at_failed_cut, "the failed save's delta is in the image");
    assert!(lock(&store.inner.deltas[0]).is_empty() && lock(&store.inner.deltas[1]).is_empty());

    for i in 5..15 {
        store.apply(&set(&format!("k{i}"), "after the failed save")).unwrap();
    }
    store.apply(&Command::Del { db: 0, key: b"k40".to_vec() }).unwrap();
    store.save(&dest, &SaveOptions::default()).unwrap();
    assert_eq!(rdb::load_file(&dest).unwrap().0, store.to_keyspace(), "the next save holds every write");
}

/// A store built without an image copies the live state at its first cut (reported), and
/// folds deltas from then on like any other.
#[test]
fn an_image_built_at_the_first_cut() {
    let store = PingPong::with_first_image(keyspace(100), FirstImage::AtFirstCut);
    assert!(lock(&store.inner.image).is_none(), "no image before the first save");
    store.apply(&set("k1", "x")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let first = store.save(&dir.path().join("a.rdb"), &SaveOptions::default()).unwrap();
    assert_eq!(first.figure("first_image_copies_count"), Some(1));
    assert_eq!(first.figure("delta_applied_keys_count"), Some(0), "the copy already holds the period's writes");
    store.apply(&set("k2", "y")).unwrap();
    let second = store.save(&dir.path().join("b.rdb"), &SaveOptions::default()).unwrap();
    assert_eq!(second.figure("first_image_copies_count"), Some(0));
    assert_eq!(second.figure("delta_applied_keys_count"), Some(1));
    assert_eq!(rdb::load_file(&second.path).unwrap().0, store.to_keyspace());
}

/// The figures: the delta applied counts the distinct keys written in the period (a key
/// written twice once) and their bytes; the image's bytes are the keyspace's.
#[test]
fn figures_count_the_delta_and_the_image() {
    let store = PingPong::from_keyspace(keyspace(10));
    for _ in 0..3 {
        store.apply(&set("k1", "0123456789")).unwrap();
    }
    store.apply(&Command::Del { db: 0, key: b"k2".to_vec() }).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let report = store.save(&dir.path().join("dump.rdb"), &SaveOptions::default()).unwrap();
    assert_eq!(report.figure("delta_applied_keys_count"), Some(2), "k1 (three writes) and k2's tombstone");
    let k1 = 2 + Value::String(b"0123456789".to_vec()).heap_bytes() as u64;
    assert_eq!(report.figure("delta_applied_bytes"), Some(k1 + 2), "k1 and its value, and k2's key");
    assert_eq!(report.figure("image_bytes"), Some(store.to_keyspace().heap_bytes() as u64));
}

/// The thread that finishes a save is started ahead of it: the store starts one when it is
/// built, each save starts the next before it finishes, and a waiting saver ends when its
/// store (the sender of its job) goes away, so no thread outlives the store.
#[test]
fn the_next_saver_is_started_ahead_and_ends_with_the_store() {
    let store = PingPong::from_keyspace(keyspace(10));
    assert!(lock(&store.inner.standby).is_some(), "a saver waits from the start");
    let dir = tempfile::tempdir().unwrap();
    store.save(&dir.path().join("dump.rdb"), &SaveOptions::default()).unwrap();
    let standby = lock(&store.inner.standby).take().expect("the save started the next saver");
    drop(standby.job);
    let ended = standby.handle.join().expect("the waiting saver does not panic");
    assert!(matches!(ended, Err(SaveError::Aborted(_))), "without a job it ends, saying so: {ended:?}");
    store
        .save(&dir.path().join("dump.rdb"), &SaveOptions::default())
        .expect("without a standby, a save starts its own thread");
}
