//! Scroll-back: `history_before` answered from memory, or through storage (`Fetch`, then
//! `Fetched`: in time, late, failed, after the client left, malformed), and its limits.

mod harness;

use std::time::Duration;

use chat_protocol::{Config, Output, RestoredRoom, StoreTicket, MAX_FETCHES_IN_FLIGHT};
use harness::{failed, restored, restored_frame as frame, room, send, v2, Harness};

const EPOCH: u64 = 1_795_294_378_000;
const T0: &str = "2026-11-21T20:52:58.123Z";

fn frames(ids: impl IntoIterator<Item = u64>) -> Vec<String> {
    ids.into_iter().map(frame).collect()
}

/// alice (1, v2) in `general`, restored at id 50 with 41..=50 in memory (history 10).
fn restarted(config: Config) -> Harness {
    let mut h = Harness::with_config(config.with_epoch(EPOCH).with_history(10));
    h.server.restore(
        vec![RestoredRoom {
            name: room("general"),
            last_id: 50,
            messages: (41..=50).map(restored).collect(),
        }],
        0,
    );
    h.connect_v2(1, "alice", "general");
    h.drain();
    h
}

fn durable() -> Config {
    Config::default().with_durable(true)
}

fn fetch(ticket: u64, before: u64, limit: usize) -> Output {
    Output::Fetch {
        client: chat_protocol::ClientId(1),
        ticket: StoreTicket(ticket),
        room: room("general"),
        before,
        limit,
    }
}

fn page(before: u64, ids: impl IntoIterator<Item = u64>, more: bool) -> Output {
    send(
        1,
        &v2::history_page("general", before, &frames(ids), more, T0),
    )
}

#[test]
fn in_memory_mode_pages_come_from_the_ring() {
    let mut h = restarted(Config::default());
    let cases: &[(u64, Option<usize>, &[u64], bool)] = &[
        // (before, limit, ids, more): `more` only while the ring holds older ones.
        (51, Some(4), &[47, 48, 49, 50], true),
        (u64::MAX, Some(4), &[47, 48, 49, 50], true),
        (45, Some(4), &[41, 42, 43, 44], false),
        (45, Some(3), &[42, 43, 44], true),
        (45, None, &[41, 42, 43, 44], false),
        (42, Some(100), &[41], false),
        (41, Some(5), &[], false),
        (1, Some(5), &[], false),
    ];
    for &(before, limit, ids, more) in cases {
        h.text(1, &v2::before(before, limit));
        assert_eq!(
            h.drain(),
            [page(before, ids.iter().copied(), more)],
            "{before} {limit:?}"
        );
    }
}

#[test]
fn an_empty_room_gives_an_empty_page_in_both_modes() {
    for config in [Config::default(), durable()] {
        let mut h = Harness::with_config(config);
        h.connect_v2(1, "alice", "general");
        h.drain();
        h.text(1, &v2::before(10, None));
        assert_eq!(h.drain(), [page(10, [], false)]);
    }
}

#[test]
fn durable_pages_that_memory_holds_are_answered_at_once() {
    let mut h = restarted(durable());
    h.text(1, &v2::before(51, Some(5)));
    assert_eq!(h.drain(), [page(51, 46..=50, true)]);
    h.text(1, &v2::before(45, Some(4)));
    assert_eq!(h.drain(), [page(45, 41..=44, true)], "storage may hold 40");
    assert_eq!(h.server.awaiting_storage(), 0);
}

#[test]
fn older_pages_come_from_storage_merged_with_what_memory_held() {
    let mut h = restarted(durable());
    h.text(1, &v2::before(45, Some(10)));
    assert_eq!(
        h.drain(),
        [fetch(0, 41, 6)],
        "storage is asked only for what memory does not hold"
    );
    // The room moves on meanwhile: 41..44 leave memory, the page still has them.
    for n in 0..10 {
        h.text(1, &v2::say(&format!("new {n}"), None));
    }
    h.drain();
    h.advance(Duration::from_secs(3));
    h.fetched(0, Ok((35..=40).map(restored).collect()));
    assert_eq!(
        h.drain(),
        [send(
            1,
            &v2::history_page(
                "general",
                45,
                &frames(35..=44),
                true,
                "2026-11-21T20:53:01.123Z"
            )
        )]
    );

    // Wholly below memory: the whole page from storage; short means nothing older.
    h.text(1, &v2::before(20, Some(3)));
    assert_eq!(h.drain(), [fetch(11, 20, 3)]);
    h.fetched(11, Ok(vec![restored(18), restored(19)]));
    assert_eq!(
        h.drain(),
        [send(
            1,
            &v2::history_page(
                "general",
                20,
                &frames(18..=19),
                false,
                "2026-11-21T20:53:01.123Z"
            )
        )]
    );
}

