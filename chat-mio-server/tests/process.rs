//! Process-level tests of the `chat-mio-server` binary: signals and graceful shutdown, running
//! out of file descriptors, the command line and its documentation, start-up failures.
//!
//! Every server is started on port 0 and found through the line it prints; every wait is
//! bounded; every child is killed and reaped when its guard drops, even when a test panics.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use common::{collect, wait_child};
use serde_json::Value;
use tungstenite::handshake::HandshakeError;
use tungstenite::{Message, WebSocket};

const BINARY: &str = env!("CARGO_BIN_EXE_chat-mio-server");
/// How long a server may take to print its address.
const STARTUP: Duration = Duration::from_secs(10);
/// How long any single socket read or write may block.
const IO_TIMEOUT: Duration = Duration::from_secs(5);
/// Clock ticks per second in /proc/PID/stat (USER_HZ, 100 on every Linux architecture).
const CLOCK_TICKS_PER_SEC: f64 = 100.0;

// ---------------------------------------------------------------------------------------------
// The child process
// ---------------------------------------------------------------------------------------------

/// A running server. Dropping it kills (SIGKILL) and reaps the child if it still runs.
struct Server {
    child: Child,
    addr: SocketAddr,
    /// Everything the child wrote to stdout and stderr so far (the log goes to stdout).
    output: Arc<Mutex<String>>,
}

impl Server {
    /// Starts the binary with these arguments (plus `--bind 127.0.0.1:0` and `--store memory`
    /// unless given: these tests are about the process, not the disk).
    fn start(args: &[&str]) -> Server {
        let mut command = Command::new(BINARY);
        if !args.contains(&"--bind") {
            command.args(["--bind", "127.0.0.1:0"]);
        }
        if !args.contains(&"--store") {
            command.args(["--store", "memory"]);
        }
        command.args(args);
        Server::spawn(command)
    }

