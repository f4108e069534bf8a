//! The point-in-time checker: given what writers did and what a snapshot holds, find an
//! instant the snapshot is the state of, or say precisely why there is none.
//!
//! The definition of a point-in-time snapshot, which this module implements (the harness
//! README's "For students" section and the book's chapter "Point-in-time and the cut"
//! state it too): the snapshot is the keyspace as it was at one instant `t` between the BGSAVE call and its
//! return. So
//!
//! - every write that **completed before** the call is in it, and no write that **started
//!   after** the return is;
//! - every write in it was **invoked before `t`** and every write missing from it
//!   **completed after `t`**: the latest invocation among included writes precedes the
//!   earliest completion among excluded writes, across all threads. Checking each thread's
//!   writes on its own is not enough: a store copied shard by shard gives every thread a
//!   prefix of its writes, yet no instant had all those prefixes at once;
//! - a write that overlaps `t` may fall either side, all or nothing (a FLUSHALL too).
//!
//! The checker is black-box: it needs no cooperation from the strategy, only the history
//! the writers recorded (each write with its thread, its sequence number in that thread,
//! and its invocation and completion times on one monotonic clock) and the decoded
//! snapshot.
//!
//! # How it decides
//! Keys are independent objects, so the question splits by key (linearizability is a
//! *local* property: Herlihy and Wing, "Linearizability: A Correctness Condition for
//! Concurrent Objects", ACM TOPLAS 1990). For each key, the checker finds the instants
//! `t` at which the key could have held its state in the snapshot. At `t`, a write to
//! the key is *included* (it completed before `t`), *excluded* (it started after `t`) or
//! *in flight* (either); the included writes, plus any choice of those in flight, applied
//! in any order real time allows (a write that completed before another started comes
//! first), give the states the key could hold. The search runs over sets of writes, one
//! prefix per thread, each set with the states it can produce and the stretch of time
//! at which it is possible (`key_instants`). The snapshot is point-in-time exactly when
//! some `t` between the call and the return is possible for every key: an intersection of
//! sets of instants. When it is empty, the sets say which writes are to blame.
//!
//! Writes to one key by several threads (Redis's writers with a skewed key choice) are
//! fine: overlapping ones may be ordered either way. A multi-key write (FLUSHDB, FLUSHALL)
//! must not overlap any other write in time (the conformance suite runs them exclusively
//! of the other writers); then its place in every key's order is fixed, and the only
//! question is whether `t` falls before or after it, the same answer for every key.

use std::collections::{HashMap, HashSet};
use std::fmt;

use snaplab_core::rdb::crc::crc64;
use snaplab_core::rdb::encode::encode_entry;
use snaplab_core::{
    Command, DB_COUNT, Entry, Guarantee, Keyspace, SlotChange, WriteStamp, apply_to_slot, escape, unix_ms_now,
};

// ANCHOR: history
/// One write as a writer thread issued it.
#[derive(Clone, Debug)]
pub struct Write {
    /// Its position in its thread's writes, from 1.
    pub seq: u64,
    /// The command.
    pub cmd: Command,
    /// When the writer called `apply`, ns since the history's epoch.
    pub invoked_ns: u64,
    /// When `apply` returned, ns since the epoch.
    pub completed_ns: u64,
    /// The stamps the strategy gave it ([`snaplab_core::Applied::stamps`]); empty if the
    /// write was refused, or when the store gives none (Redis). The black-box check
    /// ignores them; [`check_reported_cut`] checks them.
    pub stamps: Vec<WriteStamp>,
}

/// Everything the writers and the saver recorded around one BGSAVE.
#[derive(Clone, Debug, Default)]
pub struct History {
    /// Per writer thread, its writes in order (`seq` 1, 2, ...).
    pub threads: Vec<Vec<Write>>,
    /// When BGSAVE was called, ns since the epoch.
    pub bgsave_called_ns: u64,
    /// When BGSAVE returned, ns since the epoch.
    pub bgsave_returned_ns: u64,
}
// ANCHOR_END: history

/// The instant found: the snapshot is the keyspace as it was at `instant_ns`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FoundCut {
    /// The instant, ns since the history's epoch (between the call and the return).
    pub instant_ns: u64,
    /// Per thread, how many of its writes completed before the instant (all in the snapshot).
    pub completed_before: Vec<u64>,
    /// Per thread, how many of its writes had started by the instant (the snapshot holds
    /// at most these; the one write a thread may have had in flight can fall either side).
    pub invoked_by: Vec<u64>,
}

/// A write named in a [`Violation`]: who issued it, what it was and when.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WriteRef {
    /// Writer thread.
    pub thread: usize,
    /// `write #7 (SET db0 w1:s3)`.
    pub write: String,
    /// When it was invoked, µs since the history's epoch.
    pub invoked_us: u64,
    /// When it completed, µs since the epoch.
    pub completed_us: u64,
}

impl fmt::Display for WriteRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "thread {}'s {}", self.thread, self.write)
    }
}

/// Two writes no single instant had one without the other of: `present` is in the
/// snapshot, `missing` is not, and `missing` completed before `present` was invoked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Conflict {
    /// The write that is in the snapshot.
    pub present: WriteRef,
    /// The key whose state shows `present` is in it.
    pub present_key: String,
    /// The write that is not, completed before `present` was invoked.
    pub missing: WriteRef,
    /// The key whose state shows `missing` is not in it.
    pub missing_key: String,
}

/// Why a snapshot is not a point-in-time snapshot. The `Display` text is written for the
/// student whose strategy produced it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Violation {
    /// A write that completed before BGSAVE was called is missing.
    MissingCompletedWrite {
        /// Writer thread.
        thread: usize,
        /// The missing write.
        write: String,
        /// How long before the call it completed, µs.
        before_call_us: u64,
    },
    /// A write that started after BGSAVE returned is in the snapshot.
    LeakedLaterWrite {
        /// Writer thread.
        thread: usize,
        /// The write that leaked in.
        write: String,
        /// How long after the return it started, µs.
        after_return_us: u64,
    },
    /// The snapshot holds a later write of a thread but not an earlier one.
    NotAPrefix {
        /// Writer thread.
        thread: usize,
        /// The later write that is present.
        present: String,
        /// The key whose state shows it is present.
        present_key: String,
        /// The earlier write that is missing.
        missing: String,
        /// The key whose state shows it is missing.
        missing_key: String,
    },
    /// The snapshot holds a write that was invoked only after another write, missing from
    /// it, had completed: no single instant had the one without the other.
    NotOneInstant(Box<Conflict>),
    /// Part of a multi-key write (FLUSHDB, FLUSHALL) is in the snapshot and part is not.
    SplitMultiKeyWrite {
        /// The multi-key write.
        write: WriteRef,
        /// A key that shows the write is in the snapshot (db and key, escaped).
        applied_key: String,
        /// A key that shows it is not.
        unapplied_key: String,
    },
    /// A key's state in the snapshot is not its state after any writes to it.
    NoSuchState {
        /// The threads that wrote the key.
        threads: Vec<usize>,
        /// Database.
        db: usize,
        /// The key, escaped.
        key: String,
        /// What was found.
        found: String,
    },
    /// A key no writer touched is not as it was before the save.
    UntouchedKeyChanged {
        /// Database.
        db: usize,
        /// The key, escaped.
        key: String,
        /// What is wrong: missing, appeared, or differs.
        how: &'static str,
    },
    /// The sets of instants the keys allow do not meet, and no two keys alone show why.
    NoCommonInstant {
        /// A description of the keys whose instants do not meet.
        detail: String,
    },
    /// The history itself breaks the checker's assumptions (not the strategy's fault).
    BadHistory(String),
}

// ANCHOR: rules
/// The rule every snapshot must satisfy across threads, as the messages name it.
pub const ONE_INSTANT_RULE: &str = "the snapshot is the state at one instant: every write in it was invoked before every write missing from it completed";

