//! The conformance suite, one line per strategy: every strategy must pass every check
//! (point-in-time BGSAVE under concurrent writers, the reference model, refused overlapping
//! saves, writes after the cut, expiry during a save, LASTSAVE and status).
//!
//! `PROPTEST_CASES` and `SNAPLAB_STRESS_ROUNDS` scale the effort.

snaplab_harness::conformance_suite!(blocking, snaplab::blocking::BlockingSave);
snaplab_harness::conformance_suite!(clone, snaplab::clone::CloneThenSerialize);
snaplab_harness::conformance_suite!(cow, snaplab::cow::CowMap);
snaplab_harness::conformance_suite!(sharded_1, snaplab::sharded::ShardedStore<1>);
snaplab_harness::conformance_suite!(sharded_2, snaplab::sharded::ShardedStore<2>);
snaplab_harness::conformance_suite!(sharded_4, snaplab::sharded::ShardedStore<4>);
