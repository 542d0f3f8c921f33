//! Per-connection rate limiting: a token bucket, and the count of rejections in a row that
//! turns a flood into a close.

use std::time::Instant;

use crate::RateLimit;

/// What to do with one chat message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Broadcast it.
    Accept,
    /// Drop it and tell the sender why.
    Reject,
    /// Drop it and close the sender: it was rejected more than `burst` times in a row.
    Close,
}

/// The rate state of one connection.
#[derive(Debug)]
pub(crate) struct Rate {
    /// Tokens left; fractional, because the bucket refills continuously.
    tokens: f64,
    /// When `tokens` was last brought up to date.
    refilled_at: Instant,
    /// Messages rejected since the last accepted one.
    rejected_in_a_row: u32,
}

impl Rate {
    /// A full bucket at `now` (a client may send a whole burst as soon as it connects).
    pub(crate) fn full(now: Instant, limit: Option<&RateLimit>) -> Self {
        Rate {
            tokens: limit.map_or(0.0, |l| f64::from(l.burst)),
            refilled_at: now,
            rejected_in_a_row: 0,
        }
    }

    /// Charges one message at `now` against `limit`, which must be effective
    /// ([`RateLimit::is_effective`]): finite, positive rate, non-zero burst.
    pub(crate) fn charge(&mut self, now: Instant, limit: &RateLimit) -> Verdict {
        // saturating: a driver whose clock went backwards gets no refill, not a panic.
        let elapsed = now
            .saturating_duration_since(self.refilled_at)
            .as_secs_f64();
        let burst = f64::from(limit.burst);
        // Both operands are finite and non-negative, so the sum is never NaN; an overflow to
        // infinity is clamped by `min`.
        self.tokens = (self.tokens + elapsed * limit.per_second).min(burst);
        self.refilled_at = self.refilled_at.max(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            self.rejected_in_a_row = 0;
            return Verdict::Accept;
        }
        self.rejected_in_a_row = self.rejected_in_a_row.saturating_add(1);
        if self.rejected_in_a_row > limit.burst {
            Verdict::Close
        } else {
            Verdict::Reject
        }
    }
}

/// The `message` of the error frame a rejected sender gets, for example
/// `rate limit exceeded: at most 5 messages per second (burst 20)`.
pub(crate) fn rejection_message(limit: &RateLimit) -> String {
    let noun = if limit.per_second == 1.0 {
        "message"
    } else {
        "messages"
    };
    format!(
        "rate limit exceeded: at most {} {noun} per second (burst {})",
        limit.per_second, limit.burst
    )
}
