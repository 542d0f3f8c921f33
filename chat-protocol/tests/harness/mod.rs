//! A test harness that drives [`ChatServer`] in virtual time: `input`, `advance`, `drain`.
#![allow(dead_code)] // each test binary uses a different part of it

use std::time::{Duration, Instant};

use chat_protocol::{
    ChatServer, ClientId, Config, Input, Now, Output, Payload, Protocol, RestoredMessage, Resume,
    RoomName, StoreFailed, StoreTicket,
};
use chrono::{DateTime, TimeZone, Utc};

/// The wall-clock time every scenario starts at.
pub fn start_wall() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 21, 20, 52, 58).unwrap() + Duration::from_millis(123)
}

/// A room name the tests know to be valid.
pub fn room(name: &str) -> RoomName {
    RoomName::parse(name).expect("tests use valid room names")
}

/// When the messages of [`restored`] were sent: an hour before the start.
pub fn then() -> DateTime<Utc> {
    start_wall() - Duration::from_secs(3600)
}

/// bob's message `m{id}` in `general`, as storage gives it back (every tenth with a
/// `client_msg_id`), sent at [`then`].
pub fn restored(id: u64) -> RestoredMessage {
    RestoredMessage {
        id,
        user: "bob".into(),
        text: format!("m{id}"),
        client_msg_id: (id % 10 == 0).then(|| format!("c-{id}")),
        timestamp: then(),
        deleted: false,
    }
}

/// The v2 `message` frame of [`restored`] (live or in a history alike).
pub fn restored_frame(id: u64) -> String {
    let key = (id % 10 == 0).then(|| format!("c-{id}"));
    v2::message(
        id,
        "general",
        "bob",
        &format!("m{id}"),
        key.as_deref(),
        "2026-11-21T19:52:58.123Z",
    )
}

pub struct Harness {
    pub server: ChatServer,
    pub now: Now,
}

impl Harness {
    pub fn new() -> Self {
        Self::with_config(Config::default())
    }

    pub fn with_config(config: Config) -> Self {
        Harness {
            server: ChatServer::new(config),
            // Instant has no fixed origin; only differences from this base are ever used.
            now: Now {
                instant: Instant::now(),
                wall: start_wall(),
            },
        }
    }

    /// Feeds one input at the current virtual time; panics on a contract error.
    pub fn input(&mut self, input: Input) {
        self.server
            .handle_input(self.now, input)
            .expect("the harness keeps the driver contract");
    }

    /// Moves both clocks forward.
    pub fn advance(&mut self, by: Duration) {
        self.now.instant += by;
        self.now.wall += by;
    }

    /// Everything the server wants done now.
    pub fn drain(&mut self) -> Vec<Output> {
        std::iter::from_fn(|| self.server.poll_output()).collect()
    }

    /// A v1 (tutorial) client in `general`, as the tutorial's URL gives.
    pub fn connect(&mut self, id: u64, user: &str) {
        self.connect_with(id, user, "general", Protocol::V1, None);
    }

    /// A v2 client in `room`, not resuming.
    pub fn connect_v2(&mut self, id: u64, user: &str, room: &str) {
        self.connect_with(id, user, room, Protocol::V2, None);
    }

    /// Any client; `room` must be a valid room name.
    pub fn connect_with(
        &mut self,
        id: u64,
        user: &str,
        room: &str,
        protocol: Protocol,
        resume: Option<Resume>,
    ) {
        self.input(Input::Connect {
            client: ClientId(id),
            user: user.to_owned(),
            room: RoomName::parse(room).expect("tests use valid room names"),
            protocol,
            resume,
        });
    }

    /// A text frame: a chat message from a v1 client, a JSON command from a v2 one.
    pub fn text(&mut self, id: u64, text: &str) {
        self.input(Input::Text {
            client: ClientId(id),
            text: Payload::from(text),
        });
    }

    /// The driver says this connection is an admin's.
    pub fn grant_admin(&mut self, id: u64) {
        self.input(Input::Grant {
            client: ClientId(id),
            admin: true,
        });
    }

    /// A ping or pong from the client.
    pub fn activity(&mut self, id: u64) {
        self.input(Input::Activity {
            client: ClientId(id),
        });
    }

    pub fn disconnect(&mut self, id: u64) {
        self.input(Input::Disconnect {
            client: ClientId(id),
        });
    }

    /// A Timeout at the current virtual time (time does not move).
    pub fn timeout(&mut self) {
        self.input(Input::Timeout);
    }

