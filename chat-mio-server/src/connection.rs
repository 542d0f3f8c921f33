//! One TCP connection: its lifecycle as one [`State`] enum, the interest it wants from the
//! poller (derived from that state and its queue, never tracked by hand), and its socket.
//!
//! ```text
//!   Http ──101──► WebSocket ──close frame queued──► Closing(Sending) ──written──► Closing(Shut)
//!    │  └─refusal or Connection: close───────────────────┘   │ peer EOF                 │ peer EOF
//!    │                                                       ▼                          ▼
//!    └─peer EOF─► Closing(PeerDone) ──written──────────────► Gone ◄─────────────────────┘
//! ```
//!
//! Reads: request heads into a small buffer (Http); WebSocket frames through tungstenite,
//! which reads the socket itself. Writes: everything (responses, broadcast frames, tungstenite's
//! own pongs and close frames) goes through one [`WriteQueue`] in order; the event loop
//! flushes it once per turn (`event_loop/flush.rs`).
//!
//! With native TLS (`tls.rs`) a connection also holds its rustls session: reads take records
//! from the socket and return plaintext, flushes put the queue's plaintext into the session
//! and write its records; the states above do not change.

use std::io::{self, Read, Write};
use std::net::{IpAddr, Shutdown, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::num::NonZeroU64;
use std::time::Instant;

use bytes::Bytes;
use chat_protocol::{ClientId, CloseReason};
use mio::net::TcpStream;
use mio::Interest;
use rustls::ServerConnection;
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::protocol::frame::Frame;
use tungstenite::protocol::{CloseFrame, Role, WebSocketConfig, WebSocketContext};
use tungstenite::Message;

use crate::batch::{Sealed, Span};
use crate::write_queue::WriteQueue;

/// Initial size of tungstenite's per-connection read buffer.
pub const READ_BUFFER: usize = 128;

/// tungstenite's buffers, sized for a chat server: many mostly idle connections.
pub fn websocket_config(max_message_size: usize) -> WebSocketConfig {
    chat_adapter::ws_rules::websocket_limits(max_message_size)
        // tungstenite allocates (and zero-fills) the whole read buffer per connection, idle or
        // not: its 128 KiB default would cost 128 KiB of RSS per client. 128 bytes hold a short
        // chat line per read; a larger message grows the buffer to its size.
        .read_buffer_size(READ_BUFFER)
        // tungstenite only ever writes control frames (pong, close) here, into the connection's
        // own write queue (see write_queue.rs), so its write buffer stays tiny.
        .write_buffer_size(0)
}

/// Where a connection is in its life.
pub enum State {
    /// Reading request heads; `head` holds one not complete yet. Several requests may follow
    /// each other on one keep-alive connection.
    Http {
        head: Vec<u8>,
        reading: Reading,
        /// The ticket of a request waiting for another thread's answer (a login, a session
        /// lookup): until it comes nothing more is read and later requests wait in `head`.
        awaiting: Option<NonZeroU64>,
    },
    /// After the `101` (which may still be queued): frames, decoded by tungstenite.
    WebSocket {
        /// Kept inline: every delivery checks it.
        client: ClientId,
        /// tungstenite's framing state, only while a frame or message is under way: an idle
        /// connection holds none (see [`Framing`]).
        framing: Option<Box<Framing>>,
        /// The id of the login session this connection was admitted with (`--auth accounts`),
        /// so a logout can close it. A secret: never logged.
        login: Option<Box<str>>,
        reading: Reading,
    },
    /// The last bytes (a refusal, a close frame) are queued: see [`Linger`].
    Closing(Linger),
    /// Over: no more bytes either way. Removed from the slab at the end of the turn.
    Gone,
}

/// Whether the connection's input is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reading {
    Open,
    /// Answers (HTTP responses, pongs) pile up unread: nothing more is read until they drain,
    /// so a client that sends without reading cannot make the server buffer without bound.
    PausedUntilDrained,
}

