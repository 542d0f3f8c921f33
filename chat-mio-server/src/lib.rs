//! A real-time WebSocket chat server: a hand-rolled mio event loop that speaks HTTP/1.1
//! (httparse) and WebSocket (tungstenite) and drives the sans-IO chat core in
//! [`chat_protocol`].
//!
//! ```text
//!            ┌─ the loop thread ─────────────────────────────────────────────────────────┐
//! socket ──► │ event_loop/mod.rs: poll ─► accept.rs            new connections            │
//!            │                        ├─► http_requests.rs     heads ─► routes.rs answers │
//!            │                        │     └─► upgrade.rs     101, then Input::Connect   │
//!            │                        └─► ws_read.rs           tungstenite parses frames  │
//!            │                                   │ Input::Text                            │
//!            │ core_bridge.rs ◄──────────────────┘                                        │
//!            │   chat_protocol::ChatServer decides who gets what                          │
//!            │   Output::Send ─► one frame per broadcast in batch.rs, a span per          │
//!            │                   recipient in its write_queue.rs                          │
//!            │ flush.rs: seal the batch, one writev per connection, interest from state   │
//! socket ◄── │   (after a quiet spell half the writes go to one parked writer thread)     │
//!            │ handoff.rs ◄── events from other threads (channel + mio::Waker)            │
//!            └────────────────────────────────────────────────────────────────────────────┘
//! ```
//!
//! A connection's life is one enum (`connection.rs`): `Http` → `WebSocket` → `Closing` →
//! `Gone`; the interest it registers is derived from it. With `--tls-cert` a rustls session
//! sits between the socket and the connection (`tls.rs`): reads return plaintext, a flush
//! puts the turn's queue into the session and writes its records at once. Nothing blocks the loop thread: static
//! files are loaded before it starts, and slow work belongs on a thread of its own that hands
//! its results back through `event_loop/handoff.rs` (a channel plus the poller's waker).
//!
//! Use [`Server::bind`] and [`Server::run`]; stop it from another thread with
//! [`ServerHandle::shutdown`].
#![forbid(unsafe_code)]

mod batch;
mod connection;
mod event_loop;
mod timer;
mod tls;
mod write_queue;

// The counters behind `/metrics` are shared with chat-tokio (same families, same names).
use chat_adapter::metrics;

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use chat_protocol::ChatServer;
use mio::net::TcpListener;
use mio::{Interest, Poll, Waker};
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook_mio::v1_0::Signals;

// What both adapters share that is not IO (options, HTTP, the upgrade rules, static files,
// logs) lives in `chat-adapter`; the paths this crate always had keep working.
pub use chat_adapter::{assets, config, config_file, logging};
use chat_adapter::{client_addr, handshake, http, routes};
pub use chat_adapter::{Assets, AuthMode, Config, RoomAccess, StoreKind, SyncLevel};
use event_loop::handoff::{self, Handoff};
use event_loop::{Control, EventLoop, LISTENER, SIGNALS, WAKER};
use tls::LoadTls;

/// A bound server, ready to [`run`](Server::run).
pub struct Server {
    event_loop: EventLoop,
    local_addr: SocketAddr,
    control: Handoff<Control>,
}

