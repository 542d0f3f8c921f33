//! End-to-end tests of the chat over WebSocket: real sockets against an in-process server on an
//! ephemeral port. Every wait is for a specific frame, bounded by the client's read timeout.

#[path = "common/client.rs"]
mod client;
mod common;
#[path = "common/http_client.rs"]
mod http_client;
#[path = "common/metrics.rs"]
mod metrics;
#[path = "common/raw_ws.rs"]
mod raw_ws;

use std::io::{ErrorKind, Read, Write};
use std::sync::Barrier;
use std::thread;
use std::time::{Duration, Instant};

use client::{
    close, connect, connect_in_parallel, expect_closed, expect_join, expect_leave, expect_message,
    expect_only_marker, join_all, now_millis, parse_timestamp, recv, recv_frame, recv_json, send,
    try_connect, TIMEOUT,
};
use common::TestServer;
use metrics::Metrics;
use serde_json::json;
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::protocol::Role;
use tungstenite::{Message, WebSocket};

#[test]
fn join_is_announced_to_everyone_including_the_joiner() {
    let server = TestServer::start();
    let before = now_millis();

    // alice is greeted with her own join notice: the tutorial's four fields, nothing more.
    let mut alice = connect(&server, "alice");
    let frame = recv_json(&mut alice);
    let timestamp = frame["timestamp"].as_str().expect("timestamp is a string");
    assert_eq!(
        frame,
        json!({
            "type": "connection",
            "client_id": "alice",
            "message": "alice joined the chat",
            "timestamp": timestamp,
        })
    );
    assert!(timestamp.ends_with('Z'), "{timestamp:?} must be UTC with Z");
    let alice_joined = parse_timestamp(timestamp)
        .unwrap_or_else(|| panic!("{timestamp:?} is not RFC 3339 with milliseconds"));

    // bob's join reaches alice and bob: one broadcast, so the very same frame.
    let mut bob = connect(&server, "bob");
    let to_alice = expect_join(&mut alice, "bob");
    let to_bob = expect_join(&mut bob, "bob");
    let after = now_millis();
    assert_eq!(to_alice, to_bob, "everyone gets the same frame");

    // The stamps are the server's clock at the time of each join.
    assert!(
        before <= alice_joined && alice_joined <= to_bob.millis && to_bob.millis <= after,
        "timestamps {timestamp} and {} must lie between the test's clock readings \
         {before} and {after} (ms), in join order",
        to_bob.timestamp
    );

    // No second greeting, no echo of anything: the next frame anyone gets is a fresh message.
    expect_only_marker(&mut alice, "alice", &mut [&mut bob]);
}

#[test]
fn concurrent_messages_reach_everyone_in_one_order() {
    const PER_CLIENT: usize = 50;
    let names = ["ann", "ben", "cat"];
    let total = names.len() * PER_CLIENT;
    let server = TestServer::without_rate_limit();
    let clients = join_all(&server, names);

    // Three threads send 50 messages each at the same time, then read everything back.
    let start = Barrier::new(names.len());
    let results: Vec<_> = thread::scope(|s| {
        let threads: Vec<_> = clients
            .into_iter()
            .zip(names)
            .map(|(mut client, name)| {
                let start = &start;
                s.spawn(move || {
                    start.wait();
                    for n in 0..PER_CLIENT {
                        send(&mut client, &format!("{name} #{n}"));
                    }
                    let received: Vec<(String, String)> = (0..total)
                        .map(|_| {
                            let frame = recv_frame(&mut client);
                            assert_eq!(frame.kind, "message", "{name} got {frame:?}");
                            (frame.client_id, frame.message)
                        })
                        .collect();
                    (client, received)
                })
            })
            .collect();
        threads
            .into_iter()
            .map(|t| t.join().expect("a client thread failed"))
            .collect()
    });
    let (mut clients, received): (Vec<_>, Vec<_>) = results.into_iter().unzip();

    // Everyone saw all 150 in the very same order.
    for (name, seen) in names.iter().zip(&received).skip(1) {
        assert!(
            *seen == received[0],
            "{name} saw another order than {}:\n{seen:?}\nvs\n{:?}",
            names[0],
            received[0]
        );
    }
    // Each message is attributed to its sender, and each sender's messages keep their order.
    let order = &received[0];
    for (client_id, message) in order {
        assert!(
            message.starts_with(&format!("{client_id} #")),
            "{message:?} attributed to {client_id:?}"
        );
    }
    for name in names {
        let from_name: Vec<&str> = order
            .iter()
            .filter(|(id, _)| id == name)
            .map(|(_, m)| m.as_str())
            .collect();
        let sent: Vec<String> = (0..PER_CLIENT).map(|n| format!("{name} #{n}")).collect();
        assert_eq!(from_name, sent, "{name}'s messages, in send order");
    }

    // And nothing beyond the 150 is queued for anyone.
    let (first, rest) = clients.split_first_mut().expect("three clients");
    let mut rest: Vec<_> = rest.iter_mut().collect();
    expect_only_marker(first, names[0], &mut rest);
}

