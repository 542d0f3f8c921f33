//! Durable mode: messages handed to storage after their broadcast, acks that wait for storage's
//! answer (late, batched, out of order, failed, after the sender left, repeated), retries, and
//! rooms restored at start.

mod harness;

use std::time::Duration;

use chat_protocol::{
    Config, Output, Payload, Protocol, Record, RestoredMessage, RestoredRoom, Resume, StoreTicket,
};
use chrono::{DateTime, Utc};
use harness::{room, send, sends, v2, Harness};

const EPOCH: u64 = 1_795_294_378_000;

fn durable() -> Config {
    Config::default().with_epoch(EPOCH).with_durable(true)
}

/// The wall time `secs` seconds into the scenario.
fn at(secs: u64) -> DateTime<Utc> {
    harness::start_wall() + Duration::from_secs(secs)
}

/// The same, as frames write it.
fn stamp(secs: u64) -> String {
    at(secs).format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

/// The Store output of a room message sent at `secs`.
fn store(ticket: u64, id: u64, user: &str, text: &str, key: Option<&str>, secs: u64) -> Output {
    Output::Store(Record {
        ticket: StoreTicket(ticket),
        room: room("general"),
        epoch: EPOCH,
        id,
        user: user.into(),
        text: Payload::from(text),
        client_msg_id: key.map(Box::from),
        timestamp: at(secs),
        to: None,
    })
}

/// alice (1) and bob (2), v2, in `general` of a durable server; their greetings drained.
fn alice_and_bob(config: Config) -> Harness {
    let mut h = Harness::with_config(config);
    h.connect_v2(1, "alice", "general");
    h.connect_v2(2, "bob", "general");
    h.drain();
    h
}

#[test]
fn a_message_is_broadcast_then_stored_and_acked_only_once_stored() {
    let mut h = alice_and_bob(durable());
    let t0 = stamp(0);
    h.text(1, &v2::say("hi", Some("c-1")));
    let live = v2::message(1, "general", "alice", "hi", Some("c-1"), &t0);
    let mut expected = sends(&[1, 2], &live);
    expected.push(store(0, 1, "alice", "hi", Some("c-1"), 0));
    assert_eq!(h.drain(), expected, "live first, no ack yet");
    assert_eq!(h.server.awaiting_storage(), 1);

    h.advance(Duration::from_millis(1500));
    h.timeout();
    assert_eq!(h.drain(), [], "time alone acks nothing");
    h.stored(&[0]);
    assert_eq!(
        h.drain(),
        [send(
            1,
            &v2::ack_stored("c-1", 1, true, "2026-11-21T20:52:59.623Z")
        )],
        "the ack, stamped when it is sent, to the sender only"
    );
    assert_eq!(h.server.awaiting_storage(), 0);
}

#[test]
fn messages_without_client_msg_id_v1_messages_and_directs_are_stored_and_leave_nothing_waiting() {
    let mut h = alice_and_bob(durable());
    h.connect(3, "carol");
    h.drain();
    let t0 = stamp(0);
    h.text(1, &v2::say("no key", None));
    let mut expected = sends(&[3], &harness::frame("message", "alice", "no key", &t0));
    expected.extend(sends(
        &[1, 2],
        &v2::message(1, "general", "alice", "no key", None, &t0),
    ));
    expected.push(store(0, 1, "alice", "no key", None, 0));
    assert_eq!(h.drain(), expected);

    h.text(3, "from v1");
    let mut expected = sends(&[3], &harness::frame("message", "carol", "from v1", &t0));
    expected.extend(sends(
        &[1, 2],
        &v2::message(2, "general", "carol", "from v1", None, &t0),
    ));
    expected.push(store(1, 2, "carol", "from v1", None, 0));
    assert_eq!(h.drain(), expected);

    h.text(1, &v2::dm("bob", "psst"));
    let dm = v2::direct("alice", "bob", "psst", "general", &t0);
    let mut expected = sends(&[1, 2], &dm);
    expected.push(Output::Store(Record {
        ticket: StoreTicket(2),
        room: room("general"),
        epoch: EPOCH,
        id: 0,
        user: "alice".into(),
        text: Payload::from("psst"),
        client_msg_id: None,
        timestamp: at(0),
        to: Some("bob".into()),
    }));
    assert_eq!(h.drain(), expected);

    // A direct message to nobody is not stored.
    h.text(1, &v2::dm("nobody", "x"));
    assert!(matches!(&h.drain()[..], [Output::Send { .. }]));

    assert_eq!(h.server.awaiting_storage(), 0, "no ack waits for these");
    h.stored(&[0, 1, 2]);
    assert_eq!(h.drain(), [], "nobody waits for an ack");
}

/// alice sent c-1, c-2, c-3 (tickets 0, 1, 2, ids 1, 2, 3); the live frames drained.
fn three_pending() -> Harness {
    let mut h = alice_and_bob(durable());
    for n in 1..=3 {
        h.text(1, &v2::say(&format!("m{n}"), Some(&format!("c-{n}"))));
    }
    h.drain();
    h
}

#[test]
fn stored_late_in_other_batches_and_out_of_order_acks_each_once_in_report_order() {
    let mut h = three_pending();
    h.advance(Duration::from_secs(30));
    h.activity(1);
    h.stored(&[2, 0]);
    let t = stamp(30);
    assert_eq!(
        h.drain(),
        [
            send(1, &v2::ack_stored("c-3", 3, true, &t)),
            send(1, &v2::ack_stored("c-1", 1, true, &t)),
        ]
    );
    h.advance(Duration::from_secs(1));
    h.stored(&[1, 1, 0, 99]);
    assert_eq!(
        h.drain(),
        [send(1, &v2::ack_stored("c-2", 2, true, &stamp(31)))],
        "repeated and unknown tickets are ignored"
    );
    h.stored(&[0, 1, 2]);
    h.store_failed(&[0, 1, 2]);
    assert_eq!(h.drain(), [], "answered tickets are forgotten");
}

#[test]
fn a_failed_batch_acks_with_stored_false_and_so_does_a_retry() {
    let mut h = three_pending();
    h.store_failed(&[1]);
    h.stored(&[0]);
    let t0 = stamp(0);
    assert_eq!(
        h.drain(),
        [
            send(1, &v2::ack_stored("c-2", 2, false, &t0)),
            send(1, &v2::ack_stored("c-1", 1, true, &t0)),
        ]
    );
    // Retries are answered at once, with what storage said; nothing is broadcast or stored.
    h.text(1, &v2::say("m2", Some("c-2")));
    h.text(1, &v2::say("m1", Some("c-1")));
    assert_eq!(
        h.drain(),
        [
            send(1, &v2::ack_stored("c-2", 2, false, &t0)),
            send(1, &v2::ack_stored("c-1", 1, true, &t0)),
        ]
    );
}

#[test]
fn an_ack_whose_sender_left_is_dropped_even_if_its_client_id_is_reused() {
    let mut h = three_pending();
    h.disconnect(1);
    h.connect_v2(1, "carol", "general");
    h.drain();
    h.stored(&[0]);
    h.store_failed(&[1]);
    assert_eq!(h.drain(), [], "carol is not the connection that sent them");
    // alice comes back and retries: her message is known, and stored.
    h.connect_v2(3, "alice", "general");
    h.drain();
    h.text(3, &v2::say("m1", Some("c-1")));
    h.text(3, &v2::say("m3", Some("c-3")));
    assert_eq!(
        h.drain(),
        [send(3, &v2::ack_stored("c-1", 1, true, &stamp(0)))],
        "c-1 is stored; c-3 still waits for storage"
    );
    h.stored(&[2]);
    assert_eq!(
        h.drain(),
        [send(3, &v2::ack_stored("c-3", 3, true, &stamp(0)))]
    );
}

#[test]
fn a_retry_of_a_pending_message_is_acked_with_it_and_of_a_stored_one_at_once() {
    let mut h = alice_and_bob(durable());
    h.connect_v2(3, "alice", "general");
    h.drain();
    h.text(1, &v2::say("hi", Some("c-1")));
    h.drain();
    // Retried from another tab, and twice from the first: no broadcast, no second Store.
    h.text(3, &v2::say("hi", Some("c-1")));
    h.text(1, &v2::say("hi", Some("c-1")));
    h.text(1, &v2::say("hi", Some("c-1")));
    assert_eq!(h.drain(), []);
    // bob's c-1 is another message.
    h.text(2, &v2::say("mine", Some("c-1")));
    let out = h.drain();
    assert_eq!(
        out.last(),
        Some(&store(1, 2, "bob", "mine", Some("c-1"), 0))
    );
    h.advance(Duration::from_secs(2));
    h.stored(&[0]);
    let ack = v2::ack_stored("c-1", 1, true, &stamp(2));
    assert_eq!(
        h.drain(),
        sends(&[1, 3], &ack),
        "each waiting connection once"
    );
    h.text(3, &v2::say("hi", Some("c-1")));
    assert_eq!(h.drain(), [send(3, &ack)]);
}

#[test]
fn a_retry_of_a_message_no_longer_held_is_a_new_message() {
    let mut h = alice_and_bob(durable().with_history(1));
    h.text(1, &v2::say("one", Some("c-1")));
    h.text(1, &v2::say("two", None));
    h.drain();
    h.text(1, &v2::say("one", Some("c-1")));
    let out = h.drain();
    assert_eq!(
        out.last(),
        Some(&store(2, 3, "alice", "one", Some("c-1"), 0))
    );
    // Both c-1 acks still come, each with its own id.
    h.stored(&[2, 0]);
    let t0 = stamp(0);
    assert_eq!(
        h.drain(),
        [
            send(1, &v2::ack_stored("c-1", 3, true, &t0)),
            send(1, &v2::ack_stored("c-1", 1, true, &t0)),
        ]
    );
}

#[test]
fn without_durable_nothing_is_stored_and_the_ack_has_no_stored_field() {
    let mut h = alice_and_bob(Config::default().with_epoch(EPOCH));
    h.text(1, &v2::say("hi", Some("c-1")));
    let t0 = stamp(0);
    let mut expected = sends(
        &[1, 2],
        &v2::message(1, "general", "alice", "hi", Some("c-1"), &t0),
    );
    expected.push(send(1, &v2::ack("c-1", 1, &t0)));
    assert_eq!(h.drain(), expected);
    // A driver that answers anyway changes nothing.
    h.stored(&[0]);
    h.fetched(0, Ok(vec![]));
    assert_eq!(h.drain(), []);
}

fn restored(id: u64, user: &str, key: Option<&str>) -> RestoredMessage {
    RestoredMessage {
        id,
        user: user.into(),
        text: format!("m{id}"),
        client_msg_id: key.map(Into::into),
        timestamp: at(0) - Duration::from_secs(3600),
        deleted: false,
    }
}

/// The `message` frame of [`restored`].
fn restored_frame(id: u64, user: &str, key: Option<&str>) -> String {
    v2::message(
        id,
        "general",
        user,
        &format!("m{id}"),
        key,
        "2026-11-21T19:52:58.123Z",
    )
}

/// A durable server restarted with `general` at id 42, holding 40..=42 (41 sent by alice as
/// c-9).
fn restarted(config: Config) -> Harness {
    let mut h = Harness::with_config(config);
    h.server.restore(
        vec![RestoredRoom {
            name: room("general"),
            last_id: 42,
            messages: vec![
                restored(40, "bob", None),
                restored(41, "alice", Some("c-9")),
                restored(42, "bob", None),
            ],
        }],
        7,
    );
    h
}

#[test]
fn after_a_restart_a_client_resumes_with_no_gap_and_no_duplicate_and_ids_continue() {
    let mut h = restarted(durable());
    assert_eq!(h.server.room_count(), 1);
    let t0 = stamp(0);
    h.connect_with(
        2,
        "bob",
        "general",
        Protocol::V2,
        Some(Resume {
            epoch: EPOCH,
            since: 41,
        }),
    );
    assert_eq!(
        h.drain(),
        [
            send(2, &v2::welcome("bob", "general", EPOCH, &["bob"], 100, &t0)),
            send(
                2,
                &v2::history(
                    "general",
                    EPOCH,
                    true,
                    &[restored_frame(42, "bob", None)],
                    &t0
                )
            ),
            send(2, &v2::connection("bob", "general", &t0)),
        ]
    );
    h.text(2, &v2::say("back", None));
    let mut expected = sends(&[2], &v2::message(43, "general", "bob", "back", None, &t0));
    expected.push(store(0, 43, "bob", "back", None, 0));
    assert_eq!(h.drain(), expected);

    // A fresh joiner gets the whole restored history and the new message.
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
                &[
                    restored_frame(40, "bob", None),
                    restored_frame(41, "alice", Some("c-9")),
                    restored_frame(42, "bob", None),
                    v2::message(43, "general", "bob", "back", None, &t0),
                ],
                &t0
            )
        )
    );
}