#[test]
fn what_storage_returns_beyond_the_request_is_dropped() {
    let mut h = restarted(durable());
    h.text(1, &v2::before(30, Some(3)));
    assert_eq!(h.drain(), [fetch(0, 30, 3)]);
    // Too many, one not below `before`, one out of order: the newest three in order remain.
    h.fetched(
        0,
        Ok([20, 25, 24, 26, 27, 30, 45]
            .into_iter()
            .map(restored)
            .collect()),
    );
    assert_eq!(h.drain(), [page(30, [25, 26, 27], true)]);
}

#[test]
fn a_failed_fetch_is_an_error_a_late_or_unknown_one_is_nothing() {
    let mut h = restarted(durable());
    h.text(1, &v2::before(30, None));
    h.text(1, &v2::before(20, None));
    assert_eq!(h.drain(), [fetch(0, 30, 50), fetch(1, 20, 50)]);
    h.fetched(1, Err(failed()));
    assert_eq!(
        h.drain(),
        [send(
            1,
            &v2::error(
                "alice",
                "older messages could not be read from storage; try again later",
                "store_unavailable",
                T0
            )
        )]
    );
    h.fetched(1, Ok(vec![]));
    h.fetched(7, Ok(vec![]));
    assert_eq!(h.drain(), [], "answered and unknown tickets are ignored");
    // The client leaves, its id is reused: the page is for nobody.
    h.disconnect(1);
    h.connect_v2(1, "carol", "general");
    h.drain();
    h.fetched(0, Ok(vec![restored(29)]));
    assert_eq!(h.drain(), []);
    assert_eq!(h.server.awaiting_storage(), 0);
}

#[test]
fn a_connection_has_at_most_a_few_fetches_in_flight() {
    let mut h = restarted(durable().with_rate_limit(None));
    for n in 0..MAX_FETCHES_IN_FLIGHT as u64 {
        h.text(1, &v2::before(30, Some(1)));
        assert_eq!(h.drain(), [fetch(n, 30, 1)]);
    }
    h.text(1, &v2::before(30, Some(1)));
    assert_eq!(
        h.drain(),
        [send(
            1,
            &v2::error(
                "alice",
                "at most 4 history_before requests may wait at once; ask again after a history_page",
                "too_many_fetches",
                T0
            )
        )]
    );
    // Pages from memory do not count.
    h.text(1, &v2::before(51, Some(1)));
    assert_eq!(h.drain(), [page(51, [50], true)]);
    // Another connection has its own allowance.
    h.connect_v2(2, "bob", "general");
    h.drain();
    h.text(2, &v2::before(30, Some(1)));
    assert!(matches!(
        &h.drain()[..],
        [Output::Fetch {
            ticket: StoreTicket(4),
            ..
        }]
    ));
    h.fetched(2, Err(failed()));
    h.drain();
    h.text(1, &v2::before(30, Some(1)));
    assert_eq!(
        h.drain(),
        [fetch(5, 30, 1)],
        "one answered, one more allowed"
    );
}

#[test]
fn malformed_history_before_is_a_bad_command_and_costs_no_token() {
    let burst = chat_protocol::RateLimit {
        burst: 1,
        per_second: 0.001,
    };
    let mut h = restarted(Config::default().with_rate_limit(Some(burst)));
    let cases = [
        (
            r#"{"type":"history_before"}"#,
            r#"a "history_before" command needs "before", a positive integer"#,
        ),
        (
            r#"{"type":"history_before","before":0}"#,
            r#"a "history_before" command needs "before", a positive integer"#,
        ),
        (
            r#"{"type":"history_before","before":5,"limit":0}"#,
            "limit must be 1 to 100",
        ),
        (
            r#"{"type":"history_before","before":5,"limit":101}"#,
            "limit must be 1 to 100",
        ),
    ];
    for (command, explanation) in cases {
        h.text(1, command);
        assert_eq!(
            h.drain(),
            [send(1, &v2::error("alice", explanation, "bad_command", T0))]
        );
    }
    for _ in 0..5 {
        h.text(1, &v2::before(51, Some(1)));
        assert_eq!(h.drain(), [page(51, [50], true)], "no token spent");
    }
    // The one token is still there.
    h.text(1, &v2::say("hi", None));
    let out = h.drain();
    assert_eq!(out.len(), 1);
    assert!(
        matches!(&out[0], Output::Send { payload, .. } if payload.as_str().contains("\"type\":\"message\""))
    );
}
