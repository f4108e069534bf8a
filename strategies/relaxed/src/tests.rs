//! The visited rule, the log's records, and the file: RDB then the log, loading as the
//! state at the log's close.

use super::*;
use snaplab_core::aof;

fn s(v: &str) -> Bytes {
    v.as_bytes().to_vec()
}

fn rpush(key: &str, e: &str) -> Command {
    Command::RPush { db: 0, key: s(key), elements: vec![s(e)] }
}

/// Two keys in different buckets, the first in a lower bucket than the second.
fn two_keys() -> (String, String) {
    let mut names: Vec<String> = (0..64).map(|i| format!("k{i}")).collect();
    names.sort_by_key(|k| bucket_of(k.as_bytes()));
    let low = names[0].clone();
    let high = names.iter().rev().find(|k| bucket_of(k.as_bytes()) > bucket_of(low.as_bytes())).unwrap().clone();
    (low, high)
}

/// With the cursor between two keys' buckets, a write to the visited one is logged and a
/// write to the other is not.
#[test]
fn only_writes_to_visited_keys_are_logged() {
    let (low, high) = two_keys();
    let store = Relaxed::from_keyspace(Keyspace::new());
    store.apply(&rpush(&low, "a")).unwrap();
    store.apply(&rpush(&high, "a")).unwrap();
    store.start();
    store.write().traversal.as_mut().unwrap().cursor = bucket_of(high.as_bytes());
    store.apply(&rpush(&low, "b")).unwrap();
    store.apply(&rpush(&high, "b")).unwrap();
    let (t, writes) = store.close();
    let t = t.unwrap();
    assert_eq!(writes, 4);
    assert_eq!(t.records, 1, "only the write to the visited key {low} is logged");
    let mut want = Vec::new();
    aof::put_select(&mut want, 0);
    aof::encode_command(&mut want, &rpush(&low, "b"));
    assert_eq!(t.log, want);
}

/// A FLUSHDB during the traversal is logged and makes its database visited: a later
/// write there is logged even to a key the traversal has not reached.
#[test]
fn a_flushed_database_counts_as_visited() {
    let (_, high) = two_keys();
    let store = Relaxed::from_keyspace(Keyspace::new());
    store.start();
    store.apply(&Command::FlushDb { db: 0 }).unwrap();
    store.apply(&rpush(&high, "x")).unwrap();
    let (t, _) = store.close();
    assert_eq!(t.unwrap().records, 2, "the FLUSHDB and the write after it");
}

/// A save with writes arriving during the traversal writes RDB then the log, the report's
/// figures describe the tail, and a save with no writer running loads as the store.
#[test]
fn the_file_is_the_state_at_the_close() {
    let mut ks = Keyspace::new();
    for i in 0..5000 {
        ks.insert(i % 3, format!("key:{i}").into_bytes(), Entry::new(snaplab_core::Value::String(s("v"))));
    }
    let store = Relaxed::from_keyspace(ks);
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("appendonly.aof");
    let writer = {
        let store = store.clone();
        thread::spawn(move || {
            for i in 0..20_000u64 {
                let key = format!("key:{}", i % 6000).into_bytes();
                let db = (i % 3) as usize;
                let cmd = match i % 4 {
                    0 => Command::Del { db, key },
                    1 => Command::Set { db, key, value: i.to_string().into_bytes(), expire_at_ms: None },
                    _ => Command::SAdd { db, key: format!("set:{}", i % 50).into_bytes(), members: vec![s("m")] },
                };
                let _ = store.apply(&cmd);
            }
        })
    };
    let report = store.bgsave(&dest, &SaveOptions::default()).unwrap().wait().unwrap();
    writer.join().unwrap();
    let close = store.last_log_close().expect("a successful save records its close");
    assert!(close.requested <= close.acknowledged);
    let (got, summary) = aof::load_file(&dest).unwrap();
    assert_eq!(summary.rdb.bytes + summary.tail_bytes, report.bytes, "the file is the RDB then the tail");
    assert_eq!(report.figure("log_bytes"), Some(summary.tail_bytes));
    assert!(report.cut.writes() <= 20_000 && !got.is_empty());
    // With no writer running, a save is the store (the conformance suite checks the
    // concurrent case against the writers' history).
    let quiet = dir.path().join("quiet.aof");
    store.save(&quiet, &SaveOptions::default()).unwrap();
    let (after, _) = aof::load_file(&quiet).unwrap();
    assert_eq!(after, store.to_keyspace(), "a save with no writer running is the store");
}

/// `SnapshotStrategy::load` replays the tail: a store loaded from an RDB-preamble file
/// holds the writes its log carries, and a tail cut inside a command is an error, not a
/// silent loss.
#[test]
fn load_replays_the_tail() {
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("appendonly.aof");
    let before = Relaxed::from_keyspace(Keyspace::new());
    before.apply(&rpush("l", "a")).unwrap();
    before.save(&dest, &SaveOptions::default()).unwrap();
    let mut bytes = std::fs::read(&dest).unwrap();
    aof::put_select(&mut bytes, 0);
    aof::encode_command(&mut bytes, &rpush("l", "b"));
    std::fs::write(&dest, &bytes).unwrap();
    before.apply(&rpush("l", "b")).unwrap();
    let loaded = Relaxed::load(&dest).unwrap();
    assert_eq!(loaded.to_keyspace(), before.to_keyspace(), "the list holds both pushes, one of them from the tail");
    std::fs::write(&dest, &bytes[..bytes.len() - 2]).unwrap();
    assert!(Relaxed::load(&dest).is_err(), "a truncated tail does not load");
}
