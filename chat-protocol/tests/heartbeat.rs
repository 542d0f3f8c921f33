//! Heartbeat pings, idle timeouts and the deadline contract, in virtual time.

mod harness;

use std::time::Duration;

use chat_protocol::{ClientId, CloseReason, Config, Output, RateLimit};
use harness::Harness;

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

fn ping(id: u64) -> Output {
    Output::Ping { to: ClientId(id) }
}

fn idle(id: u64) -> Output {
    Output::Close {
        client: ClientId(id),
        reason: CloseReason::Idle,
    }
}

/// A harness with client 1 connected at its start, join notice drained.
fn one_client(config: Config) -> Harness {
    let mut h = Harness::with_config(config);
    h.connect(1, "alice");
    h.drain();
    h
}

#[test]
fn a_silent_client_is_pinged_at_25_and_50_seconds_and_closed_at_60() {
    let mut h = one_client(Config::default());
    let start = h.now.instant;
    assert_eq!(h.server.poll_timeout(), Some(start + secs(25)));

    h.advance(secs(25) - Duration::from_millis(1));
    h.timeout();
    assert_eq!(h.drain(), vec![], "nothing before 25 s");

    h.advance(Duration::from_millis(1));
    h.timeout();
    assert_eq!(h.drain(), vec![ping(1)]);
    assert_eq!(h.server.poll_timeout(), Some(start + secs(50)));

    h.advance(secs(25));
    h.timeout();
    assert_eq!(h.drain(), vec![ping(1)]);
    assert_eq!(h.server.poll_timeout(), Some(start + secs(60)));

    h.advance(secs(10));
    h.timeout();
    assert_eq!(h.drain(), vec![idle(1)]);
    // Closed: nothing more is due for it, though it stays connected until its Disconnect.
    assert_eq!(h.server.poll_timeout(), None);
    assert_eq!(h.server.client_count(), 1);
    h.advance(secs(600));
    h.timeout();
    h.activity(1);
    h.text(1, "too late");
    assert_eq!(h.drain(), vec![]);

    h.disconnect(1);
    assert_eq!(h.drain(), vec![]);
    assert_eq!(h.server.poll_timeout(), None);
}

#[test]
fn activity_postpones_the_ping() {
    let mut h = one_client(Config::default());
    let start = h.now.instant;
    h.advance(secs(20));
    h.activity(1);
    // The old deadline is still reported (early is allowed); at it, nothing happens and the
    // real deadline comes out.
    assert_eq!(h.server.poll_timeout(), Some(start + secs(25)));
    h.advance(secs(5));
    h.timeout();
    assert_eq!(h.drain(), vec![]);
    assert_eq!(h.server.poll_timeout(), Some(start + secs(45)));
    h.advance(secs(20));
    h.timeout();
    assert_eq!(h.drain(), vec![ping(1)]);
}

/// Chat messages are proof of life too, even those the rate limit refuses.
#[test]
fn text_postpones_the_ping_even_when_rate_limited() {
    let slow = RateLimit {
        burst: 1,
        per_second: 0.001,
    };
    let mut h = one_client(Config::default().with_rate_limit(Some(slow)));
    let start = h.now.instant;
    h.text(1, "accepted");
    h.advance(secs(20));
    h.text(1, "refused");
    let out = h.drain();
    assert!(
        matches!(&out[..], [_, Output::Send { payload, .. }] if payload.as_str().contains("rate_limited")),
        "{out:?}"
    );
    h.advance(secs(5));
    h.timeout();
    assert_eq!(h.drain(), vec![]);
    assert_eq!(h.server.poll_timeout(), Some(start + secs(45)));
}

