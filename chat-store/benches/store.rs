//! The storage thread's throughput and the start-up cost.
//!
//! - `store_append/{full,normal}`: 100 000 appends (100 rooms, 60-byte texts) through a running
//!   store, timed from the first `append` to the last `Stored` completion, so it includes the
//!   channel, group commit and the fsyncs of that `synchronous` level.
//! - `store_open/1M_messages_1000_rooms_{clean,unclean}`: `open` of a database of 1 000 000
//!   messages in 1 000 rooms, loading 100 per room; `unclean` is the start after a crash (it
//!   adds `PRAGMA quick_check`).
//!
//! `cargo bench -p chat-store --bench store`

#[path = "../tests/common/mod.rs"]
mod common;

use std::sync::mpsc;
use std::time::{Duration, Instant};

use chat_store::{open, Completion, Synchronous};
use common::{build_database, message, options, TempDir, WAIT};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

const APPENDS: u64 = 100_000;
const ROOMS: u64 = 100;

fn store_append(c: &mut Criterion) {
    let mut group = c.benchmark_group("store_append");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(10));
    group.throughput(Throughput::Elements(APPENDS));
    for (name, level) in [("full", Synchronous::Full), ("normal", Synchronous::Normal)] {
        let dir = TempDir::new(&format!("bench-append-{name}"));
        let mut opts = options(dir.path(), 1);
        opts.synchronous = level;
        let opened = open(opts).expect("open");
        let (tx, rx) = mpsc::channel();
        let store = opened
            .store
            .start(move |completion| {
                let _ = tx.send(completion);
            })
            .expect("start");
        let text = "a chat line of about sixty bytes, as people type them: ok";
        let mut next_id = 0u64;
        group.bench_function(BenchmarkId::from_parameter(name), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let started = Instant::now();
                    for i in 0..APPENDS {
                        let id = next_id / ROOMS + 1;
                        next_id += 1;
                        store.append(i, message(&format!("room{}", i % ROOMS), 1, id, text));
                    }
                    let mut stored = 0;
                    while stored < APPENDS as usize {
                        match rx.recv_timeout(WAIT).expect("completion") {
                            Completion::Stored { tickets, result } => {
                                assert_eq!(result, Ok(()));
                                stored += tickets.len();
                            }
                            other => unreachable!("only appends here: {other:?}"),
                        }
                    }
                    total += started.elapsed();
                }
                total
            })
        });
        let stats = store.stats();
        eprintln!(
            "store_append/{name}: {} messages in {} transactions ({:.0} per transaction), commit \
             max {:.1} ms, mean {:.2} ms",
            stats.stored_total(),
            stats.batches_total(),
            stats.stored_total() as f64 / stats.batches_total().max(1) as f64,
            stats.commit_seconds_max() * 1e3,
            stats.commit_seconds_sum() * 1e3 / stats.batches_total().max(1) as f64
        );
        store.shutdown().expect("shutdown");
    }
    group.finish();
}

fn store_open(c: &mut Criterion) {
    let dir = TempDir::new("bench-open");
    let built = Instant::now();
    build_database(dir.path(), 1000, 1000, 42);
    eprintln!(
        "store_open: built 1 000 000 messages in {:?}",
        built.elapsed()
    );
    let mut group = c.benchmark_group("store_open");
    group.sample_size(10);
    group.bench_function("1M_messages_1000_rooms_clean", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let started = Instant::now();
                let opened = open(options(dir.path(), 1)).expect("open");
                total += started.elapsed();
                assert_eq!(opened.rooms.len(), 1000);
                // Untimed: a clean shutdown, so the next open is a clean start again.
                opened
                    .store
                    .start(|_| {})
                    .expect("start")
                    .shutdown()
                    .expect("shutdown");
            }
            total
        })
    });
    group.bench_function("1M_messages_1000_rooms_unclean", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let started = Instant::now();
                let opened = open(options(dir.path(), 1)).expect("open");
                total += started.elapsed();
                assert_eq!(opened.rooms.len(), 1000);
                drop(opened); // never shut down: the next open is after an unclean end
            }
            total
        })
    });
    group.finish();
}

criterion_group!(benches, store_append, store_open);
criterion_main!(benches);
