//! Hostile WebSocket clients against a real server: malformed and lying frames, floods, clients
//! that never read, never answer, vanish without a word or send one byte at a time.
//!
//! Every test checks the server's answer to the offender (close code and reason, exactly), then
//! that the bystanders saw exactly what they should (the offender's join and one departure,
//! nothing of what it sent), and finally that a newcomer still chats normally on the same
//! server. Every wait is bounded by a read timeout or an explicit deadline.
//!
//! Scenarios that also measure the process's memory (a lying length header, a ping flood, a
//! client that never reads) are in `tests/memory.rs`, which runs them one at a time.

#[path = "common/client.rs"]
mod client;
mod common;
#[path = "common/http_client.rs"]
mod http_client;
#[path = "common/metrics.rs"]
mod metrics;
#[path = "common/raw_ws.rs"]
mod raw_ws;
#[path = "common/scenario.rs"]
mod scenario;

use std::io::ErrorKind;
use std::thread;
use std::time::{Duration, Instant};

use chat_mio_server::Config;
use client::{
    connect, connect_in_parallel, expect_closed, expect_leave, expect_message, expect_only_marker,
    join_all, parse_timestamp, recv, recv_json, send, TIMEOUT,
};
use common::TestServer;
use metrics::{assert_closes, Metrics};
use raw_ws::{
    masked, text, unmasked, Next, RawWs, FIN, OP_BINARY, OP_CLOSE, OP_CONTINUATION, OP_PING,
    OP_PONG, OP_TEXT, RSV1,
};
use scenario::{chat_goes_on, check_event, raw_join};
use serde_json::json;
use tungstenite::Message;

// ---------------------------------------------------------------------------------------------
// Malformed frames
// ---------------------------------------------------------------------------------------------

