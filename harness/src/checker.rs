//! The consistent-cut checker: given what writers did and what a snapshot holds, find the
//! cut the snapshot was taken at, or say precisely why there is none.
//!
//! DESIGN.md's definition of a point-in-time snapshot, which this module implements:
//!
//! - every write that **completed before** BGSAVE was called is in it;
//! - no write that **started after** BGSAVE returned is in it;
//! - for each writer thread, the writes it contains are a **prefix** of that thread's
//!   writes (writes overlapping the call may fall either side, each all-or-nothing).
//!
//! The checker is black-box: it needs no cooperation from the strategy, only the history
//! the writers recorded (each write with its thread, its sequence number in that thread,
//! and invocation and completion times on one monotonic clock) and the decoded snapshot.
//! Threads write disjoint sets of keys, so each thread's prefix can be found on its own.
//!
//! How it decides, for one thread: replay the thread's writes and note, for every key it
//! touches, the key's state after each write (a fingerprint of its canonical encoding).
//! A key whose state in the snapshot equals its state after write `j`, and which the next
//! write to it changes at write `j'`, is consistent with any prefix length `p` in
//! `[j, j')`. Intersect these ranges over all the thread's keys, then with the range the
//! clock allows (at least the writes completed before the call, at most the writes
//! started before the return). An empty intersection is a violation, and the ranges say
//! which writes are to blame.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use snaplab_core::rdb::crc::crc64;
use snaplab_core::rdb::encode::encode_entry;
use snaplab_core::{Bytes, Command, Entry, Keyspace, escape, unix_ms_now};

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
}

/// Everything the writers and the saver recorded around one BGSAVE.
#[derive(Clone, Debug, Default)]
pub struct History {
    /// Per writer thread, its writes in order (`seq` 1, 2, ...). Threads must write
    /// disjoint keys.
    pub threads: Vec<Vec<Write>>,
    /// When BGSAVE was called, ns since the epoch.
    pub bgsave_called_ns: u64,
    /// When BGSAVE returned, ns since the epoch.
    pub bgsave_returned_ns: u64,
}

/// The cut found: per thread, how many of its writes the snapshot contains.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FoundCut {
    /// Prefix length per thread.
    pub prefix: Vec<u64>,
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
        /// The earlier write that is missing.
        missing: String,
    },
    /// A key's state in the snapshot is not its state after any prefix of its thread's writes.
    NoSuchState {
        /// Writer thread.
        thread: usize,
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
    /// The history itself breaks the checker's assumptions (not the strategy's fault).
    BadHistory(String),
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Violation::MissingCompletedWrite { thread, write, before_call_us } => write!(
                f,
                "rule 'every write completed before BGSAVE was called is in the snapshot' is violated: \
                 thread {thread}'s {write} completed {before_call_us} µs before BGSAVE was called, \
                 but the snapshot does not contain it"
            ),
            Violation::LeakedLaterWrite { thread, write, after_return_us } => write!(
                f,
                "rule 'no write that started after BGSAVE returned is in the snapshot' is violated: \
                 thread {thread}'s {write} started {after_return_us} µs after BGSAVE returned, \
                 but the snapshot contains it"
            ),
            Violation::NotAPrefix { thread, present, missing } => write!(
                f,
                "rule 'each thread's writes in the snapshot are a prefix of its writes' is violated: \
                 the snapshot contains thread {thread}'s {present} but not its earlier {missing}"
            ),
            Violation::NoSuchState { thread, db, key, found } => write!(
                f,
                "key {key} (db {db}) holds {found}, which is not its state after any prefix of \
                 thread {thread}'s writes: the snapshot shows a state that never existed"
            ),
            Violation::UntouchedKeyChanged { db, key, how } => {
                write!(f, "key {key} (db {db}) was not written during the test, yet in the snapshot it {how}")
            }
            Violation::BadHistory(why) => write!(f, "the recorded history is unusable: {why}"),
        }
    }
}

impl std::error::Error for Violation {}

/// A fingerprint of one key's state: `None` when absent, else a CRC-64 and the length of
/// the entry's canonical encoding (sets and hashes sorted, so equal states fingerprint
/// equally).
type Fingerprint = Option<(u64, usize)>;

fn fingerprint(entry: Option<&Entry>) -> Fingerprint {
    let entry = entry?;
    let mut buf = Vec::new();
    encode_entry(&mut buf, &mut Vec::new(), b"", entry, false, true);
    Some((crc64(&buf), buf.len()))
}

fn describe_state(entry: Option<&Entry>) -> String {
    match entry {
        None => "nothing (the key is absent)".into(),
        Some(e) => format!("a {} ({})", e.value.type_name(), crate::render::summary(&e.value)),
    }
}

