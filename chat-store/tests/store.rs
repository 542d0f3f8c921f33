//! Scenarios against a real database in a temporary directory: what is stored comes back, the
//! epoch rule, every fault `open` must name, write failures and recovery, retention, backup.

mod common;

use std::fs;
use std::time::{Duration, Instant};

use chat_store::{backup, Completion, OpenError, Retention};
use common::*;
use rusqlite::Connection;

fn meta(dir: &TempDir, key: &str) -> i64 {
    let conn = Connection::open(dir.db()).expect("open");
    conn.query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
        .expect("meta")
}

#[test]
fn appended_messages_load_after_a_clean_restart_and_fetch_pages_back() {
    let dir = TempDir::new("roundtrip");
    let opened = open_ok(options(dir.path(), 7));
    assert_eq!((opened.epoch, opened.epoch_is_new), (7, true));
    assert!(opened.rooms.is_empty());
    let run = start(opened);
    let mut messages: Vec<_> = (1..=5)
        .map(|id| message("a", 7, id, &format!("a{id}")))
        .collect();
    messages.push(direct("a", 7, "bob", "psst"));
    messages.extend((1..=2).map(|id| message("b", 7, id, "b")));
    let stored = run.append_all(0, messages.clone());
    let tickets: Vec<u64> = stored.iter().flat_map(|(t, _)| t.clone()).collect();
    assert_eq!(
        tickets,
        (0..8).collect::<Vec<_>>(),
        "every ticket once, in order"
    );
    assert!(stored.iter().all(|(_, r)| r.is_ok()));

    assert_eq!(run.fetch(100, "a", 4, 10), Ok(messages[0..3].to_vec()));
    assert_eq!(run.fetch(101, "a", 6, 2), Ok(messages[3..5].to_vec()));
    assert_eq!(run.fetch(102, "a", 1, 10), Ok(vec![]));
    assert_eq!(run.fetch(103, "nowhere", 10, 10), Ok(vec![]));
    let stats = run.store.stats();
    assert_eq!(stats.stored_total(), 8);
    assert!(stats.batches_total() >= 1 && stats.healthy() && stats.db_bytes() > 0);
    assert_eq!(
        meta(&dir, "clean_shutdown"),
        0,
        "a run in progress is not clean"
    );
    run.store.shutdown().expect("clean shutdown");
    assert_eq!(meta(&dir, "clean_shutdown"), 1);

    let opened = open_ok(options(dir.path(), 99));
    assert_eq!(
        (opened.epoch, opened.epoch_is_new),
        (7, false),
        "a clean shutdown keeps the epoch"
    );
    assert_eq!(opened.retired_last_id, 0);
    let rooms: Vec<_> = opened
        .rooms
        .iter()
        .map(|r| (r.name.as_str(), r.last_id))
        .collect();
    assert_eq!(rooms, [("b", 2), ("a", 5)], "most recently written first");
    assert_eq!(
        opened.rooms[1].messages,
        messages[0..5].to_vec(),
        "directs are not history"
    );
    assert_eq!(opened.rooms[0].messages, messages[6..8].to_vec());
    assert_eq!(
        meta(&dir, "clean_shutdown"),
        0,
        "open marks the run in progress"
    );
}

#[test]
fn loading_keeps_the_consecutive_run_ending_at_the_largest_id() {
    let dir = TempDir::new("holes");
    let run = start(open_ok(options(dir.path(), 1)));
    let ids = [1, 2, 3, 5, 6, 7];
    run.append_all(
        0,
        ids.iter().map(|&id| message("holes", 1, id, "x")).collect(),
    );
    run.append_all(10, (1..=4).map(|id| message("whole", 1, id, "x")).collect());
    run.store.shutdown().expect("shutdown");

    let opened = open_ok(options(dir.path(), 2));
    let loaded: Vec<(String, u64, Vec<u64>)> = opened
        .rooms
        .iter()
        .map(|r| {
            (
                r.name.clone(),
                r.last_id,
                r.messages.iter().map(|m| m.id).collect(),
            )
        })
        .collect();
    assert_eq!(
        loaded,
        [
            ("whole".to_string(), 4, vec![1, 2, 3, 4]),
            ("holes".to_string(), 7, vec![5, 6, 7])
        ]
    );
    drop(opened);

    let mut few = options(dir.path(), 3);
    few.history_per_room = 2;
    few.max_rooms = 1;
    let opened = open_ok(few);
    assert_eq!(opened.rooms.len(), 1);
    assert_eq!(opened.rooms[0].name, "whole");
    assert_eq!(
        opened.rooms[0]
            .messages
            .iter()
            .map(|m| m.id)
            .collect::<Vec<_>>(),
        [3, 4]
    );
    assert_eq!(
        opened.retired_last_id, 7,
        "the largest id of the rooms left on disk"
    );
    assert!(opened.epoch_is_new, "the previous open was never shut down");
}

