//! HTTP answers of the standalone server: the same bytes and statuses as the mio server's.

mod common;

use chat_adapter::Assets;
use chat_tokio::Config;
use common::{http_get, memory, start};

#[test]
fn the_page_and_static_files_are_the_embedded_ones() {
    let server = start(memory());
    let addr = server.local_addr();
    let assets = Assets::embedded();
    for (path, name) in [("/", "index.html"), ("/static/style.css", "style.css")] {
        let (status, head, body) = http_get(addr, path);
        let asset = assets.get(name).expect("an embedded file");
        assert_eq!(status, 200, "{path}: {head}");
        assert_eq!(body, asset.body.as_ref(), "{path}");
        assert!(
            head.to_ascii_lowercase()
                .contains(&format!("etag: {}", asset.etag).to_ascii_lowercase()),
            "{path}: {head}"
        );
    }
    server.shutdown().expect("a clean stop");
}

#[test]
fn health_and_refusals_answer_as_the_mio_server() {
    let server = start(memory());
    let addr = server.local_addr();
    let cases = [
        ("/healthz", 200, &b"ok\n"[..]),
        ("/readyz", 200, &b"ready\n"[..]),
        ("/nowhere", 404, &b"not found\n"[..]),
        ("/static/nope.css", 404, &b"not found\n"[..]),
    ];
    for (path, want, want_body) in cases {
        let (status, head, body) = http_get(addr, path);
        assert_eq!(status, want, "{path}: {head}");
        assert_eq!(body, want_body, "{path}");
    }
    // A plain GET of the WebSocket path is refused by the shared upgrade rules.
    let (status, head, _) = http_get(addr, "/ws/alice");
    assert_eq!(status, 426, "{head}");
    server.shutdown().expect("a clean stop");
}

#[test]
fn unsupported_options_are_refused_at_start_with_the_alternative() {
    let error = chat_tokio::RunningServer::start(Config {
        bind: "127.0.0.1:0".parse().expect("literal"),
        tls_cert: Some("cert.pem".into()),
        tls_key: Some("key.pem".into()),
        ..memory()
    })
    .err()
    .expect("TLS is refused");
    assert_eq!(error.kind(), std::io::ErrorKind::InvalidInput);
    assert!(error.to_string().contains("reverse proxy"), "{error}");
}

/// Everything the server writes on a connection that sent `raw`, until it closes.
fn answer_to(addr: std::net::SocketAddr, raw: &[u8]) -> String {
    use std::io::{Read, Write};
    let mut stream = common::tcp(addr);
    stream.write_all(raw).expect("send");
    let mut answer = Vec::new();
    stream
        .read_to_end(&mut answer)
        .expect("read until the server closes");
    String::from_utf8_lossy(&answer).into_owned()
}

#[test]
fn heads_are_checked_before_hyper_and_refused_with_the_mio_servers_answers() {
    let server = start(Config {
        request_timeout: std::time::Duration::from_millis(200),
        ..memory()
    });
    let addr = server.local_addr();
    let big = format!("GET / HTTP/1.1\r\nX-Pad: {}\r\n\r\n", "a".repeat(9000));
    let cases: [(&[u8], &str); 4] = [
        (b"GARBAGE\r\n\r\n", "HTTP/1.1 400 Bad Request\r\n"),
        (big.as_bytes(), "HTTP/1.1 431 "),
        // Half a head: 408 once the request timeout has passed.
        (b"GET / HTTP/1.1\r\nHost: t\r\n", "HTTP/1.1 408 "),
        (
            b"GET / HTTP/1.1\r\nContent-Length: 0\r\nContent-Length: 5\r\n\r\nhello",
            "HTTP/1.1 400 Bad Request\r\n",
        ),
    ];
    for (raw, status_line) in cases {
        let answer = answer_to(addr, raw);
        assert!(answer.starts_with(status_line), "{answer}");
        // Written here, not by hyper: the mio server's bytes, with this server's name.
        assert!(answer.contains("\r\nServer: chat-tokio\r\n"), "{answer}");
        assert!(answer.contains("\r\nConnection: close\r\n"), "{answer}");
    }
    server.shutdown().expect("a clean stop");
}

#[test]
fn connections_beyond_max_connections_get_503_at_accept() {
    let server = start(Config {
        max_connections: 1,
        ..memory()
    });
    let addr = server.local_addr();
    let held = common::tcp(addr);
    // Nothing asked: the refusal comes at accept.
    let answer = answer_to(addr, b"");
    assert!(answer.starts_with("HTTP/1.1 503 "), "{answer}");
    drop(held);
    server.shutdown().expect("a clean stop");
}
