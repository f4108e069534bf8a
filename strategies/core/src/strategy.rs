//! The [`SnapshotStrategy`] trait every strategy implements, and what it reports.
//!
//! A strategy is a store that serves writes from many threads (`&self` methods, interior
//! locking) and can save a point-in-time snapshot of itself in the RDB format, either
//! blocking ([`SnapshotStrategy::save`], Redis SAVE) or in the background
//! ([`SnapshotStrategy::bgsave`], Redis BGSAVE), which returns as soon as the cut is taken.
//!
//! The cut is reported as a [`Cut`]: for each shard (single-lock strategies have one),
//! how many writes were applied before it. Every applied write gets a [`WriteStamp`] (a
//! write that spans shards, such as FLUSHALL in a sharded store, gets one in each shard),
//! so a test harness can replay exactly the writes a snapshot should contain.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::atomic::{AtomicFile, SaveIo, real_io};
use crate::command::{Command, CommandError, Reply};
pub use crate::error::SaveError;
use crate::keyspace::{Entry, Keyspace, KeyspaceView};
use crate::rdb::{self, EncodeOptions, EncodeStats, RdbError};

// ANCHOR: write_stamp
/// Where a write falls in its shard's order: the `seq`-th write (from 1) applied by shard
/// `shard`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct WriteStamp {
    /// The shard that applied the write (0 for single-lock strategies).
    pub shard: u32,
    /// Its position in that shard's write order, from 1.
    pub seq: u64,
}
// ANCHOR_END: write_stamp

// ANCHOR: cut
/// A point-in-time cut: per shard, the number of writes applied before it. A snapshot
/// taken at this cut contains exactly the writes whose stamp it [`includes`](Cut::includes).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Cut {
    /// Writes applied before the cut, indexed by shard.
    pub per_shard: Vec<u64>,
}

impl Cut {
    /// The cut of a single-lock store after `writes` writes.
    pub fn single(writes: u64) -> Self {
        Cut { per_shard: vec![writes] }
    }

    /// Whether the write with `stamp` is inside the snapshot.
    pub fn includes(&self, stamp: WriteStamp) -> bool {
        // EXERCISE 01-cut BEGIN
        self.per_shard.get(stamp.shard as usize).is_some_and(|&n| stamp.seq <= n)
        // EXERCISE 01-cut END
    }

    /// Whether a write with these `stamps` (all of [`Applied::stamps`]) is inside the
    /// snapshot: `Some(true)` if the cut includes every one, `Some(false)` if none, and
    /// `None` if the cut splits it, which a point-in-time cut never does (a multi-key write
    /// is one write: all of it or none of it).
    pub fn includes_all(&self, stamps: &[WriteStamp]) -> Option<bool> {
        // EXERCISE 01-cut BEGIN
        let mut inside = stamps.iter().map(|&s| self.includes(s));
        let first = inside.next()?;
        inside.all(|i| i == first).then_some(first)
        // EXERCISE 01-cut END
    }

    /// Total writes applied before the cut, over all shards.
    pub fn writes(&self) -> u64 {
        self.per_shard.iter().sum()
    }
}
// ANCHOR_END: cut

// ANCHOR: applied
/// A write that was applied: its reply and its stamp(s).
#[derive(Clone, Debug, PartialEq)]
pub struct Applied {
    /// What Redis would have replied.
    pub reply: Reply,
    /// Where it falls in its shard's write order.
    pub stamp: WriteStamp,
    /// Its stamps in the other shards, for a write that spans shards (FLUSHDB or FLUSHALL
    /// in a sharded store takes a place in every shard's write order, so that a replay can
    /// put it before or after each shard's other writes). Empty for a single-shard write.
    pub also: Vec<WriteStamp>,
}
// ANCHOR_END: applied

impl Applied {
    /// A write applied by one shard (every write of a single-lock store).
    pub fn new(reply: Reply, stamp: WriteStamp) -> Self {
        Applied { reply, stamp, also: Vec::new() }
    }

    /// Every stamp of the write: [`Applied::stamp`] then [`Applied::also`].
    pub fn stamps(&self) -> Vec<WriteStamp> {
        std::iter::once(self.stamp).chain(self.also.iter().copied()).collect()
    }
}

