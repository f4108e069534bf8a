//! `snaplab serve`: any registered strategy behind the Redis protocol (RESP2), so that
//! `redis-cli`, `redis-benchmark` and any Redis client can drive it, and a comparison can
//! measure every store, Redis's included, through the same socket.
//!
//! Design: one event loop on one thread serves every connection ([`event_loop`], as
//! Redis's src/ae.c): it reads what each client sent, runs every whole request in it
//! (pipelining), and writes the replies without waiting on any one socket. The strategies
//! are multi-threaded stores (`&self` methods, their own locking), so their saver threads
//! run beside the loop; a command that waits on a strategy's lock (blocking's writes
//! during its save) holds every client, as a slow command does in Redis.
//!
//! Bounded memory per client: requests are read 64 KiB at a time, and a connection whose
//! replies wait for its socket is not read until they are written, so a client that never
//! reads its replies stops being read: its memory stays at what it sent plus about one
//! reply, where Redis would grow the output buffer up to `client-output-buffer-limit`
//! (unlimited for normal clients by default) and then drop the client. The price: a client
//! that writes a long pipeline whole before it reads any reply (rather than reading as it
//! writes, as redis-cli `--pipe` and redis-benchmark do) waits for ever once both sockets'
//! buffers fill, where Redis would buffer its replies. A connection that has gone idle keeps
//! at most 256 KiB of buffers, however large its last request or reply was.
//!
//! Save rules and the persistence commands go through
//! [`AutoSave`](snaplab_core::rules::AutoSave): writes count toward `save <seconds>
//! <changes>`, a failed save refuses writes with `-MISCONF`, `BGSAVE` and `SAVE` reset the
//! change counter at their cut, exactly as the library models Redis.

pub mod clock;
pub mod digest;
mod event_loop;
pub mod fault;
mod glob;
pub mod resp;

use std::io;
use std::net::TcpListener;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use snaplab_core::rdb::RdbError;
use snaplab_core::rules::{AutoSave, SaveRule, SaveTarget, parse_rules};
use snaplab_core::{
    Applied, BgSave, Bytes, Command, CommandError, DB_COUNT, Entry, SaveError, SaveOptions, SaveReport, Value,
    remove_stale_temp_files, unix_ms_now,
};
use thiserror::Error;

use crate::registry::{DynStrategy, StrategyEntry};
use resp::Out;

/// Bytes read from a socket at a time.
const READ_CHUNK: usize = 64 * 1024;
/// Pending reply bytes that make a connection flush before running the next request.
const FLUSH_AT: usize = 64 * 1024;
/// Redis's `client-query-buffer-limit` default (1 GiB): a client whose unparsed input grows
/// past it is disconnected.
const QUERY_BUFFER_LIMIT: usize = 1024 * 1024 * 1024;
/// How often the save rules are checked (Redis's `serverCron` runs at `hz 10`).
const TICK: Duration = Duration::from_millis(100);
/// Stack of the event loop's thread, a main thread's (8 MiB, virtual until touched): a
/// BGSAVE runs on it, and the fork strategy's child serializes the whole keyspace on the
/// copy of this stack (256 KiB overflowed in a debug build).
const LOOP_STACK: usize = 8 * 1024 * 1024;
/// The Redis version we answer to `HELLO` and `INFO server`: the one whose behaviour and
/// error texts the server follows.
pub const REDIS_VERSION: &str = "7.0.15";

impl SaveTarget for dyn DynStrategy {
    fn apply(&self, cmd: &Command) -> Result<Applied, CommandError> {
        DynStrategy::apply(self, cmd)
    }
    fn len(&self) -> usize {
        DynStrategy::len(self)
    }
    fn save(&self, dest: &Path, opts: &SaveOptions) -> Result<SaveReport, SaveError> {
        DynStrategy::save(self, dest, opts)
    }
    fn bgsave(&self, dest: &Path, opts: &SaveOptions) -> Result<BgSave, SaveError> {
        DynStrategy::bgsave(self, dest, opts)
    }
}

/// Why the server could not start.
#[derive(Debug, Error)]
pub enum ServeError {
    /// The dump to start from could not be read.
    #[error("cannot load {path}")]
    Load {
        /// The dump.
        path: PathBuf,
        /// Why.
        source: RdbError,
    },
    /// A listening socket could not be opened.
    #[error("cannot listen on {addr}")]
    Listen {
        /// The unix socket path or `host:port`.
        addr: String,
        /// Why.
        source: io::Error,
    },
    /// The `--save` value is not pairs of numbers.
    #[error("bad save rules: {0}")]
    Rules(String),
    /// The working directory does not exist (redis-server refuses to start too).
    #[error("the working directory {0} does not exist (--dir: saves go there; create it first)")]
    NoDir(PathBuf),
    /// Neither a unix socket nor a TCP port to listen on (Redis: "Configured to not listen
    /// anywhere, exiting").
    #[error("configured to listen nowhere: give --unixsocket PATH, or --port N other than 0")]
    NowhereToListen,
}

/// How to start a server.
#[derive(Clone, Debug)]
pub struct ServeOptions {
    /// The working directory: saves go to `dir/dbfilename` (Redis `dir`).
    pub dir: PathBuf,
    /// The dump's file name (Redis `dbfilename`, default `dump.rdb`).
    pub dbfilename: String,
    /// A dump to load instead of `dir/dbfilename`.
    pub input: Option<PathBuf>,
    /// Listen on this unix socket.
    pub unixsocket: Option<PathBuf>,
    /// Listen on TCP at `bind:port`.
    pub tcp: Option<(String, u16)>,
    /// The save rules (Redis `save`), e.g. `"3600 1 300 100 60 10000"`; empty for none.
    pub save: String,
    /// Save options (the I/O layer, for tests that hold a save still).
    pub save_options: SaveOptions,
    /// A wrong-on-purpose change to the store, for tests that prove a check catches it
    /// through the socket ([`fault::ServeFault`]); `None` serves the strategy as it is.
    pub fault: Option<fault::ServeFault>,
    /// With nothing ready, keep polling this long before sleeping (zero, the default:
    /// sleep at once, as Redis does). It spends CPU to spare clients the wake-ups; see
    /// [`event_loop`]'s notes.
    pub busy_poll: Duration,
}

