//! The event loop: one thread, one `mio::Poll`, every connection in a `Slab`. Each step of a
//! turn has a file of its own:
//!
//! | step | file |
//! |---|---|
//! | wait, dispatch events, fire deadlines: the turn itself | `mod.rs` (this file) |
//! | accepting connections, the connection limit, EMFILE back-off | `accept.rs` |
//! | reading request heads and answering them | `http_requests.rs` |
//! | switching a connection to WebSocket after the `101` | `upgrade.rs` |
//! | bans (refused upgrades) and deleted messages' text | `moderation.rs` |
//! | built-in accounts: login, logout, sessions, the upgrade's cookie | `accounts.rs` |
//! | the memory budget: what connections hold, shedding | `memory.rs` |
//! | giving back what a burst grew once the loop is quiet | `spare.rs` |
//! | reading WebSocket frames, the read budget, read errors to close codes | `ws_read.rs` |
//! | the bridge to the core: inputs in, outputs to queued frames | `core_bridge.rs` |
//! | the turn's frames and flushing: seal, write, interest, removal | `flush.rs` |
//! | events handed over by other threads | `handoff.rs` |
//! | signals and the graceful drain | `shutdown.rs` |
//! | native TLS: sessions, the certificate's reload on SIGHUP, a request's scheme | `tls.rs` |
//!
//! One loop turn:
//! 1. wait for readiness, or until the next deadline (not at all while input is left over);
//! 2. for each event: read the connection (until WouldBlock or its read budget) and feed what
//!    it said to the core, whose outputs become frames queued in the turn's batch; then take
//!    the events other threads handed over, then accept;
//! 3. fire due deadlines (the core's heartbeats, HTTP timeouts, closing lingers);
//! 4. flush every connection that got bytes this turn, once (`flush.rs`);
//! 5. remove the connections that ended;
//! 6. after a quiet spell (a turn without events, 100 ms after the last one), give back the
//!    room a burst grew (`spare.rs`).
//!
//! Every path that ends a chat client goes through [`EventLoop::leave`], so the core hears
//! `Input::Disconnect` exactly once per client, however the connection ended.

mod accept;
mod access_log;
mod accounts;
mod api;
mod auth;
mod cluster;
mod core_bridge;
mod flush;
pub mod handoff;
mod http_requests;
mod memory;
mod moderation;
mod shutdown;
mod spare;
mod storage;
mod tls;
mod upgrade;
mod ws_read;

use std::collections::VecDeque;
use std::io;
use std::time::{Duration, Instant};

use chat_protocol::{ChatServer, Input, Now, Payload};
use chrono::Utc;
use mio::net::TcpListener;
use mio::{Events, Poll, Token};
use signal_hook_mio::v1_0::Signals;
use slab::Slab;
use tungstenite::protocol::WebSocketConfig;

use crate::assets::Assets;
use crate::batch::{Batch, Span};
use crate::client_addr::ClientAddrs;
use crate::config::Config;
use crate::connection::{Conn, Linger, State};
use crate::metrics::Metrics;
use crate::timer::Timers;
pub use accept::connection_budget;
pub use accounts::Accounts;
pub use cluster::{restored_presence, restored_rooms as cluster_rooms};
use handoff::{Inbox, Left};
pub use tls::Tls;

pub const LISTENER: Token = Token(usize::MAX);
pub const WAKER: Token = Token(usize::MAX - 1);
pub const SIGNALS: Token = Token(usize::MAX - 2);

/// How long a closing connection has to take its last bytes and answer with EOF.
const CLOSE_LINGER: Duration = Duration::from_secs(5);
/// Events from other threads handled per turn, at most: a burst of them waits for the next
/// turn rather than keep the sockets waiting.
const INBOX_BUDGET: usize = 256;

