//! The chat server's logic as a pure, sans-IO state machine.
//!
//! [`ChatServer`] owns every connected client and every room, and decides who receives what, who
//! gets pinged and who gets closed. It does no IO and never reads a clock: a driver (the mio
//! event loop in `chat-mio-server`, or any other runtime) feeds it [`Input`]s stamped with the
//! current [`Now`], and carries out the [`Output`]s it asks for. The same inputs at the same
//! times always give the same outputs, so its tests are deterministic and run in virtual time.
//!
//! # The run-loop contract
//!
//! ```text
//!  socket events ──► Input ──► ChatServer::handle_input(now, input)
//!  storage answers ──► Input::Stored / Input::Fetched ──┤   │
//!  the cluster (cluster mode) ──► Input::Cluster* ──────┤   │
//!  backend (server API) ──► Input::Publish / Kick / Ban ┘   │
//!        ┌──────────────────────────────────────────────────┘
//!        ▼
//!  while let Some(output) = poll_output()   ──► write a frame / ping / close a socket
//!                                           ──► Store / Fetch: hand to storage, off the loop
//!                                           ──► Cluster*: hand to the cluster (cluster mode)
//!                                           ──► Published / Dismissed: answer the backend
//!  poll_timeout()                           ──► when to call handle_input(now, Input::Timeout)
//! ```
//!
//! 1. Call [`ChatServer::handle_input`] for every event: a client finished its WebSocket
//!    handshake ([`Input::Connect`]), a text frame arrived ([`Input::Text`]), a ping or pong
//!    arrived ([`Input::Activity`]), a connection ended ([`Input::Disconnect`]), a deadline
//!    passed ([`Input::Timeout`]), storage answered ([`Input::Stored`], [`Input::Fetched`];
//!    durable mode only, see "Durability"). A driver that authenticates follows a Connect with
//!    [`Input::Expires`] and, for an admin, [`Input::Grant`] (see "Moderation"). A backend's
//!    request to the server API is an input too ([`Input::Publish`], [`Input::Kick`],
//!    [`Input::Ban`]; see "Server API for backends"); its answer is the last output of the
//!    drain that follows.
//! 2. After **every** input, drain [`ChatServer::poll_output`] until it returns `None`. Outputs
//!    address clients by the [`ClientId`] the driver chose, and only clients that are connected
//!    at the time the output is drained.
//! 3. Then ask [`ChatServer::poll_timeout`] for the next deadline and arrange to deliver
//!    [`Input::Timeout`] at that instant or soon after.
//!
//! When it has been idle for a while, a driver may call [`ChatServer::release_spare_memory`]:
//! what a burst grew the output queue to is given back (see "Bounded resources").
//!
//! Before the first input, a durable driver may call [`ChatServer::restore`] once with what
//! storage loaded (a cluster node: with what the cluster's log holds, and
//! [`ChatServer::restore_presence`] with who is where; see "Cluster mode").
//!
//! A misbehaving *client* is never an `Err`: it gets an error frame and/or a close output. `Err`
//! means the *driver* broke the contract (an unknown or duplicate [`ClientId`]).
//!
//! # Architecture
//!
//! ```text
//!  server.rs   ChatServer: clients by ClientId, inputs → decisions → outputs
//!   ├─ backend.rs  the server API's types: PublishRefused, RoomInfo, the system's name
//!   ├─ rooms.rs    the rooms by name; forgets empty ones when max_rooms is reached
//!   │   └─ room.rs     one room: who hears broadcasts (per protocol), presence per user
//!   │       └─ history.rs  the last `history` messages, ids, client_msg_id lookup
//!   ├─ store.rs    durable mode: what goes to storage and comes back, the unanswered tickets
//!   ├─ cluster.rs  cluster mode: publishes, catch-ups of missed ids, cluster-wide presence
//!   ├─ command.rs  parses a chat.v2 client's JSON commands
//!   ├─ event.rs    encodes the v1 (tutorial) frames;  frame.rs  the v2 frames
//!   ├─ rate.rs     token bucket per connection
//!   └─ heartbeat.rs + timer.rs   pings and idle closes, in a deadline heap
//!
//!  shared with drivers: config.rs (Config, RateLimit), payload.rs (Payload), room_name.rs
//!  (RoomName), close.rs (CloseReason: the one table of close codes), error_code.rs (ErrorCode)
//! ```
//!
//! # Dependencies
//!
//! The core's whole dependency graph (`cargo tree -p chat-protocol`, dev-dependencies included)
//! is four crates and what they need:
//!
//! - `bytes`, for the reference-counted buffer under [`Payload`]: one encoded frame is shared by
//!   every recipient, and a driver hands it to its socket without a copy.
//! - `serde` and `serde_json`, to parse v2 commands and encode frames.
//! - `chrono` without its `clock` feature, to write the `timestamp` of frames from the
//!   [`Now::wall`] the driver passes in.
//!
//! So no IO, threads, clock or randomness are anywhere in its graph: no WebSocket or HTTP
//! library (the driver does the framing and hands over text), no event loop, no `rand` or
//! `getrandom`. Keep it so. The crates that do IO add what they need (`chat-mio-server` adds
//! tungstenite with `handshake`, and chrono's `clock`); the core's property tests, which need
//! proptest and with it `rand`, live in the root package (`tests/core_properties.rs`, with a
//! fixed seed).
//!
//! # Protocols and rooms
//!
//! Every connection speaks one [`Protocol`] and is in one room, both fixed at
//! [`Input::Connect`] (the full wire protocol is in `PROTOCOL.md`). A [`Protocol::V1`] client
//! sends raw text and receives exactly the tutorial's frames; a [`Protocol::V2`] client sends
//! JSON commands and receives richer frames (message ids, history, resume, typing, direct
//! messages, acks). Both can share a room: each broadcast is encoded at most once per protocol.
//! Nothing crosses from one room to another.
//!
//! Presence for v2 is per *user*: a user with several connections (tabs) joins once, with its
//! first connection, and leaves once, with its last. v1 clients keep the tutorial's
//! per-connection notices, for every connection in their room, whatever its protocol.
//!
//! # Deadlines
//!
//! [`poll_timeout`](ChatServer::poll_timeout) is never *later* than the earliest real deadline,
//! but it may be *earlier*: a client that was heard from since its deadline was computed, or
//! that left, is only re-examined when its old deadline comes. Such a Timeout produces no output
//! and moves `poll_timeout` on. Early, late, extra or repeated `Input::Timeout`s are harmless:
//! a Timeout acts on exactly what is due at its `now`, and once it has been handled
//! `poll_timeout()` is `None` or later than that `now`, so a driver that follows it never spins.
//!
//! A joiner waiting for storage to resume it has one more deadline, [`RESUME_WAIT`] after it
//! connected (see "Durability"), kept in an ordered set apart from the heap.
//!
//! Deadlines are kept in a min-heap with one entry per client. Connect, Disconnect, Text and
//! Activity never scan the clients; a Timeout costs O(log n) per client whose (possibly stale)
//! deadline has come.
//!
//! # Heartbeat and idle timeout
//!
//! Every Text or Activity input (rate-limited messages and malformed commands included) counts
//! as proof of life. After [`Config::heartbeat_interval`] without one, and again after each
//! further interval without one, the server asks for an [`Output::Ping`]; the client's pong
//! arrives as [`Input::Activity`]. After [`Config::idle_timeout`] without one, it asks for
//! [`Output::Close`] with [`CloseReason::Idle`]. With the defaults (25 s, 60 s) a silent client
//! is pinged at 25 s and 50 s and closed at 60 s.
//!
//! # Rate limiting
//!
//! Each connection has a token bucket ([`RateLimit`]): a chat message (v1 text, v2 `message`
//! or `direct` command) that finds it empty is not delivered, and only the sender gets an error
//! frame (`"type":"error"`, `"code":"rate_limited"`). A client whose messages are rejected more
//! than `burst` times in a row is closed with [`CloseReason::RateLimited`]. Nobody else sees any
//! of this. Typing notices are not charged; they are throttled per user instead
//! ([`Config::typing_interval`]).
//!
//! # Durability
//!
//! With [`Config::durable`] the core keeps its messages durable *through the driver*: it never
//! touches a disk, it says what to store and hears what was stored.
//!
//! - After a room message is broadcast (live delivery never waits for the disk), and after a
//!   direct message is delivered, comes an [`Output::Store`] with a [`Record`] and a fresh
//!   [`StoreTicket`]. The driver stores it off the event loop, in whatever batches it likes,
//!   and reports each batch as one [`Input::Stored`]: its tickets, committed (`Ok`) or not
//!   (`Err`). **Every Store must be answered**, in any grouping and order, as late as it
//!   takes; an unknown or already answered ticket is ignored.
//! - The `ack` of a message with a `client_msg_id` waits for that answer: it is sent when the
//!   ticket is reported, with `"stored":true` or `"stored":false` (delivered live, not
//!   durable), to the sending connection if it is still there, and to each connection of the
//!   same user that retried it meanwhile. A retry of a message already reported is acked at
//!   once with what storage said. Without `durable`, acks are sent at once, with no `stored`.
//! - A `history_before` (scroll-back) that memory can answer whole is answered at once;
//!   otherwise the core keeps the part memory holds and emits an [`Output::Fetch`] for the
//!   older part. **Every Fetch must be answered** with one [`Input::Fetched`] (even if the
//!   client left); the page, or an `error` with [`ErrorCode::StoreUnavailable`], goes to the
//!   asking connection if it is still there. At most [`MAX_FETCHES_IN_FLIGHT`] per connection
//!   wait at once; one more is refused with [`ErrorCode::TooManyFetches`].
//! - A v2 client resuming (`since`, this epoch) from before the oldest message memory holds,
//!   with at most [`MAX_RESUME_FETCH`] messages missing beyond memory, is put **on hold**: it
//!   gets nothing yet, and an [`Output::Fetch`] (its `client` the joiner, `before` the oldest
//!   held id, `limit` the count missing) asks storage for them. Every frame the core would
//!   send it meanwhile (its own `connection` notice, live messages, answers to its commands)
//!   is held back, in order, by [`ChatServer::poll_output`]. When storage answers with every
//!   missed message it gets `welcome` (members as at connect), `history` with `resumed: true`
//!   (storage's part, then what memory held at connect), then what was held back: nothing
//!   lost, nothing twice. Otherwise it gets exactly what it would have got at connect
//!   without storage (`welcome`, a `gap`, the in-memory `history` of connect time) and then
//!   what was held back: when storage fails, gives fewer than every missed message (what lies
//!   outside the request is dropped), does not answer within [`RESUME_WAIT`] (the answer is
//!   then ignored), or more than [`MAX_HELD_BACK_FRAMES`] frames or [`MAX_HELD_BACK_BYTES`]
//!   bytes pile up meanwhile, or all joiners on hold together hold
//!   [`MAX_HELD_BACK_TOTAL_BYTES`] (the `gap` goes out at once). A joiner that leaves or is closed
//!   meanwhile leaves nothing behind. Further back than the bound is a `gap` at once.
//! - At start, [`ChatServer::restore`] takes the rooms storage loaded: their history, their
//!   last id (new messages continue after it), and the highest id of the rooms not loaded.
//!   The epoch is the driver's to keep or change ([`Config::epoch`]): it must change if ids
//!   may have been handed out that storage did not keep.
//!
//! Storage's answers are data, not trusted invariants: restored messages that are not
//! consecutive up to `last_id`, or fetched ones outside the request, are dropped, never a panic.
//!
//! # Cluster mode
//!
//! With [`Config::cluster`] the server is one node of several that behave as one chat (the
//! driver's broker, Redis through `chat-cluster`, carries what crosses nodes). The core still
//! does no IO: it asks with `Cluster*` outputs and hears with `Cluster*` inputs, and stays
//! deterministic. The cluster's log is the store ([`Config::durable`] is ignored) and the
//! epoch is the cluster's ([`Config::epoch`]).
//!
//! - **Start.** [`ChatServer::restore`] with the rooms' last ids and messages read from the
//!   cluster's log, [`ChatServer::restore_presence`] with who is in each room cluster-wide.
//!   A room never seeded takes the first id it hears as its start.
//! - **Messages.** A local chat message (v1 text, v2 `message`) passes the usual checks (rate
//!   limit, sizes), then becomes an [`Output::ClusterPublish`]: no id, no broadcast, no
//!   [`Output::Store`]. **Every ClusterPublish must be answered** with one
//!   [`Input::ClusterPublished`]: the v2 sender (with a `client_msg_id`) then gets its `ack`
//!   (no `stored` field), or, on `Err`, the sender (v1 or v2) an `error` with
//!   [`ErrorCode::ClusterUnavailable`]. A v2 retry (same user, same `client_msg_id`) while the
//!   first is unanswered is not published again: it waits for the same answer. A retry of a
//!   message in the room's history is acked at once, as on one node.
//! - **Delivery.** Feed every room message the cluster publishes, **this node's own
//!   included**, as [`Input::ClusterMessage`], in the cluster's order: that is when every node
//!   delivers it (v1 and v2 frames, into history), so all show one order with the same ids. A
//!   room delivers ids consecutively: an id it delivered already is ignored (a catch-up's
//!   overlap); one beyond the next is buffered (at most [`MAX_CATCH_UP`] per room) and an
//!   [`Output::ClusterFetchAfter`] asks for the stretch missed (**answer every one** with
//!   [`Input::Fetched`]). The answer's messages, then the buffered ones, are delivered in
//!   order, each once. Whatever stays missing (the read failed, the log no longer has it, the
//!   buffer overflowed) is a `gap` frame to the room's v2 members here, before the next
//!   message; the history starts again there. A message of an older epoch is ignored; of a
//!   newer one, it is first taken as an [`Input::ClusterEpoch`].
//! - **Presence.** Every local connection with a room is reported ([`Output::ClusterJoin`]
//!   after the usual connect outputs, [`Output::ClusterLeave`] after the disconnect's). The
//!   core does not send v2 `connection` / `disconnection` notices itself: they come from the
//!   cluster's edges, [`Input::ClusterPresence`] (a user's first connection anywhere, its
//!   last; this node's own included), which also keep each room's cluster-wide members (for
//!   `welcome`, which lists them with the local ones, and for direct messages). v1 clients
//!   keep per-connection notices: local ones as on one node, other nodes' from
//!   [`Input::ClusterConnection`] (the driver drops this node's own).
//! - **Typing and direct messages.** A typing notice that passes the local throttle is also
//!   an [`Output::ClusterTyping`]; a direct message to a user in the room's cluster-wide
//!   members is also an [`Output::ClusterDirect`] (delivered here as on one node if the
//!   recipient is here, else only echoed to the sender). From other nodes (the driver drops
//!   this node's own), [`Input::ClusterTyping`] goes to the room's v2 members here and
//!   [`Input::ClusterDirect`] to the recipient's v2 connections here.
//! - **Resume and scroll-back** beyond memory are [`Output::Fetch`]es, exactly as in durable
//!   mode ("Durability"); the driver answers them from the cluster's log.
//! - **A new epoch** ([`Input::ClusterEpoch`], the cluster lost its state): ids start again
//!   at 1, every room's history in memory is cleared and catch-ups waiting are dropped (their
//!   answers ignored).
//! - **Not yet:** the server API's [`Input::Publish`] is refused with
//!   [`PublishRefused::ClusterMode`]; an admin's `delete` acts on this node's memory only.
//!
//! What the cluster keeps in the core is bounded by what the driver has not answered (one
//! entry per unanswered ClusterPublish, one catch-up per room of at most [`MAX_CATCH_UP`]
//! messages; [`ChatServer::awaiting_cluster`]) and by the rooms the cluster reports members
//! in. Answers are data: an unknown or late ticket is ignored, never a panic.
//!
//! # Moderation
//!
//! A driver that knows who is an admin says so with [`Input::Grant`] right after
//! [`Input::Connect`]. An admin's v2 connection may then send (anyone else gets an `error`
//! frame with [`ErrorCode::Forbidden`], and nothing happens):
//!
//! - `kick`: every connection of the named user, in every room, gets an [`Output::CloseWith`]
//!   with [`CloseReason::Kicked`] (4003) and the admin's reason in the text. A user with no
//!   connection is an [`ErrorCode::UnknownUser`] error.
//! - `ban`: an [`Output::Ban`] (the driver refuses the user's upgrades until it ends and, when
//!   durable, stores it), then the user's connections are closed as by a kick, with
//!   [`CloseReason::Banned`] (4004). The core keeps no bans; a user with no connection is
//!   banned all the same.
//! - `delete`: the message of that id in the admin's room is marked deleted in memory (its
//!   text dropped, its id kept, so ids stay consecutive and resume still works): `history`
//!   frames and pages show it as `"deleted":true` with an empty `message`. Every v2
//!   connection in the room gets a `deleted` frame (v1 connections hear nothing), and, when
//!   durable, the driver an [`Output::DeleteStored`]. An id the room never gave, or (not
//!   durable) one no longer held, is an [`ErrorCode::UnknownMessage`] error; deleting a
//!   message twice announces it twice.
//!
//! Moderation commands are not charged to the rate limit. Close texts are cut to
//! [`MAX_CLOSE_TEXT`] bytes at a character boundary.
//!
//! # Server API for backends
//!
//! A driver that serves an API to the app's backend (not to chat clients) feeds its requests
//! as inputs, through the same [`ChatServer::handle_input`], and drains as after any input.
//! Each is answered by exactly one output, the **last** of that drain, so a driver that feeds
//! one request and drains has its answer without matching tickets:
//!
//! - [`Input::Publish`] posts a message into a room, as the system or as a named user, exactly
//!   as a member's message (the room's next id, broadcast, history, and an [`Output::Store`]
//!   when durable, with no `client_msg_id`, so no ack waits). A room not in memory is made, as
//!   a first connection would make it, and stays, empty, until a new room needs its place.
//!   Answer: [`Output::Published`] with the message's id, or a [`PublishRefused`]: no room can
//!   be made (every room of [`Config::max_rooms`] has someone in it) or the user name is not
//!   one a client could have. Not an `Err`: the driver broke no contract, it passes the
//!   refusal on.
//! - The **system** speaks as [`SYSTEM_USER`], the empty name: a client id is 1 to
//!   [`MAX_USER_CHARS`] characters, so no client can ever speak as the system, and a client
//!   needs no new frame to show it (v1: `{"type":"message","client_id":"",...}`, the
//!   tutorial's four fields; v2: the usual `message` frame with `"client_id":""`). A named
//!   user must be a name a client could connect with; it need not be connected.
//! - [`Input::Kick`] and [`Input::Ban`] do exactly what an admin's `kick` and `ban` commands
//!   do (see "Moderation"), without an admin connection. Answer: [`Output::Dismissed`] with
//!   how many connections were closed (0 for a user with none open; a ban holds all the
//!   same).
//! - [`ChatServer::rooms`] lists the rooms in memory, by name, with their members and last id.
//!   It only reads.
//!
//! # Closing
//!
//! After an [`Output::Close`] (or [`Output::CloseWith`]) the client is no longer addressed
//! (no [`Output::Send`], no [`Output::Ping`], no second Close) and what it still sends is dropped; it stays connected, in
//! [`client_count`](ChatServer::client_count), until the driver reports [`Input::Disconnect`],
//! which is announced to the others as for any departure. The one exception is a client refused
//! at connect with [`CloseReason::TooManyRooms`]: it never joined a room, so its Disconnect
//! announces nothing.
//!
//! # Fan-out
//!
//! Every broadcast is serialized at most once per protocol into a [`Payload`] (a
//! reference-counted UTF-8 buffer), and only when the room has a recipient of that protocol.
//! It is queued as one [`Output::SendMany`] with its recipients: [`ChatServer::poll_output`]
//! gives it out as one [`Output::Send`] per recipient, each holding a clone of that buffer (a
//! refcount increment, never a copy or a re-encoding), and
//! [`ChatServer::poll_output_grouped`] gives it whole, so a driver handles the payload once
//! for all of them. A broadcast reaches the room's v1 connections first, then its v2
//! connections, each group in [`ClientId`] order, so both groups share one payload in a row and
//! the order is the same on every run. Its cost is proportional to the room's connections, never
//! to the server's. Only a `history` frame is built per recipient, by nature.
//!
//! # Bounded resources
//!
//! Per client the server keeps its name, room, a token bucket and two instants; the deadline
//! heap holds at most a constant factor more entries than there are clients. The output queue
//! holds one entry per broadcast (and a recipient list) until drained, and keeps the room it grew to
//! until [`ChatServer::release_spare_memory`]. There are at most
//! [`Config::max_rooms`] rooms, each holding at most [`Config::history`] messages and
//! [`Config::room_history_bytes`] bytes of them. A client's malformed command is answered with
//! an error frame of bounded size.
//!
//! History is the one thing in the core that grows with what clients send, so the core counts
//! it in bytes ([`ChatServer::history_bytes`]: texts, names, `client_msg_id`s and a fixed
//! overhead per message) and holds all rooms' histories within a budget
//! ([`Config::history_budget`], moved at run time with [`Input::HistoryBudget`]). Past the
//! budget it forgets the **oldest messages of the least recently active room** (the room whose
//! last message is the oldest) first, all of them if need be, then the next such room's. A
//! trimmed message was delivered live like any other; what changes is that a v2 client
//! resuming from before it gets a `gap` (the whole remaining history follows) unless
//! durable storage gives it back (see "Durability"), a retry of it
//! with its `client_msg_id` is a new message, and, in memory only, scroll-back ends before
//! it. With [`Config::durable`] storage scroll-back reads it from disk as any message older
//! than memory ("Durability"). The driver decides the budget: the core never measures memory.
//!
//! In durable mode, what waits for storage is bounded by what the driver has not answered yet
//! ([`ChatServer::awaiting_storage`]): one entry per unanswered Store of a message with a
//! `client_msg_id` (with at most one waiting connection per connection of its user, however
//! often it is retried), one per unanswered Fetch (at most [`MAX_FETCHES_IN_FLIGHT`] per
//! connection when asked, each holding at most 100 messages), one per joiner on hold (for at
//! most [`RESUME_WAIT`], with at most [`MAX_HELD_BACK_FRAMES`] frames and
//! [`MAX_HELD_BACK_BYTES`] held back, [`MAX_HELD_BACK_TOTAL_BYTES`] for all of them, and references to the messages memory held when it
//! connected, which stay alive that long even if memory lets them go). Stores without a
//! `client_msg_id` and direct messages leave nothing behind once handed out. A driver that
//! answers every request keeps this bounded by its own queue; one that never answers grows it
//! by one entry per acknowledged message.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod backend;
mod clients;
mod close;
mod cluster;
mod command;
mod config;
mod error_code;
mod event;
mod frame;
mod heartbeat;
mod history;
mod payload;
mod rate;
mod resume;
mod room;
mod room_name;
mod rooms;
mod senders;
mod server;
mod store;
mod timer;

