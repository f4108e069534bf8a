//! Loading holds the data, at the cost per element the reader documents.
//!
//! A dump can describe a huge collection in few bytes: one quicklist node holding an
//! LZF-compressed listpack of ten million one-byte integers takes about 227 KB on disk, and
//! every length in it is legal. Checking streams such values (`tests/check_memory.rs`);
//! loading into a [`snaplab_core::Keyspace`] must hold them, and the tests here hold it to at
//! most the bytes per element documented in [`snaplab_core::rdb::load_cost`], measured with a
//! counting allocator, on crafted dumps of that shape: a list, a set, a hash and a sorted set,
//! each one LZF-compressed listpack.
//!
//! Dumps are assembled by hand from the layouts in Redis src/listpack.c (entry encodings and
//! back-lengths), src/quicklist.h (container 2 = packed) and src/rdb.c (`rdbSaveObject`).

// A counting #[global_allocator] is the only way to see every byte the reader allocates; it
// forwards each call to `System` unchanged.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use snaplab_core::rdb::encode::{put_len, put_string};
use snaplab_core::rdb::{self, RdbWriter, load_cost};
use snaplab_core::{Keyspace, Value};

// ---- a counting allocator: live and peak bytes, per thread ----------------------------------

/// Forwards to `System` and, on a thread that is measuring, tracks the bytes it has live and
/// the peak of that figure. Requested sizes are counted, not the allocator's own overhead.
struct Counting;

thread_local! {
    // `const` initialisers and `Cell`s without destructors: touching these never allocates,
    // so the allocator can use them without recursing into itself.
    static MEASURING: Cell<bool> = const { Cell::new(false) };
    static LIVE: Cell<i64> = const { Cell::new(0) };
    static PEAK: Cell<i64> = const { Cell::new(0) };
}

fn grew(delta: i64) {
    // `try_with`: an allocation may happen while the thread's locals are being torn down.
    let _ = MEASURING.try_with(|m| {
        if m.get() {
            let _ = LIVE.try_with(|live| {
                let now = live.get() + delta;
                live.set(now);
                let _ = PEAK.try_with(|p| p.set(p.get().max(now)));
            });
        }
    });
}

// SAFETY: every method passes its arguments unchanged to `System`, which upholds the
// `GlobalAlloc` contract; `grew` only touches thread-local `Cell`s, never allocates and never
// unwinds.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        grew(layout.size() as i64);
        // SAFETY: the caller guarantees `layout` has a non-zero size, as `System.alloc` requires.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        grew(layout.size() as i64);
        // SAFETY: as for `alloc`, the caller's `layout` is valid for `System.alloc_zeroed`.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        grew(-(layout.size() as i64));
        // SAFETY: `ptr` was allocated by this allocator, i.e. by `System`, with `layout`.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        grew(new_size as i64 - layout.size() as i64);
        // SAFETY: `ptr` came from `System` with `layout`, and the caller guarantees `new_size`
        // is non-zero and does not overflow `isize` when rounded to `layout.align()`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Run `f` on this thread; its result and the peak of bytes it held live at once.
fn peak_live_bytes<T>(f: impl FnOnce() -> T) -> (T, u64) {
    LIVE.with(|l| l.set(0));
    PEAK.with(|p| p.set(0));
    MEASURING.with(|m| m.set(true));
    let out = f();
    MEASURING.with(|m| m.set(false));
    (out, PEAK.with(Cell::get).max(0) as u64)
}

// ---- crafted dumps --------------------------------------------------------------------------

/// A listpack (Redis src/listpack.c): total bytes u32 LE, element count u16 LE (65535 when
/// it does not fit: "unknown"), the entries, then 0xFF. Each entry is its encoding and data
/// followed by a back-length of the entry's size (one byte here: every entry is < 128 bytes).
fn listpack(entries: impl Iterator<Item = Vec<u8>>) -> Vec<u8> {
    let mut lp = vec![0; 6];
    let mut count = 0usize;
    for e in entries {
        assert!(e.len() < 128, "one-byte back-lengths only");
        lp.extend_from_slice(&e);
        lp.push(e.len() as u8);
        count += 1;
    }
    lp.push(0xFF);
    let total = lp.len() as u32;
    lp[0..4].copy_from_slice(&total.to_le_bytes());
    lp[4..6].copy_from_slice(&(count.min(65535) as u16).to_le_bytes());
    lp
}