#[test]
fn an_unclean_end_takes_the_fresh_epoch() {
    let dir = TempDir::new("epoch");
    // Opened, never started.
    drop(open_ok(options(dir.path(), 1)));
    let opened = open_ok(options(dir.path(), 2));
    assert_eq!((opened.epoch, opened.epoch_is_new), (2, true));
    // Started, then dropped without shutdown (as a crash leaves it: the flag is not set).
    let run = start(opened);
    run.append_all(0, vec![message("r", 2, 1, "x")]);
    drop(run);
    let opened = open_retrying(options(dir.path(), 3));
    assert_eq!((opened.epoch, opened.epoch_is_new), (3, true));
    assert_eq!(opened.rooms[0].last_id, 1, "what was stored is still there");
    // A clean run keeps it, twice in a row.
    start(opened).store.shutdown().expect("shutdown");
    let opened = open_ok(options(dir.path(), 4));
    assert_eq!((opened.epoch, opened.epoch_is_new), (3, false));
    start(opened).store.shutdown().expect("shutdown");
    assert_eq!(open_ok(options(dir.path(), 5)).epoch, 3);
}

/// The thread of a dropped store may still be closing: retry while it holds the lock.
fn open_retrying(options: chat_store::Options) -> chat_store::Opened {
    let deadline = Instant::now() + WAIT;
    loop {
        match chat_store::open(options.clone()) {
            Ok(opened) => return opened,
            Err(OpenError::Locked { .. }) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(10))
            }
            Err(e) => panic!("open: {e}"),
        }
    }
}

#[test]
fn a_data_dir_that_is_a_file_is_refused_with_a_clear_message() {
    let dir = TempDir::new("file");
    fs::create_dir_all(dir.path()).expect("mkdir");
    let file = dir.path().join("plain");
    fs::write(&file, "not a directory").expect("write");
    let e = open_err(options(&file, 1));
    assert!(matches!(e, OpenError::Directory { .. }), "{e:?}");
    assert!(
        e.to_string().contains("exists and is not a directory"),
        "{e}"
    );
    let e = open_err(options(&file.join("below"), 1));
    assert!(matches!(e, OpenError::Directory { .. }), "{e:?}");
    assert!(e.to_string().contains("Not a directory"), "{e}");
    assert!(!e.to_string().contains('\n'));
}

#[test]
fn a_second_server_on_the_same_directory_is_refused() {
    let dir = TempDir::new("second");
    let first = open_ok(options(dir.path(), 1));
    let e = open_err(options(dir.path(), 1));
    assert!(matches!(e, OpenError::Locked { .. }), "{e:?}");
    assert!(e.to_string().contains("locked by another process"), "{e}");
    let run = start(first);
    assert!(matches!(
        open_err(options(dir.path(), 1)),
        OpenError::Locked { .. }
    ));
    run.store.shutdown().expect("shutdown");
    drop(open_ok(options(dir.path(), 1)));
}

#[test]
fn a_database_another_program_holds_locked_is_refused_without_hanging() {
    let dir = TempDir::new("locked");
    start(open_ok(options(dir.path(), 1)))
        .store
        .shutdown()
        .expect("shutdown");

    let other = Connection::open(dir.db()).expect("open");
    other.execute_batch("BEGIN IMMEDIATE").expect("write lock");
    let started = Instant::now();
    let e = open_err(options(dir.path(), 1));
    assert!(matches!(e, OpenError::Locked { .. }), "{e:?}");
    assert!(started.elapsed() < Duration::from_secs(5));
    other.execute_batch("ROLLBACK").expect("release");
    drop(other);

    // An exclusive lock (locking_mode EXCLUSIVE holds it after the first write).
    let other = Connection::open(dir.db()).expect("open");
    other
        .execute_batch("PRAGMA locking_mode = EXCLUSIVE; BEGIN EXCLUSIVE; UPDATE meta SET value = value; COMMIT;")
        .expect("exclusive lock");
    let started = Instant::now();
    let e = open_err(options(dir.path(), 1));
    assert!(matches!(e, OpenError::Locked { .. }), "{e:?}");
    assert!(started.elapsed() < Duration::from_secs(5));
    drop(other);
    drop(open_ok(options(dir.path(), 1)));
}

