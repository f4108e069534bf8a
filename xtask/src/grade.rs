//! Grading one exercise: build its test targets, run its tests by exact name in their own
//! process group under a timeout, and say what failed in the words of the failing check.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde_json::Value;

use crate::manifest::{Exercise, Manifest, Target};
use crate::run::{self, Finished, Status};
use crate::tree::{self, Progress};

/// How long a build may take. Generous: the first build of a tree on a busy 2-core machine
/// takes many minutes, and a slow build is not the student's fault.
pub const BUILD_TIMEOUT: Duration = Duration::from_secs(3600);

/// The effort a `--thorough` grade asks of the conformance suite.
const THOROUGH_CASES: &str = "256";
const THOROUGH_ROUNDS: &str = "12";

/// Where and how to grade.
pub struct Ctx<'a> {
    /// The tree's root.
    pub root: &'a Path,
    /// Its manifest.
    pub manifest: &'a Manifest,
    /// `cargo`.
    pub cargo: PathBuf,
    /// The target directory to build in (`None`: cargo's default for the tree).
    pub target_dir: Option<PathBuf>,
}

impl Ctx<'_> {
    fn cargo(&self) -> Command {
        let mut cmd = Command::new(&self.cargo);
        cmd.current_dir(self.root);
        if let Some(dir) = &self.target_dir {
            cmd.env("CARGO_TARGET_DIR", dir);
        }
        cmd
    }
}

/// How to grade.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// More cases, more rounds, a fresh seed.
    pub thorough: bool,
    /// The seed of a thorough run (fresh when `None`).
    pub seed: Option<u64>,
    /// Echo the build and the tests as they run.
    pub verbose: bool,
    /// Print nothing (the caller reports).
    pub quiet: bool,
}

/// What a grade found.
#[derive(Debug)]
pub enum Verdict {
    /// Every test passed.
    Pass {
        /// How many.
        tests: usize,
    },
    /// Some tests failed: (test, what it said).
    Fail {
        /// The failures, in the manifest's order.
        failed: Vec<(String, String)>,
        /// How many tests ran.
        tests: usize,
    },
    /// The code does not compile: the compiler's errors.
    DoesNotCompile(String),
    /// A test run went past its time and was killed (with everything it started).
    TimedOut {
        /// The run.
        run: String,
        /// Its limit.
        after: Duration,
    },
    /// A test binary died of a signal (an abort, a stack overflow).
    Crashed {
        /// The run.
        run: String,
        /// The signal.
        signal: String,
        /// The end of its output.
        tail: String,
    },
}

impl Verdict {
    /// Whether the exercise passed.
    pub fn passed(&self) -> bool {
        matches!(self, Verdict::Pass { .. })
    }

    /// One line: `PASS (7 tests)`, `FAIL: 2 of 7 tests failed`, ...
    pub fn summary(&self) -> String {
        match self {
            Verdict::Pass { tests } => format!("PASS ({tests} tests)"),
            Verdict::Fail { failed, tests } => format!("FAIL: {} of {tests} tests failed", failed.len()),
            Verdict::DoesNotCompile(_) => "FAIL: the code does not compile".into(),
            Verdict::TimedOut { run, after } => format!("FAIL: timed out after {} s ({run})", after.as_secs()),
            Verdict::Crashed { run, signal, .. } => format!("FAIL: the test binary crashed with {signal} ({run})"),
        }
    }
}

/// A grade: the verdict, and everything the tests printed (for the expected-text check).
#[derive(Debug)]
pub struct Graded {
    /// The verdict.
    pub verdict: Verdict,
    /// The tests' whole output.
    pub output: String,
}

/// A grader that cannot judge: not the student's fault.
#[derive(Debug, thiserror::Error)]
pub enum GraderError {
    /// A run in which no test executed.
    #[error("{run}: no test ran; the manifest's test names match nothing in this binary")]
    NothingRan {
        /// The run.
        run: String,
    },
    /// Tests the manifest names that did not run.
    #[error("{run}: the manifest names tests that did not run: {missing}")]
    Missing {
        /// The run.
        run: String,
        /// Their names.
        missing: String,
    },
    /// The build left no executable for a target.
    #[error("the build made no test executable for -p {package} {target}")]
    NoExecutable {
        /// The package.
        package: String,
        /// The target.
        target: String,
    },
}

