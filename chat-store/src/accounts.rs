//! Built-in accounts: the `users` table, for operator commands (`chat-mio-server user …`).
//!
//! Small and synchronous: each call opens its own connection to `DIR/chat.db`, does one
//! transaction and closes it. It does **not** take the server's `chat.lock`, so it works while
//! a server runs on the same directory: the database is in WAL mode and every call waits up to
//! [`BUSY_TIMEOUT`] for SQLite's write lock (the storage thread holds it for one batch at a
//! time).
//!
//! The schema is the server's: a database that does not exist yet is created (by [`add_user`])
//! at the current version; an older one is upgraded only when no server holds `chat.lock` (a
//! running server has its own idea of the schema), otherwise the call is refused and says to
//! start the new server once; a newer one is refused. Reads on an older database that has no
//! `users` table yet see no users.
//!
//! Passwords never come here: callers pass the PHC string (`chat_auth::hash_password`).

use std::fmt;
use std::fs::{OpenOptions, TryLockError};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::{params, Connection, ErrorCode, OptionalExtension, TransactionBehavior};

use crate::open::{check_header, prepare_dir};
use crate::{schema, OpenError, DB_FILE, LOCK_FILE};

/// How long a call waits for SQLite's write lock while a server is writing.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The longest user name, in characters (the same bound as a client id).
pub const MAX_NAME_CHARS: usize = 32;

/// One account as [`list_users`] shows it (never the hash).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserInfo {
    /// The user name.
    pub name: String,
    /// Whether the user is an admin.
    pub admin: bool,
    /// When the account was added, in milliseconds since the Unix epoch.
    pub created_ms: i64,
}

/// Why an accounts call failed. `Display` is one line for the operator.
#[derive(Debug)]
pub enum AccountError {
    /// The name breaks the client-id rules (1 to 32 characters, no control characters, no
    /// leading or trailing whitespace).
    BadName(String),
    /// A user of that name exists already.
    Duplicate(String),
    /// There is no database in the directory (nothing was ever stored there).
    NoDatabase(PathBuf),
    /// The database has an older schema and a server holds the directory, so it cannot be
    /// upgraded now.
    NeedsUpgrade {
        /// The database file.
        path: PathBuf,
        /// Its schema version.
        found: i64,
    },
    /// The directory or database cannot be used (newer schema, corrupt, locked, I/O).
    Open(OpenError),
}

