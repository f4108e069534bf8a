//! A throwaway `redis-server`: the oracle that proves our dumps are real RDB files.
//!
//! [`RedisServer::start`] runs the `redis-server` found on `PATH` in a fresh temporary
//! directory it owns, listening only on a unix socket (`--port 0`), with persistence
//! switched off (`--save ""`, `--appendonly no`) so it never writes unless asked, and
//! with `DEBUG` enabled so [`RedisServer::digest`] can ask for `DEBUG DIGEST`. It can
//! start from a dump ([`RedisServer::start_with_dump`]), which it copies into its
//! directory first, so the caller's file is never touched. Dropping the handle shuts the
//! server down (`SHUTDOWN NOSAVE`, then a kill if it does not go) and reaps it, and the
//! directory goes with it, so a panicking test leaves no server behind.
//!
//! With [`ServerOptions::serve`] set, the same handle runs `snaplab serve --strategy NAME`
//! instead, in the same kind of directory and on the same kind of socket, so a caller (the
//! comparison's RESP transport) drives either server with the same code.
//!
//! [`check_rdb`] runs `redis-check-rdb`, Redis's own offline validator.
//!
//! ```no_run
//! use snaplab_harness::redis_server::{RedisServer, ServerOptions};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let server = RedisServer::start(&ServerOptions::default())?;
//! let mut con = server.connection()?;
//! redis::cmd("SET").arg("k").arg("v").exec(&mut con)?;
//! let dump = server.save()?;
//! println!("{} holds digest {}", dump.display(), server.digest()?);
//! # Ok(())
//! # }
//! ```
//!
//! Production note: a test process killed with SIGKILL cannot run `Drop`, so its server
//! outlives it; a production supervisor would also set a parent-death signal.

use std::collections::{BTreeMap, HashMap};
use std::ffi::OsString;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use redis::{ConnectionAddr, IntoConnectionInfo, Value};

/// Name of the socket file inside the server's directory.
const SOCKET: &str = "redis.sock";
/// Name of the log file (`--logfile`) inside the server's directory.
const LOG: &str = "redis.log";
/// Where the server's own stdout and stderr go (messages printed before the log file opens).
const CONSOLE: &str = "redis.console";
/// How often the bounded polls (startup, BGSAVE, shutdown) look again.
const POLL: Duration = Duration::from_millis(5);
/// How long `Drop` waits for `SHUTDOWN NOSAVE` to end the process before killing it.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
/// Lines of log quoted in errors.
const LOG_LINES: usize = 20;

