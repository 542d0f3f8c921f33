#![forbid(unsafe_code)]
//! `roomload`: opens many tutorial-protocol (v1) WebSocket clients against a chat server on
//! loopback, puts them in rooms, has each room chat at a fixed rate and measures delivery
//! (expected, delivered, lost, duplicates), latency and the server's memory and CPU.
//!
//! Each chat message reads `room:sender:seq:send_time_ns`; the send time is measured from this
//! process's start, so latency is receive time minus send time on one clock.

use std::collections::BTreeMap;
use std::io::ErrorKind;
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::os::fd::AsRawFd;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use clap::Parser;
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token, Waker};
use serde_json::{json, Value};
use tungstenite::protocol::WebSocketConfig;
use tungstenite::{Message, WebSocket};

/// Load generator for the chat server (loopback only).
#[derive(Parser, Debug, Clone)]
#[command(version)]
struct Args {
    /// Server base URL, e.g. ws://127.0.0.1:8000 or wss://127.0.0.1:8443 (must be a 127.x
    /// address). Repeat it for the nodes of a cluster: client i connects to the (i mod N)th,
    /// so every room is spread over all of them
    #[arg(long, required = true)]
    url_base: Vec<String>,
    /// PEM certificate to trust for wss:// (the server's self-signed one, or its CA)
    #[arg(long, value_name = "PEM")]
    ca: Option<std::path::PathBuf>,
    /// Number of clients
    #[arg(long, default_value_t = 1000)]
    clients: usize,
    /// Clients per room: client i joins room `r{i / room-size}`
    #[arg(long, default_value_t = 100)]
    room_size: usize,
    /// The first room's number (`r{N}`) and client names from `c{N * room-size}`: several
    /// roomload processes with disjoint ranges load one server (or cluster) together
    #[arg(long, default_value_t = 0)]
    first_room: usize,
    /// Chat messages per second per room, sent by a rotating member
    #[arg(long, default_value_t = 1.0)]
    rate: f64,
    /// Seconds to chat once every client is connected
    #[arg(long, default_value_t = 60)]
    hold: u64,
    /// Seconds to keep reading after the last message is sent
    #[arg(long, default_value_t = 3)]
    drain: u64,
    /// Threads connecting clients (blocking connect + handshake)
    #[arg(long, default_value_t = 8)]
    connect_concurrency: usize,
    /// Most seconds the connect phase may take; clients not connected by then are skipped
    #[arg(long, default_value_t = 120)]
    connect_timeout: u64,
    /// Event-loop threads reading and sending (rooms are split between them)
    #[arg(long, default_value_t = 2)]
    loop_threads: usize,
    /// Server process id: sample its RSS and CPU from /proc
    #[arg(long)]
    pid: Option<u32>,
    /// Print the result as JSON
    #[arg(long)]
    json: bool,
}

const PHASE_CONNECTING: u8 = 0;
const PHASE_SENDING: u8 = 1;
const PHASE_DRAINING: u8 = 2;
const PHASE_DONE: u8 = 3;
const WAKER: Token = Token(usize::MAX);
/// Kernel clock ticks per second for /proc/PID/stat (USER_HZ, 100 on Linux).
const CLK_TCK: f64 = 100.0;

static CLOCK: OnceLock<Instant> = OnceLock::new();

fn now_ns() -> u64 {
    u64::try_from(CLOCK.get_or_init(Instant::now).elapsed().as_nanos()).unwrap_or(u64::MAX)
}

/// State shared by the main thread and the workers.
struct Shared {
    phase: AtomicU8,
    /// `now_ns()` at which sending starts (set before the phase turns to sending).
    send_start_ns: Mutex<u64>,
    connected: AtomicUsize,
    connect_errors: Mutex<BTreeMap<String, usize>>,
}

/// A client's connection: plain TCP, or TLS over it (rustls, non-blocking once connected).
enum Stream {
    Plain(TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
}

impl Stream {
    fn tcp(&self) -> &TcpStream {
        match self {
            Stream::Plain(s) => s,
            Stream::Tls(s) => &s.sock,
        }
    }
}

impl std::io::Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Stream::Plain(s) => s.read(buf),
            Stream::Tls(s) => s.read(buf),
        }
    }
}

impl std::io::Write for Stream {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Stream::Plain(s) => s.write(buf),
            Stream::Tls(s) => s.write(buf),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Stream::Plain(s) => s.flush(),
            Stream::Tls(s) => s.flush(),
        }
    }
}

