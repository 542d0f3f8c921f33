//! A blocking WebSocket chat client for the end-to-end tests: tungstenite over a plain
//! `std::net::TcpStream` with a read timeout, so a frame that never comes fails the test instead
//! of hanging it.
//!
//! Include it next to `mod common;` with `#[path = "common/client.rs"] mod client;`.
#![allow(dead_code)] // each test binary uses a different part of the helpers

use std::net::TcpStream;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::Value;
use tungstenite::handshake::HandshakeError;
use tungstenite::protocol::CloseFrame;
use tungstenite::{Message, WebSocket};

use crate::common::TestServer;

/// How long any single read or write may wait before the test fails.
pub use crate::common::TIMEOUT;

/// One chat connection.
pub type Client = WebSocket<TcpStream>;

/// One frame the server sent, already checked to be the tutorial's JSON object with exactly the
/// four string fields and a well-formed timestamp.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// `connection`, `message` or `disconnection`.
    pub kind: String,
    pub client_id: String,
    pub message: String,
    /// The timestamp as sent (`2026-11-21T20:52:58.123Z`).
    pub timestamp: String,
    /// The timestamp in milliseconds since the Unix epoch.
    pub millis: i64,
}

/// Connects to `/ws/{raw_id}` (`raw_id` goes into the URL as given: percent-encode it yourself).
pub fn connect(server: &TestServer, raw_id: &str) -> Client {
    try_connect(server, raw_id).unwrap_or_else(|e| panic!("connecting as {raw_id:?} failed: {e:?}"))
}

/// Opens `n` clients from `threads` threads at once; client `i` is made by `open(i)` (which
/// connects, and may read). Returned in index order.
pub fn connect_in_parallel(
    n: usize,
    threads: usize,
    open: impl Fn(usize) -> Client + Sync,
) -> Vec<Client> {
    let open = &open;
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                s.spawn(move || {
                    (t * n / threads..(t + 1) * n / threads)
                        .map(open)
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("a connecting thread failed"))
            .collect()
    })
}

/// Like [`connect`], but returns the handshake's error (for example `Error::Http` with the
/// server's refusal) instead of panicking.
pub fn try_connect(server: &TestServer, raw_id: &str) -> Result<Client, tungstenite::Error> {
    let stream = crate::common::tcp_connect(server.addr);
    match tungstenite::client(server.ws_url(raw_id), stream) {
        Ok((client, _response)) => Ok(client),
        Err(HandshakeError::Failure(e)) => Err(e),
        Err(HandshakeError::Interrupted(_)) => {
            panic!("no handshake answer for {raw_id:?} within {TIMEOUT:?}")
        }
    }
}

/// Sends one text frame.
pub fn send(client: &mut Client, text: &str) {
    client
        .send(Message::text(text))
        .unwrap_or_else(|e| panic!("sending {:?} failed: {e}", abbreviate(text)));
}

/// The next data or close message, skipping pings and pongs. Panics when none comes in
/// [`TIMEOUT`] or the connection fails.
pub fn recv(client: &mut Client) -> Message {
    loop {
        match client.read() {
            Ok(Message::Ping(_) | Message::Pong(_)) => {}
            Ok(message) => return message,
            Err(tungstenite::Error::Io(e))
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                panic!("no frame from the server within {TIMEOUT:?}")
            }
            Err(e) => panic!("reading a frame failed: {e}"),
        }
    }
}

/// The next frame, which must be a text frame holding a JSON value.
pub fn recv_json(client: &mut Client) -> Value {
    match recv(client) {
        Message::Text(text) => serde_json::from_str(text.as_str())
            .unwrap_or_else(|e| panic!("frame is not JSON ({e}): {:?}", abbreviate(&text))),
        other => panic!("expected a JSON text frame, got {other:?}"),
    }
}

/// The next frame, checked for shape: a JSON object with exactly `type`, `client_id`,
/// `message` and `timestamp`, all strings, a known `type`, and a timestamp in RFC 3339 UTC with
/// milliseconds that is not in the future nor older than the test could possibly be.
pub fn recv_frame(client: &mut Client) -> Frame {
    let value = recv_json(client);
    let object = value
        .as_object()
        .unwrap_or_else(|| panic!("frame is not a JSON object: {value}"));
    let mut keys: Vec<&str> = object.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        ["client_id", "message", "timestamp", "type"],
        "frame must have exactly the tutorial's four fields: {value}"
    );
    let field = |name: &str| -> String {
        object[name]
            .as_str()
            .unwrap_or_else(|| panic!("{name} must be a string: {value}"))
            .to_owned()
    };
    let kind = field("type");
    assert!(
        ["connection", "message", "disconnection"].contains(&kind.as_str()),
        "unknown frame type {kind:?}: {value}"
    );
    let timestamp = field("timestamp");
    let millis = parse_timestamp(&timestamp)
        .unwrap_or_else(|| panic!("timestamp {timestamp:?} is not YYYY-MM-DDTHH:MM:SS.mmmZ"));
    let now = now_millis();
    assert!(
        millis <= now + CLOCK_SLACK_MS && millis >= now - 120_000,
        "timestamp {timestamp:?} is not about now ({now} ms since the epoch)"
    );
    Frame {
        kind,
        client_id: field("client_id"),
        message: field("message"),
        timestamp,
        millis,
    }
}

