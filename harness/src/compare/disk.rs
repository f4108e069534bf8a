//! How much disk a comparison needs, checked before it starts.
//!
//! Each row writes a dump about the size of the one it started from: a strategy's into the
//! run's directory (kept with `--out-dir`, else removed as soon as its row is done), and
//! the Redis row's redis-server holds its own copy of the dump in its temporary directory
//! plus the dump its BGSAVE writes beside it (a temporary file renamed over the copy at
//! the end, Redis `src/rdb.c`, `rdbSave`), so two at once. Dumps written after writes
//! were applied can be a little larger than the dump they started from: [`MARGIN_PERCENT`].

use std::path::{Path, PathBuf};

use anyhow::{Result, bail};

/// Room left for dumps that grew through the run's writes, percent of what it needs.
pub const MARGIN_PERCENT: u64 = 10;
/// Room left besides, bytes (logs, sockets, the filesystem's own rounding).
pub const SLACK_BYTES: u64 = 16 << 20;

/// What one directory must hold at most at once, and why.
#[derive(Clone, Debug, PartialEq)]
pub struct Need {
    /// The directory (or the nearest existing ancestor's filesystem) that holds it.
    pub dir: PathBuf,
    /// Bytes, the margin included.
    pub bytes: u64,
    /// What the bytes are, in words.
    pub what: String,
}

/// A filesystem's free space for an unprivileged writer, and its identity (two paths with
/// the same id share their free space).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Free {
    /// Bytes available (`f_bavail * f_frsize`).
    pub bytes: u64,
    /// `f_fsid`.
    pub fs_id: u64,
}

/// The free space of the filesystem holding `dir` (or its nearest existing ancestor).
///
/// # Errors
/// When no ancestor of `dir` can be examined.
// The casts are no-ops on 64-bit Linux; the field types are 32 bits on other targets.
#[allow(clippy::unnecessary_cast)]
pub fn free_space(dir: &Path) -> Result<Free> {
    let mut at = dir;
    loop {
        match nix::sys::statvfs::statvfs(at) {
            Ok(s) => {
                return Ok(Free {
                    bytes: s.blocks_available() as u64 * s.fragment_size() as u64,
                    fs_id: s.filesystem_id() as u64,
                });
            }
            Err(e) => match at.parent() {
                Some(p) if !p.as_os_str().is_empty() => at = p,
                _ => bail!("cannot read the free space of {}: {e}", dir.display()),
            },
        }
    }
}

/// What a run needs: `dump_bytes` per dump, `strategies` rows in `run_dir` (all kept when
/// `keep`, one at a time otherwise), and with `redis`, two dumps in `temp_dir`.
pub fn needs(
    dump_bytes: u64,
    strategies: usize,
    redis: bool,
    keep: bool,
    run_dir: &Path,
    temp_dir: &Path,
) -> Vec<Need> {
    let with_margin = |n: u64| dump_bytes.saturating_mul(n) / 100 * (100 + MARGIN_PERCENT) + SLACK_BYTES;
    let mut out = Vec::new();
    if strategies > 0 || (keep && redis) {
        let (n, what) = if keep {
            let n = strategies + usize::from(redis);
            (n as u64, format!("{n} dump(s) kept, one per row"))
        } else {
            (1, "each row's dump, removed after its row".to_string())
        };
        out.push(Need { dir: run_dir.to_path_buf(), bytes: with_margin(n), what });
    }
    if redis {
        out.push(Need {
            dir: temp_dir.to_path_buf(),
            bytes: with_margin(2),
            what: "redis-server's copy of the dump and the dump its BGSAVE writes".into(),
        });
    }
    out
}

/// Refuse, with what is needed where, when a filesystem cannot hold what the run puts on
/// it (needs on one filesystem add up); otherwise describe the plan in one line.
///
/// # Errors
/// Not enough room, or free space that cannot be read.
pub fn check(needs: &[Need], free: impl Fn(&Path) -> Result<Free>) -> Result<String> {
    let mut by_fs: Vec<(Free, Vec<&Need>)> = Vec::new();
    for need in needs {
        let f = free(&need.dir)?;
        match by_fs.iter_mut().find(|(g, _)| g.fs_id == f.fs_id) {
            Some((_, list)) => list.push(need),
            None => by_fs.push((f, vec![need])),
        }
    }
    let mut plan = Vec::new();
    for (f, list) in &by_fs {
        let total: u64 = list.iter().map(|n| n.bytes).sum();
        let parts = list.iter().map(|n| format!("{} in {}", n.what, n.dir.display())).collect::<Vec<_>>().join("; ");
        if total > f.bytes {
            bail!(
                "not enough disk: this run needs about {} ({parts}) but that filesystem has {} free; free some \
                 space, or point TMPDIR or --out-dir at a larger filesystem",
                mib(total),
                mib(f.bytes)
            );
        }
        plan.push(format!("about {} ({parts}) of {} free", mib(total), mib(f.bytes)));
    }
    Ok(if plan.is_empty() { "disk: nothing to write".into() } else { format!("disk: needs {}", plan.join("; ")) })
}

fn mib(bytes: u64) -> String {
    format!("{:.0} MiB", bytes as f64 / (1024.0 * 1024.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    /// Without --out-dir: one row's dump at a time in the run's directory, and Redis's two
    /// in the temporary directory; with it, every row's dump (Redis's copied in too).
    #[test]
    fn what_a_run_needs() {
        let (run, tmp) = (Path::new("/run"), Path::new("/tmp"));
        let n = needs(100 * MIB, 5, true, false, run, tmp);
        assert_eq!(n.len(), 2);
        assert_eq!(n[0].bytes, 110 * MIB + SLACK_BYTES);
        assert_eq!(n[1].bytes, 220 * MIB + SLACK_BYTES);
        let kept = needs(100 * MIB, 5, true, true, run, tmp);
        assert_eq!(kept[0].bytes, 660 * MIB + SLACK_BYTES);
        assert!(needs(100 * MIB, 0, false, false, run, tmp).is_empty());
    }

    /// Two needs on one filesystem add up: each fits alone in 300 MiB, both do not, and
    /// the refusal says how much is needed, where, and how much is free.
    #[test]
    fn needs_on_one_filesystem_add_up() {
        let n = needs(100 * MIB, 5, true, false, Path::new("/run"), Path::new("/tmp"));
        let one_fs = |_: &Path| Ok(Free { bytes: 300 * MIB, fs_id: 7 });
        let err = check(&n, one_fs).unwrap_err().to_string();
        assert!(err.starts_with("not enough disk: this run needs about 362 MiB"), "{err}");
        assert!(err.contains("in /tmp") && err.contains("300 MiB free") && err.contains("TMPDIR"), "{err}");
        let two_fs = |p: &Path| Ok(Free { bytes: 300 * MIB, fs_id: if p == Path::new("/tmp") { 1 } else { 2 } });
        let plan = check(&n, two_fs).unwrap();
        assert!(plan.starts_with("disk: needs about 126 MiB"), "{plan}");
    }

    /// The free space of a real directory is read, through a path not yet created too.
    #[test]
    fn free_space_of_a_directory_not_yet_made() {
        let dir = tempfile::tempdir().unwrap();
        let here = free_space(dir.path()).unwrap();
        let below = free_space(&dir.path().join("not/yet")).unwrap();
        assert_eq!(here.fs_id, below.fs_id);
        assert!(here.bytes > 0);
    }
}