/// The TLS client configuration for `--ca`: that certificate is the only root.
fn tls_config(ca: &std::path::Path) -> Result<Arc<rustls::ClientConfig>, String> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::CertificateDer;
    let pem = std::fs::read(ca).map_err(|e| format!("--ca {}: {e}", ca.display()))?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&pem) {
        let cert = cert.map_err(|e| format!("--ca: {e}"))?;
        roots.add(cert).map_err(|e| format!("--ca: {e}"))?;
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| format!("TLS: {e}"))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(Arc::new(config))
}

struct Client {
    ws: WebSocket<Stream>,
    room: usize,
    alive: bool,
    /// Bit per sequence number of this client's room: delivered already.
    seen: Vec<u64>,
}

struct SendRec {
    expected: u64,
    delivered: u64,
}

struct Room {
    id: usize,
    members: Vec<usize>,
    alive: u64,
    rotor: usize,
    sends: Vec<SendRec>,
    next_send_ns: u64,
}

#[derive(Default)]
struct LoopStats {
    sent: u64,
    expected: u64,
    delivered: u64,
    duplicates: u64,
    unknown: u64,
    notices: u64,
    error_frames: u64,
    closed_by_server: u64,
    send_failures: u64,
    latencies_us: Vec<u64>,
}

struct Worker {
    index: usize,
    threads: usize,
    period_ns: u64,
    rooms_total: usize,
    room_size: usize,
    poll: Poll,
    incoming: Receiver<(usize, WebSocket<Stream>)>,
    clients: Vec<Client>,
    rooms: Vec<Room>,
    stats: LoopStats,
    shared: Arc<Shared>,
    deadline: Instant,
}

impl Worker {
    fn local_room(&self, room: usize) -> usize {
        room / self.threads
    }

    fn room_mut(&mut self, room: usize) -> &mut Room {
        let local = self.local_room(room);
        while self.rooms.len() <= local {
            let id = self.rooms.len() * self.threads + self.index;
            self.rooms.push(Room {
                id,
                members: Vec::new(),
                alive: 0,
                rotor: 0,
                sends: Vec::new(),
                next_send_ns: 0,
            });
        }
        &mut self.rooms[local]
    }

    fn run(&mut self) {
        let mut events = Events::with_capacity(1024);
        let mut schedule_set = false;
        loop {
            let phase = self.shared.phase.load(Ordering::Acquire);
            if phase == PHASE_DONE || Instant::now() >= self.deadline {
                break;
            }
            if phase == PHASE_SENDING && !schedule_set {
                schedule_set = true;
                let start = *self.shared.send_start_ns.lock().unwrap();
                let (period, total) = (self.period_ns, self.rooms_total as u64);
                for room in &mut self.rooms {
                    // Spread the rooms' sends evenly over one period.
                    room.next_send_ns = start + period * room.id as u64 / total.max(1);
                }
            }
            let timeout = if phase == PHASE_SENDING {
                let now = now_ns();
                let next = self.rooms.iter().map(|r| r.next_send_ns).min();
                let wait = next.map_or(10_000_000, |n| n.saturating_sub(now));
                Duration::from_nanos(wait.min(10_000_000))
            } else {
                Duration::from_millis(10)
            };
            if let Err(e) = self.poll.poll(&mut events, Some(timeout)) {
                if e.kind() != ErrorKind::Interrupted {
                    eprintln!("poll: {e}");
                    break;
                }
            }
            self.accept_new();
            let ready: Vec<usize> = events
                .iter()
                .filter(|e| e.token() != WAKER)
                .map(|e| e.token().0)
                .collect();
            for slot in ready {
                self.service(slot);
            }
            if phase == PHASE_SENDING {
                self.send_due();
            }
        }
    }

    fn accept_new(&mut self) {
        while let Ok((i, ws)) = self.incoming.try_recv() {
            let slot = self.clients.len();
            let fd = ws.get_ref().tcp().as_raw_fd();
            if let Err(e) = self.poll.registry().register(
                &mut SourceFd(&fd),
                Token(slot),
                Interest::READABLE | Interest::WRITABLE,
            ) {
                eprintln!("register: {e}");
                continue;
            }
            let room = i / self.room_size;
            self.clients.push(Client {
                ws,
                room,
                alive: true,
                seen: Vec::new(),
            });
            let r = self.room_mut(room);
            r.members.push(slot);
            r.alive += 1;
            // The handshake may have buffered frames already: read them now.
            self.service(slot);
        }
    }

