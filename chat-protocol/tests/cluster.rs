//! Cluster mode: messages published through the cluster and delivered when heard back, acks
//! and failures, retries, repeated and missed ids (catch-up, gap), cluster-wide presence and
//! the welcome union, v1 per-connection notices from other nodes, typing and direct messages
//! across nodes, a new epoch, resume and scroll-back from the cluster's log; and two nodes
//! joined by a tiny in-test "Redis" showing one order with the same ids.

mod harness;

use std::collections::BTreeMap;

use chat_protocol::{
    ClientId, ClusterAck, Config, Input, Output, Payload, Protocol, PublishRefused,
    RestoredMessage, RestoredRoom, Resume, RoomName, StoreTicket, MAX_CATCH_UP,
};
use harness::{error_frame, frame, room, send, sends, v2, Harness};

const EPOCH: u64 = 1_795_294_378_000;
const T0: &str = "2026-11-21T20:52:58.123Z";
const NOT_SENT: &str = "not sent: the cluster is unreachable; send it again (with the same client_msg_id it is sent once)";

fn cluster() -> Config {
    Config::default().with_cluster(true).with_epoch(EPOCH)
}

fn general() -> RoomName {
    room("general")
}

/// A message as the cluster gives it, sent at the scenario's start.
fn logged(id: u64, user: &str, text: &str, key: Option<&str>) -> RestoredMessage {
    RestoredMessage {
        id,
        user: user.into(),
        text: text.into(),
        client_msg_id: key.map(str::to_owned),
        timestamp: harness::start_wall(),
        deleted: false,
    }
}

/// The message `id` ("m{id}" by alice) from the cluster, in `general`.
fn heard(h: &mut Harness, id: u64) {
    h.input(Input::ClusterMessage {
        room: general(),
        epoch: EPOCH,
        message: logged(id, "alice", &format!("m{id}"), None),
    });
}

fn m(id: u64) -> String {
    v2::message(id, "general", "alice", &format!("m{id}"), None, T0)
}

fn m_v1(id: u64) -> String {
    frame("message", "alice", &format!("m{id}"), T0)
}

fn publish(ticket: u64, user: &str, text: &str, key: Option<&str>) -> Output {
    Output::ClusterPublish {
        ticket: StoreTicket(ticket),
        room: general(),
        user: user.into(),
        text: Payload::from(text),
        client_msg_id: key.map(str::to_owned),
        timestamp: harness::start_wall(),
    }
}

fn published(h: &mut Harness, ticket: u64, id: u64) {
    h.input(Input::ClusterPublished {
        ticket: StoreTicket(ticket),
        result: Ok(ClusterAck {
            epoch: EPOCH,
            id,
            duplicate: false,
        }),
    });
}

fn join(user: &str) -> Output {
    Output::ClusterJoin {
        room: general(),
        user: user.into(),
    }
}

/// alice (1) and bob (2), v2, and carol (3), v1, in `general` of a cluster node; drained.
fn three() -> Harness {
    let mut h = Harness::with_config(cluster());
    h.connect_v2(1, "alice", "general");
    h.connect_v2(2, "bob", "general");
    h.connect(3, "carol");
    h.drain();
    h
}

#[test]
fn a_local_message_is_published_not_delivered_then_delivered_when_heard_and_acked_on_the_answer() {
    let mut h = three();
    h.text(1, &v2::say("hi", Some("c-1")));
    assert_eq!(
        h.drain(),
        [publish(0, "alice", "hi", Some("c-1"))],
        "no id, no broadcast, no Store"
    );
    h.input(Input::ClusterMessage {
        room: general(),
        epoch: EPOCH,
        message: logged(1, "alice", "hi", Some("c-1")),
    });
    let mut expected = sends(&[3], &frame("message", "alice", "hi", T0));
    expected.extend(sends(
        &[1, 2],
        &v2::message(1, "general", "alice", "hi", Some("c-1"), T0),
    ));
    assert_eq!(h.drain(), expected);
    published(&mut h, 0, 1);
    assert_eq!(h.drain(), [send(1, &v2::ack("c-1", 1, T0))]);
    assert_eq!(h.server.awaiting_cluster(), 0);

    // A late or unknown answer is ignored.
    published(&mut h, 0, 1);
    published(&mut h, 77, 1);
    assert_eq!(h.drain(), []);

    // A v1 message and a v2 one without a key are acked by nobody.
    h.text(3, "from v1");
    h.text(2, &v2::say("no key", None));
    assert_eq!(
        h.drain(),
        [
            publish(1, "carol", "from v1", None),
            publish(2, "bob", "no key", None)
        ]
    );
    published(&mut h, 1, 2);
    published(&mut h, 2, 3);
    assert_eq!(h.drain(), []);
}

