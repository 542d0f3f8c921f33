//! [`Payload`]: text shared by reference count, the unit the core hands to drivers.

use std::fmt;
use std::str::Utf8Error;

use bytes::Bytes;

/// UTF-8 text in a reference-counted buffer: an encoded frame shared by every recipient of a
/// broadcast, or a message's text. Cloning it is a refcount bump.
///
/// It is UTF-8 by construction: it is made from a `String` or a `str`, or from bytes
/// that [`TryFrom<Bytes>`](#impl-TryFrom<Bytes>-for-Payload) has checked. A driver hands the
/// bytes to its socket with [`as_bytes`](Self::as_bytes) or `Bytes::from(payload)`, without a
/// copy. (It is not tungstenite's `Utf8Bytes`, so that the core's dependency graph carries no
/// WebSocket library and no random number generator.)
#[derive(Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Payload(Bytes);

impl Payload {
    /// The text. Checks the UTF-8 again (a fast linear scan; the core does it once per
    /// broadcast, never per recipient), because this crate forbids the `unsafe` that skipping
    /// the check would need.
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).expect("a Payload is UTF-8: every constructor ensures it")
    }

    /// The text's bytes, without a check.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the text is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether both are views of the same bytes of one buffer (the same broadcast), not only
    /// equal text.
    pub fn same_buffer(&self, other: &Payload) -> bool {
        self.0.as_ptr() == other.0.as_ptr() && self.0.len() == other.0.len()
    }
}

impl From<String> for Payload {
    fn from(text: String) -> Self {
        Payload(Bytes::from(text))
    }
}

impl From<&str> for Payload {
    /// Copies the text into a buffer of its own.
    fn from(text: &str) -> Self {
        Payload(Bytes::copy_from_slice(text.as_bytes()))
    }
}

impl Payload {
    /// Text that lives as long as the program, without a copy.
    pub const fn from_static(text: &'static str) -> Self {
        Payload(Bytes::from_static(text.as_bytes()))
    }
}

impl TryFrom<Bytes> for Payload {
    type Error = Utf8Error;

    /// Takes the buffer as it is (no copy) once its bytes are checked to be UTF-8.
    fn try_from(bytes: Bytes) -> Result<Self, Utf8Error> {
        std::str::from_utf8(&bytes)?;
        Ok(Payload(bytes))
    }
}

impl From<Payload> for Bytes {
    fn from(payload: Payload) -> Bytes {
        payload.0
    }
}

impl fmt::Debug for Payload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for Payload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_must_be_utf8_and_are_kept_without_a_copy() {
        assert!(Payload::try_from(Bytes::from_static(b"\xff")).is_err());
        let bytes = Bytes::from("héllo".to_owned());
        let payload = Payload::try_from(bytes.clone()).expect("valid UTF-8");
        assert_eq!(payload.as_str(), "héllo");
        assert_eq!(payload.as_bytes().as_ptr(), bytes.as_ptr());
        assert!(payload.same_buffer(&payload.clone()));
        assert!(!payload.same_buffer(&Payload::from("héllo".to_owned())));
    }
}
