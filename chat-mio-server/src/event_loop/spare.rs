//! Giving back what a burst grew, once the loop is quiet.
//!
//! A join storm or a broadcast to thousands grows structures that then keep their size: the
//! core's output queue (one 144-byte slot per recipient), the turn's frame buffer (up to
//! 1 MiB) and the deadline heap's stale entries (one per connection that upgraded). Under load they are reused turn after turn, which is why they keep their room; an
//! idle server has no use for it, and at 5 000 idle connections it was about a third of what
//! each connection cost. So when the loop has seen no event for [`QUIET_FOR`], it gives that
//! room back, once per quiet spell. Giving it back under load would only cost reallocations.

use std::time::{Duration, Instant};

use super::EventLoop;

/// How long the loop must have seen no event before it gives back spare memory.
pub(super) const QUIET_FOR: Duration = Duration::from_millis(100);

impl EventLoop {
    /// After a turn: one with events postpones the release to [`QUIET_FOR`] from now; one
    /// without events (a timeout) at or after that instant gives the room back.
    pub(super) fn spare_after_turn(&mut self, had_events: bool, now: Instant) {
        if had_events {
            self.release_spare_at = Some(now + QUIET_FOR);
        } else if self.release_spare_at.is_some_and(|at| at <= now) {
            self.release_spare_at = None;
            self.core.release_spare_memory();
            self.batch.release_spare();
            let conns = &self.conns;
            self.timers.release_stale(|key, at| {
                conns
                    .get(key)
                    .is_some_and(|c| !c.is_gone() && c.deadline == Some(at))
            });
        }
    }
}
