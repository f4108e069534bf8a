//! Writing a tree with holes: the student's repository (`cargo xtask export`), and the
//! trees `check-exercises` grades stubs in.

use std::collections::{BTreeMap, HashSet};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use crate::manifest::Manifest;
use crate::regions;
use crate::tree;

/// One file of a tree to write: its bytes and its permission bits.
pub struct Entry {
    /// The contents.
    pub bytes: Vec<u8>,
    /// The mode (scripts stay executable).
    pub mode: u32,
}

/// The files of `root` as they are with the exercises in `stubbed` stubbed, and the
/// student's README on top of the project's.
///
/// # Errors
/// A file that cannot be read, or a region the manifest does not match.
pub fn render_tree(root: &Path, manifest: &Manifest, stubbed: &HashSet<&str>) -> Result<BTreeMap<PathBuf, Entry>> {
    let with_regions = manifest.files();
    let mut out = BTreeMap::new();
    for file in tree::files(root)? {
        let path = root.join(&file);
        let mode = std::fs::metadata(&path).with_context(|| format!("{}", file.display()))?.permissions().mode();
        let rel = file.to_string_lossy().into_owned();
        let bytes = if with_regions.contains(rel.as_str()) {
            tree::render(root, manifest, &rel, stubbed)?.into_bytes()
        } else if rel == "README.md" {
            let original = std::fs::read_to_string(&path).context("README.md")?;
            student_readme(manifest, &original).into_bytes()
        } else {
            std::fs::read(&path).with_context(|| format!("cannot read {rel}"))?
        };
        out.insert(file, Entry { bytes, mode });
    }
    Ok(out)
}

/// Write `files` under `dest`, touching only files whose contents changed (so cargo
/// rebuilds only what changed) and removing files `files` does not hold (outside
/// `target/`).
///
/// # Errors
/// When a file cannot be written or removed.
pub fn write_tree(dest: &Path, files: &BTreeMap<PathBuf, Entry>) -> Result<usize> {
    let mut written = 0;
    for (rel, entry) in files {
        let path = dest.join(rel);
        if std::fs::read(&path).is_ok_and(|old| old == entry.bytes) {
            continue;
        }
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).with_context(|| format!("cannot create {}", parent.display()))?;
        }
        std::fs::write(&path, &entry.bytes).with_context(|| format!("cannot write {}", path.display()))?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(entry.mode))?;
        written += 1;
    }
    if dest.exists() {
        for old in tree::files(dest)? {
            if !files.contains_key(&old) {
                std::fs::remove_file(dest.join(&old)).with_context(|| format!("cannot remove {}", old.display()))?;
            }
        }
    }
    Ok(written)
}

/// The pre-release tag [`set_apart`] gives the workspace's version.
const APART: &str = "xtask-check";

/// Give a tree's workspace packages a version of their own (`0.1.0` becomes
/// `0.1.0-xtask-check`, in `Cargo.toml` and `Cargo.lock`), so that it can share a target
/// directory with the tree it was made from.
///
/// Cargo names a workspace package's artifacts by a hash of its name, version and path
/// *relative to the workspace root*: two copies of one workspace share every artifact and
/// fingerprint in one target directory, and a copy with stubs built after the original
/// leaves the original's tests running the stubs (its sources look older than the
/// artifacts). A different version makes every workspace package a different unit, while
/// the registry dependencies, the bulk of the build, stay shared.
///
/// # Errors
/// When the root `Cargo.toml` has no `[workspace.package]` version.
pub fn set_apart(files: &mut BTreeMap<PathBuf, Entry>) -> Result<()> {
    let manifest = files.get_mut(Path::new("Cargo.toml")).context("the tree has no Cargo.toml")?;
    let text = String::from_utf8_lossy(&manifest.bytes).into_owned();
    let mut section = "";
    let mut version = None;
    let mut out = Vec::new();
    for line in text.lines() {
        if line.starts_with('[') {
            section = line.trim();
        }
        match (section, line.split_once('=')) {
            ("[workspace.package]", Some((key, value))) if key.trim() == "version" && version.is_none() => {
                let v = value.trim().trim_matches('"').to_string();
                out.push(format!("version = \"{v}-{APART}\""));
                version = Some(v);
            }
            _ => out.push(line.to_string()),
        }
    }
    let version = version.context("Cargo.toml has no [workspace.package] version")?;
    manifest.bytes = (out.join("\n") + "\n").into_bytes();
    if let Some(lock) = files.get_mut(Path::new("Cargo.lock")) {
        // Workspace packages are the entries without a `source`: their version line follows
        // their name; registry packages keep theirs.
        let text = String::from_utf8_lossy(&lock.bytes).into_owned();
        let blocks: Vec<String> = text
            .split("\n\n")
            .map(|block| {
                if block.starts_with("[[package]]") && !block.contains("\nsource = ") {
                    block.replacen(
                        &format!("\nversion = \"{version}\""),
                        &format!("\nversion = \"{version}-{APART}\""),
                        1,
                    )
                } else {
                    block.to_string()
                }
            })
            .collect();
        lock.bytes = blocks.join("\n\n").into_bytes();
    }
    Ok(())
}