impl ServeOptions {
    /// A server in `dir` on the unix socket `socket`, no save rules, nothing loaded but
    /// `dir/dump.rdb` if it exists.
    pub fn unix(dir: &Path, socket: &Path) -> Self {
        ServeOptions {
            dir: dir.to_path_buf(),
            dbfilename: "dump.rdb".into(),
            input: None,
            unixsocket: Some(socket.to_path_buf()),
            tcp: None,
            save: String::new(),
            save_options: SaveOptions::default(),
            fault: None,
            busy_poll: Duration::ZERO,
        }
    }
}

/// The configuration `CONFIG GET`/`SET` see.
#[derive(Debug)]
struct Config {
    dir: PathBuf,
    dbfilename: String,
    save: String,
}

/// What every connection shares.
struct Shared {
    name: &'static str,
    store: Arc<dyn DynStrategy>,
    auto: Arc<AutoSave<dyn DynStrategy>>,
    config: Mutex<Config>,
    started: Instant,
    started_unix_ms: i64,
    unixsocket: Option<PathBuf>,
    port: u16,
    clients: AtomicUsize,
    next_client_id: AtomicU64,
    commands: AtomicU64,
    stopping: AtomicBool,
    /// Set by SIGINT or SIGTERM ([`Server::shut_down_on_signals`]); the event loop then
    /// shuts down as `SHUTDOWN` would.
    signalled: Arc<AtomicBool>,
    /// [`ServeOptions::busy_poll`].
    busy_poll: Duration,
    shutdown_tx: Mutex<Sender<()>>,
}

/// A running server. Dropping it leaves the server running (its threads are detached);
/// [`Server::wait`] blocks until a client sends `SHUTDOWN`.
pub struct Server {
    shared: Arc<Shared>,
    shutdown_rx: Receiver<()>,
    tcp_addr: Option<std::net::SocketAddr>,
}

impl Server {
    /// Load the store, open the sockets and start serving on background threads.
    ///
    /// # Errors
    /// [`ServeError`] if the dump cannot be loaded or a socket cannot be opened.
    pub fn start(entry: StrategyEntry, opts: ServeOptions) -> Result<Server, ServeError> {
        let rules = parse_rules(&opts.save).map_err(ServeError::Rules)?;
        if !opts.dir.is_dir() {
            return Err(ServeError::NoDir(opts.dir));
        }
        if opts.unixsocket.is_none() && opts.tcp.is_none() {
            return Err(ServeError::NowhereToListen);
        }
        // Like redis-server: tidy the temp files a killed save left, then load the dump.
        let _ = remove_stale_temp_files(&opts.dir);
        let dump = opts.dir.join(&opts.dbfilename);
        let source = opts.input.clone().or_else(|| dump.exists().then(|| dump.clone()));
        let loading = Instant::now();
        // The strategy's own load (the pipelined loader, into its own layout), as `compare
        // --transport inproc` loads it: building a core keyspace first and converting it
        // would hold both at once, and the freed one stays in the allocator's arenas.
        let mut store = match &source {
            Some(path) => (entry.load)(path).map_err(|source| ServeError::Load { path: path.clone(), source })?,
            None => (entry.build)(Default::default()),
        };
        if source.is_some() {
            // Redis's own words (src/server.c, loadDataFromDisk), so one parser reads both logs.
            eprintln!("DB loaded from disk: {:.6} seconds", loading.elapsed().as_secs_f64());
        }
        if let Some(f) = opts.fault {
            store = f.wrap(store);
        }
        let auto =
            Arc::new(AutoSave::new(Arc::clone(&store), dump, rules, Duration::from_secs(5), opts.save_options.clone()));
        auto.spawn_ticker(TICK);

        let listen_err = |addr: String| move |source| ServeError::Listen { addr, source };
        let unix = match &opts.unixsocket {
            Some(path) => {
                // Redis unlinks a stale socket file before binding (anetUnixServer).
                let _ = std::fs::remove_file(path);
                Some(UnixListener::bind(path).map_err(listen_err(path.display().to_string()))?)
            }
            None => None,
        };
        let tcp = match &opts.tcp {
            Some((host, port)) => {
                Some(TcpListener::bind((host.as_str(), *port)).map_err(listen_err(format!("{host}:{port}")))?)
            }
            None => None,
        };
        let tcp_addr = tcp.as_ref().and_then(|l| l.local_addr().ok());
        let (shutdown_tx, shutdown_rx) = channel();
        let shared = Arc::new(Shared {
            name: entry.name,
            store,
            auto,
            config: Mutex::new(Config { dir: opts.dir.clone(), dbfilename: opts.dbfilename.clone(), save: opts.save }),
            started: Instant::now(),
            started_unix_ms: unix_ms_now(),
            unixsocket: opts.unixsocket.clone(),
            port: tcp_addr.map_or(0, |a| a.port()),
            clients: AtomicUsize::new(0),
            next_client_id: AtomicU64::new(1),
            commands: AtomicU64::new(0),
            stopping: AtomicBool::new(false),
            signalled: Arc::new(AtomicBool::new(false)),
            busy_poll: opts.busy_poll,
            shutdown_tx: Mutex::new(shutdown_tx),
        });
        let to_mio = |e: io::Error| ServeError::Listen { addr: "the event loop".into(), source: e };
        let unix = match unix {
            Some(l) => {
                l.set_nonblocking(true).map_err(to_mio)?;
                Some(mio::net::UnixListener::from_std(l))
            }
            None => None,
        };
        let tcp = match tcp {
            Some(l) => {
                l.set_nonblocking(true).map_err(to_mio)?;
                Some(mio::net::TcpListener::from_std(l))
            }
            None => None,
        };
        let for_loop = Arc::clone(&shared);
        thread::Builder::new()
            .name("event-loop".into())
            .stack_size(LOOP_STACK)
            .spawn(move || {
                if let Err(e) = event_loop::run(&for_loop, unix, tcp) {
                    eprintln!("snaplab serve: the event loop stopped: {e}");
                }
            })
            .map_err(to_mio)?;
        Ok(Server { shared, shutdown_rx, tcp_addr })
    }

    /// The TCP address served, if any (useful with port 0).
    pub fn tcp_addr(&self) -> Option<std::net::SocketAddr> {
        self.tcp_addr
    }

