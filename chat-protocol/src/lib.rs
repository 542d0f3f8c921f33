//! The chat server's logic as a pure, sans-IO state machine.
//!
//! [`ChatServer`] owns every connected client and decides who receives what, who gets pinged
//! and who gets closed. It does no IO and never reads a clock: a driver (the mio event loop in
//! `chat-mio-server`, or any other runtime) feeds it [`Input`]s stamped with the current
//! [`Now`], and carries out the [`Output`]s it asks for. The same inputs at the same times
//! always give the same outputs, so its tests are deterministic and run in virtual time.
//!
//! # The run-loop contract
//!
//! ```text
//!  socket events ──► Input ──► ChatServer::handle_input(now, input)
//!                                      │
//!        ┌─────────────────────────────┘
//!        ▼
//!  while let Some(output) = poll_output()   ──► write a frame / ping / close a socket
//!  poll_timeout()                           ──► when to call handle_input(now, Input::Timeout)
//! ```
//!
//! 1. Call [`ChatServer::handle_input`] for every event: a client finished its WebSocket
//!    handshake ([`Input::Connect`]), a text frame arrived ([`Input::Text`]), a ping or pong
//!    arrived ([`Input::Activity`]), a connection ended ([`Input::Disconnect`]), a deadline
//!    passed ([`Input::Timeout`]).
//! 2. After **every** input, drain [`ChatServer::poll_output`] until it returns `None`. Outputs
//!    address clients by the [`ClientId`] the driver chose, and only clients that are connected
//!    at the time the output is drained.
//! 3. Then ask [`ChatServer::poll_timeout`] for the next deadline and arrange to deliver
//!    [`Input::Timeout`] at that instant or soon after.
//!
//! A misbehaving *client* is never an `Err`: it gets an error frame and/or a close output. `Err`
//! means the *driver* broke the contract (an unknown or duplicate [`ClientId`]).
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
//! Deadlines are kept in a min-heap with one entry per client. Connect, Disconnect, Text and
//! Activity are O(1) or O(log n) in the number of clients and never scan them; a Timeout costs
//! O(log n) per client whose (possibly stale) deadline has come.
//!
//! # Heartbeat and idle timeout
//!
//! Every Text or Activity input (rate-limited messages included) counts as proof of life.
//! After [`Config::heartbeat_interval`] without one, and again after each further interval
//! without one, the server asks for an [`Output::Ping`]; the client's pong arrives as
//! [`Input::Activity`]. After [`Config::idle_timeout`] without one, it asks for
//! [`Output::Close`] with [`CloseReason::Idle`]. With the defaults (25 s, 60 s) a silent client
//! is pinged at 25 s and 50 s and closed at 60 s.
//!
//! # Rate limiting
//!
//! Each connection has a token bucket ([`RateLimit`]): a message that finds it empty is not
//! broadcast, and only the sender gets an error frame (`"type":"error"`,
//! `"code":"rate_limited"`). A client whose messages are rejected more than `burst` times in a
//! row is closed with [`CloseReason::RateLimited`]. Nobody else sees any of this.
//!
//! # Closing
//!
//! After an [`Output::Close`] the client is no longer addressed (no [`Output::Send`], no
//! [`Output::Ping`], no second Close) and what it still sends is dropped; it stays connected, in
//! [`client_count`](ChatServer::client_count), until the driver reports [`Input::Disconnect`],
//! which is announced to the others as for any departure.
//!
//! # Fan-out
//!
//! Every broadcast is serialized once into a [`Payload`] (a reference-counted UTF-8 buffer) and
//! every recipient's [`Output::Send`] holds a clone of that one buffer: a refcount increment,
//! never a copy or a re-encoding. Recipients are served in [`ClientId`] order.
//!
//! # Bounded resources
//!
//! Per client the server keeps its name, a token bucket and two instants; the deadline heap
//! holds at most a constant factor more entries than there are clients. Nothing a client sends
//! makes the server allocate beyond the frames it is asked to relay.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod config;
mod event;
mod heartbeat;
mod rate;
mod server;
mod timer;

use std::fmt;
use std::time::Instant;

use chrono::{DateTime, Utc};

pub use config::{Config, RateLimit};
pub use event::{Event, EventKind};
pub use server::ChatServer;

/// An encoded text frame, shared by every recipient of a broadcast. Cloning it is a refcount
/// bump. It is `tungstenite`'s UTF-8 buffer, so a tungstenite-based driver sends it as
/// `Message::Text(payload)` without a copy or a UTF-8 re-check.
pub type Payload = tungstenite::Utf8Bytes;

/// A handle for one connection, chosen by the driver (for example its slab index). It must be
/// unique among the connected clients; it may be reused after [`Input::Disconnect`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ClientId(pub u64);

impl fmt::Display for ClientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// The current time, as the driver read it, passed in with every input.
///
/// `instant` (monotonic) drives deadlines and rate limits; `wall` (UTC) only stamps the frames.
/// They are separate because wall time can jump and deadlines must not.
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
    /// A client completed the WebSocket handshake on `/ws/{user}`.
    Connect {
        /// The driver's handle for this connection.
        client: ClientId,
        /// The user's chosen name (the `{client_id}` of the tutorial's URL, percent-decoded).
        user: String,
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
}

/// Something the driver must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Send this text frame to this client.
    Send {
        /// The recipient.
        to: ClientId,
        /// The encoded frame, shared with every other recipient of the same broadcast.
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
}

/// Why the server closes a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CloseReason {
    /// The client kept sending faster than its [`RateLimit`] after being told off.
    RateLimited,
    /// The client sent nothing, not even a pong, for [`Config::idle_timeout`].
    Idle,
}

impl CloseReason {
    /// The WebSocket close code (RFC 6455 section 7.4.1): 1008 (policy violation) for
    /// [`RateLimited`](Self::RateLimited), 1001 (going away) for [`Idle`](Self::Idle).
    pub fn code(self) -> u16 {
        match self {
            CloseReason::RateLimited => 1008,
            CloseReason::Idle => 1001,
        }
    }

    /// The close frame's reason text (short enough for a close frame's 123 bytes).
    pub fn text(self) -> &'static str {
        match self {
            CloseReason::RateLimited => "rate limit exceeded",
            CloseReason::Idle => "idle timeout",
        }
    }

    /// A stable machine-friendly name, for metrics and logs: `rate_limit`, `idle`.
    pub fn label(self) -> &'static str {
        match self {
            CloseReason::RateLimited => "rate_limit",
            CloseReason::Idle => "idle",
        }
    }
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
