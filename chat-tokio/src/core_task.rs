//! The core task: the one owner of the [`ChatServer`]. Every input arrives here through a
//! channel, is stamped with the time read once, and every output is carried out before the
//! next input (the core's run-loop contract): frames go to the connections' writers, records
//! to the storage thread. It never blocks and never sleeps: it waits in one `select!` on its
//! two inboxes and the core's next deadline.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use chat_adapter::handshake::Accepted;
use chat_adapter::store_records::{completion_input, to_store};
use chat_protocol::{ChatServer, ClientId, CloseReason, Input, Now, Output, Payload, StoreFailed};
use tokio::sync::mpsc;
use tokio::time::sleep_until;
use tungstenite::Utf8Bytes;

use crate::chat::Shared;
use crate::connection::{frame_len, ConnHandle, Out};

/// What the connections tell the core task (through the bounded inbox).
pub(crate) enum Inbound {
    /// A WebSocket is up: register its writer and tell the core.
    Connect(Box<Joined>),
    Text {
        client: ClientId,
        text: Payload,
    },
    /// A ping or a pong: proof of life.
    Activity {
        client: ClientId,
    },
    /// The reader is done: the peer left (`None`), or broke a rule (the close it deserves).
    Ended {
        client: ClientId,
        reason: Option<CloseReason>,
    },
}

/// A new chat client.
pub(crate) struct Joined {
    pub client: ClientId,
    pub conn: ConnHandle,
    pub accepted: Accepted,
    /// Token mode: when the token expires.
    pub expires: Option<Instant>,
    pub admin: bool,
}

/// What other threads and [`crate::Chat::shutdown`] tell the core task (unbounded).
#[derive(Debug)]
pub(crate) enum Control {
    Store(chat_store::Completion),
    Shutdown,
}

pub(crate) struct CoreTask {
    core: ChatServer,
    conns: HashMap<ClientId, ConnHandle>,
    shared: Arc<Shared>,
    store: Option<chat_store::RunningStore>,
    /// Inputs not yet fed (a disconnect found while carrying out outputs, a token checked).
    pending: VecDeque<Input>,
    /// The last broadcast payload and its frame: a broadcast's outputs come one after the
    /// other, so each is encoded (checked as UTF-8) once and shared by every recipient.
    frame_cache: Option<(Payload, Utf8Bytes)>,
    /// Set when a graceful shutdown began: the instant by which it ends.
    drain_deadline: Option<Instant>,
}

fn now() -> Now {
    Now {
        instant: Instant::now(),
        wall: chrono::Utc::now(),
    }
}

impl CoreTask {
    pub fn new(
        core: ChatServer,
        store: Option<chat_store::RunningStore>,
        shared: Arc<Shared>,
    ) -> Self {
        CoreTask {
            core,
            conns: HashMap::new(),
            shared,
            store,
            pending: VecDeque::new(),
            frame_cache: None,
            drain_deadline: None,
        }
    }

    /// Runs until a shutdown has drained (every connection gone, or the timeout); returns
    /// the store for the caller to close (that blocks: not here).
    pub async fn run(
        mut self,
        mut inbox: mpsc::Receiver<Inbound>,
        mut control: mpsc::UnboundedReceiver<Control>,
    ) -> Option<chat_store::RunningStore> {
        loop {
            if let Some(deadline) = self.drain_deadline {
                if self.shared.open() == 0 || Instant::now() >= deadline {
                    break;
                }
            }
            let wake = [self.core.poll_timeout(), self.drain_deadline]
                .into_iter()
                .flatten()
                .min();
            tokio::select! {
                Some(message) = control.recv() => self.control(message),
                Some(message) = inbox.recv() => self.inbound(message),
                () = sleep_until_some(wake) => {
                    if self.core.poll_timeout().is_some_and(|t| t <= Instant::now()) {
                        self.feed(Input::Timeout);
                    }
                }
                () = self.shared.all_gone.notified(), if self.drain_deadline.is_some() => {}
                else => break,
            }
        }
        log::info!("chat core stopped");
        self.store.take()
    }

