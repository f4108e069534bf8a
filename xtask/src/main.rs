//! `cargo xtask`: list, hint, grade, export and check the exercises.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};

use xtask::check::{self, CheckOptions};
use xtask::grade::{self, Ctx, Options};
use xtask::manifest::{self, Manifest};
use xtask::tree::{self, Progress};
use xtask::{export, run, state};

/// The snaplab coursework. Each chapter of the book ends with an exercise: a region of the
/// real code, between `// EXERCISE <id> BEGIN` and `// EXERCISE <id> END`, that a student's
/// copy holds as a stub. These commands list the exercises, give hints, grade a solution,
/// export a student's copy, and prove that every exercise can fail and pass.
#[derive(Parser)]
#[command(name = "cargo xtask", bin_name = "cargo xtask", version, disable_help_subcommand = true)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// One exercise a line: id, title, chapter, and pass / fail / not-started in this tree.
    ///
    /// An exercise whose regions still hold their stubs is not-started. The others are
    /// graded (as `grade` does; each result is kept until a file of the tree changes), so
    /// the first listing of a tree with many exercises done takes a while.
    List {
        /// Print the exercises as the Markdown table the book's chapter on exercises holds.
        #[arg(long)]
        markdown: bool,
        /// Do not grade: exercises with no kept result show "ungraded".
        #[arg(long)]
        no_grade: bool,
    },
    /// Show the next hint for an exercise (three, from gentle to explicit).
    Hint {
        /// The exercise, e.g. 03-blocking.
        id: String,
        /// Start again from the first hint.
        #[arg(long)]
        reset: bool,
    },
    /// Run the tests that grade an exercise and explain each failure by the rule it breaks.
    ///
    /// Exits 0 when every test passes and 1 when one fails (a compile error and a timeout
    /// are failures too); 2 when the grader itself cannot judge (no test ran). Each test run
    /// has a process group of its own and a timeout, so a hanging test (or a forked child)
    /// is killed with everything it started.
    Grade {
        /// The exercise, e.g. 03-blocking.
        id: String,
        /// For instructors: PROPTEST_CASES=256, SNAPLAB_STRESS_ROUNDS=12 and a fresh seed
        /// (printed, so a failure can be repeated), with four times the timeout.
        #[arg(long)]
        thorough: bool,
        /// The seed of a --thorough run, to repeat one.
        #[arg(long, requires = "thorough")]
        seed: Option<u64>,
        /// Show the build's warnings and the tests' own output as they run.
        #[arg(long, short)]
        verbose: bool,
    },
    /// Write a student's repository to DIR: the tracked files with every exercise stubbed,
    /// no .git (so no history holds a solution), and a README on how to start.
    Export {
        /// A new or empty directory.
        dir: PathBuf,
    },
    /// Prove the coursework real: every grader passes here; the export builds and holds no
    /// solution; each grader fails on its stub with the expected text (in a tree where
    /// what it requires is solved), not a compile error or a timeout; the manifest names
    /// only tests that exist; no hole is empty. Exits 1 on any problem.
    CheckExercises {
        /// Only this exercise (repeatable).
        #[arg(long = "exercise", value_name = "ID")]
        only: Vec<String>,
    },
}

/// The repository root: the parent of this package's directory (`cargo run` says where
/// that is; a binary run on its own knows where it was built).
fn root() -> PathBuf {
    let here = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .filter(|p| p.join("Cargo.toml").exists() && p.ends_with("xtask"))
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    here.parent().map(Path::to_path_buf).unwrap_or(here)
}

