//! Round trips through the RDB codec: any keyspace written and read back is the same
//! keyspace, every registered strategy writes the same canonical bytes, real dumps from the
//! corpus survive being rewritten, and the header and trailer are exactly Redis's.

mod support;

use std::io::Read;

use proptest::prelude::*;
use sha2::{Digest, Sha256};
use snaplab_core::rdb::{self, Checksum, EncodeOptions, Item, RdbReader, StringEncoding, load, load_file, scan};
use snaplab_core::{Entry, Keyspace, SaveOptions, Value};
use support::arb::{config, keyspace};
use support::{assert_same_keyspace, corpus_dir, encode, large_keyspace, rdb_files, sample_keyspace};

// ---- oracles ----------------------------------------------------------------------------

/// How Redis's `rdbSaveRawString` must store `s` as an integer, decided independently of the
/// encoder: only a canonical decimal (printing it gives back `s`) that fits 32 bits.
fn expected_int_encoding(s: &[u8]) -> Option<StringEncoding> {
    let n: i64 = std::str::from_utf8(s).ok()?.parse().ok()?;
    if n.to_string().as_bytes() != s {
        return None;
    }
    if i8::try_from(n).is_ok() {
        Some(StringEncoding::Int8)
    } else if i16::try_from(n).is_ok() {
        Some(StringEncoding::Int16)
    } else if i32::try_from(n).is_ok() {
        Some(StringEncoding::Int32)
    } else {
        None
    }
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// Write `ks` with the given options, read it back, and check the keyspace, the checksum, the
/// counts and the string encodings the reader saw.
fn check_roundtrip(ks: &Keyspace, compress: bool, canonical: bool) {
    let ctx = format!("compress={compress} canonical={canonical}");
    let (bytes, stats) = encode(ks, compress, canonical);
    assert_eq!(stats.bytes, bytes.len() as u64, "{ctx}: EncodeStats.bytes");
    assert_eq!(stats.keys, ks.len() as u64, "{ctx}: EncodeStats.keys");
    let (back, summary) = load(&bytes[..]).unwrap_or_else(|e| panic!("{ctx}: our own dump does not load: {e}"));
    assert_same_keyspace(ks, &back, &ctx);
    assert_eq!(summary.checksum, Some(Checksum::Verified(stats.checksum)), "{ctx}");
    assert_eq!(summary.bytes, bytes.len() as u64, "{ctx}: the reader consumed the whole dump");
    assert_eq!(summary.keys(), ks.len() as u64, "{ctx}");
    assert_eq!(summary.functions, ks.functions().len() as u64, "{ctx}");
    scan(&bytes[..], |r| {
        let Value::String(s) = &r.entry.value else { return };
        let enc = r.string_encoding.expect("a string record has an encoding");
        match expected_int_encoding(s) {
            Some(want) => assert_eq!(enc, want, "{ctx}: value {s:?} of key {:?}", r.key),
            None if !compress || s.len() <= 20 => {
                assert_eq!(enc, StringEncoding::Raw, "{ctx}: value {s:?} of key {:?}", r.key)
            }
            None => assert!(matches!(enc, StringEncoding::Raw | StringEncoding::Lzf), "{ctx}: {enc:?}"),
        }
    })
    .unwrap_or_else(|e| panic!("{ctx}: scan failed: {e}"));
}

// ---- properties -------------------------------------------------------------------------

proptest! {
    #![proptest_config(config(64))]

    /// Any keyspace written by `write_view` loads back identical (score bits included), with
    /// compression on and off, canonical and not, and with Redis's string encodings.
    #[test]
    fn any_keyspace_round_trips(ks in keyspace()) {
        for compress in [false, true] {
            for canonical in [false, true] {
                check_roundtrip(&ks, compress, canonical);
            }
        }
    }
}

proptest! {
    #![proptest_config(config(16))]

    /// Every registered strategy's canonical SAVE and BGSAVE write the same bytes as the
    /// reference encoder, twice in a row, and its non-canonical save loads back the same keyspace.
    #[test]
    fn strategies_write_identical_canonical_files(ks in keyspace()) {
        let dir = tempfile::tempdir().unwrap();
        let (reference, _) = {
            let opts = EncodeOptions { compress: true, canonical: true, strategy: None, ctime_s: 0 };
            rdb::write_view(&ks, Vec::new(), &opts, None).unwrap()
        };
        let registry = snaplab::registry();
        prop_assert!(!registry.entries().is_empty());
        for entry in registry.entries() {
            let store = (entry.build)(ks.clone());
            let name = entry.name;
            let mut hashes = Vec::new();
            for (i, via_bgsave) in [false, false, true].into_iter().enumerate() {
                let path = dir.path().join(format!("{name}-canonical-{i}.rdb"));
                if via_bgsave {
                    store.bgsave(&path, &SaveOptions::canonical()).unwrap().wait().unwrap();
                } else {
                    store.save(&path, &SaveOptions::canonical()).unwrap();
                }
                let bytes = std::fs::read(&path).unwrap();
                let (back, _) = load(&bytes[..]).unwrap();
                assert_same_keyspace(&ks, &back, &format!("{name} canonical save {i}"));
                hashes.push(sha256(&bytes));
            }
            prop_assert_eq!(hashes[0], sha256(&reference), "{} SAVE differs from the reference encoder", name);
            prop_assert_eq!(hashes[0], hashes[1], "{}: two canonical SAVEs differ", name);
            prop_assert_eq!(hashes[0], hashes[2], "{}: canonical BGSAVE differs from SAVE", name);

            let path = dir.path().join(format!("{name}-plain.rdb"));
            store.save(&path, &SaveOptions::default()).unwrap();
            let (back, summary) = load_file(&path).unwrap();
            assert_same_keyspace(&ks, &back, &format!("{name} non-canonical save"));
            prop_assert_eq!(summary.aux("snaplab-strategy"), Some(name.as_bytes()));
        }
    }
}

// ---- deterministic cases ----------------------------------------------------------------

/// The sample keyspace (every type, int/LZF/binary strings, past and negative expiries,
/// -0.0, ±inf and subnormal scores, functions, db 15) survives all four option combinations.
#[test]
fn sample_keyspace_round_trips() {
    let ks = sample_keyspace();
    for compress in [false, true] {
        for canonical in [false, true] {
            check_roundtrip(&ks, compress, canonical);
        }
    }
}

/// Values larger than the reader's 64 KiB buffer and the writer's 64 KiB flush threshold, and
/// counts that need the 32-bit length encoding, round-trip with compression on and off.
#[test]
fn large_values_cross_buffer_boundaries() {
    let ks = large_keyspace();
    for compress in [false, true] {
        let (bytes, _) = encode(&ks, compress, true);
        assert!(bytes.len() > 3 * 64 * 1024, "the dump spans several buffers ({} bytes)", bytes.len());
        check_roundtrip(&ks, compress, true);
    }
}

/// The exact bytes around the data: `REDIS0010`, the AUX fields redis-ver, redis-bits, ctime
/// and (outside canonical mode) snaplab-strategy, SELECTDB/RESIZEDB, EOF, and the CRC-64 that
/// the `crc` crate's CRC_64_REDIS computes over everything before it, little-endian.
#[test]
fn header_and_trailer_are_exact() {
    let oracle = crc::Crc::<u64>::new(&crc::CRC_64_REDIS);
    let mut ks = Keyspace::new();
    ks.insert(0, b"k".to_vec(), Entry::expiring(Value::String(b"v".to_vec()), 0x0102_0304_0506_0708));

    let opts = EncodeOptions { compress: true, canonical: false, strategy: Some("blocking"), ctime_s: 1_234_567_890 };
    let (bytes, stats) = rdb::write_view(&ks, Vec::new(), &opts, None).unwrap();
    let mut want: Vec<u8> = b"REDIS0010".to_vec();
    want.extend_from_slice(b"\xfa\x09redis-ver\x057.0.0"); // AUX, 9-byte name, 5-byte value
    want.extend_from_slice(b"\xfa\x0aredis-bits\xc0\x40"); // AUX, value 64 as an int8 (0xC0)
    want.extend_from_slice(b"\xfa\x05ctime\xc2\xd2\x02\x96\x49"); // value 1234567890 as an int32 LE (0xC2)
    want.extend_from_slice(b"\xfa\x10snaplab-strategy\x08blocking");
    want.extend_from_slice(b"\xfe\x00\xfb\x01\x01"); // SELECTDB 0, RESIZEDB 1 key, 1 expiry
    want.extend_from_slice(b"\xfc\x08\x07\x06\x05\x04\x03\x02\x01"); // EXPIRETIME_MS, 8 bytes LE
    want.extend_from_slice(b"\x00\x01k\x01v"); // type string, key "k", value "v"
    want.push(0xff); // EOF
    want.extend_from_slice(&oracle.checksum(&want).to_le_bytes());
    assert_eq!(bytes, want);
    assert_eq!(stats.checksum, oracle.checksum(&bytes[..bytes.len() - 8]));
    assert_eq!(stats.bytes, bytes.len() as u64);

    // Canonical mode: ctime 0 (int8), no strategy field; the CRC still matches the oracle.
    let (canon, _) = encode(&ks, true, true);
    let mut want: Vec<u8> = b"REDIS0010".to_vec();
    want.extend_from_slice(b"\xfa\x09redis-ver\x057.0.0\xfa\x0aredis-bits\xc0\x40\xfa\x05ctime\xc0\x00");
    want.extend_from_slice(b"\xfe\x00\xfb\x01\x01\xfc\x08\x07\x06\x05\x04\x03\x02\x01\x00\x01k\x01v\xff");
    want.extend_from_slice(&oracle.checksum(&want).to_le_bytes());
    assert_eq!(canon, want);

    // For a bigger dump (functions, every type, many dbs) the header and trailer hold too.
    let ks = sample_keyspace();
    for (compress, canonical) in [(false, false), (true, false), (true, true)] {
        let (bytes, stats) = encode(&ks, compress, canonical);
        assert!(bytes.starts_with(b"REDIS0010"));
        let body = &bytes[..bytes.len() - 8];
        assert_eq!(body.last(), Some(&0xff), "EOF opcode before the trailer");
        assert_eq!(bytes[bytes.len() - 8..], oracle.checksum(body).to_le_bytes());
        assert_eq!(stats.checksum, oracle.checksum(body));
        let mut reader = RdbReader::new(&bytes[..]).unwrap();
        assert_eq!(reader.version(), 10);
        let mut aux = Vec::new();
        while let Some(item) = reader.next_item().unwrap() {
            if let Item::Aux { key, value } = item {
                aux.push((String::from_utf8(key).unwrap(), String::from_utf8(value).unwrap()));
            }
        }
        let names: Vec<&str> = aux.iter().map(|(k, _)| k.as_str()).collect();
        let want_names = if canonical {
            vec!["redis-ver", "redis-bits", "ctime"]
        } else {
            vec!["redis-ver", "redis-bits", "ctime", "snaplab-strategy"]
        };
        assert_eq!(names, want_names);
        assert_eq!(reader.checksum(), Some(Checksum::Verified(oracle.checksum(body))));
    }
}

/// Every corpus dump the reader accepts, rewritten by `write_view` (compression on; opaque
/// streams and hashes with field TTLs carried verbatim, function libraries kept), loads back
/// to the same keyspace and passes `scan` with a verified checksum. Skips without the corpus.
#[test]
fn corpus_dumps_survive_rewriting() {
    let Some(dir) = corpus_dir("corpus_dumps_survive_rewriting") else { return };
    let files = rdb_files(&dir);
    let (mut rewritten, mut opaque, mut functions) = (0, 0, 0);
    let mut refused = Vec::new();
    for path in &files {
        let name = path.strip_prefix(&dir).unwrap().display().to_string();
        let (ks, summary) = match load_file(path) {
            Ok(x) => x,
            Err(e) => {
                refused.push(format!("{name}: {e}"));
                continue;
            }
        };
        for canonical in [false, true] {
            let (bytes, stats) = encode(&ks, true, canonical);
            let (back, _) = load(&bytes[..]).unwrap_or_else(|e| panic!("{name} rewritten does not load: {e}"));
            assert_same_keyspace(&ks, &back, &format!("{name} canonical={canonical}"));
            let scanned = scan(&bytes[..], |_| {}).unwrap_or_else(|e| panic!("{name} rewritten fails scan: {e}"));
            assert_eq!(scanned.checksum, Some(Checksum::Verified(stats.checksum)), "{name}");
            assert_eq!(scanned.keys(), summary.keys(), "{name}");
        }
        rewritten += 1;
        opaque += summary.opaque_values;
        functions += summary.functions;
    }
    eprintln!(
        "corpus_dumps_survive_rewriting: {rewritten} of {} dumps rewritten ({opaque} opaque values, {functions} \
         function libraries); {} refused by the reader:\n  {}",
        files.len(),
        refused.len(),
        refused.join("\n  ")
    );
    // Guard against a vacuous pass: the corpus holds dozens of loadable dumps, with streams,
    // hashes with field TTLs and function libraries among them.
    assert!(rewritten >= 50, "only {rewritten} corpus dumps loaded");
    assert!(opaque > 0, "no opaque value was exercised");
    assert!(functions > 0, "no function library was exercised");
}

/// A dump read through a reader that returns one byte per `read` call decodes the same as
/// one read from a slice (the reader's buffering does not depend on how input arrives).
#[test]
fn one_byte_reads_decode_the_same() {
    struct Trickle<'a>(&'a [u8]);
    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            if self.0.is_empty() || buf.is_empty() {
                return Ok(0);
            }
            buf[0] = self.0[0];
            self.0 = &self.0[1..];
            Ok(1)
        }
    }
    let ks = sample_keyspace();
    let (bytes, _) = encode(&ks, true, false);
    let (back, summary) = load(Trickle(&bytes)).unwrap();
    assert_same_keyspace(&ks, &back, "one byte per read");
    assert_eq!(summary.bytes, bytes.len() as u64);
}
