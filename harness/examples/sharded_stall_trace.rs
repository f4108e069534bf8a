//! Where a writer's time goes while snaplab-sharded saves: every slow write taken apart.
//!
//! ```text
//! cargo run --release -p snaplab-harness --example sharded_stall_trace [-- THRESHOLD_MS [RATE [KEYS]]]
//! ```
//!
//! Loads the built-in dataset (1,000,000 string keys of 100 bytes, as `snaplab compare`
//! loads it: written as a dump, read back with `ShardedStore::load`), runs one open-loop
//! writer ([`snaplab_harness::load`], the load `compare` runs: 10,000 writes/s by default,
//! latency from each write's scheduled start) and calls BGSAVE after 1 s.
//!
//! For every write during the save slower than the threshold (default 0.5 ms) it prints
//! where the time went, from the store's `trace` feature (`snaplab_sharded::trace`):
//! - `queued`: the write was due while the previous one was still running (open loop);
//! - `late`: it was due and the previous one had finished, yet it was not issued: the
//!   writer was not running (woken late from its sleep, or preempted);
//! - `lock`: waiting for the shard's lock, with the longest traversal hold of that shard
//!   that overlapped the wait (a hold much longer than its few microseconds of work means
//!   the traversal was preempted while holding the lock);
//! - under the lock: `capture` (serialize-before-mutate), `copy` (`Arc::make_mut` of a
//!   captured bucket), `apply`, `split`;
//! - `other`: the rest of the call (the writer preempted inside it, outside the lock).
//!
//! Then percentiles of each component over all writes of the save, counts of slow writes
//! by their largest component, and each thread's scheduler statistics over the save
//! (`/proc/<pid>/task/<tid>/schedstat`: CPU time, time runnable but waiting for a CPU,
//! timeslices). Run it on an idle machine: every figure here is a time.

use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use snaplab_core::{SaveOptions, SnapshotStrategy};
use snaplab_harness::dataset::{self, DatasetSpec};
use snaplab_harness::load::{KeyDist, KeyList, Load, LoadSpec, WriteMix};
use snaplab_sharded::ShardedStore;
use snaplab_sharded::trace::{self, WriteTrace, read_schedstat};

/// One write during the save, its time taken apart, ns.
#[derive(Clone, Copy, Default)]
struct Parts {
    at_ns: i64,
    total: u64,
    queued: u64,
    late: u64,
    lock: u64,
    capture: u64,
    copy: u64,
    copied: bool,
    apply: u64,
    split: u64,
    other: u64,
    /// The longest traversal hold of the write's shard overlapping its lock wait.
    hold: u64,
}

