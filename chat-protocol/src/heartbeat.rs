//! Liveness of one connection: when to ping it, and when to give up on it.

use std::time::{Duration, Instant};

use crate::Config;

/// The heartbeat settings, normalised: a zero interval is off.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Heartbeat {
    interval: Option<Duration>,
    idle_timeout: Option<Duration>,
}

/// What a client's deadline asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Due {
    /// Heard nothing for a heartbeat interval: ping it.
    Ping,
    /// Heard nothing for the idle timeout: close it.
    Idle,
    /// Its credentials (a signed token) expired and were not refreshed: close it.
    Expired,
}

impl Heartbeat {
    pub(crate) fn new(config: &Config) -> Self {
        Heartbeat {
            // A zero interval would ask for a ping at every Timeout, forever.
            interval: config.heartbeat_interval.filter(|d| !d.is_zero()),
            idle_timeout: config.idle_timeout,
        }
    }
}

/// When a client was last heard from and last pinged.
#[derive(Debug)]
pub(crate) struct Liveness {
    last_seen: Instant,
    last_ping: Option<Instant>,
    /// When the client's credentials stop being valid ([`Input::Expires`](crate::Input)).
    expires: Option<Instant>,
}

impl Liveness {
    /// A client that connected at `now`.
    pub(crate) fn new(now: Instant) -> Self {
        Liveness {
            last_seen: now,
            last_ping: None,
            expires: None,
        }
    }

    /// The client's credentials stop being valid at `at` (replacing any earlier expiry).
    pub(crate) fn expires(&mut self, at: Instant) {
        self.expires = Some(at);
    }

    /// The client sent something at `now`. O(1): the deadline only moves later, so the timer
    /// entry (which may now be early) is left alone and corrected when it fires.
    pub(crate) fn seen(&mut self, now: Instant) {
        self.last_seen = self.last_seen.max(now);
    }

    /// A ping went out at `now`.
    pub(crate) fn pinged(&mut self, now: Instant) {
        self.last_ping = Some(now);
    }

    /// When the next ping is due, if ever.
    fn ping_at(&self, hb: &Heartbeat) -> Option<Instant> {
        let quiet_since = self
            .last_ping
            .map_or(self.last_seen, |p| p.max(self.last_seen));
        // checked: an absurdly long interval means "never", not a panic.
        quiet_since.checked_add(hb.interval?)
    }

    /// When the client is to be closed for idleness, if ever.
    fn idle_at(&self, hb: &Heartbeat) -> Option<Instant> {
        self.last_seen.checked_add(hb.idle_timeout?)
    }

    /// The client's next deadline, or `None` when nothing will ever be due.
    pub(crate) fn deadline(&self, hb: &Heartbeat) -> Option<Instant> {
        [self.ping_at(hb), self.idle_at(hb), self.expires]
            .into_iter()
            .flatten()
            .min()
    }

    /// What is due at `now`, if anything. Closing wins over pinging; an expired token over
    /// idleness.
    pub(crate) fn due(&self, now: Instant, hb: &Heartbeat) -> Option<Due> {
        if self.expires.is_some_and(|t| t <= now) {
            Some(Due::Expired)
        } else if self.idle_at(hb).is_some_and(|t| t <= now) {
            Some(Due::Idle)
        } else if self.ping_at(hb).is_some_and(|t| t <= now) {
            Some(Due::Ping)
        } else {
            None
        }
    }
}
