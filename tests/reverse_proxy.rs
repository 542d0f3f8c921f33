//! The server behind a reverse proxy, with the configurations in `deploy/`: nginx (Debian's
//! package) started from `deploy/nginx/chat.conf` on free loopback ports with a throwaway
//! certificate, in front of a plain-HTTP server started with `--trusted-proxy`; two people
//! chat through it in headless Chromium over `https://` and `wss://`. The Origin check passes
//! because the proxy's `X-Forwarded-Proto: https` gives it its scheme (no `--allowed-origin`),
//! another site's page is still refused, the client address comes from `X-Forwarded-For`
//! (the proxy's own entry, not one a client forged), and plain http is redirected.
//! `deploy/caddy/Caddyfile` is validated when `caddy` is installed (it is not in Debian).
//!
//! nginx is started as the current user (`master_process off`, so it is one process that
//! switches to no other user), with its pid, logs and temp files in a directory of its own,
//! and stopped by its PID. Missing nginx: skipped loudly, or a failure with
//! `CHAT_REQUIRE_NGINX=1` (as CI sets). Missing Chromium: as every browser test.

mod browser_support;
mod common;
#[path = "common/tls.rs"]
mod tls;

use std::io::Write;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use browser_support::{join, message_shown, notice_shown, BrowserTest};
use chat_mio_server::Config;
use tls::{try_wss, TestCert};

/// The address nginx connects to the server from (`proxy_bind`), the one trusted proxy: the
/// browser reaches nginx from 127.0.0.1, so the two are told apart in the server's log.
const PROXY_SOURCE: &str = "127.0.0.3";

fn repo_file(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn find_program(name: &str, usual: &[&str]) -> Option<PathBuf> {
    let on_path: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|paths| {
            std::env::split_paths(&paths)
                .map(|p| p.join(name))
                .collect()
        })
        .unwrap_or_default();
    usual
        .iter()
        .map(PathBuf::from)
        .chain(on_path)
        .find(|p| p.is_file())
}

/// nginx, or `None` after a loud skip notice (a failure with `CHAT_REQUIRE_NGINX=1`).
fn nginx_or_skip() -> Option<PathBuf> {
    if let Some(nginx) = find_program("nginx", &["/usr/sbin/nginx"]) {
        return Some(nginx);
    }
    if std::env::var("CHAT_REQUIRE_NGINX").as_deref() == Ok("1") {
        panic!("nginx not found (CHAT_REQUIRE_NGINX=1 is set): apt-get install nginx");
    }
    let rule = "!".repeat(78);
    let _ = writeln!(
        std::io::stderr(),
        "\n{rule}\nSKIPPED: nginx not found (Debian package nginx); set CHAT_REQUIRE_NGINX=1 to \
         make this fatal\n{rule}\n"
    );
    None
}

/// A free loopback port (the OS picks one; it is free again when this returns).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// `text` with `from` replaced by `to`, which must be there: the test follows the file.
fn replaced(text: &str, from: &str, to: &str) -> String {
    assert!(
        text.contains(from),
        "deploy/nginx/chat.conf no longer has {from:?}: update tests/reverse_proxy.rs"
    );
    text.replace(from, to)
}

/// A running nginx; dropping it stops it by its PID and removes its directory.
struct Nginx {
    child: Child,
    dir: PathBuf,
    https: SocketAddr,
    http: SocketAddr,
}