/// A driver that follows `poll_timeout` and answers every ping a second later: pinged every
/// 26 s for ten minutes, never closed.
#[test]
fn answering_pings_keeps_a_client_alive_forever() {
    let mut h = one_client(Config::default());
    let start = h.now.instant;
    let mut pinged_at = Vec::new();
    while h.now.instant < start + secs(600) {
        let next = h.server.poll_timeout().expect("a deadline is pending");
        h.advance(next - h.now.instant);
        h.timeout();
        match &h.drain()[..] {
            [] => {}
            [Output::Ping { to: ClientId(1) }] => {
                pinged_at.push((h.now.instant - start).as_secs());
                h.advance(secs(1));
                h.activity(1);
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    let expected: Vec<u64> = (0..)
        .map(|k| 25 + 26 * k)
        .take_while(|&t| t <= 600)
        .collect();
    assert_eq!(pinged_at, expected);
}

#[test]
fn a_client_active_on_its_own_is_never_pinged() {
    let mut h = one_client(Config::default());
    for _ in 0..60 {
        h.advance(secs(10));
        h.activity(1);
        h.timeout();
        assert_eq!(h.drain(), vec![]);
    }
}

/// A driver that wakes up late gets what is due at its `now`: closing wins over pinging.
#[test]
fn a_late_timeout_closes_without_pinging_first() {
    let mut h = one_client(Config::default());
    h.advance(secs(100));
    h.timeout();
    assert_eq!(h.drain(), vec![idle(1)]);
}

#[test]
fn early_and_repeated_timeouts_do_nothing() {
    let mut h = Harness::new();
    h.timeout();
    h.timeout();
    assert_eq!(h.drain(), vec![]);

    h.connect(1, "alice");
    h.drain();
    for _ in 0..24 {
        h.advance(secs(1));
        h.timeout();
        h.timeout();
    }
    assert_eq!(h.drain(), vec![]);
    h.advance(secs(1));
    h.timeout();
    h.timeout();
    h.timeout();
    assert_eq!(h.drain(), vec![ping(1)]);
}

#[test]
fn leaving_clears_the_deadlines() {
    let mut h = one_client(Config::default());
    h.connect(2, "bob");
    h.drain();
    h.disconnect(1);
    h.drain();
    assert!(h.server.poll_timeout().is_some());
    h.disconnect(2);
    assert_eq!(h.server.poll_timeout(), None);
    h.advance(secs(600));
    h.timeout();
    assert_eq!(h.drain(), vec![]);
}

/// A new connection reusing a ClientId is not confused with the old one's deadlines.
#[test]
fn a_reused_client_id_starts_fresh_deadlines() {
    let mut h = one_client(Config::default());
    h.connect(2, "bob"); // keeps the server from forgetting every deadline at once
    let start = h.now.instant;
    h.advance(secs(10));
    h.disconnect(1);
    h.connect(1, "alice again");
    h.drain();
    h.advance(secs(15));
    h.timeout();
    assert_eq!(
        h.drain(),
        vec![ping(2)],
        "the old connection's deadline is stale"
    );
    assert_eq!(h.server.poll_timeout(), Some(start + secs(35)));
    h.advance(secs(10));
    h.timeout();
    assert_eq!(h.drain(), vec![ping(1)]);
}

#[test]
fn staggered_clients_are_pinged_in_deadline_order() {
    let mut h = Harness::new();
    let start = h.now.instant;
    // Connected one second apart, in an order unrelated to their ids; 7 and 8 together.
    let joins = [(5, 0), (3, 1), (9, 2), (1, 3), (8, 4), (7, 4), (2, 5)];
    let mut at = 0;
    for (id, t) in joins {
        h.advance(secs(t - at));
        at = t;
        h.connect(id, &format!("u{id}"));
    }
    h.drain();

    let mut pings = Vec::new();
    while let Some(next) = h.server.poll_timeout() {
        if next >= start + secs(40) {
            break;
        }
        h.advance(next - h.now.instant);
        h.timeout();
        let secs_in = (h.now.instant - start).as_secs();
        pings.extend(h.drain().into_iter().map(|o| match o {
            Output::Ping { to } => (secs_in, to.0),
            other => panic!("unexpected {other:?}"),
        }));
    }
    assert_eq!(
        pings,
        [
            (25, 5),
            (26, 3),
            (27, 9),
            (28, 1),
            (29, 7),
            (29, 8),
            (30, 2)
        ]
    );
}

#[test]
fn each_deadline_can_be_switched_off() {
    let cases = [
        // (heartbeat, idle timeout, what happens in the first two minutes of silence)
        (None, None, vec![]),
        (None, Some(secs(60)), vec![(60, idle(1))]),
        (
            Some(secs(25)),
            None,
            vec![(25, ping(1)), (50, ping(1)), (75, ping(1)), (100, ping(1))],
        ),
        (Some(Duration::ZERO), Some(secs(60)), vec![(60, idle(1))]),
        (Some(secs(90)), Some(secs(60)), vec![(60, idle(1))]),
        (
            Some(secs(30)),
            Some(secs(60)),
            vec![(30, ping(1)), (60, idle(1))],
        ),
        (Some(secs(25)), Some(Duration::ZERO), vec![(0, idle(1))]),
        (Some(Duration::MAX), Some(Duration::MAX), vec![]),
    ];
    for (heartbeat, idle_timeout, expected) in cases {
        let config = Config::default()
            .with_heartbeat_interval(heartbeat)
            .with_idle_timeout(idle_timeout);
        let mut h = one_client(config);
        let start = h.now.instant;
        let mut got = Vec::new();
        while let Some(next) = h.server.poll_timeout() {
            if next > start + secs(120) {
                break;
            }
            h.advance(next - h.now.instant);
            h.timeout();
            let secs_in = (h.now.instant - start).as_secs();
            got.extend(h.drain().into_iter().map(|o| (secs_in, o)));
        }
        assert_eq!(
            got, expected,
            "heartbeat {heartbeat:?}, idle {idle_timeout:?}"
        );
    }
}
