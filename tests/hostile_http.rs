//! Hostile clients against the HTTP side of the server: oversized and endless request heads,
//! slowloris, foreign protocol versions, path traversal, bad WebSocket upgrades, foreign origins,
//! bad client ids, connection floods, and the health and metrics endpoints that watch over it all.
//!
//! Every scenario checks the exact answer, then that a well-behaved visitor on the same server is
//! still served: the page loads and two chat clients can talk.

#[path = "common/client.rs"]
mod client;
mod common;
#[path = "common/http_client.rs"]
mod http_client;
#[path = "common/metrics.rs"]
mod metrics;
#[path = "common/raw_ws.rs"]
mod raw_ws;
#[path = "common/scenario.rs"]
mod scenario;

use std::io::Write;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use chat_mio_server::Config;
use client::{
    close, connect, expect_join, expect_leave, expect_message, expect_only_marker, join_all,
    recv_frame, send, Client,
};
use common::TestServer;
use http_client::{get, request, Http, Response, PAGE_MARKER, TIMEOUT};
use metrics::Metrics;
use scenario::assert_still_serving;
use tungstenite::client::IntoClientRequest;
use tungstenite::handshake::HandshakeError;
use tungstenite::http::HeaderValue;

/// The request timeout of the slowloris scenarios: short, so the tests stay fast.
const REQUEST_TIMEOUT: Duration = Duration::from_millis(500);
/// The keep-alive timeout of the idle-connection scenario.
const KEEP_ALIVE_TIMEOUT: Duration = Duration::from_millis(300);
/// Time allowed on top of a server timeout before calling it missed (a loaded CI machine).
const TIMER_SLACK: Duration = Duration::from_secs(5);
/// The RFC 6455 example key (section 1.3).
const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// `raw` on a fresh connection: the answer must be `status` with `reason` in its plain-text body,
/// and the server must close the connection after it, taking nothing else from the bytes sent.
fn assert_refused(server: &TestServer, raw: &[u8], status: u16, reason: &str) {
    let what = String::from_utf8_lossy(raw);
    let what = what.get(..what.len().min(200)).unwrap_or(&what);
    let mut http = Http::connect(server.addr);
    http.send(raw);
    let response = http.response(false);
    assert_refusal(&response, status, reason, what);
    http.expect_closed();
}

/// `response` is a refusal with `status`, `Connection: close` and `reason` in a plain-text body.
fn assert_refusal(response: &Response, status: u16, reason: &str, what: &str) {
    assert_eq!(response.status, status, "{what}: {response:?}");
    assert_eq!(response.header("Connection"), Some("close"), "{what}");
    assert_eq!(
        response.header("Content-Type"),
        Some("text/plain; charset=utf-8"),
        "{what}"
    );
    assert!(
        response.body_text().contains(reason),
        "{what}: the body should say {reason:?}: {response:?}"
    );
}

/// A chat client that watches refused upgrades: had any become a chat client, the observer
/// would hear it join.
struct Observer(Client);

impl Observer {
    fn join(server: &TestServer) -> Observer {
        let mut client = connect(server, "observer");
        expect_join(&mut client, "observer");
        Observer(client)
    }

    /// Nobody joined since the observer did; it leaves cleanly.
    fn assert_nobody_joined(mut self) {
        expect_only_marker(&mut self.0, "observer", &mut []);
        close(self.0);
    }
}

/// A raw WebSocket upgrade request, valid until a test changes it.
struct Upgrade {
    method: &'static str,
    version: &'static str,
    target: String,
    headers: Vec<(&'static str, String)>,
}

impl Upgrade {
    /// `GET /ws/{raw_id}` with every header an upgrade needs, `Host` naming the server as a
    /// browser would.
    fn to(server: &TestServer, raw_id: &str) -> Upgrade {
        Upgrade {
            method: "GET",
            version: "HTTP/1.1",
            target: format!("/ws/{raw_id}"),
            headers: vec![
                ("Host", server.addr.to_string()),
                ("Upgrade", "websocket".to_owned()),
                ("Connection", "Upgrade".to_owned()),
                ("Sec-WebSocket-Key", KEY.to_owned()),
                ("Sec-WebSocket-Version", "13".to_owned()),
            ],
        }
    }

    fn method(mut self, method: &'static str) -> Upgrade {
        self.method = method;
        self
    }

    fn version(mut self, version: &'static str) -> Upgrade {
        self.version = version;
        self
    }

    /// Sets header `name` to `value`, replacing any earlier value.
    fn set(self, name: &'static str, value: &str) -> Upgrade {
        let mut upgrade = self.without(name);
        upgrade.headers.push((name, value.to_owned()));
        upgrade
    }

    fn without(mut self, name: &str) -> Upgrade {
        self.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        self
    }

    fn bytes(&self) -> Vec<u8> {
        let mut raw = format!("{} {} {}\r\n", self.method, self.target, self.version);
        for (name, value) in &self.headers {
            raw.push_str(&format!("{name}: {value}\r\n"));
        }
        raw.push_str("\r\n");
        raw.into_bytes()
    }

    /// Sends the request on a fresh connection and reads the answer.
    fn send(&self, server: &TestServer) -> (Http, Response) {
        let mut http = Http::connect(server.addr);
        http.send(self.bytes());
        let response = http.response(self.method == "HEAD");
        (http, response)
    }

    /// The upgrade must be refused with `status` and `reason`, and the connection closed.
    fn assert_refused(&self, server: &TestServer, status: u16, reason: &str) -> Response {
        let (mut http, response) = self.send(server);
        let what = format!("{} {} {:?}", self.method, self.target, self.headers);
        assert_refusal(&response, status, reason, &what);
        http.expect_closed();
        response
    }

