//! The reader agrees with Redis 7.0.15 and reads what current writers write, on dumps
//! assembled byte by byte here:
//!
//! - a key stored twice in one database is refused, naming the key, the db and the byte, by
//!   every way of reading a dump (Redis 7.0.15: "RDB has duplicated key 'k' in DB 0");
//! - a function library in the Redis 7.0 release-candidate format (opcode 246) loads as Redis
//!   7.0.15 converts it, and is written back in the GA format (opcode 245);
//! - Redis 8.6 dumps (RDB 13): the type-26 stream with idempotent-producer state is carried
//!   verbatim, and key metadata (opcode 243) is skipped when its class allows it and refused
//!   naming the class otherwise;
//! - Valkey 9.0 dumps (magic `VALKEY080`): the slot-import opcode (243 there) is read, and the
//!   type-22 hash with field expiries becomes a plain hash or Redis's type 22.
//!
//! Layouts: Redis src/rdb.h and src/rdb.c (7.0.15 for opcode 246, 8.6.3 for RDB 13), Redis
//! 8.6.3 src/keymeta.c (key metadata), Valkey src/rdb.h, src/rdb.c and
//! src/cluster_migrateslots.c (9.0). Every dump is checked three ways that must agree: loading
//! ([`rdb::load`]), checking without building values ([`rdb::check`]), and loading what we
//! write back.

use std::process::Command;

use snaplab::harness::redis_server::{RedisServer, RedisServerError};
use snaplab_core::rdb::encode::{put_len, put_string};
use snaplab_core::rdb::{self, CheckEvent, Dialect, EncodeOptions, Item, RdbError, RdbReader};
use snaplab_core::{Keyspace, Value};

// ---- assembling dumps -------------------------------------------------------------------------

/// A dump being assembled: a header, then opcodes and records appended in order.
struct Dump(Vec<u8>);

impl Dump {
    /// Start with a 9-byte header such as `REDIS0010` or `VALKEY080`.
    fn new(magic: &[u8; 9]) -> Self {
        Dump(magic.to_vec())
    }

    /// Append raw bytes.
    fn raw(mut self, bytes: &[u8]) -> Self {
        self.0.extend_from_slice(bytes);
        self
    }

    /// Append a length in RDB's length encoding (Redis src/rdb.c, `rdbSaveLen`).
    fn len(mut self, n: u64) -> Self {
        put_len(&mut self.0, n);
        self
    }

    /// Append a string as Redis writes it uncompressed (`rdbSaveRawString`).
    fn string(mut self, s: &[u8]) -> Self {
        put_string(&mut self.0, &mut Vec::new(), s, false);
        self
    }

    /// SELECTDB `db` (opcode 254).
    fn select(self, db: u64) -> Self {
        self.raw(&[0xFE]).len(db)
    }

    /// A string key: type 0, the key, the value.
    fn set(self, key: &[u8], value: &[u8]) -> Self {
        self.raw(&[0]).string(key).string(value)
    }

    /// The offset the next byte will have.
    fn at(&self) -> u64 {
        self.0.len() as u64
    }

    /// EOF (opcode 255) and the CRC-64 of everything before the trailer (Redis's "Jones"
    /// polynomial, computed by the `crc` crate).
    fn seal(mut self) -> Vec<u8> {
        self.0.push(0xFF);
        let crc = crc::Crc::<u64>::new(&crc::CRC_64_REDIS).checksum(&self.0);
        self.0.extend_from_slice(&crc.to_le_bytes());
        self.0
    }
}

/// Load `dump`, check it without building values, and demand the same verdict: on success
/// the keyspace and the summaries' counts, on failure the same error.
fn read_both(dump: &[u8]) -> Result<(Keyspace, rdb::LoadSummary), RdbError> {
    let loaded = rdb::load(dump);
    let checked = rdb::check(dump);
    match (&loaded, &checked) {
        (Ok((_, l)), Ok(c)) => {
            assert_eq!(
                (l.keys_per_db, l.opaque_values, l.elements, l.functions, l.key_metadata_skipped, l.bytes),
                (c.keys_per_db, c.opaque_values, c.elements, c.functions, c.key_metadata_skipped, c.bytes),
                "load and check summarise the dump differently"
            );
        }
        (Err(l), Err(c)) => assert_eq!(l.to_string(), c.error.to_string(), "load and check refuse differently"),
        (l, c) => panic!("load says {:?}, check says {:?}", l.as_ref().err(), c.as_ref().err()),
    }
    loaded
}

