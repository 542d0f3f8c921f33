//! The storage thread: waits for requests, commits each batch of appends in one transaction,
//! answers fetches, prunes between batches, and closes the database on shutdown.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rusqlite::{params, Connection, TransactionBehavior};

use crate::retention::Pruner;
use crate::sql::{self, META_CLEAN};
use crate::stats::Stats;
use crate::store::{Request, Store};
use crate::{Completion, Message, Synchronous};

/// Most appends in one transaction.
pub(crate) const MAX_BATCH_APPENDS: usize = 10_000;
/// Most text (bytes of `text`) in one transaction.
pub(crate) const MAX_BATCH_BYTES: usize = 8 << 20;
/// Most messages one fetch returns.
pub(crate) const MAX_FETCH: usize = 1_000;
/// How long a batch of appends waits for more once its first has arrived: a commit costs the
/// same CPU and the same sync whether it carries one message or a hundred, so under load a
/// short wait makes far fewer, fuller commits. It delays acks by at most this much; live
/// delivery never waits for the store at all.
const COMMIT_LINGER: Duration = Duration::from_millis(2);
/// How long a commit waits for a lock some other program holds (a backup does not take one).
const BUSY_TIMEOUT: Duration = Duration::from_secs(1);

struct Fetch {
    ticket: u64,
    room: String,
    before: u64,
    limit: usize,
}

#[derive(Default)]
struct Batch {
    appends: Vec<(u64, Message)>,
    bytes: usize,
    fetches: Vec<Fetch>,
    /// Bans and deletions, applied after the appends.
    moderation: Vec<Request>,
    /// Account and session questions, answered after the fetches.
    accounts: Vec<(u64, crate::AccountQuery)>,
    shutdown: bool,
}

impl Batch {
    fn full(&self) -> bool {
        self.shutdown || self.appends.len() >= MAX_BATCH_APPENDS || self.bytes >= MAX_BATCH_BYTES
    }
}

struct Worker {
    conn: Connection,
    path: PathBuf,
    stats: Arc<Stats>,
    pruner: Pruner,
    failed_writes: u64,
}

/// The thread's body. Returns `Err` when the database was not marked clean at shutdown.
pub(crate) fn run<F: Fn(Completion)>(
    store: Store,
    rx: Receiver<Request>,
    notify: F,
) -> Result<(), String> {
    let Store {
        conn,
        lock,
        path,
        retention,
        rooms_to_prune,
        stats,
        ..
    } = store;
    if conn.busy_timeout(BUSY_TIMEOUT).is_err() {
        stats.error(); // the open-time timeout stays; commits still work
    }
    let mut worker = Worker {
        conn,
        path,
        stats,
        pruner: Pruner::new(retention, rooms_to_prune, Instant::now()),
        failed_writes: 0,
    };
    loop {
        let first = match worker.pruner.wait(Instant::now()) {
            None => match rx.recv() {
                Ok(request) => Some(request),
                Err(_) => break,
            },
            Some(wait) => match rx.recv_timeout(wait) {
                Ok(request) => Some(request),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => break,
            },
        };
        if let Some(first) = first {
            let mut batch = Batch::default();
            worker.take(&mut batch, first);
            let linger_until = Instant::now() + COMMIT_LINGER;
            while !batch.full() {
                let next = match rx.try_recv() {
                    Ok(request) => Some(request),
                    // Nothing queued: appends wait a moment for company, anything else goes now.
                    Err(_) if !batch.appends.is_empty() => {
                        match linger_until.checked_duration_since(Instant::now()) {
                            Some(left) => rx.recv_timeout(left).ok(),
                            None => None,
                        }
                    }
                    Err(_) => None,
                };
                match next {
                    Some(request) => worker.take(&mut batch, request),
                    None => break,
                }
            }
            worker.commit(batch.appends, &notify);
            worker.moderate(batch.moderation);
            for fetch in batch.fetches {
                worker.fetch(fetch, &notify);
            }
            for (ticket, query) in batch.accounts {
                worker.account(ticket, &query, &notify);
            }
            if batch.shutdown {
                let result = worker.finish();
                drop(lock);
                return result;
            }
        }
        worker
            .pruner
            .step(&worker.conn, &worker.stats, Instant::now());
    }
    // Every RunningStore handle is gone without a shutdown: the queue is done; stop unmarked.
    drop(lock);
    Ok(())
}

impl Worker {
    fn take(&mut self, batch: &mut Batch, request: Request) {
        self.stats.dequeued();
        match request {
            Request::Append(ticket, message) => {
                batch.bytes += message.text.len();
                batch.appends.push((ticket, message));
            }
            Request::Fetch {
                ticket,
                room,
                before,
                limit,
            } => batch.fetches.push(Fetch {
                ticket,
                room,
                before,
                limit,
            }),
            Request::MaxDbBytes(bytes) => {
                if self.set_max_db_bytes(bytes).is_err() {
                    self.stats.error();
                }
            }
            request @ (Request::Ban(_) | Request::DeleteText { .. }) => {
                batch.moderation.push(request);
            }
            Request::Account(ticket, query) => batch.accounts.push((ticket, query)),
            Request::Shutdown => batch.shutdown = true,
        }
    }

