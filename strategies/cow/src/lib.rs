#![doc = include_str!("../README.md")]

pub mod trie;
pub mod value;

use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::thread;
use std::time::{Duration, Instant};

use snaplab_core::atomic::{IoFile, SaveIo};
use snaplab_core::memory;
use snaplab_core::{
    Applied, BgSave, Bytes, Command, CommandError, Cut, DB_COUNT, Entry, EntryRef, Keyspace, KeyspaceView, RdbError,
    Reply, SaveError, SaveOptions, SaveReport, SaveState, SaveStatus, SnapshotStrategy, StoreBuilder, WriteStamp,
    escape, unix_ms_now, write_snapshot,
};
use value::{CowDb, CowEntry};

// ANCHOR: version
/// Sixteen persistent databases and the function libraries. Cloning it is the snapshot.
#[derive(Clone)]
pub struct Version {
    dbs: [CowDb; DB_COUNT],
    functions: Arc<Vec<Bytes>>,
}
// ANCHOR_END: version

impl KeyspaceView for Version {
    fn db_len(&self, db: usize) -> usize {
        self.dbs[db].size()
    }

    fn db_expires(&self, db: usize) -> usize {
        self.dbs[db].values().filter(|e| e.expire_at_ms.is_some()).count()
    }

    fn entries(&self, db: usize) -> Box<dyn Iterator<Item = (&[u8], EntryRef<'_>)> + '_> {
        Box::new(self.dbs[db].iter().map(|(k, e)| (k, e.as_ref())))
    }

    fn functions(&self) -> &[Bytes] {
        &self.functions
    }
}

// ANCHOR: state
struct State {
    live: Version,
    writes: u64,
}

struct Inner {
    state: RwLock<State>,
    saves: Arc<SaveState>,
    /// True while a snapshot shares the live version: writes then copy paths.
    saving: AtomicBool,
    /// Writes applied while a snapshot was held. Each copied the nodes of its path that the
    /// snapshot still shared: the whole path for the first write near a key, nothing more
    /// for a repeat write to a path already copied. Counting the copies themselves would
    /// need the map's internals, so the report names this figure for what it counts.
    writes_while_shared: AtomicU64,
}
// ANCHOR_END: state

/// How often, at most, the save samples resident memory while it writes.
const SAMPLE_EVERY: Duration = Duration::from_millis(1);

/// Resident memory sampled at the steps of a save: the [`SaveIo`] the save writes through,
/// wrapped. It samples when the file is created, as it is written (at most every
/// [`SAMPLE_EVERY`]), after its fsync and before its rename, keeping the largest value.
///
/// Why samples taken by the save itself rather than by a timer thread: no extra thread
/// competing with the writers for a core, and each sample sits at a known step of the
/// save. Production note: a save stalled on a slow disk takes no samples meanwhile; memory
/// allocated and freed within that stall is missed.
#[derive(Debug)]
struct SampledIo {
    inner: Arc<dyn SaveIo>,
    /// The largest resident size seen, bytes (0: none read).
    peak: Arc<AtomicU64>,
}

/// Note this process's resident size in `peak` if it is the largest so far.
fn sample(peak: &AtomicU64) {
    if let Some(now) = memory::resident_bytes(None) {
        // Relaxed: a statistic, read once the save thread is done.
        peak.fetch_max(now, Ordering::Relaxed);
    }
}

struct SampledFile {
    inner: Box<dyn IoFile>,
    peak: Arc<AtomicU64>,
    last: Instant,
}

impl io::Write for SampledFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.last.elapsed() >= SAMPLE_EVERY {
            sample(&self.peak);
            self.last = Instant::now();
        }
        self.inner.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

impl IoFile for SampledFile {
    fn sync(&mut self) -> io::Result<()> {
        let synced = self.inner.sync();
        sample(&self.peak);
        synced
    }
}

impl SaveIo for SampledIo {
    fn create(&self, path: &Path) -> io::Result<Box<dyn IoFile>> {
        let inner = self.inner.create(path)?;
        sample(&self.peak);
        Ok(Box::new(SampledFile { inner, peak: Arc::clone(&self.peak), last: Instant::now() }))
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        sample(&self.peak);
        self.inner.rename(from, to)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        self.inner.sync_dir(dir)
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        self.inner.remove(path)
    }

