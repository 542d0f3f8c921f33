//! Session cookies: `chat_session=ID.MAC`, where `ID` is a random session id and `MAC` its
//! HMAC-SHA256 under the server's [`SessionKey`] (both base64url without padding).
//!
//! The MAC proves the server issued the id; whether the session is still alive (not logged
//! out, not expired) is the server-side session store's business: a cookie that verifies but
//! names a session the store no longer has (replayed after logout) must be refused there.

use std::fmt;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use zeroize::Zeroizing;

/// The cookie's name.
pub const COOKIE_NAME: &str = "chat_session";

/// Bytes of randomness in a session id (128 bits).
pub const SESSION_ID_BYTES: usize = 16;

/// Longest session id [`SessionKey::verify`] accepts, in characters.
pub const MAX_SESSION_ID_CHARS: usize = 64;

/// A MAC is 32 bytes: 43 base64url characters.
const MAC_CHARS: usize = 43;

/// Longest cookie value looked at; longer ones are refused before any work.
const MAX_COOKIE_VALUE: usize = MAX_SESSION_ID_CHARS + 1 + MAC_CHARS;

/// Most `chat_session` cookies in one `Cookie` header that [`SessionKey::verify_header`] tries.
const MAX_CANDIDATES: usize = 4;

/// Domain separation: a MAC made for a session cookie is good for nothing else.
const MAC_CONTEXT: &[u8] = b"chat-auth session cookie v1\0";

type HmacSha256 = Hmac<Sha256>;

/// The server's 32-byte cookie key. Its `Debug` is redacted; it is zeroed when dropped.
#[derive(Clone)]
pub struct SessionKey(Zeroizing<[u8; 32]>);

impl fmt::Debug for SessionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SessionKey(<32 bytes redacted>)")
    }
}

/// The OS random number generator failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RngError;

impl fmt::Display for RngError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the system random number generator failed")
    }
}

impl std::error::Error for RngError {}

impl SessionKey {
    /// 32 bytes from the OS random number generator. Cookies signed with it die with the
    /// process: keep the key (e.g. with [`SessionKey::from_bytes`] from a file) for sessions
    /// that survive a restart.
    pub fn generate() -> Result<SessionKey, RngError> {
        let mut key = Zeroizing::new([0u8; 32]);
        getrandom::getrandom(key.as_mut()).map_err(|_| RngError)?;
        Ok(SessionKey(key))
    }

    /// A key from 32 bytes the caller kept.
    pub fn from_bytes(bytes: [u8; 32]) -> SessionKey {
        SessionKey(Zeroizing::new(bytes))
    }

    /// The key's bytes, to store it.
    pub fn to_bytes(&self) -> [u8; 32] {
        *self.0
    }

    fn mac(&self, session_id: &str) -> HmacSha256 {
        // HMAC takes a key of any length: this cannot fail.
        let mut mac = <HmacSha256 as Mac>::new_from_slice(self.0.as_ref())
            .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
        mac.update(MAC_CONTEXT);
        mac.update(session_id.as_bytes());
        mac
    }

    /// `session_id.MAC`, the cookie value. `session_id` should come from [`session_id`]; an id
    /// that is empty, longer than [`MAX_SESSION_ID_CHARS`] or not base64url gets a value that
    /// [`SessionKey::verify`] refuses.
    pub fn sign(&self, session_id: &str) -> String {
        let tag = self.mac(session_id).finalize().into_bytes();
        let mut value = String::with_capacity(session_id.len() + 1 + MAC_CHARS);
        value.push_str(session_id);
        value.push('.');
        URL_SAFE_NO_PAD.encode_string(tag, &mut value);
        value
    }

    /// The session id of a cookie value made by [`SessionKey::sign`] with this key, or `None`
    /// for anything else: malformed, too long, another key's, or changed in any character.
    /// The MAC is compared in constant time.
    pub fn verify(&self, cookie_value: &str) -> Option<String> {
        if cookie_value.len() > MAX_COOKIE_VALUE {
            return None;
        }
        let (id, tag) = cookie_value.split_once('.')?;
        if id.is_empty() || id.len() > MAX_SESSION_ID_CHARS || !id.bytes().all(is_base64url) {
            return None;
        }
        if tag.len() != MAC_CHARS {
            return None;
        }
        // The engine refuses padding and non-zero trailing bits, so one MAC has exactly one
        // spelling.
        let tag = URL_SAFE_NO_PAD.decode(tag).ok()?;
        self.mac(id).verify_slice(&tag).ok()?;
        Some(id.to_owned())
    }

    /// The session id of the first `chat_session` cookie in a `Cookie` request header that
    /// verifies (at most 4 are tried), or `None`.
    pub fn verify_header(&self, cookie_header: &str) -> Option<String> {
        session_cookies(cookie_header)
            .take(MAX_CANDIDATES)
            .find_map(|value| self.verify(value))
    }
}

fn is_base64url(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_'
}

/// A new session id: 128 random bits, base64url (22 characters).
pub fn session_id() -> Result<String, RngError> {
    let mut bytes = [0u8; SESSION_ID_BYTES];
    getrandom::getrandom(&mut bytes).map_err(|_| RngError)?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

/// The `Set-Cookie` header value that stores `cookie_value` (from [`SessionKey::sign`]) for
/// `max_age` (whole seconds): `HttpOnly` (no script can read it), `SameSite=Strict` (never sent
/// by a cross-site request), `Path=/`, and `Secure` when `secure` (the page is served over
/// TLS, directly or behind a proxy).
pub fn set_cookie_header(cookie_value: &str, max_age: Duration, secure: bool) -> String {
    let mut header = format!(
        "{COOKIE_NAME}={cookie_value}; Max-Age={}; Path=/; HttpOnly; SameSite=Strict",
        max_age.as_secs()
    );
    if secure {
        header.push_str("; Secure");
    }
    header
}

/// The `Set-Cookie` header value that makes the browser forget the session cookie (logout):
/// an empty value with `Max-Age=0` and the same attributes.
pub fn clear_cookie_header(secure: bool) -> String {
    set_cookie_header("", Duration::ZERO, secure)
}

/// The values of the `chat_session` cookies in a `Cookie` request header, in order, with
/// surrounding spaces and double quotes removed. Other cookies, empty pairs and pairs without
/// `=` are skipped; never panics.
pub fn session_cookies(cookie_header: &str) -> impl Iterator<Item = &str> {
    cookie_header.split(';').filter_map(|pair| {
        let (name, value) = pair.split_once('=')?;
        if name.trim() != COOKIE_NAME {
            return None;
        }
        let value = value.trim();
        let value = value
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .unwrap_or(value);
        Some(value)
    })
}

/// The value of the first `chat_session` cookie in a `Cookie` request header, if any (see
/// [`session_cookies`]).
pub fn find_session_cookie(cookie_header: &str) -> Option<&str> {
    session_cookies(cookie_header).next()
}
