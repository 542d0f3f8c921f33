//! A connection's bytes on their way to the socket.
//!
//! Broadcast frames arrive as [`Span`]s of the turn's [`Batch`](crate::batch::Batch) (frames received in a row
//! merge into one entry) and become shared `Bytes` slices when the batch is sealed, just
//! before the flush; the connection's own bytes (HTTP responses, tungstenite's pongs and close
//! frames) are chunks of their own, in order with the rest. One `writev` sends many chunks at
//! once, so a loop turn costs one syscall per connection however many frames it got. A chunk
//! that was partly written stays at the front with an offset; nothing is ever written twice.

use std::collections::VecDeque;
use std::io::{self, IoSlice, Write};

use bytes::Bytes;
use std::io::Cursor;
use tungstenite::protocol::frame::FrameHeader;

#[cfg(test)]
use crate::batch::Batch;
use crate::batch::{Sealed, Span};

/// Chunks handed to one `writev` call, at most (Linux allows 1024).
const MAX_IOVECS: usize = 64;

#[derive(Debug)]
enum Chunk {
    /// Frames of a batch not sealed yet.
    Pending(Span),
    /// Bytes to write.
    Ready {
        bytes: Bytes,
        /// Whole WebSocket frames, back to back (batch frames): a write that stops inside
        /// can be cut at the end of the frame it stopped in.
        frames: bool,
        /// A slice of a sealed batch, shared with other connections.
        shared: bool,
    },
}

impl Chunk {
    fn len(&self) -> usize {
        match self {
            Chunk::Pending(span) => span.len(),
            Chunk::Ready { bytes, .. } => bytes.len(),
        }
    }
}

/// Where to cut `bytes` (whole frames back to back) when `at` bytes of it are written: at the
/// end of the frame being written, or at `at` itself if that is between two frames.
fn frame_end(bytes: &[u8], at: usize) -> usize {
    let mut cursor = Cursor::new(bytes);
    loop {
        let start = cursor.position() as usize;
        if at <= start {
            return start;
        }
        match FrameHeader::parse(&mut cursor) {
            Ok(Some((_, len))) => {
                let end = (cursor.position() as usize).saturating_add(len as usize);
                if at < end || end >= bytes.len() {
                    return end.min(bytes.len());
                }
                cursor.set_position(end as u64);
            }
            // Not frames after all: keep everything rather than cut a frame.
            _ => return bytes.len(),
        }
    }
}

/// The chunks of one queue, in order: the first inline, the rest (rarely any) in a boxed
/// deque. A turn of a join storm queues one span (the turn's notices, merged) on every
/// connection: inline, it costs no allocation, where a deque's buffer (160 bytes) for each of
/// thousands of connections, freed between long-lived allocations of the same turn, left
/// glibc's heap that much larger for good. Boxed, the rest costs an idle connection 8 bytes.
#[derive(Debug, Default)]
struct Chunks {
    /// `None` only while `rest` is empty too.
    first: Option<Chunk>,
    /// `None`, or not empty. Boxed on purpose: 8 bytes in every connection instead of 32.
    #[allow(clippy::box_collection)]
    rest: Option<Box<VecDeque<Chunk>>>,
}

type Rest = std::iter::Flatten<std::option::IntoIter<VecDeque<Chunk>>>;

impl Chunks {
    fn is_empty(&self) -> bool {
        self.first.is_none()
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        usize::from(self.first.is_some()) + self.rest.as_ref().map_or(0, |r| r.len())
    }

    fn iter(&self) -> impl Iterator<Item = &Chunk> {
        self.first
            .iter()
            .chain(self.rest.iter().flat_map(|r| r.iter()))
    }

    fn iter_mut(&mut self) -> impl Iterator<Item = &mut Chunk> {
        self.first
            .iter_mut()
            .chain(self.rest.iter_mut().flat_map(|r| r.iter_mut()))
    }

    fn front(&self) -> Option<&Chunk> {
        self.first.as_ref()
    }

    fn front_mut(&mut self) -> Option<&mut Chunk> {
        self.first.as_mut()
    }

