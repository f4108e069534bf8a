//! Redis's RDB-preamble append-only file (`aof-use-rdb-preamble yes`): an RDB dump, then
//! commands in RESP, the protocol clients speak (`*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n`).
//!
//! Redis writes this shape when it rewrites its AOF (src/aof.c, `rewriteAppendOnlyFileRio`
//! writes the RDB with `rdbSaveRio`, then the commands that arrived during the rewrite
//! follow) and reads it in `loadSingleAppendOnlyFile`: a file that starts with `REDIS` is
//! loaded as RDB first ("Reading RDB preamble from AOF file..."), then the remaining bytes
//! are executed as commands ("Reading the remaining AOF tail..."). The `relaxed` strategy
//! writes its fuzzy traversal and its change log this way.
//!
//! This module encodes a [`Command`] as the RESP command that reproduces it
//! ([`encode_command`]), and loads a whole file ([`load_file`]): a plain RDB dump is a
//! preamble file with an empty tail, so it loads here too.

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;
use std::time::{Duration, Instant};

use crate::command::{Command, CommandError};
use crate::keyspace::{Bytes, DB_COUNT, Keyspace};
use crate::rdb::{self, LoadSummary, RdbError};

/// Append `*<n>\r\n` and each argument as `$<len>\r\n<bytes>\r\n` (a RESP array of bulk
/// strings, Redis src/aof.c `catAppendOnlyGenericCommand`).
pub fn put_multibulk(out: &mut Vec<u8>, args: &[&[u8]]) {
    out.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
}

/// Append `SELECT <db>`.
pub fn put_select(out: &mut Vec<u8>, db: usize) {
    put_multibulk(out, &[b"SELECT", db.to_string().as_bytes()]);
}

/// A score as Redis parses it back exactly: Rust prints the shortest decimal that reads back
/// as the same `f64`, with no exponent; infinities as `inf` and `-inf`, which Redis's
/// `strtod` accepts.
fn score_text(s: f64) -> Bytes {
    s.to_string().into_bytes()
}

/// Append the RESP form of `cmd` (without a SELECT: the caller selects `cmd.db()` first).
pub fn encode_command(out: &mut Vec<u8>, cmd: &Command) {
    let name = cmd.name().as_bytes();
    let mut args: Vec<Bytes> = Vec::new();
    match cmd {
        Command::Set { key, value, expire_at_ms, .. } => {
            args.extend([key.clone(), value.clone()]);
            if let Some(at) = expire_at_ms {
                args.extend([b"PXAT".to_vec(), at.to_string().into_bytes()]);
            }
        }
        Command::Del { key, .. } | Command::Persist { key, .. } | Command::LPop { key, .. } => args.push(key.clone()),
        Command::PExpireAt { key, at_ms, .. } => args.extend([key.clone(), at_ms.to_string().into_bytes()]),
        Command::LPush { key, elements: items, .. }
        | Command::RPush { key, elements: items, .. }
        | Command::SAdd { key, members: items, .. }
        | Command::SRem { key, members: items, .. }
        | Command::HDel { key, fields: items, .. }
        | Command::ZRem { key, members: items, .. } => {
            args.push(key.clone());
            args.extend(items.iter().cloned());
        }
        Command::HSet { key, pairs, .. } => {
            args.push(key.clone());
            for (f, v) in pairs {
                args.extend([f.clone(), v.clone()]);
            }
        }
        Command::ZAdd { key, pairs, .. } => {
            args.push(key.clone());
            for (s, m) in pairs {
                args.extend([score_text(*s), m.clone()]);
            }
        }
        Command::FlushDb { .. } | Command::FlushAll => {}
    }
    let mut all: Vec<&[u8]> = vec![name];
    all.extend(args.iter().map(Vec::as_slice));
    put_multibulk(out, &all);
}

