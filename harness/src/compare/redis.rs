//! The rows measured through RESP: a server process under test, loaded from the same dump,
//! under the same open-loop write load (through one RESP connection per writer over a unix
//! socket, one request in flight per connection), asked for BGSAVE and measured from
//! outside. The server is either a real redis-server (the `redis-7 (fork)` row, the anchor
//! the strategies are compared to) or `snaplab serve --strategy NAME` (with
//! `compare --transport resp`, every strategy's row): [`ServerUnderTest`]. Both are run and
//! measured by the same code, so a difference between rows is the stores', not the harness's.
//!
//! What is measured, and where it comes from:
//! - load time: the server's log line `DB loaded from disk: <s> seconds` (Redis's, which
//!   `snaplab serve` prints too);
//! - dataset size: the server's resident memory after loading, less an empty server's
//!   (the same program started with nothing to load);
//! - time to cut: the `BGSAVE` round trip (Redis replies once `fork()` has returned, and
//!   `fork()` is the cut; `snaplab serve` once the strategy's `bgsave` has returned with its
//!   cut taken); Redis's `latest_fork_usec` (INFO stats) is reported as `fork_us`;
//! - save duration: from sending `BGSAVE` until its dump is renamed into place, seen with
//!   inotify on the dump's directory ([`save_end`](super::save_end)); `INFO persistence`
//!   shows `rdb_bgsave_in_progress:0` only once Redis's `serverCron` has reaped the child,
//!   up to 100 ms later at `hz 10`, and that moment is reported as `info_save_end_ms`;
//! - memory: the server's resident growth plus its children's `Private_Dirty` (a forked
//!   child's copy-on-write pages: Redis's, or the fork strategy's), sampled;
//!   `rdb_last_cow_size` (INFO persistence, Redis's own figure) is reported as
//!   `rdb_last_cow_size_bytes`;
//! - CPU: `INFO cpu` before and after gives the server's own time and its reaped
//!   children's; the writers' share is the time of the server threads that existed before
//!   BGSAVE was sent, less the one serving the BGSAVE connection (`/proc/<pid>/task/*/stat`,
//!   in clock ticks of 10 ms): Redis's main thread, `snaplab serve`'s connection threads.
//!   The rest, children included, is the saver's ([`cpu_split`]);
//! - latency: from each write's intended start, socket round trip included, for every row
//!   alike.
//! - a strategy's own figures: `INFO persistence` fields `snaplab_<name>` of its last save.
//!
//! Verification: there are no write stamps through a socket, so every dump goes to the
//! black-box point-in-time checker ([`crate::checker`]): the dump must be the keyspace at
//! one instant between sending `BGSAVE` and reading its reply, with any order real time
//! allows for writes whose request-reply intervals overlap. A strategy whose guarantee is
//! the log's close (relaxed: `snaplab_guarantee:at_log_close` in INFO) is checked against
//! the window its server reports for the close instead, from the request to close the log
//! to its acknowledgement (`snaplab_last_log_close_*_monotonic_ns`, on the machine's one
//! monotonic clock, widened by [`CLOCK_SLACK`] for the two reads of the clocks); without
//! it, against the whole save, from sending BGSAVE to the rename, which contains the close.
//! A dump that fails is kept (in `--out-dir`, else the current directory) and the error
//! says where.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use snaplab_core::memory::resident_bytes;
use snaplab_core::{Command, Guarantee, Keyspace, WriteStamp, rdb, unix_ms_now};

use super::save_end::{RenameWatch, wait_for_bgsave_end};
use super::{
    AFTER_SAVE, ChildMemory, CompareConfig, CompareRow, MemorySampler, Trace, make_trace, ms, peak_until, row_figures,
};
use crate::checker::{self, History, Write};
use crate::load::{self, KeyList, LatencyStats, Load, WriteRec};
use crate::redis_server::{RedisServer, ServerOptions};
use crate::serve::fault::ServeFault;

