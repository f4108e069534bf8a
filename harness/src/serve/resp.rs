//! The request side of RESP2 (the Redis serialization protocol), as Redis's
//! `processMultibulkBuffer` and `processInlineBuffer` (src/networking.c) read it: a request
//! is an array of bulk strings (`*2\r\n$3\r\nGET\r\n$1\r\nk\r\n`), or one line of words
//! separated by spaces (an "inline" command, what a person types into telnet), and the
//! replies are written by [`Out`].
//!
//! The parser is hand-written rather than taken from a RESP crate because the request side
//! is this small and its limits are the point: every length is checked against Redis's
//! limits *before* anything is allocated for it, so a header claiming a 4 GiB string costs
//! nothing, and the bytes of a bulk string are only ever those that really arrived.
//!
//! We tried the maintained `redis-protocol` crate (6.0, its RESP2 `decode_bytes_mut` over
//! a `bytes::BytesMut`) in its place and kept this parser, for three reasons:
//! - it cannot refuse an over-long bulk string from its header: a `$4294967296` header is
//!   "incomplete" to it, so the connection would buffer up to the query-buffer limit
//!   before anything could refuse it, where Redis (and this parser) refuse at once;
//! - it reads only RESP frames, not the inline commands (`PING\r\n`) Redis also accepts,
//!   and accepts frames a request may not be (an integer inside the argument array);
//! - it was slower: splitting 16 pipelined SETs (what `redis-benchmark -P 16` sends) into
//!   arguments took 584 - 713 ns per request with the crate against 339 - 501 ns with this
//!   parser (3 runs each, side by side, release build, on a 2-core machine at load 13).

use std::ops::Range;

use thiserror::Error;

/// Redis's `proto-max-bulk-len` default: the largest bulk string a request may carry
/// (512 MiB, src/config.c).
pub const PROTO_MAX_BULK_LEN: u64 = 512 * 1024 * 1024;

/// The most arguments one request may have (Redis refuses a multibulk length above
/// `INT_MAX`; src/networking.c `processMultibulkBuffer`).
pub const MAX_MULTIBULK_LEN: u64 = i32::MAX as u64;

/// The longest inline command line, or array/bulk header line (Redis `PROTO_INLINE_MAX_SIZE`,
/// 64 KiB, src/server.h).
pub const PROTO_INLINE_MAX_SIZE: usize = 64 * 1024;

/// Why a request could not be read. The text after `ERR ` is Redis's own; the connection
/// is closed after the error reply, as Redis does (`setProtocolError`).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ProtocolError {
    /// The `*<n>` header is not a number, or is out of range.
    #[error("Protocol error: invalid multibulk length")]
    MultibulkLength,
    /// A `$<n>` header is not a number, or is negative, or is over [`PROTO_MAX_BULK_LEN`].
    #[error("Protocol error: invalid bulk length")]
    BulkLength,
    /// An array element did not start with `$`.
    #[error("Protocol error: expected '$', got '{0}'")]
    ExpectedDollar(char),
    /// A header or inline line longer than [`PROTO_INLINE_MAX_SIZE`] without its `\r\n`.
    #[error("Protocol error: too big {0} request")]
    TooBig(&'static str),
    /// A bulk string not followed by `\r\n`.
    #[error("Protocol error: bulk string at byte {0} is not followed by CRLF")]
    MissingCrlf(usize),
}

/// One complete request, its arguments copied out (for callers that keep them; the server
/// itself reads them in place, see [`parse_from`]).
#[derive(Debug, PartialEq, Eq)]
pub struct Request {
    /// The command name and its arguments.
    pub args: Vec<Vec<u8>>,
    /// Bytes consumed from the front of the buffer.
    pub consumed: usize,
}

/// The line starting at `at`, without its `\r\n`, and the offset after it; `None` if the
/// line has not fully arrived.
fn line<'a>(buf: &'a [u8], at: usize, what: &'static str) -> Result<Option<(&'a [u8], usize)>, ProtocolError> {
    let rest = &buf[at..];
    match rest.iter().position(|&b| b == b'\n') {
        Some(nl) => {
            let end = if nl > 0 && rest[nl - 1] == b'\r' { nl - 1 } else { nl };
            Ok(Some((&rest[..end], at + nl + 1)))
        }
        None if rest.len() > PROTO_INLINE_MAX_SIZE => Err(ProtocolError::TooBig(what)),
        None => Ok(None),
    }
}