    /// The upgrade must be accepted: `101` with the RFC 6455 accept key for [`KEY`].
    fn assert_accepted(&self, server: &TestServer) {
        let (_http, response) = self.send(server);
        assert_eq!(response.status, 101, "{:?}: {response:?}", self.headers);
        assert_eq!(
            response.header("Sec-WebSocket-Accept"),
            Some("s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
        );
    }
}

/// A chat client whose handshake carries `Origin: origin`, as a browser page would send.
fn try_connect_from(
    server: &TestServer,
    raw_id: &str,
    origin: &str,
) -> Result<Client, tungstenite::Error> {
    let mut request = server
        .ws_url(raw_id)
        .into_client_request()
        .expect("a valid ws:// URL");
    request.headers_mut().insert(
        "Origin",
        HeaderValue::from_str(origin).expect("a valid header value"),
    );
    match tungstenite::client(request, common::tcp_connect(server.addr)) {
        Ok((client, _response)) => Ok(client),
        Err(HandshakeError::Failure(e)) => Err(e),
        Err(HandshakeError::Interrupted(_)) => panic!("no handshake answer within {TIMEOUT:?}"),
    }
}

/// A client from `origin` joins and is greeted: the origin is admitted for real, not only
/// answered 101.
fn assert_origin_admitted(server: &TestServer, origin: &str) {
    let mut client = try_connect_from(server, "browser", origin)
        .unwrap_or_else(|e| panic!("Origin {origin:?} should be admitted: {e:?}"));
    expect_join(&mut client, "browser");
    send(&mut client, "hello from the page");
    // Clients an earlier step dropped without a close frame may be announced as leaving after
    // this join: a departure and a new client's arrival race (the mio loop takes them in its
    // turn's order, chat-tokio's tasks in the order they notice). Only their leave notices
    // may come before the page's own message.
    let frame = loop {
        let frame = recv_frame(&mut client);
        if frame.kind == "disconnection" && frame.client_id != "browser" {
            continue;
        }
        break frame;
    };
    assert_eq!(
        (
            frame.kind.as_str(),
            frame.client_id.as_str(),
            frame.message.as_str()
        ),
        ("message", "browser", "hello from the page"),
        "the page's own message"
    );
    close(client);
}

/// A directory under the system temp dir, removed (with everything in it) on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let path = std::env::temp_dir().join(format!("chat-hostile-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("create a temporary directory");
        TempDir(path)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// What a file outside the static directory holds: no response may ever contain it.
const SECRET: &str = "TOP SECRET: this file is outside the static directory";

/// A static directory next to a secret file, with symbolic links that lead out of it (to a file
/// by relative and by absolute path, to a directory) and one that stays inside:
///
/// ```text
/// root/secret.txt
/// root/static/index.html
/// root/static/sub/inner.txt
/// root/static/sub/up.txt  -> ../../secret.txt
/// root/static/alias.txt   -> sub/inner.txt
/// root/static/leak.txt    -> ../secret.txt
/// root/static/abs.txt     -> /…/root/secret.txt
/// root/static/etc         -> /etc
/// ```
#[cfg(unix)]
fn static_dir_with_escapes(name: &str) -> (TempDir, PathBuf) {
    use std::os::unix::fs::symlink;
    let root = TempDir::new(name);
    let dir = root.path().join("static");
    std::fs::create_dir_all(dir.join("sub")).expect("create static/sub");
    let secret = root.path().join("secret.txt");
    std::fs::write(&secret, SECRET).expect("write secret.txt");
    std::fs::write(dir.join("index.html"), format!("<input {PAGE_MARKER}>"))
        .expect("write index.html");
    std::fs::write(dir.join("sub/inner.txt"), "inner").expect("write inner.txt");
    symlink("../../secret.txt", dir.join("sub/up.txt")).expect("symlink up.txt");
    symlink("sub/inner.txt", dir.join("alias.txt")).expect("symlink alias.txt");
    symlink("../secret.txt", dir.join("leak.txt")).expect("symlink leak.txt");
    symlink(&secret, dir.join("abs.txt")).expect("symlink abs.txt");
    symlink("/etc", dir.join("etc")).expect("symlink etc");
    (root, dir)
}

/// Writes `prefix` at once, then one byte of `trickle` after another, `every` apart, cycling
/// through it forever: a request head that never completes. Stops when told or when the server
/// stops taking bytes.
struct Trickler {
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicUsize>,
    thread: Option<JoinHandle<()>>,
}

impl Trickler {
    fn start(
        mut stream: TcpStream,
        prefix: &'static [u8],
        trickle: &'static [u8],
        every: Duration,
    ) -> Trickler {
        let stop = Arc::new(AtomicBool::new(false));
        let sent = Arc::new(AtomicUsize::new(0));
        let thread = std::thread::spawn({
            let (stop, sent) = (Arc::clone(&stop), Arc::clone(&sent));
            move || {
                if stream.write_all(prefix).is_err() {
                    return;
                }
                for byte in trickle.iter().cycle() {
                    if stop.load(Ordering::Relaxed) {
                        return;
                    }
                    // Pacing, not synchronisation: this is what a slowloris does.
                    std::thread::sleep(every);
                    if stream.write_all(&[*byte]).is_err() {
                        return;
                    }
                    sent.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
        Trickler {
            stop,
            sent,
            thread: Some(thread),
        }
    }

    /// Bytes trickled after the prefix so far.
    fn sent(&self) -> usize {
        self.sent.load(Ordering::Relaxed)
    }
}

impl Drop for Trickler {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Scrapes `/metrics` on `http` until `chat_connections_open` is `n`: the server has taken note
/// of connections that ended. Each scrape is a round trip, so this waits on the server, not on
/// a clock.
fn wait_for_open_connections(http: &mut Http, n: u64) {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let open = Metrics::scrape(http).value("chat_connections_open");
        if open == n as f64 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "chat_connections_open stayed {open}, want {n}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Oversized request heads: 431 and closed (that they cost no memory: tests/memory.rs)
// ---------------------------------------------------------------------------------------------

#[test]
fn a_one_mib_header_gets_431_and_the_connection_closes() {
    let server = TestServer::start();
    // The server reads and drops what follows its refusal, so all of it is taken.
    assert_refused(
        &server,
        format!(
            "GET / HTTP/1.1\r\nHost: test\r\nX-Padding: {}\r\n\r\n",
            "a".repeat(1024 * 1024)
        )
        .as_bytes(),
        431,
        "request head too large",
    );
    assert_still_serving(&server);
}

#[test]
fn any_head_over_8_kib_gets_431() {
    let server = TestServer::start();
    let heads = [
        // A request line longer than the whole head may be.
        format!(
            "GET /{} HTTP/1.1\r\nHost: test\r\n\r\n",
            "a".repeat(9 * 1024)
        ),
        // Ten 1 KiB headers: each one is small, the head is not.
        format!(
            "GET / HTTP/1.1\r\nHost: test\r\n{}\r\n",
            (0..10)
                .map(|i| format!("X-Pad-{i}: {}\r\n", "b".repeat(1024)))
                .collect::<String>()
        ),
        // A head that never ends: no blank line at all.
        format!("GET / HTTP/1.1\r\nX-Endless: {}", "c".repeat(64 * 1024)),
    ];
    for head in &heads {
        assert_refused(&server, head.as_bytes(), 431, "request head too large");
    }
    // Just under the limit is fine.
    let response = request(
        server.addr,
        "GET",
        "/",
        &format!("X-Padding: {}\r\n", "a".repeat(7 * 1024)),
    );
    assert_eq!(response.status, 200, "a 7 KiB header");
    assert_still_serving(&server);
}

#[test]
fn ten_thousand_headers_get_431() {
    let server = TestServer::start();
    let headers: String = (0..10_000).map(|i| format!("X-H-{i}: v\r\n")).collect();
    assert_refused(
        &server,
        format!("GET / HTTP/1.1\r\nHost: test\r\n{headers}\r\n").as_bytes(),
        431,
        "too many header fields",
    );
    assert_still_serving(&server);
}

#[test]
fn more_than_64_headers_get_431() {
    let server = TestServer::start();
    let fields = |n: usize| -> String { (0..n).map(|i| format!("X-Field-{i}: y\r\n")).collect() };
    // Host is one of the fields.
    let response = request(server.addr, "GET", "/", &fields(63));
    assert_eq!(response.status, 200, "64 header fields: {response:?}");
    assert_refused(
        &server,
        format!("GET / HTTP/1.1\r\nHost: test\r\n{}\r\n", fields(64)).as_bytes(),
        431,
        "too many header fields",
    );
    assert_still_serving(&server);
}

// ---------------------------------------------------------------------------------------------
// Slowloris and idle connections
// ---------------------------------------------------------------------------------------------

fn with_request_timeout() -> TestServer {
    TestServer::with_config(Config {
        request_timeout: REQUEST_TIMEOUT,
        ..Config::default()
    })
}

#[test]
fn a_trickled_request_head_gets_408_then_closes() {
    let server = with_request_timeout();
    let mut http = Http::connect(server.addr);
    // The server starts the clock when the first bytes reach it, so after this instant.
    let started = Instant::now();
    // One header byte every 20 ms: each byte is news, but the head never completes.
    let trickler = Trickler::start(
        http.stream.try_clone().expect("clone the stream"),
        b"GET / HTTP/1.1\r\nHost: test\r\n",
        b"X-Slow: still coming\r\n",
        Duration::from_millis(20),
    );
    let response = http.response(false);
    let elapsed = started.elapsed();
    assert_refusal(
        &response,
        408,
        "request head not received in time",
        "slowloris",
    );
    assert!(
        elapsed >= REQUEST_TIMEOUT && elapsed < REQUEST_TIMEOUT + TIMER_SLACK,
        "408 after {elapsed:?}, request timeout {REQUEST_TIMEOUT:?}"
    );
    assert!(
        trickler.sent() >= 5,
        "the trickle was going on when the 408 came ({} bytes)",
        trickler.sent()
    );
    http.expect_closed();
    drop(trickler);
    assert_still_serving(&server);
}

#[test]
fn a_request_head_never_completed_gets_408_then_closes() {
    let server = with_request_timeout();
    let mut http = Http::connect(server.addr);
    // The server starts the clock when the first bytes reach it, so after this instant.
    let started = Instant::now();
    http.send("GET / HTTP/1.1\r\nHost: test\r\n");
    let response = http.response(false);
    let elapsed = started.elapsed();
    assert_refusal(
        &response,
        408,
        "request head not received in time",
        "half a head",
    );
    assert!(
        elapsed >= REQUEST_TIMEOUT && elapsed < REQUEST_TIMEOUT + TIMER_SLACK,
        "408 after {elapsed:?}, request timeout {REQUEST_TIMEOUT:?}"
    );
    http.expect_closed();
    assert_still_serving(&server);
}

#[test]
fn a_connection_that_never_sends_is_closed_after_the_request_timeout() {
    let server = with_request_timeout();
    // The server starts the clock when it accepts the connection, so after this instant.
    let started = Instant::now();
    let mut http = Http::connect(server.addr);
    // Nothing was asked, so nothing is answered: the connection just ends.
    http.expect_closed();
    let elapsed = started.elapsed();
    assert!(
        elapsed >= REQUEST_TIMEOUT && elapsed < REQUEST_TIMEOUT + TIMER_SLACK,
        "closed after {elapsed:?}, request timeout {REQUEST_TIMEOUT:?}"
    );
    assert_still_serving(&server);
}

#[test]
fn an_idle_keep_alive_connection_is_closed_after_the_keep_alive_timeout() {
    let server = TestServer::with_config(Config {
        keep_alive_timeout: KEEP_ALIVE_TIMEOUT,
        ..Config::default()
    });
    let mut http = Http::connect(server.addr);
    // The server starts the idle clock after this request reached it, so after this instant.
    let asked = Instant::now();
    http.send("GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n");
    let response = http.response(false);
    assert_eq!(response.status, 200);
    assert_eq!(response.header("Connection"), Some("keep-alive"));
    http.expect_closed();
    let idle = asked.elapsed();
    assert!(
        idle >= KEEP_ALIVE_TIMEOUT && idle < KEEP_ALIVE_TIMEOUT + TIMER_SLACK,
        "closed after {idle:?} idle, keep-alive timeout {KEEP_ALIVE_TIMEOUT:?}"
    );
    assert_still_serving(&server);
}

// ---------------------------------------------------------------------------------------------
// Protocol versions, malformed requests, methods
// ---------------------------------------------------------------------------------------------

#[test]
fn only_http_1_0_and_1_1_are_spoken() {
    let server = TestServer::start();
    for version in ["HTTP/1.1", "HTTP/1.0"] {
        let mut http = Http::connect(server.addr);
        http.send(format!("GET / {version}\r\nHost: test\r\n\r\n"));
        assert_eq!(http.response(false).status, 200, "{version}");
    }
    let refused: [&[u8]; 10] = [
        b"GET / HTTP/2.0\r\nHost: test\r\n\r\n",
        b"GET / HTTP/3.0\r\nHost: test\r\n\r\n",
        b"GET / HTTP/2\r\nHost: test\r\n\r\n",
        b"GET / HTTP/1.2\r\nHost: test\r\n\r\n",
        b"GET / HTTP/1.10\r\nHost: test\r\n\r\n",
        b"GET / HTTP/0.9\r\nHost: test\r\n\r\n",
        b"GET / http/1.1\r\nHost: test\r\n\r\n",
        b"GET / HTTPS/1.1\r\nHost: test\r\n\r\n",
        // HTTP/0.9: no version at all.
        b"GET /\r\n\r\n",
        // The HTTP/2 connection preface ("prior knowledge").
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
    ];
    for raw in refused {
        assert_refused(&server, raw, 400, "malformed HTTP request");
    }
    assert_still_serving(&server);
}

#[test]
fn malformed_requests_get_400_and_the_connection_closes() {
    let server = TestServer::start();
    let malformed: [&[u8]; 15] = [
        b"GARBAGE\r\n\r\n",
        // A TLS ClientHello sent to the plain-HTTP port.
        b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03\r\n\r\n",
        b" GET / HTTP/1.1\r\n\r\n",
        b"GET  / HTTP/1.1\r\n\r\n",
        b"GET / HTTP/1.1 \r\n\r\n",
        b"G\x01T / HTTP/1.1\r\n\r\n",
        b"GET /\x00 HTTP/1.1\r\n\r\n",
        // Raw bytes that are not UTF-8 in the target.
        b"GET /\xff\xfe HTTP/1.1\r\n\r\n",
        b"GET / HTTP/1.1\r\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost test\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost : test\r\n\r\n",
        b"GET / HTTP/1.1\r\n\xff: x\r\n\r\n",
        b"GET / HTTP/1.1\r\nX: a\x00b\r\n\r\n",
        // Obsolete line folding.
        b"GET / HTTP/1.1\r\nX: a\r\n b\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: test\r\nContent-Length: lots\r\n\r\n",
    ];
    for raw in malformed {
        assert_refused(&server, raw, 400, "malformed HTTP request");
    }
    // Smuggling attempts: a Content-Length that is not one number.
    for length in ["-1", "1, 1", "0x10", ""] {
        assert_refused(
            &server,
            format!("GET / HTTP/1.1\r\nHost: test\r\nContent-Length: {length}\r\n\r\n").as_bytes(),
            400,
            "malformed HTTP request",
        );
    }
    assert_still_serving(&server);
}

#[test]
fn requests_with_a_body_get_400_and_the_body_is_never_read_as_a_request() {
    let server = TestServer::start();
    // Were the body taken for the next request, /healthz would be answered after the 400.
    let smuggled = "GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n";
    let len = smuggled.len();
    let bodies = [
        format!("GET / HTTP/1.1\r\nHost: test\r\nContent-Length: {len}\r\n\r\n{smuggled}"),
        format!(
            "GET / HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n\
             {len:x}\r\n{smuggled}\r\n0\r\n\r\n"
        ),
        // Two lengths, the first saying there is no body.
        format!(
            "GET / HTTP/1.1\r\nHost: test\r\nContent-Length: 0\r\nContent-Length: {len}\r\n\r\n\
             {smuggled}"
        ),
    ];
    for raw in &bodies {
        assert_refused(
            &server,
            raw.as_bytes(),
            400,
            "requests with a body are not accepted",
        );
    }
    assert_still_serving(&server);
}

#[test]
fn other_methods_get_405_with_allow() {
    let server = TestServer::start();
    let methods = [
        "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "CONNECT", "PROPFIND", "get", "BREW",
    ];
    for target in ["/", "/healthz", "/metrics", "/static/chat.js", "/nope"] {
        for method in methods {
            let mut http = Http::connect(server.addr);
            http.send(format!(
                "{method} {target} HTTP/1.1\r\nHost: test\r\nContent-Length: 0\r\n\r\n"
            ));
            let response = http.response(false);
            let what = format!("{method} {target}");
            assert_refusal(&response, 405, "only GET and HEAD", &what);
            assert_eq!(response.header("Allow"), Some("GET, HEAD"), "{what}");
            http.expect_closed();
        }
    }
    // A POST body is dropped with the connection, never answered as a request of its own.
    let smuggled = "GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n";
    assert_refused(
        &server,
        format!(
            "POST / HTTP/1.1\r\nHost: test\r\nContent-Length: {}\r\n\r\n{smuggled}",
            smuggled.len()
        )
        .as_bytes(),
        405,
        "only GET and HEAD",
    );
    assert_still_serving(&server);
}

// ---------------------------------------------------------------------------------------------
// Path traversal
// ---------------------------------------------------------------------------------------------

/// Every way we know to name a file outside the static files; `{f}` is a file that exists
/// right outside the static directory.
const TRAVERSALS: &[&str] = &[
    "/static/../{f}",
    "/static/./../{f}",
    "/static/%2e%2e/{f}",
    "/static/%2E%2E/{f}",
    "/static/%2E%2E%2F{f}",
    "/static/..%2f{f}",
    "/static/%2e%2e%2f%2e%2e%2f%2e%2e%2f%2e%2e%2f%2e%2e%2fetc%2fpasswd",
    "/static/../../../../../../../../etc/passwd",
    "/static/sub/../../{f}",
    "/static/sub/%2e%2e/%2e%2e/{f}",
    // Backslashes, raw and encoded.
    "/static/..\\{f}",
    "/static/..%5c{f}",
    "/static/..%5C..%5C{f}",
    "/static/%2e%2e%5c{f}",
    // Absolute paths.
    "/static//etc/passwd",
    "/static/%2Fetc%2Fpasswd",
    "/static/%2fetc%2fpasswd",
    "//etc/passwd",
    "/static/{abs}",
    // NUL bytes.
    "/static/%00../{f}",
    "/static/..%00/{f}",
    "/static/index.html%00",
    "/static/{f}%00.html",
    // Double encoding.
    "/static/%252e%252e/{f}",
    "/static/%252e%252e%252f{f}",
    "/static/%25%32%65%25%32%65/{f}",
    // Overlong and invalid UTF-8 for '.' and '/'.
    "/static/%c0%ae%c0%ae/{f}",
    "/static/..%c0%af{f}",
    "/static/..%c1%9c{f}",
    // Outside /static/ altogether.
    "/../{f}",
    "/{f}",
    "/static/{f}",
    "/static",
    "/static/",
    "/static/.",
    "/static/..",
    "/static/%2e",
    "/static/~",
];

/// Requests every traversal, `{f}` being `file` (and `{abs}` its absolute path without the
/// leading `/`): each must be 400 or 404 and carry nothing of `forbidden`.
fn assert_no_traversal(server: &TestServer, file: &str, abs: &Path, forbidden: &[&str]) {
    let abs = abs.to_str().expect("a UTF-8 path");
    for pattern in TRAVERSALS {
        let target = pattern
            .replace("{f}", file)
            .replace("{abs}", abs.trim_start_matches('/'));
        let response = get(server.addr, &target);
        assert!(
            matches!(response.status, 400 | 404),
            "GET {target}: status {} with {:?}",
            response.status,
            String::from_utf8_lossy(&response.body)
        );
        let body = String::from_utf8_lossy(&response.body);
        for secret in forbidden {
            assert!(!body.contains(secret), "GET {target} leaked {secret:?}");
        }
    }
}

#[test]
fn path_traversal_never_leaves_the_built_in_files() {
    let server = TestServer::start();
    let cargo_toml = Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml");
    assert_no_traversal(&server, "Cargo.toml", &cargo_toml, &["[package]", "root:"]);
    assert_still_serving(&server);
}

#[test]
fn path_traversal_never_leaves_the_static_dir() {
    // The repository's static/ directory: Cargo.toml is right next to it.
    let server = TestServer::with_config(Config {
        static_dir: Some(Path::new(env!("CARGO_MANIFEST_DIR")).join("static")),
        ..Config::default()
    });
    let cargo_toml = Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml");
    assert_no_traversal(&server, "Cargo.toml", &cargo_toml, &["[package]", "root:"]);
    assert_still_serving(&server);
}

#[cfg(unix)]
#[test]
fn path_traversal_never_reaches_a_secret_next_to_the_static_dir() {
    let (root, dir) = static_dir_with_escapes("traversal");
    let server = TestServer::with_config(Config {
        static_dir: Some(dir),
        ..Config::default()
    });
    let secret = root.path().join("secret.txt");
    assert_no_traversal(&server, "secret.txt", &secret, &[SECRET, "root:"]);
    // The directory is being served: its own files are found.
    let inner = get(server.addr, "/static/sub/inner.txt");
    assert_eq!((inner.status, inner.body_text()), (200, "inner"));
    assert_still_serving(&server);
}

#[cfg(unix)]
#[test]
fn symlinks_out_of_the_static_dir_are_not_served() {
    let (_root, dir) = static_dir_with_escapes("symlinks");
    let server = TestServer::with_config(Config {
        static_dir: Some(dir),
        ..Config::default()
    });
    for target in [
        "/static/leak.txt",
        "/static/abs.txt",
        "/static/sub/up.txt",
        "/static/etc/passwd",
        "/static/etc/hostname",
        "/static/etc",
    ] {
        let response = get(server.addr, target);
        assert_eq!(response.status, 404, "GET {target}: {response:?}");
        assert!(
            !response.body_text().contains(SECRET),
            "GET {target} leaked"
        );
    }
    // A link that stays inside the directory is an ordinary file.
    let alias = get(server.addr, "/static/alias.txt");
    assert_eq!((alias.status, alias.body_text()), (200, "inner"));
    assert_still_serving(&server);
}

// ---------------------------------------------------------------------------------------------
// Bad WebSocket upgrades
// ---------------------------------------------------------------------------------------------

fn mallory(server: &TestServer) -> Upgrade {
    Upgrade::to(server, "mallory")
}

/// `upgrade` as a plain request of the endpoint: no upgrade header of any kind.
fn plain(upgrade: Upgrade) -> Upgrade {
    upgrade
        .without("Upgrade")
        .without("Connection")
        .without("Sec-WebSocket-Key")
        .without("Sec-WebSocket-Version")
}

/// One refused upgrade: the request, and the status, the reason in the body and any header the
/// refusal must carry.
struct Refusal {
    name: String,
    upgrade: Upgrade,
    status: u16,
    reason: &'static str,
    header: Option<(&'static str, &'static str)>,
}

/// Every way an upgrade is refused, as data: missing or malformed key (400), another WebSocket
/// version (426), no `Upgrade`/`Connection` (426), HTTP/1.0 (400), another method (405), a
/// foreign `Origin` (403), a bad client id (400).
fn refusals(server: &TestServer) -> Vec<Refusal> {
    let mut cases = Vec::new();
    let mut refuse = |name: String, upgrade: Upgrade, status, reason, header| {
        cases.push(Refusal {
            name,
            upgrade,
            status,
            reason,
            header,
        });
    };
    let needs_13 = Some(("Sec-WebSocket-Version", "13"));

    refuse(
        "no Sec-WebSocket-Key".into(),
        mallory(server).without("Sec-WebSocket-Key"),
        400,
        "missing Sec-WebSocket-Key",
        None,
    );
    let keys = [
        "",
        "short",
        // 15 and 17 bytes.
        "AAAAAAAAAAAAAAAAAAAA",
        "AAAAAAAAAAAAAAAAAAAAAAA=",
        // 16 bytes, but not in base64.
        "0123456789abcdef",
        // One character short, one too many.
        "dGhlIHNhbXBsZSBub25jZQ=",
        "dGhlIHNhbXBsZSBub25jZQ===",
        // Characters outside the alphabet (base64url, punctuation, space).
        "dGhlIHNhbXBsZSBub25jZ-_==",
        "dGhlIHNhbXBsZSBub25jZ!==",
        "dGhlIHNhbXBsZSBub25j ZQ==",
    ];
    for key in keys {
        refuse(
            format!("Sec-WebSocket-Key {key:?}"),
            mallory(server).set("Sec-WebSocket-Key", key),
            400,
            "Sec-WebSocket-Key must be 16 bytes in base64",
            None,
        );
    }

    for version in ["8", "12", "14", "", "13, 8", "thirteen"] {
        refuse(
            format!("Sec-WebSocket-Version {version:?}"),
            mallory(server).set("Sec-WebSocket-Version", version),
            426,
            "unsupported Sec-WebSocket-Version",
            needs_13,
        );
    }
    refuse(
        "no Sec-WebSocket-Version".into(),
        mallory(server).without("Sec-WebSocket-Version"),
        426,
        "unsupported Sec-WebSocket-Version",
        needs_13,
    );

    let no_upgrade = [
        ("no Upgrade", mallory(server).without("Upgrade")),
        ("no Connection", mallory(server).without("Connection")),
        (
            "neither Upgrade nor Connection",
            mallory(server).without("Upgrade").without("Connection"),
        ),
        ("Upgrade: h2c", mallory(server).set("Upgrade", "h2c")),
        (
            "Connection: keep-alive",
            mallory(server).set("Connection", "keep-alive"),
        ),
        ("a plain GET", plain(mallory(server))),
    ];
    for (name, upgrade) in no_upgrade {
        refuse(
            name.into(),
            upgrade,
            426,
            "send Upgrade: websocket and Connection: Upgrade",
            needs_13,
        );
    }

    refuse(
        "HTTP/1.0".into(),
        mallory(server).version("HTTP/1.0"),
        400,
        "a WebSocket upgrade needs HTTP/1.1",
        None,
    );

    // RFC 9110, 15.5.6: a 405 response MUST carry Allow.
    for method in ["POST", "PUT", "DELETE", "OPTIONS"] {
        refuse(
            format!("method {method}"),
            mallory(server).method(method).set("Content-Length", "0"),
            405,
            "a WebSocket upgrade must use GET",
            Some(("Allow", "GET")),
        );
    }
    refuse(
        "a plain POST".into(),
        plain(mallory(server).method("POST").set("Content-Length", "0")),
        405,
        "a WebSocket upgrade must use GET",
        Some(("Allow", "GET")),
    );

    let port = server.addr.port();
    let foreign = [
        "http://evil.example".to_owned(),
        "https://evil.example".to_owned(),
        format!("http://evil.example:{port}"),
        format!("http://127.0.0.1:{port}.evil.example"),
        // The right host on another port is another origin.
        "http://127.0.0.1".to_owned(),
        format!("http://127.0.0.1:{}", port.wrapping_add(1)),
        format!("ftp://127.0.0.1:{port}"),
        // Sandboxed frames and file: pages.
        "null".to_owned(),
        String::new(),
    ];
    for origin in &foreign {
        refuse(
            format!("Origin {origin:?}"),
            mallory(server).set("Origin", origin),
            403,
            "this Origin may not open a chat connection",
            None,
        );
    }

    let too_long = "x".repeat(33);
    let too_long_multibyte = "%C3%A9".repeat(33);
    let ids = [
        ("", "client id is empty"),
        ("%20", "client id is empty"),
        ("%20%09%20", "client id is empty"),
        // U+3000 IDEOGRAPHIC SPACE is whitespace too.
        ("%E3%80%80", "client id is empty"),
        (too_long.as_str(), "longer than 32 characters"),
        (too_long_multibyte.as_str(), "longer than 32 characters"),
        ("a%0Ab", "control characters"),
        ("a%0D%0AX-Injected:%20yes", "control characters"),
        ("a%00", "control characters"),
        ("a%7F", "control characters"),
        ("%1B%5B31mred", "control characters"),
        // U+0085 NEXT LINE, a C1 control.
        ("a%C2%85b", "control characters"),
        ("%FF", "not valid UTF-8"),
        ("ab%C3", "not valid UTF-8"),
        // Overlong '/', and a UTF-16 surrogate.
        ("%C0%AF", "not valid UTF-8"),
        ("%ED%A0%80", "not valid UTF-8"),
    ];
    for (raw_id, reason) in ids {
        refuse(
            format!("client id {raw_id:?}"),
            Upgrade::to(server, raw_id),
            400,
            reason,
            None,
        );
    }
    cases
}

#[test]
fn bad_upgrades_are_refused_with_their_status_and_reason() {
    let server = TestServer::start();
    let observer = Observer::join(&server);
    for case in refusals(&server) {
        eprintln!("case: {}", case.name);
        let (mut http, response) = case.upgrade.send(&server);
        let what = format!(
            "{}: {} {} {:?}",
            case.name, case.upgrade.method, case.upgrade.target, case.upgrade.headers
        );
        assert_refusal(&response, case.status, case.reason, &what);
        if let Some((name, value)) = case.header {
            assert_eq!(response.header(name), Some(value), "{what}");
        }
        http.expect_closed();
    }
    // HEAD is refused too, upgrade or not (whether its answer is framed right is
    // `head_answers_never_carry_a_body`).
    for upgrade in [
        mallory(&server),
        plain(mallory(&server)).set("Content-Length", "0"),
    ] {
        let (_http, response) = upgrade.method("HEAD").send(&server);
        assert_eq!(response.status, 405, "HEAD /ws/mallory: {response:?}");
        assert_eq!(response.header("Allow"), Some("GET"));
    }
    observer.assert_nobody_joined();
    assert_still_serving(&server);
}

#[test]
fn head_answers_never_carry_a_body() {
    // RFC 9110, 9.3.2: the answer to HEAD is the head of the answer to GET, without its body.
    // A body sent anyway is read by the client as the start of the next response.
    let server = TestServer::start();
    let mut http = Http::connect(server.addr);
    for target in ["/nope", "/healthz", "/metrics", "/"] {
        http.send(format!("HEAD {target} HTTP/1.1\r\nHost: test\r\n\r\n"));
        let head = http.response(true);
        assert!(matches!(head.status, 200 | 404), "HEAD {target}: {head:?}");
        // Had a body followed the head, it would be parsed as this response.
        http.send("GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n");
        let next = http.response(false);
        assert_eq!(
            (next.status, next.body_text()),
            (200, "ok\n"),
            "after HEAD {target}"
        );
    }
    // Refusals of HEAD requests: nothing may follow the head before the connection closes.
    let refused = [
        (
            Upgrade::to(&server, "mallory").method("HEAD").bytes(),
            405,
            "HEAD /ws/mallory",
        ),
        (
            b"HEAD / HTTP/1.1\r\nHost: test\r\nContent-Length: 5\r\n\r\nhello".to_vec(),
            400,
            "HEAD / with a body",
        ),
    ];
    let mut trailing = Vec::new();
    for (raw, status, what) in refused {
        let mut http = Http::connect(server.addr);
        http.send(raw);
        let head = http.response(true);
        assert_eq!(head.status, status, "{what}: {head:?}");
        assert_eq!(head.header("Connection"), Some("close"), "{what}");
        let rest = http.rest_until_closed();
        if !rest.is_empty() {
            trailing.push(format!("{what}: {:?}", String::from_utf8_lossy(&rest)));
        }
    }
    assert!(
        trailing.is_empty(),
        "bodies sent after HEAD response heads:\n{}",
        trailing.join("\n")
    );
    assert_still_serving(&server);
}

// ---------------------------------------------------------------------------------------------
// Origin
// ---------------------------------------------------------------------------------------------

#[test]
fn the_servers_own_origin_and_no_origin_are_admitted() {
    let server = TestServer::start();
    let port = server.addr.port();
    let own = format!("http://127.0.0.1:{port}");
    Upgrade::to(&server, "page")
        .set("Origin", &own)
        .assert_accepted(&server);
    Upgrade::to(&server, "page")
        .set("Origin", &format!("http://localhost:{port}"))
        .set("Host", &format!("localhost:{port}"))
        .assert_accepted(&server);
    Upgrade::to(&server, "cli")
        .without("Origin")
        .assert_accepted(&server);
    // For real: a page from the server itself chats.
    assert_origin_admitted(&server, &own);
    assert_still_serving(&server);
}

#[test]
fn a_listed_origin_is_admitted() {
    let server = TestServer::with_config(Config {
        allowed_origins: vec!["http://good.example".into()],
        ..Config::default()
    });
    for origin in [
        "http://good.example",
        "http://good.example/",
        "http://GOOD.example",
    ] {
        assert_origin_admitted(&server, origin);
    }
    // The server's own origin still is.
    assert_origin_admitted(&server, &format!("http://127.0.0.1:{}", server.addr.port()));
    for origin in [
        "http://evil.example",
        "https://good.example",
        "http://good.example:8080",
        "http://good.example.evil.example",
    ] {
        Upgrade::to(&server, "mallory")
            .set("Origin", origin)
            .assert_refused(&server, 403, "this Origin may not open a chat connection");
    }
    assert_still_serving(&server);
}

#[test]
fn a_wildcard_admits_any_origin() {
    let server = TestServer::with_config(Config {
        allowed_origins: vec!["*".into()],
        ..Config::default()
    });
    for origin in [
        "http://evil.example",
        "https://anything.example:1234",
        "null",
    ] {
        assert_origin_admitted(&server, origin);
    }
    assert_still_serving(&server);
}

// ---------------------------------------------------------------------------------------------
// Client ids
// ---------------------------------------------------------------------------------------------

#[test]
fn a_32_character_id_of_multibyte_characters_is_accepted() {
    let server = TestServer::start();
    let ids = [
        ("é".repeat(32), "%C3%A9".repeat(32)),
        ("日本".repeat(16), "%E6%97%A5%E6%9C%AC".repeat(16)),
        ("🎉".repeat(32), "%F0%9F%8E%89".repeat(32)),
        // Trimmed first, then counted.
        ("x".repeat(32), format!("%20{}%20", "x".repeat(32))),
    ];
    for (id, raw_id) in &ids {
        assert_eq!(id.chars().count(), 32);
        let mut client = connect(&server, raw_id);
        expect_join(&mut client, id);
        send(&mut client, "hi");
        expect_message(&mut client, id, "hi");
        close(client);
    }
    assert_still_serving(&server);
}

// ---------------------------------------------------------------------------------------------
// --max-connections
// ---------------------------------------------------------------------------------------------

#[test]
fn connections_beyond_max_connections_get_503_until_one_closes() {
    let server = TestServer::with_config(Config {
        max_connections: 5,
        ..Config::default()
    });
    // Five served keep-alive connections: each answered, so each is counted.
    let mut held: Vec<Http> = (0..5)
        .map(|i| {
            let mut http = Http::connect(server.addr);
            http.send("GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n");
            assert_eq!(http.response(false).status, 200, "connection {i}");
            http
        })
        .collect();

    // The sixth is told why before it asks anything.
    let mut sixth = Http::connect(server.addr);
    let response = sixth.response(false);
    assert_refusal(&response, 503, "the server is full", "the sixth connection");
    assert_eq!(response.header("Retry-After"), Some("10"));
    sixth.expect_closed();
    drop(sixth);
    // A chat client is refused the same way.
    match client::try_connect(&server, "seventh") {
        Err(tungstenite::Error::Http(response)) => assert_eq!(response.status(), 503),
        Err(e) => panic!("expected a 503 for the chat client, got {e:?}"),
        Ok(_) => panic!("a chat client got in beyond --max-connections"),
    }

    // The first connection watches the count; the refused ones are gone once noticed.
    let mut watcher = held.remove(0);
    wait_for_open_connections(&mut watcher, 5);
    let metrics = Metrics::scrape(&mut watcher);
    assert_eq!(metrics.value("chat_connections_refused_total"), 2.0);

    // One held connection closes: a new one is served again.
    held.pop();
    wait_for_open_connections(&mut watcher, 4);
    let mut fresh = Http::connect(server.addr);
    fresh.send("GET / HTTP/1.1\r\nHost: test\r\n\r\n");
    let page = fresh.response(false);
    assert_eq!(page.status, 200, "{page:?}");
    assert!(page.body_text().contains(PAGE_MARKER));
    // Still full with it: the next is refused.
    let mut over = Http::connect(server.addr);
    assert_eq!(over.response(false).status, 503);
    over.expect_closed();
    drop((fresh, over));

    // Room for two chat clients: the watcher and two held connections, plus them.
    held.pop();
    wait_for_open_connections(&mut watcher, 3);
    let [mut alice, mut bob] = join_all(&server, ["alice", "bob"]);
    send(&mut alice, "we fit");
    expect_message(&mut alice, "alice", "we fit");
    expect_message(&mut bob, "alice", "we fit");
}

// ---------------------------------------------------------------------------------------------
// Health and metrics
// ---------------------------------------------------------------------------------------------

#[test]
fn health_and_readiness_answer_200() {
    let server = TestServer::start();
    for (target, body) in [("/healthz", "ok\n"), ("/readyz", "ready\n")] {
        let response = get(server.addr, target);
        assert_eq!(response.status, 200, "{target}: {response:?}");
        assert_eq!(response.body_text(), body, "{target}");
        assert_eq!(
            response.header("Cache-Control"),
            Some("no-store"),
            "{target}"
        );
        let head = request(server.addr, "HEAD", target, "");
        assert_eq!(head.status, 200, "HEAD {target}");
        assert_eq!(head.content_length(), Some(body.len()), "HEAD {target}");
    }
    assert_still_serving(&server);
}

#[test]
fn metrics_are_prometheus_text_with_every_family() {
    let server = TestServer::start();
    let response = get(server.addr, "/metrics");
    assert_eq!(response.status, 200, "{response:?}");
    assert_eq!(
        response.header("Content-Type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    let text = response.body_text();
    let metrics = Metrics(text.to_owned());
    for series in [
        "chat_connections_open",
        "chat_messages_received_total",
        "chat_messages_delivered_total",
        "chat_bytes_received_total",
        "chat_bytes_sent_total",
        "chat_closes_total{reason=\"slow_consumer\"}",
        "chat_http_responses_total{class=\"4xx\"}",
        "chat_uptime_seconds",
    ] {
        let value = metrics.value(series);
        assert!(value >= 0.0, "{series} = {value}");
    }
    // Every sample is `name[{labels}] number` of a family announced with HELP and TYPE.
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let (series, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("bad sample line {line:?}"));
        assert!(value.parse::<f64>().is_ok(), "bad value in {line:?}");
        let name = series.split('{').next().unwrap_or_default();
        // A histogram's samples are NAME_bucket, NAME_sum and NAME_count of family NAME.
        let name = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|suffix| {
                let family = name.strip_suffix(suffix)?;
                text.contains(&format!("# TYPE {family} histogram\n"))
                    .then_some(family)
            })
            .unwrap_or(name);
        for kind in ["HELP", "TYPE"] {
            assert!(
                text.contains(&format!("# {kind} {name} ")),
                "{name} has no {kind}"
            );
        }
    }
    assert_still_serving(&server);
}

#[test]
fn metrics_counters_move() {
    let server = TestServer::start();
    let mut watcher = Http::connect(server.addr);
    let before = Metrics::scrape(&mut watcher);
    let not_found = get(server.addr, "/no/such/page");
    assert_eq!(not_found.status, 404);
    let after = Metrics::scrape(&mut watcher);
    let class_4xx = "chat_http_responses_total{class=\"4xx\"}";
    assert_eq!(after.value(class_4xx), before.value(class_4xx) + 1.0);

    let [mut alice, mut bob] = join_all(&server, ["alice", "bob"]);
    let before = Metrics::scrape(&mut watcher);
    assert_eq!(before.value("chat_websockets_open"), 2.0);
    assert_eq!(before.value("chat_connections_open"), 3.0);
    send(&mut alice, "counted twice");
    // Both have it, so the server has counted both deliveries.
    expect_message(&mut alice, "alice", "counted twice");
    expect_message(&mut bob, "alice", "counted twice");
    let after = Metrics::scrape(&mut watcher);
    let delta = |series: &str| after.value(series) - before.value(series);
    assert_eq!(delta("chat_messages_received_total"), 1.0);
    assert_eq!(delta("chat_messages_delivered_total"), 2.0);
    assert!(delta("chat_bytes_received_total") > 0.0);
    assert!(delta("chat_bytes_sent_total") > 0.0);
    assert_eq!(
        after.value("chat_closes_total{reason=\"slow_consumer\"}"),
        0.0
    );
    assert!(after.value("chat_uptime_seconds") > 0.0);
    close(alice);
    expect_leave(&mut bob, "alice");
    close(bob);
}
