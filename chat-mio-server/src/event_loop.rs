//! The event loop: one thread, one `mio::Poll`, every connection in a `Slab`.
//!
//! One loop turn:
//! 1. wait for readiness, or until the next deadline;
//! 2. for each event: accept, or read the connection (until WouldBlock or its read budget) and
//!    feed what it said to the chat core, turning the core's outputs into queued frames;
//! 3. fire due deadlines (the core's heartbeats, HTTP timeouts, closing lingers);
//! 4. seal the turn's batch of frames and flush every connection that got bytes this turn,
//!    once: one `writev` carries all of them (after a quiet spell, a big flush shares its
//!    writes with a second thread: [`EventLoop::write_in_parallel`]);
//! 5. remove the connections that ended.
//!
//! Every path that ends a chat client goes through [`EventLoop::leave`], so the core hears
//! `Input::Disconnect` exactly once per client, however the connection ended.

use std::collections::VecDeque;
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use chat_protocol::{ChatServer, ClientId, CloseReason, Input, Now, Output, Payload};
use chrono::Utc;
use mio::net::TcpListener;
use mio::{Events, Interest, Poll, Token, Waker};
use signal_hook_mio::v1_0::Signals;
use slab::Slab;
use tungstenite::error::{CapacityError, ProtocolError};
use tungstenite::protocol::WebSocketConfig;
use tungstenite::Message;

use crate::assets::Assets;
use crate::batch::{Batch, Span};
use crate::config::Config;
use crate::conn::{Conn, Flushed, HttpRead, Phase};
use crate::http::{self, ParseError, Response};
use crate::metrics::Metrics;
use crate::routes::{route, Ctx, Route};
use crate::timer::Timers;

pub const LISTENER: Token = Token(usize::MAX);
pub const WAKER: Token = Token(usize::MAX - 1);
pub const SIGNALS: Token = Token(usize::MAX - 2);

/// Largest HTTP request head.
const MAX_REQUEST_HEAD: usize = 8 * 1024;
/// How long a closing connection has to take its last bytes and answer with EOF.
const CLOSE_LINGER: Duration = Duration::from_secs(5);
/// Messages and bytes read from one connection per turn before the others get their turn.
const READ_BUDGET_MESSAGES: usize = 64;
const READ_BUDGET_BYTES: u64 = 256 * 1024;
/// A turn whose poll waited at least this long for events comes after a quiet spell: its
/// flush may use a second thread. Under load the poll finds events at once (a server that
/// waits on slow peers may still wait a little), and the writes stay on the loop thread.
const IDLE_WAIT: Duration = Duration::from_millis(2);
/// Connections to flush in one turn from which waking the second writer is worth it (waking
/// it costs ~15 us; one `writev` to a loopback peer several), and the share of all
/// connections they must be (finding them walks every connection).
const PARALLEL_FLUSH_MIN: usize = 32;
const PARALLEL_FLUSH_SHARE: usize = 4;
/// Stack of the writer thread: it only runs `writev`s.
const WRITER_STACK: usize = 256 * 1024;

/// The thread that shares big flushes after a quiet spell: started once (starting a thread per
/// flush costs ~70 us here, waking a parked one ~15 us). `None` on a single CPU, or if it
/// cannot be started: then every write stays on the loop thread.
fn second_writer() -> Option<rayon_core::ThreadPool> {
    if !std::thread::available_parallelism().is_ok_and(|n| n.get() > 1) {
        return None;
    }
    rayon_core::ThreadPoolBuilder::new()
        .num_threads(1)
        .thread_name(|_| "chat-writer".into())
        .stack_size(WRITER_STACK)
        .build()
        .inspect_err(|e| log::warn!("no second writer thread: {e}"))
        .ok()
}
/// After `accept` fails (EMFILE, ENFILE, ...), wait this long before trying again.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

