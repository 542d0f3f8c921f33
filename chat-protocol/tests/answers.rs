//! The answers of PROTOCOL.md's "Questions client authors ask", one test each where the core
//! decides, in the order of that section. (Where the driver decides, the test is in the root
//! package's `tests/protocol_answers.rs`.)

mod harness;

use chat_protocol::{ClientId, CloseReason, Config, Output, Protocol, RateLimit, Resume};
use harness::{error_frame, frame, send, sends, v2, Harness};

const T0: &str = "2026-11-21T20:52:58.123Z";
const EPOCH: u64 = 1_795_294_378_000;

fn config() -> Config {
    Config::default().with_epoch(EPOCH)
}

fn resume(since: u64) -> Option<Resume> {
    Some(Resume {
        epoch: EPOCH,
        since,
    })
}

/// A limit of `burst` messages that does not refill within a test.
fn burst(burst: u32) -> Config {
    config().with_rate_limit(Some(RateLimit {
        burst,
        per_second: 0.001,
    }))
}

/// Presence rows follow the recipient's protocol: a v1 client hears every connection come and
/// go (a v2 user's second tab included), a v2 client only a user's first and last.
#[test]
fn presence_rows_are_in_the_recipients_protocol() {
    let mut h = Harness::with_config(config());
    h.connect_v2(1, "alice", "general");
    h.connect(2, "dave");
    h.connect_v2(3, "bob", "general");
    h.drain();

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
                    &["alice", "bob", "dave"],
                    100,
                    T0
                )
            ),
            send(4, &v2::history("general", EPOCH, false, &[], T0)),
            send(
                2,
                &frame("connection", "alice", "alice joined the chat", T0)
            ),
        ],
        "dave (v1) hears the second tab; bob and alice's first tab (v2) do not"
    );
    h.disconnect(1);
    assert_eq!(
        h.drain(),
        [send(
            2,
            &frame("disconnection", "alice", "alice left the chat", T0)
        )]
    );
    h.disconnect(4);
    assert_eq!(
        h.drain(),
        [
            send(
                2,
                &frame("disconnection", "alice", "alice left the chat", T0)
            ),
            send(3, &v2::disconnection("alice", "general", T0)),
        ]
    );
}

/// One name open as v1 and as v2 is one user: one member, one join and one leave for v2.
/// Direct messages reach only its v2 connections: with none left, it is not a recipient.
#[test]
fn one_name_in_both_protocols_is_one_user() {
    let mut h = Harness::with_config(config());
    h.connect(1, "alice");
    h.connect_v2(3, "bob", "general");
    h.drain();

    h.connect_v2(2, "alice", "general");
    assert_eq!(
        h.drain(),
        [
            send(
                2,
                &v2::welcome("alice", "general", EPOCH, &["alice", "bob"], 100, T0)
            ),
            send(2, &v2::history("general", EPOCH, false, &[], T0)),
            send(
                1,
                &frame("connection", "alice", "alice joined the chat", T0)
            ),
        ],
        "no v2 connection notice: alice was present already"
    );

    h.text(3, &v2::dm("alice", "psst"));
    assert_eq!(
        h.drain(),
        sends(&[2, 3], &v2::direct("bob", "alice", "psst", "general", T0)),
        "alice's v1 connection gets no direct message"
    );

    h.disconnect(2);
    assert_eq!(
        h.drain(),
        [send(
            1,
            &frame("disconnection", "alice", "alice left the chat", T0)
        )],
        "alice is still present through her v1 connection"
    );
    h.text(3, &v2::dm("alice", "psst"));
    assert_eq!(
        h.drain(),
        [send(
            3,
            &v2::error(
                "bob",
                "unknown recipient \"alice\": no such user with a chat.v2 connection in this room",
                "unknown_recipient",
                T0
            )
        )]
    );

    h.disconnect(1);
    assert_eq!(
        h.drain(),
        [send(3, &v2::disconnection("alice", "general", T0))]
    );
}