/// Why the command tail of a preamble file does not load. Offsets are bytes from the start
/// of the file.
#[derive(Debug, thiserror::Error)]
pub enum AofError {
    /// The RDB preamble does not load.
    #[error("the RDB preamble: {0}")]
    Rdb(#[from] RdbError),
    /// The file ends inside a command (Redis: "Unexpected end of file reading the append
    /// only file"; it may truncate such a tail with `aof-load-truncated yes`, we refuse it).
    #[error("the command tail ends inside a command that starts at byte {offset}")]
    Truncated {
        /// Where the unfinished command starts.
        offset: u64,
    },
    /// The bytes are not a RESP array of bulk strings (Redis: "Bad file format reading the
    /// append only file").
    #[error("bad RESP at byte {offset}: {what}")]
    Malformed {
        /// Where.
        offset: u64,
        /// What was expected.
        what: String,
    },
    /// A command this store does not know.
    #[error("unknown command '{name}' at byte {offset}")]
    UnknownCommand {
        /// Where the command starts.
        offset: u64,
        /// Its name, escaped.
        name: String,
    },
    /// A known command with arguments it cannot take.
    #[error("bad arguments for {command} at byte {offset}: {why}")]
    BadArguments {
        /// Where the command starts.
        offset: u64,
        /// The command name.
        command: String,
        /// What is wrong.
        why: String,
    },
    /// The store refused a command of the tail (a wrong type): the log does not follow
    /// from the preamble.
    #[error("the command at byte {offset} was refused: {source}")]
    Refused {
        /// Where the command starts.
        offset: u64,
        /// Why.
        #[source]
        source: CommandError,
    },
}

impl AofError {
    /// The byte of the file the error is at.
    pub fn offset(&self) -> u64 {
        match self {
            AofError::Rdb(e) => e.offset(),
            AofError::Truncated { offset }
            | AofError::Malformed { offset, .. }
            | AofError::UnknownCommand { offset, .. }
            | AofError::BadArguments { offset, .. }
            | AofError::Refused { offset, .. } => *offset,
        }
    }

    /// As an [`RdbError`], for callers that report dump errors: a preamble error as it
    /// was, a tail error as [`RdbError::Corrupt`] of the "AOF tail" at its byte.
    pub fn into_rdb_error(self) -> RdbError {
        match self {
            AofError::Rdb(e) => e,
            other => RdbError::Corrupt { offset: other.offset(), what: "AOF tail".into(), reason: other.to_string() },
        }
    }
}

/// What [`load`] found.
#[derive(Clone, Debug, Default)]
pub struct AofSummary {
    /// The preamble's summary (its `bytes` is the preamble's length).
    pub rdb: LoadSummary,
    /// Commands in the tail (SELECT included).
    pub commands: u64,
    /// Bytes of the tail.
    pub tail_bytes: u64,
    /// Time spent replaying the tail (parsing and applying), wall-clock.
    pub replay: Duration,
}

/// One command of the tail: the byte it starts at and its arguments.
type RawCommand<'a> = (u64, Vec<&'a [u8]>);

/// A cursor over the tail, counting from `base` (the preamble's length).
struct Tail<'a> {
    bytes: &'a [u8],
    pos: usize,
    base: u64,
}

impl<'a> Tail<'a> {
    fn offset(&self) -> u64 {
        self.base + self.pos as u64
    }

    /// A `\r\n`-terminated line after the prefix byte `kind`, as a non-negative number.
    fn number(&mut self, kind: u8, start: u64) -> Result<usize, AofError> {
        let at = self.offset();
        let rest = &self.bytes[self.pos..];
        let Some(end) = rest.windows(2).position(|w| w == b"\r\n") else {
            return Err(AofError::Truncated { offset: start });
        };
        let line = &rest[..end];
        if line.first() != Some(&kind) {
            return Err(AofError::Malformed {
                offset: at,
                what: format!("expected '{}', found {}", kind as char, crate::escape(&line[..line.len().min(16)])),
            });
        }
        let n = std::str::from_utf8(&line[1..]).ok().and_then(|s| s.parse::<usize>().ok()).ok_or_else(|| {
            AofError::Malformed { offset: at, what: format!("not a length: {}", crate::escape(&line[1..])) }
        })?;
        self.pos += end + 2;
        Ok(n)
    }

    /// The next command's arguments, or `None` at the end.
    fn command(&mut self) -> Result<Option<RawCommand<'a>>, AofError> {
        if self.pos == self.bytes.len() {
            return Ok(None);
        }
        let start = self.offset();
        let argc = self.number(b'*', start)?;
        if argc == 0 {
            return Err(AofError::Malformed { offset: start, what: "a command with no arguments".into() });
        }
        let mut args = Vec::with_capacity(argc.min(1024));
        for _ in 0..argc {
            if self.pos == self.bytes.len() {
                return Err(AofError::Truncated { offset: start });
            }
            let len = self.number(b'$', start)?;
            let end = self.pos.checked_add(len).filter(|&e| e + 2 <= self.bytes.len());
            let Some(end) = end else { return Err(AofError::Truncated { offset: start }) };
            if &self.bytes[end..end + 2] != b"\r\n" {
                return Err(AofError::Malformed { offset: self.base + end as u64, what: "expected CRLF".into() });
            }
            args.push(&self.bytes[self.pos..end]);
            self.pos = end + 2;
        }
        Ok(Some((start, args)))
    }
}

