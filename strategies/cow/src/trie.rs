//! The keyspace's persistent map: a hash array mapped trie with bucketed leaves.
//!
//! A hash array mapped trie (HAMT; Phil Bagwell, "Ideal Hash Trees", EPFL technical report,
//! 2001) cuts a key's 64-bit hash into [`BITS`]-bit pieces, lowest first. The root's piece
//! picks one of [`FANOUT`] children, the next piece one child of that node, and so on down
//! to a leaf. A branch stores only the children it has: a bitmap says which of the
//! [`FANOUT`] slots are present, and the child for slot `i` sits at position "number of set
//! bits below `i`" of a dense array (Bagwell's trick, so an almost empty node is small).
//!
//! Unlike Bagwell's trie, a leaf is a *bucket*: a small vector of up to [`LEAF_CAPACITY`]
//! entries. A leaf that grows past that splits into a branch of smaller leaves, each
//! taking the entries whose next hash piece picks it. At the deepest level, where the 64
//! hash bits are used up, a leaf just grows (only keys with equal 64-bit hashes meet
//! there). Buckets put many keys behind one node, so the trie has about one node for every
//! ten keys rather than one or more per key: fewer allocations to load, fewer bytes each.
//!
//! Every node sits behind an [`Arc`]. Cloning the map clones the root's `Arc`: O(1), and
//! that clone is the snapshot. A write walks from the root with [`Arc::make_mut`], which
//! changes a node in place when nothing else holds it (so loading, when no snapshot
//! exists, never copies) and copies it first when a snapshot still shares it (path
//! copying). A copied leaf copies its entries, which is why entries are cheap to clone: a
//! key is an `Arc<[u8]>` and a value's clone is O(1) (see [`crate::value`]). After a write
//! during a save, the other keys in the copied leaf therefore still point at the same key
//! and value bytes as the snapshot: only the bucket's vector of pointers was copied.
//!
//! ```text
//!   branch: bitmap 0b0000_0100_0010_0001, children [c0, c5, c10]  (slots 0, 5 and 10 present)
//!   leaf:   [(hash, key, value), (hash, key, value), ...]         (at most LEAF_CAPACITY)
//! ```

use std::hash::BuildHasher;
use std::sync::Arc;

/// Hash bits each level of the trie consumes.
pub const BITS: u32 = 4;
/// Children a branch can have: `2^BITS`.
pub const FANOUT: usize = 1 << BITS;
/// Entries a leaf holds before it splits (unless the hash bits are used up).
pub const LEAF_CAPACITY: usize = 32;
/// Levels below which the 64 hash bits are used up: leaves there never split.
const MAX_DEPTH: u32 = u64::BITS / BITS;

/// The hasher a map uses unless told otherwise: foldhash's fast hasher, keyed with a random
/// seed per process, so no input can be built in advance to collide.
pub type DefaultHasher = foldhash::fast::RandomState;

// ANCHOR: node
/// One entry of a leaf: the key's full hash (compared before the key, and reused when the
/// leaf splits), the key and the value.
#[derive(Clone, Debug)]
struct Slot<V> {
    hash: u64,
    key: Arc<[u8]>,
    value: V,
}

/// A node of the trie.
#[derive(Clone, Debug)]
enum Node<V> {
    /// Bit `i` of `bitmap` is set when slot `i` has a child; the children are stored densely
    /// in slot order.
    Branch { bitmap: u16, children: Vec<Arc<Node<V>>> },
    /// A bucket of entries whose hashes agree on every piece above this level.
    Leaf(Vec<Slot<V>>),
}
// ANCHOR_END: node

/// The `BITS`-bit piece of `hash` that picks a child at `depth`.
fn piece(hash: u64, depth: u32) -> u32 {
    ((hash >> (depth * BITS)) & (FANOUT as u64 - 1)) as u32
}

/// The position of slot `piece`'s child in a branch's dense array.
fn position(bitmap: u16, piece: u32) -> usize {
    (bitmap & ((1u16 << piece) - 1)).count_ones() as usize
}

