#![doc = include_str!("../README.md")]

use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::{ForkResult, fork};
use snaplab_core::memory;
use snaplab_core::rdb::EncodeStats;
use snaplab_core::{
    Applied, AtomicFile, BgSave, Command, CommandError, Counted, EXTRA_MEMORY_ELSEWHERE, Entry, Keyspace,
    LockedKeyspace, SaveError, SaveOptions, SaveReport, SaveState, SaveStatus, SnapshotStrategy, unix_ms_now,
    write_snapshot_to,
};

// ANCHOR: sample_every
/// How often the parent samples the child's copied pages. Reading `smaps_rollup` walks
/// the child's page tables, so it is kept sparse (Redis 6.2.1 slowed saves 15x by reading
/// smaps too often).
const SAMPLE_EVERY: Duration = Duration::from_millis(100);
// ANCHOR_END: sample_every

struct Inner {
    store: LockedKeyspace,
    saves: Arc<SaveState>,
    /// The pid of the child running a save, if any.
    child: Mutex<Option<i32>>,
}

/// A store whose BGSAVE forks: the child serializes the memory image it inherited.
///
/// Linux only. Cheap to clone: clones share the same store.
#[derive(Clone)]
pub struct ForkSave {
    inner: Arc<Inner>,
}

impl ForkSave {
    /// The pid of the child process running a save right now, if any (tests use it to
    /// kill the child mid-save).
    pub fn child_pid(&self) -> Option<i32> {
        *self.inner.child.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The child's side. Runs in the forked process, which has exactly one thread: the one
/// that called `fork()`, holding the store's write lock through `store`. Never returns.
#[allow(unsafe_code)] // `_exit`: the one way out of the child, see the SAFETY note.
fn child_main(store: &Counted, dest: &Path, opts: &SaveOptions, mut report: UnixStream) -> ! {
    let outcome = catch_unwind(AssertUnwindSafe(|| child_save(store, dest, opts)));
    let (line, code) = match outcome {
        Ok(Ok(stats)) => {
            // The child's copied pages at the end of its save, read by the child itself (as
            // Redis's child reports its copy-on-write size to the parent): the parent's
            // samples are 100 ms apart and a short save may fall between two of them.
            let dirty = memory::private_dirty_bytes(std::process::id() as i32).unwrap_or(0);
            (format!("ok {} {} {dirty}\n", stats.bytes, stats.keys), 0)
        }
        Ok(Err(SaveError::Io { stage, path, source })) => {
            let os = source.raw_os_error().unwrap_or(0);
            (format!("io {stage}\t{}\t{os}\t{source}\n", path.display()), 1)
        }
        Ok(Err(e)) => (format!("err {e}\n"), 1),
        // The panic's message, so the parent's error says what went wrong (the child's
        // stderr may be captured or closed).
        Err(payload) => {
            let why = payload
                .downcast_ref::<&str>()
                .copied()
                .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
                .unwrap_or("(no message)");
            (format!("err the child panicked: {}\n", why.replace('\n', " ")), 2)
        }
    };
    let _ = report.write_all(line.as_bytes());
    // SAFETY: `_exit` ends the process immediately, without running atexit handlers,
    // destructors or stdio flushes. That is exactly what the child needs: it shares file
    // descriptors and memory contents with the parent, and must not flush buffers, run
    // `Drop` for the parent's objects, or touch locks other (now absent) threads held.
    // `_exit` is async-signal-safe, so it is sound to call after `fork()` in a
    // multi-threaded process.
    unsafe { libc::_exit(code) }
}

/// The child's half of a save: serialize the frozen keyspace to `temp-<childpid>.rdb` (Redis's
/// name, which the parent uses to remove the file if the child is killed), then fsync,
/// rename over `dest`, fsync the directory. Public so that it can be tested without a fork.
///
/// # Errors
/// [`SaveError::Io`] naming the stage; the temporary file is then removed.
pub fn child_save(store: &Counted, dest: &Path, opts: &SaveOptions) -> Result<EncodeStats, SaveError> {
    // EXERCISE 07-fork-child BEGIN
    let dir = dest.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let tmp = dir.join(format!("temp-{}.rdb", std::process::id()));
    let file = AtomicFile::create_at(tmp, dest, Arc::clone(&opts.io))?;
    // No progress counter: the child's memory is its own, the parent would never see it.
    let opts = SaveOptions { progress: None, ..opts.clone() };
    write_snapshot_to(&store.keyspace, file, &opts, ForkSave::NAME)
    // EXERCISE 07-fork-child END
}

/// Peak figures the parent gathers while the child runs.
#[derive(Default)]
struct Samples {
    child_private_dirty: u64,
    parent_plus_child_rss: u64,
}

impl Samples {
    fn take(&mut self, child: i32) {
        if let Some(bytes) = memory::private_dirty_bytes(child) {
            self.child_private_dirty = self.child_private_dirty.max(bytes);
        }
        if let (Some(p), Some(c)) = (memory::resident_bytes(None), memory::resident_bytes(Some(child))) {
            self.parent_plus_child_rss = self.parent_plus_child_rss.max(p + c);
        }
    }
}

// ANCHOR: child_report
/// What the child reports when it saved: bytes and keys written, and its own private dirty
/// memory at the end, bytes.
type ChildReport = (u64, u64, u64);

/// Turn the child's report line (`ok <bytes> <keys> <private dirty bytes>`) into the
/// outcome of the save.
fn parse_report(line: &str, dest: &Path) -> Result<ChildReport, SaveError> {
    if let Some(rest) = line.strip_prefix("ok ") {
        let mut it = rest.split_whitespace().map(str::parse::<u64>);
        if let (Some(Ok(bytes)), Some(Ok(keys)), Some(Ok(dirty))) = (it.next(), it.next(), it.next()) {
            return Ok((bytes, keys, dirty));
        }
    }
    if let Some(rest) = line.strip_prefix("io ") {
        let mut f = rest.splitn(4, '\t');
        let (stage, path, os, msg) = (f.next(), f.next(), f.next(), f.next());
        // The stages AtomicFile reports; anything else is not from our child.
        let stage =
            ["create temp file", "write", "fsync", "rename", "fsync directory"].into_iter().find(|s| Some(*s) == stage);
        if let (Some(stage), Some(path), Some(os), Some(msg)) = (stage, path, os, msg) {
            let source = match os.parse::<i32>() {
                Ok(code) if code != 0 => io::Error::from_raw_os_error(code),
                _ => io::Error::other(msg.to_string()),
            };
            return Err(SaveError::Io { stage, path: PathBuf::from(path), source });
        }
    }
    let msg = line.strip_prefix("err ").unwrap_or(line);
    Err(SaveError::Aborted(format!("the child saving {} failed: {msg}", dest.display())))
}
// ANCHOR_END: child_report

impl SnapshotStrategy for ForkSave {
    const NAME: &'static str = "fork";

    fn from_keyspace(keyspace: Keyspace) -> Self {
        ForkSave {
            inner: Arc::new(Inner {
                store: LockedKeyspace::new(keyspace),
                saves: SaveState::new(),
                child: Mutex::new(None),
            }),
        }
    }

    fn apply(&self, cmd: &Command) -> Result<Applied, CommandError> {
        self.inner.store.apply(cmd)
    }

    fn get(&self, db: usize, key: &[u8]) -> Option<Entry> {
        self.inner.store.get(db, key)
    }

    fn len(&self) -> usize {
        self.inner.store.len()
    }

    fn to_keyspace(&self) -> Keyspace {
        self.inner.store.to_keyspace()
    }

    /// SAVE forks too, and waits: the caller blocks, writers only wait for the fork.
    fn save(&self, dest: &Path, opts: &SaveOptions) -> Result<SaveReport, SaveError> {
        self.bgsave(dest, opts)?.wait()
    }

    #[allow(unsafe_code)] // `fork`: see the SAFETY note at the call.
    fn bgsave(&self, dest: &Path, opts: &SaveOptions) -> Result<BgSave, SaveError> {
        let ticket = self.inner.saves.begin()?;
        let started = Instant::now();
        // Everything the child needs, made before the fork: its report channel, and the
        // CRC's CPU feature detection (so no lazy initialiser runs in the child).
        let (mut from_child, to_parent) =
            UnixStream::pair().map_err(|e| SaveError::Aborted(format!("no socket pair for the child: {e}")))?;
        snaplab_core::rdb::crc::crc64(b"warm up the CPU feature detection before fork");

        // The write lock: no writer is halfway through a change when memory is frozen.
        let guard = self.inner.store.write();
        let cut = guard.cut();
        let fork_started = Instant::now();
        // SAFETY: after fork() the child has only this thread. It uses only what this
        // thread owns or prepared above: the store through `guard` (whose lock this thread
        // holds, so the child never has to lock it), `dest`, `opts` and the socket. It
        // takes no other lock, does not print, allocates only through glibc's malloc
        // (whose arena locks glibc's fork() acquires and reinitialises in the child), and
        // leaves with `_exit` in `child_main`, never returning into code that assumes the
        // parent's other threads exist.
        let forked = unsafe { fork() };
        match forked {
            Ok(ForkResult::Child) => child_main(&guard, dest, opts, to_parent),
            Ok(ForkResult::Parent { child }) => {
                // EXERCISE 08-fork-parent BEGIN
                let fork_time = fork_started.elapsed();
                // Writers resume now: the child's copy of memory is frozen at the fork.
                drop(guard);
                drop(to_parent);
                let time_to_cut = started.elapsed();
                *self.inner.child.lock().unwrap_or_else(|p| p.into_inner()) = Some(child.as_raw());
                let (inner, dest, report_cut) = (Arc::clone(&self.inner), dest.to_path_buf(), cut.clone());
                let waiter = thread::Builder::new().name("fork-wait".into()).spawn(move || {
                    let mut line = Vec::new();
                    let mut samples = Samples::default();
                    let _ = from_child.set_read_timeout(Some(SAMPLE_EVERY));
                    let mut chunk = [0u8; 1024];
                    loop {
                        match from_child.read(&mut chunk) {
                            Ok(0) => break,
                            Ok(n) => line.extend_from_slice(&chunk[..n]),
                            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
                                samples.take(child.as_raw());
                            }
                            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                            Err(_) => break,
                        }
                    }
                    let status = waitpid(child, None);
                    *inner.child.lock().unwrap_or_else(|p| p.into_inner()) = None;
                    let line = String::from_utf8_lossy(&line).trim().to_string();
                    let result = match status {
                        Ok(WaitStatus::Exited(_, 0)) => parse_report(&line, &dest),
                        Ok(WaitStatus::Exited(_, code)) if !line.is_empty() => parse_report(&line, &dest)
                            .and_then(|_| Err(SaveError::Aborted(format!("the child exited with {code}")))),
                        Ok(WaitStatus::Exited(_, code)) => {
                            Err(SaveError::Aborted(format!("the child exited with {code}")))
                        }
                        Ok(WaitStatus::Signaled(_, sig, _)) => {
                            // The child could not clean up after itself; its temporary file
                            // has Redis's name, so the parent knows which one to remove.
                            let dir = dest.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
                            let _ = fs::remove_file(dir.join(format!("temp-{}.rdb", child.as_raw())));
                            Err(SaveError::Aborted(format!("the child was killed by {sig}")))
                        }
                        Ok(other) => Err(SaveError::Aborted(format!("unexpected child status {other:?}"))),
                        Err(e) => Err(SaveError::Aborted(format!("waitpid failed: {e}"))),
                    };
                    let result = result.map(|(bytes, keys, dirty_at_end)| {
                        samples.child_private_dirty = samples.child_private_dirty.max(dirty_at_end);
                        SaveReport {
                            strategy: Self::NAME,
                            path: dest.clone(),
                            cut: report_cut,
                            time_to_cut,
                            duration: started.elapsed(),
                            bytes,
                            keys,
                            finished_at_ms: unix_ms_now(),
                            figures: vec![
                                ("fork_us", fork_time.as_micros() as u64),
                                ("child_private_dirty_peak_bytes", samples.child_private_dirty),
                                ("parent_plus_child_rss_peak_bytes", samples.parent_plus_child_rss),
                                (EXTRA_MEMORY_ELSEWHERE, samples.child_private_dirty),
                            ],
                        }
                    });
                    ticket.finish(result)
                });
                match waiter {
                    Ok(handle) => Ok(BgSave::new(cut, time_to_cut, handle)),
                    Err(e) => {
                        Err(SaveError::Aborted(format!("could not start the thread that waits for the child: {e}")))
                    }
                }
                // EXERCISE 08-fork-parent END
            }
            Err(e) => {
                drop(guard);
                Err(ticket
                    .finish(Err(SaveError::Aborted(format!("fork failed: {e}"))))
                    .expect_err("an error was passed in"))
            }
        }
    }

    fn lastsave(&self) -> Option<i64> {
        self.inner.saves.lastsave()
    }

    fn last_save_status(&self) -> SaveStatus {
        self.inner.saves.status()
    }
}
