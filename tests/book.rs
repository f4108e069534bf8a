//! The book quotes real files with mdBook's `{{#include path[:anchor]}}`: every quoted file
//! must exist and every named anchor must be marked in it (`ANCHOR: name` and
//! `ANCHOR_END: name`), or mdBook would publish a silently empty listing.

use std::path::{Path, PathBuf};

fn markdown_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            markdown_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "md") {
            out.push(path);
        }
    }
}

/// Every `{{#include ...}}` in `text`: (path, optional anchor).
fn includes(text: &str) -> Vec<(String, Option<String>)> {
    text.match_indices("{{#include ")
        .filter_map(|(at, tag)| {
            let rest = &text[at + tag.len()..];
            let spec = rest[..rest.find("}}")?].trim();
            Some(match spec.split_once(':') {
                Some((path, anchor)) if !anchor.chars().all(|c| c.is_ascii_digit() || c == ':') => {
                    (path.to_string(), Some(anchor.to_string()))
                }
                Some((path, _lines)) => (path.to_string(), None),
                None => (spec.to_string(), None),
            })
        })
        .collect()
}

#[test]
fn every_include_resolves() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("book/src");
    let mut files = Vec::new();
    markdown_files(&src, &mut files);
    assert!(!files.is_empty(), "no book pages under {}", src.display());
    let mut checked = 0;
    for page in &files {
        let text = std::fs::read_to_string(page).unwrap();
        for (path, anchor) in includes(&text) {
            let target = page.parent().unwrap().join(&path);
            let quoted = std::fs::read_to_string(&target)
                .unwrap_or_else(|e| panic!("{}: cannot read included {}: {e}", page.display(), target.display()));
            if let Some(a) = anchor {
                for marker in [format!("ANCHOR: {a}"), format!("ANCHOR_END: {a}")] {
                    assert!(quoted.contains(&marker), "{}: {} has no `{marker}`", page.display(), target.display());
                }
            }
            checked += 1;
        }
    }
    assert!(checked > 0, "the book quotes no code yet");
}

#[test]
fn the_include_parser_reads_anchors_and_line_ranges() {
    let found = includes("a {{#include ../x.rs:opts}} b {{#include y.rs:3:9}} {{#include z.rs}}");
    assert_eq!(found, vec![("../x.rs".into(), Some("opts".into())), ("y.rs".into(), None), ("z.rs".into(), None)]);
}
