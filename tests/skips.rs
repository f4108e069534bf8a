//! A test that cannot run here (no RDB corpus beside the repository, no `redis-server` on
//! `PATH`) passes, so `cargo test` alone would report it `ok`. Each one says so instead, on a
//! line `cargo test` shows, and leaves a marker that `.ci/run` counts at the end of the run.

mod support;

use std::process::Command;

/// Run in a child process by `a_skipped_test_says_so_past_the_capture`, with a corpus path
/// that does not exist: it skips.
#[test]
#[ignore = "run by a_skipped_test_says_so_past_the_capture, with a corpus path that does not exist"]
fn skipping_child() {
    assert!(support::corpus_dir("skipping_child").is_none(), "the corpus path given to this child exists");
}

/// A test skipped for want of the corpus prints `SKIPPED <test>: <why>` past libtest's output
/// capture (which hides `eprintln!` of a passing test) and leaves a marker file for the count.
#[test]
fn a_skipped_test_says_so_past_the_capture() {
    let scratch = tempfile::tempdir().unwrap();
    let markers = scratch.path().join("skipped");
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--ignored", "--exact", "skipping_child"])
        .env("SNAPLAB_CORPUS", scratch.path().join("no-corpus-here"))
        .env("SNAPLAB_SKIP_DIR", &markers)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "the child failed:\n{stderr}");
    assert!(
        stderr.lines().any(|l| l.starts_with("SKIPPED skipping_child: ") && l.contains("no-corpus-here")),
        "no SKIPPED line in what cargo test shows:\n{stderr}"
    );
    let marker = std::fs::read_to_string(markers.join("skipping_child"))
        .unwrap_or_else(|e| panic!("no marker for the skipped test in {}: {e}", markers.display()));
    assert!(marker.contains("no-corpus-here"), "the marker says why: {marker}");
}
