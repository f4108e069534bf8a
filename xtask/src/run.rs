//! Running a command the way a grader must: in a process group of its own, under a timeout,
//! with its output kept. When the time is up, or the run is interrupted, or the command
//! ends while something it started is still running (a forked child that hangs), the whole
//! group is killed: nothing a test started outlives the run.

use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

/// How a run ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Status {
    /// It exited with this code.
    Exited(i32),
    /// A signal killed it (a crash: abort, segfault).
    Signaled(String),
    /// It ran past its time and was killed with its group.
    TimedOut(Duration),
}

/// What a run did.
#[derive(Debug)]
pub struct Finished {
    /// How it ended.
    pub status: Status,
    /// Its standard output.
    pub stdout: String,
    /// Its standard error.
    pub stderr: String,
    /// How long it ran.
    pub elapsed: Duration,
}

impl Finished {
    /// Whether it exited with 0.
    pub fn success(&self) -> bool {
        self.status == Status::Exited(0)
    }
}

/// Set by SIGINT, SIGTERM or SIGHUP; a second SIGINT ends xtask at once.
fn interrupted() -> &'static Arc<AtomicBool> {
    static FLAG: OnceLock<Arc<AtomicBool>> = OnceLock::new();
    FLAG.get_or_init(|| {
        let flag = Arc::new(AtomicBool::new(false));
        for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM, signal_hook::consts::SIGHUP] {
            // If the handler cannot be installed, Ctrl-C keeps its default (xtask dies and
            // the group may outlive it); the run itself is unaffected.
            let _ = signal_hook::flag::register_conditional_shutdown(sig, 130, Arc::clone(&flag));
            let _ = signal_hook::flag::register(sig, Arc::clone(&flag));
        }
        flag
    })
}

/// Whether the user asked xtask to stop.
pub fn was_interrupted() -> bool {
    interrupted().load(Ordering::Relaxed)
}

/// The error a run returns when it was interrupted.
#[derive(Debug, thiserror::Error)]
#[error("interrupted")]
pub struct Interrupted;

fn pump(mut from: impl Read + Send + 'static, echo: bool, to_stderr: bool) -> thread::JoinHandle<Vec<u8>> {
    thread::spawn(move || {
        let mut all = Vec::new();
        if echo {
            let mut reader = BufReader::new(from);
            let mut line = Vec::new();
            while reader.read_until(b'\n', &mut line).is_ok_and(|n| n > 0) {
                let text = String::from_utf8_lossy(&line);
                if to_stderr {
                    eprint!("{text}")
                } else {
                    print!("{text}")
                }
                all.extend_from_slice(&line);
                line.clear();
            }
        } else {
            let _ = from.read_to_end(&mut all);
        }
        all
    })
}

/// Run `cmd` in a new process group for at most `timeout`, keeping its output (and
/// echoing it as it comes when `echo`).
///
/// # Errors
/// When it cannot be started, or [`Interrupted`] when the user interrupted it (its group
/// is killed first).
pub fn run(mut cmd: Command, timeout: Duration, echo: bool) -> Result<Finished> {
    let flag = Arc::clone(interrupted());
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).process_group(0);
    let started = Instant::now();
    let mut child = cmd.spawn().with_context(|| format!("cannot start {:?}", cmd.get_program()))?;
    let group = Pid::from_raw(child.id() as i32);
    let out = pump(child.stdout.take().context("no stdout pipe")?, echo, false);
    let err = pump(child.stderr.take().context("no stderr pipe")?, echo, true);
    let killed = Mutex::new(None::<Status>);
    let status = loop {
        if let Some(status) = child.try_wait().context("waiting for the run")? {
            break status;
        }
        let over = started.elapsed() >= timeout;
        if over || flag.load(Ordering::Relaxed) {
            // SIGKILL: a test that ignores or hangs in SIGTERM must not keep the grade waiting.
            let _ = killpg(group, Signal::SIGKILL);
            if over {
                *killed.lock().unwrap_or_else(|p| p.into_inner()) = Some(Status::TimedOut(timeout));
            }
            break child.wait().context("waiting for the killed run")?;
        }
        thread::sleep(Duration::from_millis(50));
    };
    // Whatever the command left running in its group (a forked child that hangs) goes too,
    // or its end of the pipes would keep the readers waiting.
    let _ = killpg(group, Signal::SIGKILL);
    let stdout = String::from_utf8_lossy(&out.join().unwrap_or_default()).into_owned();
    let stderr = String::from_utf8_lossy(&err.join().unwrap_or_default()).into_owned();
    if flag.load(Ordering::Relaxed) {
        return Err(Interrupted.into());
    }
    let status = match killed.into_inner().unwrap_or_else(|p| p.into_inner()) {
        Some(timed_out) => timed_out,
        None => match (status.code(), status.signal()) {
            (Some(code), _) => Status::Exited(code),
            (None, Some(sig)) => Status::Signaled(Signal::try_from(sig).map_or(sig.to_string(), |s| s.to_string())),
            (None, None) => Status::Signaled("unknown".into()),
        },
    };
    Ok(Finished { status, stdout, stderr, elapsed: started.elapsed() })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A command that outlives its timeout is killed with everything it started, and the
    /// run says it timed out; the child it left behind is gone too.
    #[test]
    fn a_hanging_group_is_killed() {
        let dir = tempfile::tempdir().unwrap();
        let pidfile = dir.path().join("grandchild");
        let mut cmd = Command::new("sh");
        // The grandchild writes its pid, then both sleep far past the timeout.
        cmd.arg("-c").arg(format!("sh -c 'echo $$ > {}; exec sleep 600' & echo started; sleep 600", pidfile.display()));
        let done = run(cmd, Duration::from_millis(1500), false).unwrap();
        assert_eq!(done.status, Status::TimedOut(Duration::from_millis(1500)));
        assert!(done.stdout.contains("started"));
        let pid: i32 = std::fs::read_to_string(&pidfile).unwrap().trim().parse().unwrap();
        // SIGKILL is delivered at once but takes effect when the kernel next schedules the
        // process: poll (a dead process is gone from /proc, or a zombie, state Z).
        let alive = || {
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .is_ok_and(|s| !s.rsplit_once(')').is_some_and(|(_, r)| r.trim_start().starts_with('Z')))
        };
        let mut polls = 0;
        while alive() && polls < 1000 {
            thread::sleep(Duration::from_millis(10));
            polls += 1;
        }
        assert!(!alive(), "the grandchild {pid} outlived the run");
    }

    /// A command that ends on its own reports its exit code and output; a straggler it left
    /// in its group is killed, so the run does not wait for it.
    #[test]
    fn exit_codes_and_stragglers() {
        let mut cmd = Command::new("sh");
        cmd.arg("-c").arg("sleep 600 & echo out; echo err >&2; exit 3");
        let done = run(cmd, Duration::from_secs(60), false).unwrap();
        assert_eq!(done.status, Status::Exited(3));
        assert_eq!((done.stdout.as_str(), done.stderr.as_str()), ("out\n", "err\n"));
    }
}
