//! The pipelined loader against the sequential one: every strategy's `SnapshotStrategy::load`
//! (the pipelined loader, straight into the strategy's own layout where it has one) gives
//! exactly the keyspace `rdb::load` (one thread, key by key) gives, on generated keyspaces
//! and on every corpus dump; a bad dump gives the same typed error; and no reader thread
//! outlives a load.

mod support;

use std::path::Path;
use std::sync::Mutex;

use proptest::prelude::*;
use snaplab_core::rdb::{self, BATCH_KEYS, load};
use snaplab_core::{Bytes, Entry, Keyspace, RdbError, StoreBuilder, Value};
use support::arb::{config, keyspace};
use support::{assert_same_keyspace, corpus_dir, encode, large_keyspace, rdb_files, sample_keyspace};

/// The tests of this binary load one at a time, so that counting the reader threads alive
/// sees only their own.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner())
}

/// Threads of this process named like the pipelined loader's reader (`rdb-reader`).
fn reader_threads() -> usize {
    std::fs::read_dir("/proc/self/task")
        .map(|tasks| {
            tasks
                .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
                .filter(|name| name.trim() == "rdb-reader")
                .count()
        })
        .unwrap_or(0)
}

/// Load `path` with every registered strategy and compare each store with `want`.
fn every_strategy_loads(path: &Path, want: &Keyspace, context: &str) {
    for entry in snaplab::registry().entries() {
        let store = (entry.load)(path).unwrap_or_else(|e| panic!("{context}: {} failed to load: {e}", entry.name));
        assert_same_keyspace(want, &store.to_keyspace(), &format!("{context}: {}", entry.name));
        assert_eq!(reader_threads(), 0, "{context}: {} left a reader thread running", entry.name);
    }
}

/// Load `path` with every registered strategy, each of which must fail as `want` does
/// (same variant, offset and message), with no reader thread left behind.
fn every_strategy_refuses(path: &Path, want: &RdbError, context: &str) {
    for entry in snaplab::registry().entries() {
        let got = match (entry.load)(path) {
            Ok(_) => panic!("{context}: {} loaded a dump the sequential loader refuses ({want})", entry.name),
            Err(e) => e,
        };
        assert_eq!(got.to_string(), want.to_string(), "{context}: {}", entry.name);
        assert_eq!(got.offset(), want.offset(), "{context}: {}", entry.name);
        assert_eq!(reader_threads(), 0, "{context}: {} left a reader thread running", entry.name);
    }
}

/// A keyspace of `n` small strings over three databases: enough keys for several batches.
fn many_keys(n: usize) -> Keyspace {
    let mut ks = sample_keyspace();
    for i in 0..n {
        ks.insert(i % 3, format!("many:{i}").into_bytes(), Entry::new(Value::String(format!("{i}").into_bytes())));
    }
    ks
}

proptest! {
    #![proptest_config(config(24))]

    /// Any keyspace, written and loaded by every strategy, comes back whole.
    #[test]
    fn generated_keyspaces_load_the_same(ks in keyspace()) {
        let _one = serial();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dump.rdb");
        let (bytes, _) = encode(&ks, true, false);
        std::fs::write(&path, &bytes).unwrap();
        let (want, _) = load(&bytes[..]).unwrap();
        assert_same_keyspace(&ks, &want, "sequential");
        every_strategy_loads(&path, &want, "generated");
    }
}

/// Several batches' worth of keys, and large values spanning many reads, load the same.
#[test]
fn many_batches_and_large_values_load_the_same() {
    let _one = serial();
    let dir = tempfile::tempdir().unwrap();
    for (name, ks) in [("many", many_keys(5 * BATCH_KEYS + 3)), ("large", large_keyspace())] {
        let path = dir.path().join(format!("{name}.rdb"));
        let (bytes, _) = encode(&ks, true, false);
        std::fs::write(&path, &bytes).unwrap();
        let (want, _) = load(&bytes[..]).unwrap();
        assert_same_keyspace(&ks, &want, name);
        assert_same_keyspace(&want, &rdb::load_file(&path).unwrap().0, &format!("{name}: rdb::load_file"));
        every_strategy_loads(&path, &want, name);
    }
}