/// The rules of a point-in-time snapshot, as [`Violation::rule`] names them (every
/// violation but [`Violation::BadHistory`], which is not the strategy's fault).
pub const POINT_IN_TIME_RULES: [&str; 7] = [
    "every write completed before BGSAVE was called is in the snapshot",
    "no write that started after BGSAVE returned is in the snapshot",
    "each thread's writes in the snapshot are a prefix of its writes",
    ONE_INSTANT_RULE,
    "a multi-key write is all in the snapshot or not at all",
    "every key in the snapshot holds a state it really had",
    "keys no write touched are in the snapshot as they were",
];
// ANCHOR_END: rules

// ANCHOR: log_close_rules
/// The two rules that read differently for a strategy whose dump is the state at its log's
/// close ([`Guarantee::AtLogClose`]): the window is from the close's request to its
/// acknowledgement, not BGSAVE's call and return. The other rules are the same words.
pub const AT_LOG_CLOSE_RULES: [&str; 2] = [
    "every write completed before the log's close was requested is in the dump",
    "no write that started after the log's close was acknowledged is in the dump",
];
// ANCHOR_END: log_close_rules

impl Violation {
    /// The rule broken, in the words of the guarantee `g` the window of the history was
    /// built for (see [`find_cut`]).
    pub fn rule_for(&self, g: Guarantee) -> &'static str {
        match (g, self) {
            (Guarantee::AtLogClose, Violation::MissingCompletedWrite { .. }) => AT_LOG_CLOSE_RULES[0],
            (Guarantee::AtLogClose, Violation::LeakedLaterWrite { .. }) => AT_LOG_CLOSE_RULES[1],
            _ => self.rule(),
        }
    }

    /// What happened, in the words of the guarantee `g`.
    pub fn detail_for(&self, g: Guarantee) -> String {
        match (g, self) {
            (Guarantee::AtLogClose, Violation::MissingCompletedWrite { thread, write, before_call_us }) => format!(
                "thread {thread}'s {write} completed {before_call_us} µs before the log's close was requested, but \
                 the dump does not contain it: it is neither in the traversal nor in the log"
            ),
            (Guarantee::AtLogClose, Violation::LeakedLaterWrite { thread, write, after_return_us }) => format!(
                "thread {thread}'s {write} started {after_return_us} µs after the log's close was acknowledged, but \
                 the dump contains it"
            ),
            _ => self.detail(),
        }
    }

    /// The rule broken, in one line (the same words the harness README uses).
    pub fn rule(&self) -> &'static str {
        let [missing, leaked, prefix, one_instant, split, state, untouched] = POINT_IN_TIME_RULES;
        match self {
            Violation::MissingCompletedWrite { .. } => missing,
            Violation::LeakedLaterWrite { .. } => leaked,
            Violation::NotAPrefix { .. } => prefix,
            Violation::NotOneInstant(_) | Violation::NoCommonInstant { .. } => one_instant,
            Violation::SplitMultiKeyWrite { .. } => split,
            Violation::NoSuchState { .. } => state,
            Violation::UntouchedKeyChanged { .. } => untouched,
            Violation::BadHistory(_) => "the history the writers recorded is one the checker can judge",
        }
    }

    /// What happened, naming the writes, keys and times involved.
    pub fn detail(&self) -> String {
        match self {
            Violation::MissingCompletedWrite { thread, write, before_call_us } => format!(
                "thread {thread}'s {write} completed {before_call_us} µs before BGSAVE was called, but the snapshot \
                 does not contain it"
            ),
            Violation::LeakedLaterWrite { thread, write, after_return_us } => format!(
                "thread {thread}'s {write} started {after_return_us} µs after BGSAVE returned, but the snapshot \
                 contains it"
            ),
            Violation::NotAPrefix { thread, present, present_key, missing, missing_key } => format!(
                "the snapshot contains thread {thread}'s {present} (key {present_key} shows it) but not its earlier \
                 {missing} (key {missing_key} shows it)"
            ),
            Violation::NotOneInstant(c) => format!(
                "the snapshot contains {} (key {} shows it), invoked at {} µs, but not {} (key {} shows it), which \
                 had completed at {} µs, {} µs earlier: no single instant had the one without the other",
                c.present,
                c.present_key,
                c.present.invoked_us,
                c.missing,
                c.missing_key,
                c.missing.completed_us,
                c.present.invoked_us.saturating_sub(c.missing.completed_us),
            ),
            Violation::SplitMultiKeyWrite { write, applied_key, unapplied_key } => format!(
                "key {applied_key} shows that {write} is in the snapshot, but key {unapplied_key} shows that it is not"
            ),
            Violation::NoSuchState { threads, db, key, found } => format!(
                "key {key} (db {db}) holds {found}, which is not its state after any of the writes to it (by \
                 thread(s) {threads:?}) in any order real time allows: the snapshot shows a state that never existed"
            ),
            Violation::UntouchedKeyChanged { db, key, how } => {
                format!("key {key} (db {db}) was not written during the test, yet in the snapshot it {how}")
            }
            Violation::NoCommonInstant { detail } => detail.clone(),
            Violation::BadHistory(why) => format!("it is not (this is not the strategy's fault): {why}"),
        }
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "rule '{}' is violated: {}", self.rule(), self.detail())
    }
}

impl std::error::Error for Violation {}

// ---- instants --------------------------------------------------------------------------

// ANCHOR: instants
/// Instants on a finer scale than the clock's ns: `4 * ns + 4`. The spare values between
/// two ns give a multi-key write a switch point of its own ("just after it"), and keep
/// `t - 1` from underflowing.
type Instant = u64;

fn at(ns: u64) -> Instant {
    ns.saturating_mul(4).saturating_add(4)
}

fn ns_of(t: Instant) -> u64 {
    t.saturating_sub(4) / 4
}

/// Inclusive ranges of instants, sorted and disjoint.
type Instants = Vec<(Instant, Instant)>;

fn intersect(a: &Instants, b: &Instants) -> Instants {
    let mut out = Vec::new();
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        let start = a[i].0.max(b[j].0);
        let end = a[i].1.min(b[j].1);
        if start <= end {
            out.push((start, end));
        }
        if a[i].1 < b[j].1 { i += 1 } else { j += 1 }
    }
    out
}
// ANCHOR_END: instants

// ANCHOR: op
/// One write placed in time. At instant `t` it is excluded if `t < lo`, included if
/// `t > hi`, and may be either (open) in between. For a single-key write `[lo, hi]` is its
/// `[invoked, completed]`; a multi-key write is never open (`hi = lo - 1`): it switches
/// from excluded to included at `lo`, for every key at once.
#[derive(Clone, Copy, Debug)]
struct Op<'h> {
    thread: usize,
    w: &'h Write,
    lo: Instant,
    hi: Instant,
}
// ANCHOR_END: op

impl Op<'_> {
    // ANCHOR: precedes
    /// Real time puts `self` before `other` (it completed before the other started).
    fn precedes(&self, other: &Op<'_>) -> bool {
        self.hi < other.lo
    }
    // ANCHOR_END: precedes

    fn multi(&self) -> bool {
        self.w.cmd.key().is_none()
    }

    fn describe(&self) -> WriteRef {
        WriteRef {
            thread: self.thread,
            write: describe(&self.w.cmd, self.w.seq),
            invoked_us: self.w.invoked_ns / 1000,
            completed_us: self.w.completed_ns / 1000,
        }
    }
}

/// A write for messages: `write #7 (SET db0 t1:s3)`.
fn describe(cmd: &Command, seq: u64) -> String {
    match (cmd.key(), cmd.db()) {
        (Some(key), db) => format!("write #{seq} ({} db{} {})", cmd.name(), db.unwrap_or(0), escape(key)),
        (None, Some(db)) => format!("write #{seq} ({} db{db})", cmd.name()),
        (None, None) => format!("write #{seq} ({})", cmd.name()),
    }
}

