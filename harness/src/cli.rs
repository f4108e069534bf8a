//! The `snaplab` command-line tool.
//!
//! Exit status: 0 on success; 1 when an input is refused, a save fails or a snapshot does
//! not verify, with the reason on stderr; 2 for a usage error (clap's convention).

use std::fs::File;
use std::io::{self, BufWriter};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};
use snaplab_core::rdb::{self, Checksum, Dialect, LoadSummary};
use snaplab_core::{AtomicFile, DB_COUNT, Keyspace, SaveOptions, aof, escape};
use snaplab_formats::{self as formats, Codec, Compression, FormatError};

use crate::compare::run_info::{self, RunInfo};
use crate::compare::{self, CompareConfig, CompareRow, Trace};
use crate::dataset::{self, DatasetSpec, LargeHashes};
use crate::formats::{self as format_table, FormatsConfig};
use crate::load::{KeyDist, LoadSpec, WriteMix};
use crate::progress;
use crate::registry::{Registry, StrategyEntry};
use crate::render;

#[derive(Parser)]
#[command(
    name = "snaplab",
    version,
    about = "Point-in-time snapshots of an in-memory store, strategy by strategy, in the real Redis RDB format",
    long_about = "snaplab saves a keyspace with several snapshot strategies (blocking SAVE, clone-then-serialize, ...) \
while writer threads keep updating it, checks that every dump is a true point-in-time snapshot, and compares \
what each strategy costs. Every dump is a Redis RDB file: redis-server loads ours, we load Redis's."
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// List the snapshot strategies.
    Strategies,
    /// Print every key of a dump: db, type, encoding found in the file, expiry (UTC, to the
    /// ms; raw unix ms with --json), value, and the key last so long keys keep columns aligned.
    /// Values are printed as they are read, never held whole; a dump that turns out bad
    /// leaves the line of the key being read unfinished and exits 1.
    Inspect {
        /// The RDB file.
        file: PathBuf,
        /// One JSON object per line with the full value (binary-safe: non-UTF-8 strings
        /// become {"base64": ...}; collections in file order; values carried verbatim as
        /// {"rdb_type", "bytes"}).
        #[arg(long)]
        json: bool,
    },
    /// Check a dump like redis-check-rdb: exit 0 and a summary, or exit 1 with the error and its byte offset.
    /// Streams: memory stays under about 64 MiB plus the largest compressed blob in the dump,
    /// plus a 128-bit fingerprint per key (to refuse a key stored twice, as Redis does).
    Verify {
        /// The RDB file.
        file: PathBuf,
    },
    /// Load a dump into a strategy and write it back out with BGSAVE.
    Save {
        /// Strategy name (see `snaplab strategies`).
        #[arg(long)]
        strategy: String,
        /// The dump to load.
        #[arg(long)]
        input: PathBuf,
        /// Where to write the new dump (replaced atomically).
        #[arg(long)]
        output: PathBuf,
        /// Deterministic output (keys and members sorted, ctime 0): two strategies holding
        /// the same data write byte-identical files.
        #[arg(long)]
        canonical: bool,
        /// Write strings uncompressed (Redis `rdbcompression no`).
        #[arg(long)]
        no_compress: bool,
    },
    /// Compare the strategies: one BGSAVE each while writers update random keys, every dump verified.
    Compare(CompareArgs),
    /// Internal: one strategy's comparison run, in its own process.
    #[command(hide = true)]
    CompareWorker(WorkerArgs),
    /// Write the built-in dataset as a dump (to load it into redis-server, or to compare on it later).
    Generate {
        /// Where to write the dump.
        #[arg(long)]
        output: PathBuf,
        /// Number of string keys.
        #[arg(long, default_value_t = 1_000_000)]
        keys: usize,
        /// Bytes per string value.
        #[arg(long, default_value_t = 100)]
        value_size: usize,
        /// Add COUNT large hashes `snaplab:hash:0` .. of SIZE bytes each (as `64:1MiB`),
        /// the hashes `compare`'s collection writes go to.
        #[arg(long, value_name = "COUNT:SIZE")]
        large_hashes: Option<LargeHashes>,
        /// RNG seed.
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// Compare the snapshot formats (RDB, JSON, bincode, a length-delimited stream) and
    /// compressions on one keyspace: size, encode and decode time, round trip, parallel encoding.
    Formats(FormatsArgs),
    /// Convert a snapshot between formats (e.g. a dump to JSON lines, to read it).
    Convert(ConvertArgs),
    /// Serve a strategy over the Redis protocol (RESP2), for redis-cli, redis-benchmark and
    /// any Redis client. Loads --input, or DIR/DBFILENAME if it exists, like redis-server.
    Serve(ServeArgs),
    /// Measure this machine's scheduling noise: sleep 100 us again and again and print how
    /// much later than asked each sleep returned (p50, p99, max overshoot). A write latency
    /// no larger than these, measured at the same time, is the machine's noise, not the save.
    NoiseProbe {
        /// How long to probe, seconds.
        #[arg(long, default_value_t = 3.0, value_parser = parse_seconds)]
        seconds: f64,
        /// The sleep each iteration asks for, us.
        #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..))]
        sleep_us: u64,
        /// Also write the figures as a JSON object to this file (keys: sleep_us, seconds,
        /// sleeps, overshoot_p50_us, overshoot_p99_us, overshoot_max_us).
        #[arg(long, value_name = "PATH")]
        json: Option<PathBuf>,
    },
}

/// `--seconds`: a finite number of seconds above 0, at most an hour.
fn parse_seconds(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(x) if x.is_finite() && x > 0.0 && x <= 3600.0 => Ok(x),
        _ => Err(format!("{s:?} is not a number of seconds above 0 and at most 3600")),
    }
}

