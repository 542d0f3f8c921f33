//! A real `redis-server` for the tests: started on a free loopback port with no persistence, in
//! a temp directory, stopped (by PID) when dropped. Without `redis-server` on the PATH a test is
//! skipped loudly, or fails when `CHAT_REQUIRE_REDIS=1` (CI sets it).
#![allow(dead_code)]

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use chat_cluster::{Event, Options, RunningCluster};

pub struct Redis {
    pub port: u16,
    child: Child,
    dir: std::path::PathBuf,
}

/// A free loopback port (bound, read, released: the server binds it right after).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

impl Redis {
    /// A fresh Redis, or `None` (after saying so) when there is none to start.
    pub fn start(name: &str) -> Option<Redis> {
        let found = Command::new("redis-server")
            .arg("--version")
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !found {
            assert!(
                std::env::var_os("CHAT_REQUIRE_REDIS").is_none(),
                "redis-server is not installed and CHAT_REQUIRE_REDIS is set"
            );
            eprintln!(
                "SKIPPED {name}: redis-server is not installed (apt-get install redis-server)"
            );
            return None;
        }
        let dir = std::env::temp_dir().join(format!(
            "chat-redis-{name}-{}-{}",
            std::process::id(),
            Instant::now().elapsed().as_nanos()
        ));
        std::fs::create_dir_all(&dir).expect("a temp dir");
        let port = free_port();
        let redis = Redis {
            port,
            child: spawn(port, &dir),
            dir,
        };
        redis.wait_ready();
        Some(redis)
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(client) = redis::Client::open(self.url()) {
                if let Ok(mut conn) = client.get_connection_with_timeout(Duration::from_millis(200))
                {
                    if redis::cmd("PING").query::<String>(&mut conn).is_ok() {
                        return;
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("redis-server on port {} did not answer", self.port);
    }

    /// Stops it (SIGKILL: what it held is gone, as after a crash without persistence).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts it again on the same port, empty.
    pub fn restart(&mut self) {
        self.child = spawn(self.port, &self.dir);
        self.wait_ready();
    }

    /// A plain connection, for setting up or looking.
    pub fn conn(&self) -> redis::Connection {
        redis::Client::open(self.url())
            .and_then(|c| c.get_connection())
            .expect("connect to the test Redis")
    }
}

fn spawn(port: u16, dir: &std::path::Path) -> Child {
    Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args([
            "--save",
            "",
            "--appendonly",
            "no",
            "--protected-mode",
            "yes",
        ])
        .arg("--dir")
        .arg(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start redis-server")
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A node of a test cluster and the events it heard.
pub struct Node {
    pub cluster: RunningCluster,
    events: Receiver<Event>,
    /// Events heard but not yet asked for, in order.
    held: std::cell::RefCell<std::collections::VecDeque<Event>>,
    pub epoch: u64,
}

pub fn node(redis: &Redis, name: &str, tune: impl FnOnce(&mut Options)) -> Node {
    let mut options = Options::new(redis.url(), name, 1_000);
    tune(&mut options);
    let connected = chat_cluster::connect(options).expect("join the cluster");
    let (tx, rx) = mpsc::channel();
    let cluster = connected
        .cluster
        .start(move |event| {
            let _ = tx.send(event);
        })
        .expect("start the cluster threads");
    // `start` returns once the node hears the rooms: a publish right away is heard.
    Node {
        cluster,
        events: rx,
        held: Default::default(),
        epoch: connected.epoch,
    }
}

pub const WAIT: Duration = Duration::from_secs(10);

impl Node {
    /// The first event (heard before or within [`WAIT`]) that `pick` keeps; the others stay
    /// for later calls, in order.
    pub fn next<T>(&self, what: &str, mut pick: impl FnMut(&Event) -> Option<T>) -> T {
        {
            let mut held = self.held.borrow_mut();
            if let Some(i) = held.iter().position(|e| pick(e).is_some()) {
                let event = held.remove(i).expect("a held event");
                return pick(&event).expect("picked before");
            }
        }
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.events.recv_timeout(left) {
                Ok(event) => match pick(&event) {
                    Some(found) => return found,
                    None => self.held.borrow_mut().push_back(event),
                },
                Err(_) => panic!("no {what} within {WAIT:?}"),
            }
        }
    }

    /// Every event held, and those heard until `quiet` passes without one.
    pub fn drain(&self, quiet: Duration) -> Vec<Event> {
        let mut events: Vec<Event> = self.held.borrow_mut().drain(..).collect();
        while let Ok(event) = self.events.recv_timeout(quiet) {
            events.push(event);
        }
        events
    }
}
