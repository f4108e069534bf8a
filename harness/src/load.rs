//! The open-loop write load `snaplab compare` runs during a save: which keys, which
//! commands, on what schedule, and what each write cost.
//!
//! **Open-loop** means every write has an intended start time on a fixed schedule
//! (`rate` writes per second in all) and its latency is measured from that intended time.
//! A writer held up by a stall still accounts for every write it should have issued
//! meanwhile, so a stall cannot hide behind a writer that simply stopped issuing
//! (*coordinated omission*, Gil Tene's term; the fix is the one wrk2 and HdrHistogram's
//! `recordValueWithExpectedInterval` make).
//!
//! The load is the same whatever it targets: a strategy in this process, or redis-server
//! through a RESP connection per writer. Each writer gets a function that applies one
//! [`Command`] and returns its [`WriteStamp`] (Redis has none; it returns a dummy).

use std::fmt;
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use anyhow::{Result, anyhow, bail};
use hdrhistogram::Histogram;
use rand::distr::Distribution;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use snaplab_core::rdb::{Element, Item, KeyInfo, RdbReader};
use snaplab_core::{Bytes, Command, Keyspace, RdbError, WriteStamp};

/// How writers choose which existing key to update.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum KeyDist {
    /// Every key equally likely.
    Uniform,
    /// Zipf-distributed ranks with exponent `s` (YCSB's default is 0.99): a few hot keys
    /// take most writes. Ranks are scattered over the key list so hot keys do not sit
    /// next to each other (in one shard's bucket, say).
    Zipf(f64),
}

impl FromStr for KeyDist {
    type Err = String;
    /// `uniform`, `zipf` (s = 0.99) or `zipf:S`.
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "uniform" => Ok(KeyDist::Uniform),
            "zipf" => Ok(KeyDist::Zipf(0.99)),
            _ => match s.strip_prefix("zipf:").map(str::parse::<f64>) {
                Some(Ok(e)) if e > 0.0 && e.is_finite() => Ok(KeyDist::Zipf(e)),
                _ => Err(format!("unknown key distribution {s:?}: expected uniform, zipf or zipf:EXPONENT (> 0)")),
            },
        }
    }
}

impl fmt::Display for KeyDist {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyDist::Uniform => write!(f, "uniform"),
            KeyDist::Zipf(e) => write!(f, "zipf:{e}"),
        }
    }
}

/// A prime larger than any key count we use, so `rank * SCATTER mod n` is a permutation
/// of `0..n` (it is coprime to every `n` below it).
const SCATTER: u64 = 1_000_000_007;

/// Picks key indices in `0..n` according to a [`KeyDist`].
enum KeyChooser {
    Uniform(usize),
    Zipf(rand_distr::Zipf<f64>, usize),
}

impl KeyChooser {
    fn new(dist: KeyDist, n: usize) -> Result<Self> {
        Ok(match dist {
            KeyDist::Uniform => KeyChooser::Uniform(n),
            KeyDist::Zipf(s) => {
                KeyChooser::Zipf(rand_distr::Zipf::new(n as f64, s).map_err(|e| anyhow!("zipf: {e}"))?, n)
            }
        })
    }

    fn pick(&self, rng: &mut ChaCha8Rng) -> usize {
        match self {
            KeyChooser::Uniform(n) => rng.random_range(0..*n),
            KeyChooser::Zipf(z, n) => {
                // Zipf samples ranks 1..=n as floats.
                let rank = (z.sample(rng) as u64).clamp(1, *n as u64) - 1;
                (rank.wrapping_mul(SCATTER) % *n as u64) as usize
            }
        }
    }
}

/// One kind of write in the mix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Op {
    /// `SET` an existing key (chosen by the [`KeyDist`]) to a new value.
    Overwrite = 0,
    /// `SET` a key that did not exist: `snaplab:new:<writer>:<n>` in db 0.
    Insert = 1,
    /// `DEL` an existing key (chosen by the [`KeyDist`]; it may already be gone).
    Delete = 2,
    /// `HSET` a field (named after a chosen key) in one of [`COLLECTIONS`] hashes
    /// `snaplab:hash:<i>` in db 0, which the load creates: the collection update.
    Collection = 3,
}

/// How many hashes the [`Op::Collection`] writes spread over.
pub const COLLECTIONS: usize = 1024;

/// The names of the [`Op::Collection`] hashes: this prefix, then 0 to [`COLLECTIONS`] - 1.
pub const COLLECTION_PREFIX: &[u8] = b"snaplab:hash:";

