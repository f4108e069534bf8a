//! A delta: what one period's writes did, as the state each written key was left in.
//!
//! Cao et al. ("Fast Checkpoint Recovery Algorithms for Frequently Consistent
//! Applications", SIGMOD 2011) keep two such copies, *ping* and *pong*, beside the live
//! state: every update is written to the live state and to the copy of the current
//! period, and at a checkpoint the copies swap roles. Their application state is an array
//! of fixed-size cells and a copy is the whole array with a dirty bit per cell; a keyspace
//! has no fixed cells, so a [`Delta`] holds only the keys written, each with its state
//! after the period's last write to it, and a marker per database for FLUSHDB/FLUSHALL.

// A delta grows from empty in every period, under the live lock, so its map's growth is
// on the writers' path. A std `HashMap` doubles all at once: the write that crosses 7,168
// keys moved them all, 3-4 ms on a 2-vCPU VM, while every other write waited for the lock.
// griddle's map moves a few entries per insert instead (incremental resizing, as Redis's
// dict does, src/dict.c `_dictRehashStep`), so no single write pays for the doubling.
use griddle::HashMap;

use snaplab_core::{Bytes, Command, DB_COUNT, Entry, Keyspace};

// ANCHOR: delta
/// The writes of one period, per database: for each key written, its entry after the
/// period's last write to it (`None`, a tombstone, when that write deleted it: DEL, the
/// last member removed, an expiry in the past, or a write that found the key expired).
///
/// Recording the state *after* the write, rather than the command, makes applying the
/// delta idempotent and independent of what the image held before: the image ends up
/// holding, for every key in the delta, exactly what the live state held at the cut.
#[derive(Debug, Default)]
pub struct Delta {
    dbs: [DbDelta; DB_COUNT],
}

#[derive(Debug, Default)]
struct DbDelta {
    /// FLUSHDB or FLUSHALL emptied this database during the period: the image must drop
    /// every key it holds in it before the entries below are applied.
    flushed: bool,
    /// Key -> its state after the period's last write to it.
    keys: HashMap<Bytes, Option<Entry>>,
}
// ANCHOR_END: delta

/// What applying a delta to an image did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Applied {
    /// Keys applied (entries and tombstones).
    pub keys: u64,
    /// Bytes applied: each key's length plus its entry's heap bytes (see
    /// [`Value::heap_bytes`](snaplab_core::Value::heap_bytes)); a tombstone counts its key.
    pub bytes: u64,
    /// Databases emptied by a FLUSHDB/FLUSHALL marker.
    pub flushed_dbs: u64,
}

impl Delta {
    /// An empty delta.
    pub fn new() -> Self {
        Self::default()
    }

    // ANCHOR: record
    /// Note that `cmd` was just applied to `live`: copy the state it left its key in (the
    /// second write of every update), or mark the databases a flush emptied.
    ///
    /// Call it under the same hold of the live state's lock as the write itself, so that
    /// the delta and the live state never disagree at a cut.
    pub fn record(&mut self, live: &Keyspace, cmd: &Command) {
        match cmd {
            Command::FlushDb { db } => self.flush(*db),
            Command::FlushAll => (0..DB_COUNT).for_each(|db| self.flush(db)),
            _ => {
                let (Some(db), Some(key)) = (cmd.db(), cmd.key()) else { return };
                // EXERCISE 16-pingpong BEGIN
                let after = live.get(db, key).cloned();
                let keys = &mut self.dbs[db].keys;
                // A repeat write to a key replaces its entry in place, without a new key copy.
                match keys.get_mut(key) {
                    Some(slot) => *slot = after,
                    None => {
                        keys.insert(key.to_vec(), after);
                    }
                }
                // EXERCISE 16-pingpong END
            }
        }
    }
    // ANCHOR_END: record

    /// A flush of `db`: every write to it earlier in the period is moot, and the image
    /// must empty the database.
    fn flush(&mut self, db: usize) {
        let d = &mut self.dbs[db];
        d.flushed = true;
        d.keys.clear();
    }

    /// Number of keys recorded (entries and tombstones).
    pub fn len(&self) -> usize {
        self.dbs.iter().map(|d| d.keys.len()).sum()
    }

    /// Whether the delta records nothing: no key and no flush.
    pub fn is_empty(&self) -> bool {
        self.dbs.iter().all(|d| !d.flushed && d.keys.is_empty())
    }