/// Malformed input that differs only in its bytes: every case of a family gets the same close
/// code and reason and is counted under the same `chat_closes_total` reason.
struct Family {
    /// Names the family and the ids of its offenders (`{id}-{case number}`).
    id: &'static str,
    close: (u16, &'static str),
    metric: &'static str,
    cases: Vec<(&'static str, Vec<u8>)>,
}

#[test]
fn malformed_frames_get_close_1002_1007_or_1003_and_the_chat_goes_on() {
    let families = [
        Family {
            // RFC 6455 section 5.1: a server must fail the connection on an unmasked client
            // frame.
            id: "unmasked",
            close: (1002, "protocol error"),
            metric: "protocol_error",
            cases: vec![(
                "an unmasked client frame",
                unmasked(FIN | OP_TEXT, b"no mask on me"),
            )],
        },
        Family {
            id: "utf8",
            close: (1007, "invalid UTF-8 in text message"),
            metric: "invalid_utf8",
            cases: vec![
                (
                    "one frame with a broken two-byte sequence",
                    masked(FIN | OP_TEXT, b"caf\xc3\x28"),
                ),
                (
                    // The first fragments are valid (the second ends inside a character); the
                    // third breaks it. The message is never finished: the server must not wait
                    // for the end.
                    "a fragment that breaks a character begun in the previous one",
                    [
                        masked(OP_TEXT, b"fine so far "),
                        masked(OP_CONTINUATION, b"\xe2\x82"),
                        masked(OP_CONTINUATION, b"\x28"),
                    ]
                    .concat(),
                ),
                (
                    "a final fragment that ends inside a character",
                    [
                        masked(OP_TEXT, b"almost "),
                        masked(FIN | OP_CONTINUATION, b"\xf0\x9f"),
                    ]
                    .concat(),
                ),
            ],
        },
        Family {
            id: "proto",
            close: (1002, "protocol error"),
            metric: "protocol_error",
            cases: vec![
                (
                    "a continuation frame with no message to continue",
                    masked(FIN | OP_CONTINUATION, b"orphan"),
                ),
                ("reserved data opcode 0x3", masked(FIN | 0x3, b"what am I")),
                ("reserved control opcode 0xB", masked(FIN | 0xB, b"")),
                (
                    "RSV1 set without a negotiated extension",
                    masked(FIN | RSV1 | OP_TEXT, b"compressed?"),
                ),
                ("a fragmented ping", masked(OP_PING, b"half a ping")),
                (
                    "a ping with a 126-byte payload",
                    masked(FIN | OP_PING, &[b'p'; 126]),
                ),
                (
                    "a new text message while a fragmented one is open",
                    [masked(OP_TEXT, b"begun"), masked(FIN | OP_TEXT, b"again")].concat(),
                ),
                (
                    "a close frame with a one-byte body",
                    masked(FIN | OP_CLOSE, &[3]),
                ),
            ],
        },
        Family {
            id: "binary",
            close: (1003, "binary messages are not supported"),
            metric: "unsupported_data",
            cases: vec![
                (
                    "one binary frame",
                    masked(FIN | OP_BINARY, &[0, 1, 0xfe, 0xff]),
                ),
                (
                    "a binary message in two fragments",
                    [
                        masked(OP_BINARY, &[0xde, 0xad]),
                        masked(FIN | OP_CONTINUATION, &[0xbe, 0xef]),
                    ]
                    .concat(),
                ),
            ],
        },
    ];
    for family in &families {
        // Each family on a server of its own, so its close count is exact.
        let server = TestServer::start();
        let [mut alice, mut bob] = join_all(&server, ["alice", "bob"]);
        let (code, reason) = family.close;
        for (i, (case, bytes)) in family.cases.iter().enumerate() {
            eprintln!("case: {} #{i}: {case}", family.id);
            let id = format!("{}-{i}", family.id);
            let mut raw = raw_join(&server, &id, &mut [&mut alice, &mut bob]);
            raw.send_lenient(bytes);
            raw.expect_close(code, reason);
            expect_leave(&mut alice, &id);
            expect_leave(&mut bob, &id);
        }
        assert_closes(&server, &[(family.metric, family.cases.len() as u64)]);
        chat_goes_on(&server, &mut [("alice", &mut alice), ("bob", &mut bob)]);
    }
}

#[test]
fn a_message_over_the_size_limit_gets_close_1009_whole_or_in_fragments() {
    let server = TestServer::start();
    let limit = Config::default().max_message_size;
    let half = limit / 2;
    let [mut alice, mut bob] = join_all(&server, ["alice", "bob"]);

    // Exactly the limit, in two fragments, passes intact.
    let mut exact = raw_join(&server, "exact", &mut [&mut alice, &mut bob]);
    let (first, second) = ("a".repeat(half), "b".repeat(limit - half));
    exact.send(&masked(OP_TEXT, first.as_bytes()));
    exact.send(&masked(FIN | OP_CONTINUATION, second.as_bytes()));
    let whole = format!("{first}{second}");
    check_event(&exact.expect_json(), "message", "exact", &whole);
    expect_message(&mut alice, "exact", &whole);
    expect_message(&mut bob, "exact", &whole);
    drop(exact);
    expect_leave(&mut alice, "exact");
    expect_leave(&mut bob, "exact");

    let cases: [(&str, Vec<u8>); 2] = [
        (
            "one frame of limit + 1 bytes",
            masked(FIN | OP_TEXT, &vec![b'x'; limit + 1]),
        ),
        (
            "fragments of half, half and one byte",
            [
                masked(OP_TEXT, &vec![b'x'; half]),
                masked(OP_CONTINUATION, &vec![b'y'; limit - half]),
                masked(FIN | OP_CONTINUATION, b"z"),
            ]
            .concat(),
        ),
    ];
    for (i, (case, bytes)) in cases.iter().enumerate() {
        eprintln!("case: {case}");
        let id = format!("big-{i}");
        let mut raw = raw_join(&server, &id, &mut [&mut alice, &mut bob]);
        raw.send_lenient(bytes);
        raw.expect_close(1009, "message too big");
        expect_leave(&mut alice, &id);
        expect_leave(&mut bob, &id);
    }
    assert_closes(&server, &[("too_big", cases.len() as u64)]);
    chat_goes_on(&server, &mut [("alice", &mut alice), ("bob", &mut bob)]);
}

// ---------------------------------------------------------------------------------------------
// Legal but unusual framing
// ---------------------------------------------------------------------------------------------

#[test]
fn a_fragmented_message_with_pings_between_its_fragments_arrives_intact() {
    let server = TestServer::start();
    let [mut alice] = join_all(&server, ["alice"]);
    let mut frag = raw_join(&server, "frag", &mut [&mut alice]);

    // The 4-byte 🌍 is split across fragments: UTF-8 is checked per message, not per frame.
    let globe = "🌍".as_bytes();
    frag.send(
        &[
            masked(OP_TEXT, "Grüße, ".as_bytes()),
            masked(FIN | OP_PING, b"mid-1"),
        ]
        .concat(),
    );
    // Control frames may come between fragments (RFC 6455 section 5.4) and are answered at
    // once, before the message is complete.
    expect_pong(&mut frag, b"mid-1");
    frag.send(
        &[
            masked(OP_CONTINUATION, &globe[..2]),
            masked(FIN | OP_PING, b"mid-2"),
        ]
        .concat(),
    );
    expect_pong(&mut frag, b"mid-2");
    frag.send(&masked(
        FIN | OP_CONTINUATION,
        &[&globe[2..], " intact".as_bytes()].concat(),
    ));

    let whole = "Grüße, 🌍 intact";
    check_event(&frag.expect_json(), "message", "frag", whole);
    expect_message(&mut alice, "frag", whole);
    // The pings were no chat messages, and the fragments made exactly one.
    expect_only_marker(&mut alice, "alice", &mut []);
    check_event(
        &frag.expect_json(),
        "message",
        "alice",
        "-- marker: nothing else is queued --",
    );
    chat_goes_on(&server, &mut [("alice", &mut alice)]);
}

#[test]
fn a_message_trickled_one_byte_at_a_time_is_delivered() {
    let server = TestServer::start();
    let [mut alice, mut bob] = join_all(&server, ["alice", "bob"]);
    let mut slow = raw_join(&server, "slow", &mut [&mut alice, &mut bob]);

    // Over 125 bytes, so the length itself (16-bit extended) arrives in pieces too.
    let message = format!("trickled, byte by byte: {}", "Grüße 🌍 ".repeat(15));
    assert!(message.len() > 125);
    let frame = text(&message);
    let midway = frame.len() / 2;
    for (i, byte) in frame.iter().enumerate() {
        slow.send(&[*byte]);
        if i == midway {
            // The server does not wait for the slow frame before serving others.
            send(&mut alice, "meanwhile");
            expect_message(&mut alice, "alice", "meanwhile");
            expect_message(&mut bob, "alice", "meanwhile");
        }
        // Pacing, not synchronisation: each byte is its own TCP segment (TCP_NODELAY).
        thread::sleep(Duration::from_millis(1));
    }
    check_event(&slow.expect_json(), "message", "alice", "meanwhile");
    check_event(&slow.expect_json(), "message", "slow", &message);
    expect_message(&mut alice, "slow", &message);
    expect_message(&mut bob, "slow", &message);

    drop(slow);
    expect_leave(&mut alice, "slow");
    expect_leave(&mut bob, "slow");
    assert_closes(&server, &[]);
    chat_goes_on(&server, &mut [("alice", &mut alice), ("bob", &mut bob)]);
}

// ---------------------------------------------------------------------------------------------
// Floods and clients that do not keep up
// ---------------------------------------------------------------------------------------------

#[test]
fn the_rate_limit_passes_a_burst_warns_the_sender_only_then_closes_a_flood() {
    let server = TestServer::start();
    let config = Config::default();
    let burst = config.rate_burst as usize;
    assert_eq!(
        (burst, config.rate_limit),
        (20, 5.0),
        "the defaults this test expects"
    );
    let [mut alice, mut spammer] = join_all(&server, ["alice", "spammer"]);

    // 50 messages in one write: 20 pass (the burst), the next 20 are refused with an error
    // frame each, the 21st refusal in a row closes the connection, the rest is never read.
    // At 5 per second, no token comes back while the server reads them (a few milliseconds).
    for n in 0..50 {
        spammer
            .write(Message::text(format!("spam #{n}")))
            .expect("buffer a message");
    }
    spammer.flush().expect("send the flood at once");

    for n in 0..burst {
        expect_message(&mut spammer, "spammer", &format!("spam #{n}"));
    }
    for i in 0..burst {
        let error = recv_json(&mut spammer);
        let timestamp = error["timestamp"].as_str().unwrap_or_default();
        assert!(parse_timestamp(timestamp).is_some(), "error #{i}: {error}");
        assert_eq!(
            error,
            json!({
                "type": "error",
                "client_id": "spammer",
                "message": "rate limit exceeded: at most 5 messages per second (burst 20)",
                "timestamp": timestamp,
                "code": "rate_limited",
            }),
            "error frame #{i}"
        );
    }
    match recv(&mut spammer) {
        Message::Close(Some(frame)) => assert_eq!(
            (u16::from(frame.code), frame.reason.as_str()),
            (1008, "rate limit exceeded")
        ),
        other => panic!("expected close 1008 after the refusals, got {other:?}"),
    }
    expect_closed(&mut spammer);

    // alice saw the 20 that passed and the departure, nothing of the refusals.
    for n in 0..burst {
        expect_message(&mut alice, "spammer", &format!("spam #{n}"));
    }
    expect_leave(&mut alice, "spammer");
    assert_closes(&server, &[("rate_limit", 1)]);
    chat_goes_on(&server, &mut [("alice", &mut alice)]);

    // 20 refusals with an error frame and the one that closed the connection (whether that
    // last one counts is a matter of definition; none counted is a bug).
    let refused = Metrics::get(&server).count("chat_messages_rate_limited_total");
    assert!(
        (20..=21).contains(&refused),
        "chat_messages_rate_limited_total is {refused} after 20 or 21 refused messages"
    );
}

// ---------------------------------------------------------------------------------------------
// Clients that vanish or go quiet
// ---------------------------------------------------------------------------------------------

#[test]
fn five_hundred_clients_vanishing_without_a_close_frame_each_leave_once() {
    const CLIENTS: usize = 500;
    const THREADS: usize = 4;
    let server = TestServer::start();
    let [mut observer] = join_all(&server, ["observer"]);
    let baseline = Metrics::get(&server);
    let baseline = (
        baseline.count("chat_websockets_open"),
        baseline.count("chat_connections_open"),
    );
    assert_eq!(baseline.0, 1, "the observer");
    let name = |i: usize| format!("v{i:03}");

    let clients = connect_in_parallel(CLIENTS, THREADS, |i| connect(&server, &name(i)));
    // None of them reads (their sockets hold unread join notices, so closing them resets the
    // connection); half shut both directions first, half just go.
    for (i, client) in clients.into_iter().enumerate() {
        if i % 2 == 0 {
            let _ = client.get_ref().shutdown(std::net::Shutdown::Both);
        }
        drop(client);
    }

    // Every client connected before any vanished: 500 joins, then 500 departures, one each.
    let mut joins = Vec::with_capacity(CLIENTS);
    let mut leaves = Vec::with_capacity(CLIENTS);
    for _ in 0..CLIENTS {
        let frame = client::recv_frame(&mut observer);
        assert_eq!(frame.kind, "connection", "{frame:?}");
        joins.push(frame.client_id);
    }
    for _ in 0..CLIENTS {
        let frame = client::recv_frame(&mut observer);
        assert_eq!(
            (frame.kind.as_str(), frame.message.clone()),
            (
                "disconnection",
                format!("{} left the chat", frame.client_id)
            )
        );
        leaves.push(frame.client_id);
    }
    let everyone: Vec<String> = (0..CLIENTS).map(name).collect();
    joins.sort();
    leaves.sort();
    assert!(joins == everyone, "each of the 500 joined once");
    assert!(leaves == everyone, "each of the 500 left once");

    // The server forgot them all: the gauges are back where they were.
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let metrics = Metrics::get(&server);
        let now = (
            metrics.count("chat_websockets_open"),
            metrics.count("chat_connections_open"),
        );
        if now == baseline {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "chat_websockets_open and chat_connections_open are {now:?}, not back to {baseline:?}"
        );
        thread::sleep(Duration::from_millis(20));
    }
    assert_closes(&server, &[]);
    chat_goes_on(&server, &mut [("observer", &mut observer)]);
}

#[test]
fn a_client_that_never_answers_pings_is_closed_idle_and_one_that_reads_stays() {
    let heartbeat = Duration::from_millis(200);
    let idle_timeout = Duration::from_millis(600);
    let server = TestServer::with_config(Config {
        heartbeat,
        idle_timeout,
        ..Config::default()
    });
    let [mut alice] = join_all(&server, ["alice"]);
    let connected = Instant::now();
    let mut mute = raw_join(&server, "mute", &mut [&mut alice]);

    // Both are polled in turn for four idle timeouts. alice reads, so tungstenite answers
    // every ping; mute reads too but never answers.
    let poll = Some(Duration::from_millis(10));
    alice.get_mut().set_read_timeout(poll).expect("timeout");
    mute.stream.set_read_timeout(poll).expect("timeout");
    let mut mute_pings = Vec::new();
    let mut mute_close = None;
    let mut mute_ended = false;
    let mut alice_pings = 0;
    let mut alice_saw = Vec::new();
    let until = connected + 4 * idle_timeout;
    while Instant::now() < until {
        if !mute_ended {
            match mute.try_next() {
                None => {}
                Some(Next::Frame(f)) if f.opcode == OP_PING && mute_close.is_none() => {
                    mute_pings.push(connected.elapsed());
                }
                Some(Next::Frame(f)) if f.opcode == OP_CLOSE && mute_close.is_none() => {
                    mute_close = Some((connected.elapsed(), f.close_body()));
                }
                Some(Next::Eof) if mute_close.is_some() => mute_ended = true,
                Some(other) => panic!("mute got {other:?} (close: {mute_close:?})"),
            }
        }
        match alice.read() {
            Ok(Message::Ping(_)) => alice_pings += 1,
            Ok(Message::Text(text)) => alice_saw.push(text.to_string()),
            Ok(other) => panic!("alice got {other:?}"),
            Err(tungstenite::Error::Io(e))
                if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) => panic!("alice's connection failed: {e}"),
        }
    }
    alice
        .get_mut()
        .set_read_timeout(Some(TIMEOUT))
        .expect("timeout");

