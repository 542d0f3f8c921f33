//! A blocking client for the rich chat protocol (`chat.v2`, PROTOCOL.md) in the end-to-end tests.
//!
//! The opening handshake is written by hand over a plain `std::net::TcpStream`, so a test sees the
//! server's `101` (or refusal) exactly as sent, headers included, whatever subprotocol it offered.
//! (tungstenite's own client refuses a `101` without a subprotocol when one was offered, which is
//! precisely what the negotiation tests need to look at.) After the `101` the stream is handed to
//! tungstenite. Every read and write is bounded by [`TIMEOUT`].
//!
//! Include it next to `mod common;` with `#[path = "common/v2_client.rs"] mod v2_client;`.
#![allow(dead_code)] // each test binary uses a different part of the helpers

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;

use serde_json::Value;
use tungstenite::handshake::derive_accept_key;
use tungstenite::protocol::Role;
use tungstenite::{Message, WebSocket};

use crate::common::TestServer;
pub use crate::v1::now_millis;
use crate::v1::parse_timestamp;

/// How long any single read or write may wait before the test fails.
pub use crate::common::TIMEOUT;

/// The subprotocol of the rich protocol.
pub const V2: &str = "chat.v2";

/// One chat connection (either protocol: the framing is the same).
pub type Client = WebSocket<TcpStream>;

/// The key of every handshake here (RFC 6455 section 1.3's example); its value does not matter.
const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

/// The server's answer to an upgrade request.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    /// Every header as sent, in order.
    pub headers: Vec<(String, String)>,
    /// The body of a refusal (empty for a `101`).
    pub body: String,
}

impl Reply {
    /// Every value of the header `name` (case-insensitive).
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The value of the header `name`, which must not be repeated.
    pub fn header(&self, name: &str) -> Option<&str> {
        let values = self.all(name);
        assert!(values.len() <= 1, "{name} sent more than once: {self:?}");
        values.first().copied()
    }
}

/// Sends an upgrade request for `target` (`/ws/alice?room=x`, used as given), offering
/// `Sec-WebSocket-Protocol: {offer}` when `offer` is `Some`. Returns the reply and, for a `101`,
/// the connection (whose accept key has been checked).
pub fn handshake(
    server: &TestServer,
    target: &str,
    offer: Option<&str>,
) -> (Reply, Option<Client>) {
    let mut stream = crate::common::tcp_connect(server.addr);
    let protocol = offer
        .map(|p| format!("Sec-WebSocket-Protocol: {p}\r\n"))
        .unwrap_or_default();
    let request = format!(
        "GET {target} HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n{protocol}\r\n",
        server.addr
    );
    stream
        .write_all(request.as_bytes())
        .expect("send the upgrade request");

    // The response head, and whatever came after it in the same reads.
    let mut buf = Vec::new();
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let mut chunk = [0u8; 4096];
        match stream.read(&mut chunk) {
            Ok(0) => panic!(
                "{target}: connection closed before a complete response head: {:?}",
                String::from_utf8_lossy(&buf)
            ),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if is_timeout(&e) => panic!("{target}: no response head within {TIMEOUT:?}"),
            Err(e) => panic!("{target}: reading the response head failed: {e}"),
        }
    };
    let head = std::str::from_utf8(&buf[..head_end - 4]).expect("the response head is UTF-8");
    let mut lines = head.split("\r\n");
    let status_line = lines.next().expect("a status line");
    let status: u16 = status_line
        .strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("{target}: bad status line {status_line:?}"));
    let headers: Vec<(String, String)> = lines
        .map(|line| {
            let (name, value) = line
                .split_once(':')
                .unwrap_or_else(|| panic!("{target}: bad header line {line:?}"));
            (name.trim().to_owned(), value.trim().to_owned())
        })
        .collect();
    let mut reply = Reply {
        status,
        headers,
        body: String::new(),
    };
    let rest = buf[head_end..].to_vec();

    if status == 101 {
        assert_eq!(
            reply.header("Sec-WebSocket-Accept"),
            Some(derive_accept_key(KEY.as_bytes()).as_str()),
            "{target}: wrong accept key"
        );
        let client = WebSocket::from_partially_read(stream, rest, Role::Client, None);
        return (reply, Some(client));
    }

    // A refusal: its body, by Content-Length (the server closes the connection after it).
    let length: usize = reply
        .header("Content-Length")
        .unwrap_or_else(|| panic!("{target}: refusal without Content-Length: {reply:?}"))
        .parse()
        .expect("Content-Length is a number");
    let mut body = rest;
    while body.len() < length {
        let mut chunk = [0u8; 4096];
        match stream.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => body.extend_from_slice(&chunk[..n]),
            Err(e) if is_timeout(&e) => panic!("{target}: body not complete within {TIMEOUT:?}"),
            Err(e) => panic!("{target}: reading the body failed: {e}"),
        }
    }
    assert_eq!(body.len(), length, "{target}: body length");
    reply.body = String::from_utf8(body).expect("the refusal's body is UTF-8");
    (reply, None)
}

