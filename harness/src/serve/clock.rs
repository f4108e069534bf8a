//! Instants as CLOCK_MONOTONIC nanoseconds, so two processes on one machine can place each
//! other's moments on their own clocks: `std::time::Instant` is CLOCK_MONOTONIC on Linux
//! (Rust std, `sys/pal/unix/time.rs`), one clock for every process, but it has no public
//! raw value. The server reports a relaxed save's log close this way in `INFO
//! persistence`, and the comparison turns it back into an [`Instant`] of its own.

use std::time::{Duration, Instant};

use nix::time::{ClockId, clock_gettime};

/// CLOCK_MONOTONIC now, ns.
fn now_ns() -> Option<u64> {
    let t = clock_gettime(ClockId::CLOCK_MONOTONIC).ok()?;
    Some(t.tv_sec() as u64 * 1_000_000_000 + t.tv_nsec() as u64)
}

/// `at` as CLOCK_MONOTONIC ns: the clock now, less how long ago `at` was (the two reads
/// are back to back, so the error is their distance, well under a microsecond). `None` if
/// the clock cannot be read or `at` is in the future.
pub fn monotonic_ns_of(at: Instant) -> Option<u64> {
    let (now, instant_now) = (now_ns()?, Instant::now());
    now.checked_sub(instant_now.checked_duration_since(at)?.as_nanos() as u64)
}

/// The [`Instant`] at CLOCK_MONOTONIC `ns` (as [`monotonic_ns_of`] gave it, possibly in
/// another process). `None` if the clock cannot be read or the moment is not in the past.
pub fn instant_of_monotonic_ns(ns: u64) -> Option<Instant> {
    let (now, instant_now) = (now_ns()?, Instant::now());
    instant_now.checked_sub(Duration::from_nanos(now.checked_sub(ns)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A moment turned into ns and back lands within 100 µs of where it was (the reads of
    /// the two clocks in each direction are microseconds apart), and a future moment has none.
    #[test]
    fn round_trips_an_instant() {
        let at = Instant::now() - Duration::from_millis(5);
        let back = instant_of_monotonic_ns(monotonic_ns_of(at).unwrap()).unwrap();
        let off = if back > at { back - at } else { at - back };
        assert!(off < Duration::from_micros(100), "{off:?}");
        assert_eq!(monotonic_ns_of(Instant::now() + Duration::from_secs(60)), None);
    }
}
