#![doc = include_str!("../README.md")]

pub mod summary;
pub mod table;
pub mod trace;

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};

use parking_lot::{Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use snaplab_core::rdb::encode::{encode_entry_ref, put_len, write_aux_fields};
use snaplab_core::rdb::{EncodeOptions, RdbWriter, consts::OPCODE_SELECTDB};
use snaplab_core::{
    Applied, AtomicFile, BgSave, Bytes, Command, CommandError, Cut, DB_COUNT, Entry, Keyspace, RdbError, Reply,
    SaveError, SaveOptions, SaveReport, SaveState, SaveStatus, SlotChange, SnapshotStrategy, StoreBuilder, WriteStamp,
    apply_to_slot, escape, unix_ms_now,
};
use table::{Bucket, Table};
use trace::{Phase, Timer};

// ANCHOR: blob_consts
/// A blob is flushed to the sink once it holds this many bytes (Dragonfly uses 8 KiB).
/// Blobs only ever end on a bucket boundary.
pub const BLOB_BYTES: usize = 8 * 1024;

/// Blobs in flight between the shards and the sink. The bound is the memory the save may
/// use for output in transit (here 64 x 8 KiB = 512 KiB); when the disk is slower than
/// the encoders, the channel fills and the encoders wait (and their traversals, once
/// two batches are waiting for them); writers never do. A bigger bound trades memory for fewer
/// such stalls; an unbounded channel would let a slow disk turn the snapshot into a copy
/// of the dataset in memory.
pub const CHANNEL_BLOBS: usize = 64;
// ANCHOR_END: blob_consts

/// Buckets the traversal captures per hold of the shard lock. A capture is an `Arc` clone,
/// so a hold lasts microseconds; batching keeps lock handoffs from dominating.
const BUCKETS_PER_LOCK: usize = 128;

/// One key's record, kept apart for canonical mode (which must sort keys across shards).
struct Record {
    db: usize,
    key: Bytes,
    expires: bool,
    bytes: Vec<u8>,
}

/// What travels from a shard to the sink: whole buckets, self-contained.
enum Blob {
    /// RDB records, starting with SELECTDB, covering whole buckets.
    Bytes { bytes: Vec<u8>, keys: u64 },
    /// Canonical mode: the same records, one per key, to be sorted by the sink.
    Records(Vec<Record>),
    /// The shard's traversal finished: everything it captured has been sent. A sink commits
    /// only after one from each shard it serves, so a traversal that dies (its sender
    /// dropped while unwinding) cannot pass for one that ended.
    End,
}

/// A bucket as it was at the cut: its database and a shared reference to its entries.
type Captured = (usize, table::Entries);

// ANCHOR: capture
/// What a shard keeps during a save, under its lock: the snapshot version, the buckets
/// captured but not yet encoded, and the save's counters.
///
/// Capturing a bucket takes a reference to its entries (an `Arc` clone, nanoseconds); the
/// expensive part (encoding, LZF) happens outside the lock on the traversal thread. A write
/// to a captured bucket that the traversal has not encoded yet copies that one bucket
/// first (`Arc::make_mut`), so the captured version stays as it was at the cut. This is
/// serialize-before-mutate with the serialization deferred: Dragonfly encodes on the shard
/// thread itself, between fiber switches; with OS threads, any work done under the shard
/// lock is work every writer of the shard may wait behind, and on a busy machine the thread
/// holding the lock can be preempted for a whole time slice.
struct Capture {
    version: u64,
    pending: Vec<Captured>,
    /// The save's counters, handed to each shard at the cut: a writer reaches them under the
    /// shard lock it already holds, so the write path takes no store-wide lock.
    stats: Arc<Stats>,
}

impl Capture {
    /// Stamp the bucket with the snapshot version, then copy it out. Stamping first is what
    /// guarantees each bucket is captured exactly once.
    fn capture(&mut self, db: usize, bucket: &mut Bucket) {
        // EXERCISE 10-sharded BEGIN
        bucket.version = self.version;
        if !bucket.entries.is_empty() {
            self.pending.push((db, Arc::clone(&bucket.entries)));
        }
        // EXERCISE 10-sharded END
    }
}
// ANCHOR_END: capture

/// A shard's RDB serializer: turns captured buckets into blobs that always end on a bucket
/// boundary and always start with SELECTDB, so they are self-contained.
struct Serializer {
    buf: Vec<u8>,
    scratch: Vec<u8>,
    db: Option<usize>,
    keys: u64,
    records: Option<Vec<Record>>,
    compress: bool,
    ready: Vec<Blob>,
}

impl Serializer {
    /// Encode one captured bucket.
    fn bucket(&mut self, (db, entries): Captured) {
        for (key, entry) in entries.iter() {
            if let Some(records) = &mut self.records {
                let mut bytes = Vec::new();
                encode_entry_ref(&mut bytes, &mut self.scratch, key, entry.as_ref(), self.compress, true);
                records.push(Record { db, key: key.to_vec(), expires: entry.expire_at_ms.is_some(), bytes });
                continue;
            }
            if self.db != Some(db) {
                // Every blob starts with SELECTDB, so blobs from different shards can be
                // written in any order (RDB allows SELECTDB to repeat).
                self.buf.push(OPCODE_SELECTDB);
                put_len(&mut self.buf, db as u64);
                self.db = Some(db);
            }
            encode_entry_ref(&mut self.buf, &mut self.scratch, key, entry.as_ref(), self.compress, false);
            self.keys += 1;
        }
        if self.buf.len() >= BLOB_BYTES || self.records.as_ref().is_some_and(|r| r.len() >= 256) {
            self.flush();
        }
    }

    /// Close the current blob (always on a bucket boundary) and queue it for the sink.
    fn flush(&mut self) {
        let blob = match &mut self.records {
            Some(records) if !records.is_empty() => Blob::Records(std::mem::take(records)),
            Some(_) => return,
            None if self.buf.is_empty() => return,
            None => {
                self.db = None;
                let keys = std::mem::take(&mut self.keys);
                Blob::Bytes { bytes: std::mem::replace(&mut self.buf, Vec::with_capacity(BLOB_BYTES + 1024)), keys }
            }
        };
        self.ready.push(blob);
    }
}

/// Send queued blobs to the sink, outside the shard lock. Returns `false` if the sink has
/// gone (it failed and reports its own error).
fn send_all(tx: &SyncSender<Blob>, blobs: Vec<Blob>, stats: &Stats) -> bool {
    for blob in blobs {
        match tx.try_send(blob) {
            Ok(()) => {}
            Err(TrySendError::Full(blob)) => {
                stats.channel_full_waits.fetch_add(1, Ordering::Relaxed);
                // The sink is behind: the encoder waits for room (the stall the bound
                // trades for memory); writers are not held up, they never send.
                if tx.send(blob).is_err() {
                    return false;
                }
            }
            Err(TrySendError::Disconnected(_)) => return false,
        }
    }
    true
}

/// Counters for the save report. Relaxed: statistics, not synchronisation.
#[derive(Default)]
struct Stats {
    by_traversal: AtomicU64,
    by_writers: AtomicU64,
    writer_serialize_ns: AtomicU64,
    channel_full_waits: AtomicU64,
}

/// One shard: a table per database, its write count, and the serializer of the save in
/// progress, if any.
struct Shard {
    dbs: [Table; DB_COUNT],
    writes: u64,
    /// The last snapshot version used by this shard.
    version: u64,
    saving: Option<Capture>,
}

// ANCHOR: capture_if_unvisited
impl Shard {
    /// Capture bucket `b` of `db` for the dump if a save is running and has not captured it
    /// yet. Returns whether it did.
    fn capture_if_unvisited(&mut self, db: usize, b: usize) -> bool {
        // EXERCISE 10-sharded BEGIN
        let Shard { dbs, saving, .. } = self;
        match saving {
            Some(c) if dbs[db].bucket(b).version < c.version => {
                c.capture(db, dbs[db].bucket_mut(b));
                true
            }
            _ => false,
        }
        // EXERCISE 10-sharded END
    }
}
// ANCHOR_END: capture_if_unvisited

struct Inner {
    shards: Vec<Mutex<Shard>>,
    hasher: RandomState,
    functions: Vec<Bytes>,
    saves: Arc<SaveState>,
    per_shard_files: AtomicBool,
}

/// A Dragonfly-style store: `N` shards (0: one per available core), each a set of
/// versioned-bucket tables, snapshotted without fork, clone or global lock.
///
/// Cheap to clone: clones share the same store.
pub struct ShardedStore<const N: usize = 0> {
    inner: Arc<Inner>,
}

impl<const N: usize> Clone for ShardedStore<N> {
    fn clone(&self) -> Self {
        ShardedStore { inner: Arc::clone(&self.inner) }
    }
}

/// The shard of a key whose hash is `hash`, among `shards`. The high bits pick the shard,
/// the low bits the bucket, so they are independent.
fn shard_index(hash: u64, shards: usize) -> usize {
    (hash >> 48) as usize % shards
}

fn lock(shard: &Mutex<Shard>) -> MutexGuard<'_, Shard> {
    shard.lock()
}

