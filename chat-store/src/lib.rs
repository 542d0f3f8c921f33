//! Durable chat history in embedded SQLite, written on a thread of its own.
//!
//! `chat-store` owns one SQLite database, `DIR/chat.db` (with its `-wal` and `-shm` files and a
//! `chat.lock` beside them), and everything that touches it: the schema and its migrations, the
//! epoch, the room messages and direct messages, retention, scroll-back queries and backups. It
//! knows nothing of sockets, WebSockets, the chat core (`chat-protocol`) or any event loop: its
//! types are plain data, and it hands results back through a callback the driver supplies, so the
//! mio driver, a tokio adapter or a test can drive it alike.
//!
//! It never runs on the caller's event loop: after [`open`], every read and write happens on the
//! storage thread that [`Store::start`] spawns. The calls on [`RunningStore`] only put a request
//! on a channel and return.
//!
//! # Who calls it, and when
//!
//! ```text
//!  start-up (before serving)        open(Options) ──► Opened { epoch, rooms, retired_last_id, store }
//!                                        │              (seed the core with rooms, ids and epoch)
//!                                        ▼
//!                                  store.start(notify) ──► RunningStore       spawns "chat-store"
//!
//!  event loop                       append(ticket, Message) ─┐
//!                                   fetch_before(ticket, ..) ─┤ unbounded channel, never blocks
//!                                   ban(Ban), delete_text(..) ─┤
//!                                   account(ticket, AccountQuery) ─┤
//!                                                             ▼
//!  storage thread   wait for work; take everything queued (≤ 10 000 appends, ≤ 8 MiB of text)
//!                   ├─ one transaction for all the appends (group commit)
//!                   ├─ notify(Completion::Stored { tickets, result })   once per transaction
//!                   ├─ bans and deletions, in one transaction after it    (no completion)
//!                   ├─ notify(Completion::Fetched { ticket, result })   per fetch, after the commit
//!                   ├─ notify(Completion::Account { ticket, result })   per account query (logins)
//!                   └─ when idle or between batches: one retention step (≤ 2 000 rows)
//!
//!  notify ──► (driver) a channel + a mio::Waker, or a tokio channel, …  ──► the core's inputs
//!
//!  shutdown()       finishes the queue, commits, marks the database cleanly closed, joins
//! ```
//!
//! `notify` runs on the storage thread: it must be quick and must not call back into the store
//! (hand the [`Completion`] to the loop and wake it). The tickets are the caller's: the store
//! only carries them, so the driver can match a completion to its request.
//!
//! # Guarantees
//!
//! **Order.** Appends are written in the order they were made; a fetch sees every append made
//! before it. Completions come in request order: a batch's `Stored` before that batch's
//! `Fetched`.
//!
//! **What `Stored { result: Ok(()) }` promises** depends on [`Options::synchronous`]
//! (`PRAGMA synchronous`, in WAL mode):
//!
//! | level | process crash (`kill -9`) | power loss / OS crash |
//! | --- | --- | --- |
//! | [`Synchronous::Full`] (default) | survives | survives: the WAL is fsynced before `Stored` |
//! | [`Synchronous::Normal`] | survives | the last transactions may be lost (fsync only at checkpoints) |
//! | [`Synchronous::Off`] | survives | may be lost, and the database may be corrupt |
//!
//! Group commit is what makes `Full` affordable: one fsync per batch, however many messages it
//! holds, so the batch grows with the load.
//!
//! **Epochs.** No `(epoch, room, id)` ever names two different messages. [`open`] keeps the
//! stored epoch only if the previous run ended with [`RunningStore::shutdown`] *and* no write of
//! that run failed: then every id the core handed out was stored, and ids continue from
//! [`LoadedRoom::last_id`]. Otherwise (first start, `kill -9`, power loss, a failed write, a
//! restored backup) ids may have been handed out that were never stored, so `open` takes
//! [`Options::fresh_epoch`] and says so ([`Opened::epoch_is_new`]). `open` clears the
//! clean-shutdown mark (durably) before anything else happens, so a run that does not reach
//! `shutdown` is never taken for a clean one.
//!
//! **One server per directory.** `open` holds an exclusive lock on `DIR/chat.lock` for the
//! whole run, and takes SQLite's write lock with a short busy timeout: a second server, or
//! another program writing the database, gets [`OpenError::Locked`] at once, never a hang.
//! [`backup`] needs neither lock and is safe while a server runs.
//!
//! **Faults.** `open` answers every fault with an [`OpenError`] whose `Display` is a one-line
//! message for the operator (a directory that is a file, a database locked, from a newer
//! version, not a database, truncated or corrupt, an I/O error); nothing in this crate panics on
//! IO. At run time a failed transaction (disk full, I/O error, the [`RunningStore::set_max_db_bytes`]
//! quota) answers `Stored { result: Err(reason) }` for exactly its tickets, counts an error and
//! marks the store unhealthy ([`Stats::healthy`]); the next batch tries again, so writes resume
//! by themselves when the disk recovers.
//!
//! # Start-up
//!
//! `open` reads the `rooms` table (one row per room: its largest id and when it was last
//! written), keeps the [`Options::max_rooms`] most recently written, and for each reads at most
//! [`Options::history_per_room`] of its newest messages through the `(room, id)` index. The
//! cost is proportional to what is loaded, not to the size of the database: 1 000 000 messages
//! in 1 000 rooms load (100 per room) in about a tenth of a second (BENCHMARKS.md, "Storage").
//! Each [`LoadedRoom::messages`] is the longest run of *consecutive* ids ending at the room's
//! largest stored id, so the core never shows a history with a hole in it.
//!
//! Before SQLite sees the file, `open` checks its 100-byte header (magic string, page size, and
//! a length that matches the page count), which catches files that are not databases and
//! truncated copies. After an unclean end it also runs `PRAGMA quick_check` (about 0.25 s per
//! million messages); after a clean shutdown it trusts the file, to keep the start fast.
//!
//! # Moderation
//!
//! [`RunningStore::ban`] keeps a ban (one per user, the latest wins) that [`open`] gives back
//! in [`Opened::bans`] while it lasts. [`RunningStore::delete_text`] empties a room message's
//! text and marks it `deleted` (the row stays, so the loaded history keeps consecutive ids);
//! loaded and fetched messages carry the flag. The text must be gone from the *file*, not
//! just unreachable: the connection runs with `PRAGMA secure_delete = ON`, so SQLite zeroes
//! the bytes it frees (the old cell on the page) instead of leaving them in free space. Until a
//! checkpoint the old page may still be in the `-wal` file; a clean
//! [`RunningStore::shutdown`] checkpoints and truncates it. Both are applied after the
//! batch's appends (a delete never comes before its message's append) and answer nothing: a
//! failure is counted in [`Stats::errors_total`].
//!
//! # Retention
//!
//! [`Retention::max_age`] deletes messages (room and direct) older than that;
//! [`Retention::max_per_room`] keeps a room's messages within the last N ids (N messages when
//! the room has no holes). Both are pruned on the storage thread, at most 2 000 rows per
//! transaction, one step between batches or when idle, so an append never waits for more than
//! one small step. A room whose messages are all pruned keeps its row in `rooms`, so its ids
//! go on rising.
//!
//! # Bounds
//!
//! - The request channel is unbounded: it holds what the caller submitted while one batch was
//!   being committed. The caller bounds it (the core's rate limits bound the messages it
//!   accepts); [`Stats::queued`] shows its length.
//! - One transaction takes at most 10 000 appends or 8 MiB of text, whichever comes first.
//! - A fetch returns at most 1 000 messages (larger limits are clamped).
//! - `open` holds in memory at most `max_rooms × history_per_room` messages.
//!
//! # Architecture
//!
//! ```text
//!  lib.rs      the plain types: Options, Message, LoadedRoom, Opened, Completion
//!  open.rs     open(): directory, lock file, header check, schema, epoch, loading the rooms
//!  schema.rs   PRAGMA user_version and the forward migrations
//!  store.rs    Store (opened) and RunningStore (the channel API)
//!  worker.rs   the storage thread: group commit, fetches, shutdown
//!  retention.rs    pruning steps
//!  stats.rs    Stats: atomics read by /metrics and /readyz
//!  backup.rs   backup(): SQLite's online backup API
//!  accounts.rs the users table, for operator commands (beside a running server)
//!  error.rs    OpenError
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod accounts;
mod backup;
mod error;
mod key_file;
mod open;
mod retention;
mod schema;
pub mod sessions;
mod sql;
mod stats;
mod store;
mod worker;

