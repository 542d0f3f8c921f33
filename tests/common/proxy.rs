//! A TCP proxy for the end-to-end tests: it forwards every connection to a target server and
//! can cut all of them at once, hold new ones back, and switch to another target, so a test
//! can break a client's connection (or restart the server under it) without the client's
//! cooperation.
//!
//! Plain blocking std sockets: one accept thread, and two pump threads per connection (one per
//! direction). Dropping the proxy cuts everything and joins every thread.
//!
//! Include it next to `mod common;` with `#[path = "common/proxy.rs"] mod proxy;`.
#![allow(dead_code)] // each test binary uses a different part of the helpers

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

/// How long the proxy tries to reach its target before giving up on a connection (which it
/// then closes, as an unreachable server would look to the client).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// A running proxy on `127.0.0.1:0`.
pub struct Proxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

struct Shared {
    state: Mutex<State>,
    /// Signalled when `paused`, `stalled` or `stopping` changes.
    changed: Condvar,
}

struct State {
    target: SocketAddr,
    /// New connections are accepted but not forwarded until `resume`.
    paused: bool,
    /// What the targets send is held back (not passed on to the clients) until `cut`.
    stalled: bool,
    stopping: bool,
    /// Both ends of every forwarded connection not cut yet (clones of the pumps' sockets).
    links: Vec<(TcpStream, TcpStream)>,
    /// Every pump thread started, joined on drop.
    pumps: Vec<JoinHandle<()>>,
    /// How many connections were forwarded to a target so far.
    forwarded: usize,
}

impl Proxy {
    /// Starts a proxy to `target`.
    pub fn start(target: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the proxy");
        let addr = listener.local_addr().expect("the proxy's address");
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                target,
                paused: false,
                stalled: false,
                stopping: false,
                links: Vec::new(),
                pumps: Vec::new(),
                forwarded: 0,
            }),
            changed: Condvar::new(),
        });
        let acceptor = {
            let shared = Arc::clone(&shared);
            std::thread::Builder::new()
                .name(format!("proxy-{}", addr.port()))
                .spawn(move || accept_loop(&listener, &shared))
                .expect("spawn the proxy's accept thread")
        };
        Proxy {
            addr,
            shared,
            acceptor: Some(acceptor),
        }
    }

    /// Where clients connect.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PROXY_PORT{path}`: a page loaded from here also opens its WebSocket
    /// (to `location.host`) through the proxy.
    pub fn http_url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Sends connections accepted from now on to `target`.
    pub fn set_target(&self, target: SocketAddr) {
        self.shared.lock().target = target;
    }

    /// Cuts every forwarded connection (both sides get a FIN, as after a network failure
    /// that the kernels noticed). Returns how many there were.
    /// Whatever was held back by [`Proxy::stall_downstream`] is lost with them.
    pub fn cut(&self) -> usize {
        let mut state = self.shared.lock();
        let links = std::mem::take(&mut state.links);
        for (client, upstream) in &links {
            // Either side may be gone already; that is fine.
            let _ = client.shutdown(Shutdown::Both);
            let _ = upstream.shutdown(Shutdown::Both);
        }
        // The stalled pumps wake up to sockets already shut down: their data goes nowhere.
        state.stalled = false;
        drop(state);
        self.shared.changed.notify_all();
        links.len()
    }

    /// Holds back everything the targets send on the current and new connections, while
    /// the clients' traffic still gets through: the server believes it delivered what the
    /// clients never see (an acknowledgement lost with a dying connection). Ends with
    /// [`Proxy::cut`], which throws the held data away.
    pub fn stall_downstream(&self) {
        self.shared.lock().stalled = true;
    }

    /// Holds new connections: they are accepted (so the client waits, as on a slow
    /// network) but nothing reaches the target until [`Proxy::resume`].
    pub fn pause(&self) {
        self.shared.lock().paused = true;
        self.shared.changed.notify_all();
    }

    /// Forwards held and new connections again.
    pub fn resume(&self) {
        self.shared.lock().paused = false;
        self.shared.changed.notify_all();
    }

    /// How many connections were forwarded to a target so far.
    pub fn forwarded(&self) -> usize {
        self.shared.lock().forwarded
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.shared.lock().stopping = true;
        self.shared.changed.notify_all();
        self.cut();
        // Wake the accept thread, blocked in `accept`, with a connection of our own.
        let _ = TcpStream::connect(self.addr);
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
        // The accept thread is gone, so no link or pump can be added any more; the cut
        // above (and the one here, for a link added in between) ends every pump.
        self.cut();
        let pumps = std::mem::take(&mut self.shared.lock().pumps);
        for pump in pumps {
            let _ = pump.join();
        }
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panicking test thread must not hide the proxy's state from Drop.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn accept_loop(listener: &TcpListener, shared: &Arc<Shared>) {
    loop {
        let client = listener.accept().map(|(stream, _)| stream);
        let mut state = shared.lock();
        while state.paused && !state.stopping {
            state = shared
                .changed
                .wait(state)
                .unwrap_or_else(|e| e.into_inner());
        }
        if state.stopping {
            return;
        }
        let target = state.target;
        drop(state);
        let Ok(client) = client else {
            continue; // e.g. the client reset before we took it
        };
        // Unreachable target: close the client's connection, as a dead server would.
        let Ok(upstream) = TcpStream::connect_timeout(&target, CONNECT_TIMEOUT) else {
            continue;
        };
        let _ = client.set_nodelay(true);
        let _ = upstream.set_nodelay(true);
        if let Err(e) = forward(shared, client, upstream) {
            eprintln!("proxy: cannot forward a connection: {e}");
        }
    }
}

/// Registers the pair and starts its two pumps (unless the proxy is stopping, when the pair
/// is simply dropped).
fn forward(shared: &Arc<Shared>, client: TcpStream, upstream: TcpStream) -> io::Result<()> {
    let mut state = shared.lock();
    if state.stopping {
        return Ok(());
    }
    state
        .links
        .push((client.try_clone()?, upstream.try_clone()?));
    state.forwarded += 1;
    let (client_read, upstream_read) = (client.try_clone()?, upstream.try_clone()?);
    let port = client.local_addr()?.port();
    for (from, to, downstream) in [
        (client_read, upstream, false),
        (upstream_read, client, true),
    ] {
        let shared = Arc::clone(shared);
        let direction = if downstream { "down" } else { "up" };
        let pump = std::thread::Builder::new()
            .name(format!("proxy-{port}-{direction}"))
            .spawn(move || pump(&shared, from, to, downstream))?;
        state.pumps.push(pump);
    }
    Ok(())
}

/// Copies `from` to `to` until `from` ends, then passes the end on: a clean end (FIN) as a
/// half-close of `to`, a failure (or a cut) as the end of both. A `downstream` pump holds
/// what it read while the proxy is stalled.
fn pump(shared: &Shared, mut from: TcpStream, mut to: TcpStream, downstream: bool) {
    let mut buf = [0u8; 16 * 1024];
    loop {
        match from.read(&mut buf) {
            Ok(0) => {
                let _ = to.shutdown(Shutdown::Write);
                return;
            }
            Ok(n) => {
                if downstream {
                    let mut state = shared.lock();
                    while state.stalled && !state.stopping {
                        state = shared
                            .changed
                            .wait(state)
                            .unwrap_or_else(|e| e.into_inner());
                    }
                }
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    let _ = from.shutdown(Shutdown::Both);
    let _ = to.shutdown(Shutdown::Both);
}
