//! `{{#include}}` and its kin, checked the way mdBook 0.5 reads them.
//!
//! mdBook's links preprocessor (mdbook-driver, `builtin_preprocessors/links.rs`) finds
//! `{{#include path}}`, `{{#include path:anchor}}`, `{{#rustdoc_include path:anchor}}` and
//! `{{#playground path}}` anywhere in a page's text, code blocks included, and replaces each
//! with the file's text or the lines between `ANCHOR: anchor` and `ANCHOR_END: anchor`. When
//! it cannot read the file it logs an ERROR and exits 0; when the anchor is missing it
//! publishes an empty listing without a word. So every include is checked here:
//!
//! - it names a file inside the repository, tracked by git (a clone has it), and present in
//!   a student's export (not under `[export] exclude` in `exercises/exercises.toml`);
//! - it names an anchor, not line numbers (line numbers drift when the file changes);
//! - the anchor is marked exactly once, `ANCHOR: name` then `ANCHOR_END: name`, each on a
//!   comment line of its own, found the way mdBook finds it: the whole name after the colon,
//!   so `ANCHOR: cut_taken` is not the anchor `cut`;
//! - the region between the markers is not blank, nor is a whole included file;
//! - neither marker sits inside an exercise hole (`EXERCISE <id> BEGIN` ... `END`): the
//!   export replaces the hole's body, markers and all, and the chapter would lose its code.
//!
//! Included text is itself searched for includes, relative to the included file, as mdBook
//! does.

use std::collections::BTreeSet;
use std::path::{Component, Path, PathBuf};

/// How deep mdBook follows includes inside included text (`MAX_LINK_NESTED_DEPTH`).
const MAX_DEPTH: usize = 10;

/// One `{{#kind path[:selector]}}` in a page.
#[derive(Debug, PartialEq, Eq)]
pub struct Include {
    /// The whole directive as written, for messages.
    pub text: String,
    /// 1-based line of the page where it starts.
    pub line: usize,
    /// The path as written, relative to the including file's directory.
    pub path: String,
    /// What part of the file it takes.
    pub selector: Selector,
}

/// What part of the file an include takes.
#[derive(Debug, PartialEq, Eq)]
pub enum Selector {
    /// The whole file (`{{#include path}}` or `{{#playground path}}`).
    Whole,
    /// The lines between `ANCHOR: name` and `ANCHOR_END: name`.
    Anchor(String),
    /// Lines by number (`path:3:9`, `path:3`, `path::9`, `path:3:`).
    Lines(String),
}

/// Every include, rustdoc_include and playground directive in `text`, as mdBook's link
/// regex finds them: `{{`, optional whitespace, `#kind`, whitespace, then everything up to
/// the first `}}` (the path is its first word, a `:` splits off the anchor or line range).
/// An escaped directive, `\{{#...}}`, is skipped through the last `}}` on its line, as
/// mdBook does.
pub fn find(text: &str) -> Vec<Include> {
    let bytes = text.as_bytes();
    let mut found = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        if text[at..].starts_with("\\{{#") {
            let line_end = text[at..].find('\n').map_or(text.len(), |n| at + n);
            if let Some(close) = text[at..line_end].rfind("}}") {
                at += close + 2;
                continue;
            }
        }
        if text[at..].starts_with("{{")
            && let Some((len, include)) = directive(text, at)
        {
            found.extend(include);
            at += len;
            continue;
        }
        at += text[at..].chars().next().map_or(1, char::len_utf8);
    }
    found
}