#[test]
fn a_retry_after_a_restart_is_acked_with_the_original_id_at_once() {
    let mut h = restarted(durable());
    h.connect_v2(1, "alice", "general");
    h.drain();
    h.text(1, &v2::say("m41", Some("c-9")));
    assert_eq!(
        h.drain(),
        [send(1, &v2::ack_stored("c-9", 41, true, &stamp(0)))]
    );
}

#[test]
fn new_rooms_start_after_every_retired_id_and_restored_rooms_are_forgettable() {
    // One room at most: the restored, empty `general` gives its place to `b`.
    let mut h = restarted(durable().with_max_rooms(1));
    h.connect_v2(1, "alice", "b");
    h.drain();
    assert_eq!(h.server.room_count(), 1);
    h.text(1, &v2::say("first", None));
    let out = h.drain();
    assert_eq!(
        out[0],
        send(1, &v2::message(43, "b", "alice", "first", None, &stamp(0))),
        "after general's 42, not after the retired 7"
    );

    // Rooms beyond max_rooms are dropped, and their ids still count.
    let mut h = Harness::with_config(durable().with_max_rooms(2));
    let empty = |name: &str, last_id| RestoredRoom {
        name: room(name),
        last_id,
        messages: vec![],
    };
    h.server.restore(
        vec![
            empty("general", 5),
            empty("a", 3),
            empty("b", 90),
            empty("a", 70),
        ],
        10,
    );
    assert_eq!(h.server.room_count(), 2);
    h.connect_v2(1, "alice", "a");
    h.drain();
    h.text(1, &v2::say("x", None));
    assert_eq!(
        h.drain()[0],
        send(1, &v2::message(4, "a", "alice", "x", None, &stamp(0)))
    );
    h.connect_v2(2, "bob", "c");
    h.drain();
    h.text(2, &v2::say("y", None));
    assert_eq!(
        h.drain()[0],
        send(2, &v2::message(91, "c", "bob", "y", None, &stamp(0))),
        "general forgotten for c; c starts after the dropped b's 90"
    );
}

#[test]
fn restored_messages_that_break_the_run_are_dropped() {
    let mut h = Harness::with_config(durable());
    h.server.restore(
        vec![RestoredRoom {
            name: room("general"),
            last_id: 42,
            messages: vec![
                restored(39, "bob", None),
                restored(41, "alice", Some("c-9")),
                restored(42, "bob", None),
                restored(42, "bob", None),
            ],
        }],
        0,
    );
    h.connect_v2(1, "alice", "general");
    let out = h.drain();
    assert_eq!(
        out[1],
        send(
            1,
            &v2::history(
                "general",
                EPOCH,
                false,
                &[restored_frame(42, "bob", None)],
                &stamp(0)
            )
        )
    );
    h.text(1, &v2::say("next", None));
    assert_eq!(
        h.drain()[0],
        send(
            1,
            &v2::message(43, "general", "alice", "next", None, &stamp(0))
        )
    );
}
