#![doc = include_str!("../README.md")]

use std::collections::BTreeMap;
use std::ops::Bound;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;
use std::time::Instant;

use parking_lot::{Condvar, Mutex, MutexGuard};
use snaplab_core::rdb::consts::OPCODE_SELECTDB;
use snaplab_core::rdb::encode::{encode_entry_ref, put_len, write_aux_fields};
use snaplab_core::rdb::{EncodeOptions, RdbWriter};
use snaplab_core::{
    Applied, AtomicFile, BgSave, Bytes, Command, CommandError, Cut, DB_COUNT, Entry, EntryRef, Keyspace, RdbError,
    Reply, SaveError, SaveOptions, SaveReport, SaveState, SaveStatus, SlotChange, SnapshotStrategy, StoreBuilder,
    WriteStamp, apply_to_slot, escape, unix_ms_now,
};

// ANCHOR: consts
/// Above this many bytes (key plus value, as [`Value::heap_bytes`](snaplab_core::Value::heap_bytes)
/// estimates them), a writer about to change a key the iterator has not visited does not
/// clone the value: it asks the iterator to serialize that key first and waits for it.
/// Below it, the writer clones the pre-cut value into the side table and goes on.
///
/// The trade: a clone costs memory (the value's size, held until the iterator drains it)
/// and the writer's time to copy; a wait costs the writer the time until the iterator's
/// next batch, and no memory. 64 KiB is our choice, not Valkey's (whose forkless save has
/// its own policy for large values); [`PerKeyCopy`]'s parameter changes it.
pub const LARGE_VALUE_BYTES: usize = 64 * 1024;

/// Keys the iterator walks per hold of the lock. It copies them out (or, above the
/// large-value threshold, encodes them) while it holds the lock, since the values are not
/// its own to read otherwise, so this bounds a writer's wait behind it.
pub const KEYS_PER_LOCK: usize = 128;

/// Bytes the iterator copies out or encodes per hold of the lock at most, for the same
/// reason: a batch ends early at a large value.
pub const BYTES_PER_LOCK: usize = 64 * 1024;
// ANCHOR_END: consts

// ANCHOR: slot
/// A key's entry and its epoch: the number of the save that has already accounted for the
/// key. A key is *unvisited* while a save runs and its epoch is below the store's save
/// epoch; the iterator, a writer preserving its pre-image, or its creation after the cut
/// lifts it to the save epoch, and from then on the save ignores the live value. Valkey's
/// forkless save keeps the same kind of per-key metadata (4 bytes per key, allocated when
/// `forkless-infrastructure-enabled` is on).
struct Slot {
    entry: Entry,
    epoch: u64,
}
// ANCHOR_END: slot

/// One database: keys in byte order, so the iterator can resume after the last key it saw
/// however many keys were inserted or removed meanwhile.
///
/// Production note: Valkey iterates its hash table with `dictScan`'s reverse-binary cursor
/// (src/dict.c), which survives rehashing; a `BTreeMap` gives a stable cursor for free at
/// the cost of O(log n) lookups.
type Db = BTreeMap<Bytes, Slot>;

/// Where the iterator is: it has walked every key of the databases before `db`, and of
/// `db` every key up to and including `after`.
#[derive(Default)]
struct Cursor {
    db: usize,
    after: Option<Bytes>,
}

/// A pre-cut value a writer preserved before changing (or deleting) its key.
struct Preserved {
    db: usize,
    key: Bytes,
    entry: Entry,
}

/// A write waiting for the iterator to serialize a large key first.
struct Wanted {
    db: usize,
    key: Bytes,
    since: Instant,
}

// ANCHOR: save
/// What the store keeps, under its lock, while a save runs.
struct Save {
    /// The iterator's position.
    next: Cursor,
    /// The side table: pre-images preserved by writers, drained by the iterator at its next
    /// batch.
    preserved: Vec<Preserved>,
    /// Bytes in `preserved` now (key plus value estimates).
    preserved_bytes: u64,
    /// Databases emptied by FLUSHDB / FLUSHALL during the save, moved here whole (O(1)):
    /// their unvisited keys still belong in the dump.
    flushed: Vec<(usize, Db)>,
    /// Large keys writers wait for, served first at the iterator's next batch.
    wanted: Vec<Wanted>,
    /// The save's counters, reached by writers under the lock they already hold.
    stats: Arc<Stats>,
}
// ANCHOR_END: save

