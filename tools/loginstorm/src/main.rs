#![forbid(unsafe_code)]
//! `loginstorm`: does a storm of logins slow the chat down for everyone else?
//!
//! Against a running `chat-mio-server --auth accounts --trusted-proxy 127.0.0.1` on loopback
//! whose database holds the users `chat0..chatN` and `storm0..stormM` (all with the password
//! given), it logs the chat users in, opens one tutorial-protocol WebSocket each (with its
//! cookie) in one room, and has one of them send a message every `--interval-ms`. Each message
//! carries its send time; every other member measures the delivery latency. It does this in
//! rounds that alternate an idle phase and a storm phase: during a storm phase `--storm`
//! login attempts (to the storm accounts, half with a wrong password, each from its own
//! `X-Forwarded-For` address so no throttle short-cuts the password check) are fired at once
//! from as many threads. It prints p50/p99 per phase and the ratio of the medians over rounds,
//! and the storm logins' answers (303 ok, 401 wrong, 503 hasher queue full, 429 throttled).

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::mpsc;
use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, Instant};

use clap::Parser;
use tungstenite::client::IntoClientRequest;
use tungstenite::Message;

/// Measures chat latency during a login storm (loopback only).
#[derive(Parser, Debug, Clone)]
#[command(version)]
struct Args {
    /// The server's address (a 127.x address)
    #[arg(long, default_value = "127.0.0.1:8000")]
    addr: SocketAddr,
    /// The password of every chat and storm account
    #[arg(long)]
    password: String,
    /// Chat users chat0..chatN-1 (logged in, one connection each, one room)
    #[arg(long, default_value_t = 20)]
    chatters: usize,
    /// Login attempts per storm (to storm0..stormN-1)
    #[arg(long, default_value_t = 100)]
    storm: usize,
    /// Milliseconds between chat messages
    #[arg(long, default_value_t = 10)]
    interval_ms: u64,
    /// Length of each phase, in seconds
    #[arg(long, default_value_t = 3.0)]
    phase_secs: f64,
    /// Rounds of (idle, storm)
    #[arg(long, default_value_t = 3)]
    rounds: usize,
}

fn clock() -> Instant {
    static START: OnceLock<Instant> = OnceLock::new();
    *START.get_or_init(Instant::now)
}

fn micros_now() -> u64 {
    u64::try_from(clock().elapsed().as_micros()).unwrap_or(u64::MAX)
}

/// One HTTP/1.1 exchange on a fresh connection: the status and the whole response.
fn http(addr: SocketAddr, request: &str) -> std::io::Result<(u16, String)> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(60)))?;
    stream.write_all(request.as_bytes())?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let status = response
        .get(9..12)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    Ok((status, response))
}

fn login(addr: SocketAddr, name: &str, password: &str, from: Option<&str>) -> (u16, String) {
    let body = format!("name={name}&password={password}");
    let forwarded = from
        .map(|ip| format!("X-Forwarded-For: {ip}\r\n"))
        .unwrap_or_default();
    let request = format!(
        "POST /login HTTP/1.1\r\nHost: {addr}\r\n{forwarded}Content-Type: \
         application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    match http(addr, &request) {
        Ok(answer) => answer,
        Err(e) => {
            eprintln!("login {name}: {e}");
            (0, String::new())
        }
    }
}

fn cookie_of(response: &str) -> Option<String> {
    response
        .lines()
        .find_map(|l| l.strip_prefix("Set-Cookie: "))
        .and_then(|v| v.split(';').next())
        .map(str::to_owned)
}

type Client = tungstenite::WebSocket<TcpStream>;

fn connect(addr: SocketAddr, user: &str, cookie: &str) -> Client {
    let mut request = format!("ws://{addr}/ws/{user}?room=storm")
        .into_client_request()
        .expect("a request");
    request
        .headers_mut()
        .insert("Cookie", cookie.parse().expect("a header value"));
    let stream = TcpStream::connect(addr).expect("connect");
    stream.set_nodelay(true).expect("nodelay");
    tungstenite::client(request, stream).expect("upgrade").0
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i] as f64 / 1000.0
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(f64::NAN)
}

