//! What each HTTP request gets: a static file, a WebSocket upgrade, or a refusal.

use bytes::Bytes;
use percent_encoding::percent_decode_str;

use std::time::Instant;

use crate::assets::Assets;
use crate::handshake::{self, Accepted};
use crate::http::{Request, Response};

/// What the routes need to know about the server.
pub struct Ctx<'a> {
    pub assets: &'a Assets,
    pub allowed_origins: &'a [String],
    /// How the request reached the server: `http`, or `https` (native TLS, or a trusted
    /// proxy's `X-Forwarded-Proto`). Same-origin pages carry it in their `Origin`.
    pub scheme: &'static str,
    /// The Prometheus text for `/metrics`, rendered only when asked for.
    pub render_metrics: &'a dyn Fn() -> String,
    pub draining: bool,
    pub now: Instant,
    /// The message store's counters, when messages are kept on disk.
    pub store: Option<&'a chat_store::Stats>,
    /// A link to the cluster's Redis is down (`--redis`): new clients belong elsewhere.
    pub cluster_down: bool,
}

/// The page served at `/`.
pub const INDEX: &str = "index.html";

/// The answer to one request.
pub enum Route {
    /// Write this response (`Response::encode` for a hand-rolled HTTP writer, its parts for
    /// an HTTP library's). `keep_alive` on it: the connection may carry more.
    Respond(Response<'static>),
    /// Switch this connection to WebSocket.
    Upgrade(Accepted),
}

impl Route {
    /// The answer to a `HEAD` request never carries a body, whatever it is.
    fn respond(head: bool, response: Response<'static>) -> Route {
        Route::Respond(response.head_only(head))
    }
}

/// Routes one request head.
pub fn route(request: &Request, ctx: &Ctx<'_>) -> Route {
    let head = request.method == "HEAD";
    let path = request.path();
    if let Some(raw_id) = path.strip_prefix("/ws/") {
        if ctx.draining {
            return Route::respond(
                head,
                Response::text(503, "the server is shutting down\n").keep_alive(false),
            );
        }
        return match handshake::accept(request, raw_id, ctx.scheme, ctx.allowed_origins) {
            Ok(accepted) => Route::Upgrade(accepted),
            Err(refusal) => Route::respond(head, refusal.into_response()),
        };
    }
    let head_only = match request.method.as_str() {
        "GET" => false,
        "HEAD" => true,
        _ => {
            return Route::respond(
                head,
                Response::text(405, "only GET and HEAD are served here\n")
                    .header("Allow", "GET, HEAD")
                    .keep_alive(false),
            )
        }
    };
    if request.has_body {
        // A GET with a body is legal but meaningless; refusing it saves framing the body.
        return Route::respond(
            head,
            Response::text(400, "requests with a body are not accepted\n").keep_alive(false),
        );
    }
    let keep_alive = request.keep_alive;
    let plain = |status: u16, body: &'static str| {
        Route::respond(
            head,
            Response::text(status, body)
                .header("Cache-Control", "no-store")
                .head_only(head_only)
                .keep_alive(keep_alive),
        )
    };
    match path {
        "/healthz" => return plain(200, "ok\n"),
        "/readyz" if ctx.draining => return plain(503, "draining\n"),
        "/readyz" if ctx.cluster_down => {
            return plain(
                503,
                "the cluster's Redis is unreachable: messages cannot be sent\n",
            )
        }
        "/readyz" if ctx.store.is_some_and(|s| !s.healthy()) => {
            return plain(503, "message store failing: new messages are not saved\n")
        }
        "/readyz" => return plain(200, "ready\n"),
        "/metrics" => {
            let text = (ctx.render_metrics)();
            return Route::respond(
                head,
                Response::shared(200, Bytes::from(text))
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
            head,
            Response::text(404, "not found\n")
                .head_only(head_only)
                .keep_alive(keep_alive),
        );
    };
    let not_modified = request.if_none_match.as_deref().is_some_and(|tags| {
        tags.split(',')
            .any(|t| t.trim() == asset.etag || t.trim() == "*")
    });
    let response = Response::shared(if not_modified { 304 } else { 200 }, asset.body.clone())
        .header("Content-Type", asset.content_type.clone())
        .header("ETag", asset.etag.clone())
        // Always revalidate: a self-hosted server is upgraded in place, and a 304 is cheap.
        .header("Cache-Control", "no-cache")
        .header("X-Content-Type-Options", "nosniff")
        .head_only(head_only)
        .keep_alive(keep_alive);
    Route::respond(head, response)
}

#[cfg(test)]
mod proptests {
    //! No request makes the router panic, every answer is a well-formed response, and nothing
    //! but the known endpoints and the loaded static files is ever answered 200. Requests are
    //! built field by field, so they include what httparse would never produce.