/// Counters for the save report. Relaxed: statistics, not synchronisation (each is
/// updated under the store lock or by the iterator alone, and read after it ends).
#[derive(Default)]
struct Stats {
    preimages: AtomicU64,
    preimage_bytes: AtomicU64,
    side_table_peak_bytes: AtomicU64,
    waited: AtomicU64,
    wait_total_ns: AtomicU64,
    wait_max_ns: AtomicU64,
    by_iterator: AtomicU64,
    flushed_dbs: AtomicU64,
}

/// Everything behind the store's one lock.
#[derive(Default)]
struct State {
    dbs: [Db; DB_COUNT],
    /// Writes applied so far: the cut is this count read under the lock.
    writes: u64,
    /// The save epoch: bumped by each BGSAVE.
    epoch: u64,
    saving: Option<Save>,
}

struct Inner {
    state: Mutex<State>,
    /// Signalled after the iterator served the keys writers wait for, and when a save ends.
    served: Condvar,
    functions: Vec<Bytes>,
    saves: Arc<SaveState>,
}

/// Per-key copy-on-update: one lock, an epoch per key, an O(1) cut, and one background
/// iterator that serializes every key not yet visited; a writer about to change an
/// unvisited key preserves its pre-cut value first (Valkey's forkless save; Cao et al.'s
/// copy-on-update, SIGMOD 2011).
///
/// `LARGE` is the size in bytes above which a writer waits for the iterator instead of
/// cloning a pre-image ([`LARGE_VALUE_BYTES`] by default; `usize::MAX`: always clone;
/// 0: always wait). Cheap to clone: clones share the same store.
pub struct PerKeyCopy<const LARGE: usize = LARGE_VALUE_BYTES> {
    inner: Arc<Inner>,
}

impl<const LARGE: usize> Clone for PerKeyCopy<LARGE> {
    fn clone(&self) -> Self {
        PerKeyCopy { inner: Arc::clone(&self.inner) }
    }
}

impl<const LARGE: usize> PerKeyCopy<LARGE> {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.inner.state.lock()
    }

    // ANCHOR: preserve
    /// Copy-on-update: make sure the running save (if any) has the pre-cut value of `key`
    /// before a write changes it. An unvisited key (epoch below the save's) is cloned into
    /// the side table and lifted to the save's epoch, so every later write to it in this
    /// save is free; above `LARGE` bytes the writer instead asks the iterator to serialize
    /// the key first and waits (the wait releases the lock). Cloned even if the write then
    /// changes nothing or is refused: that is safe, and simpler than asking first.
    fn preserve_if_unvisited(&self, st: &mut MutexGuard<'_, State>, db: usize, key: &[u8]) {
        // EXERCISE 14-perkey BEGIN
        // The epoch of the save this write has asked to serialize the key, if any.
        let mut asked = None;
        loop {
            let State { dbs, epoch, saving, .. } = &mut **st;
            let Some(save) = saving else { return };
            let Some(slot) = dbs[db].get_mut(key) else { return };
            if slot.epoch >= *epoch {
                // Visited, preserved already, or created after the cut: the save is done
                // with this key.
                return;
            }
            let bytes = (key.len() + slot.entry.value.heap_bytes()) as u64;
            if bytes <= LARGE as u64 {
                slot.epoch = *epoch;
                save.preserve(db, key, slot.entry.clone(), bytes);
                return;
            }
            // Ask once per save: the iterator counts each request as one waiting write.
            if asked != Some(*epoch) {
                save.wanted.push(Wanted { db, key: key.to_vec(), since: Instant::now() });
                asked = Some(*epoch);
            }
            self.inner.served.wait(st);
        }
        // EXERCISE 14-perkey END
    }
    // ANCHOR_END: preserve

    // ANCHOR: apply_key
    /// Apply a single-key command: preserve the key's pre-cut value if a save needs it,
    /// then change it.
    fn apply_key(&self, cmd: &Command, db: usize, key: &[u8]) -> Result<Applied, CommandError> {
        let mut st = self.lock();
        self.preserve_if_unvisited(&mut st, db, key);
        let State { dbs, writes, epoch, .. } = &mut *st;
        let map = &mut dbs[db];
        let (reply, change) = apply_to_slot(cmd, map.get_mut(key).map(|s| &mut s.entry), unix_ms_now())?;
        match change {
            SlotChange::Kept => {}
            // A key created now (or replaced) belongs to the current epoch: a save running
            // now skips it, since it did not exist at the cut (or was preserved above).
            SlotChange::Put(entry) => {
                map.insert(key.to_vec(), Slot { entry, epoch: *epoch });
            }
            SlotChange::Remove => {
                map.remove(key);
            }
        }
        *writes += 1;
        Ok(Applied::new(reply, WriteStamp { shard: 0, seq: *writes }))
    }
    // ANCHOR_END: apply_key

    // ANCHOR: flush_dbs
    /// FLUSHDB / FLUSHALL: one write. During a save each emptied database is moved whole
    /// into the save (O(1)); the iterator serializes its unvisited keys from there. Cloning
    /// them instead would make FLUSHALL during a save cost a copy of the dataset.
    fn flush_dbs(&self, which: &[usize]) -> Applied {
        let mut st = self.lock();
        let State { dbs, writes, saving, .. } = &mut *st;
        for &db in which {
            let map = std::mem::take(&mut dbs[db]);
            if let Some(save) = saving
                && !map.is_empty()
            {
                save.stats.flushed_dbs.fetch_add(1, Ordering::Relaxed);
                save.flushed.push((db, map));
            }
        }
        *writes += 1;
        Applied::new(Reply::Ok, WriteStamp { shard: 0, seq: *writes })
    }
    // ANCHOR_END: flush_dbs
}