/// `chat.v2` anywhere among the offers selects v2 (and the server answers `chat.v2`); offers
/// without it, unknown ones only included, select v1 with no subprotocol in the answer. Never
/// a refusal. Tokens are compared exactly, as RFC 6455 says.
#[test]
fn the_subprotocol_offer_picks_the_protocol() {
    let cases: &[(&[&str], Protocol)] = &[
        (&[], Protocol::V1),
        (&["chat.v2"], Protocol::V2),
        (&["foo, chat.v2"], Protocol::V2),
        (&["foo", "chat.v2"], Protocol::V2),
        (&["  chat.v2  ,foo"], Protocol::V2),
        (&["foo"], Protocol::V1),
        (&["chat.v3, chat"], Protocol::V1),
        (&["CHAT.V2"], Protocol::V1),
        (&["chat.v2x"], Protocol::V1),
        (&[""], Protocol::V1),
    ];
    for (offered, protocol) in cases {
        assert_eq!(
            Protocol::negotiate(offered.iter().copied()),
            *protocol,
            "{offered:?}"
        );
    }
    assert_eq!(Protocol::V2.subprotocol(), Some("chat.v2"));
    assert_eq!(Protocol::V1.subprotocol(), None);
}

/// "More than 20 refusals in a row" is `burst` (`--rate-burst`), not a fixed 20: with a burst
/// of 3, the 4th refusal in a row closes.
#[test]
fn the_close_comes_after_burst_refusals_in_a_row() {
    let mut h = Harness::with_config(burst(3));
    h.connect(1, "alice");
    h.connect(2, "bob");
    h.drain();
    for _ in 0..3 {
        h.text(1, "hi");
        assert_eq!(
            h.drain(),
            sends(&[1, 2], &frame("message", "alice", "hi", T0))
        );
    }
    let refusal = error_frame(
        "alice",
        "rate limit exceeded: at most 0.001 messages per second (burst 3)",
        T0,
        "rate_limited",
    );
    for _ in 0..3 {
        h.text(1, "hi");
        assert_eq!(h.drain(), [send(1, &refusal)]);
    }
    h.text(1, "hi");
    assert_eq!(
        h.drain(),
        [Output::Close {
            client: ClientId(1),
            reason: CloseReason::RateLimited,
        }]
    );
}

/// The resume window is inclusive at both ends: with messages 3..=5 held, `since` 2 (the last
/// id minus the held count) and `since` 5 are honoured; `since` 1 is a gap.
#[test]
fn the_resume_window_includes_both_ends() {
    let mut h = Harness::with_config(config().with_history(3));
    h.connect(1, "alice");
    for text in ["m1", "m2", "m3", "m4", "m5"] {
        h.text(1, text);
    }
    h.drain();
    let held: Vec<String> = (3..=5)
        .map(|id| v2::message(id, "general", "alice", &format!("m{id}"), None, T0))
        .collect();

    let greeting = |id, since, gap: Option<&str>, resumed, messages: &[String]| {
        let mut out = vec![send(
            id,
            &v2::welcome("carol", "general", EPOCH, &["alice", "carol"], 3, T0),
        )];
        if let Some(gap) = gap {
            out.push(send(id, &v2::gap("general", EPOCH, since, gap, T0)));
        }
        out.push(send(
            id,
            &v2::history("general", EPOCH, resumed, messages, T0),
        ));
        out
    };
    for (id, since, gap, resumed, messages) in [
        (2, 2, None, true, &held[..]),
        (3, 5, None, true, &held[3..]),
        (
            4,
            1,
            Some("messages after 1 are no longer held; here is the recent history"),
            false,
            &held[..],
        ),
    ] {
        h.connect_with(id, "carol", "general", Protocol::V2, resume(since));
        let mut expected = greeting(id, since, gap, resumed, messages);
        expected.push(send(
            1,
            &frame("connection", "carol", "carol joined the chat", T0),
        ));
        if id == 2 {
            // carol's first connection: v2 hears her join once.
            expected.push(send(2, &v2::connection("carol", "general", T0)));
        }
        assert_eq!(h.drain(), expected, "since {since}");
    }
}

/// Two servers started in the same millisecond have equal epochs, and the core cannot tell
/// them apart: a `since` from one is honoured by the other. The epoch names one server run;
/// resuming is only meaningful against the server the client came from.
#[test]
fn equal_epochs_are_one_server_to_the_core() {
    let mut other = Harness::with_config(config());
    other.connect(1, "alice");
    other.text(1, "on the first server");
    other.drain();

    let mut h = Harness::with_config(config());
    h.connect(1, "bob");
    h.text(1, "one");
    h.text(1, "two");
    h.drain();
    h.connect_with(2, "alice", "general", Protocol::V2, resume(1));
    assert_eq!(
        h.drain(),
        [
            send(
                2,
                &v2::welcome("alice", "general", EPOCH, &["alice", "bob"], 100, T0)
            ),
            send(
                2,
                &v2::history(
                    "general",
                    EPOCH,
                    true,
                    &[v2::message(2, "general", "bob", "two", None, T0)],
                    T0
                )
            ),
            send(
                1,
                &frame("connection", "alice", "alice joined the chat", T0)
            ),
            send(2, &v2::connection("alice", "general", T0)),
        ]
    );
}

