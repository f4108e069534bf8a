#![doc = include_str!("../README.md")]

// The overlay grows from empty during every save, on the writers' path. A std `HashMap`
// doubles all at once (every entry moved by the one write that crosses the threshold, ms
// at thousands of entries); griddle's moves a few per insert (incremental resizing, as
// Redis's dict does, src/dict.c `_dictRehashStep`).
use griddle::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::thread;
use std::time::{Duration, Instant};

use snaplab_core::{
    Applied, BgSave, Bytes, Command, CommandError, Cut, DB_COUNT, Db, Entry, Keyspace, Reply, SaveError, SaveOptions,
    SaveReport, SaveState, SaveStatus, SlotChange, SnapshotStrategy, WriteStamp, apply_to_slot, unix_ms_now,
    write_snapshot,
};

// ANCHOR: overlay
/// What the writes of one save go to while the base is frozen: per database, key ->
/// `Some(entry)` (written during the save, or copied up from the base before a write
/// changed it) or `None`, a tombstone (a base key deleted during the save).
#[derive(Debug, Default)]
pub struct Overlay {
    dbs: [HashMap<Bytes, Option<Entry>>; DB_COUNT],
    /// Per database: FLUSHDB or FLUSHALL ran during the save, so nothing of the base
    /// shows through (KeyDB drops its snapshot pointer for a cleared database the same way).
    hides_base: [bool; DB_COUNT],
    /// What the save's figures report about this overlay.
    stats: OverlayStats,
}
// ANCHOR_END: overlay

/// Figures about one save's overlay, for the [`SaveReport`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OverlayStats {
    /// The most entries the overlay held at once, tombstones included.
    pub peak_keys: u64,
    /// The most bytes the overlay held at once, estimated: key bytes plus
    /// [`Value::heap_bytes`](snaplab_core::Value::heap_bytes) plus the map slot, counted
    /// as each entry enters or leaves it. Production note: an entry changed in place after
    /// it entered (an `HSET` to a hash already copied up) is not re-measured, which would
    /// cost a walk of the whole value on every write; KeyDB does no such accounting at all.
    pub peak_bytes: u64,
    /// Base entries copied up into the overlay because a write read and changed them.
    pub copied_up: u64,
    /// Bytes of those copies (the same estimate as `peak_bytes`).
    pub copied_up_bytes: u64,
    /// Writes applied to the overlay (writes during the save).
    pub writes: u64,
    /// Estimated bytes currently held, per database (for `peak_bytes`).
    bytes: [u64; DB_COUNT],
}

/// The estimated memory of one overlay entry, bytes: the key, the value's heap bytes (0
/// for a tombstone) and the map slot itself.
fn footprint(key: &[u8], slot: Option<&Entry>) -> u64 {
    let value = slot.map_or(0, |e| e.value.heap_bytes());
    (key.len() + value + std::mem::size_of::<(Bytes, Option<Entry>)>()) as u64
}

impl Overlay {
    // ANCHOR: read
    /// The entry a reader sees under `key` in `db`, expired or not: the overlay's if it has
    /// one (a tombstone hides the base's), else the base's. `below` is set when the read
    /// had to look in the base too: the second lookup every read of a key not written
    /// during the save pays.
    ///
    /// # Panics
    /// If `db >= DB_COUNT`.
    pub fn get<'a>(&'a self, base: &'a Keyspace, db: usize, key: &[u8], below: &mut bool) -> Option<&'a Entry> {
        // EXERCISE 15-overlay BEGIN
        match self.dbs[db].get(key) {
            Some(slot) => slot.as_ref(),
            None if self.hides_base[db] => None,
            None => {
                *below = true;
                base.get(db, key)
            }
        }
        // EXERCISE 15-overlay END
    }
    // ANCHOR_END: read

