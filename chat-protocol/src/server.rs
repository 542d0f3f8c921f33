//! [`ChatServer`]: the clients, the broadcast decisions, and the deadline loop.

use std::borrow::Cow;
use std::collections::{BTreeSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use crate::backend::{is_valid_user, PublishRefused, RoomInfo, SYSTEM_USER};
use crate::clients::Clients;
use crate::close::close_text;
use crate::cluster::Cluster;
use crate::command::{self, Command};
use crate::frame::{Frame, Messages, Stamp};
use crate::heartbeat::{Due, Heartbeat, Liveness};
use crate::history::{Held, History, Stored};
use crate::rate::{self, Rate, Verdict};
use crate::resume::{self, Fallback, HoldBack, Holds, MAX_RESUME_FETCH};
use crate::room::{MemberNames, Room};
use crate::rooms::Rooms;
use crate::store::{
    Durability, Pending, PendingAck, PendingFetch, Record, RestoredMessage, RestoredRoom,
    StoreFailed, StoreTicket, MAX_FETCHES_IN_FLIGHT,
};
use crate::timer::Timers;
use crate::{
    ClientId, CloseReason, Config, Error, ErrorCode, Event, EventKind, Input, Now, Output, Payload,
    Protocol, RateLimit, Resume, RoomName, VerifiedToken,
};

/// One connected client.
#[derive(Debug)]
pub(crate) struct Client {
    /// The user's name, shared with the room's presence entry.
    pub(crate) user: Arc<str>,
    pub(crate) protocol: Protocol,
    /// `None` only for a connection refused with [`CloseReason::TooManyRooms`]: it never
    /// joined a room (and is `closing` from the start).
    pub(crate) room: Option<RoomName>,
    /// Tells this connection's timer entries from those of an earlier connection that had the
    /// same [`ClientId`].
    pub(crate) serial: u64,
    pub(crate) rate: Rate,
    pub(crate) liveness: Liveness,
    /// An [`Output::Close`] was given: the client is only waiting for its Disconnect.
    pub(crate) closing: bool,
    /// Its `history_before` requests waiting for storage ([`Output::Fetch`] not answered): at
    /// most [`MAX_FETCHES_IN_FLIGHT`], so a `u32` (a `usize` would pad the record by 8).
    pub(crate) fetches: u32,
    /// The driver said it may moderate ([`Input::Grant`]).
    pub(crate) admin: bool,
}

/// What the server needs of its [`Config`], worked out once.
#[derive(Debug)]
pub(crate) struct Settings {
    /// The rate limit, if it limits anything ([`RateLimit::is_effective`]).
    pub(crate) rate_limit: Option<RateLimit>,
    /// The `message` of the error frame for a rejected message; the same for every rejection.
    pub(crate) rate_message: String,
    pub(crate) heartbeat: Heartbeat,
    pub(crate) epoch: u64,
    pub(crate) history: usize,
    pub(crate) typing_interval: Duration,
    pub(crate) durable: bool,
    pub(crate) token_auth: bool,
    /// Cluster mode ([`Config::cluster`]).
    pub(crate) cluster: bool,
}

impl Settings {
    /// Whether something beyond memory holds older messages (storage, or the cluster's log):
    /// resume and scroll-back then reach it through [`Output::Fetch`].
    fn beyond_memory(&self) -> bool {
        self.durable || self.cluster
    }
}

/// The chat server's state: every connected client, every room, their deadlines, and the
/// outputs not yet drained.
#[derive(Debug)]
pub struct ChatServer {
    pub(crate) settings: Settings,
    /// A dense table walked in id order, so that whatever is done client by client is done in
    /// the same order every run (see [`Clients`]).
    pub(crate) clients: Clients<Client>,
    pub(crate) rooms: Rooms,
    pub(crate) timers: Timers,
    pub(crate) next_serial: u64,
    pub(crate) outputs: VecDeque<Output>,
    /// The broadcast [`poll_output`](ChatServer::poll_output) is giving out one recipient at
    /// a time: who is left, and the payload.
    expanding: Option<(std::vec::IntoIter<ClientId>, Payload)>,
    /// Messages refused by the rate limit so far (for a driver's metrics).
    pub(crate) rate_limited: u64,
    /// The storage requests not answered yet (durable mode).
    pub(crate) pending: Pending,
    /// Which connection sent each recent room message (an admin's `kick` by message id).
    pub(crate) senders: crate::senders::RecentSenders,
    /// Joiners resuming from storage (durable mode): their frames wait until it answers.
    pub(crate) holds: Holds,
    /// Cluster mode: publishes waiting for the cluster, catch-ups, cluster-wide presence.
    pub(crate) cluster: Cluster,
}

impl ChatServer {
    /// A server with no clients and no rooms.
    pub fn new(config: Config) -> Self {
        let rate_limit = config.rate_limit.filter(RateLimit::is_effective);
        ChatServer {
            settings: Settings {
                rate_message: rate_limit
                    .as_ref()
                    .map(rate::rejection_message)
                    .unwrap_or_default(),
                rate_limit,
                heartbeat: Heartbeat::new(&config),
                epoch: config.epoch,
                history: config.history,
                typing_interval: config.typing_interval,
                // The cluster's log is the store.
                durable: config.durable && !config.cluster,
                token_auth: config.token_auth,
                cluster: config.cluster,
            },
            clients: Clients::default(),
            rooms: Rooms::new(
                config.max_rooms,
                config.history,
                config.room_history_bytes,
                config.history_budget,
            ),
            timers: Timers::default(),
            next_serial: 0,
            senders: crate::senders::RecentSenders::default(),
            outputs: VecDeque::new(),
            expanding: None,
            rate_limited: 0,
            pending: Pending::default(),
            holds: Holds::default(),
            cluster: Cluster::default(),
        }
    }

    /// Gives the server what storage loaded at start: the rooms with their last id and their
    /// last messages, and the highest id of any room not among them (`retired_last_id`).
    ///
    /// Call it once, before any input. A restored room keeps its history (for `history`
    /// frames, resuming with `since` and `epoch`, `client_msg_id` retries and scroll-back), and
    /// its next message gets `last_id + 1`. A room made later starts after `retired_last_id`
    /// and after every forgotten room's last id, as always. Restored rooms are empty, so they
    /// are forgettable as any empty room, in the order given: the first is forgotten first
    /// (pass them least recently used first).
    ///
    /// Never fails and never panics on what storage gave: of a room's messages only the run at
    /// the end whose ids are consecutive and end at `last_id` is kept (at most
    /// [`Config::history`]); rooms beyond [`Config::max_rooms`] (the caller should have
    /// dropped them, keeping the most recent) and a second room of the same name are dropped,
    /// their ids counted as used.
    pub fn restore(&mut self, rooms: Vec<RestoredRoom>, retired_last_id: u64) {
        let durability = if self.settings.durable {
            Durability::Stored
        } else {
            Durability::Volatile
        };
        self.rooms.restore(rooms, retired_last_id, durability);
    }

    /// Feeds one input. Drain [`poll_output`](Self::poll_output) afterwards, then ask
    /// [`poll_timeout`](Self::poll_timeout) again.
    ///
    /// Returns `Err` only when the driver broke the contract; the state is then unchanged.
    pub fn handle_input(&mut self, now: Now, input: Input) -> Result<(), Error> {
        match input {
            Input::Connect {
                client,
                user,
                room,
                protocol,
                resume,
            } => self.connect(now, client, user, room, protocol, resume),
            Input::Text { client, text } => self.text(now, client, &text),
            Input::Activity { client } => self.activity(now, client),
            Input::Disconnect { client } => self.disconnect(now, client),
            Input::Timeout => {
                self.timeout(now);
                Ok(())
            }
            Input::Stored { tickets, result } => {
                self.stored(now, &tickets, &result);
                Ok(())
            }
            Input::Fetched { ticket, result } => {
                self.fetched(now, ticket, result);
                Ok(())
            }
            Input::Expires { client, at } => self.expires(client, at),
            Input::Grant { client, admin } => {
                self.clients
                    .get_mut(&client)
                    .ok_or(Error::UnknownClient(client))?
                    .admin = admin;
                Ok(())
            }
            Input::TokenVerified { ticket, result } => {
                self.token_verified(now, ticket, result);
                Ok(())
            }
            Input::Publish { room, user, text } => {
                self.publish(now, room, user, text);
                Ok(())
            }
            Input::Kick { user, reason } => {
                self.backend_dismiss(now, user, CloseReason::Kicked, 0, reason);
                Ok(())
            }
            Input::Ban {
                user,
                minutes,
                reason,
            } => {
                self.backend_dismiss(now, user, CloseReason::Banned, minutes, reason);
                Ok(())
            }
            Input::HistoryBudget { bytes } => {
                self.rooms.set_budget(bytes);
                Ok(())
            }
            Input::ClusterPublished { ticket, result } => {
                self.cluster_published(now, ticket, result);
                Ok(())
            }
            Input::ClusterMessage {
                room,
                epoch,
                message,
            } => {
                self.cluster_message(now, room, epoch, message);
                Ok(())
            }
            Input::ClusterPresence { room, user, joined } => {
                self.cluster_presence(now, &room, user, joined);
                Ok(())
            }
            Input::ClusterConnection { room, user, joined } => {
                self.cluster_connection(now, &room, &user, joined);
                Ok(())
            }
            Input::ClusterTyping { room, user } => {
                self.cluster_typing(now, &room, &user);
                Ok(())
            }
            Input::ClusterDirect {
                room,
                from,
                to,
                text,
                timestamp,
            } => {
                self.cluster_direct(&room, &from, &to, &text, timestamp);
                Ok(())
            }
            Input::ClusterEpoch { epoch } => {
                self.cluster_epoch(epoch);
                Ok(())
            }
            Input::ClusterDeleted { room, id } => {
                self.cluster_deleted(now, &room, id);
                Ok(())
            }
        }
    }

    /// The client's token stops being valid at `at`.
    fn expires(&mut self, client: ClientId, at: Instant) -> Result<(), Error> {
        let c = self
            .clients
            .get_mut(&client)
            .ok_or(Error::UnknownClient(client))?;
        let before = c.liveness.deadline(&self.settings.heartbeat);
        c.liveness.expires(at);
        // A later deadline is found by the entry already queued (it fires early and is pushed
        // back); only an earlier one needs an entry of its own.
        if before.is_none_or(|b| at < b) {
            self.timers.push(at, client, c.serial);
        }
        Ok(())
    }

    /// The driver checked a `refresh` token: valid for this connection's user, its expiry
    /// moves and the client hears `token_refreshed`; otherwise a `bad_token` error (the old
    /// token still holds until it expires).
    fn token_verified(
        &mut self,
        now: Now,
        ticket: StoreTicket,
        result: Result<VerifiedToken, String>,
    ) {
        let Some((client, serial)) = self.pending.verifications.remove(&ticket) else {
            return;
        };
        let Some(c) = self
            .clients
            .get(&client)
            .filter(|c| c.serial == serial && !c.closing)
        else {
            return;
        };
        let user = Arc::clone(&c.user);
        let refused = match result {
            Ok(token) if token.user == *user => {
                self.expires(client, token.expires)
                    .expect("the client was found just above");
                let payload = Frame::TokenRefreshed {
                    timestamp: Stamp(now.wall),
                }
                .encode();
                self.outputs.push_back(Output::Send {
                    to: client,
                    payload,
                });
                return;
            }
            Ok(_) => "the token is for another user".to_owned(),
            Err(reason) => command::bounded(reason),
        };
        let payload = error_frame(Protocol::V2, &user, &refused, ErrorCode::BadToken, now.wall);
        self.outputs.push_back(Output::Send {
            to: client,
            payload,
        });
    }

    /// Gives back the output queue's spare room. A broadcast queues one [`Output`] per
    /// recipient, so a burst (a join storm, a broadcast to thousands) grows the queue to one
    /// slot per connection, and a queue keeps what it grew to: 144 bytes a connection, long
    /// after it drained. A driver calls this when it has been idle for a while; the queue is
    /// empty then (the driver drains it after every input), and it grows again as it needs.
    /// Harmless at any time: under load it only costs the reallocations of that regrowth.
    pub fn release_spare_memory(&mut self) {
        if self.outputs.is_empty() {
            self.outputs = VecDeque::new();
        } else {
            self.outputs.shrink_to_fit();
        }
    }

    /// The next thing the driver must do, or `None` when there is nothing left. Call it until it
    /// returns `None` after every [`handle_input`](Self::handle_input).
    ///
    /// A frame for a joiner that waits for storage (a resume beyond memory, see "Durability")
    /// is held back here, in order, and given out after its `history`.
    pub fn poll_output(&mut self) -> Option<Output> {
        loop {
            let output = self.next_single()?;
            if self.holds.is_empty() {
                return Some(output);
            }
            let Output::Send { to, payload } = output else {
                return Some(output);
            };
            match self.holds.hold_back(to, payload) {
                HoldBack::Pass(payload) => return Some(Output::Send { to, payload }),
                HoldBack::Kept => {}
                HoldBack::Overflow(client, hold) => {
                    // The rest of the broadcast being given out keeps its place, and the
                    // joiner's greeting and what was held back come before it.
                    if let Some((rest, payload)) = self.expanding.take() {
                        let rest: Vec<ClientId> = rest.collect();
                        if !rest.is_empty() {
                            self.outputs
                                .push_front(Output::SendMany { to: rest, payload });
                        }
                    }
                    let released = hold.release(client, Err(Fallback::Overflow));
                    for output in released.into_iter().rev() {
                        self.outputs.push_front(output);
                    }
                }
            }
        }
    }

    /// [`poll_output`](Self::poll_output), except that a broadcast comes as one
    /// [`Output::SendMany`] (in the order its [`Output::Send`]s would have come). A driver
    /// that handles each payload once for all its recipients calls this instead; the two may
    /// be mixed. While a joiner's frames are held back (a resume waiting for storage), every
    /// frame comes as a `Send`, since some of a broadcast's may be held.
    pub fn poll_output_grouped(&mut self) -> Option<Output> {
        if self.holds.is_empty() && self.expanding.is_none() {
            return self.outputs.pop_front();
        }
        self.poll_output()
    }

    /// The next output with every broadcast given out one recipient at a time.
    fn next_single(&mut self) -> Option<Output> {
        loop {
            if let Some((to, payload)) = &mut self.expanding {
                match to.next() {
                    Some(client) => {
                        return Some(Output::Send {
                            to: client,
                            payload: payload.clone(),
                        })
                    }
                    None => self.expanding = None,
                }
            }
            match self.outputs.pop_front()? {
                Output::SendMany { to, payload } => {
                    self.expanding = Some((to.into_iter(), payload));
                }
                output => return Some(output),
            }
        }
    }

    /// When the driver must call `handle_input(now, Input::Timeout)` next, or `None` when no
    /// deadline is pending (no clients, or neither heartbeat nor idle timeout configured). Ask
    /// again after every input: it changes as clients come and go and as timeouts are handled.
    ///
    /// Never later than the earliest real deadline, but possibly earlier (a Timeout then does
    /// nothing and this moves on); see the crate docs. It may be in the past if the driver is
    /// late: deliver the Timeout right away.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.clients.is_empty() {
            return None;
        }
        match (self.timers.next(), self.holds.next_deadline()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// How many clients are connected (including those given an [`Output::Close`] whose
    /// Disconnect has not come yet).
    pub fn client_count(&self) -> usize {
        self.clients.len()
    }

    /// The user name a connected client joined with.
    pub fn user(&self, client: ClientId) -> Option<&str> {
        self.clients.get(&client).map(|c| &*c.user)
    }

    /// The protocol a connected client speaks.
    pub fn protocol(&self, client: ClientId) -> Option<Protocol> {
        self.clients.get(&client).map(|c| c.protocol)
    }

    /// The room a connected client is in (`None` also for a client refused with
    /// [`CloseReason::TooManyRooms`], which is in none).
    pub fn room(&self, client: ClientId) -> Option<&RoomName> {
        self.clients.get(&client)?.room.as_ref()
    }

    /// Chat messages (and direct messages) refused by the rate limit since the start, the one
    /// that closed a flooding client included.
    pub fn messages_rate_limited(&self) -> u64 {
        self.rate_limited
    }

    /// What the rooms' histories hold in memory, in bytes: each held message's text, sender's
    /// name and `client_msg_id`, plus a fixed overhead per message. At most
    /// [`Config::history_budget`] (or the last [`Input::HistoryBudget`]).
    pub fn history_bytes(&self) -> usize {
        self.rooms.history_bytes()
    }

    /// What joiners resuming from storage hold back meanwhile (frames addressed to them), in
    /// bytes: at most [`MAX_HELD_BACK_TOTAL_BYTES`](crate::MAX_HELD_BACK_TOTAL_BYTES),
    /// for at most [`RESUME_WAIT`](crate::RESUME_WAIT) each. A driver's memory budget
    /// counts it with the rest.
    pub fn held_back_bytes(&self) -> usize {
        self.holds.bytes()
    }

    /// Messages forgotten from memory so far to keep the histories within their budget (not
    /// those that left a room's history for newer ones, by [`Config::history`] or
    /// [`Config::room_history_bytes`]).
    pub fn history_trimmed(&self) -> u64 {
        self.rooms.history_trimmed()
    }

    /// How many rooms exist, those nobody is in (kept for their history) included. At most
    /// [`Config::max_rooms`].
    pub fn room_count(&self) -> usize {
        self.rooms.len()
    }

    /// How many storage requests the server is waiting for and keeps state for: unanswered
    /// [`Output::Store`]s of messages with a `client_msg_id` (their acks wait) and unanswered
    /// [`Output::Fetch`]es. Stores without a `client_msg_id` leave nothing behind.
    pub fn awaiting_storage(&self) -> usize {
        self.pending.acks.len() + self.pending.fetches.len() + self.holds.len()
    }

    /// The users present in `room`, sorted, each once however many connections it has (those
    /// given an [`Output::Close`] included, until their Disconnect). Empty for a room that
    /// does not exist.
    pub fn members(&self, room: &RoomName) -> impl Iterator<Item = &str> + '_ {
        self.rooms.get(room).into_iter().flat_map(Room::members)
    }

    /// Every room in memory (those nobody is in, kept for their history, included), sorted by
    /// name: its members and its last message id. For the server API; no outputs.
    pub fn rooms(&self) -> Vec<RoomInfo> {
        self.rooms
            .iter()
            .map(|(name, room)| RoomInfo {
                name: name.clone(),
                members: room.members().map(str::to_owned).collect(),
                last_id: room.history.last_id(),
            })
            .collect()
    }

    fn connect(
        &mut self,
        now: Now,
        client: ClientId,
        user: String,
        name: RoomName,
        protocol: Protocol,
        resume: Option<Resume>,
    ) -> Result<(), Error> {
        if self.clients.contains_key(&client) {
            return Err(Error::AlreadyConnected(client));
        }
        let serial = self.next_serial;
        self.next_serial += 1;
        let rate = Rate::full(now.instant, self.settings.rate_limit.as_ref());
        let liveness = Liveness::new(now.instant);

        let Some(room) = self.rooms.enter(&name) else {
            // In no room, so nothing to announce now or at its Disconnect; no deadline either,
            // the driver is closing it.
            self.clients.insert(
                client,
                Client {
                    user: user.into(),
                    protocol,
                    room: None,
                    serial,
                    rate,
                    liveness,
                    closing: true,
                    fetches: 0,
                    admin: false,
                },
            );
            self.outputs.push_back(Output::Close {
                client,
                reason: CloseReason::TooManyRooms,
            });
            return Ok(());
        };

        if let Some(at) = liveness.deadline(&self.settings.heartbeat) {
            self.timers.push(at, client, serial);
        }
        let (user, first) = room.join(client, user, protocol);
        let out = &mut self.outputs;
        let s = &self.settings;
        if protocol == Protocol::V2 {
            match resumption(s, &room.history, resume) {
                Resumption::Storage { since, before } => {
                    // Nothing for the joiner until storage answers: what the room sends it
                    // meanwhile (its own notice below included) is held back.
                    let ticket = self.pending.ticket();
                    self.holds.start(
                        client,
                        resume::Request {
                            serial,
                            ticket,
                            now: now.instant,
                            wall: now.wall,
                            room: name.clone(),
                            epoch: s.epoch,
                            since,
                            fetch_before: before,
                            welcome: welcome(
                                s,
                                room,
                                self.cluster.members(&name),
                                &name,
                                &user,
                                now.wall,
                            ),
                            held: room.history.all().cloned().collect(),
                        },
                    );
                    out.push_back(Output::Fetch {
                        client,
                        ticket,
                        room: name.clone(),
                        before,
                        // At most MAX_RESUME_FETCH (`resumption` checked).
                        limit: usize::try_from(before - since - 1).unwrap_or(MAX_RESUME_FETCH),
                    });
                }
                resumption => {
                    let joiner = Joiner {
                        client,
                        user: &user,
                        cluster_members: self.cluster.members(&name),
                    };
                    greet(out, s, room, &name, joiner, resumption, now.wall);
                }
            }
        }
        // The joiner is in the room already: it hears its own notice, after its greeting.
        let message = format!("{user} joined the chat");
        let v1 = room
            .has(Protocol::V1)
            .then(|| Event::new(EventKind::Connection, &user, &message, now.wall).encode());
        // In cluster mode a v2 notice is the cluster's (the user's first connection anywhere).
        let v2 = (first && !s.cluster && room.has(Protocol::V2)).then(|| {
            Frame::Connection {
                client_id: &user,
                message: &message,
                room: name.as_str(),
                timestamp: Stamp(now.wall),
            }
            .encode()
        });
        room.broadcast(out, v1.as_ref(), v2.as_ref());
        if s.cluster {
            out.push_back(Output::ClusterJoin {
                room: name.clone(),
                user: Arc::clone(&user),
            });
        }

        // The room table's copy of the name, shared by every member, rather than this one.
        let name = self.rooms.shared_name(&name).unwrap_or(name);
        self.clients.insert(
            client,
            Client {
                user,
                protocol,
                room: Some(name),
                serial,
                rate,
                liveness,
                closing: false,
                fetches: 0,
                admin: false,
            },
        );
        Ok(())
    }

    fn text(&mut self, now: Now, client: ClientId, text: &Payload) -> Result<(), Error> {
        let sender = self
            .clients
            .get_mut(&client)
            .ok_or(Error::UnknownClient(client))?;
        if sender.closing {
            // Already told to go: whatever it still sends is dropped silently.
            return Ok(());
        }
        sender.liveness.seen(now.instant);
        let out = &mut self.outputs;
        let s = &self.settings;
        let rate_limited = &mut self.rate_limited;

        let command = match sender.protocol {
            Protocol::V1 => Command::Message {
                text: Cow::Borrowed(text.as_str()),
                client_msg_id: None,
            },
            Protocol::V2 => match command::parse(text.as_str()) {
                Ok(command) => command,
                Err(explanation) => {
                    let payload = error_frame(
                        Protocol::V2,
                        &sender.user,
                        &explanation,
                        ErrorCode::BadCommand,
                        now.wall,
                    );
                    out.push_back(Output::Send {
                        to: client,
                        payload,
                    });
                    return Ok(());
                }
            },
        };

        if command.is_moderation() {
            let user = Arc::clone(&sender.user);
            let admin = sender.admin;
            self.moderate(now, client, user, admin, command);
            return Ok(());
        }

        let room_name = sender
            .room
            .as_ref()
            .expect("only a refused client is in no room, and it is closing");
        let room = self
            .rooms
            .get_mut(room_name)
            .expect("a room is kept while someone is in it");

        if let Command::Refresh { token } = command {
            let refused = if !s.token_auth {
                Some((
                    ErrorCode::BadCommand,
                    "this server does not use tokens: there is nothing to refresh",
                ))
            } else if self
                .pending
                .verifications
                .values()
                .any(|w| *w == (client, sender.serial))
            {
                Some((ErrorCode::BadToken, "a refresh is already being checked"))
            } else {
                None
            };
            match refused {
                Some((code, why)) => {
                    let payload = error_frame(Protocol::V2, &sender.user, why, code, now.wall);
                    out.push_back(Output::Send {
                        to: client,
                        payload,
                    });
                }
                None => {
                    let ticket = self.pending.ticket();
                    self.pending
                        .verifications
                        .insert(ticket, (client, sender.serial));
                    out.push_back(Output::VerifyToken {
                        client,
                        ticket,
                        token,
                    });
                }
            }
            return Ok(());
        }

        if let Command::HistoryBefore { before, limit } = command {
            let asker = Asker {
                id: client,
                serial: sender.serial,
                protocol: sender.protocol,
                user: &sender.user,
                fetches: &mut sender.fetches,
            };
            history_before(
                out,
                &mut self.pending,
                s,
                asker,
                room_name,
                room,
                before,
                limit,
                now.wall,
            );
            return Ok(());
        }

        // Chat messages cost a token; typing is throttled instead.
        if let (Command::Message { .. } | Command::Direct { .. }, Some(limit)) =
            (&command, &s.rate_limit)
        {
            match sender.rate.charge(now.instant, limit) {
                Verdict::Accept => {}
                Verdict::Reject => {
                    *rate_limited += 1;
                    let payload = error_frame(
                        sender.protocol,
                        &sender.user,
                        &s.rate_message,
                        ErrorCode::RateLimited,
                        now.wall,
                    );
                    out.push_back(Output::Send {
                        to: client,
                        payload,
                    });
                    return Ok(());
                }
                Verdict::Close => {
                    *rate_limited += 1;
                    sender.closing = true;
                    room.mute(client, &sender.user, sender.protocol);
                    out.push_back(Output::Close {
                        client,
                        reason: CloseReason::RateLimited,
                    });
                    return Ok(());
                }
            }
        }

        let from = Sender {
            id: client,
            serial: sender.serial,
            user: &sender.user,
            room: room_name,
            wall: now.wall,
            epoch: s.epoch,
            durable: s.durable,
        };
        let pending = &mut self.pending;
        match command {
            Command::Message {
                text,
                client_msg_id,
            } if s.cluster => {
                let publish = crate::cluster::Publish {
                    client,
                    serial: sender.serial,
                    user: Arc::clone(&sender.user),
                    room: room_name.clone(),
                    text: Payload::from(text.into_owned()),
                    client_msg_id,
                };
                self.cluster_post(now, publish);
            }
            Command::Message {
                text,
                client_msg_id,
            } => {
                if let Some(id) = from.post(out, pending, room, text, client_msg_id) {
                    self.senders.record(room_name, id, client, sender.serial);
                }
                self.rooms.history_changed(room_name, true);
            }
            Command::Typing => {
                if room.may_type(from.user, now.instant, s.typing_interval) {
                    from.typing(out, room);
                    if s.cluster {
                        out.push_back(Output::ClusterTyping {
                            room: room_name.clone(),
                            user: Arc::clone(from.user),
                        });
                    }
                }
            }
            Command::Direct { to, text } => {
                let remote = s.cluster && self.cluster.is_member(room_name, &to);
                from.direct(out, pending, room, to, text, remote);
            }
            Command::HistoryBefore { .. }
            | Command::Refresh { .. }
            | Command::Kick { .. }
            | Command::KickSender { .. }
            | Command::Ban { .. }
            | Command::Delete { .. } => {
                unreachable!("answered above")
            }
        }
        Ok(())
    }

    /// A `kick`, `ban` or `delete` from `client` (of `user`): carried out for an admin,
    /// refused with `forbidden` for anyone else.
    fn moderate(
        &mut self,
        now: Now,
        client: ClientId,
        user: Arc<str>,
        admin: bool,
        command: Command<'_>,
    ) {
        let refuse = |out: &mut VecDeque<Output>, message: &str, code| {
            let payload = error_frame(Protocol::V2, &user, message, code, now.wall);
            out.push_back(Output::Send {
                to: client,
                payload,
            });
        };
        if !admin {
            refuse(
                &mut self.outputs,
                "only an admin may kick, ban or delete messages",
                ErrorCode::Forbidden,
            );
            return;
        }
        match command {
            Command::Kick {
                user: target,
                reason,
            } => {
                if self.kick(&target, &reason) == 0 {
                    let message =
                        command::bounded(format!("no connection of user {target:?} to kick"));
                    refuse(&mut self.outputs, &message, ErrorCode::UnknownUser);
                }
            }
            Command::KickSender { id, reason } => {
                let Some(name) = self.clients.get(&client).and_then(|c| c.room.clone()) else {
                    return;
                };
                let text = with_reason(CloseReason::Kicked.text().to_owned(), &reason);
                let open = self.senders.find(&name, id).filter(|&(sender, serial)| {
                    self.clients
                        .get(&sender)
                        .is_some_and(|c| c.serial == serial && !c.closing)
                });
                match open {
                    Some((sender, _)) => self.dismiss_one(sender, CloseReason::Kicked, &text),
                    None => {
                        let message = format!(
                            "the connection that sent message {id} of this room is not open \
                             (or the message is too old to tell)"
                        );
                        refuse(&mut self.outputs, &message, ErrorCode::UnknownUser);
                    }
                }
            }
            Command::Ban {
                user: target,
                minutes,
                reason,
            } => {
                self.ban(now, target, minutes, reason);
            }
            Command::Delete { id } => {
                let Some(name) = self.clients.get(&client).and_then(|c| c.room.clone()) else {
                    return;
                };
                let Some(room) = self.rooms.get_mut(&name) else {
                    return;
                };
                if self.settings.cluster {
                    // The cluster's log holds what memory may not: any id it gave. Marked when
                    // the deletion comes back (Input::ClusterDeleted), on every node alike.
                    if id == 0 || id > room.history.last_id() {
                        let message = format!("there is no message {id} in this room to delete");
                        refuse(&mut self.outputs, &message, ErrorCode::UnknownMessage);
                    } else {
                        self.outputs
                            .push_back(Output::ClusterDelete { room: name, id });
                    }
                    return;
                }
                let h = &mut room.history;
                // Storage may hold what memory no longer does.
                let held = h.delete(id);
                let known = held || (self.settings.durable && id <= h.last_id());
                if !known {
                    let message = format!("there is no message {id} in this room to delete");
                    refuse(&mut self.outputs, &message, ErrorCode::UnknownMessage);
                    return;
                }
                announce_deleted(&mut self.outputs, room, &name, id, now.wall);
                if held {
                    self.rooms.history_changed(&name, false);
                }
                if self.settings.durable {
                    self.outputs
                        .push_back(Output::DeleteStored { room: name, id });
                }
            }
            _ => debug_assert!(false, "only moderation commands come here"),
        }
    }

    /// Closes every connection of `target` with [`CloseReason::Kicked`] and `reason` (at
    /// most [`command::MAX_REASON`] bytes). Returns how many.
    fn kick(&mut self, target: &str, reason: &str) -> usize {
        let text = with_reason(CloseReason::Kicked.text().to_owned(), reason);
        self.dismiss(target, CloseReason::Kicked, &text)
    }

    /// Bans `target` for `minutes` (1 to [`command::MAX_BAN_MINUTES`]): the driver gets an
    /// [`Output::Ban`], then every connection of `target` is closed with
    /// [`CloseReason::Banned`] and `reason` (at most [`command::MAX_REASON`] bytes). Returns
    /// how many.
    fn ban(&mut self, now: Now, target: String, minutes: u64, reason: String) -> usize {
        let until = now.wall + Duration::from_secs(minutes * 60);
        let text = with_reason(
            format!(
                "{} until {}",
                CloseReason::Banned.text(),
                until.format("%Y-%m-%dT%H:%MZ")
            ),
            &reason,
        );
        self.outputs.push_back(Output::Ban {
            user: target.clone(),
            until,
            reason,
        });
        self.dismiss(&target, CloseReason::Banned, &text)
    }

    /// The backend's [`Input::Kick`] or [`Input::Ban`]: carried out as an admin's command,
    /// then answered with [`Output::Dismissed`].
    fn backend_dismiss(
        &mut self,
        now: Now,
        user: String,
        reason: CloseReason,
        minutes: u32,
        text: String,
    ) {
        // The same bounds as an admin's command.
        let text = command::cut(text, command::MAX_REASON);
        let connections = if reason == CloseReason::Banned {
            let minutes = u64::from(minutes).clamp(1, command::MAX_BAN_MINUTES);
            self.ban(now, user.clone(), minutes, text)
        } else {
            self.kick(&user, &text)
        };
        self.outputs.push_back(Output::Dismissed {
            user,
            reason,
            connections,
        });
    }

    /// The backend's [`Input::Publish`]: a message into `name` as the system or as `user`,
    /// delivered as a member's would be, then answered with [`Output::Published`].
    fn publish(&mut self, now: Now, name: RoomName, user: Option<String>, text: String) {
        let result = self.publish_message(now, &name, user, text);
        self.outputs
            .push_back(Output::Published { room: name, result });
    }

    fn publish_message(
        &mut self,
        now: Now,
        name: &RoomName,
        user: Option<String>,
        text: String,
    ) -> Result<u64, PublishRefused> {
        if self.settings.cluster {
            return Err(PublishRefused::ClusterMode);
        }
        let user: Arc<str> = match user {
            None => SYSTEM_USER.into(),
            Some(user) if is_valid_user(&user) => user.into(),
            Some(_) => return Err(PublishRefused::BadUser),
        };
        let room = self.rooms.open(name).ok_or(PublishRefused::NoRoom)?;
        let s = &self.settings;
        let durability = if s.durable {
            Durability::Pending(self.pending.ticket())
        } else {
            Durability::Volatile
        };
        let message = Stored {
            id: room.history.next_id(),
            user,
            text: Payload::from(text),
            client_msg_id: None,
            timestamp: now.wall,
            durability,
            deleted: false,
        };
        let id = message.id;
        deliver(&mut self.outputs, room, name, s.epoch, message);
        self.rooms.history_changed(name, true);
        Ok(id)
    }

    /// Closes every connection of `user` that is not closing already, in [`ClientId`] order,
    /// with `reason` and `text`. Returns how many.
    fn dismiss(&mut self, user: &str, reason: CloseReason, text: &str) -> usize {
        let targets: Vec<ClientId> = self
            .clients
            .iter()
            .filter(|(_, c)| *c.user == *user && !c.closing)
            .map(|(id, _)| id)
            .collect();
        for &id in &targets {
            self.dismiss_one(id, reason, text);
        }
        targets.len()
    }

    /// Closes the one connection `id` with `reason` and `text`; its room hears it leave.
    fn dismiss_one(&mut self, id: ClientId, reason: CloseReason, text: &str) {
        let Some(c) = self.clients.get_mut(&id).filter(|c| !c.closing) else {
            return;
        };
        c.closing = true;
        if let Some(room) = c.room.as_ref().and_then(|r| self.rooms.get_mut(r)) {
            room.mute(id, &c.user, c.protocol);
        }
        self.outputs.push_back(Output::CloseWith {
            client: id,
            reason,
            text: text.to_owned(),
        });
    }

    fn activity(&mut self, now: Now, client: ClientId) -> Result<(), Error> {
        let c = self
            .clients
            .get_mut(&client)
            .ok_or(Error::UnknownClient(client))?;
        c.liveness.seen(now.instant);
        Ok(())
    }

    fn disconnect(&mut self, now: Now, client: ClientId) -> Result<(), Error> {
        let gone = self
            .clients
            .remove(&client)
            .ok_or(Error::UnknownClient(client))?;
        // A resume still waiting for storage: its answer will find nobody.
        self.holds.remove(client);
        // Its timer entry stays behind, recognised as stale by its serial when it fires.
        if self.clients.is_empty() {
            self.timers.clear();
        } else {
            let clients = &self.clients;
            self.timers.compact(clients.len(), |id, serial| {
                clients
                    .get(&id)
                    .is_some_and(|c| c.serial == serial && !c.closing)
            });
        }
        let Some(name) = gone.room else {
            // Refused at connect: it was never in a room, nobody heard of it.
            return Ok(());
        };
        let room = self
            .rooms
            .get_mut(&name)
            .expect("a room is kept while someone is in it");
        let last = room.leave(client, &gone.user, gone.protocol);
        let message = format!("{} left the chat", gone.user);
        let v1 = room
            .has(Protocol::V1)
            .then(|| Event::new(EventKind::Disconnection, &gone.user, &message, now.wall).encode());
        // In cluster mode a v2 notice is the cluster's (the user's last connection anywhere).
        let v2 = (last && !self.settings.cluster && room.has(Protocol::V2)).then(|| {
            Frame::Disconnection {
                client_id: &gone.user,
                message: &message,
                room: name.as_str(),
                timestamp: Stamp(now.wall),
            }
            .encode()
        });
        room.broadcast(&mut self.outputs, v1.as_ref(), v2.as_ref());
        if self.settings.cluster {
            self.outputs.push_back(Output::ClusterLeave {
                room: name.clone(),
                user: gone.user,
            });
        }
        self.rooms.left(&name);
        Ok(())
    }

    /// Storage reports a batch: each known ticket's message becomes stored (or failed), and
    /// the connections waiting for its ack get it. Unknown and repeated tickets are ignored.
    fn stored(&mut self, now: Now, tickets: &[StoreTicket], result: &Result<(), StoreFailed>) {
        let ok = result.is_ok();
        for ticket in tickets {
            let Some(PendingAck {
                room,
                id,
                client_msg_id,
                waiters,
            }) = self.pending.acks.remove(ticket)
            else {
                continue;
            };
            // Still held: a retry from now on is acknowledged at once.
            if let Some(m) = self
                .rooms
                .get_mut(&room)
                .and_then(|r| r.history.get_mut(id))
                .filter(|m| m.durability == Durability::Pending(*ticket))
            {
                m.durability = if ok {
                    Durability::Stored
                } else {
                    Durability::Failed
                };
            }
            let mut payload = None;
            for (client, serial) in waiters {
                if !self
                    .clients
                    .get(&client)
                    .is_some_and(|c| c.serial == serial && !c.closing)
                {
                    continue;
                }
                let payload = payload.get_or_insert_with(|| {
                    Frame::Ack {
                        client_msg_id: &client_msg_id,
                        id,
                        timestamp: Stamp(now.wall),
                        stored: Some(ok),
                    }
                    .encode()
                });
                self.outputs.push_back(Output::Send {
                    to: client,
                    payload: payload.clone(),
                });
            }
        }
    }

    /// A joiner's hold ends (storage answered, or did not in time): its greeting and what was
    /// held back go out, if it is still there and not being closed.
    fn resumed(
        &mut self,
        client: ClientId,
        hold: resume::Hold,
        answer: Result<Vec<RestoredMessage>, Fallback>,
    ) {
        let open = self
            .clients
            .get(&client)
            .is_some_and(|c| c.serial == hold.serial && !c.closing);
        if open {
            self.outputs.extend(hold.release(client, answer));
        }
    }

    /// Storage answers a `history_before`: the page goes to the asking connection, if it is
    /// still there.
    fn fetched(
        &mut self,
        now: Now,
        ticket: StoreTicket,
        result: Result<Vec<RestoredMessage>, StoreFailed>,
    ) {
        if let Some((client, hold)) = self.holds.answered(ticket) {
            self.resumed(client, hold, result.map_err(|_| Fallback::Failed));
            return;
        }
        if self.cluster.is_catch_up(ticket) {
            self.caught_up(now, ticket, result.ok());
            return;
        }
        let Some(mut fetch) = self.pending.fetches.remove(&ticket) else {
            return;
        };
        // The held part was copied when asked for: a `delete` since then must show.
        if let Some(room) = self.rooms.get(&fetch.room) {
            for m in &mut fetch.held {
                if room.history.get(m.id).is_some_and(|now| now.deleted) {
                    m.delete();
                }
            }
        }
        let (client, serial) = fetch.waiter;
        let Some(c) = self.clients.get_mut(&client).filter(|c| c.serial == serial) else {
            return;
        };
        c.fetches = c.fetches.saturating_sub(1);
        if c.closing {
            return;
        }
        let payload = match result {
            Err(_) => error_frame(
                c.protocol,
                &c.user,
                "older messages could not be read from storage; try again later",
                ErrorCode::StoreUnavailable,
                now.wall,
            ),
            Ok(messages) => {
                // Only what was asked for: ids below `fetch_before`, increasing, the newest
                // `fetch_limit` of them. Storage is trusted to do so, but never blindly.
                let mut kept: Vec<&RestoredMessage> = Vec::new();
                for m in &messages {
                    if m.id < fetch.fetch_before && kept.last().is_none_or(|last| last.id < m.id) {
                        kept.push(m);
                    }
                }
                let skip = kept.len().saturating_sub(fetch.fetch_limit);
                let room = fetch.room.as_str();
                let messages: Vec<Frame<'_>> = kept[skip..]
                    .iter()
                    .map(|m| Frame::restored(room, m))
                    .chain(fetch.held.iter().map(|m| Frame::message(room, m)))
                    .collect();
                let first = kept
                    .get(skip)
                    .map(|m| m.id)
                    .or_else(|| fetch.held.first().map(|m| m.id));
                page(
                    room,
                    fetch.before,
                    messages,
                    fetch.limit,
                    first.is_some_and(|id| id > 1),
                    now.wall,
                )
            }
        };
        self.outputs.push_back(Output::Send {
            to: client,
            payload,
        });
    }

    /// Acts on every deadline due at `now`. Each popped entry is either stale (dropped), early
    /// (pushed back at the client's real deadline) or due (acted on, then pushed back at the
    /// next deadline). Every push is later than `now`, so the loop ends and a second Timeout at
    /// the same `now` finds nothing to do.
    fn timeout(&mut self, now: Now) {
        // Resumes storage did not answer in time: the gap they would have had at connect.
        while let Some((client, hold)) = self.holds.pop_due(now.instant) {
            self.resumed(client, hold, Err(Fallback::Late));
        }
        let heartbeat = &self.settings.heartbeat;
        while let Some((id, serial)) = self.timers.pop_due(now.instant) {
            let Some(client) = self.clients.get_mut(&id) else {
                continue;
            };
            if client.serial != serial || client.closing {
                continue;
            }
            match client.liveness.due(now.instant, heartbeat) {
                Some(due @ (Due::Idle | Due::Expired)) => {
                    client.closing = true;
                    if let Some(room) = client.room.as_ref().and_then(|r| self.rooms.get_mut(r)) {
                        room.mute(id, &client.user, client.protocol);
                    }
                    self.outputs.push_back(Output::Close {
                        client: id,
                        reason: if due == Due::Expired {
                            CloseReason::TokenExpired
                        } else {
                            CloseReason::Idle
                        },
                    });
                    continue;
                }
                Some(Due::Ping) => {
                    client.liveness.pinged(now.instant);
                    self.outputs.push_back(Output::Ping { to: id });
                }
                None => {}
            }
            // Not due means the deadline is later than `now`; after a ping the next one is at
            // least a (non-zero) heartbeat interval away.
            if let Some(at) = client.liveness.deadline(heartbeat) {
                debug_assert!(at > now.instant, "a deadline was not moved past now");
                self.timers.push(at, id, serial);
            }
        }
    }
}