/// Whether a `redis-server` is on `PATH` (then `compare` adds the Redis row by default).
pub fn available() -> bool {
    RedisServer::find().is_some()
}

/// The server a RESP row measures.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ServerUnderTest {
    /// The `redis-server` on `PATH`: the row `redis-<major> (fork)`.
    Redis,
    /// `snaplab serve --strategy <strategy>`, this executable ([`std::env::current_exe`]):
    /// the strategy's row, labelled with its name.
    Snaplab {
        /// The strategy's name.
        strategy: String,
        /// A wrong-on-purpose server (tests only: `compare --serve-fault`).
        fault: Option<ServeFault>,
    },
}

impl ServerUnderTest {
    /// The strategy `name` served without a fault.
    pub fn snaplab(name: &str) -> Self {
        ServerUnderTest::Snaplab { strategy: name.to_string(), fault: None }
    }

    /// How to start it, loading `dump` (or nothing).
    fn options(&self, dump: Option<&Path>) -> ServerOptions {
        let mut opts = ServerOptions {
            dump: dump.map(Path::to_path_buf),
            startup_timeout: Duration::from_secs(1800),
            command_timeout: Duration::from_secs(60),
            ..ServerOptions::default()
        };
        if let ServerUnderTest::Snaplab { strategy, fault } = self {
            opts.serve = Some(strategy.clone());
            if let Some(f) = fault {
                let name = clap::ValueEnum::to_possible_value(f).map(|v| v.get_name().to_string()).unwrap_or_default();
                opts.extra_args = vec!["--fault".into(), name.into()];
            }
        }
        opts
    }

    fn what(&self) -> String {
        match self {
            ServerUnderTest::Redis => "redis-server".into(),
            ServerUnderTest::Snaplab { strategy, .. } => format!("snaplab serve --strategy {strategy}"),
        }
    }
}

/// How much the log-close window a server reports is widened on each side, for the reads of
/// two clocks on each side of the conversion ([`crate::serve::clock`]), microseconds apart.
pub const CLOCK_SLACK: Duration = Duration::from_micros(100);

/// Send one of the load's commands over RESP, switching database first when needed.
fn send(con: &mut redis::Connection, current_db: &mut usize, cmd: &Command) -> Result<()> {
    let db = match cmd {
        Command::Set { db, .. } | Command::Del { db, .. } | Command::HSet { db, .. } => *db,
        other => bail!("the comparison load does not send {other:?}"),
    };
    if db != *current_db {
        redis::cmd("SELECT").arg(db).exec(con).context("SELECT")?;
        *current_db = db;
    }
    let c = match cmd {
        Command::Set { key, value, expire_at_ms: None, .. } => {
            let mut c = redis::cmd("SET");
            c.arg(key.as_slice()).arg(value.as_slice());
            c
        }
        Command::Del { key, .. } => {
            let mut c = redis::cmd("DEL");
            c.arg(key.as_slice());
            c
        }
        Command::HSet { key, pairs, .. } => {
            let mut c = redis::cmd("HSET");
            c.arg(key.as_slice());
            for (f, v) in pairs {
                c.arg(f.as_slice()).arg(v.as_slice());
            }
            c
        }
        other => bail!("the comparison load does not send {other:?}"),
    };
    c.exec(con).map_err(|e| anyhow!("{e}"))
}

/// `INFO cpu`: (the server's own CPU, its reaped children's), seconds.
fn cpu_seconds(server: &RedisServer) -> Result<(f64, f64)> {
    let info = server.info("cpu")?;
    let get = |k: &str| info.get(k).and_then(|v| v.parse::<f64>().ok()).ok_or_else(|| anyhow!("INFO cpu has no {k}"));
    Ok((get("used_cpu_user")? + get("used_cpu_sys")?, get("used_cpu_user_children")? + get("used_cpu_sys_children")?))
}