fn dbs_of(cmd: &Command) -> Vec<usize> {
    match cmd {
        Command::FlushAll => (0..DB_COUNT).collect(),
        other => other.db().into_iter().collect(),
    }
}

// ---- one key's states ------------------------------------------------------------------

/// A key's state: its entry, or `None` when absent.
type State = Option<Entry>;

/// A fingerprint of a state, to tell states apart cheaply: a CRC-64 and the length of the
/// entry's canonical encoding (sets and hashes sorted, so equal states fingerprint
/// equally), or `None` when absent.
fn fingerprint(state: &State) -> Option<(u64, usize)> {
    let entry = state.as_ref()?;
    let mut buf = Vec::new();
    encode_entry(&mut buf, &mut Vec::new(), b"", entry, false, true);
    Some((crc64(&buf), buf.len()))
}

/// Apply one write to a key's state (a refused write changes nothing, as in the store).
fn step(state: &State, cmd: &Command, now: i64) -> State {
    // FLUSHDB / FLUSHALL (no key) empty the key.
    cmd.key()?;
    let mut s = state.clone();
    match apply_to_slot(cmd, s.as_mut(), now) {
        Ok((_, SlotChange::Kept)) | Err(_) => s,
        Ok((_, SlotChange::Put(e))) => Some(e),
        Ok((_, SlotChange::Remove)) => None,
    }
}

/// How much ambiguity the checker explores before giving up on a key (the answer is then
/// "cannot tell", never a pass).
const MAX_STATES: usize = 4096;
const MAX_CONFIGURATIONS: usize = 100_000;

/// Why one key could not be analysed.
enum KeyError {
    TooAmbiguous(String),
}

/// A set of states without repeats. Few states (the usual case: one or two) are compared
/// directly; past that, by fingerprint.
#[derive(Default)]
struct States {
    list: Vec<State>,
    fingerprints: HashSet<Option<(u64, usize)>>,
}

impl States {
    const DIRECT: usize = 8;

    fn push(&mut self, s: State) -> Result<(), KeyError> {
        if self.list.len() < Self::DIRECT {
            if !self.list.contains(&s) {
                self.list.push(s);
            }
            return Ok(());
        }
        if self.fingerprints.is_empty() {
            self.fingerprints = self.list.iter().map(fingerprint).collect();
        }
        if self.fingerprints.insert(fingerprint(&s)) {
            self.list.push(s);
            if self.list.len() > MAX_STATES {
                return Err(KeyError::TooAmbiguous(format!("more than {MAX_STATES} possible states")));
            }
        }
        Ok(())
    }
}

/// The instants at which one key (or one class of untouched keys) holds what the snapshot shows.
struct KeyInstants<'h> {
    /// `key (db 0)`, for messages.
    label: String,
    instants: Instants,
    /// The writes that change the key (for a class of untouched keys, the multi-key writes
    /// of its database), whose times bound `instants`.
    ops: Vec<Op<'h>>,
}