#[test]
fn a_database_from_a_newer_version_is_refused() {
    let dir = TempDir::new("future");
    start(open_ok(options(dir.path(), 1)))
        .store
        .shutdown()
        .expect("shutdown");
    Connection::open(dir.db())
        .and_then(|c| c.pragma_update(None, "user_version", 99))
        .expect("set user_version");
    let e = open_err(options(dir.path(), 1));
    assert!(
        matches!(
            e,
            OpenError::TooNew {
                found: 99,
                supported: chat_store::SCHEMA_VERSION,
                ..
            }
        ),
        "{e:?}"
    );
    assert!(
        e.to_string().contains(&format!(
            "schema version 99, newer than this server's {}",
            chat_store::SCHEMA_VERSION
        )),
        "{e}"
    );
}

#[test]
fn files_that_are_not_a_sound_chat_database_are_refused() {
    let dir = TempDir::new("corrupt");
    fs::create_dir_all(dir.path()).expect("mkdir");

    fs::write(
        dir.db(),
        "hello, I am a text file and not a database at all. ".repeat(100),
    )
    .expect("write");
    let e = open_err(options(dir.path(), 1));
    assert!(matches!(e, OpenError::Corrupt { .. }), "{e:?}");
    assert!(e.to_string().contains("not an SQLite database"), "{e}");

    fs::write(dir.db(), b"SQLite format 3\0").expect("write");
    assert!(open_err(options(dir.path(), 1))
        .to_string()
        .contains("truncated"));

    // Another program's database.
    fs::remove_file(dir.db()).expect("rm");
    Connection::open(dir.db())
        .and_then(|c| c.execute_batch("CREATE TABLE t (x)"))
        .expect("other db");
    let e = open_err(options(dir.path(), 1));
    assert!(e.to_string().contains("another program"), "{e}");
    fs::remove_file(dir.db()).expect("rm");

    // A real one, cut in half.
    let run = start(open_ok(options(dir.path(), 1)));
    run.append_all(
        0,
        (1..=2000)
            .map(|id| message("r", 1, id, &"x".repeat(200)))
            .collect(),
    );
    run.store.shutdown().expect("shutdown");
    let len = fs::metadata(dir.db()).expect("stat").len();
    fs::OpenOptions::new()
        .write(true)
        .open(dir.db())
        .and_then(|f| f.set_len(len / 2))
        .expect("truncate");
    let e = open_err(options(dir.path(), 1));
    assert!(matches!(e, OpenError::Corrupt { .. }), "{e:?}");
    assert!(e.to_string().contains("truncated"), "{e}");
}

#[test]
fn a_damaged_schema_page_is_refused() {
    let dir = TempDir::new("damaged");
    let run = start(open_ok(options(dir.path(), 1)));
    run.append_all(0, (1..=100).map(|id| message("r", 1, id, "x")).collect());
    run.store.shutdown().expect("shutdown");
    let mut bytes = fs::read(dir.db()).expect("read");
    bytes[100..1000].fill(0xa5); // page 1 after the header: the schema's b-tree
    fs::write(dir.db(), bytes).expect("write");
    let e = open_err(options(dir.path(), 1));
    assert!(matches!(e, OpenError::Corrupt { .. }), "{e:?}");
}

