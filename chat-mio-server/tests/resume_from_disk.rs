//! Resuming from disk, end to end: the real binary with its SQLite store and a room history so
//! small in memory (`--history-bytes`) that most messages live only on disk. A v2 client that
//! reconnects with `since` and `epoch` from before what memory holds gets every missed message,
//! in order, then what arrives live, none twice; one that missed more than the resume bound
//! gets an honest `gap`.

use std::time::Duration;

use serde_json::json;

mod common;

use common::{ids_and_texts, joined, recv, send, Client, Server, TempDir};

/// Posts `texts` (keys `k0`, `k1`, ...) without waiting, then waits for the last one's ack.
/// Returns the ids the acks gave, in order.
fn post_all(client: &mut Client, texts: &[String]) -> Vec<u64> {
    for (i, text) in texts.iter().enumerate() {
        send(
            client,
            json!({"type": "message", "message": text, "client_msg_id": format!("k{i}")}),
        );
    }
    let mut ids = vec![0; texts.len()];
    let mut acked = 0;
    while acked < texts.len() {
        let frame = recv(client);
        if frame["type"] != "ack" || frame.get("stored").is_none() {
            continue;
        }
        assert_eq!(frame["stored"], true, "{frame}");
        let key = frame["client_msg_id"].as_str().expect("a key");
        let i: usize = key[1..].parse().expect("k<n>");
        ids[i] = frame["id"].as_u64().expect("an id");
        acked += 1;
    }
    ids
}

#[test]
fn a_resume_from_before_the_trimmed_history_gets_every_missed_message_from_disk() {
    let dir = TempDir::new("resume-from-disk");
    // About a dozen short messages fit in 2 KiB of history: the rest is only on disk.
    let server = Server::start(&dir.data(), &["--history-bytes", "2KiB"]);
    let mut alice = server.join("alice", "team", None);
    let (welcome, _, _) = joined(&mut alice);
    let epoch = welcome["epoch"].as_u64().expect("an epoch");
    let texts: Vec<String> = (0..60).map(|i| format!("message number {i}")).collect();
    let ids = post_all(&mut alice, &texts);

    // A fresh joiner shows how little memory holds.
    let mut carol = server.join("carol", "team", None);
    let (_, gap, fresh) = joined(&mut carol);
    assert!(gap.is_none());
    let held = ids_and_texts(&fresh["messages"]);
    assert!(
        !held.is_empty() && held.len() < 30,
        "memory should hold a few of the 60: {}",
        held.len()
    );
    drop(carol);

    // bob saw the first 5, then lost his connection.
    let since = ids[4];
    let mut bob = server.join("bob", "team", Some((since, epoch)));
    // The room goes on while bob's missed messages are read from disk.
    let live: Vec<String> = (0..5).map(|i| format!("live {i}")).collect();
    for (i, text) in live.iter().enumerate() {
        send(
            &mut alice,
            json!({"type": "message", "message": text, "client_msg_id": format!("l{i}")}),
        );
    }
    let (welcome, gap, history) = joined(&mut bob);
    assert_eq!(welcome["epoch"].as_u64(), Some(epoch));
    assert!(
        gap.is_none(),
        "a gap although the disk has every message: {gap:?}"
    );
    assert_eq!(history["resumed"], true, "{history}");
    let mut got = ids_and_texts(&history["messages"]);
    // Then his own notice and the live messages, each once, in order.
    while got.len() < texts.len() - 5 + live.len() {
        let frame = recv(&mut bob);
        if frame["type"] == "message" {
            got.push((
                frame["id"].as_u64().expect("an id"),
                frame["message"].as_str().expect("a text").to_owned(),
            ));
        }
    }
    let last = ids[ids.len() - 1];
    let expected: Vec<(u64, String)> = ids[5..]
        .iter()
        .copied()
        .zip(texts[5..].iter().cloned())
        .chain(
            (1..=live.len() as u64)
                .map(|i| last + i)
                .zip(live.iter().cloned()),
        )
        .collect();
    assert_eq!(
        got, expected,
        "every missed message, then live, once each, in order"
    );
    // Nothing more is coming for bob: a message of his own is the next frame he sees.
    send(
        &mut bob,
        json!({"type": "message", "message": "back", "client_msg_id": "b0"}),
    );
    let next = loop {
        let frame = recv(&mut bob);
        if frame["type"] == "message" {
            break frame;
        }
    };
    assert_eq!(next["message"], "back", "a duplicate or late frame: {next}");
    drop(bob);

    // More missed than one resume reads from disk (100 beyond memory): an honest gap.
    let more: Vec<String> = (0..120).map(|i| format!("more {i}")).collect();
    post_all(&mut alice, &more);
    let mut dave = server.join("dave", "team", Some((since, epoch)));
    let (_, gap, history) = joined(&mut dave);
    let gap = gap.expect("a gap beyond the resume bound");
    assert_eq!(gap["since"].as_u64(), Some(since), "{gap}");
    assert_eq!(history["resumed"], false, "{history}");
    // Scroll-back still reaches what the gap left out.
    let first_held = ids_and_texts(&history["messages"])[0].0;
    send(
        &mut dave,
        json!({"type": "history_before", "before": first_held, "limit": 3}),
    );
    let page = loop {
        let frame = recv(&mut dave);
        if frame["type"] == "history_page" {
            break frame;
        }
    };
    let page_ids: Vec<u64> = ids_and_texts(&page["messages"])
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    assert_eq!(
        page_ids,
        (first_held - 3..first_held).collect::<Vec<_>>(),
        "{page}"
    );
    drop(dave);
    drop(alice);
    std::thread::sleep(Duration::from_millis(50));
    server.stop();
}