/// Write `ks` the way every strategy does and read it back.
fn rewrite(ks: &Keyspace) -> Keyspace {
    let (bytes, _) = rdb::write_view(ks, Vec::new(), &EncodeOptions::default(), None).expect("writing to a Vec");
    rdb::load(bytes.as_slice()).expect("our own dump loads").0
}

// ---- duplicate keys ---------------------------------------------------------------------------

/// A dump with key `k` stored twice in db 0, and the offset of the second record.
fn duplicate_key_dump() -> (Vec<u8>, u64) {
    let d = Dump::new(b"REDIS0010").select(0).set(b"k", b"first").set(b"other", b"x");
    let second = d.at();
    (d.set(b"k", b"second").seal(), second)
}

/// A key stored twice in one database is refused with `DuplicateKey` naming the key, db 0 and
/// the byte of the second record, by load, load_file, scan, check and check_each alike.
#[test]
fn duplicate_key_is_refused_by_every_reader() {
    let (dump, second) = duplicate_key_dump();
    let is_dup =
        |e: &RdbError| matches!(e, RdbError::DuplicateKey { offset, db: 0, key } if *offset == second && key == "k");
    let err = read_both(&dump).unwrap_err();
    assert!(is_dup(&err), "load: {err:?}");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dup.rdb");
    std::fs::write(&path, &dump).unwrap();
    let err = rdb::load_file(&path).unwrap_err();
    assert!(is_dup(&err), "load_file: {err:?}");
    let err = rdb::scan(dump.as_slice(), |_| {}).unwrap_err();
    assert!(is_dup(&err), "scan: {err:?}");
    let mut keys = Vec::new();
    let err = rdb::check_each(dump.as_slice(), |e| {
        if let CheckEvent::Key(info) = e {
            keys.push(info.key.clone());
        }
    })
    .unwrap_err();
    assert!(is_dup(&err.error), "check_each: {err:?}");
    assert_eq!(keys, [b"k".to_vec(), b"other".to_vec()], "the duplicate is refused, not handed on");
    assert!(err.to_string().contains(&format!("appears twice in db 0, the second time at byte {second}")), "{err}");
}

/// The same key in two databases is no duplicate, nor is a key whose other record is an empty
/// collection (Redis skips empty keys before adding them).
#[test]
fn same_key_elsewhere_is_not_a_duplicate() {
    let dump = Dump::new(b"REDIS0010").select(0).set(b"k", b"a").select(1).set(b"k", b"b").seal();
    let (ks, _) = read_both(&dump).unwrap();
    assert_eq!(ks.len(), 2);
    // db 0: an empty list (type 1, length 0) named k, then the string k.
    let dump = Dump::new(b"REDIS0010").select(0).raw(&[1]).string(b"k").len(0).set(b"k", b"v").seal();
    let (ks, summary) = read_both(&dump).unwrap();
    assert_eq!((ks.len(), summary.empty_keys_skipped), (1, 1));
}

/// `snaplab verify`, `inspect` and `inspect --json` exit 1 on a duplicate key, naming the key,
/// the db and the byte of the second record on stderr.
#[test]
fn verify_and_inspect_refuse_a_duplicate_key() {
    let (dump, second) = duplicate_key_dump();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dup.rdb");
    std::fs::write(&path, &dump).unwrap();
    for args in [vec!["verify"], vec!["inspect"], vec!["inspect", "--json"]] {
        let out = Command::new(env!("CARGO_BIN_EXE_snaplab")).args(&args).arg(&path).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "snaplab {args:?}: {stderr}");
        assert!(
            stderr.contains(&format!("key k appears twice in db 0, the second time at byte {second}")),
            "snaplab {args:?}: {stderr}"
        );
    }
}

// ---- function libraries in the Redis 7.0 release-candidate format ----------------------------

/// Opcode 246 (Redis 7.0.15 src/rdb.c, `rdbFunctionLoad`): library name, engine name, a length
/// that is non-zero when a description follows, the description, then the code.
fn pre_ga_library(d: Dump, name: &[u8], engine: &[u8], description: Option<&[u8]>, code: &[u8]) -> Dump {
    let d = d.raw(&[246]).string(name).string(engine);
    let d = match description {
        Some(text) => d.len(1).string(text),
        None => d.len(0),
    };
    d.string(code)
}

