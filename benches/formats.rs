//! Encode and decode throughput of every snapshot format and compression, in bytes/s (of
//! the file) and keys/s.
//!
//! One question per group:
//! - `format_encode`: how fast does each codec turn a keyspace into a file (in memory, no
//!   disk)? Functions are codec ids (`rdb`, `rdb+lzf`, `json+gzip`, ...); `<id>-parallel`
//!   is the same codec through the parallel encoder on a pool of every core (left out for
//!   gzip, whose single compressor stream is the bottleneck either way).
//! - `format_decode`: how fast does each streaming decoder turn the file back into a
//!   keyspace?
//!
//! The dataset is the built-in one (string keys with 100-byte values plus some keys of
//! every other type) at 10,000 and 100,000 keys; setup is outside the timed part.
//! Run with `cargo bench --bench formats`; CI only checks that it runs (`cargo test --benches`).

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use snaplab_core::Keyspace;
use snaplab_formats::{self as formats, Codec, Compression};
use snaplab_harness::dataset::{self, DatasetSpec};

const SIZES: [usize; 2] = [10_000, 100_000];

fn encode(codec: Codec, ks: &Keyspace) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 << 20);
    codec.encode(ks, &mut out, None).expect("writing to memory");
    out
}

fn bench_encode(c: &mut Criterion) {
    let mut group = c.benchmark_group("format_encode");
    group.sample_size(10);
    let pool = rayon::ThreadPoolBuilder::new().build().expect("a thread pool");
    for keys in SIZES {
        let ks = dataset::generate(&DatasetSpec { keys, ..DatasetSpec::default() });
        for codec in formats::codecs() {
            let bytes = encode(codec, &ks).len() as u64;
            group.throughput(Throughput::ElementsAndBytes { elements: ks.len() as u64, bytes });
            group.bench_with_input(BenchmarkId::new(codec.id(), keys), &ks, |b, ks| b.iter(|| encode(codec, ks)));
            if codec.compression != Compression::Gzip {
                group.bench_with_input(BenchmarkId::new(format!("{}-parallel", codec.id()), keys), &ks, |b, ks| {
                    b.iter(|| {
                        let mut out = Vec::with_capacity(16 << 20);
                        codec.encode_parallel(ks, &mut out, &pool, None).expect("writing to memory");
                        out
                    })
                });
            }
        }
    }
    group.finish();
}

fn bench_decode(c: &mut Criterion) {
    let mut group = c.benchmark_group("format_decode");
    group.sample_size(10);
    for keys in SIZES {
        let ks = dataset::generate(&DatasetSpec { keys, ..DatasetSpec::default() });
        for codec in formats::codecs() {
            let file = encode(codec, &ks);
            group.throughput(Throughput::ElementsAndBytes { elements: ks.len() as u64, bytes: file.len() as u64 });
            group.bench_with_input(BenchmarkId::new(codec.id(), keys), &file, |b, file| {
                b.iter(|| codec.decode(file.as_slice()).expect("our own file decodes"))
            });
        }
    }
    group.finish();
}

criterion_group!(benches, bench_encode, bench_decode);
criterion_main!(benches);