/// What one tail command does: select a database, or apply a write.
enum Step {
    Select(usize),
    Write(Command),
}

fn parse_step(offset: u64, db: usize, args: &[&[u8]]) -> Result<Step, AofError> {
    let name = String::from_utf8_lossy(args[0]).to_ascii_uppercase();
    let rest = &args[1..];
    let bad = |why: &str| AofError::BadArguments { offset, command: name.clone(), why: why.into() };
    let int = |b: &[u8]| std::str::from_utf8(b).ok().and_then(|s| s.parse::<i64>().ok());
    let owned = |v: &[&[u8]]| v.iter().map(|a| a.to_vec()).collect::<Vec<Bytes>>();
    let key = || rest[0].to_vec();
    let at_least = |n: usize| if rest.len() >= n { Ok(()) } else { Err(bad(&format!("needs at least {n} arguments"))) };
    let exactly = |n: usize| if rest.len() == n { Ok(()) } else { Err(bad(&format!("needs exactly {n} arguments"))) };
    let cmd = match name.as_str() {
        "SELECT" => {
            exactly(1)?;
            let n = int(rest[0]).filter(|&n| (0..DB_COUNT as i64).contains(&n)).ok_or_else(|| bad("not a database"))?;
            return Ok(Step::Select(n as usize));
        }
        "SET" => {
            if rest.len() != 2 && rest.len() != 4 {
                return Err(bad("takes key value [PXAT ms]"));
            }
            let expire_at_ms = match rest.get(2) {
                None => None,
                Some(opt) if opt.eq_ignore_ascii_case(b"PXAT") => Some(int(rest[3]).ok_or_else(|| bad("PXAT"))?),
                Some(_) => return Err(bad("the only option is PXAT")),
            };
            Command::Set { db, key: key(), value: rest[1].to_vec(), expire_at_ms }
        }
        "DEL" => {
            exactly(1)?;
            Command::Del { db, key: key() }
        }
        "PEXPIREAT" => {
            exactly(2)?;
            Command::PExpireAt { db, key: key(), at_ms: int(rest[1]).ok_or_else(|| bad("not a time"))? }
        }
        "PERSIST" => {
            exactly(1)?;
            Command::Persist { db, key: key() }
        }
        "LPOP" => {
            exactly(1)?;
            Command::LPop { db, key: key() }
        }
        "LPUSH" | "RPUSH" | "SADD" | "SREM" | "HDEL" | "ZREM" => {
            at_least(2)?;
            let items = owned(&rest[1..]);
            match name.as_str() {
                "LPUSH" => Command::LPush { db, key: key(), elements: items },
                "RPUSH" => Command::RPush { db, key: key(), elements: items },
                "SADD" => Command::SAdd { db, key: key(), members: items },
                "SREM" => Command::SRem { db, key: key(), members: items },
                "HDEL" => Command::HDel { db, key: key(), fields: items },
                _ => Command::ZRem { db, key: key(), members: items },
            }
        }
        "HSET" => {
            at_least(3)?;
            if rest.len().is_multiple_of(2) {
                return Err(bad("takes key field value [field value ...]"));
            }
            let pairs = rest[1..].chunks(2).map(|p| (p[0].to_vec(), p[1].to_vec())).collect();
            Command::HSet { db, key: key(), pairs }
        }
        "ZADD" => {
            at_least(3)?;
            if rest.len().is_multiple_of(2) {
                return Err(bad("takes key score member [score member ...]"));
            }
            let mut pairs = Vec::new();
            for p in rest[1..].chunks(2) {
                let s = std::str::from_utf8(p[0]).ok().and_then(|s| s.parse::<f64>().ok());
                pairs.push((s.ok_or_else(|| bad("a score is not a number"))?, p[1].to_vec()));
            }
            Command::ZAdd { db, key: key(), pairs }
        }
        "FLUSHDB" => {
            exactly(0)?;
            Command::FlushDb { db }
        }
        "FLUSHALL" => {
            exactly(0)?;
            Command::FlushAll
        }
        _ => return Err(AofError::UnknownCommand { offset, name: crate::escape(args[0]) }),
    };
    Ok(Step::Write(cmd))
}

