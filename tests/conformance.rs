//! The conformance suite for every strategy: point-in-time BGSAVE under concurrent
//! writers, the reference model, the cut each save reports, refused overlapping saves,
//! writes after the cut, expiry during a save, LASTSAVE and status, disk faults.
//!
//! The strategies come from the one list in `src/lib.rs` (`snaplab::with_strategies!`),
//! so a strategy registered there is tested here with no further line. `PROPTEST_CASES`
//! and `SNAPLAB_STRESS_ROUNDS` scale the effort.

// ANCHOR: suites
/// One `conformance_suite!` per listed strategy, except `fork`: a test binary runs its
/// tests on many threads at once, and `fork()` from a multi-threaded process is only safe
/// with care, so fork's suite runs in its own binary (`tests/fork.rs`), where nothing else
/// shares the process.
macro_rules! suites {
    (fork: $ty:ty => $summary:literal, $($rest:tt)*) => { suites!($($rest)*); };
    ($name:ident: $ty:ty => $summary:literal, $($rest:tt)*) => {
        snaplab_harness::conformance_suite!($name, $ty);
        suites!($($rest)*);
    };
    () => {};
}

snaplab::with_strategies!(suites);
// ANCHOR_END: suites

// The sharded store again at fixed shard counts, so one shard, two and four are all
// covered whatever the machine's core count (the listed one uses one shard per core).
snaplab_harness::conformance_suite!(sharded_1, snaplab::sharded::ShardedStore<1>);
snaplab_harness::conformance_suite!(sharded_2, snaplab::sharded::ShardedStore<2>);
snaplab_harness::conformance_suite!(sharded_4, snaplab::sharded::ShardedStore<4>);

// The perkey store with its large-value threshold at both ends: every writer of an unvisited
// key waits for the iterator to serialize it (0), or every one clones its pre-image (MAX).
snaplab_harness::conformance_suite!(perkey_wait, snaplab::perkey::PerKeyCopy<0>);
snaplab_harness::conformance_suite!(perkey_clone, snaplab::perkey::PerKeyCopy<{ usize::MAX }>);
