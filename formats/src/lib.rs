#![doc = include_str!("../README.md")]

pub mod bincode;
pub mod json;
pub mod rdb;
pub mod stream;

use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::sync::atomic::{AtomicU64, Ordering};

use rayon::prelude::*;

use snaplab_core::command::escape;
use snaplab_core::keyspace::{Bytes, DB_COUNT, Entry, EntryRef, Keyspace, KeyspaceView, Opaque, Value, ValueRef};
use snaplab_core::rdb::RdbError;
use snaplab_core::rdb::consts::{
    TYPE_HASH_LISTPACK_EX, TYPE_HASH_LISTPACK_EX_PRE_GA, TYPE_HASH_METADATA, TYPE_HASH_METADATA_PRE_GA,
    TYPE_STREAM_LISTPACKS, TYPE_STREAM_LISTPACKS_2, TYPE_STREAM_LISTPACKS_3, TYPE_STREAM_LISTPACKS_4,
};
use snaplab_core::rdb::crc::Crc64;

pub use self::bincode::Bincode;
pub use self::json::Json;
pub use self::rdb::Rdb;
pub use self::stream::Stream;

/// Every format, in the order the comparison table lists them.
pub static FORMATS: [&dyn Format; 4] = [&Rdb, &Json, &Bincode, &Stream];

/// The format whose [`Format::name`] is `name` (`rdb`, `json`, `bincode`, `stream`).
pub fn format(name: &str) -> Option<&'static dyn Format> {
    FORMATS.iter().copied().find(|f| f.name() == name)
}

/// How a snapshot's bytes are compressed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Compression {
    /// Not at all.
    None,
    /// LZF on each string over 20 bytes, inside the format: RDB's own `rdbcompression yes`
    /// (Redis src/rdb.c, `rdbSaveRawString`). Only [`Rdb`] has it.
    Lzf,
    /// The whole file through gzip (deflate at level 6, what `gzip` does by default), on top
    /// of the uncompressed format.
    Gzip,
}

impl Compression {
    /// Every compression, in table order.
    pub const ALL: [Compression; 3] = [Compression::None, Compression::Lzf, Compression::Gzip];

    /// Lower-case name: `none`, `lzf`, `gzip`.
    pub fn name(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Lzf => "lzf",
            Compression::Gzip => "gzip",
        }
    }

    /// The compression named `name` (see [`Compression::name`]).
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.name() == name)
    }
}

/// What an encoder knows when it writes the trailer.
#[derive(Clone)]
pub struct Totals {
    /// Keys written.
    pub keys: u64,
    /// Function libraries written.
    pub functions: u64,
    /// Bytes written before the trailer, header included.
    pub bytes: u64,
    /// CRC-64 (Redis's Jones polynomial, [`Crc64`]) of those bytes.
    pub crc: Crc64,
}

// ANCHOR: format_trait
/// A snapshot file format: how to lay out a header, the function libraries, each database's
/// keys and a trailer, and how to read all of it back.
///
/// The encoding half is split into pieces so that one driver serves every format, and so
/// that records can be encoded in parallel: [`Format::record`] must be a pure function of
/// its arguments (no state carried from one record to the next), which is what makes
/// [`Codec::encode_parallel`] byte-identical to [`Codec::encode`]. The drivers buffer the
/// output, compute a CRC-64 of it as it leaves, and hand the totals to [`Format::trailer`].
///
/// `lzf` asks for LZF-compressed strings inside the format; only a format whose
/// [`Format::supports`] accepts [`Compression::Lzf`] looks at it.
pub trait Format: Sync {
    /// The format's canonical id: `rdb`, `json`, `bincode` or `stream`.
    fn name(&self) -> &'static str;

    /// Whether this format can be written with `compression` (every format takes `None` and
    /// `Gzip`; only RDB has `Lzf`).
    fn supports(&self, compression: Compression) -> bool {
        compression != Compression::Lzf
    }

    /// Append the bytes that open a snapshot (magic, version, metadata).
    fn header(&self, out: &mut Vec<u8>);

    /// Append one function library (a Redis 7 `FUNCTION LOAD` source).
    ///
    /// # Errors
    /// [`FormatError::Unencodable`] when the format cannot hold it.
    fn function(&self, out: &mut Vec<u8>, code: &[u8], lzf: bool) -> Result<(), FormatError>;

    /// Append what starts database `db`, holding `keys` keys of which `expires` have an
    /// expiry. Nothing by default: only RDB (SELECTDB, RESIZEDB) needs it, the other formats
    /// name the database in each record.
    fn begin_db(&self, out: &mut Vec<u8>, db: usize, keys: u64, expires: u64) {
        let _ = (out, db, keys, expires);
    }

