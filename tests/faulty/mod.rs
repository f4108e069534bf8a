//! Strategies that are wrong on purpose, each in one way the conformance suite must catch.
//! They share one store (a keyspace behind a lock with a write counter) and differ only in
//! how they snapshot it.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, RwLock};
use std::thread;
use std::time::{Duration, Instant};

use snaplab_core::rdb::{EncodeOptions, RdbWriter, encode::write_aux_fields};
use snaplab_core::{
    Applied, AtomicFile, BgSave, Command, CommandError, Cut, DB_COUNT, Entry, Keyspace, SaveError, SaveOptions,
    SaveReport, SaveState, SaveStatus, SnapshotStrategy, WriteStamp, unix_ms_now, write_snapshot,
};

/// The state every faulty strategy shares.
struct Shared {
    store: RwLock<(Keyspace, u64)>,
    saves: Arc<SaveState>,
    /// Signalled after every applied write (for the late cut).
    wrote: (Mutex<u64>, Condvar),
    /// Set by a save; the next write is silently dropped (for the lost write).
    drop_next: AtomicBool,
}

impl Shared {
    fn new(ks: Keyspace) -> Arc<Self> {
        Arc::new(Shared {
            store: RwLock::new((ks, 0)),
            saves: SaveState::new(),
            wrote: (Mutex::new(0), Condvar::new()),
            drop_next: AtomicBool::new(false),
        })
    }

    fn apply(&self, cmd: &Command) -> Result<Applied, CommandError> {
        let mut s = self.store.write().unwrap();
        // ANCHOR: loses_writes
        if self.drop_next.swap(false, Ordering::SeqCst) {
            // Wrong on purpose: the write is acknowledged but never applied.
            s.1 += 1;
            return Ok(Applied::new(snaplab_core::Reply::Ok, WriteStamp { shard: 0, seq: s.1 }));
        }
        // ANCHOR_END: loses_writes
        let reply = s.0.apply(cmd, unix_ms_now())?;
        s.1 += 1;
        let seq = s.1;
        drop(s);
        *self.wrote.0.lock().unwrap() += 1;
        self.wrote.1.notify_all();
        Ok(Applied::new(reply, WriteStamp { shard: 0, seq }))
    }

    fn report(name: &'static str, dest: &Path, cut: Cut, started: Instant, bytes: u64, keys: u64) -> SaveReport {
        SaveReport {
            strategy: name,
            path: dest.to_path_buf(),
            cut,
            time_to_cut: Duration::ZERO,
            duration: started.elapsed(),
            bytes,
            keys,
            finished_at_ms: unix_ms_now(),
            figures: vec![],
        }
    }
}

macro_rules! common_methods {
    () => {
        fn apply(&self, cmd: &Command) -> Result<Applied, CommandError> {
            self.0.apply(cmd)
        }
        fn get(&self, db: usize, key: &[u8]) -> Option<Entry> {
            self.0.store.read().unwrap().0.get(db, key).cloned()
        }
        fn len(&self) -> usize {
            self.0.store.read().unwrap().0.len()
        }
        fn to_keyspace(&self) -> Keyspace {
            self.0.store.read().unwrap().0.clone()
        }
        fn save(&self, dest: &Path, opts: &SaveOptions) -> Result<SaveReport, SaveError> {
            self.bgsave(dest, opts)?.wait()
        }
        fn lastsave(&self) -> Option<i64> {
            self.0.saves.lastsave()
        }
        fn last_save_status(&self) -> SaveStatus {
            self.0.saves.status()
        }
    };
}

/// Wrong: serializes the live keyspace key by key, releasing the lock between keys, so
/// writes land in the middle of the snapshot (no isolation at all).
pub struct NoIsolation(Arc<Shared>);

