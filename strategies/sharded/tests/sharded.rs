//! The sharded strategy's own mechanisms, beyond the conformance suite: serialize-before-
//! mutate is really exercised by writers, growth during a save stays out, and the
//! per-shard output mode round-trips and refuses files from another snapshot.

use snaplab_core::{Command, Entry, Keyspace, SaveOptions, SnapshotStrategy, Value, rdb};
use snaplab_sharded::{ShardedStore, summary};

fn keyspace(n: usize) -> Keyspace {
    let mut ks = Keyspace::new();
    for i in 0..n {
        ks.insert(i % 3, format!("key:{i}").into_bytes(), Entry::new(Value::String(format!("v{i}").into_bytes())));
    }
    ks.add_function(b"#!lua name=lib\nredis.register_function('f', function() return 1 end)".to_vec());
    ks
}

fn set(db: usize, key: String, v: &str) -> Command {
    Command::Set { db, key: key.into_bytes(), value: v.as_bytes().to_vec(), expire_at_ms: None }
}

/// Writes issued right after BGSAVE returns hit buckets the traversal has not reached:
/// the writers capture them first (the report counts them), the dump holds every key as
/// it was at the cut, and new keys (which split buckets during the save) stay out.
#[test]
fn writers_capture_before_mutating() {
    let initial = keyspace(200_000);
    let store = ShardedStore::<1>::from_keyspace(initial.clone());
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("dump.rdb");
    let bg = store.bgsave(&dest, &SaveOptions::default()).unwrap();
    for i in (0..200_000).step_by(97) {
        store.apply(&set(i % 3, format!("key:{i}"), "changed")).unwrap();
    }
    for i in (1..200_000).step_by(89) {
        store.apply(&Command::Del { db: i % 3, key: format!("key:{i}").into_bytes() }).unwrap();
    }
    for i in 0..50_000 {
        store.apply(&set(0, format!("new:{i}"), "n")).unwrap();
    }
    let report = bg.wait().unwrap();
    let by_writers = report.figure("buckets_by_writers_count").unwrap();
    let by_traversal = report.figure("buckets_by_traversal_count").unwrap();
    assert!(by_writers > 0, "no write reached an unvisited bucket: the test did not exercise the mechanism");
    assert!(by_traversal > 0);
    let (dumped, _) = rdb::load_file(&dest).unwrap();
    assert_eq!(dumped, initial, "the dump is the keyspace at the cut");
    assert_eq!(store.len(), 200_000 - (0..200_000).skip(1).step_by(89).count() + 50_000);
}

/// Per-shard mode: the summary names one file per shard, all tagged with one snapshot id;
/// loading through the summary gives the keyspace back; each shard file is a valid dump
/// on its own; the next snapshot replaces the files and removes the old ones.
#[test]
fn per_shard_files_round_trip() {
    let initial = keyspace(20_000);
    let store = ShardedStore::<4>::from_keyspace(initial.clone());
    store.set_per_shard_files(true);
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("dump.rdb");
    store.save(&dest, &SaveOptions::default()).unwrap();

    let (id, files) = summary::read(&dest).unwrap();
    assert_eq!(files.len(), 4);
    let mut total = 0;
    for f in &files {
        assert!(f.file_name().unwrap().to_string_lossy().contains(&id));
        let (ks, s) = rdb::load_file(f).unwrap();
        assert!(s.aux("snaplab-snapshot-id").is_some_and(|v| v == id.as_bytes()));
        total += ks.len();
    }
    assert_eq!(total, 20_000);
    assert_eq!(summary::load(&dest).unwrap(), initial);

    store.apply(&set(0, "after".into(), "x")).unwrap();
    store.save(&dest, &SaveOptions::default()).unwrap();
    let (id2, files2) = summary::read(&dest).unwrap();
    assert_ne!(id, id2);
    assert!(files.iter().all(|f| !f.exists()), "the previous snapshot's shard files are removed");
    assert!(summary::load(&dest).unwrap().get(0, b"after").is_some());

    // A shard file from another snapshot is refused, naming both ids.
    std::fs::copy(&files2[1], dir.path().join("stash")).unwrap();
    store.save(&dest, &SaveOptions::default()).unwrap();
    let (_, files3) = summary::read(&dest).unwrap();
    std::fs::copy(dir.path().join("stash"), &files3[1]).unwrap();
    let err = summary::load(&dest).unwrap_err();
    assert!(matches!(err, summary::LoadError::Inconsistent { .. }), "{err}");
    assert!(err.to_string().contains(&id2), "{err}");
}

