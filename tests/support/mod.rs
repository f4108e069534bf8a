//! Helpers shared by the integration tests (`rdb_roundtrip`, `bad_input`, `formats`, ...).
//!
//! Each test binary compiles this module on its own and uses a subset of it.
#![allow(dead_code)]

pub mod arb;

use std::collections::{HashMap, HashSet, VecDeque};
use std::path::{Path, PathBuf};

use snaplab_core::rdb::{EncodeOptions, EncodeStats, write_view};
use snaplab_core::{Bytes, DB_COUNT, Entry, Keyspace, Value};

/// The RDB corpus (`../shared/rdb-corpus` next to the workspace, or `$SNAPLAB_CORPUS`), or
/// `None` after telling stderr that `test` skips because it is absent.
pub fn corpus_dir(test: &str) -> Option<PathBuf> {
    let dir = match std::env::var_os("SNAPLAB_CORPUS") {
        Some(d) => PathBuf::from(d),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/rdb-corpus"),
    };
    if dir.is_dir() {
        Some(dir)
    } else {
        let why = format!("the RDB corpus is not at {} (set SNAPLAB_CORPUS to its path)", dir.display());
        snaplab_harness::skips::skipped(test, &why);
        None
    }
}

/// One corpus file by its path inside the corpus, or `None` (with a note on stderr) when the
/// corpus or the file is absent.
pub fn corpus_file(test: &str, rel: &str) -> Option<PathBuf> {
    let path = corpus_dir(test)?.join(rel);
    if path.is_file() {
        Some(path)
    } else {
        snaplab_harness::skips::skipped(&format!("{test} ({rel})"), &format!("{rel} is not in the corpus"));
        None
    }
}

/// Every `*.rdb` file under `dir`, sorted, so failures name the same file on every run.
pub fn rdb_files(dir: &Path) -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        let mut entries: Vec<_> = std::fs::read_dir(dir).expect("read corpus dir").map(|e| e.unwrap().path()).collect();
        entries.sort();
        for p in entries {
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|e| e == "rdb") {
                out.push(p);
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, &mut out);
    out
}

/// `ks` written by the reference encoder into memory.
pub fn encode(ks: &Keyspace, compress: bool, canonical: bool) -> (Vec<u8>, EncodeStats) {
    let opts = EncodeOptions { compress, canonical, strategy: Some("test"), ctime_s: 1_700_000_000 };
    write_view(ks, Vec::new(), &opts, None).expect("writing to a Vec cannot fail")
}

fn s(b: &[u8]) -> Bytes {
    b.to_vec()
}

/// A small keyspace with every value type, integer-encodable and LZF-compressible strings,
/// binary data, expiries (future, past and negative), two function libraries, in three dbs.
pub fn sample_keyspace() -> Keyspace {
    let mut ks = Keyspace::new();
    ks.insert(0, s(b"str:int8"), Entry::new(Value::String(s(b"-100"))));
    ks.insert(0, s(b"str:int16"), Entry::new(Value::String(s(b"12345"))));
    ks.insert(0, s(b"str:int32"), Entry::new(Value::String(s(b"2147483647"))));
    ks.insert(0, s(b"str:int64"), Entry::new(Value::String(s(b"9223372036854775807"))));
    ks.insert(0, s(b"str:leading0"), Entry::new(Value::String(s(b"0123"))));
    ks.insert(0, s(b"str:lzf"), Entry::new(Value::String(b"abc".repeat(30))));
    ks.insert(0, s(b"str:empty"), Entry::new(Value::String(Vec::new())));
    ks.insert(0, s(b"\xff\x00bin"), Entry::expiring(Value::String(s(b"\x80\xfe\x00")), 4_102_444_800_000));
    ks.insert(0, s(b"str:past"), Entry::expiring(Value::String(s(b"old")), 1_000));
    ks.insert(0, s(b"str:negative-ttl"), Entry::expiring(Value::String(s(b"v")), -5));
    ks.insert(
        0,
        s(b"list"),
        Entry::new(Value::List(Box::new(VecDeque::from([s(b"a"), s(b"7"), s(b""), b"x".repeat(40), s(b"-70000")])))),
    );
    ks.insert(
        0,
        s(b"set"),
        Entry::expiring(Value::Set(Box::new(HashSet::from([s(b"m1"), s(b"2"), s(b"\x00")]))), 4_102_444_800_123),
    );
    ks.insert(
        1,
        s(b"hash"),
        Entry::new(Value::Hash(Box::new(HashMap::from([(s(b"f"), s(b"v")), (s(b"n"), s(b"300"))])))),
    );
    ks.insert(
        1,
        s(b"zset"),
        Entry::new(Value::ZSet(Box::new(HashMap::from([
            (s(b"a"), 1.5),
            (s(b"b"), f64::NEG_INFINITY),
            (s(b"c"), f64::INFINITY),
            (s(b"z"), -0.0),
            (s(b"sub"), f64::from_bits(1)),
        ])))),
    );
    ks.insert(DB_COUNT - 1, s(b"last-db"), Entry::new(Value::String(s(b"15"))));
    ks.add_function(s(b"#!lua name=lib1\nredis.register_function('f1', function() return 1 end)"));
    ks.add_function(s(b"#!lua name=lib2\nredis.register_function('f2', function() return 2 end)"));
    ks
}

