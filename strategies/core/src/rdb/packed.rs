//! Decoders for the compact blobs Redis stores inside RDB strings: ziplist, listpack,
//! intset and zipmap. Each checks what Redis's deep integrity check checks (Redis
//! src/ziplist.c `ziplistValidateIntegrity`, src/listpack.c `lpValidateIntegrity`,
//! src/intset.c `intsetValidateIntegrity`, src/zipmap.c `zipmapValidateIntegrity`) and
//! returns a reason instead of panicking on any malformed input.
//!
//! Each format has an iterator that borrows the blob and yields one entry at a time, so a
//! blob of ten million entries can be checked without building ten million strings, and a
//! function that collects the entries into owned vectors. Integer entries become their
//! decimal strings, as Redis returns them to clients.

/// A reason a blob is malformed.
pub type Reason = String;

/// A field/value pair from a zipmap.
pub type Pair = (Vec<u8>, Vec<u8>);

/// A field/value pair borrowed from a zipmap blob.
pub type PairRef<'a> = (&'a [u8], &'a [u8]);

/// A bounds-checked reader over a blob.
struct Cur<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Cur<'a> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], Reason> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.data.len());
        let end = end.ok_or_else(|| format!("{what} at blob offset {} runs past the end", self.pos))?;
        let s = &self.data[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn u8(&mut self, what: &str) -> Result<u8, Reason> {
        Ok(self.take(1, what)?[0])
    }
}

fn le_u16(b: &[u8]) -> u16 {
    u16::from_le_bytes([b[0], b[1]])
}

fn le_u32(b: &[u8]) -> u32 {
    u32::from_le_bytes([b[0], b[1], b[2], b[3]])
}

fn le_i64(b: &[u8]) -> i64 {
    i64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]])
}

/// One entry of a ziplist or listpack: a string borrowed from the blob, or an integer.
///
/// Redis returns integer entries to clients as their decimal strings; [`PackedEntry::bytes`]
/// does the same.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PackedEntry<'a> {
    /// A string entry's bytes.
    Bytes(&'a [u8]),
    /// An integer entry.
    Int(i64),
}

/// Room for the decimal form of any `i64` ("-9223372036854775808" is 20 bytes).
pub type IntBuf = [u8; 20];

/// The decimal form of `v`, written into `buf`.
pub fn int_bytes(v: i64, buf: &mut IntBuf) -> &[u8] {
    use std::io::Write;
    let mut rest = &mut buf[..];
    // Cannot fail: 20 bytes hold every i64 in decimal, sign included.
    let _ = write!(rest, "{v}");
    let n = 20 - rest.len();
    &buf[..n]
}

impl<'a> PackedEntry<'a> {
    /// The entry as Redis returns it: a string's bytes, an integer in decimal (written into
    /// `buf`, which must outlive the returned slice).
    pub fn bytes<'b>(&self, buf: &'b mut IntBuf) -> &'b [u8]
    where
        'a: 'b,
    {
        match *self {
            PackedEntry::Bytes(b) => b,
            PackedEntry::Int(v) => int_bytes(v, buf),
        }
    }

    /// The entry as an owned string (see [`PackedEntry::bytes`]).
    pub fn to_vec(&self) -> Vec<u8> {
        self.bytes(&mut [0; 20]).to_vec()
    }
}

/// Walks a ziplist (Redis 2.6 to 6.2 small lists, hashes and sorted sets) entry by entry,
/// checking what `ziplistValidateIntegrity` checks as it goes and, at the end, that the tail
/// offset and the header's count agree with the entries.
///
/// Layout: `zlbytes` u32 LE, `zltail` u32 LE, `zllen` u16 LE (65535 = unknown), entries,
/// 0xFF. Each entry is `prevlen` (1 byte, or 0xFE + u32 LE), an encoding header, then the data.
pub struct ZiplistIter<'a> {
    blob: &'a [u8],
    pos: usize,
    end: usize,
    zltail: usize,
    header_count: u16,
    seen: usize,
    prev_raw: usize,
    last_start: Option<usize>,
}