/// What a v2 joiner's `since` gets.
enum Resumption<'a> {
    /// No `since`: the whole history, no gap.
    Fresh,
    /// Every message after `since` is held: exactly those.
    Held(Held<'a>),
    /// It cannot be honoured (`why`): a `gap`, then the whole history.
    Gap { since: u64, why: String },
    /// Durable mode: memory no longer holds every message after `since`, storage should; ask
    /// it for the ids `since + 1 .. before` (at most [`MAX_RESUME_FETCH`] of them).
    Storage { since: u64, before: u64 },
}

/// Decides what a v2 joiner's `resume` gets in a room whose history is `history`.
fn resumption<'a>(s: &Settings, history: &'a History, resume: Option<Resume>) -> Resumption<'a> {
    let Some(Resume { epoch, since }) = resume else {
        return Resumption::Fresh;
    };
    if epoch == Resume::NO_EPOCH {
        return Resumption::Gap {
            since,
            why: format!(
            "no epoch came with since {since}, so it cannot be honoured; here is the recent history"
            ),
        };
    }
    if epoch != s.epoch {
        return Resumption::Gap {
            since,
            why: format!(
            "epoch {epoch} is not this server's (the server restarted); here is the recent history"
            ),
        };
    }
    if since > history.last_id() {
        return Resumption::Gap {
            since,
            why: format!("there is no message {since} in this room; here is the recent history"),
        };
    }
    if let Some(held) = history.after(since) {
        return Resumption::Held(held);
    }
    // `since` is below the oldest held message: `held_after() - since` messages are missing.
    let before = history.held_after().saturating_add(1);
    if !s.beyond_memory() {
        return Resumption::Gap {
            since,
            why: format!("messages after {since} are no longer held; here is the recent history"),
        };
    }
    if before - since - 1 > MAX_RESUME_FETCH as u64 {
        return Resumption::Gap {
            since,
            why: format!(
            "more than {MAX_RESUME_FETCH} messages after {since} are no longer in memory; here is the recent history (older messages: history_before)"
            ),
        };
    }
    Resumption::Storage { since, before }
}

