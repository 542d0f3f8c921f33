//! [`Chat`]: what a running chat shares between its HTTP handlers, its connections' tasks and
//! its core task, and how it starts and stops.

use std::io;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use chat_adapter::bans::Bans;
use chat_adapter::client_addr::ClientAddrs;
use chat_adapter::metrics::Metrics;
use chat_adapter::{Assets, Config};
use chat_auth::TokenVerifier;
use tokio::sync::{mpsc, Notify};
use tokio::task::JoinHandle;
use tungstenite::protocol::WebSocketConfig;

use crate::core_task::{CoreTask, Inbound};

/// How many inputs (messages read, connects) may wait for the core task: past that, readers
/// wait (a flooded core pushes back on the sockets instead of buffering without bound).
const INBOX_BOUND: usize = 1024;

/// Initial size of tungstenite's per-connection read buffer: many mostly idle connections,
/// short chat lines; a larger message grows it.
const READ_BUFFER: usize = 4 * 1024;

/// What every part of a running chat shares.
pub(crate) struct Shared {
    pub config: Config,
    pub assets: Assets,
    pub ws_config: WebSocketConfig,
    /// The token checker, in token mode.
    pub tokens: Option<TokenVerifier>,
    /// Open WebSockets per client address.
    clients: Mutex<ClientAddrs>,
    /// The bans in force, written by the core task, read at each upgrade.
    bans: Mutex<Bans>,
    /// WebSockets admitted and not yet ended (their sockets included: a closing one counts
    /// until both its tasks are done).
    open: AtomicUsize,
    /// The counters behind `/metrics`: the mio server's families, those that apply here kept
    /// current (each update a few additions under this lock, never held across an await).
    metrics: Mutex<Metrics>,
    /// Told when `open` falls to 0 during a drain.
    pub all_gone: Notify,
    pub draining: AtomicBool,
    next_client: AtomicU64,
    /// The message store's counters (for `/readyz`), when messages are kept on disk.
    pub store_stats: Option<Arc<chat_store::Stats>>,
    /// Readers' inputs and new connections, bounded.
    pub inbox: mpsc::Sender<Inbound>,
    /// Store completions and the shutdown, unbounded (sent from the storage thread).
    pub control: mpsc::UnboundedSender<crate::core_task::Control>,
}

/// A lock whose holder panicked still guards consistent data here (each critical section is
/// one map operation), so it is used as it is.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Shared {
    pub fn bans(&self) -> MutexGuard<'_, Bans> {
        lock(&self.bans)
    }

    pub fn clients(&self) -> MutexGuard<'_, ClientAddrs> {
        lock(&self.clients)
    }

    pub fn metrics(&self) -> MutexGuard<'_, Metrics> {
        lock(&self.metrics)
    }

    /// `/metrics` now: the Prometheus text of the counters.
    pub fn render_metrics(&self) -> String {
        self.metrics().render(
            std::time::Instant::now(),
            self.is_draining(),
            self.store_stats.as_deref(),
        )
    }

    pub fn next_client(&self) -> chat_protocol::ClientId {
        chat_protocol::ClientId(self.next_client.fetch_add(1, Ordering::Relaxed))
    }

    pub fn open(&self) -> usize {
        self.open.load(Ordering::Acquire)
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Acquire)
    }
}

/// One admitted WebSocket: counted in [`Shared::open`] and under its client address (unless
/// its connection was counted under it at accept) until dropped (when its socket is closed).
pub(crate) struct Admission {
    shared: Arc<Shared>,
    /// The address it is counted under here, if any.
    ip: Option<IpAddr>,
}

impl Admission {
    /// Counts a connection from `ip` if both limits allow it: `Err(status)` names the one
    /// that does not (503 full, 429 this address). `counted_ip`: the connection is counted
    /// under `ip` already (at accept), only the first limit is checked.
    pub fn admit(shared: &Arc<Shared>, ip: IpAddr, counted_ip: bool) -> Result<Admission, u16> {
        let max = shared.config.max_connections;
        if shared
            .open
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |open| {
                (open < max).then_some(open + 1)
            })
            .is_err()
        {
            return Err(503);
        }
        if !counted_ip && !shared.clients().admit(ip) {
            shared.open.fetch_sub(1, Ordering::AcqRel);
            return Err(429);
        }
        let mut metrics = shared.metrics();
        metrics.websocket_open += 1;
        metrics.websockets_total += 1;
        drop(metrics);
        Ok(Admission {
            shared: Arc::clone(shared),
            ip: (!counted_ip).then_some(ip),
        })
    }
}