#[derive(Args)]
struct ServeArgs {
    /// Strategy name (see `snaplab strategies`).
    #[arg(long)]
    strategy: String,
    /// Load this dump at start instead of DIR/DBFILENAME.
    #[arg(long)]
    input: Option<PathBuf>,
    /// Working directory: saves go to DIR/DBFILENAME (Redis `dir`); it must exist.
    #[arg(long, default_value = ".")]
    dir: PathBuf,
    /// The dump's file name (Redis `dbfilename`).
    #[arg(long, default_value = "dump.rdb")]
    dbfilename: String,
    /// Listen on this unix socket (then TCP only with --port).
    #[arg(long)]
    unixsocket: Option<PathBuf>,
    /// Listen on this TCP port (default 6379 without --unixsocket; 0 disables TCP).
    #[arg(long)]
    port: Option<u16>,
    /// Address to bind the TCP port to.
    #[arg(long, default_value = "127.0.0.1")]
    bind: String,
    /// Save rules, as Redis's `save`: "SECONDS CHANGES ..." pairs, e.g. "3600 1 300 100".
    /// None by default (redis-server with no config file has "3600 1 300 100 60 10000").
    /// With rules, SHUTDOWN, SIGINT and SIGTERM save first.
    #[arg(long, default_value = "", hide_default_value = true, allow_hyphen_values = true)]
    save: String,
    /// With nothing to do, keep polling for this many microseconds before sleeping (0, the
    /// default: sleep at once, as Redis does). Spends CPU so that clients' requests find
    /// the server awake; on 2 cores it raised redis-benchmark's GET rate (README).
    #[arg(long, default_value_t = 0, value_name = "US")]
    busy_poll_us: u64,
    /// Serve the strategy with a deliberate bug, for tests that prove a check catches it.
    #[arg(long, hide = true)]
    fault: Option<crate::serve::fault::ServeFault>,
}

#[derive(Args)]
struct FormatsArgs {
    /// Run on this snapshot (RDB, or any format `convert` writes, gzipped or not) instead of
    /// the built-in dataset.
    #[arg(long, conflicts_with_all = ["keys", "value_size"])]
    input: Option<PathBuf>,
    /// Built-in dataset: number of string keys.
    #[arg(long, default_value_t = 1_000_000)]
    keys: usize,
    /// Built-in dataset: bytes per string value.
    #[arg(long, default_value_t = 100)]
    value_size: usize,
    /// Seed for the built-in dataset.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Worker threads of the parallel encoder (default: one per core).
    #[arg(long)]
    threads: Option<usize>,
    /// Also write the rows as a JSON array to this file (keys: format, compression,
    /// file_bytes, encode_ms, decode_ms, round_trip, parallel_identical, and more).
    #[arg(long, value_name = "PATH")]
    json: Option<PathBuf>,
    /// No progress bars.
    #[arg(long, short)]
    quiet: bool,
}

#[derive(Args)]
struct ConvertArgs {
    /// The snapshot to read: RDB, JSON, bincode or stream, gzipped or not (recognised from
    /// its first bytes).
    input: PathBuf,
    /// Where to write it (replaced atomically), or `-` for standard output.
    output: PathBuf,
    /// The format to write.
    #[arg(long, value_name = "FORMAT", value_parser = ["rdb", "json", "bincode", "stream"])]
    to: String,
    /// `gzip` compresses the whole file; `lzf` compresses each string inside an RDB file
    /// (Redis's `rdbcompression yes`); `none` neither. Default: lzf for rdb, as Redis
    /// writes it, none for the others.
    #[arg(long, value_name = "COMPRESSION", value_parser = ["none", "lzf", "gzip"])]
    compress: Option<String>,
    /// No progress bars.
    #[arg(long, short)]
    quiet: bool,
}

