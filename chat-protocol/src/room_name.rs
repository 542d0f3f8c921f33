//! [`RoomName`]: the validated name of a room.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

/// A validated room name: 1 to 32 characters from `a-z`, `0-9`, `-`, `_`. ASCII letters are
/// lowercased on parse, so `General` and `general` are the same room.
///
/// ```
/// use chat_protocol::RoomName;
///
/// assert_eq!(RoomName::parse("Rust-Lang").unwrap().as_str(), "rust-lang");
/// assert_eq!(RoomName::default().as_str(), "general");
/// assert!(RoomName::parse("no spaces").is_err());
/// ```
///
/// The name is shared, not copied: a clone is a reference count's bump, so every client in a
/// room points at the one name the room table holds (16 bytes each, no allocation).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RoomName(Arc<str>);

impl RoomName {
    /// The most characters (and bytes: every allowed character is ASCII) a name may have.
    pub const MAX_LEN: usize = 32;

    /// Validates and normalises `s`. The error is a short human-readable reason, fit for an
    /// HTTP `400` body.
    pub fn parse(s: &str) -> Result<RoomName, &'static str> {
        if s.is_empty() {
            return Err("room name is empty");
        }
        if !s
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err("room name may only contain a-z, 0-9, - and _");
        }
        // Only ASCII is left, so bytes and characters agree.
        if s.len() > Self::MAX_LEN {
            return Err("room name is longer than 32 characters");
        }
        Ok(RoomName(s.to_ascii_lowercase().into()))
    }

    /// The name, lowercase.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for RoomName {
    /// `general`, the room of a URL that names none.
    fn default() -> Self {
        RoomName("general".into())
    }
}

impl FromStr for RoomName {
    type Err = &'static str;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        RoomName::parse(s)
    }
}

impl fmt::Display for RoomName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for RoomName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}