/// `/ws/{id}` followed by `query` (`""`, or `"?room=a"` and the like).
pub fn target(id: &str, query: &str) -> String {
    format!("/ws/{id}{query}")
}

/// Connects as a v2 client: offers `chat.v2`, which the `101` must echo (once). Reads nothing.
pub fn connect_v2(server: &TestServer, id: &str, query: &str) -> Client {
    let target = target(id, query);
    let (reply, client) = handshake(server, &target, Some(V2));
    assert_eq!(reply.status, 101, "{target}: {reply:?}");
    assert_eq!(
        reply.all("Sec-WebSocket-Protocol"),
        [V2],
        "{target}: the 101 must name chat.v2: {reply:?}"
    );
    client.expect("a 101 comes with a connection")
}

/// Connects as a v1 (tutorial) client: offers no subprotocol, and none may come back. Reads
/// nothing.
pub fn connect_v1(server: &TestServer, id: &str, query: &str) -> Client {
    let target = target(id, query);
    let (reply, client) = handshake(server, &target, None);
    assert_eq!(reply.status, 101, "{target}: {reply:?}");
    assert_eq!(
        reply.all("Sec-WebSocket-Protocol"),
        Vec::<&str>::new(),
        "{target}: no subprotocol was offered: {reply:?}"
    );
    client.expect("a 101 comes with a connection")
}

/// Sends one text frame as is.
pub fn send_text(client: &mut Client, text: &str) {
    client
        .send(Message::text(text))
        .unwrap_or_else(|e| panic!("sending {text:?} failed: {e}"));
}

/// Sends one JSON command.
pub fn send_cmd(client: &mut Client, command: &Value) {
    send_text(client, &command.to_string());
}

/// Sends several text frames in one write (they reach the server together).
pub fn send_all<S: AsRef<str>>(client: &mut Client, texts: impl IntoIterator<Item = S>) {
    for text in texts {
        client
            .write(Message::text(text.as_ref()))
            .unwrap_or_else(|e| panic!("queueing {:?} failed: {e}", text.as_ref()));
    }
    client.flush().expect("flush the queued frames");
}

/// `{"type":"message","message":text}`.
pub fn message(text: &str) -> Value {
    serde_json::json!({"type": "message", "message": text})
}

/// `{"type":"message","message":text,"client_msg_id":key}`.
pub fn message_with_id(text: &str, key: &str) -> Value {
    serde_json::json!({"type": "message", "message": text, "client_msg_id": key})
}

/// `{"type":"direct","to":to,"message":text}`.
pub fn direct(to: &str, text: &str) -> Value {
    serde_json::json!({"type": "direct", "to": to, "message": text})
}

/// `{"type":"typing"}`.
pub fn typing() -> Value {
    serde_json::json!({"type": "typing"})
}

/// The next text frame as JSON, skipping pings and pongs. Panics when none comes within
/// [`TIMEOUT`], on a close, or on anything that is not a JSON text frame.
pub fn recv_raw(client: &mut Client) -> Value {
    loop {
        match client.read() {
            Ok(Message::Ping(_) | Message::Pong(_)) => {}
            Ok(Message::Text(text)) => {
                return serde_json::from_str(text.as_str())
                    .unwrap_or_else(|e| panic!("frame is not JSON ({e}): {text:?}"))
            }
            Ok(other) => panic!("expected a JSON text frame, got {other:?}"),
            Err(tungstenite::Error::Io(e)) if is_timeout(&e) => {
                panic!("no frame from the server within {TIMEOUT:?}")
            }
            Err(e) => panic!("reading a frame failed: {e}"),
        }
    }
}

