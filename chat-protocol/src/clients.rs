//! The connected clients' records: one dense table of slots, found by [`ClientId`].
//!
//! A record lives in a slot of one `Vec` (a freed slot is reused by the next client), not in
//! an allocation of its own: a join storm then leaves no small long-lived allocation per
//! client between its transient ones, and a record costs its size and no malloc header.
//!
//! The id to slot index is a plain array while the ids the driver picks are small (a slab
//! key, as the mio driver's), and an ordered map for the ids beyond (a counter that kept
//! growing, as the tokio driver's): the core does not assume dense ids, it only profits from
//! them. Both are walked in id order, so whatever is done client by client is done in the
//! same order on every run.

use std::collections::BTreeMap;

use crate::ClientId;

/// Ids below `2 * clients + DIRECT_SLACK` get a place in the direct array (4 bytes each):
/// the array never grows past twice the most clients ever connected at once, plus this.
const DIRECT_SLACK: u64 = 64;

/// `direct`'s mark of an id with no client.
const NONE: u32 = u32::MAX;

#[derive(Debug)]
enum Slot<T> {
    Used(T),
    /// Free; the next free slot (or [`NONE`]).
    Free(u32),
}

/// The connected clients (their records `T`) by [`ClientId`], in a table of slots.
#[derive(Debug)]
pub(crate) struct Clients<T> {
    slots: Vec<Slot<T>>,
    /// The first free slot, or [`NONE`].
    free: u32,
    /// The slot of each id below `direct.len()`, or [`NONE`].
    direct: Vec<u32>,
    /// The slot of each id from `direct.len()` up.
    sparse: BTreeMap<ClientId, u32>,
    len: usize,
}

impl<T> Default for Clients<T> {
    fn default() -> Self {
        Clients {
            slots: Vec::new(),
            free: NONE,
            direct: Vec::new(),
            sparse: BTreeMap::new(),
            len: 0,
        }
    }
}

impl<T> Clients<T> {
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn slot_of(&self, id: ClientId) -> Option<u32> {
        match usize::try_from(id.0).ok().and_then(|i| self.direct.get(i)) {
            Some(&NONE) => None,
            Some(&slot) => Some(slot),
            None => self.sparse.get(&id).copied(),
        }
    }

    pub(crate) fn contains_key(&self, id: &ClientId) -> bool {
        self.slot_of(*id).is_some()
    }

    pub(crate) fn get(&self, id: &ClientId) -> Option<&T> {
        match self.slots.get(self.slot_of(*id)? as usize)? {
            Slot::Used(c) => Some(c),
            Slot::Free(_) => None,
        }
    }

    pub(crate) fn get_mut(&mut self, id: &ClientId) -> Option<&mut T> {
        let slot = self.slot_of(*id)?;
        match self.slots.get_mut(slot as usize)? {
            Slot::Used(c) => Some(c),
            Slot::Free(_) => None,
        }
    }

    /// Adds the client `id`, or replaces its record (and returns the old one).
    pub(crate) fn insert(&mut self, id: ClientId, client: T) -> Option<T> {
        if let Some(c) = self.get_mut(&id) {
            return Some(std::mem::replace(c, client));
        }
        let slot = if self.free == NONE {
            // More clients than u32::MAX cannot fit in memory long before this.
            let slot = u32::try_from(self.slots.len()).expect("fewer than 4 G clients");
            self.slots.push(Slot::Used(client));
            slot
        } else {
            let slot = self.free;
            let next = std::mem::replace(&mut self.slots[slot as usize], Slot::Used(client));
            self.free = match next {
                Slot::Free(next) => next,
                // The free list holds only free slots.
                Slot::Used(_) => unreachable!("a used slot on the free list"),
            };
            slot
        };
        self.len += 1;
        self.place(id, slot);
        None
    }

    /// Records that `id` is in `slot`: in the direct array if `id` is small enough for it
    /// (growing it, and moving there the ids it now covers), else in the sparse map.
    fn place(&mut self, id: ClientId, slot: u32) {
        let Some(i) = usize::try_from(id.0).ok() else {
            self.sparse.insert(id, slot);
            return;
        };
        if i < self.direct.len() {
            // Within the array however few clients are left: it is where lookups look.
            self.direct[i] = slot;
            return;
        }
        if id.0 >= 2 * self.len as u64 + DIRECT_SLACK {
            self.sparse.insert(id, slot);
            return;
        }
        self.direct.resize(i + 1, NONE);
        let beyond = self.sparse.split_off(&ClientId(id.0 + 1));
        for (moved, s) in std::mem::replace(&mut self.sparse, beyond) {
            // Below `id`, so within the array now.
            self.direct[moved.0 as usize] = s;
        }
        self.direct[i] = slot;
    }

