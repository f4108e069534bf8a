//! What xtask remembers between runs, under `target/xtask/` (never in tracked files): how
//! many hints of each exercise were shown, and the last grade of each, with the
//! fingerprint of the tree it was given for.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

fn dir(root: &Path, what: &str) -> Result<PathBuf> {
    let d = root.join("target").join("xtask").join(what);
    std::fs::create_dir_all(&d).with_context(|| format!("cannot create {}", d.display()))?;
    Ok(d)
}

/// How many hints of `id` were shown.
pub fn hints_shown(root: &Path, id: &str) -> usize {
    std::fs::read_to_string(root.join("target/xtask/hints").join(id))
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

/// Record that `n` hints of `id` were shown.
///
/// # Errors
/// When the state cannot be written.
pub fn set_hints_shown(root: &Path, id: &str, n: usize) -> Result<()> {
    let path = dir(root, "hints")?.join(id);
    std::fs::write(&path, n.to_string()).with_context(|| format!("cannot write {}", path.display()))
}

/// The last grade of `id` if it was given for the tree with `fingerprint`: `Some(true)`
/// for a pass.
pub fn cached_grade(root: &Path, id: &str, fingerprint: u64) -> Option<bool> {
    let text = std::fs::read_to_string(root.join("target/xtask/grades").join(id)).ok()?;
    let (fp, verdict) = text.trim().split_once(' ')?;
    (fp.parse::<u64>().ok()? == fingerprint).then_some(verdict == "pass")
}

/// Remember a grade of `id` for the tree with `fingerprint`.
///
/// # Errors
/// When the state cannot be written.
pub fn cache_grade(root: &Path, id: &str, fingerprint: u64, passed: bool) -> Result<()> {
    let path = dir(root, "grades")?.join(id);
    let verdict = if passed { "pass" } else { "fail" };
    std::fs::write(&path, format!("{fingerprint} {verdict}\n"))
        .with_context(|| format!("cannot write {}", path.display()))
}