    // ANCHOR: apply_to
    /// Fold the delta into `image` and leave the delta empty (its maps keep their capacity
    /// for the period after next, when this delta is current again).
    ///
    /// If `image` held the live state at the previous cut and the delta holds the writes
    /// between that cut and this one, `image` afterwards holds the live state at this cut.
    pub fn apply_to(&mut self, image: &mut Keyspace) -> Applied {
        let mut applied = Applied::default();
        for (i, d) in self.dbs.iter_mut().enumerate() {
            // EXERCISE 16-pingpong BEGIN
            if std::mem::take(&mut d.flushed) {
                image.db_mut(i).clear();
                applied.flushed_dbs += 1;
            }
            for (key, after) in d.keys.drain() {
                applied.keys += 1;
                applied.bytes += key.len() as u64;
                match after {
                    Some(entry) => {
                        applied.bytes += entry.value.heap_bytes() as u64;
                        image.insert(i, key, entry);
                    }
                    None => {
                        image.remove(i, &key);
                    }
                }
            }
            // EXERCISE 16-pingpong END
        }
        applied
    }
    // ANCHOR_END: apply_to

    /// Forget everything recorded (the image was built from the live state at the cut, so
    /// the period's writes are already in it).
    pub fn clear(&mut self) {
        for d in &mut self.dbs {
            d.flushed = false;
            d.keys.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use snaplab_core::{Value, unix_ms_now};

    fn set(db: usize, key: &str, value: &str) -> Command {
        Command::Set { db, key: key.as_bytes().to_vec(), value: value.as_bytes().to_vec(), expire_at_ms: None }
    }

    /// Replay `cmds` on `live` and record each in `delta`, as the store's writers do.
    fn run(live: &mut Keyspace, delta: &mut Delta, cmds: &[Command]) {
        for c in cmds {
            if live.apply(c, unix_ms_now()).is_ok() {
                delta.record(live, c);
            }
        }
    }

    /// An image at the previous cut plus the period's delta is the live state at this cut:
    /// overwrites, deletes (tombstones), pushes to collections, a FLUSHDB in the middle of
    /// the period, and a key written again after the flush.
    #[test]
    fn image_plus_delta_is_the_live_state() {
        let mut live = Keyspace::new();
        run(&mut live, &mut Delta::new(), &[set(0, "a", "1"), set(0, "b", "1"), set(1, "c", "1"), set(2, "d", "1")]);
        let mut image = live.clone();
        let mut delta = Delta::new();
        let period = [
            set(0, "a", "2"),
            Command::Del { db: 0, key: b"b".to_vec() },
            Command::RPush { db: 0, key: b"l".to_vec(), elements: vec![b"x".to_vec(), b"y".to_vec()] },
            set(1, "gone", "soon"),
            Command::FlushDb { db: 1 },
            set(1, "after-flush", "1"),
            Command::PExpireAt { db: 2, key: b"d".to_vec(), at_ms: 1 },
        ];
        run(&mut live, &mut delta, &period);
        let applied = delta.apply_to(&mut image);
        assert_eq!(image, live, "the image after the delta is the live state");
        assert_eq!(applied.flushed_dbs, 1, "one database was flushed during the period");
        assert_eq!(applied.keys, 5, "a, b, l, after-flush, d: the key written before the flush is moot");
        assert!(delta.is_empty(), "applying a delta empties it");
        assert_eq!(delta.apply_to(&mut image), Applied::default(), "an empty delta changes nothing");
    }

    /// A key deleted during the period, even one the image never held, leaves no trace in
    /// the image; a key expired by PEXPIREAT in the past is a tombstone, not an entry.
    #[test]
    fn deletes_are_tombstones() {
        let mut live = Keyspace::new();
        let mut image = live.clone();
        let mut delta = Delta::new();
        run(
            &mut live,
            &mut delta,
            &[set(0, "new", "1"), Command::Del { db: 0, key: b"new".to_vec() }, set(0, "e", "1")],
        );
        run(&mut live, &mut delta, &[Command::PExpireAt { db: 0, key: b"e".to_vec(), at_ms: 1 }]);
        assert_eq!(delta.len(), 2, "two keys written, both now tombstones");
        delta.apply_to(&mut image);
        assert!(image.is_empty(), "{image:?}");
    }

    /// An entry in the image keeps the expiry the live state gave it.
    #[test]
    fn entries_carry_their_expiry() {
        let mut live = Keyspace::new();
        let mut image = Keyspace::new();
        let mut delta = Delta::new();
        let at = unix_ms_now() + 3_600_000;
        run(
            &mut live,
            &mut delta,
            &[Command::Set { db: 4, key: b"k".to_vec(), value: b"v".to_vec(), expire_at_ms: Some(at) }],
        );
        delta.apply_to(&mut image);
        assert_eq!(image.get(4, b"k"), Some(&Entry::expiring(Value::String(b"v".to_vec()), at)));
    }
}
