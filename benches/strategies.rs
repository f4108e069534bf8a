//! Every strategy in `snaplab::registry()` side by side, on the built-in dataset.
//!
//! One question per group; the strategies are the functions, the number of string keys the
//! parameter (`bgsave/cow/1000000`):
//! - `bgsave`: how long from calling `bgsave` to a finished snapshot (`wait()` returned)?
//!   Each save writes, fsyncs and renames a real dump in a temporary directory, so the disk
//!   is part of the figure.
//! - `time_to_cut`: how long does the `bgsave` call itself take, i.e. until the cut is taken
//!   and writers may go on? Only the call is timed; the rest of the save is waited for
//!   outside the measurement.
//! - `steady_writes`: what does each strategy's bookkeeping cost ordinary writes when no
//!   save runs? `SET` overwriting uniformly random existing keys with a 100-byte value.
//!
//! Sizes are 10,000, 100,000 and 1,000,000 string keys of 100 bytes (plus a few hundred keys
//! of every other type); throughput counts the string keys (writes for `steady_writes`).
//! Stores are built outside the timed part, one at a time and only for the benchmarks a
//! filter selects, and dropped before the next (a 1,000,000-key store takes ~400 MiB).
//! `sharded` uses `$SNAPLAB_SHARDS` shards, else one per core; the count is printed.
//!
//! Run with `cargo bench --bench strategies`: about 11 minutes on 2 cores, most of it the
//! 1,000,000-key saves (`-- --quick` still takes about 8; a filter such as
//! `-- time_to_cut/fork` runs less). CI only checks that it runs
//! (`cargo test --benches`), which uses 10,000 keys alone and takes a few seconds.

use std::hint::black_box;
use std::path::Path;
use std::sync::{Arc, Once};
use std::time::{Duration, Instant};

use criterion::{Bencher, BenchmarkId, Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use snaplab_core::{Command, SaveOptions};
use snaplab_harness::dataset::{self, DatasetSpec};
use snaplab_harness::registry::{DynStrategy, StrategyEntry};

/// Numbers of string keys in a full run.
const SIZES: [usize; 3] = [10_000, 100_000, 1_000_000];

/// `SET`s applied per `steady_writes` iteration: small enough (~0.1 ms) that criterion's
/// 100 linear samples fit in the budget, large enough that the loop's own cost vanishes.
const WRITES_PER_ITER: usize = 100;

/// Pre-generated `SET`s per size: 65,536 random keys are far more than the caches hold, so
/// the writes miss like uniform ones would, at ~10 MiB of commands.
const WRITE_POOL: usize = 1 << 16;

/// Whether this is a real benchmark run. `cargo bench` passes `--bench`; criterion's test
/// mode (`cargo test --benches`, or `cargo bench -- --test`) runs each benchmark once, so
/// there only the smallest size runs, to keep CI quick.
fn full_run() -> bool {
    let args: Vec<String> = std::env::args().collect();
    args.iter().any(|a| a == "--bench") && !args.iter().any(|a| a == "--test")
}

/// The sizes this run uses, in string keys.
fn sizes() -> &'static [usize] {
    if full_run() { &SIZES } else { &SIZES[..1] }
}

/// A store of `entry`'s strategy holding the built-in dataset with `keys` string keys.
fn build(entry: &StrategyEntry, keys: usize) -> Arc<dyn DynStrategy> {
    static SHARDS: Once = Once::new();
    if entry.name == "sharded" {
        SHARDS.call_once(|| eprintln!("sharded: {} shards", snaplab_sharded::default_shards()));
    }
    (entry.build)(dataset::generate(&DatasetSpec { keys, ..DatasetSpec::default() }))
}