/// A v2 joiner's `welcome`: the room's members now, the joiner included (in cluster mode,
/// with the cluster's members of the room).
fn welcome(
    s: &Settings,
    room: &Room,
    cluster_members: Option<&BTreeSet<Arc<str>>>,
    name: &RoomName,
    user: &str,
    wall: DateTime<Utc>,
) -> Payload {
    let members = match cluster_members {
        None => MemberNames::Local(room.members()),
        Some(cluster) => MemberNames::Union(
            room.members()
                .chain(cluster.iter().map(|name| &**name))
                .collect(),
        ),
    };
    Frame::Welcome {
        client_id: user,
        room: name.as_str(),
        epoch: s.epoch,
        members,
        history_limit: s.history,
        timestamp: Stamp(wall),
    }
    .encode()
}

/// The frames a v2 client gets before anything live: `welcome`, then `gap` when its `since`
/// cannot be honoured, then `history`. (Not for [`Resumption::Storage`]: that joiner is put
/// on hold, see `resume.rs`.)
fn greet(
    out: &mut VecDeque<Output>,
    s: &Settings,
    room: &Room,
    name: &RoomName,
    joiner: Joiner<'_>,
    resumption: Resumption<'_>,
    wall: DateTime<Utc>,
) {
    let Joiner {
        client,
        user,
        cluster_members,
    } = joiner;
    let mut send = |payload| {
        out.push_back(Output::Send {
            to: client,
            payload,
        })
    };
    let timestamp = Stamp(wall);
    send(welcome(s, room, cluster_members, name, user, wall));
    let resumed = match resumption {
        Resumption::Fresh => None,
        Resumption::Held(held) => Some(held),
        Resumption::Gap { since, why } => {
            send(
                Frame::Gap {
                    room: name.as_str(),
                    epoch: s.epoch,
                    since,
                    message: &why,
                    timestamp,
                }
                .encode(),
            );
            None
        }
        Resumption::Storage { .. } => {
            debug_assert!(false, "a joiner resuming from storage is put on hold");
            None
        }
    };
    let is_resumed = resumed.is_some();
    send(
        Frame::History {
            room: name.as_str(),
            epoch: s.epoch,
            resumed: is_resumed,
            messages: Messages {
                room: name.as_str(),
                restored: &[],
                held: resumed.unwrap_or_else(|| room.history.all()),
            },
            timestamp,
        }
        .encode(),
    );
}