    /// Apply `cmd` on top of the frozen `base`, which it never changes.
    ///
    /// # Errors
    /// [`CommandError`] when refused; nothing changes.
    pub fn apply(&mut self, base: &Keyspace, cmd: &Command, now_ms: i64) -> Result<Reply, CommandError> {
        if let Some(db) = cmd.db()
            && db >= DB_COUNT
        {
            return Err(CommandError::DbOutOfRange(db));
        }
        let reply = match cmd {
            Command::FlushDb { db } => {
                self.flush(*db);
                Reply::Ok
            }
            Command::FlushAll => {
                (0..DB_COUNT).for_each(|db| self.flush(db));
                Reply::Ok
            }
            _ => self.apply_to_key(base, cmd, now_ms)?,
        };
        self.stats.writes += 1;
        let keys = self.dbs.iter().map(|d| d.len() as u64).sum();
        self.stats.peak_keys = self.stats.peak_keys.max(keys);
        self.stats.peak_bytes = self.stats.peak_bytes.max(self.stats.bytes.iter().sum());
        Ok(reply)
    }

    /// FLUSHDB during the save: the overlay's entries for `db` go, and the base stops
    /// showing through. The base itself is the save's and stays as it is.
    fn flush(&mut self, db: usize) {
        self.dbs[db].clear();
        self.hides_base[db] = true;
        self.stats.bytes[db] = 0;
    }

    // ANCHOR: write
    /// A single-key write during the save: into the overlay, copying the base's entry up
    /// first when the command reads it, and leaving a tombstone when it removes a key the
    /// base holds.
    fn apply_to_key(&mut self, base: &Keyspace, cmd: &Command, now_ms: i64) -> Result<Reply, CommandError> {
        let db = cmd.db().unwrap_or(0);
        let key = cmd.key().unwrap_or_default();
        // EXERCISE 15-overlay BEGIN
        let below = if self.hides_base[db] { None } else { base.get(db, key) };
        let (reply, change) = match self.dbs[db].get_mut(key) {
            // Written before during this save (or deleted: a tombstone reads as absent).
            Some(slot) => apply_to_slot(cmd, slot.as_mut(), now_ms)?,
            // SET replaces whatever the base holds: nothing to copy.
            None if matches!(cmd, Command::Set { .. }) => apply_to_slot(cmd, None, now_ms)?,
            // DEL removes it: nothing to copy either; the reply says whether it was live.
            None if matches!(cmd, Command::Del { .. }) => {
                let live = below.is_some_and(|e| !e.is_expired(now_ms));
                (Reply::Int(i64::from(live)), SlotChange::Remove)
            }
            // Read-modify-write (push, add, expire...): copy the base's entry up and change
            // the copy; the base stays exactly as the cut left it. Production note: the
            // copy is of the whole value; persistent collections (snaplab-cow) would share it.
            None => {
                let mut copy = below.cloned();
                let (reply, change) = apply_to_slot(cmd, copy.as_mut(), now_ms)?;
                if let Some(e) = below {
                    self.note_copied_up(key, e);
                }
                // The change was made to the copy, which now has to live in the overlay.
                let change = match (change, copy) {
                    (SlotChange::Kept, Some(changed)) => SlotChange::Put(changed),
                    (change, _) => change,
                };
                (reply, change)
            }
        };
        match change {
            SlotChange::Kept => {}
            SlotChange::Put(entry) => self.put(db, key, Some(entry)),
            // The base still holds the key: hide it with a tombstone.
            SlotChange::Remove if below.is_some() => self.put(db, key, None),
            SlotChange::Remove => self.take(db, key),
        }
        Ok(reply)
        // EXERCISE 15-overlay END
    }
    // ANCHOR_END: write

    /// Count a base entry copied up into the overlay.
    fn note_copied_up(&mut self, key: &[u8], entry: &Entry) {
        self.stats.copied_up += 1;
        self.stats.copied_up_bytes += footprint(key, Some(entry));
    }

    /// Store `slot` (an entry, or `None` for a tombstone) under `key` in the overlay.
    fn put(&mut self, db: usize, key: &[u8], slot: Option<Entry>) {
        self.stats.bytes[db] += footprint(key, slot.as_ref());
        let old = self.dbs[db].insert(key.to_vec(), slot);
        self.forget(db, key, old);
    }

