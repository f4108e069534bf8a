//! How `snaplab inspect` shows keys: one line of text per key, or one JSON object per line
//! with the full value.
//!
//! JSON is binary-safe: a Redis string is a JSON string when it is valid UTF-8, and
//! otherwise an object `{"base64": "..."}` holding its bytes in standard base64. The two
//! cannot be confused, because a valid UTF-8 string is never written as an object.
//! Scores that JSON numbers cannot hold are the strings `"inf"` and `"-inf"`.

use base64::Engine;
use serde_json::{Value as Json, json};
use snaplab_core::rdb::KeyRecord;
use snaplab_core::{Value, escape};

/// A Redis string as JSON (see the module documentation).
pub fn bytes_json(b: &[u8]) -> Json {
    match std::str::from_utf8(b) {
        Ok(s) => Json::String(s.to_string()),
        Err(_) => json!({ "base64": base64::engine::general_purpose::STANDARD.encode(b) }),
    }
}

fn score_json(s: f64) -> Json {
    if s.is_finite() {
        json!(s)
    } else if s > 0.0 {
        json!("inf")
    } else {
        json!("-inf")
    }
}

/// The full value as JSON: a string, an array (list, set), an object array of pairs
/// (hash: `[{"field":..,"value":..}]`, zset: `[{"member":..,"score":..}]`), or for an
/// opaque value `{"rdb_type": n, "payload": {"base64": ...}}`. Sets, hashes and sorted
/// sets are sorted so output is stable.
pub fn value_json(v: &Value) -> Json {
    match v {
        Value::String(s) => bytes_json(s),
        Value::List(l) => Json::Array(l.iter().map(|e| bytes_json(e)).collect()),
        Value::Set(s) => {
            let mut m: Vec<&Vec<u8>> = s.iter().collect();
            m.sort();
            Json::Array(m.into_iter().map(|e| bytes_json(e)).collect())
        }
        Value::Hash(h) => {
            let mut p: Vec<_> = h.iter().collect();
            p.sort();
            Json::Array(p.into_iter().map(|(f, v)| json!({"field": bytes_json(f), "value": bytes_json(v)})).collect())
        }
        Value::ZSet(z) => {
            let mut p: Vec<_> = z.iter().collect();
            p.sort_by(|a, b| a.1.total_cmp(b.1).then_with(|| a.0.cmp(b.0)));
            Json::Array(p.into_iter().map(|(m, s)| json!({"member": bytes_json(m), "score": score_json(*s)})).collect())
        }
        Value::Opaque(o) => json!({
            "rdb_type": o.rdb_type,
            "payload": { "base64": base64::engine::general_purpose::STANDARD.encode(&o.payload) },
        }),
    }
}

/// One key as a JSON object: db, key, type, encoding, expire_at_ms (null if none), value.
pub fn record_json(r: &KeyRecord) -> Json {
    json!({
        "db": r.db,
        "key": bytes_json(&r.key),
        "type": r.entry.value.type_name(),
        "encoding": r.encoding(),
        "expire_at_ms": r.entry.expire_at_ms,
        "value": value_json(&r.entry.value),
    })
}

/// A short, printable summary of a value: a string's first 40 bytes (escaped), or the
/// element count.
pub fn summary(v: &Value) -> String {
    match v {
        Value::String(s) => {
            let shown = escape(&s[..s.len().min(40)]);
            if s.len() > 40 { format!("\"{shown}\"... ({} bytes)", s.len()) } else { format!("\"{shown}\"") }
        }
        Value::List(l) => format!("{} elements", l.len()),
        Value::Set(s) => format!("{} members", s.len()),
        Value::Hash(h) => format!("{} fields", h.len()),
        Value::ZSet(z) => format!("{} members", z.len()),
        Value::Opaque(o) => format!("carried verbatim ({} bytes)", o.payload.len()),
    }
}

/// One key as a line of text: `db key type encoding expiry summary`.
pub fn record_line(r: &KeyRecord) -> String {
    let expiry = r.entry.expire_at_ms.map_or_else(|| "-".to_string(), |ms| format!("px@{ms}"));
    format!(
        "db{:<2} {:<30} {:<6} {:<24} {:<18} {}",
        r.db,
        escape(&r.key),
        r.entry.value.type_name(),
        r.encoding(),
        expiry,
        summary(&r.entry.value)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Non-UTF-8 bytes become base64 objects; UTF-8 stays a string.
    #[test]
    fn binary_safe() {
        assert_eq!(bytes_json(b"hello"), json!("hello"));
        assert_eq!(bytes_json(&[0xff, 0x00]), json!({"base64": "/wA="}));
    }
}