impl Server {
    /// Loads the static files and binds the listening socket. Nothing is served until
    /// [`run`](Server::run).
    pub fn bind(config: Config) -> io::Result<Server> {
        let assets = chat_adapter::startup::assets(&config)?;
        let config_max_connections = config.max_connections;
        let poll = Poll::new()?;
        let mut listener = TcpListener::bind(config.bind)?;
        let local_addr = listener.local_addr()?;
        poll.registry()
            .register(&mut listener, LISTENER, Interest::READABLE)?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
        let (control, inbox) = handoff::channel(Arc::clone(&waker));
        config
            .check()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let tls = match config
            .tls_files()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?
        {
            Some(files) => {
                let server_config = files
                    .load()
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
                log::info!(
                    "serving TLS (HTTPS, wss://) with {}; SIGHUP reloads it",
                    files.cert.display()
                );
                Some(event_loop::Tls::new(files, server_config, control.clone()))
            }
            None => None,
        };
        let tokens = chat_adapter::tokens::token_verifier(&config)?;
        let api_key = api_key(&config)?;
        let core_and_store = open_store(&config, &control)?;
        let accounts = accounts(&config, &control)?;
        let signals = if config.handle_signals {
            // SIGHUP reloads the certificate; without TLS it keeps its default (it ends the
            // process), as before.
            let mut signals = if tls.is_some() {
                Signals::new([SIGINT, SIGTERM, SIGHUP])?
            } else {
                Signals::new([SIGINT, SIGTERM])?
            };
            poll.registry()
                .register(&mut signals, SIGNALS, Interest::READABLE)?;
            Some(signals)
        } else {
            None
        };
        Ok(Server {
            event_loop: EventLoop::new(
                poll,
                listener,
                config,
                assets,
                core_and_store,
                (tokens, accounts),
                api_key,
                inbox,
                (signals, tls),
                event_loop::connection_budget(config_max_connections),
            ),
            local_addr,
            control,
        })
    }

    /// The address the server listens on (useful after binding port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Calls `hook` once, on the loop thread, when a graceful shutdown begins (a signal or
    /// [`ServerHandle::shutdown`]): the command line tells systemd it is stopping.
    pub fn on_drain(&mut self, hook: impl FnOnce() + Send + 'static) {
        self.event_loop.on_drain = Some(Box::new(hook));
    }

    /// A handle that stops the server from another thread.
    pub fn handle(&self) -> ServerHandle {
        ServerHandle {
            control: self.control.clone(),
        }
    }

    /// Serves until [`ServerHandle::shutdown`]: then every WebSocket client gets close 1001
    /// "server shutting down" and a moment to answer, and `run` returns `Ok(())`.
    pub fn run(mut self) -> io::Result<()> {
        self.event_loop.run()
    }
}

/// The server API's key: `--api-key-file` or `CHAT_API_KEY`; `None` turns the API off. A key
/// shorter than 16 bytes stops the start (never printed).
fn api_key(config: &Config) -> io::Result<Option<String>> {
    let key = match (&config.api_key_file, std::env::var("CHAT_API_KEY")) {
        (Some(path), _) => std::fs::read_to_string(path)
            .map_err(|e| {
                io::Error::new(e.kind(), format!("--api-key-file {}: {e}", path.display()))
            })?
            .trim()
            .to_owned(),
        (None, Ok(key)) => key.trim().to_owned(),
        (None, Err(_)) => return Ok(None),
    };
    if key.len() < 16 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "the API key must be 16 bytes or more",
        ));
    }
    log::info!("the server API is on (/api/, Authorization: Bearer)");
    Ok(Some(key))
}

/// The nice value of the password hasher's thread (the event loop's is 0).
const HASHER_NICE: i32 = 10;

/// `--auth accounts`: the cookie key (kept in the data directory) and the password hasher's
/// thread, whose answers reach the loop through the handoff.
fn accounts(
    config: &Config,
    control: &Handoff<Control>,
) -> io::Result<Option<event_loop::Accounts>> {
    if config.auth != AuthMode::Accounts {
        return Ok(None);
    }
    if config.store != StoreKind::Sqlite {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "--auth accounts keeps users and sessions in the database: use --store sqlite",
        ));
    }
    let key = chat_store::load_or_create_key(&config.data_dir, || {
        chat_auth::SessionKey::generate().map(|key| key.to_bytes())
    })
    .map_err(|e| io::Error::new(e.kind(), format!("session key: {e}")))?;
    let control = control.clone();
    // One thread: a password check takes ~18 ms of a core, and the loop keeps the other. It
    // runs below the loop's priority (as the storage thread does): a login storm gets the CPU
    // the chat leaves over.
    let hasher = chat_auth::Hasher::start_with(
        1,
        chat_auth::password::QUEUE_BOUND,
        || {
            if let Err(e) = chat_store::lower_thread_priority(HASHER_NICE) {
                log::warn!("the password hasher keeps the process's priority: {e}");
            }
        },
        move |done| {
            let _ = control.send(Control::Hash(done));
        },
    )?;
    let lifetime = Duration::from_secs(u64::from(config.session_days) * 24 * 60 * 60);
    log::info!(
        "clients log in with built-in accounts (sessions last {} days)",
        config.session_days
    );
    Ok(Some(event_loop::Accounts::new(
        chat_auth::SessionKey::from_bytes(key),
        hasher,
        lifetime,
    )))
}

