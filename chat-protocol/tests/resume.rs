//! Durable mode: a v2 client resuming from before what memory holds gets the missed messages
//! from storage (`Fetch`, then `Fetched`), with the live frames of the wait held back and sent
//! after its `history`; and every way that can go wrong (a failed or incomplete answer, no
//! answer in time, a joiner that leaves, too much arriving meanwhile) falls back to the `gap`
//! it would have had without storage. All in virtual time.

mod harness;

use std::sync::Arc;
use std::time::Duration;

use chat_protocol::{
    ClientId, Config, Input, Output, Payload, Protocol, Record, RestoredMessage, RestoredRoom,
    Resume, StoreTicket, MAX_HELD_BACK_BYTES, MAX_HELD_BACK_FRAMES, MAX_RESUME_FETCH, RESUME_WAIT,
};
use harness::{failed, restored, restored_frame as frame, room, send, v2, Harness};

const EPOCH: u64 = 1_795_294_378_000;
const T0: &str = "2026-11-21T20:52:58.123Z";

fn frames(ids: impl IntoIterator<Item = u64>) -> Vec<String> {
    ids.into_iter().map(frame).collect()
}

fn durable() -> Config {
    Config::default()
        .with_durable(true)
        .with_epoch(EPOCH)
        .with_history(10)
        .with_rate_limit(None)
}

/// A server restored at `last_id` with the last 10 messages in memory, and bob (2, v2) in
/// `general`.
fn restarted(config: Config, last_id: u64) -> Harness {
    let mut h = Harness::with_config(config);
    h.server.restore(
        vec![RestoredRoom {
            name: room("general"),
            last_id,
            messages: (last_id - 9..=last_id).map(restored).collect(),
        }],
        0,
    );
    h.connect_v2(2, "bob", "general");
    h.drain();
    h
}

/// alice (1, v2) reconnects to `general`, having seen up to `since`.
fn resume(h: &mut Harness, since: u64) {
    h.connect_with(
        1,
        "alice",
        "general",
        Protocol::V2,
        Some(Resume {
            epoch: EPOCH,
            since,
        }),
    );
}

fn fetch(ticket: u64, before: u64, limit: usize) -> Output {
    Output::Fetch {
        client: ClientId(1),
        ticket: StoreTicket(ticket),
        room: room("general"),
        before,
        limit,
    }
}

/// What storage is asked to keep for a message posted live (no `client_msg_id`).
fn store(ticket: u64, id: u64, user: &str, text: &str) -> Output {
    Output::Store(Record {
        ticket: StoreTicket(ticket),
        room: room("general"),
        epoch: EPOCH,
        id,
        user: Arc::from(user),
        text: Payload::from(text),
        client_msg_id: None,
        timestamp: harness::start_wall(),
        to: None,
    })
}

fn welcome(members: &[&str]) -> Output {
    send(1, &v2::welcome("alice", "general", EPOCH, members, 10, T0))
}

fn history(resumed: bool, messages: &[String]) -> Output {
    send(1, &v2::history("general", EPOCH, resumed, messages, T0))
}

fn gap(since: u64, why: &str) -> Output {
    send(1, &v2::gap("general", EPOCH, since, why, T0))
}

fn joined(to: u64) -> Output {
    send(to, &v2::connection("alice", "general", T0))
}

#[test]
fn a_resume_beyond_memory_is_read_from_storage_and_sent_when_it_answers() {
    let mut h = restarted(durable(), 50);
    // Memory holds 41..=50; alice saw up to 35: 36..=40 come from storage.
    resume(&mut h, 35);
    assert_eq!(
        h.drain(),
        [fetch(0, 41, 5), joined(2)],
        "alice gets nothing yet; the room hears her join"
    );
    assert_eq!(h.server.awaiting_storage(), 1);
    // Her own join notice waits for her: held back, and counted (a driver's budget sees it).
    let notice = h.server.held_back_bytes();
    assert!(notice > 0);
    // bob speaks: alice's copy joins it.
    h.text(2, &v2::say("meanwhile", None));
    h.drain();
    let meanwhile = v2::message(51, "general", "bob", "meanwhile", None, T0);
    assert_eq!(
        h.server.held_back_bytes(),
        notice + meanwhile.len(),
        "alice's copy of bob's message"
    );
    h.advance(Duration::from_millis(3));
    h.fetched(0, Ok((36..=40).map(restored).collect()));
    let mut expected_history = frames(36..=40);
    expected_history.extend(frames(41..=50));
    assert_eq!(
        h.drain(),
        [
            welcome(&["alice", "bob"]),
            history(true, &expected_history),
            joined(1),
            send(1, &meanwhile),
        ],
        "welcome, exactly the missed messages, her own notice (stamped at connect), then what \
         was held back"
    );
    assert_eq!(h.server.awaiting_storage(), 0);
    assert_eq!(h.server.held_back_bytes(), 0, "released");
    // Live from then on.
    h.text(2, &v2::say("hi", None));
    let hi = v2::message(52, "general", "bob", "hi", None, "2026-11-21T20:52:58.126Z");
    assert_eq!(
        h.drain()[..2],
        [send(1, &hi), send(2, &hi)],
        "nothing is held back any more"
    );
}