use std::fmt;
use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, Utc};

pub use backend::{PublishRefused, RoomInfo, MAX_USER_CHARS, SYSTEM_USER};
pub use close::{CloseReason, MAX_CLOSE_TEXT};
pub use cluster::{ClusterAck, MAX_CATCH_UP};
pub use config::{Config, RateLimit};
pub use error_code::ErrorCode;
pub use event::{Event, EventKind};
pub use payload::Payload;
pub use resume::{
    MAX_HELD_BACK_BYTES, MAX_HELD_BACK_FRAMES, MAX_HELD_BACK_TOTAL_BYTES, MAX_RESUME_FETCH,
    RESUME_WAIT,
};
pub use room_name::RoomName;
pub use server::ChatServer;
pub use store::{
    Record, RestoredMessage, RestoredRoom, StoreFailed, StoreTicket, MAX_FETCHES_IN_FLIGHT,
};

/// A handle for one connection, chosen by the driver (for example its slab index). It must be
/// unique among the connected clients; it may be reused after [`Input::Disconnect`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ClientId(pub u64);

impl fmt::Display for ClientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// Which protocol a connection speaks (`PROTOCOL.md`): [`V1`](Self::V1) is the tutorial's (the
/// client offered no subprotocol), [`V2`](Self::V2) is `chat.v2`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// The tutorial protocol: raw text in; `connection`, `message`, `disconnection` and `error`
    /// frames with exactly the tutorial's fields out.
    V1,
    /// The rich protocol: JSON commands in; ids, history, resume, typing, direct messages out.
    V2,
}

