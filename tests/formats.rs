//! The formats side by side (`snaplab_formats`): every keyspace round-trips through
//! every format and compression to the same keyspace (format equivalence), the parallel
//! encoder writes exactly the sequential encoder's bytes, JSON is binary-safe, and a
//! truncated or corrupted file in any format is a typed error, never a panic. The last
//! tests run `snaplab formats` and `snaplab convert` as a user would.

mod support;

use std::collections::{HashMap, HashSet, VecDeque};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::process::{Command, Output};
use std::sync::OnceLock;

use proptest::collection::vec;
use proptest::prelude::*;
use sha2::{Digest, Sha256};
use snaplab_core::rdb::{self, EncodeOptions};
use snaplab_core::{Entry, Keyspace, Opaque, Value};
use snaplab_formats::{self as formats, Codec, Compression, Format, FormatError, same_keyspace};
use snaplab_harness::dataset::{self, DatasetSpec};
use support::arb::{config, keyspace};
use support::{corpus_file, large_keyspace, sample_keyspace};

/// The pool the parallel encoder uses in these tests: two workers, as on the reference
/// machine, so chunks really are encoded concurrently.
fn pool() -> &'static rayon::ThreadPool {
    static POOL: OnceLock<rayon::ThreadPool> = OnceLock::new();
    POOL.get_or_init(|| rayon::ThreadPoolBuilder::new().num_threads(2).build().expect("a 2-thread pool"))
}

fn encode(codec: Codec, ks: &Keyspace) -> Vec<u8> {
    let mut out = Vec::new();
    let written = codec.encode(ks, &mut out, None).unwrap_or_else(|e| panic!("{codec:?}: encode failed: {e}"));
    assert_eq!(written.file_bytes, out.len() as u64, "{codec:?}: Encoded.file_bytes");
    assert_eq!(written.keys, ks.len() as u64, "{codec:?}: Encoded.keys");
    out
}

