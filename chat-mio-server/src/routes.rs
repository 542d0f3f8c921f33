//! What each HTTP request gets: a static file, a WebSocket upgrade, or a refusal.

use percent_encoding::percent_decode_str;

use std::time::Instant;

use crate::assets::Assets;
use crate::http::{Request, Response};
use crate::metrics::Metrics;
use crate::ws::{self, Accepted};

/// What the routes need to know about the server.
pub struct Ctx<'a> {
    pub assets: &'a Assets,
    pub allowed_origins: &'a [String],
    pub metrics: &'a Metrics,
    pub draining: bool,
    pub now: Instant,
}

/// The page served at `/`.
pub const INDEX: &str = "index.html";

/// The answer to one request.
pub enum Route {
    /// Write this response (already encoded). `keep_alive`: the connection may carry more.
    Respond {
        bytes: Vec<u8>,
        keep_alive: bool,
        status: u16,
    },
    /// Switch this connection to WebSocket.
    Upgrade(Accepted),
}

impl Route {
    fn respond(response: Response<'_>) -> Route {
        let mut bytes = Vec::with_capacity(256);
        response.write_to(&mut bytes);
        Route::Respond {
            bytes,
            keep_alive: response.keep_alive,
            status: response.status,
        }
    }
}

/// Routes one request head.
pub fn route(request: &Request, ctx: &Ctx<'_>) -> Route {
    let path = request.path();
    if let Some(raw_id) = path.strip_prefix("/ws/") {
        if ctx.draining {
            return Route::respond(
                Response::text(503, "the server is shutting down\n").keep_alive(false),
            );
        }
        return match ws::accept(request, raw_id, ctx.allowed_origins) {
            Ok(accepted) => Route::Upgrade(accepted),
            Err(refusal) => Route::respond(refusal.response()),
        };
    }
    let head_only = match request.method.as_str() {
        "GET" => false,
        "HEAD" => true,
        _ => {
            return Route::respond(
                Response::text(405, "only GET and HEAD are served here\n")
                    .header("Allow", "GET, HEAD")
                    .keep_alive(false),
            )
        }
    };
    if request.has_body {
        // A GET with a body is legal but meaningless; refusing it saves framing the body.
        return Route::respond(
            Response::text(400, "requests with a body are not accepted\n").keep_alive(false),
        );
    }
    let keep_alive = request.keep_alive;
    let plain = |status: u16, body: &str| {
        Route::respond(
            Response::text(status, body)
                .header("Cache-Control", "no-store")
                .head_only(head_only)
                .keep_alive(keep_alive),
        )
    };
    match path {
        "/healthz" => return plain(200, "ok\n"),
        "/readyz" if ctx.draining => return plain(503, "draining\n"),
        "/readyz" => return plain(200, "ready\n"),
        "/metrics" => {
            let text = ctx.metrics.render(ctx.now, ctx.draining);
            return Route::respond(
                Response::new(200, text.as_bytes())
                    .header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
                    .header("Cache-Control", "no-store")
                    .head_only(head_only)
                    .keep_alive(keep_alive),
            );
        }
        _ => {}
    }
    let assets = ctx.assets;
    let name = if path == "/" {
        Some(INDEX.to_owned())
    } else {
        path.strip_prefix("/static/").and_then(|raw| {
            // Lookups are by exact name in a fixed set, so a decoded `..` or `/` can only fail
            // to match; decoding is for names with spaces or non-ASCII letters.
            percent_decode_str(raw)
                .decode_utf8()
                .ok()
                .map(|s| s.into_owned())
        })
    };
    let Some(asset) = name.as_deref().and_then(|n| assets.get(n)) else {
        return Route::respond(
            Response::text(404, "not found\n")
                .head_only(head_only)
                .keep_alive(keep_alive),
        );
    };
    let not_modified = request.if_none_match.as_deref().is_some_and(|tags| {
        tags.split(',')
            .any(|t| t.trim() == asset.etag || t.trim() == "*")
    });
    let response = Response::new(if not_modified { 304 } else { 200 }, &asset.body)
        .header("Content-Type", asset.content_type.clone())
        .header("ETag", asset.etag.clone())
        // Always revalidate: a self-hosted server is upgraded in place, and a 304 is cheap.
        .header("Cache-Control", "no-cache")
        .header("X-Content-Type-Options", "nosniff")
        .head_only(head_only)
        .keep_alive(keep_alive);
    Route::respond(response)
}