impl<'a> ZiplistIter<'a> {
    /// Check the header and terminator of `blob` and start before its first entry.
    ///
    /// # Errors
    /// The reason the header is inconsistent with the blob.
    pub fn new(blob: &'a [u8]) -> Result<Self, Reason> {
        const HEADER: usize = 10;
        if blob.len() < HEADER + 1 {
            return Err(format!("ziplist of {} bytes is shorter than its header", blob.len()));
        }
        let zlbytes = le_u32(&blob[0..4]) as usize;
        if zlbytes != blob.len() {
            return Err(format!("ziplist header says {zlbytes} bytes, the string holds {}", blob.len()));
        }
        if blob[blob.len() - 1] != 0xFF {
            return Err("ziplist does not end with 0xFF".into());
        }
        let zltail = le_u32(&blob[4..8]) as usize;
        if zltail > blob.len() - 1 {
            return Err(format!("ziplist tail offset {zltail} is outside the blob"));
        }
        Ok(ZiplistIter {
            blob,
            pos: HEADER,
            end: blob.len() - 1,
            zltail,
            header_count: le_u16(&blob[8..10]),
            seen: 0,
            prev_raw: 0,
            last_start: None,
        })
    }

    /// The next entry, or `None` after the last one (once the tail offset and count check out).
    ///
    /// # Errors
    /// The reason the blob is not a valid ziplist; the iterator must not be used after an error.
    pub fn next_entry(&mut self) -> Result<Option<PackedEntry<'a>>, Reason> {
        if self.pos >= self.end {
            return self.finish().map(|()| None);
        }
        let mut c = Cur { data: &self.blob[..self.end], pos: self.pos };
        let start = c.pos;
        let first = c.u8("ziplist prevlen")?;
        let prevlen = if first < 0xFE {
            first as usize
        } else if first == 0xFE {
            le_u32(c.take(4, "ziplist prevlen")?) as usize
        } else {
            return Err(format!("ziplist entry at offset {start} starts with 0xFF before the end"));
        };
        if prevlen != self.prev_raw {
            return Err(format!(
                "ziplist entry at offset {start} says the previous entry is {prevlen} bytes, it is {}",
                self.prev_raw
            ));
        }
        let enc = c.u8("ziplist encoding")?;
        let entry = match enc >> 6 {
            0 => PackedEntry::Bytes(c.take((enc & 0x3F) as usize, "ziplist string")?),
            1 => {
                let lo = c.u8("ziplist length")?;
                let len = (((enc & 0x3F) as usize) << 8) | lo as usize;
                PackedEntry::Bytes(c.take(len, "ziplist string")?)
            }
            2 => {
                if enc != 0x80 {
                    return Err(format!("ziplist string encoding {enc:#04x} at offset {start} is invalid"));
                }
                let b = c.take(4, "ziplist length")?;
                let len = u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize;
                PackedEntry::Bytes(c.take(len, "ziplist string")?)
            }
            _ => PackedEntry::Int(match enc {
                0xC0 => i64::from(le_u16(c.take(2, "ziplist int16")?) as i16),
                0xD0 => i64::from(le_u32(c.take(4, "ziplist int32")?) as i32),
                0xE0 => le_i64(c.take(8, "ziplist int64")?),
                0xF0 => {
                    let b = c.take(3, "ziplist int24")?;
                    i64::from(i32::from_le_bytes([0, b[0], b[1], b[2]]) >> 8)
                }
                0xFE => i64::from(c.u8("ziplist int8")? as i8),
                0xF1..=0xFD => i64::from(enc & 0x0F) - 1,
                _ => return Err(format!("ziplist integer encoding {enc:#04x} at offset {start} is invalid")),
            }),
        };
        self.pos = c.pos;
        self.prev_raw = c.pos - start;
        self.last_start = Some(start);
        self.seen += 1;
        Ok(Some(entry))
    }

    fn finish(&self) -> Result<(), Reason> {
        if let Some(last) = self.last_start
            && last != self.zltail
        {
            return Err(format!("ziplist tail offset {} does not point at the last entry ({last})", self.zltail));
        }
        if self.header_count != u16::MAX && usize::from(self.header_count) != self.seen {
            return Err(format!("ziplist header counts {} entries, it holds {}", self.header_count, self.seen));
        }
        Ok(())
    }
}