impl<V> Node<V> {
    fn is_empty(&self) -> bool {
        match self {
            Node::Branch { children, .. } => children.is_empty(),
            Node::Leaf(slots) => slots.is_empty(),
        }
    }

    /// A node for `slots`, all of whose hashes agree on the pieces above `depth`: a leaf if
    /// they fit (or the hash is used up), else a branch over smaller nodes.
    fn build(slots: Vec<Slot<V>>, depth: u32) -> Node<V> {
        if slots.len() <= LEAF_CAPACITY || depth >= MAX_DEPTH {
            return Node::Leaf(slots);
        }
        let mut groups: [Vec<Slot<V>>; FANOUT] = std::array::from_fn(|_| Vec::new());
        for s in slots {
            groups[piece(s.hash, depth) as usize].push(s);
        }
        let mut bitmap = 0u16;
        let mut children = Vec::new();
        for (i, g) in groups.into_iter().enumerate() {
            if !g.is_empty() {
                bitmap |= 1 << i;
                children.push(Arc::new(Node::build(g, depth + 1)));
            }
        }
        Node::Branch { bitmap, children }
    }
}

/// A persistent hash map from byte-string keys to `V`: clone is O(1) and shares every node;
/// a write copies only the nodes on its path that a clone still shares.
///
/// `V: Clone` because a shared leaf is copied before a write changes it; keep `V`'s clone
/// cheap (pointers, not bytes). `H` hashes the keys ([`DefaultHasher`] unless a test needs
/// collisions).
#[derive(Clone, Debug)]
pub struct Trie<V, H = DefaultHasher> {
    root: Arc<Node<V>>,
    len: usize,
    hasher: H,
}

impl<V: Clone> Default for Trie<V> {
    fn default() -> Self {
        Trie::new()
    }
}

impl<V: Clone> Trie<V> {
    /// An empty map with a freshly seeded [`DefaultHasher`].
    pub fn new() -> Self {
        Trie::with_hasher(DefaultHasher::default())
    }
}

impl<V: Clone, H: BuildHasher> Trie<V, H> {
    /// An empty map hashing keys with `hasher`.
    pub fn with_hasher(hasher: H) -> Self {
        Trie { root: Arc::new(Node::Leaf(Vec::new())), len: 0, hasher }
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Number of keys (rpds's name, kept for the callers that used it).
    pub fn size(&self) -> usize {
        self.len
    }

    /// True when the map holds no key.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn hash(&self, key: &[u8]) -> u64 {
        self.hasher.hash_one(key)
    }

    // ANCHOR: get
    /// The value of `key`, if present.
    pub fn get(&self, key: &[u8]) -> Option<&V> {
        let hash = self.hash(key);
        let mut node = &*self.root;
        let mut depth = 0;
        loop {
            match node {
                Node::Branch { bitmap, children } => {
                    let p = piece(hash, depth);
                    if bitmap & (1 << p) == 0 {
                        return None;
                    }
                    node = &children[position(*bitmap, p)];
                    depth += 1;
                }
                // The hash first: it is inline, while the key's bytes are behind a pointer.
                Node::Leaf(slots) => {
                    return slots.iter().find(|s| s.hash == hash && *s.key == *key).map(|s| &s.value);
                }
            }
        }
    }
    // ANCHOR_END: get

    /// True when `key` is present.
    pub fn contains_key(&self, key: &[u8]) -> bool {
        self.get(key).is_some()
    }

    // ANCHOR: get_mut
    /// The value of `key` to change in place, if present. The nodes on its path that a clone
    /// shares are copied first (`Arc::make_mut`), so the clone keeps the old value.
    pub fn get_mut(&mut self, key: &[u8]) -> Option<&mut V> {
        // Look before copying: a miss must not copy a path for nothing.
        if !self.contains_key(key) {
            return None;
        }
        let hash = self.hash(key);
        let mut node = Arc::make_mut(&mut self.root);
        let mut depth = 0;
        loop {
            match node {
                Node::Branch { bitmap, children } => {
                    let i = position(*bitmap, piece(hash, depth));
                    node = Arc::make_mut(&mut children[i]);
                    depth += 1;
                }
                Node::Leaf(slots) => {
                    return slots.iter_mut().find(|s| s.hash == hash && *s.key == *key).map(|s| &mut s.value);
                }
            }
        }
    }
    // ANCHOR_END: get_mut

    /// Set `key` to `value`; the old value if the key was present (then its stored key is
    /// kept), `None` if it is new.
    pub fn insert(&mut self, key: &[u8], value: V) -> Option<V> {
        let hash = self.hash(key);
        let mut node = Arc::make_mut(&mut self.root);
        let mut depth = 0;
        loop {
            match node {
                Node::Branch { bitmap, children } => {
                    let p = piece(hash, depth);
                    let i = position(*bitmap, p);
                    if *bitmap & (1 << p) == 0 {
                        *bitmap |= 1 << p;
                        let slot = Slot { hash, key: key.into(), value };
                        children.insert(i, Arc::new(Node::Leaf(vec![slot])));
                        self.len += 1;
                        return None;
                    }
                    node = Arc::make_mut(&mut children[i]);
                    depth += 1;
                }
                Node::Leaf(slots) => {
                    if let Some(s) = slots.iter_mut().find(|s| s.hash == hash && *s.key == *key) {
                        return Some(std::mem::replace(&mut s.value, value));
                    }
                    slots.push(Slot { hash, key: key.into(), value });
                    self.len += 1;
                    if slots.len() > LEAF_CAPACITY && depth < MAX_DEPTH {
                        *node = Node::build(std::mem::take(slots), depth);
                    }
                    return None;
                }
            }
        }
    }

    /// Remove `key`; its value if it was present. A leaf or branch left empty is removed
    /// from its parent, so the trie holds no empty nodes below the root.
    pub fn remove(&mut self, key: &[u8]) -> Option<V> {
        // Look before copying, as `get_mut` does.
        if !self.contains_key(key) {
            return None;
        }
        let hash = self.hash(key);
        let removed = remove_from(&mut self.root, hash, key, 0);
        if removed.is_some() {
            self.len -= 1;
        }
        removed
    }

    /// Every key and value, in the trie's order (by hash pieces, lowest first).
    pub fn iter(&self) -> Iter<'_, V> {
        Iter { stack: vec![std::slice::from_ref(&self.root).iter()], leaf: [].iter() }
    }