impl<const N: usize> ShardedStore<N> {
    /// Number of shards.
    pub fn shards(&self) -> usize {
        self.inner.shards.len()
    }

    /// Write one RDB file per shard plus a summary (see [`summary`]) instead of one file.
    pub fn set_per_shard_files(&self, on: bool) {
        self.inner.per_shard_files.store(on, Ordering::Relaxed);
    }

    /// Call `f(db, table)` for every shard's table of every database, each shard locked
    /// while it is visited (writers to it wait): for statistics, such as where a key's
    /// bytes go (`harness/examples/sharded_bytes_per_key.rs`).
    pub fn for_each_table(&self, mut f: impl FnMut(usize, &Table)) {
        for s in &self.inner.shards {
            let shard = lock(s);
            shard.dbs.iter().enumerate().for_each(|(db, t)| f(db, t));
        }
    }

    // ANCHOR: shard_of
    fn shard_of(&self, key: &[u8]) -> (usize, u64) {
        let hash = self.inner.hasher.hash_one(key);
        // The high bits pick the shard (`shard_index`), the low bits the bucket.
        (shard_index(hash, self.inner.shards.len()), hash)
    }
    // ANCHOR_END: shard_of

    /// Apply a single-key command inside its shard.
    fn apply_in_shard(&self, cmd: &Command, db: usize, key: &[u8]) -> Result<Applied, CommandError> {
        let (s, hash) = self.shard_of(key);
        // Times each phase with the `trace` feature; nothing without it.
        let mut timer = Timer::start();
        let mut guard = lock(&self.inner.shards[s]);
        timer.mark(Phase::LockWait);
        let shard = &mut *guard;
        let b = shard.dbs[db].address(hash);
        // Serialize-before-mutate: the bucket goes to the dump as it was at the cut before
        // this write changes it (even if the write turns out to be refused; that is safe).
        if shard.saving.is_some() {
            let t0 = Instant::now();
            if shard.capture_if_unvisited(db, b)
                && let Some(c) = &shard.saving
            {
                c.stats.by_writers.fetch_add(1, Ordering::Relaxed);
                c.stats.writer_serialize_ns.fetch_add(t0.elapsed().as_nanos() as u64, Ordering::Relaxed);
            }
        }
        timer.mark(Phase::Capture);
        timer.copy_if_shared(shard.dbs[db].bucket_mut(b));
        let table = &mut shard.dbs[db];
        let pos = table.position(b, key);
        // A write to an existing key copies its bucket first if a capture still shares it.
        let slot = pos.map(|p| &mut table.bucket_mut(b).entries_mut()[p].1);
        let (reply, change) = apply_to_slot(cmd, slot, unix_ms_now())?;
        match (change, pos) {
            (SlotChange::Kept, _) => {}
            (SlotChange::Put(e), Some(p)) => table.bucket_mut(b).entries_mut()[p].1 = e,
            (SlotChange::Put(e), None) => {
                table.push(b, key.into(), e);
                timer.mark(Phase::Apply);
                // Grow one bucket at a time; a bucket about to be split is serialized
                // first, so its entries reach the dump once, as they were at the cut.
                while shard.dbs[db].wants_split() {
                    let src = shard.dbs[db].next_to_split();
                    if shard.capture_if_unvisited(db, src)
                        && let Some(c) = &shard.saving
                    {
                        c.stats.by_writers.fetch_add(1, Ordering::Relaxed);
                    }
                    let version = shard.dbs[db].bucket(src).version;
                    shard.dbs[db].split(version, |k| self.inner.hasher.hash_one(k));
                }
                timer.mark(Phase::Split);
            }
            (SlotChange::Remove, Some(p)) => table.remove_at(b, p),
            (SlotChange::Remove, None) => {}
        }
        shard.writes += 1;
        timer.mark(Phase::Apply);
        timer.finish(s);
        Ok(Applied::new(reply, WriteStamp { shard: s as u32, seq: shard.writes }))
    }