    use std::sync::LazyLock;

    use proptest::prelude::*;

    use super::*;
    use crate::handshake::MAX_CLIENT_ID_CHARS;
    use crate::http::proptests::{method, target};

    /// Loaded once: hashing the embedded files for every case would dominate the run time.
    static ASSETS: LazyLock<Assets> = LazyLock::new(Assets::embedded);

    /// `None`, one of `likely`, or any string.
    fn header(likely: &'static [&'static str]) -> impl Strategy<Value = Option<String>> {
        prop_oneof![
            1 => Just(None),
            3 => prop::sample::select(likely).prop_map(|s| Some(s.to_owned())),
            1 => any::<String>().prop_map(Some),
        ]
    }

    /// Targets aimed at each route, not only at random.
    fn routed_target() -> impl Strategy<Value = String> {
        prop_oneof![
            2 => target(),
            1 => target().prop_map(|t| format!("/ws{t}")),
            1 => target().prop_map(|t| format!("/static{t}")),
            1 => prop::sample::select(
                &[
                    "/", "/healthz", "/readyz", "/metrics", "/static/index.html",
                    "/static/chat.js",
                ][..]
            )
            .prop_map(str::to_owned),
        ]
    }

    /// Any request at all.
    fn request() -> impl Strategy<Value = Request> {
        (
            (
                // Mostly the methods that are served, so most cases get past the 405.
                prop_oneof![
                    3 => Just("GET".to_owned()),
                    1 => Just("HEAD".to_owned()),
                    2 => method(),
                ],
                routed_target(),
                0u8..=1,
                any::<[bool; 3]>(),
            ),
            header(&["websocket", "WebSocket", "h2c", "h2c, websocket", ""]),
            header(&[
                "dGhlIHNhbXBsZSBub25jZQ==",
                "short",
                "AAAAAAAAAAAAAAAAAAAAAA==",
            ]),
            header(&["13", "8", "", "13, 8"]),
            header(&["*", "\"0000000000000000\"", "\"a\", \"b\"", ""]),
            header(&[
                "127.0.0.1:8000",
                "localhost",
                "[::1]:8000",
                "a:b:c",
                ":",
                "]:",
            ]),
            header(&[
                "http://127.0.0.1:8000",
                "https://localhost",
                "http://[::1]:8000",
                "http://[::1",
                "http://evil.example",
                "null",
                "http://",
                "://",
                "http://:",
            ]),
        )
            .prop_map(
                |(line, upgrade, key, version, if_none_match, host, origin)| {
                    let (method, target, minor_version, flags) = line;
                    let [keep_alive, connection_upgrade, has_body] = flags;
                    Request {
                        method,
                        target,
                        minor_version,
                        keep_alive,
                        connection_upgrade,
                        upgrade,
                        sec_websocket_key: key,
                        sec_websocket_version: version,
                        sec_websocket_protocol: None,
                        if_none_match,
                        host,
                        origin,
                        forwarded_for: None,
                        forwarded_proto: None,
                        cookie: None,
                        sec_fetch_site: None,
                        bearer: None,
                        has_body,
                        content_length: None,
                    }
                },
            )
    }

