//! Durable history, end to end: the real binary, a real SQLite file in a fresh directory, real
//! restarts (SIGTERM, then start again) and real crashes (`kill -9`), and the faults an operator
//! meets (a data directory that is a file, a database another server holds, one from a newer
//! version, a corrupt file, a disk that fills up while serving).

use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tungstenite::client::IntoClientRequest;
use tungstenite::Message;

mod common;

use common::{
    ids_and_texts, joined, raw_request, recv, send, Client, Server, TempDir, BINARY, IO_TIMEOUT,
};

/// Reads frames until one of `kind` arrives; returns it and what came before.
fn recv_until(client: &mut Client, kind: &str) -> (Value, Vec<Value>) {
    let mut before = Vec::new();
    loop {
        let frame = recv(client);
        if frame["type"] == kind {
            return (frame, before);
        }
        before.push(frame);
    }
}

/// Sends `text` with a client_msg_id and waits for its ack; returns the ack.
fn post(client: &mut Client, text: &str, key: &str) -> Value {
    send(
        client,
        json!({"type": "message", "message": text, "client_msg_id": key}),
    );
    loop {
        let frame = recv(client);
        if frame["type"] == "ack" && frame["client_msg_id"] == key {
            return frame;
        }
    }
}

#[test]
fn a_clean_restart_keeps_history_ids_and_epoch_and_resumes_without_a_gap() {
    let dir = TempDir::new("restart");
    let server = Server::start(&dir.data(), &[]);
    let mut alice = server.join("alice", "team", None);
    let (welcome, _, _) = joined(&mut alice);
    let epoch = welcome["epoch"].as_u64().expect("an epoch");
    let mut ids = Vec::new();
    for i in 1..=5 {
        let ack = post(&mut alice, &format!("before restart {i}"), &format!("k{i}"));
        assert_eq!(ack["stored"], true, "{ack}");
        ids.push(ack["id"].as_u64().expect("an id"));
    }
    drop(alice);
    server.stop();

    let server = Server::start(&dir.data(), &[]);
    // bob saw up to the second message before the restart.
    let mut bob = server.join("bob", "team", Some((ids[1], epoch)));
    let (welcome, gap, history) = joined(&mut bob);
    assert_eq!(welcome["epoch"].as_u64(), Some(epoch), "the epoch changed");
    assert!(gap.is_none(), "a gap after a clean restart: {gap:?}");
    assert_eq!(history["resumed"], true, "{history}");
    assert_eq!(
        ids_and_texts(&history["messages"]),
        (3..=5)
            .map(|i| (ids[i - 1], format!("before restart {i}")))
            .collect::<Vec<_>>(),
        "exactly the missed messages"
    );
    // Ids continue where they stopped; a retry of a stored message gets its original id.
    let mut alice = server.join("alice", "team", None);
    joined(&mut alice);
    let ack = post(&mut alice, "after restart", "k6");
    assert_eq!(ack["id"].as_u64(), Some(ids[4] + 1), "{ack}");
    let retry = post(&mut alice, "before restart 5", "k5");
    assert_eq!(
        retry["id"].as_u64(),
        Some(ids[4]),
        "a retry got a new id: {retry}"
    );
    let (live, _) = recv_until(&mut bob, "message");
    assert_eq!(
        live["message"], "after restart",
        "the retry was broadcast again"
    );
    server.stop();
}