impl Save {
    fn new(stats: Arc<Stats>) -> Self {
        Save {
            next: Cursor::default(),
            preserved: Vec::new(),
            preserved_bytes: 0,
            flushed: Vec::new(),
            wanted: Vec::new(),
            stats,
        }
    }

    /// Put a pre-cut value in the side table and count it.
    fn preserve(&mut self, db: usize, key: &[u8], entry: Entry, bytes: u64) {
        self.preserved.push(Preserved { db, key: key.to_vec(), entry });
        self.preserved_bytes += bytes;
        self.stats.preimages.fetch_add(1, Ordering::Relaxed);
        self.stats.preimage_bytes.fetch_add(bytes, Ordering::Relaxed);
        self.stats.side_table_peak_bytes.fetch_max(self.preserved_bytes, Ordering::Relaxed);
    }
}

/// One key's record, kept apart in canonical mode (which sorts keys before writing).
struct Record {
    db: usize,
    key: Bytes,
    expires: bool,
    bytes: Vec<u8>,
}

/// The iterator's RDB encoder: records go into a buffer (under the lock for live keys),
/// which is written to the file after the lock is released.
struct Encoder {
    buf: Vec<u8>,
    scratch: Vec<u8>,
    /// The database the output stream is in (its last SELECTDB).
    db: Option<usize>,
    /// Keys in `buf`.
    keys: u64,
    /// Keys encoded in all.
    total: u64,
    compress: bool,
    /// Canonical mode: every record, sorted and written at the end.
    records: Option<Vec<Record>>,
    /// Bytes encoded or copied out since the batch began.
    batch_bytes: usize,
    /// Keys the walk copied out under the lock, encoded after it is released.
    copied: Vec<Preserved>,
}

impl Encoder {
    fn copy_out(&mut self, db: usize, key: &[u8], entry: &Entry, bytes: usize) {
        self.copied.push(Preserved { db, key: key.to_vec(), entry: entry.clone() });
        self.batch_bytes += bytes;
    }

    fn key(&mut self, db: usize, key: &[u8], entry: EntryRef<'_>) {
        self.total += 1;
        if let Some(records) = &mut self.records {
            let expires = entry.expire_at_ms.is_some();
            let mut bytes = Vec::new();
            encode_entry_ref(&mut bytes, &mut self.scratch, key, entry, self.compress, true);
            self.batch_bytes += bytes.len();
            records.push(Record { db, key: key.to_vec(), expires, bytes });
            return;
        }
        let before = self.buf.len();
        if self.db != Some(db) {
            // Preserved keys come out of key order and database order, so the stream
            // switches database whenever the next key needs it (RDB allows SELECTDB to
            // repeat; the RESIZEDB hint is left out, as it may be).
            self.buf.push(OPCODE_SELECTDB);
            put_len(&mut self.buf, db as u64);
            self.db = Some(db);
        }
        encode_entry_ref(&mut self.buf, &mut self.scratch, key, entry, self.compress, false);
        self.keys += 1;
        self.batch_bytes += self.buf.len() - before;
    }

    /// Write the buffered records to `w`.
    fn drain<W: std::io::Write>(&mut self, w: &mut RdbWriter<W>, opts: &SaveOptions) -> std::io::Result<()> {
        if !self.buf.is_empty() {
            w.raw_records(&self.buf, self.keys)?;
            if let Some(p) = &opts.progress {
                p.fetch_add(self.keys, Ordering::Relaxed);
            }
            self.buf.clear();
            self.keys = 0;
        }
        Ok(())
    }
}