/// Every corpus dump: what the sequential loader loads, every strategy loads the same; what
/// it refuses, every strategy refuses with the same error.
#[test]
fn corpus_loads_the_same() {
    let Some(dir) = corpus_dir("corpus_loads_the_same") else { return };
    let _one = serial();
    let files = rdb_files(&dir);
    assert!(!files.is_empty(), "no .rdb files in {}", dir.display());
    for path in files {
        let name = path.strip_prefix(&dir).unwrap().display().to_string();
        let bytes = std::fs::read(&path).unwrap();
        match load(&bytes[..]) {
            // A file with bytes after the RDB trailer is an AOF to the strategies' loader,
            // which replays (or refuses) them: the RDB loader alone is not its reference.
            Ok((want, summary)) if summary.bytes == bytes.len() as u64 => every_strategy_loads(&path, &want, &name),
            Ok(_) => {}
            Err(want) => every_strategy_refuses(&path, &want, &name),
        }
    }
}

/// Truncations and a duplicate key in a late batch: every strategy refuses the dump with
/// the sequential loader's error, and no reader thread is left running.
#[test]
fn bad_dumps_are_refused_the_same() {
    let _one = serial();
    let dir = tempfile::tempdir().unwrap();
    let (bytes, _) = encode(&many_keys(3 * BATCH_KEYS), true, false);
    for cut in [bytes.len() - 1, bytes.len() - 9, bytes.len() / 2, 30, 9, 3] {
        let path = dir.path().join(format!("cut-{cut}.rdb"));
        std::fs::write(&path, &bytes[..cut]).unwrap();
        let want = load(&bytes[..cut]).unwrap_err();
        every_strategy_refuses(&path, &want, &format!("truncated at {cut}"));
    }
    // Two duplicated keys in db 0, each far from its first record; the error names the one
    // whose second record comes first, wherever the two sort.
    let mut raw = b"REDIS0011".to_vec();
    raw.extend_from_slice(&[0xFE, 0]);
    let record = |raw: &mut Vec<u8>, k: &[u8]| {
        raw.extend_from_slice(&[0, k.len() as u8]);
        raw.extend_from_slice(k);
        raw.extend_from_slice(&[1, b'v']);
    };
    record(&mut raw, b"zz-dup");
    record(&mut raw, b"aa-dup");
    for i in 0..2 * BATCH_KEYS {
        record(&mut raw, format!("k{i}").as_bytes());
    }
    record(&mut raw, b"zz-dup");
    record(&mut raw, b"aa-dup");
    raw.push(0xFF);
    raw.extend_from_slice(&[0; 8]);
    let path = dir.path().join("dup.rdb");
    std::fs::write(&path, &raw).unwrap();
    let want = load(&raw[..]).unwrap_err();
    assert!(matches!(&want, RdbError::DuplicateKey { key, .. } if key.contains("zz-dup")), "{want}");
    every_strategy_refuses(&path, &want, "duplicate keys");
}

/// A builder that loses the last key it was given: a wrong-on-purpose loader.
#[derive(Default)]
struct LosesLastKey {
    ks: Keyspace,
    last: Option<(usize, Bytes)>,
}

impl StoreBuilder for LosesLastKey {
    fn insert(&mut self, db: usize, key: Bytes, entry: Entry, offset: u64) -> Result<(), RdbError> {
        self.last = Some((db, key.clone()));
        StoreBuilder::insert(&mut self.ks, db, key, entry, offset)
    }

    fn add_function(&mut self, code: Bytes) {
        self.ks.add_function(code);
    }

    fn finish(&mut self) -> Result<(), RdbError> {
        if let Some((db, key)) = self.last.take() {
            self.ks.remove(db, &key);
        }
        Ok(())
    }
}

/// Wrong on purpose: a pipelined load that loses one key fails the comparison these tests
/// rely on.
#[test]
fn a_loader_that_loses_a_key_is_caught() {
    let _one = serial();
    let (bytes, _) = encode(&many_keys(2 * BATCH_KEYS + 1), true, false);
    let (want, _) = load(&bytes[..]).unwrap();
    let mut faulty = LosesLastKey::default();
    rdb::load_into(&bytes[..], Some(bytes.len() as u64), None, &mut faulty).unwrap();
    let caught = std::panic::catch_unwind(|| assert_same_keyspace(&want, &faulty.ks, "faulty"));
    assert!(caught.is_err(), "the comparison missed a lost key");
}
