//! A WebSocket client built by hand over a plain `TcpStream`, for tests that must send what no
//! well-behaved library would: unmasked frames, reserved opcodes and bits, lying length headers,
//! a message one byte at a time, pings without end.
//!
//! The handshake is done manually; after it, frames go out exactly as built here and the
//! server's frames are parsed without any automatic reply (no pongs, no close answers), so the
//! test sees precisely what the server did. Every read is bounded by [`TIMEOUT`].
//!
//! Include it with `#[path = "common/raw_ws.rs"] mod raw_ws;`.
#![allow(dead_code)] // each test binary uses a different part of the helpers

use std::io::{self, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};

/// First-byte bits and opcodes (RFC 6455 section 5.2).
pub const FIN: u8 = 0x80;
pub const RSV1: u8 = 0x40;
pub const OP_CONTINUATION: u8 = 0x0;
pub const OP_TEXT: u8 = 0x1;
pub const OP_BINARY: u8 = 0x2;
pub const OP_CLOSE: u8 = 0x8;
pub const OP_PING: u8 = 0x9;
pub const OP_PONG: u8 = 0xA;

/// The mask every frame built here uses. Its value does not matter to the server; a fixed one
/// keeps the bytes on the wire reproducible.
pub const MASK: [u8; 4] = [0x5a, 0x17, 0xc3, 0x8e];

/// A frame header: `first` is FIN/RSV bits and opcode, `len` the payload length it claims.
/// Masked (`mask: Some`) as clients must, or not. The length uses the shortest encoding.
pub fn header(first: u8, len: u64, mask: Option<[u8; 4]>) -> Vec<u8> {
    let mask_bit = if mask.is_some() { 0x80 } else { 0 };
    let mut out = vec![first];
    match len {
        0..=125 => out.push(mask_bit | len as u8),
        126..=0xffff => {
            out.push(mask_bit | 126);
            out.extend((len as u16).to_be_bytes());
        }
        _ => {
            out.push(mask_bit | 127);
            out.extend(len.to_be_bytes());
        }
    }
    if let Some(mask) = mask {
        out.extend(mask);
    }
    out
}

/// A complete client frame, masked with [`MASK`].
pub fn masked(first: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = header(first, payload.len() as u64, Some(MASK));
    out.extend(payload.iter().zip(MASK.iter().cycle()).map(|(b, m)| b ^ m));
    out
}

/// A complete frame without a mask, which a server must refuse from a client.
pub fn unmasked(first: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = header(first, payload.len() as u64, None);
    out.extend_from_slice(payload);
    out
}

/// A single-frame text message, masked.
pub fn text(message: &str) -> Vec<u8> {
    masked(FIN | OP_TEXT, message.as_bytes())
}

/// One frame from the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub fin: bool,
    pub opcode: u8,
    pub payload: Vec<u8>,
}

impl Frame {
    /// The close code and reason of a close frame (`None` for a close without a body).
    pub fn close_body(&self) -> Option<(u16, String)> {
        assert_eq!(self.opcode, OP_CLOSE, "not a close frame: {self:?}");
        if self.payload.is_empty() {
            return None;
        }
        assert!(self.payload.len() >= 2, "close body of one byte: {self:?}");
        let code = u16::from_be_bytes([self.payload[0], self.payload[1]]);
        let reason = String::from_utf8(self.payload[2..].to_vec())
            .unwrap_or_else(|_| panic!("close reason is not UTF-8: {self:?}"));
        Some((code, reason))
    }
}

/// What the next read found.
#[derive(Debug)]
pub enum Next {
    Frame(Frame),
    /// The server closed its side (FIN).
    Eof,
    /// The connection failed (for example reset by the server).
    Failed(io::Error),
}

/// One hand-driven WebSocket connection.
pub struct RawWs {
    pub stream: TcpStream,
    /// Bytes read; those before `start` are parsed already.
    buf: Vec<u8>,
    start: usize,
}

