//! The Redis RDB format as a [`Format`]: the reference the other formats are measured
//! against, and the only one `redis-server` loads.
//!
//! The bytes are exactly what [`snaplab_core::rdb::write_view`] writes in canonical mode (a test
//! pins this): `REDIS0010`, the AUX fields with `ctime` 0, the function libraries, then per
//! database SELECTDB, RESIZEDB and the keys, then EOF and the CRC-64. Reading goes through
//! the streaming [`snaplab_core::rdb`] reader.

use std::io::Read;

use super::{Format, FormatError, Totals, Tracked};
use snaplab_core::keyspace::{EntryRef, Keyspace};
use snaplab_core::rdb::consts::{
    OPCODE_AUX, OPCODE_EOF, OPCODE_FUNCTION2, OPCODE_RESIZEDB, OPCODE_SELECTDB, WRITE_VERSION,
};
use snaplab_core::rdb::encode::{encode_entry_ref, put_len, put_string};

/// The Redis RDB format (version 10). See the [module documentation](self).
#[derive(Clone, Copy, Debug, Default)]
pub struct Rdb;

const NAME: &str = "rdb";

impl Format for Rdb {
    fn name(&self) -> &'static str {
        NAME
    }

    fn supports(&self, _: super::Compression) -> bool {
        true
    }

    fn header(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(format!("REDIS{WRITE_VERSION:04}").as_bytes());
        // The AUX fields `write_aux_fields` writes in canonical mode (ctime 0, no strategy
        // field), so the file is a function of the data alone. AUX strings are short and
        // never reach LZF's 20-byte threshold.
        let mut scratch = Vec::new();
        for (key, value) in [(&b"redis-ver"[..], &b"7.0.0"[..]), (b"redis-bits", b"64"), (b"ctime", b"0")] {
            out.push(OPCODE_AUX);
            put_string(out, &mut scratch, key, false);
            put_string(out, &mut scratch, value, false);
        }
    }

    fn function(&self, out: &mut Vec<u8>, code: &[u8], lzf: bool) -> Result<(), FormatError> {
        out.push(OPCODE_FUNCTION2);
        put_string(out, &mut Vec::new(), code, lzf);
        Ok(())
    }

    fn begin_db(&self, out: &mut Vec<u8>, db: usize, keys: u64, expires: u64) {
        out.push(OPCODE_SELECTDB);
        put_len(out, db as u64);
        out.push(OPCODE_RESIZEDB);
        put_len(out, keys);
        put_len(out, expires);
    }

    fn record(
        &self,
        out: &mut Vec<u8>,
        scratch: &mut Vec<u8>,
        _db: usize,
        key: &[u8],
        entry: EntryRef<'_>,
        lzf: bool,
    ) -> Result<(), FormatError> {
        encode_entry_ref(out, scratch, key, entry, lzf, true);
        Ok(())
    }

    fn trailer(&self, out: &mut Vec<u8>, totals: &Totals) {
        // Redis src/rdb.c, rdbSaveRio: EOF, then the CRC-64 of everything up to and
        // including it, little-endian.
        out.push(OPCODE_EOF);
        let mut crc = totals.crc.clone();
        crc.update(&[OPCODE_EOF]);
        out.extend_from_slice(&crc.value().to_le_bytes());
    }

    fn decode(&self, input: &mut dyn Read) -> Result<Keyspace, FormatError> {
        let mut input = Tracked::new(input, false);
        let (ks, summary) = snaplab_core::rdb::load(&mut input)?;
        // The reader reads ahead in 64 KiB blocks and stops at the CRC-64, so anything it
        // read past `summary.bytes`, or anything still unread, follows the trailer.
        if input.offset > summary.bytes {
            return Err(FormatError::TrailingData { format: NAME, offset: summary.bytes });
        }
        input.expect_eof(NAME)?;
        Ok(ks)
    }
}
