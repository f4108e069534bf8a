#![doc = include_str!("../README.md")]

use std::path::Path;
use std::sync::Arc;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use snaplab_core::{
    Applied, BgSave, Command, CommandError, Counted, Entry, Keyspace, LockedKeyspace, SaveError, SaveOptions,
    SaveReport, SaveState, SaveStatus, SaveTicket, SnapshotStrategy, unix_ms_now, write_snapshot,
};

struct Inner {
    /// The keyspace and its write count behind one `RwLock`: the count read under the lock
    /// is exactly the cut.
    store: LockedKeyspace,
    saves: Arc<SaveState>,
}

/// A store whose snapshots hold its lock in read mode for the whole serialization (Redis
/// SAVE): writers, which need the lock in write mode, wait until the file is written.
///
/// Cheap to clone: clones share the same store.
#[derive(Clone)]
pub struct BlockingSave {
    inner: Arc<Inner>,
}

impl BlockingSave {
    /// Serialize `store` to `dest`; the caller holds the read lock for the whole call.
    fn serialize(
        store: &Counted,
        dest: &Path,
        opts: &SaveOptions,
        started: Instant,
        time_to_cut: Duration,
    ) -> Result<SaveReport, SaveError> {
        let stats = write_snapshot(&store.keyspace, dest, opts, Self::NAME)?;
        Ok(SaveReport {
            strategy: Self::NAME,
            path: dest.to_path_buf(),
            cut: store.cut(),
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
        BlockingSave { inner: Arc::new(Inner { store: LockedKeyspace::new(keyspace), saves: SaveState::new() }) }
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

    // ANCHOR: save
    fn save(&self, dest: &Path, opts: &SaveOptions) -> Result<SaveReport, SaveError> {
        // EXERCISE 03-blocking BEGIN
        let ticket = self.inner.saves.begin()?;
        let started = Instant::now();
        let store = self.inner.store.read();
        let time_to_cut = started.elapsed();
        let result = Self::serialize(&store, dest, opts, started, time_to_cut);
        drop(store);
        ticket.finish(result)
        // EXERCISE 03-blocking END
    }
    // ANCHOR_END: save

    // ANCHOR: bgsave
    fn bgsave(&self, dest: &Path, opts: &SaveOptions) -> Result<BgSave, SaveError> {
        // EXERCISE 03-blocking BEGIN
        let ticket: SaveTicket = self.inner.saves.begin()?;
        let started = Instant::now();
        let (cut_tx, cut_rx) = mpsc::sync_channel(1);
        let this = self.clone();
        let (dest, opts) = (dest.to_path_buf(), opts.clone());
        let handle = thread::Builder::new()
            .name("blocking-save".into())
            .spawn(move || {
                let store = this.inner.store.read();
                let time_to_cut = started.elapsed();
                // The receiver only disappears if the caller is gone; the save goes on regardless.
                let _ = cut_tx.send((store.cut(), time_to_cut));
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
        // EXERCISE 03-blocking END
    }
    // ANCHOR_END: bgsave

    fn lastsave(&self) -> Option<i64> {
        self.inner.saves.lastsave()
    }

    fn last_save_status(&self) -> SaveStatus {
        self.inner.saves.status()
    }
}