/// What went wrong while running `redis-server`.
#[derive(Debug, thiserror::Error)]
pub enum RedisServerError {
    /// No `redis-server` executable on `PATH`.
    #[error("redis-server not found on PATH")]
    NotFound,
    /// Creating the server's temporary directory or copying the dump into it failed.
    #[error("cannot prepare the server directory ({what}): {source}")]
    Setup {
        /// What was being done, with the path.
        what: String,
        /// The I/O error.
        source: io::Error,
    },
    /// The process could not be spawned.
    #[error("cannot spawn {binary}: {source}")]
    Spawn {
        /// The executable.
        binary: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
    /// The server exited before it answered `PING`, e.g. because it refused the dump.
    #[error("redis-server exited during startup ({status}); its log ends with:\n{log_tail}")]
    ExitedEarly {
        /// How it exited.
        status: ExitStatus,
        /// The last lines of its log and console output.
        log_tail: String,
    },
    /// The server did not answer `PING` with `PONG` in time (it was killed).
    #[error("redis-server did not answer PING within {timeout:?} (last: {last}); its log ends with:\n{log_tail}")]
    StartTimeout {
        /// The bound that was exceeded.
        timeout: Duration,
        /// The last connection error or reply seen.
        last: String,
        /// The last lines of its log and console output.
        log_tail: String,
    },
    /// A command failed (connection error or an error reply).
    #[error("{command} failed: {source}")]
    Command {
        /// The command, e.g. `DEBUG DIGEST`.
        command: String,
        /// The client's error.
        source: redis::RedisError,
    },
    /// A command answered something this driver does not understand.
    #[error("unexpected reply to {command}: {detail}")]
    Reply {
        /// The command.
        command: String,
        /// What was wrong with the reply.
        detail: String,
    },
    /// `BGSAVE` did not finish within the bound.
    #[error("BGSAVE still in progress after {0:?}")]
    BgsaveTimeout(Duration),
    /// `BGSAVE` finished but Redis reports it failed.
    #[error("BGSAVE failed (rdb_last_bgsave_status:{status}); the log ends with:\n{log_tail}")]
    BgsaveFailed {
        /// Redis's `rdb_last_bgsave_status`.
        status: String,
        /// The last lines of its log.
        log_tail: String,
    },
}

/// Shorthand for results of this module.
pub type Result<T, E = RedisServerError> = std::result::Result<T, E>;

/// How to start a server. `ServerOptions::default()` is an empty server with a 30 s
/// startup bound and a 60 s command timeout.
#[derive(Clone, Debug)]
pub struct ServerOptions {
    /// A dump to copy into the server's directory as its `dbfilename`, so it loads it at
    /// startup. `None`: start empty.
    pub dump: Option<PathBuf>,
    /// The `--dbfilename` (also where [`RedisServer::save`] writes), default `dump.rdb`.
    pub dbfilename: String,
    /// Extra command-line arguments, appended after ours (later ones win in Redis), e.g.
    /// `["--hash-max-listpack-entries", "0"]`.
    pub extra_args: Vec<OsString>,
    /// How long to wait for the first `PONG` (loading a large dump counts).
    pub startup_timeout: Duration,
    /// Read and write timeout of every connection, so a hung server fails a test
    /// instead of hanging it.
    pub command_timeout: Duration,
    /// The `redis-server` executable; `None`: the one on `PATH`. With `serve` set, the
    /// `snaplab` executable instead; `None`: this program ([`std::env::current_exe`]).
    pub binary: Option<PathBuf>,
    /// Run `snaplab serve` over this strategy instead of `redis-server`: it loads `dump`
    /// in place (`--input`, no copy) and gets `--dir`, `--dbfilename`, `--unixsocket` and
    /// `--port 0`, then `extra_args`; none of Redis's own options.
    pub serve: Option<String>,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            dump: None,
            dbfilename: "dump.rdb".to_owned(),
            extra_args: Vec::new(),
            startup_timeout: Duration::from_secs(30),
            command_timeout: Duration::from_secs(60),
            binary: None,
            serve: None,
        }
    }
}

/// What `redis-server` holds under one key, as far as the oracle can tell.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyFingerprint {
    /// `TYPE key`: `string`, `list`, `set`, `hash`, `zset`, `stream`.
    pub kind: String,
    /// `DEBUG DIGEST-VALUE key`: a hex digest of the value alone (encoding-independent).
    pub digest: String,
    /// `PEXPIRETIME key` (unix ms), `None` when the key does not expire.
    pub expire_at_ms: Option<i64>,
}

/// A running `redis-server` in a temporary directory of its own. Dropping it shuts the
/// server down and removes the directory.
#[derive(Debug)]
pub struct RedisServer {
    child: Child,
    client: redis::Client,
    command_timeout: Duration,
    dbfilename: String,
    // Declared last so it is removed after `Drop::drop` has stopped the process.
    dir: tempfile::TempDir,
}

/// Find an executable called `name` on `PATH`.
fn find_on_path(name: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|dir| dir.join(name)).find(|candidate| {
        std::fs::metadata(candidate).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    })
}

/// The `redis-server` on `PATH`, or `None` when there is none.
pub fn find_redis_server() -> Option<PathBuf> {
    find_on_path("redis-server")
}

/// The `redis-check-rdb` on `PATH`, or `None` when there is none.
pub fn find_redis_check_rdb() -> Option<PathBuf> {
    find_on_path("redis-check-rdb")
}

