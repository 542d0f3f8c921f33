//! HTTP/1.x request heads (parsed with httparse) and the responses we write.
//!
//! Only what a chat server needs: `GET`/`HEAD` of a few paths and the WebSocket upgrade. Bodies
//! are never accepted, so a request is complete when its head is.

use std::fmt::Write as _;

use bytes::Bytes;

/// At most this many header lines; more is answered with 431.
pub const MAX_HEADERS: usize = 64;

/// The largest request head; a larger one is answered with 431.
pub const MAX_REQUEST_HEAD: usize = 8 * 1024;

/// What a parsed request head asks for, reduced to what the routes need. `Default`: an empty
/// head (no method, no target, HTTP/1.0, no headers), to build on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Request {
    pub method: String,
    /// The request target as sent: path and optional query, not yet percent-decoded.
    pub target: String,
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub minor_version: u8,
    /// Whether the connection may carry another request after this one.
    pub keep_alive: bool,
    /// `Connection` lists `upgrade`.
    pub connection_upgrade: bool,
    /// The `Upgrade` header, if any.
    pub upgrade: Option<String>,
    pub sec_websocket_key: Option<String>,
    pub sec_websocket_version: Option<String>,
    /// Every `Sec-WebSocket-Protocol` value, joined with `, `.
    pub sec_websocket_protocol: Option<String>,
    pub if_none_match: Option<String>,
    pub host: Option<String>,
    pub origin: Option<String>,
    /// The token of an `Authorization: Bearer` header.
    pub bearer: Option<Credential>,
    /// Every `X-Forwarded-For` value, joined with commas in order.
    pub forwarded_for: Option<String>,
    /// The last `X-Forwarded-Proto` value (believed only from a trusted proxy).
    pub forwarded_proto: Option<String>,
    /// Every `Cookie` header, joined with `; ` (a secret: its `Debug` is redacted).
    pub cookie: Option<Credential>,
    /// `Sec-Fetch-Site` (`same-origin`, `same-site`, `cross-site`, `none`), sent by browsers.
    pub sec_fetch_site: Option<String>,
    /// The request announces a body (`Content-Length` > 0 or `Transfer-Encoding`).
    pub has_body: bool,
    /// The `Content-Length`, when one was given.
    pub content_length: Option<u64>,
}

impl Request {
    /// The path part of the target, without the query.
    pub fn path(&self) -> &str {
        self.target.split_once('?').map_or(&self.target, |(p, _)| p)
    }

    /// The query part of the target (after `?`), if any.
    pub fn query(&self) -> Option<&str> {
        self.target.split_once('?').map(|(_, q)| q)
    }

    /// The target as it may appear in a log: the value of every query parameter that can hold
    /// a secret (`token`, `access_token`, `key`, `password`, `api_key`) is replaced by `***`.
    pub fn loggable_target(&self) -> String {
        redact_query(&self.target)
    }
}

/// A secret a client presented (a token): its `Debug` never shows it, so it cannot reach a
/// log by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct Credential(String);

impl Credential {
    pub fn new(secret: &str) -> Self {
        Credential(secret.to_owned())
    }

    /// The secret itself, for the one place that checks it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Credential(***)")
    }
}

/// Query parameters whose values are never logged.
const SECRET_PARAMS: [&str; 5] = ["token", "access_token", "key", "password", "api_key"];

/// `target` with the values of secret query parameters replaced by `***` (names compared
/// case-insensitively, before and after percent-decoding of the name).
pub fn redact_query(target: &str) -> String {
    let Some((path, query)) = target.split_once('?') else {
        return target.to_owned();
    };
    let pairs: Vec<String> = query
        .split('&')
        .map(|pair| {
            let name = pair.split_once('=').map_or(pair, |(name, _)| name);
            let decoded = percent_encoding::percent_decode_str(name).decode_utf8_lossy();
            if SECRET_PARAMS
                .iter()
                .any(|secret| decoded.eq_ignore_ascii_case(secret))
            {
                format!("{name}=***")
            } else {
                pair.to_owned()
            }
        })
        .collect();
    format!("{path}?{}", pairs.join("&"))
}

