//! The chat server on tokio and axum: a second runtime adapter for the sans-IO core in
//! [`chat_protocol`], next to the hand-rolled mio loop of `chat-mio-server`. Same options
//! ([`chat_adapter::Config`]), same answers, same frames and close codes; an axum [`Router`]
//! to mount in an existing app.
//!
//! # What it owns, what it never does
//!
//! It owns the sockets (its own accept loop, hyper for HTTP, tokio-tungstenite for WebSocket
//! framing), the tasks, the timers and the channels between them. It decides nothing about the
//! chat: who gets what, pings, idle closes, rate limits and history are the core's; what a
//! request is answered, the upgrade rules, the token checks and the close-code table are
//! [`chat_adapter`]'s, shared with the mio server. It never blocks a runtime worker (the store
//! is opened on a blocking thread and runs on its own thread; its shutdown is joined on a
//! blocking thread), and the core task never sleeps: it waits for its inboxes or the core's
//! next deadline.
//!
//! # Tasks and channels
//!
//! ```text
//!   accept.rs: counted at accept (503 beyond --max-connections), a task per connection
//!     └─► http_conn.rs: heads read and checked (431/400/408, timeouts), linger at close
//!          └─► hyper http1 ─► router.rs ─► chat_adapter::routes::route ─► http_answer.rs
//!               (request_head.rs copies the head)      files, health, metrics, refusals
//!                    └─► upgrade.rs: limits, token, bans ─► 101 ─► connection.rs
//!
//!   per WebSocket:  reader task ──Inbound──┐ bounded mpsc (INBOX_BOUND): a flooded core
//!                                          │ makes the readers wait, not buffer
//!   storage thread ──Control::Store──┐     │
//!   Chat::shutdown ──Control::Shutdown┤    ▼
//!                     unbounded mpsc └─► core task (core_task.rs): the one ChatServer
//!                                          │  handle_input(now, input); drain poll_output();
//!                                          │  select! { inboxes, sleep_until(poll_timeout) }
//!                                          ▼
//!   per WebSocket:  writer task ◄──Out── unbounded mpsc, bounded by bytes (`queued`)
//!                   feed every waiting frame, one flush per batch
//! ```
//!
//! One task owns the [`chat_protocol::ChatServer`]. Every input is stamped with
//! [`chat_protocol::Now`] read by this adapter (`Instant::now()`, `chrono::Utc::now()`), and
//! after each one the core's outputs are drained completely: a `Send` is queued to the
//! recipient's writer (the payload is made a tungstenite `Utf8Bytes` once per broadcast, and
//! every recipient's frame shares its bytes), `Ping`, `Close` and `CloseWith` go through the
//! same writer, `Store`/`Fetch`/`Ban`/`DeleteStored` go to the storage thread (`chat-store`),
//! whose completions come back through the unbounded control channel. The core's deadline
//! (heartbeats, idle closes, token expiry, resume waits) is a `sleep_until` in the same
//! `select!`; when it fires the core gets `Input::Timeout`.
//!
//! # Slow consumers and backpressure
//!
//! - **Outbound, per connection**: the writer's channel is unbounded, but its bytes are
//!   counted (an `AtomicUsize` per connection, frame headers included) and checked by the core
//!   task before each frame, as the mio server does: a frame that would take the queue past
//!   `--max-outbound` closes the client with `CloseReason::SlowConsumer` (1008); frames not yet
//!   handed to tungstenite are dropped, the close frame goes out. The writer subtracts a
//!   batch's bytes once they are flushed to the socket, so a peer that does not read fills its
//!   queue. After any close the connection has 5 s to get its close frame out; then, as on the
//!   mio server, its write side is shut (the peer reads an EOF after the close frame, even if
//!   it never answers it) and what the peer still sends is read and dropped until its EOF or
//!   5 s more, so the socket is never closed on unread bytes (a reset).
//! - **Inbound**: readers hand their inputs to the core through a bounded channel; when the core
//!   falls behind, readers wait and their sockets' windows fill. tungstenite enforces
//!   `--max-message-size` on a whole message and on any one frame (the same limits as the
//!   mio server, `chat_adapter::ws_rules`); a message over it closes with 1009.
//! - **Memory**: this adapter bounds memory by the per-connection `--max-outbound` and the
//!   core's history limits (`--history`, `--history-bytes`, `--max-rooms`) only.
//!   `--memory-budget` is accepted (it has a default) but not enforced here: there is no
//!   server-wide shedding of the largest messages being received.
//!
//! # Unsupported options, and why
//!
//! [`Chat::start`] refuses these with `InvalidInput` and a one-line reason:
//!
//! - `--tls-cert`/`--tls-key`: terminate TLS in a reverse proxy, or serve the router with
//!   axum-server/rustls in your app (an embedding app owns its listener and its TLS).
//! - `--redis` (cluster mode): the cluster bridge is wired into the mio loop only; run
//!   chat-mio-server for a cluster.
//! - `--auth accounts`: built-in accounts need the login and session endpoints, which only the
//!   mio server serves; use `--auth token` (your app signs the tokens) or chat-mio-server.
//! - `--api-key-file` / `CHAT_API_KEY` (the server API, `/api/`): not ported; unset it, or run
//!   chat-mio-server.
//!
//! # Behaviours that differ from the mio server, and why
//!
//! The chat itself does not differ: the same frames in the same order, the same close codes and
//! reasons, the same answers from `chat_adapter::routes` (files, ETag/304, `/healthz`,
//! `/readyz`, `/metrics`, 404, 405, 400, 403, 426, 503 while draining) and the same upgrade
//! refusals (503 full, 429 per address, 401/403 tokens and bans). [`serve`] and
//! [`RunningServer`] also handle connections as the mio server does (`accept.rs`,
//! `http_conn.rs`): every TCP connection counts against `--max-connections` and, unless it
//! comes from a trusted proxy (counted under the address it forwards for, at the upgrade),
//! `--max-connections-per-ip` at accept (a `503` or `429` and a close beyond them); request
//! heads are read and checked before hyper sees them, so a head over 8 KiB or 64 header lines
//! gets `431`, an unparseable one (HTTP/2, HTTP/0.9, garbage, a TLS hello) `400`, one
//! announcing a body the routes' `400`/`405`, one not finished within `--request-timeout`
//! `408`, all with the mio server's texts; a connection that sends nothing within
//! `--request-timeout`, or nothing new within `--keep-alive-timeout` of its last answer, is
//! closed; a request followed by a half-close is answered; every close shuts the write side and
//! reads until the peer's EOF or 5 s. What still differs:
//!
//! - `--memory-budget` is accepted (it has a default) but not enforced: memory is bounded by
//!   the per-connection `--max-outbound` and the core's history limits only.
//! - `/metrics` has the mio server's families (`chat_adapter::metrics`), but those that only
//!   mean something in the mio loop stay 0 or empty: `chat_split_flushes_total` (there is no
//!   second writer thread), `chat_flush_bytes` and `chat_delivery_latency_seconds` (writes are
//!   per connection task, not per loop turn), the `chat_memory_*` families (no budget), logins
//!   and cluster links (not supported here).
//! - Answers that hyper writes (everything but the refusals above) have an `HTTP/1.0` status
//!   line for an HTTP/1.0 request (the mio server always writes `HTTP/1.1`), header names in
//!   lower case (`sec-websocket-accept`), as HTTP allows, a `Date` header and
//!   `Server: chat-tokio`. The refusals written before hyper sees the request are the mio
//!   server's bytes, with `Server: chat-tokio`.
//! - An app that serves [`Chat::router`] with its own server (axum::serve, hyper) gets its
//!   server's HTTP handling instead of the above: `--max-connections` and
//!   `--max-connections-per-ip` then count WebSockets, at the upgrade, and the head limits (within hyper's own: about 400 KB, 100 headers), timeouts
//!   and linger are whatever that server does. `router.rs` still answers heads over 64 header
//!   lines or 8 KiB that reach it with the mio server's `431`. Its `/metrics` then counts no
//!   TCP connections and no bytes (those are counted in `serve`'s connections).
//! - Events of different connections reach the core in the order their tasks notice them, not
//!   strictly in the order they happened: a socket dropped without a close frame just before
//!   another client's handshake can be noticed after that client joined, which then hears the
//!   departure (the mio loop, one thread over one poller, sees them in order). A client's own
//!   join is ordered: the core hears it before the `101` is written, as on the mio server.
//! - At shutdown, HTTP connections get hyper's graceful shutdown and are waited for up to
//!   `--shutdown-timeout`, then cut.
//! - `--handle-signals` is the binary's: `chat-tokio-server` always stops on SIGINT/SIGTERM (a
//!   second one stops at once); [`serve`] and [`RunningServer`] stop when told, whatever it
//!   says (an embedding app owns its signals).
//!
//! # Mounting
//!
//! [`Chat::router`] has the routes `/`, `/static/{*file}`, `/ws/{client_id}`, `/healthz`,
//! `/readyz` and `/metrics`, and no fallback (an app's own is kept; two cannot be merged).
//!
//! - Under a prefix: `Router::nest_service("/chat", chat.router())`. The chat is at `/chat/`,
//!   and `GET /chat` redirects there (308, query kept): the page resolves its WebSocket and
//!   static URLs relative to itself, so it must be loaded from `/chat/`. (The handler compares
//!   the nested path with axum's `OriginalUri`, so this works at any prefix.)
//! - `Router::nest("/chat", chat.router())` serves every route but the page: axum 0.8's `nest`
//!   maps a nested `/` to `/chat` only, never `/chat/`, so `/chat` redirects to a `/chat/` that
//!   the app answers 404. Use `nest_service`, or add a `/chat/` route of your own.
//! - At the root: `.merge(chat.router())` (no redirect: the page is `/`).
//!
//! The peer address comes from `ConnectInfo<SocketAddr>` (serve with
//! `into_make_service_with_connect_info::<SocketAddr>()`); without it every client counts as
//! `127.0.0.1` (the per-address limit then applies to all of them together, and
//! `--trusted-proxy 127.0.0.1` would believe every `X-Forwarded-For`).
//! [`serve`] and [`RunningServer`] serve the chat alone, with a fallback that answers every
//! other path as the mio server does.
//!
//! ```no_run
//! # async fn app() -> std::io::Result<()> {
//! let chat = chat_tokio::Chat::start(chat_adapter::Config::default()).await?;
//! let app = axum::Router::new().nest_service("/chat", chat.router());
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
//! axum::serve(listener, app.into_make_service_with_connect_info::<std::net::SocketAddr>())
//!     .await?;
//! chat.shutdown().await;
//! # Ok(())
//! # }
//! ```
#![forbid(unsafe_code)]

mod accept;
mod chat;
mod connection;
mod core_task;
mod http_answer;
mod http_conn;
mod options;
mod reader;
mod request_head;
mod router;
mod serve;
mod upgrade;
mod writer;

pub use axum::Router;
pub use chat::Chat;
pub use chat_adapter::Config;
pub use serve::{serve, RunningServer};
