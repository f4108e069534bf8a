//! Redis interoperability: `redis-server` itself is the oracle.
//!
//! Every strategy in `snaplab::registry()` loads a dump that Redis wrote, saves it again
//! (default and canonical options), and the real `redis-server` must accept the result
//! (`redis-check-rdb` passes, the server starts) and hold exactly the same data: the same
//! `DEBUG DIGEST` (every key, value and expiry, encoding-independent), the same keys per
//! database and the same function libraries. The dumps come from two places: one that
//! `redis-server` writes here with every type in its small and large encodings, and every
//! corpus file that redis-server 7.0.15 loads (see ../shared/rdb-corpus/MANIFEST.md).
//!
//! Tests that need `redis-server` say so on stderr and skip when it is not on `PATH`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use snaplab::core::{SaveOptions, escape, rdb};
use snaplab::harness::redis_server::{RedisServer, RedisServerError, check_rdb, find_redis_check_rdb};

/// Far-future expiries (2100-01-01 and a little later, unix ms), so no key expires mid-test.
const FAR_FUTURE_MS: i64 = 4_102_444_800_000;

/// The function library the generated dump carries.
const LIBRARY: &str =
    "#!lua name=snaplab\nredis.register_function('snaplab_echo', function(keys, args) return args[1] end)";

/// Skip (with the message the design asks for) when `redis-server` is not on `PATH`.
fn redis_or_skip(test: &str) -> bool {
    if RedisServer::find().is_some() {
        return true;
    }
    snaplab_harness::skips::skipped(test, "redis-server not found on PATH");
    false
}

/// Run one command built from its parts, panicking with the command on error.
fn exec(con: &mut redis::Connection, parts: &[&[u8]]) {
    let mut cmd = redis::cmd(std::str::from_utf8(parts[0]).expect("command names are ASCII"));
    for part in &parts[1..] {
        cmd.arg(*part);
    }
    if let Err(e) = cmd.exec(con) {
        panic!("{} failed: {e}", parts.iter().map(|p| escape(p)).collect::<Vec<_>>().join(" "));
    }
}

/// `exec` with owned parts.
fn exec_owned(con: &mut redis::Connection, parts: Vec<Vec<u8>>) {
    let refs: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
    exec(con, &refs);
}

