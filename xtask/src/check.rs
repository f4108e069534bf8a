//! `cargo xtask check-exercises`: the proof that the coursework is real. Every grader
//! passes on this tree; the exported tree builds; each exercise's grader fails on its stub
//! with the text the manifest expects (not a compile error, not a timeout), in a tree
//! where the exercises it requires are solved; the manifest names only tests that exist;
//! every hole holds code; no solution is left in the export.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};

use crate::export;
use crate::grade::{self, Ctx, Options, Verdict};
use crate::manifest::{self, Manifest, Stub, Target};
use crate::regions;
use crate::run;
use crate::tree;

/// How to check.
#[derive(Clone, Debug, Default)]
pub struct CheckOptions {
    /// Only these exercises (all when empty).
    pub only: Vec<String>,
    /// Where to build the stubbed trees (default `target/xtask/check` under the root).
    pub scratch: Option<PathBuf>,
    /// Echo progress (the tests' own output is never echoed).
    pub quiet: bool,
}

/// The problems found, each a line a maintainer can act on.
#[derive(Debug, Default)]
pub struct Report {
    /// Every problem.
    pub problems: Vec<String>,
}

impl Report {
    /// Whether the coursework is sound.
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }
}

fn step(quiet: bool, what: &str) -> (Instant, &str) {
    if !quiet {
        println!("== {what}");
    }
    (Instant::now(), what)
}

fn done(quiet: bool, (t0, what): (Instant, &str), problems_before: usize, report: &Report) {
    if !quiet {
        let new = report.problems.len() - problems_before;
        let verdict = if new == 0 { "ok".to_string() } else { format!("{new} problem(s)") };
        println!("   {what}: {verdict} ({:.0} s)", t0.elapsed().as_secs_f64());
    }
}

/// The name of the nearest `fn` that encloses line `at` of `lines`.
fn enclosing_fn(lines: &[&str], at: usize) -> Option<String> {
    lines[..at].iter().rev().find_map(|l| {
        let mut words = l.split_whitespace();
        words.by_ref().find(|w| *w == "fn")?;
        let name: String = words.next()?.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
        (!name.is_empty()).then_some(name)
    })
}

/// The checks that need no build: markers, regions, holes, chapters, replacement files.
///
/// # Errors
/// When the tree cannot be listed.
pub fn static_checks(root: &Path, manifest: &Manifest) -> Result<Vec<String>> {
    let mut problems = Vec::new();
    let listed = manifest.files();
    if let Ok(summary) = std::fs::read_to_string(root.join("book/src/SUMMARY.md")) {
        let chapters = manifest::chapters(&summary);
        for e in &manifest.exercises {
            if !chapters.contains_key(&e.chapter) {
                problems.push(format!("{}: the book has no chapter {}", e.id, e.chapter));
            }
        }
    }
    for file in tree::files(root)? {
        let rel = file.to_string_lossy().into_owned();
        if !rel.ends_with(".rs") || listed.contains(rel.as_str()) {
            continue;
        }
        match std::fs::read_to_string(root.join(&file)).map(|t| regions::scan(&t)) {
            Ok(Ok(found)) if !found.is_empty() => {
                let ids: BTreeSet<&str> = found.iter().map(|r| r.id.as_str()).collect();
                problems.push(format!("{rel}: regions of {ids:?} that {} does not list", manifest::MANIFEST));
            }
            Ok(Err(e)) => problems.push(format!("{rel}: {e}")),
            _ => {}
        }
    }
    for file in listed {
        let fr = match tree::file_regions(root, file) {
            Ok(fr) => fr,
            Err(e) => {
                problems.push(format!("{e:#}"));
                continue;
            }
        };
        let specs = match tree::match_regions(manifest, file, &fr.regions) {
            Ok(s) => s,
            Err(e) => {
                problems.push(format!("{e:#}"));
                continue;
            }
        };
        let lines: Vec<&str> = fr.text.lines().collect();
        for ((e, spec), r) in specs.iter().zip(&fr.regions) {
            let at = format!("{}: {file}:{}", e.id, r.begin + 1);
            let want = spec.within.rsplit("::").next().unwrap_or_default();
            match enclosing_fn(&lines, r.begin) {
                Some(name) if name == want => {}
                other => {
                    problems.push(format!("{at}: the region is in fn {other:?}, the manifest says {}", spec.within))
                }
            }
            let body = r.body(&lines);
            if !regions::has_code(&body) {
                problems.push(format!("{at}: the hole is empty: the region must hold the reference code"));
            }
            if spec.stub == Stub::File {
                match e.stub_lines(spec, &r.indent, root) {
                    Ok(stub) if !regions::has_code(&stub.iter().map(String::as_str).collect::<Vec<_>>()) => {
                        problems.push(format!("{at}: the replacement holds no code"));
                    }
                    Ok(stub) if regions::squash(&stub.join("\n")) == regions::squash(&body.join("\n")) => {
                        problems.push(format!("{at}: the replacement is the reference code itself"));
                    }
                    Ok(_) => {}
                    Err(err) => problems.push(format!("{at}: {err:#}")),
                }
            }
        }
    }
    Ok(problems)
}

