//! Progress bars for long saves and loads: shown on stderr only once the operation has
//! run for a second, so quick commands stay quiet and stdout stays clean for tables.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// A bar that follows a counter from a polling thread.
pub struct Progress {
    /// Dropping this sender wakes the polling thread at once, so dropping a [`Progress`]
    /// returns without waiting out a poll interval (callers time the work around it).
    stop: Option<Sender<()>>,
    handle: Option<JoinHandle<()>>,
}

/// Show `label` with `counter / total` (units: `unit`, e.g. "keys" or "bytes"; `total`
/// 0: unknown, a spinner) once a second has passed, until the returned [`Progress`] is dropped. `enabled = false` gives
/// an inert value (for `--quiet`, JSON output, tests).
pub fn track(label: &str, unit: &'static str, total: u64, counter: Arc<AtomicU64>, enabled: bool) -> Progress {
    if !enabled {
        return Progress { stop: None, handle: None };
    }
    let label = label.to_string();
    let (stop, stopped) = mpsc::channel::<()>();
    let handle = thread::spawn(move || {
        let bar = ProgressBar::with_draw_target((total > 0).then_some(total), ProgressDrawTarget::hidden());
        let template = if total == 0 {
            "{msg:>12} {spinner} {elapsed}"
        } else if unit == "bytes" {
            "{msg:>12} [{bar:40}] {bytes}/{total_bytes} ({eta})"
        } else {
            "{msg:>12} [{bar:40}] {human_pos}/{human_len} keys ({eta})"
        };
        if let Ok(style) = ProgressStyle::with_template(template) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_message(label);
        let started = Instant::now();
        let mut shown = false;
        // Polling is fine here: a bar only needs to look alive, ten times a second. The wait
        // is on the channel, not a sleep, so a drop ends it immediately.
        loop {
            if !shown && started.elapsed() >= Duration::from_secs(1) {
                bar.set_draw_target(ProgressDrawTarget::stderr());
                shown = true;
            }
            if total == 0 {
                bar.tick();
            } else {
                bar.set_position(counter.load(Ordering::Relaxed).min(total));
            }
            match stopped.recv_timeout(Duration::from_millis(100)) {
                Err(RecvTimeoutError::Timeout) => continue,
                Ok(()) | Err(RecvTimeoutError::Disconnected) => break,
            }
        }
        bar.finish_and_clear();
    });
    Progress { stop: Some(stop), handle: Some(handle) }
}

/// A spinner with the elapsed time, for work whose progress cannot be read (another
/// process's save); shown, like a bar, once a second has passed.
pub fn spinner(label: &str, enabled: bool) -> Progress {
    track(label, "", 0, Arc::new(AtomicU64::new(0)), enabled)
}

impl Drop for Progress {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}
