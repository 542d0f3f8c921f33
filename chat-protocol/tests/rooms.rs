//! Rooms, the two protocols side by side, presence per user, and the room limit.

mod harness;

use std::time::Duration;

use chat_protocol::{ClientId, CloseReason, Config, Output, Protocol, RoomName};
use harness::{frame, send, sends, v2, Harness};

const T0: &str = "2026-11-21T20:52:58.123Z";
const EPOCH: u64 = 1_795_294_378_000;

fn config() -> Config {
    Config::default().with_epoch(EPOCH)
}

fn empty_history(room: &str) -> String {
    v2::history(room, EPOCH, false, &[], T0)
}

fn members(h: &Harness, room: &str) -> Vec<String> {
    let room = RoomName::parse(room).expect("valid");
    h.server.members(&room).map(str::to_owned).collect()
}

#[test]
fn rooms_isolate_traffic() {
    let mut h = Harness::with_config(config());
    h.connect(1, "alice");
    h.connect_with(2, "bob", "rust", Protocol::V1, None);
    h.connect_v2(3, "carol", "rust");
    assert_eq!(
        h.drain(),
        [
            send(
                1,
                &frame("connection", "alice", "alice joined the chat", T0)
            ),
            send(2, &frame("connection", "bob", "bob joined the chat", T0)),
            send(
                3,
                &v2::welcome("carol", "rust", EPOCH, &["bob", "carol"], 100, T0)
            ),
            send(3, &empty_history("rust")),
            send(
                2,
                &frame("connection", "carol", "carol joined the chat", T0)
            ),
            send(3, &v2::connection("carol", "rust", T0)),
        ]
    );

    h.text(1, "in general");
    assert_eq!(
        h.drain(),
        sends(&[1], &frame("message", "alice", "in general", T0))
    );
    h.text(2, "in rust");
    assert_eq!(
        h.drain(),
        [
            send(2, &frame("message", "bob", "in rust", T0)),
            send(3, &v2::message(1, "rust", "bob", "in rust", None, T0)),
        ]
    );
    // Ids are per room: general's first message is 1 too.
    h.connect_v2(4, "dave", "general");
    let out = h.drain();
    assert_eq!(
        out[1],
        send(
            4,
            &v2::history(
                "general",
                EPOCH,
                false,
                &[v2::message(1, "general", "alice", "in general", None, T0)],
                T0
            )
        )
    );

    h.disconnect(3);
    assert_eq!(
        h.drain(),
        sends(
            &[2],
            &frame("disconnection", "carol", "carol left the chat", T0)
        )
    );
    assert_eq!(members(&h, "rust"), ["bob"]);
    assert_eq!(members(&h, "general"), ["alice", "dave"]);
    assert_eq!(members(&h, "nowhere"), Vec::<String>::new());
    assert_eq!(h.server.room_count(), 2);
    assert_eq!(
        h.server.room(ClientId(2)).map(RoomName::as_str),
        Some("rust")
    );
    assert_eq!(h.server.protocol(ClientId(4)), Some(Protocol::V2));
}