/// A v2 joiner to greet.
struct Joiner<'a> {
    client: ClientId,
    user: &'a str,
    /// Cluster mode: the room's members on the cluster.
    cluster_members: Option<&'a BTreeSet<Arc<str>>>,
}

/// The connection asking for a page.
struct Asker<'a> {
    id: ClientId,
    serial: u64,
    protocol: Protocol,
    user: &'a str,
    /// Its requests waiting for storage.
    fetches: &'a mut u32,
}

/// A `history_before` from `asker`: at most `limit` messages with ids below `before`, from
/// memory when it holds the whole page (or always, when not durable), else from storage
/// through an [`Output::Fetch`] for the older part.
#[allow(clippy::too_many_arguments)] // each is a different fact about the request
fn history_before(
    out: &mut VecDeque<Output>,
    pending: &mut Pending,
    s: &Settings,
    asker: Asker<'_>,
    name: &RoomName,
    room: &Room,
    before: u64,
    limit: usize,
    wall: DateTime<Utc>,
) {
    let h = &room.history;
    // The page's ids: `want_lo..=top` (ids start at 1; none is above the last).
    let top = before.saturating_sub(1).min(h.last_id());
    let want_lo = top.saturating_sub(limit as u64 - 1).max(1);
    let held_after = h.held_after();
    if top == 0 || !s.beyond_memory() || want_lo > held_after {
        let from = want_lo.max(held_after.saturating_add(1));
        let messages: Vec<Frame<'_>> = h
            .range(from, top)
            .map(|m| Frame::message(name.as_str(), m))
            .collect();
        // Durable (or a cluster): storage may hold what came before the page. In memory: only
        // the ring does.
        let older = if s.beyond_memory() {
            1
        } else {
            held_after.saturating_add(1)
        };
        let payload = page(name.as_str(), before, messages, limit, from > older, wall);
        out.push_back(Output::Send {
            to: asker.id,
            payload,
        });
        return;
    }
    if *asker.fetches as usize >= MAX_FETCHES_IN_FLIGHT {
        let message = format!(
            "at most {MAX_FETCHES_IN_FLIGHT} history_before requests may wait at once; ask again after a history_page"
        );
        let payload = error_frame(
            asker.protocol,
            asker.user,
            &message,
            ErrorCode::TooManyFetches,
            wall,
        );
        out.push_back(Output::Send {
            to: asker.id,
            payload,
        });
        return;
    }
    // The newer part of the page is in memory now (and may be evicted before storage answers,
    // or not be stored yet): kept with the request. Storage is asked for the rest.
    let held: Vec<Stored> = h
        .range(held_after.saturating_add(1), top)
        .cloned()
        .collect();
    let fetch_before = top.min(held_after) + 1;
    let fetch_limit = limit - held.len();
    let ticket = pending.ticket();
    *asker.fetches += 1;
    pending.fetches.insert(
        ticket,
        PendingFetch {
            waiter: (asker.id, asker.serial),
            room: name.clone(),
            before,
            limit,
            fetch_before,
            fetch_limit,
            held,
        },
    );
    out.push_back(Output::Fetch {
        client: asker.id,
        ticket,
        room: name.clone(),
        before: fetch_before,
        limit: fetch_limit,
    });
}

