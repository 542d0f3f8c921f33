//! Moderation end to end over real sockets, in `--auth token` mode: a token with
//! `"role":"admin"` may kick (every tab of the user closed with 4003 and the reason), ban
//! (closed with 4004, and the upgrade refused with 403 while the ban lasts) and delete a
//! message (every v2 client in the room gets `deleted`; later joiners' history and
//! scroll-back show it deleted). Anyone else's moderation commands are `forbidden`.

mod common;
#[path = "common/http_client.rs"]
mod http_client;
#[path = "common/client.rs"]
mod v1;
#[path = "common/v2_client.rs"]
mod v2_client;

use std::io::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use chat_mio_server::{AuthMode, Config};
use common::TestServer;
use http_client::Http;
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::{json, Value};
use tungstenite::client::IntoClientRequest;
use tungstenite::Message;
use v2_client::{recv_or_close, recv_until};

const SECRET: &[u8] = b"an HS256 secret of at least thirty-two bytes, for tests";

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// A token server that keeps everything in memory. The returned directory holds the secret.
fn token_server() -> (TestServer, PathBuf) {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let dir = std::env::temp_dir().join(format!("chat-mod-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a temp dir");
    let secret = dir.join("secret");
    std::fs::File::create(&secret)
        .and_then(|mut f| f.write_all(SECRET))
        .expect("write the secret");
    let server = TestServer::with_config(Config {
        auth: AuthMode::Token,
        jwt_secret_file: Some(secret),
        heartbeat: Duration::ZERO,
        idle_timeout: Duration::ZERO,
        ..Config::default()
    });
    (server, dir)
}

fn token(sub: &str, admin: bool) -> String {
    let mut claims = json!({"sub": sub, "exp": now() + 3600});
    if admin {
        claims["role"] = json!("admin");
    }
    encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(SECRET),
    )
    .expect("sign a test token")
}

type Client = tungstenite::WebSocket<std::net::TcpStream>;

/// A v2 client of `user` in `room`, with its token; `welcome` and `history` read.
fn join(server: &TestServer, user: &str, room: &str, admin: bool) -> (Client, Value) {
    let mut request = format!(
        "ws://{}/ws/{user}?room={room}&token={}",
        server.addr,
        token(user, admin)
    )
    .into_client_request()
    .expect("a request");
    request.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        "chat.v2".parse().expect("a header value"),
    );
    let stream = common::tcp_connect(server.addr);
    let mut client = tungstenite::client(request, stream).expect("upgrade").0;
    recv_until(&mut client, "welcome");
    let history = recv_until(&mut client, "history");
    (client, history)
}

fn send(client: &mut Client, command: &Value) {
    client
        .send(Message::text(command.to_string()))
        .expect("send");
}

/// Reads until the close frame; its code and text.
fn recv_close(client: &mut Client) -> (u16, String) {
    loop {
        if let Err(close) = recv_or_close(client) {
            return close;
        }
    }
}

/// The status and body of an upgrade of `/ws/{path}` that is expected to be refused.
fn refused_upgrade(server: &TestServer, path: &str) -> (u16, String) {
    let mut http = Http::connect(server.addr);
    http.send(format!(
        "GET /ws/{path} HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        server.addr
    ));
    let response = http.response(false);
    (response.status, response.body_text().to_owned())
}

