#![doc = include_str!("../README.md")]

pub mod delta;

use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard, mpsc};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use snaplab_core::{
    Applied, BgSave, Command, CommandError, Cut, Entry, Keyspace, SaveError, SaveOptions, SaveReport, SaveState,
    SaveStatus, SaveTicket, SnapshotStrategy, WriteStamp, unix_ms_now, write_snapshot,
};

pub use delta::Delta;

/// When the saver's image is first built.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FirstImage {
    /// A copy of the keyspace the store starts from (or loads): the store holds two full
    /// copies from the start, and every cut, the first included, is an O(1) flip. What
    /// [`PingPong::from_keyspace`] does.
    AtStart,
    /// No image until the first BGSAVE, which copies the live state under the lock, as the
    /// clone strategy does at every save: memory is saved until then, and the first cut
    /// costs a full copy during which writers wait. Here to measure the choice against.
    AtFirstCut,
}

// ANCHOR: live
/// What writers hold the lock on: the live keyspace, its write counter, and which delta
/// is current.
struct Live {
    keyspace: Keyspace,
    /// Writes applied so far (refused ones do not count).
    writes: u64,
    /// Index into [`Inner::deltas`] of the delta this period's writes go to.
    current: usize,
}

struct Inner {
    live: RwLock<Live>,
    /// Ping and pong. Writers lock only `deltas[live.current]`, and only while they hold
    /// the live lock; the saver locks only the other one, the retired delta. So the two
    /// never wait for each other: the mutexes are there for the type system, never contended.
    deltas: [Mutex<Delta>; 2],
    /// The saver's image: the live state at the last cut whose delta was applied. `None`
    /// only before the first save of a store built with [`FirstImage::AtFirstCut`].
    /// Writers never touch it.
    image: Mutex<Option<Keyspace>>,
    saves: Arc<SaveState>,
    /// A saver thread started ahead of the save that will use it (see [`Standby`]).
    standby: Mutex<Option<Standby>>,
}
// ANCHOR_END: live

/// What a saver thread runs: one whole save.
type SaveJob = Box<dyn FnOnce() -> Result<SaveReport, SaveError> + Send>;

/// A saver thread started ahead of time, waiting for its save. Starting a thread takes
/// tens of microseconds (more on a busy machine), as long as the rest of the cut many
/// times over, and `bgsave` must hand back the thread that finishes the save; so each
/// saver starts the next one's thread before it finishes, off the writers' path, and the
/// store starts the first when it is built. Dropping the store drops the sender, and the
/// waiting thread ends.
struct Standby {
    job: mpsc::Sender<SaveJob>,
    handle: JoinHandle<Result<SaveReport, SaveError>>,
}

impl Standby {
    /// Start a thread that waits for one save. `None` if the thread cannot be started:
    /// `bgsave` then starts one itself.
    fn start() -> Option<Standby> {
        let (job, jobs) = mpsc::channel::<SaveJob>();
        let handle = thread::Builder::new()
            .name("pingpong-save".into())
            .spawn(move || match jobs.recv() {
                Ok(save) => save(),
                Err(_) => Err(SaveError::Aborted("the store was dropped before this saver was used".into())),
            })
            .ok()?;
        Some(Standby { job, handle })
    }
}

/// Run `save` on the standby saver thread, or on a new thread if there is none.
///
/// # Errors
/// The thread could not be started; `save` was dropped without running.
fn start_save(inner: &Inner, save: SaveJob) -> std::io::Result<JoinHandle<Result<SaveReport, SaveError>>> {
    let save = match lock(&inner.standby).take() {
        Some(standby) => match standby.job.send(save) {
            Ok(()) => return Ok(standby.handle),
            // The standby waits until it gets a job or the store is dropped, so this does
            // not happen; if it did, the job comes back and gets a thread of its own.
            Err(mpsc::SendError(save)) => save,
        },
        None => save,
    };
    thread::Builder::new().name("pingpong-save".into()).spawn(save)
}

/// A store that keeps, besides its live keyspace, two deltas (ping and pong) and an image
/// owned by the saver. Every write goes to the live keyspace and to the current delta;
/// BGSAVE flips which delta is current (the cut, O(1)); the saver folds the retired delta
/// into its image and serializes the image. Writers never wait for the saver.
///
/// Cheap to clone: clones share the same store.
#[derive(Clone)]
pub struct PingPong {
    inner: Arc<Inner>,
}

