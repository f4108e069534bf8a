//! `snaplab compare`: one BGSAVE per strategy while writer threads keep updating keys,
//! each output verified against the keyspace as it was at the cut.
//!
//! For each strategy:
//! 1. a store is built by loading the dataset's dump, as a restarted server would be (this
//!    also gives each store a realistic heap layout: a fresh in-memory copy allocated in
//!    iteration order would make every save look faster than it is in production);
//! 2. `writers` threads start issuing `SET` to uniformly random existing keys, each value
//!    naming its writer and sequence number; every write's stamp and latency is logged;
//! 3. once every writer has completed a write, BGSAVE is called, and waited for;
//! 4. the writers stop; the file is decoded and compared with the dataset plus exactly
//!    the logged writes the reported cut includes, replayed in stamp order.
//!
//! The writers here are closed-loop: each issues its next write when the last returns,
//! so "longest stall" is the longest single write latency that overlapped the save.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use snaplab_core::{Bytes, Command, Keyspace, SaveOptions, WriteStamp, escape, rdb, unix_ms_now};

use crate::progress;
use crate::registry::StrategyEntry;

/// One row of the comparison (also its JSON object; field names are a contract).
#[derive(Clone, Debug, Serialize)]
pub struct CompareRow {
    /// Strategy name.
    pub strategy: String,
    /// Loading the dataset's dump into the strategy, ms.
    pub load_ms: f64,
    /// From the BGSAVE call until it returned with the cut taken, ms.
    pub time_to_cut_ms: f64,
    /// From the BGSAVE call until the file was in place, ms.
    pub save_ms: f64,
    /// The longest single write that overlapped the save, ms (0 with no writers).
    pub max_stall_ms: f64,
    /// Writes that completed between the BGSAVE call and the end of the save.
    pub writes_during_save: u64,
    /// Size of the dump, bytes.
    pub file_bytes: u64,
    /// Whether the dump decoded to exactly the keyspace at the cut.
    pub verified: bool,
    /// Why verification failed, when it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verify_error: Option<String>,
}

/// How to run the comparison.
#[derive(Clone, Debug)]
pub struct CompareConfig {
    /// Writer threads during each save (0 times the save alone).
    pub writers: usize,
    /// Where dump files go.
    pub dir: PathBuf,
    /// Show progress bars.
    pub progress: bool,
    /// Seed for the writers' key choice.
    pub seed: u64,
}

/// One logged write. The command itself is not kept: it is rebuilt from the writer id,
/// its sequence number and the key index, which keeps the log small at millions of writes.
#[derive(Clone, Copy, Debug)]
struct WriteRec {
    stamp: WriteStamp,
    writer: u32,
    n: u64,
    key: u32,
    start: Duration,
    latency: Duration,
}

/// The value writer `writer` stores in its `n`-th write: recognisable, `size` bytes.
fn write_value(writer: u32, n: u64, size: usize) -> Bytes {
    let mut v = format!("w{writer}:{n}:").into_bytes();
    v.resize(size.max(v.len()), b'.');
    v
}

fn write_command(keys: &[(usize, Bytes)], rec: &WriteRec, value_size: usize) -> Command {
    let (db, key) = &keys[rec.key as usize];
    Command::Set { db: *db, key: key.clone(), value: write_value(rec.writer, rec.n, value_size), expire_at_ms: None }
}

/// Every (db, key) of a keyspace, for the writers to choose from.
pub fn key_list(ks: &Keyspace) -> Vec<(usize, Bytes)> {
    ks.iter().map(|(db, k, _)| (db, k.clone())).collect()
}