/// A `history_page` frame; `more` when the page is full and older messages may exist.
fn page(
    room: &str,
    before: u64,
    messages: Vec<Frame<'_>>,
    limit: usize,
    older_may_exist: bool,
    wall: DateTime<Utc>,
) -> Payload {
    let more = messages.len() >= limit && older_may_exist;
    Frame::HistoryPage {
        room,
        before,
        messages,
        more,
        timestamp: Stamp(wall),
    }
    .encode()
}

/// A close text: `start`, then `: reason` when there is one, cut to fit a close frame.
/// Tells the room's v2 members that message `id` was deleted (v1 has no such frame).
pub(crate) fn announce_deleted(
    out: &mut VecDeque<Output>,
    room: &Room,
    name: &RoomName,
    id: u64,
    wall: DateTime<Utc>,
) {
    let v2 = room.has(Protocol::V2).then(|| {
        Frame::Deleted {
            room: name.as_str(),
            id,
            timestamp: Stamp(wall),
        }
        .encode()
    });
    room.broadcast(out, None, v2.as_ref());
}

fn with_reason(start: String, reason: &str) -> String {
    if reason.is_empty() {
        close_text(start)
    } else {
        close_text(format!("{start}: {reason}"))
    }
}

/// An error frame for one client, in its protocol's shape.
pub(crate) fn error_frame(
    protocol: Protocol,
    user: &str,
    message: &str,
    code: ErrorCode,
    wall: DateTime<Utc>,
) -> Payload {
    match protocol {
        Protocol::V1 => Event::new(EventKind::Error, user, message, wall)
            .with_code(code)
            .encode(),
        Protocol::V2 => Frame::Error {
            client_id: user,
            message,
            code,
            timestamp: Stamp(wall),
        }
        .encode(),
    }
}