/// Fill an empty server with every type in its small (listpack/intset) and large
/// (hashtable/quicklist/skiplist) encodings, edge-case strings and integers, expiries,
/// keys in databases 0, 1, 7 and 15, a stream with consumer groups and a function library.
fn populate(con: &mut redis::Connection) {
    let mut rng = ChaCha8Rng::seed_from_u64(0x5eed_0f12_ed15);
    let mut random = |n: usize| {
        let mut b = vec![0u8; n];
        rng.fill_bytes(&mut b);
        b
    };
    let all_bytes: Vec<u8> = (0..=255u8).collect();

    exec(con, &[b"SELECT", b"0"]);
    // Strings: empty, empty key, binary key and value, NUL, around the LZF threshold (20 bytes).
    exec(con, &[b"SET", b"str:empty", b""]);
    exec(con, &[b"SET", b"", b"the empty key"]);
    exec(con, &[b"SET", &[b"bin:".as_slice(), &all_bytes].concat(), &all_bytes]);
    exec(con, &[b"SET", b"bin:nul", b"\x00"]);
    exec(con, &[b"SET", b"str:20", &[b'x'; 20]]);
    exec(con, &[b"SET", b"str:21", &[b'x'; 21]]);
    exec(con, &[b"SET", b"str:compressible", "abc".repeat(5000).as_bytes()]);
    exec(con, &[b"SET", b"str:a10000", &[b'a'; 10_000]]);
    exec(con, &[b"SET", b"str:incompressible", &random(10_000)]);
    exec(con, &[b"SET", &[b'k'; 300], b"a long compressible key"]);
    exec(con, &[b"SET", b"12345", b"an integer-looking key"]);
    exec(con, &[b"SET", b"-1", b"a negative integer-looking key"]);
    // Integers at the int8/16/32/64 edges and just past them (Redis int-encodes what fits a long).
    let edges: [i128; 24] = [
        0,
        1,
        -1,
        127,
        128,
        -128,
        -129,
        255,
        256,
        32_767,
        32_768,
        -32_768,
        -32_769,
        65_535,
        65_536,
        i32::MAX as i128,
        i32::MAX as i128 + 1,
        i32::MIN as i128,
        i32::MIN as i128 - 1,
        u32::MAX as i128,
        i64::MAX as i128,
        i64::MIN as i128,
        i64::MAX as i128 + 1,
        i64::MIN as i128 - 1,
    ];
    for v in edges {
        exec_owned(con, vec![b"SET".to_vec(), format!("int:{v}").into_bytes(), v.to_string().into_bytes()]);
    }
    exec(con, &[b"SET", b"int:u64max+1", b"18446744073709551616"]);
    // Numbers that are not canonical integers must stay the exact bytes.
    for (i, s) in
        ["0123", "-0", "+1", " 1", "1 ", "00", "0x1A", "1e3", "1.5", "-", "007", "-01", "1\x00"].iter().enumerate()
    {
        exec_owned(con, vec![b"SET".to_vec(), format!("noncanon:{i}").into_bytes(), s.as_bytes().to_vec()]);
    }

    // Lists: small (one listpack node) and large (several quicklist nodes).
    exec(con, &[b"RPUSH", b"list:small", b"a", b"", b"42"]);
    exec(con, &[b"RPUSH", b"list:ints", b"-1", b"0", b"1", b"9223372036854775807", b"-9223372036854775808"]);
    let mut large = vec![b"RPUSH".to_vec(), b"list:large".to_vec()];
    for i in 0..1000usize {
        large.push(match i % 3 {
            0 => i.to_string().into_bytes(),
            1 => format!("elem-{i}").into_bytes(),
            _ => random(i % 100),
        });
    }
    exec_owned(con, large);
    exec_owned(
        con,
        vec![b"RPUSH".to_vec(), b"list:big-elements".to_vec(), vec![b'z'; 10_000], random(10_000), b"tail".to_vec()],
    );

    // Sets: intset (small ints, 64-bit ints), hashtable (strings, large).
    exec(con, &[b"SADD", b"set:smallints", b"1", b"2", b"3", b"-5", b"0"]);
    exec(con, &[b"SADD", b"set:bigints", b"-9223372036854775808", b"9223372036854775807", b"1099511627776"]);
    exec(con, &[b"SADD", b"set:strings", b"a", b"b", b"c", b"", b"0123"]);
    let mut ints = vec![b"SADD".to_vec(), b"set:large-ints".to_vec()];
    ints.extend((0..1000i64).map(|i| (i * 7919 - 3_000_000).to_string().into_bytes()));
    exec_owned(con, ints);
    let mut strs = vec![b"SADD".to_vec(), b"set:large-strings".to_vec()];
    strs.extend((0..600).map(|i| format!("member-{i}").into_bytes()));
    exec_owned(con, strs);

    // Hashes: listpack, hashtable by count, hashtable by value length, binary.
    exec(con, &[b"HSET", b"hash:small", b"f1", b"v1", b"f2", b"", b"num", b"12", b"noncanon", b"0123"]);
    let mut fields = vec![b"HSET".to_vec(), b"hash:large".to_vec()];
    for i in 0..1000 {
        fields.push(format!("field-{i}").into_bytes());
        fields.push(if i % 2 == 0 { (i * 1000).to_string().into_bytes() } else { format!("value-{i}").into_bytes() });
    }
    exec_owned(con, fields);
    exec(con, &[b"HSET", b"hash:long-value", b"f", &[b'v'; 100]]);
    exec(con, &[b"HSET", b"hash:binary", b"\x00\xff", b"\xff\x00", &all_bytes, &all_bytes]);

    // Sorted sets: listpack and skiplist, with infinities, -0, fractions and extremes.
    exec(
        con,
        &[
            b"ZADD",
            b"zset:small",
            b"1",
            b"a",
            b"2.5",
            b"b",
            b"-3",
            b"c",
            b"-inf",
            b"neg-inf",
            b"+inf",
            b"pos-inf",
            b"0",
            b"zero",
            b"-0",
            b"neg-zero",
        ],
    );
    let mut members = vec![b"ZADD".to_vec(), b"zset:large".to_vec()];
    for i in 0..500usize {
        let score = match i {
            0 => "-inf".to_owned(),
            1 => "+inf".to_owned(),
            2 => "1e300".to_owned(),
            3 => "-1e-300".to_owned(),
            4 => "9007199254740993".to_owned(),
            5 => "0.1".to_owned(),
            // A skiplist keeps -0 (a listpack stores it as the integer 0).
            6 => "-0".to_owned(),
            _ => format!("{}", (i as f64) * 0.1 - 25.0),
        };
        members.push(score.into_bytes());
        members.push(format!("m{i}").into_bytes());
    }
    exec_owned(con, members);

    // Expiries far in the future, in ms, on several types.
    exec(con, &[b"SET", b"ttl:string", b"expires"]);
    exec(con, &[b"RPUSH", b"ttl:list", b"x", b"y"]);
    exec(con, &[b"HSET", b"ttl:hash", b"f", b"v"]);
    exec(con, &[b"ZADD", b"ttl:zset", b"1", b"m"]);
    for (i, key) in ["ttl:string", "ttl:list", "ttl:hash", "ttl:zset"].iter().enumerate() {
        let at = (FAR_FUTURE_MS + 123 * i as i64).to_string();
        exec(con, &[b"PEXPIREAT", key.as_bytes(), at.as_bytes()]);
    }

    // A stream with deleted entries, several listpack nodes and two consumer groups.
    for i in 1..=250 {
        let id = format!("{i}-0");
        exec_owned(
            con,
            vec![
                b"XADD".to_vec(),
                b"stream:events".to_vec(),
                id.into_bytes(),
                b"n".to_vec(),
                i.to_string().into_bytes(),
            ],
        );
    }
    exec(con, &[b"XADD", b"stream:events", b"251-7", b"a", b"1", b"b", b"", b"c", b"0123"]);
    exec(con, &[b"XDEL", b"stream:events", b"3-0", b"100-0"]);
    exec(con, &[b"XGROUP", b"CREATE", b"stream:events", b"g1", b"0"]);
    exec(con, &[b"XREADGROUP", b"GROUP", b"g1", b"alice", b"COUNT", b"2", b"STREAMS", b"stream:events", b">"]);
    exec(con, &[b"XGROUP", b"CREATE", b"stream:events", b"g2", b"$"]);
    exec(con, &[b"XGROUP", b"CREATECONSUMER", b"stream:events", b"g2", b"bob"]);

    // A function library (RDB opcode FUNCTION2).
    exec(con, &[b"FUNCTION", b"LOAD", LIBRARY.as_bytes()]);

    // Other databases.
    exec(con, &[b"SELECT", b"1"]);
    exec(con, &[b"SET", b"db1:string", b"one"]);
    exec(con, &[b"RPUSH", b"db1:list", b"1", b"2", b"3"]);
    exec(con, &[b"SET", b"int:0", b"same key name as in db 0, other value"]);
    exec(con, &[b"SELECT", b"7"]);
    exec(con, &[b"SADD", b"db7:set", b"x", b"y"]);
    exec(con, &[b"HSET", b"db7:hash", b"f", b"v"]);
    exec(con, &[b"SET", b"db7:ttl", b"v"]);
    exec(con, &[b"PEXPIREAT", b"db7:ttl", FAR_FUTURE_MS.to_string().as_bytes()]);
    exec(con, &[b"SELECT", b"15"]);
    exec(con, &[b"SET", b"db15:string", b"fifteen"]);
    exec(con, &[b"RPUSH", b"db15:list", b"a"]);
    exec(con, &[b"SADD", b"db15:set", b"7"]);
    exec(con, &[b"HSET", b"db15:hash", b"f", b"v"]);
    exec(con, &[b"ZADD", b"db15:zset", b"-inf", b"m"]);
    exec(con, &[b"SELECT", b"0"]);
}

