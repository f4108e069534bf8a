//! bincode's wire format, written and read by `wincode` 0.6: a baseline of what a plain
//! binary serializer gives you with no format design at all.
//!
//! A file is a bincode-encoded [`Header`] followed by [`Record`]s, each a bincode-encoded
//! enum, the last one [`Record::End`] with the counts:
//!
//! ```text
//! "SNAPBINC" 01 00 00 00                    Header: magic ([u8; 8]), version (u32 LE)
//! 00 00 00 00  db  key  expiry  value       Record::Key: variant index 0 as u32 LE, then the fields
//! 01 00 00 00  code                         Record::Function
//! 02 00 00 00  keys  functions              Record::End: two u64 LE
//! ```
//!
//! bincode's rules (bincode 1.x's default, bincode 2's `config::legacy()`): integers fixed
//! width little-endian, an enum is its variant index as u32 LE then its fields, `Option` is
//! one byte 0/1 then the value, a byte string or a `Vec` is its length as u64 LE then its
//! elements, a tuple or struct is its fields in order, an `f64` its 8 IEEE 754 bytes LE.
//! The tests check these bytes by hand.
//!
//! What it lacks, by design: a checksum (a flipped bit in a value decodes to another value),
//! and framing (a length prefix must be trusted before the bytes it announces arrive).
//! wincode guards the second with a preallocation limit, which [`config`] sets.

use std::io::Read;
use std::mem::MaybeUninit;

use wincode::io::ReadResult;
use wincode::io::Reader;
use wincode::io::std_read::ReadAdapter;
use wincode::{SchemaRead, SchemaWrite};

use super::{Format, FormatError, Loader, Plain, Totals, Tracked, buffered, io_error};
use snaplab_core::command::escape;
use snaplab_core::keyspace::{EntryRef, Keyspace};

/// The first 8 bytes of a bincode snapshot.
pub const MAGIC: &[u8; 8] = b"SNAPBINC";

/// The version this build writes and reads.
pub const VERSION: u32 = 1;

/// The longest sequence (in bytes of decoded elements) a record may hold: 512 MiB, the
/// largest string Redis accepts (`proto-max-bulk-len`). wincode's default is 4 MiB, which
/// refuses a 5 MB string or a list of 200,000 elements (24 bytes each as `Vec<u8>`s), both
/// ordinary in real dumps.
pub const MAX_SEQUENCE_BYTES: usize = 512 << 20;

/// The one wincode configuration snaplab uses: bincode's defaults (fixed-width little-endian
/// integers, u64 lengths, u32 enum tags) with the preallocation limit raised to
/// [`MAX_SEQUENCE_BYTES`].
pub type WireConfig = wincode::config::Configuration<true, MAX_SEQUENCE_BYTES>;

/// The configuration to pass to every wincode call (see [`WireConfig`]).
pub const fn config() -> WireConfig {
    wincode::config::Configuration::default().with_preallocation_size_limit::<MAX_SEQUENCE_BYTES>()
}

/// What opens a bincode snapshot.
#[derive(Clone, Copy, Debug, PartialEq, Eq, SchemaWrite, SchemaRead)]
pub struct Header {
    /// [`MAGIC`].
    pub magic: [u8; 8],
    /// [`VERSION`].
    pub version: u32,
}

/// One record: a key, a function library, or the end. Generic over how strings are held,
/// as [`Plain`]. The variant order is the wire tag.
#[derive(Clone, Debug, PartialEq, SchemaWrite, SchemaRead)]
pub enum Record<B> {
    /// A key.
    Key {
        /// Its database, 0 to 15.
        db: u8,
        /// The key.
        key: B,
        /// Expiry in unix ms.
        expire_at_ms: Option<i64>,
        /// The value.
        value: Plain<B>,
    },
    /// A function library's source.
    Function {
        /// The source.
        code: B,
    },
    /// The end, with the counts written.
    End {
        /// Keys.
        keys: u64,
        /// Function libraries.
        functions: u64,
    },
}

impl<'a> Record<&'a [u8]> {
    /// The record for `key` in `db`, its value in canonical order.
    pub fn key<'e: 'a>(db: usize, key: &'a [u8], entry: EntryRef<'e>) -> Self {
        // `db < DB_COUNT` (16) for every view.
        Record::Key { db: db as u8, key, expire_at_ms: entry.expire_at_ms, value: Plain::canonical(entry.value) }
    }
}

/// Append `record` in bincode's wire format.
///
/// # Errors
/// A sentence when a string or a collection is over [`MAX_SEQUENCE_BYTES`] once decoded,
/// so the decoder would refuse it. `out` is then unchanged.
pub fn encode_record(out: &mut Vec<u8>, record: &Record<&[u8]>) -> Result<(), String> {
    check_decodable(record)?;
    wincode::config::serialize_into(out, record, config()).map_err(|e| e.to_string())
}

/// Decode one record from exactly `bytes` (as the length-delimited stream frames them).
///
/// # Errors
/// wincode's error, as a sentence.
pub fn decode_record(bytes: &[u8]) -> Result<Record<Vec<u8>>, String> {
    wincode::config::deserialize_exact::<Record<Vec<u8>>, _>(bytes, config()).map_err(|e| e.to_string())
}

