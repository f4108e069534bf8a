//! `exercises/exercises.toml`: what each exercise opens, how it is graded, what its stub
//! must make the grader say, and its hints.

use std::collections::{BTreeSet, HashMap};
use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context, Result, bail, ensure};
use serde::Deserialize;

/// Where the manifest lives, relative to the repository root.
pub const MANIFEST: &str = "exercises/exercises.toml";

/// The whole manifest.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// The exercises, in the order the book gives them.
    #[serde(rename = "exercise")]
    pub exercises: Vec<Exercise>,
}

/// One exercise.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Exercise {
    /// `NN-name`, e.g. `03-blocking`.
    pub id: String,
    /// What the student writes, in a few words.
    pub title: String,
    /// The book chapter it ends (mdBook's number).
    pub chapter: u32,
    /// Exercises that must be solved before this one's grader can pass.
    #[serde(default)]
    pub requires: Vec<String>,
    /// The regions it opens, in file order.
    pub regions: Vec<RegionSpec>,
    /// The test runs that grade it.
    pub grader: Vec<Run>,
    /// A failing stub's grader output contains one of these.
    pub expect: Vec<String>,
    /// Three hints, from gentle to explicit.
    pub hints: Vec<String>,
    /// How long a test run may take, seconds (default 600; `--thorough` allows four times
    /// as long).
    pub timeout_s: Option<u64>,
    /// What the other exercises' graders need while this one still holds its stub.
    pub while_not_started: Option<WhileNotStarted>,
}

/// How other graders run without an exercise that is still a stub.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WhileNotStarted {
    /// It applies to a grader with a test whose name contains this.
    pub tests_matching: String,
    /// The environment such a grader runs with.
    pub env: HashMap<String, String>,
    /// What `grade` says when it sets it.
    pub note: String,
}

/// One region of an exercise.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegionSpec {
    /// The file, relative to the root.
    pub file: String,
    /// The function the region is in (`Type::method` or `function`); its last segment
    /// names the nearest enclosing `fn`.
    pub within: String,
    /// What the student's copy holds instead of the body.
    #[serde(default)]
    pub stub: Stub,
    /// With `stub = "file"`: the file whose lines replace the body.
    pub replacement: Option<String>,
}

/// The kinds of stub.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Stub {
    /// `todo!("exercise <id>: chapter <n>; run cargo xtask hint <id>");`
    #[default]
    Todo,
    /// A comment saying the same: for a body that must not panic (a `Drop`, which runs
    /// while another panic unwinds, where a second panic aborts the whole test binary).
    Comment,
    /// The lines of [`RegionSpec::replacement`]: code given to the student to fix.
    File,
}

/// One test run of a grader: `cargo test -p <package> <target> -- --exact <tests>`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Run {
    /// The package.
    pub package: String,
    /// `--lib` or `--test <name>`.
    pub target: String,
    /// Exact test names.
    pub tests: Vec<String>,
}

/// A test target: the library's unit tests or one integration test.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Target {
    /// `--lib`.
    Lib,
    /// `--test <name>`.
    Test(String),
}

impl Run {
    /// The target this run selects.
    ///
    /// # Errors
    /// When `target` is neither `--lib` nor `--test <name>`.
    pub fn target(&self) -> Result<Target> {
        match self.target.split_whitespace().collect::<Vec<_>>().as_slice() {
            ["--lib"] => Ok(Target::Lib),
            ["--test", name] => Ok(Target::Test(name.to_string())),
            _ => bail!("target {:?} is neither \"--lib\" nor \"--test <name>\"", self.target),
        }
    }

    /// The command a student would type to run it.
    pub fn command(&self) -> String {
        format!("cargo test -p {} {} -- --exact {}", self.package, self.target, self.tests.join(" "))
    }
}

impl Exercise {
    /// The panic message of the `todo!` stub (without `not yet implemented: `).
    pub fn stub_message(&self) -> String {
        format!("exercise {}: chapter {}; run cargo xtask hint {}", self.id, self.chapter, self.id)
    }

    /// The lines that replace region `spec`'s body in the student's copy, at `indent`.
    ///
    /// # Errors
    /// When a replacement file cannot be read.
    pub fn stub_lines(&self, spec: &RegionSpec, indent: &str, root: &Path) -> Result<Vec<String>> {
        Ok(match spec.stub {
            Stub::Todo => vec![format!("{indent}todo!(\"{}\");", self.stub_message())],
            Stub::Comment => vec![format!(
                "{indent}// exercise {}: chapter {}; write this, then cargo xtask grade {} (stuck? cargo xtask hint {})",
                self.id, self.chapter, self.id, self.id
            )],
            Stub::File => {
                let path = spec.replacement.as_deref().context("stub = \"file\" needs a replacement")?;
                let text = std::fs::read_to_string(root.join(path))
                    .with_context(|| format!("{}: cannot read the replacement {path}", self.id))?;
                crate::regions::indented(&text, indent)
            }
        })
    }

