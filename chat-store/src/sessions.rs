//! What a login needs from the database, asked of the storage thread: an account's password
//! hash, and the `sessions` table (create, look up, end). The driver sends an
//! [`AccountQuery`] with [`RunningStore::account`](crate::RunningStore::account) and hears the
//! [`AccountAnswer`] in `Completion::Account`, so no lookup ever runs on its event loop.
//!
//! A session is valid while its row exists, `expires_ms` is in the future and its user still
//! has an account: the lookup joins `users`, so `user remove` ends every session of that user
//! at once, and `user set-admin` applies at the user's next connection. A user keeps at most
//! [`MAX_SESSIONS_PER_USER`] sessions (the oldest go first); expired rows are deleted when the
//! store opens and whenever the same user logs in.

use std::fmt;

use rusqlite::{params, Connection, OptionalExtension};

/// The most sessions one user keeps (browsers, devices); a new login past it ends the oldest.
pub const MAX_SESSIONS_PER_USER: usize = 32;

/// An account as a login checks it.
#[derive(Clone, PartialEq, Eq)]
pub struct Account {
    /// The argon2id PHC string of the password.
    pub phc: String,
    /// Whether the user is an admin.
    pub admin: bool,
}

impl fmt::Debug for Account {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The hash is not the password, but it is what an offline guesser wants: never logged.
        f.debug_struct("Account")
            .field("phc", &"***")
            .field("admin", &self.admin)
            .finish()
    }
}

/// A live session: whose it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionUser {
    /// The user name.
    pub user: String,
    /// Whether the user is an admin now.
    pub admin: bool,
    /// When the session ends, in milliseconds since the Unix epoch.
    pub expires_ms: i64,
}

/// A question for the storage thread about accounts and sessions.
#[derive(Clone, PartialEq, Eq)]
pub enum AccountQuery {
    /// The account called `name`: [`AccountAnswer::User`].
    FindUser {
        /// The user name.
        name: String,
    },
    /// Keep a new session (durably, before the answer): [`AccountAnswer::SessionCreated`].
    CreateSession {
        /// The random session id (the cookie carries it, signed).
        id: String,
        /// Whose session it is.
        user: String,
        /// Now, in milliseconds since the Unix epoch.
        created_ms: i64,
        /// When it ends.
        expires_ms: i64,
    },
    /// The live session with this id at `now_ms`, if any: [`AccountAnswer::Session`].
    FindSession {
        /// The session id.
        id: String,
        /// Now, in milliseconds since the Unix epoch.
        now_ms: i64,
    },
    /// End the session with this id (logout), durably: [`AccountAnswer::SessionEnded`].
    EndSession {
        /// The session id.
        id: String,
    },
}

impl fmt::Debug for AccountQuery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A session id is a bearer secret (with the cookie key): never in a log.
        match self {
            AccountQuery::FindUser { name } => write!(f, "FindUser({name:?})"),
            AccountQuery::CreateSession { user, .. } => write!(f, "CreateSession({user:?})"),
            AccountQuery::FindSession { .. } => f.write_str("FindSession(***)"),
            AccountQuery::EndSession { .. } => f.write_str("EndSession(***)"),
        }
    }
}

/// The storage thread's answer to an [`AccountQuery`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccountAnswer {
    /// The account, or `None` if there is no such user.
    User(Option<Account>),
    /// The session is stored.
    SessionCreated,
    /// The live session, or `None` (unknown, expired, or its user was removed).
    Session(Option<SessionUser>),
    /// The session is gone (or never existed).
    SessionEnded,
}

/// Answers `query` on `conn`. Writes are single statements (each its own transaction), so an
/// `Ok` answer to a write means it is committed.
pub(crate) fn answer(conn: &Connection, query: &AccountQuery) -> rusqlite::Result<AccountAnswer> {
    match query {
        AccountQuery::FindUser { name } => conn
            .prepare_cached("SELECT phc, admin FROM users WHERE name = ?1")?
            .query_row([name], |row| {
                Ok(Account {
                    phc: row.get(0)?,
                    admin: row.get(1)?,
                })
            })
            .optional()
            .map(AccountAnswer::User),
        AccountQuery::CreateSession {
            id,
            user,
            created_ms,
            expires_ms,
        } => {
            let tx = conn.unchecked_transaction()?;
            tx.prepare_cached(
                "INSERT INTO sessions (id, user, created_ms, expires_ms) VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(params![id, user, created_ms, expires_ms])?;
            // This user's expired sessions, and those past the most recent MAX_SESSIONS_PER_USER.
            tx.prepare_cached(
                "DELETE FROM sessions WHERE user = ?1 AND (expires_ms <= ?2 OR id NOT IN \
                 (SELECT id FROM sessions WHERE user = ?1 ORDER BY created_ms DESC, id \
                 LIMIT ?3))",
            )?
            .execute(params![user, created_ms, MAX_SESSIONS_PER_USER as i64])?;
            tx.commit()?;
            Ok(AccountAnswer::SessionCreated)
        }
        AccountQuery::FindSession { id, now_ms } => conn
            .prepare_cached(
                "SELECT s.user, u.admin, s.expires_ms FROM sessions s JOIN users u \
                 ON u.name = s.user WHERE s.id = ?1 AND s.expires_ms > ?2",
            )?
            .query_row(params![id, now_ms], |row| {
                Ok(SessionUser {
                    user: row.get(0)?,
                    admin: row.get(1)?,
                    expires_ms: row.get(2)?,
                })
            })
            .optional()
            .map(AccountAnswer::Session),
        AccountQuery::EndSession { id } => {
            conn.prepare_cached("DELETE FROM sessions WHERE id = ?1")?
                .execute([id])?;
            Ok(AccountAnswer::SessionEnded)
        }
    }
}

/// Deletes the sessions that ended before `now_ms` (at open).
pub(crate) fn delete_expired(conn: &Connection, now_ms: i64) -> rusqlite::Result<usize> {
    conn.execute("DELETE FROM sessions WHERE expires_ms <= ?1", [now_ms])
}

/// Deletes every session of `user` (the account was removed, or a new one took its name), if
/// the database has sessions at all (an older schema has none).
pub(crate) fn delete_user_sessions(conn: &Connection, user: &str) -> rusqlite::Result<usize> {
    let has_table: bool = conn.query_row(
        "SELECT count(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = 'sessions'",
        [],
        |row| row.get(0),
    )?;
    if !has_table {
        return Ok(0);
    }
    conn.execute("DELETE FROM sessions WHERE user = ?1", [user])
}
