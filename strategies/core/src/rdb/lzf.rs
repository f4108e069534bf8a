//! LZF, the compression Redis applies to strings over 20 bytes (`rdbcompression yes`).
//!
//! A small safe wrapper over `lzf-sys`, which compiles liblzf 3.6 from C. Built with the
//! `CFLAGS` in `.cargo/config.toml` (`MULTIPLICATION_IS_SLOW=1`, `INIT_HTAB=0`,
//! `LZF_USE_OFFSETS=0`, the values in Redis src/lzfP.h), its compressor picks the same
//! matches as the copy Redis links, so our compressed strings are Redis's bytes. About
//! 170 ns per 100-byte value on the reference machine.
//!
//! Why not the alternatives: the `lzf` 1.0 crate panics inside `compress` on some
//! incompressible inputs (an index out of bounds), and pure-Rust encoders use liblzf's
//! default multiplicative hash, which Redis does not. `lzf-rust` serves as the
//! independent decoder in tests.
//!
//! `INIT_HTAB=0` leaves liblzf's hash table (on the stack) uninitialised, as in Redis. A
//! stale slot only becomes a match if it points inside the input being compressed at bytes
//! that really match, so the output always decodes correctly. It is reproducible in
//! practice (the tests compare parallel and sequential encodings byte for byte), but not
//! guaranteed: a leftover stack word that happens to point into the current input could
//! change which match is found. Canonical-mode byte identity rests on that practice.

#![allow(unsafe_code)] // The one FFI boundary of this crate; each call states its contract.

use std::os::raw::{c_uint, c_void};

/// Compress `input` into `out` (cleared first), succeeding only if the result fits in
/// `max_out` bytes. Returns `false` when it does not fit (incompressible input) or when an
/// argument exceeds liblzf's 32-bit lengths.
pub fn compress(input: &[u8], max_out: usize, out: &mut Vec<u8>) -> bool {
    out.clear();
    if input.is_empty() || max_out == 0 {
        return false;
    }
    let (Ok(in_len), Ok(out_len)) = (c_uint::try_from(input.len()), c_uint::try_from(max_out)) else {
        return false;
    };
    out.resize(max_out, 0);
    // SAFETY: `input` is valid for `in_len` bytes of reads and `out` for `out_len` bytes of
    // writes (it was just resized to `max_out`); liblzf writes at most `out_len` bytes,
    // never reads past `in_len`, keeps no pointer after returning, and is reentrant (its
    // hash table lives on the caller's stack).
    let n = unsafe {
        lzf_sys::lzf_compress(input.as_ptr().cast::<c_void>(), in_len, out.as_mut_ptr().cast::<c_void>(), out_len)
    };
    out.truncate(n as usize);
    n != 0
}

/// Decompress `input`, which must expand to exactly `expected_len` bytes.
///
/// # Errors
/// A message when the data is not valid LZF, expands to a different length, or a length
/// exceeds liblzf's 32-bit limit.
pub fn decompress(input: &[u8], expected_len: usize) -> Result<Vec<u8>, String> {
    if expected_len == 0 {
        return Err("LZF string with a plain length of 0".into());
    }
    // liblzf's decoder reads its first control byte before checking the input length (a
    // do-while loop in lzf_d.c), so it must never be handed an empty input: that read would
    // land on the dangling pointer of an empty slice.
    if input.is_empty() {
        return Err("LZF string with no compressed bytes".into());
    }
    let (Ok(in_len), Ok(out_len)) = (c_uint::try_from(input.len()), c_uint::try_from(expected_len)) else {
        return Err("LZF lengths exceed 32 bits".into());
    };
    let mut out = vec![0u8; expected_len];
    // SAFETY: `input` is readable for `in_len` bytes and `out` writable for `out_len`
    // bytes. liblzf is built with CHECK_INPUT=1 (its default), so on corrupt input it
    // bounds-checks every literal run and back reference against both buffers and returns
    // 0 instead of reading or writing outside them.
    let n = unsafe {
        lzf_sys::lzf_decompress(input.as_ptr().cast::<c_void>(), in_len, out.as_mut_ptr().cast::<c_void>(), out_len)
    };
    if n as usize != expected_len {
        return Err(format!("LZF data expands to {n} bytes, the header says {expected_len}"));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Byte-for-byte what Redis 7.0.15 wrote for `str:21` (21 x 'a') and `str:lzf`
    /// (100 x 'a') in the corpus file redis-7.0.15-generated/all_types_v10.rdb.
    #[test]
    fn matches_redis_bytes() {
        let mut out = Vec::new();
        assert!(compress(&[b'a'; 21], 21 - 4, &mut out));
        assert_eq!(out, [0x01, b'a', b'a', 0xe0, 0x0a, 0x00]);
        assert!(compress(&[b'a'; 100], 100 - 4, &mut out));
        assert_eq!(out, [0x01, b'a', b'a', 0xe0, 0x57, 0x00, 0x01, b'a', b'a']);
    }

    /// Incompressible input that would not save 4 bytes is refused, as Redis requires.
    #[test]
    fn incompressible_is_refused() {
        let input: Vec<u8> = (0..64u8).map(|i| i.wrapping_mul(97) ^ 0x5a).collect();
        let mut out = Vec::new();
        assert!(!compress(&input, input.len() - 4, &mut out));
    }

    /// Empty compressed input is an error, not a read before the input (liblzf's decoder
    /// reads one control byte unconditionally; this once crashed the garbage test below).
    #[test]
    fn empty_input_is_refused() {
        assert!(decompress(&[], 5).is_err());
        assert!(decompress(&Vec::new(), 1).is_err());
    }

    proptest! {
        /// Whatever compresses decompresses, with our decoder and with lzf-rust's.
        #[test]
        fn roundtrip(data in proptest::collection::vec(any::<u8>(), 1..2000), repeat in 1usize..4) {
            let input: Vec<u8> = data.iter().cycle().take(data.len() * repeat).copied().collect();
            let mut out = Vec::new();
            if compress(&input, input.len() + 64, &mut out) {
                prop_assert_eq!(decompress(&out, input.len()).unwrap(), input.clone());
                let mut theirs = vec![0; input.len()];
                prop_assert_eq!(lzf_rust::decompress(&out, &mut theirs).unwrap(), input.len());
                prop_assert_eq!(theirs, input);
            }
        }

        /// Arbitrary bytes never make the decompressor misbehave: a result or an error.
        #[test]
        fn garbage_is_an_error_not_a_crash(data in proptest::collection::vec(any::<u8>(), 0..300), len in 1usize..5000) {
            if let Ok(out) = decompress(&data, len) {
                prop_assert_eq!(out.len(), len);
            }
        }
    }
}