impl Drop for Admission {
    fn drop(&mut self) {
        if let Some(ip) = self.ip {
            self.shared.clients().release(ip);
        }
        self.shared.metrics().websocket_open -= 1;
        if self.shared.open.fetch_sub(1, Ordering::AcqRel) == 1 {
            // Stored if nobody waits yet: the drain sees it on its next look.
            self.shared.all_gone.notify_one();
        }
    }
}

/// A running chat: the core task, the store thread. Cheap to clone.
#[derive(Clone)]
pub struct Chat {
    pub(crate) shared: Arc<Shared>,
    /// The core task, until [`Chat::shutdown`] has waited for it.
    core: Arc<tokio::sync::Mutex<Option<JoinHandle<Option<chat_store::RunningStore>>>>>,
}

impl Chat {
    /// Opens the store (if `config.store` says so), restores the core, spawns the core task on
    /// the current tokio runtime. Refuses options this adapter does not support with
    /// [`io::ErrorKind::InvalidInput`] and a clear reason (see the crate docs).
    pub async fn start(config: Config) -> io::Result<Chat> {
        crate::options::check(&config)?;
        let assets = chat_adapter::startup::assets(&config)?;
        let tokens = chat_adapter::tokens::token_verifier(&config)?;
        // Opening SQLite and loading the rooms is blocking work: off the runtime's workers.
        let restore_config = config.clone();
        let restored = tokio::task::spawn_blocking(move || {
            chat_adapter::startup::restore(&restore_config, chat_adapter::startup::fresh_epoch())
        })
        .await
        .map_err(|e| io::Error::other(format!("opening the message store: {e}")))??;
        let (control, control_rx) = mpsc::unbounded_channel();
        let (inbox, inbox_rx) = mpsc::channel(INBOX_BOUND);
        let store = match restored.store {
            Some(store) => {
                let control = control.clone();
                Some(store.start(move |completion| {
                    // The core task is gone only after the store was shut down.
                    let _ = control.send(crate::core_task::Control::Store(completion));
                })?)
            }
            None => None,
        };
        let ws_config = chat_adapter::ws_rules::websocket_limits(config.max_message_size)
            .read_buffer_size(READ_BUFFER);
        let shared = Arc::new(Shared {
            clients: Mutex::new(ClientAddrs::new(
                config.trusted_proxies.clone(),
                config.max_connections_per_ip,
            )),
            config,
            assets,
            ws_config,
            tokens,
            bans: Mutex::new(restored.bans),
            open: AtomicUsize::new(0),
            metrics: Mutex::new(Metrics::new(std::time::Instant::now())),
            all_gone: Notify::new(),
            draining: AtomicBool::new(false),
            next_client: AtomicU64::new(1),
            store_stats: store.as_ref().map(chat_store::RunningStore::stats),
            inbox,
            control,
        });
        let task = CoreTask::new(restored.core, store, Arc::clone(&shared));
        let core = tokio::spawn(task.run(inbox_rx, control_rx));
        Ok(Chat {
            shared,
            core: Arc::new(tokio::sync::Mutex::new(Some(core))),
        })
    }

    /// The chat's routes: `/`, `/static/{*file}`, `/ws/{client_id}`, `/healthz`, `/readyz`,
    /// `/metrics`.
    /// Mount with `Router::nest_service("/chat", chat.router())` or `.merge(chat.router())`;
    /// see the crate docs ("Mounting": why `nest_service` rather than `nest`).
    pub fn router(&self) -> axum::Router {
        crate::router::router(Arc::clone(&self.shared))
    }

    /// Graceful stop: every client gets close 1001 "server shutting down" (within
    /// `config.shutdown_timeout`), then the store is closed cleanly. Idempotent: a second
    /// call (or a concurrent one) returns once the first has finished.
    pub async fn shutdown(&self) {
        self.shared.draining.store(true, Ordering::Release);
        // A core task that ended already has nothing to drain.
        let _ = self
            .shared
            .control
            .send(crate::core_task::Control::Shutdown);
        let mut core = self.core.lock().await;
        let Some(task) = core.take() else {
            return;
        };
        let store = match task.await {
            Ok(store) => store,
            Err(e) => {
                log::error!("the chat core task failed: {e}");
                None
            }
        };
        if let Some(store) = store {
            // Joins the storage thread after it wrote what is queued: blocking, so off the
            // runtime's workers.
            match tokio::task::spawn_blocking(move || store.shutdown()).await {
                Ok(Ok(())) => log::info!("message store closed cleanly"),
                Ok(Err(e)) => log::warn!("message store: {e} (the next start takes a new epoch)"),
                Err(e) => log::warn!("message store: {e} (the next start takes a new epoch)"),
            }
        }
        log::info!("shutdown complete");
    }
}