    /// A WebSocket upgrade that is valid but for its client id and perhaps its origin: the
    /// cases that get as far as naming the client.
    fn upgrade_request() -> impl Strategy<Value = Request> {
        let id = prop_oneof![
            "[a-zA-Z0-9 ]{0,40}",
            target(),
            prop::collection::vec("%[0-9A-Fa-f]{2}", 0..40).prop_map(|e| e.concat()),
            any::<String>(),
        ];
        let origin = prop_oneof![
            Just(None),
            Just(Some("http://127.0.0.1:8000".to_owned())),
            Just(Some("http://evil.example".to_owned())),
            any::<String>().prop_map(Some),
        ];
        (id, origin, "(\\?[a-z=&]{0,10})?").prop_map(|(id, origin, query)| Request {
            method: "GET".to_owned(),
            target: format!("/ws/{id}{query}"),
            minor_version: 1,
            keep_alive: true,
            connection_upgrade: true,
            upgrade: Some("websocket".to_owned()),
            sec_websocket_key: Some("dGhlIHNhbXBsZSBub25jZQ==".to_owned()),
            sec_websocket_version: Some("13".to_owned()),
            host: Some("127.0.0.1:8000".to_owned()),
            origin,
            ..Request::default()
        })
    }

    fn allowed_origins() -> impl Strategy<Value = Vec<String>> {
        prop::collection::vec(
            prop_oneof![
                3 => prop::sample::select(
                    &["*", "http://evil.example", "http://good.example/", ""][..]
                )
                .prop_map(str::to_owned),
                1 => any::<String>(),
            ],
            0..3,
        )
    }

    /// The status line, the headers, and the body of an encoded response.
    fn split(bytes: &[u8]) -> (String, Vec<(String, String)>, &[u8]) {
        let end = bytes
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("a response head ends with a blank line");
        let head = std::str::from_utf8(&bytes[..end]).expect("a UTF-8 head");
        let mut lines = head.split("\r\n");
        let status_line = lines.next().expect("a status line").to_owned();
        let headers = lines
            .map(|line| {
                let (name, value) = line.split_once(": ").expect("name: value");
                (name.to_owned(), value.to_owned())
            })
            .collect();
        (status_line, headers, &bytes[end + 4..])
    }

