//! The server binary with native TLS: the certificate is reloaded on SIGHUP while a chat
//! connection stays open across it (new handshakes get the new certificate, the open one keeps
//! chatting); a bad file at reload is logged and the old certificate kept; bad files at start
//! stop the start with a one-line reason.

mod common;

use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{signal, Server, TempDir, IO_TIMEOUT};
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};
use tungstenite::{Message, WebSocket};

type Tls = StreamOwned<ClientConnection, TcpStream>;

fn write_cert(dir: &Path) -> CertificateDer<'static> {
    let made =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).expect("a certificate");
    std::fs::write(dir.join("key.pem"), made.signing_key.serialize_pem()).expect("write key");
    std::fs::write(dir.join("cert.pem"), made.cert.pem()).expect("write cert");
    made.cert.der().clone()
}

fn client_config(roots: &[&CertificateDer<'static>]) -> Arc<ClientConfig> {
    let mut store = RootCertStore::empty();
    for root in roots {
        store.add((*root).clone()).expect("a root");
    }
    Arc::new(
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_root_certificates(store)
            .with_no_client_auth(),
    )
}

fn connect(addr: SocketAddr, config: &Arc<ClientConfig>) -> Tls {
    let tcp = TcpStream::connect(addr).expect("connect");
    tcp.set_read_timeout(Some(IO_TIMEOUT)).expect("timeout");
    tcp.set_write_timeout(Some(IO_TIMEOUT)).expect("timeout");
    let name = ServerName::IpAddress(addr.ip().into());
    let session = ClientConnection::new(Arc::clone(config), name).expect("a session");
    let mut stream = StreamOwned::new(session, tcp);
    while stream.conn.is_handshaking() {
        stream
            .conn
            .complete_io(&mut stream.sock)
            .expect("a TLS handshake");
    }
    stream
}

fn presented(stream: &Tls) -> CertificateDer<'static> {
    stream.conn.peer_certificates().expect("a certificate")[0]
        .clone()
        .into_owned()
}

fn chat(addr: SocketAddr, config: &Arc<ClientConfig>, user: &str) -> WebSocket<Tls> {
    let stream = connect(addr, config);
    let (client, _) = tungstenite::client(format!("wss://{addr}/ws/{user}"), stream)
        .unwrap_or_else(|e| panic!("wss upgrade: {e}"));
    client
}

/// The next text frame's `(type, client_id, message)`.
fn next(client: &mut WebSocket<Tls>) -> (String, String, String) {
    loop {
        if let Message::Text(text) = client.read().expect("a frame") {
            let v: serde_json::Value = serde_json::from_str(&text).expect("JSON");
            let field = |k: &str| v[k].as_str().unwrap_or_default().to_owned();
            return (field("type"), field("client_id"), field("message"));
        }
    }
}

fn wait_for_log(server: &Server, text: &str, times: usize) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while server.output().matches(text).count() < times {
        assert!(
            Instant::now() < deadline,
            "no {text:?} in the log:\n{}",
            server.output()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn sighup_reloads_the_certificate_and_keeps_open_connections() {
    let dir = TempDir::new("tls-reload");
    let first = write_cert(dir.path());
    let cert = dir.path().join("cert.pem");
    let key = dir.path().join("key.pem");
    let server = Server::start(
        &dir.data(),
        &[
            "--store",
            "memory",
            "--tls-cert",
            &cert.display().to_string(),
            "--tls-key",
            &key.display().to_string(),
        ],
    );
    assert!(
        server.output().contains("Open https://"),
        "{}",
        server.output()
    );
    let trusts_first = client_config(&[&first]);
    let mut alice = chat(server.addr, &trusts_first, "alice");
    assert_eq!(next(&mut alice).0, "connection");
    assert_eq!(presented(alice.get_ref()), first);

    // A renewal: new files, then SIGHUP.
    let second = write_cert(dir.path());
    signal(server.pid(), "HUP");
    wait_for_log(&server, "TLS certificate reloaded", 1);
    let trusts_both = client_config(&[&first, &second]);
    let mut bob = chat(server.addr, &trusts_both, "bob");
    assert_eq!(
        presented(bob.get_ref()),
        second,
        "a new handshake uses the new certificate"
    );
    // alice's connection, from before the reload, chats on.
    assert_eq!(
        next(&mut alice),
        (
            "connection".into(),
            "bob".into(),
            "bob joined the chat".into()
        )
    );
    alice
        .send(Message::text("across the reload"))
        .expect("send");
    for client in [&mut bob, &mut alice] {
        loop {
            let (kind, from, text) = next(client);
            if kind == "message" {
                assert_eq!(
                    (from.as_str(), text.as_str()),
                    ("alice", "across the reload")
                );
                break;
            }
        }
    }

    // A broken renewal: logged, and the last good certificate stays.
    std::fs::write(&cert, "-----BEGIN CERTIFICATE-----\nnot base64\n").expect("write");
    signal(server.pid(), "HUP");
    wait_for_log(&server, "TLS reload failed", 1);
    let carol = connect(server.addr, &trusts_both);
    assert_eq!(presented(&carol), second, "the old certificate was kept");
    drop(carol);
    std::fs::remove_file(&key).expect("remove the key");
    signal(server.pid(), "HUP");
    wait_for_log(&server, "TLS reload failed", 2);
    alice.send(Message::text("still here")).expect("send");
    loop {
        let (kind, _, text) = next(&mut bob);
        if kind == "message" {
            assert_eq!(text, "still here");
            break;
        }
    }
    let log = server.output();
    assert!(!log.contains("PRIVATE KEY"), "{log}");
    server.stop();
}

#[test]
fn bad_tls_files_stop_the_start_with_a_reason() {
    let dir = TempDir::new("tls-bad");
    write_cert(dir.path());
    let cert = dir.path().join("cert.pem").display().to_string();
    let key = dir.path().join("key.pem").display().to_string();
    let missing = dir.path().join("nope.pem").display().to_string();
    let cases: [(&[&str], &str); 4] = [
        (&["--tls-cert", &cert], "--tls-key"),
        (&["--tls-cert", &missing, "--tls-key", &key], "nope.pem"),
        (&["--tls-cert", &key, "--tls-key", &key], "no certificate"),
        (&["--tls-cert", &cert, "--tls-key", &cert], "--tls-key"),
    ];
    for (args, said) in cases {
        let mut all = vec!["--store", "memory"];
        all.extend_from_slice(args);
        match Server::try_start(&dir.data(), &all) {
            Ok(_) => panic!("started with {args:?}"),
            Err((status, output)) => {
                assert!(status.is_some_and(|s| !s.success()), "{args:?}: {status:?}");
                assert!(output.contains(said), "{args:?}: {output}");
                assert!(!output.contains("PRIVATE KEY"), "{output}");
            }
        }
    }
}

#[test]
fn without_tls_sighup_still_ends_the_process_as_before() {
    // Unchanged behaviour without a certificate: SIGHUP is not caught.
    let dir = TempDir::new("tls-nohup");
    let mut server = Server::start(&dir.data(), &["--store", "memory"]);
    signal(server.pid(), "HUP");
    let status =
        common::wait_child(&mut server.child, Duration::from_secs(10)).expect("the process ended");
    assert!(!status.success());
}
