//! Hostile WebSocket clients against a real server: malformed and lying frames, floods, clients
//! that never read, never answer, vanish without a word or send one byte at a time.
//!
//! Every test checks the server's answer to the offender (close code and reason, exactly), then
//! that the bystanders saw exactly what they should (the offender's join and one departure,
//! nothing of what it sent), and finally that a newcomer still chats normally on the same
//! server. Every wait is bounded by a read timeout or an explicit deadline.
//!
//! Tests that measure the process's memory (the server runs in-process) take [`exclusive`] so
//! no other test allocates meanwhile; all others take [`shared`] and run in parallel.

#[path = "common/client.rs"]
mod client;
mod common;
#[path = "common/raw_ws.rs"]
mod raw_ws;

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::thread;
use std::time::{Duration, Instant};

use chat_mio_server::Config;
use client::{
    connect, connect_in_parallel, expect_closed, expect_join, expect_leave, expect_message,
    expect_only_marker, join_all, parse_timestamp, recv, recv_json, send, Client, TIMEOUT,
};
use common::TestServer;
use raw_ws::{
    header, masked, text, unmasked, Next, RawWs, FIN, MASK, OP_BINARY, OP_CLOSE, OP_CONTINUATION,
    OP_PING, OP_PONG, OP_TEXT, RSV1,
};
use serde_json::{json, Value};
use tungstenite::Message;

// ---------------------------------------------------------------------------------------------
// Malformed frames
// ---------------------------------------------------------------------------------------------

#[test]
fn an_unmasked_client_frame_gets_close_1002() {
    let _shared = shared();
    let server = TestServer::start();
    let [mut alice, mut bob] = join_all(&server, ["alice", "bob"]);
    let mut raw = raw_join(&server, "raw", &mut [&mut alice, &mut bob]);

    // RFC 6455 section 5.1: a server must fail the connection on an unmasked client frame.
    raw.send_lenient(&unmasked(FIN | OP_TEXT, b"no mask on me"));
    raw.expect_close(1002, "protocol error");

    expect_leave(&mut alice, "raw");
    expect_leave(&mut bob, "raw");
    assert_closes(&server, &[("protocol_error", 1)]);
    chat_goes_on(&server, &mut [("alice", &mut alice), ("bob", &mut bob)]);
}

