//! Per-connection deadlines: a min-heap with lazy deletion. A connection's current deadline
//! lives in `Conn::deadline`; heap entries that no longer match it are skipped when they pop.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Instant;

#[derive(Debug, Default)]
pub struct Timers {
    heap: BinaryHeap<Reverse<(Instant, usize)>>,
}

impl Timers {
    /// Remembers that connection `key` wants attention at `at`.
    pub fn schedule(&mut self, at: Instant, key: usize) {
        self.heap.push(Reverse((at, key)));
    }

    /// The earliest scheduled instant (possibly stale; a stale wake-up is harmless).
    pub fn next(&self) -> Option<Instant> {
        self.heap.peek().map(|Reverse((at, _))| *at)
    }

    /// Pops every entry due at `now`; the caller checks each against the connection's deadline.
    pub fn expired(&mut self, now: Instant) -> Vec<usize> {
        let mut due = Vec::new();
        while let Some(Reverse((at, key))) = self.heap.peek().copied() {
            if at > now {
                break;
            }
            self.heap.pop();
            due.push(key);
        }
        due
    }

    /// Drops the entries that `live` says are stale (`live(key, at)`: connection `key` still
    /// wants attention at `at`) and gives back the heap's spare room. A join storm leaves one
    /// stale entry per connection (its request head's deadline, cleared at the upgrade) that
    /// would only go when it pops: 24 bytes per idle connection. For a quiet loop
    /// (`event_loop/spare.rs`); every live deadline keeps its entry.
    pub fn release_stale(&mut self, live: impl Fn(usize, Instant) -> bool) {
        self.heap.retain(|Reverse((at, key))| live(*key, *at));
        self.heap.shrink_to_fit();
    }

    /// How many entries, live or stale.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.heap.len()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn releasing_stale_entries_keeps_every_live_deadline() {
        let start = Instant::now();
        let at = |ms| start + Duration::from_millis(ms);
        let mut timers = Timers::default();
        for key in 0..100 {
            timers.schedule(at(10), key);
        }
        // Connections 7 and 9 moved their deadlines; the others have none any more.
        timers.schedule(at(30), 7);
        timers.schedule(at(20), 9);
        let deadline = |key| match key {
            7 => Some(at(30)),
            9 => Some(at(20)),
            _ => None,
        };
        timers.release_stale(|key, when| deadline(key) == Some(when));
        assert_eq!(timers.len(), 2);
        assert_eq!(timers.next(), Some(at(20)));
        assert_eq!(timers.expired(at(30)), vec![9, 7]);
        assert_eq!(timers.next(), None);
    }
}
