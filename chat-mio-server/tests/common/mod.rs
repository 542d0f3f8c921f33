//! Scaffolding for the tests that run the real binary: a temp directory, a server process on
//! a free port with its database in a given directory, and raw HTTP requests.
#![allow(dead_code)] // each test binary uses a different part of it

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use tungstenite::client::IntoClientRequest;
use tungstenite::WebSocket;

pub const BINARY: &str = env!("CARGO_BIN_EXE_chat-mio-server");
pub const STARTUP: Duration = Duration::from_secs(20);
pub const IO_TIMEOUT: Duration = Duration::from_secs(10);

pub type Client = WebSocket<TcpStream>;

/// The next JSON text frame (pings and pongs skipped); panics on a close.
pub fn recv(client: &mut Client) -> serde_json::Value {
    loop {
        match client.read().expect("a frame") {
            tungstenite::Message::Text(text) => {
                return serde_json::from_str(text.as_str()).expect("JSON")
            }
            tungstenite::Message::Close(frame) => panic!("closed: {frame:?}"),
            _ => {}
        }
    }
}

/// Sends a v2 command.
pub fn send(client: &mut Client, command: serde_json::Value) {
    client
        .send(tungstenite::Message::text(command.to_string()))
        .expect("send a command");
}

/// The joining frames of a v2 client: welcome, an optional gap, history.
pub fn joined(
    client: &mut Client,
) -> (
    serde_json::Value,
    Option<serde_json::Value>,
    serde_json::Value,
) {
    let welcome = recv(client);
    assert_eq!(welcome["type"], "welcome", "{welcome}");
    let next = recv(client);
    let (gap, history) = if next["type"] == "gap" {
        (Some(next), recv(client))
    } else {
        (None, next)
    };
    assert_eq!(history["type"], "history", "{history}");
    (welcome, gap, history)
}

/// Writes `request` (a whole HTTP/1.1 request, `Connection: close`) and reads the answer to
/// its end: the status and the body.
/// (id, text) of the `message` objects of a history frame or page.
pub fn ids_and_texts(messages: &serde_json::Value) -> Vec<(u64, String)> {
    messages
        .as_array()
        .expect("an array of messages")
        .iter()
        .map(|m| {
            (
                m["id"].as_u64().expect("an id"),
                m["message"].as_str().expect("a text").to_owned(),
            )
        })
        .collect()
}

