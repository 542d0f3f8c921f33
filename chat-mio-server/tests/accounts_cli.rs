//! `chat-mio-server user …`, end to end: the real binary, the password piped on stdin, a real
//! database in a fresh directory, and a real server running on the same directory.

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Output, Stdio};

mod common;

use common::{Server, TempDir, BINARY};
const PASSWORD: &str = "correct horse battery staple";

/// Runs `chat-mio-server user ARGS --data-dir DATA` with `stdin` piped in.
fn user(data: &Path, args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(BINARY)
        .arg("user")
        .args(args)
        .arg("--data-dir")
        .arg(data)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the binary");
    let mut pipe = child.stdin.take().expect("piped stdin");
    let _ = pipe.write_all(stdin.as_bytes());
    drop(pipe);
    child.wait_with_output().expect("wait for the binary")
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn ok(output: Output) -> String {
    assert!(output.status.success(), "failed: {}", text(&output));
    text(&output)
}

fn fails(output: Output) -> String {
    assert!(!output.status.success(), "succeeded: {}", text(&output));
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(
        stderr.trim().lines().count(),
        1,
        "one-line reason: {stderr}"
    );
    stderr
}

/// The user's stored hash, read straight from the database file.
fn stored_phc(data: &Path, name: &str) -> String {
    let conn = rusqlite::Connection::open(data.join("chat.db")).expect("open the database");
    conn.query_row("SELECT phc FROM users WHERE name = ?1", [name], |row| {
        row.get(0)
    })
    .expect("the user's row")
}

/// Every byte of the database and its WAL.
fn database_bytes(data: &Path) -> Vec<u8> {
    let mut bytes = Vec::new();
    for file in ["chat.db", "chat.db-wal"] {
        if let Ok(mut f) = std::fs::File::open(data.join(file)) {
            let _ = f.read_to_end(&mut bytes);
        }
    }
    bytes
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

#[test]
fn add_list_set_admin_remove() {
    let tmp = TempDir::new("crud");
    let data = tmp.data();
    let added = ok(user(&data, &["add", "alice"], &format!("{PASSWORD}\n")));
    assert!(!added.contains(PASSWORD) && !added.contains("$argon2id$"));

    let listed = ok(user(&data, &["list"], ""));
    assert!(listed.contains("alice"), "{listed}");
    assert!(listed.contains("admin=false"), "{listed}");
    assert!(
        !listed.contains(PASSWORD) && !listed.contains("$argon2"),
        "{listed}"
    );

    let phc = stored_phc(&data, "alice");
    assert!(phc.starts_with("$argon2id$"), "{phc}");
    assert!(!phc.contains(PASSWORD));
    assert!(!contains(&database_bytes(&data), PASSWORD));

    let dup = fails(user(&data, &["add", "alice"], "another\n"));
    assert!(dup.contains("already exists"), "{dup}");

    ok(user(&data, &["set-admin", "alice", "true"], ""));
    assert!(ok(user(&data, &["list"], "")).contains("admin=true"));
    fails(user(&data, &["set-admin", "nobody", "true"], ""));

    ok(user(&data, &["remove", "alice"], ""));
    assert!(!ok(user(&data, &["list"], "")).contains("alice"));
    let gone = fails(user(&data, &["remove", "alice"], ""));
    assert!(gone.contains("no user"), "{gone}");
}

#[test]
fn bad_names_bad_passwords_and_bad_directories_fail() {
    let tmp = TempDir::new("bad");
    let data = tmp.data();
    for name in ["", " alice", &"x".repeat(33)] {
        let why = fails(user(&data, &["add", name], "pw\n"));
        assert!(why.contains("bad user name"), "{name:?}: {why}");
    }
    let why = fails(user(&data, &["add", "bob"], "\n"));
    assert!(why.contains("empty"), "{why}");
    fails(user(&data, &["add", "bob"], ""));
    let long = format!("{}\n", "p".repeat(2000));
    let why = fails(user(&data, &["add", "bob"], &long));
    assert!(why.contains("longer"), "{why}");

    // A data directory that is a file.
    let file = tmp.0.join("file");
    std::fs::write(&file, "x").expect("write a file");
    fails(user(&file, &["add", "bob"], "pw\n"));
    fails(user(&file, &["list"], ""));
    fails(user(&tmp.0.join("missing"), &["list"], ""));
}

#[test]
fn user_add_works_while_a_server_runs_on_the_directory() {
    let tmp = TempDir::new("running");
    let data = tmp.data();
    let server = Server::start(&data, &[]);
    ok(user(
        &data,
        &["add", "carol", "--admin"],
        &format!("{PASSWORD}\n"),
    ));
    let listed = ok(user(&data, &["list"], ""));
    assert!(
        listed.contains("carol") && listed.contains("admin=true"),
        "{listed}"
    );
    let output = server.output();
    assert!(!output.contains(PASSWORD), "{output}");
    server.stop();
    assert!(stored_phc(&data, "carol").starts_with("$argon2id$"));
}