/// The packages of the workspace: name -> manifest path.
pub fn packages(ctx: &Ctx<'_>) -> Result<HashMap<String, PathBuf>> {
    let out = ctx
        .cargo()
        .args(["metadata", "--no-deps", "--format-version", "1"])
        .output()
        .context("running cargo metadata")?;
    if !out.status.success() {
        bail!("cargo metadata failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let meta: Value = serde_json::from_slice(&out.stdout).context("cargo metadata's output")?;
    let mut map = HashMap::new();
    for p in meta["packages"].as_array().into_iter().flatten() {
        if let (Some(name), Some(path)) = (p["name"].as_str(), p["manifest_path"].as_str()) {
            map.insert(name.to_string(), PathBuf::from(path));
        }
    }
    Ok(map)
}

/// Test executables by (package manifest, target).
pub type Executables = HashMap<(PathBuf, Target), PathBuf>;

/// Build the test targets `targets` (of any package) with the whole workspace's feature
/// resolution (so a tree `cargo test --workspace` built needs no rebuild), returning the
/// executables, or the compiler's errors.
///
/// # Errors
/// When cargo cannot be run, or is interrupted.
pub fn build(ctx: &Ctx<'_>, targets: &[Target], echo: bool) -> Result<Result<Executables, String>> {
    let mut cmd = ctx.cargo();
    cmd.args(["test", "--workspace", "--no-run", "--message-format=json"]);
    let mut names: Vec<&Target> = targets.iter().collect();
    names.sort();
    names.dedup();
    for t in names {
        match t {
            Target::Lib => cmd.arg("--lib"),
            Target::Test(name) => cmd.args(["--test", name]),
        };
    }
    let done = run::run(cmd, BUILD_TIMEOUT, false)?;
    let mut exes = Executables::new();
    let mut errors = Vec::new();
    for line in done.stdout.lines() {
        let Ok(msg) = serde_json::from_str::<Value>(line) else { continue };
        match msg["reason"].as_str() {
            Some("compiler-artifact") => {
                let (Some(exe), Some(manifest)) = (msg["executable"].as_str(), msg["manifest_path"].as_str()) else {
                    continue;
                };
                let kinds: Vec<&str> =
                    msg["target"]["kind"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
                let target = if kinds.contains(&"test") {
                    Target::Test(msg["target"]["name"].as_str().unwrap_or_default().to_string())
                } else if msg["profile"]["test"].as_bool() == Some(true)
                    && kinds.iter().any(|k| matches!(*k, "lib" | "rlib" | "proc-macro"))
                {
                    Target::Lib
                } else {
                    continue;
                };
                exes.insert((PathBuf::from(manifest), target), PathBuf::from(exe));
            }
            Some("compiler-message") if msg["message"]["level"].as_str() == Some("error") => {
                if let Some(text) = msg["message"]["rendered"].as_str() {
                    errors.push(text.to_string());
                }
            }
            _ => {}
        }
        if echo && let Some(text) = msg["message"]["rendered"].as_str() {
            eprint!("{text}");
        }
    }
    if !done.success() {
        if errors.is_empty() {
            errors.push(format!("cargo ended with {:?}:\n{}", done.status, tail(&done.stderr, 40)));
        }
        return Ok(Err(errors.join("\n")));
    }
    Ok(Ok(exes))
}

/// The last `n` lines of `text`.
pub fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// What libtest said about each test of one run.
#[derive(Debug, Default)]
pub struct TestReport {
    /// Test -> "ok", "FAILED" or "ignored".
    pub results: BTreeMap<String, String>,
    /// Test -> its captured output (for failures).
    pub blocks: BTreeMap<String, String>,
}

/// Parse libtest's human output.
pub fn parse_libtest(stdout: &str) -> TestReport {
    let mut report = TestReport::default();
    for line in stdout.lines() {
        if let Some(rest) = line.strip_prefix("test ")
            && let Some((name, result)) = rest.rsplit_once(" ... ")
        {
            // `ignored, <reason>` for an ignored test with a reason.
            let result = result.split(|c: char| !c.is_ascii_alphabetic()).next().unwrap_or_default();
            if matches!(result, "ok" | "FAILED" | "ignored") {
                report.results.insert(name.to_string(), result.to_string());
            }
        }
    }
    let mut current: Option<(String, Vec<&str>)> = None;
    for line in stdout.lines() {
        if let Some(name) = line.strip_prefix("---- ").and_then(|l| l.strip_suffix(" stdout ----")) {
            if let Some((n, body)) = current.take() {
                report.blocks.insert(n, body.join("\n").trim().to_string());
            }
            current = Some((name.to_string(), Vec::new()));
        } else if line == "failures:" || line.starts_with("test result: ") {
            if let Some((n, body)) = current.take() {
                report.blocks.insert(n, body.join("\n").trim().to_string());
            }
        } else if let Some((_, body)) = &mut current {
            body.push(line);
        }
    }
    report
}

/// A failure's message for the student: the panic, without the backtrace hint.
fn message(block: &str) -> String {
    block
        .lines()
        .filter(|l| !l.starts_with("note: run with `RUST_BACKTRACE=1`"))
        .collect::<Vec<_>>()
        .join("\n")
        .trim()
        .to_string()
}

/// Environment variables, in order.
type Env = Vec<(String, String)>;

/// The environment of a grade (and the notes that explain it): no backtraces; more effort
/// and a fresh seed when thorough; and what other exercises, still stubs, ask for.
fn environment(ctx: &Ctx<'_>, ex: &Exercise, opts: &Options, seed: u64) -> Result<(Env, Vec<String>)> {
    let mut env = vec![("RUST_BACKTRACE".to_string(), "0".to_string()), ("RUST_LIB_BACKTRACE".into(), "0".into())];
    if opts.thorough {
        env.push(("PROPTEST_CASES".into(), THOROUGH_CASES.into()));
        env.push(("SNAPLAB_STRESS_ROUNDS".into(), THOROUGH_ROUNDS.into()));
        env.push(("SNAPLAB_SEED".into(), seed.to_string()));
        env.push(("PROPTEST_RNG_SEED".into(), seed.to_string()));
    }
    let mut notes = Vec::new();
    let progress = tree::progress(ctx.root, ctx.manifest)?;
    let pending: Vec<&str> =
        ex.requires.iter().filter(|r| progress.get(*r) == Some(&Progress::NotStarted)).map(String::as_str).collect();
    if !pending.is_empty() {
        notes.push(format!(
            "{} requires {}, not started here: its tests run that code too, and stop at its todo! first",
            ex.id,
            pending.join(", ")
        ));
    }
    for other in &ctx.manifest.exercises {
        let Some(w) = &other.while_not_started else { continue };
        let applies = ex.grader.iter().flat_map(|r| &r.tests).any(|t| t.contains(w.tests_matching.as_str()));
        if other.id != ex.id && applies && progress.get(&other.id) == Some(&Progress::NotStarted) {
            env.extend(w.env.iter().map(|(k, v)| (k.clone(), v.clone())));
            notes.push(w.note.clone());
        }
    }
    Ok((env, notes))
}

/// A fresh seed: the clock and the pid, mixed.
fn fresh_seed() -> u64 {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
    (nanos ^ (u64::from(std::process::id()) << 32)).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 1
}

/// Grade `ex` in `ctx`'s tree.
///
/// # Errors
/// [`GraderError`] when the grader cannot judge (no test ran, a named test is missing),
/// or cargo cannot be run, or the run is interrupted.
pub fn grade(ctx: &Ctx<'_>, ex: &Exercise, opts: &Options) -> Result<Graded> {
    let say = |s: String| {
        if !opts.quiet {
            println!("{s}");
        }
    };
    let seed = opts.seed.unwrap_or_else(fresh_seed);
    let (env, notes) = environment(ctx, ex, opts, seed)?;
    say(format!("grade {}: {} (chapter {})", ex.id, ex.title, ex.chapter));
    for n in notes {
        say(format!("note: {n}"));
    }
    if opts.thorough {
        say(format!(
            "thorough: PROPTEST_CASES={THOROUGH_CASES} SNAPLAB_STRESS_ROUNDS={THOROUGH_ROUNDS}, seed {seed} (repeat it with --thorough --seed {seed})"
        ));
    }
    let targets: Vec<Target> = ex.grader.iter().map(|r| r.target()).collect::<Result<_>>()?;
    say("building the tests ...".into());
    let exes = match build(ctx, &targets, opts.verbose)? {
        Ok(exes) => exes,
        Err(errors) => {
            let verdict = Verdict::DoesNotCompile(errors.clone());
            if !opts.quiet {
                println!("{errors}");
                println!("{}: {}", ex.id, verdict.summary());
            }
            return Ok(Graded { verdict, output: errors });
        }
    };
    let packages = packages(ctx)?;
    let mut output = String::new();
    let mut failed = Vec::new();
    let mut total = 0;
    for r in &ex.grader {
        let target = r.target()?;
        let manifest_path = packages.get(&r.package).with_context(|| format!("no package {}", r.package))?;
        let exe = exes
            .get(&(manifest_path.clone(), target.clone()))
            .ok_or_else(|| GraderError::NoExecutable { package: r.package.clone(), target: r.target.clone() })?;
        let dir = manifest_path.parent().unwrap_or(ctx.root);
        let mut cmd = Command::new(exe);
        cmd.arg("--exact").args(&r.tests).current_dir(dir);
        cmd.env("CARGO_MANIFEST_DIR", dir).env("CARGO_PKG_NAME", &r.package);
        cmd.envs(env.iter().map(|(k, v)| (k, v)));
        let what = format!("cargo test -p {} {}", r.package, r.target);
        say(format!("running {what} -- --exact <{} tests>", r.tests.len()));
        let done: Finished = run::run(cmd, ex.timeout(opts.thorough), opts.verbose)?;
        output.push_str(&done.stdout);
        output.push_str(&done.stderr);
        match &done.status {
            Status::TimedOut(after) => {
                let verdict = Verdict::TimedOut { run: what, after: *after };
                say(format!("{}: {}", ex.id, verdict.summary()));
                return Ok(Graded { verdict, output });
            }
            Status::Signaled(signal) => {
                let verdict = Verdict::Crashed {
                    run: what,
                    signal: signal.clone(),
                    tail: tail(&format!("{}{}", done.stdout, done.stderr), 30),
                };
                if let (false, Verdict::Crashed { tail, .. }) = (opts.quiet, &verdict) {
                    println!("{tail}");
                }
                say(format!("{}: {}", ex.id, verdict.summary()));
                return Ok(Graded { verdict, output });
            }
            Status::Exited(_) => {}
        }
        let report = parse_libtest(&done.stdout);
        let ran = report.results.values().filter(|r| *r != "ignored").count();
        if ran == 0 {
            return Err(GraderError::NothingRan { run: what }.into());
        }
        let missing: Vec<&str> = r
            .tests
            .iter()
            .filter(|t| report.results.get(*t).is_none_or(|r| r == "ignored"))
            .map(String::as_str)
            .collect();
        if !missing.is_empty() {
            return Err(GraderError::Missing { run: what, missing: missing.join(", ") }.into());
        }
        for t in &r.tests {
            total += 1;
            if report.results[t] == "ok" {
                say(format!("  ok      {t}"));
            } else {
                let msg = report.blocks.get(t).map(|b| message(b)).unwrap_or_default();
                say(format!("  FAILED  {t}"));
                for line in msg.lines() {
                    say(format!("          {line}"));
                }
                failed.push((t.clone(), msg));
            }
        }
    }
    let verdict =
        if failed.is_empty() { Verdict::Pass { tests: total } } else { Verdict::Fail { failed, tests: total } };
    say(format!("{}: {}", ex.id, verdict.summary()));
    Ok(Graded { verdict, output })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// libtest's results and the failures' captured output are read back per test.
    #[test]
    fn reads_libtest_output() {
        let out = "\nrunning 3 tests\ntest a::one ... ok\ntest a::two ... FAILED\ntest a::three ... ignored, slow\n\nfailures:\n\n---- a::two stdout ----\n\nthread 'a::two' panicked at src/lib.rs:3:5:\nrule 'x' is violated: y\nnote: run with `RUST_BACKTRACE=1` environment variable to display a backtrace\n\n\nfailures:\n    a::two\n\ntest result: FAILED. 1 passed; 1 failed; 1 ignored; 0 measured; 0 filtered out; finished in 0.00s\n\n";
        let r = parse_libtest(out);
        assert_eq!(r.results["a::one"], "ok");
        assert_eq!(r.results["a::two"], "FAILED");
        assert_eq!(r.results["a::three"], "ignored");
        assert_eq!(
            message(&r.blocks["a::two"]),
            "thread 'a::two' panicked at src/lib.rs:3:5:\nrule 'x' is violated: y"
        );
    }
}
