#![doc = include_str!("../README.md")]

use std::path::Path;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::thread;
use std::time::Instant;

use snaplab_core::{
    Applied, BgSave, Command, CommandError, Cut, Entry, Keyspace, SaveError, SaveOptions, SaveReport, SaveState,
    SaveStatus, SnapshotStrategy, WriteStamp, unix_ms_now, write_snapshot,
};

/// The keyspace and the number of writes applied to it, guarded together so that the
/// count read under the lock is exactly the cut.
struct Store {
    keyspace: Keyspace,
    writes: u64,
}

struct Inner {
    store: RwLock<Store>,
    saves: Arc<SaveState>,
}

/// A store whose background saves deep-clone the keyspace under the lock and serialize
/// the clone on another thread (seed 000's design).
///
/// Cheap to clone: clones share the same store.
#[derive(Clone)]
pub struct CloneThenSerialize {
    inner: Arc<Inner>,
}

impl CloneThenSerialize {
    fn read(&self) -> RwLockReadGuard<'_, Store> {
        // Commands validate before mutating, so a poisoned lock still guards a whole keyspace.
        self.inner.store.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, Store> {
        self.inner.store.write().unwrap_or_else(|p| p.into_inner())
    }
}

impl SnapshotStrategy for CloneThenSerialize {
    const NAME: &'static str = "clone";

    fn from_keyspace(keyspace: Keyspace) -> Self {
        CloneThenSerialize {
            inner: Arc::new(Inner { store: RwLock::new(Store { keyspace, writes: 0 }), saves: SaveState::new() }),
        }
    }

    fn apply(&self, cmd: &Command) -> Result<Applied, CommandError> {
        let mut store = self.write();
        let reply = store.keyspace.apply(cmd, unix_ms_now())?;
        store.writes += 1;
        Ok(Applied { reply, stamp: WriteStamp { shard: 0, seq: store.writes } })
    }

    fn get(&self, db: usize, key: &[u8]) -> Option<Entry> {
        self.read().keyspace.get(db, key).filter(|e| !e.is_expired(unix_ms_now())).cloned()
    }

    fn len(&self) -> usize {
        self.read().keyspace.len()
    }

    fn to_keyspace(&self) -> Keyspace {
        self.read().keyspace.clone()
    }

    /// SAVE is BGSAVE plus waiting: the caller blocks, writers only wait for the clone.
    fn save(&self, dest: &Path, opts: &SaveOptions) -> Result<SaveReport, SaveError> {
        self.bgsave(dest, opts)?.wait()
    }

    fn bgsave(&self, dest: &Path, opts: &SaveOptions) -> Result<BgSave, SaveError> {
        let ticket = self.inner.saves.begin()?;
        let started = Instant::now();
        // The read lock keeps writers out while we copy, so the copy is one instant's state.
        let store = self.read();
        let frozen = store.keyspace.clone();
        let cut = Cut::single(store.writes);
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
    }

    fn lastsave(&self) -> Option<i64> {
        self.inner.saves.lastsave()
    }

    fn last_save_status(&self) -> SaveStatus {
        self.inner.saves.status()
    }
}
