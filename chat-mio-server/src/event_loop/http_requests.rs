//! Reading request heads and answering them: static files, health, metrics, refusals. An
//! upgrade request is handed to `upgrade.rs`.

use super::{accounts, api, EventLoop, CLOSE_LINGER};
use crate::connection::{HeadRead, State};
use crate::http::{self, ParseError, Response};
use crate::routes::{route, Ctx, Route};

use crate::http::MAX_REQUEST_HEAD;

impl EventLoop {
    pub(super) fn read_http(&mut self, key: usize) {
        let conn = &mut self.conns[key];
        if matches!(
            conn.state,
            State::Http {
                awaiting: Some(_),
                ..
            }
        ) {
            // Parked (`accounts.rs`): read on once the answer came.
            return;
        }
        if conn.queued() > self.config.max_outbound {
            // Answers pile up unread: read no further requests until they drain (the flush
            // resumes reading).
            conn.pause_reading();
            return;
        }
        let was_empty = matches!(&conn.state, State::Http { head, .. } if head.is_empty());
        let limit = match &self.conns[key].state {
            State::Http { head, .. } => self.read_limit(head),
            _ => MAX_REQUEST_HEAD,
        };
        let conn = &mut self.conns[key];
        let read = match conn.read_head(&mut self.scratch, limit, &mut self.metrics.bytes_in) {
            Ok(read) => read,
            Err(_) => {
                self.mark_gone(key);
                return;
            }
        };
        self.answer_requests(key, was_empty);
        let Some(conn) = self.conns.get_mut(key).filter(|c| !c.is_gone()) else {
            return;
        };
        match read {
            HeadRead::Eof => {
                // A half-close (`nc -N`): answer what came, then end.
                let was_http = matches!(conn.state, State::Http { .. });
                conn.peer_finished();
                if was_http {
                    self.set_deadline(key, CLOSE_LINGER);
                }
                self.mark_dirty(key);
            }
            // More may wait in the socket, and no new readiness event will say so.
            HeadRead::Full if matches!(conn.state, State::Http { .. }) => self.backlog.push(key),
            HeadRead::Full | HeadRead::Drained => {}
        }
    }

    /// How much of a connection's input may be buffered: a request head, or, when the buffer
    /// starts with the complete head of an API request, that head and its body.
    fn read_limit(&self, head: &[u8]) -> usize {
        if !self.api_enabled() && !self.accounts_on() {
            return MAX_REQUEST_HEAD;
        }
        let max_body = |request: &http::Request| {
            if self.api_enabled() && api::is_api(request.path()) {
                api::MAX_BODY
            } else if self.is_login(request) {
                accounts::MAX_LOGIN_BODY
            } else {
                0
            }
        };
        match http::parse(head) {
            Ok(Some((request, len))) => {
                let body = request
                    .content_length
                    .and_then(|n| usize::try_from(n).ok())
                    .unwrap_or(0)
                    .min(max_body(&request));
                (len + body).max(MAX_REQUEST_HEAD)
            }
            _ => MAX_REQUEST_HEAD,
        }
    }

