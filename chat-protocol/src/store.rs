//! What the core asks storage to keep and to fetch, what storage answers, and the requests not
//! answered yet.
//!
//! The core never touches a disk. With [`Config::durable`](crate::Config::durable) it hands the
//! driver an [`Output::Store`](crate::Output::Store) for every message and an
//! [`Output::Fetch`](crate::Output::Fetch) for scroll-back beyond memory, each with a
//! [`StoreTicket`]; the driver answers with [`Input::Stored`](crate::Input::Stored) and
//! [`Input::Fetched`](crate::Input::Fetched) naming the same tickets. Until then the core keeps
//! only what it needs to answer the clients: who waits for an `ack`, who waits for a page.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::history::Stored;
use crate::{ClientId, Payload, RoomName};

/// The most `history_before` requests one connection may have waiting for storage at once
/// ([`Output::Fetch`](crate::Output::Fetch) not yet answered). One more is refused with an
/// `error` frame of code [`ErrorCode::TooManyFetches`](crate::ErrorCode::TooManyFetches).
pub const MAX_FETCHES_IN_FLIGHT: usize = 4;

/// Names one request to storage ([`Output::Store`](crate::Output::Store) or
/// [`Output::Fetch`](crate::Output::Fetch)) and its answer. Assigned by the core, increasing,
/// never reused within a [`ChatServer`](crate::ChatServer)'s life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StoreTicket(pub u64);

/// A message for storage to keep: a room message (`to: None`, `id` its id in the room) or a
/// direct message (`to: Some(recipient)`, `id` 0: direct messages have no id and are not in
/// history).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The ticket the driver reports back in [`Input::Stored`](crate::Input::Stored).
    pub ticket: StoreTicket,
    /// The room it was sent in.
    pub room: RoomName,
    /// The server's [`Config::epoch`](crate::Config::epoch) when it was sent.
    pub epoch: u64,
    /// Its id in the room; 0 for a direct message.
    pub id: u64,
    /// The sender's user name.
    pub user: Arc<str>,
    /// The text, shared with the room's history (no copy).
    pub text: Payload,
    /// The sender's `client_msg_id`, if it gave one (room messages only).
    pub client_msg_id: Option<Box<str>>,
    /// When the server received it (the `timestamp` of its frames).
    pub timestamp: DateTime<Utc>,
    /// The recipient of a direct message; `None` for a room message.
    pub to: Option<Box<str>>,
}

/// Storage could not do what was asked (disk full, I/O error, ...). Clients are told that it
/// failed (a code, a fixed explanation), never storage's `reason`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreFailed {
    /// What went wrong, for the driver's logs.
    pub reason: String,
}

/// A room message as storage gives it back (at start, or for scroll-back).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestoredMessage {
    /// Its id in the room.
    pub id: u64,
    /// The sender's user name.
    pub user: String,
    /// The text.
    pub text: String,
    /// The sender's `client_msg_id`, if it gave one.
    pub client_msg_id: Option<String>,
    /// When the server received it.
    pub timestamp: DateTime<Utc>,
    /// An admin deleted it ([`Output::DeleteStored`](crate::Output::DeleteStored)): its text
    /// is gone (whatever `text` holds is not shown).
    pub deleted: bool,
}

/// A room as storage loaded it at start, for [`ChatServer::restore`](crate::ChatServer::restore).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestoredRoom {
    /// The room's name.
    pub name: RoomName,
    /// The id of the newest message ever sent in the room: its next message gets
    /// `last_id + 1`.
    pub last_id: u64,
    /// Its last messages, oldest first, with consecutive ids ending at `last_id` (at most
    /// [`Config::history`](crate::Config::history) of them are kept; messages that break the
    /// run are dropped, see [`ChatServer::restore`](crate::ChatServer::restore)).
    pub messages: Vec<RestoredMessage>,
}

/// Where a message held in a room's history stands with storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Durability {
    /// Not durable mode: nothing is stored, acks carry no `stored` field.
    Volatile,
    /// Handed to the driver with this ticket; no answer yet. (A message without a
    /// `client_msg_id` stays so: nothing waits for its answer, and no retry can name it.)
    Pending(StoreTicket),
    /// Reported stored (or restored from storage).
    Stored,
    /// Reported failed: delivered live, not durable.
    Failed,
}

/// A connection waiting for something: the [`ClientId`] and the serial of that connection, so
/// that an answer never reaches a later connection that reused the id.
pub(crate) type Waiter = (ClientId, u64);

/// A room message with a `client_msg_id` whose ticket is not answered yet.
#[derive(Debug)]
pub(crate) struct PendingAck {
    pub(crate) room: RoomName,
    pub(crate) id: u64,
    pub(crate) client_msg_id: Box<str>,
    /// The sending connection and those that retried it: one entry per connection, so retries
    /// do not grow it.
    pub(crate) waiters: BTreeSet<Waiter>,
}

/// A `history_before` waiting for storage.
#[derive(Debug)]
pub(crate) struct PendingFetch {
    pub(crate) waiter: Waiter,
    pub(crate) room: RoomName,
    /// The `before` the client asked for (the page's `before` field).
    pub(crate) before: u64,
    /// The page size the client asked for.
    pub(crate) limit: usize,
    /// What storage was asked for: ids below this...
    pub(crate) fetch_before: u64,
    /// ...at most this many.
    pub(crate) fetch_limit: usize,
    /// The newer part of the page, which memory held when it was asked for.
    pub(crate) held: Vec<Stored>,
}

/// The requests handed to the driver and not answered yet.
///
/// Bounded by what the driver holds: one [`PendingAck`] per unanswered [`Output::Store`] of a
/// message with a `client_msg_id` (with at most one waiter per connection of its user), one
/// [`PendingFetch`] per unanswered [`Output::Fetch`] (at most [`MAX_FETCHES_IN_FLIGHT`] per
/// connection when asked, each holding at most 100 messages). Stores of messages without a
/// `client_msg_id`, and of direct messages, leave nothing behind.
#[derive(Debug, Default)]
pub(crate) struct Pending {
    next_ticket: u64,
    pub(crate) acks: BTreeMap<StoreTicket, PendingAck>,
    pub(crate) fetches: BTreeMap<StoreTicket, PendingFetch>,
    /// `refresh` tokens handed to the driver to check ([`Output::VerifyToken`]): at most one
    /// per connection.
    pub(crate) verifications: BTreeMap<StoreTicket, Waiter>,
}

impl Pending {
    /// A fresh ticket.
    pub(crate) fn ticket(&mut self) -> StoreTicket {
        let t = StoreTicket(self.next_ticket);
        self.next_ticket += 1;
        t
    }
}
