//! check-exercises can fail: on a one-crate workspace made up for the purpose, it reports
//! a stub that passes its grader, a hole with no code, and a grader that names a test that
//! does not exist. (On the real tree, `cargo xtask check-exercises` itself is the proof that
//! every grader fails on its stub.)

use std::path::Path;

use xtask::check::{self, CheckOptions, Report};
use xtask::grade::Ctx;
use xtask::manifest::Manifest;

/// Fixtures write `@@` for the marker comment, so that this file has no marker line of its
/// own for the repository's check to find.
fn marked(s: &str) -> String {
    s.replace("@@", "// EXERCISE")
}

const LIB: &str = r#"/// Twice `x`.
pub fn double(x: u32) -> u32 {
    @@ 01-double BEGIN
    x * 2
    @@ 01-double END
}

/// Push a one.
pub fn push_one(v: &mut Vec<u32>) {
    @@ 02-push BEGIN
    v.push(1);
    @@ 02-push END
}

#[cfg(test)]
mod tests {
    #[test]
    fn doubles() {
        assert_eq!(super::double(2), 4, "rule 'doubling doubles' is violated");
    }

    #[test]
    fn proves_nothing() {}
}
"#;

fn exercise(id: &str, within: &str, test: &str) -> String {
    format!(
        r#"
[[exercise]]
id = "{id}"
title = "{within}"
chapter = 1
regions = [{{ file = "mini/src/lib.rs", within = "{within}" }}]
grader = [{{ package = "mini", target = "--lib", tests = ["{test}"] }}]
expect = ["not yet implemented: exercise {id}"]
hints = ["one", "two", "three"]
"#
    )
}

/// Write the workspace under `dir` and check it.
fn check_workspace(dir: &Path, lib: &str, manifest: &str) -> Report {
    let root = dir.join("repo");
    let files = [
        ("Cargo.toml", "[workspace]\nmembers = [\"mini\"]\nresolver = \"3\"\n\n[workspace.package]\nversion = \"0.1.0\"\nedition = \"2024\"\n".to_string()),
        ("mini/Cargo.toml", "[package]\nname = \"mini\"\nversion.workspace = true\nedition.workspace = true\n".to_string()),
        ("mini/src/lib.rs", marked(lib)),
        ("exercises/exercises.toml", manifest.to_string()),
    ];
    for (path, text) in files {
        let path = root.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    let manifest = Manifest::load(&root).unwrap();
    let cargo = std::env::var_os("CARGO").map_or_else(|| "cargo".into(), std::path::PathBuf::from);
    let ctx = Ctx { root: &root, manifest: &manifest, cargo, target_dir: Some(dir.join("target")) };
    let opts = CheckOptions { only: Vec::new(), scratch: Some(dir.join("scratch")), quiet: true };
    check::check(&ctx, &opts).unwrap()
}

fn has(report: &Report, words: &str) -> bool {
    report.problems.iter().any(|p| p.contains(words))
}

/// A sound exercise passes; one whose grader does not exercise its hole is reported: its
/// stub passes its grader.
#[test]
fn a_stub_that_passes_its_grader_is_a_defect() {
    let dir = tempfile::tempdir().unwrap();
    let manifest =
        exercise("01-double", "double", "tests::doubles") + &exercise("02-push", "push_one", "tests::proves_nothing");
    let report = check_workspace(dir.path(), LIB, &manifest);
    assert_eq!(report.problems.len(), 1, "{:#?}", report.problems);
    assert!(has(&report, "02-push: its stub passes its grader"), "{:#?}", report.problems);
}

/// A hole with no code in it, and a grader naming a test that does not exist, are each
/// reported.
#[test]
fn an_empty_hole_and_a_missing_test_are_defects() {
    let dir = tempfile::tempdir().unwrap();
    let empty = LIB.replace("    v.push(1);\n", "    // nothing here\n");
    let manifest =
        exercise("01-double", "double", "tests::doubles") + &exercise("02-push", "push_one", "tests::no_such_test");
    let report = check_workspace(dir.path(), &empty, &manifest);
    assert!(has(&report, "02-push: mini/src/lib.rs:10: the hole is empty"), "{:#?}", report.problems);
    assert!(has(&report, "has no test named tests::no_such_test"), "{:#?}", report.problems);
    assert!(!has(&report, "01-double"), "the sound exercise is not blamed: {:#?}", report.problems);
}
