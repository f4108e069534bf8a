//! Exercise regions: the lines between `// EXERCISE <id> BEGIN` and `// EXERCISE <id> END`
//! in the reference code, and what the student's copy holds there instead (a stub).
//!
//! A marker is a line that holds only the marker comment (indentation aside). Regions do
//! not nest and never cross: each BEGIN is closed by the END of the same id before the next
//! marker. The markers stay in the student's copy, so the grader can tell a region that
//! still holds its stub (not started) from one the student has written.

use std::fmt;

/// The comment that starts every marker line.
pub const MARKER: &str = "// EXERCISE ";

/// One region of a file: the marker lines and what lies between them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Region {
    /// The exercise id.
    pub id: String,
    /// Line index (from 0) of the BEGIN marker.
    pub begin: usize,
    /// Line index of the END marker.
    pub end: usize,
    /// The BEGIN marker's indentation, which the stub takes.
    pub indent: String,
}

impl Region {
    /// The body: the lines strictly between the markers.
    pub fn body<'a>(&self, lines: &[&'a str]) -> Vec<&'a str> {
        lines[self.begin + 1..self.end].to_vec()
    }
}

/// A malformed marker, with its line number (from 1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MarkerError {
    /// Line number, from 1.
    pub line: usize,
    /// What is wrong.
    pub what: String,
}

impl fmt::Display for MarkerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.what)
    }
}

impl std::error::Error for MarkerError {}

/// A marker line, parsed: (id, is BEGIN).
fn parse_marker(line: &str) -> Option<Result<(String, bool), String>> {
    let rest = line.trim().strip_prefix(MARKER.trim_end())?;
    let words: Vec<&str> = rest.split_whitespace().collect();
    Some(match words.as_slice() {
        [id, "BEGIN"] => Ok((id.to_string(), true)),
        [id, "END"] => Ok((id.to_string(), false)),
        _ => Err(format!("a marker is `{MARKER}<id> BEGIN` or `{MARKER}<id> END`, alone on its line: {}", line.trim())),
    })
}

/// Every region of `text`, in order.
///
/// # Errors
/// A malformed marker, an END without its BEGIN, a BEGIN inside another region, or a
/// region never closed.
pub fn scan(text: &str) -> Result<Vec<Region>, MarkerError> {
    let mut regions = Vec::new();
    let mut open: Option<(String, usize, String)> = None;
    for (i, line) in text.lines().enumerate() {
        let Some(marker) = parse_marker(line) else { continue };
        let (id, begin) = marker.map_err(|what| MarkerError { line: i + 1, what })?;
        match (open.take(), begin) {
            (None, true) => {
                let indent: String = line.chars().take_while(|c| c.is_whitespace()).collect();
                open = Some((id, i, indent));
            }
            (None, false) => {
                return Err(MarkerError { line: i + 1, what: format!("END of exercise {id} without its BEGIN") });
            }
            (Some((open_id, at, _)), true) => {
                return Err(MarkerError {
                    line: i + 1,
                    what: format!("BEGIN of exercise {id} inside the region of {open_id} opened at line {}", at + 1),
                });
            }
            (Some((open_id, at, indent)), false) => {
                if open_id != id {
                    return Err(MarkerError {
                        line: i + 1,
                        what: format!("END of exercise {id} closes the region of {open_id} opened at line {}", at + 1),
                    });
                }
                regions.push(Region { id, begin: at, end: i, indent });
            }
        }
    }
    match open {
        Some((id, at, _)) => {
            Err(MarkerError { line: at + 1, what: format!("the region of exercise {id} is never closed") })
        }
        None => Ok(regions),
    }
}

/// Whether a body holds code: a line that is neither blank nor a comment.
pub fn has_code(body: &[&str]) -> bool {
    body.iter().any(|l| {
        let t = l.trim();
        !t.is_empty() && !t.starts_with("//")
    })
}

/// `lines` with each non-blank line indented by `indent` (a replacement file is stored
/// without the indentation of the place it goes to).
pub fn indented(lines: &str, indent: &str) -> Vec<String> {
    lines.lines().map(|l| if l.trim().is_empty() { String::new() } else { format!("{indent}{l}") }).collect()
}

