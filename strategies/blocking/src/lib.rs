#![doc = include_str!("../README.md")]

use std::path::Path;
use std::sync::mpsc;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::thread;
use std::time::{Duration, Instant};

use snaplab_core::{
    Applied, BgSave, Command, CommandError, Cut, Entry, Keyspace, SaveError, SaveOptions, SaveReport, SaveState,
    SaveStatus, SaveTicket, SnapshotStrategy, WriteStamp, unix_ms_now, write_snapshot,
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

/// A store whose snapshots hold the write lock for the whole serialization (Redis SAVE).
///
/// Cheap to clone: clones share the same store.
#[derive(Clone)]
pub struct BlockingSave {
    inner: Arc<Inner>,
}

impl BlockingSave {
    fn read(&self) -> RwLockReadGuard<'_, Store> {
        // A writer that panicked mid-command cannot leave the keyspace half-changed
        // (commands validate before mutating), so a poisoned lock is still usable.
        self.inner.store.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, Store> {
        self.inner.store.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Serialize `store` to `dest`; the caller holds the read lock for the whole call.
    fn serialize(
        store: &Store,
        dest: &Path,
        opts: &SaveOptions,
        started: Instant,
        time_to_cut: Duration,
    ) -> Result<SaveReport, SaveError> {
        let stats = write_snapshot(&store.keyspace, dest, opts, Self::NAME)?;
        Ok(SaveReport {
            strategy: Self::NAME,
            path: dest.to_path_buf(),
            cut: Cut::single(store.writes),
            time_to_cut,
            duration: started.elapsed(),
            bytes: stats.bytes,
            keys: stats.keys,
            finished_at_ms: unix_ms_now(),
            // The lock was held from the cut to the end: that is how long writers waited.
            figures: vec![("writer_block_us", (started.elapsed() - time_to_cut).as_micros() as u64)],
        })
    }
}

impl SnapshotStrategy for BlockingSave {
    const NAME: &'static str = "blocking";

    fn from_keyspace(keyspace: Keyspace) -> Self {
        BlockingSave {
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

    fn save(&self, dest: &Path, opts: &SaveOptions) -> Result<SaveReport, SaveError> {
        let ticket = self.inner.saves.begin()?;
        let started = Instant::now();
        let store = self.read();
        let time_to_cut = started.elapsed();
        let result = Self::serialize(&store, dest, opts, started, time_to_cut);
        drop(store);
        ticket.finish(result)
    }

    fn bgsave(&self, dest: &Path, opts: &SaveOptions) -> Result<BgSave, SaveError> {
        let ticket: SaveTicket = self.inner.saves.begin()?;
        let started = Instant::now();
        let (cut_tx, cut_rx) = mpsc::sync_channel(1);
        let this = self.clone();
        let (dest, opts) = (dest.to_path_buf(), opts.clone());
        let handle = thread::Builder::new()
            .name("blocking-save".into())
            .spawn(move || {
                let store = this.read();
                let time_to_cut = started.elapsed();
                // The receiver only disappears if the caller is gone; the save goes on regardless.
                let _ = cut_tx.send((Cut::single(store.writes), time_to_cut));
                let result = Self::serialize(&store, &dest, &opts, started, time_to_cut);
                drop(store);
                ticket.finish(result)
            })
            .map_err(|e| SaveError::Aborted(format!("could not start the save thread: {e}")))?;
        match cut_rx.recv() {
            Ok((cut, time_to_cut)) => Ok(BgSave::new(cut, time_to_cut, handle)),
            Err(_) => Err(handle.join().map_or_else(
                |_| SaveError::Aborted("the save thread panicked before taking the cut".into()),
                |r| r.err().unwrap_or_else(|| SaveError::Aborted("no cut reported".into())),
            )),
        }
    }

    fn lastsave(&self) -> Option<i64> {
        self.inner.saves.lastsave()
    }

    fn last_save_status(&self) -> SaveStatus {
        self.inner.saves.status()
    }
}
