//! The WebSocket upgrade: a request the router accepted (`handshake.rs` validated it) gets its `101`,
//! the connection switches to WebSocket, and the core hears `Input::Connect`.

use chat_protocol::ClientId;

use super::EventLoop;
use crate::connection::State;
use crate::handshake::Accepted;

impl EventLoop {
    pub(super) fn upgrade(&mut self, key: usize, accepted: Accepted, forwarded_for: Option<&str>) {
        let identity = self
            .authenticate(
                accepted.token.as_ref(),
                &accepted.user,
                accepted.room.as_str(),
            )
            .and_then(|identity| match identity {
                // Token mode: a banned user is refused until the ban ends.
                Some(_) => match self.banned(&accepted.user) {
                    Some(why) => Err((403, why)),
                    None => Ok(identity),
                },
                None => Ok(None),
            });
        match identity {
            Ok(identity) => {
                let expires = identity.as_ref().map(|(_, expires)| *expires);
                let admin = identity.is_some_and(|(identity, _)| identity.admin);
                self.admit(key, accepted, forwarded_for, expires, admin);
            }
            Err((status, reason)) => self.refuse_upgrade(key, &accepted.user, status, &reason),
        }
    }

    /// Refuses an upgrade as `user` with `status` and `reason` (the body), and closes.
    pub(super) fn refuse_upgrade(&mut self, key: usize, user: &str, status: u16, reason: &str) {
        let response = chat_adapter::tokens::refused_upgrade(status, reason, self.tokens.is_some());
        let peer = self.conns[key].peer();
        log::info!(
            peer:% = peer, user = user, status = status;
            "{peer} refused as {user:?}: {}",
            reason.trim_end()
        );
        self.respond(key, &response);
    }

    /// The client is who it says (or need not say): the per-address limit, then the `101` and
    /// `Input::Connect`; a token's expiry and an admin's rights go to the core too.
    pub(super) fn admit(
        &mut self,
        key: usize,
        accepted: Accepted,
        forwarded_for: Option<&str>,
        expires: Option<std::time::Instant>,
        admin: bool,
    ) {
        let conn = &mut self.conns[key];
        let client_ip = self.clients.client_ip(conn.peer().ip(), forwarded_for);
        if conn.counted_ip().is_none() {
            // A trusted proxy's connection: counted under the client it forwards for.
            if !self.clients.admit(client_ip) {
                self.metrics.refused_per_ip += 1;
                log::warn!(
                    peer:% = conn.peer(), client:% = client_ip, status = 429u16;
                    "{client_ip} (via {}): refused, too many connections from this address",
                    conn.peer()
                );
                self.respond(key, &chat_adapter::refusals::too_many_from_this_address());
                return;
            }
            conn.count_under(client_ip);
        }
        let conn = &mut self.conns[key];
        let State::Http { head, .. } = &mut conn.state else {
            return;
        };
        // Bytes after the request head: frames a client sent before it saw our answer.
        let leftover = std::mem::take(head);
        let (response, _) = accepted.response().encode();
        conn.queue_response(response, None, false);
        let client = ClientId(key as u64);
        let (user, room) = (accepted.user.as_str(), accepted.room.as_str());
        if client_ip == conn.peer().ip() {
            log::info!(
                peer:% = conn.peer(), user = user, room = room;
                "{user} ({}) connected", conn.peer()
            );
        } else {
            log::info!(
                peer:% = conn.peer(), client:% = client_ip, user = user, room = room;
                "{user} ({client_ip} via {}) connected",
                conn.peer()
            );
        }
        conn.upgrade(client, leftover, &self.ws_config);
        conn.deadline = None;
        self.metrics.http_response(101);
        self.access(key, 101, Some((&accepted.user, accepted.room.as_str())));
        self.metrics.websocket_open += 1;
        self.metrics.websockets_total += 1;
        self.mark_dirty(key);
        for input in accepted.connect_inputs(client, expires, admin) {
            self.feed(input);
        }
        // Frames that came with the request head are in tungstenite's buffer already; the
        // socket may hold more.
        self.read_ws(key);
    }
}
