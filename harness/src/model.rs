//! A reference model of the store, written independently of `snaplab_core`'s command
//! implementation: ordered `BTreeMap`s, no hashing, the simplest code that has Redis's
//! semantics for the commands the tests issue. Model-based tests apply the same writes to
//! a strategy and to this model and demand the same state.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};

use snaplab_core::{Bytes, Command, DB_COUNT, Entry, Keyspace, Value};

/// A value in the model.
#[derive(Clone, Debug, PartialEq)]
enum MValue {
    Str(Bytes),
    List(VecDeque<Bytes>),
    Set(BTreeSet<Bytes>),
    Hash(BTreeMap<Bytes, Bytes>),
    ZSet(BTreeMap<Bytes, f64>),
}

impl MValue {
    fn is_empty(&self) -> bool {
        match self {
            MValue::Str(_) => false,
            MValue::List(l) => l.is_empty(),
            MValue::Set(s) => s.is_empty(),
            MValue::Hash(h) => h.is_empty(),
            MValue::ZSet(z) => z.is_empty(),
        }
    }
}

/// The reference model: `(db, key) -> (value, expiry in unix ms)`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Model {
    keys: BTreeMap<(usize, Bytes), (MValue, Option<i64>)>,
}

/// What the model says a command does: `Ok(changed_something)` or a refusal.
pub type Outcome = Result<(), &'static str>;

impl Model {
    /// An empty model.
    pub fn new() -> Self {
        Self::default()
    }

    /// A model holding `ks` (collections and expiries copied; opaque values are not
    /// supported and panic, since the tests never generate them).
    ///
    /// # Panics
    /// On an opaque value.
    pub fn from_keyspace(ks: &Keyspace) -> Self {
        let mut m = Model::new();
        for (db, key, e) in ks.iter() {
            let v = match &e.value {
                Value::String(s) => MValue::Str(s.clone()),
                Value::List(l) => MValue::List((**l).clone()),
                Value::Set(s) => MValue::Set(s.iter().cloned().collect()),
                Value::Hash(h) => MValue::Hash(h.iter().map(|(f, v)| (f.clone(), v.clone())).collect()),
                Value::ZSet(z) => MValue::ZSet(z.iter().map(|(m, s)| (m.clone(), *s)).collect()),
                Value::Opaque(_) => panic!("the model does not hold opaque values"),
            };
            m.keys.insert((db, key.clone()), (v, e.expire_at_ms));
        }
        m
    }

