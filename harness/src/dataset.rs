//! The built-in dataset `snaplab compare` runs on when no dump is given.
//!
//! Mostly strings, because that is what most caches hold and what makes a save's cost
//! scale: `keys` keys `key:0000000` .. in db 0, each a `value_size`-byte alphanumeric
//! value (random, so LZF rarely shrinks it, like real payloads). Around them, a few
//! hundred keys of every other type, small and large, some with TTLs, in several databases,
//! including binary keys and integer strings, so every code path of the encoder runs.
//! The same seed gives the same keyspace.

use std::collections::{HashMap, HashSet, VecDeque};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use snaplab_core::{Bytes, Entry, Keyspace, Value};

/// What to generate.
#[derive(Clone, Copy, Debug)]
pub struct DatasetSpec {
    /// Number of string keys in db 0.
    pub keys: usize,
    /// Bytes per string value.
    pub value_size: usize,
    /// RNG seed.
    pub seed: u64,
}

impl Default for DatasetSpec {
    /// 1,000,000 keys of 100 bytes: the dataset `snaplab compare` and the published results use.
    fn default() -> Self {
        DatasetSpec { keys: 1_000_000, value_size: 100, seed: 1 }
    }
}

/// A far-future expiry (2100-01-01T00:00:00Z in unix ms), so generated TTLs never pass
/// during a run and the dataset does not depend on the clock.
pub const FAR_FUTURE_MS: i64 = 4_102_444_800_000;

const ALNUM: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";

fn random_alnum(rng: &mut ChaCha8Rng, len: usize) -> Bytes {
    (0..len).map(|_| ALNUM[rng.random_range(0..ALNUM.len())]).collect()
}

/// One line naming the built-in dataset for a report header, given the keyspace
/// [`generate`] built from `spec` (its extra keys are the non-string types).
pub fn describe(spec: &DatasetSpec, generated: &Keyspace) -> String {
    format!(
        "built-in: {} string keys x {} bytes + {} keys of other types (seed {})",
        spec.keys,
        spec.value_size,
        generated.len().saturating_sub(spec.keys),
        spec.seed
    )
}

/// Generate the dataset described by `spec`.
pub fn generate(spec: &DatasetSpec) -> Keyspace {
    let mut rng = ChaCha8Rng::seed_from_u64(spec.seed);
    let mut ks = Keyspace::new();
    ks.db_mut(0).reserve(spec.keys);
    for i in 0..spec.keys {
        let value = random_alnum(&mut rng, spec.value_size);
        ks.insert(0, format!("key:{i:07}").into_bytes(), Entry::new(Value::String(value)));
    }

    // A few of each other type: one in four large enough that Redis would not keep it in
    // a listpack, one in ten with a TTL.
    let typed = (spec.keys / 10_000).clamp(4, 64);
    for i in 0..typed {
        let n = if i % 4 == 0 { 1000 } else { 5 + i % 20 };
        let ttl = |e: Entry| if i % 10 == 3 { Entry { expire_at_ms: Some(FAR_FUTURE_MS), ..e } } else { e };

        let list: VecDeque<Bytes> = (0..n).map(|j| format!("item:{j}").into_bytes()).collect();
        ks.insert(0, format!("list:{i}").into_bytes(), ttl(Entry::new(Value::List(list))));

        let set: HashSet<Bytes> = if i % 2 == 0 {
            (0..n).map(|j| (j as i64 * 7 - 300).to_string().into_bytes()).collect()
        } else {
            (0..n).map(|_| random_alnum(&mut rng, 12)).collect()
        };
        ks.insert(0, format!("set:{i}").into_bytes(), ttl(Entry::new(Value::Set(set))));

        let hash: HashMap<Bytes, Bytes> =
            (0..n).map(|j| (format!("field:{j}").into_bytes(), random_alnum(&mut rng, 24))).collect();
        ks.insert(1, format!("hash:{i}").into_bytes(), ttl(Entry::new(Value::Hash(hash))));

        let mut zset: HashMap<Bytes, f64> =
            (0..n).map(|j| (format!("m{j}").into_bytes(), j as f64 * 1.5 - 10.0)).collect();
        if i == 0 {
            zset.insert(b"minus-inf".to_vec(), f64::NEG_INFINITY);
            zset.insert(b"plus-inf".to_vec(), f64::INFINITY);
        }
        ks.insert(2, format!("zset:{i}").into_bytes(), ttl(Entry::new(Value::ZSet(zset))));
    }

    // Integer strings at the encoding edges, and binary keys, in db 3.
    for v in [0i64, -1, 127, -128, 128, 32767, -32768, 32768, i32::MAX as i64, i32::MIN as i64, i64::MAX, i64::MIN] {
        ks.insert(3, format!("int:{v}").into_bytes(), Entry::new(Value::String(v.to_string().into_bytes())));
    }
    for b in 0..=255u8 {
        ks.insert(3, vec![b'b', 0, b, 0xff], Entry::new(Value::String(vec![b; 3])));
    }
    ks
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The same seed gives the same keyspace; another seed a different one.
    #[test]
    fn deterministic() {
        let spec = DatasetSpec { keys: 500, value_size: 16, seed: 7 };
        assert_eq!(generate(&spec), generate(&spec));
        assert_ne!(generate(&spec), generate(&DatasetSpec { seed: 8, ..spec }));
    }

    /// Every value type is present, and the string keys are the requested size.
    #[test]
    fn has_every_type() {
        let ks = generate(&DatasetSpec { keys: 100, value_size: 10, seed: 1 });
        let types: HashSet<&str> = ks.iter().map(|(_, _, e)| e.value.type_name()).collect();
        assert_eq!(types, HashSet::from(["string", "list", "set", "hash", "zset"]));
        let Value::String(v) = &ks.get(0, b"key:0000042").unwrap().value else { panic!("not a string") };
        assert_eq!(v.len(), 10);
    }
}
