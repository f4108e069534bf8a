//! Write commands and their Redis semantics, applied to a [`Keyspace`].
//!
//! Every strategy accepts the same [`Command`]s. Strategies that store a [`Keyspace`]
//! call [`Keyspace::apply`]; strategies with their own layout apply single-key commands
//! with [`apply_to_slot`], so the semantics live in one place.
//!
//! A refused command (wrong type, NaN score, bad database) changes nothing.

use std::collections::{HashMap, HashSet, VecDeque};

use crate::keyspace::{Bytes, DB_COUNT, Entry, Keyspace, Value};

/// A write, with the Redis command it mirrors.
#[derive(Clone, Debug, PartialEq)]
pub enum Command {
    /// `SET key value` (any old value and its expiry are replaced), or with `expire_at_ms`
    /// `SET key value PXAT ms`.
    Set {
        /// Database index, `0..16`.
        db: usize,
        /// The key.
        key: Bytes,
        /// The new string value.
        value: Bytes,
        /// Expiry as unix ms, if any.
        expire_at_ms: Option<i64>,
    },
    /// `DEL key`.
    Del {
        /// Database index.
        db: usize,
        /// The key.
        key: Bytes,
    },
    /// `PEXPIREAT key ms`; a time at or before now deletes the key, as in Redis.
    PExpireAt {
        /// Database index.
        db: usize,
        /// The key.
        key: Bytes,
        /// Expiry as unix ms.
        at_ms: i64,
    },
    /// `PERSIST key`.
    Persist {
        /// Database index.
        db: usize,
        /// The key.
        key: Bytes,
    },
    /// `LPUSH key e1 e2 ...` (each element pushed at the head in turn).
    LPush {
        /// Database index.
        db: usize,
        /// The key.
        key: Bytes,
        /// Elements, at least one.
        elements: Vec<Bytes>,
    },
    /// `RPUSH key e1 e2 ...`.
    RPush {
        /// Database index.
        db: usize,
        /// The key.
        key: Bytes,
        /// Elements, at least one.
        elements: Vec<Bytes>,
    },
    /// `LPOP key`.
    LPop {
        /// Database index.
        db: usize,
        /// The key.
        key: Bytes,
    },
    /// `SADD key m1 m2 ...`.
    SAdd {
        /// Database index.
        db: usize,
        /// The key.
        key: Bytes,
        /// Members, at least one.
        members: Vec<Bytes>,
    },
    /// `SREM key m1 m2 ...`.
    SRem {
        /// Database index.
        db: usize,
        /// The key.
        key: Bytes,
        /// Members, at least one.
        members: Vec<Bytes>,
    },
    /// `HSET key f1 v1 f2 v2 ...`.
    HSet {
        /// Database index.
        db: usize,
        /// The key.
        key: Bytes,
        /// Field/value pairs, at least one.
        pairs: Vec<(Bytes, Bytes)>,
    },
    /// `HDEL key f1 f2 ...`.
    HDel {
        /// Database index.
        db: usize,
        /// The key.
        key: Bytes,
        /// Fields, at least one.
        fields: Vec<Bytes>,
    },
    /// `ZADD key s1 m1 s2 m2 ...`.
    ZAdd {
        /// Database index.
        db: usize,
        /// The key.
        key: Bytes,
        /// (score, member) pairs, at least one; NaN scores are refused.
        pairs: Vec<(f64, Bytes)>,
    },
    /// `ZREM key m1 m2 ...`.
    ZRem {
        /// Database index.
        db: usize,
        /// The key.
        key: Bytes,
        /// Members, at least one.
        members: Vec<Bytes>,
    },
    /// `FLUSHDB` on database `db`.
    FlushDb {
        /// Database index.
        db: usize,
    },
    /// `FLUSHALL`.
    FlushAll,
}

