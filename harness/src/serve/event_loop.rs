//! One thread serves every connection, as Redis's event loop does (src/ae.c over epoll):
//! the thread waits for sockets that are ready ([`mio`], epoll on Linux), reads what each
//! sent, runs every whole request in it (pipelining), and writes the replies, never
//! waiting on any one socket.
//!
//! Why one thread: a thread per connection costs a sleep and a wake-up for every pipelined
//! batch of every client, and on two cores those switches were about a sixth of the
//! server's time (measured with `perf record` under `redis-benchmark -P 16`, 50 clients).
//! The price is Redis's: a command that waits (a strategy whose writes wait for its save,
//! `SAVE`, a slow `KEYS`) holds every client, not only its own.
//!
//! When nothing is ready the loop sleeps in `epoll_wait`, and a client's next write wakes
//! it: a cross-CPU wake-up the client pays for. A server that needs less CPU per request
//! sleeps more often, so on two cores, where the benchmark client is the bottleneck, it can
//! get fewer requests through than a slower one (README, "snaplab serve", has the
//! measurement). Polling for a while before sleeping avoids that at the cost of a core a
//! save may need: off by default, as in Redis; `--busy-poll-us` turns it on
//! ([`ServeOptions::busy_poll`](super::ServeOptions::busy_poll)), to measure the effect.
//!
//! Readiness is edge-triggered: epoll reports a socket when it becomes readable or
//! writable, not while it stays so. So a connection is driven until its socket says
//! `WouldBlock` (the next edge will wake it), with one exception for fairness: after
//! [`FAIR_SHARE`] bytes read in one turn, it goes to the back of a queue of connections
//! that still have work, served before the loop waits again.
//!
//! Bounded memory per client: a connection stops running requests once [`FLUSH_AT`] bytes
//! of replies are pending and stops reading once any reply waits for the socket, so a
//! client that never reads its replies is no longer read, and its memory stays at what it
//! had sent plus about one reply. Redis instead grows the output buffer up to
//! `client-output-buffer-limit` (unlimited for normal clients by default).

use std::collections::{HashMap, VecDeque};
use std::io::{self, ErrorKind, Read, Write};
use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use mio::event::Source;
use mio::net::{TcpListener, TcpStream, UnixListener, UnixStream};
use mio::{Events, Interest, Poll, Registry, Token};

use super::resp::{self, Out};
use super::{FLUSH_AT, QUERY_BUFFER_LIMIT, READ_CHUNK, Session, Shared, execute};

/// Bytes one connection may read in one turn before the others get theirs.
const FAIR_SHARE: usize = 16 * READ_CHUNK;
/// Buffer capacity (bytes) a connection keeps once its input or its replies are used up.
const KEEP_CAPACITY: usize = 4 * READ_CHUNK;
/// How soon a listener whose accept failed (out of file descriptors) is tried again.
const ACCEPT_RETRY: Duration = Duration::from_millis(10);
/// How long the loop waits for events before it looks at the stop flag again.
const POLL_TIMEOUT: Duration = Duration::from_millis(100);
const UNIX: Token = Token(0);
const TCP: Token = Token(1);
/// The first token given to a connection; tokens are never reused.
const FIRST_CONNECTION: usize = 2;

