//! The deadline table: one min-heap entry per client, deleted lazily.
//!
//! Activity only ever moves a client's deadline later, so it does not touch the heap: the
//! client's entry stays where it was (early) and is corrected when it fires. A disconnected
//! client's entry is not searched for either; it is recognised as stale when it fires, because
//! its serial (a number given to every connection, never reused) no longer matches a connected
//! client. [`Timers::compact`] bounds the stale entries under connection churn.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Instant;

use crate::ClientId;

/// One scheduled wake-up: at `.0`, look at client `.1` if it is still connection `.2`.
/// Ties fire in client order, so simultaneous pings go out in a reproducible order.
type Entry = (Instant, ClientId, u64);

/// A min-heap of wake-ups.
#[derive(Debug, Default)]
pub(crate) struct Timers {
    heap: BinaryHeap<Reverse<Entry>>,
}

impl Timers {
    /// Schedules a look at `client` (connection `serial`) at `at`.
    pub(crate) fn push(&mut self, at: Instant, client: ClientId, serial: u64) {
        self.heap.push(Reverse((at, client, serial)));
    }

    /// The earliest wake-up, live or stale: never later than the earliest live one.
    pub(crate) fn next(&self) -> Option<Instant> {
        self.heap.peek().map(|Reverse((at, _, _))| *at)
    }

    /// Removes and returns the earliest entry if it is due at `now`.
    pub(crate) fn pop_due(&mut self, now: Instant) -> Option<(ClientId, u64)> {
        if self.next()? > now {
            return None;
        }
        self.heap
            .pop()
            .map(|Reverse((_, client, serial))| (client, serial))
    }

    /// Drops every entry.
    pub(crate) fn clear(&mut self) {
        self.heap.clear();
    }

    /// Drops the stale entries once they outnumber the live ones (`live` of them at most), so
    /// memory stays proportional to the connected clients. Amortised O(log n) per call.
    pub(crate) fn compact(&mut self, live: usize, is_live: impl Fn(ClientId, u64) -> bool) {
        // The slack keeps small rooms from rebuilding the heap at every disconnect.
        if self.heap.len() > 2 * live + 64 {
            self.heap
                .retain(|Reverse((_, client, serial))| is_live(*client, *serial));
        }
    }

    /// How many entries, live or stale (for tests of the bound).
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.heap.len()
    }
}

/// See `server.rs`'s `size_budget`: every client has one live entry here (more, stale, under
/// churn, within the bound of [`Timers::compact`]).
#[cfg(test)]
mod size_budget {
    use std::cmp::Reverse;
    use std::mem::size_of;

    use super::Entry;

    #[test]
    fn a_timer_entry_stays_within_budget() {
        // An instant (16), the client (8) and its serial (8).
        assert!(size_of::<Reverse<Entry>>() <= 32);
    }
}