    /// The timeout of one test run.
    pub fn timeout(&self, thorough: bool) -> std::time::Duration {
        let s = self.timeout_s.unwrap_or(600);
        std::time::Duration::from_secs(if thorough { s * 4 } else { s })
    }
}

impl Manifest {
    /// Read and validate the manifest under `root`.
    ///
    /// # Errors
    /// A parse error or a broken rule of [`Manifest::validate`].
    pub fn load(root: &Path) -> Result<Manifest> {
        let path = root.join(MANIFEST);
        let text = std::fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
        let manifest: Manifest = toml::from_str(&text).with_context(|| format!("{} does not parse", path.display()))?;
        manifest.validate()?;
        Ok(manifest)
    }

    /// The rules a manifest keeps on its own (the files are checked by `check-exercises`):
    /// ids of the form `NN-name`, unique, in order; three hints; at least one region, one
    /// run and one test; `requires` naming earlier-known ids, without cycles; stubs of kind
    /// `file` with a replacement and only they.
    ///
    /// # Errors
    /// Every broken rule, one per line.
    pub fn validate(&self) -> Result<()> {
        let mut problems = Vec::new();
        let ids: BTreeSet<&str> = self.exercises.iter().map(|e| e.id.as_str()).collect();
        if ids.len() != self.exercises.len() {
            problems.push("two exercises share an id".to_string());
        }
        for e in &self.exercises {
            let id = &e.id;
            let well_formed = id.len() > 3
                && id.as_bytes()[..2].iter().all(u8::is_ascii_digit)
                && id.as_bytes()[2] == b'-'
                && id[3..].bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
            if !well_formed {
                problems.push(format!("{id}: an id is two digits, a dash and a lowercase name"));
            }
            if e.hints.len() != 3 {
                problems.push(format!("{id}: {} hints, not 3 (gentle, closer, explicit)", e.hints.len()));
            }
            if e.regions.is_empty() || e.grader.is_empty() || e.grader.iter().any(|r| r.tests.is_empty()) {
                problems.push(format!("{id}: an exercise opens a region and is graded by named tests"));
            }
            if e.expect.iter().all(|x| x.trim().is_empty()) {
                problems.push(format!("{id}: no text a failing stub must produce (expect)"));
            }
            for r in &e.regions {
                match (r.stub, &r.replacement) {
                    (Stub::File, None) => {
                        problems.push(format!("{id}: {} has stub = \"file\" without a replacement", r.file))
                    }
                    (Stub::Todo | Stub::Comment, Some(_)) => {
                        problems.push(format!("{id}: {} has a replacement but stub is not \"file\"", r.file))
                    }
                    _ => {}
                }
            }
            for run in &e.grader {
                if let Err(err) = run.target() {
                    problems.push(format!("{id}: {err}"));
                }
            }
            if let Some(w) = &e.while_not_started {
                let used = self
                    .exercises
                    .iter()
                    .filter(|o| o.id != *id)
                    .flat_map(|o| &o.grader)
                    .any(|r| r.tests.iter().any(|t| t.contains(w.tests_matching.as_str())));
                if !used {
                    problems.push(format!("{id}: no other grader has a test named like {:?}", w.tests_matching));
                }
            }
            for r in &e.requires {
                if !ids.contains(r.as_str()) {
                    problems.push(format!("{id}: requires {r}, which is not an exercise"));
                }
                if r == id {
                    problems.push(format!("{id}: requires itself"));
                }
            }
        }
        for e in &self.exercises {
            if let Err(cycle) = self.closure(&e.id) {
                problems.push(cycle.to_string());
            }
        }
        ensure!(problems.is_empty(), "{MANIFEST}:\n  {}", problems.join("\n  "));
        Ok(())
    }

    /// The exercise `id`.
    ///
    /// # Errors
    /// When there is none, listing the ids.
    pub fn get(&self, id: &str) -> Result<&Exercise> {
        self.exercises.iter().find(|e| e.id == id).with_context(|| {
            let ids: Vec<&str> = self.exercises.iter().map(|e| e.id.as_str()).collect();
            format!("no exercise {id:?}; the exercises are: {}", ids.join(", "))
        })
    }

