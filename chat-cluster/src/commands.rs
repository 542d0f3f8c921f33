//! The command thread: one Redis connection for publishes, presence, reads, the heartbeat and the
//! reaper. It reconnects with backoff; while Redis is away, publishes fail at once and presence
//! changes wait in the node's own tally, synced when Redis is back.

use std::collections::BTreeMap;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use redis::{Connection, RedisError, Script};

use crate::wire::{message_tail, Wire};
use crate::{scripts, Event, Logged, Notify, Options, Request};

/// The first wait before a reconnect; doubled after each failure up to [`MAX_BACKOFF`].
const MIN_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// How long a command may wait for Redis before the connection is taken for broken.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(2);
/// Most messages one fetch returns.
const MAX_FETCH: usize = 1_000;

struct Scripts {
    publish: Script,
    delete: Script,
    join: Script,
    leave: Script,
    sync: Script,
    beat: Script,
    reap: Script,
}

struct Node<'a> {
    client: &'a redis::Client,
    options: &'a Options,
    notify: &'a Notify,
    scripts: Scripts,
    conn: Option<Connection>,
    /// What this node holds: (room, user) → open connections. Redis's `P node:NODE` follows it.
    tally: BTreeMap<(String, String), u64>,
    /// Redis's view of this node may differ from the tally (an outage, a reap): sync first.
    out_of_sync: bool,
    retry_at: Instant,
    backoff: Duration,
    /// The link was reported down (so it is reported once per outage).
    reported_down: bool,
    next_beat: Instant,
    next_reap: Instant,
    /// The cluster's epoch as this node knows it.
    epoch: u64,
}

/// The thread's body; returns at shutdown.
pub(crate) fn run(
    client: &redis::Client,
    options: &Options,
    epoch: u64,
    rx: &Receiver<Request>,
    notify: &Notify,
) {
    let now = Instant::now();
    let mut node = Node {
        client,
        options,
        notify,
        scripts: Scripts {
            publish: scripts::publish(),
            delete: scripts::delete(),
            join: scripts::join(),
            leave: scripts::leave(),
            sync: scripts::sync(),
            beat: scripts::beat(),
            reap: scripts::reap(),
        },
        conn: None,
        tally: BTreeMap::new(),
        out_of_sync: true,
        retry_at: now,
        backoff: MIN_BACKOFF,
        reported_down: false,
        next_beat: now,
        next_reap: now + options.heartbeat * 2,
        epoch,
    };
    node.ensure_connected();
    loop {
        let wait = node
            .next_beat
            .min(node.next_reap)
            .saturating_duration_since(Instant::now());
        match rx.recv_timeout(wait) {
            Ok(Request::Shutdown) | Err(RecvTimeoutError::Disconnected) => {
                node.depart();
                return;
            }
            Ok(request) => node.handle(request),
            Err(RecvTimeoutError::Timeout) => {}
        }
        node.timers();
    }
}

/// Whether `e` means the connection is unusable (as opposed to a refused command).
fn broken(e: &RedisError) -> bool {
    e.is_io_error() || e.is_connection_dropped() || e.is_timeout() || e.is_connection_refusal()
}