impl Command {
    /// The database the command addresses (`None` for `FLUSHALL`).
    pub fn db(&self) -> Option<usize> {
        match self {
            Command::Set { db, .. }
            | Command::Del { db, .. }
            | Command::PExpireAt { db, .. }
            | Command::Persist { db, .. }
            | Command::LPush { db, .. }
            | Command::RPush { db, .. }
            | Command::LPop { db, .. }
            | Command::SAdd { db, .. }
            | Command::SRem { db, .. }
            | Command::HSet { db, .. }
            | Command::HDel { db, .. }
            | Command::ZAdd { db, .. }
            | Command::ZRem { db, .. }
            | Command::FlushDb { db } => Some(*db),
            Command::FlushAll => None,
        }
    }

    /// The key the command addresses (`None` for `FLUSHDB` and `FLUSHALL`).
    pub fn key(&self) -> Option<&[u8]> {
        match self {
            Command::Set { key, .. }
            | Command::Del { key, .. }
            | Command::PExpireAt { key, .. }
            | Command::Persist { key, .. }
            | Command::LPush { key, .. }
            | Command::RPush { key, .. }
            | Command::LPop { key, .. }
            | Command::SAdd { key, .. }
            | Command::SRem { key, .. }
            | Command::HSet { key, .. }
            | Command::HDel { key, .. }
            | Command::ZAdd { key, .. }
            | Command::ZRem { key, .. } => Some(key),
            Command::FlushDb { .. } | Command::FlushAll => None,
        }
    }

    /// The Redis command name (`"SET"`, `"ZADD"`, ...).
    pub fn name(&self) -> &'static str {
        match self {
            Command::Set { .. } => "SET",
            Command::Del { .. } => "DEL",
            Command::PExpireAt { .. } => "PEXPIREAT",
            Command::Persist { .. } => "PERSIST",
            Command::LPush { .. } => "LPUSH",
            Command::RPush { .. } => "RPUSH",
            Command::LPop { .. } => "LPOP",
            Command::SAdd { .. } => "SADD",
            Command::SRem { .. } => "SREM",
            Command::HSet { .. } => "HSET",
            Command::HDel { .. } => "HDEL",
            Command::ZAdd { .. } => "ZADD",
            Command::ZRem { .. } => "ZREM",
            Command::FlushDb { .. } => "FLUSHDB",
            Command::FlushAll => "FLUSHALL",
        }
    }
}

/// What a command returned, as Redis would reply.
#[derive(Clone, Debug, PartialEq)]
pub enum Reply {
    /// `+OK`.
    Ok,
    /// An integer reply (counts, lengths, 0/1 flags).
    Int(i64),
    /// A bulk string reply.
    Bulk(Bytes),
    /// The nil reply.
    Nil,
}

/// Why a command was refused. The store is unchanged after a refusal.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CommandError {
    /// Redis: "WRONGTYPE Operation against a key holding the wrong kind of value".
    #[error("WRONGTYPE {command} against key {key} in db {db}, which holds a {found}")]
    WrongType {
        /// The command name.
        command: &'static str,
        /// The database.
        db: usize,
        /// The key, escaped for printing.
        key: String,
        /// The type the key holds.
        found: &'static str,
    },
    /// The database index is not in `0..16`.
    #[error("database {0} is out of range (there are {DB_COUNT})")]
    DbOutOfRange(usize),
    /// Redis: "ERR resulting score is not a number (NaN)".
    #[error("ZADD score for key {key} is NaN")]
    NanScore {
        /// The key, escaped.
        key: String,
    },
    /// A variadic command given no elements (Redis: "wrong number of arguments").
    #[error("{0} needs at least one element")]
    NoArguments(&'static str),
    /// The store refuses writes: a snapshot rule is configured and the last save failed
    /// (Redis: "MISCONF ... commands that may modify the data set are disabled").
    #[error("MISCONF writes are refused because the last save failed: {0}")]
    Misconf(String),
}

/// Escape a key for messages: printable ASCII as is, other bytes as `\xNN`.
pub fn escape(key: &[u8]) -> String {
    key.escape_ascii().to_string()
}

