//! `snaplab compare`: one BGSAVE per strategy while writer threads keep updating keys,
//! each dump verified against the keyspace as it was at the cut, with what the save cost.
//!
//! For each strategy, in a fresh process (so memory figures start from a clean heap):
//! 1. the dataset's dump is loaded twice: once as the reference for verification, once
//!    into the strategy, as a restarted server would be (this also gives the store a
//!    realistic heap layout; a fresh copy allocated in iteration order makes every save
//!    look faster than it is in production). The resident memory the store added is
//!    `dataset_bytes`;
//! 2. `writers` threads issue `SET`s to uniformly random existing keys, **open-loop**: each
//!    write has an intended start time on a fixed schedule (`rate` writes per second in
//!    all), and its latency is measured from that intended time, so a writer held up by a
//!    stall still accounts for every write it should have issued meanwhile (no coordinated
//!    omission). Values name their writer and sequence number;
//! 3. after a baseline window without a save, BGSAVE is called and waited for, while a
//!    sampler reads the process's resident memory every 2 ms;
//! 4. the writers stop; the dump is decoded and compared with the dataset plus exactly
//!    the writes the reported cut includes, replayed in stamp order.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use hdrhistogram::Histogram;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use snaplab_core::memory::resident_bytes;
use snaplab_core::{Bytes, Command, Cut, Keyspace, SaveOptions, WriteStamp, escape, rdb, unix_ms_now};

use crate::progress;
use crate::registry::StrategyEntry;

/// One row of the comparison (also its JSON object; field names are a contract). A figure
/// that does not apply (latency with no writers) is `null`, never a made-up 0.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CompareRow {
    /// Strategy name.
    pub strategy: String,
    /// Loading the dataset's dump into the strategy, ms.
    pub load_ms: f64,
    /// From the BGSAVE call until it returned with the cut taken, ms.
    pub time_to_cut_ms: f64,
    /// From the BGSAVE call until the file was in place, ms.
    pub save_ms: f64,
    /// The longest write latency (from its intended start) that overlapped the save, ms.
    pub max_stall_ms: f64,
    /// Writes that completed between the BGSAVE call and the end of the save.
    pub writes_during_save: u64,
    /// Size of the dump, bytes.
    pub file_bytes: u64,
    /// Whether the dump decoded to exactly the keyspace at the cut.
    pub verified: bool,
    /// Why verification failed, when it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verify_error: Option<String>,
    /// Median write latency during the save, µs.
    pub latency_p50_us: Option<f64>,
    /// 99th percentile write latency during the save, µs.
    pub latency_p99_us: Option<f64>,
    /// 99.9th percentile write latency during the save, µs.
    pub latency_p999_us: Option<f64>,
    /// Maximum write latency during the save, µs.
    pub latency_max_us: Option<f64>,
    /// 99th percentile write latency in the baseline window without a save, µs.
    pub baseline_p99_us: Option<f64>,
    /// Writes completed per second during the save, divided by the same in the baseline.
    pub throughput_ratio: Option<f64>,
    /// The most resident memory the save added above the moment BGSAVE was called (the
    /// harness's own write log excluded), plus memory it used in other processes (a forked
    /// child's copy-on-write pages), bytes.
    pub peak_extra_memory_bytes: Option<u64>,
    /// Resident memory the loaded store occupies, bytes.
    pub dataset_bytes: Option<u64>,
}

/// How to run the comparison for one strategy.
#[derive(Clone, Debug)]
pub struct CompareConfig {
    /// Writer threads during the save (0 times the save alone).
    pub writers: usize,
    /// Target writes per second, all writers together.
    pub rate: f64,
    /// How long writers run before BGSAVE is called (the baseline window).
    pub baseline: Duration,
    /// Where dump files go.
    pub dir: PathBuf,
    /// Show progress bars.
    pub progress: bool,
    /// Seed for the writers' key choice.
    pub seed: u64,
    /// Bytes per value the writers store.
    pub value_size: usize,
}

