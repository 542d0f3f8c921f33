//! The server API for backends: what a publish may be refused for, what a room listing holds,
//! and who the system is.

use std::fmt;

use crate::RoomName;

/// The sender of a message published by the backend as the system ([`Input::Publish`] with
/// `user: None`): the empty name. No client can have it (a client id is 1 to
/// [`MAX_USER_CHARS`] characters), so nobody can speak as the system, and a client tells a
/// system message by its empty `client_id`.
///
/// [`Input::Publish`]: crate::Input::Publish
pub const SYSTEM_USER: &str = "";

/// The longest user name, in characters, that a backend may publish as: the same bound as a
/// client id.
pub const MAX_USER_CHARS: usize = 32;

/// Whether a backend may publish as `user`: a name a client could have connected with (1 to
/// [`MAX_USER_CHARS`] characters, no control characters, no leading or trailing whitespace).
pub(crate) fn is_valid_user(user: &str) -> bool {
    let chars = user.chars().count();
    (1..=MAX_USER_CHARS).contains(&chars)
        && !user.chars().any(char::is_control)
        && user.trim() == user
}

/// Why an [`Input::Publish`](crate::Input::Publish) was not carried out (the answer in
/// [`Output::Published`](crate::Output::Published)). Not a contract breach: the driver passes
/// it on to the backend that asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PublishRefused {
    /// The room does not exist and cannot be made: [`Config::max_rooms`](crate::Config::max_rooms)
    /// rooms exist and someone is in each. The backend may try again later (HTTP 503).
    NoRoom,
    /// The user name is not one a client could have: empty, longer than [`MAX_USER_CHARS`]
    /// characters, with control characters or surrounding whitespace (HTTP 400).
    BadUser,
    /// The server runs in cluster mode ([`Config::cluster`](crate::Config::cluster)), where
    /// the server API cannot publish yet: a message's id must come from the cluster, and that
    /// path is not built for the API (HTTP 503).
    ClusterMode,
}

impl fmt::Display for PublishRefused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PublishRefused::NoRoom => {
                f.write_str("the room does not exist and every room allowed is in use")
            }
            PublishRefused::ClusterMode => {
                f.write_str("publishing through the server API is not available in cluster mode yet")
            }
            PublishRefused::BadUser => write!(
                f,
                "a user name is 1 to {MAX_USER_CHARS} characters, without control characters or surrounding whitespace"
            ),
        }
    }
}

impl std::error::Error for PublishRefused {}

/// One room in memory, as [`ChatServer::rooms`](crate::ChatServer::rooms) lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomInfo {
    /// The room's name.
    pub name: RoomName,
    /// The users present, sorted, each once however many connections it has (those being
    /// closed included, until their Disconnect). Empty for a room kept only for its history.
    pub members: Vec<String>,
    /// The id of the room's last message (0 before the first; a room made after others were
    /// forgotten starts after their ids).
    pub last_id: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_names_a_backend_may_publish_as() {
        for ok in [
            "alice",
            "a b",
            "Jürgen",
            "🎉party",
            "a/b",
            &"x".repeat(32),
            &"é".repeat(32),
        ] {
            assert!(is_valid_user(ok), "{ok:?}");
        }
        for bad in [
            "",
            " bob",
            "bob ",
            "a\nb",
            "a\0",
            &"x".repeat(33),
            SYSTEM_USER,
        ] {
            assert!(!is_valid_user(bad), "{bad:?}");
        }
    }
}