/// Why a request head could not be accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParseError {
    /// Not HTTP/1.x, or broken syntax: 400.
    Malformed,
    /// More than [`MAX_HEADERS`] headers: 431.
    TooManyHeaders,
}

/// Parses one request head from the front of `buf`.
///
/// `Ok(None)`: the head is not complete yet. `Ok(Some((request, len)))`: the head took the first
/// `len` bytes of `buf`.
pub fn parse(buf: &[u8]) -> Result<Option<(Request, usize)>, ParseError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let len = match req.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(ParseError::TooManyHeaders),
        Err(_) => return Err(ParseError::Malformed),
    };
    // httparse fills every field of a complete request.
    let (Some(method), Some(path), Some(minor_version)) = (req.method, req.path, req.version)
    else {
        return Err(ParseError::Malformed);
    };

    let headers: Vec<(&str, &[u8])> = req.headers.iter().map(|h| (h.name, h.value)).collect();
    let request = Request::from_head(method, path, minor_version, &headers)?;
    Ok(Some((request, len)))
}

impl Request {
    /// The request of a head already split into its parts: by [`parse`], or by an HTTP
    /// library (`chat-tokio` copies hyper's parts in here), so both read headers the same way.
    /// `target` is the path and query as sent; `headers` in order, repeated names repeated.
    pub fn from_head(
        method: &str,
        target: &str,
        minor_version: u8,
        headers: &[(&str, &[u8])],
    ) -> Result<Request, ParseError> {
        let mut request = Request {
            method: method.to_owned(),
            target: target.to_owned(),
            minor_version,
            keep_alive: minor_version == 1,
            ..Request::default()
        };
        for &(name, value) in headers {
            let Ok(value) = std::str::from_utf8(value) else {
                // Non-ASCII bytes are legal in values but none of the headers we read may have them.
                continue;
            };
            let value = value.trim();
            if name.eq_ignore_ascii_case("connection") {
                for token in value.split(',').map(str::trim) {
                    if token.eq_ignore_ascii_case("close") {
                        request.keep_alive = false;
                    } else if token.eq_ignore_ascii_case("keep-alive") {
                        request.keep_alive = true;
                    } else if token.eq_ignore_ascii_case("upgrade") {
                        request.connection_upgrade = true;
                    }
                }
            } else if name.eq_ignore_ascii_case("upgrade") {
                request.upgrade = Some(value.to_owned());
            } else if name.eq_ignore_ascii_case("sec-websocket-key") {
                request.sec_websocket_key = Some(value.to_owned());
            } else if name.eq_ignore_ascii_case("sec-websocket-version") {
                request.sec_websocket_version = Some(value.to_owned());
            } else if name.eq_ignore_ascii_case("sec-websocket-protocol") {
                // The header may be repeated; its values form one list.
                append_to_list(&mut request.sec_websocket_protocol, value);
            } else if name.eq_ignore_ascii_case("host") {
                request.host = Some(value.to_owned());
            } else if name.eq_ignore_ascii_case("origin") {
                request.origin = Some(value.to_owned());
            } else if name.eq_ignore_ascii_case("authorization") {
                let scheme_len = "bearer ".len();
                if value.len() > scheme_len
                    && value.is_char_boundary(scheme_len)
                    && value[..scheme_len].eq_ignore_ascii_case("bearer ")
                {
                    request.bearer = Some(Credential::new(value[scheme_len..].trim()));
                }
            } else if name.eq_ignore_ascii_case("x-forwarded-for") {
                append_to_list(&mut request.forwarded_for, value);
            } else if name.eq_ignore_ascii_case("x-forwarded-proto") {
                request.forwarded_proto = Some(value.to_owned());
            } else if name.eq_ignore_ascii_case("cookie") {
                request.cookie = Some(Credential::new(&match request.cookie.take() {
                    Some(before) => format!("{}; {value}", before.expose()),
                    None => value.to_owned(),
                }));
            } else if name.eq_ignore_ascii_case("sec-fetch-site") {
                request.sec_fetch_site = Some(value.to_owned());
            } else if name.eq_ignore_ascii_case("if-none-match") {
                request.if_none_match = Some(value.to_owned());
            } else if name.eq_ignore_ascii_case("content-length") {
                match value.parse::<u64>() {
                    Ok(n) => {
                        request.content_length = Some(n);
                        request.has_body |= n > 0;
                    }
                    Err(_) => return Err(ParseError::Malformed),
                }
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                request.has_body = true;
            }
        }
        // An explicit "Connection: keep-alive" is honoured for HTTP/1.0 above; "close" always wins.
        if request.minor_version == 1 && request.keep_alive {
            request.keep_alive = !has_token(headers, "connection", "close");
        }
        Ok(request)
    }
}

