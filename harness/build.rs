//! Records the commit this harness was built from, for the run settings `snaplab compare`
//! writes into every JSON row (`snaplab_commit`). Outside a git checkout (a crate
//! tarball), or without `git`, the commit is `unknown`.

use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn main() {
    // Uncommitted edits are not marked: they do not rerun this script, so a mark would go stale.
    let commit = git(&["rev-parse", "HEAD"]).unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=SNAPLAB_COMMIT={commit}");
    // Rebuild when HEAD moves: the HEAD file (a branch switch), the branch's ref (a commit)
    // and packed-refs (a ref packed by `git gc`). Only files that exist: cargo takes a
    // missing one as changed, and would rebuild on every build.
    let paths = [Some("HEAD".to_string()), git(&["symbolic-ref", "-q", "HEAD"]), Some("packed-refs".to_string())];
    for path in paths.into_iter().flatten() {
        if let Some(p) = git(&["rev-parse", "--git-path", &path])
            && std::path::Path::new(&p).exists()
        {
            println!("cargo:rerun-if-changed={p}");
        }
    }
    println!("cargo:rerun-if-changed=build.rs");
}
