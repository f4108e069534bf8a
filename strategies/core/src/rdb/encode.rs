//! The RDB writer: what Redis 7.0's `rdbSaveRio` writes, with the compact encodings Redis
//! 7.0 uses for small collections under its default thresholds ([`super::pack`]).
//!
//! A dump is, in order (Redis src/rdb.c, `rdbSaveRio`):
//!
//! ```text
//! "REDIS0010"                               magic + 4-digit version
//! AUX redis-ver .. AUX ctime ..             0xFA, two strings each
//! FUNCTION2 <code> ...                      0xF5 + string, one per library
//! SELECTDB n  RESIZEDB keys expires         0xFE len, 0xFB len len (per non-empty db)
//!   [EXPIRETIME_MS t] type key value        0xFC + 8 bytes LE, type byte, strings
//!   ...
//! EOF                                       0xFF
//! CRC-64                                    8 bytes LE over everything before it
//! ```
//!
//! Strings are written the way `rdbSaveRawString` writes them: integer-encoded when the
//! string is the canonical decimal form of an 8/16/32-bit integer, LZF-compressed when
//! longer than 20 bytes and compression saves at least 4 bytes, raw otherwise.

use std::io::{self, Write};
use std::sync::atomic::{AtomicU64, Ordering};

use super::consts::*;
use super::crc::Crc64;
use super::lzf;
use super::pack;
use crate::keyspace::{DB_COUNT, Entry, EntryRef, KeyspaceView, ValueRef};

/// How to write a dump.
#[derive(Clone, Debug)]
pub struct EncodeOptions {
    /// LZF-compress strings over 20 bytes when that saves at least 4 bytes, as Redis does
    /// with `rdbcompression yes` (the default).
    pub compress: bool,
    /// Deterministic output: keys sorted per database, set members and hash fields sorted,
    /// sorted-set members ordered by (score, member), `ctime` 0 and no strategy field, so
    /// two strategies holding the same data write byte-identical files.
    pub canonical: bool,
    /// Written as the `snaplab-strategy` AUX field (outside canonical mode).
    pub strategy: Option<&'static str>,
    /// The `ctime` AUX field: unix time in seconds of the snapshot.
    pub ctime_s: i64,
}

impl Default for EncodeOptions {
    fn default() -> Self {
        EncodeOptions { compress: true, canonical: false, strategy: None, ctime_s: 0 }
    }
}

/// What a finished dump holds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EncodeStats {
    /// Bytes written, header to checksum inclusive.
    pub bytes: u64,
    /// Keys written.
    pub keys: u64,
    /// The CRC-64 stored in the trailer.
    pub checksum: u64,
}

/// Flush our own buffer to the sink in chunks of this size: large enough that the CRC is
/// computed over big slices (where crc-fast's SIMD path pays off) and writes are few.
const FLUSH_AT: usize = 64 * 1024;

/// Bytes of output after which [`RdbWriter`] steps off the CPU for a moment: 256 KiB, a
/// few hundred microseconds of encoding. It then sleeps for a microsecond (about 50 us with
/// Linux's default timer slack), so 110 MB of dump pauses about 420 times, some 25 ms in all.
///
/// Why: on a kernel without forced preemption (`PREEMPT_NONE`, 250 Hz, as on the 2-vCPU
/// machine the book's figures come from), `perf sched timehist` showed the scheduler now
/// and then running a save's encoder, even one at `SCHED_IDLE`, while a writer was ready to
/// run, until the next 4 ms tick. A sleep takes the encoder off the CPU, so the writer runs
/// within one step. A `sched_yield` in its place did not help. Through `snaplab serve`
/// (`snaplab compare --no-redis --transport resp`, pingpong alone or beside others),
/// pingpong's write p99 during a save was 2.7 ms at the median of seven runs without pacing
/// (0.27 to 3.3), 0.79 ms at the median of eleven with it (0.52 to 1.8; 1.4 ms in two runs
/// pacing every 1 MiB), and its saves took no longer.
/// Dragonfly's serializer makes the same offer cooperatively: it is a fiber on the shard's
/// thread and yields between buckets (src/server/snapshot.cc).
///
/// Not a rule for every encoder: the same pause in the sharded strategy's encoder threads
/// made its write p99 through `snaplab serve` worse (five runs each: 2.3 to 6.0 ms with it,
/// 1.1 to 3.6 ms without), so that crate does not use it.
pub const PACE_BYTES: u64 = 256 * 1024;

