//! The streaming RDB reader: everything Redis 2.x to 7.4 writes (RDB versions 1 to 12).
//!
//! [`RdbReader`] pulls one [`Item`] at a time from any [`Read`] through a 64 KiB buffer,
//! so a dump of any size is read in constant memory (plus the key being decoded). The
//! rules come from Redis src/rdb.c, `rdbLoadRioWithLoadingCtx` (the opcode loop) and
//! `rdbLoadObject` (the value types).
//!
//! Hostile input is expected. Every error is a typed [`RdbError`] with the byte offset
//! where the problem was found, and no allocation is made that the input has not
//! justified: strings grow as their bytes actually arrive, element counts only
//! pre-allocate a bounded amount, and an LZF string may claim at most the 88x expansion
//! LZF can reach.

use std::collections::{HashMap, HashSet, VecDeque};
use std::fs::File;
use std::io::{self, Read};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use super::consts::*;
use super::crc::Crc64;
use super::{lzf, packed};
use crate::command::escape;
use crate::keyspace::{Bytes, DB_COUNT, Entry, Keyspace, Opaque, Value};

/// Why a dump could not be read. Every variant carries the byte offset (from the start of
/// the file) where the problem was found; [`RdbError::offset`] returns it.
#[derive(Debug, thiserror::Error)]
pub enum RdbError {
    /// The underlying reader failed.
    #[error("I/O error at byte {offset}: {source}")]
    Io {
        /// Where.
        offset: u64,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// The input ended in the middle of something.
    #[error("unexpected end of file at byte {offset} while reading {what}")]
    Truncated {
        /// Where the input ended.
        offset: u64,
        /// What was being read.
        what: &'static str,
    },
    /// The file does not start with `REDIS` and four digits.
    #[error("not an RDB file: it starts with {found:?}, not \"REDIS\" and a 4-digit version")]
    BadSignature {
        /// The first bytes, escaped.
        found: String,
    },
    /// The version is outside 1..=12.
    #[error("RDB version {version} is not supported (this reader handles 1 to {MAX_READ_VERSION})")]
    UnsupportedVersion {
        /// The version in the header.
        version: u32,
    },
    /// The CRC-64 trailer does not match the data.
    #[error("checksum mismatch at byte {offset}: the file says {stored:#018x}, the data gives {computed:#018x}")]
    Checksum {
        /// Offset of the trailer.
        offset: u64,
        /// The checksum stored in the file.
        stored: u64,
        /// The checksum of the bytes read.
        computed: u64,
    },
    /// A byte that is neither an opcode nor a value type we know.
    #[error("unknown opcode or value type {byte} at byte {offset}")]
    UnknownType {
        /// Where.
        offset: u64,
        /// The byte.
        byte: u8,
    },
    /// A structure is malformed.
    #[error("corrupt {what} at byte {offset}: {reason}")]
    Corrupt {
        /// Where the malformed structure starts.
        offset: u64,
        /// What it is (e.g. "ziplist of key list:1").
        what: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A key holds a module value; we cannot load it (neither can a Redis without the module).
    #[error("key {key} at byte {offset} holds a value of module '{module}', which snaplab cannot load")]
    ModuleValue {
        /// Offset of the value.
        offset: u64,
        /// The key, escaped.
        key: String,
        /// The module type name decoded from its id (Redis `moduleTypeNameByID`).
        module: String,
    },
    /// Module auxiliary data; Redis without the module refuses the file, and so do we.
    #[error("auxiliary data of module '{module}' at byte {offset}, which snaplab cannot load")]
    ModuleAux {
        /// Where.
        offset: u64,
        /// The module type name.
        module: String,
    },
    /// `SELECTDB` names a database beyond the 16 we model.
    #[error("SELECTDB {db} at byte {offset} is out of range (there are {DB_COUNT} databases)")]
    DbOutOfRange {
        /// Where.
        offset: u64,
        /// The database number in the file.
        db: u64,
    },
    /// The same key appears twice in one database (Redis panics on this).
    #[error("key {key} appears twice in db {db}, the second time at byte {offset}")]
    DuplicateKey {
        /// Offset of the second occurrence.
        offset: u64,
        /// The database.
        db: usize,
        /// The key, escaped.
        key: String,
    },
    /// The function format of the Redis 7.0 release candidates, which Redis refuses too.
    #[error("function library at byte {offset} uses the pre-release 7.0 format, which Redis refuses too")]
    PreGaFunction {
        /// Where.
        offset: u64,
    },
}

impl RdbError {
    /// The byte offset where the problem was found.
    pub fn offset(&self) -> u64 {
        match self {
            RdbError::BadSignature { .. } => 0,
            RdbError::UnsupportedVersion { .. } => 5,
            RdbError::Io { offset, .. }
            | RdbError::Truncated { offset, .. }
            | RdbError::Checksum { offset, .. }
            | RdbError::UnknownType { offset, .. }
            | RdbError::Corrupt { offset, .. }
            | RdbError::ModuleValue { offset, .. }
            | RdbError::ModuleAux { offset, .. }
            | RdbError::DbOutOfRange { offset, .. }
            | RdbError::DuplicateKey { offset, .. }
            | RdbError::PreGaFunction { offset } => *offset,
        }
    }
}

/// Never pre-allocate more than this many elements on the word of a length field: a
/// claim of 2^60 elements in a 100-byte file must not allocate anything big. Past this,
/// collections grow as elements actually decode.
const PREALLOC_LIMIT: usize = 4096;

/// LZF's densest code is a 3-byte back reference producing 264 bytes, so `n` compressed
/// bytes can never expand to more than 88 x n.
const LZF_MAX_RATIO: u64 = 88;

enum SrcError {
    Eof,
    Io(io::Error),
}

/// A buffered reader that knows its offset, checksums what it consumes, and can record a
/// span of consumed bytes (to carry opaque values verbatim).
struct Source<R> {
    inner: R,
    buf: Box<[u8]>,
    pos: usize,
    end: usize,
    base: u64,
    crc: Crc64,
    crc_from: usize,
    record: Option<Vec<u8>>,
    record_from: usize,
    progress: Option<Arc<AtomicU64>>,
}

impl<R: Read> Source<R> {
    fn new(inner: R) -> Self {
        Source {
            inner,
            buf: vec![0; 64 * 1024].into_boxed_slice(),
            pos: 0,
            end: 0,
            base: 0,
            crc: Crc64::new(),
            crc_from: 0,
            record: None,
            record_from: 0,
            progress: None,
        }
    }

    fn offset(&self) -> u64 {
        self.base + self.pos as u64
    }

    /// Account the consumed part of the buffer to the checksum and the recording.
    fn sync(&mut self) {
        self.crc.update(&self.buf[self.crc_from..self.pos]);
        self.crc_from = self.pos;
        if let Some(r) = &mut self.record {
            r.extend_from_slice(&self.buf[self.record_from..self.pos]);
        }
        self.record_from = self.pos;
    }

    /// Make at least one unread byte available; `Ok(false)` at end of input.
    fn fill(&mut self) -> Result<bool, SrcError> {
        if self.pos < self.end {
            return Ok(true);
        }
        self.sync();
        self.base += self.end as u64;
        self.pos = 0;
        self.end = 0;
        self.crc_from = 0;
        self.record_from = 0;
        if let Some(p) = &self.progress {
            p.store(self.base, Ordering::Relaxed);
        }
        loop {
            match self.inner.read(&mut self.buf) {
                Ok(0) => return Ok(false),
                Ok(n) => {
                    self.end = n;
                    return Ok(true);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(SrcError::Io(e)),
            }
        }
    }

    fn read_exact(&mut self, out: &mut [u8]) -> Result<(), SrcError> {
        let mut done = 0;
        while done < out.len() {
            if !self.fill()? {
                return Err(SrcError::Eof);
            }
            let n = (self.end - self.pos).min(out.len() - done);
            out[done..done + n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
            self.pos += n;
            done += n;
        }
        Ok(())
    }

    /// Append exactly `n` bytes to `out`, growing it only as bytes arrive.
    fn read_to_vec(&mut self, mut n: u64, out: &mut Vec<u8>) -> Result<(), SrcError> {
        while n > 0 {
            if !self.fill()? {
                return Err(SrcError::Eof);
            }
            let take = ((self.end - self.pos) as u64).min(n) as usize;
            out.extend_from_slice(&self.buf[self.pos..self.pos + take]);
            self.pos += take;
            n -= take as u64;
        }
        Ok(())
    }

    fn checksum(&mut self) -> u64 {
        self.sync();
        self.crc.value()
    }

    fn start_recording(&mut self) {
        self.sync();
        self.record = Some(Vec::new());
    }

    fn stop_recording(&mut self) -> Vec<u8> {
        self.sync();
        self.record.take().unwrap_or_default()
    }
}

/// How a string value was stored in the file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StringEncoding {
    /// Length-prefixed bytes.
    Raw,
    /// 8-bit integer encoding.
    Int8,
    /// 16-bit integer encoding.
    Int16,
    /// 32-bit integer encoding.
    Int32,
    /// LZF-compressed.
    Lzf,
}

impl StringEncoding {
    /// Lower-case name (`raw`, `int8`, `int16`, `int32`, `lzf`).
    pub fn name(self) -> &'static str {
        match self {
            StringEncoding::Raw => "raw",
            StringEncoding::Int8 => "int8",
            StringEncoding::Int16 => "int16",
            StringEncoding::Int32 => "int32",
            StringEncoding::Lzf => "lzf",
        }
    }
}

/// One key as found in the file.
#[derive(Clone, Debug)]
pub struct KeyRecord {
    /// Its database.
    pub db: usize,
    /// The key.
    pub key: Bytes,
    /// The value and expiry.
    pub entry: Entry,
    /// The RDB value type byte it was stored with (see [`type_name`]).
    pub rdb_type: u8,
    /// For strings, how the value string was encoded.
    pub string_encoding: Option<StringEncoding>,
    /// The LRU idle time in seconds (opcode IDLE), if present.
    pub lru_idle_s: Option<u64>,
    /// The LFU frequency counter (opcode FREQ), if present.
    pub lfu_freq: Option<u8>,
    /// Offset of the record's value type byte.
    pub offset: u64,
}

impl KeyRecord {
    /// The encoding as found in the file, e.g. `list_quicklist_2` or `string (int16)`.
    pub fn encoding(&self) -> String {
        let t = type_name(self.rdb_type).unwrap_or("unknown");
        match self.string_encoding {
            Some(e) => format!("{t} ({})", e.name()),
            None => t.to_string(),
        }
    }
}

/// One step of a dump.
#[derive(Clone, Debug)]
pub enum Item {
    /// An AUX field.
    Aux {
        /// Field name.
        key: Bytes,
        /// Field value.
        value: Bytes,
    },
    /// The following keys belong to database `db`.
    SelectDb {
        /// The database.
        db: usize,
    },
    /// Size hints for the current database.
    ResizeDb {
        /// Number of keys.
        keys: u64,
        /// Number of keys with an expiry.
        expires: u64,
    },
    /// Cluster slot sizes (RDB 12), informational.
    SlotInfo {
        /// Slot id.
        slot: u64,
        /// Keys in the slot.
        size: u64,
        /// Keys with an expiry in the slot.
        expires: u64,
    },
    /// A function library's source.
    Function {
        /// The source code, e.g. `#!lua name=mylib ...`.
        code: Bytes,
    },
    /// A key.
    Key(KeyRecord),
    /// An empty collection, which Redis skips on load ("skipping empty key") and so do we.
    EmptyKeySkipped {
        /// Its database.
        db: usize,
        /// The key.
        key: Bytes,
        /// The RDB type it was stored with.
        rdb_type: u8,
    },
}

/// What the trailer said.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Checksum {
    /// The CRC-64 matched.
    Verified(u64),
    /// The trailer was zero: the dump was written with `rdbchecksum no`.
    Disabled,
    /// RDB versions before 5 have no trailer.
    Absent,
}

/// A streaming RDB reader. See the module documentation.
pub struct RdbReader<R> {
    src: Source<R>,
    version: u32,
    db: usize,
    expire: Option<i64>,
    lru: Option<u64>,
    lfu: Option<u8>,
    checksum: Option<Checksum>,
    last_string_encoding: StringEncoding,
    /// The key whose value is being decoded (kept after an error, for the report).
    reading: Option<(usize, Bytes)>,
}

impl<R: Read> RdbReader<R> {
    /// Read the header.
    ///
    /// # Errors
    /// [`RdbError::BadSignature`], [`RdbError::UnsupportedVersion`], truncation or I/O.
    pub fn new(inner: R) -> Result<Self, RdbError> {
        let mut r = RdbReader {
            src: Source::new(inner),
            version: 0,
            db: 0,
            expire: None,
            lru: None,
            lfu: None,
            checksum: None,
            last_string_encoding: StringEncoding::Raw,
            reading: None,
        };
        let mut magic = [0u8; 9];
        let mut got = 0;
        while got < 9 {
            match r.src.read_exact(&mut magic[got..got + 1]) {
                Ok(()) => got += 1,
                Err(SrcError::Eof) => break,
                Err(SrcError::Io(e)) => return Err(RdbError::Io { offset: got as u64, source: e }),
            }
        }
        let digits = &magic[5..got.max(5)];
        if got < 9 || &magic[..5] != b"REDIS" || !digits.iter().all(u8::is_ascii_digit) {
            return Err(RdbError::BadSignature { found: escape(&magic[..got]) });
        }
        let version: u32 = std::str::from_utf8(digits).ok().and_then(|s| s.parse().ok()).unwrap_or(0);
        if !(1..=MAX_READ_VERSION).contains(&version) {
            return Err(RdbError::UnsupportedVersion { version });
        }
        r.version = version;
        Ok(r)
    }

