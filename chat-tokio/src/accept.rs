//! [`serve`](crate::serve)'s own accept loop: every TCP connection is counted at accept, as
//! on the mio server (`--max-connections`: a `503` and a close beyond it; under its address
//! unless it is a trusted proxy's, `--max-connections-per-ip`: a `429`), and served by
//! hyper's HTTP/1 connection behind [`HttpConn`], which reads and checks the request heads.
//! The chat's axum `Router` answers each request, with the peer as `ConnectInfo`.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::Router;
use chat_adapter::http::MAX_REQUEST_HEAD;
use chat_adapter::refusals::{server_full, too_many_from_this_address};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tower_service::Service;

use crate::chat::Shared;
use crate::http_conn::{HttpConn, Slot};

/// After `accept` fails (EMFILE, ENFILE, ...), wait this long before trying again.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Connections beyond `--max-connections` still answered 503 (each holds a socket while it
/// lingers); past this many more they are dropped at once, as on the mio server.
const REFUSAL_HEADROOM: usize = 256;

/// hyper's read buffer: pipelined heads, each at most 8 KiB ([`HttpConn`] checks them).
const HYPER_BUFFER: usize = 8 * MAX_REQUEST_HEAD;

/// Accepts and serves until `stop` resolves; then stops accepting, tells every HTTP connection
/// to finish (hyper's graceful shutdown), and waits for them up to `--shutdown-timeout`.
pub(crate) async fn accept_loop(
    listener: TcpListener,
    app: Router,
    shared: Arc<Shared>,
    stop: impl Future<Output = ()>,
) {
    let open = Arc::new(AtomicUsize::new(0));
    let (stopping, stop_rx) = watch::channel(false);
    let mut tasks = JoinSet::new();
    tokio::pin!(stop);
    loop {
        let (stream, peer) = tokio::select! {
            () = &mut stop => break,
            Some(_) = tasks.join_next(), if !tasks.is_empty() => continue,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) if is_connection_error(&e) => continue,
                Err(e) => {
                    // Typically EMFILE/ENFILE: the connection stays in the backlog; retrying
                    // at once would spin.
                    log::error!("accept failed, retrying in {ACCEPT_BACKOFF:?}: {e}");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
        };
        shared.metrics().connections_total += 1;
        let max = shared.config.max_connections;
        let now_open = open.load(Ordering::Acquire);
        if now_open >= max.saturating_add(REFUSAL_HEADROOM) {
            // Flooded beyond even the room kept for polite refusals: dropped at once.
            shared.metrics().refused_full += 1;
            continue;
        }
        if let Err(e) = stream.set_nodelay(true) {
            log::debug!("{peer}: TCP_NODELAY: {e}");
        }
        let mut slot = Slot::new(Arc::clone(&shared), Arc::clone(&open));
        let full = now_open >= max;
        // A trusted proxy's connections are counted under the address it forwards for, once
        // the request says which (at the upgrade, `upgrade.rs`).
        let from_proxy = shared.clients().is_trusted_proxy(peer.ip());
        let over_ip_limit = !full && !from_proxy && !slot.admit_ip(peer.ip());
        let mut conn = HttpConn::new(stream, peer, Arc::clone(&shared), slot);
        if full || over_ip_limit {
            if full {
                shared.metrics().refused_full += 1;
                log::warn!(
                    peer:% = peer, status = 503u16;
                    "{peer}: refused, {max} connections open"
                );
                conn.refuse(&server_full());
            } else {
                shared.metrics().refused_per_ip += 1;
                log::warn!(
                    peer:% = peer, status = 429u16;
                    "{peer}: refused, too many connections from this address"
                );
                conn.refuse(&too_many_from_this_address());
            }
            tasks.spawn(async move {
                let _ = conn.shutdown().await;
            });
            continue;
        }
        log::debug!(peer:% = peer; "{peer}: accepted");
        tasks.spawn(serve_connection(conn, peer, app.clone(), stop_rx.clone()));
    }
    drop(listener);
    let _ = stopping.send(true);
    let timeout = shared.config.shutdown_timeout;
    if tokio::time::timeout(timeout, async {
        while tasks.join_next().await.is_some() {}
    })
    .await
    .is_err()
    {
        log::info!("{} HTTP connections cut at shutdown", tasks.len());
        tasks.abort_all();
    }
}

/// One connection, served by hyper until it ends (or, at shutdown, once its request in flight
/// is answered). An upgraded connection leaves hyper here and lives on in its own tasks.
async fn serve_connection(
    conn: HttpConn,
    peer: SocketAddr,
    app: Router,
    mut stopping: watch::Receiver<bool>,
) {
    let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
        request.extensions_mut().insert(ConnectInfo(peer));
        request.extensions_mut().insert(CountedAtAccept);
        // The Router is always ready; its error type is Infallible.
        let mut app = app.clone();
        async move { Ok::<_, Infallible>(app.call(request).await.unwrap_or_else(|e| match e {})) }
    });
    // No hyper timer, so none of hyper's timeouts: its header read timeout would close a slow
    // head without the mio server's 408, and it has no idle keep-alive timeout at all. Both
    // deadlines are `HttpConn`'s, and hyper only ever sees whole heads.
    let connection = http1::Builder::new()
        // A request followed by EOF (`nc -N`) is answered before the connection ends.
        .half_close(true)
        .keep_alive(true)
        .max_buf_size(HYPER_BUFFER)
        .serve_connection(TokioIo::new(conn), service)
        .with_upgrades();
    tokio::pin!(connection);
    let mut told = false;
    loop {
        tokio::select! {
            served = connection.as_mut() => {
                if let Err(e) = served {
                    log::debug!("{peer}: HTTP connection ended: {e}");
                }
                return;
            }
            _ = stopping.wait_for(|stop| *stop), if !told => {
                told = true;
                connection.as_mut().graceful_shutdown();
            }
        }
    }
}

/// In a request's extensions: its connection was counted at accept, under its peer's address
/// unless that is a trusted proxy, so the upgrade does not count it under that address again.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CountedAtAccept;

/// Errors of one connection that `accept` reports; the listener is fine.
fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::Interrupted
    )
}
