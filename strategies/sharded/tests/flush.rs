//! FLUSHALL spans every shard, and Redis's FLUSHALL is atomic: a snapshot holds all of it
//! or none of it. A BGSAVE whose cut lands between two shards of a FLUSHALL would hold the
//! old keys of the shards not yet flushed beside the emptied ones, a state that never
//! existed.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;

use snaplab_core::{Command, Keyspace, SaveOptions, SnapshotStrategy, Value, rdb};
use snaplab_sharded::ShardedStore;

const KEYS: usize = 2_000;

fn set(i: usize, generation: u64) -> Command {
    Command::Set {
        db: 0,
        key: format!("key:{i:05}").into_bytes(),
        value: generation.to_string().into_bytes(),
        expire_at_ms: None,
    }
}

/// Explain a dump of the flush-and-rewrite loop: every key of one generation `g`, and
/// either all of them (the state just before FLUSHALL g+1) or a prefix of the rewrite
/// order (the state after FLUSHALL g, during its rewrite). Anything else never existed.
fn explain(dump: &Keyspace) -> Result<(), String> {
    let mut generation: Option<&[u8]> = None;
    let mut present = 0;
    for i in 0..KEYS {
        let Some(e) = dump.get(0, format!("key:{i:05}").as_bytes()) else { continue };
        let Value::String(v) = &e.value else { return Err(format!("key:{i:05} is not a string")) };
        match generation {
            None => generation = Some(v),
            Some(g) if g != v.as_slice() => {
                return Err(format!(
                    "generations {} and {} side by side",
                    String::from_utf8_lossy(g),
                    String::from_utf8_lossy(v)
                ));
            }
            _ => {}
        }
        if present != i {
            return Err(format!("key:{i:05} is present but key:{present:05}, written before it, is not"));
        }
        present += 1;
    }
    Ok(())
}

/// One thread loops FLUSHALL then rewrites every key with the next generation while the
/// main thread loops SAVE over 16 shards: no dump may hold part of a FLUSHALL.
#[test]
fn flushall_is_atomic_with_respect_to_the_cut() {
    let mut initial = Keyspace::new();
    for i in 0..KEYS {
        initial.apply(&set(i, 0), 0).unwrap();
    }
    let store = Arc::new(ShardedStore::<16>::from_keyspace(initial));
    let stop = Arc::new(AtomicBool::new(false));
    let flusher = {
        let (store, stop) = (Arc::clone(&store), Arc::clone(&stop));
        thread::spawn(move || {
            let mut generation = 0;
            while !stop.load(Ordering::Relaxed) {
                generation += 1;
                store.apply(&Command::FlushAll).unwrap();
                for i in 0..KEYS {
                    store.apply(&set(i, generation)).unwrap();
                }
            }
            generation
        })
    };
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("dump.rdb");
    let rounds = std::env::var("SNAPLAB_FLUSH_ROUNDS").ok().and_then(|v| v.parse().ok()).unwrap_or(1500);
    let mut verdict = Ok(());
    for round in 0..rounds {
        store.save(&dest, &SaveOptions::default()).unwrap();
        let (dump, _) = rdb::load_file(&dest).unwrap();
        if let Err(e) = explain(&dump) {
            verdict = Err(format!("SAVE {round}: {e}"));
            break;
        }
    }
    stop.store(true, Ordering::Relaxed);
    let generations = flusher.join().unwrap();
    assert!(generations > 1, "the flusher never completed a FLUSHALL during the saves");
    verdict.unwrap();
}