/// The chat core, and the storage thread when messages are kept on disk: the store is opened
/// before anything is served (its faults stop the start with a clear message), the core gets
/// back the rooms and the epoch it had, and the thread hands its results to the loop through
/// `control`.
/// The core and what backs it: the message store, the bans, the cluster.
type Backing = (
    ChatServer,
    Option<chat_store::RunningStore>,
    chat_adapter::bans::Bans,
    Option<(chat_cluster::RunningCluster, String)>,
);

fn open_store(config: &Config, control: &Handoff<Control>) -> io::Result<Backing> {
    let fresh_epoch = chat_adapter::startup::fresh_epoch();
    if let Some(url) = &config.redis {
        let core_config = chat_adapter::startup::core_config(config);
        return join_cluster(config, url, core_config, fresh_epoch, control);
    }
    let restored = chat_adapter::startup::restore(config, fresh_epoch)?;
    let store = match restored.store {
        Some(store) => {
            let control = control.clone();
            Some(store.start(move |completion| {
                // The loop is gone only after the store was shut down: nothing is lost here.
                let _ = control.send(Control::Store(completion));
            })?)
        }
        None => None,
    };
    Ok((restored.core, store, restored.bans, None))
}

/// `--redis`: this node joins the cluster. Redis must answer now (a node never starts alone by
/// mistake); the rooms' newest messages and who is in them are read before serving, so a
/// client resumes here as on the node it left.
fn join_cluster(
    config: &Config,
    url: &str,
    core_config: chat_protocol::Config,
    fresh_epoch: u64,
    control: &Handoff<Control>,
) -> io::Result<Backing> {
    let node = config
        .node_name
        .clone()
        .unwrap_or_else(|| format!("{}#{}", config.bind, std::process::id()));
    let mut options = chat_cluster::Options::new(url, node.clone(), fresh_epoch);
    options.prefix = config.redis_prefix.clone();
    options.log_len = config.history.max(1_000);
    options.dead_after = config.cluster_dead_after;
    options.heartbeat =
        (config.cluster_dead_after / 6).clamp(Duration::from_millis(100), Duration::from_secs(5));
    let connected = chat_cluster::connect(options)
        .map_err(|e| io::Error::new(io::ErrorKind::ConnectionRefused, e.to_string()))?;
    let rooms = connected
        .load_rooms(config.history)
        .map_err(|e| io::Error::other(e.to_string()))?;
    let presence = connected
        .load_presence()
        .map_err(|e| io::Error::other(e.to_string()))?;
    log::info!(
        "joined the cluster at {} as {node:?}: epoch {}, {} rooms",
        chat_cluster::redacted(url),
        connected.epoch,
        rooms.len()
    );
    let mut core = ChatServer::new(core_config.with_epoch(connected.epoch).with_cluster(true));
    core.restore(event_loop::cluster_rooms(rooms), 0);
    core.restore_presence(event_loop::restored_presence(presence));
    let control = control.clone();
    let cluster = connected.cluster.start(move |event| {
        let _ = control.send(Control::Cluster(event));
    })?;
    Ok((
        core,
        None,
        chat_adapter::bans::Bans::default(),
        Some((cluster, node)),
    ))
}

/// Stops a running [`Server`] from any thread.
#[derive(Clone)]
pub struct ServerHandle {
    control: Handoff<Control>,
}

impl ServerHandle {
    /// Asks the server to stop; returns at once. [`Server::run`] returns when it has.
    pub fn shutdown(&self) {
        // A server that has stopped already has nothing left to shut down.
        let _ = self.control.send(Control::Shutdown);
    }
}
