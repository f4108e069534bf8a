//! The book's truth, checked by `cargo test`.
//!
//! - Every `{{#include}}`, `{{#rustdoc_include}}` and `{{#playground}}` in book/src names a
//!   tracked file inside the repository that a student's export keeps, and a non-empty
//!   region between anchors marked once each (see `book/includes.rs`).
//! - Every chapter is compiled by `cargo test --doc` (listed in src/lib.rs), and its code
//!   blocks follow the rules that keep mdBook and rustdoc in agreement (`book/code_blocks.rs`).
//! - The book, built with the pinned mdBook, logs no ERROR or WARN, and every link, image
//!   and `#fragment` in its HTML resolves (`book/links.rs`).
//!
//! Each rule has a wrong-on-purpose input in the module that implements it, which shows the
//! check failing. `scripts/check-book-browser` checks the same book in a browser.

#[path = "book/code_blocks.rs"]
mod code_blocks;
#[path = "book/includes.rs"]
mod includes;
#[path = "book/links.rs"]
mod links;

use std::collections::BTreeSet;
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

/// The chapters src/lib.rs hands to rustdoc: the `"<file>.md"` literals of its `chapters!`.
fn compiled_chapters() -> BTreeSet<PathBuf> {
    let lib = read(&root().join("src/lib.rs"));
    let list = lib.split_once("chapters! {").expect("src/lib.rs has no `chapters! {` list of the book's chapters").1;
    let list = &list[..list.find('}').expect("the chapters! list is never closed")];
    list.split('"').skip(1).step_by(2).filter(|s| s.ends_with(".md")).map(PathBuf::from).collect()
}

/// Pages that are not chapters: the table of contents, and the results pages that
/// `scripts/publish-results` generates (tables and plots; they hold no Rust).
fn is_compiled_page(page: &Path) -> bool {
    page != Path::new("SUMMARY.md") && !page.starts_with("results")
}

#[test]
fn every_chapter_is_compiled_by_cargo_test_doc() {
    let listed = compiled_chapters();
    let chapters: BTreeSet<PathBuf> = pages().into_iter().filter(|p| is_compiled_page(p)).collect();
    let unlisted: Vec<_> = chapters.difference(&listed).map(|p| format!("book/src/{}", p.display())).collect();
    let stale: Vec<_> = listed.difference(&chapters).map(|p| format!("book/src/{}", p.display())).collect();
    assert!(
        unlisted.is_empty(),
        "chapters cargo test --doc does not compile (add them to `chapters!` in src/lib.rs): {unlisted:?}"
    );
    assert!(stale.is_empty(), "src/lib.rs lists chapters that are not in book/src: {stale:?}");
}

#[test]
fn code_blocks_follow_the_rules_mdbook_and_rustdoc_share() {
    let listed = compiled_chapters();
    let mut problems = Vec::new();
    for page in pages() {
        let text = read(&root().join("book/src").join(&page));
        let name = format!("book/src/{}", page.display());
        problems.extend(code_blocks::check_page(&name, &text, listed.contains(&page)));
    }
    assert_none("the book's code blocks", problems);
}

/// The mdBook version CI installs: `MDBOOK_VERSION=` in .ci/run.
fn pinned_mdbook() -> String {
    let ci = read(&root().join(".ci/run"));
    let line =
        ci.lines().find_map(|l| l.trim().strip_prefix("MDBOOK_VERSION=")).expect(".ci/run pins no MDBOOK_VERSION");
    line.trim_matches('"').to_string()
}

/// The `mdbook` to build with: `$MDBOOK`, else the one on `PATH`, else cargo's bin
/// directory; `Err` saying why if none is the pinned version.
fn mdbook() -> Result<PathBuf, String> {
    let pinned = pinned_mdbook();
    let home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")));
    let candidates = std::env::var_os("MDBOOK")
        .map(PathBuf::from)
        .into_iter()
        .chain([PathBuf::from("mdbook")])
        .chain(home.map(|h| h.join("bin/mdbook")));
    let mut seen = Vec::new();
    for candidate in candidates {
        let Ok(out) = std::process::Command::new(&candidate).arg("--version").output() else { continue };
        let version = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if version == format!("mdbook v{pinned}") {
            return Ok(candidate);
        }
        seen.push(format!("{} is {version}", candidate.display()));
    }
    Err(format!("no mdbook v{pinned} (cargo install mdbook --version {pinned} --locked); seen: {seen:?}"))
}

#[test]
fn the_built_book_logs_no_error_and_its_links_resolve() {
    const TEST: &str = "book::the_built_book_logs_no_error_and_its_links_resolve";
    let mdbook = match mdbook() {
        Ok(m) => m,
        // CI installs the pinned mdBook before the tests: there, not finding it is a failure.
        Err(why) if std::env::var_os("CI").is_some() => panic!("{why}"),
        Err(why) => return snaplab_harness::skips::skipped(TEST, &why),
    };
    let out = tempfile::tempdir().unwrap();
    let built = std::process::Command::new(&mdbook)
        .arg("build")
        .arg(root().join("book"))
        .arg("--dest-dir")
        .arg(out.path())
        .output()
        .unwrap();
    let log = format!("{}{}", String::from_utf8_lossy(&built.stdout), String::from_utf8_lossy(&built.stderr));
    assert!(built.status.success(), "mdbook build failed:\n{log}");
    // mdBook reports a broken include as an ERROR line and still exits 0. Both kinds of
    // problem are reported together, so one run shows them all.
    let mut problems: Vec<String> = log
        .lines()
        .filter(|l| l.contains("ERROR") || l.contains("WARN"))
        .map(|l| format!("mdbook build book: {}", l.trim()))
        .collect();
    problems.extend(links::check_book(out.path(), &root().join("book/src")));
    assert_none("the built book", problems);
}
