//! One TCP connection of [`serve`](crate::serve) as hyper sees it. hyper is handed only whole
//! request heads that `chat_adapter::http::parse` accepted, read here with the mio server's
//! limits and deadlines, so every refusal and timeout is the mio server's:
//!
//! - a head over 8 KiB or 64 header lines: `431`; one that does not parse (HTTP/2, garbage,
//!   a TLS hello): `400 malformed HTTP request`; a head announcing a body: what the routes say
//!   (`400`, or `405` for other methods), before hyper could frame the body;
//! - no byte within `--request-timeout` of the accept: closed; a head begun and not finished
//!   within it: `408`; no new request within `--keep-alive-timeout` of the last answer: closed;
//! - every close (hyper's own, a refusal's, a timeout's) writes what is left, shuts the write
//!   side, then reads and drops what the peer still sends until its EOF or [`CLOSE_LINGER`]:
//!   the peer sees the answer and a FIN, never a reset for bytes it sent that were not read.
//!
//! A refusal is written when hyper shuts the connection down: hyper reads EOF at the refused
//! head, so answers to the requests before it go out first, in order. After a `101` the
//! connection only passes bytes through (the WebSocket's end is `connection.rs`'s). Bytes each
//! way are counted for `/metrics`, and the connection is counted open until it is dropped.

use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use chat_adapter::http::{self, ParseError, Response, MAX_REQUEST_HEAD};
use chat_adapter::routes::Route;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::{Instant, Sleep};

use crate::chat::Shared;
use crate::connection::CLOSE_LINGER;

/// How much one socket read takes.
const READ_CHUNK: usize = 4096;

/// One TCP connection counted open (`chat_connections_open`, and `--max-connections` at
/// accept) until dropped, and under its address (`--max-connections-per-ip`) if it was
/// admitted under it.
pub(crate) struct Slot {
    shared: Arc<Shared>,
    open: Arc<AtomicUsize>,
    counted_ip: Option<IpAddr>,
}

impl Slot {
    pub fn new(shared: Arc<Shared>, open: Arc<AtomicUsize>) -> Slot {
        open.fetch_add(1, Ordering::AcqRel);
        shared.metrics().open_connections += 1;
        Slot {
            shared,
            open,
            counted_ip: None,
        }
    }

    /// Counts the connection under `ip` if its address has room: `false` when it has not.
    pub fn admit_ip(&mut self, ip: IpAddr) -> bool {
        let admitted = self.shared.clients().admit(ip);
        if admitted {
            self.counted_ip = Some(ip);
        }
        admitted
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Some(ip) = self.counted_ip {
            self.shared.clients().release(ip);
        }
        self.open.fetch_sub(1, Ordering::AcqRel);
        self.shared.metrics().open_connections -= 1;
    }
}

/// What the bytes read are, now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Request heads, checked before hyper sees them.
    Heads,
    /// An upgrade was asked: nothing more is checked or handed on until the answer shows
    /// whether what follows is a WebSocket (`101`) or more heads.
    UpgradeAsked,
    /// After a `101`: bytes pass through both ways.
    Passthrough,
}

/// How far the end has got, once hyper (or a refusal at accept) shuts the connection down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ending {
    /// The refusal (if any) is being written.
    Answering,
    /// The write side is being shut.
    Shutting,
    /// Reading and dropping until the peer's EOF or the linger deadline.
    Draining,
    Done,
}

pub(crate) struct HttpConn {
    stream: TcpStream,
    shared: Arc<Shared>,
    peer: SocketAddr,
    _slot: Slot,
    /// Bytes read and not yet handed to hyper: `buf[..ready]` are checked whole heads (or,
    /// after a `101`, anything), the rest a head still arriving.
    buf: Vec<u8>,
    ready: usize,
    /// `buf[ready..]` got bytes since it was last parsed.
    unparsed: bool,
    phase: Phase,
    /// The request or keep-alive deadline, while `timed`.
    deadline: Pin<Box<Sleep>>,
    timed: bool,
    /// hyper reads EOF from now on (the peer's, a refusal's or a timeout's).
    eof: bool,
    /// The refusal to write when hyper shuts down, and how much of it is out.
    answer: Vec<u8>,
    written: usize,
    ending: Ending,
}

