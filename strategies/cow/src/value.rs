//! Values whose collections are persistent too, and the write commands applied to them.
//!
//! Why persistent collections inside values, rather than copying a collection on its first
//! write after a snapshot: a snapshot shares every value with the live store. With plain
//! collections, the first `HSET` to a million-field hash during a save would copy the whole
//! hash; here it copies one path of the hash's own trie, a few hundred bytes. Strings and
//! opaque payloads sit behind an `Arc`, so a shared entry is cloned by bumping counters.
//!
//! | Redis type | held as |
//! |---|---|
//! | string | `Arc<[u8]>` |
//! | list | `Arc<imbl::Vector>` (RRB tree: O(1) clone, cheap pushes and pops at both ends) |
//! | set | `Arc<rpds::HashTrieSetSync>` |
//! | hash | `Arc<rpds::HashTrieMapSync>` field -> value |
//! | sorted set | `Arc<rpds::HashTrieMapSync>` member -> score |
//!
//! Why the collections sit behind an `Arc` of their own: an entry is stored inline in its
//! trie leaf, and every string entry would otherwise be as large as the largest collection
//! (`imbl::Vector` is 64 bytes, which made an entry 80). Behind an `Arc`, every variant is
//! one pointer (two for the `[u8]` slices), an entry is 40 bytes, and cloning one still only
//! bumps a count. A write to a shared collection goes through `Arc::make_mut`, which clones
//! the collection's root (O(1), structurally shared) and then path-copies inside it.
//!
//! The command semantics are `snaplab_core::command`'s (the conformance suite checks both
//! against one reference model); they are written again here because they act on these
//! types without converting them, which would copy.

use std::sync::Arc;

use rpds::{HashTrieMapSync, HashTrieSetSync};

use crate::trie::Trie;
use snaplab_core::{Bytes, Command, CommandError, Entry, EntryRef, Opaque, Reply, Value, ValueRef, escape};

// ANCHOR: cow_value
/// One database: key -> entry, structurally shared between the live store and snapshots.
pub type CowDb = Trie<CowEntry>;

/// A value whose clone is O(1).
#[derive(Clone, Debug)]
pub enum CowValue {
    /// A string.
    String(Arc<[u8]>),
    /// A list, head first.
    List(Arc<imbl::Vector<Bytes>>),
    /// A set.
    Set(Arc<HashTrieSetSync<Bytes>>),
    /// A hash.
    Hash(Arc<HashTrieMapSync<Bytes, Bytes>>),
    /// A sorted set: member -> score.
    ZSet(Arc<HashTrieMapSync<Bytes, f64>>),
    /// A value carried verbatim.
    Opaque(Arc<Opaque>),
}
// ANCHOR_END: cow_value

/// A value and its expiry (unix ms). 40 bytes: a 24-byte value (tag + the widest
/// variant, a `[u8]` slice's pointer and length) and a 16-byte optional expiry.
#[derive(Clone, Debug)]
pub struct CowEntry {
    /// The value.
    pub value: CowValue,
    /// Expiry, unix ms.
    pub expire_at_ms: Option<i64>,
}

// Every trie leaf holds its entries inline: a larger entry costs bytes for every key.
const _: () = assert!(std::mem::size_of::<CowEntry>() <= 40);

impl CowValue {
    fn type_name(&self) -> &'static str {
        match self {
            CowValue::String(_) => "string",
            CowValue::List(_) => "list",
            CowValue::Set(_) => "set",
            CowValue::Hash(_) => "hash",
            CowValue::ZSet(_) => "zset",
            CowValue::Opaque(_) => "opaque",
        }
    }

    fn is_empty(&self) -> bool {
        match self {
            CowValue::String(_) | CowValue::Opaque(_) => false,
            CowValue::List(l) => l.is_empty(),
            CowValue::Set(s) => s.is_empty(),
            CowValue::Hash(h) => h.is_empty(),
            CowValue::ZSet(z) => z.is_empty(),
        }
    }
}

impl CowEntry {
    /// Build from the model's entry.
    pub fn from_entry(e: Entry) -> Self {
        let value = match e.value {
            Value::String(s) => CowValue::String(s.into()),
            Value::List(l) => CowValue::List(Arc::new((*l).into_iter().collect())),
            Value::Set(s) => CowValue::Set(Arc::new((*s).into_iter().collect())),
            Value::Hash(h) => CowValue::Hash(Arc::new((*h).into_iter().collect())),
            Value::ZSet(z) => CowValue::ZSet(Arc::new((*z).into_iter().collect())),
            Value::Opaque(o) => CowValue::Opaque(Arc::new(*o)),
        };
        CowEntry { value, expire_at_ms: e.expire_at_ms }
    }