/// A new room message (its id the room's next): broadcast to the room, then (durable, its
/// durability [`Durability::Pending`]) handed to storage, and held in the room's history. Live
/// delivery never waits for the disk.
pub(crate) fn deliver(
    out: &mut VecDeque<Output>,
    room: &mut Room,
    name: &RoomName,
    epoch: u64,
    message: Stored,
) {
    let v1 = room.has(Protocol::V1).then(|| {
        Event::new(
            EventKind::Message,
            &message.user,
            message.text.as_str(),
            message.timestamp,
        )
        .encode()
    });
    let v2 = room
        .has(Protocol::V2)
        .then(|| Frame::message(name.as_str(), &message).encode());
    room.broadcast(out, v1.as_ref(), v2.as_ref());
    if let Durability::Pending(ticket) = message.durability {
        out.push_back(Output::Store(Record {
            ticket,
            room: name.clone(),
            epoch,
            id: message.id,
            user: Arc::clone(&message.user),
            text: message.text.clone(),
            client_msg_id: message.client_msg_id.clone(),
            timestamp: message.timestamp,
            to: None,
        }));
    }
    room.history.push(message);
}

/// The client whose accepted command is being carried out.
struct Sender<'a> {
    id: ClientId,
    /// Which connection of that id (for an ack that comes later).
    serial: u64,
    user: &'a Arc<str>,
    room: &'a RoomName,
    wall: DateTime<Utc>,
    epoch: u64,
    durable: bool,
}