#[test]
fn invalid_utf8_in_a_text_message_gets_close_1007() {
    let _shared = shared();
    let server = TestServer::start();
    let [mut alice, mut bob] = join_all(&server, ["alice", "bob"]);
    let cases: [(&str, Vec<u8>); 3] = [
        (
            "one frame with a broken two-byte sequence",
            masked(FIN | OP_TEXT, b"caf\xc3\x28"),
        ),
        (
            // The first fragments are valid (the second ends inside a character); the third
            // breaks it. The message is never finished: the server must not wait for the end.
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
    ];
    for (i, (case, bytes)) in cases.iter().enumerate() {
        eprintln!("case: {case}");
        let id = format!("utf8-{i}");
        let mut raw = raw_join(&server, &id, &mut [&mut alice, &mut bob]);
        raw.send_lenient(bytes);
        raw.expect_close(1007, "invalid UTF-8 in text message");
        expect_leave(&mut alice, &id);
        expect_leave(&mut bob, &id);
    }
    assert_closes(&server, &[("invalid_utf8", cases.len() as u64)]);
    chat_goes_on(&server, &mut [("alice", &mut alice), ("bob", &mut bob)]);
}

#[test]
fn a_header_claiming_64_mb_gets_close_1009_without_allocating_it() {
    const LIARS: usize = 4;
    let _alone = exclusive();
    let server = TestServer::start();
    let [mut alice, mut bob] = join_all(&server, ["alice", "bob"]);
    let memory = Memory::start();

    // Four clients each announce a 64 MiB text frame and send a few bytes of it. All four
    // headers are in before any answer is read: a server that trusted them would hold 256 MiB.
    let mut liars: Vec<RawWs> = (0..LIARS)
        .map(|i| raw_join(&server, &format!("liar{i}"), &mut [&mut alice, &mut bob]))
        .collect();
    for liar in &mut liars {
        liar.send(&header(FIN | OP_TEXT, 64 << 20, Some(MASK)));
        liar.send_lenient(b"just a few bytes of it");
    }
    for (i, liar) in liars.iter_mut().enumerate() {
        // Before its close, a liar may hear of the other liars coming and going.
        let other_liar = |v: &Value| {
            let id = v["client_id"].as_str().unwrap_or_default();
            id.starts_with("liar") && id != format!("liar{i}")
        };
        liar.expect_close_after(1009, "message too big", other_liar);
    }
    for i in 0..LIARS {
        expect_leave(&mut alice, &format!("liar{i}"));
        expect_leave(&mut bob, &format!("liar{i}"));
    }
    let grew = memory.peak_growth_mib();
    eprintln!("memory grew {grew:.1} MiB");
    assert!(
        grew < 16.0,
        "memory grew by {grew:.1} MiB for frames that were never sent"
    );
    assert_closes(&server, &[("too_big", LIARS as u64)]);
    chat_goes_on(&server, &mut [("alice", &mut alice), ("bob", &mut bob)]);
}

#[test]
fn a_message_over_the_size_limit_gets_close_1009_whole_or_in_fragments() {
    let _shared = shared();
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

#[test]
fn continuations_without_a_start_reserved_opcodes_and_bits_get_close_1002() {
    let _shared = shared();
    let server = TestServer::start();
    let [mut alice, mut bob] = join_all(&server, ["alice", "bob"]);
    let cases: [(&str, Vec<u8>); 8] = [
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
    ];
    for (i, (case, bytes)) in cases.iter().enumerate() {
        eprintln!("case: {case}");
        let id = format!("proto-{i}");
        let mut raw = raw_join(&server, &id, &mut [&mut alice, &mut bob]);
        raw.send_lenient(bytes);
        raw.expect_close(1002, "protocol error");
        expect_leave(&mut alice, &id);
        expect_leave(&mut bob, &id);
    }
    assert_closes(&server, &[("protocol_error", cases.len() as u64)]);
    chat_goes_on(&server, &mut [("alice", &mut alice), ("bob", &mut bob)]);
}

#[test]
fn a_binary_message_gets_close_1003_whole_or_in_fragments() {
    let _shared = shared();
    let server = TestServer::start();
    let [mut alice, mut bob] = join_all(&server, ["alice", "bob"]);
    let cases: [(&str, Vec<u8>); 2] = [
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
    ];
    for (i, (case, bytes)) in cases.iter().enumerate() {
        eprintln!("case: {case}");
        let id = format!("binary-{i}");
        let mut raw = raw_join(&server, &id, &mut [&mut alice, &mut bob]);
        raw.send_lenient(bytes);
        raw.expect_close(1003, "binary messages are not supported");
        expect_leave(&mut alice, &id);
        expect_leave(&mut bob, &id);
    }
    assert_closes(&server, &[("unsupported_data", cases.len() as u64)]);
    chat_goes_on(&server, &mut [("alice", &mut alice), ("bob", &mut bob)]);
}

// ---------------------------------------------------------------------------------------------
// Legal but unusual framing
// ---------------------------------------------------------------------------------------------

#[test]
fn a_fragmented_message_with_pings_between_its_fragments_arrives_intact() {
    let _shared = shared();
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
    let _shared = shared();
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
fn a_ping_flood_neither_starves_the_chat_nor_grows_memory() {
    // 200 000 pings of 125 bytes: 26 MB sent, 25 MB of pongs owed to a client that does not
    // read them while it floods.
    const PINGS: usize = 200_000;
    const MIN_PROBES: usize = 5;
    const ROUND_TRIPS: usize = 20;
    let _alone = exclusive();
    let server = TestServer::without_rate_limit();
    let [mut alice, mut bob] = join_all(&server, ["alice", "bob"]);
    let mut flooder = raw_join(&server, "flooder", &mut [&mut alice, &mut bob]);
    let payload = [b'p'; 125];
    let ping = masked(FIN | OP_PING, &payload);
    let memory = Memory::start();

    let stalled = AtomicBool::new(false);
    let writer = flooder
        .stream
        .try_clone()
        .expect("clone the flooder's socket");
    let (outcome, probes, mut left) = thread::scope(|s| {
        let flood = s.spawn(|| flood(writer, &ping, PINGS, &stalled));

        // While the flood lasts the room is quiet (no broadcast reaches the flooder, so only
        // its pongs pile up), and the server must keep answering others: HTTP probes.
        let mut probes = 0;
        while probes < MIN_PROBES || !(flood.is_finished() || stalled.load(Ordering::Acquire)) {
            let started = Instant::now();
            assert_eq!(http_get(&server, "/healthz"), "ok\n");
            assert!(
                started.elapsed() < Duration::from_secs(2),
                "/healthz took {:?} during the flood",
                started.elapsed()
            );
            probes += 1;
        }

        // Then alice and bob chat, one round trip at a time: every message must reach both.
        // The flooder's departure may come in between (if it is closed).
        let mut left = [false, false];
        for round_trip in 0..ROUND_TRIPS {
            let text = format!("after the flood #{round_trip}");
            send(&mut alice, &text);
            for (client, left) in [&mut alice, &mut bob].into_iter().zip(&mut left) {
                expect_message_or_leave(client, "alice", &text, "flooder", left);
            }
        }

        // Now read what the flooder was owed: a pong for each ping, or pongs and then close
        // 1008 "slow consumer". (A server that stopped reading the pings while the pongs piled
        // up is waiting for this too, and the flood goes on.)
        let mut pongs = 0;
        let close = loop {
            if pongs == PINGS {
                break None;
            }
            match flooder.next() {
                Next::Frame(f) if f.opcode == OP_PONG => {
                    assert_eq!(f.payload, payload, "pong #{pongs} carries another payload");
                    pongs += 1;
                }
                Next::Frame(f) if f.opcode == OP_CLOSE => break Some(f.close_body()),
                // The flooder is a chat member too: alice's messages reach it.
                Next::Frame(f) if f.opcode == OP_TEXT => {
                    let value: Value = serde_json::from_slice(&f.payload).expect("JSON");
                    let message = value["message"].as_str().unwrap_or_default();
                    assert!(
                        value["client_id"] == "alice" && message.starts_with("after the flood #"),
                        "the flooder got {value}"
                    );
                }
                other => panic!("after {pongs} pongs the flooder got {other:?}"),
            }
        };
        let written = flood.join().expect("the flooding thread panicked");
        ((pongs, close, written), probes, left)
    });
    let grew = memory.peak_growth_mib();
    let (pongs, close, (written, write_error)) = outcome;
    eprintln!(
        "{probes} HTTP probes during the flood; {written} of {PINGS} pings written \
         ({write_error:?}); {pongs} pongs; close {close:?}; memory grew {grew:.1} MiB"
    );
    match close {
        None => {
            // Answered in full: the flooder is a (very) chatty but legitimate client.
            assert_eq!(written, PINGS, "all pings went out");
            assert_closes(&server, &[]);
            drop(flooder);
        }
        Some(body) => {
            assert_eq!(
                body,
                Some((1008, "slow consumer".to_owned())),
                "the flooder's close frame"
            );
            flooder.expect_end();
            assert_closes(&server, &[("slow_consumer", 1)]);
        }
    }
    for (client, left) in [&mut alice, &mut bob].into_iter().zip(&mut left) {
        if !*left {
            expect_leave(client, "flooder");
        }
    }
    assert!(
        grew < 16.0,
        "memory grew by {grew:.1} MiB while a client flooded pings without reading the \
         pongs: what the server queues for one client must stay bounded (max_outbound)"
    );
    chat_goes_on(&server, &mut [("alice", &mut alice), ("bob", &mut bob)]);
}

/// Writes `count` copies of `ping` as fast as the socket takes them; never reads. A write that
/// times out means the server stopped reading (back-pressure): `stalled` says so, and writing
/// resumes once the test reads the pongs. Returns the pings written and how writing ended
/// early, if it did (the server hung up).
fn flood(
    mut socket: TcpStream,
    ping: &[u8],
    count: usize,
    stalled: &AtomicBool,
) -> (usize, Option<ErrorKind>) {
    socket
        .set_write_timeout(Some(Duration::from_millis(200)))
        .expect("write timeout");
    let chunk = ping.repeat(1024);
    let total = count * ping.len();
    let mut written = 0;
    let deadline = Instant::now() + Duration::from_secs(60);
    while written < total {
        assert!(Instant::now() < deadline, "the flood did not end in time");
        let at = written % chunk.len();
        let end = chunk.len().min(at + total - written);
        match socket.write(&chunk[at..end]) {
            Ok(n) => written += n,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                stalled.store(true, Ordering::Release);
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return (written / ping.len(), Some(e.kind())),
        }
    }
    (count, None)
}

#[test]
fn a_client_that_never_reads_is_closed_as_a_slow_consumer_and_the_others_get_everything() {
    const PER_SENDER: usize = 10_000;
    const TOTAL: usize = PER_SENDER * SENDERS.len();
    let _alone = exclusive();
    let server = TestServer::with_config(Config {
        rate_limit: 0.0,
        max_outbound: 64 * 1024,
        ..Config::default()
    });
    let [s1, s2, reader, mut lazy] = join_all(&server, ["s1", "s2", "reader", "lazy"]);
    let memory = Memory::start();
    // ~450-byte frames: 9 MB for lazy, far more than the kernel buffers of a socket nobody
    // reads, so its queue must overflow.
    let pad = "~".repeat(400);
    let pace = Pace::default();

    let (left_tx, left_rx) = mpsc::channel();
    let (mut clients, mut seen, lazy_got) = thread::scope(|s| {
        let (pad, pace) = (&pad, &pace);
        let senders: Vec<_> = [s1, s2]
            .into_iter()
            .enumerate()
            .map(|(k, client)| {
                s.spawn(move || {
                    let mut stream = Stream::new(client, k, pad, pace);
                    stream.send_all(PER_SENDER);
                    stream.read_until(TOTAL, None);
                    (stream.client, stream.seen)
                })
            })
            .collect();
        let reader = s.spawn(move || {
            let mut stream = Stream::new(reader, 2, pad, pace);
            stream.read_until(TOTAL, Some(left_tx));
            (stream.client, stream.seen)
        });

        // As soon as lazy's departure is announced, read what it got: the server's close
        // frame must be there, behind whatever the kernel buffered before.
        let lazy_got = left_rx
            .recv_timeout(Duration::from_secs(60))
            .ok()
            .map(|()| drain_lazy(&mut lazy, pad));

        let mut clients = Vec::new();
        let mut seen = Vec::new();
        for handle in senders.into_iter().chain([reader]) {
            let (client, events) = handle.join().expect("a chat thread failed");
            clients.push(client);
            seen.push(events);
        }
        (clients, seen, lazy_got)
    });

    assert_closes(&server, &[("slow_consumer", 1)]);
    let (lazy_messages, lazy_close) =
        lazy_got.expect("the readers saw all messages but never lazy's departure");
    assert_eq!(
        lazy_close,
        Some((1008, "slow consumer".to_owned())),
        "lazy's close frame, after {} messages",
        lazy_messages.len()
    );

    // lazy's departure may come after the last message: then it is still queued.
    for (client, events) in clients.iter_mut().zip(&mut seen) {
        if !events.contains(&Seen::LazyLeft) {
            expect_leave(client, "lazy");
            events.push(Seen::LazyLeft);
        }
    }
    // Everyone saw the same sequence: all 20 000 messages and lazy's departure once.
    for (name, events) in ["s2", "reader"].iter().zip(&seen[1..]) {
        assert!(*events == seen[0], "{name} saw another sequence than s1");
    }
    let order = &seen[0];
    assert_eq!(order.len(), TOTAL + 1);
    assert_eq!(
        order.iter().filter(|e| **e == Seen::LazyLeft).count(),
        1,
        "lazy's departures"
    );
    for (k, sender) in SENDERS.iter().enumerate() {
        let numbers: Vec<usize> = order
            .iter()
            .filter_map(|e| match e {
                Seen::Message(from, n) if *from == k => Some(*n),
                _ => None,
            })
            .collect();
        assert!(
            numbers.iter().copied().eq(0..PER_SENDER),
            "{sender}'s messages are not all there in send order"
        );
    }
    // What lazy got before it was cut off is the start of the same sequence.
    assert!(lazy_messages.len() < TOTAL, "lazy was not cut off");
    assert!(
        lazy_messages[..] == order[..lazy_messages.len()],
        "lazy's {} messages are not the start of the others' sequence",
        lazy_messages.len()
    );
    let grew = memory.peak_growth_mib();
    eprintln!(
        "lazy got {} messages before close 1008; memory grew {grew:.1} MiB",
        lazy_messages.len()
    );
    assert!(grew < 32.0, "memory grew by {grew:.1} MiB");

    let [s1, s2, reader] = &mut clients[..] else {
        unreachable!("three clients")
    };
    chat_goes_on(&server, &mut [("s1", s1), ("s2", s2), ("reader", reader)]);
}

/// The two senders of the slow-consumer test.
const SENDERS: [&str; 2] = ["s1", "s2"];

/// What one of the well-behaved clients saw, compactly (20 000 messages each).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Seen {
    /// Message number `n` of sender `k` (`SENDERS[k]`).
    Message(usize, usize),
    LazyLeft,
}

/// Flow control for the slow-consumer test: senders send in windows and wait until every
/// well-behaved reader is within `LAG` messages of all that was sent, so only the client that
/// never reads can fall behind (the others must not be cut off for slowness by a test that
/// outruns them).
#[derive(Default)]
struct Pace {
    sent: AtomicUsize,
    /// Messages each well-behaved reader has read (s1, s2, reader).
    read: [AtomicUsize; 3],
}

impl Pace {
    const WINDOW: usize = 25;
    const LAG: usize = 4 * Self::WINDOW;

    fn behind(&self) -> usize {
        let slowest = self
            .read
            .iter()
            .map(|r| r.load(Ordering::Acquire))
            .min()
            .expect("three readers");
        self.sent.load(Ordering::Acquire).saturating_sub(slowest)
    }
}

/// One well-behaved client of the slow-consumer test.
struct Stream<'a> {
    client: Client,
    index: usize,
    pad: &'a str,
    pace: &'a Pace,
    seen: Vec<Seen>,
    messages: usize,
}

impl<'a> Stream<'a> {
    fn new(client: Client, index: usize, pad: &'a str, pace: &'a Pace) -> Self {
        Stream {
            client,
            index,
            pad,
            pace,
            seen: Vec::with_capacity(20_001),
            messages: 0,
        }
    }

    /// Sends `count` messages as `SENDERS[self.index]`, a window at a time, reading meanwhile.
    fn send_all(&mut self, count: usize) {
        let poll = Some(Duration::from_millis(2));
        self.client
            .get_mut()
            .set_read_timeout(poll)
            .expect("timeout");
        for start in (0..count).step_by(Pace::WINDOW) {
            let deadline = Instant::now() + TIMEOUT;
            while self.pace.behind() > Pace::LAG {
                self.read_one(false, None);
                assert!(Instant::now() < deadline, "the readers stopped progressing");
            }
            self.pace.sent.fetch_add(Pace::WINDOW, Ordering::AcqRel);
            for n in start..start + Pace::WINDOW {
                let text = format!("{} #{n:05} {}", SENDERS[self.index], self.pad);
                self.client.write(Message::text(text)).expect("buffer");
            }
            self.client.flush().expect("send a window");
        }
        self.client
            .get_mut()
            .set_read_timeout(Some(TIMEOUT))
            .expect("timeout");
    }

    /// Reads until `total` messages were seen.
    fn read_until(&mut self, total: usize, on_lazy_left: Option<mpsc::Sender<()>>) {
        while self.messages < total {
            self.read_one(true, on_lazy_left.as_ref());
        }
    }

    /// Reads one frame and records it; `block`: wait for it (up to the read timeout).
    fn read_one(&mut self, block: bool, on_lazy_left: Option<&mpsc::Sender<()>>) {
        let text = match self.client.read() {
            Ok(Message::Text(text)) => text,
            Ok(Message::Ping(_) | Message::Pong(_)) => return,
            Ok(other) => panic!("client {} got {other:?}", self.index),
            Err(tungstenite::Error::Io(e))
                if !block && matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) =>
            {
                return
            }
            Err(e) => panic!(
                "client {} after {} messages: {e}",
                self.index, self.messages
            ),
        };
        let event = parse_seen(&text, self.pad);
        if event == Seen::LazyLeft {
            assert!(
                !self.seen.contains(&Seen::LazyLeft),
                "lazy's departure was announced twice"
            );
            if let Some(tx) = on_lazy_left {
                let _ = tx.send(());
            }
        } else {
            self.messages += 1;
            self.pace.read[self.index].store(self.messages, Ordering::Release);
        }
        self.seen.push(event);
    }
}