/// A keyspace whose dump is several times the reader's 64 KiB buffer: a 150 kB random string,
/// a 200 kB repetitive one, and a list, set, hash and sorted set of 17 000 to 20 000 elements
/// (counts that need the 32-bit length encoding). Seeded, so every run writes the same data.
pub fn large_keyspace() -> Keyspace {
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0x5eed_1a26e);
    let mut noise = |n: usize| -> Bytes { (0..n).map(|_| rng.random::<u8>()).collect() };
    let mut ks = Keyspace::new();
    ks.insert(0, s(b"noise"), Entry::new(Value::String(noise(150_000))));
    ks.insert(0, s(b"repeat"), Entry::expiring(Value::String(b"0123456789".repeat(20_000)), 4_102_444_800_000));
    let list: VecDeque<Bytes> = (0..20_000u32).map(|i| i.to_string().into_bytes()).collect();
    ks.insert(2, s(b"list"), Entry::new(Value::List(Box::new(list))));
    let set: HashSet<Bytes> = (0..17_000u32).map(|i| format!("m{i}").into_bytes()).collect();
    ks.insert(3, s(b"set"), Entry::new(Value::Set(Box::new(set))));
    let hash: HashMap<Bytes, Bytes> = (0..17_000u32).map(|i| (format!("f{i}").into_bytes(), noise(3))).collect();
    ks.insert(4, s(b"hash"), Entry::new(Value::Hash(Box::new(hash))));
    let zset: HashMap<Bytes, f64> = (0..17_000u32).map(|i| (noise(8), f64::from(i) / 7.0)).collect();
    ks.insert(5, s(b"zset"), Entry::new(Value::ZSet(Box::new(zset))));
    ks
}

/// Assert that `got` is `want`, including the sign of zero and the exact bits of every
/// sorted-set score (the model's `PartialEq` treats `-0.0 == 0.0`).
pub fn assert_same_keyspace(want: &Keyspace, got: &Keyspace, context: &str) {
    assert_eq!(want.len(), got.len(), "{context}: key count");
    assert_eq!(want.functions(), got.functions(), "{context}: function libraries");
    for db in 0..DB_COUNT {
        assert_eq!(want.db(db).len(), got.db(db).len(), "{context}: key count of db {db}");
    }
    assert!(want == got, "{context}: keyspaces differ");
    for (db, key, entry) in want.iter() {
        if let Value::ZSet(want_z) = &entry.value {
            let Some(Entry { value: Value::ZSet(got_z), .. }) = got.get(db, key) else {
                panic!("{context}: db {db} key {key:?} is not a sorted set after the round trip");
            };
            for (member, score) in want_z.iter() {
                assert_eq!(
                    score.to_bits(),
                    got_z[member].to_bits(),
                    "{context}: score bits of member {member:?} of db {db} key {key:?}"
                );
            }
        }
    }
}
