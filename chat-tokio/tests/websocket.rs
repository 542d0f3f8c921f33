//! The chat over real sockets against a `RunningServer`: the same frames, order and close
//! codes as the mio server.

mod common;

use std::thread;
use std::time::Duration;

use chat_tokio::Config;
use common::{
    connect, connect_at, expect_close, expect_join, join_all, memory, recv_json, send, start,
};
use tungstenite::Message;

#[test]
fn the_tutorial_two_clients_join_talk_and_leave() {
    let server = start(memory());
    let addr = server.local_addr();

    let [mut alice, mut bob] = join_all(addr, ["alice", "bob"]);

    send(&mut alice, "hello bob");
    let to_alice = recv_json(&mut alice);
    let to_bob = recv_json(&mut bob);
    assert_eq!(to_alice, to_bob, "one broadcast, the same frame");
    assert_eq!(to_alice["type"], "message");
    assert_eq!(to_alice["client_id"], "alice");
    assert_eq!(to_alice["message"], "hello bob");

    bob.close(None).expect("bob closes");
    while bob.read().is_ok() {}
    let left = recv_json(&mut alice);
    assert_eq!(left["type"], "disconnection", "{left}");
    assert_eq!(left["client_id"], "bob");
    assert_eq!(left["message"], "bob left the chat");

    // A graceful stop says goodbye with 1001.
    let stopper = thread::spawn(move || server.shutdown());
    assert_eq!(
        expect_close(&mut alice),
        (1001, "server shutting down".to_owned())
    );
    drop(alice);
    stopper
        .join()
        .expect("the stopping thread")
        .expect("a clean stop");
}

#[test]
fn chat_v2_is_negotiated_by_subprotocol() {
    let server = start(memory());
    let (mut carol, response) =
        connect_at(server.local_addr(), "/ws/carol?room=dev", Some("chat.v2"));
    assert_eq!(
        response
            .headers()
            .get("sec-websocket-protocol")
            .map(|v| v.as_bytes()),
        Some(&b"chat.v2"[..])
    );
    let welcome = recv_json(&mut carol);
    assert_eq!(welcome["type"], "welcome", "{welcome}");
    assert_eq!(welcome["client_id"], "carol");
    assert_eq!(welcome["room"], "dev");
    server.shutdown().expect("a clean stop");
}

#[test]
fn a_message_over_the_size_limit_is_closed_with_1009() {
    let server = start(Config {
        max_message_size: 1024,
        ..memory()
    });
    let mut dave = connect(server.local_addr(), "dave");
    expect_join(&mut dave, "dave");
    dave.send(Message::text("x".repeat(2048)))
        .expect("send the big message");
    assert_eq!(expect_close(&mut dave).0, 1009);
    server.shutdown().expect("a clean stop");
}

#[test]
fn a_binary_message_is_closed_as_unsupported() {
    let server = start(memory());
    let mut erin = connect(server.local_addr(), "erin");
    expect_join(&mut erin, "erin");
    erin.send(Message::binary(vec![1, 2, 3]))
        .expect("send binary");
    assert_eq!(expect_close(&mut erin).0, 1003);
    server.shutdown().expect("a clean stop");
}