    /// Every value, in the order of [`Trie::iter`].
    pub fn values(&self) -> impl Iterator<Item = &V> {
        self.iter().map(|(_, v)| v)
    }

    /// Shrink every leaf's vector to its length. For the end of a load: a vector grows by
    /// doubling, so on average a quarter of its room is unused.
    pub fn shrink_to_fit(&mut self) {
        fn shrink<V: Clone>(node: &mut Arc<Node<V>>) {
            match Arc::make_mut(node) {
                Node::Branch { children, .. } => children.iter_mut().for_each(shrink),
                Node::Leaf(slots) => slots.shrink_to_fit(),
            }
        }
        shrink(&mut self.root);
    }

    /// The trie's shape, for measurements: node counts and leaf occupancy.
    pub fn stats(&self) -> TrieStats {
        fn walk<V>(node: &Node<V>, depth: u32, s: &mut TrieStats) {
            s.depth = s.depth.max(depth);
            match node {
                Node::Branch { children, .. } => {
                    s.branches += 1;
                    s.children += children.len();
                    children.iter().for_each(|c| walk(c, depth + 1, s));
                }
                Node::Leaf(slots) => {
                    s.leaves += 1;
                    s.leaf_capacity += slots.capacity();
                }
            }
        }
        let mut s = TrieStats { entries: self.len, ..TrieStats::default() };
        walk(&self.root, 0, &mut s);
        s
    }
}

fn remove_from<V: Clone>(node: &mut Arc<Node<V>>, hash: u64, key: &[u8], depth: u32) -> Option<V> {
    match Arc::make_mut(node) {
        Node::Branch { bitmap, children } => {
            let p = piece(hash, depth);
            if *bitmap & (1 << p) == 0 {
                return None;
            }
            let i = position(*bitmap, p);
            let removed = remove_from(&mut children[i], hash, key, depth + 1);
            if children[i].is_empty() {
                children.remove(i);
                *bitmap &= !(1 << p);
            }
            removed
        }
        Node::Leaf(slots) => {
            let i = slots.iter().position(|s| s.hash == hash && *s.key == *key)?;
            // Order within a leaf does not matter: swap_remove moves one entry, not the tail.
            Some(slots.swap_remove(i).value)
        }
    }
}