/// A repeated header's values, joined into one list with `, `.
fn append_to_list(list: &mut Option<String>, value: &str) {
    *list = Some(match list.take() {
        Some(before) => format!("{before}, {value}"),
        None => value.to_owned(),
    });
}

fn has_token(headers: &[(&str, &[u8])], header: &str, token: &str) -> bool {
    headers
        .iter()
        .filter(|(name, _)| name.eq_ignore_ascii_case(header))
        .filter_map(|(_, value)| std::str::from_utf8(value).ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

/// A response head and body, written straight into a connection's output buffer.
#[derive(Debug)]
pub struct Response<'a> {
    pub status: u16,
    headers: Vec<(&'static str, String)>,
    body: &'a [u8],
    /// A body shared with every response that sends it (a static file): queued as it is,
    /// never copied into the response. Takes the place of `body`.
    shared: Option<Bytes>,
    /// `HEAD`: send the head only, with the body's `Content-Length`.
    head_only: bool,
    pub keep_alive: bool,
}

impl<'a> Response<'a> {
    pub fn new(status: u16, body: &'a [u8]) -> Self {
        Response {
            status,
            headers: Vec::new(),
            body,
            shared: None,
            head_only: false,
            keep_alive: true,
        }
    }

    /// A response whose body is shared bytes (see [`Response::encode`]).
    pub fn shared(status: u16, body: Bytes) -> Response<'static> {
        Response {
            shared: Some(body),
            ..Response::new(status, b"")
        }
    }

    fn body(&self) -> &[u8] {
        self.shared.as_deref().unwrap_or(self.body)
    }

    /// Whether the body goes out (not for `HEAD`, nor with a 304).
    fn sends_body(&self) -> bool {
        !self.head_only && self.status != 304
    }

    /// A plain-text response, the answer to anything we refuse.
    pub fn text(status: u16, body: &'a str) -> Self {
        Response::new(status, body.as_bytes()).header("Content-Type", "text/plain; charset=utf-8")
    }

    /// [`Response::text`] with a body it owns (a refusal's reason).
    pub fn text_owned(status: u16, body: String) -> Response<'static> {
        Response::shared(status, Bytes::from(body))
            .header("Content-Type", "text/plain; charset=utf-8")
    }

    /// The status line's code.
    pub fn status(&self) -> u16 {
        self.status
    }

    /// The headers, in order, without the ones the writer adds (`Server`, `Content-Length`,
    /// `Connection`).
    pub fn headers(&self) -> &[(&'static str, String)] {
        &self.headers
    }

    /// The body to send: empty for `HEAD`, a 304 and a 101.
    pub fn body_bytes(&self) -> Bytes {
        if !self.sends_body() {
            return Bytes::new();
        }
        match &self.shared {
            Some(shared) => shared.clone(),
            None => Bytes::copy_from_slice(self.body),
        }
    }

    /// The length of the body a `GET` would get (what a `HEAD` answer's `Content-Length`
    /// says).
    pub fn content_length(&self) -> usize {
        self.body().len()
    }

    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    pub fn head_only(mut self, yes: bool) -> Self {
        self.head_only = yes;
        self
    }

    pub fn keep_alive(mut self, yes: bool) -> Self {
        self.keep_alive = yes;
        self
    }

    /// Appends the whole response to `out` (the tests read responses whole).
    #[cfg(test)]
    pub fn write_to(&self, out: &mut Vec<u8>) {
        self.write_head(out, MIO_SERVER);
        if self.sends_body() {
            out.extend_from_slice(self.body());
        }
    }

    /// The response as bytes to queue: the head (with a borrowed body appended), and a shared
    /// body to queue after it as it is, without a copy.
    pub fn encode(&self) -> (Vec<u8>, Option<Bytes>) {
        self.encode_from(MIO_SERVER)
    }

    /// [`Response::encode`], with `server` as the `Server` header (chat-tokio writes its
    /// own refusals before hyper sees a request).
    pub fn encode_from(&self, server: &str) -> (Vec<u8>, Option<Bytes>) {
        let mut head = Vec::with_capacity(256);
        self.write_head(&mut head, server);
        if !self.sends_body() {
            return (head, None);
        }
        match &self.shared {
            Some(shared) => (head, Some(shared.clone())),
            None => {
                head.extend_from_slice(self.body);
                (head, None)
            }
        }
    }

    /// Appends the status line and the headers.
    fn write_head(&self, out: &mut Vec<u8>, server: &str) {
        let mut head = String::with_capacity(160);
        // Writing into a String cannot fail.
        let _ = write!(
            head,
            "HTTP/1.1 {} {}\r\nServer: {server}\r\n",
            self.status,
            reason_phrase(self.status)
        );
        for (name, value) in &self.headers {
            let _ = write!(head, "{name}: {value}\r\n");
        }
        // 101 and 304 carry no body and no length of one.
        if self.status != 101 && self.status != 304 {
            let _ = write!(head, "Content-Length: {}\r\n", self.body().len());
        }
        if self.status != 101 {
            head.push_str(if self.keep_alive {
                "Connection: keep-alive\r\n"
            } else {
                "Connection: close\r\n"
            });
        }
        head.push_str("\r\n");
        out.extend_from_slice(head.as_bytes());
    }
}

/// The `Server` header of the mio server's answers.
const MIO_SERVER: &str = "chat-mio-server";

pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        101 => "Switching Protocols",
        200 => "OK",
        201 => "Created",
        303 => "See Other",
        304 => "Not Modified",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        411 => "Length Required",
        413 => "Content Too Large",
        426 => "Upgrade Required",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        505 => "HTTP Version Not Supported",
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_ok(raw: &str) -> (Request, usize) {
        parse(raw.as_bytes()).expect("valid").expect("complete")
    }

    #[test]
    fn secrets_in_query_strings_never_reach_a_log() {
        for (target, logged) in [
            ("/ws/alice", "/ws/alice"),
            ("/ws/alice?room=a", "/ws/alice?room=a"),
            (
                "/ws/alice?token=eyJ.abc.def&room=a",
                "/ws/alice?token=***&room=a",
            ),
            ("/ws/alice?room=a&TOKEN=x", "/ws/alice?room=a&TOKEN=***"),
            ("/ws/a?%74oken=x", "/ws/a?%74oken=***"),
            (
                "/ws/a?access_token=x&key=y&password=z&api_key=w",
                "/ws/a?access_token=***&key=***&password=***&api_key=***",
            ),
            ("/ws/a?token", "/ws/a?token=***"),
            ("/ws/a?tokens=x", "/ws/a?tokens=x"),
        ] {
            assert_eq!(redact_query(target), logged, "{target}");
        }
    }

    #[test]
    fn keep_alive_rules() {
        let cases = [
            ("GET / HTTP/1.1\r\nHost: x\r\n\r\n", true),
            ("GET / HTTP/1.1\r\nConnection: close\r\n\r\n", false),
            (
                "GET / HTTP/1.1\r\nConnection: keep-alive, close\r\n\r\n",
                false,
            ),
            ("GET / HTTP/1.0\r\n\r\n", false),
            ("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", true),
        ];
        for (raw, keep_alive) in cases {
            assert_eq!(parse_ok(raw).0.keep_alive, keep_alive, "{raw:?}");
        }
    }

    #[test]
    fn partial_heads_wait_for_more() {
        for raw in [
            "",
            "GET",
            "GET / HTTP/1.1\r\n",
            "GET / HTTP/1.1\r\nHost: x\r\n",
        ] {
            assert_eq!(parse(raw.as_bytes()), Ok(None), "{raw:?}");
        }
    }

    #[test]
    fn malformed_and_oversized_heads_are_refused() {
        assert_eq!(parse(b"GARBAGE\r\n\r\n"), Err(ParseError::Malformed));
        assert_eq!(parse(b"GET / HTTP/2.0\r\n\r\n"), Err(ParseError::Malformed));
        assert_eq!(
            parse(b"GET / HTTP/1.1\r\nContent-Length: x\r\n\r\n"),
            Err(ParseError::Malformed)
        );
        let many: String = (0..=MAX_HEADERS).map(|i| format!("X-{i}: y\r\n")).collect();
        assert_eq!(
            parse(format!("GET / HTTP/1.1\r\n{many}\r\n").as_bytes()),
            Err(ParseError::TooManyHeaders)
        );
    }

    #[test]
    fn upgrade_headers_are_read() {
        let (req, len) = parse_ok(
            "GET /ws/al%20ice?room=x HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n\
             Connection: keep-alive, Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
             Sec-WebSocket-Version: 13\r\n\r\nextra",
        );
        assert_eq!(req.path(), "/ws/al%20ice");
        assert_eq!(req.query(), Some("room=x"));
        assert!(req.connection_upgrade);
        assert_eq!(req.upgrade.as_deref(), Some("websocket"));
        assert_eq!(
            req.sec_websocket_key.as_deref(),
            Some("dGhlIHNhbXBsZSBub25jZQ==")
        );
        assert_eq!(req.sec_websocket_version.as_deref(), Some("13"));
        assert_eq!(len, "GET /ws/al%20ice?room=x HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: keep-alive, Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n".len());
    }

    #[test]
    fn responses_are_well_formed() {
        let mut out = Vec::new();
        Response::text(404, "not found\n")
            .keep_alive(false)
            .write_to(&mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "HTTP/1.1 404 Not Found\r\nServer: chat-mio-server\r\n\
             Content-Type: text/plain; charset=utf-8\r\nContent-Length: 10\r\n\
             Connection: close\r\n\r\nnot found\n"
        );
        let mut out = Vec::new();
        Response::new(200, b"abc")
            .head_only(true)
            .write_to(&mut out);
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("Content-Length: 3\r\n"));
        assert!(text.ends_with("\r\n\r\n"));
    }
}