/// The next frame must be exactly this event. Returns it (for its timestamp).
pub fn expect_frame(client: &mut Client, kind: &str, client_id: &str, message: &str) -> Frame {
    let frame = recv_frame(client);
    assert_eq!(
        (
            frame.kind.as_str(),
            frame.client_id.as_str(),
            abbreviate(&frame.message).as_ref()
        ),
        (kind, client_id, abbreviate(message).as_ref()),
        "unexpected frame"
    );
    // The abbreviation above keeps failure output readable; this compares every byte.
    assert!(
        frame.message == message,
        "message differs from {kind} frame"
    );
    frame
}

/// The next frame must announce that `id` joined.
pub fn expect_join(client: &mut Client, id: &str) -> Frame {
    expect_frame(client, "connection", id, &format!("{id} joined the chat"))
}

/// The next frame must announce that `id` left.
pub fn expect_leave(client: &mut Client, id: &str) -> Frame {
    expect_frame(client, "disconnection", id, &format!("{id} left the chat"))
}

/// The next frame must be `id`'s chat message `text`.
pub fn expect_message(client: &mut Client, id: &str, text: &str) -> Frame {
    expect_frame(client, "message", id, text)
}

/// Connects every name in turn and checks that each join is announced to everyone connected so
/// far, the joiner included. Returns the clients with nothing left to read.
pub fn join_all<const N: usize>(server: &TestServer, names: [&str; N]) -> [Client; N] {
    let mut clients: Vec<Client> = Vec::with_capacity(N);
    for name in names {
        clients.push(connect(server, name));
        for client in &mut clients {
            expect_join(client, name);
        }
    }
    match clients.try_into() {
        Ok(clients) => clients,
        Err(_) => unreachable!("one client per name"),
    }
}

/// Proves that nothing else is queued for `others` (and `sender`): `sender` says `marker`, and it
/// must be the very next frame everyone gets. The server handles inputs one at a time, so any
/// frame produced before the marker would arrive before it.
pub fn expect_only_marker(sender: &mut Client, sender_id: &str, others: &mut [&mut Client]) {
    let marker = "-- marker: nothing else is queued --";
    send(sender, marker);
    expect_message(sender, sender_id, marker);
    for other in others {
        expect_message(other, sender_id, marker);
    }
}

/// Performs a clean close handshake from the client side and checks the server sent no data
/// frame on the way out (in particular not our own departure).
pub fn close(mut client: Client) {
    client.close(None).expect("send a close frame");
    let reply = expect_closed(&mut client);
    assert!(reply.is_some(), "the server must answer a close frame");
}

/// Reads until the server ends the connection, which must come with no data frame first.
/// Returns the server's close frame (`Some(None)` for a close frame without a code), or `None`
/// when the connection ended without one.
pub fn expect_closed(client: &mut Client) -> Option<Option<CloseFrame>> {
    let mut close = None;
    loop {
        match client.read() {
            Ok(Message::Close(frame)) => close = Some(frame),
            Ok(Message::Ping(_) | Message::Pong(_)) => {}
            Ok(other) => panic!("expected the connection to close, got {other:?}"),
            Err(tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed) => {
                return close
            }
            Err(tungstenite::Error::Io(e))
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                panic!("the server did not close the connection within {TIMEOUT:?}")
            }
            Err(e) => panic!("the connection ended badly: {e}"),
        }
    }
}

/// How far ahead of our clock a server timestamp may be. Client and server read the same clock,
/// so only a wall-clock step between the two readings could need more.
pub const CLOCK_SLACK_MS: i64 = 1_000;

/// Milliseconds since the Unix epoch, now, truncated like the server's timestamps.
pub fn now_millis() -> i64 {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("the clock is after 1970");
    i64::try_from(since.as_millis()).expect("fits")
}

/// Parses exactly `YYYY-MM-DDTHH:MM:SS.mmmZ` (RFC 3339, UTC, milliseconds) into milliseconds
/// since the Unix epoch. Anything else, including a valid RFC 3339 time in another shape
/// (offset instead of `Z`, no or more fraction digits), is `None`.
pub fn parse_timestamp(s: &str) -> Option<i64> {
    // chrono's `%.3f` accepts any number of digits when parsing, so pin the shape first.
    let b = s.as_bytes();
    if b.len() != 24 || b[19] != b'.' || b[23] != b'Z' {
        return None;
    }
    chrono::NaiveDateTime::parse_from_str(&s[..23], "%Y-%m-%dT%H:%M:%S%.3f")
        .ok()
        .map(|t| t.and_utc().timestamp_millis())
}

/// A long text cut down for failure messages.
fn abbreviate(text: &str) -> std::borrow::Cow<'_, str> {
    const MAX: usize = 120;
    if text.len() <= MAX {
        return text.into();
    }
    let cut = (0..=MAX)
        .rev()
        .find(|&i| text.is_char_boundary(i))
        .unwrap_or(0);
    format!("{}… ({} bytes in all)", &text[..cut], text.len()).into()
}