    /// The strategy served.
    pub fn strategy(&self) -> &'static str {
        self.shared.name
    }

    /// Shut down on SIGINT or SIGTERM as on `SHUTDOWN` (saving first when save rules are
    /// set), as redis-server does (src/server.c, `sigShutdownHandler`); a second SIGINT
    /// during that save exits at once, with status 1. Process-wide: for the `snaplab
    /// serve` process, not for a server started inside a test.
    ///
    /// # Errors
    /// The handlers could not be installed.
    pub fn shut_down_on_signals(&self) -> io::Result<()> {
        use signal_hook::consts::{SIGINT, SIGTERM};
        // Registered before the flag: it sees the flag as the previous signal left it.
        signal_hook::flag::register_conditional_shutdown(SIGINT, 1, Arc::clone(&self.shared.signalled))?;
        for sig in [SIGINT, SIGTERM] {
            signal_hook::flag::register(sig, Arc::clone(&self.shared.signalled))?;
        }
        Ok(())
    }

    /// Block until a client's `SHUTDOWN` has done its save; the caller then exits.
    pub fn wait(self) {
        let _ = self.shutdown_rx.recv();
        if let Some(path) = &self.shared.unixsocket {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Per-connection state.
struct Session {
    id: u64,
    db: usize,
    name: Option<Bytes>,
    /// Close the connection after the pending replies are written.
    close: bool,
}

/// Redis's arity for each command we serve (src/commands.def): `n` means exactly `n`
/// words with the name, `-n` at least `n`.
fn arity(name: &str) -> Option<i32> {
    Some(match name {
        "get" | "ttl" | "pttl" | "persist" | "type" | "llen" | "smembers" | "scard" | "hgetall" | "hlen" | "zcard"
        | "select" | "echo" | "keys" => 2,
        "set" | "expire" | "pexpire" | "expireat" | "pexpireat" | "lpush" | "rpush" | "sadd" | "srem" | "hdel"
        | "zrem" => -3,
        "del" | "exists" | "lpop" | "scan" | "config" | "debug" | "client" => -2,
        "lrange" => 4,
        "sismember" | "hget" | "zscore" => 3,
        "hset" | "zadd" | "zrange" => -4,
        "dbsize" | "save" | "lastsave" | "time" => 1,
        "flushdb" | "flushall" | "ping" | "quit" | "bgsave" | "info" | "shutdown" | "command" | "hello" => -1,
        _ => return None,
    })
}

const WRONGTYPE: &str = "WRONGTYPE Operation against a key holding the wrong kind of value";
const NOT_INTEGER: &str = "ERR value is not an integer or out of range";
const SYNTAX: &str = "ERR syntax error";

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Arguments the store keeps, copied out of the request.
fn owned(args: &[&[u8]]) -> Vec<Vec<u8>> {
    args.iter().map(|a| a.to_vec()).collect()
}

fn int_arg(b: &[u8]) -> Option<i64> {
    std::str::from_utf8(b).ok()?.parse().ok()
}

fn float_arg(b: &[u8]) -> Option<f64> {
    let s = std::str::from_utf8(b).ok()?;
    match s.to_ascii_lowercase().as_str() {
        "+inf" | "inf" => Some(f64::INFINITY),
        "-inf" => Some(f64::NEG_INFINITY),
        _ => s.parse().ok().filter(|x: &f64| !x.is_nan()),
    }
}

fn command_error(out: &mut Out, e: &CommandError) {
    match e {
        CommandError::WrongType { .. } => out.error(WRONGTYPE),
        CommandError::DbOutOfRange(_) => out.error("ERR DB index is out of range"),
        CommandError::NanScore { .. } => out.error("ERR resulting score is not a number (NaN)"),
        CommandError::NoArguments(name) => {
            out.error(&format!("ERR wrong number of arguments for '{}' command", name.to_lowercase()))
        }
        CommandError::Misconf(why) => out.error(&format!(
            "MISCONF Errors writing the RDB file ({why}). Commands that may modify the data set are disabled, because \
             this instance is configured to report errors during writes if RDB snapshotting fails \
             (stop-writes-on-bgsave-error option)."
        )),
    }
}

/// Apply a write through the save rules and reply what the store replied.
fn write(shared: &Shared, cmd: Command, out: &mut Out) {
    match shared.auto.apply(&cmd) {
        Ok(applied) => reply(out, &applied.reply),
        Err(e) => command_error(out, &e),
    }
}

fn reply(out: &mut Out, r: &snaplab_core::Reply) {
    match r {
        snaplab_core::Reply::Ok => out.ok(),
        snaplab_core::Reply::Int(n) => out.int(*n),
        snaplab_core::Reply::Bulk(b) => out.bulk(b),
        snaplab_core::Reply::Nil => out.nil(),
    }
}

/// Like `write`, but returns the integer reply (DEL, EXPIRE...) or writes the error.
fn write_int(shared: &Shared, cmd: Command, out: &mut Out) -> Option<i64> {
    match shared.auto.apply(&cmd) {
        Ok(Applied { reply: snaplab_core::Reply::Int(n), .. }) => Some(n),
        Ok(_) => Some(0),
        Err(e) => {
            command_error(out, &e);
            None
        }
    }
}

/// Redis's range normalisation for LRANGE and ZRANGE: negative indices count from the end;
/// the result is a half-open range, empty when nothing is selected.
fn range(len: usize, start: i64, stop: i64) -> std::ops::Range<usize> {
    let len = len as i64;
    let start = if start < 0 { (len + start).max(0) } else { start };
    let stop = if stop < 0 { len + stop } else { stop.min(len - 1) };
    if start > stop || start >= len { 0..0 } else { start as usize..stop as usize + 1 }
}

/// A collection read: the entry if it has the wanted type, `Err(())` after writing
/// WRONGTYPE, `Ok(None)` if the key is absent.
fn typed<'a>(entry: &'a Option<Entry>, want: &str, out: &mut Out) -> Result<Option<&'a Value>, ()> {
    match entry {
        None => Ok(None),
        Some(e) if e.value.type_name() == want && !matches!(e.value, Value::Opaque(_)) => Ok(Some(&e.value)),
        Some(_) => {
            out.error(WRONGTYPE);
            Err(())
        }
    }
}

fn sorted_zset(z: &std::collections::HashMap<Bytes, f64>) -> Vec<(&Bytes, f64)> {
    let mut v: Vec<(&Bytes, f64)> = z.iter().map(|(m, s)| (m, *s)).collect();
    v.sort_by(|a, b| a.1.total_cmp(&b.1).then_with(|| a.0.cmp(b.0)));
    v
}

/// The longest command name we serve (`pexpireat`, `sismember`), and then some: a longer
/// name is an unknown command.
const MAX_NAME: usize = 16;