    /// Append one key's record, collections in canonical order. `scratch` is a reusable
    /// buffer. Must depend on nothing but its arguments.
    ///
    /// # Errors
    /// [`FormatError::Unencodable`] when the format cannot hold the key (e.g. a value over
    /// bincode's preallocation limit).
    fn record(
        &self,
        out: &mut Vec<u8>,
        scratch: &mut Vec<u8>,
        db: usize,
        key: &[u8],
        entry: EntryRef<'_>,
        lzf: bool,
    ) -> Result<(), FormatError>;

    /// Append the bytes that close a snapshot, given what was written before them.
    fn trailer(&self, out: &mut Vec<u8>, totals: &Totals);

    /// Read a whole snapshot from `input`, one record at a time, checking everything the
    /// format can check (counts, checksums, that nothing follows the trailer).
    ///
    /// # Errors
    /// A [`FormatError`] naming the byte offset of the problem.
    fn decode(&self, input: &mut dyn Read) -> Result<Keyspace, FormatError>;
}
// ANCHOR_END: format_trait

/// Why a snapshot could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    /// The RDB reader refused the input (its error carries the offset).
    #[error("rdb: {0}")]
    Rdb(#[from] RdbError),
    /// The underlying reader or writer failed (for a gzipped file this includes a corrupt
    /// deflate stream or a bad gzip CRC-32).
    #[error("{format}: I/O error at byte {offset}: {source}")]
    Io {
        /// The format.
        format: &'static str,
        /// Bytes read or written before the error.
        offset: u64,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// The input is none of the formats (from [`decode_any`]).
    #[error(
        "not a snapshot snaplab can read: it starts with \"{found}\", which is none of rdb (REDIS), json ({{), bincode (SNAPBINC), stream (SNAPSTRM) or gzip (\\x1f\\x8b)"
    )]
    Unrecognized {
        /// The first bytes, escaped.
        found: String,
    },
    /// The input does not start like a snapshot of this format.
    #[error("{format}: not a {format} snapshot: {reason}")]
    BadHeader {
        /// The format.
        format: &'static str,
        /// What was found instead.
        reason: String,
    },
    /// The header names a version this build cannot read.
    #[error("{format}: version {version} is not supported (this build reads version {supported})")]
    UnsupportedVersion {
        /// The format.
        format: &'static str,
        /// The version in the header.
        version: u64,
        /// The version this build reads and writes.
        supported: u32,
    },
    /// The input ended before the trailer.
    #[error("{format}: unexpected end of input at byte {offset} while reading {what}")]
    Truncated {
        /// The format.
        format: &'static str,
        /// Where the input ended.
        offset: u64,
        /// What was being read.
        what: &'static str,
    },
    /// Something is malformed.
    #[error("{format}: corrupt {what} at byte {offset}: {reason}")]
    Corrupt {
        /// The format.
        format: &'static str,
        /// Where the malformed record starts.
        offset: u64,
        /// What it is.
        what: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// The trailer's checksum does not match the data.
    #[error(
        "{format}: checksum mismatch at byte {offset}: the trailer says {stored:#018x}, the data gives {computed:#018x}"
    )]
    Checksum {
        /// The format.
        format: &'static str,
        /// Offset of the checksum.
        offset: u64,
        /// The checksum in the file.
        stored: u64,
        /// The checksum of the bytes read.
        computed: u64,
    },
    /// The same key appears twice in one database.
    #[error("{format}: key {key} appears twice in db {db}, the second time at byte {offset}")]
    DuplicateKey {
        /// The format.
        format: &'static str,
        /// Offset of the second record.
        offset: u64,
        /// The database.
        db: usize,
        /// The key, escaped.
        key: String,
    },
    /// Bytes follow the trailer.
    #[error("{format}: data after the end of the snapshot at byte {offset}")]
    TrailingData {
        /// The format.
        format: &'static str,
        /// Offset of the first extra byte.
        offset: u64,
    },
    /// The format cannot hold this key or function library.
    #[error("{format}: cannot write {what}: {reason}")]
    Unencodable {
        /// The format.
        format: &'static str,
        /// The key (`db N key K`, escaped) or `a function library`.
        what: String,
        /// Why.
        reason: String,
    },
    /// The format does not offer this compression (LZF is RDB's alone).
    #[error("{format} cannot be written with {} compression", .compression.name())]
    Unsupported {
        /// The format.
        format: &'static str,
        /// The compression asked for.
        compression: Compression,
    },
}

impl FormatError {
    /// The byte offset where a decoding problem was found (0 for encoding errors and for a
    /// bad header).
    pub fn offset(&self) -> u64 {
        match self {
            FormatError::Rdb(e) => e.offset(),
            FormatError::Io { offset, .. }
            | FormatError::Truncated { offset, .. }
            | FormatError::Corrupt { offset, .. }
            | FormatError::Checksum { offset, .. }
            | FormatError::DuplicateKey { offset, .. }
            | FormatError::TrailingData { offset, .. } => *offset,
            FormatError::BadHeader { .. }
            | FormatError::Unrecognized { .. }
            | FormatError::UnsupportedVersion { .. }
            | FormatError::Unencodable { .. }
            | FormatError::Unsupported { .. } => 0,
        }
    }
}