    // ANCHOR: flush_dbs
    /// FLUSHDB / FLUSHALL touch every shard, and must be one write, as Redis's are: a cut
    /// sees all of it or none of it. So every shard is locked first (in index order, the
    /// order BGSAVE takes its cut in, so the two cannot deadlock), then each shard's
    /// unvisited buckets are captured and its tables cleared. Locking and clearing one shard
    /// at a time would let a cut land between two shards and dump the old keys of the shards
    /// not yet flushed beside the emptied ones: a state that never existed.
    ///
    /// The write takes a place in every shard's write order, so it has a stamp in each.
    fn flush_dbs(&self, dbs: &[usize]) -> Applied {
        let mut guards: Vec<MutexGuard<'_, Shard>> = self.inner.shards.iter().map(lock).collect();
        let mut stamps = Vec::with_capacity(guards.len());
        for (s, shard) in guards.iter_mut().enumerate() {
            for &db in dbs {
                for b in 0..shard.dbs[db].buckets() {
                    shard.capture_if_unvisited(db, b);
                }
                shard.dbs[db].clear();
            }
            shard.writes += 1;
            stamps.push(WriteStamp { shard: s as u32, seq: shard.writes });
        }
        drop(guards);
        let stamp = stamps.remove(0);
        Applied { reply: Reply::Ok, stamp, also: stamps }
    }
    // ANCHOR_END: flush_dbs
}

/// The message a panic carried (`panic!` with a literal or a formatted string), for the
/// save's error.
fn panic_message(payload: &(dyn std::any::Any + Send)) -> &str {
    payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(no message)")
}