/// A listpack entry holding the 7-bit unsigned integer `v` (encoding `0xxxxxxx`).
fn lp_uint7(v: u8) -> Vec<u8> {
    assert!(v < 128);
    vec![v]
}

/// A listpack entry holding the 24-bit signed integer `v` (encoding 0xF2, then 3 bytes LE).
fn lp_int24(v: u32) -> Vec<u8> {
    assert!(v < 1 << 23);
    let b = v.to_le_bytes();
    vec![0xF2, b[0], b[1], b[2]]
}

/// A dump holding one key `k` in db 0 whose record (type byte and value) is `record`, written
/// through [`RdbWriter`] so the header, EOF and CRC-64 are right; strings in `record` must
/// already be encoded.
fn dump_with(record: &[u8]) -> Vec<u8> {
    let mut w = RdbWriter::new(Vec::new(), true).unwrap();
    w.select_db(0, 1, 0).unwrap();
    w.raw_records(record, 1).unwrap();
    w.finish().unwrap().0
}

/// Type byte, the key "k", then `value`.
fn record(rdb_type: u8, value: &[u8]) -> Vec<u8> {
    let mut r = vec![rdb_type];
    put_string(&mut r, &mut Vec::new(), b"k", false);
    r.extend_from_slice(value);
    r
}

/// A list (RDB_TYPE_LIST_QUICKLIST_2 = 18) of one packed node (container 2) holding `lp`,
/// LZF-compressed as Redis writes any string over 20 bytes.
fn quicklist_dump(lp: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    put_len(&mut v, 1); // one node
    put_len(&mut v, 2); // QUICKLIST_NODE_CONTAINER_PACKED
    put_string(&mut v, &mut Vec::new(), lp, true);
    dump_with(&record(18, &v))
}

/// A value that is one listpack blob (set 20, hash 16, sorted set 17), LZF-compressed.
fn packed_dump(rdb_type: u8, lp: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    put_string(&mut v, &mut Vec::new(), lp, true);
    dump_with(&record(rdb_type, &v))
}

/// The dump, at any size: one list whose single quicklist node is a listpack of `n` one-byte
/// integers (all 1), LZF-compressed. Returns the dump and the listpack's size in bytes.
fn list_of_ones(n: usize) -> (Vec<u8>, usize) {
    let lp = listpack((0..n).map(|_| lp_uint7(1)));
    (quicklist_dump(&lp), lp.len())
}

// ---- loading holds the data, at a documented cost per element --------------------------------

/// Load `dump` and return the keyspace and the peak bytes the load held live.
fn load_measured(dump: &[u8]) -> (Keyspace, u64) {
    let (loaded, peak) = peak_live_bytes(|| rdb::load(dump).expect("the crafted dump loads"));
    (loaded.0, peak)
}

/// What a load may hold beyond the per-element cost: the reader's 64 KiB buffer, the
/// compressed and decompressed blob, the keyspace's 16 empty databases, and slack for
/// small bookkeeping.
fn fixed_overhead(dump: &[u8], blob: usize) -> u64 {
    (64 * 1024 + dump.len() + blob) as u64 + 1024 * 1024
}

/// Loading a list of 1,000,000 one-byte integers from one compressed listpack holds at most
/// `load_cost::LIST` bytes per element plus the element bytes, the blobs and 1 MiB.
#[test]
fn loading_a_list_costs_what_the_docs_say() {
    let n = 1_000_000;
    let (dump, blob) = list_of_ones(n);
    let (ks, peak) = load_measured(&dump);
    let Some(Value::List(list)) = ks.get(0, b"k").map(|e| &e.value) else { panic!("k is a list") };
    assert_eq!(list.len(), n);
    // Each element is the one-byte string "1".
    let bound = (n * (load_cost::LIST + 1)) as u64 + fixed_overhead(&dump, blob);
    eprintln!("list of {n}: peak {peak} bytes, {:.1} per element; bound {bound}", peak as f64 / n as f64);
    assert!(peak <= bound, "a list of {n} one-byte elements held {peak} bytes at peak, over {bound}");
}