/// A v1 client sees exactly the tutorial's frames, a v2 client the rich ones, in one room.
#[test]
fn v1_and_v2_side_by_side() {
    let mut h = Harness::with_config(config());
    h.connect(1, "alice");
    h.drain();
    h.connect_v2(2, "bob", "general");
    assert_eq!(
        h.drain(),
        [
            send(
                2,
                &v2::welcome("bob", "general", EPOCH, &["alice", "bob"], 100, T0)
            ),
            send(2, &empty_history("general")),
            send(1, &frame("connection", "bob", "bob joined the chat", T0)),
            send(2, &v2::connection("bob", "general", T0)),
        ]
    );

    h.text(1, "hi");
    assert_eq!(
        h.drain(),
        [
            send(1, &frame("message", "alice", "hi", T0)),
            send(2, &v2::message(1, "general", "alice", "hi", None, T0)),
        ]
    );

    h.text(2, &v2::say("yo", Some("c-1")));
    assert_eq!(
        h.drain(),
        [
            send(1, &frame("message", "bob", "yo", T0)),
            send(2, &v2::message(2, "general", "bob", "yo", Some("c-1"), T0)),
            send(2, &v2::ack("c-1", 2, T0)),
        ]
    );

    // v1 text is never parsed, even when it looks like a command.
    h.text(1, r#"{"type":"typing"}"#);
    assert_eq!(
        h.drain(),
        [
            send(1, &frame("message", "alice", r#"{"type":"typing"}"#, T0)),
            send(
                2,
                &v2::message(3, "general", "alice", r#"{"type":"typing"}"#, None, T0)
            ),
        ]
    );

    h.disconnect(2);
    assert_eq!(
        h.drain(),
        sends(
            &[1],
            &frame("disconnection", "bob", "bob left the chat", T0)
        )
    );
    h.connect_v2(2, "bob", "general");
    h.drain();
    h.disconnect(1);
    assert_eq!(
        h.drain(),
        sends(&[2], &v2::disconnection("alice", "general", T0))
    );
}

/// Each broadcast is encoded once per protocol: one buffer for every v1 recipient, one for
/// every v2 recipient.
#[test]
fn one_payload_per_protocol() {
    let mut h = Harness::new();
    for id in 0..20 {
        let protocol = if id % 2 == 0 {
            Protocol::V1
        } else {
            Protocol::V2
        };
        h.connect_with(id, &format!("u{id}"), "general", protocol, None);
    }
    h.drain();
    h.text(0, "shared");
    let out = h.drain();
    let buffers: Vec<(u64, *const u8)> = out
        .iter()
        .map(|o| match o {
            Output::Send { to, payload } => (to.0, payload.as_str().as_ptr()),
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    let order: Vec<u64> = buffers.iter().map(|b| b.0).collect();
    let expected: Vec<u64> = (0..20).step_by(2).chain((1..20).step_by(2)).collect();
    assert_eq!(
        order, expected,
        "v1 recipients first, then v2, each in id order"
    );
    assert!(buffers[..10].iter().all(|b| b.1 == buffers[0].1));
    assert!(buffers[10..].iter().all(|b| b.1 == buffers[10].1));
    assert_ne!(buffers[0].1, buffers[10].1);
}

/// A user with several tabs joins once and leaves once for v2; v1 observers still hear every
/// connection.
#[test]
fn multi_tab_presence() {
    let mut h = Harness::with_config(config());
    h.connect(1, "carol");
    h.connect_v2(2, "bob", "general");
    h.drain();

    h.connect_v2(3, "alice", "general");
    assert_eq!(
        h.drain(),
        [
            send(
                3,
                &v2::welcome(
                    "alice",
                    "general",
                    EPOCH,
                    &["alice", "bob", "carol"],
                    100,
                    T0
                )
            ),
            send(3, &empty_history("general")),
            send(
                1,
                &frame("connection", "alice", "alice joined the chat", T0)
            ),
            send(2, &v2::connection("alice", "general", T0)),
            send(3, &v2::connection("alice", "general", T0)),
        ]
    );
    h.connect_v2(4, "alice", "general");
    assert_eq!(
        h.drain(),
        [
            send(
                4,
                &v2::welcome(
                    "alice",
                    "general",
                    EPOCH,
                    &["alice", "bob", "carol"],
                    100,
                    T0
                )
            ),
            send(4, &empty_history("general")),
            send(
                1,
                &frame("connection", "alice", "alice joined the chat", T0)
            ),
        ],
        "the second tab is not announced to v2 clients"
    );
    // A v1 tab of the same user is the same user too.
    h.connect(5, "alice");
    assert_eq!(
        h.drain(),
        sends(
            &[1, 5],
            &frame("connection", "alice", "alice joined the chat", T0)
        )
    );
    assert_eq!(members(&h, "general"), ["alice", "bob", "carol"]);

    h.disconnect(3);
    assert_eq!(
        h.drain(),
        sends(
            &[1, 5],
            &frame("disconnection", "alice", "alice left the chat", T0)
        )
    );
    h.disconnect(5);
    assert_eq!(
        h.drain(),
        sends(
            &[1],
            &frame("disconnection", "alice", "alice left the chat", T0)
        )
    );
    h.disconnect(4);
    assert_eq!(
        h.drain(),
        [
            send(
                1,
                &frame("disconnection", "alice", "alice left the chat", T0)
            ),
            send(2, &v2::disconnection("alice", "general", T0)),
        ]
    );
    assert_eq!(members(&h, "general"), ["bob", "carol"]);
}

/// A tab closed by the server still counts for presence until its Disconnect, but hears
/// nothing more.
#[test]
fn a_closing_tab_keeps_its_user_present_until_it_is_gone() {
    let config = config().with_idle_timeout(Some(Duration::from_secs(60)));
    let mut h = Harness::with_config(config);
    h.connect_v2(1, "alice", "general");
    h.connect_v2(2, "bob", "general");
    h.advance(Duration::from_secs(30));
    h.activity(2);
    h.advance(Duration::from_secs(30));
    h.timeout();
    h.drain();
    // Alice is closed for idleness but not gone yet: still a member, not a recipient.
    assert_eq!(members(&h, "general"), ["alice", "bob"]);
    h.text(2, &v2::say("hi", None));
    let t = "2026-11-21T20:53:58.123Z";
    assert_eq!(
        h.drain(),
        sends(&[2], &v2::message(1, "general", "bob", "hi", None, t))
    );
    h.disconnect(1);
    assert_eq!(
        h.drain(),
        sends(&[2], &v2::disconnection("alice", "general", t))
    );
}

#[test]
fn empty_rooms_are_kept_until_a_new_room_needs_the_place() {
    let config = config().with_max_rooms(2).with_history(10);
    let mut h = Harness::with_config(config);
    h.connect_v2(1, "alice", "a");
    h.text(1, &v2::say("in a", None));
    h.connect_v2(2, "bob", "b");
    h.text(2, &v2::say("in b", None));
    h.drain();

    // Both rooms in use: a third is refused, before any frame.
    h.connect_v2(3, "carol", "c");
    assert_eq!(
        h.drain(),
        [Output::Close {
            client: ClientId(3),
            reason: CloseReason::TooManyRooms,
        }]
    );
    assert_eq!(h.server.room_count(), 2);
    assert_eq!(h.server.client_count(), 3);
    assert_eq!(h.server.room(ClientId(3)), None);
    // The refused client is never addressed, and its leaving announces nothing.
    h.text(3, &v2::say("hello?", None));
    h.activity(3);
    h.advance(Duration::from_secs(600));
    h.timeout();
    assert!(h.drain().iter().all(|o| !matches!(
        o,
        Output::Send {
            to: ClientId(3),
            ..
        } | Output::Ping { to: ClientId(3) }
    )),);
    h.disconnect(3);
    assert_eq!(h.drain(), vec![]);

    // Everyone leaves, a first, then b: both rooms are kept, with their history.
    h.disconnect(1);
    h.disconnect(2);
    h.drain();
    assert_eq!(h.server.room_count(), 2);
    // A new room takes the place of the one empty the longest (a); b keeps its history.
    let t = "2026-11-21T21:02:58.123Z";
    h.connect_v2(3, "carol", "c");
    h.connect_v2(4, "dave", "b");
    let out = h.drain();
    assert_eq!(
        out[..2],
        [
            send(3, &v2::welcome("carol", "c", EPOCH, &["carol"], 10, t)),
            send(3, &v2::history("c", EPOCH, false, &[], t)),
        ]
    );
    assert_eq!(
        out[3..5],
        [
            send(4, &v2::welcome("dave", "b", EPOCH, &["dave"], 10, t)),
            send(
                4,
                &v2::history(
                    "b",
                    EPOCH,
                    false,
                    &[v2::message(1, "b", "bob", "in b", None, T0)],
                    t
                )
            ),
        ]
    );
    assert_eq!(h.server.room_count(), 2);

    // a was forgotten; both rooms are in use again, so a cannot come back yet.
    h.connect_v2(5, "erin", "a");
    assert_eq!(
        h.drain(),
        [Output::Close {
            client: ClientId(5),
            reason: CloseReason::TooManyRooms,
        }]
    );
    h.disconnect(5);
    h.disconnect(3);
    h.drain();
    // Now it can, taking c's place: empty, and its ids go on after every forgotten room's,
    // so no (epoch, id) pair ever names two messages.
    h.connect_v2(5, "erin", "a");
    h.text(5, &v2::say("a again", None));
    assert_eq!(
        h.drain(),
        [
            send(5, &v2::welcome("erin", "a", EPOCH, &["erin"], 10, t)),
            send(5, &v2::history("a", EPOCH, false, &[], t)),
            send(5, &v2::connection("erin", "a", t)),
            send(5, &v2::message(2, "a", "erin", "a again", None, t)),
        ]
    );
}

/// A limit of 0 rooms would refuse everyone: it is taken as 1.
#[test]
fn zero_max_rooms_means_one() {
    let mut h = Harness::with_config(config().with_max_rooms(0));
    h.connect(1, "alice");
    h.connect_with(2, "bob", "other", Protocol::V1, None);
    assert_eq!(
        h.drain(),
        [
            send(
                1,
                &frame("connection", "alice", "alice joined the chat", T0)
            ),
            Output::Close {
                client: ClientId(2),
                reason: CloseReason::TooManyRooms,
            },
        ]
    );
}

#[test]
fn room_names_parse_or_say_why_not() {
    let cases: &[(&str, Result<&str, &str>)] = &[
        ("general", Ok("general")),
        ("General", Ok("general")),
        ("RUST-lang_2", Ok("rust-lang_2")),
        ("a", Ok("a")),
        ("-", Ok("-")),
        ("0123456789", Ok("0123456789")),
        (&"x".repeat(32), Ok(&"x".repeat(32))),
        ("", Err("room name is empty")),
        (
            &"x".repeat(33),
            Err("room name is longer than 32 characters"),
        ),
        (
            "two words",
            Err("room name may only contain a-z, 0-9, - and _"),
        ),
        (
            "dot.ted",
            Err("room name may only contain a-z, 0-9, - and _"),
        ),
        (
            "slash/",
            Err("room name may only contain a-z, 0-9, - and _"),
        ),
        ("%20", Err("room name may only contain a-z, 0-9, - and _")),
        ("café", Err("room name may only contain a-z, 0-9, - and _")),
        (
            "ＡＢＣ",
            Err("room name may only contain a-z, 0-9, - and _"),
        ),
        ("\u{0}", Err("room name may only contain a-z, 0-9, - and _")),
        (
            &"é".repeat(40),
            Err("room name may only contain a-z, 0-9, - and _"),
        ),
    ];
    for (input, expected) in cases {
        let got = RoomName::parse(input);
        assert_eq!(
            got.as_ref().map(RoomName::as_str),
            expected.as_ref().map(|s| *s),
            "{input:?}"
        );
        assert_eq!(input.parse::<RoomName>(), got, "FromStr agrees");
    }
    assert_eq!(RoomName::default().as_str(), "general");
    assert_eq!(RoomName::default().to_string(), "general");
}