    let (closed_at, body) = mute_close.expect("mute was never closed");
    assert_eq!(body, Some((1001, "idle timeout".to_owned())));
    assert!(mute_ended, "the server did not end mute's connection");
    assert!(
        !mute_pings.is_empty(),
        "mute was closed without being pinged first"
    );
    assert!(
        mute_pings[0] >= heartbeat,
        "first ping {:?} after connecting, before the heartbeat interval",
        mute_pings[0]
    );
    assert!(
        closed_at >= idle_timeout && closed_at < idle_timeout + Duration::from_secs(1),
        "closed {closed_at:?} after connecting, with idle timeout {idle_timeout:?}"
    );
    // alice was pinged (and answered) throughout, and heard only of mute's departure.
    assert!(alice_pings >= 3, "alice was pinged {alice_pings} times");
    assert_eq!(alice_saw.len(), 1, "alice saw {alice_saw:?}");
    check_event(
        &serde_json::from_str(&alice_saw[0]).expect("JSON"),
        "disconnection",
        "mute",
        "mute left the chat",
    );
    assert_closes(&server, &[("idle", 1)]);
    chat_goes_on(&server, &mut [("alice", &mut alice)]);
}

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// The next frame must be a pong with `payload`.
fn expect_pong(raw: &mut RawWs, payload: &[u8]) {
    let frame = raw.next_frame();
    assert_eq!(
        (frame.opcode, frame.fin, &frame.payload[..]),
        (OP_PONG, true, payload),
        "expected a pong"
    );
}