// ANCHOR: walk
/// Walk up to [`KEYS_PER_LOCK`] keys (or [`BYTES_PER_LOCK`] taken) from the cursor, taking
/// each unvisited key for the dump and lifting it to `epoch`. A value of at most `large`
/// bytes is copied out, to be encoded after the lock is released (a copy of a small value
/// takes far less time under the lock than its encoding); a larger one is encoded in place,
/// so that it is never copied. Returns whether every database has been walked.
fn walk(dbs: &mut [Db; DB_COUNT], next: &mut Cursor, epoch: u64, large: usize, out: &mut Encoder) -> bool {
    let mut walked = 0;
    while next.db < DB_COUNT {
        let map = &mut dbs[next.db];
        let from = match &next.after {
            Some(k) => Bound::Excluded(k.as_slice()),
            None => Bound::Unbounded,
        };
        let mut last: Option<&Bytes> = None;
        for (key, slot) in map.range_mut::<[u8], _>((from, Bound::Unbounded)) {
            if walked == KEYS_PER_LOCK || out.batch_bytes >= BYTES_PER_LOCK {
                if let Some(k) = last {
                    next.after = Some(k.clone());
                }
                return false;
            }
            walked += 1;
            // EXERCISE 14-perkey BEGIN
            if slot.epoch < epoch {
                slot.epoch = epoch;
                let bytes = key.len() + slot.entry.value.heap_bytes();
                if bytes <= large {
                    out.copy_out(next.db, key, &slot.entry, bytes);
                } else {
                    out.key(next.db, key, slot.entry.as_ref());
                }
            }
            // EXERCISE 14-perkey END
            last = Some(key);
        }
        next.db += 1;
        next.after = None;
    }
    true
}
// ANCHOR_END: walk

/// Ends the save when the iterator stops for any reason (done, an I/O error, a panic):
/// writers stop preserving, and those waiting for a key go on.
struct EndSave<'a>(&'a Inner);

impl Drop for EndSave<'_> {
    fn drop(&mut self) {
        self.0.state.lock().saving = None;
        self.0.served.notify_all();
    }
}

// ANCHOR: iterate
/// The background iterator: batch by batch, under the lock, serve the large keys writers
/// wait for, walk on from the cursor, and take the side table and flushed databases; then,
/// outside the lock, encode what was taken and write everything out. The batch that
/// finishes the walk ends the save in the same hold of the lock, so no writer can add a
/// pre-image the iterator would not see.
fn iterate<W: std::io::Write>(
    inner: &Inner,
    epoch: u64,
    large: usize,
    out: &mut Encoder,
    w: &mut RdbWriter<W>,
    opts: &SaveOptions,
    stats: &Stats,
) -> std::io::Result<()> {
    loop {
        out.batch_bytes = 0;
        let mut st = inner.state.lock();
        let State { dbs, saving, .. } = &mut *st;
        let save = saving.as_mut().expect("only the iterator ends a save");
        let served = !save.wanted.is_empty();
        for Wanted { db, key, since } in save.wanted.drain(..) {
            let waited = since.elapsed().as_nanos() as u64;
            stats.waited.fetch_add(1, Ordering::Relaxed);
            stats.wait_total_ns.fetch_add(waited, Ordering::Relaxed);
            stats.wait_max_ns.fetch_max(waited, Ordering::Relaxed);
            // Gone (deleted or flushed) or already visited: nothing left to do for it.
            if let Some(slot) = dbs[db].get_mut(&key)
                && slot.epoch < epoch
            {
                slot.epoch = epoch;
                out.key(db, &key, slot.entry.as_ref());
                stats.by_iterator.fetch_add(1, Ordering::Relaxed);
            }
        }
        let before = out.total;
        let done = walk(dbs, &mut save.next, epoch, large, out);
        stats.by_iterator.fetch_add(out.total - before + out.copied.len() as u64, Ordering::Relaxed);
        let preserved = std::mem::take(&mut save.preserved);
        save.preserved_bytes = 0;
        let flushed = std::mem::take(&mut save.flushed);
        if done {
            *saving = None;
        }
        // Hand the lock to a waiting writer, if any: with an ordinary (unfair) unlock the
        // iterator, busy on its core, takes it straight back and writers starve.
        MutexGuard::unlock_fair(st);
        if served || done {
            inner.served.notify_all();
        }
        let copied = std::mem::take(&mut out.copied);
        for p in preserved.iter().chain(&copied) {
            out.key(p.db, &p.key, p.entry.as_ref());
        }
        for (db, map) in &flushed {
            for (key, slot) in map.iter().filter(|(_, s)| s.epoch < epoch) {
                out.key(*db, key, slot.entry.as_ref());
            }
        }
        // The pre-images are freed here, outside the lock.
        drop((preserved, copied, flushed));
        out.drain(w, opts)?;
        if done {
            return Ok(());
        }
    }
}
// ANCHOR_END: iterate