/// One logged write. The command is not kept: it is rebuilt from the writer id, its
/// sequence number and the key index, which keeps the log small.
#[derive(Clone, Copy, Debug)]
struct WriteRec {
    stamp: WriteStamp,
    writer: u32,
    n: u64,
    key: u32,
    intended_ns: u64,
    done_ns: u64,
}

impl WriteRec {
    fn latency_ns(&self) -> u64 {
        self.done_ns.saturating_sub(self.intended_ns)
    }
}

/// The value writer `writer` stores in its `n`-th write: recognisable, `size` bytes.
fn write_value(writer: u32, n: u64, size: usize) -> Bytes {
    let mut v = format!("w{writer}:{n}:").into_bytes();
    v.resize(size.max(v.len()), b'.');
    v
}

fn write_command(keys: &KeyList, rec: &WriteRec, value_size: usize) -> Command {
    let (db, key) = keys.get(rec.key as usize);
    Command::Set { db, key: key.to_vec(), value: write_value(rec.writer, rec.n, value_size), expire_at_ms: None }
}

/// Every (db, key) of a keyspace, sorted, for the writers to choose from: packed into
/// three allocations, because the harness's own memory is part of what `fork` copies
/// page tables for and what the memory sampler sees.
pub struct KeyList {
    dbs: Vec<u8>,
    ends: Vec<u32>,
    bytes: Vec<u8>,
}

impl KeyList {
    /// The keys of `ks`, sorted by (db, key).
    pub fn new(ks: &Keyspace) -> Self {
        let mut keys: Vec<(usize, &[u8])> = ks.iter().map(|(db, k, _)| (db, k.as_slice())).collect();
        keys.sort_unstable();
        let mut list =
            KeyList { dbs: Vec::with_capacity(keys.len()), ends: Vec::with_capacity(keys.len()), bytes: Vec::new() };
        for (db, k) in keys {
            list.dbs.push(db as u8);
            list.bytes.extend_from_slice(k);
            list.ends.push(list.bytes.len() as u32);
        }
        list
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.dbs.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.dbs.is_empty()
    }

    /// The `i`-th (db, key).
    pub fn get(&self, i: usize) -> (usize, &[u8]) {
        let start = if i == 0 { 0 } else { self.ends[i - 1] as usize };
        (self.dbs[i] as usize, &self.bytes[start..self.ends[i] as usize])
    }
}

