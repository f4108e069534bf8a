//! How `snaplab inspect` shows keys: one line of text per key, or one JSON object per line
//! with the full value, printed as the dump is read ([`InspectPrinter`]).
//!
//! JSON is binary-safe: a Redis string is a JSON string when it is valid UTF-8, and
//! otherwise an object `{"base64": "..."}` holding its bytes in standard base64. The two
//! cannot be confused, because a valid UTF-8 string is never written as an object.
//! Scores that JSON numbers cannot hold are the strings `"inf"` and `"-inf"`.

use std::io::{self, Write};

use base64::Engine;
use serde_json::{Value as Json, json};
use snaplab_core::rdb::{CheckEvent, Element, KeyInfo};
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

/// A short, printable summary of a value: a string's first 40 bytes (escaped), or the
/// element count.
pub fn summary(v: &Value) -> String {
    match v {
        Value::String(s) => string_preview(s, s.len()),
        Value::List(l) => format!("{} elements", l.len()),
        Value::Set(s) => format!("{} members", s.len()),
        Value::Hash(h) => format!("{} fields", h.len()),
        Value::ZSet(z) => format!("{} members", z.len()),
        Value::Opaque(o) => format!("carried verbatim ({} bytes)", o.payload.len()),
    }
}

/// How many bytes of a string `inspect` shows.
const PREVIEW: usize = 40;

/// Width of the value column of `inspect`'s text lines: a preview of [`PREVIEW`] plain
/// bytes with its length fits; one with escaped bytes may run over, pushing only the key.
const SUMMARY_WIDTH: usize = 64;

/// Unix time in ms as a UTC date with milliseconds, `2026-12-03T07:07:18.123Z` (RFC 3339);
/// a value no date can hold is printed as the raw `px@<ms>`.
pub fn utc_ms(ms: i64) -> String {
    match jiff::Timestamp::from_millisecond(ms) {
        Ok(t) => t.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
        Err(_) => format!("px@{ms}"),
    }
}

/// `"first 40 bytes"... (N bytes)` for a string of `len` bytes starting with `head`.
fn string_preview(head: &[u8], len: usize) -> String {
    let shown = escape(&head[..head.len().min(PREVIEW)]);
    if len > PREVIEW { format!("\"{shown}\"... ({len} bytes)") } else { format!("\"{shown}\"") }
}

/// Prints `snaplab inspect` output while [`rdb::check_each`] streams a dump: one line per
/// key, as text (`db type encoding expiry summary key`, the expiry a UTC date with
/// milliseconds, [`utc_ms`]) or as a JSON object holding the whole
/// value, written element by element so that no value is ever held in memory.
///
/// A JSON line has the fields `db`, `key`, `type`, `expire_at_ms` (null if none), `value` and
/// `encoding`, in that order (the encoding of a string is only known once it is read). The
/// value is a string, an array (list, set: in file order), an array of
/// `{"field","value"}` (hash) or `{"member","score"}` (sorted set) in file order, or, for a
/// value carried verbatim, `{"rdb_type": n, "bytes": size}` (its payload is not printed:
/// `snaplab convert --to json` writes it). The first write error is kept and stops output.
pub struct InspectPrinter<W: Write> {
    out: W,
    json: bool,
    /// A JSON line has been started for the current key (its head is written).
    open: bool,
    /// The current JSON value is an array.
    array: bool,
    /// Text mode: the current string's first bytes and its length.
    preview: Option<(Vec<u8>, usize)>,
    /// The first write error, after which nothing more is written.
    pub error: Option<io::Error>,
}

impl<W: Write> InspectPrinter<W> {
    /// A printer writing text lines, or JSON lines when `json`, to `out`.
    pub fn new(out: W, json: bool) -> Self {
        InspectPrinter { out, json, open: false, array: false, preview: None, error: None }
    }

    /// Print what `event` adds.
    pub fn event(&mut self, event: CheckEvent<'_>) {
        if self.error.is_some() {
            return;
        }
        let r = match event {
            CheckEvent::Element(info, e) if self.json => self.json_element(info, e),
            CheckEvent::Element(_, Element::String(s)) => {
                self.preview = Some((s[..s.len().min(PREVIEW)].to_vec(), s.len()));
                Ok(())
            }
            CheckEvent::Element(..) => Ok(()),
            CheckEvent::Key(info) if self.json => self.json_end(info),
            CheckEvent::Key(info) => self.text_line(info),
        };
        if let Err(e) = r {
            self.error = Some(e);
        }
    }

    /// End a line left unfinished by an error in the middle of a value, so the error that
    /// follows starts on a line of its own.
    pub fn abandon(&mut self) {
        if self.open && self.error.is_none() {
            let _ = writeln!(self.out);
        }
        self.open = false;
    }

    /// Flush the output.
    ///
    /// # Errors
    /// The writer's error.
    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }

    fn text_line(&mut self, info: &KeyInfo) -> io::Result<()> {
        let summary = match (info.opaque_bytes, self.preview.take()) {
            (Some(bytes), _) => format!("carried verbatim ({bytes} bytes)"),
            (None, Some((head, len))) => string_preview(&head, len),
            (None, None) => {
                let unit = match info.value_type {
                    "list" => "elements",
                    "hash" => "fields",
                    _ => "members",
                };
                format!("{} {unit}", info.elements)
            }
        };
        let expiry = info.expire_at_ms.map_or_else(|| "-".to_string(), utc_ms);
        // Fixed-width columns first and the key last, as `ls -l` puts the name last: a long
        // key cannot push the other columns out of line.
        writeln!(
            self.out,
            "db{:<2} {:<6} {:<24} {:<24} {:<SUMMARY_WIDTH$} {}",
            info.db,
            info.value_type,
            info.encoding(),
            expiry,
            summary,
            escape(&info.key)
        )
    }

    fn json_head(&mut self, info: &KeyInfo) -> io::Result<()> {
        write!(self.out, "{{\"db\":{},\"key\":{},\"type\":", info.db, bytes_json(&info.key))?;
        write!(self.out, "{},\"expire_at_ms\":{},\"value\":", json!(info.value_type), json!(info.expire_at_ms))?;
        self.open = true;
        Ok(())
    }

    fn json_element(&mut self, info: &KeyInfo, e: Element<'_>) -> io::Result<()> {
        if !self.open {
            self.json_head(info)?;
            self.array = !matches!(e, Element::String(_));
            if self.array {
                write!(self.out, "[")?;
            }
        } else if self.array {
            write!(self.out, ",")?;
        }
        let v = match e {
            Element::String(b) | Element::ListItem(b) | Element::SetMember(b) => bytes_json(b),
            Element::HashField(f, v) => json!({"field": bytes_json(f), "value": bytes_json(v)}),
            Element::ZSetMember(m, s) => json!({"member": bytes_json(m), "score": score_json(s)}),
        };
        write!(self.out, "{v}")
    }

    fn json_end(&mut self, info: &KeyInfo) -> io::Result<()> {
        if !self.open {
            // Only a value carried verbatim has no elements.
            self.json_head(info)?;
            write!(self.out, "{}", json!({"rdb_type": info.rdb_type, "bytes": info.opaque_bytes.unwrap_or(0)}))?;
        } else if self.array {
            write!(self.out, "]")?;
        }
        writeln!(self.out, ",\"encoding\":{}}}", json!(info.encoding()))?;
        self.open = false;
        self.array = false;
        Ok(())
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