/// A length header's number: ASCII digits with an optional leading `-`, as Redis's
/// `string2ll` reads them.
fn number(digits: &[u8]) -> Option<i64> {
    std::str::from_utf8(digits).ok()?.parse().ok().filter(|_| !digits.starts_with(b"+"))
}

/// A multibulk request read in part: how many arguments it has and the offset (from the
/// request's first byte) where the next unread one starts; the ranges of those already read
/// stay in the caller's `spans`. [`parse_from`] keeps it between reads so that a request
/// arriving in many pieces is read once, not again from its first byte on every piece,
/// which would be quadratic in its size (Redis keeps the same state in its client:
/// `multibulklen`, `bulklen`, src/networking.c).
#[derive(Debug, Default)]
pub struct Partial {
    count: usize,
    next: usize,
}

/// Read one request from the front of `buf`: `Ok(None)` if it has not fully arrived yet.
/// Empty inline lines (a bare `\r\n`) are skipped and reported as a request with no
/// arguments, which the caller ignores, as Redis does.
///
/// # Errors
/// [`ProtocolError`] for a malformed or over-limit request; the caller replies with it and
/// closes the connection.
pub fn parse(buf: &[u8]) -> Result<Option<Request>, ProtocolError> {
    let mut spans = Vec::new();
    let consumed = parse_from(buf, &mut None, &mut spans)?;
    Ok(consumed.map(|consumed| Request { args: spans.into_iter().map(|r| buf[r].to_vec()).collect(), consumed }))
}

/// Read one request from the front of `buf` without copying it: on `Ok(Some(consumed))`,
/// `spans` holds where each argument lies in `buf` (byte ranges), and the request took
/// `buf[..consumed]`. A request is read in place because most are run and forgotten (a
/// GET's key is only looked up); the server copies only what it keeps (a SET's key and
/// value), so a request costs no allocation of its own.
///
/// Resuming: `partial` and `spans` are what an earlier call on the same request (starting
/// at `buf[0]` then as now) left, and are left for the next call when this one returns
/// `Ok(None)`; `partial` is `None` after a whole request or an error. A call with no
/// `partial` starts afresh and clears `spans`.
///
/// # Errors
/// As [`parse`].
pub fn parse_from(
    buf: &[u8],
    partial: &mut Option<Partial>,
    spans: &mut Vec<Range<usize>>,
) -> Result<Option<usize>, ProtocolError> {
    let mut p = match partial.take() {
        Some(p) => p,
        None => {
            spans.clear();
            if buf.is_empty() {
                return Ok(None);
            }
            if buf[0] != b'*' {
                let Some((text, next)) = line(buf, 0, "inline")? else { return Ok(None) };
                // The words of the line (it starts at buf[0], so its offsets are buf's).
                let mut at = 0;
                while at < text.len() {
                    let start = at + text[at..].iter().take_while(|b| b.is_ascii_whitespace()).count();
                    at = start + text[start..].iter().take_while(|b| !b.is_ascii_whitespace()).count();
                    if start < at {
                        spans.push(start..at);
                    }
                }
                return Ok(Some(next));
            }
            let Some((header, at)) = line(buf, 1, "mbulk count")? else { return Ok(None) };
            let count = number(header).ok_or(ProtocolError::MultibulkLength)?;
            if count > MAX_MULTIBULK_LEN as i64 {
                return Err(ProtocolError::MultibulkLength);
            }
            if count <= 0 {
                // Redis treats `*0` and `*-1` as an empty request and moves on.
                return Ok(Some(at));
            }
            // Room from what has arrived, never from the header: a header claiming two
            // billion arguments must not reserve two billion slots.
            spans.reserve((count as usize).min(buf.len() / 4 + 1));
            Partial { count: count as usize, next: at }
        }
    };
    while spans.len() < p.count {
        match bulk(buf, p.next)? {
            Some((arg, next)) => {
                spans.push(arg);
                p.next = next;
            }
            None => {
                *partial = Some(p);
                return Ok(None);
            }
        }
    }
    Ok(Some(p.next))
}