/// `raw` lowercased into `buf`, without allocating: every request pays for this, so it
/// stays off the heap. `""` (an unknown command) if it is too long or not UTF-8.
fn command_name<'b>(raw: &[u8], buf: &'b mut [u8; MAX_NAME]) -> &'b str {
    let Some(dst) = buf.get_mut(..raw.len()) else { return "" };
    dst.copy_from_slice(raw);
    dst.make_ascii_lowercase();
    std::str::from_utf8(dst).unwrap_or("")
}

/// Run one request and append its reply. `args` is the request's (non-empty) argument
/// list, read in place from the connection's input: what the store keeps is copied out.
fn execute(shared: &Shared, session: &mut Session, args: &[&[u8]], out: &mut Out) {
    let mut name_buf = [0u8; MAX_NAME];
    let name = command_name(args[0], &mut name_buf);
    let Some(n) = arity(name) else {
        let mut msg = format!("ERR unknown command '{}', with args beginning with: ", text(args[0]));
        for a in args.iter().skip(1) {
            msg.push_str(&format!("'{}' ", text(a)));
        }
        out.error(&msg);
        return;
    };
    if (n > 0 && args.len() != n as usize) || (n < 0 && args.len() < (-n) as usize) {
        out.error(&format!("ERR wrong number of arguments for '{name}' command"));
        return;
    }
    let db = session.db;
    let key = || args[1].to_vec();
    let get = |k: &[u8]| shared.store.get(db, k);
    match name {
        "ping" => match args.len() {
            1 => out.simple("PONG"),
            2 => out.bulk(args[1]),
            _ => out.error("ERR wrong number of arguments for 'ping' command"),
        },
        "echo" => out.bulk(args[1]),
        "quit" => {
            out.ok();
            session.close = true;
        }
        "select" => match int_arg(args[1]) {
            Some(i) if (0..DB_COUNT as i64).contains(&i) => {
                session.db = i as usize;
                out.ok();
            }
            Some(_) => out.error("ERR DB index is out of range"),
            None => out.error(NOT_INTEGER),
        },
        "hello" => hello(session, args, out),
        "client" => client(session, args, out),
        "command" => match args.get(1).map(|a| text(a).to_ascii_lowercase()).as_deref() {
            Some("count") => out.int(0),
            Some("info") => {
                out.array(args.len() - 2);
                (2..args.len()).for_each(|_| out.nil());
            }
            // Enough for redis-cli and redis-benchmark, which only look at the docs.
            _ => out.array(0),
        },
        "time" => {
            let us = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
            out.bulks([us.as_secs().to_string(), us.subsec_micros().to_string()].iter().map(|s| s.as_bytes()));
        }

        "get" => match typed(&get(args[1]), "string", out) {
            Ok(Some(Value::String(s))) => out.bulk(s),
            Ok(_) => out.nil(),
            Err(()) => {}
        },
        "set" => set(shared, db, args, out),
        "del" => {
            let mut n = 0;
            for k in &args[1..] {
                let Some(d) = write_int(shared, Command::Del { db, key: k.to_vec() }, out) else { return };
                n += d;
            }
            out.int(n);
        }
        "exists" => out.int(args[1..].iter().filter(|k| get(k).is_some()).count() as i64),
        "expire" | "pexpire" | "expireat" | "pexpireat" => expire(shared, db, name, args, out),
        "ttl" | "pttl" => match get(args[1]) {
            None => out.int(-2),
            Some(Entry { expire_at_ms: None, .. }) => out.int(-1),
            Some(Entry { expire_at_ms: Some(at), .. }) => {
                let ms = (at - unix_ms_now()).max(0);
                out.int(if name == "ttl" { (ms + 500) / 1000 } else { ms });
            }
        },
        "persist" => write(shared, Command::Persist { db, key: key() }, out),
        "type" => match get(args[1]) {
            None => out.simple("none"),
            Some(e) => out.simple(e.value.type_name()),
        },

        "lpush" => write(shared, Command::LPush { db, key: key(), elements: owned(&args[2..]) }, out),
        "rpush" => write(shared, Command::RPush { db, key: key(), elements: owned(&args[2..]) }, out),
        "lpop" if args.len() == 2 => write(shared, Command::LPop { db, key: key() }, out),
        "lpop" => out.error("ERR LPOP with a count is not served by snaplab serve"),
        "lrange" => {
            let (Some(start), Some(stop)) = (int_arg(args[2]), int_arg(args[3])) else {
                return out.error(NOT_INTEGER);
            };
            match typed(&get(args[1]), "list", out) {
                Ok(Some(Value::List(l))) => out.bulks(l.range(range(l.len(), start, stop)).map(Vec::as_slice)),
                Ok(_) => out.array(0),
                Err(()) => {}
            }
        }
        "llen" => match typed(&get(args[1]), "list", out) {
            Ok(Some(v)) => out.int(v.len() as i64),
            Ok(None) => out.int(0),
            Err(()) => {}
        },

        "sadd" => write(shared, Command::SAdd { db, key: key(), members: owned(&args[2..]) }, out),
        "srem" => write(shared, Command::SRem { db, key: key(), members: owned(&args[2..]) }, out),
        "smembers" => match typed(&get(args[1]), "set", out) {
            Ok(Some(Value::Set(s))) => out.bulks(s.iter().map(Vec::as_slice)),
            Ok(_) => out.array(0),
            Err(()) => {}
        },
        "scard" => match typed(&get(args[1]), "set", out) {
            Ok(Some(v)) => out.int(v.len() as i64),
            Ok(None) => out.int(0),
            Err(()) => {}
        },
        "sismember" => match typed(&get(args[1]), "set", out) {
            Ok(Some(Value::Set(s))) => out.int(i64::from(s.contains(args[2]))),
            Ok(_) => out.int(0),
            Err(()) => {}
        },

        "hset" => {
            if !args.len().is_multiple_of(2) {
                return out.error("ERR wrong number of arguments for 'hset' command");
            }
            let pairs = args[2..].chunks(2).map(|p| (p[0].to_vec(), p[1].to_vec())).collect();
            write(shared, Command::HSet { db, key: key(), pairs }, out)
        }
        "hdel" => write(shared, Command::HDel { db, key: key(), fields: owned(&args[2..]) }, out),
        "hget" => match typed(&get(args[1]), "hash", out) {
            Ok(Some(Value::Hash(h))) => match h.get(args[2]) {
                Some(v) => out.bulk(v),
                None => out.nil(),
            },
            Ok(_) => out.nil(),
            Err(()) => {}
        },
        "hgetall" => match typed(&get(args[1]), "hash", out) {
            Ok(Some(Value::Hash(h))) => {
                out.array(h.len() * 2);
                for (f, v) in h.iter() {
                    out.bulk(f);
                    out.bulk(v);
                }
            }
            Ok(_) => out.array(0),
            Err(()) => {}
        },
        "hlen" => match typed(&get(args[1]), "hash", out) {
            Ok(Some(v)) => out.int(v.len() as i64),
            Ok(None) => out.int(0),
            Err(()) => {}
        },

        "zadd" => {
            if !args.len().is_multiple_of(2) {
                // Flags (NX, XX, GT, LT, CH, INCR) are not in the model's ZADD.
                return out.error(SYNTAX);
            }
            let mut pairs = Vec::with_capacity((args.len() - 2) / 2);
            for p in args[2..].chunks(2) {
                let Some(score) = float_arg(p[0]) else { return out.error("ERR value is not a valid float") };
                pairs.push((score, p[1].to_vec()));
            }
            write(shared, Command::ZAdd { db, key: key(), pairs }, out)
        }
        "zrem" => write(shared, Command::ZRem { db, key: key(), members: owned(&args[2..]) }, out),
        "zrange" => {
            let (Some(start), Some(stop)) = (int_arg(args[2]), int_arg(args[3])) else {
                return out.error(NOT_INTEGER);
            };
            let scores = match args.get(4).map(|a| text(a).to_ascii_lowercase()) {
                None => false,
                Some(w) if w == "withscores" && args.len() == 5 => true,
                Some(_) => return out.error(SYNTAX),
            };
            match typed(&get(args[1]), "zset", out) {
                Ok(Some(Value::ZSet(z))) => {
                    let sorted = sorted_zset(z);
                    let picked = &sorted[range(sorted.len(), start, stop)];
                    out.array(picked.len() * if scores { 2 } else { 1 });
                    for (m, s) in picked {
                        out.bulk(m);
                        if scores {
                            out.bulk(digest::format_g17(*s).as_bytes());
                        }
                    }
                }
                Ok(_) => out.array(0),
                Err(()) => {}
            }
        }
        "zscore" => match typed(&get(args[1]), "zset", out) {
            Ok(Some(Value::ZSet(z))) => match z.get(args[2]) {
                Some(s) => out.bulk(digest::format_g17(*s).as_bytes()),
                None => out.nil(),
            },
            Ok(_) => out.nil(),
            Err(()) => {}
        },
        "zcard" => match typed(&get(args[1]), "zset", out) {
            Ok(Some(v)) => out.int(v.len() as i64),
            Ok(None) => out.int(0),
            Err(()) => {}
        },

        "dbsize" => out.int(shared.store.to_keyspace().db(db).len() as i64),
        "flushdb" | "flushall" => {
            if args.len() > 2
                || args.get(1).is_some_and(|a| !matches!(text(a).to_ascii_lowercase().as_str(), "sync" | "async"))
            {
                return out.error(SYNTAX);
            }
            let cmd = if name == "flushdb" { Command::FlushDb { db } } else { Command::FlushAll };
            write(shared, cmd, out)
        }
        "scan" => scan(shared, db, args, out),
        "keys" => {
            let ks = shared.store.to_keyspace();
            let mut keys: Vec<&Bytes> = ks.db(db).keys().filter(|k| glob::matches(args[1], k)).collect();
            keys.sort();
            out.bulks(keys.into_iter().map(Vec::as_slice));
        }

        "save" => match shared.auto.save(Instant::now()) {
            Ok(_) => out.ok(),
            Err(SaveError::InProgress) => out.error("ERR Background save already in progress"),
            Err(e) => out.error(&format!("ERR {e}")),
        },
        "bgsave" => {
            let schedule = match args.get(1).map(|a| text(a).to_ascii_lowercase()) {
                None => false,
                Some(s) if s == "schedule" && args.len() == 2 => true,
                Some(_) => return out.error(SYNTAX),
            };
            let now = Instant::now();
            match if schedule { shared.auto.schedule(now) } else { shared.auto.bgsave(now).map(|()| true) } {
                Ok(true) => out.simple("Background saving started"),
                Ok(false) => out.simple("Background saving scheduled"),
                Err(SaveError::InProgress) => out.error("ERR Background save already in progress"),
                Err(e) => out.error(&format!("ERR {e}")),
            }
        }
        "lastsave" => out.int(shared.store.lastsave().unwrap_or(shared.started_unix_ms) / 1000),
        "info" => {
            let sections: Vec<String> = args[1..].iter().map(|a| text(a).to_ascii_lowercase()).collect();
            out.bulk(info(shared, &sections).as_bytes());
        }
        "config" => config(shared, args, out),
        "debug" => match text(args[1]).to_ascii_lowercase().as_str() {
            "digest" if args.len() == 2 => match digest::dataset_digest(&shared.store.to_keyspace()) {
                Ok(d) => out.simple(&d),
                Err(e) => out.error(&format!("ERR {e}")),
            },
            _ => out.error("ERR DEBUG subcommands other than DIGEST are not served by snaplab serve"),
        },
        "shutdown" => shutdown(shared, session, args, out),
        _ => unreachable!("every command with an arity is matched"),
    }
}