    proptest! {
        // Failures are reported with their minimal input; no regression files are written.
        #![proptest_config(ProptestConfig {
            failure_persistence: None,
            ..ProptestConfig::default()
        })]

        #[test]
        fn every_request_gets_a_well_formed_answer(
            request in prop_oneof![3 => request(), 1 => upgrade_request()],
            allowed in allowed_origins(),
            draining in prop::bool::weighted(0.2),
        ) {
            let ctx = Ctx {
                assets: &ASSETS,
                allowed_origins: &allowed,
                scheme: "http",
                render_metrics: &String::new,
                draining,
                cluster_down: false,
                now: Instant::now(),
                store: None,
            };
            let path = request.path();
            match route(&request, &ctx) {
                Route::Respond(response) => {
                    let (status, keep_alive) = (response.status, response.keep_alive);
                    let (bytes, body) = response.encode();
                    let bytes = [bytes, body.map(Vec::from).unwrap_or_default()].concat();
                    let (status_line, headers, body) = split(&bytes);
                    prop_assert!(
                        status_line.starts_with(&format!("HTTP/1.1 {status} ")),
                        "{status_line}"
                    );
                    prop_assert!(
                        [200, 304, 400, 403, 404, 405, 426, 503].contains(&status),
                        "status {status}"
                    );
                    let header = |name: &str| {
                        headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
                    };
                    let connection = if keep_alive { "keep-alive" } else { "close" };
                    prop_assert_eq!(header("Connection"), Some(connection));
                    if status != 304 {
                        let length: usize = header("Content-Length")
                            .expect("a Content-Length")
                            .parse()
                            .expect("a number");
                        if request.method != "HEAD" {
                            prop_assert_eq!(body.len(), length);
                        }
                    }
                    if status == 405 {
                        prop_assert!(header("Allow").is_some(), "405 without Allow");
                    }
                    if status == 426 {
                        prop_assert_eq!(header("Sec-WebSocket-Version"), Some("13"));
                    }
                    if matches!(status, 200 | 304) {
                        // Never a file outside the loaded set, whatever the path says.
                        let known = ["/", "/healthz", "/readyz", "/metrics"].contains(&path)
                            || path.strip_prefix("/static/").is_some_and(|raw| {
                                percent_decode_str(raw)
                                    .decode_utf8()
                                    .is_ok_and(|name| ASSETS.get(&name).is_some())
                            });
                        prop_assert!(known, "{status} for {path:?}");
                        prop_assert!(matches!(request.method.as_str(), "GET" | "HEAD"));
                    }
                }
                Route::Upgrade(accepted) => {
                    prop_assert!(!draining, "an upgrade while draining");
                    prop_assert_eq!(request.method.as_str(), "GET");
                    prop_assert_eq!(request.minor_version, 1);
                    prop_assert!(request.connection_upgrade);
                    prop_assert_eq!(request.sec_websocket_version.as_deref(), Some("13"));
                    let raw_id = path.strip_prefix("/ws/").expect("a /ws/ path");
                    prop_assert_eq!(handshake::client_id(raw_id), Ok(accepted.user.clone()));
                    prop_assert!(accepted.user.chars().count() <= MAX_CLIENT_ID_CHARS);
                    prop_assert!(!accepted.user.chars().any(char::is_control));
                    prop_assert_eq!(accepted.accept_key.len(), 28);
                }
            }
        }

        #[test]
        fn head_answers_have_no_body(request in request(), draining in any::<bool>()) {
            // RFC 9110, 9.3.2: a body after a HEAD answer's head would be read by the client
            // as the next response.
            let request = Request { method: "HEAD".to_owned(), ..request };
            let ctx = Ctx {
                assets: &ASSETS,
                allowed_origins: &[],
                scheme: "http",
                render_metrics: &String::new,
                draining,
                cluster_down: false,
                now: Instant::now(),
                store: None,
            };
            if let Route::Respond(response) = route(&request, &ctx) {
                let status = response.status;
                let (bytes, body) = response.encode();
                let bytes = [bytes, body.map(Vec::from).unwrap_or_default()].concat();
                let (_, _, body) = split(&bytes);
                prop_assert!(
                    body.is_empty(),
                    "HEAD {:?} -> {status} with body {:?}",
                    request.target,
                    String::from_utf8_lossy(body)
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;
    use crate::http;

    #[test]
    fn a_static_file_is_answered_from_its_shared_bytes_not_a_copy() {
        let assets = Assets::embedded();
        let ctx = Ctx {
            assets: &assets,
            allowed_origins: &[],
            scheme: "http",
            render_metrics: &String::new,
            draining: false,
            cluster_down: false,
            now: Instant::now(),
            store: None,
        };
        let asset = assets.get(INDEX).expect("the page is embedded");
        for _ in 0..2 {
            let (request, _) = http::parse(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
                .expect("well-formed")
                .expect("complete");
            let Route::Respond(response) = route(&request, &ctx) else {
                panic!("/ is answered, not upgraded");
            };
            let (bytes, body) = response.encode();
            let body = body.expect("the file goes out as a shared body");
            assert_eq!(body.as_ptr(), asset.body.as_ptr(), "the body was copied");
            assert_eq!(body.len(), asset.body.len());
            let head = String::from_utf8(bytes).expect("a UTF-8 head");
            assert!(
                head.ends_with("\r\n\r\n"),
                "the head carries no body: {head}"
            );
            assert!(head.contains(&format!("Content-Length: {}\r\n", asset.body.len())));
        }
    }
}