impl Sender<'_> {
    /// A chat message: broadcast with the room's next id, kept in its history and (durable)
    /// handed to storage; or, if it is a retry of one still held, acknowledged again without a
    /// broadcast (durable: once its ticket is answered).
    /// Returns the id of the message broadcast, if one was.
    fn post(
        &self,
        out: &mut VecDeque<Output>,
        pending: &mut Pending,
        room: &mut Room,
        text: Cow<'_, str>,
        client_msg_id: Option<String>,
    ) -> Option<u64> {
        if let Some(key) = &client_msg_id {
            if let Some(held) = room
                .history
                .find(self.user, key)
                .and_then(|id| room.history.get(id))
            {
                match held.durability {
                    Durability::Volatile => self.ack(out, key, held.id, None),
                    Durability::Stored => self.ack(out, key, held.id, Some(true)),
                    Durability::Failed => self.ack(out, key, held.id, Some(false)),
                    Durability::Pending(ticket) => {
                        if let Some(p) = pending.acks.get_mut(&ticket) {
                            p.waiters.insert((self.id, self.serial));
                        } else {
                            debug_assert!(false, "a pending message has a pending ack");
                        }
                    }
                }
                return None;
            }
        }
        let durability = if self.durable {
            Durability::Pending(pending.ticket())
        } else {
            Durability::Volatile
        };
        let message = Stored {
            id: room.history.next_id(),
            user: Arc::clone(self.user),
            // A v1 text borrows the driver's payload, which may be a slice of a larger read
            // buffer (the driver's): held in history it would pin that whole buffer, so it is
            // copied here, once. A v2 text is already a String of its own: moved, not copied.
            text: Payload::from(text.into_owned()),
            client_msg_id: client_msg_id.map(String::into_boxed_str),
            timestamp: self.wall,
            durability,
            deleted: false,
        };
        let id = message.id;
        let key = message.client_msg_id.clone();
        deliver(out, room, self.room, self.epoch, message);
        let Some(key) = key else {
            return Some(id);
        };
        if let Durability::Pending(ticket) = durability {
            // The ack waits for storage.
            pending.acks.insert(
                ticket,
                PendingAck {
                    room: self.room.clone(),
                    id,
                    client_msg_id: key,
                    waiters: [(self.id, self.serial)].into(),
                },
            );
        } else {
            self.ack(out, &key, id, None);
        }
        Some(id)
    }

    /// Tells the sending connection (not its other tabs) the id its message got, and
    /// (durable) whether it is stored.
    fn ack(&self, out: &mut VecDeque<Output>, client_msg_id: &str, id: u64, stored: Option<bool>) {
        let payload = Frame::Ack {
            client_msg_id,
            id,
            timestamp: Stamp(self.wall),
            stored,
        }
        .encode();
        out.push_back(Output::Send {
            to: self.id,
            payload,
        });
    }

    /// Relays "I am typing" to the room's other v2 users (the throttle has let it through).
    fn typing(&self, out: &mut VecDeque<Output>, room: &Room) {
        if !room.has_typing_audience(self.user) {
            return;
        }
        let payload = Frame::Typing {
            client_id: self.user,
            room: self.room.as_str(),
            timestamp: Stamp(self.wall),
        }
        .encode();
        room.relay_typing(out, self.user, &payload);
    }

    /// A direct message to every v2 connection of `to` in the room, echoed to the sender's,
    /// then (durable) handed to storage; (cluster mode, `to` on the cluster) handed to the
    /// cluster for `to`'s connections on other nodes.
    fn direct(
        &self,
        out: &mut VecDeque<Output>,
        pending: &mut Pending,
        room: &Room,
        to: String,
        text: String,
        remote: bool,
    ) {
        // Cluster mode: a recipient on the cluster (`remote`) but not here still gets it, on
        // its nodes; the echo goes to the sender's connections here.
        let audience = room
            .direct_audience(self.user, &to)
            .or_else(|| remote.then(|| room.v2_of(self.user)));
        let Some(audience) = audience else {
            let explanation = command::bounded(format!(
                "unknown recipient {to:?}: no such user with a chat.v2 connection in this room"
            ));
            let payload = error_frame(
                Protocol::V2,
                self.user,
                &explanation,
                ErrorCode::UnknownRecipient,
                self.wall,
            );
            out.push_back(Output::Send {
                to: self.id,
                payload,
            });
            return;
        };
        let payload = Frame::Direct {
            from: self.user,
            to: &to,
            message: &text,
            room: self.room.as_str(),
            timestamp: Stamp(self.wall),
        }
        .encode();
        out.extend(audience.into_iter().map(|to| Output::Send {
            to,
            payload: payload.clone(),
        }));
        if remote {
            out.push_back(Output::ClusterDirect {
                room: self.room.clone(),
                from: Arc::clone(self.user),
                to,
                text,
                timestamp: self.wall,
            });
            return;
        }
        if self.durable {
            out.push_back(Output::Store(Record {
                ticket: pending.ticket(),
                room: self.room.clone(),
                epoch: self.epoch,
                id: 0,
                user: Arc::clone(self.user),
                text: Payload::from(text),
                client_msg_id: None,
                timestamp: self.wall,
                to: Some(to.into_boxed_str()),
            }));
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, Utc};

    use super::*;

    /// Connection churn leaves stale timer entries behind; they must not pile up.
    #[test]
    fn stale_timer_entries_stay_bounded_under_churn() {
        let mut server = ChatServer::new(Config::default());
        let now = Now {
            instant: Instant::now(),
            wall: DateTime::<Utc>::UNIX_EPOCH,
        };
        let connect = |server: &mut ChatServer, id| {
            let user = format!("u{id}");
            server
                .handle_input(
                    now,
                    Input::Connect {
                        client: ClientId(id),
                        user,
                        room: RoomName::default(),
                        protocol: Protocol::V1,
                        resume: None,
                    },
                )
                .expect("fresh id");
        };
        for id in 0..100 {
            connect(&mut server, id);
        }
        for round in 0..10_000 {
            let id = 100 + round % 3;
            connect(&mut server, id);
            server
                .handle_input(
                    now,
                    Input::Disconnect {
                        client: ClientId(id),
                    },
                )
                .expect("connected");
            while server.poll_output().is_some() {}
            assert!(server.timers.len() <= 2 * server.client_count() + 65);
        }
        assert_eq!(server.client_count(), 100);
    }

    /// A stale entry of an earlier connection with the same id fires once and is dropped, not
    /// taken for the new connection's and kept alive.
    #[test]
    fn a_reused_id_does_not_keep_stale_timer_entries_alive() {
        let mut server = ChatServer::new(Config::default());
        let mut now = Now {
            instant: Instant::now(),
            wall: DateTime::<Utc>::UNIX_EPOCH,
        };
        let feed = |server: &mut ChatServer, now: Now, input: Input| {
            server.handle_input(now, input).expect("valid input");
            while server.poll_output().is_some() {}
        };
        let join = |id| Input::Connect {
            client: ClientId(id),
            user: "u".into(),
            room: RoomName::default(),
            protocol: Protocol::V1,
            resume: None,
        };
        feed(&mut server, now, join(0));
        feed(&mut server, now, join(1));
        for _ in 0..600 {
            now.instant += std::time::Duration::from_secs(1);
            feed(
                &mut server,
                now,
                Input::Disconnect {
                    client: ClientId(1),
                },
            );
            feed(&mut server, now, join(1));
            feed(
                &mut server,
                now,
                Input::Activity {
                    client: ClientId(0),
                },
            );
            feed(&mut server, now, Input::Timeout);
            // Two live entries, and the stale ones of the last 25 s of reconnections.
            assert!(server.timers.len() <= 2 + 25, "{}", server.timers.len());
        }
    }
}