/// A `client_msg_id` of 0 or 65 characters makes the command malformed: `bad_command` to the
/// sender, nothing broadcast, no token spent.
#[test]
fn a_client_msg_id_out_of_bounds_is_a_bad_command() {
    let mut h = Harness::with_config(burst(1));
    h.connect_v2(1, "alice", "general");
    h.connect_v2(2, "bob", "general");
    h.drain();
    let long = "c".repeat(65);
    for key in ["", &long] {
        h.text(1, &v2::say("hi", Some(key)));
        assert_eq!(
            h.drain(),
            [send(
                1,
                &v2::error(
                    "alice",
                    "client_msg_id must be 1 to 64 characters",
                    "bad_command",
                    T0
                )
            )],
            "{key:?}"
        );
    }
    h.text(1, &v2::say("hi", Some(&long[..64])));
    let hi = v2::message(1, "general", "alice", "hi", Some(&long[..64]), T0);
    assert_eq!(
        h.drain(),
        [
            send(1, &hi),
            send(2, &hi),
            send(1, &v2::ack(&long[..64], 1, T0)),
        ],
        "the token was still there"
    );
}

/// Deduplication reaches as far back as the room's history (`history_limit`): a retry whose
/// original has left it is a new message, with a new id.
#[test]
fn a_retry_whose_original_left_history_is_a_new_message() {
    let mut h = Harness::with_config(config().with_history(2));
    h.connect_v2(1, "alice", "general");
    h.drain();
    h.text(1, &v2::say("hi", Some("c-1")));
    h.text(1, &v2::say("two", None));
    h.text(1, &v2::say("three", None));
    h.drain();
    h.text(1, &v2::say("hi", Some("c-1")));
    assert_eq!(
        h.drain(),
        [
            send(
                1,
                &v2::message(4, "general", "alice", "hi", Some("c-1"), T0)
            ),
            send(1, &v2::ack("c-1", 4, T0)),
        ]
    );
}

/// A `client_msg_id` names the message: the same id again (same user, same room, original
/// still held) is a retry whatever its text, acknowledged with the original id, and the first
/// text stands.
#[test]
fn the_same_client_msg_id_with_another_text_is_a_retry() {
    let mut h = Harness::with_config(config());
    h.connect_v2(1, "alice", "general");
    h.connect_v2(2, "bob", "general");
    h.text(1, &v2::say("first", Some("c-1")));
    h.drain();
    h.text(1, &v2::say("second", Some("c-1")));
    assert_eq!(h.drain(), [send(1, &v2::ack("c-1", 1, T0))]);
    h.connect_v2(3, "carol", "general");
    let out = h.drain();
    assert_eq!(
        out[1],
        send(
            3,
            &v2::history(
                "general",
                EPOCH,
                false,
                &[v2::message(1, "general", "alice", "first", Some("c-1"), T0)],
                T0
            )
        )
    );
}

/// An empty message is a message: it gets an id, is broadcast to both protocols and kept.
#[test]
fn an_empty_message_is_a_message() {
    let mut h = Harness::with_config(config());
    h.connect(1, "dave");
    h.connect_v2(2, "alice", "general");
    h.drain();
    h.text(2, &v2::say("", None));
    h.text(1, "");
    assert_eq!(
        h.drain(),
        [
            send(1, &frame("message", "alice", "", T0)),
            send(2, &v2::message(1, "general", "alice", "", None, T0)),
            send(1, &frame("message", "dave", "", T0)),
            send(2, &v2::message(2, "general", "dave", "", None, T0)),
        ]
    );
}

/// `"to": ""` names nobody (a user name has 1 to 32 characters): `unknown_recipient`, after
/// the token was charged like any direct message.
#[test]
fn a_direct_message_to_the_empty_name_is_an_unknown_recipient() {
    let mut h = Harness::with_config(burst(1));
    h.connect_v2(1, "alice", "general");
    h.drain();
    h.text(1, &v2::dm("", "psst"));
    assert_eq!(
        h.drain(),
        [send(
            1,
            &v2::error(
                "alice",
                "unknown recipient \"\": no such user with a chat.v2 connection in this room",
                "unknown_recipient",
                T0
            )
        )]
    );
    h.text(1, &v2::say("hi", None));
    assert_eq!(
        h.drain(),
        [send(
            1,
            &v2::error(
                "alice",
                "rate limit exceeded: at most 0.001 messages per second (burst 1)",
                "rate_limited",
                T0
            )
        )]
    );
}

