//! Built-in accounts (`--auth accounts`) on the loop: `POST /login`, `POST /logout`,
//! `GET /session`, and the session check of a WebSocket upgrade. Nothing here waits: the
//! account lookup and the session table are asked of the storage thread
//! (`chat_store::AccountQuery`), the password is checked on a `chat_auth::Hasher` thread, and
//! both answer through the handoff inbox. Meanwhile the connection is parked
//! (`State::Http::awaiting`): nothing more is read from it and its later requests wait.
//!
//! ```text
//!  POST /login ─► cross-site? 403 ─► throttled? 429 ─► store: FindUser ─► hasher: verify
//!        ─► ok: store: CreateSession ─► 303 + Set-Cookie      not ok: 401 (and counted)
//!  POST /logout ─► store: EndSession ─► 303 + a Set-Cookie that clears it
//!  GET /session ─► cookie's MAC ok? ─► store: FindSession ─► 200 {"user","admin"} or 401
//!  GET /ws/{name} ─► cookie's MAC ok? ─► store: FindSession ─► its user is {name}? ─► 101
//! ```
//!
//! The cookie is `chat_session=ID.MAC` (`chat_auth::SessionKey`): a cookie whose MAC fails is
//! refused without asking the store; one that verifies still needs a live row in `sessions`
//! (so a cookie replayed after logout, after its user was removed, or after it expired is
//! refused).

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU64;
use std::time::Duration;

use chat_auth::{HashDone, Hasher, LoginThrottle, Secret, SessionKey};
use chat_store::{AccountAnswer, AccountQuery};
use serde_json::json;

use super::EventLoop;
use crate::connection::State;
use crate::handshake::{origin_allowed, Accepted};
use crate::http::{Request, Response};

/// Largest login body read (a name and a password of at most 1 KiB, form-encoded).
pub(super) const MAX_LOGIN_BODY: usize = 4 * 1024;

/// What `--auth accounts` keeps on the loop.
pub struct Accounts {
    key: SessionKey,
    hasher: Hasher,
    throttle: LoginThrottle,
    lifetime: Duration,
    /// Requests waiting for the store or the hasher, by ticket.
    waiting: HashMap<u64, Waiting>,
    next_ticket: u64,
}

impl Accounts {
    pub fn new(key: SessionKey, hasher: Hasher, lifetime: Duration) -> Accounts {
        Accounts {
            key,
            hasher,
            throttle: LoginThrottle::new(chat_auth::ThrottleConfig::default()),
            lifetime,
            waiting: HashMap::new(),
            next_ticket: 1,
        }
    }

    fn ticket(&mut self) -> u64 {
        let ticket = self.next_ticket;
        self.next_ticket += 1;
        ticket
    }
}

/// A parked request: its connection and what it waits for.
struct Waiting {
    key: usize,
    step: Step,
}

/// How the answer is to be given.
struct Reply {
    keep_alive: bool,
    /// The cookie gets `Secure` (the client reached us over TLS: native, or through a trusted
    /// proxy that says so).
    secure: bool,
}

enum Step {
    /// A login: the account lookup, then the password check.
    Login {
        name: String,
        password: Secret,
        ip: IpAddr,
        reply: Reply,
    },
    /// A login that succeeded: the new session is being stored.
    Storing {
        user: String,
        cookie: String,
        reply: Reply,
    },
    /// An upgrade: whose session the cookie names.
    Upgrade {
        accepted: Box<Accepted>,
        forwarded_for: Option<String>,
        id: String,
    },
    /// `GET /session`.
    Who { reply: Reply },
    /// `POST /logout` of session `id`.
    Logout { reply: Reply, id: String },
}

/// What became of a request given to [`EventLoop::account_request`].
pub(super) enum Handled {
    /// Not an accounts request.
    No,
    /// Answered.
    Answered,
    /// Parked until another thread answers.
    Parked,
}

impl EventLoop {
    /// Whether the server runs with built-in accounts.
    pub(super) fn accounts_on(&self) -> bool {
        self.accounts.is_some()
    }

    /// Whether `request` carries a body this file reads (a login form).
    pub(super) fn is_login(&self, request: &Request) -> bool {
        self.accounts_on() && request.path() == "/login"
    }

