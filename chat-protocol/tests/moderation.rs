//! Moderation in the core: an admin's `kick` closes every connection of a user with 4003 and
//! the reason; `ban` does the same with 4004 and hands the driver an `Output::Ban` to enforce
//! and keep; `delete` marks a message deleted in history and scroll-back, tells the room's v2
//! connections (`deleted`), and, when durable, asks the driver to remove the stored text. A
//! connection not granted admin gets `forbidden`, and nothing happens.

mod harness;

use std::time::Duration;

use chat_protocol::{ClientId, CloseReason, Config, Output, RoomName};
use harness::{frame, q, send, sends, v2, Harness};

const TS: &str = "2026-11-21T20:52:58.123Z";

fn config() -> Config {
    Config::default()
        .with_heartbeat_interval(None)
        .with_idle_timeout(None)
}

fn general() -> RoomName {
    RoomName::parse("general").expect("valid")
}

/// admin (v2, 1, granted) and bob (v2, two tabs: 2 in general, 3 in lobby) connected,
/// everything drained.
fn admin_and_bob(config: Config) -> Harness {
    let mut h = Harness::with_config(config);
    h.connect_v2(1, "admin", "general");
    h.grant_admin(1);
    h.connect_v2(2, "bob", "general");
    h.connect_v2(3, "bob", "lobby");
    h.drain();
    h
}

fn close_with(id: u64, reason: CloseReason, text: &str) -> Output {
    Output::CloseWith {
        client: ClientId(id),
        reason,
        text: text.to_owned(),
    }
}

#[test]
fn a_kick_closes_every_tab_of_the_user_in_every_room_with_4003_and_the_reason() {
    let mut h = admin_and_bob(config());
    h.text(
        1,
        r#"{"type":"kick","user":"bob","reason":"spamming links"}"#,
    );
    let text = "kicked by an admin: spamming links";
    assert_eq!(
        h.drain(),
        [
            close_with(2, CloseReason::Kicked, text),
            close_with(3, CloseReason::Kicked, text),
        ]
    );
    assert_eq!(CloseReason::Kicked.code(), 4003);
    // Closed: bob's tabs are not addressed again, what they send is dropped.
    h.text(1, &v2::say("gone?", None));
    h.text(2, &v2::say("still here", None));
    assert_eq!(
        h.drain(),
        [send(
            1,
            &v2::message(1, "general", "admin", "gone?", None, TS)
        )]
    );
    // The Disconnects announce the departure as usual.
    h.disconnect(2);
    assert_eq!(
        h.drain(),
        [send(1, &v2::disconnection("bob", "general", TS))]
    );
    // A kicked user may come back at once: only a ban keeps it out.
    h.disconnect(3);
    h.connect_v2(4, "bob", "general");
    assert!(!h.drain().is_empty());
}

