//! One shard's table for one database: a hash table of **buckets**, each stamped with a
//! **version**, grown by **linear hashing**.
//!
//! Buckets are the unit of snapshot isolation. A bucket whose version is below the
//! snapshot's version still holds its state from before the cut and has not been written
//! to the dump; once it is written, it is stamped with the snapshot's version, and nothing
//! writes it again.
//!
//! Why linear hashing: the table must be able to grow while a save is running without
//! letting an entry escape the snapshot or be written twice. Linear hashing grows one
//! bucket at a time: it splits bucket `next` into itself and `next + 2^level`, moving the
//! entries whose hash has the next bit set. Before a split during a save, the bucket being
//! split is serialized (if the traversal has not reached it yet) and both halves are
//! stamped, so every entry was written exactly once, as it was at the cut. A table that
//! doubled all at once would have to serialize every unvisited bucket first. (Redis's own
//! dict rehashes incrementally too; Dragonfly's Dash table splits segments, for the same
//! reason.)
//!
//! The layout is chosen for memory. A bucket's entries are one `Arc<[(Key, Entry)]>`: the
//! reference counts and exactly as many slots as entries, in a single allocation, so a
//! bucket has no spare capacity and no separate header. A key is a `Box<[u8]>` (pointer and
//! length, 16 bytes; a `Vec` would add a capacity word), and its hash is not stored: a
//! split hashes the keys it divides again, which costs time once per split and saves 8
//! bytes per key always (core's `Db` makes the same trade). Adding or removing an entry
//! builds the bucket's slice anew; with about [`MAX_LOAD`] entries a bucket, that moves a
//! few 56-byte slots.

use std::sync::Arc;

use snaplab_core::{Entry, Value};

/// Entries per bucket, on average, before the table grows by one bucket.
pub const MAX_LOAD: usize = 4;

// ANCHOR: bucket
/// A key as a bucket holds it: exactly its bytes, behind a pointer and a length (16 bytes).
/// The store converts at its boundary (`Vec::into_boxed_slice`, free when the vector has no
/// spare capacity).
pub type Key = Box<[u8]>;

/// One entry of a bucket: the key and its entry (value and expiry), 56 bytes.
pub type Slot = (Key, Entry);

/// A bucket's entries, shared by pointer, so a save can capture a bucket in O(1) and a later
/// write copies only that bucket (`Arc::make_mut`). One allocation: the two reference
/// counts, then exactly as many slots as entries.
pub type Entries = Arc<[Slot]>;

/// A bucket: its version and its entries.
#[derive(Debug, Default)]
pub struct Bucket {
    /// The snapshot version this bucket was last captured under (0: never).
    pub version: u64,
    /// The entries.
    pub entries: Entries,
}

impl Bucket {
    /// The entries, for changing in place: copied first if a save still holds a capture of
    /// them.
    pub fn entries_mut(&mut self) -> &mut [Slot] {
        Arc::make_mut(&mut self.entries)
    }

    /// The entries moved out one by one (copied first if a save still holds a capture of
    /// them), for building the bucket's next slice; what stays behind are empty placeholders.
    /// Moving is what keeps a bucket exactly its entries' size: the slice never has room to
    /// spare, so every change of length builds a new one from the old one's entries.
    pub fn take_entries(&mut self) -> impl ExactSizeIterator<Item = Slot> + '_ {
        self.entries_mut()
            .iter_mut()
            .map(|slot| std::mem::replace(slot, (Key::default(), Entry::new(Value::String(Vec::new())))))
    }
}
// ANCHOR_END: bucket

// ANCHOR: table
/// A linear-hashing table of versioned buckets.
#[derive(Debug)]
pub struct Table {
    buckets: Vec<Bucket>,
    /// Buckets below `2^level` are addressed with `level` bits, or `level + 1` below `next`.
    level: u32,
    /// The next bucket to split.
    next: usize,
    len: usize,
}

impl Default for Table {
    fn default() -> Self {
        Table { buckets: vec![Bucket::default()], level: 0, next: 0, len: 0 }
    }
}
// ANCHOR_END: table

impl Table {
    /// The bucket index of `hash` (Litwin's linear hashing address function).
    pub fn address(&self, hash: u64) -> usize {
        // EXERCISE 09-linear-hashing BEGIN
        let i = (hash & ((1u64 << self.level) - 1)) as usize;
        if i < self.next { (hash & ((1u64 << (self.level + 1)) - 1)) as usize } else { i }
        // EXERCISE 09-linear-hashing END
    }

