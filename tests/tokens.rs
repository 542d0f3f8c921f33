//! `--auth token` end to end over real sockets: a signed token from the operator's app is the
//! only way in, presented as `?token=` or `Authorization: Bearer`; forged, tampered, expired,
//! premature, misdirected and wrong-room tokens are refused before the upgrade with 401 or 403
//! and a reason; a token that expires on a live connection closes it with 4001, unless a v2
//! `refresh` brings a fresh one.

mod common;
#[path = "common/http_client.rs"]
mod http_client;
#[path = "common/client.rs"]
mod v1;
#[path = "common/v2_client.rs"]
mod v2_client;

use std::io::Write as _;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use chat_mio_server::{AuthMode, Config};
use common::TestServer;
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::{json, Value};
use tungstenite::client::IntoClientRequest;
use tungstenite::Message;
use v2_client::{recv_or_close, recv_until};

const SECRET: &[u8] = b"an HS256 secret of at least thirty-two bytes, for tests";
const KEYS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/chat-auth/tests/keys");

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// A server that checks HS256 tokens with [`SECRET`] and RS256 ones with the test RSA key.
fn token_server() -> (TestServer, PathBuf) {
    token_server_with(Vec::new())
}

fn token_server_with(room_access: Vec<chat_mio_server::RoomAccess>) -> (TestServer, PathBuf) {
    let dir = std::env::temp_dir().join(format!(
        "chat-tokens-{}-{}",
        std::process::id(),
        now_nanos()
    ));
    std::fs::create_dir_all(&dir).expect("a temp dir");
    let secret = dir.join("secret");
    std::fs::File::create(&secret)
        .and_then(|mut f| f.write_all(SECRET))
        .expect("write the secret");
    let server = TestServer::with_config(Config {
        auth: AuthMode::Token,
        jwt_secret_file: Some(secret),
        jwt_public_key: Some(PathBuf::from(format!("{KEYS}/rsa_public.pem"))),
        room_access,
        heartbeat: Duration::ZERO,
        idle_timeout: Duration::ZERO,
        ..Config::default()
    });
    (server, dir)
}

fn now_nanos() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}

fn hs256(claims: &Value) -> String {
    encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(SECRET),
    )
    .expect("sign a test token")
}

fn rs256(claims: &Value) -> String {
    let pem = std::fs::read(format!("{KEYS}/rsa_private.pem")).expect("the test RSA key");
    encode(
        &Header::new(Algorithm::RS256),
        claims,
        &EncodingKey::from_rsa_pem(&pem).expect("a PEM key"),
    )
    .expect("sign a test token")
}

fn claims(sub: &str, exp_in: i64) -> Value {
    json!({"sub": sub, "exp": now() + exp_in})
}

/// An upgrade of `/ws/{path}` with `extra` header lines: the status, the headers and the body.
fn upgrade(server: &TestServer, path: &str, extra: &str) -> (u16, Option<String>, String) {
    let (_, response) = http_client::upgrade(server.addr, path, extra);
    let challenge = response.header("WWW-Authenticate").map(str::to_owned);
    let body = response.body_text().to_owned();
    (response.status, challenge, body)
}

type Client = tungstenite::WebSocket<std::net::TcpStream>;

fn connect_v2(server: &TestServer, path: &str) -> Client {
    let mut request = format!("ws://{}/ws/{path}", server.addr)
        .into_client_request()
        .expect("a request");
    request.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        "chat.v2".parse().expect("a header value"),
    );
    let stream = common::tcp_connect(server.addr);
    tungstenite::client(request, stream).expect("upgrade").0
}

