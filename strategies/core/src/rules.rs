//! Save rules, as in Redis's `save <seconds> <changes>`: snapshot automatically when
//! enough writes have happened for long enough, retry a failed save after a delay, and
//! refuse writes while the last save failed (Redis's MISCONF), so that a disk that keeps
//! failing cannot silently grow the amount of data a crash would lose.
//!
//! [`AutoSave`] wraps any strategy. Its change counter counts only writes made after the
//! cut of the last successful save: when a save succeeds, the writes before its cut are
//! subtracted (Redis's `dirty -= dirty_before_bgsave`). Redis kept one signed counter and
//! let `FLUSHALL` reset it to 0 mid-save, so the subtraction made it -1; here the counter is
//! the difference of two monotonic counts, which cannot go negative.
//!
//! Time is passed in ([`AutoSave::tick`]), so tests drive the rules without sleeping;
//! [`AutoSave::spawn_ticker`] runs them on a thread in production.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, RwLock, Weak};
use std::thread;
use std::time::{Duration, Instant};

use crate::command::{Command, CommandError};
use crate::strategy::{Applied, BgSave, SaveError, SaveOptions, SaveReport, SnapshotStrategy};

/// One rule: save if at least `changes` writes happened and `after` has passed since the
/// last successful save (Redis `save <seconds> <changes>`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SaveRule {
    /// Time since the last successful save.
    pub after: Duration,
    /// Writes since the last successful save's cut.
    pub changes: u64,
}

/// Parse Redis's `save` directive value: pairs of seconds and changes, e.g.
/// `"900 1 300 10 60 10000"` (Redis's defaults). An empty string means no rules.
///
/// # Errors
/// A message when the value is not pairs of non-negative integers.
pub fn parse_rules(s: &str) -> Result<Vec<SaveRule>, String> {
    let nums: Vec<u64> = s
        .split_whitespace()
        .map(|n| n.parse::<u64>().map_err(|_| format!("'{n}' in save rules is not a non-negative integer")))
        .collect::<Result<_, _>>()?;
    if !nums.len().is_multiple_of(2) {
        return Err(format!("save rules come in pairs of <seconds> <changes>, got {} numbers", nums.len()));
    }
    Ok(nums.chunks(2).map(|p| SaveRule { after: Duration::from_secs(p[0]), changes: p[1] }).collect())
}

/// What [`AutoSave`] needs of a store: the writes, the key count and the two saves. Every
/// [`SnapshotStrategy`] has it; a store behind a trait object (a server choosing its
/// strategy by name) implements it by forwarding.
pub trait SaveTarget: Send + Sync {
    /// As [`SnapshotStrategy::apply`].
    ///
    /// # Errors
    /// As [`SnapshotStrategy::apply`].
    fn apply(&self, cmd: &Command) -> Result<Applied, CommandError>;
    /// As [`SnapshotStrategy::len`].
    fn len(&self) -> usize;
    /// Whether the store holds no keys.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// As [`SnapshotStrategy::save`].
    ///
    /// # Errors
    /// As [`SnapshotStrategy::save`].
    fn save(&self, dest: &Path, opts: &SaveOptions) -> Result<SaveReport, SaveError>;
    /// As [`SnapshotStrategy::bgsave`].
    ///
    /// # Errors
    /// As [`SnapshotStrategy::bgsave`].
    fn bgsave(&self, dest: &Path, opts: &SaveOptions) -> Result<BgSave, SaveError>;
}

impl<S: SnapshotStrategy> SaveTarget for S {
    fn apply(&self, cmd: &Command) -> Result<Applied, CommandError> {
        SnapshotStrategy::apply(self, cmd)
    }
    fn len(&self) -> usize {
        SnapshotStrategy::len(self)
    }
    fn save(&self, dest: &Path, opts: &SaveOptions) -> Result<SaveReport, SaveError> {
        SnapshotStrategy::save(self, dest, opts)
    }
    fn bgsave(&self, dest: &Path, opts: &SaveOptions) -> Result<BgSave, SaveError> {
        SnapshotStrategy::bgsave(self, dest, opts)
    }
}

/// What a [`AutoSave::tick`] did.
#[derive(Debug)]
pub enum Tick {
    /// Nothing was due.
    Idle,
    /// A rule was met and a background save started.
    Started,
    /// A background save finished.
    Finished(Result<SaveReport, SaveError>),
    /// A save is running.
    Running,
}