/// How to save.
#[derive(Clone, Debug)]
pub struct SaveOptions {
    /// LZF-compress long strings, like Redis's `rdbcompression yes` (default true).
    pub compress: bool,
    /// Deterministic output (see [`EncodeOptions::canonical`]).
    pub canonical: bool,
    /// Advanced by the number of keys written, for a progress bar.
    pub progress: Option<Arc<AtomicU64>>,
    /// The file system the save writes through: [`RealIo`](crate::atomic::RealIo) unless a
    /// test injects faults or holds the save still. Strategies must create their files
    /// with it (through [`write_snapshot`] or [`AtomicFile::create_with`]).
    pub io: Arc<dyn SaveIo>,
}

impl Default for SaveOptions {
    fn default() -> Self {
        SaveOptions { compress: true, canonical: false, progress: None, io: real_io() }
    }
}

impl SaveOptions {
    /// Canonical, compressed: what tests compare by sha256.
    pub fn canonical() -> Self {
        SaveOptions { canonical: true, ..Self::default() }
    }
}

/// What a finished save did. Durations are wall-clock.
#[derive(Clone, Debug)]
pub struct SaveReport {
    /// The strategy's [`SnapshotStrategy::NAME`].
    pub strategy: &'static str,
    /// The destination file.
    pub path: PathBuf,
    /// The cut the snapshot was taken at.
    pub cut: Cut,
    /// From the call to the moment the cut was taken (writers may resume from here for
    /// non-blocking strategies).
    pub time_to_cut: Duration,
    /// From the call to the moment the file was renamed into place and its directory synced.
    pub duration: Duration,
    /// Size of the file in bytes.
    pub bytes: u64,
    /// Keys written.
    pub keys: u64,
    /// When the save completed, unix ms (what LASTSAVE reports, in ms).
    pub finished_at_ms: i64,
    /// Strategy-specific figures, each name ending in its unit (`_bytes`, `_us`, `_count`).
    /// One name is understood by the comparison: [`EXTRA_MEMORY_ELSEWHERE`], memory the
    /// save used outside the saving process (a forked child's copied pages), which the
    /// harness cannot see by sampling its own resident size.
    pub figures: Vec<(&'static str, u64)>,
}

/// The [`SaveReport::figures`] name for memory a save used outside the process (bytes).
pub const EXTRA_MEMORY_ELSEWHERE: &str = "extra_memory_elsewhere_bytes";

impl SaveReport {
    /// The figure called `name`, if the strategy reported it.
    pub fn figure(&self, name: &str) -> Option<u64> {
        self.figures.iter().find(|(n, _)| *n == name).map(|(_, v)| *v)
    }
}

/// The outcome of the last save, as Redis's `rdb_last_bgsave_status`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SaveStatus {
    /// No save has failed since the last success (Redis reports `ok` at startup too).
    Ok,
    /// The last save failed, with the reason.
    Err(String),
}

/// Bookkeeping every strategy needs around saves: at most one at a time, LASTSAVE, and
/// the last status. Share it as `Arc<SaveState>` so a background save can own a ticket.
#[derive(Debug)]
pub struct SaveState {
    in_progress: AtomicBool,
    lastsave_ms: AtomicI64,
    status: Mutex<SaveStatus>,
}

impl Default for SaveState {
    fn default() -> Self {
        SaveState {
            in_progress: AtomicBool::new(false),
            lastsave_ms: AtomicI64::new(0),
            status: Mutex::new(SaveStatus::Ok),
        }
    }
}

impl SaveState {
    /// A new state in an `Arc`.
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Claim the right to save.
    ///
    /// # Errors
    /// [`SaveError::InProgress`] if a save holds it; nothing else changes.
    pub fn begin(self: &Arc<Self>) -> Result<SaveTicket, SaveError> {
        // AcqRel: the winner sees everything the previous save published before releasing.
        self.in_progress
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .map_err(|_| SaveError::InProgress)?;
        Ok(SaveTicket { state: Arc::clone(self), finished: false })
    }

    /// Unix ms of the last successful save, or `None` if there was none (Redis LASTSAVE).
    pub fn lastsave(&self) -> Option<i64> {
        Some(self.lastsave_ms.load(Ordering::Acquire)).filter(|&t| t > 0)
    }

