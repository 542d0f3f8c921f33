//! Several chat nodes as one chat, through Redis (or anything that speaks its protocol: Valkey,
//! KeyDB, Dragonfly), on threads of their own.
//!
//! `chat-cluster` owns a node's two Redis connections and everything they do: the atomic publish
//! that gives a room's message its id, appends it to the room's capped log and sends it to every
//! node; cluster-wide presence (a user joins a room on its first connection anywhere and leaves
//! on its last); the heartbeat that keeps this node's presence alive and the reaper that clears
//! a dead node's; typing notices and direct messages; and reading a room's log back (resume,
//! scroll-back). Like `chat-store`, it knows nothing of sockets, WebSockets, the chat core or any
//! event loop: the driver calls [`RunningCluster`], which only puts requests on a channel, and
//! hears every answer and every remote event through the callback it gave [`Cluster::start`].
//!
//! ```text
//!  start-up      connect(Options) ──► Connected { epoch, cluster }   PING; the epoch (SET NX)
//!                cluster.start(notify) ──► RunningCluster   spawns "chat-cluster-cmd" and "-sub"
//!
//!  event loop    publish / join / leave / typing / direct / fetch ─┐ channel, never blocks
//!                                                                   ▼
//!  command thread   one Redis connection: scripts (scripts.rs), heartbeat every 5 s, reaper
//!                   every 10 s, reconnects with backoff; answers Published / Fetched / Members
//!  subscriber thread   PSUBSCRIBE P r:*  ──► Message / Joined / Left / Typing / Direct
//!                      (every node hears every room, in Redis's publish order)
//!                                                                   │ notify(Event)
//!                                                                   ▼
//!                  (driver) a channel + a mio::Waker ──► the core's inputs
//! ```
//!
//! # Guarantees
//!
//! - **One order, one id.** A room's ids come from one `INCR` inside the publish script, which
//!   also appends to the log and publishes: every node receives a room's messages in id order,
//!   with the same ids, and the log holds the same.
//! - **No silent loss, no duplicates.** A publish is answered [`Event::Published`] with its id,
//!   or with an error (Redis unreachable, or the connection broke before the answer). An error
//!   means the message may or may not be in the log; the client's retry with the same
//!   `client_msg_id` is recognised (the dedup key, kept a day) and answered with the original id,
//!   never published twice. Without a `client_msg_id` a retry is a new message.
//! - **Presence** is a count per (room, user) across nodes; `join` and `leave` events are sent
//!   on the 0↔1 edges only. Each node also keeps what it holds (`P node:NODE`), beats every
//!   [`Options::heartbeat`] and, with the others, reaps a node silent for
//!   [`Options::dead_after`] (30 s by default): its users leave. A node that comes back, or
//!   reconnects after an outage, makes Redis's view of it match its own (`sync`), adjusting by
//!   the difference only.
//! - **Outages.** While Redis is unreachable: publishes fail at once (the driver tells the
//!   client; nothing is queued to be sent twice later), presence changes are kept locally and
//!   synced on reconnect, the subscriber reconnects with backoff and says
//!   [`Event::Link`]. Messages published by other nodes while this node's subscription was down
//!   are not replayed by Redis pub/sub: the driver fetches each room's log after
//!   `Link { subscribed: true }` from the last id it saw.
//! - **Durability** is Redis's: with `appendonly yes` and `appendfsync always` a message
//!   acknowledged survives a Redis crash; `everysec` may lose the last second; without
//!   persistence a Redis restart loses the logs and the epoch (a new epoch is taken, and clients
//!   resuming get an honest `gap`).
//!
//! # Architecture
//!
//! ```text
//!  lib.rs         these docs, Options, Event, connect, Cluster, RunningCluster
//!  scripts.rs     the Lua scripts and the key layout (publish, presence, delete, liveness)
//!  wire.rs        the JSON of a room channel's events
//!  commands.rs    the command thread
//!  subscriber.rs  the subscriber thread
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod commands;
mod scripts;
mod subscriber;
mod wire;