#[cfg(test)]
pub(crate) mod proptests {
    //! No input makes the head parser panic, and what it accepts is consistent. Besides
    //! arbitrary bytes, a grammar builds "almost HTTP" (real methods, targets with random
    //! escapes, random headers, line ends anywhere), so most cases get past the request line and
    //! reach the header and keep-alive logic. The target grammar is shared with `routes.rs`.

    use super::*;
    use proptest::prelude::*;

    /// Mostly real methods, sometimes any token, sometimes anything at all.
    pub(crate) fn method() -> impl Strategy<Value = String> {
        prop_oneof![
            8 => prop::sample::select(
                &["GET", "HEAD", "POST", "PUT", "OPTIONS", "CONNECT", "get"][..]
            )
            .prop_map(str::to_owned),
            1 => "[A-Za-z!~_-]{0,8}",
            1 => any::<String>(),
        ]
    }

    /// A request target built from pieces that matter to the routes: prefixes, dot segments,
    /// separators, escapes well-formed and broken, and any character.
    pub(crate) fn target() -> impl Strategy<Value = String> {
        let piece = prop_oneof![
            6 => prop::sample::select(
                &["/", "/ws/", "/static/", "..", ".", "?", "#", "\\", "index.html", "chat.js"][..]
            )
            .prop_map(str::to_owned),
            4 => "[a-zA-Z0-9._~-]{1,6}",
            4 => "%[0-9A-Fa-f]{2}",
            1 => "%[0-9A-Za-z%]{0,2}",
            1 => any::<char>().prop_map(String::from),
        ];
        let start = prop_oneof![9 => Just("/"), 1 => Just("")];
        (start, prop::collection::vec(piece, 0..12))
            .prop_map(|(start, pieces)| format!("{start}{}", pieces.concat()))
    }