/// The shape of a [`Trie`], from [`Trie::stats`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TrieStats {
    /// Keys.
    pub entries: usize,
    /// Branch nodes.
    pub branches: usize,
    /// Children of all branches (the dense arrays' lengths summed).
    pub children: usize,
    /// Leaf nodes (the root counts when it is a leaf).
    pub leaves: usize,
    /// Entries the leaves' vectors have room for, summed.
    pub leaf_capacity: usize,
    /// Levels below the root of the deepest node.
    pub depth: u32,
}

/// An iterator over a [`Trie`]'s keys and values, from [`Trie::iter`]: depth-first, a stack
/// of the branches' child iterators.
pub struct Iter<'a, V> {
    stack: Vec<std::slice::Iter<'a, Arc<Node<V>>>>,
    leaf: std::slice::Iter<'a, Slot<V>>,
}

impl<'a, V> Iterator for Iter<'a, V> {
    type Item = (&'a [u8], &'a V);

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(s) = self.leaf.next() {
                return Some((&s.key, &s.value));
            }
            let top = self.stack.last_mut()?;
            match top.next() {
                None => {
                    self.stack.pop();
                }
                Some(node) => match &**node {
                    Node::Branch { children, .. } => self.stack.push(children.iter()),
                    Node::Leaf(slots) => self.leaf = slots.iter(),
                },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;
    use std::hash::Hasher;

    /// A hasher whose hash is the key's last byte alone: every key with the same last
    /// byte collides on all 64 bits, so leaves at the deepest level must grow past
    /// `LEAF_CAPACITY`.
    #[derive(Clone, Default)]
    struct LastByte;
    struct LastByteHasher(u64, bool);
    impl Hasher for LastByteHasher {
        fn finish(&self) -> u64 {
            self.0
        }
        fn write(&mut self, bytes: &[u8]) {
            // `hash_one(&[u8])` writes the length first (as a usize), then the bytes.
            if let (true, Some(&b)) = (self.1, bytes.last()) {
                self.0 = u64::from(b).wrapping_mul(0x9e37_79b9_7f4a_7c15);
            }
            self.1 = true;
        }
    }
    impl BuildHasher for LastByte {
        type Hasher = LastByteHasher;
        fn build_hasher(&self) -> LastByteHasher {
            LastByteHasher(0, false)
        }
    }

    #[derive(Clone, Debug)]
    enum Op {
        Insert(Vec<u8>, u32),
        Remove(Vec<u8>),
        Get(Vec<u8>),
        Snapshot,
    }

    fn key() -> impl Strategy<Value = Vec<u8>> {
        // Few distinct keys, so removes and replaces hit; a few hundred, so leaves split.
        (0u16..600).prop_map(|i| format!("k{i}").into_bytes())
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            6 => (key(), any::<u32>()).prop_map(|(k, v)| Op::Insert(k, v)),
            3 => key().prop_map(Op::Remove),
            2 => key().prop_map(Op::Get),
            1 => Just(Op::Snapshot),
        ]
    }