    fn back_mut(&mut self) -> Option<&mut Chunk> {
        match self.rest.as_mut().and_then(|r| r.back_mut()) {
            Some(last) => Some(last),
            None => self.first.as_mut(),
        }
    }

    fn push_back(&mut self, chunk: Chunk) {
        if self.first.is_none() {
            self.first = Some(chunk);
        } else {
            self.rest.get_or_insert_default().push_back(chunk);
        }
    }

    fn pop_front(&mut self) -> Option<Chunk> {
        let front = self.first.take();
        if let Some(rest) = &mut self.rest {
            self.first = rest.pop_front();
            if rest.is_empty() {
                self.rest = None;
            }
        }
        front
    }

    fn truncate(&mut self, len: usize) {
        if len <= 1 {
            self.rest = None;
        }
        if len == 0 {
            self.first = None;
        }
        if let Some(rest) = &mut self.rest {
            rest.truncate(len - 1);
        }
    }

    /// Whether the queue holds an allocation of its own (only with two chunks or more).
    #[cfg(test)]
    fn allocated(&self) -> bool {
        self.rest.is_some()
    }
}

impl IntoIterator for Chunks {
    type Item = Chunk;
    type IntoIter = std::iter::Chain<std::option::IntoIter<Chunk>, Rest>;

    fn into_iter(self) -> Self::IntoIter {
        self.first
            .into_iter()
            .chain(self.rest.map(|rest| *rest).into_iter().flatten())
    }
}

#[derive(Debug, Default)]
pub struct WriteQueue {
    chunks: Chunks,
    /// Bytes of the front chunk already written.
    written: usize,
    /// Bytes queued and not yet written.
    len: usize,
}

impl WriteQueue {
    /// Bytes still to write.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Bytes still to write that this queue owns: everything but the frames it shares with the
    /// turn's batch (counted once, as the batch's). After a flush that left bytes behind it
    /// owns all it still has to write ([`WriteQueue::own_shared`]).
    pub fn owned(&self) -> usize {
        let mut owned = 0;
        for (i, chunk) in self.chunks.iter().enumerate() {
            if let Chunk::Ready {
                bytes,
                shared: false,
                ..
            } = chunk
            {
                owned += bytes.len() - if i == 0 { self.written } else { 0 };
            }
        }
        owned
    }

    /// Queues bytes of this connection's own.
    pub fn push(&mut self, chunk: Bytes) {
        if !chunk.is_empty() {
            self.len += chunk.len();
            self.chunks.push_back(Chunk::Ready {
                bytes: chunk,
                frames: false,
                shared: false,
            });
        }
    }

    /// Queues frames of the open batch; they join the previous entry when they follow it.
    pub fn push_span(&mut self, span: Span) {
        if span.len() == 0 {
            return;
        }
        self.len += span.len();
        if let Some(Chunk::Pending(last)) = self.chunks.back_mut() {
            if last.extend(span) {
                return;
            }
        }
        self.chunks.push_back(Chunk::Pending(span));
    }

    /// Turns the spans of sealed batches into bytes. A `&Sealed` comes only from
    /// [`Batch::seal`](crate::batch::Batch::seal), so every span queued so far is in it.
    fn resolve(&mut self, sealed: &Sealed) {
        for chunk in self.chunks.iter_mut() {
            if let Chunk::Pending(span) = *chunk {
                match sealed.slice(span) {
                    Some(bytes) => {
                        *chunk = Chunk::Ready {
                            bytes,
                            frames: true,
                            shared: true,
                        }
                    }
                    None => {
                        // A bug in the event loop; leave the bytes out rather than send garbage.
                        log::error!("frames of batch {} were never sealed", span.batch);
                        *chunk = Chunk::Ready {
                            bytes: Bytes::new(),
                            frames: false,
                            shared: false,
                        };
                        self.len -= span.len();
                    }
                }
            }
        }
    }

