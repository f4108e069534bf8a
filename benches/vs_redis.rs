//! snaplab against redis-server, side by side in one run, on the same data and disk:
//!
//! - **SAVE**: redis-server's own `SAVE` against our `blocking` strategy's SAVE of the
//!   same keyspace (both write, fsync and rename a complete dump);
//! - **load**: redis-server loading a dump *Redis wrote* at startup (its log's "DB loaded
//!   from disk" figure) against our reader loading the same file into a keyspace;
//! - **fork**: the time `fork()` takes in redis-server's BGSAVE (`latest_fork_usec`) against
//!   our `fork` strategy's (`fork_us`), each process holding the same dataset.
//!
//! `cargo bench --bench vs_redis` runs it on the built-in dataset (1,000,000 string keys of
//! 100 bytes plus keys of every other type), three rounds of each, and prints the median
//! and the ratio. Under `cargo test --benches` it runs once on a tiny dataset, to prove it
//! works. It needs `redis-server` on PATH and says so when it is missing.

use std::path::Path;
use std::time::{Duration, Instant};

use snaplab_blocking::BlockingSave;
use snaplab_core::{SaveOptions, SnapshotStrategy, rdb, write_snapshot};
use snaplab_fork::ForkSave;
use snaplab_harness::dataset::{self, DatasetSpec};
use snaplab_harness::redis_server::{RedisServer, ServerOptions};

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn start(dump: &Path) -> RedisServer {
    let opts = ServerOptions {
        dump: Some(dump.to_path_buf()),
        startup_timeout: Duration::from_secs(600),
        ..Default::default()
    };
    RedisServer::start(&opts).expect("redis-server starts on the dump")
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    if RedisServer::find().is_none() {
        snaplab_harness::skips::skipped("vs_redis (bench)", "redis-server not found on PATH");
        return;
    }
    let (spec, rounds) =
        if full { (DatasetSpec::default(), 3) } else { (DatasetSpec { keys: 2_000, ..Default::default() }, 1) };
    let dir = tempfile::tempdir().expect("a temporary directory");

    // Our dump of the dataset, loaded into Redis and saved by Redis: the file both sides load.
    let ours = dir.path().join("ours.rdb");
    write_snapshot(&dataset::generate(&spec), &ours, &SaveOptions::default(), "generate").expect("writing the dataset");
    let redis_written = dir.path().join("redis.rdb");
    {
        let server = start(&ours);
        let mut saves = Vec::new();
        for _ in 0..rounds {
            let t = Instant::now();
            server.save().expect("SAVE");
            saves.push(t.elapsed());
        }
        std::fs::copy(server.dump_path(), &redis_written).expect("copying Redis's dump");
        report("SAVE (write + fsync + rename)", median(saves), {
            let (ks, _) = rdb::load_file(&redis_written).expect("our reader loads Redis's dump");
            let store = BlockingSave::from_keyspace(ks);
            let out = dir.path().join("saved-by-snaplab.rdb");
            median((0..rounds).map(|_| store.save(&out, &SaveOptions::default()).expect("our SAVE").duration).collect())
        });
    }

    {
        let server = start(&redis_written);
        let mut forks = Vec::new();
        for _ in 0..rounds {
            server.bgsave_and_wait(Duration::from_secs(600)).expect("BGSAVE");
            let usec: u64 = server.info("stats").expect("INFO")["latest_fork_usec"].parse().expect("a number");
            forks.push(Duration::from_micros(usec));
        }
        let (ks, _) = rdb::load_file(&redis_written).expect("our reader loads Redis's dump");
        let store = ForkSave::from_keyspace(ks);
        let out = dir.path().join("forked.rdb");
        let ours = (0..rounds)
            .map(|_| {
                let report = store.bgsave(&out, &SaveOptions::default()).and_then(|b| b.wait()).expect("our BGSAVE");
                Duration::from_micros(report.figure("fork_us").expect("fork_us is reported"))
            })
            .collect();
        report("fork() in BGSAVE", median(forks), median(ours));
    }

    let mut redis_loads = Vec::new();
    for _ in 0..rounds {
        let server = start(&redis_written);
        redis_loads.push(server.load_time().expect("Redis logs its load time"));
    }
    let our_loads = (0..rounds)
        .map(|_| {
            let t = Instant::now();
            let (ks, _) = rdb::load_file(&redis_written).expect("our reader loads Redis's dump");
            let took = t.elapsed();
            drop(ks);
            took
        })
        .collect();
    report("load a dump Redis wrote", median(redis_loads), median(our_loads));
    println!(
        "dataset: {} string keys x {} bytes + keys of every other type; dump {} bytes; median of {rounds}",
        spec.keys,
        spec.value_size,
        std::fs::metadata(&redis_written).map(|m| m.len()).unwrap_or(0)
    );
}

fn report(what: &str, redis: Duration, ours: Duration) {
    println!(
        "{what:<32} redis-server {:>9.1} ms   snaplab {:>9.1} ms   snaplab/redis {:.2}x",
        ms(redis),
        ms(ours),
        ours.as_secs_f64() / redis.as_secs_f64()
    );
}
