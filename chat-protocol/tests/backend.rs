//! The server API for backends in the core: `Input::Publish` posts into a room as the system
//! (the empty name) or as a named user, exactly like a member's message, and is answered with
//! `Output::Published` (the id, or why not); `Input::Kick` and `Input::Ban` do what an admin's
//! commands do, without an admin, and are answered with `Output::Dismissed` (how many
//! connections); `ChatServer::rooms` lists the rooms in memory.

mod harness;

use std::time::Duration;

use chat_protocol::{
    ClientId, CloseReason, Config, Input, Output, Payload, PublishRefused, Record, RoomInfo,
    StoreTicket, SYSTEM_USER,
};
use harness::{frame, room, send, sends, v2, Harness};

const TS: &str = "2026-11-21T20:52:58.123Z";

fn config() -> Config {
    Config::default()
        .with_heartbeat_interval(None)
        .with_idle_timeout(None)
}

fn publish(h: &mut Harness, to: &str, user: Option<&str>, text: &str) {
    h.input(Input::Publish {
        room: room(to),
        user: user.map(str::to_owned),
        text: text.to_owned(),
    });
}

fn published(to: &str, result: Result<u64, PublishRefused>) -> Output {
    Output::Published {
        room: room(to),
        result,
    }
}

fn dismissed(user: &str, reason: CloseReason, connections: usize) -> Output {
    Output::Dismissed {
        user: user.to_owned(),
        reason,
        connections,
    }
}

fn close_with(id: u64, reason: CloseReason, text: &str) -> Output {
    Output::CloseWith {
        client: ClientId(id),
        reason,
        text: text.to_owned(),
    }
}

fn info(name: &str, members: &[&str], last_id: u64) -> RoomInfo {
    RoomInfo {
        name: room(name),
        members: members.iter().map(|m| (*m).to_owned()).collect(),
        last_id,
    }
}

/// In `general`: alice (v1, 1), bob (v2, two tabs: 2 and 3); in `lobby`: carol (v2, 4).
/// Everything drained.
fn mixed_room(config: Config) -> Harness {
    let mut h = Harness::with_config(config);
    h.connect(1, "alice");
    h.connect_v2(2, "bob", "general");
    h.connect_v2(3, "bob", "general");
    h.connect_v2(4, "carol", "lobby");
    h.drain();
    h
}

#[test]
fn the_system_publishes_as_the_empty_name_that_no_client_can_have() {
    assert_eq!(SYSTEM_USER, "");
    let mut h = mixed_room(config());
    publish(&mut h, "general", None, "maintenance at 22:00");
    let v1 = frame("message", "", "maintenance at 22:00", TS);
    let v2 = v2::message(1, "general", "", "maintenance at 22:00", None, TS);
    let mut expected = sends(&[1], &v1);
    expected.extend(sends(&[2, 3], &v2));
    expected.push(published("general", Ok(1)));
    assert_eq!(h.drain(), expected);
    // Byte for byte the tutorial's message frame, with an empty sender.
    assert_eq!(
        v1,
        r#"{"type":"message","client_id":"","message":"maintenance at 22:00","timestamp":"2026-11-21T20:52:58.123Z"}"#
    );

    // It is history like any message: a joiner sees it, and ids go on after it.
    h.connect_v2(5, "dave", "general");
    let out = h.drain();
    assert_eq!(
        out[1],
        send(5, &v2::history("general", 0, false, &[v2], TS))
    );
    h.text(2, &v2::say("ok", None));
    let mut expected = sends(&[1], &frame("message", "bob", "ok", TS));
    expected.extend(sends(
        &[2, 3, 5],
        &v2::message(2, "general", "bob", "ok", None, TS),
    ));
    assert_eq!(h.drain(), expected);
}