/// The instants at which a key can hold `observed`, given its writes as one list per
/// thread (each in that thread's order, which real time also gives).
///
/// A set of the key's writes that some instant could have seen is *downward closed*: with
/// every write in it comes every write that completed before that one started. Since each
/// thread's writes are sequential, such a set is one prefix length per thread (a
/// *configuration*). The sweep visits the configurations level by level (by how many
/// writes they hold), each with the states the key can be in after its writes in any
/// order real time allows: a configuration grows by the next write of a thread when no
/// other thread's first excluded write must come before it. A configuration is possible
/// at instant `t` when its last included write of each thread started by `t` and its
/// first excluded write of each thread had not completed before `t`; where its states
/// include `observed`, those instants are the key's. Ambiguity stays small because at
/// any moment each thread has at most one write in flight (this is the memoised search
/// of Wing and Gong's linearizability checker, JPDC 1993, narrowed to one key).
fn key_instants(
    lists: &[Vec<Op<'_>>],
    initial: Option<&Entry>,
    observed: Option<&Entry>,
    now: i64,
) -> Result<Instants, KeyError> {
    // EXERCISE 12-checker BEGIN
    let mut out: Instants = Vec::new();
    let mut start = States::default();
    start.push(initial.cloned())?;
    let mut level: HashMap<Vec<u32>, States> = HashMap::from([(vec![0u32; lists.len()], start)]);
    while !level.is_empty() {
        let mut next: HashMap<Vec<u32>, States> = HashMap::new();
        for (config, states) in &level {
            let included = |i: usize| config[i] as usize;
            if states.list.iter().any(|s| s.as_ref() == observed) {
                // Possible from the latest start among the included writes to the earliest
                // completion among the excluded ones.
                let lo = (0..lists.len()).filter(|&i| included(i) > 0).map(|i| lists[i][included(i) - 1].lo).max();
                let hi = (0..lists.len()).filter_map(|i| lists[i].get(included(i))).map(|o| o.hi).min();
                let (lo, hi) = (lo.unwrap_or(0), hi.unwrap_or(Instant::MAX));
                if lo <= hi {
                    out.push((lo, hi));
                }
            }
            for (i, list) in lists.iter().enumerate() {
                let Some(o) = list.get(included(i)) else { continue };
                let waits =
                    (0..lists.len()).any(|j| j != i && lists[j].get(included(j)).is_some_and(|p| p.precedes(o)));
                if waits {
                    continue;
                }
                let mut grown = config.clone();
                grown[i] += 1;
                let target = next.entry(grown).or_default();
                for s in &states.list {
                    target.push(step(s, &o.w.cmd, now))?;
                }
            }
        }
        if next.len() > MAX_CONFIGURATIONS {
            return Err(KeyError::TooAmbiguous(format!(
                "more than {MAX_CONFIGURATIONS} sets of its writes were in flight together"
            )));
        }
        level = next;
    }
    out.sort_unstable();
    let mut merged: Instants = Vec::with_capacity(out.len());
    for (lo, hi) in out {
        match merged.last_mut() {
            Some(last) if lo <= last.1.saturating_add(1) => last.1 = last.1.max(hi),
            _ => merged.push((lo, hi)),
        }
    }
    Ok(merged)
    // EXERCISE 12-checker END
}

// ---- the whole snapshot ----------------------------------------------------------------

/// Find an instant between the BGSAVE call and its return at which the keyspace, starting
/// from `initial` and changed by the writes in `history`, was exactly `snapshot`.
///
/// The window is `history.bgsave_called_ns ..= history.bgsave_returned_ns`. For a strategy
/// whose guarantee is [`Guarantee::AtLogClose`], the suite puts the log's close request
/// and acknowledgement there instead: the same search then finds the instant of the close
/// (name the rules with [`Violation::rule_for`]).
///
/// # Errors
/// The [`Violation`] that shows there is none, in words a student can act on, or
/// [`Violation::BadHistory`] when the history breaks the checker's assumptions (sequence
/// numbers, multi-key writes overlapping other writes, more ambiguity than it explores).
pub fn find_cut(initial: &Keyspace, history: &History, snapshot: &Keyspace) -> Result<FoundCut, Violation> {
    let now = unix_ms_now();
    let window = (at(history.bgsave_called_ns), at(history.bgsave_returned_ns));
    if window.0 > window.1 {
        return Err(Violation::BadHistory("BGSAVE returned before it was called".into()));
    }

    // Place every write in time.
    let mut singles: Vec<Op<'_>> = Vec::new();
    let mut multis: Vec<Op<'_>> = Vec::new();
    for (t, writes) in history.threads.iter().enumerate() {
        for (i, w) in writes.iter().enumerate() {
            if w.seq != i as u64 + 1 {
                return Err(Violation::BadHistory(format!("thread {t}'s write {i} has seq {}", w.seq)));
            }
            if w.completed_ns < w.invoked_ns {
                return Err(Violation::BadHistory(format!(
                    "thread {t}'s write #{} completed before it started",
                    w.seq
                )));
            }
            let op = Op { thread: t, w, lo: at(w.invoked_ns), hi: at(w.completed_ns) };
            if w.cmd.key().is_some() { singles.push(op) } else { multis.push(op) }
        }
    }
    place_multis(&mut multis, &singles, history)?;

    // Each key's writes, in order of their start.
    let mut by_key: HashMap<(usize, &[u8]), Vec<Op<'_>>> = HashMap::new();
    for o in &singles {
        by_key.entry((o.w.cmd.db().unwrap_or(0), o.w.cmd.key().unwrap_or_default())).or_default().push(*o);
    }
    let mut multis_by_db: Vec<Vec<Op<'_>>> = vec![Vec::new(); DB_COUNT];
    for m in &multis {
        for db in dbs_of(&m.w.cmd) {
            if let Some(list) = multis_by_db.get_mut(db) {
                list.push(*m);
            }
        }
    }

    // Keys nobody wrote: as they were, unless a multi-key write emptied their database.
    let mut per_key: Vec<KeyInstants> = Vec::new();
    let mut classes = untouched_keys(initial, snapshot, &by_key, &multis_by_db)?;
    per_key.append(&mut classes);

    // Keys somebody wrote.
    let mut keys: Vec<&(usize, &[u8])> = by_key.keys().collect();
    keys.sort();
    for &(db, key) in keys {
        let ops = &by_key[&(db, key)];
        let ops: Vec<Op<'_>> = ops.iter().chain(&multis_by_db[db]).copied().collect();
        let mut lists: Vec<Vec<Op<'_>>> = vec![Vec::new(); history.threads.len()];
        for o in &ops {
            lists[o.thread].push(*o);
        }
        lists.retain(|l| !l.is_empty());
        for l in &mut lists {
            l.sort_by_key(|o| o.w.seq);
        }
        let observed = snapshot.get(db, key);
        let instants =
            key_instants(&lists, initial.get(db, key), observed, now).map_err(|KeyError::TooAmbiguous(why)| {
                Violation::BadHistory(format!("key {} (db {db}) is too ambiguous to check: {why}", escape(key)))
            })?;
        if instants.is_empty() {
            let mut threads: Vec<usize> = ops.iter().filter(|o| !o.multi()).map(|o| o.thread).collect();
            threads.sort_unstable();
            threads.dedup();
            return Err(Violation::NoSuchState { threads, db, key: escape(key), found: describe_state(observed) });
        }
        per_key.push(KeyInstants { label: format!("{} (db {db})", escape(key)), instants, ops });
    }

    // ANCHOR: common_instant
    // One instant for every key, between the call and the return.
    let mut common: Instants = vec![window];
    for k in &per_key {
        common = intersect(&common, &k.instants);
        if common.is_empty() {
            return Err(blame(&per_key, history, window));
        }
    }
    // ANCHOR_END: common_instant
    let t = common[0].0;
    let count = |writes: &Vec<Write>, f: &dyn Fn(&Write) -> bool| writes.iter().filter(|w| f(w)).count() as u64;
    Ok(FoundCut {
        instant_ns: ns_of(t),
        completed_before: history.threads.iter().map(|w| count(w, &|w| at(w.completed_ns) < t)).collect(),
        invoked_by: history.threads.iter().map(|w| count(w, &|w| at(w.invoked_ns) <= t)).collect(),
    })
}

/// Give each multi-key write its switch point, after checking that it overlaps no other
/// write and no other multi-key write.
///
/// Nothing else happens while it runs, so every instant inside it sees the same state of
/// the other writes; choosing one switch point inside it (and inside the BGSAVE window
/// when it overlaps that) keeps both answers, "before it" and "after it", available, and
/// makes every key give the same answer.
fn place_multis(multis: &mut [Op<'_>], singles: &[Op<'_>], history: &History) -> Result<(), Violation> {
    multis.sort_by_key(|m| m.w.invoked_ns);
    for pair in multis.windows(2) {
        if pair[1].w.invoked_ns < pair[0].w.completed_ns {
            return Err(Violation::BadHistory(format!(
                "multi-key writes {} and {} overlap in time",
                pair[0].describe(),
                pair[1].describe()
            )));
        }
    }
    // A single-key write overlaps a multi-key one if it started before that one ended and
    // ended after it started; the latest multi-key write started before it ends is the
    // only candidate, since multi-key writes do not overlap each other.
    for s in singles {
        let i = multis.partition_point(|m| m.w.invoked_ns < s.w.completed_ns);
        if let Some(m) = i.checked_sub(1).map(|i| &multis[i])
            && m.w.completed_ns > s.w.invoked_ns
        {
            return Err(Violation::BadHistory(format!(
                "{} overlaps the multi-key {} in time; the checker needs multi-key writes to run alone",
                s.describe(),
                m.describe()
            )));
        }
    }
    // ANCHOR: switch_point
    for m in multis.iter_mut() {
        let x = if m.w.completed_ns < history.bgsave_called_ns {
            m.w.invoked_ns
        } else {
            m.w.invoked_ns.max(history.bgsave_called_ns)
        };
        m.lo = at(x) + 2;
        m.hi = m.lo - 1;
    }
    // ANCHOR_END: switch_point
    Ok(())
}

fn describe_state(entry: Option<&Entry>) -> String {
    match entry {
        None => "nothing (the key is absent)".into(),
        Some(e) => format!("a {} ({})", e.value.type_name(), crate::render::preview(&e.value)),
    }
}

/// The keys no write touched, one class per database: each as it was before the save if
/// no multi-key write of its database is in the snapshot, absent if one is.
fn untouched_keys<'h>(
    initial: &Keyspace,
    snapshot: &Keyspace,
    touched: &HashMap<(usize, &[u8]), Vec<Op<'h>>>,
    multis_by_db: &[Vec<Op<'h>>],
) -> Result<Vec<KeyInstants<'h>>, Violation> {
    let mut out = Vec::new();
    for (db, multis) in multis_by_db.iter().enumerate() {
        let mut present: Option<&[u8]> = None;
        let mut absent: Option<&[u8]> = None;
        for (key, entry) in initial.db(db) {
            if touched.contains_key(&(db, key.as_slice())) {
                continue;
            }
            match snapshot.get(db, key) {
                None => absent = absent.or(Some(key)),
                Some(e) if e == entry => present = present.or(Some(key)),
                Some(_) => return Err(Violation::UntouchedKeyChanged { db, key: escape(key), how: "differs" }),
            }
        }
        for key in snapshot.db(db).keys() {
            if initial.get(db, key).is_none() && !touched.contains_key(&(db, key.as_slice())) {
                return Err(Violation::UntouchedKeyChanged { db, key: escape(key), how: "appeared from nowhere" });
            }
        }
        let first_flush = multis.iter().min_by_key(|m| m.lo);
        let instants = match (present, absent, first_flush) {
            (_, None, None) | (None, None, Some(_)) => continue,
            (_, Some(key), None) => {
                return Err(Violation::UntouchedKeyChanged { db, key: escape(key), how: "is missing" });
            }
            (Some(_), None, Some(f)) => vec![(0, f.lo - 1)],
            (None, Some(_), Some(f)) => vec![(f.lo, Instant::MAX)],
            (Some(kept), Some(gone), Some(f)) => {
                return Err(Violation::SplitMultiKeyWrite {
                    write: f.describe(),
                    applied_key: format!("{} (db {db}, never written, is gone)", escape(gone)),
                    unapplied_key: format!("{} (db {db}, never written, is still there)", escape(kept)),
                });
            }
        };
        let example = escape(present.or(absent).unwrap_or_default());
        out.push(KeyInstants {
            label: format!("{example} (db {db}, like every key never written there)"),
            instants,
            ops: multis.clone(),
        });
    }
    Ok(out)
}