impl Protocol {
    /// The `Sec-WebSocket-Protocol` token of the rich protocol.
    pub const V2_SUBPROTOCOL: &'static str = "chat.v2";

    /// The `Sec-WebSocket-Protocol` value that selects this protocol: `None` for
    /// [`V1`](Self::V1) (no subprotocol), `Some("chat.v2")` for [`V2`](Self::V2).
    pub const fn subprotocol(self) -> Option<&'static str> {
        match self {
            Protocol::V1 => None,
            Protocol::V2 => Some(Self::V2_SUBPROTOCOL),
        }
    }

    /// The protocol a client gets for the subprotocols it offered (the values of its
    /// `Sec-WebSocket-Protocol` headers, comma-separated lists allowed): [`V2`](Self::V2) if
    /// any token is `chat.v2` (case-sensitive, RFC 6455 section 4.1), else [`V1`](Self::V1).
    pub fn negotiate<'a>(offered: impl IntoIterator<Item = &'a str>) -> Protocol {
        let v2 = offered
            .into_iter()
            .flat_map(|value| value.split(','))
            .any(|token| token.trim() == Self::V2_SUBPROTOCOL);
        if v2 {
            Protocol::V2
        } else {
            Protocol::V1
        }
    }
}

/// Where a reconnecting v2 client left off: the `epoch` and `since` query parameters.
///
/// `since` is honoured only when `epoch` is the server's ([`Config::epoch`]) and the room still
/// holds every message after it, or (durable mode) storage gives back the at most
/// [`MAX_RESUME_FETCH`] missing before what memory holds (see "Durability"); otherwise the
/// client gets a `gap` frame and the full history.
/// A `since` that came without an `epoch` (or with one that is not a number) can never be
/// honoured: pass it with [`Resume::NO_EPOCH`] (see [`Resume::without_epoch`]), so the client
/// still gets its `gap`. A `since` that is not a number is no resume at all (`None`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resume {
    /// The epoch the client's `since` came with.
    pub epoch: u64,
    /// The id of the last message the client saw in this room.
    pub since: u64,
}

