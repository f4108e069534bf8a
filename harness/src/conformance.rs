//! The conformance suite: the properties every snapshot strategy must have, checked
//! through the `SnapshotStrategy` trait alone. It grades snaplab's own strategies and a
//! student's.
//!
//! Instantiate it with one line per strategy (in a test file):
//!
//! ```ignore
//! snaplab_harness::conformance_suite!(clone, snaplab_clone::CloneThenSerialize);
//! ```
//!
//! which defines `clone::bgsave_is_point_in_time`, `clone::matches_the_reference_model`,
//! and the rest; a failure names the rule that was broken and the writes involved. Each
//! check is also a plain function returning [`Failure`] so that tests can prove the suite
//! fails a strategy that is wrong on purpose.
//!
//! Effort scales with the environment: `PROPTEST_CASES` (model-based cases, default 24)
//! and `SNAPLAB_STRESS_ROUNDS` (concurrent rounds, default 3). `SNAPLAB_SEED` (default 0)
//! is mixed into the seeds of the concurrent workload and of the fault positions, so a
//! run with a fresh value explores new schedules (the model-based cases take theirs from
//! `PROPTEST_RNG_SEED`, random unless set). `SNAPLAB_BLACK_BOX_CHECK=off` leaves the
//! black-box search ([`checker::find_cut`]) out of the concurrent test, which then judges
//! by the cut the strategy reports alone: `cargo xtask grade` sets it while the checker's
//! own exercise is still a stub, so a strategy can be graded before the judge is written.

use std::fmt;
use std::io::{Read, Write as _};
use std::net::Shutdown;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier, RwLock};
use std::thread;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use proptest::test_runner::{Config, FileFailurePersistence, TestCaseError, TestError, TestRunner};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use snaplab_core::atomic::{IoFile, RealIo, SaveIo};
use snaplab_core::{
    BgSave, Bytes, Command, Cut, Entry, Guarantee, Keyspace, SaveError, SaveOptions, SaveStatus, SnapshotStrategy,
    Value, WriteStamp, aof, escape, unix_ms_now,
};

use crate::checker::{self, History, Write};
use crate::dataset::{self, DatasetSpec, FAR_FUTURE_MS};
use crate::model::Model;

/// How hard the suite works.
#[derive(Clone, Debug)]
pub struct SuiteConfig {
    /// Model-based cases (`PROPTEST_CASES`).
    pub cases: u32,
    /// Concurrent rounds (`SNAPLAB_STRESS_ROUNDS`).
    pub stress_rounds: usize,
    /// Keys in the stress keyspace (at least 100,000 for the suite proper).
    pub stress_keys: usize,
    /// Writes per writer thread per round, at most.
    pub max_writes_per_thread: u64,
    /// Where proptest records failing cases (`None`: not recorded, as for strategies that
    /// are wrong on purpose).
    pub regressions: Option<PathBuf>,
    /// Mixed into the workload's and the fault sweep's seeds (`SNAPLAB_SEED`; 0, the
    /// default, keeps the fixed seeds).
    pub seed: u64,
    /// Whether the concurrent test runs the black-box search for the snapshot's instant
    /// ([`checker::find_cut`]) before checking the reported cut (`SNAPLAB_BLACK_BOX_CHECK`;
    /// on unless `off`).
    pub black_box: bool,
}

impl SuiteConfig {
    /// The configuration from the environment, recording regressions for `strategy` under
    /// `tests/conformance-regressions/`.
    pub fn from_env(strategy: &str) -> Self {
        let num = |var: &str, default: u64| std::env::var(var).ok().and_then(|v| v.parse().ok()).unwrap_or(default);
        SuiteConfig {
            cases: num("PROPTEST_CASES", 24) as u32,
            stress_rounds: num("SNAPLAB_STRESS_ROUNDS", 3) as usize,
            stress_keys: 100_000,
            max_writes_per_thread: 20_000,
            regressions: Some(PathBuf::from(format!("tests/conformance-regressions/{strategy}.txt"))),
            seed: num("SNAPLAB_SEED", 0),
            black_box: std::env::var("SNAPLAB_BLACK_BOX_CHECK").ok().as_deref() != Some("off"),
        }
    }
}

/// A broken rule, with what happened.
#[derive(Debug)]
pub struct Failure {
    /// The rule, in one line.
    pub rule: &'static str,
    /// What happened.
    pub detail: String,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "rule '{}' is violated: {}", self.rule, self.detail)
    }
}

impl std::error::Error for Failure {}

fn fail(rule: &'static str, detail: impl Into<String>) -> Failure {
    Failure { rule, detail: detail.into() }
}

const POINT_IN_TIME: &str = "a BGSAVE snapshot is the keyspace at one instant between the call and its return";
/// The rule of a [`Guarantee::AtLogClose`] strategy, in place of [`POINT_IN_TIME`].
const AT_LOG_CLOSE: &str =
    "a relaxed dump is the keyspace at one instant between the log's close being requested and acknowledged";

/// The suite's whole-dump rule for strategy `S`.
fn dump_rule<S: SnapshotStrategy>() -> &'static str {
    match S::GUARANTEE {
        Guarantee::PointInTime => POINT_IN_TIME,
        Guarantee::AtLogClose => AT_LOG_CLOSE,
    }
}
const REPORTED_CUT: &str = checker::REPORTED_CUT_RULE;

/// Every rule the suite's own checks name (the checker's rules come with its violations).
const RULES: [&str; 9] = [
    POINT_IN_TIME,
    AT_LOG_CLOSE,
    SAVE_RULE,
    MODEL_RULE,
    ONE_AT_A_TIME,
    LASTSAVE_RULE,
    ATOMIC_RULE,
    CRASH_RULE,
    REPORTED_CUT,
];
const SAVE_RULE: &str = "a SAVE snapshot holds every write that completed before SAVE was called";
const MODEL_RULE: &str = "the store applies every write exactly as the reference model does";
const ONE_AT_A_TIME: &str = "a second BGSAVE while one runs is refused and changes nothing";
const LASTSAVE_RULE: &str = "LASTSAVE and the last-save status tell the truth";
const ATOMIC_RULE: &str = "the file at the destination is a complete snapshot";
const CRASH_RULE: &str =
    "a failed save leaves the previous snapshot, no temp file, the store as it was, LASTSAVE unmoved, status err";

/// The first difference between two keyspaces, in words; `None` when equal.
pub fn diff(expected: &Keyspace, got: &Keyspace) -> Option<String> {
    if expected == got {
        return None;
    }
    for (db, key, want) in expected.iter() {
        match got.get(db, key) {
            None => return Some(format!("key {} (db {db}) is missing", escape(key))),
            Some(e) if e != want => {
                return Some(format!("key {} (db {db}) is {}, expected {}", escape(key), describe(e), describe(want)));
            }
            _ => {}
        }
    }
    for (db, key, e) in got.iter() {
        if expected.get(db, key).is_none() {
            return Some(format!("key {} (db {db}) should not exist, found {}", escape(key), describe(e)));
        }
    }
    Some("the function libraries differ".into())
}

