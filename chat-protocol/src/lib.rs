//! The chat server's logic as a pure, sans-IO state machine.
//!
//! [`ChatServer`] owns every connected client and decides who receives what. It does no IO and
//! never reads a clock: a driver (the mio event loop in `chat-mio-server`, or any other runtime)
//! feeds it [`Input`]s stamped with the current [`Now`], and carries out the [`Output`]s it asks
//! for. The same inputs at the same times always give the same outputs, so its tests are
//! deterministic and run in virtual time.
//!
//! # The run-loop contract
//!
//! ```text
//!  socket events ──► Input ──► ChatServer::handle_input(now, input)
//!                                      │
//!        ┌─────────────────────────────┘
//!        ▼
//!  while let Some(output) = poll_output()   ──► write a frame / close a socket
//!  poll_timeout()                           ──► when to call handle_input(now, Input::Timeout)
//! ```
//!
//! 1. Call [`ChatServer::handle_input`] for every event: a client finished its WebSocket
//!    handshake ([`Input::Connect`]), a text frame arrived ([`Input::Text`]), a connection
//!    ended ([`Input::Disconnect`]), a deadline passed ([`Input::Timeout`]).
//! 2. After **every** input, drain [`ChatServer::poll_output`] until it returns `None`. Outputs
//!    address clients by the [`ClientId`] the driver chose, and only clients that are connected
//!    at the time the output is drained.
//! 3. Then ask [`ChatServer::poll_timeout`] for the next deadline and arrange to deliver
//!    [`Input::Timeout`] no later than that. Early or extra timeouts are harmless.
//!
//! A misbehaving *client* is never an `Err`: it gets an error frame and/or a close output. `Err`
//! means the *driver* broke the contract (an unknown or duplicate [`ClientId`]).
//!
//! # Fan-out
//!
//! Every broadcast is serialized once into a [`Payload`] (a reference-counted UTF-8 buffer) and
//! every recipient's [`Output::Send`] holds a clone of that one buffer: a refcount increment,
//! never a copy or a re-encoding.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod event;

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::time::Instant;

use chrono::{DateTime, Utc};

pub use event::{Event, EventKind};

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
/// `instant` (monotonic) drives deadlines; `wall` (UTC) only stamps the frames. They are separate
/// because wall time can jump and deadlines must not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Now {
    /// Monotonic time, for deadlines.
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
    /// A client's connection ended, for whatever reason (close frame, reset, error, or after a
    /// [`Output::Close`] the driver carried out). The client must not be addressed after this.
    Disconnect {
        /// Who left.
        client: ClientId,
    },
    /// A deadline given by [`ChatServer::poll_timeout`] has passed (or might have).
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
    /// Send a close frame with this code and reason, then end the connection. The driver reports
    /// the end with [`Input::Disconnect`] as for any other connection.
    Close {
        /// The client to close.
        client: ClientId,
        /// A WebSocket close code (RFC 6455 section 7.4), for example 1008 (policy violation).
        code: u16,
        /// A short human-readable reason (at most 123 bytes, to fit a close frame).
        reason: &'static str,
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

/// Settings of the state machine. Every field has a sensible default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Config {}

/// One connected client.
#[derive(Debug)]
struct Client {
    user: String,
}

/// The chat server's state: every connected client and the outputs not yet drained.
#[derive(Debug)]
pub struct ChatServer {
    #[allow(dead_code)] // no settings yet; kept so drivers already pass one
    config: Config,
    /// Ordered, so every broadcast reaches clients in the same order on every run.
    clients: BTreeMap<ClientId, Client>,
    outputs: VecDeque<Output>,
}

impl ChatServer {
    /// A server with no clients.
    pub fn new(config: Config) -> Self {
        ChatServer {
            config,
            clients: BTreeMap::new(),
            outputs: VecDeque::new(),
        }
    }

    /// Feeds one input. Drain [`poll_output`](Self::poll_output) afterwards.
    ///
    /// Returns `Err` only when the driver broke the contract; the state is then unchanged.
    pub fn handle_input(&mut self, now: Now, input: Input) -> Result<(), Error> {
        match input {
            Input::Connect { client, user } => self.connect(now, client, user),
            Input::Text { client, text } => self.text(now, client, &text),
            Input::Disconnect { client } => self.disconnect(now, client),
            Input::Timeout => Ok(()),
        }
    }

    /// The next thing the driver must do, or `None` when there is nothing left. Call it until it
    /// returns `None` after every [`handle_input`](Self::handle_input).
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// When the driver must call `handle_input(now, Input::Timeout)` next, or `None` when no
    /// deadline is pending. Ask again after every input: it changes as clients come and go.
    pub fn poll_timeout(&self) -> Option<Instant> {
        None
    }

    /// How many clients are connected.
    pub fn client_count(&self) -> usize {
        self.clients.len()
    }

    /// The user name a connected client joined with.
    pub fn user(&self, client: ClientId) -> Option<&str> {
        self.clients.get(&client).map(|c| c.user.as_str())
    }

    fn connect(&mut self, now: Now, client: ClientId, user: String) -> Result<(), Error> {
        if self.clients.contains_key(&client) {
            return Err(Error::AlreadyConnected(client));
        }
        let message = format!("{user} joined the chat");
        let payload = Event::new(EventKind::Connection, &user, &message, now.wall).encode();
        self.clients.insert(client, Client { user });
        // The joiner is in the map already: the tutorial greets the new client too.
        self.broadcast(&payload);
        Ok(())
    }

    fn text(&mut self, now: Now, client: ClientId, text: &str) -> Result<(), Error> {
        let sender = self
            .clients
            .get(&client)
            .ok_or(Error::UnknownClient(client))?;
        let payload = Event::new(EventKind::Message, &sender.user, text, now.wall).encode();
        self.broadcast(&payload);
        Ok(())
    }

    fn disconnect(&mut self, now: Now, client: ClientId) -> Result<(), Error> {
        let gone = self
            .clients
            .remove(&client)
            .ok_or(Error::UnknownClient(client))?;
        let message = format!("{} left the chat", gone.user);
        let payload = Event::new(EventKind::Disconnection, &gone.user, &message, now.wall).encode();
        self.broadcast(&payload);
        Ok(())
    }

    /// Queues `payload` for every connected client, in client order.
    fn broadcast(&mut self, payload: &Payload) {
        self.outputs.reserve(self.clients.len());
        self.outputs
            .extend(self.clients.keys().map(|&to| Output::Send {
                to,
                payload: payload.clone(),
            }));
    }
}