/// The next frame: a JSON object with a string `type` and a well-formed, current `timestamp`
/// (also in each message of a `history` frame). Returned without its timestamps, so that a test
/// can compare the rest exactly.
pub fn recv(client: &mut Client) -> Value {
    let mut frame = recv_raw(client);
    take_timestamp(&mut frame);
    if frame["type"] == "history" {
        let messages = frame["messages"]
            .as_array_mut()
            .unwrap_or_else(|| panic!("history without a messages array"));
        for message in messages {
            assert_eq!(message["type"], "message", "history holds messages only");
            take_timestamp(message);
        }
    }
    frame
}

/// The next frame, whose `type` must be `kind`.
pub fn recv_kind(client: &mut Client, kind: &str) -> Value {
    let frame = recv(client);
    assert_eq!(frame["type"], kind, "expected a {kind} frame: {frame}");
    frame
}

/// Checks and removes the `timestamp` of a frame: RFC 3339, UTC, milliseconds, `Z`, about now.
fn take_timestamp(frame: &mut Value) {
    let shown = frame.to_string();
    let object = frame
        .as_object_mut()
        .unwrap_or_else(|| panic!("frame is not a JSON object: {shown}"));
    assert!(
        object.get("type").is_some_and(Value::is_string),
        "frame without a string type: {shown}"
    );
    let stamp = object
        .remove("timestamp")
        .unwrap_or_else(|| panic!("frame without a timestamp: {shown}"));
    let stamp = stamp
        .as_str()
        .unwrap_or_else(|| panic!("timestamp is not a string: {shown}"));
    let millis = parse_timestamp(stamp)
        .unwrap_or_else(|| panic!("timestamp {stamp:?} is not YYYY-MM-DDTHH:MM:SS.mmmZ"));
    let now = now_millis();
    assert!(
        millis <= now + 1_000 && millis >= now - 120_000,
        "timestamp {stamp:?} is not about now: {shown}"
    );
}

/// What a v2 client gets before anything live.
#[derive(Debug, Clone)]
pub struct Greeting {
    /// The `welcome` frame (without its timestamp).
    pub welcome: Value,
    /// The `gap` frame, when one came (without its timestamp).
    pub gap: Option<Value>,
    /// The `history` frame (without timestamps).
    pub history: Value,
}

impl Greeting {
    pub fn epoch(&self) -> u64 {
        self.welcome["epoch"]
            .as_u64()
            .unwrap_or_else(|| panic!("welcome.epoch is not a whole number: {}", self.welcome))
    }

    pub fn members(&self) -> Vec<&str> {
        self.welcome["members"]
            .as_array()
            .unwrap_or_else(|| panic!("welcome.members is not an array: {}", self.welcome))
            .iter()
            .map(|m| m.as_str().expect("member names are strings"))
            .collect()
    }

    /// The held messages, oldest first (without timestamps).
    pub fn messages(&self) -> &[Value] {
        self.history["messages"]
            .as_array()
            .expect("checked by recv")
    }

    /// The ids of the held messages.
    pub fn ids(&self) -> Vec<u64> {
        self.messages().iter().map(id_of).collect()
    }

    pub fn resumed(&self) -> bool {
        self.history["resumed"]
            .as_bool()
            .unwrap_or_else(|| panic!("history.resumed is not a boolean: {}", self.history))
    }
}

/// Reads `welcome`, then `gap` if one comes, then `history`, and checks that they agree with
/// each other (same room and epoch, the welcome names the joiner).
pub fn greeting(client: &mut Client, id: &str) -> Greeting {
    let welcome = recv_kind(client, "welcome");
    assert_eq!(welcome["client_id"], id, "{welcome}");
    let mut next = recv(client);
    let gap = if next["type"] == "gap" {
        let gap = next;
        next = recv(client);
        Some(gap)
    } else {
        None
    };
    assert_eq!(next["type"], "history", "after welcome (and gap): {next}");
    let greeting = Greeting {
        welcome,
        gap,
        history: next,
    };
    let epoch = greeting.epoch();
    let room = &greeting.welcome["room"];
    assert_eq!(greeting.history["room"], *room, "{greeting:?}");
    assert_eq!(greeting.history["epoch"], epoch, "{greeting:?}");
    if let Some(gap) = &greeting.gap {
        assert_eq!(gap["room"], *room, "{greeting:?}");
        assert_eq!(gap["epoch"], epoch, "{greeting:?}");
    }
    greeting
}

