//! History within a memory budget: the per-room byte bound, and the budget over all rooms
//! (`Config::history_budget`, moved with `Input::HistoryBudget`) that forgets the oldest
//! messages of the least recently active room first. Whatever is trimmed, joiners see exactly
//! what is held, a resume from before it gets a `gap`, and durable scroll-back reads it from
//! storage.

mod harness;

use std::time::Duration;

use chat_protocol::{ClientId, Config, Input, Output, Protocol, Resume, StoreTicket};
use harness::{room, send, v2, Harness};

const EPOCH: u64 = 1_795_294_378_000;

/// The timestamp `secs` seconds after the harness's start.
fn stamp(secs: u64) -> String {
    (harness::start_wall() + Duration::from_secs(secs))
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}

/// Three v1 senders named `s`, client 1 in `a`, 2 in `b`, 3 in `c`; no rate limit.
fn three_rooms(config: Config) -> Harness {
    let mut h = Harness::with_config(config.with_epoch(EPOCH).with_rate_limit(None));
    for (id, name) in [(1, "a"), (2, "b"), (3, "c")] {
        h.connect_with(id, "s", name, Protocol::V1, None);
    }
    h.drain();
    h
}

/// Posts `text` from client `id` one second after the last post; returns the second.
fn post(h: &mut Harness, clock: &mut u64, id: u64, text: &str) {
    h.advance(Duration::from_secs(1));
    *clock += 1;
    h.text(id, text);
    h.drain();
}

/// The `welcome` and `history` a v2 joiner `id` (user `j`, first in the room besides `s`)
/// gets in `name`, at `secs`, given the held messages `(id, text, posted at)`.
fn greeting(id: u64, name: &str, secs: u64, held: &[(u64, &str, u64)]) -> Vec<Output> {
    let t = stamp(secs);
    let messages: Vec<String> = held
        .iter()
        .map(|&(mid, text, at)| v2::message(mid, name, "s", text, None, &stamp(at)))
        .collect();
    vec![
        send(id, &v2::welcome("j", name, EPOCH, &["j", "s"], 100, &t)),
        send(id, &v2::history(name, EPOCH, false, &messages, &t)),
    ]
}

/// Joins `name` as v2 client `id` and returns its `welcome` and `history` (the connection
/// notices that follow are dropped), then leaves again.
fn join(h: &mut Harness, id: u64, name: &str) -> Vec<Output> {
    h.connect_with(id, "j", name, Protocol::V2, None);
    let mut out = h.drain();
    out.truncate(2);
    h.disconnect(id);
    h.drain();
    out
}

#[test]
fn the_budget_trims_the_oldest_messages_of_the_least_recently_active_room_first() {
    let mut h = three_rooms(Config::default());
    let mut t = 0;
    // Activity: a at 1-2, b at 3-4, c at 5-6, a again at 7. Least recent now: b, then c, then a.
    for (id, text) in [
        (1, "a1"),
        (1, "a2"),
        (2, "b1"),
        (2, "b2"),
        (3, "c1"),
        (3, "c2"),
        (1, "a3"),
    ] {
        post(&mut h, &mut t, id, text);
    }
    let unit = h.server.history_bytes() / 7;
    assert_eq!(h.server.history_bytes(), 7 * unit, "messages of one size");
    assert_eq!(h.server.history_trimmed(), 0);

    // Room for six: b's oldest goes.
    h.input(Input::HistoryBudget { bytes: 6 * unit });
    assert_eq!(h.drain(), [], "trimming says nothing to anyone");
    assert_eq!(
        (h.server.history_bytes(), h.server.history_trimmed()),
        (6 * unit, 1)
    );
    assert_eq!(join(&mut h, 10, "b"), greeting(10, "b", t, &[(2, "b2", 4)]));

    // Room for four: the rest of b, then c's oldest; a, the most recently active, keeps all.
    h.input(Input::HistoryBudget { bytes: 4 * unit });
    assert_eq!(
        (h.server.history_bytes(), h.server.history_trimmed()),
        (4 * unit, 3)
    );
    assert_eq!(join(&mut h, 10, "b"), greeting(10, "b", t, &[]));
    assert_eq!(join(&mut h, 11, "c"), greeting(11, "c", t, &[(2, "c2", 6)]));
    assert_eq!(
        join(&mut h, 12, "a"),
        greeting(12, "a", t, &[(1, "a1", 1), (2, "a2", 2), (3, "a3", 7)])
    );

    // The budget holds as messages arrive: b's new message makes b the most recent, and the
    // least recently active room now is c.
    post(&mut h, &mut t, 2, "b3");
    assert_eq!(
        (h.server.history_bytes(), h.server.history_trimmed()),
        (4 * unit, 4)
    );
    assert_eq!(join(&mut h, 10, "b"), greeting(10, "b", t, &[(3, "b3", t)]));
    assert_eq!(join(&mut h, 11, "c"), greeting(11, "c", t, &[]));
    // Then a's oldest, while b keeps its newest.
    post(&mut h, &mut t, 3, "c3");
    assert_eq!(join(&mut h, 11, "c"), greeting(11, "c", t, &[(3, "c3", t)]));
    assert_eq!(
        join(&mut h, 12, "a"),
        greeting(12, "a", t, &[(2, "a2", 2), (3, "a3", 7)])
    );

    // A resume from before what was trimmed is a gap, with what is held.
    let ts = stamp(t);
    h.connect_with(
        13,
        "j",
        "c",
        Protocol::V2,
        Some(Resume {
            epoch: EPOCH,
            since: 1,
        }),
    );
    let out = h.drain();
    assert_eq!(
        out[..3],
        [
            send(13, &v2::welcome("j", "c", EPOCH, &["j", "s"], 100, &ts)),
            send(
                13,
                &v2::gap(
                    "c",
                    EPOCH,
                    1,
                    "messages after 1 are no longer held; here is the recent history",
                    &ts
                )
            ),
            send(
                13,
                &v2::history(
                    "c",
                    EPOCH,
                    false,
                    &[v2::message(3, "c", "s", "c3", None, &ts)],
                    &ts
                )
            ),
        ]
    );

    // A budget of nothing holds nothing; a larger one again lets new messages stay (what was
    // trimmed does not come back).
    h.input(Input::HistoryBudget { bytes: 0 });
    assert_eq!(h.server.history_bytes(), 0);
    h.input(Input::HistoryBudget { bytes: usize::MAX });
    post(&mut h, &mut t, 2, "b4");
    assert_eq!(h.server.history_bytes(), unit);
    assert_eq!(join(&mut h, 10, "b"), greeting(10, "b", t, &[(4, "b4", t)]));
}

