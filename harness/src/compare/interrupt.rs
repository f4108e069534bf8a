//! Ctrl-C (SIGINT), SIGTERM and SIGHUP during `snaplab compare`: stop what it started, keep
//! what it finished.
//!
//! Without a handler the signal ends the process at once: no destructor runs, so the
//! redis-server it started, the worker process running a strategy, and the temporary
//! directories holding copies of the dump all stay behind. With [`install`], the signal
//! only sets a flag and sends SIGTERM to every process registered with [`watch`]; the
//! code waiting on those processes sees them end, returns an error, and the ordinary
//! drop guards ([`crate::redis_server::RedisServer`], `tempfile::TempDir`) clean up on
//! the way out, while `compare` prints the rows finished so far.
//!
//! SIGTERM, not SIGKILL: redis-server answers it by killing its BGSAVE child and removing
//! its temporary file (Redis `src/server.c`, `prepareForShutdown`), which SIGKILL would
//! leave running.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

static INTERRUPTED: AtomicBool = AtomicBool::new(false);
static WATCHED: Mutex<Vec<u32>> = Mutex::new(Vec::new());
static INSTALLED: OnceLock<()> = OnceLock::new();

/// Take over SIGINT, SIGTERM and SIGHUP for this process (once; later calls do nothing).
///
/// # Errors
/// When the handlers cannot be registered.
pub fn install() -> std::io::Result<()> {
    if INSTALLED.get().is_some() {
        return Ok(());
    }
    let mut signals = Signals::new([SIGINT, SIGTERM, SIGHUP])?;
    std::thread::Builder::new().name("signals".into()).spawn(move || {
        for _ in signals.forever() {
            INTERRUPTED.store(true, Ordering::SeqCst);
            for &pid in WATCHED.lock().unwrap_or_else(|e| e.into_inner()).iter() {
                let _ = kill(Pid::from_raw(pid as i32), Signal::SIGTERM);
            }
        }
    })?;
    let _ = INSTALLED.set(());
    Ok(())
}

/// Whether a signal has arrived since [`install`].
pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

/// Send SIGTERM to `pid` if a signal arrives while the returned guard lives (at once, if
/// one already has). Dropping the guard forgets the process; it does not stop it.
pub fn watch(pid: u32) -> Watched {
    let mut list = WATCHED.lock().unwrap_or_else(|e| e.into_inner());
    list.push(pid);
    // Under the lock, so a signal handled meanwhile either sees the pid or is seen here.
    if interrupted() {
        let _ = kill(Pid::from_raw(pid as i32), Signal::SIGTERM);
    }
    Watched(pid)
}

/// A process [`watch`]ed until this is dropped.
#[derive(Debug)]
pub struct Watched(u32);

impl Drop for Watched {
    fn drop(&mut self) {
        let mut list = WATCHED.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(i) = list.iter().position(|&p| p == self.0) {
            list.swap_remove(i);
        }
    }
}
