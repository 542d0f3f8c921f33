//! A raw HTTP/1.1 client for the end-to-end tests: bytes written exactly as given over a plain
//! `TcpStream`, responses parsed strictly, every read bounded by [`TIMEOUT`], so a hostile request
//! can be anything and a missing answer fails the test instead of hanging it.
//!
//! Include it next to `mod common;` with `#[path = "common/http_client.rs"] mod http_client;`.
#![allow(dead_code)] // each test binary uses a different part of the helpers

use std::io::{self, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};

/// How long any single read or write may wait before the test fails.
pub use crate::common::TIMEOUT;

/// One parsed response.
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl std::fmt::Debug for Response {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Response")
            .field("status", &self.status)
            .field("headers", &self.headers)
            .field("body", &String::from_utf8_lossy(&self.body))
            .finish()
    }
}

impl Response {
    /// The value of header `name` (case-insensitive); panics if it is repeated.
    pub fn header(&self, name: &str) -> Option<&str> {
        let mut values = self
            .headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str());
        let value = values.next();
        assert!(values.next().is_none(), "{name} is repeated: {self:?}");
        value
    }

    pub fn content_length(&self) -> Option<usize> {
        self.header("Content-Length")
            .map(|v| v.parse().unwrap_or_else(|_| panic!("Content-Length {v:?}")))
    }

    pub fn body_text(&self) -> &str {
        std::str::from_utf8(&self.body).expect("a UTF-8 body")
    }
}

/// A raw HTTP/1.1 connection that keeps unread bytes between responses, so pipelined responses
/// are parsed exactly where the previous one ended.
pub struct Http {
    pub stream: TcpStream,
    buf: Vec<u8>,
}

impl Http {
    pub fn connect(addr: SocketAddr) -> Http {
        let stream = crate::common::tcp_connect(addr);
        Http {
            stream,
            buf: Vec::new(),
        }
    }

    /// Writes all of `bytes`; panics if the server stops taking them.
    pub fn send(&mut self, bytes: impl AsRef<[u8]>) {
        self.stream
            .write_all(bytes.as_ref())
            .expect("write the request");
    }

    /// Writes all of `bytes`, or says why not (the server may rightly hang up on a hostile
    /// request before taking all of it).
    pub fn try_send(&mut self, bytes: impl AsRef<[u8]>) -> io::Result<()> {
        self.stream.write_all(bytes.as_ref())
    }

    /// Reads more bytes into the buffer; `false` at EOF.
    fn fill(&mut self) -> bool {
        let mut chunk = [0; 16 * 1024];
        match self.stream.read(&mut chunk) {
            Ok(0) => false,
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                true
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                panic!("no answer within {TIMEOUT:?}; have {:?}", self.buffered())
            }
            Err(e) => panic!(
                "reading the response failed: {e}; have {:?}",
                self.buffered()
            ),
        }
    }

    pub fn buffered(&self) -> String {
        String::from_utf8_lossy(&self.buf).into_owned()
    }

    /// Reads one response. `to_head`: it answers a HEAD request, so it has no body whatever its
    /// Content-Length says.
    pub fn response(&mut self, to_head: bool) -> Response {
        let head_len = loop {
            if let Some(at) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break at + 4;
            }
            assert!(
                self.fill(),
                "connection closed inside a response head: {:?}",
                self.buffered()
            );
        };
        let head = String::from_utf8(self.buf[..head_len - 4].to_vec())
            .unwrap_or_else(|_| panic!("response head is not UTF-8: {:?}", self.buffered()));
        self.buf.drain(..head_len);
        let mut lines = head.split("\r\n");
        let status_line = lines.next().expect("a status line");
        // An answer to an HTTP/1.0 request may say either version (RFC 9110 section 6.2);
        // hyper says 1.0, the mio server 1.1.
        let status = status_line
            .strip_prefix("HTTP/1.1 ")
            .or_else(|| status_line.strip_prefix("HTTP/1.0 "))
            .and_then(|rest| rest.get(..3))
            .and_then(|code| code.parse().ok())
            .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
        let headers = lines
            .map(|line| {
                let (name, value) = line
                    .split_once(':')
                    .unwrap_or_else(|| panic!("bad header line {line:?}"));
                (name.to_owned(), value.trim().to_owned())
            })
            .collect();
        let mut response = Response {
            status,
            headers,
            body: Vec::new(),
        };
        let bodiless = to_head || status == 304 || (100..200).contains(&status);
        if !bodiless {
            let len = response
                .content_length()
                .unwrap_or_else(|| panic!("no Content-Length: {response:?}"));
            while self.buf.len() < len {
                assert!(self.fill(), "connection closed inside a body");
            }
            response.body = self.buf.drain(..len).collect();
        }
        response
    }

    /// Everything the server sends until it closes the connection.
    pub fn rest_until_closed(&mut self) -> Vec<u8> {
        while self.fill() {}
        std::mem::take(&mut self.buf)
    }

    /// The server must have closed the connection (a read returns 0), with nothing more sent.
    pub fn expect_closed(&mut self) {
        assert!(
            self.buf.is_empty() && !self.fill(),
            "expected the server to close the connection; it sent {:?}",
            self.buffered()
        );
    }
}

/// `method target` on a fresh connection, with `extra` header lines (each ending in `\r\n`).
pub fn request(addr: SocketAddr, method: &str, target: &str, extra: &str) -> Response {
    let mut http = Http::connect(addr);
    http.send(format!(
        "{method} {target} HTTP/1.1\r\nHost: test\r\n{extra}\r\n"
    ));
    http.response(method == "HEAD")
}

/// `GET target` on a fresh connection.
pub fn get(addr: SocketAddr, target: &str) -> Response {
    request(addr, "GET", target, "")
}

/// The body of `GET target` on a fresh connection, which must answer 200.
pub fn get_ok(addr: SocketAddr, target: &str) -> String {
    let response = get(addr, target);
    assert_eq!(response.status, 200, "GET {target}: {response:?}");
    response.body_text().to_owned()
}

/// The page's marker: a 200 for `/` with this is the chat page.
pub const PAGE_MARKER: &str = r#"id="messageInput""#;

/// The chat page is served to a fresh connection.
pub fn assert_page_served(addr: SocketAddr) {
    let page = get(addr, "/");
    assert_eq!(page.status, 200, "GET / after a hostile request: {page:?}");
    assert!(page.body_text().contains(PAGE_MARKER), "{page:?}");
}

/// A WebSocket upgrade request for `/ws/{path}` (used as given) with `extra` header lines
/// (each ending in `\r\n`), on a fresh connection: the connection (still open after a `101`)
/// and the server's answer.
pub fn upgrade(addr: SocketAddr, path: &str, extra: &str) -> (Http, Response) {
    let mut http = Http::connect(addr);
    http.send(format!(
        "GET /ws/{path} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n"
    ));
    let response = http.response(false);
    (http, response)
}
