//! The memory budget (`--memory-budget`): what the structures that grow with clients'
//! behaviour hold together, and shedding when they would hold more.
//!
//! Four kinds are counted, in bytes:
//!
//! | kind | what | counted by |
//! |---|---|---|
//! | `history` | the rooms' messages in memory | the core ([`ChatServer::history_bytes`](chat_protocol::ChatServer::history_bytes)) |
//! | `outbound` | bytes queued to clients that the connection owns (a slow reader's backlog, responses, pongs) | [`Conn::held`] |
//! | `partial` | WebSocket messages still being received, and read buffers a large message left that could not be released (`Framing` in `connection.rs`) | [`Conn::held`] |
//! | `heads` | HTTP request heads still being received | [`Conn::held`] |
//!
//! Frames the core holds back for joiners resuming from disk
//! ([`ChatServer::held_back_bytes`](chat_protocol::ChatServer::held_back_bytes), at most
//! 16 MiB for 2 s) are counted with the connections' kinds when the history's share is worked
//! out.
//!
//! A connection is recounted after each of its reads and after each of its flushes (every
//! change to its queue is followed by a flush in the same turn), and uncounted when it is
//! removed; the totals are sums of those counts, so checking the budget costs nothing per
//! byte. The turn's batch (frames shared by many recipients, gone at the end of the turn) is
//! not counted: it is bounded by the read budget of one turn.
//!
//! When the total is over the budget the server sheds, in this order, and stops as soon as it
//! fits again:
//!
//! 1. **history**: the core gets what the rest leaves as its history budget
//!    ([`Input::HistoryBudget`]) and trims the oldest messages of the least recently active
//!    rooms (with the durable store they stay on disk for scroll-back). History is also kept
//!    within that allowance as messages arrive, so it never pushes the total over by itself.
//! 2. **outbound**: the connections holding the most outbound bytes are closed as slow
//!    consumers (1008), largest first, their backlog dropped. One holding less than
//!    [`SLOW_FLOOR`] is never closed for the budget: a client that reads keeps up.
//! 3. **partial and heads**: the connections receiving the largest unfinished messages are
//!    closed with 1009 ([`CloseReason::OverBudget`]), and the largest unfinished request heads
//!    are answered 503, largest first, down to [`PARTIAL_FLOOR`].
//!
//! Each kind's shedding is counted (`chat_memory_shed_total{kind=...}`) and a line is logged
//! at warn level, at most once a second, while the server sheds.

use std::time::{Duration, Instant};

use chat_protocol::{CloseReason, Input};

use super::EventLoop;
use crate::connection::{Conn, Held, State};

/// A connection holding fewer outbound bytes is never closed for the budget.
pub(super) const SLOW_FLOOR: usize = 16 * 1024;
/// A message or request head smaller than this is never refused for the budget: a chat line
/// or an ordinary request goes through.
pub(super) const PARTIAL_FLOOR: usize = 2 * 1024;
/// Warn at most this often while shedding.
const WARN_EVERY: Duration = Duration::from_secs(1);
/// After a shedding pass that could not get under the budget (what is left is below the
/// floors), the next pass waits until the total grew by a 64th of the budget or this long:
/// finding the largest holders walks every connection.
const RETRY_AFTER: Duration = Duration::from_millis(100);

const HISTORY: usize = 0;
const OUTBOUND: usize = 1;
const PARTIAL: usize = 2;
const HEADS: usize = 3;

/// The budget and the totals of what connections hold.
#[derive(Debug)]
pub(super) struct Memory {
    /// In bytes; `usize::MAX` when there is none.
    budget: usize,
    heads: usize,
    partial: usize,
    outbound: usize,
    /// The history budget last given to the core.
    history_given: usize,
    /// The core's trimmed count when last looked at.
    trimmed_seen: u64,
    /// A shedding pass left the total over the budget: the total and when.
    stuck: Option<(usize, Instant)>,
    last_warn: Option<Instant>,
    /// What was shed since the last warning, by kind.
    unwarned: [u64; 4],
}

impl Memory {
    /// A budget of `budget` bytes; 0 means none.
    pub(super) fn new(budget: usize) -> Self {
        let budget = if budget == 0 { usize::MAX } else { budget };
        Memory {
            budget,
            heads: 0,
            partial: 0,
            outbound: 0,
            history_given: budget,
            trimmed_seen: 0,
            stuck: None,
            last_warn: None,
            unwarned: [0; 4],
        }
    }

    fn connections(&self) -> usize {
        self.heads + self.partial + self.outbound
    }

    fn add(&mut self, was: Held, now: Held) {
        self.heads = self.heads - was.head as usize + now.head as usize;
        self.partial = self.partial - was.partial as usize + now.partial as usize;
        self.outbound = self.outbound - was.outbound as usize + now.outbound as usize;
    }
}

impl EventLoop {
    /// Counts what connection `key` holds now, then sheds if the budget is spent.
    pub(super) fn recount(&mut self, key: usize) {
        self.count(key);
        self.within_budget();
    }

