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

#![allow(unsafe_code)] // A counting allocator is an `unsafe impl`; see the SAFETY notes.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering};

use snaplab_core::{SaveOptions, SnapshotStrategy};
use snaplab_cow::CowMap;
use snaplab_cow::trie::{FANOUT, LEAF_CAPACITY, Trie};
use snaplab_harness::dataset::{self, DatasetSpec};

/// The system allocator, counting live bytes requested, live bytes usable, live chunks.
struct Counting;

static REQUESTED: AtomicU64 = AtomicU64::new(0);
static USABLE: AtomicU64 = AtomicU64::new(0);
static CHUNKS: AtomicU64 = AtomicU64::new(0);

fn usable(p: *const u8) -> u64 {
    // SAFETY: `p` is a live pointer returned by the system allocator (glibc malloc), which
    // is what malloc_usable_size accepts.
    unsafe { libc::malloc_usable_size(p as *mut libc::c_void) as u64 }
}

fn count_in(p: *mut u8, size: usize) {
    if !p.is_null() {
        REQUESTED.fetch_add(size as u64, Ordering::Relaxed);
        USABLE.fetch_add(usable(p), Ordering::Relaxed);
        CHUNKS.fetch_add(1, Ordering::Relaxed);
    }
}

fn count_out(p: *mut u8, size: usize) {
    REQUESTED.fetch_sub(size as u64, Ordering::Relaxed);
    USABLE.fetch_sub(usable(p), Ordering::Relaxed);
    CHUNKS.fetch_sub(1, Ordering::Relaxed);
}

// SAFETY: every call is forwarded to `System` with the caller's own arguments; the counting
// only reads the pointers `System` returned, while they are live.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        // SAFETY: the caller upholds `alloc`'s contract, which `System.alloc` shares.
        let p = unsafe { System.alloc(l) };
        count_in(p, l.size());
        p
    }
    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        // SAFETY: as for `alloc`.
        let p = unsafe { System.alloc_zeroed(l) };
        count_in(p, l.size());
        p
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        count_out(p, l.size());
        // SAFETY: `p` came from this allocator (so from `System`) with layout `l`.
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new_size: usize) -> *mut u8 {
        count_out(p, l.size());
        // SAFETY: `p` came from `System` with layout `l`; the caller upholds the rest.
        let q = unsafe { System.realloc(p, l, new_size) };
        if q.is_null() {
            // The old block is still live.
            count_in(p, l.size());
        } else {
            count_in(q, new_size);
        }
        q
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

fn snapshot() -> (u64, u64, u64) {
    (REQUESTED.load(Ordering::Relaxed), USABLE.load(Ordering::Relaxed), CHUNKS.load(Ordering::Relaxed))
}

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