/// A write for messages: `write #7 (SET db0 t1:s3)`.
fn describe(w: &Write) -> String {
    let key = w.cmd.key().map(escape).unwrap_or_default();
    format!("write #{} ({} db{} {key})", w.seq, w.cmd.name(), w.cmd.db().unwrap_or(0))
}

/// Half-open ranges `[start, end)` of prefix lengths, sorted and disjoint.
type Ranges = Vec<(u64, u64)>;

fn intersect(a: &Ranges, b: &Ranges) -> Ranges {
    let mut out = Vec::new();
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        let start = a[i].0.max(b[j].0);
        let end = a[i].1.min(b[j].1);
        if start < end {
            out.push((start, end));
        }
        if a[i].1 < b[j].1 { i += 1 } else { j += 1 }
    }
    out
}

/// What one key went through: the seq of each write that touched it (0 for the initial
/// state) and its state after that write.
struct KeyStates {
    seqs: Vec<u64>,
    states: Vec<Fingerprint>,
}

impl KeyStates {
    /// The prefix lengths under which the key's state is `observed`.
    fn ranges(&self, observed: &Fingerprint) -> Ranges {
        let mut out: Ranges = Vec::new();
        for (i, fp) in self.states.iter().enumerate() {
            if fp == observed {
                let start = self.seqs[i];
                let end = self.seqs.get(i + 1).copied().unwrap_or(u64::MAX);
                match out.last_mut() {
                    Some(last) if last.1 == start => last.1 = end,
                    _ => out.push((start, end)),
                }
            }
        }
        out
    }
}

/// Find the cut `snapshot` was taken at, given the keyspace `initial` the writers started
/// from and their `history`.
///
/// # Errors
/// The first [`Violation`] found, in words a student can act on.
pub fn find_cut(initial: &Keyspace, history: &History, snapshot: &Keyspace) -> Result<FoundCut, Violation> {
    let now = unix_ms_now();
    let mut owner: HashMap<(usize, &[u8]), usize> = HashMap::new();
    for (t, writes) in history.threads.iter().enumerate() {
        for (i, w) in writes.iter().enumerate() {
            if w.seq != i as u64 + 1 {
                return Err(Violation::BadHistory(format!("thread {t}'s write {i} has seq {}", w.seq)));
            }
            let (Some(db), Some(key)) = (w.cmd.db(), w.cmd.key()) else {
                return Err(Violation::BadHistory(format!(
                    "thread {t} issued {}, which is not a single-key write",
                    w.cmd.name()
                )));
            };
            if let Some(&other) = owner.get(&(db, key))
                && other != t
            {
                return Err(Violation::BadHistory(format!("threads {other} and {t} both write key {}", escape(key))));
            }
            owner.insert((db, key), t);
        }
    }

    // Keys nobody wrote must be exactly as they were.
    for (db, key, entry) in initial.iter() {
        if owner.contains_key(&(db, key.as_slice())) {
            continue;
        }
        match snapshot.get(db, key) {
            None => return Err(Violation::UntouchedKeyChanged { db, key: escape(key), how: "is missing" }),
            Some(e) if e != entry => {
                return Err(Violation::UntouchedKeyChanged { db, key: escape(key), how: "differs" });
            }
            _ => {}
        }
    }
    for (db, key, _) in snapshot.iter() {
        if initial.get(db, key).is_none() && !owner.contains_key(&(db, key.as_slice())) {
            return Err(Violation::UntouchedKeyChanged { db, key: escape(key), how: "appeared from nowhere" });
        }
    }

    let mut prefix = Vec::with_capacity(history.threads.len());
    for (t, writes) in history.threads.iter().enumerate() {
        prefix.push(thread_prefix(t, writes, initial, history, snapshot, now)?);
    }
    Ok(FoundCut { prefix })
}

