//! Scenario tests of the tutorial protocol, in virtual time.

mod harness;

use std::time::Duration;

use chat_protocol::{ChatServer, ClientId, Config, Error, Input, Output, Protocol, RoomName};
use harness::{frame, sends, Harness};

const T0: &str = "2026-11-21T20:52:58.123Z";

#[test]
fn join_is_announced_to_everyone_including_the_joiner() {
    let mut h = Harness::new();
    h.connect(1, "alice");
    assert_eq!(
        h.drain(),
        sends(
            &[1],
            &frame("connection", "alice", "alice joined the chat", T0)
        )
    );

    h.advance(Duration::from_millis(1500));
    h.connect(2, "bob");
    assert_eq!(
        h.drain(),
        sends(
            &[1, 2],
            &frame(
                "connection",
                "bob",
                "bob joined the chat",
                "2026-11-21T20:52:59.623Z"
            )
        )
    );
}

#[test]
fn a_message_reaches_everyone_including_the_sender() {
    let mut h = Harness::new();
    h.connect(1, "alice");
    h.connect(2, "bob");
    h.connect(3, "carol");
    h.drain();

    h.text(2, "hello");
    assert_eq!(
        h.drain(),
        sends(&[1, 2, 3], &frame("message", "bob", "hello", T0))
    );
}

#[test]
fn leave_is_announced_to_the_others() {
    let mut h = Harness::new();
    h.connect(1, "alice");
    h.connect(2, "bob");
    h.connect(3, "carol");
    h.drain();

    h.disconnect(2);
    assert_eq!(
        h.drain(),
        sends(
            &[1, 3],
            &frame("disconnection", "bob", "bob left the chat", T0)
        )
    );
    assert_eq!(h.server.client_count(), 2);
    assert_eq!(h.server.user(ClientId(2)), None);
}

#[test]
fn the_last_client_leaving_sends_nothing() {
    let mut h = Harness::new();
    h.connect(7, "solo");
    h.drain();
    h.disconnect(7);
    assert_eq!(h.drain(), vec![]);
}

#[test]
fn every_recipient_shares_one_encoded_payload() {
    let mut h = Harness::new();
    for id in 0..50 {
        h.connect(id, &format!("u{id}"));
    }
    h.drain();
    h.text(0, "shared");
    let payloads: Vec<_> = h
        .drain()
        .into_iter()
        .map(|o| match o {
            Output::Send { payload, .. } => payload,
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(payloads.len(), 50);
    let first = payloads[0].as_str().as_ptr();
    assert!(
        payloads.iter().all(|p| p.as_str().as_ptr() == first),
        "every recipient must point at the same buffer"
    );
}

#[test]
fn same_user_name_twice_is_two_clients() {
    // The tutorial does not make names unique: two tabs as "alice" are two connections.
    let mut h = Harness::new();
    h.connect(1, "alice");
    h.connect(2, "alice");
    h.drain();
    h.disconnect(1);
    assert_eq!(
        h.drain(),
        sends(
            &[2],
            &frame("disconnection", "alice", "alice left the chat", T0)
        )
    );
}

/// Text is relayed exactly as sent, whatever it contains; JSON escaping is the encoder's job.
#[test]
fn message_text_is_relayed_verbatim() {
    let cases = [
        "",
        " padded ",
        "quote \" backslash \\ newline \n tab \t",
        "<img src=x onerror=alert(1)>",
        "emoji 🎉 and ünïcödé, 中文",
        "{\"type\":\"connection\",\"client_id\":\"spoof\"}",
        "\u{0}\u{1f}",
    ];
    for text in cases {
        let mut h = Harness::new();
        h.connect(1, "alice");
        h.drain();
        h.text(1, text);
        let out = h.drain();
        assert_eq!(
            out,
            sends(&[1], &frame("message", "alice", text, T0)),
            "{text:?}"
        );
        let Output::Send { payload, .. } = &out[0] else {
            unreachable!()
        };
        let v: serde_json::Value = serde_json::from_str(payload.as_str()).expect("valid JSON");
        assert_eq!(v["message"], text);
        assert_eq!(v["type"], "message");
    }
}

#[test]
fn frames_keep_the_tutorial_field_order() {
    let mut h = Harness::new();
    h.connect(1, "alice");
    let out = h.drain();
    let Output::Send { payload, .. } = &out[0] else {
        unreachable!()
    };
    assert_eq!(
        payload.as_str(),
        r#"{"type":"connection","client_id":"alice","message":"alice joined the chat","timestamp":"2026-11-21T20:52:58.123Z"}"#
    );
}

#[test]
fn timestamps_follow_the_injected_wall_clock() {
    let mut h = Harness::new();
    h.connect(1, "a");
    h.drain();
    for (step, expected) in [
        (Duration::from_millis(1), "2026-11-21T20:52:58.124Z"),
        (Duration::from_secs(3600), "2026-11-21T21:52:58.124Z"),
        (Duration::from_secs(86_400 * 10), "2026-12-01T21:52:58.124Z"),
    ] {
        h.advance(step);
        h.text(1, "x");
        assert_eq!(
            h.drain(),
            sends(&[1], &frame("message", "a", "x", expected))
        );
    }
}

#[test]
fn driver_contract_errors_leave_the_state_unchanged() {
    let mut h = Harness::new();
    h.connect(1, "alice");
    h.drain();
    let now = h.now;
    let s: &mut ChatServer = &mut h.server;
    assert_eq!(
        s.handle_input(
            now,
            Input::Connect {
                client: ClientId(1),
                user: "again".into(),
                room: RoomName::default(),
                protocol: Protocol::V1,
                resume: None,
            }
        ),
        Err(Error::AlreadyConnected(ClientId(1)))
    );
    assert_eq!(
        s.handle_input(
            now,
            Input::Text {
                client: ClientId(9),
                text: "x".into()
            }
        ),
        Err(Error::UnknownClient(ClientId(9)))
    );
    assert_eq!(
        s.handle_input(
            now,
            Input::Activity {
                client: ClientId(9)
            }
        ),
        Err(Error::UnknownClient(ClientId(9)))
    );
    assert_eq!(
        s.handle_input(
            now,
            Input::Disconnect {
                client: ClientId(9)
            }
        ),
        Err(Error::UnknownClient(ClientId(9)))
    );
    assert_eq!(s.poll_output(), None);
    assert_eq!(s.user(ClientId(1)), Some("alice"));
}

#[test]
fn without_heartbeat_or_idle_timeout_no_deadline_is_pending() {
    let config = Config::default()
        .with_heartbeat_interval(None)
        .with_idle_timeout(None);
    let mut h = Harness::with_config(config);
    assert_eq!(h.server.poll_timeout(), None);
    h.connect(1, "a");
    h.drain();
    assert_eq!(h.server.poll_timeout(), None);
    h.timeout();
    h.advance(Duration::from_secs(86_400));
    h.timeout();
    assert_eq!(h.drain(), vec![]);
    assert_eq!(h.server.poll_timeout(), None);
}

#[test]
fn fan_out_order_is_the_same_for_every_message() {
    let mut h = Harness::new();
    for id in [5, 3, 9, 1] {
        h.connect(id, &format!("u{id}"));
    }
    h.drain();
    for sender in [9, 1, 5] {
        h.text(sender, "m");
        let order: Vec<u64> = h
            .drain()
            .iter()
            .map(|o| match o {
                Output::Send { to, .. } => to.0,
                other => panic!("unexpected {other:?}"),
            })
            .collect();
        assert_eq!(order, vec![1, 3, 5, 9]);
    }
}