// ANCHOR: compare_options
#[derive(Args)]
struct CompareArgs {
    /// Run on this dump instead of the built-in dataset.
    #[arg(long, conflicts_with = "keys")]
    input: Option<PathBuf>,
    /// Built-in dataset: number of string keys.
    #[arg(long, default_value_t = 1_000_000)]
    keys: usize,
    /// Bytes per value writers store (and, for the built-in dataset, per string value in
    /// it; default 100). With --input and without this, writers' values are sized like the
    /// dump's own strings, sampled from their sizes.
    #[arg(long)]
    value_size: Option<usize>,
    /// Built-in dataset: add COUNT large hashes of SIZE bytes each (as `64:1MiB`; units B,
    /// KiB, MiB, GiB), `snaplab:hash:0` .. in db 0, in 1 KiB fields. They are the hashes the
    /// `collection` writes go to (one of 1,024, chosen by key), so COUNT/1024 of those writes
    /// update a large value: the weak spot of the per-key designs (perkey, overlay, cow copy
    /// the whole value before its first write during a save). Try
    /// `--large-hashes 64:1MiB --mix overwrite=80,collection=20`.
    #[arg(long, value_name = "COUNT:SIZE", conflicts_with = "input")]
    large_hashes: Option<LargeHashes>,
    /// Strategies to run, comma-separated (default: all).
    #[arg(long, value_delimiter = ',')]
    strategies: Vec<String>,
    /// Writer threads during each save (0 times the save alone); at most 8 per core, since
    /// more only time-share the cores and miss their schedule.
    #[arg(long, default_value_t = 1, value_parser = parse_writers)]
    writers: usize,
    /// Target writes per second, all writer threads together, above 0 (open-loop: latency
    /// counts from each write's scheduled start, so a stall cannot hide). The default keeps
    /// one core far from saturated.
    #[arg(long, value_name = "OPS_PER_SEC", default_value_t = 10_000.0, value_parser = parse_rate, allow_negative_numbers = true)]
    rate: f64,
    /// Which existing keys writers update: `uniform`, or `zipf` (exponent 0.99, a few hot
    /// keys take most writes) or `zipf:EXPONENT`.
    #[arg(long, value_name = "DIST", default_value = "uniform")]
    keys_dist: KeyDist,
    /// The write mix, as weights: overwrite (SET an existing key), insert (SET a new key),
    /// delete (DEL an existing key), collection (HSET a field in one of 1,024 hashes).
    #[arg(long, value_name = "OP=WEIGHT,...", default_value_t = WriteMix::default())]
    mix: WriteMix,
    /// How long writers run before BGSAVE, to measure latency without a save (ms).
    #[arg(long, default_value_t = 1000)]
    baseline_ms: u64,
    /// Add the `redis-7 (fork)` row: redis-server on a unix socket, loaded from the same
    /// dump, under the same load, asked for BGSAVE. On by default when `redis-server` is on
    /// PATH; with this flag, its absence is an error.
    #[arg(long, conflicts_with = "no_redis")]
    with_redis: bool,
    /// Leave out the Redis row even when `redis-server` is on PATH.
    #[arg(long)]
    no_redis: bool,
    /// How the strategies' rows are driven: `resp` runs each strategy as `snaplab serve` on a
    /// unix socket, driven and measured exactly like the Redis row (the default when the
    /// Redis row is included); `inproc` calls each store in a process of its own, no socket
    /// (the default otherwise), to study a strategy alone.
    #[arg(long, value_enum)]
    transport: Option<compare::Transport>,
    /// With `--transport resp`: serve every strategy with this deliberate bug (tests only).
    #[arg(long, hide = true)]
    serve_fault: Option<crate::serve::fault::ServeFault>,
    /// Run every row N times. The runs go in rounds (each round runs every row once), and
    /// every run is fresh: a strategy's in a new process that loads the dump anew (a clean
    /// heap, a store built from the file), Redis's in a newly started redis-server. Each
    /// figure is then the median of the row's runs, printed with the min-max range beside
    /// it, `0.41 (0.38-0.52)` (the median alone when every run prints the same); the x redis
    /// and p99/base ratios are of the medians, and the plots are drawn from the run whose
    /// save time is nearest the median.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    repeat: u32,
    /// Also write the rows as a JSON array to this file. Keys as documented in the
    /// harness README; with --repeat N above 1 they hold the medians, and each row adds
    /// `runs` (every run's own row) and `spread` ({"median", "min", "max", "runs"} per
    /// numeric field; a strategy's own figures as `figures.<name>`).
    #[arg(long, value_name = "PATH")]
    json: Option<PathBuf>,
    /// Write SVG plots to this directory: latency.svg (write latency over time, save
    /// marked), memory.svg (memory over time), summary.svg (save time and memory per row),
    /// and traces.json (the series they are drawn from).
    #[arg(long, value_name = "DIR")]
    plots: Option<PathBuf>,
    /// Keep the dumps in this directory (default: a temporary directory, removed afterwards).
    #[arg(long, value_name = "DIR")]
    out_dir: Option<PathBuf>,
    /// Seed for the built-in dataset and the writers' key choice.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// No progress bars.
    #[arg(long, short)]
    quiet: bool,
    /// Run every strategy in this process instead of one fresh process each (memory
    /// figures are then polluted by the previous strategy's freed heap).
    #[arg(long, hide = true)]
    in_process: bool,
}
// ANCHOR_END: compare_options

/// One strategy's run of `compare`, in a process of its own; prints its row and trace as JSON.
#[derive(Args)]
struct WorkerArgs {
    #[arg(long)]
    strategy: String,
    #[arg(long)]
    source: PathBuf,
    #[arg(long)]
    dir: PathBuf,
    #[arg(long, value_parser = parse_writers)]
    writers: usize,
    #[arg(long, value_parser = parse_rate, allow_negative_numbers = true)]
    rate: f64,
    #[arg(long)]
    baseline_ms: u64,
    #[arg(long)]
    seed: u64,
    #[arg(long)]
    value_size: usize,
    #[arg(long)]
    sample_value_sizes: bool,
    #[arg(long)]
    keys_dist: KeyDist,
    #[arg(long)]
    mix: WriteMix,
    #[arg(long)]
    quiet: bool,
}

/// Bytes per value writers store (and per string of the built-in dataset) unless
/// `--value-size` says otherwise.
pub const DEFAULT_VALUE_SIZE: usize = 100;

/// Writer threads per core `compare` allows: each writer is a thread that sleeps until its
/// next write is due, so a few per core keep their schedule; past that they only
/// time-share the cores, and a million of them cannot even be spawned.
pub const WRITERS_PER_CORE: usize = 8;