impl SnapshotStrategy for NoIsolation {
    const NAME: &'static str = "no-isolation";
    fn from_keyspace(ks: Keyspace) -> Self {
        NoIsolation(Shared::new(ks))
    }
    common_methods!();
    fn bgsave(&self, dest: &Path, opts: &SaveOptions) -> Result<BgSave, SaveError> {
        let ticket = self.0.saves.begin()?;
        let started = Instant::now();
        let cut = Cut::single(self.0.store.read().unwrap().1);
        let (shared, dest, opts, c) = (Arc::clone(&self.0), dest.to_path_buf(), opts.clone(), cut.clone());
        let h = thread::spawn(move || {
            let result = (|| {
                let mut file = AtomicFile::create_with(&dest, Arc::clone(&opts.io))?;
                let io = |e| SaveError::io("write", &dest, e);
                let mut w = RdbWriter::new(&mut file, opts.compress).map_err(io)?;
                write_aux_fields(&mut w, &EncodeOptions::default()).map_err(io)?;
                for db in 0..DB_COUNT {
                    let keys: Vec<Vec<u8>> = shared.store.read().unwrap().0.db(db).keys().cloned().collect();
                    if keys.is_empty() {
                        continue;
                    }
                    w.select_db(db, keys.len() as u64, 0).map_err(io)?;
                    // ANCHOR: no_isolation
                    for k in keys {
                        // The lock is taken per key: writers run between any two keys.
                        let entry = shared.store.read().unwrap().0.get(db, &k).cloned();
                        if let Some(e) = entry {
                            w.entry(&k, &e, false).map_err(io)?;
                        }
                        thread::yield_now();
                    }
                    // ANCHOR_END: no_isolation
                }
                let (_, stats) = w.finish().map_err(io)?;
                file.commit()?;
                Ok(Shared::report("no-isolation", &dest, c, started, stats.bytes, stats.keys))
            })();
            ticket.finish(result)
        });
        Ok(BgSave::new(cut, started.elapsed(), h))
    }
}

/// Wrong: its snapshots are fine, but the first write after a BGSAVE is acknowledged and
/// silently dropped (a lost write).
pub struct LosesWrites(Arc<Shared>);

impl SnapshotStrategy for LosesWrites {
    const NAME: &'static str = "loses-writes";
    fn from_keyspace(ks: Keyspace) -> Self {
        LosesWrites(Shared::new(ks))
    }
    common_methods!();
    fn bgsave(&self, dest: &Path, opts: &SaveOptions) -> Result<BgSave, SaveError> {
        let ticket = self.0.saves.begin()?;
        let started = Instant::now();
        let (frozen, writes) = self.0.store.read().unwrap().clone();
        self.0.drop_next.store(true, Ordering::SeqCst);
        let cut = Cut::single(writes);
        let (dest, opts, c) = (dest.to_path_buf(), opts.clone(), cut.clone());
        let h = thread::spawn(move || {
            let result = write_snapshot(&frozen, &dest, &opts, "loses-writes")
                .map(|s| Shared::report("loses-writes", &dest, c, started, s.bytes, s.keys));
            ticket.finish(result)
        });
        Ok(BgSave::new(cut, started.elapsed(), h))
    }
}

/// Wrong: returns from BGSAVE first and takes the cut later, after sixteen more writes (or
/// 200 ms), so writes that started after BGSAVE returned leak into the snapshot.
pub struct LateCut(Arc<Shared>);

