//! Moderation that outlives a connection: the bans the core hands out (`Output::Ban`), kept in
//! memory and (durable) in the store, checked at every token upgrade; and deleted messages'
//! text, removed from the store (`Output::DeleteStored`). Kicks and the closes of a ban are
//! plain close outputs (`core_bridge.rs`). The bans' table and check are
//! `chat_adapter::bans`, shared with the other adapters.

use chat_adapter::bans::refusal;
use chat_protocol::RoomName;
use chrono::{DateTime, Utc};

use super::EventLoop;

impl EventLoop {
    /// An admin banned `user`: kept here for the upgrade check, and in the store if durable.
    pub(super) fn ban(&mut self, user: String, until: DateTime<Utc>, reason: String) {
        chat_adapter::bans::record(&mut self.bans, self.store.as_ref(), user, until, reason);
    }

    /// An admin deleted a message: its text goes from the store too.
    pub(super) fn delete_stored(&mut self, room: RoomName, id: u64) {
        log::info!("message {id} of {room} deleted by an admin");
        if let Some(store) = &self.store {
            store.delete_text(room.as_str().to_owned(), id);
        }
    }

    /// Why `user` may not connect now (the body of a 403), if banned.
    pub(super) fn banned(&mut self, user: &str) -> Option<String> {
        refusal(&mut self.bans, user, self.now.wall)
    }
}