fn cargo() -> PathBuf {
    std::env::var_os("CARGO").map_or_else(|| PathBuf::from("cargo"), PathBuf::from)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match execute(cli.command) {
        Ok(code) => code,
        Err(e) if e.is::<run::Interrupted>() => {
            eprintln!("interrupted");
            ExitCode::from(130)
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn execute(cmd: Cmd) -> Result<ExitCode> {
    let root = root();
    let manifest = Manifest::load(&root)?;
    let ctx = Ctx { root: &root, manifest: &manifest, cargo: cargo(), target_dir: None };
    match cmd {
        Cmd::List { markdown, no_grade } => list(&ctx, markdown, no_grade),
        Cmd::Hint { id, reset } => hint(&root, &manifest, &id, reset),
        Cmd::Grade { id, thorough, seed, verbose } => {
            let e = manifest.get(&id)?;
            let fingerprint = tree::fingerprint(&root)?;
            let graded = grade::grade(&ctx, e, &Options { thorough, seed, verbose, quiet: false })?;
            let passed = graded.verdict.passed();
            if !thorough {
                state::cache_grade(&root, &id, fingerprint, passed)?;
            }
            Ok(if passed { ExitCode::SUCCESS } else { ExitCode::from(1) })
        }
        Cmd::Export { dir } => {
            let n = export::export(&root, &manifest, &dir)?;
            println!(
                "wrote {n} files to {}: {} exercises stubbed, no .git; its README.md says how to start",
                dir.display(),
                manifest.exercises.len()
            );
            Ok(ExitCode::SUCCESS)
        }
        Cmd::CheckExercises { only } => {
            let report = check::check(&ctx, &CheckOptions { only, ..CheckOptions::default() })?;
            Ok(if report.ok() { ExitCode::SUCCESS } else { ExitCode::from(1) })
        }
    }
}

fn list(ctx: &Ctx<'_>, markdown: bool, no_grade: bool) -> Result<ExitCode> {
    let manifest = ctx.manifest;
    if markdown {
        let summary = std::fs::read_to_string(ctx.root.join("book/src/SUMMARY.md")).unwrap_or_default();
        print!("{}", manifest.markdown(&manifest::chapters(&summary)));
        return Ok(ExitCode::SUCCESS);
    }
    let progress = tree::progress(ctx.root, manifest)?;
    let fingerprint = tree::fingerprint(ctx.root)?;
    let mut lines = Vec::new();
    for e in &manifest.exercises {
        let status = if progress[&e.id] == Progress::NotStarted {
            "not-started".to_string()
        } else if let Some(passed) = state::cached_grade(ctx.root, &e.id, fingerprint) {
            (if passed { "pass" } else { "fail" }).to_string()
        } else if no_grade {
            "ungraded".to_string()
        } else {
            eprintln!("grading {} ...", e.id);
            match grade::grade(ctx, e, &Options { quiet: true, ..Options::default() }) {
                Ok(g) => {
                    let passed = g.verdict.passed();
                    state::cache_grade(ctx.root, &e.id, fingerprint, passed)?;
                    (if passed { "pass" } else { "fail" }).to_string()
                }
                Err(err) if err.is::<run::Interrupted>() => return Err(err),
                Err(err) => {
                    eprintln!("{}: {err:#}", e.id);
                    "error".to_string()
                }
            }
        };
        lines.push((e, status));
    }
    let id_w = lines.iter().map(|(e, _)| e.id.len()).max().unwrap_or(0);
    let title_w = lines.iter().map(|(e, _)| e.title.chars().count()).max().unwrap_or(0);
    for (e, status) in lines {
        let chapter = format!("chapter {}", e.chapter);
        println!("{:<id_w$}  {:<title_w$}  {chapter:<10}  {status}", e.id, e.title);
    }
    Ok(ExitCode::SUCCESS)
}

fn hint(root: &Path, manifest: &Manifest, id: &str, reset: bool) -> Result<ExitCode> {
    let e = manifest.get(id)?;
    if reset {
        state::set_hints_shown(root, id, 0)?;
        println!("{id}: the next hint is the first again");
        return Ok(ExitCode::SUCCESS);
    }
    let shown = state::hints_shown(root, id);
    let n = (shown + 1).min(e.hints.len());
    let text = e.hints.get(n - 1).context("the exercise has no hints")?;
    println!("hint {n} of {} for {id} ({}):\n", e.hints.len(), e.title);
    println!("{}", wrap(text.trim(), 92));
    if shown >= e.hints.len() {
        println!("\n(that was the last hint; `cargo xtask hint {id} --reset` starts again)");
    }
    state::set_hints_shown(root, id, n)?;
    Ok(ExitCode::SUCCESS)
}

/// `text` broken into lines of at most `width` characters, at spaces.
fn wrap(text: &str, width: usize) -> String {
    let mut lines: Vec<String> = Vec::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        if !line.is_empty() && line.chars().count() + 1 + word.chars().count() > width {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    lines.push(line);
    lines.join("\n")
}
