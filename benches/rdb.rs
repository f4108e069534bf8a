//! Encode and decode throughput of the RDB codec, in bytes/s and keys/s.
//!
//! One question per group:
//! - `rdb_encode`: how fast does the writer turn a keyspace into a dump (in memory, no
//!   disk), with Redis's LZF string compression on (`lzf`) and off (`raw`)?
//! - `rdb_decode`: how fast does the streaming reader turn a dump back into a keyspace?
//!
//! The dataset is the built-in one (string keys with 100-byte values plus some keys of
//! every other type) at 10,000 and 100,000 keys; setup is outside the timed part.
//! Run with `cargo bench --bench rdb`; CI only checks that it runs (`cargo test --benches`).

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use snaplab_core::rdb::{self, EncodeOptions};
use snaplab_harness::dataset::{self, DatasetSpec};

const SIZES: [usize; 2] = [10_000, 100_000];

fn encode(ks: &snaplab_core::Keyspace, compress: bool) -> Vec<u8> {
    let opts = EncodeOptions { compress, ..EncodeOptions::default() };
    let (out, _) = rdb::write_view(ks, Vec::with_capacity(16 << 20), &opts, None).expect("writing to memory");
    out
}

fn bench_encode(c: &mut Criterion) {
    let mut group = c.benchmark_group("rdb_encode");
    group.sample_size(10);
    for keys in SIZES {
        let ks = dataset::generate(&DatasetSpec { keys, ..DatasetSpec::default() });
        for (name, compress) in [("lzf", true), ("raw", false)] {
            let bytes = encode(&ks, compress).len() as u64;
            group.throughput(Throughput::ElementsAndBytes { elements: ks.len() as u64, bytes });
            group.bench_with_input(BenchmarkId::new(name, keys), &ks, |b, ks| b.iter(|| encode(ks, compress)));
        }
    }
    group.finish();
}

fn bench_decode(c: &mut Criterion) {
    let mut group = c.benchmark_group("rdb_decode");
    group.sample_size(10);
    for keys in SIZES {
        let ks = dataset::generate(&DatasetSpec { keys, ..DatasetSpec::default() });
        let dump = encode(&ks, true);
        group.throughput(Throughput::ElementsAndBytes { elements: ks.len() as u64, bytes: dump.len() as u64 });
        group.bench_with_input(BenchmarkId::new("load", keys), &dump, |b, dump| {
            b.iter(|| rdb::load(dump.as_slice()).expect("our own dump loads"))
        });
    }
    group.finish();
}

criterion_group!(benches, bench_encode, bench_decode);
criterion_main!(benches);