/// CPU seconds (user + system) of each thread of process `pid`, by thread id, from
/// `/proc/<pid>/task/<tid>/stat` (fields 14 and 15, `utime` and `stime`, in clock ticks:
/// proc(5)). Empty when `/proc` cannot be read.
pub fn thread_cpu_seconds(pid: u32) -> HashMap<u32, f64> {
    // USER_HZ, the unit of these fields: 100 on Linux (what sysconf(_SC_CLK_TCK) returns).
    let tick = 100.0;
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else { return HashMap::new() };
    tasks
        .flatten()
        .filter_map(|t| {
            let tid: u32 = t.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(t.path().join("stat")).ok()?;
            // The command name (field 2) is in parentheses and may hold spaces: split after it.
            let rest: Vec<&str> = stat.get(stat.rfind(')')? + 2..)?.split_whitespace().collect();
            let ticks = rest.get(11)?.parse::<u64>().ok()? + rest.get(12)?.parse::<u64>().ok()?;
            Some((tid, ticks as f64 / tick))
        })
        .collect()
}

/// Split a server's CPU during a save between the writers and the saver: `writers` is the
/// growth of the per-thread times of `writer_threads` from `before` (taken when BGSAVE
/// returns, so a cut run on a serving thread counts for the saver) to `after`
/// ([`thread_cpu_seconds`]); the saver's is the rest of the process's own growth
/// (`own`, INFO cpu) plus its children's (`children`), never below 0. Returns (saver,
/// writers), seconds.
pub fn cpu_split(
    own: f64,
    children: f64,
    writer_threads: &HashSet<u32>,
    before: &HashMap<u32, f64>,
    after: &HashMap<u32, f64>,
) -> (f64, f64) {
    let writers: f64 = writer_threads
        .iter()
        .filter_map(|t| Some((after.get(t)? - before.get(t)?).max(0.0)))
        .sum::<f64>()
        .min(own.max(0.0));
    ((own - writers).max(0.0) + children.max(0.0), writers)
}

