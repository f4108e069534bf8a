//! Hostile input: every corrupt dump (truncated, bit-flipped, lying about a length, a wrong
//! checksum) gives a typed `RdbError` with a sensible byte offset, never a panic, never a
//! hang, and never an allocation larger than the input justifies.
//!
//! Hand-assembled files use the RDB layout of Redis src/rdb.h and src/rdb.c: `REDIS0010`
//! (bytes 0..9), opcodes 0xF5..0xFF, value types 0..25, and the length encoding of
//! `rdbSaveLen` (one byte `00xxxxxx`, two bytes `01xxxxxx xxxxxxxx`, `0x80` + u32 BE,
//! `0x81` + u64 BE, or `11xxxxxx` for a special string encoding: 0xC0 int8, 0xC1 int16,
//! 0xC2 int32, 0xC3 LZF).

// A counting #[global_allocator] is the only way to observe the size of every allocation the
// reader makes; it forwards each call to `System` unchanged.
#![allow(unsafe_code)]

mod support;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::panic::{AssertUnwindSafe, catch_unwind};

use snaplab_core::rdb::{Checksum, LoadSummary, RdbError, check, load};
use snaplab_core::{Entry, Keyspace, Value};
use support::{assert_same_keyspace, corpus_file, encode, large_keyspace, sample_keyspace};

// ---- the counting allocator -------------------------------------------------------------

/// Wraps the system allocator and records, per thread, the largest single request made while
/// that thread is measuring.
struct Counting;