/// Whether `body` is `stub` (line by line, trailing whitespace aside).
pub fn is_stub(body: &[&str], stub: &[String]) -> bool {
    body.len() == stub.len() && body.iter().zip(stub).all(|(b, s)| b.trim_end() == s.trim_end())
}

/// `text` with the body of every region for which `stub` returns lines replaced by them
/// (the markers stay). The line ending of the original is kept.
pub fn replace_bodies(
    text: &str,
    regions: &[Region],
    mut stub: impl FnMut(usize, &Region) -> Option<Vec<String>>,
) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::with_capacity(lines.len());
    let mut next = 0;
    for (n, r) in regions.iter().enumerate() {
        let Some(replacement) = stub(n, r) else { continue };
        out.extend(lines[next..=r.begin].iter().map(|l| l.to_string()));
        out.extend(replacement);
        next = r.end;
    }
    out.extend(lines[next..].iter().map(|l| l.to_string()));
    let mut joined = out.join("\n");
    if text.ends_with('\n') {
        joined.push('\n');
    }
    joined
}

/// Normalise code for a search: whitespace removed, so that re-indenting or re-wrapping a
/// copy does not hide it.
pub fn squash(text: &str) -> String {
    text.chars().filter(|c| !c.is_whitespace()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Fixtures write `@@` for the marker comment, so that this file holds no marker line
    /// of its own for the repository's scan to find.
    fn fixture(s: &str) -> String {
        s.replace("@@", MARKER.trim_end())
    }

    /// Regions are found with their id, lines and indentation; markers stay in place when
    /// a body is replaced.
    #[test]
    fn scan_and_replace() {
        let text = fixture(
            "fn a() -> u32 {\n    @@ 01-x BEGIN\n    1 + 1\n    @@ 01-x END\n}\nfn b() {\n  @@ 02-y BEGIN\n  @@ 02-y END\n}\n",
        );
        let regions = scan(&text).unwrap();
        assert_eq!(regions.len(), 2);
        assert_eq!((regions[0].id.as_str(), regions[0].begin, regions[0].end), ("01-x", 1, 3));
        assert_eq!(regions[0].indent, "    ");
        let lines: Vec<&str> = text.lines().collect();
        assert!(has_code(&regions[0].body(&lines)));
        assert!(!has_code(&regions[1].body(&lines)), "an empty hole has no code");
        let stubbed =
            replace_bodies(&text, &regions, |_, r| (r.id == "01-x").then(|| vec![format!("{}todo!();", r.indent)]));
        assert_eq!(
            stubbed,
            fixture(
                "fn a() -> u32 {\n    @@ 01-x BEGIN\n    todo!();\n    @@ 01-x END\n}\nfn b() {\n  @@ 02-y BEGIN\n  @@ 02-y END\n}\n"
            )
        );
        let again = scan(&stubbed).unwrap();
        let lines: Vec<&str> = stubbed.lines().collect();
        assert!(is_stub(&again[0].body(&lines), &["    todo!();".to_string()]));
    }

    /// Every way markers can be wrong is an error naming the line.
    #[test]
    fn malformed_markers_are_refused() {
        let cases = [
            ("@@ 01-x BEGIN\n@@ 01-x BEGIN\n", 2, "inside the region"),
            ("@@ 01-x END\n", 1, "without its BEGIN"),
            ("@@ 01-x BEGIN\n@@ 02-y END\n", 2, "closes the region of 01-x"),
            ("x\n@@ 01-x BEGIN\n", 2, "never closed"),
            ("@@ 01-x BEGIN now\n", 1, "alone on its line"),
        ];
        for (text, line, words) in cases {
            let err = scan(&fixture(text)).unwrap_err();
            assert_eq!(err.line, line, "{text}: {err}");
            assert!(err.what.contains(words), "{text}: {err}");
        }
    }

    /// A replacement file is indented to its place; blank lines stay blank.
    #[test]
    fn replacement_is_indented() {
        assert_eq!(indented("a\n\n  b\n", "    "), vec!["    a", "", "      b"]);
    }
}