/// Decode a whole ziplist into owned entries (see [`ZiplistIter`] for the layout and checks).
///
/// # Errors
/// The reason the blob is not a valid ziplist.
pub fn ziplist(blob: &[u8]) -> Result<Vec<Vec<u8>>, Reason> {
    let mut it = ZiplistIter::new(blob)?;
    let mut out = Vec::new();
    while let Some(e) = it.next_entry()? {
        out.push(e.to_vec());
    }
    Ok(out)
}

/// The size of a listpack entry's back-length field for an entry of `len` bytes
/// (Redis src/listpack.c, `lpEncodeBacklen`). The encoder ([`super::pack`]) uses it too.
pub(super) fn backlen_size(len: usize) -> usize {
    match len {
        0..=127 => 1,
        128..=16382 => 2,
        16383..=2097150 => 3,
        2097151..=268435454 => 4,
        _ => 5,
    }
}

/// Decode the back-length ending at `blob[end - 1]`, reading backwards (Redis
/// `lpDecodeBacklen`).
fn decode_backlen(blob: &[u8], end: usize) -> Option<usize> {
    let mut val = 0usize;
    let mut shift = 0;
    let mut p = end.checked_sub(1)?;
    loop {
        let b = blob[p];
        val |= ((b & 127) as usize) << shift;
        if b & 128 == 0 {
            return Some(val);
        }
        shift += 7;
        if shift > 28 {
            return None;
        }
        p = p.checked_sub(1)?;
    }
}

/// Check a listpack's header and terminator only (what Redis checks when it loads a
/// dump without deep sanitization). Used for stream nodes, which we carry verbatim.
///
/// # Errors
/// The reason the header is inconsistent.
pub fn listpack_header(blob: &[u8]) -> Result<(), Reason> {
    if blob.len() < 7 {
        return Err(format!("listpack of {} bytes is shorter than its header", blob.len()));
    }
    let total = le_u32(&blob[0..4]) as usize;
    if total != blob.len() {
        return Err(format!("listpack header says {total} bytes, the string holds {}", blob.len()));
    }
    if blob[blob.len() - 1] != 0xFF {
        return Err("listpack does not end with 0xFF".into());
    }
    Ok(())
}

/// Walks a listpack (Redis 7 small lists, hashes, sets and sorted sets) entry by entry,
/// checking each entry's encoding and back-length as it goes and, at the end, the header's
/// element count (Redis src/listpack.c, `lpValidateIntegrity` and `lpValidateNext`).
///
/// Layout: total bytes u32 LE, element count u16 LE (65535 = unknown), entries, 0xFF.
/// Each entry is an encoding byte with its data, then a back-length of 1 to 5 bytes.
pub struct ListpackIter<'a> {
    blob: &'a [u8],
    pos: usize,
    end: usize,
    count: u16,
    seen: usize,
}

impl<'a> ListpackIter<'a> {
    /// Check the header and terminator of `blob` and start before its first entry.
    ///
    /// # Errors
    /// The reason the header is inconsistent with the blob.
    pub fn new(blob: &'a [u8]) -> Result<Self, Reason> {
        listpack_header(blob)?;
        Ok(ListpackIter { blob, pos: 6, end: blob.len() - 1, count: le_u16(&blob[4..6]), seen: 0 })
    }