fn set(shared: &Shared, db: usize, args: &[&[u8]], out: &mut Out) {
    let (mut nx, mut xx, mut get_old, mut keepttl) = (false, false, false, false);
    let mut expire_at_ms: Option<i64> = None;
    let mut i = 3;
    while i < args.len() {
        let opt = text(args[i]).to_ascii_uppercase();
        match opt.as_str() {
            "NX" if !xx => nx = true,
            "XX" if !nx => xx = true,
            "GET" => get_old = true,
            "KEEPTTL" if expire_at_ms.is_none() => keepttl = true,
            "EX" | "PX" | "EXAT" | "PXAT" if !keepttl && expire_at_ms.is_none() && i + 1 < args.len() => {
                i += 1;
                let Some(n) = int_arg(args[i]) else { return out.error(NOT_INTEGER) };
                let now = unix_ms_now();
                let at = match opt.as_str() {
                    "EX" => n.checked_mul(1000).and_then(|ms| ms.checked_add(now)),
                    "PX" => n.checked_add(now),
                    "EXAT" => n.checked_mul(1000),
                    _ => Some(n),
                };
                match at {
                    Some(at) if n > 0 => expire_at_ms = Some(at),
                    _ => return out.error("ERR invalid expire time in 'set' command"),
                }
            }
            _ => return out.error(SYNTAX),
        }
        i += 1;
    }
    // Production note: NX, XX, GET and KEEPTTL read the key and then write it, two steps
    // another connection can come between; Redis runs the whole command at once. The
    // model's SET has no condition to make them one write.
    let old = if nx || xx || get_old || keepttl { shared.store.get(db, args[1]) } else { None };
    if get_old && old.as_ref().is_some_and(|e| !matches!(e.value, Value::String(_))) {
        return out.error(WRONGTYPE);
    }
    let reply_old = |out: &mut Out| match &old {
        Some(Entry { value: Value::String(s), .. }) => out.bulk(s),
        _ => out.nil(),
    };
    if (nx && old.is_some()) || (xx && old.is_none()) {
        return if get_old { reply_old(out) } else { out.nil() };
    }
    if keepttl {
        expire_at_ms = old.as_ref().and_then(|e| e.expire_at_ms);
    }
    let cmd = Command::Set { db, key: args[1].to_vec(), value: args[2].to_vec(), expire_at_ms };
    match shared.auto.apply(&cmd) {
        Ok(_) if get_old => reply_old(out),
        Ok(_) => out.ok(),
        Err(e) => command_error(out, &e),
    }
}