    /// Run `ops` against the trie and a `HashMap`; every snapshot taken along the way must
    /// still equal the model as it was when it was taken.
    fn check<H: BuildHasher + Clone>(hasher: H, ops: &[Op]) {
        let mut trie: Trie<u32, H> = Trie::with_hasher(hasher);
        let mut model: HashMap<Vec<u8>, u32> = HashMap::new();
        let mut snapshots = Vec::new();
        for op in ops {
            match op {
                Op::Insert(k, v) => assert_eq!(trie.insert(k, *v), model.insert(k.clone(), *v)),
                Op::Remove(k) => assert_eq!(trie.remove(k), model.remove(k)),
                Op::Get(k) => {
                    assert_eq!(trie.get(k), model.get(k));
                    assert_eq!(trie.contains_key(k), model.contains_key(k));
                    // A write through get_mut, as value::apply does.
                    if let Some(v) = trie.get_mut(k) {
                        *v = v.wrapping_add(1);
                        let m = model.get_mut(k).unwrap();
                        *m = m.wrapping_add(1);
                    }
                }
                Op::Snapshot => snapshots.push((trie.clone(), model.clone())),
            }
            assert_eq!(trie.len(), model.len());
        }
        snapshots.push((trie, model));
        for (t, m) in &snapshots {
            let seen: HashMap<Vec<u8>, u32> = t.iter().map(|(k, v)| (k.to_vec(), *v)).collect();
            assert_eq!(seen.len(), t.len(), "iteration yields each key once");
            assert_eq!(&seen, m);
            assert_eq!(t.values().count(), m.len());
        }
    }

    proptest! {
        /// The trie behaves as a `HashMap`, and clones taken mid-sequence keep their
        /// contents while the live map changes (the snapshot guarantee).
        #[test]
        fn matches_a_hashmap_and_snapshots_stay_frozen(ops in prop::collection::vec(op(), 0..2000)) {
            check(DefaultHasher::default(), &ops);
        }

        /// The same with every key colliding on its whole hash with the keys that share its
        /// last byte: the deepest level's leaves grow instead of splitting.
        #[test]
        fn full_hash_collisions(ops in prop::collection::vec(op(), 0..1000)) {
            check(LastByte, &ops);
        }
    }

    /// Colliding keys reach the deepest level and share one leaf there, larger than a
    /// leaf may be elsewhere.
    #[test]
    fn colliding_keys_share_a_leaf_at_the_deepest_level() {
        let mut t: Trie<usize, LastByte> = Trie::with_hasher(LastByte);
        // Every key ends in the same byte: one hash for all.
        for i in 0..100 {
            t.insert(format!("{i}k").as_bytes(), i);
        }
        let s = t.stats();
        assert_eq!(s.depth, MAX_DEPTH);
        assert_eq!(s.leaves, 1);
        assert!(s.leaf_capacity >= 100);
        for i in 0..100 {
            assert_eq!(t.get(format!("{i}k").as_bytes()), Some(&i));
        }
    }

    /// A write after a clone copies the leaf's vector, but the other keys of that leaf
    /// keep pointing at the same key bytes as the clone: no deep copy.
    #[test]
    fn a_copied_leaf_shares_the_other_keys() {
        let mut live: Trie<Arc<[u8]>> = Trie::new();
        for i in 0..10 {
            live.insert(format!("k{i}").as_bytes(), Arc::from(&b"v"[..]));
        }
        let snapshot = live.clone();
        live.insert(b"k0", Arc::from(&b"new"[..]));
        assert_eq!(&**snapshot.get(b"k0").unwrap(), b"v");
        assert_eq!(&**live.get(b"k0").unwrap(), b"new");
        let key_of = |t: &Trie<Arc<[u8]>>, k: &[u8]| t.iter().find(|(kk, _)| *kk == k).unwrap().0.as_ptr();
        for i in 1..10 {
            let k = format!("k{i}");
            assert_eq!(key_of(&live, k.as_bytes()), key_of(&snapshot, k.as_bytes()));
            assert!(Arc::ptr_eq(live.get(k.as_bytes()).unwrap(), snapshot.get(k.as_bytes()).unwrap()));
        }
    }

    /// Removing every key leaves no empty node behind: the root is an empty leaf or a
    /// branch with no children, and a reinsert works.
    #[test]
    fn removing_everything_leaves_no_nodes() {
        let mut t: Trie<u32> = Trie::new();
        for i in 0..1000u32 {
            t.insert(&i.to_le_bytes(), i);
        }
        assert!(t.stats().branches > 0);
        for i in 0..1000u32 {
            assert_eq!(t.remove(&i.to_le_bytes()), Some(i));
        }
        let s = t.stats();
        assert_eq!((s.entries, s.children, s.leaves), (0, 0, 0), "{s:?}");
        t.insert(b"again", 1);
        assert_eq!(t.get(b"again"), Some(&1));
    }
}
