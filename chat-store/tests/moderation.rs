//! Moderation in the store: a v1 database (before bans and deletions) opens and migrates; bans
//! are kept and given back at `open` while they last; a deleted message keeps its row, comes
//! back flagged, and its text is gone from the database file.

mod common;

use std::time::{SystemTime, UNIX_EPOCH};

use chat_store::{Ban, Message};
use common::*;
use rusqlite::{params, Connection};

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_millis() as i64
}

/// The v1 schema, exactly as the first release wrote it.
const V1_SCHEMA: &str =
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
     CREATE TABLE rooms (
         name TEXT PRIMARY KEY,
         last_id INTEGER NOT NULL,
         last_seq INTEGER NOT NULL
     ) WITHOUT ROWID;
     CREATE TABLE messages (
         seq INTEGER PRIMARY KEY,
         room TEXT NOT NULL,
         epoch INTEGER NOT NULL,
         id INTEGER NOT NULL,
         user TEXT NOT NULL,
         text TEXT NOT NULL,
         client_msg_id TEXT,
         timestamp_ms INTEGER NOT NULL,
         recipient TEXT
     );
     CREATE INDEX messages_room_id ON messages (room, id);
     CREATE INDEX messages_timestamp ON messages (timestamp_ms);";

#[test]
fn a_v1_database_opens_migrates_and_keeps_its_messages() {
    let dir = TempDir::new("v1");
    std::fs::create_dir_all(dir.path()).expect("mkdir");
    {
        let conn = Connection::open(dir.db()).expect("create");
        conn.execute_batch(V1_SCHEMA).expect("v1 schema");
        conn.execute(
            "INSERT INTO messages (room, epoch, id, user, text, client_msg_id, timestamp_ms) \
             VALUES ('a', 5, 1, 'alice', 'a1', 'c1', ?1)",
            params![1_700_000_000_001i64],
        )
        .expect("insert");
        conn.execute_batch(
            "INSERT INTO rooms VALUES ('a', 1, 1);
             INSERT INTO meta VALUES ('epoch', 5), ('clean_shutdown', 1);
             PRAGMA user_version = 1;",
        )
        .expect("v1 rows");
    }
    let opened = open_ok(options(dir.path(), 9));
    assert_eq!((opened.epoch, opened.epoch_is_new), (5, false));
    assert_eq!(opened.rooms[0].messages, [message("a", 5, 1, "a1")]);
    assert_eq!(opened.bans, []);
    let version: i64 = Connection::open(dir.db())
        .and_then(|c| c.pragma_query_value(None, "user_version", |r| r.get(0)))
        .expect("user_version");
    assert_eq!(version, chat_store::SCHEMA_VERSION);
    assert_eq!(chat_store::SCHEMA_VERSION, 4);
    // The migrated database takes a ban and a deletion.
    let run = start(opened);
    run.store.ban(Ban {
        user: "bob".into(),
        until_ms: now_ms() + 60_000,
        reason: "spam".into(),
    });
    run.store.delete_text("a".into(), 1);
    let fetched = run.fetch(1, "a", 2, 10).expect("fetch");
    assert!(fetched[0].deleted && fetched[0].text.is_empty());
    run.store.shutdown().expect("clean");
}

#[test]
fn bans_are_kept_replaced_and_given_back_only_while_they_last() {
    let dir = TempDir::new("bans");
    let run = start(open_ok(options(dir.path(), 1)));
    let later = now_ms() + 3_600_000;
    let ban = |user: &str, until_ms, reason: &str| Ban {
        user: user.into(),
        until_ms,
        reason: reason.into(),
    };
    run.store.ban(ban("bob", later - 1000, "first"));
    run.store.ban(ban("bob", later, "second"));
    run.store.ban(ban("carol", now_ms() - 1, "already over"));
    run.store.ban(ban("dave", later, ""));
    run.store.shutdown().expect("clean");

    let opened = open_ok(options(dir.path(), 2));
    assert_eq!(
        opened.bans,
        [ban("bob", later, "second"), ban("dave", later, "")],
        "the latest ban of a user wins; an ended one is not given back"
    );
    drop(opened);
    let rows: i64 = Connection::open(dir.db())
        .and_then(|c| c.query_row("SELECT count(*) FROM bans", [], |r| r.get(0)))
        .expect("count");
    assert_eq!(rows, 2, "ended bans are deleted at open");
}

#[test]
fn a_deleted_text_is_gone_from_the_file_and_the_message_comes_back_flagged() {
    let dir = TempDir::new("delete");
    let run = start(open_ok(options(dir.path(), 3)));
    let secret = "the-launch-code-is-0451";
    let messages: Vec<Message> = (1..=3)
        .map(|id| {
            let text = if id == 2 {
                secret.to_owned()
            } else {
                format!("m{id}")
            };
            message("r", 3, id, &text)
        })
        .collect();
    run.append_all(0, messages.clone());
    // Appended and deleted in one go: the deletion comes after its append.
    run.store
        .append(3, message("r", 3, 4, "also-secret-text-4"));
    run.store.delete_text("r".into(), 4);
    run.store.delete_text("r".into(), 2);
    run.store.delete_text("r".into(), 99); // nothing to delete: harmless
    match run.rx.recv_timeout(WAIT).expect("a completion") {
        chat_store::Completion::Stored { tickets, result } => {
            assert_eq!((tickets, result), (vec![3], Ok(())));
        }
        other => panic!("unexpected {other:?}"),
    }
    let page = run.fetch(10, "r", 10, 10).expect("fetch");
    let deleted = |id| Message {
        text: String::new(),
        client_msg_id: None,
        deleted: true,
        ..message("r", 3, id, "")
    };
    let want = vec![
        messages[0].clone(),
        deleted(2),
        messages[2].clone(),
        deleted(4),
    ];
    assert_eq!(page, want);
    assert_eq!(run.store.stats().errors_total(), 0);
    run.store.shutdown().expect("clean");

    for file in std::fs::read_dir(dir.path()).expect("list") {
        let path = file.expect("entry").path();
        let bytes = std::fs::read(&path).expect("read");
        for gone in [secret, "also-secret-text-4"] {
            assert!(
                !bytes.windows(gone.len()).any(|w| w == gone.as_bytes()),
                "{gone} still in {}",
                path.display()
            );
        }
    }
    let opened = open_ok(options(dir.path(), 4));
    assert_eq!(opened.rooms[0].messages, want, "ids stay consecutive");
}
