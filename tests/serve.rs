//! `snaplab serve` driven by real Redis clients: `redis-cli`, `redis-benchmark`, the
//! `redis` crate and raw sockets for the inputs no client sends. redis-server is the
//! oracle for the data: a dump our server wrote loads in it with the same `DEBUG DIGEST`,
//! and our `DEBUG DIGEST` equals its own on the same dump.
//!
//! Tests that need `redis-cli`, `redis-benchmark` or `redis-server` report a skip when the
//! tool is not on `PATH`.

use std::collections::{HashMap, HashSet, VecDeque};
use std::io::{ErrorKind, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command as Process, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use snaplab::core::rdb;
use snaplab::core::{Entry, Keyspace, SaveOptions, Value};
use snaplab::harness::conformance::{GateIo, GatedIo};
use snaplab::harness::redis_server::{RedisServer, parse_info};
use snaplab::harness::serve::{ServeOptions, Server, digest};
use snaplab_harness::skips::skipped;

/// Far-future expiry (2100-01-01, unix ms), so no key expires mid-test.
const FAR_FUTURE_MS: i64 = 4_102_444_800_000;

fn on_path(tool: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
}

/// Whether every tool is on PATH; otherwise report the skip.
fn tools_or_skip(test: &str, tools: &[&str]) -> bool {
    for t in tools {
        if !on_path(t) {
            skipped(test, &format!("{t} not found on PATH"));
            return false;
        }
    }
    true
}

/// A server for `strategy` in a fresh directory, on a unix socket there.
fn start(strategy: &str, opts: impl FnOnce(ServeOptions) -> ServeOptions) -> (Server, tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("s.sock");
    let entry = snaplab::registry().get(strategy).unwrap();
    let server = Server::start(entry, opts(ServeOptions::unix(dir.path(), &sock))).unwrap();
    (server, dir, sock)
}

/// `redis-cli -s sock args...`, its standard output trimmed; panics if it fails.
fn cli(sock: &Path, args: &[&str]) -> String {
    let out = Process::new("redis-cli").arg("-s").arg(sock).args(args).output().unwrap();
    assert!(out.status.success(), "redis-cli {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Send raw bytes on a new connection and read until the server closes it or `want`
/// bytes have arrived.
fn raw(sock: &Path, bytes: &[u8], want: usize) -> (String, bool) {
    let mut s = UnixStream::connect(sock).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s.write_all(bytes).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let closed = loop {
        match s.read(&mut buf) {
            Ok(0) => break true,
            Ok(n) => {
                got.extend_from_slice(&buf[..n]);
                if got.len() >= want {
                    break false;
                }
            }
            Err(e) => panic!("reading the reply: {e}"),
        }
    };
    (String::from_utf8_lossy(&got).into_owned(), closed)
}

fn info(sock: &Path, section: &str) -> HashMap<String, String> {
    parse_info(&cli(sock, &["INFO", section]))
}

/// Wait (bounded) until no background save runs; the persistence section then.
fn wait_for_bgsave(sock: &Path) -> HashMap<String, String> {
    let limit = Instant::now() + Duration::from_secs(120);
    loop {
        let i = info(sock, "persistence");
        if i["rdb_bgsave_in_progress"] == "0" {
            return i;
        }
        assert!(Instant::now() < limit, "BGSAVE still running after 120 s");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Every type, in db 0 and db 3, with an expiry: through redis-cli.
fn fill_every_type(sock: &Path) {
    let at = (FAR_FUTURE_MS / 1000).to_string();
    for cmd in [
        vec!["SET", "str", "hello"],
        vec!["SET", "int", "12345"],
        vec!["SET", "ttl", "v", "EXAT", &at],
        vec!["RPUSH", "list", "a", "b", "7"],
        vec!["SADD", "set", "x", "y", "42"],
        vec!["HSET", "hash", "f1", "v1", "f2", "2"],
        vec!["ZADD", "zset", "1.5", "m1", "-2", "m2", "0.1", "m3"],
        vec!["-n", "3", "SET", "other-db", "v"],
    ] {
        let reply = cli(sock, &cmd);
        assert!(!reply.starts_with("ERR") && !reply.starts_with("WRONGTYPE"), "{cmd:?}: {reply}");
    }
}

/// For every strategy: redis-cli writes every type, reads it back, BGSAVE; LASTSAVE and
/// INFO persistence report the save; redis-server loads the dump and its DEBUG DIGEST is
/// ours.
#[test]
fn redis_cli_then_redis_server_loads_the_dump() {
    const TEST: &str = "redis_cli_then_redis_server_loads_the_dump";
    if !tools_or_skip(TEST, &["redis-cli", "redis-server"]) {
        return;
    }
    for entry in snaplab::registry().entries() {
        let (_server, dir, sock) = start(entry.name, |o| o);
        assert_eq!(cli(&sock, &["PING"]), "PONG");
        fill_every_type(&sock);
        assert_eq!(cli(&sock, &["GET", "str"]), "hello");
        assert_eq!(cli(&sock, &["LRANGE", "list", "0", "-1"]), "a\nb\n7");
        assert_eq!(cli(&sock, &["HGET", "hash", "f1"]), "v1");
        assert_eq!(
            cli(&sock, &["ZRANGE", "zset", "0", "-1", "WITHSCORES"]),
            "m2\n-2\nm3\n0.10000000000000001\nm1\n1.5"
        );
        assert_eq!(cli(&sock, &["TYPE", "set"]), "set");
        assert_eq!(cli(&sock, &["DBSIZE"]), "7");
        assert_eq!(info(&sock, "persistence")["rdb_changes_since_last_save"], "8");
        assert_eq!(cli(&sock, &["BGSAVE"]), "Background saving started");
        let persistence = wait_for_bgsave(&sock);
        assert_eq!(persistence["rdb_last_bgsave_status"], "ok", "{}", entry.name);
        assert_eq!(persistence["rdb_changes_since_last_save"], "0", "{}", entry.name);
        let lastsave: i64 = cli(&sock, &["LASTSAVE"]).parse().unwrap();
        assert_eq!(persistence["rdb_last_save_time"], lastsave.to_string());
        assert!(lastsave > 1_700_000_000, "LASTSAVE {lastsave} is a unix time in seconds");
        let ours = cli(&sock, &["DEBUG", "DIGEST"]);
        let redis = RedisServer::start_with_dump(&dir.path().join("dump.rdb")).unwrap();
        assert_eq!(redis.digest().unwrap(), ours, "{}: redis-server holds what we saved", entry.name);
    }
}

/// For every strategy: redis-benchmark's set, get, lpush, sadd and hset tests complete with
/// no error while a BGSAVE is held in progress (its file write waits at a gate), and the
/// dump then holds exactly the keys present at the BGSAVE.
#[test]
fn redis_benchmark_runs_clean_during_a_bgsave() {
    const TEST: &str = "redis_benchmark_runs_clean_during_a_bgsave";
    if !tools_or_skip(TEST, &["redis-cli", "redis-benchmark"]) {
        return;
    }
    for entry in snaplab::registry().entries() {
        let gate = GateIo::new();
        let io = SaveOptions { io: Arc::new(GatedIo(Arc::clone(&gate))), ..SaveOptions::default() };
        let (_server, dir, sock) = start(entry.name, |o| ServeOptions { save_options: io, ..o });
        fill_every_type(&sock);
        assert_eq!(cli(&sock, &["BGSAVE"]), "Background saving started");
        assert!(gate.wait_for_a_held_write(Duration::from_secs(60)), "{}: the save reached its file", entry.name);
        // Blocking's lesson is that writers wait for the whole save: held, it would hold the
        // benchmark too. Its save is let go, and the benchmark's first writes wait for it.
        let held = entry.name != "blocking";
        if !held {
            gate.open();
        }
        let out = Process::new("redis-benchmark")
            .arg("-s")
            .arg(&sock)
            .args(["-t", "set,get,lpush,sadd,hset", "-n", "5000", "-r", "1000", "-q"])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{}: redis-benchmark failed: {stderr}", entry.name);
        for t in ["SET", "GET", "LPUSH", "SADD", "HSET"] {
            assert!(stdout.contains(&format!("{t}: ")), "{}: no {t} result in {stdout}", entry.name);
        }
        let all = format!("{stdout}{stderr}");
        assert!(!all.contains("rror") && !all.contains("ERR"), "{}: errors: {all}", entry.name);
        if held {
            let running = &info(&sock, "persistence")["rdb_bgsave_in_progress"];
            assert_eq!(running, "1", "{}: the save ran during the whole benchmark", entry.name);
        }
        gate.open();
        assert_eq!(wait_for_bgsave(&sock)["rdb_last_bgsave_status"], "ok");
        let saved = rdb::load_file(&dir.path().join("dump.rdb")).unwrap().0;
        assert_eq!(saved.len(), 8, "{}: the dump holds the keys at the BGSAVE, none of the benchmark's", entry.name);
    }
}

/// Unknown commands, wrong arity, wrong types and bad arguments get Redis's error prefixes,
/// and the connection stays usable.
#[test]
fn errors_carry_redis_prefixes() {
    let (_server, _dir, sock) = start("blocking", |o| o);
    let req = b"NOSUCH a b\r\nGET\r\nSET k v\r\nLPUSH k x\r\nSELECT 99\r\nEXPIRE k abc\r\nPING\r\n";
    let want = "-ERR unknown command 'NOSUCH', with args beginning with: 'a' 'b' \r\n\
                -ERR wrong number of arguments for 'get' command\r\n\
                +OK\r\n\
                -WRONGTYPE Operation against a key holding the wrong kind of value\r\n\
                -ERR DB index is out of range\r\n\
                -ERR value is not an integer or out of range\r\n\
                +PONG\r\n";
    let (got, closed) = raw(&sock, req, want.len());
    assert_eq!(got, want);
    assert!(!closed, "errors in commands keep the connection open");
}

/// Requests are read in place from the connection's input: lists of up to 8 arguments on
/// the stack, longer ones on the heap, and a request that arrives in pieces is resumed.
/// Requests of 8, 9 and 40 arguments, sent 7 bytes at a time, all apply whole.
#[test]
fn requests_of_every_length_apply_whole_when_sent_in_pieces() {
    let (_server, _dir, sock) = start("sharded", |o| o);
    let encode = |args: &[String]| {
        let mut b = format!("*{}\r\n", args.len()).into_bytes();
        for a in args {
            b.extend_from_slice(format!("${}\r\n{a}\r\n", a.len()).as_bytes());
        }
        b
    };
    let hset = |key: &str, pairs: usize| {
        let mut a = vec!["HSET".to_string(), key.to_string()];
        (0..pairs).for_each(|i| a.extend([format!("f{i}"), format!("v{i}")]));
        a
    };
    // 8 arguments (HSET with 3 pairs), 9 (RPUSH with 7 elements), 40 (HSET with 19 pairs).
    let mut rpush9 = vec!["RPUSH".to_string(), "l9".to_string()];
    rpush9.extend((0..7).map(|i| format!("e{i}")));
    let mut all = encode(&hset("h8", 3));
    all.extend(encode(&rpush9));
    all.extend(encode(&hset("h40", 19)));
    let mut s = UnixStream::connect(&sock).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    for piece in all.chunks(7) {
        s.write_all(piece).unwrap();
        std::thread::sleep(Duration::from_millis(1));
    }
    let want = ":3\r\n:7\r\n:19\r\n";
    let mut got = Vec::new();
    let mut buf = [0u8; 256];
    while got.len() < want.len() {
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0, "closed after {:?}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
    }
    assert_eq!(String::from_utf8_lossy(&got), want);
    assert_eq!(cli(&sock, &["HGET", "h40", "f18"]), "v18");
    assert_eq!(cli(&sock, &["LRANGE", "l9", "-1", "-1"]), "e6");
    assert_eq!(cli(&sock, &["HGET", "h8", "f2"]), "v2");
}

/// With `busy_poll` the loop looks for events without sleeping before it waits: requests
/// arriving inside that window and after it, on an open connection and on new ones, are
/// all answered.
#[test]
fn busy_polling_loses_no_request() {
    let (_server, _dir, sock) = start("sharded", |o| ServeOptions { busy_poll: Duration::from_millis(2), ..o });
    let mut a = UnixStream::connect(&sock).unwrap();
    a.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    for i in 0..200 {
        a.write_all(format!("SET k{i} v\r\n").as_bytes()).unwrap();
        let mut ok = [0u8; 5];
        a.read_exact(&mut ok).unwrap();
        assert_eq!(&ok, b"+OK\r\n", "request {i}");
        if i % 50 == 0 {
            assert_eq!(raw(&sock, b"PING\r\n", 7).0, "+PONG\r\n", "a new connection at request {i}");
        }
        // Half the pauses end inside the 2 ms of polling, half after the loop slept.
        std::thread::sleep(Duration::from_micros(if i % 2 == 0 { 100 } else { 3_000 }));
    }
    assert_eq!(raw(&sock, b"DBSIZE\r\n", 6).0, ":200\r\n");
}

/// A frame cut short, then the client gone: only that connection ends; the server goes on.
#[test]
fn truncated_frame_closes_only_its_connection() {
    let (_server, _dir, sock) = start("blocking", |o| o);
    let mut a = UnixStream::connect(&sock).unwrap();
    a.write_all(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nhel").unwrap();
    a.shutdown(std::net::Shutdown::Write).unwrap();
    let mut rest = Vec::new();
    a.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty(), "no reply to half a request: {rest:?}");
    assert_eq!(raw(&sock, b"PING\r\nEXISTS k\r\n", 11).0, "+PONG\r\n:0\r\n", "nothing of the cut request was applied");
}

/// A bulk length of 4 GiB, over `proto-max-bulk-len`, is refused from its header alone:
/// the reply comes without the client sending the body, and the connection is closed.
#[test]
fn four_gib_bulk_length_is_refused_from_its_header() {
    let (_server, _dir, sock) = start("blocking", |o| o);
    let (got, closed) = raw(&sock, b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$4294967296\r\n", usize::MAX);
    assert_eq!(got, "-ERR Protocol error: invalid bulk length\r\n");
    assert!(closed);
    let rss = info(&sock, "memory")["used_memory"].parse::<u64>().unwrap();
    assert!(rss < 1 << 30, "resident size {rss} B: nothing near 4 GiB was allocated");
    let cpu = info(&sock, "cpu");
    assert!(cpu["used_cpu_user"].parse::<f64>().unwrap() >= 0.0 && cpu.contains_key("used_cpu_sys_children"));
    assert_eq!(cli(&sock, &["PING"]), "PONG");
}

/// Lengths that are not numbers are protocol errors that close the connection.
#[test]
fn non_number_lengths_are_refused() {
    let (_server, _dir, sock) = start("blocking", |o| o);
    assert_eq!(
        raw(&sock, b"*1\r\n$abc\r\nPING\r\n", usize::MAX),
        ("-ERR Protocol error: invalid bulk length\r\n".into(), true)
    );
    assert_eq!(
        raw(&sock, b"*x\r\nPING\r\n", usize::MAX),
        ("-ERR Protocol error: invalid multibulk length\r\n".into(), true)
    );
    assert_eq!(
        raw(&sock, b"*1\r\n:1\r\n", usize::MAX),
        ("-ERR Protocol error: expected '$', got ':'\r\n".into(), true)
    );
    assert_eq!(cli(&sock, &["PING"]), "PONG");
}

/// A client that pipelines requests and never reads the replies: the server stops reading
/// from it once its replies fill the socket (so its memory stays bounded), and serves
/// another client meanwhile.
#[test]
fn a_client_that_never_reads_does_not_hold_up_the_others() {
    let (_server, _dir, sock) = start("blocking", |o| o);
    let big = "x".repeat(256 * 1024);
    let mut setter = UnixStream::connect(&sock).unwrap();
    setter.write_all(format!("*3\r\n$3\r\nSET\r\n$3\r\nbig\r\n${}\r\n{big}\r\n", big.len()).as_bytes()).unwrap();
    let mut ok = [0u8; 5];
    setter.read_exact(&mut ok).unwrap();
    assert_eq!(&ok, b"+OK\r\n");

    let stalled = UnixStream::connect(&sock).unwrap();
    stalled.set_nonblocking(true).unwrap();
    let req = b"GET big\r\n".repeat(1024);
    let (mut sent, limit) = (0usize, 256 << 20);
    let blocked = loop {
        match (&stalled).write(&req) {
            Ok(n) => sent += n,
            Err(e) if e.kind() == ErrorKind::WouldBlock => break true,
            Err(e) => panic!("write: {e}"),
        }
        if sent > limit {
            break false;
        }
    };
    // Each GET asks for 256 KiB: 256 MiB of requests would be 7 TiB of replies.
    assert!(blocked, "the server kept reading {sent} bytes of requests it could not answer");
    assert_eq!(cli(&sock, &["PING"]), "PONG");
    assert_eq!(cli(&sock, &["SET", "other", "v"]), "OK");
    assert_eq!(cli(&sock, &["GET", "other"]), "v");
    assert!(info(&sock, "clients")["connected_clients"].parse::<u32>().unwrap() >= 2);
}

/// A thousand connections at once are each served.
#[test]
fn a_thousand_connections_are_served() {
    let (_server, _dir, sock) = start("blocking", |o| o);
    let mut conns: Vec<UnixStream> = (0..1000).map(|_| UnixStream::connect(&sock).unwrap()).collect();
    for (i, c) in conns.iter_mut().enumerate() {
        c.write_all(format!("SET k{i} {i}\r\n").as_bytes()).unwrap();
    }
    for c in &mut conns {
        let mut ok = [0u8; 5];
        c.read_exact(&mut ok).unwrap();
        assert_eq!(&ok, b"+OK\r\n");
    }
    assert_eq!(cli(&sock, &["DBSIZE"]), "1000");
}

/// `CONFIG SET save` installs rules that start a BGSAVE by themselves once met;
/// `CONFIG GET` reads them back, and SCAN walks every key once.
#[test]
fn config_set_save_drives_an_automatic_bgsave() {
    const TEST: &str = "config_set_save_drives_an_automatic_bgsave";
    if !tools_or_skip(TEST, &["redis-cli"]) {
        return;
    }
    let (_server, dir, sock) = start("cow", |o| o);
    assert_eq!(cli(&sock, &["CONFIG", "GET", "save"]), "save");
    for i in 0..5 {
        cli(&sock, &["SET", &format!("k{i}"), "v"]);
    }
    assert_eq!(info(&sock, "persistence")["rdb_changes_since_last_save"], "5");
    assert!(!dir.path().join("dump.rdb").exists(), "no rules, no save");
    assert_eq!(cli(&sock, &["CONFIG", "SET", "save", "0 5"]), "OK");
    assert_eq!(cli(&sock, &["CONFIG", "GET", "save"]), "save\n0 5");
    let limit = Instant::now() + Duration::from_secs(60);
    while info(&sock, "persistence")["rdb_changes_since_last_save"] != "0" {
        assert!(Instant::now() < limit, "the rule never fired");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(rdb::load_file(&dir.path().join("dump.rdb")).unwrap().0.len(), 5);
    let scanned = cli(&sock, &["--scan", "--pattern", "k*"]);
    let keys: HashSet<String> = scanned.lines().map(str::to_string).collect();
    assert_eq!(keys, (0..5).map(|i| format!("k{i}")).collect::<HashSet<_>>());
}

/// The `snaplab serve` binary for `strategy` in `dir` on `sock`, with save rules set
/// ("3600 1000"), once it accepts connections.
fn spawn_serve(strategy: &str, dir: &Path, sock: &Path) -> std::process::Child {
    let child = Process::new(env!("CARGO_BIN_EXE_snaplab"))
        .args(["serve", "--strategy", strategy, "--save", "3600 1000"])
        .arg("--dir")
        .arg(dir)
        .arg("--unixsocket")
        .arg(sock)
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let limit = Instant::now() + Duration::from_secs(60);
    while UnixStream::connect(sock).is_err() {
        assert!(Instant::now() < limit, "the server never listened");
        std::thread::sleep(Duration::from_millis(20));
    }
    child
}

/// The `snaplab serve` binary: `--save` rules make `SHUTDOWN` save first, as Redis; the
/// next start loads that dump.
#[test]
fn shutdown_saves_under_rules_and_the_next_start_loads_it() {
    const TEST: &str = "shutdown_saves_under_rules_and_the_next_start_loads_it";
    if !tools_or_skip(TEST, &["redis-cli"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("s.sock");
    let spawn = || spawn_serve("sharded", dir.path(), &sock);
    let mut child = spawn();
    assert_eq!(cli(&sock, &["SET", "k", "v"]), "OK");
    assert_eq!(cli(&sock, &["HSET", "h", "f", "v"]), "1");
    let _ = Process::new("redis-cli").arg("-s").arg(&sock).arg("SHUTDOWN").output().unwrap();
    assert!(child.wait().unwrap().success());
    assert_eq!(rdb::load_file(&dir.path().join("dump.rdb")).unwrap().0.len(), 2);
    let mut child = spawn();
    assert_eq!(cli(&sock, &["HGET", "h", "f"]), "v");
    let _ = Process::new("redis-cli").arg("-s").arg(&sock).args(["SHUTDOWN", "NOSAVE"]).output().unwrap();
    assert!(child.wait().unwrap().success());
}

/// SIGTERM and SIGINT shut `snaplab serve` down as `SHUTDOWN` does, as redis-server's do:
/// with save rules set, the writes so far are saved first, the socket file is removed and
/// the exit status is 0. (With no handler, the signal killed the process: no dump, a stale
/// socket, and a nonzero status.)
#[test]
fn a_signal_saves_under_rules_and_exits_cleanly() {
    use nix::sys::signal::{Signal, kill};
    use nix::unistd::Pid;
    for sig in [Signal::SIGTERM, Signal::SIGINT] {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("s.sock");
        let mut child = spawn_serve("perkey", dir.path(), &sock);
        assert_eq!(raw(&sock, b"SET k v\r\nHSET h f v\r\n", 9).0, "+OK\r\n:1\r\n");
        kill(Pid::from_raw(child.id() as i32), sig).unwrap();
        let status = child.wait().unwrap();
        assert!(status.success(), "{sig}: {status}");
        assert!(!sock.exists(), "{sig}: the socket file is left behind");
        let (keyspace, _) = rdb::load_file(&dir.path().join("dump.rdb")).unwrap();
        assert_eq!(keyspace.len(), 2, "{sig}: the writes before the signal were saved");
    }
}

/// Every type, edge-case strings, fractional and huge scores, expiries, several databases.
fn every_type_keyspace() -> Keyspace {
    let mut ks = Keyspace::new();
    let b = |s: &str| s.as_bytes().to_vec();
    ks.insert(0, b("str"), Entry::new(Value::String(b("hello"))));
    ks.insert(0, b("int"), Entry::new(Value::String(b("-9223372036854775808"))));
    ks.insert(0, b("bin"), Entry::new(Value::String(vec![0, 255, 13, 10])));
    ks.insert(0, b("ttl"), Entry::expiring(Value::String(b("v")), FAR_FUTURE_MS));
    ks.insert(0, b("list"), Entry::new(Value::List(Box::new(VecDeque::from([b("a"), b("1"), b(""), b("a")])))));
    let big_list: VecDeque<Vec<u8>> = (0..300).map(|i| format!("e{i}").into_bytes()).collect();
    ks.insert(1, b("biglist"), Entry::expiring(Value::List(Box::new(big_list)), FAR_FUTURE_MS));
    ks.insert(0, b("intset"), Entry::new(Value::Set(Box::new(HashSet::from([b("1"), b("2"), b("300000")])))));
    let big_set: HashSet<Vec<u8>> = (0..200).map(|i| format!("m{i}").into_bytes()).collect();
    ks.insert(2, b("bigset"), Entry::new(Value::Set(Box::new(big_set))));
    ks.insert(0, b("hash"), Entry::new(Value::Hash(Box::new(HashMap::from([(b("f"), b("v")), (b("n"), b("12"))])))));
    let big_hash: HashMap<Vec<u8>, Vec<u8>> =
        (0..200).map(|i| (format!("f{i}").into_bytes(), b("x").repeat(i))).collect();
    ks.insert(15, b("bighash"), Entry::new(Value::Hash(Box::new(big_hash))));
    let scores = [1.0, 0.1, -2.5, 1e-7, 3.0e20, 123456789.125, f64::INFINITY, f64::NEG_INFINITY];
    let zset: HashMap<Vec<u8>, f64> =
        scores.iter().enumerate().map(|(i, s)| (format!("z{i}").into_bytes(), *s)).collect();
    ks.insert(0, b("zset"), Entry::new(Value::ZSet(Box::new(zset))));
    let big_zset: HashMap<Vec<u8>, f64> = (0..200).map(|i| (format!("z{i}").into_bytes(), i as f64 / 3.0)).collect();
    ks.insert(3, b("bigzset"), Entry::new(Value::ZSet(Box::new(big_zset))));
    ks
}

/// Our DEBUG DIGEST (served, and computed from the keyspace) equals redis-server's for the
/// same dump: a generated every-type dump and every corpus file redis-server 7.0.15 loads
/// whose values we model (streams and hashes with field expiries are carried verbatim, and
/// dumps with keys already expired are left out: Redis drops those on load).
#[test]
fn debug_digest_equals_redis_servers() {
    const TEST: &str = "debug_digest_equals_redis_servers";
    if !tools_or_skip(TEST, &["redis-server"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let generated = dir.path().join("every-type.rdb");
    snaplab::core::write_snapshot(&every_type_keyspace(), &generated, &SaveOptions::default(), "test").unwrap();
    let mut files = vec![generated.clone()];
    // The corpus: `$SNAPLAB_CORPUS`, else `../shared/rdb-corpus` beside the repository.
    let corpus = std::env::var_os("SNAPLAB_CORPUS")
        .map_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/rdb-corpus"), PathBuf::from);
    if !corpus.is_dir() {
        skipped(TEST, &format!("the RDB corpus is not at {} (set SNAPLAB_CORPUS)", corpus.display()));
    }
    let mut stack = vec![corpus];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "rdb") {
                files.push(p);
            }
        }
    }
    files.sort();
    let now = snaplab::core::unix_ms_now();
    let mut compared = 0;
    for file in &files {
        let Ok((ks, _)) = rdb::load_file(file) else { continue };
        let modelled = (0..snaplab::core::DB_COUNT)
            .all(|db| ks.db(db).values().all(|e| !matches!(e.value, Value::Opaque(_)) && !e.is_expired(now)));
        if !modelled {
            continue;
        }
        let Ok(redis) = RedisServer::start_with_dump(file) else { continue };
        let theirs = redis.digest().unwrap();
        assert_eq!(digest::dataset_digest(&ks).unwrap(), theirs, "{}", file.display());
        compared += 1;
    }
    assert!(compared >= 1, "the generated dump was compared");
    eprintln!("debug_digest_equals_redis_servers: {compared} of {} dumps compared", files.len());

    // And through the server, for the generated dump.
    let (_server, _d, sock) = start("perkey", |o| ServeOptions { input: Some(generated.clone()), ..o });
    if on_path("redis-cli") {
        let redis = RedisServer::start_with_dump(&generated).unwrap();
        assert_eq!(cli(&sock, &["DEBUG", "DIGEST"]), redis.digest().unwrap());
    }
}

/// Under save rules, a failed BGSAVE makes writes fail with `-MISCONF` (reads still work)
/// and INFO says why; without rules the same failure refuses nothing, as in Redis.
#[test]
fn a_failed_save_under_rules_refuses_writes_with_misconf() {
    use snaplab::harness::faults::{Fault, FaultyIo};
    if !tools_or_skip("a_failed_save_under_rules_refuses_writes_with_misconf", &["redis-cli"]) {
        return;
    }
    let failing = || SaveOptions { io: Arc::new(FaultyIo::new(Fault::Fsync)), ..SaveOptions::default() };
    let (_server, _dir, sock) =
        start("clone", |o| ServeOptions { save: "3600 1000".into(), save_options: failing(), ..o });
    assert_eq!(raw(&sock, b"SET k v\r\nBGSAVE\r\n", 33).0, "+OK\r\n+Background saving started\r\n");
    let persistence = wait_for_bgsave(&sock);
    assert_eq!(persistence["rdb_last_bgsave_status"], "err");
    let (reply, _) = raw(&sock, b"SET k2 v\r\n", 8);
    assert!(reply.starts_with("-MISCONF "), "{reply}");
    assert_eq!(raw(&sock, b"GET k\r\n", 7).0, "$1\r\nv\r\n");

    let (_server, _dir, sock) = start("clone", |o| ServeOptions { save_options: failing(), ..o });
    assert_eq!(raw(&sock, b"BGSAVE\r\n", 28).0, "+Background saving started\r\n");
    assert_eq!(wait_for_bgsave(&sock)["rdb_last_bgsave_status"], "err");
    assert_eq!(raw(&sock, b"SET k v\r\n", 5).0, "+OK\r\n");
}

/// The `redis` crate with its default settings (it announces itself with `CLIENT SETINFO`)
/// writes and reads every type, pipelined, and gets Redis's errors as errors.
#[test]
fn the_redis_crate_is_served() {
    use redis::{ConnectionAddr, IntoConnectionInfo};
    let (_server, _dir, sock) = start("pingpong", |o| o);
    let client = redis::Client::open(ConnectionAddr::Unix(sock).into_connection_info().unwrap()).unwrap();
    let mut con = client.get_connection().unwrap();
    let (set, len, added, fields): (String, i64, i64, i64) = redis::pipe()
        .cmd("SET")
        .arg("k")
        .arg(b"v\x00w".as_slice())
        .cmd("RPUSH")
        .arg("l")
        .arg(&["a", "b"])
        .cmd("SADD")
        .arg("s")
        .arg(&["x", "x", "y"])
        .cmd("HSET")
        .arg("h")
        .arg(&["f", "1", "g", "2"])
        .query(&mut con)
        .unwrap();
    assert_eq!((set.as_str(), len, added, fields), ("OK", 2, 2, 2));
    let v: Vec<u8> = redis::cmd("GET").arg("k").query(&mut con).unwrap();
    assert_eq!(v, b"v\x00w");
    let h: HashMap<String, String> = redis::cmd("HGETALL").arg("h").query(&mut con).unwrap();
    assert_eq!(h, HashMap::from([("f".into(), "1".into()), ("g".into(), "2".into())]));
    let e = redis::cmd("LPUSH").arg("h").arg("x").query::<i64>(&mut con).unwrap_err();
    assert_eq!(e.code(), Some("WRONGTYPE"), "{e}");
    let z: i64 = redis::cmd("ZADD").arg("z").arg(1.5).arg("m").query(&mut con).unwrap();
    assert_eq!(z, 1);
    let score: f64 = redis::cmd("ZSCORE").arg("z").arg("m").query(&mut con).unwrap();
    assert_eq!(score, 1.5);
}