impl fmt::Display for AccountError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AccountError::BadName(why) => write!(f, "bad user name: {why}"),
            AccountError::Duplicate(name) => write!(f, "user {name:?} already exists"),
            AccountError::NoDatabase(path) => write!(
                f,
                "no database at {} (wrong --data-dir? `user add` creates one)",
                path.display()
            ),
            AccountError::NeedsUpgrade { path, found } => write!(
                f,
                "database {} has schema version {found}, older than this build's {}, and a \
                 server is running on it: stop it and start the new server once to upgrade the \
                 database",
                path.display(),
                schema::LATEST
            ),
            AccountError::Open(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for AccountError {}

impl From<OpenError> for AccountError {
    fn from(e: OpenError) -> AccountError {
        AccountError::Open(e)
    }
}

/// Checks `name` against the client-id rules; `Err` says what is wrong.
pub fn check_name(name: &str) -> Result<(), AccountError> {
    let bad = |why: &str| Err(AccountError::BadName(why.into()));
    let chars = name.chars().count();
    if chars == 0 {
        return bad("it is empty");
    }
    if chars > MAX_NAME_CHARS {
        return bad("longer than 32 characters");
    }
    if name.chars().any(char::is_control) {
        return bad("it contains a control character");
    }
    if name.trim() != name {
        return bad("it starts or ends with whitespace");
    }
    Ok(())
}

/// Adds user `name` with password hash `phc` (a PHC string). Creates the directory and the
/// database if they do not exist.
pub fn add_user(dir: &Path, name: &str, phc: &str, admin: bool) -> Result<(), AccountError> {
    check_name(name)?;
    prepare_dir(dir)?;
    let (mut conn, path) = connect(dir, true)?;
    ensure_latest(&mut conn, dir, &path)?;
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    let inserted = conn.execute(
        "INSERT INTO users (name, phc, admin, created_ms) VALUES (?1, ?2, ?3, ?4)",
        params![name, phc, admin, now_ms],
    );
    match inserted {
        // Sessions left by an earlier account of this name (removed by an older build) are
        // not this user's.
        Ok(_) => crate::sessions::delete_user_sessions(&conn, name)
            .map(drop)
            .map_err(|e| OpenError::from_sqlite(&path, e).into()),
        Err(e) if e.sqlite_error_code() == Some(ErrorCode::ConstraintViolation) => {
            Err(AccountError::Duplicate(name.to_owned()))
        }
        Err(e) => Err(OpenError::from_sqlite(&path, e).into()),
    }
}

/// Every account, by name.
pub fn list_users(dir: &Path) -> Result<Vec<UserInfo>, AccountError> {
    let Some((conn, path)) = connect_existing(dir)? else {
        return Ok(Vec::new());
    };
    let sqlite = |e| AccountError::Open(OpenError::from_sqlite(&path, e));
    let mut stmt = conn
        .prepare("SELECT name, admin, created_ms FROM users ORDER BY name")
        .map_err(sqlite)?;
    let rows = stmt
        .query_map([], |row| {
            Ok(UserInfo {
                name: row.get(0)?,
                admin: row.get(1)?,
                created_ms: row.get(2)?,
            })
        })
        .map_err(sqlite)?
        .collect::<rusqlite::Result<Vec<_>>>()
        .map_err(sqlite)?;
    Ok(rows)
}

/// Removes user `name`; `Ok(false)` if there is none.
pub fn remove_user(dir: &Path, name: &str) -> Result<bool, AccountError> {
    let Some((conn, path)) = connect_existing(dir)? else {
        return Ok(false);
    };
    let sqlite = |e| OpenError::from_sqlite(&path, e);
    let n = conn
        .execute("DELETE FROM users WHERE name = ?1", [name])
        .map_err(sqlite)?;
    // Its sessions end now (the lookup joins `users` anyway), and a later account of the same
    // name starts with none.
    crate::sessions::delete_user_sessions(&conn, name).map_err(sqlite)?;
    Ok(n > 0)
}

/// Makes user `name` an admin or not; `Ok(false)` if there is no such user.
pub fn set_admin(dir: &Path, name: &str, admin: bool) -> Result<bool, AccountError> {
    let Some((conn, path)) = connect_existing(dir)? else {
        return Ok(false);
    };
    let n = conn
        .execute(
            "UPDATE users SET admin = ?1 WHERE name = ?2",
            params![admin, name],
        )
        .map_err(|e| OpenError::from_sqlite(&path, e))?;
    Ok(n > 0)
}

/// User `name`'s PHC string and admin flag, if the user exists.
pub fn find_user(dir: &Path, name: &str) -> Result<Option<(String, bool)>, AccountError> {
    let Some((conn, path)) = connect_existing(dir)? else {
        return Ok(None);
    };
    conn.query_row(
        "SELECT phc, admin FROM users WHERE name = ?1",
        [name],
        |row| Ok((row.get(0)?, row.get(1)?)),
    )
    .optional()
    .map_err(|e| OpenError::from_sqlite(&path, e).into())
}

/// A connection to an existing database whose schema has the `users` table; `None` when the
/// schema is older (no users yet). A newer schema is refused.
fn connect_existing(dir: &Path) -> Result<Option<(Connection, PathBuf)>, AccountError> {
    let (conn, path) = connect(dir, false)?;
    let version = user_version(&conn, &path)?;
    if version > schema::LATEST {
        return Err(too_new(&path, version).into());
    }
    if version < 3 {
        return Ok(None);
    }
    Ok(Some((conn, path)))
}

/// Opens `dir/chat.db` in WAL mode with the busy timeout; without `create`, a missing database
/// is [`AccountError::NoDatabase`].
fn connect(dir: &Path, create: bool) -> Result<(Connection, PathBuf), AccountError> {
    let path = dir.join(DB_FILE);
    if !create && !path.is_file() {
        if !dir.is_dir() {
            return Err(OpenError::Directory {
                dir: dir.to_path_buf(),
                reason: "not a directory, or it cannot be read".into(),
            }
            .into());
        }
        return Err(AccountError::NoDatabase(path));
    }
    check_header(&path)?;
    let sqlite = |e| OpenError::from_sqlite(&path, e);
    let conn = Connection::open(&path).map_err(sqlite)?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(sqlite)?;
    let mode: String = conn
        .query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))
        .map_err(sqlite)?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(OpenError::Io {
            path: path.clone(),
            reason: format!("cannot switch to WAL mode (journal_mode is {mode})"),
        }
        .into());
    }
    // A removed account's hash is zeroed in the file, as deleted messages are.
    conn.pragma_update(None, "secure_delete", "ON")
        .map_err(sqlite)?;
    conn.pragma_update(None, "synchronous", "FULL")
        .map_err(sqlite)?;
    Ok((conn, path))
}

