//! A keyspace behind one lock, with a write counter: the store of every strategy whose
//! lesson is in *how it snapshots* rather than in how it lays out data (`blocking`,
//! `clone`). Writes take the write lock; the counter read under the same lock is the cut.

use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

use crate::command::{Command, CommandError};
use crate::keyspace::{Entry, Keyspace};
use crate::strategy::{Applied, Cut, WriteStamp, unix_ms_now};

// ANCHOR: counted
/// The keyspace and the number of writes applied to it, always read together.
#[derive(Debug, Default)]
pub struct Counted {
    /// The data.
    pub keyspace: Keyspace,
    /// Writes applied so far (refused ones do not count).
    pub writes: u64,
}

impl Counted {
    /// The cut after the writes applied so far.
    pub fn cut(&self) -> Cut {
        Cut::single(self.writes)
    }
}
// ANCHOR_END: counted

/// A [`Keyspace`] behind an `RwLock`, with a write counter.
#[derive(Debug, Default)]
pub struct LockedKeyspace {
    inner: RwLock<Counted>,
}

impl LockedKeyspace {
    /// Hold `keyspace`, with no writes counted yet.
    pub fn new(keyspace: Keyspace) -> Self {
        LockedKeyspace { inner: RwLock::new(Counted { keyspace, writes: 0 }) }
    }

    /// Shared access: writers wait while it is held.
    pub fn read(&self) -> RwLockReadGuard<'_, Counted> {
        // Commands validate before they mutate, so a writer that panicked cannot have left
        // the keyspace half-changed: a poisoned lock still guards a whole keyspace.
        self.inner.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Exclusive access.
    pub fn write(&self) -> RwLockWriteGuard<'_, Counted> {
        self.inner.write().unwrap_or_else(|p| p.into_inner())
    }

    // ANCHOR: locked_apply
    /// Apply `cmd` under the write lock and stamp it with its position in the write order.
    ///
    /// # Errors
    /// [`CommandError`] when refused; nothing changes and no stamp is used.
    pub fn apply(&self, cmd: &Command) -> Result<Applied, CommandError> {
        let mut s = self.write();
        let reply = s.keyspace.apply(cmd, unix_ms_now())?;
        s.writes += 1;
        Ok(Applied::new(reply, WriteStamp { shard: 0, seq: s.writes }))
    }
    // ANCHOR_END: locked_apply

    /// The live entry under `key` (`None` if absent or expired).
    pub fn get(&self, db: usize, key: &[u8]) -> Option<Entry> {
        self.read().keyspace.get(db, key).filter(|e| !e.is_expired(unix_ms_now())).cloned()
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.read().keyspace.len()
    }

    /// Whether there are no keys.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A copy of the keyspace.
    pub fn to_keyspace(&self) -> Keyspace {
        self.read().keyspace.clone()
    }
}