#[test]
fn a_named_user_publishes_like_a_member_whether_connected_or_not() {
    let mut h = mixed_room(config());
    h.text(1, "hi");
    h.drain();
    h.advance(Duration::from_secs(1));
    let ts = "2026-11-21T20:52:59.123Z";
    // Not connected anywhere.
    publish(&mut h, "general", Some("billing-bot"), "invoice #7 paid");
    let mut expected = sends(
        &[1],
        &frame("message", "billing-bot", "invoice #7 paid", ts),
    );
    expected.extend(sends(
        &[2, 3],
        &v2::message(2, "general", "billing-bot", "invoice #7 paid", None, ts),
    ));
    expected.push(published("general", Ok(2)));
    assert_eq!(h.drain(), expected);
    // A member of the room, from the backend: the same frame as its own message would be.
    publish(&mut h, "general", Some("bob"), "posted for bob");
    let mut expected = sends(&[1], &frame("message", "bob", "posted for bob", ts));
    expected.extend(sends(
        &[2, 3],
        &v2::message(3, "general", "bob", "posted for bob", None, ts),
    ));
    expected.push(published("general", Ok(3)));
    assert_eq!(h.drain(), expected);
    // Another room hears nothing of it.
    publish(
        &mut h,
        "lobby",
        Some("x".repeat(32).as_str()),
        "longest name",
    );
    assert_eq!(
        h.drain(),
        [
            send(
                4,
                &v2::message(1, "lobby", &"x".repeat(32), "longest name", None, ts)
            ),
            published("lobby", Ok(1)),
        ]
    );
}

#[test]
fn a_durable_publish_is_stored_and_nobody_waits_for_an_ack() {
    let mut h = mixed_room(config().with_epoch(7).with_durable(true));
    publish(&mut h, "general", None, "stored");
    let mut expected = sends(&[1], &frame("message", "", "stored", TS));
    expected.extend(sends(
        &[2, 3],
        &v2::message(1, "general", "", "stored", None, TS),
    ));
    expected.push(Output::Store(Record {
        ticket: StoreTicket(0),
        room: room("general"),
        epoch: 7,
        id: 1,
        user: "".into(),
        text: Payload::from("stored"),
        client_msg_id: None,
        timestamp: harness::start_wall(),
        to: None,
    }));
    expected.push(published("general", Ok(1)));
    assert_eq!(h.drain(), expected);
    assert_eq!(h.server.awaiting_storage(), 0);
    // Storage's answer concerns nobody.
    h.stored(&[0]);
    assert_eq!(h.drain(), []);
    // Into a room nobody is in: stored all the same.
    publish(&mut h, "news", Some("editor"), "extra");
    assert_eq!(
        h.drain(),
        [
            Output::Store(Record {
                ticket: StoreTicket(1),
                room: room("news"),
                epoch: 7,
                id: 1,
                user: "editor".into(),
                text: Payload::from("extra"),
                client_msg_id: None,
                timestamp: harness::start_wall(),
                to: None,
            }),
            published("news", Ok(1)),
        ]
    );
}

#[test]
fn a_publish_makes_a_missing_room_which_stays_until_forgotten() {
    let mut h = Harness::with_config(config().with_max_rooms(2));
    h.connect_v2(1, "alice", "general");
    h.drain();
    publish(&mut h, "news", None, "first");
    assert_eq!(h.drain(), [published("news", Ok(1))]);
    publish(&mut h, "news", None, "second");
    assert_eq!(h.drain(), [published("news", Ok(2))]);
    assert_eq!(
        h.server.rooms(),
        [info("general", &["alice"], 0), info("news", &[], 2)]
    );
    // A joiner finds what was published before anyone was there.
    h.connect_v2(2, "bob", "news");
    let out = h.drain();
    assert_eq!(
        out[1],
        send(
            2,
            &v2::history(
                "news",
                0,
                false,
                &[
                    v2::message(1, "news", "", "first", None, TS),
                    v2::message(2, "news", "", "second", None, TS),
                ],
                TS
            )
        )
    );
    h.disconnect(2);
    h.drain();
    // Nobody in it: a new room needs its place, and it is forgotten; ids are never reused.
    h.connect_v2(3, "carol", "lobby");
    h.drain();
    assert_eq!(
        h.server.rooms(),
        [info("general", &["alice"], 0), info("lobby", &["carol"], 2)]
    );
}

