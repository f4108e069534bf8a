//! The code blocks of the book's chapters, and which of them `cargo test --doc` compiles.
//!
//! The facade (`src/lib.rs`) hands every chapter to rustdoc as the documentation of an item
//! that exists only under `cfg(doctest)`, so each Rust block in a chapter is a doctest of the
//! `snaplab` crate. mdBook and rustdoc read a block's info string differently, so the rules
//! here keep the two in agreement:
//!
//! - every fenced block names its language (```` ```text ````, ```` ```sh ````,
//!   ```` ```rust ````): rustdoc compiles a block with no language as Rust, while mdBook
//!   shows it as plain text;
//! - a Rust block that holds an `{{#include}}` or `{{#rustdoc_include}}` is marked `ignore`:
//!   rustdoc does not expand mdBook's directives and would compile the directive itself (the
//!   included code is compiled where it lives);
//! - any other Rust block marked `ignore` says why on the line above its fence, as an HTML
//!   comment the reader does not see: `<!-- ignore: needs a running redis-server -->`;
//! - a page that is not compiled (the generated results pages) holds no Rust block that
//!   would need compiling.

/// One fenced code block.
#[derive(Debug, PartialEq, Eq)]
pub struct Block {
    /// 1-based line of its opening fence.
    pub line: usize,
    /// The info string after the fence, trimmed (`rust,ignore`).
    pub info: String,
    /// The line just above the fence, trimmed.
    pub above: String,
    /// Its lines, fences excluded.
    pub body: String,
}

/// The fenced code blocks of a Markdown page: a line of three or more backticks or tildes
/// (indented any amount, as in a list item) opens a block, a line of at least as many of the
/// same character and nothing else closes it. An unclosed block runs to the end of the page.
pub fn blocks(text: &str) -> Vec<Block> {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let trimmed = lines[i].trim_start();
        let Some(fence) = fence_of(trimmed) else {
            i += 1;
            continue;
        };
        let info = trimmed[fence.len()..].trim().to_string();
        // A backtick fence's info string may not hold a backtick (that is inline code).
        if fence.starts_with('`') && info.contains('`') {
            i += 1;
            continue;
        }
        let above = if i > 0 { lines[i - 1].trim().to_string() } else { String::new() };
        let mut body = Vec::new();
        let mut j = i + 1;
        while j < lines.len() {
            let t = lines[j].trim();
            // A closing fence: the same character, at least as many, and nothing after.
            if fence_of(t).is_some_and(|f| f.as_bytes()[0] == fence.as_bytes()[0] && f.len() >= fence.len() && f == t) {
                break;
            }
            body.push(lines[j]);
            j += 1;
        }
        out.push(Block { line: i + 1, info, above, body: body.join("\n") });
        i = j + 1;
    }
    out
}

/// The fence (three or more backticks or tildes) `line` starts with.
fn fence_of(line: &str) -> Option<&str> {
    let c = line.chars().next().filter(|c| *c == '`' || *c == '~')?;
    let len = line.find(|x| x != c).unwrap_or(line.len());
    (len >= 3).then(|| &line[..len])
}

/// The words of an info string: rustdoc splits on commas and whitespace.
fn words(info: &str) -> impl Iterator<Item = &str> {
    info.split(|c: char| c == ',' || c.is_whitespace()).filter(|w| !w.is_empty())
}

/// Whether rustdoc takes a block with this info string for Rust: it says `rust`, or every
/// word is one of rustdoc's own attributes (an empty info string included). A word rustdoc
/// does not know (`text`, `sh`, `toml`, mdBook's `editable`) makes it something else.
pub fn is_rust(info: &str) -> bool {
    words(info).any(|w| w == "rust") || words(info).all(is_rustdoc_attribute)
}

fn is_rustdoc_attribute(word: &str) -> bool {
    matches!(word, "ignore" | "should_panic" | "no_run" | "compile_fail" | "test_harness" | "standalone_crate")
        || word.starts_with("ignore-")
        || word.starts_with("edition")
        || (word.starts_with('{') && word.ends_with('}'))
        || (word.len() == 5 && word.starts_with('E') && word[1..].chars().all(|c| c.is_ascii_digit()))
}

/// Whether rustdoc skips the block (`ignore`, or `ignore-<target>` on some target).
pub fn is_ignored(info: &str) -> bool {
    words(info).any(|w| w == "ignore" || w.starts_with("ignore-"))
}

/// Whether the block holds one of mdBook's directives that read a file.
fn holds_include(body: &str) -> bool {
    !super::includes::find(body).is_empty()
}

/// The reason an `ignore` block gives on the line above its fence, if any.
fn ignore_reason(above: &str) -> Option<&str> {
    let reason = above.strip_prefix("<!--")?.strip_suffix("-->")?.trim().strip_prefix("ignore:")?.trim();
    (!reason.is_empty()).then_some(reason)
}