    /// Parses and answers every complete request head in the buffer.
    fn answer_requests(&mut self, key: usize, was_empty: bool) {
        let api_on = self.api_enabled();
        loop {
            let conn = &mut self.conns[key];
            let State::Http { head, awaiting, .. } = &mut conn.state else {
                return;
            };
            if head.is_empty() || awaiting.is_some() {
                // A parked request answers first; those behind it wait (`accounts.rs`).
                return;
            }
            let (request, len) = match http::parse(head) {
                Ok(Some(parsed)) => parsed,
                Ok(None) if head.len() >= MAX_REQUEST_HEAD => {
                    self.refuse(key, 431, "request head too large\n");
                    return;
                }
                Ok(None) => {
                    if was_empty {
                        // The first bytes of a head: it has request_timeout to complete.
                        self.set_deadline(key, self.config.request_timeout);
                    }
                    return;
                }
                Err(ParseError::TooManyHeaders) => {
                    self.refuse(key, 431, "too many header fields\n");
                    return;
                }
                Err(ParseError::Malformed) => {
                    self.refuse(key, 400, "malformed HTTP request\n");
                    return;
                }
            };
            self.note_request(key, &request);
            let is_api = api_on && api::is_api(request.path());
            let is_login = self.is_login(&request);
            let mut body = Vec::new();
            if is_api || is_login {
                let max = if is_api {
                    api::MAX_BODY
                } else {
                    accounts::MAX_LOGIN_BODY
                };
                let wanted = match (request.has_body, request.content_length) {
                    (false, _) => 0,
                    (true, Some(n)) => usize::try_from(n).unwrap_or(usize::MAX),
                    (true, None) => {
                        self.refuse(key, 411, "a request body needs a Content-Length\n");
                        return;
                    }
                };
                if wanted > max {
                    self.refuse(key, 413, "the request body is too large\n");
                    return;
                }
                let State::Http { head, .. } = &mut self.conns[key].state else {
                    return;
                };
                if head.len() < len + wanted {
                    // The body is on its way; request_timeout bounds how long it may take.
                    if was_empty {
                        self.set_deadline(key, self.config.request_timeout);
                    }
                    return;
                }
                body = head[len..len + wanted].to_vec();
            }
            let State::Http { head, .. } = &mut self.conns[key].state else {
                return;
            };
            let rest = head.split_off(len + body.len());
            drop(std::mem::replace(head, rest));
            if is_api {
                let response = self.answer_api(&request, &body);
                let (status, keep_alive) = (response.status, response.keep_alive);
                let peer = self.conns[key].peer();
                log::info!(
                    peer:% = peer, method = request.method.as_str(),
                    path = request.loggable_target().as_str(), status = status;
                    "{peer}: API {} {} -> {status}",
                    request.method,
                    request.loggable_target()
                );
                self.respond(key, &response);
                if keep_alive {
                    self.after_keep_alive_answer(key);
                    continue;
                }
                return;
            }
            match self.account_request(key, &request, &body) {
                accounts::Handled::No => {}
                accounts::Handled::Parked => return,
                accounts::Handled::Answered if request.keep_alive => {
                    self.after_keep_alive_answer(key);
                    continue;
                }
                accounts::Handled::Answered => return,
            }
            drop(body);
            let scheme = self.scheme(key, &request);
            let conn = &mut self.conns[key];
            // The core counts what only it can see.
            self.metrics.rate_limited = self.core.messages_rate_limited();
            let store_stats = self.store.as_ref().map(|s| s.stats());
            let draining = self.drain_deadline.is_some();
            let render_metrics = || {
                self.metrics
                    .render(self.now.instant, draining, store_stats.as_deref())
            };
            let ctx = Ctx {
                store: store_stats.as_deref(),
                assets: &self.assets,
                allowed_origins: &self.config.allowed_origins,
                scheme,
                render_metrics: &render_metrics,
                draining,
                cluster_down: self.cluster.is_some() && !self.cluster_links.up(),
                now: self.now.instant,
            };
            match route(&request, &ctx) {
                Route::Respond(response) => {
                    let (status, keep_alive) = (response.status, response.keep_alive);
                    let (bytes, body) = response.encode();
                    log::debug!(
                        peer:% = conn.peer(), method = request.method.as_str(),
                        path = request.loggable_target().as_str(), status = status;
                        "{}: {} {} -> {status}",
                        conn.peer(),
                        request.method,
                        request.loggable_target()
                    );
                    self.metrics.http_response(status);
                    self.access(key, status, None);
                    let conn = &mut self.conns[key];
                    conn.queue_response(bytes, body, !keep_alive);
                    self.mark_dirty(key);
                    if !keep_alive {
                        self.set_deadline(key, CLOSE_LINGER);
                        return;
                    }
                    let idle = matches!(&self.conns[key].state, State::Http { head, .. } if head.is_empty());
                    let timeout = if idle {
                        self.config.keep_alive_timeout
                    } else {
                        self.config.request_timeout
                    };
                    self.set_deadline(key, timeout);
                }
                Route::Upgrade(accepted) if self.accounts_on() => {
                    self.upgrade_with_session(key, accepted, &request);
                    return;
                }
                Route::Upgrade(accepted) => {
                    self.upgrade(key, accepted, request.forwarded_for.as_deref());
                    return;
                }
            }
        }
    }

    /// After a keep-alive answer: the connection waits for its next request.
    fn after_keep_alive_answer(&mut self, key: usize) {
        let conn = &self.conns[key];
        let idle = matches!(&conn.state, State::Http { head, .. } if head.is_empty());
        let timeout = if idle {
            self.config.keep_alive_timeout
        } else {
            self.config.request_timeout
        };
        self.set_deadline(key, timeout);
    }

    /// Answers a request we cannot serve and closes the connection after the answer.
    pub(super) fn refuse(&mut self, key: usize, status: u16, reason: &str) {
        if let Some(conn) = self.conns.get(key) {
            log::debug!(
                peer:% = conn.peer(), status = status;
                "{}: refused with {status}: {}",
                conn.peer(),
                reason.trim_end()
            );
        }
        self.respond(key, &Response::text(status, reason).keep_alive(false));
    }

    pub(super) fn respond(&mut self, key: usize, response: &Response<'_>) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        let (bytes, body) = response.encode();
        conn.queue_response(bytes, body, !response.keep_alive);
        self.metrics.http_response(response.status);
        self.access(key, response.status, None);
        self.set_deadline(key, CLOSE_LINGER);
        self.mark_dirty(key);
    }
}
