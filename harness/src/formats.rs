//! `snaplab formats`: every snapshot format and compression on one keyspace, side by side.
//!
//! For each [`Codec`] (see `snaplab_formats`) it encodes the keyspace into memory,
//! decodes it back, checks the result is exactly the keyspace it started from, and encodes
//! it again with the parallel encoder to check the bytes are identical. Everything happens
//! in memory, so the times measure the codec, not the disk. An operation is repeated until
//! a second has passed (at most 5 runs) and the fastest run is reported.
//!
//! MB/s is file bytes (10^6 bytes) per second: the disk or network bandwidth the codec
//! can feed or drain. A compressed row moves fewer bytes, so it shows a lower figure for
//! the same work; compare `encode ms` to compare work.

use std::io::{self, Read};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use snaplab_core::Keyspace;
use snaplab_formats::{self as formats, Codec, FormatError, same_keyspace};

use crate::progress;

/// How to run the comparison.
#[derive(Clone, Copy, Debug)]
pub struct FormatsConfig {
    /// Worker threads of the parallel encoder's pool.
    pub threads: usize,
    /// Show progress bars (for operations over a second).
    pub progress: bool,
}

/// One codec's figures. The field names are the `--json` report's keys.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct FormatRow {
    /// Format id: `rdb`, `json`, `bincode`, `stream`.
    pub format: String,
    /// Compression: `none`, `lzf`, `gzip`.
    pub compression: String,
    /// Size of the file, bytes.
    pub file_bytes: u64,
    /// Sequential encode time, ms.
    pub encode_ms: f64,
    /// Decode time, ms.
    pub decode_ms: f64,
    /// File MB (10^6 bytes) written per second by the sequential encoder.
    pub encode_mb_s: f64,
    /// File MB read per second by the decoder.
    pub decode_mb_s: f64,
    /// The decoded keyspace is exactly the original (sorted-set score bits included).
    pub round_trip: bool,
    /// The parallel encoder wrote exactly the sequential encoder's bytes.
    pub parallel_identical: bool,
    /// Parallel encode time, ms.
    pub parallel_encode_ms: f64,
    /// `encode_ms / parallel_encode_ms`.
    pub parallel_speedup: f64,
    /// Why the round trip failed, if it did.
    pub error: Option<String>,
}

/// Run every codec on `ks`.
///
/// # Errors
/// An encoder's error (a format that cannot hold a key), or a pool that cannot start.
/// A decoder's error is not one: it is reported in the row, with `round_trip` false.
pub fn run(ks: &Keyspace, cfg: &FormatsConfig) -> Result<Vec<FormatRow>, FormatsError> {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(cfg.threads)
        .thread_name(|i| format!("encode-{i}"))
        .build()
        .map_err(|e| FormatsError::Pool(e.to_string()))?;
    let keys = ks.len() as u64;
    // Every output buffer is reserved up front, large enough for the biggest format (JSON,
    // about 1.5 x the data), so no encoder pays for copying a growing Vec: only for the
    // pages it actually writes, as a file would.
    let reserve = ks.heap_bytes() * 2 + (1 << 20);
    let mut rows = Vec::new();
    for codec in formats::codecs() {
        let id = codec.id();
        let (encode_time, file) = timed(|| {
            let counter = Arc::new(AtomicU64::new(0));
            let _bar = progress::track(&format!("{id} encode"), "keys", keys, Arc::clone(&counter), cfg.progress);
            let mut out = Vec::with_capacity(reserve);
            codec.encode(ks, &mut out, Some(&counter)).map(|_| out)
        })?;
        let (decode_time, decoded) = timed(|| {
            let counter = Arc::new(AtomicU64::new(0));
            let _bar = progress::track(
                &format!("{id} decode"),
                "bytes",
                file.len() as u64,
                Arc::clone(&counter),
                cfg.progress,
            );
            Ok::<_, FormatError>(codec.decode(Counting { inner: file.as_slice(), counter: &counter }))
        })?;
        let (round_trip, error) = match decoded {
            Ok(back) => {
                let same = same_keyspace(ks, &back);
                (same, (!same).then(|| "decoded to a different keyspace".to_string()))
            }
            Err(e) => (false, Some(e.to_string())),
        };
        let (parallel_time, parallel) = timed(|| {
            let counter = Arc::new(AtomicU64::new(0));
            let _bar = progress::track(&format!("{id} parallel"), "keys", keys, Arc::clone(&counter), cfg.progress);
            let mut out = Vec::with_capacity(reserve);
            codec.encode_parallel(ks, &mut out, &pool, Some(&counter)).map(|_| out)
        })?;
        rows.push(row(codec, &file, encode_time, decode_time, parallel_time, round_trip, parallel == file, error));
    }
    Ok(rows)
}