/// Check the code blocks of `page` (shown as `name` in messages); `compiled` says whether
/// `cargo test --doc` compiles the page. One message per problem.
pub fn check_page(name: &str, text: &str, compiled: bool) -> Vec<String> {
    let mut problems = Vec::new();
    for block in blocks(text) {
        let mut fail = |why: &str| problems.push(format!("{name}:{}: ```{}: {why}", block.line, block.info));
        if block.info.is_empty() {
            fail(
                "the block names no language: rustdoc would compile it as Rust and mdBook shows it as plain text; \
                 write ```text, ```sh, ```toml or ```rust",
            );
            continue;
        }
        if !is_rust(&block.info) {
            continue;
        }
        let include = holds_include(&block.body);
        if is_ignored(&block.info) {
            if !include && ignore_reason(&block.above).is_none() {
                fail(
                    "an ignored Rust block says why on the line above its fence, e.g. \
                     `<!-- ignore: needs a running redis-server -->`, or it is compiled",
                );
            }
        } else if include {
            fail(
                "holds an mdBook include, which rustdoc does not expand: mark it ```rust,ignore (the included code \
                 is compiled where it lives)",
            );
        } else if !compiled {
            fail("this page is not compiled by `cargo test --doc`; list it in src/lib.rs or mark the block ignore");
        }
    }
    problems
}

#[cfg(test)]
mod wrong_on_purpose {
    use super::*;

    fn assert_one(problems: &[String], expected: &str) {
        assert_eq!(problems.len(), 1, "expected one problem containing {expected:?}, got {problems:#?}");
        assert!(problems[0].contains(expected), "expected {expected:?} in {:?}", problems[0]);
        assert!(problems[0].starts_with("ch.md:"), "the message names the page: {:?}", problems[0]);
    }

    const GOOD: &str = "# T\n\n```rust\nlet x = 1;\n```\n\n```rust,ignore\n{{#include ../../src/lib.rs:a}}\n```\n\n\
                        <!-- ignore: needs a running redis-server -->\n```rust,ignore\nconnect();\n```\n\n\
                        ```text\nplain\n```\n\n- a list\n\n  ```sh\n  cargo test\n  ```\n\n~~~toml\n[x]\n~~~\n";

    #[test]
    fn a_good_page_passes() {
        assert_eq!(check_page("ch.md", GOOD, true), Vec::<String>::new());
    }

    #[test]
    fn the_block_reader_finds_fences_and_info_strings() {
        let found: Vec<(usize, String)> = blocks(GOOD).into_iter().map(|b| (b.line, b.info)).collect();
        let expected = [(3, "rust"), (7, "rust,ignore"), (12, "rust,ignore"), (16, "text"), (22, "sh"), (26, "toml")];
        assert_eq!(found, expected.map(|(l, i)| (l, i.to_string())).to_vec());
        let nested = blocks("````md\n```rust\nx\n```\n````\n");
        assert_eq!(nested.len(), 1, "a longer fence holds a shorter one: {nested:?}");
    }

    #[test]
    fn a_block_without_a_language_fails() {
        assert_one(&check_page("ch.md", &format!("{GOOD}```\nlet x = 1;\n```\n"), true), "names no language");
    }

    #[test]
    fn an_include_in_a_compiled_rust_block_fails() {
        let page = format!("{GOOD}```rust\n{{{{#include ../../src/lib.rs:a}}}}\n```\n");
        assert_one(&check_page("ch.md", &page, true), "rustdoc does not expand");
        let page = format!("{GOOD}```rust,no_run\n{{{{#rustdoc_include ../../src/lib.rs:a}}}}\n```\n");
        assert_one(&check_page("ch.md", &page, true), "rustdoc does not expand");
    }

    #[test]
    fn an_ignored_block_without_a_reason_fails() {
        assert_one(&check_page("ch.md", &format!("{GOOD}\n```rust,ignore\nlet x = y;\n```\n"), true), "says why");
        assert_one(&check_page("ch.md", &format!("{GOOD}<!-- ignore: -->\n```ignore\nx\n```\n"), true), "says why");
    }

    #[test]
    fn a_rust_block_on_a_page_that_is_not_compiled_fails() {
        assert_one(&check_page("ch.md", GOOD, false), "not compiled by `cargo test --doc`");
    }

    #[test]
    fn rustdoc_reads_info_strings_this_way() {
        for rust in [
            "",
            "rust",
            "rust,ignore",
            "ignore",
            "no_run",
            "should_panic",
            "edition2024",
            "rust,editable",
            "compile_fail,E0382",
        ] {
            assert!(is_rust(rust), "{rust:?} is Rust to rustdoc");
        }
        for other in ["text", "sh", "toml", "console", "editable", "text,ignore"] {
            assert!(!is_rust(other), "{other:?} is not Rust to rustdoc");
        }
    }
}