const OPS: [(Op, &str); 4] =
    [(Op::Overwrite, "overwrite"), (Op::Insert, "insert"), (Op::Delete, "delete"), (Op::Collection, "collection")];

/// The write mix: a weight per [`Op`]; each write picks an op with probability weight / sum.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WriteMix {
    /// Weights for overwrite, insert, delete, collection, in that order.
    pub weights: [u32; 4],
}

impl Default for WriteMix {
    /// Mostly overwrites, with some of everything else: `overwrite=85,insert=5,delete=5,collection=5`.
    fn default() -> Self {
        WriteMix { weights: [85, 5, 5, 5] }
    }
}

impl FromStr for WriteMix {
    type Err = String;
    /// `overwrite=80,insert=10,delete=5,collection=5`; an op not named gets weight 0.
    fn from_str(s: &str) -> Result<Self, String> {
        let mut weights = [0u32; 4];
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (name, w) = part.split_once('=').ok_or_else(|| format!("{part:?}: expected OP=WEIGHT"))?;
            let i = OPS
                .iter()
                .position(|(_, n)| *n == name.trim())
                .ok_or_else(|| format!("unknown op {name:?}: expected overwrite, insert, delete or collection"))?;
            weights[i] = w.trim().parse().map_err(|_| format!("{part:?}: the weight must be a whole number"))?;
        }
        if weights.iter().all(|&w| w == 0) {
            return Err("the write mix needs at least one op with a weight above 0".into());
        }
        Ok(WriteMix { weights })
    }
}

impl fmt::Display for WriteMix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> =
            OPS.iter().zip(self.weights).filter(|(_, w)| *w > 0).map(|((_, name), w)| format!("{name}={w}")).collect();
        write!(f, "{}", parts.join(","))
    }
}

impl WriteMix {
    fn pick(&self, rng: &mut ChaCha8Rng) -> Op {
        let total: u32 = self.weights.iter().sum();
        let mut r = rng.random_range(0..total);
        for ((op, _), w) in OPS.iter().zip(self.weights) {
            if r < w {
                return *op;
            }
            r -= w;
        }
        unreachable!("r < total = sum of weights")
    }
}

/// Every (db, key) of a keyspace, sorted, for the writers to choose from: packed into
/// three allocations, because the harness's own memory is part of what `fork` copies
/// page tables for and what the memory sampler sees.
pub struct KeyList {
    dbs: Vec<u8>,
    ends: Vec<u32>,
    bytes: Vec<u8>,
    /// When set ([`KeyList::sample_value_sizes`]), the sizes writers' values take instead
    /// of the load's fixed size: [`SIZE_QUANTILES`] quantiles of the dump's string sizes.
    value_sizes: Option<Vec<u32>>,
}

/// How many quantiles of the dump's string sizes writers sample from.
pub const SIZE_QUANTILES: usize = 1024;

impl KeyList {
    /// The keys of `ks`, sorted by (db, key), except the [`Op::Collection`] targets
    /// (`snaplab:hash:*` in db 0, present when the dump was made with large hashes or by
    /// an earlier run): only `HSET` writes them, since an overwrite would turn one into a
    /// string and the next `HSET` into a type error.
    pub fn new(ks: &Keyspace) -> Self {
        let mut keys: Vec<(usize, &[u8])> = ks
            .iter()
            .filter(|(db, k, _)| !(*db == 0 && k.starts_with(COLLECTION_PREFIX)))
            .map(|(db, k, _)| (db, k.as_slice()))
            .collect();
        keys.sort_unstable();
        let mut list = KeyList {
            dbs: Vec::with_capacity(keys.len()),
            ends: Vec::with_capacity(keys.len()),
            bytes: Vec::new(),
            value_sizes: None,
        };
        for (db, k) in keys {
            list.dbs.push(db as u8);
            list.bytes.extend_from_slice(k);
            list.ends.push(list.bytes.len() as u32);
        }
        list
    }