    /// The next entry, or `None` after the last one (once the header's count checks out).
    ///
    /// # Errors
    /// The reason the blob is not a valid listpack; the iterator must not be used after an error.
    pub fn next_entry(&mut self) -> Result<Option<PackedEntry<'a>>, Reason> {
        if self.pos >= self.end {
            if self.count != u16::MAX && usize::from(self.count) != self.seen {
                return Err(format!("listpack header counts {} elements, it holds {}", self.count, self.seen));
            }
            return Ok(None);
        }
        let mut c = Cur { data: &self.blob[..self.end], pos: self.pos };
        let start = c.pos;
        let b = c.u8("listpack encoding")?;
        let entry = if b & 0x80 == 0 {
            PackedEntry::Int(i64::from(b & 0x7F))
        } else if b & 0xC0 == 0x80 {
            PackedEntry::Bytes(c.take((b & 0x3F) as usize, "listpack string")?)
        } else if b & 0xE0 == 0xC0 {
            let lo = c.u8("listpack int13")?;
            let u = (((b & 0x1F) as i64) << 8) | lo as i64;
            PackedEntry::Int(if u >= 1 << 12 { u - (1 << 13) } else { u })
        } else if b & 0xF0 == 0xE0 {
            let lo = c.u8("listpack length")?;
            let len = (((b & 0x0F) as usize) << 8) | lo as usize;
            PackedEntry::Bytes(c.take(len, "listpack string")?)
        } else {
            match b {
                0xF0 => {
                    let len = le_u32(c.take(4, "listpack length")?) as usize;
                    PackedEntry::Bytes(c.take(len, "listpack string")?)
                }
                0xF1 => PackedEntry::Int(i64::from(le_u16(c.take(2, "listpack int16")?) as i16)),
                0xF2 => {
                    let x = c.take(3, "listpack int24")?;
                    PackedEntry::Int(i64::from(i32::from_le_bytes([0, x[0], x[1], x[2]]) >> 8))
                }
                0xF3 => PackedEntry::Int(i64::from(le_u32(c.take(4, "listpack int32")?) as i32)),
                0xF4 => PackedEntry::Int(le_i64(c.take(8, "listpack int64")?)),
                _ => return Err(format!("listpack encoding byte {b:#04x} at offset {start} is invalid")),
            }
        };
        let entry_len = c.pos - start;
        c.take(backlen_size(entry_len), "listpack back-length")?;
        if decode_backlen(self.blob, c.pos) != Some(entry_len) {
            return Err(format!("listpack entry at offset {start}: back-length does not match its size {entry_len}"));
        }
        self.pos = c.pos;
        self.seen += 1;
        Ok(Some(entry))
    }
}

/// Decode a whole listpack into owned entries (see [`ListpackIter`] for the layout and checks).
///
/// # Errors
/// The reason the blob is not a valid listpack.
pub fn listpack(blob: &[u8]) -> Result<Vec<Vec<u8>>, Reason> {
    let mut it = ListpackIter::new(blob)?;
    let mut out = Vec::new();
    while let Some(e) = it.next_entry()? {
        out.push(e.to_vec());
    }
    Ok(out)
}

/// Walks an intset member by member: encoding u32 LE (2, 4 or 8 bytes per member), length
/// u32 LE, then the members little-endian, which must be strictly increasing (Redis
/// src/intset.c, `intsetValidateIntegrity` with deep checking).
pub struct IntsetIter<'a> {
    members: std::slice::ChunksExact<'a, u8>,
    width: usize,
    previous: Option<i64>,
}