    /// Report bytes consumed so far into `counter` (for a progress bar).
    pub fn set_progress(&mut self, counter: Arc<AtomicU64>) {
        self.src.progress = Some(counter);
    }

    /// The RDB version from the header.
    pub fn version(&self) -> u32 {
        self.version
    }

    /// Bytes consumed so far.
    pub fn offset(&self) -> u64 {
        self.src.offset()
    }

    /// The database and key whose value was being decoded when the last error happened
    /// (`None` if the error was outside a value).
    pub fn key_being_read(&self) -> Option<&(usize, Bytes)> {
        self.reading.as_ref()
    }

    /// The trailer's verdict, once [`RdbReader::next_item`] has returned `None`.
    pub fn checksum(&self) -> Option<Checksum> {
        self.checksum
    }

    /// The next item, or `None` after the EOF opcode and a good checksum.
    ///
    /// # Errors
    /// Any [`RdbError`]; after an error the reader should not be used again.
    pub fn next_item(&mut self) -> Result<Option<Item>, RdbError> {
        if self.checksum.is_some() {
            return Ok(None);
        }
        loop {
            let offset = self.src.offset();
            let t = self.u8("an opcode or value type")?;
            match t {
                OPCODE_EXPIRETIME => {
                    let mut b = [0; 4];
                    self.exact(&mut b, "an expiry (seconds)")?;
                    self.expire = Some(i64::from(i32::from_le_bytes(b)) * 1000);
                }
                OPCODE_EXPIRETIME_MS => self.expire = Some(self.ms_time("an expiry (ms)")?),
                OPCODE_FREQ => self.lfu = Some(self.u8("an LFU frequency")?),
                OPCODE_IDLE => self.lru = Some(self.len("an LRU idle time")?),
                OPCODE_EOF => {
                    self.finish()?;
                    return Ok(None);
                }
                OPCODE_SELECTDB => {
                    let db = self.len("a SELECTDB number")?;
                    if db >= DB_COUNT as u64 {
                        return Err(RdbError::DbOutOfRange { offset, db });
                    }
                    self.db = db as usize;
                    return Ok(Some(Item::SelectDb { db: self.db }));
                }
                OPCODE_RESIZEDB => {
                    let keys = self.len("a RESIZEDB size")?;
                    let expires = self.len("a RESIZEDB size")?;
                    return Ok(Some(Item::ResizeDb { keys, expires }));
                }
                OPCODE_SLOT_INFO => {
                    let slot = self.len("SLOT_INFO")?;
                    let size = self.len("SLOT_INFO")?;
                    let expires = self.len("SLOT_INFO")?;
                    return Ok(Some(Item::SlotInfo { slot, size, expires }));
                }
                OPCODE_AUX => {
                    let key = self.string("an AUX field name")?;
                    let value = self.string("an AUX field value")?;
                    return Ok(Some(Item::Aux { key, value }));
                }
                OPCODE_MODULE_AUX => {
                    let id = self.len("a module id")?;
                    return Err(RdbError::ModuleAux { offset, module: module_name(id) });
                }
                OPCODE_FUNCTION_PRE_GA => return Err(RdbError::PreGaFunction { offset }),
                OPCODE_FUNCTION2 => {
                    let code = self.string("a function library")?;
                    return Ok(Some(Item::Function { code }));
                }
                _ => return self.key_record(t, offset).map(Some),
            }
        }
    }