    /// Remove `key` from the overlay (a key the base does not hold: no tombstone needed).
    fn take(&mut self, db: usize, key: &[u8]) {
        let old = self.dbs[db].remove(key);
        self.forget(db, key, old);
    }

    /// Take a replaced or removed overlay slot out of the byte estimate.
    fn forget(&mut self, db: usize, key: &[u8], old: Option<Option<Entry>>) {
        if let Some(old) = old {
            self.stats.bytes[db] = self.stats.bytes[db].saturating_sub(footprint(key, old.as_ref()));
        }
    }

    /// Entries in the overlay and how many of them are tombstones.
    pub fn sizes(&self) -> (usize, usize) {
        let entries = self.dbs.iter().map(HashMap::len).sum();
        let tombstones = self.dbs.iter().flat_map(|d| d.values()).filter(|s| s.is_none()).count();
        (entries, tombstones)
    }

    /// The keyspace a reader sees: `base` with this overlay on top.
    fn view(&self, base: &Keyspace) -> Keyspace {
        let mut ks = base.clone();
        for (db, layer) in self.dbs.iter().enumerate() {
            if self.hides_base[db] {
                ks.db_mut(db).clear();
            }
            for (k, slot) in layer {
                match slot {
                    Some(e) => ks.insert(db, k.clone(), e.clone()),
                    None => ks.remove(db, k),
                };
            }
        }
        ks
    }

    /// Number of keys a reader sees in `db`.
    fn db_len(&self, base: &Keyspace, db: usize) -> usize {
        let in_base = |k: &[u8]| !self.hides_base[db] && base.get(db, k).is_some();
        let mut n = if self.hides_base[db] { 0 } else { base.db(db).len() };
        for (k, slot) in &self.dbs[db] {
            match (slot.is_some(), in_base(k)) {
                (true, false) => n += 1,
                (false, true) => n -= 1,
                _ => {}
            }
        }
        n
    }
}

/// What merging one overlay did.
#[derive(Clone, Copy, Debug, Default)]
struct Merged {
    tombstones: u64,
    /// How long the merge held the write lock: every write that arrived meanwhile waited.
    stall: Duration,
    /// From taking the lock to having freed what the base no longer holds.
    total: Duration,
}

/// What the merge took out of the base, freed after the lock is released.
#[derive(Default)]
struct Garbage {
    entries: Vec<Option<Entry>>,
    dbs: Vec<Db>,
}

// ANCHOR: merge
/// Fold `overlay` into `base`: entries replace, tombstones delete, and a database the
/// save flushed keeps only what was written after the flush. What the base drops is
/// handed back rather than freed, so that freeing it (which for a flushed database of
/// a million keys takes longer than the merge) happens after the lock is released, as
/// KeyDB's `endSnapshot` hands it to its garbage collector. Production note: KeyDB's
/// collector frees by epoch, once no thread can still see the entries; here nothing else
/// can, so the save thread simply drops them.
fn merge(base: &mut Keyspace, overlay: Overlay, garbage: &mut Garbage) -> u64 {
    let mut tombstones = 0;
    for (db, layer) in overlay.dbs.into_iter().enumerate() {
        if overlay.hides_base[db] {
            garbage.dbs.push(std::mem::take(base.db_mut(db)));
        }
        for (k, slot) in layer {
            match slot {
                Some(e) => garbage.entries.push(base.db_mut(db).insert(k, e)),
                None => {
                    tombstones += 1;
                    garbage.entries.push(base.remove(db, &k));
                }
            }
        }
    }
    tombstones
}
// ANCHOR_END: merge