/// What a server holds, as the oracle sees it.
#[derive(Debug, PartialEq)]
struct Observed {
    digest: String,
    keys_per_db: BTreeMap<u32, u64>,
    libraries: BTreeMap<String, String>,
}

/// Digest, keys per database and function libraries of a running server.
fn observe(server: &RedisServer) -> Result<Observed, RedisServerError> {
    Ok(Observed {
        digest: server.digest()?,
        keys_per_db: server.dbsize_per_db()?,
        libraries: server.function_libraries()?,
    })
}

/// Which keys differ between two servers (for a failure message; at most 20 lines).
fn key_differences(expected: &RedisServer, actual: &RedisServer) -> String {
    let (a, b) = match (expected.key_fingerprints(), actual.key_fingerprints()) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(e), _) | (_, Err(e)) => return format!("  (cannot list keys: {e})"),
    };
    let mut lines = Vec::new();
    for ((db, key), fa) in &a {
        match b.get(&(*db, key.clone())) {
            None => lines.push(format!("  db{db} {:?}: missing ({} {})", escape(key), fa.kind, fa.digest)),
            Some(fb) if fb != fa => lines.push(format!("  db{db} {:?}: expected {fa:?}, got {fb:?}", escape(key))),
            Some(_) => {}
        }
    }
    for ((db, key), fb) in &b {
        if !a.contains_key(&(*db, key.clone())) {
            lines.push(format!("  db{db} {:?}: unexpected ({} {})", escape(key), fb.kind, fb.digest));
        }
    }
    let n = lines.len();
    lines.truncate(20);
    if n > 20 {
        lines.push(format!("  … {} more", n - 20));
    }
    if lines.is_empty() {
        "  (no key differs; the difference is in expiries or elsewhere)".to_owned()
    } else {
        lines.join("\n")
    }
}

