//! Broadcast fan-out through the sans-IO core: the cost of one chat message delivered to N
//! connected clients in one room, reported per delivered frame (criterion
//! `Throughput::Elements(N)`). `core_fanout` is a room of tutorial (v1) clients sending raw
//! text; `core_fanout_v2` a room of `chat.v2` clients sending JSON `message` commands, each of
//! which is also kept in the room's history. `core_fanout_grouped` is `core_fanout` drained
//! as the mio driver drains it (`poll_output_grouped`: a broadcast is one `SendMany`, its
//! payload not cloned per recipient); the others drain with `poll_output`, one `Send` each.
//!
//! `cargo bench --bench fanout`

use std::hint::black_box;
use std::time::Instant;

use chat_protocol::{
    ChatServer, ClientId, Config, Input, Now, Output, Payload, Protocol, RoomName,
};
use chrono::{TimeZone, Utc};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

fn room_of(n: u64, protocol: Protocol, now: Now) -> ChatServer {
    // One client sends every message: the bench measures fan-out, not the rate limit.
    let mut server = ChatServer::new(Config::default().with_rate_limit(None));
    for id in 0..n {
        server
            .handle_input(
                now,
                Input::Connect {
                    client: ClientId(id),
                    user: format!("user{id}"),
                    room: RoomName::default(),
                    protocol,
                    resume: None,
                },
            )
            .expect("fresh ids");
        while server.poll_output().is_some() {}
    }
    server
}

fn now() -> Now {
    Now {
        instant: Instant::now(),
        wall: Utc
            .with_ymd_and_hms(2026, 11, 21, 12, 0, 0)
            .single()
            .expect("valid date"),
    }
}

/// One message from client 0 to a room of `n`, per iteration, for each room size.
fn bench_room(c: &mut Criterion, group: &str, protocol: Protocol, text: &Payload) {
    bench_room_with(c, group, protocol, text, broadcast);
}

type Drain = fn(&mut ChatServer, Now, &Payload, &mut dyn FnMut(&Payload));

fn bench_room_with(
    c: &mut Criterion,
    group: &str,
    protocol: Protocol,
    text: &Payload,
    drain: Drain,
) {
    let now = now();
    let mut group = c.benchmark_group(group);
    for n in [10u64, 100, 1_000, 10_000] {
        let mut server = room_of(n, protocol, now);
        assert_encoded_once(&mut server, now, text, n);
        group.throughput(Throughput::Elements(n));
        group.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, _| {
            b.iter(|| {
                let mut delivered = 0usize;
                drain(&mut server, now, text, &mut |payload| {
                    delivered += black_box(payload).len();
                });
                delivered
            })
        });
    }
    group.finish();
}

/// Client 0 says `text`.
fn say(server: &mut ChatServer, now: Now, text: &Payload) {
    server
        .handle_input(
            now,
            Input::Text {
                client: ClientId(0),
                text: text.clone(),
            },
        )
        .expect("client 0 is connected");
}

/// Client 0 says `text`; `each` sees the payload of every frame the core sends for it.
fn broadcast(server: &mut ChatServer, now: Now, text: &Payload, each: &mut dyn FnMut(&Payload)) {
    say(server, now, text);
    while let Some(output) = server.poll_output() {
        if let Output::Send { payload, .. } = output {
            // The payload is dropped here, as a driver drops it once the frame is queued.
            each(&payload);
        }
    }
}

/// [`broadcast`], drained with `poll_output_grouped`: `each` sees a `SendMany`'s one payload
/// once per recipient.
fn broadcast_grouped(
    server: &mut ChatServer,
    now: Now,
    text: &Payload,
    each: &mut dyn FnMut(&Payload),
) {
    say(server, now, text);
    while let Some(output) = server.poll_output_grouped() {
        match output {
            Output::SendMany { to, payload } => {
                for _ in &to {
                    each(&payload);
                }
            }
            Output::Send { payload, .. } => each(&payload),
            _ => {}
        }
    }
}

/// Before timing: one broadcast reaches all `n` members as the same buffer (serialized once,
/// shared by reference count, never copied per recipient).
fn assert_encoded_once(server: &mut ChatServer, now: Now, text: &Payload, n: u64) {
    let mut buffers = std::collections::BTreeSet::new();
    let mut recipients = 0u64;
    broadcast(server, now, text, &mut |payload| {
        buffers.insert(payload.as_str().as_ptr() as usize);
        recipients += 1;
    });
    assert_eq!(recipients, n, "every member gets the broadcast");
    assert_eq!(buffers.len(), 1, "one shared buffer for {n} recipients");
    eprintln!("{n} recipients, 1 encoded payload shared by all");
}

fn core_fanout(c: &mut Criterion) {
    // A typical chat line, shared by every iteration (the driver hands the core the buffer
    // tungstenite decoded; cloning it here is a refcount bump).
    let text = Payload::from("t:0:42:1234567890 the quick brown fox jumps over the lazy dog");
    bench_room(c, "core_fanout", Protocol::V1, &text);
}

fn core_fanout_v2(c: &mut Criterion) {
    let text = Payload::from(
        r#"{"type":"message","message":"t:0:42:1234567890 the quick brown fox jumps over the lazy dog"}"#,
    );
    bench_room(c, "core_fanout_v2", Protocol::V2, &text);
}

fn core_fanout_grouped(c: &mut Criterion) {
    let text = Payload::from("t:0:42:1234567890 the quick brown fox jumps over the lazy dog");
    bench_room_with(
        c,
        "core_fanout_grouped",
        Protocol::V1,
        &text,
        broadcast_grouped,
    );
}

criterion_group!(benches, core_fanout, core_fanout_v2, core_fanout_grouped);
criterion_main!(benches);
