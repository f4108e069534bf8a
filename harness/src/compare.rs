//! `snaplab compare`: one BGSAVE per strategy while writer threads keep updating keys,
//! each dump verified against the keyspace as it was at the cut, with what the save cost;
//! and the same measured from outside for a real redis-server ([`redis`]).
//!
//! Two [`Transport`]s. With `resp` (the default when the Redis row is in the table), each
//! strategy runs as `snaplab serve` and is driven and measured from outside exactly as
//! redis-server is ([`redis::run_server`]). With `inproc`, the rest of this module: [`run_one`].
//!
//! For each strategy, in a fresh process (so memory figures start from a clean heap):
//! 1. the dataset's dump is loaded twice: once as the reference for verification, once
//!    into the strategy, as a restarted server would be (this also gives the store a
//!    realistic heap layout; a fresh copy allocated in iteration order makes every save
//!    look faster than it is in production). The resident memory the store added, less
//!    the writers' key list the harness allocates meanwhile, is `dataset_bytes`;
//! 2. writer threads run the open-loop load of [`crate::load`]: writes on a fixed schedule,
//!    latency from each write's intended start, so a stall cannot hide;
//! 3. after a baseline window without a save, BGSAVE is called and waited for, while a
//!    sampler reads the process's resident memory every 2 ms and the writers note their
//!    CPU time as the save starts and ends;
//! 4. the writers go on for [`AFTER_SAVE`] (for the plots), then stop; the dump is decoded
//!    and compared with the dataset plus exactly the writes the reported cut includes,
//!    replayed in stamp order.

pub mod disk;
pub mod interrupt;
pub mod overload;
pub mod redis;
pub mod repeat;
pub mod run_info;
pub mod save_end;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use snaplab_core::memory::{private_dirty_bytes, resident_bytes};
use snaplab_core::{Command, Cut, Keyspace, SaveOptions, escape, rdb, unix_ms_now};

use crate::load::{self, KeyList, LatencyStats, Load, LoadSpec, WriteRec};
use crate::progress;
use crate::registry::StrategyEntry;

/// How a row's writes and BGSAVE reach the store.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    /// Every row is a server process on a unix socket (redis-server, or `snaplab serve` for
    /// a strategy), driven over RESP, one connection per writer, one request in flight on
    /// each, and measured from outside ([`redis::run_server`]): the same costs in every row.
    Resp,
    /// A strategy's row calls the store in the writers' own process ([`run_one`]): no
    /// socket, write stamps, the strategy's own cut; for studying a strategy alone.
    Inproc,
}

impl std::fmt::Display for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Transport::Resp => "resp",
            Transport::Inproc => "inproc",
        })
    }
}

/// One row of the comparison (also its JSON object; field names are a contract). A figure
/// that does not apply (latency with no writers) is `null`, never a made-up 0.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CompareRow {
    /// Strategy name.
    pub strategy: String,
    /// How the row was driven and measured: `"resp"` (a server over a unix socket; Redis's
    /// row always is) or `"inproc"` (function calls in one process). `null` in rows written
    /// before the field existed, which were all `inproc` but Redis's.
    #[serde(default)]
    pub transport: Option<Transport>,
    /// Loading the dataset's dump into the strategy, ms: reading and decoding the file plus
    /// building the store from it (for Redis: its log's load time; `null` when its log did
    /// not say). The harness's own key list, built in between, is not timed.
    #[serde(deserialize_with = "nan_if_null")]
    pub load_ms: f64,
    /// From the BGSAVE call until it returned with the cut taken, ms.
    pub time_to_cut_ms: f64,
    /// From the BGSAVE call until the file was in place, ms.
    pub save_ms: f64,
    /// The longest write latency (from its intended start) that overlapped the save, ms.
    pub max_stall_ms: f64,
    /// The longest time during the save that writers were held: a span in which a write
    /// was due and no writer completed any write, ms ([`writers_held_ns`]). For a store that
    /// blocks writers (SAVE, a copy under the lock, `fork()`), how long it blocked them, which
    /// the cut alone does not show. `None` without writers.
    #[serde(default)]
    pub writers_held_ms: Option<f64>,
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
    /// Whether the load was more than the row could serve before the save began: its
    /// baseline fell more than 5% short of the target rate, or its latency grew through the
    /// baseline window ([`overload`]). Its latencies then measure a queue, not the save,
    /// and no ratio is computed against it.
    #[serde(default)]
    pub overloaded: bool,
    /// Writes completed per second in the baseline window, to set beside the target rate
    /// (the same count as `baseline_writes_per_s`).
    #[serde(default)]
    pub achieved_rate_per_s: Option<f64>,
    /// Why the row is `overloaded`, in words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overload_reason: Option<String>,
    /// The most resident memory the save added above the moment BGSAVE was called (the
    /// harness's own write log excluded), plus memory it used in other processes (a forked
    /// child's copy-on-write pages), bytes.
    pub peak_extra_memory_bytes: Option<u64>,
    /// Resident memory the loaded store occupies, bytes (for a strategy, the harness's own
    /// key list, allocated in the same process meanwhile, left out; Redis's process holds
    /// nothing of the harness).
    pub dataset_bytes: Option<u64>,
    /// `peak_extra_memory_bytes / dataset_bytes`.
    pub peak_extra_memory_fraction: Option<f64>,
    /// CPU time spent on the save during it (the strategy's own threads, a forked child,
    /// for Redis the BGSAVE child), seconds.
    pub cpu_saver_s: Option<f64>,
    /// CPU time the writes cost during the save (the writer threads; for Redis the
    /// server's main process serving them), seconds.
    pub cpu_writers_s: Option<f64>,
    /// Writes completed per second during the save.
    pub save_writes_per_s: Option<f64>,
    /// Writes completed per second in the baseline window.
    pub baseline_writes_per_s: Option<f64>,
    /// Strategy-specific figures, each name ending in its unit (`fork_us`,
    /// `rdb_last_cow_size_bytes`, ...). A strategy's figure named like one of this row's
    /// fields is its own measure of something the row measures differently, and is
    /// renamed `strategy_reported_<name>` ([`figure_name`]), so one name has one meaning.
    #[serde(default)]
    pub figures: std::collections::BTreeMap<String, f64>,
    /// The run's settings and the machine it ran on, the same in every row of a run (set
    /// by `snaplab compare` once the row is in).
    #[serde(default)]
    pub run: Option<run_info::RunInfo>,
    /// With `--repeat N` above 1: every run's own row, in the order they ran (the fields
    /// above then hold the medians, [`repeat`]). Absent for a single run.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub runs: Vec<CompareRow>,
    /// With `--repeat N` above 1: each numeric field's median, min, max and how many runs
    /// had it, by field name (a strategy's own figure as `figures.<name>`). Absent for a
    /// single run.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub spread: std::collections::BTreeMap<String, repeat::Spread>,
}

/// A figure that could not be measured is NaN in memory and `null` in JSON (serde_json
/// writes NaN as `null`); read `null` back as NaN.
fn nan_if_null<'de, D: serde::Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
}

