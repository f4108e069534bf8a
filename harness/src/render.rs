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
use snaplab_core::{Bytes, Command, Value, escape};

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

/// A value shown well enough to tell two apart: a string as [`summary`] shows it, a
/// collection as its size and first few elements in a stable order (`3 elements: a, b,
/// c`, `2 fields: f1=v1, f2=v2`, `1 member: m (score 1.5)`), each as [`arg`] prints it.
pub fn preview(v: &Value) -> String {
    const SHOWN: usize = 4;
    let list = |n: usize, unit: &str, items: Vec<String>| {
        let more = if n > SHOWN { ", ..." } else { "" };
        let unit = if n == 1 { unit.trim_end_matches('s') } else { unit };
        if n == 0 { format!("0 {unit}") } else { format!("{n} {unit}: {}{more}", items.join(", ")) }
    };
    match v {
        Value::String(_) | Value::Opaque(_) => summary(v),
        Value::List(l) => list(l.len(), "elements", l.iter().take(SHOWN).map(|e| arg(e)).collect()),
        Value::Set(s) => {
            let mut m: Vec<&Bytes> = s.iter().collect();
            m.sort();
            list(s.len(), "members", m.into_iter().take(SHOWN).map(|e| arg(e)).collect())
        }
        Value::Hash(h) => {
            let mut p: Vec<_> = h.iter().collect();
            p.sort();
            list(h.len(), "fields", p.into_iter().take(SHOWN).map(|(f, v)| format!("{}={}", arg(f), arg(v))).collect())
        }
        Value::ZSet(z) => {
            let mut p: Vec<_> = z.iter().collect();
            p.sort_by(|a, b| a.1.total_cmp(b.1).then_with(|| a.0.cmp(b.0)));
            list(
                z.len(),
                "members",
                p.into_iter().take(SHOWN).map(|(m, s)| format!("{} (score {s})", arg(m))).collect(),
            )
        }
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

/// One argument as a Redis client would type it: bare when it is printable text without
/// spaces or quotes, else in double quotes with non-printable bytes escaped (`"x y"`,
/// `"\\xff"`), and `""` for the empty string.
pub fn arg(b: &[u8]) -> String {
    let bare = !b.is_empty() && b.iter().all(|&c| c.is_ascii_graphic() && c != b'"' && c != b'\\' && c != b'\'');
    if bare { escape(b) } else { format!("\"{}\"", escape(b)) }
}

/// A write as a Redis command line, with its database first: `[db1] SET k1 "x y" PXAT
/// 1700000000000`, `[db0] HSET h f1 v1 f2 v2`, `FLUSHALL`. Keys and values print as text.
pub fn command_line(cmd: &Command) -> String {
    let args = |items: &[Bytes]| items.iter().map(|b| arg(b)).collect::<Vec<_>>().join(" ");
    let body = match cmd {
        Command::Set { key, value, expire_at_ms, .. } => {
            let px = expire_at_ms.map(|t| format!(" PXAT {t}")).unwrap_or_default();
            format!("SET {} {}{px}", arg(key), arg(value))
        }
        Command::Del { key, .. } | Command::Persist { key, .. } | Command::LPop { key, .. } => {
            format!("{} {}", cmd.name(), arg(key))
        }
        Command::PExpireAt { key, at_ms, .. } => format!("PEXPIREAT {} {at_ms}", arg(key)),
        Command::LPush { key, elements, .. } | Command::RPush { key, elements, .. } => {
            format!("{} {} {}", cmd.name(), arg(key), args(elements))
        }
        Command::SAdd { key, members, .. }
        | Command::SRem { key, members, .. }
        | Command::ZRem { key, members, .. } => {
            format!("{} {} {}", cmd.name(), arg(key), args(members))
        }
        Command::HDel { key, fields, .. } => format!("HDEL {} {}", arg(key), args(fields)),
        Command::HSet { key, pairs, .. } => {
            let p: Vec<String> = pairs.iter().map(|(f, v)| format!("{} {}", arg(f), arg(v))).collect();
            format!("HSET {} {}", arg(key), p.join(" "))
        }
        Command::ZAdd { key, pairs, .. } => {
            let p: Vec<String> = pairs.iter().map(|(s, m)| format!("{s} {}", arg(m))).collect();
            format!("ZADD {} {}", arg(key), p.join(" "))
        }
        Command::FlushDb { .. } | Command::FlushAll => cmd.name().to_string(),
    };
    match cmd.db() {
        Some(db) => format!("[db{db}] {body}"),
        None => body,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Commands print as a client would type them: text as text, anything else quoted.
    #[test]
    fn command_lines() {
        let set = Command::Set { db: 1, key: b"k1".to_vec(), value: b"x y".to_vec(), expire_at_ms: Some(7) };
        assert_eq!(command_line(&set), "[db1] SET k1 \"x y\" PXAT 7");
        let push = Command::RPush { db: 0, key: b"l".to_vec(), elements: vec![vec![0xff], Vec::new()] };
        assert_eq!(command_line(&push), "[db0] RPUSH l \"\\xff\" \"\"");
        assert_eq!(command_line(&Command::FlushAll), "FLUSHALL");
    }

    /// Non-UTF-8 bytes become base64 objects; UTF-8 stays a string.
    #[test]
    fn binary_safe() {
        assert_eq!(bytes_json(b"hello"), json!("hello"));
        assert_eq!(bytes_json(&[0xff, 0x00]), json!({"base64": "/wA="}));
    }
}