/// Where the bulk string (`$<len>\r\n<bytes>\r\n`) starting at `at` has its bytes, and the
/// offset after it; `None` if it has not fully arrived.
fn bulk(buf: &[u8], at: usize) -> Result<Option<(Range<usize>, usize)>, ProtocolError> {
    let Some(&first) = buf.get(at) else { return Ok(None) };
    if first != b'$' {
        return Err(ProtocolError::ExpectedDollar(first as char));
    }
    let Some((header, start)) = line(buf, at + 1, "bulk count")? else { return Ok(None) };
    let len = number(header).ok_or(ProtocolError::BulkLength)?;
    if len < 0 || len as u64 > PROTO_MAX_BULK_LEN {
        return Err(ProtocolError::BulkLength);
    }
    let end = start + len as usize;
    if buf.len() < end + 2 {
        return Ok(None);
    }
    if &buf[end..end + 2] != b"\r\n" {
        return Err(ProtocolError::MissingCrlf(end));
    }
    Ok(Some((start..end, end + 2)))
}

/// A reply buffer: RESP2 replies appended in order.
#[derive(Debug, Default)]
pub struct Out {
    /// The encoded bytes not yet written to the client.
    pub buf: Vec<u8>,
}

impl Out {
    /// `+<s>`.
    pub fn simple(&mut self, s: &str) {
        self.buf.push(b'+');
        self.buf.extend_from_slice(s.as_bytes());
        self.buf.extend_from_slice(b"\r\n");
    }

    /// `+OK`.
    pub fn ok(&mut self) {
        self.simple("OK");
    }

    /// `-<msg>`: `msg` starts with its Redis prefix (`ERR`, `WRONGTYPE`, `MISCONF`, ...).
    /// Line breaks in it become spaces, since an error reply is one line.
    pub fn error(&mut self, msg: &str) {
        self.buf.push(b'-');
        self.buf.extend(msg.bytes().map(|b| if b == b'\r' || b == b'\n' { b' ' } else { b }));
        self.buf.extend_from_slice(b"\r\n");
    }

    /// `<prefix><n>\r\n`, the number written straight into the buffer: every GET reply
    /// has such a header, and a `format!` there would allocate a string per reply.
    fn header(&mut self, prefix: u8, n: i64) {
        let mut digits = [0u8; 20];
        let mut at = digits.len();
        let mut rest = n.unsigned_abs();
        loop {
            at -= 1;
            digits[at] = b'0' + (rest % 10) as u8;
            rest /= 10;
            if rest == 0 {
                break;
            }
        }
        self.buf.push(prefix);
        if n < 0 {
            self.buf.push(b'-');
        }
        self.buf.extend_from_slice(&digits[at..]);
        self.buf.extend_from_slice(b"\r\n");
    }

    /// `:<n>`.
    pub fn int(&mut self, n: i64) {
        self.header(b':', n);
    }

    /// `$<len>\r\n<bytes>\r\n`.
    pub fn bulk(&mut self, b: &[u8]) {
        self.header(b'$', b.len() as i64);
        self.buf.extend_from_slice(b);
        self.buf.extend_from_slice(b"\r\n");
    }

    /// `$-1`, the nil bulk string.
    pub fn nil(&mut self) {
        self.buf.extend_from_slice(b"$-1\r\n");
    }

    /// `*<n>`, the header of an array whose `n` elements follow.
    pub fn array(&mut self, n: usize) {
        self.header(b'*', n as i64);
    }