/// A direct message stays in its room: the echo reaches the sender's v2 connections in that
/// room, not its tabs in other rooms.
#[test]
fn a_direct_messages_echo_stays_in_its_room() {
    let mut h = Harness::with_config(config());
    h.connect_v2(1, "alice", "general");
    h.connect_v2(2, "alice", "lobby");
    h.connect_v2(3, "bob", "general");
    h.connect_v2(4, "bob", "lobby");
    h.connect_v2(5, "alice", "general");
    h.drain();
    h.text(1, &v2::dm("bob", "psst"));
    assert_eq!(
        h.drain(),
        sends(
            &[1, 3, 5],
            &v2::direct("alice", "bob", "psst", "general", T0)
        )
    );
}

/// A room forgotten and made again continues its ids after every forgotten room's: a `since`
/// from the old room is honoured when nothing can have been missed, and is a gap otherwise,
/// never a resume onto another message with the same id.
#[test]
fn resuming_in_a_forgotten_and_recreated_room() {
    let mut h = Harness::with_config(config().with_max_rooms(1));
    h.connect_v2(1, "alice", "a");
    h.text(1, &v2::say("one", None));
    h.text(1, &v2::say("two", None));
    h.disconnect(1);
    // b takes a's place (a is forgotten), and is left without a message.
    h.connect_v2(2, "bob", "b");
    h.disconnect(2);
    h.drain();

    // a again: its ids go on after 2, so since 2 missed nothing.
    h.connect_with(3, "alice", "a", Protocol::V2, resume(2));
    assert_eq!(
        h.drain(),
        [
            send(3, &v2::welcome("alice", "a", EPOCH, &["alice"], 100, T0)),
            send(3, &v2::history("a", EPOCH, true, &[], T0)),
            send(3, &v2::connection("alice", "a", T0)),
        ]
    );
    h.text(3, &v2::say("three", None));
    h.disconnect(3);
    // b again, with a message (id 4: after every forgotten room's), then a once more.
    h.connect_v2(4, "bob", "b");
    h.text(4, &v2::say("four", None));
    h.disconnect(4);
    h.drain();
    h.connect_with(5, "alice", "a", Protocol::V2, resume(3));
    assert_eq!(
        h.drain(),
        [
            send(5, &v2::welcome("alice", "a", EPOCH, &["alice"], 100, T0)),
            send(
                5,
                &v2::gap(
                    "a",
                    EPOCH,
                    3,
                    "messages after 3 are no longer held; here is the recent history",
                    T0
                )
            ),
            send(5, &v2::history("a", EPOCH, false, &[], T0)),
            send(5, &v2::connection("alice", "a", T0)),
        ]
    );
}

/// A connection refused for "too many rooms" gets no `welcome` and no frame at all: only the
/// close. Nobody hears of it, then or at its Disconnect.
#[test]
fn a_connection_refused_for_too_many_rooms_gets_only_the_close() {
    let mut h = Harness::with_config(config().with_max_rooms(1));
    h.connect_v2(1, "alice", "a");
    h.drain();
    h.connect_v2(2, "bob", "b");
    h.connect_with(3, "carol", "b", Protocol::V1, None);
    assert_eq!(
        h.drain(),
        [
            Output::Close {
                client: ClientId(2),
                reason: CloseReason::TooManyRooms,
            },
            Output::Close {
                client: ClientId(3),
                reason: CloseReason::TooManyRooms,
            },
        ]
    );
    h.disconnect(2);
    h.disconnect(3);
    assert_eq!(h.drain(), []);
}

/// A field only another command uses is ignored like any unknown field, whatever its type.
#[test]
fn fields_of_other_commands_are_ignored() {
    let mut h = Harness::with_config(config());
    h.connect_v2(1, "alice", "general");
    h.connect_v2(2, "bob", "general");
    h.drain();
    h.text(1, r#"{"type":"typing","message":5,"to":null}"#);
    assert_eq!(h.drain(), [send(2, &v2::typing("alice", "general", T0))]);
    h.text(
        1,
        r#"{"type":"direct","to":"bob","message":"psst","client_msg_id":7}"#,
    );
    assert_eq!(
        h.drain(),
        sends(&[1, 2], &v2::direct("alice", "bob", "psst", "general", T0))
    );
    h.text(1, r#"{"type":"message","message":"hi","to":["bob"]}"#);
    assert_eq!(
        h.drain(),
        sends(&[1, 2], &v2::message(1, "general", "alice", "hi", None, T0))
    );
}
