//! Whether a row's writers asked for more than the store could serve before any save began.
//!
//! The load is open-loop ([`crate::load`]): writes are due on a fixed schedule and each
//! one's latency counts from when it was due. A store that can serve fewer writes per
//! second than are due falls behind, and the backlog grows for as long as the load runs:
//! every latency then measures the queue, not the save, and a ratio against that row says
//! nothing about snapshots. Two signs give it away in the baseline window (writers running,
//! no save yet), and either one flags the row:
//! - **short of the rate**: fewer writes completed than were due, by more than
//!   [`SHORTFALL`] (the completions a store keeps up with match the schedule);
//! - **latency grows**: the median latency of the last quarter of the window is at least
//!   [`GROWTH_FACTOR`] times the first quarter's and [`GROWTH_FLOOR_NS`] above it (a queue
//!   that grows by a fixed rate makes latency rise linearly with time; a store that keeps
//!   up has the same median throughout, noise aside).
//!
//! A single stall (another process on a shared core) lifts a few windows, not a quarter's
//! median, and is not flagged.

use crate::load::WriteRec;

/// How far short of the target rate the baseline may fall (a fraction of it) before the
/// row is flagged.
pub const SHORTFALL: f64 = 0.05;

/// How many times the first quarter's median latency the last quarter's must reach to
/// count as growing.
pub const GROWTH_FACTOR: f64 = 2.0;

/// How much the median latency must grow, at least, to count, ns (1 ms: far above the
/// jitter of a write that does not queue, far below the backlog of an overloaded second).
pub const GROWTH_FLOOR_NS: u64 = 1_000_000;

/// Fewest writes a quarter of the baseline needs before its median is compared.
const MIN_PER_QUARTER: usize = 8;

/// What the baseline window says about the load.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Overload {
    /// Writes completed per second in the baseline window (`None` without writers).
    pub achieved_rate_per_s: Option<f64>,
    /// Why the row is flagged, in words; `None` when it is not.
    pub reason: Option<String>,
}

impl Overload {
    /// Whether the row is flagged.
    pub fn overloaded(&self) -> bool {
        self.reason.is_some()
    }
}

/// Judge the baseline window `[start, end)` (ns on the log's clock) of a load that aimed at
/// `target_per_s` writes per second in all.
pub fn assess(log: &[WriteRec], start: u64, end: u64, target_per_s: f64) -> Overload {
    if log.is_empty() || end <= start {
        return Overload::default();
    }
    let span_s = (end - start) as f64 / 1e9;
    let done = log.iter().filter(|r| (start..end).contains(&r.done_ns)).count();
    let achieved = done as f64 / span_s;
    let due = target_per_s * span_s;
    let mut reasons = Vec::new();
    // One write of slack, so a window of a handful of writes is not flagged for rounding.
    if (done as f64) < due * (1.0 - SHORTFALL) - 1.0 {
        reasons.push(format!(
            "the baseline achieved {achieved:.0} of the {target_per_s:.0} writes/s due ({:.0}% short)",
            (1.0 - achieved / target_per_s) * 100.0
        ));
    }
    let due_in_window: Vec<(u64, u64)> =
        log.iter().filter(|r| (start..end).contains(&r.intended_ns)).map(|r| (r.intended_ns, r.latency_ns())).collect();
    if let Some((first, last)) = latency_grows(&due_in_window, start, end) {
        reasons.push(format!(
            "the baseline's median latency grew from {:.2} ms in its first quarter to {:.2} ms in its last",
            first as f64 / 1e6,
            last as f64 / 1e6
        ));
    }
    Overload { achieved_rate_per_s: Some(achieved.round()), reason: (!reasons.is_empty()).then(|| reasons.join("; ")) }
}