#[test]
fn a_failed_publish_is_an_error_for_the_sender_v1_or_v2() {
    let mut h = three();
    h.text(3, "hello");
    h.text(1, &v2::say("hi", Some("c-1")));
    h.drain();
    for ticket in [0, 1] {
        h.input(Input::ClusterPublished {
            ticket: StoreTicket(ticket),
            result: Err("connection refused".into()),
        });
    }
    assert_eq!(
        h.drain(),
        [
            send(
                3,
                &error_frame("carol", NOT_SENT, T0, "cluster_unavailable")
            ),
            send(1, &v2::error("alice", NOT_SENT, "cluster_unavailable", T0)),
        ]
    );
    // The retry is published again (the cluster recognises it if the first got through).
    h.text(1, &v2::say("hi", Some("c-1")));
    assert_eq!(h.drain(), [publish(2, "alice", "hi", Some("c-1"))]);
    // A sender gone meanwhile hears nothing.
    h.disconnect(1);
    h.drain();
    h.input(Input::ClusterPublished {
        ticket: StoreTicket(2),
        result: Err("timeout".into()),
    });
    assert_eq!(h.drain(), []);
}

#[test]
fn a_retry_while_pending_waits_for_the_same_answer_and_one_in_history_is_acked_at_once() {
    let mut h = three();
    h.connect_v2(4, "alice", "general");
    h.drain();
    h.text(1, &v2::say("hi", Some("c-1")));
    h.text(1, &v2::say("hi", Some("c-1")));
    h.text(4, &v2::say("hi again", Some("c-1")));
    assert_eq!(
        h.drain(),
        [publish(0, "alice", "hi", Some("c-1"))],
        "published once"
    );
    // bob's c-1 is another message.
    h.text(2, &v2::say("mine", Some("c-1")));
    assert_eq!(h.drain(), [publish(1, "bob", "mine", Some("c-1"))]);

    // The cluster says it was a retry of one published before (another node, earlier).
    h.input(Input::ClusterPublished {
        ticket: StoreTicket(0),
        result: Ok(ClusterAck {
            epoch: EPOCH,
            id: 7,
            duplicate: true,
        }),
    });
    assert_eq!(
        h.drain(),
        sends(&[1, 4], &v2::ack("c-1", 7, T0)),
        "each waiting connection once"
    );

    // Once it is in the room's history, a retry is acked at once, without the cluster.
    h.input(Input::ClusterMessage {
        room: general(),
        epoch: EPOCH,
        message: logged(1, "bob", "mine", Some("c-1")),
    });
    h.drain();
    h.text(2, &v2::say("mine", Some("c-1")));
    assert_eq!(h.drain(), [send(2, &v2::ack("c-1", 1, T0))]);
    published(&mut h, 1, 1);
    assert_eq!(h.drain(), [send(2, &v2::ack("c-1", 1, T0))]);
    assert_eq!(h.server.awaiting_cluster(), 0);
}

#[test]
fn an_id_heard_twice_or_of_an_older_epoch_is_ignored() {
    let mut h = three();
    heard(&mut h, 1);
    heard(&mut h, 2);
    h.drain();
    heard(&mut h, 2);
    heard(&mut h, 1);
    h.input(Input::ClusterMessage {
        room: general(),
        epoch: EPOCH - 1,
        message: logged(3, "alice", "old epoch", None),
    });
    h.input(Input::ClusterMessage {
        room: general(),
        epoch: EPOCH,
        message: logged(0, "alice", "id 0", None),
    });
    assert_eq!(h.drain(), []);
    heard(&mut h, 3);
    let mut expected = sends(&[3], &m_v1(3));
    expected.extend(sends(&[1, 2], &m(3)));
    assert_eq!(h.drain(), expected);
}

/// The frames of message `id` for carol (v1), then alice and bob (v2).
fn delivered(ids: impl IntoIterator<Item = u64>) -> Vec<Output> {
    let mut out = Vec::new();
    for id in ids {
        out.extend(sends(&[3], &m_v1(id)));
        out.extend(sends(&[1, 2], &m(id)));
    }
    out
}