/// A frame of the slow-consumer test: `sK #NNNNN <pad>` from sender K, or lazy's departure.
fn parse_seen(text: &str, pad: &str) -> Seen {
    let value: Value = serde_json::from_str(text).expect("a JSON frame");
    let field = |name: &str| value[name].as_str().unwrap_or_default();
    match (field("type"), field("client_id")) {
        ("disconnection", "lazy") => {
            assert_eq!(field("message"), "lazy left the chat");
            Seen::LazyLeft
        }
        ("message", from) if SENDERS.contains(&from) => {
            let message = field("message");
            let k = SENDERS.iter().position(|s| *s == from).expect("a sender");
            let n: usize = message
                .strip_prefix(&format!("{from} #"))
                .and_then(|rest| rest.get(..5))
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("malformed message {message:.40}"));
            assert!(
                message == format!("{from} #{n:05} {pad}"),
                "message {n} of {from} was altered"
            );
            Seen::Message(k, n)
        }
        _ => panic!("unexpected frame {text:.200}"),
    }
}

/// Reads everything the client that never read was sent: its messages, then the close frame's
/// code and reason (`None` if the connection ended without one).
fn drain_lazy(lazy: &mut Client, pad: &str) -> (Vec<Seen>, Option<(u16, String)>) {
    let mut messages = Vec::new();
    let mut close = None;
    loop {
        match lazy.read() {
            Ok(Message::Text(text)) => {
                assert!(close.is_none(), "a data frame after the close frame");
                messages.push(parse_seen(&text, pad));
            }
            Ok(Message::Close(frame)) => {
                close = frame.map(|f| (u16::from(f.code), f.reason.as_str().to_owned()));
            }
            Ok(Message::Ping(_) | Message::Pong(_)) => {}
            Ok(other) => panic!("lazy got {other:?}"),
            Err(tungstenite::Error::ConnectionClosed) => return (messages, close),
            Err(tungstenite::Error::Io(e))
                if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) =>
            {
                panic!("lazy's connection neither closed nor sent anything in {TIMEOUT:?}")
            }
            // Ended without a (complete) close handshake.
            Err(_) => return (messages, close),
        }
    }
}