    /// Copy out as the model's entry.
    pub fn to_entry(&self) -> Entry {
        let value = match &self.value {
            CowValue::String(s) => Value::String(s.to_vec()),
            CowValue::List(l) => Value::List(Box::new(l.iter().cloned().collect())),
            CowValue::Set(s) => Value::Set(Box::new(s.iter().cloned().collect())),
            CowValue::Hash(h) => Value::Hash(Box::new(h.iter().map(|(f, v)| (f.clone(), v.clone())).collect())),
            CowValue::ZSet(z) => Value::ZSet(Box::new(z.iter().map(|(m, s)| (m.clone(), *s)).collect())),
            CowValue::Opaque(o) => Value::Opaque(Box::new((**o).clone())),
        };
        Entry { value, expire_at_ms: self.expire_at_ms }
    }

    /// A borrowed view for the RDB encoder.
    pub fn as_ref(&self) -> EntryRef<'_> {
        let value = match &self.value {
            CowValue::String(s) => ValueRef::String(s),
            CowValue::List(l) => ValueRef::List(l.len(), Box::new(l.iter().map(Vec::as_slice))),
            CowValue::Set(s) => ValueRef::Set(s.size(), Box::new(s.iter().map(Vec::as_slice))),
            CowValue::Hash(h) => {
                ValueRef::Hash(h.size(), Box::new(h.iter().map(|(f, v)| (f.as_slice(), v.as_slice()))))
            }
            CowValue::ZSet(z) => ValueRef::ZSet(z.size(), Box::new(z.iter().map(|(m, s)| (m.as_slice(), *s)))),
            CowValue::Opaque(o) => ValueRef::Opaque(o.rdb_type, &o.payload),
        };
        EntryRef { value, expire_at_ms: self.expire_at_ms }
    }

    fn is_expired(&self, now_ms: i64) -> bool {
        self.expire_at_ms.is_some_and(|at| at <= now_ms)
    }
}

fn new_entry(value: CowValue) -> CowEntry {
    CowEntry { value, expire_at_ms: None }
}