    /// The model as a [`Keyspace`], for comparison with a strategy or a decoded dump.
    pub fn to_keyspace(&self) -> Keyspace {
        let mut ks = Keyspace::new();
        for ((db, key), (v, exp)) in &self.keys {
            let value = match v {
                MValue::Str(s) => Value::String(s.clone()),
                MValue::List(l) => Value::List(Box::new(l.clone())),
                MValue::Set(s) => Value::Set(Box::new(s.iter().cloned().collect::<HashSet<_>>())),
                MValue::Hash(h) => {
                    Value::Hash(Box::new(h.iter().map(|(f, v)| (f.clone(), v.clone())).collect::<HashMap<_, _>>()))
                }
                MValue::ZSet(z) => {
                    Value::ZSet(Box::new(z.iter().map(|(m, s)| (m.clone(), *s)).collect::<HashMap<_, _>>()))
                }
            };
            ks.insert(*db, key.clone(), Entry { value, expire_at_ms: *exp });
        }
        ks
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether the model holds no key.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Every key, in order.
    pub fn keys(&self) -> impl Iterator<Item = &(usize, Bytes)> {
        self.keys.keys()
    }

    /// Apply `cmd` at time `now_ms`, with Redis's semantics. A refusal changes nothing.
    ///
    /// # Errors
    /// The reason Redis would refuse it (`"WRONGTYPE"`, `"NaN score"`, `"no arguments"`,
    /// `"bad db"`).
    pub fn apply(&mut self, cmd: &Command, now_ms: i64) -> Outcome {
        if cmd.db().is_some_and(|db| db >= DB_COUNT) {
            return Err("bad db");
        }
        match cmd {
            Command::FlushDb { db } => {
                self.keys.retain(|(d, _), _| d != db);
                return Ok(());
            }
            Command::FlushAll => {
                self.keys.clear();
                return Ok(());
            }
            _ => {}
        }
        let slot = (cmd.db().unwrap_or(0), cmd.key().unwrap_or_default().to_vec());
        // A key whose expiry has passed no longer exists for writers (lazy expiry).
        if self.keys.get(&slot).is_some_and(|(_, exp)| exp.is_some_and(|at| at <= now_ms)) {
            self.keys.remove(&slot);
        }
        let current = self.keys.get(&slot).map(|(v, _)| v.clone());
        let fresh = current.is_none();
        let mut value = current;
        let mut expiry = self.keys.get(&slot).and_then(|(_, e)| *e);
        match cmd {
            Command::Set { value: v, expire_at_ms, .. } => {
                value = Some(MValue::Str(v.clone()));
                expiry = *expire_at_ms;
            }
            Command::Del { .. } => value = None,
            Command::PExpireAt { at_ms, .. } => {
                if value.is_some() {
                    if *at_ms <= now_ms {
                        value = None;
                    } else {
                        expiry = Some(*at_ms);
                    }
                }
            }
            Command::Persist { .. } => expiry = None,
            Command::LPush { elements, .. } | Command::RPush { elements, .. } => {
                if elements.is_empty() {
                    return Err("no arguments");
                }
                let mut l = match value {
                    None => VecDeque::new(),
                    Some(MValue::List(l)) => l,
                    Some(_) => return Err("WRONGTYPE"),
                };
                for e in elements {
                    if matches!(cmd, Command::LPush { .. }) {
                        l.push_front(e.clone());
                    } else {
                        l.push_back(e.clone());
                    }
                }
                value = Some(MValue::List(l));
            }
            Command::LPop { .. } => match value {
                Some(MValue::List(mut l)) => {
                    l.pop_front();
                    value = Some(MValue::List(l));
                }
                Some(_) => return Err("WRONGTYPE"),
                None => {}
            },
            Command::SAdd { members, .. } | Command::SRem { members, .. } => {
                if members.is_empty() {
                    return Err("no arguments");
                }
                let mut s = match value {
                    None => BTreeSet::new(),
                    Some(MValue::Set(s)) => s,
                    Some(_) => return Err("WRONGTYPE"),
                };
                for m in members {
                    if matches!(cmd, Command::SAdd { .. }) {
                        s.insert(m.clone());
                    } else {
                        s.remove(m);
                    }
                }
                value = Some(MValue::Set(s));
            }
            Command::HSet { pairs, .. } => {
                if pairs.is_empty() {
                    return Err("no arguments");
                }
                let mut h = match value {
                    None => BTreeMap::new(),
                    Some(MValue::Hash(h)) => h,
                    Some(_) => return Err("WRONGTYPE"),
                };
                for (f, v) in pairs {
                    h.insert(f.clone(), v.clone());
                }
                value = Some(MValue::Hash(h));
            }
            Command::HDel { fields, .. } => {
                if fields.is_empty() {
                    return Err("no arguments");
                }
                match value {
                    Some(MValue::Hash(mut h)) => {
                        for f in fields {
                            h.remove(f);
                        }
                        value = Some(MValue::Hash(h));
                    }
                    Some(_) => return Err("WRONGTYPE"),
                    None => {}
                }
            }
            Command::ZAdd { pairs, .. } => {
                if pairs.is_empty() {
                    return Err("no arguments");
                }
                if pairs.iter().any(|(s, _)| s.is_nan()) {
                    return Err("NaN score");
                }
                let mut z = match value {
                    None => BTreeMap::new(),
                    Some(MValue::ZSet(z)) => z,
                    Some(_) => return Err("WRONGTYPE"),
                };
                for (s, m) in pairs {
                    z.insert(m.clone(), *s);
                }
                value = Some(MValue::ZSet(z));
            }
            Command::ZRem { members, .. } => {
                if members.is_empty() {
                    return Err("no arguments");
                }
                match value {
                    Some(MValue::ZSet(mut z)) => {
                        for m in members {
                            z.remove(m);
                        }
                        value = Some(MValue::ZSet(z));
                    }
                    Some(_) => return Err("WRONGTYPE"),
                    None => {}
                }
            }
            Command::FlushDb { .. } | Command::FlushAll => unreachable!("handled above"),
        }
        // A new key starts without an expiry (only SET ... PXAT gives it one at birth).
        if fresh && !matches!(cmd, Command::Set { .. }) {
            expiry = None;
        }
        match value {
            Some(v) if !v.is_empty() => {
                self.keys.insert(slot, (v, expiry));
            }
            _ => {
                self.keys.remove(&slot);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The model and `Keyspace::apply` agree on a sequence touching every command,
    /// including refusals and deletes by emptying.
    #[test]
    fn agrees_with_core_semantics() {
        let k = |s: &str| s.as_bytes().to_vec();
        let cmds = vec![
            Command::RPush { db: 0, key: k("l"), elements: vec![k("a"), k("b")] },
            Command::LPush { db: 0, key: k("l"), elements: vec![k("c")] },
            Command::LPop { db: 0, key: k("l") },
            Command::SAdd { db: 1, key: k("l"), members: vec![k("x")] },
            Command::SAdd { db: 0, key: k("l"), members: vec![k("x")] },
            Command::HSet { db: 2, key: k("h"), pairs: vec![(k("f"), k("v"))] },
            Command::HDel { db: 2, key: k("h"), fields: vec![k("f")] },
            Command::ZAdd { db: 0, key: k("z"), pairs: vec![(1.5, k("m")), (f64::NAN, k("n"))] },
            Command::ZAdd { db: 0, key: k("z"), pairs: vec![(1.5, k("m"))] },
            Command::PExpireAt { db: 0, key: k("z"), at_ms: 4_102_444_800_000 },
            Command::Set { db: 0, key: k("s"), value: k("v"), expire_at_ms: Some(4_102_444_800_000) },
            Command::Persist { db: 0, key: k("s") },
            Command::PExpireAt { db: 1, key: k("l"), at_ms: 1 },
            Command::FlushDb { db: 2 },
        ];
        let (mut model, mut ks) = (Model::new(), Keyspace::new());
        for c in &cmds {
            assert_eq!(model.apply(c, 1000).is_ok(), ks.apply(c, 1000).is_ok(), "{c:?}");
            assert_eq!(model.to_keyspace(), ks, "after {c:?}");
        }
        assert_eq!(model.len(), 3);
    }
}