/// A streaming RDB writer over any [`Write`].
///
/// It buffers internally (do not wrap the sink in a `BufWriter`), computes the CRC-64 as
/// bytes leave the buffer, and counts them.
pub struct RdbWriter<W: Write> {
    out: W,
    buf: Vec<u8>,
    scratch: Vec<u8>,
    crc: Crc64,
    flushed: u64,
    keys: u64,
    compress: bool,
}

impl<W: Write> RdbWriter<W> {
    /// Start a dump: writes the `REDIS0010` header.
    ///
    /// # Errors
    /// Never fails before the first flush; the signature is `io::Result` for symmetry.
    pub fn new(out: W, compress: bool) -> io::Result<Self> {
        let mut w = RdbWriter {
            out,
            buf: Vec::with_capacity(FLUSH_AT + 4096),
            scratch: Vec::new(),
            crc: Crc64::new(),
            flushed: 0,
            keys: 0,
            compress,
        };
        w.buf.extend_from_slice(format!("REDIS{WRITE_VERSION:04}").as_bytes());
        Ok(w)
    }

    /// Write an AUX field (Redis `rdbSaveAuxField`).
    ///
    /// # Errors
    /// I/O errors from the sink.
    pub fn aux(&mut self, key: &[u8], value: &[u8]) -> io::Result<()> {
        self.buf.push(OPCODE_AUX);
        put_string(&mut self.buf, &mut self.scratch, key, self.compress);
        put_string(&mut self.buf, &mut self.scratch, value, self.compress);
        self.maybe_flush()
    }

    /// Write a function library (Redis `rdbSaveFunctions`: opcode FUNCTION2 + the source).
    ///
    /// # Errors
    /// I/O errors from the sink.
    pub fn function(&mut self, code: &[u8]) -> io::Result<()> {
        self.buf.push(OPCODE_FUNCTION2);
        put_string(&mut self.buf, &mut self.scratch, code, self.compress);
        self.maybe_flush()
    }

    /// Start database `db`: SELECTDB, then the RESIZEDB hint (Redis `rdbSaveDb`).
    ///
    /// # Errors
    /// I/O errors from the sink.
    pub fn select_db(&mut self, db: usize, keys: u64, expires: u64) -> io::Result<()> {
        self.buf.push(OPCODE_SELECTDB);
        put_len(&mut self.buf, db as u64);
        self.buf.push(OPCODE_RESIZEDB);
        put_len(&mut self.buf, keys);
        put_len(&mut self.buf, expires);
        self.maybe_flush()
    }

    /// Write one key (Redis `rdbSaveKeyValuePair`): expiry, type, key, value.
    ///
    /// # Errors
    /// I/O errors from the sink.
    pub fn entry(&mut self, key: &[u8], entry: &Entry, canonical: bool) -> io::Result<()> {
        self.entry_ref(key, entry.as_ref(), canonical)
    }

    /// [`RdbWriter::entry`] for a borrowed view of an entry.
    ///
    /// # Errors
    /// I/O errors from the sink.
    pub fn entry_ref(&mut self, key: &[u8], entry: EntryRef<'_>, canonical: bool) -> io::Result<()> {
        encode_entry_ref(&mut self.buf, &mut self.scratch, key, entry, self.compress, canonical);
        self.keys += 1;
        self.maybe_flush()
    }

    /// Append bytes another encoder produced (a whole number of records), counting
    /// `keys` keys. Used by strategies that serialize on several threads.
    ///
    /// # Errors
    /// I/O errors from the sink.
    pub fn raw_records(&mut self, bytes: &[u8], keys: u64) -> io::Result<()> {
        self.buf.extend_from_slice(bytes);
        self.keys += keys;
        self.maybe_flush()
    }

