//! The frames of one loop turn, encoded back to back in one buffer.
//!
//! Every frame the chat core asks for during a turn is encoded once, appended here, and
//! queued to its recipients as a [`Span`] (offsets, no reference count, no allocation). A
//! recipient that gets several frames in a row (the joins of a storm, a burst of messages)
//! ends up with one span covering all of them: one queue entry and one `iovec` however many
//! frames. Before connections are flushed the batch is [sealed](Batch::seal) into shared
//! `Bytes`, and each span becomes a slice of it.
//!
//! "Seal before you flush" is kept by the types: a connection's queue is written only with
//! a [`&Sealed`](Sealed), and the only way to get one is [`Batch::seal`], which closes the
//! open batch. While that borrow lives no frame can be added, so nothing queued for a flush
//! can be missing from the sealed bytes.
//!
//! The buffer is a `BytesMut`: once every slice of a sealed batch has been written, the same
//! allocation takes the next turns' frames, so steady traffic allocates nothing per frame.

use bytes::{BufMut, Bytes, BytesMut};
use tungstenite::protocol::frame::coding::{Data, OpCode};
use tungstenite::protocol::frame::Frame;

/// Room made for frames at a time: one allocation holds many turns of ordinary traffic.
const BLOCK: usize = 64 * 1024;
/// A batch this large is sealed before more is appended, which bounds what one shared buffer
/// can keep alive.
const SEAL_AT: usize = 1024 * 1024;

/// A run of frames in one batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    pub batch: u32,
    pub start: usize,
    pub end: usize,
}

impl Span {
    pub fn len(&self) -> usize {
        self.end - self.start
    }

    /// `next` continues this span (same batch, right after it): the two can be one.
    pub fn extend(&mut self, next: Span) -> bool {
        if next.batch == self.batch && next.start == self.end {
            self.end = next.end;
            true
        } else {
            false
        }
    }
}

#[derive(Debug, Default)]
pub struct Batch {
    /// Frames of the open batch.
    buf: BytesMut,
    /// The open batch's number.
    id: u32,
    /// Batches sealed since [`Batch::clear_sealed`].
    sealed: Sealed,
}

/// The batches sealed so far in this turn, by number: what flushes are written from.
#[derive(Debug, Default)]
pub struct Sealed(Vec<(u32, Bytes)>);

impl Sealed {
    /// The bytes of a span of a sealed batch.
    pub fn slice(&self, span: Span) -> Option<Bytes> {
        self.0
            .iter()
            .rev()
            .find(|(id, _)| *id == span.batch)
            .map(|(_, bytes)| bytes.slice(span.start..span.end))
    }
}

impl Batch {
    /// Encodes a text frame with this payload (unmasked, final) into the open batch.
    pub fn text_frame(&mut self, payload: Bytes) -> Span {
        if self.buf.len() >= SEAL_AT {
            self.close_open();
        }
        // Header: 2 bytes, plus 2 or 8 for the length.
        let need = payload.len() + 10;
        if self.buf.capacity() - self.buf.len() < need {
            self.buf.reserve(need.max(BLOCK));
        }
        let start = self.buf.len();
        let mut writer = (&mut self.buf).writer();
        Frame::message(payload, OpCode::Data(Data::Text), true)
            .format(&mut writer)
            .expect("writing a frame into memory cannot fail");
        let end = self.buf.len();
        Span {
            batch: self.id,
            start,
            end,
        }
    }

    /// Closes the open batch and returns every batch sealed this turn: what connections are
    /// flushed from. The next frame, even of the same payload, goes into a new batch.
    pub fn seal(&mut self) -> &Sealed {
        self.close_open();
        &self.sealed
    }

    fn close_open(&mut self) {
        if !self.buf.is_empty() {
            let bytes = self.buf.split().freeze();
            self.sealed.0.push((self.id, bytes));
            self.id = self.id.wrapping_add(1);
        }
    }

    /// Gives back the buffer a burst grew (up to [`SEAL_AT`] and more), when nothing is open
    /// or sealed: for a quiet loop (`event_loop/spare.rs`). The next frame starts a new block.
    pub fn release_spare(&mut self) {
        if self.buf.is_empty() && self.sealed.0.is_empty() {
            self.buf = BytesMut::new();
            self.sealed.0 = Vec::new();
        }
    }

    /// Forgets the sealed batches once no span of them is left unresolved (the slices handed
    /// out keep their bytes alive as long as they need them).
    pub fn clear_sealed(&mut self) {
        self.sealed.0.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tungstenite::protocol::frame::FrameHeader;

    fn decode(bytes: &[u8]) -> Vec<String> {
        let mut cursor = std::io::Cursor::new(bytes);
        let mut texts = Vec::new();
        while (cursor.position() as usize) < bytes.len() {
            let (header, len) = FrameHeader::parse(&mut cursor).unwrap().unwrap();
            assert!(header.is_final);
            assert_eq!(header.opcode, OpCode::Data(Data::Text));
            let at = cursor.position() as usize;
            let text = &bytes[at..at + len as usize];
            texts.push(String::from_utf8(text.to_vec()).unwrap());
            cursor.set_position((at + len as usize) as u64);
        }
        texts
    }

    #[test]
    fn frames_in_a_row_make_one_span_and_decode_back() {
        let mut batch = Batch::default();
        let mut a = batch.text_frame(Bytes::from_static(b"one"));
        let b = batch.text_frame(Bytes::from(vec![b'x'; 300]));
        let c = batch.text_frame(Bytes::from_static(b"three"));
        assert!(a.extend(b));
        assert!(a.extend(c));
        let bytes = batch.seal().slice(a).unwrap();
        assert_eq!(bytes.len(), a.len());
        assert_eq!(decode(&bytes), ["one", &"x".repeat(300), "three"]);
    }

    #[test]
    fn spans_of_different_batches_or_with_a_hole_stay_apart() {
        let mut batch = Batch::default();
        let mut a = batch.text_frame(Bytes::from_static(b"a"));
        let _skipped = batch.text_frame(Bytes::from_static(b"b"));
        let c = batch.text_frame(Bytes::from_static(b"c"));
        assert!(!a.extend(c), "a frame in between belongs to someone else");
        batch.seal();
        let d = batch.text_frame(Bytes::from_static(b"d"));
        assert_ne!(d.batch, c.batch);
        assert!(!a.extend(d));
        let sealed = batch.seal();
        assert_eq!(decode(&sealed.slice(c).unwrap()), ["c"]);
        assert_eq!(decode(&sealed.slice(d).unwrap()), ["d"]);
        batch.clear_sealed();
        assert_eq!(batch.seal().slice(d), None);
    }

    #[test]
    fn a_large_batch_is_sealed_before_it_grows_further() {
        let mut batch = Batch::default();
        let first = batch.text_frame(Bytes::from(vec![b'y'; SEAL_AT]));
        let second = batch.text_frame(Bytes::from_static(b"z"));
        assert_ne!(first.batch, second.batch);
        let sealed = batch.seal();
        assert_eq!(decode(&sealed.slice(second).unwrap()), ["z"]);
        assert_eq!(sealed.slice(first).unwrap().len(), first.len());
    }

    #[test]
    fn sealing_an_empty_batch_changes_nothing() {
        let mut batch = Batch::default();
        batch.seal();
        let span = batch.text_frame(Bytes::from_static(b"only"));
        assert_eq!(span.batch, 0);
    }
}
