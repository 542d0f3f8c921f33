//! Per-connection rate limiting, in virtual time.

mod harness;

use std::time::Duration;

use chat_protocol::{ClientId, CloseReason, Config, Output, RateLimit};
use harness::{error_frame, frame, sends, Harness};

const T0: &str = "2026-11-21T20:52:58.123Z";
const DEFAULT_REJECTION: &str = "rate limit exceeded: at most 5 messages per second (burst 20)";

fn close(id: u64, reason: CloseReason) -> Vec<Output> {
    vec![Output::Close {
        client: ClientId(id),
        reason,
    }]
}

/// alice (1) and bob (2), connected at T0 with `config`, join notices drained.
fn room(config: Config) -> Harness {
    let mut h = Harness::with_config(config);
    h.connect(1, "alice");
    h.connect(2, "bob");
    h.drain();
    h
}

#[test]
fn a_burst_is_accepted_and_the_next_message_is_refused_to_the_sender_only() {
    let mut h = room(Config::default());
    for i in 0..20 {
        let text = format!("m{i}");
        h.text(1, &text);
        assert_eq!(
            h.drain(),
            sends(&[1, 2], &frame("message", "alice", &text, T0)),
            "message {i}"
        );
    }

    h.text(1, "one too many");
    assert_eq!(
        h.drain(),
        sends(
            &[1],
            &error_frame("alice", DEFAULT_REJECTION, T0, "rate_limited")
        )
    );

    // 200 ms at 5 per second is one token: one more message, and only one.
    h.advance(Duration::from_millis(200));
    h.text(1, "later");
    let t = "2026-11-21T20:52:58.323Z";
    assert_eq!(
        h.drain(),
        sends(&[1, 2], &frame("message", "alice", "later", t))
    );
    h.text(1, "too soon");
    assert_eq!(
        h.drain(),
        sends(
            &[1],
            &error_frame("alice", DEFAULT_REJECTION, t, "rate_limited")
        )
    );

    // The other client's bucket is its own.
    h.text(2, "bob is fine");
    assert_eq!(
        h.drain(),
        sends(&[1, 2], &frame("message", "bob", "bob is fine", t))
    );
}

#[test]
fn the_error_frame_keeps_the_tutorial_fields_first_then_the_code() {
    let mut h = room(Config::default().with_rate_limit(Some(RateLimit {
        burst: 1,
        per_second: 1.0,
    })));
    h.text(1, "ok");
    h.drain();
    h.text(1, "refused");
    let out = h.drain();
    let [Output::Send { to, payload }] = &out[..] else {
        panic!("expected one frame, got {out:?}")
    };
    assert_eq!(*to, ClientId(1));
    assert_eq!(
        payload.as_str(),
        r#"{"type":"error","client_id":"alice","message":"rate limit exceeded: at most 1 message per second (burst 1)","timestamp":"2026-11-21T20:52:58.123Z","code":"rate_limited"}"#
    );
}

/// A flood at one instant: `burst` broadcasts, `burst` error frames, one close, then silence.
#[test]
fn a_sustained_flood_is_closed_once_then_ignored() {
    for (burst, per_second) in [(20, 5.0), (1, 1.0), (3, 0.5), (5, 1000.0)] {
        let limit = RateLimit { burst, per_second };
        let rejection = format!(
            "rate limit exceeded: at most {per_second} {} per second (burst {burst})",
            if per_second == 1.0 {
                "message"
            } else {
                "messages"
            }
        );
        let mut h = room(Config::default().with_rate_limit(Some(limit)));
        let mut expected = Vec::new();
        for _ in 0..burst {
            expected.extend(sends(&[1, 2], &frame("message", "alice", "spam", T0)));
        }
        for _ in 0..burst {
            expected.extend(sends(
                &[1],
                &error_frame("alice", &rejection, T0, "rate_limited"),
            ));
        }
        expected.extend(close(1, CloseReason::RateLimited));

        let mut got = Vec::new();
        for _ in 0..(3 * burst + 100) {
            h.text(1, "spam");
            got.extend(h.drain());
        }
        assert_eq!(got, expected, "{limit:?}");
        // `burst` refusals with an error frame, and the one that closed the client.
        assert_eq!(
            h.server.messages_rate_limited(),
            u64::from(burst) + 1,
            "{limit:?}"
        );

        // Closed: alice is no longer addressed, bob still chats, alice's leaving is announced.
        h.advance(Duration::from_secs(3600));
        h.text(1, "still here?");
        h.activity(1);
        assert_eq!(h.drain(), vec![], "{limit:?}");
        h.text(2, "hi");
        let t = "2026-11-21T21:52:58.123Z";
        assert_eq!(
            h.drain(),
            sends(&[2], &frame("message", "bob", "hi", t)),
            "{limit:?}"
        );
        h.disconnect(1);
        assert_eq!(
            h.drain(),
            sends(
                &[2],
                &frame("disconnection", "alice", "alice left the chat", t)
            ),
            "{limit:?}"
        );
    }
}

