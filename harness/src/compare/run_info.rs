//! What produced a comparison row: the run's settings and the machine it ran on, carried
//! in every JSON row (`run`) so a row read alone says where its figures come from.

use std::io::Read;
use std::path::Path;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The settings of one `snaplab compare` run and where it ran.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RunInfo {
    /// The dump every row started from: the `--input` path as given, or the built-in
    /// dataset's description.
    pub input: String,
    /// SHA-256 of that dump's bytes, hex.
    pub input_sha256: String,
    /// Target writes per second, all writers together (`--rate`).
    pub rate_per_s: f64,
    /// Writer threads (`--writers`).
    pub writers: usize,
    /// Which keys writers update (`--keys-dist`: `uniform`, `zipf:0.99`, ...).
    pub keys_dist: String,
    /// The write mix (`--mix`), as weights.
    pub mix: String,
    /// The size of every value writers store, bytes; `null` when sizes are drawn from the
    /// dump's own strings (then `value_sizes` says how).
    pub value_size_bytes: Option<usize>,
    /// The values writers store, in words (`100 bytes each`, or the distribution sampled).
    pub value_sizes: String,
    /// The baseline window before BGSAVE (`--baseline-ms`), ms.
    pub baseline_ms: u64,
    /// How many times every row was run (`--repeat`); above 1, a row's figures are the
    /// medians of its runs ([`super::repeat`]).
    #[serde(default = "one")]
    pub repeat: usize,
    /// The git commit snaplab was built from (`unknown` outside a checkout).
    pub snaplab_commit: String,
    /// Cores available to the run (`std::thread::available_parallelism`).
    pub cores: usize,
    /// The CPU's model name (`/proc/cpuinfo`).
    pub cpu: String,
    /// The kernel: `/proc/sys/kernel/ostype` and `osrelease` (what `uname -sr` prints).
    pub kernel: String,
}

fn one() -> usize {
    1
}

/// The commit snaplab was built from (recorded by the harness's build script).
pub const SNAPLAB_COMMIT: &str = env!("SNAPLAB_COMMIT");

/// SHA-256 of a file's bytes, hex, read in 1 MiB blocks.
///
/// # Errors
/// When the file cannot be read.
pub fn sha256_file(path: &Path) -> std::io::Result<String> {
    let mut f = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

/// Cores available to this process.
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// The CPU's model name from `/proc/cpuinfo` (`model name`, or `Model`/`Hardware` on ARM
/// boards), `unknown` when there is none.
pub fn cpu_model() -> String {
    let text = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    ["model name", "Model", "Hardware"]
        .iter()
        .find_map(|field| {
            text.lines().find_map(|l| {
                let (k, v) = l.split_once(':')?;
                (k.trim() == *field).then(|| v.trim().to_string())
            })
        })
        .unwrap_or_else(|| "unknown".into())
}

/// The kernel's name and release, as `uname -sr` prints them (`Linux 6.8.0-45-generic`).
pub fn kernel() -> String {
    let read = |f: &str| std::fs::read_to_string(format!("/proc/sys/kernel/{f}")).map(|s| s.trim().to_string());
    match (read("ostype"), read("osrelease")) {
        (Ok(os), Ok(release)) => format!("{os} {release}"),
        _ => std::env::consts::OS.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The digest is SHA-256's (FIPS 180-4 test vector "abc"), over files larger than one
    /// read block too.
    #[test]
    fn sha256_of_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let small = dir.path().join("abc");
        std::fs::write(&small, b"abc").unwrap();
        assert_eq!(sha256_file(&small).unwrap(), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        let big = dir.path().join("big");
        let bytes: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(&big, &bytes).unwrap();
        let want: String = Sha256::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(sha256_file(&big).unwrap(), want);
    }

    /// The machine's description is never empty.
    #[test]
    fn the_machine_is_described() {
        assert!(cores() >= 1);
        assert!(!cpu_model().is_empty() && !kernel().is_empty());
        assert!(!SNAPLAB_COMMIT.is_empty());
    }
}
