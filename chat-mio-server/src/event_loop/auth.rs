//! Authentication on the loop: a `refresh` token handed over by the core is checked here and
//! answered as a core input.

use chat_protocol::{Input, StoreTicket};

use super::EventLoop;

impl EventLoop {
    /// The core wants a `refresh` token checked. Answered after the outputs being carried out
    /// (never feed the core from here).
    pub(super) fn verify_token(&mut self, ticket: StoreTicket, token: String) {
        // Only a server that authenticates with tokens lets the core ask; this one does not.
        drop(token);
        self.pending.push_back(Input::TokenVerified {
            ticket,
            result: Err("this server does not check tokens".to_owned()),
        });
    }
}