#[test]
fn live_frames_during_the_fetch_follow_the_history_once_and_in_order() {
    let mut h = restarted(durable(), 50);
    // carol speaks v1: what she gets is the tutorial's, whatever alice waits for.
    h.connect(3, "carol");
    h.drain();
    resume(&mut h, 35);
    let carol_hears =
        |kind: &str, user: &str, text: &str| send(3, &harness::frame(kind, user, text, T0));
    assert_eq!(
        h.drain(),
        [
            fetch(0, 41, 5),
            carol_hears("connection", "alice", "alice joined the chat"),
            joined(2),
        ]
    );
    // The room goes on while storage reads: bob posts, types, alice herself posts, carol
    // posts and leaves. Memory moves on too (41..=44 leave it): alice's history does not care.
    h.text(2, &v2::say("one", None));
    h.text(2, v2::TYPING);
    h.text(1, &v2::say("two", Some("a-1")));
    h.text(3, "three");
    h.disconnect(3);
    let out = h.drain();
    let m = |id, user: &str, text: &str, key: Option<&str>| {
        v2::message(id, "general", user, text, key, T0)
    };
    assert_eq!(
        out,
        [
            carol_hears("message", "bob", "one"),
            send(2, &m(51, "bob", "one", None)),
            store(1, 51, "bob", "one"),
            carol_hears("message", "alice", "two"),
            send(2, &m(52, "alice", "two", Some("a-1"))),
            Output::Store(Record {
                client_msg_id: Some("a-1".into()),
                ..match store(2, 52, "alice", "two") {
                    Output::Store(r) => r,
                    _ => unreachable!(),
                }
            }),
            carol_hears("message", "carol", "three"),
            send(2, &m(53, "carol", "three", None)),
            store(3, 53, "carol", "three"),
            send(2, &v2::disconnection("carol", "general", T0)),
        ],
        "alice (1) gets none of it yet; nobody else waits"
    );
    h.stored(&[2]);
    assert_eq!(h.drain(), [], "alice's ack waits with the rest");
    for n in 0..4 {
        h.text(2, &v2::say(&format!("more {n}"), None));
    }
    h.drain();

    h.fetched(0, Ok((36..=40).map(restored).collect()));
    let mut expected_history = frames(36..=40);
    expected_history.extend(frames(41..=50));
    let mut expected = vec![
        welcome(&["alice", "bob", "carol"]),
        history(true, &expected_history),
        joined(1),
        send(1, &m(51, "bob", "one", None)),
        send(1, &v2::typing("bob", "general", T0)),
        send(1, &m(52, "alice", "two", Some("a-1"))),
        send(1, &m(53, "carol", "three", None)),
        send(1, &v2::disconnection("carol", "general", T0)),
        send(1, &v2::ack_stored("a-1", 52, true, T0)),
    ];
    expected.extend((0..4).map(|n| send(1, &m(54 + n, "bob", &format!("more {n}"), None))));
    assert_eq!(h.drain(), expected);
}

#[test]
fn a_failed_read_falls_back_to_the_gap_and_memory_of_connect_time() {
    let mut h = restarted(durable(), 50);
    resume(&mut h, 35);
    h.drain();
    h.text(2, &v2::say("during", None));
    h.drain();
    h.advance(Duration::from_secs(1));
    h.fetched(0, Err(failed()));
    assert_eq!(
        h.drain(),
        [
            welcome(&["alice", "bob"]),
            gap(
                35,
                "messages after 35 could not be read from storage; here is the recent history"
            ),
            history(false, &frames(41..=50)),
            joined(1),
            send(1, &v2::message(51, "general", "bob", "during", None, T0)),
        ],
        "exactly what a gap at connect gives, then what arrived meanwhile"
    );
    assert_eq!(h.server.awaiting_storage(), 0);
    h.fetched(0, Ok((36..=40).map(restored).collect()));
    assert_eq!(h.drain(), [], "answered once");
}