/// Apply the RESP commands in `tail` (which starts at byte `base` of its file) to
/// `keyspace`, returning how many there were.
///
/// Commands run with no key expiring, as Redis runs them while loading (src/expire.c,
/// `checkAlreadyExpired` is false during loading; src/db.c `expireIfNeeded` does not
/// delete then): a log that must reproduce an expiry says so with a DEL.
///
/// # Errors
/// An [`AofError`] naming the byte where the bad command starts.
pub fn replay_tail(keyspace: &mut Keyspace, tail: &[u8], base: u64) -> Result<u64, AofError> {
    let mut t = Tail { bytes: tail, pos: 0, base };
    let mut db = 0;
    let mut n = 0;
    while let Some((offset, args)) = t.command()? {
        n += 1;
        match parse_step(offset, db, &args)? {
            Step::Select(d) => db = d,
            Step::Write(cmd) => {
                keyspace.apply(&cmd, i64::MIN).map_err(|source| AofError::Refused { offset, source })?;
            }
        }
    }
    Ok(n)
}

/// Load a preamble file held in memory: the RDB dump, then the command tail.
///
/// # Errors
/// [`AofError`].
pub fn load(bytes: &[u8]) -> Result<(Keyspace, AofSummary), AofError> {
    // The pipelined loader: decoding on one thread, building on this one.
    let mut ks = Keyspace::new();
    let rdb = rdb::load_into(bytes, Some(bytes.len() as u64), None, &mut ks)?;
    let base = rdb.bytes;
    let tail = &bytes[(base as usize).min(bytes.len())..];
    let started = Instant::now();
    let commands = replay_tail(&mut ks, tail, base)?;
    Ok((ks, AofSummary { rdb, commands, tail_bytes: tail.len() as u64, replay: started.elapsed() }))
}

