//! When Redis's BGSAVE ends, seen from outside: the moment its dump is renamed into place
//! (Linux inotify).
//!
//! Redis's child writes `temp-<pid>.rdb` and renames it over the dump (src/rdb.c,
//! `rdbSave`); that rename is where the new snapshot exists, and where a strategy's save
//! ends too (its `AtomicFile` commit). `INFO persistence` only says
//! `rdb_bgsave_in_progress:0` once `serverCron` (10 times a second at the default `hz 10`)
//! has reaped the exited child, up to 100 ms later; the comparison still polls it, for the
//! save's status and for the figures Redis reports there.

use std::collections::HashMap;
use std::ffi::OsString;
use std::io;
use std::os::fd::AsFd;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};

/// How long the watching thread sleeps in `poll` before checking whether it should stop.
/// It wakes at once for an event; this bounds only how long dropping the watch takes.
const STOP_CHECK_MS: u16 = 20;

/// When the rename was seen, shared with the watching thread.
type Seen = Arc<(Mutex<Option<Instant>>, Condvar)>;

/// A watch on one directory for a file renamed to one name (inotify `IN_MOVED_TO`). A
/// thread blocks in `poll` on the inotify descriptor and notes the instant it wakes for
/// that name: the rename's time, late only by a thread wake-up (microseconds on an idle
/// core). Dropping the watch stops the thread.
pub struct RenameWatch {
    seen: Seen,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl RenameWatch {
    /// Watch for a file being renamed to `path`. The watch is in place when this returns,
    /// so any rename after it is seen.
    ///
    /// # Errors
    /// inotify cannot be set up, or `path`'s directory cannot be watched.
    pub fn start(path: &Path) -> io::Result<Self> {
        let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        let name: OsString = path
            .file_name()
            .ok_or_else(|| io::Error::other(format!("{} names no file", path.display())))?
            .to_os_string();
        let inotify = Inotify::init(InitFlags::IN_CLOEXEC | InitFlags::IN_NONBLOCK)?;
        // IN_MOVED_TO only: Redis never writes the dump in place, it renames a finished file.
        inotify.add_watch(dir, AddWatchFlags::IN_MOVED_TO)?;
        let seen: Seen = Arc::new((Mutex::new(None), Condvar::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (seen_by_thread, stop_thread) = (Arc::clone(&seen), Arc::clone(&stop));
        let thread = thread::Builder::new().name("rename-watch".into()).spawn(move || {
            // Relaxed: a stop request, no data travels with it.
            while !stop_thread.load(Ordering::Relaxed) {
                let mut fds = [PollFd::new(inotify.as_fd(), PollFlags::POLLIN)];
                match poll(&mut fds, PollTimeout::from(STOP_CHECK_MS)) {
                    Ok(0) | Err(Errno::EINTR) => continue,
                    Ok(_) => {}
                    Err(_) => return,
                }
                // Taken as poll returns, before reading the events: the closest instant to
                // the rename this process can observe.
                let woke = Instant::now();
                match inotify.read_events() {
                    Ok(events) if events.iter().any(|e| e.name.as_deref() == Some(name.as_os_str())) => {
                        let (at, changed) = &*seen_by_thread;
                        *at.lock().unwrap_or_else(|p| p.into_inner()) = Some(woke);
                        changed.notify_all();
                        return;
                    }
                    Ok(_) | Err(Errno::EAGAIN) => {}
                    Err(_) => return,
                }
            }
        })?;
        Ok(RenameWatch { seen, stop, thread: Some(thread) })
    }

    /// The instant the rename was seen, waiting at most `limit` for it; `None` if it was not
    /// seen by then.
    pub fn wait(&self, limit: Duration) -> Option<Instant> {
        let (at, changed) = &*self.seen;
        let guard = at.lock().unwrap_or_else(|p| p.into_inner());
        let (guard, _) =
            changed.wait_timeout_while(guard, limit, |seen| seen.is_none()).unwrap_or_else(|p| p.into_inner());
        *guard
    }
}

impl Drop for RenameWatch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// How often `INFO persistence` is polled for the end of a save.
const INFO_POLL: Duration = Duration::from_millis(2);

/// How long to wait, once INFO reports the save over, for the rename the watch must have
/// seen before it: a thread wake-up, so the bound is generous.
const RENAME_GRACE: Duration = Duration::from_secs(5);

/// When a BGSAVE ended, by two clocks.
#[derive(Debug)]
pub struct SaveEnd {
    /// The dump was renamed into place (`None`: no rename seen, as when the save failed).
    pub renamed: Option<Instant>,
    /// `INFO persistence` first showed `rdb_bgsave_in_progress:0`.
    pub reported: Instant,
    /// That `INFO persistence`, parsed.
    pub persistence: HashMap<String, String>,
}

/// Wait for the running BGSAVE to end: poll `info` (`INFO persistence`) until it shows no
/// save in progress, then take the instant `watch` saw the dump renamed into place.
///
/// # Errors
/// `info`'s error, or the save still running at `deadline`.
pub fn wait_for_bgsave_end(
    watch: &RenameWatch,
    mut info: impl FnMut() -> Result<HashMap<String, String>>,
    deadline: Instant,
) -> Result<SaveEnd> {
    loop {
        let persistence = info()?;
        if persistence.get("rdb_bgsave_in_progress").map(String::as_str) == Some("0") {
            let reported = Instant::now();
            // A successful save renamed its file before its process exited, so before INFO
            // could say so: the watch has seen it, or sees it within a thread wake-up.
            let renamed = watch.wait(RENAME_GRACE);
            return Ok(SaveEnd { renamed, reported, persistence });
        }
        if Instant::now() > deadline {
            bail!("BGSAVE still running at the deadline");
        }
        // A bounded poll on another process: Redis sends no "save finished" notification.
        thread::sleep(INFO_POLL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// INFO persistence as a server shows it, with `rdb_bgsave_in_progress` set.
    fn persistence(in_progress: &str) -> HashMap<String, String> {
        HashMap::from([
            ("rdb_bgsave_in_progress".to_string(), in_progress.to_string()),
            ("rdb_last_bgsave_status".to_string(), "ok".to_string()),
        ])
    }

    /// The save ends at the rename of the dump into place, before INFO reports it over
    /// (Redis reports it only once serverCron has reaped the child, up to 100 ms later).
    #[test]
    fn the_save_ends_at_the_rename_not_when_info_reports_it() {
        let dir = tempfile::tempdir().unwrap();
        let dump = dir.path().join("dump.rdb");
        let temp = dir.path().join("temp-1.rdb");
        std::fs::write(&temp, b"the new dump").unwrap();
        let watch = RenameWatch::start(&dump).unwrap();
        let mut polls = 0;
        let mut reaped = None;
        let end = wait_for_bgsave_end(
            &watch,
            || {
                polls += 1;
                if polls == 1 {
                    // The child renames its file and exits; the server has not reaped it yet.
                    std::fs::rename(&temp, &dump)?;
                    watch.wait(Duration::from_secs(60)).expect("the watch saw the rename");
                    return Ok(persistence("1"));
                }
                // Reaped: INFO now reports the save over.
                reaped = Some(Instant::now());
                Ok(persistence("0"))
            },
            Instant::now() + Duration::from_secs(60),
        )
        .unwrap();
        let reaped = reaped.unwrap();
        let renamed = end.renamed.expect("the rename was seen");
        assert!(renamed < reaped, "the save's end was taken after the server reported it");
        assert!(end.reported >= reaped);
    }

    /// A rename onto the watched name is seen, at an instant between the rename and the
    /// question; renames to other names and writes in place are not.
    #[test]
    fn sees_the_rename_onto_its_name_only() {
        let dir = tempfile::tempdir().unwrap();
        let dump = dir.path().join("dump.rdb");
        std::fs::write(&dump, b"old").unwrap();
        let watch = RenameWatch::start(&dump).unwrap();

        std::fs::write(dir.path().join("temp-1.rdb"), b"other").unwrap();
        std::fs::rename(dir.path().join("temp-1.rdb"), dir.path().join("other.rdb")).unwrap();
        std::fs::write(&dump, b"written in place").unwrap();
        assert_eq!(watch.wait(Duration::ZERO), None, "only a rename onto dump.rdb counts");

        std::fs::write(dir.path().join("temp-2.rdb"), b"new").unwrap();
        let before = Instant::now();
        std::fs::rename(dir.path().join("temp-2.rdb"), &dump).unwrap();
        let seen = watch.wait(Duration::from_secs(60)).expect("the rename was not seen");
        assert!(seen >= before && seen <= Instant::now());
    }
}
