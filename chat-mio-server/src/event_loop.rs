//! The event loop: one thread, one `mio::Poll`, every connection in a `Slab`.
//!
//! One loop turn:
//! 1. wait for readiness (or the next deadline);
//! 2. for each event: accept, or read the connection until WouldBlock and feed what it said
//!    to the chat core (`ChatServer`), turning the core's outputs into buffered frames;
//! 3. fire due deadlines;
//! 4. flush every connection that got bytes this turn, once: one syscall carries all of them;
//! 5. report connections that ended to the core, then remove them.

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chat_protocol::{ChatServer, ClientId, Input, Now, Output};
use chrono::Utc;
use mio::net::TcpListener;
use mio::{Events, Interest, Poll, Token, Waker};
use slab::Slab;
use tungstenite::error::ProtocolError;
use tungstenite::protocol::WebSocketConfig;
use tungstenite::Message;

use crate::assets::Assets;
use crate::conn::{Conn, Flushed, Phase};
use crate::http::{self, ParseError, Response};
use crate::routes::{route, Route};
use crate::timer::Timers;

pub const LISTENER: Token = Token(usize::MAX);
pub const WAKER: Token = Token(usize::MAX - 1);

/// Largest HTTP request head.
const MAX_REQUEST_HEAD: usize = 8 * 1024;
/// How long a closing connection may linger to receive the peer's remaining bytes.
const CLOSE_LINGER: Duration = Duration::from_secs(2);
/// Grace period for clients to answer the close frames sent at shutdown.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);
/// Messages read from one connection per turn before the others get their turn.
const READ_BUDGET: usize = 64;

pub struct EventLoop {
    pub poll: Poll,
    pub listener: TcpListener,
    pub conns: Slab<Conn>,
    pub core: ChatServer,
    pub assets: Assets,
    pub ws_config: WebSocketConfig,
    pub shutdown: Arc<AtomicBool>,
    pub waker: Arc<Waker>,
    timers: Timers,
    /// Connections with bytes to write this turn.
    dirty: Vec<usize>,
    /// Connections that still had input when their read budget ran out.
    backlog: Vec<usize>,
    /// Connections that ended this turn.
    dead: Vec<usize>,
    scratch: Box<[u8]>,
}

impl EventLoop {
    pub fn new(
        poll: Poll,
        listener: TcpListener,
        core: ChatServer,
        assets: Assets,
        ws_config: WebSocketConfig,
        waker: Arc<Waker>,
    ) -> Self {
        EventLoop {
            poll,
            listener,
            conns: Slab::new(),
            core,
            assets,
            ws_config,
            shutdown: Arc::new(AtomicBool::new(false)),
            waker,
            timers: Timers::default(),
            dirty: Vec::new(),
            backlog: Vec::new(),
            dead: Vec::new(),
            scratch: vec![0; 16 * 1024].into_boxed_slice(),
        }
    }