    /// The keys of the dump at `path`, as [`KeyList::new`] lists those of the keyspace it
    /// loads into, with [`KeyList::sample_value_sizes`] applied if `sample_value_sizes`.
    ///
    /// Values are streamed, not built ([`RdbReader::next_checked`]): each key's record is
    /// dropped before the next is read, so reading leaves next to nothing freed behind in
    /// the allocator for a store loaded next to reuse (which would hide part of its size
    /// from a resident-memory figure). Transient memory: an index of 4 bytes a key and one
    /// copy of the packed keys, plus 4 bytes per string when sampling sizes.
    ///
    /// # Errors
    /// Any [`RdbError`] reading the dump.
    pub fn from_dump(path: &Path, sample_value_sizes: bool) -> Result<Self, RdbError> {
        let file = std::fs::File::open(path).map_err(|source| RdbError::Io { offset: 0, source })?;
        let mut reader = RdbReader::new(file)?;
        let (mut dbs, mut ends, mut bytes) = (Vec::new(), Vec::new(), Vec::new());
        let mut sizes: Vec<u32> = Vec::new();
        let mut on_element = |_: &KeyInfo, e: Element<'_>| {
            if let (true, Element::String(v)) = (sample_value_sizes, e) {
                sizes.push(v.len() as u32);
            }
        };
        while let Some(item) = reader.next_checked(&mut on_element)? {
            if let Item::Key(info) = item
                && !(info.db == 0 && info.key.starts_with(COLLECTION_PREFIX))
            {
                dbs.push(info.db as u8);
                bytes.extend_from_slice(&info.key);
                ends.push(bytes.len() as u32);
            }
        }
        let key = |i: usize| {
            let start = if i == 0 { 0 } else { ends[i - 1] as usize };
            (dbs[i], &bytes[start..ends[i] as usize])
        };
        let mut order: Vec<u32> = (0..dbs.len() as u32).collect();
        order.sort_unstable_by(|&a, &b| key(a as usize).cmp(&key(b as usize)));
        let mut list = KeyList {
            dbs: Vec::with_capacity(order.len()),
            ends: Vec::with_capacity(order.len()),
            bytes: Vec::with_capacity(bytes.len()),
            value_sizes: None,
        };
        for i in order {
            let (db, k) = key(i as usize);
            list.dbs.push(db);
            list.bytes.extend_from_slice(k);
            list.ends.push(list.bytes.len() as u32);
        }
        if !sizes.is_empty() {
            sizes.sort_unstable();
            let q = (0..SIZE_QUANTILES).map(|i| sizes[(i * sizes.len() + sizes.len() / 2) / SIZE_QUANTILES]).collect();
            list.value_sizes = Some(q);
        }
        Ok(list)
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.dbs.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.dbs.is_empty()
    }

    /// The heap memory the list holds, bytes: the capacity of its vectors (one byte of db
    /// and four of offset per key, plus the keys' bytes and the spare capacity of the byte
    /// vector). The comparison leaves it out of the store's resident size.
    pub fn heap_bytes(&self) -> u64 {
        let sizes = self.value_sizes.as_ref().map_or(0, Vec::capacity);
        (self.dbs.capacity() + (self.ends.capacity() + sizes) * size_of::<u32>() + self.bytes.capacity()) as u64
    }

    /// Make writers' values sized like `ks`'s string values: each write takes one of
    /// [`SIZE_QUANTILES`] evenly spaced quantiles of their sizes, picked by its writer and
    /// sequence number (so a write's value can be rebuilt from its record). Returns the
    /// sizes (sorted) or `None`, leaving the fixed size in force, when `ks` has no strings.
    pub fn sample_value_sizes(&mut self, ks: &Keyspace) -> Option<&[u32]> {
        let mut sizes: Vec<u32> = ks
            .iter()
            .filter_map(|(_, _, e)| match &e.value {
                snaplab_core::Value::String(v) => Some(v.len() as u32),
                _ => None,
            })
            .collect();
        if sizes.is_empty() {
            return None;
        }
        sizes.sort_unstable();
        let q: Vec<u32> =
            (0..SIZE_QUANTILES).map(|i| sizes[(i * sizes.len() + sizes.len() / 2) / SIZE_QUANTILES]).collect();
        self.value_sizes = Some(q);
        self.value_sizes.as_deref()
    }

    /// The size writer `writer`'s `n`-th value takes when sizes are sampled.
    fn sampled_size(&self, writer: u32, n: u64) -> Option<usize> {
        let q = self.value_sizes.as_ref()?;
        // SplitMix64's finaliser: a well-spread index from (writer, n).
        let mut z = (u64::from(writer) << 40 ^ n).wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        Some(q[(z % q.len() as u64) as usize] as usize)
    }

    /// The `i`-th (db, key).
    pub fn get(&self, i: usize) -> (usize, &[u8]) {
        let start = if i == 0 { 0 } else { self.ends[i - 1] as usize };
        (self.dbs[i] as usize, &self.bytes[start..self.ends[i] as usize])
    }
}

