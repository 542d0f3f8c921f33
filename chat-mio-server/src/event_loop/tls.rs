//! Native TLS in the loop: a session for each accepted connection, the certificate reloaded on
//! SIGHUP, and the scheme a request came by (the Origin check's and the session cookie's).
//!
//! A reload reads the files on a thread of its own (file IO never runs on the loop) and hands
//! the new configuration back through the handoff. Open connections keep the configuration
//! their handshake used; new handshakes get the new one. A file that is missing or does not
//! parse, or a key that is not the certificate's, is logged and the old certificate stays.

use std::sync::Arc;

use rustls::{ServerConfig, ServerConnection};

use super::handoff::Handoff;
use super::{Control, EventLoop};
use crate::http::Request;
use crate::tls::{LoadTls, TlsFiles};

/// The TLS state of a server that serves TLS itself.
pub struct Tls {
    files: TlsFiles,
    /// What new handshakes use.
    current: Arc<ServerConfig>,
    /// Hands a reload's result back to the loop.
    control: Handoff<Control>,
    /// A reload's thread is reading the files.
    reloading: bool,
    /// A SIGHUP came while a reload was being read: read again once it is done, so the files'
    /// latest contents win.
    again: bool,
}

impl Tls {
    pub fn new(files: TlsFiles, current: Arc<ServerConfig>, control: Handoff<Control>) -> Self {
        Tls {
            files,
            current,
            control,
            reloading: false,
            again: false,
        }
    }

    /// A new session for an accepted connection, on the current certificate.
    pub fn session(&self) -> Result<Box<ServerConnection>, rustls::Error> {
        ServerConnection::new(Arc::clone(&self.current)).map(Box::new)
    }

    fn start_reload(&mut self) {
        if self.reloading {
            self.again = true;
            return;
        }
        self.reloading = true;
        let files = self.files.clone();
        let control = self.control.clone();
        let started = std::thread::Builder::new()
            .name("chat-tls-reload".into())
            .spawn(move || {
                // The loop is gone only when the server stopped: nothing left to reload.
                let _ = control.send(Control::TlsReloaded(files.load()));
            });
        if let Err(e) = started {
            self.reloading = false;
            log::error!("cannot reload the TLS certificate (no thread): {e}; keeping the old one");
        }
    }
}

impl EventLoop {
    /// SIGHUP: reload the certificate and key, off the loop.
    pub(super) fn reload_tls(&mut self) {
        match self.tls.as_mut() {
            Some(tls) => {
                log::info!("SIGHUP: reloading the TLS certificate");
                tls.start_reload();
            }
            None => log::info!("SIGHUP ignored: no TLS certificate to reload"),
        }
    }

    /// The reload thread's answer.
    pub(super) fn tls_reloaded(&mut self, result: Result<Arc<ServerConfig>, String>) {
        let Some(tls) = self.tls.as_mut() else {
            return;
        };
        tls.reloading = false;
        match result {
            Ok(config) => {
                tls.current = config;
                log::info!(
                    "TLS certificate reloaded from {}: new connections use it",
                    tls.files.cert.display()
                );
            }
            Err(e) => log::error!("TLS reload failed, keeping the old certificate: {e}"),
        }
        if std::mem::take(&mut tls.again) {
            tls.start_reload();
        }
    }

    /// The scheme `request` reached the server by: `https` over native TLS; from a trusted
    /// proxy, the one its `X-Forwarded-Proto` names (the first entry: the scheme the client
    /// used with the outermost proxy); otherwise `http`. The Origin check expects a page of
    /// that scheme, and the session cookie is `Secure` under `https`.
    pub(super) fn scheme(&self, key: usize, request: &Request) -> &'static str {
        let Some(conn) = self.conns.get(key) else {
            return "http";
        };
        self.clients.scheme(
            conn.peer().ip(),
            conn.is_tls(),
            request.forwarded_proto.as_deref(),
        )
    }
}