#[test]
fn a_kicked_user_s_tabs_are_closed_with_4003_and_the_reason() {
    let (server, dir) = token_server();
    let (mut admin, _) = join(&server, "root", "general", true);
    let (mut tab1, _) = join(&server, "bob", "general", false);
    let (mut tab2, _) = join(&server, "bob", "lobby", false);
    send(
        &mut admin,
        &json!({"type":"kick","user":"bob","reason":"spamming links"}),
    );
    let kicked = (4003, "kicked by an admin: spamming links".to_owned());
    assert_eq!(recv_close(&mut tab1), kicked);
    assert_eq!(recv_close(&mut tab2), kicked);
    // The room hears bob leave; a kick is no ban: bob may come back.
    let left = recv_until(&mut admin, "disconnection");
    assert_eq!(left["client_id"], "bob");
    let (_back, _) = join(&server, "bob", "general", false);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_kick_by_message_id_closes_only_the_tab_that_sent_it() {
    let (server, dir) = token_server();
    let (mut admin, _) = join(&server, "root", "general", true);
    let (mut quiet_tab, _) = join(&server, "bob", "general", false);
    let (mut loud_tab, _) = join(&server, "bob", "general", false);
    send(&mut loud_tab, &v2_client::message("buy now"));
    let said = recv_until(&mut admin, "message");
    let id = said["id"].as_u64().expect("an id");
    send(
        &mut admin,
        &json!({"type":"kick","id":id,"reason":"that tab"}),
    );
    assert_eq!(
        recv_close(&mut loud_tab),
        (4003, "kicked by an admin: that tab".to_owned())
    );
    // The other tab of bob is still in: it can speak, and the admin hears it.
    send(&mut quiet_tab, &v2_client::message("still here"));
    loop {
        let frame = recv_until(&mut admin, "message");
        if frame["message"] == "still here" {
            break;
        }
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_non_admin_s_kick_is_forbidden() {
    let (server, dir) = token_server();
    let (mut bob, _) = join(&server, "bob", "general", false);
    let (mut carol, _) = join(&server, "carol", "general", false);
    send(&mut bob, &json!({"type":"kick","user":"carol"}));
    let error = recv_until(&mut bob, "error");
    assert_eq!(error["code"], "forbidden");
    // carol is still connected: she hears bob's next message.
    send(&mut bob, &json!({"type":"message","message":"sorry"}));
    let message = recv_until(&mut carol, "message");
    assert_eq!(message["message"], "sorry");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_banned_user_is_closed_with_4004_and_refused_at_the_upgrade_with_403() {
    let (server, dir) = token_server();
    let (mut admin, _) = join(&server, "root", "general", true);
    let (mut bob, _) = join(&server, "bob", "general", false);
    send(
        &mut admin,
        &json!({"type":"ban","user":"bob","minutes":60,"reason":"flooding"}),
    );
    let (code, text) = recv_close(&mut bob);
    assert_eq!(code, 4004);
    assert!(
        text.starts_with("banned by an admin until ") && text.ends_with(": flooding"),
        "{text}"
    );
    let (status, body) = refused_upgrade(&server, &format!("bob?token={}", token("bob", false)));
    assert_eq!(status, 403, "{body}");
    assert!(
        body.starts_with("\"bob\" is banned until ") && body.trim_end().ends_with(": flooding"),
        "{body}"
    );
    // Others still get in.
    let (_carol, _) = join(&server, "carol", "general", false);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_deleted_message_disappears_for_the_room_a_later_joiner_and_scroll_back() {
    let (server, dir) = token_server();
    let (mut admin, _) = join(&server, "root", "general", true);
    let (mut carol, _) = join(&server, "carol", "general", false);
    for text in ["hello", "my password is hunter2", "oops"] {
        send(&mut carol, &json!({"type":"message","message":text}));
    }
    let mut id = 0;
    for _ in 0..3 {
        let m = recv_until(&mut admin, "message");
        if m["message"] == "my password is hunter2" {
            id = m["id"].as_u64().expect("an id");
        }
    }
    assert!(id > 0);
    send(&mut admin, &json!({"type":"delete","id":id}));
    for client in [&mut admin, &mut carol] {
        let deleted = recv_until(client, "deleted");
        assert_eq!(deleted["id"], id);
        assert_eq!(deleted["room"], "general");
    }
    let (mut dave, history) = join(&server, "dave", "general", false);
    let texts: Vec<(&Value, &Value, &Value)> = history["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|m| (&m["id"], &m["message"], &m["deleted"]))
        .collect();
    assert_eq!(
        texts,
        [
            (&json!(id - 1), &json!("hello"), &Value::Null),
            (&json!(id), &json!(""), &json!(true)),
            (&json!(id + 1), &json!("oops"), &Value::Null),
        ]
    );
    send(
        &mut dave,
        &json!({"type":"history_before","before": id + 1, "limit": 1}),
    );
    let page = recv_until(&mut dave, "history_page");
    assert_eq!(page["messages"][0]["id"], id);
    assert_eq!(page["messages"][0]["message"], "");
    assert_eq!(page["messages"][0]["deleted"], true);
    // An id the room never gave.
    send(&mut admin, &json!({"type":"delete","id":9999}));
    assert_eq!(recv_until(&mut admin, "error")["code"], "unknown_message");
    let _ = std::fs::remove_dir_all(dir);
}