#[test]
fn a_failed_write_is_reported_counted_and_recovered_from() {
    let dir = TempDir::new("full");
    let run = start(open_ok(options(dir.path(), 1)));
    let stats = run.store.stats();
    let ok = run.append_all(0, vec![message("r", 1, 1, "before")]);
    assert_eq!(ok, [(vec![0], Ok(()))]);

    run.store.set_max_db_bytes(Some(64 * 1024));
    let big = "y".repeat(100_000);
    let failed = run.append_all(1, vec![message("r", 1, 2, &big), message("r", 1, 3, &big)]);
    let tickets: Vec<u64> = failed.iter().flat_map(|(t, _)| t.clone()).collect();
    assert_eq!(tickets, [1, 2]);
    let reason = failed[0].1.clone().expect_err("the commit fails");
    assert!(reason.contains("full"), "{reason}");
    assert!(!stats.healthy());
    assert!(stats.errors_total() >= 1);
    assert_eq!(stats.stored_total(), 1);

    run.store.set_max_db_bytes(None);
    let recovered = run.append_all(3, vec![message("r", 1, 4, &big)]);
    assert_eq!(recovered, [(vec![3], Ok(()))]);
    assert!(stats.healthy());
    assert_eq!(
        run.fetch(9, "r", 10, 10)
            .map(|m| m.iter().map(|m| m.id).collect::<Vec<_>>()),
        Ok(vec![1, 4])
    );

    let e = run
        .store
        .shutdown()
        .expect_err("a run with a failed write is not clean");
    assert!(e.contains("new epoch"), "{e}");
    let opened = open_ok(options(dir.path(), 2));
    assert_eq!((opened.epoch, opened.epoch_is_new), (2, true));
    assert_eq!(
        opened.rooms[0]
            .messages
            .iter()
            .map(|m| m.id)
            .collect::<Vec<_>>(),
        [4]
    );
}

