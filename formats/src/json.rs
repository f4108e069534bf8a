//! JSON lines: one JSON object per line, one line per key, for people and for `jq`.
//!
//! ```text
//! {"format":"snaplab-json","version":1}
//! {"function":"#!lua name=lib ..."}
//! {"db":0,"key":"greeting","type":"string","expire_at_ms":null,"value":"hello"}
//! {"db":0,"key":{"base64":"/wA="},"type":"list","expire_at_ms":1700000000000,"value":["a","b"]}
//! {"db":1,"key":"h","type":"hash","expire_at_ms":null,"value":[{"field":"f","value":"v"}]}
//! {"db":2,"key":"z","type":"zset","expire_at_ms":null,"value":[{"member":"m","score":1.5},{"member":"top","score":"inf"}]}
//! {"db":0,"key":"s","type":"stream","expire_at_ms":null,"value":{"rdb_type":19,"payload":{"base64":"..."}}}
//! {"end":{"keys":5,"functions":1}}
//! ```
//!
//! Redis strings are binary, JSON strings are Unicode. The encoding is the one
//! `snaplab inspect --json` uses (which adds an `encoding` field, prints collections in file
//! order and values carried verbatim by size only): a string that is valid UTF-8 is a JSON string, anything else is an
//! object `{"base64": "..."}` holding its bytes in standard base64 (RFC 4648, with padding).
//! The two never collide, because valid UTF-8 is never written as an object. Scores are
//! JSON numbers printed in the shortest form that reads back to the same double (`-0.0`
//! included), except the infinities JSON cannot express, written `"inf"` and `"-inf"`.
//! Values Redis dumps carry that we do not model (streams, hashes with field TTLs) are
//! objects with their RDB type and payload in base64.
//!
//! Every line ends with a newline and the last one counts what came before, so a file cut
//! anywhere is refused. There is no checksum: a changed character in a value reads back as
//! another value. That, and a size well above RDB's, is the price of a file you can read.

use std::io::{BufRead, Read};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::de::{self, MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value as JsonValue;

use super::{Format, FormatError, Loader, Plain, Totals, buffered, io_error};
use snaplab_core::keyspace::{EntryRef, Keyspace};

/// The `format` field of the header line.
pub const FORMAT_TAG: &str = "snaplab-json";

/// The version this build writes and reads.
pub const VERSION: u32 = 1;

/// JSON lines. See the [module documentation](self).
#[derive(Clone, Copy, Debug, Default)]
pub struct Json;

const NAME: &str = "json";

// ---- writing ------------------------------------------------------------------------

/// A Redis string as JSON: a string if valid UTF-8, else `{"base64": ...}`.
struct Text<'a>(&'a [u8]);

impl Serialize for Text<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match std::str::from_utf8(self.0) {
            Ok(text) => s.serialize_str(text),
            Err(_) => Base64(self.0).serialize(s),
        }
    }
}

/// Bytes as `{"base64": ...}`, always.
struct Base64<'a>(&'a [u8]);

impl Serialize for Base64<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(1))?;
        m.serialize_entry("base64", &STANDARD.encode(self.0))?;
        m.end()
    }
}

/// A score: a JSON number, or `"inf"` / `"-inf"`.
struct Score(f64);

impl Serialize for Score {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            f64::INFINITY => s.serialize_str("inf"),
            f64::NEG_INFINITY => s.serialize_str("-inf"),
            // Scores are never NaN (the model's invariant), so this is a finite number.
            x => s.serialize_f64(x),
        }
    }
}

#[derive(Serialize)]
struct FieldOut<'a> {
    field: Text<'a>,
    value: Text<'a>,
}

#[derive(Serialize)]
struct MemberOut<'a> {
    member: Text<'a>,
    score: Score,
}

#[derive(Serialize)]
struct OpaqueOut<'a> {
    rdb_type: u8,
    payload: Base64<'a>,
}

/// A value's JSON form (see the module documentation).
struct ValueOut<'a>(&'a Plain<&'a [u8]>);

impl Serialize for ValueOut<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Plain::String(b) => Text(b).serialize(s),
            Plain::List(items) | Plain::Set(items) => s.collect_seq(items.iter().map(|b| Text(b))),
            Plain::Hash(pairs) => s.collect_seq(pairs.iter().map(|(f, v)| FieldOut { field: Text(f), value: Text(v) })),
            Plain::ZSet(pairs) => {
                s.collect_seq(pairs.iter().map(|(m, x)| MemberOut { member: Text(m), score: Score(*x) }))
            }
            Plain::Opaque { rdb_type, payload } => {
                OpaqueOut { rdb_type: *rdb_type, payload: Base64(payload) }.serialize(s)
            }
        }
    }
}