#[test]
fn a_kick_by_message_id_closes_only_the_tab_that_sent_it() {
    let mut h = admin_and_bob(config());
    h.connect_v2(4, "bob", "general"); // bob's second tab in general
    h.drain();
    h.text(2, &v2::say("from tab 2", None));
    h.text(4, &v2::say("from tab 4", None));
    h.drain();
    h.text(1, r#"{"type":"kick","id":2,"reason":"that one"}"#);
    assert_eq!(
        h.drain(),
        [close_with(
            4,
            CloseReason::Kicked,
            "kicked by an admin: that one"
        )]
    );
    // Tab 2 stays, and so does the tab in lobby.
    h.text(2, &v2::say("still here", None));
    assert!(h.drain().contains(&send(
        1,
        &v2::message(3, "general", "bob", "still here", None, TS)
    )));
    // The same message again: its sender is not open any more. An unknown id, or one of
    // another room (lobby has no message 1): the same answer.
    let unknown = |id: u64| {
        send(
            1,
            &v2::error(
                "admin",
                &format!(
                    "the connection that sent message {id} of this room is not open (or the \
                     message is too old to tell)"
                ),
                "unknown_user",
                TS,
            ),
        )
    };
    for id in [2, 99] {
        h.text(1, &format!(r#"{{"type":"kick","id":{id}}}"#));
        assert_eq!(h.drain(), [unknown(id)]);
    }
    // A reconnect under the same client id is another connection: not kicked by id 1.
    h.disconnect(2);
    h.drain();
    h.connect_v2(2, "bob", "general");
    h.drain();
    h.text(1, r#"{"type":"kick","id":1}"#);
    assert_eq!(h.drain(), [unknown(1)]);
}

#[test]
fn a_kick_of_nobody_connected_is_unknown_user() {
    let mut h = admin_and_bob(config());
    h.text(1, r#"{"type":"kick","user":"carol"}"#);
    assert_eq!(
        h.drain(),
        [send(
            1,
            &v2::error(
                "admin",
                r#"no connection of user "carol" to kick"#,
                "unknown_user",
                TS
            )
        )]
    );
}

#[test]
fn a_non_admin_is_forbidden_to_kick_ban_or_delete_and_nothing_happens() {
    let mut h = admin_and_bob(config());
    h.text(2, &v2::say("hello", None));
    h.drain();
    let forbidden = send(
        2,
        &v2::error(
            "bob",
            "only an admin may kick, ban or delete messages",
            "forbidden",
            TS,
        ),
    );
    for command in [
        r#"{"type":"kick","user":"admin"}"#,
        r#"{"type":"ban","user":"admin","minutes":5}"#,
        r#"{"type":"delete","id":1}"#,
    ] {
        h.text(2, command);
        assert_eq!(h.drain(), std::slice::from_ref(&forbidden), "{command}");
    }
    // A grant can be taken back.
    h.input(chat_protocol::Input::Grant {
        client: ClientId(1),
        admin: false,
    });
    h.text(1, r#"{"type":"delete","id":1}"#);
    assert_eq!(
        h.drain(),
        [send(
            1,
            &v2::error(
                "admin",
                "only an admin may kick, ban or delete messages",
                "forbidden",
                TS
            )
        )]
    );
    // The message is still there for a joiner.
    h.connect_v2(5, "carol", "general");
    let out = h.drain();
    assert_eq!(
        out[1],
        send(
            5,
            &v2::history(
                "general",
                0,
                false,
                &[v2::message(1, "general", "bob", "hello", None, TS)],
                TS
            )
        )
    );
}

#[test]
fn a_ban_hands_the_driver_its_end_and_closes_the_user_with_4004() {
    let mut h = admin_and_bob(config());
    h.advance(Duration::from_secs(2));
    h.text(
        1,
        r#"{"type":"ban","user":"bob","minutes":60,"reason":"flooding"}"#,
    );
    let until = harness::start_wall() + Duration::from_secs(2 + 3600);
    let text = "banned by an admin until 2026-11-21T21:53Z: flooding";
    assert_eq!(
        h.drain(),
        [
            Output::Ban {
                user: "bob".to_owned(),
                until,
                reason: "flooding".to_owned(),
            },
            close_with(2, CloseReason::Banned, text),
            close_with(3, CloseReason::Banned, text),
        ]
    );
    assert_eq!(CloseReason::Banned.code(), 4004);
    // Banning someone who is not connected is still a ban.
    h.text(1, r#"{"type":"ban","user":"carol","minutes":1}"#);
    assert_eq!(
        h.drain(),
        [Output::Ban {
            user: "carol".to_owned(),
            until: harness::start_wall() + Duration::from_secs(2 + 60),
            reason: String::new(),
        }]
    );
}

#[test]
fn a_long_reason_is_cut_to_fit_a_close_frame() {
    let mut h = admin_and_bob(config());
    let reason = "é".repeat(300);
    h.text(
        1,
        &format!(r#"{{"type":"kick","user":"bob","reason":{}}}"#, q(&reason)),
    );
    let out = h.drain();
    let Output::CloseWith { text, .. } = &out[0] else {
        panic!("a close first: {out:?}");
    };
    assert!(
        text.len() <= chat_protocol::MAX_CLOSE_TEXT,
        "{}",
        text.len()
    );
    assert!(text.starts_with("kicked by an admin: éé"));
}

#[test]
fn a_delete_is_announced_to_v2_and_history_and_scroll_back_show_it_deleted() {
    let mut h = Harness::with_config(config());
    h.connect_v2(1, "admin", "general");
    h.grant_admin(1);
    h.connect(2, "olga"); // a v1 observer in general
    h.connect_v2(3, "bob", "general");
    for text in ["one", "two: secret", "three"] {
        h.text(3, &v2::say(text, None));
    }
    h.drain();
    h.text(1, r#"{"type":"delete","id":2}"#);
    // v2 connections hear it, in ClientId order; the v1 observer hears nothing new.
    assert_eq!(h.drain(), sends(&[1, 3], &v2::deleted("general", 2, TS)));

    // A later joiner's history keeps the id, without the text.
    h.connect_v2(4, "carol", "general");
    let out = h.drain();
    let history = [
        v2::message(1, "general", "bob", "one", None, TS),
        v2::message_deleted(2, "general", "bob", TS),
        v2::message(3, "general", "bob", "three", None, TS),
    ];
    assert_eq!(
        out[1],
        send(4, &v2::history("general", 0, false, &history, TS))
    );
    // Resume after 1 still works: the ids are consecutive.
    h.connect_with(
        5,
        "carol",
        "general",
        chat_protocol::Protocol::V2,
        Some(chat_protocol::Resume { epoch: 0, since: 1 }),
    );
    let out = h.drain();
    assert_eq!(
        out[1],
        send(5, &v2::history("general", 0, true, &history[1..], TS))
    );
    // Scroll-back too.
    h.text(4, &v2::before(4, Some(2)));
    assert_eq!(
        h.drain(),
        [send(
            4,
            &v2::history_page("general", 4, &history[1..], true, TS)
        )]
    );
    // The v1 observer saw the message when it was live, and nothing since but presence.
    h.connect(6, "olga2");
    let out = h.drain();
    assert_eq!(
        out[0],
        send(
            2,
            &frame("connection", "olga2", "olga2 joined the chat", TS)
        )
    );
}

#[test]
fn deleting_an_unknown_id_is_unknown_message() {
    let mut h = admin_and_bob(config());
    h.text(2, &v2::say("one", None));
    h.drain();
    for id in [2, 99] {
        h.text(1, &format!(r#"{{"type":"delete","id":{id}}}"#));
        assert_eq!(
            h.drain(),
            [send(
                1,
                &v2::error(
                    "admin",
                    &format!("there is no message {id} in this room to delete"),
                    "unknown_message",
                    TS
                )
            )]
        );
    }
    // Ids are per room: lobby has no message 1.
    h.connect_v2(7, "admin", "lobby");
    h.grant_admin(7);
    h.drain();
    h.text(7, r#"{"type":"delete","id":1}"#);
    assert_eq!(
        h.drain(),
        [send(
            7,
            &v2::error(
                "admin",
                "there is no message 1 in this room to delete",
                "unknown_message",
                TS
            )
        )]
    );
}

#[test]
fn durable_a_delete_asks_storage_to_remove_the_text_even_beyond_memory() {
    let mut h = Harness::with_config(config().with_durable(true).with_history(2));
    h.connect_v2(1, "admin", "general");
    h.grant_admin(1);
    for text in ["one", "two", "three"] {
        h.text(1, &v2::say(text, None));
    }
    h.drain();
    h.stored(&[0, 1, 2]);
    // Held in memory (3) and only in storage (1) alike.
    for id in [3, 1] {
        h.text(1, &format!(r#"{{"type":"delete","id":{id}}}"#));
        assert_eq!(
            h.drain(),
            [
                send(1, &v2::deleted("general", id, TS)),
                Output::DeleteStored {
                    room: general(),
                    id
                },
            ]
        );
    }
    // Beyond the last id, storage cannot hold it either.
    h.text(1, r#"{"type":"delete","id":4}"#);
    assert_eq!(
        h.drain(),
        [send(
            1,
            &v2::error(
                "admin",
                "there is no message 4 in this room to delete",
                "unknown_message",
                TS
            )
        )]
    );
    // A page that storage answers with the deleted flag shows it deleted; the held part
    // shows the delete made after the page was asked for.
    h.text(1, &v2::before(4, Some(3)));
    let out = h.drain();
    assert_eq!(
        out,
        [Output::Fetch {
            client: ClientId(1),
            ticket: chat_protocol::StoreTicket(3),
            room: general(),
            before: 2,
            limit: 1,
        }]
    );
    h.text(1, r#"{"type":"delete","id":2}"#);
    h.drain();
    h.fetched(
        3,
        Ok(vec![chat_protocol::RestoredMessage {
            id: 1,
            user: "admin".into(),
            text: String::new(),
            client_msg_id: None,
            timestamp: harness::start_wall(),
            deleted: true,
        }]),
    );
    assert_eq!(
        h.drain(),
        [send(
            1,
            &v2::history_page(
                "general",
                4,
                &[
                    v2::message_deleted(1, "general", "admin", TS),
                    v2::message_deleted(2, "general", "admin", TS),
                    v2::message_deleted(3, "general", "admin", TS),
                ],
                false,
                TS
            )
        )]
    );
}

#[test]
fn restored_deleted_messages_stay_deleted() {
    let mut h = Harness::with_config(config().with_durable(true));
    h.server.restore(
        vec![chat_protocol::RestoredRoom {
            name: general(),
            last_id: 2,
            messages: (1..=2)
                .map(|id| chat_protocol::RestoredMessage {
                    id,
                    user: "bob".into(),
                    text: "should not show".into(),
                    client_msg_id: None,
                    timestamp: harness::start_wall(),
                    deleted: id == 1,
                })
                .collect(),
        }],
        0,
    );
    h.connect_v2(1, "carol", "general");
    let out = h.drain();
    assert_eq!(
        out[1],
        send(
            1,
            &v2::history(
                "general",
                0,
                false,
                &[
                    v2::message_deleted(1, "general", "bob", TS),
                    v2::message(2, "general", "bob", "should not show", None, TS),
                ],
                TS
            )
        )
    );
}