/// What an encoder wrote.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Encoded {
    /// Bytes of the file (after whole-file compression).
    pub file_bytes: u64,
    /// Bytes of the format itself (before whole-file compression).
    pub format_bytes: u64,
    /// Keys written.
    pub keys: u64,
    /// Function libraries written.
    pub functions: u64,
}

/// A format and a compression: one row of the comparison.
#[derive(Clone, Copy)]
pub struct Codec {
    /// The format.
    pub format: &'static dyn Format,
    /// The compression.
    pub compression: Compression,
}

impl fmt::Debug for Codec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.id())
    }
}

/// Every codec worth comparing: each format uncompressed and gzipped, plus RDB with LZF
/// strings (Redis's default). LZF inside a gzipped file is left out: gzip over data LZF
/// already squeezed mostly spends time.
pub fn codecs() -> Vec<Codec> {
    let mut out = Vec::new();
    for format in FORMATS {
        for compression in Compression::ALL {
            if format.supports(compression) {
                out.push(Codec { format, compression });
            }
        }
    }
    out
}

/// The encoder writes to its sink in blocks of this size: big enough that writes are few
/// and the CRC runs over long slices.
const FLUSH_AT: usize = 64 * 1024;

/// Keys per chunk handed to one worker of the parallel encoder: about 100 kB of records
/// for the built-in dataset, enough to amortise the hand-off.
const CHUNK_KEYS: usize = 1024;

/// Chunks per window: the parallel encoder encodes one window while the writer writes the
/// previous one, so at most two windows of encoded bytes are held at a time.
const WINDOW_CHUNKS: usize = 16;

impl Codec {
    /// `format` with `compression`.
    ///
    /// # Errors
    /// [`FormatError::Unsupported`] when the format does not offer that compression.
    pub fn new(format: &'static dyn Format, compression: Compression) -> Result<Self, FormatError> {
        if !format.supports(compression) {
            return Err(FormatError::Unsupported { format: format.name(), compression });
        }
        Ok(Codec { format, compression })
    }

    /// `format` or `format+compression`, e.g. `rdb+lzf`, `json+gzip`, `stream`.
    pub fn id(&self) -> String {
        match self.compression {
            Compression::None => self.format.name().to_string(),
            c => format!("{}+{}", self.format.name(), c.name()),
        }
    }

