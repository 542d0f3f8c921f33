//! The settings of [`ChatServer`](crate::ChatServer): rate limit, heartbeat and idle timeout.

use std::time::Duration;

/// Settings of the state machine. [`Config::default`] is what a public chat server wants; change
/// it with the `with_*` setters (the struct is `#[non_exhaustive]`, so it cannot be built with a
/// literal outside this crate).
///
/// ```
/// use std::time::Duration;
/// use chat_protocol::{Config, RateLimit};
///
/// let config = Config::default()
///     .with_rate_limit(Some(RateLimit { burst: 10, per_second: 1.0 }))
///     .with_heartbeat_interval(Some(Duration::from_secs(30)))
///     .with_idle_timeout(None);
/// assert_eq!(config.idle_timeout, None);
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Config {
    /// How fast each connection may send chat messages. `None` = no rate limit.
    /// Default: a burst of 20, then 5 messages per second.
    pub rate_limit: Option<RateLimit>,
    /// Ping a client after this long without hearing from it (and again after this long
    /// without an answer). `None` = never ping. `Some(Duration::ZERO)` is treated as `None`:
    /// a client cannot be pinged continuously. Default 25 s.
    pub heartbeat_interval: Option<Duration>,
    /// Close a client that sent nothing (not even a pong) for this long. `None` = never.
    /// Default 60 s.
    pub idle_timeout: Option<Duration>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            rate_limit: Some(RateLimit {
                burst: 20,
                per_second: 5.0,
            }),
            heartbeat_interval: Some(Duration::from_secs(25)),
            idle_timeout: Some(Duration::from_secs(60)),
        }
    }
}

impl Config {
    /// Sets [`rate_limit`](Self::rate_limit).
    #[must_use]
    pub fn with_rate_limit(mut self, rate_limit: Option<RateLimit>) -> Self {
        self.rate_limit = rate_limit;
        self
    }

    /// Sets [`heartbeat_interval`](Self::heartbeat_interval).
    #[must_use]
    pub fn with_heartbeat_interval(mut self, interval: Option<Duration>) -> Self {
        self.heartbeat_interval = interval;
        self
    }

    /// Sets [`idle_timeout`](Self::idle_timeout).
    #[must_use]
    pub fn with_idle_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.idle_timeout = timeout;
        self
    }
}

/// A per-connection token bucket: it holds at most `burst` tokens, starts full when the client
/// connects, and refills continuously at `per_second` tokens per second. Every chat message
/// costs one token; a message that finds the bucket empty is rejected.
///
/// A limit with `burst == 0`, or a `per_second` that is not a positive finite number (zero,
/// negative, NaN, infinite), limits nothing: it is the same as no rate limit. (Rejecting every
/// message forever is never what a chat server means, and this keeps the arithmetic total.)
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimit {
    /// How many messages a client may send at once, and the most tokens the bucket holds.
    pub burst: u32,
    /// How many tokens come back per second, continuously.
    pub per_second: f64,
}

impl RateLimit {
    /// Whether this limit limits anything (see the type's docs).
    pub(crate) fn is_effective(&self) -> bool {
        self.burst > 0 && self.per_second.is_finite() && self.per_second > 0.0
    }
}
