//! Built-in accounts (`--auth accounts`) end to end over real sockets: `POST /login` sets a
//! signed, HttpOnly, SameSite=Strict session cookie that opens the chat as its user and no
//! other; a wrong password and an unknown user answer alike; tampered, forged and
//! replayed-after-logout cookies are refused, at `/session` and at the upgrade; a cross-site
//! login is refused; brute force is slowed (429 with Retry-After) per address and per account;
//! removing an account ends its sessions; an admin account moderates; sessions survive a
//! restart, and a logout does too.

mod common;
#[path = "common/http_client.rs"]
mod http_client;
#[path = "common/client.rs"]
mod v1;
#[path = "common/v2_client.rs"]
mod v2_client;

use std::path::{Path, PathBuf};
use std::time::Duration;

use chat_auth::Secret;
use chat_mio_server::{AuthMode, Config, StoreKind};
use common::TestServer;
use http_client::{Http, Response};
use serde_json::{json, Value};
use tungstenite::client::IntoClientRequest;
use tungstenite::Message;
use v2_client::{recv_or_close, recv_until};

const PASSWORD: &str = "correct horse battery staple";

/// A data directory removed when dropped.
struct DataDir(PathBuf);

impl DataDir {
    fn new(name: &str) -> DataDir {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let dir = std::env::temp_dir().join(format!(
            "chat-accounts-{name}-{}-{nanos}",
            std::process::id()
        ));
        DataDir(dir)
    }

    fn add(&self, user: &str, admin: bool) {
        let phc = chat_auth::hash_password(&Secret::new(PASSWORD)).expect("hash");
        chat_store::accounts::add_user(&self.0, user, &phc, admin).expect("add the user");
    }
}

impl Drop for DataDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn config(dir: &Path) -> Config {
    Config {
        auth: AuthMode::Accounts,
        store: StoreKind::Sqlite,
        data_dir: dir.to_path_buf(),
        heartbeat: Duration::ZERO,
        idle_timeout: Duration::ZERO,
        ..Config::default()
    }
}

fn server(dir: &DataDir) -> TestServer {
    TestServer::with_config(config(&dir.0))
}

/// One request on a fresh connection: `method target`, extra header lines, a form body.
fn request(server: &TestServer, method: &str, target: &str, extra: &str, body: &str) -> Response {
    let mut http = Http::connect(server.addr);
    http.send(format!(
        "{method} {target} HTTP/1.1\r\nHost: {}\r\n{extra}Content-Type: \
         application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        server.addr,
        body.len()
    ));
    http.response(method == "HEAD")
}

fn login_with(server: &TestServer, user: &str, password: &str, extra: &str) -> Response {
    let body = format!("name={user}&password={}", password.replace(' ', "+"));
    request(server, "POST", "/login", extra, &body)
}

/// Logs in as `user`; the `chat_session=...` pair to send back as a `Cookie`.
fn login(server: &TestServer, user: &str) -> String {
    let response = login_with(server, user, PASSWORD, "");
    assert_eq!(response.status, 303, "{response:?}");
    assert_eq!(response.header("Location"), Some("/"));
    let set = response.header("Set-Cookie").expect("a Set-Cookie");
    let pair = set.split(';').next().expect("name=value").trim().to_owned();
    assert!(
        pair.starts_with("chat_session=") && pair.len() > 40,
        "{set}"
    );
    pair
}

fn session(server: &TestServer, cookie: &str) -> Response {
    request(
        server,
        "GET",
        "/session",
        &format!("Cookie: {cookie}\r\n"),
        "",
    )
}

fn session_user(server: &TestServer, cookie: &str) -> Option<Value> {
    let response = session(server, cookie);
    match response.status {
        200 => Some(serde_json::from_slice(&response.body).expect("JSON")),
        401 => None,
        other => panic!("/session answered {other}: {response:?}"),
    }
}

fn logout(server: &TestServer, cookie: &str) {
    let response = request(
        server,
        "POST",
        "/logout",
        &format!("Cookie: {cookie}\r\n"),
        "",
    );
    assert_eq!(response.status, 303, "{response:?}");
    let set = response.header("Set-Cookie").expect("a Set-Cookie");
    assert!(
        set.starts_with("chat_session=;") && set.contains("Max-Age=0"),
        "{set}"
    );
}

/// The status (and body) of an upgrade to `/ws/{user}` with `cookie`.
fn upgrade_status(server: &TestServer, user: &str, cookie: Option<&str>) -> (u16, String) {
    let cookie = cookie
        .map(|c| format!("Cookie: {c}\r\n"))
        .unwrap_or_default();
    let mut http = Http::connect(server.addr);
    http.send(format!(
        "GET /ws/{user} HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{cookie}\r\n",
        server.addr
    ));
    let response = http.response(false);
    (response.status, response.body_text().to_owned())
}