impl Nginx {
    /// Starts `nginx` with deploy/nginx/chat.conf, made to listen on free loopback ports, use
    /// `cert`, and pass to `upstream`.
    fn start(nginx: &Path, cert: &TestCert, upstream: SocketAddr) -> Nginx {
        let dir = cert.dir().join("nginx");
        std::fs::create_dir_all(&dir).expect("nginx's directory");
        let (https, http) = (free_port(), free_port());
        let site = std::fs::read_to_string(repo_file("deploy/nginx/chat.conf"))
            .expect("read deploy/nginx/chat.conf");
        let site = replaced(&site, "listen 80;", &format!("listen 127.0.0.1:{http};"));
        let site = replaced(&site, "    listen [::]:80;\n", "");
        let site = replaced(
            &site,
            "listen 443 ssl;",
            &format!("listen 127.0.0.1:{https} ssl;"),
        );
        let site = replaced(&site, "    listen [::]:443 ssl;\n", "");
        let site = replaced(
            &site,
            "/etc/letsencrypt/live/chat.example.org/fullchain.pem",
            &cert.cert.display().to_string(),
        );
        let site = replaced(
            &site,
            "/etc/letsencrypt/live/chat.example.org/privkey.pem",
            &cert.key.display().to_string(),
        );
        let site = replaced(
            &site,
            "server 127.0.0.1:8000;",
            &format!("server {upstream};"),
        );
        let site = replaced(
            &site,
            "proxy_pass http://chat_server;",
            &format!("proxy_pass http://chat_server;\n        proxy_bind {PROXY_SOURCE};"),
        );
        let d = dir.display();
        let conf = format!(
            "pid {d}/nginx.pid;\nerror_log {d}/error.log info;\nevents {{ worker_connections 256; }}\n\
             http {{\n    access_log {d}/access.log;\n    client_body_temp_path {d}/body;\n    \
             proxy_temp_path {d}/proxy;\n    fastcgi_temp_path {d}/fastcgi;\n    \
             uwsgi_temp_path {d}/uwsgi;\n    scgi_temp_path {d}/scgi;\n{site}\n}}\n"
        );
        let conf_path = dir.join("nginx.conf");
        std::fs::write(&conf_path, conf).expect("write nginx.conf");
        let child = Command::new(nginx)
            .arg("-p")
            .arg(&dir)
            .arg("-c")
            .arg(&conf_path)
            .arg("-e")
            .arg(dir.join("error.log"))
            .args(["-g", "daemon off; master_process off;"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start nginx");
        let mut nginx = Nginx {
            child,
            dir,
            https: SocketAddr::from(([127, 0, 0, 1], https)),
            http: SocketAddr::from(([127, 0, 0, 1], http)),
        };
        nginx.await_listening();
        nginx
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("error.log")).unwrap_or_default()
    }

    fn await_listening(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("nginx exited ({status}):\n{}", self.log());
            }
            if std::net::TcpStream::connect(self.https).is_ok()
                && std::net::TcpStream::connect(self.http).is_ok()
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "nginx is not listening:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // Its own process, by PID: SIGTERM (a fast shutdown), then SIGKILL if it lingers.
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The server's log lines (this test binary's logger).
static LOG: Mutex<Vec<String>> = Mutex::new(Vec::new());

struct Capture;

impl log::Log for Capture {
    fn enabled(&self, metadata: &log::Metadata) -> bool {
        metadata.level() <= log::Level::Info
    }
    fn log(&self, record: &log::Record) {
        if let Ok(mut lines) = LOG.lock() {
            lines.push(record.args().to_string());
        }
    }
    fn flush(&self) {}
}

fn logged(needle: &str) -> bool {
    LOG.lock()
        .map(|lines| lines.iter().any(|l| l.contains(needle)))
        .unwrap_or(false)
}

fn wait_logged(needle: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !logged(needle) {
        assert!(
            Instant::now() < deadline,
            "the server never logged {needle:?}; it logged:\n{}",
            LOG.lock().map(|l| l.join("\n")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_browser_chats_through_nginx_over_https_and_wss() {
    let Some(nginx_path) = nginx_or_skip() else {
        return;
    };
    if log::set_logger(&Capture).is_ok() {
        log::set_max_level(log::LevelFilter::Info);
    }
    let cert = TestCert::new("nginx");
    let Some(test) = BrowserTest::with_config_and_flags(
        Config {
            trusted_proxies: vec![PROXY_SOURCE.parse().expect("an address")],
            ..Config::default()
        },
        &["--ignore-certificate-errors"],
    ) else {
        return;
    };
    assert!(!test.server.tls, "the server itself speaks plain http here");
    let nginx = Nginx::start(&nginx_path, &cert, test.server.addr);
    let site = format!("https://{}", nginx.https);

    let alice = test.open_url("alice's page", &format!("{site}/"));
    let bob = test.open_url("bob's page", &format!("{site}/"));
    join(&alice, "alice");
    join(&bob, "bob");
    alice.wait_until(
        "bob's join is shown",
        &notice_shown("join", "bob joined the chat"),
    );
    alice.type_into("#messageInput", "hello through nginx");
    alice.press_enter();
    bob.wait_until(
        "alice's message is shown",
        &message_shown("alice", "hello through nginx"),
    );
    // The browser's address, forwarded by the trusted proxy, not the proxy's own.
    wait_logged(&format!("alice (127.0.0.1 via {PROXY_SOURCE}:"));
    assert_eq!(
        alice.errors(),
        Vec::<String>::new(),
        "errors on alice's page"
    );

    let config = cert.client_config();
    // Another site's page is refused behind the proxy as without it.
    match try_wss(
        nginx.https,
        &config,
        "/ws/mallory",
        &[("Origin", "https://evil.example")],
    ) {
        Err(tungstenite::Error::Http(response)) => assert_eq!(response.status(), 403),
        other => panic!("a foreign Origin was let through: {other:?}"),
    }
    // An X-Forwarded-For the client made up is not believed: nginx appends the address it
    // saw, and that one counts.
    let forged = try_wss(
        nginx.https,
        &config,
        "/ws/forger",
        &[
            ("Origin", site.as_str()),
            ("X-Forwarded-For", "198.51.100.7"),
        ],
    )
    .expect("a same-origin upgrade through nginx");
    wait_logged(&format!("forger (127.0.0.1 via {PROXY_SOURCE}:"));
    assert!(!logged("198.51.100.7"), "a forged address was believed");
    drop(forged);

    // Plain http at the proxy is a redirect to https.
    let (status, head) = {
        let answer = common_http(nginx.http, "GET /?room=x HTTP/1.1\r\nHost: chat\r\n\r\n");
        let (status, head, _) = tls::split_response(&answer);
        (status, head)
    };
    assert_eq!(status, 301, "{head}");
    assert!(head.contains("Location: https://"), "{head}");
    drop(nginx);
}

fn common_http(addr: SocketAddr, request: &str) -> Vec<u8> {
    use std::io::Read;
    let mut stream = common::tcp_connect(addr);
    let request = request.replace("\r\n\r\n", "\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).expect("write");
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    answer
}

/// Seconds of an nginx duration like `120s`, `2m` or `90`.
fn nginx_seconds(value: &str) -> u64 {
    let value = value.trim_end_matches(';');
    if let Some(m) = value.strip_suffix('m') {
        return m.parse::<u64>().expect("minutes") * 60;
    }
    value
        .trim_end_matches('s')
        .parse()
        .expect("a duration in seconds")
}

#[test]
fn the_nginx_timeouts_outlast_the_heartbeat_and_the_headers_are_set() {
    let site = std::fs::read_to_string(repo_file("deploy/nginx/chat.conf")).expect("read");
    let heartbeat = Config::default().heartbeat.as_secs();
    let idle = Config::default().idle_timeout.as_secs();
    for directive in ["proxy_read_timeout", "proxy_send_timeout"] {
        let value = site
            .lines()
            .map(str::trim)
            .find_map(|l| l.strip_prefix(directive))
            .unwrap_or_else(|| panic!("no {directive} in deploy/nginx/chat.conf"));
        let secs = nginx_seconds(value.trim());
        assert!(
            secs > heartbeat && secs > idle,
            "{directive} {secs} s is not longer than the heartbeat ({heartbeat} s) and the idle \
             timeout ({idle} s)"
        );
    }
    for header in [
        "proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;",
        "proxy_set_header X-Forwarded-Proto $scheme;",
        "proxy_set_header Upgrade $http_upgrade;",
        "proxy_set_header Host $http_host;",
    ] {
        assert!(
            site.contains(header),
            "deploy/nginx/chat.conf lacks {header}"
        );
    }
}

#[test]
fn the_caddyfile_is_valid_when_caddy_is_installed() {
    let caddyfile = repo_file("deploy/caddy/Caddyfile");
    assert!(caddyfile.is_file());
    let Some(caddy) = find_program("caddy", &[]) else {
        let _ = writeln!(
            std::io::stderr(),
            "caddy is not installed (not in Debian stable): deploy/caddy/Caddyfile not validated"
        );
        return;
    };
    let output = Command::new(caddy)
        .args(["validate", "--adapter", "caddyfile", "--config"])
        .arg(&caddyfile)
        .output()
        .expect("run caddy validate");
    assert!(
        output.status.success(),
        "caddy validate: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}
