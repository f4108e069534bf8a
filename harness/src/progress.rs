//! Progress bars for long saves and loads: shown on stderr only once the operation has
//! run for a second, so quick commands stay quiet and stdout stays clean for tables.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// A bar that follows a counter from a polling thread.
pub struct Progress {
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
}

/// Show `label` with `counter / total` (units: `unit`, e.g. "keys" or "bytes") once a
/// second has passed, until the returned [`Progress`] is dropped. `enabled = false` gives
/// an inert value (for `--quiet`, JSON output, tests).
pub fn track(label: &str, unit: &'static str, total: u64, counter: Arc<AtomicU64>, enabled: bool) -> Progress {
    let stop = Arc::new(AtomicBool::new(false));
    if !enabled {
        return Progress { stop, handle: None };
    }
    let label = label.to_string();
    let stop_flag = Arc::clone(&stop);
    let handle = thread::spawn(move || {
        let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::hidden());
        let template = if unit == "bytes" {
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
        // Polling is fine here: a bar only needs to look alive, ten times a second.
        while !stop_flag.load(Ordering::Relaxed) {
            if !shown && started.elapsed() >= Duration::from_secs(1) {
                bar.set_draw_target(ProgressDrawTarget::stderr());
                shown = true;
            }
            bar.set_position(counter.load(Ordering::Relaxed).min(total));
            thread::sleep(Duration::from_millis(100));
        }
        bar.finish_and_clear();
    });
    Progress { stop, handle: Some(handle) }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}
