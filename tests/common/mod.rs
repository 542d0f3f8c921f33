//! Shared harness for the end-to-end tests: an in-process server on an ephemeral port.
#![allow(dead_code)] // each test binary uses a different part of the harness

use std::net::{SocketAddr, TcpStream};
use std::thread::JoinHandle;
use std::time::Duration;

use chat_mio_server::{Config, Server, ServerHandle};

/// How long any test client waits for the server before it fails.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// A TCP connection to `addr` whose reads and writes fail after [`TIMEOUT`] instead of hanging.
pub fn tcp_connect(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(addr).expect("TCP connect to the test server");
    stream
        .set_read_timeout(Some(TIMEOUT))
        .expect("read timeout");
    stream
        .set_write_timeout(Some(TIMEOUT))
        .expect("write timeout");
    stream
}

/// A real server running on its own thread, bound to `127.0.0.1:0`. Dropping it shuts the server
/// down and joins the thread, so no test leaves a server behind.
///
/// Which server: `chat-mio-server` (the mio event loop), unless `CHAT_TEST_ADAPTER=tokio` is
/// set, then `chat-tokio`'s (`tests/on_tokio.rs` runs the end-to-end suites that way). Both
/// take the same [`Config`].
pub struct TestServer {
    pub addr: SocketAddr,
    /// It serves TLS itself (`--tls-cert`): its URLs are `https://` and `wss://`.
    pub tls: bool,
    running: Option<Running>,
}

/// The server behind a [`TestServer`], of one adapter or the other.
enum Running {
    Mio {
        handle: ServerHandle,
        thread: JoinHandle<std::io::Result<()>>,
    },
    Tokio(chat_tokio::RunningServer),
}

/// The adapter the tests run against: `CHAT_TEST_ADAPTER` (`mio`, the default, or `tokio`).
pub fn adapter() -> &'static str {
    match std::env::var("CHAT_TEST_ADAPTER").as_deref() {
        Ok("tokio") => "tokio",
        Ok("mio") | Err(_) => "mio",
        Ok(other) => panic!("CHAT_TEST_ADAPTER={other:?}: mio or tokio"),
    }
}

impl TestServer {
    /// Starts a server with the default configuration.
    pub fn start() -> TestServer {
        Self::with_config(Config::default())
    }

    /// Starts a server with the default configuration but no per-connection rate limit, for
    /// tests that send faster than a person types.
    pub fn without_rate_limit() -> TestServer {
        Self::with_config(Config {
            rate_limit: 0.0,
            ..Config::default()
        })
    }

    /// Starts a server with `config`; its bind address is replaced by `127.0.0.1:0`. With
    /// `CHAT_TEST_REDIS=redis://...` in the environment, the server is a node of a cluster on
    /// that Redis, under a prefix of its own (`tests/tutorial_on_a_cluster.rs` runs the
    /// tutorial's tests that way).
    pub fn with_config(mut config: Config) -> TestServer {
        config.bind = "127.0.0.1:0".parse().expect("literal address");
        if let Ok(url) = std::env::var("CHAT_TEST_REDIS") {
            static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
            let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            config.redis = Some(url);
            config.redis_prefix = format!("test{}-{n}:", std::process::id());
            config.node_name = Some(format!("test-node-{n}"));
        }
        let tls = config.tls_cert.is_some();
        let (addr, running) = match adapter() {
            "tokio" => {
                let server =
                    chat_tokio::RunningServer::start(config).expect("start a chat-tokio server");
                (server.local_addr(), Running::Tokio(server))
            }
            _ => {
                let server = Server::bind(config).expect("bind an ephemeral port");
                let addr = server.local_addr();
                let handle = server.handle();
                let thread = std::thread::Builder::new()
                    .name(format!("chat-server-{}", addr.port()))
                    .spawn(move || server.run())
                    .expect("spawn server thread");
                (addr, Running::Mio { handle, thread })
            }
        };
        TestServer {
            addr,
            tls,
            running: Some(running),
        }
    }

    /// `ws://127.0.0.1:PORT/ws/{client_id}` (the id is used as given: encode it yourself);
    /// `wss://` when the server serves TLS.
    pub fn ws_url(&self, client_id: &str) -> String {
        let scheme = if self.tls { "wss" } else { "ws" };
        format!("{scheme}://{}/ws/{}", self.addr, client_id)
    }

    /// `http://127.0.0.1:PORT{path}`; `https://` when the server serves TLS.
    pub fn http_url(&self, path: &str) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}{}", self.addr, path)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        let result = match self.running.take() {
            Some(Running::Mio { handle, thread }) => {
                handle.shutdown();
                thread.join()
            }
            Some(Running::Tokio(server)) => Ok(server.shutdown()),
            None => return,
        };
        match result {
            Ok(Ok(())) => {}
            Ok(Err(e)) if std::thread::panicking() => eprintln!("server error: {e}"),
            Ok(Err(e)) => panic!("server returned an error: {e}"),
            Err(_) if std::thread::panicking() => eprintln!("server thread panicked"),
            Err(_) => panic!("server thread panicked"),
        }
    }
}