/// Run one strategy through the comparison: load `source` into it, save while writers run,
/// measure, verify.
///
/// # Errors
/// An unreadable dump, a failed save or a failed write (a verification failure is a row
/// with `verified: false`, not an error).
pub fn run_one(entry: &StrategyEntry, source: &Path, cfg: &CompareConfig) -> Result<CompareRow> {
    // The reference for verification is loaded only after the save: holding a second copy
    // of the dataset during it would inflate what fork copies and what the sampler sees.
    let rss_before_load = resident_bytes(None);
    let load_started = Instant::now();
    let (loaded, _) = rdb::load_file(source).with_context(|| format!("loading {}", source.display()))?;
    let keys = Arc::new(KeyList::new(&loaded));
    let total_keys = loaded.len() as u64;
    let store = (entry.build)(loaded);
    let load_time = load_started.elapsed();
    let dataset_bytes = resident_bytes(None).zip(rss_before_load).map(|(a, b)| a.saturating_sub(b));

    let dest = cfg.dir.join(format!("compare-{}.rdb", entry.name));
    let writers = if keys.is_empty() { 0 } else { cfg.writers };
    let epoch = Instant::now();
    let ns = move |t: Instant| t.duration_since(epoch).as_nanos() as u64;
    let start = epoch + Duration::from_millis(5);
    let stop = Arc::new(AtomicBool::new(false));
    // Published so the memory sampler can subtract the harness's own log growth.
    let log_lens: Arc<Vec<AtomicUsize>> = Arc::new((0..writers).map(|_| AtomicUsize::new(0)).collect());
    let interval = Duration::from_secs_f64(writers.max(1) as f64 / cfg.rate.max(1.0));
    let handles: Vec<_> = (0..writers)
        .map(|w| {
            let (store, stop, keys, lens) =
                (Arc::clone(&store), Arc::clone(&stop), Arc::clone(&keys), Arc::clone(&log_lens));
            let seed = cfg.seed.wrapping_mul(1000).wrapping_add(w as u64);
            let value_size = cfg.value_size;
            thread::spawn(move || -> Result<Vec<WriteRec>> {
                let mut rng = ChaCha8Rng::seed_from_u64(seed);
                let mut log = Vec::with_capacity(1 << 16);
                // Writers start at staggered offsets so they do not all fire together.
                let mut intended = start + interval.mul_f64(w as f64 / writers as f64);
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let now = Instant::now();
                    if intended > now {
                        thread::sleep(intended - now);
                    }
                    let mut rec = WriteRec {
                        stamp: WriteStamp { shard: 0, seq: 0 },
                        writer: w as u32,
                        n,
                        key: rng.random_range(0..keys.len()) as u32,
                        intended_ns: ns(intended),
                        done_ns: 0,
                    };
                    let cmd = write_command(&keys, &rec, value_size);
                    rec.stamp = store.apply(&cmd).map_err(|e| anyhow::anyhow!("writer {w}: {e}"))?.stamp;
                    rec.done_ns = ns(Instant::now());
                    log.push(rec);
                    lens[w].store(log.len(), Ordering::Relaxed);
                    n += 1;
                    intended += interval;
                }
                Ok(log)
            })
        })
        .collect();

    // The baseline window: writers run, no save. Waiting for wall-clock time to pass.
    let baseline_end = start + if writers > 0 { cfg.baseline } else { Duration::ZERO };
    thread::sleep(baseline_end.saturating_duration_since(Instant::now()));

    let log_bytes = {
        let lens = Arc::clone(&log_lens);
        move || lens.iter().map(|l| l.load(Ordering::Relaxed)).sum::<usize>() as u64 * size_of::<WriteRec>() as u64
    };
    let sampling = Arc::new(AtomicBool::new(true));
    let peak = Arc::new(Mutex::new(None::<u64>));
    let (rss_at_call, log_at_call) = (resident_bytes(None), log_bytes());
    let sampler = {
        let (sampling, peak, log_bytes) = (Arc::clone(&sampling), Arc::clone(&peak), log_bytes.clone());
        thread::spawn(move || {
            // Polling is the measurement itself: resident memory has no change notification.
            while sampling.load(Ordering::Relaxed) {
                if let (Some(now), Some(base)) = (resident_bytes(None), rss_at_call) {
                    let extra = now.saturating_sub(base).saturating_sub(log_bytes().saturating_sub(log_at_call));
                    let mut p = peak.lock().unwrap_or_else(|e| e.into_inner());
                    *p = Some(p.map_or(extra, |q| q.max(extra)));
                }
                thread::sleep(Duration::from_millis(2));
            }
        })
    };

    let counter = Arc::new(AtomicU64::new(0));
    let opts = SaveOptions { progress: Some(Arc::clone(&counter)), ..SaveOptions::default() };
    let bar = progress::track(entry.name, "keys", total_keys, counter, cfg.progress);
    let called = Instant::now();
    let save = store.bgsave(&dest, &opts);
    let cut_taken = Instant::now();
    let report = save.and_then(|bg| bg.wait());
    let ended = Instant::now();
    drop(bar);
    sampling.store(false, Ordering::Relaxed);
    stop.store(true, Ordering::Relaxed);
    let _ = sampler.join();

    let mut log = Vec::new();
    for h in handles {
        log.extend(h.join().map_err(|_| anyhow::anyhow!("a writer thread panicked"))??);
    }
    let report = report.with_context(|| format!("{}: BGSAVE failed", entry.name))?;
    let stats = LatencyStats::new(&log, ns(start), ns(baseline_end), ns(called), ns(ended));
    drop(store);
    let verdict = rdb::load_file(source)
        .with_context(|| format!("loading {}", source.display()))
        .and_then(|(dataset, _)| verify(&dest, &dataset, &keys, cfg.value_size, &report.cut, &log));
    // A forked child's copied pages are not in this process's resident size; the strategy
    // measures them and reports them as memory used elsewhere.
    let elsewhere = report.figure(snaplab_core::EXTRA_MEMORY_ELSEWHERE);
    let peak_extra = match (*peak.lock().unwrap_or_else(|e| e.into_inner()), elsewhere) {
        (Some(here), other) => Some(here + other.unwrap_or(0)),
        (None, other) => other,
    };

    Ok(CompareRow {
        strategy: entry.name.to_string(),
        load_ms: ms(load_time),
        time_to_cut_ms: ms(cut_taken - called),
        save_ms: ms(ended - called),
        max_stall_ms: stats.max_stall_ns as f64 / 1e6,
        writes_during_save: stats.done_during_save,
        file_bytes: report.bytes,
        verified: verdict.is_ok(),
        verify_error: verdict.err().map(|e| format!("{e:#}")),
        latency_p50_us: stats.save.as_ref().map(|h| us(h.value_at_quantile(0.5))),
        latency_p99_us: stats.save.as_ref().map(|h| us(h.value_at_quantile(0.99))),
        latency_p999_us: stats.save.as_ref().map(|h| us(h.value_at_quantile(0.999))),
        latency_max_us: stats.save.as_ref().map(|h| us(h.max())),
        baseline_p99_us: stats.baseline.as_ref().map(|h| us(h.value_at_quantile(0.99))),
        throughput_ratio: stats.throughput_ratio,
        peak_extra_memory_bytes: peak_extra,
        dataset_bytes,
    })
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}