    fn key_record(&mut self, t: u8, offset: u64) -> Result<Item, RdbError> {
        if type_name(t).is_none() {
            return Err(RdbError::UnknownType { offset, byte: t });
        }
        let key = self.string("a key")?;
        self.reading = Some((self.db, key.clone()));
        let value = self.value(t, &key)?;
        self.reading = None;
        let string_encoding = (t == TYPE_STRING).then_some(self.last_string_encoding);
        let expire = self.expire.take();
        let (lru_idle_s, lfu_freq) = (self.lru.take(), self.lfu.take());
        Ok(match value {
            Some(value) => Item::Key(KeyRecord {
                db: self.db,
                key,
                entry: Entry { value, expire_at_ms: expire },
                rdb_type: t,
                string_encoding,
                lru_idle_s,
                lfu_freq,
                offset,
            }),
            None => Item::EmptyKeySkipped { db: self.db, key, rdb_type: t },
        })
    }

    /// After the EOF opcode: check the CRC-64 trailer (RDB 5 and later).
    fn finish(&mut self) -> Result<(), RdbError> {
        let computed = self.src.checksum();
        if self.version < 5 {
            self.checksum = Some(Checksum::Absent);
            return Ok(());
        }
        let offset = self.src.offset();
        let stored = self.ms_time("the CRC-64 trailer")? as u64;
        self.checksum = Some(if stored == 0 {
            Checksum::Disabled
        } else if stored == computed {
            Checksum::Verified(stored)
        } else {
            return Err(RdbError::Checksum { offset, stored, computed });
        });
        Ok(())
    }

