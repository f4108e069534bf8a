//! Bytes per key of snaplab-sharded's tables, by component, on the built-in dataset as
//! `snaplab compare` loads it (the dataset written as a dump, then read back with
//! `ShardedStore::load`, the pipelined loader), measured with a counting allocator. The
//! sharded counterpart of `bytes_per_key` (core's `Keyspace`).
//!
//! ```text
//! cargo run --release -p snaplab-harness --example sharded_bytes_per_key [-- KEYS [VALUE_SIZE]]
//! ```
//!
//! Prints a Markdown table. Heap bytes are what the program asked the allocator for
//! (`Layout::size`), "usable" what glibc gave (`malloc_usable_size(3)`, the request rounded
//! up to its chunk size; each chunk also carries an 8-byte size header, glibc
//! `malloc/malloc.c`). The tables' components come from `Table::heap_bytes`.

#![allow(unsafe_code)] // malloc_trim(3), an FFI call; see the SAFETY note.

use snaplab_core::{SaveOptions, SnapshotStrategy, Value};
use snaplab_harness::counting_alloc::{Counting, snapshot, usable};
use snaplab_harness::dataset::{self, DatasetSpec};
use snaplab_sharded::ShardedStore;
use snaplab_sharded::table::TableBytes;

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
        snaplab_core::write_snapshot(&ks, &dump, &SaveOptions::default(), "sharded_bytes_per_key")
            .expect("writing the dump");
    }
    // Give the dataset's freed memory back to the kernel first, or the load reuses it and
    // the resident growth says little.
    // SAFETY: malloc_trim(3) only releases free memory; it may be called at any time.
    unsafe { libc::malloc_trim(0) };
    let rss0 = snaplab_core::memory::resident_bytes(None).unwrap_or(0);
    let (req0, use0, chunks0) = snapshot();
    // As `snaplab compare` builds it: one shard per available core (or `$SNAPLAB_SHARDS`).
    let store = ShardedStore::<0>::load(&dump).expect("loading the dump");
    let (req1, use1, chunks1) = snapshot();
    let rss1 = snaplab_core::memory::resident_bytes(None).unwrap_or(0);

    // The string keys of db 0, the bulk of the dataset, and the tables' own bytes.
    let (mut n, mut klen, mut kuse, mut vlen, mut vcap, mut vuse) = (0u64, 0, 0, 0, 0, 0);
    let mut t = TableBytes::default();
    store.for_each_table(|db, table| {
        t += table.heap_bytes();
        for (key, entry) in table.iter() {
            if let (0, Value::String(v)) = (db, &entry.value) {
                n += 1;
                klen += key.len() as u64;
                kuse += usable(key.as_ptr());
                vlen += v.len() as u64;
                vcap += v.capacity() as u64;
                vuse += usable(v.as_ptr());
            }
        }
    });
    let per = |b: usize| b as f64 / n as f64;
    let perq = |b: u64| b as f64 / n as f64;
    println!("{} keys in all, {n} of them strings in db 0; {} shards", store.len(), store.shards());
    println!();
    println!("| component | bytes per key | what it is |");
    println!("|---|---:|---|");
    println!("| bucket array | {:.1} | each table's vector of buckets, at its capacity |", per(t.bucket_array));
    println!("| bucket headers | {:.1} | what sits beside each bucket's entries in its `Arc` |", per(t.bucket_headers));
    println!("| slots | {:.1} | the slots holding an entry |", per(t.slots));
    println!("| spare slots | {:.1} | slots allocated and empty |", per(t.spare_slots));
    // What glibc handed out for everything but the string keys and values of db 0: the
    // tables, and the few hundred keys of other types (some with 1,000 elements).
    let held = (use1 - use0) + 8 * (chunks1 - chunks0);
    let table_held = held - kuse - vuse - 16 * n;
    let table_req = t.bucket_array + t.bucket_headers + t.slots + t.spare_slots;
    println!(
        "| chunk headers, rounding, the rest | {:.1} | the tables' {} chunks as glibc rounds them, with 8-byte headers; the keys of other types |",
        perq(table_held) - per(table_req),
        t.chunks
    );
    println!(
        "| **table and the rest** | **{:.1}** | everything but the string keys' and values' own chunks |",
        perq(table_held)
    );
    println!(
        "| key bytes | {:.1} | the key itself; usable {:.1} after the allocator's rounding |",
        perq(klen),
        perq(kuse)
    );
    println!(
        "| value bytes | {:.1} | the string (capacity {:.1}); usable {:.1} after rounding |",
        perq(vlen),
        perq(vcap),
        perq(vuse)
    );
    println!("| key and value chunk headers | {:.1} | 8 bytes per heap chunk |", perq(16 * n));
    println!(
        "| total heap, requested | {:.1} | all the load allocated and kept ({} chunks), every db and type, per string key |",
        perq(req1 - req0),
        chunks1 - chunks0
    );
    println!(
        "| total heap, usable + headers | {:.1} | what glibc handed out, with its 8-byte headers ({:.1} MiB) |",
        perq((use1 - use0) + 8 * (chunks1 - chunks0)),
        ((use1 - use0) + 8 * (chunks1 - chunks0)) as f64 / (1 << 20) as f64
    );
    println!(
        "| resident growth | {:.1} | the process's resident size, before and after the load ({:.1} MiB) |",
        perq(rss1 - rss0),
        (rss1 - rss0) as f64 / (1 << 20) as f64
    );
}
