//! The WebSocket handshake: validating an upgrade request (RFC 6455 section 4.2.1), its
//! Origin, client id, room and resume hints, and the `101` that answers it. Switching the
//! connection over is `event_loop/upgrade.rs`; frames are parsed by tungstenite in
//! `connection.rs`.

use chat_protocol::{Protocol, Resume, RoomName};
use percent_encoding::percent_decode_str;
use tungstenite::handshake::derive_accept_key;

use crate::http::{Credential, Request, Response};

/// Longest client id, in Unicode scalar values, after percent-decoding and trimming.
pub const MAX_CLIENT_ID_CHARS: usize = 32;

/// Why an upgrade request is refused: the HTTP status and a one-line reason for the body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub status: u16,
    pub reason: String,
}

impl Refusal {
    fn new(status: u16, reason: impl Into<String>) -> Self {
        Refusal {
            status,
            reason: reason.into(),
        }
    }

    /// The response that carries the refusal. The connection is closed after it: a client that
    /// failed an upgrade has no reason to keep it.
    pub fn into_response(self) -> Response<'static> {
        let response = Response::text_owned(self.status, self.reason).keep_alive(false);
        match self.status {
            426 => response.header("Sec-WebSocket-Version", "13"),
            // RFC 9110 section 15.5.6: a 405 names the methods that are allowed.
            405 => response.header("Allow", "GET"),
            _ => response,
        }
    }
}

/// A request that may become a WebSocket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    /// The client id, percent-decoded and trimmed.
    pub user: String,
    /// The `Sec-WebSocket-Accept` value.
    pub accept_key: String,
    /// `?room=`, or the default room.
    pub room: RoomName,
    /// v2 when the client offered `chat.v2`, else the tutorial protocol.
    pub protocol: Protocol,
    /// `?since=&epoch=`: where a reconnecting client left off.
    pub resume: Option<Resume>,
    /// The token the client presented: `?token=` (browsers cannot set headers on a
    /// WebSocket) or `Authorization: Bearer` (which wins when both are there). Checked by the
    /// loop when the server authenticates with tokens; ignored otherwise.
    pub token: Option<Credential>,
}

impl Accepted {
    /// What the core hears once this client's `101` is out: `Connect`, then (token mode) when
    /// its token expires, and an admin's rights. Feed them in this order.
    pub fn connect_inputs(
        self,
        client: chat_protocol::ClientId,
        expires: Option<std::time::Instant>,
        admin: bool,
    ) -> Vec<chat_protocol::Input> {
        use chat_protocol::Input;
        let mut inputs = vec![Input::Connect {
            client,
            user: self.user,
            room: self.room,
            protocol: self.protocol,
            resume: self.resume,
        }];
        inputs.extend(expires.map(|at| Input::Expires { client, at }));
        if admin {
            inputs.push(Input::Grant {
                client,
                admin: true,
            });
        }
        inputs
    }

    /// The `101 Switching Protocols` answer.
    pub fn response(&self) -> Response<'static> {
        let response = Response::new(101, b"")
            .header("Upgrade", "websocket")
            .header("Connection", "Upgrade")
            .header("Sec-WebSocket-Accept", self.accept_key.clone());
        match self.protocol.subprotocol() {
            Some(token) => response.header("Sec-WebSocket-Protocol", token),
            None => response,
        }
    }
}