impl HttpConn {
    /// A connection just accepted: it has `--request-timeout` to send its first request.
    pub fn new(stream: TcpStream, peer: SocketAddr, shared: Arc<Shared>, slot: Slot) -> Self {
        let deadline = Box::pin(tokio::time::sleep(shared.config.request_timeout));
        HttpConn {
            stream,
            shared,
            peer,
            _slot: slot,
            buf: Vec::new(),
            ready: 0,
            unparsed: false,
            phase: Phase::Heads,
            deadline,
            timed: true,
            eof: false,
            answer: Vec::new(),
            written: 0,
            ending: Ending::Answering,
        }
    }

    /// Ends the connection with `response` (written at shutdown, after any answer hyper is
    /// still writing); hyper reads EOF from now on.
    pub fn refuse(&mut self, response: &Response<'_>) {
        log::debug!(
            peer:% = self.peer, status = response.status();
            "{}: refused with {}", self.peer, response.status()
        );
        let (mut bytes, body) = response.encode_from(crate::http_answer::SERVER_NAME);
        if let Some(body) = body {
            bytes.extend_from_slice(&body);
        }
        self.shared.metrics().http_response(response.status());
        self.answer = bytes;
        self.written = 0;
        self.end_reading();
    }

    /// hyper reads EOF from now on; what was read and not handed on is dropped.
    fn end_reading(&mut self) {
        self.eof = true;
        self.timed = false;
        self.buf = Vec::new();
        self.ready = 0;
    }

    fn set_deadline(&mut self, after: std::time::Duration) {
        self.deadline.as_mut().reset(Instant::now() + after);
        self.timed = true;
    }

    /// Checks the head at the front of `buf` (nothing of it handed on yet).
    fn check_head(&mut self) {
        self.unparsed = false;
        match http::parse(&self.buf) {
            Ok(Some((request, len))) => {
                if request.has_body {
                    // Answered as the routes answer it (400, or 405 for other methods), here:
                    // hyper would frame the body, or refuse odd lengths with a bare 400.
                    let response =
                        match crate::router::route_request(&self.shared, &request, self.peer) {
                            Route::Respond(response) if !response.keep_alive => response,
                            _ => Response::text(400, "requests with a body are not accepted\n")
                                .keep_alive(false),
                        };
                    self.refuse(&response);
                    return;
                }
                self.ready = len;
                // More may follow already (pipelined): checked once this head is taken.
                self.unparsed = self.buf.len() > len;
                if request.upgrade.is_some() {
                    self.phase = Phase::UpgradeAsked;
                    self.timed = false;
                } else {
                    // The answer is bounded by the request timeout too.
                    self.set_deadline(self.shared.config.request_timeout);
                }
            }
            Ok(None) if self.buf.len() >= MAX_REQUEST_HEAD => {
                self.refuse(&Response::text(431, "request head too large\n").keep_alive(false));
            }
            Ok(None) => {}
            Err(ParseError::TooManyHeaders) => {
                self.refuse(&Response::text(431, "too many header fields\n").keep_alive(false));
            }
            Err(ParseError::Malformed) => {
                self.refuse(&Response::text(400, "malformed HTTP request\n").keep_alive(false));
            }
        }
    }

    fn count_in(&self, n: usize) {
        if n > 0 {
            self.shared.metrics().bytes_in += n as u64;
        }
    }

    /// The deadline passed: a head begun gets 408, an idle connection just ends.
    fn timed_out(&mut self) {
        if self.buf.is_empty() {
            log::debug!(peer:% = self.peer; "{}: idle, closed", self.peer);
            self.end_reading();
        } else {
            self.refuse(
                &Response::text(408, "request head not received in time\n").keep_alive(false),
            );
        }
    }
}