/// The most writer threads `compare` accepts on this machine: [`WRITERS_PER_CORE`] per
/// core (`std::thread::available_parallelism`).
pub fn max_writers() -> usize {
    WRITERS_PER_CORE * std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// `--writers`: a count from 0 to [`max_writers`].
fn parse_writers(s: &str) -> Result<usize, String> {
    let n: usize = s.parse().map_err(|_| format!("{s:?} is not a number of writer threads (0, 1, 2, ...)"))?;
    let (max, cores) = (max_writers(), std::thread::available_parallelism().map_or(1, |n| n.get()));
    if n > max {
        return Err(format!(
            "{n} writer threads is more than this machine can drive on schedule: at most {max} \
             ({WRITERS_PER_CORE} per core, {cores} cores); a writer is a thread, and the load's total is --rate"
        ));
    }
    Ok(n)
}

/// `--rate`: writes per second, a finite number above 0.
fn parse_rate(s: &str) -> Result<f64, String> {
    const WHAT: &str = "a rate is the number of writes per second all writers together aim for, \
                        a number above 0 (e.g. 10000 or 2.5e4); use --writers 0 to time the save without writes";
    match s.parse::<f64>() {
        Ok(r) if r.is_finite() && r > 0.0 => Ok(r),
        Ok(_) => Err(format!("{s} is not a rate: {WHAT}")),
        Err(_) => Err(format!("{s:?} is not a number: {WHAT}")),
    }
}

/// What a compare worker prints: its row and its trace.
#[derive(serde::Serialize, serde::Deserialize)]
struct WorkerOutput {
    row: CompareRow,
    trace: Trace,
}

/// Run the CLI with these strategies; returns the process exit status.
pub fn main(registry: Registry) -> ExitCode {
    let cli = Cli::parse();
    match run(cli, &registry) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn run(cli: Cli, registry: &Registry) -> Result<ExitCode> {
    match cli.command {
        Cmd::Strategies => {
            for e in registry.entries() {
                println!("{:<10} {}", e.name, e.about);
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Inspect { file, json } => inspect(&file, json),
        Cmd::Verify { file } => verify(&file),
        Cmd::Save { strategy, input, output, canonical, no_compress } => {
            let entry = registry.get(&strategy).map_err(anyhow::Error::msg)?;
            save(entry, &input, &output, SaveOptions { canonical, compress: !no_compress, ..SaveOptions::default() })
        }
        Cmd::Compare(args) => run_compare(args, registry),
        Cmd::CompareWorker(w) => {
            let entry = registry.get(&w.strategy).map_err(anyhow::Error::msg)?;
            let cfg = CompareConfig {
                load: LoadSpec {
                    writers: w.writers,
                    rate: w.rate,
                    seed: w.seed,
                    value_size: w.value_size,
                    dist: w.keys_dist,
                    mix: w.mix,
                },
                baseline: Duration::from_millis(w.baseline_ms),
                dir: w.dir,
                keep_dir: None,
                progress: !w.quiet,
                sample_value_sizes: w.sample_value_sizes,
            };
            let (row, trace) = compare::run_one(&entry, &w.source, &cfg)?;
            println!("{}", serde_json::to_string(&WorkerOutput { row, trace })?);
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Generate { output, keys, value_size, large_hashes, seed } => {
            let mut ks = dataset::generate(&DatasetSpec { keys, value_size, seed });
            if let Some(large) = &large_hashes {
                dataset::add_large_hashes(&mut ks, large, seed);
            }
            let stats = snaplab_core::write_snapshot(&ks, &output, &SaveOptions::default(), "generate")
                .with_context(|| format!("writing {}", output.display()))?;
            println!("wrote {} keys, {} bytes to {}", stats.keys, stats.bytes, output.display());
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Formats(args) => run_formats(args),
        Cmd::Convert(args) => convert(args),
        Cmd::Serve(args) => {
            let entry = registry.get(&args.strategy).map_err(anyhow::Error::msg)?;
            let port = match (args.port, &args.unixsocket) {
                (Some(0), _) | (None, Some(_)) => None,
                (Some(p), _) => Some(p),
                (None, None) => Some(6379),
            };
            let opts = crate::serve::ServeOptions {
                dir: args.dir,
                dbfilename: args.dbfilename,
                input: args.input,
                unixsocket: args.unixsocket,
                tcp: port.map(|p| (args.bind, p)),
                save: args.save,
                save_options: SaveOptions::default(),
                fault: args.fault,
                busy_poll: Duration::from_micros(args.busy_poll_us),
            };
            crate::serve::run(entry, opts)?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::NoiseProbe { seconds, sleep_us, json } => {
            let probe = crate::noise::probe(Duration::from_micros(sleep_us), Duration::from_secs_f64(seconds));
            println!("noise probe: {}", probe.line());
            if let Some(path) = json {
                let f = File::create(&path).with_context(|| format!("cannot create {}", path.display()))?;
                serde_json::to_writer_pretty(BufWriter::new(f), &probe).context("writing the probe's JSON")?;
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn open(file: &Path) -> Result<File> {
    File::open(file).with_context(|| format!("cannot open {}", file.display()))
}

/// Load a dump, with a progress bar if it takes more than a second.
fn load_dump(file: &Path, show_progress: bool) -> Result<(Keyspace, LoadSummary)> {
    // Opened first so a missing file is said once, plainly, as `verify` says it.
    drop(open(file)?);
    let size = std::fs::metadata(file).map(|m| m.len()).unwrap_or(0);
    let counter = Arc::new(AtomicU64::new(0));
    let _bar = progress::track("loading", "bytes", size, Arc::clone(&counter), show_progress);
    let (mut ks, summary) = rdb::load_file_with_progress(file, Some(counter))
        .with_context(|| format!("{} is not a dump snaplab can load", file.display()))?;
    if let Some(tail) = aof_tail(file, summary.bytes)? {
        let started = Instant::now();
        let n = aof::replay_tail(&mut ks, &tail, summary.bytes)
            .with_context(|| format!("the command tail of {} does not load", file.display()))?;
        eprintln!(
            "replayed the AOF tail of {}: {n} commands, {} bytes, in {:.1} ms",
            file.display(),
            tail.len(),
            started.elapsed().as_secs_f64() * 1e3
        );
    }
    Ok((ks, summary))
}

/// The bytes after the RDB dump at the start of `file` (`rdb_bytes` long): the command
/// tail of an RDB-preamble AOF (Redis `aof-use-rdb-preamble`), or `None` for a plain dump.
fn aof_tail(file: &Path, rdb_bytes: u64) -> Result<Option<Vec<u8>>> {
    let size = std::fs::metadata(file).map(|m| m.len()).unwrap_or(0);
    if size <= rdb_bytes {
        return Ok(None);
    }
    let mut f = open(file)?;
    io::Seek::seek(&mut f, io::SeekFrom::Start(rdb_bytes)).with_context(|| format!("reading {}", file.display()))?;
    let mut tail = Vec::new();
    io::Read::read_to_end(&mut f, &mut tail).with_context(|| format!("reading {}", file.display()))?;
    Ok(Some(tail))
}

/// Check the command tail of `file`, if it has one, by loading the whole file; one line
/// saying what it held and how long its replay took.
fn check_aof_tail(file: &Path, rdb_bytes: u64) -> Result<Option<String>> {
    if aof_tail(file, rdb_bytes)?.is_none() {
        return Ok(None);
    }
    let (_, s) = aof::load_file(file).with_context(|| format!("{} is not a valid RDB-preamble AOF", file.display()))?;
    Ok(Some(format!(
        "{} commands, {} bytes after the RDB (an RDB-preamble AOF), replayed in {:.1} ms",
        s.commands,
        s.tail_bytes,
        s.replay.as_secs_f64() * 1e3
    )))
}

fn inspect(file: &Path, json: bool) -> Result<ExitCode> {
    let stdout = io::stdout();
    // Why streaming: a value is printed element by element as it is checked, so a dump whose
    // few compressed bytes describe millions of elements never has them all in memory.
    let mut printer = render::InspectPrinter::new(BufWriter::new(stdout.lock()), json);
    let result = rdb::check_each(open(file)?, |event| printer.event(event));
    if result.is_err() {
        printer.abandon();
    }
    match printer.error.take() {
        // `snaplab inspect dump.rdb | head` closes the pipe early: that is not an error.
        Some(e) if e.kind() == io::ErrorKind::BrokenPipe => return Ok(ExitCode::SUCCESS),
        Some(e) => return Err(e).context("writing to stdout"),
        None => {}
    }
    let _ = printer.flush();
    let summary = result.with_context(|| format!("{} is not a valid dump", file.display()))?;
    if let Some(line) = check_aof_tail(file, summary.bytes)?
        && !json
    {
        println!("AOF tail: {line}");
    }
    Ok(ExitCode::SUCCESS)
}

fn verify(file: &Path) -> Result<ExitCode> {
    let started = Instant::now();
    let summary = rdb::check(open(file)?).with_context(|| format!("{} is not a valid dump", file.display()))?;
    let aux = |name| summary.aux(name).map(escape).unwrap_or_else(|| "-".into());
    println!("file:      {}", file.display());
    match summary.dialect {
        Dialect::Redis => {
            println!("version:   RDB {} (redis-ver {}, ctime {})", summary.version, aux("redis-ver"), aux("ctime"))
        }
        Dialect::Valkey => {
            println!("version:   VALKEY {} (valkey-ver {}, ctime {})", summary.version, aux("valkey-ver"), aux("ctime"))
        }
    }
    for db in 0..DB_COUNT {
        if summary.keys_per_db[db] > 0 {
            println!(
                "db{db}:{:<6} {} keys, {} with an expiry",
                "", summary.keys_per_db[db], summary.expires_per_db[db]
            );
        }
    }
    println!(
        "keys:      {} in all, {} elements; {} already expired; {} carried verbatim (streams, hashes with field TTLs)",
        summary.keys(),
        summary.elements,
        summary.already_expired,
        summary.opaque_values
    );
    if summary.empty_keys_skipped > 0 {
        println!("skipped:   {} empty collections (Redis skips them too)", summary.empty_keys_skipped);
    }
    if summary.key_metadata_skipped > 0 {
        println!(
            "skipped:   {} key metadata values of classes that allow it (Redis without their modules skips them too)",
            summary.key_metadata_skipped
        );
    }
    if summary.slot_imports > 0 {
        println!("skipped:   {} slot migrations in progress (cluster state, not carried)", summary.slot_imports);
    }
    if summary.partly_checked > 0 {
        println!(
            "note:      {} collections have more than {} members; later members were compared with the first {} \
             only (loading checks them all)",
            summary.partly_checked,
            rdb::MEMBER_CHECK_LIMIT,
            rdb::MEMBER_CHECK_LIMIT
        );
    }
    if summary.functions > 0 {
        println!("functions: {} libraries", summary.functions);
    }
    let checksum = match summary.checksum {
        Some(Checksum::Verified(c)) => format!("ok ({c:#018x})"),
        Some(Checksum::Disabled) => "not checked: the file was written with checksums disabled".into(),
        Some(Checksum::Absent) | None => "none (RDB versions before 5 have no checksum)".into(),
    };
    println!("checksum:  {checksum}");
    println!("size:      {} bytes, read in {:.1} ms", summary.bytes, started.elapsed().as_secs_f64() * 1e3);
    if let Some(line) = check_aof_tail(file, summary.bytes)? {
        println!("AOF tail:  {line}");
    }
    println!("RDB looks OK");
    Ok(ExitCode::SUCCESS)
}

fn save(entry: StrategyEntry, input: &Path, output: &Path, mut opts: SaveOptions) -> Result<ExitCode> {
    // A store starting in a directory first clears what earlier saves killed there left.
    let out_dir = output.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    if let Ok(removed) = snaplab_core::remove_stale_temp_files(out_dir) {
        for r in removed {
            eprintln!("removed {}, left by a save that did not finish", r.display());
        }
    }
    let (keyspace, _) = load_dump(input, true)?;
    let total = keyspace.len() as u64;
    let store = (entry.build)(keyspace);
    let counter = Arc::new(AtomicU64::new(0));
    opts.progress = Some(Arc::clone(&counter));
    let bar = progress::track("saving", "keys", total, counter, true);
    let report = store
        .bgsave(output, &opts)
        .and_then(|bg| bg.wait())
        .with_context(|| format!("{}: BGSAVE to {} failed", entry.name, output.display()))?;
    drop(bar);
    println!(
        "{}: wrote {} keys, {} bytes to {} in {:.1} ms (cut after {} writes, taken in {:.3} ms)",
        entry.name,
        report.keys,
        report.bytes,
        output.display(),
        report.duration.as_secs_f64() * 1e3,
        report.cut.writes(),
        report.time_to_cut.as_secs_f64() * 1e3
    );
    Ok(ExitCode::SUCCESS)
}

/// Run one strategy's comparison in a fresh copy of this program, so its memory figures
/// start from a clean heap, and read back its row and trace.
fn run_worker(strategy: &str, source: &Path, cfg: &CompareConfig) -> Result<(CompareRow, Trace)> {
    let exe = std::env::current_exe().context("cannot find the snaplab executable to run a worker")?;
    let mut cmd = std::process::Command::new(exe);
    let l = &cfg.load;
    cmd.arg("compare-worker")
        .args(["--strategy", strategy])
        .arg("--source")
        .arg(source)
        .arg("--dir")
        .arg(&cfg.dir)
        .args(["--writers", &l.writers.to_string(), "--rate", &l.rate.to_string()])
        .args(["--baseline-ms", &cfg.baseline.as_millis().to_string(), "--seed", &l.seed.to_string()])
        .args(["--value-size", &l.value_size.to_string()])
        .args(["--keys-dist", &l.dist.to_string(), "--mix", &l.mix.to_string()]);
    if !cfg.progress {
        cmd.arg("--quiet");
    }
    if cfg.sample_value_sizes {
        cmd.arg("--sample-value-sizes");
    }
    let child = cmd
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit())
        .spawn()
        .context("running a compare worker")?;
    let _stop_on_signal = compare::interrupt::watch(child.id());
    let out = child.wait_with_output().context("waiting for a compare worker")?;
    if !out.status.success() {
        bail!("{strategy}: the comparison run failed ({})", out.status);
    }
    let parsed: WorkerOutput = serde_json::from_slice(&out.stdout)
        .with_context(|| format!("{strategy}: unreadable result from the worker"))?;
    Ok((parsed.row, parsed.trace))
}

fn run_compare(args: CompareArgs, registry: &Registry) -> Result<ExitCode> {
    // From here on Ctrl-C stops the servers and workers this run starts and lets the drop
    // guards remove its temporary directories, instead of ending the process where it is.
    compare::interrupt::install().context("installing the Ctrl-C handler")?;
    let entries: Vec<StrategyEntry> = if args.strategies.is_empty() {
        registry.entries().to_vec()
    } else {
        args.strategies.iter().map(|n| registry.get(n)).collect::<Result<_, _>>().map_err(anyhow::Error::msg)?
    };
    let with_redis = if args.with_redis {
        if !compare::redis::available() {
            bail!("--with-redis: there is no redis-server on PATH (Debian/Ubuntu: apt-get install redis-server)");
        }
        true
    } else {
        !args.no_redis && compare::redis::available()
    };
    let transport =
        args.transport.unwrap_or(if with_redis { compare::Transport::Resp } else { compare::Transport::Inproc });
    if args.serve_fault.is_some() && transport != compare::Transport::Resp {
        bail!("--serve-fault needs --transport resp");
    }
    let show = !args.quiet;
    let _tmp;
    let dir = match &args.out_dir {
        Some(d) => {
            std::fs::create_dir_all(d).with_context(|| format!("cannot create {}", d.display()))?;
            d.clone()
        }
        None => {
            _tmp = tempfile::tempdir().context("cannot create a temporary directory")?;
            _tmp.path().to_path_buf()
        }
    };
    let value_size = args.value_size.unwrap_or(DEFAULT_VALUE_SIZE);
    let mut value_sizes = format!("{value_size} bytes each");
    let mut sample_value_sizes = false;
    let (source, description, input) = match &args.input {
        Some(file) => {
            let (ks, _) = load_dump(file, show)?;
            if args.value_size.is_some() {
                value_sizes.push_str(" (--value-size)");
            } else {
                let mut list = crate::load::KeyList::new(&ks);
                match list.sample_value_sizes(&ks) {
                    Some(q) => {
                        let at = |f: f64| q[((q.len() - 1) as f64 * f) as usize];
                        value_sizes = format!(
                            "sized like the dump's strings (sampled: median {} B, p90 {} B, max {} B)",
                            at(0.5),
                            at(0.9),
                            at(1.0)
                        );
                        sample_value_sizes = true;
                    }
                    None => value_sizes.push_str(" (the dump has no strings to sample sizes from)"),
                }
            }
            (file.clone(), format!("{} ({} keys)", file.display(), ks.len()), file.display().to_string())
        }
        None => {
            let spec = DatasetSpec { keys: args.keys, value_size, seed: args.seed };
            let mut ks = dataset::generate(&spec);
            let mut d = dataset::describe(&spec, &ks);
            if let Some(large) = &args.large_hashes {
                dataset::add_large_hashes(&mut ks, large, args.seed);
                d.push_str(&format!(
                    " + {} hashes snaplab:hash:* of {} bytes each (--large-hashes {large})",
                    large.count, large.bytes
                ));
            }
            // Every strategy starts from this dump, as a restarted server would.
            let source = dir.join("dataset.rdb");
            snaplab_core::write_snapshot(&ks, &source, &SaveOptions::default(), "generate")
                .with_context(|| format!("writing {}", source.display()))?;
            (source, d.clone(), d)
        }
    };
    let run_info = RunInfo {
        input,
        input_sha256: run_info::sha256_file(&source).with_context(|| format!("reading {}", source.display()))?,
        rate_per_s: args.rate,
        writers: args.writers,
        keys_dist: args.keys_dist.to_string(),
        mix: args.mix.to_string(),
        value_size_bytes: (!sample_value_sizes).then_some(value_size),
        value_sizes: value_sizes.clone(),
        baseline_ms: args.baseline_ms,
        repeat: args.repeat as usize,
        snaplab_commit: run_info::SNAPLAB_COMMIT.to_string(),
        cores: run_info::cores(),
        cpu: run_info::cpu_model(),
        kernel: run_info::kernel(),
    };
    eprintln!(
        "dataset: {description}; {} writer thread(s) at {} writes/s in all, keys {}, mix {}, values {value_sizes}; \
         transport {transport}",
        args.writers, args.rate, args.keys_dist, args.mix
    );
    let dump_bytes = std::fs::metadata(&source).with_context(|| format!("reading {}", source.display()))?.len();
    let needs = compare::disk::needs(
        dump_bytes,
        entries.len(),
        with_redis,
        args.out_dir.is_some(),
        &dir,
        &std::env::temp_dir(),
    );
    eprintln!("{}", compare::disk::check(&needs, compare::disk::free_space)?);
    if !with_redis && !args.no_redis {
        eprintln!("no redis-server on PATH: the table has no redis row to compare with");
    }
    let cfg = CompareConfig {
        load: LoadSpec {
            writers: args.writers,
            rate: args.rate,
            seed: args.seed,
            value_size,
            dist: args.keys_dist,
            mix: args.mix,
        },
        baseline: Duration::from_millis(args.baseline_ms),
        dir: dir.clone(),
        keep_dir: args.out_dir.clone(),
        progress: show,
        sample_value_sizes,
    };
    // Redis first: it is the anchor the other rows are read against.
    let mut runs: Vec<Option<&StrategyEntry>> = if with_redis { vec![None] } else { vec![] };
    runs.extend(entries.iter().map(Some));
    let planned = runs.len();
    let repeat = args.repeat as usize;
    // Per row, its runs so far and their traces.
    let mut done: Vec<(Vec<CompareRow>, Vec<Trace>)> = vec![(Vec::new(), Vec::new()); planned];
    let mut failure = None;
    'rounds: for round in 1..=repeat {
        for (i, run) in runs.iter().enumerate() {
            if compare::interrupt::interrupted() {
                break 'rounds;
            }
            if repeat > 1 && show {
                let name = run.map_or("redis", |e| e.name);
                eprintln!("round {round} of {repeat}: {name}");
            }
            let result = match run {
                None => compare::redis::run(&source, &cfg),
                Some(entry) if transport == compare::Transport::Resp => {
                    let sut = compare::redis::ServerUnderTest::Snaplab {
                        strategy: entry.name.to_string(),
                        fault: args.serve_fault,
                    };
                    compare::redis::run_server(&sut, &source, &cfg)
                }
                Some(entry) if args.in_process => compare::run_one(entry, &source, &cfg),
                Some(entry) => run_worker(entry.name, &source, &cfg),
            };
            let (row, trace) = match result {
                Ok(done) => done,
                Err(e) => {
                    failure = Some(e);
                    break 'rounds;
                }
            };
            if let Some(e) = &row.verify_error {
                eprintln!("{}: verification failed: {e}", row.strategy);
            }
            if args.out_dir.is_none()
                && let Some(entry) = run
            {
                // Verified and measured: without --out-dir, nobody will look at it again.
                let _ = std::fs::remove_file(dir.join(compare::dump_name(entry.name)));
            }
            done[i].0.push(row);
            done[i].1.push(trace);
        }
    }
    let runs_done: usize = done.iter().map(|(r, _)| r.len()).sum();
    let mut rows: Vec<CompareRow> = Vec::new();
    let mut traces: Vec<Trace> = Vec::new();
    for (row_runs, mut row_traces) in done.into_iter().filter(|(r, _)| !r.is_empty()) {
        traces.push(row_traces.swap_remove(compare::repeat::median_run(&row_runs)));
        let row = compare::repeat::aggregate(row_runs)?;
        rows.push(CompareRow { run: Some(run_info.clone()), ..row });
    }
    let finished = if repeat > 1 {
        format!("{runs_done} of {} runs ({planned} rows, {repeat} rounds) finished", planned * repeat)
    } else {
        format!("{} of {planned} rows finished", rows.len())
    };
    // Whatever ended the loop, the rows finished so far are printed and written.
    if !rows.is_empty() {
        print!("{}", compare::table(&rows));
    }
    if let Some(path) = &args.json {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).with_context(|| format!("cannot create {}", parent.display()))?;
        }
        let f = File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
        serde_json::to_writer_pretty(BufWriter::new(f), &rows).context("writing the JSON report")?;
    }
    if let Some(plot_dir) = &args.plots {
        let files = crate::plots::write_plots(plot_dir, &rows, &traces)?;
        let traces_path = plot_dir.join("traces.json");
        let f = File::create(&traces_path).with_context(|| format!("cannot create {}", traces_path.display()))?;
        serde_json::to_writer(BufWriter::new(f), &traces).context("writing traces.json")?;
        for f in files.iter().chain([&traces_path]) {
            eprintln!("wrote {}", f.display());
        }
    }
    if compare::interrupt::interrupted() {
        eprintln!(
            "interrupted: {finished}{}; the servers, workers and temporary files this run started are gone",
            if rows.is_empty() { "" } else { " (printed above)" }
        );
        return Ok(ExitCode::from(130));
    }
    if let Some(e) = failure {
        let shown = if rows.is_empty() { "" } else { " (printed above)" };
        return Err(e.context(format!("after {finished}{shown}")));
    }
    if rows.iter().all(|r| r.verified) { Ok(ExitCode::SUCCESS) } else { bail!("some snapshots did not verify") }
}

/// Read a snapshot in any format snaplab reads, with a progress bar in bytes.
fn load_any(file: &Path, show_progress: bool) -> Result<(Codec, Keyspace)> {
    // An RDB dump, or an RDB-preamble AOF (the dump, then a command tail), loads with its
    // tail applied; the formats' RDB decoder refuses bytes after the dump.
    let mut head = [0u8; 5];
    let n = io::Read::read(&mut open(file)?, &mut head).with_context(|| format!("reading {}", file.display()))?;
    if let Some(codec) = formats::detect(&head[..n], false).filter(|c| c.format.name() == "rdb") {
        return Ok((codec, load_dump(file, show_progress)?.0));
    }
    let size = std::fs::metadata(file).map(|m| m.len()).unwrap_or(0);
    let counter = Arc::new(AtomicU64::new(0));
    let _bar = progress::track("loading", "bytes", size, Arc::clone(&counter), show_progress);
    let input = format_table::Counting::new(open(file)?, &counter);
    formats::decode_any(input).with_context(|| format!("{} is not a snapshot snaplab can load", file.display()))
}

fn run_formats(args: FormatsArgs) -> Result<ExitCode> {
    let show = !args.quiet;
    let (ks, description) = match &args.input {
        Some(file) => {
            let (codec, ks) = load_any(file, show)?;
            let d = format!("{} ({}, {} keys)", file.display(), codec.id(), ks.len());
            (ks, d)
        }
        None => {
            let spec = DatasetSpec { keys: args.keys, value_size: args.value_size, seed: args.seed };
            let ks = dataset::generate(&spec);
            let d = dataset::describe(&spec, &ks);
            (ks, d)
        }
    };
    let threads = match args.threads {
        Some(0) => bail!("--threads must be at least 1"),
        Some(n) => n,
        None => std::thread::available_parallelism().map_or(1, |n| n.get()),
    };
    eprintln!("keyspace: {description}; parallel encoder: {threads} thread(s); in memory, MB = 10^6 bytes of file");
    let rows = format_table::run(&ks, &FormatsConfig { threads, progress: show })?;
    print!("{}", format_table::table(&rows));
    if let Some(path) = &args.json {
        let f = File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
        serde_json::to_writer_pretty(BufWriter::new(f), &rows).context("writing the JSON report")?;
    }
    for r in rows.iter().filter(|r| !r.round_trip || !r.parallel_identical) {
        let what = r.error.as_deref().unwrap_or("the parallel encoder wrote different bytes");
        eprintln!("{} {}: {what}", r.format, r.compression);
    }
    if rows.iter().all(|r| r.round_trip && r.parallel_identical) {
        Ok(ExitCode::SUCCESS)
    } else {
        bail!("some formats did not round-trip")
    }
}

fn convert(args: ConvertArgs) -> Result<ExitCode> {
    // Both names come from clap's list of possible values.
    let format = formats::format(&args.to).with_context(|| format!("unknown format {}", args.to))?;
    let compression = match args.compress.as_deref() {
        Some(name) => Compression::parse(name).with_context(|| format!("unknown compression {name}"))?,
        None if format.supports(Compression::Lzf) => Compression::Lzf,
        None => Compression::None,
    };
    let codec = Codec::new(format, compression)?;
    let show = !args.quiet;
    let (found, ks) = load_any(&args.input, show)?;
    let counter = Arc::new(AtomicU64::new(0));
    let bar = progress::track("writing", "keys", ks.len() as u64, Arc::clone(&counter), show);
    let written = if args.output.as_os_str() == "-" {
        match codec.encode(&ks, io::stdout().lock(), Some(&counter)) {
            Ok(written) => written,
            // `snaplab convert dump.rdb - --to json | head` closes the pipe early: not an error.
            Err(FormatError::Io { source, .. }) if source.kind() == io::ErrorKind::BrokenPipe => {
                return Ok(ExitCode::SUCCESS);
            }
            Err(e) => return Err(e).context("writing to stdout"),
        }
    } else {
        let mut file = AtomicFile::create(&args.output)?;
        let written = codec
            .encode(&ks, &mut file, Some(&counter))
            .with_context(|| format!("writing {}", args.output.display()))?;
        file.commit()?;
        written
    };
    drop(bar);
    if args.output.as_os_str() != "-" {
        println!(
            "converted {} ({}) to {} ({}): {} keys, {} function libraries, {} bytes",
            args.input.display(),
            found.id(),
            args.output.display(),
            codec.id(),
            written.keys,
            written.functions,
            written.file_bytes
        );
    }
    Ok(ExitCode::SUCCESS)
}