impl SnapshotStrategy for LateCut {
    const NAME: &'static str = "late-cut";
    fn from_keyspace(ks: Keyspace) -> Self {
        LateCut(Shared::new(ks))
    }
    common_methods!();
    fn bgsave(&self, dest: &Path, opts: &SaveOptions) -> Result<BgSave, SaveError> {
        let ticket = self.0.saves.begin()?;
        let started = Instant::now();
        // ANCHOR: late_cut
        let claimed = Cut::single(self.0.store.read().unwrap().1);
        let seen = *self.0.wrote.0.lock().unwrap();
        let (shared, dest, opts, c) = (Arc::clone(&self.0), dest.to_path_buf(), opts.clone(), claimed.clone());
        let h = thread::spawn(move || {
            let guard = shared.wrote.0.lock().unwrap();
            // Sixteen writes, not one: a write in flight when BGSAVE returned may land
            // either side of an honest cut, and up to eight writer threads can have one in
            // flight; the ones after those certainly started after the return.
            let _unused =
                shared.wrote.1.wait_timeout_while(guard, Duration::from_millis(200), |n| *n < seen + 16).unwrap();
            drop(_unused);
            let frozen = shared.store.read().unwrap().0.clone();
            // ANCHOR_END: late_cut
            let result = write_snapshot(&frozen, &dest, &opts, "late-cut")
                .map(|s| Shared::report("late-cut", &dest, c, started, s.bytes, s.keys));
            ticket.finish(result)
        });
        Ok(BgSave::new(claimed, started.elapsed(), h))
    }
}

/// Wrong: writes the dump straight into the destination instead of a temporary file
/// renamed into place, so a failure mid-write leaves a truncated file where the previous
/// snapshot was (the 0-byte dump.rdb Redis users once got from a full disk).
pub struct WritesInPlace(Arc<Shared>);

impl SnapshotStrategy for WritesInPlace {
    const NAME: &'static str = "writes-in-place";
    fn from_keyspace(ks: Keyspace) -> Self {
        WritesInPlace(Shared::new(ks))
    }
    common_methods!();
    fn bgsave(&self, dest: &Path, opts: &SaveOptions) -> Result<BgSave, SaveError> {
        let ticket = self.0.saves.begin()?;
        let started = Instant::now();
        let (frozen, writes) = self.0.store.read().unwrap().clone();
        let cut = Cut::single(writes);
        let (dest, opts, c) = (dest.to_path_buf(), opts.clone(), cut.clone());
        let h = thread::spawn(move || {
            let result = (|| {
                // ANCHOR: writes_in_place
                let _ = opts.io.remove(&dest);
                let mut file = opts.io.create(&dest).map_err(|e| SaveError::io("create", &dest, e))?;
                let enc = EncodeOptions { compress: opts.compress, ..EncodeOptions::default() };
                let (_, stats) = snaplab_core::rdb::write_view(&frozen, &mut file, &enc, None)
                    .map_err(|e| SaveError::io("write", &dest, e))?;
                file.sync().map_err(|e| SaveError::io("fsync", &dest, e))?;
                // ANCHOR_END: writes_in_place
                Ok(Shared::report("writes-in-place", &dest, c, started, stats.bytes, stats.keys))
            })();
            ticket.finish(result)
        });
        Ok(BgSave::new(cut, started.elapsed(), h))
    }
}

/// Wrong: takes its cut (the write count) under one hold of the lock and copies the
/// keyspace under a second. The copy is an honest snapshot of one instant, just not of the
/// instant the cut reports: a replica resuming from that cut would apply the writes in
/// between twice.
pub struct TwoLockCut(Arc<Shared>);

impl SnapshotStrategy for TwoLockCut {
    const NAME: &'static str = "two-lock-cut";
    fn from_keyspace(ks: Keyspace) -> Self {
        TwoLockCut(Shared::new(ks))
    }
    common_methods!();
    fn bgsave(&self, dest: &Path, opts: &SaveOptions) -> Result<BgSave, SaveError> {
        let ticket = self.0.saves.begin()?;
        let started = Instant::now();
        // ANCHOR: two_lock_cut
        let cut = Cut::single(self.0.store.read().unwrap().1);
        // Wrong on purpose: the lock is released between the cut and the copy. The pause
        // stands for whatever else a store does in between; it lets writers in every time.
        thread::sleep(Duration::from_millis(2));
        let frozen = self.0.store.read().unwrap().0.clone();
        // ANCHOR_END: two_lock_cut
        let (dest, opts, c) = (dest.to_path_buf(), opts.clone(), cut.clone());
        let h = thread::spawn(move || {
            let result = write_snapshot(&frozen, &dest, &opts, "two-lock-cut")
                .map(|s| Shared::report("two-lock-cut", &dest, c, started, s.bytes, s.keys));
            ticket.finish(result)
        });
        Ok(BgSave::new(cut, started.elapsed(), h))
    }
}

