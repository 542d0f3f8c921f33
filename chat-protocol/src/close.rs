//! Why a connection is closed: the one table of close codes, reason texts and metric labels.
//!
//! The core gives four of these reasons in [`Output::Close`](crate::Output::Close)
//! ([`RateLimited`](CloseReason::RateLimited), [`Idle`](CloseReason::Idle),
//! [`TooManyRooms`](CloseReason::TooManyRooms), [`TokenExpired`](CloseReason::TokenExpired));
//! the others are found by a driver while it reads
//! frames, queues them or shuts down. Every driver sends the same close frame and counts the
//! same label for the same reason, so they live here, once.

/// Why the server closes a WebSocket connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CloseReason {
    /// The client kept sending faster than its [`RateLimit`](crate::RateLimit) after being told
    /// off. Given by the core.
    RateLimited,
    /// The client sent nothing, not even a pong, for [`Config::idle_timeout`](crate::Config).
    /// Given by the core.
    Idle,
    /// The client asked for a new room while [`Config::max_rooms`](crate::Config) rooms exist
    /// and every one of them has someone in it. Given by the core right at
    /// [`Input::Connect`](crate::Input::Connect), before any frame.
    TooManyRooms,
    /// The driver: the client does not read what it is sent, and its outbound queue is full.
    SlowConsumer,
    /// The driver: a message (whole or in fragments) over the size limit.
    TooBig,
    /// The driver: a frame that breaks RFC 6455 (unmasked, reserved bits or opcodes, a
    /// continuation without a start, ...).
    ProtocolError,
    /// The driver: a text message that is not valid UTF-8.
    InvalidUtf8,
    /// The driver: a binary message; the chat speaks text only.
    Unsupported,
    /// The driver: the server is shutting down.
    Shutdown,
    /// The client's signed token expired and no fresh one came (`refresh`). Given by the core
    /// at the token's `exp`. 4001: an application code (RFC 6455 section 7.4.2), so a client
    /// can tell "log in again" from every other close.
    TokenExpired,
}

impl CloseReason {
    /// Every reason, in the order metrics list them.
    pub const ALL: [CloseReason; 10] = [
        CloseReason::SlowConsumer,
        CloseReason::RateLimited,
        CloseReason::TooBig,
        CloseReason::Idle,
        CloseReason::ProtocolError,
        CloseReason::InvalidUtf8,
        CloseReason::Unsupported,
        CloseReason::Shutdown,
        CloseReason::TooManyRooms,
        CloseReason::TokenExpired,
    ];

    /// The close code (RFC 6455 section 7.4.1), the close frame's reason text (well under a
    /// close frame's 123 bytes) and a stable label for metrics and logs.
    const fn row(self) -> (u16, &'static str, &'static str) {
        match self {
            CloseReason::RateLimited => (1008, "rate limit exceeded", "rate_limit"),
            CloseReason::Idle => (1001, "idle timeout", "idle"),
            CloseReason::TooManyRooms => (1008, "too many rooms", "too_many_rooms"),
            CloseReason::SlowConsumer => (1008, "slow consumer", "slow_consumer"),
            CloseReason::TooBig => (1009, "message too big", "too_big"),
            CloseReason::ProtocolError => (1002, "protocol error", "protocol_error"),
            CloseReason::InvalidUtf8 => (1007, "invalid UTF-8 in text message", "invalid_utf8"),
            CloseReason::Unsupported => (
                1003,
                "binary messages are not supported",
                "unsupported_data",
            ),
            CloseReason::Shutdown => (1001, "server shutting down", "shutdown"),
            CloseReason::TokenExpired => (4001, "token expired", "token_expired"),
        }
    }

    /// The WebSocket close code: 1008 (policy violation), 1001 (going away), 1009 (too big),
    /// 1002 (protocol error), 1007 (invalid payload) or 1003 (unsupported data).
    pub const fn code(self) -> u16 {
        self.row().0
    }

    /// The close frame's reason text.
    pub const fn text(self) -> &'static str {
        self.row().1
    }

    /// A stable machine-friendly name, for metrics and logs (`rate_limit`, `idle`, ...).
    pub const fn label(self) -> &'static str {
        self.row().2
    }
}

#[cfg(test)]
mod tests {
    use super::CloseReason;

    #[test]
    fn all_lists_every_reason_once_and_labels_are_distinct() {
        let mut labels: Vec<_> = CloseReason::ALL.iter().map(|r| r.label()).collect();
        labels.sort_unstable();
        labels.dedup();
        assert_eq!(labels.len(), CloseReason::ALL.len());
        for reason in CloseReason::ALL {
            assert!(reason.text().len() <= 123, "{reason:?}");
            assert!(
                (1000..=1015).contains(&reason.code()) || (4000..=4999).contains(&reason.code()),
                "{reason:?}"
            );
        }
    }
}
