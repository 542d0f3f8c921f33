//! tungstenite grows a connection's read buffer to the size of the largest message it
//! receives and keeps it; the server releases it between messages (the framing state, `Framing` in
//! `connection.rs`) and counts it in the memory budget when it cannot. These tests send large
//! messages in every arrangement that could make a release lose bytes, packed together in one
//! write (so the next frame is already in the buffer when a large one completes), split at
//! every awkward point, fragmented, with pings between, and check that every message arrives
//! whole and in order; then that an idle connection holds no partial bytes afterwards, and
//! that one whose buffer could not be released is counted.

mod common;
#[path = "common/http_client.rs"]
mod http_client;
#[path = "common/raw_ws.rs"]
mod raw_ws;

use std::time::{Duration, Instant};

use common::TestServer;
use raw_ws::{masked, RawWs, FIN, OP_CONTINUATION, OP_PING, OP_TEXT};

fn server() -> TestServer {
    TestServer::with_config(chat_mio_server::Config {
        rate_limit: 0.0,
        heartbeat: Duration::ZERO,
        idle_timeout: Duration::ZERO,
        ..chat_mio_server::Config::default()
    })
}

/// A text of `len` bytes that says which message it is.
fn body(n: usize, len: usize) -> String {
    let tag = format!("m{n}:");
    let mut text = tag.clone();
    text.extend(std::iter::repeat_n(
        (b'a' + (n % 26) as u8) as char,
        len - tag.len(),
    ));
    text
}

/// Reads tutorial frames on `reader` until `n` messages from `from` came; their texts.
fn messages(reader: &mut RawWs, from: &str, n: usize) -> Vec<String> {
    let mut got = Vec::new();
    while got.len() < n {
        let frame = reader.expect_json();
        if frame["type"] == "message" && frame["client_id"] == from {
            got.push(frame["message"].as_str().expect("a text").to_owned());
        }
    }
    got
}

fn partial_bytes(server: &TestServer) -> u64 {
    let metrics = http_client::get(server.addr, "/metrics");
    let text = metrics.body_text();
    text.lines()
        .find_map(|l| l.strip_prefix("chat_memory_bytes{kind=\"partial\"} "))
        .unwrap_or_else(|| panic!("no partial gauge in {text}"))
        .parse::<f64>()
        .expect("a number") as u64
}

/// Polls the partial gauge until `wanted` says yes (bounded), returning the last value.
fn wait_partial(server: &TestServer, wanted: impl Fn(u64) -> bool) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let value = partial_bytes(server);
        if wanted(value) || Instant::now() > deadline {
            return value;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn large_messages_packed_with_others_all_arrive_whole_and_in_order() {
    let server = server();
    let mut reader = RawWs::connect(server.addr, "reader");
    let mut writer = RawWs::connect(server.addr, "writer");
    // Sizes around the release threshold (4 KiB) and the length encodings (126, 65 536).
    let sizes = [5_000, 10, 4_096, 4_095, 60_000, 125, 126, 20_000, 3, 8_192];
    let texts: Vec<String> = sizes
        .iter()
        .enumerate()
        .map(|(i, &l)| body(i, l.max(8)))
        .collect();
    let mut wire = Vec::new();
    for (i, text) in texts.iter().enumerate() {
        wire.extend(masked(FIN | OP_TEXT, text.as_bytes()));
        if i % 3 == 1 {
            wire.extend(masked(FIN | OP_PING, b"hi"));
        }
    }
    // Everything in one write, then again cut into odd pieces.
    writer.send(&wire);
    assert_eq!(messages(&mut reader, "writer", texts.len()), texts);
    for piece in wire.chunks(4_093) {
        writer.send(piece);
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(messages(&mut reader, "writer", texts.len()), texts);
    // Idle now: nothing held for either connection.
    assert_eq!(wait_partial(&server, |v| v == 0), 0);
}

#[test]
fn a_fragmented_large_message_arrives_and_its_kept_buffer_is_counted() {
    let server = server();
    let mut reader = RawWs::connect(server.addr, "reader");
    let mut writer = RawWs::connect(server.addr, "writer");
    let text = body(1, 30_000);
    let (a, rest) = text.as_bytes().split_at(10_000);
    let (b, c) = rest.split_at(10_000);
    let mut wire = masked(OP_TEXT, a);
    wire.extend(masked(OP_CONTINUATION, b));
    wire.extend(masked(FIN | OP_CONTINUATION, c));
    let after = body(2, 50);
    wire.extend(masked(FIN | OP_TEXT, after.as_bytes()));
    writer.send(&wire);
    assert_eq!(
        messages(&mut reader, "writer", 2),
        [text.clone(), after.clone()]
    );
    // Three frame headers where one would do: the server cannot tell its buffer is empty,
    // keeps it, and counts it within the budget.
    let held = wait_partial(&server, |v| v >= 30_000);
    assert!(held >= 30_000, "the kept buffer is counted: {held}");
    // The connection still works.
    let later = body(3, 6_000);
    writer.send(&masked(FIN | OP_TEXT, later.as_bytes()));
    assert_eq!(messages(&mut reader, "writer", 1), [later]);
}