/// A closing connection, after its last bytes were queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Linger {
    /// Writing the last bytes; what the peer still sends is read and dropped, so the kernel
    /// does not reset the connection under them.
    Sending,
    /// Writing the last bytes to a peer that already sent EOF: once they are out, it is over.
    PeerDone,
    /// Our side is shut after the last bytes (the server ends the TCP connection first, RFC
    /// 6455 section 7.1.1); waiting for the peer's EOF, or the deadline.
    Shut,
}

/// tungstenite's framing state while a frame or message is under way, and what it holds of
/// the memory budget.
///
/// Between messages a fresh `WebSocketContext` is all a connection needs: tungstenite keeps
/// nothing across messages but its read buffer (and, once closing, its state, which a
/// connection in [`State::WebSocket`] never is). So an idle connection keeps none: the
/// framing state is made when bytes arrive and dropped again once every byte read has been
/// returned as a frame (`unconsumed` is 0), which frees tungstenite's read buffer and the
/// context (about 450 bytes a connection with malloc's overhead). A connection that went
/// quiet in the middle of a message keeps it, counted as `partial`.
pub struct Framing {
    ctx: WebSocketContext,
    /// Bytes read since the last complete data message: what tungstenite holds of a message
    /// still coming (the memory budget's "partial" kind; see [`Conn::held`]).
    partial: usize,
    /// Bytes read and not yet accounted to a frame tungstenite returned, each frame counted at
    /// its smallest possible size: an upper bound of what tungstenite's read buffer still
    /// holds. 0 means its buffer is empty, and the framing state can go.
    unconsumed: usize,
    /// The read buffer a large message left behind that could not be released (see
    /// [`Framing::after_frame`]): counted with `partial`.
    retained: usize,
}

/// A data message at least this large makes tungstenite grow its read buffer to its size
/// and keep it; when it cannot be released with the framing state, it is counted.
const RECLAIM_AFTER: usize = 4 * 1024;

/// The fewest bytes a client's frame with `payload` bytes can take on the wire: 2 of header,
/// 2 or 8 more for a longer length, 4 of mask (a client always masks).
fn min_frame_len(payload: usize) -> usize {
    let extended = match payload {
        0..=125 => 0,
        126..=65_535 => 2,
        _ => 8,
    };
    payload + 2 + extended + 4
}

impl Framing {
    fn new(config: &WebSocketConfig) -> Box<Framing> {
        Framing::with_leftover(Vec::new(), config)
    }

    /// Framing state whose read buffer starts with `leftover`: bytes not yet returned as
    /// frames.
    fn with_leftover(leftover: Vec<u8>, config: &WebSocketConfig) -> Box<Framing> {
        let unconsumed = leftover.len();
        let ctx = if leftover.is_empty() {
            WebSocketContext::new(Role::Server, Some(*config))
        } else {
            WebSocketContext::from_partially_read(leftover, Role::Server, Some(*config))
        };
        Box::new(Framing {
            ctx,
            partial: 0,
            unconsumed,
            retained: 0,
        })
    }

    /// Whether the framing state holds nothing a fresh one would not: every byte read was
    /// returned as a frame, and the context is still open. Then it can be dropped.
    fn is_spent(&self) -> bool {
        self.unconsumed == 0 && self.ctx.can_write()
    }

    /// After a complete frame or message tungstenite returned (`payload` bytes of it).
    ///
    /// tungstenite reserves a whole message's length in its read buffer and keeps that
    /// allocation as long as the context lives: a thousand clients that each sent one 60 KB
    /// message and went quiet would hold 60 MB outside the memory budget. When every byte read
    /// has been returned as a frame (`unconsumed` is 0, so the buffer holds nothing), the
    /// caller drops the whole framing state ([`Framing::is_spent`]), which frees the buffer;
    /// nothing is lost, as nothing was in it and a fresh state between messages is what a new
    /// connection has. When bytes may remain after a large data message (the next frame has
    /// begun, or the client used longer encodings than needed), the buffer is kept and
    /// counted as `retained` instead, within the budget.
    fn after_frame(&mut self, payload: usize, data: bool) {
        self.unconsumed = self.unconsumed.saturating_sub(min_frame_len(payload));
        if data && payload >= RECLAIM_AFTER && self.unconsumed != 0 {
            self.retained = self.retained.max(payload);
        }
    }
}

