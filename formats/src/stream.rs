// ANCHOR: layout
//! A length-delimited record stream: bincode records, each framed by its length, between a
//! header and a trailer that counts them and checksums everything.
//!
//! ```text
//! "SNAPSTRM" 01 00 00 00          magic, version (u32 LE)
//! <u32 LE n> <n bytes>            one frame per function library and per key: a bincode
//! ...                             Record (see the bincode format), n > 0
//! 00 00 00 00                     end marker: a frame of length 0
//! <u64 LE records>                how many frames came before it
//! <u64 LE CRC-64>                 CRC-64 (Redis's Jones polynomial) of every byte before it
//! ```
//!
//! What the frame buys over plain bincode: the reader knows a record's size before decoding
//! it, so it reads the bytes first (growing its buffer only as they arrive) and decodes from
//! memory; a record can be skipped without understanding it; and records can be encoded
//! on many threads and written in order. The trailer buys detection: a stream cut anywhere
//! lacks it, and any corruption changes the CRC. The cost is 4 bytes a record and 20 at the
//! end. A record is at most 4 GiB - 1 bytes (the u32 length).
// ANCHOR_END: layout

use std::io::Read;

use super::bincode::{Record, decode_record, encode_record};
use super::{Format, FormatError, Loader, Totals, Tracked, buffered, io_error};
use snaplab_core::command::escape;
use snaplab_core::keyspace::{EntryRef, Keyspace};

/// The first 8 bytes of a stream.
pub const MAGIC: &[u8; 8] = b"SNAPSTRM";

/// The version this build writes and reads.
pub const VERSION: u32 = 1;

/// The length-delimited record stream. See the [module documentation](self).
#[derive(Clone, Copy, Debug, Default)]
pub struct Stream;

const NAME: &str = "stream";

/// Append `record` as one frame: its length as u32 LE, then its bincode bytes.
fn frame(out: &mut Vec<u8>, record: &Record<&[u8]>, what: impl FnOnce() -> String) -> Result<(), FormatError> {
    // EXERCISE 13-stream-framing BEGIN
    let start = out.len();
    out.extend_from_slice(&[0; 4]);
    let len = encode_record(out, record).and_then(|()| {
        u32::try_from(out.len() - start - 4).map_err(|_| "a record over 4 GiB does not fit a u32 length".to_string())
    });
    match len {
        Ok(len) => {
            out[start..start + 4].copy_from_slice(&len.to_le_bytes());
            Ok(())
        }
        Err(reason) => {
            out.truncate(start);
            Err(FormatError::Unencodable { format: NAME, what: what(), reason })
        }
    }
    // EXERCISE 13-stream-framing END
}