/// What other threads hand to the loop ([`handoff`]).
#[derive(Debug)]
pub enum Control {
    /// [`crate::ServerHandle::shutdown`]: begin the graceful drain.
    Shutdown,
    /// The storage thread finished a write or a fetch.
    Store(chat_store::Completion),
    /// A password hasher thread checked a login's password.
    Hash(chat_auth::HashDone),
    /// The TLS certificate was read again (SIGHUP): the new configuration, or why not.
    TlsReloaded(Result<std::sync::Arc<rustls::ServerConfig>, String>),
    /// The cluster's threads heard something (`--redis`).
    Cluster(chat_cluster::Event),
}

pub struct EventLoop {
    pub poll: Poll,
    pub listener: TcpListener,
    pub conns: Slab<Conn>,
    pub core: ChatServer,
    pub assets: Assets,
    pub config: Config,
    pub ws_config: WebSocketConfig,
    pub signals: Option<Signals>,
    /// Native TLS, when the server serves it (`tls.rs`).
    tls: Option<Tls>,
    /// Connections served at once (the configured maximum, capped by the open-files limit).
    pub max_connections: usize,
    /// Connections answered 503 while full may linger (to take their answer) up to this many
    /// beyond `max_connections`; past that they are dropped at once.
    pub refusal_headroom: usize,
    pub metrics: Metrics,
    /// Open connections per client address.
    clients: ClientAddrs,
    /// The server API's key, when the API is on.
    api_key: Option<String>,
    /// The core's answer to the server API request being handled (`api.rs`).
    api_answer: Option<api::CoreAnswer>,
    /// The token checker, when clients authenticate with signed tokens.
    tokens: Option<chat_auth::TokenVerifier>,
    /// Logins and sessions, when clients authenticate with built-in accounts (`accounts.rs`).
    accounts: Option<Accounts>,
    /// The message store's thread, when messages are kept on disk.
    store: Option<chat_store::RunningStore>,
    /// The cluster's threads, when this node is one of several (`--redis`).
    cluster: Option<chat_cluster::RunningCluster>,
    /// This node's name in the cluster.
    cluster_node: Option<String>,
    /// Whether the links to the cluster's Redis are up.
    cluster_links: cluster::Links,
    /// The bans in force (`moderation.rs`).
    bans: chat_adapter::bans::Bans,
    inbox: Inbox<Control>,
    /// The inbox had more than a turn's budget.
    inbox_left: Left,
    timers: Timers,
    /// The time of this loop turn, read once after `poll` returns.
    now: Now,
    /// Inputs for the core not yet fed (disconnects found while carrying out outputs).
    pending: VecDeque<Input>,
    /// Connections with bytes to write in this flush round.
    dirty: flush::FlushList,
    /// Connections that still had input when their read budget ran out.
    backlog: Vec<usize>,
    /// Connections that ended this turn.
    gone: Vec<usize>,
    /// The frames of this turn, encoded back to back.
    batch: Batch,
    /// The last broadcast payload and where its frame is in the batch: a broadcast's outputs
    /// come one after the other, so each frame is encoded once and shared by every recipient.
    frame_cache: Option<(Payload, Span)>,
    accept_paused_until: Option<Instant>,
    /// When to give back what a burst grew, if the loop stays quiet until then (`spare.rs`).
    spare: spare::SpareTimer,
    /// The poll before this turn waited for events (see `flush.rs`).
    idle_before_turn: bool,
    /// The second writer (one thread, started once), if the machine has more than one CPU.
    writer: Option<rayon_core::ThreadPool>,
    /// Set when a graceful shutdown began: the instant by which it ends.
    drain_deadline: Option<Instant>,
    scratch: Box<[u8]>,
    /// The memory budget and what connections hold of it (`memory.rs`).
    memory: memory::Memory,
    /// Called once when the drain begins (`Server::on_drain`: systemd's STOPPING=1).
    pub on_drain: Option<Box<dyn FnOnce() + Send>>,
}

