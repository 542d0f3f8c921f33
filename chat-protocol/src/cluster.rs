//! Cluster mode: this server is one node of several that behave as one chat.
//!
//! The cluster (the driver's broker, Redis through `chat-cluster`) gives every room message
//! its id, keeps the rooms' logs and tells every node, in one order, what happened anywhere.
//! The core stays sans-IO: it asks with outputs and hears with inputs (the crate docs,
//! "Cluster mode", have the driver's side of it).
//!
//! - **Messages.** A local chat message passes the usual checks, then goes out as an
//!   [`Output::ClusterPublish`]; it is not delivered here yet. Every node, this one included,
//!   delivers it when it hears it back ([`Input::ClusterMessage`]), so all show one order with
//!   the same ids. The sender's `ack` (or its `cluster_unavailable` error) comes with the
//!   cluster's answer ([`Input::ClusterPublished`]).
//! - **Ids stay consecutive.** A room delivers id `last + 1` only. An id already delivered is
//!   a repeat and ignored; one further on means this node missed some: it is buffered (at most
//!   [`MAX_CATCH_UP`] per room) and the room's log is asked for the missing stretch
//!   ([`Output::ClusterFetchAfter`]). The answer's messages go out first, then the buffered
//!   ones, each once, in order. What cannot be caught up (the read failed, the log no longer
//!   has it, the buffer overflowed) is a `gap` frame to the room's v2 members here, and the
//!   history starts again after it.
//! - **Presence** is the cluster's: each local connection is reported
//!   ([`Output::ClusterJoin`], [`Output::ClusterLeave`]), and v2 `connection` /
//!   `disconnection` notices come from the cluster's edges ([`Input::ClusterPresence`]: a
//!   user's first connection anywhere, its last). The room's cluster-wide members are kept
//!   for `welcome` and for direct messages. v1 clients hear every connection, here and (from
//!   [`Input::ClusterConnection`]) on other nodes.
//! - **Typing and direct messages** cross nodes as [`Output::ClusterTyping`] /
//!   [`Output::ClusterDirect`] and their inputs.
//!
//! [`Output::ClusterPublish`]: crate::Output::ClusterPublish
//! [`Output::ClusterFetchAfter`]: crate::Output::ClusterFetchAfter
//! [`Output::ClusterJoin`]: crate::Output::ClusterJoin
//! [`Output::ClusterLeave`]: crate::Output::ClusterLeave
//! [`Output::ClusterTyping`]: crate::Output::ClusterTyping
//! [`Output::ClusterDirect`]: crate::Output::ClusterDirect
//! [`Input::ClusterMessage`]: crate::Input::ClusterMessage
//! [`Input::ClusterPublished`]: crate::Input::ClusterPublished
//! [`Input::ClusterPresence`]: crate::Input::ClusterPresence
//! [`Input::ClusterConnection`]: crate::Input::ClusterConnection

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::frame::{Frame, Stamp};
use crate::history::Stored;
use crate::server::{announce_deleted, deliver, error_frame};
use crate::store::{Durability, RestoredMessage, StoreTicket, Waiter};
use crate::{
    ChatServer, ClientId, ErrorCode, Event, EventKind, Now, Output, Payload, Protocol, RoomName,
};

/// The most messages a room buffers while it waits for a catch-up, and the most one
/// [`Output::ClusterFetchAfter`](crate::Output::ClusterFetchAfter) asks for. One more
/// buffered and the room gives up waiting: it delivers what it holds, after a `gap`.
pub const MAX_CATCH_UP: usize = 1_000;

/// The cluster's answer to a publish ([`Input::ClusterPublished`](crate::Input::ClusterPublished)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClusterAck {
    /// The epoch the id belongs to.
    pub epoch: u64,
    /// The message's id in its room.
    pub id: u64,
    /// It was a retry (the same user and `client_msg_id`) of a message published before: the
    /// id is the original's and nothing was published again.
    pub duplicate: bool,
}

/// What the text of a `cluster_unavailable` error says.
const NOT_SENT: &str = "not sent: the cluster is unreachable; send it again (with the same \
                        client_msg_id it is sent once)";