/// Checks an upgrade request for `/ws/{raw_id}` (RFC 6455 section 4.2.1), and its `Origin`
/// against cross-site WebSocket hijacking. `scheme`: how the request reached the server
/// (`http`, or `https` over native TLS or from a trusted proxy that says so).
pub fn accept(
    request: &Request,
    raw_id: &str,
    scheme: &str,
    allowed_origins: &[String],
) -> Result<Accepted, Refusal> {
    if request.method != "GET" {
        return Err(Refusal::new(405, "a WebSocket upgrade must use GET\n"));
    }
    if request.minor_version < 1 {
        return Err(Refusal::new(400, "a WebSocket upgrade needs HTTP/1.1\n"));
    }
    let is_websocket = request.upgrade.as_deref().is_some_and(|u| {
        u.split(',')
            .any(|t| t.trim().eq_ignore_ascii_case("websocket"))
    });
    if !is_websocket || !request.connection_upgrade {
        return Err(Refusal::new(
            426,
            "this is a WebSocket endpoint: send Upgrade: websocket and Connection: Upgrade\n",
        ));
    }
    if request.sec_websocket_version.as_deref() != Some("13") {
        return Err(Refusal::new(
            426,
            "unsupported Sec-WebSocket-Version: use 13\n",
        ));
    }
    let key = request
        .sec_websocket_key
        .as_deref()
        .ok_or_else(|| Refusal::new(400, "missing Sec-WebSocket-Key\n"))?;
    if !is_valid_key(key) {
        return Err(Refusal::new(
            400,
            "Sec-WebSocket-Key must be 16 bytes in base64\n",
        ));
    }
    if !origin_allowed(
        request.origin.as_deref(),
        request.host.as_deref(),
        scheme,
        allowed_origins,
    ) {
        return Err(Refusal::new(
            403,
            "this Origin may not open a chat connection (see --allowed-origin)\n",
        ));
    }
    let user = client_id(raw_id).map_err(|why| Refusal::new(400, format!("{why}\n")))?;
    let (room, resume, query_token) = query(request.query().unwrap_or(""))
        .map_err(|why| Refusal::new(400, format!("{why}\n")))?;
    Ok(Accepted {
        user,
        accept_key: derive_accept_key(key.as_bytes()),
        room,
        // A client that offers other subprotocols only gets none back, as RFC 6455 says, and
        // speaks the tutorial protocol.
        protocol: Protocol::negotiate(request.sec_websocket_protocol.as_deref()),
        resume,
        token: request.bearer.clone().or(query_token),
    })
}

/// `room`, `since` and `epoch` from the query string (form-encoded); other keys are ignored,
/// and the first of a repeated key counts.
///
/// Only `room` can refuse the upgrade. `since` and `epoch` are resume hints a client stored,
/// and a browser cannot read why an upgrade failed, so a bad hint must not lock it out: a
/// `since` that is not a whole number (negative, fractional, too large, not a number) is
/// ignored as if absent, and an `epoch` that is not one is no epoch (PROTOCOL.md, "Details").
fn query(query: &str) -> Result<(RoomName, Option<Resume>, Option<Credential>), String> {
    let (mut room, mut since, mut epoch, mut token) = (None, None, None, None);
    for (key, value) in form_urlencoded::parse(query.as_bytes()) {
        match key.as_ref() {
            "room" if room.is_none() => {
                room = Some(RoomName::parse(&value).map_err(|why| format!("room: {why}"))?);
            }
            "since" if since.is_none() => since = Some(value.parse::<u64>().ok()),
            "epoch" if epoch.is_none() => epoch = Some(value.parse::<u64>().ok()),
            "token" if token.is_none() => token = Some(Credential::new(&value)),
            _ => {}
        }
    }
    // `since` without a usable `epoch` cannot be trusted across restarts: the core answers
    // with a gap. An `epoch` without `since` means nothing.
    let resume = since.flatten().map(|since| match epoch.flatten() {
        Some(epoch) => Resume { epoch, since },
        None => Resume::without_epoch(since),
    });
    Ok((room.unwrap_or_default(), resume, token))
}