/// No instant between the call and the return fits every key: find the clearest reason.
/// In order: two keys of which one fits only instants before every instant the other
/// fits (the writes at those boundaries are the pair to blame); a key that fits no
/// instant of the call at all (a write completed before the call is missing, or one
/// started after the return is present); two keys that, within the call, fit only
/// instants one before the other; and otherwise the keys and the instants they fit.
fn blame(per_key: &[KeyInstants<'_>], history: &History, window: (Instant, Instant)) -> Violation {
    if let Some(v) = separated_pair(per_key.iter().map(|k| (k, k.instants.as_slice()))) {
        return v;
    }
    let restricted: Vec<Instants> = per_key.iter().map(|k| intersect(&k.instants, &vec![window])).collect();
    // A key that fits instants both before the call and after the return (a write that
    // completed before the call, undone by a FLUSHDB that started after the return) could
    // be blamed either way; a key that fits only one side cannot. So blame the one-sided
    // keys first, then the two-sided ones.
    let outside: Vec<&KeyInstants<'_>> =
        per_key.iter().zip(&restricted).filter(|(_, r)| r.is_empty()).map(|(k, _)| k).collect();
    let one_sided =
        |k: &&KeyInstants<'_>| k.instants.iter().all(|r| r.1 < window.0) || k.instants.iter().all(|r| r.0 > window.1);
    let (first, second): (Vec<_>, Vec<_>) = outside.into_iter().partition(one_sided);
    for k in first.into_iter().chain(second) {
        if let Some(&(_, end)) = k.instants.iter().rev().find(|r| r.1 < window.0)
            && let Some(m) = k.ops.iter().find(|o| o.hi == end)
        {
            return Violation::MissingCompletedWrite {
                thread: m.thread,
                write: describe(&m.w.cmd, m.w.seq),
                before_call_us: history.bgsave_called_ns.saturating_sub(m.w.completed_ns) / 1000,
            };
        }
        if let Some(&(start, _)) = k.instants.iter().find(|r| r.0 > window.1)
            && let Some(p) = k.ops.iter().find(|o| o.lo == start)
        {
            return Violation::LeakedLaterWrite {
                thread: p.thread,
                write: describe(&p.w.cmd, p.w.seq),
                after_return_us: p.w.invoked_ns.saturating_sub(history.bgsave_returned_ns) / 1000,
            };
        }
    }
    if let Some(v) = separated_pair(per_key.iter().zip(&restricted).map(|(k, r)| (k, r.as_slice()))) {
        return v;
    }
    // A key that goes back and forth between states fits many stretches of time, but all
    // the keys of one writer thread together fit only the stretch its prefix of writes
    // allows: compare threads with threads.
    let mut groups: Vec<KeyInstants<'_>> = Vec::new();
    let mut thread_of_group: HashMap<usize, usize> = HashMap::new();
    for (k, r) in per_key.iter().zip(&restricted) {
        let mut writers = k.ops.iter().filter(|o| !o.multi()).map(|o| o.thread);
        let Some(t) = writers.next() else { continue };
        if writers.any(|u| u != t) {
            continue;
        }
        let g = *thread_of_group.entry(t).or_insert_with(|| {
            groups.push(KeyInstants {
                label: format!("the keys of thread {t}"),
                instants: vec![window],
                ops: Vec::new(),
            });
            groups.len() - 1
        });
        groups[g].instants = intersect(&groups[g].instants, r);
        groups[g].ops.extend(k.ops.iter().copied());
    }
    if let Some(v) = separated_pair(groups.iter().map(|g| (g, g.instants.as_slice()))) {
        return v;
    }
    // Several keys together: show where the running intersection ran dry.
    let show = |r: &[(Instant, Instant)]| {
        let us = |t: Instant| ns_of(t) / 1000;
        r.iter().map(|&(a, b)| format!("{}..{} µs", us(a), us(b))).collect::<Vec<_>>().join(", ")
    };
    let mut common: Instants = vec![window];
    for (k, r) in per_key.iter().zip(&restricted) {
        let next = intersect(&common, r);
        if next.is_empty() {
            return Violation::NoCommonInstant {
                detail: format!(
                    "between the call ({} µs) and the return ({} µs), the keys before {} fit only {}, and it fits only {}",
                    history.bgsave_called_ns / 1000,
                    history.bgsave_returned_ns / 1000,
                    k.label,
                    show(&common),
                    show(r)
                ),
            };
        }
        common = next;
    }
    Violation::NoCommonInstant { detail: "no instant fits every key".into() }
}

// ANCHOR: separated_pair
/// Two keys of which one fits only instants before every instant the other fits, named
/// with the writes behind those boundaries: the write whose start opens the later key's
/// instants is in the snapshot, the write whose completion closes the earlier key's is not.
fn separated_pair<'a, 'h: 'a>(
    keys: impl Iterator<Item = (&'a KeyInstants<'h>, &'a [(Instant, Instant)])> + Clone,
) -> Option<Violation> {
    let (early, early_ranges) = keys.clone().filter(|(_, r)| !r.is_empty()).min_by_key(|(_, r)| r[r.len() - 1].1)?;
    let (late, late_ranges) = keys.filter(|(_, r)| !r.is_empty()).max_by_key(|(_, r)| r[0].0)?;
    let (end, start) = (early_ranges[early_ranges.len() - 1].1, late_ranges[0].0);
    if end >= start {
        return None;
    }
    let opener = late.ops.iter().filter(|o| o.lo == start).min_by_key(|o| o.thread)?;
    let closer = early.ops.iter().filter(|o| o.hi == end).min_by_key(|o| o.thread)?;
    Some(if opener.multi() && std::ptr::eq(opener.w, closer.w) {
        Violation::SplitMultiKeyWrite {
            write: opener.describe(),
            applied_key: late.label.clone(),
            unapplied_key: early.label.clone(),
        }
    } else if opener.thread == closer.thread {
        Violation::NotAPrefix {
            thread: opener.thread,
            present: describe(&opener.w.cmd, opener.w.seq),
            present_key: late.label.clone(),
            missing: describe(&closer.w.cmd, closer.w.seq),
            missing_key: early.label.clone(),
        }
    } else {
        Violation::NotOneInstant(Box::new(Conflict {
            present: opener.describe(),
            present_key: late.label.clone(),
            missing: closer.describe(),
            missing_key: early.label.clone(),
        }))
    })
}
// ANCHOR_END: separated_pair

// ---- the cut the strategy reported -----------------------------------------------------

/// Why the cut a strategy reported is not the cut its snapshot was taken at.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CutViolation {
    /// The cut includes some of a multi-shard write's stamps but not all.
    SplitsAWrite {
        /// The write.
        write: WriteRef,
    },
    /// Two writes carry the same stamp.
    DuplicateStamp {
        /// The stamp, `shard:seq`.
        stamp: String,
    },
    /// The cut counts a write no recorded write has the stamp of.
    CountsAnUnknownWrite {
        /// The stamp, `shard:seq`.
        stamp: String,
    },
    /// A shard's stamps put a write before one that completed before it started.
    StampsAgainstRealTime {
        /// The write stamped earlier.
        earlier_stamp: WriteRef,
        /// The write stamped later, which completed before the other started.
        later_stamp: WriteRef,
    },
    /// The stamps cannot all be put in one order (multi-shard writes cross).
    NoOrder,
    /// The writes the cut includes were not the writes of one instant in the BGSAVE call.
    NotOneInstant {
        /// What is wrong, naming the writes.
        detail: String,
    },
    /// The dump is not the keyspace at the reported cut.
    DumpDiffers {
        /// The first difference.
        detail: String,
    },
}

// ANCHOR: reported_cut_rule
/// The rule [`check_reported_cut`] enforces, as its messages name it.
pub const REPORTED_CUT_RULE: &str = "the dump is the keyspace at the cut the strategy reports";
// ANCHOR_END: reported_cut_rule

