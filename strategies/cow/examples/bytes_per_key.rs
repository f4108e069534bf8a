//! Bytes per key of cow's keyspace, on the built-in dataset as `snaplab compare` loads it
//! (the dataset written as a dump, then read back with `CowMap::load`), measured with a
//! counting allocator. The same measure as snaplab-harness's `bytes_per_key` example does
//! for snaplab-core's `Keyspace`.
//!
//! ```text
//! cargo run --release -p snaplab-cow --example bytes_per_key [-- KEYS [VALUE_SIZE]]
//! ```
//!
//! Prints a Markdown table. Heap bytes are what the program asked the allocator for
//! (`Layout::size`), "usable" what glibc gave (`malloc_usable_size(3)`: the request rounded
//! up to its chunk size; each chunk also carries an 8-byte size header, glibc
//! `malloc/malloc.c`).

use snaplab_core::{SaveOptions, SnapshotStrategy};
use snaplab_cow::CowMap;
use snaplab_cow::trie::{FANOUT, LEAF_CAPACITY, Trie};
use snaplab_harness::counting_alloc::{Counting, snapshot};
use snaplab_harness::dataset::{self, DatasetSpec};

#[global_allocator]
static ALLOC: Counting = Counting;

/// glibc's chunk for a request of `n` bytes: `n` plus the 8-byte header, rounded up to 16,
/// at least 32 (glibc malloc/malloc.c, request2size).
fn chunk(n: usize) -> usize {
    ((n + 8 + 15) & !15).max(32)
}

fn main() {
    let args: Vec<usize> = std::env::args().skip(1).map(|a| a.parse().expect("KEYS [VALUE_SIZE]")).collect();
    let spec = DatasetSpec {
        keys: args.first().copied().unwrap_or(1_000_000),
        value_size: args.get(1).copied().unwrap_or(100),
        seed: 1,
    };
    let dir = tempfile::tempdir().expect("a temporary directory");
    let dump = dir.path().join("dataset.rdb");
    let key_len = {
        let ks = dataset::generate(&spec);
        snaplab_core::write_snapshot(&ks, &dump, &SaveOptions::default(), "bytes_per_key").expect("writing the dump");
        ks.db(0).iter().next().map_or(0, |(k, _)| k.len())
    };
    let rss0 = snaplab_core::memory::resident_bytes(None).unwrap_or(0);
    let (req0, use0, chunks0) = snapshot();
    let store = CowMap::load(&dump).expect("loading the dump");
    let (req1, use1, chunks1) = snapshot();
    let rss1 = snaplab_core::memory::resident_bytes(None).unwrap_or(0);
    let n = store.len() as u64;
    let per = |b: u64| b as f64 / n as f64;

    // What the key and value bytes need on their own, as `Arc<[u8]>` (two 8-byte counts
    // before the bytes): the part no keyspace layout can save.
    let key = chunk(16 + key_len) as u64;
    let value = chunk(16 + spec.value_size) as u64;
    println!("{n} keys, {key_len}-byte keys, {}-byte values", spec.value_size);
    println!();
    println!("| component | bytes per key | what it is |");
    println!("|---|---:|---|");
    println!("| key bytes | {key} | `Arc<[u8]>` of the key (16-byte counts + {key_len} bytes), as a glibc chunk |");
    println!(
        "| value bytes | {value} | `Arc<[u8]>` of the value (16-byte counts + {} bytes), as a glibc chunk |",
        spec.value_size
    );
    println!(
        "| the map | {:.1} | everything else: nodes, entries, their chunk headers and rounding |",
        per((use1 - use0) + 8 * (chunks1 - chunks0)) - (key + value) as f64
    );
    println!(
        "| total heap, requested | {:.1} | all the load allocated and kept ({:.2} chunks a key) |",
        per(req1 - req0),
        per(chunks1 - chunks0)
    );
    println!(
        "| total heap, usable + headers | {:.1} | what glibc handed out, with its 8-byte headers |",
        per((use1 - use0) + 8 * (chunks1 - chunks0))
    );
    println!("| resident growth | {:.1} | the process's resident size, before and after the load |", per(rss1 - rss0));
    println!();
    println!("size_of::<CowEntry>() = {}", std::mem::size_of::<snaplab_cow::value::CowEntry>());
    drop(store);

    // The trie's shape for the same keys: the store keeps its tries private, so build one.
    let ks = dataset::generate(&spec);
    let mut trie: Trie<()> = Trie::new();
    for (k, _) in ks.db(0).iter() {
        trie.insert(k, ());
    }
    trie.shrink_to_fit();
    let s = trie.stats();
    println!(
        "trie of db 0 (fan-out {FANOUT}, leaves of up to {LEAF_CAPACITY}): {} branches, {} leaves, {:.1} keys a leaf, \
         deepest node at level {}",
        s.branches,
        s.leaves,
        s.entries as f64 / s.leaves as f64,
        s.depth
    );
}
