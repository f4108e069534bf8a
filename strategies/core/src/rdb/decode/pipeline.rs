//! The pipelined loader: one thread reads and decodes the dump (buffered reads, LZF
//! expansion, packed blobs turned into values) while the calling thread builds the store,
//! so a load takes about as long as the slower of the two instead of their sum.
//!
//! The two threads meet at a bounded channel of batches: [`BATCH_KEYS`] keys a batch, at
//! most [`BATCHES_IN_FLIGHT`] batches queued. Batching is what makes the hand-off cheap (one
//! channel operation per thousand keys, not per key); the bound keeps memory flat when the
//! builder is the slower side: at most that many decoded keys wait between the two, however
//! large the dump. The channel is `std::sync::mpsc::sync_channel`, which since Rust 1.67 is
//! crossbeam-channel's implementation inside std.
//!
//! The builder sees keys in file order, so it finds a duplicate key exactly where the
//! sequential loader did. Errors keep file order too: the builder's error (a duplicate)
//! wins over the reader's, since the reader only reports an error after every key before
//! it was sent. Both threads live in one [`std::thread::scope`]: when either side stops,
//! the other notices (a closed channel) and the scope joins the reader before
//! [`load_into`] returns, so no thread outlives a load, failed or not.
//!
//! Redis loads on one thread (src/rdb.c, `rdbLoadRioWithLoadingCtx`); Dragonfly splits
//! loading between a reader and its shard threads (src/server/rdb_load.cc), which is the
//! shape here with one builder, since a store behind one lock has one place to insert.

use std::io::Read;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, atomic::AtomicU64};
use std::thread;

use super::{Item, LoadSummary, RdbError, RdbReader, now_ms};
use crate::command::escape;
use crate::keyspace::{Bytes, Entry, Keyspace};

/// Keys per batch handed from the reader to the builder.
pub const BATCH_KEYS: usize = 1024;

/// Batches the reader may queue ahead of the builder.
pub const BATCHES_IN_FLIGHT: usize = 8;

/// A store under construction from a dump, fed key by key in file order by [`load_into`].
///
/// Implemented by [`Keyspace`] and by strategies that lay their data out their own way
/// (so they build it once, not a [`Keyspace`] first and a copy after).
pub trait StoreBuilder {
    /// A size hint from the dump's RESIZEDB opcode: database `db` is about to receive about
    /// `keys` keys (already capped by what the rest of the file can hold).
    fn reserve(&mut self, db: usize, keys: usize) {
        let _ = (db, keys);
    }

    /// Add `key` with `entry` to database `db` (`db < DB_COUNT`; the entry is never an
    /// empty collection). `offset` is the byte of the file where the key's record starts,
    /// for the error.
    ///
    /// # Errors
    /// [`RdbError::DuplicateKey`] if `db` already holds the key (Redis: "RDB has
    /// duplicated key", src/rdb.c); the load then stops.
    fn insert(&mut self, db: usize, key: Bytes, entry: Entry, offset: u64) -> Result<(), RdbError>;

    /// Add a function library source (the payload of an RDB `FUNCTION2` opcode).
    fn add_function(&mut self, code: Bytes);

    /// Called once after the last key: a builder that defers work (sorting, checking for
    /// duplicates in bulk) does it here.
    ///
    /// # Errors
    /// [`RdbError::DuplicateKey`] for the duplicate whose second record comes first in the
    /// file, as [`StoreBuilder::insert`] would have reported it.
    fn finish(&mut self) -> Result<(), RdbError> {
        Ok(())
    }
}

impl StoreBuilder for Keyspace {
    fn reserve(&mut self, db: usize, keys: usize) {
        self.db_mut(db).reserve(keys);
    }

    fn insert(&mut self, db: usize, key: Bytes, entry: Entry, offset: u64) -> Result<(), RdbError> {
        // One hash lookup per key: this is the whole cost of building a plain keyspace.
        self.db_mut(db).insert_new(key, entry).map_err(|(key, _)| RdbError::DuplicateKey {
            offset,
            db,
            key: escape(&key),
        })
    }

    fn add_function(&mut self, code: Bytes) {
        Keyspace::add_function(self, code);
    }
}

/// What the reader hands the builder.
enum Step {
    Reserve { db: usize, keys: usize },
    Key { db: usize, key: Bytes, entry: Entry, offset: u64 },
    Function(Bytes),
}

