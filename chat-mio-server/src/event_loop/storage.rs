//! The bridge to the message store: what the core asks to store or fetch goes to the storage
//! thread (`chat-store`, which knows nothing of mio), and what it answers comes back through
//! the loop's handoff inbox as core inputs. The loop never waits for the disk.

use chat_adapter::store_records::{completion_input, to_store};
use chat_protocol::{Input, Record, RoomName, StoreFailed, StoreTicket};

use super::EventLoop;

impl EventLoop {
    /// The core wants this message made durable.
    pub(super) fn store(&mut self, record: Record) {
        match &self.store {
            Some(store) => store.append(record.ticket.0, to_store(record)),
            // No store: nothing is durable, and the core was told so (it is not durable).
            None => log::error!("the core asked to store a message without a store"),
        }
    }

    /// The core wants older messages of a room for a client's scroll-back.
    pub(super) fn fetch(&mut self, ticket: StoreTicket, room: RoomName, before: u64, limit: usize) {
        if let Some(cluster) = &self.cluster {
            // In a cluster the rooms' logs in Redis are the store.
            cluster.fetch_before(ticket.0, room.as_str(), before, limit);
            return;
        }
        match &self.store {
            Some(store) => store.fetch_before(ticket.0, room.as_str().to_owned(), before, limit),
            // Answered after the outputs being carried out (never feed the core from here).
            None => self.pending.push_back(Input::Fetched {
                ticket,
                result: Err(StoreFailed {
                    reason: "no message store".to_owned(),
                }),
            }),
        }
    }

    /// The storage thread finished something.
    pub(super) fn store_completed(&mut self, completion: chat_store::Completion) {
        if let chat_store::Completion::Account { ticket, result } = completion {
            self.account_answered(ticket, result);
            return;
        }
        if let Some(input) = completion_input(completion) {
            self.feed(input);
        }
    }

    /// The end of a graceful shutdown: the storage thread writes what is queued, marks the
    /// database cleanly closed (so the next start keeps the epoch) and stops. The loop serves
    /// nobody any more, so waiting here keeps no one waiting.
    pub(super) fn close_store(&mut self) {
        if let Some(store) = self.store.take() {
            match store.shutdown() {
                Ok(()) => log::info!("message store closed cleanly"),
                Err(e) => log::warn!("message store: {e} (the next start takes a new epoch)"),
            }
        }
    }
}