impl Resume {
    /// An epoch that never matches the server's, not even a [`Config::epoch`] of `u64::MAX`.
    pub const NO_EPOCH: u64 = u64::MAX;

    /// A `since` without an `epoch`: always answered with a `gap`.
    pub fn without_epoch(since: u64) -> Self {
        Resume {
            epoch: Self::NO_EPOCH,
            since,
        }
    }
}

/// The current time, as the driver read it, passed in with every input.
///
/// `instant` (monotonic) drives deadlines, rate limits and the typing throttle; `wall` (UTC)
/// only stamps the frames. They are separate because wall time can jump and deadlines must not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Now {
    /// Monotonic time, for deadlines and rate limits.
    pub instant: Instant,
    /// Wall-clock time, for the `timestamp` field of frames.
    pub wall: DateTime<Utc>,
}

/// Something that happened, for the state machine to react to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// A client completed the WebSocket handshake on `/ws/{user}?room=…`.
    Connect {
        /// The driver's handle for this connection.
        client: ClientId,
        /// The user's chosen name (the `{client_id}` of the URL, percent-decoded).
        user: String,
        /// The room it joins, for the whole connection ([`RoomName::default`] when the URL
        /// names none).
        room: RoomName,
        /// The protocol it negotiated.
        protocol: Protocol,
        /// Where a reconnecting v2 client left off. Ignored for v1 clients.
        resume: Option<Resume>,
    },
    /// A complete text message arrived from a client.
    Text {
        /// Who sent it.
        client: ClientId,
        /// The message, exactly as received.
        text: Payload,
    },
    /// The client sent a ping or a pong (any frame that is not a chat message): proof of life.
    Activity {
        /// Who sent it.
        client: ClientId,
    },
    /// A client's connection ended, for whatever reason (close frame, reset, error, or after a
    /// [`Output::Close`] the driver carried out). The client must not be addressed after this.
    Disconnect {
        /// Who left.
        client: ClientId,
    },
    /// A deadline given by [`ChatServer::poll_timeout`] has passed (or might have). Early or
    /// repeated timeouts are harmless no-ops.
    Timeout,
    /// Storage finished one batch of [`Output::Store`]s: one transaction, committed (`Ok`) or
    /// not (`Err`), for all of `tickets`. Batches may group tickets in any way and come in any
    /// order, late, after the sender left; a ticket that is unknown or was already reported is
    /// ignored. Never an `Err` of [`ChatServer::handle_input`].
    Stored {
        /// The [`Record::ticket`]s of the batch.
        tickets: Vec<StoreTicket>,
        /// Whether the batch is durable.
        result: Result<(), StoreFailed>,
    },
    /// Storage answered an [`Output::Fetch`]: the room's messages with ids below its `before`,
    /// at most its `limit`, oldest first (`Err` if it could not read them). In cluster mode
    /// also the answer to an [`Output::ClusterFetchAfter`]: the messages with ids above its
    /// `after`, oldest first (`Err`: the missed stretch is a `gap`). An unknown or already
    /// answered ticket is ignored. Never an `Err` of [`ChatServer::handle_input`].
    Fetched {
        /// The [`Output::Fetch`]'s ticket.
        ticket: StoreTicket,
        /// The messages, oldest first; what breaks that order or the request's bounds is
        /// dropped.
        result: Result<Vec<RestoredMessage>, StoreFailed>,
    },
    /// The client's credentials (a signed token, a login session) stop being valid at `at`.
    /// Given by a driver that authenticates, right after [`Input::Connect`], and again (with an
    /// earlier `at`) when the credentials end early (a logout); never otherwise.
    /// Unless a `refresh` moves it ([`Input::TokenVerified`]), the client is closed with
    /// [`CloseReason::TokenExpired`] then.
    Expires {
        /// Whose credentials.
        client: ClientId,
        /// When they stop being valid.
        at: Instant,
    },
    /// The connection is an admin's (`admin: true`), or no longer is (`false`). Given by a
    /// driver that knows (a signed token with `"role":"admin"`), right after
    /// [`Input::Connect`] (or after a `refresh` whose token says otherwise); a connection is
    /// not an admin until told. Only an admin's `kick`, `ban` and `delete` commands are
    /// carried out (see "Moderation"); anyone else's get an `error` with
    /// [`ErrorCode::Forbidden`].
    Grant {
        /// Whose connection.
        client: ClientId,
        /// Whether it may moderate.
        admin: bool,
    },
    /// The answer to an [`Output::VerifyToken`]: the token is valid for `user` until
    /// `expires`, or not valid at all (`Err` with a short, client-safe reason). Every
    /// VerifyToken must be answered once, even if the client left.
    TokenVerified {
        /// The VerifyToken's ticket.
        ticket: StoreTicket,
        /// The token's user and expiry, or why it is refused.
        result: Result<VerifiedToken, String>,
    },
    /// The backend (the server API, not a client) posts `text` into `room`, as the system
    /// (`user: None`, shown as [`SYSTEM_USER`]) or as a named user (`Some`, a name a client
    /// could have: see [`PublishRefused::BadUser`]). The message gets the room's next id, is
    /// broadcast to the room like a member's, held in its history and, when durable, handed to
    /// storage (an [`Output::Store`] with no `client_msg_id`: nobody waits for an ack). A room
    /// not in memory is made, as a first connection would make it, and stays, empty, until
    /// forgotten. Answered by exactly one [`Output::Published`], the last output of the drain.
    /// In cluster mode it is refused with [`PublishRefused::ClusterMode`] (not built yet).
    Publish {
        /// The room to post into.
        room: RoomName,
        /// The sender: `None` for the system, `Some(name)` for a user.
        user: Option<String>,
        /// The message, as clients will see it.
        text: String,
    },
    /// The backend kicks `user`: exactly an admin's `kick` (every connection of the user, in
    /// every room, gets an [`Output::CloseWith`] with [`CloseReason::Kicked`] and `reason`),
    /// without an admin connection. Answered by one [`Output::Dismissed`], the last output of
    /// the drain, with how many connections were closed (0: the user had none).
    Kick {
        /// The user to kick.
        user: String,
        /// Shown to the user in the close frame (cut to 200 bytes; may be empty).
        reason: String,
    },
    /// The backend bans `user` for `minutes` (1 to a year; others are brought into that range):
    /// exactly an admin's `ban` (an [`Output::Ban`], then the user's connections closed with
    /// [`CloseReason::Banned`]), without an admin connection. Answered by one
    /// [`Output::Dismissed`], the last output of the drain; a user with no connection is
    /// banned all the same.
    Ban {
        /// The user to ban.
        user: String,
        /// For how long.
        minutes: u32,
        /// Shown to the user in the close frame and kept with the ban (cut to 200 bytes; may
        /// be empty).
        reason: String,
    },
    /// The most bytes the rooms' histories may hold together from now on
    /// ([`Config::history_budget`]): a driver that keeps a memory budget for the whole server
    /// gives history what the rest leaves. Past it, histories are trimmed at once (the oldest
    /// messages of the least recently active room first, see "Bounded resources"), and kept
    /// within it as messages arrive. No output; [`ChatServer::history_bytes`] and
    /// [`ChatServer::history_trimmed`] tell the result.
    HistoryBudget {
        /// The budget, in bytes (counted as [`ChatServer::history_bytes`] counts).
        bytes: usize,
    },
    /// Cluster mode: the cluster answered an [`Output::ClusterPublish`]: the id the message
    /// got (`duplicate`: it was a retry of one published before, and was not published
    /// again), or why it could not be published (the message may or may not be in the log; a
    /// retry with the same `client_msg_id` is recognised). The sender gets its `ack`, or an
    /// `error` with [`ErrorCode::ClusterUnavailable`]. An unknown or already answered ticket
    /// is ignored.
    ClusterPublished {
        /// The ClusterPublish's ticket.
        ticket: StoreTicket,
        /// The id, or why not (for the driver's logs; clients get a fixed text).
        result: Result<ClusterAck, String>,
    },
    /// Cluster mode: a room's message, from any node, this one included (a node delivers its
    /// own messages when it hears them back, so every node shows one order with the same
    /// ids). Feed a room's messages in the cluster's order. An epoch above the server's is
    /// taken as an [`Input::ClusterEpoch`] first; an older one is ignored, and so is an id
    /// already delivered. A missed stretch is asked for with an [`Output::ClusterFetchAfter`].
    ClusterMessage {
        /// The room.
        room: RoomName,
        /// The epoch its id belongs to.
        epoch: u64,
        /// The message (`deleted` is ignored).
        message: RestoredMessage,
    },
    /// Cluster mode: `user`'s first connection to `room` anywhere in the cluster (`joined`),
    /// or its last one closed (or its node died). The room's v2 members on this node hear it
    /// (the `connection` / `disconnection` notices), and `welcome` lists the user.
    ClusterPresence {
        /// The room.
        room: RoomName,
        /// The user.
        user: String,
        /// Joined (first connection) or left (last).
        joined: bool,
    },
    /// Cluster mode: one connection of `user` to `room` opened (`joined`) or closed on
    /// **another** node (the driver drops this node's own): the room's v1 members on this node
    /// hear it, as the tutorial's per-connection notices.
    ClusterConnection {
        /// The room.
        room: RoomName,
        /// The user.
        user: String,
        /// Opened or closed.
        joined: bool,
    },
    /// Cluster mode: `user` types in `room`, on another node (the driver drops this node's
    /// own): relayed to the room's v2 members here.
    ClusterTyping {
        /// The room.
        room: RoomName,
        /// Who.
        user: String,
    },
    /// Cluster mode: a direct message in `room` from `from` to `to`, sent on another node (the
    /// driver drops this node's own): delivered to `to`'s v2 connections in the room here.
    ClusterDirect {
        /// The room.
        room: RoomName,
        /// The sender.
        from: String,
        /// The recipient.
        to: String,
        /// The text.
        text: String,
        /// When the sender's node accepted it.
        timestamp: DateTime<Utc>,
    },
    /// Cluster mode: the cluster lost its state (Redis restarted without persistence): ids
    /// start again at 1 under `epoch`. Every room's history in memory is cleared, catch-ups
    /// waiting for an answer are dropped, and `welcome`, `history` and `gap` frames carry the
    /// new epoch. The same epoch as the server's is ignored.
    ClusterEpoch {
        /// The cluster's new epoch.
        epoch: u64,
    },
    /// Cluster mode: an admin deleted message `id` of `room`, on any node (this one included:
    /// a node's own deletion comes back this way too). The message is marked deleted in
    /// memory if held, and the room's v2 members hear `deleted`.
    ClusterDeleted {
        /// The room.
        room: RoomName,
        /// The message's id.
        id: u64,
    },
}

