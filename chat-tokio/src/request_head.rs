//! An incoming request's head, as hyper parsed it, copied into the [`chat_adapter::http::Request`]
//! the routes read: the same header rules as the mio server's own parser
//! ([`Request::from_head`] is shared), so both adapters answer a request the same way.

use axum::http::request::Parts;
use axum::http::Version;
use chat_adapter::http::{ParseError, Request, MAX_HEADERS, MAX_REQUEST_HEAD};

/// Why a head hyper accepted is refused, as the mio server's parser refuses it.
#[derive(Debug, PartialEq, Eq)]
pub enum HeadRefused {
    /// 400.
    Malformed,
    /// More than [`MAX_HEADERS`] header lines: 431.
    TooManyHeaders,
    /// Longer than [`MAX_REQUEST_HEAD`] bytes: 431.
    TooLarge,
}

/// The routes' view of `parts`. Under `Router::nest` the path is the nested router's (the
/// prefix stripped), as the routes expect. HTTP/2 and later count as 1.1 (keep-alive).
pub fn request_head(parts: &Parts) -> Result<Request, HeadRefused> {
    let target = parts
        .uri
        .path_and_query()
        .map_or("/", |path_and_query| path_and_query.as_str());
    let minor_version = if parts.version == Version::HTTP_10 || parts.version == Version::HTTP_09 {
        0
    } else {
        1
    };
    let headers: Vec<(&str, &[u8])> = parts
        .headers
        .iter()
        .map(|(name, value)| (name.as_str(), value.as_bytes()))
        .collect();
    if headers.len() > MAX_HEADERS {
        return Err(HeadRefused::TooManyHeaders);
    }
    // The head's size as sent: request line, `name: value` lines, the blank line.
    let size = parts.method.as_str().len()
        + target.len()
        + "  HTTP/1.1\r\n\r\n".len()
        + headers
            .iter()
            .map(|(name, value)| name.len() + value.len() + ": \r\n".len())
            .sum::<usize>();
    if size > MAX_REQUEST_HEAD {
        return Err(HeadRefused::TooLarge);
    }
    Request::from_head(parts.method.as_str(), target, minor_version, &headers).map_err(
        |e| match e {
            ParseError::Malformed => HeadRefused::Malformed,
            ParseError::TooManyHeaders => HeadRefused::TooManyHeaders,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(build: axum::http::request::Builder) -> Request {
        let (parts, ()) = build.body(()).expect("a valid test request").into_parts();
        request_head(&parts).expect("a well-formed head")
    }

    #[test]
    fn the_fields_the_routes_read() {
        struct Case {
            name: &'static str,
            request: axum::http::request::Builder,
            check: fn(&Request) -> bool,
        }
        let get = |uri: &str| axum::http::Request::builder().uri(uri);
        let cases = [
            Case {
                name: "path and query kept as sent",
                request: get("/ws/alice?room=dev&since=3"),
                check: |r| r.path() == "/ws/alice" && r.query() == Some("room=dev&since=3"),
            },
            Case {
                name: "a bare authority-less URI is /",
                request: get("/"),
                check: |r| r.target == "/" && r.method == "GET",
            },
            Case {
                name: "HTTP/1.1 keeps alive",
                request: get("/"),
                check: |r| r.minor_version == 1 && r.keep_alive,
            },
            Case {
                name: "HTTP/1.0 does not",
                request: get("/").version(Version::HTTP_10),
                check: |r| r.minor_version == 0 && !r.keep_alive,
            },
            Case {
                name: "Connection: close wins",
                request: get("/").header("Connection", "keep-alive, close"),
                check: |r| !r.keep_alive,
            },
            Case {
                name: "an upgrade request",
                request: get("/ws/bob")
                    .header("Connection", "keep-alive, Upgrade")
                    .header("Upgrade", "websocket")
                    .header("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
                    .header("Sec-WebSocket-Version", "13"),
                check: |r| {
                    r.connection_upgrade
                        && r.upgrade.as_deref() == Some("websocket")
                        && r.sec_websocket_key.as_deref() == Some("dGhlIHNhbXBsZSBub25jZQ==")
                        && r.sec_websocket_version.as_deref() == Some("13")
                },
            },
            Case {
                name: "repeated subprotocol headers form one list",
                request: get("/ws/bob")
                    .header("Sec-WebSocket-Protocol", "chat.v2")
                    .header("Sec-WebSocket-Protocol", "other"),
                check: |r| r.sec_websocket_protocol.as_deref() == Some("chat.v2, other"),
            },
            Case {
                name: "a bearer token",
                request: get("/ws/bob").header("Authorization", "Bearer abc.def"),
                check: |r| r.bearer.as_ref().map(|c| c.expose()) == Some("abc.def"),
            },
            Case {
                name: "forwarded headers, origin, host, etag",
                request: get("/")
                    .header("X-Forwarded-For", "10.0.0.1")
                    .header("X-Forwarded-For", "10.0.0.2")
                    .header("X-Forwarded-Proto", "https")
                    .header("Origin", "http://localhost:8000")
                    .header("Host", "localhost:8000")
                    .header("If-None-Match", "\"abc\""),
                check: |r| {
                    r.forwarded_for.as_deref() == Some("10.0.0.1, 10.0.0.2")
                        && r.forwarded_proto.as_deref() == Some("https")
                        && r.origin.as_deref() == Some("http://localhost:8000")
                        && r.host.as_deref() == Some("localhost:8000")
                        && r.if_none_match.as_deref() == Some("\"abc\"")
                },
            },
            Case {
                name: "a body is announced",
                request: get("/").method("POST").header("Content-Length", "5"),
                check: |r| r.method == "POST" && r.has_body && r.content_length == Some(5),
            },
            Case {
                name: "no body",
                request: get("/").header("Content-Length", "0"),
                check: |r| !r.has_body,
            },
        ];
        for case in cases {
            let request = head(case.request);
            assert!((case.check)(&request), "{}: {request:?}", case.name);
        }
    }

    #[test]
    fn a_garbled_content_length_is_malformed() {
        let (parts, ()) = axum::http::Request::builder()
            .uri("/")
            .header("Content-Length", "five")
            .body(())
            .expect("a valid test request")
            .into_parts();
        assert_eq!(request_head(&parts), Err(HeadRefused::Malformed));
    }

    #[test]
    fn heads_the_mio_parser_refuses_are_refused() {
        let mut many = axum::http::Request::builder().uri("/");
        for n in 0..=MAX_HEADERS {
            many = many.header(format!("x-h{n}"), "1");
        }
        let (parts, ()) = many.body(()).expect("valid").into_parts();
        assert_eq!(request_head(&parts), Err(HeadRefused::TooManyHeaders));
        let (parts, ()) = axum::http::Request::builder()
            .uri(format!("/{}", "a".repeat(MAX_REQUEST_HEAD)))
            .body(())
            .expect("valid")
            .into_parts();
        assert_eq!(request_head(&parts), Err(HeadRefused::TooLarge));
    }
}