/// The shard count of `ShardedStore<0>`: `$SNAPLAB_SHARDS` if set (1 to 16), else one per
/// available core.
pub fn default_shards() -> usize {
    std::env::var("SNAPLAB_SHARDS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or_else(|| thread::available_parallelism().map_or(1, |n| n.get()))
        .clamp(1, 16)
}

/// Per-shard duration figure names (the report wants `&'static str` names).
const SHARD_US: [&str; 16] = [
    "shard_0_us",
    "shard_1_us",
    "shard_2_us",
    "shard_3_us",
    "shard_4_us",
    "shard_5_us",
    "shard_6_us",
    "shard_7_us",
    "shard_8_us",
    "shard_9_us",
    "shard_10_us",
    "shard_11_us",
    "shard_12_us",
    "shard_13_us",
    "shard_14_us",
    "shard_15_us",
];

/// Batches of captured buckets in flight from a shard's traversal to its encoder. Two keep
/// the encoder busy while the traversal captures the next batch; more would only let the
/// traversal run ahead, and every bucket captured ahead of the encoder is one a write to it
/// copies (`Arc::make_mut`).
const BATCHES_IN_FLIGHT: usize = 2;

/// The traversal of one shard: visit every bucket of every database, capturing those not
/// yet captured, a few buckets per hold of the lock, and hand each batch (with the buckets
/// writers captured meanwhile) to the shard's encoder thread; then close the shard's
/// capture.
///
/// Two threads per shard, because they need different priorities. The traversal holds the
/// shard lock, which writers wait for, so it runs at the writers' priority: a thread at
/// background priority that the kernel preempts while it holds the lock keeps it until no
/// ordinary thread wants that CPU, and every writer of the shard waits that long (priority
/// inversion: on a 2-core machine with another program running, holds of 55 and 260 ms,
/// which `harness/examples/sharded_stall_trace.rs` shows). Its work is an `Arc` clone per
/// bucket, so it takes little CPU from the writers. The encoder does the expensive part
/// (LZF, RDB encoding) holding no lock, at background priority.
fn traverse(index: usize, shard: &Mutex<Shard>, ser: Serializer, tx: SyncSender<Blob>, stats: &Stats) -> Duration {
    let started = Instant::now();
    let (batch_tx, batch_rx) = sync_channel::<Batch>(BATCHES_IN_FLIGHT);
    thread::scope(|scope| {
        let encoder = thread::Builder::new()
            .name(format!("sharded-enc-{index}"))
            .spawn_scoped(scope, move || encode(index, batch_rx, ser, tx, stats))
            .expect("the OS refused a thread (thread::spawn would panic the same way)");
        // A send fails only if the encoder has died; it panicked, and the save reports the
        // shard as failed. Keep stamping buckets regardless, so writers stop capturing.
        // ANCHOR: traversal
        for db in 0..DB_COUNT {
            let mut next = 0;
            loop {
                let mut guard = lock(shard);
                // Times the hold with the `trace` feature; nothing without it.
                let held_since = Timer::hold_start();
                // The table may grow meanwhile; buckets born during the save are already stamped.
                let end = guard.dbs[db].buckets().min(next + BUCKETS_PER_LOCK);
                if next >= end {
                    break;
                }
                for b in next..end {
                    if guard.capture_if_unvisited(db, b) {
                        stats.by_traversal.fetch_add(1, Ordering::Relaxed);
                    }
                }
                let visited = end - next;
                next = end;
                let captured = guard.saving.as_mut().map(|c| std::mem::take(&mut c.pending)).unwrap_or_default();
                // Hand the lock to a waiting writer, if any. With an ordinary (unfair) unlock
                // the traversal takes the lock straight back before a woken writer gets to
                // run, and writers starve for hundreds of milliseconds. Dragonfly gets the
                // same effect by running the traversal as a fiber that yields between buckets.
                MutexGuard::unlock_fair(guard);
                Timer::hold(index, held_since, visited);
                let _ = batch_tx.send(Batch { captured, last: false });
                #[cfg(test)]
                if tests::PANIC_IN_TRAVERSAL_OF.load(Ordering::Relaxed) == shard as *const Mutex<Shard> as usize {
                    panic!("injected fault: this shard's traversal panics mid-save");
                }
            }
        }
        // ANCHOR_END: traversal
        let captured = lock(shard).saving.take().map(|c| c.pending).unwrap_or_default();
        let _ = batch_tx.send(Batch { captured, last: true });
        // Had the loop above panicked, `batch_tx` would be dropped with no `last` batch sent:
        // the encoder ends without sending `Blob::End`, and the sink refuses to commit.
        drop(batch_tx);
        Timer::thread_done("traversal", index);
        if let Err(payload) = encoder.join() {
            std::panic::resume_unwind(payload);
        }
    });
    started.elapsed()
}

/// Buckets captured by a traversal hold (and by writers since the previous one), for the
/// encoder; `last` once the shard's capture is closed.
struct Batch {
    captured: Vec<Captured>,
    last: bool,
}

/// A shard's encoder: turns the traversal's batches into blobs and sends them to the sink,
/// at background priority, holding no lock. Sends [`Blob::End`] only after the last batch.
fn encode(index: usize, batches: Receiver<Batch>, mut ser: Serializer, tx: SyncSender<Blob>, stats: &Stats) {
    background_priority();
    let mut sink_alive = true;
    for Batch { captured, last } in batches {
        for c in captured {
            ser.bucket(c);
        }
        if last {
            ser.flush();
            ser.ready.push(Blob::End);
        }
        let blobs = std::mem::take(&mut ser.ready);
        // After a sink failure there is nothing left to send to; keep receiving, so the
        // traversal is never blocked on a full channel.
        if sink_alive {
            sink_alive = send_all(&tx, blobs, stats);
        }
    }
    Timer::thread_done("encoder", index);
}

/// Run the calling thread at background priority (Linux `SCHED_IDLE`): the encoding uses
/// whatever CPU the writers leave. With more busy save threads than cores (N encoders plus a
/// sink on a 2-core machine), a writer at equal priority would queue behind them for whole
/// scheduler time slices; Dragonfly avoids that by doing writes and serialization on the
/// same shard thread, which we do not. Only for threads that hold no lock a writer needs
/// (see [`traverse`]). Failure to change priority is harmless.
fn background_priority() {
    use thread_priority::{NormalThreadSchedulePolicy, ThreadPriority, ThreadSchedulePolicy};
    let _ = thread_priority::set_thread_priority_and_policy(
        thread_priority::thread_native_id(),
        ThreadPriority::Min,
        ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Idle),
    );
}