/// The save figures Redis's `INFO persistence` prints, as of one moment.
#[derive(Clone, Debug)]
pub struct SaveInfo {
    /// Writes since the cut of the last successful save (`rdb_changes_since_last_save`).
    pub dirty: u64,
    /// Whether a background save is running (`rdb_bgsave_in_progress`).
    pub in_progress: bool,
    /// Seconds the last background save took, `-1` if none ran (`rdb_last_bgsave_time_sec`).
    pub last_bgsave_time_sec: i64,
    /// Seconds the running background save has taken so far, `-1` if none runs
    /// (`rdb_current_bgsave_time_sec`).
    pub current_bgsave_time_sec: i64,
    /// Why the last save failed, `None` after a success (`rdb_last_bgsave_status:err`).
    pub last_failure: Option<String>,
    /// The report of the last successful save, for the strategy's own figures.
    pub last_report: Option<SaveReport>,
    /// Whether a `BGSAVE SCHEDULE` waits for the running save to end.
    pub scheduled: bool,
}

struct State {
    /// [`AutoSave::changes`] at the cut of the last successful save.
    saved_changes: u64,
    last_success: Instant,
    last_failure: Option<(Instant, String)>,
    /// The save in flight, the change count at its cut, and when it started.
    running: Option<(BgSave, u64, Instant)>,
    /// When the save that [`AutoSave::finish`] has taken out of `running` started, while
    /// it waits for that save and records its outcome: the save is still in progress to
    /// every reader until its outcome is recorded, so `INFO` never shows "no save running"
    /// together with the status of the save before it.
    collecting: Option<Instant>,
    /// A `BGSAVE SCHEDULE` is waiting for the running save to end.
    scheduled: bool,
    last_bgsave_time: Option<Duration>,
    last_report: Option<SaveReport>,
    rules: Vec<SaveRule>,
    dest: PathBuf,
    opts: SaveOptions,
}

/// A strategy with save rules. See the module documentation.
pub struct AutoSave<S: ?Sized> {
    store: Arc<S>,
    retry_delay: Duration,
    /// Writers hold it shared; starting a save holds it exclusively, so the change count
    /// read then is exactly the count at the strategy's cut.
    gate: RwLock<()>,
    /// Writes applied through this wrapper since it was created. An atomic, not a field of
    /// `state`, so that a write takes no mutex every other writer also takes: it is added
    /// to while `gate` is held shared, so a save holding `gate` exclusively reads the
    /// exact count at its cut.
    changes: AtomicU64,
    /// Whether writes are refused (rules set and the last save failed): [`State::refusing`],
    /// kept here for the same reason, updated under `state` whenever either changes.
    refusing: AtomicBool,
    state: Mutex<State>,
    /// Signalled when [`AutoSave::finish`] has recorded a save's outcome, for a second
    /// `finish` that found the save already being collected.
    collected: Condvar,
}