const CODE: &[u8] = b"redis.register_function('rc_echo', function(keys, args) return args[1] end)";

/// A v10 dump with two release-candidate libraries, one with a description, and a key.
fn pre_ga_dump() -> Vec<u8> {
    let d = Dump::new(b"REDIS0010");
    let d = pre_ga_library(d, b"mylib", b"LUA", Some(b"a library from 7.0-rc2"), CODE);
    let d = pre_ga_library(d, b"other", b"LUA", None, b"redis.register_function('rc_two', function() return 2 end)");
    d.select(0).set(b"k", b"v").seal()
}

/// A release-candidate function library (opcode 246) loads as Redis 7.0.15 converts it,
/// `#!<engine> name=<name>\n<code>`, with its description dropped; checking agrees; and the
/// library is written back with the GA opcode 245.
#[test]
fn pre_release_function_libraries_load_as_redis_7_0_does() {
    let dump = pre_ga_dump();
    let (ks, summary) = read_both(&dump).expect("Redis 7.0.15 loads opcode 246, so do we");
    let want = [
        [b"#!LUA name=mylib\n".as_slice(), CODE].concat(),
        b"#!LUA name=other\nredis.register_function('rc_two', function() return 2 end)".to_vec(),
    ];
    assert_eq!(ks.functions(), want);
    assert_eq!((summary.functions, ks.len()), (2, 1));
    let (bytes, _) = rdb::write_view(&ks, Vec::new(), &EncodeOptions::default(), None).unwrap();
    let mut reader = RdbReader::new(bytes.as_slice()).unwrap();
    let mut libraries = Vec::new();
    while let Some(item) = reader.next_item().unwrap() {
        if let Item::Function { code } = item {
            libraries.push(code);
        }
    }
    assert_eq!(libraries, want, "written back as GA libraries");
    assert!(!bytes.contains(&246), "no release-candidate opcode is written");
    // Cut inside the description: a typed error where the input ends.
    let cut = &dump[..30];
    assert!(matches!(rdb::load(cut), Err(RdbError::Truncated { offset: 30, .. })));
}

// ---- Redis 8.6: RDB 13 -------------------------------------------------------------------------

/// A listpack of small strings (Redis src/listpack.c): total bytes u32 LE, count u16 LE, each
/// entry `0x80|len`, its bytes and a one-byte back-length, then 0xFF.
fn listpack(items: &[&[u8]]) -> Vec<u8> {
    let mut lp = vec![0; 6];
    for item in items {
        assert!(item.len() < 63);
        lp.push(0x80 | item.len() as u8);
        lp.extend_from_slice(item);
        lp.push(1 + item.len() as u8);
    }
    lp.push(0xFF);
    let total = lp.len() as u32;
    lp[0..4].copy_from_slice(&total.to_le_bytes());
    lp[4..6].copy_from_slice(&(items.len() as u16).to_le_bytes());
    lp
}

/// The value of a type-26 stream (Redis 8.6.3 src/rdb.c, `rdbSaveObject` / `rdbLoadObject`):
/// one node (a 128-bit master ID and a listpack), length, last ID, first ID, max deleted ID,
/// entries added, one consumer group (name, last ID, offset, a one-entry PEL, one consumer
/// with seen and active times owning it), then the IDMP state: `duration` s, `max_entries`,
/// one producer `p1` with one IID, and the all-time IID counters.
fn stream_v4(duration: u64, max_entries: u64) -> Vec<u8> {
    let id = |ms: u64, seq: u64| [ms.to_be_bytes(), seq.to_be_bytes()].concat();
    let d = Dump(Vec::new()).len(1).string(&id(1_700_000_000_000, 0)).string(&listpack(&[b"f", b"v"]));
    let d = d.len(1).len(1_700_000_000_000).len(0); // length, last ID
    let d = d.len(1_700_000_000_000).len(0).len(0).len(0).len(1); // first ID, max deleted ID, entries added
    let d = d.len(1).string(b"group").len(1_700_000_000_000).len(0).len(1); // a group, its last ID and offset
    let d = d.len(1).raw(&id(1_700_000_000_000, 0)).raw(&1_700_000_000_500i64.to_le_bytes()).len(1); // PEL
    let d = d.len(1).string(b"alice").raw(&1_700_000_000_600i64.to_le_bytes()).raw(&1_700_000_000_700i64.to_le_bytes());
    let d = d.len(1).raw(&id(1_700_000_000_000, 0)); // the consumer's PEL
    let d = d.len(duration).len(max_entries).len(1).string(b"p1").len(1).string(b"iid-1").len(1_700_000_000_000).len(0);
    d.len(1).len(0).0 // IIDs added, duplicates
}

