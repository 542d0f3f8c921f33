//! The v1 (tutorial) frames: the tutorial's `{"type","client_id","message","timestamp"}`,
//! plus a `code` on error frames.

use chrono::{DateTime, Utc};
use serde::{Serialize, Serializer};

use crate::{ErrorCode, Payload};

/// The `type` of a v1 frame. v1 clients hear of their own room only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EventKind {
    /// `"connection"`: someone joined ("ID joined the chat"); sent to every v1 client in the room, per
    /// connection, the joiner too.
    Connection,
    /// `"message"`: someone's chat text; sent to everyone in the room, the sender too.
    Message,
    /// `"disconnection"`: someone left ("ID left the chat"); sent to every v1 client still in the
    /// room, per connection.
    Disconnection,
    /// `"error"`: the server refused what this client did; sent to that client alone, with a
    /// machine-readable [`code`](Event::code).
    Error,
}

/// One frame as the tutorial defines it. Field order is the tutorial's, then the optional
/// `code` this server adds to error frames.
#[derive(Debug, Clone, Serialize)]
pub struct Event<'a> {
    /// What happened.
    #[serde(rename = "type")]
    pub kind: EventKind,
    /// Whose event it is.
    pub client_id: &'a str,
    /// The notice text or the chat message.
    pub message: &'a str,
    /// When the server handled it: RFC 3339 in UTC with milliseconds and an explicit `Z`.
    #[serde(serialize_with = "rfc3339_millis")]
    pub timestamp: DateTime<Utc>,
    /// A machine-readable reason for an [`EventKind::Error`] frame, such as `"rate_limited"`.
    /// Left out of the JSON when `None`, so the tutorial's frames are unchanged.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<ErrorCode>,
}

impl<'a> Event<'a> {
    /// A frame of `kind` for `client_id`, without a `code`.
    pub fn new(
        kind: EventKind,
        client_id: &'a str,
        message: &'a str,
        timestamp: DateTime<Utc>,
    ) -> Self {
        Event {
            kind,
            client_id,
            message,
            timestamp,
            code: None,
        }
    }

    /// The same frame with a `code`.
    #[must_use]
    pub fn with_code(mut self, code: ErrorCode) -> Self {
        self.code = Some(code);
        self
    }

    /// Serializes the frame once, into a buffer every recipient shares.
    pub fn encode(&self) -> Payload {
        // Serializing a struct of strings and a timestamp into a Vec cannot fail: there is no
        // map with non-string keys and no IO.
        let json = serde_json::to_string(self).expect("an Event always serializes");
        Payload::from(json)
    }
}

/// `2026-11-21T20:52:58.123Z`, written straight into the serializer without a temporary String.
pub(crate) fn rfc3339_millis<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(&t.format("%Y-%m-%dT%H:%M:%S%.3fZ"))
}
