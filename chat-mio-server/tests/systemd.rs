//! The systemd unit (`deploy/systemd/chat-mio-server.service`) and the readiness protocol it
//! relies on.
//!
//! `systemd-analyze verify` checks a copy of the unit whose `ExecStart` names the binary cargo
//! built (verify wants the program to exist); any warning fails the test, since verify only
//! warns about unknown or misspelled directives. Without `systemd-analyze` (Debian package
//! `systemd`) the test prints a loud SKIPPED line and passes, unless `CHAT_REQUIRE_SYSTEMD=1`
//! (as CI sets). The notify test plays systemd's part: a datagram socket in `NOTIFY_SOCKET`
//! must receive READY=1 once the server listens and STOPPING=1 when SIGTERM begins the drain.

use std::io::Read;
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BINARY: &str = env!("CARGO_BIN_EXE_chat-mio-server");
const UNIT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../deploy/systemd/chat-mio-server.service"
);
const INSTALLED: &str = "/usr/local/bin/chat-mio-server";

fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("chat-systemd-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("a temp dir");
    dir
}

#[test]
fn the_unit_has_the_sandbox_and_the_lifecycle_it_promises() {
    let unit = std::fs::read_to_string(UNIT).expect("read the unit");
    for line in [
        "Type=notify",
        "DynamicUser=yes",
        "StateDirectory=chat",
        "ProtectSystem=strict",
        "NoNewPrivileges=yes",
        "LimitNOFILE=65536",
        "Restart=on-failure",
        "KillSignal=SIGTERM",
    ] {
        assert!(
            unit.lines().any(|l| l.trim() == line),
            "the unit lacks {line}"
        );
    }
    let exec = unit
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .expect("an ExecStart");
    assert!(
        exec.starts_with(INSTALLED) && exec.contains("--data-dir ${STATE_DIRECTORY}"),
        "ExecStart runs {INSTALLED} on the state directory: {exec}"
    );
}

#[test]
fn systemd_analyze_verify_accepts_the_unit() {
    let analyze = Path::new("/usr/bin/systemd-analyze");
    if !analyze.exists() {
        let required = std::env::var("CHAT_REQUIRE_SYSTEMD").is_ok_and(|v| v == "1");
        assert!(
            !required,
            "CHAT_REQUIRE_SYSTEMD=1 but {} is missing",
            analyze.display()
        );
        eprintln!(
            "SKIPPED: {} not found (Debian package systemd): the unit was not verified",
            analyze.display()
        );
        return;
    }
    let dir = temp_dir("verify");
    let unit = std::fs::read_to_string(UNIT).expect("read the unit");
    assert!(unit.contains(INSTALLED));
    let copy = dir.join("chat-mio-server.service");
    std::fs::write(&copy, unit.replace(INSTALLED, BINARY)).expect("write the copy");
    let out = Command::new(analyze)
        .arg("verify")
        .arg(&copy)
        .env("SYSTEMD_LOG_LEVEL", "warning")
        .output()
        .expect("run systemd-analyze");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        out.status.success(),
        "systemd-analyze verify failed ({}):\n{stderr}",
        out.status
    );
    assert!(
        stderr.trim().is_empty(),
        "systemd-analyze verify warns:\n{stderr}"
    );
}

#[test]
fn the_server_notifies_ready_once_listening_and_stopping_on_sigterm() {
    let dir = temp_dir("notify");
    let socket_path = dir.join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).expect("bind the notify socket");
    socket
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut child = Command::new(BINARY)
        .args(["--bind", "127.0.0.1:0", "--store", "memory"])
        .env("NOTIFY_SOCKET", &socket_path)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the server");
    let mut buf = [0u8; 512];
    let n = socket.recv(&mut buf).expect("a notification within 10 s");
    let ready = String::from_utf8_lossy(&buf[..n]).into_owned();
    assert!(ready.lines().any(|l| l == "READY=1"), "{ready:?}");
    // Ready means listening: the address is printed and connections are served.
    let mut stdout = child.stdout.take().expect("stdout");
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    while stdout.read(&mut byte).is_ok_and(|n| n == 1) && byte[0] != b'\n' {
        line.push(byte[0]);
    }
    let line = String::from_utf8_lossy(&line).into_owned();
    let addr = line
        .strip_prefix("Open http://")
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no address in {line:?}"));
    std::net::TcpStream::connect(addr).expect("ready: connections are accepted");

    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill(1)");
    assert!(status.success());
    let n = socket.recv(&mut buf).expect("a notification after SIGTERM");
    let stopping = String::from_utf8_lossy(&buf[..n]).into_owned();
    assert!(stopping.lines().any(|l| l == "STOPPING=1"), "{stopping:?}");
    let deadline = Instant::now() + Duration::from_secs(10);
    let exit = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("no exit 10 s after SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let _ = std::fs::remove_dir_all(&dir);
    assert!(exit.success(), "{exit}");
}
