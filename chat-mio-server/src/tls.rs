//! Native TLS (`--tls-cert`, `--tls-key`): rustls between a connection's socket and the rest of
//! the server, in the shape of rustls's own `tlsserver-mio` example. Plaintext in: a read takes
//! the TLS records the socket has, and hands back what they decrypt to. TLS records out: a
//! flush moves the connection's queued plaintext into the session, then writes the records it
//! made to the socket. Nothing else in the server knows whether a connection is encrypted,
//! except the Origin check and the session cookie, which need the scheme.
//!
//! Turn batching survives the encryption: a flush hands every queued frame to rustls in one
//! vectored call (it packs them into records of up to 16 KiB, not one record per frame), and
//! rustls writes every record it holds with one `writev`. A connection costs one TLS write per
//! turn, as a plain one costs one `writev`.
//!
//! Certificates are read at start and again on SIGHUP (`event_loop/tls.rs`, on a thread of its
//! own): connections keep the configuration they were accepted with, new handshakes
//! use the newest.
//!
//! Defaults only: TLS 1.3 and 1.2, rustls's safe cipher suites (all AEAD, forward secret) on
//! the `ring` provider, no client certificates, ALPN `http/1.1` (the server speaks no HTTP/2).

use std::io::{self, IoSlice, Read, Write};
use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ServerConfig, ServerConnection};

use crate::batch::Sealed;
use crate::write_queue::WriteQueue;

pub use chat_adapter::config::TlsFiles;

/// The files' contents, read (at start, or on a reload's thread) but not yet parsed.
pub struct Pem {
    cert: Vec<u8>,
    key: Vec<u8>,
}

/// Reading and parsing the files named by [`TlsFiles`].
pub trait LoadTls {
    /// Reads both files. Blocking file IO: at start, or on a thread of its own.
    fn read(&self) -> Result<Pem, String>;

    /// Reads and checks both files: the server configuration they make, or why they make
    /// none (never the key's bytes).
    fn load(&self) -> Result<Arc<ServerConfig>, String>;
}

impl LoadTls for TlsFiles {
    fn read(&self) -> Result<Pem, String> {
        let read = |what: &str, path: &Path| {
            std::fs::read(path).map_err(|e| format!("{what} {}: {e}", path.display()))
        };
        Ok(Pem {
            cert: read("--tls-cert", &self.cert)?,
            key: read("--tls-key", &self.key)?,
        })
    }

    fn load(&self) -> Result<Arc<ServerConfig>, String> {
        server_config(&self.read()?)
    }
}

/// The rustls configuration for a certificate chain and its key: TLS 1.2 and 1.3 with
/// rustls's safe defaults. Fails on a file that holds no certificate or no key, or a key that
/// is not the certificate's.
pub fn server_config(pem: &Pem) -> Result<Arc<ServerConfig>, String> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&pem.cert)
        .collect::<Result<_, _>>()
        .map_err(|e| format!("--tls-cert: not a PEM certificate chain: {e}"))?;
    if certs.is_empty() {
        return Err("--tls-cert: no certificate in the file".to_owned());
    }
    let key = PrivateKeyDer::from_pem_slice(&pem.key).map_err(|e| {
        format!("--tls-key: no usable private key (PKCS#8, PKCS#1 or SEC1 PEM): {e}")
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| format!("--tls-cert/--tls-key: {e}"))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Reads plaintext into `buf`, taking TLS records from `socket` when the session has none
/// decrypted. `Ok(0)`: the peer is done (close_notify, or the TCP connection ended);
/// `WouldBlock`: nothing more for now. A peer that breaks the protocol (garbage instead of a
/// ClientHello, a bad record) gets rustls's alert, best effort, and an `InvalidData` error.
pub fn read(
    tls: &mut ServerConnection,
    socket: &mut (impl Read + Write),
    buf: &mut [u8],
) -> io::Result<usize> {
    loop {
        match tls.reader().read(buf) {
            Ok(n) => return Ok(n),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            // The TCP connection ended without a close_notify: for HTTP and WebSocket (which
            // frame their own ends) that is an ordinary EOF.
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(0),
            Err(e) => return Err(e),
        }
        // Nothing decrypted is left: take more records. (The plaintext buffer is empty here,
        // so rustls has room for them.)
        match tls.read_tls(socket) {
            Ok(0) => {
                // EOF: what was decrypted has been read; the next round says which kind of EOF.
                if let Err(e) = tls.process_new_packets() {
                    return Err(io::Error::new(io::ErrorKind::InvalidData, e));
                }
                continue;
            }
            Ok(_) => {}
            Err(e) => return Err(e),
        }
        if let Err(e) = tls.process_new_packets() {
            // rustls queued an alert that says why; the connection ends after it.
            let _ = tls.write_tls(socket);
            return Err(io::Error::new(io::ErrorKind::InvalidData, e));
        }
    }
}

/// The session as the write queue's sink: plaintext goes in, as much as rustls's buffer limit
/// takes (a full buffer reads as `WouldBlock`, as a full socket would).
struct Plaintext<'a>(&'a mut ServerConnection);

