//! Save rules and status like Redis: `save <seconds> <changes>` rules trigger a BGSAVE, the
//! change counter counts only writes after the cut (also across a FLUSHALL during the save,
//! which Redis once got wrong), a failed save refuses writes (MISCONF) until a retry, no
//! sooner than the retry delay, succeeds.

use std::sync::Arc;
use std::time::{Duration, Instant};

use snaplab::blocking::BlockingSave;
use snaplab_core::rules::{AutoSave, SaveRule, Tick};
use snaplab_core::{Command, CommandError, Keyspace, SaveOptions, SnapshotStrategy, rdb};
use snaplab_harness::conformance::{GateIo, GatedIo};
use snaplab_harness::faults::{Fault, FaultyIo};

fn set(i: usize) -> Command {
    Command::Set { db: 0, key: format!("k{i}").into_bytes(), value: b"v".to_vec(), expire_at_ms: None }
}

fn auto(dir: &std::path::Path, rules: Vec<SaveRule>, opts: SaveOptions) -> AutoSave<BlockingSave> {
    let store = Arc::new(BlockingSave::from_keyspace(Keyspace::new()));
    AutoSave::new(store, dir.join("dump.rdb"), rules, Duration::from_secs(5), opts)
}

/// A rule fires only when both its change count and its time have been reached.
#[test]
fn rules_trigger_a_bgsave() {
    let dir = tempfile::tempdir().unwrap();
    let rules =
        vec![SaveRule { after: Duration::from_secs(60), changes: 1 }, SaveRule { after: Duration::ZERO, changes: 3 }];
    let a = auto(dir.path(), rules, SaveOptions::default());
    let t0 = Instant::now();
    a.apply(&set(1)).unwrap();
    a.apply(&set(2)).unwrap();
    assert!(matches!(a.tick(t0), Tick::Idle), "2 changes, and 60 s have not passed");
    a.apply(&set(3)).unwrap();
    assert!(matches!(a.tick(t0), Tick::Started));
    assert!(a.finish(t0).unwrap().is_ok());
    assert_eq!(a.dirty(), 0);
    assert_eq!(rdb::load_file(&dir.path().join("dump.rdb")).unwrap().0.len(), 3);
    a.apply(&set(4)).unwrap();
    assert!(matches!(a.tick(t0), Tick::Idle));
    assert!(matches!(a.tick(t0 + Duration::from_secs(61)), Tick::Started), "1 change and 60 s: the first rule");
    a.finish(t0).unwrap().unwrap();
}

/// The counter keeps exactly the writes after the cut: a FLUSHALL during the save (5 keys
/// removed, 5 changes) and two more writes leave 7 unsaved changes, never a negative count.
#[test]
fn changes_after_the_cut_survive_a_flushall_during_the_save() {
    let dir = tempfile::tempdir().unwrap();
    let gate = GateIo::new();
    let opts = SaveOptions { io: Arc::new(GatedIo(Arc::clone(&gate))), ..SaveOptions::default() };
    let a = auto(dir.path(), vec![SaveRule { after: Duration::ZERO, changes: 1 }], opts);
    for i in 0..5 {
        a.apply(&set(i)).unwrap();
    }
    let now = Instant::now();
    assert!(matches!(a.tick(now), Tick::Started));
    assert!(gate.wait_for_a_held_write(Duration::from_secs(30)), "the save is in progress");
    assert!(matches!(a.tick(now), Tick::Running));
    assert_eq!(a.dirty(), 5, "the writes before the cut count until the save succeeds");
    // Writes during a blocking save wait for it; apply them from another thread.
    let a = Arc::new(a);
    let writer = {
        let a = Arc::clone(&a);
        std::thread::spawn(move || {
            a.apply(&Command::FlushAll).unwrap();
            a.apply(&set(10)).unwrap();
            a.apply(&set(11)).unwrap();
        })
    };
    gate.open();
    writer.join().unwrap();
    a.finish(now).unwrap().unwrap();
    assert_eq!(a.dirty(), 7, "5 keys flushed + 2 writes, all after the cut");
    assert_eq!(rdb::load_file(&dir.path().join("dump.rdb")).unwrap().0.len(), 5, "the dump holds the state at the cut");
}

/// With rules configured, a failed save refuses writes with MISCONF (the store unchanged,
/// reads still served); the retry waits for the retry delay; a successful retry lifts it.
#[test]
fn a_failed_save_refuses_writes_until_a_retry_succeeds() {
    let dir = tempfile::tempdir().unwrap();
    let failing = SaveOptions { io: Arc::new(FaultyIo::new(Fault::Fsync)), ..SaveOptions::default() };
    let a = auto(dir.path(), vec![SaveRule { after: Duration::ZERO, changes: 1 }], failing);
    a.apply(&set(1)).unwrap();
    let t0 = Instant::now();
    assert!(matches!(a.tick(t0), Tick::Started));
    assert!(a.finish(t0).unwrap().is_err());

    let before = a.store().to_keyspace();
    match a.apply(&set(2)) {
        Err(CommandError::Misconf(reason)) => assert!(reason.contains("fsync"), "{reason}"),
        other => panic!("expected MISCONF, got {other:?}"),
    }
    assert_eq!(a.store().to_keyspace(), before, "a refused write changes nothing");
    assert!(a.store().get(0, b"k1").is_some(), "reads are still served");

    a.set_save_options(SaveOptions::default());
    assert!(matches!(a.tick(t0 + Duration::from_secs(4)), Tick::Idle), "the retry waits 5 s");
    assert!(matches!(a.tick(t0 + Duration::from_secs(5)), Tick::Started));
    a.finish(t0 + Duration::from_secs(5)).unwrap().unwrap();
    a.apply(&set(2)).unwrap();
    assert_eq!(a.dirty(), 1);
}

/// A save whose outcome `finish` is waiting for is still in progress to every reader until
/// that outcome is recorded: `INFO` cannot show "no save running" next to the status of the
/// save before it (a client polling `rdb_bgsave_in_progress` would read a stale `ok`), and
/// a second BGSAVE is refused meanwhile.
#[test]
fn a_save_being_collected_is_still_in_progress() {
    let dir = tempfile::tempdir().unwrap();
    let gate = GateIo::new();
    let opts = SaveOptions { io: Arc::new(GatedIo(Arc::clone(&gate))), ..SaveOptions::default() };
    let a = Arc::new(auto(dir.path(), Vec::new(), opts));
    a.apply(&set(1)).unwrap();
    let now = Instant::now();
    a.bgsave(now).unwrap();
    assert!(gate.wait_for_a_held_write(Duration::from_secs(30)), "the save is in progress");
    let collector = {
        let a = Arc::clone(&a);
        std::thread::spawn(move || a.finish(now))
    };
    // Time for the collector to take the save and wait for it; were it late, the checks
    // below would pass without testing anything, never fail wrongly.
    std::thread::sleep(Duration::from_millis(300));
    let info = a.info(now);
    assert!(info.in_progress, "the save is held at the gate, so it is in progress");
    assert!(info.current_bgsave_time_sec >= 0);
    assert!(matches!(a.bgsave(now), Err(snaplab_core::SaveError::InProgress)));
    assert!(matches!(a.tick(now), Tick::Running));
    gate.open();
    collector.join().unwrap().expect("the collector found the save").unwrap();
    let info = a.info(now);
    assert!(!info.in_progress);
    assert!(info.last_failure.is_none() && info.last_report.is_some());
    assert_eq!(a.dirty(), 0);
    assert!(a.finish(now).is_none(), "nothing left to collect");
}