#[allow(clippy::too_many_arguments)] // one call site, every argument a named figure
fn row(
    codec: Codec,
    file: &[u8],
    encode: Duration,
    decode: Duration,
    parallel: Duration,
    round_trip: bool,
    parallel_identical: bool,
    error: Option<String>,
) -> FormatRow {
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let mb_s = |d: Duration| if d.is_zero() { 0.0 } else { file.len() as f64 / 1e6 / d.as_secs_f64() };
    FormatRow {
        format: codec.format.name().to_string(),
        compression: codec.compression.name().to_string(),
        file_bytes: file.len() as u64,
        encode_ms: ms(encode),
        decode_ms: ms(decode),
        encode_mb_s: mb_s(encode),
        decode_mb_s: mb_s(decode),
        round_trip,
        parallel_identical,
        parallel_encode_ms: ms(parallel),
        parallel_speedup: if parallel.is_zero() { 0.0 } else { encode.as_secs_f64() / parallel.as_secs_f64() },
        error,
    }
}

/// Why the comparison could not run.
#[derive(Debug, thiserror::Error)]
pub enum FormatsError {
    /// An encoder refused the keyspace.
    #[error(transparent)]
    Format(#[from] FormatError),
    /// The thread pool could not start.
    #[error("cannot start the encoder pool: {0}")]
    Pool(String),
}

/// Run `op` until a second has passed or it ran 5 times; the fastest run and its result.
/// The fastest run is the one least disturbed by whatever else the machine was doing.
fn timed<T, E>(mut op: impl FnMut() -> Result<T, E>) -> Result<(Duration, T), E> {
    let started = Instant::now();
    let mut best: Option<(Duration, T)> = None;
    for _ in 0..5 {
        let t = Instant::now();
        let value = op()?;
        let took = t.elapsed();
        if best.as_ref().is_none_or(|(b, _)| took < *b) {
            best = Some((took, value));
        }
        if started.elapsed() >= Duration::from_secs(1) {
            break;
        }
    }
    // The loop runs at least once and every run that returns sets `best` or keeps a better one.
    Ok(best.expect("at least one run"))
}

/// A reader that reports the bytes it hands out, for a progress bar.
pub(crate) struct Counting<'a, R> {
    inner: R,
    counter: &'a AtomicU64,
}

impl<'a, R> Counting<'a, R> {
    /// Count what `inner` hands out into `counter`.
    pub(crate) fn new(inner: R, counter: &'a AtomicU64) -> Self {
        Counting { inner, counter }
    }
}

impl<R: Read> Read for Counting<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        // Relaxed: the counter only feeds a progress bar.
        self.counter.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// The rows as a text table.
pub fn table(rows: &[FormatRow]) -> String {
    let mut out = format!(
        "{:<8} {:<11} {:>12} {:>10} {:>10} {:>11} {:>11} {:>10} {:>18} {:>11} {:>7}\n",
        "format",
        "compression",
        "file bytes",
        "encode ms",
        "decode ms",
        "encode MB/s",
        "decode MB/s",
        "round trip",
        "parallel identical",
        "parallel ms",
        "speedup"
    );
    for r in rows {
        out.push_str(&format!(
            "{:<8} {:<11} {:>12} {:>10.1} {:>10.1} {:>11.1} {:>11.1} {:>10} {:>18} {:>11.1} {:>6.2}x\n",
            r.format,
            r.compression,
            r.file_bytes,
            r.encode_ms,
            r.decode_ms,
            r.encode_mb_s,
            r.decode_mb_s,
            if r.round_trip { "ok" } else { "FAILED" },
            if r.parallel_identical { "yes" } else { "NO" },
            r.parallel_encode_ms,
            r.parallel_speedup
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataset::{self, DatasetSpec};

    /// Every codec gets a row, in order, with a round trip and identical parallel bytes on
    /// the built-in dataset, and the table prints one line per row plus the header.
    #[test]
    fn every_codec_has_a_good_row() {
        let ks = dataset::generate(&DatasetSpec { keys: 500, value_size: 16, seed: 5 });
        let rows = run(&ks, &FormatsConfig { threads: 2, progress: false }).unwrap();
        let ids: Vec<String> = formats::codecs().iter().map(Codec::id).collect();
        assert_eq!(rows.len(), ids.len());
        for r in &rows {
            assert!(r.round_trip && r.parallel_identical && r.error.is_none(), "{r:?}");
            assert!(r.file_bytes > 500 * 16 / 4, "{r:?}");
        }
        assert_eq!(table(&rows).lines().count(), rows.len() + 1);
    }

    /// `timed` keeps the fastest run and stops after five.
    #[test]
    fn timed_keeps_the_fastest() {
        let mut runs = 0;
        let (_, last) = timed(|| {
            runs += 1;
            Ok::<_, ()>(runs)
        })
        .unwrap();
        assert_eq!(runs, 5, "quick operations run five times");
        assert!((1..=5).contains(&last));
    }
}