/// One logged write. The command is not kept: [`WriteRec::command`] rebuilds it from the
/// op, the writer id, its sequence number and the key index, which keeps the log small.
#[derive(Clone, Copy, Debug)]
pub struct WriteRec {
    /// The strategy's stamp (a dummy for Redis).
    pub stamp: WriteStamp,
    /// Writer thread index.
    pub writer: u32,
    /// The op.
    pub op: Op,
    /// Sequence number within the writer, from 0.
    pub n: u64,
    /// Key index in the [`KeyList`].
    pub key: u32,
    /// Scheduled start, ns since the load's epoch.
    pub intended_ns: u64,
    /// Actual start (the command was issued), ns since the epoch.
    pub issued_ns: u64,
    /// Completion (the reply was back), ns since the epoch.
    pub done_ns: u64,
}

impl WriteRec {
    /// Latency from the intended start, ns.
    pub fn latency_ns(&self) -> u64 {
        self.done_ns.saturating_sub(self.intended_ns)
    }

    /// The command this record stands for: values of `value_size` bytes, or of the size
    /// `keys` samples for this write when it samples ([`KeyList::sample_value_sizes`]).
    pub fn command(&self, keys: &KeyList, value_size: usize) -> Command {
        let size = keys.sampled_size(self.writer, self.n).unwrap_or(value_size);
        let value = write_value(self.writer, self.n, size);
        let (db, key) = keys.get(self.key as usize);
        match self.op {
            Op::Overwrite => Command::Set { db, key: key.to_vec(), value, expire_at_ms: None },
            Op::Insert => Command::Set {
                db: 0,
                key: format!("snaplab:new:{}:{}", self.writer, self.n).into_bytes(),
                value,
                expire_at_ms: None,
            },
            Op::Delete => Command::Del { db, key: key.to_vec() },
            Op::Collection => {
                let mut field = format!("{db}:").into_bytes();
                field.extend_from_slice(key);
                Command::HSet {
                    db: 0,
                    key: format!("snaplab:hash:{}", self.key as usize % COLLECTIONS).into_bytes(),
                    pairs: vec![(field, value)],
                }
            }
        }
    }
}

/// The value writer `writer` stores in its `n`-th write: recognisable, `size` bytes.
pub fn write_value(writer: u32, n: u64, size: usize) -> Bytes {
    let mut v = format!("w{writer}:{n}:").into_bytes();
    v.resize(size.max(v.len()), b'.');
    v
}

/// What the load looks like.
#[derive(Clone, Debug)]
pub struct LoadSpec {
    /// Writer threads.
    pub writers: usize,
    /// Target writes per second, all writers together.
    pub rate: f64,
    /// Seed for key and op choice.
    pub seed: u64,
    /// Bytes per value written (unless the key list samples sizes).
    pub value_size: usize,
    /// Key choice.
    pub dist: KeyDist,
    /// Op choice.
    pub mix: WriteMix,
}

/// Where the run is: the writers note their thread's CPU time when they see it change.
pub const PHASE_BASELINE: u8 = 0;
/// The save is running.
pub const PHASE_SAVE: u8 = 1;
/// The save has ended.
pub const PHASE_AFTER: u8 = 2;

/// What a writer thread hands back.
struct WriterOut {
    log: Vec<WriteRec>,
    /// The thread's CPU time (ns) when it first saw each phase.
    cpu_at_phase: [Option<u64>; 3],
}

/// This thread's CPU time, ns (`CLOCK_THREAD_CPUTIME_ID`).
pub fn thread_cpu_ns() -> Option<u64> {
    let t = nix::time::clock_gettime(nix::time::ClockId::CLOCK_THREAD_CPUTIME_ID).ok()?;
    Some(t.tv_sec() as u64 * 1_000_000_000 + t.tv_nsec() as u64)
}

/// A running load: writer threads issuing writes on schedule until [`Load::finish`].
pub struct Load {
    epoch: Instant,
    start: Instant,
    stop: Arc<AtomicBool>,
    phase: Arc<AtomicU8>,
    log_lens: Arc<Vec<AtomicUsize>>,
    handles: Vec<JoinHandle<Result<WriterOut>>>,
}

/// What the writers did, once stopped.
pub struct Finished {
    /// Every write, writer by writer.
    pub log: Vec<WriteRec>,
    /// The writer threads' CPU time between seeing [`PHASE_SAVE`] and [`PHASE_AFTER`], ns;
    /// `None` without writers.
    pub cpu_during_save_ns: Option<u64>,
}

