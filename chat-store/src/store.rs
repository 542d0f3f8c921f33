//! [`Store`] (opened, not yet running) and [`RunningStore`] (the storage thread's channel API).

use std::fs::File;
use std::io;
use std::path::PathBuf;
use std::sync::mpsc::{self, Sender};
use std::sync::Arc;
use std::thread::{self, JoinHandle};

use rusqlite::Connection;

use crate::stats::Stats;
use crate::{worker, Ban, Completion, Message, Retention};

/// An opened database, owned by the caller until [`start`](Store::start) hands it to the
/// storage thread. Dropping it closes the database without marking it clean (the next start
/// takes a new epoch).
#[derive(Debug)]
pub struct Store {
    pub(crate) conn: Connection,
    /// Held (locked) for the whole run; released when the storage thread ends.
    pub(crate) lock: File,
    pub(crate) path: PathBuf,
    pub(crate) epoch: u64,
    pub(crate) retention: Retention,
    /// Rooms whose count retention is still to be checked.
    pub(crate) rooms_to_prune: Vec<String>,
    pub(crate) stats: Arc<Stats>,
}

/// What the storage thread is asked to do, in order.
#[derive(Debug)]
pub(crate) enum Request {
    Append(u64, Message),
    Fetch {
        ticket: u64,
        room: String,
        before: u64,
        limit: usize,
    },
    MaxDbBytes(Option<u64>),
    Ban(Ban),
    DeleteText {
        room: String,
        id: u64,
    },
    Account(u64, crate::AccountQuery),
    Shutdown,
}

impl Store {
    /// The statistics the storage thread will keep (the same `Arc` as
    /// [`RunningStore::stats`]).
    pub fn stats(&self) -> Arc<Stats> {
        self.stats.clone()
    }

    /// The epoch of this run (also in [`Opened::epoch`](crate::Opened::epoch)).
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Spawns the storage thread (named `chat-store`), which owns the database from now on and
    /// calls `notify` with every [`Completion`]. `notify` runs on that thread: keep it short
    /// (send to the loop, wake it) and never call the store from it. Fails only if the thread
    /// cannot be spawned.
    pub fn start<F>(self, notify: F) -> io::Result<RunningStore>
    where
        F: Fn(Completion) + Send + 'static,
    {
        let (tx, rx) = mpsc::channel();
        let stats = self.stats.clone();
        let thread = thread::Builder::new()
            .name("chat-store".into())
            .spawn(move || {
                background_priority();
                worker::run(self, rx, notify)
            })?;
        Ok(RunningStore {
            tx,
            stats,
            thread: Some(thread),
        })
    }
}

/// The running store: every method puts a request on the storage thread's channel and returns
/// at once. Dropping it without [`shutdown`](RunningStore::shutdown) lets the thread finish the
/// queue and stop without marking the database clean.
#[derive(Debug)]
pub struct RunningStore {
    tx: Sender<Request>,
    stats: Arc<Stats>,
    thread: Option<JoinHandle<Result<(), String>>>,
}

impl RunningStore {
    /// Queues `message` for the next group commit; its `Completion::Stored` carries `ticket`.
    /// Never blocks. (If the storage thread is gone, which only a panic could cause, the
    /// message is dropped and counted in [`Stats::errors_total`].)
    pub fn append(&self, ticket: u64, message: Message) {
        self.send(Request::Append(ticket, message));
    }

    /// Asks for the room messages of `room` with an id below `before`: the newest `limit` of
    /// them (at most 1 000), answered oldest first in `Completion::Fetched` with `ticket`, after
    /// every append queued before it is committed. Never blocks.
    pub fn fetch_before(&self, ticket: u64, room: String, before: u64, limit: usize) {
        self.send(Request::Fetch {
            ticket,
            room,
            before,
            limit,
        });
    }

    /// Keeps `ban` (replacing an earlier ban of the same user); [`open`](crate::open) gives
    /// it back in [`Opened::bans`](crate::Opened::bans) until it ends. Applied after the appends
    /// queued before it; not answered. Never blocks.
    pub fn ban(&self, ban: Ban) {
        self.send(Request::Ban(ban));
    }

    /// Empties the text (and `client_msg_id`) of the room message `id` of `room` and marks it
    /// deleted; the bytes are zeroed in the database file (see the crate docs). Applied after
    /// the appends queued before it; not answered. Never blocks.
    pub fn delete_text(&self, room: String, id: u64) {
        self.send(Request::DeleteText { room, id });
    }

    /// Asks an account or session question (a login, a session check, a logout); answered in
    /// `Completion::Account` with `ticket`, after the appends queued before it are committed.
    /// A write (`CreateSession`, `EndSession`) is committed before its answer. Never blocks.
    pub fn account(&self, ticket: u64, query: crate::AccountQuery) {
        self.send(Request::Account(ticket, query));
    }

    /// Caps the database at about `bytes` (SQLite's `max_page_count`); a commit that would grow
    /// it further fails as a full disk would. `None` lifts the cap. Applies to the batches taken
    /// after it. For quotas, and to test the disk-full path.
    pub fn set_max_db_bytes(&self, bytes: Option<u64>) {
        self.send(Request::MaxDbBytes(bytes));
    }

    /// The store's statistics.
    pub fn stats(&self) -> Arc<Stats> {
        self.stats.clone()
    }

    /// Finishes every queued request, commits, marks the database cleanly closed (if no write of
    /// this run failed), checkpoints the WAL and joins the thread. `Err` says why the database
    /// was *not* marked clean (a failed write in this run, or in the final steps): the next
    /// start then takes a new epoch.
    pub fn shutdown(mut self) -> Result<(), String> {
        self.send(Request::Shutdown);
        match self.thread.take() {
            Some(thread) => thread
                .join()
                .unwrap_or_else(|_| Err("the storage thread panicked".into())),
            None => Ok(()),
        }
    }

    fn send(&self, request: Request) {
        self.stats.enqueued();
        if self.tx.send(request).is_err() {
            self.stats.dequeued();
            self.stats.write_failed();
        }
    }
}

/// The nice value of the storage thread: below the loop that delivers messages live. On a
/// machine whose cores are all busy the scheduler gives the loop (and the clients sharing the
/// machine) the CPU first, and the store catches up in the gaps; acks, which wait for the
/// store, may then lag, but live delivery never waits for the disk, not even for its CPU.
const STORE_NICE: i32 = 10;

/// Lowers this thread's scheduling priority to [`STORE_NICE`] (Linux: nice is per thread).
/// Failing to is harmless: the thread then runs at the process's priority.
fn background_priority() {
    if let Err(e) = lower_thread_priority(STORE_NICE) {
        log::warn!("the storage thread keeps the process's priority: {e}");
    }
}

/// Sets the calling thread's nice value to `nice` (Linux: nice is per thread), so that on a
/// machine whose cores are all busy the event loop gets the CPU first. For the threads that
/// work for a loop: the storage thread, password hashers.
pub fn lower_thread_priority(nice: i32) -> std::io::Result<()> {
    let tid = rustix::thread::gettid();
    rustix::process::setpriority_process(Some(tid), nice).map_err(std::io::Error::from)
}