    fn control(&mut self, message: Control) {
        match message {
            Control::Shutdown => self.begin_drain(),
            // No account queries here (`--auth accounts` is refused at start).
            Control::Store(completion) => {
                if let Some(input) = completion_input(completion) {
                    self.feed(input);
                }
            }
        }
    }

    fn inbound(&mut self, message: Inbound) {
        match message {
            Inbound::Connect(joined) => self.connect(*joined),
            Inbound::Text { client, text } => {
                if self.conns.contains_key(&client) {
                    self.shared.metrics().messages_received += 1;
                    self.feed(Input::Text { client, text });
                }
            }
            Inbound::Activity { client } => {
                if self.conns.contains_key(&client) {
                    self.feed(Input::Activity { client });
                }
            }
            Inbound::Ended {
                client,
                reason: Some(reason),
            } => {
                self.close_client(client, reason, None, false);
                self.settle();
            }
            Inbound::Ended {
                client,
                reason: None,
            } => {
                if let Some(conn) = self.conns.remove(&client) {
                    log::info!(
                        peer = conn.peer.as_str(), user = conn.user.as_str();
                        "{} ({}) disconnected", conn.user, conn.peer
                    );
                    self.feed(Input::Disconnect { client });
                }
            }
        }
    }

    fn connect(&mut self, joined: Joined) {
        let Joined {
            client,
            conn,
            accepted,
            expires,
            admin,
        } = joined;
        self.conns.insert(client, conn);
        self.pending
            .extend(accepted.connect_inputs(client, expires, admin));
        self.settle();
        if self.drain_deadline.is_some() {
            // Upgraded just as the drain began: it gets the same goodbye as everyone.
            self.close_client(client, CloseReason::Shutdown, None, false);
            self.settle();
        }
    }

    /// Feeds the core one input, then everything that follows from carrying out its outputs.
    fn feed(&mut self, input: Input) {
        self.pending.push_back(input);
        self.settle();
    }

    /// Feeds pending inputs until none is left, each one's outputs drained completely before
    /// the next (carrying out an output never feeds the core directly).
    fn settle(&mut self) {
        while let Some(input) = self.pending.pop_front() {
            if let Err(e) = self.core.handle_input(now(), input) {
                // A bug in this adapter, not something a client did.
                log::error!("chat core refused an input: {e}");
            }
            while let Some(output) = self.core.poll_output() {
                self.carry_out(output);
            }
        }
        self.frame_cache = None;
        // The core counts what only it can see.
        let rate_limited = self.core.messages_rate_limited();
        self.shared.metrics().rate_limited = rate_limited;
    }

    fn carry_out(&mut self, output: Output) {
        match output {
            Output::Send { to, payload } => self.send(to, payload),
            // Not from `poll_output` (it gives one `Send` per recipient), but served all the same.
            Output::SendMany { to, payload } => {
                for to in to {
                    self.send(to, payload.clone());
                }
            }
            Output::Ping { to } => {
                if let Some(conn) = self.conns.get(&to) {
                    conn.send(Out::Ping);
                }
            }
            Output::Close { client, reason } => self.close_client(client, reason, None, false),
            Output::CloseWith {
                client,
                reason,
                text,
            } => self.close_client(client, reason, Some(&text), false),
            Output::Ban {
                user,
                until,
                reason,
            } => chat_adapter::bans::record(
                &mut self.shared.bans(),
                self.store.as_ref(),
                user,
                until,
                reason,
            ),
            Output::DeleteStored { room, id } => {
                log::info!("message {id} of {room} deleted by an admin");
                if let Some(store) = &self.store {
                    store.delete_text(room.as_str().to_owned(), id);
                }
            }
            Output::Store(record) => match &self.store {
                Some(store) => store.append(record.ticket.0, to_store(record)),
                None => log::error!("the core asked to store a message without a store"),
            },
            Output::Fetch {
                ticket,
                room,
                before,
                limit,
                ..
            } => match &self.store {
                Some(store) => {
                    store.fetch_before(ticket.0, room.as_str().to_owned(), before, limit)
                }
                None => self.pending.push_back(Input::Fetched {
                    ticket,
                    result: Err(StoreFailed {
                        reason: "no message store".to_owned(),
                    }),
                }),
            },
            Output::VerifyToken { ticket, token, .. } => {
                let result = chat_adapter::tokens::verify_refresh(
                    self.shared.tokens.as_ref(),
                    now(),
                    &token,
                );
                drop(token);
                self.pending
                    .push_back(Input::TokenVerified { ticket, result });
            }
            // The server API and cluster mode are refused at start: the core never asks for
            // these here.
            other => log::error!("chat core output this adapter does not serve: {other:?}"),
        }
    }