#[test]
fn leaving_is_announced_once_to_the_others_after_a_close_or_a_dropped_socket() {
    let server = TestServer::start();
    let [mut alice, bob, mut carol, mut dave, erin] =
        join_all(&server, ["alice", "bob", "carol", "dave", "erin"]);

    // bob leaves with a clean close handshake; he gets no frame on his way out (checked by
    // `close`), the others learn it once.
    close(bob);
    for other in [&mut alice, &mut carol, &mut dave] {
        expect_leave(other, "bob");
    }
    // erin has not read bob's departure yet; she does not matter here.

    // dave's TCP connection just goes away: no close frame. He read everything first, so his
    // side ends with a FIN.
    drop(dave);
    expect_leave(&mut alice, "dave");
    expect_leave(&mut carol, "dave");

    // erin vanishes with frames still unread in her socket (bob's and dave's departures, and
    // this message), which usually makes her kernel reset the connection instead.
    send(&mut alice, "erin never reads this");
    expect_message(&mut alice, "alice", "erin never reads this");
    expect_message(&mut carol, "alice", "erin never reads this");
    drop(erin);
    expect_leave(&mut alice, "erin");
    expect_leave(&mut carol, "erin");

    // Exactly one notice each: nothing else is queued for the two left.
    expect_only_marker(&mut alice, "alice", &mut [&mut carol]);
}

#[test]
fn unicode_and_a_60_kb_message_round_trip_byte_exact() {
    let server = TestServer::start();
    let [mut alice, mut bob] = join_all(&server, ["alice", "bob"]);

    let texts = [
        "héllo wörld — ünïcödé, ß, Æ, ø",
        "日本語のテキスト, 中文, 한국어, العربية, עברית, हिन्दी",
        "emoji 🎉🚀, a family 👩‍👩‍👧‍👦, a flag 🇫🇷, a skin tone 👍🏽, a variation ❤️",
        "JSON-hostile: \"quotes\" \\backslash\\ /slash\n newline \t tab \r return \u{0} nul \u{1b}",
        "  leading and trailing spaces are kept  ",
        "<script>alert('this is text, not HTML')</script> &amp; &lt;",
        "\u{feff}BOM, \u{200b}zero width, \u{2028}line and \u{2029}paragraph separators",
    ];
    for text in texts {
        send(&mut alice, text);
        expect_message(&mut alice, "alice", text);
        expect_message(&mut bob, "alice", text);
    }

    // 60 KiB (below the default 64 KiB limit) of mixed one- to four-byte characters and
    // characters JSON must escape, so the frame the server sends is larger still.
    let size = 60 * 1024;
    let mut big = String::with_capacity(size);
    for c in "Grüße, 世界 🌍 \"q\" \\ \n\t ".chars().cycle() {
        if big.len() + c.len_utf8() > size {
            break;
        }
        big.push(c);
    }
    while big.len() < size {
        big.push('.');
    }
    assert_eq!(big.len(), size);
    send(&mut bob, &big);
    expect_message(&mut alice, "bob", &big);
    expect_message(&mut bob, "bob", &big);
}

