//! The cow strategy's own figures, beyond the conformance suite.

use std::sync::Arc;

use snaplab_core::{Command, Entry, Keyspace, SaveOptions, SnapshotStrategy, Value};
use snaplab_cow::CowMap;

fn set(key: &str, value: &[u8]) -> Command {
    Command::Set { db: 0, key: key.as_bytes().to_vec(), value: value.to_vec(), expire_at_ms: None }
}

/// The write figure counts every write made while the snapshot was held, repeats to an
/// already-copied path included, and its name says so (it does not claim each copied a path).
#[test]
fn write_figure_counts_writes_while_the_snapshot_is_held() {
    let mut ks = Keyspace::new();
    for i in 0..100 {
        ks.insert(0, format!("k{i}").into_bytes(), Entry::new(Value::String(b"v".to_vec())));
    }
    let store = CowMap::from_keyspace(ks);
    let (io, at_sync, at_rename) = snaplab_harness::stops::two_stops();
    let dir = tempfile::tempdir().unwrap();
    let opts = SaveOptions { io: Arc::new(io), ..SaveOptions::default() };
    let bg = store.bgsave(&dir.path().join("dump.rdb"), &opts).unwrap();
    at_sync.wait();
    // 10 distinct keys, then the same key 20 more times: 30 writes, 11 distinct paths.
    for i in 0..10 {
        store.apply(&set(&format!("k{i}"), b"new")).unwrap();
    }
    for n in 0..20 {
        store.apply(&set("k0", format!("again {n}").as_bytes())).unwrap();
    }
    at_sync.release();
    at_rename.release();
    let report = bg.wait().unwrap();
    assert_eq!(report.figure("writes_while_snapshot_held_count"), Some(30));
    assert_eq!(report.figure("writes_that_copied_a_path_count"), None, "the old name claimed too much");
}