impl<S: SaveTarget + ?Sized> AutoSave<S> {
    /// `store` saving to `dest` under `rules`, retrying a failed save no sooner than
    /// `retry_delay` later (Redis waits 5 s, `CONFIG_BGSAVE_RETRY_DELAY`).
    pub fn new(store: Arc<S>, dest: PathBuf, rules: Vec<SaveRule>, retry_delay: Duration, opts: SaveOptions) -> Self {
        AutoSave {
            store,
            retry_delay,
            gate: RwLock::new(()),
            collected: Condvar::new(),
            changes: AtomicU64::new(0),
            refusing: AtomicBool::new(false),
            state: Mutex::new(State {
                saved_changes: 0,
                last_success: Instant::now(),
                last_failure: None,
                running: None,
                collecting: None,
                scheduled: false,
                last_bgsave_time: None,
                last_report: None,
                rules,
                dest,
                opts,
            }),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The wrapped store (reads go straight to it).
    pub fn store(&self) -> &Arc<S> {
        &self.store
    }

    /// Replace the save options (e.g. the I/O layer) for later saves.
    pub fn set_save_options(&self, opts: SaveOptions) {
        self.state().opts = opts;
    }

    /// The rules in force.
    pub fn rules(&self) -> Vec<SaveRule> {
        self.state().rules.clone()
    }

    /// Replace the rules (Redis `CONFIG SET save`); the change counter and the time of the
    /// last save carry over, as in Redis.
    pub fn set_rules(&self, rules: Vec<SaveRule>) {
        let mut s = self.state();
        s.rules = rules;
        self.refusing.store(s.refusing(), Ordering::Release);
    }

    /// Where saves write.
    pub fn dest(&self) -> PathBuf {
        self.state().dest.clone()
    }

    /// Change where later saves write (Redis `CONFIG SET dir` / `dbfilename`).
    pub fn set_dest(&self, dest: PathBuf) {
        self.state().dest = dest;
    }

    /// Writes since the cut of the last successful save (Redis `rdb_changes_since_last_save`).
    pub fn dirty(&self) -> u64 {
        let s = self.state();
        self.changes.load(Ordering::Acquire) - s.saved_changes
    }

    /// The figures of `INFO persistence` as of `now`.
    pub fn info(&self, now: Instant) -> SaveInfo {
        let s = self.state();
        let secs = |d: Duration| d.as_secs() as i64;
        SaveInfo {
            dirty: self.changes.load(Ordering::Acquire) - s.saved_changes,
            in_progress: s.busy().is_some(),
            last_bgsave_time_sec: s.last_bgsave_time.map_or(-1, secs),
            current_bgsave_time_sec: s.busy().map_or(-1, |at| secs(now.saturating_duration_since(at))),
            last_failure: s.last_failure.as_ref().map(|(_, why)| why.clone()),
            last_report: s.last_report.clone(),
            scheduled: s.scheduled,
        }
    }

    /// Apply a write, unless rules are configured and the last save failed.
    ///
    /// # Errors
    /// [`CommandError::Misconf`] while the last save failed (Redis: "MISCONF ... Commands
    /// that may modify the data set are disabled"), or the store's own refusal; either way
    /// nothing changed.
    pub fn apply(&self, cmd: &Command) -> Result<Applied, CommandError> {
        // The flag first, so a write takes the state's mutex only while writes are refused.
        if self.refusing.load(Ordering::Acquire) {
            let s = self.state();
            if s.refusing()
                && let Some((_, reason)) = &s.last_failure
            {
                return Err(CommandError::Misconf(reason.clone()));
            }
        }
        let _shared = self.gate.read().unwrap_or_else(|p| p.into_inner());
        // FLUSHALL/FLUSHDB count one change per key they remove, as in Redis.
        let before = matches!(cmd, Command::FlushAll | Command::FlushDb { .. }).then(|| self.store.len());
        let applied = self.store.apply(cmd)?;
        let n = before.map_or(1, |b| (b - self.store.len().min(b)).max(1) as u64);
        self.changes.fetch_add(n, Ordering::AcqRel);
        Ok(applied)
    }

    /// Wait for the running save, if any, and record its outcome as of `now` (for shutdown,
    /// and for tests that must not race the save).
    pub fn finish(&self, now: Instant) -> Option<Result<SaveReport, SaveError>> {
        let (bg, changes_at_cut, started) = {
            let mut s = self.state();
            // Another caller is collecting the save: wait for its outcome to be recorded,
            // so that what follows (a shutdown's own save) finds no save in progress.
            while s.running.is_none() && s.collecting.is_some() {
                s = self.collected.wait(s).unwrap_or_else(|p| p.into_inner());
            }
            let running = s.running.take()?;
            s.collecting = Some(running.2);
            running
        };
        let result = bg.wait();
        let mut s = self.state();
        s.collecting = None;
        s.last_bgsave_time = Some(now.saturating_duration_since(started));
        s.record(&result, changes_at_cut, now);
        self.refusing.store(s.refusing(), Ordering::Release);
        drop(s);
        self.collected.notify_all();
        Some(result)
    }

    /// Run the rules at time `now`: collect a finished save, or start one if a rule is met
    /// (and, after a failure, the retry delay has passed), or if a `BGSAVE SCHEDULE` waits.
    pub fn tick(&self, now: Instant) -> Tick {
        let s = self.state();
        if let Some((bg, _, _)) = &s.running {
            if !bg.is_finished() {
                return Tick::Running;
            }
            drop(s);
            return self.finish(now).map_or(Tick::Idle, Tick::Finished);
        }
        if s.collecting.is_some() {
            return Tick::Running;
        }
        let dirty = self.changes.load(Ordering::Acquire) - s.saved_changes;
        let since = now.saturating_duration_since(s.last_success);
        let due = s.rules.iter().any(|r| dirty >= r.changes && since >= r.after);
        let retry_ok =
            s.last_failure.as_ref().is_none_or(|(at, _)| now.saturating_duration_since(*at) >= self.retry_delay);
        if !(s.scheduled || (due && retry_ok)) {
            return Tick::Idle;
        }
        drop(s);
        match self.start(now) {
            Ok(()) => Tick::Started,
            Err(e) => Tick::Finished(Err(e)),
        }
    }

    /// Start a background save now, whatever the rules say (Redis `BGSAVE`). Its outcome
    /// is recorded by a later [`AutoSave::tick`] or [`AutoSave::finish`].
    ///
    /// # Errors
    /// [`SaveError::InProgress`] if a save is running (nothing changes), or the store's
    /// failure to start, which is recorded as the last save's failure.
    pub fn bgsave(&self, now: Instant) -> Result<(), SaveError> {
        if self.state().busy().is_some() {
            return Err(SaveError::InProgress);
        }
        self.start(now)
    }

    /// Ask for a background save as soon as the running one ends (Redis `BGSAVE SCHEDULE`);
    /// start it now if none runs. Returns whether it started now.
    ///
    /// # Errors
    /// As [`AutoSave::bgsave`], when it starts now.
    pub fn schedule(&self, now: Instant) -> Result<bool, SaveError> {
        {
            let mut s = self.state();
            if s.busy().is_some() {
                s.scheduled = true;
                return Ok(false);
            }
        }
        self.start(now).map(|()| true)
    }

    /// Save now and return when the file is in place (Redis `SAVE`). Writers through this
    /// wrapper wait for the whole save, as every Redis client does during `SAVE`.
    ///
    /// # Errors
    /// [`SaveError::InProgress`] if a background save is running, or the save's failure
    /// (recorded as the last save's failure).
    pub fn save(&self, now: Instant) -> Result<SaveReport, SaveError> {
        let _exclusive = self.gate.write().unwrap_or_else(|p| p.into_inner());
        let (dest, opts, changes_at_cut) = {
            let s = self.state();
            if s.busy().is_some() {
                return Err(SaveError::InProgress);
            }
            (s.dest.clone(), s.opts.clone(), self.changes.load(Ordering::Acquire))
        };
        let result = self.store.save(&dest, &opts);
        let mut s = self.state();
        s.record(&result, changes_at_cut, now);
        self.refusing.store(s.refusing(), Ordering::Release);
        result
    }

    fn start(&self, now: Instant) -> Result<(), SaveError> {
        // Exclusive: no write is between the store and the counter while the cut is taken.
        let _exclusive = self.gate.write().unwrap_or_else(|p| p.into_inner());
        let (dest, opts, changes_at_cut) = {
            let mut s = self.state();
            if s.busy().is_some() {
                return Err(SaveError::InProgress);
            }
            s.scheduled = false;
            (s.dest.clone(), s.opts.clone(), self.changes.load(Ordering::Acquire))
        };
        match self.store.bgsave(&dest, &opts) {
            Ok(bg) => {
                self.state().running = Some((bg, changes_at_cut, now));
                Ok(())
            }
            Err(e) => {
                let mut s = self.state();
                s.last_failure = Some((now, e.to_string()));
                self.refusing.store(s.refusing(), Ordering::Release);
                Err(e)
            }
        }
    }
}

impl<S: SaveTarget + ?Sized + 'static> AutoSave<S> {
    /// Run [`AutoSave::tick`] every `every` on a thread, until the `AutoSave` is dropped.
    pub fn spawn_ticker(self: &Arc<Self>, every: Duration) -> thread::JoinHandle<()> {
        let weak: Weak<Self> = Arc::downgrade(self);
        thread::spawn(move || {
            while let Some(auto) = weak.upgrade() {
                auto.tick(Instant::now());
                drop(auto);
                // A timer, by design: the rules are about elapsed time.
                thread::sleep(every);
            }
        })
    }
}

impl State {
    /// Whether writes are refused: save rules are set and the last save failed (Redis's
    /// `stop-writes-on-bgsave-error`, which applies only when saving is configured).
    fn refusing(&self) -> bool {
        !self.rules.is_empty() && self.last_failure.is_some()
    }

    /// When the save in progress started, if one is: running, or being collected.
    fn busy(&self) -> Option<Instant> {
        self.running.as_ref().map(|(_, _, at)| *at).or(self.collecting)
    }

    /// Record a finished save whose cut came after `changes_at_cut` changes.
    fn record(&mut self, result: &Result<SaveReport, SaveError>, changes_at_cut: u64, now: Instant) {
        match result {
            Ok(report) => {
                // Only the writes after this save's cut remain unsaved.
                self.saved_changes = changes_at_cut;
                self.last_success = now;
                self.last_failure = None;
                self.last_report = Some(report.clone());
            }
            Err(e) => self.last_failure = Some((now, e.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Redis's default directive parses into its three rules; odd counts are refused.
    #[test]
    fn parses_redis_rules() {
        let r = parse_rules("900 1 300 10 60 10000").unwrap();
        assert_eq!(r[2], SaveRule { after: Duration::from_secs(60), changes: 10000 });
        assert!(parse_rules("").unwrap().is_empty());
        assert!(parse_rules("900").is_err());
        assert!(parse_rules("900 -1").is_err());
    }
}