/// Write the records canonical mode collected: sorted per database, SELECTDB and RESIZEDB
/// once each, as a single-threaded strategy writes them.
fn write_canonical<W: std::io::Write>(mut records: Vec<Record>, w: &mut RdbWriter<W>) -> std::io::Result<()> {
    records.sort_unstable_by(|a, b| (a.db, &a.key).cmp(&(b.db, &b.key)));
    let mut i = 0;
    while i < records.len() {
        let db = records[i].db;
        let end = records[i..].iter().position(|r| r.db != db).map_or(records.len(), |n| i + n);
        let expires = records[i..end].iter().filter(|r| r.expires).count();
        w.select_db(db, (end - i) as u64, expires as u64)?;
        for r in &records[i..end] {
            w.raw_records(&r.bytes, 1)?;
        }
        i = end;
    }
    Ok(())
}

/// The save thread: create the file, header, iteration, trailer, commit. Returns (bytes,
/// keys). However it returns, the save is over for writers.
fn write_dump(
    inner: &Inner,
    epoch: u64,
    large: usize,
    dest: &Path,
    opts: &SaveOptions,
    stats: &Stats,
) -> Result<(u64, u64), SaveError> {
    let _end = EndSave(inner);
    // Created here, after the cut, as Redis's child creates its temporary file in rdbSave
    // (src/rdb.c): BGSAVE returns at the cut, and a failure to create the file fails the
    // save, as any later I/O error does (the status says err, the previous dump stays).
    let mut file = AtomicFile::create_with(dest, Arc::clone(&opts.io))?;
    let path = file.temp_path().to_path_buf();
    let io = |e| SaveError::io("write", &path, e);
    let enc = EncodeOptions {
        compress: opts.compress,
        canonical: opts.canonical,
        strategy: Some(<PerKeyCopy>::NAME),
        ctime_s: unix_ms_now() / 1000,
    };
    let mut w = RdbWriter::new(&mut file, opts.compress).map_err(io)?;
    write_aux_fields(&mut w, &enc).map_err(io)?;
    for code in &inner.functions {
        w.function(code).map_err(io)?;
    }
    let mut out = Encoder {
        buf: Vec::with_capacity(BYTES_PER_LOCK + 4096),
        scratch: Vec::new(),
        db: None,
        keys: 0,
        total: 0,
        compress: opts.compress,
        records: opts.canonical.then(Vec::new),
        batch_bytes: 0,
        copied: Vec::new(),
    };
    iterate(inner, epoch, large, &mut out, &mut w, opts, stats).map_err(io)?;
    if let Some(records) = out.records.take() {
        write_canonical(records, &mut w).map_err(io)?;
        if let Some(p) = &opts.progress {
            p.fetch_add(out.total, Ordering::Relaxed);
        }
    }
    let (_, encoded) = w.finish().map_err(io)?;
    file.commit()?;
    Ok((encoded.bytes, encoded.keys))
}

impl<const LARGE: usize> PerKeyCopy<LARGE> {
    fn from_state(state: State, functions: Vec<Bytes>) -> Self {
        PerKeyCopy {
            inner: Arc::new(Inner {
                state: Mutex::new(state),
                served: Condvar::new(),
                functions,
                saves: SaveState::new(),
            }),
        }
    }
}

/// Builds the databases from a dump: keys are collected per database as they arrive, then
/// sorted once and turned into each `BTreeMap` in bulk (`from_iter` on sorted input fills
/// nodes left to right). Duplicates are found in the sorted run as neighbours, and the one
/// reported is the one whose second record comes first in the file, as a loader checking
/// key by key would report it.
#[derive(Default)]
struct Loader {
    /// Per database: (key, entry, offset of its record).
    pending: Vec<Vec<(Bytes, Entry, u64)>>,
    state: State,
    functions: Vec<Bytes>,
}

impl StoreBuilder for Loader {
    fn reserve(&mut self, db: usize, keys: usize) {
        self.pending.resize_with(DB_COUNT, Vec::new);
        self.pending[db].reserve(keys);
    }

    fn insert(&mut self, db: usize, key: Bytes, entry: Entry, offset: u64) -> Result<(), RdbError> {
        self.pending.resize_with(DB_COUNT, Vec::new);
        self.pending[db].push((key, entry, offset));
        Ok(())
    }

