//! Identity for the chat server: signed tokens, password hashes, session cookies and login
//! throttling, as plain types that any driver can call.
//!
//! `chat-auth` owns the checks of issue 11 and nothing around them: it verifies a token and
//! says who it is for ([`TokenVerifier`]), hashes and verifies passwords on threads of its own
//! ([`Hasher`]), signs and verifies session cookies and builds their headers ([`SessionKey`]),
//! and counts failed logins ([`LoginThrottle`]). It knows nothing of sockets, HTTP parsing, mio,
//! tokio or the chat core (`chat-protocol`), stores nothing on disk, and never logs (it has no
//! logging at all): the mio driver and a later tokio adapter use it unchanged.
//!
//! # Who calls it, and when
//!
//! ```text
//!  start-up        TokenVerifier::new(TokenKeys)        refuses no key, a weak secret, a bad PEM
//!                  SessionKey::generate() / from_bytes
//!                  Hasher::start(threads, notify) ──► spawns "chat-auth-hash-N"
//!
//!  upgrade (loop)  verifier.verify(token, now_unix) ──► Identity { user, expires_at, rooms, admin }
//!                  identity.may_join(room)               (microseconds: inline, see Costs)
//!                  key.verify_header(cookie_header) ──► session id ──► the driver's session store
//!
//!  login (loop)    throttle.check(ip, account, now)  ── Err(RetryAfter) ──► 429 + Retry-After
//!                  hasher.verify(ticket, password, phc)     ── Err(Busy) ──► 503 at once
//!                  hasher.verify_unknown_user(ticket, pw)   (no such account: same cost)
//!                        │ bounded queue (64)
//!                        ▼
//!  hasher thread   argon2id (~18 ms) ──► notify(HashDone::Verified { ticket, ok })
//!                                          └──► (driver) channel + mio::Waker, or a tokio channel
//!  back on loop    ok: throttle.succeeded(account); id = session_id(); store it;
//!                      Set-Cookie: set_cookie_header(&key.sign(&id), max_age, secure)
//!                  not ok: throttle.failed(ip, account, now); 401
//!  logout          forget the id in the session store; Set-Cookie: clear_cookie_header(secure)
//!  `user add`      hash_password(&secret) (blocking is fine on the command line) or hasher.hash
//! ```
//!
//! `notify` runs on a hasher thread: it must be quick and must not call back into the
//! [`Hasher`]. Time is always passed in (`now_unix` for tokens, an `Instant` for the throttle):
//! only the hasher threads and the random number generator touch the outside world.
//!
//! # Threat model
//!
//! The attacker can connect, send anything as a token, cookie, name or password, replay what
//! they saw, and guess passwords from many addresses; they do not hold the HS256 secret, the
//! private key matching the configured public key, or the cookie key. Against that: a token
//! is accepted only with a signature by a configured key *in that key's own algorithm* (no
//! `alg: none`, no public key taken for an HMAC secret), unexpired; a cookie only with this
//! server's MAC over its id, compared in constant time; a password check costs the same for
//! a missing account, and failures slow down per address and per account. Out of scope here,
//! and the driver's job: revoking a session (the server-side store: a cookie that verifies
//! may still name a session that was logged out), TLS, CSRF on the login form (SameSite=Strict
//! plus an Origin check), and the trusted-proxy rules for the client address.
//!
//! # What is never shown
//!
//! No token, password, cookie value, secret or key appears in a `Debug` or `Display` of this
//! crate: [`Secret`] prints `***`, [`TokenKeys`], [`TokenVerifier`] and [`SessionKey`] print
//! lengths or algorithm names only, and every error ([`TokenError`], [`KeyError`],
//! [`PasswordError`]) is a fixed sentence that never echoes its input (tested in
//! `tests/redaction.rs`). Passwords and the cookie key are zeroed when dropped.
//!
//! # Costs
//!
//! One core of the 2-core development machine, release build, `cargo bench -p chat-auth
//! --bench auth` (BENCHMARKS.md, "Authentication costs"):
//!
//! | operation | time | where it may run |
//! | --- | --- | --- |
//! | token verify, HS256 | 2.1 µs | the event loop |
//! | token verify, EdDSA (Ed25519) | 48 µs | the event loop |
//! | token verify, RS256 (2048-bit) | 174 µs | the event loop, one per upgrade |
//! | token verify, ES256 (P-256) | 293 µs | the event loop, one per upgrade |
//! | cookie verify (HMAC-SHA256) | 0.4 µs | the event loop |
//! | argon2id verify (m=19 MiB, t=2, p=1) | 17.5 ms | a [`Hasher`] thread only |
//!
//! The public-key figures are those of the pure-Rust RustCrypto backend (see `Cargo.toml`):
//! an upgrade storm of 1 000 ES256 tokens a second would take ~30 % of a core, so a driver
//! that expects one should bound upgrades per address (`--max-connections-per-ip`) or prefer
//! HS256 or EdDSA.
//!
//! # Bounds
//!
//! - A token is refused unparsed past 8 KiB ([`token::MAX_TOKEN_BYTES`]); a cookie value past
//!   108 bytes; at most 4 `chat_session` cookies of one header are tried.
//! - The [`Hasher`] holds at most 64 waiting requests ([`password::QUEUE_BOUND`]) plus one per
//!   thread; a password is at most 1 024 bytes; a stored hash asking for more than 256 MiB is
//!   refused, not computed. Each thread uses 19 MiB while it hashes.
//! - A [`Throttle`] remembers at most 10 000 keys ([`ThrottleConfig::max_keys`]), the oldest
//!   evicted; [`LoginThrottle`] keeps two (addresses, accounts), about 2 MiB in all.
//!
//! # Architecture
//!
//! ```text
//!  lib.rs       these docs and the re-exports
//!  token.rs     TokenKeys, TokenVerifier, Identity, TokenError, KeyError
//!  password.rs  Secret, hash_password / verify_password / verify_dummy, Hasher, HashDone
//!  cookie.rs    SessionKey, session_id, Set-Cookie headers, the Cookie header parser
//!  throttle.rs  Throttle, LoginThrottle, RetryAfter
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod cookie;
pub mod password;
pub mod throttle;
pub mod token;

pub use cookie::{
    clear_cookie_header, find_session_cookie, session_cookies, session_id, set_cookie_header,
    RngError, SessionKey, COOKIE_NAME,
};
pub use password::{
    hash_password, verify_dummy, verify_password, Busy, HashDone, Hasher, PasswordError, Secret,
};
pub use throttle::{LoginThrottle, RetryAfter, Throttle, ThrottleConfig};
pub use token::{Identity, KeyError, TokenError, TokenKeys, TokenVerifier};