#[test]
fn after_kill_9_every_acknowledged_message_is_there_once_and_the_epoch_is_new() {
    let dir = TempDir::new("kill9");
    let server = Server::start(&dir.data(), &["--history", "100"]);
    let mut alice = server.join("alice", "flood", None);
    let (welcome, _, _) = joined(&mut alice);
    let old_epoch = welcome["epoch"].as_u64().expect("an epoch");
    // A flood: 16 in flight at a time; the server is killed once 300 are acknowledged.
    let mut acked = Vec::new();
    let mut sent = 0u64;
    while acked.len() < 300 {
        while sent < acked.len() as u64 + 16 {
            sent += 1;
            send(
                &mut alice,
                json!({"type": "message", "message": format!("m{sent}"), "client_msg_id": format!("k{sent}")}),
            );
        }
        let frame = recv(&mut alice);
        if frame["type"] == "ack" {
            assert_eq!(frame["stored"], true, "{frame}");
            let key = frame["client_msg_id"].as_str().expect("a key");
            acked.push((
                frame["id"].as_u64().expect("an id"),
                format!("m{}", &key[1..]),
            ));
        }
    }
    server.kill9();

    let server = Server::start(&dir.data(), &["--history", "100"]);
    let mut reader = server.join("reader", "flood", Some((0, old_epoch)));
    let (welcome, gap, history) = joined(&mut reader);
    assert_ne!(
        welcome["epoch"].as_u64(),
        Some(old_epoch),
        "ids handed out before the crash may not have been stored: a new epoch is due"
    );
    assert!(
        gap.is_some(),
        "resuming across a crash must be an honest gap"
    );
    // Everything stored, newest page first, through scroll-back.
    let mut stored: Vec<(u64, String)> = ids_and_texts(&history["messages"]);
    let mut before = stored.first().map_or(u64::MAX, |(id, _)| *id);
    loop {
        send(
            &mut reader,
            json!({"type": "history_before", "before": before, "limit": 100}),
        );
        let (page, _) = recv_until(&mut reader, "history_page");
        let messages = ids_and_texts(&page["messages"]);
        let Some(&(first, _)) = messages.first() else {
            break;
        };
        before = first;
        stored.splice(0..0, messages);
        if page["more"] != true {
            break;
        }
    }
    let mut seen = std::collections::HashMap::new();
    for (id, text) in &stored {
        assert!(seen.insert(*id, text.clone()).is_none(), "id {id} twice");
    }
    for (id, text) in &acked {
        assert_eq!(
            seen.get(id),
            Some(text),
            "acknowledged message {id} ({text}) lost or changed"
        );
    }
    // New messages get ids after every stored one: no (epoch, id) names two messages.
    let mut alice = server.join("alice", "flood", None);
    joined(&mut alice);
    let ack = post(&mut alice, "after the crash", "after");
    let max_stored = stored.iter().map(|(id, _)| *id).max().unwrap_or(0);
    assert!(ack["id"].as_u64().expect("an id") > max_stored, "{ack}");
    server.stop();
}

/// Starting must fail with a clear message and a non-zero status, without serving.
fn refuses_to_start(data: &Path, extra: &[&str], expect_in_message: &[&str]) {
    match Server::try_start(data, extra) {
        Ok(server) => panic!("it started:\n{}", server.output()),
        Err((status, output)) => {
            let status =
                status.unwrap_or_else(|| panic!("it neither served nor exited:\n{output}"));
            assert!(!status.success(), "exit status {status}:\n{output}");
            let lower = output.to_lowercase();
            assert!(
                expect_in_message.iter().any(|word| lower.contains(word)),
                "the message names none of {expect_in_message:?}:\n{output}"
            );
        }
    }
}

#[test]
fn a_data_dir_that_is_a_regular_file_stops_the_start_with_a_clear_message() {
    let dir = TempDir::new("file");
    let file = dir.path().join("not-a-dir");
    std::fs::write(&file, b"I am a file").expect("write a file");
    refuses_to_start(&file, &[], &["not a directory", "directory"]);
}

#[test]
fn a_data_dir_that_cannot_be_created_stops_the_start_with_a_clear_message() {
    // /proc refuses new directories even to root (chmod would not stop root).
    refuses_to_start(
        Path::new("/proc/self/chat-data"),
        &[],
        &["cannot", "directory", "permission", "denied"],
    );
}

#[test]
fn a_database_held_by_another_server_stops_the_second_one() {
    let dir = TempDir::new("locked");
    let first = Server::start(&dir.data(), &[]);
    refuses_to_start(&dir.data(), &[], &["lock", "in use", "busy"]);
    // The first one is unharmed.
    let mut alice = first.join("alice", "general", None);
    joined(&mut alice);
    assert_eq!(post(&mut alice, "still here", "k1")["stored"], true);
    drop(alice);
    first.stop();
}

#[test]
fn a_database_from_a_newer_version_or_a_corrupt_file_stops_the_start() {
    let dir = TempDir::new("newer");
    Server::start(&dir.data(), &[]).stop();
    let db = dir.data().join("chat.db");
    {
        let conn = rusqlite::Connection::open(&db).expect("open the database");
        conn.pragma_update(None, "user_version", 999)
            .expect("set user_version");
    }
    refuses_to_start(&dir.data(), &[], &["newer", "version"]);

    let dir = TempDir::new("corrupt");
    Server::start(&dir.data(), &[]).stop();
    let db = dir.data().join("chat.db");
    let mut bytes = std::fs::read(&db).expect("read the database");
    bytes.truncate(bytes.len() / 3);
    for b in bytes.iter_mut().take(100) {
        *b = 0x5a;
    }
    std::fs::write(&db, &bytes).expect("corrupt the database");
    refuses_to_start(
        &dir.data(),
        &[],
        &["corrupt", "not a database", "malformed"],
    );
}