type Client = tungstenite::WebSocket<std::net::TcpStream>;

/// A v2 client of `user` in `room` with `cookie`; `welcome` and `history` read.
fn join(server: &TestServer, user: &str, room: &str, cookie: &str) -> Client {
    let mut request = format!("ws://{}/ws/{user}?room={room}", server.addr)
        .into_client_request()
        .expect("a request");
    let headers = request.headers_mut();
    headers.insert("Sec-WebSocket-Protocol", "chat.v2".parse().expect("value"));
    headers.insert("Cookie", cookie.parse().expect("value"));
    let stream = common::tcp_connect(server.addr);
    let mut client = tungstenite::client(request, stream).expect("upgrade").0;
    recv_until(&mut client, "welcome");
    recv_until(&mut client, "history");
    client
}

#[test]
fn a_login_sets_a_strict_http_only_cookie_that_opens_the_chat_as_that_user_only() {
    let dir = DataDir::new("login");
    dir.add("alice", false);
    let server = server(&dir);

    let response = login_with(&server, "alice", PASSWORD, "");
    assert_eq!(response.status, 303, "{response:?}");
    let set = response.header("Set-Cookie").expect("Set-Cookie");
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/", "Max-Age=1209600"] {
        assert!(set.contains(attribute), "{attribute} missing: {set}");
    }
    assert!(!set.contains("Secure"), "plain HTTP: no Secure: {set}");
    let cookie = set.split(';').next().expect("pair");

    assert_eq!(
        session_user(&server, cookie),
        Some(json!({"auth": "accounts", "user": "alice", "admin": false}))
    );
    let mut alice = join(&server, "alice", "general", cookie);
    alice
        .send(Message::text(v2_client::message("hi").to_string()))
        .expect("send");
    let said = recv_until(&mut alice, "message");
    assert_eq!(
        (said["client_id"].as_str(), said["message"].as_str()),
        (Some("alice"), Some("hi"))
    );

    // Someone else's name with alice's cookie, or no cookie at all: refused before the upgrade.
    let (status, body) = upgrade_status(&server, "bob", Some(cookie));
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("alice"), "{body}");
    let (status, body) = upgrade_status(&server, "alice", None);
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("login"), "{body}");
    // Without a cookie, /session says who is not logged in.
    let anonymous = request(&server, "GET", "/session", "", "");
    assert_eq!(anonymous.status, 401);
    assert_eq!(
        serde_json::from_slice::<Value>(&anonymous.body).expect("JSON"),
        json!({"auth": "accounts", "error": "not logged in"})
    );
}

#[test]
fn behind_a_trusted_tls_proxy_the_cookie_is_secure() {
    let dir = DataDir::new("secure");
    dir.add("alice", false);
    let server = TestServer::with_config(Config {
        trusted_proxies: vec!["127.0.0.1".parse().expect("ip")],
        ..config(&dir.0)
    });
    let response = login_with(&server, "alice", PASSWORD, "X-Forwarded-Proto: https\r\n");
    let set = response.header("Set-Cookie").expect("Set-Cookie");
    assert!(set.ends_with("; Secure"), "{set}");
}

#[test]
fn a_wrong_password_and_an_unknown_user_get_the_same_answer() {
    let dir = DataDir::new("wrong");
    dir.add("alice", false);
    let server = server(&dir);
    let wrong = login_with(&server, "alice", "not the password", "");
    let unknown = login_with(&server, "mallory", PASSWORD, "");
    for response in [&wrong, &unknown] {
        assert_eq!(response.status, 401, "{response:?}");
        assert_eq!(response.header("Set-Cookie"), None);
    }
    assert_eq!(wrong.body, unknown.body);
    let missing = request(&server, "POST", "/login", "", "name=alice");
    assert_eq!(missing.status, 400, "{missing:?}");
}

/// `cookie` with the character at `at` replaced by another base64url character.
fn flip(cookie: &str, at: usize) -> String {
    let mut bytes = cookie.as_bytes().to_vec();
    bytes[at] = if bytes[at] == b'A' { b'B' } else { b'A' };
    String::from_utf8(bytes).expect("ASCII")
}