fn thread_prefix(
    t: usize,
    writes: &[Write],
    initial: &Keyspace,
    history: &History,
    snapshot: &Keyspace,
    now: i64,
) -> Result<u64, Violation> {
    // Replay the thread's writes on its own keys, noting each key's state after each write.
    let mut scratch = Keyspace::new();
    let mut keys: BTreeMap<(usize, Bytes), KeyStates> = BTreeMap::new();
    for w in writes {
        let (db, key) = (w.cmd.db().unwrap_or(0), w.cmd.key().unwrap_or_default().to_vec());
        let ks = keys.entry((db, key.clone())).or_insert_with(|| {
            let init = initial.get(db, &key);
            if let Some(e) = init {
                scratch.insert(db, key.clone(), e.clone());
            }
            KeyStates { seqs: vec![0], states: vec![fingerprint(init)] }
        });
        // A refused write changes nothing, which is also what the store did.
        let _ = scratch.apply(&w.cmd, now);
        ks.seqs.push(w.seq);
        ks.states.push(fingerprint(scratch.get(db, &key)));
    }

    let lo = writes.iter().take_while(|w| w.completed_ns < history.bgsave_called_ns).count() as u64;
    let hi = writes.iter().take_while(|w| w.invoked_ns <= history.bgsave_returned_ns).count() as u64;

    let mut feasible: Ranges = vec![(0, u64::MAX)];
    // For diagnosis: the highest lower bound and the lowest upper bound any key forces; when
    // they cross, the write at the floor is present while the one at the ceiling is missing.
    let mut highest_floor: Option<u64> = None;
    let mut lowest_ceiling: Option<u64> = None;
    for ((db, key), states) in &keys {
        let observed = snapshot.get(*db, key);
        let ranges = states.ranges(&fingerprint(observed));
        if ranges.is_empty() {
            return Err(Violation::NoSuchState {
                thread: t,
                db: *db,
                key: escape(key),
                found: describe_state(observed),
            });
        }
        let floor = ranges[0].0;
        let ceiling = ranges[ranges.len() - 1].1;
        highest_floor = Some(highest_floor.map_or(floor, |f| f.max(floor)));
        lowest_ceiling = Some(lowest_ceiling.map_or(ceiling, |c| c.min(ceiling)));
        feasible = intersect(&feasible, &ranges);
        if feasible.is_empty() {
            let (f, c) = (highest_floor.unwrap_or(0), lowest_ceiling.unwrap_or(u64::MAX));
            if f >= c && f >= 1 && c >= 1 {
                return Err(Violation::NotAPrefix {
                    thread: t,
                    present: describe(&writes[f as usize - 1]),
                    missing: describe(&writes[c as usize - 1]),
                });
            }
            return Err(Violation::NoSuchState {
                thread: t,
                db: *db,
                key: escape(key),
                found: format!("{} together with the thread's other keys", describe_state(observed)),
            });
        }
    }

    let within = intersect(&feasible, &vec![(lo, hi.saturating_add(1))]);
    if let Some(&(start, _)) = within.first() {
        return Ok(start);
    }
    // Every prefix the keys allow is outside what the clock allows.
    let max_feasible = feasible.last().map_or(0, |r| r.1 - 1);
    if max_feasible < lo {
        // The write after the largest feasible prefix is missing, and it completed before the call.
        let w = &writes[max_feasible as usize];
        return Err(Violation::MissingCompletedWrite {
            thread: t,
            write: describe(w),
            before_call_us: (history.bgsave_called_ns - w.completed_ns) / 1000,
        });
    }
    let min_feasible = feasible[0].0;
    let w = &writes[min_feasible as usize - 1];
    Err(Violation::LeakedLaterWrite {
        thread: t,
        write: describe(w),
        after_return_us: w.invoked_ns.saturating_sub(history.bgsave_returned_ns) / 1000,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use snaplab_core::Value;

    fn set(key: &str, v: &str) -> Command {
        Command::Set { db: 0, key: key.into(), value: v.into(), expire_at_ms: None }
    }

    /// A history of one thread writing a, b, a, b at times 10, 20, 30, 40 (µs), with
    /// BGSAVE called at 25 and returned at 26.
    fn history() -> History {
        let cmds = [set("a", "1"), set("b", "2"), set("a", "3"), set("b", "4")];
        let writes = cmds
            .into_iter()
            .enumerate()
            .map(|(i, cmd)| Write {
                seq: i as u64 + 1,
                cmd,
                invoked_ns: (i as u64 + 1) * 10_000,
                completed_ns: (i as u64 + 1) * 10_000 + 1_000,
            })
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
        assert_eq!(cut.prefix, vec![2]);
    }

    /// Missing write 2, which completed before the call, is named.
    #[test]
    fn names_a_missing_completed_write() {
        let err = find_cut(&Keyspace::new(), &history(), &snapshot(&[("a", "1")])).unwrap_err();
        assert!(matches!(&err, Violation::MissingCompletedWrite { write, .. } if write.contains("#2")), "{err}");
    }

    /// Write 3 started after the return; finding it in the snapshot is a leak.
    #[test]
    fn names_a_leaked_write() {
        let err = find_cut(&Keyspace::new(), &history(), &snapshot(&[("a", "3"), ("b", "2")])).unwrap_err();
        assert!(matches!(&err, Violation::LeakedLaterWrite { write, .. } if write.contains("#3")), "{err}");
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
}
