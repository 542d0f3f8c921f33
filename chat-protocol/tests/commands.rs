//! The v2 commands: messages with client_msg_id, typing, direct messages, and malformed input.

mod harness;

use std::time::Duration;

use chat_protocol::{ClientId, CloseReason, Config, Output, Protocol, RateLimit};
use harness::{frame, send, sends, v2, Harness};

const T0: &str = "2026-11-21T20:52:58.123Z";
const T1: &str = "2026-11-21T20:52:59.123Z";
const T2: &str = "2026-11-21T20:53:00.123Z";

/// alice on tabs 1 and 2, bob on tabs 3 and 4, carol on 5 (all v2), dave on 6 (v1), all in
/// `general`; erin (v2) on 7 in `elsewhere`. Greetings drained.
fn crowd(config: Config) -> Harness {
    let mut h = Harness::with_config(config);
    h.connect_v2(1, "alice", "general");
    h.connect_v2(2, "alice", "general");
    h.connect_v2(3, "bob", "general");
    h.connect_v2(4, "bob", "general");
    h.connect_v2(5, "carol", "general");
    h.connect(6, "dave");
    h.connect_v2(7, "erin", "elsewhere");
    h.drain();
    h
}

#[test]
fn typing_is_throttled_per_user_and_not_echoed_to_its_own_tabs_or_v1() {
    let mut h = crowd(Config::default());
    h.text(1, v2::TYPING);
    assert_eq!(
        h.drain(),
        sends(&[3, 4, 5], &v2::typing("alice", "general", T0))
    );
    // Within 2 s, from either of alice's tabs: dropped silently.
    h.advance(Duration::from_secs(1));
    h.text(2, v2::TYPING);
    h.text(1, v2::TYPING);
    assert_eq!(h.drain(), vec![]);
    // bob's throttle is his own.
    h.text(3, v2::TYPING);
    assert_eq!(
        h.drain(),
        sends(&[1, 2, 5], &v2::typing("bob", "general", T1))
    );
    h.advance(Duration::from_secs(1));
    h.text(2, v2::TYPING);
    assert_eq!(
        h.drain(),
        sends(&[3, 4, 5], &v2::typing("alice", "general", T2))
    );
}

#[test]
fn typing_costs_no_rate_limit_token() {
    let config = Config::default()
        .with_rate_limit(Some(RateLimit {
            burst: 1,
            per_second: 0.001,
        }))
        .with_typing_interval(Duration::ZERO);
    let mut h = crowd(config);
    for _ in 0..10 {
        h.text(5, v2::TYPING);
        assert_eq!(
            h.drain(),
            sends(&[1, 2, 3, 4], &v2::typing("carol", "general", T0))
        );
    }
    h.text(5, &v2::say("still allowed", None));
    assert_eq!(
        h.drain(),
        [
            send(6, &frame("message", "carol", "still allowed", T0)),
            send(
                1,
                &v2::message(1, "general", "carol", "still allowed", None, T0)
            ),
            send(
                2,
                &v2::message(1, "general", "carol", "still allowed", None, T0)
            ),
            send(
                3,
                &v2::message(1, "general", "carol", "still allowed", None, T0)
            ),
            send(
                4,
                &v2::message(1, "general", "carol", "still allowed", None, T0)
            ),
            send(
                5,
                &v2::message(1, "general", "carol", "still allowed", None, T0)
            ),
        ]
    );
}

#[test]
fn a_direct_message_reaches_the_recipients_tabs_and_echoes_to_the_senders() {
    let mut h = crowd(Config::default());
    h.text(1, &v2::dm("bob", "psst"));
    assert_eq!(
        h.drain(),
        sends(
            &[1, 2, 3, 4],
            &v2::direct("alice", "bob", "psst", "general", T0)
        ),
        "carol, dave and erin hear nothing"
    );
    // A note to oneself reaches each of one's tabs once.
    h.text(3, &v2::dm("bob", "note"));
    assert_eq!(
        h.drain(),
        sends(&[3, 4], &v2::direct("bob", "bob", "note", "general", T0))
    );
}

#[test]
fn a_direct_message_to_nobody_reachable_is_an_error_for_the_sender_only() {
    let mut h = crowd(Config::default());
    for to in ["zed", "dave", "erin", "Bob", ""] {
        h.text(2, &v2::dm(to, "psst"));
        let message = format!(
            "unknown recipient {to:?}: no such user with a chat.v2 connection in this room"
        );
        assert_eq!(
            h.drain(),
            [send(
                2,
                &v2::error("alice", &message, "unknown_recipient", T0)
            )],
            "{to:?}"
        );
    }
}