    fn close(&mut self, slot: usize) {
        let client = &mut self.clients[slot];
        if !client.alive {
            return;
        }
        client.alive = false;
        let fd = client.ws.get_ref().tcp().as_raw_fd();
        let room = client.room;
        let _ = self.poll.registry().deregister(&mut SourceFd(&fd));
        self.room_mut(room).alive -= 1;
    }

    fn service(&mut self, slot: usize) {
        if !self.clients[slot].alive {
            return;
        }
        loop {
            match self.clients[slot].ws.read() {
                Ok(Message::Text(text)) => self.on_text(slot, text.as_str()),
                Ok(Message::Close(_)) => {
                    self.stats.closed_by_server += 1;
                    self.close(slot);
                    return;
                }
                Ok(_) => {}
                Err(tungstenite::Error::Io(e)) if e.kind() == ErrorKind::WouldBlock => break,
                Err(_) => {
                    self.stats.closed_by_server += 1;
                    self.close(slot);
                    return;
                }
            }
        }
        // Pongs to the server's pings and queued sends go out here.
        match self.clients[slot].ws.flush() {
            Ok(()) => {}
            Err(tungstenite::Error::Io(e)) if e.kind() == ErrorKind::WouldBlock => {}
            Err(_) => {
                self.stats.closed_by_server += 1;
                self.close(slot);
            }
        }
    }

    fn on_text(&mut self, slot: usize, text: &str) {
        let now = now_ns();
        let Ok(v) = serde_json::from_str::<Value>(text) else {
            self.stats.unknown += 1;
            return;
        };
        match v.get("type").and_then(Value::as_str) {
            Some("message") => {}
            Some("error") => {
                self.stats.error_frames += 1;
                return;
            }
            _ => {
                self.stats.notices += 1;
                return;
            }
        }
        let Some(parsed) = v
            .get("message")
            .and_then(Value::as_str)
            .and_then(parse_payload)
        else {
            self.stats.unknown += 1;
            return;
        };
        let (room, seq, sent_ns) = parsed;
        let client = &mut self.clients[slot];
        if room != client.room {
            self.stats.unknown += 1;
            return;
        }
        // Senders rotate, so one room's messages may reach the server (and come back) out of
        // send order: track each sequence number, not the highest seen.
        let (word, bit) = ((seq / 64) as usize, 1u64 << (seq % 64));
        if client.seen.len() <= word {
            client.seen.resize(word + 1, 0);
        }
        if client.seen[word] & bit != 0 {
            self.stats.duplicates += 1;
            return;
        }
        client.seen[word] |= bit;
        let local = self.local_room(room);
        let Some(rec) = self
            .rooms
            .get_mut(local)
            .and_then(|r| r.sends.get_mut(seq as usize))
        else {
            self.stats.unknown += 1;
            return;
        };
        rec.delivered += 1;
        self.stats
            .latencies_us
            .push(now.saturating_sub(sent_ns) / 1000);
    }

    fn send_due(&mut self) {
        let now = now_ns();
        for local in 0..self.rooms.len() {
            while self.rooms[local].next_send_ns <= now {
                self.rooms[local].next_send_ns += self.period_ns;
                self.send_one(local);
            }
        }
    }

    fn send_one(&mut self, local: usize) {
        let room = &mut self.rooms[local];
        if room.alive == 0 {
            return;
        }
        // Next live member in rotation.
        let mut sender = None;
        for _ in 0..room.members.len() {
            let slot = room.members[room.rotor % room.members.len()];
            room.rotor += 1;
            if self.clients[slot].alive {
                sender = Some(slot);
                break;
            }
        }
        let Some(slot) = sender else { return };
        let seq = room.sends.len();
        let text = format!("{}:{}:{}:{}", room.id, slot, seq, now_ns());
        room.sends.push(SendRec {
            expected: room.alive,
            delivered: 0,
        });
        match self.clients[slot].ws.send(Message::text(text)) {
            Ok(()) => {}
            // Queued in the WebSocket's buffer; flushed when the socket is writable.
            Err(tungstenite::Error::Io(e)) if e.kind() == ErrorKind::WouldBlock => {}
            Err(_) => {
                self.stats.send_failures += 1;
                self.close(slot);
            }
        }
    }