/// What one run recorded over time, for the plots. Times are ms relative to the moment
/// BGSAVE was called (negative: the baseline window before it).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Trace {
    /// The row's strategy label.
    pub strategy: String,
    /// Width of one latency window, ms.
    pub window_ms: f64,
    /// Per window of intended start times: (window start, ms; the largest write latency
    /// in it, µs). Windows in which no write was due are absent.
    pub latency_max_us: Vec<(f64, f64)>,
    /// Per window: (window start, ms; the median write latency in it, µs).
    pub latency_p50_us: Vec<(f64, f64)>,
    /// Resident memory the save added, sampled: (ms, bytes).
    pub extra_memory_bytes: Vec<(f64, u64)>,
    /// When BGSAVE returned with the cut taken, ms (the call itself is at 0).
    pub cut_ms: f64,
    /// When the save ended (file in place), ms.
    pub end_ms: f64,
}

/// How to run the comparison for one strategy.
#[derive(Clone, Debug)]
pub struct CompareConfig {
    /// The write load during the save (and in the baseline window before it).
    pub load: LoadSpec,
    /// How long writers run before BGSAVE is called (the baseline window).
    pub baseline: Duration,
    /// Where dump files go.
    pub dir: PathBuf,
    /// The `--out-dir`: where Redis's dump is copied (`compare-redis.rdb`) and where a
    /// dump that failed verification is kept (`None`: no copy of Redis's, and a failed one
    /// goes to the current directory), since `dir` may be a temporary directory.
    pub keep_dir: Option<PathBuf>,
    /// Show progress bars.
    pub progress: bool,
    /// Writers' values take sizes sampled from the dump's strings
    /// ([`KeyList::sample_value_sizes`]) instead of `load.value_size`.
    pub sample_value_sizes: bool,
}

/// The file name of a row's dump in the run's directory (`compare-<strategy>.rdb`;
/// Redis's, copied there with `--out-dir`, is `compare-redis.rdb`).
pub fn dump_name(strategy: &str) -> String {
    format!("compare-{strategy}.rdb")
}

/// How long writers go on after the save ended, so the plots show the recovery.
pub const AFTER_SAVE: Duration = Duration::from_millis(300);

/// Width of one window of the latency-over-time series, ms.
pub const WINDOW_MS: f64 = 10.0;

/// CPU time this process has used, all threads, ns (`CLOCK_PROCESS_CPUTIME_ID`).
fn process_cpu_ns() -> Option<u64> {
    let t = nix::time::clock_gettime(nix::time::ClockId::CLOCK_PROCESS_CPUTIME_ID).ok()?;
    Some(t.tv_sec() as u64 * 1_000_000_000 + t.tv_nsec() as u64)
}

/// CPU time of this process's children that have been waited for, ns (a forked BGSAVE
/// child counts once its parent has reaped it).
fn children_cpu_ns() -> Option<u64> {
    let r = nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_CHILDREN).ok()?;
    let ns = |t: nix::sys::time::TimeVal| t.tv_sec() as u64 * 1_000_000_000 + t.tv_usec() as u64 * 1000;
    Some(ns(r.user_time()) + ns(r.system_time()))
}

/// Samples of resident memory above a base, taken by a thread every 2 ms.
pub(crate) struct MemorySampler {
    running: Arc<AtomicBool>,
    handle: thread::JoinHandle<Vec<MemSample>>,
}

/// One sample: when (relative to the origin), how much extra, and the sampler thread's
/// own CPU time so far (so its cost can be left out of the saver's).
#[derive(Clone, Copy, Debug)]
pub(crate) struct MemSample {
    pub(crate) t: Duration,
    pub(crate) extra_bytes: u64,
    pub(crate) own_cpu_ns: u64,
}

impl MemorySampler {
    /// Start sampling `read()` (extra bytes now, or `None` when unreadable) from `origin`.
    pub(crate) fn start(origin: Instant, mut read: impl FnMut() -> Option<u64> + Send + 'static) -> Self {
        let running = Arc::new(AtomicBool::new(true));
        let flag = Arc::clone(&running);
        let handle = thread::spawn(move || {
            let cpu0 = load::thread_cpu_ns().unwrap_or(0);
            let mut samples = Vec::with_capacity(4096);
            // Polling is the measurement itself: resident memory has no change notification.
            while flag.load(Ordering::Relaxed) {
                if let Some(extra_bytes) = read() {
                    let own_cpu_ns = load::thread_cpu_ns().unwrap_or(0).saturating_sub(cpu0);
                    samples.push(MemSample { t: origin.elapsed(), extra_bytes, own_cpu_ns });
                }
                thread::sleep(Duration::from_millis(2));
            }
            samples
        });
        MemorySampler { running, handle }
    }

    /// Stop and return the samples.
    pub(crate) fn stop(self) -> Vec<MemSample> {
        self.running.store(false, Ordering::Relaxed);
        self.handle.join().unwrap_or_default()
    }
}

/// Private dirty memory of a process's children (a forked BGSAVE child's copy-on-write
/// pages), re-read at most every 20 ms because reading `smaps_rollup` walks the child's
/// page tables. Children are found in `/proc/<pid>/task/<tid>/children` for every thread,
/// since the thread that forked is the one that lists the child.
pub(crate) struct ChildMemory {
    pid: u32,
    last: Option<(Instant, u64)>,
    seen: Arc<AtomicBool>,
}

impl ChildMemory {
    pub(crate) fn new(pid: u32) -> Self {
        ChildMemory { pid, last: None, seen: Arc::new(AtomicBool::new(false)) }
    }

    /// A flag that turns true once a child with private dirty memory has been read.
    pub(crate) fn seen_flag(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.seen)
    }

    /// Bytes now (or as of the last read, if under 20 ms ago).
    pub(crate) fn read(&mut self) -> u64 {
        if let Some((at, bytes)) = self.last
            && at.elapsed() < Duration::from_millis(20)
        {
            return bytes;
        }
        let bytes: u64 = child_pids(self.pid).into_iter().filter_map(private_dirty_bytes).sum();
        if bytes > 0 {
            self.seen.store(true, Ordering::Relaxed);
        }
        self.last = Some((Instant::now(), bytes));
        bytes
    }
}

/// The pids of `pid`'s children, over all its threads (Linux `/proc/<pid>/task/*/children`).
pub(crate) fn child_pids(pid: u32) -> Vec<i32> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else { return Vec::new() };
    tasks
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("children")).ok())
        .flat_map(|text| text.split_whitespace().filter_map(|p| p.parse().ok()).collect::<Vec<i32>>())
        .collect()
}

/// The largest extra memory among samples taken up to `until` (since the origin).
pub(crate) fn peak_until(samples: &[MemSample], until: Duration) -> Option<u64> {
    samples.iter().filter(|s| s.t <= until).map(|s| s.extra_bytes).max()
}