fn us(ns: u64) -> f64 {
    (ns as f64 / 10.0).round() / 100.0
}

/// Latency and throughput in the baseline and save windows.
struct LatencyStats {
    baseline: Option<Histogram<u64>>,
    save: Option<Histogram<u64>>,
    max_stall_ns: u64,
    done_during_save: u64,
    throughput_ratio: Option<f64>,
}

impl LatencyStats {
    /// Writes are assigned to a window by their intended start; the stall is the longest
    /// write whose span overlaps the save.
    fn new(log: &[WriteRec], start: u64, baseline_end: u64, called: u64, ended: u64) -> Self {
        let hist = || Histogram::<u64>::new_with_bounds(1, 3_600_000_000_000, 3).expect("static bounds are valid");
        let (mut baseline, mut save) = (hist(), hist());
        let mut max_stall_ns = 0;
        let (mut done_base, mut done_save) = (0u64, 0u64);
        for r in log {
            if (start..baseline_end).contains(&r.intended_ns) {
                baseline.saturating_record(r.latency_ns().max(1));
            }
            if (called..ended).contains(&r.intended_ns) {
                save.saturating_record(r.latency_ns().max(1));
            }
            if r.intended_ns < ended && r.done_ns > called {
                max_stall_ns = max_stall_ns.max(r.latency_ns());
            }
            if (start..baseline_end).contains(&r.done_ns) {
                done_base += 1;
            }
            if (called..=ended).contains(&r.done_ns) {
                done_save += 1;
            }
        }
        let per_s = |n: u64, span: u64| (span > 0).then(|| n as f64 / (span as f64 / 1e9));
        let throughput_ratio = per_s(done_save, ended - called)
            .zip(per_s(done_base, baseline_end - start))
            .and_then(|(s, b)| (b > 0.0).then(|| (s / b * 1000.0).round() / 1000.0));
        LatencyStats {
            baseline: (!baseline.is_empty()).then_some(baseline),
            save: (!save.is_empty()).then_some(save),
            max_stall_ns,
            done_during_save: done_save,
            throughput_ratio,
        }
    }
}