#[test]
fn the_rate_limit_passes_a_burst_warns_the_sender_only_then_closes_a_flood() {
    let _shared = shared();
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
    let refused = metric(&metrics(&server), "chat_messages_rate_limited_total");
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
    let _shared = shared();
    let server = TestServer::start();
    let [mut observer] = join_all(&server, ["observer"]);
    let baseline = metrics(&server);
    let baseline = (
        metric(&baseline, "chat_websockets_open"),
        metric(&baseline, "chat_connections_open"),
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
        let text = metrics(&server);
        let now = (
            metric(&text, "chat_websockets_open"),
            metric(&text, "chat_connections_open"),
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
    let _shared = shared();
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

/// Tests that measure memory hold this exclusively; the others share it.
static MEMORY_LOCK: RwLock<()> = RwLock::new(());

fn shared() -> RwLockReadGuard<'static, ()> {
    MEMORY_LOCK.read().unwrap_or_else(|e| e.into_inner())
}

fn exclusive() -> RwLockWriteGuard<'static, ()> {
    MEMORY_LOCK.write().unwrap_or_else(|e| e.into_inner())
}

/// The peak resident memory of this process (test and in-process server) since `start`.
struct Memory {
    base_kib: u64,
}

impl Memory {
    fn start() -> Memory {
        // "5" resets the peak (VmHWM) to the current RSS (Linux >= 4.0).
        std::fs::write("/proc/self/clear_refs", "5").expect("reset the peak RSS");
        Memory {
            base_kib: status_kib("VmRSS:"),
        }
    }

    fn peak_growth_mib(&self) -> f64 {
        status_kib("VmHWM:").saturating_sub(self.base_kib) as f64 / 1024.0
    }
}

fn status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    status
        .lines()
        .find_map(|line| line.strip_prefix(field))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kib| kib.parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/self/status"))
}