/// Browsers always send `Origin` on a WebSocket request; a page from another site must not be
/// able to chat in its visitor's name. Same origin passes: the Origin's scheme is `scheme`, the
/// one the server is reached by (an `https://` page is another origin than an `http://` server
/// of the same host), and its host and port are the Host header's. So does any origin listed,
/// or all with `*`. No Origin: not a browser, so no ambient credentials to abuse: allowed.
pub fn origin_allowed(
    origin: Option<&str>,
    host: Option<&str>,
    scheme: &str,
    allowed: &[String],
) -> bool {
    let Some(origin) = origin else {
        return true;
    };
    let origin = origin.trim_end_matches('/');
    if allowed
        .iter()
        .any(|a| a == "*" || a.trim_end_matches('/').eq_ignore_ascii_case(origin))
    {
        return true;
    }
    let Some((origin_scheme, authority)) = origin.split_once("://") else {
        return false; // "null" (sandboxed frames, file: pages) and anything unparsable
    };
    if !origin_scheme.eq_ignore_ascii_case(scheme) {
        return false;
    }
    let default_port = match scheme.to_ascii_lowercase().as_str() {
        "http" => "80",
        "https" => "443",
        _ => return false,
    };
    let Some(host) = host else {
        return false;
    };
    let normalize = |authority: &str| {
        let authority = authority.to_ascii_lowercase();
        // A port is present when the last ':' comes after any IPv6 literal's ']'.
        let has_port = authority
            .rfind(':')
            .is_some_and(|i| !authority[i..].contains(']'));
        if has_port {
            authority
        } else {
            format!("{authority}:{default_port}")
        }
    };
    normalize(authority) == normalize(host)
}

/// A base64 encoding of 16 bytes: 22 characters of the alphabet and `==`.
fn is_valid_key(key: &str) -> bool {
    let bytes = key.as_bytes();
    bytes.len() == 24
        && bytes[22..] == *b"=="
        && bytes[..22]
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'+' || *b == b'/')
}

/// The client id from the URL path segment: percent-decoded, UTF-8, trimmed, 1 to
/// [`MAX_CLIENT_ID_CHARS`] characters, no control characters.
pub fn client_id(raw: &str) -> Result<String, &'static str> {
    let decoded = percent_decode_str(raw)
        .decode_utf8()
        .map_err(|_| "client id is not valid UTF-8")?;
    let id = decoded.trim();
    if id.is_empty() {
        return Err("client id is empty");
    }
    if id.chars().count() > MAX_CLIENT_ID_CHARS {
        return Err("client id is longer than 32 characters");
    }
    if id.chars().any(char::is_control) {
        return Err("client id contains control characters");
    }
    Ok(id.to_owned())
}

#[cfg(test)]
mod tests {
    /// The scheme of a plain HTTP listener.
    const SERVED_SCHEME: &str = "http";
    use super::*;

    #[test]
    fn client_ids() {
        let ok = [
            ("alice", "alice"),
            ("%20bob%20", "bob"),
            ("J%C3%BCrgen", "Jürgen"),
            ("%F0%9F%8E%89party", "🎉party"),
            ("a%2Fb", "a/b"),
            (&"x".repeat(32), &"x".repeat(32)),
        ];
        for (raw, id) in ok {
            assert_eq!(client_id(raw).as_deref(), Ok(id), "{raw:?}");
        }
        let bad = [
            "",
            "%20%20",
            "%FF",
            "a%0Ab",
            "a%00",
            &"x".repeat(33),
            &"é".repeat(33),
        ];
        for raw in bad {
            assert!(client_id(raw).is_err(), "{raw:?} must be refused");
        }
    }

