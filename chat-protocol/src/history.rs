//! One room's message ids and the ring of its last messages.

use std::collections::{vec_deque, BTreeMap, VecDeque};
use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::store::{Durability, RestoredMessage};
use crate::Payload;

/// A chat message as the room keeps it: enough to encode its v2 `message` frame again and to
/// recognise a `client_msg_id` retry.
#[derive(Debug, Clone)]
pub(crate) struct Stored {
    pub(crate) id: u64,
    pub(crate) user: Arc<str>,
    pub(crate) text: Payload,
    pub(crate) client_msg_id: Option<Box<str>>,
    pub(crate) timestamp: DateTime<Utc>,
    /// Where it stands with storage (always [`Durability::Volatile`] when not durable).
    pub(crate) durability: Durability,
    /// An admin deleted it: `text` is empty, and frames say `"deleted":true`.
    pub(crate) deleted: bool,
}

impl Stored {
    /// Drops the text for good (an admin's `delete`); id, sender and time stay.
    pub(crate) fn delete(&mut self) {
        self.text = Payload::from("");
        self.deleted = true;
    }

    /// The bytes this message costs while held: its text, its sender's name and its
    /// `client_msg_id`, plus [`HELD_OVERHEAD`] for the entry itself and its index. An
    /// estimate that never undercounts what a client can make grow (the text).
    pub(crate) fn cost(&self) -> usize {
        HELD_OVERHEAD
            + self.text.len()
            + self.user.len()
            + self.client_msg_id.as_ref().map_or(0, |k| k.len())
    }
}

/// What a held message costs besides its strings: the ring's slot and, for a message with a
/// `client_msg_id`, its entry in the index.
pub(crate) const HELD_OVERHEAD: usize = std::mem::size_of::<Stored>() + 32;

/// The held messages, oldest first, as the `messages` of a `history` frame.
pub(crate) type Held<'a> = vec_deque::Iter<'a, Stored>;

/// The id counter of a room and its last messages: at most `limit` of them, costing at most
/// `byte_limit` bytes ([`Stored::cost`]) together.
///
/// The held messages always have consecutive ids ending at `last_id`, so a message is found by
/// arithmetic on its id, and the range of `since` values that can be resumed is
/// `last_id - held .. last_id`. Messages leave from the oldest end only (the ring, the byte
/// bound, or the server's memory budget through [`History::pop_oldest`]), which keeps that so.
#[derive(Debug)]
pub(crate) struct History {
    limit: usize,
    byte_limit: usize,
    /// What the held messages cost together.
    bytes: usize,
    messages: VecDeque<Stored>,
    /// The id of the newest message ever posted (not necessarily held), or the id the room
    /// starts after.
    last_id: u64,
    /// The ids of held messages that carry a `client_msg_id`, by that id, oldest first. Several
    /// users may pick the same `client_msg_id`, hence a list.
    by_client_msg_id: BTreeMap<Box<str>, VecDeque<u64>>,
}

impl History {
    /// An empty history whose first message will get id `start_after + 1`.
    pub(crate) fn new(limit: usize, byte_limit: usize, start_after: u64) -> Self {
        History {
            limit,
            byte_limit,
            bytes: 0,
            messages: VecDeque::new(),
            last_id: start_after,
            by_client_msg_id: BTreeMap::new(),
        }
    }

    /// A history as storage restored it: of `messages`, the longest run at the end whose ids
    /// are consecutive and end at `last_id`, at most `limit` of them; the rest is dropped.
    pub(crate) fn restored(
        limit: usize,
        byte_limit: usize,
        last_id: u64,
        messages: Vec<RestoredMessage>,
        durability: Durability,
    ) -> Self {
        let mut keep = 0;
        let mut expected = last_id;
        for m in messages.iter().rev() {
            if keep == limit || expected == 0 || m.id != expected {
                break;
            }
            keep += 1;
            expected -= 1;
        }
        // `expected` is `last_id - keep`: the id the kept run starts after.
        let mut history = History::new(limit, byte_limit, expected);
        let skip = messages.len() - keep;
        for m in messages.into_iter().skip(skip) {
            history.push(Stored {
                id: m.id,
                user: m.user.into(),
                text: Payload::from(if m.deleted { String::new() } else { m.text }),
                client_msg_id: m.client_msg_id.map(String::into_boxed_str),
                timestamp: m.timestamp,
                durability,
                deleted: m.deleted,
            });
        }
        history
    }