    /// The outcome of the last save.
    pub fn status(&self) -> SaveStatus {
        self.status.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Whether a save is running.
    pub fn in_progress(&self) -> bool {
        self.in_progress.load(Ordering::Acquire)
    }
}

/// The right to run one save; [`SaveTicket::finish`] records the outcome. Dropping it
/// unfinished (a panic) records a failure and frees the slot.
#[derive(Debug)]
pub struct SaveTicket {
    state: Arc<SaveState>,
    finished: bool,
}

impl SaveTicket {
    /// Record the outcome (LASTSAVE on success, the status either way) and free the slot.
    pub fn finish(mut self, result: Result<SaveReport, SaveError>) -> Result<SaveReport, SaveError> {
        self.record(match &result {
            Ok(r) => Ok(r.finished_at_ms),
            Err(e) => Err(e.to_string()),
        });
        result
    }

    fn record(&mut self, outcome: Result<i64, String>) {
        let mut status = self.state.status.lock().unwrap_or_else(|p| p.into_inner());
        match outcome {
            Ok(at) => {
                self.state.lastsave_ms.store(at, Ordering::Release);
                *status = SaveStatus::Ok;
            }
            Err(reason) => *status = SaveStatus::Err(reason),
        }
        drop(status);
        self.finished = true;
        self.state.in_progress.store(false, Ordering::Release);
    }
}

impl Drop for SaveTicket {
    fn drop(&mut self) {
        if !self.finished {
            self.record(Err("the save was abandoned (its thread panicked)".into()));
        }
    }
}

/// A background save in flight. The cut is already taken; [`BgSave::wait`] returns the
/// report when the file is in place.
#[derive(Debug)]
pub struct BgSave {
    cut: Cut,
    time_to_cut: Duration,
    handle: JoinHandle<Result<SaveReport, SaveError>>,
}

impl BgSave {
    /// Wrap the thread that finishes the save.
    pub fn new(cut: Cut, time_to_cut: Duration, handle: JoinHandle<Result<SaveReport, SaveError>>) -> Self {
        BgSave { cut, time_to_cut, handle }
    }

    /// The cut the snapshot was taken at.
    pub fn cut(&self) -> &Cut {
        &self.cut
    }

    /// From the `bgsave` call to the cut.
    pub fn time_to_cut(&self) -> Duration {
        self.time_to_cut
    }

    /// Whether the save has finished (successfully or not).
    pub fn is_finished(&self) -> bool {
        self.handle.is_finished()
    }

    /// Wait for the save to finish.
    ///
    /// # Errors
    /// The save's [`SaveError`], or [`SaveError::Aborted`] if its thread panicked.
    pub fn wait(self) -> Result<SaveReport, SaveError> {
        self.handle.join().unwrap_or_else(|p| {
            let msg = p
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| p.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "panic".into());
            Err(SaveError::Aborted(msg))
        })
    }
}

// ANCHOR: guarantee
/// What a strategy's dumps promise, which the conformance suite checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Guarantee {
    /// The dump is the keyspace at one instant between the BGSAVE call and its return.
    PointInTime,
    /// The dump (once its command tail is replayed) is the keyspace at one instant between
    /// the request to close the change log and its acknowledgement
    /// ([`SnapshotStrategy::last_log_close`]): what a replica needs, not a snapshot of the
    /// call (Dragonfly's replication, src/server/snapshot.cc and src/server/journal/).
    AtLogClose,
}

/// When a save's change log was closed: the dump is the state at one instant in between.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LogClose {
    /// Just before the saver asked for the store's lock to close the log.
    pub requested: Instant,
    /// Just after it released the lock with the log closed.
    pub acknowledged: Instant,
}
// ANCHOR_END: guarantee