/// A deliberate fault, for the tests that prove the equality checks catch a broken loader.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Fault {
    None,
    #[cfg(test)]
    DropLastBatch,
}

/// Read the dump from `input` on a reader thread and feed it to `builder` on this one.
///
/// `size` (the input's length in bytes, when known) caps each RESIZEDB hint at what the
/// rest of the input can hold (a record takes at least 3 bytes), so a lying hint cannot
/// make the builder reserve much. `progress`, if given, is advanced by the bytes read.
///
/// Memory: the store, plus at most [`BATCHES_IN_FLIGHT`] + 2 batches of decoded keys.
///
/// # Errors
/// Any [`RdbError`] the reader meets, or [`RdbError::DuplicateKey`] from the builder; the
/// builder then holds the keys before the failure, and the caller should drop it. An
/// [`RdbError::Io`] at offset 0 if the reader thread cannot be started.
pub fn load_into<R: Read + Send, B: StoreBuilder>(
    input: R,
    size: Option<u64>,
    progress: Option<Arc<AtomicU64>>,
    builder: &mut B,
) -> Result<LoadSummary, RdbError> {
    load_into_with(input, size, progress, builder, Fault::None)
}

pub(super) fn load_into_with<R: Read + Send, B: StoreBuilder>(
    input: R,
    size: Option<u64>,
    progress: Option<Arc<AtomicU64>>,
    builder: &mut B,
    fault: Fault,
) -> Result<LoadSummary, RdbError> {
    let (tx, rx) = sync_channel(BATCHES_IN_FLIGHT);
    thread::scope(|scope| {
        let reader = thread::Builder::new()
            .name("rdb-reader".into())
            .spawn_scoped(scope, move || read(input, size, progress, tx, fault))
            .map_err(|source| RdbError::Io { offset: 0, source })?;
        let built = build(&rx, builder);
        // Closing our end stops a reader that is still going (after a duplicate key).
        drop(rx);
        let read = reader.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        built?;
        read
    })
}

/// The reader thread: decode items, send them in batches. Returns the summary, or the
/// first error; stops early (with an empty summary, which the caller ignores) if the
/// builder hung up.
fn read<R: Read>(
    input: R,
    size: Option<u64>,
    progress: Option<Arc<AtomicU64>>,
    tx: SyncSender<Vec<Step>>,
    fault: Fault,
) -> Result<LoadSummary, RdbError> {
    let mut reader = RdbReader::new(input)?;
    if let Some(p) = progress {
        reader.set_progress(p);
    }
    let mut summary = LoadSummary::start(&reader);
    let now = now_ms();
    let mut db = 0;
    let mut batch = Vec::with_capacity(BATCH_KEYS);
    while let Some(item) = reader.next_item()? {
        summary.note(&item, now);
        let step = match item {
            Item::SelectDb { db: d } => {
                db = d;
                continue;
            }
            Item::ResizeDb { keys, .. } => {
                let remaining = size.unwrap_or(0).saturating_sub(reader.offset());
                Step::Reserve { db, keys: keys.min(remaining / 3) as usize }
            }
            Item::Key(r) => Step::Key { db: r.db, key: r.key, entry: r.entry, offset: r.offset },
            Item::Function { code } => Step::Function(code),
            _ => continue,
        };
        batch.push(step);
        if batch.len() == BATCH_KEYS {
            let full = std::mem::replace(&mut batch, Vec::with_capacity(BATCH_KEYS));
            if tx.send(full).is_err() {
                return Ok(summary);
            }
        }
    }
    summary.end(&mut reader);
    let drop_last = {
        #[cfg(test)]
        {
            fault == Fault::DropLastBatch
        }
        #[cfg(not(test))]
        {
            let _ = fault;
            false
        }
    };
    if !batch.is_empty() && !drop_last {
        // A closed channel means the builder failed; its error is the one reported.
        let _ = tx.send(batch);
    }
    Ok(summary)
}

