//! End-to-end tests of the rich chat protocol (`chat.v2`, PROTOCOL.md) over real sockets, against
//! an in-process server on an ephemeral port: negotiation, v1 and v2 side by side, rooms, history
//! and resume, restarts, presence with several tabs, typing, direct messages, acks and retries,
//! malformed commands and the rate limit.
//!
//! Every wait is for a specific frame, bounded by the client's read timeout; nothing sleeps.
//! "Nothing else came" is proved with a marker: the server handles inputs one at a time and
//! queues each connection's frames in order, so once a command's effect has been seen (or it was
//! sent on the marker's own connection), any frame it caused for a client is queued before the
//! marker, and the marker being that client's next frame proves there was none.

mod common;
#[path = "common/client.rs"]
mod v1;
#[path = "common/v2_client.rs"]
mod v2_client;

use std::collections::BTreeMap;
use std::sync::{Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use chat_mio_server::Config;
use common::TestServer;
use serde_json::{json, Value};
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::Message;
use v2_client::{
    close, connect_v1, direct, expect_join, expect_leave, expect_message, greeting, handshake,
    id_of, join_v2, message, message_with_id, now_millis, recv, send_all, send_cmd, send_text,
    typing, Client, Greeting, V2,
};

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// A v2 `message` frame without its timestamp.
fn msg(id: u64, room: &str, from: &str, text: &str) -> Value {
    json!({"type": "message", "id": id, "room": room, "client_id": from, "message": text})
}

/// A v2 `message` frame with a `client_msg_id`, without its timestamp.
fn msg_key(id: u64, room: &str, from: &str, text: &str, key: &str) -> Value {
    let mut m = msg(id, room, from, text);
    m["client_msg_id"] = json!(key);
    m
}

/// The next frame must be a v2 `error` for `user` with `code`: exactly `type`, `client_id`,
/// `message` (non-empty) and `code`. Returns the message.
fn expect_error(client: &mut Client, user: &str, code: &str) -> String {
    let mut frame = recv(client);
    let text = frame["message"]
        .as_str()
        .filter(|m| !m.is_empty())
        .unwrap_or_else(|| panic!("error without a message: {frame}"))
        .to_owned();
    frame["message"] = json!("…");
    assert_eq!(
        frame,
        json!({"type": "error", "client_id": user, "message": "…", "code": code}),
        "({text:?})"
    );
    text
}

/// The greeting must hold a `gap` for `since` under `epoch` in `room`, with an explanation.
fn expect_gap(g: &Greeting, room: &str, epoch: u64, since: u64) {
    let mut gap = g
        .gap
        .clone()
        .unwrap_or_else(|| panic!("expected a gap for since={since}: {g:?}"));
    assert!(
        gap["message"].as_str().is_some_and(|m| !m.is_empty()),
        "a gap explains itself: {gap}"
    );
    gap.as_object_mut().expect("an object").remove("message");
    assert_eq!(
        gap,
        json!({"type": "gap", "room": room, "epoch": epoch, "since": since})
    );
}

/// `sender` (a v2 connection of `from`) says `text`; it must be the very next frame of the
/// sender, of every v2 client in `v2s` and of every v1 client in `v1s`. Returns its id.
fn v2_marker(
    sender: &mut Client,
    from: &str,
    room: &str,
    text: &str,
    v2s: &mut [&mut Client],
    v1s: &mut [&mut Client],
) -> u64 {
    send_cmd(sender, &message(text));
    for v1 in v1s {
        v1::expect_message(v1, from, text);
    }
    let id = expect_message(sender, from, text, room);
    for v2 in v2s {
        assert_eq!(recv(v2), msg(id, room, from, text), "marker {text:?}");
    }
    id
}

/// Like [`v2_marker`], said by a v1 connection of `from`.
fn v1_marker(
    sender: &mut Client,
    from: &str,
    room: &str,
    text: &str,
    v2s: &mut [&mut Client],
    v1s: &mut [&mut Client],
) -> u64 {
    send_text(sender, text);
    v1::expect_message(sender, from, text);
    for v1 in v1s {
        v1::expect_message(v1, from, text);
    }
    let mut id = None;
    for v2 in v2s {
        let frame = recv(v2);
        let got = id_of(&frame);
        assert_eq!(*id.get_or_insert(got), got, "one id for everyone");
        assert_eq!(frame, msg(got, room, from, text), "marker {text:?}");
    }
    id.expect("at least one v2 client")
}

/// A v1 connection to `/ws/{id}{query}` whose own join notice has been read.
fn join_v1(server: &TestServer, id: &str, query: &str) -> Client {
    let mut client = connect_v1(server, id, query);
    v1::expect_join(&mut client, id);
    client
}

// ---------------------------------------------------------------------------------------------
// 1. Negotiation
// ---------------------------------------------------------------------------------------------

#[test]
fn offering_chat_v2_gets_it_back_and_a_welcome_first() {
    let before = now_millis();
    let server = TestServer::start();
    let after_bind = now_millis();

    let (mut zed, g) = join_v2(&server, "zed", "", true);
    assert_eq!(g.members(), ["zed"]);
    let mut bob = join_v1(&server, "bob", "");
    expect_join(&mut zed, "bob", "general");

    let (reply, alice) = handshake(&server, "/ws/alice", Some(V2));
    assert_eq!(reply.status, 101, "{reply:?}");
    assert_eq!(reply.all("Sec-WebSocket-Protocol"), [V2], "{reply:?}");
    let mut alice = alice.expect("upgraded");

    // The very first frame is the welcome: the epoch is the server's start time in ms, the
    // members are sorted and include the joiner and the v1 user.
    let welcome = recv(&mut alice);
    let epoch = welcome["epoch"]
        .as_u64()
        .unwrap_or_else(|| panic!("epoch is a whole number: {welcome}"));
    let epoch_ms = i64::try_from(epoch).expect("fits");
    assert!(
        (before..=after_bind).contains(&epoch_ms),
        "epoch {epoch} is the start time, between {before} and {after_bind}"
    );
    assert_eq!(
        welcome,
        json!({
            "type": "welcome",
            "client_id": "alice",
            "room": "general",
            "epoch": epoch,
            "members": ["alice", "bob", "zed"],
            "history_limit": 100,
        })
    );
    assert_eq!(
        recv(&mut alice),
        json!({"type": "history", "room": "general", "epoch": epoch, "resumed": false, "messages": []})
    );
    expect_join(&mut alice, "alice", "general");
    expect_join(&mut zed, "alice", "general");
    v1::expect_join(&mut bob, "alice");

    // chat.v2 anywhere in a list of offers is picked.
    let (reply, carol) = handshake(&server, "/ws/carol", Some("chat.v3, chat.v2"));
    assert_eq!(reply.status, 101, "{reply:?}");
    assert_eq!(reply.all("Sec-WebSocket-Protocol"), [V2], "{reply:?}");
    let mut carol = carol.expect("upgraded");
    let g = greeting(&mut carol, "carol");
    assert_eq!(g.epoch(), epoch, "one epoch per server run");
    assert_eq!(g.members(), ["alice", "bob", "carol", "zed"]);
    expect_join(&mut carol, "carol", "general");
    for v2 in [&mut zed, &mut alice] {
        expect_join(v2, "carol", "general");
    }
    v1::expect_join(&mut bob, "carol");
}

#[test]
fn offering_nothing_or_another_protocol_gets_no_subprotocol_and_v1() {
    let server = TestServer::start();
    let (mut zed, _) = join_v2(&server, "zed", "", true);

    // No offer: no header, and the tutorial's join notice (exactly four fields) first.
    let (reply, dave) = handshake(&server, "/ws/dave", None);
    assert_eq!(reply.status, 101, "{reply:?}");
    assert_eq!(reply.all("Sec-WebSocket-Protocol"), Vec::<&str>::new());
    let mut dave = dave.expect("upgraded");
    v1::expect_join(&mut dave, "dave");
    expect_join(&mut zed, "dave", "general");

    // Only other protocols offered (including near misses): none comes back, and v1 it is.
    let mut others = Vec::new();
    for (name, offer) in [
        ("erin", "chat.v3"),
        ("fred", "chat.v2x, chat"),
        ("gail", "CHAT.V2"),
    ] {
        let (reply, client) = handshake(&server, &format!("/ws/{name}"), Some(offer));
        assert_eq!(reply.status, 101, "{offer:?}: {reply:?}");
        assert_eq!(
            reply.all("Sec-WebSocket-Protocol"),
            Vec::<&str>::new(),
            "{offer:?} must get no subprotocol back"
        );
        let mut client = client.expect("upgraded");
        v1::expect_join(&mut client, name);
        v1::expect_join(&mut dave, name);
        for earlier in &mut others {
            v1::expect_join(earlier, name);
        }
        expect_join(&mut zed, name, "general");
        others.push(client);
    }

    // v1 behaviour: a text frame is a chat message taken verbatim, even when it looks like a
    // v2 command, and every v1 frame has exactly the tutorial's four fields.
    let text = r#"{"type":"typing"}"#;
    send_text(&mut others[0], text);
    for v1 in others.iter_mut().chain([&mut dave]) {
        v1::expect_message(v1, "erin", text);
    }
    assert_eq!(recv(&mut zed), msg(1, "general", "erin", text));
}

// ---------------------------------------------------------------------------------------------
// 2. v1 and v2 side by side
// ---------------------------------------------------------------------------------------------

#[test]
fn v1_and_v2_clients_share_a_room_each_in_its_own_protocol() {
    let server = TestServer::start();
    let mut vera = join_v1(&server, "vera", "");
    let (mut wes, g) = join_v2(&server, "wes", "", true);
    assert_eq!(g.members(), ["vera", "wes"]);
    v1::expect_join(&mut vera, "wes");
    let (mut xan, g) = join_v2(&server, "xan", "", true);
    assert_eq!(g.members(), ["vera", "wes", "xan"]);
    v1::expect_join(&mut vera, "xan");
    expect_join(&mut wes, "xan", "general");

    // A v2 message: the v1 client gets the tutorial frame, the v2 clients the rich one, and the
    // sender its ack after the broadcast.
    send_cmd(&mut wes, &message_with_id("hello from v2", "w-1"));
    v1::expect_message(&mut vera, "wes", "hello from v2");
    let m1 = msg_key(1, "general", "wes", "hello from v2", "w-1");
    assert_eq!(recv(&mut wes), m1);
    assert_eq!(recv(&mut xan), m1);
    assert_eq!(
        recv(&mut wes),
        json!({"type": "ack", "client_msg_id": "w-1", "id": 1})
    );

    // Typing and direct messages are v2 only; a v1-only user cannot be messaged directly.
    send_cmd(&mut wes, &typing());
    assert_eq!(
        recv(&mut xan),
        json!({"type": "typing", "client_id": "wes", "room": "general"})
    );
    send_cmd(&mut wes, &direct("xan", "psst"));
    let d =
        json!({"type": "direct", "from": "wes", "to": "xan", "message": "psst", "room": "general"});
    assert_eq!(recv(&mut xan), d);
    assert_eq!(recv(&mut wes), d);
    send_cmd(&mut wes, &direct("vera", "hi"));
    expect_error(&mut wes, "wes", "unknown_recipient");

    // A second v1 tab of vera: announced per connection to v1, not at all to v2 (vera is
    // present already). Its messages reach v2 clients with an id and the room, and no
    // client_msg_id.
    let mut vera2 = connect_v1(&server, "vera", "");
    v1::expect_join(&mut vera, "vera");
    v1::expect_join(&mut vera2, "vera");
    send_text(&mut vera2, "hi from v1");
    v1::expect_message(&mut vera2, "vera", "hi from v1");
    v1::expect_message(&mut vera, "vera", "hi from v1");
    assert_eq!(recv(&mut wes), msg(2, "general", "vera", "hi from v1"));
    assert_eq!(recv(&mut xan), msg(2, "general", "vera", "hi from v1"));
    v1::close(vera2);
    v1::expect_leave(&mut vera, "vera");

    // vera saw only tutorial frames (each read above checks the four fields), nothing of the
    // welcome, typing, direct, ack or error frames; the v2 clients nothing of vera's tabs.
    v1_marker(
        &mut vera,
        "vera",
        "general",
        "marker",
        &mut [&mut wes, &mut xan],
        &mut [],
    );

    // A v2 user leaving is announced in both shapes.
    close(wes);
    v1::expect_leave(&mut vera, "wes");
    expect_leave(&mut xan, "wes", "general");
    v2_marker(
        &mut xan,
        "xan",
        "general",
        "marker 2",
        &mut [],
        &mut [&mut vera],
    );
}

// ---------------------------------------------------------------------------------------------
// 3. Rooms
// ---------------------------------------------------------------------------------------------

#[test]
fn rooms_isolate_messages_joins_leaves_typing_and_direct_messages() {
    let server = TestServer::start();
    let (mut alice, g) = join_v2(&server, "alice", "?room=a", true);
    assert_eq!(
        (g.welcome["room"].as_str(), g.members()),
        (Some("a"), vec!["alice"])
    );
    let (mut bob, g) = join_v2(&server, "bob", "?room=b", true);
    assert_eq!(
        (g.welcome["room"].as_str(), g.members()),
        (Some("b"), vec!["bob"])
    );
    let mut carl = join_v1(&server, "carl", "?room=a");
    expect_join(&mut alice, "carl", "a");
    let mut dora = join_v1(&server, "dora", "?room=b");
    expect_join(&mut bob, "dora", "b");
    let (mut amy, g) = join_v2(&server, "amy", "?room=a", true);
    assert_eq!(g.members(), ["alice", "amy", "carl"]);
    expect_join(&mut alice, "amy", "a");
    v1::expect_join(&mut carl, "amy");
    let (mut bea, g) = join_v2(&server, "bea", "?room=b", true);
    assert_eq!(g.members(), ["bea", "bob", "dora"]);
    expect_join(&mut bob, "bea", "b");
    v1::expect_join(&mut dora, "bea");

    // Room a: a message (ids are per room), typing, a direct message to someone in room b.
    send_cmd(&mut alice, &message("in a"));
    v1::expect_message(&mut carl, "alice", "in a");
    assert_eq!(recv(&mut alice), msg(1, "a", "alice", "in a"));
    assert_eq!(recv(&mut amy), msg(1, "a", "alice", "in a"));
    send_cmd(&mut alice, &typing());
    assert_eq!(
        recv(&mut amy),
        json!({"type": "typing", "client_id": "alice", "room": "a"})
    );
    send_cmd(&mut alice, &direct("bob", "across rooms"));
    expect_error(&mut alice, "alice", "unknown_recipient");

    // Room b: the same, its own ids.
    send_cmd(&mut bob, &message("in b"));
    v1::expect_message(&mut dora, "bob", "in b");
    assert_eq!(recv(&mut bob), msg(1, "b", "bob", "in b"));
    assert_eq!(recv(&mut bea), msg(1, "b", "bob", "in b"));
    send_cmd(&mut bob, &typing());
    assert_eq!(
        recv(&mut bea),
        json!({"type": "typing", "client_id": "bob", "room": "b"})
    );

    // A leave in room a.
    v1::close(carl);
    expect_leave(&mut alice, "carl", "a");
    expect_leave(&mut amy, "carl", "a");

    // Nothing crossed over, either way.
    let id = v2_marker(
        &mut bea,
        "bea",
        "b",
        "marker b",
        &mut [&mut bob],
        &mut [&mut dora],
    );
    assert_eq!(id, 2);
    let id = v2_marker(&mut amy, "amy", "a", "marker a", &mut [&mut alice], &mut []);
    assert_eq!(id, 2);
}

#[test]
fn bad_room_names_are_refused_before_the_upgrade() {
    let server = TestServer::start();
    let long = format!("?room={}", "x".repeat(33));
    for query in [
        "?room=",
        "?room=a%20b",
        "?room=a+b",
        "?room=..",
        long.as_str(),
        "?room=%2F",
        "?room=a%2Fb",
        "?room=caf%C3%A9",
    ] {
        for offer in [None, Some(V2)] {
            let target = format!("/ws/alice{query}");
            let (reply, client) = handshake(&server, &target, offer);
            assert_eq!(reply.status, 400, "{target} ({offer:?}): {reply:?}");
            assert!(client.is_none());
            assert_eq!(reply.header("Upgrade"), None, "{target}: {reply:?}");
            assert!(
                reply.body.starts_with("room: "),
                "{target}: the body gives the reason: {:?}",
                reply.body
            );
        }
    }

    // The longest name is fine, and names are lowercased: Lobby and LOBBY are lobby.
    let longest = "x".repeat(32);
    let (_x, g) = join_v2(&server, "alice", &format!("?room={longest}"), true);
    assert_eq!(g.welcome["room"], longest.as_str());
    let (mut lobby, g) = join_v2(&server, "alice", "?room=Lobby", true);
    assert_eq!(g.welcome["room"], "lobby");
    assert_eq!(g.members(), ["alice"], "the 32-x room is another room");
    let mut vic = join_v1(&server, "vic", "?room=LOBBY");
    expect_join(&mut lobby, "vic", "lobby");
    let (mut bob, g) = join_v2(&server, "bob", "?room=lobby", true);
    assert_eq!(g.members(), ["alice", "bob", "vic"]);
    expect_join(&mut lobby, "bob", "lobby");
    v1::expect_join(&mut vic, "bob");
    v2_marker(
        &mut bob,
        "bob",
        "lobby",
        "hi",
        &mut [&mut lobby],
        &mut [&mut vic],
    );
}

// ---------------------------------------------------------------------------------------------
// 4. History and the live boundary
// ---------------------------------------------------------------------------------------------

#[test]
fn history_holds_earlier_messages_and_live_ones_follow() {
    let server = TestServer::start();
    let (mut sam, _) = join_v2(&server, "sam", "", true);
    send_cmd(&mut sam, &message_with_id("one", "c-1"));
    assert_eq!(recv(&mut sam), msg_key(1, "general", "sam", "one", "c-1"));
    recv(&mut sam); // ack
    send_cmd(&mut sam, &message("two"));
    assert_eq!(recv(&mut sam), msg(2, "general", "sam", "two"));
    send_cmd(&mut sam, &message_with_id("three", "c-3"));
    assert_eq!(recv(&mut sam), msg_key(3, "general", "sam", "three", "c-3"));
    assert_eq!(
        recv(&mut sam),
        json!({"type": "ack", "client_msg_id": "c-3", "id": 3})
    );

    let (mut joe, g) = join_v2(&server, "joe", "", true);
    assert!(g.gap.is_none(), "{g:?}");
    assert_eq!(
        g.history,
        json!({
            "type": "history",
            "room": "general",
            "epoch": g.epoch(),
            "resumed": false,
            "messages": [
                msg_key(1, "general", "sam", "one", "c-1"),
                msg(2, "general", "sam", "two"),
                msg_key(3, "general", "sam", "three", "c-3"),
            ],
        })
    );
    expect_join(&mut sam, "joe", "general");
    send_cmd(&mut sam, &message("four"));
    assert_eq!(recv(&mut sam), msg(4, "general", "sam", "four"));
    assert_eq!(recv(&mut joe), msg(4, "general", "sam", "four"));
}

#[test]
fn the_history_option_keeps_only_the_last_messages() {
    let server = TestServer::with_config(Config {
        history: 3,
        ..Config::default()
    });
    let (mut sam, _) = join_v2(&server, "sam", "", true);
    for n in 1..=5 {
        send_cmd(&mut sam, &message(&format!("m{n}")));
        assert_eq!(
            expect_message(&mut sam, "sam", &format!("m{n}"), "general"),
            n
        );
    }
    let (_joe, g) = join_v2(&server, "joe", "", true);
    assert_eq!(g.welcome["history_limit"], 3);
    assert_eq!(
        g.messages(),
        [3, 4, 5].map(|n| msg(n, "general", "sam", &format!("m{n}")))
    );

    // --history 0: nothing held, ids still count, and resuming at the last id is exact.
    let server = TestServer::with_config(Config {
        history: 0,
        ..Config::default()
    });
    let (mut sam, g) = join_v2(&server, "sam", "", true);
    assert_eq!(g.welcome["history_limit"], 0);
    for n in 1..=2 {
        send_cmd(&mut sam, &message(&format!("m{n}")));
        assert_eq!(
            expect_message(&mut sam, "sam", &format!("m{n}"), "general"),
            n
        );
    }
    let (_joe, g) = join_v2(&server, "joe", "", true);
    assert_eq!((g.resumed(), g.ids()), (false, vec![]));
    let epoch = g.epoch();
    let (_joe2, g) = join_v2(&server, "joe", &format!("?since=2&epoch={epoch}"), false);
    assert!(g.gap.is_none(), "{g:?}");
    assert_eq!((g.resumed(), g.ids()), (true, vec![]));
    let (_joe3, g) = join_v2(&server, "joe", &format!("?since=1&epoch={epoch}"), false);
    expect_gap(&g, "general", epoch, 1);
    assert_eq!((g.resumed(), g.ids()), (false, vec![]));
}

/// How many messages the sender has seen acknowledged, for joiners to wait on.
struct Progress {
    acked: Mutex<usize>,
    changed: Condvar,
}

impl Progress {
    fn set(&self, n: usize) {
        *self.acked.lock().expect("not poisoned") = n;
        self.changed.notify_all();
    }

    fn wait_for(&self, n: usize) {
        let guard = self.acked.lock().expect("not poisoned");
        let (_guard, timeout) = self
            .changed
            .wait_timeout_while(guard, v2_client::TIMEOUT, |acked| *acked < n)
            .expect("not poisoned");
        assert!(!timeout.timed_out(), "the sender never got {n} acks");
    }
}

#[test]
fn joining_while_messages_fly_loses_and_duplicates_nothing() {
    const N: usize = 400;
    const BATCH: usize = 20;
    const JOINERS: usize = 8;
    let server = TestServer::without_rate_limit();
    let (mut sam, g) = join_v2(&server, "sam", "", true);
    let limit = g.welcome["history_limit"].as_u64().expect("a number") as usize;
    let progress = Progress {
        acked: Mutex::new(0),
        changed: Condvar::new(),
    };

    let (acked, joiners) = thread::scope(|s| {
        let progress = &progress;
        let server = &server;
        let sender = s.spawn(move || {
            // id -> the message's number, from the acks.
            let mut acked: BTreeMap<u64, usize> = BTreeMap::new();
            for start in (0..N).step_by(BATCH) {
                let batch: Vec<String> = (start..start + BATCH)
                    .map(|n| message_with_id(&format!("text {n}"), &format!("k{n}")).to_string())
                    .collect();
                send_all(&mut sam, &batch);
                while acked.len() < start + BATCH {
                    let frame = recv(&mut sam);
                    match frame["type"].as_str() {
                        Some("ack") => {
                            let key = frame["client_msg_id"].as_str().expect("a string");
                            let n: usize = key[1..].parse().expect("k<number>");
                            assert_eq!(n, acked.len(), "acks come in order: {frame}");
                            assert!(acked.insert(id_of(&frame), n).is_none(), "{frame}");
                            progress.set(acked.len());
                        }
                        Some("message" | "connection" | "disconnection") => {}
                        _ => panic!("sam got {frame}"),
                    }
                }
            }
            acked
        });
        let joiners: Vec<_> = (0..JOINERS)
            .map(|j| {
                s.spawn(move || {
                    progress.wait_for(j * N / JOINERS);
                    let name = format!("joiner{j}");
                    let (mut client, g) = join_v2(server, &name, "", true);
                    assert!(!g.resumed() && g.gap.is_none(), "{g:?}");
                    let mut seen: Vec<Value> = g.messages().to_vec();
                    let from_history = seen.len();
                    let last = format!("k{}", N - 1);
                    while seen
                        .last()
                        .is_none_or(|m| m["client_msg_id"] != last.as_str())
                    {
                        let frame = recv(&mut client);
                        match frame["type"].as_str() {
                            Some("message") => seen.push(frame),
                            Some("connection" | "disconnection") => {}
                            _ => panic!("{name} got {frame}"),
                        }
                    }
                    (name, from_history, seen)
                })
            })
            .collect();
        let acked = sender.join().expect("the sender failed");
        let joiners: Vec<_> = joiners
            .into_iter()
            .map(|j| j.join().expect("a joiner failed"))
            .collect();
        (acked, joiners)
    });

    // The ids the sender was given are exactly 1..=N, in order.
    assert_eq!(
        acked.iter().map(|(&id, &n)| (id, n)).collect::<Vec<_>>(),
        (0..N).map(|n| (n as u64 + 1, n)).collect::<Vec<_>>()
    );
    for (name, from_history, seen) in joiners {
        // History then live: consecutive ids ending at N (no gap, no duplicate), starting at 1
        // or with a full history, each message the one the sender was acknowledged for.
        let ids: Vec<u64> = seen.iter().map(id_of).collect();
        let first = ids[0];
        assert!(
            first == 1 || from_history == limit,
            "{name}: starts at {first} with {from_history} from history"
        );
        assert_eq!(
            ids,
            (first..=N as u64).collect::<Vec<_>>(),
            "{name}: {from_history} from history, then live"
        );
        for m in &seen {
            let n = acked[&id_of(m)];
            assert_eq!(
                *m,
                msg_key(
                    id_of(m),
                    "general",
                    "sam",
                    &format!("text {n}"),
                    &format!("k{n}")
                ),
                "{name}"
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// 5. Resume
// ---------------------------------------------------------------------------------------------

#[test]
fn resuming_gets_exactly_the_missed_messages_or_a_gap() {
    let server = TestServer::with_config(Config {
        history: 5,
        rate_limit: 0.0,
        ..Config::default()
    });
    let (mut bob, g) = join_v2(&server, "bob", "", true);
    let epoch = g.epoch();
    let (mut alice, _) = join_v2(&server, "alice", "", true);
    expect_join(&mut bob, "alice", "general");
    let say = |bob: &mut Client, others: &mut [&mut Client], text: &str| -> u64 {
        v2_marker(bob, "bob", "general", text, others, &mut [])
    };
    for n in 1..=3 {
        assert_eq!(say(&mut bob, &mut [&mut alice], &format!("before {n}")), n);
    }
    // alice goes away having seen id 3; bob chats on.
    close(alice);
    expect_leave(&mut bob, "alice", "general");
    say(&mut bob, &mut [], "while away 4");
    say(&mut bob, &mut [], "while away 5");

    let (mut alice, g) = join_v2(&server, "alice", &format!("?since=3&epoch={epoch}"), true);
    assert!(g.gap.is_none(), "{g:?}");
    assert_eq!(
        g.history,
        json!({
            "type": "history",
            "room": "general",
            "epoch": epoch,
            "resumed": true,
            "messages": [
                msg(4, "general", "bob", "while away 4"),
                msg(5, "general", "bob", "while away 5"),
            ],
        })
    );
    expect_join(&mut bob, "alice", "general");
    assert_eq!(say(&mut bob, &mut [&mut alice], "live 6"), 6);

    // Resuming at the newest id: resumed, nothing missed.
    let (tab, g) = join_v2(&server, "alice", &format!("?since=6&epoch={epoch}"), false);
    assert!(g.gap.is_none(), "{g:?}");
    assert_eq!((g.resumed(), g.ids()), (true, vec![]));
    close(tab);

    // Ids 7..=12: the five held are 8..=12, so since=7 is the oldest that can be honoured.
    for n in 7..=12 {
        say(&mut bob, &mut [&mut alice], &format!("m{n}"));
    }
    let held: Vec<Value> = (8..=12)
        .map(|n| msg(n, "general", "bob", &format!("m{n}")))
        .collect();
    let (tab, g) = join_v2(&server, "alice", &format!("?since=7&epoch={epoch}"), false);
    assert!(g.gap.is_none(), "{g:?}");
    assert_eq!((g.resumed(), g.messages()), (true, held.as_slice()));
    close(tab);

    // Too old, in the future, or no epoch: a gap, then the whole current history.
    for (query, since) in [
        (format!("?since=6&epoch={epoch}"), 6),
        (format!("?since=0&epoch={epoch}"), 0),
        (format!("?since=13&epoch={epoch}"), 13),
        ("?since=12".to_owned(), 12),
        (format!("?epoch={epoch}&since=3"), 3),
    ] {
        let (tab, g) = join_v2(&server, "alice", &query, false);
        expect_gap(&g, "general", epoch, since);
        assert_eq!(
            (g.resumed(), g.messages()),
            (false, held.as_slice()),
            "{query}"
        );
        close(tab);
    }
    // An epoch without since is ignored: no gap, the whole history.
    let (tab, g) = join_v2(&server, "alice", &format!("?epoch={epoch}"), false);
    assert!(g.gap.is_none(), "{g:?}");
    assert_eq!((g.resumed(), g.messages()), (false, held.as_slice()));
    close(tab);

    // Another server's epoch (a second instance; started after this one's millisecond so the
    // two epochs differ) is not honoured, even for an id this server holds.
    while now_millis() <= epoch as i64 {
        thread::yield_now();
    }
    let other = TestServer::start();
    let (_o, g) = join_v2(&other, "olga", "", true);
    let other_epoch = g.epoch();
    assert_ne!(other_epoch, epoch, "two server runs, two epochs");
    let (_tab, g) = join_v2(
        &server,
        "alice",
        &format!("?since=10&epoch={other_epoch}"),
        false,
    );
    expect_gap(&g, "general", epoch, 10);
    assert_eq!((g.resumed(), g.messages()), (false, held.as_slice()));

    // Through it all, alice's first connection saw only bob's messages, and bob nothing of
    // alice's extra tabs.
    say(&mut bob, &mut [&mut alice], "end");
}

// ---------------------------------------------------------------------------------------------
// 6. Restart
// ---------------------------------------------------------------------------------------------

#[test]
fn resuming_against_a_restarted_server_gets_a_gap_not_reused_ids() {
    let old = TestServer::start();
    let (mut bob, g) = join_v2(&old, "bob", "", true);
    let old_epoch = g.epoch();
    let (mut alice, _) = join_v2(&old, "alice", "", true);
    expect_join(&mut bob, "alice", "general");
    for n in 1..=3 {
        v2_marker(
            &mut bob,
            "bob",
            "general",
            &format!("old {n}"),
            &mut [&mut alice],
            &mut [],
        );
    }
    close(bob);
    expect_leave(&mut alice, "bob", "general");

    // The server stops while alice is connected: she is told it is going away.
    thread::scope(|s| {
        s.spawn(move || drop(old));
        let mut away = None;
        loop {
            match alice.read() {
                Ok(Message::Close(frame)) => away = frame.map(|f| f.code),
                Ok(Message::Ping(_) | Message::Pong(_)) => {}
                Ok(other) => panic!("expected a close, got {other:?}"),
                Err(tungstenite::Error::ConnectionClosed) => break,
                Err(e) => panic!("the connection ended badly: {e}"),
            }
        }
        assert_eq!(away, Some(CloseCode::Away));
        // The server half-closed after the handshake and waits for our end: give it.
        drop(alice);
    });

    // A new run: ids start again at 1, and id 4 is someone else's message.
    while now_millis() <= old_epoch as i64 {
        thread::yield_now();
    }
    let new = TestServer::start();
    let (mut carol, g) = join_v2(&new, "carol", "", true);
    let new_epoch = g.epoch();
    assert_ne!(new_epoch, old_epoch, "a restart changes the epoch");
    for n in 1..=4 {
        let id = v2_marker(
            &mut carol,
            "carol",
            "general",
            &format!("new {n}"),
            &mut [],
            &mut [],
        );
        assert_eq!(id, n);
    }

    let (mut alice, g) = join_v2(&new, "alice", &format!("?since=3&epoch={old_epoch}"), true);
    assert_eq!(g.epoch(), new_epoch);
    expect_gap(&g, "general", new_epoch, 3);
    assert_eq!(
        g.history,
        json!({
            "type": "history",
            "room": "general",
            "epoch": new_epoch,
            "resumed": false,
            "messages": (1..=4).map(|n| msg(n, "general", "carol", &format!("new {n}"))).collect::<Vec<_>>(),
        })
    );
    expect_join(&mut carol, "alice", "general");
    v2_marker(
        &mut carol,
        "carol",
        "general",
        "welcome back",
        &mut [&mut alice],
        &mut [],
    );
}

// ---------------------------------------------------------------------------------------------
// 7. Presence with several tabs
// ---------------------------------------------------------------------------------------------

#[test]
fn a_user_with_several_tabs_is_one_member_to_v2_and_per_connection_to_v1() {
    let server = TestServer::start();
    let (mut olga, _) = join_v2(&server, "olga", "", true);
    let mut vic = join_v1(&server, "vic", "");
    expect_join(&mut olga, "vic", "general");

    let (mut a1, g) = join_v2(&server, "alice", "", true);
    assert_eq!(g.members(), ["alice", "olga", "vic"]);
    expect_join(&mut olga, "alice", "general");
    v1::expect_join(&mut vic, "alice");

    // The second tab: listed once, no v2 notice for anyone (its own included), a v1 one.
    let (mut a2, g) = join_v2(&server, "alice", "", false);
    assert_eq!(g.members(), ["alice", "olga", "vic"]);
    v1::expect_join(&mut vic, "alice");
    v2_marker(
        &mut olga,
        "olga",
        "general",
        "two tabs",
        &mut [&mut a1, &mut a2],
        &mut [&mut vic],
    );

    let (mut pat, g) = join_v2(&server, "pat", "", true);
    assert_eq!(g.members(), ["alice", "olga", "pat", "vic"]);
    for v2 in [&mut olga, &mut a1, &mut a2] {
        expect_join(v2, "pat", "general");
    }
    v1::expect_join(&mut vic, "pat");

    // Closing one tab: a v1 notice only.
    close(a1);
    v1::expect_leave(&mut vic, "alice");
    v2_marker(
        &mut olga,
        "olga",
        "general",
        "one tab left",
        &mut [&mut a2, &mut pat],
        &mut [&mut vic],
    );

    // The last tab vanishes (no close handshake): alice left, for everyone.
    drop(a2);
    expect_leave(&mut olga, "alice", "general");
    expect_leave(&mut pat, "alice", "general");
    v1::expect_leave(&mut vic, "alice");
    let (_quinn, g) = join_v2(&server, "quinn", "", true);
    assert_eq!(g.members(), ["olga", "pat", "quinn", "vic"]);
    for v2 in [&mut olga, &mut pat] {
        expect_join(v2, "quinn", "general");
    }
    v1::expect_join(&mut vic, "quinn");
    v2_marker(
        &mut olga,
        "olga",
        "general",
        "gone",
        &mut [&mut pat],
        &mut [&mut vic],
    );
}

// ---------------------------------------------------------------------------------------------
// 8. Typing
// ---------------------------------------------------------------------------------------------

#[test]
fn typing_reaches_other_v2_users_only_and_is_throttled() {
    // The typing interval (2 s) is not an option of the server's Config, so only the dropping
    // within the window is tested, not its expiry.
    const INTERVAL: Duration = Duration::from_secs(2);
    let server = TestServer::start();
    let (mut a1, _) = join_v2(&server, "alice", "", true);
    let (mut a2, _) = join_v2(&server, "alice", "", false);
    let (mut bob, _) = join_v2(&server, "bob", "", true);
    for a in [&mut a1, &mut a2] {
        expect_join(a, "bob", "general");
    }
    let mut vic = join_v1(&server, "vic", "");
    for v2 in [&mut a1, &mut a2, &mut bob] {
        expect_join(v2, "vic", "general");
    }

    let alice_typing = json!({"type": "typing", "client_id": "alice", "room": "general"});
    let start = Instant::now();
    send_cmd(&mut a1, &typing());
    assert_eq!(recv(&mut bob), alice_typing);

    // Again from the same tab and from the other tab, within the interval: dropped. Each is
    // followed by a message on the same connection, which must be bob's next frame.
    send_cmd(&mut a1, &typing());
    v2_marker(
        &mut a1,
        "alice",
        "general",
        "after typing again",
        &mut [&mut a2, &mut bob],
        &mut [&mut vic],
    );
    send_cmd(&mut a2, &typing());
    v2_marker(
        &mut a2,
        "alice",
        "general",
        "after typing in tab 2",
        &mut [&mut a1, &mut bob],
        &mut [&mut vic],
    );
    assert!(
        start.elapsed() < INTERVAL,
        "the machine took {:?}, longer than the typing interval, so this proves nothing",
        start.elapsed()
    );

    // bob's own throttle is his: both of alice's tabs see him, he and vic do not.
    send_cmd(&mut bob, &typing());
    let bob_typing = json!({"type": "typing", "client_id": "bob", "room": "general"});
    assert_eq!(recv(&mut a1), bob_typing);
    assert_eq!(recv(&mut a2), bob_typing);
    v2_marker(
        &mut bob,
        "bob",
        "general",
        "done",
        &mut [&mut a1, &mut a2],
        &mut [&mut vic],
    );
}

// ---------------------------------------------------------------------------------------------
// 9. Direct messages
// ---------------------------------------------------------------------------------------------

#[test]
fn direct_messages_reach_the_recipient_and_the_sender_tabs_only() {
    let server = TestServer::start();
    let (mut a1, _) = join_v2(&server, "alice", "", true);
    let (mut a2, _) = join_v2(&server, "alice", "", false);
    let (mut b1, _) = join_v2(&server, "bob", "", true);
    for a in [&mut a1, &mut a2] {
        expect_join(a, "bob", "general");
    }
    let (mut b2, _) = join_v2(&server, "bob", "", false);
    let (mut carol, _) = join_v2(&server, "carol", "", true);
    for v2 in [&mut a1, &mut a2, &mut b1, &mut b2] {
        expect_join(v2, "carol", "general");
    }
    let mut vic = join_v1(&server, "vic", "");
    for v2 in [&mut a1, &mut a2, &mut b1, &mut b2, &mut carol] {
        expect_join(v2, "vic", "general");
    }
    // bob also has a v1 tab, which hears nothing of direct messages.
    let mut bv1 = join_v1(&server, "bob", "");
    v1::expect_join(&mut vic, "bob");

    send_cmd(&mut a1, &direct("bob", "psst"));
    let d = json!({"type": "direct", "from": "alice", "to": "bob", "message": "psst", "room": "general"});
    for c in [&mut b1, &mut b2, &mut a1, &mut a2] {
        assert_eq!(recv(c), d);
    }
    v2_marker(
        &mut carol,
        "carol",
        "general",
        "carol saw nothing",
        &mut [&mut a1, &mut a2, &mut b1, &mut b2],
        &mut [&mut vic, &mut bv1],
    );

    // Unknown recipients: nobody by that name, a v1-only user, another case. The error goes to
    // the sending connection only.
    for to in ["zed", "vic", "Bob", "bob "] {
        send_cmd(&mut a1, &direct(to, "hello?"));
        expect_error(&mut a1, "alice", "unknown_recipient");
    }
    v2_marker(
        &mut a1,
        "alice",
        "general",
        "errors were mine only",
        &mut [&mut a2, &mut b1, &mut b2, &mut carol],
        &mut [&mut vic, &mut bv1],
    );

    // To oneself: each of one's v2 tabs gets it once.
    send_cmd(&mut a2, &direct("alice", "note to self"));
    let d = json!({"type": "direct", "from": "alice", "to": "alice", "message": "note to self", "room": "general"});
    assert_eq!(recv(&mut a1), d);
    assert_eq!(recv(&mut a2), d);
    // And back from bob's second tab.
    send_cmd(&mut b2, &direct("alice", "got it"));
    let d = json!({"type": "direct", "from": "bob", "to": "alice", "message": "got it", "room": "general"});
    for c in [&mut a1, &mut a2, &mut b1, &mut b2] {
        assert_eq!(recv(c), d);
    }
    v2_marker(
        &mut carol,
        "carol",
        "general",
        "still nothing",
        &mut [&mut a1, &mut a2, &mut b1, &mut b2],
        &mut [&mut vic, &mut bv1],
    );
}

// ---------------------------------------------------------------------------------------------
// 10. Acks and retries
// ---------------------------------------------------------------------------------------------

#[test]
fn acks_carry_the_id_and_retries_are_not_broadcast_twice() {
    let server = TestServer::start();
    let (mut a1, _) = join_v2(&server, "alice", "", true);
    let (mut a2, _) = join_v2(&server, "alice", "", false);
    let (mut bob, _) = join_v2(&server, "bob", "", true);
    for a in [&mut a1, &mut a2] {
        expect_join(a, "bob", "general");
    }
    let mut vic = join_v1(&server, "vic", "");
    for v2 in [&mut a1, &mut a2, &mut bob] {
        expect_join(v2, "vic", "general");
    }

    send_cmd(&mut a1, &message_with_id("hello", "c-1"));
    v1::expect_message(&mut vic, "alice", "hello");
    let m1 = msg_key(1, "general", "alice", "hello", "c-1");
    for c in [&mut a1, &mut a2, &mut bob] {
        assert_eq!(recv(c), m1);
    }
    let ack1 = json!({"type": "ack", "client_msg_id": "c-1", "id": 1});
    assert_eq!(recv(&mut a1), ack1);

    // Retries, from the same tab and from the other one (even with another text): acked with
    // the original id, to the retrying connection only, and not broadcast.
    send_cmd(&mut a1, &message_with_id("hello", "c-1"));
    assert_eq!(recv(&mut a1), ack1);
    send_cmd(&mut a2, &message_with_id("hello, again?", "c-1"));
    assert_eq!(recv(&mut a2), ack1);
    v2_marker(
        &mut bob,
        "bob",
        "general",
        "one hello only",
        &mut [&mut a1, &mut a2],
        &mut [&mut vic],
    );

    // alice goes away altogether and comes back: her message is in the history, with its
    // client_msg_id, and a retry is still acknowledged with the original id.
    close(a1);
    v1::expect_leave(&mut vic, "alice");
    close(a2);
    v1::expect_leave(&mut vic, "alice");
    expect_leave(&mut bob, "alice", "general");
    let (mut a3, g) = join_v2(&server, "alice", "", true);
    assert_eq!(g.messages()[0], m1);
    expect_join(&mut bob, "alice", "general");
    v1::expect_join(&mut vic, "alice");
    send_cmd(&mut a3, &message_with_id("hello", "c-1"));
    assert_eq!(recv(&mut a3), ack1);

    // Another user's c-1 is another message.
    send_cmd(&mut bob, &message_with_id("mine", "c-1"));
    v1::expect_message(&mut vic, "bob", "mine");
    let m3 = msg_key(3, "general", "bob", "mine", "c-1");
    assert_eq!(recv(&mut a3), m3);
    assert_eq!(recv(&mut bob), m3);
    assert_eq!(
        recv(&mut bob),
        json!({"type": "ack", "client_msg_id": "c-1", "id": 3})
    );

    // No client_msg_id, or null: no ack (the sender's next frame is its next message).
    send_cmd(
        &mut a3,
        &json!({"type": "message", "message": "no ack", "client_msg_id": null}),
    );
    v1::expect_message(&mut vic, "alice", "no ack");
    for c in [&mut a3, &mut bob] {
        assert_eq!(recv(c), msg(4, "general", "alice", "no ack"));
    }
    v2_marker(
        &mut a3,
        "alice",
        "general",
        "end",
        &mut [&mut bob],
        &mut [&mut vic],
    );
}

// ---------------------------------------------------------------------------------------------
// 11. Malformed commands
// ---------------------------------------------------------------------------------------------

#[test]
fn malformed_commands_get_bad_command_and_the_connection_stays_open() {
    let server = TestServer::start();
    let (mut alice, _) = join_v2(&server, "alice", "", true);
    let (mut bob, _) = join_v2(&server, "bob", "", true);
    expect_join(&mut alice, "bob", "general");

    let not_object = Some("malformed command: not a JSON object");
    let key65 =
        json!({"type": "message", "message": "x", "client_msg_id": "k".repeat(65)}).to_string();
    let cases: Vec<(&str, Option<&str>)> = vec![
        ("hello", None),
        (r#"{"type":"message","message":"x""#, None),
        ("[1,2]", not_object),
        (r#"["message","hi"]"#, not_object),
        (r#""a string""#, not_object),
        ("null", not_object),
        ("42", not_object),
        ("{}", None),
        (r#"{"message":"hi"}"#, None),
        (
            r#"{"type":"dance"}"#,
            Some(r#"unknown command type "dance""#),
        ),
        (r#"{"type":7}"#, None),
        (r#"{"type":"message"}"#, None),
        (r#"{"type":"message","message":5}"#, None),
        (r#"{"type":"message","message":null}"#, None),
        (&key65, None),
        (
            r#"{"type":"message","message":"x","client_msg_id":""}"#,
            None,
        ),
        (
            r#"{"type":"message","message":"x","client_msg_id":17}"#,
            None,
        ),
        (r#"{"type":"direct","message":"x"}"#, None),
        (r#"{"type":"direct","to":7,"message":"x"}"#, None),
        (r#"{"type":"direct","to":"bob"}"#, None),
    ];
    for (text, explanation) in cases {
        send_text(&mut alice, text);
        let got = expect_error(&mut alice, "alice", "bad_command");
        if let Some(explanation) = explanation {
            assert_eq!(got, explanation, "for {text:?}");
        }
    }

    // Still open, still chatting: a 64-character client_msg_id is fine, so are extra fields.
    let key64 = "k".repeat(64);
    send_cmd(&mut alice, &message_with_id("sixty-four", &key64));
    let m = msg_key(1, "general", "alice", "sixty-four", &key64);
    assert_eq!(recv(&mut alice), m);
    assert_eq!(recv(&mut bob), m);
    assert_eq!(
        recv(&mut alice),
        json!({"type": "ack", "client_msg_id": key64, "id": 1})
    );
    send_cmd(
        &mut alice,
        &json!({"type": "message", "message": "extra fields", "color": "red", "to": "nobody"}),
    );
    assert_eq!(recv(&mut alice), msg(2, "general", "alice", "extra fields"));
    assert_eq!(recv(&mut bob), msg(2, "general", "alice", "extra fields"));
    v2_marker(
        &mut bob,
        "bob",
        "general",
        "bob saw no errors",
        &mut [&mut alice],
        &mut [],
    );
}

// ---------------------------------------------------------------------------------------------
// 12. Rate limit
// ---------------------------------------------------------------------------------------------

#[test]
fn the_rate_limit_counts_messages_and_direct_messages_only() {
    // Default limits: a burst of 20, then 5 per second. Everything below is sent in one write,
    // so at most a few milliseconds pass (a token takes 200 ms to come back).
    let server = TestServer::start();
    let (mut alice, _) = join_v2(&server, "alice", "", true);
    let (mut bob, _) = join_v2(&server, "bob", "", true);
    expect_join(&mut alice, "bob", "general");

    let mut commands: Vec<String> = Vec::new();
    // Free: malformed commands and typing.
    commands.extend((0..5).map(|n| format!("not json {n}")));
    commands.extend((0..5).map(|_| typing().to_string()));
    // The burst: 10 messages (the first with a client_msg_id) and 10 direct messages.
    commands.push(message_with_id("m0", "k-0").to_string());
    commands.extend((1..10).map(|n| message(&format!("m{n}")).to_string()));
    commands.extend((0..10).map(|n| direct("bob", &format!("d{n}")).to_string()));
    // Refused: a message, a direct message, one to nobody (checked before the recipient lookup)
    // and a retry of k-0 (checked before the dedup).
    commands.push(message("over").to_string());
    commands.push(direct("bob", "over").to_string());
    commands.push(direct("nobody", "over").to_string());
    commands.push(message_with_id("m0", "k-0").to_string());
    // Malformed commands are still answered as such.
    commands.push("not json either".to_owned());
    send_all(&mut alice, &commands);

    for _ in 0..5 {
        expect_error(&mut alice, "alice", "bad_command");
    }
    assert_eq!(
        recv(&mut bob),
        json!({"type": "typing", "client_id": "alice", "room": "general"})
    );
    let m0 = msg_key(1, "general", "alice", "m0", "k-0");
    assert_eq!(recv(&mut alice), m0);
    assert_eq!(recv(&mut bob), m0);
    assert_eq!(
        recv(&mut alice),
        json!({"type": "ack", "client_msg_id": "k-0", "id": 1})
    );
    for n in 1..10u64 {
        let m = msg(n + 1, "general", "alice", &format!("m{n}"));
        assert_eq!(recv(&mut alice), m);
        assert_eq!(recv(&mut bob), m);
    }
    for n in 0..10 {
        let d = json!({"type": "direct", "from": "alice", "to": "bob", "message": format!("d{n}"), "room": "general"});
        assert_eq!(recv(&mut bob), d);
        assert_eq!(recv(&mut alice), d);
    }
    for _ in 0..4 {
        let text = expect_error(&mut alice, "alice", "rate_limited");
        assert_eq!(
            text,
            "rate limit exceeded: at most 5 messages per second (burst 20)"
        );
    }
    expect_error(&mut alice, "alice", "bad_command");

    // None of the refused ones went anywhere; bob, with his own bucket, still chats.
    v2_marker(
        &mut bob,
        "bob",
        "general",
        "bob's turn",
        &mut [&mut alice],
        &mut [],
    );
}