    /// Number of buckets.
    pub fn buckets(&self) -> usize {
        self.buckets.len()
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the table is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bucket `i`.
    pub fn bucket(&self, i: usize) -> &Bucket {
        &self.buckets[i]
    }

    /// Bucket `i`, mutable.
    pub fn bucket_mut(&mut self, i: usize) -> &mut Bucket {
        &mut self.buckets[i]
    }

    /// The entry for `key`, whose hash is `hash`, if present.
    pub fn get(&self, hash: u64, key: &[u8]) -> Option<&Entry> {
        self.buckets[self.address(hash)].entries.iter().find(|(k, _)| **k == *key).map(|(_, e)| e)
    }

    /// Position of `key` in bucket `b`, if present. With no stored hash to compare first,
    /// each slot's key is compared (its length, then its bytes).
    pub fn position(&self, b: usize, key: &[u8]) -> Option<usize> {
        self.buckets[b].entries.iter().position(|(k, _)| **k == *key)
    }

    /// Insert a new entry into bucket `b` (which must be `address(hash of key)`, and must not
    /// hold `key` yet).
    pub fn push(&mut self, b: usize, key: Key, entry: Entry) {
        let bucket = &mut self.buckets[b];
        let grown: Entries = bucket.take_entries().chain(std::iter::once((key, entry))).collect();
        bucket.entries = grown;
        self.len += 1;
    }

    /// Remove the entry at position `pos` of bucket `b` (the bucket's last entry takes its
    /// place: order within a bucket means nothing).
    pub fn remove_at(&mut self, b: usize, pos: usize) {
        let bucket = &mut self.buckets[b];
        let last = bucket.entries.len() - 1;
        bucket.entries_mut().swap(pos, last);
        let shrunk: Entries = bucket.take_entries().take(last).collect();
        bucket.entries = shrunk;
        self.len -= 1;
    }

    /// Remove every entry, keeping versions as they are.
    pub fn clear(&mut self) {
        for b in &mut self.buckets {
            b.entries = Entries::default();
        }
        self.len = 0;
    }

    // ANCHOR: wants_split
    /// Whether the table is over its load factor and should split a bucket.
    pub fn wants_split(&self) -> bool {
        self.len > self.buckets.len() * MAX_LOAD
    }

    /// The bucket the next split will divide.
    pub fn next_to_split(&self) -> usize {
        self.next
    }
    // ANCHOR_END: wants_split

    /// Split bucket `next_to_split()` into itself and a new bucket at the end, which gets
    /// `version` (the caller has made sure the source bucket was serialized if a save
    /// needed it, so both halves carry the source's stamp). `hash` is the store's hash
    /// function: hashes are not stored, so the split computes those of the keys it divides.
    pub fn split(&mut self, version: u64, hash: impl Fn(&[u8]) -> u64) {
        // EXERCISE 09-linear-hashing BEGIN
        let src = self.next;
        let high_bit = 1u64 << self.level;
        let (stay, go): (Vec<Slot>, Vec<Slot>) =
            self.buckets[src].take_entries().partition(|(k, _)| hash(k) & high_bit == 0);
        self.buckets[src].entries = stay.into();
        self.buckets.push(Bucket { version, entries: go.into() });
        self.next += 1;
        if self.next == 1 << self.level {
            self.level += 1;
            self.next = 0;
        }
        // EXERCISE 09-linear-hashing END
    }

    /// Grow the table, while it is empty, to the buckets `keys` entries will need, so a
    /// load does not split (and move every entry) about once per doubling as it fills.
    /// Splitting an empty bucket moves nothing; a table that holds entries is left as it is.
    pub fn reserve(&mut self, keys: usize) {
        if self.len > 0 {
            return;
        }
        let want = keys.div_ceil(MAX_LOAD);
        // Room for a few more buckets than the hint asks: a shard's share of the keys is only
        // about even, and one split past a full vector would double it.
        self.buckets.reserve_exact((want + want / 64).saturating_sub(self.buckets.len()));
        while self.buckets.len() < want {
            // The buckets are empty: no key to hash.
            self.split(0, |_| 0);
        }
    }

    /// Where the table's own heap bytes go, as requested from the allocator (the allocator
    /// rounds each request up to its chunk size and adds a header; glibc: 8 bytes, chunks
    /// of 32 bytes or more in steps of 16, `malloc/malloc.c`). Keys and values are not in it.
    pub fn heap_bytes(&self) -> TableBytes {
        let buckets = self.buckets.len();
        TableBytes {
            bucket_array: self.buckets.capacity() * std::mem::size_of::<Bucket>(),
            // Each bucket's `Arc` allocation starts with its two reference counts.
            bucket_headers: buckets * 2 * std::mem::size_of::<usize>(),
            slots: self.len * std::mem::size_of::<Slot>(),
            spare_slots: 0,
            chunks: 1 + buckets,
        }
    }

    /// Every entry, for copies and statistics.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &Entry)> {
        self.buckets.iter().flat_map(|b| b.entries.iter().map(|(k, e)| (&**k, e)))
    }
}