/// The builder side: apply every batch in order.
fn build<B: StoreBuilder>(rx: &Receiver<Vec<Step>>, builder: &mut B) -> Result<(), RdbError> {
    for batch in rx.iter() {
        for step in batch {
            match step {
                Step::Reserve { db, keys } => builder.reserve(db, keys),
                Step::Key { db, key, entry, offset } => builder.insert(db, key, entry, offset)?,
                Step::Function(code) => builder.add_function(code),
            }
        }
    }
    builder.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keyspace::Value;
    use crate::rdb::{EncodeOptions, load, write_view};

    /// A dump of more keys than fit one batch (so there is a last, partial batch to lose),
    /// over three databases, with an expiry and a function library.
    fn dump() -> (Keyspace, Vec<u8>) {
        let mut ks = Keyspace::new();
        for i in 0..(2 * BATCH_KEYS + 17) {
            let e = Entry::new(Value::String(format!("value {i}").into_bytes()));
            ks.insert(i % 3, format!("key:{i}").into_bytes(), e);
        }
        ks.insert(1, b"exp".to_vec(), Entry::expiring(Value::String(b"x".to_vec()), 4_000_000_000_000));
        ks.add_function(b"#!lua name=lib\nredis.register_function('f', function() return 1 end)".to_vec());
        let opts = EncodeOptions { compress: true, canonical: true, strategy: None, ctime_s: 0 };
        let (bytes, _) = write_view(&ks, Vec::new(), &opts, None).unwrap();
        (ks, bytes)
    }

    fn pipelined(bytes: &[u8], fault: Fault) -> Result<(Keyspace, LoadSummary), RdbError> {
        let mut ks = Keyspace::new();
        let summary = load_into_with(bytes, Some(bytes.len() as u64), None, &mut ks, fault)?;
        Ok((ks, summary))
    }

    /// The pipelined loader gives the keyspace and summary the sequential one gives.
    #[test]
    fn same_keyspace_as_sequential() {
        let (ks, bytes) = dump();
        let (want, want_summary) = load(&bytes[..]).unwrap();
        assert_eq!(want, ks);
        let (got, summary) = pipelined(&bytes, Fault::None).unwrap();
        assert_eq!(got, want);
        assert_eq!(got.functions(), want.functions());
        assert_eq!(summary.keys(), want_summary.keys());
        assert_eq!(summary.bytes, want_summary.bytes);
        assert_eq!(summary.checksum, want_summary.checksum);
    }

    /// Wrong on purpose: a loader that loses its last batch is caught by the comparison above.
    #[test]
    fn losing_the_last_batch_is_caught() {
        let (_, bytes) = dump();
        let (want, _) = load(&bytes[..]).unwrap();
        let (got, summary) = pipelined(&bytes, Fault::DropLastBatch).unwrap();
        assert_ne!(got, want, "the comparison must see the missing keys");
        assert!(
            got.len() < want.len() && got.iter().all(|(db, k, e)| want.get(db, k) == Some(e)),
            "only keys are lost"
        );
        // The summary counts what the reader read, so it alone would not notice.
        assert_eq!(summary.keys(), want.len() as u64);
    }

    /// A duplicate key in a later batch is reported at the offset of its second record, as
    /// the sequential loader reports it, and a truncated dump is the sequential loader's
    /// typed error too.
    #[test]
    fn errors_match_sequential() {
        let (_, bytes) = dump();
        for cut in [bytes.len() - 1, bytes.len() / 2, 20, 9] {
            let want = load(&bytes[..cut]).unwrap_err().to_string();
            let got = pipelined(&bytes[..cut], Fault::None).unwrap_err().to_string();
            assert_eq!(got, want, "truncated at {cut}");
        }
        // A duplicate: the same key in db 0 twice, in different batches.
        let mut raw = b"REDIS0011".to_vec();
        raw.extend_from_slice(&[0xFE, 0]);
        let record = |raw: &mut Vec<u8>, k: &[u8]| {
            raw.extend_from_slice(&[0, k.len() as u8]);
            raw.extend_from_slice(k);
            raw.extend_from_slice(&[1, b'v']);
        };
        record(&mut raw, b"dup");
        for i in 0..BATCH_KEYS + 5 {
            record(&mut raw, format!("k{i}").as_bytes());
        }
        record(&mut raw, b"dup");
        raw.push(0xFF);
        raw.extend_from_slice(&[0; 8]);
        let want = load(&raw[..]).unwrap_err();
        assert!(matches!(want, RdbError::DuplicateKey { .. }), "{want}");
        let got = pipelined(&raw, Fault::None).unwrap_err();
        assert_eq!(got.to_string(), want.to_string());
    }
}