    // ANCHOR: encode
    /// Write a snapshot of `view` to `out`, one record after another, keys in canonical
    /// order. `progress`, when given, is advanced by the keys written (relaxed: it only
    /// feeds a progress bar).
    ///
    /// # Errors
    /// [`FormatError::Io`] from the sink, [`FormatError::Unencodable`] from the format.
    pub fn encode<W: Write>(
        &self,
        view: &dyn KeyspaceView,
        out: W,
        progress: Option<&AtomicU64>,
    ) -> Result<Encoded, FormatError> {
        self.with_sink(out, |sink| {
            let mut sink = Sink::new(self.format, sink, progress);
            self.start(&mut sink, view.functions())?;
            let mut scratch = Vec::new();
            for db in 0..DB_COUNT {
                let keys = view.db_len(db);
                if keys == 0 {
                    continue;
                }
                self.format.begin_db(&mut sink.buf, db, keys as u64, view.db_expires(db) as u64);
                let mut sorted: Vec<(&[u8], EntryRef<'_>)> = view.entries(db).collect();
                sorted.sort_unstable_by(|a, b| a.0.cmp(b.0));
                for (key, entry) in sorted {
                    self.format.record(&mut sink.buf, &mut scratch, db, key, entry, self.lzf())?;
                    sink.keys_added(1)?;
                }
            }
            sink.finish()
        })
    }
    // ANCHOR_END: encode

    /// [`Codec::encode`], with the records encoded by `pool` in chunks of keys and written
    /// in order by the calling thread, which writes one window of chunks while the pool
    /// encodes the next. The bytes are exactly [`Codec::encode`]'s.
    ///
    /// Production note: this takes a [`Keyspace`] rather than any [`KeyspaceView`] because
    /// workers need `Send` access to entries; a strategy would hand each worker a shard.
    ///
    /// # Errors
    /// As [`Codec::encode`].
    pub fn encode_parallel<W: Write>(
        &self,
        ks: &Keyspace,
        out: W,
        pool: &rayon::ThreadPool,
        progress: Option<&AtomicU64>,
    ) -> Result<Encoded, FormatError> {
        let format = self.format;
        let lzf = self.lzf();
        // Sorting is part of the work; the pool does it too.
        let dbs: Vec<Vec<(&[u8], &Entry)>> = pool.install(|| {
            (0..DB_COUNT)
                .map(|db| {
                    let mut keys: Vec<(&[u8], &Entry)> = ks.db(db).iter().map(|(k, e)| (k.as_slice(), e)).collect();
                    keys.par_sort_unstable_by(|a, b| a.0.cmp(b.0));
                    keys
                })
                .collect()
        });
        self.with_sink(out, |sink| {
            let mut sink = Sink::new(format, sink, progress);
            self.start(&mut sink, ks.functions())?;
            for (db, keys) in dbs.iter().enumerate() {
                if keys.is_empty() {
                    continue;
                }
                let expires = keys.iter().filter(|(_, e)| e.expire_at_ms.is_some()).count();
                format.begin_db(&mut sink.buf, db, keys.len() as u64, expires as u64);
                let mut pending: Vec<(Vec<u8>, u64)> = Vec::new();
                for window in keys.chunks(CHUNK_KEYS * WINDOW_CHUNKS) {
                    let mut encoded = None;
                    // The closure runs on this thread, the spawned job on the pool: the
                    // previous window is written while this one is encoded.
                    pool.in_place_scope(|s| -> Result<(), FormatError> {
                        s.spawn(|_| {
                            encoded = Some(
                                window
                                    .par_chunks(CHUNK_KEYS)
                                    .map(|chunk| encode_chunk(format, db, chunk, lzf))
                                    .collect::<Result<Vec<_>, FormatError>>(),
                            );
                        });
                        sink.append_chunks(std::mem::take(&mut pending))
                    })?;
                    // The scope waited for the job, which always sets `encoded`; had it
                    // panicked, the scope would have re-raised the panic before this line.
                    pending = encoded.expect("the scope waits for its job")?;
                }
                sink.append_chunks(pending)?;
            }
            sink.finish()
        })
    }

    /// Read a snapshot written with this codec.
    ///
    /// # Errors
    /// The format's [`FormatError`]; a corrupt gzip stream is [`FormatError::Io`].
    pub fn decode<R: Read>(&self, input: R) -> Result<Keyspace, FormatError> {
        match self.compression {
            Compression::None | Compression::Lzf => self.format.decode(&mut { input }),
            Compression::Gzip => {
                let inner = BufReader::with_capacity(64 * 1024, flate2::bufread::GzDecoder::new(BufReader::new(input)));
                decode_gzip(self.format, inner)
            }
        }
    }

    fn lzf(&self) -> bool {
        self.compression == Compression::Lzf
    }

    /// Header and function libraries.
    fn start(&self, sink: &mut Sink<'_>, functions: &[Bytes]) -> Result<(), FormatError> {
        self.format.header(&mut sink.buf);
        for code in functions {
            self.format.function(&mut sink.buf, code, self.lzf())?;
            sink.functions += 1;
            sink.maybe_flush()?;
        }
        Ok(())
    }

    /// Run `body` over `out`, through gzip when asked, and count the file's bytes.
    fn with_sink<W: Write>(
        &self,
        out: W,
        body: impl FnOnce(&mut dyn Write) -> Result<Encoded, FormatError>,
    ) -> Result<Encoded, FormatError> {
        let mut counted = Counted::new(out);
        let mut encoded = match self.compression {
            Compression::None | Compression::Lzf => body(&mut counted)?,
            Compression::Gzip => {
                let mut gz = flate2::write::GzEncoder::new(&mut counted, flate2::Compression::default());
                let encoded = body(&mut gz)?;
                gz.finish().map_err(|source| FormatError::Io {
                    format: self.format.name(),
                    offset: encoded.format_bytes,
                    source,
                })?;
                encoded
            }
        };
        counted.flush().map_err(|source| FormatError::Io {
            format: self.format.name(),
            offset: encoded.format_bytes,
            source,
        })?;
        encoded.file_bytes = counted.count;
        Ok(encoded)
    }
}

/// Decode `format` from a gzip stream (`inner` reads the decompressed bytes), then make
/// sure nothing follows the gzip member: gzip's own trailer only covers its member, and
/// `GzDecoder` stops there without looking further.
fn decode_gzip<R: BufRead>(
    format: &'static dyn Format,
    mut inner: BufReader<flate2::bufread::GzDecoder<R>>,
) -> Result<Keyspace, FormatError> {
    let ks = format.decode(&mut inner)?;
    // The format's decoder read up to the end of the decompressed stream, so gzip has
    // checked its CRC-32 and length; what is left in the compressed input is extra.
    let mut rest = inner.into_inner().into_inner();
    let extra = rest.fill_buf().map_err(|source| FormatError::Io { format: format.name(), offset: 0, source })?;
    if !extra.is_empty() {
        return Err(FormatError::Corrupt {
            format: format.name(),
            offset: 0,
            what: "gzip file",
            reason: format!("{} or more bytes follow the gzip member", extra.len()),
        });
    }
    Ok(ks)
}

/// One worker's share: the records of `chunk`, back to back.
fn encode_chunk(
    format: &dyn Format,
    db: usize,
    chunk: &[(&[u8], &Entry)],
    lzf: bool,
) -> Result<(Vec<u8>, u64), FormatError> {
    let mut buf = Vec::with_capacity(chunk.len() * 64);
    let mut scratch = Vec::new();
    for (key, entry) in chunk {
        format.record(&mut buf, &mut scratch, db, key, entry.as_ref(), lzf)?;
    }
    Ok((buf, chunk.len() as u64))
}

/// The ordered, single-threaded half of every encoder: buffers records, checksums and
/// counts the bytes as they leave, and writes the trailer.
struct Sink<'w> {
    format: &'static dyn Format,
    out: &'w mut dyn Write,
    buf: Vec<u8>,
    crc: Crc64,
    flushed: u64,
    keys: u64,
    functions: u64,
    unreported: u64,
    progress: Option<&'w AtomicU64>,
}

