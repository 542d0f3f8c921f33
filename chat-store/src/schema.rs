//! The schema, versioned by `PRAGMA user_version`, and its forward migrations.
//!
//! `MIGRATIONS[n]` takes a database from version `n` to `n + 1`; a new version is one more entry
//! at the end (never edit a released one). [`migrate`] runs the missing ones inside the caller's
//! transaction, so a database is at one version or the next, never in between.

use std::path::Path;

use rusqlite::Transaction;

use crate::OpenError;

/// The version this build writes.
pub(crate) const LATEST: i64 = MIGRATIONS.len() as i64;

pub(crate) const MIGRATIONS: &[&str] = &[
    // v1. `seq` is insertion order (the rowid). Direct messages have `id` 0 and a `recipient`.
    // `rooms` keeps each room's largest id and last write even after retention emptied it, so
    // ids keep rising and start-up never scans `messages` to find the rooms.
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
     CREATE TABLE rooms (
         name TEXT PRIMARY KEY,
         last_id INTEGER NOT NULL,
         last_seq INTEGER NOT NULL
     ) WITHOUT ROWID;
     CREATE TABLE messages (
         seq INTEGER PRIMARY KEY,
         room TEXT NOT NULL,
         epoch INTEGER NOT NULL,
         id INTEGER NOT NULL,
         user TEXT NOT NULL,
         text TEXT NOT NULL,
         client_msg_id TEXT,
         timestamp_ms INTEGER NOT NULL,
         recipient TEXT
     );
     CREATE INDEX messages_room_id ON messages (room, id);
     CREATE INDEX messages_timestamp ON messages (timestamp_ms);",
    // v2. Moderation: a deleted message keeps its row (ids stay consecutive for the loaded
    // history) with its text emptied and `deleted` set; `bans` holds one ban per user, the
    // latest, until `until_ms` (milliseconds since 1970).
    "ALTER TABLE messages ADD COLUMN deleted INTEGER NOT NULL DEFAULT 0;
     CREATE TABLE bans (
         user TEXT PRIMARY KEY,
         until_ms INTEGER NOT NULL,
         reason TEXT NOT NULL
     ) WITHOUT ROWID;",
    // v3. Built-in accounts: one row per user, the password as an argon2id PHC string (never
    // the password), `admin` 0 or 1, `created_ms` milliseconds since 1970.
    "CREATE TABLE users (
         name TEXT PRIMARY KEY,
         phc TEXT NOT NULL,
         admin INTEGER NOT NULL DEFAULT 0,
         created_ms INTEGER NOT NULL
     ) WITHOUT ROWID;",
    // v4. Login sessions of built-in accounts: `id` is the random session id a signed cookie
    // carries, valid until `expires_ms` while its user exists (a session is looked up joined
    // with `users`, so removing an account ends its sessions at once).
    "CREATE TABLE sessions (
         id TEXT PRIMARY KEY,
         user TEXT NOT NULL,
         created_ms INTEGER NOT NULL,
         expires_ms INTEGER NOT NULL
     ) WITHOUT ROWID;
     CREATE INDEX sessions_user ON sessions (user);",
];

/// Brings the database to [`LATEST`], or says why it cannot.
pub(crate) fn migrate(tx: &Transaction<'_>, path: &Path) -> Result<(), OpenError> {
    let sqlite = |e| OpenError::from_sqlite(path, e);
    let version: i64 = tx
        .pragma_query_value(None, "user_version", |row| row.get(0))
        .map_err(sqlite)?;
    if version > LATEST {
        return Err(OpenError::TooNew {
            path: path.to_path_buf(),
            found: version,
            supported: LATEST,
        });
    }
    if version < 0 {
        return Err(OpenError::Corrupt {
            path: path.to_path_buf(),
            reason: format!("schema version {version}"),
        });
    }
    if version == 0 {
        let tables: i64 = tx
            .query_row("SELECT count(*) FROM sqlite_master", [], |row| row.get(0))
            .map_err(sqlite)?;
        if tables > 0 {
            return Err(OpenError::Corrupt {
                path: path.to_path_buf(),
                reason: "an SQLite database of another program: it has tables but no schema \
                         version"
                    .into(),
            });
        }
    }
    for migration in &MIGRATIONS[version as usize..] {
        tx.execute_batch(migration).map_err(sqlite)?;
    }
    if version < LATEST {
        tx.pragma_update(None, "user_version", LATEST)
            .map_err(sqlite)?;
    }
    Ok(())
}