    // ---- primitives ------------------------------------------------------------------

    fn map_err(&self, e: SrcError, what: &'static str) -> RdbError {
        match e {
            SrcError::Eof => RdbError::Truncated { offset: self.src.offset(), what },
            SrcError::Io(source) => RdbError::Io { offset: self.src.offset(), source },
        }
    }

    fn exact(&mut self, out: &mut [u8], what: &'static str) -> Result<(), RdbError> {
        self.src.read_exact(out).map_err(|e| self.map_err(e, what))
    }

    fn u8(&mut self, what: &'static str) -> Result<u8, RdbError> {
        let mut b = [0u8; 1];
        self.exact(&mut b, what)?;
        Ok(b[0])
    }

    fn ms_time(&mut self, what: &'static str) -> Result<i64, RdbError> {
        let mut b = [0u8; 8];
        self.exact(&mut b, what)?;
        Ok(i64::from_le_bytes(b))
    }

    fn corrupt(&self, offset: u64, what: impl Into<String>, reason: impl Into<String>) -> RdbError {
        RdbError::Corrupt { offset, what: what.into(), reason: reason.into() }
    }

    /// A length, or the special-encoding marker (Redis `rdbLoadLenByRef`).
    fn len_or_enc(&mut self, what: &'static str) -> Result<(u64, bool), RdbError> {
        let offset = self.src.offset();
        let b = self.u8(what)?;
        match b >> 6 {
            LEN_ENCVAL => Ok((u64::from(b & 0x3F), true)),
            LEN_6BIT => Ok((u64::from(b & 0x3F), false)),
            LEN_14BIT => Ok(((u64::from(b & 0x3F) << 8) | u64::from(self.u8(what)?), false)),
            _ => match b {
                LEN_32BIT => {
                    let mut x = [0; 4];
                    self.exact(&mut x, what)?;
                    Ok((u64::from(u32::from_be_bytes(x)), false))
                }
                LEN_64BIT => {
                    let mut x = [0; 8];
                    self.exact(&mut x, what)?;
                    Ok((u64::from_be_bytes(x), false))
                }
                _ => Err(self.corrupt(offset, what, format!("unknown length encoding byte {b:#04x}"))),
            },
        }
    }

    fn len(&mut self, what: &'static str) -> Result<u64, RdbError> {
        let offset = self.src.offset();
        match self.len_or_enc(what)? {
            (n, false) => Ok(n),
            (_, true) => Err(self.corrupt(offset, what, "a string encoding where a length belongs")),
        }
    }

    /// A string in any of its encodings (Redis `rdbGenericLoadStringObject`).
    fn string(&mut self, what: &'static str) -> Result<Bytes, RdbError> {
        let offset = self.src.offset();
        let (n, encoded) = self.len_or_enc(what)?;
        if !encoded {
            self.last_string_encoding = StringEncoding::Raw;
            let mut out = Vec::with_capacity((n as usize).min(PREALLOC_LIMIT * 16));
            self.src.read_to_vec(n, &mut out).map_err(|e| self.map_err(e, what))?;
            return Ok(out);
        }
        let int = |r: &mut Self, width: usize| -> Result<Bytes, RdbError> {
            let mut b = [0u8; 4];
            r.exact(&mut b[..width], what)?;
            let v = match width {
                1 => i64::from(b[0] as i8),
                2 => i64::from(i16::from_le_bytes([b[0], b[1]])),
                _ => i64::from(i32::from_le_bytes(b)),
            };
            Ok(v.to_string().into_bytes())
        };
        match n as u8 {
            ENC_INT8 => {
                self.last_string_encoding = StringEncoding::Int8;
                int(self, 1)
            }
            ENC_INT16 => {
                self.last_string_encoding = StringEncoding::Int16;
                int(self, 2)
            }
            ENC_INT32 => {
                self.last_string_encoding = StringEncoding::Int32;
                int(self, 4)
            }
            ENC_LZF => {
                self.last_string_encoding = StringEncoding::Lzf;
                let clen = self.len(what)?;
                let ulen = self.len(what)?;
                if ulen > clen.saturating_mul(LZF_MAX_RATIO) || ulen == 0 {
                    return Err(self.corrupt(
                        offset,
                        format!("LZF string ({what})"),
                        format!("{clen} compressed bytes cannot expand to the {ulen} bytes the header claims"),
                    ));
                }
                let mut compressed = Vec::with_capacity((clen as usize).min(PREALLOC_LIMIT * 16));
                self.src.read_to_vec(clen, &mut compressed).map_err(|e| self.map_err(e, what))?;
                lzf::decompress(&compressed, ulen as usize)
                    .map_err(|reason| self.corrupt(offset, format!("LZF string ({what})"), reason))
            }
            other => Err(self.corrupt(offset, what, format!("unknown string encoding {other}"))),
        }
    }

