//! The settings of [`ChatServer`](crate::ChatServer): rate limit, heartbeat and idle timeout,
//! history, epoch, room limit, typing throttle, durability and cluster mode.

use std::time::Duration;

/// Settings of the state machine. [`Config::default`] is what a public chat server wants; change
/// it with the `with_*` setters (the struct is `#[non_exhaustive]`, so it cannot be built with a
/// literal outside this crate).
///
/// ```
/// use std::time::Duration;
/// use chat_protocol::{Config, RateLimit};
///
/// let config = Config::default()
///     .with_rate_limit(Some(RateLimit { burst: 10, per_second: 1.0 }))
///     .with_heartbeat_interval(Some(Duration::from_secs(30)))
///     .with_idle_timeout(None)
///     .with_history(50)
///     .with_epoch(1_795_294_378_000);
/// assert_eq!(config.idle_timeout, None);
/// assert_eq!(config.max_rooms, 1000);
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Config {
    /// How fast each connection may send chat messages. `None` = no rate limit.
    /// Default: a burst of 20, then 5 messages per second.
    pub rate_limit: Option<RateLimit>,
    /// Ping a client after this long without hearing from it (and again after this long
    /// without an answer). `None` = never ping. `Some(Duration::ZERO)` is treated as `None`:
    /// a client cannot be pinged continuously. Default 25 s.
    pub heartbeat_interval: Option<Duration>,
    /// Close a client that sent nothing (not even a pong) for this long. `None` = never.
    /// Default 60 s.
    pub idle_timeout: Option<Duration>,
    /// How many chat messages each room keeps, for the `history` frame of joining v2 clients,
    /// for resuming, and for `client_msg_id` retries. 0 keeps none. Default 100.
    pub history: usize,
    /// This server run's epoch, sent in `welcome`, `history` and `gap` frames: a number that
    /// changes on every start, so that `(epoch, id)` names one message for ever. The driver sets
    /// it to the start time in milliseconds (the core reads no clock). The core only compares
    /// it: two servers given the same epoch (started in the same millisecond) are one to a
    /// resuming client (PROTOCOL.md). With [`durable`](Self::durable) storage the driver
    /// keeps the stored epoch across a clean restart (ids continue, see
    /// [`ChatServer::restore`](crate::ChatServer::restore)) and takes a new one when ids may
    /// have been handed out that storage did not keep. Default 0.
    pub epoch: u64,
    /// The most bytes one room's history holds in memory (its messages' texts, senders'
    /// names and `client_msg_id`s, plus a fixed overhead per message), besides
    /// [`history`](Self::history)'s count: the oldest messages go first. A message bigger than
    /// this alone is delivered but not held (and nothing before it). Default 1 MiB.
    pub room_history_bytes: usize,
    /// The most bytes all rooms' histories hold together. Past it the oldest messages of the
    /// room that got a message least recently go first, then the next such room's. A driver
    /// with a memory budget moves it as the rest of its memory grows and shrinks
    /// ([`Input::HistoryBudget`](crate::Input::HistoryBudget)). With
    /// [`durable`](Self::durable) storage, messages trimmed from memory are still on disk for
    /// scroll-back and for resuming clients. Default `usize::MAX` (no bound besides the per-room ones).
    pub history_budget: usize,
    /// The most rooms kept at once. A room nobody is in is kept, with its history, until a new
    /// room needs its place; then the one that has been empty longest is forgotten. When every
    /// room has someone in it, a connection to a new room is closed with
    /// [`CloseReason::TooManyRooms`](crate::CloseReason::TooManyRooms). 0 is treated as 1 (a
    /// server that refuses every connection is never what is meant). Default 1000.
    pub max_rooms: usize,
    /// A user's `typing` notices in a room are relayed at most once per this interval; extra
    /// ones are dropped silently. Default 2 s.
    pub typing_interval: Duration,
    /// Whether messages are made durable by the driver's storage (the crate docs, "Durability"):
    /// every message is handed out as an [`Output::Store`](crate::Output::Store), a v2 `ack`
    /// waits for [`Input::Stored`](crate::Input::Stored) and says whether the message was
    /// stored, and `history_before` reaches beyond memory through
    /// [`Output::Fetch`](crate::Output::Fetch). `false` keeps everything in memory, and no
    /// storage output or input ever occurs. Default `false`.
    pub durable: bool,
    /// Clients authenticate with signed tokens that expire ([`Input::Expires`](crate::Input)):
    /// a v2 client may send a fresh one with `refresh`. Without it `refresh` is a
    /// `bad_command`. Default false.
    pub token_auth: bool,
    /// This server is one node of a cluster (the crate docs, "Cluster mode"): room messages
    /// get their ids from the cluster ([`Output::ClusterPublish`](crate::Output::ClusterPublish),
    /// delivered when heard back as [`Input::ClusterMessage`](crate::Input::ClusterMessage)),
    /// presence is cluster-wide, and typing notices and direct messages cross nodes. The
    /// cluster's log is the store: [`durable`](Self::durable) is ignored (taken as `false`),
    /// while resume and scroll-back beyond memory use [`Output::Fetch`](crate::Output::Fetch)
    /// as in durable mode. [`epoch`](Self::epoch) is the cluster's. Default `false`.
    pub cluster: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            rate_limit: Some(RateLimit {
                burst: 20,
                per_second: 5.0,
            }),
            heartbeat_interval: Some(Duration::from_secs(25)),
            idle_timeout: Some(Duration::from_secs(60)),
            history: 100,
            room_history_bytes: 1024 * 1024,
            history_budget: usize::MAX,
            epoch: 0,
            max_rooms: 1000,
            typing_interval: Duration::from_secs(2),
            durable: false,
            token_auth: false,
            cluster: false,
        }
    }
}