/// The directive starting at `at` (which starts with `{{`): its length and, if it is one
/// that reads a file, the include. `None` if the text there is no directive at all.
fn directive(text: &str, at: usize) -> Option<(usize, Option<Include>)> {
    let rest = &text[at + 2..];
    let after_space = rest.trim_start();
    let kind_and_rest = after_space.strip_prefix('#')?;
    let kind_len =
        kind_and_rest.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(kind_and_rest.len());
    if kind_len == 0 {
        return None;
    }
    let kind = &kind_and_rest[..kind_len];
    let args = &kind_and_rest[kind_len..];
    if !args.starts_with(char::is_whitespace) {
        return None;
    }
    let close = args.find('}')?;
    if !args[close..].starts_with("}}") || args[..close].trim().is_empty() {
        return None;
    }
    let len = 2 + (rest.len() - after_space.len()) + 1 + kind_len + close + 2;
    let whole = &text[at..at + len];
    let spec = args[..close].split_whitespace().next()?;
    let line = text[..at].matches('\n').count() + 1;
    let include = match kind {
        "include" | "rustdoc_include" => {
            let (path, selector) = match spec.split_once(':') {
                None => (spec, Selector::Whole),
                Some((path, sel)) => (path, selector(sel)),
            };
            Some(Include { text: whole.to_string(), line, path: path.to_string(), selector })
        }
        // The playground directive takes no anchor: everything after the path is options.
        "playground" | "playpen" => {
            Some(Include { text: whole.to_string(), line, path: spec.to_string(), selector: Selector::Whole })
        }
        _ => None,
    };
    Some((len, include))
}

/// mdBook's `parse_range_or_anchor`: a first part that is a number or empty makes a line
/// range (an empty one, `path:`, the whole file); anything else is an anchor name.
fn selector(spec: &str) -> Selector {
    let first = spec.split(':').next().unwrap_or("");
    if first.is_empty() && spec.len() <= 1 {
        Selector::Whole
    } else if first.is_empty() || first.parse::<usize>().is_ok() {
        Selector::Lines(spec.to_string())
    } else {
        Selector::Anchor(first.to_string())
    }
}

/// What a book page may include from: the repository, the files git tracks there, and what
/// the student's export leaves out.
pub struct Repo {
    /// The repository's root, canonical.
    pub root: PathBuf,
    /// The tracked files, relative to `root`; `None` where git cannot tell (no `.git`), and
    /// then only existence is checked.
    pub tracked: Option<BTreeSet<PathBuf>>,
    /// `[export] exclude` of `exercises/exercises.toml`: paths, directories or globs,
    /// relative to `root`.
    pub excluded: Vec<String>,
}

impl Repo {
    /// The repository at `root`, with git's list of tracked files and the export's
    /// exclusions read from it.
    pub fn open(root: &Path) -> Repo {
        let root = root.canonicalize().unwrap_or_else(|e| panic!("{}: {e}", root.display()));
        let manifest = root.join("exercises/exercises.toml");
        let excluded = match std::fs::read_to_string(&manifest) {
            Ok(text) => export_excludes(&text).unwrap_or_else(|e| panic!("{}: {e}", manifest.display())),
            Err(_) => Vec::new(),
        };
        Repo { tracked: tracked_files(&root), root, excluded }
    }
}

/// `git ls-files` in `root`, or `None` where git cannot tell: no git, `root` not the top of
/// its own repository (an export copied under another one), or nothing tracked yet (an
/// export just `git init`ed).
fn tracked_files(root: &Path) -> Option<BTreeSet<PathBuf>> {
    let git = |args: &[&str]| {
        let out = std::process::Command::new("git").args(args).current_dir(root).output().ok()?;
        if out.status.success() { String::from_utf8(out.stdout).ok() } else { None }
    };
    let top = git(&["rev-parse", "--show-toplevel"])?;
    if Path::new(top.trim()).canonicalize().ok()? != root {
        return None;
    }
    let list: BTreeSet<PathBuf> =
        git(&["ls-files", "-z"])?.split('\0').filter(|p| !p.is_empty()).map(PathBuf::from).collect();
    (!list.is_empty()).then_some(list)
}

