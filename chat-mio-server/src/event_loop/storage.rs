//! The bridge to the message store: what the core asks to store or fetch goes to the storage
//! thread (`chat-store`, which knows nothing of mio), and what it answers comes back through
//! the loop's handoff inbox as core inputs. The loop never waits for the disk.

use chat_protocol::{Input, Record, RestoredMessage, RoomName, StoreFailed, StoreTicket};
use chrono::{DateTime, TimeZone, Utc};

use super::EventLoop;

/// A stored message as the store keeps it.
pub fn to_store(record: Record) -> chat_store::Message {
    chat_store::Message {
        room: record.room.as_str().to_owned(),
        epoch: record.epoch,
        id: record.id,
        user: record.user.as_ref().to_owned(),
        text: record.text.as_str().to_owned(),
        client_msg_id: record.client_msg_id.map(String::from),
        timestamp_ms: record.timestamp.timestamp_millis(),
        to: record.to.map(String::from),
        deleted: false,
    }
}

/// A stored message as the core takes it back.
pub fn from_store(message: chat_store::Message) -> RestoredMessage {
    RestoredMessage {
        id: message.id,
        user: message.user,
        text: message.text,
        client_msg_id: message.client_msg_id,
        timestamp: timestamp(message.timestamp_ms),
        deleted: message.deleted,
    }
}

/// Milliseconds since 1970 as a time; an impossible value (a damaged row) becomes 1970 rather
/// than a panic.
pub(super) fn timestamp(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms)
        .single()
        .unwrap_or(DateTime::<Utc>::UNIX_EPOCH)
}

/// The rooms the store loaded at start, as the core restores them. A stored room name that is
/// not valid any more is skipped with a warning.
pub fn restored_rooms(rooms: Vec<chat_store::LoadedRoom>) -> Vec<chat_protocol::RestoredRoom> {
    rooms
        .into_iter()
        .filter_map(|room| match RoomName::parse(&room.name) {
            Ok(name) => Some(chat_protocol::RestoredRoom {
                name,
                last_id: room.last_id,
                messages: room.messages.into_iter().map(from_store).collect(),
            }),
            Err(e) => {
                log::warn!("stored room {:?} skipped: {e}", room.name);
                None
            }
        })
        .collect()
}

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
        let failed = |reason: String| StoreFailed { reason };
        let input = match completion {
            chat_store::Completion::Account { ticket, result } => {
                self.account_answered(ticket, result);
                return;
            }
            chat_store::Completion::Stored { tickets, result } => Input::Stored {
                tickets: tickets.into_iter().map(StoreTicket).collect(),
                result: result.map_err(failed),
            },
            chat_store::Completion::Fetched { ticket, result } => Input::Fetched {
                ticket: StoreTicket(ticket),
                result: result
                    .map(|messages| messages.into_iter().map(from_store).collect())
                    .map_err(failed),
            },
        };
        self.feed(input);
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