/// Whether latency grows through `[start, end)`: `writes` are (when due, latency), ns.
/// Returns the first and last quarters' median latencies when the last is at least
/// [`GROWTH_FACTOR`] times the first and [`GROWTH_FLOOR_NS`] above it; `None` otherwise,
/// or when a quarter has too few writes to tell.
pub fn latency_grows(writes: &[(u64, u64)], start: u64, end: u64) -> Option<(u64, u64)> {
    let quarter = (end.checked_sub(start)? / 4).max(1);
    let median_of = |q: u64| {
        let from = start + q * quarter;
        let mut l: Vec<u64> =
            writes.iter().filter(|(t, _)| (from..from + quarter).contains(t)).map(|&(_, l)| l).collect();
        if l.len() < MIN_PER_QUARTER {
            return None;
        }
        let mid = l.len() / 2;
        Some(*l.select_nth_unstable(mid).1)
    };
    let (first, last) = (median_of(0)?, median_of(3)?);
    let grows = last as f64 >= first as f64 * GROWTH_FACTOR && last.saturating_sub(first) >= GROWTH_FLOOR_NS;
    grows.then_some((first, last))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::Op;
    use snaplab_core::WriteStamp;

    const MS: u64 = 1_000_000;

    /// One writer's log over `[0, span_ms)`: a write due every `every_us`, served one at a
    /// time in `service_us` each (a queue: a write starts when it is due or when the one
    /// before it is done, whichever is later), plus `jitter(n)` µs of noise.
    fn trace(span_ms: u64, every_us: u64, service_us: u64, jitter: impl Fn(u64) -> u64) -> Vec<WriteRec> {
        let mut log = Vec::new();
        let mut free_at = 0u64;
        let mut n = 0u64;
        loop {
            let due = n * every_us * 1000;
            if due >= span_ms * MS {
                break;
            }
            let issued = due.max(free_at);
            let done = issued + (service_us + jitter(n)) * 1000;
            free_at = done;
            log.push(WriteRec {
                stamp: WriteStamp { shard: 0, seq: n + 1 },
                writer: 0,
                op: Op::Overwrite,
                n,
                key: 0,
                intended_ns: due,
                issued_ns: issued,
                done_ns: done,
            });
            n += 1;
        }
        log
    }

    /// A store that serves a write in 10 µs keeps up with one due every 100 µs (10,000/s):
    /// not flagged, and the achieved rate is the target.
    #[test]
    fn a_store_that_keeps_up_is_not_flagged() {
        let log = trace(1000, 100, 10, |n| (n * 7919) % 20);
        let o = assess(&log, 0, 1000 * MS, 10_000.0);
        assert!(!o.overloaded(), "{o:?}");
        let achieved = o.achieved_rate_per_s.unwrap();
        assert!((9_900.0..=10_000.0).contains(&achieved), "{achieved}");
    }

    /// Writes due every 20 µs (50,000/s) on a store that needs 33 µs each (30,000/s): short
    /// of the rate and latency growing, both named.
    #[test]
    fn a_store_past_its_capacity_is_flagged_for_both_signs() {
        let log = trace(1000, 20, 33, |_| 0);
        let o = assess(&log, 0, 1000 * MS, 50_000.0);
        let why = o.reason.clone().expect("overloaded");
        assert!(why.contains("short") && why.contains("grew"), "{why}");
        let achieved = o.achieved_rate_per_s.unwrap();
        assert!((29_000.0..=31_000.0).contains(&achieved), "{achieved}");
    }

    /// 4% short of the rate (within [`SHORTFALL`]) with latency flat is not flagged; 10%
    /// short is, even over a window too short for latency to tell.
    #[test]
    fn the_shortfall_threshold_is_five_percent() {
        let log = trace(1000, 100, 10, |_| 0);
        assert!(!assess(&log, 0, 1000 * MS, 10_400.0).overloaded());
        let o = assess(&log, 0, 1000 * MS, 11_100.0);
        assert!(o.reason.as_deref().is_some_and(|r| r.contains("short")), "{o:?}");
    }

    /// A single 50 ms stall in the last quarter (another process took the core) lifts
    /// that quarter's worst writes, not its median: not flagged. A backlog that keeps
    /// growing is, even when the rate is met on average.
    #[test]
    fn one_stall_is_not_growth_but_a_rising_median_is() {
        let stalled = trace(1000, 100, 10, |n| if n == 8000 { 50_000 } else { 0 });
        let w: Vec<(u64, u64)> = stalled.iter().map(|r| (r.intended_ns, r.latency_ns())).collect();
        assert_eq!(latency_grows(&w, 0, 1000 * MS), None);
        let rising: Vec<(u64, u64)> = (0..1000u64).map(|i| (i * MS, 50_000 + i * 10_000)).collect();
        let (first, last) = latency_grows(&rising, 0, 1000 * MS).expect("grows");
        assert!(first < 3 * MS && last > 7 * MS, "{first} {last}");
        let flat: Vec<(u64, u64)> = (0..1000u64).map(|i| (i * MS, 2 * MS + (i % 3) * 1000)).collect();
        assert_eq!(latency_grows(&flat, 0, 1000 * MS), None);
    }

    /// No writers, or a window with too few writes per quarter: nothing to judge.
    #[test]
    fn no_writes_no_verdict() {
        assert_eq!(assess(&[], 0, 1000 * MS, 10_000.0), Overload::default());
        assert_eq!(latency_grows(&[(0, 5 * MS), (900 * MS, 500 * MS)], 0, 1000 * MS), None);
    }
}