/// The components, in the order printed: (name, value).
fn components(p: &Parts) -> [(&'static str, u64); 8] {
    [
        ("queued", p.queued),
        ("late", p.late),
        ("lock", p.lock),
        ("capture", p.capture),
        ("copy", p.copy),
        ("apply", p.apply),
        ("split", p.split),
        ("other", p.other),
    ]
}

fn percentile(sorted: &[u64], q: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

fn us(ns: u64) -> f64 {
    ns as f64 / 1000.0
}

fn main() -> anyhow::Result<()> {
    let args: Vec<f64> = std::env::args().skip(1).map(|a| a.parse().expect("THRESHOLD_MS [RATE [KEYS]]")).collect();
    let threshold_ns = (args.first().copied().unwrap_or(0.5) * 1e6) as u64;
    let rate = args.get(1).copied().unwrap_or(10_000.0);
    let spec = DatasetSpec { keys: args.get(2).map_or(1_000_000, |&k| k as usize), value_size: 100, seed: 1 };

    let dir = tempfile::tempdir()?;
    let dump = dir.path().join("dataset.rdb");
    {
        let ks = dataset::generate(&spec);
        snaplab_core::write_snapshot(&ks, &dump, &SaveOptions::default(), "sharded_stall_trace")?;
    }
    let store = ShardedStore::<0>::load(&dump)?;
    let keys = Arc::new(KeyList::from_dump(&dump, false)?);
    println!("{} keys, {} shards, 1 writer at {rate} writes/s, threshold {} ms", store.len(), store.shards(), {
        threshold_ns as f64 / 1e6
    });

    // The writer's traces, in the order of its writes (the load's log has the same order),
    // and its thread id, for its schedstat.
    let traces: Arc<Mutex<Vec<Option<WriteTrace>>>> = Arc::new(Mutex::new(Vec::with_capacity(1 << 16)));
    let writer_tid = Arc::new(AtomicI32::new(0));
    let load_spec =
        LoadSpec { writers: 1, rate, seed: 1, value_size: 100, dist: KeyDist::Uniform, mix: WriteMix::default() };
    let load = Load::start(&load_spec, Arc::clone(&keys), |_| {
        let (store, traces, tid) = (store.clone(), Arc::clone(&traces), Arc::clone(&writer_tid));
        Ok(move |cmd: &snaplab_core::Command| {
            if tid.load(Ordering::Relaxed) == 0 {
                tid.store(nix::unistd::gettid().as_raw(), Ordering::Relaxed);
            }
            let applied = store.apply(cmd)?;
            traces.lock().expect("one writer").push(trace::take_last());
            Ok(applied.stamp)
        })
    })?;

    std::thread::sleep(Duration::from_secs(1));
    let tid = writer_tid.load(Ordering::Relaxed);
    let writer_stat = format!("/proc/self/task/{tid}/schedstat");
    let main_stat = "/proc/thread-self/schedstat";
    let (w0, m0) = (read_schedstat(&writer_stat), read_schedstat(main_stat));
    trace::take_holds();
    let cut_at = Instant::now();
    let bg = store.bgsave(&dir.path().join("dump.rdb"), &SaveOptions::default())?;
    let report = bg.wait()?;
    let end_at = Instant::now();
    let (w1, m1) = (read_schedstat(&writer_stat), read_schedstat(main_stat));
    std::thread::sleep(Duration::from_millis(200));
    let (cut_ns, end_ns) = (load.ns(cut_at), load.ns(end_at));
    let holds: Vec<(u64, trace::Hold)> = trace::take_holds().into_iter().map(|h| (load.ns(h.at), h)).collect();
    let finished = load.finish()?;
    let traces = traces.lock().expect("the writer has stopped").clone();

    // Take every write due during the save apart.
    let mut parts = Vec::new();
    let mut prev_done = 0u64;
    let mut baseline = Vec::new();
    for (rec, t) in finished.log.iter().zip(&traces) {
        let done_before = prev_done;
        prev_done = rec.done_ns;
        if rec.intended_ns < cut_ns {
            if rec.intended_ns > cut_ns.saturating_sub(900_000_000) {
                baseline.push(rec.latency_ns());
            }
            continue;
        }
        if rec.intended_ns > end_ns {
            break;
        }
        let Some(t) = t else { continue };
        let free_at = rec.intended_ns.max(done_before);
        let call = rec.done_ns.saturating_sub(rec.issued_ns);
        let held = t.held_ns();
        let (wait_from, wait_to) = (rec.issued_ns, rec.issued_ns + t.lock_wait_ns);
        let hold = holds
            .iter()
            .filter(|(at, h)| h.shard == t.shard && *at < wait_to && at + h.ns > wait_from)
            .map(|(_, h)| h.ns)
            .max()
            .unwrap_or(0);
        parts.push(Parts {
            at_ns: rec.intended_ns as i64 - cut_ns as i64,
            total: rec.latency_ns(),
            queued: free_at - rec.intended_ns,
            late: rec.issued_ns.saturating_sub(free_at),
            lock: t.lock_wait_ns,
            capture: t.capture_ns,
            copy: t.copy_ns,
            copied: t.copied,
            apply: t.apply_ns,
            split: t.split_ns,
            other: call.saturating_sub(t.lock_wait_ns + held),
            hold,
        });
    }

    println!(
        "save: {:.1} ms, {} writes due during it; buckets by traversal {}, by writers {}, channel-full waits {}",
        report.duration.as_secs_f64() * 1e3,
        parts.len(),
        report.figure("buckets_by_traversal_count").unwrap_or(0),
        report.figure("buckets_by_writers_count").unwrap_or(0),
        report.figure("channel_full_waits_count").unwrap_or(0),
    );
    println!();
    println!("stalls: writes slower than {} ms (times in us; t = ms from the cut):", threshold_ns as f64 / 1e6);
    println!(
        "{:>8} {:>7} {:>7} {:>7} {:>7} {:>8} {:>7} {:>6} {:>7} {:>7} {:>7}  cause",
        "t ms", "total", "queued", "late", "lock", "(hold)", "capture", "copy", "apply", "split", "other"
    );
    // A stall delays every write due while it lasts (open loop): the writes queued behind a
    // slow one are listed as a count on the write that caused them, the episode's head.
    let mut heads: Vec<(&Parts, usize)> = Vec::new();
    let mut slow = 0;
    for p in parts.iter().filter(|p| p.total > threshold_ns) {
        slow += 1;
        match heads.last_mut() {
            Some((_, behind)) if p.queued > p.total / 2 => *behind += 1,
            _ => heads.push((p, 0)),
        }
    }
    let mut causes: Vec<(&'static str, usize)> = Vec::new();
    for (i, (p, behind)) in heads.iter().enumerate() {
        let (cause, _) = components(p).into_iter().max_by_key(|(_, v)| *v).expect("eight components");
        match causes.iter_mut().find(|(c, _)| *c == cause) {
            Some((_, n)) => *n += 1,
            None => causes.push((cause, 1)),
        }
        if i < 40 {
            println!(
                "{:>8.2} {:>7.0} {:>7.0} {:>7.0} {:>7.0} {:>8.0} {:>7.1} {:>5.1}{} {:>7.1} {:>7.1} {:>7.0}  {cause:<7} {behind:>3} behind",
                p.at_ns as f64 / 1e6,
                us(p.total),
                us(p.queued),
                us(p.late),
                us(p.lock),
                us(p.hold),
                us(p.capture),
                us(p.copy),
                if p.copied { "*" } else { " " },
                us(p.apply),
                us(p.split),
                us(p.other)
            );
        }
    }
    if heads.len() > 40 {
        println!("... and {} more", heads.len() - 40);
    }
    println!("(* = the bucket was copied; hold = longest traversal hold of the shard lock overlapping the wait;");
    println!(" behind = slow writes that followed, queued behind this one)");
    println!();
    causes.sort_by_key(|(_, n)| std::cmp::Reverse(*n));
    let causes: Vec<String> = causes.iter().map(|(c, n)| format!("{c} {n}")).collect();
    println!(
        "{slow} of {} writes slower than the threshold, in {} stalls; stalls by largest component: {}",
        parts.len(),
        heads.len(),
        causes.join(", ")
    );
    println!();

    println!("every write during the save (us):   p50      p99      max");
    let row = |name: &str, mut v: Vec<u64>| {
        v.sort_unstable();
        println!(
            "  {name:<30} {:>8.1} {:>8.1} {:>8.1}",
            us(percentile(&v, 0.5)),
            us(percentile(&v, 0.99)),
            us(v.last().copied().unwrap_or(0))
        );
    };
    row("latency (baseline, 0.9 s before)", baseline);
    row("latency", parts.iter().map(|p| p.total).collect());
    for (i, name) in ["queued", "late", "lock", "capture", "copy", "apply", "split", "other"].iter().enumerate() {
        row(name, parts.iter().map(|p| components(p)[i].1).collect());
    }
    row("traversal lock hold", holds.iter().map(|(_, h)| h.ns).collect());
    println!();

    println!("threads over the save ({:.1} ms):     CPU ms  runq-wait ms  slices", (end_ns - cut_ns) as f64 / 1e6);
    let line = |name: String, (cpu, wait, n): (u64, u64, u64)| {
        println!("  {name:<30} {:>8.1} {:>12.1} {:>7}", cpu as f64 / 1e6, wait as f64 / 1e6, n);
    };
    if let (Some(a), Some(b)) = (w0, w1) {
        line("writer".into(), (b.0 - a.0, b.1 - a.1, b.2 - a.2));
    }
    if let (Some(a), Some(b)) = (m0, m1) {
        line("main (waits for the save)".into(), (b.0 - a.0, b.1 - a.1, b.2 - a.2));
    }
    let mut stats = trace::take_thread_stats();
    stats.sort_by_key(|s| (s.role, s.index));
    for s in stats {
        line(format!("{} {} (whole life)", s.role, s.index), (s.cpu_ns, s.runq_wait_ns, s.slices));
    }
    let (l1, l5) = std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| {
            let mut f = s.split_whitespace();
            Some((f.next()?.to_string(), f.next()?.to_string()))
        })
        .unwrap_or_default();
    println!();
    println!("load average (1, 5 min) at the end: {l1} {l5}");
    Ok(())
}