    /// A string holding a packed blob, with its offset for error messages.
    fn blob(&mut self, what: &'static str) -> Result<(u64, Bytes), RdbError> {
        let offset = self.src.offset();
        Ok((offset, self.string(what)?))
    }

    /// An old-style score: a length byte (253 NaN, 254 +inf, 255 -inf) then ASCII
    /// (Redis `rdbLoadDoubleValue`).
    fn string_score(&mut self) -> Result<f64, RdbError> {
        let offset = self.src.offset();
        let n = self.u8("a score")?;
        match n {
            253 => Ok(f64::NAN),
            254 => Ok(f64::INFINITY),
            255 => Ok(f64::NEG_INFINITY),
            _ => {
                let mut b = vec![0u8; n as usize];
                self.exact(&mut b, "a score")?;
                parse_score(&b)
                    .ok_or_else(|| self.corrupt(offset, "score", format!("{:?} is not a number", escape(&b))))
            }
        }
    }

    // ---- values ----------------------------------------------------------------------

    /// Decode a value of type `t`; `None` for an empty collection.
    fn value(&mut self, t: u8, key: &[u8]) -> Result<Option<Value>, RdbError> {
        let offset = self.src.offset();
        let k = || escape(key);
        let v = match t {
            TYPE_STRING => Value::String(self.string("a string value")?),
            TYPE_LIST => {
                let n = self.len("a list length")?;
                let mut list = VecDeque::with_capacity(prealloc(n));
                for _ in 0..n {
                    list.push_back(self.string("a list element")?);
                }
                Value::List(list)
            }
            TYPE_SET => {
                let n = self.len("a set size")?;
                let mut set = HashSet::with_capacity(prealloc(n));
                for _ in 0..n {
                    let m = self.string("a set member")?;
                    if !set.insert(m) {
                        return Err(self.corrupt(offset, format!("set {}", k()), "duplicate member"));
                    }
                }
                Value::Set(set)
            }
            TYPE_ZSET | TYPE_ZSET_2 => {
                let n = self.len("a sorted set size")?;
                let mut zset = HashMap::with_capacity(prealloc(n));
                for _ in 0..n {
                    let m = self.string("a sorted set member")?;
                    let score = if t == TYPE_ZSET_2 {
                        f64::from_bits(self.ms_time("a score")? as u64)
                    } else {
                        self.string_score()?
                    };
                    insert_scored(&mut zset, m, score)
                        .map_err(|r| self.corrupt(offset, format!("sorted set {}", k()), r))?;
                }
                // Redis turns a small plain sorted set into a listpack as it loads it, and a
                // listpack stores a -0 score as the integer 0 (src/t_zset.c, zzlInsertAt):
                // model what Redis holds, so that saving it back gives Redis the same data.
                if zset.len() <= ZSET_MAX_LISTPACK_ENTRIES && zset.keys().all(|m| m.len() <= ZSET_MAX_LISTPACK_VALUE) {
                    for s in zset.values_mut() {
                        if *s == 0.0 {
                            *s = 0.0;
                        }
                    }
                }
                Value::ZSet(zset)
            }
            TYPE_HASH => {
                let n = self.len("a hash size")?;
                let mut hash = HashMap::with_capacity(prealloc(n));
                for _ in 0..n {
                    let f = self.string("a hash field")?;
                    let v = self.string("a hash value")?;
                    if hash.insert(f, v).is_some() {
                        return Err(self.corrupt(offset, format!("hash {}", k()), "duplicate field"));
                    }
                }
                Value::Hash(hash)
            }
            TYPE_LIST_QUICKLIST | TYPE_LIST_QUICKLIST_2 => {
                let nodes = self.len("a quicklist node count")?;
                let mut list = VecDeque::new();
                for _ in 0..nodes {
                    let container = if t == TYPE_LIST_QUICKLIST_2 { self.len("a quicklist container")? } else { 2 };
                    let (at, blob) = self.blob("a quicklist node")?;
                    let what = || format!("quicklist node of key {}", k());
                    if blob.is_empty() {
                        return Err(self.corrupt(at, what(), "empty node"));
                    }
                    match container {
                        // QUICKLIST_NODE_CONTAINER_PLAIN: one large element stored as is.
                        1 => list.push_back(blob),
                        2 if t == TYPE_LIST_QUICKLIST => {
                            list.extend(packed::ziplist(&blob).map_err(|r| self.corrupt(at, what(), r))?)
                        }
                        2 => list.extend(packed::listpack(&blob).map_err(|r| self.corrupt(at, what(), r))?),
                        c => return Err(self.corrupt(at, what(), format!("container type {c} is neither 1 nor 2"))),
                    }
                }
                Value::List(list)
            }
            TYPE_HASH_ZIPMAP => {
                let (at, blob) = self.blob("a zipmap")?;
                let pairs = packed::zipmap(&blob).map_err(|r| self.corrupt(at, format!("zipmap of key {}", k()), r))?;
                Value::Hash(self.pairs_to_hash(pairs, at, key)?)
            }
            TYPE_LIST_ZIPLIST => {
                let (at, blob) = self.blob("a ziplist")?;
                let items =
                    packed::ziplist(&blob).map_err(|r| self.corrupt(at, format!("ziplist of key {}", k()), r))?;
                Value::List(items.into())
            }
            TYPE_SET_INTSET => {
                let (at, blob) = self.blob("an intset")?;
                let members =
                    packed::intset(&blob).map_err(|r| self.corrupt(at, format!("intset of key {}", k()), r))?;
                Value::Set(members.into_iter().map(|m| m.to_string().into_bytes()).collect())
            }
            TYPE_SET_LISTPACK => {
                let (at, blob) = self.blob("a listpack")?;
                let what = || format!("set listpack of key {}", k());
                let items = packed::listpack(&blob).map_err(|r| self.corrupt(at, what(), r))?;
                let n = items.len();
                let set: HashSet<Bytes> = items.into_iter().collect();
                if set.len() != n {
                    return Err(self.corrupt(at, what(), "duplicate member"));
                }
                Value::Set(set)
            }
            TYPE_ZSET_ZIPLIST | TYPE_ZSET_LISTPACK => {
                let (at, blob) = self.blob("a packed sorted set")?;
                let what = || format!("sorted set {} of key {}", type_name(t).unwrap_or(""), k());
                let items = if t == TYPE_ZSET_ZIPLIST { packed::ziplist(&blob) } else { packed::listpack(&blob) };
                let items = items.map_err(|r| self.corrupt(at, what(), r))?;
                if items.len() % 2 != 0 {
                    return Err(self.corrupt(at, what(), "odd number of elements"));
                }
                let mut zset = HashMap::with_capacity(items.len() / 2);
                let mut it = items.into_iter();
                while let (Some(m), Some(s)) = (it.next(), it.next()) {
                    let score = parse_score(&s)
                        .ok_or_else(|| self.corrupt(at, what(), format!("score {:?} is not a number", escape(&s))))?;
                    insert_scored(&mut zset, m, score).map_err(|r| self.corrupt(at, what(), r))?;
                }
                Value::ZSet(zset)
            }
            TYPE_HASH_ZIPLIST | TYPE_HASH_LISTPACK => {
                let (at, blob) = self.blob("a packed hash")?;
                let what = || format!("hash {} of key {}", type_name(t).unwrap_or(""), k());
                let items = if t == TYPE_HASH_ZIPLIST { packed::ziplist(&blob) } else { packed::listpack(&blob) };
                let items = items.map_err(|r| self.corrupt(at, what(), r))?;
                if items.len() % 2 != 0 {
                    return Err(self.corrupt(at, what(), "odd number of elements"));
                }
                let mut it = items.into_iter();
                let mut pairs = Vec::new();
                while let (Some(f), Some(v)) = (it.next(), it.next()) {
                    pairs.push((f, v));
                }
                Value::Hash(self.pairs_to_hash(pairs, at, key)?)
            }
            TYPE_STREAM_LISTPACKS | TYPE_STREAM_LISTPACKS_2 | TYPE_STREAM_LISTPACKS_3 => {
                self.src.start_recording();
                let r = self.skip_stream(t, key);
                let payload = self.src.stop_recording();
                r?;
                Value::Opaque(Opaque { rdb_type: t, payload })
            }
            TYPE_HASH_METADATA_PRE_GA | TYPE_HASH_METADATA | TYPE_HASH_LISTPACK_EX_PRE_GA | TYPE_HASH_LISTPACK_EX => {
                self.src.start_recording();
                let r = self.skip_hash_with_ttls(t, key);
                let payload = self.src.stop_recording();
                if !r? {
                    return Ok(None);
                }
                Value::Opaque(Opaque { rdb_type: t, payload })
            }
            TYPE_MODULE_2 | TYPE_MODULE_PRE_GA => {
                let id = self.len("a module id")?;
                return Err(RdbError::ModuleValue { offset, key: k(), module: module_name(id) });
            }
            _ => return Err(RdbError::UnknownType { offset: offset - 1, byte: t }),
        };
        Ok((!v.is_empty()).then_some(v))
    }

