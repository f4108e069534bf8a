//! Encoders for the compact blobs Redis 7.0 writes for small collections: listpack and
//! intset (the writing side of [`super::packed`]), and the rules for when Redis keeps a
//! collection in them.
//!
//! Redis keeps a small hash, sorted set or set of integers in one contiguous blob instead
//! of a hash table, because a table costs tens of bytes per element in pointers and
//! headers; RDB saves the blob as one string, so the file is smaller too. The thresholds
//! are Redis 7.0's defaults (src/config.c: `hash-max-listpack-entries 128`,
//! `hash-max-listpack-value 64`, `zset-max-listpack-entries 128`, `zset-max-listpack-value 64`,
//! `set-max-intset-entries 512`, `list-max-listpack-size -2`, that is 8 KiB per node).

use super::encode::parse_redis_int;
use super::packed::backlen_size;

/// Redis 7.0's `hash-max-listpack-entries` and `zset-max-listpack-entries`: the most
/// fields (members) a hash (sorted set) keeps in a listpack.
pub const MAX_LISTPACK_ENTRIES: usize = 128;
/// Redis 7.0's `hash-max-listpack-value` and `zset-max-listpack-value`: the longest field,
/// value or member, bytes, a listpack hash or sorted set keeps.
pub const MAX_LISTPACK_VALUE: usize = 64;
/// Redis 7.0's `set-max-intset-entries`: the most members a set of integers keeps in an
/// intset.
pub const MAX_INTSET_ENTRIES: usize = 512;
/// The most bytes one quicklist node's listpack holds under `list-max-listpack-size -2`
/// (Redis src/quicklist.c, `optimization_level`).
pub const QUICKLIST_NODE_BYTES: usize = 8192;

/// A listpack being built (Redis src/listpack.c): a 6-byte header (total bytes u32 LE,
/// element count u16 LE, 65535 meaning "count them"), the entries, and 0xFF. Each entry
/// is an encoding byte (and length or integer bytes), the data, and a back-length so the
/// list can be walked from the tail.
pub struct Listpack {
    bytes: Vec<u8>,
    count: usize,
}

impl Default for Listpack {
    fn default() -> Self {
        Self::new()
    }
}

impl Listpack {
    /// An empty listpack.
    pub fn new() -> Self {
        Listpack { bytes: vec![0; 6], count: 0 }
    }

    /// Number of entries so far.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether it has no entries.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Size in bytes once finished (header, entries, terminator).
    pub fn finished_len(&self) -> usize {
        self.bytes.len() + 1
    }

    /// The bytes `s` takes as an entry, back-length included.
    pub fn entry_len(s: &[u8]) -> usize {
        let body = match parse_redis_int(s) {
            Some(v) => int_header_len(v),
            None => str_header_len(s.len()) + s.len(),
        };
        body + backlen_size(body)
    }

    /// Append `s`: as an integer entry when it is the canonical decimal form of an i64,
    /// as Redis does (src/listpack.c `lpEncodeGetType` via `lpStringToInt64`), else as a
    /// string entry with a 6-, 12- or 32-bit length.
    pub fn push(&mut self, s: &[u8]) {
        let start = self.bytes.len();
        match parse_redis_int(s) {
            Some(v) => self.put_int(v),
            None => {
                let n = s.len();
                if n < 64 {
                    self.bytes.push(0x80 | n as u8);
                } else if n < 4096 {
                    self.bytes.push(0xE0 | (n >> 8) as u8);
                    self.bytes.push(n as u8);
                } else {
                    self.bytes.push(0xF0);
                    self.bytes.extend_from_slice(&(n as u32).to_le_bytes());
                }
                self.bytes.extend_from_slice(s);
            }
        }
        let body = self.bytes.len() - start;
        put_backlen(&mut self.bytes, body);
        self.count += 1;
    }

    /// The integer encodings, smallest first (Redis src/listpack.c, `lpEncodeIntegerGetType`):
    /// 7-bit unsigned in the encoding byte, 13-bit signed in two bytes, then 16, 24, 32 and
    /// 64 bits little-endian after a tag byte.
    fn put_int(&mut self, v: i64) {
        let b = &mut self.bytes;
        if (0..=127).contains(&v) {
            b.push(v as u8);
        } else if (-4096..=4095).contains(&v) {
            let u = (v as u64) & 0x1FFF;
            b.push(0xC0 | (u >> 8) as u8);
            b.push(u as u8);
        } else if i16::try_from(v).is_ok() {
            b.push(0xF1);
            b.extend_from_slice(&(v as i16).to_le_bytes());
        } else if (-(1 << 23)..(1 << 23)).contains(&v) {
            b.push(0xF2);
            b.extend_from_slice(&(v as i32).to_le_bytes()[..3]);
        } else if i32::try_from(v).is_ok() {
            b.push(0xF3);
            b.extend_from_slice(&(v as i32).to_le_bytes());
        } else {
            b.push(0xF4);
            b.extend_from_slice(&v.to_le_bytes());
        }
    }

    /// The finished blob.
    pub fn finish(mut self) -> Vec<u8> {
        self.bytes.push(0xFF);
        let total = self.bytes.len() as u32;
        self.bytes[0..4].copy_from_slice(&total.to_le_bytes());
        let count = u16::try_from(self.count).unwrap_or(u16::MAX);
        self.bytes[4..6].copy_from_slice(&count.to_le_bytes());
        self.bytes
    }
}

fn int_header_len(v: i64) -> usize {
    if (0..=127).contains(&v) {
        1
    } else if (-4096..=4095).contains(&v) {
        2
    } else if i16::try_from(v).is_ok() {
        3
    } else if (-(1 << 23)..(1 << 23)).contains(&v) {
        4
    } else if i32::try_from(v).is_ok() {
        5
    } else {
        9
    }
}

