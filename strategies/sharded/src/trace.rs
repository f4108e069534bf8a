//! Where a write's time goes during a save, for `harness/examples/sharded_stall_trace.rs`.
//!
//! Built only with the crate's `trace` feature. Without it, `Timer` is an empty type whose
//! methods are empty and inlined, so the write path carries no clock reads and no branches:
//! the instrumentation costs nothing in the store everybody else builds.
//!
//! With it, every write through `ShardedStore::apply` leaves a `WriteTrace` (what it spent
//! waiting for its shard's lock and, under the lock, capturing, copying, applying and
//! splitting) in a thread-local that `take_last` reads; every hold of a shard lock by a
//! traversal is kept (`Hold`, read with `take_holds`); and every save thread notes its
//! own scheduler statistics as it ends (`SchedStat`, read with `take_thread_stats`).

#[cfg(feature = "trace")]
pub use on::*;

#[cfg(not(feature = "trace"))]
pub(crate) use off::Timer;

/// A write's phases, in the order they happen; the write's timer charges the time since the last
/// mark to the phase named.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Waiting for the shard's lock.
    LockWait,
    /// Serialize-before-mutate: stamping the bucket and taking a reference to its entries.
    Capture,
    /// `Arc::make_mut` copying a bucket that a capture still shares.
    Copy,
    /// Finding the key and changing the bucket.
    Apply,
    /// Linear hashing's bucket splits (each with its own capture, if needed).
    Split,
}

#[cfg(not(feature = "trace"))]
mod off {
    use super::Phase;
    use crate::table::Bucket;

    /// The timer without the `trace` feature: nothing, doing nothing.
    pub(crate) struct Timer;

    /// When a traversal took a lock, without the `trace` feature: not kept.
    pub(crate) struct HoldStart;

    impl Timer {
        #[inline(always)]
        pub(crate) fn start() -> Self {
            Timer
        }
        #[inline(always)]
        pub(crate) fn mark(&mut self, _: Phase) {}
        #[inline(always)]
        pub(crate) fn copy_if_shared(&mut self, _: &mut Bucket) {}
        #[inline(always)]
        pub(crate) fn finish(self, _: usize) {}
        #[inline(always)]
        pub(crate) fn hold_start() -> HoldStart {
            HoldStart
        }
        #[inline(always)]
        pub(crate) fn hold(_: usize, _: HoldStart, _: usize) {}
        #[inline(always)]
        pub(crate) fn thread_done(_: &'static str, _: usize) {}
    }
}

#[cfg(feature = "trace")]
mod on {
    use super::Phase;
    use crate::table::Bucket;
    use std::cell::Cell;
    use std::sync::Arc;
    use std::sync::Mutex;
    use std::time::Instant;

    /// One write's time, ns, by phase. `lock_wait_ns` is from the call into the store until
    /// the shard's lock was held; the rest were spent holding it.
    #[derive(Clone, Copy, Debug, Default)]
    pub struct WriteTrace {
        /// The shard the write went to.
        pub shard: usize,
        /// From entering `apply` until the shard lock was held, ns.
        pub lock_wait_ns: u64,
        /// Capturing the write's bucket for the dump (serialize-before-mutate), ns.
        pub capture_ns: u64,
        /// Copying the bucket because a capture still shared it (`Arc::make_mut`), ns.
        pub copy_ns: u64,
        /// Whether the bucket was copied.
        pub copied: bool,
        /// Finding the key and changing the bucket, ns.
        pub apply_ns: u64,
        /// Splitting buckets to grow the table, ns.
        pub split_ns: u64,
    }

    impl WriteTrace {
        /// Everything done holding the shard lock, ns.
        pub fn held_ns(&self) -> u64 {
            self.capture_ns + self.copy_ns + self.apply_ns + self.split_ns
        }
    }

    /// One hold of a shard lock by that shard's traversal.
    #[derive(Clone, Copy, Debug)]
    pub struct Hold {
        /// Which shard.
        pub shard: usize,
        /// When the lock was taken.
        pub at: Instant,
        /// How long it was held, ns.
        pub ns: u64,
        /// Buckets visited in that hold.
        pub buckets: usize,
    }