#[test]
fn a_missed_stretch_is_caught_up_in_order_each_message_once() {
    let mut h = three();
    heard(&mut h, 1);
    h.drain();
    heard(&mut h, 4);
    assert_eq!(
        h.drain(),
        [Output::ClusterFetchAfter {
            ticket: StoreTicket(0),
            room: general(),
            after: 1,
            limit: 2,
        }]
    );
    heard(&mut h, 5);
    heard(&mut h, 4);
    assert_eq!(h.drain(), [], "buffered while the catch-up is out");
    assert_eq!(h.server.awaiting_cluster(), 1);
    // The log answers with an overlap: 1 to 4.
    h.fetched(
        0,
        Ok((1..=4)
            .map(|id| logged(id, "alice", &format!("m{id}"), None))
            .collect()),
    );
    assert_eq!(h.drain(), delivered(2..=5));
    heard(&mut h, 5);
    heard(&mut h, 6);
    assert_eq!(h.drain(), delivered([6]));
    assert_eq!(h.server.awaiting_cluster(), 0);

    // A late second answer is ignored.
    h.fetched(0, Ok(vec![logged(7, "alice", "m7", None)]));
    assert_eq!(h.drain(), []);
}

fn catch_up_gap(since: u64, next: u64) -> String {
    v2::gap(
        "general",
        EPOCH,
        since,
        &format!(
            "messages after {since} did not reach this server (the cluster was unreachable); the next is {next}; scroll back with history_before to read them"
        ),
        T0,
    )
}

#[test]
fn a_failed_catch_up_delivers_what_came_after_a_gap_for_v2_members() {
    let mut h = three();
    heard(&mut h, 1);
    heard(&mut h, 4);
    heard(&mut h, 5);
    h.drain();
    h.fetched(0, Err(harness::failed()));
    let mut expected = sends(&[1, 2], &catch_up_gap(1, 4));
    expected.extend(delivered(4..=5));
    assert_eq!(h.drain(), expected, "v1 clients just continue");

    // The history starts again at 4: a joiner gets 4 and 5, and a resume from 1 reads the
    // cluster's log (as from storage).
    h.connect_with(
        9,
        "dave",
        "general",
        Protocol::V2,
        Some(Resume {
            epoch: EPOCH,
            since: 1,
        }),
    );
    assert_eq!(
        h.drain(),
        [
            Output::Fetch {
                client: ClientId(9),
                ticket: StoreTicket(1),
                room: general(),
                before: 4,
                limit: 2,
            },
            send(3, &frame("connection", "dave", "dave joined the chat", T0)),
            join("dave"),
        ]
    );

    // A log that has only part of the stretch: what it has, then a gap.
    heard(&mut h, 9);
    h.drain();
    h.fetched(2, Ok(vec![logged(7, "alice", "m7", None)]));
    let mut expected = sends(&[1, 2], &catch_up_gap(5, 7));
    expected.extend(delivered([7]));
    expected.extend(sends(&[1, 2], &catch_up_gap(7, 9)));
    expected.extend(delivered([9]));
    assert_eq!(h.drain(), expected);
}

#[test]
fn a_full_catch_up_buffer_gives_up_waiting_with_a_gap() {
    let mut h = three();
    heard(&mut h, 1);
    h.drain();
    let first = 3;
    let last = first + MAX_CATCH_UP as u64;
    for id in first..last {
        heard(&mut h, id);
    }
    assert_eq!(
        h.drain(),
        [Output::ClusterFetchAfter {
            ticket: StoreTicket(0),
            room: general(),
            after: 1,
            limit: 1,
        }]
    );
    heard(&mut h, last);
    let mut expected = sends(&[1, 2], &catch_up_gap(1, first));
    expected.extend(delivered(first..=last));
    assert_eq!(h.drain(), expected);
    assert_eq!(h.server.awaiting_cluster(), 0);
    h.fetched(0, Ok(vec![logged(2, "alice", "m2", None)]));
    assert_eq!(h.drain(), [], "the answer came too late");
}

#[test]
fn a_room_with_no_history_starts_at_the_first_id_heard_and_rooms_stay_bounded() {
    let mut h = Harness::with_config(cluster().with_max_rooms(2));
    h.connect_v2(1, "alice", "general");
    h.drain();
    heard(&mut h, 57);
    assert_eq!(h.drain(), [send(1, &m(57))]);
    heard(&mut h, 58);
    assert_eq!(h.drain(), [send(1, &m(58))]);

    // A room nobody here is in is made, vacant, for its history.
    let other = |id| Input::ClusterMessage {
        room: room("other"),
        epoch: EPOCH,
        message: logged(id, "zed", "x", None),
    };
    h.input(other(5));
    assert_eq!((h.drain(), h.server.room_count()), (vec![], 2));
    // A third room takes the vacant one's place; one more finds none to take and is dropped.
    h.connect_v2(2, "bob", "third");
    h.drain();
    h.input(other(6));
    assert_eq!((h.drain(), h.server.room_count()), (vec![], 2));
    assert!(h.server.rooms().iter().all(|r| r.name != room("other")));
}