impl CutViolation {
    /// What happened, naming the writes involved (the rule is [`REPORTED_CUT_RULE`]).
    pub fn detail(&self) -> String {
        let mut s = String::new();
        let f = &mut s;
        use std::fmt::Write as _;
        let _ = match self {
            CutViolation::SplitsAWrite { write } => {
                write!(f, "the cut includes {write} in some shards and not in others")
            }
            CutViolation::DuplicateStamp { stamp } => write!(f, "two writes carry stamp {stamp}"),
            CutViolation::CountsAnUnknownWrite { stamp } => {
                write!(f, "the cut counts write {stamp}, which no write was stamped with")
            }
            CutViolation::StampsAgainstRealTime { earlier_stamp, later_stamp } => write!(
                f,
                "{earlier_stamp} is stamped before {later_stamp} in the same shard, but it started at {} µs, \
                 after the other had completed at {} µs",
                earlier_stamp.invoked_us, later_stamp.completed_us
            ),
            CutViolation::NoOrder => write!(f, "the stamps of multi-shard writes cross, so no order explains them"),
            CutViolation::NotOneInstant { detail } => write!(f, "{detail}"),
            CutViolation::DumpDiffers { detail } => write!(f, "{detail}"),
        };
        s
    }
}

impl fmt::Display for CutViolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "rule '{REPORTED_CUT_RULE}' is violated: {}", self.detail())
    }
}

impl std::error::Error for CutViolation {}

fn stamp_name(s: WriteStamp) -> String {
    format!("{}:{}", s.shard, s.seq)
}

/// Every write of `history` in the order its stamps give (each shard's writes by `seq`; a
/// multi-shard write where it stands in each of its shards), skipping unstamped (refused)
/// writes.
///
/// # Errors
/// When two writes share a stamp, a shard's stamps contradict real time, or the
/// multi-shard writes' stamps cross.
pub fn stamp_order(history: &History) -> Result<Vec<(usize, &Write)>, CutViolation> {
    let mut per_shard: HashMap<u32, Vec<(u64, usize)>> = HashMap::new();
    let mut writes: Vec<(usize, &Write)> = Vec::new();
    for (t, ws) in history.threads.iter().enumerate() {
        for w in ws.iter().filter(|w| !w.stamps.is_empty()) {
            for s in &w.stamps {
                per_shard.entry(s.shard).or_default().push((s.seq, writes.len()));
            }
            writes.push((t, w));
        }
    }
    let wref = |i: usize| {
        let (t, w) = writes[i];
        WriteRef {
            thread: t,
            write: describe(&w.cmd, w.seq),
            invoked_us: w.invoked_ns / 1000,
            completed_us: w.completed_ns / 1000,
        }
    };
    let mut shards: Vec<u32> = per_shard.keys().copied().collect();
    shards.sort_unstable();
    let mut queues: Vec<Vec<usize>> = Vec::new();
    for shard in &shards {
        let list = per_shard.get_mut(shard).map(std::mem::take).unwrap_or_default();
        let mut list = list;
        list.sort_unstable();
        // Real time within a shard: a write stamped later must not have completed before
        // an earlier-stamped write started.
        let mut latest_start: Option<usize> = None;
        for pair in list.windows(2) {
            if pair[0].0 == pair[1].0 {
                return Err(CutViolation::DuplicateStamp {
                    stamp: stamp_name(WriteStamp { shard: *shard, seq: pair[0].0 }),
                });
            }
        }
        for &(_, i) in &list {
            if let Some(j) = latest_start
                && writes[i].1.completed_ns < writes[j].1.invoked_ns
            {
                return Err(CutViolation::StampsAgainstRealTime { earlier_stamp: wref(j), later_stamp: wref(i) });
            }
            if latest_start.is_none_or(|j| writes[i].1.invoked_ns > writes[j].1.invoked_ns) {
                latest_start = Some(i);
            }
        }
        queues.push(list.into_iter().map(|(_, i)| i).collect());
    }
    // Merge the shards' orders: a write goes next once it heads the queue of every shard
    // it has a stamp in.
    let mut heads = vec![0usize; queues.len()];
    let mut done = vec![false; writes.len()];
    let shard_index: HashMap<u32, usize> = shards.iter().enumerate().map(|(i, s)| (*s, i)).collect();
    let mut order = Vec::with_capacity(writes.len());
    while order.len() < writes.len() {
        let mut progressed = false;
        for q in 0..queues.len() {
            while let Some(&i) = queues[q].get(heads[q]) {
                let ready = writes[i].1.stamps.iter().all(|s| {
                    let qi = shard_index[&s.shard];
                    queues[qi].get(heads[qi]) == Some(&i)
                });
                if !ready || done[i] {
                    break;
                }
                for s in &writes[i].1.stamps {
                    heads[shard_index[&s.shard]] += 1;
                }
                done[i] = true;
                order.push(writes[i]);
                progressed = true;
            }
        }
        if !progressed {
            return Err(CutViolation::NoOrder);
        }
    }
    Ok(order)
}

/// Check the cut a strategy reported for a BGSAVE (`SaveReport::cut`, `BgSave::cut`)
/// against the writes and the dump: the cut includes each write wholly or not at all, the
/// writes it includes are those of one instant between the call and the return (the same
/// rule as [`find_cut`], applied to the reported set), and the dump equals `initial` plus
/// exactly those writes, applied in stamp order.
///
/// A strategy can take an honest snapshot and still report the wrong cut (note the write
/// count under one lock, copy the keyspace under another): a replica resuming from that
/// cut would apply some writes twice or never. [`find_cut`] cannot see that; this can.
///
/// # Errors
/// The first [`CutViolation`].
pub fn check_reported_cut(
    initial: &Keyspace,
    history: &History,
    cut: &snaplab_core::Cut,
    snapshot: &Keyspace,
) -> Result<(), CutViolation> {
    let order = stamp_order(history)?;
    let mut included: Vec<(usize, &Write)> = Vec::new();
    let mut latest_invoked: Option<(usize, &Write)> = None;
    let mut earliest_completed: Option<(usize, &Write)> = None;
    let mut seen: HashSet<WriteStamp> = HashSet::new();
    // ANCHOR: reported_loop
    for &(t, w) in &order {
        seen.extend(w.stamps.iter().copied());
        match cut.includes_all(&w.stamps) {
            None => return Err(CutViolation::SplitsAWrite { write: write_ref(t, w) }),
            Some(true) => {
                included.push((t, w));
                if latest_invoked.is_none_or(|(_, l)| w.invoked_ns > l.invoked_ns) {
                    latest_invoked = Some((t, w));
                }
            }
            Some(false) => {
                if earliest_completed.is_none_or(|(_, e)| w.completed_ns < e.completed_ns) {
                    earliest_completed = Some((t, w));
                }
            }
        }
    }
    // ANCHOR_END: reported_loop
    for (shard, &n) in cut.per_shard.iter().enumerate() {
        if let Some(seq) = (1..=n).find(|&seq| !seen.contains(&WriteStamp { shard: shard as u32, seq })) {
            return Err(CutViolation::CountsAnUnknownWrite {
                stamp: stamp_name(WriteStamp { shard: shard as u32, seq }),
            });
        }
    }
    if let Some((t, w)) = latest_invoked
        && w.invoked_ns > history.bgsave_returned_ns
    {
        return Err(CutViolation::NotOneInstant {
            detail: format!(
                "the cut includes {}, which started {} µs after BGSAVE returned",
                write_ref(t, w),
                (w.invoked_ns - history.bgsave_returned_ns) / 1000
            ),
        });
    }
    if let Some((t, w)) = earliest_completed
        && w.completed_ns < history.bgsave_called_ns
    {
        return Err(CutViolation::NotOneInstant {
            detail: format!(
                "the cut leaves out {}, which completed {} µs before BGSAVE was called",
                write_ref(t, w),
                (history.bgsave_called_ns - w.completed_ns) / 1000
            ),
        });
    }
    if let (Some((ti, i)), Some((te, e))) = (latest_invoked, earliest_completed)
        && i.invoked_ns > e.completed_ns
    {
        return Err(CutViolation::NotOneInstant {
            detail: format!(
                "the cut includes {}, invoked at {} µs, but not {}, which had completed at {} µs: no instant had \
                 the one without the other",
                write_ref(ti, i),
                i.invoked_ns / 1000,
                write_ref(te, e),
                e.completed_ns / 1000
            ),
        });
    }
    let expected = replay(initial, included.iter().map(|(_, w)| &w.cmd));
    match crate::conformance::diff(&expected, snapshot) {
        None => Ok(()),
        Some(d) => Err(CutViolation::DumpDiffers {
            detail: format!("against the keyspace after the {} writes the cut includes: {d}", included.len()),
        }),
    }
}

