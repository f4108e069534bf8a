//! The atomic file writer alone under every disk failure the fault injector knows: an I/O
//! error or a full disk at bytes across the file, short writes, a failing fsync, rename or
//! directory fsync. After each one the destination is the previous file or the complete new
//! one, never a mix, and no temporary file is left. (The conformance suite sweeps the same
//! faults through each strategy's saves; this sweep needs no strategy, so the atomic file
//! can be graded before any strategy is written.)

use std::io::Write;
use std::sync::Arc;

use snaplab_core::{AtomicFile, SaveError};
use snaplab_harness::conformance::temp_files;
use snaplab_harness::faults::{Fault, FaultyIo};

/// The rule, in the words the conformance suite uses for it.
const RULE: &str =
    "a failed save leaves the previous snapshot and no temp file; a save that succeeds leaves the new one";

fn violated(fault: Fault, what: impl std::fmt::Display) -> ! {
    panic!("rule '{RULE}' is violated: with {fault:?}: {what}")
}

/// Every fault, at every interesting byte of a 10,000-byte file, leaves the destination
/// whole and no temporary file behind; the save reports failure exactly when it failed.
#[test]
fn every_fault_leaves_a_whole_file() {
    const LEN: u64 = 10_000;
    let new: Vec<u8> = (0..LEN).map(|i| (i % 251) as u8).collect();
    let mut faults = vec![Fault::ShortWrites, Fault::Fsync, Fault::Rename, Fault::DirFsync];
    for k in [0, 1, 4095, 4096, LEN / 2, LEN - 1] {
        faults.extend([Fault::IoErrorAt(k), Fault::NoSpaceAt(k)]);
    }
    for fault in faults {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("dump.rdb");
        std::fs::write(&dest, b"the previous snapshot").unwrap();
        let outcome: Result<(), SaveError> = (|| {
            let mut file = AtomicFile::create_with(&dest, Arc::new(FaultyIo::new(fault)))?;
            // Written in pieces, as an encoder writes.
            for chunk in new.chunks(1000) {
                file.write_all(chunk).map_err(|e| SaveError::io("write", &dest, e))?;
            }
            file.commit()
        })();
        match (&outcome, fault.fails_the_save()) {
            (Ok(()), true) => violated(fault, "the save reported success"),
            (Err(e), false) => violated(fault, format!("the save failed: {e}")),
            _ => {}
        }
        let now = std::fs::read(&dest).unwrap_or_else(|e| violated(fault, format!("the destination is gone: {e}")));
        let expected: &[u8] =
            if fault.fails_the_save() && !fault.after_rename() { b"the previous snapshot" } else { &new };
        if now != expected {
            violated(
                fault,
                format!(
                    "the destination holds {} bytes, not the {} bytes of the expected file",
                    now.len(),
                    expected.len()
                ),
            );
        }
        let left = temp_files(dir.path()).unwrap();
        if !left.is_empty() {
            violated(fault, format!("temp files left behind: {left:?}"));
        }
    }
}

/// A commit goes through fsync before the rename: a disk that fails the fsync fails the
/// save with the stage named, and the previous file stays.
#[test]
fn a_failed_fsync_names_its_stage() {
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("dump.rdb");
    std::fs::write(&dest, b"old").unwrap();
    let mut file = AtomicFile::create_with(&dest, Arc::new(FaultyIo::new(Fault::Fsync))).unwrap();
    file.write_all(b"new").unwrap();
    match file.commit() {
        Err(SaveError::Io { stage: "fsync", .. }) => {}
        other => violated(Fault::Fsync, format!("commit returned {other:?}, not an I/O error at stage \"fsync\"")),
    }
    assert_eq!(std::fs::read(&dest).unwrap(), b"old");
    assert!(temp_files(dir.path()).unwrap().is_empty());
}