    fn finish(mut self) -> LoopStats {
        for room in &self.rooms {
            self.stats.sent += room.sends.len() as u64;
            for s in &room.sends {
                self.stats.expected += s.expected;
                self.stats.delivered += s.delivered;
            }
        }
        std::mem::take(&mut self.stats)
    }
}

/// `room:sender:seq:send_ns` -> (room, seq, send_ns).
fn parse_payload(s: &str) -> Option<(usize, u64, u64)> {
    let mut it = s.split(':');
    let room = it.next()?.parse().ok()?;
    let _sender: usize = it.next()?.parse().ok()?;
    let seq = it.next()?.parse().ok()?;
    let ns = it.next()?.parse().ok()?;
    Some((room, seq, ns))
}

/// (VmRSS in KiB, utime + stime in ticks) of a process.
fn proc_sample(pid: u32) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((rss, utime + stime))
}

fn self_sample() -> Option<(u64, u64)> {
    proc_sample(std::process::id())
}

fn connect_one(
    addr: SocketAddr,
    url: &str,
    config: WebSocketConfig,
    tls: Option<&Arc<rustls::ClientConfig>>,
) -> Result<WebSocket<Stream>, String> {
    let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(10))
        .map_err(|e| format!("connect: {}", e.kind()))?;
    let _ = stream.set_nodelay(true);
    stream
        .set_read_timeout(Some(Duration::from_secs(15)))
        .and_then(|()| stream.set_write_timeout(Some(Duration::from_secs(15))))
        .map_err(|e| format!("setsockopt: {e}"))?;
    let stream = match tls {
        None => Stream::Plain(stream),
        Some(tls) => {
            let name = rustls::pki_types::ServerName::IpAddress(addr.ip().into());
            let session = rustls::ClientConnection::new(Arc::clone(tls), name)
                .map_err(|e| format!("TLS: {e}"))?;
            let mut stream = rustls::StreamOwned::new(session, stream);
            while stream.conn.is_handshaking() {
                stream
                    .conn
                    .complete_io(&mut stream.sock)
                    .map_err(|e| format!("TLS handshake: {}", e.kind()))?;
            }
            Stream::Tls(Box::new(stream))
        }
    };
    let (ws, _resp) = tungstenite::client::client_with_config(url, stream, Some(config)).map_err(
        |e| match e {
            tungstenite::HandshakeError::Failure(tungstenite::Error::Http(resp)) => {
                format!("handshake: HTTP {}", resp.status())
            }
            tungstenite::HandshakeError::Failure(e) => format!("handshake: {e}"),
            tungstenite::HandshakeError::Interrupted(_) => "handshake: interrupted".into(),
        },
    )?;
    let s = ws.get_ref().tcp();
    s.set_read_timeout(None)
        .and_then(|()| s.set_write_timeout(None))
        .and_then(|()| s.set_nonblocking(true))
        .map_err(|e| format!("setsockopt: {e}"))?;
    Ok(ws)
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let idx = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[idx]
}

fn parse_loopback(url_base: &str) -> Result<(String, SocketAddr), String> {
    let (scheme, rest) = url_base
        .split_once("://")
        .filter(|(scheme, _)| *scheme == "ws" || *scheme == "wss")
        .ok_or("--url-base must start with ws:// or wss://")?;
    let rest = rest.trim_end_matches('/');
    let host = rest.split(':').next().unwrap_or("");
    if !host.starts_with("127.") {
        return Err(format!(
            "refusing non-loopback host {host:?}: use a 127.x address"
        ));
    }
    let addr = rest
        .to_socket_addrs()
        .map_err(|e| format!("bad --url-base {url_base}: {e}"))?
        .next()
        .ok_or("no address")?;
    if !addr.ip().is_loopback() {
        return Err("refusing a non-loopback address".into());
    }
    Ok((format!("{scheme}://{rest}"), addr))
}

