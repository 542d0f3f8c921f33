//! TLS for the end-to-end tests: a throwaway certificate (rcgen) in files the server reads, and
//! clients that trust it: a raw rustls stream for HTTP, and tungstenite over that stream for
//! `wss://`.
//!
//! Include it next to `mod common;` with `#[path = "common/tls.rs"] mod tls;`.
#![allow(dead_code)] // each test binary uses a different part of the helpers

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};
use tungstenite::client::IntoClientRequest;
use tungstenite::handshake::HandshakeError;
use tungstenite::WebSocket;

use crate::common::tcp_connect;

/// A TLS connection to the test server.
pub type TlsStream = StreamOwned<ClientConnection, TcpStream>;
/// A chat client over `wss://`.
pub type WssClient = WebSocket<TlsStream>;

/// A self-signed certificate for `127.0.0.1` and `localhost`, and its key, in PEM files of a
/// temp directory of their own (removed when dropped).
pub struct TestCert {
    dir: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
    pub der: CertificateDer<'static>,
}

impl TestCert {
    pub fn new(name: &str) -> TestCert {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let dir =
            std::env::temp_dir().join(format!("chat-tls-{name}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a temp dir for the certificate");
        let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
        let der = write_new_cert(&cert, &key);
        TestCert {
            dir,
            cert,
            key,
            der,
        }
    }

    /// Replaces the files with a new certificate and key (a renewal); returns the new one.
    pub fn renew(&mut self) -> CertificateDer<'static> {
        self.der = write_new_cert(&self.cert, &self.key);
        self.der.clone()
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `--tls-cert CERT --tls-key KEY`, for a server process.
    pub fn args(&self) -> Vec<String> {
        vec![
            "--tls-cert".to_owned(),
            self.cert.display().to_string(),
            "--tls-key".to_owned(),
            self.key.display().to_string(),
        ]
    }

    /// A client configuration that trusts this certificate (and nothing else).
    pub fn client_config(&self) -> Arc<ClientConfig> {
        client_config(std::slice::from_ref(&self.der))
    }
}

impl Drop for TestCert {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Writes a fresh self-signed certificate and its key to `cert` and `key`.
pub fn write_new_cert(cert: &Path, key: &Path) -> CertificateDer<'static> {
    let made =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
            .expect("a self-signed certificate");
    std::fs::write(key, made.signing_key.serialize_pem()).expect("write the key");
    std::fs::write(cert, made.cert.pem()).expect("write the certificate");
    made.cert.der().clone()
}

/// A rustls client configuration (ring, safe defaults) trusting `roots` only.
pub fn client_config(roots: &[CertificateDer<'static>]) -> Arc<ClientConfig> {
    let mut store = RootCertStore::empty();
    for root in roots {
        store.add(root.clone()).expect("a usable root certificate");
    }
    let config =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_root_certificates(store)
            .with_no_client_auth();
    Arc::new(config)
}

/// A TLS connection to `addr` (as `127.0.0.1`), handshake done. Reads and writes time out
/// like every test connection.
pub fn tls_connect(addr: SocketAddr, config: &Arc<ClientConfig>) -> TlsStream {
    try_tls_connect(addr, config).expect("a TLS handshake")
}

/// Like [`tls_connect`], with the handshake's error instead of a panic.
pub fn try_tls_connect(addr: SocketAddr, config: &Arc<ClientConfig>) -> std::io::Result<TlsStream> {
    let name = ServerName::IpAddress(addr.ip().into());
    let session = ClientConnection::new(Arc::clone(config), name).expect("a client session");
    let mut stream = StreamOwned::new(session, tcp_connect(addr));
    while stream.conn.is_handshaking() {
        stream.conn.complete_io(&mut stream.sock)?;
    }
    Ok(stream)
}

/// The certificate the server presented on `stream`.
pub fn presented(stream: &TlsStream) -> CertificateDer<'static> {
    stream
        .conn
        .peer_certificates()
        .and_then(|chain| chain.first())
        .expect("the server presented a certificate")
        .clone()
        .into_owned()
}

/// One HTTP/1.1 request over TLS on a fresh connection (`Connection: close`): the status
/// line's code, the head and the body.
pub fn https_request(
    addr: SocketAddr,
    config: &Arc<ClientConfig>,
    request: &str,
) -> (u16, String, Vec<u8>) {
    let mut stream = tls_connect(addr, config);
    stream.write_all(request.as_bytes()).expect("write");
    let mut answer = Vec::new();
    // A server that closes without close_notify ends the read with an error after the
    // bytes: what came is the answer.
    let _ = stream.read_to_end(&mut answer);
    split_response(&answer)
}

/// The status, head and body of one response.
pub fn split_response(answer: &[u8]) -> (u16, String, Vec<u8>) {
    let at = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no response head in {:?}", String::from_utf8_lossy(answer)));
    let head = String::from_utf8_lossy(&answer[..at]).into_owned();
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, head, answer[at + 4..].to_vec())
}

/// Opens `wss://ADDR{target}`, with extra request headers (`Origin`,
/// `Sec-WebSocket-Protocol`...): the client, or the handshake's error (the refusal).
pub fn try_wss(
    addr: SocketAddr,
    config: &Arc<ClientConfig>,
    target: &str,
    headers: &[(&str, &str)],
) -> Result<WssClient, tungstenite::Error> {
    let mut request = format!("wss://{addr}{target}")
        .into_client_request()
        .expect("a request");
    for (name, value) in headers {
        request.headers_mut().insert(
            tungstenite::http::HeaderName::from_bytes(name.as_bytes()).expect("a header name"),
            value.parse().expect("a header value"),
        );
    }
    let stream = tls_connect(addr, config);
    match tungstenite::client(request, stream) {
        Ok((client, _)) => Ok(client),
        Err(HandshakeError::Failure(e)) => Err(e),
        Err(HandshakeError::Interrupted(_)) => panic!("no handshake answer for {target}"),
    }
}

/// [`try_wss`] that must succeed.
pub fn wss(
    addr: SocketAddr,
    config: &Arc<ClientConfig>,
    target: &str,
    headers: &[(&str, &str)],
) -> WssClient {
    try_wss(addr, config, target, headers)
        .unwrap_or_else(|e| panic!("wss upgrade of {target} failed: {e:?}"))
}

/// The next JSON text frame (pings are answered by tungstenite on the way).
pub fn recv_json(client: &mut WssClient) -> serde_json::Value {
    loop {
        match client.read().expect("a frame") {
            tungstenite::Message::Text(text) => {
                return serde_json::from_str(&text).expect("a JSON frame")
            }
            tungstenite::Message::Close(frame) => panic!("closed: {frame:?}"),
            _ => {}
        }
    }
}

/// Reads frames until one of `kind`; returns it.
pub fn recv_kind(client: &mut WssClient, kind: &str) -> serde_json::Value {
    for _ in 0..1000 {
        let frame = recv_json(client);
        if frame["type"] == kind {
            return frame;
        }
    }
    panic!("no {kind} frame in 1000");
}

/// Sends a text frame.
pub fn send(client: &mut WssClient, text: &str) {
    client
        .send(tungstenite::Message::text(text))
        .expect("send a text frame");
}
