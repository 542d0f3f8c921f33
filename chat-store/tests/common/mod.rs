//! Shared by the tests and the bench: temporary directories, messages, a started store whose
//! completions arrive on a channel, and a fast builder of large databases.
#![allow(dead_code)] // each test binary uses a part

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc::{self, Receiver};
use std::time::Duration;

use chat_store::{
    open, Completion, Message, OpenError, Opened, Options, Retention, RunningStore, Synchronous,
};
use rusqlite::{params, Connection};

/// A directory under the system temp dir, unique per process and call, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(name: &str) -> TempDir {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path =
            std::env::temp_dir().join(format!("chat-store-{}-{name}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        TempDir(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    pub fn db(&self) -> PathBuf {
        self.0.join(chat_store::DB_FILE)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn options(dir: &Path, fresh_epoch: u64) -> Options {
    Options {
        dir: dir.to_path_buf(),
        synchronous: Synchronous::Full,
        retention: Retention::default(),
        history_per_room: 100,
        max_rooms: 1000,
        fresh_epoch,
    }
}

pub fn message(room: &str, epoch: u64, id: u64, text: &str) -> Message {
    Message {
        room: room.into(),
        epoch,
        id,
        user: "alice".into(),
        text: text.into(),
        client_msg_id: Some(format!("c{id}")),
        timestamp_ms: 1_700_000_000_000 + id as i64,
        to: None,
        deleted: false,
    }
}

pub fn direct(room: &str, epoch: u64, to: &str, text: &str) -> Message {
    Message {
        id: 0,
        to: Some(to.into()),
        client_msg_id: None,
        ..message(room, epoch, 0, text)
    }
}

/// A running store whose completions arrive on `rx`.
pub struct Running {
    pub store: RunningStore,
    pub rx: Receiver<Completion>,
}

pub fn start(opened: Opened) -> Running {
    let (tx, rx) = mpsc::channel();
    let store = opened
        .store
        .start(move |completion| {
            let _ = tx.send(completion);
        })
        .expect("spawn the storage thread");
    Running { store, rx }
}

pub const WAIT: Duration = Duration::from_secs(20);

impl Running {
    /// Appends every message with tickets `first..`, then waits until all are answered; returns
    /// the `Stored` completions in order.
    pub fn append_all(
        &self,
        first_ticket: u64,
        messages: Vec<Message>,
    ) -> Vec<(Vec<u64>, Result<(), String>)> {
        let n = messages.len();
        for (i, m) in messages.into_iter().enumerate() {
            self.store.append(first_ticket + i as u64, m);
        }
        let mut seen = 0;
        let mut stored = Vec::new();
        while seen < n {
            match self.rx.recv_timeout(WAIT).expect("a completion") {
                Completion::Stored { tickets, result } => {
                    seen += tickets.len();
                    stored.push((tickets, result));
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        stored
    }

    pub fn fetch(
        &self,
        ticket: u64,
        room: &str,
        before: u64,
        limit: usize,
    ) -> Result<Vec<Message>, String> {
        self.store.fetch_before(ticket, room.into(), before, limit);
        match self.rx.recv_timeout(WAIT).expect("a completion") {
            Completion::Fetched { ticket: t, result } => {
                assert_eq!(t, ticket);
                result
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}

pub fn open_ok(options: Options) -> Opened {
    match open(options) {
        Ok(opened) => opened,
        Err(e) => panic!("open failed: {e}"),
    }
}

pub fn open_err(options: Options) -> OpenError {
    match open(options) {
        Ok(_) => panic!("open succeeded"),
        Err(e) => e,
    }
}

/// Creates the schema through `open`, then writes `rooms × per_room` messages (ids 1..=per_room
/// in each room) in one transaction with prepared statements, and marks the database clean
/// with `epoch`. Room `r{i}` is written after `r{i-1}`.
pub fn build_database(dir: &Path, rooms: usize, per_room: u64, epoch: u64) {
    drop(open_ok(options(dir, epoch)));
    let mut conn = Connection::open(dir.join(chat_store::DB_FILE)).expect("open");
    conn.pragma_update(None, "synchronous", "OFF")
        .expect("pragma");
    let tx = conn.transaction().expect("begin");
    {
        let mut insert = tx
            .prepare(
                "INSERT INTO messages (room, epoch, id, user, text, client_msg_id, timestamp_ms, recipient) \
                 VALUES (?1, ?2, ?3, ?4, ?5, NULL, ?6, NULL)",
            )
            .expect("prepare");
        let mut room_row = tx
            .prepare("INSERT INTO rooms (name, last_id, last_seq) VALUES (?1, ?2, ?3)")
            .expect("prepare");
        let mut text = String::new();
        for r in 0..rooms {
            let room = format!("r{r}");
            for id in 1..=per_room {
                text.clear();
                use std::fmt::Write;
                let _ = write!(
                    text,
                    "message {id} in {room}, some words to make it a chat line"
                );
                insert
                    .execute(params![
                        room,
                        epoch as i64,
                        id as i64,
                        "user",
                        text,
                        1_700_000_000_000i64 + id as i64
                    ])
                    .expect("insert");
            }
            room_row
                .execute(params![room, per_room as i64, tx.last_insert_rowid()])
                .expect("room");
        }
        tx.execute("UPDATE meta SET value = 1 WHERE key = 'clean_shutdown'", [])
            .expect("mark clean");
        tx.execute(
            "UPDATE meta SET value = ?1 WHERE key = 'epoch'",
            [epoch as i64],
        )
        .expect("epoch");
    }
    tx.commit().expect("commit");
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .expect("checkpoint");
}
