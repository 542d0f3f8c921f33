//! The crate's test harness: a [`RunningServer`] on `127.0.0.1:0`, tungstenite clients on std
//! sockets, every read bounded by [`TIMEOUT`].
#![allow(dead_code)] // each test binary uses a part of it

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use chat_tokio::{Config, RunningServer};
use serde_json::Value;
use tungstenite::client::IntoClientRequest;
use tungstenite::http::HeaderValue;
use tungstenite::protocol::CloseFrame;
use tungstenite::{Message, WebSocket};

pub const TIMEOUT: Duration = Duration::from_secs(10);

pub type Client = WebSocket<TcpStream>;

/// The defaults, with messages kept in memory (the default store is SQLite in `chat-data`,
/// which parallel tests would share).
pub fn memory() -> Config {
    Config {
        store: chat_adapter::StoreKind::Memory,
        ..Config::default()
    }
}

/// A server with `config` on an ephemeral loopback port.
pub fn start(mut config: Config) -> RunningServer {
    config.bind = "127.0.0.1:0".parse().expect("literal address");
    RunningServer::start(config).expect("start the tokio chat server")
}

/// One of a socket's timeout setters.
type SetTimeout = fn(&TcpStream, Option<Duration>) -> std::io::Result<()>;

/// A TCP connection whose reads and writes fail after [`TIMEOUT`] instead of hanging.
pub fn tcp(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect_timeout(&addr, TIMEOUT).expect("TCP connect to the server");
    let setters: [SetTimeout; 2] = [TcpStream::set_read_timeout, TcpStream::set_write_timeout];
    for set in setters {
        set(&stream, Some(TIMEOUT)).expect("a socket timeout");
    }
    stream
}

/// A WebSocket client at `ws://addr{path}`, offering `protocol` if given; the server's answer
/// headers come back too.
pub fn connect_at(
    addr: SocketAddr,
    path: &str,
    protocol: Option<&str>,
) -> (Client, tungstenite::handshake::client::Response) {
    let mut request = format!("ws://{addr}{path}")
        .into_client_request()
        .expect("a valid URL");
    if let Some(protocol) = protocol {
        request.headers_mut().insert(
            "Sec-WebSocket-Protocol",
            HeaderValue::from_str(protocol).expect("a valid header"),
        );
    }
    tungstenite::client(request, tcp(addr)).expect("WebSocket handshake")
}

pub fn connect(addr: SocketAddr, name: &str) -> Client {
    connect_at(addr, &format!("/ws/{name}"), None).0
}

/// Clients joining one after the other, each join notice read by everyone already in.
pub fn join_all<const N: usize>(addr: SocketAddr, names: [&str; N]) -> [Client; N] {
    let mut clients: Vec<Client> = Vec::with_capacity(N);
    for name in names {
        clients.push(connect(addr, name));
        for client in &mut clients {
            expect_join(client, name);
        }
    }
    match clients.try_into() {
        Ok(clients) => clients,
        Err(_) => unreachable!("one client per name"),
    }
}

/// The next text frame, as JSON.
pub fn recv_json(client: &mut Client) -> Value {
    let start = std::time::Instant::now();
    loop {
        assert!(
            start.elapsed() < TIMEOUT,
            "no text frame within {TIMEOUT:?}"
        );
        match client.read().expect("a frame before the timeout") {
            Message::Text(text) => return serde_json::from_str(&text).expect("JSON frame"),
            Message::Ping(_) | Message::Pong(_) => continue,
            other => panic!("expected a text frame, got {other:?}"),
        }
    }
}

pub fn send(client: &mut Client, text: &str) {
    client.send(Message::text(text)).expect("send a text frame");
}

/// The next frame must be a join notice for `name` (the tutorial's v1 frame).
pub fn expect_join(client: &mut Client, name: &str) {
    let frame = recv_json(client);
    assert_eq!(frame["type"], "connection", "{frame}");
    assert_eq!(frame["client_id"], name, "{frame}");
    assert_eq!(
        frame["message"],
        format!("{name} joined the chat"),
        "{frame}"
    );
}

/// Reads until the server's close frame; its code and reason.
pub fn expect_close(client: &mut Client) -> (u16, String) {
    loop {
        match client.read() {
            Ok(Message::Close(Some(CloseFrame { code, reason }))) => {
                return (code.into(), reason.to_string())
            }
            Ok(Message::Close(None)) => panic!("a close frame without a code"),
            Ok(_) => continue,
            Err(e) => panic!("the connection ended without a close frame: {e}"),
        }
    }
}

/// One HTTP/1.1 GET on a fresh connection (`Connection: close`): status, head, body.
pub fn http_get(addr: SocketAddr, path: &str) -> (u16, String, Vec<u8>) {
    let mut stream = tcp(addr);
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream
        .write_all(request.as_bytes())
        .expect("send the request");
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).expect("read the answer");
    let Some(split) = answer.windows(4).position(|w| w == b"\r\n\r\n") else {
        panic!("no complete head in {answer:?}");
    };
    let head = String::from_utf8_lossy(&answer[..split]).into_owned();
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("a status line");
    (status, head, answer[split + 4..].to_vec())
}