use std::fmt;
use std::sync::atomic::AtomicBool;
use std::sync::mpsc::{self, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use redis::Commands;

/// How a node joins the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// `redis://HOST:PORT/DB` (or `rediss://`, `unix://`).
    pub url: String,
    /// This node's name, unique in the cluster while it runs.
    pub node: String,
    /// The prefix of every key and channel (default `chat:`), so several chats can share a
    /// Redis.
    pub prefix: String,
    /// About how many messages each room's log keeps (Redis trims at its convenience, never
    /// below this).
    pub log_len: usize,
    /// How often this node says it is alive.
    pub heartbeat: Duration,
    /// A node silent this long is taken for dead: its users leave their rooms.
    pub dead_after: Duration,
    /// The epoch to take when the cluster has none yet.
    pub fresh_epoch: u64,
}

impl Options {
    /// Defaults for `url` and `node`: prefix `chat:`, 1 000 messages per room log, a beat every
    /// 5 s, dead after 30 s.
    pub fn new(url: impl Into<String>, node: impl Into<String>, fresh_epoch: u64) -> Options {
        Options {
            url: url.into(),
            node: node.into(),
            prefix: "chat:".into(),
            log_len: 1_000,
            heartbeat: Duration::from_secs(5),
            dead_after: Duration::from_secs(30),
            fresh_epoch,
        }
    }
}

/// Why a node could not join the cluster.
#[derive(Debug)]
pub struct ClusterError(String);

impl fmt::Display for ClusterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ClusterError {}

/// A message as a room's log gives it back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Logged {
    /// Its id in the room.
    pub id: u64,
    /// Who sent it.
    pub user: String,
    /// Its text.
    pub text: String,
    /// The sender's deduplication key, if any.
    pub client_msg_id: Option<String>,
    /// When the node that took it accepted it, in milliseconds since 1970.
    pub timestamp_ms: i64,
    /// An admin deleted it: its text is gone (empty here).
    pub deleted: bool,
}

/// What to publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    /// The sender.
    pub user: String,
    /// The text.
    pub text: String,
    /// The sender's deduplication key, if any.
    pub client_msg_id: Option<String>,
    /// When this node accepted it, in milliseconds since 1970.
    pub timestamp_ms: i64,
}

/// What the cluster tells the driver, on one of its threads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The answer to [`RunningCluster::publish`]: the id, and whether it was a retry of a
    /// message published before (then nothing was published again).
    Published {
        /// The publish's ticket.
        ticket: u64,
        /// `(epoch, id, duplicate)`, or why not (the message may or may not have been
        /// published).
        result: Result<(u64, u64, bool), String>,
    },
    /// A room's message, from any node (this one included), in the room's id order.
    Message {
        /// The room.
        room: String,
        /// The epoch its id belongs to.
        epoch: u64,
        /// The message.
        message: Logged,
        /// The node it came through.
        node: String,
    },
    /// One connection of a user to a room opened (`joined`) or closed, on `node` (this one
    /// included: a driver drops its own), for clients that announce every connection.
    Connection {
        /// The room.
        room: String,
        /// The user.
        user: String,
        /// Opened or closed.
        joined: bool,
        /// The node it is on.
        node: String,
    },
    /// An admin deleted message `id` of `room` (through any node, this one included).
    Deleted {
        /// The room.
        room: String,
        /// The message's id.
        id: u64,
    },
    /// A user's first connection to a room, anywhere in the cluster.
    Joined {
        /// The room.
        room: String,
        /// The user.
        user: String,
    },
    /// A user's last connection to a room closed, anywhere (or its node died).
    Left {
        /// The room.
        room: String,
        /// The user.
        user: String,
    },
    /// Someone types in a room, on `node` (this one included: a driver drops its own).
    Typing {
        /// The room.
        room: String,
        /// Who.
        user: String,
        /// The node the typist is on.
        node: String,
    },
    /// A direct message in a room, for `to`, sent through `node` (this one included: a driver
    /// drops its own).
    Direct {
        /// The room.
        room: String,
        /// The sender.
        from: String,
        /// The recipient.
        to: String,
        /// The text.
        text: String,
        /// When the sender's node accepted it.
        timestamp_ms: i64,
        /// The sender's node.
        node: String,
    },
    /// The answer to [`RunningCluster::fetch_after`] or [`RunningCluster::fetch_before`]:
    /// messages oldest first.
    Fetched {
        /// The fetch's ticket.
        ticket: u64,
        /// The messages, or why not.
        result: Result<Vec<Logged>, String>,
    },
    /// The answer to [`RunningCluster::members`]: the users with a connection to the room
    /// anywhere, by name.
    Members {
        /// The request's ticket.
        ticket: u64,
        /// The names, or why not.
        result: Result<Vec<String>, String>,
    },
    /// Redis lost the cluster's state (restarted without persistence, or flushed): ids start
    /// again from 1 under this new epoch, so no `(epoch, room, id)` names two messages. The
    /// driver takes it as its epoch from now on.
    Epoch(u64),
    /// A connection to Redis went down or came back. `subscribed`: the subscriber's (events
    /// from other nodes); otherwise the command connection's (publishes, presence).
    Link {
        /// Which connection.
        subscribed: bool,
        /// Whether it is up now.
        up: bool,
        /// What happened, for the log.
        detail: String,
    },
}