/// The trace of one run: latency windows relative to `called` (ns on the load's clock),
/// memory samples relative to the same moment.
pub(crate) fn make_trace(
    label: &str,
    log: &[WriteRec],
    called_ns: u64,
    samples: &[MemSample],
    cut: Duration,
    end: Duration,
) -> Trace {
    let series = load::latency_series(log, called_ns, (WINDOW_MS * 1e6) as u64);
    Trace {
        strategy: label.to_string(),
        window_ms: WINDOW_MS,
        latency_max_us: series.iter().map(|&(t, max, _)| (t, max)).collect(),
        latency_p50_us: series.iter().map(|&(t, _, p50)| (t, p50)).collect(),
        extra_memory_bytes: samples.iter().map(|s| (ms(s.t), s.extra_bytes)).collect(),
        cut_ms: ms(cut),
        end_ms: ms(end),
    }
}

/// Run one strategy through the comparison: load `source` into it, save while writers run,
/// measure, verify. Returns the row and what it recorded over time.
///
/// # Errors
/// An unreadable dump, a failed save or a failed write (a verification failure is a row
/// with `verified: false`, not an error).
pub fn run_one(entry: &StrategyEntry, source: &Path, cfg: &CompareConfig) -> Result<(CompareRow, Trace)> {
    // The reference for verification is loaded only after the save: holding a second copy
    // of the dataset during it would inflate what fork copies and what the sampler sees.
    // The load is the dump read into a store the strategy's own way, as a restarted server
    // does it (`SnapshotStrategy::load`: the pipelined loader).
    let rss_before_load = resident_bytes(None);
    let load_started = Instant::now();
    let store = (entry.load)(source).with_context(|| format!("loading {}", source.display()))?;
    let load_time = load_started.elapsed();
    let dataset_bytes = store_resident_bytes(rss_before_load, resident_bytes(None), 0);
    // The harness's own key list (a copy of every key, for the writers) is read from the
    // dump after the timed load and after the store's memory is measured.
    let keys = KeyList::from_dump(source, cfg.sample_value_sizes)
        .with_context(|| format!("listing the keys of {}", source.display()))?;
    let keys = Arc::new(keys);
    let total_keys = store.len() as u64;

    let dest = cfg.dir.join(dump_name(entry.name));
    let load = Load::start(&cfg.load, Arc::clone(&keys), |_| {
        let store = Arc::clone(&store);
        Ok(move |cmd: &Command| store.apply(cmd).map(|a| a.stamp).map_err(anyhow::Error::from))
    })?;

    // The baseline window: writers run, no save. Waiting for wall-clock time to pass.
    let baseline_end = load.start_time() + if load.writers() > 0 { cfg.baseline } else { Duration::ZERO };
    thread::sleep(baseline_end.saturating_duration_since(Instant::now()));

    // Resident memory above the moment BGSAVE is called, less the growth of the harness's
    // own write log.
    let log_bytes = load.log_bytes_fn();
    let (rss_at_call, log_at_call) = (resident_bytes(None), log_bytes());
    let log_bytes_after = log_bytes.clone();
    let extra_now = move || {
        resident_bytes(None)
            .zip(rss_at_call)
            .map(|(now, base)| now.saturating_sub(base).saturating_sub(log_bytes_after().saturating_sub(log_at_call)))
    };
    let counter = Arc::new(AtomicU64::new(0));
    let opts = SaveOptions { progress: Some(Arc::clone(&counter)), ..SaveOptions::default() };
    let bar = progress::track(entry.name, "keys", total_keys, counter, cfg.progress);
    let (cpu_before, children_before) = (process_cpu_ns(), children_cpu_ns());
    // The sampler's clock starts just before the BGSAVE call's (its samples are placed at
    // most that thread start late, far below its 2 ms interval); the call's own clock starts
    // after the sampler thread is running, so `cut ms` and `save ms` time the strategy only.
    let sampler_origin = Instant::now();
    let mut children = ChildMemory::new(std::process::id());
    let child_seen = children.seen_flag();
    let sampler = MemorySampler::start(sampler_origin, move || {
        let now = resident_bytes(None)?;
        let here = now.saturating_sub(rss_at_call?).saturating_sub(log_bytes().saturating_sub(log_at_call));
        Some(here + children.read())
    });
    load.set_phase(load::PHASE_SAVE);
    let called = Instant::now();
    let save = store.bgsave(&dest, &opts);
    let cut_taken = Instant::now();
    let report = save.and_then(|bg| bg.wait());
    let ended = Instant::now();
    load.set_phase(load::PHASE_AFTER);
    let (cpu_after, children_after) = (process_cpu_ns(), children_cpu_ns());
    drop(bar);
    // Writers go on a little, so the plots show what happens after the save.
    if report.is_ok() {
        thread::sleep(AFTER_SAVE);
    }
    let samples = sampler.stop();
    // What the save left resident once it ended, and what of that the allocator was only
    // keeping for reuse: measured after the plotted samples, so the plot shows the store as
    // it runs, untrimmed.
    let after_save = extra_now();
    let after_trim = trim_heap().then(extra_now).flatten();
    let (called_ns, ended_ns) = (load.ns(called), load.ns(ended));
    let (start_ns, baseline_end_ns) = (load.ns(load.start_time()), load.ns(baseline_end));
    let finished = load.finish()?;
    let log = finished.log;
    let report = report.with_context(|| format!("{}: BGSAVE failed", entry.name))?;
    let stats = LatencyStats::new(&log, start_ns, baseline_end_ns, called_ns, ended_ns);
    let overload = overload::assess(&log, start_ns, baseline_end_ns, cfg.load.rate);
    drop(store);
    let verdict = rdb::load_file(source)
        .with_context(|| format!("loading {}", source.display()))
        .and_then(|(dataset, _)| verify(&dest, &dataset, &keys, cfg.load.value_size, &report.cut, &log));
    // A forked child's copied pages are not in this process's resident size; the strategy
    // measures them and reports them as memory used elsewhere.
    // The samples include a forked child's copied pages, read every 20 ms; the strategy's
    // own figure for them (read every 100 ms) only stands in when no sample saw the child,
    // as in a save shorter than the sampling interval.
    let elsewhere = report.figure(snaplab_core::EXTRA_MEMORY_ELSEWHERE).filter(|_| !child_seen.load(Ordering::Relaxed));
    let peak_extra = match (peak_until(&samples, ended - called), elsewhere) {
        (Some(here), other) => Some(here + other.unwrap_or(0)),
        (None, other) => other,
    };
    // The saver's CPU is everything this process (and a reaped child) spent during the
    // save except the writers and the memory sampler.
    let sampler_cpu = samples.iter().filter(|s| s.t <= ended - called).map(|s| s.own_cpu_ns).max().unwrap_or(0);
    let cpu_saver_s = cpu_before.zip(cpu_after).zip(children_before.zip(children_after)).map(|((b, a), (cb, ca))| {
        let total = (a - b) + (ca - cb);
        secs(total.saturating_sub(finished.cpu_during_save_ns.unwrap_or(0)).saturating_sub(sampler_cpu))
    });
    let trace = make_trace(entry.name, &log, called_ns, &samples, cut_taken - called, ended - called);
    let row = CompareRow {
        strategy: entry.name.to_string(),
        transport: Some(Transport::Inproc),
        load_ms: ms(load_time),
        time_to_cut_ms: ms(cut_taken - called),
        save_ms: ms(ended - called),
        max_stall_ms: stats.max_stall_ns as f64 / 1e6,
        writes_during_save: stats.done_during_save,
        file_bytes: report.bytes,
        verified: verdict.is_ok(),
        verify_error: verdict.err().map(|e| format!("{e:#}")),
        cpu_saver_s,
        cpu_writers_s: finished.cpu_during_save_ns.map(secs),
        figures: report
            .figures
            .iter()
            .map(|(n, v)| (figure_name(n), *v as f64))
            .chain(after_save.map(|b| (AFTER_SAVE_FIGURE.to_string(), b as f64)))
            .chain(after_trim.map(|b| (AFTER_TRIM_FIGURE.to_string(), b as f64)))
            .collect(),
        writers_held_ms: writers_held_ns(&log, called_ns, ended_ns).map(|ns| ns as f64 / 1e6),
        ..row_figures(&stats, overload, peak_extra, dataset_bytes)
    };
    Ok((row, trace))
}