    fn open(&self, path: &Path) -> io::Result<Box<dyn io::Read + Send>> {
        self.inner.open(path)
    }
}

/// A store whose keyspace is a persistent map: BGSAVE clones the root in O(1) and writers
/// copy only the paths they touch.
///
/// Cheap to clone: clones share the same store.
#[derive(Clone)]
pub struct CowMap {
    inner: Arc<Inner>,
}

impl CowMap {
    fn read(&self) -> RwLockReadGuard<'_, State> {
        // Writes validate before they mutate, so a poisoned lock still guards a whole version.
        self.inner.state.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, State> {
        self.inner.state.write().unwrap_or_else(|p| p.into_inner())
    }
}

/// The live version being built from a dump or a keyspace, before any snapshot shares it:
/// `insert` then changes the maps in place (no node is shared, so `Arc::make_mut` copies
/// none).
struct Loader {
    dbs: [CowDb; DB_COUNT],
    functions: Vec<Bytes>,
}

impl Default for Loader {
    fn default() -> Self {
        Loader { dbs: std::array::from_fn(|_| CowDb::new()), functions: Vec::new() }
    }
}

impl Loader {
    fn into_store(mut self) -> CowMap {
        // Leaves grew by doubling while loading; trim the unused room once, at the end.
        self.dbs.iter_mut().for_each(CowDb::shrink_to_fit);
        let live = Version { dbs: self.dbs, functions: Arc::new(self.functions) };
        CowMap {
            inner: Arc::new(Inner {
                state: RwLock::new(State { live, writes: 0 }),
                saves: SaveState::new(),
                saving: AtomicBool::new(false),
                writes_while_shared: AtomicU64::new(0),
            }),
        }
    }
}

impl StoreBuilder for Loader {
    fn insert(&mut self, db: usize, key: Bytes, entry: Entry, offset: u64) -> Result<(), RdbError> {
        // One walk, not a lookup then an insert: a duplicate replaces the first value, but
        // the error discards the whole load.
        if self.dbs[db].insert(&key, CowEntry::from_entry(entry)).is_some() {
            return Err(RdbError::DuplicateKey { offset, db, key: escape(&key) });
        }
        Ok(())
    }

    fn add_function(&mut self, code: Bytes) {
        self.functions.push(code);
    }
}

impl SnapshotStrategy for CowMap {
    const NAME: &'static str = "cow";

    fn from_keyspace(keyspace: Keyspace) -> Self {
        let mut loader = Loader { functions: keyspace.functions().to_vec(), ..Loader::default() };
        let mut keyspace = keyspace;
        for (i, db) in loader.dbs.iter_mut().enumerate() {
            for (k, e) in keyspace.db_mut(i).drain() {
                db.insert(&k, CowEntry::from_entry(e));
            }
        }
        loader.into_store()
    }

    /// Read the dump with the pipelined loader straight into the persistent maps.
    fn load(path: &Path) -> Result<Self, RdbError> {
        snaplab_core::load_built(path, Loader::default(), Loader::into_store)
    }

    fn apply(&self, cmd: &Command) -> Result<Applied, CommandError> {
        // EXERCISE 06-cow BEGIN
        let now = unix_ms_now();
        let mut state = self.write();
        let reply = match cmd {
            Command::FlushDb { db } if *db < DB_COUNT => {
                state.live.dbs[*db] = CowDb::new();
                Reply::Ok
            }
            Command::FlushAll => {
                state.live.dbs = std::array::from_fn(|_| CowDb::new());
                Reply::Ok
            }
            _ => {
                let db = cmd.db().unwrap_or(0);
                let db = state.live.dbs.get_mut(db).ok_or(CommandError::DbOutOfRange(db))?;
                value::apply(db, cmd, now)?
            }
        };
        state.writes += 1;
        // Relaxed: a statistic for the report, not a synchronisation point.
        if self.inner.saving.load(Ordering::Relaxed) {
            self.inner.writes_while_shared.fetch_add(1, Ordering::Relaxed);
        }
        Ok(Applied::new(reply, WriteStamp { shard: 0, seq: state.writes }))
        // EXERCISE 06-cow END
    }

