//! Decoders for the compact blobs Redis stores inside RDB strings: ziplist, listpack,
//! intset and zipmap. Each checks what Redis's deep integrity check checks (Redis
//! src/ziplist.c `ziplistValidateIntegrity`, src/listpack.c `lpValidateIntegrity`,
//! src/intset.c `intsetValidateIntegrity`, src/zipmap.c `zipmapValidateIntegrity`) and
//! returns a reason instead of panicking on any malformed input.
//!
//! Integer entries come back as their decimal strings, as Redis returns them to clients.

/// A reason a blob is malformed.
pub type Reason = String;

/// A field/value pair from a zipmap.
pub type Pair = (Vec<u8>, Vec<u8>);

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

fn int_entry(v: i64) -> Vec<u8> {
    v.to_string().into_bytes()
}

/// Decode a ziplist (Redis 2.6 to 6.2 small lists, hashes and sorted sets).
///
/// Layout: `zlbytes` u32 LE, `zltail` u32 LE, `zllen` u16 LE, entries, 0xFF. Each entry is
/// `prevlen` (1 byte, or 0xFE + u32 LE), an encoding header, then the data.
///
/// # Errors
/// The reason the blob is not a valid ziplist.
pub fn ziplist(blob: &[u8]) -> Result<Vec<Vec<u8>>, Reason> {
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
    let header_count = le_u16(&blob[8..10]);
    let end = blob.len() - 1;
    let mut c = Cur { data: &blob[..end], pos: HEADER };
    let mut out = Vec::new();
    let mut prev_raw = 0usize;
    let mut last_start = None;
    while c.pos < end {
        let start = c.pos;
        let first = c.u8("ziplist prevlen")?;
        let prevlen = if first < 0xFE {
            first as usize
        } else if first == 0xFE {
            le_u32(c.take(4, "ziplist prevlen")?) as usize
        } else {
            return Err(format!("ziplist entry at offset {start} starts with 0xFF before the end"));
        };
        if prevlen != prev_raw {
            return Err(format!(
                "ziplist entry at offset {start} says the previous entry is {prevlen} bytes, it is {prev_raw}"
            ));
        }
        let enc = c.u8("ziplist encoding")?;
        let value = match enc >> 6 {
            0 => c.take((enc & 0x3F) as usize, "ziplist string")?.to_vec(),
            1 => {
                let lo = c.u8("ziplist length")?;
                let len = (((enc & 0x3F) as usize) << 8) | lo as usize;
                c.take(len, "ziplist string")?.to_vec()
            }
            2 => {
                if enc != 0x80 {
                    return Err(format!("ziplist string encoding {enc:#04x} at offset {start} is invalid"));
                }
                let b = c.take(4, "ziplist length")?;
                let len = u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize;
                c.take(len, "ziplist string")?.to_vec()
            }
            _ => int_entry(match enc {
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
        out.push(value);
        prev_raw = c.pos - start;
        last_start = Some(start);
    }
    if let Some(last) = last_start
        && last != zltail
    {
        return Err(format!("ziplist tail offset {zltail} does not point at the last entry ({last})"));
    }
    if header_count != u16::MAX && usize::from(header_count) != out.len() {
        return Err(format!("ziplist header counts {header_count} entries, it holds {}", out.len()));
    }
    Ok(out)
}

/// The size of a listpack entry's back-length field for an entry of `len` bytes
/// (Redis src/listpack.c, `lpEncodeBacklen`).
fn backlen_size(len: usize) -> usize {
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

/// Decode a listpack (Redis 7 small lists, hashes, sets and sorted sets).
///
/// Layout: total bytes u32 LE, element count u16 LE (65535 = unknown), entries, 0xFF.
/// Each entry is an encoding byte with its data, then a back-length of 1 to 5 bytes.
///
/// # Errors
/// The reason the blob is not a valid listpack.
pub fn listpack(blob: &[u8]) -> Result<Vec<Vec<u8>>, Reason> {
    listpack_header(blob)?;
    let count = le_u16(&blob[4..6]);
    let end = blob.len() - 1;
    let mut c = Cur { data: &blob[..end], pos: 6 };
    let mut out = Vec::new();
    while c.pos < end {
        let start = c.pos;
        let b = c.u8("listpack encoding")?;
        let value = if b & 0x80 == 0 {
            int_entry(i64::from(b & 0x7F))
        } else if b & 0xC0 == 0x80 {
            c.take((b & 0x3F) as usize, "listpack string")?.to_vec()
        } else if b & 0xE0 == 0xC0 {
            let lo = c.u8("listpack int13")?;
            let u = (((b & 0x1F) as i64) << 8) | lo as i64;
            int_entry(if u >= 1 << 12 { u - (1 << 13) } else { u })
        } else if b & 0xF0 == 0xE0 {
            let lo = c.u8("listpack length")?;
            let len = (((b & 0x0F) as usize) << 8) | lo as usize;
            c.take(len, "listpack string")?.to_vec()
        } else {
            match b {
                0xF0 => {
                    let len = le_u32(c.take(4, "listpack length")?) as usize;
                    c.take(len, "listpack string")?.to_vec()
                }
                0xF1 => int_entry(i64::from(le_u16(c.take(2, "listpack int16")?) as i16)),
                0xF2 => {
                    let x = c.take(3, "listpack int24")?;
                    int_entry(i64::from(i32::from_le_bytes([0, x[0], x[1], x[2]]) >> 8))
                }
                0xF3 => int_entry(i64::from(le_u32(c.take(4, "listpack int32")?) as i32)),
                0xF4 => int_entry(le_i64(c.take(8, "listpack int64")?)),
                _ => return Err(format!("listpack encoding byte {b:#04x} at offset {start} is invalid")),
            }
        };
        let entry_len = c.pos - start;
        c.take(backlen_size(entry_len), "listpack back-length")?;
        if decode_backlen(blob, c.pos) != Some(entry_len) {
            return Err(format!("listpack entry at offset {start}: back-length does not match its size {entry_len}"));
        }
        out.push(value);
    }
    if count != u16::MAX && usize::from(count) != out.len() {
        return Err(format!("listpack header counts {count} elements, it holds {}", out.len()));
    }
    Ok(out)
}

/// Decode an intset: encoding u32 LE (2, 4 or 8 bytes per member), length u32 LE, then
/// the members little-endian, strictly increasing.
///
/// # Errors
/// The reason the blob is not a valid intset.
pub fn intset(blob: &[u8]) -> Result<Vec<i64>, Reason> {
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
    let members: Vec<i64> = blob[8..]
        .chunks_exact(width)
        .map(|c| match width {
            2 => i64::from(le_u16(c) as i16),
            4 => i64::from(le_u32(c) as i32),
            _ => le_i64(c),
        })
        .collect();
    if members.windows(2).any(|w| w[0] >= w[1]) {
        return Err("intset members are not strictly increasing".into());
    }
    Ok(members)
}

/// Decode a zipmap (Redis 2.0 to 2.4 small hashes): count byte (254 = unknown), then
/// `len field len free value [free bytes]` pairs, then 0xFF. A length is one byte below
/// 254, else 0xFE and a u32 LE.
///
/// # Errors
/// The reason the blob is not a valid zipmap (including a count byte that disagrees with
/// the entries, as `zipmapValidateIntegrity` requires).
pub fn zipmap(blob: &[u8]) -> Result<Vec<Pair>, Reason> {
    if blob.len() < 2 {
        return Err("zipmap shorter than 2 bytes".into());
    }
    if blob[blob.len() - 1] != 0xFF {
        return Err("zipmap does not end with 0xFF".into());
    }
    let end = blob.len() - 1;
    let mut c = Cur { data: &blob[..end], pos: 1 };
    let len = |c: &mut Cur<'_>| -> Result<usize, Reason> {
        let b = c.u8("zipmap length")?;
        match b {
            0..=253 => Ok(b as usize),
            254 => Ok(le_u32(c.take(4, "zipmap length")?) as usize),
            _ => Err(format!("zipmap length byte 0xFF at offset {} before the end", c.pos - 1)),
        }
    };
    let mut out = Vec::new();
    while c.pos < end {
        let flen = len(&mut c)?;
        let field = c.take(flen, "zipmap field")?.to_vec();
        let vlen = len(&mut c)?;
        let free = c.u8("zipmap free byte")? as usize;
        let value = c.take(vlen, "zipmap value")?.to_vec();
        c.take(free, "zipmap free space")?;
        out.push((field, value));
    }
    if out.is_empty() {
        return Err("zipmap is empty".into());
    }
    if blob[0] != 254 && usize::from(blob[0]) != out.len() {
        return Err(format!("zipmap count byte is {}, it holds {} pairs", blob[0], out.len()));
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