/// Run one row through RESP on `source`: start the server with it, run the load, BGSAVE,
/// measure, verify. Returns the row (labelled `redis-<major> (fork)` for Redis, the
/// strategy's name for `snaplab serve`) and its trace.
///
/// # Errors
/// No `redis-server`, a server that refuses the dump or fails the save, a write refused.
pub fn run_server(sut: &ServerUnderTest, source: &Path, cfg: &CompareConfig) -> Result<(CompareRow, Trace)> {
    let what = sut.what();
    let empty_rss = {
        let empty = RedisServer::start(&sut.options(None)).with_context(|| format!("starting an empty {what}"))?;
        let _stop_on_signal = super::interrupt::watch(empty.pid());
        resident_bytes(Some(empty.pid() as i32))
    };
    let server =
        RedisServer::start(&sut.options(Some(source))).with_context(|| format!("starting {what} on the dataset"))?;
    let pid = server.pid();
    // Declared after the server, so dropped before it: the server's own drop then stops
    // and reaps the process and removes its directory.
    let _stop_on_signal = super::interrupt::watch(pid);
    let load_time = server.load_time();
    let label = match sut {
        ServerUnderTest::Redis => {
            let version = server.info("server")?.get("redis_version").cloned().unwrap_or_default();
            format!("redis-{} (fork)", version.split('.').next().unwrap_or("?"))
        }
        ServerUnderTest::Snaplab { strategy, .. } => strategy.clone(),
    };
    let dataset_bytes = resident_bytes(Some(pid as i32)).zip(empty_rss).map(|(a, b)| a.saturating_sub(b));

    // Our reader's copy, for the writers' key list and to verify the dump.
    let (dataset, _) = rdb::load_file(source).with_context(|| format!("loading {}", source.display()))?;
    let mut keys = KeyList::new(&dataset);
    if cfg.sample_value_sizes {
        keys.sample_value_sizes(&dataset);
    }
    let keys = Arc::new(keys);
    let load = Load::start(&cfg.load, Arc::clone(&keys), |w| {
        let mut con = server.connection().with_context(|| format!("writer {w}: connecting to {what}"))?;
        let mut db = 0usize;
        Ok(move |cmd: &Command| send(&mut con, &mut db, cmd).map(|()| WriteStamp { shard: 0, seq: 0 }))
    })?;
    let baseline_end = load.start_time() + if load.writers() > 0 { cfg.baseline } else { Duration::ZERO };
    thread::sleep(baseline_end.saturating_duration_since(Instant::now()));

    // The threads serving the writers: every thread the server has now (`snaplab serve`'s
    // event loop, Redis's main thread). Threads the save starts count for the saver.
    let writer_threads: HashSet<u32> = thread_cpu_seconds(pid).into_keys().collect();
    let mut con = server.connection()?;
    redis::cmd("PING").exec(&mut con).map_err(|e| anyhow!("PING: {e}"))?;
    let (cpu_before, children_before) = cpu_seconds(&server)?;
    let rss_at_call = resident_bytes(Some(pid as i32));
    let called = Instant::now();
    let mut child = ChildMemory::new(pid);
    let sampler = MemorySampler::start(called, move || {
        Some(resident_bytes(Some(pid as i32))?.saturating_sub(rss_at_call?) + child.read())
    });
    let dump = server.dump_path();
    // In place before BGSAVE is sent, so the rename that ends the save cannot be missed.
    let watch = RenameWatch::start(&dump).with_context(|| format!("watching {} for the save's end", dump.display()))?;
    load.set_phase(load::PHASE_SAVE);
    let bar = crate::progress::spinner(&format!("{label} BGSAVE"), cfg.progress);
    redis::cmd("BGSAVE").exec(&mut con).map_err(|e| anyhow!("BGSAVE: {e}"))?;
    let returned = Instant::now();
    // The BGSAVE call runs on the serving thread in both servers (Redis's fork, a strategy's
    // cut): the writers' CPU is counted from its return, so the cut counts for the saver.
    let threads_at_return = thread_cpu_seconds(pid);
    let end = wait_for_bgsave_end(&watch, || Ok(server.info("persistence")?), returned + Duration::from_secs(3600))
        .with_context(|| format!("{label}: waiting for BGSAVE"))?;
    load.set_phase(load::PHASE_AFTER);
    drop(bar);
    let (cpu_after, children_after) = cpu_seconds(&server)?;
    let threads_after = thread_cpu_seconds(pid);
    let persistence = end.persistence;
    if persistence.get("rdb_last_bgsave_status").map(String::as_str) != Some("ok") {
        bail!("{label}: BGSAVE failed:\n{}", server.log_tail(20));
    }
    let Some(ended) = end.renamed else {
        bail!("{label}: BGSAVE succeeded but no rename onto {} was seen", dump.display());
    };
    thread::sleep(AFTER_SAVE);
    let samples = sampler.stop();
    let (called_ns, returned_ns, ended_ns) = (load.ns(called), load.ns(returned), load.ns(ended));
    let (start_ns, baseline_end_ns) = (load.ns(load.start_time()), load.ns(baseline_end));
    let close_window = log_close_window(&persistence, &load);
    let finished = load.finish()?;
    let log = finished.log;
    let stats = LatencyStats::new(&log, start_ns, baseline_end_ns, called_ns, ended_ns);
    let overload = super::overload::assess(&log, start_ns, baseline_end_ns, cfg.load.rate);

    let mut figures = BTreeMap::new();
    let stat = server.info("stats")?;
    if let Some(f) = stat.get("latest_fork_usec").and_then(|v| v.parse::<f64>().ok()) {
        figures.insert("fork_us".to_string(), f);
    }
    if let Some(c) = persistence.get("rdb_last_cow_size").and_then(|v| v.parse::<f64>().ok()) {
        figures.insert("rdb_last_cow_size_bytes".to_string(), c);
    }
    // A strategy's own figures for the save, as `snaplab serve` reports them.
    for (k, v) in &persistence {
        if let (Some(name), Ok(v)) = (k.strip_prefix("snaplab_"), v.parse::<f64>())
            && !name.starts_with("last_save_")
            && !name.starts_with("last_log_close_")
        {
            figures.insert(super::figure_name(name), v);
        }
    }
    // The end by INFO, which the save time used to be: later by up to serverCron's period.
    figures.insert("info_save_end_ms".to_string(), ms(end.reported - called));
    let file_bytes = std::fs::metadata(&dump).with_context(|| format!("reading {}", dump.display()))?.len();
    let guarantee = match persistence.get("snaplab_guarantee").map(String::as_str) {
        Some("at_log_close") => Guarantee::AtLogClose,
        _ => Guarantee::PointInTime,
    };
    let window = match guarantee {
        Guarantee::PointInTime => (called_ns, returned_ns),
        Guarantee::AtLogClose => close_window.unwrap_or((called_ns, ended_ns)),
    };
    let verdict =
        verify_resp(&dump, &dataset, &keys, cfg.load.value_size, &log, window, guarantee).map_err(|e| match keep_dump(
            &dump,
            &label,
            cfg.keep_dir.as_deref(),
        ) {
            Ok(kept) => e.context(format!("{label}'s dump is kept at {}", kept.display())),
            Err(keep) => e.context(format!("(and {label}'s dump could not be kept: {keep:#})")),
        });
    if let Some(keep) = &cfg.keep_dir {
        let kept = keep.join(super::dump_name(match sut {
            ServerUnderTest::Redis => "redis",
            ServerUnderTest::Snaplab { strategy, .. } => strategy,
        }));
        std::fs::copy(&dump, &kept).with_context(|| format!("keeping {} as {}", dump.display(), kept.display()))?;
    }
    let trace = make_trace(&label, &log, called_ns, &samples, returned - called, ended - called);
    let secs = |s: f64| (s * 1000.0).round() / 1000.0;
    let (cpu_saver, cpu_writers) = cpu_split(
        cpu_after - cpu_before,
        children_after - children_before,
        &writer_threads,
        &threads_at_return,
        &threads_after,
    );
    let row = CompareRow {
        strategy: label,
        transport: Some(super::Transport::Resp),
        load_ms: load_time.map_or(f64::NAN, ms),
        time_to_cut_ms: ms(returned - called),
        save_ms: ms(ended - called),
        file_bytes,
        verified: verdict.is_ok(),
        verify_error: verdict.err().map(|e| format!("{e:#}")),
        writers_held_ms: super::writers_held_ns(&log, called_ns, ended_ns).map(|ns| ns as f64 / 1e6),
        cpu_saver_s: Some(secs(cpu_saver)),
        cpu_writers_s: Some(secs(cpu_writers)),
        figures,
        ..row_figures(&stats, overload, peak_until(&samples, ended - called), dataset_bytes)
    };
    Ok((row, trace))
}