    /// Storage committed these tickets in one batch.
    pub fn stored(&mut self, tickets: &[u64]) {
        self.input(Input::Stored {
            tickets: tickets.iter().map(|&t| StoreTicket(t)).collect(),
            result: Ok(()),
        });
    }

    /// Storage failed a batch of these tickets.
    pub fn store_failed(&mut self, tickets: &[u64]) {
        self.input(Input::Stored {
            tickets: tickets.iter().map(|&t| StoreTicket(t)).collect(),
            result: Err(failed()),
        });
    }

    /// Storage answered a Fetch.
    pub fn fetched(&mut self, ticket: u64, result: Result<Vec<RestoredMessage>, StoreFailed>) {
        self.input(Input::Fetched {
            ticket: StoreTicket(ticket),
            result,
        });
    }
}

/// What a failing storage reports.
pub fn failed() -> StoreFailed {
    StoreFailed {
        reason: "disk I/O error".into(),
    }
}

/// The JSON frame the tutorial would send, as a string, for comparisons (fields in the
/// tutorial's order; `serde_json::json!` would sort them).
pub fn frame(kind: &str, client_id: &str, message: &str, timestamp: &str) -> String {
    let q = |s: &str| serde_json::to_string(s).expect("a str always serializes");
    format!(
        r#"{{"type":{},"client_id":{},"message":{},"timestamp":{}}}"#,
        q(kind),
        q(client_id),
        q(message),
        q(timestamp)
    )
}