#[test]
fn tampered_and_forged_cookies_are_refused() {
    let dir = DataDir::new("tamper");
    dir.add("alice", false);
    let server = server(&dir);
    let cookie = login(&server, "alice");
    let value_start = "chat_session=".len();
    let dot = cookie.find('.').expect("ID.MAC");

    // A cookie from another server (another key) for a user of the same name.
    let other_dir = DataDir::new("tamper-other");
    other_dir.add("alice", false);
    let foreign = {
        let other = server_of(&other_dir);
        login(&other, "alice")
    };

    let bad = [
        flip(&cookie, value_start), // the session id
        flip(&cookie, dot - 1),     // the id's last character
        flip(&cookie, dot + 1),     // the MAC
        flip(&cookie, cookie.len() - 1),
        cookie[..cookie.len() - 1].to_owned(), // a MAC cut short
        format!("{cookie}A"),
        cookie.replacen('.', "", 1),
        format!("chat_session={}", &cookie[dot + 1..]),
        "chat_session=".to_owned(),
        "chat_session=x.y".to_owned(),
        foreign,
    ];
    for forged in &bad {
        assert_eq!(session_user(&server, forged), None, "{forged}");
        let (status, body) = upgrade_status(&server, "alice", Some(forged));
        assert_eq!(status, 401, "{forged}: {body}");
    }
    // The real one still works, also among other cookies and after a bad one.
    assert!(session_user(&server, &cookie).is_some());
    let mixed = format!("theme=dark; {}; {cookie}", bad[0]);
    assert!(session_user(&server, &mixed).is_some(), "{mixed}");
}

fn server_of(dir: &DataDir) -> TestServer {
    server(dir)
}

#[test]
fn a_cookie_replayed_after_logout_is_refused_also_after_a_restart() {
    let dir = DataDir::new("replay");
    dir.add("alice", false);
    let (kept, ended) = {
        let server = server(&dir);
        let kept = login(&server, "alice");
        let ended = login(&server, "alice");
        logout(&server, &ended);
        assert_eq!(session_user(&server, &ended), None, "replayed after logout");
        let (status, _) = upgrade_status(&server, "alice", Some(&ended));
        assert_eq!(status, 401);
        assert!(
            session_user(&server, &kept).is_some(),
            "another login of alice lives on"
        );
        (kept, ended)
    };
    // The server stops cleanly and starts again on the same data directory.
    let server = server(&dir);
    assert!(
        session_user(&server, &kept).is_some(),
        "a login survives a restart"
    );
    assert_eq!(session_user(&server, &ended), None, "and so does a logout");
    let _alice = join(&server, "alice", "general", &kept);
}

#[test]
fn a_cross_site_login_or_logout_is_refused() {
    let dir = DataDir::new("csrf");
    dir.add("alice", false);
    let server = server(&dir);
    for extra in [
        "Origin: http://evil.example\r\n",
        "Origin: null\r\n",
        "Sec-Fetch-Site: cross-site\r\n",
        "Sec-Fetch-Site: same-site\r\nOrigin: http://evil.example\r\n",
    ] {
        let response = login_with(&server, "alice", PASSWORD, extra);
        assert_eq!(response.status, 403, "{extra:?}: {response:?}");
        assert_eq!(response.header("Set-Cookie"), None);
    }
    // The page's own origin logs in.
    let own = format!(
        "Origin: http://{}\r\nSec-Fetch-Site: same-origin\r\n",
        server.addr
    );
    let response = login_with(&server, "alice", PASSWORD, &own);
    assert_eq!(response.status, 303, "{response:?}");
    // A cross-site logout does not end the session.
    let cookie = login(&server, "alice");
    let response = request(
        &server,
        "POST",
        "/logout",
        &format!("Origin: http://evil.example\r\nCookie: {cookie}\r\n"),
        "",
    );
    assert_eq!(response.status, 403);
    assert!(session_user(&server, &cookie).is_some());
}

/// A server behind a "proxy" at 127.0.0.1, so each request can come from its own address.
fn proxied_server(dir: &DataDir) -> TestServer {
    TestServer::with_config(Config {
        trusted_proxies: vec!["127.0.0.1".parse().expect("ip")],
        ..config(&dir.0)
    })
}

fn from(ip: &str) -> String {
    format!("X-Forwarded-For: {ip}\r\n")
}

#[test]
fn guessing_from_one_address_is_slowed_with_429_and_retry_after() {
    let dir = DataDir::new("brute-ip");
    dir.add("alice", false);
    let server = proxied_server(&dir);
    // Ten free failures against ten accounts from one address; the eleventh attempt waits.
    for i in 0..10 {
        let response = login_with(&server, &format!("user{i}"), "guess", &from("10.0.0.1"));
        assert_eq!(response.status, 401, "attempt {i}: {response:?}");
    }
    let throttled = login_with(&server, "alice", PASSWORD, &from("10.0.0.1"));
    assert_eq!(throttled.status, 429, "{throttled:?}");
    let wait: u64 = throttled
        .header("Retry-After")
        .expect("Retry-After")
        .parse()
        .expect("seconds");
    assert!((1..=900).contains(&wait), "{wait}");
    assert_eq!(
        throttled.header("Set-Cookie"),
        None,
        "even the right password waits"
    );
    // Another address is not slowed by it.
    assert_eq!(
        login_with(&server, "alice", PASSWORD, &from("10.0.0.2")).status,
        303
    );
}