/// A joined cluster, before its threads start.
pub struct Connected {
    /// The cluster's epoch: set by the first node that ever started, the same for all.
    pub epoch: u64,
    /// The cluster, ready for [`Cluster::start`].
    pub cluster: Cluster,
}

/// A room as the cluster's Redis holds it, to seed a node's memory at start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeedRoom {
    /// The room's name.
    pub name: String,
    /// Its last id.
    pub last_id: u64,
    /// Its newest messages (at most the number asked), oldest first.
    pub messages: Vec<Logged>,
}

impl Connected {
    /// Every room the cluster knows, with its newest `per_room` messages (a node starting up
    /// seeds its memory with them, so resuming on it works as on the node that took them).
    pub fn load_rooms(&self, per_room: usize) -> Result<Vec<SeedRoom>, ClusterError> {
        let mut conn = self.cluster.connection()?;
        let prefix = &self.cluster.options.prefix;
        let mut rooms = Vec::new();
        for key in scan(&mut conn, &format!("{prefix}seq:*"))? {
            let Some(name) = key.strip_prefix(&format!("{prefix}seq:")) else {
                continue;
            };
            let last_id: u64 = conn
                .get(&key)
                .map_err(|e| ClusterError(format!("Redis: {key}: {e}")))?;
            let entries: Vec<(String, Vec<String>)> = redis::cmd("XREVRANGE")
                .arg(format!("{prefix}log:{name}"))
                .arg("+")
                .arg("-")
                .arg("COUNT")
                .arg(per_room)
                .query(&mut conn)
                .map_err(|e| ClusterError(format!("Redis: the log of {name}: {e}")))?;
            let mut messages: Vec<Logged> =
                entries.into_iter().filter_map(commands::logged).collect();
            messages.reverse();
            let tombstones = commands::tombstones(&mut conn, prefix, name)
                .map_err(|e| ClusterError(format!("Redis: the deletions of {name}: {e}")))?;
            let messages =
                commands::with_tombstones(messages, tombstones, None, None, per_room, true);
            rooms.push(SeedRoom {
                name: name.to_owned(),
                last_id,
                messages,
            });
        }
        rooms.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(rooms)
    }

    /// Who is in each room, cluster-wide, by room.
    pub fn load_presence(&self) -> Result<Vec<(String, Vec<String>)>, ClusterError> {
        let mut conn = self.cluster.connection()?;
        let prefix = &self.cluster.options.prefix;
        let mut rooms = Vec::new();
        for key in scan(&mut conn, &format!("{prefix}members:*"))? {
            let Some(name) = key.strip_prefix(&format!("{prefix}members:")) else {
                continue;
            };
            let mut users: Vec<String> = redis::cmd("HKEYS")
                .arg(&key)
                .query(&mut conn)
                .map_err(|e| ClusterError(format!("Redis: {key}: {e}")))?;
            users.sort();
            rooms.push((name.to_owned(), users));
        }
        rooms.sort();
        Ok(rooms)
    }
}

/// Every key matching `pattern` (SCAN, so Redis is never blocked by a long KEYS).
fn scan(conn: &mut redis::Connection, pattern: &str) -> Result<Vec<String>, ClusterError> {
    let mut cursor = 0u64;
    let mut keys = Vec::new();
    loop {
        let (next, mut batch): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(pattern)
            .arg("COUNT")
            .arg(1000)
            .query(conn)
            .map_err(|e| ClusterError(format!("Redis: SCAN {pattern}: {e}")))?;
        keys.append(&mut batch);
        if next == 0 {
            break;
        }
        cursor = next;
    }
    keys.sort();
    keys.dedup();
    Ok(keys)
}

