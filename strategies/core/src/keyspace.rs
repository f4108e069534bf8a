//! The keyspace model every strategy stores and every format reads and writes.
//!
//! Redis has 16 numbered databases (`SELECT 0` .. `SELECT 15`); each maps a binary-safe key
//! to a value of one of five types, with an optional expiry as an absolute unix time in
//! milliseconds. This module is that model and nothing more: plain `std` collections for
//! the values, one compact table per database ([`Db`], whose layout is explained in its
//! module), no encodings. How a strategy lays the data out in memory is its own business;
//! the RDB codec sees it through [`KeyspaceView`].
//!
//! Two invariants hold for every [`Keyspace`] and are kept by its methods:
//! - a collection is never empty (Redis deletes a key whose list, set, hash or sorted set
//!   becomes empty, and skips empty collections when it loads a dump);
//! - a sorted-set score is never NaN (Redis refuses NaN scores on `ZADD` and on load).

use std::collections::{HashMap, HashSet, VecDeque};

mod db;
pub use db::Db;

/// Number of databases, as in Redis's default `databases 16`.
pub const DB_COUNT: usize = 16;

/// A key or any other binary-safe Redis string.
pub type Bytes = Vec<u8>;

/// A value with its optional expiry.
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    /// The value.
    pub value: Value,
    /// When the key expires, as unix time in milliseconds; `None` means it never does.
    pub expire_at_ms: Option<i64>,
}

impl Entry {
    /// An entry that never expires.
    pub fn new(value: Value) -> Self {
        Entry { value, expire_at_ms: None }
    }

    /// An entry that expires at `at_ms` (unix ms).
    pub fn expiring(value: Value, at_ms: i64) -> Self {
        Entry { value, expire_at_ms: Some(at_ms) }
    }

    /// Whether the key is logically gone at `now_ms` (unix ms): its expiry is at or before now.
    pub fn is_expired(&self, now_ms: i64) -> bool {
        self.expire_at_ms.is_some_and(|at| at <= now_ms)
    }
}

/// A Redis value.
///
/// An enum is as large as its largest variant, and every key's slot holds one: with the
/// collections inline (a `HashMap` is 48 bytes) a `Value` was 56 bytes, though most keys
/// are strings. Boxing the collections makes it 24, the string's `Vec` (the compiler keeps
/// the variant tag in the `Vec`'s capacity, which never uses its top bit); a collection
/// pays one more 8-byte pointer and allocation, small beside its elements.
/// Redis makes the same choice: every value is a pointer to a 16-byte `robj` (Redis
/// src/server.h), and a short string lives in the same allocation (src/object.c, embstr).
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// A string (binary safe; integers are strings too, as in Redis).
    String(Bytes),
    /// A list, head first.
    List(Box<VecDeque<Bytes>>),
    /// A set of distinct members.
    Set(Box<HashSet<Bytes>>),
    /// A hash: field -> value.
    Hash(Box<HashMap<Bytes, Bytes>>),
    /// A sorted set: member -> score. Scores are never NaN.
    ZSet(Box<HashMap<Bytes, f64>>),
    /// A value we carry without modelling it (a stream, or a hash with field expiries):
    /// its RDB type byte and the exact bytes that followed the key, re-emitted verbatim.
    Opaque(Box<Opaque>),
}

/// An RDB value carried verbatim: type byte plus payload.
///
/// Redis src/rdb.h lists the types; the ones we carry this way are the streams
/// (15, 19, 21 and Redis 8.6's 26) and the hashes with field expiry (22 to 25; a Valkey 9.0
/// hash with field expiries arrives as type 22).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Opaque {
    /// The RDB value type byte (Redis src/rdb.h, `RDB_TYPE_*`).
    pub rdb_type: u8,
    /// The serialized value exactly as it followed the key in the dump.
    pub payload: Bytes,
}