#[test]
fn guessing_one_account_from_many_addresses_is_slowed_too() {
    let dir = DataDir::new("brute-account");
    dir.add("alice", false);
    dir.add("bob", false);
    let server = proxied_server(&dir);
    for i in 0..10 {
        let response = login_with(&server, "alice", "guess", &from(&format!("10.1.0.{i}")));
        assert_eq!(response.status, 401, "attempt {i}: {response:?}");
    }
    let throttled = login_with(&server, "alice", PASSWORD, &from("10.2.0.1"));
    assert_eq!(throttled.status, 429, "{throttled:?}");
    assert!(throttled.header("Retry-After").is_some());
    // Other accounts are not.
    assert_eq!(
        login_with(&server, "bob", PASSWORD, &from("10.2.0.1")).status,
        303
    );
    let metrics = request(&server, "GET", "/metrics", "", "");
    let text = metrics.body_text();
    assert!(
        text.contains("chat_logins_total{result=\"throttled\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("chat_logins_total{result=\"failed\"} 10"),
        "{text}"
    );
}

#[test]
fn removing_an_account_ends_its_sessions_and_set_admin_applies_at_the_next_connection() {
    let dir = DataDir::new("remove");
    dir.add("alice", false);
    dir.add("bob", false);
    let server = server(&dir);
    let alice = login(&server, "alice");
    let bob = login(&server, "bob");
    assert!(chat_store::accounts::remove_user(&dir.0, "alice").expect("remove"));
    assert_eq!(session_user(&server, &alice), None);
    assert_eq!(upgrade_status(&server, "alice", Some(&alice)).0, 401);
    assert!(chat_store::accounts::set_admin(&dir.0, "bob", true).expect("set-admin"));
    assert_eq!(session_user(&server, &bob).expect("bob")["admin"], true);
}

#[test]
fn an_admin_account_kicks_and_bans_and_a_banned_account_cannot_connect() {
    let dir = DataDir::new("admin");
    dir.add("root", true);
    dir.add("bob", false);
    let server = server(&dir);
    let root_cookie = login(&server, "root");
    let bob_cookie = login(&server, "bob");
    let mut root = join(&server, "root", "general", &root_cookie);
    let mut bob = join(&server, "bob", "general", &bob_cookie);
    root.send(Message::text(
        json!({"type":"ban","user":"bob","minutes":5,"reason":"flood"}).to_string(),
    ))
    .expect("send");
    let close = loop {
        if let Err(close) = recv_or_close(&mut bob) {
            break close;
        }
    };
    assert_eq!(close.0, 4004, "{close:?}");
    let (status, body) = upgrade_status(&server, "bob", Some(&bob_cookie));
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("banned") && body.contains("flood"), "{body}");
    // A plain account's moderation is refused.
    dir.add("carol", false);
    let carol_cookie = login(&server, "carol");
    let mut carol = join(&server, "carol", "general", &carol_cookie);
    carol
        .send(Message::text(
            json!({"type":"kick","user":"root"}).to_string(),
        ))
        .expect("send");
    let error = recv_until(&mut carol, "error");
    assert_eq!(error["code"], "forbidden");
}

#[test]
fn requests_pipelined_behind_a_login_are_answered_after_it_in_order() {
    let dir = DataDir::new("pipeline");
    dir.add("alice", false);
    let server = server(&dir);
    let body = format!("name=alice&password={}", PASSWORD.replace(' ', "+"));
    let mut http = Http::connect(server.addr);
    http.send(format!(
        "POST /login HTTP/1.1\r\nHost: {0}\r\nContent-Length: {1}\r\n\r\n{body}\
         GET /session HTTP/1.1\r\nHost: {0}\r\n\r\n\
         GET /healthz HTTP/1.1\r\nHost: {0}\r\nConnection: close\r\n\r\n",
        server.addr,
        body.len()
    ));
    assert_eq!(http.response(false).status, 303);
    // The pipelined /session carries no cookie: it is not logged in.
    assert_eq!(http.response(false).status, 401);
    assert_eq!(http.response(false).status, 200);
}

#[test]
fn accounts_mode_needs_the_sqlite_store() {
    let dir = DataDir::new("memory");
    let refused = chat_mio_server::Server::bind(Config {
        store: StoreKind::Memory,
        bind: "127.0.0.1:0".parse().expect("addr"),
        ..config(&dir.0)
    });
    let Err(e) = refused else {
        panic!("--auth accounts with --store memory must be refused");
    };
    assert!(e.to_string().contains("--store sqlite"), "{e}");
}