/// Figure: the resident memory the save had added that was still there [`AFTER_SAVE`]
/// after it ended (the harness's write log left out), bytes.
pub const AFTER_SAVE_FIGURE: &str = "after_save_extra_memory_bytes";
/// Figure: the same, right after glibc's `malloc_trim(0)` handed free heap pages back to
/// the kernel, bytes. The difference is memory the store had already freed and the
/// allocator was keeping for reuse (glibc keeps freed chunks in its arenas, one arena
/// per thread that allocated, and returns only the top of each heap on its own).
pub const AFTER_TRIM_FIGURE: &str = "after_malloc_trim_extra_memory_bytes";

/// Ask glibc to return the free memory of every arena to the kernel (`malloc_trim(0)`,
/// glibc `malloc/malloc.c`). Returns whether it was asked (only glibc has it).
///
/// Production note: a store could call this after each save; Redis, on jemalloc, has its
/// allocator purge dirty pages in the background instead.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)] // An FFI call; see the SAFETY note.
fn trim_heap() -> bool {
    // SAFETY: malloc_trim takes no pointers and only releases memory malloc holds free; it
    // locks each arena while it works, so other threads may allocate meanwhile.
    unsafe { libc::malloc_trim(0) };
    true
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn trim_heap() -> bool {
    false
}

/// The name a strategy's own figure takes in the row: `strategy_reported_<name>` when
/// the row has a field of that name (cow reports `peak_extra_memory_bytes`, the resident
/// peak it sampled at its own writes, whole process; the row's field is the harness's
/// sampled peak with its own write log left out), else the name itself.
pub fn figure_name(name: &str) -> String {
    let fields = serde_json::to_value(row_figures(
        &LatencyStats::new(&[], 0, 0, 0, 0),
        overload::Overload::default(),
        None,
        None,
    ))
    .ok();
    let taken = fields.as_ref().and_then(|v| v.as_object()).is_some_and(|o| o.contains_key(name));
    if taken { format!("strategy_reported_{name}") } else { name.to_string() }
}

/// The longest span, overlapping `[called, ended)` (ns on the log's clock), in which some
/// write was due and no write by any writer completed: for each write, from when it was
/// due (or the completion just before its own, if later) until it completed. A writer
/// idle between writes is not held; writers queued behind one lock are. `None` without
/// writes.
pub fn writers_held_ns(log: &[WriteRec], called: u64, ended: u64) -> Option<u64> {
    if log.is_empty() {
        return None;
    }
    let mut done: Vec<u64> = log.iter().map(|r| r.done_ns).collect();
    done.sort_unstable();
    let mut held = 0;
    for r in log {
        let i = done.partition_point(|&d| d < r.done_ns);
        let from = r.intended_ns.max(if i == 0 { 0 } else { done[i - 1] });
        if r.done_ns > called && from < ended {
            held = held.max(r.done_ns.saturating_sub(from));
        }
    }
    Some(held)
}

/// The resident memory a loaded store occupies, bytes: the process's growth from `before`
/// loading to `after` building the store, less `harness_bytes` that the harness allocated
/// meanwhile for itself (the writers' key list), which is not the store's and which
/// Redis's row does not include either. `None` when resident size is unreadable.
fn store_resident_bytes(before: Option<u64>, after: Option<u64>, harness_bytes: u64) -> Option<u64> {
    after.zip(before).map(|(a, b)| a.saturating_sub(b).saturating_sub(harness_bytes))
}

/// The figures every row computes the same way from the latency stats and memory.
pub(crate) fn row_figures(
    stats: &LatencyStats,
    overload: overload::Overload,
    peak_extra: Option<u64>,
    dataset_bytes: Option<u64>,
) -> CompareRow {
    CompareRow {
        strategy: String::new(),
        transport: None,
        load_ms: 0.0,
        time_to_cut_ms: 0.0,
        save_ms: 0.0,
        max_stall_ms: stats.max_stall_ns as f64 / 1e6,
        writers_held_ms: None,
        writes_during_save: stats.done_during_save,
        file_bytes: 0,
        verified: false,
        verify_error: None,
        latency_p50_us: stats.save.as_ref().map(|h| us(h.value_at_quantile(0.5))),
        latency_p99_us: stats.save.as_ref().map(|h| us(h.value_at_quantile(0.99))),
        latency_p999_us: stats.save.as_ref().map(|h| us(h.value_at_quantile(0.999))),
        latency_max_us: stats.save.as_ref().map(|h| us(h.max())),
        baseline_p99_us: stats.baseline.as_ref().map(|h| us(h.value_at_quantile(0.99))),
        throughput_ratio: stats.throughput_ratio,
        overloaded: overload.overloaded(),
        achieved_rate_per_s: overload.achieved_rate_per_s,
        overload_reason: overload.reason,
        peak_extra_memory_bytes: peak_extra,
        dataset_bytes,
        peak_extra_memory_fraction: peak_extra
            .zip(dataset_bytes.filter(|&d| d > 0))
            .map(|(p, d)| (p as f64 / d as f64 * 10_000.0).round() / 10_000.0),
        cpu_saver_s: None,
        cpu_writers_s: None,
        save_writes_per_s: stats.save_per_s,
        baseline_writes_per_s: stats.baseline_per_s,
        figures: Default::default(),
        run: None,
        runs: Vec::new(),
        spread: Default::default(),
    }
}

fn secs(ns: u64) -> f64 {
    (ns as f64 / 1e6).round() / 1e3
}

pub(crate) fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}

fn us(ns: u64) -> f64 {
    (ns as f64 / 10.0).round() / 100.0
}