    /// Starts the binary under `ulimit -n nofile` (soft and hard limit) through `sh`, which
    /// `exec`s it, so the pid is the server's.
    fn start_with_nofile(nofile: u32, args: &[&str]) -> Server {
        let mut command = Command::new("sh");
        command
            .arg("-c")
            .arg(format!(r#"ulimit -n {nofile} && exec "$0" "$@""#))
            .arg(BINARY)
            .args(["--bind", "127.0.0.1:0", "--store", "memory"])
            .args(args);
        Server::spawn(command)
    }

    fn spawn(mut command: Command) -> Server {
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the server binary");
        let output = Arc::new(Mutex::new(String::new()));
        collect(child.stdout.take().expect("piped stdout"), &output);
        collect(child.stderr.take().expect("piped stderr"), &output);
        let mut server = Server {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            output,
        };
        let deadline = Instant::now() + STARTUP;
        loop {
            if let Some(addr) = announced_addr(&server.output()) {
                server.addr = addr;
                return server;
            }
            if let Ok(Some(status)) = server.child.try_wait() {
                // Let the reader threads take the last bytes.
                thread::sleep(Duration::from_millis(100));
                panic!(
                    "server exited ({status}) before printing its address; output:\n{}",
                    server.output()
                );
            }
            assert!(
                Instant::now() < deadline,
                "server printed no address within {STARTUP:?}; output:\n{}",
                server.output()
            );
            thread::sleep(Duration::from_millis(10));
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn output(&self) -> String {
        self.output
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Sends a signal (`"TERM"`, `"INT"`) with kill(1): std cannot.
    fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([&format!("-{name}"), &self.pid().to_string()])
            .status()
            .expect("run kill(1)");
        assert!(status.success(), "kill -{name} {} failed", self.pid());
    }

    /// The exit status, if the child exits within `within`.
    fn wait_exit(&mut self, within: Duration) -> Option<ExitStatus> {
        wait_child(&mut self.child, within)
    }

    fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    fn ws_url(&self, id: &str) -> String {
        format!("ws://{}/ws/{id}", self.addr)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// The address in the line `Open http://127.0.0.1:PORT in your browser to chat.`
fn announced_addr(output: &str) -> Option<SocketAddr> {
    output.lines().find_map(|line| {
        line.trim()
            .strip_prefix("Open http://")?
            .strip_suffix(" in your browser to chat.")?
            .parse()
            .ok()
    })
}

/// Runs the binary to completion (killed after `within`): status, stdout, stderr.
fn run(args: &[&str], within: Duration) -> (ExitStatus, String, String) {
    let mut child = Command::new(BINARY)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the server binary");
    let stdout = Arc::new(Mutex::new(String::new()));
    let stderr = Arc::new(Mutex::new(String::new()));
    collect(child.stdout.take().expect("piped stdout"), &stdout);
    collect(child.stderr.take().expect("piped stderr"), &stderr);
    let status = wait_child(&mut child, within);
    if status.is_none() {
        let _ = child.kill();
    }
    let _ = child.wait();
    // The pipes are closed now; give the readers a moment to take the last bytes.
    thread::sleep(Duration::from_millis(100));
    let stdout = stdout.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let stderr = stderr.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let Some(status) = status else {
        panic!(
            "`chat-mio-server {}` still ran after {within:?}\nstdout:\n{stdout}\nstderr:\n{stderr}",
            args.join(" ")
        );
    };
    (status, stdout, stderr)
}

// ---------------------------------------------------------------------------------------------
// Clients
// ---------------------------------------------------------------------------------------------

type Client = WebSocket<TcpStream>;

fn tcp(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect_timeout(&addr, IO_TIMEOUT).expect("TCP connect to the server");
    stream.set_read_timeout(Some(IO_TIMEOUT)).expect("timeout");
    stream.set_write_timeout(Some(IO_TIMEOUT)).expect("timeout");
    stream
}

/// Opens `/ws/{id}`; the handshake's error (an `Error::Http` refusal, say) is returned.
fn try_join(server: &Server, id: &str) -> Result<Client, tungstenite::Error> {
    match tungstenite::client(server.ws_url(id), tcp(server.addr)) {
        Ok((client, _)) => Ok(client),
        Err(HandshakeError::Failure(e)) => Err(e),
        Err(HandshakeError::Interrupted(_)) => panic!("no handshake answer within {IO_TIMEOUT:?}"),
    }
}

fn join(server: &Server, id: &str) -> Client {
    try_join(server, id).unwrap_or_else(|e| {
        panic!(
            "joining as {id} failed: {e:?}; server output:\n{}",
            server.output()
        )
    })
}

/// The next data or close message (pings skipped); panics after [`IO_TIMEOUT`].
fn recv(client: &mut Client) -> Message {
    loop {
        match client.read() {
            Ok(Message::Ping(_) | Message::Pong(_)) => {}
            Ok(message) => return message,
            Err(e) => panic!("reading a frame failed: {e}"),
        }
    }
}

/// The next frame must announce that `id` joined.
fn expect_join(client: &mut Client, id: &str) {
    let message = recv(client);
    let Message::Text(text) = &message else {
        panic!("expected {id}'s join, got {message:?}");
    };
    let value: Value = serde_json::from_str(text.as_str()).expect("frames are JSON");
    assert_eq!(value["type"], "connection", "{value}");
    assert_eq!(value["client_id"], id, "{value}");
}

/// Reads until the server's close frame (skipping chat frames) and returns its code and reason;
/// then lets tungstenite answer it and reads on until the connection ends.
fn expect_close(client: &mut Client) -> (u16, String) {
    let frame = loop {
        match recv(client) {
            Message::Text(_) => {}
            Message::Close(frame) => break frame,
            other => panic!("expected a close frame, got {other:?}"),
        }
    };
    let Some(frame) = frame else {
        panic!("the close frame carries no code");
    };
    // The reply goes out on the next read, which then sees the server's FIN.
    for _ in 0..10 {
        if client.read().is_err() {
            break;
        }
    }
    (u16::from(frame.code), frame.reason.as_str().to_owned())
}

/// A WebSocket opened by hand that never reads again: it never answers the close frame, so
/// it holds a drain open.
fn stubborn_client(server: &Server, id: &str) -> TcpStream {
    let mut stream = tcp(server.addr);
    write!(
        stream,
        "GET /ws/{id} HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        server.addr
    )
    .expect("send the upgrade request");
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            other => panic!(
                "upgrade answer cut short ({other:?}): {:?}",
                String::from_utf8_lossy(&head)
            ),
        }
    }
    let head = String::from_utf8_lossy(&head);
    assert!(head.starts_with("HTTP/1.1 101"), "not upgraded: {head}");
    stream
}

/// One `GET path` on a fresh connection with `Connection: close`: status and body.
fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut stream = tcp(addr);
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .expect("send the request");
    let mut response = Vec::new();
    stream
        .read_to_end(&mut response)
        .unwrap_or_else(|e| panic!("reading the answer to GET {path}: {e}"));
    parse_response(&response).unwrap_or_else(|| {
        panic!(
            "GET {path}: not an HTTP response: {:?}",
            String::from_utf8_lossy(&response)
        )
    })
}

fn parse_response(bytes: &[u8]) -> Option<(u16, String)> {
    let text = String::from_utf8_lossy(bytes);
    let (head, body) = text.split_once("\r\n\r\n")?;
    let status = head.strip_prefix("HTTP/1.1 ")?.get(..3)?.parse().ok()?;
    Some((status, body.to_owned()))
}

// ---------------------------------------------------------------------------------------------
// 1. Graceful shutdown on SIGTERM and SIGINT
// ---------------------------------------------------------------------------------------------

fn graceful_shutdown(signal: &str) {
    let mut server = Server::start(&["--shutdown-timeout", "5", "--log-level", "info"]);
    let mut alice = join(&server, "alice");
    expect_join(&mut alice, "alice");
    let mut bob = join(&server, "bob");
    expect_join(&mut alice, "bob");
    expect_join(&mut bob, "bob");

    let signalled = Instant::now();
    server.signal(signal);
    for (name, client) in [("alice", &mut alice), ("bob", &mut bob)] {
        let (code, reason) = expect_close(client);
        assert_eq!(
            (code, reason.as_str()),
            (1001, "server shutting down"),
            "{name}'s close frame after SIG{signal}"
        );
    }
    drop((alice, bob));

    let limit = Duration::from_secs(6);
    let status = server
        .wait_exit(limit.saturating_sub(signalled.elapsed()))
        .unwrap_or_else(|| {
            panic!(
                "still running {limit:?} after SIG{signal} (--shutdown-timeout 5); output:\n{}",
                server.output()
            )
        });
    let took = signalled.elapsed();
    assert!(
        status.success(),
        "SIG{signal} then a clean drain must exit 0, got {status}; output:\n{}",
        server.output()
    );
    eprintln!("SIG{signal}: exited {status} {took:?} after the signal");

    // The listener is gone with the process: connecting fails (soon, not necessarily at once).
    let deadline = Instant::now() + Duration::from_secs(3);
    while TcpStream::connect_timeout(&server.addr, Duration::from_millis(500)).is_ok() {
        assert!(
            Instant::now() < deadline,
            "{} still accepts connections after the server exited",
            server.addr
        );
        thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn sigterm_closes_clients_with_1001_and_exits_0() {
    graceful_shutdown("TERM");
}

#[test]
fn sigint_closes_clients_with_1001_and_exits_0() {
    graceful_shutdown("INT");
}

// ---------------------------------------------------------------------------------------------
// 2. The drain: readiness, refusals, and a second signal
// ---------------------------------------------------------------------------------------------

#[test]
fn drain_reports_not_ready_and_a_second_signal_stops_at_once() {
    let mut server = Server::start(&["--shutdown-timeout", "30", "--log-level", "info"]);
    // Never answers the close frame, so the drain would wait (up to the close linger or
    // --shutdown-timeout).
    let _stubborn = stubborn_client(&server, "stubborn");
    assert_eq!(http_get(server.addr, "/readyz"), (200, "ready\n".into()));

    server.signal("TERM");
    // The first signal takes effect when /readyz turns 503; that also makes sure the second
    // signal is not merged with the first.
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        match http_get(server.addr, "/readyz") {
            (503, body) => {
                assert_eq!(body, "draining\n", "/readyz body during the drain");
                break;
            }
            (200, _) => assert!(
                Instant::now() < deadline,
                "/readyz still 200 3 s after SIGTERM; output:\n{}",
                server.output()
            ),
            other => panic!("/readyz during the drain: {other:?}"),
        }
        thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        http_get(server.addr, "/healthz"),
        (200, "ok\n".into()),
        "/healthz during the drain"
    );
    match try_join(&server, "latecomer") {
        Err(tungstenite::Error::Http(response)) => assert_eq!(
            response.status().as_u16(),
            503,
            "a WebSocket upgrade during the drain"
        ),
        Ok(_) => panic!("a WebSocket upgrade during the drain was accepted"),
        Err(e) => panic!("a WebSocket upgrade during the drain: {e:?}"),
    }
    assert!(
        server.is_running(),
        "the stubborn client should hold the drain open; output:\n{}",
        server.output()
    );

    let second = Instant::now();
    server.signal("TERM");
    let status = server.wait_exit(Duration::from_secs(3)).unwrap_or_else(|| {
        panic!(
            "still running 3 s after a second SIGTERM; output:\n{}",
            server.output()
        )
    });
    eprintln!(
        "second SIGTERM: exited {status} {:?} after it",
        second.elapsed()
    );
    assert!(
        status.code().is_some_and(|code| code != 0),
        "a second signal must end the process itself with a non-zero code, got {status}; \
         output:\n{}",
        server.output()
    );
}

// ---------------------------------------------------------------------------------------------
// 3. Running out of file descriptors
// ---------------------------------------------------------------------------------------------

/// Soft and hard `Max open files` of a process.
fn nofile_limits(pid: u32) -> (String, String) {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).expect("/proc/PID/limits");
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .expect("a Max open files line");
    let mut fields = line["Max open files".len()..].split_whitespace();
    (
        fields.next().unwrap_or_default().to_owned(),
        fields.next().unwrap_or_default().to_owned(),
    )
}

/// User plus system CPU time of a process, in seconds.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("/proc/PID/stat");
    // The command name (field 2) is in parentheses and may hold spaces: count after it.
    let after = &stat[stat.rfind(')').expect("comm in parentheses") + 1..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    // fields[0] is field 3 (state), so utime (14) and stime (15) are at 11 and 12.
    let ticks: u64 =
        fields[11].parse::<u64>().expect("utime") + fields[12].parse::<u64>().expect("stime");
    ticks as f64 / CLOCK_TICKS_PER_SEC
}

#[test]
fn out_of_file_descriptors_does_not_spin_and_recovers() {
    let mut server =
        Server::start_with_nofile(64, &["--max-connections", "10000", "--log-level", "warn"]);
    let pid = server.pid();
    assert_eq!(
        nofile_limits(pid),
        ("64".into(), "64".into()),
        "the server should run with 64 open files at most"
    );

    // Far more connections than descriptors: some are served, some refused with 503, the rest
    // wait in the listen backlog while accept fails with EMFILE.
    let flood: Vec<TcpStream> = (0..100)
        .map(|_| TcpStream::connect_timeout(&server.addr, IO_TIMEOUT).expect("flood connect"))
        .collect();
    thread::sleep(Duration::from_millis(300));
    let before = cpu_seconds(pid);
    let lines_before = server.output().lines().count();
    thread::sleep(Duration::from_secs(2));
    let spent = cpu_seconds(pid) - before;
    let logged = server.output().lines().count() - lines_before;
    assert!(
        spent < 0.5,
        "the server used {spent:.2} s of CPU in 2 s with the flood held open: it spins; \
         output:\n{}",
        server.output()
    );
    // A failing accept retried every 100 ms logs about 20 lines in 2 s; retrying without
    // pause floods the log even when the CPU time stays low.
    assert!(
        logged < 200,
        "the server logged {logged} lines in 2 s with the flood held open: accept is retried \
         without backing off"
    );
    assert!(
        server.is_running(),
        "the server died under the flood; output:\n{}",
        server.output()
    );

    // Refused connections got a 503 without asking.
    let mut refused = 0;
    for mut stream in &flood {
        stream
            .set_read_timeout(Some(Duration::from_millis(20)))
            .expect("timeout");
        let mut buf = [0u8; 64];
        if let Ok(n @ 1..) = stream.read(&mut buf) {
            if buf[..n].starts_with(b"HTTP/1.1 503") {
                refused += 1;
            }
        }
    }
    let output = server.output();
    eprintln!(
        "flood: {refused} of {} refused with 503; CPU {spent:.3} s and {logged} log lines in 2 s",
        flood.len()
    );
    assert!(
        refused > 0 || output.contains("open-files limit"),
        "neither a 503 nor the open-files warning; output:\n{output}"
    );
    drop(flood);

    // Once the flood is gone the server serves again.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        match http_get(server.addr, "/healthz") {
            (200, body) => {
                assert_eq!(body, "ok\n");
                break;
            }
            other => assert!(
                Instant::now() < deadline,
                "/healthz still {other:?} 15 s after the flood ended; output:\n{}",
                server.output()
            ),
        }
        thread::sleep(Duration::from_millis(100));
    }
    let mut client = loop {
        match try_join(&server, "survivor") {
            Ok(client) => break client,
            Err(e) => assert!(
                Instant::now() < deadline,
                "cannot join 15 s after the flood ended: {e:?}; output:\n{}",
                server.output()
            ),
        }
        thread::sleep(Duration::from_millis(100));
    };
    expect_join(&mut client, "survivor");
    assert!(server.is_running(), "output:\n{}", server.output());
}

// ---------------------------------------------------------------------------------------------
// 4. The command line and its documentation
// ---------------------------------------------------------------------------------------------

/// The long flag each option line of a `--help`-style listing starts with.
fn option_flags(listing: &str) -> Vec<String> {
    let mut flags: Vec<String> = listing
        .lines()
        .map(str::trim_start)
        .filter(|line| line.starts_with('-'))
        .filter_map(|line| {
            let at = line.find("--")?;
            let flag: String = line[at..]
                .chars()
                .take_while(|c| *c == '-' || c.is_ascii_alphanumeric())
                .collect();
            (flag.len() > 2).then_some(flag)
        })
        .collect();
    flags.sort();
    flags.dedup();
    flags
}

/// The ```text block under README's `## Options` heading.
fn readme_options_block() -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md");
    let readme = std::fs::read_to_string(path).expect("read README.md");
    let section = readme
        .split_once("\n## Options")
        .unwrap_or_else(|| panic!("README.md has no `## Options` section"))
        .1;
    let block = section
        .split_once("```text\n")
        .expect("a ```text block under ## Options")
        .1;
    block
        .split_once("```")
        .expect("the ```text block ends")
        .0
        .to_owned()
}