fn str_header_len(n: usize) -> usize {
    if n < 64 {
        1
    } else if n < 4096 {
        2
    } else {
        5
    }
}

/// The back-length (Redis src/listpack.c, `lpEncodeBacklen`): the entry's size in 7-bit
/// groups, most significant first, every byte but the first with its high bit set, so a
/// reader walking backwards stops at the byte without it.
fn put_backlen(out: &mut Vec<u8>, body: usize) {
    let n = backlen_size(body);
    for i in (0..n).rev() {
        let group = ((body >> (7 * i)) & 127) as u8;
        out.push(if i == n - 1 { group } else { group | 128 });
    }
}

/// An intset (Redis src/intset.c): encoding (bytes per element: 2, 4 or 8) u32 LE, count
/// u32 LE, then the elements sorted ascending, little-endian, all at the width of the
/// widest. `members` must be distinct.
pub fn intset(members: &mut [i64]) -> Vec<u8> {
    members.sort_unstable();
    let width = match members.iter().fold((0i64, 0i64), |(lo, hi), &v| (lo.min(v), hi.max(v))) {
        (lo, hi) if lo >= i64::from(i16::MIN) && hi <= i64::from(i16::MAX) => 2,
        (lo, hi) if lo >= i64::from(i32::MIN) && hi <= i64::from(i32::MAX) => 4,
        _ => 8,
    };
    let mut out = Vec::with_capacity(8 + width * members.len());
    out.extend_from_slice(&(width as u32).to_le_bytes());
    out.extend_from_slice(&(members.len() as u32).to_le_bytes());
    for &v in members.iter() {
        out.extend_from_slice(&v.to_le_bytes()[..width]);
    }
    out
}

/// A sorted-set score as the text a listpack holds, which Redis parses back with
/// `zzlStrtod` (strtod): an integral score within 2^53 as its integer (so the listpack
/// stores it as an integer entry, as Redis's `d2string` does), anything else in Rust's
/// shortest form that reads back to the same double (`2.5`, `1e300`, `inf`).
pub fn score_text(score: f64) -> String {
    if score.fract() == 0.0 && score.abs() < (1u64 << 53) as f64 && !(score == 0.0 && score.is_sign_negative()) {
        format!("{}", score as i64)
    } else {
        format!("{score:?}")
    }
}

#[cfg(test)]
mod tests {
    use super::super::packed;
    use super::*;

    /// Every integer width and string length class reads back through the decoder (which
    /// checks what Redis's `lpValidateIntegrity` checks), with each entry's size what
    /// `entry_len` predicted.
    #[test]
    fn listpack_round_trips_every_encoding() {
        let long = vec![b'x'; 5000];
        let mid = vec![b'y'; 200];
        let items: Vec<Vec<u8>> = [
            "0",
            "127",
            "128",
            "-1",
            "-4096",
            "4095",
            "4096",
            "-32768",
            "32767",
            "32768",
            "-8388608",
            "8388607",
            "8388608",
            "-2147483648",
            "2147483647",
            "2147483648",
            "-9223372036854775808",
            "9223372036854775807",
            "9223372036854775808",
            "-0",
            "007",
            "",
            "a",
            "+5",
            " 1",
        ]
        .iter()
        .map(|s| s.as_bytes().to_vec())
        .chain([long, mid])
        .collect();
        let mut lp = Listpack::new();
        let mut predicted = 6 + 1;
        for it in &items {
            lp.push(it);
            predicted += Listpack::entry_len(it);
        }
        assert_eq!(lp.finished_len(), predicted);
        let blob = lp.finish();
        assert_eq!(blob.len(), predicted);
        assert_eq!(packed::listpack(&blob).unwrap(), items);
    }

    /// Small integers take one byte plus a one-byte back-length; a 127-byte body needs a
    /// one-byte back-length and a 128-byte one two.
    #[test]
    fn listpack_sizes_match_redis() {
        assert_eq!(Listpack::entry_len(b"5"), 2);
        assert_eq!(Listpack::entry_len(b"-5"), 3);
        assert_eq!(Listpack::entry_len(&[b'a'; 63]), 1 + 63 + 1);
        assert_eq!(Listpack::entry_len(&[b'a'; 64]), 2 + 64 + 1);
        assert_eq!(Listpack::entry_len(&[b'a'; 126]), 2 + 126 + 2);
    }

    /// The intset is sorted and as narrow as its widest member allows.
    #[test]
    fn intset_round_trips_at_each_width() {
        for members in [vec![3i64, -2, 1], vec![70000, -1], vec![i64::MIN, 0, i64::MAX]] {
            let mut m = members.clone();
            let blob = intset(&mut m);
            let mut want = members.clone();
            want.sort_unstable();
            assert_eq!(packed::intset(&blob).unwrap(), want);
        }
        assert_eq!(intset(&mut [1, 2])[0], 2);
        assert_eq!(intset(&mut [1, 40000])[0], 4);
        assert_eq!(intset(&mut [1, 1 << 40])[0], 8);
    }

    /// Score text reads back to the same double.
    #[test]
    fn score_text_round_trips() {
        for s in [0.0, 3.0, -7.0, 2.5, 1e300, -1e-300, f64::INFINITY, f64::NEG_INFINITY, 9007199254740993.0, 0.1] {
            let t = score_text(s);
            let back: f64 = t.parse().unwrap();
            assert_eq!(back.to_bits(), s.to_bits(), "{s} -> {t}");
        }
        assert_eq!(score_text(3.0), "3");
    }
}