/// The strings of `exclude` in the `[export]` table of an exercises manifest (also written
/// `export.exclude = [...]` at the top level). This reads that one key and no other TOML:
/// an array of basic (`"..."`) or literal (`'...'`) strings, over one line or several, with
/// comments. Anything else it refuses, so a manifest it misreads fails loudly instead of
/// excluding nothing.
pub fn export_excludes(toml: &str) -> Result<Vec<String>, String> {
    let mut table = String::new();
    // The delimiter of the multi-line string (`"""` or `'''`) a line starts inside, if any:
    // the manifest's hints are such strings, and their lines are text, not keys.
    let mut in_string: Option<&str> = None;
    let mut lines = toml.lines().enumerate();
    while let Some((n, line)) = lines.next() {
        let was_in_string = in_string;
        for delim in ["\"\"\"", "'''"] {
            if in_string.is_none_or(|d| d == delim) && line.matches(delim).count() % 2 == 1 {
                in_string = if in_string.is_some() { None } else { Some(delim) };
            }
        }
        if was_in_string.is_some() {
            continue;
        }
        let code = strip_comment(line);
        let code = code.trim();
        if let Some(header) = table_header(code) {
            table = header;
            continue;
        }
        let Some((key, value)) = code.split_once('=') else { continue };
        let key: String = key.split('.').map(|k| k.trim().trim_matches('"')).collect::<Vec<_>>().join(".");
        let full = if table.is_empty() { key } else { format!("{table}.{key}") };
        if full != "export.exclude" {
            continue;
        }
        let mut array = value.trim().to_string();
        if !array.starts_with('[') {
            return Err(format!("line {}: export.exclude must be an array of strings", n + 1));
        }
        while !closes_array(&array) {
            let Some((_, more)) = lines.next() else {
                return Err(format!("line {}: export.exclude: the array is never closed", n + 1));
            };
            array.push('\n');
            array.push_str(strip_comment(more));
        }
        return strings_of(&array).map_err(|e| format!("line {}: export.exclude: {e}", n + 1));
    }
    Ok(Vec::new())
}

/// The name of the table a line opens (`[export]`, `[[exercise]]`), or `None` if it opens
/// none (a line of an array that starts with `[` is not a header).
fn table_header(code: &str) -> Option<String> {
    let name = code.strip_prefix('[')?.strip_suffix(']')?;
    let name = name.strip_prefix('[').and_then(|n| n.strip_suffix(']')).unwrap_or(name).trim();
    let bare = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ' ');
    (!name.is_empty() && name.chars().all(bare)).then(|| name.split('.').map(str::trim).collect::<Vec<_>>().join("."))
}

/// `line` without a `#` comment (a `#` inside a string is kept).
fn strip_comment(line: &str) -> &str {
    let mut quote = None;
    for (i, c) in line.char_indices() {
        match (quote, c) {
            (None, '"' | '\'') => quote = Some(c),
            (Some(q), _) if c == q => quote = None,
            (None, '#') => return &line[..i],
            _ => {}
        }
    }
    line
}

/// Whether `array` (comments stripped) holds its closing `]` outside any string.
fn closes_array(array: &str) -> bool {
    let mut quote = None;
    for c in array.chars() {
        match (quote, c) {
            (None, '"' | '\'') => quote = Some(c),
            (Some(q), _) if c == q => quote = None,
            (None, ']') => return true,
            _ => {}
        }
    }
    false
}

/// The strings of a TOML array `[ "a", 'b', ]`.
fn strings_of(array: &str) -> Result<Vec<String>, String> {
    let inner = array.trim().strip_prefix('[').and_then(|a| a.trim_end().strip_suffix(']')).ok_or("not an array")?;
    let mut out = Vec::new();
    let mut chars = inner.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace() || *c == ',') {
            chars.next();
        }
        let Some(q) = chars.next() else { return Ok(out) };
        if q != '"' && q != '\'' {
            return Err(format!("expected a string, found `{q}`"));
        }
        let mut s = String::new();
        loop {
            match chars.next() {
                None => return Err("a string is never closed".into()),
                Some(c) if c == q => break,
                Some('\\') if q == '"' => match chars.next() {
                    Some('\\') => s.push('\\'),
                    Some('"') => s.push('"'),
                    other => return Err(format!("unsupported escape `\\{}`", other.unwrap_or(' '))),
                },
                Some(c) => s.push(c),
            }
        }
        out.push(s);
    }
}