// ANCHOR: state
/// The store: the base, the overlay while a save holds the base, and the write counter.
struct State {
    /// The keyspace. Shared with the save thread while a save runs (it is then frozen:
    /// writes go to `overlay`); otherwise only this store holds it and writes change it
    /// in place.
    base: Arc<Keyspace>,
    /// Writes since the cut, while a save runs. Production note: KeyDB chains snapshots
    /// (a snapshot of a snapshot); here there is one base and one overlay, and a second
    /// BGSAVE during a save is refused, as Redis refuses it.
    overlay: Option<Overlay>,
    writes: u64,
}
// ANCHOR_END: state

struct Inner {
    state: RwLock<State>,
    saves: Arc<SaveState>,
    /// Reads during a save that missed the overlay and looked in the base too.
    reads_below: AtomicU64,
}

/// A store that freezes its map as an immutable base for each BGSAVE and takes the
/// writes of the save in an overlay, merged back when the save ends (KeyDB's forkless
/// BGSAVE, Snapchat/KeyDB src/snapshot.cpp).
///
/// Cheap to clone: clones share the same store.
#[derive(Clone)]
pub struct OverlayStore {
    inner: Arc<Inner>,
}

impl OverlayStore {
    fn read(&self) -> RwLockReadGuard<'_, State> {
        // Writes validate before they mutate, so a poisoned lock still guards a whole state.
        self.inner.state.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, State> {
        self.inner.state.write().unwrap_or_else(|p| p.into_inner())
    }

    /// While a save holds the base: (entries in the overlay, of which tombstones).
    /// `None` when there is one map, as there is again once the save has been merged.
    pub fn overlay_sizes(&self) -> Option<(usize, usize)> {
        self.read().overlay.as_ref().map(Overlay::sizes)
    }

    // ANCHOR: end_of_save
    /// The end of a save: fold the overlay back into the base, which the save thread no
    /// longer shares. One pass under the write lock, as KeyDB's `endSnapshot`: writers
    /// wait for all of it (the stall is reported as its own figure), and the store is one
    /// map again when it returns.
    fn merge_overlay(&self) -> (Merged, OverlayStats) {
        let started = Instant::now();
        let mut garbage = Garbage::default();
        let mut state = self.write();
        let Some(overlay) = state.overlay.take() else {
            return (Merged::default(), OverlayStats::default());
        };
        let stats = overlay.stats;
        // make_mut copies only if the base is still shared; the save thread drops its
        // reference before it merges, so it never does.
        let tombstones = merge(Arc::make_mut(&mut state.base), overlay, &mut garbage);
        drop(state);
        let stall = started.elapsed();
        drop(garbage);
        (Merged { tombstones, stall, total: started.elapsed() }, stats)
    }
    // ANCHOR_END: end_of_save
}

impl SnapshotStrategy for OverlayStore {
    const NAME: &'static str = "overlay";

    fn from_keyspace(keyspace: Keyspace) -> Self {
        OverlayStore {
            inner: Arc::new(Inner {
                state: RwLock::new(State { base: Arc::new(keyspace), overlay: None, writes: 0 }),
                saves: SaveState::new(),
                reads_below: AtomicU64::new(0),
            }),
        }
    }

    fn apply(&self, cmd: &Command) -> Result<Applied, CommandError> {
        let now = unix_ms_now();
        let mut state = self.write();
        let state = &mut *state;
        let reply = match &mut state.overlay {
            Some(overlay) => overlay.apply(&state.base, cmd, now)?,
            // No save shares the base: change it in place (make_mut does not copy an
            // Arc held once).
            None => Arc::make_mut(&mut state.base).apply(cmd, now)?,
        };
        state.writes += 1;
        Ok(Applied::new(reply, WriteStamp { shard: 0, seq: state.writes }))
    }

    fn get(&self, db: usize, key: &[u8]) -> Option<Entry> {
        if db >= DB_COUNT {
            return None;
        }
        let state = self.read();
        let mut below = false;
        let e = match &state.overlay {
            Some(overlay) => overlay.get(&state.base, db, key, &mut below),
            None => state.base.get(db, key),
        };
        if below {
            // Relaxed: a statistic for the report, not a synchronisation point.
            self.inner.reads_below.fetch_add(1, Ordering::Relaxed);
        }
        e.filter(|e| !e.is_expired(unix_ms_now())).cloned()
    }

