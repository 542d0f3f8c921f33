//! Why a connection is closed: the one table of close codes, reason texts and metric labels.
//!
//! The core gives four of these reasons in [`Output::Close`](crate::Output::Close)
//! ([`RateLimited`](CloseReason::RateLimited), [`Idle`](CloseReason::Idle),
//! [`TooManyRooms`](CloseReason::TooManyRooms), [`TokenExpired`](CloseReason::TokenExpired)),
//! and two in [`Output::CloseWith`](crate::Output::CloseWith), whose text carries an admin's
//! words ([`Kicked`](CloseReason::Kicked), [`Banned`](CloseReason::Banned)); the others are
//! found by a driver while it reads frames, queues them or shuts down. Every driver sends the
//! same close code and counts the same label for the same reason, so they live here, once.

/// The most bytes of a close frame's reason text (RFC 6455 section 5.5: a control frame's
/// payload is at most 125 bytes, two of which are the code).
pub const MAX_CLOSE_TEXT: usize = 123;

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
    /// An admin kicked the user (a v2 `kick`): every connection of that user is closed. Given
    /// by the core in [`Output::CloseWith`](crate::Output::CloseWith), with the admin's reason
    /// in the text. 4003: an application code, so a client can show why and not reconnect
    /// blindly.
    Kicked,
    /// An admin banned the user (a v2 `ban`): closed like a kick, and refused at the upgrade
    /// until the ban ends. Given by the core in
    /// [`Output::CloseWith`](crate::Output::CloseWith), with the ban's end and reason in the
    /// text. 4004.
    Banned,
    /// The driver: the server's memory budget is spent, and this connection held one of the
    /// largest messages still being received (or the server API's request head): its message
    /// is refused. 1009, as for a message too big: too big for the server now. Only after
    /// history was trimmed and the slow consumers holding the most were closed.
    OverBudget,
}

impl CloseReason {
    /// Every reason, in the order metrics list them.
    pub const ALL: [CloseReason; 13] = [
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
        CloseReason::Kicked,
        CloseReason::Banned,
        CloseReason::OverBudget,
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
            CloseReason::Kicked => (4003, "kicked by an admin", "kicked"),
            CloseReason::Banned => (4004, "banned by an admin", "banned"),
            CloseReason::OverBudget => (
                1009,
                "message refused: server memory is full, try again later",
                "memory_budget",
            ),
        }
    }

    /// The WebSocket close code: 1008 (policy violation), 1001 (going away), 1009 (too big),
    /// 1002 (protocol error), 1007 (invalid payload), 1003 (unsupported data), or one of the
    /// application codes 4001 (token expired), 4003 (kicked), 4004 (banned).
    pub const fn code(self) -> u16 {
        self.row().0
    }

    /// The close frame's reason text (for [`Kicked`](Self::Kicked) and
    /// [`Banned`](Self::Banned), the fixed start of the text the core gives).
    pub const fn text(self) -> &'static str {
        self.row().1
    }

    /// A stable machine-friendly name, for metrics and logs (`rate_limit`, `idle`, ...).
    pub const fn label(self) -> &'static str {
        self.row().2
    }
}

/// `text` cut to [`MAX_CLOSE_TEXT`] bytes at a character boundary, so that it fits a close
/// frame whatever an admin typed.
pub(crate) fn close_text(mut text: String) -> String {
    if text.len() > MAX_CLOSE_TEXT {
        let mut end = MAX_CLOSE_TEXT;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    text
}

#[cfg(test)]
mod tests {
    use super::{close_text, CloseReason, MAX_CLOSE_TEXT};

    #[test]
    fn close_texts_fit_a_close_frame_and_keep_whole_characters() {
        assert_eq!(close_text("short".into()), "short");
        let cut = close_text("é".repeat(100));
        assert_eq!(cut.len(), 122, "61 two-byte characters, not half of one");
        assert!(close_text("x".repeat(500)).len() == MAX_CLOSE_TEXT);
    }

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