    #[test]
    fn origins() {
        let none: &[String] = &[];
        let cases = [
            (None, Some("h:8000"), none, true),
            (
                Some("http://127.0.0.1:8000"),
                Some("127.0.0.1:8000"),
                none,
                true,
            ),
            (
                Some("http://LOCALHOST:8000/"),
                Some("localhost:8000"),
                none,
                true,
            ),
            (
                Some("http://example.com"),
                Some("example.com:80"),
                none,
                true,
            ),
            // The right host under another scheme is another origin (issue 9, item 10).
            (
                Some("https://example.com"),
                Some("example.com"),
                none,
                false,
            ),
            (
                Some("https://127.0.0.1:8000"),
                Some("127.0.0.1:8000"),
                none,
                false,
            ),
            (Some("HTTP://example.com"), Some("example.com"), none, true),
            (Some("http://[::1]:8000"), Some("[::1]:8000"), none, true),
            (
                Some("http://evil.example"),
                Some("127.0.0.1:8000"),
                none,
                false,
            ),
            (
                Some("http://127.0.0.1:9999"),
                Some("127.0.0.1:8000"),
                none,
                false,
            ),
            (
                Some("https://example.com"),
                Some("example.com:80"),
                none,
                false,
            ),
            (Some("null"), Some("127.0.0.1:8000"), none, false),
            (Some("http://127.0.0.1:8000"), None, none, false),
        ];
        for (origin, host, allowed, ok) in cases {
            assert_eq!(
                origin_allowed(origin, host, SERVED_SCHEME, allowed),
                ok,
                "{origin:?} {host:?}"
            );
        }
        let list = ["https://chat.example.org".to_owned()];
        assert!(origin_allowed(
            Some("https://chat.example.org"),
            Some("10.0.0.1:8000"),
            SERVED_SCHEME,
            &list
        ));
        assert!(!origin_allowed(
            Some("https://other.example.org"),
            Some("10.0.0.1:8000"),
            SERVED_SCHEME,
            &list
        ));
        assert!(origin_allowed(
            Some("http://anything"),
            Some("h"),
            SERVED_SCHEME,
            &["*".to_owned()]
        ));
        // Behind TLS the expected scheme is https: then an http page is the foreign one.
        assert!(origin_allowed(
            Some("https://example.com"),
            Some("example.com"),
            "https",
            none
        ));
        assert!(!origin_allowed(
            Some("http://example.com"),
            Some("example.com:443"),
            "https",
            none
        ));
    }

    #[test]
    fn queries() {
        let general = RoomName::default();
        let cases = [
            ("", Ok((general.clone(), None))),
            ("room=Lobby", Ok((RoomName::parse("lobby").unwrap(), None))),
            (
                "room=a%2Db&x=1",
                Ok((RoomName::parse("a-b").unwrap(), None)),
            ),
            (
                "since=41&epoch=7",
                Ok((
                    general.clone(),
                    Some(Resume {
                        epoch: 7,
                        since: 41,
                    }),
                )),
            ),
            (
                "since=41",
                Ok((general.clone(), Some(Resume::without_epoch(41)))),
            ),
            ("epoch=7", Ok((general.clone(), None))),
            // Resume hints never refuse the upgrade (issue 9, item 10): an unusable `since`
            // is no `since`, an unusable `epoch` is no epoch, and an epoch alone means nothing.
            ("since=-1", Ok((general.clone(), None))),
            ("since=x&epoch=7", Ok((general.clone(), None))),
            ("since=1.5", Ok((general.clone(), None))),
            ("since=18446744073709551616", Ok((general.clone(), None))),
            ("since=", Ok((general.clone(), None))),
            ("since=x&since=4", Ok((general.clone(), None))),
            (
                "since=41&epoch=1e3",
                Ok((general.clone(), Some(Resume::without_epoch(41)))),
            ),
            (
                "since=41&epoch=-7",
                Ok((general.clone(), Some(Resume::without_epoch(41)))),
            ),
            ("epoch=abc", Ok((general.clone(), None))),
            (
                "room=Lobby&since=x",
                Ok((RoomName::parse("lobby").unwrap(), None)),
            ),
        ];
        for (q, want) in cases {
            assert_eq!(
                query(q).map(|(room, resume, _)| (room, resume)),
                want,
                "{q:?}"
            );
        }
        for bad in ["room=", "room=a%20b", "room=../x", "room=../x&since=4"] {
            assert!(query(bad).is_err(), "{bad:?} must be refused");
        }
    }

    #[test]
    fn keys() {
        assert!(is_valid_key("dGhlIHNhbXBsZSBub25jZQ=="));
        for key in [
            "",
            "abc",
            "dGhlIHNhbXBsZSBub25jZQ=",
            "dGhlIHNhbXBsZSBub25jZ!==",
            "dGhlIHNhbXBsZSBub25jZQ===",
        ] {
            assert!(!is_valid_key(key), "{key:?}");
        }
    }

    #[test]
    fn accept_key_is_the_rfc_example() {
        // RFC 6455 section 1.3.
        assert_eq!(
            derive_accept_key(b"dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }
}
