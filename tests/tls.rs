//! Native TLS end to end over real sockets (`--tls-cert`, `--tls-key`), with a throwaway
//! certificate: the page and static files over `https://`, tutorial and v2 clients over
//! `wss://`, a large message and a burst, the Origin check under `https`, the `Secure`
//! session cookie; hostile clients (garbage or plain HTTP instead of a ClientHello, a
//! handshake that stalls) are cut off without disturbing the others. Without a certificate
//! the same server speaks plain HTTP as before (every other test file); behind a trusted
//! proxy `X-Forwarded-Proto` gives the Origin check its scheme.

mod common;
#[path = "common/tls.rs"]
mod tls;

use std::io::{Read, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use chat_mio_server::{AuthMode, Config, StoreKind};
use common::{tcp_connect, TestServer};
use serde_json::json;
use tls::{
    https_request, recv_json, recv_kind, send, split_response, tls_connect, try_wss, wss, TestCert,
};

fn tls_server(cert: &TestCert, config: Config) -> TestServer {
    TestServer::with_config(Config {
        tls_cert: Some(cert.cert.clone()),
        tls_key: Some(cert.key.clone()),
        rate_limit: 0.0,
        ..config
    })
}

#[test]
fn the_page_and_static_files_come_over_https_on_one_kept_alive_connection() {
    let cert = TestCert::new("page");
    let server = tls_server(&cert, Config::default());
    let config = cert.client_config();
    let (status, head, body) = https_request(
        server.addr,
        &config,
        "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(status, 200, "{head}");
    assert!(
        String::from_utf8_lossy(&body).contains("<html"),
        "not the page: {head}"
    );

    // Two requests on one connection: keep-alive works through TLS as without it.
    let mut stream = tls_connect(server.addr, &config);
    stream
        .write_all(
            b"HEAD /static/chat.js HTTP/1.1\r\nHost: x\r\n\r\n\
              GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        )
        .expect("write");
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    let text = String::from_utf8_lossy(&answer);
    assert_eq!(text.matches("HTTP/1.1 200").count(), 2, "{text}");
    assert!(text.ends_with("ok\n") || text.ends_with("ok"), "{text}");
}

#[test]
fn tutorial_clients_chat_over_wss() {
    let cert = TestCert::new("v1");
    let server = tls_server(&cert, Config::default());
    let config = cert.client_config();
    let mut alice = wss(server.addr, &config, "/ws/alice", &[]);
    let joined = recv_json(&mut alice);
    assert_eq!(
        (&joined["type"], &joined["client_id"], &joined["message"]),
        (
            &json!("connection"),
            &json!("alice"),
            &json!("alice joined the chat")
        )
    );
    let mut bob = wss(server.addr, &config, "/ws/bob", &[]);
    assert_eq!(recv_json(&mut bob)["client_id"], "bob");
    assert_eq!(recv_json(&mut alice)["client_id"], "bob");

    send(&mut alice, "hello over wss");
    for client in [&mut alice, &mut bob] {
        let frame = recv_json(client);
        assert_eq!(
            (&frame["type"], &frame["client_id"], &frame["message"]),
            (&json!("message"), &json!("alice"), &json!("hello over wss"))
        );
    }
    drop(bob);
    let left = recv_json(&mut alice);
    assert_eq!(
        (&left["type"], &left["client_id"]),
        (&json!("disconnection"), &json!("bob"))
    );
}

#[test]
fn v2_clients_chat_over_wss_with_acks_and_history() {
    let cert = TestCert::new("v2");
    let server = tls_server(&cert, Config::default());
    let config = cert.client_config();
    let v2 = [("Sec-WebSocket-Protocol", "chat.v2")];
    let mut carol = wss(server.addr, &config, "/ws/carol?room=tls", &v2);
    recv_kind(&mut carol, "welcome");
    send(
        &mut carol,
        &json!({"type": "message", "message": "first", "client_msg_id": "c-1"}).to_string(),
    );
    let ack = recv_kind(&mut carol, "ack");
    assert_eq!(ack["client_msg_id"], "c-1");

    // A later joiner gets the history over its own TLS session.
    let mut dave = wss(server.addr, &config, "/ws/dave?room=tls", &v2);
    let history = recv_kind(&mut dave, "history");
    let texts: Vec<&str> = history["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .filter_map(|m| m["message"].as_str())
        .collect();
    assert_eq!(texts, ["first"], "{history}");
}

#[test]
fn a_large_message_and_a_burst_arrive_whole_and_in_order_over_tls() {
    let cert = TestCert::new("burst");
    let server = tls_server(&cert, Config::default());
    let config = cert.client_config();
    let mut sender = wss(server.addr, &config, "/ws/sender", &[]);
    recv_json(&mut sender);
    let mut reader = wss(server.addr, &config, "/ws/reader", &[]);
    recv_json(&mut reader);
    recv_json(&mut sender);

    // 60 kB: several TLS records, written across socket-full waits.
    let big: String = (0..60_000)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect();
    send(&mut sender, &big);
    // A burst: many frames in a few turns, packed into few records.
    for i in 0..300 {
        sender
            .write(tungstenite::Message::text(format!("burst {i}")))
            .expect("queue");
    }
    sender.flush().expect("flush");
    for client in [&mut reader, &mut sender] {
        assert_eq!(recv_json(client)["message"], big.as_str());
        for i in 0..300 {
            assert_eq!(recv_json(client)["message"], format!("burst {i}"));
        }
    }
}

#[test]
fn the_origin_check_expects_an_https_page_under_tls() {
    let cert = TestCert::new("origin");
    let server = tls_server(&cert, Config::default());
    let config = cert.client_config();
    let host = server.addr.to_string();
    let same = format!("https://{host}");
    let ok = wss(
        server.addr,
        &config,
        "/ws/page",
        &[("Origin", &same), ("Host", &host)],
    );
    drop(ok);
    // The same host and port over plain http is another origin.
    let plain = format!("http://{host}");
    match try_wss(
        server.addr,
        &config,
        "/ws/page",
        &[("Origin", &plain), ("Host", &host)],
    ) {
        Err(tungstenite::Error::Http(response)) => assert_eq!(response.status(), 403),
        other => panic!("an http:// page was not refused: {other:?}"),
    }
}

#[test]
fn a_login_over_native_tls_gets_a_secure_cookie() {
    let cert = TestCert::new("cookie");
    let data = cert.dir().join("data");
    let phc = chat_auth::hash_password(&chat_auth::Secret::new("correct horse battery staple"))
        .expect("hash");
    chat_store::accounts::add_user(&data, "alice", &phc, false).expect("add alice");
    let server = tls_server(
        &cert,
        Config {
            auth: AuthMode::Accounts,
            store: StoreKind::Sqlite,
            data_dir: data.clone(),
            ..Config::default()
        },
    );
    let body = "name=alice&password=correct+horse+battery+staple";
    let origin = format!("https://{}", server.addr);
    let (status, head, _) = https_request(
        server.addr,
        &cert.client_config(),
        &format!(
            "POST /login HTTP/1.1\r\nHost: {}\r\nOrigin: {origin}\r\nContent-Type: \
             application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            server.addr,
            body.len()
        ),
    );
    assert_eq!(status, 303, "{head}");
    let cookie = head
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("set-cookie:"))
        .unwrap_or_else(|| panic!("no Set-Cookie: {head}"));
    assert!(cookie.contains("; Secure"), "{cookie}");
    assert!(cookie.contains("HttpOnly"), "{cookie}");
    drop(server);
    let _ = std::fs::remove_dir_all(PathBuf::from(&data));
}

/// Reads until the server ends the connection; how long that took. A reset counts as an end.
fn wait_for_close(stream: &mut std::net::TcpStream) -> Duration {
    let start = Instant::now();
    let mut buf = [0; 1024];
    loop {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return start.elapsed(),
            Ok(_) => {}
        }
    }
}

#[test]
fn garbage_or_plain_http_instead_of_a_client_hello_is_cut_off_and_others_go_on() {
    let cert = TestCert::new("garbage");
    let server = tls_server(&cert, Config::default());
    let config = cert.client_config();
    let mut chatter = wss(server.addr, &config, "/ws/chatter", &[]);
    recv_json(&mut chatter);
    for garbage in [
        &b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"[..],
        &[0x16, 0x03, 0x01, 0xff, 0xff, 1, 2, 3][..],
        &[0u8; 600][..],
    ] {
        let mut raw = tcp_connect(server.addr);
        raw.write_all(garbage).expect("write");
        let mut answer = Vec::new();
        let took = {
            let start = Instant::now();
            let _ = raw.read_to_end(&mut answer);
            start.elapsed()
        };
        assert!(took < Duration::from_secs(5), "kept open {took:?}");
        // Whatever came back is a TLS alert (content type 21), never HTTP.
        if let Some(first) = answer.first() {
            assert_eq!(*first, 21, "{answer:?}");
        }
    }
    // The chat goes on.
    send(&mut chatter, "still here");
    assert_eq!(recv_json(&mut chatter)["message"], "still here");
    let (status, _, _) = https_request(
        server.addr,
        &config,
        "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(status, 200);
}

#[test]
fn a_stalled_handshake_is_closed_by_the_request_timeout() {
    let cert = TestCert::new("stall");
    let server = tls_server(
        &cert,
        Config {
            request_timeout: Duration::from_millis(500),
            ..Config::default()
        },
    );
    // Nothing at all after connecting.
    let mut silent = tcp_connect(server.addr);
    // Half a ClientHello: a record header that promises more than ever comes.
    let mut half = tcp_connect(server.addr);
    half.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00])
        .expect("write");
    let start = Instant::now();
    for (what, stream) in [("silent", &mut silent), ("half a hello", &mut half)] {
        wait_for_close(stream);
        let took = start.elapsed();
        assert!(
            took >= Duration::from_millis(250) && took < Duration::from_secs(5),
            "{what}: closed after {took:?}"
        );
    }
    // A handshake that completes and then sends no request is the same slowloris.
    let mut quiet = tls_connect(server.addr, &cert.client_config());
    let start = Instant::now();
    let mut answer = Vec::new();
    let _ = quiet.read_to_end(&mut answer);
    assert!(start.elapsed() < Duration::from_secs(5));
    assert!(answer.is_empty(), "{:?}", String::from_utf8_lossy(&answer));
}

#[test]
fn without_a_certificate_the_same_port_speaks_plain_http() {
    let server = TestServer::start();
    let (status, _) = common_get(server.addr, "/healthz");
    assert_eq!(status, 200);
}

fn common_get(addr: std::net::SocketAddr, path: &str) -> (u16, Vec<u8>) {
    let mut stream = tcp_connect(addr);
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .expect("write");
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    let (status, _, body) = split_response(&answer);
    (status, body)
}

/// An upgrade to a plain server: the status of the answer.
fn plain_upgrade(server: &TestServer, headers: &str) -> u16 {
    let mut stream = tcp_connect(server.addr);
    write!(
        stream,
        "GET /ws/proxied HTTP/1.1\r\nHost: chat.example.org\r\nUpgrade: websocket\r\n\
         Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n{headers}\r\n"
    )
    .expect("write");
    let mut head = Vec::new();
    let mut byte = [0];
    while !head.ends_with(b"\r\n\r\n") && stream.read(&mut byte).is_ok_and(|n| n == 1) {
        head.push(byte[0]);
    }
    split_response(&head).0
}

#[test]
fn behind_a_trusted_proxy_x_forwarded_proto_gives_the_origin_its_scheme() {
    let https_page = "Origin: https://chat.example.org\r\n";
    // From a trusted proxy: the browser's page is https, as the proxy says.
    let trusted = TestServer::with_config(Config {
        trusted_proxies: vec!["127.0.0.1".parse().expect("an address")],
        ..Config::default()
    });
    let said_https = format!("{https_page}X-Forwarded-Proto: https\r\n");
    assert_eq!(plain_upgrade(&trusted, &said_https), 101);
    // A proxy chain: the first entry is the scheme the browser used.
    let chain = format!("{https_page}X-Forwarded-Proto: https, http\r\n");
    assert_eq!(plain_upgrade(&trusted, &chain), 101);
    // Without the header the server's own scheme (http) is expected.
    assert_eq!(plain_upgrade(&trusted, https_page), 403);
    let said_http = "Origin: http://chat.example.org\r\nX-Forwarded-Proto: http\r\n";
    assert_eq!(plain_upgrade(&trusted, said_http), 101);

    // From anyone else the header is ignored: an https page is another origin.
    let untrusted = TestServer::start();
    assert_eq!(plain_upgrade(&untrusted, &said_https), 403);
    let plain_page = "Origin: http://chat.example.org\r\nX-Forwarded-Proto: https\r\n";
    assert_eq!(plain_upgrade(&untrusted, plain_page), 101);
}