/// The cluster, not yet running.
pub struct Cluster {
    options: Options,
    client: redis::Client,
    epoch: u64,
}

/// Checks that Redis answers and reads (or sets) the cluster's epoch. Fails with a clear error
/// when Redis is unreachable, so a node does not start alone by mistake.
pub fn connect(options: Options) -> Result<Connected, ClusterError> {
    let client = redis::Client::open(options.url.as_str())
        .map_err(|e| ClusterError(format!("--redis {}: {e}", redacted(&options.url))))?;
    let mut conn = client
        .get_connection_with_timeout(Duration::from_secs(5))
        .map_err(|e| {
            ClusterError(format!(
                "Redis at {} is unreachable: {e}",
                redacted(&options.url)
            ))
        })?;
    let key = format!("{}epoch", options.prefix);
    let _: bool = redis::cmd("SET")
        .arg(&key)
        .arg(options.fresh_epoch)
        .arg("NX")
        .query::<Option<String>>(&mut conn)
        .map(|set| set.is_some())
        .map_err(|e| ClusterError(format!("Redis: setting the epoch: {e}")))?;
    let epoch: u64 = conn
        .get(&key)
        .map_err(|e| ClusterError(format!("Redis: reading the epoch: {e}")))?;
    Ok(Connected {
        epoch,
        cluster: Cluster {
            options,
            client,
            epoch,
        },
    })
}

/// `url` without its password (`redis://:secret@host` → `redis://:***@host`).
pub fn redacted(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

/// A request for the command thread.
#[derive(Debug)]
pub(crate) enum Request {
    Publish {
        ticket: u64,
        room: String,
        message: Outgoing,
    },
    Join {
        room: String,
        user: String,
    },
    Leave {
        room: String,
        user: String,
    },
    Typing {
        room: String,
        user: String,
    },
    Direct {
        room: String,
        from: String,
        to: String,
        text: String,
        timestamp_ms: i64,
    },
    Fetch {
        ticket: u64,
        room: String,
        after: Option<u64>,
        before: Option<u64>,
        limit: usize,
    },
    Members {
        ticket: u64,
        room: String,
    },
    Delete {
        room: String,
        id: u64,
    },
    Shutdown,
}

type Notify = Arc<dyn Fn(Event) + Send + Sync>;

/// How long [`Cluster::start`] waits for the subscription to the rooms' channels.
const SUBSCRIBE_WAIT: Duration = Duration::from_secs(5);

impl Cluster {
    fn connection(&self) -> Result<redis::Connection, ClusterError> {
        self.client
            .get_connection_with_timeout(Duration::from_secs(5))
            .map_err(|e| {
                ClusterError(format!(
                    "Redis at {} is unreachable: {e}",
                    redacted(&self.options.url)
                ))
            })
    }

    /// Spawns the command and subscriber threads and returns once the subscriber hears every
    /// room (an error after 5 s without: a node must not serve before it hears the rooms);
    /// `notify` hears every [`Event`], on either thread: keep it short (hand the event to the
    /// loop and wake it) and never call the cluster from it.
    pub fn start(
        self,
        notify: impl Fn(Event) + Send + Sync + 'static,
    ) -> std::io::Result<RunningCluster> {
        let notify: Notify = Arc::new(notify);
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, rx) = mpsc::channel();
        // The node serves only once it hears the rooms: a message published before the
        // subscription would never reach it.
        let (subscribed_tx, subscribed_rx) = mpsc::sync_channel(1);
        let subscriber = {
            let (client, options, notify, stop) = (
                self.client.clone(),
                self.options.clone(),
                Arc::clone(&notify),
                Arc::clone(&stop),
            );
            std::thread::Builder::new()
                .name("chat-cluster-sub".into())
                .spawn(move || subscriber::run(&client, &options, &notify, &stop, &subscribed_tx))?
        };
        if subscribed_rx.recv_timeout(SUBSCRIBE_WAIT).is_err() {
            stop.store(true, std::sync::atomic::Ordering::SeqCst);
            let _ = subscriber.join();
            return Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!(
                    "could not subscribe to the rooms' channels in Redis within {} s",
                    SUBSCRIBE_WAIT.as_secs()
                ),
            ));
        }
        let commands = {
            let (client, options, epoch) = (self.client, self.options, self.epoch);
            std::thread::Builder::new()
                .name("chat-cluster-cmd".into())
                .spawn(move || commands::run(&client, &options, epoch, &rx, &notify))?
        };
        Ok(RunningCluster {
            tx,
            stop,
            threads: vec![commands, subscriber],
        })
    }
}

