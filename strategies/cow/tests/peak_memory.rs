//! cow's `peak_extra_memory_bytes`, in a test binary of its own: it reads this process's
//! resident size, which other tests running in parallel would disturb.

use std::sync::Arc;

use snaplab_core::{Command, Entry, Keyspace, SaveOptions, SnapshotStrategy, Value};
use snaplab_cow::CowMap;

/// Four values of this size: each above glibc's largest mmap threshold (32 MiB), so each is
/// its own mapping, resident while it lives and returned to the kernel when freed.
const BIG: usize = 64 << 20;

/// Memory allocated after the cut and freed before the save ends still counts: the figure
/// is the peak during the save, not the growth from the cut to the end.
#[test]
fn peak_extra_memory_is_a_peak() {
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
    for i in 0..4 {
        let cmd =
            Command::Set { db: 0, key: format!("big{i}").into_bytes(), value: vec![b'x'; BIG], expire_at_ms: None };
        store.apply(&cmd).unwrap();
    }
    at_sync.release();
    // Held at the rename: the save has gone past its fsync with the 256 MiB resident.
    at_rename.wait();
    for i in 0..4 {
        store.apply(&Command::Del { db: 0, key: format!("big{i}").into_bytes() }).unwrap();
    }
    at_rename.release();
    let report = bg.wait().unwrap();
    let peak = report.figure("peak_extra_memory_bytes").unwrap();
    assert!(peak >= 3 * BIG as u64, "peak {peak} bytes: the 256 MiB that lived during the save is missing");
    // And not an unrelated number: at most what was allocated plus 64 MiB of slack.
    assert!(peak <= 4 * BIG as u64 + (64 << 20), "peak {peak} bytes");
}