fn encode_parallel(codec: Codec, ks: &Keyspace) -> Vec<u8> {
    let mut out = Vec::new();
    codec
        .encode_parallel(ks, &mut out, pool(), None)
        .unwrap_or_else(|e| panic!("{codec:?}: parallel encode failed: {e}"));
    out
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// Encode `ks` with `codec` both ways, check the parallel bytes are the sequential ones and
/// that they decode to exactly `ks`. Returns the file.
fn check_codec(codec: Codec, ks: &Keyspace) -> Vec<u8> {
    let file = encode(codec, ks);
    let back = codec.decode(file.as_slice()).unwrap_or_else(|e| panic!("{codec:?}: our own file does not decode: {e}"));
    assert!(same_keyspace(ks, &back), "{codec:?}: the keyspace changed in the round trip");
    let par = encode_parallel(codec, ks);
    assert!(
        sha256(&file) == sha256(&par),
        "{codec:?}: parallel bytes differ from sequential ({} vs {} bytes)",
        par.len(),
        file.len()
    );
    file
}

/// A keyspace holding values the RDB writer carries verbatim (a stream, a hash with field
/// TTLs) with arbitrary payloads: the non-RDB formats must carry them too. (RDB parses the
/// payload on load, so RDB gets real ones from the corpus test below.)
fn opaque_keyspace() -> Keyspace {
    let mut ks = sample_keyspace();
    ks.insert(
        0,
        b"stream".to_vec(),
        Entry::new(Value::Opaque(Box::new(Opaque { rdb_type: 21, payload: (0..=255).collect() }))),
    );
    ks.insert(
        4,
        b"hash-ttl".to_vec(),
        Entry::expiring(Value::Opaque(Box::new(Opaque { rdb_type: 25, payload: vec![0xff, 0, 1] })), 99),
    );
    ks
}

/// The codecs whose file carries a checksum over the data (RDB's and the stream's CRC-64,
/// gzip's CRC-32): a flipped bit must never give back different data.
fn checksummed(codec: Codec) -> bool {
    matches!(codec.format.name(), "rdb" | "stream") || codec.compression == Compression::Gzip
}

// ---- equivalence ------------------------------------------------------------------------

proptest! {
    #![proptest_config(config(24))]

    /// Format equivalence: any keyspace round-trips through every format and compression
    /// to the same keyspace, and every parallel encoder writes the sequential bytes.
    #[test]
    fn any_keyspace_round_trips_through_every_codec(ks in keyspace()) {
        for codec in formats::codecs() {
            check_codec(codec, &ks);
        }
    }

    /// JSON is binary-safe: keys, values and members of arbitrary bytes come back exactly,
    /// and the file is valid UTF-8 with one JSON object per line.
    #[test]
    fn json_carries_arbitrary_bytes(
        entries in vec((vec(any::<u8>(), 0..24), vec(any::<u8>(), 0..40)), 1..20),
        members in vec(vec(any::<u8>(), 0..8), 1..10),
    ) {
        let mut ks = Keyspace::new();
        for (k, v) in entries {
            ks.insert(0, k, Entry::new(Value::String(v)));
        }
        ks.insert(1, vec![0x80], Entry::new(Value::List(Box::new(members.iter().cloned().collect()))));
        ks.insert(1, vec![0xc3], Entry::new(Value::Set(Box::new(members.iter().cloned().collect()))));
        ks.insert(1, vec![0xfe], Entry::new(Value::ZSet(Box::new(members.iter().map(|m| (m.clone(), -0.0)).collect()))));
        let codec = Codec::new(&formats::Json, Compression::None).unwrap();
        let file = check_codec(codec, &ks);
        let text = String::from_utf8(file).expect("a JSON file is UTF-8 whatever the data");
        for line in text.lines() {
            let parsed: serde_json::Value = serde_json::from_str(line).expect("each line is JSON");
            prop_assert!(parsed.is_object(), "{}", line);
        }
    }
}

/// The sample keyspace (every type, binary data, expiries, functions, three databases) and
/// one with values carried verbatim round-trip through every codec.
#[test]
fn sample_and_opaque_values_round_trip() {
    for codec in formats::codecs() {
        check_codec(codec, &sample_keyspace());
        if codec.format.name() != "rdb" {
            check_codec(codec, &opaque_keyspace());
        }
    }
}

/// Enough keys for many chunks and several windows of the parallel encoder, plus values
/// larger than the writer's 64 KiB buffer: parallel output is still the sequential bytes.
#[test]
fn parallel_is_sequential_over_many_chunks_and_large_values() {
    let many = dataset::generate(&DatasetSpec { keys: 40_000, value_size: 24, seed: 3 });
    for codec in formats::codecs() {
        check_codec(codec, &many);
        check_codec(codec, &large_keyspace());
    }
}

/// The `rdb` format writes exactly what the RDB writer writes in canonical mode, with and
/// without LZF: the reference is the reference.
#[test]
fn rdb_format_is_the_canonical_rdb_writer() {
    let ks = sample_keyspace();
    for (compression, compress) in [(Compression::None, false), (Compression::Lzf, true)] {
        let opts = EncodeOptions { compress, canonical: true, strategy: None, ctime_s: 0 };
        let (want, _) = rdb::write_view(&ks, Vec::new(), &opts, None).unwrap();
        let got = encode(Codec::new(&formats::Rdb, compression).unwrap(), &ks);
        assert!(got == want, "rdb with {compression:?} differs from write_view");
    }
}

/// A real dump written by Redis 7.0.15 (every type, streams included) converts to every
/// format and back to the same keyspace.
#[test]
fn redis_dump_round_trips_through_every_codec() {
    let Some(path) =
        corpus_file("redis_dump_round_trips_through_every_codec", "redis-7.0.15-generated/all_types_v10.rdb")
    else {
        return;
    };
    let (ks, _) = rdb::load_file(&path).unwrap();
    assert!(ks.iter().any(|(_, _, e)| matches!(e.value, Value::Opaque(_))), "the dump holds a stream");
    for codec in formats::codecs() {
        check_codec(codec, &ks);
    }
}

/// A 5 MiB string encodes and decodes through bincode and the stream with our wincode
/// configuration, while wincode's default (4 MiB preallocation limit) refuses to read it:
/// the reason `bincode::config` exists. (Here rather than in the crate's unit tests: those
/// share a process with a test that measures the process's resident size.)
#[test]
fn large_values_need_the_configured_limit() {
    use snaplab_formats::bincode::{Record, decode_record, encode_record};
    let big = vec![7u8; 5 << 20];
    let mut ks = Keyspace::new();
    ks.insert(0, b"big".to_vec(), Entry::new(Value::String(big.clone())));
    for format in [&formats::Bincode as &'static dyn Format, &formats::Stream] {
        for compression in [Compression::None, Compression::Gzip] {
            check_codec(Codec::new(format, compression).unwrap(), &ks);
        }
    }
    let mut out = Vec::new();
    encode_record(&mut out, &Record::Function { code: &big }).unwrap();
    assert_eq!(decode_record(&out).unwrap(), Record::Function { code: big });
    let err = wincode::deserialize::<Record<Vec<u8>>>(&out).unwrap_err();
    assert!(err.to_string().contains("preallocation limit"), "the default 4 MiB limit refuses it: {err}");
}

/// `decode_any` recognises every codec's file from its first bytes and decodes it.
#[test]
fn decode_any_detects_every_codec() {
    let ks = sample_keyspace();
    for codec in formats::codecs() {
        let (found, back) = formats::decode_any(encode(codec, &ks).as_slice()).unwrap();
        assert_eq!(found.format.name(), codec.format.name(), "{codec:?}");
        assert_eq!(found.compression == Compression::Gzip, codec.compression == Compression::Gzip, "{codec:?}");
        assert!(same_keyspace(&ks, &back), "{codec:?}");
    }
    let err = formats::decode_any(&b"PNG\x0d\x0a"[..]).unwrap_err();
    assert!(matches!(err, FormatError::Unrecognized { .. }), "{err}");
}

/// Hand-made values at the model's edges survive every codec: empty strings and keys,
/// huge and tiny scores, infinities, a negative-zero score, expiries at i64's ends.
#[test]
fn edge_values_round_trip() {
    let mut ks = Keyspace::new();
    ks.insert(0, Vec::new(), Entry::expiring(Value::String(Vec::new()), i64::MIN));
    ks.insert(0, b"max".to_vec(), Entry::expiring(Value::String(b"x".to_vec()), i64::MAX));
    let scores = [f64::MAX, f64::MIN_POSITIVE, f64::from_bits(1), f64::INFINITY, f64::NEG_INFINITY, -0.0, 1e-300];
    let zset: HashMap<Vec<u8>, f64> = scores.iter().enumerate().map(|(i, s)| (vec![i as u8], *s)).collect();
    ks.insert(15, b"z".to_vec(), Entry::new(Value::ZSet(Box::new(zset))));
    ks.insert(7, b"l".to_vec(), Entry::new(Value::List(Box::new(VecDeque::from([Vec::new(), Vec::new()])))));
    ks.insert(7, b"s".to_vec(), Entry::new(Value::Set(Box::new(HashSet::from([Vec::new()])))));
    ks.insert(7, b"h".to_vec(), Entry::new(Value::Hash(Box::new(HashMap::from([(Vec::new(), Vec::new())])))));
    for codec in formats::codecs() {
        check_codec(codec, &ks);
    }
}

// ---- hostile input ----------------------------------------------------------------------

/// What decoding `file` did, panics caught.
enum Outcome {
    Ok(Box<Keyspace>),
    Err(FormatError),
    Panic,
}

fn try_decode(codec: Codec, file: &[u8]) -> Outcome {
    match catch_unwind(AssertUnwindSafe(|| codec.decode(file))) {
        Ok(Ok(ks)) => Outcome::Ok(Box::new(ks)),
        Ok(Err(e)) => Outcome::Err(e),
        Err(_) => Outcome::Panic,
    }
}

/// A file cut at any byte, in any codec, is a typed error: never accepted, never a panic.
#[test]
fn truncation_at_every_offset_is_a_typed_error() {
    let ks = sample_keyspace();
    // Panics are expected to be caught here; keep the test output readable.
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let mut failures = Vec::new();
    for codec in formats::codecs() {
        let file = encode(codec, &ks);
        for cut in 0..file.len() {
            match try_decode(codec, &file[..cut]) {
                Outcome::Err(_) => {}
                Outcome::Ok(_) => failures.push(format!("{codec:?}: cut at {cut} of {} was accepted", file.len())),
                Outcome::Panic => failures.push(format!("{codec:?}: cut at {cut} of {} panicked", file.len())),
            }
        }
    }
    std::panic::set_hook(hook);
    assert!(failures.is_empty(), "{} failures:\n{}", failures.len(), failures.join("\n"));
}

/// Every single-bit flip of a small file, in any codec, never panics; where the file has a
/// checksum (RDB, stream, anything gzipped) it never yields different data either: the
/// flip is detected, or it fell on a byte no reader looks at (gzip's timestamp) and the
/// data is intact. Errors name an offset inside the (decompressed) file.
#[test]
fn bit_flips_never_panic_and_checksums_catch_them() {
    let mut ks = Keyspace::new();
    ks.insert(
        0,
        b"s".to_vec(),
        Entry::expiring(Value::String(b"a string value that LZF can squeeze squeeze".to_vec()), 7),
    );
    ks.insert(0, b"i".to_vec(), Entry::new(Value::String(b"12345".to_vec())));
    ks.insert(1, b"l".to_vec(), Entry::new(Value::List(Box::new(VecDeque::from([b"a".to_vec(), b"\xff".to_vec()])))));
    ks.insert(1, b"h".to_vec(), Entry::new(Value::Hash(Box::new(HashMap::from([(b"f".to_vec(), b"v".to_vec())])))));
    ks.insert(
        2,
        b"z".to_vec(),
        Entry::new(Value::ZSet(Box::new(HashMap::from([(b"m".to_vec(), 2.5), (b"n".to_vec(), -0.0)])))),
    );
    ks.insert(2, b"t".to_vec(), Entry::new(Value::Set(Box::new(HashSet::from([b"x".to_vec()])))));
    ks.add_function(b"#!lua name=l\nredis.register_function('f', function() return 1 end)".to_vec());
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let mut failures = Vec::new();
    for codec in formats::codecs() {
        let file = encode(codec, &ks);
        let mut flipped = file.clone();
        for i in 0..file.len() {
            for bit in 0..8 {
                flipped[i] ^= 1 << bit;
                match try_decode(codec, &flipped) {
                    Outcome::Panic => failures.push(format!("{codec:?}: flipping bit {bit} of byte {i} panicked")),
                    Outcome::Ok(back) if checksummed(codec) && !same_keyspace(&ks, &back) => {
                        failures.push(format!("{codec:?}: flipping bit {bit} of byte {i} gave different data"))
                    }
                    Outcome::Err(e) if e.offset() > 16 * file.len() as u64 => {
                        failures.push(format!("{codec:?}: flipping bit {bit} of byte {i}: offset out of range: {e}"))
                    }
                    Outcome::Ok(_) | Outcome::Err(_) => {}
                }
                flipped[i] ^= 1 << bit;
            }
        }
    }
    std::panic::set_hook(hook);
    assert!(failures.is_empty(), "{} failures:\n{}", failures.len(), failures.join("\n"));
}

/// Extra bytes after the trailer, or after the gzip member, are refused.
#[test]
fn trailing_bytes_are_refused() {
    let ks = sample_keyspace();
    for codec in formats::codecs() {
        let mut file = encode(codec, &ks);
        file.push(b'\n');
        let err = codec.decode(file.as_slice()).expect_err("trailing byte accepted");
        assert!(matches!(err, FormatError::TrailingData { .. } | FormatError::Corrupt { .. }), "{codec:?}: {err}");
    }
}

/// Two records for one key (spliced into a JSON file by hand) are a duplicate-key error.
#[test]
fn duplicate_keys_are_refused() {
    let mut ks = Keyspace::new();
    ks.insert(3, b"k".to_vec(), Entry::new(Value::String(b"v".to_vec())));
    let json = String::from_utf8(encode(Codec::new(&formats::Json, Compression::None).unwrap(), &ks)).unwrap();
    let lines: Vec<&str> = json.lines().collect();
    let doubled = format!("{}\n{}\n{}\n{{\"end\":{{\"keys\":2,\"functions\":0}}}}\n", lines[0], lines[1], lines[1]);
    let err = formats::Json.decode(&mut doubled.as_bytes());
    assert!(matches!(err, Err(FormatError::DuplicateKey { db: 3, .. })), "{err:?}");
}

// ---- the command line -------------------------------------------------------------------

fn snaplab(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_snaplab")).args(args).output().expect("the snaplab binary runs")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// `snaplab formats` on a small built-in dataset prints a row per codec and writes the JSON
/// report with exactly the contract's keys, every round trip ok and every parallel
/// encoding identical.
#[test]
fn formats_command_reports_every_codec() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("formats.json");
    let out =
        snaplab(&["formats", "--keys", "3000", "--value-size", "40", "--json", json.to_str().unwrap(), "--quiet"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let table = String::from_utf8_lossy(&out.stdout);
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(rows.len(), formats::codecs().len());
    for (row, codec) in rows.iter().zip(formats::codecs()) {
        for key in ["format", "compression", "file_bytes", "encode_ms", "decode_ms", "round_trip", "parallel_identical"]
        {
            assert!(row.get(key).is_some(), "missing {key} in {row}");
        }
        assert_eq!(row["format"], codec.format.name());
        assert_eq!(row["compression"], codec.compression.name());
        assert_eq!(row["round_trip"], true, "{row}");
        assert_eq!(row["parallel_identical"], true, "{row}");
        assert!(row["file_bytes"].as_u64().unwrap() > 3000 * 40 / 4, "{row}");
        assert!(
            table.lines().any(|l| l.starts_with(codec.format.name()) && l.contains(codec.compression.name())),
            "{table}"
        );
    }
}

/// `snaplab formats --input` reads a real Redis dump and every round trip is ok.
#[test]
fn formats_command_on_a_redis_dump() {
    let Some(path) = corpus_file("formats_command_on_a_redis_dump", "redis-7.0.15-generated/all_types_v10.rdb") else {
        return;
    };
    let out = snaplab(&["formats", "--input", path.to_str().unwrap(), "--quiet"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let table = String::from_utf8_lossy(&out.stdout);
    let good = table.lines().filter(|l| l.contains(" ok ") && l.contains(" yes ")).count();
    assert_eq!(good, formats::codecs().len(), "{table}");
}

/// `snaplab convert` turns a dump into JSON and back into an RDB file holding the same
/// keyspace, gzips on request, and refuses what it cannot do with exit 1 and a reason.
#[test]
fn convert_command() {
    let dir = tempfile::tempdir().unwrap();
    let ks = sample_keyspace();
    let dump = dir.path().join("in.rdb");
    std::fs::write(&dump, encode(Codec::new(&formats::Rdb, Compression::Lzf).unwrap(), &ks)).unwrap();
    let path = |name: &str| dir.path().join(name).to_str().unwrap().to_string();

    let out = snaplab(&["convert", dump.to_str().unwrap(), &path("out.json"), "--to", "json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let json = std::fs::read(path("out.json")).unwrap();
    assert!(json.starts_with(b"{\"format\":\"snaplab-json\""));
    let back = Codec::new(&formats::Json, Compression::None).unwrap().decode(json.as_slice()).unwrap();
    assert!(same_keyspace(&ks, &back));

    let out = snaplab(&["convert", &path("out.json"), &path("back.rdb.gz"), "--to", "rdb", "--compress", "gzip"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let gz = std::fs::read(path("back.rdb.gz")).unwrap();
    assert!(gz.starts_with(&formats::GZIP_MAGIC));
    let back = Codec::new(&formats::Rdb, Compression::Gzip).unwrap().decode(gz.as_slice()).unwrap();
    assert!(same_keyspace(&ks, &back));

    let out = snaplab(&["convert", &path("back.rdb.gz"), &path("x.json"), "--to", "json", "--compress", "lzf"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("lzf"), "{}", stderr(&out));

    std::fs::write(path("junk"), b"not a snapshot at all").unwrap();
    let out = snaplab(&["convert", &path("junk"), &path("y.json"), "--to", "json"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("not a"), "{}", stderr(&out));
    assert!(!dir.path().join("y.json").exists(), "a refused conversion leaves no output");
}