use std::path::PathBuf;
use std::time::Duration;

pub use backup::backup;
pub use error::OpenError;
pub use key_file::{load_or_create_key, KEY_FILE};
pub use open::open;
pub use sessions::{Account, AccountAnswer, AccountQuery, SessionUser};
pub use stats::{Stats, COMMIT_BUCKETS};
pub use store::{lower_thread_priority, RunningStore, Store};

/// The database file's name inside [`Options::dir`].
pub const DB_FILE: &str = "chat.db";
/// The lock file's name inside [`Options::dir`], held exclusively by the running server.
pub const LOCK_FILE: &str = "chat.lock";
/// The schema version this build writes (`PRAGMA user_version`).
pub const SCHEMA_VERSION: i64 = schema::LATEST;

/// How [`open`] sets up the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// The data directory, created (with its parents) if missing. The database is `dir/chat.db`.
    pub dir: PathBuf,
    /// `PRAGMA synchronous`: what a `Stored` `Ok` survives (see the crate docs).
    pub synchronous: Synchronous,
    /// What to prune, on the storage thread.
    pub retention: Retention,
    /// How many of each room's latest messages [`open`] loads.
    pub history_per_room: usize,
    /// How many rooms [`open`] loads: the most recently written.
    pub max_rooms: usize,
    /// The epoch to take when the stored one cannot be kept (see the crate docs).
    pub fresh_epoch: u64,
}