#[test]
fn presence_is_the_clusters_for_v2_and_welcome_lists_the_union() {
    let mut h = Harness::with_config(cluster());
    h.server.restore_presence(vec![
        (general(), vec!["bob".into(), "zed".into()]),
        (room("empty"), vec![]),
    ]);
    h.connect(3, "carol");
    assert_eq!(
        h.drain(),
        [
            send(
                3,
                &frame("connection", "carol", "carol joined the chat", T0)
            ),
            join("carol"),
        ]
    );
    h.connect_v2(1, "alice", "general");
    assert_eq!(
        h.drain(),
        [
            send(
                1,
                &v2::welcome(
                    "alice",
                    "general",
                    EPOCH,
                    &["alice", "bob", "carol", "zed"],
                    100,
                    T0
                )
            ),
            send(1, &v2::history("general", EPOCH, false, &[], T0)),
            send(
                3,
                &frame("connection", "alice", "alice joined the chat", T0)
            ),
            join("alice"),
        ],
        "no v2 notice from the core itself"
    );
    // The cluster's edges, once each: alice's own (heard back), then dave's.
    let presence = |user: &str, joined| Input::ClusterPresence {
        room: general(),
        user: user.into(),
        joined,
    };
    h.input(presence("alice", true));
    assert_eq!(
        h.drain(),
        [send(1, &v2::connection("alice", "general", T0))]
    );
    h.input(presence("dave", true));
    h.input(presence("dave", true));
    assert_eq!(h.drain(), [send(1, &v2::connection("dave", "general", T0))]);
    h.input(presence("dave", false));
    h.input(presence("dave", false));
    assert_eq!(
        h.drain(),
        [send(1, &v2::disconnection("dave", "general", T0))]
    );
    // A room nobody here is in: remembered, nobody told.
    h.input(Input::ClusterPresence {
        room: room("elsewhere"),
        user: "yan".into(),
        joined: true,
    });
    assert_eq!(h.drain(), []);

    // A second tab's welcome lists alice once.
    h.connect_v2(4, "alice", "general");
    assert_eq!(
        h.drain()[0],
        send(
            4,
            &v2::welcome(
                "alice",
                "general",
                EPOCH,
                &["alice", "bob", "carol", "zed"],
                100,
                T0
            )
        )
    );
    // Local disconnects: v1 notices as always, no v2 notice, the cluster told.
    h.disconnect(4);
    h.disconnect(1);
    assert_eq!(
        h.drain(),
        [
            send(
                3,
                &frame("disconnection", "alice", "alice left the chat", T0)
            ),
            Output::ClusterLeave {
                room: general(),
                user: "alice".into()
            },
            send(
                3,
                &frame("disconnection", "alice", "alice left the chat", T0)
            ),
            Output::ClusterLeave {
                room: general(),
                user: "alice".into()
            },
        ]
    );
}

#[test]
fn v1_clients_hear_every_connection_of_other_nodes() {
    let mut h = three();
    let connection = |joined| Input::ClusterConnection {
        room: general(),
        user: "erin".into(),
        joined,
    };
    h.input(connection(true));
    assert_eq!(
        h.drain(),
        [send(
            3,
            &frame("connection", "erin", "erin joined the chat", T0)
        )]
    );
    h.input(connection(true));
    h.input(connection(false));
    assert_eq!(
        h.drain(),
        [
            send(3, &frame("connection", "erin", "erin joined the chat", T0)),
            send(3, &frame("disconnection", "erin", "erin left the chat", T0)),
        ]
    );
    h.input(Input::ClusterConnection {
        room: room("elsewhere"),
        user: "erin".into(),
        joined: true,
    });
    assert_eq!(h.drain(), []);
}

#[test]
fn typing_crosses_nodes() {
    let mut h = three();
    h.text(1, v2::TYPING);
    assert_eq!(
        h.drain(),
        [
            send(2, &v2::typing("alice", "general", T0)),
            Output::ClusterTyping {
                room: general(),
                user: "alice".into()
            },
        ]
    );
    h.text(1, v2::TYPING);
    assert_eq!(
        h.drain(),
        [],
        "throttled here, so not sent to the cluster either"
    );
    h.input(Input::ClusterTyping {
        room: general(),
        user: "zed".into(),
    });
    assert_eq!(h.drain(), sends(&[1, 2], &v2::typing("zed", "general", T0)));
}

