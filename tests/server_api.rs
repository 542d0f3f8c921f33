//! The server API for backends, end to end over real sockets: without the key (or with a wrong
//! one) every endpoint is 401; with it a backend lists rooms and members, publishes into a
//! room as the system or as a named user (tutorial and v2 clients see an ordinary message),
//! kicks and bans. A server without a key has no API at all.

mod common;
#[path = "common/http_client.rs"]
mod http_client;
#[path = "common/client.rs"]
mod v1;
#[path = "common/v2_client.rs"]
mod v2_client;

use std::io::Write as _;

use chat_mio_server::Config;
use common::TestServer;
use http_client::{Http, Response};
use serde_json::{json, Value};

const KEY: &str = "a backend key of enough bytes";

fn api_server() -> (TestServer, std::path::PathBuf) {
    let path = std::env::temp_dir().join(format!(
        "chat-api-key-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
    ));
    std::fs::File::create(&path)
        .and_then(|mut f| f.write_all(KEY.as_bytes()))
        .expect("write the key");
    let server = TestServer::with_config(Config {
        api_key_file: Some(path.clone()),
        rate_limit: 0.0,
        ..Config::default()
    });
    (server, path)
}

/// `method target` with `body` (JSON) and, if `key`, the Bearer header.
fn call(
    server: &TestServer,
    method: &str,
    target: &str,
    key: Option<&str>,
    body: &str,
) -> Response {
    let mut http = Http::connect(server.addr);
    let auth = key
        .map(|k| format!("Authorization: Bearer {k}\r\n"))
        .unwrap_or_default();
    http.send(format!(
        "{method} {target} HTTP/1.1\r\nHost: test\r\n{auth}Content-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    ));
    http.response(false)
}

fn json_of(response: &Response) -> Value {
    serde_json::from_str(response.body_text())
        .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", response.body_text()))
}

#[test]
fn without_the_right_key_every_endpoint_is_401_and_without_a_key_there_is_no_api() {
    let (server, key_file) = api_server();
    for (method, target) in [
        ("GET", "/api/rooms"),
        ("POST", "/api/rooms/general/messages"),
        ("POST", "/api/users/bob/kick"),
        ("POST", "/api/users/bob/ban"),
    ] {
        for key in [
            None,
            Some("wrong key of some length"),
            Some("a backend key of enough byteS"),
        ] {
            let response = call(&server, method, target, key, r#"{"text":"x","minutes":1}"#);
            assert_eq!(response.status, 401, "{method} {target} with {key:?}");
            assert_eq!(response.header("WWW-Authenticate"), Some("Bearer"));
        }
    }
    let plain = TestServer::start();
    let response = call(&plain, "GET", "/api/rooms", Some(KEY), "");
    assert_eq!(response.status, 404, "a server without a key has an API");
    let _ = std::fs::remove_file(key_file);
}

#[test]
fn a_backend_lists_rooms_publishes_kicks_and_bans() {
    let (server, key_file) = api_server();
    let mut tutorial = v1::connect(&server, "carol");
    v1::expect_join(&mut tutorial, "carol");
    let (mut bob, _) = v2_client::join_v2(&server, "bob", "", true);
    v1::expect_join(&mut tutorial, "bob");

    let rooms = call(&server, "GET", "/api/rooms", Some(KEY), "");
    assert_eq!(rooms.status, 200, "{}", rooms.body_text());
    assert_eq!(
        json_of(&rooms)["rooms"],
        json!([{"name": "general", "members": ["bob", "carol"], "last_id": 0}])
    );

    // As a named user: an ordinary message to everyone, tutorial clients included.
    let published = call(
        &server,
        "POST",
        "/api/rooms/general/messages",
        Some(KEY),
        r#"{"text":"deploy at 5pm","user":"ops-bot"}"#,
    );
    assert_eq!(published.status, 201, "{}", published.body_text());
    assert_eq!(json_of(&published), json!({"room": "general", "id": 1}));
    v1::expect_message(&mut tutorial, "ops-bot", "deploy at 5pm");
    let id = v2_client::expect_message(&mut bob, "ops-bot", "deploy at 5pm", "general");
    assert_eq!(id, 1);

    // As the system: the empty name, which no client can connect as.
    let published = call(
        &server,
        "POST",
        "/api/rooms/general/messages",
        Some(KEY),
        r#"{"text":"maintenance tonight"}"#,
    );
    assert_eq!(published.status, 201, "{}", published.body_text());
    v1::expect_message(&mut tutorial, "", "maintenance tonight");
    assert_eq!(
        v2_client::expect_message(&mut bob, "", "maintenance tonight", "general"),
        2
    );

    // Bad bodies and names are 400, unknown endpoints 404, wrong methods 405.
    for (method, target, body, status) in [
        ("POST", "/api/rooms/general/messages", "not json", 400),
        (
            "POST",
            "/api/rooms/general/messages",
            r#"{"user":"x"}"#,
            400,
        ),
        (
            "POST",
            "/api/rooms/Not%20A%20Room!/messages",
            r#"{"text":"x"}"#,
            400,
        ),
        ("GET", "/api/rooms/general/messages", "", 405),
        ("GET", "/api/nothing", "", 404),
        ("POST", "/api/users/nobody/kick", "{}", 404),
    ] {
        let response = call(&server, method, target, Some(KEY), body);
        assert_eq!(
            response.status,
            status,
            "{method} {target} {body}: {}",
            response.body_text()
        );
    }

    // Kick: every connection of the user closes with 4003.
    let kicked = call(
        &server,
        "POST",
        "/api/users/bob/kick",
        Some(KEY),
        r#"{"reason":"flooding"}"#,
    );
    assert_eq!(kicked.status, 200, "{}", kicked.body_text());
    assert_eq!(json_of(&kicked)["closed"], 1);
    let close = close_of(&mut bob);
    assert_eq!(close.0, 4003, "{close:?}");
    assert!(close.1.contains("flooding"), "{close:?}");

    // Ban: carol is closed with 4004.
    let banned = call(
        &server,
        "POST",
        "/api/users/carol/ban",
        Some(KEY),
        r#"{"minutes":30,"reason":"spam"}"#,
    );
    assert_eq!(banned.status, 200, "{}", banned.body_text());
    let close = close_of(&mut tutorial);
    assert_eq!(close.0, 4004, "{close:?}");
    let _ = std::fs::remove_file(key_file);
}

/// Reads past any frames until the server's close frame: its code and reason.
fn close_of(client: &mut v1::Client) -> (u16, String) {
    loop {
        match client.read() {
            Ok(tungstenite::Message::Close(Some(frame))) => {
                return (u16::from(frame.code), frame.reason.to_string())
            }
            Ok(tungstenite::Message::Close(None)) => return (1005, String::new()),
            Ok(_) => {}
            Err(e) => panic!("the connection ended without a close frame: {e}"),
        }
    }
}