impl EventLoop {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        poll: Poll,
        listener: TcpListener,
        config: Config,
        assets: Assets,
        (core, store, bans, cluster): (
            ChatServer,
            Option<chat_store::RunningStore>,
            chat_adapter::bans::Bans,
            Option<(chat_cluster::RunningCluster, String)>,
        ),
        (tokens, accounts): (Option<chat_auth::TokenVerifier>, Option<Accounts>),
        api_key: Option<String>,
        inbox: Inbox<Control>,
        (signals, tls): (Option<Signals>, Option<Tls>),
        (max_connections, refusal_headroom): (usize, usize),
    ) -> Self {
        let now = Now {
            instant: Instant::now(),
            wall: Utc::now(),
        };
        let config_memory_budget = config.memory_budget;
        EventLoop {
            poll,
            listener,
            conns: Slab::new(),
            core,
            assets,
            ws_config: crate::connection::websocket_config(config.max_message_size),
            clients: ClientAddrs::new(
                config.trusted_proxies.clone(),
                config.max_connections_per_ip,
            ),
            config,
            signals,
            tls,
            max_connections,
            refusal_headroom,
            metrics: Metrics::new(now.instant),
            store,
            cluster_node: cluster.as_ref().map(|(_, node)| node.clone()),
            cluster: cluster.map(|(cluster, _)| cluster),
            cluster_links: cluster::Links {
                commands: true,
                subscription: true,
            },
            bans,
            api_key,
            api_answer: None,
            tokens,
            accounts,
            inbox,
            inbox_left: Left::Nothing,
            timers: Timers::default(),
            now,
            pending: VecDeque::new(),
            dirty: flush::FlushList::default(),
            backlog: Vec::new(),
            gone: Vec::new(),
            batch: Batch::default(),
            frame_cache: None,
            accept_paused_until: None,
            spare: spare::SpareTimer::default(),
            idle_before_turn: false,
            writer: flush::second_writer(),
            drain_deadline: None,
            scratch: vec![0; 16 * 1024].into_boxed_slice(),
            memory: memory::Memory::new(config_memory_budget),
            on_drain: None,
        }
    }

    /// Runs until a shutdown (handle or signal) has drained. A second signal during the drain
    /// returns an `Interrupted` error at once.
    pub fn run(&mut self) -> io::Result<()> {
        let mut events = Events::with_capacity(1024);
        loop {
            if let Some(deadline) = self.drain_deadline {
                if self.drained() || Instant::now() >= deadline {
                    self.close_store();
                    self.leave_cluster();
                    log::info!("shutdown complete");
                    return Ok(());
                }
            }
            let before_poll = Instant::now();
            let timeout = self.poll_timeout(before_poll);
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            self.now = Now {
                instant: Instant::now(),
                wall: Utc::now(),
            };
            self.idle_before_turn = self.now.instant - before_poll >= flush::IDLE_WAIT;
            let received_before = self.metrics.messages_received;
            let queued_before = self.metrics.messages_delivered;
            for key in std::mem::take(&mut self.backlog) {
                self.readable(key);
            }
            let mut accept = false;
            for event in events.iter() {
                match event.token() {
                    // Accept after the other events, so connections that ended in this batch
                    // no longer count against the limit.
                    LISTENER => accept = true,
                    // The inbox is looked at every turn, woken or not.
                    WAKER => {}
                    SIGNALS => self.signalled()?,
                    Token(key) => {
                        if event.is_readable() || event.is_read_closed() || event.is_error() {
                            self.readable(key);
                        }
                        if event.is_writable() {
                            self.mark_dirty(key);
                        }
                    }
                }
            }
            self.take_inbox();
            if accept {
                self.accept();
            }
            self.fire_timers();
            self.end_turn();
            let queued = self.metrics.messages_delivered - queued_before;
            self.spare_after_turn(queued, self.now.instant);
            let received = self.metrics.messages_received - received_before;
            if received > 0 {
                self.metrics
                    .delivered(received, self.now.instant, Instant::now());
            }
        }
    }

    fn poll_timeout(&self, now: Instant) -> Option<Duration> {
        if !self.backlog.is_empty() || self.inbox_left == Left::More {
            return Some(Duration::ZERO);
        }
        let next = [
            self.timers.next(),
            self.core.poll_timeout(),
            self.accept_paused_until,
            self.drain_deadline,
            self.spare.deadline(),
        ]
        .into_iter()
        .flatten()
        .min()?;
        // Round up so the loop does not wake a hair early and spin.
        Some(next.saturating_duration_since(now) + Duration::from_millis(1))
    }

    /// Handles what other threads handed over, at most [`INBOX_BUDGET`] events.
    fn take_inbox(&mut self) {
        let mut taken = Vec::new();
        self.inbox_left = self.inbox.take(INBOX_BUDGET, |event| taken.push(event));
        for event in taken {
            match event {
                Control::Shutdown => {
                    if self.drain_deadline.is_none() {
                        self.begin_drain();
                    }
                }
                Control::Store(completion) => self.store_completed(completion),
                Control::Hash(done) => self.hash_done(done),
                Control::Cluster(event) => self.cluster_event(event),
                Control::TlsReloaded(result) => self.tls_reloaded(result),
            }
        }
    }

    /// Input on a connection, whatever its state.
    fn readable(&mut self, key: usize) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        match conn.state {
            State::Http { .. } => self.read_http(key),
            State::WebSocket { .. } => self.read_ws(key),
            State::Closing(Linger::Sending | Linger::Shut) => {
                match conn.discard_input(&mut self.scratch, &mut self.metrics.bytes_in) {
                    Ok(true) => {}
                    Ok(false) | Err(_) => self.mark_gone(key),
                }
            }
            // The peer said all it had to say; our last bytes are on their way.
            State::Closing(Linger::PeerDone) | State::Gone => {}
        }
        // A TLS read may have made records to send (the handshake's, an alert) with nothing
        // queued; and bytes queued during the handshake wait for its end.
        if let Some(conn) = self.conns.get(key) {
            if conn.is_tls() && (conn.tls_wants_write() || conn.queued() > 0) {
                self.mark_dirty(key);
            }
        }
        self.settle();
        self.recount(key);
    }

    fn set_deadline(&mut self, key: usize, after: Duration) {
        if let Some(conn) = self.conns.get_mut(key) {
            let at = self.now.instant + after;
            conn.deadline = Some(at);
            self.timers.schedule(at, key);
        }
    }

    fn fire_timers(&mut self) {
        let now = self.now.instant;
        if self.core.poll_timeout().is_some_and(|t| t <= now) {
            self.feed(Input::Timeout);
        }
        if self.accept_paused_until.is_some_and(|t| t <= now) {
            self.accept();
        }
        for key in self.timers.expired(now) {
            let Some(conn) = self.conns.get(key) else {
                continue;
            };
            if conn.is_gone() || conn.deadline.is_none_or(|d| d > now) {
                continue; // stale entry: the deadline moved or the slot was reused
            }
            match &conn.state {
                State::Http {
                    awaiting: Some(_), ..
                } => {
                    self.refuse(key, 503, "the login service did not answer in time\n");
                }
                State::Http { head, .. } if !head.is_empty() => {
                    self.refuse(key, 408, "request head not received in time\n");
                }
                _ => self.mark_gone(key),
            }
        }
        self.settle();
    }

    /// The connection is over (EOF, reset, error, timeout): no more bytes either way.
    fn mark_gone(&mut self, key: usize) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        if conn.is_gone() {
            return;
        }
        if let Some(departed) = conn.end() {
            let user = self.core.user(departed.client).unwrap_or_default();
            log::info!(
                peer:% = conn.peer(), user = user;
                "{user} ({}) disconnected", conn.peer()
            );
            self.leave(departed.client);
        }
        self.gone.push(key);
    }
}