#[test]
fn a_valid_token_in_the_query_or_a_bearer_header_lets_its_user_in() {
    let (server, dir) = token_server();
    let token = hs256(&claims("alice", 3600));
    let (status, _, body) = upgrade(&server, &format!("alice?token={token}"), "");
    assert_eq!(status, 101, "{body}");
    let (status, _, body) = upgrade(
        &server,
        "alice",
        &format!("Authorization: Bearer {token}\r\n"),
    );
    assert_eq!(status, 101, "{body}");
    let (status, _, body) = upgrade(
        &server,
        &format!("bob?token={}", rs256(&claims("bob", 3600))),
        "",
    );
    assert_eq!(status, 101, "an RS256 token: {body}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn forged_tampered_expired_and_misdirected_tokens_are_refused_before_the_upgrade() {
    let (server, dir) = token_server();
    let valid = hs256(&claims("alice", 3600));
    let none_alg = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#),
        URL_SAFE_NO_PAD.encode(claims("alice", 3600).to_string())
    );
    // Algorithm confusion: an HS256 token whose "secret" is the server's RSA public key.
    let public_pem = std::fs::read(format!("{KEYS}/rsa_public.pem")).expect("the test key");
    let confused = encode(
        &Header::new(Algorithm::HS256),
        &claims("alice", 3600),
        &EncodingKey::from_secret(&public_pem),
    )
    .expect("sign");
    let wrong_key = encode(
        &Header::new(Algorithm::HS256),
        &claims("alice", 3600),
        &EncodingKey::from_secret(b"another secret of at least thirty-two bytes!!"),
    )
    .expect("sign");
    // The payload swapped for bob's, the signature kept.
    let mut parts: Vec<String> = valid.split('.').map(str::to_owned).collect();
    parts[1] = URL_SAFE_NO_PAD.encode(claims("bob", 3600).to_string());
    let tampered = parts.join(".");
    let cases: [(&str, String, &str, u16); 11] = [
        ("no token", "alice".to_owned(), "", 401),
        ("garbage", "alice?token=not.a.token".to_owned(), "", 401),
        ("alg none", format!("alice?token={none_alg}"), "", 401),
        (
            "algorithm confusion",
            format!("alice?token={confused}"),
            "",
            401,
        ),
        ("wrong key", format!("alice?token={wrong_key}"), "", 401),
        ("tampered payload", format!("bob?token={tampered}"), "", 401),
        (
            "expired",
            format!("alice?token={}", hs256(&claims("alice", -3600))),
            "",
            401,
        ),
        (
            "not yet valid",
            format!(
                "alice?token={}",
                hs256(&json!({"sub": "alice", "exp": now() + 7200, "nbf": now() + 3600}))
            ),
            "",
            401,
        ),
        (
            "no exp",
            format!("alice?token={}", hs256(&json!({"sub": "alice"}))),
            "",
            401,
        ),
        (
            "another user's token",
            format!("mallory?token={valid}"),
            "",
            403,
        ),
        (
            "a room the token does not allow",
            format!(
                "alice?room=secret&token={}",
                hs256(&json!({"sub": "alice", "exp": now() + 3600, "rooms": ["general"]}))
            ),
            "",
            403,
        ),
    ];
    for (name, path, extra, expected) in cases {
        let (status, challenge, body) = upgrade(&server, &path, extra);
        assert_eq!(status, expected, "{name}: {body}");
        assert!(!body.trim().is_empty(), "{name}: the refusal says why");
        if expected == 401 {
            assert_eq!(challenge.as_deref(), Some("Bearer"), "{name}");
        }
        assert!(
            !body.contains(path.split("token=").nth(1).unwrap_or("\u{0}")),
            "{name}: the refusal echoes the token"
        );
    }
    // The allowed room of a rooms claim works.
    let scoped = hs256(&json!({"sub": "alice", "exp": now() + 3600, "rooms": ["general"]}));
    let (status, _, body) = upgrade(&server, &format!("alice?room=general&token={scoped}"), "");
    assert_eq!(status, 101, "{body}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_token_that_expires_closes_the_connection_with_4001_unless_refreshed() {
    let (server, dir) = token_server();
    // Past its `exp` but inside the 30 s leeway: about two seconds left.
    let short = hs256(&claims("alice", -28));
    let mut closing = connect_v2(&server, &format!("alice?token={short}"));
    recv_until(&mut closing, "history");
    let started = Instant::now();
    let close = loop {
        match recv_or_close(&mut closing) {
            Ok(_) => continue,
            Err(close) => break close,
        }
    };
    assert_eq!(close, (4001, "token expired".to_owned()));
    assert!(started.elapsed() < Duration::from_secs(8), "closed late");

    // The same, refreshed in time with a fresh token: still open after the old expiry.
    let mut kept = connect_v2(
        &server,
        &format!("alice?token={}", hs256(&claims("alice", -28))),
    );
    recv_until(&mut kept, "history");
    let send = |client: &mut Client, command: Value| {
        client
            .send(Message::text(command.to_string()))
            .expect("send");
    };
    send(
        &mut kept,
        json!({"type": "refresh", "token": hs256(&claims("bob", 3600))}),
    );
    let refused = recv_until(&mut kept, "error");
    assert_eq!(refused["code"], "bad_token", "{refused}");
    send(
        &mut kept,
        json!({"type": "refresh", "token": hs256(&claims("alice", 3600))}),
    );
    recv_until(&mut kept, "token_refreshed");
    std::thread::sleep(Duration::from_secs(3));
    send(
        &mut kept,
        json!({"type": "message", "message": "still here"}),
    );
    let echo = recv_until(&mut kept, "message");
    assert_eq!(echo["message"], "still here");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_room_restricted_to_some_users_refuses_other_valid_tokens() {
    let (server, dir) = token_server_with(vec![chat_mio_server::RoomAccess {
        room: chat_protocol::RoomName::parse("staff").expect("a room"),
        users: vec!["alice".into()],
    }]);
    let alice = hs256(&claims("alice", 3600));
    let bob = hs256(&claims("bob", 3600));
    let (status, _, body) = upgrade(&server, &format!("alice?room=staff&token={alice}"), "");
    assert_eq!(status, 101, "{body}");
    let (status, _, body) = upgrade(&server, &format!("bob?room=staff&token={bob}"), "");
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("members only"), "{body}");
    let (status, _, body) = upgrade(&server, &format!("bob?room=general&token={bob}"), "");
    assert_eq!(status, 101, "{body}");
    let _ = std::fs::remove_dir_all(dir);
}