#[test]
fn a_client_that_never_reads_is_closed_as_a_slow_consumer_and_a_reader_gets_everything() {
    const MESSAGES: usize = 6_000;
    const WINDOW: usize = 16;
    let server = start(Config {
        rate_limit: 0.0,
        max_outbound: 64 * 1024,
        ..memory()
    });
    let addr = server.local_addr();
    let [mut lazy, mut reader, mut sender] = join_all(addr, ["lazy", "reader", "sender"]);

    // ~2 KB frames: 12 MB for lazy, far more than the kernel buffers of a socket nobody reads.
    let pad = "~".repeat(2_000);
    let (left_tx, left_rx) = std::sync::mpsc::channel();
    // How many messages the reader has: the sender never gets more than WINDOW ahead of it, so
    // only lazy falls behind, however busy the machine.
    let read = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let reader_read = std::sync::Arc::clone(&read);
    let reading = thread::spawn(move || {
        let mut got = 0;
        let mut lazy_left = false;
        while got < MESSAGES || !lazy_left {
            let frame = recv_json(&mut reader);
            match frame["type"].as_str() {
                Some("message") => {
                    let text = frame["message"].as_str().expect("text");
                    let n: usize = text
                        .split(' ')
                        .next()
                        .and_then(|n| n.parse().ok())
                        .expect("numbered");
                    assert_eq!(n, got, "in order, none missing");
                    got += 1;
                    reader_read.store(got, std::sync::atomic::Ordering::Release);
                }
                Some("disconnection") => {
                    assert_eq!(frame["client_id"], "lazy");
                    lazy_left = true;
                    let _ = left_tx.send(());
                }
                other => panic!("unexpected frame {other:?}"),
            }
        }
        got
    });
    // The sender waits for its own echoes every WINDOW messages, and for the reader: the
    // readers are paced, as people are, and only lazy falls behind.
    let sending = thread::spawn(move || {
        for n in 0..MESSAGES {
            while n >= read.load(std::sync::atomic::Ordering::Acquire) + WINDOW {
                thread::sleep(Duration::from_millis(1));
            }
            send(&mut sender, &format!("{n} {pad}"));
            if n % WINDOW == WINDOW - 1 || n == MESSAGES - 1 {
                let mut echoes = 0;
                while echoes < n % WINDOW + 1 {
                    if recv_json(&mut sender)["type"] == "message" {
                        echoes += 1;
                    }
                }
            }
        }
    });
    // As soon as lazy's departure is announced, lazy reads: what the kernel held, then the
    // close frame (the server gives a closing connection 5 s to take its last bytes).
    left_rx
        .recv_timeout(Duration::from_secs(60))
        .expect("lazy's departure announced");
    assert_eq!(expect_close(&mut lazy), (1008, "slow consumer".to_owned()));
    assert_eq!(reading.join().expect("the reader"), MESSAGES);
    sending.join().expect("the sender");
    server.shutdown().expect("a clean stop");
}

#[test]
fn a_silent_client_is_pinged_then_closed_idle_and_one_that_answers_stays() {
    let server = start(Config {
        heartbeat: Duration::from_millis(200),
        idle_timeout: Duration::from_millis(700),
        ..memory()
    });
    let addr = server.local_addr();
    let [mut silent, mut lively] = join_all(addr, ["silent", "lively"]);

    // lively reads all along: tungstenite answers each ping with a pong.
    let staying = thread::spawn(move || {
        let until = std::time::Instant::now() + Duration::from_millis(1_500);
        let (mut pings, mut texts) = (0, Vec::new());
        lively
            .get_mut()
            .set_read_timeout(Some(Duration::from_millis(100)))
            .expect("timeout");
        while std::time::Instant::now() < until {
            match lively.read() {
                Ok(Message::Ping(_)) => pings += 1,
                Ok(Message::Text(text)) => texts.push(text.to_string()),
                Ok(Message::Close(frame)) => panic!("lively was closed: {frame:?}"),
                Ok(_) | Err(tungstenite::Error::Io(_)) => {}
                Err(e) => panic!("lively: {e}"),
            }
        }
        (lively, pings, texts)
    });
    // silent reads nothing until well after its idle timeout: then pings, the leave of nobody,
    // and the close.
    thread::sleep(Duration::from_millis(1_200));
    let mut pings = 0;
    let close = loop {
        match silent.read().expect("a frame") {
            Message::Ping(_) => pings += 1,
            Message::Close(Some(frame)) => break (u16::from(frame.code), frame.reason.to_string()),
            other => panic!("silent got {other:?}"),
        }
    };
    assert!(pings >= 2, "silent was pinged {pings} times");
    assert_eq!(close, (1001, "idle timeout".to_owned()));
    let (mut lively, lively_pings, mut texts) = staying.join().expect("lively");
    assert!(lively_pings >= 2, "lively was pinged {lively_pings} times");
    if texts.is_empty() {
        lively
            .get_mut()
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        texts.push(recv_json(&mut lively).to_string());
    }
    let left: serde_json::Value = serde_json::from_str(&texts[0]).expect("JSON");
    assert_eq!(left["type"], "disconnection", "{left}");
    assert_eq!(left["client_id"], "silent");
    server.shutdown().expect("a clean stop");
}
