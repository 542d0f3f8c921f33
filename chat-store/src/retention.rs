//! Retention: deletes what [`Retention`] no longer keeps, one small transaction at a time, so
//! the storage thread goes back to appends after each step.

use std::collections::{HashSet, VecDeque};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rusqlite::{params, Connection, OptionalExtension};

use crate::stats::Stats;
use crate::Retention;

/// Rows deleted per transaction, at most.
pub(crate) const STEP_ROWS: usize = 2_000;
/// How long to wait before looking for expired messages again after a step found fewer than
/// [`STEP_ROWS`].
const AGE_RECHECK: Duration = Duration::from_secs(5);

#[derive(Debug)]
pub(crate) struct Pruner {
    retention: Retention,
    /// Rooms written since their count was last checked, in order, without repeats.
    rooms: VecDeque<String>,
    queued: HashSet<String>,
    next_age_step: Instant,
}

impl Pruner {
    pub(crate) fn new(retention: Retention, rooms: Vec<String>, now: Instant) -> Pruner {
        let mut pruner = Pruner {
            retention,
            rooms: VecDeque::new(),
            queued: HashSet::new(),
            next_age_step: now,
        };
        pruner.touched(rooms);
        pruner
    }

    /// Remembers rooms that got messages, for the count rule.
    pub(crate) fn touched(&mut self, rooms: impl IntoIterator<Item = String>) {
        if self.retention.max_per_room.is_none() {
            return;
        }
        for room in rooms {
            if self.queued.insert(room.clone()) {
                self.rooms.push_back(room);
            }
        }
    }

    /// How long the thread may sleep before the next step is due; `None`: until work arrives.
    pub(crate) fn wait(&self, now: Instant) -> Option<Duration> {
        if !self.rooms.is_empty() {
            return Some(Duration::ZERO);
        }
        self.retention
            .max_age
            .map(|_| self.next_age_step.saturating_duration_since(now))
    }

    /// Does at most one step that is due: the age rule first, then one room's count.
    pub(crate) fn step(&mut self, conn: &Connection, stats: &Stats, now: Instant) {
        if let Some(max_age) = self.retention.max_age {
            if now >= self.next_age_step {
                let deleted = delete_older_than(conn, max_age);
                self.next_age_step = match deleted {
                    Ok(STEP_ROWS) => now,
                    _ => now + AGE_RECHECK,
                };
                record(stats, deleted);
                return;
            }
        }
        if let (Some(keep), Some(room)) = (self.retention.max_per_room, self.rooms.pop_front()) {
            let deleted = delete_beyond_count(conn, &room, keep);
            if let Ok(STEP_ROWS) = deleted {
                self.rooms.push_back(room); // more to do; others get their turn first
            } else {
                self.queued.remove(&room);
            }
            record(stats, deleted);
        }
    }
}

fn record(stats: &Stats, deleted: rusqlite::Result<usize>) {
    match deleted {
        Ok(rows) => stats.pruned(rows),
        Err(_) => stats.error(),
    }
}

fn delete_older_than(conn: &Connection, max_age: Duration) -> rusqlite::Result<usize> {
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    let cutoff = i64::try_from(now_ms.saturating_sub(max_age.as_millis())).unwrap_or(i64::MAX);
    conn.prepare_cached(
        "DELETE FROM messages WHERE seq IN \
         (SELECT seq FROM messages WHERE timestamp_ms < ?1 LIMIT ?2)",
    )?
    .execute(params![cutoff, STEP_ROWS as i64])
}

/// Deletes the room's messages more than `keep` ids below its largest id.
fn delete_beyond_count(conn: &Connection, room: &str, keep: u64) -> rusqlite::Result<usize> {
    let last_id: Option<i64> = conn
        .prepare_cached("SELECT last_id FROM rooms WHERE name = ?1")?
        .query_row([room], |row| row.get(0))
        .optional()?;
    let cutoff = (last_id.unwrap_or(0) as u64).saturating_sub(keep);
    if cutoff == 0 {
        return Ok(0);
    }
    conn.prepare_cached(
        "DELETE FROM messages WHERE seq IN (SELECT seq FROM messages \
         WHERE room = ?1 AND id <= ?2 AND recipient IS NULL LIMIT ?3)",
    )?
    .execute(params![room, cutoff as i64, STEP_ROWS as i64])
}
