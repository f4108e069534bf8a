//! Hostile dumps: every corpus file (when the corpus is present) and a dump of our own,
//! mutated at random (bit flips, truncations, inserted bytes, and length fields set to
//! 2^32 and 2^64-1), either load as a valid keyspace or fail with a typed error carrying a
//! byte offset inside the input; never a panic. Checking without building values
//! (`rdb::check`, behind `snaplab verify`) reaches the same verdict on every one of them.
//!
//! `SNAPLAB_MUTATIONS` sets the mutations per file (default 60).

mod support;

use std::panic::{AssertUnwindSafe, catch_unwind};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use snaplab_core::rdb;

fn mutate(rng: &mut ChaCha8Rng, input: &[u8]) -> Vec<u8> {
    let mut out = input.to_vec();
    let at = rng.random_range(0..out.len().max(1));
    match rng.random_range(0..5) {
        0 => {
            let bit = 1u8 << rng.random_range(0..8);
            if let Some(b) = out.get_mut(at) {
                *b ^= bit;
            }
        }
        1 => out.truncate(at),
        2 => {
            let n = rng.random_range(1..16);
            let bytes: Vec<u8> = (0..n).map(|_| rng.random()).collect();
            out.splice(at..at, bytes);
        }
        // A 64-bit length (RDB_64BITLEN) of 2^32, then of 2^64-1, written over the input.
        3 => overwrite(&mut out, at, &[0x81, 0, 0, 0, 1, 0, 0, 0, 0]),
        _ => overwrite(&mut out, at, &[0x81, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]),
    }
    out
}

fn overwrite(out: &mut [u8], at: usize, bytes: &[u8]) {
    for (i, b) in bytes.iter().enumerate() {
        if let Some(slot) = out.get_mut(at + i) {
            *slot = *b;
        }
    }
}

/// Mutated dumps give a keyspace or a typed error with an offset inside the input, the same
/// verdict from loading and from checking; no mutation makes the reader panic.
#[test]
fn mutated_dumps_never_panic() {
    let per_file: usize = std::env::var("SNAPLAB_MUTATIONS").ok().and_then(|v| v.parse().ok()).unwrap_or(60);
    let mut inputs: Vec<(String, Vec<u8>)> = Vec::new();
    let (ours, _) =
        rdb::write_view(&support::sample_keyspace(), Vec::new(), &rdb::EncodeOptions::default(), None).unwrap();
    inputs.push(("our sample dump".into(), ours));
    if let Some(dir) = support::corpus_dir("mutated_dumps_never_panic (corpus part)") {
        for path in support::rdb_files(&dir) {
            inputs.push((path.display().to_string(), std::fs::read(&path).unwrap()));
        }
    }
    let mut rng = ChaCha8Rng::seed_from_u64(2026);
    let (mut loaded, mut refused) = (0, 0);
    for (name, input) in &inputs {
        for i in 0..per_file {
            let m = mutate(&mut rng, input);
            let outcome = catch_unwind(AssertUnwindSafe(|| rdb::load(m.as_slice()).map(|(ks, _)| ks.len())));
            let checked = catch_unwind(AssertUnwindSafe(|| rdb::check(m.as_slice())));
            match (&outcome, &checked) {
                (Ok(Ok(keys)), Ok(Ok(summary))) => {
                    assert_eq!(
                        *keys as u64,
                        summary.keys(),
                        "{name}, mutation {i}: load and check count keys differently"
                    )
                }
                (Ok(Err(l)), Ok(Err(c))) => assert_eq!(
                    l.to_string(),
                    c.error.to_string(),
                    "{name}, mutation {i}: load and check refuse it differently"
                ),
                (Ok(l), Ok(c)) => {
                    panic!("{name}, mutation {i}: load says {:?}, check says {:?}", l.as_ref().err(), c.as_ref().err())
                }
                _ => {}
            }
            if checked.is_err() {
                panic!("{name}, mutation {i}: checking panicked");
            }
            match outcome {
                Ok(Ok(_)) => loaded += 1,
                Ok(Err(e)) => {
                    assert!(
                        e.offset() <= m.len() as u64,
                        "{name}, mutation {i}: offset {} past the end ({} bytes): {e}",
                        e.offset(),
                        m.len()
                    );
                    refused += 1;
                }
                Err(_) => panic!("{name}, mutation {i}: the reader panicked"),
            }
        }
    }
    eprintln!("{} mutated inputs: {loaded} loaded, {refused} refused with a typed error", loaded + refused);
    assert!(refused > 0);
}