    /// Answers or parks `/login`, `/logout` and `/session` (`body`: the login form).
    pub(super) fn account_request(
        &mut self,
        key: usize,
        request: &Request,
        body: &[u8],
    ) -> Handled {
        let path = request.path();
        let mine = match path {
            "/session" => true,
            "/login" | "/logout" => self.accounts_on(),
            _ => false,
        };
        if !mine {
            return Handled::No;
        }
        let reply = Reply {
            keep_alive: request.keep_alive,
            secure: self.scheme(key, request) == "https",
        };
        let method = request.method.as_str();
        let answer = match (path, method) {
            ("/session", "GET" | "HEAD") => return self.session_info(key, request, reply),
            ("/session", _) => Err(method_not_allowed("GET")),
            (_, "POST") if self.cross_site(key, request) => Err(json_error(
                403,
                "a login or logout from another site is refused",
            )),
            ("/login", "POST") => return self.login(key, request, body, reply),
            ("/logout", "POST") => return self.logout(key, request, reply),
            _ => Err(method_not_allowed("POST")),
        };
        let response = match answer {
            Ok(response) | Err(response) => response,
        };
        self.answer_now(key, request, response.keep_alive(reply.keep_alive));
        Handled::Answered
    }

    fn answer_now(&mut self, key: usize, request: &Request, response: Response<'static>) {
        log::info!(
            "{}: {} {} -> {}",
            self.conns[key].peer(),
            request.method,
            request.path(),
            response.status
        );
        self.respond(key, &response);
    }

    /// A browser's request from another site's page (login CSRF): its `Sec-Fetch-Site` says
    /// so, or its `Origin` is neither ours nor allowed. A request with neither header is not
    /// a browser's (curl), and has no ambient cookie to abuse.
    fn cross_site(&self, key: usize, request: &Request) -> bool {
        let site = request.sec_fetch_site.as_deref().unwrap_or("");
        site.eq_ignore_ascii_case("cross-site")
            || site.eq_ignore_ascii_case("same-site")
            || !origin_allowed(
                request.origin.as_deref(),
                request.host.as_deref(),
                self.scheme(key, request),
                &self.config.allowed_origins,
            )
    }

    /// The session id of the request's cookie, if its MAC is ours.
    fn session_of(&self, request: &Request) -> Option<String> {
        let accounts = self.accounts.as_ref()?;
        accounts
            .key
            .verify_header(request.cookie.as_ref()?.expose())
    }

    fn session_info(&mut self, key: usize, request: &Request, reply: Reply) -> Handled {
        let mode = match self.config.auth {
            crate::AuthMode::Open => "open",
            crate::AuthMode::Token => "token",
            crate::AuthMode::Accounts => "accounts",
        };
        if !self.accounts_on() {
            let response = json_response(200, json!({ "auth": mode }));
            self.respond(key, &response.keep_alive(reply.keep_alive));
            return Handled::Answered;
        }
        match self.session_of(request) {
            Some(id) => self.ask_store(key, find_session(id, self.now_ms()), Step::Who { reply }),
            None => {
                let response = not_logged_in().keep_alive(reply.keep_alive);
                self.respond(key, &response);
                Handled::Answered
            }
        }
    }

    fn login(&mut self, key: usize, request: &Request, body: &[u8], reply: Reply) -> Handled {
        let mut name = None;
        let mut password = None;
        for (field, value) in form_urlencoded::parse(body) {
            match field.as_ref() {
                "name" | "username" => name = Some(value.into_owned()),
                "password" => password = Some(Secret::new(value.into_owned())),
                _ => {}
            }
        }
        let (Some(name), Some(password)) = (name, password) else {
            let response = json_error(400, "the form needs a name and a password");
            self.answer_now(key, request, response.keep_alive(reply.keep_alive));
            return Handled::Answered;
        };
        if let Err(e) = chat_store::accounts::check_name(&name) {
            let response = json_error(400, &e.to_string());
            self.answer_now(key, request, response.keep_alive(reply.keep_alive));
            return Handled::Answered;
        }
        let ip = self.clients.client_ip(
            self.conns[key].peer().ip(),
            request.forwarded_for.as_deref(),
        );
        let now = self.now.instant;
        let Some(accounts) = self.accounts.as_mut() else {
            return Handled::No;
        };
        if let Err(wait) = accounts.throttle.check(ip, &name, now) {
            self.metrics.logins_throttled += 1;
            log::warn!(client:% = ip, user = name.as_str(); "{ip}: login as {name:?} throttled");
            let response = json_error(429, "too many failed logins: wait before trying again")
                .header("Retry-After", wait.as_secs_ceil().to_string())
                .keep_alive(reply.keep_alive);
            self.respond(key, &response);
            return Handled::Answered;
        }
        let query = AccountQuery::FindUser { name: name.clone() };
        self.ask_store(
            key,
            query,
            Step::Login {
                name,
                password,
                ip,
                reply,
            },
        )
    }