#[test]
fn a_full_disk_keeps_the_chat_going_says_not_stored_and_recovers() {
    let dir = TempDir::new("full");
    let server = Server::start(&dir.data(), &[]);
    let mut alice = server.join("alice", "general", None);
    joined(&mut alice);
    let mut bob = server.join("bob", "general", None);
    joined(&mut bob);
    assert_eq!(post(&mut alice, "stored", "k0")["stored"], true);
    let (live, _) = recv_until(&mut bob, "message");
    assert_eq!(live["message"], "stored");

    // The disk is "full": no file of the server may grow any more.
    let status = Command::new("prlimit")
        .args(["--pid", &server.pid().to_string(), "--fsize=1:unlimited"])
        .status()
        .expect("run prlimit");
    assert!(status.success(), "prlimit");
    let mut not_stored = 0;
    for i in 1..=20 {
        let text = format!("{i}: {}", "x".repeat(8000));
        let ack = post(&mut alice, &text, &format!("full{i}"));
        if ack["stored"] == false {
            not_stored += 1;
        }
        // Live delivery goes on whatever the disk says.
        let (live, _) = recv_until(&mut bob, "message");
        assert!(
            live["message"] == text.as_str(),
            "bob got another message than number {i}"
        );
    }
    assert!(not_stored > 0, "no ack said the message was not stored");
    let (status, body) = server.http_get("/readyz");
    assert_eq!(status, 503, "/readyz while writes fail: {body}");
    assert!(server.metric("chat_store_errors_total") > 0.0);

    // The disk has room again: writes resume.
    let status = Command::new("prlimit")
        .args([
            "--pid",
            &server.pid().to_string(),
            "--fsize=unlimited:unlimited",
        ])
        .status()
        .expect("run prlimit");
    assert!(status.success(), "prlimit");
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut i = 0;
    loop {
        i += 1;
        let ack = post(&mut alice, &format!("recovered {i}"), &format!("r{i}"));
        if ack["stored"] == true {
            break;
        }
        assert!(Instant::now() < deadline, "writes never resumed: {ack}");
        thread::sleep(Duration::from_millis(200));
    }
    let (status, _) = server.http_get("/readyz");
    assert_eq!(status, 200);
    drop((alice, bob));
    server.stop();
}

#[test]
fn a_backup_taken_while_serving_restores_every_message() {
    let dir = TempDir::new("backup");
    let server = Server::start(&dir.data(), &[]);
    let mut alice = server.join("alice", "general", None);
    joined(&mut alice);
    for i in 1..=30 {
        assert_eq!(
            post(&mut alice, &format!("saved {i}"), &format!("k{i}"))["stored"],
            true
        );
    }
    let copy = dir.path().join("copy.db");
    let output = Command::new(BINARY)
        .arg("backup")
        .arg(&copy)
        .arg("--data-dir")
        .arg(dir.data())
        .output()
        .expect("run the backup");
    assert!(
        output.status.success(),
        "backup: {}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    // The server kept serving through it.
    assert_eq!(post(&mut alice, "after the backup", "k31")["stored"], true);
    drop(alice);
    server.stop();

    // The copy, put in place of a data directory, serves the 30 messages from before it.
    let restored = dir.path().join("restored");
    std::fs::create_dir_all(&restored).expect("create a dir");
    std::fs::copy(&copy, restored.join("chat.db")).expect("put the copy in place");
    let server = Server::start(&restored, &[]);
    let mut reader = server.join("reader", "general", None);
    let (_, _, history) = joined(&mut reader);
    assert_eq!(
        ids_and_texts(&history["messages"])
            .into_iter()
            .map(|(_, text)| text)
            .collect::<Vec<_>>(),
        (1..=30).map(|i| format!("saved {i}")).collect::<Vec<_>>()
    );
    server.stop();

    // A backup of a directory with no database says so and fails.
    let output = Command::new(BINARY)
        .arg("backup")
        .arg(dir.path().join("nothing.db"))
        .arg("--data-dir")
        .arg(dir.path().join("no-such-dir"))
        .output()
        .expect("run the backup");
    assert!(!output.status.success(), "a backup of nothing succeeded");
    assert!(!String::from_utf8_lossy(&output.stderr).is_empty());
}

const MOD_SECRET: &[u8] = b"an HS256 secret of at least thirty-two bytes, for tests";

/// A signed token for `sub`, valid for an hour, an admin's if `admin`.
fn mod_token(sub: &str, admin: bool) -> String {
    let mut claims = json!({"sub": sub, "exp": chrono::Utc::now().timestamp() + 3600});
    if admin {
        claims["role"] = json!("admin");
    }
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(MOD_SECRET),
    )
    .expect("sign a test token")
}