    /// Runs until [`ServerHandle::shutdown`](crate::ServerHandle::shutdown).
    pub fn run(&mut self) -> io::Result<()> {
        let mut events = Events::with_capacity(1024);
        loop {
            let timeout = self.poll_timeout(Instant::now());
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            let backlog = std::mem::take(&mut self.backlog);
            for key in backlog {
                self.readable(key);
            }
            for event in events.iter() {
                match event.token() {
                    LISTENER => self.accept(),
                    WAKER => {}
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
            if self.shutdown.load(Ordering::Acquire) {
                return self.drain_and_stop();
            }
            self.fire_timers(Instant::now());
            self.end_turn();
        }
    }

    fn poll_timeout(&self, now: Instant) -> Option<Duration> {
        if !self.backlog.is_empty() {
            return Some(Duration::ZERO);
        }
        let next = [self.timers.next(), self.core.poll_timeout()]
            .into_iter()
            .flatten()
            .min()?;
        // Round up so we do not wake a hair early and spin.
        Some(next.saturating_duration_since(now) + Duration::from_millis(1))
    }

    fn now() -> Now {
        Now {
            instant: Instant::now(),
            wall: Utc::now(),
        }
    }

    fn accept(&mut self) {
        loop {
            match self.listener.accept() {
                Ok((mut stream, peer)) => {
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
                    log::debug!("{peer}: accepted");
                    entry.insert(Conn::new(stream, peer));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    // Typically EMFILE: leave the rest in the backlog; the listener stays
                    // readable, so the next readiness event retries.
                    log::error!("accept failed: {e}");
                    return;
                }
            }
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

    fn mark_dead(&mut self, key: usize) {
        if let Some(conn) = self.conns.get_mut(key) {
            if !conn.dead {
                conn.dead = true;
                self.dead.push(key);
                if let Some(client) = conn.client() {
                    log::info!("{} ({}) disconnected", user_of(conn), conn.peer);
                    self.feed(Input::Disconnect { client });
                }
            }
        }
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
            Phase::Closing => match conn.discard_input(&mut self.scratch) {
                Ok(true) => {}
                Ok(false) | Err(_) => self.mark_dead(key),
            },
        }
    }

    fn read_http(&mut self, key: usize) {
        let conn = &mut self.conns[key];
        match conn.read_http(&mut self.scratch, MAX_REQUEST_HEAD) {
            Ok(true) => {}
            Ok(false) | Err(_) => {
                // The peer is gone; any half-sent request dies with it.
                self.mark_dead(key);
                return;
            }
        }
        loop {
            let conn = &mut self.conns[key];
            let Phase::Http { buf } = &mut conn.phase else {
                return;
            };
            let (request, len) = match http::parse(buf) {
                Ok(Some(parsed)) => parsed,
                Ok(None) if buf.len() >= MAX_REQUEST_HEAD => {
                    self.refuse(key, 431, "request head too large\n");
                    return;
                }
                Ok(None) => return,
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
            *buf = rest;
            match route(&request, &self.assets) {
                Route::Respond { bytes, keep_alive } => {
                    log::debug!("{}: {} {}", conn.peer, request.method, request.target);
                    conn.queue_response(&bytes, !keep_alive);
                    self.mark_dirty(key);
                    if !keep_alive {
                        return;
                    }
                }
                Route::Upgrade(accepted) => {
                    let leftover = std::mem::take(buf);
                    let mut head = Vec::with_capacity(160);
                    accepted.response().write_to(&mut head);
                    conn.queue_response(&head, false);
                    let client = ClientId(key as u64);
                    log::info!("{} ({}) connected", accepted.user, conn.peer);
                    conn.upgrade(client, accepted.user.clone(), leftover, self.ws_config);
                    self.mark_dirty(key);
                    self.feed(Input::Connect {
                        client,
                        user: accepted.user,
                    });
                    // Frames that came with the request head are already in tungstenite's
                    // buffer; the socket may hold more.
                    self.read_ws(key);
                    return;
                }
            }
        }
    }

    /// Answers a request we cannot serve and closes the connection after the answer.
    fn refuse(&mut self, key: usize, status: u16, reason: &str) {
        let conn = &mut self.conns[key];
        log::debug!(
            "{}: refused with {status}: {}",
            conn.peer,
            reason.trim_end()
        );
        let mut bytes = Vec::new();
        Response::text(status, reason)
            .keep_alive(false)
            .write_to(&mut bytes);
        conn.queue_response(&bytes, true);
        conn.phase = Phase::Http { buf: Vec::new() };
        self.mark_dirty(key);
    }

    fn read_ws(&mut self, key: usize) {
        for _ in 0..READ_BUDGET {
            let conn = &mut self.conns[key];
            let Some(client) = conn.client() else {
                return;
            };
            match conn.read_message() {
                Ok(None) => return,
                Ok(Some(Message::Text(text))) => self.feed(Input::Text { client, text }),
                Ok(Some(Message::Binary(_))) => {
                    conn.send_close(1003, "binary frames are not supported");
                    self.mark_dirty(key);
                }
                // tungstenite queued the pong or the close reply; get it written.
                Ok(Some(Message::Ping(_) | Message::Close(_))) => self.mark_dirty(key),
                Ok(Some(Message::Pong(_) | Message::Frame(_))) => {}
                Err(e) => {
                    log::debug!("{}: websocket ended: {e}", conn.peer);
                    self.mark_dead(key);
                    return;
                }
            }
        }
        // Budget spent with input possibly left: come back next turn, after the others.
        self.backlog.push(key);
    }

    /// Feeds the core one input and carries out everything it asks for.
    fn feed(&mut self, input: Input) {
        if let Err(e) = self.core.handle_input(Self::now(), input) {
            // A bug in this driver, not something a client did.
            log::error!("chat core refused an input: {e}");
        }
        while let Some(output) = self.core.poll_output() {
            match output {
                Output::Send { to, payload } => {
                    let key = to.0 as usize;
                    let Some(conn) = self.conns.get_mut(key) else {
                        continue;
                    };
                    match conn.send_text(payload) {
                        Ok(()) => self.mark_dirty(key),
                        // We already sent a close frame: the client is on its way out and will
                        // be reported by the read side; it gets no more frames.
                        Err(
                            tungstenite::Error::Protocol(ProtocolError::SendAfterClosing)
                            | tungstenite::Error::AlreadyClosed,
                        ) => {}
                        Err(e) => {
                            log::debug!("{}: cannot queue a frame: {e}", conn.peer);
                            self.mark_dead(key);
                        }
                    }
                }
                Output::Close {
                    client,
                    code,
                    reason,
                } => {
                    let key = client.0 as usize;
                    if let Some(conn) = self.conns.get_mut(key) {
                        conn.send_close(code, reason);
                        self.mark_dirty(key);
                    }
                }
            }
        }
    }

    fn fire_timers(&mut self, now: Instant) {
        if self.core.poll_timeout().is_some_and(|t| t <= now) {
            self.feed(Input::Timeout);
        }
        for key in self.timers.expired(now) {
            let due = self
                .conns
                .get(key)
                .and_then(|c| c.deadline)
                .is_some_and(|d| d <= now);
            if due {
                self.mark_dead(key);
            }
        }
    }

    fn end_turn(&mut self) {
        // Flushing can end connections, and ending one announces it to the others, which
        // makes more connections dirty: repeat until nothing is left to write.
        while !self.dirty.is_empty() {
            for key in std::mem::take(&mut self.dirty) {
                self.flush(key);
            }
        }
        for key in std::mem::take(&mut self.dead) {
            let mut conn = self.conns.remove(key);
            if let Err(e) = self.poll.registry().deregister(&mut conn.stream) {
                log::debug!("{}: deregister: {e}", conn.peer);
            }
        }
    }

    fn flush(&mut self, key: usize) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        conn.dirty = false;
        if conn.dead {
            return;
        }
        let was_closing = matches!(conn.phase, Phase::Closing);
        match conn.flush() {
            Flushed::Gone => {
                self.mark_dead(key);
                return;
            }
            Flushed::Blocked => conn.write_blocked = true,
            Flushed::All => conn.write_blocked = false,
        }
        if !was_closing && matches!(conn.phase, Phase::Closing) {
            let at = Instant::now() + CLOSE_LINGER;
            conn.deadline = Some(at);
            self.timers.schedule(at, key);
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

    /// Closes every WebSocket with 1001, gives clients a moment to answer, then returns.
    fn drain_and_stop(&mut self) -> io::Result<()> {
        let keys: Vec<usize> = self.conns.iter().map(|(k, _)| k).collect();
        for &key in &keys {
            let conn = &mut self.conns[key];
            if conn.client().is_some() {
                conn.send_close(1001, "server shutting down");
            }
            self.mark_dirty(key);
        }
        self.end_turn();
        let deadline = Instant::now() + SHUTDOWN_GRACE;
        let mut events = Events::with_capacity(1024);
        while self.conns.iter().any(|(_, c)| c.client().is_some()) {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            self.poll.poll(&mut events, Some(deadline - now))?;
            for event in events.iter() {
                let Token(key) = event.token();
                if key != LISTENER.0 && key != WAKER.0 {
                    self.readable(key);
                    self.mark_dirty(key);
                }
            }
            self.end_turn();
        }
        Ok(())
    }
}

fn user_of(conn: &Conn) -> &str {
    match &conn.phase {
        Phase::WebSocket { user, .. } => user,
        _ => "-",
    }
}