impl Load {
    /// Start `spec.writers` threads; `connect(w)` makes writer `w`'s apply function (called
    /// on the spawning thread, so a connection error is reported here). Writes start 5 ms
    /// from now, staggered so writers do not all fire together.
    ///
    /// # Errors
    /// What `connect` returns, or an invalid key distribution.
    pub fn start<A>(spec: &LoadSpec, keys: Arc<KeyList>, mut connect: impl FnMut(usize) -> Result<A>) -> Result<Self>
    where
        A: FnMut(&Command) -> Result<WriteStamp> + Send + 'static,
    {
        let writers = if keys.is_empty() { 0 } else { spec.writers };
        let epoch = Instant::now();
        let start = epoch + Duration::from_millis(5);
        let stop = Arc::new(AtomicBool::new(false));
        let phase = Arc::new(AtomicU8::new(PHASE_BASELINE));
        let log_lens: Arc<Vec<AtomicUsize>> = Arc::new((0..writers).map(|_| AtomicUsize::new(0)).collect());
        let interval = Duration::from_secs_f64(writers.max(1) as f64 / spec.rate.max(1.0));
        let mut handles = Vec::with_capacity(writers);
        let stop_on_error = Arc::clone(&stop);
        for w in 0..writers {
            let mut apply = connect(w)?;
            let chooser = KeyChooser::new(spec.dist, keys.len())?;
            let (stop, phase, keys, lens) =
                (Arc::clone(&stop), Arc::clone(&phase), Arc::clone(&keys), Arc::clone(&log_lens));
            let (seed, value_size, mix) =
                (spec.seed.wrapping_mul(1000).wrapping_add(w as u64), spec.value_size, spec.mix);
            // A thread that cannot be spawned is an error, not a panic: the caller's guards
            // (a redis-server, temporary directories) must still be dropped.
            let spawned = thread::Builder::new().name(format!("writer-{w}")).spawn(move || -> Result<WriterOut> {
                let ns = |t: Instant| t.duration_since(epoch).as_nanos() as u64;
                let mut rng = ChaCha8Rng::seed_from_u64(seed);
                let mut log = Vec::with_capacity(1 << 16);
                let mut cpu_at_phase = [thread_cpu_ns(), None, None];
                let mut seen = PHASE_BASELINE;
                // ANCHOR: open_loop
                let mut intended = start + interval.mul_f64(w as f64 / writers as f64);
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let now_phase = phase.load(Ordering::Relaxed);
                    if now_phase != seen {
                        // A writer blocked through a whole phase (SAVE under `blocking`)
                        // sees two changes at once: it spent no CPU in the one it missed.
                        let cpu = thread_cpu_ns();
                        for p in seen + 1..=now_phase {
                            cpu_at_phase[p as usize] = cpu;
                        }
                        seen = now_phase;
                    }
                    // EXERCISE 11-open-loop BEGIN
                    let now = Instant::now();
                    if intended > now {
                        thread::sleep(intended - now);
                    }
                    // EXERCISE 11-open-loop END
                    let op = mix.pick(&mut rng);
                    let key = chooser.pick(&mut rng) as u32;
                    let mut rec = WriteRec {
                        stamp: WriteStamp { shard: 0, seq: 0 },
                        writer: w as u32,
                        op,
                        n,
                        key,
                        intended_ns: ns(intended),
                        issued_ns: 0,
                        done_ns: 0,
                    };
                    let cmd = rec.command(&keys, value_size);
                    rec.issued_ns = ns(Instant::now());
                    rec.stamp = apply(&cmd).map_err(|e| anyhow!("writer {w}: {e:#}"))?;
                    rec.done_ns = ns(Instant::now());
                    log.push(rec);
                    lens[w].store(log.len(), Ordering::Relaxed);
                    n += 1;
                    // EXERCISE 11-open-loop BEGIN
                    intended += interval;
                    // EXERCISE 11-open-loop END
                }
                Ok(WriterOut { log, cpu_at_phase })
                // ANCHOR_END: open_loop
            });
            match spawned {
                Ok(h) => handles.push(h),
                Err(e) => {
                    stop_on_error.store(true, Ordering::Relaxed);
                    for h in handles {
                        let _ = h.join();
                    }
                    bail!("cannot start writer thread {w} of {writers}: {e}");
                }
            }
        }
        Ok(Load { epoch, start, stop, phase, log_lens, handles })
    }

    /// Number of writer threads.
    pub fn writers(&self) -> usize {
        self.handles.len()
    }

    /// When the first write was scheduled.
    pub fn start_time(&self) -> Instant {
        self.start
    }

    /// `t` as ns since the load's epoch (the clock every [`WriteRec`] uses).
    pub fn ns(&self, t: Instant) -> u64 {
        t.saturating_duration_since(self.epoch).as_nanos() as u64
    }

    /// Tell the writers the run entered `phase` ([`PHASE_SAVE`], [`PHASE_AFTER`]).
    pub fn set_phase(&self, phase: u8) {
        self.phase.store(phase, Ordering::Relaxed);
    }

    /// Bytes the writers' logs hold now (the memory sampler subtracts their growth).
    pub fn log_bytes_fn(&self) -> impl Fn() -> u64 + Send + Clone + 'static {
        let lens = Arc::clone(&self.log_lens);
        move || lens.iter().map(|l| l.load(Ordering::Relaxed)).sum::<usize>() as u64 * size_of::<WriteRec>() as u64
    }

    /// Stop the writers and collect what they did.
    ///
    /// # Errors
    /// The first write that failed, or a writer thread that panicked.
    pub fn finish(self) -> Result<Finished> {
        self.stop.store(true, Ordering::Relaxed);
        let mut log = Vec::new();
        let mut cpu = None::<u64>;
        let mut first_err = None;
        for h in self.handles {
            match h.join().map_err(|_| anyhow!("a writer thread panicked"))? {
                Ok(out) => {
                    log.extend(out.log);
                    if let (Some(a), Some(b)) = (out.cpu_at_phase[PHASE_SAVE as usize], out.cpu_at_phase[2]) {
                        *cpu.get_or_insert(0) += b.saturating_sub(a);
                    }
                }
                Err(e) => first_err = first_err.or(Some(e)),
            }
        }
        if let Some(e) = first_err {
            bail!(e);
        }
        Ok(Finished { log, cpu_during_save_ns: cpu })
    }
}