impl RawWs {
    /// Connects to `/ws/{raw_id}` and completes the upgrade by hand. Panics unless the server
    /// answers `101`.
    pub fn connect(addr: SocketAddr, raw_id: &str) -> RawWs {
        let stream = crate::common::tcp_connect(addr);
        stream.set_nodelay(true).expect("TCP_NODELAY");
        let mut ws = RawWs {
            stream,
            buf: Vec::new(),
            start: 0,
        };
        let request = format!(
            "GET /ws/{raw_id} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\n\
             Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
             Sec-WebSocket-Version: 13\r\n\r\n"
        );
        ws.send(request.as_bytes());
        let head_end = loop {
            if let Some(at) = ws.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break at + 4;
            }
            assert!(
                ws.fill().expect("read the upgrade answer") > 0,
                "closed before the 101: {:?}",
                String::from_utf8_lossy(&ws.buf)
            );
        };
        let head = String::from_utf8_lossy(&ws.buf[..head_end]).into_owned();
        assert!(
            head.starts_with("HTTP/1.1 101 "),
            "upgrade refused: {head:?}"
        );
        // Header names are case-insensitive (RFC 9110 section 5.1): hyper writes them in
        // lower case, the mio server as the RFCs spell them.
        let accept = head.split("\r\n").find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("Sec-WebSocket-Accept")
                .then(|| value.trim())
        });
        assert_eq!(
            accept,
            Some("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="),
            "wrong accept key: {head:?}"
        );
        ws.buf.drain(..head_end);
        ws
    }

    /// Writes `bytes`; panics if that fails.
    pub fn send(&mut self, bytes: &[u8]) {
        self.stream
            .write_all(bytes)
            .unwrap_or_else(|e| panic!("writing {} bytes failed: {e}", bytes.len()));
    }

    /// Writes `bytes`, tolerating a server that already hung up (it may close the connection
    /// before a hostile frame is even complete).
    pub fn send_lenient(&mut self, bytes: &[u8]) {
        if let Err(e) = self.stream.write_all(bytes) {
            assert!(
                matches!(
                    e.kind(),
                    ErrorKind::BrokenPipe
                        | ErrorKind::ConnectionReset
                        | ErrorKind::ConnectionAborted
                ),
                "writing failed otherwise than by the server hanging up: {e}"
            );
        }
    }

    /// Reads more bytes into the buffer. `Ok(0)` at EOF.
    fn fill(&mut self) -> io::Result<usize> {
        if self.start > 0 {
            // Parsing only advances `start`, so a flood of small frames costs no copying.
            self.buf.drain(..self.start);
            self.start = 0;
        }
        let mut chunk = [0; 64 * 1024];
        loop {
            match self.stream.read(&mut chunk) {
                Ok(n) => {
                    self.buf.extend_from_slice(&chunk[..n]);
                    return Ok(n);
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// A complete frame at the front of the buffer, if there is one.
    fn parse(&mut self) -> Option<Frame> {
        let b = &self.buf[self.start..];
        if b.len() < 2 {
            return None;
        }
        assert_eq!(b[1] & 0x80, 0, "the server sent a masked frame");
        let (len, at) = match b[1] & 0x7f {
            126 if b.len() >= 4 => (u64::from(u16::from_be_bytes([b[2], b[3]])), 4),
            127 if b.len() >= 10 => (u64::from_be_bytes(b[2..10].try_into().expect("8")), 10),
            126 | 127 => return None,
            n => (u64::from(n), 2),
        };
        let end = at + usize::try_from(len).expect("frame length fits");
        if b.len() < end {
            return None;
        }
        let frame = Frame {
            fin: b[0] & FIN != 0,
            opcode: b[0] & 0x0f,
            payload: b[at..end].to_vec(),
        };
        self.start += end;
        Some(frame)
    }

    /// The next frame, or how the connection ended. Panics when nothing comes within the
    /// stream's read timeout ([`TIMEOUT`] unless changed).
    pub fn next(&mut self) -> Next {
        self.try_next()
            .unwrap_or_else(|| panic!("nothing from the server within the read timeout"))
    }

    /// Like [`next`](Self::next), but `None` when the read timeout passes first (for polling
    /// with a short timeout). A frame cut by the timeout stays buffered for the next call.
    pub fn try_next(&mut self) -> Option<Next> {
        loop {
            if let Some(frame) = self.parse() {
                return Some(Next::Frame(frame));
            }
            match self.fill() {
                Ok(0) => {
                    assert!(
                        self.buf.is_empty(),
                        "connection ended inside a frame: {} bytes left",
                        self.buf.len()
                    );
                    return Some(Next::Eof);
                }
                Ok(_) => {}
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    return None
                }
                Err(e) => return Some(Next::Failed(e)),
            }
        }
    }

    /// The next frame, which must exist (no EOF or error).
    pub fn next_frame(&mut self) -> Frame {
        match self.next() {
            Next::Frame(frame) => frame,
            other => panic!("expected a frame, got {other:?}"),
        }
    }

    /// The next frame must be a text frame; returns it parsed as JSON.
    pub fn expect_json(&mut self) -> serde_json::Value {
        let frame = self.next_frame();
        assert_eq!(
            (frame.opcode, frame.fin),
            (OP_TEXT, true),
            "expected one text frame, got {frame:?}"
        );
        serde_json::from_slice(&frame.payload)
            .unwrap_or_else(|e| panic!("text frame is not JSON ({e}): {frame:?}"))
    }

    /// The next frame must be the server's close frame with `code` and `reason`, and then the
    /// server must end the connection. Pings before the close are allowed; any other frame is
    /// not.
    pub fn expect_close(&mut self, code: u16, reason: &str) {
        self.expect_close_after(code, reason, |_| false);
    }

    /// Like [`expect_close`](Self::expect_close), but text frames (JSON) for which `allowed`
    /// is true may come before the close frame.
    pub fn expect_close_after(
        &mut self,
        code: u16,
        reason: &str,
        mut allowed: impl FnMut(&serde_json::Value) -> bool,
    ) {
        let frame = loop {
            let frame = self.next_frame();
            match frame.opcode {
                OP_PING => {}
                OP_TEXT => {
                    let value: serde_json::Value = serde_json::from_slice(&frame.payload)
                        .unwrap_or_else(|e| panic!("text frame is not JSON ({e}): {frame:?}"));
                    assert!(
                        allowed(&value),
                        "expected close {code} {reason:?}, got the text frame {value}"
                    );
                }
                _ => break frame,
            }
        };
        assert_eq!(
            frame.close_body(),
            Some((code, reason.to_owned())),
            "expected close {code} {reason:?}, got {frame:?}"
        );
        self.expect_end();
    }

    /// The server must end the connection now, sending nothing more.
    pub fn expect_end(&mut self) {
        match self.next() {
            Next::Eof => {}
            other => panic!("expected the server to end the connection, got {other:?}"),
        }
    }
}