#[test]
fn two_hundred_clients_join_at_once_and_all_get_a_broadcast() {
    const CLIENTS: usize = 200;
    const THREADS: usize = 4;
    let started = Instant::now();
    let server = TestServer::start();
    let name = |i: usize| format!("user{i:03}");

    // Four threads connect 50 clients each. A client is registered before its join is
    // broadcast, so the first frame each one gets is its own join notice.
    let mut clients = connect_in_parallel(CLIENTS, THREADS, |i| {
        let mut client = connect(&server, &name(i));
        expect_join(&mut client, &name(i));
        client
    });
    assert_eq!(clients.len(), CLIENTS);

    // Everyone is in: one message now reaches all 200, after the joins of those who came
    // later than each of them.
    let hello = "hello, all two hundred of you";
    send(&mut clients[0], hello);
    let mut later_joins: Vec<Vec<String>> = Vec::with_capacity(CLIENTS);
    for (i, client) in clients.iter_mut().enumerate() {
        let mut joins = Vec::new();
        loop {
            let frame = recv_frame(client);
            match frame.kind.as_str() {
                "connection" => {
                    assert_eq!(
                        frame.message,
                        format!("{} joined the chat", frame.client_id)
                    );
                    assert_ne!(frame.client_id, name(i), "{} was greeted twice", name(i));
                    joins.push(frame.client_id);
                }
                "message" => {
                    assert_eq!(
                        (frame.client_id.as_str(), frame.message.as_str()),
                        ("user000", hello)
                    );
                    break;
                }
                _ => panic!("{} got {frame:?}", name(i)),
            }
        }
        later_joins.push(joins);
    }

    // The joins form one order: the client that joined k-th from last saw exactly the k
    // joins after its own, which are those of the clients that saw fewer.
    let mut counts: Vec<usize> = later_joins.iter().map(Vec::len).collect();
    counts.sort_unstable();
    assert_eq!(
        counts,
        (0..CLIENTS).collect::<Vec<_>>(),
        "join notices seen per client"
    );
    for (i, joins) in later_joins.iter().enumerate() {
        let mut seen = joins.clone();
        seen.sort();
        let mut expected: Vec<String> = (0..CLIENTS)
            .filter(|&j| later_joins[j].len() < joins.len())
            .map(name)
            .collect();
        expected.sort();
        assert_eq!(seen, expected, "joins seen by {}", name(i));
    }
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "200 clients took {:?}",
        started.elapsed()
    );
}

#[test]
fn client_id_in_the_url_is_percent_decoded_and_trimmed() {
    let server = TestServer::start();
    let cases = [
        ("J%C3%BCrgen%20K", "Jürgen K"),
        ("%20%20bob%20", "bob"),
        ("%F0%9F%8E%89party", "🎉party"),
        ("a%2Fb", "a/b"),
        (&"x".repeat(32), &"x".repeat(32)),
        (&"%C3%A9".repeat(32), &"é".repeat(32)),
        (&format!("%20{}%20", "y".repeat(32)), &"y".repeat(32)),
    ];
    for (raw, id) in cases {
        let mut client = connect(&server, raw);
        expect_join(&mut client, id);
        send(&mut client, "hi");
        expect_message(&mut client, id, "hi");
        close(client);
    }
}

#[test]
fn invalid_client_ids_are_refused_with_400_before_the_upgrade() {
    let server = TestServer::start();
    let [mut observer] = join_all(&server, ["observer"]);
    let cases = [
        ("", "empty"),
        ("%20%20%20", "blank after trimming"),
        (&"x".repeat(33), "33 characters"),
        (&"%C3%A9".repeat(33), "33 two-byte characters"),
        ("a%0Ab", "a newline"),
        ("a%09b", "a tab inside"),
        ("a%00b", "a NUL"),
        ("bell%07", "a BEL"),
        ("del%7F", "a DEL"),
        ("a%C2%85b", "a C1 control (NEL)"),
        ("%FF%FE", "invalid UTF-8"),
    ];
    for (raw, why) in cases {
        match try_connect(&server, raw) {
            Err(tungstenite::Error::Http(response)) => {
                assert_eq!(response.status(), 400, "/ws/{raw} ({why})");
            }
            Err(e) => panic!("/ws/{raw} ({why}): expected HTTP 400, got {e}"),
            Ok(_) => panic!("/ws/{raw} ({why}) was accepted"),
        }
    }

    // The refusals created no chat client: no join or leave reached the observer...
    expect_only_marker(&mut observer, "observer", &mut []);
    // ...and a valid id is still welcome.
    let mut zoe = connect(&server, "zoe");
    expect_join(&mut zoe, "zoe");
    expect_join(&mut observer, "zoe");
}

#[test]
fn a_binary_frame_gets_close_1003_and_the_others_chat_on() {
    let server = TestServer::start();
    let [mut alice, mut bob, mut carol] = join_all(&server, ["alice", "bob", "carol"]);

    bob.send(Message::binary(vec![0x00, 0x01, 0xfe, 0xff]))
        .expect("send a binary frame");
    match recv(&mut bob) {
        Message::Close(Some(frame)) => {
            assert_eq!(frame.code, CloseCode::Unsupported, "close frame {frame:?}");
        }
        other => panic!("expected close 1003, got {other:?}"),
    }
    // bob answers the close (tungstenite does it while reading); then the server hangs up.
    expect_closed(&mut bob);

    expect_leave(&mut alice, "bob");
    expect_leave(&mut carol, "bob");
    send(&mut alice, "bob is gone, we are not");
    expect_message(&mut alice, "alice", "bob is gone, we are not");
    expect_message(&mut carol, "alice", "bob is gone, we are not");
    send(&mut carol, "indeed");
    expect_message(&mut alice, "carol", "indeed");
    expect_message(&mut carol, "carol", "indeed");
}