/// Whether the relative path `rel` is left out by the exclusion `entry`: the same path, a
/// path under it (a directory), or a match of it as a glob (`*` within one component, `**`
/// across any number of them).
pub fn is_excluded(rel: &Path, entry: &str) -> bool {
    let entry = entry.trim_start_matches("./").trim_end_matches('/');
    let parts: Vec<&str> = rel.components().filter_map(|c| c.as_os_str().to_str()).collect();
    let pattern: Vec<&str> = entry.split('/').filter(|p| !p.is_empty()).collect();
    // A plain entry (no wildcard) also excludes everything under it.
    (0..=parts.len()).any(|n| glob(&pattern, &parts[..n]) && (n == parts.len() || !entry.contains('*')))
}

fn glob(pattern: &[&str], parts: &[&str]) -> bool {
    match (pattern.first(), parts.first()) {
        (None, None) => true,
        (Some(&"**"), _) => glob(&pattern[1..], parts) || (!parts.is_empty() && glob(pattern, &parts[1..])),
        (Some(p), Some(part)) => component_glob(p, part) && glob(&pattern[1..], &parts[1..]),
        _ => false,
    }
}

fn component_glob(pattern: &str, text: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == text,
        Some((head, tail)) => {
            text.starts_with(head)
                && (head.len()..=text.len()).any(|i| text.is_char_boundary(i) && component_glob(tail, &text[i..]))
        }
    }
}

/// Check every include in `text`, the text of `page` (a path under the repository), and
/// return one message per problem, each naming the page, the line and the directive.
pub fn check_page(repo: &Repo, page: &Path, text: &str) -> Vec<String> {
    let mut problems = Vec::new();
    check_text(repo, page, page, text, 0, &mut problems);
    problems
}

fn check_text(repo: &Repo, page: &Path, file: &Path, text: &str, depth: usize, problems: &mut Vec<String>) {
    let shown = shown(repo, page);
    let via = if file == page { String::new() } else { format!(" (in {}, which it includes)", shown_path(repo, file)) };
    for inc in find(text) {
        let mut fail = |why: String| problems.push(format!("{shown}:{}{via}: `{}`: {why}", inc.line, inc.text));
        if depth >= MAX_DEPTH {
            fail("includes nested too deep (a cycle?)".into());
            return;
        }
        if let Selector::Lines(lines) = &inc.selector {
            fail(format!(
                "takes lines by number (`:{lines}`), which drift when the file changes; mark the lines with \
                 `// ANCHOR: name` and `// ANCHOR_END: name` and include `:name`"
            ));
            continue;
        }
        let Some(target) = resolve(repo, file, &inc.path) else {
            fail("reaches outside the repository; a book page includes only the repository's own files".into());
            continue;
        };
        let rel = target.strip_prefix(&repo.root).unwrap_or(&target).to_path_buf();
        let contents = match std::fs::read_to_string(&target) {
            Ok(c) => c,
            Err(e) => {
                fail(format!("cannot read {}: {e}", rel.display()));
                continue;
            }
        };
        if let Some(tracked) = &repo.tracked
            && !tracked.contains(&rel)
        {
            fail(format!(
                "{} is not tracked by git, so a clone lacks it (git add it, or include another file)",
                rel.display()
            ));
        }
        if let Some(entry) = repo.excluded.iter().find(|e| is_excluded(&rel, e)) {
            fail(format!(
                "{} is left out of a student's export (`{entry}` under [export] exclude in exercises/exercises.toml), \
                 so the student's book would lose this listing",
                rel.display()
            ));
        }
        let region = match &inc.selector {
            Selector::Anchor(name) => match anchored_region(&contents, name) {
                Ok(region) => region,
                Err(why) => {
                    fail(format!("{}: {why}", rel.display()));
                    continue;
                }
            },
            _ => contents.clone(),
        };
        if region.trim().is_empty() {
            let what = match &inc.selector {
                Selector::Anchor(name) => format!("the region `{name}` of {}", rel.display()),
                _ => rel.display().to_string(),
            };
            fail(format!("{what} is empty: the chapter would show an empty listing"));
        }
        check_text(repo, page, &target, &region, depth + 1, problems);
    }
}

