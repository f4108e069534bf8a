//! [`Db`]: one database's table, laid out compactly.
//!
//! The layout is the lesson. A `HashMap<Bytes, Entry>` (hashbrown, a SwissTable) keeps its
//! `(key, entry)` pairs in the table's buckets, and a table grows when 7/8 of its buckets
//! are full, so it holds between 7/16 and 7/8 of a key per bucket: at 1,000,000 keys (just
//! past 7/8 of 2^20) it has 2^21 buckets, every one a full-size slot, more than half of
//! them empty. The slots of the empty half cost as much as the full ones.
//!
//! This table splits the two, as CPython's dict has since 3.6 (Objects/dictobject.c, "compact
//! dict"): the pairs sit densely in one vector, and the hash table holds only a 4-byte index
//! into it per bucket. The empty buckets then cost 5 bytes each (index and control byte)
//! instead of a slot's size; the vector grows by doubling, and its unused tail is never
//! written, so the kernel does not back it with memory. Redis makes the same trade with
//! pointers: its buckets are 8-byte pointers to `dictEntry`s allocated one per key (Redis
//! src/dict.c). The hash of a key is not stored: growing the index table hashes every key
//! again, which costs time once per doubling and saves 8 bytes per key always.
//!
//! Removing a key moves the last pair into its place (O(1)) and repoints that pair's
//! index, so iteration order is neither insertion order nor stable; nothing may rely on it
//! (the RDB encoder sorts keys in canonical mode). Equality ignores order.

use std::collections::hash_map::RandomState;
use std::fmt;
use std::hash::BuildHasher;

use hashbrown::HashTable;

use super::{Bytes, Entry};

/// One database: key -> entry, with the part of `HashMap`'s API the project uses.
///
/// See the module documentation for the layout. At most `u32::MAX` keys (the index is
/// 4 bytes); inserting more panics.
#[derive(Clone, Default)]
pub struct Db {
    /// Every key and entry, densely, in no particular order.
    pairs: Vec<(Bytes, Entry)>,
    /// For each key, its position in `pairs`, found by the key's hash.
    index: HashTable<u32>,
    /// SipHash-1-3 with random keys, as `std::collections::HashMap` uses: a client cannot
    /// choose keys that collide (hash flooding).
    hasher: RandomState,
}

/// An iterator over a [`Db`]'s keys and entries.
pub type Iter<'a> =
    std::iter::Map<std::slice::Iter<'a, (Bytes, Entry)>, fn(&'a (Bytes, Entry)) -> (&'a Bytes, &'a Entry)>;

/// An iterator over a [`Db`]'s keys and mutable entries.
pub type IterMut<'a> =
    std::iter::Map<std::slice::IterMut<'a, (Bytes, Entry)>, fn(&'a mut (Bytes, Entry)) -> (&'a Bytes, &'a mut Entry)>;

fn pair_ref(p: &(Bytes, Entry)) -> (&Bytes, &Entry) {
    (&p.0, &p.1)
}

fn pair_mut(p: &mut (Bytes, Entry)) -> (&Bytes, &mut Entry) {
    (&p.0, &mut p.1)
}

