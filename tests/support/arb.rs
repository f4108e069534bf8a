//! Proptest generators of keyspaces, shared by the round-trip tests of every format
//! (`rdb_roundtrip`, `formats`): binary-safe strings weighted towards the shapes encoders
//! treat specially, scores with every special double, and now and then a large collection.

use proptest::collection::{hash_map, hash_set, vec};
use proptest::prelude::*;
use proptest::sample::select;
use proptest::test_runner::Config as ProptestConfig;
use snaplab_core::{Bytes, DB_COUNT, Entry, Keyspace, Value};

/// Proptest settings: `default_cases` unless `PROPTEST_CASES` says otherwise.
pub fn config(default_cases: u32) -> ProptestConfig {
    let mut c = ProptestConfig::default();
    if std::env::var_os("PROPTEST_CASES").is_none() {
        c.cases = default_cases;
    }
    c
}

/// Decimal strings at and just past the edges of every integer encoding (int8, int16,
/// int32 in RDB strings; i64 is the limit of Redis's `string2ll`).
pub fn integer_edges() -> Vec<Bytes> {
    let edges = [0i128, 1, -1, 10, i8::MIN.into(), i8::MAX.into(), i16::MIN.into(), i16::MAX.into()];
    let edges = edges.into_iter().chain([i32::MIN.into(), i32::MAX.into(), i64::MIN.into(), i64::MAX.into()]);
    edges.flat_map(|n| [n - 1, n, n + 1]).map(|n| n.to_string().into_bytes()).collect()
}

/// Strings that look like integers but are not canonical decimals, so must stay raw.
pub fn integer_lookalikes() -> Vec<Bytes> {
    [
        "0123",
        "-0",
        "+1",
        " 1",
        "1 ",
        "00",
        "-",
        "--1",
        "-01",
        "1e3",
        "0x10",
        "1.0",
        "\u{0661}",
        "12345678901",
        "99999999999999999999999",
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect()
}

/// Any binary-safe string, weighted towards the shapes the encoder treats specially.
pub fn bytes() -> BoxedStrategy<Bytes> {
    prop_oneof![
        // short binary, including empty strings and invalid UTF-8
        4 => vec(any::<u8>(), 0..12),
        1 => Just(Vec::new()),
        2 => select(integer_edges()),
        1 => any::<i64>().prop_map(|n| n.to_string().into_bytes()),
        1 => select(integer_lookalikes()),
        // around the 20-byte threshold below which Redis never compresses
        1 => (any::<u8>(), 18usize..24).prop_map(|(b, n)| vec![b; n]),
        // long and repetitive: LZF-compressible
        1 => (vec(any::<u8>(), 1..5), 21usize..400).prop_map(|(pat, n)| pat.iter().cycle().take(n).copied().collect()),
        // long random bytes: incompressible
        1 => vec(any::<u8>(), 21..200),
    ]
    .boxed()
}

/// Short elements for the large collections: small binary strings and integers.
pub fn short() -> BoxedStrategy<Bytes> {
    prop_oneof![
        vec(any::<u8>(), 0..6),
        any::<i16>().prop_map(|n| n.to_string().into_bytes()),
        any::<i64>().prop_map(|n| n.to_string().into_bytes()),
    ]
    .boxed()
}

/// A sorted-set score: any non-NaN double, with the special values made likely.
pub fn score() -> BoxedStrategy<f64> {
    use proptest::num::f64 as f;
    prop_oneof![
        4 => f::POSITIVE | f::NEGATIVE | f::NORMAL | f::SUBNORMAL | f::ZERO | f::INFINITE,
        2 => select(vec![
            f64::INFINITY,
            f64::NEG_INFINITY,
            0.0,
            -0.0,
            f64::MIN_POSITIVE,
            f64::from_bits(1),
            -f64::from_bits(1),
            f64::MAX,
            f64::MIN,
            f64::EPSILON,
        ]),
        1 => any::<i32>().prop_map(f64::from),
    ]
    .prop_filter("sorted-set scores are never NaN", |s| !s.is_nan())
    .boxed()
}

/// A non-empty value of any of the five types; now and then a collection of hundreds.
pub fn value() -> BoxedStrategy<Value> {
    prop_oneof![
        4 => bytes().prop_map(Value::String),
        2 => vec(bytes(), 1..8).prop_map(|l| Value::List(Box::new(l.into()))),
        2 => hash_set(bytes(), 1..8).prop_map(|s| Value::Set(Box::new(s))),
        2 => hash_map(bytes(), bytes(), 1..8).prop_map(|h| Value::Hash(Box::new(h))),
        2 => hash_map(bytes(), score(), 1..8).prop_map(|z| Value::ZSet(Box::new(z))),
        1 => prop_oneof![
            vec(short(), 100..400).prop_map(|l| Value::List(Box::new(l.into()))),
            hash_set(short(), 100..300).prop_map(|s| Value::Set(Box::new(s))),
            hash_map(short(), short(), 100..300).prop_map(|h| Value::Hash(Box::new(h))),
            hash_map(short(), score(), 100..300).prop_map(|z| Value::ZSet(Box::new(z))),
        ],
    ]
    .boxed()
}

/// No expiry, or any i64 in unix ms (negative and long past included).
pub fn expiry() -> BoxedStrategy<Option<i64>> {
    prop_oneof![
        3 => Just(None),
        1 => any::<i64>().prop_map(Some),
        1 => select(vec![i64::MIN, -1, 0, 1, 1_700_000_000_000, i64::MAX]).prop_map(Some),
    ]
    .boxed()
}

/// A keyspace of up to a dozen keys spread over the 16 dbs, plus up to 3 function libraries.
pub fn keyspace() -> impl Strategy<Value = Keyspace> {
    (vec((0..DB_COUNT, bytes(), value(), expiry()), 0..12), vec(bytes(), 0..3)).prop_map(|(entries, functions)| {
        let mut ks = Keyspace::new();
        for (db, key, value, expire_at_ms) in entries {
            ks.insert(db, key, Entry { value, expire_at_ms });
        }
        for f in functions {
            ks.add_function(f);
        }
        ks
    })
}