#[test]
fn direct_messages_reach_the_recipient_on_any_node() {
    let mut h = three();
    h.input(Input::ClusterPresence {
        room: general(),
        user: "zed".into(),
        joined: true,
    });
    h.drain();
    // Only on another node: echoed here, handed to the cluster.
    h.text(1, &v2::dm("zed", "psst"));
    assert_eq!(
        h.drain(),
        [
            send(1, &v2::direct("alice", "zed", "psst", "general", T0)),
            Output::ClusterDirect {
                room: general(),
                from: "alice".into(),
                to: "zed".into(),
                text: "psst".into(),
                timestamp: harness::start_wall(),
            },
        ]
    );
    // Here only (bob's edge not heard yet): as on one node.
    h.text(1, &v2::dm("bob", "hi"));
    assert_eq!(
        h.drain(),
        sends(&[1, 2], &v2::direct("alice", "bob", "hi", "general", T0))
    );
    // Here and on the cluster: here as on one node, and to its other nodes' connections.
    h.input(Input::ClusterPresence {
        room: general(),
        user: "bob".into(),
        joined: true,
    });
    h.drain();
    h.text(1, &v2::dm("bob", "hi"));
    let mut expected = sends(&[1, 2], &v2::direct("alice", "bob", "hi", "general", T0));
    expected.push(Output::ClusterDirect {
        room: general(),
        from: "alice".into(),
        to: "bob".into(),
        text: "hi".into(),
        timestamp: harness::start_wall(),
    });
    assert_eq!(h.drain(), expected);
    // Nowhere.
    h.text(1, &v2::dm("nobody", "x"));
    assert_eq!(
        h.drain(),
        [send(
            1,
            &v2::error(
                "alice",
                "unknown recipient \"nobody\": no such user with a chat.v2 connection in this room",
                "unknown_recipient",
                T0
            )
        )]
    );
    // From another node: to the recipient's v2 connections here.
    h.input(Input::ClusterDirect {
        room: general(),
        from: "zed".into(),
        to: "bob".into(),
        text: "yo".into(),
        timestamp: harness::start_wall(),
    });
    assert_eq!(
        h.drain(),
        [send(2, &v2::direct("zed", "bob", "yo", "general", T0))]
    );
    h.input(Input::ClusterDirect {
        room: general(),
        from: "zed".into(),
        to: "carol".into(),
        text: "v1 has no direct frame".into(),
        timestamp: harness::start_wall(),
    });
    assert_eq!(h.drain(), []);
}

#[test]
fn a_new_epoch_restarts_ids_and_clears_histories() {
    let mut h = three();
    heard(&mut h, 1);
    heard(&mut h, 2);
    heard(&mut h, 5);
    h.drain();
    assert_eq!(h.server.awaiting_cluster(), 1, "a catch-up is out");
    let e2 = EPOCH + 1000;
    h.input(Input::ClusterEpoch { epoch: e2 });
    h.input(Input::ClusterEpoch { epoch: e2 });
    assert_eq!(h.drain(), []);
    assert_eq!(h.server.awaiting_cluster(), 0, "the catch-up is dropped");
    h.fetched(0, Ok(vec![logged(3, "alice", "m3", None)]));
    assert_eq!(h.drain(), [], "its answer is ignored");

    // The old epoch's messages are ignored; the new one's start at 1.
    heard(&mut h, 6);
    h.input(Input::ClusterMessage {
        room: general(),
        epoch: e2,
        message: logged(1, "alice", "m1", None),
    });
    let message = v2::message(1, "general", "alice", "m1", None, T0);
    let mut expected = sends(&[3], &m_v1(1));
    expected.extend(sends(&[1, 2], &message));
    assert_eq!(h.drain(), expected);
    h.connect_v2(4, "dave", "general");
    let out = h.drain();
    assert_eq!(
        out[..2],
        [
            send(
                4,
                &v2::welcome(
                    "dave",
                    "general",
                    e2,
                    &["alice", "bob", "carol", "dave"],
                    100,
                    T0
                )
            ),
            send(4, &v2::history("general", e2, false, &[message], T0)),
        ]
    );

    // A message of a later epoch is a new epoch by itself.
    let e3 = e2 + 1000;
    h.input(Input::ClusterMessage {
        room: general(),
        epoch: e3,
        message: logged(1, "alice", "m1", None),
    });
    let mut expected = sends(&[3], &m_v1(1));
    expected.extend(sends(
        &[1, 2, 4],
        &v2::message(1, "general", "alice", "m1", None, T0),
    ));
    assert_eq!(h.drain(), expected);
}

