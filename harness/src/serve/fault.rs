//! Wrong-on-purpose servers: a strategy served with one deliberate bug, so a test can prove
//! that a check made through the socket (the comparison's black-box verification) catches
//! a dump that is not point-in-time. Reached by `snaplab serve --fault NAME` (a hidden
//! flag) and `snaplab compare --serve-fault NAME`; never on by default.

use std::path::Path;
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use snaplab_core::{
    Applied, BgSave, Command, CommandError, Cut, Entry, Guarantee, Keyspace, LogClose, SaveError, SaveOptions,
    SaveReport, SaveStatus,
};

use crate::registry::DynStrategy;

/// A deliberate bug in the served store.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ServeFault {
    /// BGSAVE replies at once but takes its snapshot [`LATE_CUT`] later (a blocking SAVE
    /// then), so the dump holds writes that started after BGSAVE returned.
    LateCut,
}

/// How long after BGSAVE's reply the late cut is taken.
pub const LATE_CUT: Duration = Duration::from_millis(200);

impl ServeFault {
    /// The store with the fault added.
    pub fn wrap(self, store: Arc<dyn DynStrategy>) -> Arc<dyn DynStrategy> {
        match self {
            ServeFault::LateCut => Arc::new(LateCut { inner: store }),
        }
    }
}

/// [`ServeFault::LateCut`]: every method goes to the real store except `bgsave`.
struct LateCut {
    inner: Arc<dyn DynStrategy>,
}

impl DynStrategy for LateCut {
    fn name(&self) -> &'static str {
        self.inner.name()
    }
    fn apply(&self, cmd: &Command) -> Result<Applied, CommandError> {
        self.inner.apply(cmd)
    }
    fn get(&self, db: usize, key: &[u8]) -> Option<Entry> {
        self.inner.get(db, key)
    }
    fn len(&self) -> usize {
        self.inner.len()
    }
    fn to_keyspace(&self) -> Keyspace {
        self.inner.to_keyspace()
    }
    fn save(&self, dest: &Path, opts: &SaveOptions) -> Result<SaveReport, SaveError> {
        self.inner.save(dest, opts)
    }
    fn bgsave(&self, dest: &Path, opts: &SaveOptions) -> Result<BgSave, SaveError> {
        let (inner, dest, opts) = (Arc::clone(&self.inner), dest.to_path_buf(), opts.clone());
        let handle = thread::spawn(move || {
            // Wrong on purpose: writers go on meanwhile, and the snapshot includes them.
            thread::sleep(LATE_CUT);
            inner.save(&dest, &opts)
        });
        Ok(BgSave::new(Cut::single(0), Duration::ZERO, handle))
    }
    fn lastsave(&self) -> Option<i64> {
        self.inner.lastsave()
    }
    fn last_save_status(&self) -> SaveStatus {
        self.inner.last_save_status()
    }
    fn guarantee(&self) -> Guarantee {
        Guarantee::PointInTime
    }
    fn last_log_close(&self) -> Option<LogClose> {
        None
    }
}
