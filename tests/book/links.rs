//! Links inside the built book, checked offline over mdBook's HTML output.
//!
//! Every `href` and `src` on every page (chapters, `print.html`, `toc.html`, `404.html`)
//! that is not a web address must name a file of the built book, and every `#fragment` must
//! name an `id` on the page it points to. This covers links between chapters, links to a
//! heading, images (the SVG plots), and the theme's own scripts and styles. Web links
//! (`https:`, `mailto:` ...) are not followed: the check needs no network.
//!
//! Why not mdbook-linkcheck2: version 0.13.0 builds against mdBook 0.5.4 and finds missing
//! files and images, but it does not check fragments (it logs a warning per fragment, "not
//! checking ... because fragment resolution isn't implemented") and it compiles a web
//! client's worth of crates (about 15 minutes on 2 cores) for links this check never
//! follows.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Component, Path, PathBuf};

/// A tag's `href`/`src` value and the ids on a page, as read from its HTML.
#[derive(Debug, Default)]
pub struct Page {
    /// (tag name, attribute, value as written) for every `href` and `src`.
    pub links: Vec<(String, String, String)>,
    /// Every `id` (and `name` on `<a>`), entities decoded.
    pub ids: BTreeSet<String>,
    /// `<base href>`, if the page sets one (mdBook's 404 page sets `/`).
    pub base: Option<String>,
}

/// Read the tags of `html`: skips comments and the bodies of `<script>` and `<style>`, so a
/// string in a script that looks like a tag is not taken for one. Code in a chapter is
/// escaped (`&lt;`) by mdBook and never looks like a tag.
pub fn parse(html: &str) -> Page {
    let mut page = Page::default();
    let mut rest = html;
    while let Some(open) = rest.find('<') {
        rest = &rest[open..];
        if let Some(comment) = rest.strip_prefix("<!--") {
            rest = comment.find("-->").map_or("", |end| &comment[end + 3..]);
            continue;
        }
        let Some(close) = tag_end(rest) else { break };
        let tag = &rest[1..close];
        rest = &rest[close + 1..];
        let name: String =
            tag.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '-').collect::<String>().to_ascii_lowercase();
        if name.is_empty() {
            continue;
        }
        for (attr, value) in attributes(&tag[name.len()..]) {
            match attr.as_str() {
                "href" | "src" => {
                    if name == "base" && attr == "href" {
                        page.base = Some(decode_entities(&value));
                    } else {
                        page.links.push((name.clone(), attr, value));
                    }
                }
                "id" => {
                    page.ids.insert(decode_entities(&value));
                }
                "name" if name == "a" => {
                    page.ids.insert(decode_entities(&value));
                }
                _ => {}
            }
        }
        if (name == "script" || name == "style") && !tag.ends_with('/') {
            let end = format!("</{name}");
            rest = rest.to_ascii_lowercase().find(&end).map_or("", |at| &rest[at..]);
        }
    }
    page
}

/// Where the tag starting at `s[0] == '<'` ends: its `>`, outside quoted values.
fn tag_end(s: &str) -> Option<usize> {
    let mut quote = None;
    for (i, c) in s.char_indices().skip(1) {
        match (quote, c) {
            (None, '"' | '\'') => quote = Some(c),
            (Some(q), _) if c == q => quote = None,
            (None, '>') => return Some(i),
            _ => {}
        }
    }
    None
}

/// The attributes of a tag's text after its name: `name="v"`, `name='v'`, `name=v`, `name`.
fn attributes(s: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut chars = s.char_indices().peekable();
    while let Some(&(start, c)) = chars.peek() {
        if c.is_whitespace() || c == '/' {
            chars.next();
            continue;
        }
        let mut end = start;
        while let Some(&(i, c)) = chars.peek() {
            if c.is_whitespace() || c == '=' || c == '/' {
                break;
            }
            end = i + c.len_utf8();
            chars.next();
        }
        if end == start {
            chars.next();
            continue;
        }
        let name = s[start..end].to_ascii_lowercase();
        while chars.peek().is_some_and(|&(_, c)| c.is_whitespace()) {
            chars.next();
        }
        if chars.peek().is_none_or(|&(_, c)| c != '=') {
            out.push((name, String::new()));
            continue;
        }
        chars.next();
        while chars.peek().is_some_and(|&(_, c)| c.is_whitespace()) {
            chars.next();
        }
        let mut value = String::new();
        match chars.peek().map(|&(_, c)| c) {
            Some(q @ ('"' | '\'')) => {
                chars.next();
                for (_, c) in chars.by_ref() {
                    if c == q {
                        break;
                    }
                    value.push(c);
                }
            }
            _ => {
                while let Some(&(_, c)) = chars.peek() {
                    if c.is_whitespace() {
                        break;
                    }
                    value.push(c);
                    chars.next();
                }
            }
        }
        out.push((name, value));
    }
    out
}