impl Db {
    /// An empty database.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.pairs.len()
    }

    /// True when the database holds no key.
    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }

    /// Keys the database can hold before it allocates again.
    pub fn capacity(&self) -> usize {
        self.pairs.capacity().min(self.index.capacity())
    }

    /// Make room for `additional` more keys (a RESIZEDB hint, or a generator's count).
    pub fn reserve(&mut self, additional: usize) {
        let Db { pairs, index, hasher } = self;
        pairs.reserve_exact(additional);
        index.reserve(additional, |&i| hasher.hash_one(pairs[i as usize].0.as_slice()));
    }

    /// Position in `pairs` of `key`, if present.
    fn position(&self, key: &[u8]) -> Option<usize> {
        let hash = self.hasher.hash_one(key);
        self.index.find(hash, |&i| self.pairs[i as usize].0 == key).map(|&i| i as usize)
    }

    /// The entry under `key`, expired or not.
    pub fn get(&self, key: &[u8]) -> Option<&Entry> {
        self.position(key).map(|i| &self.pairs[i].1)
    }

    /// The entry under `key`, mutable.
    pub fn get_mut(&mut self, key: &[u8]) -> Option<&mut Entry> {
        self.position(key).map(|i| &mut self.pairs[i].1)
    }

    /// Whether `key` is present, expired or not.
    pub fn contains_key(&self, key: &[u8]) -> bool {
        self.position(key).is_some()
    }

    /// Store `entry` under `key`, returning what was there. Unlike [`super::Keyspace::insert`]
    /// this does not check the model's invariants.
    ///
    /// # Panics
    /// If the database already holds `u32::MAX` keys.
    pub fn insert(&mut self, key: Bytes, entry: Entry) -> Option<Entry> {
        let hash = self.hasher.hash_one(key.as_slice());
        match self.index.find(hash, |&i| self.pairs[i as usize].0 == key) {
            Some(&i) => Some(std::mem::replace(&mut self.pairs[i as usize].1, entry)),
            None => {
                self.push(hash, key, entry);
                None
            }
        }
    }

    /// Store `entry` under `key` if the key is absent, with one hash lookup (what a loader
    /// needs: a dump's duplicate key is an error). A present key is left alone, and the
    /// key and entry are handed back as `Err`.
    ///
    /// # Panics
    /// If the database already holds `u32::MAX` keys.
    pub fn insert_new(&mut self, key: Bytes, entry: Entry) -> Result<(), (Bytes, Entry)> {
        let hash = self.hasher.hash_one(key.as_slice());
        if self.index.find(hash, |&i| self.pairs[i as usize].0 == key).is_some() {
            return Err((key, entry));
        }
        self.push(hash, key, entry);
        Ok(())
    }

    /// Append a pair for a key known to be absent, and index it.
    fn push(&mut self, hash: u64, key: Bytes, entry: Entry) {
        let Db { pairs, index, hasher } = self;
        let i = u32::try_from(pairs.len()).expect("a database holds at most u32::MAX keys");
        // Growing the index rehashes every key from `pairs`, hence the closure.
        index.insert_unique(hash, i, |&j| hasher.hash_one(pairs[j as usize].0.as_slice()));
        pairs.push((key, entry));
    }

    /// Remove `key`, returning its entry. O(1): the last pair moves into the hole.
    pub fn remove(&mut self, key: &[u8]) -> Option<Entry> {
        let Db { pairs, index, hasher } = self;
        let hash = hasher.hash_one(key);
        let (i, _) = index.find_entry(hash, |&i| pairs[i as usize].0 == key).ok()?.remove();
        let last = pairs.len() - 1;
        if i as usize != last {
            // The last pair is about to move to `i`: repoint its index entry.
            let moved = hasher.hash_one(pairs[last].0.as_slice());
            *index.find_mut(moved, |&j| j as usize == last).expect("every pair is indexed") = i;
        }
        Some(pairs.swap_remove(i as usize).1)
    }

    /// Every key and entry, in no particular order.
    pub fn iter(&self) -> Iter<'_> {
        self.pairs.iter().map(pair_ref)
    }

    /// Every key and mutable entry, in no particular order.
    pub fn iter_mut(&mut self) -> IterMut<'_> {
        self.pairs.iter_mut().map(pair_mut)
    }

    /// Every key, in no particular order.
    pub fn keys(&self) -> impl ExactSizeIterator<Item = &Bytes> + '_ {
        self.pairs.iter().map(|p| &p.0)
    }

    /// Every entry, in no particular order.
    pub fn values(&self) -> impl ExactSizeIterator<Item = &Entry> + '_ {
        self.pairs.iter().map(|p| &p.1)
    }

    /// Every entry, mutable, in no particular order.
    pub fn values_mut(&mut self) -> impl ExactSizeIterator<Item = &mut Entry> + '_ {
        self.pairs.iter_mut().map(|p| &mut p.1)
    }

    /// Keep only the keys for which `keep` returns true. O(len): the index is rebuilt.
    pub fn retain(&mut self, mut keep: impl FnMut(&Bytes, &mut Entry) -> bool) {
        let before = self.pairs.len();
        self.pairs.retain_mut(|(k, e)| keep(k, e));
        if self.pairs.len() != before {
            self.reindex();
        }
    }

    /// Rebuild the index from `pairs`.
    fn reindex(&mut self) {
        let Db { pairs, index, hasher } = self;
        index.clear();
        for (i, (k, _)) in pairs.iter().enumerate() {
            index.insert_unique(hasher.hash_one(k.as_slice()), i as u32, |&j| {
                hasher.hash_one(pairs[j as usize].0.as_slice())
            });
        }
    }

    /// Remove every key.
    pub fn clear(&mut self) {
        self.pairs.clear();
        self.index.clear();
    }

    /// Remove and yield every key and entry, leaving the database empty.
    pub fn drain(&mut self) -> std::vec::Drain<'_, (Bytes, Entry)> {
        self.index.clear();
        self.pairs.drain(..)
    }

    /// Heap bytes of the table itself, without what keys and values point to: the pairs'
    /// vector (its capacity) and the index (a 4-byte index plus a control byte per bucket,
    /// hashbrown's layout, src/raw/mod.rs). Figures, not accounting.
    pub fn table_bytes(&self) -> usize {
        let buckets = if self.index.capacity() == 0 { 0 } else { (self.index.capacity() * 8 / 7).next_power_of_two() };
        self.pairs.capacity() * size_of::<(Bytes, Entry)>() + buckets * (size_of::<u32>() + 1)
    }
}

impl PartialEq for Db {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().all(|(k, e)| other.get(k) == Some(e))
    }
}