impl<'a> IntsetIter<'a> {
    /// Check the header of `blob` against its size.
    ///
    /// # Errors
    /// The reason the header is inconsistent with the blob, or the set is empty.
    pub fn new(blob: &'a [u8]) -> Result<Self, Reason> {
        if blob.len() < 8 {
            return Err(format!("intset of {} bytes is shorter than its header", blob.len()));
        }
        let width = le_u32(&blob[0..4]) as usize;
        if !matches!(width, 2 | 4 | 8) {
            return Err(format!("intset encoding {width} is not 2, 4 or 8"));
        }
        let count = le_u32(&blob[4..8]) as usize;
        if count == 0 {
            return Err("intset is empty".into());
        }
        if count.checked_mul(width).and_then(|n| n.checked_add(8)) != Some(blob.len()) {
            return Err(format!("intset of {count} x {width}-byte members does not fill its {} bytes", blob.len()));
        }
        Ok(IntsetIter { members: blob[8..].chunks_exact(width), width, previous: None })
    }

    /// The next member, or `None` after the last.
    ///
    /// # Errors
    /// A member that is not greater than the one before it.
    pub fn next_member(&mut self) -> Result<Option<i64>, Reason> {
        let Some(c) = self.members.next() else { return Ok(None) };
        let v = match self.width {
            2 => i64::from(le_u16(c) as i16),
            4 => i64::from(le_u32(c) as i32),
            _ => le_i64(c),
        };
        if self.previous.is_some_and(|p| p >= v) {
            return Err("intset members are not strictly increasing".into());
        }
        self.previous = Some(v);
        Ok(Some(v))
    }
}

/// Decode a whole intset (see [`IntsetIter`] for the layout and checks).
///
/// # Errors
/// The reason the blob is not a valid intset.
pub fn intset(blob: &[u8]) -> Result<Vec<i64>, Reason> {
    let mut it = IntsetIter::new(blob)?;
    let mut out = Vec::new();
    while let Some(v) = it.next_member()? {
        out.push(v);
    }
    Ok(out)
}

/// Walks a zipmap (Redis 2.0 to 2.4 small hashes) pair by pair: count byte (254 = unknown),
/// then `len field len free value [free bytes]` pairs, then 0xFF. A length is one byte below
/// 254, else 0xFE and a u32 LE. At the end the map must be non-empty and its count byte must
/// agree with the pairs, as `zipmapValidateIntegrity` requires.
pub struct ZipmapIter<'a> {
    blob: &'a [u8],
    pos: usize,
    end: usize,
    seen: usize,
}

impl<'a> ZipmapIter<'a> {
    /// Check the terminator of `blob`.
    ///
    /// # Errors
    /// The reason `blob` cannot be a zipmap.
    pub fn new(blob: &'a [u8]) -> Result<Self, Reason> {
        if blob.len() < 2 {
            return Err("zipmap shorter than 2 bytes".into());
        }
        if blob[blob.len() - 1] != 0xFF {
            return Err("zipmap does not end with 0xFF".into());
        }
        Ok(ZipmapIter { blob, pos: 1, end: blob.len() - 1, seen: 0 })
    }

    /// The next field and value, or `None` after the last.
    ///
    /// # Errors
    /// The reason the blob is not a valid zipmap.
    pub fn next_pair(&mut self) -> Result<Option<PairRef<'a>>, Reason> {
        if self.pos >= self.end {
            if self.seen == 0 {
                return Err("zipmap is empty".into());
            }
            if self.blob[0] != 254 && usize::from(self.blob[0]) != self.seen {
                return Err(format!("zipmap count byte is {}, it holds {} pairs", self.blob[0], self.seen));
            }
            return Ok(None);
        }
        let mut c = Cur { data: &self.blob[..self.end], pos: self.pos };
        let len = |c: &mut Cur<'a>| -> Result<usize, Reason> {
            let b = c.u8("zipmap length")?;
            match b {
                0..=253 => Ok(b as usize),
                254 => Ok(le_u32(c.take(4, "zipmap length")?) as usize),
                _ => Err(format!("zipmap length byte 0xFF at offset {} before the end", c.pos - 1)),
            }
        };
        let flen = len(&mut c)?;
        let field = c.take(flen, "zipmap field")?;
        let vlen = len(&mut c)?;
        let free = c.u8("zipmap free byte")? as usize;
        let value = c.take(vlen, "zipmap value")?;
        c.take(free, "zipmap free space")?;
        self.pos = c.pos;
        self.seen += 1;
        Ok(Some((field, value)))
    }
}