    fn logout(&mut self, key: usize, request: &Request, reply: Reply) -> Handled {
        match self.session_of(request) {
            Some(id) => {
                let query = AccountQuery::EndSession { id: id.clone() };
                self.ask_store(key, query, Step::Logout { reply, id })
            }
            None => {
                // No live cookie: nothing to end, but the browser forgets what it has.
                self.respond(key, &logged_out(&reply));
                Handled::Answered
            }
        }
    }

    /// Accounts mode: the upgrade waits for the cookie's session to be looked up.
    pub(super) fn upgrade_with_session(
        &mut self,
        key: usize,
        accepted: Accepted,
        request: &Request,
    ) {
        let Some(id) = self.session_of(request) else {
            let reason = "this server needs a login: POST /login sets the session cookie\n";
            self.refuse_upgrade(key, &accepted.user, 401, reason);
            return;
        };
        let now_ms = self.now_ms();
        self.ask_store(
            key,
            find_session(id.clone(), now_ms),
            Step::Upgrade {
                accepted: Box::new(accepted),
                forwarded_for: request.forwarded_for.clone(),
                id,
            },
        );
    }

    fn now_ms(&self) -> i64 {
        self.now.wall.timestamp_millis()
    }

    /// Sends `query` to the storage thread and parks the connection until it answers.
    fn ask_store(&mut self, key: usize, query: AccountQuery, step: Step) -> Handled {
        let (Some(accounts), Some(store)) = (self.accounts.as_mut(), self.store.as_ref()) else {
            let response = json_error(503, "the account store is not running");
            self.respond(key, &response);
            return Handled::Answered;
        };
        let ticket = accounts.ticket();
        store.account(ticket, query);
        accounts.waiting.insert(ticket, Waiting { key, step });
        self.park(key, ticket);
        Handled::Parked
    }

    fn park(&mut self, key: usize, ticket: u64) {
        if let Some(State::Http { awaiting, .. }) = self.conns.get_mut(key).map(|c| &mut c.state) {
            // Tickets start at 1.
            *awaiting = NonZeroU64::new(ticket);
        }
        // A login queued behind others may take a while; request_timeout bounds it.
        self.set_deadline(key, self.config.request_timeout);
    }

    /// The parked request of ticket `ticket`, if its connection still waits for it.
    fn unpark(&mut self, ticket: u64) -> Option<Waiting> {
        let waiting = self.accounts.as_mut()?.waiting.remove(&ticket)?;
        let conn = self.conns.get_mut(waiting.key)?;
        match &mut conn.state {
            State::Http { awaiting, .. } if awaiting.map(NonZeroU64::get) == Some(ticket) => {
                *awaiting = None;
                Some(waiting)
            }
            // The connection timed out or went, and the slot may have been reused.
            _ => None,
        }
    }

    /// Parks `waiting` again under the same ticket (the next step of a login).
    fn repark(&mut self, ticket: u64, waiting: Waiting) {
        let key = waiting.key;
        if let Some(accounts) = self.accounts.as_mut() {
            accounts.waiting.insert(ticket, waiting);
            self.park(key, ticket);
        }
    }

