//! Serving a [`Chat`] alone: [`serve`] on a listener of the caller's runtime, and
//! [`RunningServer`], a server on a thread and runtime of its own.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::thread::JoinHandle;

use axum::routing::any;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

use crate::Chat;

/// Serves `chat` alone on `listener` until `shutdown` resolves, then [`Chat::shutdown`]. Every
/// path the chat does not route answers as on the mio server (404 `not found`, 405, ...).
///
/// The connection handling is this function's own (`accept.rs`, `http_conn.rs`), not axum's:
/// `--max-connections` counts every TCP connection at accept (a `503` beyond it),
/// `--request-timeout` and `--keep-alive-timeout` apply, oversized, malformed and slow heads
/// get the mio server's `431`/`400`/`408`, and every close lingers for the peer's EOF. An app
/// that serves [`Chat::router`] with its own server has its server's limits instead.
pub async fn serve(
    listener: TcpListener,
    chat: Chat,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let app = chat.router().fallback_service(
        any(crate::router::answer).with_state(std::sync::Arc::clone(&chat.shared)),
    );
    crate::accept::accept_loop(
        listener,
        app,
        std::sync::Arc::clone(&chat.shared),
        async move {
            shutdown.await;
            // The WebSocket clients are told first: upgraded connections are no longer
            // hyper's, and the HTTP ones end as soon as their request is answered.
            chat.shutdown().await;
        },
    )
    .await;
    Ok(())
}

/// For tests and embedding in synchronous code: a server on a thread of its own with its own
/// multi-thread runtime (2 workers), bound to `config.bind`.
pub struct RunningServer {
    local_addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<io::Result<()>>>,
}

impl RunningServer {
    /// Starts the chat and binds `config.bind`; returns once listening. Start errors (bad
    /// options, a store that cannot open, a port taken) come back as `Err`.
    pub fn start(config: chat_adapter::Config) -> io::Result<RunningServer> {
        let (started_tx, started_rx) = std::sync::mpsc::channel();
        let (stop, stopped) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("chat-tokio".into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .thread_name("chat-tokio-worker")
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => runtime,
                    Err(e) => {
                        let _ = started_tx.send(Err(e));
                        return Ok(());
                    }
                };
                runtime.block_on(async move {
                    let bind = config.bind;
                    let started = async {
                        let chat = Chat::start(config).await?;
                        let listener = match TcpListener::bind(bind).await {
                            Ok(listener) => listener,
                            Err(e) => {
                                chat.shutdown().await;
                                return Err(e);
                            }
                        };
                        Ok((chat, listener))
                    };
                    let (chat, listener) = match started.await {
                        Ok(started) => started,
                        Err(e) => {
                            let _ = started_tx.send(Err(e));
                            return Ok(());
                        }
                    };
                    let _ = started_tx.send(listener.local_addr());
                    serve(listener, chat, async move {
                        // A dropped RunningServer stops the server too.
                        let _ = stopped.await;
                    })
                    .await
                })
            })?;
        let local_addr = match started_rx.recv() {
            Ok(Ok(addr)) => addr,
            Ok(Err(e)) => {
                let _ = thread.join();
                return Err(e);
            }
            Err(_) => {
                return Err(match thread.join() {
                    Ok(Err(e)) => e,
                    _ => io::Error::other("the server thread stopped before listening"),
                })
            }
        };
        Ok(RunningServer {
            local_addr,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// The address the server listens on (useful after binding port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Graceful stop; returns when the thread has finished (`Err` if serving failed).
    pub fn shutdown(mut self) -> io::Result<()> {
        self.stop_and_join()
    }

    fn stop_and_join(&mut self) -> io::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match self.thread.take().map(JoinHandle::join) {
            None => Ok(()),
            Some(Ok(result)) => result,
            Some(Err(_)) => Err(io::Error::other("the server thread panicked")),
        }
    }
}

impl Drop for RunningServer {
    fn drop(&mut self) {
        let _ = self.stop_and_join();
    }
}