/// The sink: writes what the shards send into one RDB file, fed by `traversals` shards.
/// It commits the file only if every one of them sent [`Blob::End`]; otherwise the file is
/// dropped (its temporary removed) and the previous dump stays.
fn sink(
    rx: Receiver<Blob>,
    file: AtomicFile,
    opts: &SaveOptions,
    extra_aux: &[(String, String)],
    functions: &[Bytes],
    traversals: usize,
) -> Result<(u64, u64), SaveError> {
    let path = file.temp_path().to_path_buf();
    let io = |e| SaveError::io("write", &path, e);
    let enc = EncodeOptions {
        compress: opts.compress,
        canonical: opts.canonical,
        strategy: Some("sharded"),
        ctime_s: unix_ms_now() / 1000,
    };
    let mut file = file;
    let mut w = RdbWriter::new(&mut file, opts.compress).map_err(io)?;
    write_aux_fields(&mut w, &enc).map_err(io)?;
    for (k, v) in extra_aux {
        w.aux(k.as_bytes(), v.as_bytes()).map_err(io)?;
    }
    for code in functions {
        w.function(code).map_err(io)?;
    }
    let mut records = Vec::new();
    let mut ended = 0;
    for blob in rx {
        match blob {
            Blob::End => ended += 1,
            Blob::Bytes { bytes, keys } => {
                w.raw_records(&bytes, keys).map_err(io)?;
                if let Some(p) = &opts.progress {
                    p.fetch_add(keys, Ordering::Relaxed);
                }
            }
            Blob::Records(r) => records.extend(r),
        }
    }
    if ended < traversals {
        return Err(SaveError::Aborted(format!(
            "{} of {traversals} shard traversals feeding {} stopped before the end",
            traversals - ended,
            path.display()
        )));
    }
    if opts.canonical {
        // Canonical mode: the same bytes a single-threaded strategy writes (keys sorted per
        // database, SELECTDB and RESIZEDB once per database). Needs every record in memory:
        // canonical output is for comparing files, not for production saves.
        records.sort_unstable_by(|a, b| (a.db, &a.key).cmp(&(b.db, &b.key)));
        let mut i = 0;
        while i < records.len() {
            let db = records[i].db;
            let end = records[i..].iter().position(|r| r.db != db).map_or(records.len(), |n| i + n);
            let expires = records[i..end].iter().filter(|r| r.expires).count();
            w.select_db(db, (end - i) as u64, expires as u64).map_err(io)?;
            for r in &records[i..end] {
                w.raw_records(&r.bytes, 1).map_err(io)?;
            }
            i = end;
        }
    }
    let (_, stats) = w.finish().map_err(io)?;
    file.commit()?;
    Ok((stats.bytes, stats.keys))
}

/// A store being built from a dump or a keyspace, before any thread shares it: the shards
/// are plain values, so filling them takes no lock.
struct Loader {
    shards: Vec<Shard>,
    hasher: RandomState,
    functions: Vec<Bytes>,
}

impl Loader {
    fn new(shards: usize) -> Self {
        let shards =
            (0..shards).map(|_| Shard { dbs: Default::default(), writes: 0, version: 0, saving: None }).collect();
        Loader { shards, hasher: RandomState::new(), functions: Vec::new() }
    }

    /// The shard and bucket of `key`, as [`ShardedStore::shard_of`] finds them.
    fn place(&self, db: usize, key: &[u8]) -> (usize, usize) {
        let hash = self.hasher.hash_one(key);
        let s = shard_index(hash, self.shards.len());
        (s, self.shards[s].dbs[db].address(hash))
    }