/// Canonical output with 4 shards is byte-identical to a single-threaded canonical dump
/// of the same keyspace (the sink sorts what the shards send).
#[test]
fn canonical_output_matches_the_single_threaded_writer() {
    let initial = keyspace(5_000);
    let store = ShardedStore::<4>::from_keyspace(initial.clone());
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("dump.rdb");
    store.save(&dest, &SaveOptions::canonical()).unwrap();
    let opts = rdb::EncodeOptions { canonical: true, ..Default::default() };
    let (expected, _) = rdb::write_view(&initial, Vec::new(), &opts, None).unwrap();
    assert!(std::fs::read(&dest).unwrap() == expected, "canonical bytes differ");
}

/// A summary written by hand (or by an attacker): the given snapshot id and shard names.
fn write_summary(dest: &std::path::Path, id: &str, names: &[&str]) {
    let mut w = rdb::RdbWriter::new(std::fs::File::create(dest).unwrap(), false).unwrap();
    w.aux(b"snaplab-snapshot-id", id.as_bytes()).unwrap();
    w.aux(b"snaplab-shards", names.len().to_string().as_bytes()).unwrap();
    for (i, name) in names.iter().enumerate() {
        w.aux(format!("snaplab-shard-{i}").as_bytes(), name.as_bytes()).unwrap();
    }
    w.finish().unwrap();
}

/// A summary at the destination is untrusted: shard names that are absolute, climb out with
/// `../`, or are plain files the naming scheme did not make, and ids that would add a
/// directory to a name, are refused with a typed error; the next per-shard save deletes none
/// of the files such a summary names.
#[test]
fn hostile_summary_names_are_refused_and_survive_the_next_save() {
    let outside = tempfile::tempdir().unwrap();
    let absolute = outside.path().join("x");
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("data");
    std::fs::create_dir(&dir).unwrap();
    let above = root.path().join("x");
    let beside = dir.join("notes.txt");
    for f in [&absolute, &above, &beside] {
        std::fs::write(f, b"not a shard").unwrap();
    }
    let dest = dir.join("dump.rdb");
    let id = "0123456789abcdef";
    let good0 = format!("dump.rdb.{id}.shard-0.rdb");
    let absolute_name = absolute.to_str().unwrap();
    // (names, the shard refused)
    let cases: [(&[&str], usize); 4] = [
        (&[absolute_name], 0),
        (&[&good0, "../x"], 1),
        (&[&good0, "notes.txt"], 1),
        (&[&good0, &format!("dump.rdb.{id}.shard-0.rdb")], 1),
    ];
    for (names, shard) in cases {
        write_summary(&dest, id, names);
        let err = summary::read(&dest).unwrap_err();
        assert!(matches!(&err, summary::LoadError::ForeignShardName { shard: s, .. } if *s == shard), "{err}");
        let err = summary::load(&dest).unwrap_err();
        assert!(matches!(&err, summary::LoadError::ForeignShardName { .. }), "{err}");
    }
    write_summary(&dest, "../../../../x", &["dump.rdb.../../../../x.shard-0.rdb"]);
    let err = summary::read(&dest).unwrap_err();
    assert!(matches!(&err, summary::LoadError::BadSnapshotId { .. }), "{err}");

    write_summary(&dest, id, &[absolute_name, "../x", "notes.txt"]);
    let store = ShardedStore::<3>::from_keyspace(keyspace(300));
    store.set_per_shard_files(true);
    store.save(&dest, &SaveOptions::default()).unwrap();
    for f in [&absolute, &above, &beside] {
        assert_eq!(std::fs::read(f).unwrap(), b"not a shard", "{} was deleted", f.display());
    }
    assert_eq!(summary::load(&dest).unwrap(), keyspace(300));
}

/// Which call a [`FailNth`] failed.
#[derive(Clone, Debug, PartialEq)]
enum Failed {
    Remove(std::path::PathBuf),
    Open,
    Other,
}

/// The real file system, failing its `fail_at`-th call (0-based, counting every call:
/// create, write, fsync, rename, directory fsync, remove, open), and counting calls.
#[derive(Debug)]
struct FailNth {
    calls: std::sync::atomic::AtomicU64,
    fail_at: u64,
    failed: std::sync::Mutex<Option<Failed>>,
}

impl FailNth {
    fn new(fail_at: u64) -> std::sync::Arc<Self> {
        std::sync::Arc::new(FailNth { calls: Default::default(), fail_at, failed: Default::default() })
    }

    /// Count a call; fail it if it is the chosen one.
    fn call(&self, what: Failed) -> std::io::Result<()> {
        if self.calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == self.fail_at {
            *self.failed.lock().unwrap() = Some(what);
            return Err(std::io::Error::from_raw_os_error(5));
        }
        Ok(())
    }
}