    /// Copies what is still owed from shared batches into buffers of this connection's own
    /// (consecutive slices into one). A connection that cannot keep up must not keep whole
    /// batches of other connections' frames alive for the few bytes of them it still owes;
    /// what it owes itself is bounded by the slow-consumer limit. Each byte is copied at most
    /// once however long the connection stays behind.
    fn own_shared(&mut self) {
        if !self
            .chunks
            .iter()
            .any(|c| matches!(c, Chunk::Ready { shared: true, .. }))
        {
            return;
        }
        let mut rest = Chunks::default();
        let mut copy: Vec<u8> = Vec::new();
        for (i, chunk) in std::mem::take(&mut self.chunks).into_iter().enumerate() {
            match chunk {
                // The front chunk keeps its shape: `written` counts into it.
                Chunk::Ready {
                    bytes,
                    shared: true,
                    ..
                } if i == 0 => rest.push_back(Chunk::Ready {
                    bytes: Bytes::copy_from_slice(&bytes),
                    frames: true,
                    shared: false,
                }),
                Chunk::Ready {
                    bytes,
                    shared: true,
                    ..
                } => copy.extend_from_slice(&bytes),
                other => {
                    if !copy.is_empty() {
                        rest.push_back(Chunk::Ready {
                            bytes: Bytes::from(std::mem::take(&mut copy)),
                            frames: true,
                            shared: false,
                        });
                    }
                    rest.push_back(other);
                }
            }
        }
        if !copy.is_empty() {
            rest.push_back(Chunk::Ready {
                bytes: Bytes::from(copy),
                frames: true,
                shared: false,
            });
        }
        self.chunks = rest;
    }

    /// Drops every frame not yet started. A partly written frame is finished, so the stream
    /// stays well-framed for whatever follows (a close frame).
    pub fn drop_unstarted(&mut self) {
        let keep = usize::from(self.written > 0);
        self.chunks.truncate(keep);
        if let Some(Chunk::Ready {
            bytes,
            frames: true,
            ..
        }) = self.chunks.front_mut()
        {
            let end = frame_end(bytes, self.written);
            bytes.truncate(end);
        }
        self.len = self.chunks.front().map_or(0, |c| c.len() - self.written);
        if self.chunks.is_empty() {
            self.written = 0;
        }
    }

    /// Writes as much as the socket takes, with one `writev` per [`MAX_IOVECS`] chunks: this
    /// is where bytes meet the socket. `Ok(true)`: everything is out; `Ok(false)`: the socket
    /// is full (WouldBlock), the rest waits for WRITABLE. A queue left behind copies what it
    /// owes out of the shared batches ([`WriteQueue::own_shared`]), so it never pins them.
    pub fn write_to(&mut self, sealed: &Sealed, sink: &mut impl Write) -> io::Result<bool> {
        self.resolve(sealed);
        let all = self.write_resolved(sink)?;
        if !all {
            self.own_shared();
        }
        Ok(all)
    }

    /// Resolves the queued spans without writing anything, and copies what is owed out of the
    /// shared batches: for a connection whose bytes must wait this turn (a TLS session whose
    /// earlier records are not out yet), so it does not pin the batches either.
    pub fn hold(&mut self, sealed: &Sealed) {
        self.resolve(sealed);
        if self.len > 0 {
            self.own_shared();
        }
    }