    fn add_function(&mut self, code: Bytes) {
        self.functions.push(code);
    }

    fn finish(&mut self) -> Result<(), RdbError> {
        let mut first_dup: Option<RdbError> = None;
        for (db, mut keys) in std::mem::take(&mut self.pending).into_iter().enumerate() {
            // Equal keys in file order, so the first pair of neighbours is the first repeat.
            keys.sort_unstable_by(|a, b| a.0.cmp(&b.0).then(a.2.cmp(&b.2)));
            for pair in keys.windows(2) {
                if pair[0].0 == pair[1].0 {
                    let offset = pair[0].2.max(pair[1].2);
                    if first_dup.as_ref().is_none_or(|e| offset < e.offset()) {
                        first_dup = Some(RdbError::DuplicateKey { offset, db, key: escape(&pair[0].0) });
                    }
                }
            }
            if first_dup.is_none() {
                self.state.dbs[db] = keys.into_iter().map(|(k, entry, _)| (k, Slot { entry, epoch: 0 })).collect();
            }
        }
        first_dup.map_or(Ok(()), Err)
    }
}

impl<const LARGE: usize> SnapshotStrategy for PerKeyCopy<LARGE> {
    const NAME: &'static str = "perkey";

    fn from_keyspace(mut keyspace: Keyspace) -> Self {
        let mut state = State::default();
        for (db, map) in state.dbs.iter_mut().enumerate() {
            // Collected, then built in bulk: `BTreeMap::from_iter` sorts once and fills
            // nodes left to right, where inserting keys one by one in hash order would
            // descend the tree and split nodes for every key.
            let slots: Vec<(Bytes, Slot)> =
                keyspace.db_mut(db).drain().map(|(k, entry)| (k, Slot { entry, epoch: 0 })).collect();
            *map = slots.into_iter().collect();
        }
        Self::from_state(state, keyspace.functions().to_vec())
    }