/// A v2 client of `user` in room `team`, with a token.
fn join_with_token(server: &Server, user: &str, admin: bool) -> Client {
    let url = format!(
        "ws://{}/ws/{user}?room=team&token={}",
        server.addr,
        mod_token(user, admin)
    );
    let mut request = url.into_client_request().expect("a request");
    request.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        "chat.v2".parse().expect("a header value"),
    );
    let stream = TcpStream::connect(server.addr).expect("connect");
    stream.set_read_timeout(Some(IO_TIMEOUT)).expect("timeout");
    stream.set_write_timeout(Some(IO_TIMEOUT)).expect("timeout");
    tungstenite::client(request, stream).expect("upgrade").0
}

/// An upgrade request of `/ws/{path}` written by hand: the status and the body.
fn raw_upgrade(addr: SocketAddr, path: &str) -> (u16, String) {
    raw_request(
        addr,
        &format!(
            "GET /ws/{path} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ),
    )
}

#[test]
fn a_ban_survives_a_restart_and_a_deleted_text_is_gone_from_the_database_file() {
    let dir = TempDir::new("moderation");
    let secret = dir.path().join("secret");
    std::fs::write(&secret, MOD_SECRET).expect("write the secret");
    let secret = secret.to_str().expect("a UTF-8 temp path").to_owned();
    let args = ["--auth", "token", "--jwt-secret-file", secret.as_str()];
    let server = Server::start(&dir.data(), &args);

    let mut admin = join_with_token(&server, "root", true);
    joined(&mut admin);
    let mut bob = join_with_token(&server, "bob", false);
    joined(&mut bob);
    let keep = post(&mut bob, "an ordinary line", "k1");
    let secret_text = "my-bank-pin-is-8361-do-not-keep";
    let ack = post(&mut bob, secret_text, "k2");
    assert_eq!(ack["stored"], true, "{ack}");
    let id = ack["id"].as_u64().expect("an id");
    send(&mut admin, json!({"type": "delete", "id": id}));
    let (deleted, _) = recv_until(&mut admin, "deleted");
    assert_eq!(deleted["id"], id);
    send(
        &mut admin,
        json!({"type": "ban", "user": "bob", "minutes": 60, "reason": "leaking secrets"}),
    );
    // bob is closed with 4004.
    let close = loop {
        match bob.read() {
            Ok(Message::Close(frame)) => break frame,
            Ok(_) => {}
            Err(e) => panic!("read: {e}"),
        }
    };
    assert_eq!(close.map(|f| u16::from(f.code)), Some(4004));
    drop(bob);
    drop(admin);
    server.stop();

    // The text is in none of the store's files after a clean stop.
    for entry in std::fs::read_dir(dir.data()).expect("the data dir") {
        let path = entry.expect("an entry").path();
        let bytes = std::fs::read(&path).expect("read a store file");
        assert!(
            !bytes
                .windows(secret_text.len())
                .any(|w| w == secret_text.as_bytes()),
            "the deleted text is still in {}",
            path.display()
        );
    }

    let server = Server::start(&dir.data(), &args);
    let (status, body) = raw_upgrade(
        server.addr,
        &format!("bob?token={}", mod_token("bob", false)),
    );
    assert_eq!(status, 403, "{body}");
    assert!(
        body.contains("\"bob\" is banned until") && body.contains("leaking secrets"),
        "{body}"
    );
    // A later joiner sees the message deleted, the other one as it was.
    let mut carol = join_with_token(&server, "carol", false);
    let (_, _, history) = joined(&mut carol);
    let messages = history["messages"].as_array().expect("messages");
    let by_id = |want: u64| {
        messages
            .iter()
            .find(|m| m["id"].as_u64() == Some(want))
            .unwrap_or_else(|| panic!("no message {want} in {history}"))
    };
    assert_eq!(
        by_id(keep["id"].as_u64().expect("an id"))["message"],
        "an ordinary line"
    );
    assert_eq!(by_id(id)["message"], "");
    assert_eq!(by_id(id)["deleted"], true);
    server.stop();
}