/// Save `keyspace` with every registered strategy, with default and canonical options,
/// into `out_dir`; for each file run `redis-check-rdb` and start `redis-server` on it, and
/// compare what it holds with `expected` (observed on `reference`). Returns the failures,
/// one message each, and the number of files checked.
fn resave_and_compare(
    label: &str,
    keyspace: &snaplab::core::Keyspace,
    reference: &RedisServer,
    expected: &Observed,
    out_dir: &Path,
) -> (Vec<String>, usize) {
    let mut failures = Vec::new();
    let mut checked = 0;
    for entry in snaplab::registry().entries() {
        let store = (entry.build)(keyspace.clone());
        for (mode, opts) in [("default", SaveOptions::default()), ("canonical", SaveOptions::canonical())] {
            let what = format!("{label}: {}/{mode}", entry.name);
            let file = out_dir.join(format!("{}-{mode}.rdb", entry.name));
            if let Err(e) = store.save(&file, &opts) {
                failures.push(format!("{what}: save failed: {e}"));
                continue;
            }
            checked += 1;
            if let Err(e) = check_rdb(&file) {
                failures.push(format!("{what}: redis-check-rdb rejects our file:\n{e}"));
            }
            let server = match RedisServer::start_with_dump(&file) {
                Ok(s) => s,
                Err(e) => {
                    failures.push(format!("{what}: redis-server refuses our file: {e}"));
                    continue;
                }
            };
            match observe(&server) {
                Ok(got) if got == *expected => {}
                Ok(got) => {
                    let mut msg =
                        format!("{what}: redis-server holds other data\n  expected {expected:?}\n  got      {got:?}");
                    if got.digest != expected.digest {
                        msg.push('\n');
                        msg.push_str(&key_differences(reference, &server));
                    }
                    failures.push(msg);
                }
                Err(e) => failures.push(format!("{what}: cannot observe the server: {e}")),
            }
        }
    }
    (failures, checked)
}

/// Every strategy's re-save of a Redis-written dump with every type and encoding loads in redis-server unchanged.
//
// Unchanged: redis-check-rdb passes, and DEBUG DIGEST, keys per database and the function
// library equal those of the server that wrote the dump; default and canonical saves alike.
#[test]
fn our_dumps_load_in_redis_with_the_same_digest() {
    if !redis_or_skip("our_dumps_load_in_redis_with_the_same_digest") {
        return;
    }
    let writer = RedisServer::start_empty().expect("start redis-server");
    populate(&mut writer.connection().expect("connect"));
    let dump = writer.save().expect("SAVE");
    let expected = observe(&writer).expect("observe the writer");
    assert_ne!(expected.digest, "0".repeat(40), "the writer holds data");
    assert_eq!(expected.keys_per_db.keys().copied().collect::<Vec<_>>(), [0, 1, 7, 15]);
    assert!(expected.libraries.contains_key("snaplab"), "FUNCTION LIST: {:?}", expected.libraries);
    check_rdb(&dump).expect("redis-check-rdb accepts Redis's own dump");

    let (keyspace, summary) = rdb::load_file(&dump).expect("we load Redis's dump");
    assert_eq!(summary.functions, 1, "one function library");
    assert_eq!(summary.opaque_values, 1, "the stream is carried opaque");
    let total: u64 = expected.keys_per_db.values().sum();
    assert_eq!(keyspace.len() as u64, total, "we load every key Redis saved");

    let out = tempfile::tempdir().expect("tempdir");
    let (failures, checked) = resave_and_compare("generated dump", &keyspace, &writer, &expected, out.path());
    assert!(checked >= 2 * snaplab::registry().entries().len(), "every strategy saved twice");
    assert!(failures.is_empty(), "{} failure(s):\n{}", failures.len(), failures.join("\n\n"));
}

/// The corpus directory: `SNAPLAB_CORPUS`, else ../shared/rdb-corpus beside the workspace.
fn corpus_dir() -> PathBuf {
    std::env::var_os("SNAPLAB_CORPUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/rdb-corpus"))
}