/// Bytes of a control frame from a client besides its payload: 2 of header and 4 of mask (a
/// control frame's payload is at most 125 bytes, so no extended length).
const CONTROL_FRAME_OVERHEAD: usize = 6;

/// What a connection holds of the memory budget's kinds, as last counted
/// (`event_loop/memory.rs` keeps the server's totals from these). `u32`s, saturated (a
/// connection holding 4 GiB is over any budget anyway): every connection keeps one.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Held {
    /// The request head being received.
    pub head: u32,
    /// A WebSocket message being received.
    pub partial: u32,
    /// Outbound bytes of its own (not shared with the turn's batch).
    pub outbound: u32,
}

/// `bytes` as a [`Held`] count.
fn saturated(bytes: usize) -> u32 {
    u32::try_from(bytes).unwrap_or(u32::MAX)
}

/// A chat client whose WebSocket ended: it must leave the chat. (Its user name is the core's:
/// `ChatServer::user`; a connection keeps no copy.)
pub struct Departed {
    pub client: ClientId,
}

/// Result of writing out what is queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flushed {
    /// Everything is written.
    All,
    /// The socket is full; wait for WRITABLE.
    Blocked,
    /// The connection is broken.
    Gone,
}

/// Why [`Conn::read_head`] stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeadRead {
    /// The socket has nothing more for now.
    Drained,
    /// The head buffer is full; the socket may hold more.
    Full,
    /// The peer closed its sending side (it may still read our answers).
    Eof,
}

/// Reads what the peer sent: from the socket, or through the TLS session (plaintext).
fn read_input(
    stream: &mut TcpStream,
    tls: Option<&mut ServerConnection>,
    buf: &mut [u8],
) -> io::Result<usize> {
    match tls {
        None => stream.read(buf),
        Some(tls) => crate::tls::read(tls, stream, buf),
    }
}

/// tungstenite's view of the socket: it reads from the socket (through TLS, if on), and what
/// it writes (pongs, close frames) joins the write queue behind the frames already there, so a
/// control frame can never land in the middle of a partly written data frame.
struct Io<'a> {
    stream: &'a mut TcpStream,
    tls: Option<&'a mut ServerConnection>,
    out: &'a mut WriteQueue,
    bytes_in: &'a mut u64,
}

impl Read for Io<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = read_input(self.stream, self.tls.as_deref_mut(), buf)?;
        *self.bytes_in += n as u64;
        Ok(n)
    }
}

impl Write for Io<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.out.push(Bytes::copy_from_slice(buf));
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A peer's address, compact: an IPv4 one inline (16 bytes with the tag, where a `SocketAddr`
/// takes 32), the rarer IPv6 one boxed (its connection then pays a small allocation instead).
/// Every connection keeps one.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Peer {
    V4(SocketAddrV4),
    V6(Box<SocketAddrV6>),
}

impl From<SocketAddr> for Peer {
    fn from(addr: SocketAddr) -> Self {
        match addr {
            SocketAddr::V4(v4) => Peer::V4(v4),
            SocketAddr::V6(v6) => Peer::V6(Box::new(v6)),
        }
    }
}

impl Peer {
    fn addr(&self) -> SocketAddr {
        match self {
            Peer::V4(v4) => SocketAddr::V4(*v4),
            Peer::V6(v6) => SocketAddr::V6(**v6),
        }
    }
}