/// Brings the database to the current schema, if no server holds the directory.
fn ensure_latest(conn: &mut Connection, dir: &Path, path: &Path) -> Result<(), AccountError> {
    let version = user_version(conn, path)?;
    if version == schema::LATEST {
        return Ok(());
    }
    if version > schema::LATEST {
        return Err(too_new(path, version).into());
    }
    // Older (or new): upgrade only while holding chat.lock, so no server runs on it meanwhile.
    let lock_path = dir.join(LOCK_FILE);
    let lock = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&lock_path)
        .map_err(|e| OpenError::Directory {
            dir: dir.to_path_buf(),
            reason: format!("cannot write in it: {e}"),
        })?;
    match lock.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            return Err(AccountError::NeedsUpgrade {
                path: path.to_path_buf(),
                found: version,
            })
        }
        Err(TryLockError::Error(e)) => {
            return Err(OpenError::Io {
                path: lock_path,
                reason: format!("cannot lock: {e}"),
            }
            .into())
        }
    }
    let sqlite = |e| OpenError::from_sqlite(path, e);
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(sqlite)?;
    schema::migrate(&tx, path)?;
    tx.commit().map_err(sqlite)?;
    drop(lock);
    Ok(())
}

fn user_version(conn: &Connection, path: &Path) -> Result<i64, AccountError> {
    conn.pragma_query_value(None, "user_version", |row| row.get(0))
        .map_err(|e| OpenError::from_sqlite(path, e).into())
}

