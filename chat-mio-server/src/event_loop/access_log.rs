//! The access log (`--access-log`): one record of target `access` per HTTP answer and WebSocket
//! upgrade, with the peer, the request line (the target with secrets masked by
//! `Request::loggable_target`) and the status. Off, it costs one `log_enabled!` per request.

use super::EventLoop;
use crate::http::Request;
use crate::logging::ACCESS;

fn enabled() -> bool {
    log::log_enabled!(target: ACCESS, log::Level::Info)
}

impl EventLoop {
    /// A request head was parsed on `key`: remember its line for the answer's record.
    pub(super) fn note_request(&mut self, key: usize, request: &Request) {
        if !enabled() {
            return;
        }
        if let Some(conn) = self.conns.get_mut(key) {
            conn.request_line = Some(Box::new((
                request.method.clone(),
                request.loggable_target(),
            )));
        }
    }

    /// `key` was answered with `status` (for an upgrade, 101 as `user` in `room`).
    pub(super) fn access(&mut self, key: usize, status: u16, who: Option<(&str, &str)>) {
        if !enabled() {
            return;
        }
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        let (method, path) = conn
            .request_line
            .take()
            .map_or_else(|| ("-".to_owned(), "-".to_owned()), |line| *line);
        let peer = conn.peer();
        match who {
            Some((user, room)) => log::info!(
                target: ACCESS,
                peer:% = peer, method = method.as_str(), path = path.as_str(), status = status,
                user = user, room = room;
                "{peer} \"{method} {path}\" {status} {user}@{room}"
            ),
            None => log::info!(
                target: ACCESS,
                peer:% = peer, method = method.as_str(), path = path.as_str(), status = status;
                "{peer} \"{method} {path}\" {status}"
            ),
        }
    }
}