#[test]
fn the_configured_budget_applies_from_the_start_and_ids_stay_consecutive() {
    let mut h = three_rooms(Config::default());
    let mut t = 0;
    post(&mut h, &mut t, 1, "a1");
    let unit = h.server.history_bytes();
    let mut h = three_rooms(Config::default().with_history_budget(2 * unit));
    let mut t = 0;
    for text in ["a1", "a2", "a3", "a4"] {
        post(&mut h, &mut t, 1, text);
    }
    assert_eq!(
        (h.server.history_bytes(), h.server.history_trimmed()),
        (2 * unit, 2)
    );
    assert_eq!(
        join(&mut h, 10, "a"),
        greeting(10, "a", t, &[(3, "a3", 3), (4, "a4", 4)])
    );
    // Ids go on after trimmed ones.
    post(&mut h, &mut t, 1, "a5");
    assert_eq!(
        join(&mut h, 10, "a"),
        greeting(10, "a", t, &[(4, "a4", 4), (5, "a5", 5)])
    );
}

#[test]
fn a_room_holds_at_most_its_bytes_whatever_the_count() {
    let probe = {
        let mut h = three_rooms(Config::default());
        let mut t = 0;
        post(&mut h, &mut t, 1, "a1");
        h.server.history_bytes()
    };
    // Room for two and a half messages per room; --history stays 100 (as `welcome` says).
    let mut h = three_rooms(Config::default().with_room_history_bytes(probe * 5 / 2));
    let mut t = 0;
    for text in ["a1", "a2", "a3"] {
        post(&mut h, &mut t, 1, text);
    }
    post(&mut h, &mut t, 2, "b1");
    assert_eq!(
        join(&mut h, 10, "a"),
        greeting(10, "a", t, &[(2, "a2", 2), (3, "a3", 3)])
    );
    assert_eq!(join(&mut h, 11, "b"), greeting(11, "b", t, &[(1, "b1", 4)]));
    assert_eq!(h.server.history_bytes(), 3 * probe);
    assert_eq!(
        h.server.history_trimmed(),
        0,
        "the room's own bound is not the budget"
    );
    // A message bigger than the room's bound alone is delivered, not held.
    let big = "x".repeat(probe * 3);
    post(&mut h, &mut t, 1, &big);
    assert_eq!(join(&mut h, 10, "a"), greeting(10, "a", t, &[]));
    assert_eq!(h.server.history_bytes(), probe);
}

#[test]
fn with_durable_storage_scroll_back_reads_what_was_trimmed_from_disk() {
    let mut h = Harness::with_config(
        Config::default()
            .with_epoch(EPOCH)
            .with_rate_limit(None)
            .with_durable(true),
    );
    h.connect_v2(1, "alice", "general");
    h.drain();
    for i in 1..=5 {
        h.text(1, &v2::say(&format!("m{i}"), None));
    }
    h.drain();
    h.stored(&[0, 1, 2, 3, 4]);
    h.drain();
    let unit = h.server.history_bytes() / 5;
    h.input(Input::HistoryBudget { bytes: 2 * unit });
    // Held: 4 and 5. A page of 5 before 6: 4 and 5 from memory, 1 to 3 from storage.
    h.text(1, &v2::before(6, Some(5)));
    assert_eq!(
        h.drain(),
        [Output::Fetch {
            client: ClientId(1),
            ticket: StoreTicket(5),
            room: room("general"),
            before: 4,
            limit: 3,
        }]
    );
}
