//! End-to-end fan-out over real sockets: an in-process server on loopback and N real WebSocket
//! clients (tungstenite). Measures the time for one message to reach all N clients, and a
//! sustained burst, reported per delivered frame (criterion `Throughput::Elements`).
//!
//! `cargo bench --bench e2e_fanout`
//!
//! The clients run on the bench thread and read their sockets one after the other, so the
//! figures include the client side's cost: compare them with each other (and over time), not
//! with a server running alone.

use std::net::TcpStream;
use std::thread::JoinHandle;
use std::time::Duration;

use chat_mio_server::{Config, Server, ServerHandle};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use tungstenite::{Message, WebSocket};

type Client = WebSocket<TcpStream>;

struct Room {
    handle: ServerHandle,
    thread: Option<JoinHandle<std::io::Result<()>>>,
    clients: Vec<Client>,
}

impl Room {
    /// A server without rate limit (one client sends everything) and `n` joined clients whose
    /// join notices are all read.
    fn new(n: usize) -> Room {
        let config = Config {
            bind: "127.0.0.1:0".parse().expect("literal address"),
            rate_limit: 0.0,
            ..Config::default()
        };
        let server = Server::bind(config).expect("bind an ephemeral port");
        let addr = server.local_addr();
        let handle = server.handle();
        let thread = Some(std::thread::spawn(move || server.run()));
        let mut clients = Vec::with_capacity(n);
        for i in 0..n {
            let stream = TcpStream::connect(addr).expect("connect");
            stream.set_nodelay(true).expect("nodelay");
            stream
                .set_read_timeout(Some(Duration::from_secs(30)))
                .expect("read timeout");
            let url = format!("ws://{addr}/ws/b{i}");
            let (client, _) = tungstenite::client(url, stream).expect("handshake");
            clients.push(client);
        }
        // Client i sees the joins of clients i..n (its own and every later one).
        for (i, client) in clients.iter_mut().enumerate() {
            for _ in i..n {
                read_text(client);
            }
        }
        Room {
            handle,
            thread,
            clients,
        }
    }

    /// Client 0 sends `count` messages; returns once every client has read all of them.
    fn broadcast(&mut self, count: usize) {
        for _ in 0..count {
            self.clients[0]
                .send(Message::text(
                    "t:0:1:1234567890 the quick brown fox jumps over",
                ))
                .expect("send");
        }
        for client in &mut self.clients {
            for _ in 0..count {
                read_text(client);
            }
        }
    }
}

impl Drop for Room {
    fn drop(&mut self) {
        self.handle.shutdown();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn read_text(client: &mut Client) {
    loop {
        match client.read().expect("read a frame") {
            Message::Text(_) => return,
            // The server's heartbeat pings are answered by tungstenite; not counted.
            _ => continue,
        }
    }
}

fn e2e_fanout(c: &mut Criterion) {
    let mut group = c.benchmark_group("e2e_fanout");
    group.sample_size(20);
    group.measurement_time(Duration::from_secs(5));
    for n in [10usize, 100, 1_000] {
        let mut room = Room::new(n);
        group.throughput(Throughput::Elements(n as u64));
        group.bench_with_input(BenchmarkId::new("one_message", n), &n, |b, _| {
            b.iter(|| room.broadcast(1))
        });
        let burst = 100;
        group.throughput(Throughput::Elements((n * burst) as u64));
        group.bench_with_input(BenchmarkId::new("burst_100", n), &n, |b, _| {
            b.iter(|| room.broadcast(burst))
        });
    }
    group.finish();
}

criterion_group!(benches, e2e_fanout);
criterion_main!(benches);
