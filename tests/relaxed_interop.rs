//! The relaxed strategy's file is Redis's own RDB-preamble AOF: `redis-server` started with
//! `--appendonly yes` on a directory holding it as `appendonly.aof` loads it (Redis 7
//! takes an old-style AOF and moves it into its AOF directory, src/aof.c
//! `aofUpgradePrepare`; `loadSingleAppendOnlyFile` reads the RDB preamble, then the
//! command tail) and holds exactly the state at the log's close: the same `DEBUG DIGEST`
//! as `redis-server` loading that state as an ordinary dump.
//!
//! The save runs under writers of every command type; the state at the close is the
//! initial keyspace plus the writes the report's cut counts, in stamp order.
//!
//! Skips (said on stderr) when `redis-server` is not on `PATH`.

use std::ffi::OsString;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use snaplab::core::{Command, Keyspace, SaveOptions, SnapshotStrategy, aof};
use snaplab::harness::checker;
use snaplab::harness::dataset::{self, DatasetSpec};
use snaplab::harness::redis_server::{RedisServer, ServerOptions};
use snaplab::relaxed::Relaxed;

/// Far-future expiries (2100-01-01 and later, unix ms), so no key expires mid-test.
const FAR_FUTURE_MS: i64 = 4_102_444_800_000;

/// Writer `t`'s next write: every command the store knows, on a few keys per type so that
/// keys are written both before and after the traversal reaches them.
fn write(t: usize, seq: u64, rng: &mut ChaCha8Rng) -> Command {
    let i = rng.random_range(0..16u32);
    let db = (i % 3) as usize;
    let key = |kind: &str| format!("w{t}:{kind}{i}").into_bytes();
    let tag = format!("t{t}#{seq}").into_bytes();
    match rng.random_range(0..22u32) {
        0 | 1 => Command::Set { db, key: key("s"), value: tag, expire_at_ms: None },
        2 => Command::Set { db, key: key("s"), value: tag, expire_at_ms: Some(FAR_FUTURE_MS + seq as i64) },
        3 => Command::PExpireAt { db, key: key("s"), at_ms: FAR_FUTURE_MS + 7 * seq as i64 },
        4 => Command::Persist { db, key: key("s") },
        5 => Command::Del { db, key: key("s") },
        6 | 7 => Command::RPush { db, key: key("l"), elements: vec![tag.clone(), tag] },
        8 => Command::LPush { db, key: key("l"), elements: vec![tag] },
        9 => Command::LPop { db, key: key("l") },
        10 | 11 => Command::SAdd { db, key: key("S"), members: vec![tag] },
        12 => Command::SRem { db, key: key("S"), members: vec![format!("t{t}#{}", seq / 2).into_bytes()] },
        13 | 14 => Command::HSet { db, key: key("h"), pairs: vec![(format!("f{}", seq % 5).into_bytes(), tag)] },
        15 => Command::HDel { db, key: key("h"), fields: vec![format!("f{}", seq % 5).into_bytes()] },
        16 | 17 => Command::ZAdd {
            db,
            key: key("z"),
            pairs: vec![(seq as f64 / 3.0, format!("m{}", seq % 7).into_bytes()), (-0.5, b"neg".to_vec())],
        },
        18 => Command::ZRem { db, key: key("z"), members: vec![format!("m{}", seq % 7).into_bytes()] },
        19 if t == 0 && seq.is_multiple_of(200) => Command::FlushDb { db: 2 },
        _ => Command::Del { db, key: key("l") },
    }
}

#[test]
fn redis_loads_the_relaxed_file_as_its_aof_with_the_state_at_the_close() {
    const TEST: &str = "redis_loads_the_relaxed_file_as_its_aof_with_the_state_at_the_close";
    if RedisServer::find().is_none() {
        snaplab_harness::skips::skipped(TEST, "redis-server not found on PATH");
        return;
    }
    let initial = dataset::generate(&DatasetSpec { keys: 50_000, value_size: 32, seed: 11 });
    let store = Arc::new(Relaxed::from_keyspace(initial.clone()));
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..3)
        .map(|t| {
            let (store, stop) = (Arc::clone(&store), Arc::clone(&stop));
            thread::spawn(move || {
                let mut rng = ChaCha8Rng::seed_from_u64(t as u64 + 1);
                let mut done = Vec::new();
                let mut seq = 0;
                while !stop.load(Ordering::Relaxed) && seq < 200_000 {
                    seq += 1;
                    let cmd = write(t, seq, &mut rng);
                    if let Ok(a) = store.apply(&cmd) {
                        done.push((a.stamp.seq, cmd));
                    }
                }
                done
            })
        })
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("appendonly.aof");
    let report = store.bgsave(&file, &SaveOptions::default()).unwrap().wait().unwrap();
    stop.store(true, Ordering::Relaxed);
    let mut applied: Vec<(u64, Command)> = writers.into_iter().flat_map(|h| h.join().unwrap()).collect();
    applied.sort_by_key(|(seq, _)| *seq);
    let at_close = report.cut.writes();
    let expected: Keyspace =
        checker::replay(&initial, applied.iter().take_while(|(s, _)| *s <= at_close).map(|(_, c)| c));
    let records = report.figure("log_records_count").unwrap_or(0);
    eprintln!(
        "relaxed file: {} bytes, {records} log records, {} log bytes, {} writes at the close",
        report.bytes,
        report.figure("log_bytes").unwrap_or(0),
        at_close
    );
    assert!(records > 0, "the writers wrote to visited keys during the traversal, so the log is not empty");

    let (ours, _) = aof::load_file(&file).unwrap();
    assert!(ours == expected, "our reader: the file is not the state at the log's close");

    // The state at the close as an ordinary dump, loaded by redis-server.
    let plain = dir.path().join("at-close.rdb");
    snaplab::blocking::BlockingSave::from_keyspace(expected).save(&plain, &SaveOptions::default()).unwrap();
    let reference = RedisServer::start_with_dump(&plain).expect("redis-server loads the dump at the close");

    let aof_server = RedisServer::start(&ServerOptions {
        dump: Some(file.clone()),
        dbfilename: "appendonly.aof".into(),
        extra_args: ["--appendonly", "yes", "--appendfilename", "appendonly.aof", "--dbfilename", "dump.rdb"]
            .map(OsString::from)
            .to_vec(),
        ..ServerOptions::default()
    })
    .expect("redis-server starts on the relaxed file as its AOF");
    let log = aof_server.log_tail(200);
    assert!(log.contains("Reading RDB preamble from AOF file"), "redis-server did not read the preamble:\n{log}");
    assert!(log.contains("Reading the remaining AOF tail"), "redis-server did not read the tail:\n{log}");
    assert_eq!(
        aof_server.digest().unwrap(),
        reference.digest().unwrap(),
        "DEBUG DIGEST of the relaxed file as an AOF differs from the state at the log's close"
    );
    assert_eq!(aof_server.dbsize_per_db().unwrap(), reference.dbsize_per_db().unwrap());
}