    fn pairs_to_hash(
        &self,
        pairs: Vec<(Bytes, Bytes)>,
        at: u64,
        key: &[u8],
    ) -> Result<HashMap<Bytes, Bytes>, RdbError> {
        let mut hash = HashMap::with_capacity(pairs.len());
        for (f, v) in pairs {
            if hash.insert(f, v).is_some() {
                return Err(self.corrupt(at, format!("hash of key {}", escape(key)), "duplicate field"));
            }
        }
        Ok(hash)
    }

    /// Walk a stream value to its end (Redis src/rdb.c, the STREAM_LISTPACKS branch of
    /// `rdbLoadObject`), checking what Redis checks without deep sanitization.
    fn skip_stream(&mut self, t: u8, key: &[u8]) -> Result<(), RdbError> {
        let nodes = self.len("a stream node count")?;
        for _ in 0..nodes {
            let (at, id) = self.blob("a stream node key")?;
            if id.len() != 16 {
                return Err(self.corrupt(at, format!("stream {}", escape(key)), "node key is not a 128-bit stream ID"));
            }
            let (at, lp) = self.blob("a stream listpack")?;
            packed::listpack_header(&lp).map_err(|r| self.corrupt(at, format!("stream {}", escape(key)), r))?;
            if lp.len() <= 7 {
                return Err(self.corrupt(at, format!("stream {}", escape(key)), "empty listpack inside stream"));
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
        for _ in 0..groups {
            self.string("a consumer group name")?;
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
                self.string("a consumer name")?;
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
        Ok(())
    }

    /// Walk a hash with field expiries (Redis 7.4, types 22 to 25) to its end. Returns
    /// `false` for an empty one (skipped, as Redis does).
    fn skip_hash_with_ttls(&mut self, t: u8, key: &[u8]) -> Result<bool, RdbError> {
        if matches!(t, TYPE_HASH_METADATA | TYPE_HASH_LISTPACK_EX) {
            self.ms_time("a hash minimum expiry")?;
        }
        if matches!(t, TYPE_HASH_METADATA | TYPE_HASH_METADATA_PRE_GA) {
            let n = self.len("a hash size")?;
            for _ in 0..n {
                self.len("a hash field TTL")?;
                self.string("a hash field")?;
                self.string("a hash value")?;
            }
            return Ok(n > 0);
        }
        let (at, lp) = self.blob("a hash listpack")?;
        let items =
            packed::listpack(&lp).map_err(|r| self.corrupt(at, format!("hash listpack of key {}", escape(key)), r))?;
        if items.len() % 3 != 0 {
            return Err(self.corrupt(
                at,
                format!("hash listpack of key {}", escape(key)),
                "not field/value/TTL triples",
            ));
        }
        Ok(!items.is_empty())
    }
}

fn prealloc(n: u64) -> usize {
    (n as usize).min(PREALLOC_LIMIT)
}

fn insert_scored(zset: &mut HashMap<Bytes, f64>, member: Bytes, score: f64) -> Result<(), &'static str> {
    if score.is_nan() {
        return Err("NaN score");
    }
    if zset.insert(member, score).is_some() {
        return Err("duplicate member");
    }
    Ok(())
}

/// Parse a score stored as text (`strtod` in Redis): decimal, exponent, `inf`, `-inf`.
fn parse_score(s: &[u8]) -> Option<f64> {
    std::str::from_utf8(s).ok()?.trim().parse().ok()
}

/// A module type's 9-character name from its 64-bit id (Redis src/module.c,
/// `moduleTypeNameByID`): the top 54 bits are nine 6-bit characters.
pub fn module_name(id: u64) -> String {
    const CSET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut id = id >> 10;
    let mut name = [0u8; 9];
    for slot in name.iter_mut().rev() {
        *slot = CSET[(id & 63) as usize];
        id >>= 6;
    }
    String::from_utf8_lossy(&name).into_owned()
}

/// Everything a dump says about itself, gathered while reading it.
#[derive(Clone, Debug, Default)]
pub struct LoadSummary {
    /// RDB version from the header.
    pub version: u32,
    /// AUX fields in file order.
    pub aux: Vec<(Bytes, Bytes)>,
    /// Keys per database.
    pub keys_per_db: [u64; DB_COUNT],
    /// Keys with an expiry, per database.
    pub expires_per_db: [u64; DB_COUNT],
    /// Keys whose expiry is already in the past at load time (they are kept, like a
    /// replica keeps them; a Redis master would drop them).
    pub already_expired: u64,
    /// Empty collections skipped, as Redis skips them.
    pub empty_keys_skipped: u64,
    /// Function libraries.
    pub functions: u64,
    /// Values carried opaque (streams, hashes with field expiry).
    pub opaque_values: u64,
    /// The trailer's verdict.
    pub checksum: Option<Checksum>,
    /// Bytes read, header to trailer.
    pub bytes: u64,
}

impl LoadSummary {
    /// Total keys.
    pub fn keys(&self) -> u64 {
        self.keys_per_db.iter().sum()
    }

    /// The value of AUX field `name`, if present.
    pub fn aux(&self, name: &str) -> Option<&[u8]> {
        self.aux.iter().find(|(k, _)| k == name.as_bytes()).map(|(_, v)| v.as_slice())
    }

    fn note(&mut self, item: &Item, now_ms: i64) {
        match item {
            Item::Aux { key, value } => self.aux.push((key.clone(), value.clone())),
            Item::Function { .. } => self.functions += 1,
            Item::EmptyKeySkipped { .. } => self.empty_keys_skipped += 1,
            Item::Key(r) => {
                self.keys_per_db[r.db] += 1;
                if let Some(at) = r.entry.expire_at_ms {
                    self.expires_per_db[r.db] += 1;
                    if at <= now_ms {
                        self.already_expired += 1;
                    }
                }
                if matches!(r.entry.value, Value::Opaque(_)) {
                    self.opaque_values += 1;
                }
            }
            Item::SelectDb { .. } | Item::ResizeDb { .. } | Item::SlotInfo { .. } => {}
        }
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

/// Read a whole dump into a [`Keyspace`], keeping keys whose expiry has passed.
///
/// # Errors
/// Any [`RdbError`], including [`RdbError::DuplicateKey`].
pub fn load<R: Read>(input: R) -> Result<(Keyspace, LoadSummary), RdbError> {
    load_with_progress(input, None)
}

/// [`load`], reporting bytes consumed into `progress`.
///
/// # Errors
/// Any [`RdbError`].
pub fn load_with_progress<R: Read>(
    input: R,
    progress: Option<Arc<AtomicU64>>,
) -> Result<(Keyspace, LoadSummary), RdbError> {
    load_inner(input, progress, None)
}

/// The loader. `size` (the input's length in bytes, when known) lets RESIZEDB hints
/// pre-size each database, bounded by what the input can hold: a record takes at least
/// 3 bytes (type, key length, value length), so a hint larger than `size / 3` is a lie.
fn load_inner<R: Read>(
    input: R,
    progress: Option<Arc<AtomicU64>>,
    size: Option<u64>,
) -> Result<(Keyspace, LoadSummary), RdbError> {
    let mut reader = RdbReader::new(input)?;
    if let Some(p) = progress {
        reader.set_progress(p);
    }
    let mut ks = Keyspace::new();
    let mut summary = LoadSummary { version: reader.version(), ..Default::default() };
    let now = now_ms();
    let mut db = 0;
    while let Some(item) = reader.next_item()? {
        summary.note(&item, now);
        match item {
            Item::SelectDb { db: d } => db = d,
            Item::ResizeDb { keys, .. } => {
                let remaining = size.unwrap_or(0).saturating_sub(reader.offset());
                ks.db_mut(db).reserve(keys.min(remaining / 3) as usize);
            }
            Item::Key(r) => match ks.db_mut(r.db).entry(r.key) {
                // One hash lookup per key: this loop is the whole cost of a load.
                std::collections::hash_map::Entry::Occupied(o) => {
                    return Err(RdbError::DuplicateKey { offset: r.offset, db: r.db, key: escape(o.key()) });
                }
                std::collections::hash_map::Entry::Vacant(v) => {
                    // The reader never yields an empty collection, so the model's invariant holds.
                    v.insert(r.entry);
                }
            },
            Item::Function { code } => ks.add_function(code),
            _ => {}
        }
    }
    summary.checksum = reader.checksum();
    summary.bytes = reader.offset();
    Ok((ks, summary))
}

/// Read a dump without keeping it, gathering its [`LoadSummary`] (what `snaplab verify`
/// and `redis-check-rdb` do). `on_key` sees every key as it is decoded.
///
/// # Errors
/// Any [`RdbError`].
pub fn scan<R: Read>(input: R, mut on_key: impl FnMut(&KeyRecord)) -> Result<LoadSummary, RdbError> {
    let mut reader = RdbReader::new(input)?;
    let mut summary = LoadSummary { version: reader.version(), ..Default::default() };
    let now = now_ms();
    while let Some(item) = reader.next_item()? {
        summary.note(&item, now);
        if let Item::Key(r) = &item {
            on_key(r);
        }
    }
    summary.checksum = reader.checksum();
    summary.bytes = reader.offset();
    Ok(summary)
}

/// A dump that failed [`check`]: the error, and the key being read when it happened.
#[derive(Debug, thiserror::Error)]
#[error("{error}{}", key.as_ref().map(|(db, k)| format!(" (while reading the value of key {} in db {db})", escape(k))).unwrap_or_default())]
pub struct CheckError {
    /// What went wrong, with its byte offset (part of this error's message, so not also
    /// reported as its source).
    pub error: RdbError,
    /// The database and key whose value was being decoded, if the error was inside one.
    pub key: Option<(usize, Bytes)>,
}

/// [`scan`] for `snaplab verify` and redis-check-rdb-like tools: the same summary, and on
/// failure the key whose value was being decoded.
///
/// # Errors
/// [`CheckError`].
pub fn check<R: Read>(input: R) -> Result<LoadSummary, CheckError> {
    let mut reader = RdbReader::new(input).map_err(|error| CheckError { error, key: None })?;
    let mut summary = LoadSummary { version: reader.version(), ..Default::default() };
    let now = now_ms();
    loop {
        match reader.next_item() {
            Ok(Some(item)) => summary.note(&item, now),
            Ok(None) => break,
            Err(error) => return Err(CheckError { error, key: reader.key_being_read().cloned() }),
        }
    }
    summary.checksum = reader.checksum();
    summary.bytes = reader.offset();
    Ok(summary)
}

/// Open `path` and [`load`] it.
///
/// # Errors
/// [`RdbError::Io`] at offset 0 if the file cannot be opened, else as [`load`].
pub fn load_file(path: &Path) -> Result<(Keyspace, LoadSummary), RdbError> {
    load_file_with_progress(path, None)
}

/// [`load_file`], reporting bytes consumed into `progress`.
///
/// # Errors
/// As [`load_file`].
pub fn load_file_with_progress(
    path: &Path,
    progress: Option<Arc<AtomicU64>>,
) -> Result<(Keyspace, LoadSummary), RdbError> {
    let f = File::open(path).map_err(|source| RdbError::Io { offset: 0, source })?;
    let size = f.metadata().ok().map(|m| m.len());
    load_inner(f, progress, size)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Redis's module-name decoding: the ReJSON module type id used by the corpus file
    /// redis_40_with_module.rdb decodes to "ReJSON-RL".
    #[test]
    fn module_names() {
        // Build the id for "ReJSON-RL" the way Redis encodes it, then decode it back.
        const CSET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let mut id = 0u64;
        for c in b"ReJSON-RL" {
            id = (id << 6) | CSET.iter().position(|x| x == c).unwrap() as u64;
        }
        assert_eq!(module_name((id << 10) | 3), "ReJSON-RL");
    }

    /// A header that is not REDIS + digits is a typed error, and so is version 13.
    #[test]
    fn header_errors() {
        assert!(matches!(RdbReader::new(&b"VALKEY080"[..]), Err(RdbError::BadSignature { .. })));
        assert!(matches!(RdbReader::new(&b"REDIS0013"[..]), Err(RdbError::UnsupportedVersion { version: 13 })));
        assert!(matches!(RdbReader::new(&b"RED"[..]), Err(RdbError::BadSignature { .. })));
    }

    /// An LZF header claiming more than 88x expansion is refused before any allocation.
    #[test]
    fn lzf_length_that_lies() {
        let mut f = b"REDIS0003".to_vec();
        f.extend_from_slice(&[0xFE, 0x00, 0x00, 0x01, b'k', 0xC3, 0x02]);
        f.extend_from_slice(&[0x80, 0x7F, 0xFF, 0xFF, 0xFF]); // ulen = 2^31 - 1
        f.extend_from_slice(&[0x00, b'a', 0xFF]);
        let err = load(&f[..]).unwrap_err();
        assert!(matches!(err, RdbError::Corrupt { offset: 14, .. }), "{err}");
    }
}