thread_local! {
    // `const` initialisers and `Cell`s without destructors: reading these never allocates,
    // so the allocator can use them without recursing into itself.
    static MEASURING: Cell<bool> = const { Cell::new(false) };
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

fn note(size: usize) {
    // `try_with` because an allocation may happen while the thread's locals are torn down.
    let _ = MEASURING.try_with(|m| {
        if m.get() {
            let _ = LARGEST.try_with(|l| l.set(l.get().max(size)));
        }
    });
}

// SAFETY: every method passes its arguments unchanged to `System`, which upholds the
// `GlobalAlloc` contract; `note` only touches two thread-local `Cell`s, never allocates and
// never unwinds.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        // SAFETY: the caller guarantees `layout` has a non-zero size, as `System.alloc` requires.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        // SAFETY: as for `alloc`, the caller's `layout` is valid for `System.alloc_zeroed`.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by this allocator, i.e. by `System`, with `layout`.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size);
        // SAFETY: `ptr` came from `System` with `layout`, and the caller guarantees `new_size`
        // is non-zero and does not overflow `isize` when rounded to `layout.align()`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// The largest single allocation a decode of a small (< 1 KiB) hostile input may request:
/// the reader's 64 KiB buffer and its bounded pre-allocations (at most 4096 elements or
/// 64 KiB per string) fit well below it; a length field taken at its word would not.
const ALLOCATION_LIMIT: usize = 1 << 20;

/// Run `f` on this thread, returning its result and the largest single allocation it asked for.
fn measure<T>(f: impl FnOnce() -> T) -> (T, usize) {
    struct Stop;
    impl Drop for Stop {
        fn drop(&mut self) {
            MEASURING.with(|m| m.set(false));
        }
    }
    LARGEST.with(|l| l.set(0));
    MEASURING.with(|m| m.set(true));
    let stop = Stop;
    let out = f();
    drop(stop);
    (out, LARGEST.with(Cell::get))
}

type Loaded = Result<(Keyspace, LoadSummary), RdbError>;

/// Decode `bytes`, turning a panic into a test failure that names `what`, and return the
/// result with the largest allocation made. Checking without building values (`check`, behind
/// `snaplab verify`) runs on the same bytes under the same measure and must reach the same
/// verdict.
fn decode(bytes: &[u8], what: &dyn Fn() -> String) -> (Loaded, usize) {
    let (outcome, largest) = measure(|| catch_unwind(AssertUnwindSafe(|| load(bytes))));
    let (checked, largest_checking) = measure(|| catch_unwind(AssertUnwindSafe(|| check(bytes))));
    let (Ok(r), Ok(c)) = (outcome, checked) else { panic!("the reader panicked on {}", what()) };
    match (&r, &c) {
        (Ok(_), Ok(_)) => {}
        (Err(l), Err(c)) => assert_eq!(l.to_string(), c.error.to_string(), "{}: load and check disagree", what()),
        (l, c) => panic!("{}: load says {:?}, check says {:?}", what(), l.as_ref().err(), c.as_ref().err()),
    }
    (r, largest.max(largest_checking))
}

/// Decode a crafted file of under 1 KiB and check it stays under [`ALLOCATION_LIMIT`].
fn decode_small(name: &str, bytes: &[u8]) -> Loaded {
    assert!(bytes.len() < 1024, "{name}: crafted inputs are small");
    let (r, largest) = decode(bytes, &|| name.to_string());
    assert!(
        largest <= ALLOCATION_LIMIT,
        "{name}: a {}-byte input made a single allocation of {largest} bytes",
        bytes.len()
    );
    r
}

// ---- crafted files ----------------------------------------------------------------------

/// `REDIS0010` then `parts`: the header is bytes 0..9, so `parts` start at offset 9.
fn rdb(parts: &[&[u8]]) -> Vec<u8> {
    let mut v = b"REDIS0010".to_vec();
    for p in parts {
        v.extend_from_slice(p);
    }
    v
}

/// Append the EOF opcode (0xFF) and a correct CRC-64 trailer (computed by the `crc` crate),
/// so that the only thing wrong with a file is the lie it was built to tell.
fn sealed(mut v: Vec<u8>) -> Vec<u8> {
    v.push(0xFF);
    let crc = crc::Crc::<u64>::new(&crc::CRC_64_REDIS).checksum(&v);
    v.extend_from_slice(&crc.to_le_bytes());
    v
}

/// SELECTDB 0 (bytes 9, 10), then the type byte at 11 and the key "k" (length 1 at 12, 'k' at
/// 13): the value starts at byte 14.
fn key_of_type(t: u8) -> Vec<u8> {
    vec![0xFE, 0x00, t, 0x01, b'k']
}

const VALUE_AT: u64 = 14;

/// A 64-bit length: the 0x81 marker then the length big-endian (Redis `RDB_64BITLEN`).
fn len64(n: u64) -> Vec<u8> {
    let mut v = vec![0x81];
    v.extend_from_slice(&n.to_be_bytes());
    v
}

/// A raw string with a one-byte (6-bit) length.
fn short_str(s: &[u8]) -> Vec<u8> {
    assert!(s.len() < 64);
    let mut v = vec![s.len() as u8];
    v.extend_from_slice(s);
    v
}

/// The id Redis gives module type `name` with encoding version `ver` (Redis src/module.c,
/// `moduleTypeEncodeId`): nine 6-bit characters, then 10 bits of version.
fn module_id(name: &[u8; 9], ver: u64) -> u64 {
    const CSET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let id = name.iter().fold(0u64, |id, c| (id << 6) | CSET.iter().position(|x| x == c).unwrap() as u64);
    (id << 10) | ver
}

fn expect_err(name: &str, bytes: &[u8]) -> RdbError {
    match decode_small(name, bytes) {
        Ok(_) => panic!("{name}: a lying file loaded"),
        Err(e) => e,
    }
}

fn one_key(bytes: &[u8]) -> Value {
    let (ks, _) = decode_small("control", bytes).unwrap_or_else(|e| panic!("the control file must load: {e}"));
    assert_eq!(ks.len(), 1);
    ks.get(0, b"k").expect("key k in db 0").value.clone()
}

/// A string whose length field claims 2^32 - 1, 2^32 or 2^63 bytes, followed by 3 bytes of
/// data, is `Truncated` where the input ends, after growing only as the bytes arrived.
#[test]
fn string_length_lies() {
    let cases: [(&str, Vec<u8>); 3] = [
        ("2^32 - 1 (0x80 + u32 BE)", vec![0x80, 0xFF, 0xFF, 0xFF, 0xFF]),
        ("2^32 (0x81 + u64 BE)", len64(1 << 32)),
        ("2^63 (0x81 + u64 BE)", len64(1 << 63)),
    ];
    for (name, len) in cases {
        // type 0 (string), key "k", value: the lying length, then "abc".
        let f = rdb(&[&key_of_type(0), &len, b"abc"]);
        let err = expect_err(name, &f);
        assert!(
            matches!(err, RdbError::Truncated { offset, what: "a string value" } if offset == f.len() as u64),
            "{name}: {err:?}"
        );
    }
    // The key's own length can lie too: type 0, then a key length of 2^63.
    let f = rdb(&[&[0xFE, 0x00, 0x00], &len64(1 << 63), b"k"]);
    let err = expect_err("key length 2^63", &f);
    assert!(matches!(err, RdbError::Truncated { offset, what: "a key" } if offset == f.len() as u64), "{err:?}");
}

/// A list, set, hash, sorted set or quicklist whose count claims 2^60 elements, followed by a
/// few real ones, is `Truncated` at the end of the input, without pre-allocating for the claim.
#[test]
fn collection_count_lies() {
    let n = len64(1 << 60);
    let score = 1.5f64.to_le_bytes(); // RDB_TYPE_ZSET_2 scores are 8-byte LE doubles
    let cases: [(&str, u8, Vec<u8>, &str); 5] = [
        ("list (type 1)", 1, [short_str(b"a"), short_str(b"b")].concat(), "a list element"),
        ("set (type 2)", 2, [short_str(b"a"), short_str(b"b")].concat(), "a set member"),
        ("hash (type 4)", 4, [short_str(b"f"), short_str(b"v")].concat(), "a hash field"),
        ("zset (type 5)", 5, [short_str(b"m").as_slice(), &score].concat(), "a sorted set member"),
        // quicklist 2 (type 18): container 1 (plain) and a 1-byte node "x"; the next node's container is missing.
        ("quicklist (type 18)", 18, vec![0x01, 0x01, b'x'], "a quicklist container"),
    ];
    for (name, t, elements, what) in cases {
        let f = rdb(&[&key_of_type(t), &n, &elements]);
        let err = expect_err(name, &f);
        let at_end = f.len() as u64;
        assert!(
            matches!(err, RdbError::Truncated { offset, what: w } if offset == at_end && w == what),
            "{name}: {err:?}"
        );
    }
    // Control: the same list bytes with an honest count of 2 load as ["a", "b"].
    let honest = sealed(rdb(&[&key_of_type(1), &[0x02], &short_str(b"a"), &short_str(b"b")]));
    assert_eq!(one_key(&honest), Value::List(Box::new([b"a".to_vec(), b"b".to_vec()].into())));
}

/// An LZF string (0xC3, compressed length, plain length, data) that claims more than LZF's
/// 88x maximum expansion is `Corrupt` at the 0xC3 byte, before anything is allocated for it.
#[test]
fn lzf_expansion_lies() {
    // 2 compressed bytes can expand to at most 176; 177 (14-bit length 0x40 0xB1) is a lie.
    // The data 0x00 'a' is one literal run of length 1.
    let f = sealed(rdb(&[&key_of_type(0), &[0xC3, 0x02, 0x40, 0xB1, 0x00, b'a']]));
    let err = expect_err("LZF 2 -> 177", &f);
    assert!(matches!(&err, RdbError::Corrupt { offset: VALUE_AT, reason, .. } if reason.contains("177")), "{err:?}");
    // 1 compressed byte claiming 2^62 bytes; then 2^32 compressed bytes claiming exactly 88 x 2^32
    // (allowed, so the reader must wait for the 2^32 bytes, which never come).
    let f = sealed(rdb(&[&key_of_type(0), &[0xC3, 0x01], &len64(1 << 62), &[0x00]]));
    let err = expect_err("LZF 1 -> 2^62", &f);
    assert!(matches!(err, RdbError::Corrupt { offset: VALUE_AT, .. }), "{err:?}");
    let f = rdb(&[&key_of_type(0), &[0xC3], &len64(1 << 32), &len64((1 << 32) * 88), &[0x02, b'a', b'b', b'c']]);
    let err = expect_err("LZF 2^32 -> 88 x 2^32", &f);
    assert!(
        matches!(err, RdbError::Truncated { offset, what: "a string value" } if offset == f.len() as u64),
        "{err:?}"
    );
}

/// LZF data that expands to a different length than its header says is `Corrupt` at the
/// 0xC3 byte; the same data with the right length loads.
#[test]
fn lzf_wrong_expanded_length() {
    // 0x02 'a' 'b' 'c': one literal run of 3 bytes, which expands to exactly "abc".
    let lzf = |ulen: u8| sealed(rdb(&[&key_of_type(0), &[0xC3, 0x04, ulen, 0x02, b'a', b'b', b'c']]));
    for ulen in [2, 4, 5, 100] {
        let err = expect_err(&format!("LZF abc claiming {ulen}"), &lzf(ulen));
        assert!(matches!(err, RdbError::Corrupt { offset: VALUE_AT, .. }), "ulen {ulen}: {err:?}");
    }
    // A back reference before the start of the output: literal "a" (0x00 'a'), then 0x20 0x05
    // = copy 3 bytes from 6 back, which would make the 4 bytes the header claims.
    let f = sealed(rdb(&[&key_of_type(0), &[0xC3, 0x04, 0x04, 0x00, b'a', 0x20, 0x05]]));
    let err = expect_err("LZF back reference out of range", &f);
    assert!(matches!(err, RdbError::Corrupt { offset: VALUE_AT, .. }), "{err:?}");
    // Control.
    assert_eq!(one_key(&lzf(3)), Value::String(b"abc".to_vec()));
}

/// A one-entry ziplist ["a"] (Redis src/ziplist.c): zlbytes u32 LE, zltail u32 LE, zllen u16
/// LE, the entry (prevlen 0, encoding 0x01 = 1-byte string, 'a'), then 0xFF: 14 bytes.
fn ziplist(zlbytes: u32, zllen: u16) -> Vec<u8> {
    let mut z = zlbytes.to_le_bytes().to_vec();
    z.extend_from_slice(&10u32.to_le_bytes()); // the tail entry starts right after the header
    z.extend_from_slice(&zllen.to_le_bytes());
    z.extend_from_slice(&[0x00, 0x01, b'a', 0xFF]);
    z
}

/// A one-entry listpack ["a"] (Redis src/listpack.c): total bytes u32 LE, count u16 LE, the
/// entry (0x81 = 1-byte string, 'a', back-length 2), then 0xFF: 10 bytes.
fn listpack(total: u32, count: u16) -> Vec<u8> {
    let mut l = total.to_le_bytes().to_vec();
    l.extend_from_slice(&count.to_le_bytes());
    l.extend_from_slice(&[0x81, b'a', 0x02, 0xFF]);
    l
}

/// Ziplist and listpack headers whose byte count or element count lies are `Corrupt` at the
/// offset of the blob; honest headers load.
#[test]
fn packed_header_lies() {
    // Type 10 = list as a ziplist; the blob is a string of 14 bytes (length byte 0x0E at 14).
    let zl = |blob: Vec<u8>| sealed(rdb(&[&key_of_type(10), &short_str(&blob)]));
    for (name, blob) in [
        ("ziplist zlbytes 2^32 - 1", ziplist(u32::MAX, 1)),
        ("ziplist zlbytes 13", ziplist(13, 1)),
        ("ziplist zlbytes 15", ziplist(15, 1)),
        ("ziplist zllen 2", ziplist(14, 2)),
        ("ziplist zllen 0", ziplist(14, 0)),
    ] {
        let err = expect_err(name, &zl(blob));
        assert!(matches!(err, RdbError::Corrupt { offset: VALUE_AT, .. }), "{name}: {err:?}");
    }
    assert_eq!(one_key(&zl(ziplist(14, 1))), Value::List(Box::new([b"a".to_vec()].into())));

    // Type 20 = set as a listpack; the blob is a string of 10 bytes.
    let lp = |blob: Vec<u8>| sealed(rdb(&[&key_of_type(20), &short_str(&blob)]));
    for (name, blob) in [
        ("listpack total 2^32 - 1", listpack(u32::MAX, 1)),
        ("listpack total 9", listpack(9, 1)),
        ("listpack total 11", listpack(11, 1)),
        ("listpack count 2", listpack(10, 2)),
    ] {
        let err = expect_err(name, &lp(blob));
        assert!(matches!(err, RdbError::Corrupt { offset: VALUE_AT, .. }), "{name}: {err:?}");
    }
    assert_eq!(one_key(&lp(listpack(10, 1))), Value::Set(Box::new([b"a".to_vec()].into())));

    // The string holding the blob can lie too: a ziplist "string" of 2^32 bytes.
    let f = rdb(&[&key_of_type(10), &len64(1 << 32), &ziplist(14, 1)]);
    let err = expect_err("ziplist string of 2^32 bytes", &f);
    assert!(matches!(err, RdbError::Truncated { offset, .. } if offset == f.len() as u64), "{err:?}");
}

/// An intset (type 11: encoding u32 LE, count u32 LE, members) whose count exceeds what its
/// bytes hold is `Corrupt` at the blob; the honest one loads.
#[test]
fn intset_count_lies() {
    let intset = |count: u32| {
        let mut b = 2u32.to_le_bytes().to_vec(); // 2 bytes per member
        b.extend_from_slice(&count.to_le_bytes());
        b.extend_from_slice(&[0x01, 0x00, 0x02, 0x00]); // members 1 and 2, int16 LE
        sealed(rdb(&[&key_of_type(11), &short_str(&b)]))
    };
    for count in [3, 1 << 30, u32::MAX] {
        let err = expect_err(&format!("intset count {count}"), &intset(count));
        assert!(matches!(err, RdbError::Corrupt { offset: VALUE_AT, .. }), "count {count}: {err:?}");
    }
    assert_eq!(one_key(&intset(2)), Value::Set(Box::new([b"1".to_vec(), b"2".to_vec()].into())));
}

/// SELECTDB 16 and SELECTDB 2^40 are `DbOutOfRange` at the opcode (byte 9); SELECTDB 15 loads.
#[test]
fn selectdb_out_of_range() {
    let f = sealed(rdb(&[&[0xFE, 0x10]]));
    let err = expect_err("SELECTDB 16", &f);
    assert!(matches!(err, RdbError::DbOutOfRange { offset: 9, db: 16 }), "{err:?}");
    let f = sealed(rdb(&[&[0xFE], &len64(1 << 40)]));
    let err = expect_err("SELECTDB 2^40", &f);
    assert!(matches!(err, RdbError::DbOutOfRange { offset: 9, db } if db == 1 << 40), "{err:?}");
    let f = sealed(rdb(&[&[0xFE, 0x0F, 0x00, 0x01, b'k', 0x01, b'v']]));
    let (ks, _) = decode_small("SELECTDB 15", &f).unwrap();
    assert_eq!(ks.get(15, b"k"), Some(&Entry::new(Value::String(b"v".to_vec()))));
}

/// A byte that is neither an opcode nor a value type (8, 27, 100, 242) is `UnknownType` at
/// that byte.
#[test]
fn unknown_type_byte() {
    for t in [8u8, 27, 100, 242] {
        let f = sealed(rdb(&[&key_of_type(t), &short_str(b"v")]));
        let err = expect_err(&format!("type {t}"), &f);
        assert!(matches!(err, RdbError::UnknownType { offset: 11, byte } if byte == t), "type {t}: {err:?}");
    }
    // Right after the header, where an opcode is expected.
    let f = sealed(rdb(&[&[0x08]]));
    let err = expect_err("type 8 after the header", &f);
    assert!(matches!(err, RdbError::UnknownType { offset: 9, byte: 8 }), "{err:?}");
}

/// A module value (type 7, then the module id as a length) is `ModuleValue` at the value,
/// naming the module; module AUX data (opcode 247) is `ModuleAux` at the opcode.
#[test]
fn module_values_and_aux_are_refused() {
    let id = module_id(b"ReJSON-RL", 3);
    let f = sealed(rdb(&[&key_of_type(7), &len64(id), &[0x02, 0x00]]));
    let err = expect_err("module value", &f);
    assert!(
        matches!(&err, RdbError::ModuleValue { offset: VALUE_AT, key, module } if key == "k" && module == "ReJSON-RL"),
        "{err:?}"
    );
    // Type 6, the 4.0 release-candidate module format, is refused the same way.
    let f = sealed(rdb(&[&key_of_type(6), &len64(id)]));
    let err = expect_err("module value (pre-GA)", &f);
    assert!(matches!(err, RdbError::ModuleValue { offset: VALUE_AT, .. }), "{err:?}");
    // Opcode 247 (MODULE_AUX) at byte 9, then the module id, the `when` opcode and value.
    let f = sealed(rdb(&[&[0xF7], &len64(id), &[0x02, 0x02, 0x00]]));
    let err = expect_err("module aux", &f);
    assert!(matches!(&err, RdbError::ModuleAux { offset: 9, module } if module == "ReJSON-RL"), "{err:?}");
}

/// The allocation check can fail: a 2 MiB allocation made while measuring is seen, and one
/// made while not measuring is not.
#[test]
fn allocation_counter_detects_large_allocations() {
    let (v, largest) = measure(|| std::hint::black_box(vec![0u8; 2 << 20]));
    assert_eq!(v.len(), 2 << 20);
    assert!(largest > ALLOCATION_LIMIT, "a 2 MiB vector went unnoticed (largest seen {largest})");
    LARGEST.with(|l| l.set(0));
    let outside = std::hint::black_box(vec![0u8; 4 << 20]);
    assert_eq!(LARGEST.with(Cell::get), 0, "an allocation outside `measure` was counted");
    drop(outside);
    let ((), largest) = measure(|| drop(std::hint::black_box(vec![0u8; 100])));
    assert!((100..1024).contains(&largest), "a 100-byte vector was recorded as {largest} bytes");
}

// ---- truncation -------------------------------------------------------------------------

/// Load every strict prefix of `bytes`. A prefix that stops before the dump's logical end is
/// an error: `BadSignature` for a cut header, otherwise `Truncated` exactly where the prefix
/// ends. The logical end is after the CRC trailer, or for RDB < 5 (no trailer) right after the
/// EOF opcode; a prefix reaching it is the complete dump and must load, which happens for a
/// strict prefix only when bytes follow the logical end (the padded RDB 4 case below).
fn check_every_prefix(name: &str, bytes: &[u8]) {
    let (full, _) = decode(bytes, &|| format!("{name} (whole)"));
    let (_, summary) = full.unwrap_or_else(|e| panic!("{name}: the whole file must load: {e}"));
    let end = summary.bytes as usize;
    let trailer = if summary.version < 5 { 0 } else { 8 };
    assert_eq!(bytes[end - 1 - trailer], 0xFF, "{name}: the logical end follows the EOF opcode");
    for n in 0..bytes.len() {
        let prefix = &bytes[..n];
        let (r, largest) = decode(prefix, &|| format!("{name} cut at {n} of {} bytes", bytes.len()));
        assert!(largest <= ALLOCATION_LIMIT, "{name} cut at {n}: allocated {largest} bytes");
        match r {
            Ok(_) if n >= end => {}
            Ok(_) => panic!("{name} cut at {n} of {} bytes loaded", bytes.len()),
            Err(e) if n >= end => panic!("{name} cut at {n}, past its logical end {end}, fails: {e}"),
            Err(e) => {
                assert!(e.offset() <= n as u64, "{name} cut at {n}: error offset {} is past the end: {e}", e.offset());
                if n < 9 {
                    assert!(matches!(e, RdbError::BadSignature { .. }), "{name} cut at {n}: {e:?}");
                } else {
                    assert!(
                        matches!(e, RdbError::Truncated { offset, .. } if offset == n as u64),
                        "{name} cut at {n}: {e:?}"
                    );
                }
            }
        }
    }
}

/// Every strict prefix of our own dumps (every type, TTLs, functions, LZF and plain) is a
/// typed error at the cut.
#[test]
fn truncated_written_dumps() {
    for compress in [false, true] {
        let (bytes, _) = encode(&sample_keyspace(), compress, false);
        check_every_prefix(&format!("sample dump (compress={compress})"), &bytes);
    }
}

/// A dump several times the reader's 64 KiB buffer, cut at and around every buffer boundary
/// and at seeded random points, reports `Truncated` at exactly the cut: offsets stay right
/// across buffer refills.
#[test]
fn truncated_large_dump_offsets() {
    use rand::{Rng, SeedableRng};
    let (bytes, _) = encode(&large_keyspace(), true, true);
    let buf = 64 * 1024;
    assert!(bytes.len() > 3 * buf);
    let mut cuts: Vec<usize> = (1..=bytes.len() / buf).flat_map(|k| [k * buf - 1, k * buf, k * buf + 1]).collect();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(64);
    cuts.extend((0..40).map(|_| rng.random_range(9..bytes.len())));
    cuts.extend(bytes.len() - 9..bytes.len());
    for n in cuts {
        let (r, _) = decode(&bytes[..n], &|| format!("large dump cut at {n}"));
        let err = r.expect_err("a strict prefix must not load");
        assert!(matches!(err, RdbError::Truncated { offset, .. } if offset == n as u64), "cut at {n}: {err:?}");
    }
}

/// Every strict prefix of Redis 7.0.15's all_types_v10.rdb (every encoding Redis 7.0 writes)
/// is a typed error at the cut. Skips without the corpus.
#[test]
fn truncated_redis_dump() {
    let Some(path) = corpus_file("truncated_redis_dump", "redis-7.0.15-generated/all_types_v10.rdb") else { return };
    check_every_prefix("all_types_v10.rdb", &std::fs::read(path).unwrap());
}

/// Every strict prefix of Redis's encodings.rdb (RDB 4, no trailer: ziplists, intsets,
/// zipmap-era hashes) is a typed error, and the whole file ends at its EOF opcode. Skips
/// without the corpus.
#[test]
fn truncated_rdb4_dump() {
    let Some(path) = corpus_file("truncated_rdb4_dump", "redis/encodings.rdb") else { return };
    let bytes = std::fs::read(path).unwrap();
    let (r, _) = decode(&bytes, &|| "encodings.rdb".into());
    let (_, summary) = r.unwrap();
    assert_eq!(summary.version, 4);
    assert_eq!(summary.checksum, Some(Checksum::Absent));
    assert_eq!(bytes.last(), Some(&0xFF), "an RDB 4 dump ends with the EOF opcode");
    check_every_prefix("encodings.rdb", &bytes);
    // With bytes after the EOF opcode, the strict prefix that ends right after EOF is the
    // complete dump and loads (the reader stops at EOF in RDB < 5); every shorter one fails.
    let mut padded = bytes.clone();
    padded.extend_from_slice(b"\x00garbage");
    check_every_prefix("encodings.rdb + garbage", &padded);
    let (r, _) = decode(&padded[..bytes.len()], &|| "encodings.rdb cut after EOF".into());
    assert_eq!(r.unwrap().0.len(), 13, "the prefix ending at EOF holds all 13 keys");
}

// ---- bit flips --------------------------------------------------------------------------

/// Flipping any bit pattern (0x01, 0x02, 0x10, 0x80, 0xFF) at any byte of a written dump gives
/// an error. The CRC-64 catches every single-byte change to the data, and a change to the
/// trailer is a mismatch; no single change to the `0010` version digits yields a version below
/// 5 (which would have no trailer). The one way a flipped dump could still load is the reader
/// stopping at an EOF opcode followed by eight zero bytes ("checksum disabled"); such a load is
/// checked to be exactly that, and this dump is checked to offer no such spot.
#[test]
fn bit_flips_are_errors() {
    let (bytes, _) = encode(&sample_keyspace(), true, false);
    // One flip can make `0xFF` + eight zeros only where the dump already has 0xFF followed by
    // at least seven zeros in the next eight bytes, or eight zeros after any byte.
    let zero_trailer_possible = (0..bytes.len() - 8).any(|i| {
        let zeros = bytes[i + 1..i + 9].iter().filter(|&&b| b == 0).count();
        zeros == 8 || (bytes[i] == 0xFF && zeros >= 7)
    });
    assert!(!zero_trailer_possible, "the sample dump should leave no room for a justified load");
    let (mut errors, mut justified) = (0usize, Vec::new());
    for at in 0..bytes.len() {
        for pattern in [0x01u8, 0x02, 0x10, 0x80, 0xFF] {
            let mut flipped = bytes.clone();
            flipped[at] ^= pattern;
            let what = || format!("byte {at} ^ {pattern:#04x}");
            let (r, largest) = decode(&flipped, &what);
            assert!(largest <= ALLOCATION_LIMIT, "{}: allocated {largest} bytes", what());
            match r {
                Err(e) => {
                    assert!(e.offset() <= flipped.len() as u64, "{}: offset {} past the end", what(), e.offset());
                    errors += 1;
                }
                Ok((_, summary)) => {
                    let end = summary.bytes as usize;
                    assert_eq!(summary.checksum, Some(Checksum::Disabled), "{}", what());
                    assert!(end >= 9 && flipped[end - 9] == 0xFF, "{}: loaded without an EOF opcode", what());
                    assert_eq!(flipped[end - 8..end], [0; 8], "{}", what());
                    justified.push(what());
                }
            }
        }
    }
    eprintln!("bit_flips_are_errors: {errors} errors, {} justified loads {justified:?}", justified.len());
    // The dump leaves no room for a "checksum disabled" load (checked above): every flip fails.
    assert!(justified.is_empty());
    assert_eq!(errors, bytes.len() * 5);
}

/// Flip `pattern` at `at` and, for RDB 5 and later, recompute the CRC-64 trailer so the reader
/// has to judge the damaged structure itself instead of stopping at the checksum.
fn flip_and_reseal(bytes: &[u8], at: usize, pattern: u8, has_trailer: bool) -> Vec<u8> {
    let mut v = bytes.to_vec();
    v[at] ^= pattern;
    if has_trailer {
        let body = v.len() - 8;
        let crc = crc::Crc::<u64>::new(&crc::CRC_64_REDIS).checksum(&v[..body]);
        v[body..].copy_from_slice(&crc.to_le_bytes());
    }
    v
}

/// Decode a resealed flip: no panic, no allocation over the limit, and an error offset inside
/// the file. Returns whether it loaded (a flipped value byte is a legitimate, different dump).
fn check_resealed(name: &str, flipped: &[u8], at: usize, pattern: u8) -> bool {
    let what = || format!("{name}, byte {at} ^ {pattern:#04x}, CRC resealed");
    let (r, largest) = decode(flipped, &what);
    assert!(largest <= ALLOCATION_LIMIT, "{}: allocated {largest} bytes", what());
    match r {
        Ok(_) => true,
        Err(e) => {
            assert!(e.offset() <= flipped.len() as u64, "{}: offset {} past the end: {e}", what(), e.offset());
            false
        }
    }
}

/// With the CRC recomputed after each flip, every flip of every byte of our dump is judged by
/// the structure decoders alone: some load (a changed value), the rest are typed errors, and
/// none panics or allocates beyond the limit.
#[test]
fn resealed_bit_flips_of_written_dump() {
    let (bytes, _) = encode(&sample_keyspace(), true, false);
    let (mut loaded, mut failed) = (0, 0);
    for at in 0..bytes.len() - 8 {
        for pattern in [0x01u8, 0x02, 0x10, 0x40, 0x80, 0xFF] {
            let flipped = flip_and_reseal(&bytes, at, pattern, true);
            if check_resealed("sample dump", &flipped, at, pattern) { loaded += 1 } else { failed += 1 }
        }
    }
    eprintln!("resealed_bit_flips_of_written_dump: {loaded} loaded, {failed} typed errors");
    assert!(failed > 0 && loaded > 0, "flips hit both structure and plain data");
}

/// Seeded random flips, CRC resealed, inside Redis's own dumps (listpacks, quicklists,
/// intsets, ziplists and LZF strings written by Redis 7.0.15 and Redis 2.x): no panic, no
/// allocation beyond the limit, typed errors. Skips without the corpus.
#[test]
fn resealed_bit_flips_of_redis_dumps() {
    use rand::{Rng, SeedableRng};
    let files = [("redis-7.0.15-generated/all_types_v10.rdb", 2500), ("redis/encodings.rdb", 2500)];
    for (rel, flips) in files {
        let Some(path) = corpus_file("resealed_bit_flips_of_redis_dumps", rel) else { return };
        let bytes = std::fs::read(path).unwrap();
        let (r, _) = decode(&bytes, &|| rel.to_string());
        let has_trailer = r.unwrap().1.version >= 5;
        let data_end = bytes.len() - if has_trailer { 8 } else { 0 };
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0x5eed_0000 + bytes.len() as u64);
        let (mut loaded, mut failed) = (0, 0);
        for _ in 0..flips {
            let at = rng.random_range(9..data_end);
            let pattern = 1u8 << rng.random_range(0..8);
            let flipped = flip_and_reseal(&bytes, at, pattern, has_trailer);
            if check_resealed(rel, &flipped, at, pattern) { loaded += 1 } else { failed += 1 }
        }
        eprintln!("resealed_bit_flips_of_redis_dumps: {rel}: {loaded} loaded, {failed} typed errors");
        assert!(failed > 0, "{rel}: some flips must break the structure");
    }
}

