//! The overlay strategy's lesson, beyond the conformance suite: during a save a read sees
//! the overlay first and the frozen base below it, a delete of a base key is a tombstone,
//! a write to a base key copies it up, and the merge at the end leaves one map.

use std::sync::Arc;

use snaplab_core::{Command, Entry, Keyspace, Reply, SaveOptions, SnapshotStrategy, Value, rdb};
use snaplab_overlay::{Overlay, OverlayStore};

fn s(v: &str) -> Vec<u8> {
    v.as_bytes().to_vec()
}

fn set(key: &str, value: &str) -> Command {
    Command::Set { db: 0, key: s(key), value: s(value), expire_at_ms: None }
}

fn string(e: Option<Entry>) -> Option<Vec<u8>> {
    match e.map(|e| e.value) {
        Some(Value::String(v)) => Some(v),
        other => panic!("expected a string, got {other:?}"),
    }
}

/// `k0`..`k9` = `v0`..`v9`, and a list `l` = [a, b].
fn base() -> Keyspace {
    let mut ks = Keyspace::new();
    for i in 0..10 {
        ks.insert(0, format!("k{i}").into_bytes(), Entry::new(Value::String(format!("v{i}").into_bytes())));
    }
    ks.insert(0, s("l"), Entry::new(Value::List(Box::new([s("a"), s("b")].into_iter().collect()))));
    ks
}

/// A read of a key written during the save sees the overlay; one not written sees the base
/// below; a deleted base key reads as absent (its tombstone hides the base's entry), and
/// the dump holds the base as the cut left it.
#[test]
fn reads_during_a_save_see_the_overlay_then_the_base() {
    let store = OverlayStore::from_keyspace(base());
    let (io, at_sync, at_rename) = snaplab_harness::stops::two_stops();
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("dump.rdb");
    let bg = store.bgsave(&dest, &SaveOptions { io: Arc::new(io), ..SaveOptions::default() }).unwrap();
    at_sync.wait();

    store.apply(&set("k1", "new")).unwrap();
    store.apply(&set("fresh", "f")).unwrap();
    assert_eq!(store.apply(&Command::Del { db: 0, key: s("k2") }).unwrap().reply, Reply::Int(1));
    assert_eq!(store.overlay_sizes(), Some((3, 1)), "k1 and fresh in the overlay, and k2's tombstone");

    assert_eq!(string(store.get(0, b"k1")), Some(s("new")), "the overlay's entry hides the base's");
    assert_eq!(string(store.get(0, b"k3")), Some(s("v3")), "a key not written during the save comes from the base");
    assert_eq!(store.get(0, b"k2"), None, "the tombstone hides the base's k2");
    assert_eq!(string(store.get(0, b"fresh")), Some(s("f")));
    assert_eq!(store.len(), 11 - 1 + 1, "11 base keys, one deleted, one created");

    at_sync.release();
    at_rename.release();
    let report = bg.wait().unwrap();
    let (dumped, _) = rdb::load_file(&dest).unwrap();
    assert_eq!(dumped, base(), "the dump is the frozen base, untouched by the overlay");
    assert_eq!(report.figure("tombstones_count"), Some(1));
    assert_eq!(report.figure("overlay_peak_keys_count"), Some(3));
    assert!(report.figure("reads_through_to_base_count").unwrap() >= 1, "the read of k3 looked below");
}