/// Decode `dest` and check it equals `dataset` plus exactly the writes the cut includes.
/// A key that differs is named, with whether the dump is ahead of the cut (it holds a
/// write the cut does not include) or behind it (it lacks one the cut includes).
fn verify(
    dest: &Path,
    dataset: &Keyspace,
    keys: &KeyList,
    value_size: usize,
    cut: &Cut,
    log: &[WriteRec],
) -> Result<()> {
    // An RDB-preamble AOF (the relaxed strategy's) is its RDB with the command tail applied;
    // its report's cut counts the writes before the log's close.
    let (decoded, _) = snaplab_core::aof::load_file(dest).with_context(|| format!("decoding {}", dest.display()))?;
    let mut in_order: Vec<&WriteRec> = log.iter().collect();
    in_order.sort_by_key(|r| r.stamp);
    let mut expected = dataset.clone();
    let now = unix_ms_now();
    for r in in_order.iter().filter(|r| cut.includes(r.stamp)) {
        expected.apply(&r.command(keys, value_size), now)?;
    }
    if decoded == expected {
        return Ok(());
    }
    let Some((db, key)) = first_difference(&expected, &decoded) else {
        bail!("the dump differs from the keyspace at the cut in its function libraries");
    };
    let found = decoded.get(db, &key);
    let what = match found {
        None => "is missing from the dump".to_string(),
        Some(_) if expected.get(db, &key).is_none() => "is in the dump but not in the keyspace at the cut".into(),
        Some(_) => "differs from its value at the cut".into(),
    };
    let how = ahead_or_behind(dataset, keys, value_size, &in_order, cut, db, &key, found);
    bail!("key {} (db {db}) {what}: {how}", escape(&key))
}

/// The first key on which `decoded` (a dump) and `expected` differ: missing, different or
/// extra. `None` when every key agrees.
pub(crate) fn first_difference(expected: &Keyspace, decoded: &Keyspace) -> Option<(usize, Vec<u8>)> {
    for (db, key, want) in expected.iter() {
        if decoded.get(db, key) != Some(want) {
            return Some((db, key.clone()));
        }
    }
    decoded.iter().find(|(db, key, _)| expected.get(*db, key).is_none()).map(|(db, key, _)| (db, key.clone()))
}

/// Where the dump's state of one key sits among the states the writes gave it, relative
/// to the cut: ahead (a write after the cut is in), behind (a write before it is missing),
/// or nowhere (no write produced it).
#[allow(clippy::too_many_arguments)]
fn ahead_or_behind(
    dataset: &Keyspace,
    keys: &KeyList,
    value_size: usize,
    in_order: &[&WriteRec],
    cut: &Cut,
    db: usize,
    key: &[u8],
    found: Option<&snaplab_core::Entry>,
) -> String {
    let now = unix_ms_now();
    let mut scratch = Keyspace::new();
    if let Some(e) = dataset.get(db, key) {
        scratch.insert(db, key.to_vec(), e.clone());
    }
    // The key's states in write order: (the write that produced it, whether the cut has it).
    let mut states: Vec<(Option<&WriteRec>, bool, Option<snaplab_core::Entry>)> =
        vec![(None, true, scratch.get(db, key).cloned())];
    for r in in_order {
        let cmd = r.command(keys, value_size);
        if cmd.db() == Some(db) && cmd.key() == Some(key) {
            let _ = scratch.apply(&cmd, now);
            states.push((Some(r), cut.includes(r.stamp), scratch.get(db, key).cloned()));
        }
    }
    let at_cut = states.iter().rposition(|(_, included, _)| *included).unwrap_or(0);
    let name = |r: Option<&WriteRec>| {
        r.map_or("the dataset".to_string(), |r| format!("writer {}'s write #{}", r.writer, r.n + 1))
    };
    match states.iter().rposition(|(_, _, s)| s.as_ref() == found) {
        Some(j) if j > at_cut => format!(
            "the dump is ahead of the cut: it holds the state after {}, which the cut does not include ({} write(s) to \
             this key after the cut)",
            name(states[j].0),
            j - at_cut
        ),
        Some(j) if j < at_cut => format!(
            "the dump is behind the cut: it holds the state before {}, which the cut includes ({} write(s) to this key \
             missing)",
            name(states[j + 1].0),
            at_cut - j
        ),
        _ => format!(
            "no write to this key produced the state the dump holds ({} writes to it were logged)",
            states.len() - 1
        ),
    }
}

fn opt(v: Option<f64>, prec: usize) -> String {
    v.filter(|x| x.is_finite()).map_or_else(|| "-".to_string(), |x| format!("{x:.prec$}"))
}

fn mib(v: Option<u64>) -> String {
    v.map_or_else(|| "-".to_string(), |b| format!("{:.1}", b as f64 / (1024.0 * 1024.0)))
}

/// `value / anchor`, when both are known and the anchor is not 0.
fn ratio(value: Option<f64>, anchor: Option<f64>) -> Option<f64> {
    value.zip(anchor.filter(|a| *a > 0.0)).map(|(v, a)| v / a)
}

/// One figure of a row as the table prints it: `show` formats a value in the field's own
/// unit; with `--repeat`, the range of the runs follows in the same format, as in
/// `0.41 (0.38-0.52)`, unless every run prints the same. `key` is the field's JSON name, as
/// in [`CompareRow::spread`].
fn cell(r: &CompareRow, key: &str, value: Option<f64>, show: impl Fn(Option<f64>) -> String) -> String {
    let shown = show(value);
    match r.spread.get(key).map(|s| (show(Some(s.min)), show(Some(s.max)))) {
        Some((min, max)) if min != shown || max != shown => format!("{shown} ({min}-{max})"),
        _ => shown,
    }
}

/// One of the table's sections: a header line, then one line per row (label, cells, and a
/// suffix after the last cell). The first column is left-aligned to `w`; every other is
/// right-aligned to its header's width or its widest cell, whichever is wider.
fn section(out: &mut String, w: usize, head: &[(&str, usize)], lines: Vec<(&str, Vec<String>, &str)>) {
    let widths: Vec<usize> = head
        .iter()
        .enumerate()
        .skip(1)
        .map(|(i, (_, min))| lines.iter().filter_map(|(_, c, _)| c.get(i - 1)).map(String::len).fold(*min, usize::max))
        .collect();
    out.push_str(&format!("{:<w$}", head[0].0));
    for ((name, _), width) in head[1..].iter().zip(&widths) {
        out.push_str(&format!(" {name:>width$}"));
    }
    out.push('\n');
    for (label, cells, suffix) in lines {
        out.push_str(&format!("{label:<w$}"));
        for (c, width) in cells.iter().zip(&widths) {
            out.push_str(&format!(" {c:>width$}"));
        }
        out.push_str(suffix);
        out.push('\n');
    }
}