/// The running cluster: every method puts a request on the command thread's channel and
/// returns at once.
pub struct RunningCluster {
    tx: Sender<Request>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl RunningCluster {
    /// Publishes a chat message in `room`; answered by [`Event::Published`] with `ticket`, and
    /// (if not a duplicate) heard back by every node as [`Event::Message`].
    pub fn publish(&self, ticket: u64, room: &str, message: Outgoing) {
        self.send(Request::Publish {
            ticket,
            room: room.to_owned(),
            message,
        });
    }

    /// One more connection of `user` in `room` on this node.
    pub fn join(&self, room: &str, user: &str) {
        self.send(Request::Join {
            room: room.to_owned(),
            user: user.to_owned(),
        });
    }

    /// One connection of `user` in `room` on this node closed.
    pub fn leave(&self, room: &str, user: &str) {
        self.send(Request::Leave {
            room: room.to_owned(),
            user: user.to_owned(),
        });
    }

    /// `user` types in `room` (heard by every node as [`Event::Typing`]).
    pub fn typing(&self, room: &str, user: &str) {
        self.send(Request::Typing {
            room: room.to_owned(),
            user: user.to_owned(),
        });
    }

    /// A direct message in `room` from `from` to `to` (heard by every node as
    /// [`Event::Direct`]).
    pub fn direct(&self, room: &str, from: &str, to: &str, text: &str, timestamp_ms: i64) {
        self.send(Request::Direct {
            room: room.to_owned(),
            from: from.to_owned(),
            to: to.to_owned(),
            text: text.to_owned(),
            timestamp_ms,
        });
    }

    /// The messages of `room` with an id above `after`, oldest first, at most `limit` (resume,
    /// catching up after an outage); answered by [`Event::Fetched`].
    pub fn fetch_after(&self, ticket: u64, room: &str, after: u64, limit: usize) {
        self.send(Request::Fetch {
            ticket,
            room: room.to_owned(),
            after: Some(after),
            before: None,
            limit,
        });
    }

    /// The newest `limit` messages of `room` with an id below `before`, oldest first
    /// (scroll-back); answered by [`Event::Fetched`].
    pub fn fetch_before(&self, ticket: u64, room: &str, before: u64, limit: usize) {
        self.send(Request::Fetch {
            ticket,
            room: room.to_owned(),
            after: None,
            before: Some(before),
            limit,
        });
    }

    /// An admin deletes message `id` of `room`: its text leaves Redis and every node hears
    /// [`Event::Deleted`] (this one included).
    pub fn delete(&self, room: &str, id: u64) {
        self.send(Request::Delete {
            room: room.to_owned(),
            id,
        });
    }

    /// Who is in `room`, cluster-wide; answered by [`Event::Members`].
    pub fn members(&self, ticket: u64, room: &str) {
        self.send(Request::Members {
            ticket,
            room: room.to_owned(),
        });
    }

    /// Leaves the cluster: this node's users leave their rooms (as if it had died, but at once),
    /// then both threads stop.
    pub fn shutdown(mut self) {
        self.stop_threads();
    }

    fn stop_threads(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        let _ = self.tx.send(Request::Shutdown);
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }

    fn send(&self, request: Request) {
        // The command thread ends only at shutdown, which consumes `self`.
        let _ = self.tx.send(request);
    }
}

impl Drop for RunningCluster {
    fn drop(&mut self) {
        self.stop_threads();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_in_the_url_is_never_shown() {
        assert_eq!(
            redacted("redis://:hunter2@127.0.0.1:6379/0"),
            "redis://:***@127.0.0.1:6379/0"
        );
        assert_eq!(
            redacted("redis://app:hunter2@h:1/2"),
            "redis://app:***@h:1/2"
        );
        assert_eq!(redacted("redis://h:1/2"), "redis://h:1/2");
    }
}
