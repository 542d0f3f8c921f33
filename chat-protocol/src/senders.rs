//! Who sent the recent messages: the connection behind each of the last
//! [`RECENT_SENDERS`] room messages on this server, so an admin can kick the one tab that
//! sent a message (`{"type":"kick","id":N}`) rather than every tab of its user.

use std::collections::VecDeque;

use crate::{ClientId, RoomName};

/// How many recent messages' senders are remembered, across all rooms.
pub const RECENT_SENDERS: usize = 1024;

/// A bounded record of `(room, id) → (connection, its serial)`, oldest first.
#[derive(Debug, Default)]
pub(crate) struct RecentSenders {
    entries: VecDeque<(RoomName, u64, ClientId, u64)>,
}

impl RecentSenders {
    /// Message `id` of `room` was sent by `client` (connection `serial`).
    pub(crate) fn record(&mut self, room: &RoomName, id: u64, client: ClientId, serial: u64) {
        if self.entries.len() == RECENT_SENDERS {
            self.entries.pop_front();
        }
        self.entries.push_back((room.clone(), id, client, serial));
    }

    /// Forgets every entry (cluster mode: the ids started again under a new epoch).
    pub(crate) fn clear(&mut self) {
        self.entries.clear();
    }

    /// The connection that sent message `id` of `room`, if it is among the recent ones.
    pub(crate) fn find(&self, room: &RoomName, id: u64) -> Option<(ClientId, u64)> {
        self.entries
            .iter()
            .rev()
            .find(|(r, i, _, _)| *i == id && r == room)
            .map(|&(_, _, client, serial)| (client, serial))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_most_recent_senders_are_kept() {
        let room = RoomName::parse("general").expect("a room");
        let other = RoomName::parse("other").expect("a room");
        let mut senders = RecentSenders::default();
        for id in 1..=(RECENT_SENDERS as u64 + 10) {
            senders.record(&room, id, ClientId(id), 7);
        }
        assert_eq!(senders.find(&room, 10), None, "forgotten");
        assert_eq!(senders.find(&room, 11), Some((ClientId(11), 7)));
        assert_eq!(senders.find(&other, 11), None, "another room's id 11");
        assert_eq!(senders.entries.len(), RECENT_SENDERS);
    }
}
