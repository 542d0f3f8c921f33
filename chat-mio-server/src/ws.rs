//! The WebSocket upgrade: validating the request, naming the client, answering 101.
//! Framing itself is tungstenite's (`WebSocketContext`), driven by `conn.rs`.

use percent_encoding::percent_decode_str;
use tungstenite::handshake::derive_accept_key;
use tungstenite::protocol::WebSocketConfig;

use crate::http::{Request, Response};

/// Longest client id, in Unicode scalar values, after percent-decoding and trimming.
pub const MAX_CLIENT_ID_CHARS: usize = 32;

/// Why an upgrade request is refused: the HTTP status and a one-line reason for the body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub status: u16,
    pub reason: String,
}

impl Refusal {
    fn new(status: u16, reason: impl Into<String>) -> Self {
        Refusal {
            status,
            reason: reason.into(),
        }
    }

    /// The response that carries the refusal. The connection is closed after it: a client that
    /// failed an upgrade has no reason to keep it.
    pub fn response(&self) -> Response<'_> {
        let response = Response::text(self.status, &self.reason).keep_alive(false);
        if self.status == 426 {
            response.header("Sec-WebSocket-Version", "13")
        } else {
            response
        }
    }
}

/// A request that may become a WebSocket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    /// The client id, percent-decoded and trimmed.
    pub user: String,
    /// The `Sec-WebSocket-Accept` value.
    pub accept_key: String,
}

impl Accepted {
    /// The `101 Switching Protocols` answer.
    pub fn response(&self) -> Response<'static> {
        Response::new(101, b"")
            .header("Upgrade", "websocket")
            .header("Connection", "Upgrade")
            .header("Sec-WebSocket-Accept", self.accept_key.clone())
    }
}

/// Checks an upgrade request for `/ws/{raw_id}` (RFC 6455 section 4.2.1).
pub fn accept(request: &Request, raw_id: &str) -> Result<Accepted, Refusal> {
    if request.method != "GET" {
        return Err(Refusal::new(405, "a WebSocket upgrade must use GET\n"));
    }
    if request.minor_version < 1 {
        return Err(Refusal::new(400, "a WebSocket upgrade needs HTTP/1.1\n"));
    }
    let is_websocket = request.upgrade.as_deref().is_some_and(|u| {
        u.split(',')
            .any(|t| t.trim().eq_ignore_ascii_case("websocket"))
    });
    if !is_websocket || !request.connection_upgrade {
        return Err(Refusal::new(
            426,
            "this is a WebSocket endpoint: send Upgrade: websocket and Connection: Upgrade\n",
        ));
    }
    if request.sec_websocket_version.as_deref() != Some("13") {
        return Err(Refusal::new(
            426,
            "unsupported Sec-WebSocket-Version: use 13\n",
        ));
    }
    let key = request
        .sec_websocket_key
        .as_deref()
        .ok_or_else(|| Refusal::new(400, "missing Sec-WebSocket-Key\n"))?;
    if !is_valid_key(key) {
        return Err(Refusal::new(
            400,
            "Sec-WebSocket-Key must be 16 bytes in base64\n",
        ));
    }
    let user = client_id(raw_id).map_err(|why| Refusal::new(400, format!("{why}\n")))?;
    Ok(Accepted {
        user,
        accept_key: derive_accept_key(key.as_bytes()),
    })
}

/// A base64 encoding of 16 bytes: 22 characters of the alphabet and `==`.
fn is_valid_key(key: &str) -> bool {
    let bytes = key.as_bytes();
    bytes.len() == 24
        && bytes[22..] == *b"=="
        && bytes[..22]
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'+' || *b == b'/')
}

/// The client id from the URL path segment: percent-decoded, UTF-8, trimmed, 1 to
/// [`MAX_CLIENT_ID_CHARS`] characters, no control characters.
pub fn client_id(raw: &str) -> Result<String, &'static str> {
    let decoded = percent_decode_str(raw)
        .decode_utf8()
        .map_err(|_| "client id is not valid UTF-8")?;
    let id = decoded.trim();
    if id.is_empty() {
        return Err("client id is empty");
    }
    if id.chars().count() > MAX_CLIENT_ID_CHARS {
        return Err("client id is longer than 32 characters");
    }
    if id.chars().any(char::is_control) {
        return Err("client id contains control characters");
    }
    Ok(id.to_owned())
}

/// tungstenite's buffers, sized for a chat server: many mostly idle connections.
pub fn config(max_message_size: usize) -> WebSocketConfig {
    WebSocketConfig::default()
        // tungstenite allocates (and zero-fills) the whole read buffer per connection; its
        // 128 KiB default would cost 128 KiB of RSS for every idle client.
        .read_buffer_size(4 * 1024)
        // Frames are only buffered on write; the event loop flushes each connection once per
        // loop turn, so one syscall carries every frame of that turn.
        .write_buffer_size(usize::MAX - 1)
        .max_write_buffer_size(usize::MAX)
        .max_message_size(Some(max_message_size))
        .max_frame_size(Some(max_message_size))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_ids() {
        let ok = [
            ("alice", "alice"),
            ("%20bob%20", "bob"),
            ("J%C3%BCrgen", "Jürgen"),
            ("%F0%9F%8E%89party", "🎉party"),
            ("a%2Fb", "a/b"),
            (&"x".repeat(32), &"x".repeat(32)),
        ];
        for (raw, id) in ok {
            assert_eq!(client_id(raw).as_deref(), Ok(id), "{raw:?}");
        }
        let bad = [
            "",
            "%20%20",
            "%FF",
            "a%0Ab",
            "a%00",
            &"x".repeat(33),
            &"é".repeat(33),
        ];
        for raw in bad {
            assert!(client_id(raw).is_err(), "{raw:?} must be refused");
        }
    }

    #[test]
    fn keys() {
        assert!(is_valid_key("dGhlIHNhbXBsZSBub25jZQ=="));
        for key in [
            "",
            "abc",
            "dGhlIHNhbXBsZSBub25jZQ=",
            "dGhlIHNhbXBsZSBub25jZ!==",
            "dGhlIHNhbXBsZSBub25jZQ===",
        ] {
            assert!(!is_valid_key(key), "{key:?}");
        }
    }

    #[test]
    fn accept_key_is_the_rfc_example() {
        // RFC 6455 section 1.3.
        assert_eq!(
            derive_accept_key(b"dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }
}