/// A local chat message, checked and ready for the cluster.
pub(crate) struct Publish {
    pub(crate) client: ClientId,
    pub(crate) serial: u64,
    pub(crate) user: Arc<str>,
    pub(crate) room: RoomName,
    pub(crate) text: Payload,
    pub(crate) client_msg_id: Option<String>,
}

/// A publish the cluster has not answered yet.
#[derive(Debug)]
struct PendingPublish {
    room: RoomName,
    user: Arc<str>,
    client_msg_id: Option<Box<str>>,
    /// The connection that sent it.
    origin: Waiter,
    /// It and the connections that retried it meanwhile (same user, same `client_msg_id`).
    waiters: BTreeSet<Waiter>,
}

/// A room waiting for the messages it missed.
#[derive(Debug)]
struct CatchUp {
    ticket: StoreTicket,
    /// What came meanwhile (at most [`MAX_CATCH_UP`]), by id.
    buffered: BTreeMap<u64, RestoredMessage>,
}

/// The cluster's part of the server's state.
///
/// Bounded by what the driver has not answered (one entry per unanswered publish, with at
/// most one waiter per connection) and by what the cluster reports: one catch-up per room at a
/// time, of at most [`MAX_CATCH_UP`] messages, and the members of the rooms the cluster says
/// someone is in (a room's entry goes with its last member).
#[derive(Debug, Default)]
pub(crate) struct Cluster {
    publishes: BTreeMap<StoreTicket, PendingPublish>,
    /// The pending publishes that carry a `client_msg_id`, by (room, user, key): a retry waits
    /// for the same answer instead of being published twice.
    by_key: BTreeMap<(RoomName, Arc<str>, Box<str>), StoreTicket>,
    catch_ups: BTreeMap<RoomName, CatchUp>,
    catch_up_rooms: BTreeMap<StoreTicket, RoomName>,
    /// Who is in each room anywhere in the cluster (as of the edges heard).
    members: BTreeMap<RoomName, BTreeSet<Arc<str>>>,
}

impl Cluster {
    /// The room's members on the cluster, if it reported any.
    pub(crate) fn members(&self, room: &RoomName) -> Option<&BTreeSet<Arc<str>>> {
        self.members.get(room)
    }

    /// Whether `user` is in `room` somewhere in the cluster.
    pub(crate) fn is_member(&self, room: &RoomName, user: &str) -> bool {
        self.members.get(room).is_some_and(|m| m.contains(user))
    }

    /// Whether `ticket` is a catch-up's ([`Output::ClusterFetchAfter`](crate::Output)).
    pub(crate) fn is_catch_up(&self, ticket: StoreTicket) -> bool {
        self.catch_up_rooms.contains_key(&ticket)
    }

    /// Publishes and catch-ups the cluster has not answered yet.
    pub(crate) fn awaiting(&self) -> usize {
        self.publishes.len() + self.catch_ups.len()
    }

    /// A new epoch: catch-ups are for ids of the old one.
    fn drop_catch_ups(&mut self) {
        self.catch_ups.clear();
        self.catch_up_rooms.clear();
    }
}

impl ChatServer {
    /// Cluster mode: who is in each room anywhere in the cluster, as the driver read it at
    /// start (before the first input; with [`restore`](Self::restore) for the histories).
    /// Replaces what was known of these rooms; a room with no users is dropped. `welcome`
    /// lists these users with the local ones, and direct messages reach them.
    pub fn restore_presence(&mut self, rooms: Vec<(RoomName, Vec<String>)>) {
        for (room, users) in rooms {
            let users: BTreeSet<Arc<str>> = users.into_iter().map(Arc::from).collect();
            if users.is_empty() {
                self.cluster.members.remove(&room);
            } else {
                self.cluster.members.insert(room, users);
            }
        }
    }

    /// Publishes and catch-ups the cluster has not answered yet (cluster mode): one per
    /// unanswered [`Output::ClusterPublish`] and per unanswered
    /// [`Output::ClusterFetchAfter`].
    pub fn awaiting_cluster(&self) -> usize {
        self.cluster.awaiting()
    }