/// `GET /metrics`.
fn metrics(server: &TestServer) -> String {
    http_get(server, "/metrics")
}

/// The body of a `GET path` that must answer 200, on a connection of its own.
fn http_get(server: &TestServer, path: &str) -> String {
    let mut stream = TcpStream::connect(server.addr).expect("connect for HTTP");
    stream.set_read_timeout(Some(TIMEOUT)).expect("timeout");
    let request = format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
    stream
        .write_all(request.as_bytes())
        .expect("send the request");
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .unwrap_or_else(|e| panic!("read the response to GET {path}: {e}"));
    let (head, body) = response
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no response head: {response:?}"));
    assert!(head.starts_with("HTTP/1.1 200 "), "{head}");
    body.to_owned()
}

/// The value of one series (`name` or `name{labels}`) in a metrics text.
fn metric(text: &str, series: &str) -> u64 {
    let value = text
        .lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no {series} in /metrics"));
    let value: f64 = value.parse().expect("a number");
    value as u64
}

/// Every `chat_closes_total` series is as given (those not given are 0).
fn assert_closes(server: &TestServer, expected: &[(&str, u64)]) {
    const REASONS: [&str; 8] = [
        "slow_consumer",
        "rate_limit",
        "too_big",
        "idle",
        "protocol_error",
        "invalid_utf8",
        "unsupported_data",
        "shutdown",
    ];
    let text = metrics(server);
    let got: Vec<(&str, u64)> = REASONS
        .iter()
        .map(|r| {
            (
                *r,
                metric(&text, &format!("chat_closes_total{{reason=\"{r}\"}}")),
            )
        })
        .collect();
    let want: Vec<(&str, u64)> = REASONS
        .iter()
        .map(|r| {
            let n = expected.iter().find(|(l, _)| l == r).map_or(0, |(_, n)| *n);
            (*r, n)
        })
        .collect();
    assert_eq!(got, want, "chat_closes_total by reason");
}