fn describe(e: &Entry) -> String {
    let exp = e.expire_at_ms.map(|t| format!(" expiring at {t}")).unwrap_or_default();
    format!("a {} ({}){exp}", e.value.type_name(), crate::render::preview(&e.value))
}

/// Load a dump: RDB, and the command tail of an RDB-preamble AOF if there is one.
fn load(path: &Path, rule: &'static str) -> Result<Keyspace, Failure> {
    aof::load_file(path).map(|(ks, _)| ks).map_err(|e| fail(rule, format!("the dump does not load: {e}")))
}

// ---- a file system that can hold a save still ------------------------------------------

/// A [`SaveIo`] over the real file system whose files block on their first write until
/// [`GateIo::open`] is called: a save held still after it has taken its cut, so a test can
/// act while it is certainly in progress.
///
/// The gate is a pair of socket pairs rather than a mutex, so it also holds a save running
/// in a forked child: the child inherits the sockets, while a mutex would be a separate
/// copy in its own memory.
#[derive(Debug)]
pub struct GateIo {
    reached: (UnixStream, UnixStream),
    release: (UnixStream, UnixStream),
}

impl GateIo {
    /// A closed gate.
    ///
    /// # Panics
    /// If the process cannot create a socket pair.
    pub fn new() -> Arc<Self> {
        let pair = || UnixStream::pair().expect("a unix socket pair for the gate");
        Arc::new(GateIo { reached: pair(), release: pair() })
    }

    /// Let every held write proceed, now and later (in this process and its children).
    pub fn open(&self) {
        // Shutting down the socket (not just this fd) makes every reader see end-of-file.
        let _ = self.release.1.shutdown(Shutdown::Write);
    }

    /// Wait (at most `limit`) until a save is held at the gate; `false` if none arrived.
    pub fn wait_for_a_held_write(&self, limit: Duration) -> bool {
        let _ = self.reached.0.set_read_timeout(Some(limit));
        (&self.reached.0).read(&mut [0u8; 1]).is_ok_and(|n| n == 1)
    }

    fn pass(&self) {
        let _ = (&self.reached.1).write_all(&[1]);
        // Bounded, so a test that forgets to open the gate fails instead of hanging.
        let _ = self.release.0.set_read_timeout(Some(Duration::from_secs(120)));
        let _ = (&self.release.0).read(&mut [0u8; 1]);
    }
}

struct GatedFile {
    inner: Box<dyn IoFile>,
    gate: Arc<GateIo>,
    passed: bool,
}