/// SQLite's `PRAGMA synchronous` level for the storage thread's commits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Synchronous {
    /// fsync the WAL at every commit: a stored message survives power loss.
    #[default]
    Full,
    /// fsync only at checkpoints: survives a process crash, may lose the last commits on power loss.
    Normal,
    /// Never fsync: survives a process crash only; power loss may corrupt the database.
    Off,
}

impl Synchronous {
    pub(crate) fn pragma(self) -> &'static str {
        match self {
            Synchronous::Full => "FULL",
            Synchronous::Normal => "NORMAL",
            Synchronous::Off => "OFF",
        }
    }
}

/// What the storage thread prunes. `Retention::default()` keeps everything.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Retention {
    /// Delete messages (room and direct) whose `timestamp_ms` is older than this.
    pub max_age: Option<Duration>,
    /// Keep each room's messages within its last N ids (direct messages are pruned by age only).
    pub max_per_room: Option<u64>,
}

/// One stored message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The room it was sent in.
    pub room: String,
    /// The epoch its id belongs to.
    pub epoch: u64,
    /// Its id in the room; 0 for a direct message.
    pub id: u64,
    /// Who sent it.
    pub user: String,
    /// Its text, as sent.
    pub text: String,
    /// The sender's deduplication key, if it gave one.
    pub client_msg_id: Option<String>,
    /// When the server accepted it, in milliseconds since the Unix epoch.
    pub timestamp_ms: i64,
    /// `Some(recipient)` for a direct message (id 0: stored, never part of a room's history).
    pub to: Option<String>,
    /// An admin deleted it ([`RunningStore::delete_text`]): `text` is empty. Always `false`
    /// in an append.
    pub deleted: bool,
}

/// A user kept out until `until_ms` ([`RunningStore::ban`], [`Opened::bans`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ban {
    /// The banned user.
    pub user: String,
    /// When the ban ends, in milliseconds since the Unix epoch.
    pub until_ms: i64,
    /// The admin's reason (may be empty).
    pub reason: String,
}

/// A room as [`open`] loads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadedRoom {
    /// The room's name.
    pub name: String,
    /// The largest id ever stored in the room (it stays even when retention pruned the message).
    pub last_id: u64,
    /// Oldest first, consecutive ids ending at `last_id`: the longest such run, at most
    /// [`Options::history_per_room`]. Empty if the message `last_id` itself is gone.
    pub messages: Vec<Message>,
}

/// What [`open`] found.
#[derive(Debug)]
pub struct Opened {
    /// The epoch of this run.
    pub epoch: u64,
    /// `true` when `epoch` is [`Options::fresh_epoch`] because the stored one could not be kept.
    pub epoch_is_new: bool,
    /// The [`Options::max_rooms`] most recently written rooms, most recent first.
    pub rooms: Vec<LoadedRoom>,
    /// The largest `last_id` of the stored rooms that were not loaded (0 if none): a room that
    /// comes back later should start its ids above it.
    pub retired_last_id: u64,
    /// The bans not ended at `open` (ended ones are deleted then), by user name.
    pub bans: Vec<Ban>,
    /// The opened database, ready for [`Store::start`].
    pub store: Store,
}

/// A storage result handed to the `notify` callback of [`Store::start`], on the storage thread.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Completion {
    /// One transaction of appends: every ticket in it, in append order, shares the result.
    Stored {
        /// The tickets of the appends in this transaction.
        tickets: Vec<u64>,
        /// `Ok` once committed (see the crate docs for what that survives), or a short reason.
        result: Result<(), String>,
    },
    /// The answer to [`RunningStore::fetch_before`].
    Fetched {
        /// The fetch's ticket.
        ticket: u64,
        /// The messages, oldest first, or a short reason.
        result: Result<Vec<Message>, String>,
    },
    /// The answer to [`RunningStore::account`].
    Account {
        /// The query's ticket.
        ticket: u64,
        /// The answer, or a short reason.
        result: Result<AccountAnswer, String>,
    },
}
