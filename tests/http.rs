//! End-to-end tests of the HTTP side: static files, keep-alive, caching, refusals and hostile
//! requests, spoken byte by byte over a plain `TcpStream` so nothing is smoothed over by a
//! client library.

mod common;
#[path = "common/http_client.rs"]
mod http_client;

use common::TestServer;
use http_client::{assert_page_served, Http, Response, PAGE_MARKER};

/// `method target` on a fresh connection, with `extra` header lines (each ending in `\r\n`).
fn request(server: &TestServer, method: &str, target: &str, extra: &str) -> Response {
    http_client::request(server.addr, method, target, extra)
}

fn get(server: &TestServer, target: &str) -> Response {
    request(server, "GET", target, "")
}

/// The page is still served to a well-behaved client.
fn assert_still_serving(server: &TestServer) {
    assert_page_served(server.addr);
}

fn assert_content_length_matches(response: &Response, what: &str) {
    assert_eq!(
        response.content_length(),
        Some(response.body.len()),
        "{what}: Content-Length vs body"
    );
}

#[test]
fn root_serves_the_chat_page() {
    let server = TestServer::start();
    let page = get(&server, "/");
    assert_eq!(page.status, 200);
    assert_eq!(
        page.header("Content-Type"),
        Some("text/html; charset=utf-8")
    );
    assert_content_length_matches(&page, "/");
    assert!(page.body_text().contains(PAGE_MARKER));

    // The same file under its own name, and with a query string (cache busting).
    for target in ["/static/index.html", "/?v=2"] {
        let same = get(&server, target);
        assert_eq!(same.status, 200, "{target}");
        assert_eq!(same.body, page.body, "{target} is the page");
        assert_eq!(same.header("ETag"), page.header("ETag"), "{target}");
    }
}

#[test]
fn static_files_have_their_content_types() {
    let server = TestServer::start();
    let cases = [
        (
            "/static/chat.js",
            &["text/javascript", "application/javascript"][..],
        ),
        ("/static/style.css", &["text/css"][..]),
        ("/static/index.html", &["text/html"][..]),
        ("/static/style.css?v=1", &["text/css"][..]),
    ];
    for (target, types) in cases {
        let response = get(&server, target);
        assert_eq!(response.status, 200, "{target}");
        assert!(!response.body.is_empty(), "{target} is empty");
        assert_content_length_matches(&response, target);
        let content_type = response.header("Content-Type").expect("a Content-Type");
        let essence = content_type.split(';').next().unwrap_or_default().trim();
        assert!(
            types.contains(&essence),
            "{target}: Content-Type {content_type:?}, want one of {types:?}"
        );
        // Scripts and styles are refused by browsers under nosniff unless typed right: the two
        // go together.
        assert_eq!(response.header("X-Content-Type-Options"), Some("nosniff"));
        assert!(response.header("ETag").is_some(), "{target} has an ETag");
    }
}

#[test]
fn head_has_the_headers_of_get_and_no_body() {
    let server = TestServer::start();
    for target in ["/", "/static/chat.js", "/no/such/file"] {
        let got = get(&server, target);
        let mut http = Http::connect(server.addr);
        http.send(format!("HEAD {target} HTTP/1.1\r\nHost: test\r\n\r\n"));
        let head = http.response(true);
        assert_eq!(head.status, got.status, "HEAD {target}");
        for name in ["Content-Type", "Content-Length", "ETag", "Cache-Control"] {
            assert_eq!(head.header(name), got.header(name), "HEAD {target}: {name}");
        }
        assert_eq!(head.content_length(), Some(got.body.len()));

        // Had any body followed the head, it would be parsed as the next response here.
        http.send("GET /static/style.css HTTP/1.1\r\nHost: test\r\n\r\n");
        let next = http.response(false);
        assert_eq!(
            next.status, 200,
            "the request after HEAD {target}: {next:?}"
        );
        assert_eq!(next.body, get(&server, "/static/style.css").body);
    }
}

#[test]
fn unknown_paths_are_404_and_the_connection_stays_usable() {
    let server = TestServer::start();
    let mut http = Http::connect(server.addr);
    for target in ["/nope", "/static/nope.js", "/static/", "/static"] {
        http.send(format!("GET {target} HTTP/1.1\r\nHost: test\r\n\r\n"));
        let response = http.response(false);
        assert_eq!(response.status, 404, "{target}");
        assert_content_length_matches(&response, target);
    }
    http.send("GET / HTTP/1.1\r\nHost: test\r\n\r\n");
    assert_eq!(http.response(false).status, 200);
}

#[test]
fn other_methods_are_405_with_allow() {
    let server = TestServer::start();
    for method in ["POST", "PUT", "DELETE", "OPTIONS"] {
        let response = request(&server, method, "/", "Content-Length: 0\r\n");
        assert_eq!(response.status, 405, "{method} /");
        let allow = response.header("Allow").expect("405 must list Allow");
        let mut allowed: Vec<&str> = allow.split(',').map(str::trim).collect();
        allowed.sort_unstable();
        assert_eq!(allowed, ["GET", "HEAD"], "{method} /: Allow");
    }
    assert_still_serving(&server);
}