/// A cluster node whose `general` the driver seeded from the log: messages 1 to 10, the last
/// five held (`history` 5).
fn seeded() -> Harness {
    let mut h = Harness::with_config(cluster().with_history(5));
    h.server.restore(
        vec![RestoredRoom {
            name: general(),
            last_id: 10,
            messages: (1..=10)
                .map(|id| logged(id, "alice", &format!("m{id}"), None))
                .collect(),
        }],
        0,
    );
    h
}

#[test]
fn resume_and_scroll_back_read_the_clusters_log_as_from_storage() {
    let mut h = seeded();
    h.connect_with(
        1,
        "bob",
        "general",
        Protocol::V2,
        Some(Resume {
            epoch: EPOCH,
            since: 3,
        }),
    );
    assert_eq!(
        h.drain(),
        [
            Output::Fetch {
                client: ClientId(1),
                ticket: StoreTicket(0),
                room: general(),
                before: 6,
                limit: 2,
            },
            join("bob"),
        ]
    );
    h.fetched(
        0,
        Ok(vec![
            logged(4, "alice", "m4", None),
            logged(5, "alice", "m5", None),
        ]),
    );
    assert_eq!(
        h.drain(),
        [
            send(1, &v2::welcome("bob", "general", EPOCH, &["bob"], 5, T0)),
            send(
                1,
                &v2::history(
                    "general",
                    EPOCH,
                    true,
                    &(4..=10).map(m).collect::<Vec<_>>(),
                    T0
                )
            ),
        ]
    );

    // Scroll-back beyond memory asks the log too.
    h.text(1, &v2::before(6, Some(3)));
    assert_eq!(
        h.drain(),
        [Output::Fetch {
            client: ClientId(1),
            ticket: StoreTicket(1),
            room: general(),
            before: 6,
            limit: 3,
        }]
    );
    h.fetched(
        1,
        Ok((3..=5)
            .map(|id| logged(id, "alice", &format!("m{id}"), None))
            .collect()),
    );
    assert_eq!(
        h.drain(),
        [send(
            1,
            &v2::history_page("general", 6, &(3..=5).map(m).collect::<Vec<_>>(), true, T0)
        )]
    );

    // A seeded room continues after its last id: 12 is a missed stretch.
    h.input(Input::ClusterMessage {
        room: general(),
        epoch: EPOCH,
        message: logged(12, "alice", "m12", None),
    });
    assert_eq!(
        h.drain(),
        [Output::ClusterFetchAfter {
            ticket: StoreTicket(2),
            room: general(),
            after: 10,
            limit: 1,
        }]
    );
}

#[test]
fn the_server_api_cannot_publish_in_cluster_mode_yet() {
    let mut h = three();
    h.input(Input::Publish {
        room: general(),
        user: None,
        text: "maintenance at noon".into(),
    });
    assert_eq!(
        h.drain(),
        [Output::Published {
            room: general(),
            result: Err(PublishRefused::ClusterMode),
        }]
    );
}

/// A tiny Redis: a counter and a log per room, dedup keys, presence counts, and one ordered
/// list of events every node hears.
#[derive(Default)]
struct MiniRedis {
    log: BTreeMap<RoomName, Vec<RestoredMessage>>,
    dedup: BTreeMap<(RoomName, String, String), u64>,
    connections: BTreeMap<(RoomName, String), usize>,
}

/// An event for every node, or for every node but its origin.
struct Broadcast {
    origin: usize,
    to_origin: bool,
    input: Input,
}

impl MiniRedis {
    /// Drains every node and carries out their cluster outputs until nothing moves. Returns
    /// what each node asked its clients to get, in order.
    fn pump(&mut self, nodes: &mut [Harness]) -> Vec<Vec<Output>> {
        let mut seen: Vec<Vec<Output>> = vec![Vec::new(); nodes.len()];
        loop {
            let mut answers: Vec<(usize, Input)> = Vec::new();
            let mut events: Vec<Broadcast> = Vec::new();
            for (i, node) in nodes.iter_mut().enumerate() {
                for output in node.drain() {
                    self.carry_out(i, output, &mut answers, &mut events, &mut seen[i]);
                }
            }
            if answers.is_empty() && events.is_empty() {
                return seen;
            }
            for e in events {
                for (i, node) in nodes.iter_mut().enumerate() {
                    if i != e.origin || e.to_origin {
                        node.input(e.input.clone());
                    }
                }
            }
            for (i, input) in answers {
                nodes[i].input(input);
            }
        }
    }