fn expire(shared: &Shared, db: usize, name: &str, args: &[&[u8]], out: &mut Out) {
    let Some(n) = int_arg(args[2]) else { return out.error(NOT_INTEGER) };
    let now = unix_ms_now();
    let at = match name {
        "expire" => n.checked_mul(1000).and_then(|ms| ms.checked_add(now)),
        "pexpire" => n.checked_add(now),
        "expireat" => n.checked_mul(1000),
        _ => Some(n),
    };
    let Some(at) = at else { return out.error(&format!("ERR invalid expire time in '{name}' command")) };
    let flag = match args.get(3).map(|a| text(a).to_ascii_uppercase()) {
        None => None,
        Some(f) if args.len() == 4 && matches!(f.as_str(), "NX" | "XX" | "GT" | "LT") => Some(f),
        Some(f) => return out.error(&format!("ERR Unsupported option {f}")),
    };
    if let Some(flag) = flag {
        // Production note: read, then write (see SET's NX).
        let current = shared.store.get(db, args[1]).map(|e| e.expire_at_ms);
        let allowed = match (flag.as_str(), current) {
            (_, None) => false,
            ("NX", Some(t)) => t.is_none(),
            ("XX", Some(t)) => t.is_some(),
            // A key without expiry has an infinite TTL (Redis's GT/LT semantics).
            ("GT", Some(t)) => t.is_some_and(|t| at > t),
            (_, Some(t)) => t.is_none_or(|t| at < t),
        };
        if !allowed {
            return out.int(0);
        }
    }
    write(shared, Command::PExpireAt { db, key: args[1].to_vec(), at_ms: at }, out)
}

fn hello(session: &mut Session, args: &[&[u8]], out: &mut Out) {
    if let Some(v) = args.get(1) {
        match int_arg(v) {
            Some(2) => {}
            Some(_) => return out.error("NOPROTO unsupported protocol version"),
            None => return out.error("ERR Protocol version is not an integer or out of range"),
        }
    }
    let mut i = 2;
    while i < args.len() {
        match text(args[i]).to_ascii_uppercase().as_str() {
            "SETNAME" if i + 1 < args.len() => {
                session.name = Some(args[i + 1].to_vec());
                i += 2;
            }
            "AUTH" if i + 2 < args.len() => i += 3,
            _ => return out.error(SYNTAX),
        }
    }
    out.array(14);
    for (k, v) in [("server", "redis"), ("version", REDIS_VERSION)] {
        out.bulk(k.as_bytes());
        out.bulk(v.as_bytes());
    }
    out.bulk(b"proto");
    out.int(2);
    out.bulk(b"id");
    out.int(session.id as i64);
    for (k, v) in [("mode", "standalone"), ("role", "master")] {
        out.bulk(k.as_bytes());
        out.bulk(v.as_bytes());
    }
    out.bulk(b"modules");
    out.array(0);
}

fn client(session: &mut Session, args: &[&[u8]], out: &mut Out) {
    match text(args[1]).to_ascii_uppercase().as_str() {
        "SETNAME" if args.len() == 3 => {
            session.name = Some(args[2].to_vec()).filter(|n| !n.is_empty());
            out.ok();
        }
        "GETNAME" => match &session.name {
            Some(n) => out.bulk(n),
            None => out.nil(),
        },
        "ID" => out.int(session.id as i64),
        "SETINFO" => out.ok(),
        other => out.error(&format!("ERR unknown subcommand '{other}'. Try CLIENT HELP.")),
    }
}

/// The configuration parameters `CONFIG GET` knows, with their values.
fn config_params(shared: &Shared) -> Vec<(&'static str, String)> {
    let c = shared.config.lock().unwrap_or_else(|p| p.into_inner());
    vec![
        ("save", c.save.clone()),
        ("dir", c.dir.display().to_string()),
        ("dbfilename", c.dbfilename.clone()),
        ("appendonly", "no".into()),
        ("port", shared.port.to_string()),
        ("unixsocket", shared.unixsocket.as_ref().map(|p| p.display().to_string()).unwrap_or_default()),
        ("databases", DB_COUNT.to_string()),
        ("proto-max-bulk-len", resp::PROTO_MAX_BULK_LEN.to_string()),
    ]
}

fn config(shared: &Shared, args: &[&[u8]], out: &mut Out) {
    match text(args[1]).to_ascii_uppercase().as_str() {
        "GET" if args.len() >= 3 => {
            let params = config_params(shared);
            let hits: Vec<&(&str, String)> = params
                .iter()
                .filter(|(n, _)| args[2..].iter().any(|p| glob::matches_nocase(p, n.as_bytes())))
                .collect();
            out.array(hits.len() * 2);
            for (n, v) in hits {
                out.bulk(n.as_bytes());
                out.bulk(v.as_bytes());
            }
        }
        "SET" if args.len() >= 4 && args.len().is_multiple_of(2) => {
            for p in args[2..].chunks(2) {
                if let Err(msg) = config_set(shared, &text(p[0]).to_ascii_lowercase(), &text(p[1])) {
                    return out.error(&format!(
                        "ERR CONFIG SET failed (possibly related to argument '{}') - {msg}",
                        text(p[0])
                    ));
                }
            }
            out.ok();
        }
        "RESETSTAT" => out.ok(),
        "GET" | "SET" => {
            out.error(&format!("ERR wrong number of arguments for 'config|{}' command", text(args[1]).to_lowercase()))
        }
        other => out.error(&format!("ERR unknown subcommand '{other}'. Try CONFIG HELP.")),
    }
}