/// The character references mdBook writes in attributes, decoded.
fn decode_entities(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        let Some(semi) = rest.find(';').filter(|&n| n <= 10) else {
            out.push('&');
            rest = &rest[1..];
            continue;
        };
        let entity = &rest[1..semi];
        let decoded = match entity {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            _ => entity
                .strip_prefix("#x")
                .or_else(|| entity.strip_prefix("#X"))
                .and_then(|hex| u32::from_str_radix(hex, 16).ok())
                .or_else(|| entity.strip_prefix('#').and_then(|d| d.parse().ok()))
                .and_then(char::from_u32),
        };
        match decoded {
            Some(c) => {
                out.push(c);
                rest = &rest[semi + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// `%xx` escapes of a URL path decoded (as a browser does before asking for the file).
fn decode_percent(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(b) = s.get(i + 1..i + 3).and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Whether a link leaves the book: it has a scheme (`https:`, `mailto:`, `data:` ...) or
/// is protocol-relative (`//host/...`). Those are not followed.
fn is_external(link: &str) -> bool {
    if link.starts_with("//") {
        return true;
    }
    let scheme_len = link.find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))).unwrap_or(0);
    scheme_len > 0 && link[scheme_len..].starts_with(':')
}

/// Every page of the built book at `out`, parsed, by its path relative to `out`.
pub fn read_book(out: &Path) -> BTreeMap<PathBuf, Page> {
    let mut pages = BTreeMap::new();
    let mut dirs = vec![out.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "html") {
                let html = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                pages.insert(path.strip_prefix(out).unwrap().to_path_buf(), parse(&html));
            }
        }
    }
    pages
}

/// Check every link of every page of the book built at `out`; one message per broken link,
/// naming the page (and the chapter it was built from, found under `src`), the tag and the
/// link as written.
pub fn check_book(out: &Path, src: &Path) -> Vec<String> {
    let pages = read_book(out);
    let mut problems = Vec::new();
    for (rel, page) in &pages {
        let shown = shown_page(rel, src);
        // A page's links are relative to its directory, or to its <base href="/">, which is
        // the book's root when the book is served at the root of a site.
        let dir = match page.base.as_deref() {
            Some(base) if base.starts_with('/') => PathBuf::from(base.trim_start_matches('/')),
            _ => rel.parent().unwrap_or(Path::new("")).to_path_buf(),
        };
        for (tag, attr, value) in &page.links {
            let link = decode_entities(value);
            if link.is_empty() || is_external(&link) {
                continue;
            }
            let (path, fragment) = match link.split_once('#') {
                Some((p, f)) => (p, Some(f)),
                None => (link.as_str(), None),
            };
            let path = path.split('?').next().unwrap_or("");
            let mut fail = |why: String| problems.push(format!("{shown}: <{tag} {attr}=\"{value}\">: {why}"));
            let target = if path.is_empty() {
                rel.clone()
            } else {
                match join(&dir, &decode_percent(path)) {
                    Some(t) => t,
                    None => {
                        fail("points outside the built book".into());
                        continue;
                    }
                }
            };
            if !out.join(&target).is_file() {
                fail(format!("no file {} in the built book", target.display()));
                continue;
            }
            let Some(fragment) = fragment.map(decode_percent).filter(|f| !f.is_empty()) else { continue };
            if let Some(target_page) = pages.get(&target)
                && !target_page.ids.contains(&fragment)
            {
                fail(format!("no id \"{fragment}\" on {}", target.display()));
            }
        }
    }
    // mdBook 0.5 writes each image twice (the picture and its zoomed copy): one message each.
    let mut seen = BTreeSet::new();
    problems.retain(|p| seen.insert(p.clone()));
    problems
}

/// `link` (a relative path, `/` separated) joined to `dir`, `..` taken off; `None` if it
/// climbs out of the book.
fn join(dir: &Path, link: &str) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    let start = if link.starts_with('/') { Path::new("") } else { dir };
    for c in start.join(link.trim_start_matches('/')).components() {
        match c {
            // `..` climbs one level; at the top of the book there is none to climb.
            Component::ParentDir if !out.pop() => return None,
            Component::Normal(part) => out.push(part),
            _ => {}
        }
    }
    Some(out)
}

/// A built page as a message names it: with its chapter's source under `src`, if any
/// (`x.md` becomes `x.html`, `README.md` becomes `index.html`).
fn shown_page(rel: &Path, src: &Path) -> String {
    let md = rel.with_extension("md");
    let readme = rel.with_file_name("README.md");
    let source = [md, readme].into_iter().find(|p| {
        src.join(p).is_file() && (p.file_name() != Some("README.md".as_ref()) || rel.ends_with("index.html"))
    });
    match source {
        Some(s) => format!("{} (built from book/src/{})", rel.display(), s.display()),
        None => rel.display().to_string(),
    }
}