    fn version() -> impl Strategy<Value = String> {
        prop_oneof![
            6 => Just("HTTP/1.1".to_owned()),
            3 => Just("HTTP/1.0".to_owned()),
            1 => "HTTP/[0-9]\\.[0-9]{1,2}",
            1 => "[ -~]{0,10}",
        ]
    }

    fn header_name() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            30 => prop::sample::select(
                &[
                    "Host", "Connection", "connection", "Upgrade", "Sec-WebSocket-Key",
                    "Sec-WebSocket-Version", "Origin", "ORIGIN", "If-None-Match", "Accept",
                    "User-Agent", "Content-Length", "Transfer-Encoding",
                ][..]
            )
            .prop_map(|s| s.as_bytes().to_vec()),
            6 => "[A-Za-z0-9!#$%&'*+.^_`|~-]{1,12}".prop_map(String::into_bytes),
            1 => "[!-~]{0,12}".prop_map(String::into_bytes),
            1 => prop::collection::vec(any::<u8>(), 0..8),
        ]
    }

    fn header_value() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            14 => prop::sample::select(
                &[
                    "close", "keep-alive", "Upgrade", "keep-alive, Upgrade", "close, upgrade",
                    "websocket", "13", "0", "5", "-1", "18446744073709551616", "",
                    "dGhlIHNhbXBsZSBub25jZQ==", "http://evil.example", "*", "\"abc\"",
                ][..]
            )
            .prop_map(|s| s.as_bytes().to_vec()),
            5 => "[ -~]{0,20}".prop_map(String::into_bytes),
            1 => prop::collection::vec(any::<u8>(), 0..16),
        ]
    }

    /// Mostly CRLF; sometimes a bare LF or CR, nothing, trailing space, or a blank line early.
    fn line_end() -> impl Strategy<Value = &'static str> {
        prop_oneof![
            30 => Just("\r\n"),
            1 => Just("\n"),
            1 => Just("\r"),
            1 => Just(""),
            1 => Just(" \r\n"),
            1 => Just("\r\n\r\n"),
        ]
    }

    /// Bytes that are HTTP most of the way: a request line, up to 80 header lines (more than
    /// [`MAX_HEADERS`]), an end, something after it, perhaps cut short anywhere.
    fn almost_http() -> impl Strategy<Value = Vec<u8>> {
        let header = || {
            (
                header_name(),
                prop_oneof![
                    40 => Just(": "),
                    4 => Just(":"),
                    1 => Just(":\t"),
                    1 => Just(" : "),
                    1 => Just(""),
                ],
                header_value(),
                line_end(),
            )
        };
        (
            (method(), target(), version(), line_end()),
            // Usually a few headers, sometimes more than the parser has room for.
            prop_oneof![
                4 => prop::collection::vec(header(), 0..8),
                1 => prop::collection::vec(header(), 0..80),
                // Clean lines around the limit, so the limit itself is reached.
                1 => (MAX_HEADERS - 4..MAX_HEADERS + 4).prop_map(|n| {
                    vec![(b"X-Many".to_vec(), ": ", b"v".to_vec(), "\r\n"); n]
                }),
            ],
            line_end(),
            prop::collection::vec(any::<u8>(), 0..8),
            any::<Option<prop::sample::Index>>(),
        )
            .prop_map(
                |((method, target, version, eol), headers, end, rest, cut)| {
                    let mut bytes = format!("{method} {target} {version}{eol}").into_bytes();
                    for (name, sep, value, eol) in headers {
                        bytes.extend_from_slice(&name);
                        bytes.extend_from_slice(sep.as_bytes());
                        bytes.extend_from_slice(&value);
                        bytes.extend_from_slice(eol.as_bytes());
                    }
                    bytes.extend_from_slice(end.as_bytes());
                    bytes.extend_from_slice(&rest);
                    if let Some(cut) = cut {
                        bytes.truncate(cut.index(bytes.len() + 1));
                    }
                    bytes
                },
            )
    }

    /// A head the parser must accept as sent: a token method, an origin-form target, HTTP/1.x,
    /// CRLF everywhere, at most [`MAX_HEADERS`] headers none of which it interprets.
    fn well_formed() -> impl Strategy<Value = (String, String, u8, Vec<u8>)> {
        (
            "[A-Z]{1,7}",
            "/[a-zA-Z0-9/._~%-]{0,40}",
            0u8..=1,
            prop::collection::vec(
                ("X-[A-Za-z0-9-]{0,12}", "[!-~]([ -~]{0,20}[!-~])?"),
                0..=MAX_HEADERS,
            ),
        )
            .prop_map(|(method, target, minor, headers)| {
                let mut head = format!("{method} {target} HTTP/1.{minor}\r\n");
                for (name, value) in headers {
                    head.push_str(&format!("{name}: {value}\r\n"));
                }
                head.push_str("\r\n");
                (method, target, minor, head.into_bytes())
            })
    }

    /// Parses `buf` and checks whatever it accepted.
    fn check(buf: &[u8]) {
        let Ok(Some((request, len))) = parse(buf) else {
            return;
        };
        assert!(
            len > 0 && len <= buf.len(),
            "head length {len} of {}",
            buf.len()
        );
        assert!(
            request.minor_version <= 1,
            "HTTP/1.{}",
            request.minor_version
        );
        let path = request.path();
        match request.query() {
            Some(query) => assert_eq!(format!("{path}?{query}"), request.target),
            None => assert_eq!(path, request.target),
        }
        // The head stands alone: what follows it does not change it.
        assert_eq!(parse(&buf[..len]), Ok(Some((request.clone(), len))));
        // A head that arrives in pieces is never refused half-way: cut at every line end (and
        // just after), each prefix is only incomplete.
        for (i, _) in buf[..len]
            .iter()
            .enumerate()
            .filter(|(_, b)| matches!(b, b'\r' | b'\n'))
        {
            for cut in [i, i + 1] {
                if cut < len {
                    assert_eq!(parse(&buf[..cut]), Ok(None), "prefix of {cut} bytes");
                }
            }
        }
    }

    proptest! {
        // Failures are reported with their minimal input; no regression files are written.
        #![proptest_config(ProptestConfig {
            failure_persistence: None,
            ..ProptestConfig::default()
        })]

        #[test]
        fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..2048)) {
            check(&bytes);
        }

        #[test]
        fn almost_http_never_panics(bytes in almost_http()) {
            check(&bytes);
        }

        #[test]
        fn well_formed_heads_are_accepted_as_sent((method, target, minor, head) in well_formed()) {
            let (request, len) = parse(&head)
                .unwrap_or_else(|e| panic!("{e:?}: {:?}", String::from_utf8_lossy(&head)))
                .expect("a complete head");
            prop_assert_eq!(len, head.len());
            prop_assert_eq!(request.method, method);
            prop_assert_eq!(request.target, target);
            prop_assert_eq!(request.minor_version, minor);
            prop_assert_eq!(request.keep_alive, minor == 1);
            prop_assert!(!request.has_body);
            check(&head);
        }
    }
}