/// What applying a single-key command does to the key's slot.
#[derive(Debug)]
pub enum SlotChange {
    /// The slot's entry was modified in place (or the command was a no-op).
    Kept,
    /// The key must now hold this new entry (it did not exist, or was replaced).
    Put(Entry),
    /// The key must be removed.
    Remove,
}

/// Apply a single-key command to the entry currently stored for its key.
///
/// `slot` is the current entry, if any (expired entries included: this function treats
/// an entry expired at `now_ms` as absent, as Redis's `lookupKeyWrite` does). Returns the
/// reply and what the caller must do to the slot. On error nothing was modified.
///
/// # Panics
/// If called with `FLUSHDB` or `FLUSHALL`, which are not single-key commands.
pub fn apply_to_slot(
    cmd: &Command,
    slot: Option<&mut Entry>,
    now_ms: i64,
) -> Result<(Reply, SlotChange), CommandError> {
    let expired = slot.as_ref().is_some_and(|e| e.is_expired(now_ms));
    // An expired key is gone for writers; if the command leaves nothing in its place the
    // stale entry must still be removed.
    let gone = if expired { SlotChange::Remove } else { SlotChange::Kept };
    let slot = if expired { None } else { slot };
    let key = cmd.key().expect("apply_to_slot takes single-key commands");
    let wrong = |found: &Value| CommandError::WrongType {
        command: cmd.name(),
        db: cmd.db().unwrap_or(0),
        key: escape(key),
        found: found.type_name(),
    };

    Ok(match cmd {
        Command::Set { value, expire_at_ms, .. } => {
            let entry = Entry { value: Value::String(value.clone()), expire_at_ms: *expire_at_ms };
            (Reply::Ok, SlotChange::Put(entry))
        }
        Command::Del { .. } => match slot {
            Some(_) => (Reply::Int(1), SlotChange::Remove),
            None => (Reply::Int(0), gone),
        },
        Command::PExpireAt { at_ms, .. } => match slot {
            Some(_) if *at_ms <= now_ms => (Reply::Int(1), SlotChange::Remove),
            Some(e) => {
                e.expire_at_ms = Some(*at_ms);
                (Reply::Int(1), SlotChange::Kept)
            }
            None => (Reply::Int(0), gone),
        },
        Command::Persist { .. } => match slot {
            Some(e) if e.expire_at_ms.is_some() => {
                e.expire_at_ms = None;
                (Reply::Int(1), SlotChange::Kept)
            }
            _ => (Reply::Int(0), gone),
        },
        Command::LPush { elements, .. } | Command::RPush { elements, .. } => {
            if elements.is_empty() {
                return Err(CommandError::NoArguments(cmd.name()));
            }
            let head = matches!(cmd, Command::LPush { .. });
            let push = |list: &mut VecDeque<Bytes>| {
                for e in elements {
                    if head {
                        list.push_front(e.clone());
                    } else {
                        list.push_back(e.clone());
                    }
                }
                list.len() as i64
            };
            match slot {
                Some(Entry { value: Value::List(list), .. }) => (Reply::Int(push(list)), SlotChange::Kept),
                Some(e) => return Err(wrong(&e.value)),
                None => {
                    let mut list = VecDeque::new();
                    let n = push(&mut list);
                    (Reply::Int(n), SlotChange::Put(Entry::new(Value::List(Box::new(list)))))
                }
            }
        }
        Command::LPop { .. } => match slot {
            Some(Entry { value: Value::List(list), .. }) => {
                let popped = list.pop_front().map_or(Reply::Nil, Reply::Bulk);
                let change = if list.is_empty() { SlotChange::Remove } else { SlotChange::Kept };
                (popped, change)
            }
            Some(e) => return Err(wrong(&e.value)),
            None => (Reply::Nil, gone),
        },
        Command::SAdd { members, .. } => {
            if members.is_empty() {
                return Err(CommandError::NoArguments(cmd.name()));
            }
            let add = |set: &mut HashSet<Bytes>| members.iter().filter(|m| set.insert((*m).clone())).count() as i64;
            match slot {
                Some(Entry { value: Value::Set(set), .. }) => (Reply::Int(add(set)), SlotChange::Kept),
                Some(e) => return Err(wrong(&e.value)),
                None => {
                    let mut set = HashSet::new();
                    let n = add(&mut set);
                    (Reply::Int(n), SlotChange::Put(Entry::new(Value::Set(Box::new(set)))))
                }
            }
        }
        Command::SRem { members, .. } => {
            if members.is_empty() {
                return Err(CommandError::NoArguments(cmd.name()));
            }
            match slot {
                Some(Entry { value: Value::Set(set), .. }) => {
                    let n = members.iter().filter(|m| set.remove(m.as_slice())).count() as i64;
                    (Reply::Int(n), if set.is_empty() { SlotChange::Remove } else { SlotChange::Kept })
                }
                Some(e) => return Err(wrong(&e.value)),
                None => (Reply::Int(0), gone),
            }
        }
        Command::HSet { pairs, .. } => {
            if pairs.is_empty() {
                return Err(CommandError::NoArguments(cmd.name()));
            }
            let set = |hash: &mut HashMap<Bytes, Bytes>| {
                pairs.iter().filter(|(f, v)| hash.insert(f.clone(), v.clone()).is_none()).count() as i64
            };
            match slot {
                Some(Entry { value: Value::Hash(hash), .. }) => (Reply::Int(set(hash)), SlotChange::Kept),
                Some(e) => return Err(wrong(&e.value)),
                None => {
                    let mut hash = HashMap::new();
                    let n = set(&mut hash);
                    (Reply::Int(n), SlotChange::Put(Entry::new(Value::Hash(Box::new(hash)))))
                }
            }
        }
        Command::HDel { fields, .. } => {
            if fields.is_empty() {
                return Err(CommandError::NoArguments(cmd.name()));
            }
            match slot {
                Some(Entry { value: Value::Hash(hash), .. }) => {
                    let n = fields.iter().filter(|f| hash.remove(f.as_slice()).is_some()).count() as i64;
                    (Reply::Int(n), if hash.is_empty() { SlotChange::Remove } else { SlotChange::Kept })
                }
                Some(e) => return Err(wrong(&e.value)),
                None => (Reply::Int(0), gone),
            }
        }
        Command::ZAdd { pairs, .. } => {
            if pairs.is_empty() {
                return Err(CommandError::NoArguments(cmd.name()));
            }
            // Check every score before touching the set, so a refusal changes nothing.
            if pairs.iter().any(|(s, _)| s.is_nan()) {
                return Err(CommandError::NanScore { key: escape(key) });
            }
            let add = |zset: &mut HashMap<Bytes, f64>| {
                pairs.iter().filter(|(s, m)| zset.insert(m.clone(), *s).is_none()).count() as i64
            };
            match slot {
                Some(Entry { value: Value::ZSet(zset), .. }) => (Reply::Int(add(zset)), SlotChange::Kept),
                Some(e) => return Err(wrong(&e.value)),
                None => {
                    let mut zset = HashMap::new();
                    let n = add(&mut zset);
                    (Reply::Int(n), SlotChange::Put(Entry::new(Value::ZSet(Box::new(zset)))))
                }
            }
        }
        Command::ZRem { members, .. } => {
            if members.is_empty() {
                return Err(CommandError::NoArguments(cmd.name()));
            }
            match slot {
                Some(Entry { value: Value::ZSet(zset), .. }) => {
                    let n = members.iter().filter(|m| zset.remove(m.as_slice()).is_some()).count() as i64;
                    (Reply::Int(n), if zset.is_empty() { SlotChange::Remove } else { SlotChange::Kept })
                }
                Some(e) => return Err(wrong(&e.value)),
                None => (Reply::Int(0), gone),
            }
        }
        Command::FlushDb { .. } | Command::FlushAll => {
            unreachable!("cmd.key() returned Some, so this is a single-key command")
        }
    })
}

