//! Real process death: `snaplab save` runs in its own process group and is killed with
//! SIGKILL at random instants, for every strategy. After each kill the destination is a
//! whole dump (the previous one or the new one, never a mix or a fragment), and the next
//! start of a store in that directory removes the temp files the killed saves left.
//!
//! `SNAPLAB_KILLS` sets the kills per strategy (default 4).

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use snaplab_core::{rdb, remove_stale_temp_files};
use snaplab_harness::conformance::temp_files;
use std::os::unix::process::CommandExt;

fn snaplab() -> Command {
    Command::new(env!("CARGO_BIN_EXE_snaplab"))
}

fn run(args: &[&str]) {
    let out = snaplab().args(args).output().unwrap();
    assert!(out.status.success(), "snaplab {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// SIGKILL at random instants during `snaplab save`, for every strategy: the destination
/// always loads whole, and starting again in the directory removes the stale temp files.
#[test]
fn killed_saves_leave_a_whole_dump() {
    let kills: usize = std::env::var("SNAPLAB_KILLS").ok().and_then(|v| v.parse().ok()).unwrap_or(4);
    let dir = tempfile::tempdir().unwrap();
    let p = |name: &str| dir.path().join(name).to_str().unwrap().to_string();
    run(&["generate", "--output", &p("input.rdb"), "--keys", "100000", "--value-size", "64", "--seed", "1"]);
    run(&["generate", "--output", &p("previous.rdb"), "--keys", "1000", "--value-size", "16", "--seed", "2"]);
    let new = rdb::load_file(Path::new(&p("input.rdb"))).unwrap().0;
    let previous_bytes = std::fs::read(p("previous.rdb")).unwrap();
    let previous = rdb::load(previous_bytes.as_slice()).unwrap().0;

    // How long a whole `snaplab save` takes here, to spread the kills over it.
    let started = Instant::now();
    run(&["save", "--strategy", "blocking", "--input", &p("input.rdb"), "--output", &p("probe.rdb")]);
    let whole = started.elapsed().as_millis() as u64;
    std::fs::remove_file(p("probe.rdb")).unwrap();

    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let (mut left_temp, mut old, mut whole_new) = (0, 0, 0);
    for entry in snaplab::registry().entries() {
        for k in 0..kills {
            std::fs::write(p("dump.rdb"), &previous_bytes).unwrap();
            let mut child = snaplab()
                .args(["save", "--strategy", entry.name, "--input", &p("input.rdb"), "--output", &p("dump.rdb")])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                // Its own process group, so the kill also reaches a forked child.
                .process_group(0)
                .spawn()
                .unwrap();
            // Every other kill waits until the save has created its temp file (so it lands in
            // the middle of writing); the others land anywhere, loading included. Waiting
            // for wall-clock time or a file to appear is the point here, not synchronisation.
            if k % 2 == 0 {
                let deadline = Instant::now() + Duration::from_millis(whole * 3 + 1000);
                while temp_files(dir.path()).unwrap().is_empty()
                    && Instant::now() < deadline
                    && child.try_wait().unwrap().is_none()
                {
                    std::thread::sleep(Duration::from_millis(1));
                }
                std::thread::sleep(Duration::from_millis(rng.random_range(0..whole / 2 + 1)));
            } else {
                std::thread::sleep(Duration::from_millis(rng.random_range(0..whole + 200)));
            }
            let _ = killpg(Pid::from_raw(child.id() as i32), Signal::SIGKILL);
            child.wait().unwrap();
            left_temp += usize::from(!temp_files(dir.path()).unwrap().is_empty());

            let bytes = std::fs::read(p("dump.rdb")).unwrap();
            let (got, _) = rdb::load(bytes.as_slice())
                .unwrap_or_else(|e| panic!("{}: after a kill the destination does not load: {e}", entry.name));
            if got == previous {
                old += 1;
            } else if got == new {
                whole_new += 1;
            } else {
                panic!("{}: after a kill the destination is neither the previous nor the new dump", entry.name);
            }
            // The next start of a store in this directory removes what the kill left. A forked
            // child killed with its group may take a moment to die: wait for it (bounded).
            let deadline = Instant::now() + Duration::from_secs(10);
            while !remove_stale_temp_files(dir.path()).is_ok_and(|_| temp_files(dir.path()).unwrap().is_empty())
                && Instant::now() < deadline
            {
                std::thread::sleep(Duration::from_millis(5));
            }
            assert!(
                temp_files(dir.path()).unwrap().is_empty(),
                "{}: stale temp files remain: {:?}",
                entry.name,
                temp_files(dir.path()).unwrap()
            );
        }
    }
    eprintln!(
        "{} kills: {old} left the previous dump, {whole_new} the new one, {left_temp} left a temp file",
        old + whole_new
    );
    assert!(left_temp > 0, "no kill landed during a save: the test did not test anything");
}
