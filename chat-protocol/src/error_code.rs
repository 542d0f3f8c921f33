//! The machine-readable `code` of an `error` frame (PROTOCOL.md).

use serde::Serialize;

/// Why a client's input was refused. The connection stays open: the client may correct itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// A v2 client sent something that is not a command it may send (PROTOCOL.md).
    BadCommand,
    /// A chat message found the sender's token bucket empty; it was not delivered.
    RateLimited,
    /// A direct message named nobody with a chat.v2 connection in the room.
    UnknownRecipient,
    /// Storage could not answer a `history_before` (durable mode): the page is not coming. The
    /// client may ask again later.
    StoreUnavailable,
    /// A `history_before` while the connection already has
    /// [`MAX_FETCHES_IN_FLIGHT`](crate::MAX_FETCHES_IN_FLIGHT) of them waiting for storage: it
    /// is not answered. The client may ask again once a `history_page` (or an error) came.
    TooManyFetches,
    /// A `refresh` brought a token that is not valid (or is another user's): the connection
    /// keeps its old token until it expires.
    BadToken,
    /// A `kick`, `ban` or `delete` from a connection that is not an admin's
    /// ([`Input::Grant`](crate::Input::Grant)): nothing was done.
    Forbidden,
    /// A `delete` named an id that is not a message of the admin's room (never sent, or no
    /// longer held in memory when nothing is stored).
    UnknownMessage,
    /// A `kick` named a user with no connection on this server.
    UnknownUser,
    /// Cluster mode: the message could not be handed to the cluster (its broker is
    /// unreachable). It was not delivered, or (if the broker took it before failing to answer)
    /// a retry with the same `client_msg_id` is recognised and not delivered twice.
    ClusterUnavailable,
}

impl ErrorCode {
    /// The code as it appears on the wire.
    pub const fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadCommand => "bad_command",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::UnknownRecipient => "unknown_recipient",
            ErrorCode::StoreUnavailable => "store_unavailable",
            ErrorCode::TooManyFetches => "too_many_fetches",
            ErrorCode::BadToken => "bad_token",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::UnknownMessage => "unknown_message",
            ErrorCode::UnknownUser => "unknown_user",
            ErrorCode::ClusterUnavailable => "cluster_unavailable",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::ErrorCode;

    #[test]
    fn serializes_as_its_wire_name() {
        for code in [
            ErrorCode::BadCommand,
            ErrorCode::RateLimited,
            ErrorCode::UnknownRecipient,
            ErrorCode::StoreUnavailable,
            ErrorCode::TooManyFetches,
            ErrorCode::BadToken,
            ErrorCode::Forbidden,
            ErrorCode::UnknownMessage,
            ErrorCode::UnknownUser,
            ErrorCode::ClusterUnavailable,
        ] {
            assert_eq!(
                serde_json::to_string(&code).expect("a unit variant serializes"),
                format!("\"{}\"", code.as_str())
            );
        }
    }
}