/// The Redis row (see [`run_server`]).
///
/// # Errors
/// As [`run_server`].
pub fn run(source: &Path, cfg: &CompareConfig) -> Result<(CompareRow, Trace)> {
    run_server(&ServerUnderTest::Redis, source, cfg)
}

/// The window a server reports for its last save's log close, on the load's clock (ns),
/// widened by [`CLOCK_SLACK`] each side; `None` when it reports none.
fn log_close_window(persistence: &HashMap<String, String>, load: &Load) -> Option<(u64, u64)> {
    let at = |name: &str| {
        let ns: u64 = persistence.get(&format!("snaplab_last_log_close_{name}_monotonic_ns"))?.parse().ok()?;
        crate::serve::clock::instant_of_monotonic_ns(ns)
    };
    let (requested, acknowledged) = (at("requested")?, at("acknowledged")?);
    let from = requested.checked_sub(CLOCK_SLACK).unwrap_or(requested);
    Some((load.ns(from), load.ns(acknowledged + CLOCK_SLACK)))
}

/// The writes of a load as the point-in-time checker's history: one thread per writer
/// connection, each write with the times its request was sent and its reply read.
///
/// # Errors
/// When a writer's log has a gap (the checker needs every write).
pub(crate) fn history_of(
    log: &[WriteRec],
    keys: &KeyList,
    value_size: usize,
    called_ns: u64,
    returned_ns: u64,
) -> Result<History> {
    let writers = log.iter().map(|r| r.writer as usize + 1).max().unwrap_or(0);
    let mut threads: Vec<Vec<&WriteRec>> = vec![Vec::new(); writers];
    for r in log {
        threads[r.writer as usize].push(r);
    }
    let mut history =
        History { threads: Vec::with_capacity(writers), bgsave_called_ns: called_ns, bgsave_returned_ns: returned_ns };
    for (w, mut recs) in threads.into_iter().enumerate() {
        recs.sort_by_key(|r| r.n);
        let mut writes = Vec::with_capacity(recs.len());
        for (i, r) in recs.into_iter().enumerate() {
            if r.n != i as u64 {
                bail!("writer {w}'s log has no write #{i}");
            }
            writes.push(Write {
                seq: r.n + 1,
                cmd: r.command(keys, value_size),
                invoked_ns: r.issued_ns,
                completed_ns: r.done_ns,
                stamps: Vec::new(),
            });
        }
        history.threads.push(writes);
    }
    Ok(history)
}

