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

use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock, Weak};
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

struct State {
    /// Writes applied through this wrapper since it was created.
    changes: u64,
    /// `changes` at the cut of the last successful save.
    saved_changes: u64,
    last_success: Instant,
    last_failure: Option<(Instant, String)>,
    running: Option<(BgSave, u64)>,
    opts: SaveOptions,
}

/// A strategy with save rules. See the module documentation.
pub struct AutoSave<S> {
    store: Arc<S>,
    dest: PathBuf,
    rules: Vec<SaveRule>,
    retry_delay: Duration,
    /// Writers hold it shared; starting a save holds it exclusively, so the change count
    /// read then is exactly the count at the strategy's cut.
    gate: RwLock<()>,
    state: Mutex<State>,
}

impl<S: SnapshotStrategy> AutoSave<S> {
    /// `store` saving to `dest` under `rules`, retrying a failed save no sooner than
    /// `retry_delay` later (Redis waits 5 s, `CONFIG_BGSAVE_RETRY_DELAY`).
    pub fn new(store: Arc<S>, dest: PathBuf, rules: Vec<SaveRule>, retry_delay: Duration, opts: SaveOptions) -> Self {
        AutoSave {
            store,
            dest,
            rules,
            retry_delay,
            gate: RwLock::new(()),
            state: Mutex::new(State {
                changes: 0,
                saved_changes: 0,
                last_success: Instant::now(),
                last_failure: None,
                running: None,
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

    /// Writes since the cut of the last successful save (Redis `rdb_changes_since_last_save`).
    pub fn dirty(&self) -> u64 {
        let s = self.state();
        s.changes - s.saved_changes
    }

    /// Apply a write, unless rules are configured and the last save failed.
    ///
    /// # Errors
    /// [`CommandError::Misconf`] while the last save failed (Redis: "MISCONF ... Commands
    /// that may modify the data set are disabled"), or the store's own refusal; either way
    /// nothing changed.
    pub fn apply(&self, cmd: &Command) -> Result<Applied, CommandError> {
        if !self.rules.is_empty()
            && let Some((_, reason)) = &self.state().last_failure
        {
            return Err(CommandError::Misconf(reason.clone()));
        }
        let _shared = self.gate.read().unwrap_or_else(|p| p.into_inner());
        // FLUSHALL/FLUSHDB count one change per key they remove, as in Redis.
        let before = matches!(cmd, Command::FlushAll | Command::FlushDb { .. }).then(|| self.store.len());
        let applied = self.store.apply(cmd)?;
        let n = before.map_or(1, |b| (b - self.store.len().min(b)).max(1) as u64);
        self.state().changes += n;
        Ok(applied)
    }

    /// Wait for the running save, if any, and record its outcome as of `now` (for shutdown,
    /// and for tests that must not race the save).
    pub fn finish(&self, now: Instant) -> Option<Result<SaveReport, SaveError>> {
        let (bg, changes_at_cut) = self.state().running.take()?;
        let result = bg.wait();
        let mut s = self.state();
        match &result {
            Ok(_) => {
                // Only the writes after this save's cut remain unsaved.
                s.saved_changes = changes_at_cut;
                s.last_success = now;
                s.last_failure = None;
            }
            Err(e) => s.last_failure = Some((now, e.to_string())),
        }
        Some(result)
    }

    /// Run the rules at time `now`: collect a finished save, or start one if a rule is met
    /// (and, after a failure, the retry delay has passed).
    pub fn tick(&self, now: Instant) -> Tick {
        let s = self.state();
        if let Some((bg, _)) = &s.running {
            if !bg.is_finished() {
                return Tick::Running;
            }
            drop(s);
            return self.finish(now).map_or(Tick::Idle, Tick::Finished);
        }
        let dirty = s.changes - s.saved_changes;
        let since = now.saturating_duration_since(s.last_success);
        let due = self.rules.iter().any(|r| dirty >= r.changes && since >= r.after);
        let retry_ok =
            s.last_failure.as_ref().is_none_or(|(at, _)| now.saturating_duration_since(*at) >= self.retry_delay);
        if !due || !retry_ok {
            return Tick::Idle;
        }
        let opts = s.opts.clone();
        drop(s);
        // Exclusive: no write is between the store and the counter while the cut is taken.
        let _exclusive = self.gate.write().unwrap_or_else(|p| p.into_inner());
        let changes_at_cut = self.state().changes;
        match self.store.bgsave(&self.dest, &opts) {
            Ok(bg) => {
                self.state().running = Some((bg, changes_at_cut));
                Tick::Started
            }
            Err(e) => {
                self.state().last_failure = Some((now, e.to_string()));
                Tick::Finished(Err(e))
            }
        }
    }

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