    /// Read the dump with the pipelined loader straight into sorted databases (see
    /// [`Loader`]).
    fn load(path: &Path) -> Result<Self, RdbError> {
        snaplab_core::load_built(path, Loader::default(), |l| Self::from_state(l.state, l.functions))
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
            _ => self.apply_key(cmd, cmd.db().unwrap_or(0), cmd.key().unwrap_or_default()),
        }
    }

    fn get(&self, db: usize, key: &[u8]) -> Option<Entry> {
        let st = self.lock();
        st.dbs.get(db)?.get(key).map(|s| &s.entry).filter(|e| !e.is_expired(unix_ms_now())).cloned()
    }

    fn len(&self) -> usize {
        self.lock().dbs.iter().map(BTreeMap::len).sum()
    }

    fn to_keyspace(&self) -> Keyspace {
        let st = self.lock();
        let mut ks = Keyspace::new();
        for (db, map) in st.dbs.iter().enumerate() {
            for (k, s) in map {
                ks.insert(db, k.clone(), s.entry.clone());
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
        let stats = Arc::new(Stats::default());

        // ANCHOR: cut
        // The cut: bump the save epoch and read the write count, under the lock. Every key
        // now has an epoch below the new one, so every key is unvisited: O(1), whatever the
        // number of keys.
        let held = Instant::now();
        let (cut, epoch): (Cut, u64);
        // EXERCISE 14-perkey BEGIN
        let mut st = self.lock();
        st.epoch += 1;
        st.saving = Some(Save::new(Arc::clone(&stats)));
        (cut, epoch) = (Cut::single(st.writes), st.epoch);
        drop(st);
        // EXERCISE 14-perkey END
        // ANCHOR_END: cut
        let cut_lock = held.elapsed();
        let time_to_cut = started.elapsed();

        let (inner, opts, dest, report_cut) = (Arc::clone(&self.inner), opts.clone(), dest.to_path_buf(), cut.clone());
        let handle = thread::spawn(move || {
            let result = write_dump(&inner, epoch, LARGE, &dest, &opts, &stats).map(|(bytes, keys)| {
                let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
                SaveReport {
                    strategy: Self::NAME,
                    path: dest,
                    cut: report_cut,
                    time_to_cut,
                    duration: started.elapsed(),
                    bytes,
                    keys,
                    finished_at_ms: unix_ms_now(),
                    figures: vec![
                        ("preimages_count", get(&stats.preimages)),
                        ("preimage_bytes", get(&stats.preimage_bytes)),
                        ("side_table_peak_bytes", get(&stats.side_table_peak_bytes)),
                        ("waited_writes_count", get(&stats.waited)),
                        ("wait_total_us", get(&stats.wait_total_ns) / 1000),
                        ("wait_max_us", get(&stats.wait_max_ns) / 1000),
                        ("keys_by_iterator_count", get(&stats.by_iterator)),
                        ("flushed_dbs_kept_count", get(&stats.flushed_dbs)),
                        ("cut_lock_ns", cut_lock.as_nanos() as u64),
                    ],
                }
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
    use snaplab_core::{IoFile, RealIo, SaveIo, Value};
    use std::collections::HashMap;
    use std::sync::mpsc::{Receiver, Sender, channel};

    /// A file system whose files stop at their first write until the test lets them go:
    /// it holds the iterator at its first flush (after about 64 KiB of records), with the
    /// keys after that point still unvisited.
    #[derive(Debug)]
    struct Gate {
        reached: std::sync::Mutex<Sender<()>>,
        release: std::sync::Mutex<Receiver<()>>,
    }

    struct GatedFile {
        inner: Box<dyn IoFile>,
        gate: Arc<Gate>,
        passed: bool,
    }

    impl std::io::Write for GatedFile {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            if !self.passed {
                self.passed = true;
                let _ = self.gate.reached.lock().unwrap().send(());
                let _ = self.gate.release.lock().unwrap().recv();
            }
            self.inner.write(buf)
        }
        fn flush(&mut self) -> std::io::Result<()> {
            self.inner.flush()
        }
    }

    impl IoFile for GatedFile {
        fn sync(&mut self) -> std::io::Result<()> {
            self.inner.sync()
        }
    }

    #[derive(Debug)]
    struct GatedIo(Arc<Gate>);

    impl SaveIo for GatedIo {
        fn create(&self, path: &Path) -> std::io::Result<Box<dyn IoFile>> {
            Ok(Box::new(GatedFile { inner: RealIo.create(path)?, gate: Arc::clone(&self.0), passed: false }))
        }
        fn rename(&self, from: &Path, to: &Path) -> std::io::Result<()> {
            RealIo.rename(from, to)
        }
        fn sync_dir(&self, dir: &Path) -> std::io::Result<()> {
            RealIo.sync_dir(dir)
        }
        fn remove(&self, path: &Path) -> std::io::Result<()> {
            RealIo.remove(path)
        }
    }

    /// A held save: the options that route it through a gate, a receiver that says the
    /// iterator has reached the gate, and the sender that opens it.
    fn gate() -> (SaveOptions, Receiver<()>, Sender<()>) {
        let (reached_tx, reached_rx) = channel();
        let (release_tx, release_rx) = channel();
        let gate = Gate { reached: std::sync::Mutex::new(reached_tx), release: std::sync::Mutex::new(release_rx) };
        // Uncompressed, so the 100-byte values fill the writer's 64 KiB buffer long before the end.
        let opts = SaveOptions { io: Arc::new(GatedIo(Arc::new(gate))), compress: false, ..SaveOptions::default() };
        (opts, reached_rx, release_tx)
    }

    /// 2,000 keys `a:0000`.. of 100 bytes in db 0 (about 220 KiB of records, so the
    /// iterator's first flush comes long before the end), and `z:big`, a hash of 2,000
    /// fields, which sorts last.
    fn keyspace() -> Keyspace {
        let mut ks = Keyspace::new();
        for i in 0..2000 {
            ks.insert(0, format!("a:{i:04}").into_bytes(), Entry::new(Value::String(vec![b'x'; 100])));
        }
        let big: HashMap<Bytes, Bytes> =
            (0..2000).map(|i| (format!("f{i}").into_bytes(), format!("v{i}").into_bytes())).collect();
        ks.insert(0, b"z:big".to_vec(), Entry::new(Value::Hash(Box::new(big))));
        ks
    }

    fn hset(key: &str, n: usize) -> Command {
        Command::HSet {
            db: 0,
            key: key.as_bytes().to_vec(),
            pairs: vec![(b"new".to_vec(), n.to_string().into_bytes())],
        }
    }

    fn set(key: &str, n: usize) -> Command {
        Command::Set { db: 0, key: key.as_bytes().to_vec(), value: n.to_string().into_bytes(), expire_at_ms: None }
    }

    /// Memory grows with the distinct keys written during a save, not with the writes: a
    /// thousand writes to ten unvisited keys (the large one among them) clone ten
    /// pre-images, each once, and the dump holds every key as it was at the cut.
    #[test]
    fn each_key_is_preserved_once_however_often_it_is_written() {
        let initial = keyspace();
        let store = PerKeyCopy::<{ usize::MAX }>::from_keyspace(initial.clone());
        // What the store will count for the ten keys: key plus value estimate, as held now.
        let written: Vec<String> =
            std::iter::once("z:big".to_string()).chain((1991..2000).map(|i| format!("a:{i:04}"))).collect();
        let expected_bytes: u64 =
            written.iter().map(|k| (k.len() + store.lock().dbs[0][k.as_bytes()].entry.value.heap_bytes()) as u64).sum();
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("dump.rdb");
        let (opts, reached, release) = gate();
        let bg = store.bgsave(&dest, &opts).unwrap();
        reached.recv().unwrap();
        for n in 0..100 {
            store.apply(&hset("z:big", n)).unwrap();
            for i in 1991..2000 {
                store.apply(&set(&format!("a:{i:04}"), n)).unwrap();
            }
        }
        release.send(()).unwrap();
        let report = bg.wait().unwrap();
        assert_eq!(report.figure("preimages_count"), Some(10), "ten distinct keys written, each preserved once");
        assert_eq!(report.figure("preimage_bytes"), Some(expected_bytes), "the bytes of the ten pre-images");
        assert_eq!(report.figure("waited_writes_count"), Some(0), "with the threshold at MAX no write waits");
        assert_eq!(snaplab_core::rdb::load_file(&dest).unwrap().0, initial, "the dump is the keyspace at the cut");
        assert_eq!(
            store.get(0, b"a:1999").unwrap().value,
            Value::String(b"99".to_vec()),
            "the writes reached the store"
        );
    }

    /// A large value written during a save is not cloned: the writer waits until the
    /// iterator has serialized it (out of turn), and then goes on; the dump holds its
    /// pre-cut value, the store the new one.
    #[test]
    fn a_write_to_a_large_unvisited_value_waits_instead_of_cloning() {
        let initial = keyspace();
        let store = PerKeyCopy::<1024>::from_keyspace(initial.clone());
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("dump.rdb");
        let (opts, reached, release) = gate();
        let bg = store.bgsave(&dest, &opts).unwrap();
        reached.recv().unwrap();
        let writer = {
            let store = store.clone();
            thread::spawn(move || store.apply(&hset("z:big", 1)).unwrap())
        };
        // Polling the store's state, not the clock: the writer has asked for the key.
        while store.lock().saving.as_ref().is_some_and(|s| s.wanted.is_empty()) {
            thread::yield_now();
        }
        assert!(!writer.is_finished(), "the write went on before the iterator serialized the key");
        // A small key is still cloned.
        store.apply(&set("a:1999", 1)).unwrap();
        release.send(()).unwrap();
        writer.join().unwrap();
        let report = bg.wait().unwrap();
        assert_eq!(report.figure("waited_writes_count"), Some(1), "one write waited for the large key");
        assert_eq!(report.figure("preimages_count"), Some(1), "only the small key was cloned");
        assert_eq!(snaplab_core::rdb::load_file(&dest).unwrap().0, initial, "the dump is the keyspace at the cut");
        let Value::Hash(h) = store.get(0, b"z:big").unwrap().value else { panic!("z:big is a hash") };
        assert_eq!(h.get(b"new".as_slice()), Some(&b"1".to_vec()), "the write reached the store after its wait");
    }

    /// Keys created after the cut are skipped, keys deleted before the iterator reached
    /// them are still dumped, and FLUSHALL during the save keeps every unvisited key for
    /// the dump without cloning it.
    #[test]
    fn deletes_flushes_and_new_keys_during_a_save() {
        let initial = keyspace();
        let store = PerKeyCopy::<{ usize::MAX }>::from_keyspace(initial.clone());
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("dump.rdb");
        let (opts, reached, release) = gate();
        let bg = store.bgsave(&dest, &opts).unwrap();
        reached.recv().unwrap();
        store.apply(&Command::Del { db: 0, key: b"a:1998".to_vec() }).unwrap();
        store.apply(&set("b:new", 1)).unwrap();
        store.apply(&Command::FlushAll).unwrap();
        store.apply(&set("a:1997", 2)).unwrap();
        release.send(()).unwrap();
        let report = bg.wait().unwrap();
        assert_eq!(report.figure("preimages_count"), Some(1), "only the DEL cloned a pre-image");
        assert_eq!(report.figure("flushed_dbs_kept_count"), Some(1), "db 0 was kept whole for the dump");
        assert_eq!(snaplab_core::rdb::load_file(&dest).unwrap().0, initial, "the dump is the keyspace at the cut");
        assert_eq!(store.len(), 1, "after FLUSHALL only the key set since is in the store");
    }
}