/// Loading a set of 200,000 distinct members (24-bit integers, 6 to 7 bytes as decimal strings)
/// from one compressed listpack holds at most `load_cost::SET` bytes per member plus its bytes.
#[test]
fn loading_a_set_costs_what_the_docs_say() {
    let n = 200_000u32;
    let lp = listpack((0..n).map(|i| lp_int24(i + 1_000_000)));
    let dump = packed_dump(20, &lp); // RDB_TYPE_SET_LISTPACK
    let (ks, peak) = load_measured(&dump);
    let Some(Value::Set(set)) = ks.get(0, b"k").map(|e| &e.value) else { panic!("k is a set") };
    assert_eq!(set.len(), n as usize);
    let bound = (n as usize * (load_cost::SET + 7)) as u64 + fixed_overhead(&dump, lp.len());
    eprintln!("set of {n}: peak {peak} bytes, {:.1} per member; bound {bound}", peak as f64 / f64::from(n));
    assert!(peak <= bound, "a set of {n} members held {peak} bytes at peak, over {bound}");
}

/// Loading a hash of 200,000 fields (7-byte decimal fields, one-byte values) from one
/// compressed listpack holds at most `load_cost::HASH` bytes per field plus field and value.
#[test]
fn loading_a_hash_costs_what_the_docs_say() {
    let n = 200_000u32;
    let lp = listpack((0..n).flat_map(|i| [lp_int24(i + 1_000_000), lp_uint7(5)]));
    let dump = packed_dump(16, &lp); // RDB_TYPE_HASH_LISTPACK
    let (ks, peak) = load_measured(&dump);
    let Some(Value::Hash(hash)) = ks.get(0, b"k").map(|e| &e.value) else { panic!("k is a hash") };
    assert_eq!(hash.len(), n as usize);
    let bound = (n as usize * (load_cost::HASH + 7 + 1)) as u64 + fixed_overhead(&dump, lp.len());
    eprintln!("hash of {n}: peak {peak} bytes, {:.1} per field; bound {bound}", peak as f64 / f64::from(n));
    assert!(peak <= bound, "a hash of {n} fields held {peak} bytes at peak, over {bound}");
}

/// Loading a sorted set of 200,000 members (7-byte decimal members, score 3) from one
/// compressed listpack holds at most `load_cost::ZSET` bytes per member plus its bytes.
#[test]
fn loading_a_sorted_set_costs_what_the_docs_say() {
    let n = 200_000u32;
    let lp = listpack((0..n).flat_map(|i| [lp_int24(i + 1_000_000), lp_uint7(3)]));
    let dump = packed_dump(17, &lp); // RDB_TYPE_ZSET_LISTPACK
    let (ks, peak) = load_measured(&dump);
    let Some(Value::ZSet(zset)) = ks.get(0, b"k").map(|e| &e.value) else { panic!("k is a sorted set") };
    assert_eq!(zset.len(), n as usize);
    let bound = (n as usize * (load_cost::ZSET + 7)) as u64 + fixed_overhead(&dump, lp.len());
    eprintln!("zset of {n}: peak {peak} bytes, {:.1} per member; bound {bound}", peak as f64 / f64::from(n));
    assert!(peak <= bound, "a sorted set of {n} members held {peak} bytes at peak, over {bound}");
}

/// The live-bytes counter can fail: a 3 MiB vector allocated while measuring is seen at its
/// size, and freeing it brings the live figure back down.
#[test]
fn the_counter_sees_allocations() {
    let ((), peak) = peak_live_bytes(|| drop(std::hint::black_box(vec![0u8; 3 << 20])));
    assert!((3 << 20..(3 << 20) + 4096).contains(&peak), "peak {peak}");
    assert!(LIVE.with(Cell::get) < 4096, "the freed vector is no longer live");
}
