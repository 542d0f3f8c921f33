//! The core's stored messages and the message store's rows, converted both ways: what every
//! adapter hands to `chat-store` for `Output::Store`, and what it feeds back to the core.

use chat_protocol::{Record, RestoredMessage, RoomName};
use chrono::{DateTime, TimeZone, Utc};

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
pub fn timestamp(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms)
        .single()
        .unwrap_or(DateTime::<Utc>::UNIX_EPOCH)
}

/// The rooms the store loaded at start, as the core restores them. A stored room name that is
/// not valid any more is skipped with a warning.
pub fn restored_rooms(rooms: Vec<chat_store::LoadedRoom>) -> Vec<chat_protocol::RestoredRoom> {
    rooms
        .into_iter()
        .filter_map(|room| {
            restored_room(
                "stored",
                &room.name,
                room.last_id,
                room.messages,
                from_store,
            )
        })
        .collect()
}

/// One room as the core restores it, from where it was kept (`source`: the store, a cluster's
/// logs): its name, last id and messages. A name that is not valid any more is skipped with a
/// warning.
pub fn restored_room<M>(
    source: &str,
    name: &str,
    last_id: u64,
    messages: Vec<M>,
    restore: impl FnMut(M) -> RestoredMessage,
) -> Option<chat_protocol::RestoredRoom> {
    match RoomName::parse(name) {
        Ok(name) => Some(chat_protocol::RestoredRoom {
            name,
            last_id,
            messages: messages.into_iter().map(restore).collect(),
        }),
        Err(e) => {
            log::warn!("{source} room {name:?} skipped: {e}");
            None
        }
    }
}

/// The core's input for what the storage thread finished: `Stored` or `Fetched`; `None` for an
/// account query's answer, which is the adapter's own business (`--auth accounts`).
pub fn completion_input(completion: chat_store::Completion) -> Option<chat_protocol::Input> {
    use chat_protocol::{Input, StoreFailed, StoreTicket};
    let failed = |reason: String| StoreFailed { reason };
    Some(match completion {
        chat_store::Completion::Account { .. } => return None,
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
    })
}