/// Connects as v2 and reads the greeting, and the user's own `connection` notice when
/// `first_tab` (it must be the next frame then).
pub fn join_v2(server: &TestServer, id: &str, query: &str, first_tab: bool) -> (Client, Greeting) {
    let mut client = connect_v2(server, id, query);
    let greeting = greeting(&mut client, id);
    if first_tab {
        let room = greeting.welcome["room"].clone();
        expect_join(&mut client, id, room.as_str().expect("room is a string"));
    }
    (client, greeting)
}

/// The next frame must be the v2 notice that `id` joined `room`.
pub fn expect_join(client: &mut Client, id: &str, room: &str) {
    let frame = recv(client);
    assert_eq!(
        frame,
        serde_json::json!({
            "type": "connection",
            "client_id": id,
            "message": format!("{id} joined the chat"),
            "room": room,
        })
    );
}

/// The next frame must be the v2 notice that `id` left `room`.
pub fn expect_leave(client: &mut Client, id: &str, room: &str) {
    let frame = recv(client);
    assert_eq!(
        frame,
        serde_json::json!({
            "type": "disconnection",
            "client_id": id,
            "message": format!("{id} left the chat"),
            "room": room,
        })
    );
}

/// The next frame must be a v2 chat message `text` from `from` in `room` (with any
/// `client_msg_id`); returns its id.
pub fn expect_message(client: &mut Client, from: &str, text: &str, room: &str) -> u64 {
    let frame = recv(client);
    let id = id_of(&frame);
    let mut expected = serde_json::json!({
        "type": "message",
        "id": id,
        "room": room,
        "client_id": from,
        "message": text,
    });
    if let Some(key) = frame.get("client_msg_id") {
        expected["client_msg_id"] = key.clone();
    }
    assert_eq!(frame, expected);
    id
}

/// The `id` of a `message` frame.
pub fn id_of(frame: &Value) -> u64 {
    frame["id"]
        .as_u64()
        .unwrap_or_else(|| panic!("message without a whole-number id: {frame}"))
}

/// Performs a clean close handshake from the client side: no data frame may come on the way out.
pub fn close(mut client: Client) {
    client.close(None).expect("send a close frame");
    loop {
        match client.read() {
            Ok(Message::Close(_) | Message::Ping(_) | Message::Pong(_)) => {}
            Ok(other) => panic!("expected the connection to close, got {other:?}"),
            Err(tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed) => return,
            Err(tungstenite::Error::Io(e)) if is_timeout(&e) => {
                panic!("the server did not close the connection within {TIMEOUT:?}")
            }
            Err(e) => panic!("the connection ended badly: {e}"),
        }
    }
}

fn is_timeout(e: &std::io::Error) -> bool {
    matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut)
}

/// The next JSON text frame, or the close frame that came instead: `Err((code, reason))`
/// (1005 for a close without a code). Pings and pongs are skipped.
pub fn recv_or_close(client: &mut Client) -> Result<Value, (u16, String)> {
    loop {
        match client.read() {
            Ok(Message::Text(text)) => {
                return Ok(serde_json::from_str(text.as_str())
                    .unwrap_or_else(|e| panic!("frame is not JSON ({e}): {text:?}")))
            }
            Ok(Message::Close(Some(frame))) => {
                return Err((u16::from(frame.code), frame.reason.to_string()))
            }
            Ok(Message::Close(None)) => return Err((1005, String::new())),
            Ok(_) => {}
            Err(tungstenite::Error::Io(e)) if is_timeout(&e) => {
                panic!("no frame from the server within {TIMEOUT:?}")
            }
            Err(e) => panic!("reading a frame failed: {e}"),
        }
    }
}

/// Reads past other frames until one of type `kind`; a close before it fails the test.
pub fn recv_until(client: &mut Client, kind: &str) -> Value {
    loop {
        let frame =
            recv_or_close(client).unwrap_or_else(|close| panic!("closed {close:?} before {kind}"));
        if frame["type"] == kind {
            return frame;
        }
    }
}
