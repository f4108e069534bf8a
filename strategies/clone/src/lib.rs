#![doc = include_str!("../README.md")]

use std::path::Path;
use std::sync::Arc;
use std::thread;
use std::time::Instant;

use snaplab_core::{
    Applied, BgSave, Command, CommandError, Entry, Keyspace, LockedKeyspace, SaveError, SaveOptions, SaveReport,
    SaveState, SaveStatus, SnapshotStrategy, unix_ms_now, write_snapshot,
};

struct Inner {
    /// The keyspace and its write count behind one `RwLock`: the count read under the lock
    /// is exactly the cut.
    store: LockedKeyspace,
    saves: Arc<SaveState>,
}

/// A store whose background saves deep-clone the keyspace under the lock and serialize
/// the clone on another thread.
///
/// Cheap to clone: clones share the same store.
#[derive(Clone)]
pub struct CloneThenSerialize {
    inner: Arc<Inner>,
}

impl SnapshotStrategy for CloneThenSerialize {
    const NAME: &'static str = "clone";

    fn from_keyspace(keyspace: Keyspace) -> Self {
        CloneThenSerialize { inner: Arc::new(Inner { store: LockedKeyspace::new(keyspace), saves: SaveState::new() }) }
    }

    fn apply(&self, cmd: &Command) -> Result<Applied, CommandError> {
        self.inner.store.apply(cmd)
    }

    fn get(&self, db: usize, key: &[u8]) -> Option<Entry> {
        self.inner.store.get(db, key)
    }

    fn len(&self) -> usize {
        self.inner.store.len()
    }

    fn to_keyspace(&self) -> Keyspace {
        self.inner.store.to_keyspace()
    }

    /// SAVE is BGSAVE plus waiting: the caller blocks, writers only wait for the clone.
    fn save(&self, dest: &Path, opts: &SaveOptions) -> Result<SaveReport, SaveError> {
        self.bgsave(dest, opts)?.wait()
    }

    // ANCHOR: bgsave
    fn bgsave(&self, dest: &Path, opts: &SaveOptions) -> Result<BgSave, SaveError> {
        // EXERCISE 05-clone BEGIN
        let ticket = self.inner.saves.begin()?;
        let started = Instant::now();
        // The read lock keeps writers out while we copy, so the copy is one instant's state.
        let store = self.inner.store.read();
        let frozen = store.keyspace.clone();
        let cut = store.cut();
        // Writers may go on from here; the copy no longer shares anything with the store.
        drop(store);
        let time_to_cut = started.elapsed();

        let (dest, opts, report_cut) = (dest.to_path_buf(), opts.clone(), cut.clone());
        let handle = thread::Builder::new()
            .name("clone-save".into())
            .spawn(move || {
                let written = write_snapshot(&frozen, &dest, &opts, Self::NAME);
                let cloned_bytes = frozen.heap_bytes() as u64;
                // Freeing a million-key copy takes a while and is part of this design's cost,
                // so it happens before the duration is measured.
                drop(frozen);
                let result = written.map(|stats| SaveReport {
                    strategy: Self::NAME,
                    path: dest.clone(),
                    cut: report_cut,
                    time_to_cut,
                    duration: started.elapsed(),
                    bytes: stats.bytes,
                    keys: stats.keys,
                    finished_at_ms: unix_ms_now(),
                    figures: vec![("clone_us", time_to_cut.as_micros() as u64), ("cloned_bytes", cloned_bytes)],
                });
                ticket.finish(result)
            })
            .map_err(|e| SaveError::Aborted(format!("could not start the save thread: {e}")))?;
        Ok(BgSave::new(cut, time_to_cut, handle))
        // EXERCISE 05-clone END
    }
    // ANCHOR_END: bgsave

    fn lastsave(&self) -> Option<i64> {
        self.inner.saves.lastsave()
    }

    fn last_save_status(&self) -> SaveStatus {
        self.inner.saves.status()
    }
}