pub struct Conn {
    pub stream: TcpStream,
    peer: Peer,
    pub state: State,
    out: WriteQueue,
    /// The TLS session, when the server serves TLS itself (boxed: a plain connection pays
    /// one pointer for it).
    tls: Option<Box<ServerConnection>>,
    /// The interest registered with the poller.
    pub registered: Interest,
    /// When this connection must give up waiting (request head, idle keep-alive, closing).
    pub deadline: Option<Instant>,
    /// The client address this connection is counted under (`--max-connections-per-ip`):
    /// its peer's from accept, or, behind a trusted proxy, the forwarded one from the upgrade
    /// ([`Conn::counted_ip`]). Nearly always its peer's (this flag); only another one,
    /// forwarded by a trusted proxy, takes a box.
    counted_as_peer: bool,
    counted_as_other: Option<Box<IpAddr>>,
    /// The flush round that last scheduled this connection (`event_loop/flush.rs`): it is in
    /// the round's list of connections to flush when this equals the loop's current round.
    pub flush_round: u64,
    /// What the memory budget last counted for this connection (`event_loop/memory.rs`).
    pub held: Held,
    /// The method and the loggable target of the request being answered, kept for the access
    /// log's record (`event_loop/access_log.rs`) when it is on. Boxed: with the access log off
    /// (the default) or between requests it is one word, not 48 bytes.
    pub request_line: Option<Box<(String, String)>>,
}

impl Conn {
    pub fn new(stream: TcpStream, peer: SocketAddr, tls: Option<Box<ServerConnection>>) -> Self {
        Conn {
            stream,
            peer: peer.into(),
            tls,
            state: State::Http {
                head: Vec::new(),
                reading: Reading::Open,
                awaiting: None,
            },
            out: WriteQueue::default(),
            registered: Interest::READABLE,
            deadline: None,
            counted_as_peer: false,
            counted_as_other: None,
            flush_round: 0,
            held: Held::default(),
            request_line: None,
        }
    }

    /// The peer's address.
    pub fn peer(&self) -> SocketAddr {
        self.peer.addr()
    }

    /// The client address this connection is counted under (`--max-connections-per-ip`), if
    /// it is counted.
    pub fn counted_ip(&self) -> Option<IpAddr> {
        match &self.counted_as_other {
            Some(ip) => Some(**ip),
            None => self.counted_as_peer.then(|| self.peer.addr().ip()),
        }
    }

    /// Records that this connection is counted under `ip`.
    pub fn count_under(&mut self, ip: IpAddr) {
        if ip == self.peer.addr().ip() {
            self.counted_as_peer = true;
        } else {
            self.counted_as_other = Some(Box::new(ip));
        }
    }

    /// What this connection holds now, of the memory budget's kinds: its request head's
    /// buffer, the message it is receiving, and the outbound bytes it owns (frames it shares
    /// with the turn's batch are the batch's).
    pub fn held(&self) -> Held {
        let (head, partial) = match &self.state {
            State::Http { head, .. } => (head.capacity(), 0),
            State::WebSocket { framing, .. } => {
                (0, framing.as_ref().map_or(0, |f| f.partial + f.retained))
            }
            State::Closing(_) | State::Gone => (0, 0),
        };
        Held {
            head: saturated(head),
            partial: saturated(partial),
            outbound: saturated(self.out.owned()),
        }
    }

    /// The interest this connection needs now, derived from its state: always READABLE (to
    /// read requests and frames, or to see the peer's EOF while closing), WRITABLE only while
    /// a flush left bytes behind (queued, or TLS records in the session). `None` once it is
    /// gone.
    pub fn wanted_interest(&self) -> Option<Interest> {
        match self.state {
            State::Gone => None,
            _ if self.out.len() > 0 || self.tls_wants_write() => {
                Some(Interest::READABLE | Interest::WRITABLE)
            }
            _ => Some(Interest::READABLE),
        }
    }

    /// Whether this connection is served over native TLS.
    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// The TLS session has records to write (a handshake message, an alert, data).
    pub fn tls_wants_write(&self) -> bool {
        self.tls.as_ref().is_some_and(|tls| tls.wants_write())
    }

    pub fn is_gone(&self) -> bool {
        matches!(self.state, State::Gone)
    }

    /// The WebSocket client behind this connection, if it is one (and not closing).
    pub fn client(&self) -> Option<ClientId> {
        match &self.state {
            State::WebSocket { client, .. } => Some(*client),
            _ => None,
        }
    }

    /// Bytes queued and not yet written.
    pub fn queued(&self) -> usize {
        self.out.len()
    }

