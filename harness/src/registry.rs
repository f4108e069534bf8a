//! Strategies by name, behind an object-safe mirror of [`SnapshotStrategy`].
//!
//! The trait has an associated constant and a constructor, so it cannot be a trait
//! object; [`DynStrategy`] is the same behaviour with `&self` methods only, implemented
//! for every strategy. The facade crate lists the strategies (`snaplab::registry()`),
//! so adding one is one new crate and one line there.

use std::path::Path;
use std::sync::Arc;

use snaplab_core::{
    Applied, BgSave, Command, CommandError, Entry, Guarantee, Keyspace, LogClose, RdbError, SaveError, SaveOptions,
    SaveReport, SaveStatus, SnapshotStrategy,
};

/// [`SnapshotStrategy`] as a trait object.
pub trait DynStrategy: Send + Sync {
    /// The strategy's `NAME`.
    fn name(&self) -> &'static str;
    /// See [`SnapshotStrategy::apply`].
    ///
    /// # Errors
    /// As [`SnapshotStrategy::apply`].
    fn apply(&self, cmd: &Command) -> Result<Applied, CommandError>;
    /// See [`SnapshotStrategy::get`].
    fn get(&self, db: usize, key: &[u8]) -> Option<Entry>;
    /// See [`SnapshotStrategy::len`].
    fn len(&self) -> usize;
    /// See [`SnapshotStrategy::is_empty`].
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// See [`SnapshotStrategy::to_keyspace`].
    fn to_keyspace(&self) -> Keyspace;
    /// See [`SnapshotStrategy::save`].
    ///
    /// # Errors
    /// As [`SnapshotStrategy::save`].
    fn save(&self, dest: &Path, opts: &SaveOptions) -> Result<SaveReport, SaveError>;
    /// See [`SnapshotStrategy::bgsave`].
    ///
    /// # Errors
    /// As [`SnapshotStrategy::bgsave`].
    fn bgsave(&self, dest: &Path, opts: &SaveOptions) -> Result<BgSave, SaveError>;
    /// See [`SnapshotStrategy::lastsave`].
    fn lastsave(&self) -> Option<i64>;
    /// See [`SnapshotStrategy::last_save_status`].
    fn last_save_status(&self) -> SaveStatus;
    /// The strategy's [`SnapshotStrategy::GUARANTEE`].
    fn guarantee(&self) -> Guarantee;
    /// See [`SnapshotStrategy::last_log_close`].
    fn last_log_close(&self) -> Option<LogClose>;
}

impl<S: SnapshotStrategy> DynStrategy for S {
    fn name(&self) -> &'static str {
        S::NAME
    }
    fn apply(&self, cmd: &Command) -> Result<Applied, CommandError> {
        SnapshotStrategy::apply(self, cmd)
    }
    fn get(&self, db: usize, key: &[u8]) -> Option<Entry> {
        SnapshotStrategy::get(self, db, key)
    }
    fn len(&self) -> usize {
        SnapshotStrategy::len(self)
    }
    fn to_keyspace(&self) -> Keyspace {
        SnapshotStrategy::to_keyspace(self)
    }
    fn save(&self, dest: &Path, opts: &SaveOptions) -> Result<SaveReport, SaveError> {
        SnapshotStrategy::save(self, dest, opts)
    }
    fn bgsave(&self, dest: &Path, opts: &SaveOptions) -> Result<BgSave, SaveError> {
        SnapshotStrategy::bgsave(self, dest, opts)
    }
    fn lastsave(&self) -> Option<i64> {
        SnapshotStrategy::lastsave(self)
    }
    fn last_save_status(&self) -> SaveStatus {
        SnapshotStrategy::last_save_status(self)
    }
    fn guarantee(&self) -> Guarantee {
        S::GUARANTEE
    }
    fn last_log_close(&self) -> Option<LogClose> {
        SnapshotStrategy::last_log_close(self)
    }
}

/// One registered strategy.
#[derive(Clone, Copy)]
pub struct StrategyEntry {
    /// Its canonical id.
    pub name: &'static str,
    /// One line for `snaplab strategies`.
    pub about: &'static str,
    /// Build a store holding a keyspace.
    pub build: fn(Keyspace) -> Arc<dyn DynStrategy>,
    /// Load a store from a dump the strategy's own way ([`SnapshotStrategy::load`]: the
    /// pipelined loader, into its own layout for strategies that have one).
    pub load: fn(&Path) -> Result<Arc<dyn DynStrategy>, RdbError>,
}

/// The registry entry for strategy `S`.
pub fn entry<S: SnapshotStrategy>(about: &'static str) -> StrategyEntry {
    StrategyEntry {
        name: S::NAME,
        about,
        build: |ks| Arc::new(S::from_keyspace(ks)),
        load: |path| Ok(Arc::new(S::load(path)?)),
    }
}

/// All registered strategies, in display order.
#[derive(Clone)]
pub struct Registry {
    entries: Vec<StrategyEntry>,
}

impl Registry {
    /// A registry of these entries.
    pub fn new(entries: Vec<StrategyEntry>) -> Self {
        Registry { entries }
    }

    /// Every entry.
    pub fn entries(&self) -> &[StrategyEntry] {
        &self.entries
    }

    /// Every name, comma-separated (for messages).
    pub fn names(&self) -> String {
        self.entries.iter().map(|e| e.name).collect::<Vec<_>>().join(", ")
    }

    /// The entry called `name`.
    ///
    /// # Errors
    /// A message listing the known names.
    pub fn get(&self, name: &str) -> Result<StrategyEntry, String> {
        self.entries
            .iter()
            .find(|e| e.name == name)
            .copied()
            .ok_or_else(|| format!("unknown strategy '{name}' (known: {})", self.names()))
    }
}