impl Value {
    /// The Redis type name, as `TYPE key` prints it (`string`, `list`, `set`, `hash`, `zset`,
    /// or `stream` / `hash` for opaque values).
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::String(_) => "string",
            Value::List(_) => "list",
            Value::Set(_) => "set",
            Value::Hash(_) => "hash",
            Value::ZSet(_) => "zset",
            Value::Opaque(o) => match o.rdb_type {
                15 | 19 | 21 | 26 => "stream",
                22..=25 => "hash",
                _ => "unknown",
            },
        }
    }

    /// Number of elements (members, fields, list items); 1 for a string; payload bytes for
    /// an opaque value.
    pub fn len(&self) -> usize {
        match self {
            Value::String(_) => 1,
            Value::List(l) => l.len(),
            Value::Set(s) => s.len(),
            Value::Hash(h) => h.len(),
            Value::ZSet(z) => z.len(),
            Value::Opaque(o) => o.payload.len(),
        }
    }

    /// True for a collection with no elements, which the model never stores.
    pub fn is_empty(&self) -> bool {
        match self {
            Value::String(_) => false,
            Value::Opaque(o) => o.payload.is_empty(),
            _ => self.len() == 0,
        }
    }

    /// Approximate heap bytes held by the value (payload bytes plus per-element vector
    /// headers); used to report memory figures, not for accounting exactness.
    pub fn heap_bytes(&self) -> usize {
        const VEC: usize = std::mem::size_of::<Vec<u8>>();
        match self {
            Value::String(s) => s.capacity(),
            Value::List(l) => l.iter().map(|e| e.capacity() + VEC).sum(),
            Value::Set(s) => s.iter().map(|e| e.capacity() + VEC + 8).sum(),
            Value::Hash(h) => h.iter().map(|(f, v)| f.capacity() + v.capacity() + 2 * VEC + 8).sum(),
            Value::ZSet(z) => z.keys().map(|m| m.capacity() + VEC + 16).sum(),
            Value::Opaque(o) => o.payload.capacity(),
        }
    }
}

/// Sixteen databases plus the function libraries a dump may carry.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Keyspace {
    dbs: [Db; DB_COUNT],
    /// Function library sources (Redis 7 `FUNCTION LOAD` payloads), carried verbatim.
    functions: Vec<Bytes>,
}

impl Keyspace {
    /// An empty keyspace.
    pub fn new() -> Self {
        Self::default()
    }

    /// Database `db`.
    ///
    /// # Panics
    /// If `db >= DB_COUNT`.
    pub fn db(&self, db: usize) -> &Db {
        &self.dbs[db]
    }

    /// Database `db`, mutable. Callers must keep the invariants (no empty collections,
    /// no NaN scores); [`Keyspace::insert`] does.
    ///
    /// # Panics
    /// If `db >= DB_COUNT`.
    pub fn db_mut(&mut self, db: usize) -> &mut Db {
        &mut self.dbs[db]
    }

    /// Store `entry` under `key` in `db`, replacing what was there. An empty collection
    /// removes the key instead, keeping the model's invariant.
    ///
    /// # Panics
    /// If `db >= DB_COUNT`.
    pub fn insert(&mut self, db: usize, key: Bytes, entry: Entry) -> Option<Entry> {
        if entry.value.is_empty() {
            return self.dbs[db].remove(&key);
        }
        self.dbs[db].insert(key, entry)
    }

    /// The entry under `key` in `db`, expired or not.
    pub fn get(&self, db: usize, key: &[u8]) -> Option<&Entry> {
        self.dbs.get(db)?.get(key)
    }

    /// Remove `key` from `db`.
    pub fn remove(&mut self, db: usize, key: &[u8]) -> Option<Entry> {
        self.dbs.get_mut(db)?.remove(key)
    }

    /// Total number of keys over all databases.
    pub fn len(&self) -> usize {
        self.dbs.iter().map(|d| d.len()).sum()
    }

    /// True when no database holds a key and there are no function libraries.
    pub fn is_empty(&self) -> bool {
        self.len() == 0 && self.functions.is_empty()
    }

    /// Every (db, key, entry), databases in order, keys in hash order.
    pub fn iter(&self) -> impl Iterator<Item = (usize, &Bytes, &Entry)> {
        self.dbs.iter().enumerate().flat_map(|(i, d)| d.iter().map(move |(k, e)| (i, k, e)))
    }

    /// Function library sources, in load order.
    pub fn functions(&self) -> &[Bytes] {
        &self.functions
    }

    /// Add a function library source (the payload of an RDB `FUNCTION2` opcode).
    pub fn add_function(&mut self, code: Bytes) {
        self.functions.push(code);
    }

    /// Remove every key from every database (function libraries stay, as with `FLUSHALL`
    /// in Redis 7, which leaves functions alone).
    pub fn clear_keys(&mut self) {
        for db in &mut self.dbs {
            db.clear();
        }
    }