/// Where a solution can still be read in an exported tree: (exercise, file) pairs where
/// the whole body of one of its regions (whitespace aside) appears.
///
/// # Errors
/// When the reference code cannot be read.
pub fn solutions_in(
    root: &Path,
    manifest: &Manifest,
    files: &BTreeMap<PathBuf, Entry>,
) -> Result<Vec<(String, PathBuf)>> {
    // Bodies shorter than this (squashed) are a line or two that may well recur.
    const SHORTEST: usize = 24;
    let mut bodies: Vec<(String, String)> = Vec::new();
    for file in manifest.files() {
        let fr = tree::file_regions(root, file)?;
        let lines: Vec<&str> = fr.text.lines().collect();
        for r in &fr.regions {
            let body = regions::squash(&r.body(&lines).join("\n"));
            if body.len() >= SHORTEST {
                bodies.push((r.id.clone(), body));
            }
        }
    }
    let mut found = Vec::new();
    for (path, entry) in files {
        let Ok(text) = std::str::from_utf8(&entry.bytes) else { continue };
        let squashed = regions::squash(text);
        for (id, body) in &bodies {
            if squashed.contains(body.as_str()) {
                found.push((id.clone(), path.clone()));
            }
        }
    }
    found.sort();
    found.dedup();
    Ok(found)
}

/// `cargo xtask export DIR`: the student's repository, every exercise stubbed, no `.git`,
/// its own README. Returns the number of files written.
///
/// # Errors
/// When `dest` is not empty, a solution would be left in the export, or a file cannot be
/// written.
pub fn export(root: &Path, manifest: &Manifest, dest: &Path) -> Result<usize> {
    if dest.exists() && std::fs::read_dir(dest).map(|mut d| d.next().is_some()).unwrap_or(true) {
        bail!("{} exists and is not empty; export into a new directory", dest.display());
    }
    let all: HashSet<&str> = manifest.exercises.iter().map(|e| e.id.as_str()).collect();
    let files = render_tree(root, manifest, &all)?;
    let leaks = solutions_in(root, manifest, &files)?;
    if !leaks.is_empty() {
        let list: Vec<String> = leaks.iter().map(|(id, p)| format!("{id} in {}", p.display())).collect();
        bail!("the export would still hold solutions: {}", list.join(", "));
    }
    std::fs::create_dir_all(dest).with_context(|| format!("cannot create {}", dest.display()))?;
    write_tree(dest, &files)
}

/// The README of a student's copy: how to start, the exercises, then the project's own
/// README.
pub fn student_readme(manifest: &Manifest, original: &str) -> String {
    let mut list = String::new();
    for e in &manifest.exercises {
        let requires =
            if e.requires.is_empty() { String::new() } else { format!(" (after {})", e.requires.join(", ")) };
        list.push_str(&format!("- `{}`, chapter {}: {}{requires}\n", e.id, e.chapter, e.title));
    }
    format!(
        "# snaplab: your copy for the coursework

This is snaplab with the exercises cut out. Where the code a chapter teaches used to be,
there is now a `todo!(\"exercise <id>: ...\")` between two marker comments,
`// EXERCISE <id> BEGIN` and `// EXERCISE <id> END`. Everything else is the real project:
its tests (which grade you), its benchmarks, its command-line tool and its book.

## How to start

1. Keep your work in git: `git init && git add -A && git commit -qm start`.
2. Read the book, from \"Start here\": `mdbook serve book --open` (install mdBook with
   `cargo install mdbook --version 0.5.4 --locked`), or the Markdown under `book/src/`.
3. `cargo xtask list` shows every exercise, the chapter it ends, and where you stand:
   not-started, fail or pass.
4. At the end of a chapter, write its exercise between the markers, in place of the
   `todo!` (leave the markers: they are how the grader tells your code from the stub).
   `cargo xtask hint <id>` starts with where to look and gives one more hint each time.
5. `cargo xtask grade <id>` runs the tests that grade the exercise and explains each
   failure by the rule it breaks. It exits 0 on a pass and 1 on a fail.
6. Once a strategy passes, race it against the others:
   `cargo run --release -- compare --strategies clone,blocking`.

The exercises, in the book's order (some build on earlier ones):

{list}
Until every exercise is done, `cargo test --workspace` (and `.ci/run`, the project's own
CI) fails on the stubs: grade one exercise at a time with `cargo xtask grade`.

---

{original}"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The workspace's version gets a tag of its own in Cargo.toml and in the lock file's
    /// workspace packages; registry packages keep theirs.
    #[test]
    fn set_apart_changes_only_the_workspace_version() {
        let toml = "[workspace]\nmembers = [\"a\"]\n\n[workspace.package]\nversion = \"0.1.0\"\nedition = \"2024\"\n\n[dependencies]\nx = { version = \"0.1.0\" }\n";
        let lock = "version = 4\n\n[[package]]\nname = \"a\"\nversion = \"0.1.0\"\n\n[[package]]\nname = \"x\"\nversion = \"0.1.0\"\nsource = \"registry+https://github.com/rust-lang/crates.io-index\"\n";
        let mut files = BTreeMap::new();
        files.insert(PathBuf::from("Cargo.toml"), Entry { bytes: toml.as_bytes().to_vec(), mode: 0o644 });
        files.insert(PathBuf::from("Cargo.lock"), Entry { bytes: lock.as_bytes().to_vec(), mode: 0o644 });
        set_apart(&mut files).unwrap();
        let toml = String::from_utf8(files[Path::new("Cargo.toml")].bytes.clone()).unwrap();
        let lock = String::from_utf8(files[Path::new("Cargo.lock")].bytes.clone()).unwrap();
        assert!(toml.contains("[workspace.package]\nversion = \"0.1.0-xtask-check\"\n"), "{toml}");
        assert!(toml.contains("x = { version = \"0.1.0\" }"), "{toml}");
        assert!(lock.contains("name = \"a\"\nversion = \"0.1.0-xtask-check\"\n"), "{lock}");
        assert!(lock.contains("name = \"x\"\nversion = \"0.1.0\"\nsource"), "{lock}");
    }
}
