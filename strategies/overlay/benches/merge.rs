//! `merge`: how long does the merge at the end of a save hold the write lock, by the
//! number of distinct keys written during the save? Every write that arrives meanwhile
//! waits that long.
//!
//! Each iteration: a store of 1,000,000 string keys (100-byte values) starts a BGSAVE held
//! at its fsync, `n` distinct base keys are overwritten (the overlay then holds `n`
//! entries), the save is let go, and the time is the report's `merge_stall_us`. Only the
//! merge's lock hold is timed (`iter_custom`); the writes and the serialization are not.
//!
//! Run with `cargo bench -p snaplab-overlay --bench merge`. CI only checks that it runs
//! (`cargo test --benches`), with 10,000 base keys.

use std::sync::Arc;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use snaplab_core::{Command, Entry, Keyspace, SaveOptions, SnapshotStrategy, Value};
use snaplab_overlay::OverlayStore;

/// Whether this is a real benchmark run (`cargo bench` passes `--bench`), not criterion's
/// test mode, which runs each benchmark once.
fn full_run() -> bool {
    let args: Vec<String> = std::env::args().collect();
    args.iter().any(|a| a == "--bench") && !args.iter().any(|a| a == "--test")
}

fn key(i: usize) -> Vec<u8> {
    format!("key:{i:07}").into_bytes()
}

fn bench_merge(c: &mut Criterion) {
    let base_keys = if full_run() { 1_000_000 } else { 10_000 };
    let mut ks = Keyspace::new();
    for i in 0..base_keys {
        ks.insert(0, key(i), Entry::new(Value::String(vec![b'v'; 100])));
    }
    let store = OverlayStore::from_keyspace(ks);
    let dir = tempfile::tempdir().expect("a temporary directory");
    let dest = dir.path().join("dump.rdb");
    let mut group = c.benchmark_group("merge");
    group.sample_size(10).sampling_mode(SamplingMode::Flat).warm_up_time(Duration::from_millis(500));
    for written in [1_000, 10_000, 100_000].into_iter().filter(|&n| n <= base_keys) {
        group.throughput(Throughput::Elements(written as u64));
        group.bench_function(BenchmarkId::new("overlay", written), |b| {
            b.iter_custom(|iters| {
                let mut stalled = Duration::ZERO;
                for _ in 0..iters {
                    let (io, at_sync, at_rename) = snaplab_harness::stops::two_stops();
                    let opts = SaveOptions { io: Arc::new(io), ..SaveOptions::default() };
                    let bg = store.bgsave(&dest, &opts).expect("the save starts");
                    at_sync.wait();
                    for i in 0..written {
                        let cmd = Command::Set { db: 0, key: key(i), value: b"new".to_vec(), expire_at_ms: None };
                        store.apply(&cmd).expect("SET is accepted");
                    }
                    at_sync.release();
                    at_rename.release();
                    let report = bg.wait().expect("the save succeeds");
                    stalled += Duration::from_micros(report.figure("merge_stall_us").unwrap_or(0));
                }
                stalled
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench_merge);
criterion_main!(benches);