// ANCHOR: snapshot_strategy
/// A store that can take point-in-time snapshots of itself while serving writes.
///
/// All methods take `&self`: a strategy is shared between writer threads (`Arc<S>`) and
/// synchronises internally in whatever way is its lesson.
pub trait SnapshotStrategy: Send + Sync + Sized + 'static {
    /// The canonical id: CLI flag value, bench id, test-name prefix (`"blocking"`, ...).
    const NAME: &'static str;

    /// What its dumps promise; every strategy but one gives a point-in-time snapshot.
    const GUARANTEE: Guarantee = Guarantee::PointInTime;

    /// A store holding `keyspace`.
    fn from_keyspace(keyspace: Keyspace) -> Self;

    /// A store holding the dump at `path` (an RDB dump, or an RDB-preamble AOF, whose
    /// command tail is replayed: see [`crate::aof`]). Starting a store in a directory first
    /// removes the temporary files that saves killed there left behind
    /// ([`remove_stale_temp_files`](crate::atomic::remove_stale_temp_files)).
    ///
    /// # Errors
    /// Any [`RdbError`] from reading the dump; an error in the command tail is
    /// [`RdbError::Corrupt`] of the "AOF tail".
    ///
    /// The default builds a [`Keyspace`] with the pipelined loader ([`rdb::load_into`]) and
    /// hands it to [`SnapshotStrategy::from_keyspace`]; a strategy with its own layout
    /// overrides it with [`load_built`] to build that layout directly.
    fn load(path: &Path) -> Result<Self, RdbError> {
        remove_stale_temps_near(path);
        let (keyspace, _) = crate::aof::load_file(path).map_err(crate::aof::AofError::into_rdb_error)?;
        Ok(Self::from_keyspace(keyspace))
    }

    /// Apply a write with Redis semantics.
    ///
    /// # Errors
    /// [`CommandError`] when refused; the store is then unchanged and no stamp is used.
    fn apply(&self, cmd: &Command) -> Result<Applied, CommandError>;

    /// The live entry under `key` in `db` (`None` if absent or expired).
    fn get(&self, db: usize, key: &[u8]) -> Option<Entry>;

    /// Number of keys (expired ones not yet removed included).
    fn len(&self) -> usize;

    /// Whether the store holds no keys.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A copy of the whole current state (for tests and verification; may be slow).
    fn to_keyspace(&self) -> Keyspace;

    /// Redis SAVE: write a snapshot to `dest` and return when it is in place.
    ///
    /// # Errors
    /// [`SaveError`]; the previous file at `dest` is then untouched.
    fn save(&self, dest: &Path, opts: &SaveOptions) -> Result<SaveReport, SaveError>;

    /// Redis BGSAVE: take the cut, return, and finish writing in the background.
    ///
    /// # Errors
    /// [`SaveError::InProgress`] if a save is running (the store is unchanged), or a
    /// failure to start.
    fn bgsave(&self, dest: &Path, opts: &SaveOptions) -> Result<BgSave, SaveError>;

    /// Redis LASTSAVE, in unix ms: when the last successful save finished.
    fn lastsave(&self) -> Option<i64>;

    /// Whether the last save succeeded (Redis `rdb_last_bgsave_status`).
    fn last_save_status(&self) -> SaveStatus;

    /// For a [`Guarantee::AtLogClose`] strategy, when the last successful save closed its
    /// change log; `None` for the others.
    fn last_log_close(&self) -> Option<LogClose> {
        None
    }
}
// ANCHOR_END: snapshot_strategy

/// Starting a store in a directory first removes the temporary files that saves killed
/// there left behind. Best effort: failing to tidy up must not stop the store from starting.
fn remove_stale_temps_near(path: &Path) {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let _ = crate::atomic::remove_stale_temp_files(dir);
}

/// [`SnapshotStrategy::load`] for a strategy that lays its data out its own way: the dump
/// at `path` is read by the pipelined loader ([`rdb::load_into`]) straight into `builder`
/// (no [`Keyspace`] first and a copy after), then `finish` turns the builder into the store.
///
/// An RDB-preamble AOF (bytes after the RDB's trailer) cannot be replayed into a builder,
/// so for one the dump is read again the default way, into a [`Keyspace`] that replays the
/// command tail ([`crate::aof::load_file`]), and the store comes from
/// [`SnapshotStrategy::from_keyspace`].
///
/// # Errors
/// As [`SnapshotStrategy::load`]: any [`RdbError`], including the builder's
/// [`RdbError::DuplicateKey`].
pub fn load_built<S: SnapshotStrategy, B: rdb::StoreBuilder>(
    path: &Path,
    mut builder: B,
    finish: impl FnOnce(B) -> S,
) -> Result<S, RdbError> {
    remove_stale_temps_near(path);
    let file = std::fs::File::open(path).map_err(|source| RdbError::Io { offset: 0, source })?;
    let size = file.metadata().map_err(|source| RdbError::Io { offset: 0, source })?.len();
    let summary = rdb::load_into(file, Some(size), None, &mut builder)?;
    if summary.bytes < size {
        drop(builder);
        let (keyspace, _) = crate::aof::load_file(path).map_err(crate::aof::AofError::into_rdb_error)?;
        return Ok(S::from_keyspace(keyspace));
    }
    Ok(finish(builder))
}

