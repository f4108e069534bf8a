//! The book's truth, checked by `cargo test`.
//!
//! - Every `{{#include}}`, `{{#rustdoc_include}}` and `{{#playground}}` in book/src names a
//!   tracked file inside the repository that a student's export keeps, and a non-empty
//!   region between anchors marked once each (see `book/includes.rs`).
//!
//! Each rule has a wrong-on-purpose input in the module that implements it, which shows the
//! check failing.

#[path = "book/includes.rs"]
mod includes;

use std::path::{Path, PathBuf};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The book's Markdown pages, relative to book/src, sorted.
fn pages() -> Vec<PathBuf> {
    let src = root().join("book/src");
    let mut out = Vec::new();
    let mut dirs = vec![src.clone()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "md") {
                out.push(path.strip_prefix(&src).unwrap().to_path_buf());
            }
        }
    }
    out.sort();
    assert!(!out.is_empty(), "no book pages under {}", src.display());
    out
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Fail with every problem, one a line.
fn assert_none(what: &str, problems: Vec<String>) {
    assert!(problems.is_empty(), "{what}:\n  {}", problems.join("\n  "));
}

#[test]
fn every_include_resolves_to_a_non_empty_region_a_student_has() {
    let repo = includes::Repo::open(root());
    let mut problems = Vec::new();
    let mut count = 0;
    for page in pages() {
        let path = root().join("book/src").join(&page);
        let text = read(&path);
        count += includes::find(&text).len();
        problems.extend(includes::check_page(&repo, &repo.root.join("book/src").join(&page), &text));
    }
    assert_none("the book's includes", problems);
    assert!(count > 0, "the book quotes no code, so this test checks nothing");
}