    fn get(&self, db: usize, key: &[u8]) -> Option<Entry> {
        let state = self.read();
        let e = state.live.dbs.get(db)?.get(key)?;
        e.expire_at_ms.is_none_or(|at| at > unix_ms_now()).then(|| e.to_entry())
    }

    fn len(&self) -> usize {
        self.read().live.dbs.iter().map(|d| d.size()).sum()
    }

    fn to_keyspace(&self) -> Keyspace {
        let state = self.read();
        let mut ks = Keyspace::new();
        for (i, db) in state.live.dbs.iter().enumerate() {
            for (k, e) in db.iter() {
                ks.insert(i, k.to_vec(), e.to_entry());
            }
        }
        for f in state.live.functions.iter() {
            ks.add_function(f.clone());
        }
        ks
    }

    /// SAVE is BGSAVE plus waiting: the cut is as cheap, the caller waits for the file.
    fn save(&self, dest: &Path, opts: &SaveOptions) -> Result<SaveReport, SaveError> {
        self.bgsave(dest, opts)?.wait()
    }

    fn bgsave(&self, dest: &Path, opts: &SaveOptions) -> Result<BgSave, SaveError> {
        let ticket = self.inner.saves.begin()?;
        let started = Instant::now();
        let (frozen, cut): (Version, Cut);
        // EXERCISE 06-cow BEGIN
        // The write lock makes the cut exact: no write is in the middle of its path copy.
        let state = self.write();
        frozen = state.live.clone();
        cut = Cut::single(state.writes);
        self.inner.writes_while_shared.store(0, Ordering::Relaxed);
        self.inner.saving.store(true, Ordering::Relaxed);
        drop(state);
        // EXERCISE 06-cow END
        let time_to_cut = started.elapsed();
        let rss_at_cut = memory::resident_bytes(None);

        let peak = Arc::new(AtomicU64::new(0));
        let opts = SaveOptions {
            io: Arc::new(SampledIo { inner: Arc::clone(&opts.io), peak: Arc::clone(&peak) }),
            ..opts.clone()
        };
        let (inner, dest, report_cut) = (Arc::clone(&self.inner), dest.to_path_buf(), cut.clone());
        let handle = thread::Builder::new()
            .name("cow-save".into())
            .spawn(move || {
                let written = write_snapshot(&frozen, &dest, &opts, Self::NAME);
                sample(&peak);
                // Path copies accumulate while the snapshot is held, but what writers allocate
                // and free meanwhile comes and goes: the peak of the samples, not the growth
                // at the end, is what the save added (whole process).
                let extra = rss_at_cut.map_or(0, |then| peak.load(Ordering::Relaxed).saturating_sub(then));
                // Dropping the frozen version frees the nodes only it still holds: part of
                // the save's cost, so it happens before the duration is taken.
                drop(frozen);
                inner.saving.store(false, Ordering::Relaxed);
                let writes_while_held = inner.writes_while_shared.load(Ordering::Relaxed);
                let result = written.map(|stats| SaveReport {
                    strategy: Self::NAME,
                    path: dest.clone(),
                    cut: report_cut,
                    time_to_cut,
                    duration: started.elapsed(),
                    bytes: stats.bytes,
                    keys: stats.keys,
                    finished_at_ms: unix_ms_now(),
                    figures: vec![
                        ("time_to_cut_us", time_to_cut.as_micros() as u64),
                        ("writes_while_snapshot_held_count", writes_while_held),
                        ("peak_extra_memory_bytes", extra),
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