#[test]
fn a_retried_client_msg_id_is_acknowledged_again_and_not_broadcast() {
    let mut h = crowd(Config::default().with_history(3));
    h.text(1, &v2::say("hi", Some("c-1")));
    let hi = v2::message(1, "general", "alice", "hi", Some("c-1"), T0);
    let mut expected = vec![send(6, &frame("message", "alice", "hi", T0))];
    expected.extend(sends(&[1, 2, 3, 4, 5], &hi));
    expected.push(send(1, &v2::ack("c-1", 1, T0)));
    assert_eq!(h.drain(), expected);

    // A retry, from the same tab or another of the user's: the original id, no broadcast.
    h.advance(Duration::from_secs(1));
    h.text(1, &v2::say("hi", Some("c-1")));
    assert_eq!(h.drain(), [send(1, &v2::ack("c-1", 1, T1))]);
    h.text(2, &v2::say("whatever the text", Some("c-1")));
    assert_eq!(h.drain(), [send(2, &v2::ack("c-1", 1, T1))]);

    // Another user's c-1 is another message.
    h.text(5, &v2::say("mine", Some("c-1")));
    let out = h.drain();
    assert_eq!(out.len(), 7);
    assert_eq!(out[6], send(5, &v2::ack("c-1", 2, T1)));

    // Once the original has left the history, the id is accepted as new.
    h.text(3, &v2::say("x", None));
    h.text(3, &v2::say("y", None));
    h.drain();
    h.text(1, &v2::say("hi", Some("c-1")));
    let out = h.drain();
    assert_eq!(out.len(), 7);
    assert_eq!(out[6], send(1, &v2::ack("c-1", 5, T1)));
}

#[test]
fn malformed_commands_get_bad_command_and_the_client_stays() {
    let cases = [
        (
            "hello",
            "malformed command: expected value at line 1 column 1",
        ),
        ("17", "malformed command: not a JSON object"),
        ("[1,2]", "malformed command: not a JSON object"),
        (
            "",
            "malformed command: EOF while parsing a value at line 1 column 0",
        ),
        (
            "{",
            "malformed command: EOF while parsing an object at line 1 column 1",
        ),
        (r#"{"type":"dance"}"#, r#"unknown command type "dance""#),
        (
            r#"{"message":"hi"}"#,
            "malformed command: missing field `type` at line 1 column 16",
        ),
        (
            r#"{"type":"message"}"#,
            r#"a "message" command needs a "message" string"#,
        ),
        (
            r#"{"type":"message","message":{"text":"hi"}}"#,
            "malformed command: invalid type: map, expected a string at line 1 column 28",
        ),
        (
            r#"{"type":"message","message":"x","client_msg_id":""}"#,
            "client_msg_id must be 1 to 64 characters",
        ),
        (
            &format!(
                r#"{{"type":"message","message":"x","client_msg_id":"{}"}}"#,
                "c".repeat(65)
            ),
            "client_msg_id must be 1 to 64 characters",
        ),
        (
            r#"{"type":"message","message":"x","client_msg_id":17}"#,
            "malformed command: invalid type: integer `17`, expected a string at line 1 column 50",
        ),
        (
            r#"{"type":"direct","message":"x"}"#,
            r#"a "direct" command needs "to" and "message" strings"#,
        ),
        (
            r#"{"type":"direct","to":["bob"],"message":"x"}"#,
            "malformed command: invalid type: sequence, expected a string at line 1 column 22",
        ),
    ];
    let mut h = crowd(Config::default());
    for (input, explanation) in cases {
        h.text(5, input);
        assert_eq!(
            h.drain(),
            [send(5, &v2::error("carol", explanation, "bad_command", T0))],
            "{input}"
        );
    }
    h.text(5, &v2::say("still here", None));
    assert_eq!(h.drain().len(), 6, "a broadcast to the room");
}

/// A v2 client's messages and direct messages cost tokens; refusals come as v2 error frames.
#[test]
fn the_rate_limit_counts_messages_and_direct_messages() {
    let limit = RateLimit {
        burst: 2,
        per_second: 0.001,
    };
    let mut h = crowd(Config::default().with_rate_limit(Some(limit)));
    h.text(5, &v2::dm("nobody", "x"));
    h.text(5, &v2::dm("alice", "x"));
    h.drain();
    let refusal = v2::error(
        "carol",
        "rate limit exceeded: at most 0.001 messages per second (burst 2)",
        "rate_limited",
        T0,
    );
    h.text(5, &v2::say("refused", Some("c-9")));
    assert_eq!(h.drain(), [send(5, &refusal)]);
    h.text(5, &v2::dm("alice", "refused"));
    assert_eq!(h.drain(), [send(5, &refusal)]);
    h.text(5, &v2::say("closed", None));
    assert_eq!(
        h.drain(),
        [Output::Close {
            client: ClientId(5),
            reason: CloseReason::RateLimited,
        }]
    );
    // Closed: carol no longer hears anything, nor receives direct messages, but is present
    // until her Disconnect.
    h.text(1, &v2::dm("carol", "hello?"));
    assert_eq!(
        h.drain(),
        [send(
            1,
            &v2::error(
                "alice",
                "unknown recipient \"carol\": no such user with a chat.v2 connection in this room",
                "unknown_recipient",
                T0
            )
        )]
    );
    h.disconnect(5);
    assert_eq!(
        h.drain(),
        [
            send(
                6,
                &frame("disconnection", "carol", "carol left the chat", T0)
            ),
            send(1, &v2::disconnection("carol", "general", T0)),
            send(2, &v2::disconnection("carol", "general", T0)),
            send(3, &v2::disconnection("carol", "general", T0)),
            send(4, &v2::disconnection("carol", "general", T0)),
        ]
    );
}

/// Protocol::V2 selects the chat.v2 subprotocol; V1 none.
#[test]
fn protocols_name_their_subprotocol() {
    assert_eq!(Protocol::V1.subprotocol(), None);
    assert_eq!(Protocol::V2.subprotocol(), Some("chat.v2"));
}