impl<'w> Sink<'w> {
    fn new(format: &'static dyn Format, out: &'w mut dyn Write, progress: Option<&'w AtomicU64>) -> Self {
        Sink {
            format,
            out,
            buf: Vec::with_capacity(FLUSH_AT + 4096),
            crc: Crc64::new(),
            flushed: 0,
            keys: 0,
            functions: 0,
            unreported: 0,
            progress,
        }
    }

    fn keys_added(&mut self, n: u64) -> Result<(), FormatError> {
        self.keys += n;
        self.unreported += n;
        if self.unreported >= 1024 {
            self.report();
        }
        self.maybe_flush()
    }

    fn report(&mut self) {
        if let Some(p) = self.progress {
            p.fetch_add(self.unreported, Ordering::Relaxed);
        }
        self.unreported = 0;
    }

    fn append_chunks(&mut self, chunks: Vec<(Vec<u8>, u64)>) -> Result<(), FormatError> {
        for (bytes, keys) in chunks {
            self.buf.extend_from_slice(&bytes);
            self.keys_added(keys)?;
        }
        Ok(())
    }

    /// Write every whole block of [`FLUSH_AT`] bytes, one `write_all` per block, keeping
    /// the rest. Block-sized writes make the sequence of writes the sink sees depend only
    /// on the bytes, never on how they were appended (one record at a time, or a chunk of
    /// a thousand): a compressor behind the sink (zlib-rs's deflate) can emit different
    /// bytes for the same input split differently, and the parallel encoder must match the
    /// sequential one byte for byte.
    fn maybe_flush(&mut self) -> Result<(), FormatError> {
        let whole = self.buf.len() / FLUSH_AT * FLUSH_AT;
        if whole == 0 {
            return Ok(());
        }
        for block in self.buf[..whole].chunks(FLUSH_AT) {
            self.crc.update(block);
            self.out.write_all(block).map_err(|source| FormatError::Io {
                format: self.format.name(),
                offset: self.flushed,
                source,
            })?;
            self.flushed += block.len() as u64;
        }
        self.buf.drain(..whole);
        Ok(())
    }

    /// Write everything buffered (at the end only, so the last partial block is the same
    /// for every encoder).
    fn flush(&mut self) -> Result<(), FormatError> {
        self.crc.update(&self.buf);
        self.out.write_all(&self.buf).map_err(|source| FormatError::Io {
            format: self.format.name(),
            offset: self.flushed,
            source,
        })?;
        self.flushed += self.buf.len() as u64;
        self.buf.clear();
        Ok(())
    }

    fn finish(mut self) -> Result<Encoded, FormatError> {
        self.flush()?;
        let totals = Totals { keys: self.keys, functions: self.functions, bytes: self.flushed, crc: self.crc.clone() };
        self.format.trailer(&mut self.buf, &totals);
        self.flush()?;
        self.report();
        Ok(Encoded { file_bytes: 0, format_bytes: self.flushed, keys: self.keys, functions: self.functions })
    }
}

/// A writer that counts the bytes passing through.
struct Counted<W> {
    inner: W,
    count: u64,
}

impl<W> Counted<W> {
    fn new(inner: W) -> Self {
        Counted { inner, count: 0 }
    }
}

impl<W: Write> Write for Counted<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.count += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

// ---- canonical values ---------------------------------------------------------------