#[test]
fn malformed_requests_get_400_and_the_connection_closes() {
    let server = TestServer::start();
    let requests: [&[u8]; 4] = [
        b"GARBAGE\r\n\r\n",
        b"GET / HTTP/2.0\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: test\r\nContent-Length: lots\r\n\r\n",
        // A TLS ClientHello sent to the plain-HTTP port.
        b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03\r\n\r\n",
    ];
    for raw in requests {
        let mut http = Http::connect(server.addr);
        http.send(raw);
        let response = http.response(false);
        assert_eq!(response.status, 400, "{:?}", String::from_utf8_lossy(raw));
        assert_eq!(response.header("Connection"), Some("close"));
        http.expect_closed();
        assert_still_serving(&server);
    }
}

#[test]
fn keep_alive_answers_sequential_and_pipelined_requests() {
    let server = TestServer::start();
    let css = get(&server, "/static/style.css");
    let js = get(&server, "/static/chat.js");
    let page = get(&server, "/");

    // One after the other on one connection.
    let mut http = Http::connect(server.addr);
    http.send("GET /static/style.css HTTP/1.1\r\nHost: test\r\n\r\n");
    let first = http.response(false);
    assert_eq!(first.header("Connection"), Some("keep-alive"));
    assert_eq!(first.body, css.body);
    http.send("GET /static/chat.js HTTP/1.1\r\nHost: test\r\n\r\n");
    assert_eq!(http.response(false).body, js.body);

    // Three in a single write, a HEAD in the middle: answered in order.
    http.send(
        "GET /static/chat.js HTTP/1.1\r\nHost: test\r\n\r\n\
         HEAD / HTTP/1.1\r\nHost: test\r\n\r\n\
         GET /static/style.css HTTP/1.1\r\nHost: test\r\n\r\n",
    );
    assert_eq!(http.response(false).body, js.body);
    let head = http.response(true);
    assert_eq!(head.status, 200);
    assert_eq!(head.content_length(), Some(page.body.len()));
    assert_eq!(http.response(false).body, css.body);
}