    /// The id of the newest message posted (or the id the room started after).
    pub(crate) fn last_id(&self) -> u64 {
        self.last_id
    }

    /// The id the next message gets. Saturating: 2^64 messages in one room do not happen, and
    /// a wrong id is better than a panic if they did.
    pub(crate) fn next_id(&self) -> u64 {
        self.last_id.saturating_add(1)
    }

    /// The id just before the oldest held message: the lowest `since` that can be resumed.
    pub(crate) fn held_after(&self) -> u64 {
        // The held ids are consecutive and end at `last_id`, so there are at most `last_id` of
        // them.
        self.last_id - self.messages.len() as u64
    }

    /// What the held messages cost together ([`Stored::cost`]).
    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }

    /// Whether no message is held.
    pub(crate) fn is_empty(&self) -> bool {
        self.messages.is_empty()
    }

    /// Records `message`, which has id [`next_id`](Self::next_id), forgetting the oldest held
    /// messages while more than `limit` messages or `byte_limit` bytes are held. A message that
    /// costs more than `byte_limit` alone is not held, and nothing before it either (held ids
    /// end at the last one).
    pub(crate) fn push(&mut self, message: Stored) {
        debug_assert_eq!(message.id, self.next_id(), "ids are consecutive");
        self.last_id = message.id;
        let cost = message.cost();
        if self.limit == 0 || cost > self.byte_limit {
            while self.pop_oldest().is_some() {}
            return;
        }
        while self.messages.len() >= self.limit || self.bytes + cost > self.byte_limit {
            if self.pop_oldest().is_none() {
                break;
            }
        }
        self.bytes += cost;
        if let Some(key) = &message.client_msg_id {
            self.by_client_msg_id
                .entry(key.clone())
                .or_default()
                .push_back(message.id);
        }
        self.messages.push_back(message);
    }

    /// Forgets every held message and makes `after` the last id, so the next message is
    /// `after + 1` (cluster mode: a room whose first or next message comes after ids this
    /// server never saw).
    pub(crate) fn restart(&mut self, after: u64) {
        while self.pop_oldest().is_some() {}
        self.last_id = after;
    }

    /// Forgets the oldest held message. Returns what it cost, `None` when nothing is held.
    pub(crate) fn pop_oldest(&mut self) -> Option<usize> {
        let old = self.messages.pop_front()?;
        self.unindex(&old);
        let cost = old.cost();
        self.bytes -= cost;
        Some(cost)
    }

    /// Drops the text of the held message `id` for good (an admin's `delete`). Whether it was
    /// held.
    pub(crate) fn delete(&mut self, id: u64) -> bool {
        let Some(m) = self.get_mut(id) else {
            return false;
        };
        let before = m.cost();
        m.delete();
        let after = m.cost();
        self.bytes = self.bytes - before + after;
        true
    }

    /// Drops the index entry of the oldest held message, which was just forgotten.
    fn unindex(&mut self, old: &Stored) {
        let Some(key) = &old.client_msg_id else {
            return;
        };
        if let Some(ids) = self.by_client_msg_id.get_mut(key) {
            // The oldest message is the oldest of its key's ids.
            debug_assert_eq!(ids.front(), Some(&old.id));
            ids.pop_front();
            if ids.is_empty() {
                self.by_client_msg_id.remove(key);
            }
        }
    }

    /// The id of the held message `user` sent with `client_msg_id`, if any.
    pub(crate) fn find(&self, user: &str, client_msg_id: &str) -> Option<u64> {
        let first = self.held_after() + 1;
        self.by_client_msg_id
            .get(client_msg_id)?
            .iter()
            .copied()
            .find(|&id| {
                id.checked_sub(first)
                    .and_then(|i| usize::try_from(i).ok())
                    .and_then(|i| self.messages.get(i))
                    .is_some_and(|m| *m.user == *user)
            })
    }

    /// The held message with this id.
    pub(crate) fn get_mut(&mut self, id: u64) -> Option<&mut Stored> {
        let i = id.checked_sub(self.held_after().saturating_add(1))?;
        self.messages.get_mut(usize::try_from(i).ok()?)
    }

    /// The held message with this id.
    pub(crate) fn get(&self, id: u64) -> Option<&Stored> {
        let i = id.checked_sub(self.held_after().saturating_add(1))?;
        self.messages.get(usize::try_from(i).ok()?)
    }

    /// The held messages with ids from `from` to `to`, both included, oldest first.
    pub(crate) fn range(&self, from: u64, to: u64) -> impl Iterator<Item = &Stored> + '_ {
        let first = self.held_after().saturating_add(1);
        let skip = from.saturating_sub(first);
        let take = to
            .min(self.last_id)
            .saturating_add(1)
            .saturating_sub(from.max(first));
        self.messages
            .iter()
            .skip(usize::try_from(skip).unwrap_or(usize::MAX))
            .take(usize::try_from(take).unwrap_or(usize::MAX))
    }

    /// Every held message, oldest first.
    pub(crate) fn all(&self) -> Held<'_> {
        self.messages.iter()
    }

    /// Exactly the messages after `since`, if every one of them is still held (`since` is at
    /// most `held` messages back and not in the future); `None` otherwise.
    pub(crate) fn after(&self, since: u64) -> Option<Held<'_>> {
        let from = since.checked_sub(self.held_after())?;
        if since > self.last_id {
            return None;
        }
        // Not more than the held count, which is a usize.
        let from = usize::try_from(from).ok()?;
        Some(self.messages.range(from..))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(h: &History, user: &str, key: Option<&str>) -> Stored {
        Stored {
            id: h.next_id(),
            user: user.into(),
            text: Payload::from("t"),
            client_msg_id: key.map(Box::from),
            timestamp: DateTime::<Utc>::UNIX_EPOCH,
            durability: Durability::Volatile,
            deleted: false,
        }
    }

    fn ids(held: Option<Held<'_>>) -> Option<Vec<u64>> {
        held.map(|h| h.map(|m| m.id).collect())
    }

    #[test]
    fn the_ring_keeps_the_last_messages_and_their_index() {
        let mut h = History::new(3, usize::MAX, 10);
        for i in 0..5 {
            let key = format!("k{}", i % 2);
            let m = msg(&h, "alice", Some(&key));
            h.push(m);
        }
        assert_eq!(ids(Some(h.all())), Some(vec![13, 14, 15]));
        assert_eq!(h.find("alice", "k0"), Some(13), "the oldest held k0");
        assert_eq!(h.find("alice", "k1"), Some(14));
        assert_eq!(h.find("bob", "k1"), None);
        let m = msg(&h, "alice", None);
        h.push(m);
        let m = msg(&h, "alice", None);
        h.push(m);
        assert_eq!(h.find("alice", "k0"), Some(15));
        assert_eq!(h.find("alice", "k1"), None);
        assert_eq!(h.by_client_msg_id.len(), 1, "forgotten keys are dropped");
    }

    #[test]
    fn after_answers_only_inside_the_window() {
        let mut h = History::new(3, usize::MAX, 0);
        assert_eq!(ids(h.after(0)), Some(vec![]));
        assert_eq!(ids(h.after(1)), None);
        for _ in 0..5 {
            let m = msg(&h, "a", None);
            h.push(m);
        }
        // Held: 3, 4, 5.
        assert_eq!(ids(h.after(1)), None);
        assert_eq!(ids(h.after(2)), Some(vec![3, 4, 5]));
        assert_eq!(ids(h.after(4)), Some(vec![5]));
        assert_eq!(ids(h.after(5)), Some(vec![]));
        assert_eq!(ids(h.after(6)), None);
        assert_eq!(ids(h.after(u64::MAX)), None);
    }

    #[test]
    fn a_restored_history_keeps_the_consecutive_run_that_ends_at_last_id() {
        let m = |id| RestoredMessage {
            id,
            user: "a".into(),
            text: format!("m{id}"),
            client_msg_id: (id == 9).then(|| "k".into()),
            timestamp: DateTime::<Utc>::UNIX_EPOCH,
            deleted: false,
        };
        let held = |h: &History| h.all().map(|m| m.id).collect::<Vec<_>>();
        let cases: &[(usize, u64, &[u64], &[u64])] = &[
            // (limit, last_id, ids given, ids kept)
            (5, 10, &[7, 8, 9, 10], &[7, 8, 9, 10]),
            (3, 10, &[7, 8, 9, 10], &[8, 9, 10]),
            (5, 10, &[2, 8, 9, 10], &[8, 9, 10]),
            (5, 10, &[8, 8, 9, 10], &[8, 9, 10]),
            (5, 10, &[7, 8, 10], &[10]),
            (5, 10, &[7, 8, 9], &[]),
            (5, 10, &[9, 10, 11], &[]),
            (5, 10, &[], &[]),
            (5, 2, &[0, 1, 2], &[1, 2]),
            (0, 10, &[9, 10], &[]),
        ];
        for &(limit, last_id, given, kept) in cases {
            let h = History::restored(
                limit,
                usize::MAX,
                last_id,
                given.iter().map(|&id| m(id)).collect(),
                Durability::Stored,
            );
            assert_eq!(held(&h), kept, "{given:?}");
            assert_eq!(h.last_id(), last_id);
            assert_eq!(h.next_id(), last_id + 1);
            assert_eq!(h.find("a", "k"), kept.contains(&9).then_some(9));
        }
    }

    #[test]
    fn range_and_get_see_only_held_ids() {
        let mut h = History::new(3, usize::MAX, 10);
        for _ in 0..5 {
            let m = msg(&h, "a", None);
            h.push(m);
        }
        // Held: 13, 14, 15.
        let ids = |h: &History, a, b| h.range(a, b).map(|m| m.id).collect::<Vec<_>>();
        assert_eq!(ids(&h, 0, u64::MAX), vec![13, 14, 15]);
        assert_eq!(ids(&h, 14, 14), vec![14]);
        assert_eq!(ids(&h, 11, 13), vec![13]);
        assert_eq!(ids(&h, 15, 20), vec![15]);
        assert_eq!(ids(&h, 16, 20), Vec::<u64>::new());
        assert_eq!(ids(&h, 14, 13), Vec::<u64>::new());
        assert_eq!(h.get(12).map(|m| m.id), None);
        assert_eq!(h.get(13).map(|m| m.id), Some(13));
        assert_eq!(h.get(16).map(|m| m.id), None);
    }

    #[test]
    fn the_byte_bound_forgets_the_oldest_and_counts_what_is_held() {
        let text = |n: usize| Payload::from("x".repeat(n));
        let cost = |n: usize| HELD_OVERHEAD + n + "a".len();
        // Room for three messages of 100 bytes, not four.
        let mut h = History::new(100, 3 * cost(100) + 10, 0);
        for _ in 0..5 {
            let mut m = msg(&h, "a", None);
            m.text = text(100);
            h.push(m);
        }
        assert_eq!(ids(Some(h.all())), Some(vec![3, 4, 5]));
        assert_eq!(h.bytes(), 3 * cost(100));
        // A bigger one pushes out as many as it needs.
        let mut m = msg(&h, "a", None);
        m.text = text(250);
        h.push(m);
        assert_eq!(ids(Some(h.all())), Some(vec![5, 6]));
        assert_eq!(h.bytes(), cost(100) + cost(250));
        // Deleting drops the text's bytes.
        assert!(h.delete(6));
        assert_eq!(h.bytes(), cost(100) + cost(0));
        assert!(!h.delete(4), "not held");
        // One too big for the room alone is not held, and nothing before it either.
        let mut m = msg(&h, "a", None);
        m.text = text(10_000);
        h.push(m);
        assert_eq!(ids(Some(h.all())), Some(vec![]));
        assert_eq!((h.bytes(), h.last_id(), h.held_after()), (0, 7, 7));
        assert_eq!(ids(h.after(6)), None, "6 is no longer held: a gap");
        // The budget's trimming: oldest first, with the cost it frees.
        for _ in 0..2 {
            let m = msg(&h, "a", Some("k"));
            h.push(m);
        }
        assert_eq!(h.pop_oldest(), Some(cost(1) + 1));
        assert_eq!(ids(Some(h.all())), Some(vec![9]));
        assert_eq!(h.find("a", "k"), Some(9));
        assert_eq!(h.pop_oldest(), Some(cost(1) + 1));
        assert_eq!((h.pop_oldest(), h.bytes()), (None, 0));
        assert_eq!(h.find("a", "k"), None);
    }

    #[test]
    fn a_zero_limit_holds_nothing_but_counts() {
        let mut h = History::new(0, usize::MAX, 0);
        for _ in 0..3 {
            let m = msg(&h, "a", Some("k"));
            h.push(m);
        }
        assert_eq!(h.last_id(), 3);
        assert_eq!(h.find("a", "k"), None);
        assert_eq!(ids(h.after(3)), Some(vec![]));
        assert_eq!(ids(h.after(2)), None);
    }
}
