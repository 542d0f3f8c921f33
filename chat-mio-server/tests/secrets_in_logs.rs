//! No secret reaches a log: with `--auth token` and the most verbose log level, neither the
//! HS256 secret nor any token a client presented (valid, forged, in the query string or in an
//! `Authorization` header) appears in anything the process writes; with `--auth accounts`,
//! neither a password (right or wrong) nor a session cookie.

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

/// A server process at trace level, and the address from its first line of stdout.
struct Traced {
    child: std::process::Child,
    stdout: std::process::ChildStdout,
    first_line: String,
    addr: String,
}

fn start(args: &[&str], env: &[(&str, &str)]) -> Traced {
    let mut child = Command::new(BINARY)
        .args(["--bind", "127.0.0.1:0", "--log-level", "trace"])
        .args(args)
        .envs(env.iter().copied())
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
    let first_line = String::from_utf8_lossy(&line).into_owned();
    let addr = first_line
        .strip_prefix("Open http://")
        .and_then(|rest| rest.split_whitespace().next())
        .map(|a| a.trim_end_matches('/').to_owned())
        .unwrap_or_else(|| panic!("no address in {first_line:?}"));
    Traced {
        child,
        stdout,
        first_line,
        addr,
    }
}

impl Traced {
    /// Stops the server; everything it wrote.
    fn stop(mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let mut out = String::new();
        let _ = self.stdout.read_to_string(&mut out);
        let mut err = String::new();
        let _ = self
            .child
            .stderr
            .take()
            .expect("stderr")
            .read_to_string(&mut err);
        format!("{}\n{out}\n{err}", self.first_line)
    }
}

#[test]
fn neither_the_secret_nor_any_token_reaches_the_log() {
    let server = start(
        &["--store", "memory", "--auth", "token"],
        &[("CHAT_JWT_SECRET", SECRET)],
    );
    let addr = server.addr.clone();

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

    let all = server.stop();
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

/// One plain HTTP request; the whole response.
fn exchange(addr: &str, raw: &str) -> String {
    let Ok(mut stream) = TcpStream::connect(addr) else {
        panic!("connect to {addr}");
    };
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    stream.write_all(raw.as_bytes()).expect("write");
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    response
}

fn post(addr: &str, path: &str, extra: &str, body: &str) -> String {
    exchange(
        addr,
        &format!(
            "POST {path} HTTP/1.1\r\nHost: {addr}\r\n{extra}Content-Length: {}\r\n\
             Connection: close\r\n\r\n{body}",
            body.len()
        ),
    )
}

#[test]
fn neither_a_password_nor_a_session_cookie_reaches_the_log() {
    const PASSWORD: &str = "pw-that-must-never-be-logged";
    let dir = std::env::temp_dir().join(format!("chat-secrets-log-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let dir_arg = dir.to_str().expect("a UTF-8 temp path");
    let mut add = Command::new(BINARY)
        .args(["user", "add", "alice", "--data-dir", dir_arg])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("user add");
    add.stdin
        .take()
        .expect("stdin")
        .write_all(format!("{PASSWORD}\n").as_bytes())
        .expect("write the password");
    assert!(add.wait().expect("user add ends").success());

    let server = start(&["--auth", "accounts", "--data-dir", dir_arg], &[]);
    let addr = server.addr.clone();
    let wrong = post(&addr, "/login", "", "name=alice&password=wrong-pw-also-secret");
    assert!(wrong.starts_with("HTTP/1.1 401"), "{wrong}");
    let ok = post(&addr, "/login", "", &format!("name=alice&password={PASSWORD}"));
    let cookie = ok
        .lines()
        .find_map(|l| l.strip_prefix("Set-Cookie: chat_session="))
        .and_then(|v| v.split(';').next())
        .unwrap_or_else(|| panic!("no cookie in {ok}"))
        .to_owned();
    let with_cookie = format!("Cookie: chat_session={cookie}\r\n");
    let who = exchange(
        &addr,
        &format!("GET /session HTTP/1.1\r\nHost: {addr}\r\n{with_cookie}Connection: close\r\n\r\n"),
    );
    assert!(who.contains("\"user\":\"alice\""), "{who}");
    request(&addr, "/ws/alice", &with_cookie);
    request(&addr, "/ws/bob", &with_cookie);
    post(&addr, "/logout", &with_cookie, "");
    request(&addr, "/ws/alice", &with_cookie);

    let all = server.stop();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(all.contains("logged in"), "the log shows the login:\n{all}");
    let session_id = cookie.split('.').next().unwrap_or(&cookie);
    for (what, secret) in [
        ("the password", PASSWORD),
        ("a wrong password", "wrong-pw-also-secret"),
        ("the cookie", cookie.as_str()),
        ("the session id", session_id),
    ] {
        assert!(!all.contains(secret), "{what} is in the log:\n{all}");
    }
}