/// Connects a hand-driven client as `id`; it and every one of `members` must be told it
/// joined.
fn raw_join(server: &TestServer, id: &str, members: &mut [&mut Client]) -> RawWs {
    let mut raw = RawWs::connect(server.addr, id);
    check_event(
        &raw.expect_json(),
        "connection",
        id,
        &format!("{id} joined the chat"),
    );
    for member in members {
        expect_join(member, id);
    }
    raw
}

/// `value` is exactly the tutorial's frame for this event, with a well-formed timestamp.
fn check_event(value: &Value, kind: &str, id: &str, message: &str) {
    let timestamp = value["timestamp"].as_str().unwrap_or_default();
    assert!(
        parse_timestamp(timestamp).is_some(),
        "bad timestamp in {value:.200}"
    );
    assert!(
        *value
            == json!({
                "type": kind,
                "client_id": id,
                "message": message,
                "timestamp": timestamp,
            }),
        "expected {kind} of {id}, got {:.300}",
        value.to_string()
    );
}

/// The next frame must be a pong with `payload`.
fn expect_pong(raw: &mut RawWs, payload: &[u8]) {
    let frame = raw.next_frame();
    assert_eq!(
        (frame.opcode, frame.fin, &frame.payload[..]),
        (OP_PONG, true, payload),
        "expected a pong"
    );
}