    fn len(&self) -> usize {
        let state = self.read();
        match &state.overlay {
            Some(overlay) => (0..DB_COUNT).map(|db| overlay.db_len(&state.base, db)).sum(),
            None => state.base.len(),
        }
    }

    fn to_keyspace(&self) -> Keyspace {
        let state = self.read();
        match &state.overlay {
            Some(overlay) => overlay.view(&state.base),
            None => (*state.base).clone(),
        }
    }

    /// SAVE is BGSAVE plus waiting: the cut is as cheap, the caller waits for the file and
    /// the merge.
    fn save(&self, dest: &Path, opts: &SaveOptions) -> Result<SaveReport, SaveError> {
        self.bgsave(dest, opts)?.wait()
    }

    fn bgsave(&self, dest: &Path, opts: &SaveOptions) -> Result<BgSave, SaveError> {
        let ticket = self.inner.saves.begin()?;
        let started = Instant::now();
        // ANCHOR: cut
        let mut state = self.write();
        if state.overlay.is_some() {
            // A save thread that panicked before its merge (or could not be started) left
            // its overlay: fold it in first (its reference to the base went with it).
            drop(state);
            self.merge_overlay();
            state = self.write();
        }
        // The cut: share the base with the save thread and start an empty overlay. Two
        // pointer writes and a counter read under the write lock, whatever the size.
        let frozen = Arc::clone(&state.base);
        state.overlay = Some(Overlay::default());
        let cut = Cut::single(state.writes);
        drop(state);
        // ANCHOR_END: cut
        let time_to_cut = started.elapsed();
        self.inner.reads_below.store(0, Ordering::Relaxed);

        let (store, dest, report_cut, opts) = (self.clone(), dest.to_path_buf(), cut.clone(), opts.clone());
        let handle = thread::Builder::new()
            .name("overlay-save".into())
            .spawn(move || {
                // ANCHOR: saver
                // The base is immutable while the overlay takes the writes: serialize it
                // with no lock and no coordination with the writers at all.
                let written = write_snapshot(&*frozen, &dest, &opts, Self::NAME);
                let (duration, finished_at_ms) = (started.elapsed(), unix_ms_now());
                drop(frozen);
                // Merge whether or not the file was written: the overlay holds the writes.
                let (merged, stats) = store.merge_overlay();
                // ANCHOR_END: saver
                let reads_below = store.inner.reads_below.load(Ordering::Relaxed);
                let result = written.map(|enc| SaveReport {
                    strategy: Self::NAME,
                    path: dest.clone(),
                    cut: report_cut,
                    time_to_cut,
                    duration,
                    bytes: enc.bytes,
                    keys: enc.keys,
                    finished_at_ms,
                    figures: vec![
                        ("time_to_cut_us", time_to_cut.as_micros() as u64),
                        ("writes_into_overlay_count", stats.writes),
                        ("overlay_peak_keys_count", stats.peak_keys),
                        ("overlay_peak_bytes", stats.peak_bytes),
                        ("copied_up_count", stats.copied_up),
                        ("copied_up_bytes", stats.copied_up_bytes),
                        ("tombstones_count", merged.tombstones),
                        ("reads_through_to_base_count", reads_below),
                        ("merge_us", merged.total.as_micros() as u64),
                        ("merge_stall_us", merged.stall.as_micros() as u64),
                    ],
                });
                ticket.finish(result)
            })
            .map_err(|e| SaveError::Aborted(format!("could not start the save thread: {e}")))?;
        Ok(BgSave::new(cut, time_to_cut, handle))
    }

    fn lastsave(&self) -> Option<i64> {
        self.inner.saves.lastsave()
    }

    fn last_save_status(&self) -> SaveStatus {
        self.inner.saves.status()
    }
}