/// Check a dump with the point-in-time checker ([`crate::checker::find_cut`]): it must be
/// the dataset plus the writes as they stood at one instant in `window` (ns on the load's
/// clock: sending BGSAVE and reading its reply, or for [`Guarantee::AtLogClose`] the log's
/// close). There are no stamps through a socket, and writers share keys (a skewed key
/// choice sends two connections to one hot key microseconds apart), so the order of two
/// writes whose request-reply intervals overlap is unknown: the checker accepts any order
/// real time allows and refuses only a dump no order explains. An RDB-preamble AOF (the
/// relaxed strategy's) is read with its command tail applied.
fn verify_resp(
    dump: &Path,
    dataset: &Keyspace,
    keys: &KeyList,
    value_size: usize,
    log: &[WriteRec],
    window: (u64, u64),
    guarantee: Guarantee,
) -> Result<()> {
    let (decoded, _) = snaplab_core::aof::load_file(dump).with_context(|| format!("decoding {}", dump.display()))?;
    let history = history_of(log, keys, value_size, window.0, window.1)?;
    checker::find_cut(dataset, &history, &decoded)
        .map(|_| ())
        .map_err(|v| anyhow!("rule '{}' is violated: {}", v.rule_for(guarantee), v.detail_for(guarantee)))
}