impl PingPong {
    /// A store holding `keyspace` whose image is built as `first` says.
    pub fn with_first_image(keyspace: Keyspace, first: FirstImage) -> Self {
        let image = match first {
            FirstImage::AtStart => Some(keyspace.clone()),
            FirstImage::AtFirstCut => None,
        };
        PingPong {
            inner: Arc::new(Inner {
                live: RwLock::new(Live { keyspace, writes: 0, current: 0 }),
                deltas: [Mutex::new(Delta::new()), Mutex::new(Delta::new())],
                image: Mutex::new(image),
                saves: SaveState::new(),
                standby: Mutex::new(Standby::start()),
            }),
        }
    }

    fn read(&self) -> RwLockReadGuard<'_, Live> {
        // Commands validate before they mutate, so a writer that panicked cannot have left
        // the keyspace half-changed: a poisoned lock still guards a whole keyspace.
        self.inner.live.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, Live> {
        self.inner.live.write().unwrap_or_else(|p| p.into_inner())
    }
}

/// Lock `m`, taking over a poisoned lock: see [`Inner::deltas`] and [`Inner::image`] for
/// who holds each. Production note: a saver that panicked halfway through applying a
/// delta leaves an image that is neither cut's state; a production store would mark the
/// image stale and rebuild it from the live state instead of carrying on.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Figures of one save's work on its image, for the report.
struct Folded {
    applied: delta::Applied,
    /// Time to fold the retired delta into the image (or to take the image, at a first cut).
    fold: Duration,
}

impl Inner {
    // ANCHOR: fold
    /// The saver's first step: bring the image to the cut by folding the retired delta
    /// into it (or take `first_image`, the copy made at a first cut, and drop the delta,
    /// whose writes that copy already holds). Either way the retired delta is empty after,
    /// ready to be current again at the next cut.
    ///
    /// This runs before the file is written, so a save whose I/O fails leaves an image
    /// that holds the live state at its cut and an empty retired delta: the next save's
    /// delta covers exactly the writes after that cut, and its file is right.
    fn fold(&self, retired: usize, image: &mut Option<Keyspace>, first_image: Option<Keyspace>) -> Folded {
        let started = Instant::now();
        let mut delta = lock(&self.deltas[retired]);
        let applied = match (first_image, image.as_mut()) {
            (Some(copy), _) => {
                *image = Some(copy);
                delta.clear();
                delta::Applied::default()
            }
            (None, Some(image)) => delta.apply_to(image),
            (None, None) => unreachable!("a store without an image copies the live state at its first cut"),
        };
        Folded { applied, fold: started.elapsed() }
    }
    // ANCHOR_END: fold
}

impl SnapshotStrategy for PingPong {
    const NAME: &'static str = "pingpong";

    /// A store holding `keyspace`, with the saver's image copied from it now
    /// ([`FirstImage::AtStart`]), so that the first cut is as cheap as every other.
    fn from_keyspace(keyspace: Keyspace) -> Self {
        Self::with_first_image(keyspace, FirstImage::AtStart)
    }

    // ANCHOR: apply
    fn apply(&self, cmd: &Command) -> Result<Applied, CommandError> {
        let mut live = self.write();
        let reply = live.keyspace.apply(cmd, unix_ms_now())?;
        live.writes += 1;
        // The double write: the same change goes to the current delta, under the same hold
        // of the live lock, so a cut (which takes that lock) never splits the two.
        lock(&self.inner.deltas[live.current]).record(&live.keyspace, cmd);
        Ok(Applied::new(reply, WriteStamp { shard: 0, seq: live.writes }))
    }
    // ANCHOR_END: apply

    fn get(&self, db: usize, key: &[u8]) -> Option<Entry> {
        self.read().keyspace.get(db, key).filter(|e| !e.is_expired(unix_ms_now())).cloned()
    }

    fn len(&self) -> usize {
        self.read().keyspace.len()
    }

    fn to_keyspace(&self) -> Keyspace {
        self.read().keyspace.clone()
    }

    /// SAVE is BGSAVE plus waiting: the cut is as cheap, the caller waits for the file.
    fn save(&self, dest: &Path, opts: &SaveOptions) -> Result<SaveReport, SaveError> {
        self.bgsave(dest, opts)?.wait()
    }