impl Config {
    /// Sets [`rate_limit`](Self::rate_limit).
    #[must_use]
    pub fn with_rate_limit(mut self, rate_limit: Option<RateLimit>) -> Self {
        self.rate_limit = rate_limit;
        self
    }

    /// Sets [`heartbeat_interval`](Self::heartbeat_interval).
    #[must_use]
    pub fn with_heartbeat_interval(mut self, interval: Option<Duration>) -> Self {
        self.heartbeat_interval = interval;
        self
    }

    /// Sets [`idle_timeout`](Self::idle_timeout).
    #[must_use]
    pub fn with_idle_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.idle_timeout = timeout;
        self
    }

    /// Sets [`history`](Self::history).
    #[must_use]
    pub fn with_history(mut self, messages: usize) -> Self {
        self.history = messages;
        self
    }

    /// Sets [`room_history_bytes`](Self::room_history_bytes).
    #[must_use]
    pub fn with_room_history_bytes(mut self, bytes: usize) -> Self {
        self.room_history_bytes = bytes;
        self
    }

    /// Sets [`history_budget`](Self::history_budget).
    #[must_use]
    pub fn with_history_budget(mut self, bytes: usize) -> Self {
        self.history_budget = bytes;
        self
    }

    /// Sets [`epoch`](Self::epoch).
    #[must_use]
    pub fn with_epoch(mut self, epoch: u64) -> Self {
        self.epoch = epoch;
        self
    }

    /// Sets [`max_rooms`](Self::max_rooms).
    #[must_use]
    pub fn with_max_rooms(mut self, rooms: usize) -> Self {
        self.max_rooms = rooms;
        self
    }

    /// Sets [`typing_interval`](Self::typing_interval).
    #[must_use]
    pub fn with_typing_interval(mut self, interval: Duration) -> Self {
        self.typing_interval = interval;
        self
    }

    /// Sets [`durable`](Self::durable).
    #[must_use]
    pub fn with_durable(mut self, durable: bool) -> Self {
        self.durable = durable;
        self
    }

    /// Sets [`cluster`](Self::cluster).
    #[must_use]
    pub fn with_cluster(mut self, cluster: bool) -> Self {
        self.cluster = cluster;
        self
    }

    /// Sets [`token_auth`](Self::token_auth).
    #[must_use]
    pub fn with_token_auth(mut self, token_auth: bool) -> Self {
        self.token_auth = token_auth;
        self
    }
}

/// A per-connection token bucket: it holds at most `burst` tokens, starts full when the client
/// connects, and refills continuously at `per_second` tokens per second. Every chat message
/// (v1 text, v2 `message` or `direct` command) costs one token; a message that finds the bucket empty is rejected.
///
/// A limit with `burst == 0`, or a `per_second` that is not a positive finite number (zero,
/// negative, NaN, infinite), limits nothing: it is the same as no rate limit. (Rejecting every
/// message forever is never what a chat server means, and this keeps the arithmetic total.)
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimit {
    /// How many messages a client may send at once, and the most tokens the bucket holds.
    pub burst: u32,
    /// How many tokens come back per second, continuously.
    pub per_second: f64,
}

impl RateLimit {
    /// Whether this limit limits anything (see the type's docs).
    pub(crate) fn is_effective(&self) -> bool {
        self.burst > 0 && self.per_second.is_finite() && self.per_second > 0.0
    }
}