#[test]
fn two_clients_with_the_same_name_are_two_connections() {
    let server = TestServer::start();
    let [mut first, mut second] = join_all(&server, ["alice", "alice"]);

    send(&mut first, "from the first alice");
    expect_message(&mut first, "alice", "from the first alice");
    expect_message(&mut second, "alice", "from the first alice");
    send(&mut second, "from the second alice");
    expect_message(&mut first, "alice", "from the second alice");
    expect_message(&mut second, "alice", "from the second alice");

    // The first one leaving is announced to the second, who stays connected.
    close(first);
    expect_leave(&mut second, "alice");
    expect_only_marker(&mut second, "alice", &mut []);
}

#[test]
fn frames_sent_along_with_the_upgrade_request_are_not_lost() {
    // A client may send its first frame right behind the request, before it sees the 101.
    let server = TestServer::start();
    let mut stream = common::tcp_connect(server.addr);
    let mut bytes = b"GET /ws/early HTTP/1.1\r\nHost: test\r\nUpgrade: websocket\r\n\
        Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
        Sec-WebSocket-Version: 13\r\n\r\n"
        .to_vec();
    bytes.extend(raw_ws::text("the early bird"));
    stream.write_all(&bytes).expect("write request and frame");

    // Read the 101 head, then hand what follows it to tungstenite.
    let mut received = Vec::new();
    let head_end = loop {
        if let Some(at) = received.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        let mut chunk = [0; 4096];
        let n = stream.read(&mut chunk).expect("read the 101");
        assert!(
            n > 0,
            "closed before the 101: {:?}",
            String::from_utf8_lossy(&received)
        );
        received.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&received[..head_end]).into_owned();
    assert!(head.starts_with("HTTP/1.1 101 "), "{head:?}");
    let rest = received.split_off(head_end);
    let mut early = WebSocket::from_partially_read(stream, rest, Role::Client, None);
    expect_join(&mut early, "early");
    expect_message(&mut early, "early", "the early bird");
}

#[test]
fn a_ping_gets_a_pong_and_is_not_a_chat_message() {
    let server = TestServer::start();
    let [mut alice, mut bob] = join_all(&server, ["alice", "bob"]);
    alice
        .send(Message::Ping(b"are you there?".to_vec().into()))
        .expect("send a ping");
    match alice.read().expect("read the pong") {
        Message::Pong(payload) => assert_eq!(&payload[..], b"are you there?"),
        other => panic!("expected a pong, got {other:?}"),
    }
    expect_only_marker(&mut bob, "bob", &mut [&mut alice]);
}

#[test]
fn messages_up_to_the_size_limit_pass_and_a_larger_one_ends_the_connection() {
    let server = TestServer::start();
    let [mut alice, mut bob] = join_all(&server, ["alice", "bob"]);

    // Exactly the default --max-message-size (64 KiB) is allowed.
    let limit = 64 * 1024;
    let largest = "a".repeat(limit);
    send(&mut bob, &largest);
    expect_message(&mut alice, "bob", &largest);
    expect_message(&mut bob, "bob", &largest);

    // One byte more ends bob's connection (a close frame, if any, says 1009), and he leaves.
    // The write itself may fail if the server hangs up before it is done.
    let _ = bob.send(Message::text("a".repeat(limit + 1)));
    loop {
        match bob.read() {
            Ok(Message::Close(Some(frame))) => {
                assert_eq!(frame.code, CloseCode::Size, "close frame {frame:?}")
            }
            Ok(Message::Close(None) | Message::Ping(_) | Message::Pong(_)) => {}
            Ok(other) => panic!("bob got {other:?} after an oversized message"),
            Err(tungstenite::Error::Io(e))
                if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) =>
            {
                panic!("bob's connection was not ended within {TIMEOUT:?}")
            }
            Err(_) => break,
        }
    }
    expect_leave(&mut alice, "bob");
    expect_only_marker(&mut alice, "alice", &mut []);
}