    /// Add a key known to be absent.
    fn push(&mut self, db: usize, key: Bytes, entry: Entry) {
        let (s, b) = self.place(db, &key);
        let table = &mut self.shards[s].dbs[db];
        table.push(b, key.into_boxed_slice(), entry);
        while table.wants_split() {
            table.split(0, |k| self.hasher.hash_one(k));
        }
    }

    fn into_store<const N: usize>(self) -> ShardedStore<N> {
        ShardedStore {
            inner: Arc::new(Inner {
                shards: self.shards.into_iter().map(Mutex::new).collect(),
                hasher: self.hasher,
                functions: self.functions,
                saves: SaveState::new(),
                per_shard_files: AtomicBool::new(false),
            }),
        }
    }
}

impl StoreBuilder for Loader {
    /// Pre-size every shard's table for its share of the keys (hashing spreads them
    /// evenly), so loading does not split buckets as the tables fill.
    fn reserve(&mut self, db: usize, keys: usize) {
        let share = keys / self.shards.len();
        for shard in &mut self.shards {
            shard.dbs[db].reserve(share);
        }
    }

    fn insert(&mut self, db: usize, key: Bytes, entry: Entry, offset: u64) -> Result<(), RdbError> {
        let (s, b) = self.place(db, &key);
        if self.shards[s].dbs[db].position(b, &key).is_some() {
            return Err(RdbError::DuplicateKey { offset, db, key: escape(&key) });
        }
        self.push(db, key, entry);
        Ok(())
    }

    fn add_function(&mut self, code: Bytes) {
        self.functions.push(code);
    }
}

impl<const N: usize> SnapshotStrategy for ShardedStore<N> {
    const NAME: &'static str = "sharded";

    fn from_keyspace(mut keyspace: Keyspace) -> Self {
        let mut loader = Loader::new(if N == 0 { default_shards() } else { N });
        loader.functions = keyspace.functions().to_vec();
        for db in 0..DB_COUNT {
            loader.reserve(db, keyspace.db(db).len());
            for (key, entry) in keyspace.db_mut(db).drain() {
                loader.push(db, key, entry);
            }
        }
        loader.into_store()
    }

    /// Read the dump with the pipelined loader straight into the shards' tables.
    fn load(path: &Path) -> Result<Self, RdbError> {
        snaplab_core::load_built(path, Loader::new(if N == 0 { default_shards() } else { N }), Loader::into_store)
    }

    fn apply(&self, cmd: &Command) -> Result<Applied, CommandError> {
        if let Some(db) = cmd.db()
            && db >= DB_COUNT
        {
            return Err(CommandError::DbOutOfRange(db));
        }
        match cmd {
            Command::FlushDb { db } => Ok(self.flush_dbs(&[*db])),
            Command::FlushAll => Ok(self.flush_dbs(&(0..DB_COUNT).collect::<Vec<_>>())),
            _ => self.apply_in_shard(cmd, cmd.db().unwrap_or(0), cmd.key().unwrap_or_default()),
        }
    }

    fn get(&self, db: usize, key: &[u8]) -> Option<Entry> {
        let (s, hash) = self.shard_of(key);
        let shard = lock(&self.inner.shards[s]);
        shard.dbs.get(db)?.get(hash, key).filter(|e| !e.is_expired(unix_ms_now())).cloned()
    }

    fn len(&self) -> usize {
        self.inner.shards.iter().map(|s| lock(s).dbs.iter().map(Table::len).sum::<usize>()).sum()
    }

    fn to_keyspace(&self) -> Keyspace {
        let mut ks = Keyspace::new();
        for s in &self.inner.shards {
            let shard = lock(s);
            for (db, table) in shard.dbs.iter().enumerate() {
                for (k, e) in table.iter() {
                    ks.insert(db, k.to_vec(), e.clone());
                }
            }
        }
        for f in &self.inner.functions {
            ks.add_function(f.clone());
        }
        ks
    }

    /// SAVE is BGSAVE plus waiting.
    fn save(&self, dest: &Path, opts: &SaveOptions) -> Result<SaveReport, SaveError> {
        self.bgsave(dest, opts)?.wait()
    }