    pub(crate) fn remove(&mut self, id: &ClientId) -> Option<T> {
        let slot = match usize::try_from(id.0)
            .ok()
            .and_then(|i| self.direct.get_mut(i))
        {
            Some(s) if *s == NONE => return None,
            Some(s) => std::mem::replace(s, NONE),
            None => self.sparse.remove(id)?,
        };
        let old = std::mem::replace(&mut self.slots[slot as usize], Slot::Free(self.free));
        self.free = slot;
        self.len -= 1;
        match old {
            Slot::Used(c) => Some(c),
            // An id maps only to a used slot.
            Slot::Free(_) => unreachable!("an id mapped to a free slot"),
        }
    }

    /// Every client, in id order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (ClientId, &T)> {
        let direct = self
            .direct
            .iter()
            .enumerate()
            .filter(|(_, &s)| s != NONE)
            .map(|(i, &s)| (ClientId(i as u64), s));
        let sparse = self.sparse.iter().map(|(&id, &s)| (id, s));
        direct
            .chain(sparse)
            .filter_map(|(id, s)| match &self.slots[s as usize] {
                Slot::Used(c) => Some((id, c)),
                Slot::Free(_) => None,
            })
    }

    /// Every client's record, in id order.
    #[cfg(test)]
    pub(crate) fn values(&self) -> impl Iterator<Item = &T> {
        self.iter().map(|(_, c)| c)
    }
}

/// See `server.rs`'s `size_budget`.
#[cfg(test)]
mod tests {
    use std::mem::size_of;

    use super::*;

    #[test]
    fn a_slot_is_the_record_and_nothing_more() {
        // A free slot's link fits in the record's niche: the table costs the records' size
        // (plus 4 bytes of index per id while ids are small), no box, no malloc header.
        use crate::server::Client;
        assert_eq!(size_of::<Slot<Client>>(), size_of::<Client>());
    }

    /// The table against a `BTreeMap`, under dense ids (a slab's), growing ids (a counter's)
    /// and scattered ones, with removals: the same records, found and walked in id order.
    #[test]
    fn behaves_as_an_ordered_map() {
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = move |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        let mut counter = 0;
        let mut table: Clients<u64> = Clients::default();
        let mut model: BTreeMap<ClientId, u64> = BTreeMap::new();
        for step in 0..20_000u64 {
            let id = match next(4) {
                0 => ClientId(next(300)),
                1 => {
                    counter += 1;
                    ClientId(counter)
                }
                2 => ClientId(next(u64::MAX)),
                _ => match model.keys().nth(next(model.len() as u64 + 1) as usize) {
                    Some(&id) => {
                        assert_eq!(table.remove(&id), model.remove(&id));
                        assert_eq!(table.get(&id), None);
                        continue;
                    }
                    None => ClientId(0),
                },
            };
            assert_eq!(table.insert(id, step), model.insert(id, step));
            assert_eq!(table.len(), model.len());
            assert_eq!(table.get(&id), model.get(&id));
            if step % 1000 == 0 {
                let walked: Vec<_> = table.iter().map(|(id, &v)| (id, v)).collect();
                let expected: Vec<_> = model.iter().map(|(&id, &v)| (id, v)).collect();
                assert_eq!(walked, expected);
            }
        }
        for (&id, &v) in &model {
            assert!(table.contains_key(&id));
            assert_eq!(table.get_mut(&id).copied(), Some(v));
        }
        assert_eq!(table.iter().count(), model.len());
        assert!(table.direct.len() as u64 <= 2 * 20_000 + DIRECT_SLACK);
    }

    /// A slab's keys: 500 clients, all but one leave, and keys from the middle come back
    /// while the table holds far fewer clients than the array covers.
    #[test]
    fn ids_within_the_array_are_found_after_most_clients_left() {
        let mut table: Clients<u64> = Clients::default();
        for id in 0..500 {
            assert_eq!(table.insert(ClientId(id), id), None);
        }
        for id in 1..500 {
            assert_eq!(table.remove(&ClientId(id)), Some(id));
        }
        assert_eq!(table.len(), 1);
        for id in [300, 499, 2, 1000] {
            assert_eq!(table.insert(ClientId(id), id + 1), None);
            assert_eq!(table.get(&ClientId(id)), Some(&(id + 1)));
        }
        let walked: Vec<_> = table.iter().map(|(id, &v)| (id.0, v)).collect();
        assert_eq!(
            walked,
            [(0, 0), (2, 3), (300, 301), (499, 500), (1000, 1001)]
        );
        assert_eq!(table.remove(&ClientId(300)), Some(301));
        assert_eq!(table.get(&ClientId(300)), None);
    }
}
