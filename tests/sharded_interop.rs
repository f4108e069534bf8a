//! The sharded strategy's per-shard output mode against real Redis: every shard file (and
//! the summary) is a dump redis-server loads on its own, and the union, loaded through the
//! summary and saved again, holds exactly the source data (same `DEBUG DIGEST`).

use snaplab::blocking::BlockingSave;
use snaplab::sharded::{ShardedStore, summary};
use snaplab_core::{SaveOptions, SnapshotStrategy, rdb, write_snapshot};
use snaplab_harness::dataset::{self, DatasetSpec};
use snaplab_harness::redis_server::{RedisServer, check_rdb};

/// Each shard file and the summary load in redis-server; the union's digest equals the
/// source's.
#[test]
fn per_shard_files_load_in_redis() {
    if RedisServer::find().is_none() {
        snaplab_harness::skips::skipped("per_shard_files_load_in_redis", "redis-server not found on PATH");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("source.rdb");
    let ks = dataset::generate(&DatasetSpec { keys: 5_000, value_size: 40, seed: 3 });
    write_snapshot(&ks, &source, &SaveOptions::default(), "test").unwrap();
    let expected = RedisServer::start_with_dump(&source).unwrap().digest().unwrap();

    let store = ShardedStore::<3>::from_keyspace(rdb::load_file(&source).unwrap().0);
    store.set_per_shard_files(true);
    let dest = dir.path().join("dump.rdb");
    store.save(&dest, &SaveOptions::default()).unwrap();

    let (_, files) = summary::read(&dest).unwrap();
    let mut keys = 0u64;
    for f in files.iter().chain(std::iter::once(&dest)) {
        check_rdb(f).unwrap_or_else(|e| panic!("redis-check-rdb refused {}: {e}", f.display()));
        let server =
            RedisServer::start_with_dump(f).unwrap_or_else(|e| panic!("redis-server refused {}: {e}", f.display()));
        keys += server.dbsize_per_db().unwrap().values().sum::<u64>();
    }
    assert_eq!(keys, ks.len() as u64, "the shard files hold every key once");

    let union = dir.path().join("union.rdb");
    BlockingSave::from_keyspace(summary::load(&dest).unwrap()).save(&union, &SaveOptions::default()).unwrap();
    assert_eq!(RedisServer::start_with_dump(&union).unwrap().digest().unwrap(), expected);
}
