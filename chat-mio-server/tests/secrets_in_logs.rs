//! No secret reaches a log: with `--auth token` and the most verbose log level, neither the
//! HS256 secret nor any token a client presented (valid, forged, in the query string or in an
//! `Authorization` header) appears in anything the process writes.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::Duration;

use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::json;

const BINARY: &str = env!("CARGO_BIN_EXE_chat-mio-server");
const SECRET: &str = "a-secret-of-at-least-32-bytes-SECRETSECRET";

fn token(sub: &str) -> String {
    let exp = chrono::Utc::now().timestamp() + 3600;
    encode(
        &Header::new(Algorithm::HS256),
        &json!({"sub": sub, "exp": exp}),
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .expect("sign a token")
}

fn request(addr: &str, target: &str, extra: &str) {
    let Ok(mut stream) = TcpStream::connect(addr) else {
        panic!("connect to {addr}");
    };
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    write!(
        stream,
        "GET {target} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{extra}\
         Connection: close\r\n\r\n"
    )
    .expect("write");
    let mut head = [0u8; 256];
    let _ = stream.read(&mut head);
}

#[test]
fn neither_the_secret_nor_any_token_reaches_the_log() {
    let mut child = Command::new(BINARY)
        .args([
            "--bind",
            "127.0.0.1:0",
            "--store",
            "memory",
            "--auth",
            "token",
            "--log-level",
            "trace",
        ])
        .env("CHAT_JWT_SECRET", SECRET)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the server");
    let mut stdout = child.stdout.take().expect("stdout");
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    while stdout.read(&mut byte).is_ok_and(|n| n == 1) && byte[0] != b'\n' {
        line.push(byte[0]);
    }
    let line = String::from_utf8_lossy(&line).into_owned();
    let addr = line
        .strip_prefix("Open http://")
        .and_then(|rest| rest.split_whitespace().next())
        .map(|a| a.trim_end_matches('/').to_owned())
        .unwrap_or_else(|| panic!("no address in {line:?}"));

    let valid = token("alice");
    let forged = format!("{}x", token("mallory"));
    request(&addr, &format!("/ws/alice?token={valid}&room=general"), "");
    request(&addr, &format!("/ws/mallory?token={forged}"), "");
    request(
        &addr,
        "/ws/alice",
        &format!("Authorization: Bearer {valid}\r\n"),
    );
    request(
        &addr,
        "/ws/eve",
        &format!("Authorization: Bearer {forged}\r\n"),
    );
    request(&addr, &format!("/static/nothing?token={valid}"), "");

    let _ = child.kill();
    let _ = child.wait();
    let mut out = String::new();
    let _ = stdout.read_to_string(&mut out);
    let mut err = String::new();
    let _ = child
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut err);
    let all = format!("{line}\n{out}\n{err}");
    assert!(
        all.contains("refused"),
        "the log shows the refusals:\n{all}"
    );
    for (what, secret) in [
        ("the secret", SECRET),
        ("a valid token", valid.as_str()),
        ("a forged token", forged.as_str()),
        // A token's signature alone is secret enough.
        ("a signature", valid.rsplit('.').next().unwrap_or(&valid)),
    ] {
        assert!(!all.contains(secret), "{what} is in the log:\n{all}");
    }
}