    /// Counts what connection `key` holds now.
    fn count(&mut self, key: usize) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        let now = conn.held();
        let was = std::mem::replace(&mut conn.held, now);
        if was != now {
            self.memory.add(was, now);
        }
    }

    /// A connection leaves the slab: what it was counted for is released.
    pub(super) fn uncount(&mut self, conn: &Conn) {
        self.memory.add(conn.held, Held::default());
    }

    /// Gives history what the rest leaves, and sheds connections if that is not enough.
    fn within_budget(&mut self) {
        let budget = self.memory.budget;
        if budget == usize::MAX {
            self.update_gauges();
            return;
        }
        // Frames held back for joiners resuming from disk (bounded, for 2 s at most) count
        // with the connections: what history may keep is what they leave.
        let others = self.memory.connections() + self.core.held_back_bytes();
        let allowance = budget.saturating_sub(others);
        let history = self.core.history_bytes();
        // Shrink at once when history would not fit; grow back in steps, not on every byte.
        let given = self.memory.history_given;
        if history > allowance || (allowance > given && allowance - given > budget / 32) {
            self.memory.history_given = allowance;
            self.feed(Input::HistoryBudget { bytes: allowance });
        }
        let trimmed = self.core.history_trimmed();
        let newly = trimmed - self.memory.trimmed_seen;
        self.memory.trimmed_seen = trimmed;
        self.shed(HISTORY, newly);
        let total = others + self.core.history_bytes();
        if total > budget {
            let retry = self.memory.stuck.is_none_or(|(at, when)| {
                total > at + budget / 64 || self.now.instant >= when + RETRY_AFTER
            });
            if retry {
                self.shed_connections();
                let total = self.memory.connections()
                    + self.core.held_back_bytes()
                    + self.core.history_bytes();
                self.memory.stuck = (total > budget).then_some((total, self.now.instant));
            }
        } else if self.memory.stuck.is_some() {
            self.memory.stuck = None;
        }
        self.update_gauges();
    }

    fn over_budget(&self) -> bool {
        self.memory.connections() + self.core.history_bytes() > self.memory.budget
    }

    /// Closes slow consumers, then refuses unfinished messages and heads, largest first,
    /// until the total fits.
    fn shed_connections(&mut self) {
        let mut slow: Vec<(usize, usize)> = self
            .conns
            .iter()
            .filter(|(_, c)| c.client().is_some() && c.held.outbound as usize >= SLOW_FLOOR)
            .map(|(key, c)| (c.held.outbound as usize, key))
            .collect();
        slow.sort_unstable_by(|a, b| b.cmp(a));
        for (_, key) in slow {
            if !self.over_budget() {
                return;
            }
            self.close_client(key, CloseReason::SlowConsumer, true);
            self.count(key);
            self.shed(OUTBOUND, 1);
        }
        let mut receiving: Vec<(usize, usize)> = self
            .conns
            .iter()
            .map(|(key, c)| (c.held.partial.max(c.held.head) as usize, key))
            .filter(|&(held, _)| held >= PARTIAL_FLOOR)
            .collect();
        receiving.sort_unstable_by(|a, b| b.cmp(a));
        for (_, key) in receiving {
            if !self.over_budget() {
                return;
            }
            let Some(conn) = self.conns.get(key) else {
                continue;
            };
            match conn.state {
                State::WebSocket { .. } => {
                    self.close_client(key, CloseReason::OverBudget, false);
                    self.shed(PARTIAL, 1);
                }
                State::Http { .. } => {
                    self.refuse(key, 503, "server memory is full; try again later\n");
                    self.shed(HEADS, 1);
                }
                State::Closing(_) | State::Gone => continue,
            }
            self.count(key);
        }
    }

    /// Records `n` things shed of `kind`, and warns (at most once a second) while shedding.
    fn shed(&mut self, kind: usize, n: u64) {
        if n == 0 {
            return;
        }
        self.metrics.memory.shed[kind] += n;
        self.metrics.memory.shedding = true;
        let m = &mut self.memory;
        m.unwarned[kind] += n;
        let now = self.now.instant;
        if m.last_warn.is_some_and(|at| now < at + WARN_EVERY) {
            return;
        }
        m.last_warn = Some(now);
        let [history, slow, partial, heads] = std::mem::take(&mut m.unwarned);
        log::warn!(
            "memory budget of {} bytes spent (history {}, outbound {}, partial {}, heads {}): \
             trimmed {history} messages of history, closed {slow} slow consumers, refused \
             {partial} unfinished messages and {heads} request heads",
            m.budget,
            self.core.history_bytes(),
            m.outbound,
            m.partial,
            m.heads,
        );
    }

    fn update_gauges(&mut self) {
        let m = &self.memory;
        let g = &mut self.metrics.memory;
        g.budget = if m.budget == usize::MAX {
            0
        } else {
            m.budget as u64
        };
        g.used = [
            self.core.history_bytes() as u64,
            m.outbound as u64,
            m.partial as u64,
            m.heads as u64,
        ];
        if g.shedding && g.used.iter().sum::<u64>() <= g.budget / 8 * 7 {
            g.shedding = false;
        }
    }
}