    /// A save thread's scheduler statistics over its life, from `/proc/thread-self/schedstat`
    /// (Linux Documentation/scheduler/sched-stats.rst: time on the CPU, time waiting on a run
    /// queue, and timeslices run).
    #[derive(Clone, Debug)]
    pub struct SchedStat {
        /// `traversal`, `encoder` or `sink`.
        pub role: &'static str,
        /// Shard (traversal, encoder) or output file (sink) index.
        pub index: usize,
        /// Time on a CPU, ns.
        pub cpu_ns: u64,
        /// Time runnable but waiting for a CPU, ns.
        pub runq_wait_ns: u64,
        /// Timeslices run (times it was switched in).
        pub slices: u64,
    }

    /// Read `/proc/thread-self/schedstat` (or another thread's, given its path): CPU ns,
    /// run-queue wait ns, timeslices. `None` where the file is missing (not Linux, or
    /// schedstats compiled out).
    pub fn read_schedstat(path: &str) -> Option<(u64, u64, u64)> {
        let s = std::fs::read_to_string(path).ok()?;
        let mut it = s.split_whitespace().map(|f| f.parse::<u64>().ok());
        Some((it.next()??, it.next()??, it.next()??))
    }

    thread_local! {
        static LAST: Cell<Option<WriteTrace>> = const { Cell::new(None) };
    }
    static HOLDS: Mutex<Vec<Hold>> = Mutex::new(Vec::new());
    static THREADS: Mutex<Vec<SchedStat>> = Mutex::new(Vec::new());

    /// The trace of this thread's last write, taken (the next call returns `None` until
    /// another write).
    pub fn take_last() -> Option<WriteTrace> {
        LAST.with(Cell::take)
    }

    /// Every traversal lock hold recorded since the last call.
    pub fn take_holds() -> Vec<Hold> {
        std::mem::take(&mut *HOLDS.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// The scheduler statistics of every save thread that ended since the last call.
    pub fn take_thread_stats() -> Vec<SchedStat> {
        std::mem::take(&mut *THREADS.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Times one write, phase by phase.
    pub(crate) struct Timer {
        last: Instant,
        trace: WriteTrace,
    }

    impl Timer {
        pub(crate) fn start() -> Self {
            Timer { last: Instant::now(), trace: WriteTrace::default() }
        }

        /// Charge the time since the previous mark to `phase`.
        pub(crate) fn mark(&mut self, phase: Phase) {
            let now = Instant::now();
            let ns = now.duration_since(self.last).as_nanos() as u64;
            self.last = now;
            let t = &mut self.trace;
            *match phase {
                Phase::LockWait => &mut t.lock_wait_ns,
                Phase::Capture => &mut t.capture_ns,
                Phase::Copy => &mut t.copy_ns,
                Phase::Apply => &mut t.apply_ns,
                Phase::Split => &mut t.split_ns,
            } += ns;
        }

        /// Copy the bucket now if a capture shares it, so the copy is timed on its own. The
        /// write would copy it anyway as it changes the bucket; only a write that turns out
        /// to change nothing (deleting a missing key) copies here and would not otherwise.
        pub(crate) fn copy_if_shared(&mut self, bucket: &mut Bucket) {
            if Arc::strong_count(&bucket.entries) > 1 {
                bucket.entries_mut();
                self.trace.copied = true;
            }
            self.mark(Phase::Copy);
        }

        /// Keep the trace for [`take_last`].
        pub(crate) fn finish(mut self, shard: usize) {
            self.trace.shard = shard;
            LAST.with(|l| l.set(Some(self.trace)));
        }

        /// When a traversal took a shard's lock.
        pub(crate) fn hold_start() -> Instant {
            Instant::now()
        }

        /// Record a traversal's hold of shard `shard`'s lock, taken at `at`.
        pub(crate) fn hold(shard: usize, at: Instant, buckets: usize) {
            let ns = at.elapsed().as_nanos() as u64;
            HOLDS.lock().unwrap_or_else(|e| e.into_inner()).push(Hold { shard, at, ns, buckets });
        }

        /// Record the calling save thread's scheduler statistics, as it ends.
        pub(crate) fn thread_done(role: &'static str, index: usize) {
            if let Some((cpu_ns, runq_wait_ns, slices)) = read_schedstat("/proc/thread-self/schedstat") {
                let s = SchedStat { role, index, cpu_ns, runq_wait_ns, slices };
                THREADS.lock().unwrap_or_else(|e| e.into_inner()).push(s);
            }
        }
    }
}