    fn bgsave(&self, dest: &Path, opts: &SaveOptions) -> Result<BgSave, SaveError> {
        let ticket = self.inner.saves.begin()?;
        let started = Instant::now();
        // Only the ticket's holder changes the image, so it cannot appear or vanish between
        // this look and the cut.
        let needs_first_image = lock(&self.inner.image).is_none();
        // ANCHOR: cut
        let mut live = self.write();
        let retired = live.current;
        live.current = 1 - retired;
        let cut = Cut::single(live.writes);
        // Only a store built with `FirstImage::AtFirstCut`, once: a full copy under the lock.
        let first_image = needs_first_image.then(|| live.keyspace.clone());
        // Writers go on from here, into the other delta; the retired one is the saver's.
        drop(live);
        // ANCHOR_END: cut
        let time_to_cut = started.elapsed();

        let (inner, dest, opts, report_cut) = (Arc::clone(&self.inner), dest.to_path_buf(), opts.clone(), cut.clone());
        // The ticket and the first image go to the saver through a slot, so that if its
        // thread cannot start this thread still holds both (below).
        let slot = Arc::new(Mutex::new(Some((ticket, first_image))));
        let for_saver = Arc::clone(&slot);
        let save: SaveJob = Box::new(move || {
            // Cannot fail: the slot is filled before the save starts and only emptied here
            // or, if the save never started, by this function's caller.
            let (ticket, first_image) = lock(&for_saver).take().expect("the saver takes the hand-off once");
            save_image(&inner, retired, first_image, &dest, &opts, report_cut, started, time_to_cut, ticket)
        });
        match start_save(&self.inner, save) {
            Ok(handle) => Ok(BgSave::new(cut, time_to_cut, handle)),
            Err(e) => {
                let why = format!("could not start the save thread: {e}");
                // Cannot fail: the closure that would have taken the hand-off never ran.
                let (ticket, first_image) = lock(&slot).take().expect("no saver took the hand-off");
                // The flip happened: fold the retired delta now, or it would come back as
                // the current delta at the next cut still holding this period's writes.
                // The ticket is finished only after, so no other save can flip meanwhile.
                self.inner.fold(retired, &mut lock(&self.inner.image), first_image);
                let _ = ticket.finish(Err(SaveError::Aborted(why.clone())));
                Err(SaveError::Aborted(why))
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

// ANCHOR: saver
/// The saver: fold the retired delta into the image, write the image as an RDB dump, and
/// finish the ticket. Runs on its own thread, holding only the image and the retired
/// delta, neither of which a writer ever locks.
#[allow(clippy::too_many_arguments)]
fn save_image(
    inner: &Inner,
    retired: usize,
    first_image: Option<Keyspace>,
    dest: &Path,
    opts: &SaveOptions,
    cut: Cut,
    started: Instant,
    time_to_cut: Duration,
    ticket: SaveTicket,
) -> Result<SaveReport, SaveError> {
    background_priority();
    let first = first_image.is_some();
    let mut image = lock(&inner.image);
    let folded = inner.fold(retired, &mut image, first_image);
    let Some(image) = image.as_ref() else {
        unreachable!("fold leaves an image in place");
    };
    let written = write_snapshot(image, dest, opts, PingPong::NAME);
    // One walk over the image after the file is in place; it delays only the report.
    let image_bytes = image.heap_bytes() as u64;
    let result = written.map(|stats| SaveReport {
        strategy: PingPong::NAME,
        path: dest.to_path_buf(),
        cut,
        time_to_cut,
        duration: started.elapsed(),
        bytes: stats.bytes,
        keys: stats.keys,
        finished_at_ms: unix_ms_now(),
        figures: vec![
            ("time_to_cut_us", time_to_cut.as_micros() as u64),
            ("image_bytes", image_bytes),
            ("delta_applied_bytes", folded.applied.bytes),
            ("delta_applied_keys_count", folded.applied.keys),
            ("delta_flushed_dbs_count", folded.applied.flushed_dbs),
            ("delta_apply_us", folded.fold.as_micros() as u64),
            ("first_image_copies_count", u64::from(first)),
        ],
    });
    // The next save's thread, started now, before the ticket frees the slot for it.
    *lock(&inner.standby) = Standby::start();
    ticket.finish(result)
}
// ANCHOR_END: saver

/// Run the saver at background priority (Linux `SCHED_IDLE`): it uses whatever CPU the
/// writers leave. No lock is shared, but a core is: on a 2-core machine a saver at equal
/// priority serializing flat out delays a writer's wake-up by whole scheduler slices, so
/// the writers would wait for the saver after all, for the CPU. The paper's checkpointer
/// has a core of its own. Failure to change priority is harmless.
fn background_priority() {
    use thread_priority::{NormalThreadSchedulePolicy, ThreadPriority, ThreadSchedulePolicy};
    let _ = thread_priority::set_thread_priority_and_policy(
        thread_priority::thread_native_id(),
        ThreadPriority::Min,
        ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Idle),
    );
}

#[cfg(test)]
mod tests;
