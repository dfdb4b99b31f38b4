//! Watches the request framing of one HTTP/1.1 connection as its bytes arrive, so that a chunked
//! body whose declared chunk sizes already pass the body cap is refused at once.
//!
//! hyper decodes chunked bodies itself and exposes no chunk-size hook: a client that announces a
//! chunk of 10^18 bytes and then stalls would otherwise hold its request (and a connection slot)
//! until `body_read_timeout_ms`. A declared `Content-Length` over the cap is already refused
//! before the body is read (`server::read_body`); this is the same rule for chunk sizes.
//!
//! The watcher reads a copy of what the connection reads and never changes a byte. It follows
//! the framing only while it is sure of it (RFC 9112 §6 and §7.1): on anything it does not
//! understand it stops watching that connection, and hyper's own parser stays the judge. It only
//! ever marks a request as oversized; it never accepts or refuses one itself.

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The longest request line, header line or chunk-size line the watcher keeps to parse. A longer
/// line stops the watching (hyper's own header limit then decides about the request).
const MAX_LINE: usize = 16 * 1024;

/// What one connection's watcher tells the request handlers of that connection.
#[derive(Default)]
pub(crate) struct Watch {
    /// 1-based number of the request whose chunked body was declared over the cap; 0 for none.
    /// Requests are numbered in arrival order, the order hyper hands them to the service.
    oversized: AtomicU64,
    /// The body reader waiting on the current request, woken when that request is marked.
    waiter: Mutex<Option<Waker>>,
}

impl Watch {
    /// True when request number `request` (1-based) declared chunks over the cap.
    pub(crate) fn is_oversized(&self, request: u64) -> bool {
        self.oversized.load(Ordering::Acquire) == request
    }

    /// Registers the task to wake when a request is marked. Register before checking
    /// [`Watch::is_oversized`], so a mark between the two is never missed.
    pub(crate) fn register(&self, waker: &Waker) {
        let mut slot = self.waiter.lock().unwrap_or_else(|e| e.into_inner());
        if !slot.as_ref().is_some_and(|w| w.will_wake(waker)) {
            *slot = Some(waker.clone());
        }
    }

    fn mark(&self, request: u64) {
        self.oversized.store(request, Ordering::Release);
        let waiter = self.waiter.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(w) = waiter {
            w.wake();
        }
    }
}

/// Where in the byte stream the watcher is.
#[derive(Debug, PartialEq)]
enum State {
    /// Reading a request head, line by line.
    Head {
        /// Whether the request line was seen (empty lines before it are skipped, RFC 9112 §2.2).
        started: bool,
        chunked: bool,
        content_length: Option<u64>,
        /// A framing the watcher does not follow (both headers, a bad length, another coding).
        unsure: bool,
    },
    /// Skipping a body of known length.
    Fixed(u64),
    /// Reading a chunk-size line.
    ChunkSize,
    /// Skipping chunk data, then its CRLF.
    ChunkData(u64),
    /// Reading the CRLF after a chunk's data.
    ChunkEnd,
    /// Reading trailer lines after the last chunk, up to an empty line.
    Trailer,
    /// No longer watching this connection.
    Blind,
}

/// The framing scanner, sans-IO: fed the bytes a connection reads, in order.
pub(crate) struct Scanner {
    state: State,
    line: Vec<u8>,
    /// The number of the request being read (1-based; 0 before the first).
    request: u64,
    /// Chunk bytes declared so far by the current request.
    declared: u64,
    max_body: u64,
}

impl Scanner {
    pub(crate) fn new(max_body: usize) -> Scanner {
        Scanner {
            state: State::new_head(),
            line: Vec::new(),
            request: 0,
            declared: 0,
            max_body: max_body as u64,
        }
    }

    /// Feeds the next bytes read; returns the number of a request that just declared a chunked
    /// body over the cap.
    pub(crate) fn feed(&mut self, mut bytes: &[u8]) -> Option<u64> {
        let mut marked = None;
        while !bytes.is_empty() {
            match &mut self.state {
                State::Blind => return marked,
                State::Fixed(left) | State::ChunkData(left) => {
                    let n = (*left).min(bytes.len() as u64);
                    *left -= n;
                    bytes = &bytes[n as usize..];
                    if *left == 0 {
                        self.state = match self.state {
                            State::ChunkData(_) => State::ChunkEnd,
                            _ => State::new_head(),
                        };
                    }
                }
                State::Head { .. } | State::ChunkSize | State::ChunkEnd | State::Trailer => {
                    let Some(end) = memchr::memchr(b'\n', bytes) else {
                        self.push_line(bytes);
                        return marked;
                    };
                    let (part, rest) = (&bytes[..end], &bytes[end + 1..]);
                    bytes = rest;
                    let found = if self.line.is_empty() {
                        // The whole line came in this read (the usual case): parsed where it
                        // lies, without a copy. Only a line split across reads is gathered.
                        if part.len() > MAX_LINE {
                            self.state = State::Blind;
                            return marked;
                        }
                        self.on_line(strip_cr(part))
                    } else {
                        self.push_line(part);
                        if self.state == State::Blind {
                            return marked;
                        }
                        let mut line = std::mem::take(&mut self.line);
                        let found = self.on_line(strip_cr(&line));
                        line.clear();
                        self.line = line;
                        found
                    };
                    if let Some(request) = found {
                        marked = Some(request);
                    }
                }
            }
        }
        marked
    }