/// `path` as written in `file`, resolved lexically (`..` taken off) and then through any
/// symbolic link; `None` if either way it leaves the repository.
fn resolve(repo: &Repo, file: &Path, path: &str) -> Option<PathBuf> {
    if Path::new(path).is_absolute() {
        return None;
    }
    let dir = file.parent()?;
    let mut out = PathBuf::new();
    for c in dir.join(path).components() {
        match c {
            // `..` climbs one level; at the top there is none to climb.
            Component::ParentDir if !out.pop() => return None,
            Component::ParentDir | Component::CurDir => {}
            other => out.push(other),
        }
    }
    if !out.starts_with(&repo.root) {
        return None;
    }
    match out.canonicalize() {
        Ok(real) if !real.starts_with(&repo.root) => None,
        _ => Some(out),
    }
}

/// A path as a message shows it: relative to the repository.
fn shown_path(repo: &Repo, path: &Path) -> String {
    path.strip_prefix(&repo.root).unwrap_or(path).display().to_string()
}

fn shown(repo: &Repo, page: &Path) -> String {
    shown_path(repo, page)
}

/// One anchor marker on a line, as mdBook's regexes find it: `ANCHOR:` or `ANCHOR_END:`,
/// optional whitespace, then the longest run of word characters and `-` (the name).
fn marker<'a>(line: &'a str, tag: &str) -> Option<&'a str> {
    let mut from = 0;
    while let Some(at) = line[from..].find(tag) {
        let after = line[from + at + tag.len()..].trim_start();
        let len = after.find(|c: char| !(c.is_alphanumeric() || c == '_' || c == '-')).unwrap_or(after.len());
        if len > 0 {
            return Some(&after[..len]);
        }
        from += at + tag.len();
    }
    None
}

/// Whether a marker line holds nothing but a comment leader and the marker: mdBook drops
/// every line that carries a marker, so code on it would vanish from the listing.
fn is_marker_line(line: &str, tag: &str, name: &str) -> bool {
    let mut s = line.trim();
    for leader in ["//!", "///", "//", "/*", "<!--", "#", "--", ";"] {
        if let Some(rest) = s.strip_prefix(leader) {
            s = rest;
            break;
        }
    }
    for trailer in ["*/", "-->"] {
        s = s.strip_suffix(trailer).unwrap_or(s);
    }
    s.trim().strip_prefix(tag).is_some_and(|rest| rest.trim() == name)
}

/// The text mdBook 0.5 includes for `{{#include file:name}}`: the lines after the first
/// `ANCHOR: name` up to the first `ANCHOR_END: name`, less every line carrying another
/// marker. An error, in words, if the markers are missing, doubled, out of order, not on
/// lines of their own, or inside an exercise hole.
pub fn anchored_region(contents: &str, name: &str) -> Result<String, String> {
    let lines: Vec<&str> = contents.lines().collect();
    let starts: Vec<usize> = (0..lines.len()).filter(|&i| marker(lines[i], "ANCHOR:") == Some(name)).collect();
    let ends: Vec<usize> = (0..lines.len()).filter(|&i| marker(lines[i], "ANCHOR_END:") == Some(name)).collect();
    let (start, end) = match (starts.as_slice(), ends.as_slice()) {
        ([], _) => {
            let near: Vec<&str> =
                lines.iter().filter_map(|l| marker(l, "ANCHOR:")).filter(|m| m.contains(name)).collect();
            let hint = if near.is_empty() {
                String::new()
            } else {
                format!(" (only `ANCHOR: {}`)", near.join("`, `ANCHOR: "))
            };
            return Err(format!("no `ANCHOR: {name}` line{hint}"));
        }
        (_, []) => {
            return Err(format!(
                "`ANCHOR: {name}` has no `ANCHOR_END: {name}`: mdBook would take the rest of the file"
            ));
        }
        ([s], [e]) => (*s, *e),
        _ => {
            return Err(format!(
                "`{name}` is marked {} times and ended {} times; mark each anchor once",
                starts.len(),
                ends.len()
            ));
        }
    };
    if end < start {
        return Err(format!(
            "`ANCHOR_END: {name}` (line {}) comes before `ANCHOR: {name}` (line {})",
            end + 1,
            start + 1
        ));
    }
    for (i, tag) in [(start, "ANCHOR:"), (end, "ANCHOR_END:")] {
        if !is_marker_line(lines[i], tag, name) {
            return Err(format!(
                "line {} carries `{tag} {name}` beside other text; mdBook drops that whole line from the listing, \
                 so put the marker on a comment line of its own",
                i + 1
            ));
        }
        if let Some(hole) = hole_around(&lines, i) {
            return Err(format!(
                "`{tag} {name}` (line {}) is inside the hole of exercise {hole}; the export replaces the hole's body, \
                 marker and all",
                i + 1
            ));
        }
    }
    let region: Vec<&str> = lines[start + 1..end]
        .iter()
        .filter(|l| marker(l, "ANCHOR:").is_none() && marker(l, "ANCHOR_END:").is_none())
        .copied()
        .collect();
    Ok(region.join("\n"))
}

