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
        // EXERCISE 01-cut BEGIN
        let mut s = self.write();
        let reply = s.keyspace.apply(cmd, unix_ms_now())?;
        s.writes += 1;
        Ok(Applied::new(reply, WriteStamp { shard: 0, seq: s.writes }))
        // EXERCISE 01-cut END
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::Reply;

    fn set(key: &str) -> Command {
        Command::Set { db: 0, key: key.as_bytes().to_vec(), value: b"v".to_vec(), expire_at_ms: None }
    }

    /// Each applied write is stamped with its place in the write order, from 1, in shard 0,
    /// and the cut read under the lock counts exactly the writes applied before it.
    #[test]
    fn writes_are_stamped_in_order() {
        let store = LockedKeyspace::new(Keyspace::new());
        assert_eq!(store.read().cut(), Cut::single(0), "no write is counted before the first");
        for seq in 1..=3 {
            let applied = store.apply(&set(&format!("k{seq}"))).unwrap();
            assert_eq!(applied.stamps(), vec![WriteStamp { shard: 0, seq }], "write {seq} is stamped 0:{seq}");
            assert_eq!(applied.reply, Reply::Ok, "the reply is the keyspace's");
        }
        assert_eq!(store.read().cut(), Cut::single(3), "the cut after three writes counts three");
        assert_eq!(store.len(), 3, "every write reached the keyspace");
        assert!(store.read().cut().includes(WriteStamp { shard: 0, seq: 3 }));
    }

    /// Writers on several threads at once each get a stamp no other write has: together
    /// the stamps are exactly 1..=n, each thread's own in increasing order, and the cut
    /// counts all n. (Stamping outside the lock would hand two writes one number.)
    #[test]
    fn concurrent_writes_take_distinct_stamps() {
        const THREADS: usize = 8;
        const EACH: usize = 5_000;
        let store = LockedKeyspace::new(Keyspace::new());
        let per_thread: Vec<Vec<u64>> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..THREADS)
                .map(|t| {
                    let store = &store;
                    s.spawn(move || {
                        (0..EACH).map(|i| store.apply(&set(&format!("t{t}:{i}"))).unwrap().stamp.seq).collect()
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        for (t, seqs) in per_thread.iter().enumerate() {
            assert!(seqs.windows(2).all(|w| w[0] < w[1]), "thread {t}'s stamps go up in the order it wrote");
        }
        let mut all: Vec<u64> = per_thread.concat();
        all.sort_unstable();
        let n = (THREADS * EACH) as u64;
        if let Some(w) = all.windows(2).find(|w| w[0] == w[1]) {
            panic!("two writes took stamp 0:{}: the number and the write were not taken under one lock", w[0]);
        }
        // n distinct stamps from 1 to n are exactly 1..=n.
        assert_eq!((all[0], all[all.len() - 1]), (1, n), "the stamps of {n} writes run from 1 to {n}");
        assert_eq!(store.read().cut(), Cut::single(n));
    }

    /// A refused write changes nothing and uses no stamp: the next write takes the number
    /// the refused one would have had.
    #[test]
    fn a_refused_write_takes_no_stamp() {
        let store = LockedKeyspace::new(Keyspace::new());
        store.apply(&set("k")).unwrap();
        let wrong_type = Command::RPush { db: 0, key: b"k".to_vec(), elements: vec![b"x".to_vec()] };
        assert!(store.apply(&wrong_type).is_err(), "RPUSH to a string is refused");
        assert_eq!(store.read().cut(), Cut::single(1), "a refused write is not counted");
        let next = store.apply(&set("other")).unwrap();
        assert_eq!(next.stamp, WriteStamp { shard: 0, seq: 2 }, "the write after a refused one takes the next number");
        assert_eq!(store.len(), 2);
    }
}