struct CountedFile {
    inner: Box<dyn snaplab_core::IoFile>,
    io: std::sync::Arc<FailNth>,
}

impl std::io::Write for CountedFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.io.call(Failed::Other)?;
        self.inner.write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

impl snaplab_core::IoFile for CountedFile {
    fn sync(&mut self) -> std::io::Result<()> {
        self.io.call(Failed::Other)?;
        self.inner.sync()
    }
}

/// A `SaveIo` over an `Arc<FailNth>` (the files need it after `create` returns).
#[derive(Debug)]
struct Faulty(std::sync::Arc<FailNth>);

impl snaplab_core::SaveIo for Faulty {
    fn create(&self, path: &std::path::Path) -> std::io::Result<Box<dyn snaplab_core::IoFile>> {
        self.0.call(Failed::Other)?;
        let inner = snaplab_core::RealIo.create(path)?;
        Ok(Box::new(CountedFile { inner, io: std::sync::Arc::clone(&self.0) }))
    }
    fn rename(&self, from: &std::path::Path, to: &std::path::Path) -> std::io::Result<()> {
        self.0.call(Failed::Other)?;
        snaplab_core::RealIo.rename(from, to)
    }
    fn sync_dir(&self, dir: &std::path::Path) -> std::io::Result<()> {
        self.0.call(Failed::Other)?;
        snaplab_core::RealIo.sync_dir(dir)
    }
    fn remove(&self, path: &std::path::Path) -> std::io::Result<()> {
        self.0.call(Failed::Remove(path.to_path_buf()))?;
        snaplab_core::RealIo.remove(path)
    }
    fn open(&self, path: &std::path::Path) -> std::io::Result<Box<dyn std::io::Read + Send>> {
        self.0.call(Failed::Open)?;
        snaplab_core::RealIo.open(path)
    }
}

/// Per-shard mode under a failure of each file-system call in turn (the shard files', the
/// summary's, reading the previous summary, removing old files): the destination always
/// loads as the previous snapshot or the new one (the new one whenever the save reports
/// success), files outside the naming scheme survive, and no file is left over that no
/// summary names, except one whose removal was the call that failed.
#[test]
fn per_shard_mode_survives_a_failure_at_every_call() {
    let store = ShardedStore::<3>::from_keyspace(keyspace(3_000));
    store.set_per_shard_files(true);
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("dump.rdb");
    let keep = dir.path().join("keep.txt");
    std::fs::write(&keep, b"not ours").unwrap();
    store.save(&dest, &SaveOptions::default()).unwrap();
    let mut previous = store.to_keyspace();

    // How many calls a save makes when nothing fails.
    let counting = FailNth::new(u64::MAX);
    store
        .save(&dest, &SaveOptions { io: std::sync::Arc::new(Faulty(counting.clone())), ..SaveOptions::default() })
        .unwrap();
    let calls = counting.calls.load(std::sync::atomic::Ordering::SeqCst);
    assert!(calls > 10, "a per-shard save made only {calls} file-system calls");

    // Files a failed call left behind, which later saves have no reason to remove.
    let mut orphans = Vec::new();
    for k in 0..calls {
        store.apply(&set(0, "changed".into(), &format!("{k}"))).unwrap();
        let current = store.to_keyspace();
        let old_files = summary::read(&dest).unwrap().1;
        let io = FailNth::new(k);
        let result =
            store.save(&dest, &SaveOptions { io: std::sync::Arc::new(Faulty(io.clone())), ..SaveOptions::default() });
        let failed = io.failed.lock().unwrap().clone();
        let loaded =
            summary::load(&dest).unwrap_or_else(|e| panic!("call {k} ({failed:?}) failing broke the snapshot: {e}"));
        match &result {
            Ok(_) => assert_eq!(loaded, current, "call {k} ({failed:?}): success, but the old snapshot is in place"),
            Err(e) => assert!(loaded == previous || loaded == current, "call {k} ({failed:?}): {e}: neither snapshot"),
        }
        assert_eq!(std::fs::read(&keep).unwrap(), b"not ours");
        match failed {
            Some(Failed::Remove(path)) => orphans.push(path),
            // A failed open leaves the previous snapshot's files unknown, so not removed.
            Some(Failed::Open) => orphans.extend(old_files),
            _ => {}
        }
        let named = summary::read(&dest).unwrap().1;
        for entry in std::fs::read_dir(dir.path()).unwrap() {
            let path = entry.unwrap().path();
            let allowed = path == dest || path == keep || named.contains(&path) || orphans.contains(&path);
            assert!(allowed, "call {k} ({result:?}): {} left behind", path.display());
        }
        previous = loaded;
    }
}
