//! Token mode (`--auth token`): the verifier built from the options, and the checks an
//! upgrade's token and a `refresh` token get. Pure: the adapter passes in the time it read.
//! A signature check costs microseconds (2 us for HS256, under 0.3 ms for ES256,
//! BENCHMARKS.md), so an adapter may run it on its core thread or task.

use std::io;
use std::time::{Duration, Instant};

use chat_auth::token::LEEWAY_SECS;
use chat_auth::{Identity, TokenVerifier};
use chat_protocol::{Now, VerifiedToken};

use crate::config::{AuthMode, Config, RoomAccess};
use crate::http::{Credential, Response};

/// Why an upgrade is refused in token mode: the status and the reason for the body.
pub type Refused = (u16, String);

/// The token checker of `--auth token`, from `--jwt-secret-file` (or `CHAT_JWT_SECRET`) and
/// `--jwt-public-key`; `None` in the other modes. A missing, weak or unreadable key stops the
/// start with a clear message (never the key itself).
pub fn token_verifier(config: &Config) -> io::Result<Option<TokenVerifier>> {
    if config.auth != AuthMode::Token {
        return Ok(None);
    }
    let read = |what: &str, path: &std::path::Path| {
        std::fs::read(path)
            .map_err(|e| io::Error::new(e.kind(), format!("{what} {}: {e}", path.display())))
    };
    let hs256_secret = match (&config.jwt_secret_file, std::env::var_os("CHAT_JWT_SECRET")) {
        (Some(path), _) => {
            let mut secret = read("--jwt-secret-file", path)?;
            // A file written with `echo` ends with a newline that is not part of the secret.
            while secret.last().is_some_and(|b| b.is_ascii_whitespace()) {
                secret.pop();
            }
            Some(secret)
        }
        (None, Some(secret)) => Some(secret.into_encoded_bytes()),
        (None, None) => None,
    };
    let public_key_pem = match &config.jwt_public_key {
        Some(path) => Some(read("--jwt-public-key", path)?),
        None => None,
    };
    let verifier = TokenVerifier::new(chat_auth::TokenKeys {
        hs256_secret,
        public_key_pem,
    })
    .map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "--auth token: {e} (give --jwt-secret-file, CHAT_JWT_SECRET or --jwt-public-key)"
            ),
        )
    })?;
    log::info!(
        "clients authenticate with signed tokens ({})",
        verifier.algorithms().join(", ")
    );
    Ok(Some(verifier))
}

/// Seconds since 1970, as a token's `exp` and `nbf` count them.
fn now_unix(now: Now) -> u64 {
    u64::try_from(now.wall.timestamp()).unwrap_or(0)
}

/// When a token valid until `exp` (Unix seconds) stops being valid, as a monotonic instant:
/// the same leeway as the check that accepted it.
fn expiry_instant(now: Now, exp: u64) -> Instant {
    let left = exp
        .saturating_add(LEEWAY_SECS)
        .saturating_sub(now_unix(now));
    now.instant + Duration::from_secs(left)
}

/// In token mode (`verifier` given), who the upgrade's `token` says the client is, for `user`
/// in `room`, and when the token expires; `Ok(None)` when the server does not use tokens.
pub fn authenticate(
    verifier: Option<&TokenVerifier>,
    room_access: &[RoomAccess],
    now: Now,
    token: Option<&Credential>,
    user: &str,
    room: &str,
) -> Result<Option<(Identity, Instant)>, Refused> {
    let Some(verifier) = verifier else {
        return Ok(None);
    };
    let Some(token) = token else {
        return Err((
            401,
            "this server needs a token: ?token= or Authorization: Bearer\n".to_owned(),
        ));
    };
    let identity = verifier
        .verify(token.expose(), now_unix(now))
        .map_err(|e| (401, format!("{e}\n")))?;
    if identity.user != user {
        return Err((
            403,
            format!("this token is for {:?}, not {user:?}\n", identity.user),
        ));
    }
    if !identity.may_join(room) {
        return Err((
            403,
            format!("this token does not allow the room {room:?}\n"),
        ));
    }
    if let Some(why) = RoomAccess::refusal(room_access, room, user) {
        return Err((403, why));
    }
    let expires = identity
        .expires_at
        .map_or(now.instant, |exp| expiry_instant(now, exp));
    Ok(Some((identity, expires)))
}

/// The answer to the core's `Output::VerifyToken` (a `refresh`), for `Input::TokenVerified`.
pub fn verify_refresh(
    verifier: Option<&TokenVerifier>,
    now: Now,
    token: &str,
) -> Result<VerifiedToken, String> {
    match verifier {
        None => Err("this server does not check tokens".to_owned()),
        Some(verifier) => verifier
            .verify(token, now_unix(now))
            .map(|identity| VerifiedToken {
                expires: identity
                    .expires_at
                    .map_or(now.instant, |exp| expiry_instant(now, exp)),
                user: identity.user,
            })
            .map_err(|e| e.to_string()),
    }
}

/// The answer to an upgrade refused with `status` and `reason` (the body); a 401 of a server
/// that checks tokens says which scheme it wants.
pub fn refused_upgrade(status: u16, reason: &str, token_mode: bool) -> Response<'static> {
    let response = Response::text_owned(status, reason.to_owned()).keep_alive(false);
    if status == 401 && token_mode {
        response.header("WWW-Authenticate", "Bearer")
    } else {
        response
    }
}