/// The id of the exercise hole (`EXERCISE <id> BEGIN` ... `EXERCISE <id> END`) that line
/// `at` lies strictly inside, if any.
fn hole_around(lines: &[&str], at: usize) -> Option<String> {
    let mut open: Option<String> = None;
    for line in &lines[..at] {
        let words: Vec<&str> = line.split_whitespace().collect();
        if let Some(i) = words.iter().position(|w| *w == "EXERCISE")
            && let (Some(id), Some(what)) = (words.get(i + 1), words.get(i + 2))
        {
            match *what {
                "BEGIN" => open = Some(id.to_string()),
                "END" if open.as_deref() == Some(id) => open = None,
                _ => {}
            }
        }
    }
    open
}

#[cfg(test)]
mod wrong_on_purpose {
    //! Each rule, broken on purpose in a small repository made for the test.

    use super::*;

    /// A repository in a temporary directory with `files` (path, text), not under git unless
    /// `tracked` lists its tracked files.
    fn repo(files: &[(&str, &str)], tracked: Option<&[&str]>, excluded: &[&str]) -> (tempfile::TempDir, Repo) {
        let dir = tempfile::tempdir().unwrap();
        for (path, text) in files {
            let path = dir.path().join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
        let repo = Repo {
            root: dir.path().canonicalize().unwrap(),
            tracked: tracked.map(|t| t.iter().map(PathBuf::from).collect()),
            excluded: excluded.iter().map(|s| s.to_string()).collect(),
        };
        (dir, repo)
    }

    const SOURCE: &str = "fn a() {}\n// ANCHOR: cut_taken\nfn taken() {}\n// ANCHOR_END: cut_taken\n\
                          // ANCHOR: empty\n\n// ANCHOR_END: empty\n";

    /// The problems of a chapter `book/src/ch.md` holding `chapter`, beside `src/lib.rs`
    /// holding `source`.
    fn problems(chapter: &str, source: &str) -> Vec<String> {
        let (_dir, repo) = repo(&[("book/src/ch.md", chapter), ("src/lib.rs", source)], None, &[]);
        check_page(&repo, &repo.root.join("book/src/ch.md"), chapter)
    }

    fn assert_one(problems: &[String], expected: &str) {
        assert_eq!(problems.len(), 1, "expected one problem containing {expected:?}, got {problems:#?}");
        assert!(problems[0].contains(expected), "expected {expected:?} in {:?}", problems[0]);
        assert!(problems[0].starts_with("book/src/ch.md:"), "the message names the page: {:?}", problems[0]);
    }

    #[test]
    fn a_good_include_passes() {
        assert_eq!(
            problems("x\n```rust,ignore\n{{#include ../../src/lib.rs:cut_taken}}\n```\n", SOURCE),
            Vec::<String>::new()
        );
        assert_eq!(problems("{{#include ../../src/lib.rs}}", SOURCE), Vec::<String>::new());
    }

    #[test]
    fn a_missing_file_fails() {
        assert_one(&problems("{{#include ../../src/nope.rs:cut}}", SOURCE), "cannot read src/nope.rs");
    }

    #[test]
    fn a_missing_anchor_fails() {
        assert_one(&problems("{{#include ../../src/lib.rs:nowhere}}", SOURCE), "no `ANCHOR: nowhere` line");
    }

    #[test]
    fn an_anchor_is_matched_whole_not_as_a_substring() {
        let found = problems("line one\n{{#include ../../src/lib.rs:cut}}", SOURCE);
        assert_one(&found, "no `ANCHOR: cut` line (only `ANCHOR: cut_taken`)");
        assert!(found[0].starts_with("book/src/ch.md:2:"), "the message names the line: {found:?}");
    }

    #[test]
    fn an_empty_region_fails() {
        assert_one(
            &problems("{{#include ../../src/lib.rs:empty}}", SOURCE),
            "the region `empty` of src/lib.rs is empty",
        );
    }

    #[test]
    fn an_empty_file_fails() {
        assert_one(&problems("{{#rustdoc_include ../../src/lib.rs}}", " \n"), "src/lib.rs is empty");
    }

    #[test]
    fn an_unended_doubled_or_reversed_anchor_fails() {
        let unended = "// ANCHOR: a\nfn a() {}\n";
        assert_one(&problems("{{#include ../../src/lib.rs:a}}", unended), "has no `ANCHOR_END: a`");
        let doubled = "// ANCHOR: a\nfn a() {}\n// ANCHOR_END: a\n// ANCHOR: a\nfn b() {}\n// ANCHOR_END: a\n";
        assert_one(&problems("{{#include ../../src/lib.rs:a}}", doubled), "marked 2 times and ended 2 times");
        let reversed = "// ANCHOR_END: a\nfn a() {}\n// ANCHOR: a\n";
        assert_one(&problems("{{#include ../../src/lib.rs:a}}", reversed), "comes before");
    }

    #[test]
    fn a_marker_beside_code_fails() {
        let source = "// ANCHOR: a\nlet x = 1; // ANCHOR_END: a\n";
        assert_one(&problems("{{#include ../../src/lib.rs:a}}", source), "beside other text");
    }

    #[test]
    fn line_numbers_fail() {
        for spec in ["3:9", "3", ":9", "3:"] {
            assert_one(
                &problems(&format!("{{{{#include ../../src/lib.rs:{spec}}}}}"), SOURCE),
                "takes lines by number",
            );
        }
    }

    #[test]
    fn a_path_outside_the_repository_fails() {
        assert_one(&problems("{{#include ../../../etc/passwd}}", SOURCE), "reaches outside the repository");
        assert_one(&problems("{{#include /etc/passwd}}", SOURCE), "reaches outside the repository");
    }

    #[test]
    fn an_untracked_file_fails() {
        let chapter = "{{#include ../../src/new.rs}}";
        let (_dir, repo) =
            repo(&[("book/src/ch.md", chapter), ("src/new.rs", "fn f() {}\n")], Some(&["book/src/ch.md"]), &[]);
        assert_one(&check_page(&repo, &repo.root.join("book/src/ch.md"), chapter), "src/new.rs is not tracked by git");
    }

    #[test]
    fn a_file_the_export_leaves_out_fails() {
        let chapter = "{{#include ../../solutions/cow.rs:a}}";
        let files = [("book/src/ch.md", chapter), ("solutions/cow.rs", "// ANCHOR: a\nfn a() {}\n// ANCHOR_END: a\n")];
        for entry in ["solutions", "solutions/", "solutions/cow.rs", "solutions/*.rs", "**/cow.rs"] {
            let (_dir, repo) = repo(&files, None, &[entry]);
            assert_one(
                &check_page(&repo, &repo.root.join("book/src/ch.md"), chapter),
                "left out of a student's export",
            );
        }
        let (_dir, repo) = repo(&files, None, &["solution", "solutions/*.txt"]);
        assert_eq!(check_page(&repo, &repo.root.join("book/src/ch.md"), chapter), Vec::<String>::new());
    }

    #[test]
    fn an_anchor_inside_an_exercise_hole_fails() {
        // The markers are spelled out with `concat!` so that no line of this file is one.
        let source = concat!(
            "fn save() {\n    // EXERCISE",
            " 03-blocking BEGIN\n    // ANCHOR: body\n    work();\n    // ANCHOR_END: body\n    // EXERCISE",
            " 03-blocking END\n}\n"
        );
        assert_one(&problems("{{#include ../../src/lib.rs:body}}", source), "inside the hole of exercise 03-blocking");
        // An anchor around the whole hole is fine: the export shows the stub in its place.
        let around = concat!(
            "// ANCHOR: save\nfn save() {\n    // EXERCISE",
            " 03-blocking BEGIN\n    work();\n    // EXERCISE",
            " 03-blocking END\n}\n// ANCHOR_END: save\n"
        );
        assert_eq!(problems("{{#include ../../src/lib.rs:save}}", around), Vec::<String>::new());
    }

    #[test]
    fn includes_inside_included_text_are_checked() {
        let (_dir, repo) = repo(
            &[("book/src/ch.md", "{{#include part.md}}"), ("book/src/part.md", "{{#include nope.md}}\n")],
            None,
            &[],
        );
        let found = check_page(&repo, &repo.root.join("book/src/ch.md"), "{{#include part.md}}");
        assert_one(&found, "cannot read book/src/nope.md");
        assert!(found[0].contains("(in book/src/part.md, which it includes)"), "{found:?}");
    }

    #[test]
    fn the_parser_reads_directives_as_mdbook_does() {
        let text = "a {{#include ../x.rs:opts}} b {{#rustdoc_include y.rs:3:9}}\n{{ #include  z.rs }} \
                    {{#playground p.rs editable}} {{#title T}} \\{{#include skipped.rs}} {{#include also_skipped.rs}}\n\
                    {{#include w.rs:}}";
        let found: Vec<(String, Selector, usize)> =
            find(text).into_iter().map(|i| (i.path, i.selector, i.line)).collect();
        assert_eq!(
            found,
            vec![
                ("../x.rs".into(), Selector::Anchor("opts".into()), 1),
                ("y.rs".into(), Selector::Lines("3:9".into()), 1),
                ("z.rs".into(), Selector::Whole, 2),
                ("p.rs".into(), Selector::Whole, 2),
                ("w.rs".into(), Selector::Whole, 3),
            ]
        );
    }

    #[test]
    fn the_export_list_is_read_from_the_manifest() {
        let toml = "[[exercise]]\nid = \"01-cut\"\nexclude = [\"not this\"]\n\n[export]\n# what students never see\n\
                    exclude = [\n  \"solutions/\", # the answers\n  'notes/#private.md',\n]\nother = 1\n";
        assert_eq!(export_excludes(toml).unwrap(), vec!["solutions/".to_string(), "notes/#private.md".to_string()]);
        assert_eq!(export_excludes("export.exclude = [\"a\"]\n").unwrap(), vec!["a".to_string()]);
        // Lines of a multi-line string, and arrays of arrays, are neither keys nor tables.
        let hints = "[export]\nhint = \"\"\"\n[other]\nexclude = [\"in a hint\"]\n\"\"\"\nexpect = [\n  [\"x\"]\n]\n\
                     exclude = ['real']\n";
        assert_eq!(export_excludes(hints).unwrap(), vec!["real".to_string()]);
        assert_eq!(export_excludes("[export]\nreadme = \"x\"\n").unwrap(), Vec::<String>::new());
        assert!(export_excludes("[export]\nexclude = \"solutions\"\n").is_err(), "a string, not an array, is refused");
        assert!(export_excludes("[export]\nexclude = [\"a\",\n").is_err(), "an unclosed array is refused");
        assert!(export_excludes("[export]\nexclude = [1]\n").is_err(), "a number is refused");
    }
}