/// What every connected client costs the core, in bytes, so that it cannot creep back up
/// unnoticed (issue 16: RSS per idle connection). These are `size_of` budgets: a field added to
/// one of these types that makes it larger fails the test on purpose. If the growth is worth
/// it, raise the budget here and say in the commit why, with the bytes per idle connection it
/// costs (BENCHMARKS.md, "Memory per idle connection").
#[cfg(test)]
mod size_budget {
    use std::mem::size_of;

    use super::*;

    #[test]
    fn per_client_records_stay_within_budget() {
        // The client record, a slot of the `clients` table (see `clients.rs`'s budget). 128
        // bytes: name and room shared (16 each), serial (8), token bucket (32), liveness
        // (three instants, 48), fetches (u32) and three flags.
        assert!(
            size_of::<Client>() <= 128,
            "Client: {}",
            size_of::<Client>()
        );
        // The room name every client keeps: a shared `Arc<str>`, never a copy.
        assert_eq!(size_of::<RoomName>(), 16);
        assert_eq!(size_of::<Option<RoomName>>(), 16);
    }

    /// A join storm leaves the output queue small (a broadcast is one output), the driver's
    /// `release_spare_memory` gives back what it grew, and the clients keep one shared room
    /// name.
    #[test]
    fn a_storm_leaves_no_spare_output_room_after_release() {
        use chrono::{DateTime, Utc};

        let mut server = ChatServer::new(Config::default());
        let now = Now {
            instant: Instant::now(),
            wall: DateTime::<Utc>::UNIX_EPOCH,
        };
        for id in 0..1000 {
            server
                .handle_input(
                    now,
                    Input::Connect {
                        client: ClientId(id),
                        user: format!("u{id}"),
                        room: RoomName::default(),
                        protocol: Protocol::V1,
                        resume: None,
                    },
                )
                .expect("fresh id");
            while server.poll_output().is_some() {}
        }
        // A join's notice to all is one output (a `SendMany`), however many are in the room,
        // so a storm no longer grows the queue to a slot per recipient.
        assert!(
            server.outputs.capacity() < 64,
            "{} slots after the storm",
            server.outputs.capacity()
        );
        server.release_spare_memory();
        assert_eq!(server.outputs.capacity(), 0);
        let rooms: Vec<_> = server.clients.values().map(|c| c.room.clone()).collect();
        let first = rooms[0].as_ref().expect("in a room");
        assert!(rooms.iter().all(|r| r
            .as_ref()
            .is_some_and(|r| std::ptr::eq(r.as_str(), first.as_str()))));
    }

    #[test]
    fn an_output_stays_within_budget() {
        // Every output the core queues holds this much until drained (and the queue's room
        // until `release_spare_memory`); a broadcast is one, whatever its recipients. 144
        // bytes: the largest variant (a message record to store) is inline.
        assert!(
            size_of::<Output>() <= 144,
            "Output: {}",
            size_of::<Output>()
        );
    }
}