fn write_ref(t: usize, w: &Write) -> WriteRef {
    WriteRef {
        thread: t,
        write: describe(&w.cmd, w.seq),
        invoked_us: w.invoked_ns / 1000,
        completed_us: w.completed_ns / 1000,
    }
}

/// `initial` with `cmds` applied in order (refused commands change nothing, as in the
/// store). Command semantics are `snaplab_core`'s, which the model-based conformance
/// check holds to an independent reference model.
pub fn replay<'c>(initial: &Keyspace, cmds: impl IntoIterator<Item = &'c Command>) -> Keyspace {
    let mut ks = initial.clone();
    let now = unix_ms_now();
    for c in cmds {
        let _ = ks.apply(c, now);
    }
    ks
}

#[cfg(test)]
mod tests {
    use super::*;
    use snaplab_core::Value;

    fn set(key: &str, v: &str) -> Command {
        Command::Set { db: 0, key: key.into(), value: v.into(), expire_at_ms: None }
    }

    fn w(seq: u64, cmd: Command, invoked_us: u64, completed_us: u64) -> Write {
        Write { seq, cmd, invoked_ns: invoked_us * 1000, completed_ns: completed_us * 1000, stamps: Vec::new() }
    }

    /// A history of one thread writing a, b, a, b at times 10, 20, 30, 40 (µs), with
    /// BGSAVE called at 25 and returned at 26.
    fn history() -> History {
        let cmds = [set("a", "1"), set("b", "2"), set("a", "3"), set("b", "4")];
        let writes = cmds
            .into_iter()
            .enumerate()
            .map(|(i, cmd)| w(i as u64 + 1, cmd, (i as u64 + 1) * 10, (i as u64 + 1) * 10 + 1))
            .collect();
        History { threads: vec![writes], bgsave_called_ns: 25_000, bgsave_returned_ns: 26_000 }
    }

    fn snapshot(pairs: &[(&str, &str)]) -> Keyspace {
        let mut ks = Keyspace::new();
        for (k, v) in pairs {
            ks.insert(0, k.as_bytes().to_vec(), Entry::new(Value::String(v.as_bytes().to_vec())));
        }
        ks
    }

    /// The state after write 2 is the only consistent cut here.
    #[test]
    fn finds_the_cut() {
        let cut = find_cut(&Keyspace::new(), &history(), &snapshot(&[("a", "1"), ("b", "2")])).unwrap();
        assert_eq!(cut.completed_before, vec![2]);
        assert_eq!(cut.invoked_by, vec![2]);
        assert!((25_000..=26_000).contains(&cut.instant_ns), "{cut:?}");
    }

    /// Missing write 2, which completed before the call, is named.
    #[test]
    fn names_a_missing_completed_write() {
        let err = find_cut(&Keyspace::new(), &history(), &snapshot(&[("a", "1")])).unwrap_err();
        assert!(matches!(&err, Violation::MissingCompletedWrite { write, .. } if write.contains("#2")), "{err}");
    }

    /// Over a log close's window (the history's window fields carry it), the same two
    /// violations are named by the log-close rules, in the close's words; the other
    /// rules keep theirs.
    #[test]
    fn log_close_violations_name_the_close() {
        let missing = find_cut(&Keyspace::new(), &history(), &snapshot(&[("a", "1")])).unwrap_err();
        assert_eq!(missing.rule_for(Guarantee::AtLogClose), AT_LOG_CLOSE_RULES[0]);
        assert!(missing.detail_for(Guarantee::AtLogClose).contains("before the log's close was requested"));
        assert_eq!(missing.rule_for(Guarantee::PointInTime), missing.rule());
        let leaked = find_cut(&Keyspace::new(), &history(), &snapshot(&[("a", "3"), ("b", "2")])).unwrap_err();
        assert_eq!(leaked.rule_for(Guarantee::AtLogClose), AT_LOG_CLOSE_RULES[1]);
        let bad = Violation::BadHistory("x".into());
        assert_eq!(bad.rule_for(Guarantee::AtLogClose), bad.rule());
    }

    /// Write 3 started after the return; finding it in the snapshot is a leak.
    #[test]
    fn names_a_leaked_write() {
        let err = find_cut(&Keyspace::new(), &history(), &snapshot(&[("a", "3"), ("b", "2")])).unwrap_err();
        assert!(matches!(&err, Violation::LeakedLaterWrite { write, .. } if write.contains("#3")), "{err}");
    }

    /// A cut taken after the return, past a FLUSHDB: the flushed key also fits the time
    /// before its write (so "a completed write is missing" would be true too), but the
    /// key written after the return fits no time but after it, and that is the blame.
    #[test]
    fn a_late_cut_past_a_flush_is_blamed_on_the_leak() {
        let history = History {
            threads: vec![
                vec![w(1, set("a", "1"), 1, 2), w(2, Command::FlushDb { db: 0 }, 30, 31)],
                vec![w(1, set("b", "1"), 40, 41)],
            ],
            bgsave_called_ns: 10_000,
            bgsave_returned_ns: 20_000,
        };
        let err = find_cut(&Keyspace::new(), &history, &snapshot(&[("b", "1")])).unwrap_err();
        assert!(matches!(&err, Violation::LeakedLaterWrite { thread: 1, write, .. } if write.contains("#1")), "{err}");
    }

    /// Write 3 present while write 2 is missing is not a prefix, whatever the clock says.
    #[test]
    fn names_a_gap() {
        let err = find_cut(&Keyspace::new(), &history(), &snapshot(&[("a", "3")])).unwrap_err();
        assert!(
            matches!(&err, Violation::NotAPrefix { present, missing, .. } if present.contains("#3") && missing.contains("#2")),
            "{err}"
        );
    }

    /// A value no write produced is reported as a state that never existed.
    #[test]
    fn names_an_impossible_state() {
        let err = find_cut(&Keyspace::new(), &history(), &snapshot(&[("a", "9"), ("b", "2")])).unwrap_err();
        assert!(matches!(err, Violation::NoSuchState { .. }), "{err}");
    }

    /// Keys nobody wrote must be unchanged.
    #[test]
    fn untouched_keys_must_not_change() {
        let initial = snapshot(&[("z", "0")]);
        let err = find_cut(&initial, &history(), &snapshot(&[("a", "1"), ("b", "2")])).unwrap_err();
        assert!(matches!(err, Violation::UntouchedKeyChanged { how: "is missing", .. }), "{err}");
    }

    // ANCHOR: test_one_instant
    /// Thread 0 completes `SET a 1` at 10 µs; thread 1 invokes `SET b 1` at 20 µs; BGSAVE
    /// runs from 5 to 30 µs. Each thread's writes alone allow a snapshot with `b` and
    /// without `a`, but no instant had it: the checker must refuse it, naming both writes.
    #[test]
    fn one_instant_across_threads() {
        let history = History {
            threads: vec![vec![w(1, set("a", "1"), 8, 10)], vec![w(1, set("b", "1"), 20, 22)]],
            bgsave_called_ns: 5_000,
            bgsave_returned_ns: 30_000,
        };
        let err = find_cut(&Keyspace::new(), &history, &snapshot(&[("b", "1")])).unwrap_err();
        match &err {
            Violation::NotOneInstant(c) => {
                assert_eq!((c.present.thread, c.missing.thread), (1, 0), "{err}");
                assert!(c.present.write.contains("SET db0 b") && c.missing.write.contains("SET db0 a"), "{err}");
                assert_eq!((c.present.invoked_us, c.missing.completed_us), (20, 10), "{err}");
                assert!(c.present_key.starts_with('b') && c.missing_key.starts_with('a'), "{err}");
            }
            other => panic!("expected NotOneInstant, got {other}"),
        }
        assert!(err.to_string().contains(ONE_INSTANT_RULE), "{err}");
        // Both, neither, and `a` alone are states some instant had.
        for ok in [&[("a", "1"), ("b", "1")][..], &[("a", "1")][..]] {
            find_cut(&Keyspace::new(), &history, &snapshot(ok)).unwrap_or_else(|e| panic!("{ok:?}: {e}"));
        }
        let early = History { bgsave_called_ns: 5_000, bgsave_returned_ns: 9_000, ..history };
        find_cut(&Keyspace::new(), &early, &Keyspace::new()).unwrap();
    }
    // ANCHOR_END: test_one_instant