    /// A local chat message (rate limit and sizes checked): acked at once if it is a retry
    /// of one in the room's history, attached to the pending publish it retries, or handed to
    /// the cluster.
    pub(crate) fn cluster_post(&mut self, now: Now, p: Publish) {
        let waiter = (p.client, p.serial);
        if let Some(key) = &p.client_msg_id {
            let held = self
                .rooms
                .get(&p.room)
                .and_then(|r| r.history.find(&p.user, key));
            if let Some(id) = held {
                let payload = Frame::Ack {
                    client_msg_id: key,
                    id,
                    timestamp: Stamp(now.wall),
                    stored: None,
                }
                .encode();
                self.outputs.push_back(Output::Send {
                    to: p.client,
                    payload,
                });
                return;
            }
            let index = (p.room.clone(), Arc::clone(&p.user), Box::from(key.as_str()));
            if let Some(ticket) = self.cluster.by_key.get(&index) {
                if let Some(pending) = self.cluster.publishes.get_mut(ticket) {
                    pending.waiters.insert(waiter);
                    return;
                }
            }
        }
        let ticket = self.pending.ticket();
        let key: Option<Box<str>> = p.client_msg_id.as_deref().map(Box::from);
        if let Some(key) = &key {
            self.cluster
                .by_key
                .insert((p.room.clone(), Arc::clone(&p.user), key.clone()), ticket);
        }
        self.cluster.publishes.insert(
            ticket,
            PendingPublish {
                room: p.room.clone(),
                user: Arc::clone(&p.user),
                client_msg_id: key,
                origin: waiter,
                waiters: [waiter].into(),
            },
        );
        self.outputs.push_back(Output::ClusterPublish {
            ticket,
            room: p.room,
            user: p.user,
            text: p.text,
            client_msg_id: p.client_msg_id,
            timestamp: now.wall,
        });
    }

    /// The cluster answered a publish: its waiters still open get their `ack` (v2, with a
    /// `client_msg_id`) or a `cluster_unavailable` error.
    pub(crate) fn cluster_published(
        &mut self,
        now: Now,
        ticket: StoreTicket,
        result: Result<ClusterAck, String>,
    ) {
        let Some(p) = self.cluster.publishes.remove(&ticket) else {
            return;
        };
        if let Some(key) = &p.client_msg_id {
            let index = (p.room.clone(), Arc::clone(&p.user), key.clone());
            if self.cluster.by_key.get(&index) == Some(&ticket) {
                self.cluster.by_key.remove(&index);
            }
        }
        if let Ok(ack) = &result {
            if !ack.duplicate {
                let (client, serial) = p.origin;
                self.senders.record(&p.room, ack.id, client, serial);
            }
        }
        let mut ack_payload = None;
        let mut error_payloads: [Option<Payload>; 2] = [None, None];
        for (client, serial) in p.waiters {
            let Some(c) = self
                .clients
                .get(&client)
                .filter(|c| c.serial == serial && !c.closing)
            else {
                continue;
            };
            let payload = match (&result, &p.client_msg_id) {
                (Ok(ack), Some(key)) if c.protocol == Protocol::V2 => ack_payload
                    .get_or_insert_with(|| {
                        Frame::Ack {
                            client_msg_id: key,
                            id: ack.id,
                            timestamp: Stamp(now.wall),
                            stored: None,
                        }
                        .encode()
                    })
                    .clone(),
                (Ok(_), _) => continue,
                (Err(_), _) => {
                    let slot = usize::from(c.protocol == Protocol::V2);
                    error_payloads[slot]
                        .get_or_insert_with(|| {
                            error_frame(
                                c.protocol,
                                &p.user,
                                NOT_SENT,
                                ErrorCode::ClusterUnavailable,
                                now.wall,
                            )
                        })
                        .clone()
                }
            };
            self.outputs.push_back(Output::Send {
                to: client,
                payload,
            });
        }
    }