impl Format for Stream {
    fn name(&self) -> &'static str {
        NAME
    }

    fn header(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&VERSION.to_le_bytes());
    }

    fn function(&self, out: &mut Vec<u8>, code: &[u8], _lzf: bool) -> Result<(), FormatError> {
        frame(out, &Record::Function { code }, || "a function library".into())
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
        frame(out, &Record::key(db, key, entry), || format!("db {db} key {}", escape(key)))
    }

    fn trailer(&self, out: &mut Vec<u8>, totals: &Totals) {
        let start = out.len();
        out.extend_from_slice(&0u32.to_le_bytes());
        out.extend_from_slice(&(totals.keys + totals.functions).to_le_bytes());
        let mut crc = totals.crc.clone();
        crc.update(&out[start..]);
        out.extend_from_slice(&crc.value().to_le_bytes());
    }

    fn decode(&self, input: &mut dyn Read) -> Result<Keyspace, FormatError> {
        let mut input = Tracked::new(buffered(input), true);
        let mut header = [0u8; 12];
        input.exact(NAME, &mut header, "the header")?;
        if &header[..8] != MAGIC {
            return Err(FormatError::BadHeader {
                format: NAME,
                reason: format!("it starts with \"{}\", not \"{}\"", escape(&header[..8]), escape(MAGIC)),
            });
        }
        let version = u32::from_le_bytes([header[8], header[9], header[10], header[11]]);
        if version != VERSION {
            return Err(FormatError::UnsupportedVersion { format: NAME, version: version.into(), supported: VERSION });
        }
        let mut loader = Loader::new(NAME);
        let mut records = 0u64;
        let mut frame = Vec::new();
        loop {
            let at = input.offset;
            // EXERCISE 13-stream-framing BEGIN
            let mut len = [0u8; 4];
            input.exact(NAME, &mut len, "a record length")?;
            let len = u32::from_le_bytes(len);
            if len == 0 {
                break;
            }
            frame.clear();
            // `take` + `read_to_end` grows the buffer only as bytes arrive: a length that
            // lies costs nothing beyond the bytes that are really there.
            (&mut input)
                .take(u64::from(len))
                .read_to_end(&mut frame)
                .map_err(|e| io_error(NAME, input.offset, "a record", e))?;
            if frame.len() < len as usize {
                return Err(FormatError::Truncated { format: NAME, offset: input.offset, what: "a record" });
            }
            // EXERCISE 13-stream-framing END
            let corrupt = |reason: String| FormatError::Corrupt { format: NAME, offset: at, what: "record", reason };
            match decode_record(&frame).map_err(corrupt)? {
                Record::Key { db, key, expire_at_ms, value } => loader.key(at, db.into(), key, expire_at_ms, value)?,
                Record::Function { code } => loader.ks.add_function(code),
                Record::End { .. } => return Err(corrupt("an end record inside a frame".into())),
            }
            records += 1;
        }
        let mut count = [0u8; 8];
        input.exact(NAME, &mut count, "the record count")?;
        let computed = input.crc.as_ref().map_or(0, |c| c.value());
        let at = input.offset;
        let mut stored = [0u8; 8];
        input.exact(NAME, &mut stored, "the CRC-64")?;
        let stored = u64::from_le_bytes(stored);
        if stored != computed {
            return Err(FormatError::Checksum { format: NAME, offset: at, stored, computed });
        }
        let count = u64::from_le_bytes(count);
        if count != records {
            return Err(FormatError::Corrupt {
                format: NAME,
                offset: at - 8,
                what: "trailer",
                reason: format!("it counts {count} records, the stream holds {records}"),
            });
        }
        input.expect_eof(NAME)?;
        Ok(loader.ks)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use snaplab_core::keyspace::{Entry, Value};

    /// The layout is as documented: magic, version, one frame per key with its u32 LE
    /// length, a zero end marker, the record count and the CRC-64 of everything before it.
    #[test]
    fn layout() {
        let mut ks = Keyspace::new();
        ks.insert(2, b"k".to_vec(), Entry::new(Value::String(b"v".to_vec())));
        let mut out = Vec::new();
        super::super::Codec::new(&Stream, super::super::Compression::None)
            .unwrap()
            .encode(&ks, &mut out, None)
            .unwrap();
        assert_eq!(&out[..12], b"SNAPSTRM\x01\x00\x00\x00");
        let body = {
            let mut b = Vec::new();
            encode_record(
                &mut b,
                &Record::Key { db: 2, key: b"k", expire_at_ms: None, value: super::super::Plain::String(b"v") },
            )
            .unwrap();
            b
        };
        assert_eq!(&out[12..16], &(body.len() as u32).to_le_bytes());
        assert_eq!(&out[16..16 + body.len()], body.as_slice());
        let rest = &out[16 + body.len()..];
        assert_eq!(&rest[..4], &[0, 0, 0, 0]);
        assert_eq!(&rest[4..12], &1u64.to_le_bytes());
        let crc = snaplab_core::rdb::crc::crc64(&out[..out.len() - 8]);
        assert_eq!(&rest[12..], &crc.to_le_bytes());
        assert_eq!(Stream.decode(&mut out.as_slice()).unwrap(), ks);
    }

    // ANCHOR: lying_frame_length
    /// A frame length claiming 4 GiB in a short stream is a typed truncation, not a 4 GiB
    /// allocation.
    #[test]
    fn lying_frame_length() {
        let mut file = Vec::new();
        Stream.header(&mut file);
        file.extend_from_slice(&u32::MAX.to_le_bytes());
        file.extend_from_slice(b"abc");
        let err = Stream.decode(&mut file.as_slice()).unwrap_err();
        assert!(matches!(err, FormatError::Truncated { offset: 19, .. }), "{err}");
    }
    // ANCHOR_END: lying_frame_length
}