/// Run `redis-check-rdb <path>`, Redis's offline validator (Redis src/redis-check-rdb.c):
/// it parses every record and verifies the CRC-64 trailer.
///
/// # Errors
/// A message when the checker is not on `PATH`, cannot be run, or exits non-zero (then
/// the message holds its output, which names the offset and what it expected).
pub fn check_rdb(path: &Path) -> Result<String, String> {
    let checker = find_redis_check_rdb().ok_or_else(|| "redis-check-rdb not found on PATH".to_owned())?;
    let out = Command::new(&checker)
        .arg(path)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {}: {e}", checker.display()))?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if out.status.success() {
        Ok(stdout)
    } else {
        Err(format!(
            "redis-check-rdb {} exited with {}:\n{stdout}{}",
            path.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// Parse an `INFO` reply: `key:value` lines; `# Section` headers and blank lines skipped.
pub fn parse_info(text: &str) -> HashMap<String, String> {
    text.lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect()
}

/// Parse the `INFO keyspace` section into database number -> key count. Lines look like
/// `db0:keys=13,expires=0,avg_ttl=0`; a database without keys has no line.
///
/// # Errors
/// The offending line when a `dbN` line has no parsable `keys=` field.
pub fn parse_keyspace(info: &HashMap<String, String>) -> Result<BTreeMap<u32, u64>, String> {
    let mut out = BTreeMap::new();
    for (name, fields) in info {
        let Some(db) = name.strip_prefix("db").and_then(|n| n.parse::<u32>().ok()) else { continue };
        let keys = fields
            .split(',')
            .find_map(|f| f.strip_prefix("keys="))
            .and_then(|n| n.parse::<u64>().ok())
            .ok_or_else(|| format!("no keys= in INFO keyspace line {name}:{fields}"))?;
        out.insert(db, keys);
    }
    Ok(out)
}

/// The last `lines` lines of the file at `path` ("" when it cannot be read).
fn file_tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read(path).map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// A reply as text for error messages.
fn describe(v: &Value) -> String {
    format!("{v:?}")
}

impl RedisServer {
    /// The `redis-server` on `PATH`, or `None` when there is none (see [`find_redis_server`]).
    pub fn find() -> Option<PathBuf> {
        find_redis_server()
    }

    /// Start an empty server with default options.
    ///
    /// # Errors
    /// As [`RedisServer::start`].
    pub fn start_empty() -> Result<Self> {
        Self::start(&ServerOptions::default())
    }

    /// Start a server that loads (a copy of) the dump at `dump`.
    ///
    /// # Errors
    /// As [`RedisServer::start`]; a dump Redis refuses gives [`RedisServerError::ExitedEarly`]
    /// with Redis's explanation in the log tail.
    pub fn start_with_dump(dump: &Path) -> Result<Self> {
        Self::start(&ServerOptions { dump: Some(dump.to_owned()), ..ServerOptions::default() })
    }

    /// Spawn `redis-server` in a fresh temporary directory and wait (bounded by
    /// `opts.startup_timeout`) until it answers `PING`; a `LOADING` reply means it is
    /// still reading the dump, so the wait goes on.
    ///
    /// # Errors
    /// [`RedisServerError::NotFound`] without a binary; `Setup` / `Spawn` for local
    /// failures; `ExitedEarly` when the process ends during startup (e.g. it refused the
    /// dump); `StartTimeout` when it never answers (the process is then killed).
    pub fn start(opts: &ServerOptions) -> Result<Self> {
        let binary = match (&opts.binary, &opts.serve) {
            (Some(b), _) => b.clone(),
            (None, None) => find_redis_server().ok_or(RedisServerError::NotFound)?,
            (None, Some(_)) => std::env::current_exe()
                .map_err(|source| RedisServerError::Setup { what: "find this executable".to_owned(), source })?,
        };
        // A short prefix: the socket path must fit in sun_path (108 bytes).
        let dir = tempfile::Builder::new()
            .prefix("snaplab-redis-")
            .tempdir()
            .map_err(|source| RedisServerError::Setup { what: "create temporary directory".to_owned(), source })?;
        if let Some(dump) = opts.dump.as_ref().filter(|_| opts.serve.is_none()) {
            let dest = dir.path().join(&opts.dbfilename);
            std::fs::copy(dump, &dest).map_err(|source| RedisServerError::Setup {
                what: format!("copy {} to {}", dump.display(), dest.display()),
                source,
            })?;
        }
        let socket = dir.path().join(SOCKET);
        let console_path = dir.path().join(CONSOLE);
        let console = File::create(&console_path)
            .map_err(|source| RedisServerError::Setup { what: format!("create {}", console_path.display()), source })?;
        let console_err = console
            .try_clone()
            .map_err(|source| RedisServerError::Setup { what: format!("dup {}", console_path.display()), source })?;

        // The client is made before the process, so no error can leave a child without a handle.
        let info = ConnectionAddr::Unix(socket.clone())
            .into_connection_info()
            .map_err(|source| RedisServerError::Command { command: "connection info".to_owned(), source })?;
        // Redis 7.0 predates CLIENT SETINFO; do not send it.
        let settings = info.redis_settings().clone().set_skip_set_lib_name();
        let client = redis::Client::open(info.set_redis_settings(settings))
            .map_err(|source| RedisServerError::Command { command: "open client".to_owned(), source })?;

        let mut cmd = Command::new(&binary);
        match &opts.serve {
            Some(strategy) => {
                cmd.args(["serve", "--strategy", strategy.as_str(), "--port", "0", "--unixsocket"])
                    .arg(&socket)
                    .arg("--dir")
                    .arg(dir.path())
                    .arg("--dbfilename")
                    .arg(&opts.dbfilename);
                if let Some(dump) = &opts.dump {
                    cmd.arg("--input").arg(dump);
                }
            }
            None => {
                cmd.arg("--port")
                    .arg("0")
                    .arg("--unixsocket")
                    .arg(&socket)
                    .arg("--unixsocketperm")
                    .arg("700")
                    .arg("--dir")
                    .arg(dir.path())
                    .arg("--dbfilename")
                    .arg(&opts.dbfilename)
                    .arg("--save")
                    .arg("")
                    .arg("--appendonly")
                    .arg("no")
                    .arg("--daemonize")
                    .arg("no")
                    .arg("--logfile")
                    .arg(dir.path().join(LOG))
                    .arg("--enable-debug-command")
                    .arg("yes");
            }
        }
        cmd.args(&opts.extra_args).stdin(Stdio::null()).stdout(console).stderr(console_err);
        let child = cmd.spawn().map_err(|source| RedisServerError::Spawn { binary: binary.clone(), source })?;

        // From here on `Drop` cleans up whatever happens.
        let mut server = RedisServer {
            child,
            client,
            command_timeout: opts.command_timeout,
            dbfilename: opts.dbfilename.clone(),
            dir,
        };
        server.wait_until_ready(opts.startup_timeout)?;
        Ok(server)
    }

    /// Poll until `PING` answers `PONG`, the process exits, or `timeout` passes.
    fn wait_until_ready(&mut self, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        let mut last = "no attempt yet".to_owned();
        loop {
            if let Some(status) = self.child.try_wait().ok().flatten() {
                return Err(RedisServerError::ExitedEarly { status, log_tail: self.log_tail(LOG_LINES) });
            }
            if self.socket_path().exists() {
                match self.try_ping() {
                    Ok(()) => return Ok(()),
                    Err(e) => last = e,
                }
            }
            if Instant::now() >= deadline {
                let log_tail = self.log_tail(LOG_LINES);
                return Err(RedisServerError::StartTimeout { timeout, last, log_tail });
            }
            // A bounded poll on an external process: the one sleep the design allows.
            std::thread::sleep(POLL);
        }
    }

    /// One `PING`; `Err` holds why it was not a `PONG` (e.g. `LOADING`).
    fn try_ping(&self) -> Result<(), String> {
        let mut con = self.client.get_connection_with_timeout(self.command_timeout).map_err(|e| e.to_string())?;
        let reply: String = redis::cmd("PING").query(&mut con).map_err(|e| e.to_string())?;
        if reply == "PONG" { Ok(()) } else { Err(format!("PING answered {reply}")) }
    }

    /// A new synchronous connection (database 0), with the command timeout as read and
    /// write timeout.
    ///
    /// # Errors
    /// [`RedisServerError::Command`] when it cannot connect.
    pub fn connection(&self) -> Result<redis::Connection> {
        let wrap = |source| RedisServerError::Command { command: "connect".to_owned(), source };
        let con = self.client.get_connection_with_timeout(self.command_timeout).map_err(wrap)?;
        con.set_read_timeout(Some(self.command_timeout)).map_err(wrap)?;
        con.set_write_timeout(Some(self.command_timeout)).map_err(wrap)?;
        Ok(con)
    }

    /// Run one command on a new connection.
    fn query<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd, name: &str) -> Result<T> {
        let mut con = self.connection()?;
        cmd.query(&mut con).map_err(|source| RedisServerError::Command { command: name.to_owned(), source })
    }

    /// `DEBUG DIGEST`: a 40-hex-digit digest of every key, value and expiry in every
    /// database, independent of encodings and of hash/set order (Redis src/debug.c,
    /// `computeDatasetDigest`); all zeros for an empty server. Function libraries are
    /// not part of it (see [`RedisServer::function_libraries`]).
    ///
    /// # Errors
    /// [`RedisServerError::Command`] on failure.
    pub fn digest(&self) -> Result<String> {
        self.query(redis::cmd("DEBUG").arg("DIGEST"), "DEBUG DIGEST")
    }

    /// `INFO <section>` parsed into `key -> value` (see [`parse_info`]).
    ///
    /// # Errors
    /// [`RedisServerError::Command`] on failure.
    pub fn info(&self, section: &str) -> Result<HashMap<String, String>> {
        let text: String = self.query(redis::cmd("INFO").arg(section), &format!("INFO {section}"))?;
        Ok(parse_info(&text))
    }

    /// Keys per database (only databases holding keys), from `INFO keyspace`.
    ///
    /// # Errors
    /// [`RedisServerError::Command`] on failure, `Reply` when a line does not parse.
    pub fn dbsize_per_db(&self) -> Result<BTreeMap<u32, u64>> {
        parse_keyspace(&self.info("keyspace")?)
            .map_err(|detail| RedisServerError::Reply { command: "INFO keyspace".to_owned(), detail })
    }

    /// Every key with its type, value digest and expiry, by (database, key): what to diff
    /// when two [`RedisServer::digest`]s differ.
    ///
    /// # Errors
    /// [`RedisServerError::Command`] on failure, `Reply` on a reply of the wrong shape.
    pub fn key_fingerprints(&self) -> Result<BTreeMap<(u32, Vec<u8>), KeyFingerprint>> {
        let mut out = BTreeMap::new();
        let mut con = self.connection()?;
        let run = |con: &mut redis::Connection, cmd: &redis::Cmd, name: &str| -> Result<Value> {
            cmd.query(con).map_err(|source| RedisServerError::Command { command: name.to_owned(), source })
        };
        for db in self.dbsize_per_db()?.into_keys() {
            run(&mut con, redis::cmd("SELECT").arg(db), "SELECT")?;
            let mut keys: Vec<Vec<u8>> = Vec::new();
            let mut cursor: u64 = 0;
            loop {
                let (next, batch): (u64, Vec<Vec<u8>>) = redis::cmd("SCAN")
                    .arg(cursor)
                    .arg("COUNT")
                    .arg(1000)
                    .query(&mut con)
                    .map_err(|source| RedisServerError::Command { command: "SCAN".to_owned(), source })?;
                keys.extend(batch);
                cursor = next;
                if cursor == 0 {
                    break;
                }
            }
            for key in keys {
                let kind: String = redis::cmd("TYPE")
                    .arg(&key)
                    .query(&mut con)
                    .map_err(|source| RedisServerError::Command { command: "TYPE".to_owned(), source })?;
                let digest: Vec<String> =
                    redis::cmd("DEBUG").arg("DIGEST-VALUE").arg(&key).query(&mut con).map_err(|source| {
                        RedisServerError::Command { command: "DEBUG DIGEST-VALUE".to_owned(), source }
                    })?;
                let digest = digest.into_iter().next().ok_or_else(|| RedisServerError::Reply {
                    command: "DEBUG DIGEST-VALUE".to_owned(),
                    detail: "empty array".to_owned(),
                })?;
                let at: i64 = redis::cmd("PEXPIRETIME")
                    .arg(&key)
                    .query(&mut con)
                    .map_err(|source| RedisServerError::Command { command: "PEXPIRETIME".to_owned(), source })?;
                let expire_at_ms = (at >= 0).then_some(at);
                out.insert((db, key), KeyFingerprint { kind, digest, expire_at_ms });
            }
        }
        Ok(out)
    }

    /// The function libraries (`FUNCTION LIST WITHCODE`) as `library name -> code`.
    ///
    /// # Errors
    /// [`RedisServerError::Command`] on failure, `Reply` on a reply of the wrong shape.
    pub fn function_libraries(&self) -> Result<BTreeMap<String, String>> {
        const CMD: &str = "FUNCTION LIST WITHCODE";
        let reply: Value = self.query(redis::cmd("FUNCTION").arg("LIST").arg("WITHCODE"), CMD)?;
        let bad = |detail: String| RedisServerError::Reply { command: CMD.to_owned(), detail };
        let Value::Array(libraries) = reply else { return Err(bad(describe(&reply))) };
        let mut out = BTreeMap::new();
        for library in libraries {
            // RESP2 gives a flat array of alternating field names and values; RESP3 a map.
            let pairs: Vec<(Value, Value)> = match library {
                Value::Array(flat) => {
                    let mut it = flat.into_iter();
                    let mut pairs = Vec::new();
                    while let (Some(k), Some(v)) = (it.next(), it.next()) {
                        pairs.push((k, v));
                    }
                    pairs
                }
                Value::Map(pairs) => pairs,
                other => return Err(bad(describe(&other))),
            };
            let text = |v: &Value| -> Option<String> {
                match v {
                    Value::BulkString(b) => Some(String::from_utf8_lossy(b).into_owned()),
                    Value::SimpleString(s) => Some(s.clone()),
                    _ => None,
                }
            };
            let field =
                |name: &str| pairs.iter().find(|(k, _)| text(k).as_deref() == Some(name)).and_then(|(_, v)| text(v));
            let name = field("library_name").ok_or_else(|| bad("a library without library_name".to_owned()))?;
            let code = field("library_code").unwrap_or_default();
            out.insert(name, code);
        }
        Ok(out)
    }

    /// `SAVE`: a blocking save to `<dir>/<dbfilename>`; returns that path.
    ///
    /// # Errors
    /// [`RedisServerError::Command`] when Redis refuses or the save fails.
    pub fn save(&self) -> Result<PathBuf> {
        let _: () = self.query(&redis::cmd("SAVE"), "SAVE")?;
        Ok(self.dump_path())
    }

    /// `BGSAVE`, then poll `INFO persistence` until `rdb_bgsave_in_progress:0` (bounded by
    /// `timeout`) and check `rdb_last_bgsave_status:ok`; returns the dump path.
    ///
    /// # Errors
    /// `Command` when `BGSAVE` is refused, `BgsaveTimeout`, or `BgsaveFailed`.
    pub fn bgsave_and_wait(&self, timeout: Duration) -> Result<PathBuf> {
        let _: Value = self.query(&redis::cmd("BGSAVE"), "BGSAVE")?;
        let deadline = Instant::now() + timeout;
        loop {
            let info = self.info("persistence")?;
            if info.get("rdb_bgsave_in_progress").map(String::as_str) == Some("0") {
                let status = info.get("rdb_last_bgsave_status").cloned().unwrap_or_default();
                if status != "ok" {
                    return Err(RedisServerError::BgsaveFailed { status, log_tail: self.log_tail(LOG_LINES) });
                }
                return Ok(self.dump_path());
            }
            if Instant::now() >= deadline {
                return Err(RedisServerError::BgsaveTimeout(timeout));
            }
            // A bounded poll on an external process (the fork child), as in startup.
            std::thread::sleep(POLL);
        }
    }

    /// The last `lines` lines of the server's log file, followed by anything it printed on
    /// stdout/stderr (e.g. a bad argument, reported before the log file opens).
    pub fn log_tail(&self, lines: usize) -> String {
        let mut tail = file_tail(&self.dir.path().join(LOG), lines);
        let console = file_tail(&self.dir.path().join(CONSOLE), lines);
        if !console.trim().is_empty() {
            tail.push_str("\n[stdout/stderr]\n");
            tail.push_str(&console);
        }
        tail
    }

    /// How long Redis took to load the dump it started with, from its log line
    /// `DB loaded from disk: <seconds> seconds` (Redis src/server.c, loadDataFromDisk;
    /// `snaplab serve` prints the same line on stderr); `None` when it started empty or the
    /// line is absent.
    pub fn load_time(&self) -> Option<Duration> {
        let mut log = file_tail(&self.dir.path().join(LOG), 500);
        log.push('\n');
        log.push_str(&file_tail(&self.dir.path().join(CONSOLE), 500));
        let line = log.lines().rev().find(|l| l.contains("DB loaded from disk:"))?;
        let secs: f64 = line.split("DB loaded from disk:").nth(1)?.split_whitespace().next()?.parse().ok()?;
        Some(Duration::from_secs_f64(secs))
    }

    /// The unix socket it listens on.
    pub fn socket_path(&self) -> PathBuf {
        self.dir.path().join(SOCKET)
    }

    /// Its working directory (`--dir`), removed when the handle drops.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Where `SAVE` / `BGSAVE` write and where a dump given at startup was copied.
    pub fn dump_path(&self) -> PathBuf {
        self.dir.path().join(&self.dbfilename)
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_some() {
            return;
        }
        // Ask politely first: SHUTDOWN NOSAVE closes the socket, so an I/O error is the
        // expected reply and is ignored.
        if let Ok(mut con) = self.client.get_connection_with_timeout(SHUTDOWN_GRACE) {
            let _ = con.set_read_timeout(Some(SHUTDOWN_GRACE));
            let _: redis::RedisResult<Value> = redis::cmd("SHUTDOWN").arg("NOSAVE").query(&mut con);
        }
        let deadline = Instant::now() + SHUTDOWN_GRACE;
        while Instant::now() < deadline {
            if self.child.try_wait().ok().flatten().is_some() {
                return;
            }
            // A bounded poll on an external process.
            std::thread::sleep(POLL);
        }
        // It did not go: SIGKILL, then reap so no zombie is left. Errors here mean it is
        // already gone, which is what we want.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `INFO` text parses into fields, and the keyspace section into keys per database.
    #[test]
    fn parses_info_and_keyspace() {
        let text = "# Keyspace\r\ndb0:keys=13,expires=2,avg_ttl=0\r\ndb15:keys=1,expires=0,avg_ttl=0\r\n\r\n";
        let info = parse_info(text);
        assert_eq!(info["db0"], "keys=13,expires=2,avg_ttl=0");
        assert_eq!(parse_keyspace(&info).unwrap(), BTreeMap::from([(0, 13), (15, 1)]));
        assert!(parse_keyspace(&parse_info("db1:expires=0")).is_err());
    }

    /// A started server answers, saves, reports its keyspace, and is gone (and reaped) once the handle drops.
    #[test]
    fn starts_saves_and_stops() {
        if RedisServer::find().is_none() {
            crate::skips::skipped("starts_saves_and_stops", "redis-server not found on PATH");
            return;
        }
        let server = RedisServer::start_empty().unwrap();
        let pid = server.pid();
        let mut con = server.connection().unwrap();
        redis::cmd("SET").arg("k").arg("v").exec(&mut con).unwrap();
        assert_eq!(server.dbsize_per_db().unwrap(), BTreeMap::from([(0, 1)]));
        assert_eq!(server.digest().unwrap().len(), 40);
        let dump = server.bgsave_and_wait(Duration::from_secs(30)).unwrap();
        assert!(dump.exists());
        check_rdb(&dump).unwrap();
        let dir = server.dir().to_owned();
        drop(con);
        drop(server);
        assert!(!dir.exists(), "the server's directory is removed");
        assert!(!Path::new(&format!("/proc/{pid}")).exists(), "redis-server {pid} was reaped");
    }
}