impl AsyncRead for HttpConn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if this.ready > 0 {
                let n = this.ready.min(out.remaining());
                out.put_slice(&this.buf[..n]);
                this.buf.drain(..n);
                this.ready -= n;
                return Poll::Ready(Ok(()));
            }
            if this.eof {
                return Poll::Ready(Ok(()));
            }
            if this.phase == Phase::Passthrough {
                if !this.buf.is_empty() {
                    this.ready = this.buf.len();
                    continue;
                }
                let before = out.filled().len();
                ready!(Pin::new(&mut this.stream).poll_read(cx, out))?;
                this.count_in(out.filled().len() - before);
                return Poll::Ready(Ok(()));
            }
            if this.phase == Phase::Heads && this.unparsed {
                this.check_head();
                continue;
            }
            if this.timed && this.deadline.as_mut().poll(cx).is_ready() {
                this.timed_out();
                continue;
            }
            let room = MAX_REQUEST_HEAD
                .saturating_sub(this.buf.len())
                .min(READ_CHUNK);
            if room == 0 {
                // An upgrade's answer is awaited with a full buffer: read on after it.
                return Poll::Pending;
            }
            let mut chunk = [0u8; READ_CHUNK];
            let mut read = ReadBuf::new(&mut chunk[..room]);
            ready!(Pin::new(&mut this.stream).poll_read(cx, &mut read))?;
            let n = read.filled().len();
            this.count_in(n);
            if n == 0 {
                // The peer's EOF (a half-close): hyper answers what it has, then ends. A head
                // cut short is dropped unanswered.
                this.end_reading();
                continue;
            }
            if this.buf.is_empty() && this.phase == Phase::Heads {
                // The first bytes of a head: it has the request timeout to complete.
                this.set_deadline(this.shared.config.request_timeout);
            }
            this.buf.extend_from_slice(read.filled());
            this.unparsed = true;
        }
    }
}

impl AsyncWrite for HttpConn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.phase == Phase::UpgradeAsked {
            if data.starts_with(b"HTTP/1.1 101 ") {
                this.phase = Phase::Passthrough;
            } else {
                // Refused (or not an upgrade after all): heads again.
                this.phase = Phase::Heads;
                this.unparsed = true;
            }
        }
        if this.phase == Phase::Heads && !this.eof {
            // An answer: the next request has the keep-alive timeout to begin (or the
            // request timeout to complete, if it has begun).
            let after = if this.buf.len() > this.ready {
                this.shared.config.request_timeout
            } else {
                this.shared.config.keep_alive_timeout
            };
            this.set_deadline(after);
        }
        let n = ready!(Pin::new(&mut this.stream).poll_write(cx, data))?;
        if n > 0 {
            this.shared.metrics().bytes_out += n as u64;
        }
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.phase == Phase::Passthrough {
            return Pin::new(&mut this.stream).poll_shutdown(cx);
        }
        loop {
            match this.ending {
                Ending::Answering => {
                    while this.written < this.answer.len() {
                        let n =
                            ready!(Pin::new(&mut this.stream)
                                .poll_write(cx, &this.answer[this.written..]))?;
                        if n == 0 {
                            return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
                        }
                        this.written += n;
                        this.shared.metrics().bytes_out += n as u64;
                    }
                    this.ending = Ending::Shutting;
                }
                Ending::Shutting => {
                    ready!(Pin::new(&mut this.stream).poll_shutdown(cx))?;
                    this.eof = true;
                    this.deadline.as_mut().reset(Instant::now() + CLOSE_LINGER);
                    this.ending = Ending::Draining;
                }
                Ending::Draining => {
                    if this.deadline.as_mut().poll(cx).is_ready() {
                        this.ending = Ending::Done;
                        continue;
                    }
                    let mut chunk = [0u8; READ_CHUNK];
                    let mut read = ReadBuf::new(&mut chunk);
                    match ready!(Pin::new(&mut this.stream).poll_read(cx, &mut read)) {
                        Ok(()) if !read.filled().is_empty() => this.count_in(read.filled().len()),
                        // The peer's EOF, or a reset: nothing more to wait for.
                        Ok(()) | Err(_) => this.ending = Ending::Done,
                    }
                }
                Ending::Done => return Poll::Ready(Ok(())),
            }
        }
    }
}
