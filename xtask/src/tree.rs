//! The repository as files: which files it has, what a student's copy of each holds, and
//! where each exercise stands in a tree.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::manifest::{Exercise, Manifest};
use crate::regions::{self, Region};

/// The repository's files, relative to `root`: git's index when `root` is a git checkout
/// (tracked files, new ones once added), else every file outside `target/` and `.git/`
/// (a student's export before `git init`).
///
/// # Errors
/// When git fails or the tree cannot be read.
pub fn files(root: &Path) -> Result<Vec<PathBuf>> {
    if root.join(".git").exists() {
        let out = Command::new("git").arg("-C").arg(root).args(["ls-files", "-z"]).output().context("running git")?;
        if !out.status.success() {
            bail!("git ls-files failed: {}", String::from_utf8_lossy(&out.stderr));
        }
        let mut files: Vec<PathBuf> = out
            .stdout
            .split(|&b| b == 0)
            .filter(|p| !p.is_empty())
            .map(|p| PathBuf::from(String::from_utf8_lossy(p).into_owned()))
            // A file deleted but not yet staged is not part of the tree.
            .filter(|p| root.join(p).is_file())
            .collect();
        files.sort();
        return Ok(files);
    }
    let mut out = Vec::new();
    walk(root, Path::new(""), &mut out)?;
    out.sort();
    Ok(out)
}

fn walk(root: &Path, rel: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    for entry in std::fs::read_dir(root.join(rel)).with_context(|| format!("reading {}", rel.display()))? {
        let entry = entry?;
        let name = entry.file_name();
        let path = rel.join(&name);
        let kind = entry.file_type()?;
        if kind.is_dir() {
            if name == "target" || name == ".git" {
                continue;
            }
            walk(root, &path, out)?;
        } else if kind.is_file() {
            out.push(path);
        }
    }
    Ok(())
}

/// The regions of one file, each with its exercise and the manifest entry it matches.
pub struct FileRegions {
    /// The file's text.
    pub text: String,
    /// Its regions in order.
    pub regions: Vec<Region>,
}

/// Read `file` under `root` and find its regions.
///
/// # Errors
/// When it cannot be read or a marker is malformed.
pub fn file_regions(root: &Path, file: &str) -> Result<FileRegions> {
    let text = std::fs::read_to_string(root.join(file)).with_context(|| format!("cannot read {file}"))?;
    let regions = regions::scan(&text).with_context(|| format!("{file}: malformed exercise marker"))?;
    Ok(FileRegions { text, regions })
}

/// For each region of `file` (in order), the exercise and its region spec; checks that the
/// file's regions are exactly the manifest's, in the same order.
///
/// # Errors
/// A region the manifest does not list, or one it lists that the file lacks.
pub fn match_regions<'m>(
    manifest: &'m Manifest,
    file: &str,
    found: &[Region],
) -> Result<Vec<(&'m Exercise, &'m crate::manifest::RegionSpec)>> {
    let expected: Vec<(&Exercise, &crate::manifest::RegionSpec)> = manifest
        .exercises
        .iter()
        .flat_map(|e| e.regions.iter().filter(|r| r.file == file).map(move |r| (e, r)))
        .collect();
    // The manifest lists an exercise's regions in file order; exercises sharing a file may
    // interleave, so match them per exercise.
    let mut out = Vec::with_capacity(found.len());
    let mut next: BTreeMap<&str, usize> = BTreeMap::new();
    for r in found {
        let mine: Vec<&(&Exercise, &crate::manifest::RegionSpec)> =
            expected.iter().filter(|(e, _)| e.id == r.id).collect();
        let i = next.entry(r.id.as_str()).or_default();
        let Some(&&(e, spec)) = mine.get(*i) else {
            bail!(
                "{file}:{}: a region of exercise {} that {} does not list ({} listed in this file)",
                r.begin + 1,
                r.id,
                crate::manifest::MANIFEST,
                mine.len()
            );
        };
        *i += 1;
        out.push((e, spec));
    }
    for (e, _) in &expected {
        let listed = expected.iter().filter(|(x, _)| x.id == e.id).count();
        let present = found.iter().filter(|r| r.id == e.id).count();
        if present < listed {
            bail!(
                "{file}: {} lists {listed} region(s) of {} here, the file has {present}",
                crate::manifest::MANIFEST,
                e.id
            );
        }
    }
    Ok(out)
}

/// `file`'s text with the regions of the exercises in `stubbed` replaced by their stubs.
///
/// # Errors
/// As [`file_regions`] and [`match_regions`], or an unreadable replacement.
pub fn render(root: &Path, manifest: &Manifest, file: &str, stubbed: &HashSet<&str>) -> Result<String> {
    let fr = file_regions(root, file)?;
    let specs = match_regions(manifest, file, &fr.regions)?;
    let mut stubs = Vec::with_capacity(specs.len());
    for ((e, spec), r) in specs.iter().zip(&fr.regions) {
        stubs.push(if stubbed.contains(e.id.as_str()) { Some(e.stub_lines(spec, &r.indent, root)?) } else { None });
    }
    Ok(regions::replace_bodies(&fr.text, &fr.regions, |n, _| stubs[n].clone()))
}

/// Where an exercise stands in a tree, from its regions alone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Progress {
    /// Every region still holds its stub.
    NotStarted,
    /// Some region holds something else (the reference code, or the student's).
    Started,
}

/// Each exercise's [`Progress`] in the tree at `root`.
///
/// # Errors
/// As [`render`].
pub fn progress(root: &Path, manifest: &Manifest) -> Result<BTreeMap<String, Progress>> {
    let mut started: BTreeSet<String> = BTreeSet::new();
    for file in manifest.files() {
        let fr = file_regions(root, file)?;
        let lines: Vec<&str> = fr.text.lines().collect();
        for ((e, spec), r) in match_regions(manifest, file, &fr.regions)?.into_iter().zip(&fr.regions) {
            if !regions::is_stub(&r.body(&lines), &e.stub_lines(spec, &r.indent, root)?) {
                started.insert(e.id.clone());
            }
        }
    }
    Ok(manifest
        .exercises
        .iter()
        .map(|e| (e.id.clone(), if started.contains(&e.id) { Progress::Started } else { Progress::NotStarted }))
        .collect())
}

/// A fingerprint of every file of the tree (names and contents): a grade recorded under
/// it holds as long as nothing changed.
///
/// # Errors
/// When a file cannot be read.
pub fn fingerprint(root: &Path) -> Result<u64> {
    // DefaultHasher::new() has fixed keys: the same tree hashes the same in every run.
    let mut h = std::collections::hash_map::DefaultHasher::new();
    let mut all = files(root)?;
    // Files a student created and has not added to git count too.
    if root.join(".git").exists() {
        let out = Command::new("git")
            .arg("-C")
            .arg(root)
            .args(["ls-files", "-z", "--others", "--exclude-standard"])
            .output()
            .context("running git")?;
        all.extend(
            out.stdout
                .split(|&b| b == 0)
                .filter(|p| !p.is_empty())
                .map(|p| PathBuf::from(String::from_utf8_lossy(p).into_owned())),
        );
        all.sort();
        all.dedup();
    }
    for f in all {
        f.hash(&mut h);
        if let Ok(bytes) = std::fs::read(root.join(&f)) {
            bytes.hash(&mut h);
        }
    }
    Ok(h.finish())
}
