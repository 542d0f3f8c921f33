//! End-to-end tests that measure the memory of the process, which hosts the server: a client
//! that announces a 64 MiB frame, a ping flood whose pongs are never read, a client that never
//! reads at all, request heads of megabytes. Each also checks its protocol answers as fully as
//! the other hostile tests do.
//!
//! The resident size is the whole process's, so these cases must not share it with anything
//! that allocates. This is a `harness = false` target: `main` runs the cases one after another
//! on the main thread (each catching its own panic, so one failure does not hide the others)
//! and reports them the way libtest does. No lock is needed because nothing runs beside a case,
//! and `cargo test` runs test binaries one at a time.

#[path = "common/client.rs"]
mod client;
mod common;
#[path = "common/http_client.rs"]
mod http_client;
#[path = "common/memory.rs"]
mod memory;
#[path = "common/metrics.rs"]
mod metrics;
#[path = "common/raw_ws.rs"]
mod raw_ws;
#[path = "common/scenario.rs"]
mod scenario;

use std::io::{ErrorKind, Write};
use std::net::TcpStream;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use chat_mio_server::Config;
use client::{expect_leave, expect_message, join_all, send, Client, TIMEOUT};
use common::TestServer;
use http_client::{get_ok, Http};
use memory::{resident_bytes, Memory};
use metrics::assert_closes;
use raw_ws::{header, masked, Next, RawWs, FIN, MASK, OP_CLOSE, OP_PING, OP_PONG, OP_TEXT};
use scenario::{assert_still_serving, chat_goes_on, raw_join};
use serde_json::Value;
use tungstenite::Message;

/// Every case, in the order they run.
const CASES: &[(&str, fn())] = &[
    (
        "a_header_claiming_64_mb_gets_close_1009_without_allocating_it",
        a_header_claiming_64_mb_gets_close_1009_without_allocating_it,
    ),
    (
        "a_ping_flood_neither_starves_the_chat_nor_grows_memory",
        a_ping_flood_neither_starves_the_chat_nor_grows_memory,
    ),
    (
        "a_client_that_never_reads_is_closed_as_a_slow_consumer_and_the_others_get_everything",
        a_client_that_never_reads_is_closed_as_a_slow_consumer_and_the_others_get_everything,
    ),
    (
        "oversized_heads_do_not_grow_the_servers_memory",
        oversized_heads_do_not_grow_the_servers_memory,
    ),
];

/// Runs the cases one at a time. Understands the arguments `cargo test` passes on: name filters
/// (substrings, or whole names with `--exact`), `--skip NAME`, `--list`, and `--ignored`
/// (there are none); other flags (`--nocapture`, `--test-threads N`, ...) change nothing here.
fn main() -> ExitCode {
    let mut filters = Vec::new();
    let mut skips = Vec::new();
    let (mut exact, mut list, mut ignored) = (false, false, false);
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--exact" => exact = true,
            "--list" => list = true,
            "--ignored" => ignored = true,
            "--skip" => skips.extend(args.next()),
            // Options whose value is the next argument.
            "--test-threads" | "--format" | "--color" | "--logfile" | "--shuffle-seed" | "-Z" => {
                args.next();
            }
            _ if arg.starts_with('-') => {}
            _ => filters.push(arg),
        }
    }
    let matches = |name: &str, pattern: &String| {
        if exact {
            name == pattern
        } else {
            name.contains(pattern.as_str())
        }
    };
    let selected: Vec<&(&str, fn())> = CASES
        .iter()
        .filter(|(name, _)| {
            !ignored
                && (filters.is_empty() || filters.iter().any(|f| matches(name, f)))
                && !skips.iter().any(|s| matches(name, s))
        })
        .collect();
    if list {
        for (name, _) in &selected {
            println!("{name}: test");
        }
        return ExitCode::SUCCESS;
    }

    println!("\nrunning {} tests, one at a time", selected.len());
    let started = Instant::now();
    let mut failed = Vec::new();
    for (name, case) in &selected {
        let case_started = Instant::now();
        // The panic message and location are printed by the default hook as it happens.
        let outcome = catch_unwind(AssertUnwindSafe(case));
        let took = case_started.elapsed();
        match outcome {
            Ok(()) => println!("test {name} ... ok ({took:.1?})"),
            Err(_) => {
                println!("test {name} ... FAILED ({took:.1?})");
                failed.push(*name);
            }
        }
    }
    if !failed.is_empty() {
        println!("\nfailures:");
        for name in &failed {
            println!("    {name}");
        }
    }
    let passed = selected.len() - failed.len();
    println!(
        "\ntest result: {}. {passed} passed; {} failed; 0 ignored; 0 measured; {} filtered out; \
         finished in {:.2}s\n",
        if failed.is_empty() { "ok" } else { "FAILED" },
        failed.len(),
        CASES.len() - selected.len(),
        started.elapsed().as_secs_f64()
    );
    if failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

// ---------------------------------------------------------------------------------------------
// WebSocket clients that would make a careless server hold memory for them
// ---------------------------------------------------------------------------------------------

fn a_header_claiming_64_mb_gets_close_1009_without_allocating_it() {
    const LIARS: usize = 4;
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

fn a_ping_flood_neither_starves_the_chat_nor_grows_memory() {
    // 200 000 pings of 125 bytes: 26 MB sent, 25 MB of pongs owed to a client that does not
    // read them while it floods.
    const PINGS: usize = 200_000;
    const MIN_PROBES: usize = 5;
    const ROUND_TRIPS: usize = 20;
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
            assert_eq!(get_ok(server.addr, "/healthz"), "ok\n");
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

fn a_client_that_never_reads_is_closed_as_a_slow_consumer_and_the_others_get_everything() {
    const PER_SENDER: usize = 10_000;
    const TOTAL: usize = PER_SENDER * SENDERS.len();
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

// ---------------------------------------------------------------------------------------------
// HTTP request heads
// ---------------------------------------------------------------------------------------------

fn oversized_heads_do_not_grow_the_servers_memory() {
    // 32 connections each send a 2 MiB head and stay open. A server that buffered heads
    // without bound would hold 64 MiB for them; with the 8 KiB cap it holds next to nothing.
    // The test process hosts the server, so its resident size is the server's plus the test's
    // own: the bound is generous.
    const CONNECTIONS: usize = 32;
    const HEAD: usize = 2 * 1024 * 1024;
    const BOUND: u64 = 20 * 1024 * 1024;
    let server = TestServer::start();
    let mut head = b"GET / HTTP/1.1\r\nHost: test\r\nX-Padding: ".to_vec();
    head.resize(HEAD, b'a');
    head.extend_from_slice(b"\r\n\r\n");

    let before = resident_bytes();
    let mut open = Vec::with_capacity(CONNECTIONS);
    for _ in 0..CONNECTIONS {
        let mut http = Http::connect(server.addr);
        http.send(&head);
        let response = http.response(false);
        assert_eq!(response.status, 431, "{response:?}");
        open.push(http);
    }
    let after = resident_bytes();
    let growth = after.saturating_sub(before);
    assert!(
        growth < BOUND,
        "resident memory grew by {} KiB while {CONNECTIONS} connections sent {} KiB heads \
         ({} KiB before, {} KiB after)",
        growth / 1024,
        HEAD / 1024,
        before / 1024,
        after / 1024
    );
    for http in &mut open {
        http.expect_closed();
    }
    drop(open);
    assert_still_serving(&server);
}