/// A Redis 8.6 dump (RDB 13) holding a type-26 stream with idempotent-producer state loads
/// with the stream carried verbatim (every byte after the key), checking agrees, and the stream
/// survives being written back.
#[test]
fn redis_8_6_stream_with_idmp_is_carried_verbatim() {
    let value = stream_v4(100, 100);
    let dump = Dump::new(b"REDIS0013").select(0).raw(&[26]).string(b"events").raw(&value).seal();
    let (ks, summary) = read_both(&dump).expect("a valid RDB 13 stream loads");
    assert_eq!(summary.version, 13);
    match &ks.get(0, b"events").expect("the stream").value {
        Value::Opaque(o) => assert_eq!((o.rdb_type, &o.payload), (26, &value)),
        other => panic!("expected an opaque stream, found {other:?}"),
    }
    assert_eq!(ks.get(0, b"events").unwrap().value.type_name(), "stream");
    assert_eq!(rewrite(&ks), ks, "written back and read again");
}

/// The IDMP duration (1 to 86400 s) and maximum (1 to 10000) out of range are `Corrupt`, as
/// Redis 8.6 refuses them (src/server.h, `CONFIG_STREAM_IDMP_*`).
#[test]
fn stream_idmp_limits_are_enforced() {
    for (duration, max) in [(0, 100), (86_401, 100), (100, 0), (100, 10_001)] {
        let dump = Dump::new(b"REDIS0013").select(0).raw(&[26]).string(b"s").raw(&stream_v4(duration, max)).seal();
        let err = read_both(&dump).unwrap_err();
        assert!(
            matches!(&err, RdbError::Corrupt { what, reason, .. } if what.contains("stream s") && reason.contains("IDMP")),
            "duration {duration}, max {max}: {err:?}"
        );
    }
}

/// A 32-bit key metadata class spec (Redis 8.6.3 src/keymeta.c, `keyMetaClassEncode`): four
/// 6-bit characters of the class name, 5 version bits, 3 flag bits (bit 0: ALLOW_IGNORE).
fn class_spec(name: &[u8; 4], version: u32, flags: u32) -> [u8; 4] {
    const CSET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-";
    let chars = name.iter().fold(0u32, |v, c| (v << 6) | CSET.iter().position(|x| x == c).unwrap() as u32);
    ((((chars << 5) | version) << 3) | flags).to_le_bytes()
}

/// Key metadata (opcode 243, RDB 13) before key `k`: `classes` class specs with `flags`, each
/// followed by a module value (an unsigned integer, a string, a double, then the module EOF).
fn key_meta_dump(classes: u64, flags: u32) -> (Vec<u8>, u64) {
    let d = Dump::new(b"REDIS0013").select(0).raw(&[0xFC]).raw(&4_102_444_800_000i64.to_le_bytes());
    let mut d = d.raw(&[243]).len(classes);
    let first_spec = d.at();
    for _ in 0..classes {
        d = d
            .raw(&class_spec(b"Km_1", 1, flags))
            .len(2)
            .len(42)
            .len(5)
            .string(b"meta")
            .len(4)
            .raw(&1.5f64.to_le_bytes())
            .len(0);
    }
    (d.set(b"k", b"v").set(b"plain", b"p").seal(), first_spec)
}

/// Key metadata whose class may be ignored is skipped, as Redis without the class's module
/// skips it: the key loads with its expiry, and the summary counts what was skipped.
#[test]
fn ignorable_key_metadata_is_skipped() {
    let (dump, _) = key_meta_dump(2, 0b001);
    let (ks, summary) = read_both(&dump).expect("ignorable metadata is skipped");
    let k = ks.get(0, b"k").expect("the key after its metadata");
    assert_eq!((&k.value, k.expire_at_ms), (&Value::String(b"v".to_vec()), Some(4_102_444_800_000)));
    assert_eq!((ks.len(), summary.key_metadata_skipped), (2, 2));
}