pub struct EventLoop {
    pub poll: Poll,
    pub listener: TcpListener,
    pub conns: Slab<Conn>,
    pub core: ChatServer,
    pub assets: Assets,
    pub config: Config,
    pub ws_config: WebSocketConfig,
    pub shutdown: Arc<AtomicBool>,
    pub waker: Arc<Waker>,
    pub signals: Option<Signals>,
    /// Connections served at once (the configured maximum, capped by the open-files limit).
    pub max_connections: usize,
    /// Connections answered 503 while full may linger (to take their answer) up to this many
    /// beyond `max_connections`; past that they are dropped at once.
    pub refusal_headroom: usize,
    pub metrics: Metrics,
    timers: Timers,
    /// The time of this loop turn, read once after `poll` returns.
    now: Now,
    /// Inputs for the core not yet fed (disconnects found while carrying out outputs).
    pending: VecDeque<Input>,
    /// Connections with bytes to write this turn.
    dirty: Vec<usize>,
    /// Connections that still had input when their read budget ran out.
    backlog: Vec<usize>,
    /// Connections that ended this turn.
    dead: Vec<usize>,
    /// The frames of this turn, encoded back to back.
    batch: Batch,
    /// The last broadcast payload and where its frame is in the batch: a broadcast's outputs
    /// come one after the other, so each frame is encoded once and shared by every recipient.
    frame_cache: Option<(Payload, Span)>,
    accept_paused_until: Option<Instant>,
    /// The poll before this turn waited for events (see [`IDLE_WAIT`]).
    idle_before_turn: bool,
    /// The second writer (one thread, started once), if the machine has more than one CPU.
    writer: Option<rayon_core::ThreadPool>,
    /// Set when a graceful shutdown began: the instant by which it ends.
    drain_deadline: Option<Instant>,
    scratch: Box<[u8]>,
}