/// The comparison as text: three tables (the save, writes during it, memory), one line
/// per row in each. When a Redis row is present (its label starts with `redis-`), the
/// `x redis` columns give each row's figure divided by Redis's.
///
/// A row flagged `overloaded` (its baseline could not keep up with the load) says so at the
/// end of its WRITES line, and when it is the Redis row, no `x redis` ratio is computed
/// against it.
pub fn table(rows: &[CompareRow]) -> String {
    let redis = rows.iter().find(|r| r.strategy.starts_with("redis-"));
    let anchor = redis.filter(|r| !r.overloaded);
    let w = rows.iter().map(|r| r.strategy.len()).max().unwrap_or(8).max(8);
    let mut out = String::new();
    // The strategies' transport (Redis's row is always through its socket).
    let transport = rows.iter().find(|r| !r.strategy.starts_with("redis-")).or(rows.first()).and_then(|r| r.transport);
    if let Some(run) = rows.first().and_then(|r| r.run.as_ref()) {
        out.push_str(&format!(
            "LOAD: {} writer(s) at {} writes/s, keys {}, mix {}; values {}\n",
            run.writers, run.rate_per_s, run.keys_dist, run.mix, run.value_sizes
        ));
        if run.repeat > 1 {
            out.push_str(&format!(
                "REPEAT: every row run {} times, each in a fresh process; a figure is the median of its runs, \
                 (min-max) beside it; ratios are of the medians\n",
                run.repeat
            ));
        }
    }
    match transport {
        Some(Transport::Resp) => out.push_str(
            "TRANSPORT: resp (every row through a unix socket, one RESP connection per writer, one request in flight \
             on each)\n",
        ),
        Some(Transport::Inproc) => out.push_str(
            "TRANSPORT: inproc (each strategy's writers call the store in its own process, no socket; a redis row \
             goes through its socket)\n",
        ),
        None => {}
    }
    if transport.is_some() || rows.first().is_some_and(|r| r.run.is_some()) {
        out.push('\n');
    }
    let save = rows
        .iter()
        .map(|r| {
            let cells = vec![
                cell(r, "time_to_cut_ms", Some(r.time_to_cut_ms), |v| opt(v, 3)),
                cell(r, "writers_held_ms", r.writers_held_ms, |v| opt(v, 1)),
                cell(r, "save_ms", Some(r.save_ms), |v| opt(v, 1)),
                opt(ratio(Some(r.save_ms), anchor.map(|a| a.save_ms)), 2),
                cell(r, "file_bytes", Some(r.file_bytes as f64), |v| mib(v.map(|b| b as u64))),
                cell(r, "load_ms", Some(r.load_ms), |v| opt(v, 0)),
                cell(r, "cpu_saver_s", r.cpu_saver_s, |v| opt(v, 2)),
                (if r.verified { "yes" } else { "NO" }).to_string(),
            ];
            (r.strategy.as_str(), cells, "")
        })
        .collect();
    section(
        &mut out,
        w,
        &[
            ("SAVE", 0),
            ("cut ms", 9),
            ("held ms", 9),
            ("save ms", 10),
            ("x redis", 8),
            ("file MiB", 9),
            ("load ms", 9),
            ("cpu s", 8),
            ("verified", 8),
        ],
        save,
    );
    let rel = |r: &CompareRow| ratio(r.latency_p99_us, r.baseline_p99_us);
    let writes = rows
        .iter()
        .map(|r| {
            let cells = vec![
                cell(r, "latency_p50_us", r.latency_p50_us, |v| opt(v, 0)),
                cell(r, "latency_p99_us", r.latency_p99_us, |v| opt(v, 0)),
                cell(r, "latency_p999_us", r.latency_p999_us, |v| opt(v, 0)),
                cell(r, "latency_max_us", r.latency_max_us, |v| opt(v.map(|u| u / 1000.0), 2)),
                cell(r, "baseline_p99_us", r.baseline_p99_us, |v| opt(v, 0)),
                opt(rel(r), 2),
                opt(ratio(r.latency_p99_us, anchor.and_then(|a| a.latency_p99_us)), 2),
                cell(r, "throughput_ratio", r.throughput_ratio, |v| opt(v, 2)),
                cell(r, "writes_during_save", Some(r.writes_during_save as f64), |v| opt(v, 0)),
                cell(r, "cpu_writers_s", r.cpu_writers_s, |v| opt(v, 2)),
                cell(r, "achieved_rate_per_s", r.achieved_rate_per_s, |v| opt(v, 0)),
            ];
            (r.strategy.as_str(), cells, if r.overloaded { " OVERLOADED" } else { "" })
        })
        .collect();
    out.push('\n');
    section(
        &mut out,
        w,
        &[
            ("WRITES", 0),
            ("p50 us", 8),
            ("p99 us", 8),
            ("p99.9 us", 9),
            ("max ms", 9),
            ("base p99", 9),
            ("p99/base", 8),
            ("x redis", 8),
            ("tput ratio", 10),
            ("writes", 8),
            ("cpu s", 8),
            ("base w/s", 9),
        ],
        writes,
    );
    let memory = rows
        .iter()
        .map(|r| {
            let bytes = |v: Option<f64>| mib(v.map(|b| b as u64));
            let cells = vec![
                cell(r, "dataset_bytes", r.dataset_bytes.map(|b| b as f64), bytes),
                cell(r, "peak_extra_memory_bytes", r.peak_extra_memory_bytes.map(|b| b as f64), bytes),
                cell(r, "peak_extra_memory_fraction", r.peak_extra_memory_fraction, |v| opt(v.map(|f| f * 100.0), 1)),
                opt(
                    ratio(
                        r.peak_extra_memory_bytes.map(|b| b as f64),
                        anchor.and_then(|a| a.peak_extra_memory_bytes).map(|b| b as f64),
                    ),
                    2,
                ),
            ];
            (r.strategy.as_str(), cells, "")
        })
        .collect();
    out.push('\n');
    section(
        &mut out,
        w,
        &[("MEMORY", 0), ("data MiB", 10), ("+peak MiB", 10), ("% own data", 10), ("x redis", 8)],
        memory,
    );
    out.push_str("\nheld ms: the longest the writers were held during the save (writes due, none completing);\n");
    out.push_str("cut ms is only when the snapshot's instant was fixed.\n");
    out.push_str("WRITES: writes due during the save; p99/base: their p99 over the p99 without a save;\n");
    out.push_str("x redis: their p99 over Redis's p99 during its save.\n");
    out.push_str("cpu s: the saver's CPU seconds (SAVE), the writers' (WRITES).");
    if transport == Some(Transport::Resp) {
        out.push_str(" Every row is measured the same way, from\n");
        out.push_str(
            "outside its server: cut ms is the BGSAVE round trip, save ms ends at the dump's rename (inotify),\n",
        );
        out.push_str(
            "memory is the server's resident growth plus a forked child's private dirty pages, cpu s comes from\n",
        );
        out.push_str(
            "INFO cpu (WRITES: the server threads serving the writers, in 10 ms ticks; SAVE: the rest and any\n",
        );
        out.push_str(
            "child), load ms from the server's log, and every dump goes to the black-box point-in-time checker\n",
        );
        out.push_str(
            "(relaxed's at its log's close, the window its server reports). Latencies include the socket round\n",
        );
        out.push_str("trip in every row. A figure the socket cannot show is `-`.\n");
    } else {
        out.push_str(" Redis's latencies include a\n");
        out.push_str("socket round trip: compare ratios across rows, not microseconds.\n");
    }
    out.push_str("base w/s: writes completed per second before the save, to set beside the target rate.\n");
    out.push_str("% own data: +peak over the row's own data MiB (each store holds the same keys its own way).\n");
    for r in rows.iter().filter(|r| r.overloaded) {
        out.push_str(&format!(
            "OVERLOADED {}: {}. The load is more than it serves here: its latencies measure a queue, not \
             the save{}. Lower --rate or --writers.\n",
            r.strategy,
            r.overload_reason.as_deref().unwrap_or("its baseline did not keep up"),
            if redis.is_some_and(|a| std::ptr::eq(a, r)) {
                ", and no x redis ratio is computed against it"
            } else {
                ""
            }
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A dump that differs from the keyspace at the cut is named with its direction: ahead
    /// (it holds a write after the cut), behind (it lacks one before), or neither.
    #[test]
    fn a_wrong_dump_says_whether_it_is_ahead_or_behind() {
        let dir = tempfile::tempdir().unwrap();
        let dataset = crate::dataset::generate(&crate::dataset::DatasetSpec { keys: 20, value_size: 8, seed: 1 });
        let keys = KeyList::new(&dataset);
        // Three overwrites of key 5, stamped 1, 2, 3; the cut includes two.
        let log: Vec<WriteRec> = (0..3)
            .map(|n| WriteRec {
                stamp: snaplab_core::WriteStamp { shard: 0, seq: n + 1 },
                writer: 0,
                op: load::Op::Overwrite,
                n,
                key: 5,
                intended_ns: n * 10,
                issued_ns: n * 10,
                done_ns: n * 10 + 1,
            })
            .collect();
        let cut = Cut::single(2);
        let dump = |upto: usize, tamper: bool| {
            let mut ks = dataset.clone();
            for r in &log[..upto] {
                ks.apply(&r.command(&keys, 8), unix_ms_now()).unwrap();
            }
            if tamper {
                let (db, key) = keys.get(5);
                ks.insert(db, key.to_vec(), snaplab_core::Entry::new(snaplab_core::Value::String(b"zz".to_vec())));
            }
            let path = dir.path().join(format!("dump-{upto}-{tamper}.rdb"));
            snaplab_core::write_snapshot(&ks, &path, &SaveOptions::default(), "test").unwrap();
            path
        };
        verify(&dump(2, false), &dataset, &keys, 8, &cut, &log).unwrap();
        let ahead = verify(&dump(3, false), &dataset, &keys, 8, &cut, &log).unwrap_err().to_string();
        assert!(ahead.contains("ahead of the cut") && ahead.contains("write #3"), "{ahead}");
        let behind = verify(&dump(1, false), &dataset, &keys, 8, &cut, &log).unwrap_err().to_string();
        assert!(behind.contains("behind the cut") && behind.contains("write #2"), "{behind}");
        let neither = verify(&dump(2, true), &dataset, &keys, 8, &cut, &log).unwrap_err().to_string();
        assert!(neither.contains("no write to this key produced"), "{neither}");
    }

    /// A strategy whose BGSAVE holds the write lock for 200 ms after taking its cut: an
    /// injected stall, nothing else unusual. With `SLOW_MS` above 0, every write also
    /// sleeps that long, so the store serves at most 1000 / `SLOW_MS` writes per second per
    /// writer: a load above that is past its capacity whatever the machine.
    struct Stalling<const SLOW_MS: u64 = 0> {
        store: Arc<snaplab_core::LockedKeyspace>,
        saves: Arc<snaplab_core::SaveState>,
    }

    impl<const SLOW_MS: u64> snaplab_core::SnapshotStrategy for Stalling<SLOW_MS> {
        const NAME: &'static str = "stalling";
        fn from_keyspace(ks: Keyspace) -> Self {
            Stalling { store: Arc::new(snaplab_core::LockedKeyspace::new(ks)), saves: snaplab_core::SaveState::new() }
        }
        fn apply(&self, cmd: &Command) -> Result<snaplab_core::Applied, snaplab_core::CommandError> {
            if SLOW_MS > 0 {
                thread::sleep(Duration::from_millis(SLOW_MS));
            }
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

    /// `dataset_bytes` leaves out the writers' key list: its heap bytes (at least the keys'
    /// bytes plus 5 per key) come off the growth measured around the load.
    #[test]
    fn dataset_bytes_leave_out_the_key_list() {
        let ks = crate::dataset::generate(&crate::dataset::DatasetSpec { keys: 10_000, value_size: 16, seed: 1 });
        let keys = KeyList::new(&ks);
        let key_bytes: u64 = ks.iter().map(|(_, k, _)| k.len() as u64).sum();
        let list = keys.heap_bytes();
        assert!(list >= key_bytes + 5 * keys.len() as u64, "{list} bytes for {} keys of {key_bytes} bytes", keys.len());
        let store = 50 << 20;
        assert_eq!(store_resident_bytes(Some(1 << 30), Some((1 << 30) + store + list), list), Some(store));
        assert_eq!(store_resident_bytes(None, Some(store), list), None);
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
            load: LoadSpec {
                writers: 1,
                rate: 2000.0,
                seed: 1,
                value_size: 16,
                dist: load::KeyDist::Uniform,
                mix: load::WriteMix::default(),
            },
            baseline: Duration::from_millis(100),
            dir: dir.path().to_path_buf(),
            keep_dir: None,
            progress: false,
            sample_value_sizes: false,
        };
        let (row, trace) = run_one(&crate::registry::entry::<Stalling>("test"), &source, &cfg).unwrap();
        assert!(row.verified, "{:?}", row.verify_error);
        assert!(row.max_stall_ms >= 200.0, "max stall {} ms", row.max_stall_ms);
        assert!(row.writers_held_ms.unwrap() >= 200.0, "held {:?} ms", row.writers_held_ms);
        assert!(row.latency_max_us.unwrap() >= 200_000.0);
        // At 2000 writes/s, ~400 writes were due during the stall; most waited > 100 ms.
        assert!(row.latency_p50_us.unwrap() >= 10_000.0, "p50 {:?} µs", row.latency_p50_us);
        assert!(row.baseline_p99_us.unwrap() < 200_000.0);
        // The plot's series shows the stall inside the save window, and the memory was sampled.
        assert!(trace.end_ms >= 200.0 && trace.cut_ms <= trace.end_ms);
        let worst = trace.latency_max_us.iter().filter(|(t, _)| (0.0..trace.end_ms).contains(t)).map(|p| p.1);
        assert!(worst.fold(0.0, f64::max) >= 200_000.0, "{:?}", trace.latency_max_us);
        assert!(trace.latency_max_us.iter().any(|(t, _)| *t < 0.0), "the baseline is in the series");
        assert!(!trace.extra_memory_bytes.is_empty());
        assert!(row.cpu_writers_s.is_some() && row.cpu_saver_s.is_some());
        // What the save left resident, before and after malloc_trim (glibc only).
        if cfg!(all(target_os = "linux", target_env = "gnu")) {
            for f in [AFTER_SAVE_FIGURE, AFTER_TRIM_FIGURE] {
                assert!(row.figures.contains_key(f), "{f} in {:?}", row.figures);
            }
        }
    }

    /// A store that serves at most 1,000 writes/s (each write sleeps 1 ms) under a load of
    /// 4,000 writes/s: the row is flagged overloaded, in the JSON (`overloaded: true`,
    /// `achieved_rate_per_s` at most 1,000) and at the end of its line in the table.
    #[test]
    fn a_row_driven_past_its_capacity_is_flagged_overloaded() {
        let dir = tempfile::tempdir().unwrap();
        let source = dir.path().join("dataset.rdb");
        let ks = crate::dataset::generate(&crate::dataset::DatasetSpec { keys: 2000, value_size: 16, seed: 1 });
        snaplab_core::write_snapshot(&ks, &source, &SaveOptions::default(), "test").unwrap();
        let cfg = CompareConfig {
            load: LoadSpec {
                writers: 1,
                rate: 4000.0,
                seed: 1,
                value_size: 16,
                dist: load::KeyDist::Uniform,
                mix: load::WriteMix::default(),
            },
            baseline: Duration::from_millis(300),
            dir: dir.path().to_path_buf(),
            keep_dir: None,
            progress: false,
            sample_value_sizes: false,
        };
        let (row, _) = run_one(&crate::registry::entry::<Stalling<1>>("test"), &source, &cfg).unwrap();
        assert!(row.verified, "{:?}", row.verify_error);
        let json = serde_json::to_value(&row).unwrap();
        assert_eq!(json["overloaded"], true, "{json}");
        let achieved = json["achieved_rate_per_s"].as_f64().unwrap();
        assert!(achieved > 0.0 && achieved <= 1000.0, "{achieved} writes/s from a store that serves 1000");
        assert!(row.overload_reason.as_deref().is_some_and(|r| r.contains("of the 4000 writes/s due")), "{row:?}");
        let table = table(std::slice::from_ref(&row));
        assert!(table.lines().any(|l| l.starts_with("stalling") && l.ends_with("OVERLOADED")), "{table}");
    }

    /// An overloaded Redis row is left out of the ratios: every `x redis` cell is `-`, and
    /// the note says why; a healthy Redis row anchors them.
    #[test]
    fn no_ratio_is_computed_against_an_overloaded_redis_row() {
        let row = |name: &str, save_ms: f64, p99: f64, overloaded: bool| CompareRow {
            strategy: name.into(),
            save_ms,
            latency_p99_us: Some(p99),
            overloaded,
            ..row_figures(&LatencyStats::new(&[], 0, 0, 0, 0), overload::Overload::default(), Some(1 << 20), None)
        };
        let x_redis = |t: &str| -> Vec<String> {
            // The `x redis` column of each table: SAVE's 5th field, WRITES' 8th, MEMORY's 5th.
            let mut cells = Vec::new();
            let mut section = "";
            for l in t.lines() {
                let f: Vec<&str> = l.split_whitespace().collect();
                match f.first() {
                    Some(&"SAVE") | Some(&"WRITES") | Some(&"MEMORY") => section = f[0],
                    Some(&"cow") => cells.push(
                        match section {
                            "SAVE" => f[4],
                            "WRITES" => f[7],
                            _ => f[4],
                        }
                        .to_string(),
                    ),
                    _ => {}
                }
            }
            cells
        };
        let healthy = table(&[row("redis-7 (fork)", 100.0, 50.0, false), row("cow", 50.0, 100.0, false)]);
        assert_eq!(x_redis(&healthy), ["0.50", "2.00", "1.00"], "{healthy}");
        let over = table(&[row("redis-7 (fork)", 100.0, 50.0, true), row("cow", 50.0, 100.0, false)]);
        assert_eq!(x_redis(&over), ["-", "-", "-"], "{over}");
        assert!(over.contains("no x redis ratio is computed against it"), "{over}");
    }

    /// The table says which transport its strategy rows used (the Redis row's is always
    /// its socket), and only an in-process table keeps the note that Redis's latencies
    /// alone include a socket round trip.
    #[test]
    fn the_table_names_its_transport() {
        let row = |name: &str, transport: Transport| CompareRow {
            strategy: name.into(),
            transport: Some(transport),
            ..row_figures(&LatencyStats::new(&[], 0, 0, 0, 0), overload::Overload::default(), None, None)
        };
        let resp = table(&[row("redis-7 (fork)", Transport::Resp), row("cow", Transport::Resp)]);
        assert!(resp.starts_with("TRANSPORT: resp (every row through a unix socket"), "{resp}");
        assert!(!resp.contains("compare ratios across rows"), "{resp}");
        let inproc = table(&[row("redis-7 (fork)", Transport::Resp), row("cow", Transport::Inproc)]);
        assert!(inproc.starts_with("TRANSPORT: inproc"), "{inproc}");
        assert!(inproc.contains("compare ratios across rows, not microseconds"), "{inproc}");
    }

    /// Writers held: the longest span in which a write was due and none completed. One
    /// writer every 10 ms, each served in 1 ms, is held 1 ms at a time; a 300 ms lock in
    /// the save holds it 300 ms (and a second writer completing meanwhile would free it).
    #[test]
    fn writers_held_is_the_longest_span_without_a_completion() {
        const MS: u64 = 1_000_000;
        let rec = |writer: u32, n: u64, due_ms: u64, done_ms: u64| WriteRec {
            stamp: snaplab_core::WriteStamp { shard: 0, seq: n + 1 },
            writer,
            op: load::Op::Overwrite,
            n,
            key: 0,
            intended_ns: due_ms * MS,
            issued_ns: due_ms * MS,
            done_ns: done_ms * MS,
        };
        let steady: Vec<WriteRec> = (0..100).map(|n| rec(0, n, n * 10, n * 10 + 1)).collect();
        assert_eq!(writers_held_ns(&steady, 200 * MS, 600 * MS), Some(MS));
        // Due at 300, 310, ... 590: all wait for a lock released at 600.
        let mut locked = steady.clone();
        for r in locked.iter_mut().filter(|r| (300 * MS..600 * MS).contains(&r.intended_ns)) {
            r.done_ns = 600 * MS;
        }
        assert_eq!(writers_held_ns(&locked, 200 * MS, 700 * MS), Some(300 * MS));
        // The same, outside the save window: not counted.
        assert_eq!(writers_held_ns(&locked, 700 * MS, 900 * MS), Some(MS));
        // Another writer completing at 450 ms splits the span in two.
        locked.push(rec(1, 0, 449, 450));
        assert_eq!(writers_held_ns(&locked, 200 * MS, 700 * MS), Some(150 * MS));
        assert_eq!(writers_held_ns(&[], 0, 1), None);
    }

    /// A strategy's figure named like a row field is renamed; others keep their name.
    #[test]
    fn a_figure_named_like_a_row_field_is_renamed() {
        assert_eq!(figure_name("peak_extra_memory_bytes"), "strategy_reported_peak_extra_memory_bytes");
        assert_eq!(figure_name("fork_us"), "fork_us");
    }
}