/// A value as plain data in canonical order, generic over how strings are held: borrowed
/// (`&[u8]`) when encoding, owned (`Vec<u8>`) when decoding.
///
/// This is also the bincode wire schema of a value ([`Bincode`], [`Stream`]): bincode writes
/// an enum as its variant index (u32 LE) followed by the fields, so the variant order below
/// is part of the format and must not change.
#[derive(Clone, Debug, PartialEq, wincode::SchemaWrite, wincode::SchemaRead)]
pub enum Plain<B> {
    /// A string.
    String(B),
    /// A list, head first.
    List(Vec<B>),
    /// A set's members, sorted bytewise.
    Set(Vec<B>),
    /// A hash's (field, value) pairs, sorted by field.
    Hash(Vec<(B, B)>),
    /// A sorted set's (member, score) pairs, by score then member.
    ZSet(Vec<(B, f64)>),
    /// A value carried verbatim: its RDB type byte and payload.
    Opaque {
        /// RDB value type (Redis src/rdb.h `RDB_TYPE_*`).
        rdb_type: u8,
        /// The payload that followed the key in the dump.
        payload: B,
    },
}

impl<'a> Plain<&'a [u8]> {
    /// `value` in canonical order.
    pub fn canonical(value: ValueRef<'a>) -> Self {
        match value {
            ValueRef::String(s) => Plain::String(s),
            ValueRef::List(_, items) => Plain::List(items.collect()),
            ValueRef::Set(_, members) => {
                let mut v: Vec<&[u8]> = members.collect();
                v.sort_unstable();
                Plain::Set(v)
            }
            ValueRef::Hash(_, pairs) => {
                let mut v: Vec<(&[u8], &[u8])> = pairs.collect();
                v.sort_unstable_by(|a, b| a.0.cmp(b.0));
                Plain::Hash(v)
            }
            ValueRef::ZSet(_, pairs) => {
                let mut v: Vec<(&[u8], f64)> = pairs.collect();
                v.sort_unstable_by(|a, b| a.1.total_cmp(&b.1).then_with(|| a.0.cmp(b.0)));
                Plain::ZSet(v)
            }
            ValueRef::Opaque(rdb_type, payload) => Plain::Opaque { rdb_type, payload },
        }
    }
}

impl<B> Plain<B> {
    /// The Redis type name (as [`Value::type_name`]).
    pub fn type_name(&self) -> &'static str {
        match self {
            Plain::String(_) => "string",
            Plain::List(_) => "list",
            Plain::Set(_) => "set",
            Plain::Hash(_) => "hash",
            Plain::ZSet(_) => "zset",
            Plain::Opaque { rdb_type, .. } => opaque_type_name(*rdb_type).unwrap_or("unknown"),
        }
    }
}

/// The type name of an RDB type we carry opaque, or `None` if `t` is not one of them.
fn opaque_type_name(t: u8) -> Option<&'static str> {
    match t {
        TYPE_STREAM_LISTPACKS | TYPE_STREAM_LISTPACKS_2 | TYPE_STREAM_LISTPACKS_3 | TYPE_STREAM_LISTPACKS_4 => {
            Some("stream")
        }
        TYPE_HASH_METADATA_PRE_GA | TYPE_HASH_LISTPACK_EX_PRE_GA | TYPE_HASH_METADATA | TYPE_HASH_LISTPACK_EX => {
            Some("hash")
        }
        _ => None,
    }
}

impl Plain<Vec<u8>> {
    /// The model's value, refusing what the model never holds: an empty collection,
    /// duplicate members or fields, a NaN score, an opaque value of a type we do not carry.
    ///
    /// # Errors
    /// A sentence saying what is wrong.
    pub fn into_value(self) -> Result<Value, String> {
        fn non_empty<T>(v: &[T], what: &str) -> Result<(), String> {
            if v.is_empty() { Err(format!("an empty {what}, which Redis never stores")) } else { Ok(()) }
        }
        Ok(match self {
            Plain::String(s) => Value::String(s),
            Plain::List(items) => {
                non_empty(&items, "list")?;
                Value::List(Box::new(VecDeque::from(items)))
            }
            Plain::Set(members) => {
                non_empty(&members, "set")?;
                let n = members.len();
                let set: HashSet<Bytes> = members.into_iter().collect();
                if set.len() != n {
                    return Err("a set with a member listed twice".into());
                }
                Value::Set(Box::new(set))
            }
            Plain::Hash(pairs) => {
                non_empty(&pairs, "hash")?;
                let n = pairs.len();
                let hash: HashMap<Bytes, Bytes> = pairs.into_iter().collect();
                if hash.len() != n {
                    return Err("a hash with a field listed twice".into());
                }
                Value::Hash(Box::new(hash))
            }
            Plain::ZSet(pairs) => {
                non_empty(&pairs, "sorted set")?;
                if pairs.iter().any(|(_, s)| s.is_nan()) {
                    return Err("a sorted-set score that is NaN".into());
                }
                let n = pairs.len();
                let zset: HashMap<Bytes, f64> = pairs.into_iter().collect();
                if zset.len() != n {
                    return Err("a sorted set with a member listed twice".into());
                }
                Value::ZSet(Box::new(zset))
            }
            Plain::Opaque { rdb_type, payload } => {
                if opaque_type_name(rdb_type).is_none() {
                    return Err(format!(
                        "RDB type {rdb_type} is not one carried verbatim (streams, hashes with field TTLs)"
                    ));
                }
                if payload.is_empty() {
                    return Err("an opaque value with an empty payload".into());
                }
                Value::Opaque(Box::new(Opaque { rdb_type, payload }))
            }
        })
    }
}