    /// Write EOF and the CRC-64 trailer, flush, and return the sink.
    ///
    /// # Errors
    /// I/O errors from the sink.
    pub fn finish(mut self) -> io::Result<(W, EncodeStats)> {
        self.buf.push(OPCODE_EOF);
        self.crc.update(&self.buf);
        let checksum = self.crc.value();
        self.buf.extend_from_slice(&checksum.to_le_bytes());
        self.out.write_all(&self.buf)?;
        self.flushed += self.buf.len() as u64;
        self.out.flush()?;
        let stats = EncodeStats { bytes: self.flushed, keys: self.keys, checksum };
        Ok((self.out, stats))
    }

    /// Keys written so far.
    pub fn keys_written(&self) -> u64 {
        self.keys
    }

    fn maybe_flush(&mut self) -> io::Result<()> {
        if self.buf.len() >= FLUSH_AT {
            self.crc.update(&self.buf);
            self.out.write_all(&self.buf)?;
            let before = self.flushed;
            self.flushed += self.buf.len() as u64;
            self.buf.clear();
            // Step off the CPU each time the output crosses a multiple of PACE_BYTES.
            if before / PACE_BYTES != self.flushed / PACE_BYTES {
                std::thread::sleep(std::time::Duration::from_micros(1));
            }
        }
        Ok(())
    }
}

/// Write a whole keyspace as one dump: header, AUX fields, functions, every non-empty
/// database, EOF, checksum.
///
/// `progress`, when given, is advanced by the number of keys written, every 1024 keys
/// (relaxed: it only feeds a progress bar).
///
/// # Errors
/// I/O errors from the sink.
pub fn write_view<V: KeyspaceView + ?Sized, W: Write>(
    view: &V,
    out: W,
    opts: &EncodeOptions,
    progress: Option<&AtomicU64>,
) -> io::Result<(W, EncodeStats)> {
    let mut w = RdbWriter::new(out, opts.compress)?;
    write_aux_fields(&mut w, opts)?;
    for code in view.functions() {
        w.function(code)?;
    }
    let mut since_report = 0u64;
    for db in 0..DB_COUNT {
        let len = view.db_len(db);
        if len == 0 {
            continue;
        }
        w.select_db(db, len as u64, view.db_expires(db) as u64)?;
        let mut write_one = |w: &mut RdbWriter<W>, key: &[u8], entry: EntryRef<'_>| -> io::Result<()> {
            w.entry_ref(key, entry, opts.canonical)?;
            since_report += 1;
            if since_report == 1024 {
                if let Some(p) = progress {
                    p.fetch_add(since_report, Ordering::Relaxed);
                }
                since_report = 0;
            }
            Ok(())
        };
        if opts.canonical {
            let mut sorted: Vec<(&[u8], EntryRef<'_>)> = view.entries(db).collect();
            sorted.sort_unstable_by(|a, b| a.0.cmp(b.0));
            for (key, entry) in sorted {
                write_one(&mut w, key, entry)?;
            }
        } else {
            for (key, entry) in view.entries(db) {
                write_one(&mut w, key, entry)?;
            }
        }
    }
    if let Some(p) = progress {
        p.fetch_add(since_report, Ordering::Relaxed);
    }
    w.finish()
}

/// The AUX fields snaplab writes: `redis-ver`, `redis-bits`, `ctime`, and outside
/// canonical mode `snaplab-strategy`.
///
/// # Errors
/// I/O errors from the sink.
pub fn write_aux_fields<W: Write>(w: &mut RdbWriter<W>, opts: &EncodeOptions) -> io::Result<()> {
    // redis-ver names the Redis release whose format (RDB 10) we write; loaders only log it.
    w.aux(b"redis-ver", b"7.0.0")?;
    w.aux(b"redis-bits", b"64")?;
    let ctime = if opts.canonical { 0 } else { opts.ctime_s };
    w.aux(b"ctime", ctime.to_string().as_bytes())?;
    if !opts.canonical
        && let Some(name) = opts.strategy
    {
        // Unknown AUX fields are skipped by every loader, by contract (Redis src/rdb.c).
        w.aux(b"snaplab-strategy", name.as_bytes())?;
    }
    Ok(())
}