impl fmt::Debug for Db {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl IntoIterator for Db {
    type Item = (Bytes, Entry);
    type IntoIter = std::vec::IntoIter<(Bytes, Entry)>;
    fn into_iter(self) -> Self::IntoIter {
        self.pairs.into_iter()
    }
}

impl<'a> IntoIterator for &'a Db {
    type Item = (&'a Bytes, &'a Entry);
    type IntoIter = Iter<'a>;
    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl<'a> IntoIterator for &'a mut Db {
    type Item = (&'a Bytes, &'a mut Entry);
    type IntoIter = IterMut<'a>;
    fn into_iter(self) -> Self::IntoIter {
        self.iter_mut()
    }
}

impl FromIterator<(Bytes, Entry)> for Db {
    fn from_iter<I: IntoIterator<Item = (Bytes, Entry)>>(iter: I) -> Self {
        let mut db = Db::new();
        db.extend(iter);
        db
    }
}

impl Extend<(Bytes, Entry)> for Db {
    fn extend<I: IntoIterator<Item = (Bytes, Entry)>>(&mut self, iter: I) {
        for (k, e) in iter {
            self.insert(k, e);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keyspace::Value;

    fn s(v: &str) -> Entry {
        Entry::new(Value::String(v.as_bytes().to_vec()))
    }

    /// Every key in `pairs` is found through the index at its own position, and the index
    /// holds nothing else: the invariant every method keeps.
    fn assert_indexed(db: &Db) {
        assert_eq!(db.index.len(), db.pairs.len(), "one index entry per pair");
        for (i, (k, _)) in db.pairs.iter().enumerate() {
            assert_eq!(db.position(k), Some(i), "key {k:?}");
        }
    }

    /// Inserts, replacements, removals (first, middle, last, absent), retain and clear, checked
    /// against a `HashMap` after every step.
    #[test]
    fn behaves_as_a_hash_map() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let mut db = Db::new();
        let mut model = std::collections::HashMap::new();
        for step in 0..20_000 {
            let key = format!("k{}", rng.random_range(0..600)).into_bytes();
            match rng.random_range(0..10) {
                0..=5 => {
                    let v = s(&step.to_string());
                    assert_eq!(db.insert(key.clone(), v.clone()), model.insert(key, v));
                }
                6..=8 => assert_eq!(db.remove(&key), model.remove(&key)),
                _ => {
                    let absent = !model.contains_key(&key);
                    assert_eq!(db.insert_new(key.clone(), s("new")).is_ok(), absent);
                    if absent {
                        model.insert(key, s("new"));
                    }
                }
            }
            if step % 5000 == 4999 {
                db.retain(|k, _| k.len().is_multiple_of(2));
                model.retain(|k: &Bytes, _| k.len().is_multiple_of(2));
                assert_indexed(&db);
            }
            if let Some(e) = model.get(b"k1".as_slice()) {
                assert_eq!(db.get(b"k1"), Some(e));
            }
            assert_eq!(db.len(), model.len());
        }
        assert_indexed(&db);
        let back: std::collections::HashMap<Bytes, Entry> = db.clone().into_iter().collect();
        assert_eq!(back, model);
        db.clear();
        assert!(db.is_empty() && db.get(b"k1").is_none());
    }

    /// `insert_new` leaves a present key's entry alone and hands back what it was given.
    #[test]
    fn insert_new_refuses_a_present_key() {
        let mut db = Db::new();
        assert!(db.insert_new(b"a".to_vec(), s("1")).is_ok());
        let (k, e) = db.insert_new(b"a".to_vec(), s("2")).unwrap_err();
        assert_eq!((k.as_slice(), e), (b"a".as_slice(), s("2")));
        assert_eq!(db.get(b"a"), Some(&s("1")));
    }

    /// Removing a key that is not the last moves the last pair; its index entry must follow.
    /// Wrong on purpose: a removal that forgets to repoint it leaves the moved key unfindable,
    /// which `assert_indexed` catches.
    #[test]
    fn removal_repoints_the_moved_pair() {
        let mut db = Db::new();
        for k in ["a", "b", "c", "d"] {
            db.insert(k.as_bytes().to_vec(), s(k));
        }
        assert_eq!(db.remove(b"a"), Some(s("a")));
        assert_indexed(&db);
        assert_eq!(db.get(b"d"), Some(&s("d")));

        // The broken removal: take "b" out of the index and move the last pair ("c") into
        // its place, without repointing "c".
        let hash = db.hasher.hash_one(b"b".as_slice());
        let Db { pairs, index, .. } = &mut db;
        let (i, _) = index.find_entry(hash, |&i| pairs[i as usize].0 == b"b").ok().unwrap().remove();
        pairs.swap_remove(i as usize);
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| assert_indexed(&db)));
        assert!(caught.is_err(), "a stale index entry must be caught");
    }

    /// Equality ignores order: the same keys inserted in another order, or after removals
    /// that reshuffled the pairs, compare equal; a different entry does not.
    #[test]
    fn equality_ignores_order() {
        let a: Db = [("x", "1"), ("y", "2"), ("z", "3")].iter().map(|(k, v)| (k.as_bytes().to_vec(), s(v))).collect();
        let mut b: Db = [("w", "0"), ("z", "3"), ("y", "2"), ("x", "1")]
            .iter()
            .map(|(k, v)| (k.as_bytes().to_vec(), s(v)))
            .collect();
        assert_ne!(a, b);
        b.remove(b"w");
        assert_eq!(a, b);
        b.insert(b"y".to_vec(), s("other"));
        assert_ne!(a, b);
    }
}
