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
        ks.insert(0, format!("list:{i}").into_bytes(), ttl(Entry::new(Value::List(Box::new(list)))));

        let set: HashSet<Bytes> = if i % 2 == 0 {
            (0..n).map(|j| (j as i64 * 7 - 300).to_string().into_bytes()).collect()
        } else {
            (0..n).map(|_| random_alnum(&mut rng, 12)).collect()
        };
        ks.insert(0, format!("set:{i}").into_bytes(), ttl(Entry::new(Value::Set(Box::new(set)))));

        let hash: HashMap<Bytes, Bytes> =
            (0..n).map(|j| (format!("field:{j}").into_bytes(), random_alnum(&mut rng, 24))).collect();
        ks.insert(1, format!("hash:{i}").into_bytes(), ttl(Entry::new(Value::Hash(Box::new(hash)))));

        let mut zset: HashMap<Bytes, f64> =
            (0..n).map(|j| (format!("m{j}").into_bytes(), j as f64 * 1.5 - 10.0)).collect();
        if i == 0 {
            zset.insert(b"minus-inf".to_vec(), f64::NEG_INFINITY);
            zset.insert(b"plus-inf".to_vec(), f64::INFINITY);
        }
        ks.insert(2, format!("zset:{i}").into_bytes(), ttl(Entry::new(Value::ZSet(Box::new(zset)))));
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

/// The large-value knob of the built-in dataset (`--large-hashes COUNT:SIZE`): `count`
/// hashes `snaplab:hash:0` .. in db 0, each holding about `bytes` bytes of field values.
///
/// These are the hashes the comparison's `collection` writes go to (an `HSET` into one of
/// 1,024 of them, chosen by key), so `count / 1024` of those writes land on a large value.
/// That is where the per-key designs pay: copying a key before its first write during a
/// save (per-key copy-on-update, the overlay's copy-up, copy-on-write's path copy) costs
/// the size of the value, where a page or a bucket costs the same for any value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LargeHashes {
    /// Number of hashes, 1 to 1,024 (the hashes the collection writes spread over).
    pub count: usize,
    /// Bytes of field values per hash, at least 1 (fields of [`LARGE_HASH_FIELD_BYTES`],
    /// the last one shorter).
    pub bytes: usize,
}

/// Bytes per field value in a [`LargeHashes`] hash: above Redis's default
/// `hash-max-listpack-value` (64), so Redis keeps these hashes as hash tables, as it
/// would real large hashes.
pub const LARGE_HASH_FIELD_BYTES: usize = 1024;

/// Parse a size in bytes: a whole number with an optional unit `B`, `KiB`, `MiB` or `GiB`
/// (powers of 1,024), as `64KiB` or `1MiB`.
pub fn parse_size(s: &str) -> Result<usize, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (digits, unit) = s.split_at(split);
    let n: usize = digits.parse().map_err(|_| format!("{s:?}: expected a size such as 4096, 64KiB or 1MiB"))?;
    let scale: usize = match unit.trim() {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        other => return Err(format!("{s:?}: unknown unit {other:?} (use B, KiB, MiB or GiB)")),
    };
    n.checked_mul(scale).ok_or_else(|| format!("{s:?}: too large"))
}

impl std::str::FromStr for LargeHashes {
    type Err = String;
    /// `COUNT:SIZE`, as `64:1MiB`.
    fn from_str(s: &str) -> Result<Self, String> {
        let (count, size) = s.split_once(':').ok_or_else(|| format!("{s:?}: expected COUNT:SIZE, as 64:1MiB"))?;
        let count: usize = count.trim().parse().map_err(|_| format!("{s:?}: the count must be a whole number"))?;
        if !(1..=crate::load::COLLECTIONS).contains(&count) {
            return Err(format!(
                "{s:?}: the count must be 1 to {} (the hashes the collection writes spread over)",
                crate::load::COLLECTIONS
            ));
        }
        let bytes = parse_size(size)?;
        if bytes == 0 {
            return Err(format!("{s:?}: the size must be at least 1 byte"));
        }
        Ok(LargeHashes { count, bytes })
    }
}

impl std::fmt::Display for LargeHashes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.count, self.bytes)
    }
}

/// Add `large`'s hashes to `ks` (replacing any keys of those names), with values drawn
/// from `seed`: the same arguments give the same hashes.
pub fn add_large_hashes(ks: &mut Keyspace, large: &LargeHashes, seed: u64) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x4c41_5247_4548_4153); // "LARGEHAS"
    for i in 0..large.count {
        let mut hash: HashMap<Bytes, Bytes> = HashMap::new();
        let mut left = large.bytes;
        let mut j = 0;
        while left > 0 {
            let n = left.min(LARGE_HASH_FIELD_BYTES);
            hash.insert(format!("field:{j}").into_bytes(), random_alnum(&mut rng, n));
            left -= n;
            j += 1;
        }
        ks.insert(0, format!("snaplab:hash:{i}").into_bytes(), Entry::new(Value::Hash(Box::new(hash))));
    }
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

    /// The knob parses sizes with units and refuses what it cannot honour.
    #[test]
    fn large_hashes_parse() {
        assert_eq!("64:1MiB".parse(), Ok(LargeHashes { count: 64, bytes: 1 << 20 }));
        assert_eq!("1:4096".parse(), Ok(LargeHashes { count: 1, bytes: 4096 }));
        assert_eq!("2:64KiB".parse(), Ok(LargeHashes { count: 2, bytes: 64 << 10 }));
        for bad in ["64", "0:1MiB", "1025:1KiB", "4:0", "4:1MB", "x:1KiB", "4:"] {
            assert!(bad.parse::<LargeHashes>().is_err(), "{bad} was accepted");
        }
    }

    /// The hashes are the ones the collection writes target, of the size asked for.
    #[test]
    fn large_hashes_are_the_collection_targets() {
        let mut ks = generate(&DatasetSpec { keys: 10, value_size: 8, seed: 1 });
        let before = ks.len();
        add_large_hashes(&mut ks, &LargeHashes { count: 3, bytes: 2500 }, 1);
        assert_eq!(ks.len(), before + 3);
        for i in 0..3 {
            let Value::Hash(h) = &ks.get(0, format!("snaplab:hash:{i}").as_bytes()).unwrap().value else {
                panic!("snaplab:hash:{i} is not a hash")
            };
            assert_eq!(h.len(), 3, "1024 + 1024 + 452 bytes");
            assert_eq!(h.values().map(Vec::len).sum::<usize>(), 2500);
        }
        assert!(ks.get(0, b"snaplab:hash:3").is_none());
        // The collection op writes to exactly these names.
        let rec = crate::load::WriteRec {
            stamp: snaplab_core::WriteStamp { shard: 0, seq: 1 },
            writer: 0,
            op: crate::load::Op::Collection,
            n: 0,
            key: 2,
            intended_ns: 0,
            issued_ns: 0,
            done_ns: 0,
        };
        // Overwrites and deletes never pick them (a SET would make the next HSET a type error).
        let keys = crate::load::KeyList::new(&ks);
        assert_eq!(keys.len(), before);
        assert!((0..keys.len()).all(|i| !keys.get(i).1.starts_with(b"snaplab:hash:")));
        match rec.command(&keys, 8) {
            snaplab_core::Command::HSet { db: 0, key, .. } => assert_eq!(key, b"snaplab:hash:2"),
            other => panic!("unexpected {other:?}"),
        }
    }
}