/// Append one key's record to `buf`: the expiry opcode if any, the type byte, the key,
/// and the value in the encoding Redis 7.0 would choose for it. `scratch` is reused for LZF output.
pub fn encode_entry(
    buf: &mut Vec<u8>,
    scratch: &mut Vec<u8>,
    key: &[u8],
    entry: &Entry,
    compress: bool,
    canonical: bool,
) {
    encode_entry_ref(buf, scratch, key, entry.as_ref(), compress, canonical);
}

/// [`encode_entry`] for a borrowed view of an entry.
pub fn encode_entry_ref(
    buf: &mut Vec<u8>,
    scratch: &mut Vec<u8>,
    key: &[u8],
    entry: EntryRef<'_>,
    compress: bool,
    canonical: bool,
) {
    if let Some(at) = entry.expire_at_ms {
        buf.push(OPCODE_EXPIRETIME_MS);
        buf.extend_from_slice(&at.to_le_bytes());
    }
    match entry.value {
        ValueRef::String(s) => {
            buf.push(TYPE_STRING);
            put_string(buf, scratch, key, compress);
            put_string(buf, scratch, s, compress);
        }
        ValueRef::List(0, _) => {
            // Redis never saves an empty list; a plain one loads everywhere as "skip it".
            buf.push(TYPE_LIST);
            put_string(buf, scratch, key, compress);
            put_len(buf, 0);
        }
        ValueRef::List(_, items) => {
            // A quicklist (Redis src/rdb.c `rdbSaveObject`, OBJ_LIST): the node count, then
            // per node its container (2: a packed listpack) and the listpack as a string.
            // Nodes are cut at 8 KiB, as `list-max-listpack-size -2` cuts them.
            let mut nodes: Vec<Vec<u8>> = Vec::new();
            let mut node = pack::Listpack::new();
            for e in items {
                if !node.is_empty() && node.finished_len() + pack::Listpack::entry_len(e) > pack::QUICKLIST_NODE_BYTES {
                    nodes.push(std::mem::take(&mut node).finish());
                }
                node.push(e);
            }
            nodes.push(node.finish());
            buf.push(TYPE_LIST_QUICKLIST_2);
            put_string(buf, scratch, key, compress);
            put_len(buf, nodes.len() as u64);
            for n in nodes {
                put_len(buf, QUICKLIST_NODE_PACKED);
                put_string(buf, scratch, &n, compress);
            }
        }
        ValueRef::Set(len, members) if (1..=pack::MAX_INTSET_ENTRIES).contains(&len) => {
            // Small enough for an intset if every member is an integer (Redis src/t_set.c,
            // `setTypeCreate` and `isSdsRepresentableAsLongLong`).
            let members: Vec<&[u8]> = members.collect();
            let ints: Option<Vec<i64>> = members.iter().map(|m| parse_redis_int(m)).collect();
            match ints {
                Some(mut ints) => {
                    buf.push(TYPE_SET_INTSET);
                    put_string(buf, scratch, key, compress);
                    put_string(buf, scratch, &pack::intset(&mut ints), compress);
                }
                None => put_plain_set(buf, scratch, key, members, compress, canonical),
            }
        }
        ValueRef::Set(_, members) => put_plain_set(buf, scratch, key, members.collect(), compress, canonical),
        ValueRef::Hash(len, pairs) => {
            let mut pairs: Vec<(&[u8], &[u8])> = pairs.collect();
            if canonical {
                pairs.sort_unstable_by(|a, b| a.0.cmp(b.0));
            }
            let small = (1..=pack::MAX_LISTPACK_ENTRIES).contains(&len)
                && pairs
                    .iter()
                    .all(|(f, v)| f.len() <= pack::MAX_LISTPACK_VALUE && v.len() <= pack::MAX_LISTPACK_VALUE);
            if small {
                // Fields and values alternate in one listpack (Redis src/t_hash.c).
                let mut lp = pack::Listpack::new();
                for (f, v) in &pairs {
                    lp.push(f);
                    lp.push(v);
                }
                buf.push(TYPE_HASH_LISTPACK);
                put_string(buf, scratch, key, compress);
                put_string(buf, scratch, &lp.finish(), compress);
            } else {
                buf.push(TYPE_HASH);
                put_string(buf, scratch, key, compress);
                put_len(buf, len as u64);
                for (f, v) in pairs {
                    put_string(buf, scratch, f, compress);
                    put_string(buf, scratch, v, compress);
                }
            }
        }
        ValueRef::ZSet(_, pairs) => {
            // Collected once: deciding the encoding needs a look at every member first.
            let mut pairs: Vec<(&[u8], f64)> = pairs.collect();
            let small = (1..=pack::MAX_LISTPACK_ENTRIES).contains(&pairs.len())
                && pairs.iter().all(|(m, _)| m.len() <= pack::MAX_LISTPACK_VALUE);
            if canonical || small {
                // A listpack sorted set is in (score, member) order (Redis src/t_zset.c, zzl*).
                pairs.sort_unstable_by(|a, b| a.1.total_cmp(&b.1).then_with(|| a.0.cmp(b.0)));
            }
            if small && !keeps_negative_zero_packed(&pairs) {
                // Member and score alternate; the score as text (Redis `zzlInsertAt`).
                let mut lp = pack::Listpack::new();
                for (m, s) in &pairs {
                    lp.push(m);
                    lp.push(pack::score_text(*s).as_bytes());
                }
                buf.push(TYPE_ZSET_LISTPACK);
                put_string(buf, scratch, key, compress);
                put_string(buf, scratch, &lp.finish(), compress);
            } else if keeps_negative_zero_packed(&pairs) {
                buf.push(TYPE_ZSET_ZIPLIST);
                put_string(buf, scratch, key, compress);
                // Scores as text that Redis's zzlStrtod parses back exactly; `{:?}` is Rust's
                // shortest round-trip form ("-0.0", "2.5", "1e300", "inf"), never an integer
                // string, so Redis keeps it a string and the sign of zero survives.
                let scores: Vec<String> = pairs.iter().map(|(_, s)| format!("{s:?}")).collect();
                let mut items: Vec<&[u8]> = Vec::with_capacity(pairs.len() * 2);
                for ((m, _), s) in pairs.iter().zip(&scores) {
                    items.push(m);
                    items.push(s.as_bytes());
                }
                let blob = ziplist(&items);
                put_string(buf, scratch, &blob, compress);
            } else {
                buf.push(TYPE_ZSET_2);
                put_string(buf, scratch, key, compress);
                put_len(buf, pairs.len() as u64);
                for (m, s) in pairs {
                    put_string(buf, scratch, m, compress);
                    // RDB_TYPE_ZSET_2: the score as a binary double, little-endian
                    // (Redis src/rdb.c, rdbSaveBinaryDoubleValue).
                    buf.extend_from_slice(&s.to_le_bytes());
                }
            }
        }
        ValueRef::Opaque(rdb_type, payload) => {
            buf.push(rdb_type);
            put_string(buf, scratch, key, compress);
            buf.extend_from_slice(payload);
        }
    }
}