/// Latency and throughput in the baseline and save windows, and the series for plots.
pub struct LatencyStats {
    /// Latency of writes intended in the baseline window, ns.
    pub baseline: Option<Histogram<u64>>,
    /// Latency of writes intended during the save, ns.
    pub save: Option<Histogram<u64>>,
    /// The longest write whose span overlaps the save, ns.
    pub max_stall_ns: u64,
    /// Writes completed during the save.
    pub done_during_save: u64,
    /// Writes completed per second during the save.
    pub save_per_s: Option<f64>,
    /// Writes completed per second in the baseline.
    pub baseline_per_s: Option<f64>,
    /// `save_per_s / baseline_per_s`, to 3 decimals.
    pub throughput_ratio: Option<f64>,
}

impl LatencyStats {
    /// Writes are assigned to a window by their intended start (a baseline write must also
    /// have finished before the call); the stall is the longest write whose span overlaps
    /// the save. Arguments are ns on the log's clock.
    pub fn new(log: &[WriteRec], start: u64, baseline_end: u64, called: u64, ended: u64) -> Self {
        let (mut baseline, mut save) = (histogram(), histogram());
        let mut max_stall_ns = 0;
        let (mut done_base, mut done_save) = (0u64, 0u64);
        for r in log {
            // A baseline write that was late enough to finish after BGSAVE was called met
            // the save: it counts in the stall, not in the baseline.
            if (start..baseline_end).contains(&r.intended_ns) && r.done_ns <= called {
                baseline.saturating_record(r.latency_ns().max(1));
            }
            if (called..ended).contains(&r.intended_ns) {
                save.saturating_record(r.latency_ns().max(1));
            }
            if r.intended_ns < ended && r.done_ns > called {
                max_stall_ns = max_stall_ns.max(r.latency_ns());
            }
            if (start..baseline_end).contains(&r.done_ns) {
                done_base += 1;
            }
            if (called..=ended).contains(&r.done_ns) {
                done_save += 1;
            }
        }
        let per_s = |n: u64, span: u64| (span > 0).then(|| n as f64 / (span as f64 / 1e9));
        let save_per_s = per_s(done_save, ended - called);
        let baseline_per_s = per_s(done_base, baseline_end - start).filter(|&b| b > 0.0);
        let throughput_ratio = save_per_s.zip(baseline_per_s).map(|(s, b)| (s / b * 1000.0).round() / 1000.0);
        LatencyStats {
            baseline: (!baseline.is_empty()).then_some(baseline),
            save: (!save.is_empty()).then_some(save),
            max_stall_ns,
            done_during_save: done_save,
            save_per_s: save_per_s.filter(|_| baseline_per_s.is_some()).map(|v| v.round()),
            baseline_per_s: baseline_per_s.map(|v| v.round()),
            throughput_ratio,
        }
    }
}