    /// Queues a frame for `to`, unless its queue is over `max_outbound`: then it is closed
    /// as a slow consumer, its frames not yet started dropped.
    fn send(&mut self, to: ClientId, payload: Payload) {
        let Some(queued) = self
            .conns
            .get(&to)
            .map(|c| c.queued.load(Ordering::Acquire))
        else {
            return;
        };
        let len = frame_len(payload.len());
        if queued + len > self.shared.config.max_outbound {
            self.close_client(to, CloseReason::SlowConsumer, None, true);
            return;
        }
        let text = self.encode(payload);
        if let Some(conn) = self.conns.get(&to) {
            conn.queued.fetch_add(len, Ordering::AcqRel);
            conn.send(Out::Text(text, len));
            self.shared.metrics().messages_delivered += 1;
        }
    }

    /// The frame text for a payload, once per broadcast: the shared bytes, checked as UTF-8
    /// once (no copy), a refcount bump for every other recipient.
    fn encode(&mut self, payload: Payload) -> Utf8Bytes {
        if let Some((cached, text)) = &self.frame_cache {
            // The cache holds a clone of its payload, so its buffer cannot have been freed and
            // reused: the same buffer means the same payload.
            if cached.same_buffer(&payload) {
                return text.clone();
            }
        }
        let bytes: bytes::Bytes = payload.clone().into();
        // A Payload is UTF-8 by construction, so this cannot fail; if it ever did, the
        // (copied) text is still what the core meant.
        let text = Utf8Bytes::try_from(bytes)
            .unwrap_or_else(|_| Utf8Bytes::from(payload.as_str().to_owned()));
        self.frame_cache = Some((payload, text.clone()));
        text
    }

    /// Sends a close frame for `reason` (or the core's `text`) and ends the client: the core
    /// hears its Disconnect next. `drop_queued`: frames it has not started to receive are
    /// dropped (a slow consumer would never get to the close frame).
    fn close_client(
        &mut self,
        client: ClientId,
        reason: CloseReason,
        text: Option<&str>,
        drop_queued: bool,
    ) {
        let Some(conn) = self.conns.remove(&client) else {
            return;
        };
        let text = text.unwrap_or(reason.text());
        log::info!("{} ({}) closed by the server: {text}", conn.user, conn.peer);
        self.shared.metrics().closed(reason);
        conn.close(reason.code(), text, drop_queued);
        self.pending.push_back(Input::Disconnect { client });
    }

    /// Graceful shutdown: upgrades and `/readyz` answer 503 from now on, every chat client gets
    /// close 1001, and the task ends once they are gone or the timeout passed.
    fn begin_drain(&mut self) {
        if self.drain_deadline.is_some() {
            return;
        }
        self.shared.draining.store(true, Ordering::Release);
        log::info!(
            "draining {} chat clients (at most {:?})",
            self.conns.len(),
            self.shared.config.shutdown_timeout
        );
        self.drain_deadline = Some(Instant::now() + self.shared.config.shutdown_timeout);
        let clients: Vec<ClientId> = self.conns.keys().copied().collect();
        for client in clients {
            self.close_client(client, CloseReason::Shutdown, None, false);
        }
        self.settle();
    }
}

/// Resolves at `at`, or never.
async fn sleep_until_some(at: Option<Instant>) {
    match at {
        Some(at) => sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}