#[derive(Serialize)]
struct KeyOut<'a> {
    db: usize,
    key: Text<'a>,
    #[serde(rename = "type")]
    ty: &'static str,
    expire_at_ms: Option<i64>,
    value: ValueOut<'a>,
}

#[derive(Serialize)]
struct HeaderOut {
    format: &'static str,
    version: u32,
}

#[derive(Serialize)]
struct FunctionOut<'a> {
    function: Text<'a>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Counts {
    keys: u64,
    functions: u64,
}

#[derive(Serialize)]
struct EndOut {
    end: Counts,
}

/// Append `line` and a newline. serde_json only fails on a map with non-string keys or a
/// writer error, and our lines have neither (a Vec never fails to grow).
fn line<T: Serialize>(out: &mut Vec<u8>, line: &T) {
    serde_json::to_writer(&mut *out, line).expect("our lines always serialize");
    out.push(b'\n');
}

impl Format for Json {
    fn name(&self) -> &'static str {
        NAME
    }

    fn header(&self, out: &mut Vec<u8>) {
        line(out, &HeaderOut { format: FORMAT_TAG, version: VERSION });
    }

    fn function(&self, out: &mut Vec<u8>, code: &[u8], _lzf: bool) -> Result<(), FormatError> {
        line(out, &FunctionOut { function: Text(code) });
        Ok(())
    }

    fn record(
        &self,
        out: &mut Vec<u8>,
        _scratch: &mut Vec<u8>,
        db: usize,
        key: &[u8],
        entry: EntryRef<'_>,
        _lzf: bool,
    ) -> Result<(), FormatError> {
        let value = Plain::canonical(entry.value);
        let ty = value.type_name();
        line(out, &KeyOut { db, key: Text(key), ty, expire_at_ms: entry.expire_at_ms, value: ValueOut(&value) });
        Ok(())
    }

    fn trailer(&self, out: &mut Vec<u8>, totals: &Totals) {
        line(out, &EndOut { end: Counts { keys: totals.keys, functions: totals.functions } });
    }

    fn decode(&self, input: &mut dyn Read) -> Result<Keyspace, FormatError> {
        let mut input = buffered(input);
        let mut buf = Vec::new();
        let mut offset = 0u64;
        let mut line_no = 0u64;
        let mut loader = Loader::new(NAME);
        loop {
            buf.clear();
            line_no += 1;
            let n = input.read_until(b'\n', &mut buf).map_err(|e| io_error(NAME, offset, "a line", e))?;
            if n == 0 {
                let what = if line_no == 1 { "the header line" } else { "the end line" };
                return Err(FormatError::Truncated { format: NAME, offset, what });
            }
            if buf.last() != Some(&b'\n') {
                return Err(FormatError::Truncated { format: NAME, offset: offset + n as u64, what: "a line" });
            }
            let at = offset;
            offset += n as u64;
            let corrupt = |reason: String| FormatError::Corrupt {
                format: NAME,
                offset: at,
                what: "line",
                reason: format!("line {line_no}: {reason}"),
            };
            let parsed: Line = serde_json::from_slice(&buf).map_err(|e| corrupt(json_error(&e)))?;
            match (line_no, parsed) {
                (1, Line { format: Some(f), version: Some(v), .. }) if f == FORMAT_TAG => {
                    if v != u64::from(VERSION) {
                        return Err(FormatError::UnsupportedVersion { format: NAME, version: v, supported: VERSION });
                    }
                }
                (1, _) => {
                    return Err(FormatError::BadHeader {
                        format: NAME,
                        reason: format!("the first line is not {{\"format\":\"{FORMAT_TAG}\",\"version\":{VERSION}}}"),
                    });
                }
                (_, line) => match line.kind().map_err(|r| corrupt(r.into()))? {
                    Kind::Key { db, key, ty, expire_at_ms, value } => {
                        let plain = plain_from_json(&ty, value).map_err(corrupt)?;
                        if plain.type_name() != ty {
                            return Err(corrupt(format!("type is {ty:?} but the value is a {}", plain.type_name())));
                        }
                        loader.key(at, db, key, expire_at_ms, plain)?;
                    }
                    Kind::Function(code) => loader.ks.add_function(code),
                    Kind::End(counts) => {
                        loader.check_counts(at, counts.keys, counts.functions)?;
                        break;
                    }
                },
            }
        }
        match input.fill_buf() {
            Ok([]) => Ok(loader.ks),
            Ok(_) => Err(FormatError::TrailingData { format: NAME, offset }),
            Err(source) => Err(FormatError::Io { format: NAME, offset, source }),
        }
    }
}

