//! Giving back what a burst grew, once the loop is quiet.
//!
//! A join storm or a broadcast to thousands grows structures that then keep their size: the
//! core's output queue (one 144-byte slot per recipient), the turn's frame buffer (up to
//! 1 MiB) and the deadline heap's stale entries (one per connection that upgraded). Under load they are reused turn after turn, which is why they keep their room; an
//! idle server has no use for it, and at 5 000 idle connections it was about a third of what
//! each connection cost. So when the loop has seen no event for [`QUIET_FOR`], it gives that
//! room back, once per quiet spell. Giving it back under load would only cost reallocations.
//!
//! "Quiet" means no turn that queued many frames, not no event at all: a server with 19 000
//! idle connections pings each of them every `--heartbeat` seconds, so some pong arrives every
//! few milliseconds, and waiting for a turn without any event would keep the storm's room for
//! as long as the connections stay.

use std::time::{Duration, Instant};

use super::EventLoop;

/// How long the loop must have seen no busy turn before it gives back spare memory.
pub(super) const QUIET_FOR: Duration = Duration::from_millis(100);
/// A turn that queues at least this many frames is busy (one message to a room of 64 is);
/// heartbeats, pongs and the odd message to a small room are not.
pub(super) const BUSY_FRAMES: u64 = 64;

/// When to give the room back: [`QUIET_FOR`] after the last busy turn, once per quiet spell.
#[derive(Debug, Default)]
pub(super) struct SpareTimer {
    release_at: Option<Instant>,
}

impl SpareTimer {
    /// After a turn that queued `frames`: a busy one postpones the release to [`QUIET_FOR`]
    /// from now; `true` when the room is to be given back now (any other turn at or after
    /// that instant; the poll wakes for it).
    pub(super) fn after_turn(&mut self, frames: u64, now: Instant) -> bool {
        if frames >= BUSY_FRAMES {
            self.release_at = Some(now + QUIET_FOR);
            false
        } else if self.release_at.is_some_and(|at| at <= now) {
            self.release_at = None;
            true
        } else {
            false
        }
    }

    /// The instant the loop must wake for, if a release is due.
    pub(super) fn deadline(&self) -> Option<Instant> {
        self.release_at
    }
}

impl EventLoop {
    /// After a turn that queued `frames`: gives back the spare room when [`SpareTimer`] says so.
    pub(super) fn spare_after_turn(&mut self, frames: u64, now: Instant) {
        if self.spare.after_turn(frames, now) {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_busy_turn_postpones_and_the_first_turn_after_the_quiet_spell_releases_once() {
        let t0 = Instant::now();
        let mut spare = SpareTimer::default();
        assert!(
            !spare.after_turn(0, t0),
            "nothing to give back before any busy turn"
        );
        assert_eq!(spare.deadline(), None);
        assert!(!spare.after_turn(BUSY_FRAMES, t0));
        assert_eq!(spare.deadline(), Some(t0 + QUIET_FOR));
        // Another busy turn moves the release on.
        let t1 = t0 + QUIET_FOR / 2;
        assert!(!spare.after_turn(5_000, t1));
        assert!(
            !spare.after_turn(0, t0 + QUIET_FOR),
            "not yet: the last busy turn was at t1"
        );
        assert!(spare.after_turn(0, t1 + QUIET_FOR));
        assert_eq!(spare.deadline(), None, "once per quiet spell");
        assert!(!spare.after_turn(0, t1 + QUIET_FOR * 10));
    }

    #[test]
    fn heartbeat_turns_with_a_few_frames_do_not_keep_the_room() {
        // 19 000 idle connections: a pong or a ping every few milliseconds, forever.
        let t0 = Instant::now();
        let mut spare = SpareTimer::default();
        assert!(!spare.after_turn(10_000, t0), "the storm's last turn");
        let mut released = 0;
        for ms in 1..=500u64 {
            if spare.after_turn(ms % 3, t0 + Duration::from_millis(ms)) {
                released += 1;
                assert!(Duration::from_millis(ms) >= QUIET_FOR);
            }
        }
        assert_eq!(released, 1);
    }
}