/// Current unix time in milliseconds.
pub fn unix_ms_now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

/// Write `view` to `dest` as one RDB dump through an [`AtomicFile`]: the shared last
/// step of every strategy that serializes in-process.
///
/// # Errors
/// [`SaveError::Io`] naming the stage; `dest` is then unchanged (unless only the final
/// directory fsync failed, after the rename).
pub fn write_snapshot<V: KeyspaceView + ?Sized>(
    view: &V,
    dest: &Path,
    opts: &SaveOptions,
    strategy: &'static str,
) -> Result<EncodeStats, SaveError> {
    let file = AtomicFile::create_with(dest, Arc::clone(&opts.io))?;
    write_snapshot_to(view, file, opts, strategy)
}

/// [`write_snapshot`] into an [`AtomicFile`] the caller created (with its own temporary
/// name, as the fork strategy's child does).
///
/// # Errors
/// As [`write_snapshot`].
pub fn write_snapshot_to<V: KeyspaceView + ?Sized>(
    view: &V,
    mut file: AtomicFile,
    opts: &SaveOptions,
    strategy: &'static str,
) -> Result<EncodeStats, SaveError> {
    let enc = EncodeOptions {
        compress: opts.compress,
        canonical: opts.canonical,
        strategy: Some(strategy),
        ctime_s: unix_ms_now() / 1000,
    };
    let written = rdb::write_view(view, &mut file, &enc, opts.progress.as_deref()).map(|(_, stats)| stats);
    let stats = written.map_err(|e| SaveError::io("write", file.temp_path(), e))?;
    file.commit()?;
    Ok(stats)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Only one ticket at a time; finishing with an error records the status and frees it.
    #[test]
    fn one_save_at_a_time() {
        let state = SaveState::new();
        let t = state.begin().unwrap();
        assert!(matches!(state.begin(), Err(SaveError::InProgress)));
        let _ = t.finish(Err(SaveError::Aborted("disk on fire".into())));
        assert!(matches!(state.status(), SaveStatus::Err(m) if m.contains("disk on fire")));
        assert_eq!(state.lastsave(), None);
        assert!(state.begin().is_ok());
    }

    /// A ticket dropped by a panicking save frees the slot and says the save failed.
    #[test]
    fn dropped_ticket_is_a_failure() {
        let state = SaveState::new();
        drop(state.begin().unwrap());
        assert!(!state.in_progress());
        assert!(matches!(state.status(), SaveStatus::Err(_)));
    }

    /// The cut includes exactly the writes at or below its count, per shard.
    #[test]
    fn cut_membership() {
        let cut = Cut { per_shard: vec![3, 0] };
        assert!(cut.includes(WriteStamp { shard: 0, seq: 3 }), "a cut after 3 writes of shard 0 includes its 3rd");
        assert!(!cut.includes(WriteStamp { shard: 0, seq: 4 }), "a cut after 3 writes of shard 0 leaves out its 4th");
        assert!(
            !cut.includes(WriteStamp { shard: 1, seq: 1 }),
            "a cut after 0 writes of shard 1 includes none of them"
        );
        assert!(
            !cut.includes(WriteStamp { shard: 2, seq: 1 }),
            "a cut with no count for shard 2 includes none of its writes"
        );
        assert_eq!(cut.writes(), 3);
    }

    /// A write with stamps in two shards is inside, outside, or split by a cut.
    #[test]
    fn multi_shard_membership() {
        let stamps = [WriteStamp { shard: 0, seq: 2 }, WriteStamp { shard: 1, seq: 5 }];
        assert_eq!(Cut { per_shard: vec![2, 5] }.includes_all(&stamps), Some(true), "every stamp is inside");
        assert_eq!(Cut { per_shard: vec![1, 4] }.includes_all(&stamps), Some(false), "no stamp is inside");
        assert_eq!(
            Cut { per_shard: vec![2, 4] }.includes_all(&stamps),
            None,
            "stamp 0:2 is inside the cut [2, 4] and stamp 1:5 is not: the cut splits the write"
        );
        assert_eq!(Cut { per_shard: vec![2] }.includes_all(&[]), None, "a write with no stamp was never applied");
    }
}
