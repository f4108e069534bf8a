//! `DEBUG DIGEST`: Redis's digest of a whole dataset (src/debug.c, `computeDatasetDigest`,
//! `xorObjectDigest`, `mixDigest`, `xorDigest`), so that a test can compare what a strategy
//! holds with what redis-server holds, without saving either.
//!
//! Two ways of adding a string to a 20-byte digest, both with SHA-1: *xor* (`xorDigest`)
//! XORs the string's SHA-1 into the digest, so the order of the strings does not matter
//! (set members, hash fields, keys); *mix* (`mixDigest`) XORs it in and then replaces the
//! digest by the SHA-1 of itself, so the order does matter (list elements, and a key before
//! its value). Redis 7.0 adds only a marker for an expiry, not its time.

use sha1::{Digest, Sha1};
use snaplab_core::{DB_COUNT, Keyspace, Value, escape};
use thiserror::Error;

/// A value `DEBUG DIGEST` cannot digest here.
#[derive(Debug, Error)]
#[error(
    "DEBUG DIGEST cannot digest key {key} in db {db}: a {kind} carried verbatim from the dump (RDB type {rdb_type})"
)]
pub struct DigestError {
    /// The database.
    pub db: usize,
    /// The key, escaped.
    pub key: String,
    /// Its type name.
    pub kind: &'static str,
    /// Its RDB type byte.
    pub rdb_type: u8,
}

/// Redis's object type numbers (src/server.h `OBJ_STRING` .. `OBJ_HASH`), hashed before
/// each value.
fn obj_type(v: &Value) -> u32 {
    match v {
        Value::String(_) => 0,
        Value::List(_) => 1,
        Value::Set(_) => 2,
        Value::ZSet(_) => 3,
        Value::Hash(_) => 4,
        Value::Opaque(_) => 6,
    }
}

/// `xorDigest`: digest ^= SHA1(data).
fn xor(digest: &mut [u8; 20], data: &[u8]) {
    let h = Sha1::digest(data);
    for (d, x) in digest.iter_mut().zip(h.iter()) {
        *d ^= x;
    }
}

/// `mixDigest`: digest ^= SHA1(data); digest = SHA1(digest).
fn mix(digest: &mut [u8; 20], data: &[u8]) {
    xor(digest, data);
    let h = Sha1::digest(&digest[..]);
    digest.copy_from_slice(&h);
}

/// A score as C's `printf("%.17g")` writes it, which Redis 7.0's digest hashes (17
/// significant digits, trailing zeros dropped, exponent form below 1e-4 and from 1e17).
pub fn format_g17(x: f64) -> String {
    if x.is_infinite() {
        return if x > 0.0 { "inf".into() } else { "-inf".into() };
    }
    if x == 0.0 {
        return if x.is_sign_negative() { "-0".into() } else { "0".into() };
    }
    // `{:.16e}`: one digit, a point, 16 digits, `e`, the exponent: 17 significant digits
    // rounded as printf rounds them (both round the exact binary value).
    let e_form = format!("{x:.16e}");
    let (mantissa, exp) = e_form.split_once('e').expect("exponent form has an e");
    let exp: i32 = exp.parse().expect("exponent is a number");
    let trim = |s: &str| -> String {
        if s.contains('.') { s.trim_end_matches('0').trim_end_matches('.').to_string() } else { s.to_string() }
    };
    if !(-4..17).contains(&exp) {
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{}e{sign}{:02}", trim(mantissa), exp.abs())
    } else {
        let decimals = (16 - exp).max(0) as usize;
        trim(&format!("{x:.decimals$}"))
    }
}

/// The digest of one value (`xorObjectDigest`), mixed into the key's `digest`.
fn value_digest(digest: &mut [u8; 20], value: &Value, expires: bool) {
    mix(digest, &obj_type(value).to_be_bytes());
    match value {
        Value::String(s) => mix(digest, s),
        Value::List(l) => l.iter().for_each(|e| mix(digest, e)),
        Value::Set(s) => s.iter().for_each(|m| xor(digest, m)),
        Value::ZSet(z) => {
            for (member, score) in z.iter() {
                let mut ele = [0u8; 20];
                mix(&mut ele, member);
                mix(&mut ele, format_g17(*score).as_bytes());
                xor(digest, &ele);
            }
        }
        Value::Hash(h) => {
            for (field, v) in h.iter() {
                let mut ele = [0u8; 20];
                mix(&mut ele, field);
                mix(&mut ele, v);
                xor(digest, &ele);
            }
        }
        Value::Opaque(_) => unreachable!("refused by dataset_digest"),
    }
    if expires {
        xor(digest, b"!!expire!!");
    }
}

/// The dataset digest (`computeDatasetDigest`) as 40 lowercase hex digits; all zeros for an
/// empty keyspace. Keys already expired but still held count, as in Redis (which digests
/// what its dictionaries hold). Function libraries are not part of it, as in Redis.
///
/// # Errors
/// [`DigestError`] for a value carried verbatim (a stream, a hash with field expiries),
/// which this model does not decode.
pub fn dataset_digest(ks: &Keyspace) -> Result<String, DigestError> {
    let mut fin = [0u8; 20];
    for db in 0..DB_COUNT {
        let keys = ks.db(db);
        if keys.is_empty() {
            continue;
        }
        mix(&mut fin, &(db as u32).to_be_bytes());
        for (key, entry) in keys {
            if let Value::Opaque(o) = &entry.value {
                return Err(DigestError { db, key: escape(key), kind: entry.value.type_name(), rdb_type: o.rdb_type });
            }
            let mut d = [0u8; 20];
            mix(&mut d, key);
            value_digest(&mut d, &entry.value, entry.expire_at_ms.is_some());
            xor(&mut fin, &d);
        }
    }
    Ok(fin.iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The scores `%.17g` prints, as glibc prints them.
    #[test]
    fn formats_like_printf_g17() {
        assert_eq!(format_g17(1.0), "1");
        assert_eq!(format_g17(1.5), "1.5");
        assert_eq!(format_g17(0.1), "0.10000000000000001");
        assert_eq!(format_g17(-2.25), "-2.25");
        assert_eq!(format_g17(5_000_000_000.0), "5000000000");
        assert_eq!(format_g17(1e17), "1e+17");
        assert_eq!(format_g17(1.5e-5), "1.5e-05");
        assert_eq!(format_g17(0.0001), "0.0001");
        assert_eq!(format_g17(123456789.0), "123456789");
        assert_eq!(format_g17(f64::INFINITY), "inf");
    }

    /// An empty keyspace digests to zeros, as `DEBUG DIGEST` on an empty server.
    #[test]
    fn empty_is_zeros() {
        assert_eq!(dataset_digest(&Keyspace::new()).unwrap(), "0".repeat(40));
    }
}