    /// Every exercise `id` requires, directly or through another.
    ///
    /// # Errors
    /// A cycle of requirements.
    pub fn closure(&self, id: &str) -> Result<BTreeSet<String>> {
        fn visit<'m>(m: &'m Manifest, id: &'m str, path: &mut Vec<&'m str>, out: &mut BTreeSet<String>) -> Result<()> {
            if path.contains(&id) {
                bail!("requires form a cycle: {} -> {id}", path.join(" -> "));
            }
            let Some(e) = m.exercises.iter().find(|e| e.id == id) else { return Ok(()) };
            path.push(id);
            for r in &e.requires {
                out.insert(r.clone());
                visit(m, r, path, out)?;
            }
            path.pop();
            Ok(())
        }
        let mut out = BTreeSet::new();
        visit(self, id, &mut Vec::new(), &mut out)?;
        Ok(out)
    }

    /// The files that hold regions.
    pub fn files(&self) -> BTreeSet<&str> {
        self.exercises.iter().flat_map(|e| e.regions.iter().map(|r| r.file.as_str())).collect()
    }

    /// The exercises as a Markdown table (the book's chapter on exercises holds it,
    /// checked by a test): id, what to write, the chapter (linked), what it requires and
    /// the tests that grade it. `chapters` maps a chapter number to its page.
    pub fn markdown(&self, chapters: &HashMap<u32, (String, String)>) -> String {
        let mut s = String::new();
        s.push_str("| exercise | what you write | chapter | requires | graded by |\n");
        s.push_str("|---|---|---|---|---|\n");
        for e in &self.exercises {
            let chapter = match chapters.get(&e.chapter) {
                Some((title, page)) => format!("[{}. {title}]({page})", e.chapter),
                None => e.chapter.to_string(),
            };
            let requires = if e.requires.is_empty() { "-".to_string() } else { e.requires.join(", ") };
            let graded: Vec<String> = e
                .grader
                .iter()
                .map(|r| {
                    let tests = r.tests.len();
                    format!("`-p {} {}` ({tests} test{})", r.package, r.target, if tests == 1 { "" } else { "s" })
                })
                .collect();
            let _ = writeln!(s, "| `{}` | {} | {chapter} | {requires} | {} |", e.id, e.title, graded.join(", "));
        }
        s
    }
}

/// The numbered chapters of `book/src/SUMMARY.md`: number -> (title, page). mdBook numbers
/// the top-level list items in order, across part headings (`# Reference`); prefix and
/// suffix chapters (plain links, not list items) and nested items are not counted.
pub fn chapters(summary: &str) -> HashMap<u32, (String, String)> {
    let mut out = HashMap::new();
    let mut n = 0;
    for line in summary.lines() {
        let Some(item) = line.strip_prefix("- [") else { continue };
        let Some((title, rest)) = item.split_once("](") else { continue };
        let page = rest.trim_end_matches(')').to_string();
        n += 1;
        out.insert(n, (title.to_string(), page));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMALL: &str = r#"
[[exercise]]
id = "01-a"
title = "A"
chapter = 1
regions = [{ file = "a.rs", within = "f" }]
grader = [{ package = "p", target = "--lib", tests = ["t"] }]
expect = ["exercise 01-a"]
hints = ["1", "2", "3"]

[[exercise]]
id = "02-b"
title = "B"
chapter = 2
requires = ["01-a"]
regions = [{ file = "b.rs", within = "g", stub = "file", replacement = "x.rs" }]
grader = [{ package = "p", target = "--test t", tests = ["u"] }]
expect = ["rule"]
hints = ["1", "2", "3"]
"#;

    /// A well-formed manifest parses, with its closure of requirements.
    #[test]
    fn parses_and_closes() {
        let m: Manifest = toml::from_str(SMALL).unwrap();
        m.validate().unwrap();
        assert_eq!(m.closure("02-b").unwrap(), BTreeSet::from(["01-a".to_string()]));
        assert_eq!(m.exercises[1].grader[0].target().unwrap(), Target::Test("t".into()));
        assert_eq!(m.exercises[1].regions[0].stub, Stub::File);
    }

    /// Broken manifests are refused with every problem named.
    #[test]
    fn broken_manifests_are_refused() {
        let cycle = SMALL.replacen("chapter = 1\n", "chapter = 1\nrequires = [\"02-b\"]\n", 1);
        let m: Manifest = toml::from_str(&cycle).unwrap();
        assert!(m.validate().unwrap_err().to_string().contains("cycle"));
        let two_hints = SMALL.replacen("hints = [\"1\", \"2\", \"3\"]", "hints = [\"1\", \"2\"]", 1);
        let m: Manifest = toml::from_str(&two_hints).unwrap();
        assert!(m.validate().unwrap_err().to_string().contains("2 hints"));
        let bad_target = SMALL.replacen("--lib", "--bench x", 1);
        let m: Manifest = toml::from_str(&bad_target).unwrap();
        assert!(m.validate().unwrap_err().to_string().contains("neither"));
        let unknown = SMALL.replacen("requires = [\"01-a\"]", "requires = [\"09-z\"]", 1);
        let m: Manifest = toml::from_str(&unknown).unwrap();
        assert!(m.validate().unwrap_err().to_string().contains("09-z"));
        assert!(toml::from_str::<Manifest>(&SMALL.replacen("title", "titel", 1)).is_err(), "unknown fields");
    }

    /// Chapters are numbered as mdBook numbers them.
    #[test]
    fn chapter_numbers() {
        let summary = "# Summary\n\n[Start](intro.md)\n\n- [One](one.md)\n- [Two](two.md)\n  - [Sub](sub.md)\n\n# Reference\n\n- [Ex](ex.md)\n";
        let c = chapters(summary);
        assert_eq!(c.len(), 3);
        assert_eq!(c[&2], ("Two".to_string(), "two.md".to_string()));
        assert_eq!(c[&3], ("Ex".to_string(), "ex.md".to_string()), "numbering goes on across parts");
    }
}