#[test]
fn storage_must_give_every_missed_message_and_only_those_count() {
    let missing = "messages after 35 are no longer stored; here is the recent history";
    let cases: &[(&[u64], Option<&str>)] = &[
        // (ids storage gives, the gap if any)
        (&[36, 37, 38, 39, 40], None),
        // Outside the request or out of order: dropped, the rest is complete.
        (&[30, 35, 36, 37, 37, 38, 39, 40, 41, 45], None),
        (&[36, 37, 39, 40], Some(missing)),
        (&[37, 38, 39, 40], Some(missing)),
        (&[36, 37, 38, 39], Some(missing)),
        (&[], Some(missing)),
        (&[40, 39, 38, 37, 36], Some(missing)),
    ];
    for &(given, why) in cases {
        let mut h = restarted(durable(), 50);
        resume(&mut h, 35);
        h.drain();
        h.fetched(0, Ok(given.iter().copied().map(restored).collect()));
        let mut expected = vec![welcome(&["alice", "bob"])];
        match why {
            None => {
                let mut messages = frames(36..=40);
                messages.extend(frames(41..=50));
                expected.push(history(true, &messages));
            }
            Some(why) => {
                expected.push(gap(35, why));
                expected.push(history(false, &frames(41..=50)));
            }
        }
        expected.push(joined(1));
        assert_eq!(h.drain(), expected, "{given:?}");
    }
}

#[test]
fn storage_that_does_not_answer_in_time_gives_the_gap_and_its_late_answer_is_ignored() {
    let mut h = restarted(durable(), 50);
    let start = h.now.instant;
    resume(&mut h, 35);
    h.drain();
    assert_eq!(h.server.poll_timeout(), Some(start + RESUME_WAIT));
    h.advance(RESUME_WAIT - Duration::from_millis(1));
    h.timeout();
    assert_eq!(h.drain(), [], "not yet");
    h.advance(Duration::from_millis(1));
    h.timeout();
    assert_eq!(
        h.drain(),
        [
            welcome(&["alice", "bob"]),
            gap(
                35,
                "storage did not give the messages after 35 in time; here is the recent history"
            ),
            history(false, &frames(41..=50)),
            joined(1),
        ]
    );
    assert!(
        h.server.poll_timeout().is_some_and(|t| t > h.now.instant),
        "the deadline is gone"
    );
    assert_eq!(h.server.awaiting_storage(), 0);
    h.advance(Duration::from_secs(5));
    h.fetched(0, Ok((36..=40).map(restored).collect()));
    assert_eq!(h.drain(), [], "too late: ignored");
    h.text(2, &v2::say("hi", None));
    assert_eq!(
        h.drain()[0],
        send(
            1,
            &v2::message(51, "general", "bob", "hi", None, "2026-11-21T20:53:05.123Z")
        ),
        "alice is live"
    );
}

#[test]
fn a_joiner_that_leaves_before_the_answer_leaves_nothing_behind() {
    let mut h = restarted(durable(), 50);
    resume(&mut h, 35);
    h.drain();
    h.text(2, &v2::say("during", None));
    h.drain();
    h.disconnect(1);
    assert_eq!(
        h.drain(),
        [send(2, &v2::disconnection("alice", "general", T0))]
    );
    assert_eq!(h.server.awaiting_storage(), 0);
    // Its id is reused by a connection that does not resume: the old answer is not for it.
    h.connect_v2(1, "dave", "general");
    h.drain();
    h.fetched(0, Ok((36..=40).map(restored).collect()));
    assert_eq!(h.drain(), []);
    h.advance(RESUME_WAIT);
    h.timeout();
    assert_eq!(h.drain(), [], "no deadline left behind either");
}

#[test]
fn a_joiner_being_closed_while_it_waits_gets_nothing_more() {
    let mut h = restarted(durable(), 50);
    resume(&mut h, 35);
    h.drain();
    h.input(Input::Kick {
        user: "alice".into(),
        reason: String::new(),
    });
    let out = h.drain();
    assert!(
        matches!(
            &out[..],
            [
                Output::CloseWith {
                    client: ClientId(1),
                    ..
                },
                ..
            ]
        ),
        "{out:?}"
    );
    h.fetched(0, Ok((36..=40).map(restored).collect()));
    assert_eq!(h.drain(), [], "its greeting is for nobody");
    h.disconnect(1);
    h.drain();
    assert_eq!(h.server.awaiting_storage(), 0);
}