#[test]
fn retention_prunes_by_count_and_by_age_on_the_storage_thread() {
    let dir = TempDir::new("retention");
    let mut opts = options(dir.path(), 1);
    opts.retention = Retention {
        max_age: None,
        max_per_room: Some(10),
    };
    let run = start(open_ok(opts));
    run.append_all(0, (1..=5000).map(|id| message("big", 1, id, "x")).collect());
    run.append_all(
        10_000,
        (1..=5).map(|id| message("small", 1, id, "x")).collect(),
    );
    let deadline = Instant::now() + WAIT;
    let mut ids = Vec::new();
    while Instant::now() < deadline {
        ids = run
            .fetch(1, "big", u64::MAX, 1000)
            .expect("fetch")
            .iter()
            .map(|m| m.id)
            .collect();
        if ids.len() == 10 {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(ids, (4991..=5000).collect::<Vec<_>>());
    assert_eq!(
        run.fetch(2, "small", u64::MAX, 1000).expect("fetch").len(),
        5
    );
    assert_eq!(run.store.stats().pruned_total(), 4990);
    run.store.shutdown().expect("shutdown");

    // By age: old messages (room and direct) go, new ones stay.
    let mut opts = options(dir.path(), 1);
    opts.retention = Retention {
        max_age: Some(Duration::from_secs(3600)),
        max_per_room: None,
    };
    let run = start(open_ok(opts));
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64;
    let mut fresh = message("small", 1, 6, "new");
    fresh.timestamp_ms = now_ms;
    let mut fresh_direct = direct("small", 1, "bob", "new");
    fresh_direct.timestamp_ms = now_ms;
    // The old direct arrives in the same batch as new ones, before the first age step.
    run.append_all(
        20_000,
        vec![fresh, fresh_direct, direct("small", 1, "bob", "old")],
    );
    let deadline = Instant::now() + WAIT;
    while run.store.stats().pruned_total() < 16 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    let left: Vec<u64> = run
        .fetch(3, "small", u64::MAX, 100)
        .expect("fetch")
        .iter()
        .map(|m| m.id)
        .collect();
    assert_eq!(left, [6]);
    assert_eq!(run.fetch(4, "big", u64::MAX, 100), Ok(vec![]));
    run.store.shutdown().expect("shutdown");
    let conn = Connection::open(dir.db()).expect("open");
    let directs: i64 = conn
        .query_row(
            "SELECT count(*) FROM messages WHERE recipient IS NOT NULL",
            [],
            |r| r.get(0),
        )
        .expect("count");
    assert_eq!(directs, 1, "the old direct is pruned, the new one stays");
    let last: i64 = conn
        .query_row("SELECT last_id FROM rooms WHERE name = 'big'", [], |r| {
            r.get(0)
        })
        .expect("room row");
    assert_eq!(last, 5000, "an emptied room keeps its last id");
}

#[test]
fn a_backup_taken_while_running_opens_with_the_same_messages() {
    let dir = TempDir::new("backup-src");
    let out_dir = TempDir::new("backup-out");
    fs::create_dir_all(out_dir.path()).expect("mkdir");
    let run = start(open_ok(options(dir.path(), 5)));
    let messages: Vec<_> = (1..=300)
        .map(|id| message("r", 5, id, &format!("m{id}")))
        .collect();
    run.append_all(0, messages.clone());
    // Keep writing while the backup runs.
    for id in 301..=400 {
        run.store.append(id, message("r", 5, id, "during"));
    }
    backup(dir.path(), &out_dir.db()).expect("backup");
    run.store.shutdown().expect("shutdown");
    let opened = open_ok(options(out_dir.path(), 6));
    assert_eq!(
        (opened.epoch, opened.epoch_is_new),
        (6, true),
        "a live backup is not clean"
    );
    let room = &opened.rooms[0];
    let n = room.last_id as usize;
    assert!((300..=400).contains(&n), "{n}");
    assert_eq!(
        room.messages[..],
        ([
            messages.clone(),
            (301..=400)
                .map(|id| message("r", 5, id, "during"))
                .collect()
        ]
        .concat())[n - 100..n]
    );
    assert!(!out_dir.path().join("chat.db.partial").exists());

    assert!(backup(
        &out_dir.path().join("nowhere"),
        &out_dir.path().join("x.db")
    )
    .is_err());
}

#[test]
fn many_appends_share_transactions_and_complete_in_order() {
    let dir = TempDir::new("group");
    let run = start(open_ok(options(dir.path(), 1)));
    let n = 20_000u64;
    for id in 1..=n {
        run.store
            .append(id, message(&format!("room{}", id % 7), 1, id, "hello"));
    }
    run.store.fetch_before(0, "room0".into(), u64::MAX, 3);
    let mut tickets = Vec::new();
    let mut fetched = None;
    while fetched.is_none() {
        match run.rx.recv_timeout(WAIT).expect("completion") {
            Completion::Stored { tickets: t, result } => {
                assert_eq!(result, Ok(()));
                tickets.extend(t);
            }
            Completion::Fetched { result, .. } => fetched = Some(result),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(
        tickets,
        (1..=n).collect::<Vec<_>>(),
        "all stored before the fetch answers"
    );
    let ids: Vec<u64> = fetched
        .expect("fetched")
        .expect("ok")
        .iter()
        .map(|m| m.id)
        .collect();
    assert_eq!(
        ids,
        [19_985, 19_992, 19_999],
        "the newest three multiples of 7"
    );
    let stats = run.store.stats();
    assert!(stats.batches_total() >= 2, "at most 10 000 per transaction");
    assert_eq!(stats.queued(), 0);
    let histogram = stats.commit_seconds_buckets();
    assert_eq!(
        histogram.last(),
        Some(&(f64::INFINITY, stats.batches_total()))
    );
    run.store.shutdown().expect("shutdown");
}

#[test]
fn a_million_messages_in_a_thousand_rooms_load_correctly() {
    let dir = TempDir::new("million");
    let built = Instant::now();
    build_database(dir.path(), 1000, 1000, 42);
    let built = built.elapsed();
    let started = Instant::now();
    let opened = open_ok(options(dir.path(), 1));
    let took = started.elapsed();
    let bytes = opened.store.stats().db_bytes();
    eprintln!("built 1M messages ({bytes} bytes) in {built:?}, opened and loaded in {took:?}");
    assert_eq!((opened.epoch, opened.epoch_is_new), (42, false));
    assert_eq!(opened.rooms.len(), 1000);
    assert_eq!(opened.rooms[0].name, "r999", "most recently written first");
    for room in &opened.rooms {
        assert_eq!(room.last_id, 1000);
        let ids: Vec<u64> = room.messages.iter().map(|m| m.id).collect();
        assert_eq!(ids, (901..=1000).collect::<Vec<_>>(), "{}", room.name);
        assert!(room
            .messages
            .iter()
            .all(|m| m.room == room.name && m.epoch == 42));
    }
    drop(opened);
    let mut fewer = options(dir.path(), 1);
    fewer.max_rooms = 10;
    let started = Instant::now();
    let opened = open_ok(fewer);
    eprintln!(
        "after an unclean end (quick_check): {:?}",
        started.elapsed()
    );
    assert!(opened.epoch_is_new);
    assert_eq!(opened.rooms.len(), 10);
    assert_eq!(opened.retired_last_id, 1000);
}