    /// Two threads set one key in overlapping writes: real time cannot order them, so
    /// either value is a state some instant had; a write that completed before the other
    /// started is ordered.
    #[test]
    fn overlapping_writes_to_one_key_may_fall_either_way() {
        let overlapping = History {
            threads: vec![vec![w(1, set("k", "x"), 10, 20)], vec![w(1, set("k", "y"), 12, 18)]],
            bgsave_called_ns: 30_000,
            bgsave_returned_ns: 31_000,
        };
        for v in ["x", "y"] {
            find_cut(&Keyspace::new(), &overlapping, &snapshot(&[("k", v)])).unwrap_or_else(|e| panic!("{v}: {e}"));
        }
        let ordered = History {
            threads: vec![vec![w(1, set("k", "x"), 10, 11)], vec![w(1, set("k", "y"), 12, 18)]],
            ..overlapping
        };
        let err = find_cut(&Keyspace::new(), &ordered, &snapshot(&[("k", "x")])).unwrap_err();
        assert!(matches!(err, Violation::NoSuchState { .. } | Violation::MissingCompletedWrite { .. }), "{err}");
    }

    /// Order matters for non-blind writes: two overlapping RPUSHes may land in either
    /// order, but never one twice or neither when both completed.
    #[test]
    fn overlapping_pushes_in_either_order() {
        let push = |e: &str| Command::RPush { db: 0, key: b"l".to_vec(), elements: vec![e.as_bytes().to_vec()] };
        let history = History {
            threads: vec![vec![w(1, push("x"), 10, 20)], vec![w(1, push("y"), 12, 18)]],
            bgsave_called_ns: 30_000,
            bgsave_returned_ns: 31_000,
        };
        let list = |items: &[&str]| {
            let mut ks = Keyspace::new();
            let l: std::collections::VecDeque<_> = items.iter().map(|s| s.as_bytes().to_vec()).collect();
            ks.insert(0, b"l".to_vec(), Entry::new(Value::List(Box::new(l))));
            ks
        };
        find_cut(&Keyspace::new(), &history, &list(&["x", "y"])).unwrap();
        find_cut(&Keyspace::new(), &history, &list(&["y", "x"])).unwrap();
        assert!(find_cut(&Keyspace::new(), &history, &list(&["x"])).is_err());
    }

    // ANCHOR: test_flushall
    /// A FLUSHALL is all or nothing: with it, every key written before it is gone; a
    /// snapshot that keeps one key from before it and loses another is refused, naming it.
    #[test]
    fn flushall_is_all_or_nothing() {
        let history = History {
            threads: vec![
                vec![w(1, set("a", "1"), 1, 2), w(2, set("b", "1"), 3, 4)],
                vec![w(1, Command::FlushAll, 10, 20)],
            ],
            bgsave_called_ns: 12_000,
            bgsave_returned_ns: 15_000,
        };
        let initial = snapshot(&[("z", "0")]);
        find_cut(&initial, &history, &Keyspace::new()).unwrap();
        find_cut(&initial, &history, &snapshot(&[("a", "1"), ("b", "1"), ("z", "0")])).unwrap();
        // The last one was also the state before `SET a`, long before the call; within the
        // call, it is a FLUSHALL half applied.
        for split in [&[("a", "1")][..], &[("a", "1"), ("b", "1")][..], &[("z", "0")][..]] {
            let err = find_cut(&initial, &history, &snapshot(split)).unwrap_err();
            assert!(
                matches!(&err, Violation::SplitMultiKeyWrite { write, .. } if write.write.contains("FLUSHALL")),
                "{split:?}: {err}"
            );
        }
    }
    // ANCHOR_END: test_flushall

    /// A multi-key write that overlaps another write in time is outside what the checker
    /// can decide, and it says so rather than guessing.
    #[test]
    fn overlapping_multi_key_writes_are_refused_as_history() {
        let history = History {
            threads: vec![vec![w(1, set("a", "1"), 5, 15)], vec![w(1, Command::FlushAll, 10, 20)]],
            bgsave_called_ns: 30_000,
            bgsave_returned_ns: 31_000,
        };
        assert!(matches!(find_cut(&Keyspace::new(), &history, &Keyspace::new()), Err(Violation::BadHistory(_))));
    }

    fn stamped(mut history: History, stamps: &[&[(u32, u64)]]) -> History {
        let mut it = stamps.iter();
        for thread in &mut history.threads {
            for w in thread {
                w.stamps = it.next().unwrap().iter().map(|&(shard, seq)| WriteStamp { shard, seq }).collect();
            }
        }
        history
    }

    /// The reported cut must be the snapshot's: a cut that claims one write less than the
    /// dump holds is refused, the right one accepted.
    #[test]
    fn the_reported_cut_must_match_the_dump() {
        let h = stamped(history(), &[&[(0, 1)], &[(0, 2)], &[(0, 3)], &[(0, 4)]]);
        let dump = snapshot(&[("a", "1"), ("b", "2")]);
        check_reported_cut(&Keyspace::new(), &h, &snaplab_core::Cut::single(2), &dump).unwrap();
        let err = check_reported_cut(&Keyspace::new(), &h, &snaplab_core::Cut::single(1), &dump).unwrap_err();
        assert!(matches!(err, CutViolation::NotOneInstant { .. } | CutViolation::DumpDiffers { .. }), "{err}");
        let err = check_reported_cut(&Keyspace::new(), &h, &snaplab_core::Cut::single(5), &dump).unwrap_err();
        assert!(matches!(err, CutViolation::CountsAnUnknownWrite { .. }), "{err}");
    }

    /// A cut that includes a FLUSHALL in one shard and not another is refused; the stamps
    /// of a multi-shard write place it in every shard's order.
    #[test]
    fn a_cut_may_not_split_a_multi_shard_write() {
        let history = History {
            threads: vec![
                vec![w(1, set("a", "1"), 1, 2), w(2, set("b", "1"), 3, 4)],
                vec![w(1, Command::FlushAll, 10, 11)],
            ],
            bgsave_called_ns: 12_000,
            bgsave_returned_ns: 15_000,
        };
        let h = stamped(history, &[&[(0, 1)], &[(1, 1)], &[(0, 2), (1, 2)]]);
        check_reported_cut(&Keyspace::new(), &h, &snaplab_core::Cut { per_shard: vec![2, 2] }, &Keyspace::new())
            .unwrap();
        let err = check_reported_cut(
            &Keyspace::new(),
            &h,
            &snaplab_core::Cut { per_shard: vec![2, 1] },
            &snapshot(&[("b", "1")]),
        )
        .unwrap_err();
        assert!(matches!(err, CutViolation::SplitsAWrite { .. }), "{err}");
    }

    /// Stamps that put a write before one that completed before it started contradict
    /// real time.
    #[test]
    fn stamps_must_follow_real_time() {
        let h = stamped(history(), &[&[(0, 2)], &[(0, 1)], &[(0, 3)], &[(0, 4)]]);
        assert!(matches!(stamp_order(&h), Err(CutViolation::StampsAgainstRealTime { .. })));
    }
}
