//! The turn's frames and flushing: every connection that got bytes this turn is written once,
//! from the sealed batch (one `writev` for all its frames), its interest follows what is left,
//! and the connections that ended are removed.
//!
//! After a quiet spell, a big flush shares its writes with a second thread
//! ([`EventLoop::write_in_parallel`]); what follows from each write stays on the loop thread.

use std::time::Duration;

use mio::Token;

use super::EventLoop;
use crate::connection::{Conn, Flushed};

/// A turn whose poll waited at least this long for events comes after a quiet spell: its
/// flush may use a second thread. Under load the poll finds events at once (a server that
/// waits on slow peers may still wait a little), and the writes stay on the loop thread.
pub(super) const IDLE_WAIT: Duration = Duration::from_millis(2);
/// Connections to flush in one turn from which waking the second writer is worth it (waking
/// it costs ~15 us; one `writev` to a loopback peer several), and the share of all
/// connections they must be (finding them walks every connection).
const PARALLEL_FLUSH_MIN: usize = 32;
const PARALLEL_FLUSH_SHARE: usize = 4;
/// Stack of the writer thread: it only runs `writev`s.
const WRITER_STACK: usize = 256 * 1024;

/// The connections to flush in this round, each once.
///
/// A connection is in the list when its `flush_round` is the list's round; taking the list
/// starts a new round, which empties it for every connection at once.
#[derive(Debug)]
pub(super) struct FlushList {
    keys: Vec<usize>,
    round: u64,
}

impl Default for FlushList {
    fn default() -> Self {
        // Connections start in round 0, so none is in the list of round 1.
        FlushList {
            keys: Vec::new(),
            round: 1,
        }
    }
}

impl FlushList {
    pub(super) fn add(&mut self, key: usize, conn: &mut Conn) {
        if conn.flush_round != self.round {
            conn.flush_round = self.round;
            self.keys.push(key);
        }
    }

    fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The round's connections; the next round begins empty.
    fn take(&mut self) -> (u64, Vec<usize>) {
        let round = self.round;
        self.round += 1;
        (round, std::mem::take(&mut self.keys))
    }
}

/// The thread that shares big flushes after a quiet spell: started once (starting a thread per
/// flush costs ~70 us here, waking a parked one ~15 us). `None` on a single CPU, or if it
/// cannot be started: then every write stays on the loop thread.
pub(super) fn second_writer() -> Option<rayon_core::ThreadPool> {
    if !std::thread::available_parallelism().is_ok_and(|n| n.get() > 1) {
        return None;
    }
    rayon_core::ThreadPoolBuilder::new()
        .num_threads(1)
        .thread_name(|_| "chat-writer".into())
        .stack_size(WRITER_STACK)
        .build()
        .inspect_err(|e| log::warn!("no second writer thread: {e}"))
        .ok()
}

impl EventLoop {
    /// The connection has bytes to write (or WRITABLE came): flush it at the end of the turn.
    pub(super) fn mark_dirty(&mut self, key: usize) {
        if let Some(conn) = self.conns.get_mut(key).filter(|c| !c.is_gone()) {
            self.dirty.add(key, conn);
        }
    }