// ---- decoding helpers ---------------------------------------------------------------

/// Builds the keyspace a decoder reads, refusing what the model cannot hold.
struct Loader {
    format: &'static str,
    ks: Keyspace,
    keys: u64,
}

impl Loader {
    fn new(format: &'static str) -> Self {
        Loader { format, ks: Keyspace::new(), keys: 0 }
    }

    /// Add one key found at `offset`.
    fn key(
        &mut self,
        offset: u64,
        db: u64,
        key: Bytes,
        expire_at_ms: Option<i64>,
        value: Plain<Vec<u8>>,
    ) -> Result<(), FormatError> {
        let corrupt = |reason: String| FormatError::Corrupt { format: self.format, offset, what: "record", reason };
        let db = usize::try_from(db)
            .ok()
            .filter(|d| *d < DB_COUNT)
            .ok_or_else(|| corrupt(format!("database {db} is out of range (there are {DB_COUNT})")))?;
        let value = value.into_value().map_err(|r| corrupt(format!("key {}: {r}", escape(&key))))?;
        // `into_value` never yields an empty collection, so the model's invariant holds.
        match self.ks.db_mut(db).insert_new(key, Entry { value, expire_at_ms }) {
            Err((key, _)) => Err(FormatError::DuplicateKey { format: self.format, offset, db, key: escape(&key) }),
            Ok(()) => {
                self.keys += 1;
                Ok(())
            }
        }
    }

    /// Check the trailer's counts against what was read.
    fn check_counts(&self, offset: u64, keys: u64, functions: u64) -> Result<(), FormatError> {
        let (have_keys, have_functions) = (self.keys, self.ks.functions().len() as u64);
        if (keys, functions) != (have_keys, have_functions) {
            return Err(FormatError::Corrupt {
                format: self.format,
                offset,
                what: "trailer",
                reason: format!(
                    "it counts {keys} keys and {functions} function libraries, the file holds {have_keys} and {have_functions}"
                ),
            });
        }
        Ok(())
    }
}

/// A reader that knows its offset and, when asked, checksums what passes through.
struct Tracked<R> {
    inner: R,
    offset: u64,
    crc: Option<Crc64>,
}

impl<R: Read> Tracked<R> {
    fn new(inner: R, checksum: bool) -> Self {
        Tracked { inner, offset: 0, crc: checksum.then(Crc64::new) }
    }

    /// `read_exact`, with a typed error: [`FormatError::Truncated`] at end of input.
    fn exact(&mut self, format: &'static str, out: &mut [u8], what: &'static str) -> Result<(), FormatError> {
        let at = self.offset;
        self.read_exact(out).map_err(|e| io_error(format, at, what, e))
    }

    /// Fail unless the input ends here; reading on past the trailer also makes gzip check
    /// its own CRC-32 and length.
    fn expect_eof(&mut self, format: &'static str) -> Result<(), FormatError> {
        let at = self.offset;
        let mut byte = [0u8; 1];
        loop {
            return match self.read(&mut byte) {
                Ok(0) => Ok(()),
                Ok(_) => Err(FormatError::TrailingData { format, offset: at }),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(source) => Err(FormatError::Io { format, offset: at, source }),
            };
        }
    }
}

impl<R: Read> Read for Tracked<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.offset += n as u64;
        if let Some(crc) = &mut self.crc {
            crc.update(&buf[..n]);
        }
        Ok(n)
    }
}

/// An I/O error while reading `what` at `offset`: end of input is [`FormatError::Truncated`].
fn io_error(format: &'static str, offset: u64, what: &'static str, e: io::Error) -> FormatError {
    if e.kind() == io::ErrorKind::UnexpectedEof {
        FormatError::Truncated { format, offset, what }
    } else {
        FormatError::Io { format, offset, source: e }
    }
}

/// The buffer every decoder reads through, as the RDB reader's.
fn buffered(input: &mut dyn Read) -> BufReader<&mut dyn Read> {
    BufReader::with_capacity(64 * 1024, input)
}

// ---- detection and comparison ---------------------------------------------------------