#[cfg(test)]
mod wrong_on_purpose {
    //! A built book made by hand, broken one link at a time.

    use super::*;

    /// A built book in a temporary directory: `files` (path, text) under `out/`, and the
    /// chapters `ch.md` and `sub/README.md` under `src/`.
    fn book(files: &[(&str, &str)]) -> (tempfile::TempDir, Vec<String>) {
        let dir = tempfile::tempdir().unwrap();
        for (path, text) in files {
            let path = dir.path().join("out").join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
        for md in ["ch.md", "sub/README.md"] {
            let path = dir.path().join("src").join(md);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, "# x\n").unwrap();
        }
        let problems = check_book(&dir.path().join("out"), &dir.path().join("src"));
        (dir, problems)
    }

    const OTHER: (&str, &str) =
        ("sub/index.html", "<h1 id=\"top\">x</h1><img src=\"plot.svg\"><a href=\"../ch.html#s\">");
    const PLOT: (&str, &str) = ("sub/plot.svg", "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"1\" height=\"1\"/>");

    fn with_chapter(html: &str) -> Vec<String> {
        book(&[("ch.html", html), OTHER, PLOT]).1
    }

    fn assert_one(problems: &[String], expected: &str) {
        assert_eq!(problems.len(), 1, "expected one problem containing {expected:?}, got {problems:#?}");
        assert!(problems[0].contains(expected), "expected {expected:?} in {:?}", problems[0]);
    }

    const GOOD: &str = "<!-- <a href=\"commented-out.html\"> --><h2 id=\"s\">S</h2>\
                        <script>var x = '<img src=\"in-a-script.png\">';</script>\
                        <a href=\"sub/index.html#top\">o</a> <a href='#s'>s</a> <a href=\"https://example.invalid/x\">w</a>\
                        <a href=\"mailto:a@example.invalid\">m</a> <a href=\"#\">top</a> <img src=\"sub/plot.svg\" alt=\"p\">";

    #[test]
    fn a_good_book_passes() {
        assert_eq!(with_chapter(GOOD), Vec::<String>::new());
    }

    #[test]
    fn a_broken_link_fails() {
        let found = with_chapter(&format!("{GOOD}<a href=\"nope.html\">n</a>"));
        assert_one(&found, "ch.html (built from book/src/ch.md): <a href=\"nope.html\">: no file nope.html");
    }

    #[test]
    fn a_missing_image_fails() {
        // Twice, as mdBook 0.5 writes an image (the picture and its zoomed copy): reported once.
        let page = format!("{GOOD}<img src=\"sub/missing.svg\"><span><img src=\"sub/missing.svg\"></span>");
        assert_one(&with_chapter(&page), "<img src=\"sub/missing.svg\">: no file");
    }

    #[test]
    fn a_missing_fragment_fails() {
        assert_one(
            &with_chapter(&format!("{GOOD}<a href=\"sub/index.html#nope\">")),
            "no id \"nope\" on sub/index.html",
        );
        assert_one(&with_chapter(&format!("{GOOD}<a href=\"#nope\">")), "no id \"nope\" on ch.html");
    }

    #[test]
    fn a_link_out_of_the_book_fails() {
        assert_one(&with_chapter(&format!("{GOOD}<a href=\"../../etc/passwd\">")), "points outside the built book");
    }

    #[test]
    fn a_broken_link_on_a_nested_page_names_its_readme() {
        let (_dir, found) =
            book(&[("ch.html", GOOD), ("sub/index.html", "<h1 id=\"top\">x</h1><img src=\"../plot.svg\">"), PLOT]);
        assert_one(
            &found,
            "sub/index.html (built from book/src/sub/README.md): <img src=\"../plot.svg\">: no file plot.svg",
        );
    }

    #[test]
    fn base_href_makes_links_relative_to_the_root() {
        let page = "<base href=\"/\"><a href=\"ch.html#s\">home</a><img src=\"sub/plot.svg\">";
        let (_dir, found) = book(&[("ch.html", GOOD), ("deep/404.html", page), OTHER, PLOT]);
        assert_eq!(found, Vec::<String>::new());
    }

    #[test]
    fn escapes_in_links_and_ids_are_decoded() {
        let page = "<h2 id=\"a&amp;b\">x</h2><a href=\"#a%26b\">y</a><a href=\"ch.html?x=1&amp;y=2#s\">z</a>";
        let (_dir, found) = book(&[("ch.html", GOOD), ("e.html", page), OTHER, PLOT]);
        assert_eq!(found, Vec::<String>::new());
    }
}