/// Copy the dump of a snapshot that failed verification out of the server's temporary
/// directory into `dir` (the current directory if `None`), as
/// `<label>-unverified-<unix ms>.rdb` (the label's first word), so a user can look at it.
fn keep_dump(dump: &Path, label: &str, dir: Option<&Path>) -> Result<std::path::PathBuf> {
    let name = label.split_whitespace().next().unwrap_or("server");
    let kept = dir.unwrap_or(Path::new(".")).join(format!("{name}-unverified-{}.rdb", unix_ms_now()));
    std::fs::copy(dump, &kept).with_context(|| format!("keeping {} as {}", dump.display(), kept.display()))?;
    Ok(kept)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::Op;
    use snaplab_core::SaveOptions;

    fn verify_redis(
        dump: &Path,
        dataset: &Keyspace,
        keys: &KeyList,
        value_size: usize,
        log: &[WriteRec],
        called_ns: u64,
        returned_ns: u64,
    ) -> Result<()> {
        verify_resp(dump, dataset, keys, value_size, log, (called_ns, returned_ns), Guarantee::PointInTime)
    }

    fn rec(n: u64, key: u32, op: Op, issued_ms: u64, done_ms: u64) -> WriteRec {
        WriteRec {
            stamp: WriteStamp { shard: 0, seq: 0 },
            writer: 0,
            op,
            n,
            key,
            intended_ns: issued_ms * 1_000_000,
            issued_ns: issued_ms * 1_000_000,
            done_ns: done_ms * 1_000_000,
        }
    }

    /// A dump made of the dataset plus the given writes, as Redis would have saved it.
    fn dump_with(dir: &Path, dataset: &Keyspace, keys: &KeyList, writes: &[WriteRec]) -> std::path::PathBuf {
        let mut ks = dataset.clone();
        for w in writes {
            ks.apply(&w.command(keys, 8), unix_ms_now()).unwrap();
        }
        let path = dir.join(format!("dump-{}.rdb", writes.len()));
        snaplab_core::write_snapshot(&ks, &path, &SaveOptions::default(), "test").unwrap();
        path
    }

    /// The writers' CPU is their threads' growth; the saver's is the rest of the process's
    /// own plus its children's, so a thread born during the save (a saver thread, the BGSAVE
    /// connection's) counts for the saver; ticks that put the writers above the process's
    /// own growth never make the saver's negative.
    #[test]
    fn cpu_split_gives_the_writer_threads_to_the_writers() {
        let before = HashMap::from([(1, 1.0), (2, 2.0), (3, 0.5)]);
        let after = HashMap::from([(1, 1.5), (2, 2.25), (3, 0.5), (9, 0.7)]);
        let writers = HashSet::from([1, 2]);
        let (saver, w) = cpu_split(2.0, 0.3, &writers, &before, &after);
        assert!((w - 0.75).abs() < 1e-9 && (saver - 1.55).abs() < 1e-9, "{saver} {w}");
        assert_eq!(cpu_split(0.5, 0.0, &writers, &before, &after), (0.0, 0.5));
    }

    /// BGSAVE sent at 100 ms and answered at 110 ms: writes answered before 100 must be in
    /// the dump, writes issued after 110 must not, and the ones in flight may be in it, as
    /// one instant allows. The check accepts exactly those dumps.
    #[test]
    fn accepts_one_instant_and_refuses_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let dataset = crate::dataset::generate(&crate::dataset::DatasetSpec { keys: 50, value_size: 8, seed: 1 });
        let keys = KeyList::new(&dataset);
        let log = vec![
            rec(0, 1, Op::Overwrite, 10, 11),
            rec(1, 2, Op::Delete, 20, 21),
            rec(2, 3, Op::Insert, 30, 31),
            rec(3, 4, Op::Collection, 99, 101), // in flight at the call
            rec(4, 5, Op::Overwrite, 102, 104), // within the call
            rec(5, 6, Op::Overwrite, 111, 112), // after: must not be in it
        ];
        let check = |writes: &[WriteRec]| {
            let dump = dump_with(dir.path(), &dataset, &keys, writes);
            verify_redis(&dump, &dataset, &keys, 8, &log, 100_000_000, 110_000_000)
        };
        for k in 3..=5 {
            check(&log[..k]).unwrap_or_else(|e| panic!("a prefix of {k} writes is a valid cut: {e:#}"));
        }
        let missing = check(&log[1..5]).unwrap_err().to_string();
        assert!(missing.contains("write #1 (SET db0 key:0000001)"), "the missing write is named: {missing}");
        let late = check(&log[..6]).unwrap_err().to_string();
        assert!(late.contains("after BGSAVE returned"), "{late}");
        let not_a_prefix = [log[0], log[1], log[2], log[4]];
        assert!(check(&not_a_prefix).is_err(), "the second in-flight write without the first");
    }

    /// Two connections overwrite one key with requests in flight at the same time: either
    /// order is a state some instant had, and the check must accept both; a value neither
    /// wrote is refused.
    #[test]
    fn overlapping_writers_on_one_key_may_land_either_way() {
        let dir = tempfile::tempdir().unwrap();
        let dataset = crate::dataset::generate(&crate::dataset::DatasetSpec { keys: 10, value_size: 8, seed: 1 });
        let keys = KeyList::new(&dataset);
        let a = WriteRec { writer: 0, ..rec(0, 3, Op::Overwrite, 50, 60) };
        let b = WriteRec { writer: 1, ..rec(0, 3, Op::Overwrite, 52, 58) };
        let log = vec![a, b];
        for order in [[a, b], [b, a]] {
            let dump = dump_with(dir.path(), &dataset, &keys, &order);
            verify_redis(&dump, &dataset, &keys, 8, &log, 100_000_000, 110_000_000)
                .unwrap_or_else(|e| panic!("writer {} last: {e:#}", order[1].writer));
        }
        // Ordered by real time (b starts after a answered), only b can be last.
        let ordered = vec![a, WriteRec { writer: 1, ..rec(0, 3, Op::Overwrite, 61, 62) }];
        let dump = dump_with(dir.path(), &dataset, &keys, &[ordered[1], ordered[0]]);
        assert!(verify_redis(&dump, &dataset, &keys, 8, &ordered, 100_000_000, 110_000_000).is_err());
    }

    /// Two connections hammer one key (SET and DEL) and one hash field (HSET) while
    /// redis-server runs BGSAVE: their requests overlap all the time, so reply order is
    /// not execution order, and Redis's dump (a true point-in-time snapshot) must verify
    /// in every one of 20 runs.
    #[test]
    fn redis_dump_verifies_with_two_writers_on_one_key() {
        if !available() {
            crate::skips::skipped("redis_dump_verifies_with_two_writers_on_one_key", "no redis-server on PATH");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let dataset = crate::dataset::generate(&crate::dataset::DatasetSpec { keys: 20_000, value_size: 32, seed: 2 });
        let source = dir.path().join("dataset.rdb");
        snaplab_core::write_snapshot(&dataset, &source, &SaveOptions::default(), "test").unwrap();
        let keys = Arc::new(KeyList::new(&dataset));
        for run in 0..20 {
            let server = RedisServer::start_with_dump(&source).unwrap();
            let epoch = Instant::now();
            let ns = move || epoch.elapsed().as_nanos() as u64;
            let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
            let ready = Arc::new(std::sync::Barrier::new(3));
            let writers: Vec<_> = (0..2u32)
                .map(|w| {
                    let mut con = server.connection().unwrap();
                    let (stop, ready, keys) = (Arc::clone(&stop), Arc::clone(&ready), Arc::clone(&keys));
                    thread::spawn(move || {
                        let mut db = 0;
                        let mut log = Vec::new();
                        for n in 0.. {
                            let op = match n % 10 {
                                0 => Op::Delete,
                                1..=3 => Op::Collection,
                                _ => Op::Overwrite,
                            };
                            let mut r = WriteRec { writer: w, ..rec(n, 0, op, 0, 0) };
                            let cmd = r.command(&keys, 8);
                            r.issued_ns = ns();
                            send(&mut con, &mut db, &cmd).unwrap();
                            r.done_ns = ns();
                            r.intended_ns = r.issued_ns;
                            log.push(r);
                            if n == 100 {
                                ready.wait();
                            }
                            if n > 100 && stop.load(std::sync::atomic::Ordering::Relaxed) {
                                break;
                            }
                        }
                        log
                    })
                })
                .collect();
            ready.wait();
            let mut con = server.connection().unwrap();
            let called = ns();
            redis::cmd("BGSAVE").exec(&mut con).unwrap();
            let returned = ns();
            while server.info("persistence").unwrap().get("rdb_bgsave_in_progress").map(String::as_str) != Some("0") {
                // Polling another process: Redis has no "save finished" notification.
                thread::sleep(Duration::from_millis(2));
            }
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
            let log: Vec<WriteRec> = writers.into_iter().flat_map(|h| h.join().unwrap()).collect();
            verify_redis(&server.dump_path(), &dataset, &keys, 8, &log, called, returned)
                .unwrap_or_else(|e| panic!("run {run} of 20, {} writes: {e:#}", log.len()));
        }
    }
}