    /// Writes chunks up to the first unresolved one.
    fn write_resolved(&mut self, sink: &mut impl Write) -> io::Result<bool> {
        while !self.chunks.is_empty() {
            let mut slices = [IoSlice::new(&[]); MAX_IOVECS];
            let mut count = 0;
            for (i, chunk) in self.chunks.iter().take(MAX_IOVECS).enumerate() {
                let Chunk::Ready { bytes, .. } = chunk else {
                    break;
                };
                let start = if i == 0 { self.written } else { 0 };
                slices[i] = IoSlice::new(&bytes[start..]);
                count += 1;
            }
            if count == 0 {
                // Unresolved frames at the front: nothing can be written before them.
                return Ok(false);
            }
            match sink.write_vectored(&slices[..count]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => self.consume(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        // Nothing is owed: an idle connection keeps no queue at all (a join storm leaves
        // thousands of idle connections behind).
        self.chunks = Chunks::default();
        Ok(true)
    }

    fn consume(&mut self, mut n: usize) {
        self.len -= n;
        while n > 0 {
            let Some(front) = self.chunks.front() else {
                break;
            };
            let left = front.len() - self.written;
            if n < left {
                self.written += n;
                return;
            }
            n -= left;
            self.written = 0;
            self.chunks.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A sink that takes at most `budget` bytes per call, then blocks.
    struct Trickle {
        got: Vec<u8>,
        per_call: usize,
        calls_left: usize,
    }

    fn trickle(per_call: usize, calls_left: usize) -> Trickle {
        Trickle {
            got: Vec::new(),
            per_call,
            calls_left,
        }
    }

    impl Write for Trickle {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            if self.calls_left == 0 {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            self.calls_left -= 1;
            let n = buf.len().min(self.per_call);
            self.got.extend_from_slice(&buf[..n]);
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn partial_writes_resume_where_they_stopped() {
        let mut out = WriteQueue::default();
        for chunk in ["hello ", "shared ", "world"] {
            out.push(Bytes::from_static(chunk.as_bytes()));
        }
        assert_eq!(out.len(), 18);
        let mut sink = trickle(4, 2);
        assert!(!out.write_resolved(&mut sink).unwrap());
        // The default write_vectored writes only the first slice: "hell", then "o ".
        assert_eq!(out.len(), 12);
        assert_eq!(sink.got, b"hello ");
        sink.calls_left = 100;
        assert!(out.write_resolved(&mut sink).unwrap());
        assert_eq!(sink.got, b"hello shared world");
        assert_eq!(out.len(), 0);
    }

    #[test]
    fn dropping_unstarted_chunks_keeps_a_partial_frame() {
        let mut out = WriteQueue::default();
        out.push(Bytes::from_static(b"abcdef"));
        out.push(Bytes::from_static(b"ghij"));
        let mut sink = trickle(2, 1);
        assert!(!out.write_resolved(&mut sink).unwrap());
        out.drop_unstarted();
        assert_eq!(out.len(), 4);
        out.push(Bytes::from_static(b"Z"));
        sink.calls_left = 100;
        assert!(out.write_resolved(&mut sink).unwrap());
        assert_eq!(sink.got, b"abcdefZ");

        let mut fresh = WriteQueue::default();
        fresh.push(Bytes::from_static(b"x"));
        fresh.drop_unstarted();
        assert_eq!(fresh.len(), 0);
    }

    fn text(bytes: &[u8]) -> Vec<String> {
        let mut cursor = Cursor::new(bytes);
        let mut texts = Vec::new();
        while (cursor.position() as usize) < bytes.len() {
            let (_, len) = FrameHeader::parse(&mut cursor).unwrap().unwrap();
            let at = cursor.position() as usize;
            texts.push(String::from_utf8(bytes[at..at + len as usize].to_vec()).unwrap());
            cursor.set_position((at + len as usize) as u64);
        }
        texts
    }

    fn frames(batch: &mut Batch, texts: &[&str]) -> Vec<Span> {
        texts
            .iter()
            .map(|t| batch.text_frame(Bytes::copy_from_slice(t.as_bytes())))
            .collect()
    }

    #[test]
    fn frames_in_a_row_are_one_chunk_and_one_iovec() {
        let mut batch = Batch::default();
        let spans = frames(&mut batch, &["a", "bb", "ccc"]);
        let mut out = WriteQueue::default();
        for span in &spans {
            out.push_span(*span);
        }
        assert_eq!(out.chunks.len(), 1);
        assert_eq!(out.len(), spans.iter().map(Span::len).sum::<usize>());
        out.resolve(batch.seal());
        let mut sink = trickle(usize::MAX, 1);
        assert!(out.write_resolved(&mut sink).unwrap());
        assert_eq!(text(&sink.got), ["a", "bb", "ccc"]);
        assert!(
            out.chunks.is_empty() && !out.chunks.allocated(),
            "an idle connection keeps no queue"
        );
    }

    #[test]
    fn own_bytes_between_frames_keep_their_place() {
        let mut batch = Batch::default();
        let spans = frames(&mut batch, &["one", "two"]);
        let mut out = WriteQueue::default();
        out.push_span(spans[0]);
        out.push(Bytes::from_static(b"\x89\x00")); // a ping, written by tungstenite
        out.push_span(spans[1]);
        assert_eq!(out.chunks.len(), 3);
        out.resolve(batch.seal());
        let mut sink = trickle(usize::MAX, 3);
        assert!(out.write_resolved(&mut sink).unwrap());
        let one = batch.seal().slice(spans[0]).unwrap();
        let two = batch.seal().slice(spans[1]).unwrap();
        assert_eq!(sink.got, [&one[..], b"\x89\x00", &two[..]].concat());
    }

    #[test]
    fn a_blocked_connection_copies_what_it_owes_and_frees_the_batch() {
        let mut batch = Batch::default();
        let spans = frames(&mut batch, &["first", "second", "third"]);
        let mut out = WriteQueue::default();
        out.push_span(spans[0]);
        out.push(Bytes::from_static(b"\x8a\x00")); // a pong
        out.push_span(spans[1]);
        out.push_span(spans[2]);
        out.resolve(batch.seal());
        let mut sink = trickle(3, 1);
        assert!(!out.write_resolved(&mut sink).unwrap());
        let owed = out.len();
        out.own_shared();
        assert_eq!(out.len(), owed);
        assert!(out
            .chunks
            .iter()
            .all(|c| matches!(c, Chunk::Ready { shared: false, .. })));
        // The batch is no longer needed by this connection.
        batch.clear_sealed();
        sink.calls_left = 100;
        sink.per_call = usize::MAX;
        assert!(out.write_resolved(&mut sink).unwrap());
        let mut expected = Vec::new();
        let mut again = Batch::default();
        for (i, t) in ["first", "second", "third"].iter().enumerate() {
            let span = again.text_frame(Bytes::copy_from_slice(t.as_bytes()));
            expected.extend_from_slice(&again.seal().slice(span).unwrap());
            if i == 0 {
                expected.extend_from_slice(b"\x8a\x00");
            }
        }
        assert_eq!(sink.got, expected);
    }

    #[test]
    fn dropping_keeps_only_the_frame_being_written() {
        let mut batch = Batch::default();
        let spans = frames(&mut batch, &["aaaa", "bbbb", "cccc"]);
        let mut out = WriteQueue::default();
        for span in &spans {
            out.push_span(*span);
        }
        out.resolve(batch.seal());
        // Two bytes of the first frame written (header only).
        let mut sink = trickle(2, 1);
        assert!(!out.write_resolved(&mut sink).unwrap());
        out.drop_unstarted();
        out.push(Bytes::from_static(b"\x88\x00")); // the close frame
        sink.calls_left = 100;
        sink.per_call = usize::MAX;
        assert!(out.write_resolved(&mut sink).unwrap());
        let got = sink.got;
        assert_eq!(text(&got[..got.len() - 2]), ["aaaa"]);
        assert_eq!(&got[got.len() - 2..], b"\x88\x00");

        // Stopped exactly between two frames: nothing of the next one is kept.
        let first_len = spans[0].len();
        let mut out = WriteQueue::default();
        for span in &spans {
            out.push_span(*span);
        }
        out.resolve(batch.seal());
        let mut sink = trickle(first_len, 1);
        assert!(!out.write_resolved(&mut sink).unwrap());
        out.drop_unstarted();
        assert_eq!(out.len(), 0);
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        #[derive(Debug, Clone)]
        enum Op {
            /// A frame of `len` text bytes into the batch; queued here only if `mine` (the
            /// others are other connections' frames, which leave holes between spans).
            Frame { len: usize, mine: bool },
            /// A control frame of this connection's own (a pong with `len` bytes).
            Own { len: usize },
            /// Seal, resolve and write to a socket that takes `per_call` bytes `calls` times,
            /// as a loop turn does.
            Flush { per_call: usize, calls: usize },
        }

        fn op() -> impl Strategy<Value = Op> {
            prop_oneof![
                4 => (0usize..300, any::<bool>()).prop_map(|(len, mine)| Op::Frame { len, mine }),
                1 => (0usize..126).prop_map(|len| Op::Own { len }),
                2 => (1usize..400, 0usize..4).prop_map(|(per_call, calls)| Op::Flush { per_call, calls }),
            ]
        }

        fn pong(len: usize) -> Vec<u8> {
            let mut frame = vec![0x8a, len as u8];
            frame.extend(std::iter::repeat_n(b'p', len));
            frame
        }

        /// Runs `ops`; returns the queue, the sink, the batch, what should come out in order,
        /// and where each queued frame starts in it.
        fn run(ops: &[Op]) -> (WriteQueue, Trickle, Batch, Vec<u8>, Vec<usize>) {
            let mut out = WriteQueue::default();
            let mut batch = Batch::default();
            let mut sink = trickle(0, 0);
            let mut expected = Vec::new();
            let mut starts = Vec::new();
            for op in ops {
                match *op {
                    Op::Frame { len, mine } => {
                        let span = batch.text_frame(Bytes::from(vec![b'x'; len]));
                        if mine {
                            starts.push(expected.len());
                            // The bytes are known once sealed; remember the span for now.
                            expected.extend(std::iter::repeat_n(0, span.len()));
                            out.push_span(span);
                            let at = expected.len() - span.len();
                            let mut probe = Batch::default();
                            let same = probe.text_frame(Bytes::from(vec![b'x'; len]));
                            let bytes = probe.seal().slice(same).unwrap();
                            expected[at..].copy_from_slice(&bytes);
                        }
                    }
                    Op::Own { len } => {
                        starts.push(expected.len());
                        expected.extend(pong(len));
                        out.push(Bytes::from(pong(len)));
                    }
                    Op::Flush { per_call, calls } => {
                        out.resolve(batch.seal());
                        batch.clear_sealed();
                        sink.per_call = per_call;
                        sink.calls_left = calls;
                        if !out.write_resolved(&mut sink).unwrap() {
                            out.own_shared();
                        }
                    }
                }
                assert_eq!(out.len() + sink.got.len(), expected.len());
            }
            out.resolve(batch.seal());
            (out, sink, batch, expected, starts)
        }

        proptest! {
            #![proptest_config(ProptestConfig {
                failure_persistence: None,
                ..ProptestConfig::default()
            })]

            /// Whatever the mix of frames, holes, own bytes and partial writes, the socket
            /// gets exactly this connection's frames, once each, in order.
            #[test]
            fn the_socket_gets_every_queued_byte_once_in_order(
                ops in prop::collection::vec(op(), 0..60),
            ) {
                let (mut out, mut sink, _batch, expected, _) = run(&ops);
                sink.per_call = usize::MAX;
                sink.calls_left = usize::MAX;
                prop_assert!(out.write_resolved(&mut sink).unwrap());
                prop_assert_eq!(out.len(), 0);
                prop_assert_eq!(sink.got, expected);
            }

            /// Dropping what has not started keeps the stream well-framed: the frame being
            /// written is finished, nothing after it is sent, and a close frame can follow.
            #[test]
            fn dropping_the_backlog_finishes_only_the_frame_in_progress(
                ops in prop::collection::vec(op(), 0..60),
            ) {
                let (mut out, mut sink, _batch, expected, starts) = run(&ops);
                let written = sink.got.len();
                out.drop_unstarted();
                let close = [0x88u8, 0x00];
                out.push(Bytes::copy_from_slice(&close));
                sink.per_call = usize::MAX;
                sink.calls_left = usize::MAX;
                prop_assert!(out.write_resolved(&mut sink).unwrap());
                // The end of the frame in progress, or `written` if it fell between frames.
                let cut = starts
                    .iter()
                    .chain(std::iter::once(&expected.len()))
                    .copied()
                    .find(|&start| start >= written)
                    .unwrap_or(expected.len());
                let mut want = expected[..cut].to_vec();
                want.extend_from_slice(&close);
                prop_assert_eq!(sink.got, want);
            }
        }
    }
}