fn main() {
    let args = Args::parse();
    assert!(
        args.addr.ip().is_loopback(),
        "loginstorm only runs against a loopback address"
    );
    assert!(args.chatters >= 2, "--chatters must be at least 2");
    clock();

    // Log the chatters in and connect them.
    let mut clients = Vec::new();
    for i in 0..args.chatters {
        let user = format!("chat{i}");
        let (status, response) = login(args.addr, &user, &args.password, None);
        let cookie = cookie_of(&response)
            .unwrap_or_else(|| panic!("login of {user} answered {status}: {response}"));
        clients.push((user.clone(), connect(args.addr, &user, &cookie)));
    }
    // Receivers: every client but the first reads and reports latencies (µs) tagged by phase.
    let (tx, rx) = mpsc::channel::<(u32, u64)>();
    let mut clients = clients.into_iter();
    let (_, mut sender) = clients.next().expect("a sender");
    for (_, mut client) in clients {
        let tx = tx.clone();
        thread::spawn(move || {
            while let Ok(message) = client.read() {
                let Message::Text(text) = message else {
                    continue;
                };
                let now = micros_now();
                let Ok(frame) = serde_json::from_str::<serde_json::Value>(text.as_str()) else {
                    continue;
                };
                let Some(body) = frame["message"].as_str() else {
                    continue;
                };
                let mut parts = body.split(':');
                if parts.next() != Some("lat") {
                    continue;
                }
                let phase = parts.next().and_then(|p| p.parse().ok());
                let sent = parts.next().and_then(|p| p.parse::<u64>().ok());
                if let (Some(phase), Some(sent)) = (phase, sent) {
                    if tx.send((phase, now.saturating_sub(sent))).is_err() {
                        return;
                    }
                }
            }
        });
    }
    drop(tx);
    // Drain the join notices before measuring.
    thread::sleep(Duration::from_millis(500));

    let phase_len = Duration::from_secs_f64(args.phase_secs);
    let interval = Duration::from_millis(args.interval_ms);
    let mut answers: BTreeMap<u16, usize> = BTreeMap::new();
    let mut phase_id = 0u32;
    let mut phases: Vec<(bool, u32)> = Vec::new();
    for round in 0..args.rounds {
        for storm in [false, true] {
            phase_id += 1;
            phases.push((storm, phase_id));
            let storm_threads: Vec<_> = if storm {
                (0..args.storm)
                    .map(|i| {
                        let addr = args.addr;
                        // Half right, half wrong; each from its own address.
                        let password = if i % 2 == 0 {
                            args.password.clone()
                        } else {
                            "wrong-password".to_owned()
                        };
                        let from = format!("10.{}.{}.{}", round % 250, i / 250, i % 250 + 1);
                        thread::spawn(move || {
                            login(addr, &format!("storm{i}"), &password, Some(&from)).0
                        })
                    })
                    .collect()
            } else {
                Vec::new()
            };
            let started = Instant::now();
            let mut next = started;
            while started.elapsed() < phase_len {
                let text = format!("lat:{phase_id}:{}", micros_now());
                sender.send(Message::text(text)).expect("send");
                next += interval;
                if let Some(wait) = next.checked_duration_since(Instant::now()) {
                    thread::sleep(wait);
                }
            }
            for t in storm_threads {
                let status = t.join().unwrap_or(0);
                *answers.entry(status).or_default() += 1;
            }
            // Let the last messages arrive.
            thread::sleep(Duration::from_millis(300));
        }
    }
    drop(sender);
    let mut by_phase: BTreeMap<u32, Vec<u64>> = BTreeMap::new();
    while let Ok((phase, latency)) = rx.recv_timeout(Duration::from_millis(500)) {
        by_phase.entry(phase).or_default().push(latency);
    }
    let mut idle_p99 = Vec::new();
    let mut storm_p99 = Vec::new();
    let mut idle_p50 = Vec::new();
    let mut storm_p50 = Vec::new();
    println!("phase  kind   deliveries  p50 ms  p99 ms  max ms");
    for (storm, id) in &phases {
        let mut latencies = by_phase.remove(id).unwrap_or_default();
        latencies.sort_unstable();
        let (p50, p99) = (percentile(&latencies, 0.5), percentile(&latencies, 0.99));
        let max = latencies.last().map_or(f64::NAN, |&m| m as f64 / 1000.0);
        println!(
            "{id:>5}  {:<5}  {:>10}  {p50:>6.2}  {p99:>6.2}  {max:>6.2}",
            if *storm { "storm" } else { "idle" },
            latencies.len()
        );
        if *storm {
            storm_p50.push(p50);
            storm_p99.push(p99);
        } else {
            idle_p50.push(p50);
            idle_p99.push(p99);
        }
    }
    let (i50, s50) = (median(idle_p50), median(storm_p50));
    let (i99, s99) = (median(idle_p99), median(storm_p99));
    println!(
        "median over {} rounds: idle p50 {i50:.2} ms p99 {i99:.2} ms; storm p50 {s50:.2} ms \
         p99 {s99:.2} ms; p99 ratio storm/idle {:.2}",
        args.rounds,
        s99 / i99
    );
    let answers: Vec<String> = answers.iter().map(|(s, n)| format!("{s}: {n}")).collect();
    println!(
        "storm login answers (status: count): {}",
        answers.join(", ")
    );
}