    /// Stops reading until the queue drains (see [`Reading::PausedUntilDrained`]).
    pub fn pause_reading(&mut self) {
        if let State::Http { reading, .. } | State::WebSocket { reading, .. } = &mut self.state {
            *reading = Reading::PausedUntilDrained;
        }
    }

    /// Reading was paused and the queue has drained: reads again. Whether it was paused.
    pub fn resume_reading(&mut self) -> bool {
        match &mut self.state {
            State::Http { reading, .. } | State::WebSocket { reading, .. }
                if *reading == Reading::PausedUntilDrained =>
            {
                *reading = Reading::Open;
                true
            }
            _ => false,
        }
    }

    /// Queues an HTTP response: its head (and small body), then a shared body as it is. With
    /// `close`, the connection ends once it is written.
    pub fn queue_response(&mut self, bytes: Vec<u8>, body: Option<Bytes>, close: bool) {
        self.out.push(Bytes::from(bytes));
        if let Some(body) = body {
            self.out.push(body);
        }
        if close {
            self.state = State::Closing(Linger::Sending);
        }
    }

    /// Queues frames of the turn's batch.
    pub fn queue_frames(&mut self, span: Span) {
        self.out.push_span(span);
    }

    /// The peer sent EOF while we were reading request heads: what was answered still goes
    /// out, then the connection ends. A head cut short by the EOF can never complete.
    pub fn peer_finished(&mut self) {
        if matches!(
            self.state,
            State::Http { .. } | State::Closing(Linger::Sending)
        ) {
            self.state = State::Closing(Linger::PeerDone);
        }
    }

    /// Switches to WebSocket after the `101` was queued. `leftover`: bytes that arrived after
    /// the request head (a client may send frames before it sees our answer); they start
    /// tungstenite's buffer, and without them the connection has no framing state yet.
    pub fn upgrade(&mut self, client: ClientId, leftover: Vec<u8>, config: &WebSocketConfig) {
        let framing = (!leftover.is_empty()).then(|| Framing::with_leftover(leftover, config));
        self.state = State::WebSocket {
            client,
            framing,
            login: None,
            reading: Reading::Open,
        };
    }

