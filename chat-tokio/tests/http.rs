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