/// A delete of a key that exists only in the overlay leaves no tombstone (nothing below to
/// hide); a delete of a base key does, and a write after it replaces the tombstone.
#[test]
fn tombstones_only_hide_base_keys() {
    let mut overlay = Overlay::default();
    let base = base();
    overlay.apply(&base, &set("only-here", "x"), 0).unwrap();
    overlay.apply(&base, &Command::Del { db: 0, key: s("only-here") }, 0).unwrap();
    assert_eq!(overlay.sizes(), (0, 0), "a key created and deleted during the save leaves nothing");

    let del = overlay.apply(&base, &Command::Del { db: 0, key: s("k4") }, 0).unwrap();
    assert_eq!(del, Reply::Int(1), "DEL of a base key replies that it removed one");
    assert_eq!(overlay.sizes(), (1, 1), "k4's tombstone");
    let mut below = false;
    assert_eq!(overlay.get(&base, 0, b"k4", &mut below), None);
    assert!(!below, "a tombstone answers the read without looking in the base");

    overlay.apply(&base, &set("k4", "back"), 0).unwrap();
    assert_eq!(overlay.sizes(), (1, 0), "the write replaced the tombstone");
    assert_eq!(base.get(0, b"k4").map(|e| &e.value), Some(&Value::String(s("v4"))), "the base never changes");
}

/// A read-modify-write to a base key copies the whole entry up and changes the copy; SET
/// and DEL do not copy (they do not read the old value).
#[test]
fn a_write_to_a_base_key_copies_it_up() {
    let store = OverlayStore::from_keyspace(base());
    let (io, at_sync, at_rename) = snaplab_harness::stops::two_stops();
    let dir = tempfile::tempdir().unwrap();
    let bg = store.bgsave(&dir.path().join("dump.rdb"), &SaveOptions { io: Arc::new(io), ..SaveOptions::default() });
    let bg = bg.unwrap();
    at_sync.wait();
    let push = Command::RPush { db: 0, key: s("l"), elements: vec![s("c")] };
    assert_eq!(store.apply(&push).unwrap().reply, Reply::Int(3), "the push sees the base's two elements");
    store.apply(&set("k5", "replaced")).unwrap();
    store.apply(&Command::Del { db: 0, key: s("k6") }).unwrap();
    at_sync.release();
    at_rename.release();
    let report = bg.wait().unwrap();
    assert_eq!(report.figure("copied_up_count"), Some(1), "only the RPUSH copied its key up");
    let Some(Value::List(l)) = store.get(0, b"l").map(|e| e.value) else { panic!("l is not a list") };
    assert_eq!(l.into_iter().collect::<Vec<_>>(), vec![s("a"), s("b"), s("c")]);
}

/// When the save ends the overlay is merged back: one map again, holding every write of
/// the save (FLUSHDB included), and the next save starts from it.
#[test]
fn the_merge_restores_one_map() {
    let mut initial = base();
    initial.insert(3, s("gone"), Entry::new(Value::String(s("soon"))));
    let store = OverlayStore::from_keyspace(initial);
    let (io, at_sync, at_rename) = snaplab_harness::stops::two_stops();
    let dir = tempfile::tempdir().unwrap();
    let bg = store.bgsave(&dir.path().join("a.rdb"), &SaveOptions { io: Arc::new(io), ..SaveOptions::default() });
    let bg = bg.unwrap();
    at_sync.wait();
    store.apply(&set("k1", "new")).unwrap();
    store.apply(&Command::Del { db: 0, key: s("k2") }).unwrap();
    store.apply(&Command::FlushDb { db: 3 }).unwrap();
    store.apply(&Command::Set { db: 3, key: s("after"), value: s("flush"), expire_at_ms: None }).unwrap();
    let during = store.to_keyspace();
    at_sync.release();
    at_rename.release();
    let report = bg.wait().unwrap();

    assert_eq!(store.overlay_sizes(), None, "after the merge there is one map");
    assert_eq!(store.to_keyspace(), during, "the merge changed nothing a reader sees");
    assert_eq!(store.get(3, b"gone"), None, "the FLUSHDB during the save reached the merged map");
    assert!(report.figure("merge_stall_us").is_some() && report.figure("merge_us").is_some());

    let second = dir.path().join("b.rdb");
    store.save(&second, &SaveOptions::default()).unwrap();
    assert_eq!(rdb::load_file(&second).unwrap().0, during, "the next save starts from the merged map");
}
