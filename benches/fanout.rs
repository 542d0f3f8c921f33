//! Broadcast fan-out through the sans-IO core: the cost of one chat message delivered to N
//! connected clients, reported per delivered frame (criterion `Throughput::Elements(N)`).
//!
//! `cargo bench --bench fanout`

use std::hint::black_box;
use std::time::Instant;

use chat_protocol::{ChatServer, ClientId, Config, Input, Now, Output, Payload};
use chrono::{TimeZone, Utc};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

fn room_of(n: u64, now: Now) -> ChatServer {
    // One client sends every message: the bench measures fan-out, not the rate limit.
    let mut server = ChatServer::new(Config::default().with_rate_limit(None));
    for id in 0..n {
        server
            .handle_input(
                now,
                Input::Connect {
                    client: ClientId(id),
                    user: format!("user{id}"),
                },
            )
            .expect("fresh ids");
        while server.poll_output().is_some() {}
    }
    server
}

fn core_fanout(c: &mut Criterion) {
    let now = Now {
        instant: Instant::now(),
        wall: Utc
            .with_ymd_and_hms(2026, 11, 21, 12, 0, 0)
            .single()
            .expect("valid date"),
    };
    // A typical chat line, shared by every iteration (the driver hands the core the buffer
    // tungstenite decoded; cloning it here is a refcount bump).
    let text = Payload::from("t:0:42:1234567890 the quick brown fox jumps over the lazy dog");
    let mut group = c.benchmark_group("core_fanout");
    for n in [10u64, 100, 1_000, 10_000] {
        let mut server = room_of(n, now);
        group.throughput(Throughput::Elements(n));
        group.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, _| {
            b.iter(|| {
                server
                    .handle_input(
                        now,
                        Input::Text {
                            client: ClientId(0),
                            text: text.clone(),
                        },
                    )
                    .expect("client 0 is connected");
                let mut delivered = 0usize;
                while let Some(output) = server.poll_output() {
                    if let Output::Send { payload, .. } = output {
                        delivered += black_box(payload).len();
                    }
                }
                delivered
            })
        });
    }
    group.finish();
}

criterion_group!(benches, core_fanout);
criterion_main!(benches);
