//! A connection's bytes on their way to the socket.
//!
//! Chunks are reference-counted `Bytes`: a broadcast frame is encoded once and the same chunk
//! sits in every recipient's queue. One `writev` sends many queued chunks at once, so a loop
//! turn costs one syscall per connection however many frames it got. A chunk that was partly
//! written stays at the front with an offset; nothing is ever written twice.

use std::collections::VecDeque;
use std::io::{self, IoSlice, Write};

use bytes::Bytes;

/// Chunks handed to one `writev` call, at most (Linux allows 1024).
const MAX_IOVECS: usize = 64;

#[derive(Debug, Default)]
pub struct Outbound {
    chunks: VecDeque<Bytes>,
    /// Bytes of the front chunk already written.
    written: usize,
    /// Bytes queued and not yet written.
    len: usize,
}

impl Outbound {
    /// Bytes still to write.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn push(&mut self, chunk: Bytes) {
        if !chunk.is_empty() {
            self.len += chunk.len();
            self.chunks.push_back(chunk);
        }
    }

    /// Drops every chunk not yet started. A partly written frame is kept so the stream stays
    /// well-framed for whatever follows (a close frame).
    pub fn drop_unstarted(&mut self) {
        let keep = usize::from(self.written > 0);
        self.chunks.truncate(keep);
        self.len = self.chunks.front().map_or(0, |c| c.len() - self.written);
        if self.chunks.is_empty() {
            self.written = 0;
        }
    }

    /// Writes as much as the socket takes. `Ok(true)`: everything is out; `Ok(false)`: the
    /// socket is full (WouldBlock), the rest waits for WRITABLE.
    pub fn write_to(&mut self, sink: &mut impl Write) -> io::Result<bool> {
        while !self.chunks.is_empty() {
            let mut slices = [IoSlice::new(&[]); MAX_IOVECS];
            let mut count = 0;
            for (i, chunk) in self.chunks.iter().take(MAX_IOVECS).enumerate() {
                let start = if i == 0 { self.written } else { 0 };
                slices[i] = IoSlice::new(&chunk[start..]);
                count += 1;
            }
            match sink.write_vectored(&slices[..count]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => self.consume(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        if self.chunks.capacity() > 8 {
            // A burst is over: an idle connection keeps no bookkeeping for it (a join storm
            // leaves thousands of idle connections behind; each would keep its peak otherwise).
            self.chunks = VecDeque::new();
        }
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
        let mut out = Outbound::default();
        for chunk in ["hello ", "shared ", "world"] {
            out.push(Bytes::from_static(chunk.as_bytes()));
        }
        assert_eq!(out.len(), 18);
        let mut sink = Trickle {
            got: Vec::new(),
            per_call: 4,
            calls_left: 2,
        };
        assert!(!out.write_to(&mut sink).unwrap());
        // The default write_vectored writes only the first slice: "hell", then "o ".
        assert_eq!(out.len(), 12);
        assert_eq!(sink.got, b"hello ");
        sink.calls_left = 100;
        assert!(out.write_to(&mut sink).unwrap());
        assert_eq!(sink.got, b"hello shared world");
        assert_eq!(out.len(), 0);
    }

    #[test]
    fn dropping_unstarted_chunks_keeps_a_partial_frame() {
        let mut out = Outbound::default();
        out.push(Bytes::from_static(b"abcdef"));
        out.push(Bytes::from_static(b"ghij"));
        let mut sink = Trickle {
            got: Vec::new(),
            per_call: 2,
            calls_left: 1,
        };
        assert!(!out.write_to(&mut sink).unwrap());
        out.drop_unstarted();
        assert_eq!(out.len(), 4);
        out.push(Bytes::from_static(b"Z"));
        sink.calls_left = 100;
        assert!(out.write_to(&mut sink).unwrap());
        assert_eq!(sink.got, b"abcdefZ");

        let mut fresh = Outbound::default();
        fresh.push(Bytes::from_static(b"x"));
        fresh.drop_unstarted();
        assert_eq!(fresh.len(), 0);
    }
}