#[test]
fn a_publish_into_a_new_room_is_refused_when_every_room_is_in_use() {
    let mut h = Harness::with_config(config().with_max_rooms(1));
    h.connect_v2(1, "alice", "general");
    h.drain();
    publish(&mut h, "news", None, "nowhere to go");
    assert_eq!(h.drain(), [published("news", Err(PublishRefused::NoRoom))]);
    assert_eq!(h.server.rooms(), [info("general", &["alice"], 0)]);
    // The existing room takes it.
    publish(&mut h, "general", None, "here");
    assert_eq!(
        h.drain(),
        [
            send(1, &v2::message(1, "general", "", "here", None, TS)),
            published("general", Ok(1)),
        ]
    );
    // Once the room is empty, it is forgettable, and a publish may take its place.
    h.disconnect(1);
    publish(&mut h, "news", None, "now there is room");
    assert_eq!(h.drain(), [published("news", Ok(2))]);
    assert_eq!(h.server.rooms(), [info("news", &[], 2)]);
}

#[test]
fn a_user_name_no_client_could_have_is_refused_and_nothing_happens() {
    let mut h = mixed_room(config());
    let too_long = "x".repeat(33);
    for user in ["", " bob", "bob ", "a\nb", "nul\0", too_long.as_str()] {
        publish(&mut h, "general", Some(user), "spoofed");
        assert_eq!(
            h.drain(),
            [published("general", Err(PublishRefused::BadUser))],
            "{user:?}"
        );
        // Not even a room is made for it.
        publish(&mut h, "elsewhere", Some(user), "spoofed");
        assert_eq!(
            h.drain(),
            [published("elsewhere", Err(PublishRefused::BadUser))],
            "{user:?}"
        );
    }
    assert_eq!(
        h.server.rooms(),
        [
            info("general", &["alice", "bob"], 0),
            info("lobby", &["carol"], 0)
        ]
    );
    // The next message still gets id 1.
    publish(&mut h, "lobby", Some("ok"), "fine");
    assert_eq!(
        h.drain(),
        [
            send(4, &v2::message(1, "lobby", "ok", "fine", None, TS)),
            published("lobby", Ok(1)),
        ]
    );
}

#[test]
fn a_backend_kick_closes_every_tab_with_4003_and_says_how_many() {
    let mut h = mixed_room(config());
    h.connect_v2(5, "bob", "lobby");
    h.drain();
    h.input(Input::Kick {
        user: "bob".into(),
        reason: "spamming links".into(),
    });
    let text = "kicked by an admin: spamming links";
    assert_eq!(
        h.drain(),
        [
            close_with(2, CloseReason::Kicked, text),
            close_with(3, CloseReason::Kicked, text),
            close_with(5, CloseReason::Kicked, text),
            dismissed("bob", CloseReason::Kicked, 3),
        ]
    );
    // Closing already: a second kick finds nobody left to close.
    h.input(Input::Kick {
        user: "bob".into(),
        reason: String::new(),
    });
    assert_eq!(h.drain(), [dismissed("bob", CloseReason::Kicked, 0)]);
    // The Disconnects are announced as usual.
    h.disconnect(2);
    h.disconnect(3);
    assert_eq!(
        h.drain(),
        sends(
            &[1, 1],
            &frame("disconnection", "bob", "bob left the chat", TS)
        )
    );
    // Without a reason, the close text is the bare label; a v1 client is kicked the same way.
    h.input(Input::Kick {
        user: "alice".into(),
        reason: String::new(),
    });
    assert_eq!(
        h.drain(),
        [
            close_with(1, CloseReason::Kicked, "kicked by an admin"),
            dismissed("alice", CloseReason::Kicked, 1),
        ]
    );
}

#[test]
fn a_backend_kick_of_a_user_with_no_connection_closes_nothing() {
    let mut h = mixed_room(config());
    h.input(Input::Kick {
        user: "mallory".into(),
        reason: "whatever".into(),
    });
    assert_eq!(h.drain(), [dismissed("mallory", CloseReason::Kicked, 0)]);
    // A long reason is cut to fit a close frame, at a character boundary, as an admin's is.
    h.input(Input::Kick {
        user: "carol".into(),
        reason: "é".repeat(300),
    });
    let text = format!("kicked by an admin: {}", "é".repeat(51));
    assert!(text.len() <= chat_protocol::MAX_CLOSE_TEXT);
    assert_eq!(
        h.drain(),
        [
            close_with(4, CloseReason::Kicked, &text),
            dismissed("carol", CloseReason::Kicked, 1),
        ]
    );
}