#[test]
fn too_many_frames_held_back_give_the_gap_at_once_then_every_frame_in_order() {
    let mut h = restarted(durable(), 50);
    resume(&mut h, 35);
    h.drain();
    let publish = |h: &mut Harness, n: usize| {
        h.input(Input::Publish {
            room: room("general"),
            user: None,
            text: format!("p{n}"),
        });
        h.drain()
    };
    // Its own notice is the first frame held back; MAX - 1 publications fill the rest.
    for n in 1..MAX_HELD_BACK_FRAMES {
        let out = publish(&mut h, n);
        assert!(
            !out.iter().any(|o| matches!(
                o,
                Output::Send {
                    to: ClientId(1),
                    ..
                }
            )),
            "held back"
        );
    }
    let out = publish(&mut h, MAX_HELD_BACK_FRAMES);
    let p = |n: usize| v2::message(50 + n as u64, "general", "", &format!("p{n}"), None, T0);
    let mut expected = vec![
        welcome(&["alice", "bob"]),
        gap(
            35,
            "too much arrived while the messages after 35 were read from storage; here is the recent history",
        ),
        history(false, &frames(41..=50)),
        joined(1),
    ];
    expected.extend((1..=MAX_HELD_BACK_FRAMES).map(|n| send(1, &p(n))));
    let last = MAX_HELD_BACK_FRAMES;
    expected.push(send(2, &p(last)));
    expected.push(store(
        last as u64,
        50 + last as u64,
        "",
        &format!("p{last}"),
    ));
    expected.push(Output::Published {
        room: room("general"),
        result: Ok(50 + last as u64),
    });
    assert_eq!(out.len(), expected.len());
    for (i, (got, want)) in out.iter().zip(&expected).enumerate() {
        assert_eq!(got, want, "output {i}");
    }
    assert_eq!(h.server.awaiting_storage(), 0);
    h.fetched(0, Ok((36..=40).map(restored).collect()));
    assert_eq!(h.drain(), [], "the answer comes too late");
}

