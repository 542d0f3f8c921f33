//! The rooms by name, which to forget when a new one needs a place, and what their histories
//! cost together (trimmed, least recently active room first, to fit the history budget).

use std::collections::BTreeMap;

use crate::history::History;
use crate::room::Room;
use crate::store::{Durability, RestoredRoom};
use crate::RoomName;

/// Every room, at most `max` of them. A room nobody is in is kept, with its history, until a
/// new room needs its place; then the one empty the longest is forgotten.
///
/// The histories together cost at most `budget` bytes ([`Stored::cost`](crate::history)):
/// past it, the oldest messages of the room that got a message least recently go first, then
/// those of the next such room, and so on.
#[derive(Debug)]
pub(crate) struct Rooms {
    max: usize,
    history: usize,
    /// The most bytes one room's history holds.
    room_bytes: usize,
    /// The most bytes all histories hold together.
    budget: usize,
    /// What all histories cost now (the sum of the rooms' `counted_bytes`).
    bytes: usize,
    /// Messages forgotten to keep within `budget` (not those the rings or `room_bytes` drop).
    trimmed: u64,
    map: BTreeMap<RoomName, Room>,
    /// The rooms that hold messages, by the order they last got one (least recent first).
    active: BTreeMap<u64, RoomName>,
    next_activity: u64,
    /// The rooms nobody is in, by the order they became empty (oldest first).
    vacant: BTreeMap<u64, RoomName>,
    next_vacancy: u64,
    /// The highest message id of any forgotten room. A room made after that starts after it,
    /// so a room forgotten and made again never reuses an id: an `(epoch, id)` pair still
    /// names one message, and a client resuming from the old room gets a `gap`.
    retired_last_id: u64,
}

impl Rooms {
    /// No rooms yet; at most `max` (at least one) rooms of `history` messages and `room_bytes`
    /// bytes each, `budget` bytes of history in all.
    pub(crate) fn new(max: usize, history: usize, room_bytes: usize, budget: usize) -> Self {
        Rooms {
            max: max.max(1),
            history,
            room_bytes,
            budget,
            bytes: 0,
            trimmed: 0,
            map: BTreeMap::new(),
            active: BTreeMap::new(),
            next_activity: 0,
            vacant: BTreeMap::new(),
            next_vacancy: 0,
            retired_last_id: 0,
        }
    }

    /// How many rooms exist, empty ones included.
    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }

    /// The room table's own copy of `name`, if the room exists: what a client in it keeps, so
    /// that every member shares one allocation of the name.
    pub(crate) fn shared_name(&self, name: &RoomName) -> Option<RoomName> {
        self.map.get_key_value(name).map(|(name, _)| name.clone())
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
                self.bytes -= gone.counted_bytes;
                if let Some(since) = gone.active_since {
                    self.active.remove(&since);
                }
            }
        }
        let history = History::new(self.history, self.room_bytes, self.retired_last_id);
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
            let history = History::restored(
                self.history,
                self.room_bytes,
                r.last_id,
                r.messages,
                durability,
            );
            let mut room = Room::new(history);
            room.synced = true;
            self.map.insert(r.name.clone(), room);
            self.left(&r.name);
            // Loaded least recently used first: the first is trimmed first, as it is forgotten.
            self.counted(&r.name, true);
        }
        self.trim();
    }

    /// Cluster mode, a new epoch: every room's history is emptied and its ids start again at 1
    /// (forgotten rooms' ids too).
    pub(crate) fn restart_ids(&mut self) {
        self.retired_last_id = 0;
        self.bytes = 0;
        self.active.clear();
        for room in self.map.values_mut() {
            room.history.restart(0);
            room.counted_bytes = 0;
            room.active_since = None;
            room.synced = true;
        }
    }

    /// What all histories hold, in bytes.
    pub(crate) fn history_bytes(&self) -> usize {
        self.bytes
    }

    /// Messages forgotten so far to keep the histories within the budget.
    pub(crate) fn history_trimmed(&self) -> u64 {
        self.trimmed
    }

    /// Sets the most bytes all histories may hold, and trims them to it.
    pub(crate) fn set_budget(&mut self, budget: usize) {
        self.budget = budget;
        self.trim();
    }

    /// The history of `name` changed (a message held, or one deleted): counts what it costs
    /// now and, for a new message (`active`), makes it the most recently active room; then
    /// trims the histories to the budget.
    pub(crate) fn history_changed(&mut self, name: &RoomName, active: bool) {
        self.counted(name, active);
        self.trim();
    }

    fn counted(&mut self, name: &RoomName, active: bool) {
        let Some(room) = self.map.get_mut(name) else {
            return;
        };
        let bytes = room.history.bytes();
        self.bytes = self.bytes - room.counted_bytes + bytes;
        room.counted_bytes = bytes;
        if active || room.history.is_empty() {
            if let Some(since) = room.active_since.take() {
                self.active.remove(&since);
            }
        }
        if !room.history.is_empty() && room.active_since.is_none() {
            room.active_since = Some(self.next_activity);
            self.active.insert(self.next_activity, name.clone());
            self.next_activity += 1;
        }
    }

    /// Forgets the oldest messages of the least recently active rooms until the histories fit
    /// the budget.
    fn trim(&mut self) {
        while self.bytes > self.budget {
            let Some(entry) = self.active.first_entry() else {
                debug_assert!(false, "bytes are held only by active rooms");
                return;
            };
            let Some(room) = self.map.get_mut(entry.get()) else {
                debug_assert!(false, "an active room exists");
                entry.remove();
                continue;
            };
            while self.bytes > self.budget {
                let Some(cost) = room.history.pop_oldest() else {
                    break;
                };
                room.counted_bytes -= cost;
                self.bytes -= cost;
                self.trimmed += 1;
            }
            if room.history.is_empty() {
                room.active_since = None;
                entry.remove();
            }
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