    /// Reads what the socket has into the head buffer (Http), until WouldBlock, EOF or
    /// `limit` bytes are buffered.
    pub fn read_head(
        &mut self,
        scratch: &mut [u8],
        limit: usize,
        bytes_in: &mut u64,
    ) -> io::Result<HeadRead> {
        let State::Http { head, .. } = &mut self.state else {
            return Ok(HeadRead::Drained);
        };
        while head.len() < limit {
            let want = scratch.len().min(limit - head.len());
            match read_input(
                &mut self.stream,
                self.tls.as_deref_mut(),
                &mut scratch[..want],
            ) {
                Ok(0) => return Ok(HeadRead::Eof),
                Ok(n) => {
                    *bytes_in += n as u64;
                    head.extend_from_slice(&scratch[..n]);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(HeadRead::Drained),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
        Ok(HeadRead::Full)
    }

    /// Reads and drops whatever the peer sends while closing. `Ok(false)` at EOF.
    pub fn discard_input(&mut self, scratch: &mut [u8], bytes_in: &mut u64) -> io::Result<bool> {
        loop {
            match read_input(&mut self.stream, self.tls.as_deref_mut(), scratch) {
                Ok(0) => return Ok(false),
                Ok(n) => *bytes_in += n as u64,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(true),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Reads the next complete WebSocket message, if one is there: tungstenite parses the
    /// frames. Pongs and close replies it produces on the way are queued. The framing state is
    /// made for the read if the connection had none, and dropped after it if it holds nothing
    /// (see [`Framing`]).
    pub fn read_message(
        &mut self,
        bytes_in: &mut u64,
        config: &WebSocketConfig,
    ) -> Result<Option<Message>, tungstenite::Error> {
        let State::WebSocket { framing: slot, .. } = &mut self.state else {
            return Ok(None);
        };
        let framing = slot.get_or_insert_with(|| Framing::new(config));
        let before = *bytes_in;
        let mut io = Io {
            stream: &mut self.stream,
            tls: self.tls.as_deref_mut(),
            out: &mut self.out,
            bytes_in,
        };
        let result = framing.ctx.read(&mut io);
        // A pong or close reply may be waiting inside tungstenite: move it to the queue.
        let _ = framing.ctx.flush(&mut io);
        // What tungstenite holds of a message still coming: every byte read since the last
        // complete data message, less the control frames among them. (A read that ends a
        // message may also start the next one: at most one read, 128 bytes, goes uncounted.)
        let read = usize::try_from(*bytes_in - before).unwrap_or(usize::MAX);
        framing.partial = match &result {
            Ok(Message::Text(_) | Message::Binary(_)) => 0,
            Ok(Message::Ping(p) | Message::Pong(p)) => framing
                .partial
                .saturating_add(read)
                .saturating_sub(p.len() + CONTROL_FRAME_OVERHEAD),
            _ => framing.partial.saturating_add(read),
        };
        framing.unconsumed = framing.unconsumed.saturating_add(read);
        match &result {
            Ok(Message::Text(t)) => framing.after_frame(t.len(), true),
            Ok(Message::Binary(b)) => framing.after_frame(b.len(), true),
            Ok(Message::Ping(p) | Message::Pong(p)) => framing.after_frame(p.len(), false),
            _ => {}
        }
        if framing.is_spent() {
            *slot = None;
        }
        match result {
            Ok(message) => Ok(Some(message)),
            Err(tungstenite::Error::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Queues a WebSocket ping (heartbeat).
    pub fn send_ping(&mut self) {
        if let State::WebSocket { .. } = self.state {
            // A server's ping is the same two bytes whatever the framing state: an idle
            // connection needs none made for it.
            let mut ping = Vec::with_capacity(2);
            Frame::ping(Bytes::new())
                .format(&mut ping)
                .expect("writing a frame into memory cannot fail");
            self.out.push(Bytes::from(ping));
        }
    }

    /// Ends the WebSocket: queues a close frame for `reason` (or, with `None`, only the reply
    /// tungstenite already produced to the peer's close) and moves to
    /// [`Closing`](State::Closing). Frames not yet started are dropped first when
    /// `drop_queued` (a slow consumer would otherwise get its whole backlog before the close).
    /// Returns the client that ended, if this was a live WebSocket.
    pub fn close_ws(
        &mut self,
        reason: Option<CloseReason>,
        text: Option<&str>,
        drop_queued: bool,
        config: &WebSocketConfig,
    ) -> Option<Departed> {
        let State::WebSocket {
            client, framing, ..
        } = std::mem::replace(&mut self.state, State::Closing(Linger::Sending))
        else {
            return None;
        };
        // An idle connection has no framing state: a fresh one is what it would have.
        let mut framing = framing.unwrap_or_else(|| Framing::new(config));
        if drop_queued {
            self.out.drop_unstarted();
        }
        let mut bytes_in = 0;
        let mut io = Io {
            stream: &mut self.stream,
            tls: None,
            out: &mut self.out,
            bytes_in: &mut bytes_in,
        };
        if let Some(reason) = reason {
            let frame = CloseFrame {
                code: CloseCode::from(reason.code()),
                reason: text.unwrap_or(reason.text()).to_owned().into(),
            };
            // Queues the close frame (or the reply to the peer's close) behind whole frames.
            let _ = framing.ctx.close(&mut io, Some(frame));
        }
        let _ = framing.ctx.flush(&mut io);
        Some(Departed { client })
    }

    /// The connection is over: no more bytes either way. Returns the client if it was a live
    /// WebSocket (it must leave the chat).
    pub fn end(&mut self) -> Option<Departed> {
        match std::mem::replace(&mut self.state, State::Gone) {
            State::WebSocket { client, .. } => Some(Departed { client }),
            _ => None,
        }
    }

    /// Writes what is queued, from the turn's sealed batches. A closing connection whose last
    /// bytes are out shuts its write side, or is over if the peer is done too.
    pub fn flush(&mut self, sealed: &Sealed, bytes_out: &mut u64) -> Flushed {
        let before = self.out.len();
        // With TLS, bytes count as sent once the session has taken them.
        let result = match self.tls.as_deref_mut() {
            None => self.out.write_to(sealed, &mut self.stream),
            Some(tls) => crate::tls::flush(&mut self.out, sealed, tls, &mut self.stream),
        };
        *bytes_out += (before - self.out.len()) as u64;
        match result {
            Ok(true) => {}
            Ok(false) => return Flushed::Blocked,
            Err(_) => return Flushed::Gone,
        }
        match self.state {
            State::Closing(Linger::Sending) => {
                self.state = State::Closing(Linger::Shut);
                if let Some(tls) = self.tls.as_deref_mut() {
                    crate::tls::close_notify(tls, &mut self.stream);
                }
                // The peer's FIN then ends the lingering read.
                let _ = self.stream.shutdown(Shutdown::Write);
            }
            // Our last bytes are out and the peer has nothing more to say.
            State::Closing(Linger::PeerDone) => {
                if let Some(tls) = self.tls.as_deref_mut() {
                    crate::tls::close_notify(tls, &mut self.stream);
                }
                return Flushed::Gone;
            }
            _ => {}
        }
        Flushed::All
    }
}

/// What every connection costs the driver, in bytes, so that it cannot creep back up unnoticed
/// (issue 16: RSS per idle connection). These are `size_of` budgets: a field added that makes
/// one of these types larger fails the test on purpose. If the growth is worth it, raise the
/// budget here and say in the commit why, with the bytes per idle connection it costs
/// (BENCHMARKS.md, "Memory per idle connection"). Measured in the test (debug) build, where
/// mio's `TcpStream` carries a selector id (8 bytes) that a release build does not.
#[cfg(test)]
mod size_budget {
    use std::mem::size_of;

    use super::*;

    #[test]
    fn a_connection_stays_within_budget() {
        // The slab entry, resident for every connection (the slab is one array of these):
        // the socket (16 in debug, 4 in release), the peer's address (16: v4 inline, v6
        // boxed), the state (40), the write queue (64), the TLS session (a box, 8), the
        // interest, the deadline (16), the counted address (a flag, and a box for a forwarded
        // one: 9), the flush round (8), the memory counts (12) and the access log's request
        // line (a box, 8). 200 bytes in debug, 192 in release.
        assert!(size_of::<Conn>() <= 200, "Conn: {}", size_of::<Conn>());
        assert!(size_of::<Peer>() <= 16, "Peer: {}", size_of::<Peer>());
        // The lifecycle enum: its largest variant is `Http` (the head buffer, 24, and the
        // ticket of a parked request, 8). `WebSocket` is the client id, the framing state's
        // box (empty while idle), the login id (16) and the reading flag.
        assert!(size_of::<State>() <= 40, "State: {}", size_of::<State>());
        // Empty while idle: no chunk is allocated until something is queued, and the first
        // chunk is inline (40, and 8 for the boxed rest, 16 for the counts): a turn that
        // queues one span (a storm's notices) allocates nothing.
        assert!(
            size_of::<WriteQueue>() <= 64,
            "WriteQueue: {}",
            size_of::<WriteQueue>()
        );
        assert!(size_of::<Held>() <= 12, "Held: {}", size_of::<Held>());
        // One entry per connection with a deadline (request head, closing), stale ones popped
        // lazily: an instant and the slab key.
        assert!(size_of::<std::cmp::Reverse<(Instant, usize)>>() <= 24);
    }

    #[test]
    fn framing_state_is_boxed_and_only_there_mid_message() {
        // tungstenite's context (and our counters) is 280 bytes plus its read buffer (128
        // bytes or a message's size): boxed, and held only while a frame or message is under
        // way (see `Framing`), so an idle connection pays the `None` of one pointer.
        assert!(
            size_of::<Framing>() <= 280,
            "Framing: {}",
            size_of::<Framing>()
        );
        assert_eq!(size_of::<Option<Box<Framing>>>(), 8);
    }
}