/// Apply a single-key command to `db` with Redis semantics (as
/// `snaplab_core::apply_to_slot`): a key expired at `now_ms` counts as absent, a refusal
/// changes nothing, an emptied collection deletes its key.
///
/// # Errors
/// [`CommandError`] when refused.
///
/// # Panics
/// On `FLUSHDB`/`FLUSHALL`, which the caller handles.
pub fn apply(db: &mut CowDb, cmd: &Command, now_ms: i64) -> Result<Reply, CommandError> {
    let key = cmd.key().expect("single-key command");
    let stored = db.get(key);
    let expired = stored.is_some_and(|e| e.is_expired(now_ms));
    let live = if expired { None } else { stored };
    let wrong = |e: &CowEntry| CommandError::WrongType {
        command: cmd.name(),
        db: cmd.db().unwrap_or(0),
        key: escape(key),
        found: e.value.type_name(),
    };
    let nonempty = |n: usize| if n == 0 { Err(CommandError::NoArguments(cmd.name())) } else { Ok(()) };

    // Validate against the live entry before touching anything.
    match (cmd, live) {
        (Command::LPush { elements, .. } | Command::RPush { elements, .. }, e) => {
            nonempty(elements.len())?;
            if let Some(e) = e.filter(|e| !matches!(e.value, CowValue::List(_))) {
                return Err(wrong(e));
            }
        }
        (Command::LPop { .. }, Some(e)) if !matches!(e.value, CowValue::List(_)) => return Err(wrong(e)),
        (Command::SAdd { members, .. } | Command::SRem { members, .. }, e) => {
            nonempty(members.len())?;
            if let Some(e) = e.filter(|e| !matches!(e.value, CowValue::Set(_))) {
                return Err(wrong(e));
            }
        }
        (Command::HSet { pairs, .. }, e) => {
            nonempty(pairs.len())?;
            if let Some(e) = e.filter(|e| !matches!(e.value, CowValue::Hash(_))) {
                return Err(wrong(e));
            }
        }
        (Command::HDel { fields, .. }, e) => {
            nonempty(fields.len())?;
            if let Some(e) = e.filter(|e| !matches!(e.value, CowValue::Hash(_))) {
                return Err(wrong(e));
            }
        }
        (Command::ZAdd { pairs, .. }, e) => {
            nonempty(pairs.len())?;
            if pairs.iter().any(|(s, _)| s.is_nan()) {
                return Err(CommandError::NanScore { key: escape(key) });
            }
            if let Some(e) = e.filter(|e| !matches!(e.value, CowValue::ZSet(_))) {
                return Err(wrong(e));
            }
        }
        (Command::ZRem { members, .. }, e) => {
            nonempty(members.len())?;
            if let Some(e) = e.filter(|e| !matches!(e.value, CowValue::ZSet(_))) {
                return Err(wrong(e));
            }
        }
        _ => {}
    }
    let exists = live.is_some();
    let has_expiry = live.is_some_and(|e| e.expire_at_ms.is_some());
    if expired {
        // Lazy expiry: the stale entry goes before the command acts (Redis expireIfNeeded).
        db.remove(key);
    }

    // ANCHOR: entry_mut
    // Mutate in place: `get_mut` copies the path (and the entry, whose clone is O(1)) only
    // where a snapshot still shares it.
    fn entry<'a>(db: &'a mut CowDb, key: &[u8]) -> &'a mut CowEntry {
        db.get_mut(key).expect("validated above: the key exists")
    }
    // ANCHOR_END: entry_mut
    let reply = match cmd {
        Command::Set { value, expire_at_ms, .. } => {
            db.insert(key, CowEntry { value: CowValue::String(value.as_slice().into()), expire_at_ms: *expire_at_ms });
            Reply::Ok
        }
        Command::Del { .. } => Reply::Int(i64::from(exists && db.remove(key).is_some())),
        Command::PExpireAt { at_ms, .. } => {
            if !exists {
                Reply::Int(0)
            } else if *at_ms <= now_ms {
                db.remove(key);
                Reply::Int(1)
            } else {
                entry(db, key).expire_at_ms = Some(*at_ms);
                Reply::Int(1)
            }
        }
        Command::Persist { .. } => {
            if has_expiry {
                entry(db, key).expire_at_ms = None;
                Reply::Int(1)
            } else {
                Reply::Int(0)
            }
        }
        Command::LPush { elements, .. } | Command::RPush { elements, .. } => {
            if !exists {
                db.insert(key, new_entry(CowValue::List(Arc::default())));
            }
            let CowValue::List(list) = &mut entry(db, key).value else { unreachable!("validated as a list") };
            let list = Arc::make_mut(list);
            for e in elements {
                if matches!(cmd, Command::LPush { .. }) {
                    list.push_front(e.clone());
                } else {
                    list.push_back(e.clone());
                }
            }
            Reply::Int(list.len() as i64)
        }
        Command::LPop { .. } => {
            if !exists {
                Reply::Nil
            } else {
                let CowValue::List(list) = &mut entry(db, key).value else { unreachable!("validated as a list") };
                Arc::make_mut(list).pop_front().map_or(Reply::Nil, Reply::Bulk)
            }
        }
        Command::SAdd { members, .. } => {
            if !exists {
                db.insert(key, new_entry(CowValue::Set(Arc::new(HashTrieSetSync::new_sync()))));
            }
            let CowValue::Set(set) = &mut entry(db, key).value else { unreachable!("validated as a set") };
            let set = Arc::make_mut(set);
            let mut added = 0;
            for m in members {
                if !set.contains(m) {
                    set.insert_mut(m.clone());
                    added += 1;
                }
            }
            Reply::Int(added)
        }
        Command::SRem { members, .. } => {
            if !exists {
                Reply::Int(0)
            } else {
                let CowValue::Set(set) = &mut entry(db, key).value else { unreachable!("validated as a set") };
                let set = Arc::make_mut(set);
                Reply::Int(members.iter().filter(|m| set.remove_mut(m.as_slice())).count() as i64)
            }
        }
        // ANCHOR: hset
        Command::HSet { pairs, .. } => {
            if !exists {
                db.insert(key, new_entry(CowValue::Hash(Arc::new(HashTrieMapSync::new_sync()))));
            }
            let CowValue::Hash(hash) = &mut entry(db, key).value else { unreachable!("validated as a hash") };
            let hash = Arc::make_mut(hash);
            let mut added = 0;
            for (f, v) in pairs {
                if !hash.contains_key(f) {
                    added += 1;
                }
                hash.insert_mut(f.clone(), v.clone());
            }
            Reply::Int(added)
        }
        // ANCHOR_END: hset
        Command::HDel { fields, .. } => {
            if !exists {
                Reply::Int(0)
            } else {
                let CowValue::Hash(hash) = &mut entry(db, key).value else { unreachable!("validated as a hash") };
                let hash = Arc::make_mut(hash);
                Reply::Int(fields.iter().filter(|f| hash.remove_mut(f.as_slice())).count() as i64)
            }
        }
        Command::ZAdd { pairs, .. } => {
            if !exists {
                db.insert(key, new_entry(CowValue::ZSet(Arc::new(HashTrieMapSync::new_sync()))));
            }
            let CowValue::ZSet(zset) = &mut entry(db, key).value else { unreachable!("validated as a sorted set") };
            let zset = Arc::make_mut(zset);
            let mut added = 0;
            for (s, m) in pairs {
                if !zset.contains_key(m) {
                    added += 1;
                }
                zset.insert_mut(m.clone(), *s);
            }
            Reply::Int(added)
        }
        Command::ZRem { members, .. } => {
            if !exists {
                Reply::Int(0)
            } else {
                let CowValue::ZSet(zset) = &mut entry(db, key).value else { unreachable!("validated as a sorted set") };
                let zset = Arc::make_mut(zset);
                Reply::Int(members.iter().filter(|m| zset.remove_mut(m.as_slice())).count() as i64)
            }
        }
        Command::FlushDb { .. } | Command::FlushAll => unreachable!("handled by the caller"),
    };
    // Redis deletes a key whose collection became empty.
    if db.get(key).is_some_and(|e| e.value.is_empty()) {
        db.remove(key);
    }
    Ok(reply)
}