/// The next frame must be `from`'s `text`, possibly preceded by `leaver`'s departure (noted in
/// `left`; a second one fails).
fn expect_message_or_leave(
    client: &mut Client,
    from: &str,
    text: &str,
    leaver: &str,
    left: &mut bool,
) {
    let frame = client::recv_frame(client);
    if frame.kind == "disconnection" && frame.client_id == leaver && !*left {
        assert_eq!(frame.message, format!("{leaver} left the chat"));
        *left = true;
        expect_message(client, from, text);
        return;
    }
    assert_eq!(
        (
            frame.kind.as_str(),
            frame.client_id.as_str(),
            frame.message.as_str()
        ),
        ("message", from, text)
    );
}

/// The chat still works for everyone: a newcomer is announced to all `members`, and each of
/// them (and the newcomer) can say something that reaches everyone. Nothing else may be
/// queued for any of them.
fn chat_goes_on(server: &TestServer, members: &mut [(&str, &mut Client)]) {
    let mut newcomer = connect(server, "newcomer");
    expect_join(&mut newcomer, "newcomer");
    for (_, member) in members.iter_mut() {
        expect_join(member, "newcomer");
    }
    let speakers: Vec<String> = members.iter().map(|(name, _)| name.to_string()).collect();
    for speaker in std::iter::once("newcomer".to_owned()).chain(speakers) {
        let text = format!("{speaker} is still here");
        if speaker == "newcomer" {
            send(&mut newcomer, &text);
        } else {
            let (_, client) = members
                .iter_mut()
                .find(|(name, _)| *name == speaker)
                .expect("a member");
            send(client, &text);
        }
        expect_message(&mut newcomer, &speaker, &text);
        for (_, member) in members.iter_mut() {
            expect_message(member, &speaker, &text);
        }
    }
    let mut others: Vec<&mut Client> = members.iter_mut().map(|(_, c)| &mut **c).collect();
    expect_only_marker(&mut newcomer, "newcomer", &mut others);
}