impl Keyspace {
    /// Apply `cmd` with Redis semantics at time `now_ms` (unix ms, used for lazy expiry).
    ///
    /// # Errors
    /// [`CommandError`] when the command is refused; the keyspace is then unchanged.
    pub fn apply(&mut self, cmd: &Command, now_ms: i64) -> Result<Reply, CommandError> {
        if let Some(db) = cmd.db()
            && db >= DB_COUNT
        {
            return Err(CommandError::DbOutOfRange(db));
        }
        match cmd {
            Command::FlushDb { db } => {
                self.db_mut(*db).clear();
                Ok(Reply::Ok)
            }
            Command::FlushAll => {
                self.clear_keys();
                Ok(Reply::Ok)
            }
            _ => {
                let db = cmd.db().unwrap_or(0);
                let key = cmd.key().unwrap_or_default();
                let (reply, change) = apply_to_slot(cmd, self.db_mut(db).get_mut(key), now_ms)?;
                match change {
                    SlotChange::Kept => {}
                    SlotChange::Put(entry) => {
                        self.insert(db, key.to_vec(), entry);
                    }
                    SlotChange::Remove => {
                        self.remove(db, key);
                    }
                }
                Ok(reply)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &str) -> Bytes {
        v.as_bytes().to_vec()
    }

    /// A refused command (wrong type) leaves the keyspace exactly as it was.
    #[test]
    fn wrongtype_changes_nothing() {
        let mut ks = Keyspace::new();
        ks.apply(&Command::Set { db: 0, key: s("k"), value: s("v"), expire_at_ms: None }, 0).unwrap();
        let before = ks.clone();
        let err = ks.apply(&Command::SAdd { db: 0, key: s("k"), members: vec![s("m")] }, 0).unwrap_err();
        assert!(matches!(err, CommandError::WrongType { found: "string", .. }));
        assert_eq!(ks, before);
    }

    /// A NaN anywhere in a ZADD refuses the whole command.
    #[test]
    fn zadd_nan_refused_atomically() {
        let mut ks = Keyspace::new();
        let cmd = Command::ZAdd { db: 0, key: s("z"), pairs: vec![(1.0, s("a")), (f64::NAN, s("b"))] };
        assert!(ks.apply(&cmd, 0).is_err());
        assert!(ks.get(0, b"z").is_none());
    }

    /// Removing the last member deletes the key; writing to an expired key starts afresh.
    #[test]
    fn emptied_and_expired_keys() {
        let mut ks = Keyspace::new();
        ks.apply(&Command::SAdd { db: 1, key: s("s"), members: vec![s("a")] }, 0).unwrap();
        ks.apply(&Command::SRem { db: 1, key: s("s"), members: vec![s("a")] }, 0).unwrap();
        assert!(ks.get(1, b"s").is_none());

        ks.apply(&Command::RPush { db: 0, key: s("l"), elements: vec![s("x")] }, 0).unwrap();
        ks.apply(&Command::PExpireAt { db: 0, key: s("l"), at_ms: 100 }, 0).unwrap();
        let r = ks.apply(&Command::RPush { db: 0, key: s("l"), elements: vec![s("y")] }, 200).unwrap();
        assert_eq!(r, Reply::Int(1), "the expired list is gone, so the push starts a new one");
        assert_eq!(ks.get(0, b"l").unwrap().expire_at_ms, None);
    }

    /// LPUSH pushes each element at the head in turn, like Redis (`LPUSH l a b` gives b, a).
    #[test]
    fn lpush_order() {
        let mut ks = Keyspace::new();
        ks.apply(&Command::LPush { db: 0, key: s("l"), elements: vec![s("a"), s("b")] }, 0).unwrap();
        let Value::List(l) = &ks.get(0, b"l").unwrap().value else { panic!("not a list") };
        assert_eq!(l.iter().cloned().collect::<Vec<_>>(), vec![s("b"), s("a")]);
    }
}