/// What a valid token says ([`Input::TokenVerified`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedToken {
    /// The user it names (`sub`): it must be the connection's user.
    pub user: String,
    /// When it stops being valid.
    pub expires: Instant,
}

/// Something the driver must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Send this text frame to this client.
    Send {
        /// The recipient.
        to: ClientId,
        /// The encoded frame, shared with every other recipient of the same broadcast that
        /// speaks the same protocol.
        payload: Payload,
    },
    /// Send `payload` to each of `to`, in this order: a broadcast as one output, so the
    /// driver handles the payload once rather than once per recipient.
    /// [`ChatServer::poll_output`] never gives it (it gives one [`Output::Send`] per
    /// recipient instead); [`ChatServer::poll_output_grouped`] does.
    SendMany {
        /// The recipients, each once.
        to: Vec<ClientId>,
        /// The frame's text, shared by every recipient.
        payload: Payload,
    },
    /// Send a WebSocket ping to this client (heartbeat). Its pong comes back as
    /// [`Input::Activity`].
    Ping {
        /// The client to ping.
        to: ClientId,
    },
    /// Send a close frame (`reason.code()`, `reason.text()`) and end the connection; the driver
    /// reports the end with [`Input::Disconnect`] as usual. Given at most once per connection,
    /// and the client is not addressed again.
    Close {
        /// The client to close.
        client: ClientId,
        /// Why, which gives the close frame's code and text.
        reason: CloseReason,
    },
    /// Like [`Output::Close`], but the close frame's text is `text` (at most
    /// [`MAX_CLOSE_TEXT`] bytes) instead of `reason.text()`: a kick or ban carries the
    /// admin's reason to the user. Code and label are still `reason`'s.
    CloseWith {
        /// The client to close.
        client: ClientId,
        /// Why ([`CloseReason::Kicked`] or [`CloseReason::Banned`]): the close code and label.
        reason: CloseReason,
        /// The close frame's text, which starts with `reason.text()`.
        text: String,
    },
    /// An admin (or the backend, [`Input::Ban`]) banned `user` until `until` (wall clock,
    /// from [`Now::wall`]): the driver
    /// refuses that user's upgrades until then, and keeps the ban where it keeps state
    /// (storage, when durable). The user's connections are closed by [`Output::CloseWith`]s
    /// in the same drain. A later ban of the same user replaces it. The core keeps no bans.
    Ban {
        /// The banned user.
        user: String,
        /// When the ban ends.
        until: DateTime<Utc>,
        /// The admin's reason (at most 200 bytes; may be empty).
        reason: String,
    },
    /// Durable mode only: an admin deleted the message `id` of `room`; remove its text from
    /// storage (its id stays, marked deleted, so ids remain consecutive). Not answered.
    DeleteStored {
        /// The message's room.
        room: RoomName,
        /// Its id in the room.
        id: u64,
    },
    /// Durable mode only: make this message durable, then report its ticket in an
    /// [`Input::Stored`] (success or failure, batched as storage likes). Every Store must be
    /// answered once; until it is, the sender's `ack` waits.
    Store(Record),
    /// Durable or cluster mode only: read the messages of `room` with ids below `before`, at most `limit`
    /// of them (the newest such, oldest first), and answer with [`Input::Fetched`] and this
    /// ticket. Every Fetch must be answered once, even if `client` left meanwhile. Asked for a
    /// `history_before` beyond memory, or for a v2 client resuming from before what memory
    /// holds (then `client` gets no frame until the answer, or until [`RESUME_WAIT`] passes:
    /// answer promptly).
    Fetch {
        /// The connection the page or the resume is for (informational: the core addresses
        /// the answer).
        client: ClientId,
        /// The ticket to answer with.
        ticket: StoreTicket,
        /// The room to read.
        room: RoomName,
        /// Only ids below this.
        before: u64,
        /// At most this many (1 to 100).
        limit: usize,
    },
    /// Check this token (a v2 client's `refresh`, with [`Config::token_auth`]) and answer with
    /// [`Input::TokenVerified`]. Cryptography is the driver's (the core has none in its
    /// dependency graph); it may check on another thread and answer late.
    VerifyToken {
        /// The connection that sent it (informational: the core addresses the answer).
        client: ClientId,
        /// The ticket to answer with.
        ticket: StoreTicket,
        /// The token as the client sent it. A secret: never log it.
        token: String,
    },
    /// The answer to an [`Input::Publish`], for the backend that asked: the new message's id
    /// in `room`, or why nothing was published. Exactly one per Publish, the last output of
    /// the drain that follows it (after the broadcast and the [`Output::Store`]).
    Published {
        /// The Publish's room.
        room: RoomName,
        /// The message's id, or why it was refused.
        result: Result<u64, PublishRefused>,
    },
    /// The answer to an [`Input::Kick`] (`reason` [`CloseReason::Kicked`]) or an
    /// [`Input::Ban`] ([`CloseReason::Banned`]), for the backend that asked: how many of
    /// `user`'s connections were closed by it (their [`Output::CloseWith`]s came before it in
    /// the same drain). Exactly one per Kick or Ban, the last output of the drain. Never given
    /// for an admin's `kick` or `ban` command.
    Dismissed {
        /// The Kick's or Ban's user.
        user: String,
        /// Which it was.
        reason: CloseReason,
        /// How many connections were closed; 0 if the user had none open.
        connections: usize,
    },
    /// Cluster mode: publish this room message to the cluster, then answer with
    /// [`Input::ClusterPublished`] and this ticket. It is not delivered here yet: every node,
    /// this one included, delivers it when it hears it back ([`Input::ClusterMessage`]).
    /// Every ClusterPublish must be answered once.
    ClusterPublish {
        /// The ticket to answer with.
        ticket: StoreTicket,
        /// The room.
        room: RoomName,
        /// The sender.
        user: Arc<str>,
        /// The text.
        text: Payload,
        /// The sender's `client_msg_id` (the cluster's deduplication key), if any.
        client_msg_id: Option<String>,
        /// When this node accepted it (the `timestamp` of its frames everywhere).
        timestamp: DateTime<Utc>,
    },
    /// Cluster mode: a connection of `user` opened in `room` on this node (one per
    /// connection; the cluster counts them and announces the user's first anywhere). Not
    /// answered.
    ClusterJoin {
        /// The room.
        room: RoomName,
        /// The user.
        user: Arc<str>,
    },
    /// Cluster mode: a connection of `user` in `room` on this node closed. Not answered.
    ClusterLeave {
        /// The room.
        room: RoomName,
        /// The user.
        user: Arc<str>,
    },
    /// Cluster mode: `user` types in `room` (after this node's throttle): tell the other
    /// nodes. Not answered.
    ClusterTyping {
        /// The room.
        room: RoomName,
        /// Who.
        user: Arc<str>,
    },
    /// Cluster mode: a direct message for `to`, who is in `room` on the cluster: the nodes
    /// where `to` has connections deliver it. Not answered.
    ClusterDirect {
        /// The room.
        room: RoomName,
        /// The sender.
        from: Arc<str>,
        /// The recipient.
        to: String,
        /// The text.
        text: String,
        /// When this node accepted it.
        timestamp: DateTime<Utc>,
    },
    /// Cluster mode: this node missed messages of `room` (an id came that is not the next):
    /// read the room's messages with ids above `after`, oldest first, at most `limit` (1 to
    /// [`MAX_CATCH_UP`]), and answer with [`Input::Fetched`] and this ticket. Every
    /// ClusterFetchAfter must be answered once.
    ClusterFetchAfter {
        /// The ticket to answer with.
        ticket: StoreTicket,
        /// The room.
        room: RoomName,
        /// Only ids above this.
        after: u64,
        /// At most this many.
        limit: usize,
    },
    /// Cluster mode: an admin deleted message `id` of `room`: remove its text from the
    /// cluster's log and tell every node (each answers with [`Input::ClusterDeleted`], this
    /// one included; nothing is marked before that).
    ClusterDelete {
        /// The room.
        room: RoomName,
        /// The message's id.
        id: u64,
    },
}

/// The driver broke the run-loop contract. Never caused by what a client sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// [`Input::Connect`] for a [`ClientId`] that is already connected.
    AlreadyConnected(ClientId),
    /// An input for a [`ClientId`] that is not connected.
    UnknownClient(ClientId),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::AlreadyConnected(id) => write!(f, "client {id} is already connected"),
            Error::UnknownClient(id) => write!(f, "client {id} is not connected"),
        }
    }
}

impl std::error::Error for Error {}