/// A table's own heap bytes by component ([`Table::heap_bytes`]), in bytes as requested.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TableBytes {
    /// The vector of buckets, at its capacity.
    pub bucket_array: usize,
    /// Each bucket's shared header: the reference counts and whatever else sits beside the
    /// entries in the bucket's `Arc`.
    pub bucket_headers: usize,
    /// The slots that hold an entry.
    pub slots: usize,
    /// Slots allocated and empty (a vector's unused capacity).
    pub spare_slots: usize,
    /// Heap allocations (chunks) these bytes are in.
    pub chunks: usize,
}

impl std::ops::AddAssign for TableBytes {
    fn add_assign(&mut self, o: TableBytes) {
        self.bucket_array += o.bucket_array;
        self.bucket_headers += o.bucket_headers;
        self.slots += o.slots;
        self.spare_slots += o.spare_slots;
        self.chunks += o.chunks;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The tests' hash function: a key is the little-endian bytes of its own hash, so a test
    /// chooses where each key goes.
    fn key_hash(key: &[u8]) -> u64 {
        u64::from_le_bytes(key.try_into().expect("test keys are 8 bytes"))
    }

    fn slot_entry() -> Entry {
        Entry::new(Value::String(vec![]))
    }

    // ANCHOR: test
    /// Growing one bucket at a time keeps every key findable at its address, and splits
    /// stamp the new bucket with the version they are given.
    #[test]
    fn linear_hashing_keeps_every_key() {
        let mut t = Table::default();
        let hash = |i: u64| i.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        for i in 0..10_000u64 {
            let b = t.address(hash(i));
            t.push(b, hash(i).to_le_bytes().into(), slot_entry());
            while t.wants_split() {
                t.split(7, key_hash);
            }
        }
        assert_eq!(t.len(), 10_000);
        assert!(t.buckets() >= 10_000 / 4);
        for i in 0..10_000u64 {
            assert!(t.get(hash(i), &hash(i).to_le_bytes()).is_some(), "key {i} lost");
        }
        assert_eq!(t.bucket(t.buckets() - 1).version, 7);
        assert_eq!(t.iter().count(), 10_000);
    }
    // ANCHOR_END: test

    /// Buckets below the split pointer `next` have been split this round, so their hashes
    /// are read with one more bit than the buckets at or above it.
    #[test]
    fn address_uses_one_more_bit_below_the_split_pointer() {
        let mut t = Table::default();
        assert_eq!(t.address(0b1011), 0, "one bucket holds every hash");
        t.split(0, key_hash);
        // Two buckets, one bit each.
        assert_eq!((t.buckets(), t.next_to_split()), (2, 0));
        assert_eq!(t.address(0b1010), 0);
        assert_eq!(t.address(0b1011), 1);
        t.split(0, key_hash);
        // Bucket 0 was split into 0 and 2 (two bits); bucket 1 still reads one bit.
        assert_eq!((t.buckets(), t.next_to_split()), (3, 1));
        assert_eq!(t.address(0b100), 0);
        assert_eq!(t.address(0b110), 2);
        assert_eq!(t.address(0b111), 1);
        assert_eq!(t.address(0b101), 1);
        t.split(0, key_hash);
        // Every bucket split: the next round reads two bits everywhere.
        assert_eq!((t.buckets(), t.next_to_split()), (4, 0));
        assert_eq!(t.address(0b111), 3);
        assert_eq!(t.address(0b101), 1);
        assert_eq!(t.address(0b110), 2);
    }

    /// A split moves exactly the entries whose next hash bit is set into the new bucket,
    /// which takes the version it is given; the source keeps its entries' order of hashes
    /// and its own version, and the table's size does not change.
    #[test]
    fn a_split_moves_the_entries_whose_next_bit_is_set() {
        let mut t = Table::default();
        for h in 0..8u64 {
            t.push(0, h.to_le_bytes().into(), slot_entry());
        }
        t.bucket_mut(0).version = 3;
        t.split(5, key_hash);
        let hashes = |t: &Table, b: usize| {
            let mut v: Vec<u64> = t.bucket(b).entries.iter().map(|(k, _)| key_hash(k)).collect();
            v.sort_unstable();
            v
        };
        assert_eq!(hashes(&t, 0), vec![0, 2, 4, 6]);
        assert_eq!(hashes(&t, 1), vec![1, 3, 5, 7]);
        assert_eq!(t.bucket(0).version, 3, "the source bucket keeps its version");
        assert_eq!(t.bucket(1).version, 5, "the new bucket gets the version it is given");
        assert_eq!(t.len(), 8);
        t.split(5, key_hash);
        assert_eq!(hashes(&t, 0), vec![0, 4]);
        assert_eq!(hashes(&t, 2), vec![2, 6]);
        assert_eq!(t.next_to_split(), 1);
        for h in 0..8u64 {
            assert!(t.get(h, &h.to_le_bytes()).is_some(), "hash {h} is at its address after the splits");
        }
    }
}
