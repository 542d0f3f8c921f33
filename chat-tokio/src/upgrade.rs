//! The WebSocket upgrade: a request the router accepted (`chat_adapter::handshake` validated
//! it) passes the same checks as on the mio server — the connection limit (503), the
//! per-address limit (429), the token (401 with `WWW-Authenticate: Bearer`, 403) and the bans
//! (403) — then the chat hears `Input::Connect` (and `Expires`, `Grant` in token mode) before
//! the `101` is written, as on the mio server (a client that read its `101` is in the chat);
//! the core's frames wait in the client's channel until hyper hands over the connection.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::Request;
use axum::response::Response;
use chat_adapter::handshake::Accepted;
use chat_adapter::refusals::{server_full, too_many_from_this_address};
use chat_adapter::{bans, tokens};
use chat_protocol::Now;
use hyper_util::rt::TokioIo;
use tokio_tungstenite::WebSocketStream;
use tungstenite::protocol::Role;

use crate::chat::{Admission, Shared};
use crate::http_answer::http_answer;

pub(crate) async fn upgrade(
    shared: Arc<Shared>,
    mut request: Request,
    accepted: Accepted,
    peer: SocketAddr,
    forwarded_for: Option<String>,
) -> Response {
    let client_ip = shared
        .clients()
        .client_ip(peer.ip(), forwarded_for.as_deref());
    // Served by `serve`, a connection from an address that is not a trusted proxy was counted
    // under that address at accept.
    let from_proxy = shared.clients().is_trusted_proxy(peer.ip());
    let counted_ip = !from_proxy
        && request
            .extensions()
            .get::<crate::accept::CountedAtAccept>()
            .is_some();
    let admission = match Admission::admit(&shared, client_ip, counted_ip) {
        Ok(admission) => admission,
        Err(503) => {
            shared.metrics().refused_full += 1;
            log::warn!(
                peer:% = peer, status = 503u16;
                "{peer}: refused, {} connections open", shared.config.max_connections
            );
            return http_answer(&server_full());
        }
        Err(_) => {
            shared.metrics().refused_per_ip += 1;
            log::warn!(
                peer:% = peer, client:% = client_ip, status = 429u16;
                "{client_ip} (via {peer}): refused, too many connections from this address"
            );
            return http_answer(&too_many_from_this_address());
        }
    };
    let now = Now {
        instant: Instant::now(),
        wall: chrono::Utc::now(),
    };
    let identity = tokens::authenticate(
        shared.tokens.as_ref(),
        &shared.config.room_access,
        now,
        accepted.token.as_ref(),
        &accepted.user,
        accepted.room.as_str(),
    )
    .and_then(|identity| match identity {
        // Token mode: a banned user is refused until the ban ends.
        Some(_) => match bans::refusal(&mut shared.bans(), &accepted.user, now.wall) {
            Some(why) => Err((403, why)),
            None => Ok(identity),
        },
        None => Ok(None),
    });
    let (expires, admin) = match identity {
        Ok(identity) => (
            identity.as_ref().map(|(_, expires)| *expires),
            identity.is_some_and(|(identity, _)| identity.admin),
        ),
        Err((status, reason)) => {
            log::info!(
                peer:% = peer, user = accepted.user.as_str(), status = status;
                "{peer} refused as {:?}: {}", accepted.user, reason.trim_end()
            );
            return http_answer(&tokens::refused_upgrade(
                status,
                &reason,
                shared.tokens.is_some(),
            ));
        }
    };
    let response = http_answer(&accepted.response());
    let on_upgrade = hyper::upgrade::on(&mut request);
    let (user, room) = (accepted.user.as_str(), accepted.room.as_str());
    if client_ip == peer.ip() {
        log::info!(peer:% = peer, user = user, room = room; "{user} ({peer}) connected");
    } else {
        log::info!(
            peer:% = peer, client:% = client_ip, user = user, room = room;
            "{user} ({client_ip} via {peer}) connected"
        );
    }
    let ws_config = shared.ws_config;
    let Some(joining) =
        crate::connection::join(shared, accepted, peer, (expires, admin), admission).await
    else {
        // The chat stopped meanwhile.
        return http_answer(
            &chat_adapter::http::Response::text(503, "the server is shutting down\n")
                .keep_alive(false),
        );
    };
    tokio::spawn(async move {
        let upgraded = match on_upgrade.await {
            Ok(upgraded) => upgraded,
            Err(e) => {
                log::debug!("{peer}: upgrade failed: {e}");
                joining.abandon().await;
                return;
            }
        };
        let ws =
            WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, Some(ws_config))
                .await;
        joining.run(ws).await;
    });
    response
}