impl Node<'_> {
    fn key(&self, what: &str, room: &str) -> String {
        format!("{}{what}:{room}", self.options.prefix)
    }

    fn channel(&self, room: &str) -> String {
        format!("{}r:{room}", self.options.prefix)
    }

    fn node_key(&self) -> String {
        format!("{}node:{}", self.options.prefix, self.options.node)
    }

    fn nodes_key(&self) -> String {
        format!("{}nodes", self.options.prefix)
    }

    /// A connection, reconnecting when the backoff allows; `None` while Redis is away.
    fn ensure_connected(&mut self) -> bool {
        if self.conn.is_some() {
            return true;
        }
        let now = Instant::now();
        if now < self.retry_at {
            return false;
        }
        let connected = self
            .client
            .get_connection_with_timeout(COMMAND_TIMEOUT)
            .and_then(|conn| {
                conn.set_read_timeout(Some(COMMAND_TIMEOUT))?;
                conn.set_write_timeout(Some(COMMAND_TIMEOUT))?;
                Ok(conn)
            });
        match connected {
            Ok(conn) => {
                self.conn = Some(conn);
                self.backoff = MIN_BACKOFF;
                if self.reported_down {
                    self.reported_down = false;
                    (self.notify)(Event::Link {
                        subscribed: false,
                        up: true,
                        detail: "reconnected to Redis".into(),
                    });
                }
                self.check_epoch();
                self.out_of_sync = true;
                self.sync();
                self.conn.is_some()
            }
            Err(e) => {
                self.down(&e.to_string());
                false
            }
        }
    }

    /// After a reconnect: if Redis lost the epoch (and with it the ids), a new one is taken
    /// (the first node back sets it, the others read it) and the driver is told.
    fn check_epoch(&mut self) {
        let key = format!("{}epoch", self.options.prefix);
        let fresh = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| u64::try_from(d.as_millis()).unwrap_or(1));
        let Some(conn) = self.conn.as_mut() else {
            return;
        };
        let epoch = redis::cmd("SET")
            .arg(&key)
            .arg(fresh)
            .arg("NX")
            .query::<Option<String>>(conn)
            .and_then(|_| redis::cmd("GET").arg(&key).query::<u64>(conn));
        match epoch {
            Ok(epoch) if epoch != self.epoch => {
                log::warn!(
                    "cluster: Redis lost its state; epoch {} becomes {epoch} (ids start again)",
                    self.epoch
                );
                self.epoch = epoch;
                (self.notify)(Event::Epoch(epoch));
            }
            Ok(_) => {}
            Err(e) => {
                if broken(&e) {
                    self.down(&e.to_string());
                }
            }
        }
    }

    /// The connection broke (or could not be made): report once, retry after the backoff.
    fn down(&mut self, why: &str) {
        self.conn = None;
        self.out_of_sync = true;
        self.retry_at = Instant::now() + self.backoff;
        self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
        if !self.reported_down {
            self.reported_down = true;
            (self.notify)(Event::Link {
                subscribed: false,
                up: false,
                detail: format!("Redis unreachable: {why}"),
            });
        }
    }

    /// Runs `f` on the connection; a broken connection is dropped (and retried later).
    fn with_conn<T>(
        &mut self,
        f: impl FnOnce(&mut Connection, &Scripts) -> Result<T, RedisError>,
    ) -> Result<T, String> {
        if !self.ensure_connected() {
            return Err("the cluster's Redis is unreachable".into());
        }
        let Some(conn) = self.conn.as_mut() else {
            return Err("the cluster's Redis is unreachable".into());
        };
        match f(conn, &self.scripts) {
            Ok(value) => Ok(value),
            Err(e) => {
                let why = e.to_string();
                if broken(&e) {
                    self.down(&why);
                }
                Err(why)
            }
        }
    }

    fn handle(&mut self, request: Request) {
        match request {
            Request::Publish {
                ticket,
                room,
                message,
            } => {
                let result = self.publish(&room, &message);
                (self.notify)(Event::Published { ticket, result });
            }
            Request::Join { room, user } => {
                *self.tally.entry((room.clone(), user.clone())).or_default() += 1;
                self.presence(true, &room, &user);
            }
            Request::Leave { room, user } => {
                let key = (room.clone(), user.clone());
                match self.tally.get_mut(&key) {
                    Some(n) if *n > 1 => *n -= 1,
                    Some(_) => {
                        self.tally.remove(&key);
                    }
                    None => return, // never joined here
                }
                self.presence(false, &room, &user);
            }
            Request::Typing { room, user } => {
                let event = Wire::Typing {
                    u: user,
                    n: self.options.node.clone(),
                };
                self.publish_event(&room, &event);
            }
            Request::Direct {
                room,
                from,
                to,
                text,
                timestamp_ms,
            } => {
                let event = Wire::Direct {
                    u: from,
                    to,
                    t: text,
                    ts: timestamp_ms,
                    n: self.options.node.clone(),
                };
                self.publish_event(&room, &event);
            }
            Request::Fetch {
                ticket,
                room,
                after,
                before,
                limit,
            } => {
                let result = self.fetch(&room, after, before, limit.min(MAX_FETCH));
                (self.notify)(Event::Fetched { ticket, result });
            }
            Request::Members { ticket, room } => {
                let key = self.key("members", &room);
                let result = self.with_conn(|conn, _| {
                    redis::cmd("HKEYS")
                        .arg(&key)
                        .query::<Vec<String>>(conn)
                        .map(|mut users| {
                            users.sort();
                            users
                        })
                });
                (self.notify)(Event::Members { ticket, result });
            }
            Request::Delete { room, id } => {
                let (log, tombstones, channel) = (
                    self.key("log", &room),
                    self.key("deleted", &room),
                    self.channel(&room),
                );
                let deleted = self.with_conn(|conn, s| {
                    s.delete
                        .key(&log)
                        .key(&tombstones)
                        .arg(id)
                        .arg(&channel)
                        .invoke::<i64>(conn)
                });
                if let Err(e) = deleted {
                    log::error!("cluster: deleting message {id} of {room}: {e}");
                }
            }
            Request::Shutdown => {}
        }
    }

    /// One connection of `user` in `room` opened (`join`) or closed, told to Redis unless this
    /// node must sync first (the tally already has it).
    fn presence(&mut self, join: bool, room: &str, user: &str) {
        if self.out_of_sync {
            return;
        }
        let (members, node, channel) = (
            self.key("members", room),
            self.node_key(),
            self.channel(room),
        );
        let field = format!("{room}\n{user}");
        let name = self.options.node.clone();
        let _ = self.with_conn(|conn, s| {
            let script = if join { &s.join } else { &s.leave };
            script
                .key(&members)
                .key(&node)
                .arg(user)
                .arg(&field)
                .arg(&channel)
                .arg(&name)
                .invoke::<i64>(conn)
        });
    }

    fn publish(
        &mut self,
        room: &str,
        message: &crate::Outgoing,
    ) -> Result<(u64, u64, bool), String> {
        let seq = self.key("seq", room);
        let epoch_key = format!("{}epoch", self.options.prefix);
        let log = self.key("log", room);
        let channel = self.channel(room);
        let dedup = message.client_msg_id.as_ref().map(|key| {
            format!(
                "{}dedup:{room}:{}:{}:{key}",
                self.options.prefix,
                message.user.len(),
                message.user
            )
        });
        let tail = message_tail(
            &message.user,
            &message.text,
            message.timestamp_ms,
            message.client_msg_id.as_deref(),
            &self.options.node,
        );
        let log_len = self.options.log_len;
        self.with_conn(|conn, s| {
            let mut invocation = s.publish.key(&seq);
            invocation.key(&log).key(&epoch_key);
            if let Some(dedup) = &dedup {
                invocation.key(dedup);
            }
            let (id, duplicate, epoch): (u64, u8, u64) = invocation
                .arg(&channel)
                .arg(&message.user)
                .arg(&message.text)
                .arg(message.timestamp_ms)
                .arg(message.client_msg_id.as_deref().unwrap_or(""))
                .arg(log_len)
                .arg(&tail)
                .invoke(conn)?;
            Ok((epoch, id, duplicate == 1))
        })
    }

    /// Publishes an event that is not kept (typing, a direct message); lost while Redis is
    /// away, as a typing notice or a direct message to another node is.
    fn publish_event(&mut self, room: &str, event: &Wire) {
        let Ok(payload) = serde_json::to_string(event) else {
            return;
        };
        let channel = self.channel(room);
        let _ = self.with_conn(|conn, _| {
            redis::cmd("PUBLISH")
                .arg(&channel)
                .arg(&payload)
                .query::<i64>(conn)
        });
    }

    fn fetch(
        &mut self,
        room: &str,
        after: Option<u64>,
        before: Option<u64>,
        limit: usize,
    ) -> Result<Vec<Logged>, String> {
        let log = self.key("log", room);
        let entries = self.with_conn(|conn, _| {
            let mut cmd = match (after, before) {
                (Some(after), _) => {
                    let mut cmd = redis::cmd("XRANGE");
                    cmd.arg(&log).arg(format!("({after}-0")).arg("+");
                    cmd
                }
                (None, before) => {
                    let mut cmd = redis::cmd("XREVRANGE");
                    let end = before.map_or("+".to_owned(), |b| format!("({b}-0"));
                    cmd.arg(&log).arg(end).arg("-");
                    cmd
                }
            };
            cmd.arg("COUNT")
                .arg(limit)
                .query::<Vec<(String, Vec<String>)>>(conn)
        })?;
        let mut messages: Vec<Logged> = entries.into_iter().filter_map(logged).collect();
        if after.is_none() {
            messages.reverse();
        }
        let prefix = self.options.prefix.clone();
        let tombstones = self.with_conn(|conn, _| tombstones(conn, &prefix, room))?;
        Ok(with_tombstones(
            messages,
            tombstones,
            after,
            before,
            limit,
            after.is_none(),
        ))
    }

    /// The heartbeat and the reaper, when due.
    fn timers(&mut self) {
        let now = Instant::now();
        if now >= self.next_beat {
            self.next_beat = now + self.options.heartbeat;
            if self.out_of_sync {
                if self.ensure_connected() && self.out_of_sync {
                    self.sync();
                }
            } else {
                let (nodes, node, name) =
                    (self.nodes_key(), self.node_key(), self.options.node.clone());
                let added = self.with_conn(|conn, s| {
                    s.beat.key(&nodes).key(&node).arg(&name).invoke::<i64>(conn)
                });
                if added == Ok(1) {
                    // Taken for dead (or Redis lost its data): tell Redis what this node holds.
                    log::warn!("cluster: this node was missing from Redis; re-registering");
                    self.out_of_sync = true;
                    self.sync();
                }
            }
        }
        if now >= self.next_reap {
            self.next_reap = now + self.options.heartbeat * 2;
            let (nodes, prefix, name) = (
                self.nodes_key(),
                self.options.prefix.clone(),
                self.options.node.clone(),
            );
            let dead_after = u64::try_from(self.options.dead_after.as_millis()).unwrap_or(u64::MAX);
            if let Ok(reaped) = self.with_conn(|conn, s| {
                s.reap
                    .key(&nodes)
                    .arg(&prefix)
                    .arg(dead_after)
                    .arg(&name)
                    .invoke::<i64>(conn)
            }) {
                if reaped > 0 {
                    log::warn!("cluster: {reaped} silent node(s) taken for dead; their users left");
                }
            }
        }
    }

    /// Makes Redis's view of this node equal the tally.
    fn sync(&mut self) {
        let (node, nodes, prefix, name) = (
            self.node_key(),
            self.nodes_key(),
            self.options.prefix.clone(),
            self.options.node.clone(),
        );
        let tally: Vec<(String, u64)> = self
            .tally
            .iter()
            .map(|((room, user), n)| (format!("{room}\n{user}"), *n))
            .collect();
        let Some(conn) = self.conn.as_mut() else {
            return;
        };
        let mut invocation = self.scripts.sync.key(&node);
        invocation
            .key(&nodes)
            .arg(&prefix)
            .arg(&name)
            .arg(tally.len());
        for (field, n) in &tally {
            invocation.arg(field).arg(*n);
        }
        match invocation.invoke::<i64>(conn) {
            Ok(_) => self.out_of_sync = false,
            Err(e) => {
                if broken(&e) {
                    self.down(&e.to_string());
                } else {
                    log::error!("cluster: syncing this node's presence: {e}");
                }
            }
        }
    }

    /// Shutdown: this node's users leave their rooms now, and the node is forgotten.
    fn depart(&mut self) {
        self.tally.clear();
        if self.conn.is_none() {
            return;
        }
        self.sync();
        let (nodes, name) = (self.nodes_key(), self.options.node.clone());
        if let Some(conn) = self.conn.as_mut() {
            let _ = redis::cmd("ZREM").arg(&nodes).arg(&name).query::<i64>(conn);
        }
    }
}