/// The corpus files MANIFEST.md says redis-server 7.0.15 loaded: each file is a
/// "### `path`" heading followed by a "- 7.0.15 server: **loaded**" or "**failed**" line.
fn loaded_by_redis(manifest: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut current: Option<&str> = None;
    for line in manifest.lines() {
        if let Some(rest) = line.strip_prefix("### `") {
            current = rest.strip_suffix('`');
        } else if line.starts_with("- 7.0.15 server: **loaded**")
            && let Some(path) = current.take()
        {
            out.push(PathBuf::from(path));
        }
    }
    out
}

/// Every strategy's re-save of every corpus dump redis-server 7.0.15 loads holds the same data in redis-server.
//
// Per MANIFEST.md (at least 40 files); compared as above, with the original file as the
// reference. Keys already expired are dropped on load by both servers alike.
#[test]
fn corpus_dumps_resaved_by_every_strategy_load_in_redis_unchanged() {
    const TEST: &str = "corpus_dumps_resaved_by_every_strategy_load_in_redis_unchanged";
    if !redis_or_skip(TEST) {
        return;
    }
    let corpus = corpus_dir();
    let Ok(manifest) = std::fs::read_to_string(corpus.join("MANIFEST.md")) else {
        let why = format!("the RDB corpus is not at {} (set SNAPLAB_CORPUS to its path)", corpus.display());
        snaplab_harness::skips::skipped(TEST, &why);
        return;
    };
    let files = loaded_by_redis(&manifest);
    assert!(files.len() >= 40, "MANIFEST.md lists only {} files redis-server loaded", files.len());

    let mut failures = Vec::new();
    let mut exercised = 0;
    let mut resaved = 0;
    for rel in &files {
        let path = corpus.join(rel);
        let label = rel.display().to_string();
        let original = RedisServer::start_with_dump(&path)
            .unwrap_or_else(|e| panic!("{label}: MANIFEST.md says redis-server loads it, but: {e}"));
        let expected = observe(&original).unwrap_or_else(|e| panic!("{label}: cannot observe: {e}"));
        let keyspace = match rdb::load_file(&path) {
            Ok((ks, _)) => ks,
            Err(e) => {
                failures.push(format!("{label}: redis-server loads it but we do not: {e}"));
                continue;
            }
        };
        let out = tempfile::tempdir().expect("tempdir");
        let (mut f, n) = resave_and_compare(&label, &keyspace, &original, &expected, out.path());
        failures.append(&mut f);
        resaved += n;
        exercised += 1;
    }
    eprintln!("{TEST}: {exercised} corpus files, {resaved} re-saved dumps compared");
    assert!(failures.is_empty(), "{} failure(s):\n{}", failures.len(), failures.join("\n\n"));
    assert!(exercised >= 40, "only {exercised} corpus files exercised");
}

/// redis-check-rdb (and redis-server, with a typed error) rejects our dump with one byte in the middle flipped.
#[test]
fn check_rdb_rejects_a_corrupted_dump() {
    if find_redis_check_rdb().is_none() {
        snaplab_harness::skips::skipped("check_rdb_rejects_a_corrupted_dump", "redis-check-rdb not found on PATH");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let good = dir.path().join("good.rdb");
    let bad = dir.path().join("bad.rdb");
    let mut keyspace = snaplab::core::Keyspace::new();
    for i in 0..100 {
        let entry = snaplab::core::Entry::new(snaplab::core::Value::String(format!("value-{i}").into_bytes()));
        keyspace.insert(0, format!("key-{i}").into_bytes(), entry);
    }
    let entry = snaplab::registry().entries()[0];
    (entry.build)(keyspace).save(&good, &SaveOptions::canonical()).expect("save");
    check_rdb(&good).expect("redis-check-rdb accepts our dump");

    let mut bytes = std::fs::read(&good).expect("read dump");
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&bad, &bytes).expect("write corrupted copy");
    let err = check_rdb(&bad).expect_err("redis-check-rdb must reject a flipped byte");
    eprintln!("redis-check-rdb on the corrupted copy (byte {middle} flipped):\n{err}");

    if RedisServer::find().is_some() {
        match RedisServer::start_with_dump(&bad) {
            Err(RedisServerError::ExitedEarly { log_tail, .. }) => {
                assert!(!log_tail.trim().is_empty(), "the error carries redis-server's log");
            }
            Err(e) => panic!("expected ExitedEarly, got {e}"),
            Ok(_) => panic!("redis-server loaded a corrupted dump"),
        }
    }
}
