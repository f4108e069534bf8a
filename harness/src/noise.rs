//! `snaplab noise-probe`: how late this machine wakes a thread that asked to sleep, a
//! measure of the scheduling noise every latency figure of a comparison carries.
//!
//! The probe sleeps for a short interval (100 µs by default) again and again for a few
//! seconds and records each sleep's *overshoot*: how much longer than asked it took
//! (`nanosleep(2)` returns no earlier than asked, then the thread waits for a core). On
//! an idle machine the overshoot is the kernel's timer slack (50 µs by default for a
//! normal thread, `prctl(2)` `PR_SET_TIMERSLACK`) plus the wake-up path; when other
//! processes hold the cores, the thread waits a scheduling period for its turn, and the
//! p99 and maximum show it. A write latency during a save that is no larger than the
//! probe's p99 or maximum, measured on the same machine at the same time, cannot be told
//! apart from the machine's own noise.
//!
//! Production note: a latency benchmark on a dedicated machine would pin its threads to
//! isolated cores (`isolcpus`, `taskset`) to take most of this noise away; the probe is
//! for the shared machines students and CI actually have.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// What one probe saw. Overshoots in µs: how much longer each sleep took than asked.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NoiseProbe {
    /// The sleep each iteration asked for, µs.
    pub sleep_us: f64,
    /// How long the probe ran, s.
    pub seconds: f64,
    /// How many sleeps it measured.
    pub sleeps: u64,
    /// Median overshoot, µs.
    pub overshoot_p50_us: f64,
    /// 99th percentile overshoot, µs.
    pub overshoot_p99_us: f64,
    /// Largest overshoot, µs.
    pub overshoot_max_us: f64,
}

impl NoiseProbe {
    /// The probe's figures from each sleep's overshoot, ns (percentiles by nearest rank).
    /// `None` without sleeps.
    pub fn from_overshoots(sleep: Duration, seconds: f64, overshoots_ns: &mut [u64]) -> Option<NoiseProbe> {
        if overshoots_ns.is_empty() {
            return None;
        }
        overshoots_ns.sort_unstable();
        let n = overshoots_ns.len();
        // Nearest rank: the smallest value with at least q of the samples at or below it.
        let at = |q: f64| overshoots_ns[((q * n as f64).ceil() as usize).clamp(1, n) - 1] as f64 / 1e3;
        Some(NoiseProbe {
            sleep_us: sleep.as_secs_f64() * 1e6,
            seconds,
            sleeps: n as u64,
            overshoot_p50_us: at(0.5),
            overshoot_p99_us: at(0.99),
            overshoot_max_us: overshoots_ns[n - 1] as f64 / 1e3,
        })
    }

    /// One line for a person: `100 us sleeps for 3.0 s (18000 sleeps): overshoot p50 62 us,
    /// p99 140 us, max 4.21 ms`.
    pub fn line(&self) -> String {
        format!(
            "{} us sleeps for {:.1} s ({} sleeps): overshoot p50 {:.0} us, p99 {:.0} us, max {:.2} ms",
            self.sleep_us,
            self.seconds,
            self.sleeps,
            self.overshoot_p50_us,
            self.overshoot_p99_us,
            self.overshoot_max_us / 1e3
        )
    }
}

/// Sleep `sleep` again and again for `duration` on this thread and measure each overshoot.
pub fn probe(sleep: Duration, duration: Duration) -> NoiseProbe {
    let mut overshoots = Vec::with_capacity((duration.as_nanos() / sleep.as_nanos().max(1)) as usize + 1);
    let started = Instant::now();
    while started.elapsed() < duration {
        let t = Instant::now();
        std::thread::sleep(sleep);
        overshoots.push(t.elapsed().saturating_sub(sleep).as_nanos() as u64);
    }
    let seconds = started.elapsed().as_secs_f64();
    NoiseProbe::from_overshoots(sleep, seconds, &mut overshoots).expect("the loop sleeps at least once")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Percentiles by nearest rank over known overshoots: 1..=100 µs in any order gives a
    /// p50 of 50, a p99 of 99 and a max of 100; one sample is every percentile.
    #[test]
    fn percentiles_are_by_nearest_rank() {
        let mut ns: Vec<u64> = (1..=100).rev().map(|us| us * 1000).collect();
        let p = NoiseProbe::from_overshoots(Duration::from_micros(100), 3.0, &mut ns).unwrap();
        assert_eq!((p.overshoot_p50_us, p.overshoot_p99_us, p.overshoot_max_us), (50.0, 99.0, 100.0));
        assert_eq!(p.sleeps, 100);
        assert_eq!(p.sleep_us, 100.0);
        let p = NoiseProbe::from_overshoots(Duration::from_micros(100), 1.0, &mut [7000]).unwrap();
        assert_eq!((p.overshoot_p50_us, p.overshoot_p99_us, p.overshoot_max_us), (7.0, 7.0, 7.0));
        assert_eq!(NoiseProbe::from_overshoots(Duration::from_micros(100), 1.0, &mut []), None);
        assert!(p.line().contains("overshoot p50 7 us"), "{}", p.line());
    }

    /// A short real probe measures something, in order (no figure is asserted: the machine
    /// decides them).
    #[test]
    fn a_short_probe_orders_its_figures() {
        let p = probe(Duration::from_micros(100), Duration::from_millis(50));
        assert!(p.sleeps >= 1);
        assert!(p.overshoot_p50_us <= p.overshoot_p99_us && p.overshoot_p99_us <= p.overshoot_max_us, "{p:?}");
    }
}