/// serde_json's message without its position: a line is parsed alone, so its "line 1
/// column N" would mislead; the caller says which line.
fn json_error(e: &serde_json::Error) -> String {
    let text = e.to_string();
    let msg = text.rsplit_once(" at line ").map_or(text.as_str(), |(m, _)| m);
    format!("column {}: {msg}", e.column())
}

// ---- reading ------------------------------------------------------------------------

/// Any line, with every field optional; [`Line::kind`] decides what it is.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Line {
    format: Option<String>,
    version: Option<u64>,
    db: Option<u64>,
    key: Option<OwnedBytes>,
    #[serde(rename = "type")]
    ty: Option<String>,
    expire_at_ms: Option<i64>,
    value: Option<JsonValue>,
    function: Option<OwnedBytes>,
    end: Option<Counts>,
}

enum Kind {
    Key { db: u64, key: Vec<u8>, ty: String, expire_at_ms: Option<i64>, value: JsonValue },
    Function(Vec<u8>),
    End(Counts),
}

impl Line {
    fn kind(self) -> Result<Kind, &'static str> {
        match self {
            Line {
                format: None,
                version: None,
                db: Some(db),
                key: Some(key),
                ty: Some(ty),
                expire_at_ms,
                value: Some(value),
                function: None,
                end: None,
            } => Ok(Kind::Key { db, key: key.0, ty, expire_at_ms, value }),
            Line {
                format: None,
                version: None,
                db: None,
                key: None,
                ty: None,
                expire_at_ms: None,
                value: None,
                function: Some(code),
                end: None,
            } => Ok(Kind::Function(code.0)),
            Line {
                format: None,
                version: None,
                db: None,
                key: None,
                ty: None,
                expire_at_ms: None,
                value: None,
                function: None,
                end: Some(counts),
            } => Ok(Kind::End(counts)),
            _ => Err("not a key (db, key, type, expire_at_ms, value), a function library (function) or the end (end)"),
        }
    }
}

/// A Redis string read from JSON: a string, or `{"base64": ...}`.
struct OwnedBytes(Vec<u8>);

impl<'de> Deserialize<'de> for OwnedBytes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = OwnedBytes;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string, or an object {\"base64\": ...}")
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<OwnedBytes, E> {
                Ok(OwnedBytes(v.as_bytes().to_vec()))
            }

            fn visit_string<E: de::Error>(self, v: String) -> Result<OwnedBytes, E> {
                Ok(OwnedBytes(v.into_bytes()))
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<OwnedBytes, A::Error> {
                let (Some((name, text)), None) = (map.next_entry::<String, String>()?, map.next_key::<String>()?)
                else {
                    return Err(de::Error::custom("a binary string must be an object with the one field \"base64\""));
                };
                if name != "base64" {
                    return Err(de::Error::unknown_field(&name, &["base64"]));
                }
                STANDARD.decode(text).map(OwnedBytes).map_err(|e| de::Error::custom(format!("bad base64: {e}")))
            }
        }
        d.deserialize_any(V)
    }
}

/// Bytes from a JSON value already parsed (see [`OwnedBytes`]).
fn bytes_from(v: JsonValue) -> Result<Vec<u8>, String> {
    match v {
        JsonValue::String(s) => Ok(s.into_bytes()),
        JsonValue::Object(mut m) if m.len() == 1 => match m.remove("base64") {
            Some(JsonValue::String(b)) => STANDARD.decode(b).map_err(|e| format!("bad base64: {e}")),
            _ => Err("a binary string must be an object with the one field \"base64\"".into()),
        },
        other => Err(format!("expected a string or {{\"base64\": ...}}, found {}", kind(&other))),
    }
}

fn kind(v: &JsonValue) -> &'static str {
    match v {
        JsonValue::Null => "null",
        JsonValue::Bool(_) => "a boolean",
        JsonValue::Number(_) => "a number",
        JsonValue::String(_) => "a string",
        JsonValue::Array(_) => "an array",
        JsonValue::Object(_) => "an object",
    }
}

fn array(v: JsonValue) -> Result<Vec<JsonValue>, String> {
    match v {
        JsonValue::Array(a) => Ok(a),
        other => Err(format!("expected an array, found {}", kind(&other))),
    }
}

/// The values of an object that must have exactly the fields `names`, in that order.
fn fields<const N: usize>(v: JsonValue, names: [&str; N]) -> Result<[JsonValue; N], String> {
    let JsonValue::Object(mut m) = v else {
        return Err(format!("expected an object with {names:?}, found {}", kind(&v)));
    };
    if m.len() != N {
        return Err(format!("expected an object with exactly {names:?}"));
    }
    let values = names.map(|name| m.remove(name));
    if let Some(i) = values.iter().position(Option::is_none) {
        return Err(format!("missing field {:?}", names[i]));
    }
    // Every value is present (checked just above), so the default is never used.
    Ok(values.map(|v| v.unwrap_or(JsonValue::Null)))
}