    /// Flushes every dirty connection, then removes the connections that ended.
    pub(super) fn end_turn(&mut self) {
        // Flushing can end connections, and an ending announces itself to the others, which
        // makes more connections dirty: repeat until nothing is left to write.
        while !self.dirty.is_empty() {
            self.frame_cache = None;
            let (round, dirty) = self.dirty.take();
            let written = if self.writer.is_some()
                && self.idle_before_turn
                && dirty.len() >= PARALLEL_FLUSH_MIN
                && dirty.len() * PARALLEL_FLUSH_SHARE >= self.conns.len()
            {
                self.write_in_parallel(round)
            } else {
                Vec::new()
            };
            for key in dirty {
                // `written` is in key order (the slab's): look the result up.
                let result = written
                    .binary_search_by_key(&key, |(k, _, _)| *k)
                    .ok()
                    .map(|i| (written[i].1, written[i].2));
                self.flush(key, result);
                self.recount(key);
            }
            self.settle();
        }
        // Every connection with frames in a sealed batch was dirty and has resolved them.
        self.batch.clear_sealed();
        for key in std::mem::take(&mut self.gone) {
            let mut conn = self.conns.remove(key);
            self.uncount(&conn);
            self.metrics.open_connections -= 1;
            if let Some(ip) = conn.counted_ip() {
                self.clients.release(ip);
            }
            if let Err(e) = self.poll.registry().deregister(&mut conn.stream) {
                log::debug!("{}: deregister: {e}", conn.peer());
            }
        }
    }

    /// Writes the queues of the round's connections, half of them on the second writer
    /// thread, so a message to a big room reaches its last member sooner when the machine has
    /// a core to spare. Only the writes: what follows from each result is done by
    /// [`EventLoop::flush`] on this thread, in order, as usual. Returns each written
    /// connection's result, in key order.
    fn write_in_parallel(&mut self, round: u64) -> Vec<(usize, Flushed, u64)> {
        let Some(writer) = &self.writer else {
            return Vec::new();
        };
        let sealed = self.batch.seal();
        let mut conns: Vec<(usize, &mut Conn)> = self
            .conns
            .iter_mut()
            .filter(|(_, conn)| conn.flush_round == round && !conn.is_gone())
            .collect();
        let half = conns.len() / 2;
        let (mine, theirs) = conns.split_at_mut(half);
        let write_all = |conns: &mut [(usize, &mut Conn)]| {
            let mut bytes_out = 0;
            let results: Vec<(usize, Flushed, u64)> = conns
                .iter_mut()
                .map(|(key, conn)| {
                    let before = bytes_out;
                    let result = conn.flush(sealed, &mut bytes_out);
                    (*key, result, bytes_out - before)
                })
                .collect();
            (results, bytes_out)
        };
        let mut theirs_done = (Vec::new(), 0);
        // The scope returns once both halves are written (a panic on the writer surfaces here).
        let (mut results, my_bytes) = writer.in_place_scope(|scope| {
            scope.spawn(|_| theirs_done = write_all(theirs));
            write_all(mine)
        });
        let (their_results, their_bytes) = theirs_done;
        results.extend(their_results);
        self.metrics.split_flushes += 1;
        self.metrics.bytes_out += my_bytes + their_bytes;
        results
    }

    /// Writes one connection (unless the second writer already did: `written`), then acts on
    /// the result: a broken connection ends, a drained one reads again if it was paused, and
    /// the poller's interest follows what is left to write.
    fn flush(&mut self, key: usize, written: Option<(Flushed, u64)>) {
        let Some(conn) = self.conns.get_mut(key).filter(|c| !c.is_gone()) else {
            return;
        };
        let (result, bytes) = match written {
            Some(written) => written,
            None => {
                let before = self.metrics.bytes_out;
                let result = conn.flush(self.batch.seal(), &mut self.metrics.bytes_out);
                (result, self.metrics.bytes_out - before)
            }
        };
        self.metrics.flushed(bytes);
        match result {
            Flushed::Gone => {
                self.mark_gone(key);
                return;
            }
            Flushed::Blocked => {}
            Flushed::All => {
                if conn.resume_reading() {
                    self.backlog.push(key);
                }
            }
        }
        let Some(wanted) = conn.wanted_interest() else {
            return;
        };
        if wanted != conn.registered {
            match self
                .poll
                .registry()
                .reregister(&mut conn.stream, Token(key), wanted)
            {
                Ok(()) => conn.registered = wanted,
                Err(e) => {
                    log::error!("{}: reregister: {e}", conn.peer());
                    self.mark_gone(key);
                }
            }
        }
    }
}