    /// The storage thread answered an account query.
    pub(super) fn account_answered(&mut self, ticket: u64, result: Result<AccountAnswer, String>) {
        let Some(Waiting { key, step }) = self.unpark(ticket) else {
            return;
        };
        let failed = |e: &str| {
            log::error!("account store: {e}");
            json_error(503, "the account store failed; try again").header("Retry-After", "1")
        };
        match (step, result) {
            (
                Step::Login {
                    name,
                    password,
                    ip,
                    reply,
                },
                Ok(AccountAnswer::User(account)),
            ) => {
                let Some(accounts) = self.accounts.as_ref() else {
                    return;
                };
                let queued = match account {
                    Some(account) => accounts.hasher.verify(ticket, password, account.phc),
                    // The same work for a name that does not exist: the answer's timing does
                    // not say which names do.
                    None => accounts.hasher.verify_unknown_user(ticket, password),
                };
                match queued {
                    Ok(()) => self.repark(
                        ticket,
                        Waiting {
                            key,
                            step: Step::Login {
                                name,
                                password: Secret::default(),
                                ip,
                                reply,
                            },
                        },
                    ),
                    Err(busy) => {
                        self.metrics.logins_busy += 1;
                        let response = json_error(503, &busy.to_string())
                            .header("Retry-After", "1")
                            .keep_alive(reply.keep_alive);
                        self.finish(key, response);
                    }
                }
            }
            (
                Step::Storing {
                    user,
                    cookie,
                    reply,
                },
                Ok(AccountAnswer::SessionCreated),
            ) => {
                let Some(accounts) = self.accounts.as_ref() else {
                    return;
                };
                log::info!(user = user.as_str(); "{user:?} logged in");
                self.metrics.logins_ok += 1;
                let set = chat_auth::set_cookie_header(&cookie, accounts.lifetime, reply.secure);
                let response = see_other("/")
                    .header("Set-Cookie", set)
                    .keep_alive(reply.keep_alive);
                self.finish(key, response);
            }
            (Step::Who { reply }, Ok(AccountAnswer::Session(found))) => {
                let response = match found {
                    Some(session) => json_response(
                        200,
                        json!({"auth": "accounts", "user": session.user, "admin": session.admin}),
                    ),
                    None => not_logged_in(),
                };
                self.finish(key, response.keep_alive(reply.keep_alive));
            }
            (Step::Logout { reply, id }, Ok(AccountAnswer::SessionEnded)) => {
                self.close_logged_out(&id);
                self.finish(key, logged_out(&reply));
            }
            (
                Step::Upgrade {
                    accepted,
                    forwarded_for,
                    id,
                },
                Ok(AccountAnswer::Session(found)),
            ) => self.session_checked(key, *accepted, forwarded_for, id, found),
            (Step::Upgrade { accepted, .. }, Err(e)) => {
                log::error!("account store: {e}");
                self.refuse_upgrade(key, &accepted.user, 503, "the account store failed\n");
            }
            (Step::Login { reply, .. } | Step::Storing { reply, .. }, Err(e))
            | (Step::Who { reply } | Step::Logout { reply, .. }, Err(e)) => {
                let response = failed(&e).keep_alive(reply.keep_alive);
                self.finish(key, response);
            }
            (_, Ok(answer)) => {
                log::error!("account store: an answer that does not fit its question: {answer:?}");
                self.finish(key, json_error(500, "internal error"));
            }
        }
    }

    /// A hasher thread checked a password.
    pub(super) fn hash_done(&mut self, done: HashDone) {
        let HashDone::Verified { ticket, ok } = done else {
            return; // the server never asks for a hash
        };
        let Some(Waiting { key, step }) = self.unpark(ticket) else {
            return;
        };
        let Step::Login {
            name, ip, reply, ..
        } = step
        else {
            return;
        };
        let now = self.now.instant;
        let now_ms = self.now_ms();
        let Some(accounts) = self.accounts.as_mut() else {
            return;
        };
        if !ok {
            accounts.throttle.failed(ip, &name, now);
            self.metrics.logins_failed += 1;
            log::info!(client:% = ip, user = name.as_str(); "{ip}: login as {name:?} failed");
            let response = json_error(401, "wrong name or password").keep_alive(reply.keep_alive);
            self.finish(key, response);
            return;
        }
        accounts.throttle.succeeded(&name);
        let id = match chat_auth::session_id() {
            Ok(id) => id,
            Err(e) => {
                log::error!("login: {e}");
                self.finish(key, json_error(503, "cannot make a session now"));
                return;
            }
        };
        let cookie = accounts.key.sign(&id);
        let lifetime_ms = i64::try_from(accounts.lifetime.as_millis()).unwrap_or(i64::MAX);
        let query = AccountQuery::CreateSession {
            id,
            user: name.clone(),
            created_ms: now_ms,
            expires_ms: now_ms.saturating_add(lifetime_ms),
        };
        let step = Step::Storing {
            user: name,
            cookie,
            reply,
        };
        self.ask_store(key, query, step);
    }

