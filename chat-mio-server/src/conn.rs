//! One TCP connection: its phase (HTTP → WebSocket → closing) and where its bytes meet the
//! socket.
//!
//! Reads: HTTP heads into a small buffer; WebSocket frames through tungstenite, which reads
//! the socket itself. Writes: everything (responses, shared broadcast frames, tungstenite's own
//! pongs and close frames) goes through one [`Outbound`] queue in order, flushed by the event
//! loop once per turn.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::time::Instant;

use bytes::Bytes;
use chat_protocol::ClientId;
use mio::net::TcpStream;
use mio::Interest;
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::protocol::{CloseFrame, Role, WebSocketConfig, WebSocketContext};
use tungstenite::Message;

use crate::batch::{Batch, Span};
use crate::outbound::Outbound;

/// What a connection is doing.
pub enum Phase {
    /// Reading request heads; `buf` holds a head not complete yet. Several requests may follow
    /// each other on one keep-alive connection.
    Http { buf: Vec<u8> },
    /// After the `101` (which may still be queued): frames, decoded by tungstenite.
    WebSocket {
        ctx: Box<WebSocketContext>,
        client: ClientId,
        user: String,
    },
    /// The last bytes (a refusal, a close frame) are queued. Once they are written the write
    /// side is shut; what the peer still sends is read and dropped, so the kernel does not
    /// reset the connection under our last bytes. Ends at EOF or at the deadline.
    Closing,
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

/// Why [`Conn::read_http`] stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpRead {
    /// The socket has nothing more for now.
    Drained,
    /// The head buffer is full; the socket may hold more.
    Full,
    /// The peer closed its sending side (it may still read our answers).
    Eof,
}

/// tungstenite's view of the socket: it reads from the socket, and what it writes (pongs,
/// close frames) joins the outbound queue behind the frames already there, so a control frame
/// can never land in the middle of a partly written data frame.
struct Io<'a> {
    stream: &'a mut TcpStream,
    out: &'a mut Outbound,
    bytes_in: &'a mut u64,
}

impl Read for Io<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.stream.read(buf)?;
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

pub struct Conn {
    pub stream: TcpStream,
    pub peer: SocketAddr,
    pub phase: Phase,
    out: Outbound,
    /// The write side was shut after the last bytes of a closing connection.
    shut: bool,
    /// The interest registered with the poller.
    pub registered: Interest,
    /// In the event loop's list of connections to flush this turn.
    pub dirty: bool,
    /// The last write stopped at WouldBlock: WRITABLE is wanted.
    pub write_blocked: bool,
    /// Marked for removal at the end of the loop turn.
    pub dead: bool,
    /// When this connection must give up waiting (request head, idle keep-alive, closing).
    pub deadline: Option<Instant>,
    /// The peer sent EOF: once our answers are out, the connection is over.
    pub peer_eof: bool,
    /// HTTP reading stopped until the queued answers drain (a client that pipelines requests
    /// without reading the responses must not make us buffer without bound).
    pub read_paused: bool,
    /// What a write done on another thread this turn found, for the event loop to act on.
    pub write_result: Option<Flushed>,
}

impl Conn {
    pub fn new(stream: TcpStream, peer: SocketAddr) -> Self {
        Conn {
            stream,
            peer,
            phase: Phase::Http { buf: Vec::new() },
            out: Outbound::default(),
            shut: false,
            registered: Interest::READABLE,
            dirty: false,
            write_blocked: false,
            dead: false,
            deadline: None,
            peer_eof: false,
            read_paused: false,
            write_result: None,
        }
    }

    /// The interest this connection needs now, derived from its state.
    pub fn wanted_interest(&self) -> Interest {
        if self.write_blocked {
            Interest::READABLE | Interest::WRITABLE
        } else {
            Interest::READABLE
        }
    }

    /// The WebSocket client behind this connection, if it is one (and not closing).
    pub fn client(&self) -> Option<ClientId> {
        match &self.phase {
            Phase::WebSocket { client, .. } => Some(*client),
            _ => None,
        }
    }

    /// Bytes queued and not yet written.
    pub fn queued(&self) -> usize {
        self.out.len()
    }

    /// Queues an HTTP response. With `close`, the connection ends once it is written.
    pub fn queue_response(&mut self, bytes: Vec<u8>, close: bool) {
        self.out.push(Bytes::from(bytes));
        if close {
            self.phase = Phase::Closing;
        }
    }

    /// Queues frames of the turn's batch.
    pub fn queue_frames(&mut self, span: Span) {
        self.out.push_span(span);
    }

    /// Switches to WebSocket after the `101` was queued. `leftover`: bytes that arrived after
    /// the request head (a client may send frames before it sees our answer).
    pub fn upgrade(
        &mut self,
        client: ClientId,
        user: String,
        leftover: Vec<u8>,
        config: WebSocketConfig,
    ) {
        let ctx = WebSocketContext::from_partially_read(leftover, Role::Server, Some(config));
        self.phase = Phase::WebSocket {
            ctx: Box::new(ctx),
            client,
            user,
        };
    }