fn main() -> ExitCode {
    let args = Args::parse();
    let mut nodes: Vec<(String, SocketAddr)> = Vec::new();
    for url_base in &args.url_base {
        match parse_loopback(url_base) {
            Ok(v) => nodes.push(v),
            Err(e) => {
                eprintln!("roomload: {e}");
                return ExitCode::from(2);
            }
        }
    }
    let base = nodes[0].0.clone();
    let tls = match (&args.ca, base.starts_with("wss://")) {
        (Some(ca), true) => match tls_config(ca) {
            Ok(config) => Some(config),
            Err(e) => {
                eprintln!("roomload: {e}");
                return ExitCode::from(2);
            }
        },
        (None, false) => None,
        _ => {
            eprintln!("roomload: wss:// needs --ca (and --ca needs wss://)");
            return ExitCode::from(2);
        }
    };
    if args.clients == 0
        || args.room_size == 0
        || args.rate <= 0.0
        || args.connect_concurrency == 0
        || args.loop_threads == 0
    {
        eprintln!("roomload: --clients, --room-size, --rate, --connect-concurrency and --loop-threads must be positive");
        return ExitCode::from(2);
    }
    now_ns();
    let nofile = rlimit::increase_nofile_limit(u64::MAX).unwrap_or(0);
    if (nofile as usize) < args.clients + 64 {
        eprintln!(
            "roomload: warning: open-files limit {nofile} is below --clients {} + 64; \
             some connections will fail",
            args.clients
        );
    }
    let rooms_total = args.clients.div_ceil(args.room_size);
    let threads = args.loop_threads.min(rooms_total);
    let period_ns = (1e9 / args.rate) as u64;
    let hard_deadline =
        Instant::now() + Duration::from_secs(args.connect_timeout + args.hold + args.drain + 30);
    let shared = Arc::new(Shared {
        phase: AtomicU8::new(PHASE_CONNECTING),
        send_start_ns: Mutex::new(0),
        connected: AtomicUsize::new(0),
        connect_errors: Mutex::new(BTreeMap::new()),
    });

    // Event-loop workers, each owning the rooms r with r % threads == index.
    let mut senders: Vec<(Sender<_>, Arc<Waker>)> = Vec::new();
    let mut workers = Vec::new();
    for index in 0..threads {
        let poll = Poll::new().expect("poll");
        let waker = Arc::new(Waker::new(poll.registry(), WAKER).expect("waker"));
        let (tx, rx) = mpsc::channel();
        senders.push((tx, waker));
        let worker = Worker {
            index,
            threads,
            period_ns,
            rooms_total,
            room_size: args.room_size,
            poll,
            incoming: rx,
            clients: Vec::new(),
            rooms: Vec::new(),
            stats: LoopStats::default(),
            shared: Arc::clone(&shared),
            deadline: hard_deadline,
        };
        workers.push(
            thread::Builder::new()
                .name(format!("loop-{index}"))
                .spawn(move || {
                    let mut w = worker;
                    w.run();
                    w.finish()
                })
                .expect("spawn"),
        );
    }

    let server0 = args.pid.and_then(proc_sample);
    let t_connect = Instant::now();
    let connect_deadline = t_connect + Duration::from_secs(args.connect_timeout);
    let next = Arc::new(AtomicUsize::new(0));
    let handshake_us = Arc::new(Mutex::new(Vec::with_capacity(args.clients)));
    let config = WebSocketConfig::default().read_buffer_size(4096);
    let connectors: Vec<_> = (0..args.connect_concurrency)
        .map(|_| {
            let next = Arc::clone(&next);
            let shared = Arc::clone(&shared);
            let senders = senders.clone();
            let nodes = nodes.clone();
            let tls = tls.clone();
            let handshake_us = Arc::clone(&handshake_us);
            let (clients, room_size, first_room) = (args.clients, args.room_size, args.first_room);
            thread::spawn(move || {
                let mut mine = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= clients || Instant::now() >= connect_deadline {
                        break;
                    }
                    let room = i / room_size;
                    let (base, addr) = &nodes[i % nodes.len()];
                    let url = format!(
                        "{base}/ws/c{}?room=r{}",
                        i + first_room * room_size,
                        room + first_room
                    );
                    let t = Instant::now();
                    match connect_one(*addr, &url, config, tls.as_ref()) {
                        Ok(ws) => {
                            mine.push(t.elapsed().as_micros() as u64);
                            shared.connected.fetch_add(1, Ordering::Relaxed);
                            let (tx, waker) = &senders[room % senders.len()];
                            if tx.send((i, ws)).is_ok() {
                                let _ = waker.wake();
                            }
                        }
                        Err(e) => {
                            *shared.connect_errors.lock().unwrap().entry(e).or_default() += 1;
                        }
                    }
                }
                handshake_us.lock().unwrap().extend(mine);
            })
        })
        .collect();
    for c in connectors {
        let _ = c.join();
    }
    let connect_secs = t_connect.elapsed().as_secs_f64();
    let connected = shared.connected.load(Ordering::Relaxed);
    // Let the join notices settle before measuring.
    thread::sleep(Duration::from_secs(2));

    let server1 = args.pid.and_then(proc_sample);
    let self1 = self_sample();
    *shared.send_start_ns.lock().unwrap() = now_ns() + 10_000_000;
    shared.phase.store(PHASE_SENDING, Ordering::Release);
    for (_, w) in &senders {
        let _ = w.wake();
    }
    let t_hold = Instant::now();
    thread::sleep(Duration::from_secs(args.hold));
    let hold_secs = t_hold.elapsed().as_secs_f64();
    let server2 = args.pid.and_then(proc_sample);
    let self2 = self_sample();
    shared.phase.store(PHASE_DRAINING, Ordering::Release);
    thread::sleep(Duration::from_secs(args.drain));
    shared.phase.store(PHASE_DONE, Ordering::Release);
    for (_, w) in &senders {
        let _ = w.wake();
    }
    let mut total = LoopStats::default();
    for w in workers {
        if let Ok(s) = w.join() {
            total.sent += s.sent;
            total.expected += s.expected;
            total.delivered += s.delivered;
            total.duplicates += s.duplicates;
            total.unknown += s.unknown;
            total.notices += s.notices;
            total.error_frames += s.error_frames;
            total.closed_by_server += s.closed_by_server;
            total.send_failures += s.send_failures;
            total.latencies_us.extend(s.latencies_us);
        }
    }
    total.latencies_us.sort_unstable();
    let mut hs = std::mem::take(&mut *handshake_us.lock().unwrap());
    hs.sort_unstable();
    let lat = &total.latencies_us;
    let cpu_pct = |a: Option<(u64, u64)>, b: Option<(u64, u64)>, secs: f64| {
        a.zip(b)
            .map(|(a, b)| (b.1.saturating_sub(a.1)) as f64 / CLK_TCK / secs * 100.0)
    };
    let errors = shared.connect_errors.lock().unwrap().clone();
    let report = json!({
        "clients": args.clients,
        "room_size": args.room_size,
        "rooms": rooms_total,
        "rate_per_room": args.rate,
        "hold_s": hold_secs,
        "connected": connected,
        "connect_errors": errors,
        "connect_s": connect_secs,
        "connects_per_s": connected as f64 / connect_secs,
        "handshake_ms_p50": percentile(&hs, 0.5) as f64 / 1000.0,
        "handshake_ms_p99": percentile(&hs, 0.99) as f64 / 1000.0,
        "sent": total.sent,
        "expected": total.expected,
        "delivered": total.delivered,
        "lost": total.expected.saturating_sub(total.delivered),
        "delivered_ratio": if total.expected > 0 { total.delivered as f64 / total.expected as f64 } else { 0.0 },
        "deliveries_per_s": total.delivered as f64 / hold_secs,
        "duplicates": total.duplicates,
        "unknown_frames": total.unknown,
        "notice_frames": total.notices,
        "error_frames": total.error_frames,
        "closed_by_server": total.closed_by_server,
        "send_failures": total.send_failures,
        "latency_ms_p50": percentile(lat, 0.5) as f64 / 1000.0,
        "latency_ms_p99": percentile(lat, 0.99) as f64 / 1000.0,
        "latency_ms_max": lat.last().copied().unwrap_or(0) as f64 / 1000.0,
        "server_rss_mib_before": server0.map(|s| s.0 as f64 / 1024.0),
        "server_rss_mib_connected": server1.map(|s| s.0 as f64 / 1024.0),
        "server_rss_mib_end": server2.map(|s| s.0 as f64 / 1024.0),
        "server_rss_kib_per_conn": server0.zip(server2).map(|(a, b)| (b.0.saturating_sub(a.0)) as f64 / connected.max(1) as f64),
        "server_cpu_pct_connect": cpu_pct(server0, server1, connect_secs + 2.0),
        "server_cpu_pct_hold": cpu_pct(server1, server2, hold_secs),
        "roomload_cpu_pct_hold": cpu_pct(self1, self2, hold_secs),
        "roomload_rss_mib": self2.map(|s| s.0 as f64 / 1024.0),
    });
    if args.json {
        println!("{report}");
    } else {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).unwrap_or_default()
        );
    }
    ExitCode::SUCCESS
}