/// A set as RDB's plain encoding: its length, then each member (sorted when `canonical`).
fn put_plain_set(
    buf: &mut Vec<u8>,
    scratch: &mut Vec<u8>,
    key: &[u8],
    mut members: Vec<&[u8]>,
    compress: bool,
    canonical: bool,
) {
    if canonical {
        members.sort_unstable();
    }
    buf.push(TYPE_SET);
    put_string(buf, scratch, key, compress);
    put_len(buf, members.len() as u64);
    for m in members {
        put_string(buf, scratch, m, compress);
    }
}

/// Whether a sorted set must be written as a ziplist (type 12) to keep a `-0` score.
///
/// Redis converts a small plain sorted set (at most 128 members of at most 64 bytes, its
/// default `zset-max-listpack-*`) into a listpack on load, and stores a `-0.0` score there
/// as the integer 0 (src/t_zset.c `zzlInsertAt`, via `double2ll`), so `ZSCORE` would change
/// from `-0` to `0`. A packed blob is kept as it is, with its score strings, so for that
/// one case we write what Redis 5 and 6 wrote for small sorted sets: a ziplist.
fn keeps_negative_zero_packed(zset: &[(&[u8], f64)]) -> bool {
    zset.len() <= ZSET_MAX_LISTPACK_ENTRIES
        && zset.iter().any(|(_, s)| *s == 0.0 && s.is_sign_negative())
        && zset.iter().all(|(m, _)| m.len() <= ZSET_MAX_LISTPACK_VALUE)
}