    fn bgsave(&self, dest: &Path, opts: &SaveOptions) -> Result<BgSave, SaveError> {
        let ticket = self.inner.saves.begin()?;
        let started = Instant::now();
        let n = self.inner.shards.len();
        let per_shard = self.inner.per_shard_files.load(Ordering::Relaxed);
        let stats = Arc::new(Stats::default());
        let snapshot_id = summary::new_snapshot_id();

        // Open every output before taking the cut, so a failure changes nothing.
        let mut files = Vec::new();
        let targets: Vec<PathBuf> = if per_shard {
            (0..n).map(|i| summary::shard_path(dest, &snapshot_id, i)).collect()
        } else {
            vec![dest.to_path_buf()]
        };
        for t in &targets {
            match AtomicFile::create_with(t, Arc::clone(&opts.io)) {
                Ok(f) => files.push(f),
                Err(e) => return Err(ticket.finish(Err(e)).expect_err("an error was passed in")),
            }
        }
        let channels: Vec<(SyncSender<Blob>, Receiver<Blob>)> =
            files.iter().map(|_| sync_channel(CHANNEL_BLOBS)).collect();

        // The cut: every shard locked at once (in index order), each given its snapshot
        // version and serializer, its write count read. One instant for the whole store.
        let mut per_shard_writes = Vec::with_capacity(n);
        // EXERCISE 10-sharded BEGIN
        let mut guards: Vec<MutexGuard<'_, Shard>> = self.inner.shards.iter().map(lock).collect();
        for g in guards.iter_mut() {
            g.version += 1;
            g.saving = Some(Capture { version: g.version, pending: Vec::new(), stats: Arc::clone(&stats) });
            per_shard_writes.push(g.writes);
        }
        drop(guards);
        // EXERCISE 10-sharded END
        let cut = Cut { per_shard: per_shard_writes };
        let time_to_cut = started.elapsed();

        // One traversal thread per shard, one sink per output file.
        let traversals: Vec<JoinHandle<Duration>> = (0..n)
            .map(|i| {
                let (inner, stats) = (Arc::clone(&self.inner), Arc::clone(&stats));
                let tx = channels[if per_shard { i } else { 0 }].0.clone();
                let ser = Serializer {
                    buf: Vec::with_capacity(BLOB_BYTES + 1024),
                    scratch: Vec::new(),
                    db: None,
                    keys: 0,
                    records: (opts.canonical && !per_shard).then(Vec::new),
                    compress: opts.compress,
                    ready: Vec::new(),
                };
                // Named, so a profile or `top -H` shows which thread is which.
                thread::Builder::new()
                    .name(format!("sharded-trav-{i}"))
                    .spawn(move || traverse(i, &inner.shards[i], ser, tx, &stats))
                    .expect("the OS refused a thread (thread::spawn would panic the same way)")
            })
            .collect();
        let mut sinks: Vec<JoinHandle<Result<(u64, u64), SaveError>>> = Vec::new();
        for (i, (file, (tx, rx))) in files.into_iter().zip(channels).enumerate() {
            // Only the shards' serializers may hold senders, or the sink would never end.
            drop(tx);
            let opts = opts.clone();
            let functions = if i == 0 { self.inner.functions.clone() } else { Vec::new() };
            let aux = if per_shard {
                vec![
                    ("snaplab-snapshot-id".to_string(), snapshot_id.clone()),
                    ("snaplab-shard".to_string(), format!("{i}/{n}")),
                ]
            } else {
                Vec::new()
            };
            let feeding = if per_shard { 1 } else { n };
            sinks.push(
                thread::Builder::new()
                    .name(format!("sharded-sink-{i}"))
                    .spawn(move || {
                        let r = sink(rx, file, &opts, &aux, &functions, feeding);
                        Timer::thread_done("sink", i);
                        r
                    })
                    .expect("the OS refused a thread (thread::spawn would panic the same way)"),
            );
        }

        let (dest, report_cut, inner) = (dest.to_path_buf(), cut.clone(), Arc::clone(&self.inner));
        let io = Arc::clone(&opts.io);
        let handle = thread::spawn(move || {
            let mut durations = Vec::with_capacity(n);
            let mut panicked = None;
            for (i, h) in traversals.into_iter().enumerate() {
                match h.join() {
                    Ok(d) => durations.push(d),
                    Err(payload) => {
                        // It died with its shard's capture open: close it, so writers stop
                        // capturing buckets for a save that has failed.
                        lock(&inner.shards[i]).saving = None;
                        durations.push(Duration::ZERO);
                        let why = panic_message(payload.as_ref());
                        panicked
                            .get_or_insert(SaveError::Aborted(format!("the traversal of shard {i} panicked: {why}")));
                    }
                }
            }
            let mut outcome: Result<Vec<(u64, u64)>, SaveError> = Ok(Vec::new());
            for s in sinks {
                let r = s.join().unwrap_or_else(|_| Err(SaveError::Aborted("a sink thread panicked".into())));
                outcome = match (outcome, r) {
                    (Ok(mut all), Ok(one)) => {
                        all.push(one);
                        Ok(all)
                    }
                    (Err(e), _) | (_, Err(e)) => Err(e),
                };
            }
            // The sink serving a dead traversal has refused to commit; the panic is the cause
            // worth reporting.
            if let Some(e) = panicked {
                outcome = Err(e);
            }
            if per_shard && outcome.is_err() {
                // Shard files that did commit belong to no summary: remove them.
                targets.iter().for_each(|t| drop(io.remove(t)));
            }
            let result = outcome.and_then(|per_file| {
                if per_shard {
                    summary::commit(&dest, &snapshot_id, &targets, &io)?;
                }
                let bytes = per_file.iter().map(|(b, _)| b).sum();
                let keys = per_file.iter().map(|(_, k)| k).sum();
                let mut figures = vec![
                    ("buckets_by_traversal_count", stats.by_traversal.load(Ordering::Relaxed)),
                    ("buckets_by_writers_count", stats.by_writers.load(Ordering::Relaxed)),
                    ("writer_serialize_us", stats.writer_serialize_ns.load(Ordering::Relaxed) / 1000),
                    ("channel_full_waits_count", stats.channel_full_waits.load(Ordering::Relaxed)),
                ];
                figures.extend(durations.iter().zip(SHARD_US).map(|(d, name)| (name, d.as_micros() as u64)));
                Ok(SaveReport {
                    strategy: Self::NAME,
                    path: dest.clone(),
                    cut: report_cut,
                    time_to_cut,
                    duration: started.elapsed(),
                    bytes,
                    keys,
                    finished_at_ms: unix_ms_now(),
                    figures,
                })
            });
            ticket.finish(result)
        });
        Ok(BgSave::new(cut, time_to_cut, handle))
    }

