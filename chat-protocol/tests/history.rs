//! History, the history/live boundary, and resuming with `since` and `epoch`.

mod harness;

use std::time::Duration;

use chat_protocol::{Config, Protocol, Resume};
use harness::{frame, send, v2, Harness};

const T0: &str = "2026-11-21T20:52:58.123Z";
const EPOCH: u64 = 1_795_294_378_000;

/// `general` with `limit` messages of history, and messages 1..=n in it, sent by a v1 client
/// (1, "alice") one second apart; alice is still there. Returns the message frames as a v2
/// client sees them and the time after the last message.
fn room_with(limit: usize, n: u64) -> (Harness, Vec<String>) {
    let mut h = Harness::with_config(Config::default().with_epoch(EPOCH).with_history(limit));
    h.connect(1, "alice");
    let mut frames = Vec::new();
    for id in 1..=n {
        h.advance(Duration::from_secs(1));
        let text = format!("m{id}");
        h.text(1, &text);
        frames.push(v2::message(id, "general", "alice", &text, None, &stamp(id)));
    }
    h.drain();
    (h, frames)
}

/// The timestamp `secs` seconds after T0.
fn stamp(secs: u64) -> String {
    (harness::start_wall() + Duration::from_secs(secs))
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}

#[test]
fn messages_before_joining_come_in_history_and_after_it_live() {
    let (mut h, frames) = room_with(100, 2);
    let t2 = stamp(2);
    h.connect_v2(2, "bob", "general");
    assert_eq!(
        h.drain(),
        [
            send(
                2,
                &v2::welcome("bob", "general", EPOCH, &["alice", "bob"], 100, &t2)
            ),
            send(2, &v2::history("general", EPOCH, false, &frames, &t2)),
            send(1, &frame("connection", "bob", "bob joined the chat", &t2)),
            send(2, &v2::connection("bob", "general", &t2)),
        ]
    );
    h.text(1, "m3");
    assert_eq!(
        h.drain(),
        [
            send(1, &frame("message", "alice", "m3", &t2)),
            send(2, &v2::message(3, "general", "alice", "m3", None, &t2)),
        ]
    );
    // A later joiner gets all three, each with the time it was sent.
    h.advance(Duration::from_secs(10));
    h.connect_v2(3, "carol", "general");
    let out = h.drain();
    let mut all = frames.clone();
    all.push(v2::message(3, "general", "alice", "m3", None, &t2));
    assert_eq!(
        out[1],
        send(3, &v2::history("general", EPOCH, false, &all, &stamp(12)))
    );
}

#[test]
fn the_ring_keeps_the_last_messages() {
    let (mut h, frames) = room_with(3, 7);
    h.connect_v2(2, "bob", "general");
    let out = h.drain();
    assert_eq!(
        out[..2],
        [
            send(
                2,
                &v2::welcome("bob", "general", EPOCH, &["alice", "bob"], 3, &stamp(7))
            ),
            send(
                2,
                &v2::history("general", EPOCH, false, &frames[4..], &stamp(7))
            ),
        ]
    );
}