/// Shards of [`TagShards`].
const TAG_SHARDS: usize = 16;

/// Wrong: a store split into shards by hash tag (the bytes before a key's first `:`, as
/// Redis Cluster groups keys by `{tag}`), each shard behind its own lock with its own
/// write count. BGSAVE copies each shard consistently under that shard's lock, one shard
/// after another, before it returns. Every copy and every per-shard cut is honest, and
/// writer threads that each keep to their own `w<t>:` keys see a prefix of their writes;
/// but the shards are copied at different instants, so the snapshot as a whole is of no
/// single instant.
pub struct TagShards {
    shards: Vec<Mutex<(Keyspace, u64)>>,
    saves: Arc<SaveState>,
    /// Single-key writes applied so far, per shard, signalled after each.
    wrote: (Mutex<Vec<u64>>, Condvar),
}

impl TagShards {
    /// The shard of `key`: its tag's byte sum, which puts `w0` .. `w7` in different shards.
    fn shard_of(key: &[u8]) -> usize {
        let tag = key.split(|&b| b == b':').next().unwrap_or(key);
        tag.iter().map(|&b| b as usize).sum::<usize>() % TAG_SHARDS
    }

    fn shard(&self, i: usize) -> std::sync::MutexGuard<'_, (Keyspace, u64)> {
        self.shards[i].lock().unwrap()
    }
}

impl SnapshotStrategy for TagShards {
    const NAME: &'static str = "tag-shards";
    fn from_keyspace(mut ks: Keyspace) -> Self {
        let mut parts: Vec<Keyspace> = (0..TAG_SHARDS).map(|_| Keyspace::new()).collect();
        for db in 0..DB_COUNT {
            for (key, entry) in ks.db_mut(db).drain() {
                parts[Self::shard_of(&key)].insert(db, key, entry);
            }
        }
        TagShards {
            shards: parts.into_iter().map(|p| Mutex::new((p, 0))).collect(),
            saves: SaveState::new(),
            wrote: (Mutex::new(vec![0; TAG_SHARDS]), Condvar::new()),
        }
    }
    fn apply(&self, cmd: &Command) -> Result<Applied, CommandError> {
        let applied = self.apply_in_shards(cmd)?;
        if let Some(key) = cmd.key() {
            self.wrote.0.lock().unwrap()[Self::shard_of(key)] += 1;
            self.wrote.1.notify_all();
        }
        Ok(applied)
    }
    fn get(&self, db: usize, key: &[u8]) -> Option<Entry> {
        self.shard(Self::shard_of(key)).0.get(db, key).cloned()
    }
    fn len(&self) -> usize {
        (0..TAG_SHARDS).map(|i| self.shard(i).0.len()).sum()
    }
    fn to_keyspace(&self) -> Keyspace {
        let mut ks = Keyspace::new();
        for i in 0..TAG_SHARDS {
            for (db, key, entry) in self.shard(i).0.iter() {
                ks.insert(db, key.clone(), entry.clone());
            }
        }
        ks
    }
    fn save(&self, dest: &Path, opts: &SaveOptions) -> Result<SaveReport, SaveError> {
        self.bgsave(dest, opts)?.wait()
    }
    fn bgsave(&self, dest: &Path, opts: &SaveOptions) -> Result<BgSave, SaveError> {
        let ticket = self.saves.begin()?;
        let started = Instant::now();
        let mut frozen = Keyspace::new();
        let mut per_shard = Vec::with_capacity(TAG_SHARDS);
        // The shards that writers use, in the order they are copied.
        let active: Vec<usize> = {
            let counts = self.wrote.0.lock().unwrap();
            (0..TAG_SHARDS).filter(|&i| counts[i] > 0).collect()
        };
        // ANCHOR: tag_shards
        for i in 0..TAG_SHARDS {
            // Each shard is copied whole under its own lock: consistent on its own.
            let g = self.shard(i);
            for (db, key, entry) in g.0.iter() {
                frozen.insert(db, key.clone(), entry.clone());
            }
            per_shard.push(g.1);
            drop(g);
            // Wrong on purpose: writers run between two shards' copies. Here the store
            // waits (at most 200 ms each) for two more writes to the shard just copied, then
            // two more to the next shard in use: the next copy then holds a write that
            // started after one missing from this copy had completed, whatever else the
            // machine is doing. The wait stands for the time a real store spends on a shard.
            if let Some(pos) = active.iter().position(|&a| a == i)
                && let Some(&next) = active.get(pos + 1)
            {
                for shard in [i, next] {
                    let guard = self.wrote.0.lock().unwrap();
                    let target = guard[shard] + 2;
                    let _unused = self
                        .wrote
                        .1
                        .wait_timeout_while(guard, Duration::from_millis(200), |n| n[shard] < target)
                        .unwrap();
                }
            }
        }
        // ANCHOR_END: tag_shards
        let cut = Cut { per_shard };
        let (dest, opts, c) = (dest.to_path_buf(), opts.clone(), cut.clone());
        let h = thread::spawn(move || {
            let result = write_snapshot(&frozen, &dest, &opts, "tag-shards")
                .map(|s| Shared::report("tag-shards", &dest, c, started, s.bytes, s.keys));
            ticket.finish(result)
        });
        Ok(BgSave::new(cut, started.elapsed(), h))
    }
    fn lastsave(&self) -> Option<i64> {
        self.saves.lastsave()
    }
    fn last_save_status(&self) -> SaveStatus {
        self.saves.status()
    }
}