/// Key metadata whose class must be loaded by its module is refused, naming the class
/// (`META-Km_1`) and the byte of its spec; more than 7 classes is `Corrupt`.
#[test]
fn required_key_metadata_is_refused_naming_the_class() {
    let (dump, spec_at) = key_meta_dump(1, 0b000);
    let err = read_both(&dump).unwrap_err();
    assert!(
        matches!(&err, RdbError::KeyMetadata { offset, class } if *offset == spec_at && class == "META-Km_1"),
        "{err:?}"
    );
    let (dump, _) = key_meta_dump(8, 0b001);
    assert!(matches!(read_both(&dump), Err(RdbError::Corrupt { .. })));
}

/// RDB 14 and later are not read (Redis 8.6, the newest release, writes 13).
#[test]
fn rdb_14_is_not_read() {
    let dump = Dump::new(b"REDIS0014").select(0).set(b"k", b"v").seal();
    assert!(matches!(read_both(&dump), Err(RdbError::UnsupportedVersion { version: 14 })));
}

// ---- Valkey 9.0 ---------------------------------------------------------------------------------

/// A Valkey type-22 hash (Valkey src/rdb.c, `RDB_TYPE_HASH_2`): a length, then per field the
/// field, the value and an 8-byte little-endian expiry in unix ms (-1 for none).
fn valkey_hash_2(d: Dump, key: &[u8], fields: &[(&[u8], &[u8], i64)]) -> Dump {
    let mut d = d.raw(&[22]).string(key).len(fields.len() as u64);
    for (f, v, expiry) in fields {
        d = d.string(f).string(v).raw(&expiry.to_le_bytes());
    }
    d
}

/// A Valkey 9.0 dump: `VALKEY080`, AUX fields, a slot import in progress (opcode 243: the job
/// name, a range count, first and last slots), then a string, a type-22 hash without field
/// expiries and one with.
fn valkey_dump() -> Vec<u8> {
    let d = Dump::new(b"VALKEY080").raw(&[250]).string(b"valkey-ver").string(b"9.0.1");
    let d = d.raw(&[243]).string(&[b'a'; 40]).len(2).len(0).len(99).len(5000).len(5460);
    let d = d.select(0).raw(&[251]).len(3).len(0).set(b"s", b"v");
    let d = valkey_hash_2(d, b"plain", &[(b"f1", b"v1", -1), (b"f2", b"v2", -1)]);
    let d = valkey_hash_2(d, b"hfe", &[(b"f1", b"v1", 4_102_444_800_000), (b"f2", b"v2", -1)]);
    d.seal()
}

/// A Valkey 9.0 dump loads: the slot import is read (and counted, not carried), a type-22 hash
/// with no field expiry is an ordinary hash, and one with field expiries is carried as Redis's
/// type 22 with absolute TTLs (0 for none), which our reader reads back unchanged.
#[test]
fn valkey_9_dumps_load() {
    let dump = valkey_dump();
    let (ks, summary) = read_both(&dump).expect("a Valkey 9.0 dump loads");
    assert_eq!((summary.version, summary.dialect, summary.slot_imports), (80, Dialect::Valkey, 1));
    assert_eq!(summary.aux("valkey-ver"), Some(&b"9.0.1"[..]));
    assert_eq!(ks.get(0, b"s").unwrap().value, Value::String(b"v".to_vec()));
    let plain: std::collections::HashMap<_, _> =
        [(b"f1".to_vec(), b"v1".to_vec()), (b"f2".to_vec(), b"v2".to_vec())].into_iter().collect();
    assert_eq!(ks.get(0, b"plain").unwrap().value, Value::Hash(Box::new(plain)));
    // Redis's type 22: a length, then per field its TTL (a length), the field and the value.
    let redis_22 =
        Dump(Vec::new()).len(2).len(4_102_444_800_000).string(b"f1").string(b"v1").len(0).string(b"f2").string(b"v2").0;
    match &ks.get(0, b"hfe").unwrap().value {
        Value::Opaque(o) => assert_eq!((o.rdb_type, &o.payload), (22, &redis_22)),
        other => panic!("expected Redis's type 22, found {other:?}"),
    }
    assert_eq!(rewrite(&ks), ks, "written back as a Redis dump and read again");
    // The records name the type as Valkey does.
    let mut reader = RdbReader::new(dump.as_slice()).unwrap();
    let mut encodings = Vec::new();
    while let Some(item) = reader.next_item().unwrap() {
        if let Item::Key(r) = item {
            encodings.push(r.encoding());
        }
    }
    assert_eq!(encodings, ["string (raw)", "hash_2", "hash_2"]);
}