/// Refuse what the decoder could not preallocate. wincode checks the limit when it reads
/// a sequence, against the size of what it builds (a `Vec<u8>` is 24 bytes, a byte 1), but
/// it does not check a borrowed `&[u8]` when writing one, so without this the encoder
/// would write files its own decoder refuses.
fn check_decodable(record: &Record<&[u8]>) -> Result<(), String> {
    use std::mem::size_of;
    let string = |s: &[u8]| fits(s.len(), 1, "a string");
    match record {
        Record::Function { code } => string(code),
        Record::End { .. } => Ok(()),
        Record::Key { key, value, .. } => {
            string(key)?;
            match value {
                Plain::String(s) | Plain::Opaque { payload: s, .. } => string(s),
                Plain::List(v) | Plain::Set(v) => {
                    fits(v.len(), size_of::<Vec<u8>>(), "a collection")?;
                    v.iter().try_for_each(|s| string(s))
                }
                Plain::Hash(v) => {
                    fits(v.len(), size_of::<(Vec<u8>, Vec<u8>)>(), "a hash")?;
                    v.iter().try_for_each(|(f, s)| string(f).and_then(|()| string(s)))
                }
                Plain::ZSet(v) => {
                    fits(v.len(), size_of::<(Vec<u8>, f64)>(), "a sorted set")?;
                    v.iter().try_for_each(|(m, _)| string(m))
                }
            }
        }
    }
}

/// Whether a sequence of `len` elements of `elem` bytes each fits the preallocation limit.
fn fits(len: usize, elem: usize, what: &str) -> Result<(), String> {
    let bytes = len.saturating_mul(elem);
    if bytes > MAX_SEQUENCE_BYTES {
        return Err(format!(
            "{what} of {len} elements needs {bytes} bytes to decode, over the {MAX_SEQUENCE_BYTES}-byte preallocation limit"
        ));
    }
    Ok(())
}

/// bincode's wire format. See the [module documentation](self).
#[derive(Clone, Copy, Debug, Default)]
pub struct Bincode;

const NAME: &str = "bincode";

fn unencodable(what: String, reason: String) -> FormatError {
    FormatError::Unencodable { format: NAME, what, reason }
}

impl Format for Bincode {
    fn name(&self) -> &'static str {
        NAME
    }

    fn header(&self, out: &mut Vec<u8>) {
        let header = Header { magic: *MAGIC, version: VERSION };
        // A fixed-size struct written to a Vec has no length to exceed and no I/O to fail.
        wincode::config::serialize_into(out, &header, config()).expect("a 12-byte header always encodes");
    }

    fn function(&self, out: &mut Vec<u8>, code: &[u8], _lzf: bool) -> Result<(), FormatError> {
        encode_record(out, &Record::Function { code }).map_err(|r| unencodable("a function library".into(), r))
    }

    fn record(
        &self,
        out: &mut Vec<u8>,
        _scratch: &mut Vec<u8>,
        db: usize,
        key: &[u8],
        entry: EntryRef<'_>,
        _lzf: bool,
    ) -> Result<(), FormatError> {
        encode_record(out, &Record::key(db, key, entry))
            .map_err(|r| unencodable(format!("db {db} key {}", escape(key)), r))
    }

    fn trailer(&self, out: &mut Vec<u8>, totals: &Totals) {
        let end: Record<&[u8]> = Record::End { keys: totals.keys, functions: totals.functions };
        // Two u64s after a tag: nothing to exceed, nothing to fail.
        wincode::config::serialize_into(out, &end, config()).expect("an end record always encodes");
    }

    fn decode(&self, input: &mut dyn Read) -> Result<Keyspace, FormatError> {
        let mut input = Tracked::new(buffered(input), false);
        let header: Header = read(&mut input, "the header")?;
        if &header.magic != MAGIC {
            return Err(FormatError::BadHeader {
                format: NAME,
                reason: format!("it starts with \"{}\", not \"{}\"", escape(&header.magic), escape(MAGIC)),
            });
        }
        if header.version != VERSION {
            return Err(FormatError::UnsupportedVersion {
                format: NAME,
                version: header.version.into(),
                supported: VERSION,
            });
        }
        let mut loader = Loader::new(NAME);
        loop {
            let at = input.offset;
            match read::<Record<Vec<u8>>, _>(&mut input, "a record")? {
                Record::Key { db, key, expire_at_ms, value } => loader.key(at, db.into(), key, expire_at_ms, value)?,
                Record::Function { code } => loader.ks.add_function(code),
                Record::End { keys, functions } => {
                    loader.check_counts(at, keys, functions)?;
                    break;
                }
            }
        }
        input.expect_eof(NAME)?;
        Ok(loader.ks)
    }
}