    /// Appends part of a line split across reads.
    fn push_line(&mut self, part: &[u8]) {
        if self.line.len() + part.len() > MAX_LINE {
            self.state = State::Blind;
            self.line = Vec::new();
        } else {
            self.line.extend_from_slice(part);
        }
    }

    fn on_line(&mut self, line: &[u8]) -> Option<u64> {
        match &mut self.state {
            State::Head {
                started,
                chunked,
                content_length,
                unsure,
            } => {
                if !*started {
                    if !line.is_empty() {
                        *started = true;
                        self.request += 1;
                        self.declared = 0;
                    }
                    return None;
                }
                if !line.is_empty() {
                    header_line(line, chunked, content_length, unsure);
                    return None;
                }
                self.state = match (*unsure, *chunked, *content_length) {
                    (true, _, _) | (false, true, Some(_)) => State::Blind,
                    (false, true, None) => State::ChunkSize,
                    (false, false, Some(n)) if n > 0 => State::Fixed(n),
                    (false, false, _) => State::new_head(),
                };
                None
            }
            State::ChunkSize => {
                let Some(size) = chunk_size(line) else {
                    self.state = State::Blind;
                    return None;
                };
                if size == 0 {
                    self.state = State::Trailer;
                    return None;
                }
                self.declared = self.declared.saturating_add(size);
                if self.declared > self.max_body {
                    // The answer is sent with `Connection: close`; nothing after it matters.
                    self.state = State::Blind;
                    return Some(self.request);
                }
                self.state = State::ChunkData(size);
                None
            }
            State::ChunkEnd => {
                self.state = if line.is_empty() {
                    State::ChunkSize
                } else {
                    State::Blind
                };
                None
            }
            State::Trailer => {
                if line.is_empty() {
                    self.state = State::new_head();
                }
                None
            }
            State::Fixed(_) | State::ChunkData(_) | State::Blind => None,
        }
    }
}

impl State {
    fn new_head() -> State {
        State::Head {
            started: false,
            chunked: false,
            content_length: None,
            unsure: false,
        }
    }
}

/// A line without its trailing CR (the LF is already gone).
fn strip_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// Notes what one header line says about the body's framing (RFC 9112 §6.1, §6.3).
fn header_line(line: &[u8], chunked: &mut bool, length: &mut Option<u64>, unsure: &mut bool) {
    let Some(colon) = memchr::memchr(b':', line) else {
        *unsure = true;
        return;
    };
    let name = &line[..colon];
    // Only the two framing headers matter; other headers may carry any octets, and are
    // passed over on their name alone (the length compare settles most of them).
    let transfer_encoding = name.eq_ignore_ascii_case(b"transfer-encoding");
    if !transfer_encoding && !name.eq_ignore_ascii_case(b"content-length") {
        return;
    }
    let Ok(value) = std::str::from_utf8(&line[colon + 1..]) else {
        *unsure = true;
        return;
    };
    let value = value.trim();
    if transfer_encoding {
        // Chunked must be the last coding; any coding after it leaves the framing to hyper.
        let last = value.rsplit(',').next().unwrap_or("").trim();
        if last.eq_ignore_ascii_case("chunked") {
            *chunked = true;
        } else {
            *unsure = true;
        }
    } else {
        match (value.parse::<u64>(), *length) {
            (Ok(n), None) => *length = Some(n),
            (Ok(n), Some(m)) if n == m => {}
            _ => *unsure = true,
        }
    }
}

/// The size a chunk-size line declares (hex digits, then optional extensions after `;`).
fn chunk_size(line: &[u8]) -> Option<u64> {
    let digits = line.split(|&b| b == b';').next().unwrap_or(line);
    let digits = digits.trim_ascii();
    if digits.is_empty() || digits.len() > 16 {
        // More than 16 hex digits overflows u64; hyper refuses that framing itself.
        return None;
    }
    let text = std::str::from_utf8(digits).ok()?;
    u64::from_str_radix(text, 16).ok()
}

/// A connection's IO with a [`Scanner`] reading a copy of every byte read.
pub(crate) struct Watched<I> {
    inner: I,
    scanner: Scanner,
    watch: Arc<Watch>,
}