/// Build every grader's targets in `ctx`'s tree and check that each named test exists
/// (`--list`).
fn tests_exist(ctx: &Ctx<'_>, exercises: &[&manifest::Exercise], report: &mut Report) -> Result<()> {
    let targets: Vec<Target> =
        exercises.iter().flat_map(|e| e.grader.iter()).map(|r| r.target()).collect::<Result<_>>()?;
    let exes = match grade::build(ctx, &targets, false)? {
        Ok(exes) => exes,
        Err(errors) => {
            report.problems.push(format!("this tree does not build:\n{errors}"));
            return Ok(());
        }
    };
    let packages = grade::packages(ctx)?;
    let mut listed: BTreeMap<(String, String), BTreeSet<String>> = BTreeMap::new();
    for e in exercises {
        for r in &e.grader {
            let key = (r.package.clone(), r.target.clone());
            if !listed.contains_key(&key) {
                let Some(manifest_path) = packages.get(&r.package) else {
                    report.problems.push(format!("{}: no package {}", e.id, r.package));
                    continue;
                };
                let Some(exe) = exes.get(&(manifest_path.clone(), r.target()?)) else {
                    report.problems.push(format!("{}: no test executable for -p {} {}", e.id, r.package, r.target));
                    continue;
                };
                let mut cmd = std::process::Command::new(exe);
                cmd.args(["--list", "--format", "terse"]).current_dir(manifest_path.parent().unwrap_or(ctx.root));
                let out = run::run(cmd, std::time::Duration::from_secs(120), false)?;
                let names = out.stdout.lines().filter_map(|l| l.strip_suffix(": test")).map(str::to_string).collect();
                listed.insert(key.clone(), names);
            }
            if let Some(names) = listed.get(&key) {
                for t in &r.tests {
                    if !names.contains(t) {
                        report.problems.push(format!("{}: -p {} {} has no test named {t}", e.id, r.package, r.target));
                    }
                }
            }
        }
    }
    Ok(())
}

/// What went wrong when the stub of `e` was graded, if anything.
fn judge_stub(manifest: &Manifest, e: &manifest::Exercise, graded: Result<grade::Graded>) -> Option<String> {
    let graded = match graded {
        Ok(g) => g,
        Err(err) => return Some(format!("{}: its grader cannot judge the stub: {err:#}", e.id)),
    };
    match &graded.verdict {
        Verdict::Pass { .. } => {
            Some(format!("{}: its stub passes its grader: a grader that cannot fail proves nothing", e.id))
        }
        Verdict::DoesNotCompile(errors) => {
            Some(format!("{}: the tree with its stub does not compile:\n{errors}", e.id))
        }
        Verdict::TimedOut { .. } | Verdict::Crashed { .. } => {
            Some(format!("{}: on its stub, {} (a stub must fail by a test's verdict)", e.id, graded.verdict.summary()))
        }
        Verdict::Fail { failed, .. } => {
            if e.expect.iter().any(|x| graded.output.contains(x.as_str())) {
                return None;
            }
            let blocking: Vec<&str> = manifest
                .exercises
                .iter()
                .filter(|o| o.id != e.id && graded.output.contains(&o.stub_message()))
                .map(|o| o.id.as_str())
                .collect();
            Some(if blocking.is_empty() {
                let first = failed.first().map(|(t, m)| format!("{t}: {m}")).unwrap_or_default();
                format!("{}: its stub fails without any of {:?}; the first failure: {first}", e.id, e.expect)
            } else {
                format!("{}: its grader stops at the stub of {} first: add it to requires", e.id, blocking.join(", "))
            })
        }
    }
}