fn config_set(shared: &Shared, param: &str, value: &str) -> Result<(), String> {
    let mut c = shared.config.lock().unwrap_or_else(|p| p.into_inner());
    match param {
        "save" => {
            let rules: Vec<SaveRule> = parse_rules(value)?;
            shared.auto.set_rules(rules);
            c.save = value.split_whitespace().collect::<Vec<_>>().join(" ");
        }
        "dir" => {
            let dir = PathBuf::from(value);
            if !dir.is_dir() {
                return Err(format!("{value} is not a directory"));
            }
            shared.auto.set_dest(dir.join(&c.dbfilename));
            c.dir = dir;
        }
        "dbfilename" => {
            if value.is_empty() || value.contains('/') {
                return Err("dbfilename can't be a path, just a filename".into());
            }
            shared.auto.set_dest(c.dir.join(value));
            c.dbfilename = value.to_string();
        }
        "appendonly" if value.eq_ignore_ascii_case("no") => {}
        "appendonly" => return Err("snaplab serve writes no append-only file".into()),
        _ => return Err("Unknown option or number of arguments".into()),
    }
    Ok(())
}

fn scan(shared: &Shared, db: usize, args: &[&[u8]], out: &mut Out) {
    let Some(cursor) = std::str::from_utf8(args[1]).ok().and_then(|s| s.parse::<usize>().ok()) else {
        return out.error("ERR invalid cursor");
    };
    let (mut pattern, mut count, mut kind): (Option<&[u8]>, usize, Option<String>) = (None, 10, None);
    let mut i = 2;
    while i < args.len() {
        let opt = text(args[i]).to_ascii_uppercase();
        let Some(v) = args.get(i + 1) else { return out.error(SYNTAX) };
        match opt.as_str() {
            "MATCH" => pattern = Some(v),
            "COUNT" => match int_arg(v) {
                Some(c) if c >= 1 => count = c as usize,
                Some(_) => return out.error(SYNTAX),
                None => return out.error(NOT_INTEGER),
            },
            "TYPE" => kind = Some(text(v).to_ascii_lowercase()),
            _ => return out.error(SYNTAX),
        }
        i += 2;
    }
    // Production note: the cursor is a position in the sorted key list, and every call
    // copies the database to sort it, O(n log n) per call. Redis's cursor walks its hash
    // table's buckets in reverse-bit order so that a rehash loses no key (src/dict.c
    // `dictScan`), in O(count) per call; the strategies expose no cursor to do the same.
    let ks = shared.store.to_keyspace();
    let mut keys: Vec<(&Bytes, &Entry)> = ks.db(db).iter().collect();
    keys.sort_by(|a, b| a.0.cmp(b.0));
    let end = cursor.saturating_add(count).min(keys.len());
    let batch: Vec<&[u8]> = keys
        .get(cursor.min(keys.len())..end)
        .unwrap_or_default()
        .iter()
        .filter(|(k, e)| {
            pattern.is_none_or(|p| glob::matches(p, k)) && kind.as_deref().is_none_or(|t| e.value.type_name() == t)
        })
        .map(|(k, _)| k.as_slice())
        .collect();
    let next = if end >= keys.len() { 0 } else { end };
    out.array(2);
    out.bulk(next.to_string().as_bytes());
    out.bulks(batch.into_iter());
}