impl EventLoop {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        poll: Poll,
        listener: TcpListener,
        config: Config,
        assets: Assets,
        waker: Arc<Waker>,
        signals: Option<Signals>,
        (max_connections, refusal_headroom): (usize, usize),
    ) -> Self {
        let now = Now {
            instant: Instant::now(),
            wall: Utc::now(),
        };
        EventLoop {
            poll,
            listener,
            conns: Slab::new(),
            // The epoch (PROTOCOL.md) is the start time in milliseconds: it differs on every
            // start, so message ids from before a restart are never mistaken for new ones.
            core: ChatServer::new(
                config
                    .core()
                    .with_epoch(u64::try_from(now.wall.timestamp_millis()).unwrap_or(1)),
            ),
            assets,
            ws_config: crate::ws::config(config.max_message_size),
            config,
            shutdown: Arc::new(AtomicBool::new(false)),
            waker,
            signals,
            max_connections,
            refusal_headroom,
            metrics: Metrics::new(now.instant),
            timers: Timers::default(),
            now,
            pending: VecDeque::new(),
            dirty: Vec::new(),
            backlog: Vec::new(),
            dead: Vec::new(),
            batch: Batch::default(),
            frame_cache: None,
            accept_paused_until: None,
            idle_before_turn: false,
            writer: second_writer(),
            drain_deadline: None,
            scratch: vec![0; 16 * 1024].into_boxed_slice(),
        }
    }

    /// Runs until a shutdown (handle or signal) has drained. A second signal during the drain
    /// returns an `Interrupted` error at once.
    pub fn run(&mut self) -> io::Result<()> {
        let mut events = Events::with_capacity(1024);
        loop {
            if let Some(deadline) = self.drain_deadline {
                if self.drained() || Instant::now() >= deadline {
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
            // Waiting for events means this thread had nothing to do: the machine likely has
            // a core to spare for this turn's writes. A loop that finds events at once is busy
            // and keeps its writes to itself.
            self.idle_before_turn = self.now.instant - before_poll >= IDLE_WAIT;
            for key in std::mem::take(&mut self.backlog) {
                self.readable(key);
            }
            let mut accept = false;
            for event in events.iter() {
                match event.token() {
                    // Accept after the other events, so connections that ended in this batch
                    // no longer count against the limit.
                    LISTENER => accept = true,
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
            if accept {
                self.accept();
            }
            if self.shutdown.load(Ordering::Acquire) && self.drain_deadline.is_none() {
                self.begin_drain();
            }
            self.fire_timers();
            self.end_turn();
        }
    }

    fn poll_timeout(&self, now: Instant) -> Option<Duration> {
        if !self.backlog.is_empty() {
            return Some(Duration::ZERO);
        }
        let next = [
            self.timers.next(),
            self.core.poll_timeout(),
            self.accept_paused_until,
            self.drain_deadline,
        ]
        .into_iter()
        .flatten()
        .min()?;
        // Round up so the loop does not wake a hair early and spin.
        Some(next.saturating_duration_since(now) + Duration::from_millis(1))
    }

    fn signalled(&mut self) -> io::Result<()> {
        let Some(signals) = self.signals.as_mut() else {
            return Ok(());
        };
        let count = signals.pending().count();
        if count == 0 {
            return Ok(());
        }
        if self.drain_deadline.is_some() || count > 1 {
            log::warn!("second signal: stopping without waiting for clients");
            return Err(io::Error::new(
                io::ErrorKind::Interrupted,
                "stopped by a second signal",
            ));
        }
        log::info!("signal received: shutting down (send it again to stop at once)");
        self.shutdown.store(true, Ordering::Release);
        Ok(())
    }

    /// Graceful shutdown: WebSocket upgrades and `/readyz` answer 503 from now on, every chat
    /// client gets close 1001, and `run` returns once they are gone or the timeout passed.
    fn begin_drain(&mut self) {
        log::info!(
            "draining {} chat clients (at most {:?})",
            self.metrics.websocket_open,
            self.config.shutdown_timeout
        );
        self.drain_deadline = Some(self.now.instant + self.config.shutdown_timeout);
        let keys: Vec<usize> = self
            .conns
            .iter()
            .filter(|(_, c)| c.client().is_some())
            .map(|(k, _)| k)
            .collect();
        for key in keys {
            self.close_client(key, CloseReason::Shutdown, false);
        }
        self.settle();
    }

    /// Every chat client is gone and nothing is left to write.
    fn drained(&self) -> bool {
        self.conns
            .iter()
            .all(|(_, c)| c.dead || (matches!(c.phase, Phase::Http { .. }) && c.queued() == 0))
    }

    fn accept(&mut self) {
        if let Some(until) = self.accept_paused_until {
            if self.now.instant < until {
                return;
            }
            self.accept_paused_until = None;
        }
        loop {
            let (mut stream, peer) = match self.listener.accept() {
                Ok(accepted) => accepted,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    // Typically EMFILE/ENFILE. The pending connections stay in the kernel's
                    // backlog; retrying on every event would spin, so wait a moment.
                    log::error!("accept failed, retrying in {ACCEPT_BACKOFF:?}: {e}");
                    self.accept_paused_until = Some(self.now.instant + ACCEPT_BACKOFF);
                    return;
                }
            };
            self.metrics.connections_total += 1;
            let open = self.conns.len() - self.dead.len();
            let full = open >= self.max_connections;
            if full && open >= self.max_connections + self.refusal_headroom {
                // Flooded beyond even the room kept for polite refusals: drop at once.
                self.metrics.refused_full += 1;
                continue;
            }
            if let Err(e) = stream.set_nodelay(true) {
                log::debug!("{peer}: TCP_NODELAY: {e}");
            }
            let entry = self.conns.vacant_entry();
            let key = entry.key();
            if let Err(e) =
                self.poll
                    .registry()
                    .register(&mut stream, Token(key), Interest::READABLE)
            {
                log::error!("{peer}: cannot register connection: {e}");
                continue;
            }
            entry.insert(Conn::new(stream, peer));
            self.metrics.open_connections += 1;
            if full {
                self.metrics.refused_full += 1;
                log::warn!("{peer}: refused, {} connections open", self.max_connections);
                self.respond(
                    key,
                    &Response::text(503, "the server is full, try again later\n")
                        .header("Retry-After", "10")
                        .keep_alive(false),
                );
            } else {
                log::debug!("{peer}: accepted");
                self.set_deadline(key, self.config.request_timeout);
            }
        }
    }

    fn set_deadline(&mut self, key: usize, after: Duration) {
        if let Some(conn) = self.conns.get_mut(key) {
            let at = self.now.instant + after;
            conn.deadline = Some(at);
            self.timers.schedule(at, key);
        }
    }

    fn mark_dirty(&mut self, key: usize) {
        if let Some(conn) = self.conns.get_mut(key) {
            if !conn.dirty && !conn.dead {
                conn.dirty = true;
                self.dirty.push(key);
            }
        }
    }

    /// The connection is over (EOF, reset, error, timeout): no more bytes either way.
    fn mark_dead(&mut self, key: usize) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        if conn.dead {
            return;
        }
        if let Some((client, user)) = conn.close_ws(None, true) {
            log::info!("{user} ({}) disconnected", conn.peer);
            self.leave(client);
        }
        let conn = &mut self.conns[key];
        conn.dead = true;
        self.dead.push(key);
    }

    /// Sends a close frame for `kind` and ends the client. `drop_queued`: frames it has not
    /// started to receive are dropped (a slow consumer would never get to the close frame).
    fn close_client(&mut self, key: usize, kind: CloseReason, drop_queued: bool) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        if conn.dead {
            return;
        }
        let (code, reason) = (kind.code(), kind.text());
        let Some((client, user)) = conn.close_ws(Some((code, reason)), drop_queued) else {
            return;
        };
        log::info!("{user} ({}) closed by the server: {reason}", conn.peer);
        self.metrics.closed(kind);
        self.set_deadline(key, CLOSE_LINGER);
        self.mark_dirty(key);
        self.leave(client);
    }

    /// The one place a chat client leaves: the core is told exactly once.
    fn leave(&mut self, client: ClientId) {
        self.metrics.websocket_open -= 1;
        self.pending.push_back(Input::Disconnect { client });
    }

    fn readable(&mut self, key: usize) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        if conn.dead {
            return;
        }
        match conn.phase {
            Phase::Http { .. } => self.read_http(key),
            Phase::WebSocket { .. } => self.read_ws(key),
            Phase::Closing => {
                match conn.discard_input(&mut self.scratch, &mut self.metrics.bytes_in) {
                    Ok(true) => {}
                    Ok(false) | Err(_) => self.mark_dead(key),
                }
            }
        }
        self.settle();
    }

    fn read_http(&mut self, key: usize) {
        let conn = &mut self.conns[key];
        if conn.queued() > self.config.max_outbound {
            // Answers pile up unread: read no further requests until they drain (flush
            // resumes reading).
            conn.read_paused = true;
            return;
        }
        let was_empty = matches!(&conn.phase, Phase::Http { buf } if buf.is_empty());
        let read = match conn.read_http(
            &mut self.scratch,
            MAX_REQUEST_HEAD,
            &mut self.metrics.bytes_in,
        ) {
            Ok(read) => read,
            Err(_) => {
                self.mark_dead(key);
                return;
            }
        };
        self.answer_requests(key, was_empty);
        let Some(conn) = self.conns.get_mut(key).filter(|c| !c.dead) else {
            return;
        };
        match read {
            HttpRead::Eof => {
                // A half-close (`nc -N`): answer what came, then end. A head cut short by
                // the EOF can never complete.
                conn.peer_eof = true;
                if matches!(conn.phase, Phase::Http { .. }) {
                    conn.phase = Phase::Closing;
                    self.set_deadline(key, CLOSE_LINGER);
                }
                self.mark_dirty(key);
            }
            // More may wait in the socket, and no new readiness event will say so.
            HttpRead::Full if matches!(conn.phase, Phase::Http { .. }) => self.backlog.push(key),
            HttpRead::Full | HttpRead::Drained => {}
        }
    }

    /// Parses and answers every complete request head in the buffer.
    fn answer_requests(&mut self, key: usize, was_empty: bool) {
        loop {
            let conn = &mut self.conns[key];
            let Phase::Http { buf } = &mut conn.phase else {
                return;
            };
            if buf.is_empty() {
                return;
            }
            let (request, len) = match http::parse(buf) {
                Ok(Some(parsed)) => parsed,
                Ok(None) if buf.len() >= MAX_REQUEST_HEAD => {
                    self.refuse(key, 431, "request head too large\n");
                    return;
                }
                Ok(None) => {
                    if was_empty {
                        // The first bytes of a head: it has request_timeout to complete.
                        self.set_deadline(key, self.config.request_timeout);
                    }
                    return;
                }
                Err(ParseError::TooManyHeaders) => {
                    self.refuse(key, 431, "too many header fields\n");
                    return;
                }
                Err(ParseError::Malformed) => {
                    self.refuse(key, 400, "malformed HTTP request\n");
                    return;
                }
            };
            let rest = buf.split_off(len);
            let leftover = std::mem::replace(buf, rest);
            drop(leftover);
            // The core counts what only it can see.
            self.metrics.rate_limited = self.core.messages_rate_limited();
            let ctx = Ctx {
                assets: &self.assets,
                allowed_origins: &self.config.allowed_origins,
                metrics: &self.metrics,
                draining: self.drain_deadline.is_some(),
                now: self.now.instant,
            };
            match route(&request, &ctx) {
                Route::Respond {
                    bytes,
                    keep_alive,
                    status,
                } => {
                    log::debug!(
                        "{}: {} {} -> {status}",
                        conn.peer,
                        request.method,
                        request.target
                    );
                    self.metrics.http_response(status);
                    conn.queue_response(bytes, !keep_alive);
                    self.mark_dirty(key);
                    if !keep_alive {
                        self.set_deadline(key, CLOSE_LINGER);
                        return;
                    }
                    let idle =
                        matches!(&self.conns[key].phase, Phase::Http { buf } if buf.is_empty());
                    let timeout = if idle {
                        self.config.keep_alive_timeout
                    } else {
                        self.config.request_timeout
                    };
                    self.set_deadline(key, timeout);
                }
                Route::Upgrade(accepted) => {
                    let Phase::Http { buf } = &mut conn.phase else {
                        return;
                    };
                    let leftover = std::mem::take(buf);
                    let mut head = Vec::with_capacity(160);
                    accepted.response().write_to(&mut head);
                    conn.queue_response(head, false);
                    let client = ClientId(key as u64);
                    log::info!("{} ({}) connected", accepted.user, conn.peer);
                    conn.upgrade(client, accepted.user.clone(), leftover, self.ws_config);
                    conn.deadline = None;
                    self.metrics.http_response(101);
                    self.metrics.websocket_open += 1;
                    self.metrics.websockets_total += 1;
                    self.mark_dirty(key);
                    self.feed(Input::Connect {
                        client,
                        user: accepted.user,
                        room: accepted.room,
                        protocol: accepted.protocol,
                        resume: accepted.resume,
                    });
                    // Frames that came with the request head are in tungstenite's buffer
                    // already; the socket may hold more.
                    self.read_ws(key);
                    return;
                }
            }
        }
    }

    /// Answers a request we cannot serve and closes the connection after the answer.
    fn refuse(&mut self, key: usize, status: u16, reason: &str) {
        if let Some(conn) = self.conns.get(key) {
            log::debug!(
                "{}: refused with {status}: {}",
                conn.peer,
                reason.trim_end()
            );
        }
        self.respond(key, &Response::text(status, reason).keep_alive(false));
    }

    fn respond(&mut self, key: usize, response: &Response<'_>) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        let mut bytes = Vec::new();
        response.write_to(&mut bytes);
        conn.queue_response(bytes, !response.keep_alive);
        self.metrics.http_response(response.status);
        self.set_deadline(key, CLOSE_LINGER);
        self.mark_dirty(key);
    }

    fn read_ws(&mut self, key: usize) {
        let start_bytes = self.metrics.bytes_in;
        for _ in 0..READ_BUDGET_MESSAGES {
            let Some(conn) = self.conns.get_mut(key) else {
                return;
            };
            let Some(client) = conn.client() else {
                return;
            };
            if conn.queued() > self.config.max_outbound {
                // Pongs pile up unread (a ping flood from a client that does not read): read
                // nothing more until the queue drains; flush resumes reading.
                conn.read_paused = true;
                self.mark_dirty(key);
                return;
            }
            let message = conn.read_message(&mut self.metrics.bytes_in);
            if conn.queued() > 0 {
                // A pong or a close reply is waiting.
                self.mark_dirty(key);
            }
            match message {
                Ok(None) => return,
                Ok(Some(Message::Text(text))) => {
                    self.metrics.messages_received += 1;
                    // tungstenite checked the UTF-8 already; the core checks again rather
                    // than trust a type it does not know (a linear scan, no copy).
                    match Payload::try_from(Bytes::from(text)) {
                        Ok(text) => self.feed(Input::Text { client, text }),
                        Err(_) => self.close_client(key, CloseReason::InvalidUtf8, false),
                    }
                }
                Ok(Some(Message::Binary(_))) => {
                    self.close_client(key, CloseReason::Unsupported, false);
                    return;
                }
                Ok(Some(Message::Ping(_) | Message::Pong(_))) => {
                    self.feed(Input::Activity { client });
                }
                Ok(Some(Message::Close(_))) => {
                    // tungstenite queued the reply; send it and end.
                    let conn = &mut self.conns[key];
                    if let Some((client, user)) = conn.close_ws(None, false) {
                        log::info!("{user} ({}) disconnected", conn.peer);
                        self.set_deadline(key, CLOSE_LINGER);
                        self.mark_dirty(key);
                        self.leave(client);
                    }
                    return;
                }
                Ok(Some(Message::Frame(_))) => {}
                Err(e) => {
                    self.ws_error(key, e);
                    return;
                }
            }
            if self.metrics.bytes_in - start_bytes > READ_BUDGET_BYTES {
                break;
            }
        }
        // Budget spent with input possibly left: come back next turn, after the others.
        self.backlog.push(key);
    }

    /// A read failed: answer with the close code the error deserves, or drop a connection
    /// that is already gone.
    fn ws_error(&mut self, key: usize, error: tungstenite::Error) {
        let peer = self.conns[key].peer;
        log::debug!("{peer}: websocket error: {error}");
        let kind = match &error {
            tungstenite::Error::Capacity(CapacityError::MessageTooLong { .. }) => {
                CloseReason::TooBig
            }
            tungstenite::Error::Capacity(_) => CloseReason::TooBig,
            tungstenite::Error::Utf8(_) => CloseReason::InvalidUtf8,
            tungstenite::Error::Protocol(ProtocolError::ResetWithoutClosingHandshake) => {
                self.mark_dead(key);
                return;
            }
            tungstenite::Error::Protocol(_) => CloseReason::ProtocolError,
            _ => {
                // IO errors, a finished close handshake: nothing more to say to this peer.
                self.mark_dead(key);
                return;
            }
        };
        self.close_client(key, kind, false);
    }

    /// Feeds the core one input, then everything that follows from carrying out its outputs.
    fn feed(&mut self, input: Input) {
        self.pending.push_back(input);
        self.settle();
    }

    /// Feeds pending inputs until none is left. Carrying out an output never feeds the core
    /// directly (it may queue a disconnect), so every input's outputs are drained completely
    /// before the next input, as the core's contract asks.
    fn settle(&mut self) {
        while let Some(input) = self.pending.pop_front() {
            if let Err(e) = self.core.handle_input(self.now, input) {
                // A bug in this driver, not something a client did.
                log::error!("chat core refused an input: {e}");
            }
            while let Some(output) = self.core.poll_output() {
                self.carry_out(output);
            }
        }
        self.frame_cache = None;
    }

    fn carry_out(&mut self, output: Output) {
        match output {
            Output::Send { to, payload } => {
                let key = to.0 as usize;
                let Some(queued) = self
                    .conns
                    .get(key)
                    .filter(|c| c.client() == Some(to))
                    .map(Conn::queued)
                else {
                    return;
                };
                let frame = self.encode(payload);
                if queued + frame.len() > self.config.max_outbound
                    && !self.make_room(key, frame.len())
                {
                    return;
                }
                // A live client is never dead: mark it dirty without a second lookup.
                let conn = &mut self.conns[key];
                conn.queue_frames(frame);
                if !conn.dirty {
                    conn.dirty = true;
                    self.dirty.push(key);
                }
                self.metrics.messages_delivered += 1;
            }
            Output::Ping { to } => {
                let key = to.0 as usize;
                if let Some(conn) = self.conns.get_mut(key).filter(|c| c.client() == Some(to)) {
                    conn.send_ping();
                    self.mark_dirty(key);
                }
            }
            Output::Close { client, reason } => {
                let key = client.0 as usize;
                if self
                    .conns
                    .get(key)
                    .is_some_and(|c| c.client() == Some(client))
                {
                    self.close_client(key, reason, false);
                }
            }
        }
    }

    /// A frame of `len` bytes does not fit in the connection's queue: gives the kernel what it
    /// will take now, and if that is not enough closes the client as a slow consumer. Whether
    /// the frame can be queued.
    fn make_room(&mut self, key: usize, len: usize) -> bool {
        self.seal();
        let conn = &mut self.conns[key];
        if conn.flush(&self.batch, &mut self.metrics.bytes_out) == Flushed::Gone {
            self.mark_dead(key);
            return false;
        }
        if conn.queued() + len > self.config.max_outbound {
            self.close_client(key, CloseReason::SlowConsumer, true);
            return false;
        }
        true
    }

    /// The WebSocket frame for a text payload, encoded by tungstenite once per broadcast into
    /// the turn's batch.
    fn encode(&mut self, payload: Payload) -> Span {
        if let Some((cached, span)) = &self.frame_cache {
            // The cache holds a clone of its payload, so its buffer cannot have been freed and
            // reused: equal pointer and length mean the same payload.
            if cached.same_buffer(&payload) {
                return *span;
            }
        }
        let span = self.batch.text_frame(Bytes::from(payload.clone()));
        self.frame_cache = Some((payload, span));
        span
    }

    /// Seals the turn's batch so its frames can be written. The next frame, even of the same
    /// payload, goes into a new batch.
    fn seal(&mut self) {
        self.batch.seal();
        self.frame_cache = None;
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
            if conn.dead || conn.deadline.is_none_or(|d| d > now) {
                continue; // stale entry: the deadline moved or the slot was reused
            }
            match &conn.phase {
                Phase::Http { buf } if !buf.is_empty() => {
                    self.refuse(key, 408, "request head not received in time\n");
                }
                _ => self.mark_dead(key),
            }
        }
        self.settle();
    }

    fn end_turn(&mut self) {
        // Flushing can end connections, and an ending announces itself to the others, which
        // makes more connections dirty: repeat until nothing is left to write.
        while !self.dirty.is_empty() {
            self.seal();
            let dirty = std::mem::take(&mut self.dirty);
            if self.writer.is_some()
                && self.idle_before_turn
                && dirty.len() >= PARALLEL_FLUSH_MIN
                && dirty.len() * PARALLEL_FLUSH_SHARE >= self.conns.len()
            {
                self.write_in_parallel();
            }
            for key in dirty {
                self.flush(key);
            }
            self.settle();
        }
        // Every connection with frames in a sealed batch was dirty and has resolved them.
        self.batch.clear_sealed();
        for key in std::mem::take(&mut self.dead) {
            let mut conn = self.conns.remove(key);
            self.metrics.open_connections -= 1;
            if let Err(e) = self.poll.registry().deregister(&mut conn.stream) {
                log::debug!("{}: deregister: {e}", conn.peer);
            }
        }
    }

    /// Writes every dirty connection's queue, half of them on the second writer thread, so a
    /// message to a big room reaches its last member sooner when the machine has a core to
    /// spare. Only the writes: what follows from each result is done by [`EventLoop::flush`]
    /// on this thread, in order, as usual.
    fn write_in_parallel(&mut self) {
        let Some(writer) = &self.writer else {
            return;
        };
        let batch = &self.batch;
        let mut conns: Vec<&mut Conn> = self
            .conns
            .iter_mut()
            .map(|(_, conn)| conn)
            .filter(|conn| conn.dirty && !conn.dead)
            .collect();
        let half = conns.len() / 2;
        let (mine, theirs) = conns.split_at_mut(half);
        let write_all = |conns: &mut [&mut Conn]| {
            let mut bytes_out = 0;
            for conn in conns {
                conn.write_result = Some(conn.flush(batch, &mut bytes_out));
            }
            bytes_out
        };
        let mut their_bytes = 0;
        // The scope returns once both halves are written (a panic on the writer surfaces here).
        let my_bytes = writer.in_place_scope(|scope| {
            scope.spawn(|_| their_bytes = write_all(theirs));
            write_all(mine)
        });
        self.metrics.split_flushes += 1;
        self.metrics.bytes_out += my_bytes + their_bytes;
    }

    fn flush(&mut self, key: usize) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        conn.dirty = false;
        if conn.dead {
            return;
        }
        let result = match conn.write_result.take() {
            Some(result) => result,
            None => conn.flush(&self.batch, &mut self.metrics.bytes_out),
        };
        match result {
            Flushed::Gone => {
                self.mark_dead(key);
                return;
            }
            Flushed::Blocked => conn.write_blocked = true,
            Flushed::All => {
                conn.write_blocked = false;
                if conn.peer_eof && matches!(conn.phase, Phase::Closing) {
                    // Our last bytes are out and the peer has nothing more to say.
                    self.mark_dead(key);
                    return;
                }
                if conn.read_paused {
                    conn.read_paused = false;
                    self.backlog.push(key);
                }
            }
        }
        let wanted = conn.wanted_interest();
        if wanted != conn.registered {
            match self
                .poll
                .registry()
                .reregister(&mut conn.stream, Token(key), wanted)
            {
                Ok(()) => conn.registered = wanted,
                Err(e) => {
                    log::error!("{}: reregister: {e}", conn.peer);
                    self.mark_dead(key);
                }
            }
        }
    }
}
