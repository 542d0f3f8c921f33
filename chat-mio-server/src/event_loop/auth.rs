//! Authentication on the loop: the token of an upgrade request, and a `refresh` token the
//! core hands over, are checked here (a signature check costs microseconds: 2 us for HS256,
//! under 0.3 ms for ES256, BENCHMARKS.md; nothing slow runs here).

use std::time::Duration;

use chat_auth::token::LEEWAY_SECS;
use chat_auth::Identity;
use chat_protocol::{Input, StoreTicket, VerifiedToken};

use super::EventLoop;
use crate::http::Credential;

/// Why an upgrade is refused in token mode: the status and the reason for the body.
pub(super) type Refused = (u16, String);

impl EventLoop {
    /// Seconds since 1970, as the token's `exp` and `nbf` count them.
    fn now_unix(&self) -> u64 {
        u64::try_from(self.now.wall.timestamp()).unwrap_or(0)
    }

    /// When a token valid until `exp` (Unix seconds) stops being valid, as a loop instant:
    /// the same leeway as the check that accepted it.
    fn expiry_instant(&self, exp: u64) -> std::time::Instant {
        let left = exp
            .saturating_add(LEEWAY_SECS)
            .saturating_sub(self.now_unix());
        self.now.instant + Duration::from_secs(left)
    }

    /// In token mode, who the upgrade's token says the client is, for `user` in `room`; `Ok(None)`
    /// when the server does not use tokens.
    pub(super) fn authenticate(
        &self,
        token: Option<&Credential>,
        user: &str,
        room: &str,
    ) -> Result<Option<(Identity, std::time::Instant)>, Refused> {
        let Some(verifier) = &self.tokens else {
            return Ok(None);
        };
        let Some(token) = token else {
            return Err((
                401,
                "this server needs a token: ?token= or Authorization: Bearer\n".to_owned(),
            ));
        };
        let identity = verifier
            .verify(token.expose(), self.now_unix())
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
        if let Some(why) = crate::RoomAccess::refusal(&self.config.room_access, room, user) {
            return Err((403, why));
        }
        let expires = identity
            .expires_at
            .map_or(self.now.instant, |exp| self.expiry_instant(exp));
        Ok(Some((identity, expires)))
    }

    /// The core wants a `refresh` token checked. Answered after the outputs being carried out
    /// (never feed the core from here).
    pub(super) fn verify_token(&mut self, ticket: StoreTicket, token: String) {
        let result = match &self.tokens {
            None => Err("this server does not check tokens".to_owned()),
            Some(verifier) => verifier
                .verify(&token, self.now_unix())
                .map(|identity| VerifiedToken {
                    expires: identity
                        .expires_at
                        .map_or(self.now.instant, |exp| self.expiry_instant(exp)),
                    user: identity.user,
                })
                .map_err(|e| e.to_string()),
        };
        drop(token);
        self.pending
            .push_back(Input::TokenVerified { ticket, result });
    }
}