/// An error frame: the tutorial's four fields, then `code`.
pub fn error_frame(client_id: &str, message: &str, timestamp: &str, code: &str) -> String {
    let f = frame("error", client_id, message, timestamp);
    let q = serde_json::to_string(code).expect("a str always serializes");
    format!(r#"{},"code":{q}}}"#, &f[..f.len() - 1])
}

/// `Output::Send` to each of `to`, all carrying `payload`.
pub fn sends(to: &[u64], payload: &str) -> Vec<Output> {
    to.iter()
        .map(|&id| Output::Send {
            to: ClientId(id),
            payload: Payload::from(payload),
        })
        .collect()
}

/// `Output::Send` of `payload` to one client.
pub fn send(to: u64, payload: &str) -> Output {
    Output::Send {
        to: ClientId(to),
        payload: Payload::from(payload),
    }
}

/// A JSON string literal.
pub fn q(s: &str) -> String {
    serde_json::to_string(s).expect("a str always serializes")
}

/// A JSON object with exactly these fields in this order; each value is JSON already.
pub fn object(fields: &[(&str, String)]) -> String {
    let fields: Vec<String> = fields
        .iter()
        .map(|(k, v)| format!("{}:{v}", q(k)))
        .collect();
    format!("{{{}}}", fields.join(","))
}

/// The v2 frames as `PROTOCOL.md` shows them, field for field, as strings.
pub mod v2 {
    use super::{object, q};

    pub fn welcome(
        user: &str,
        room: &str,
        epoch: u64,
        members: &[&str],
        history_limit: usize,
        ts: &str,
    ) -> String {
        let members: Vec<String> = members.iter().map(|m| q(m)).collect();
        object(&[
            ("type", q("welcome")),
            ("client_id", q(user)),
            ("room", q(room)),
            ("epoch", epoch.to_string()),
            ("members", format!("[{}]", members.join(","))),
            ("history_limit", history_limit.to_string()),
            ("timestamp", q(ts)),
        ])
    }

    pub fn gap(room: &str, epoch: u64, since: u64, message: &str, ts: &str) -> String {
        object(&[
            ("type", q("gap")),
            ("room", q(room)),
            ("epoch", epoch.to_string()),
            ("since", since.to_string()),
            ("message", q(message)),
            ("timestamp", q(ts)),
        ])
    }

    /// `messages` are `message` frames, as [`message`] gives them.
    pub fn history(room: &str, epoch: u64, resumed: bool, messages: &[String], ts: &str) -> String {
        object(&[
            ("type", q("history")),
            ("room", q(room)),
            ("epoch", epoch.to_string()),
            ("resumed", resumed.to_string()),
            ("messages", format!("[{}]", messages.join(","))),
            ("timestamp", q(ts)),
        ])
    }

    pub fn connection(user: &str, room: &str, ts: &str) -> String {
        object(&[
            ("type", q("connection")),
            ("client_id", q(user)),
            ("message", q(&format!("{user} joined the chat"))),
            ("room", q(room)),
            ("timestamp", q(ts)),
        ])
    }

    pub fn disconnection(user: &str, room: &str, ts: &str) -> String {
        object(&[
            ("type", q("disconnection")),
            ("client_id", q(user)),
            ("message", q(&format!("{user} left the chat"))),
            ("room", q(room)),
            ("timestamp", q(ts)),
        ])
    }

    pub fn message(
        id: u64,
        room: &str,
        user: &str,
        text: &str,
        client_msg_id: Option<&str>,
        ts: &str,
    ) -> String {
        let mut fields = vec![
            ("type", q("message")),
            ("id", id.to_string()),
            ("room", q(room)),
            ("client_id", q(user)),
            ("message", q(text)),
        ];
        if let Some(c) = client_msg_id {
            fields.push(("client_msg_id", q(c)));
        }
        fields.push(("timestamp", q(ts)));
        object(&fields)
    }

    /// A message an admin deleted: empty text, `"deleted":true` after the timestamp.
    pub fn message_deleted(id: u64, room: &str, user: &str, ts: &str) -> String {
        let m = message(id, room, user, "", None, ts);
        format!(r#"{},"deleted":true}}"#, &m[..m.len() - 1])
    }

    pub fn deleted(room: &str, id: u64, ts: &str) -> String {
        object(&[
            ("type", q("deleted")),
            ("room", q(room)),
            ("id", id.to_string()),
            ("timestamp", q(ts)),
        ])
    }

    pub fn error(user: &str, message: &str, code: &str, ts: &str) -> String {
        object(&[
            ("type", q("error")),
            ("client_id", q(user)),
            ("message", q(message)),
            ("code", q(code)),
            ("timestamp", q(ts)),
        ])
    }

    pub fn typing(user: &str, room: &str, ts: &str) -> String {
        object(&[
            ("type", q("typing")),
            ("client_id", q(user)),
            ("room", q(room)),
            ("timestamp", q(ts)),
        ])
    }

    pub fn direct(from: &str, to: &str, message: &str, room: &str, ts: &str) -> String {
        object(&[
            ("type", q("direct")),
            ("from", q(from)),
            ("to", q(to)),
            ("message", q(message)),
            ("room", q(room)),
            ("timestamp", q(ts)),
        ])
    }

    pub fn ack(client_msg_id: &str, id: u64, ts: &str) -> String {
        object(&[
            ("type", q("ack")),
            ("client_msg_id", q(client_msg_id)),
            ("id", id.to_string()),
            ("timestamp", q(ts)),
        ])
    }

    /// The `ack` of a durable server.
    pub fn ack_stored(client_msg_id: &str, id: u64, stored: bool, ts: &str) -> String {
        object(&[
            ("type", q("ack")),
            ("client_msg_id", q(client_msg_id)),
            ("id", id.to_string()),
            ("timestamp", q(ts)),
            ("stored", stored.to_string()),
        ])
    }

    /// `messages` are `message` frames, as [`message`] gives them.
    pub fn history_page(
        room: &str,
        before: u64,
        messages: &[String],
        more: bool,
        ts: &str,
    ) -> String {
        object(&[
            ("type", q("history_page")),
            ("room", q(room)),
            ("before", before.to_string()),
            ("messages", format!("[{}]", messages.join(","))),
            ("more", more.to_string()),
            ("timestamp", q(ts)),
        ])
    }

    /// The JSON text of a `history_before` command.
    pub fn before(before: u64, limit: Option<usize>) -> String {
        match limit {
            Some(l) => object(&[
                ("type", q("history_before")),
                ("before", before.to_string()),
                ("limit", l.to_string()),
            ]),
            None => object(&[
                ("type", q("history_before")),
                ("before", before.to_string()),
            ]),
        }
    }

    /// The JSON text of a `message` command.
    pub fn say(text: &str, client_msg_id: Option<&str>) -> String {
        match client_msg_id {
            Some(c) => object(&[
                ("type", q("message")),
                ("message", q(text)),
                ("client_msg_id", q(c)),
            ]),
            None => object(&[("type", q("message")), ("message", q(text))]),
        }
    }

    /// The JSON text of a `direct` command.
    pub fn dm(to: &str, text: &str) -> String {
        object(&[("type", q("direct")), ("to", q(to)), ("message", q(text))])
    }

    pub const TYPING: &str = r#"{"type":"typing"}"#;
}