#[test]
fn an_accepted_message_restarts_the_count_of_rejections() {
    let limit = RateLimit {
        burst: 2,
        per_second: 1.0,
    };
    let mut h = room(Config::default().with_rate_limit(Some(limit)));
    let verdicts = |h: &mut Harness, n: usize| -> Vec<&'static str> {
        (0..n)
            .map(|_| {
                h.text(1, "x");
                match &h.drain()[..] {
                    [Output::Send { .. }, Output::Send { .. }] => "broadcast",
                    [Output::Send { to, .. }] if *to == ClientId(1) => "refused",
                    [Output::Close { .. }] => "closed",
                    [] => "ignored",
                    other => panic!("unexpected {other:?}"),
                }
            })
            .collect()
    };
    assert_eq!(
        verdicts(&mut h, 4),
        ["broadcast", "broadcast", "refused", "refused"]
    );
    h.advance(Duration::from_secs(1));
    assert_eq!(
        verdicts(&mut h, 5),
        ["broadcast", "refused", "refused", "closed", "ignored"]
    );
}

#[test]
fn a_reconnection_starts_with_a_full_bucket() {
    let limit = RateLimit {
        burst: 2,
        per_second: 0.001,
    };
    let mut h = room(Config::default().with_rate_limit(Some(limit)));
    for _ in 0..5 {
        h.text(1, "x");
    }
    assert_eq!(h.drain().last(), close(1, CloseReason::RateLimited).last());
    h.disconnect(1);
    h.connect(1, "alice again");
    h.drain();
    h.text(1, "hello");
    h.text(1, "again");
    assert_eq!(h.drain().len(), 4, "two broadcasts to two clients");
}

#[test]
fn without_a_rate_limit_a_thousand_messages_are_all_broadcast() {
    let mut h = room(Config::default().with_rate_limit(None));
    for _ in 0..1000 {
        h.text(1, "x");
        assert_eq!(
            h.drain(),
            sends(&[1, 2], &frame("message", "alice", "x", T0))
        );
    }
}

/// Limits that cannot limit anything are off, not a panic or a server that refuses everything.
#[test]
fn degenerate_limits_are_off() {
    for (burst, per_second) in [
        (0, 5.0),
        (20, 0.0),
        (20, -1.0),
        (20, f64::NAN),
        (20, f64::INFINITY),
        (0, 0.0),
    ] {
        let limit = RateLimit { burst, per_second };
        let mut h = room(Config::default().with_rate_limit(Some(limit)));
        for _ in 0..100 {
            h.text(1, "x");
            assert_eq!(
                h.drain(),
                sends(&[1, 2], &frame("message", "alice", "x", T0)),
                "{limit:?}"
            );
        }
    }
}

#[test]
fn close_reasons_map_to_close_frames_and_metric_labels() {
    for (reason, code, text, label) in [
        (
            CloseReason::RateLimited,
            1008,
            "rate limit exceeded",
            "rate_limit",
        ),
        (CloseReason::Idle, 1001, "idle timeout", "idle"),
        (
            CloseReason::TooManyRooms,
            1008,
            "too many rooms",
            "too_many_rooms",
        ),
    ] {
        assert_eq!(
            (reason.code(), reason.text(), reason.label()),
            (code, text, label)
        );
        assert!(reason.text().len() <= 123, "fits a close frame");
    }
}