#[test]
fn resuming_sends_exactly_what_was_missed_or_says_why_not() {
    const LOST: &str = "messages after 1 are no longer held; here is the recent history";
    let cases: Vec<(Resume, Option<String>, bool, std::ops::Range<usize>)> = vec![
        // (resume, gap message, resumed, which of messages 1..=5 come in history)
        (
            Resume {
                epoch: EPOCH,
                since: 4,
            },
            None,
            true,
            4..5,
        ),
        (
            Resume {
                epoch: EPOCH,
                since: 2,
            },
            None,
            true,
            2..5,
        ),
        (
            Resume {
                epoch: EPOCH,
                since: 5,
            },
            None,
            true,
            5..5,
        ),
        (
            Resume {
                epoch: EPOCH,
                since: 1,
            },
            Some(LOST.into()),
            false,
            2..5,
        ),
        (
            Resume {
                epoch: EPOCH,
                since: 0,
            },
            Some("messages after 0 are no longer held; here is the recent history".into()),
            false,
            2..5,
        ),
        (
            Resume {
                epoch: EPOCH,
                since: 6,
            },
            Some("there is no message 6 in this room; here is the recent history".into()),
            false,
            2..5,
        ),
        (
            Resume {
                epoch: EPOCH - 1,
                since: 4,
            },
            Some(format!(
                "epoch {} is not this server's (the server restarted); here is the recent history",
                EPOCH - 1
            )),
            false,
            2..5,
        ),
        (
            Resume::without_epoch(4),
            Some(
                "no epoch came with since 4, so it cannot be honoured; here is the recent history"
                    .into(),
            ),
            false,
            2..5,
        ),
    ];
    for (resume, gap, resumed, range) in cases {
        let (mut h, frames) = room_with(3, 5);
        let t = stamp(5);
        h.connect_with(2, "bob", "general", Protocol::V2, Some(resume));
        let mut expected = vec![send(
            2,
            &v2::welcome("bob", "general", EPOCH, &["alice", "bob"], 3, &t),
        )];
        if let Some(message) = &gap {
            expected.push(send(
                2,
                &v2::gap("general", EPOCH, resume.since, message, &t),
            ));
        }
        expected.extend([
            send(
                2,
                &v2::history("general", EPOCH, resumed, &frames[range], &t),
            ),
            send(1, &frame("connection", "bob", "bob joined the chat", &t)),
            send(2, &v2::connection("bob", "general", &t)),
        ]);
        assert_eq!(h.drain(), expected, "{resume:?}");
    }
}

/// A v1 client's resume is ignored: it gets the tutorial's frames and nothing else.
#[test]
fn v1_clients_get_no_history() {
    let (mut h, _) = room_with(3, 5);
    let resume = Resume {
        epoch: EPOCH,
        since: 1,
    };
    h.connect_with(2, "bob", "general", Protocol::V1, Some(resume));
    assert_eq!(
        h.drain(),
        harness::sends(
            &[1, 2],
            &frame("connection", "bob", "bob joined the chat", &stamp(5))
        )
    );
}

/// With no history kept, only a client that saw the very last message resumes.
#[test]
fn without_history_only_an_up_to_date_client_resumes() {
    let (mut h, _) = room_with(0, 3);
    let t = stamp(3);
    h.connect_with(
        2,
        "bob",
        "general",
        Protocol::V2,
        Some(Resume {
            epoch: EPOCH,
            since: 3,
        }),
    );
    let out = h.drain();
    assert_eq!(
        out[..2],
        [
            send(
                2,
                &v2::welcome("bob", "general", EPOCH, &["alice", "bob"], 0, &t)
            ),
            send(2, &v2::history("general", EPOCH, true, &[], &t)),
        ]
    );
    h.connect_with(
        3,
        "carol",
        "general",
        Protocol::V2,
        Some(Resume {
            epoch: EPOCH,
            since: 2,
        }),
    );
    let out = h.drain();
    let lost = "messages after 2 are no longer held; here is the recent history";
    assert_eq!(
        out[1..3],
        [
            send(3, &v2::gap("general", EPOCH, 2, lost, &t)),
            send(3, &v2::history("general", EPOCH, false, &[], &t)),
        ]
    );
}

/// A brand-new room: nothing to miss, so `since` 0 resumes and anything else is a gap.
#[test]
fn resuming_in_a_new_room() {
    let mut h = Harness::with_config(Config::default().with_epoch(EPOCH));
    h.connect_with(
        1,
        "bob",
        "fresh",
        Protocol::V2,
        Some(Resume {
            epoch: EPOCH,
            since: 0,
        }),
    );
    assert_eq!(
        h.drain()[1],
        send(1, &v2::history("fresh", EPOCH, true, &[], T0))
    );
    h.connect_with(
        2,
        "bob",
        "fresh",
        Protocol::V2,
        Some(Resume {
            epoch: EPOCH,
            since: 3,
        }),
    );
    let out = h.drain();
    assert_eq!(
        out[1..],
        [
            send(
                2,
                &v2::gap(
                    "fresh",
                    EPOCH,
                    3,
                    "there is no message 3 in this room; here is the recent history",
                    T0
                )
            ),
            send(2, &v2::history("fresh", EPOCH, false, &[], T0)),
        ],
        "bob's second tab: no connection notice"
    );
}