    /// A room message from the cluster: delivered if it is the room's next, ignored if it was
    /// delivered already, buffered behind a catch-up if some are missing before it.
    pub(crate) fn cluster_message(
        &mut self,
        now: Now,
        name: RoomName,
        epoch: u64,
        message: RestoredMessage,
    ) {
        if epoch < self.settings.epoch || message.id == 0 {
            return;
        }
        if epoch > self.settings.epoch {
            self.cluster_epoch(epoch);
        }
        let Some(room) = self.rooms.open(&name) else {
            return;
        };
        if !room.synced {
            // A room this node knows nothing of yet: its first message starts its history.
            room.synced = true;
            room.history.restart(message.id - 1);
        }
        let last = room.history.last_id();
        if message.id <= last {
            return;
        }
        if let Some(catch_up) = self.cluster.catch_ups.get_mut(&name) {
            catch_up.buffered.entry(message.id).or_insert(message);
            if catch_up.buffered.len() > MAX_CATCH_UP {
                // Waiting longer would hold too much: what came is delivered, after a gap.
                let catch_up = self
                    .cluster
                    .catch_ups
                    .remove(&name)
                    .expect("found just above");
                self.cluster.catch_up_rooms.remove(&catch_up.ticket);
                self.cluster_deliver(now, &name, catch_up.buffered.into_values());
            }
            return;
        }
        if message.id == last + 1 {
            self.cluster_deliver(now, &name, [message]);
            return;
        }
        // Missed: ask the log for what lies between, and keep this one meanwhile.
        let ticket = self.pending.ticket();
        let missing = message.id - last - 1;
        let limit = usize::try_from(missing).map_or(MAX_CATCH_UP, |m| m.min(MAX_CATCH_UP));
        self.cluster.catch_up_rooms.insert(ticket, name.clone());
        self.cluster.catch_ups.insert(
            name.clone(),
            CatchUp {
                ticket,
                buffered: [(message.id, message)].into(),
            },
        );
        self.outputs.push_back(Output::ClusterFetchAfter {
            ticket,
            room: name,
            after: last,
            limit,
        });
    }

    /// The answer to a catch-up (`fetched`: `None` when the log could not be read): what it
    /// gave, then what was buffered, in id order, each once; a `gap` where something is
    /// still missing.
    pub(crate) fn caught_up(
        &mut self,
        now: Now,
        ticket: StoreTicket,
        fetched: Option<Vec<RestoredMessage>>,
    ) {
        let Some(name) = self.cluster.catch_up_rooms.remove(&ticket) else {
            return;
        };
        let Some(catch_up) = self
            .cluster
            .catch_ups
            .remove(&name)
            .filter(|c| c.ticket == ticket)
        else {
            debug_assert!(false, "a catch-up ticket names its room's catch-up");
            return;
        };
        let messages = fetched
            .unwrap_or_default()
            .into_iter()
            .chain(catch_up.buffered.into_values());
        self.cluster_deliver(now, &name, messages);
    }

    /// Delivers `messages` in `name` in the order given: an id already delivered is skipped,
    /// the next one is delivered, and one further on is delivered after a `gap` frame to the
    /// room's v2 members (the history starts again after it).
    fn cluster_deliver(
        &mut self,
        now: Now,
        name: &RoomName,
        messages: impl IntoIterator<Item = RestoredMessage>,
    ) {
        let Some(room) = self.rooms.get_mut(name) else {
            // Forgotten meanwhile: nobody here is in it.
            return;
        };
        let epoch = self.settings.epoch;
        let mut delivered = false;
        for m in messages {
            let last = room.history.last_id();
            if m.id <= last {
                continue;
            }
            if m.id > last + 1 {
                if room.has(Protocol::V2) {
                    let why = format!(
                        "messages after {last} did not reach this server (the cluster was \
                         unreachable); the next is {}; scroll back with history_before to read them",
                        m.id
                    );
                    let gap = Frame::Gap {
                        room: name.as_str(),
                        epoch,
                        since: last,
                        message: &why,
                        timestamp: Stamp(now.wall),
                    }
                    .encode();
                    room.broadcast(&mut self.outputs, None, Some(&gap));
                }
                room.history.restart(m.id - 1);
            }
            let message = Stored {
                id: m.id,
                user: m.user.into(),
                text: Payload::from(m.text),
                client_msg_id: m.client_msg_id.map(String::into_boxed_str),
                timestamp: m.timestamp,
                durability: Durability::Volatile,
                deleted: false,
            };
            deliver(&mut self.outputs, room, name, epoch, message);
            delivered = true;
        }
        // Even without a delivery a restart may have changed what the history holds.
        self.rooms.history_changed(name, delivered);
    }