/// A client's socket, of either kind.
enum Stream {
    Unix(UnixStream),
    Tcp(TcpStream),
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Unix(s) => s.read(buf),
            Stream::Tcp(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Unix(s) => s.write(buf),
            Stream::Tcp(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Stream {
    fn source(&mut self) -> &mut dyn Source {
        match self {
            Stream::Unix(s) => s,
            Stream::Tcp(s) => s,
        }
    }
}

/// One client: its socket, its session, what it sent that is not yet run, and the replies
/// not yet written (`out.buf[sent..]`).
struct Conn {
    stream: Stream,
    session: Session,
    input: Vec<u8>,
    out: Out,
    sent: usize,
    /// The request at the front of `input` as far as it was read (see [`resp::Partial`]).
    partial: Option<resp::Partial>,
    /// Where that request's arguments lie in `input` (see [`resp::parse_from`]); kept
    /// from request to request so that reading one allocates nothing.
    spans: Vec<Range<usize>>,
    /// The client shut down its write side (an event said `is_read_closed`). Its end of
    /// stream may sit behind data already read, with no further edge to announce it.
    peer_closed: bool,
}

/// What a connection needs after a turn.
enum Next {
    /// Its socket said `WouldBlock`: wait for the next readiness edge.
    Wait,
    /// It used its fair share with work left: serve it again before waiting.
    Again,
    /// Closed (by the client, `QUIT`, `SHUTDOWN` or a protocol error).
    Close,
}

/// Serve every connection of `unix` and `tcp` until `shared.stopping` is set.
pub(super) fn run(shared: &Arc<Shared>, unix: Option<UnixListener>, tcp: Option<TcpListener>) -> io::Result<()> {
    let mut poll = Poll::new()?;
    let mut listeners: Vec<(Token, Listener)> = Vec::new();
    if let Some(mut l) = unix {
        poll.registry().register(&mut l, UNIX, Interest::READABLE)?;
        listeners.push((UNIX, Listener::Unix(l)));
    }
    if let Some(mut l) = tcp {
        poll.registry().register(&mut l, TCP, Interest::READABLE)?;
        listeners.push((TCP, Listener::Tcp(l)));
    }
    let mut events = Events::with_capacity(1024);
    let mut conns: HashMap<Token, Conn> = HashMap::new();
    let mut again: VecDeque<Token> = VecDeque::new();
    let mut next_token = FIRST_CONNECTION;
    let mut chunk = vec![0u8; READ_CHUNK];
    // Listeners whose last accept failed for want of a file descriptor: their waiting
    // connections raise no new edge, so they are retried until accept says `WouldBlock`.
    let mut accept_again: Vec<Token> = Vec::new();
    let mut ready: Vec<Token> = Vec::new();
    while !shared.stopping.load(Ordering::Acquire) {
        // A signal interrupts the wait below (or the wait times out within POLL_TIMEOUT).
        super::on_signal(shared);
        if shared.stopping.load(Ordering::Acquire) {
            break;
        }
        // Connections with work left are served before the loop sleeps.
        let timeout = if !again.is_empty() {
            Duration::ZERO
        } else if !accept_again.is_empty() {
            ACCEPT_RETRY
        } else {
            POLL_TIMEOUT
        };
        match wait(&mut poll, &mut events, timeout, shared.busy_poll) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
        // Reused across rounds: no allocation per poll.
        ready.clear();
        ready.extend(again.drain(..));
        let mut accept_now = std::mem::take(&mut accept_again);
        accept_now.extend(events.iter().map(|e| e.token()).filter(|t| matches!(*t, UNIX | TCP)));
        for (t, l) in listeners.iter_mut() {
            if accept_now.contains(t) && !accept_all(shared, l, poll.registry(), &mut conns, &mut next_token) {
                accept_again.push(*t);
            }
        }
        for event in &events {
            match event.token() {
                UNIX | TCP => {}
                t => {
                    if (event.is_read_closed() || event.is_error())
                        && let Some(conn) = conns.get_mut(&t)
                    {
                        conn.peer_closed = true;
                    }
                    ready.push(t)
                }
            }
        }
        for &token in &ready {
            if shared.stopping.load(Ordering::Acquire) {
                break;
            }
            let Some(conn) = conns.get_mut(&token) else { continue };
            match drive(shared, conn, &mut chunk) {
                Next::Wait => {}
                Next::Again => {
                    if !again.contains(&token) {
                        again.push_back(token);
                    }
                }
                Next::Close => close(shared, poll.registry(), &mut conns, token),
            }
        }
    }
    Ok(())
}

/// Wait up to `timeout` for events. With a nonzero `busy_poll`, first look again and again
/// without sleeping, for up to that long: a client's next request then finds the loop
/// awake, and its write wakes nobody.
fn wait(poll: &mut Poll, events: &mut Events, timeout: Duration, busy_poll: Duration) -> io::Result<()> {
    if !busy_poll.is_zero() && !timeout.is_zero() {
        let until = Instant::now() + busy_poll;
        loop {
            poll.poll(events, Some(Duration::ZERO))?;
            if !events.is_empty() {
                return Ok(());
            }
            if Instant::now() >= until {
                break;
            }
            std::hint::spin_loop();
        }
    }
    poll.poll(events, Some(timeout))
}

/// A listening socket, of either kind.
enum Listener {
    Unix(UnixListener),
    Tcp(TcpListener),
}

/// Accept every pending connection (edge-triggered: one event may stand for many). Returns
/// whether the listener was emptied (`WouldBlock`); `false` when an accept failed otherwise
/// (out of file descriptors), and connections may still be waiting.
fn accept_all(
    shared: &Shared,
    listener: &mut Listener,
    registry: &Registry,
    conns: &mut HashMap<Token, Conn>,
    next_token: &mut usize,
) -> bool {
    loop {
        let stream = match listener {
            Listener::Unix(l) => l.accept().map(|(s, _)| Stream::Unix(s)),
            Listener::Tcp(l) => l.accept().map(|(s, _)| {
                let _ = s.set_nodelay(true);
                Stream::Tcp(s)
            }),
        };
        let mut stream = match stream {
            Ok(s) => s,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return e.kind() == ErrorKind::WouldBlock,
        };
        let token = Token(*next_token);
        *next_token += 1;
        // Both interests at once, so that a connection is never re-registered: a writable
        // edge resumes one whose replies filled the socket.
        if registry.register(stream.source(), token, Interest::READABLE | Interest::WRITABLE).is_err() {
            continue;
        }
        let id = shared.next_client_id.fetch_add(1, Ordering::Relaxed);
        shared.clients.fetch_add(1, Ordering::Relaxed);
        let session = Session { id, db: 0, name: None, close: false };
        conns.insert(
            token,
            Conn {
                stream,
                session,
                input: Vec::new(),
                out: Out::default(),
                sent: 0,
                partial: None,
                spans: Vec::new(),
                peer_closed: false,
            },
        );
    }
}

fn close(shared: &Shared, registry: &Registry, conns: &mut HashMap<Token, Conn>, token: Token) {
    if let Some(mut conn) = conns.remove(&token) {
        let _ = registry.deregister(conn.stream.source());
        shared.clients.fetch_sub(1, Ordering::Relaxed);
    }
}

/// One turn of a connection: write what is pending, run the requests already read, read
/// more, until the socket would block, the connection closes, or its fair share is used.
fn drive(shared: &Shared, c: &mut Conn, chunk: &mut [u8]) -> Next {
    let mut read_this_turn = 0;
    // A read shorter than the buffer emptied the socket: data arriving later raises a new
    // edge, so the read that would only say `WouldBlock` can be skipped (a system call per
    // pipelined batch). Not when the client has shut down its side: the end of stream came
    // with the last data and raises no edge of its own, so only the read that returns 0
    // sees it.
    let mut drained = false;
    loop {
        while c.sent < c.out.buf.len() {
            match c.stream.write(&c.out.buf[c.sent..]) {
                Ok(0) => return Next::Close,
                Ok(n) => c.sent += n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Next::Wait,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return Next::Close,
            }
        }
        c.out.buf.clear();
        c.sent = 0;
        // An idle connection keeps no more than a small buffer: one large reply must not
        // hold its size for the rest of the connection's life.
        c.out.buf.shrink_to(KEEP_CAPACITY);
        if c.session.close {
            return Next::Close;
        }
        run_requests(shared, c);
        if !c.out.buf.is_empty() {
            continue;
        }
        if c.input.len() > QUERY_BUFFER_LIMIT {
            c.out.error("ERR Protocol error: the query buffer is over its 1 GiB limit");
            c.session.close = true;
            continue;
        }
        if drained && !c.peer_closed {
            return Next::Wait;
        }
        if read_this_turn >= FAIR_SHARE {
            return Next::Again;
        }
        match c.stream.read(chunk) {
            Ok(0) => return Next::Close,
            Ok(n) => {
                read_this_turn += n;
                drained = n < chunk.len();
                c.input.extend_from_slice(&chunk[..n]);
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => return Next::Wait,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return Next::Close,
        }
    }
}

/// Run the whole requests at the front of `c.input`, until [`FLUSH_AT`] bytes of replies
/// are pending or the connection is to close. A malformed request gets an error reply and
/// closes the connection, as Redis does.
fn run_requests(shared: &Shared, c: &mut Conn) {
    let mut at = 0;
    // Nothing runs once SHUTDOWN has set the stop flag: a write acknowledged after the final
    // save would be lost (Redis exits inside SHUTDOWN).
    while c.out.buf.len() < FLUSH_AT && !c.session.close && !shared.stopping.load(Ordering::Acquire) {
        let request = &c.input[at..];
        match resp::parse_from(request, &mut c.partial, &mut c.spans) {
            Ok(Some(consumed)) => {
                at += consumed;
                if !c.spans.is_empty() {
                    shared.commands.fetch_add(1, Ordering::Relaxed);
                    // The argument list of a request with few arguments (nearly all of
                    // them) lives on the stack: no allocation per request.
                    let mut few: [&[u8]; 8] = [&[]; 8];
                    let many: Vec<&[u8]>;
                    let args: &[&[u8]] = if c.spans.len() <= few.len() {
                        for (arg, span) in few.iter_mut().zip(&c.spans) {
                            *arg = &request[span.clone()];
                        }
                        &few[..c.spans.len()]
                    } else {
                        many = c.spans.iter().map(|span| &request[span.clone()]).collect();
                        &many
                    };
                    execute(shared, &mut c.session, args, &mut c.out);
                }
            }
            Ok(None) => break,
            Err(e) => {
                c.out.error(&format!("ERR {e}"));
                c.session.close = true;
            }
        }
    }
    c.input.drain(..at);
    if c.input.is_empty() {
        c.input.shrink_to(KEEP_CAPACITY);
    }
}