    /// An array of bulk strings.
    pub fn bulks<'a>(&mut self, items: impl ExactSizeIterator<Item = &'a [u8]>) {
        self.array(items.len());
        for i in items {
            self.bulk(i);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(r: &Request) -> Vec<&str> {
        r.args.iter().map(|a| std::str::from_utf8(a).unwrap()).collect()
    }

    /// A request is read once whole, and not before: every strict prefix is incomplete.
    #[test]
    fn a_request_in_pieces_is_resumed_not_reread() {
        let whole: &[u8] = b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nhello\r\nPING\r\n";
        let (mut partial, mut spans) = (None, Vec::new());
        // Cut inside the third argument: the first two are kept, not read again.
        assert_eq!(parse_from(&whole[..24], &mut partial, &mut spans), Ok(None));
        assert!(partial.is_some());
        assert_eq!(spans, [8..11, 17..18]);
        // A resumed read that still lacks the end keeps the state.
        assert_eq!(parse_from(&whole[..27], &mut partial, &mut spans), Ok(None));
        assert_eq!(spans.len(), 2);
        assert_eq!(parse_from(whole, &mut partial, &mut spans), Ok(Some(whole.len() - 6)));
        let words: Vec<&[u8]> = spans.iter().map(|r| &whole[r.clone()]).collect();
        assert_eq!(words, [&b"SET"[..], b"k", b"hello"]);
        assert!(partial.is_none(), "a whole request leaves no state");
        // The same bytes cut at every offset give the same request.
        let want = spans.clone();
        for cut in 0..whole.len() - 6 {
            let (mut p, mut s) = (None, Vec::new());
            assert_eq!(parse_from(&whole[..cut], &mut p, &mut s), Ok(None), "cut at {cut}");
            assert_eq!(parse_from(whole, &mut p, &mut s), Ok(Some(whole.len() - 6)), "cut at {cut}");
            assert_eq!(s, want, "cut at {cut}");
        }
        // A fresh request forgets the spans of the last one.
        assert_eq!(parse_from(b"PING\r\n", &mut None, &mut spans), Ok(Some(6)));
        assert_eq!((spans.len(), spans[0].clone()), (1, 0..4));
    }

    #[test]
    fn reads_a_request_only_when_whole() {
        let req = b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nhello\r\nPING\r\n";
        let first = req.len() - 6;
        for n in 0..first {
            assert_eq!(parse(&req[..n]), Ok(None), "prefix of {n} bytes");
        }
        let r = parse(req).unwrap().unwrap();
        assert_eq!(args(&r), ["SET", "k", "hello"]);
        assert_eq!(r.consumed, first);
        let r = parse(&req[first..]).unwrap().unwrap();
        assert_eq!(args(&r), ["PING"]);
        let r = parse(b"  SET  k\tv \r\n").unwrap().unwrap();
        assert_eq!((args(&r), r.consumed), (vec!["SET", "k", "v"], 13));
        assert_eq!(parse(b"\r\n"), Ok(Some(Request { args: vec![], consumed: 2 })));
    }

    /// Over-limit and malformed lengths are refused from the header alone.
    #[test]
    fn refuses_bad_lengths_from_the_header() {
        assert_eq!(parse(b"*1\r\n$4294967296\r\n"), Err(ProtocolError::BulkLength));
        assert_eq!(parse(b"*1\r\n$536870913\r\n"), Err(ProtocolError::BulkLength));
        assert_eq!(parse(b"*1\r\n$-5\r\n"), Err(ProtocolError::BulkLength));
        assert_eq!(parse(b"*1\r\n$abc\r\n"), Err(ProtocolError::BulkLength));
        assert_eq!(parse(b"*x\r\n"), Err(ProtocolError::MultibulkLength));
        assert_eq!(parse(b"*99999999999\r\n"), Err(ProtocolError::MultibulkLength));
        assert_eq!(parse(b"*1\r\n:1\r\n"), Err(ProtocolError::ExpectedDollar(':')));
        assert_eq!(parse(b"*1\r\n$1\r\nab\r\n"), Err(ProtocolError::MissingCrlf(9)));
        // 512 MiB exactly is allowed: the parser waits for it.
        assert_eq!(parse(b"*1\r\n$536870912\r\n"), Ok(None));
        let long = vec![b'a'; PROTO_INLINE_MAX_SIZE + 1];
        assert_eq!(parse(&long), Err(ProtocolError::TooBig("inline")));
    }

    /// Integer and length headers are written as Redis writes them, negative and extreme
    /// values included.
    #[test]
    fn writes_number_headers() {
        let mut out = Out::default();
        out.int(0);
        out.int(-1);
        out.int(i64::MIN);
        out.int(i64::MAX);
        out.bulk(b"hello");
        out.array(12);
        out.nil();
        let want = format!(":0\r\n:-1\r\n:{}\r\n:{}\r\n$5\r\nhello\r\n*12\r\n$-1\r\n", i64::MIN, i64::MAX);
        assert_eq!(String::from_utf8(out.buf).unwrap(), want);
    }

    /// A header claiming two billion arguments reserves room only for what arrived.
    #[test]
    fn a_huge_count_reserves_nothing() {
        assert_eq!(parse(b"*2147483647\r\n$1\r\na\r\n"), Ok(None));
    }
}
