//! Bytes per key of snaplab-core's `Keyspace`, by component, on the built-in dataset as
//! `snaplab compare` loads it (the dataset written as a dump, then read back with
//! `rdb::load_file`), measured with a counting allocator.
//!
//! ```text
//! cargo run --release -p snaplab-harness --example bytes_per_key [-- KEYS [VALUE_SIZE]]
//! ```
//!
//! Prints a Markdown table. Heap bytes are what the program asked the allocator for
//! (`Layout::size`), "usable" what glibc gave (`malloc_usable_size(3)`, the request rounded
//! up to its chunk size; each chunk also carries an 8-byte size header, glibc
//! `malloc/malloc.c`). The table's own allocation is `Db::table_bytes`: the vector of
//! `(key, Entry)` pairs at its capacity, plus the index, a power-of-two number of buckets
//! (7/8 of them usable) of a 4-byte index and a control byte each.

use std::mem::size_of;

use snaplab_core::{Bytes, Entry, SaveOptions, Value, rdb};
use snaplab_harness::counting_alloc::{Counting, snapshot, usable};
use snaplab_harness::dataset::{self, DatasetSpec};

#[global_allocator]
static ALLOC: Counting = Counting;

fn main() {
    let args: Vec<usize> = std::env::args().skip(1).map(|a| a.parse().expect("KEYS [VALUE_SIZE]")).collect();
    let spec = DatasetSpec {
        keys: args.first().copied().unwrap_or(1_000_000),
        value_size: args.get(1).copied().unwrap_or(100),
        seed: 1,
    };
    let dir = tempfile::tempdir().expect("a temporary directory");
    let dump = dir.path().join("dataset.rdb");
    {
        let ks = dataset::generate(&spec);
        snaplab_core::write_snapshot(&ks, &dump, &SaveOptions::default(), "bytes_per_key").expect("writing the dump");
    }
    let rss0 = snaplab_core::memory::resident_bytes(None).unwrap_or(0);
    let (req0, use0, chunks0) = snapshot();
    let (ks, _) = rdb::load_file(&dump).expect("loading the dump");
    let (req1, use1, chunks1) = snapshot();
    let rss1 = snaplab_core::memory::resident_bytes(None).unwrap_or(0);

    // The string keys of db 0: the bulk of the dataset.
    let db = ks.db(0);
    let (mut n, mut klen, mut kcap, mut kuse, mut vlen, mut vcap, mut vuse, mut expiring) = (0u64, 0, 0, 0, 0, 0, 0, 0);
    for (key, entry) in db.iter() {
        if let Value::String(v) = &entry.value {
            n += 1;
            klen += key.len() as u64;
            kcap += key.capacity() as u64;
            kuse += usable(key.as_ptr());
            vlen += v.len() as u64;
            vcap += v.capacity() as u64;
            vuse += usable(v.as_ptr());
            expiring += entry.expire_at_ms.is_some() as u64;
        }
    }
    let pair = size_of::<(Bytes, Entry)>() as u64;
    let table = db.table_bytes() as u64;
    let all = ks.len() as u64;
    let per = |b: u64| b as f64 / n as f64;
    println!(
        "{} keys in all, {n} of them strings in db 0 ({expiring} with an expiry); db 0 holds {} keys, capacity {}",
        all,
        db.len(),
        db.capacity()
    );
    println!();
    println!("| component | bytes per key | what it is |");
    println!("|---|---:|---|");
    println!(
        "| table | {:.1} | the pairs' vector, `size_of::<(Vec<u8>, Entry)>()` = {pair} a key (key header 24, `Entry` {}: \
         `Value` {}, `Option<i64>` expiry {}), plus the index, 5 bytes a bucket (`u32` + control byte) |",
        per(table),
        size_of::<Entry>(),
        size_of::<Value>(),
        size_of::<Option<i64>>()
    );
    println!(
        "| key bytes | {:.1} | the key itself (capacity {:.1}); usable {:.1} after the allocator's rounding |",
        per(klen),
        per(kcap),
        per(kuse)
    );
    println!(
        "| value bytes | {:.1} | the string (capacity {:.1}); usable {:.1} after rounding |",
        per(vlen),
        per(vcap),
        per(vuse)
    );
    println!(
        "| allocator rounding | {:.1} | usable minus requested, keys and values |",
        per((kuse - klen) + (vuse - vlen))
    );
    println!("| chunk headers | {:.1} | 8 bytes per heap chunk (key, value) |", per(16 * n));
    println!(
        "| total heap, requested | {:.1} | all the load allocated and kept ({} chunks), every db and type, per string key |",
        per(req1 - req0),
        chunks1 - chunks0
    );
    println!(
        "| total heap, usable + headers | {:.1} | what glibc handed out, with its 8-byte headers |",
        per((use1 - use0) + 8 * (chunks1 - chunks0))
    );
    println!("| resident growth | {:.1} | the process's resident size, before and after the load |", per(rss1 - rss0));
    println!();
    println!("payload (key + value bytes): {:.1} per key", per(klen + vlen));
}
