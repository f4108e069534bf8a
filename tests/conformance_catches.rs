//! Proof that the conformance suite can fail: strategies that are wrong on purpose are
//! each rejected, with a message naming the rule they break. Without this, a green suite
//! would prove nothing.

mod faulty;

use faulty::{DropsVisited, LateCut, LogsUnvisited, LosesWrites, NoIsolation, TagShards, TwoLockCut, WritesInPlace};
use snaplab_harness::checker::{AT_LOG_CLOSE_RULES, ONE_INSTANT_RULE, POINT_IN_TIME_RULES, REPORTED_CUT_RULE};
use snaplab_harness::conformance::{self, Failure, SuiteConfig};

fn cfg() -> SuiteConfig {
    SuiteConfig { regressions: None, cases: 48, stress_rounds: 2, ..SuiteConfig::from_env("faulty") }
}

fn expect_failure(result: Result<(), Failure>, rule_words: &str, what: &str) {
    match result {
        Ok(()) => panic!("the suite accepted {what}"),
        Err(f) => {
            let text = f.to_string();
            assert!(text.contains(rule_words), "{what}: the failure should name the rule '{rule_words}', got: {text}");
        }
    }
}

/// A strategy that serializes the live map without isolation fails the point-in-time
/// check under concurrent writers, by one of its rules.
#[test]
fn no_isolation_is_caught() {
    match conformance::bgsave_is_point_in_time::<NoIsolation>(&cfg()) {
        Ok(()) => panic!("the suite accepted no isolation"),
        Err(f) => assert!(POINT_IN_TIME_RULES.contains(&f.rule), "a point-in-time rule should be named, got: {f}"),
    }
}

/// A strategy that drops a write applied during a save fails the model check.
#[test]
fn lost_write_is_caught() {
    expect_failure(
        conformance::matches_the_reference_model::<LosesWrites>(&cfg()),
        "exactly as the reference model",
        "a lost write",
    );
}

/// A strategy that takes its cut after BGSAVE returned fails the point-in-time check.
/// It waits for sixteen writes before it copies, so the dump holds writes that started
/// after the return, and the check names one; on a machine so busy that sixteen writes do
/// not come within its 200 ms wait, the copy may be of an instant inside the call, and then
/// the check of the cut it reported (at the call) names the writes between the two. Both
/// verdicts are about where the cut fell; any other rule would be a wrong diagnosis.
#[test]
fn late_cut_is_caught() {
    match conformance::bgsave_is_point_in_time::<LateCut>(&cfg()) {
        Ok(()) => panic!("the suite accepted a late cut"),
        Err(f) => {
            let text = f.to_string();
            assert!(
                text.contains("started after BGSAVE returned") || f.rule == REPORTED_CUT_RULE,
                "a late cut: the failure should name a write that started after the return, or the reported cut, got: {text}"
            );
        }
    }
}

/// The model check also catches the late cut (the first write after BGSAVE leaks in).
#[test]
fn late_cut_is_caught_by_the_model() {
    expect_failure(conformance::matches_the_reference_model::<LateCut>(&cfg()), "one instant", "a late cut");
}

/// A strategy that writes the dump in place (no temporary file, no rename) fails the
/// crash-safety check: a disk error mid-write destroys the previous snapshot.
#[test]
fn writing_in_place_is_caught() {
    expect_failure(conformance::survives_io_faults::<WritesInPlace>(&cfg()), "previous snapshot", "writing in place");
}

/// A store copied shard by shard, each shard honestly under its own lock, gives every
/// writer thread a prefix of its writes, yet the snapshot is of no single instant: the
/// point-in-time check rejects it by the cross-thread rule (or, when a FLUSHDB fell
/// between two shards' copies, because the snapshot holds part of it).
#[test]
fn shard_by_shard_copy_is_caught() {
    match conformance::bgsave_is_point_in_time::<TagShards>(&cfg()) {
        Ok(()) => panic!("the suite accepted a snapshot copied one shard after another"),
        Err(f) => {
            // The cross-thread reasons: two threads' writes no instant had together, a
            // thread's write without its earlier one (seen through another thread's keys),
            // or part of a FLUSHDB.
            let cross_thread = [
                ONE_INSTANT_RULE,
                "each thread's writes in the snapshot are a prefix of its writes",
                "a multi-key write is all in the snapshot or not at all",
            ];
            assert!(cross_thread.contains(&f.rule), "the failure should name a point-in-time rule, got: {f}");
        }
    }
}

/// A strategy whose dump is of one instant, but not of the instant its cut reports (the
/// write count read under one lock, the keyspace copied under another), is rejected by
/// the reported-cut check.
#[test]
fn a_cut_taken_apart_from_the_copy_is_caught() {
    expect_failure(conformance::bgsave_is_point_in_time::<TwoLockCut>(&cfg()), REPORTED_CUT_RULE, "a misreported cut");
}

/// The rules a relaxed dump that misses or repeats a write may be rejected by: a key in a
/// state it never had (a push applied twice), a write that completed before the close
/// missing, or two keys' writes no single instant had together.
fn relaxed_rules() -> Vec<&'static str> {
    let mut rules = POINT_IN_TIME_RULES.to_vec();
    rules.extend(AT_LOG_CLOSE_RULES);
    rules
}

/// A relaxed store that logs writes to keys the traversal has not reached yet applies
/// them twice on load (once in the traversal's value, once from the log): pushes to lists
/// issued while the save is held mid-file are in the dump twice.
#[test]
fn relaxed_logging_unvisited_keys_is_caught() {
    expect_failure(
        conformance::writes_during_a_held_save::<LogsUnvisited>(),
        "the log's close being requested and acknowledged",
        "a change log that repeats writes",
    );
}

/// A relaxed store that logs nothing loses every write to a key the traversal had already
/// serialized, and the held-save scenario shows it too.
#[test]
fn relaxed_dropping_visited_writes_is_caught_by_the_held_save() {
    expect_failure(
        conformance::writes_during_a_held_save::<DropsVisited>(),
        "the log's close being requested and acknowledged",
        "a change log that drops writes",
    );
}

/// A relaxed store that logs nothing, under concurrent writers.
#[test]
fn relaxed_dropping_visited_writes_is_caught() {
    match conformance::bgsave_is_point_in_time::<DropsVisited>(&cfg()) {
        Ok(()) => panic!("the suite accepted a change log that drops writes"),
        Err(f) => assert!(relaxed_rules().contains(&f.rule), "the failure should name a checker rule, got: {f}"),
    }
}