impl TagShards {
    fn apply_in_shards(&self, cmd: &Command) -> Result<Applied, CommandError> {
        let Some(key) = cmd.key() else {
            // Multi-key writes are atomic here: every shard locked at once.
            let mut guards: Vec<_> = (0..TAG_SHARDS).map(|i| self.shard(i)).collect();
            let mut stamps = Vec::new();
            let mut reply = snaplab_core::Reply::Ok;
            for (i, g) in guards.iter_mut().enumerate() {
                reply = g.0.apply(cmd, unix_ms_now())?;
                g.1 += 1;
                stamps.push(WriteStamp { shard: i as u32, seq: g.1 });
            }
            let stamp = stamps.remove(0);
            return Ok(Applied { reply, stamp, also: stamps });
        };
        let i = Self::shard_of(key);
        let mut g = self.shard(i);
        let reply = g.0.apply(cmd, unix_ms_now())?;
        g.1 += 1;
        Ok(Applied::new(reply, WriteStamp { shard: i as u32, seq: g.1 }))
    }
}

// ---- relaxed: the change log's rule broken both ways ------------------------------------

// ANCHOR: relaxed_faulty
/// Wrong on purpose: every write during the traversal is logged, visited key or not. A
/// write to a key the traversal reaches later is then in the dump twice, once in the
/// traversal's value and once replayed from the log: harmless for SET, wrong for RPUSH.
pub struct LogEveryWrite;

impl snaplab::relaxed::LogRule for LogEveryWrite {
    fn logs(_visited: bool) -> bool {
        true
    }
}

/// Wrong on purpose: no write is logged. A write to a key the traversal has already
/// serialized is in neither the traversal nor the log.
pub struct LogNoWrite;

impl snaplab::relaxed::LogRule for LogNoWrite {
    fn logs(_visited: bool) -> bool {
        false
    }
}
// ANCHOR_END: relaxed_faulty

/// The relaxed store logging writes to unvisited keys too (double-applies them).
pub type LogsUnvisited = snaplab::relaxed::RelaxedStore<LogEveryWrite>;

/// The relaxed store dropping writes to visited keys.
pub type DropsVisited = snaplab::relaxed::RelaxedStore<LogNoWrite>;