impl<I> Watched<I> {
    pub(crate) fn new(inner: I, max_body: usize) -> (Watched<I>, Arc<Watch>) {
        let watch = Arc::new(Watch::default());
        let io = Watched {
            inner,
            scanner: Scanner::new(max_body),
            watch: watch.clone(),
        };
        (io, watch)
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for Watched<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = &mut *self;
        let before = buf.filled().len();
        let poll = Pin::new(&mut this.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = poll
            && let Some(request) = this.scanner.feed(&buf.filled()[before..])
        {
            this.watch.mark(request);
        }
        poll
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Watched<I> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `parts` in order; returns every request number marked.
    fn check(max: usize, parts: &[&str]) -> Vec<u64> {
        let mut s = Scanner::new(max);
        parts.iter().filter_map(|p| s.feed(p.as_bytes())).collect()
    }

    const CHUNKED: &str = "POST /wsman HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n";

    #[test]
    fn a_chunk_over_the_cap_is_marked_as_soon_as_its_size_line_ends() {
        assert_eq!(check(100, &[CHUNKED, "DE0B6B3A7640000\r\n"]), vec![1]);
        // Split anywhere, even inside the size line.
        assert_eq!(
            check(100, &[CHUNKED, "DE0B6B3A", "7640000;ext=1\r", "\n"]),
            vec![1]
        );
    }

    #[test]
    fn chunks_are_counted_together_against_the_cap() {
        assert_eq!(check(10, &[CHUNKED, "6\r\nabcdef\r\n", "5\r\n"]), vec![1]);
        assert_eq!(
            check(10, &[CHUNKED, "6\r\nabcdef\r\n4\r\nabcd\r\n0\r\n\r\n"]),
            Vec::<u64>::new()
        );
    }

    #[test]
    fn requests_are_numbered_in_order_across_bodies_of_every_framing() {
        let fixed = "POST /wsman HTTP/1.1\r\nContent-Length: 5\r\n\r\n\r\n\r\nX";
        let trailer =
            "POST /wsman HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n0\r\nT: v\r\n\r\n";
        let get = "\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n";
        let all = [fixed, trailer, get, CHUNKED, "FFFF\r\n"].concat();
        assert_eq!(check(100, &[&all]), vec![4]);
        // The same bytes one at a time.
        let mut s = Scanner::new(100);
        let marks: Vec<u64> = all
            .as_bytes()
            .iter()
            .filter_map(|b| s.feed(&[*b]))
            .collect();
        assert_eq!(marks, vec![4]);
        // Cut in two at every point: lines parsed where they lie and lines gathered across
        // reads give the same marks.
        for cut in 0..all.len() {
            let (a, b) = all.split_at(cut);
            assert_eq!(check(100, &[a, b]), vec![4], "cut at {cut}");
        }
    }

    #[test]
    fn a_framing_it_does_not_follow_stops_the_watching_and_marks_nothing() {
        for head in [
            "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n",
            "POST / HTTP/1.1\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
            "POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n",
            "POST / HTTP/1.1\r\nContent-Length: x\r\n\r\n",
            "POST / HTTP/1.1\r\nno colon here\r\n\r\n",
        ] {
            assert_eq!(
                check(10, &[head, "FFFF\r\n", CHUNKED, "FFFF\r\n"]),
                Vec::<u64>::new(),
                "{head}"
            );
        }
        // A bad size line or a missing CRLF after chunk data: hyper answers 400 itself.
        assert_eq!(
            check(10, &[CHUNKED, "ZZ\r\n", CHUNKED, "FFFF\r\n"]),
            Vec::<u64>::new()
        );
        assert_eq!(
            check(10, &[CHUNKED, "1\r\nab\r\n", CHUNKED, "FFFF\r\n"]),
            Vec::<u64>::new()
        );
        assert_eq!(
            check(10, &[CHUNKED, "10000000000000000\r\n"]),
            Vec::<u64>::new()
        );
    }

    #[test]
    fn a_line_longer_than_the_limit_stops_the_watching() {
        let long = format!("POST / HTTP/1.1\r\nX: {}\r\n", "a".repeat(MAX_LINE));
        assert_eq!(
            check(10, &[&long, "Transfer-Encoding: chunked\r\n\r\nFFFF\r\n"]),
            Vec::<u64>::new()
        );
        // The same line arriving in two reads.
        let (a, b) = long.split_at(long.len() / 2);
        assert_eq!(
            check(10, &[a, b, "Transfer-Encoding: chunked\r\n\r\nFFFF\r\n"]),
            Vec::<u64>::new()
        );
    }

    #[test]
    fn a_mark_wakes_the_registered_reader_and_names_one_request() {
        struct Flag(std::sync::atomic::AtomicBool);
        impl std::task::Wake for Flag {
            fn wake(self: Arc<Self>) {
                self.0.store(true, Ordering::SeqCst);
            }
        }
        let flag = Arc::new(Flag(false.into()));
        let watch = Watch::default();
        watch.register(&Waker::from(flag.clone()));
        assert!(!watch.is_oversized(1));
        watch.mark(2);
        assert!(flag.0.load(Ordering::SeqCst));
        assert!(!watch.is_oversized(1));
        assert!(watch.is_oversized(2));
    }
}