/// Run every check; the report lists what is wrong.
///
/// # Errors
/// When a check cannot be run at all (git, cargo, the file system), or it is interrupted.
pub fn check(ctx: &Ctx<'_>, opts: &CheckOptions) -> Result<Report> {
    let quiet = opts.quiet;
    let started = Instant::now();
    let manifest = ctx.manifest;
    let mut report = Report::default();
    let selected: Vec<&manifest::Exercise> = if opts.only.is_empty() {
        manifest.exercises.iter().collect()
    } else {
        opts.only.iter().map(|id| manifest.get(id)).collect::<Result<_>>()?
    };

    let s = step(quiet, "markers, holes and regions match the manifest");
    let before = report.problems.len();
    report.problems.extend(static_checks(ctx.root, manifest)?);
    done(quiet, s, before, &report);

    let s = step(quiet, "the manifest names only tests that exist");
    let before = report.problems.len();
    tests_exist(ctx, &selected, &mut report)?;
    done(quiet, s, before, &report);

    let s = step(quiet, "every grader passes on this tree");
    let before = report.problems.len();
    let quietly = Options { quiet: true, ..Options::default() };
    for e in &selected {
        let t0 = Instant::now();
        let outcome = grade::grade(ctx, e, &quietly);
        let line = match &outcome {
            Ok(g) => g.verdict.summary(),
            Err(err) => format!("cannot grade: {err:#}"),
        };
        if !quiet {
            println!("   {:<20} {line} ({:.0} s)", e.id, t0.elapsed().as_secs_f64());
        }
        match outcome {
            Ok(g) if g.verdict.passed() => {}
            Ok(g) => {
                let why = match &g.verdict {
                    Verdict::Fail { failed, .. } => {
                        failed.iter().map(|(t, m)| format!("\n     {t}: {m}")).collect::<String>()
                    }
                    Verdict::DoesNotCompile(errors) => format!("\n{errors}"),
                    other => format!(" {}", other.summary()),
                };
                report.problems.push(format!("{}: its grader fails on the reference code:{why}", e.id));
            }
            Err(err) => report.problems.push(format!("{}: {err:#}", e.id)),
        }
    }
    done(quiet, s, before, &report);

    let s = step(quiet, "the exported tree builds and holds no solution");
    let before = report.problems.len();
    let scratch = opts.scratch.clone().unwrap_or_else(|| ctx.root.join("target/xtask/check/tree"));
    let all: HashSet<&str> = manifest.exercises.iter().map(|e| e.id.as_str()).collect();
    let exported = export::render_tree(ctx.root, manifest, &all)?;
    for (id, path) in export::solutions_in(ctx.root, manifest, &exported)? {
        report.problems.push(format!("{id}: its solution is still in the export, in {}", path.display()));
    }
    std::fs::create_dir_all(&scratch).with_context(|| format!("cannot create {}", scratch.display()))?;
    let mut exported = exported;
    export::set_apart(&mut exported)?;
    export::write_tree(&scratch, &exported)?;
    let target_dir = ctx.target_dir.clone().unwrap_or_else(|| ctx.root.join("target"));
    let scratch_ctx = Ctx { root: &scratch, manifest, cargo: ctx.cargo.clone(), target_dir: Some(target_dir.clone()) };
    let mut check_cmd = std::process::Command::new(&ctx.cargo);
    check_cmd.args(["check", "--workspace", "--all-targets", "--quiet"]).current_dir(&scratch);
    check_cmd.env("CARGO_TARGET_DIR", &target_dir);
    let checked = run::run(check_cmd, grade::BUILD_TIMEOUT, false)?;
    if !checked.success() {
        report.problems.push(format!("the exported tree does not build:\n{}", grade::tail(&checked.stderr, 60)));
    }
    done(quiet, s, before, &report);

    let s = step(quiet, "every grader fails on its stub, with the text the manifest expects");
    let before = report.problems.len();
    // One tree per set of solved prerequisites: the export with those solutions put back.
    let mut groups: BTreeMap<(usize, BTreeSet<String>), Vec<&manifest::Exercise>> = BTreeMap::new();
    for e in &selected {
        let closure = manifest.closure(&e.id)?;
        groups.entry((closure.len(), closure)).or_default().push(e);
    }
    for ((_, solved), exercises) in &groups {
        let stubbed: HashSet<&str> = all.iter().copied().filter(|id| !solved.contains(*id)).collect();
        let mut files = export::render_tree(ctx.root, manifest, &stubbed)?;
        export::set_apart(&mut files)?;
        let changed = export::write_tree(&scratch, &files)?;
        if !quiet {
            let solved: Vec<&str> = solved.iter().map(String::as_str).collect();
            println!(
                "   with {} solved ({changed} files changed):",
                if solved.is_empty() { "none".into() } else { solved.join(", ") }
            );
        }
        for e in exercises {
            let t0 = Instant::now();
            let graded = grade::grade(&scratch_ctx, e, &quietly);
            let line = match &graded {
                Ok(g) => g.verdict.summary(),
                Err(err) => format!("cannot grade: {err:#}"),
            };
            let problem = judge_stub(manifest, e, graded);
            if !quiet {
                let verdict = if problem.is_none() { "fails as expected" } else { "PROBLEM" };
                println!("   {:<20} {verdict}: {line} ({:.0} s)", e.id, t0.elapsed().as_secs_f64());
            }
            report.problems.extend(problem);
        }
    }
    done(quiet, s, before, &report);

    if !quiet {
        println!("check-exercises: {} problem(s) in {:.0} s", report.problems.len(), started.elapsed().as_secs_f64());
        for p in &report.problems {
            println!("- {p}");
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The enclosing function is found past closures and blocks.
    #[test]
    fn finds_the_enclosing_fn() {
        let lines = ["impl X {", "    pub fn apply<T>(&self) -> u32 {", "        let f = |x| x;", "        {", "x"];
        assert_eq!(enclosing_fn(&lines, 4).as_deref(), Some("apply"));
        assert_eq!(enclosing_fn(&lines, 1), None);
    }
}