/// Run one strategy through the comparison: load `source` (a dump of `dataset`) into it,
/// save while writers run, verify.
///
/// # Errors
/// A failed save or a failed write (a verification failure is a row with
/// `verified: false`, not an error).
pub fn run_one(
    entry: &StrategyEntry,
    source: &Path,
    dataset: &Keyspace,
    keys: &Arc<Vec<(usize, Bytes)>>,
    value_size: usize,
    cfg: &CompareConfig,
) -> Result<CompareRow> {
    let load_started = Instant::now();
    let (loaded, _) = rdb::load_file(source).with_context(|| format!("loading {}", source.display()))?;
    let store = (entry.build)(loaded);
    let load_time = load_started.elapsed();
    let dest = cfg.dir.join(format!("compare-{}.rdb", entry.name));
    let writers = if keys.is_empty() { 0 } else { cfg.writers };

    let epoch = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let ready = Arc::new(Barrier::new(writers + 1));
    let handles: Vec<_> = (0..writers as u32)
        .map(|w| {
            let (store, stop, ready) = (Arc::clone(&store), Arc::clone(&stop), Arc::clone(&ready));
            let keys = Arc::clone(keys);
            let keys_len = keys.len();
            let seed = cfg.seed.wrapping_mul(1000).wrapping_add(u64::from(w));
            thread::spawn(move || -> Result<Vec<WriteRec>> {
                let mut rng = ChaCha8Rng::seed_from_u64(seed);
                let mut log = Vec::new();
                let mut n = 0u64;
                while n == 0 || !stop.load(Ordering::Relaxed) {
                    let key = rng.random_range(0..keys_len) as u32;
                    let mut rec = WriteRec {
                        stamp: WriteStamp { shard: 0, seq: 0 },
                        writer: w,
                        n,
                        key,
                        start: Duration::ZERO,
                        latency: Duration::ZERO,
                    };
                    let cmd = write_command(&keys, &rec, value_size);
                    let t0 = Instant::now();
                    let applied = store.apply(&cmd).map_err(|e| anyhow::anyhow!("writer {w}: {e}"))?;
                    rec.latency = t0.elapsed();
                    rec.start = t0 - epoch;
                    rec.stamp = applied.stamp;
                    log.push(rec);
                    n += 1;
                    if n == 1 {
                        // Every writer is running before the save starts.
                        ready.wait();
                    }
                }
                Ok(log)
            })
        })
        .collect();
    ready.wait();

    let counter = Arc::new(AtomicU64::new(0));
    let opts = SaveOptions { progress: Some(Arc::clone(&counter)), ..SaveOptions::default() };
    let bar = progress::track(entry.name, "keys", dataset.len() as u64, counter, cfg.progress);
    let called = epoch.elapsed();
    let save = store.bgsave(&dest, &opts);
    let cut_taken = epoch.elapsed();
    let report = save.and_then(|bg| bg.wait());
    let ended = epoch.elapsed();
    drop(bar);
    stop.store(true, Ordering::Relaxed);

    let mut log = Vec::new();
    for h in handles {
        log.extend(h.join().map_err(|_| anyhow::anyhow!("a writer thread panicked"))??);
    }
    let report = report.with_context(|| format!("{}: BGSAVE failed", entry.name))?;

    let overlaps = |r: &WriteRec| r.start < ended && r.start + r.latency > called;
    let max_stall = log.iter().filter(|r| overlaps(r)).map(|r| r.latency).max().unwrap_or_default();
    let done_during =
        log.iter().filter(|r| r.start + r.latency >= called && r.start + r.latency <= ended).count() as u64;

    let verdict = verify(&dest, dataset, keys, value_size, &report.cut, &log);
    drop(store);

    Ok(CompareRow {
        strategy: entry.name.to_string(),
        load_ms: ms(load_time),
        time_to_cut_ms: ms(cut_taken - called),
        save_ms: ms(ended - called),
        max_stall_ms: ms(max_stall),
        writes_during_save: done_during,
        file_bytes: report.bytes,
        verified: verdict.is_ok(),
        verify_error: verdict.err().map(|e| format!("{e:#}")),
    })
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}

/// Decode `dest` and check it equals `dataset` plus exactly the writes the cut includes.
fn verify(
    dest: &Path,
    dataset: &Keyspace,
    keys: &[(usize, Bytes)],
    value_size: usize,
    cut: &snaplab_core::Cut,
    log: &[WriteRec],
) -> Result<()> {
    let (decoded, _) = rdb::load_file(dest).with_context(|| format!("decoding {}", dest.display()))?;
    let mut included: Vec<&WriteRec> = log.iter().filter(|r| cut.includes(r.stamp)).collect();
    included.sort_by_key(|r| r.stamp);
    let mut expected = dataset.clone();
    let now = unix_ms_now();
    for r in included {
        expected.apply(&write_command(keys, r, value_size), now)?;
    }
    if decoded == expected {
        return Ok(());
    }
    // Name the first difference, so a failure says where to look.
    for (db, key, want) in expected.iter() {
        match decoded.get(db, key) {
            None => bail!("key {} (db {db}) is missing from the dump", escape(key)),
            Some(got) if got != want => bail!("key {} (db {db}) differs from its value at the cut", escape(key)),
            _ => {}
        }
    }
    for (db, key, _) in decoded.iter() {
        if expected.get(db, key).is_none() {
            bail!("key {} (db {db}) is in the dump but not in the keyspace at the cut", escape(key));
        }
    }
    bail!("the dump differs from the keyspace at the cut (function libraries)")
}

/// The comparison table as text, one row per strategy.
pub fn table(rows: &[CompareRow]) -> String {
    let mut out = format!(
        "{:<10} {:>10} {:>12} {:>10} {:>12} {:>16} {:>14} {:>9}\n",
        "strategy", "load (ms)", "cut (ms)", "save (ms)", "stall (ms)", "writes in save", "file (bytes)", "verified"
    );
    for r in rows {
        out.push_str(&format!(
            "{:<10} {:>10.1} {:>12.3} {:>10.1} {:>12.3} {:>16} {:>14} {:>9}\n",
            r.strategy,
            r.load_ms,
            r.time_to_cut_ms,
            r.save_ms,
            r.max_stall_ms,
            r.writes_during_save,
            r.file_bytes,
            if r.verified { "yes" } else { "NO" }
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writer values carry their writer and sequence number and have the requested size.
    #[test]
    fn write_values() {
        assert_eq!(write_value(3, 17, 12), b"w3:17:......".to_vec());
        assert_eq!(write_value(3, 17, 2), b"w3:17:".to_vec(), "never truncated below its tag");
    }
}