#[test]
fn help_lists_every_option_the_readme_documents_and_no_other() {
    let (status, help, stderr) = run(&["--help"], Duration::from_secs(10));
    assert!(status.success(), "--help: {status}; stderr:\n{stderr}");
    let in_help = option_flags(&help);
    for flag in ["--bind", "--shutdown-timeout", "--help", "--version"] {
        assert!(
            in_help.iter().any(|f| f == flag),
            "--help lacks {flag}:\n{help}"
        );
    }
    let in_readme = option_flags(&readme_options_block());
    let undocumented: Vec<&String> = in_help.iter().filter(|f| !in_readme.contains(f)).collect();
    let stale: Vec<&String> = in_readme.iter().filter(|f| !in_help.contains(f)).collect();
    assert!(
        undocumented.is_empty() && stale.is_empty(),
        "README.md's ## Options block is out of date.\n\
         In --help but not in README: {undocumented:?}\n\
         In README but not in --help: {stale:?}\n--help says:\n{help}"
    );
}

#[test]
fn version_prints_the_package_version_and_the_commit() {
    let (status, stdout, stderr) = run(&["--version"], Duration::from_secs(10));
    assert!(status.success(), "--version: {status}; stderr:\n{stderr}");
    // `chat-mio-server 0.1.0 (commit 1a2b3c4)`, or `(commit unknown)` built outside git.
    let commit = stdout
        .trim()
        .strip_prefix(concat!(
            "chat-mio-server ",
            env!("CARGO_PKG_VERSION"),
            " (commit "
        ))
        .and_then(|rest| rest.strip_suffix(')'))
        .unwrap_or_else(|| panic!("--version: {stdout:?}"));
    assert!(
        commit == "unknown" || (commit.len() >= 7 && commit.chars().all(|c| c.is_ascii_hexdigit())),
        "--version names no commit: {stdout:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// 5. Bad input and start-up failures
// ---------------------------------------------------------------------------------------------

#[test]
fn bad_command_line_input_exits_non_zero_with_a_clap_error() {
    let cases: &[(&[&str], &str)] = &[
        (&["--bind", "nonsense"], "--bind"),
        (&["--rate-limit", "abc"], "--rate-limit"),
        (&["--max-connections", "-5"], "-5"),
        (&["--shutdown-timeout", "soon"], "--shutdown-timeout"),
        (&["--heartbeat", "inf"], "--heartbeat"),
        (&["--log-level", "loud"], "--log-level"),
        (&["--no-such-option"], "--no-such-option"),
    ];
    for (args, mentions) in cases {
        let (status, stdout, stderr) = run(args, Duration::from_secs(10));
        assert!(
            !status.success() && status.code().is_some(),
            "{args:?} must exit non-zero, got {status}; stdout:\n{stdout}"
        );
        assert!(
            stderr.contains("error:") && stderr.contains(mentions),
            "{args:?}: stderr should be clap's error naming {mentions}:\n{stderr}"
        );
        assert!(
            announced_addr(&stdout).is_none(),
            "{args:?} started a server:\n{stdout}"
        );
    }
}

#[test]
fn a_port_in_use_exits_non_zero_naming_the_address() {
    let taken = TcpListener::bind("127.0.0.1:0").expect("bind a port");
    let addr = taken.local_addr().expect("local addr").to_string();
    let (status, stdout, stderr) = run(
        &["--bind", &addr, "--log-level", "info"],
        Duration::from_secs(10),
    );
    assert!(
        !status.success() && status.code().is_some(),
        "binding {addr}, which is in use, must fail, got {status}\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    // The log (stdout) or stderr must say which address failed.
    assert!(
        stdout.contains(&addr) || stderr.contains(&addr),
        "the error should name {addr}\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(announced_addr(&stdout).is_none(), "{stdout}");
    drop(taken);
}

#[test]
fn announced_addr_reads_the_printed_line() {
    assert_eq!(
        announced_addr("log line\nOpen http://127.0.0.1:4242 in your browser to chat.\n"),
        Some(SocketAddr::from(([127, 0, 0, 1], 4242)))
    );
    assert_eq!(announced_addr("Open http://127.0.0.1:4242 in your"), None);
    assert_eq!(
        parse_response(b"HTTP/1.1 503 x\r\n\r\nbody"),
        Some((503, "body".into()))
    );
}
