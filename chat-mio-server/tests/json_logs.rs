//! `--log-format json` with the access log on: every line the server writes to stderr is one
//! JSON object with a timestamp, a level, a target and a message; connections, refusals and
//! requests carry their fields (peer, user, room, method, path, status); and no token, secret,
//! password or session cookie appears in any of it, the access log included.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::Duration;

use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

const BINARY: &str = env!("CARGO_BIN_EXE_chat-mio-server");
const SECRET: &str = "a-json-log-secret-of-at-least-32-bytes-XYZ";
const API_KEY: &str = "api-key-never-logged-0123456789";

fn token(sub: &str) -> String {
    let exp = chrono::Utc::now().timestamp() + 3600;
    encode(
        &Header::new(Algorithm::HS256),
        &json!({"sub": sub, "exp": exp}),
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .expect("sign a token")
}

/// One request (an upgrade unless `extra` says otherwise); reads the start of the answer.
fn request(addr: &str, method: &str, target: &str, extra: &str) -> String {
    let Ok(mut stream) = TcpStream::connect(addr) else {
        panic!("connect to {addr}");
    };
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    write!(
        stream,
        "{method} {target} HTTP/1.1\r\nHost: {addr}\r\n{extra}Connection: close\r\n\r\n"
    )
    .expect("write");
    let mut head = [0u8; 256];
    let n = stream.read(&mut head).unwrap_or(0);
    String::from_utf8_lossy(&head[..n]).into_owned()
}

const UPGRADE: &str = "Upgrade: websocket\r\nConnection: Upgrade\r\n\
                       Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n";

#[test]
fn json_log_lines_parse_carry_their_fields_and_hold_no_secret() {
    let mut child = Command::new(BINARY)
        .args([
            "--bind",
            "127.0.0.1:0",
            "--store",
            "memory",
            "--auth",
            "token",
            "--log-format",
            "json",
            "--log-level",
            "trace",
            "--access-log",
            "on",
        ])
        .env("CHAT_JWT_SECRET", SECRET)
        .env("CHAT_API_KEY", API_KEY)
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
    let first = String::from_utf8_lossy(&line).into_owned();
    let addr = first
        .strip_prefix("Open http://")
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no address in {first:?}"))
        .to_owned();

    let valid = token("alice");
    let forged = format!("{}x", token("mallory"));
    let answer = request(
        &addr,
        "GET",
        &format!("/ws/alice?token={valid}&room=dev"),
        UPGRADE,
    );
    assert!(answer.starts_with("HTTP/1.1 101"), "{answer}");
    let answer = request(
        &addr,
        "GET",
        &format!("/ws/mallory?token={forged}"),
        UPGRADE,
    );
    assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
    let bearer = format!("{UPGRADE}Authorization: Bearer {valid}\r\n");
    request(&addr, "GET", "/ws/alice?room=ops", &bearer);
    request(&addr, "GET", &format!("/healthz?access_token={valid}"), "");
    let api = format!("Authorization: Bearer {API_KEY}\r\n");
    request(&addr, "GET", "/api/rooms", &api);
    request(
        &addr,
        "GET",
        "/nope",
        &format!("Cookie: chat_session={valid}\r\n"),
    );

    // SIGTERM: the drain and its lines are logged too; then everything is read to the end.
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while child.try_wait().ok().flatten().is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.wait();
    let mut stderr = String::new();
    let _ = child
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut stderr);

    let lines: Vec<Value> = stderr
        .lines()
        .map(|line| {
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line:?}"))
        })
        .collect();
    assert!(lines.len() >= 8, "too few lines:\n{stderr}");
    for line in &lines {
        let object = line.as_object().expect("an object per line");
        let keys: Vec<&str> = object.keys().map(String::as_str).take(4).collect();
        for key in ["timestamp", "level", "target", "message"] {
            assert!(
                object.get(key).is_some_and(Value::is_string),
                "{key} missing in {line}"
            );
        }
        let timestamp = object["timestamp"].as_str().unwrap_or_default();
        assert!(
            chrono::DateTime::parse_from_rfc3339(timestamp).is_ok(),
            "timestamp {timestamp:?} is not RFC 3339"
        );
        assert!(
            ["ERROR", "WARN", "INFO", "DEBUG", "TRACE"]
                .contains(&object["level"].as_str().unwrap_or_default()),
            "{line}"
        );
        assert!(!keys.is_empty());
    }
    let find = |what: &str, test: &dyn Fn(&Value) -> bool| {
        lines
            .iter()
            .find(|l| test(l))
            .unwrap_or_else(|| panic!("no line for {what} in:\n{stderr}"))
    };
    let connected = find("alice's connection", &|l| {
        l["message"]
            .as_str()
            .is_some_and(|m| m.contains("connected"))
            && l["user"] == "alice"
            && l["room"] == "dev"
    });
    assert!(connected["peer"]
        .as_str()
        .is_some_and(|p| p.starts_with("127.0.0.1:")));
    let refused = find("mallory's refusal", &|l| {
        l["message"].as_str().is_some_and(|m| m.contains("refused")) && l["user"] == "mallory"
    });
    assert_eq!(refused["status"], 401, "{refused}");
    assert!(refused["peer"].is_string(), "{refused}");
    let upgrade = find("the access record of the upgrade", &|l| {
        l["target"] == "access" && l["status"] == 101 && l["room"] == "dev"
    });
    assert_eq!(upgrade["method"], "GET");
    assert_eq!(upgrade["user"], "alice");
    assert!(
        upgrade["path"]
            .as_str()
            .is_some_and(|p| p.starts_with("/ws/alice?token=***")),
        "{upgrade}"
    );
    find("the access record of the refusal", &|l| {
        l["target"] == "access" && l["status"] == 401
    });
    find("the access record of /healthz", &|l| {
        l["target"] == "access" && l["status"] == 200 && l["path"] == "/healthz?access_token=***"
    });
    find("the access record of the API call", &|l| {
        l["target"] == "access" && l["path"] == "/api/rooms"
    });
    find("the shutdown", &|l| {
        l["message"]
            .as_str()
            .is_some_and(|m| m.contains("shutdown complete"))
    });

    for (what, secret) in [
        ("the JWT secret", SECRET),
        ("the API key", API_KEY),
        ("a valid token", valid.as_str()),
        ("a forged token", forged.as_str()),
        ("a signature", valid.rsplit('.').next().unwrap_or(&valid)),
    ] {
        assert!(!stderr.contains(secret), "{what} is in the log:\n{stderr}");
    }
}