    /// Answers a parked request and goes on with the requests that waited behind it.
    fn finish(&mut self, key: usize, response: Response<'static>) {
        let keep_alive = response.keep_alive;
        self.respond(key, &response);
        if keep_alive {
            self.set_deadline(key, self.config.keep_alive_timeout);
            self.read_http(key);
        }
    }

    /// An upgrade's session was looked up: it goes on as that session's user, or is refused.
    fn session_checked(
        &mut self,
        key: usize,
        accepted: Accepted,
        forwarded_for: Option<String>,
        id: String,
        found: Option<chat_store::SessionUser>,
    ) {
        let Some(session) = found else {
            let reason = "the session has ended (logged out or expired): log in again\n";
            self.refuse_upgrade(key, &accepted.user, 401, reason);
            return;
        };
        if session.user != accepted.user {
            let reason = format!(
                "this session is {:?}'s, not {:?}'s\n",
                session.user, accepted.user
            );
            self.refuse_upgrade(key, &accepted.user, 403, &reason);
            return;
        }
        let room = accepted.room.as_str();
        if let Some(why) = crate::RoomAccess::refusal(&self.config.room_access, room, &session.user)
        {
            self.refuse_upgrade(key, &accepted.user, 403, &why);
            return;
        }
        if let Some(why) = self.banned(&accepted.user) {
            self.refuse_upgrade(key, &accepted.user, 403, &why);
            return;
        }
        // The connection ends with the session: closed with 4001 when it expires.
        let left_ms = session.expires_ms.saturating_sub(self.now_ms()).max(0);
        let expires = self.now.instant + Duration::from_millis(left_ms.unsigned_abs());
        self.admit(
            key,
            accepted,
            forwarded_for.as_deref(),
            Some(expires),
            session.admin,
        );
        if let State::WebSocket { login, .. } = &mut self.conns[key].state {
            *login = Some(id.into_boxed_str());
        }
    }

    /// A session was logged out: the connections it opened are closed as if it had expired
    /// (4001), so a logout on one tab ends the others that share its cookie.
    fn close_logged_out(&mut self, id: &str) {
        let clients: Vec<_> = self
            .conns
            .iter()
            .filter_map(|(_, conn)| match &conn.state {
                State::WebSocket { client, login, .. } if login.as_deref() == Some(id) => {
                    Some(*client)
                }
                _ => None,
            })
            .collect();
        let at = self.now.instant;
        for client in clients {
            self.feed(chat_protocol::Input::Expires { client, at });
        }
    }
}

/// A `FindSession` for `id` now.
fn find_session(id: String, now_ms: i64) -> AccountQuery {
    AccountQuery::FindSession { id, now_ms }
}

fn json_response(status: u16, value: serde_json::Value) -> Response<'static> {
    Response::shared(status, bytes::Bytes::from(value.to_string()))
        .header("Content-Type", "application/json")
        .header("Cache-Control", "no-store")
}

fn json_error(status: u16, message: &str) -> Response<'static> {
    json_response(status, json!({ "error": message }))
}

fn method_not_allowed(allow: &'static str) -> Response<'static> {
    json_error(405, &format!("use {allow}")).header("Allow", allow)
}

fn not_logged_in() -> Response<'static> {
    json_response(401, json!({"auth": "accounts", "error": "not logged in"}))
}

fn see_other(location: &'static str) -> Response<'static> {
    Response::new(303, b"")
        .header("Location", location)
        .header("Cache-Control", "no-store")
}

fn logged_out(reply: &Reply) -> Response<'static> {
    see_other("/")
        .header("Set-Cookie", chat_auth::clear_cookie_header(reply.secure))
        .keep_alive(reply.keep_alive)
}
