//! Accepting connections: the connection limit (a polite 503 while full, dropped at once when
//! flooded beyond the headroom) and a back-off when `accept` fails (EMFILE, ENFILE).

use std::io;
use std::time::Duration;

use mio::{Interest, Token};

use super::EventLoop;
use crate::connection::Conn;
use chat_adapter::refusals::{server_full, too_many_from_this_address};

/// After `accept` fails (EMFILE, ENFILE, ...), wait this long before trying again.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

impl EventLoop {
    pub(super) fn accept(&mut self) {
        if let Some(until) = self.accept_paused_until {
            if self.now.instant < until {
                return;
            }
            self.accept_paused_until = None;
        }
        loop {
            let (mut stream, peer) = match self.listener.accept() {
                Ok(accepted) => accepted,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    // Typically EMFILE/ENFILE. The pending connections stay in the kernel's
                    // backlog; retrying on every event would spin, so wait a moment.
                    log::error!("accept failed, retrying in {ACCEPT_BACKOFF:?}: {e}");
                    self.accept_paused_until = Some(self.now.instant + ACCEPT_BACKOFF);
                    return;
                }
            };
            self.metrics.connections_total += 1;
            let open = self.conns.len() - self.gone.len();
            let full = open >= self.max_connections;
            if full && open >= self.max_connections + self.refusal_headroom {
                // Flooded beyond even the room kept for polite refusals: drop at once.
                self.metrics.refused_full += 1;
                continue;
            }
            if let Err(e) = stream.set_nodelay(true) {
                log::debug!("{peer}: TCP_NODELAY: {e}");
            }
            let tls = match &self.tls {
                Some(tls) => match tls.session() {
                    Ok(session) => Some(session),
                    Err(e) => {
                        log::error!("{peer}: no TLS session: {e}");
                        continue;
                    }
                },
                None => None,
            };
            let entry = self.conns.vacant_entry();
            let key = entry.key();
            if let Err(e) =
                self.poll
                    .registry()
                    .register(&mut stream, Token(key), Interest::READABLE)
            {
                log::error!("{peer}: cannot register connection: {e}");
                continue;
            }
            let conn = entry.insert(Conn::new(stream, peer, tls));
            self.metrics.open_connections += 1;
            // A trusted proxy's connections are counted under the address it forwards for,
            // once the request says which (`upgrade.rs`).
            let over_ip_limit = !full
                && !self.clients.is_trusted_proxy(peer.ip())
                && if self.clients.admit(peer.ip()) {
                    conn.count_under(peer.ip());
                    false
                } else {
                    true
                };
            let tls = conn.is_tls();
            if (over_ip_limit || full) && tls {
                // A refusal over TLS would need a handshake first, the very work refusing
                // saves: the connection is closed at once instead.
                if over_ip_limit {
                    self.metrics.refused_per_ip += 1;
                } else {
                    self.metrics.refused_full += 1;
                }
                log::warn!("{peer}: refused (closed at once: TLS), too many connections");
                self.mark_gone(key);
            } else if over_ip_limit {
                self.metrics.refused_per_ip += 1;
                log::warn!(
                    peer:% = peer, status = 429u16;
                    "{peer}: refused, too many connections from this address"
                );
                self.respond(key, &too_many_from_this_address());
            } else if full {
                self.metrics.refused_full += 1;
                log::warn!(
                    peer:% = peer, status = 503u16;
                    "{peer}: refused, {} connections open", self.max_connections
                );
                self.respond(key, &server_full());
            } else {
                log::debug!(peer:% = peer; "{peer}: accepted");
                self.set_deadline(key, self.config.request_timeout);
            }
        }
    }
}

/// Raises the open-files soft limit to the hard limit and caps `wanted` connections to what it
/// allows. Returns the cap and the room kept for connections that linger to take a 503: both fit
/// in the limit together with the listener, the poller and the rest of the process.
pub fn connection_budget(wanted: usize) -> (usize, usize) {
    const DEFAULT_HEADROOM: usize = 256;
    let limit = match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => usize::try_from(limit).unwrap_or(usize::MAX),
        Err(e) => {
            log::warn!("cannot raise the open-files limit: {e}");
            return (wanted, DEFAULT_HEADROOM);
        }
    };
    // Descriptors the process needs besides connections (listener, poller, waker, signals,
    // stdio, log files of an embedding program...).
    let base = 32.min(limit / 2);
    let headroom = DEFAULT_HEADROOM.min((limit - base) / 8);
    let budget = (limit - base - headroom).max(1);
    if wanted > budget {
        log::warn!(
            "--max-connections {wanted} exceeds what the open-files limit ({limit}) allows: \
             serving at most {budget}"
        );
        (budget, headroom)
    } else {
        (wanted, headroom)
    }
}
