//! The statements shared by start-up and the storage thread, and the row ↔ [`Message`] mapping.
//!
//! SQLite integers are signed 64-bit: epochs and ids are stored bit for bit (`as i64`) and read
//! back the same way, so every `u64` epoch round-trips. Ids are compared in SQL, which is right
//! for every id below 2^63.

use rusqlite::{params, Connection, Row};

use crate::Message;

/// Inserts one message: `room, epoch, id, user, text, client_msg_id, timestamp_ms, recipient`.
pub(crate) const INSERT_MESSAGE: &str = "INSERT INTO messages \
     (room, epoch, id, user, text, client_msg_id, timestamp_ms, recipient) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)";

/// Records a room's largest id and latest write: `name, last_id, last_seq`.
pub(crate) const UPSERT_ROOM: &str =
    "INSERT INTO rooms (name, last_id, last_seq) VALUES (?1, ?2, ?3) \
     ON CONFLICT (name) DO UPDATE SET last_id = max(last_id, excluded.last_id), \
     last_seq = max(last_seq, excluded.last_seq)";

/// A room's messages with `id < ?2` (room messages only), newest first, at most `?3`.
pub(crate) const ROOM_BEFORE: &str = "SELECT epoch, id, user, text, client_msg_id, timestamp_ms, \
     deleted FROM messages WHERE room = ?1 AND id < ?2 AND recipient IS NULL ORDER BY id DESC LIMIT ?3";

/// Empties the text of a room's message `?2` of room `?1` and marks it deleted. With
/// `secure_delete` on (see `open.rs`) the old text's bytes are zeroed in the page, not just
/// unlinked.
pub(crate) const DELETE_TEXT: &str = "UPDATE messages SET text = '', client_msg_id = NULL, \
     deleted = 1 WHERE room = ?1 AND id = ?2 AND recipient IS NULL";

/// Records a ban (a later one of the same user replaces it): `user, until_ms, reason`.
pub(crate) const UPSERT_BAN: &str =
    "INSERT INTO bans (user, until_ms, reason) VALUES (?1, ?2, ?3) \
     ON CONFLICT (user) DO UPDATE SET until_ms = excluded.until_ms, reason = excluded.reason";

/// The meta table's keys.
pub(crate) const META_EPOCH: &str = "epoch";
pub(crate) const META_CLEAN: &str = "clean_shutdown";

/// The bans still in force at `now_ms`, by user; the ended ones are deleted.
pub(crate) fn live_bans(conn: &Connection, now_ms: i64) -> rusqlite::Result<Vec<crate::Ban>> {
    conn.execute("DELETE FROM bans WHERE until_ms <= ?1", [now_ms])?;
    let mut query = conn.prepare("SELECT user, until_ms, reason FROM bans ORDER BY user")?;
    let bans = query
        .query_map([], |row| {
            Ok(crate::Ban {
                user: row.get(0)?,
                until_ms: row.get(1)?,
                reason: row.get(2)?,
            })
        })?
        .collect();
    bans
}

pub(crate) fn insert(conn: &Connection, message: &Message) -> rusqlite::Result<i64> {
    let mut insert = conn.prepare_cached(INSERT_MESSAGE)?;
    insert.execute(params![
        message.room,
        message.epoch as i64,
        message.id as i64,
        message.user,
        message.text,
        message.client_msg_id,
        message.timestamp_ms,
        message.to,
    ])?;
    Ok(conn.last_insert_rowid())
}

/// Reads a row of [`ROOM_BEFORE`] into a room message of `room`.
pub(crate) fn room_message(room: &str, row: &Row<'_>) -> rusqlite::Result<Message> {
    Ok(Message {
        room: room.to_owned(),
        epoch: row.get::<_, i64>(0)? as u64,
        id: row.get::<_, i64>(1)? as u64,
        user: row.get(2)?,
        text: row.get(3)?,
        client_msg_id: row.get(4)?,
        timestamp_ms: row.get(5)?,
        to: None,
        deleted: row.get::<_, i64>(6)? != 0,
    })
}

/// A room's messages with `id < before`, oldest first, at most `limit`.
pub(crate) fn room_before(
    conn: &Connection,
    room: &str,
    before: u64,
    limit: usize,
) -> rusqlite::Result<Vec<Message>> {
    let mut query = conn.prepare_cached(ROOM_BEFORE)?;
    // Ids at or above 2^63 do not exist; `before` beyond them means "all".
    let before = i64::try_from(before).unwrap_or(i64::MAX);
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let mut messages = query
        .query_map(params![room, before, limit], |row| room_message(room, row))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    messages.reverse();
    Ok(messages)
}

pub(crate) fn set_meta(conn: &Connection, key: &str, value: i64) -> rusqlite::Result<()> {
    conn.execute(
        "INSERT INTO meta (key, value) VALUES (?1, ?2) \
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        params![key, value],
    )?;
    Ok(())
}

pub(crate) fn get_meta(conn: &Connection, key: &str) -> rusqlite::Result<Option<i64>> {
    match conn.query_row("SELECT value FROM meta WHERE key = ?1", [key], |row| {
        row.get(0)
    }) {
        Ok(value) => Ok(Some(value)),
        Err(rusqlite::Error::QueryReturnedNoRows) => Ok(None),
        Err(e) => Err(e),
    }
}
