//! The rooms by name, and which to forget when a new one needs a place.

use std::collections::BTreeMap;

use crate::history::History;
use crate::room::Room;
use crate::store::{Durability, RestoredRoom};
use crate::RoomName;

/// Every room, at most `max` of them. A room nobody is in is kept, with its history, until a
/// new room needs its place; then the one empty the longest is forgotten.
#[derive(Debug)]
pub(crate) struct Rooms {
    max: usize,
    history: usize,
    map: BTreeMap<RoomName, Room>,
    /// The rooms nobody is in, by the order they became empty (oldest first).
    vacant: BTreeMap<u64, RoomName>,
    next_vacancy: u64,
    /// The highest message id of any forgotten room. A room made after that starts after it,
    /// so a room forgotten and made again never reuses an id: an `(epoch, id)` pair still
    /// names one message, and a client resuming from the old room gets a `gap`.
    retired_last_id: u64,
}

impl Rooms {
    /// No rooms yet; at most `max` (at least one) rooms of `history` messages each.
    pub(crate) fn new(max: usize, history: usize) -> Self {
        Rooms {
            max: max.max(1),
            history,
            map: BTreeMap::new(),
            vacant: BTreeMap::new(),
            next_vacancy: 0,
            retired_last_id: 0,
        }
    }

    /// How many rooms exist, empty ones included.
    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }

    pub(crate) fn get(&self, name: &RoomName) -> Option<&Room> {
        self.map.get(name)
    }

    pub(crate) fn get_mut(&mut self, name: &RoomName) -> Option<&mut Room> {
        self.map.get_mut(name)
    }

    /// The room `name`, no longer counted as vacant, for a connection about to join it: made
    /// if need be, forgetting the room empty the longest when `max` rooms exist. `None` when
    /// it does not exist and every existing room has someone in it.
    pub(crate) fn enter(&mut self, name: &RoomName) -> Option<&mut Room> {
        self.make(name)?;
        let room = self
            .map
            .get_mut(name)
            .expect("made above if it was missing");
        if let Some(since) = room.vacant_since.take() {
            self.vacant.remove(&since);
        }
        Some(room)
    }

    /// The room `name`, for a message from the backend: made if need be as by
    /// [`enter`](Self::enter), but nobody joins it, so a room made here is vacant (the newest)
    /// and a vacant room stays so. `None` when it does not exist and every existing room has
    /// someone in it.
    pub(crate) fn open(&mut self, name: &RoomName) -> Option<&mut Room> {
        if self.make(name)? {
            self.left(name);
        }
        self.map.get_mut(name)
    }

    /// Makes the room `name` if it does not exist, forgetting the room empty the longest when
    /// `max` rooms exist. `Some(true)` if it was made, `Some(false)` if it existed, `None`
    /// when it cannot be made.
    fn make(&mut self, name: &RoomName) -> Option<bool> {
        if self.map.contains_key(name) {
            return Some(false);
        }
        if self.map.len() >= self.max {
            let (_, oldest) = self.vacant.pop_first()?;
            if let Some(gone) = self.map.remove(&oldest) {
                self.retired_last_id = self.retired_last_id.max(gone.history.last_id());
            }
        }
        let history = History::new(self.history, self.retired_last_id);
        self.map.insert(name.clone(), Room::new(history));
        Some(true)
    }

    /// Every room, by name.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&RoomName, &Room)> + '_ {
        self.map.iter()
    }

    /// Adds the rooms storage loaded, as vacant rooms in the order given (the first is the
    /// first forgotten), up to `max`; a room beyond `max`, or one that exists already, is
    /// dropped, and counted as forgotten (its ids are never reused).
    pub(crate) fn restore(
        &mut self,
        rooms: Vec<RestoredRoom>,
        retired_last_id: u64,
        durability: Durability,
    ) {
        self.retired_last_id = self.retired_last_id.max(retired_last_id);
        for r in rooms {
            if self.map.len() >= self.max || self.map.contains_key(&r.name) {
                self.retired_last_id = self.retired_last_id.max(r.last_id);
                continue;
            }
            let history = History::restored(self.history, r.last_id, r.messages, durability);
            self.map.insert(r.name.clone(), Room::new(history));
            self.left(&r.name);
        }
    }

    /// Someone left `name`: if nobody is left, it becomes the newest vacant room.
    pub(crate) fn left(&mut self, name: &RoomName) {
        let Some(room) = self.map.get_mut(name) else {
            return;
        };
        if room.is_empty() && room.vacant_since.is_none() {
            room.vacant_since = Some(self.next_vacancy);
            self.vacant.insert(self.next_vacancy, name.clone());
            self.next_vacancy += 1;
        }
    }
}