impl std::io::Write for GatedFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if !self.passed {
            self.gate.pass();
            self.passed = true;
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

/// `SaveIo` for an `Arc<GateIo>` (the files need the gate after `create` returns).
#[derive(Debug)]
pub struct GatedIo(pub Arc<GateIo>);

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

// ---- the concurrent stress test and its workload ---------------------------------------

/// Writer `t`'s next write: every one changes its key recognisably (values and members
/// carry the thread and sequence number), covering all five types, deletes and re-creates,
/// list pushes, hash field updates, and expiries set and cleared. Thread `t` only touches
/// keys named `w<t>:...`, so threads never share a key.
pub fn workload_write(t: usize, seq: u64, rng: &mut ChaCha8Rng) -> Command {
    let i = rng.random_range(0..8u32);
    let tag = || format!("t{t}#{seq}").into_bytes();
    let key = |kind: &str| format!("w{t}:{kind}{i}").into_bytes();
    let db = (i % 3) as usize;
    match rng.random_range(0..20u32) {
        0..=4 => Command::Set { db, key: key("s"), value: tag(), expire_at_ms: None },
        5 => Command::Del { db, key: key("s") },
        6 => Command::PExpireAt { db, key: key("s"), at_ms: FAR_FUTURE_MS + seq as i64 },
        7 => Command::Persist { db, key: key("s") },
        8 | 9 => Command::RPush { db, key: key("l"), elements: vec![tag()] },
        10 => Command::Del { db, key: key("l") },
        11 | 12 => Command::HSet { db, key: key("h"), pairs: vec![(format!("f{}", seq % 4).into_bytes(), tag())] },
        13 => Command::HDel { db, key: key("h"), fields: vec![format!("f{}", seq % 4).into_bytes()] },
        14 | 15 => Command::SAdd { db, key: key("S"), members: vec![tag()] },
        16 => Command::Del { db, key: key("S") },
        17 | 18 => Command::ZAdd { db, key: key("z"), pairs: vec![(seq as f64, format!("m{}", seq % 5).into_bytes())] },
        _ => Command::Del { db, key: key("z") },
    }
}

/// Thread 0's multi-key writes: a FLUSHDB of database 1 or 2 every [`FLUSH_EVERY`]th
/// write, and one FLUSHALL as soon as it sees that BGSAVE has returned (so it runs while
/// the save is in progress: the dump must still hold everything the FLUSHALL removes).
/// `None`: an ordinary write.
fn multi_key_write(seq: u64, saving: bool, flushed_all: &mut bool) -> Option<Command> {
    if saving && !*flushed_all {
        *flushed_all = true;
        return Some(Command::FlushAll);
    }
    seq.is_multiple_of(FLUSH_EVERY).then(|| Command::FlushDb { db: 1 + (seq / FLUSH_EVERY % 2) as usize })
}

/// How often thread 0 issues a FLUSHDB in the stress workload.
const FLUSH_EVERY: u64 = 64;

/// A writer's place at the barrier that starts the save: passed after its first write, or
/// when the writer unwinds. A writer whose first write panics (an `apply` that is still a
/// `todo!()`) must still let the round go on, or the saver would wait for it forever.
struct PassOnDrop(Option<Arc<Barrier>>);

impl PassOnDrop {
    fn pass(&mut self) {
        if let Some(barrier) = self.0.take() {
            barrier.wait();
        }
    }
}

impl Drop for PassOnDrop {
    fn drop(&mut self) {
        self.pass();
    }
}

/// One round: `writers` threads write while one BGSAVE runs; the dump must be a
/// point-in-time snapshot of `initial` plus some of the writes (checked black-box by
/// [`checker::find_cut`]), it must be the keyspace at the cut the strategy reported
/// ([`checker::check_reported_cut`]), and after the round the store must hold every write
/// in the order its stamps give.
///
/// Thread 0 also issues FLUSHDB and FLUSHALL. Those run exclusively of the other writers
/// (a readers-writer lock in the harness, not in the store), so that real time orders
/// them against every other write; the BGSAVE takes no part in that lock, so its cut may
/// still land in the middle of one, which is what a strategy must prevent.
fn stress_round<S: SnapshotStrategy>(
    initial: &Keyspace,
    writers: usize,
    seed: u64,
    max_writes: u64,
    black_box: bool,
    flush_all: bool,
) -> Result<(), Failure> {
    let dir = tempfile::tempdir().map_err(|e| fail(POINT_IN_TIME, format!("no temporary directory: {e}")))?;
    let dest = dir.path().join("dump.rdb");
    let store = Arc::new(S::from_keyspace(initial.clone()));
    let epoch = Instant::now();
    let ns = move || epoch.elapsed().as_nanos() as u64;
    let stop = Arc::new(AtomicBool::new(false));
    let saving = Arc::new(AtomicBool::new(false));
    let alone = Arc::new(RwLock::new(()));
    let ready = Arc::new(Barrier::new(writers + 1));
    let handles: Vec<_> = (0..writers)
        .map(|t| {
            let (store, stop, saving, alone, ready) =
                (Arc::clone(&store), Arc::clone(&stop), Arc::clone(&saving), Arc::clone(&alone), Arc::clone(&ready));
            thread::spawn(move || {
                let mut ready = PassOnDrop(Some(ready));
                let mut rng = ChaCha8Rng::seed_from_u64(seed ^ ((t as u64) << 32));
                let mut writes = Vec::new();
                let mut flushed_all = false;
                for seq in 1..=max_writes {
                    let multi = if t == 0 {
                        multi_key_write(seq, flush_all && saving.load(Ordering::Acquire), &mut flushed_all)
                    } else {
                        None
                    };
                    let exclusive = multi.is_some();
                    let cmd = multi.unwrap_or_else(|| workload_write(t, seq, &mut rng));
                    let timed = || {
                        let invoked_ns = ns();
                        // The workload is never refused; if a strategy refuses a write, the
                        // checkers' replays refuse it too, so the history stays exact.
                        let stamps = store.apply(&cmd).map(|a| a.stamps()).unwrap_or_default();
                        (invoked_ns, stamps, ns())
                    };
                    // A poisoned lock still orders the writes: only the order matters here.
                    let (invoked_ns, stamps, completed_ns) = if exclusive {
                        let _alone = alone.write().unwrap_or_else(|p| p.into_inner());
                        timed()
                    } else {
                        let _shared = alone.read().unwrap_or_else(|p| p.into_inner());
                        timed()
                    };
                    writes.push(Write { seq, cmd, invoked_ns, completed_ns, stamps });
                    if seq == 1 {
                        ready.pass();
                    }
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                }
                writes
            })
        })
        .collect();
    ready.wait();
    let called = ns();
    let bg = store.bgsave(&dest, &SaveOptions::default());
    let returned = ns();
    saving.store(true, Ordering::Release);
    let reported_at_return = bg.as_ref().ok().map(|b| b.cut().clone());
    let report = bg.and_then(BgSave::wait);
    stop.store(true, Ordering::Relaxed);
    let threads: Vec<Vec<Write>> = handles.into_iter().map(|h| h.join().expect("writer thread")).collect();
    let rule = dump_rule::<S>();
    let report = report.map_err(|e| fail(rule, format!("BGSAVE failed: {e}")))?;
    let snapshot = load(&dest, rule)?;
    // ANCHOR: window
    // The window the dump's instant must fall in: BGSAVE's call and return, or the log's
    // close request and acknowledgement.
    let (from_ns, to_ns) = match S::GUARANTEE {
        Guarantee::PointInTime => (called, returned),
        Guarantee::AtLogClose => {
            let close =
                store.last_log_close().ok_or_else(|| fail(rule, "the save succeeded but reports no log close"))?;
            let ns_at = |t: Instant| t.saturating_duration_since(epoch).as_nanos() as u64;
            (ns_at(close.requested), ns_at(close.acknowledged))
        }
    };
    let history = History { threads, bgsave_called_ns: from_ns, bgsave_returned_ns: to_ns };
    // ANCHOR_END: window
    let context = format!("with {writers} writer threads over {} keys", initial.len());
    if black_box {
        checker::find_cut(initial, &history, &snapshot).map_err(|v| Failure {
            rule: v.rule_for(S::GUARANTEE),
            detail: format!("{context}: {}", v.detail_for(S::GUARANTEE)),
        })?;
    }
    // A relaxed strategy has no cut when BGSAVE returns; its report gives the close's.
    if S::GUARANTEE == Guarantee::PointInTime && reported_at_return.as_ref() != Some(&report.cut) {
        return Err(fail(
            REPORTED_CUT,
            format!("BGSAVE returned cut {reported_at_return:?}, but its report says {:?}", report.cut),
        ));
    }
    checker::check_reported_cut(initial, &history, &report.cut, &snapshot)
        .map_err(|v| fail(REPORTED_CUT, format!("{context}: {}", v.detail())))?;
    let order = checker::stamp_order(&history).map_err(|v| fail(REPORTED_CUT, format!("{context}: {}", v.detail())))?;
    let expected = checker::replay(initial, order.iter().map(|(_, w)| &w.cmd));
    diff(&expected, &store.to_keyspace()).map_or(Ok(()), |d| {
        Err(fail(MODEL_RULE, format!("{context}: after the round, against every write in stamp order: {d}")))
    })
}

/// Concurrent stress: K writer threads (2, 4 and 8 in turn) against a BGSAVE over a
/// keyspace of `cfg.stress_keys` keys, `cfg.stress_rounds` rounds, every dump checked by
/// the consistent-cut checker.
///
/// # Errors
/// The first round's [`Failure`].
pub fn bgsave_is_point_in_time<S: SnapshotStrategy>(cfg: &SuiteConfig) -> Result<(), Failure> {
    let initial = dataset::generate(&DatasetSpec { keys: cfg.stress_keys, value_size: 16, seed: 7 });
    for round in 0..cfg.stress_rounds {
        let writers = [2, 4, 8][round % 3];
        let seed = cfg.seed.wrapping_add(round as u64 + 1);
        // A FLUSHALL early in a relaxed save is logged and makes every database visited, so
        // it would hide from the check what the log does with the writes before it: a
        // relaxed strategy gets it in every other round only.
        let flush_all = S::GUARANTEE == Guarantee::PointInTime || round % 2 == 1;
        stress_round::<S>(&initial, writers, seed, cfg.max_writes_per_thread, cfg.black_box, flush_all)?;
    }
    Ok(())
}

// ---- the model-based property test -----------------------------------------------------

/// One step of a model-based case.
#[derive(Clone, Debug)]
pub enum Op {
    /// Apply a write to both the store and the model.
    Write(Command),
    /// SAVE, then check the dump against the model.
    Save,
    /// BGSAVE (refused if one is running; the store must then be unchanged).
    BgSave,
    /// Wait for the running BGSAVE and check its dump against the model at its call.
    Wait,
    /// Insert this many new keys (enough to make hash tables resize during a save).
    Grow(u16),
}

fn bytes() -> impl Strategy<Value = Bytes> + Clone {
    prop_oneof![
        prop::sample::select(vec!["a", "b", "42", "-7", "x y", ""]).prop_map(|s| s.as_bytes().to_vec()),
        prop::collection::vec(any::<u8>(), 0..24),
    ]
}

fn command() -> impl Strategy<Value = Command> {
    let key = prop::sample::select(vec!["k1", "k2", "k3", "k4", "k5"]).prop_map(|k| k.as_bytes().to_vec());
    let db = 0usize..3;
    let expiry =
        prop_oneof![Just(None), (1i64..1000).prop_map(|d| Some(FAR_FUTURE_MS + d)), (1i64..1000).prop_map(Some)];
    let elems = prop::collection::vec(bytes(), 1..4);
    prop_oneof![
        (db.clone(), key.clone(), bytes(), expiry).prop_map(|(db, key, value, expire_at_ms)| Command::Set {
            db,
            key,
            value,
            expire_at_ms
        }),
        (db.clone(), key.clone()).prop_map(|(db, key)| Command::Del { db, key }),
        (db.clone(), key.clone(), prop_oneof![(1i64..1000).prop_map(|d| FAR_FUTURE_MS + d), 1i64..1000])
            .prop_map(|(db, key, at_ms)| Command::PExpireAt { db, key, at_ms }),
        (db.clone(), key.clone()).prop_map(|(db, key)| Command::Persist { db, key }),
        (db.clone(), key.clone(), elems.clone()).prop_map(|(db, key, elements)| Command::RPush { db, key, elements }),
        (db.clone(), key.clone(), elems.clone()).prop_map(|(db, key, elements)| Command::LPush { db, key, elements }),
        (db.clone(), key.clone()).prop_map(|(db, key)| Command::LPop { db, key }),
        (db.clone(), key.clone(), elems.clone()).prop_map(|(db, key, members)| Command::SAdd { db, key, members }),
        (db.clone(), key.clone(), elems.clone()).prop_map(|(db, key, members)| Command::SRem { db, key, members }),
        (db.clone(), key.clone(), prop::collection::vec((bytes(), bytes()), 1..3))
            .prop_map(|(db, key, pairs)| Command::HSet { db, key, pairs }),
        (db.clone(), key.clone(), elems.clone()).prop_map(|(db, key, fields)| Command::HDel { db, key, fields }),
        (db.clone(), key.clone(), prop::collection::vec((-1e6f64..1e6, bytes()), 1..3))
            .prop_map(|(db, key, pairs)| Command::ZAdd { db, key, pairs }),
        (db.clone(), key.clone(), elems).prop_map(|(db, key, members)| Command::ZRem { db, key, members }),
        db.prop_map(|db| Command::FlushDb { db }),
    ]
}

/// A model-based case as numbered lines a student can replay by hand: `3. [db0] SET k1
/// "x y"`, `4. BGSAVE`, `5. wait for the running BGSAVE`.
pub fn steps_text(ops: &[Op]) -> String {
    ops.iter()
        .enumerate()
        .map(|(i, op)| {
            let what = match op {
                Op::Write(cmd) => crate::render::command_line(cmd),
                Op::Save => "SAVE".into(),
                Op::BgSave => "BGSAVE".into(),
                Op::Wait => "wait for the running BGSAVE".into(),
                Op::Grow(n) => format!("SET {n} new keys grow:<i> in db0"),
            };
            format!("  {}. {what}", i + 1)
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Random sequences of writes, saves and background saves.
pub fn ops() -> impl Strategy<Value = Vec<Op>> {
    let op = prop_oneof![
        12 => command().prop_map(Op::Write),
        2 => Just(Op::Save),
        3 => Just(Op::BgSave),
        2 => Just(Op::Wait),
        1 => (100u16..3000).prop_map(Op::Grow),
    ];
    prop::collection::vec(op, 1..40)
}

struct Running {
    bg: BgSave,
    expected: Keyspace,
    path: PathBuf,
    op: usize,
    called_ms: i64,
    /// How many of the store's writes were applied before the call.
    writes_before: usize,
}

/// The stamps of one write the store applied (every stamp of [`snaplab_core::Applied`]).
type Stamps = Vec<WriteStamp>;

/// Stamps as `shard:seq`, comma-separated (`none` for a refused write).
fn stamps_text(stamps: &[WriteStamp]) -> String {
    if stamps.is_empty() {
        return "none".into();
    }
    stamps.iter().map(|s| format!("{}:{}", s.shard, s.seq)).collect::<Vec<_>>().join(", ")
}

/// Check that `cut` includes every write of `before` and none of `after` (the writes
/// applied before and after the save was called): the snapshot is then exactly the
/// initial keyspace plus the writes whose stamps the cut includes.
///
/// # Errors
/// A [`Failure`] naming the first write on the wrong side.
pub fn cut_separates(cut: &Cut, before: &[Stamps], after: &[Stamps], what: &str) -> Result<(), Failure> {
    for (i, stamps) in before.iter().enumerate() {
        if cut.includes_all(stamps) != Some(true) {
            return Err(fail(
                REPORTED_CUT,
                format!(
                    "{what}: the reported cut {:?} leaves out write {} of {} applied before the save was called \
                     (stamps {})",
                    cut.per_shard,
                    i + 1,
                    before.len(),
                    stamps_text(stamps)
                ),
            ));
        }
    }
    for (i, stamps) in after.iter().enumerate() {
        if cut.includes_all(stamps) != Some(false) {
            return Err(fail(
                REPORTED_CUT,
                format!(
                    "{what}: the reported cut {:?} includes write {} of {} applied after the save was called \
                     (stamps {})",
                    cut.per_shard,
                    i + 1,
                    after.len(),
                    stamps_text(stamps)
                ),
            ));
        }
    }
    Ok(())
}

/// Run one model-based case against a fresh store.
///
/// # Errors
/// A proptest failure naming the rule.
pub fn run_ops<S: SnapshotStrategy>(ops: &[Op]) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().map_err(|e| TestCaseError::fail(format!("no temporary directory: {e}")))?;
    let store = S::from_keyspace(Keyspace::new());
    let mut model = Model::new();
    let mut running: Option<Running> = None;
    let mut grown = 0u64;
    let mut files = 0;
    let mut path = || {
        files += 1;
        dir.path().join(format!("dump-{files}.rdb"))
    };
    let check = |rule: &'static str, expected: &Keyspace, got: &Keyspace, when: String| match diff(expected, got) {
        None => Ok(()),
        Some(d) => Err(TestCaseError::fail(fail(rule, format!("{when}: {d}")).to_string())),
    };
    // The stamps of every write the store applied, in order, and the writes themselves.
    let mut applied: Vec<Stamps> = Vec::new();
    let mut applied_cmds: Vec<Command> = Vec::new();
    let finish = |r: Running, store: &S, applied: &[Stamps], cmds: &[Command]| -> Result<(), TestCaseError> {
        let returned_cut = r.bg.cut().clone();
        let report = r.bg.wait().map_err(|e| TestCaseError::fail(format!("BGSAVE of step {} failed: {e}", r.op)))?;
        let what = format!("the BGSAVE of step {}", r.op);
        let got = load(&r.path, dump_rule::<S>()).map_err(|f| TestCaseError::fail(f.to_string()))?;
        if S::GUARANTEE == Guarantee::AtLogClose {
            // The dump is the model after the writes up to the log's close: those before
            // the call and a prefix of those after (this thread is the only writer).
            let (before, after) = applied.split_at(r.writes_before);
            cut_separates(&report.cut, before, &[], &what).map_err(|f| TestCaseError::fail(f.to_string()))?;
            let closed_after = report.cut.writes().saturating_sub(r.writes_before as u64) as usize;
            if closed_after > after.len() {
                let detail = format!(
                    "{what} reports {} writes at its close, but only {} were applied",
                    report.cut.writes(),
                    applied.len()
                );
                return Err(TestCaseError::fail(fail(REPORTED_CUT, detail).to_string()));
            }
            let expected = checker::replay(&r.expected, &cmds[r.writes_before..r.writes_before + closed_after]);
            check(
                AT_LOG_CLOSE,
                &expected,
                &got,
                format!(
                    "{what} differs from the keyspace after the {} writes before its log's close",
                    report.cut.writes()
                ),
            )?;
        } else {
            if report.cut != returned_cut {
                let detail = format!("{what} returned cut {returned_cut:?}, but its report says {:?}", report.cut);
                return Err(TestCaseError::fail(fail(REPORTED_CUT, detail).to_string()));
            }
            let (before, after) = applied.split_at(r.writes_before);
            cut_separates(&report.cut, before, after, &what).map_err(|f| TestCaseError::fail(f.to_string()))?;
            check(
                POINT_IN_TIME,
                &r.expected,
                &got,
                format!("the BGSAVE of step {} differs from the keyspace when it was called", r.op),
            )?;
        }
        if store.lastsave().is_none_or(|t| t < r.called_ms) {
            let detail = format!(
                "LASTSAVE is {:?} after the BGSAVE of step {} finished (called at {})",
                store.lastsave(),
                r.op,
                r.called_ms
            );
            return Err(TestCaseError::fail(fail(LASTSAVE_RULE, detail).to_string()));
        }
        Ok(())
    };

    for (i, op) in ops.iter().enumerate() {
        let step = i + 1;
        match op {
            Op::Write(cmd) => {
                let now = unix_ms_now();
                let result = store.apply(cmd);
                let in_store = result.is_ok();
                if in_store {
                    applied_cmds.push(cmd.clone());
                }
                applied.extend(result.map(|a| a.stamps()));
                let in_model = model.apply(cmd, now).is_ok();
                if in_store != in_model {
                    let what = if in_model { "refused" } else { "accepted" };
                    return Err(TestCaseError::fail(
                        fail(MODEL_RULE, format!("step {step}: the store {what} {cmd:?}, the model did not"))
                            .to_string(),
                    ));
                }
            }
            Op::Grow(n) => {
                for _ in 0..*n {
                    grown += 1;
                    let cmd = Command::Set {
                        db: 0,
                        key: format!("grow:{grown}").into_bytes(),
                        value: grown.to_string().into_bytes(),
                        expire_at_ms: None,
                    };
                    let a = store.apply(&cmd).map_err(|e| TestCaseError::fail(format!("step {step}: {e}")))?;
                    applied.push(a.stamps());
                    applied_cmds.push(cmd.clone());
                    model
                        .apply(&cmd, 0)
                        .map_err(|e| TestCaseError::fail(format!("step {step}: model refused: {e}")))?;
                }
            }
            Op::Save => {
                let p = path();
                match store.save(&p, &SaveOptions::default()) {
                    Ok(report) => {
                        cut_separates(&report.cut, &applied, &[], &format!("the SAVE of step {step}"))
                            .map_err(|f| TestCaseError::fail(f.to_string()))?;
                        let got = load(&p, SAVE_RULE).map_err(|f| TestCaseError::fail(f.to_string()))?;
                        check(SAVE_RULE, &model.to_keyspace(), &got, format!("the SAVE of step {step}"))?;
                    }
                    Err(SaveError::InProgress) if running.is_some() => {
                        check(
                            ONE_AT_A_TIME,
                            &model.to_keyspace(),
                            &store.to_keyspace(),
                            format!("after the refused SAVE of step {step}"),
                        )?;
                    }
                    Err(e) => return Err(TestCaseError::fail(format!("step {step}: SAVE failed: {e}"))),
                }
            }
            Op::BgSave => {
                let p = path();
                let expected = model.to_keyspace();
                let called_ms = unix_ms_now();
                match store.bgsave(&p, &SaveOptions::default()) {
                    Ok(bg) => {
                        // The earlier save, if any, had finished (the slot was free): check it.
                        if let Some(r) = running.take() {
                            finish(r, &store, &applied, &applied_cmds)?;
                        }
                        running =
                            Some(Running { bg, expected, path: p, op: step, called_ms, writes_before: applied.len() });
                    }
                    Err(SaveError::InProgress) if running.is_some() => {
                        check(
                            ONE_AT_A_TIME,
                            &expected,
                            &store.to_keyspace(),
                            format!("after the refused BGSAVE of step {step}"),
                        )?;
                    }
                    Err(e) => return Err(TestCaseError::fail(format!("step {step}: BGSAVE failed: {e}"))),
                }
            }
            Op::Wait => {
                if let Some(r) = running.take() {
                    finish(r, &store, &applied, &applied_cmds)?;
                    check(
                        MODEL_RULE,
                        &model.to_keyspace(),
                        &store.to_keyspace(),
                        format!("after the BGSAVE waited for at step {step}"),
                    )?;
                }
            }
        }
    }
    if let Some(r) = running.take() {
        finish(r, &store, &applied, &applied_cmds)?;
    }
    check(MODEL_RULE, &model.to_keyspace(), &store.to_keyspace(), "after the last step".into())
}

/// Model-based property test: random sequences of writes of all five types, SAVE and
/// BGSAVE at random points (overlapping ones refused), keyspace growth during saves; every
/// dump equals the reference model's state when its save was called, and the store equals
/// the model throughout.
///
/// # Errors
/// The minimal failing case proptest found, with the broken rule.
pub fn matches_the_reference_model<S: SnapshotStrategy>(cfg: &SuiteConfig) -> Result<(), Failure> {
    let config = Config {
        cases: cfg.cases,
        max_shrink_iters: 512,
        failure_persistence: cfg.regressions.as_ref().map(|p| {
            let leaked: &'static str = Box::leak(p.display().to_string().into_boxed_str());
            Box::new(FileFailurePersistence::Direct(leaked)) as Box<dyn proptest::test_runner::FailurePersistence>
        }),
        ..Config::default()
    };
    let mut runner = TestRunner::new(config);
    runner.run(&ops(), |ops| run_ops::<S>(&ops)).map_err(|e| match e {
        TestError::Fail(reason, ops) => {
            // The case failed with a rule's own message: report that rule, once.
            let reason = reason.message().to_string();
            let (rule, detail) = RULES
                .iter()
                .find_map(|r| reason.strip_prefix(&format!("rule '{r}' is violated: ")).map(|d| (*r, d.to_string())))
                .unwrap_or((MODEL_RULE, reason.clone()));
            Failure {
                rule,
                detail: format!(
                    "{detail}\nthe shortest failing sequence found ({} steps):\n{}",
                    ops.len(),
                    steps_text(&ops)
                ),
            }
        }
        TestError::Abort(reason) => fail(MODEL_RULE, format!("proptest aborted: {reason}")),
    })
}

// ---- deterministic scenarios -----------------------------------------------------------

fn small_keyspace(keys: usize) -> Keyspace {
    dataset::generate(&DatasetSpec { keys, value_size: 8, seed: 3 })
}

/// A second BGSAVE while one is held in progress is refused with `InProgress`, SAVE too,
/// the store is unchanged, and the first save still completes correctly.
///
/// # Errors
/// The broken rule.
pub fn overlapping_bgsave_is_refused<S: SnapshotStrategy>() -> Result<(), Failure> {
    let dir = tempfile::tempdir().map_err(|e| fail(ONE_AT_A_TIME, e.to_string()))?;
    let initial = small_keyspace(1000);
    let store = S::from_keyspace(initial.clone());
    let gate = GateIo::new();
    let held = SaveOptions { io: Arc::new(GatedIo(Arc::clone(&gate))), ..SaveOptions::default() };
    let first = store
        .bgsave(&dir.path().join("first.rdb"), &held)
        .map_err(|e| fail(ONE_AT_A_TIME, format!("the first BGSAVE failed: {e}")))?;
    if !gate.wait_for_a_held_write(Duration::from_secs(30)) {
        gate.open();
        return Err(fail(
            ONE_AT_A_TIME,
            "the save never wrote through SaveOptions::io, so the test cannot hold it in progress",
        ));
    }
    let second = store.bgsave(&dir.path().join("second.rdb"), &SaveOptions::default());
    let save = store.save(&dir.path().join("third.rdb"), &SaveOptions::default());
    let unchanged = diff(&initial, &store.to_keyspace());
    gate.open();
    let report = first.wait().map_err(|e| fail(ONE_AT_A_TIME, format!("the first BGSAVE failed: {e}")))?;
    if !matches!(second, Err(SaveError::InProgress)) {
        return Err(fail(
            ONE_AT_A_TIME,
            format!("a second BGSAVE during the first returned {:?}, not InProgress", second.map(|b| b.cut().clone())),
        ));
    }
    if !matches!(save, Err(SaveError::InProgress)) {
        return Err(fail(
            ONE_AT_A_TIME,
            format!("SAVE during a BGSAVE returned {:?}, not InProgress", save.map(|r| r.keys)),
        ));
    }
    if let Some(d) = unchanged {
        return Err(fail(ONE_AT_A_TIME, format!("the refused BGSAVE changed the store: {d}")));
    }
    if dir.path().join("second.rdb").exists() || dir.path().join("third.rdb").exists() {
        return Err(fail(ONE_AT_A_TIME, "a refused save wrote a file"));
    }
    let got = load(&report.path, POINT_IN_TIME)?;
    diff(&initial, &got).map_or(Ok(()), |d| Err(fail(POINT_IN_TIME, format!("the held BGSAVE: {d}"))))
}

/// Deletes of keys the save has not reached yet, changes to others, and growth large
/// enough to force the store's tables to resize, all issued right after BGSAVE returns:
/// none of them may reach the dump, and all of them must reach the store.
///
/// # Errors
/// The broken rule.
pub fn writes_during_save_stay_out<S: SnapshotStrategy>() -> Result<(), Failure> {
    let dir = tempfile::tempdir().map_err(|e| fail(POINT_IN_TIME, e.to_string()))?;
    let initial = small_keyspace(20_000);
    let store = S::from_keyspace(initial.clone());
    let mut model = Model::from_keyspace(&initial);
    let dest = dir.path().join("dump.rdb");
    let bg =
        store.bgsave(&dest, &SaveOptions::default()).map_err(|e| fail(POINT_IN_TIME, format!("BGSAVE failed: {e}")))?;
    let mut writes: Vec<Command> = Vec::new();
    for i in (0..20_000).step_by(3) {
        writes.push(Command::Del { db: 0, key: format!("key:{i:07}").into_bytes() });
    }
    for i in (1..20_000).step_by(7) {
        writes.push(Command::Set {
            db: 0,
            key: format!("key:{i:07}").into_bytes(),
            value: b"changed".to_vec(),
            expire_at_ms: None,
        });
    }
    for i in 0..60_000 {
        writes.push(Command::Set {
            db: (i % 4) as usize,
            key: format!("new:{i}").into_bytes(),
            value: b"n".to_vec(),
            expire_at_ms: None,
        });
    }
    let now = unix_ms_now();
    let mut after: Vec<Stamps> = Vec::with_capacity(writes.len());
    for w in &writes {
        let a = store.apply(w).map_err(|e| fail(MODEL_RULE, format!("{} refused: {e}", w.name())))?;
        after.push(a.stamps());
        let _ = model.apply(w, now);
    }
    let returned_cut = bg.cut().clone();
    let report = bg.wait().map_err(|e| fail(POINT_IN_TIME, format!("BGSAVE failed: {e}")))?;
    if S::GUARANTEE == Guarantee::AtLogClose {
        // Not out of the dump, but in it exactly up to the log's close: each write once,
        // in the traversal or in the log, whether its key was reached before or after.
        let n = report.cut.writes() as usize;
        if n > writes.len() {
            return Err(fail(REPORTED_CUT, format!("{n} writes reported at the close, {} applied", writes.len())));
        }
        let got = load(&dest, AT_LOG_CLOSE)?;
        let expected = checker::replay(&initial, &writes[..n]);
        if let Some(d) = diff(&expected, &got) {
            return Err(fail(AT_LOG_CLOSE, format!("against the first {n} writes issued during the save: {d}")));
        }
        return diff(&model.to_keyspace(), &store.to_keyspace())
            .map_or(Ok(()), |d| Err(fail(MODEL_RULE, format!("the writes issued during the save: {d}"))));
    }
    for cut in [&returned_cut, &report.cut] {
        cut_separates(cut, &[], &after, "writes issued after BGSAVE returned")?;
    }
    let got = load(&dest, POINT_IN_TIME)?;
    if let Some(d) = diff(&initial, &got) {
        return Err(fail(POINT_IN_TIME, format!("after deletes and 60,000 inserts issued during the save: {d}")));
    }
    diff(&model.to_keyspace(), &store.to_keyspace())
        .map_or(Ok(()), |d| Err(fail(MODEL_RULE, format!("the writes issued during the save: {d}"))))
}

/// Writes issued while a save is held in the middle of writing its file (after its first
/// write through `SaveOptions::io`): deletes and updates of existing keys and pushes to
/// new lists, some of them on keys the save has serialized and some on keys it has not.
/// A dump at the log's close (the close comes after the gate opens) holds every one
/// exactly once: a push logged and also serialized would be in it twice, a write to a key
/// already serialized and not logged not at all.
///
/// Only for [`Guarantee::AtLogClose`] strategies (the others pass at once): in a
/// point-in-time strategy whose writers wait for the save (`blocking`), the writes could
/// not run while the save is held. [`writes_during_save_stay_out`] is their version.
///
/// # Errors
/// The broken rule.
pub fn writes_during_a_held_save<S: SnapshotStrategy>() -> Result<(), Failure> {
    if S::GUARANTEE == Guarantee::PointInTime {
        return Ok(());
    }
    let rule = dump_rule::<S>();
    let dir = tempfile::tempdir().map_err(|e| fail(rule, e.to_string()))?;
    let initial = small_keyspace(20_000);
    let store = S::from_keyspace(initial.clone());
    let gate = GateIo::new();
    let held = SaveOptions { io: Arc::new(GatedIo(Arc::clone(&gate))), ..SaveOptions::default() };
    let dest = dir.path().join("dump.rdb");
    let bg = store.bgsave(&dest, &held).map_err(|e| fail(rule, format!("BGSAVE failed: {e}")))?;
    if !gate.wait_for_a_held_write(Duration::from_secs(30)) {
        gate.open();
        return Err(fail(rule, "the save never wrote through SaveOptions::io, so the test cannot hold it"));
    }
    let mut writes: Vec<Command> = Vec::new();
    for i in 0..20_000 {
        let key = format!("key:{i:07}").into_bytes();
        match i % 6 {
            0 => writes.push(Command::Del { db: 0, key }),
            3 => writes.push(Command::Set { db: 0, key, value: b"changed".to_vec(), expire_at_ms: None }),
            _ => {}
        }
    }
    for i in 0..4_000 {
        for e in ["a", "b"] {
            let key = format!("held:list:{i}").into_bytes();
            writes.push(Command::RPush { db: (i % 2) as usize, key, elements: vec![e.as_bytes().to_vec()] });
        }
    }
    for w in &writes {
        store.apply(w).map_err(|e| fail(MODEL_RULE, format!("{} refused: {e}", w.name())))?;
    }
    gate.open();
    bg.wait().map_err(|e| fail(rule, format!("BGSAVE failed: {e}")))?;
    let got = load(&dest, rule)?;
    let expected = checker::replay(&initial, &writes);
    diff(&expected, &got).map_or(Ok(()), |d| {
        Err(fail(rule, format!("the dump should hold every write issued while the save was held, once: {d}")))
    })
}

/// A key whose expiry passes while the save is in progress is still in the dump, with
/// its expiry (Redis writes such keys too; loaders drop them), and the store treats it as
/// gone for writers afterwards.
///
/// # Errors
/// The broken rule.
pub fn expiry_passing_during_save<S: SnapshotStrategy>() -> Result<(), Failure> {
    let dir = tempfile::tempdir().map_err(|e| fail(POINT_IN_TIME, e.to_string()))?;
    let initial = small_keyspace(100);
    let store = S::from_keyspace(initial.clone());
    let mut model = Model::from_keyspace(&initial);
    let at = unix_ms_now() + 40;
    let expire = Command::PExpireAt { db: 0, key: b"key:0000005".to_vec(), at_ms: at };
    let before = vec![store.apply(&expire).map_err(|e| fail(MODEL_RULE, e.to_string()))?.stamps()];
    model.apply(&expire, unix_ms_now()).map_err(|e| fail(MODEL_RULE, e))?;
    let expected = model.to_keyspace();
    let gate = GateIo::new();
    let held = SaveOptions { io: Arc::new(GatedIo(Arc::clone(&gate))), ..SaveOptions::default() };
    let dest = dir.path().join("dump.rdb");
    let bg = store.bgsave(&dest, &held).map_err(|e| fail(POINT_IN_TIME, format!("BGSAVE failed: {e}")))?;
    // Waiting for wall-clock time to pass, not for another thread.
    while unix_ms_now() <= at + 5 {
        thread::sleep(Duration::from_millis(5));
    }
    gate.open();
    let report = bg.wait().map_err(|e| fail(POINT_IN_TIME, format!("BGSAVE failed: {e}")))?;
    cut_separates(&report.cut, &before, &[], "a PEXPIREAT applied before BGSAVE")?;
    let got = load(&dest, POINT_IN_TIME)?;
    if let Some(d) = diff(&expected, &got) {
        return Err(fail(POINT_IN_TIME, format!("a key expired during the save: {d}")));
    }
    let rpush = Command::RPush { db: 0, key: b"key:0000005".to_vec(), elements: vec![b"fresh".to_vec()] };
    let accepted = store.apply(&rpush).is_ok();
    if !accepted || model.apply(&rpush, unix_ms_now()).is_err() {
        return Err(fail(
            MODEL_RULE,
            "a write to a key whose expiry had passed was refused (it should start a new key)",
        ));
    }
    diff(&model.to_keyspace(), &store.to_keyspace()).map_or(Ok(()), |d| Err(fail(MODEL_RULE, d)))
}

/// LASTSAVE is unset before the first save, moves forward on success, and the status is
/// `ok`; a save that fails (its directory does not exist) leaves LASTSAVE where it was,
/// sets the status to `err`, leaves no file, and the store serves writes.
///
/// # Errors
/// The broken rule.
pub fn lastsave_tells_the_truth<S: SnapshotStrategy>() -> Result<(), Failure> {
    let dir = tempfile::tempdir().map_err(|e| fail(LASTSAVE_RULE, e.to_string()))?;
    let store = S::from_keyspace(small_keyspace(100));
    if store.lastsave().is_some() {
        return Err(fail(LASTSAVE_RULE, "LASTSAVE is set before any save"));
    }
    let before = unix_ms_now();
    let report = store
        .save(&dir.path().join("ok.rdb"), &SaveOptions::default())
        .map_err(|e| fail(LASTSAVE_RULE, format!("SAVE failed: {e}")))?;
    let first = store.lastsave().ok_or_else(|| fail(LASTSAVE_RULE, "LASTSAVE is unset after a successful SAVE"))?;
    if first < before || first != report.finished_at_ms || store.last_save_status() != SaveStatus::Ok {
        return Err(fail(
            LASTSAVE_RULE,
            format!(
                "after a SAVE at {before}: LASTSAVE {first}, report {}, status {:?}",
                report.finished_at_ms,
                store.last_save_status()
            ),
        ));
    }
    let bad = dir.path().join("missing-dir/dump.rdb");
    let failed = store.bgsave(&bad, &SaveOptions::default()).and_then(BgSave::wait);
    if failed.is_ok() {
        return Err(fail(LASTSAVE_RULE, "a save into a missing directory reported success"));
    }
    if store.lastsave() != Some(first) || !matches!(store.last_save_status(), SaveStatus::Err(_)) || bad.exists() {
        return Err(fail(
            LASTSAVE_RULE,
            format!(
                "after a failed save: LASTSAVE {:?} (was {first}), status {:?}",
                store.lastsave(),
                store.last_save_status()
            ),
        ));
    }
    let w = Command::Set { db: 0, key: b"after".to_vec(), value: b"failure".to_vec(), expire_at_ms: None };
    store.apply(&w).map_err(|e| fail(LASTSAVE_RULE, format!("the store refused a write after a failed save: {e}")))?;
    let again = store
        .save(&dir.path().join("ok.rdb"), &SaveOptions::default())
        .map_err(|e| fail(LASTSAVE_RULE, format!("SAVE after a failure: {e}")))?;
    if store.last_save_status() != SaveStatus::Ok || store.lastsave() != Some(again.finished_at_ms) {
        return Err(fail(LASTSAVE_RULE, "the status did not return to ok after a successful save"));
    }
    let got = load(&dir.path().join("ok.rdb"), ATOMIC_RULE)?;
    if got.get(0, b"after").map(|e| &e.value) != Some(&Value::String(b"failure".to_vec())) {
        return Err(fail(SAVE_RULE, "the write made before SAVE is not in its dump"));
    }
    Ok(())
}

/// Names of the save temp files (`temp-*`) in `dir`: what a save that failed or was
/// killed must not leave behind once it is cleaned up.
///
/// # Errors
/// When `dir` cannot be read.
pub fn temp_files(dir: &Path) -> std::io::Result<Vec<String>> {
    Ok(std::fs::read_dir(dir)?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with("temp-"))
        .collect())
}

/// Disk failures at every step: an I/O error at byte `k` (a sweep of `k` over the whole
/// file: the edges, the middle, and `cfg.cases` random positions), a full disk, a failing
/// fsync, rename or directory fsync, and short writes (which must succeed). After each
/// failure the destination is byte-identical to the previous snapshot (or holds the new
/// one when the failure came after the rename), no temp file remains, the store is
/// unchanged and still serves, LASTSAVE has not moved and the status says err.
///
/// # Errors
/// The broken rule, naming the fault.
pub fn survives_io_faults<S: SnapshotStrategy>(cfg: &SuiteConfig) -> Result<(), Failure> {
    use crate::faults::{Fault, FaultyIo};
    let dir = tempfile::tempdir().map_err(|e| fail(CRASH_RULE, e.to_string()))?;
    let dest = dir.path().join("dump.rdb");
    let store = S::from_keyspace(small_keyspace(300));
    store.save(&dest, &SaveOptions::default()).map_err(|e| fail(CRASH_RULE, format!("the first SAVE failed: {e}")))?;
    let mut previous = std::fs::read(&dest).map_err(|e| fail(CRASH_RULE, e.to_string()))?;
    for i in 0..50 {
        let w = Command::Set {
            db: 0,
            key: format!("key:{i:07}").into_bytes(),
            value: b"changed".to_vec(),
            expire_at_ms: None,
        };
        store.apply(&w).map_err(|e| fail(MODEL_RULE, e.to_string()))?;
    }
    let state = store.to_keyspace();
    // The length of the file the faults will cut short.
    let probe = tempfile::tempdir().map_err(|e| fail(CRASH_RULE, e.to_string()))?;
    let len = store
        .save(&probe.path().join("dump.rdb"), &SaveOptions::default())
        .map_err(|e| fail(CRASH_RULE, e.to_string()))?
        .bytes;
    let mut lastsave = store.lastsave();

    let mut faults = vec![Fault::ShortWrites, Fault::Fsync, Fault::Rename, Fault::DirFsync, Fault::NoSpaceAt(len / 3)];
    faults.extend([0, 1, 9, len / 2, len - 9, len - 8, len - 1].map(Fault::IoErrorAt));
    let mut rng = ChaCha8Rng::seed_from_u64(u64::from(cfg.cases) ^ cfg.seed);
    faults.extend((0..cfg.cases).map(|_| Fault::IoErrorAt(rng.random_range(0..len))));

    for fault in faults {
        let opts = SaveOptions { io: Arc::new(FaultyIo::new(fault)), ..SaveOptions::default() };
        let result = store.bgsave(&dest, &opts).and_then(BgSave::wait);
        let what = |d: String| fail(CRASH_RULE, format!("with {fault:?}: {d}"));
        match (&result, fault.fails_the_save()) {
            (Ok(_), true) => return Err(what("the save reported success".into())),
            (Err(e), false) => return Err(what(format!("the save failed: {e}"))),
            _ => {}
        }
        let now = std::fs::read(&dest).map_err(|e| what(format!("the destination is gone: {e}")))?;
        if fault.fails_the_save() && !fault.after_rename() {
            if now != previous {
                return Err(what("the destination is not the previous snapshot".into()));
            }
            if store.lastsave() != lastsave {
                return Err(what(format!("LASTSAVE moved from {lastsave:?} to {:?}", store.lastsave())));
            }
        } else {
            let got = aof::load(now.as_slice())
                .map(|(ks, _)| ks)
                .map_err(|e| what(format!("the new snapshot does not load: {e}")))?;
            if let Some(d) = diff(&state, &got) {
                return Err(what(format!("the new snapshot: {d}")));
            }
            previous = now;
            if !fault.fails_the_save() {
                lastsave = store.lastsave();
            }
        }
        match (store.last_save_status(), fault.fails_the_save()) {
            (SaveStatus::Err(_), true) | (SaveStatus::Ok, false) => {}
            (status, _) => return Err(what(format!("the last-save status is {status:?}"))),
        }
        let left = temp_files(dir.path()).unwrap_or_default();
        if !left.is_empty() {
            return Err(what(format!("temp files left behind: {left:?}")));
        }
        if let Some(d) = diff(&state, &store.to_keyspace()) {
            return Err(what(format!("the store changed: {d}")));
        }
    }
    let w = Command::Set { db: 0, key: b"still".to_vec(), value: b"serving".to_vec(), expire_at_ms: None };
    store.apply(&w).map_err(|e| fail(CRASH_RULE, format!("the store refuses writes after the faults: {e}")))?;
    match store.get(0, b"still") {
        Some(e) if e.value == Value::String(b"serving".to_vec()) => Ok(()),
        other => Err(fail(CRASH_RULE, format!("a write after the faults reads back as {other:?}"))),
    }
}

/// Defines a module `$name` with one `#[test]` per conformance check for strategy `$ty`,
/// so failures read `clone::bgsave_is_point_in_time`.
#[macro_export]
macro_rules! conformance_suite {
    ($name:ident, $ty:ty) => {
        mod $name {
            use $crate::conformance as c;

            fn cfg() -> c::SuiteConfig {
                c::SuiteConfig::from_env(stringify!($name))
            }

            fn ok(r: Result<(), c::Failure>) {
                if let Err(f) = r {
                    panic!("{}: {f}", <$ty as $crate::snaplab_core::SnapshotStrategy>::NAME);
                }
            }

            /// BGSAVE under 2, 4 and 8 concurrent writers over 100,000 keys is a true point-in-time snapshot.
            #[test]
            fn bgsave_is_point_in_time() {
                ok(c::bgsave_is_point_in_time::<$ty>(&cfg()));
            }

            /// Random writes, SAVEs and BGSAVEs: every dump and the store match the reference model.
            #[test]
            fn matches_the_reference_model() {
                ok(c::matches_the_reference_model::<$ty>(&cfg()));
            }

            /// A BGSAVE or SAVE during a running BGSAVE is refused and changes nothing.
            #[test]
            fn overlapping_bgsave_is_refused() {
                ok(c::overlapping_bgsave_is_refused::<$ty>());
            }

            /// Deletes, updates and table-resizing growth after the cut stay out of the dump.
            #[test]
            fn writes_during_save_stay_out() {
                ok(c::writes_during_save_stay_out::<$ty>());
            }

            /// Writes while the save is held mid-file are each in a dump at the log's close once (AtLogClose strategies only).
            #[test]
            fn writes_during_a_held_save() {
                ok(c::writes_during_a_held_save::<$ty>());
            }

            /// A key whose expiry passes mid-save is still in the dump, with its expiry.
            #[test]
            fn expiry_passing_during_save() {
                ok(c::expiry_passing_during_save::<$ty>());
            }

            /// LASTSAVE and the status move only on success; a failed save changes nothing else.
            #[test]
            fn lastsave_tells_the_truth() {
                ok(c::lastsave_tells_the_truth::<$ty>());
            }

            /// A disk failing at any byte or step leaves the previous snapshot and a serving store.
            #[test]
            fn io_faults_leave_the_previous_snapshot() {
                ok(c::survives_io_faults::<$ty>(&cfg()));
            }
        }
    };
}
