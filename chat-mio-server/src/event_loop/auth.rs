//! Authentication on the loop: the token of an upgrade request, and a `refresh` token the
//! core hands over, are checked here with `chat_adapter::tokens` (a signature check costs
//! microseconds: 2 us for HS256, under 0.3 ms for ES256, BENCHMARKS.md; nothing slow runs
//! here).

use chat_adapter::tokens;
use chat_auth::Identity;
use chat_protocol::{Input, StoreTicket};

use super::EventLoop;
use crate::http::Credential;

/// Why an upgrade is refused in token mode: the status and the reason for the body.
pub(super) type Refused = tokens::Refused;

impl EventLoop {
    /// In token mode, who the upgrade's token says the client is, for `user` in `room`; `Ok(None)`
    /// when the server does not use tokens.
    pub(super) fn authenticate(
        &self,
        token: Option<&Credential>,
        user: &str,
        room: &str,
    ) -> Result<Option<(Identity, std::time::Instant)>, Refused> {
        tokens::authenticate(
            self.tokens.as_ref(),
            &self.config.room_access,
            self.now,
            token,
            user,
            room,
        )
    }

    /// The core wants a `refresh` token checked. Answered after the outputs being carried out
    /// (never feed the core from here).
    pub(super) fn verify_token(&mut self, ticket: StoreTicket, token: String) {
        let result = tokens::verify_refresh(self.tokens.as_ref(), self.now, &token);
        drop(token);
        self.pending
            .push_back(Input::TokenVerified { ticket, result });
    }
}