/// Decode a whole zipmap into owned pairs (see [`ZipmapIter`] for the layout and checks).
///
/// # Errors
/// The reason the blob is not a valid zipmap.
pub fn zipmap(blob: &[u8]) -> Result<Vec<Pair>, Reason> {
    let mut it = ZipmapIter::new(blob)?;
    let mut out = Vec::new();
    while let Some((f, v)) = it.next_pair()? {
        out.push((f.to_vec(), v.to_vec()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A listpack Redis 7 would build for ["a", 1, -2, 5000]: every encoding round-trips.
    #[test]
    fn listpack_entries() {
        // header: total bytes, count 4
        let mut lp = vec![0, 0, 0, 0, 4, 0];
        lp.extend_from_slice(&[0x81, b'a', 2]); // 6-bit string "a", backlen 2
        lp.extend_from_slice(&[0x01, 1]); // 7-bit uint 1
        lp.extend_from_slice(&[0xDF, 0xFE, 2]); // 13-bit int -2
        lp.extend_from_slice(&[0xF1, 0x88, 0x13, 3]); // int16 5000
        lp.push(0xFF);
        let n = lp.len() as u32;
        lp[0..4].copy_from_slice(&n.to_le_bytes());
        let got = listpack(&lp).unwrap();
        assert_eq!(got, vec![b"a".to_vec(), b"1".to_vec(), b"-2".to_vec(), b"5000".to_vec()]);
    }

    /// A wrong element count, a bad back-length and truncation are each reported.
    #[test]
    fn listpack_corruption() {
        let mut lp = vec![0, 0, 0, 0, 2, 0, 0x01, 1, 0xFF];
        lp[0] = lp.len() as u8;
        assert!(listpack(&lp).unwrap_err().contains("counts 2"));
        let mut bad = vec![0, 0, 0, 0, 1, 0, 0x01, 9, 0xFF];
        bad[0] = bad.len() as u8;
        assert!(listpack(&bad).unwrap_err().contains("back-length"));
        let mut short = vec![0, 0, 0, 0, 1, 0, 0x85, b'a', 0xFF];
        short[0] = short.len() as u8;
        assert!(listpack(&short).is_err());
    }

    /// Integer entries come out as Redis prints them, the widest (i64::MIN, 20 bytes) included.
    #[test]
    fn integers_in_decimal() {
        for v in [0, -1, 42, i64::MAX, i64::MIN] {
            assert_eq!(int_bytes(v, &mut [0; 20]), v.to_string().as_bytes());
        }
        let lp = [17, 0, 0, 0, 1, 0, 0xF4, 0, 0, 0, 0, 0, 0, 0, 0x80, 9, 0xFF];
        let mut it = ListpackIter::new(&lp).unwrap();
        let e = it.next_entry().unwrap().unwrap();
        assert_eq!(e, PackedEntry::Int(i64::MIN));
        assert_eq!(e.to_vec(), b"-9223372036854775808");
        assert_eq!(it.next_entry().unwrap(), None);
    }

    /// Intsets must be sorted without duplicates, as Redis's deep check requires.
    #[test]
    fn intset_rules() {
        let mut is = vec![2, 0, 0, 0, 2, 0, 0, 0];
        is.extend_from_slice(&5i16.to_le_bytes());
        is.extend_from_slice(&(-3i16).to_le_bytes());
        assert!(intset(&is).is_err());
        is[8..10].copy_from_slice(&(-7i16).to_le_bytes());
        assert_eq!(intset(&is).unwrap(), vec![-7, -3]);
    }
}