/// The messages an admin deleted in `room`: id → (sender, time).
pub(crate) fn tombstones(
    conn: &mut Connection,
    prefix: &str,
    room: &str,
) -> Result<Vec<(u64, String, i64)>, RedisError> {
    let entries: Vec<(u64, String)> = redis::cmd("HGETALL")
        .arg(format!("{prefix}deleted:{room}"))
        .query(conn)?;
    Ok(entries
        .into_iter()
        .map(|(id, value)| {
            let (user, ts) = value.split_once('\n').unwrap_or((value.as_str(), "0"));
            (id, user.to_owned(), ts.parse().unwrap_or(0))
        })
        .collect())
}

/// `messages` (oldest first, at most `limit`, read with ids above `after` or below `before`)
/// with the deleted messages of the same window put back in their places, as deleted: at most
/// `limit` in all, the newest when `newest`, else the oldest.
pub(crate) fn with_tombstones(
    mut messages: Vec<Logged>,
    tombstones: Vec<(u64, String, i64)>,
    after: Option<u64>,
    before: Option<u64>,
    limit: usize,
    newest: bool,
) -> Vec<Logged> {
    let full = messages.len() >= limit;
    let (first, last) = (
        messages.first().map(|m| m.id),
        messages.last().map(|m| m.id),
    );
    for (id, user, timestamp_ms) in tombstones {
        let in_window = after.is_none_or(|a| id > a)
            && before.is_none_or(|b| id < b)
            // A full read stops somewhere: a tombstone beyond that end belongs to the next one.
            && !(full && newest && first.is_some_and(|f| id < f))
            && !(full && !newest && last.is_some_and(|l| id > l));
        if in_window && messages.iter().all(|m| m.id != id) {
            messages.push(Logged {
                id,
                user,
                text: String::new(),
                client_msg_id: None,
                timestamp_ms,
                deleted: true,
            });
        }
    }
    messages.sort_by_key(|m| m.id);
    if messages.len() > limit {
        let extra = messages.len() - limit;
        if newest {
            messages.drain(..extra);
        } else {
            messages.truncate(limit);
        }
    }
    messages
}

/// A log entry (`ID-0`, fields) as a message; a damaged one is skipped.
pub(crate) fn logged((id, fields): (String, Vec<String>)) -> Option<Logged> {
    let id = id.split_once('-')?.0.parse().ok()?;
    let mut message = Logged {
        id,
        user: String::new(),
        text: String::new(),
        client_msg_id: None,
        timestamp_ms: 0,
        deleted: false,
    };
    let mut pairs = fields.into_iter();
    while let (Some(name), Some(value)) = (pairs.next(), pairs.next()) {
        match name.as_str() {
            "u" => message.user = value,
            "t" => message.text = value,
            "ts" => message.timestamp_ms = value.parse().unwrap_or(0),
            "c" => message.client_msg_id = Some(value),
            _ => {}
        }
    }
    Some(message)
}