    fn lastsave(&self) -> Option<i64> {
        self.inner.saves.lastsave()
    }

    fn last_save_status(&self) -> SaveStatus {
        self.inner.saves.status()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    /// Test-only fault: the traversal of the shard whose lock is at this address panics
    /// after its first batch of buckets (0: none). An address, not a flag, so tests running
    /// in parallel with their own stores are not affected.
    pub(crate) static PANIC_IN_TRAVERSAL_OF: AtomicUsize = AtomicUsize::new(0);

    fn keyspace(n: usize) -> Keyspace {
        let mut ks = Keyspace::new();
        for i in 0..n {
            ks.insert(0, format!("key:{i}").into_bytes(), Entry::new(snaplab_core::Value::String(b"v".to_vec())));
        }
        ks
    }

    /// Each bucket at the cut is counted once in the save's report, by the traversal or by
    /// the writer that captured it first: the counters travel with each shard's capture.
    #[test]
    fn every_bucket_at_the_cut_is_counted_once() {
        let store = ShardedStore::<2>::from_keyspace(keyspace(20_000));
        let buckets: u64 =
            store.inner.shards.iter().map(|s| lock(s).dbs.iter().map(|t| t.buckets() as u64).sum::<u64>()).sum();
        let dir = tempfile::tempdir().unwrap();
        let bg = store.bgsave(&dir.path().join("dump.rdb"), &SaveOptions::default()).unwrap();
        for i in (0..20_000).rev().step_by(7) {
            let set =
                Command::Set { db: 0, key: format!("key:{i}").into_bytes(), value: b"w".to_vec(), expire_at_ms: None };
            store.apply(&set).unwrap();
        }
        let report = bg.wait().unwrap();
        let by_traversal = report.figure("buckets_by_traversal_count").unwrap();
        let by_writers = report.figure("buckets_by_writers_count").unwrap();
        assert_eq!(by_traversal + by_writers, buckets, "{by_traversal} + {by_writers}");
    }

    /// A traversal thread that panics fails the save: the sink does not commit, the previous
    /// dump (or summary) stays, the status says err, and the next save is whole.
    #[test]
    fn a_panicking_traversal_fails_the_save_and_keeps_the_previous_dump() {
        for per_shard in [false, true] {
            let store = ShardedStore::<2>::from_keyspace(keyspace(5_000));
            store.set_per_shard_files(per_shard);
            let dir = tempfile::tempdir().unwrap();
            let dest = dir.path().join("dump.rdb");
            store.save(&dest, &SaveOptions::default()).unwrap();
            let previous = std::fs::read(&dest).unwrap();
            let files_before = std::fs::read_dir(dir.path()).unwrap().count();
            let set = Command::Set { db: 0, key: b"key:1".to_vec(), value: b"changed".to_vec(), expire_at_ms: None };
            store.apply(&set).unwrap();

            PANIC_IN_TRAVERSAL_OF.store(&store.inner.shards[1] as *const Mutex<Shard> as usize, Ordering::Relaxed);
            let result = store.save(&dest, &SaveOptions::default());
            PANIC_IN_TRAVERSAL_OF.store(0, Ordering::Relaxed);

            let err = result.expect_err("a save missing a shard reported success");
            assert!(err.to_string().contains("shard 1"), "{err}");
            assert!(matches!(store.last_save_status(), SaveStatus::Err(_)));
            assert_eq!(std::fs::read(&dest).unwrap(), previous, "per_shard={per_shard}: the previous dump changed");
            assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), files_before, "files left behind");

            store.save(&dest, &SaveOptions::default()).unwrap();
            let saved =
                if per_shard { summary::load(&dest).unwrap() } else { snaplab_core::rdb::load_file(&dest).unwrap().0 };
            assert_eq!(saved, store.to_keyspace());
        }
    }
}
