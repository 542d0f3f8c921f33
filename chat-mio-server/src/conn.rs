//! One TCP connection: its phase (HTTP → WebSocket → closing) and where its bytes hit the socket.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::time::Instant;

use chat_protocol::{ClientId, Payload};
use mio::net::TcpStream;
use mio::Interest;
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::protocol::{CloseFrame, Role, WebSocketConfig, WebSocketContext};
use tungstenite::Message;

/// What a connection is doing.
pub enum Phase {
    /// Reading request heads; `buf` holds bytes of a head not complete yet. Several requests
    /// may follow each other on one keep-alive connection.
    Http { buf: Vec<u8> },
    /// After the `101` (which may still sit in [`Conn::out`]): frames, handled by tungstenite.
    WebSocket {
        ctx: Box<WebSocketContext>,
        client: ClientId,
        user: String,
    },
    /// A last answer is being written; what the peer still sends is read and dropped so the
    /// kernel does not reset the connection under the answer. Ends at EOF or the deadline.
    Closing,
}

/// Result of writing out what is queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flushed {
    /// Everything is written.
    All,
    /// The socket is full; wait for WRITABLE.
    Blocked,
    /// The connection is over (error, reset, or the WebSocket close handshake completed).
    Gone,
}

pub struct Conn {
    pub stream: TcpStream,
    pub peer: SocketAddr,
    pub phase: Phase,
    /// Raw bytes that go out before anything tungstenite buffers: HTTP responses and the `101`.
    out: Vec<u8>,
    /// After `out` is written, stop writing and linger in [`Phase::Closing`].
    close_after_flush: bool,
    /// The interest registered with the poller.
    pub registered: Interest,
    /// In the event loop's list of connections to flush this turn.
    pub dirty: bool,
    /// The last write stopped at WouldBlock: WRITABLE is wanted.
    pub write_blocked: bool,
    /// Marked for removal at the end of the loop turn.
    pub dead: bool,
    /// When this connection must give up waiting (request head, idle, close linger).
    pub deadline: Option<Instant>,
}

impl Conn {
    pub fn new(stream: TcpStream, peer: SocketAddr) -> Self {
        Conn {
            stream,
            peer,
            phase: Phase::Http { buf: Vec::new() },
            out: Vec::new(),
            close_after_flush: false,
            registered: Interest::READABLE,
            dirty: false,
            write_blocked: false,
            dead: false,
            deadline: None,
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

    /// The WebSocket client behind this connection, if it is one.
    pub fn client(&self) -> Option<ClientId> {
        match &self.phase {
            Phase::WebSocket { client, .. } => Some(*client),
            _ => None,
        }
    }

    /// Queues an HTTP response. With `close`, the connection ends once it is written.
    pub fn queue_response(&mut self, bytes: &[u8], close: bool) {
        self.out.extend_from_slice(bytes);
        self.close_after_flush |= close;
    }

    /// Switches to WebSocket after the `101` was queued. `leftover`: bytes that arrived after
    /// the request head (the client may send frames before it sees our answer).
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

    /// Reads what the socket has into `buf` (HTTP phase), until WouldBlock or `limit` bytes are
    /// buffered. `Ok(false)`: the peer closed its side.
    pub fn read_http(&mut self, scratch: &mut [u8], limit: usize) -> io::Result<bool> {
        let Phase::Http { buf } = &mut self.phase else {
            return Ok(true);
        };
        while buf.len() < limit {
            let want = scratch.len().min(limit - buf.len());
            match self.stream.read(&mut scratch[..want]) {
                Ok(0) => return Ok(false),
                Ok(n) => buf.extend_from_slice(&scratch[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
        Ok(true)
    }

    /// Reads and drops whatever the peer sends while closing. `Ok(false)` at EOF.
    pub fn discard_input(&mut self, scratch: &mut [u8]) -> io::Result<bool> {
        loop {
            match self.stream.read(scratch) {
                Ok(0) => return Ok(false),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(true),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Reads the next complete WebSocket message, if one is there.
    pub fn read_message(&mut self) -> Result<Option<Message>, tungstenite::Error> {
        let Phase::WebSocket { ctx, .. } = &mut self.phase else {
            return Ok(None);
        };
        match ctx.read(&mut self.stream) {
            Ok(message) => Ok(Some(message)),
            Err(tungstenite::Error::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Buffers a text frame; it goes out at the next [`flush`](Self::flush).
    pub fn send_text(&mut self, payload: Payload) -> Result<(), tungstenite::Error> {
        let Phase::WebSocket { ctx, .. } = &mut self.phase else {
            return Ok(());
        };
        // write_buffer_size is set so high that this only buffers: the frame is on its way
        // even if the socket is full, and must never be written again.
        match ctx.write(&mut self.stream, Message::Text(payload)) {
            Err(tungstenite::Error::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => Ok(()),
            other => other,
        }
    }

    /// Starts the closing handshake with `code` and `reason`.
    pub fn send_close(&mut self, code: u16, reason: &str) {
        if let Phase::WebSocket { ctx, .. } = &mut self.phase {
            let frame = CloseFrame {
                code: CloseCode::from(code),
                reason: reason.into(),
            };
            // The frame is queued even when the write blocks; errors surface at flush.
            let _ = ctx.close(&mut self.stream, Some(frame));
        }
    }

    /// Writes what is queued: raw bytes first, then tungstenite's buffered frames.
    pub fn flush(&mut self) -> Flushed {
        while !self.out.is_empty() {
            match self.stream.write(&self.out) {
                Ok(0) => return Flushed::Gone,
                Ok(n) => {
                    self.out.drain(..n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Flushed::Blocked,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return Flushed::Gone,
            }
        }
        if self.out.capacity() > 4096 {
            // A large response is written; do not keep its buffer for the connection's life.
            self.out = Vec::new();
        }
        if self.close_after_flush {
            if !matches!(self.phase, Phase::Closing) {
                let _ = self.stream.shutdown(Shutdown::Write);
                self.phase = Phase::Closing;
            }
            return Flushed::All;
        }
        if let Phase::WebSocket { ctx, .. } = &mut self.phase {
            match ctx.flush(&mut self.stream) {
                Ok(()) => {}
                Err(tungstenite::Error::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => {
                    return Flushed::Blocked
                }
                // ConnectionClosed: our close frame is out after the peer's; the server ends
                // the TCP connection first (RFC 6455 section 7.1.1).
                Err(_) => return Flushed::Gone,
            }
        }
        Flushed::All
    }
}
