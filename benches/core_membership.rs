//! Joining and leaving through the sans-IO core while many others are connected: one client
//! connects to a room of 100 tutorial (v1) clients and disconnects again, with 1 000 to
//! 100 000 clients connected in rooms of 100 around it. It measures what a client costs the
//! core's tables (its record, its room's audience and presence, its deadline) rather than
//! fan-out: the join and leave notices go to the room's 100 members, whatever the population.
//! `core_join_storm` is the idle scenario's storm: N clients join one room, each join notice
//! going to everyone already there (N(N+1)/2 frames), per join.
//!
//! `cargo bench --bench core_membership`

use std::hint::black_box;
use std::time::Instant;

use chat_protocol::{ChatServer, ClientId, Config, Input, Now, Output, Protocol, RoomName};
use chrono::{TimeZone, Utc};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

const ROOM_SIZE: u64 = 100;

fn now() -> Now {
    Now {
        instant: Instant::now(),
        wall: Utc
            .with_ymd_and_hms(2026, 11, 30, 12, 0, 0)
            .single()
            .expect("valid date"),
    }
}

fn room(index: u64) -> RoomName {
    RoomName::parse(&format!("r{index}")).expect("a valid room name")
}

/// Connects `client` as `user` to `room`; returns how many frames the core sent for it.
fn connect(server: &mut ChatServer, now: Now, client: u64, room: RoomName) -> usize {
    server
        .handle_input(
            now,
            Input::Connect {
                client: ClientId(client),
                user: format!("user{client}"),
                room,
                protocol: Protocol::V1,
                resume: None,
            },
        )
        .expect("a fresh id");
    drain(server)
}

fn disconnect(server: &mut ChatServer, now: Now, client: u64) -> usize {
    server
        .handle_input(
            now,
            Input::Disconnect {
                client: ClientId(client),
            },
        )
        .expect("a connected id");
    drain(server)
}

fn drain(server: &mut ChatServer) -> usize {
    let mut sent = 0;
    while let Some(output) = server.poll_output() {
        if let Output::Send { payload, .. } = output {
            sent += black_box(payload).len().min(1);
        }
    }
    sent
}

/// `n` clients in rooms of 100 (client i in room i / 100).
fn population(n: u64, now: Now) -> ChatServer {
    let mut server = ChatServer::new(Config::default().with_rate_limit(None));
    for id in 0..n {
        connect(&mut server, now, id, room(id / ROOM_SIZE));
    }
    server
}

fn core_join_leave(c: &mut Criterion) {
    let now = now();
    let mut group = c.benchmark_group("core_join_leave");
    for n in [1_000u64, 10_000, 100_000] {
        let mut server = population(n, now);
        // The newcomer joins the first room: its join notice reaches the 100 there and itself,
        // its leave notice the 100.
        let newcomer = n;
        let joined = connect(&mut server, now, newcomer, room(0));
        let left = disconnect(&mut server, now, newcomer);
        assert_eq!(
            (joined, left),
            (ROOM_SIZE as usize + 1, ROOM_SIZE as usize),
            "the notices go to the room, not the population"
        );
        group.throughput(Throughput::Elements(1));
        group.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, _| {
            b.iter(|| {
                connect(&mut server, now, newcomer, room(0))
                    + disconnect(&mut server, now, newcomer)
            })
        });
    }
    group.finish();
}

fn core_join_storm(c: &mut Criterion) {
    let now = now();
    let mut group = c.benchmark_group("core_join_storm");
    group.sample_size(10);
    for n in [1_000u64, 5_000] {
        group.throughput(Throughput::Elements(n));
        group.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, &n| {
            b.iter(|| {
                let mut server = ChatServer::new(Config::default().with_rate_limit(None));
                let mut frames = 0;
                for id in 0..n {
                    frames += connect(&mut server, now, id, RoomName::default());
                }
                assert_eq!(
                    frames as u64,
                    n * (n + 1) / 2,
                    "every join reaches everyone"
                );
                frames
            })
        });
    }
    group.finish();
}

criterion_group!(benches, core_join_leave, core_join_storm);
criterion_main!(benches);