    fn commit<F: Fn(Completion)>(&mut self, appends: Vec<(u64, Message)>, notify: &F) {
        if appends.is_empty() {
            return;
        }
        let started = Instant::now();
        let result = self.write(&appends);
        let took = started.elapsed();
        let tickets = appends.iter().map(|(ticket, _)| *ticket).collect();
        let result = match result {
            Ok(()) => {
                self.stats.committed(appends.len(), took);
                self.pruner.touched(
                    appends
                        .into_iter()
                        .filter(|(_, m)| m.to.is_none())
                        .map(|(_, m)| m.room),
                );
                Ok(())
            }
            Err(e) => {
                self.stats.write_failed();
                self.failed_writes += 1;
                Err(e.to_string())
            }
        };
        self.stats.refresh_db_bytes(&self.path);
        notify(Completion::Stored { tickets, result });
    }

    /// One transaction: every message, then one `rooms` row per room written.
    fn write(&mut self, appends: &[(u64, Message)]) -> rusqlite::Result<()> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut rooms: HashMap<&str, (u64, i64)> = HashMap::new();
        for (_, message) in appends {
            let seq = sql::insert(&tx, message)?;
            if message.to.is_none() {
                let room = rooms.entry(&message.room).or_insert((0, 0));
                *room = (room.0.max(message.id), seq);
            }
        }
        {
            let mut upsert = tx.prepare_cached(sql::UPSERT_ROOM)?;
            for (room, (last_id, last_seq)) in rooms {
                upsert.execute(params![room, last_id as i64, last_seq])?;
            }
        }
        tx.commit()
    }

    /// Bans and deletions, in one transaction; a failure is counted (nobody waits for them).
    fn moderate(&mut self, requests: Vec<Request>) {
        if requests.is_empty() {
            return;
        }
        let result = (|| {
            let tx = self
                .conn
                .transaction_with_behavior(TransactionBehavior::Immediate)?;
            for request in &requests {
                match request {
                    Request::Ban(ban) => {
                        tx.prepare_cached(sql::UPSERT_BAN)?.execute(params![
                            ban.user,
                            ban.until_ms,
                            ban.reason
                        ])?;
                    }
                    Request::DeleteText { room, id } => {
                        tx.prepare_cached(sql::DELETE_TEXT)?
                            .execute(params![room, *id as i64])?;
                    }
                    _ => {}
                }
            }
            tx.commit()
        })();
        if result.is_err() {
            self.stats.error();
        }
    }

    fn fetch<F: Fn(Completion)>(&self, fetch: Fetch, notify: &F) {
        let limit = fetch.limit.min(MAX_FETCH);
        let result = sql::room_before(&self.conn, &fetch.room, fetch.before, limit);
        if result.is_err() {
            self.stats.error();
        }
        notify(Completion::Fetched {
            ticket: fetch.ticket,
            result: result.map_err(|e| e.to_string()),
        });
    }

    fn account<F: Fn(Completion)>(&self, ticket: u64, query: &crate::AccountQuery, notify: &F) {
        let result = crate::sessions::answer(&self.conn, query);
        if result.is_err() {
            self.stats.error();
        }
        notify(Completion::Account {
            ticket,
            result: result.map_err(|e| e.to_string()),
        });
    }

    fn set_max_db_bytes(&self, bytes: Option<u64>) -> rusqlite::Result<()> {
        let page_size: i64 = self
            .conn
            .pragma_query_value(None, "page_size", |row| row.get(0))?;
        let pages = match bytes {
            Some(bytes) => (bytes / page_size.max(1) as u64).clamp(1, 0xffff_fffe),
            None => 0xffff_fffe, // SQLite's largest
        };
        // The pragma answers with the new value; it never goes below the current size.
        let _: i64 =
            self.conn
                .query_row(&format!("PRAGMA max_page_count = {pages}"), [], |row| {
                    row.get(0)
                })?;
        Ok(())
    }

    /// Marks the database clean (durably) unless a write failed in this run, then checkpoints
    /// and closes it.
    fn finish(self) -> Result<(), String> {
        let marked = if self.failed_writes > 0 {
            Err(format!(
                "not marked clean: {} write transaction(s) failed during this run, so the next \
                 start takes a new epoch",
                self.failed_writes
            ))
        } else {
            self.conn
                .pragma_update(None, "synchronous", Synchronous::Full.pragma())
                .and_then(|()| sql::set_meta(&self.conn, META_CLEAN, 1))
                .map_err(|e| format!("not marked clean: {e}"))
        };
        if marked.is_ok() {
            // Fold the WAL into the database so the next start reads one file. A failure
            // (another reader, such as a backup, in the way) only leaves the WAL for later.
            let _ = self
                .conn
                .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
        }
        let closed = self
            .conn
            .close()
            .map_err(|(_, e)| format!("closing the database: {e}"));
        self.stats.refresh_db_bytes(&self.path);
        marked.and(closed)
    }
}
