//! Tests that cannot run here say so.
//!
//! A test that needs something this machine lacks (the RDB corpus beside the repository,
//! `redis-server` on `PATH`) returns early and passes, so `cargo test` alone would count it
//! `ok`. [`skipped`] makes that visible twice: one line, `SKIPPED <test>: <why>`, written
//! where `cargo test` shows it, and a marker file per skipped test, so that a wrapper can
//! count them when the whole run is over (`.ci/run` prints the list and the count last).
//!
//! Why marker files: cargo runs each test binary as its own process, one after another,
//! and libtest has no hook at the end of a run, so no test can see the others' skips. A
//! file per skip, named after the test, survives the process and is counted once however
//! often the test ran.

use std::io::Write;
use std::path::PathBuf;

/// Where the markers go: `$SNAPLAB_SKIP_DIR` if set, else `skipped-tests/` in the build's
/// profile directory (`target/debug/skipped-tests` for a test binary at
/// `target/debug/deps/<name>`). `None` if neither can be found.
pub fn marker_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("SNAPLAB_SKIP_DIR") {
        return Some(dir.into());
    }
    let exe = std::env::current_exe().ok()?;
    Some(exe.parent()?.parent()?.join("skipped-tests"))
}

/// Report that `test` did not run, and `why`: `SKIPPED <test>: <why>` on stderr, and a
/// marker file named after the test (characters other than letters, digits, `_`, `-`, `.`
/// and `:` replaced by `_`) holding the reason, in [`marker_dir`]. Never fails: a marker
/// that cannot be written only loses the count.
pub fn skipped(test: &str, why: &str) {
    // Straight to the stderr handle, not eprintln!: libtest captures what the print macros
    // write from a passing test and never shows it, which is how skips went unseen.
    let _ = std::io::stderr().write_all(format!("SKIPPED {test}: {why}\n").as_bytes());
    let Some(dir) = marker_dir() else { return };
    let name: String = test
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':') { c } else { '_' })
        .collect();
    let _ = std::fs::create_dir_all(&dir).and_then(|()| std::fs::write(dir.join(name), format!("{why}\n")));
}