fn info(shared: &Shared, sections: &[String]) -> String {
    let all = sections.is_empty() || sections.iter().any(|s| matches!(s.as_str(), "all" | "default" | "everything"));
    let want = |s: &str| all || sections.iter().any(|x| x == s);
    let mut t = String::new();
    let now = Instant::now();
    if want("server") {
        t.push_str("# Server\r\n");
        t.push_str(&format!("redis_version:{REDIS_VERSION}\r\n"));
        t.push_str("redis_mode:standalone\r\n");
        t.push_str(&format!("snaplab_strategy:{}\r\n", shared.name));
        t.push_str(&format!("process_id:{}\r\n", std::process::id()));
        t.push_str(&format!("tcp_port:{}\r\n", shared.port));
        t.push_str(&format!("uptime_in_seconds:{}\r\n", shared.started.elapsed().as_secs()));
        t.push_str("\r\n");
    }
    if want("clients") {
        t.push_str("# Clients\r\n");
        t.push_str(&format!("connected_clients:{}\r\n\r\n", shared.clients.load(Ordering::Relaxed)));
    }
    if want("memory") {
        let rss = snaplab_core::memory::resident_bytes(None).unwrap_or(0);
        t.push_str("# Memory\r\n");
        // The process's resident size: the store, its indexes, and the server's own threads
        // and buffers; Redis's used_memory is what its allocator handed out.
        t.push_str(&format!("used_memory:{rss}\r\nused_memory_rss:{rss}\r\n\r\n"));
    }
    if want("stats") {
        t.push_str("# Stats\r\n");
        t.push_str(&format!("total_commands_processed:{}\r\n\r\n", shared.commands.load(Ordering::Relaxed)));
    }
    if want("cpu") {
        // Seconds of CPU, as Redis's INFO cpu (getrusage): this process, and its children
        // once reaped (a forked save's child).
        use nix::sys::resource::{UsageWho, getrusage};
        let secs = |t: nix::sys::time::TimeVal| t.tv_sec() as f64 + t.tv_usec() as f64 / 1e6;
        t.push_str("# CPU\r\n");
        for (who, suffix) in [(UsageWho::RUSAGE_SELF, ""), (UsageWho::RUSAGE_CHILDREN, "_children")] {
            if let Ok(r) = getrusage(who) {
                t.push_str(&format!("used_cpu_sys{suffix}:{:.6}\r\n", secs(r.system_time())));
                t.push_str(&format!("used_cpu_user{suffix}:{:.6}\r\n", secs(r.user_time())));
            }
        }
        t.push_str("\r\n");
    }
    if want("persistence") {
        let i = shared.auto.info(now);
        t.push_str("# Persistence\r\n");
        t.push_str("loading:0\r\n");
        t.push_str(&format!("rdb_changes_since_last_save:{}\r\n", i.dirty));
        t.push_str(&format!("rdb_bgsave_in_progress:{}\r\n", u8::from(i.in_progress)));
        t.push_str(&format!(
            "rdb_last_save_time:{}\r\n",
            shared.store.lastsave().unwrap_or(shared.started_unix_ms) / 1000
        ));
        let status = if i.last_failure.is_some() { "err" } else { "ok" };
        t.push_str(&format!("rdb_last_bgsave_status:{status}\r\n"));
        t.push_str(&format!("rdb_last_bgsave_time_sec:{}\r\n", i.last_bgsave_time_sec));
        t.push_str(&format!("rdb_current_bgsave_time_sec:{}\r\n", i.current_bgsave_time_sec));
        t.push_str(&format!("rdb_saves_scheduled:{}\r\n", u8::from(i.scheduled)));
        t.push_str("aof_enabled:0\r\n");
        let guarantee = match shared.store.guarantee() {
            snaplab_core::Guarantee::PointInTime => "point_in_time",
            snaplab_core::Guarantee::AtLogClose => "at_log_close",
        };
        t.push_str(&format!("snaplab_guarantee:{guarantee}\r\n"));
        if let Some(close) = shared.store.last_log_close() {
            // On CLOCK_MONOTONIC, which every process on the machine shares, so a client can
            // set the close beside its own clock (the comparison's verification window).
            for (name, at) in [("requested", close.requested), ("acknowledged", close.acknowledged)] {
                if let Some(ns) = clock::monotonic_ns_of(at) {
                    t.push_str(&format!("snaplab_last_log_close_{name}_monotonic_ns:{ns}\r\n"));
                }
            }
        }
        if let Some(why) = &i.last_failure {
            t.push_str(&format!("snaplab_last_save_error:{}\r\n", why.replace(['\r', '\n'], " ")));
        }
        if let Some(r) = &i.last_report {
            // The strategy's own figures for its last successful save.
            t.push_str(&format!("snaplab_last_save_keys:{}\r\n", r.keys));
            t.push_str(&format!("snaplab_last_save_bytes:{}\r\n", r.bytes));
            t.push_str(&format!("snaplab_last_save_time_to_cut_us:{}\r\n", r.time_to_cut.as_micros()));
            t.push_str(&format!("snaplab_last_save_duration_us:{}\r\n", r.duration.as_micros()));
            for (name, v) in &r.figures {
                t.push_str(&format!("snaplab_{name}:{v}\r\n"));
            }
        }
        t.push_str("\r\n");
    }
    if want("keyspace") {
        t.push_str("# Keyspace\r\n");
        let ks = shared.store.to_keyspace();
        for db in 0..DB_COUNT {
            let d = ks.db(db);
            if !d.is_empty() {
                let expires = d.values().filter(|e| e.expire_at_ms.is_some()).count();
                t.push_str(&format!("db{db}:keys={},expires={expires},avg_ttl=0\r\n", d.len()));
            }
        }
        t.push_str("\r\n");
    }
    t
}

fn shutdown(shared: &Shared, session: &mut Session, args: &[&[u8]], out: &mut Out) {
    let mut save = None;
    for a in &args[1..] {
        match text(a).to_ascii_uppercase().as_str() {
            "SAVE" => save = Some(true),
            "NOSAVE" => save = Some(false),
            "NOW" | "FORCE" => {}
            _ => return out.error(SYNTAX),
        }
    }
    if let Err(e) = shut_down(shared, save) {
        return out.error(&format!("ERR Errors trying to SHUTDOWN. Check logs. ({e})"));
    }
    // Redis closes the connection without a reply.
    session.close = true;
}

/// Save if asked to (`Some(true)`), or by default when save rules are set, as Redis does;
/// then stop serving and let [`Server::wait`] return. Runs on the event loop's thread, so
/// no write can land between the save and the stop.
///
/// # Errors
/// The save failed: the server keeps running, as Redis does, with nothing lost.
fn shut_down(shared: &Shared, save: Option<bool>) -> Result<(), SaveError> {
    let save = save.unwrap_or_else(|| !shared.auto.rules().is_empty());
    let now = Instant::now();
    shared.auto.finish(now);
    if save {
        shared.auto.save(now)?;
    }
    shared.stopping.store(true, Ordering::Release);
    let _ = shared.shutdown_tx.lock().unwrap_or_else(|p| p.into_inner()).send(());
    Ok(())
}

/// What the event loop does when SIGINT or SIGTERM arrived: shut down as `SHUTDOWN` with
/// no argument does, or, when that save fails, say so and keep serving (Redis: "Error
/// trying to save the DB, can't exit").
fn on_signal(shared: &Shared) {
    if !shared.signalled.swap(false, Ordering::AcqRel) {
        return;
    }
    eprintln!("snaplab serve: signal received, shutting down");
    if let Err(e) = shut_down(shared, None) {
        eprintln!("snaplab serve: the save before exiting failed, still serving: {e}");
    }
}

/// Serve until `SHUTDOWN`: what `snaplab serve` runs.
///
/// # Errors
/// [`ServeError`] if the server cannot start.
pub fn run(entry: StrategyEntry, opts: ServeOptions) -> Result<(), ServeError> {
    let where_ = match (&opts.unixsocket, &opts.tcp) {
        (Some(p), Some((h, port))) => format!("{} and {h}:{port}", p.display()),
        (Some(p), None) => p.display().to_string(),
        (None, Some((h, port))) => format!("{h}:{port}"),
        (None, None) => String::new(),
    };
    let server = Server::start(entry, opts)?;
    if let Err(e) = server.shut_down_on_signals() {
        eprintln!("snaplab serve: no handler for SIGINT/SIGTERM ({e}): they will exit without saving");
    }
    eprintln!("snaplab serve: strategy {} ready to accept connections on {where_}", server.strategy());
    server.wait();
    eprintln!("snaplab serve: shut down");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Redis's LRANGE/ZRANGE index rules.
    #[test]
    fn ranges_like_redis() {
        assert_eq!(range(5, 0, -1), 0..5);
        assert_eq!(range(5, -2, -1), 3..5);
        assert_eq!(range(5, 3, 1), 0..0);
        assert_eq!(range(5, 0, 100), 0..5);
        assert_eq!(range(5, -100, 1), 0..2);
        assert_eq!(range(5, 5, 10), 0..0);
        assert_eq!(range(0, 0, -1), 0..0);
    }
}