/// Build a ziplist of string entries (Redis src/ziplist.c): `zlbytes` u32 LE, `zltail`
/// u32 LE (offset of the last entry), `zllen` u16 LE, then each entry as its previous
/// entry's length (1 byte, or 0xFE and a u32 LE) and a string header (6, 14 or 32 bits
/// of length), and 0xFF at the end.
fn ziplist(items: &[&[u8]]) -> Vec<u8> {
    let mut zl = vec![0u8; 10];
    let mut prev_len = 0usize;
    let mut tail = 10usize;
    for item in items {
        tail = zl.len();
        if prev_len < 254 {
            zl.push(prev_len as u8);
        } else {
            zl.push(0xFE);
            zl.extend_from_slice(&(prev_len as u32).to_le_bytes());
        }
        let n = item.len();
        if n < 1 << 6 {
            zl.push(n as u8);
        } else if n < 1 << 14 {
            zl.push(0x40 | (n >> 8) as u8);
            zl.push(n as u8);
        } else {
            zl.push(0x80);
            zl.extend_from_slice(&(n as u32).to_be_bytes());
        }
        zl.extend_from_slice(item);
        prev_len = zl.len() - tail;
    }
    zl.push(0xFF);
    let total = zl.len() as u32;
    zl[0..4].copy_from_slice(&total.to_le_bytes());
    zl[4..8].copy_from_slice(&(tail as u32).to_le_bytes());
    zl[8..10].copy_from_slice(&(items.len().min(u16::MAX as usize) as u16).to_le_bytes());
    zl
}

/// Append a length in RDB's length encoding (Redis src/rdb.c, `rdbSaveLen`): 6 bits in
/// one byte, 14 bits in two (big-endian), else a marker byte and 32 or 64 bits big-endian.
pub fn put_len(buf: &mut Vec<u8>, len: u64) {
    if len < 1 << 6 {
        buf.push(len as u8);
    } else if len < 1 << 14 {
        buf.push(((len >> 8) as u8) | (LEN_14BIT << 6));
        buf.push(len as u8);
    } else if len <= u64::from(u32::MAX) {
        buf.push(LEN_32BIT);
        buf.extend_from_slice(&(len as u32).to_be_bytes());
    } else {
        buf.push(LEN_64BIT);
        buf.extend_from_slice(&len.to_be_bytes());
    }
}

/// Append a string the way Redis's `rdbSaveRawString` does: integer encoding for short
/// canonical decimals that fit 32 bits, LZF for strings over 20 bytes that shrink by at
/// least 4 bytes (when `compress`), raw otherwise.
pub fn put_string(buf: &mut Vec<u8>, scratch: &mut Vec<u8>, s: &[u8], compress: bool) {
    if s.len() <= 11
        && let Some(v) = parse_redis_int(s)
        && put_int(buf, v)
    {
        return;
    }
    // Under 21 bytes LZF cannot shrink even "aaaa..." by 4 bytes, so Redis does not try.
    if compress && s.len() > 20 && lzf::compress(s, s.len() - 4, scratch) {
        buf.push((LEN_ENCVAL << 6) | ENC_LZF);
        put_len(buf, scratch.len() as u64);
        put_len(buf, s.len() as u64);
        buf.extend_from_slice(scratch);
        return;
    }
    put_len(buf, s.len() as u64);
    buf.extend_from_slice(s);
}

/// Integer-encode `v` if it fits 8, 16 or 32 bits (Redis src/rdb.c, `rdbEncodeInteger`).
fn put_int(buf: &mut Vec<u8>, v: i64) -> bool {
    let enc = LEN_ENCVAL << 6;
    if let Ok(b) = i8::try_from(v) {
        buf.extend_from_slice(&[enc | ENC_INT8, b as u8]);
    } else if let Ok(h) = i16::try_from(v) {
        buf.push(enc | ENC_INT16);
        buf.extend_from_slice(&h.to_le_bytes());
    } else if let Ok(w) = i32::try_from(v) {
        buf.push(enc | ENC_INT32);
        buf.extend_from_slice(&w.to_le_bytes());
    } else {
        return false;
    }
    true
}