fn too_new(path: &Path, found: i64) -> OpenError {
    OpenError::TooNew {
        path: path.to_path_buf(),
        found,
        supported: schema::LATEST,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{open, Options, Retention, Synchronous};

    struct TempDir(PathBuf);

    impl TempDir {
        fn new(name: &str) -> TempDir {
            let nanos = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos());
            let path = std::env::temp_dir().join(format!(
                "chat-accounts-{name}-{}-{nanos}",
                std::process::id()
            ));
            TempDir(path)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn options(dir: &Path) -> Options {
        Options {
            dir: dir.to_path_buf(),
            synchronous: Synchronous::Full,
            retention: Retention::default(),
            history_per_room: 10,
            max_rooms: 10,
            fresh_epoch: 7,
        }
    }

    const PHC: &str = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2g";

    #[test]
    fn add_list_set_admin_find_remove() {
        let tmp = TempDir::new("crud");
        let dir = tmp.0.join("data");
        assert!(matches!(
            list_users(&dir),
            Err(AccountError::Open(OpenError::Directory { .. }))
        ));
        add_user(&dir, "alice", PHC, false).expect("add alice");
        add_user(&dir, "bob", PHC, true).expect("add bob");
        assert!(matches!(
            add_user(&dir, "alice", PHC, true),
            Err(AccountError::Duplicate(_))
        ));
        let users = list_users(&dir).expect("list");
        let names: Vec<_> = users.iter().map(|u| (u.name.as_str(), u.admin)).collect();
        assert_eq!(names, [("alice", false), ("bob", true)]);
        assert!(users[0].created_ms > 0);
        assert!(set_admin(&dir, "alice", true).expect("set"));
        assert!(!set_admin(&dir, "carol", true).expect("set unknown"));
        assert_eq!(
            find_user(&dir, "alice").expect("find"),
            Some((PHC.to_owned(), true))
        );
        assert!(remove_user(&dir, "alice").expect("remove"));
        assert!(!remove_user(&dir, "alice").expect("remove again"));
        assert_eq!(find_user(&dir, "alice").expect("find"), None);
        // The server opens what accounts created.
        let opened = open(options(&dir)).expect("server opens it");
        drop(opened);
    }

    #[test]
    fn names_follow_client_id_rules() {
        let tmp = TempDir::new("names");
        for bad in ["", " alice", "bob ", "a\nb", &"x".repeat(33)] {
            assert!(
                matches!(
                    add_user(&tmp.0, bad, PHC, false),
                    Err(AccountError::BadName(_))
                ),
                "{bad:?}"
            );
        }
        add_user(&tmp.0, &"é".repeat(32), PHC, false).expect("32 characters");
    }

    fn database_at(dir: &Path, version: usize) {
        std::fs::create_dir_all(dir).expect("mkdir");
        let conn = Connection::open(dir.join(DB_FILE)).expect("create");
        for migration in &schema::MIGRATIONS[..version] {
            conn.execute_batch(migration).expect("old schema");
        }
        conn.pragma_update(None, "user_version", version as i64)
            .expect("version");
    }

    #[test]
    fn v1_and_v2_databases_migrate() {
        for version in [1, 2] {
            let tmp = TempDir::new(&format!("v{version}"));
            database_at(&tmp.0, version);
            assert_eq!(list_users(&tmp.0).expect("list old"), []);
            assert_eq!(find_user(&tmp.0, "a").expect("find old"), None);
            add_user(&tmp.0, "alice", PHC, false).expect("add migrates");
            assert_eq!(list_users(&tmp.0).expect("list").len(), 1);
            let conn = Connection::open(tmp.0.join(DB_FILE)).expect("open");
            let v: i64 = conn
                .pragma_query_value(None, "user_version", |row| row.get(0))
                .expect("version");
            assert_eq!(v, schema::LATEST);
            drop(conn);
            open(options(&tmp.0)).expect("the server opens it");
        }
    }

    #[test]
    fn the_server_migrates_v2_too() {
        let tmp = TempDir::new("server-v2");
        database_at(&tmp.0, 2);
        drop(open(options(&tmp.0)).expect("open migrates"));
        add_user(&tmp.0, "alice", PHC, false).expect("add");
    }

    #[test]
    fn an_old_schema_under_a_running_server_is_refused() {
        let tmp = TempDir::new("locked-old");
        database_at(&tmp.0, 2);
        let lock = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(tmp.0.join(LOCK_FILE))
            .expect("lock file");
        lock.try_lock().expect("lock");
        let err = add_user(&tmp.0, "alice", PHC, false).expect_err("refused");
        assert!(matches!(err, AccountError::NeedsUpgrade { found: 2, .. }));
        assert!(err
            .to_string()
            .contains("start the new server once to upgrade the database"));
    }

    #[test]
    fn works_beside_a_running_server() {
        let tmp = TempDir::new("beside");
        let opened = open(options(&tmp.0)).expect("open");
        let running = opened.store.start(|_| {}).expect("start");
        add_user(&tmp.0, "alice", PHC, true).expect("add while running");
        assert_eq!(list_users(&tmp.0).expect("list").len(), 1);
        running.shutdown().expect("shutdown");
    }

    #[test]
    fn a_newer_schema_is_refused() {
        let tmp = TempDir::new("newer");
        database_at(&tmp.0, 3);
        let conn = Connection::open(tmp.0.join(DB_FILE)).expect("open");
        conn.pragma_update(None, "user_version", 99).expect("bump");
        drop(conn);
        for result in [
            add_user(&tmp.0, "alice", PHC, false).map(|_| ()),
            list_users(&tmp.0).map(|_| ()),
        ] {
            assert!(matches!(
                result,
                Err(AccountError::Open(OpenError::TooNew { found: 99, .. }))
            ));
        }
    }
}