/// Valkey hash expiries below -1 are refused, as Valkey refuses them; 0 and anything past 48
/// bits, which Redis's format cannot carry, are refused too rather than changed.
#[test]
fn valkey_hash_2_expiries_out_of_range_are_refused() {
    for expiry in [-2, 0, 1 << 48, i64::MAX] {
        let d = Dump::new(b"VALKEY080").select(0);
        let dump = valkey_hash_2(d, b"h", &[(b"f", b"v", expiry)]).seal();
        let err = read_both(&dump).unwrap_err();
        assert!(
            matches!(&err, RdbError::Corrupt { what, .. } if what.contains("hash_2 of key h")),
            "{expiry}: {err:?}"
        );
    }
}

/// Valkey numbering applies only behind the `VALKEY` magic: there, 23 and up are no value
/// types, version 81 (Valkey 9.2) is not read, and `REDIS` dumps keep Redis's meaning of 22.
#[test]
fn valkey_numbering_follows_the_magic() {
    let dump = Dump::new(b"VALKEY080").select(0).raw(&[23]).string(b"k").seal();
    assert!(matches!(read_both(&dump), Err(RdbError::UnknownType { byte: 23, offset: 11 })));
    let dump = Dump::new(b"VALKEY081").select(0).set(b"k", b"v").seal();
    assert!(matches!(read_both(&dump), Err(RdbError::UnsupportedVersion { version: 81 })));
    // The same type-22 bytes behind REDIS0012 are Redis's layout (TTL first): here the "TTL"
    // is the string length 2 and the "field" starts with 'f', so the value runs past the end.
    let d = Dump::new(b"REDIS0012").select(0);
    let dump = valkey_hash_2(d, b"h", &[(b"f1", b"v1", -1)]).seal();
    assert!(read_both(&dump).is_err(), "Redis's type 22 is not Valkey's");
}

// ---- redis-server 7.0.15 as the oracle ------------------------------------------------------------

/// Write `dump` to a file in a fresh directory, or `None` (saying so on stderr) without
/// `redis-server` on PATH.
fn dump_for_redis(test: &str, dump: &[u8]) -> Option<(tempfile::TempDir, std::path::PathBuf)> {
    if RedisServer::find().is_none() {
        eprintln!("redis-server not found on PATH: skipping {test}");
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("crafted.rdb");
    std::fs::write(&path, dump).unwrap();
    Some((dir, path))
}

/// redis-server (7.0.15 here) loads the release-candidate libraries of our crafted dump and
/// lists exactly the code our reader converted them to: the layout and the conversion are
/// Redis's own.
#[test]
fn redis_loads_the_pre_release_libraries_as_we_do() {
    let dump = pre_ga_dump();
    let Some((_dir, path)) = dump_for_redis("redis_loads_the_pre_release_libraries_as_we_do", &dump) else { return };
    let server = RedisServer::start_with_dump(&path).expect("redis-server loads opcode 246");
    let theirs = server.function_libraries().expect("FUNCTION LIST");
    let (ks, _) = rdb::load(dump.as_slice()).unwrap();
    let ours: std::collections::BTreeMap<String, String> = ks
        .functions()
        .iter()
        .map(|code| {
            let code = String::from_utf8(code.clone()).unwrap();
            let name = code.split("name=").nth(1).and_then(|rest| rest.split('\n').next()).unwrap().to_string();
            (name, code)
        })
        .collect();
    assert_eq!(theirs, ours);
}

/// redis-server (7.0.15 here) refuses the dump holding key `k` twice in db 0, as we do: it
/// exits during startup (its log says "RDB has duplicated key 'k' in DB 0", then a crash
/// report longer than the log tail the harness keeps).
#[test]
fn redis_refuses_the_duplicate_key_as_we_do() {
    let (dump, _) = duplicate_key_dump();
    let Some((_dir, path)) = dump_for_redis("redis_refuses_the_duplicate_key_as_we_do", &dump) else { return };
    match RedisServer::start_with_dump(&path) {
        Err(RedisServerError::ExitedEarly { status, .. }) => {
            assert!(!status.success(), "redis-server exited with {status}");
        }
        Err(e) => panic!("expected redis-server to exit, got {e}"),
        Ok(_) => panic!("redis-server loaded a dump with a duplicate key"),
    }
}
