//! The v2 (`chat.v2`) frames, field for field as `PROTOCOL.md` shows them.

use chrono::{DateTime, Utc};
use serde::{Serialize, Serializer};

use crate::event::rfc3339_millis;
use crate::history::{Held, Stored};
use crate::room::MemberNames;
use crate::store::RestoredMessage;
use crate::{ErrorCode, Payload};

/// A frame's `timestamp`: RFC 3339 in UTC with milliseconds and an explicit `Z`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Stamp(pub(crate) DateTime<Utc>);

impl Serialize for Stamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        rfc3339_millis(&self.0, s)
    }
}

/// One v2 frame. The `type` comes first, then the fields in the order written here.
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub(crate) enum Frame<'a> {
    Welcome {
        client_id: &'a str,
        room: &'a str,
        epoch: u64,
        members: MemberNames<'a>,
        history_limit: usize,
        timestamp: Stamp,
    },
    Gap {
        room: &'a str,
        epoch: u64,
        since: u64,
        message: &'a str,
        timestamp: Stamp,
    },
    History {
        room: &'a str,
        epoch: u64,
        resumed: bool,
        messages: Messages<'a>,
        timestamp: Stamp,
    },
    Connection {
        client_id: &'a str,
        message: &'a str,
        room: &'a str,
        timestamp: Stamp,
    },
    Message {
        id: u64,
        room: &'a str,
        client_id: &'a str,
        message: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        client_msg_id: Option<&'a str>,
        timestamp: Stamp,
        /// Only when an admin deleted it (then `message` is empty).
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        deleted: bool,
    },
    /// An admin deleted the message `id` of `room`.
    Deleted {
        room: &'a str,
        id: u64,
        timestamp: Stamp,
    },
    Disconnection {
        client_id: &'a str,
        message: &'a str,
        room: &'a str,
        timestamp: Stamp,
    },
    Error {
        client_id: &'a str,
        message: &'a str,
        code: ErrorCode,
        timestamp: Stamp,
    },
    Typing {
        client_id: &'a str,
        room: &'a str,
        timestamp: Stamp,
    },
    Direct {
        from: &'a str,
        to: &'a str,
        message: &'a str,
        room: &'a str,
        timestamp: Stamp,
    },
    /// A `refresh` was accepted: the connection's token is the new one.
    #[serde(rename = "token_refreshed")]
    TokenRefreshed { timestamp: Stamp },
    Ack {
        client_msg_id: &'a str,
        id: u64,
        timestamp: Stamp,
        /// Only in durable mode: whether the message is stored.
        #[serde(skip_serializing_if = "Option::is_none")]
        stored: Option<bool>,
    },
    #[serde(rename = "history_page")]
    HistoryPage {
        room: &'a str,
        before: u64,
        /// `message` frames, oldest first.
        messages: Vec<Frame<'a>>,
        more: bool,
        timestamp: Stamp,
    },
}

impl<'a> Frame<'a> {
    /// The `message` frame of a stored message, live or in a `history` frame alike.
    pub(crate) fn message(room: &'a str, m: &'a Stored) -> Self {
        Frame::Message {
            id: m.id,
            room,
            client_id: &m.user,
            message: m.text.as_str(),
            client_msg_id: m.client_msg_id.as_deref(),
            timestamp: Stamp(m.timestamp),
            deleted: m.deleted,
        }
    }

    /// The `message` frame of a message storage gave back.
    pub(crate) fn restored(room: &'a str, m: &'a RestoredMessage) -> Self {
        Frame::Message {
            id: m.id,
            room,
            client_id: &m.user,
            message: if m.deleted { "" } else { &m.text },
            client_msg_id: m.client_msg_id.as_deref(),
            timestamp: Stamp(m.timestamp),
            deleted: m.deleted,
        }
    }

    /// Serializes the frame once, into a buffer every recipient shares.
    pub(crate) fn encode(&self) -> Payload {
        // Strings, numbers, booleans and sequences of them, into a String: nothing can fail
        // (no map with non-string keys, no IO).
        let json = serde_json::to_string(self).expect("a Frame always serializes");
        Payload::from(json)
    }
}

/// The `messages` of a `history` frame, encoded as `message` frames: what storage gave back
/// (a resume beyond memory; usually none), then held messages.
#[derive(Debug)]
pub(crate) struct Messages<'a> {
    pub(crate) room: &'a str,
    pub(crate) restored: &'a [RestoredMessage],
    pub(crate) held: Held<'a>,
}

impl Serialize for Messages<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let restored = self.restored.iter().map(|m| Frame::restored(self.room, m));
        let held = self.held.clone().map(|m| Frame::message(self.room, m));
        s.collect_seq(restored.chain(held))
    }
}