#[test]
fn a_backend_ban_keeps_at_most_200_bytes_of_reason_as_an_admins_does() {
    let mut h = mixed_room(config());
    h.input(Input::Ban {
        user: "carol".into(),
        minutes: 1,
        reason: "é".repeat(300),
    });
    let out = h.drain();
    assert_eq!(
        out[0],
        Output::Ban {
            user: "carol".into(),
            until: harness::start_wall() + Duration::from_secs(60),
            reason: format!("{}…", "é".repeat(100)),
        }
    );
    assert_eq!(out[2..], [dismissed("carol", CloseReason::Banned, 1)]);
}

#[test]
fn a_backend_ban_hands_the_driver_the_ban_and_closes_with_4004() {
    let mut h = mixed_room(config());
    h.advance(Duration::from_secs(2));
    h.input(Input::Ban {
        user: "bob".into(),
        minutes: 60,
        reason: "flooding".into(),
    });
    let text = "banned by an admin until 2026-11-21T21:53Z: flooding";
    assert_eq!(
        h.drain(),
        [
            Output::Ban {
                user: "bob".into(),
                until: harness::start_wall() + Duration::from_secs(2 + 3600),
                reason: "flooding".into(),
            },
            close_with(2, CloseReason::Banned, text),
            close_with(3, CloseReason::Banned, text),
            dismissed("bob", CloseReason::Banned, 2),
        ]
    );
    // Nobody connected: banned all the same. Minutes are brought into 1..=a year.
    h.input(Input::Ban {
        user: "mallory".into(),
        minutes: 0,
        reason: String::new(),
    });
    assert_eq!(
        h.drain(),
        [
            Output::Ban {
                user: "mallory".into(),
                until: harness::start_wall() + Duration::from_secs(2 + 60),
                reason: String::new(),
            },
            dismissed("mallory", CloseReason::Banned, 0),
        ]
    );
    h.input(Input::Ban {
        user: "mallory".into(),
        minutes: u32::MAX,
        reason: String::new(),
    });
    assert_eq!(
        h.drain(),
        [
            Output::Ban {
                user: "mallory".into(),
                until: harness::start_wall() + Duration::from_secs(2 + 365 * 24 * 3600),
                reason: String::new(),
            },
            dismissed("mallory", CloseReason::Banned, 0),
        ]
    );
}

#[test]
fn rooms_lists_each_user_once_across_tabs_and_protocols() {
    let mut h = Harness::with_config(config());
    assert_eq!(h.server.rooms(), []);
    h.connect(1, "alice");
    h.connect(2, "alice");
    h.connect_v2(3, "alice", "general");
    h.connect_v2(4, "bob", "general");
    h.connect_v2(5, "bob", "lobby");
    h.connect_v2(6, "carol", "lobby");
    h.connect_v2(7, "Zed", "zoo");
    h.text(1, "one");
    h.text(4, &v2::say("two", None));
    h.drain();
    let listed = h.server.rooms();
    assert_eq!(
        listed,
        [
            info("general", &["alice", "bob"], 2),
            info("lobby", &["bob", "carol"], 0),
            info("zoo", &["Zed"], 0),
        ]
    );
    // Read-only: nothing to do for the driver.
    assert_eq!(h.drain(), []);
    // A user is a member until its last connection leaves, a closing one included.
    h.disconnect(1);
    h.disconnect(2);
    h.input(Input::Kick {
        user: "carol".into(),
        reason: String::new(),
    });
    h.disconnect(7);
    h.drain();
    assert_eq!(
        h.server.rooms(),
        [
            info("general", &["alice", "bob"], 2),
            info("lobby", &["bob", "carol"], 0),
            info("zoo", &[], 0),
        ]
    );
    h.disconnect(6);
    h.disconnect(3);
    h.drain();
    assert_eq!(
        h.server.rooms(),
        [
            info("general", &["bob"], 2),
            info("lobby", &["bob"], 0),
            info("zoo", &[], 0),
        ]
    );
}