    fn carry_out(
        &mut self,
        node: usize,
        output: Output,
        answers: &mut Vec<(usize, Input)>,
        events: &mut Vec<Broadcast>,
        seen: &mut Vec<Output>,
    ) {
        let mut all = |to_origin, input| {
            events.push(Broadcast {
                origin: node,
                to_origin,
                input,
            })
        };
        let joined = matches!(output, Output::ClusterJoin { .. });
        match output {
            Output::ClusterPublish {
                ticket,
                room,
                user,
                text,
                client_msg_id,
                timestamp,
            } => {
                let log = self.log.entry(room.clone()).or_default();
                let key = client_msg_id
                    .clone()
                    .map(|k| (room.clone(), user.to_string(), k));
                if let Some(&id) = key.as_ref().and_then(|k| self.dedup.get(k)) {
                    let ack = ClusterAck {
                        epoch: EPOCH,
                        id,
                        duplicate: true,
                    };
                    answers.push((
                        node,
                        Input::ClusterPublished {
                            ticket,
                            result: Ok(ack),
                        },
                    ));
                    return;
                }
                let id = log.len() as u64 + 1;
                let message = RestoredMessage {
                    id,
                    user: user.to_string(),
                    text: text.as_str().to_owned(),
                    client_msg_id,
                    timestamp,
                    deleted: false,
                };
                log.push(message.clone());
                if let Some(k) = key {
                    self.dedup.insert(k, id);
                }
                all(
                    true,
                    Input::ClusterMessage {
                        room,
                        epoch: EPOCH,
                        message,
                    },
                );
                let ack = ClusterAck {
                    epoch: EPOCH,
                    id,
                    duplicate: false,
                };
                answers.push((
                    node,
                    Input::ClusterPublished {
                        ticket,
                        result: Ok(ack),
                    },
                ));
            }
            Output::ClusterJoin { room, user } | Output::ClusterLeave { room, user } => {
                let count = self
                    .connections
                    .entry((room.clone(), user.to_string()))
                    .or_default();
                let edge = if joined {
                    *count += 1;
                    *count == 1
                } else {
                    *count -= 1;
                    *count == 0
                };
                let user = user.to_string();
                all(
                    false,
                    Input::ClusterConnection {
                        room: room.clone(),
                        user: user.clone(),
                        joined,
                    },
                );
                if edge {
                    all(true, Input::ClusterPresence { room, user, joined });
                }
            }
            Output::ClusterTyping { room, user } => all(
                false,
                Input::ClusterTyping {
                    room,
                    user: user.to_string(),
                },
            ),
            Output::ClusterDirect {
                room,
                from,
                to,
                text,
                timestamp,
            } => all(
                false,
                Input::ClusterDirect {
                    room,
                    from: from.to_string(),
                    to,
                    text,
                    timestamp,
                },
            ),
            Output::ClusterFetchAfter {
                ticket,
                room,
                after,
                limit,
            } => {
                let found = self.log.get(&room).into_iter().flatten();
                let result = Ok(found
                    .filter(|m| m.id > after)
                    .take(limit)
                    .cloned()
                    .collect());
                answers.push((node, Input::Fetched { ticket, result }));
            }
            other => seen.push(other),
        }
    }
}

/// The frames one client got, as text.
fn frames_of(out: &[Output], client: u64) -> Vec<String> {
    out.iter()
        .filter_map(|o| match o {
            Output::Send { to, payload } if *to == ClientId(client) => {
                Some(payload.as_str().to_owned())
            }
            _ => None,
        })
        .collect()
}