pub fn raw_request(addr: SocketAddr, request: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream.set_read_timeout(Some(IO_TIMEOUT)).expect("timeout");
    stream.write_all(request.as_bytes()).expect("write");
    let mut text = String::new();
    let _ = stream.read_to_string(&mut text);
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// A directory of its own under the system's temp dir, removed when dropped.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(name: &str) -> TempDir {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let path = std::env::temp_dir().join(format!(
            "chat-process-test-{name}-{}-{nanos}",
            std::process::id()
        ));
        std::fs::create_dir_all(&path).expect("create a temp dir");
        TempDir(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    pub fn data(&self) -> PathBuf {
        self.0.join("data")
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A running server process. Dropping it kills (SIGKILL) and reaps it if it still runs.
pub struct Server {
    pub child: Child,
    pub addr: SocketAddr,
    output: Arc<Mutex<String>>,
}

impl Server {
    /// Starts the binary on a free port with its database in `data`.
    pub fn start(data: &Path, extra: &[&str]) -> Server {
        let server = Server::try_start(data, extra);
        match server {
            Ok(server) => server,
            Err((status, output)) => panic!("the server did not start ({status:?}):\n{output}"),
        }
    }

    /// Starts the binary; `Err` with its exit status and output if it exits instead of serving.
    pub fn try_start(data: &Path, extra: &[&str]) -> Result<Server, (Option<ExitStatus>, String)> {
        let mut child = Command::new(BINARY)
            .args(["--bind", "127.0.0.1:0", "--rate-limit", "0", "--data-dir"])
            .arg(data)
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the server binary");
        let output = Arc::new(Mutex::new(String::new()));
        collect(child.stdout.take().expect("piped stdout"), &output);
        collect(child.stderr.take().expect("piped stderr"), &output);
        let deadline = Instant::now() + STARTUP;
        loop {
            let text = output.lock().map(|o| o.clone()).unwrap_or_default();
            if let Some(addr) = announced_addr(&text) {
                return Ok(Server {
                    child,
                    addr,
                    output,
                });
            }
            if let Ok(Some(status)) = child.try_wait() {
                // Let the readers take the last lines.
                thread::sleep(Duration::from_millis(100));
                let text = output.lock().map(|o| o.clone()).unwrap_or_default();
                return Err((Some(status), text));
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err((None, text));
            }
            thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn output(&self) -> String {
        self.output.lock().map(|o| o.clone()).unwrap_or_default()
    }

    /// SIGTERM, then waits for a clean exit.
    pub fn stop(mut self) {
        signal(self.pid(), "TERM");
        let status = wait_child(&mut self.child, Duration::from_secs(20))
            .unwrap_or_else(|| panic!("no exit after SIGTERM:\n{}", self.output()));
        assert!(
            status.success(),
            "exit after SIGTERM: {status}\n{}",
            self.output()
        );
    }

    /// SIGKILL: no chance to flush or close anything.
    pub fn kill9(mut self) {
        signal(self.pid(), "KILL");
        let _ = wait_child(&mut self.child, Duration::from_secs(10));
    }

    pub fn join(&self, user: &str, room: &str, resume: Option<(u64, u64)>) -> Client {
        let mut url = format!("ws://{}/ws/{user}?room={room}", self.addr);
        if let Some((since, epoch)) = resume {
            url.push_str(&format!("&since={since}&epoch={epoch}"));
        }
        let mut request = url.into_client_request().expect("a request");
        request.headers_mut().insert(
            "Sec-WebSocket-Protocol",
            "chat.v2".parse().expect("a header value"),
        );
        let stream = TcpStream::connect(self.addr).expect("connect");
        stream.set_read_timeout(Some(IO_TIMEOUT)).expect("timeout");
        stream.set_write_timeout(Some(IO_TIMEOUT)).expect("timeout");
        let (client, _) = tungstenite::client(request, stream).expect("upgrade");
        client
    }

    pub fn http_get(&self, path: &str) -> (u16, String) {
        raw_request(
            self.addr,
            &format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
        )
    }

    pub fn metric(&self, name: &str) -> f64 {
        let (_, body) = self.http_get("/metrics");
        body.lines()
            .find_map(|line| {
                let (series, value) = line.rsplit_once(' ')?;
                (series == name).then(|| value.parse().ok()).flatten()
            })
            .unwrap_or_else(|| panic!("no {name} in /metrics:\n{body}"))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn signal(pid: u32, name: &str) {
    let status = Command::new("kill")
        .args([format!("-{name}"), pid.to_string()])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -{name} {pid}");
}

/// Appends everything `pipe` yields to `output` on a thread of its own (it ends with the
/// pipe), a whole line at a time, so stdout and stderr lines collected into one buffer never
/// run into each other; a line that is not UTF-8 is kept, lossily, not the end.
pub fn collect(pipe: impl Read + Send + 'static, output: &Arc<Mutex<String>>) {
    let output = Arc::clone(output);
    thread::spawn(move || {
        let mut lines = BufReader::new(pipe);
        let mut line = Vec::new();
        while let Ok(1..) = lines.read_until(b'\n', &mut line) {
            let mut text = String::from_utf8_lossy(&line).into_owned();
            if !text.ends_with('\n') {
                text.push('\n');
            }
            output
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push_str(&text);
            line.clear();
        }
    });
}

pub fn announced_addr(output: &str) -> Option<SocketAddr> {
    output.lines().find_map(|line| {
        let rest = line
            .strip_prefix("Open http://")
            .or_else(|| line.strip_prefix("Open https://"))?;
        rest.split_whitespace()
            .next()?
            .trim_end_matches('/')
            .parse()
            .ok()
    })
}

pub fn wait_child(child: &mut Child, within: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        thread::sleep(Duration::from_millis(10));
    }
    None
}