/// The two bytes every gzip file starts with (RFC 1952, ID1 ID2).
pub const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// Which codec wrote a file that starts with `head` (at least its first 16 bytes): gzip's
/// magic `1f 8b`, then the format's own header inside (so for a gzipped file, `head` must be
/// the decompressed start, with `gzip` set). RDB files are reported as `rdb` without
/// compression: LZF strings are read either way.
pub fn detect(head: &[u8], gzip: bool) -> Option<Codec> {
    let format: &'static dyn Format = if head.starts_with(b"REDIS") {
        &Rdb
    } else if head.starts_with(bincode::MAGIC) {
        &Bincode
    } else if head.starts_with(stream::MAGIC) {
        &Stream
    } else if head.starts_with(b"{") {
        &Json
    } else {
        return None;
    };
    Some(Codec { format, compression: if gzip { Compression::Gzip } else { Compression::None } })
}

/// Read a snapshot in any of the formats, gzipped or not, working out which from its first
/// bytes (see [`detect`]).
///
/// # Errors
/// [`FormatError::Unrecognized`] when no format matches; otherwise the format's own errors.
pub fn decode_any<R: Read>(input: R) -> Result<(Codec, Keyspace), FormatError> {
    // One read's worth is plenty: every header we recognise is at most 16 bytes.
    fn peek(r: &mut dyn BufRead) -> Result<Vec<u8>, FormatError> {
        let buf = r.fill_buf().map_err(|source| FormatError::Io { format: "unknown", offset: 0, source })?;
        Ok(buf[..buf.len().min(16)].to_vec())
    }
    let unknown = |head: &[u8]| FormatError::Unrecognized { found: escape(head) };
    let mut outer = BufReader::with_capacity(64 * 1024, input);
    let head = peek(&mut outer)?;
    if head.starts_with(&GZIP_MAGIC) {
        let mut inner = BufReader::with_capacity(64 * 1024, flate2::bufread::GzDecoder::new(outer));
        let head = peek(&mut inner)?;
        let codec = detect(&head, true).ok_or_else(|| unknown(&head))?;
        let ks = decode_gzip(codec.format, inner)?;
        return Ok((codec, ks));
    }
    let codec = detect(&head, false).ok_or_else(|| unknown(&head))?;
    let ks = codec.format.decode(&mut outer)?;
    Ok((codec, ks))
}

/// Whether `a` and `b` hold exactly the same data: [`Keyspace`]'s `==`, plus the bits of
/// every sorted-set score (`==` on `f64` treats `-0.0` and `0.0` as equal).
pub fn same_keyspace(a: &Keyspace, b: &Keyspace) -> bool {
    a == b
        && a.iter().all(|(db, key, entry)| match (&entry.value, b.get(db, key).map(|e| &e.value)) {
            (Value::ZSet(za), Some(Value::ZSet(zb))) => {
                za.iter().all(|(m, s)| zb.get(m).is_some_and(|t| t.to_bits() == s.to_bits()))
            }
            _ => true,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `same_keyspace` tells `-0.0` from `0.0`, which `==` does not.
    #[test]
    fn same_keyspace_sees_the_sign_of_zero() {
        let mut a = Keyspace::new();
        a.insert(0, b"z".to_vec(), Entry::new(Value::ZSet(Box::new(HashMap::from([(b"m".to_vec(), 0.0)])))));
        let mut b = Keyspace::new();
        b.insert(0, b"z".to_vec(), Entry::new(Value::ZSet(Box::new(HashMap::from([(b"m".to_vec(), -0.0)])))));
        assert!(a == b);
        assert!(!same_keyspace(&a, &b));
        assert!(same_keyspace(&a, &a.clone()));
    }

    /// Every codec id is distinct, LZF appears only with RDB, and gzip with every format.
    #[test]
    fn codec_rows() {
        let ids: Vec<String> = codecs().iter().map(Codec::id).collect();
        assert_eq!(
            ids,
            ["rdb", "rdb+lzf", "rdb+gzip", "json", "json+gzip", "bincode", "bincode+gzip", "stream", "stream+gzip"]
        );
        assert!(matches!(Codec::new(&Json, Compression::Lzf), Err(FormatError::Unsupported { .. })));
    }

    /// The model's invariants are enforced on decode: no empty collection, no duplicate
    /// member, no NaN score, only the opaque types Redis dumps carry.
    #[test]
    fn plain_values_are_checked() {
        assert!(Plain::<Vec<u8>>::List(vec![]).into_value().is_err());
        assert!(Plain::Set(vec![b"a".to_vec(), b"a".to_vec()]).into_value().is_err());
        assert!(
            Plain::Hash(vec![(b"f".to_vec(), b"1".to_vec()), (b"f".to_vec(), b"2".to_vec())]).into_value().is_err()
        );
        assert!(Plain::ZSet(vec![(b"m".to_vec(), f64::NAN)]).into_value().is_err());
        assert!(Plain::Opaque { rdb_type: 0, payload: b"x".to_vec() }.into_value().is_err());
        assert!(Plain::Opaque { rdb_type: 19, payload: vec![] }.into_value().is_err());
        assert!(Plain::Opaque { rdb_type: 19, payload: b"x".to_vec() }.into_value().is_ok());
    }
}