#[test]
fn two_nodes_show_one_order_with_the_same_ids_and_one_presence() {
    let mut redis = MiniRedis::default();
    let mut nodes = [
        Harness::with_config(cluster()),
        Harness::with_config(cluster()),
    ];
    // alice (v2) and carol (v1) on node 0, bob (v2) on node 1.
    nodes[0].connect_v2(1, "alice", "general");
    nodes[0].connect(2, "carol");
    nodes[1].connect_v2(1, "bob", "general");
    let seen = redis.pump(&mut nodes);
    assert_eq!(
        frames_of(&seen[0], 1),
        [
            v2::welcome("alice", "general", EPOCH, &["alice"], 100, T0),
            v2::history("general", EPOCH, false, &[], T0),
            v2::connection("alice", "general", T0),
            v2::connection("carol", "general", T0),
            v2::connection("bob", "general", T0),
        ]
    );
    assert_eq!(
        frames_of(&seen[0], 2),
        [
            frame("connection", "carol", "carol joined the chat", T0),
            frame("connection", "bob", "bob joined the chat", T0),
        ],
        "carol hears bob's connection on the other node"
    );
    assert_eq!(
        frames_of(&seen[1], 1),
        [
            v2::welcome("bob", "general", EPOCH, &["bob"], 100, T0),
            v2::history("general", EPOCH, false, &[], T0),
            v2::connection("alice", "general", T0),
            v2::connection("carol", "general", T0),
            v2::connection("bob", "general", T0),
        ]
    );

    // Both chat at once; a retry lands on the other node (bob's second tab there... as alice).
    nodes[1].text(1, &v2::say("b1", Some("k-b")));
    nodes[0].text(1, &v2::say("a1", Some("k-a")));
    nodes[0].text(2, "c1");
    nodes[1].text(1, &v2::say("b2", None));
    let seen = redis.pump(&mut nodes);
    let msg = |id, user: &str, text: &str, key| v2::message(id, "general", user, text, key, T0);
    let order = [
        msg(1, "alice", "a1", Some("k-a")),
        msg(2, "carol", "c1", None),
        msg(3, "bob", "b1", Some("k-b")),
        msg(4, "bob", "b2", None),
    ];
    let mut alice = order.to_vec();
    alice.push(v2::ack("k-a", 1, T0));
    assert_eq!(frames_of(&seen[0], 1), alice);
    let mut bob = order.to_vec();
    bob.push(v2::ack("k-b", 3, T0));
    assert_eq!(
        frames_of(&seen[1], 1),
        bob,
        "the same order and ids on the other node"
    );
    assert_eq!(
        frames_of(&seen[0], 2),
        [
            frame("message", "alice", "a1", T0),
            frame("message", "carol", "c1", T0),
            frame("message", "bob", "b1", T0),
            frame("message", "bob", "b2", T0),
        ]
    );

    // bob's retry of k-b from a new tab on node 0: acked with the original id, not sent twice.
    nodes[0].connect_v2(3, "bob", "general");
    redis.pump(&mut nodes);
    nodes[0].text(3, &v2::say("b1", Some("k-b")));
    let seen = redis.pump(&mut nodes);
    assert_eq!(frames_of(&seen[0], 3), [v2::ack("k-b", 3, T0)]);
    assert_eq!(seen[1], [], "nothing new on the other node");

    // A direct message and typing across, then bob leaves node 1 but stays on node 0.
    nodes[1].text(1, &v2::dm("alice", "psst"));
    nodes[0].text(1, v2::TYPING);
    let seen = redis.pump(&mut nodes);
    assert_eq!(
        frames_of(&seen[0], 1),
        [v2::direct("bob", "alice", "psst", "general", T0)]
    );
    assert_eq!(
        frames_of(&seen[1], 1),
        [
            v2::direct("bob", "alice", "psst", "general", T0),
            v2::typing("alice", "general", T0),
        ]
    );
    nodes[1].disconnect(1);
    let seen = redis.pump(&mut nodes);
    assert_eq!(
        frames_of(&seen[0], 2),
        [frame("disconnection", "bob", "bob left the chat", T0)],
        "v1: one connection left"
    );
    assert_eq!(
        frames_of(&seen[0], 1),
        Vec::<String>::new(),
        "v2: bob is still here"
    );
}

#[test]
fn an_admin_deletion_goes_through_the_cluster_and_is_marked_when_it_comes_back() {
    let mut h = three();
    h.grant_admin(1);
    heard(&mut h, 1);
    heard(&mut h, 2);
    h.drain();
    // Nothing is marked here yet: the cluster is asked, every node (this one too) hears it.
    h.text(1, r#"{"type":"delete","id":2}"#);
    assert_eq!(
        h.drain(),
        [Output::ClusterDelete {
            room: general(),
            id: 2,
        }]
    );
    // An id the room never gave is refused at once.
    h.text(1, r#"{"type":"delete","id":9}"#);
    assert_eq!(
        h.drain(),
        [send(
            1,
            &v2::error(
                "alice",
                "there is no message 9 in this room to delete",
                "unknown_message",
                T0
            )
        )]
    );
    // The deletion comes back (from this node or another): v2 members hear it, v1 nothing.
    h.input(Input::ClusterDeleted {
        room: general(),
        id: 2,
    });
    assert_eq!(h.drain(), sends(&[1, 2], &v2::deleted("general", 2, T0)));
    // A later joiner's history shows it deleted.
    h.connect_v2(4, "dave", "general");
    let joined = h.drain();
    let history = joined
        .iter()
        .find_map(|o| match o {
            Output::Send { to, payload }
                if *to == ClientId(4) && payload.as_str().contains("\"history\"") =>
            {
                Some(payload.as_str().to_owned())
            }
            _ => None,
        })
        .expect("dave's history");
    assert!(history.contains("\"deleted\":true"), "{history}");
    assert!(!history.contains("\"m2\""), "the text is gone: {history}");
}