fn histogram() -> Histogram<u64> {
    Histogram::<u64>::new_with_bounds(1, 3_600_000_000_000, 3).expect("static bounds are valid")
}

/// Per `window_ns` window of intended start times: (window start relative to `origin`,
/// ms; max latency, µs; median latency, µs). Windows without writes are absent.
pub fn latency_series(log: &[WriteRec], origin: u64, window_ns: u64) -> Vec<(f64, f64, f64)> {
    let mut by_window: std::collections::BTreeMap<i64, Histogram<u64>> = Default::default();
    for r in log {
        let w = (r.intended_ns as i64 - origin as i64).div_euclid(window_ns as i64);
        by_window.entry(w).or_insert_with(histogram).saturating_record(r.latency_ns().max(1));
    }
    by_window
        .into_iter()
        .map(|(w, h)| {
            let t_ms = (w * window_ns as i64) as f64 / 1e6;
            (t_ms, h.max() as f64 / 1e3, h.value_at_quantile(0.5) as f64 / 1e3)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writer values carry their writer and sequence number and have the requested size.
    #[test]
    fn write_values() {
        assert_eq!(write_value(3, 17, 12), b"w3:17:......".to_vec());
        assert_eq!(write_value(3, 17, 2), b"w3:17:".to_vec(), "never truncated below its tag");
    }

    /// The mix and the distribution parse what `--help` says and refuse the rest.
    #[test]
    fn parse_options() {
        assert_eq!("overwrite=80,insert=10,delete=5,collection=5".parse(), Ok(WriteMix { weights: [80, 10, 5, 5] }));
        assert_eq!("delete=1".parse(), Ok(WriteMix { weights: [0, 0, 1, 0] }));
        assert!("overwrite=0".parse::<WriteMix>().is_err());
        assert!("update=3".parse::<WriteMix>().unwrap_err().contains("unknown op"));
        assert!("overwrite=x".parse::<WriteMix>().is_err());
        let m = WriteMix::default();
        assert_eq!(m.to_string().parse(), Ok(m), "Display round-trips (the worker is passed it)");
        assert_eq!("uniform".parse(), Ok(KeyDist::Uniform));
        assert_eq!("zipf".parse(), Ok(KeyDist::Zipf(0.99)));
        assert_eq!("zipf:1.2".parse(), Ok(KeyDist::Zipf(1.2)));
        assert_eq!(KeyDist::Zipf(0.99).to_string().parse(), Ok(KeyDist::Zipf(0.99)));
        assert!("zipf:-1".parse::<KeyDist>().is_err());
        assert!("normal".parse::<KeyDist>().is_err());
    }

    /// Ops come in proportion to their weights.
    #[test]
    fn mix_proportions() {
        let mix = WriteMix { weights: [70, 10, 20, 0] };
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let mut counts = [0u32; 4];
        for _ in 0..100_000 {
            counts[mix.pick(&mut rng) as usize] += 1;
        }
        assert_eq!(counts[3], 0);
        for (i, want) in [(0, 70_000.0), (1, 10_000.0), (2, 20_000.0)] {
            let got = counts[i] as f64;
            assert!((got - want).abs() < want * 0.05, "op {i}: {got} vs {want}");
        }
    }

    /// Zipf concentrates writes on a few keys, scattered over the list; uniform does not.
    #[test]
    fn zipf_is_skewed_and_scattered() {
        let n = 100_000;
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let count_top = |chooser: &KeyChooser, rng: &mut ChaCha8Rng| {
            let mut hits = std::collections::HashMap::<usize, u32>::new();
            for _ in 0..100_000 {
                *hits.entry(chooser.pick(rng)).or_default() += 1;
            }
            let mut v: Vec<(usize, u32)> = hits.into_iter().collect();
            v.sort_by_key(|&(_, c)| std::cmp::Reverse(c));
            v
        };
        let zipf = count_top(&KeyChooser::new(KeyDist::Zipf(0.99), n).unwrap(), &mut rng);
        let uniform = count_top(&KeyChooser::new(KeyDist::Uniform, n).unwrap(), &mut rng);
        let top10 = |v: &[(usize, u32)]| v.iter().take(10).map(|&(_, c)| c).sum::<u32>();
        assert!(top10(&zipf) > 10_000, "zipf: the 10 hottest keys take over 10% ({})", top10(&zipf));
        assert!(top10(&uniform) < 1_000, "uniform: no hot keys ({})", top10(&uniform));
        assert!(zipf.iter().all(|&(k, _)| k < n));
        // The two hottest ranks (0 and 1) are not neighbours in the key list.
        assert!(zipf[0].0.abs_diff(zipf[1].0) > 1);
    }

    fn rec(intended_ms: u64, done_ms: u64) -> WriteRec {
        WriteRec {
            stamp: WriteStamp { shard: 0, seq: 1 },
            writer: 0,
            op: Op::Overwrite,
            n: 0,
            key: 0,
            intended_ns: intended_ms * 1_000_000,
            issued_ns: intended_ms * 1_000_000,
            done_ns: done_ms * 1_000_000,
        }
    }

    /// Open-loop accounting: a writer blocked for 200 ms shows a 200 ms latency even though
    /// it issued nothing meanwhile, and every write it should have issued during the block
    /// counts the time it waited (the proof the load is open-loop, not closed-loop).
    #[test]
    fn an_injected_stall_is_accounted_for() {
        // Schedule: one write every 10 ms from t=0. The store blocks from t=100 to t=300:
        // the write intended at 100 completes at 300, and the ones intended at 110..290
        // (never issued on time) complete just after, one by one.
        let mut log = Vec::new();
        for i in 0..10 {
            log.push(rec(i * 10, i * 10 + 1));
        }
        for (k, i) in (10..30).enumerate() {
            log.push(rec(i * 10, 300 + k as u64));
        }
        for i in 30..40 {
            log.push(rec(i * 10, i * 10 + 1));
        }
        // Baseline 0..100 ms, save window 100..400 ms.
        let s = LatencyStats::new(&log, 0, 100_000_000, 100_000_000, 400_000_000);
        assert!(s.max_stall_ns >= 200_000_000, "max {} ns", s.max_stall_ns);
        let save = s.save.unwrap();
        assert!(save.max() >= 200_000_000);
        assert!(save.value_at_quantile(0.5) >= 50_000_000, "half the writes waited behind the stall");
        assert!(s.baseline.unwrap().value_at_quantile(0.99) <= 1_001_000);
        // The plot series shows the stall in the window the blocked write was due in.
        let series = latency_series(&log, 100_000_000, 10_000_000);
        let at_100 = series.iter().find(|(t, _, _)| *t == 0.0).unwrap();
        assert!(at_100.1 >= 200_000.0, "{at_100:?}");
        assert_eq!(series.first().unwrap().0, -100.0, "baseline windows are before the call");
    }

    /// Sampled value sizes follow the dump's strings: 90% of 50 bytes and 10% of 4,000
    /// give about that mix over 10,000 writes, the same write always gets the same size
    /// (verification rebuilds it), and a keyspace without strings leaves the fixed size.
    #[test]
    fn sampled_value_sizes_follow_the_dumps_strings() {
        let mut ks = Keyspace::new();
        for i in 0..1000u32 {
            let len = if i % 10 == 0 { 4000 } else { 50 };
            ks.insert(
                0,
                format!("k{i}").into_bytes(),
                snaplab_core::Entry::new(snaplab_core::Value::String(vec![b'x'; len])),
            );
        }
        let mut keys = KeyList::new(&ks);
        let q = keys.sample_value_sizes(&ks).unwrap().to_vec();
        assert_eq!((q[0], q[q.len() - 1]), (50, 4000));
        let big = (0..10_000u64).filter(|&n| keys.sampled_size((n % 3) as u32, n) == Some(4000)).count();
        assert!((800..1200).contains(&big), "{big} of 10000 writes were 4000 bytes");
        let rec = WriteRec {
            stamp: WriteStamp { shard: 0, seq: 1 },
            writer: 1,
            op: Op::Overwrite,
            n: 7,
            key: 3,
            intended_ns: 0,
            issued_ns: 0,
            done_ns: 0,
        };
        assert_eq!(rec.command(&keys, 100), rec.command(&keys, 100));
        let Command::Set { value, .. } = rec.command(&keys, 100) else { panic!("an overwrite is a SET") };
        assert!(value.len() == 50 || value.len() == 4000, "{}", value.len());
        let mut none = KeyList::new(&Keyspace::new());
        assert!(none.sample_value_sizes(&Keyspace::new()).is_none());
    }
}