// ---- checksums --------------------------------------------------------------------------

/// A wrong trailer is `Checksum` at the trailer's offset, reporting what the file says and
/// what the data gives; so is a changed data byte under the original trailer; a zero trailer
/// means "checksum disabled" and loads.
#[test]
fn checksum_trailer() {
    let ks = sample_keyspace();
    let (bytes, stats) = encode(&ks, true, false);
    let trailer = bytes.len() - 8;
    let good = stats.checksum;

    for (i, pattern) in [(0, 0x01u8), (7, 0x80), (3, 0xFF)] {
        let mut bad = bytes.clone();
        bad[trailer + i] ^= pattern;
        let stored = u64::from_le_bytes(bad[trailer..].try_into().unwrap());
        let (r, _) = decode(&bad, &|| format!("trailer byte {i} ^ {pattern:#04x}"));
        let err = r.expect_err("a wrong checksum is an error");
        assert!(
            matches!(err, RdbError::Checksum { offset, stored: s, computed } if offset == trailer as u64 && s == stored && computed == good),
            "{err:?}"
        );
    }

    // A changed value under the original trailer: the data's CRC is what the reader computed.
    let at = bytes.windows(4).position(|w| w == b"\x03old").expect("value \"old\" in the dump") + 1;
    let mut bad = bytes.clone();
    bad[at] = b'n';
    let oracle = crc::Crc::<u64>::new(&crc::CRC_64_REDIS);
    let (r, _) = decode(&bad, &|| "value old -> nld".into());
    let err = r.expect_err("a changed value is an error");
    assert!(
        matches!(err, RdbError::Checksum { offset, stored, computed }
            if offset == trailer as u64 && stored == good && computed == oracle.checksum(&bad[..trailer])),
        "{err:?}"
    );

    // Eight zero bytes: checksum disabled (Redis `rdbchecksum no`), accepted.
    let mut zero = bytes.clone();
    zero[trailer..].fill(0);
    let (r, _) = decode(&zero, &|| "zero trailer".into());
    let (back, summary) = r.unwrap();
    assert_eq!(summary.checksum, Some(Checksum::Disabled));
    assert_same_keyspace(&ks, &back, "zero trailer");
}