impl Write for Plaintext<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_vectored(&[IoSlice::new(buf)])
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        match self.0.writer().write_vectored(bufs)? {
            0 if bufs.iter().any(|b| !b.is_empty()) => Err(io::ErrorKind::WouldBlock.into()),
            n => Ok(n),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Writes what the session holds (handshake messages, alerts, records) to `socket`.
/// `Ok(true)`: all of it is out; `Ok(false)`: the socket is full.
fn write_records(tls: &mut ServerConnection, socket: &mut impl Write) -> io::Result<bool> {
    while tls.wants_write() {
        match tls.write_tls(socket) {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

/// Flushes a TLS connection: the records left over from an earlier turn, then the queued
/// plaintext into the session and its records to the socket, as many rounds as rustls's
/// buffer limit needs (one for a turn's chat frames). `Ok(true)`: everything, queue and
/// records, is written; `Ok(false)`: the socket is full, wait for WRITABLE.
pub fn flush(
    out: &mut WriteQueue,
    sealed: &Sealed,
    tls: &mut ServerConnection,
    socket: &mut impl Write,
) -> io::Result<bool> {
    loop {
        if !write_records(tls, socket)? {
            // The socket is full. Frames still queued stay queued (and count against
            // --max-outbound); they are not piled into the session meanwhile.
            out.hold(sealed);
            return Ok(false);
        }
        if out.len() == 0 {
            return Ok(true);
        }
        if tls.is_handshaking() {
            // Only a refusal queued before the handshake ended could get here: rustls keeps
            // plaintext until then, so wait for the handshake rather than loop on a full
            // buffer.
            out.hold(sealed);
            return Ok(false);
        }
        // Everything queued, in one vectored call per 64 chunks; rustls packs it into
        // full-sized records. `false`: its buffer limit was reached: write, then go on.
        out.write_to(sealed, &mut Plaintext(tls))?;
    }
}

/// Queues a close_notify and writes it with whatever else is pending, best effort (the
/// connection is ending; the TCP close follows).
pub fn close_notify(tls: &mut ServerConnection, socket: &mut impl Write) {
    tls.send_close_notify();
    let _ = write_records(tls, socket);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::Batch;
    use bytes::Bytes;
    use rustls::pki_types::ServerName;
    use rustls::{ClientConfig, ClientConnection, RootCertStore};

    /// A socket that counts its writes: takes up to `room` bytes in all, then blocks.
    #[derive(Default)]
    struct Socket {
        input: Vec<u8>,
        output: Vec<u8>,
        writes: usize,
        room: usize,
    }

    impl Read for Socket {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.input.is_empty() {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            let n = buf.len().min(self.input.len());
            buf[..n].copy_from_slice(&self.input[..n]);
            self.input.drain(..n);
            Ok(n)
        }
    }

    impl Write for Socket {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.write_vectored(&[IoSlice::new(buf)])
        }
        fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
            if self.room == 0 {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            self.writes += 1;
            let mut n = 0;
            for buf in bufs {
                let take = buf.len().min(self.room);
                self.output.extend_from_slice(&buf[..take]);
                self.room -= take;
                n += take;
            }
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn provider() -> Arc<rustls::crypto::CryptoProvider> {
        Arc::new(rustls::crypto::ring::default_provider())
    }

    /// A server session and a client session that trusts its certificate, handshake done.
    fn pair() -> (ServerConnection, ClientConnection) {
        let made = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()])
            .expect("a certificate");
        let pem = Pem {
            cert: made.cert.pem().into_bytes(),
            key: made.signing_key.serialize_pem().into_bytes(),
        };
        let mut server = ServerConnection::new(server_config(&pem).expect("a server config"))
            .expect("a server session");
        let mut roots = RootCertStore::empty();
        roots.add(made.cert.der().clone()).expect("a root");
        let client_config = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        let name = ServerName::try_from("localhost").expect("a name");
        let mut client =
            ClientConnection::new(Arc::new(client_config), name).expect("a client session");
        for _ in 0..10 {
            if !client.is_handshaking() && !server.is_handshaking() {
                break;
            }
            let mut wire = Vec::new();
            client.write_tls(&mut wire).expect("client records");
            server.read_tls(&mut &wire[..]).expect("to the server");
            server.process_new_packets().expect("a good client");
            let mut wire = Vec::new();
            server.write_tls(&mut wire).expect("server records");
            client.read_tls(&mut &wire[..]).expect("to the client");
            client.process_new_packets().expect("a good server");
        }
        assert!(!client.is_handshaking() && !server.is_handshaking());
        // Session tickets and the like: not part of what the tests count.
        let mut wire = Vec::new();
        server.write_tls(&mut wire).expect("server records");
        client.read_tls(&mut &wire[..]).expect("to the client");
        client.process_new_packets().expect("a good server");
        (server, client)
    }

    /// What the client decrypts of `wire`.
    fn decrypt(client: &mut ClientConnection, wire: &[u8]) -> Vec<u8> {
        let mut wire = wire;
        let mut plain = Vec::new();
        while !wire.is_empty() {
            client.read_tls(&mut wire).expect("records");
            client.process_new_packets().expect("good records");
            let _ = client.reader().read_to_end(&mut plain);
        }
        plain
    }

    #[test]
    fn a_turns_frames_become_one_tls_write() {
        let (mut server, mut client) = pair();
        let mut batch = Batch::default();
        let mut out = WriteQueue::default();
        let mut spans = Vec::new();
        for i in 0..200 {
            let text = format!("{{\"type\":\"message\",\"n\":{i},\"text\":\"hello over TLS\"}}");
            let span = batch.text_frame(Bytes::from(text));
            out.push_span(span);
            spans.push(span);
        }
        out.push(Bytes::from_static(b"own bytes: a pong"));
        let sealed = batch.seal();
        let mut expected = Vec::new();
        for span in spans {
            expected.extend_from_slice(&sealed.slice(span).expect("sealed"));
        }
        expected.extend_from_slice(b"own bytes: a pong");
        let mut socket = Socket {
            room: usize::MAX,
            ..Socket::default()
        };
        assert!(flush(&mut out, sealed, &mut server, &mut socket).expect("flushed"));
        assert_eq!(out.len(), 0);
        assert_eq!(socket.writes, 1, "one write for the turn's 200 frames");
        assert_eq!(decrypt(&mut client, &socket.output), expected);
    }

    #[test]
    fn a_large_backlog_takes_one_write_per_buffer_and_resumes_where_the_socket_stopped() {
        let (mut server, mut client) = pair();
        let mut batch = Batch::default();
        let mut out = WriteQueue::default();
        let mut expected = Vec::new();
        for i in 0..300u32 {
            let chunk: Vec<u8> = (0..1000u32).map(|j| ((i + j) % 251) as u8).collect();
            expected.extend_from_slice(&chunk);
            out.push(Bytes::from(chunk));
        }
        let mut socket = Socket {
            room: 100_000,
            ..Socket::default()
        };
        // The socket fills up: the rest waits for WRITABLE.
        assert!(!flush(&mut out, batch.seal(), &mut server, &mut socket).expect("blocked"));
        assert!(server.wants_write() || out.len() > 0);
        let writes_before = socket.writes;
        socket.room = usize::MAX;
        assert!(flush(&mut out, batch.seal(), &mut server, &mut socket).expect("flushed"));
        assert!(!server.wants_write());
        // 300 kB through rustls's 64 KiB buffer: a handful of writes, not one per chunk.
        assert!(
            socket.writes <= 8,
            "{} writes for 300 kB ({writes_before} before the socket filled)",
            socket.writes
        );
        assert_eq!(decrypt(&mut client, &socket.output), expected);
    }

    #[test]
    fn garbage_instead_of_a_client_hello_is_an_error_with_an_alert() {
        let pem = {
            let made = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()])
                .expect("a certificate");
            Pem {
                cert: made.cert.pem().into_bytes(),
                key: made.signing_key.serialize_pem().into_bytes(),
            }
        };
        let mut server =
            ServerConnection::new(server_config(&pem).expect("config")).expect("session");
        let mut socket = Socket {
            input: b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
            room: usize::MAX,
            ..Socket::default()
        };
        let mut buf = [0; 64];
        let e = read(&mut server, &mut socket, &mut buf).expect_err("not TLS");
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
        // An alert record: content type 21.
        assert_eq!(socket.output.first(), Some(&21), "{:?}", socket.output);
    }

    #[test]
    fn reads_return_plaintext_then_eof() {
        let (mut server, mut client) = pair();
        client
            .writer()
            .write_all(b"GET / HTTP/1.1\r\n\r\n")
            .expect("plaintext");
        client.send_close_notify();
        let mut socket = Socket::default();
        client.write_tls(&mut socket.input).expect("records");
        let mut buf = [0; 8];
        let mut got = Vec::new();
        loop {
            match read(&mut server, &mut socket, &mut buf) {
                Ok(0) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(e) => panic!("{e}"),
            }
        }
        assert_eq!(got, b"GET / HTTP/1.1\r\n\r\n");
    }

    #[test]
    fn bad_files_say_what_is_wrong() {
        let made = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()])
            .expect("a certificate");
        let other = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()])
            .expect("a certificate");
        let cert = made.cert.pem().into_bytes();
        let key = made.signing_key.serialize_pem().into_bytes();
        let cases = [
            (Vec::new(), key.clone(), "no certificate"),
            (b"hello".to_vec(), key.clone(), "no certificate"),
            (cert.clone(), Vec::new(), "--tls-key"),
            (cert.clone(), cert.clone(), "--tls-key"),
            (
                cert.clone(),
                other.signing_key.serialize_pem().into_bytes(),
                "--tls-cert/--tls-key",
            ),
        ];
        for (cert, key, said) in cases {
            let e = server_config(&Pem { cert, key }).expect_err("refused");
            assert!(e.contains(said), "{e}");
        }
        assert!(server_config(&Pem { cert, key }).is_ok());
    }
}