/// Parse `s` as Redis's `string2ll` does: the canonical decimal form of an i64 only (no
/// sign `+`, no leading zeros, no `-0`, no spaces), so that printing the integer gives
/// back exactly `s`. Only such strings may be stored integer-encoded.
pub fn parse_redis_int(s: &[u8]) -> Option<i64> {
    let (neg, digits) = match s.split_first()? {
        (b'-', rest) => (true, rest),
        _ => (false, s),
    };
    match digits {
        [b'0'] if !neg => return Some(0),
        [b'1'..=b'9', ..] => {}
        _ => return None,
    }
    let mut v: u64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
    }
    if neg {
        if v <= i64::MAX as u64 + 1 { Some((v as i64).wrapping_neg()) } else { None }
    } else {
        i64::try_from(v).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each collection takes the encoding Redis 7.0 would give it, just inside and just
    /// outside each threshold, and reads back equal.
    #[test]
    fn collections_take_redis_7_encodings_at_the_thresholds() {
        use crate::keyspace::{Keyspace, Value};
        use std::collections::{HashMap, HashSet, VecDeque};
        let b = |s: String| s.into_bytes();
        let mut ks = Keyspace::new();
        let mut put = |k: &str, v: Value| ks.insert(0, k.as_bytes().to_vec(), Entry::new(v));
        let hash = |n: usize, len: usize| -> HashMap<Vec<u8>, Vec<u8>> {
            (0..n)
                .map(|i| {
                    (b(format!("f{i}")), {
                        let mut v = b(format!("{i}"));
                        v.resize(len.max(v.len()), b'v');
                        v
                    })
                })
                .collect()
        };
        put("h-small", Value::Hash(Box::new(hash(128, 64))));
        put("h-many", Value::Hash(Box::new(hash(129, 1))));
        put("h-long", Value::Hash(Box::new(hash(3, 65))));
        put("s-ints", Value::Set(Box::new((0..512).map(|i| b(format!("{}", i * 1000 - 7))).collect())));
        put("s-many-ints", Value::Set(Box::new((0..513).map(|i| b(format!("{i}"))).collect())));
        put("s-text", Value::Set(Box::new(HashSet::from([b("1".into()), b("x".into())]))));
        put("s-wide", Value::Set(Box::new(HashSet::from([b(i64::MIN.to_string()), b("2".into())]))));
        let zset = |n: usize, len: usize| -> HashMap<Vec<u8>, f64> {
            (0..n)
                .map(|i| {
                    let mut m = b(format!("m{i}"));
                    m.resize(len.max(m.len()), b'm');
                    (m, i as f64 * 0.5 - 3.0)
                })
                .collect()
        };
        put("z-small", Value::ZSet(Box::new(zset(128, 64))));
        put("z-many", Value::ZSet(Box::new(zset(129, 1))));
        put("z-long", Value::ZSet(Box::new(zset(2, 65))));
        put("l-one-node", Value::List(Box::new(VecDeque::from([b("a".into()), b("17".into())]))));
        put("l-nodes", Value::List(Box::new((0..3000).map(|i| b(format!("item:{i}"))).collect())));
        let (bytes, _) = write_view(&ks, Vec::new(), &EncodeOptions::default(), None).unwrap();
        let mut types = HashMap::new();
        super::super::decode::scan(&bytes[..], |r| {
            types.insert(String::from_utf8(r.key.clone()).unwrap(), r.rdb_type);
        })
        .unwrap();
        let want = [
            ("h-small", TYPE_HASH_LISTPACK),
            ("h-many", TYPE_HASH),
            ("h-long", TYPE_HASH),
            ("s-ints", TYPE_SET_INTSET),
            ("s-many-ints", TYPE_SET),
            ("s-text", TYPE_SET),
            ("s-wide", TYPE_SET_INTSET),
            ("z-small", TYPE_ZSET_LISTPACK),
            ("z-many", TYPE_ZSET_2),
            ("z-long", TYPE_ZSET_2),
            ("l-one-node", TYPE_LIST_QUICKLIST_2),
            ("l-nodes", TYPE_LIST_QUICKLIST_2),
        ];
        for (k, t) in want {
            assert_eq!(types.get(k), Some(&t), "{k}");
        }
        let (back, _) = super::super::decode::load(&bytes[..]).unwrap();
        assert_eq!(back, ks);
    }

    /// Only canonical decimals are integers; the edge cases Redis's string2ll rejects are
    /// rejected here too.
    #[test]
    fn redis_int_parsing() {
        for (s, want) in [
            ("0", Some(0)),
            ("-1", Some(-1)),
            ("123", Some(123)),
            ("9223372036854775807", Some(i64::MAX)),
            ("-9223372036854775808", Some(i64::MIN)),
            ("9223372036854775808", None),
            ("-0", None),
            ("0123", None),
            ("+1", None),
            (" 1", None),
            ("", None),
            ("-", None),
            ("1a", None),
        ] {
            assert_eq!(parse_redis_int(s.as_bytes()), want, "{s:?}");
        }
    }

    /// The encodings Redis 7.0.15 chose for the corpus dataset: int8 for -100, int16 for
    /// 12345, int32 for 2147483647, raw for 0123 and for i64::MAX.
    #[test]
    fn string_encodings_match_redis() {
        let enc = |s: &str| {
            let mut b = Vec::new();
            put_string(&mut b, &mut Vec::new(), s.as_bytes(), true);
            b
        };
        assert_eq!(enc("-100"), [0xc0, 0x9c]);
        assert_eq!(enc("12345"), [0xc1, 0x39, 0x30]);
        assert_eq!(enc("2147483647"), [0xc2, 0xff, 0xff, 0xff, 0x7f]);
        assert_eq!(enc("0123"), b"\x040123");
        assert_eq!(enc("9223372036854775807")[0], 19);
        assert_eq!(enc(&"a".repeat(20))[0], 20, "20 bytes are never compressed");
        assert_eq!(enc(&"a".repeat(21))[0], 0xc3, "21 repeated bytes are");
    }

    /// A small sorted set holding a -0 score is written as a ziplist that our reader (and
    /// Redis) decode back to -0, with the other scores exact.
    #[test]
    fn negative_zero_score_survives() {
        use crate::keyspace::{Entry, Keyspace, Value};
        let mut ks = Keyspace::new();
        let z: std::collections::HashMap<Vec<u8>, f64> =
            [(b"a".to_vec(), -0.0), (b"b".to_vec(), 2.5), (b"c".to_vec(), f64::NEG_INFINITY), (b"d".to_vec(), 1e300)]
                .into();
        ks.insert(0, b"z".to_vec(), Entry::new(Value::ZSet(Box::new(z.clone()))));
        let (dump, _) = write_view(&ks, Vec::new(), &EncodeOptions::default(), None).unwrap();
        let (back, _) = crate::rdb::load(dump.as_slice()).unwrap();
        let Value::ZSet(got) = &back.get(0, b"z").unwrap().value else { panic!("not a zset") };
        for (m, s) in &z {
            assert_eq!(got[m].to_bits(), s.to_bits(), "score of {m:?}");
        }
        assert!(dump.windows(2).any(|w| w == [TYPE_ZSET_ZIPLIST, 1]), "written as a ziplist");
    }

    /// Each length lands in the smallest of the four forms rdbSaveLen uses.
    #[test]
    fn length_encoding_boundaries() {
        let enc = |n: u64| {
            let mut b = Vec::new();
            put_len(&mut b, n);
            b
        };
        assert_eq!(enc(63), [63]);
        assert_eq!(enc(64), [0x40, 64]);
        assert_eq!(enc(16383), [0x7f, 0xff]);
        assert_eq!(enc(16384), [0x80, 0, 0, 0x40, 0]);
        assert_eq!(enc(1 << 32), [0x81, 0, 0, 0, 1, 0, 0, 0, 0]);
    }
}
