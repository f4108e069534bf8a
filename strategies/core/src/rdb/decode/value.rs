//! Decoding one value, element by element, into a [`Sink`]: a [`Builder`] that builds the
//! keyspace's [`Value`] (loading), or a [`Streamer`] that hands each element on and drops it
//! (checking). One decoder serves both, so they accept and refuse the same dumps.
//!
//! Source of every layout: Redis src/rdb.c, `rdbLoadObject` (7.0.15 and 8.6.3), and Valkey
//! src/rdb.c for Valkey's type 22; the packed blobs are walked by [`crate::rdb::packed`].

use std::collections::HashSet;
use std::io::Read;

use super::{Fingerprinter, KeyInfo, MEMBER_CHECK_LIMIT, RdbError, RdbReader, parse_score, prealloc};
use crate::command::escape;
use crate::keyspace::{Bytes, Opaque, Value};
use crate::rdb::consts::*;
use crate::rdb::encode::{put_len, put_string};
use crate::rdb::packed::{self, IntBuf, IntsetIter, ListpackIter, PackedEntry, ZiplistIter, ZipmapIter};

/// One element of a value, borrowed while the reader decodes it. Integers stored as
/// integers (intsets, packed entries, integer-encoded strings) arrive as their decimal
/// strings, as Redis returns them.
#[derive(Clone, Copy, Debug)]
pub enum Element<'a> {
    /// A string value, whole.
    String(&'a [u8]),
    /// One list element, in list order.
    ListItem(&'a [u8]),
    /// One set member.
    SetMember(&'a [u8]),
    /// One hash field and its value.
    HashField(&'a [u8], &'a [u8]),
    /// One sorted-set member and its score (never NaN).
    ZSetMember(&'a [u8], f64),
}

/// The Redis type of RDB value type `t` in `dialect` (`string`, `list`, `set`, `hash`,
/// `zset`, `stream`, `module`), or `None` for a byte that is no value type there.
pub(super) fn value_type(dialect: Dialect, t: u8) -> Option<&'static str> {
    type_name_in(dialect, t)?;
    Some(match (dialect, t) {
        (Dialect::Valkey, VALKEY_TYPE_HASH_2) => "hash",
        (_, TYPE_STRING) => "string",
        (_, TYPE_LIST | TYPE_LIST_ZIPLIST | TYPE_LIST_QUICKLIST | TYPE_LIST_QUICKLIST_2) => "list",
        (_, TYPE_SET | TYPE_SET_INTSET | TYPE_SET_LISTPACK) => "set",
        (_, TYPE_ZSET | TYPE_ZSET_2 | TYPE_ZSET_ZIPLIST | TYPE_ZSET_LISTPACK) => "zset",
        (_, TYPE_STREAM_LISTPACKS | TYPE_STREAM_LISTPACKS_2 | TYPE_STREAM_LISTPACKS_3 | TYPE_STREAM_LISTPACKS_4) => {
            "stream"
        }
        (_, TYPE_MODULE_PRE_GA | TYPE_MODULE_2) => "module",
        _ => "hash",
    })
}

/// Whether a value had anything in it: Redis skips empty collections when it loads.
pub(super) enum Decoded {
    /// A value to keep.
    Present,
    /// An empty collection ("skipping empty key").
    Empty,
}

/// Where the decoder puts a value.
pub(super) trait Sink {
    /// The file announces `n` elements; room may be reserved for a bounded number of them.
    fn reserve(&mut self, _n: u64) {}
    /// A string value, whole.
    fn string(&mut self, s: Bytes);
    /// One element of a collection; `Err` names what is wrong with it (a duplicate).
    fn element(&mut self, e: Element<'_>) -> Result<(), &'static str>;
    /// The value is carried opaque: its RDB type, its payload (empty unless
    /// [`Sink::records_opaque`]) and its size in bytes. Replaces any elements received.
    fn opaque(&mut self, rdb_type: u8, payload: Bytes, bytes: u64);
    /// Whether opaque payloads are wanted (loading) or only walked (checking).
    fn records_opaque(&self) -> bool;
}

/// Builds the keyspace model's [`Value`], refusing duplicate members and fields exactly.
pub(super) struct Builder {
    value: Value,
}

impl Builder {
    /// A builder for a value of Redis type `value_type` (see [`value_type`]).
    pub(super) fn new(value_type: &str) -> Self {
        let value = match value_type {
            "list" => Value::List(Box::default()),
            "set" => Value::Set(Box::default()),
            "hash" => Value::Hash(Box::default()),
            "zset" => Value::ZSet(Box::default()),
            _ => Value::String(Vec::new()),
        };
        Builder { value }
    }

    /// The value built from RDB type `t`.
    pub(super) fn finish(self, t: u8) -> Value {
        let mut value = self.value;
        if let (TYPE_ZSET | TYPE_ZSET_2, Value::ZSet(zset)) = (t, &mut value) {
            // Redis turns a small plain sorted set into a listpack as it loads it, and a
            // listpack stores a -0 score as the integer 0 (src/t_zset.c, zzlInsertAt): model
            // what Redis holds, so that saving it back gives Redis the same data.
            if zset.len() <= ZSET_MAX_LISTPACK_ENTRIES && zset.keys().all(|m| m.len() <= ZSET_MAX_LISTPACK_VALUE) {
                for s in zset.values_mut() {
                    if *s == 0.0 {
                        *s = 0.0;
                    }
                }
            }
        }
        value
    }
}

impl Sink for Builder {
    fn reserve(&mut self, n: u64) {
        match &mut self.value {
            Value::List(l) => l.reserve(prealloc(n)),
            Value::Set(s) => s.reserve(prealloc(n)),
            Value::Hash(h) => h.reserve(prealloc(n)),
            Value::ZSet(z) => z.reserve(prealloc(n)),
            Value::String(_) | Value::Opaque(_) => {}
        }
    }

    fn string(&mut self, s: Bytes) {
        self.value = Value::String(s);
    }

    fn element(&mut self, e: Element<'_>) -> Result<(), &'static str> {
        match (&mut self.value, e) {
            (Value::List(l), Element::ListItem(item)) => l.push_back(item.to_vec()),
            (Value::Set(s), Element::SetMember(m)) => {
                if !s.insert(m.to_vec()) {
                    return Err("duplicate member");
                }
            }
            (Value::Hash(h), Element::HashField(f, v)) => {
                if h.insert(f.to_vec(), v.to_vec()).is_some() {
                    return Err("duplicate field");
                }
            }
            (Value::ZSet(z), Element::ZSetMember(m, score)) => {
                if z.insert(m.to_vec(), score).is_some() {
                    return Err("duplicate member");
                }
            }
            // The decoder emits one kind of element per RDB type, the kind `Builder::new`
            // was given, so this cannot happen; it is still an error, not a panic.
            _ => return Err("an element of the wrong kind for its value"),
        }
        Ok(())
    }

    fn opaque(&mut self, rdb_type: u8, payload: Bytes, _bytes: u64) {
        self.value = Value::Opaque(Box::new(Opaque { rdb_type, payload }));
    }

    fn records_opaque(&self) -> bool {
        true
    }
}

/// Hands each element to the caller with the key's [`KeyInfo`] so far, counts it and drops
/// it. Members of sets, hashes and sorted sets are compared, as 128-bit fingerprints, with
/// the first [`MEMBER_CHECK_LIMIT`] members of their collection.
pub(super) struct Streamer<'a> {
    info: KeyInfo,
    on_element: &'a mut dyn FnMut(&KeyInfo, Element<'_>),
    members: HashSet<u128>,
    fingerprints: Fingerprinter,
}

impl<'a> Streamer<'a> {
    pub(super) fn new(
        info: KeyInfo,
        on_element: &'a mut dyn FnMut(&KeyInfo, Element<'_>),
        fingerprints: Fingerprinter,
    ) -> Self {
        Streamer { info, on_element, members: HashSet::new(), fingerprints }
    }

    /// The key's record, with its element count.
    pub(super) fn finish(self) -> KeyInfo {
        self.info
    }

    /// Refuse `member` if it was seen in this collection; remember it while there is room.
    fn check_member(&mut self, member: &[u8], duplicate: &'static str) -> Result<(), &'static str> {
        let fingerprint = self.fingerprints.of(member);
        if self.members.contains(&fingerprint) {
            return Err(duplicate);
        }
        // Why a limit: remembering every member would grow with the collection, which
        // checking must not; past it, members are compared but not remembered.
        if self.members.len() < MEMBER_CHECK_LIMIT {
            self.members.insert(fingerprint);
        } else {
            self.info.partly_checked = true;
        }
        Ok(())
    }
}

impl Sink for Streamer<'_> {
    fn string(&mut self, s: Bytes) {
        self.info.elements = 1;
        (self.on_element)(&self.info, Element::String(&s));
    }

    fn element(&mut self, e: Element<'_>) -> Result<(), &'static str> {
        match e {
            Element::SetMember(m) | Element::ZSetMember(m, _) => self.check_member(m, "duplicate member")?,
            Element::HashField(f, _) => self.check_member(f, "duplicate field")?,
            Element::String(_) | Element::ListItem(_) => {}
        }
        self.info.elements += 1;
        (self.on_element)(&self.info, e);
        Ok(())
    }

    fn opaque(&mut self, _rdb_type: u8, _payload: Bytes, bytes: u64) {
        // Loading keeps no elements of an opaque value either (a Valkey hash with field
        // expiries streams its fields before it turns out to need carrying opaque).
        self.info.elements = 0;
        self.info.opaque_bytes = Some(bytes);
    }

    fn records_opaque(&self) -> bool {
        false
    }
}

/// The largest absolute field expiry Redis's hash-field-expiry types can hold (Redis
/// src/ebuckets.h, `EB_EXPIRE_TIME_MAX`: 48 bits of unix ms).
const HFE_MAX_EXPIRE_MS: i64 = (1 << 48) - 1;

impl<R: Read> RdbReader<R> {
    /// Decode a value of type `t` into `sink` (Redis src/rdb.c, `rdbLoadObject`).
    pub(super) fn value<S: Sink>(&mut self, t: u8, key: &[u8], sink: &mut S) -> Result<Decoded, RdbError> {
        let offset = self.src.offset();
        let k = || escape(key);
        self.emitted = 0;
        if self.dialect == Dialect::Valkey && t == VALKEY_TYPE_HASH_2 {
            return self.valkey_hash_2(key, sink);
        }
        // Element buffers shared by a collection's elements: one allocation per value, not
        // per element.
        let (mut a, mut b) = (Vec::new(), Vec::new());
        match t {
            TYPE_STRING => {
                let s = self.string("a string value")?;
                sink.string(s);
                return Ok(Decoded::Present);
            }
            TYPE_LIST => {
                let n = self.len("a list length")?;
                sink.reserve(n);
                for _ in 0..n {
                    self.string_into("a list element", &mut a)?;
                    self.emit(sink, Element::ListItem(&a), offset, || format!("list {}", k()))?;
                }
            }
            TYPE_SET => {
                let n = self.len("a set size")?;
                sink.reserve(n);
                for _ in 0..n {
                    self.string_into("a set member", &mut a)?;
                    self.emit(sink, Element::SetMember(&a), offset, || format!("set {}", k()))?;
                }
            }
            TYPE_ZSET | TYPE_ZSET_2 => {
                let n = self.len("a sorted set size")?;
                sink.reserve(n);
                for _ in 0..n {
                    self.string_into("a sorted set member", &mut a)?;
                    let score = if t == TYPE_ZSET_2 {
                        f64::from_bits(self.ms_time("a score")? as u64)
                    } else {
                        self.string_score()?
                    };
                    let what = || format!("sorted set {}", k());
                    if score.is_nan() {
                        return Err(self.corrupt(offset, what(), "NaN score"));
                    }
                    self.emit(sink, Element::ZSetMember(&a, score), offset, what)?;
                }
            }
            TYPE_HASH => {
                let n = self.len("a hash size")?;
                sink.reserve(n);
                for _ in 0..n {
                    self.string_into("a hash field", &mut a)?;
                    self.string_into("a hash value", &mut b)?;
                    self.emit(sink, Element::HashField(&a, &b), offset, || format!("hash {}", k()))?;
                }
            }
            TYPE_LIST_QUICKLIST | TYPE_LIST_QUICKLIST_2 => {
                let nodes = self.len("a quicklist node count")?;
                for _ in 0..nodes {
                    let container = if t == TYPE_LIST_QUICKLIST_2 { self.len("a quicklist container")? } else { 2 };
                    let (at, blob) = self.blob("a quicklist node")?;
                    let what = || format!("quicklist node of key {}", k());
                    if blob.is_empty() {
                        return Err(self.corrupt(at, what(), "empty node"));
                    }
                    match container {
                        // QUICKLIST_NODE_CONTAINER_PLAIN: one large element stored as is.
                        1 => self.emit(sink, Element::ListItem(&blob), at, what)?,
                        2 if t == TYPE_LIST_QUICKLIST => {
                            let mut it = ZiplistIter::new(&blob).map_err(|r| self.corrupt(at, what(), r))?;
                            while let Some(e) = it.next_entry().map_err(|r| self.corrupt(at, what(), r))? {
                                self.emit(sink, Element::ListItem(e.bytes(&mut [0; 20])), at, what)?;
                            }
                        }
                        2 => {
                            let mut it = ListpackIter::new(&blob).map_err(|r| self.corrupt(at, what(), r))?;
                            while let Some(e) = it.next_entry().map_err(|r| self.corrupt(at, what(), r))? {
                                self.emit(sink, Element::ListItem(e.bytes(&mut [0; 20])), at, what)?;
                            }
                        }
                        c => return Err(self.corrupt(at, what(), format!("container type {c} is neither 1 nor 2"))),
                    }
                }
            }
            TYPE_HASH_ZIPMAP => {
                let (at, blob) = self.blob("a zipmap")?;
                let what = || format!("zipmap of key {}", k());
                let mut it = ZipmapIter::new(&blob).map_err(|r| self.corrupt(at, what(), r))?;
                while let Some((f, v)) = it.next_pair().map_err(|r| self.corrupt(at, what(), r))? {
                    self.emit(sink, Element::HashField(f, v), at, || format!("hash of key {}", k()))?;
                }
            }
            TYPE_LIST_ZIPLIST => {
                let (at, blob) = self.blob("a ziplist")?;
                let what = || format!("ziplist of key {}", k());
                let mut it = ZiplistIter::new(&blob).map_err(|r| self.corrupt(at, what(), r))?;
                while let Some(e) = it.next_entry().map_err(|r| self.corrupt(at, what(), r))? {
                    self.emit(sink, Element::ListItem(e.bytes(&mut [0; 20])), at, what)?;
                }
            }
            TYPE_SET_INTSET => {
                let (at, blob) = self.blob("an intset")?;
                let what = || format!("intset of key {}", k());
                let mut it = IntsetIter::new(&blob).map_err(|r| self.corrupt(at, what(), r))?;
                while let Some(m) = it.next_member().map_err(|r| self.corrupt(at, what(), r))? {
                    self.emit(sink, Element::SetMember(packed::int_bytes(m, &mut [0; 20])), at, what)?;
                }
            }
            TYPE_SET_LISTPACK => {
                let (at, blob) = self.blob("a listpack")?;
                let what = || format!("set listpack of key {}", k());
                let mut it = ListpackIter::new(&blob).map_err(|r| self.corrupt(at, what(), r))?;
                while let Some(e) = it.next_entry().map_err(|r| self.corrupt(at, what(), r))? {
                    self.emit(sink, Element::SetMember(e.bytes(&mut [0; 20])), at, what)?;
                }
            }
            TYPE_ZSET_ZIPLIST | TYPE_ZSET_LISTPACK => {
                let (at, blob) = self.blob("a packed sorted set")?;
                let what = || format!("sorted set {} of key {}", type_name(t).unwrap_or(""), k());
                let mut entries =
                    PackedIter::new(t == TYPE_ZSET_ZIPLIST, &blob).map_err(|r| self.corrupt(at, what(), r))?;
                while let Some(m) = entries.next().map_err(|r| self.corrupt(at, what(), r))? {
                    let Some(s) = entries.next().map_err(|r| self.corrupt(at, what(), r))? else {
                        return Err(self.corrupt(at, what(), "odd number of elements"));
                    };
                    // Redis reads an integer entry's score as the integer (src/t_zset.c,
                    // zzlGetScore) and a string entry's with strtod.
                    let score = match s {
                        PackedEntry::Int(v) => v as f64,
                        PackedEntry::Bytes(b) => parse_score(b).ok_or_else(|| {
                            self.corrupt(at, what(), format!("score {:?} is not a number", escape(b)))
                        })?,
                    };
                    if score.is_nan() {
                        return Err(self.corrupt(at, what(), "NaN score"));
                    }
                    let mut buf: IntBuf = [0; 20];
                    self.emit(sink, Element::ZSetMember(m.bytes(&mut buf), score), at, what)?;
                }
            }
            TYPE_HASH_ZIPLIST | TYPE_HASH_LISTPACK => {
                let (at, blob) = self.blob("a packed hash")?;
                let what = || format!("hash {} of key {}", type_name(t).unwrap_or(""), k());
                let mut entries =
                    PackedIter::new(t == TYPE_HASH_ZIPLIST, &blob).map_err(|r| self.corrupt(at, what(), r))?;
                while let Some(f) = entries.next().map_err(|r| self.corrupt(at, what(), r))? {
                    let Some(v) = entries.next().map_err(|r| self.corrupt(at, what(), r))? else {
                        return Err(self.corrupt(at, what(), "odd number of elements"));
                    };
                    let (mut fbuf, mut vbuf): (IntBuf, IntBuf) = ([0; 20], [0; 20]);
                    let field = Element::HashField(f.bytes(&mut fbuf), v.bytes(&mut vbuf));
                    self.emit(sink, field, at, || format!("hash of key {}", k()))?;
                }
            }
            TYPE_STREAM_LISTPACKS | TYPE_STREAM_LISTPACKS_2 | TYPE_STREAM_LISTPACKS_3 | TYPE_STREAM_LISTPACKS_4 => {
                let record = sink.records_opaque();
                if record {
                    self.src.start_recording();
                }
                let r = self.skip_stream(t, key);
                let payload = if record { self.src.stop_recording() } else { Vec::new() };
                r?;
                sink.opaque(t, payload, self.src.offset() - offset);
                return Ok(Decoded::Present);
            }
            TYPE_HASH_METADATA_PRE_GA | TYPE_HASH_METADATA | TYPE_HASH_LISTPACK_EX_PRE_GA | TYPE_HASH_LISTPACK_EX => {
                let record = sink.records_opaque();
                if record {
                    self.src.start_recording();
                }
                let r = self.skip_hash_with_ttls(t, key);
                let payload = if record { self.src.stop_recording() } else { Vec::new() };
                if !r? {
                    return Ok(Decoded::Empty);
                }
                sink.opaque(t, payload, self.src.offset() - offset);
                return Ok(Decoded::Present);
            }
            TYPE_MODULE_2 | TYPE_MODULE_PRE_GA => {
                let id = self.len("a module id")?;
                return Err(RdbError::ModuleValue { offset, key: k(), module: super::module_name(id) });
            }
            _ => return Err(RdbError::UnknownType { offset: offset - 1, byte: t }),
        }
        Ok(if self.emitted > 0 { Decoded::Present } else { Decoded::Empty })
    }

    /// Hand `e` to `sink`, turning a refusal into [`RdbError::Corrupt`] at `at`.
    fn emit<S: Sink>(
        &mut self,
        sink: &mut S,
        e: Element<'_>,
        at: u64,
        what: impl FnOnce() -> String,
    ) -> Result<(), RdbError> {
        sink.element(e).map_err(|reason| self.corrupt(at, what(), reason))?;
        self.emitted += 1;
        Ok(())
    }

    /// Walk a stream value to its end (Redis src/rdb.c, the STREAM_LISTPACKS branch of
    /// `rdbLoadObject`, 7.0.15 for types 15 and 19, 7.2 for 21, 8.6.3 for 26), checking what
    /// Redis checks without deep sanitization. One listpack node is in memory at a time.
    fn skip_stream(&mut self, t: u8, key: &[u8]) -> Result<(), RdbError> {
        let what = || format!("stream {}", escape(key));
        let nodes = self.len("a stream node count")?;
        for _ in 0..nodes {
            let (at, id) = self.blob("a stream node key")?;
            if id.len() != 16 {
                return Err(self.corrupt(at, what(), "node key is not a 128-bit stream ID"));
            }
            let (at, lp) = self.blob("a stream listpack")?;
            packed::listpack_header(&lp).map_err(|r| self.corrupt(at, what(), r))?;
            if lp.len() <= 7 {
                return Err(self.corrupt(at, what(), "empty listpack inside stream"));
            }
        }
        // length, last_id (ms, seq)
        for _ in 0..3 {
            self.len("stream metadata")?;
        }
        if t >= TYPE_STREAM_LISTPACKS_2 {
            // first_id, max_deleted_entry_id, entries_added
            for _ in 0..5 {
                self.len("stream metadata")?;
            }
        }
        let groups = self.len("a consumer group count")?;
        let mut name = Vec::new();
        for _ in 0..groups {
            self.string_into("a consumer group name", &mut name)?;
            self.len("a consumer group last id")?;
            self.len("a consumer group last id")?;
            if t >= TYPE_STREAM_LISTPACKS_2 {
                self.len("a consumer group offset")?;
            }
            let pel = self.len("a PEL size")?;
            let mut raw = [0u8; 16];
            for _ in 0..pel {
                self.exact(&mut raw, "a PEL stream ID")?;
                self.ms_time("a PEL delivery time")?;
                self.len("a PEL delivery count")?;
            }
            let consumers = self.len("a consumer count")?;
            for _ in 0..consumers {
                self.string_into("a consumer name", &mut name)?;
                self.ms_time("a consumer seen time")?;
                if t >= TYPE_STREAM_LISTPACKS_3 {
                    self.ms_time("a consumer active time")?;
                }
                let pel = self.len("a consumer PEL size")?;
                for _ in 0..pel {
                    self.exact(&mut raw, "a consumer PEL stream ID")?;
                }
            }
        }
        if t >= TYPE_STREAM_LISTPACKS_4 {
            self.skip_stream_idmp(&what)?;
        }
        Ok(())
    }

    /// The idempotent-producer state of a type-26 stream (Redis 8.6.3 src/rdb.c,
    /// `rdbLoadObject` and `rdbLoadStreamIdmpEntries`): the duration in seconds (1 to 86400)
    /// and the maximum entries (1 to 10000), which Redis refuses out of range (src/server.h,
    /// `CONFIG_STREAM_IDMP_*`); the producers, each an id string, a count and that many IID
    /// strings each with a stream ID as two lengths; then the all-time counts of IIDs added
    /// and of duplicates.
    fn skip_stream_idmp(&mut self, what: &dyn Fn() -> String) -> Result<(), RdbError> {
        let at = self.src.offset();
        let duration = self.len("a stream IDMP duration")?;
        if !(1..=86_400).contains(&duration) {
            return Err(self.corrupt(at, what(), format!("IDMP duration {duration} s is outside 1 to 86400")));
        }
        let at = self.src.offset();
        let max_entries = self.len("a stream IDMP maximum")?;
        if !(1..=10_000).contains(&max_entries) {
            return Err(self.corrupt(at, what(), format!("IDMP maximum {max_entries} is outside 1 to 10000")));
        }
        let producers = self.len("a stream IDMP producer count")?;
        let mut scratch = Vec::new();
        for _ in 0..producers {
            self.string_into("a stream IDMP producer id", &mut scratch)?;
            let entries = self.len("a stream IDMP entry count")?;
            for _ in 0..entries {
                self.string_into("a stream IDMP IID", &mut scratch)?;
                self.len("a stream IDMP entry ID")?;
                self.len("a stream IDMP entry ID")?;
            }
        }
        self.len("a stream IDMP IIDs-added count")?;
        self.len("a stream IDMP duplicates count")?;
        Ok(())
    }

    /// Walk a hash with field expiries (Redis 7.4, types 22 to 25; Redis 8.6.3 src/rdb.c,
    /// `rdbLoadObject`) to its end. Returns `false` for an empty one (skipped, as Redis does).
    fn skip_hash_with_ttls(&mut self, t: u8, key: &[u8]) -> Result<bool, RdbError> {
        if matches!(t, TYPE_HASH_METADATA | TYPE_HASH_LISTPACK_EX) {
            self.ms_time("a hash minimum expiry")?;
        }
        let mut scratch = Vec::new();
        if matches!(t, TYPE_HASH_METADATA | TYPE_HASH_METADATA_PRE_GA) {
            let n = self.len("a hash size")?;
            for _ in 0..n {
                self.len("a hash field TTL")?;
                self.string_into("a hash field", &mut scratch)?;
                self.string_into("a hash value", &mut scratch)?;
            }
            return Ok(n > 0);
        }
        let (at, lp) = self.blob("a hash listpack")?;
        let what = || format!("hash listpack of key {}", escape(key));
        let mut it = ListpackIter::new(&lp).map_err(|r| self.corrupt(at, what(), r))?;
        let mut items = 0u64;
        while it.next_entry().map_err(|r| self.corrupt(at, what(), r))?.is_some() {
            items += 1;
        }
        if !items.is_multiple_of(3) {
            return Err(self.corrupt(at, what(), "not field/value/TTL triples"));
        }
        Ok(items > 0)
    }

    /// Valkey 9.0's hash whose fields may expire (Valkey src/rdb.c, `rdbLoadObject`,
    /// `RDB_TYPE_HASH_2`): a length N, then N times a field, a value and an 8-byte
    /// little-endian expiry in unix ms, -1 for none (Valkey refuses anything below -1).
    ///
    /// The fields are checked and emitted like a hash's. A hash none of whose fields expires
    /// is an ordinary hash; one with expiries is carried as Redis's type 22 (absolute TTLs,
    /// 0 for none: Redis src/rdb.c, `RDB_TYPE_HASH_METADATA_PRE_GA`), since every dump we
    /// write is a Redis dump. Expiries Redis's format cannot hold (0, which it reads as "no
    /// TTL", and beyond 48 bits) are refused rather than changed.
    fn valkey_hash_2<S: Sink>(&mut self, key: &[u8], sink: &mut S) -> Result<Decoded, RdbError> {
        let offset = self.src.offset();
        let what = || format!("hash_2 of key {}", escape(key));
        let n = self.len("a hash size")?;
        sink.reserve(n);
        let record = sink.records_opaque();
        // The same hash in Redis's type-22 layout, built only when loading.
        let mut redis_22 = Vec::new();
        if record {
            put_len(&mut redis_22, n);
        }
        let mut expires = false;
        let (mut field, mut value, mut scratch) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..n {
            self.string_into("a hash field", &mut field)?;
            self.string_into("a hash value", &mut value)?;
            let at = self.src.offset();
            let ttl = match self.ms_time("a hash field expiry")? {
                -1 => 0,
                e if (1..=HFE_MAX_EXPIRE_MS).contains(&e) => {
                    expires = true;
                    e as u64
                }
                e if e < -1 => return Err(self.corrupt(at, what(), format!("field expiry {e} is below -1"))),
                e => {
                    return Err(self.corrupt(
                        at,
                        what(),
                        format!("field expiry {e} cannot be carried in Redis's hash-field-expiry format"),
                    ));
                }
            };
            self.emit(sink, Element::HashField(&field, &value), offset, what)?;
            if record {
                put_len(&mut redis_22, ttl);
                put_string(&mut redis_22, &mut scratch, &field, false);
                put_string(&mut redis_22, &mut scratch, &value, false);
            }
        }
        if n == 0 {
            return Ok(Decoded::Empty);
        }
        if expires {
            sink.opaque(TYPE_HASH_METADATA_PRE_GA, redis_22, self.src.offset() - offset);
        }
        Ok(Decoded::Present)
    }
}

/// A ziplist or a listpack, walked entry by entry (sorted sets and hashes come in either).
enum PackedIter<'a> {
    Ziplist(ZiplistIter<'a>),
    Listpack(ListpackIter<'a>),
}

impl<'a> PackedIter<'a> {
    fn new(ziplist: bool, blob: &'a [u8]) -> Result<Self, packed::Reason> {
        Ok(if ziplist {
            PackedIter::Ziplist(ZiplistIter::new(blob)?)
        } else {
            PackedIter::Listpack(ListpackIter::new(blob)?)
        })
    }

    fn next(&mut self) -> Result<Option<PackedEntry<'a>>, packed::Reason> {
        match self {
            PackedIter::Ziplist(it) => it.next_entry(),
            PackedIter::Listpack(it) => it.next_entry(),
        }
    }
}