#[test]
fn connection_close_is_honoured() {
    let server = TestServer::start();

    let mut http = Http::connect(server.addr);
    http.send("GET / HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
    let response = http.response(false);
    assert_eq!(response.status, 200);
    assert_eq!(response.header("Connection"), Some("close"));
    http.expect_closed();

    // A request pipelined after the closing one is not answered.
    let mut http = Http::connect(server.addr);
    http.send(
        "GET /static/style.css HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n\
         GET / HTTP/1.1\r\nHost: test\r\n\r\n",
    );
    assert_eq!(http.response(false).status, 200);
    http.expect_closed();

    // HTTP/1.0 closes by default.
    let mut http = Http::connect(server.addr);
    http.send("GET / HTTP/1.0\r\n\r\n");
    let response = http.response(false);
    assert_eq!(response.status, 200);
    assert_eq!(response.header("Connection"), Some("close"));
    http.expect_closed();
}

#[test]
fn etag_revalidation_gives_304_without_a_body() {
    let server = TestServer::start();
    let page = get(&server, "/");
    let etag = page.header("ETag").expect("an ETag").to_owned();
    assert!(
        etag.starts_with('"') && etag.ends_with('"') && etag.len() > 2,
        "a strong, quoted ETag: {etag:?}"
    );
    assert_ne!(
        get(&server, "/static/chat.js").header("ETag"),
        Some(etag.as_str()),
        "different files, different tags"
    );

    let mut http = Http::connect(server.addr);
    for if_none_match in [etag.clone(), format!("\"other\", {etag}"), "*".to_owned()] {
        http.send(format!(
            "GET / HTTP/1.1\r\nHost: test\r\nIf-None-Match: {if_none_match}\r\n\r\n"
        ));
        let response = http.response(false);
        assert_eq!(response.status, 304, "If-None-Match: {if_none_match}");
        assert_eq!(response.header("ETag"), Some(etag.as_str()));
    }
    // A stale tag gets the full page. Had a 304 above carried a body, it would be parsed as
    // this response.
    http.send("GET / HTTP/1.1\r\nHost: test\r\nIf-None-Match: \"stale\"\r\n\r\n");
    let response = http.response(false);
    assert_eq!(response.status, 200);
    assert_eq!(response.body, page.body);
}

#[test]
fn path_traversal_never_leaves_the_static_files() {
    let embedded = TestServer::start();
    // Served from the directory on disk, where a path mistake could reach real files.
    let from_dir = TestServer::with_config(chat_mio_server::Config {
        static_dir: Some(concat!(env!("CARGO_MANIFEST_DIR"), "/static").into()),
        ..chat_mio_server::Config::default()
    });

    let attempts = [
        "/static/../Cargo.toml",
        "/static/%2e%2e/Cargo.toml",
        "/static/%2E%2E%2FCargo.toml",
        "/static/..%2fCargo.toml",
        "/static/..%5cCargo.toml",
        "/static/..\\Cargo.toml",
        "/static//etc/passwd",
        "/static/%2fetc%2fpasswd",
        "/static/../../../../../../etc/passwd",
        "/static/%2e%2e%2f%2e%2e%2f%2e%2e%2f%2e%2e%2fetc%2fpasswd",
        "/static/./../Cargo.toml",
        "/static/%00../Cargo.toml",
        "/../Cargo.toml",
        "/Cargo.toml",
        "/static/Cargo.toml",
        "/static/../chat-mio-server/src/lib.rs",
    ];
    for server in [&embedded, &from_dir] {
        for target in attempts {
            let response = get(server, target);
            assert!(
                matches!(response.status, 400 | 404),
                "GET {target}: status {} with {:?}",
                response.status,
                String::from_utf8_lossy(&response.body)
            );
            assert_still_serving(server);
        }
    }
}

#[cfg(unix)]
#[test]
fn symlinks_out_of_the_static_dir_are_not_served() {
    let dir = std::env::temp_dir().join(format!("chat-http-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create a temporary static dir");
    std::fs::write(dir.join("index.html"), "<p>inside</p>").expect("write index.html");
    std::os::unix::fs::symlink(
        concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml"),
        dir.join("leak.txt"),
    )
    .expect("create a symlink");
    std::os::unix::fs::symlink("/etc", dir.join("etc")).expect("create a symlink");

    let server = TestServer::with_config(chat_mio_server::Config {
        static_dir: Some(dir.clone()),
        ..chat_mio_server::Config::default()
    });
    let statuses = [
        get(&server, "/").status,
        get(&server, "/static/leak.txt").status,
        get(&server, "/static/etc/passwd").status,
    ];
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(
        statuses,
        [200, 404, 404],
        "/, a link to a file, a link to a dir"
    );
}

#[test]
fn websocket_upgrade_answers_101_with_the_accept_key() {
    let server = TestServer::start();
    let mut http = Http::connect(server.addr);
    // RFC 6455, section 1.3: this key must be answered with s3pPLMBiTxaQ9kYGzzhZRbK+xOo=.
    http.send(
        "GET /ws/bob HTTP/1.1\r\nHost: test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    );
    let response = http.response(false);
    assert_eq!(response.status, 101, "{response:?}");
    assert_eq!(
        response.header("Upgrade").map(str::to_ascii_lowercase),
        Some("websocket".to_owned())
    );
    assert_eq!(
        response.header("Sec-WebSocket-Accept"),
        Some("s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
    );
}

#[test]
fn oversized_request_heads_get_431() {
    let server = TestServer::start();

    let mut http = Http::connect(server.addr);
    http.send(format!(
        "GET / HTTP/1.1\r\nHost: test\r\nX-Padding: {}\r\n\r\n",
        "a".repeat(9 * 1024)
    ));
    let response = http.response(false);
    assert_eq!(response.status, 431, "a 9 KiB header");
    http.expect_closed();
    assert_still_serving(&server);

    // 64 header fields are the most a request may have (Host is one of them).
    let fields = |n: usize| -> String { (0..n).map(|i| format!("X-Field-{i}: y\r\n")).collect() };
    let response = request(&server, "GET", "/", &fields(63));
    assert_eq!(response.status, 200, "64 header fields");
    let response = request(&server, "GET", "/", &fields(64));
    assert_eq!(response.status, 431, "65 header fields");
    assert_still_serving(&server);

    // Just under the limit is fine.
    let response = request(
        &server,
        "GET",
        "/",
        &format!("X-Padding: {}\r\n", "a".repeat(7 * 1024)),
    );
    assert_eq!(response.status, 200, "a 7 KiB header");
}

#[test]
fn pipelined_requests_beyond_8_kib_are_all_answered() {
    // 300 small requests in one write: 13.8 KB, more than the server reads at a time (its 8 KiB
    // head limit applies to one head, not to the whole pipeline).
    let server = TestServer::start();
    let request = "GET /static/style.css HTTP/1.1\r\nHost: test\r\n\r\n";
    let count = 300;
    let mut http = Http::connect(server.addr);
    http.send(request.repeat(count));
    for i in 0..count {
        // A stall shows as a read timeout here; the index tells how far the server got.
        eprintln!("reading response {i} of {count}");
        let response = http.response(false);
        assert_eq!(response.status, 200, "response {i}");
    }
}

#[test]
fn a_request_followed_by_a_half_close_is_answered() {
    // What `printf 'GET / HTTP/1.0\r\n\r\n' | nc -N host port` does: the request, then EOF on
    // the client's sending side while it waits for the answer.
    // Whether the request and the EOF reach the server in one read is up to timing, so try a
    // few times.
    let server = TestServer::start();
    for attempt in 0..20 {
        let mut http = Http::connect(server.addr);
        http.send("GET / HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
        http.stream
            .shutdown(std::net::Shutdown::Write)
            .expect("half-close");
        let response = http.response(false);
        assert_eq!(response.status, 200, "attempt {attempt}");
        assert!(response.body_text().contains(PAGE_MARKER));
        http.expect_closed();
    }
}