    /// A user's first connection to `room` anywhere (`joined`) or its last: the room's v2
    /// members here hear it, once per change of the cluster-wide set.
    pub(crate) fn cluster_presence(
        &mut self,
        now: Now,
        name: &RoomName,
        user: String,
        joined: bool,
    ) {
        let changed = if joined {
            self.cluster
                .members
                .entry(name.clone())
                .or_default()
                .insert(Arc::from(user.as_str()))
        } else {
            match self.cluster.members.get_mut(name) {
                Some(set) => {
                    let removed = set.remove(user.as_str());
                    if set.is_empty() {
                        self.cluster.members.remove(name);
                    }
                    removed
                }
                None => false,
            }
        };
        if !changed {
            return;
        }
        let Some(room) = self.rooms.get(name).filter(|r| r.has(Protocol::V2)) else {
            return;
        };
        let (verb, timestamp) = (if joined { "joined" } else { "left" }, Stamp(now.wall));
        let message = format!("{user} {verb} the chat");
        let frame = if joined {
            Frame::Connection {
                client_id: &user,
                message: &message,
                room: name.as_str(),
                timestamp,
            }
        } else {
            Frame::Disconnection {
                client_id: &user,
                message: &message,
                room: name.as_str(),
                timestamp,
            }
        };
        room.broadcast(&mut self.outputs, None, Some(&frame.encode()));
    }

    /// A connection opened or closed on another node: the room's v1 members here hear it, as
    /// the tutorial's per-connection notices.
    pub(crate) fn cluster_connection(
        &mut self,
        now: Now,
        name: &RoomName,
        user: &str,
        joined: bool,
    ) {
        let Some(room) = self.rooms.get(name).filter(|r| r.has(Protocol::V1)) else {
            return;
        };
        let (kind, verb) = if joined {
            (EventKind::Connection, "joined")
        } else {
            (EventKind::Disconnection, "left")
        };
        let message = format!("{user} {verb} the chat");
        let v1 = Event::new(kind, user, &message, now.wall).encode();
        room.broadcast(&mut self.outputs, Some(&v1), None);
    }

    /// Someone types on another node: relayed to the room's v2 members here (not to the
    /// typist's own connections here, if it has any).
    pub(crate) fn cluster_typing(&mut self, now: Now, name: &RoomName, user: &str) {
        let Some(room) = self.rooms.get(name).filter(|r| r.has_typing_audience(user)) else {
            return;
        };
        let payload = Frame::Typing {
            client_id: user,
            room: name.as_str(),
            timestamp: Stamp(now.wall),
        }
        .encode();
        room.relay_typing(&mut self.outputs, user, &payload);
    }

    /// An admin's deletion, heard from the cluster (its own node's included): marked in
    /// memory if held, and the room's v2 members hear `deleted`.
    pub(crate) fn cluster_deleted(&mut self, now: Now, name: &RoomName, id: u64) {
        let Some(room) = self.rooms.get_mut(name) else {
            return;
        };
        let held = room.history.delete(id);
        announce_deleted(&mut self.outputs, room, name, id, now.wall);
        if held {
            self.rooms.history_changed(name, false);
        }
    }

    /// A direct message sent on another node: delivered to the recipient's v2 connections in
    /// the room here (the sender's node echoed it to the sender).
    pub(crate) fn cluster_direct(
        &mut self,
        name: &RoomName,
        from: &str,
        to: &str,
        text: &str,
        timestamp: DateTime<Utc>,
    ) {
        let Some(room) = self.rooms.get(name) else {
            return;
        };
        let recipients = room.v2_of(to);
        if recipients.is_empty() {
            return;
        }
        let payload = Frame::Direct {
            from,
            to,
            message: text,
            room: name.as_str(),
            timestamp: Stamp(timestamp),
        }
        .encode();
        self.outputs.push_back(Output::SendMany {
            to: recipients,
            payload,
        });
    }

    /// The cluster lost its state: ids start again at 1 under `epoch`. Histories in memory
    /// are of the old ids and go; so do catch-ups, and the senders remembered for `kick`.
    pub(crate) fn cluster_epoch(&mut self, epoch: u64) {
        if epoch == self.settings.epoch {
            return;
        }
        self.settings.epoch = epoch;
        self.rooms.restart_ids();
        self.cluster.drop_catch_ups();
        self.senders.clear();
    }
}
