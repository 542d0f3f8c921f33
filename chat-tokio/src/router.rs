//! The chat's axum routes. Each one hands the request to the same handler, which asks
//! `chat_adapter::routes::route` for the answer, so every path answers exactly as the mio
//! server's: files, health, refusals, and the upgrade (`upgrade.rs`).

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{ConnectInfo, OriginalUri, Request, State};
use axum::http::header::LOCATION;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::Router;
use chat_adapter::http::Response as ChatResponse;
use chat_adapter::routes::{route, Ctx, Route};

use crate::chat::Shared;
use crate::http_answer::http_answer;
use crate::request_head::{request_head, HeadRefused};

/// The peer address when the server does not provide `ConnectInfo<SocketAddr>` (an app served
/// without `into_make_service_with_connect_info`): every client counts as this one address.
pub(crate) const UNKNOWN_PEER: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::LOCALHOST), 0);

/// The routes, for `nest` or `merge`. No fallback of its own: an app may have one, and two
/// fallbacks cannot be merged (the standalone server adds one, `serve.rs`).
pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/", any(answer))
        .route("/static/{*file}", any(answer))
        .route("/ws/{client_id}", any(answer))
        .route("/healthz", any(answer))
        .route("/readyz", any(answer))
        .route("/metrics", any(answer))
        .with_state(shared)
}

/// The answer to any request the chat is asked, as the mio server gives it, counted in
/// `chat_http_responses_total`.
pub(crate) async fn answer(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let response = answer_uncounted(Arc::clone(&shared), request).await;
    shared.metrics().http_response(response.status().as_u16());
    response
}

async fn answer_uncounted(shared: Arc<Shared>, request: Request) -> Response {
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(UNKNOWN_PEER, |info| info.0);
    let original = request.extensions().get::<OriginalUri>().cloned();
    let (parts, body) = request.into_parts();
    let refuse =
        |status, reason| http_answer(&ChatResponse::text(status, reason).keep_alive(false));
    let head = match request_head(&parts) {
        Ok(head) => head,
        Err(HeadRefused::TooManyHeaders) => return refuse(431, "too many header fields\n"),
        Err(HeadRefused::TooLarge) => return refuse(431, "request head too large\n"),
        Err(HeadRefused::Malformed) => return refuse(400, "malformed HTTP request\n"),
    };
    if let Some(redirect) = original.and_then(|uri| slash_redirect(head.path(), &uri.0)) {
        return redirect;
    }
    match route_request(&shared, &head, peer) {
        Route::Respond(response) => http_answer(&response),
        Route::Upgrade(accepted) => {
            let request = Request::from_parts(parts, body);
            crate::upgrade::upgrade(shared, request, accepted, peer, head.forwarded_for).await
        }
    }
}

/// What `chat_adapter::routes` answers `head` from `peer`.
pub(crate) fn route_request(
    shared: &Shared,
    head: &chat_adapter::http::Request,
    peer: SocketAddr,
) -> Route {
    let scheme = shared
        .clients()
        .scheme(peer.ip(), false, head.forwarded_proto.as_deref());
    let render_metrics = || shared.render_metrics();
    let ctx = Ctx {
        assets: &shared.assets,
        allowed_origins: &shared.config.allowed_origins,
        scheme,
        render_metrics: &render_metrics,
        draining: shared.is_draining(),
        now: Instant::now(),
        store: shared.store_stats.as_deref(),
        cluster_down: false,
    };
    route(head, &ctx)
}

/// Nested under a prefix (`nest("/chat", ..)`), the page is at `/chat/`: `/chat` redirects
/// there (308), so that the page's relative URLs (`static/..`, `ws/..`) resolve under the
/// prefix. `path` is the nested router's path, `original` the request's URI as sent.
fn slash_redirect(path: &str, original: &axum::http::Uri) -> Option<Response> {
    if path != "/" || original.path().ends_with('/') {
        return None;
    }
    let location = match original.query() {
        Some(query) => format!("{}/?{query}", original.path()),
        None => format!("{}/", original.path()),
    };
    let location = HeaderValue::from_str(&location).ok()?;
    Some((StatusCode::PERMANENT_REDIRECT, [(LOCATION, location)]).into_response())
}