fn score(v: JsonValue) -> Result<f64, String> {
    match v {
        JsonValue::Number(n) => n.as_f64().ok_or_else(|| format!("score {n} is not a double")),
        JsonValue::String(s) if s == "inf" => Ok(f64::INFINITY),
        JsonValue::String(s) if s == "-inf" => Ok(f64::NEG_INFINITY),
        other => Err(format!("a score must be a number, \"inf\" or \"-inf\", found {}", kind(&other))),
    }
}

/// The value of a key line of type `ty`.
fn plain_from_json(ty: &str, value: JsonValue) -> Result<Plain<Vec<u8>>, String> {
    if let JsonValue::Object(m) = &value
        && m.contains_key("rdb_type")
    {
        let [rdb_type, payload] = fields(value, ["rdb_type", "payload"])?;
        let rdb_type = rdb_type
            .as_u64()
            .and_then(|t| u8::try_from(t).ok())
            .ok_or_else(|| format!("rdb_type must be a byte, found {rdb_type}"))?;
        return Ok(Plain::Opaque { rdb_type, payload: bytes_from(payload)? });
    }
    let strings = |v: JsonValue| array(v)?.into_iter().map(bytes_from).collect::<Result<Vec<_>, _>>();
    Ok(match ty {
        "string" => Plain::String(bytes_from(value)?),
        "list" => Plain::List(strings(value)?),
        "set" => Plain::Set(strings(value)?),
        "hash" => Plain::Hash(
            array(value)?
                .into_iter()
                .map(|p| {
                    let [f, v] = fields(p, ["field", "value"])?;
                    Ok((bytes_from(f)?, bytes_from(v)?))
                })
                .collect::<Result<_, String>>()?,
        ),
        "zset" => Plain::ZSet(
            array(value)?
                .into_iter()
                .map(|p| {
                    let [m, s] = fields(p, ["member", "score"])?;
                    Ok((bytes_from(m)?, score(s)?))
                })
                .collect::<Result<_, String>>()?,
        ),
        other => return Err(format!("unknown type {other:?}")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Codec, Compression};
    use snaplab_core::keyspace::{Entry, Value};

    /// A key line is exactly the documented shape, and non-UTF-8 bytes become base64.
    #[test]
    fn line_shape() {
        let mut ks = Keyspace::new();
        ks.insert(0, vec![0xff, 0x00], Entry::expiring(Value::String(b"hello".to_vec()), 42));
        let mut out = Vec::new();
        Codec::new(&Json, Compression::None).unwrap().encode(&ks, &mut out, None).unwrap();
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines,
            [
                r#"{"format":"snaplab-json","version":1}"#,
                r#"{"db":0,"key":{"base64":"/wA="},"type":"string","expire_at_ms":42,"value":"hello"}"#,
                r#"{"end":{"keys":1,"functions":0}}"#,
            ]
        );
    }

    /// A line that mixes kinds, a type that does not match the value, an unknown field and
    /// a header of another program are all refused with a typed error.
    #[test]
    fn malformed_lines() {
        let head = "{\"format\":\"snaplab-json\",\"version\":1}\n";
        for (body, want) in [
            ("{\"db\":0,\"key\":\"k\",\"type\":\"list\",\"value\":\"v\"}\n", "expected an array"),
            (
                "{\"db\":0,\"key\":\"k\",\"type\":\"set\",\"value\":\"v\",\"end\":{\"keys\":0,\"functions\":0}}\n",
                "not a key",
            ),
            ("{\"db\":0,\"key\":\"k\",\"type\":\"string\",\"value\":\"v\",\"color\":1}\n", "unknown field"),
            ("{\"db\":0,\"key\":\"k\",\"type\":\"hash\",\"value\":\"v\"}\n", "expected an array"),
            ("{\"db\":0,\"key\":{\"base64\":\"!!\"},\"type\":\"string\",\"value\":\"v\"}\n", "base64"),
            ("{\"db\":16,\"key\":\"k\",\"type\":\"string\",\"value\":\"v\"}\n", "out of range"),
        ] {
            let file = format!("{head}{body}{{\"end\":{{\"keys\":1,\"functions\":0}}}}\n");
            let err = Json.decode(&mut file.as_bytes()).unwrap_err();
            assert!(matches!(err, FormatError::Corrupt { offset: 38, .. }), "{body}: {err}");
            assert!(err.to_string().contains(want), "{body}: {err}");
        }
        let err = Json.decode(&mut &b"{\"format\":\"other\",\"version\":1}\n"[..]).unwrap_err();
        assert!(matches!(err, FormatError::BadHeader { .. }), "{err}");
    }
}