/// Read one `T` from `input` with [`config`], mapping wincode's errors to ours.
fn read<T, R>(input: &mut Tracked<R>, what: &'static str) -> Result<T, FormatError>
where
    T: wincode::SchemaReadOwned<WireConfig, Dst = T>,
    R: Read,
{
    let at = input.offset;
    wincode::config::deserialize_from::<T, _>(Chunked(ReadAdapter::new(&mut *input)), config()).map_err(|e| {
        use wincode::ReadError;
        use wincode::io::ReadError as IoError;
        match e {
            ReadError::Io(IoError::ReadSizeLimit(_)) => {
                FormatError::Truncated { format: NAME, offset: input.offset, what }
            }
            ReadError::Io(IoError::Io(e)) => io_error(NAME, input.offset, what, e),
            other => FormatError::Corrupt { format: NAME, offset: at, what, reason: other.to_string() },
        }
    })
}

/// Bytes of a destination initialised (zeroed) at a time before reading into it.
const FILL_CHUNK: usize = 64 * 1024;

/// wincode's [`ReadAdapter`], except that it zeroes and reads a long destination 64 KiB at
/// a time. wincode allocates a byte string's full length before reading it, and the
/// adapter zeroes the whole allocation first: a corrupt length of 400 MB would then touch
/// 400 MB of memory before the read finds the input short. Here memory is touched only as
/// bytes actually arrive, so a lying length costs address space, not memory.
struct Chunked<R>(ReadAdapter<R>);

// SAFETY: every method delegates to `ReadAdapter`, whose impl upholds `Reader`'s contract.
// `copy_into_uninit_slice` returns `Ok(())` only after the delegated call has returned
// `Ok(())` for every chunk, and each such call initialises its whole chunk, so all of `dst`
// is initialised. No borrowing method is implemented (the defaults refuse to borrow), and
// `as_trusted_for` keeps its default, which returns this checked reader itself.
#[allow(unsafe_code)]
unsafe impl<'de, R: Read> Reader<'de> for Chunked<R> {
    fn copy_into_slice(&mut self, dst: &mut [u8]) -> ReadResult<()> {
        self.0.copy_into_slice(dst)
    }

    fn copy_into_uninit_slice(&mut self, dst: &mut [MaybeUninit<u8>]) -> ReadResult<()> {
        for chunk in dst.chunks_mut(FILL_CHUNK) {
            self.0.copy_into_uninit_slice(chunk)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// wincode writes bincode's wire format byte for byte: u32 LE variant index, one byte
    /// for `Option`, u64 LE lengths before byte strings and vectors, f64 as 8 bytes LE.
    #[test]
    fn bytes_are_bincode_wire_format() {
        let rec: Record<&[u8]> =
            Record::Key { db: 3, key: b"ab", expire_at_ms: Some(0x0102), value: Plain::ZSet(vec![(b"m", 1.5)]) };
        let mut out = Vec::new();
        encode_record(&mut out, &rec).unwrap();
        let mut want: Vec<u8> = vec![0, 0, 0, 0]; // Record::Key
        want.push(3); // db: u8
        want.extend_from_slice(&2u64.to_le_bytes()); // key length
        want.extend_from_slice(b"ab");
        want.push(1); // Some
        want.extend_from_slice(&0x0102i64.to_le_bytes());
        want.extend_from_slice(&4u32.to_le_bytes()); // Plain::ZSet
        want.extend_from_slice(&1u64.to_le_bytes()); // one pair
        want.extend_from_slice(&1u64.to_le_bytes());
        want.push(b'm');
        want.extend_from_slice(&1.5f64.to_le_bytes());
        assert_eq!(out, want);

        let mut header = Vec::new();
        Bincode.header(&mut header);
        assert_eq!(header, b"SNAPBINC\x01\x00\x00\x00");
        assert_eq!(
            decode_record(&out).unwrap(),
            Record::Key {
                db: 3,
                key: b"ab".to_vec(),
                expire_at_ms: Some(0x0102),
                value: Plain::ZSet(vec![(b"m".to_vec(), 1.5)]),
            }
        );
    }

    /// A sequence too long to preallocate on decode is refused on encode, naming the size.
    #[test]
    fn oversized_collections_are_refused_before_writing() {
        let elem = std::mem::size_of::<Vec<u8>>();
        let err = fits(MAX_SEQUENCE_BYTES / elem + 1, elem, "a collection").unwrap_err();
        assert!(err.contains("preallocation limit"), "{err}");
        assert!(fits(MAX_SEQUENCE_BYTES / elem, elem, "a collection").is_ok());
        let mut out = Vec::new();
        let list = Record::Key { db: 0, key: &b"k"[..], expire_at_ms: None, value: Plain::List(vec![&b""[..]; 1000]) };
        assert!(encode_record(&mut out, &list).is_ok());
    }

    /// A string length claiming 400 MB in a 30-byte input is a typed truncation error.
    #[test]
    fn lying_length_is_truncation() {
        let mut file = Vec::new();
        Bincode.header(&mut file);
        file.extend_from_slice(&1u32.to_le_bytes()); // Record::Function
        file.extend_from_slice(&(400u64 << 20).to_le_bytes());
        file.extend_from_slice(b"short");
        let err = Bincode.decode(&mut file.as_slice()).unwrap_err();
        assert!(matches!(err, FormatError::Truncated { offset: 29, .. }), "{err}");
    }
}