    /// Reads what the socket has into the head buffer (HTTP phase), until WouldBlock, EOF or
    /// `limit` bytes are buffered.
    pub fn read_http(
        &mut self,
        scratch: &mut [u8],
        limit: usize,
        bytes_in: &mut u64,
    ) -> io::Result<HttpRead> {
        let Phase::Http { buf } = &mut self.phase else {
            return Ok(HttpRead::Drained);
        };
        while buf.len() < limit {
            let want = scratch.len().min(limit - buf.len());
            match self.stream.read(&mut scratch[..want]) {
                Ok(0) => return Ok(HttpRead::Eof),
                Ok(n) => {
                    *bytes_in += n as u64;
                    buf.extend_from_slice(&scratch[..n]);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(HttpRead::Drained),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
        Ok(HttpRead::Full)
    }

    /// Reads and drops whatever the peer sends while closing. `Ok(false)` at EOF.
    pub fn discard_input(&mut self, scratch: &mut [u8], bytes_in: &mut u64) -> io::Result<bool> {
        loop {
            match self.stream.read(scratch) {
                Ok(0) => return Ok(false),
                Ok(n) => *bytes_in += n as u64,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(true),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Reads the next complete WebSocket message, if one is there. Pongs and close replies
    /// tungstenite produces on the way are queued.
    pub fn read_message(
        &mut self,
        bytes_in: &mut u64,
    ) -> Result<Option<Message>, tungstenite::Error> {
        let Phase::WebSocket { ctx, .. } = &mut self.phase else {
            return Ok(None);
        };
        let mut io = Io {
            stream: &mut self.stream,
            out: &mut self.out,
            bytes_in,
        };
        let result = ctx.read(&mut io);
        // A pong or close reply may be waiting inside tungstenite: move it to the queue.
        let _ = ctx.flush(&mut io);
        match result {
            Ok(message) => Ok(Some(message)),
            Err(tungstenite::Error::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Queues a WebSocket ping (heartbeat).
    pub fn send_ping(&mut self) {
        if let Phase::WebSocket { ctx, .. } = &mut self.phase {
            let mut bytes_in = 0;
            let mut io = Io {
                stream: &mut self.stream,
                out: &mut self.out,
                bytes_in: &mut bytes_in,
            };
            // Writes into the queue cannot fail; a closing context refuses, which is fine.
            let _ = ctx.write(&mut io, Message::Ping(Bytes::new()));
            let _ = ctx.flush(&mut io);
        }
    }

    /// Ends the WebSocket: queues a close frame (unless `code` is `None`: the peer is gone or
    /// already closed) and moves to [`Phase::Closing`]. Frames not yet started are dropped
    /// first when `drop_queued` (a slow consumer would otherwise get its whole backlog before
    /// the close). Returns the client that left, if this was a live WebSocket.
    pub fn close_ws(
        &mut self,
        code: Option<(u16, &str)>,
        drop_queued: bool,
    ) -> Option<(ClientId, String)> {
        let Phase::WebSocket { ctx, client, user } =
            std::mem::replace(&mut self.phase, Phase::Closing)
        else {
            return None;
        };
        let mut ctx = ctx;
        if drop_queued {
            self.out.drop_unstarted();
        }
        if let Some((code, reason)) = code {
            let mut bytes_in = 0;
            let mut io = Io {
                stream: &mut self.stream,
                out: &mut self.out,
                bytes_in: &mut bytes_in,
            };
            let frame = CloseFrame {
                code: CloseCode::from(code),
                reason: reason.into(),
            };
            // Queues the close frame (or the reply to the peer's close) behind whole frames.
            let _ = ctx.close(&mut io, Some(frame));
            let _ = ctx.flush(&mut io);
        } else {
            // The peer closed first: only its reply (already produced by tungstenite) goes out.
            let mut bytes_in = 0;
            let _ = ctx.flush(&mut Io {
                stream: &mut self.stream,
                out: &mut self.out,
                bytes_in: &mut bytes_in,
            });
        }
        Some((client, user))
    }

    /// Writes what is queued. A closing connection shuts its write side once all is out.
    /// Every batch this connection has frames of must be sealed.
    pub fn flush(&mut self, batch: &Batch, bytes_out: &mut u64) -> Flushed {
        self.out.resolve(batch);
        let before = self.out.len();
        let result = self.out.write_to(&mut self.stream);
        *bytes_out += (before - self.out.len()) as u64;
        match result {
            Ok(true) => {}
            Ok(false) => {
                self.out.own_shared();
                return Flushed::Blocked;
            }
            Err(_) => return Flushed::Gone,
        }
        if matches!(self.phase, Phase::Closing) && !self.shut {
            self.shut = true;
            // The server ends the TCP connection first (RFC 6455 section 7.1.1); the peer's
            // FIN then ends the lingering read.
            let _ = self.stream.shutdown(Shutdown::Write);
        }
        Flushed::All
    }
}