/// Decode `dest` and check it equals `dataset` plus exactly the writes the cut includes.
fn verify(
    dest: &Path,
    dataset: &Keyspace,
    keys: &KeyList,
    value_size: usize,
    cut: &Cut,
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

fn opt(v: Option<f64>, prec: usize) -> String {
    v.map_or_else(|| "-".to_string(), |x| format!("{x:.prec$}"))
}

fn mib(v: Option<u64>) -> String {
    v.map_or_else(|| "-".to_string(), |b| format!("{:.1}", b as f64 / (1024.0 * 1024.0)))
}

/// The comparison table as text, one row per strategy.
pub fn table(rows: &[CompareRow]) -> String {
    let mut out = format!(
        "{:<9} {:>9} {:>10} {:>10} {:>11} {:>9} {:>9} {:>10} {:>8} {:>10} {:>10} {:>12} {:>8}\n",
        "strategy",
        "load ms",
        "cut ms",
        "save ms",
        "stall ms",
        "p99 us",
        "base p99",
        "tput ratio",
        "writes",
        "+mem MiB",
        "data MiB",
        "file bytes",
        "verified"
    );
    for r in rows {
        out.push_str(&format!(
            "{:<9} {:>9.1} {:>10.3} {:>10.1} {:>11.3} {:>9} {:>9} {:>10} {:>8} {:>10} {:>10} {:>12} {:>8}\n",
            r.strategy,
            r.load_ms,
            r.time_to_cut_ms,
            r.save_ms,
            r.max_stall_ms,
            opt(r.latency_p99_us, 0),
            opt(r.baseline_p99_us, 0),
            opt(r.throughput_ratio, 2),
            r.writes_during_save,
            mib(r.peak_extra_memory_bytes),
            mib(r.dataset_bytes),
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

    fn rec(intended_ms: u64, done_ms: u64) -> WriteRec {
        WriteRec {
            stamp: WriteStamp { shard: 0, seq: 1 },
            writer: 0,
            n: 0,
            key: 0,
            intended_ns: intended_ms * 1_000_000,
            done_ns: done_ms * 1_000_000,
        }
    }

    /// A strategy whose BGSAVE holds the write lock for 200 ms after taking its cut: an
    /// injected stall, nothing else unusual.
    struct Stalling {
        store: Arc<snaplab_core::LockedKeyspace>,
        saves: Arc<snaplab_core::SaveState>,
    }

    impl snaplab_core::SnapshotStrategy for Stalling {
        const NAME: &'static str = "stalling";
        fn from_keyspace(ks: Keyspace) -> Self {
            Stalling { store: Arc::new(snaplab_core::LockedKeyspace::new(ks)), saves: snaplab_core::SaveState::new() }
        }
        fn apply(&self, cmd: &Command) -> Result<snaplab_core::Applied, snaplab_core::CommandError> {
            self.store.apply(cmd)
        }
        fn get(&self, db: usize, key: &[u8]) -> Option<snaplab_core::Entry> {
            self.store.get(db, key)
        }
        fn len(&self) -> usize {
            self.store.len()
        }
        fn to_keyspace(&self) -> Keyspace {
            self.store.to_keyspace()
        }
        fn save(&self, dest: &Path, opts: &SaveOptions) -> Result<snaplab_core::SaveReport, snaplab_core::SaveError> {
            self.bgsave(dest, opts)?.wait()
        }
        fn bgsave(&self, dest: &Path, opts: &SaveOptions) -> Result<snaplab_core::BgSave, snaplab_core::SaveError> {
            let ticket = self.saves.begin()?;
            let (store, dest, opts) = (Arc::clone(&self.store), dest.to_path_buf(), opts.clone());
            let (tx, rx) = std::sync::mpsc::channel();
            let h = thread::spawn(move || {
                let guard = store.write();
                let frozen = guard.keyspace.clone();
                let _ = tx.send(guard.cut());
                // The injected stall: every writer waits for the lock meanwhile.
                thread::sleep(Duration::from_millis(200));
                let cut = guard.cut();
                drop(guard);
                let result =
                    snaplab_core::write_snapshot(&frozen, &dest, &opts, "stalling").map(|s| snaplab_core::SaveReport {
                        strategy: "stalling",
                        path: dest.clone(),
                        cut,
                        time_to_cut: Duration::ZERO,
                        duration: Duration::ZERO,
                        bytes: s.bytes,
                        keys: s.keys,
                        finished_at_ms: unix_ms_now(),
                        figures: vec![],
                    });
                ticket.finish(result)
            });
            let cut = rx.recv().map_err(|_| snaplab_core::SaveError::Aborted("no cut".into()))?;
            Ok(snaplab_core::BgSave::new(cut, Duration::ZERO, h))
        }
        fn lastsave(&self) -> Option<i64> {
            self.saves.lastsave()
        }
        fn last_save_status(&self) -> snaplab_core::SaveStatus {
            self.saves.status()
        }
    }

    /// The open-loop recorder accounts for a deliberately injected stall: a writer blocked
    /// for 200 ms shows a maximum latency of at least 200 ms even though it issued nothing
    /// meanwhile, and the writes it should have issued during the stall count their wait.
    #[test]
    fn a_writer_blocked_for_200ms_shows_it() {
        let dir = tempfile::tempdir().unwrap();
        let source = dir.path().join("dataset.rdb");
        let ks = crate::dataset::generate(&crate::dataset::DatasetSpec { keys: 2000, value_size: 16, seed: 1 });
        snaplab_core::write_snapshot(&ks, &source, &SaveOptions::default(), "test").unwrap();
        let cfg = CompareConfig {
            writers: 1,
            rate: 2000.0,
            baseline: Duration::from_millis(100),
            dir: dir.path().to_path_buf(),
            progress: false,
            seed: 1,
            value_size: 16,
        };
        let row = run_one(&crate::registry::entry::<Stalling>("test"), &source, &cfg).unwrap();
        assert!(row.verified, "{:?}", row.verify_error);
        assert!(row.max_stall_ms >= 200.0, "max stall {} ms", row.max_stall_ms);
        assert!(row.latency_max_us.unwrap() >= 200_000.0);
        // At 2000 writes/s, ~400 writes were due during the stall; most waited > 100 ms.
        assert!(row.latency_p50_us.unwrap() >= 10_000.0, "p50 {:?} µs", row.latency_p50_us);
        assert!(row.baseline_p99_us.unwrap() < 200_000.0);
    }

    /// Open-loop accounting: a writer blocked for 200 ms shows a 200 ms latency even though
    /// it issued nothing meanwhile, and every write it should have issued during the block
    /// counts the time it waited (the proof the load is open-loop, not closed-loop).
    #[test]
    fn an_injected_stall_is_accounted_for() {
        // Schedule: one write every 10 ms from t=0. The store blocks from t=100 to t=300:
        // the write intended at 100 completes at 300, and the ones intended at 110..290
        // (never issued on time) complete just after, one by one.
        let mut log = Vec::new();
        for i in 0..10 {
            log.push(rec(i * 10, i * 10 + 1));
        }
        for (k, i) in (10..30).enumerate() {
            log.push(rec(i * 10, 300 + k as u64));
        }
        for i in 30..40 {
            log.push(rec(i * 10, i * 10 + 1));
        }
        // Baseline 0..100 ms, save window 100..400 ms.
        let s = LatencyStats::new(&log, 0, 100_000_000, 100_000_000, 400_000_000);
        assert!(s.max_stall_ns >= 200_000_000, "max {} ns", s.max_stall_ns);
        let save = s.save.unwrap();
        assert!(save.max() >= 200_000_000);
        assert!(save.value_at_quantile(0.5) >= 50_000_000, "half the writes waited behind the stall");
        assert!(s.baseline.unwrap().value_at_quantile(0.99) <= 1_001_000);
    }
}