/// Wall-clock budget per benchmark of a save group: a whole save is one iteration, so the
/// big sizes need more time for their 10 samples. A 1,000,000-key save takes 1 to 2 s, so
/// there criterion warns that 10 samples do not fit and takes its minimum, one save each:
/// expected, and cheaper than a budget that would double the saves.
fn save_budget(keys: usize) -> Duration {
    Duration::from_secs(match keys {
        0..=10_000 => 3,
        10_001..=100_000 => 5,
        _ => 10,
    })
}

/// A group in which every iteration is one whole save of each strategy's store into a
/// temporary directory; `routine` times what the group asks about.
fn save_group(c: &mut Criterion, name: &str, routine: impl Fn(&mut Bencher, &dyn DynStrategy, &Path, &SaveOptions)) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let dest = dir.path().join("dump.rdb");
    let opts = SaveOptions::default();
    let mut group = c.benchmark_group(name);
    // Flat: one sample of a 1,000,000-key save already takes a second, and linear sampling
    // would need at least 55 of them.
    group.sample_size(10).sampling_mode(SamplingMode::Flat).warm_up_time(Duration::from_secs(1));
    for &keys in sizes() {
        group.throughput(Throughput::Elements(keys as u64)).measurement_time(save_budget(keys));
        for entry in snaplab::registry().entries() {
            // Built on the first call, so filtered-out benchmarks build nothing; dropped at
            // the end of the loop body, before the next store is built.
            let mut store = None;
            group.bench_function(BenchmarkId::new(entry.name, keys), |b| {
                let store = store.get_or_insert_with(|| build(entry, keys));
                routine(b, store.as_ref(), &dest, &opts);
            });
        }
    }
    group.finish();
}

fn bench_bgsave(c: &mut Criterion) {
    save_group(c, "bgsave", |b, store, dest, opts| {
        b.iter(|| store.bgsave(dest, opts).and_then(|save| save.wait()).expect("the save succeeds"))
    });
}

fn bench_time_to_cut(c: &mut Criterion) {
    save_group(c, "time_to_cut", |b, store, dest, opts| {
        b.iter_custom(|iters| {
            let mut cut = Duration::ZERO;
            for _ in 0..iters {
                let started = Instant::now();
                let save = store.bgsave(dest, opts).expect("the save starts");
                cut += started.elapsed();
                // Outside the measured span: a second bgsave would be refused while this
                // one runs.
                save.wait().expect("the save succeeds");
            }
            cut
        })
    });
}

/// [`WRITE_POOL`] `SET`s of random 100-byte values to uniformly random existing string keys
/// of the `keys`-key dataset, from a fixed seed.
fn write_pool(keys: usize) -> Vec<Command> {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let value_size = DatasetSpec::default().value_size;
    (0..WRITE_POOL)
        .map(|_| Command::Set {
            db: 0,
            key: format!("key:{:07}", rng.random_range(0..keys)).into_bytes(),
            value: (0..value_size).map(|_| rng.random_range(b'a'..=b'z')).collect(),
            expire_at_ms: None,
        })
        .collect()
}

fn bench_steady_writes(c: &mut Criterion) {
    let mut group = c.benchmark_group("steady_writes");
    group
        .throughput(Throughput::Elements(WRITES_PER_ITER as u64))
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    for &keys in sizes() {
        let pool = write_pool(keys);
        for entry in snaplab::registry().entries() {
            let mut store = None;
            // Where the next iteration starts in the pool, so successive iterations write
            // different keys.
            let mut next = 0;
            group.bench_function(BenchmarkId::new(entry.name, keys), |b| {
                let store = store.get_or_insert_with(|| build(entry, keys));
                b.iter(|| {
                    for i in next..next + WRITES_PER_ITER {
                        black_box(store.apply(&pool[i % WRITE_POOL]).expect("SET on a string key succeeds"));
                    }
                    next = (next + WRITES_PER_ITER) % WRITE_POOL;
                });
            });
        }
    }
    group.finish();
}

criterion_group!(benches, bench_bgsave, bench_time_to_cut, bench_steady_writes);
criterion_main!(benches);