#[test]
fn a_burst_beyond_the_per_turn_read_budget_is_delivered_in_order() {
    // The server reads at most 64 messages from one connection per loop turn; the rest must
    // still come, in order, after the others had their turn.
    const BURST: usize = 1000;
    let server = TestServer::without_rate_limit();
    let [mut alice, mut bob] = join_all(&server, ["alice", "bob"]);
    let texts: Vec<String> = (0..BURST).map(|n| format!("burst {n}")).collect();
    for text in &texts {
        alice
            .write(Message::text(text.as_str()))
            .expect("buffer a frame");
    }
    alice
        .flush()
        .expect("send the burst in as few writes as possible");
    send(&mut bob, "bob cuts in");

    let mut bob_cut_in = 0;
    for client in [&mut alice, &mut bob] {
        let mut from_alice = Vec::with_capacity(BURST);
        while from_alice.len() < BURST {
            let frame = recv_frame(client);
            assert_eq!(frame.kind, "message");
            if frame.client_id == "bob" {
                assert_eq!(frame.message, "bob cuts in");
                bob_cut_in += 1;
            } else {
                assert_eq!(frame.client_id, "alice");
                from_alice.push(frame.message);
            }
        }
        assert!(
            from_alice == texts,
            "alice's burst arrived out of order or altered"
        );
    }
    // bob's message may come after the whole burst: then it is still queued.
    if bob_cut_in < 2 {
        expect_message(&mut alice, "bob", "bob cuts in");
    }
    if bob_cut_in < 1 {
        expect_message(&mut bob, "bob", "bob cuts in");
    }
    expect_only_marker(&mut alice, "alice", &mut [&mut bob]);
}

#[test]
fn server_shutdown_closes_every_client_with_1001() {
    let server = TestServer::start();
    let clients = join_all(&server, ["alice", "bob"]);
    let readers: Vec<_> = clients
        .into_iter()
        .map(|mut client| {
            thread::spawn(move || {
                match recv(&mut client) {
                    Message::Close(Some(frame)) => {
                        assert_eq!(frame.code, CloseCode::Away, "close frame {frame:?}")
                    }
                    other => panic!("expected close 1001, got {other:?}"),
                }
                // Reading on answers the close, so the server need not wait out its grace.
                expect_closed(&mut client);
            })
        })
        .collect();
    let started = Instant::now();
    drop(server);
    for reader in readers {
        reader.join().expect("a client saw a clean 1001 close");
    }
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "shutdown waited {:?} although every client answered",
        started.elapsed()
    );
}

#[test]
fn timestamp_parser_accepts_exactly_the_servers_format() {
    // The helper the other tests rely on, checked against known instants (from `date -u`).
    assert_eq!(parse_timestamp("1970-01-01T00:00:00.000Z"), Some(0));
    assert_eq!(
        parse_timestamp("2026-11-21T20:52:58.123Z"),
        Some(1_795_294_378_123)
    );
    assert_eq!(
        parse_timestamp("2000-02-29T23:59:59.999Z"),
        Some(951_868_799_999)
    );
    for bad in [
        "2026-11-21T20:52:58Z",
        "2026-11-21T20:52:58.123+00:00",
        "2026-11-21T20:52:58.1234Z",
        "2026-11-21 20:52:58.123Z",
        "2026-13-21T20:52:58.123Z",
        "2026-02-29T20:52:58.123Z",
        "2026-11-21T24:52:58.123Z",
        "2026-11-21T20:52:58.123z",
    ] {
        assert_eq!(parse_timestamp(bad), None, "{bad:?}");
    }
}

/// After a quiet spell the server shares a big fan-out's writes with a second thread
/// (`chat_split_flushes_total` counts it); every member still gets every message once and in
/// order, whichever thread wrote it.
#[test]
fn a_big_room_gets_every_message_in_order_after_quiet_spells() {
    const CLIENTS: usize = 48;
    const MESSAGES: usize = 12;
    let server = TestServer::without_rate_limit();
    let name = |i: usize| format!("member{i:02}");
    let mut clients: Vec<_> = Vec::with_capacity(CLIENTS);
    for i in 0..CLIENTS {
        clients.push(connect(&server, &name(i)));
        for client in &mut clients {
            expect_join(client, &name(i));
        }
    }
    for m in 0..MESSAGES {
        // Not a synchronisation: the pause gives the server's loop a quiet spell to wake from.
        thread::sleep(Duration::from_millis(10));
        let text = format!("message {m} after a pause");
        send(&mut clients[m % CLIENTS], &text);
        for client in &mut clients {
            expect_message(client, &name(m % CLIENTS), &text);
        }
    }
    let metrics = Metrics::get(&server);
    let split = metrics.value("chat_split_flushes_total");
    assert!(split >= 1.0, "no flush was shared:\n{}", metrics.text());
}