#[test]
fn too_many_bytes_held_back_give_the_gap_at_once() {
    let mut h = restarted(durable(), 50);
    resume(&mut h, 35);
    h.drain();
    let big = "x".repeat(100 * 1024);
    let mut n = 0;
    loop {
        n += 1;
        h.input(Input::Publish {
            room: room("general"),
            user: None,
            text: big.clone(),
        });
        let out = h.drain();
        let to_alice = out
            .iter()
            .filter(|o| {
                matches!(
                    o,
                    Output::Send {
                        to: ClientId(1),
                        ..
                    }
                )
            })
            .count();
        if to_alice == 0 {
            assert!(n * big.len() < MAX_HELD_BACK_BYTES, "held past the bound");
            continue;
        }
        assert!(n * big.len() > MAX_HELD_BACK_BYTES - big.len());
        // welcome, gap, history, its notice, and the n messages.
        assert_eq!(to_alice, 4 + n);
        assert!(matches!(&out[1], Output::Send { payload, .. }
            if payload.as_str().contains(r#""type":"gap""#)));
        break;
    }
}

#[test]
fn the_missed_range_storage_is_asked_for_is_bounded() {
    // Memory holds 491..=500.
    let bound = MAX_RESUME_FETCH as u64;
    let mut h = restarted(durable(), 500);
    resume(&mut h, 490 - bound);
    assert_eq!(h.drain()[0], fetch(0, 491, MAX_RESUME_FETCH));
    h.fetched(0, Ok((491 - bound..=490).map(restored).collect()));
    let out = h.drain();
    let mut messages = frames(491 - bound..=490);
    messages.extend(frames(491..=500));
    assert_eq!(out[1], history(true, &messages));

    let mut h = restarted(durable(), 500);
    resume(&mut h, 489 - bound);
    let why = format!(
        "more than {bound} messages after {} are no longer in memory; here is the recent history (older messages: history_before)",
        489 - bound
    );
    assert_eq!(
        h.drain(),
        [
            welcome(&["alice", "bob"]),
            gap(489 - bound, &why),
            history(false, &frames(491..=500)),
            joined(1),
            joined(2),
        ],
        "one more is a gap at once, as without storage"
    );
    assert_eq!(h.server.awaiting_storage(), 0);
}

#[test]
fn without_durable_storage_and_for_what_memory_holds_nothing_changes() {
    // In memory only: a gap, as always.
    let mut h = restarted(durable().with_durable(false), 50);
    resume(&mut h, 35);
    assert_eq!(
        h.drain(),
        [
            welcome(&["alice", "bob"]),
            gap(
                35,
                "messages after 35 are no longer held; here is the recent history"
            ),
            history(false, &frames(41..=50)),
            joined(1),
            joined(2),
        ]
    );
    // Durable, but memory holds every missed message: answered at once, no storage.
    let mut h = restarted(durable(), 50);
    resume(&mut h, 40);
    assert_eq!(
        h.drain(),
        [
            welcome(&["alice", "bob"]),
            history(true, &frames(41..=50)),
            joined(1),
            joined(2),
        ]
    );
    assert_eq!(h.server.awaiting_storage(), 0);
    // Another epoch is a gap whatever storage holds.
    let mut h = restarted(durable(), 50);
    h.connect_with(
        1,
        "alice",
        "general",
        Protocol::V2,
        Some(Resume {
            epoch: EPOCH - 1,
            since: 35,
        }),
    );
    assert!(matches!(&h.drain()[1], Output::Send { payload, .. }
        if payload.as_str().contains(r#""type":"gap""#)));
    // A v1 client's `since` is ignored, as always.
    let mut h = restarted(durable(), 50);
    h.connect_with(
        1,
        "alice",
        "general",
        Protocol::V1,
        Some(Resume {
            epoch: EPOCH,
            since: 35,
        }),
    );
    assert_eq!(
        h.drain(),
        [
            send(
                1,
                &harness::frame("connection", "alice", "alice joined the chat", T0)
            ),
            joined(2),
        ]
    );
}

#[test]
fn messages_the_memory_budget_trimmed_are_resumed_from_storage() {
    let mut h = Harness::with_config(durable());
    h.connect_v2(2, "bob", "general");
    h.drain();
    for n in 1..=3 {
        h.text(2, &v2::say(&format!("b{n}"), None));
    }
    h.drain();
    h.stored(&[0, 1, 2]);
    // The server's memory is spent: every message leaves memory.
    h.input(Input::HistoryBudget { bytes: 0 });
    assert_eq!(h.server.history_bytes(), 0);
    resume(&mut h, 1);
    assert_eq!(h.drain(), [fetch(3, 4, 2), joined(2)]);
    let stored = |id: u64| RestoredMessage {
        id,
        user: "bob".into(),
        text: format!("b{id}"),
        client_msg_id: None,
        timestamp: harness::start_wall(),
        deleted: false,
    };
    h.fetched(3, Ok(vec![stored(2), stored(3)]));
    let m = |id: u64| v2::message(id, "general", "bob", &format!("b{id}"), None, T0);
    assert_eq!(
        h.drain(),
        [
            welcome(&["alice", "bob"]),
            history(true, &[m(2), m(3)]),
            joined(1),
        ]
    );
}

#[test]
fn all_waiting_joiners_together_hold_back_a_bounded_amount() {
    let mut h = restarted(durable(), 50);
    let joiners = 20u64;
    for id in 10..10 + joiners {
        h.connect_with(
            id,
            &format!("u{id}"),
            "general",
            Protocol::V2,
            Some(Resume {
                epoch: EPOCH,
                since: 35,
            }),
        );
    }
    h.drain();
    assert_eq!(h.server.awaiting_storage(), joiners as usize);
    // Each publication is held back for every joiner: 20 copies counted.
    let big = "x".repeat(100 * 1024);
    let mut released = 0;
    for n in 1.. {
        h.input(Input::Publish {
            room: room("general"),
            user: None,
            text: big.clone(),
        });
        let out = h.drain();
        released = out
            .iter()
            .filter(|o| matches!(o, Output::Send { payload, .. } if payload.as_str().contains(r#""type":"gap""#)))
            .count();
        if released > 0 {
            assert!(
                n * big.len() < MAX_HELD_BACK_BYTES,
                "released by the total, not by its own bound"
            );
            assert!(joiners as usize * n * big.len() > chat_protocol::MAX_HELD_BACK_TOTAL_BYTES);
            break;
        }
    }
    // Each released joiner makes room for the others, which keep waiting.
    assert!(released < 4, "{released}");
    assert_eq!(h.server.awaiting_storage(), joiners as usize - released);
}