    /// Approximate heap bytes of keys and values (see [`Value::heap_bytes`]).
    pub fn heap_bytes(&self) -> usize {
        self.iter().map(|(_, k, e)| k.capacity() + e.value.heap_bytes() + std::mem::size_of::<(Bytes, Entry)>()).sum()
    }
}

/// A borrowed view of one value, however a strategy stores it: what the RDB encoder
/// reads. Collections are iterators (with their length, which the encoding writes first),
/// so a strategy with persistent or sharded collections need not build a [`Value`].
pub enum ValueRef<'a> {
    /// A string.
    String(&'a [u8]),
    /// A list, head first.
    List(usize, Box<dyn Iterator<Item = &'a [u8]> + 'a>),
    /// A set's members, in any order.
    Set(usize, Box<dyn Iterator<Item = &'a [u8]> + 'a>),
    /// A hash's field/value pairs, in any order.
    Hash(usize, Box<dyn Iterator<Item = (&'a [u8], &'a [u8])> + 'a>),
    /// A sorted set's (member, score) pairs, in any order.
    ZSet(usize, Box<dyn Iterator<Item = (&'a [u8], f64)> + 'a>),
    /// An opaque value: RDB type byte and payload.
    Opaque(u8, &'a [u8]),
}

/// A borrowed view of an entry: its value and expiry (unix ms).
pub struct EntryRef<'a> {
    /// The value.
    pub value: ValueRef<'a>,
    /// Expiry in unix ms, if any.
    pub expire_at_ms: Option<i64>,
}

impl Entry {
    /// This entry as an [`EntryRef`].
    pub fn as_ref(&self) -> EntryRef<'_> {
        let value = match &self.value {
            Value::String(s) => ValueRef::String(s),
            Value::List(l) => ValueRef::List(l.len(), Box::new(l.iter().map(Vec::as_slice))),
            Value::Set(s) => ValueRef::Set(s.len(), Box::new(s.iter().map(Vec::as_slice))),
            Value::Hash(h) => ValueRef::Hash(h.len(), Box::new(h.iter().map(|(f, v)| (f.as_slice(), v.as_slice())))),
            Value::ZSet(z) => ValueRef::ZSet(z.len(), Box::new(z.iter().map(|(m, s)| (m.as_slice(), *s)))),
            Value::Opaque(o) => ValueRef::Opaque(o.rdb_type, &o.payload),
        };
        EntryRef { value, expire_at_ms: self.expire_at_ms }
    }
}

/// Read access to a keyspace laid out any way a strategy likes, which is all the RDB
/// encoder needs.
///
/// `entries(db)` may yield keys in any order; the encoder sorts them in canonical mode.
pub trait KeyspaceView {
    /// Number of keys in `db`.
    fn db_len(&self, db: usize) -> usize;
    /// Number of keys with an expiry in `db` (the RESIZEDB hint).
    fn db_expires(&self, db: usize) -> usize;
    /// Every key and entry of `db`, in any order.
    fn entries(&self, db: usize) -> Box<dyn Iterator<Item = (&[u8], EntryRef<'_>)> + '_>;
    /// Function library sources to write before the databases.
    fn functions(&self) -> &[Bytes] {
        &[]
    }
}

impl KeyspaceView for Keyspace {
    fn db_len(&self, db: usize) -> usize {
        self.dbs[db].len()
    }

    fn db_expires(&self, db: usize) -> usize {
        self.dbs[db].values().filter(|e| e.expire_at_ms.is_some()).count()
    }

    fn entries(&self, db: usize) -> Box<dyn Iterator<Item = (&[u8], EntryRef<'_>)> + '_> {
        Box::new(self.dbs[db].iter().map(|(k, e)| (k.as_slice(), e.as_ref())))
    }

    fn functions(&self) -> &[Bytes] {
        &self.functions
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Inserting an empty collection deletes the key, as Redis does.
    #[test]
    fn empty_collection_is_never_stored() {
        let mut ks = Keyspace::new();
        ks.insert(0, b"k".to_vec(), Entry::new(Value::String(b"v".to_vec())));
        ks.insert(0, b"k".to_vec(), Entry::new(Value::Set(Box::default())));
        assert!(ks.get(0, b"k").is_none());
        assert_eq!(ks.len(), 0);
    }

    /// An expiry equal to now counts as expired (Redis: `when <= now`).
    #[test]
    fn expiry_boundary() {
        let e = Entry::expiring(Value::String(vec![]), 1000);
        assert!(!e.is_expired(999));
        assert!(e.is_expired(1000));
    }
}