/// Read `path` and [`load`] it.
///
/// # Errors
/// [`AofError::Rdb`] with an I/O error at offset 0 if the file cannot be read, else as
/// [`load`].
pub fn load_file(path: &Path) -> Result<(Keyspace, AofSummary), AofError> {
    // The preamble is streamed from the file by the pipelined loader; only the tail, if
    // there is one, is read into memory (a plain RDB file has none).
    let io = |offset: u64| move |source| RdbError::Io { offset, source };
    let mut file = std::fs::File::open(path).map_err(io(0))?;
    let size = file.metadata().map_err(io(0))?.len();
    let mut ks = Keyspace::new();
    let rdb = rdb::load_into(&mut file, Some(size), None, &mut ks)?;
    let base = rdb.bytes;
    // The reader may have buffered past the preamble's end: read the tail from `base`.
    file.seek(SeekFrom::Start(base)).map_err(io(base))?;
    let mut tail = Vec::new();
    file.read_to_end(&mut tail).map_err(io(base))?;
    let started = Instant::now();
    let commands = replay_tail(&mut ks, &tail, base)?;
    Ok((ks, AofSummary { rdb, commands, tail_bytes: tail.len() as u64, replay: started.elapsed() }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keyspace::{Entry, Value};

    fn s(v: &str) -> Bytes {
        v.as_bytes().to_vec()
    }

    fn every_command() -> Vec<Command> {
        vec![
            Command::Set { db: 0, key: s("s"), value: s("v"), expire_at_ms: None },
            Command::Set { db: 0, key: s("e"), value: s("v"), expire_at_ms: Some(4_000_000_000_000) },
            Command::PExpireAt { db: 0, key: s("s"), at_ms: 4_000_000_000_001 },
            Command::Persist { db: 0, key: s("s") },
            Command::RPush { db: 1, key: s("l"), elements: vec![s("a"), s("b")] },
            Command::LPush { db: 1, key: s("l"), elements: vec![s("c")] },
            Command::LPop { db: 1, key: s("l") },
            Command::SAdd { db: 2, key: s("S"), members: vec![s("x"), s("y")] },
            Command::SRem { db: 2, key: s("S"), members: vec![s("x")] },
            Command::HSet { db: 3, key: s("h"), pairs: vec![(s("f"), s("1")), (s("g"), s("2"))] },
            Command::HDel { db: 3, key: s("h"), fields: vec![s("g")] },
            Command::ZAdd {
                db: 4,
                key: s("z"),
                pairs: vec![(0.1, s("m")), (f64::INFINITY, s("n")), (-2.5e-300, s("o"))],
            },
            Command::ZRem { db: 4, key: s("z"), members: vec![s("m")] },
            Command::Del { db: 0, key: s("e") },
            Command::FlushDb { db: 5 },
        ]
    }

    fn tail_of(cmds: &[Command]) -> Vec<u8> {
        let mut out = Vec::new();
        for c in cmds {
            if let Some(db) = c.db() {
                put_select(&mut out, db);
            }
            encode_command(&mut out, c);
        }
        out
    }

    /// Every command, encoded and replayed, changes a keyspace exactly as applying it does.
    #[test]
    fn every_command_round_trips() {
        let cmds = every_command();
        let mut direct = Keyspace::new();
        for c in &cmds {
            direct.apply(c, 0).unwrap();
        }
        let mut replayed = Keyspace::new();
        let n = replay_tail(&mut replayed, &tail_of(&cmds), 0).unwrap();
        assert_eq!(n, 2 * cmds.len() as u64, "one SELECT before each command");
        assert_eq!(replayed, direct);
    }

    /// An RDB dump followed by a tail loads as the dump's keys changed by the tail; the
    /// RDB alone is a preamble file with an empty tail.
    #[test]
    fn preamble_then_tail() {
        let mut ks = Keyspace::new();
        ks.insert(0, s("l"), Entry::new(Value::List(Box::new([s("a")].into_iter().collect()))));
        let (mut file, _) = rdb::write_view(&ks, Vec::new(), &rdb::EncodeOptions::default(), None).unwrap();
        let (alone, summary) = load(&file).unwrap();
        assert_eq!((alone, summary.commands), (ks.clone(), 0));
        let push = Command::RPush { db: 0, key: s("l"), elements: vec![s("b")] };
        file.extend(tail_of(std::slice::from_ref(&push)));
        let (got, summary) = load(&file).unwrap();
        ks.apply(&push, 0).unwrap();
        assert_eq!(got, ks);
        assert_eq!(summary.commands, 2);
    }

    /// A tail cut anywhere inside a command is a typed error naming where the command
    /// starts, never a panic; a tail cut between commands loads what is there.
    #[test]
    fn truncated_tail_is_an_error() {
        let one = tail_of(&[Command::Set { db: 0, key: s("k"), value: s("v"), expire_at_ms: None }]);
        let select_len = {
            let mut b = Vec::new();
            put_select(&mut b, 0);
            b.len()
        };
        for cut in 1..one.len() {
            let r = replay_tail(&mut Keyspace::new(), &one[..cut], 100);
            if cut == select_len {
                assert!(r.is_ok(), "cut after the SELECT: {r:?}");
            } else {
                let want = if cut < select_len { 100 } else { 100 + select_len as u64 };
                assert!(
                    matches!(r, Err(AofError::Truncated { offset }) if offset == want),
                    "cut at {cut}: expected Truncated at {want}, got {r:?}"
                );
            }
        }
    }

    /// Unknown commands, bad arity, bad numbers and refused writes are typed errors.
    #[test]
    fn bad_commands_are_typed_errors() {
        let mut b = Vec::new();
        put_multibulk(&mut b, &[b"INCR", b"k"]);
        assert!(matches!(replay_tail(&mut Keyspace::new(), &b, 0), Err(AofError::UnknownCommand { offset: 0, .. })));
        let mut b = Vec::new();
        put_multibulk(&mut b, &[b"PEXPIREAT", b"k", b"soon"]);
        assert!(matches!(replay_tail(&mut Keyspace::new(), &b, 0), Err(AofError::BadArguments { .. })));
        let mut b = Vec::new();
        put_multibulk(&mut b, &[b"SELECT", b"16"]);
        assert!(matches!(replay_tail(&mut Keyspace::new(), &b, 0), Err(AofError::BadArguments { .. })));
        let mut b = Vec::new();
        put_multibulk(&mut b, &[b"SET", b"k", b"v"]);
        put_multibulk(&mut b, &[b"RPUSH", b"k", b"x"]);
        assert!(matches!(replay_tail(&mut Keyspace::new(), &b, 0), Err(AofError::Refused { offset: 27, .. })));
        assert!(matches!(replay_tail(&mut Keyspace::new(), b"+OK\r\n", 7), Err(AofError::Malformed { offset: 7, .. })));
        assert!(matches!(replay_tail(&mut Keyspace::new(), b"*1\r\n$3\r\nDELxx", 0), Err(AofError::Malformed { .. })));
    }
}
